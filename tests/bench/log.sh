#!/bin/sh
# Tamper-evidence benchmark: what the log costs and how fast it answers.
#   1. Ingest, POST /v1/events of 1 event and of 100, with DP_LOG=on against
#      the same run with DP_LOG=off: two data planes side by side, one per
#      region (us: the log on; jp: off), each region's database in the same
#      cluster, measured alternately (the order swapped every round), the
#      medians and their ratio (goal >= 0.9x).
#   2. Checkpoint lag, commit -> covered by a signed checkpoint: a probe
#      (tests/bench/log_lag.py) posts an event, then polls GET
#      /v1/checkpoints/latest every 5 ms from the 201 until it covers the
#      event; p50/p99 idle, and while wrk posts single events of another
#      tenant to the same instance.
#   3. Proof latency: GET /v1/events/{id}/proof of random events of a
#      tenant of BENCH_LOG_EVENTS events (100,000; loaded with SQL, then
#      appended by the appender), and GET /v1/checkpoints/consistency from
#      a random size to the latest, against GET /v1/events/{id} of the
#      same random events in the same run.
#   tests/bench/log.sh BINDIR
# Run alone (BENCH_ONLY=log tests/bench/run.sh BINDIR does the same): it
# makes its own PostgreSQL, control plane and data planes. Knobs: those of
# run.sh (BENCH_SECONDS 5, BENCH_CONNECTIONS 64, BENCH_ROUNDS 3,
# BENCH_THREADS 2), BENCH_LOG_EVENTS (100000), BENCH_LOG_PARTS (which of
# "ingest lag proofs" to run: all).
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-2}
EVENTS=${BENCH_LOG_EVENTS:-100000}
PARTS=${BENCH_LOG_PARTS:-ingest lag proofs}
BATCH=100
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
cd "$ROOT"

work=$(mktemp -d /tmp/celltrail-bench-log.XXXXXX)
chmod 0755 "$work"
pids=""
eval "$(sh tests/pgtmp.sh create)"
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	sh tests/pgtmp.sh destroy "$PGTMP_DIR" || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

