#!/bin/sh
# HTTP benchmarks. Every figure is printed beside a baseline measured in the
# same run: the smallest libmicrohttpd server (tests/bench/hello.c) in the
# same threading mode, or, for the data plane's ingestion, pgbench inserting
# the same rows into the same table. Runs alternate baseline and subject,
# ROUNDS times, and report the median of each, because this machine is small
# and noisy.
#   tests/bench/run.sh BINDIR
# Knobs: BENCH_SECONDS (5), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_ROUNDS (3),
# BENCH_EVENTS (1000000, the listed tenant's events), BENCH_LIST_CONNECTIONS (8),
# BENCH_ONLY=list (only the filters of GET /v1/events, tests/bench/list.sh),
# BENCH_ONLY=feed (only the feed's lag), BENCH_ONLY=export (only the export
# benchmark, tests/bench/export.sh).
# BENCH_ONLY=router (only the regional router, tests/bench/router.sh).
# BENCH_ONLY=move (only a tenant move against pg_dump | psql, tests/bench/move.sh).
# BENCH_ONLY=log (only tamper evidence: ingest with the log on and off, proof
# latency, checkpoint lag; tests/bench/log.sh).
# BENCH_ONLY=streams (only log streams: delivery rate against ingest, and
# delivery lag; tests/bench/streams.sh).
# BENCH_ONLY=delta (only delta cell documents against full ones,
# BENCH_TENANTS tenants, 100000 by default; tests/bench/delta.sh).
# BENCH_ONLY=retention (only retention of events partitioned by week against
# row-by-row deletion, and listings; tests/bench/retention.sh).
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
[ "${BENCH_ONLY:-}" != list ] || exec sh "$ROOT/tests/bench/list.sh" "$BIN"
[ "${BENCH_ONLY:-}" != router ] || exec sh "$ROOT/tests/bench/router.sh" "$BIN"
[ "${BENCH_ONLY:-}" != move ] || exec sh "$ROOT/tests/bench/move.sh" "$BIN"
[ "${BENCH_ONLY:-}" != log ] || exec sh "$ROOT/tests/bench/log.sh" "$BIN"
[ "${BENCH_ONLY:-}" != streams ] || exec sh "$ROOT/tests/bench/streams.sh" "$BIN"
[ "${BENCH_ONLY:-}" != delta ] || exec sh "$ROOT/tests/bench/delta.sh" "$BIN"
[ "${BENCH_ONLY:-}" != retention ] || exec sh "$ROOT/tests/bench/retention.sh" "$BIN"
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-3}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cd "$ROOT"
case ${BENCH_ONLY:-} in export) exec sh tests/bench/export.sh "$BIN" ;; esac

work=$(mktemp -d /tmp/celltrail-bench.XXXXXX)
chmod 0755 "$work"  # the stack's PostgreSQL runs as another user
pids=""
eval "$(sh tests/pgtmp.sh create)"
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	sh tests/pgtmp.sh destroy "$PGTMP_DIR" || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

wait_port() { # port
	n=0
	until curl -fsS -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null; do
		n=$((n + 1)); [ $n -gt 100 ] && { echo "bench: nothing answers on port $1" >&2; exit 1; }
		sleep 0.1
	done
}

