// Offline checks of rendered Kubernetes manifests (the output of
// `kubectl kustomize` for each overlay of deploy/kubernetes), run by
// tests/deploy/kubernetes_test.sh:
//
//   node tests/deploy/k8s_validate.mjs --models DIR [--secret-vars "A B ..."]
//        [--sources DIR] NAME=FILE...
//
// DIR holds node_modules with kubernetes-models and js-yaml. Each FILE is
// one overlay's multi-document YAML, reported under NAME. One line per
// object ("ok" or "FAIL", with the reasons under it), one per namespace,
// one for the sources; exits 1 if any failed.
//
// Every object:
//   - its apiVersion and kind are a model of kubernetes-models (an unknown
//     kind fails), and the model's validate() accepts it (the Kubernetes
//     API's OpenAPI schemas, with ajv);
//   - no field the schema does not know: the schemas allow unknown fields,
//     as the API server's OpenAPI does, so each object is validated through
//     a Proxy that records which members the compiled schema reads; a
//     member of an object that was never read nor listed (a map's) is not
//     in the schema (a misspelled field);
//   - whatever it names exists in the same overlay and namespace: the
//     Secrets and ConfigMaps of envFrom, env and volumes (and the keys of
//     env's), the Services and ports of an Ingress, the pods of a
//     Service's, a budget's or a network policy's selector, the ports of
//     probes and Services; Secrets made outside kustomize are listed in
//     EXTERNAL_SECRETS.
// Every Deployment: requests and limits (cpu and memory) on every
// container, readiness and liveness probes on every container that is not
// an init container, a securityContext that is non-root, seccomp
// RuntimeDefault, with a read-only root file system, no privilege
// escalation and every capability dropped, and topology spread over zones
// and nodes whose selector takes the pod itself.
// Every namespace: its Namespace object, a default-deny policy (every pod,
// both directions, no rule), and every pod selected by allow policies that
// let it resolve names (DNS, port 53).
// No secret in the clear: a variable whose type is "secret" in README.md
// (--secret-vars) never has a literal value nor a ConfigMap key; no
// ConfigMap value or env value holds a password in a URL or a credential.
// With --sources: no Secret object and no secretGenerator literals among
// the committed files, whose generators read only files of secrets/ (never
// committed), and no credential, password or key in them (the
// secrets.example files hold CHANGE-ME).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

// Secrets the operator makes with kubectl (README of deploy/kubernetes):
// key rings from directories, TLS certificates.
const EXTERNAL_SECRETS = new Set(['data-plane-log-keys', 'data-plane-stream-keys', 'control-plane-tls', 'router-tls']);
// A password in a connection string, and the control plane's credentials
// (crt_ region, cct_ cell, cts_ session), and 32-byte hex keys.
const URL_PASSWORD = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:([^\s@]+)@/i;
const CREDENTIAL = /\b(crt|cct|cts)_[A-Za-z0-9-]+_[A-Za-z0-9_-]{16,}/;
const HEX_KEY = /\b[0-9a-fA-F]{64}\b/;

function usage(msg) {
	if (msg) process.stderr.write(`k8s_validate: ${msg}\n`);
	process.stderr.write('usage: node k8s_validate.mjs --models DIR [--secret-vars "A B"] [--sources DIR] NAME=FILE...\n');
	process.exit(2);
}

let modelsDir = null, sourcesDir = null, secretVars = new Set();
const inputs = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	if (a === '--models') modelsDir = argv[++i];
	else if (a === '--sources') sourcesDir = argv[++i];
	else if (a === '--secret-vars') secretVars = new Set((argv[++i] || '').split(/\s+/).filter(Boolean));
	else if (a.startsWith('-')) usage(`unknown option ${a}`);
	else {
		const eq = a.indexOf('=');
		if (eq < 1) usage(`not NAME=FILE: ${a}`);
		inputs.push({ name: a.slice(0, eq), file: a.slice(eq + 1) });
	}
}
if (!modelsDir) usage('--models is required');
if (!inputs.length && !sourcesDir) usage('nothing to check');

const req = createRequire(path.join(path.resolve(modelsDir), 'package.json'));
const yaml = req('js-yaml');

