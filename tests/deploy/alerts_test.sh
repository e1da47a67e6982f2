#!/bin/sh
# Checks of the monitoring files: the Prometheus alert rules and their unit
# tests (deploy/prometheus/), the runbook they point at, and the Grafana
# dashboards (deploy/grafana/). No service is started; needs promtool
# (Debian's prometheus package) and python3 with PyYAML (python3-yaml).
#
#   sh tests/deploy/alerts_test.sh          (from the repository root)
#
# One line per check ("ok" or "FAIL", and why); exits 1 if any failed.
#
#   1. promtool check rules, on every deploy/prometheus/*.rules.yml;
#   2. promtool test rules, on every deploy/prometheus/*.test.yml;
#   3. promtool check config, on deploy/prometheus/prometheus.example.yml;
#   4. every alert has `for`, a severity (page or ticket), a summary, a
#      description and a runbook_url, and a test of a file that loads its
#      rules where it fires and one where it is expected absent;
#   5. every runbook_url points at RUNBOOK.md and its anchor is a heading
#      there (GitHub's anchors), and every alert heading there is an alert;
#   6. every dashboard is valid JSON (python3 -m json.tool), uses the
#      ${datasource} variable, and its PromQL parses (promtool, with the
#      dashboard variables filled in);
#   7. every metric used in the rules and dashboards is in README.md's
#      "Metrics" tables (the names grepped from there; a histogram's
#      _bucket, _sum and _count), with a label the table or the scrape
#      (region, cell, instance, job; le of _bucket) gives it, and a value
#      the table lists, where it lists them.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.."
PROMTOOL=${PROMTOOL:-promtool}
PYTHON=${PYTHON:-/usr/bin/python3}
PROM=deploy/prometheus
GRAFANA=deploy/grafana
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failed=1; }
# Indents a failed command's output under its line.
show() { sed 's/^/       /' "$1"; }

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
	bad "promtool not found (Debian's prometheus package; PROMTOOL= names another)"
	exit 1
fi
if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
	bad "$PYTHON cannot import yaml (apt-get install python3-yaml; PYTHON= names another)"
	exit 1
fi