# One wrk run; prints "req/s p50_ms p99_ms". Extra wrk arguments may follow.
measure() { # url [wrk args...]
	url=$1; shift
	wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" "$url" > "$work/wrk.out" 2>&1
	awk -v url="$url" -f "$ROOT/tests/bench/wrk.awk" "$work/wrk.out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

HELLO_PORT=18090 CP_PORT=18091 CP_LOG_PORT=18092 CP_API_PORT=18093
export BENCH_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
export CP_DATABASE_URL="$PGTMP_URL" CP_HTTP_THREADS=$THREADS CP_ADMIN_TOKEN="$BENCH_ADMIN_TOKEN" \
	CP_SECRETS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
	CP_SIGNING_KEYS_DIR="$work/keys"
"$BIN/hello-bench" $HELLO_PORT "$THREADS" & pids="$pids $!"
"$BIN/control-plane" migrate >/dev/null 2>&1
CP_LISTEN=127.0.0.1:$CP_PORT CP_ACCESS_LOG=false "$BIN/control-plane" 2>"$work/cp.log" & pids="$pids $!"
CP_LISTEN=127.0.0.1:$CP_LOG_PORT CP_ACCESS_LOG=true "$BIN/control-plane" 2>/dev/null & pids="$pids $!"
# The API is measured as operators run it: default threads, access log on.
env -u CP_HTTP_THREADS CP_LISTEN=127.0.0.1:$CP_API_PORT "$BIN/control-plane" 2>/dev/null & pids="$pids $!"
wait_port $HELLO_PORT; wait_port $CP_PORT; wait_port $CP_LOG_PORT; wait_port $CP_API_PORT

# Feed lag: how long after a commit a follower waiting on
# GET /v1/events/feed?wait= has the event (tests/bench/feed_lag.c), idle
# and with 4 writers committing 10-event batches beside it, and with the
# probe committed through another instance of the region (found by the
# poll), against the probe's own POST latency in the same run. Data planes
# of region jp of their own, on a database of their own. BENCH_ONLY=feed
# runs this part alone.
bench_feed() {
	fport=18096
	fdb="${PGTMP_URL%/*}/celltrail_region_feed"
	fcp=http://127.0.0.1:$CP_API_PORT
	fadmin() { # METHOD PATH JSON: prints the body; fails unless 2xx
		curl -fsS -X "$1" -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" -H 'Content-Type: application/json' \
			-d "$3" "$fcp$2"
	}
	fstr() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" -c "CREATE DATABASE celltrail_region_feed"
	DP_REGION=jp DP_DATABASE_URL="$fdb" DP_CONTROL_PLANE_URL="$fcp" "$BIN/data-plane" migrate \
		> "$work/feed-migrate.log" 2>&1 || { cat "$work/feed-migrate.log" >&2; exit 1; }
	fadmin POST /v1/plans '{"id":"bench-feed","name":"Bench feed","currency":"USD","base_price":0,
		"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
		"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
	ftenant=$(fadmin POST /v1/tenants '{"name":"Bench feed","slug":"bench-feed","region":"jp","plan":"bench-feed"}' | fstr id)
	fkey=$(fadmin POST "/v1/tenants/$ftenant/api-keys" '{"name":"bench","scopes":["events:write","events:read"]}' | fstr secret)
	ftoken=$(fadmin POST /v1/regions/jp/credentials '{}' | fstr token)
	curl -fsS "$fcp/.well-known/jwks.json" > "$work/feed-trust.json"
	# Two instances of the region on the same database: the probe writes
	# through the follower's own instance, then through the other one.
	DP_LOG_KEYS_DIR="$work/feed-log-keys" "$BIN/data-plane" log-jwks >/dev/null # shared by both, made before
	for i in 1 2; do
		mkdir -p "$work/feed-cache$i"
		env DP_REGION=jp DP_DATABASE_URL="$fdb" DP_CONTROL_PLANE_URL="$fcp" DP_INSTANCE=bench-feed-$i \
			DP_REGION_TOKEN="$ftoken" DP_TRUST_BUNDLE="$work/feed-trust.json" DP_CACHE_DIR="$work/feed-cache$i" \
			DP_LOG_KEYS_DIR="$work/feed-log-keys" DP_LISTEN=127.0.0.1:$((fport + i - 1)) DP_HTTP_THREADS=$THREADS DP_ACCESS_LOG=false \
			"$BIN/data-plane" 2> "$work/feed-dp$i.log" &
		pids="$pids $!"
		fpids="${fpids:-} $!"
		n=0
		until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $fkey" "http://127.0.0.1:$((fport + i - 1))/v1/tenant")" = 200 ]; do
			n=$((n + 1))
			[ $n -le 300 ] || { echo "bench: the feed's data plane was not ready in 30 s" >&2; tail -5 "$work/feed-dp$i.log" >&2; exit 1; }
			sleep 0.1
		done
	done
	f1=http://127.0.0.1:$fport f2=http://127.0.0.1:$((fport + 1))
	echo "Feed lag: commit -> seen by a follower waiting on GET /v1/events/feed?wait=5, a probe event every 20 ms, ${SECS}s x $ROUNDS rounds (medians)"
	for run in "idle:$f1:0" "4 writers beside it:$f1:4" "probe via another instance:$f2:0"; do
		label=${run%%:http*} rest=${run#*:}
		wurl=${rest%:*} bg=${rest##*:}
		: > "$work/feed-run"
		for r in $(seq 1 "$ROUNDS"); do
			"$BIN/feed-bench" "$f1" "$wurl" "$fkey" "$SECS" "$bg" >> "$work/feed-run" || exit 1
		done
		fcol() { cut -d' ' -f"$1" "$work/feed-run" | median; }
		printf '  %-28s lag p50 %6s ms  p99 %6s ms (from the 201; from the send: p50 %s, p99 %s)   baseline: the POST itself p50 %s ms, p99 %s ms\n' \
			"$label" "$(fcol 1)" "$(fcol 2)" "$(fcol 3)" "$(fcol 4)" "$(fcol 5)" "$(fcol 6)"
	done
	polls=$(curl -fsS "$f1/metrics" | awk '$1 == "dp_feed_polls_total" { print $2 }')
	echo "  the follower's instance sent $polls poll statements (DP_FEED_POLL_INTERVAL 100ms while a request waits)"
	for p in $fpids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
}
if [ "${BENCH_ONLY:-}" = feed ]; then
	bench_feed
	exit 0
fi

echo "HTTP layer: wrk, $CONNS connections, ${SECS}s x $ROUNDS rounds (medians), $THREADS server threads, loopback, $(nproc) cores"
: > "$work/hello"; : > "$work/cp"; : > "$work/cplog"
for r in $(seq 1 "$ROUNDS"); do
	measure "http://127.0.0.1:$HELLO_PORT/healthz" >> "$work/hello"
	measure "http://127.0.0.1:$CP_PORT/healthz" >> "$work/cp"
	measure "http://127.0.0.1:$CP_LOG_PORT/healthz" >> "$work/cplog"
done

report() { # label file baseline_rps
	rps=$(cut -d' ' -f1 "$2" | median)
	p50=$(cut -d' ' -f2 "$2" | median)
	p99=$(cut -d' ' -f3 "$2" | median)
	if [ -n "$3" ]; then
		ratio=$(awk -v a="$rps" -v b="$3" 'BEGIN { printf "%.2fx baseline", a / b }')
	else
		ratio="(baseline)"
	fi
	printf '  %-44s %9s req/s   p50 %6s ms   p99 %6s ms   %s\n' "$1" "$rps" "$p50" "$p99" "$ratio"
}
base=$(cut -d' ' -f1 "$work/hello" | median)
report "hello-world libmicrohttpd" "$work/hello" ""
report "control-plane GET /healthz" "$work/cp" "$base"
report "control-plane GET /healthz, access log on" "$work/cplog" "$base"

# The control-plane API at 16 concurrent clients: a tenant read and a
# tenant creation (each creation also writes its audit record and raises
# the region's config version, in one transaction). Creations go to region
# "in", which the document benchmark below does not use.
CONNS=16
tenant=$(curl -fsS -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"Bench","slug":"bench-read","region":"eu","plan":"pro"}' \
	"http://127.0.0.1:$CP_API_PORT/v1/tenants" | grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4)
echo
echo "Control-plane API: wrk, $CONNS connections, ${SECS}s x $ROUNDS rounds (medians), default settings"
: > "$work/hello16"; : > "$work/get"; : > "$work/post"
for r in $(seq 1 "$ROUNDS"); do
	measure "http://127.0.0.1:$HELLO_PORT/healthz" >> "$work/hello16"
	measure "http://127.0.0.1:$CP_API_PORT/v1/tenants/$tenant" \
		-H "Authorization: Bearer $BENCH_ADMIN_TOKEN" >> "$work/get"
	measure "http://127.0.0.1:$CP_API_PORT" -s "$ROOT/tests/bench/post_tenant.lua" >> "$work/post"
done
base=$(cut -d' ' -f1 "$work/hello16" | median)
report "hello-world libmicrohttpd" "$work/hello16" ""
report "control-plane GET /v1/tenants/{id}" "$work/get" "$base"
report "control-plane POST /v1/tenants" "$work/post" "$base"
p99=$(cut -d' ' -f3 "$work/get" | median)
awk -v p="$p99" 'BEGIN { printf "  target GET p99 < 10 ms: %s\n", (p < 10 ? "met" : "NOT met") }'

# A region of 100,000 tenants with 3 keys each: the control plane builds,
# signs and stores its document once per version; a data plane verifies
# and indexes it. The first fetch after a change includes build and sign;
# the second is served from the control plane's cache.
TENANTS=${BENCH_TENANTS:-100000}
echo
# The tenants go to one cell by name: placed one by one by the rule,
# each row would count its cell's tenants (see the README's Cells).
echo "Regional document: $TENANTS tenants x 3 keys in region eu"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" <<SQL
INSERT INTO tenants (slug, name, region, plan, cell)
  SELECT 'bulk-' || i, 'Bulk ' || i, 'eu', 'pro', c.name FROM generate_series(1, $TENANTS) i,
         (SELECT min(name) AS name FROM cells WHERE region = 'eu' AND status = 'active') c;
INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes)
  SELECT substr(md5(t.id::text || k), 1, 24), t.id, 'k' || k,
         sha256(convert_to(t.id::text || k, 'UTF8')), ARRAY['events:read', 'events:write']
  FROM tenants t, generate_series(1, 3) k WHERE t.slug LIKE 'bulk-%';
UPDATE regions SET config_version = config_version + 1 WHERE name = 'eu';
SQL
cfg="http://127.0.0.1:$CP_API_PORT/v1/regions/eu/config"
build=$(curl -fsS -o "$work/doc.jwt" -w '%{time_total}' -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" "$cfg")
cached=$(curl -fsS -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" "$cfg")
curl -fsS "http://127.0.0.1:$CP_API_PORT/.well-known/jwks.json" > "$work/trust.json"
size=$(wc -c < "$work/doc.jwt")
set -- $("$BIN/cfgdoc-bench" "$work/doc.jwt" "$work/trust.json" eu 3)
awk -v b="$build" -v c="$cached" -v s="$size" -v v="$1" -v held="$2" -v peak="$3" -v t="$4" -v k="$5" 'BEGIN {
	printf "  document                       %.1f MB (%d tenants, %d keys)\n", s / 1048576, t, k
	printf "  control plane build+sign+store %.2f s   (target < 2 s: %s)\n", b, (b < 2 ? "met" : "NOT met")
	printf "  control plane cached fetch     %.3f s   (%.0fx faster than building)\n", c, b / c
	printf "  data plane verify+apply        %.2f s   (target < 1 s: %s)\n", v, (v < 1 ? "met" : "NOT met")
	printf "  memory of the applied tables   %d MB held, %d MB peak RSS of the verifier\n", held, peak
}'

# The whole local stack, in a directory of its own: how fast a change
# reaches every region, and what applying a large document costs the
# tenant requests a data plane is serving at the time.
echo
echo "Propagation and apply: a private local stack (control plane + us, eu, jp)"
export STACK_VAR="$work/stack" STACK_PG_PORT=${BENCH_STACK_PG_PORT:-18399}
export STACK_CP_PORT=18300 STACK_DP_BASE_PORT=18301 STACK_ROUTER_PORT=18310 STACK_MOVER_PORT=18315 STACK_DP_INSTANCE_PORT=18320
stack_down() { sh "$ROOT/deploy/local/stack.sh" stop >/dev/null 2>&1 || true; }
trap 'stack_down; cleanup' EXIT INT TERM
sh "$ROOT/deploy/local/stack.sh" start > "$work/stack.log" 2>&1 || { tail -20 "$work/stack.log"; exit 1; }
. "$STACK_VAR/stack.env"
EU_DP=data-plane-$(sh "$ROOT/deploy/drivers/local" list-instances eu-west-1 | head -n 1)  # eu's one data plane
set -- $("$BIN/propagation-bench" "$CP_URL" "$ADMIN_TOKEN" 100 "$DP_URL_us" "$DP_URL_eu" "$DP_URL_jp")
awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {
	printf "  change -> applied in all 3 regions, 100 changes: p50 %.0f ms, p99 %.0f ms, max %.0f ms (target p99 < 1 s: %s)\n", a, b, c, (b < 1000 ? "met" : "NOT met") }'

"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$CP_DATABASE_URL" <<SQL
INSERT INTO tenants (slug, name, region, plan, cell)
  SELECT 'bulk-' || i, 'Bulk ' || i, 'eu', 'pro', c.name FROM generate_series(1, $TENANTS) i,
         (SELECT min(name) AS name FROM cells WHERE region = 'eu' AND status = 'active') c;
INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes)
  SELECT substr(md5(t.id::text || k), 1, 24), t.id, 'k' || k,
         sha256(convert_to(t.id::text || k, 'UTF8')), ARRAY['events:read', 'events:write']
  FROM tenants t, generate_series(1, 3) k WHERE t.slug LIKE 'bulk-%';
SQL
bump_eu() { "$PG_BIN/psql" -X -q "$CP_DATABASE_URL" -c "UPDATE regions SET config_version = config_version + 1 WHERE name = 'eu'" >/dev/null; }
eu_version() { curl -fsS "$DP_URL_eu/readyz" | grep -o '"config_version":[0-9]*' | cut -d: -f2; }
bump_eu
want=$("$PG_BIN/psql" -X -tA "$CP_DATABASE_URL" -c "SELECT config_version FROM regions WHERE name = 'eu'")
t0=$(date +%s.%N)
until [ "$(eu_version)" -ge "$want" ] 2>/dev/null; do
	sleep 0.05
	[ "$(date +%s)" -lt "$(( ${t0%.*} + 60 ))" ] || { echo "bench: eu did not apply version $want" >&2; exit 1; }
done
t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$(cat "$STACK_VAR/run/$EU_DP.pid")/status")
awk -v a="$t0" -v b="$t1" -v r="$rss" -v t="$TENANTS" 'BEGIN {
	printf "  eu with %d tenants: change -> applied %.2f s (build, sign, transfer, verify, apply); data plane RSS %d MB\n", t, b - a, r }'

CONNS=16
measure_tenant() { measure "$DP_URL_eu/v1/tenant" -H "Authorization: Bearer $DEMO_KEY_eu"; }
# One apply in the measured window. The control plane builds and signs the
# document first (an admin fetch, before the window): in production it
# runs elsewhere, and on this 2-core machine its 1.6 s of signing would be
# measured as the data plane's. The data plane's transfer, verification
# and swap fall inside the window.
SECS=$(( SECS > 8 ? SECS : 8 ))
idle=$(measure_tenant)
before=$(eu_version)
bump_eu
curl -fsS -o /dev/null -H "Authorization: Bearer $ADMIN_TOKEN" "$CP_URL/v1/regions/eu/config"
busy=$(measure_tenant)
window_note=""
if [ "$(eu_version)" -le "$before" ]; then
	# Honest about it: this window held no apply, so its p99 says nothing.
	window_note=" (WARNING: the apply finished after the window; the figure measured none)"
	grep -v '"level":"info"' "$STACK_VAR/log/$EU_DP.log" | tail -3 >&2
fi
set -- $idle; i99=$3; irps=$1
set -- $busy; b99=$3; brps=$1
awk -v i="$i99" -v b="$b99" -v ir="$irps" -v br="$brps" -v note="$window_note" 'BEGIN {
	printf "  GET /v1/tenant, 16 connections: idle %s req/s p99 %.2f ms; during one apply %s req/s p99 %.2f ms (%.2fx; target < 2x: %s)%s\n", ir, i, br, b, b / i, (b < 2 * i ? "met" : "NOT met"), note }'