let passed = 0, failed = 0;
function report(ok, what, problems) {
	if (ok) { passed++; console.log(`ok    ${what}`); return; }
	failed++;
	console.log(`FAIL  ${what}`);
	for (const p of problems) console.log(`        ${p}`);
}

// ---- the schema, through kubernetes-models ----

const models = new Map();
function modelFor(apiVersion, kind) {
	const key = `${apiVersion} ${kind}`;
	if (models.has(key)) return models.get(key);
	let cls = null;
	const m = /^(?:([a-z0-9.-]+)\/)?(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)$/.exec(apiVersion || '');
	if (m && /^[A-Z][A-Za-z0-9]*$/.test(kind || '')) {
		const mod = m[1] ? `kubernetes-models/${m[1]}/${m[2]}/${kind}` : `kubernetes-models/${m[2]}/${kind}`;
		try { cls = req(mod)[kind] || null; } catch { cls = null; }
	}
	models.set(key, cls);
	return cls;
}

// Validates obj with its model; returns the problems (schema errors, then
// members the schema never looked at).
function schemaProblems(obj) {
	const cls = modelFor(obj.apiVersion, obj.kind);
	if (!cls) return [`unknown kind: no model for apiVersion ${obj.apiVersion} kind ${obj.kind}`];
	const model = new cls(obj);
	const records = [];
	const proxies = new WeakMap();
	const track = (target, where) => {
		if (target === null || typeof target !== 'object') return target;
		if (proxies.has(target)) return proxies.get(target);
		const rec = { target, where, read: new Set(), listed: false };
		records.push(rec);
		const p = new Proxy(target, {
			get(t, k, r) {
				const v = Reflect.get(t, k, r);
				if (typeof k !== 'string') return v;
				rec.read.add(k);
				return v !== null && typeof v === 'object' && Object.prototype.hasOwnProperty.call(t, k) ? track(v, `${where}.${k}`) : v;
			},
			has(t, k) { if (typeof k === 'string') rec.read.add(k); return Reflect.has(t, k); },
			ownKeys(t) { rec.listed = true; return Reflect.ownKeys(t); },
		});
		proxies.set(target, p);
		return p;
	};
	const problems = [];
	try {
		track(model, '').validate();
	} catch (e) {
		problems.push(`schema: ${e.message}`);
	}
	for (const r of records) {
		if (r.listed) continue;
		for (const k of Object.keys(r.target)) {
			if (!r.read.has(k)) problems.push(`schema: unknown field ${(r.where + '.' + k).replace(/^\./, '')}`);
		}
	}
	return problems;
}

// ---- helpers over pods and selectors ----

const podTemplate = (o) => (o.kind === 'Deployment' ? o.spec?.template : null);
const containersOf = (spec) => [
	...(spec?.initContainers || []).map((c) => ({ c, init: true })),
	...(spec?.containers || []).map((c) => ({ c, init: false })),
];
function matches(selector, labels) {
	if (!selector) return false;
	for (const [k, v] of Object.entries(selector.matchLabels || {})) if ((labels || {})[k] !== v) return false;
	for (const e of selector.matchExpressions || []) {
		const has = Object.prototype.hasOwnProperty.call(labels || {}, e.key);
		const val = (labels || {})[e.key];
		if (e.operator === 'In' && !(has && e.values.includes(val))) return false;
		if (e.operator === 'NotIn' && has && e.values.includes(val)) return false;
		if (e.operator === 'Exists' && !has) return false;
		if (e.operator === 'DoesNotExist' && has) return false;
	}
	return true;
}
const isEmptySelector = (s) => !s || (!Object.keys(s.matchLabels || {}).length && !(s.matchExpressions || []).length);
const nsOf = (o) => o.metadata?.namespace || '';
const id = (o) => `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ? o.metadata.namespace + '/' : ''}${o.metadata?.name}`;

// ---- one overlay ----