# 1. The rules files.
set -- "$PROM"/*.rules.yml
[ -e "$1" ] || { bad "no rules files in $PROM"; exit 1; }
for f in "$@"; do
	if "$PROMTOOL" check rules "$f" >"$tmp/out" 2>&1; then
		ok "promtool check rules $f ($(sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' "$tmp/out") rules)"
	else
		bad "promtool check rules $f"
		show "$tmp/out"
	fi
done

# 2. Their unit tests (promtool resolves rule_files beside each test file).
set -- "$PROM"/*.test.yml
[ -e "$1" ] || { bad "no test files in $PROM"; exit 1; }
for t in "$@"; do
	if "$PROMTOOL" test rules "$t" >"$tmp/out" 2>&1; then
		ok "promtool test rules $t"
	else
		bad "promtool test rules $t"
		show "$tmp/out"
	fi
done

# 3. The example scrape configuration (it loads every rules file too).
if "$PROMTOOL" check config "$PROM/prometheus.example.yml" >"$tmp/out" 2>&1; then
	ok "promtool check config $PROM/prometheus.example.yml"
else
	bad "promtool check config $PROM/prometheus.example.yml"
	show "$tmp/out"
fi

# 6a. The dashboards are JSON.
set -- "$GRAFANA"/*.json
[ -e "$1" ] || { bad "no dashboards in $GRAFANA"; exit 1; }
for d in "$@"; do
	if "$PYTHON" -m json.tool "$d" >/dev/null 2>"$tmp/out"; then
		ok "valid JSON: $d"
	else
		bad "not valid JSON: $d"
		show "$tmp/out"
	fi
done

# 7a. The metric tables of README.md's "Metrics" section, grepped: one row
# per family, `| \`name\` | type | labels | when | meaning |`.
# shellcheck disable=SC2016 # the backquotes are the tables' own
sed -n '/^## Metrics$/,/^## Signed regional configuration$/p' README.md |
	grep '^| `[a-z_:][a-z0-9_:]*` |' >"$tmp/metrics.rows" || true
# shellcheck disable=SC2016
grep -o '^| `[a-z_:][a-z0-9_:]*`' "$tmp/metrics.rows" | tr -d '|` ' | sort -u >"$tmp/metrics.names"
if [ -s "$tmp/metrics.names" ]; then
	ok "README.md Metrics section: $(wc -l <"$tmp/metrics.names" | tr -d ' ') metric families"
else
	bad "README.md Metrics section: no metric found (heading or table format changed?)"
fi

# 4, 5, 6b, 7b: the rest, in Python.
"$PYTHON" - "$PROM" "$GRAFANA" "$tmp" "$PROMTOOL" <<'EOF' || failed=1
import glob, json, os, re, subprocess, sys
import yaml

prom, grafana, tmp, promtool = sys.argv[1:5]
RUNBOOK_BASE = "https://github.com/celltrail/celltrail/blob/main/deploy/prometheus/RUNBOOK.md#"
failed = False


def report(good, what, why=()):
    global failed
    print(("ok   " if good else "FAIL ") + what)
    for w in why:
        print("       " + w)
    if not good:
        failed = True


# ---- the rules and their tests ----
rules = {}      # alert -> (rules file, rule)
for path in sorted(glob.glob(os.path.join(prom, "*.rules.yml"))):
    for group in (yaml.safe_load(open(path)) or {}).get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule:
                rules[rule["alert"]] = (os.path.basename(path), rule)

problems = []
for name, (path, rule) in sorted(rules.items()):
    ann, lab = rule.get("annotations") or {}, rule.get("labels") or {}
    if not rule.get("for"):
        problems.append(f"{name}: no for")
    if lab.get("severity") not in ("page", "ticket"):
        problems.append(f"{name}: severity {lab.get('severity')!r}, not page or ticket")
    for a in ("summary", "description", "runbook_url"):
        if not ann.get(a):
            problems.append(f"{name}: no {a} annotation")
report(not problems, f"{len(rules)} alerts have for, severity, summary, description and runbook_url", problems)

fires, absent = {}, {}
for path in sorted(glob.glob(os.path.join(prom, "*.test.yml"))):
    doc = yaml.safe_load(open(path)) or {}
    loaded = {os.path.basename(r) for r in doc.get("rule_files", [])}
    for test in doc.get("tests", []):
        for case in test.get("alert_rule_test", []):
            name = case.get("alertname")
            if name not in rules or rules[name][0] not in loaded:
                continue
            where = f"{os.path.basename(path)}: {test.get('name', '?')} at {case.get('eval_time')}"
            (fires if case.get("exp_alerts") else absent).setdefault(name, []).append(where)
for name in sorted(rules):
    f, a = fires.get(name, []), absent.get(name, [])
    report(bool(f) and bool(a),
           f"{name}: tested firing ({len(f)}) and absent ({len(a)})",
           [] if f and a else [("no test where it fires" if not f else "no test where it is absent")
                               + f" in a test file that loads {rules[name][0]}"])
unknown = []
for path in sorted(glob.glob(os.path.join(prom, "*.test.yml"))):
    for test in (yaml.safe_load(open(path)) or {}).get("tests", []):
        for case in test.get("alert_rule_test", []):
            if case.get("alertname") not in rules:
                unknown.append(f"{os.path.basename(path)}: {case.get('alertname')}")
report(not unknown, "every alertname tested is an alert of the rules", unknown)


# ---- the runbook ----
def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


runbook = os.path.join(prom, "RUNBOOK.md")
headings, in_code = [], False
for line in open(runbook):
    if line.startswith("```"):
        in_code = not in_code
    elif not in_code and re.match(r"#{1,6} ", line):
        headings.append(line.lstrip("#").strip())
anchors = {github_anchor(h) for h in headings}
for name, (path, rule) in sorted(rules.items()):
    url = (rule.get("annotations") or {}).get("runbook_url", "")
    if not url.startswith(RUNBOOK_BASE):
        report(False, f"{name}: runbook_url {url!r} is not {RUNBOOK_BASE}<anchor>")
        continue
    anchor = url[len(RUNBOOK_BASE):]
    report(anchor in anchors, f"{name}: runbook anchor #{anchor} is a heading of RUNBOOK.md",
           [] if anchor in anchors else ["no heading with that anchor"])
orphans = [h for h in headings if re.fullmatch(r"Celltrail\w+", h) and h not in rules]
report(not orphans, "every alert section of RUNBOOK.md names an alert", orphans)


# ---- the dashboards ----
dashboards = {}
for path in sorted(glob.glob(os.path.join(grafana, "*.json"))):
    try:
        dashboards[path] = json.load(open(path))
    except ValueError:
        pass  # said by json.tool


def panels_of(d):
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []):
            yield q


VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def fill(expr):
    for k, v in VARS.items():
        expr = expr.replace(k, v)
    expr = expr.replace("${datasource}", "x")
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


dash_exprs = []      # (where, expr)
for path, d in dashboards.items():
    problems = []
    names = [v.get("name") for v in d.get("templating", {}).get("list", [])]
    if "datasource" not in names:
        problems.append("no datasource variable")
    for p in panels_of(d):
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"panel {p.get('title')!r}: datasource is not ${{datasource}}")
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                problems.append(f"panel {p.get('title')!r}: a target's datasource is not ${{datasource}}")
            dash_exprs.append((f"{os.path.basename(path)}: {p.get('title')}", t.get("expr", "")))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
            dash_exprs.append((f"{os.path.basename(path)}: variable {v.get('name')}",
                               m.group(1) if m else q))
    report(not problems, f"{path}: panels use the ${{datasource}} variable", problems)

rec = {"groups": [{"name": "dashboards", "rules": [
    {"record": f"dashboard_expr_{i}", "expr": fill(e)} for i, (_, e) in enumerate(dash_exprs)]}]}
rec_path = os.path.join(tmp, "dashboards.rules.yml")
yaml.safe_dump(rec, open(rec_path, "w"), width=10000)
r = subprocess.run([promtool, "check", "rules", rec_path], capture_output=True, text=True)
report(r.returncode == 0, f"the {len(dash_exprs)} PromQL expressions of the dashboards parse",
       [] if r.returncode == 0 else (r.stdout + r.stderr).strip().splitlines())


# ---- metric names, labels and values against README.md ----
families = {}   # name -> (type, {label: [values] or None})
for row in open(os.path.join(tmp, "metrics.rows")):
    cols = [c.strip() for c in row.strip().strip("|").split("|")]
    if len(cols) < 3:
        continue
    name, mtype, labcol = cols[0].strip("`"), cols[1], cols[2]
    labels = {}
    for m in re.finditer(r"`(\w+)`(?:\s*\(([^)]*)\))?", labcol):
        group = m.group(2)
        values = None
        if group is not None and not re.sub(r"`[^`]*`|[,\s]", "", group):
            values = re.findall(r"`([^`]*)`", group)
        labels[m.group(1)] = values
    families[name] = (mtype, labels)
grepped = set(open(os.path.join(tmp, "metrics.names")).read().split())
if grepped != set(families):
    report(False, "README.md metric rows parse", [f"rows not parsed: {sorted(grepped ^ set(families))}"])

TARGET_LABELS = {"region", "cell", "instance", "job"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan"}


def family(name):
    """The README family of a series name, and the suffix it carries."""
    if name in families:
        return name, ""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base, ("",))[0] == "histogram":
            return base, suffix
    return None, ""


def mask_strings(e):
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', e)


def metric_names(expr):
    e = mask_strings(expr)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+-?\w+", " ", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)
    e = re.sub(r'"_*"', " ", e)
    out = []
    for m in re.finditer(r"[A-Za-z_:][\w:]*", e):
        if m.group(0).lower() in KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue
        out.append(m.group(0))
    return out


def selectors(expr):
    """(metric, [(label, op, value)]) for every metric{...} of expr."""
    e = mask_strings(expr)
    for m in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}", e):
        body = expr[m.start(2):m.end(2)]
        yield m.group(1), re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body)


def check_expr(where, expr, problems, used):
    for name in metric_names(expr):
        fam, _ = family(name)
        if fam is None:
            problems.append(f"{where}: {name} is not a metric of README.md")
        else:
            used.add(fam)
    for name, matchers in selectors(expr):
        fam, suffix = family(name)
        if fam is None:
            continue
        labels = families[fam][1]
        for label, op, value in matchers:
            if label in TARGET_LABELS or (label == "le" and suffix == "_bucket"):
                continue
            if label not in labels:
                problems.append(f"{where}: {name} has no label {label!r} in README.md")
                continue
            values = labels[label]
            if values is None or "$" in value:
                continue
            wanted = [value] if op in ("=", "!=") else (
                value.split("|") if re.fullmatch(r"[\w|]+", value) else [])
            for v in wanted:
                if v not in values:
                    problems.append(f"{where}: {name}{{{label}}} has no value {v!r} in README.md ({', '.join(values)})")


problems, used_rules = [], set()
for name, (path, rule) in sorted(rules.items()):
    check_expr(f"{path} {name}", rule["expr"], problems, used_rules)
report(not problems, f"the rules use {len(used_rules)} metric families, all in README.md, with their labels",
       problems)
problems, used_dash = [], set()
for where, expr in dash_exprs:
    check_expr(where, expr, problems, used_dash)
report(not problems, f"the dashboards use {len(used_dash)} metric families, all in README.md, with their labels",
       problems)

sys.exit(1 if failed else 0)
EOF

if [ "$failed" -eq 0 ]; then
	echo "alerts_test: all checks passed"
else
	echo "alerts_test: FAILED"
	exit 1
fi