# The data plane's tenant API in region us, served by a data plane of its
# own from the control plane above (the private stack is stopped first),
# over a regional database in the bench's cluster. Its tenants are on a
# plan whose rate limit and quota never bind, so the figures are the data
# plane's own cost. Each is measured beside a baseline in the same run,
# alternating: hello-world for the HTTP routes, and for ingestion pgbench
# inserting the same rows (same columns, same body size, new random ids)
# into the same table of the same database at the same concurrency.
stack_down
trap cleanup EXIT INT TERM
SECS=${BENCH_SECONDS:-5} CONNS=${BENCH_CONNECTIONS:-64}
WRITE_CONNS=$CONNS
LIST_CONNS=${BENCH_LIST_CONNECTIONS:-8} BATCH=100 EVENTS=${BENCH_EVENTS:-1000000}
DP_PORT=18094
DP_URL=http://127.0.0.1:$DP_PORT CP_API=http://127.0.0.1:$CP_API_PORT
RDB_URL="${PGTMP_URL%/*}/celltrail_region_us"
sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$RDB_URL" "$@"; }
admin() { # METHOD PATH JSON: prints the body; fails unless 2xx
	curl -fsS -X "$1" -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" -H 'Content-Type: application/json' \
		-d "$3" "$CP_API$2"
}
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
# One request that must be answered with STATUS: a benchmark measures
# only what it meant to.
expect() { # status curl-args...
	want=$1; shift
	got=$(curl -sS -o "$work/answer" -w '%{http_code}' "$@")
	[ "$got" = "$want" ] && return 0
	echo "bench: the data plane answered $got, not $want: $(head -c 600 "$work/answer")" >&2
	exit 1
}
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" -c "CREATE DATABASE celltrail_region_us"
DP_REGION=us DP_DATABASE_URL="$RDB_URL" DP_CONTROL_PLANE_URL="$CP_API" "$BIN/data-plane" migrate \
	> "$work/dp-migrate.log" 2>&1 || { cat "$work/dp-migrate.log" >&2; exit 1; }