function checkOverlay(name, file) {
	let docs;
	try {
		docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d !== null && d !== undefined);
	} catch (e) {
		report(false, `${name}: ${file} is YAML`, [e.message]);
		return;
	}
	if (!docs.length) { report(false, `${name}: objects rendered`, ['none']); return; }

	const byKind = (kind, ns) => docs.filter((d) => d.kind === kind && (ns === undefined || nsOf(d) === ns));
	const find = (kind, ns, n) => docs.find((d) => d.kind === kind && nsOf(d) === ns && d.metadata?.name === n);
	const pods = (ns) => byKind('Deployment', ns).map((d) => ({ d, t: podTemplate(d) }));
	const podsMatching = (ns, sel) => pods(ns).filter(({ t }) => matches(sel, t?.metadata?.labels));

	for (const o of docs) {
		// A Secret's data as the API server decodes it: kustomize folds long
		// base64 values over lines, and Go's base64 decoder skips \r and \n.
		const checked = o.kind === 'Secret' && o.data
			? { ...o, data: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/[\r\n]/g, '') : v])) }
			: o;
		const problems = [...schemaProblems(checked)];
		const ns = nsOf(o);
		const refSecret = (n, where, optional) => {
			if (!find('Secret', ns, n) && !EXTERNAL_SECRETS.has(n) && !optional) problems.push(`${where}: no Secret ${n}`);
		};
		const refConfigMap = (n, where, optional) => {
			if (!find('ConfigMap', ns, n) && !optional) problems.push(`${where}: no ConfigMap ${n}`);
		};
		const refKey = (kind, n, key, where, optional) => {
			const t = find(kind, ns, n);
			if (!t) { if (!optional) problems.push(`${where}: no ${kind} ${n}`); return; }
			const data = { ...(t.data || {}), ...(t.stringData || {}), ...(t.binaryData || {}) };
			if (!Object.prototype.hasOwnProperty.call(data, key) && !optional) problems.push(`${where}: ${kind} ${n} has no key ${key}`);
		};

		if (o.kind === 'Deployment') {
			const t = podTemplate(o) || {};
			const spec = t.spec || {};
			const psc = spec.securityContext || {};
			const labels = t.metadata?.labels || {};
			if (!matches(o.spec?.selector, labels)) problems.push('spec.selector does not select its own pods');
			const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
			for (const { c, init } of containersOf(spec)) {
				const w = `${init ? 'initContainer' : 'container'} ${c.name}`;
				const r = c.resources || {};
				for (const part of ['requests', 'limits'])
					for (const res of ['cpu', 'memory'])
						if (!r[part] || r[part][res] === undefined) problems.push(`${w}: no ${part}.${res}`);
				if (!init) {
					if (!c.readinessProbe) problems.push(`${w}: no readinessProbe`);
					if (!c.livenessProbe) problems.push(`${w}: no livenessProbe`);
				}
				const sc = c.securityContext || {};
				const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
				const uid = sc.runAsUser ?? psc.runAsUser;
				if (nonRoot !== true || uid === 0) problems.push(`${w}: not runAsNonRoot (or runs as uid 0)`);
				if (sc.readOnlyRootFilesystem !== true) problems.push(`${w}: readOnlyRootFilesystem is not true`);
				if (sc.allowPrivilegeEscalation !== false) problems.push(`${w}: allowPrivilegeEscalation is not false`);
				if (!(sc.capabilities?.drop || []).includes('ALL')) problems.push(`${w}: capabilities.drop has no ALL`);
				if (sc.privileged === true) problems.push(`${w}: privileged`);
				if (sc.capabilities?.add?.length) problems.push(`${w}: adds capabilities ${sc.capabilities.add.join(',')}`);
				if ((sc.seccompProfile?.type ?? psc.seccompProfile?.type) !== 'RuntimeDefault') problems.push(`${w}: seccompProfile is not RuntimeDefault`);
				const portNames = new Set((c.ports || []).map((p) => p.name).filter(Boolean));
				for (const pr of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
					const port = c[pr]?.httpGet?.port ?? c[pr]?.tcpSocket?.port;
					if (typeof port === 'string' && !portNames.has(port)) problems.push(`${w}: ${pr} names port ${port}, which it does not have`);
				}
				for (const ef of c.envFrom || []) {
					if (ef.secretRef) refSecret(ef.secretRef.name, `${w} envFrom`, ef.secretRef.optional);
					if (ef.configMapRef) refConfigMap(ef.configMapRef.name, `${w} envFrom`, ef.configMapRef.optional);
				}
				for (const e of c.env || []) {
					const sk = e.valueFrom?.secretKeyRef, ck = e.valueFrom?.configMapKeyRef;
					if (sk) refKey('Secret', sk.name, sk.key, `${w} env ${e.name}`, sk.optional);
					if (ck) refKey('ConfigMap', ck.name, ck.key, `${w} env ${e.name}`, ck.optional);
					if (secretVars.has(e.name) && (e.value !== undefined || ck)) problems.push(`${w} env ${e.name}: a secret, given in the clear (not from a Secret)`);
					if (typeof e.value === 'string' && (URL_PASSWORD.test(e.value) || CREDENTIAL.test(e.value) || HEX_KEY.test(e.value)))
						problems.push(`${w} env ${e.name}: its value holds a password, a credential or a key`);
				}
				for (const vm of c.volumeMounts || []) if (!volumes.has(vm.name)) problems.push(`${w}: mounts ${vm.name}, which is no volume`);
			}
			for (const v of spec.volumes || []) {
				if (v.secret) refSecret(v.secret.secretName, `volume ${v.name}`, v.secret.optional);
				if (v.configMap) refConfigMap(v.configMap.name, `volume ${v.name}`, v.configMap.optional);
			}
			const tsc = spec.topologySpreadConstraints || [];
			for (const key of ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']) {
				const c = tsc.find((x) => x.topologyKey === key);
				if (!c) problems.push(`no topology spread over ${key}`);
				else if (!matches(c.labelSelector, labels)) problems.push(`topology spread over ${key}: its selector does not take the pod itself`);
			}
		}

		if (o.kind === 'Service' && o.spec?.selector) {
			const sel = { matchLabels: o.spec.selector };
			const ps = podsMatching(ns, sel);
			if (!ps.length) problems.push('its selector matches no pod of the overlay');
			for (const p of o.spec.ports || []) {
				if (typeof p.targetPort !== 'string') continue;
				const has = ps.some(({ t }) => (t.spec?.containers || []).some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort)));
				if (ps.length && !has) problems.push(`port ${p.name}: targetPort ${p.targetPort} is no port of its pods`);
			}
		}
		if (o.kind === 'PodDisruptionBudget' && !podsMatching(ns, o.spec?.selector).length) problems.push('its selector matches no pod of the overlay');
		if (o.kind === 'NetworkPolicy') {
			if (!isEmptySelector(o.spec?.podSelector) && !podsMatching(ns, o.spec.podSelector).length)
				problems.push('its podSelector matches no pod of the overlay');
			const peers = [...(o.spec?.ingress || []).flatMap((r) => r.from || []), ...(o.spec?.egress || []).flatMap((r) => r.to || [])];
			for (const p of peers)
				if (p.podSelector && !p.namespaceSelector && !isEmptySelector(p.podSelector) && !podsMatching(ns, p.podSelector).length)
					problems.push(`a peer's podSelector ${JSON.stringify(p.podSelector)} matches no pod of the namespace`);
		}
		if (o.kind === 'Ingress') {
			const backends = [o.spec?.defaultBackend, ...(o.spec?.rules || []).flatMap((r) => (r.http?.paths || []).map((p) => p.backend))].filter(Boolean);
			for (const b of backends) {
				const s = b.service && find('Service', ns, b.service.name);
				if (!s) { problems.push(`backend: no Service ${b.service?.name}`); continue; }
				const port = b.service.port || {};
				if (!(s.spec?.ports || []).some((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number)))
					problems.push(`backend: Service ${s.metadata.name} has no port ${port.name ?? port.number}`);
			}
			for (const t of o.spec?.tls || []) if (t.secretName) refSecret(t.secretName, 'tls', false);
		}
		if (o.kind === 'ConfigMap') {
			for (const [k, v] of Object.entries(o.data || {})) {
				if (secretVars.has(k)) problems.push(`data ${k}: a secret, in a ConfigMap`);
				if (typeof v === 'string' && (URL_PASSWORD.test(v) || CREDENTIAL.test(v) || HEX_KEY.test(v)))
					problems.push(`data ${k}: holds a password, a credential or a key`);
			}
		}
		report(!problems.length, `${name}  ${id(o)}`, problems);
	}

	// Namespaces: the object, default deny, the allows, DNS for every pod.
	const namespaces = new Set([...byKind('Namespace').map((n) => n.metadata.name), ...docs.map(nsOf).filter(Boolean)]);
	for (const ns of namespaces) {
		const problems = [];
		if (!byKind('Namespace').some((n) => n.metadata.name === ns)) problems.push('no Namespace object in the overlay');
		const policies = byKind('NetworkPolicy', ns);
		const deny = policies.find((p) => isEmptySelector(p.spec?.podSelector) && (p.spec?.policyTypes || []).includes('Ingress') &&
			(p.spec?.policyTypes || []).includes('Egress') && !(p.spec?.ingress || []).length && !(p.spec?.egress || []).length);
		if (!deny) problems.push('no default-deny NetworkPolicy (every pod, Ingress and Egress, no rule)');
		const allows = policies.filter((p) => p !== deny);
		const selects = (p, labels) => isEmptySelector(p.spec?.podSelector) || matches(p.spec.podSelector, labels);
		const dns = (p) => (p.spec?.egress || []).some((r) => (r.ports || []).some((x) => x.port === 53));
		for (const { d, t } of pods(ns)) {
			const mine = allows.filter((p) => selects(p, t?.metadata?.labels));
			if (!mine.length) problems.push(`Deployment ${d.metadata.name}: no allow policy selects its pods`);
			if (!mine.some(dns)) problems.push(`Deployment ${d.metadata.name}: no policy lets its pods resolve names (port 53)`);
		}
		if (!pods(ns).length && !allows.length) problems.push('no allow policy');
		report(!problems.length, `${name}  namespace ${ns}: default deny, the allows of each pod, DNS`, problems);
	}

	// A region: each cell's data planes are named for it, given DP_CELL and
	// a Secret of their own, let reach a database policy of their own, and
	// known to HAProxy (a backend over their Service, a line of the
	// frontend) and to the mover; nothing there names another cell.
	for (const hap of byKind('ConfigMap').filter((c) => c.metadata?.name === 'router-haproxy')) {
		const ns = nsOf(hap);
		const problems = [];
		const cfg = String(hap.data?.['haproxy.cfg'] || '');
		const cells = new Map();
		for (const { d, t } of pods(ns)) {
			const cell = t?.metadata?.labels?.['celltrail.example/cell'];
			if (t?.metadata?.labels?.['app.kubernetes.io/name'] !== 'data-plane') continue;
			if (!cell) { problems.push(`Deployment ${d.metadata.name}: data planes without a cell label`); continue; }
			if (cells.has(cell)) problems.push(`cell ${cell}: two Deployments`);
			cells.set(cell, { d, t });
		}
		if (!cells.size) problems.push('no cell');
		const secretsSeen = new Map();
		for (const [cell, { d, t }] of cells) {
			const w = `cell ${cell}`;
			if (d.metadata.name !== `data-plane-${cell}`) problems.push(`${w}: Deployment named ${d.metadata.name}, not data-plane-${cell}`);
			for (const { c } of containersOf(t.spec)) {
				const v = (c.env || []).find((e) => e.name === 'DP_CELL');
				if (!v || v.value !== cell) problems.push(`${w}: container ${c.name} has DP_CELL ${v ? v.value : '(none)'}`);
				for (const ef of c.envFrom || []) {
					if (!ef.secretRef) continue;
					const other = secretsSeen.get(ef.secretRef.name);
					if (other && other !== cell) problems.push(`${w}: shares Secret ${ef.secretRef.name} with cell ${other}`);
					secretsSeen.set(ef.secretRef.name, cell);
				}
			}
			const svc = find('Service', ns, `data-plane-${cell}`);
			if (!svc || !matches({ matchLabels: svc.spec?.selector }, t.metadata.labels) || svc.spec?.selector?.['celltrail.example/cell'] !== cell)
				problems.push(`${w}: no Service data-plane-${cell} selecting its pods by its cell`);
			const db = byKind('NetworkPolicy', ns).filter((p) => p.spec?.podSelector?.matchLabels?.['celltrail.example/cell'] === cell &&
				(p.spec?.egress || []).some((r) => (r.ports || []).some((x) => x.port === 5432)));
			if (db.length !== 1) problems.push(`${w}: ${db.length} database policies selecting its pods (one wanted)`);
			const esc = cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
			if (!new RegExp(`^\\s*backend cell_${esc}\\s*$`, 'm').test(cfg)) problems.push(`${w}: no backend cell_${cell} in haproxy.cfg`);
			if (!new RegExp(`^\\s*use_backend cell_${esc} if \\{ nbsrv\\(cell_${esc}\\) gt 0 \\}\\s*$`, 'm').test(cfg))
				problems.push(`${w}: no "use_backend cell_${cell} if { nbsrv(cell_${cell}) gt 0 }" in haproxy.cfg`);
			if (!new RegExp(`^\\s*server-template \\S+ \\d+ data-plane-${esc}\\.${ns}\\.svc\\.[a-z.]+:8081 `, 'm').test(cfg))
				problems.push(`${w}: its backend does not resolve data-plane-${cell}.${ns}.svc.<cluster domain>:8081`);
		}
		for (const m of cfg.matchAll(/^\s*backend cell_(\S+)\s*$/gm)) if (!cells.has(m[1])) problems.push(`haproxy.cfg: backend cell_${m[1]}, a cell with no data planes here`);
		const mv = find('ConfigMap', ns, 'mover');
		const entries = new Map(String(mv?.data?.MOVER_CELLS || '').split(/\s+/).filter(Boolean).map((e) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)]));
		for (const cell of cells.keys()) {
			const url = entries.get(cell);
			if (!url || !new RegExp(`^http://data-plane-${cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.${ns}(\\.svc(\\.[a-z.]+)?)?)?:8081$`).test(url))
				problems.push(`cell ${cell}: MOVER_CELLS has ${url ? url : 'no entry'}, not its Service on 8081`);
		}
		report(!problems.length, `${name}  region ${ns}: cells ${[...cells.keys()].join(' ')} in HAProxy, in MOVER_CELLS, with DP_CELL, a Secret and a database policy of their own`, problems);
	}
}

