#!/bin/sh
# Log streams benchmark: can delivery keep up with ingest, and how long
# does an event take to reach the tenant's webhook. A private local stack
# (region us, cell us-east-1, one data plane behind the router) and an
# HTTPS webhook receiver on this machine (tests/deploy/streams_rx.py,
# checking every signature), one stream of one tenant:
#   1. Ingest: wrk posts batches of 100 events for BENCH_STREAMS_SECONDS
#      with the stream paused; the events stored per second is the ingest
#      rate. Resumed, the stream delivers that backlog: events received
#      per second, first to last, is the sustained delivery rate; their
#      ratio (goal >= 1x: delivery keeps up with ingest).
#   2. Live: the same wrk load with the stream running; how far delivery
#      is behind when wrk stops, and when the last event arrives.
#   3. Lag: a probe posts single events (every 50 ms) with ids; lag is the
#      receiver's arrival time minus the 201's (same clock): p50/p99 idle,
#      and under a lighter wrk load (2 connections) of the same tenant.
#   tests/bench/streams.sh BINDIR
# Run alone (BENCH_ONLY=streams tests/bench/run.sh BINDIR does the same).
# Knobs: BENCH_CONNECTIONS (64), BENCH_STREAMS_SECONDS (10),
# BENCH_STREAMS_PORT (19700: ports from there, +99 PostgreSQL),
# BENCH_STREAMS_ENV (more data-plane settings, VAR=value).
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
CONNS=${BENCH_CONNECTIONS:-64}
SECS=${BENCH_STREAMS_SECONDS:-10}
BASE=${BENCH_STREAMS_PORT:-19700}
PY=/usr/bin/python3
RX="$ROOT/tests/bench/stream_rx.py"
cd "$ROOT"

work=$(mktemp -d /tmp/celltrail-bench-streams.XXXXXX)
chmod 0755 "$work"
rx=""
cleanup() {
	[ -z "$rx" ] || kill "$rx" 2>/dev/null || true
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
die() { echo "bench streams: $*" >&2; exit 1; }

"$PY" "$ROOT/tests/streams/webhook_receiver.py" make-ca "$work/ca" || die "could not make the test CA"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
"$PY" "$RX" serve webhook --port "$PORT" --out "$work/rx" --secret "$SECRET" \
	--cert "$work/ca/server.crt" --key "$work/ca/server.key" 2> "$work/rx.log" &
rx=$!

export STACK_VAR="$work/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS=us STACK_CELLS_us=us-east-1 STACK_DP_INSTANCES=1
export STACK_DP_ENV="DP_ACCESS_LOG=false DP_STREAM_CA_FILE=$work/ca/ca.crt DP_STREAM_REPORT_INTERVAL=1s ${BENCH_STREAMS_ENV:-}"
sh deploy/local/stack.sh start > "$work/stack.log" 2>&1 || { tail -n 20 "$work/stack.log" >&2; die "the stack did not start"; }
. "$STACK_VAR/stack.env"
api() { curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "${3:-}" "$CP_URL$2"; }
jq_of() { jq -r "$1"; }
api POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
T=$(api POST /v1/tenants '{"name":"Bench","slug":"bench-streams","region":"us","plan":"bench-unbound"}' | jq_of .id)
K=$(api POST "/v1/tenants/$T/api-keys" '{"name":"bench","scopes":["events:write","events:read"]}' | jq_of .secret)
S=$(api POST "/v1/tenants/$T/streams" "{\"kind\":\"webhook\",\"url\":\"https://127.0.0.1:$PORT/hook\",\"secret\":\"$SECRET\",\"paused\":true}" | jq_of .id)
[ -n "$S" ] && [ "$S" != null ] || die "the stream was not created"
n=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $K" "$DP_URL_us/v1/tenant")" = 200 ]; do
	n=$((n + 1)); [ $n -le 150 ] || die "the tenant's key is not served within 30 s"
	sleep 0.2