admin POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
new_tenant() { # slug: prints "tenant-id api-key"
	id=$(admin POST /v1/tenants "{\"name\":\"Bench\",\"slug\":\"$1\",\"region\":\"us\",\"plan\":\"bench-unbound\"}" | json_str id)
	key=$(admin POST "/v1/tenants/$id/api-keys" '{"name":"bench","scopes":["events:read","events:write"]}' | json_str secret)
	[ -n "$id" ] && [ -n "$key" ] || { echo "bench: could not create tenant $1 and its key" >&2; exit 1; }
	echo "$id $key"
}
set -- $(new_tenant bench-dp-write); WTENANT=$1 WKEY=$2
set -- $(new_tenant bench-dp-read); RTENANT=$1 RKEY=$2
region_token=$(admin POST /v1/regions/us/credentials '{}' | json_str token)
curl -fsS "$CP_API/.well-known/jwks.json" > "$work/dp-trust.json"
mkdir -p "$work/dp-cache"
DP_LOG_KEYS_DIR="$work/log-keys" "$BIN/data-plane" log-jwks >/dev/null # the log key ring, before any data plane starts
env DP_REGION=us DP_DATABASE_URL="$RDB_URL" DP_CONTROL_PLANE_URL="$CP_API" \
	DP_REGION_TOKEN="$region_token" DP_TRUST_BUNDLE="$work/dp-trust.json" DP_CACHE_DIR="$work/dp-cache" \
	DP_LOG_KEYS_DIR="$work/log-keys" DP_LISTEN=127.0.0.1:$DP_PORT DP_HTTP_THREADS=$THREADS DP_ACCESS_LOG=false \
	"$BIN/data-plane" 2> "$work/dp.log" & pids="$pids $!"