// ---- the committed sources ----

function checkSources(dir) {
	const problems = [];
	const files = [];
	const walk = (d) => {
		for (const e of fs.readdirSync(d, { withFileTypes: true })) {
			const p = path.join(d, e.name);
			if (e.isDirectory()) { if (e.name !== 'secrets') walk(p); } else files.push(p);
		}
	};
	walk(dir);
	let generators = 0;
	for (const f of files) {
		const rel = path.relative(dir, f);
		const text = fs.readFileSync(f, 'utf8');
		const example = rel.split(path.sep).includes('secrets.example');
		// A placeholder (CHANGE-ME, <password>, $VAR) is no password.
		for (const m of text.matchAll(new RegExp(URL_PASSWORD.source, 'gi')))
			if (!/^(CHANGE-ME|<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)$/.test(m[1])) problems.push(`${rel}: a password in a connection string (${m[0].slice(0, 40)}...)`);
		if (CREDENTIAL.test(text)) problems.push(`${rel}: a credential (crt_, cct_, cts_)`);
		if (HEX_KEY.test(text)) problems.push(`${rel}: a 64-hex-digit key`);
		if (example && /=/.test(text)) {
			for (const line of text.split('\n')) {
				const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
				if (m && m[2] !== 'CHANGE-ME' && !/CHANGE-ME/.test(m[2])) problems.push(`${rel}: ${m[1]} is not a CHANGE-ME placeholder`);
			}
		}
		if (!/\.ya?ml$/.test(f)) continue;
		let docs;
		try { docs = yaml.loadAll(text).filter(Boolean); } catch (e) { problems.push(`${rel}: not YAML: ${e.message}`); continue; }
		for (const d of docs) {
			if (d.kind === 'Secret') problems.push(`${rel}: a Secret object (secrets come from secretGenerator files of secrets/)`);
			if (path.basename(f) !== 'kustomization.yaml') continue;
			for (const g of d.secretGenerator || []) {
				generators++;
				if (g.literals) problems.push(`${rel}: secretGenerator ${g.name} has literals`);
				const srcs = [g.env, ...(g.envs || []), ...(g.files || []).map((x) => String(x).split('=').pop())].filter(Boolean);
				for (const s of srcs) if (!/^secrets\/[^/]+$/.test(s)) problems.push(`${rel}: secretGenerator ${g.name} reads ${s}, not a file of secrets/`);
			}
		}
	}
	report(!problems.length, `sources: ${files.length} files of ${dir}: ${generators} secret generators, all from secrets/; no Secret object, literal, password, credential or key`, problems);
}

if (sourcesDir) checkSources(sourcesDir);
for (const { name, file } of inputs) checkOverlay(name, file);
console.log(`k8s_validate: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