CP_PORT=18290 ON_PORT=18291 OFF_PORT=18292
CP_API=http://127.0.0.1:$CP_PORT ON_URL=http://127.0.0.1:$ON_PORT OFF_URL=http://127.0.0.1:$OFF_PORT
ADMIN=bench-admin-token-0123456789abcdef
db_of() { echo "${PGTMP_URL%/*}/celltrail_region_$1"; }  # region
sql() { _r=$1; shift; "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$(db_of "$_r")" "$@"; }  # region psql-args...
admin() { curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$3" "$CP_API$2"; }
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
wait_url() { # url [header]
	n=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' ${2:+-H "$2"} "$1")" = 200 ]; do
		n=$((n + 1)); [ $n -le 300 ] || { echo "bench: $1 did not answer 200 in 30 s" >&2; exit 1; }
		sleep 0.1
	done
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { cut -d' ' -f"$2" "$1" | median; }  # file field
measure() { # url [wrk args...]: "req/s p50_ms p99_ms"
	url=$1; shift
	wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" "$url" > "$work/wrk.out" 2>&1
	awk -v url="$url" -f "$ROOT/tests/bench/wrk.awk" "$work/wrk.out"
}

export CP_DATABASE_URL="$PGTMP_URL" CP_ADMIN_TOKEN="$ADMIN" CP_SIGNING_KEYS_DIR="$work/keys" \
	CP_SECRETS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"$BIN/control-plane" migrate >/dev/null 2>&1
CP_LISTEN=127.0.0.1:$CP_PORT CP_ACCESS_LOG=false "$BIN/control-plane" 2>"$work/cp.log" & pids="$pids $!"
wait_url "$CP_API/healthz"
admin POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
curl -fsS "$CP_API/.well-known/jwks.json" > "$work/trust.json"
# Tenants: W_<region> written by the ingest runs, L the idle lag probe's,
# P the proofs' (us only).
new_tenant() { # slug region: prints "id key"
	_id=$(admin POST /v1/tenants "{\"name\":\"Bench\",\"slug\":\"$1\",\"region\":\"$2\",\"plan\":\"bench-unbound\"}" | json_str id)
	_key=$(admin POST "/v1/tenants/$_id/api-keys" '{"name":"bench","scopes":["events:write","events:read"]}' | json_str secret)
	[ -n "$_id" ] && [ -n "$_key" ] || { echo "bench: could not create tenant $1" >&2; exit 1; }
	echo "$_id $_key"
}
set -- $(new_tenant bench-log-on-1 us); W_us_1=$1 K_us_1=$2
set -- $(new_tenant bench-log-off-1 jp); W_jp_1=$1 K_jp_1=$2
set -- $(new_tenant bench-log-on-n us); W_us_n=$1 K_us_n=$2
set -- $(new_tenant bench-log-off-n jp); W_jp_n=$1 K_jp_n=$2
set -- $(new_tenant bench-log-lag us); LT=$1 LK=$2
set -- $(new_tenant bench-log-proofs us); PT=$1 PK=$2

# One data plane per region: us with the log (its key ring made by the
# first start), jp without.
start_dp() { # region port VAR=value...
	_r=$1 _p=$2; shift 2
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" -c "CREATE DATABASE celltrail_region_$_r"
	DP_REGION=$_r DP_DATABASE_URL="$(db_of "$_r")" DP_CONTROL_PLANE_URL="$CP_API" DP_LOG=off "$BIN/data-plane" migrate \
		> "$work/migrate-$_r.log" 2>&1 || { cat "$work/migrate-$_r.log" >&2; exit 1; }
	_tok=$(admin POST "/v1/regions/$_r/credentials" '{}' | json_str token)
	mkdir -p "$work/cache-$_r"
	env DP_REGION=$_r DP_DATABASE_URL="$(db_of "$_r")" DP_CONTROL_PLANE_URL="$CP_API" DP_REGION_TOKEN="$_tok" \
		DP_TRUST_BUNDLE="$work/trust.json" DP_CACHE_DIR="$work/cache-$_r" DP_LISTEN=127.0.0.1:$_p \
		DP_HTTP_THREADS=$THREADS DP_ACCESS_LOG=false "$@" "$BIN/data-plane" 2> "$work/dp-$_r.log" &
	pids="$pids $!"
	eval "DP_PID_$_r=\$!"
}
start_dp us $ON_PORT DP_LOG=on DP_LOG_KEYS_DIR="$work/logkeys"
start_dp jp $OFF_PORT DP_LOG=off
wait_url "$ON_URL/v1/tenant" "Authorization: Bearer $K_us_n"
wait_url "$OFF_URL/v1/tenant" "Authorization: Bearer $K_jp_n"
wait_url "$ON_URL/v1/tenant" "Authorization: Bearer $PK"

export BENCH_EVENT='{"action":"document.update","actor":{"id":"user_42","type":"user","name":"Bench User"},'\
'"targets":[{"id":"doc_7","type":"document"}],"context":{"ip":"203.0.113.7","user_agent":"celltrail-bench/1.0"},'\
'"metadata":{"field":"title","old":"Draft","new":"Final"}}'
# After wrk stops, the data plane still commits the requests in flight:
# the next run starts once the count has stopped moving (and, with the
# log, once the appender has caught up, so that a run does not pay for
# the one before it).
stored() { sql "$1" -tA -c "SELECT count(*) FROM events WHERE tenant_id = '$2'"; }  # region tenant
appended() { sql us -tA -c "SELECT coalesce((SELECT tree_size FROM log_heads WHERE tenant_id = '$1'), 0)"; }  # tenant
settle() { # region tenant
	_b=-1 _n=$(stored "$1" "$2")
	while [ "$_n" != "$_b" ]; do sleep 0.2; _b=$_n _n=$(stored "$1" "$2"); done
	if [ "$1" = us ]; then
		_i=0
		while [ "$(appended "$2")" -lt "$_n" ]; do
			_i=$((_i + 1)); [ $_i -le 600 ] || { echo "bench: the appender did not catch up in 120 s" >&2; exit 1; }
			sleep 0.2
		done
	fi
}
ingest() { # region batch: one tenant per region and batch size
	_s=n; [ "$2" = 1 ] && _s=1
	if [ "$1" = us ]; then _u=$ON_URL; else _u=$OFF_URL; fi
	eval "_k=\$K_$1_$_s _t=\$W_$1_$_s"
	BENCH_API_KEY=$_k BENCH_BATCH=$2 measure "$_u" -s "$ROOT/tests/bench/post_events.lua"
	settle "$1" "$_t"
}

part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if part ingest; then
echo "Tamper evidence: wrk, $CONNS connections, ${SECS}s x $ROUNDS rounds (medians, order alternated), $THREADS server threads, $(nproc) cores"
for b in 1 $BATCH; do
	: > "$work/on$b"; : > "$work/off$b"
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			ingest us $b >> "$work/on$b"; ingest jp $b >> "$work/off$b"
		else
			ingest jp $b >> "$work/off$b"; ingest us $b >> "$work/on$b"
		fi
	done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
verdict() { awk "BEGIN { if ($1) print \"met\"; else print \"NOT met\" }"; }
on1=$(col "$work/on1" 1) off1=$(col "$work/off1" 1)
onn=$(( $(col "$work/on$BATCH" 1) * BATCH )) offn=$(( $(col "$work/off$BATCH" 1) * BATCH ))
printf '  %-40s %9s %-9s p50 %6s ms p99 %6s ms   DP_LOG=off %9s %-9s p50 %6s ms p99 %6s ms   %s (goal >= 0.9x: %s)\n' \
	"POST /v1/events, 1 event, DP_LOG=on" "$on1" "req/s" "$(col "$work/on1" 2)" "$(col "$work/on1" 3)" \
	"$off1" "req/s" "$(col "$work/off1" 2)" "$(col "$work/off1" 3)" "$(ratio "$on1" "$off1")" "$(verdict "$on1 >= 0.9 * $off1")"
printf '  %-40s %9s %-9s p50 %6s ms p99 %6s ms   DP_LOG=off %9s %-9s p50 %6s ms p99 %6s ms   %s (goal >= 0.9x: %s)\n' \
	"POST /v1/events, $BATCH events, DP_LOG=on" "$onn" "events/s" "$(col "$work/on$BATCH" 2)" "$(col "$work/on$BATCH" 3)" \
	"$offn" "events/s" "$(col "$work/off$BATCH" 2)" "$(col "$work/off$BATCH" 3)" "$(ratio "$onn" "$offn")" "$(verdict "$onn >= 0.9 * $offn")"

fi

# Checkpoint lag, from the 201 to the first GET /v1/checkpoints/latest
# that covers the event (tests/bench/log_lag.py): idle, and while wrk
# posts single events of another tenant to the same instance.
if part lag; then
set -- $("$PY" tests/bench/log_lag.py "$ON_URL" "$LK" 40 "$BENCH_EVENT")
printf '  checkpoint lag (201 -> covered by a signed checkpoint), idle, %s samples: p50 %s ms, p99 %s ms, max %s ms (DP_LOG_INTERVAL 1s)\n' "$4" "$1" "$2" "$3"
(SECS=$((SECS * 5)) BENCH_API_KEY=$K_us_1 BENCH_BATCH=1; export BENCH_API_KEY BENCH_BATCH
 measure "$ON_URL" -s "$ROOT/tests/bench/post_events.lua" > "$work/loaded") &
load_pid=$!
sleep 1
set -- $("$PY" tests/bench/log_lag.py "$ON_URL" "$LK" 20 "$BENCH_EVENT")
wait $load_pid
printf '  the same under %s req/s of single-event POSTs of another tenant: p50 %s ms, p99 %s ms, max %s ms, %s samples\n' \
	"$(cut -d' ' -f1 "$work/loaded")" "$1" "$2" "$3" "$4"
settle us "$W_us_1"
fi

part proofs || exit 0
# Proofs: a tenant of EVENTS events loaded with SQL (ids pf-1 .. pf-N),
# appended by the appender (one event posted to wake it).
sql us -v tenant="$PT" -v n="$EVENTS" <<'SQL'
INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids, content_sha256, body)
SELECT :'tenant'::uuid, 'pf-' || i, t.at, t.at, 'document.update', 'user_' || i % 100, ARRAY['doc_' || i % 1000],
       sha256(convert_to('pf-' || i, 'UTF8')),
       json_build_object('id', 'pf-' || i, 'occurred_at', t.ts, 'received_at', t.ts, 'action', 'document.update',
                         'actor', json_build_object('id', 'user_' || i % 100, 'type', 'user'),
                         'targets', json_build_array(json_build_object('id', 'doc_' || i % 1000, 'type', 'document')),
                         'context', '{}'::json, 'metadata', json_build_object('field', 'title', 'n', i))
  FROM generate_series(1, :n) i,
       LATERAL (SELECT now() - (:n - i) * interval '1 millisecond' AS at) a,
       LATERAL (SELECT a.at, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts) t;
SQL
t0=$(date +%s.%N)
curl -fsS -o /dev/null -H "Authorization: Bearer $PK" -H 'Content-Type: application/json' -d "$BENCH_EVENT" "$ON_URL/v1/events"
settle us "$PT"
t1=$(date +%s.%N)
size=$(appended "$PT")
# Statistics as autovacuum would leave them: without, the planner may
# read the loaded tenant's events by another index than the key's.
sql us -c 'VACUUM ANALYZE events' -c 'VACUUM ANALYZE log_leaves' -c 'VACUUM ANALYZE log_nodes'
awk -v a="$t0" -v b="$t1" -v n="$size" 'BEGIN { printf "  appending a backlog of %d events loaded by SQL: %.1f s (%.0f leaves/s)\n", n, b - a, n / (b - a) }'
export BENCH_API_KEY="$PK" BENCH_LOG_EVENTS="$EVENTS"
CONNS=8
: > "$work/proof"; : > "$work/cons"; : > "$work/get"
for r in $(seq 1 "$ROUNDS"); do
	BENCH_LOG_MODE=event measure "$ON_URL" -s "$ROOT/tests/bench/log_proof.lua" >> "$work/get"
	BENCH_LOG_MODE=proof measure "$ON_URL" -s "$ROOT/tests/bench/log_proof.lua" >> "$work/proof"
	BENCH_LOG_MODE=consistency measure "$ON_URL" -s "$ROOT/tests/bench/log_proof.lua" >> "$work/cons"
done
g99=$(col "$work/get" 3)
printf '  %-52s %7s req/s  p50 %6s ms  p99 %6s ms   baseline GET /v1/events/{id}: %s req/s, p50 %s ms, p99 %s ms\n' \
	"GET /v1/events/{id}/proof, $size leaves, $CONNS conns" "$(col "$work/proof" 1)" "$(col "$work/proof" 2)" "$(col "$work/proof" 3)" \
	"$(col "$work/get" 1)" "$(col "$work/get" 2)" "$g99"
printf '  %-52s %7s req/s  p50 %6s ms  p99 %6s ms\n' \
	"GET /v1/checkpoints/consistency, random from, $CONNS conns" "$(col "$work/cons" 1)" "$(col "$work/cons" 2)" "$(col "$work/cons" 3)"