n=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$DP_URL/readyz")" = 200 ]; do
	n=$((n + 1))
	[ $n -le 300 ] || { echo "bench: the data plane was not ready in 30 s" >&2; tail -5 "$work/dp.log" >&2; exit 1; }
	sleep 0.1
done
expect 200 -H "Authorization: Bearer $WKEY" "$DP_URL/v1/tenant"

# The baselines insert the row the data plane stored for a sample event
# (the one wrk sends), each with a new random id spliced into its body: 1
# or 100 rows per statement, one statement per transaction.
export BENCH_API_KEY="$WKEY" BENCH_ACTORS=100
export BENCH_EVENT='{"action":"document.update","actor":{"id":"user_42","type":"user","name":"Bench User"},'\
'"targets":[{"id":"doc_7","type":"document"}],"context":{"ip":"203.0.113.7","user_agent":"celltrail-bench/1.0"},'\
'"metadata":{"field":"title","old":"Draft","new":"Final"}}'
event=$BENCH_EVENT
expect 201 -H "Authorization: Bearer $WKEY" -H 'Content-Type: application/json' -d "$event" "$DP_URL/v1/events"
sample=$(json_str id < "$work/answer")
baseline_sql() { # rows
	sql -tA -v tenant="$WTENANT" -v id="$sample" -v rows="$1" <<'SQL'
SELECT format($f$INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id,
                    target_ids, content_sha256, body)
SELECT %L::uuid, e.id, now(), now(), %L, %L, %L::text[], %L::bytea, (%L || e.id || %L)::json
FROM (SELECT 'pg_' || replace(gen_random_uuid()::text, '-', '') AS id
      FROM generate_series(1, %s)) e;$f$,
       tenant_id, action, actor_id, target_ids, content_sha256,
       split_part(body::text, id, 1), split_part(body::text, id, 2), :'rows')
