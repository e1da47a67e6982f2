#!/bin/sh
# Benchmark of a region's router (HAProxy routing on the key id, fed by
# bin/cell-router): GET /v1/tenant through the region's endpoint against
# the same requests straight to the cell's data plane, in alternated rounds
# of the same run (medians), at BENCH_CONNECTIONS and at 4 connections; and
# the cost of a map update of BENCH_ROUTES keys: how long the router agent
# takes to apply a routes document of that many keys to HAProxy, and the
# p99 of requests through the router while it does, against before.
#   tests/bench/router.sh BINDIR      (also: BENCH_ONLY=router tests/bench/run.sh BINDIR)
# Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64),
# BENCH_ROUTES (100000), BENCH_ROUTER_PORT (19800: the first of 200 ports
# of a private stack of region us: its control plane, endpoint, router
# agent, mover (+15), PostgreSQL, and its data planes from +100).
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*|'') usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
SECS=${BENCH_SECONDS:-5} ROUNDS=${BENCH_ROUNDS:-3} CONNS=${BENCH_CONNECTIONS:-64}
ROUTES=${BENCH_ROUTES:-100000}
BASE=${BENCH_ROUTER_PORT:-19800}
cd "$ROOT"

work=$(mktemp -d /tmp/celltrail-bench-router.XXXXXX)
chmod 0755 "$work"  # the stack's PostgreSQL runs as another user
export STACK_VAR="$work/stack" STACK_REGIONS=us STACK_DP_INSTANCES=1 \
	STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1)) STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 15)) \
	STACK_PG_PORT=$((BASE + 99)) STACK_DP_INSTANCE_PORT=$((BASE + 100))