done
_db=${DP_DATABASE_URL_us%%\?*}
DB="$PG_URL&dbname=${_db##*/}"  # the region's database, as the superuser (over TLS)
stored() { "$PG_BIN/psql" -X -q -tA "$DB" -c "SELECT count(*) FROM events WHERE tenant_id = '$T'"; }
received() { "$PY" "$RX" count "$work/rx" "$S"; }
now() { date +%s.%N; }
wait_received() { # n seconds: until the receiver has n events
	_end=$(($(date +%s) + $2))
	while [ "$(received)" -lt "$1" ]; do
		[ "$(date +%s)" -lt $_end ] || die "the receiver has $(received) of $1 events after $2 s"
		sleep 0.2
	done
}
export BENCH_EVENT='{"action":"document.update","actor":{"id":"user_42","type":"user","name":"Bench User"},'\
'"targets":[{"id":"doc_7","type":"document"}],"context":{"ip":"203.0.113.7","user_agent":"celltrail-bench/1.0"},'\
'"metadata":{"field":"title","old":"Draft","new":"Final"}}'
export BENCH_API_KEY=$K BENCH_BATCH=100
load() { # seconds connections: prints the wrk report's "req/s p50 p99"
	wrk -t2 -c"$2" -d"${1}s" --latency -s "$ROOT/tests/bench/post_events.lua" "$DP_URL_us" > "$work/wrk.out" 2>&1
	awk -v url="$DP_URL_us" -f "$ROOT/tests/bench/wrk.awk" "$work/wrk.out"
}
# The events stored once the count has not moved for a second (the
# requests wrk left in flight committed).
settle() { _b=-1 _n=$(stored); while [ "$_n" != "$_b" ]; do sleep 1; _b=$_n _n=$(stored); done; echo "$_n"; }
# Until the receiver has every probe event of SENT.
wait_probes() { # sent
	_end=$(($(date +%s) + 60))
	while [ "$("$PY" "$RX" lag "$work/rx" "$1" | cut -d' ' -f4)" -lt "$(wc -l < "$1")" ]; do
		[ "$(date +%s)" -lt $_end ] || die "the probe events of $1 did not all arrive within 60 s"
		sleep 0.2
	done
}

echo "Log streams: one webhook stream (HTTPS, Standard Webhooks signatures checked), wrk $CONNS connections, batches of 100, $(nproc) cores"
# 1. Ingest with the stream paused, then the backlog delivered.
t0=$(now)
load "$SECS" "$CONNS" > /dev/null
t1=$(now)
N=$(settle)
ingest=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
api POST "/v1/tenants/$T/streams/$S/resume" '{}' > /dev/null
wait_received "$N" 300
drain=$(jq -rs --arg s "$S" '[.[] | select(.stream == $s)] | [(map(.events | length) | add), (.[0].at), (.[-1].at)] | @tsv' "$work/rx" |
	awk '{ printf "%.0f %.1f", $1 / ($3 - $2), $3 - $2 }')
set -- $drain
printf '  %-46s %9s events/s   delivery of that backlog %9s events/s (%s s)   %s (goal >= 1x: %s)\n' \
	"ingest, POST /v1/events x100, stream paused" "$ingest" "$1" "$2" \
	"$(awk -v a="$1" -v b="$ingest" 'BEGIN { printf "%.2fx", a / b }')" \
	"$(awk -v a="$1" -v b="$ingest" 'BEGIN { print (a >= b ? "met" : "NOT met") }')"

# 2. The same load with the stream running.
M=$(received)
t0=$(now)
load "$SECS" "$CONNS" > /dev/null
t1=$(now)
behind=$(($(stored) - $(received)))
N2=$(settle)
wait_received "$N2" 300
t2=$(jq -s '[.[].at] | max' "$work/rx")  # the last event's arrival
awk -v n="$((N2 - N))" -v a="$t0" -v b="$t1" -v c="$t2" -v behind="$behind" 'BEGIN {
	printf "  %-46s %9.0f events/s   behind when it stopped: %d events; the last one received %.1f s after\n",
		"ingest with the stream delivering", n / (b - a), behind, c - b }'

# 3. Lag, 201 -> at the receiver: idle, then under a lighter load (two
# connections posting batches of 100).
"$PY" "$RX" probe "$DP_URL_us" "$K" 100 50 idle "$work/sent-idle"
wait_probes "$work/sent-idle"
set -- $("$PY" "$RX" lag "$work/rx" "$work/sent-idle")
printf '  %-46s p50 %6s ms  p99 %6s ms  max %6s ms  (%s events)\n' "lag 201 -> webhook received, idle" "$1" "$2" "$3" "$4"
M3=$(stored)
t0=$(now)
( load $((SECS + 2)) 2 > /dev/null 2>&1 || true ) &
lp=$!
sleep 1
"$PY" "$RX" probe "$DP_URL_us" "$K" $((SECS * 20)) 50 busy "$work/sent-busy"
wait "$lp" || true
t1=$(now)
N3=$(settle)
rate=$(awk -v n="$((N3 - M3))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
wait_received "$N3" 300
wait_probes "$work/sent-busy"
set -- $("$PY" "$RX" lag "$work/rx" "$work/sent-busy")
printf '  %-46s p50 %6s ms  p99 %6s ms  max %6s ms  (%s events)\n' "the same under $rate events/s of ingest" "$1" "$2" "$3" "$4"
echo "  (data-plane defaults${BENCH_STREAMS_ENV:+ but $BENCH_STREAMS_ENV}: DP_STREAM_BATCH_WAIT 1s is how long a partial batch waits for more)"