FROM events WHERE tenant_id = :'tenant' AND id = :'id'
SQL
}
baseline_sql 1 > "$work/insert1.sql"
baseline_sql $BATCH > "$work/insert$BATCH.sql"
[ -s "$work/insert1.sql" ] || { echo "bench: the sample event $sample is not in the events table" >&2; exit 1; }
# pgbench at the same concurrency as wrk; prints "transactions/s latency_ms".
pgbench_run() { # script
	"$PG_BIN/pgbench" -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -f "$1" "$RDB_URL" > "$work/pgbench.out" 2>&1 &&
		! grep -q 'failed transactions: [1-9]' "$work/pgbench.out" ||
		{ echo "bench: pgbench failed:" >&2; tail -5 "$work/pgbench.out" >&2; exit 1; }
	awk '/^tps = / { tps = $3 } /^latency average/ { lat = $4 } END { printf "%.0f %.2f\n", tps, lat }' \
		"$work/pgbench.out"
}
answered() { awk '/requests in/ { print $1 }' "$work/wrk.out"; }
# After wrk stops, the data plane still commits the requests in flight:
# the next run starts once its count has stopped moving.
settle() {
	count() { sql -tA -c "SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '$WTENANT'"; }
	before=-1 now=$(count)
	while [ "$now" != "$before" ]; do sleep 0.2; before=$now; now=$(count); done
}

echo
echo "Data plane (region us): wrk and pgbench, ${SECS}s x $ROUNDS rounds (medians), $THREADS server threads,"
echo "default ingest settings, regional database in the bench's cluster (fsync on, synchronous_commit on)"
: > "$work/dp-hello"; : > "$work/dp-tenant"; : > "$work/dp-pg1"; : > "$work/dp-post1"
: > "$work/dp-pgn"; : > "$work/dp-postn"; : > "$work/dp-hello8"; : > "$work/dp-list"; : > "$work/dp-answered"
for r in $(seq 1 "$ROUNDS"); do
	measure "http://127.0.0.1:$HELLO_PORT/healthz" >> "$work/dp-hello"
	measure "$DP_URL/v1/tenant" -H "Authorization: Bearer $WKEY" >> "$work/dp-tenant"
done
for r in $(seq 1 "$ROUNDS"); do
	pgbench_run "$work/insert1.sql" >> "$work/dp-pg1"
	BENCH_BATCH=1 measure "$DP_URL" -s "$ROOT/tests/bench/post_events.lua" >> "$work/dp-post1"
	answered >> "$work/dp-answered"
	settle