stopped=""
cleanup() {
	[ -z "$stopped" ] || kill -CONT "$stopped" 2>/dev/null || true
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sh deploy/local/stack.sh start > "$work/stack.log" 2>&1 || { tail -n 20 "$work/stack.log" >&2; exit 1; }
. "$STACK_VAR/stack.env"
set -- $CELLS_us
CELL=$1
eval "DIRECT=\$CELL_URL_$(printf '%s' "$CELL" | tr - _)"
ROUTER=$DP_URL_us

admin() { # METHOD PATH [JSON]: prints the body; fails unless 2xx
	if [ $# -ge 3 ]; then
		curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$3" "$CP_URL$2"
	else
		curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" "$CP_URL$2"
	fi
}
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
sql() { "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$CP_DATABASE_URL" "$@"; }
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" 2>/dev/null || true; }

admin POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
tenant=$(admin POST /v1/tenants "{\"name\":\"Bench\",\"slug\":\"bench-router\",\"region\":\"us\",\"plan\":\"bench-unbound\",\"cell\":\"$CELL\"}" | json_str id)
KEY=$(admin POST "/v1/tenants/$tenant/api-keys" '{"name":"bench","scopes":["events:read"]}' | json_str secret)
n=0
until [ "$(status -H "Authorization: Bearer $KEY" "$ROUTER/v1/tenant")" = 200 ] &&
	[ "$(status -H "Authorization: Bearer $KEY" "$DIRECT/v1/tenant")" = 200 ]; do
	n=$((n + 1))
	[ $n -le 150 ] || { echo "bench: the new key did not work through the router and straight within 30 s" >&2; exit 1; }
	sleep 0.2
done

# One wrk run; prints "req/s p50_ms p99_ms".
measure() { # url connections seconds
	wrk -t2 -c"$2" -d"${3}s" --latency -H "Authorization: Bearer $KEY" "$1/v1/tenant" > "$work/wrk.out" 2>&1
	awk -v url="$1" -v digits=3 -f "$ROOT/tests/bench/wrk.awk" "$work/wrk.out"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { cut -d' ' -f"$2" "$1" | median; }

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hp_pid=$(cat "$STACK_VAR/run/balancer.pid")
dp_pid=$(cat "$STACK_VAR/run/data-plane-$(sh deploy/drivers/local list-instances "$CELL" | head -n 1).pid")
tck=$(getconf CLK_TCK)
# A round through the router, with the CPU HAProxy and the data plane spent
# on it: "req/s p50 p99 haproxy_us_per_request dp_us_per_request".
measure_router() { # connections
	h0=$(cpu_ticks "$hp_pid") d0=$(cpu_ticks "$dp_pid")
	set -- $(measure "$ROUTER" "$1" "$SECS")
	h1=$(cpu_ticks "$hp_pid") d1=$(cpu_ticks "$dp_pid")
	awk -v r="$1" -v a="$2" -v b="$3" -v h=$((h1 - h0)) -v d=$((d1 - d0)) -v s="$SECS" -v t="$tck" \
		'BEGIN { printf "%s %s %s %.1f %.1f\n", r, a, b, h / t * 1e6 / (r * s), d / t * 1e6 / (r * s) }'
}

echo "Router: GET /v1/tenant through the endpoint of region us (HAProxy, map lookup of the key id) vs straight"
echo "to the data plane of cell $CELL; wrk ${SECS}s x $ROUNDS alternated rounds (medians), $(nproc) cores shared by wrk,"
echo "HAProxy and the data plane, loopback"
for c in "$CONNS" 4; do
	: > "$work/router-$c"; : > "$work/direct-$c"
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			measure_router "$c" >> "$work/router-$c"
			measure "$DIRECT" "$c" "$SECS" >> "$work/direct-$c"
		else
			measure "$DIRECT" "$c" "$SECS" >> "$work/direct-$c"
			measure_router "$c" >> "$work/router-$c"
		fi
	done
	awk -v c="$c" -v rr="$(col "$work/router-$c" 1)" -v r50="$(col "$work/router-$c" 2)" -v r99="$(col "$work/router-$c" 3)" \
		-v dr="$(col "$work/direct-$c" 1)" -v d50="$(col "$work/direct-$c" 2)" -v d99="$(col "$work/direct-$c" 3)" \
		-v hc="$(col "$work/router-$c" 4)" -v dc="$(col "$work/router-$c" 5)" 'BEGIN {
		printf "  %2d connections: router %6d req/s p50 %.3f p99 %.3f ms | straight %6d req/s p50 %.3f p99 %.3f ms\n", c, rr, r50, r99, dr, d50, d99
		printf "                  ratio %.2f (target >= 0.7: %s), p99 added %.3f ms (target < 1 ms: %s), p50 added %.3f ms\n",
			rr / dr, (rr / dr >= 0.7 ? "met" : "NOT met"), r99 - d99, (r99 - d99 < 1 ? "met" : "NOT met"), r50 - d50
		printf "                  CPU per request through the router: HAProxy %.1f us, the data plane %.1f us\n", hc, dc }'
done

# A map update of ROUTES keys. The keys belong to tenants of a cell of
# their own that no data plane serves, so that what the window measures
# is the router's work alone (a data plane's cost of a large document is
# the propagation benchmark's): their cell documents do not grow. The
# control plane builds and signs the routes document before the window
# (in production it runs elsewhere); the router agent is held (SIGSTOP)
# from the change until a second into the window.
echo
echo "Map update: a routes document of $ROUTES more keys applied by the router agent to HAProxy, under GET /v1/tenant"
ra=""
for f in "$STACK_VAR"/run/*.pid; do
	p=$(cat "$f")
	[ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = cell-router ] && { ra=$p; break; }
done
[ -n "$ra" ] || { echo "bench: no router agent runs" >&2; exit 1; }
renv() { tr '\0' '\n' < "/proc/$ra/environ" | sed -n "s/^$1=//p"; }
RA_URL="http://$(renv ROUTER_LISTEN)" MAP=$(renv ROUTER_MAP_FILE) SOCK=$(renv ROUTER_HAPROXY_SOCKET)
rmetric() { curl -s --max-time 3 "$RA_URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
sql -c "INSERT INTO cells (name, region, kind, status) VALUES ('us-bench-bulk', 'us', 'shared', 'draining')" > /dev/null
t0=$(date +%s)
sql <<SQL > /dev/null
INSERT INTO tenants (slug, name, region, plan, cell)
  SELECT 'bulk-' || i, 'Bulk ' || i, 'us', 'bench-unbound', 'us-bench-bulk' FROM generate_series(1, $ROUTES) i;
INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes)
  SELECT substr(md5(t.id::text), 1, 24), t.id, 'k', sha256(convert_to(t.id::text, 'UTF8')), ARRAY['events:read']
  FROM tenants t WHERE t.cell = 'us-bench-bulk';
SQL
echo "  $ROUTES tenants and keys inserted in $(($(date +%s) - t0)) s"
before_ver=$(rmetric router_config_version)
upd0=$(rmetric router_map_updates_total) sec0=$(rmetric router_map_update_seconds_total)
idle=$(measure "$ROUTER" 16 10)
kill -STOP "$ra"; stopped=$ra
sql -c "UPDATE regions SET config_version = config_version + 1 WHERE name = 'us'" > /dev/null
want=$(sql -c "SELECT config_version FROM regions WHERE name = 'us'")
t0=$(date +%s%N)
admin GET /v1/regions/us/routes > "$work/routes.jwt"
build_ms=$((($(date +%s%N) - t0) / 1000000))
size=$(wc -c < "$work/routes.jwt")
measure "$ROUTER" 16 10 > "$work/busy" &
wrk_pid=$!
sleep 1
t0=$(date +%s%N)
kill -CONT "$ra"; stopped=""
n=0 file_ms=""
until [ "$(rmetric router_map_updates_total)" -gt "$upd0" ]; do
	[ -n "$file_ms" ] || [ "$(rmetric router_config_version)" != "$want" ] || file_ms=$((($(date +%s%N) - t0) / 1000000))
	n=$((n + 1))
	[ $n -le 1200 ] || { echo "bench: the router agent did not push version $want to HAProxy within 60 s" >&2; exit 1; }
	sleep 0.05
done
apply_ms=$((($(date +%s%N) - t0) / 1000000))
[ -n "$file_ms" ] || file_ms=$apply_ms
wait "$wrk_pid"
busy=$(cat "$work/busy")
upd1=$(rmetric router_map_updates_total) sec1=$(rmetric router_map_update_seconds_total)
in_map=$(printf 'show map %s\n' "$MAP" | socat -t 10 stdio "unix-connect:$SOCK" | grep -c . || true)
routes=$(rmetric router_routes)
set -- $idle; irps=$1 i99=$3
set -- $busy; brps=$1 b99=$3
note=""
[ "$apply_ms" -lt 8000 ] || note=" (WARNING: the update ended after the window)"
awk -v b="$build_ms" -v s="$size" -v a="$apply_ms" -v f="$file_ms" -v u0="$upd0" -v u1="$upd1" -v s0="$sec0" -v s1="$sec1" \
	-v m="$in_map" -v r="$routes" -v v0="$before_ver" -v v="$want" -v ir="$irps" -v i="$i99" -v br="$brps" -v bp="$b99" -v note="$note" 'BEGIN {
	printf "  routes document        %.1f MB; built and signed by the control plane in %d ms, before the window\n", s / 1048576, b
	printf "  router agent           version %s -> %s: map file written %d ms after it resumed (read, verify, cache, file),\n", v0, v, f
	printf "                         HAProxy map committed %d ms after it resumed (runtime API: prepare, add, commit)\n", a
	printf "  map updates            %d, taking %.3f s in all (router_map_update_seconds_total)\n", u1 - u0, s1 - s0
	printf "  HAProxy map            %d entries; router_routes %d\n", m, r
	printf "  GET /v1/tenant via the router, 16 connections, 10 s: before %d req/s p99 %.3f ms; with the update %d req/s p99 %.3f ms (%.2fx)%s\n",
		ir, i, br, bp, bp / i, note }'
