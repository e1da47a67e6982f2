#!/bin/sh
# Offline checks of the Kubernetes manifests (deploy/kubernetes/). No
# cluster is needed, nor started.
#
#   sh tests/deploy/kubernetes_test.sh          (from the repository root)
#
# One line per check ("ok" or "FAIL", and why); exits 1 if any failed.
# Needs kubectl (Debian's kubernetes-client), node and npm, and haproxy;
# as root it installs those missing (deploy/deps.sh). The validator,
# kubernetes-models with js-yaml, is installed once with npm under
# build/tools (then the run is offline).
#
#   1. every overlay of deploy/kubernetes/overlays/ renders with
#      `kubectl kustomize`, in a temporary copy of the tree whose secrets/
#      are throwaway files made from the overlay's secrets.example/ (the
#      real secrets/, never committed, are neither read nor copied);
#   2. each region's haproxy.cfg passes `haproxy -c -dW` (no warning);
#   3. every rendered object passes tests/deploy/k8s_validate.mjs: the
#      Kubernetes API's OpenAPI schemas (kubernetes-models' validate(), an
#      unknown kind or field fails), what it names exists, every
#      Deployment has requests, limits, probes, a restricted securityContext
#      and topology spread, every namespace a default-deny policy and the
#      allows, each region's cells are known to HAProxy and the mover, and
#      no secret is in the clear (the variables of type "secret" in
#      README.md); the committed files hold no Secret, literal, password
#      or key;
#   4. the validator refuses broken copies of a rendered overlay: a field
#      of the wrong type, a misspelled field, a missing probe, a secret
#      given in the clear, an unknown kind, a dangling reference, a cell
#      missing from HAProxy.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.."
t0=$(date +%s%N)
K8S=deploy/kubernetes
# The validator, pinned: kubernetes-models 4.x runs on Node 14 and later
# (Debian 12's is 18; 5.x needs Node 22) and carries the schemas of
# Kubernetes 1.33.
KM_VERSION=4.5.1
JSYAML_VERSION=4.1.0
KM_DIR=build/tools/kubernetes-models-$KM_VERSION

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok    $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL  $*"; }
# Indents a failed command's output under its line.
show() { sed 's/^/        /' "$1"; }
finish() {
	echo "kubernetes_test: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	echo "kubernetes: $PASS passed, $FAIL failed"
	[ "$FAIL" = 0 ] && exit 0
	exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# ---- the tools ----
need() { # command debian-package
	command -v "$1" >/dev/null 2>&1 && return 0
	sh deploy/deps.sh "$2" && command -v "$1" >/dev/null 2>&1 && return 0
	bad "$1 not found (Debian's $2: sh deploy/deps.sh $2, as root)"
	finish
}
need kubectl kubernetes-client
need node nodejs
need npm npm
need haproxy haproxy
installed() { # package version: the version installed under KM_DIR
	node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
		"$PWD/$KM_DIR/node_modules/$1/package.json"
}
if [ "$(installed kubernetes-models)" != "$KM_VERSION" ] || [ "$(installed js-yaml)" != "$JSYAML_VERSION" ]; then
	echo "      npm: kubernetes-models@$KM_VERSION js-yaml@$JSYAML_VERSION into $KM_DIR"
	mkdir -p "$KM_DIR"
	if ! NO_UPDATE_NOTIFIER=1 npm install --prefix "$KM_DIR" --no-audit --no-fund --no-save --loglevel=error \
		"kubernetes-models@$KM_VERSION" "js-yaml@$JSYAML_VERSION" > "$tmp/npm.out" 2>&1; then
		bad "npm install kubernetes-models@$KM_VERSION js-yaml@$JSYAML_VERSION"
		show "$tmp/npm.out"
		finish
	fi
fi
kver=$(kubectl version --client 2>/dev/null | sed -n 's/.*GitVersion:"\([^"]*\)".*/\1/p; s/^Client Version: //p' | head -n 1)
kzver=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
echo "      kubectl ${kver:-?} (kustomize ${kzver:-built in}), node $(node --version), kubernetes-models $KM_VERSION, $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"

# The variables README.md gives the type "secret".
secret_vars=$(awk -F'|' '$3 ~ /^ *secret *$/ { gsub(/ /, "", $2); print $2 }' README.md | tr '\n' ' ' | sed 's/ $//')
if [ -n "$secret_vars" ]; then ok "README.md: the secret variables: $secret_vars"; else bad "README.md: no variable of type secret found"; fi

# ---- 1. render every overlay in a copy with throwaway secrets ----
mkdir "$tmp/k8s"
tar -C "$K8S" -cf - --exclude='./overlays/*/secrets' . | tar -C "$tmp/k8s" -xf -
overlays=""
inputs=""
for dir in "$tmp"/k8s/overlays/*/; do
	o=$(basename "$dir")
	[ -f "$dir/kustomization.yaml" ] || continue
	overlays="$overlays $o"
	missing=""
	mkdir -p "$dir/secrets"
	# shellcheck disable=SC2013 # file names, without spaces
	for f in $(grep -v '^ *#' "$dir/kustomization.yaml" | grep -o 'secrets/[A-Za-z0-9._-]\+' | sort -u); do
		if [ -f "$dir/secrets.example/${f#secrets/}" ]; then
			cp "$dir/secrets.example/${f#secrets/}" "$dir/$f"
		else
			missing="$missing ${f#secrets/}"
		fi
	done
	if [ -n "$missing" ]; then
		bad "overlays/$o: no secrets.example/ file for$missing"
		continue
	fi
	if kubectl kustomize "$dir" > "$tmp/$o.yaml" 2> "$tmp/$o.err"; then
		ok "kubectl kustomize overlays/$o: $(grep -c '^kind:' "$tmp/$o.yaml") objects"
		inputs="$inputs $o=$tmp/$o.yaml"
	else
		bad "kubectl kustomize overlays/$o"
		grep -v 'is deprecated' "$tmp/$o.err" > "$tmp/$o.err2" || true
		show "$tmp/$o.err2"
	fi
done
[ -n "$overlays" ] || bad "no overlay in $K8S/overlays"

# ---- 2. HAProxy's configuration of each region ----
for cfg in "$tmp"/k8s/overlays/*/haproxy.cfg; do
	[ -f "$cfg" ] || continue
	o=$(basename "$(dirname "$cfg")")
	mkdir -p "$tmp/run-$o"
	: > "$tmp/run-$o/routes.map"
	sed "s#/run/celltrail/#$tmp/run-$o/#g" "$cfg" > "$tmp/run-$o/haproxy.cfg"
	if haproxy -c -q -dW -f "$tmp/run-$o/haproxy.cfg" > "$tmp/run-$o/out" 2>&1; then
		ok "haproxy -c -dW overlays/$o/haproxy.cfg"
	else
		bad "haproxy -c -dW overlays/$o/haproxy.cfg"
		show "$tmp/run-$o/out"
	fi
done

# ---- 3. every object, offline ----
validate() { # output-file args...: runs the validator; its status
	_out=$1; shift
	# shellcheck disable=SC2086
	node tests/deploy/k8s_validate.mjs --models "$KM_DIR" --secret-vars "$secret_vars" "$@" > "$_out" 2>&1
}
rc=0
# shellcheck disable=SC2086
validate "$tmp/validate.out" --sources "$K8S" $inputs || rc=$?
grep -v '^k8s_validate: ' "$tmp/validate.out" || true
PASS=$((PASS + $(grep -c '^ok ' "$tmp/validate.out" || true)))
FAIL=$((FAIL + $(grep -c '^FAIL ' "$tmp/validate.out" || true)))
if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$tmp/validate.out"; then
	bad "k8s_validate.mjs exited $rc"
fi

# ---- 4. the validator refuses what is broken ----
# Each case: a sed or awk program applied to one rendered overlay, and
# what the validator must say about it.
sample=""
for o in eu $overlays; do [ -f "$tmp/$o.yaml" ] && grep -q '^kind: Deployment' "$tmp/$o.yaml" && { sample=$o; break; }; done
refuses() { # description expected-text command...: the command turns the sample into the broken copy
	_d=$1 _want=$2; shift 2
	"$@" < "$tmp/$sample.yaml" > "$tmp/broken.yaml"
	if cmp -s "$tmp/$sample.yaml" "$tmp/broken.yaml"; then
		bad "refuses $_d: the change did not apply to overlays/$sample"
		return
	fi
	if validate "$tmp/broken.out" "broken=$tmp/broken.yaml"; then
		bad "refuses $_d: the validator passed it"
	elif grep -q "^FAIL " "$tmp/broken.out" && grep -qF -- "$_want" "$tmp/broken.out"; then
		ok "refuses $_d ($(grep -F -- "$_want" "$tmp/broken.out" | head -n 1 | sed 's/^ *//'))"
	else
		bad "refuses $_d: not for \"$_want\""
		show "$tmp/broken.out"
	fi
}
# shellcheck disable=SC2317 # (called through refuses)
drop_liveness() { # the first livenessProbe, with what is indented under it
	awk '!done && /^ *livenessProbe:$/ { ind = index($0, "l"); skip = 1; done = 1; next }
		skip { i = match($0, /[^ ]/); if (i > ind) next; skip = 0 } { print }'
}
# shellcheck disable=SC2317
add_widget() { cat; printf -- '---\napiVersion: widgets.celltrail.example/v1\nkind: Widget\nmetadata:\n  name: w\n'; }
if [ -n "$sample" ]; then
	refuses "a field of the wrong type (replicas: \"two\")" 'replicas' \
		sed '0,/^  replicas: [0-9]*$/s//  replicas: "two"/'
	refuses "a misspelled field (periodSecnods)" 'unknown field' \
		sed '0,/ periodSeconds:/s// periodSecnods:/'
	refuses "a container without its livenessProbe" 'no livenessProbe' drop_liveness
	refuses "a secret given in the clear (env DP_CELL_TOKEN with a value)" 'in the clear' \
		sed '0,/- name: DP_LISTEN$/s//- name: DP_CELL_TOKEN/'
	refuses "an unknown kind" 'unknown kind' add_widget
	refuses "a reference to a Secret that is not there" 'no Secret data-plane-trusted' \
		sed 's/secretName: data-plane-trust$/secretName: data-plane-trusted/'
	refuses "a cell missing from HAProxy" 'no backend cell_' \
		sed '0,/^\( *\)backend cell_/s//\1backend kell_/'
else
	bad "no rendered overlay with a Deployment to break"
fi

finish