done
expect 201 -H "Authorization: Bearer $WKEY" -H 'Content-Type: application/json' \
	-d "{\"events\":[$event,$event]}" "$DP_URL/v1/events"
for r in $(seq 1 "$ROUNDS"); do
	pgbench_run "$work/insert$BATCH.sql" >> "$work/dp-pgn"
	BENCH_BATCH=$BATCH measure "$DP_URL" -s "$ROOT/tests/bench/post_events.lua" >> "$work/dp-postn"
	answered | awk -v n=$BATCH '{ print $1 * n }' >> "$work/dp-answered"
	settle
done
# Every answered event must be stored (requests in flight when wrk stops
# may be stored and not counted by wrk), and counted for usage: both are
# read in one snapshot, as the last requests may still be committing.
set -- $(sql -tA -F ' ' -c "SELECT (SELECT count(*) FROM events WHERE tenant_id = '$WTENANT' AND id LIKE 'ev\_%'),
	(SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '$WTENANT')")
stored=$1 counted=$2
answered=$(awk '{ s += $1 } END { print s + 3 }' "$work/dp-answered")  # + the samples
[ "$stored" -ge "$answered" ] ||
	echo "  WARNING: the data plane answered 201 for $answered events and stored $stored" >&2
[ "$counted" = "$stored" ] ||
	echo "  WARNING: the data plane stored $stored events and counted $counted in usage_counters" >&2

# The listing reads a tenant of EVENTS events by 100 actors, one a second
# back from now, loaded with SQL in two sessions (one a core): each row's
# body is the sample's, with its id, times, action, actor and target
# replaced.
cat > "$work/load.sql" <<'SQL'
INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,
                    content_sha256, body)
SELECT :'tenant'::uuid, e.id, e.at, e.at, e.action, e.actor, ARRAY[e.target],
       sha256(convert_to(e.id, 'UTF8')),
       replace(replace(replace(replace(replace(replace(s.body, s.id, e.id),
           s.occurred, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
           s.received, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
           to_json(s.action)::text, to_json(e.action)::text),
           to_json(s.actor_id)::text, to_json(e.actor)::text),
           to_json(s.target_ids[1])::text, to_json(e.target)::text)::json
FROM (SELECT id, body::text AS body, action, actor_id, target_ids,
             to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred,
             to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received
      FROM events WHERE tenant_id = :'wtenant' AND id = :'id') s,
     (SELECT 'ev_' || md5(i::text) AS id, now() - i * interval '1 second' AS at,
             'document.' || (ARRAY['create', 'read', 'update', 'share', 'delete'])[i % 5 + 1] AS action,
             'user_' || i % 100 AS actor, 'doc_' || i % 10000 AS target
      FROM generate_series(:lo, :hi) i) e;
SQL
load() { sql -v tenant="$RTENANT" -v wtenant="$WTENANT" -v id="$sample" -v lo="$1" -v hi="$2" -f "$work/load.sql"; }
t0=$(date +%s)
load 1 $((EVENTS / 2)) & l1=$!
load $((EVENTS / 2 + 1)) "$EVENTS" & l2=$!
wait $l1 && wait $l2 || { echo "bench: loading the events failed" >&2; exit 1; }
sql -c 'VACUUM ANALYZE events' -c 'CHECKPOINT'
load_s=$(( $(date +%s) - t0 ))
expect 200 -H "Authorization: Bearer $RKEY" "$DP_URL/v1/events?actor=user_7&limit=100"
listed=$(grep -o '"received_at"' "$work/answer" | wc -l)
[ "$listed" = 100 ] || { echo "bench: the listing returned $listed events, not 100" >&2; exit 1; }
CONNS=$LIST_CONNS
export BENCH_API_KEY="$RKEY"
for r in $(seq 1 "$ROUNDS"); do
	measure "http://127.0.0.1:$HELLO_PORT/healthz" >> "$work/dp-hello8"
	measure "$DP_URL" -s "$ROOT/tests/bench/get_events.lua" >> "$work/dp-list"
done

col() { cut -d' ' -f"$2" "$1" | median; } # file field
row() { # subject figure unit baseline figure unit ratio target verdict
	printf '  %-42s %9s %-8s  %-37s %9s %-8s %6s  %-9s %s\n' "$@"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
verdict() { awk "BEGIN { if ($1) print \"met\"; else print \"NOT met\" }"; }
t=$(col "$work/dp-tenant" 1) h=$(col "$work/dp-hello" 1)
p1=$(col "$work/dp-post1" 1) g1=$(col "$work/dp-pg1" 1)
pn=$(( $(col "$work/dp-postn" 1) * BATCH )) gn=$(( $(col "$work/dp-pgn" 1) * BATCH ))
l50=$(col "$work/dp-list" 2) l99=$(col "$work/dp-list" 3) lrps=$(col "$work/dp-list" 1)
h99=$(col "$work/dp-hello8" 3)
row "subject" "figure" "" "baseline, same run" "figure" "" "ratio" "target" ""
row "GET /v1/tenant, $WRITE_CONNS conns" "$t" "req/s" "hello-world, $WRITE_CONNS conns" "$h" "req/s" \
	"$(ratio "$t" "$h")" ">= 0.75x" "$(verdict "$t >= 0.75 * $h")"
row "POST /v1/events, 1 event, $WRITE_CONNS conns" "$p1" "req/s" "pgbench 1-row INSERT, $WRITE_CONNS clients" "$g1" "tx/s" \
	"$(ratio "$p1" "$g1")" ">= 1x" "$(verdict "$p1 >= $g1")"
row "POST /v1/events, $BATCH events, $WRITE_CONNS conns" "$pn" "events/s" "pgbench $BATCH-row INSERT, $WRITE_CONNS clients" "$gn" "rows/s" \
	"$(ratio "$pn" "$gn")" ">= 0.6x" "$(verdict "$pn >= 0.6 * $gn")"
row "GET /v1/events?actor=..&limit=100, $LIST_CONNS conns" "$l99" "ms p99" "hello-world, $LIST_CONNS conns" "$h99" "ms p99" \
	"-" "< 20 ms" "$(verdict "$l99 < 20")"
printf '  latency p50 / p99 (ms): GET /v1/tenant %s / %s; POST 1 event %s / %s; POST %s events %s / %s\n' \
	"$(col "$work/dp-tenant" 2)" "$(col "$work/dp-tenant" 3)" "$(col "$work/dp-post1" 2)" "$(col "$work/dp-post1" 3)" \
	"$BATCH" "$(col "$work/dp-postn" 2)" "$(col "$work/dp-postn" 3)"
printf '  pgbench latency average (ms): 1-row %s; %s-row %s\n' "$(col "$work/dp-pg1" 2)" "$BATCH" "$(col "$work/dp-pgn" 2)"
printf '  listing: %s conns, %s req/s, p50 %s ms, p99 %s ms; tenant of %s events by 100 actors (loaded by SQL in %s s)\n' \
	"$LIST_CONNS" "$lrps" "$l50" "$l99" "$EVENTS" "$load_s"

bench_feed

# The export of a tenant of BENCH_EVENTS events beside COPY, and memory.
echo
sh "$ROOT/tests/bench/export.sh" "$BIN"

# The filters of GET /v1/events, on a cluster of their own.
echo
sh "$ROOT/tests/bench/list.sh" "$BIN"

# The regional router against the cell's data plane, and a map update of
# 100,000 keys, on a private stack of their own.
echo
sh "$ROOT/tests/bench/router.sh" "$BIN"

# A tenant move against pg_dump | psql of the same rows, on a private
# stack of its own.
echo
sh "$ROOT/tests/bench/move.sh" "$BIN"

# Tamper evidence: ingest with the log on and off, proofs and checkpoint
# lag, on a cluster of its own.
echo
sh "$ROOT/tests/bench/log.sh" "$BIN"

# Log streams: delivery to a webhook against ingest, and delivery lag, on
# a private stack of its own.
echo
sh "$ROOT/tests/bench/streams.sh" "$BIN"

# Delta cell documents against full ones (a control plane and a cell's
# data plane of their own), and a data plane's cost per change in
# process (delta-bench), at BENCH_TENANTS tenants x 3 keys.
echo
sh "$ROOT/tests/bench/delta.sh" "$BIN"
set -- $("$BIN/delta-bench" "${BENCH_TENANTS:-100000}" 50)
awk -v fb="$1" -v fa="$2" -v fby="$3" -v d50="$4" -v d99="$5" -v dby="$6" -v db99="$7" -v rf="$8" -v rl="$9" -v lf="${10}" -v ll="${11}" 'BEGIN {
	printf "delta-bench (in process): full document %.0f MB built %.2f s, verified+applied %.2f s (the baseline: one per change); a one-key delta (%d bytes) verified+applied p50 %.3f ms, p99 %.3f ms (%.0fx faster than the full), signed p99 %.2f ms; applied tables %d MB, %d MB more after 50 deltas; key lookup %s ns on the full state, %s ns on the layered one\n",
	fby / 1048576, fb, fa, dby, d50, d99, fa * 1000 / d99, db99, rf, rl, lf, ll }' 

# Retention of events partitioned by week against row-by-row deletion of
# the same rows, and listings in a partitioned and an unpartitioned cell.
echo
sh "$ROOT/tests/bench/retention.sh" "$BIN"
