#!/bin/sh
# Export benchmark: GET /v1/events/export of a tenant of BENCH_EVENTS events
# (1,000,000), beside psql's COPY (SELECT body ... ORDER BY ...) TO STDOUT of
# the same rows in the same run, and the data plane's memory (VmRSS sampled
# every 0.1 s, and VmHWM) idle and during the exports.
#   tests/bench/export.sh BINDIR
# Run alone (BENCH_ONLY=export tests/bench/run.sh BINDIR does the same): it
# makes its own PostgreSQL, control plane and data plane, and loads the
# events with SQL as run.sh does for its listing benchmark.
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
EVENTS=${BENCH_EVENTS:-1000000}
THREADS=${BENCH_THREADS:-2}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cd "$ROOT"

work=$(mktemp -d /tmp/celltrail-bench-export.XXXXXX)
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

CP_PORT=18193 DP_PORT=18195
CP_API=http://127.0.0.1:$CP_PORT DP_URL=http://127.0.0.1:$DP_PORT
ADMIN=bench-admin-token-0123456789abcdef
RDB_URL="${PGTMP_URL%/*}/celltrail_region_us"
sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$RDB_URL" "$@"; }
admin() { curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$3" "$CP_API$2"; }
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
wait_url() { # url
	n=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; do
		n=$((n + 1)); [ $n -le 300 ] || { echo "bench: $1 did not answer 200 in 30 s" >&2; exit 1; }
		sleep 0.1
	done
}

export CP_DATABASE_URL="$PGTMP_URL" CP_ADMIN_TOKEN="$ADMIN" CP_SIGNING_KEYS_DIR="$work/keys" \
	CP_SECRETS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"$BIN/control-plane" migrate >/dev/null 2>&1
CP_LISTEN=127.0.0.1:$CP_PORT CP_ACCESS_LOG=false "$BIN/control-plane" 2>"$work/cp.log" & pids="$pids $!"
wait_url "$CP_API/healthz"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" -c "CREATE DATABASE celltrail_region_us"
DP_REGION=us DP_DATABASE_URL="$RDB_URL" DP_CONTROL_PLANE_URL="$CP_API" "$BIN/data-plane" migrate \
	> "$work/dp-migrate.log" 2>&1 || { cat "$work/dp-migrate.log" >&2; exit 1; }
admin POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
TENANT=$(admin POST /v1/tenants '{"name":"Bench","slug":"bench-export","region":"us","plan":"bench-unbound"}' | json_str id)
KEY=$(admin POST "/v1/tenants/$TENANT/api-keys" '{"name":"bench","scopes":["events:write","events:read"]}' | json_str secret)
token=$(admin POST /v1/regions/us/credentials '{}' | json_str token)
curl -fsS "$CP_API/.well-known/jwks.json" > "$work/trust.json"
mkdir -p "$work/cache"
DP_LOG_KEYS_DIR="$work/log-keys" "$BIN/data-plane" log-jwks >/dev/null # the log key ring, before any data plane starts
env DP_REGION=us DP_DATABASE_URL="$RDB_URL" DP_CONTROL_PLANE_URL="$CP_API" DP_REGION_TOKEN="$token" \
	DP_TRUST_BUNDLE="$work/trust.json" DP_CACHE_DIR="$work/cache" DP_LISTEN=127.0.0.1:$DP_PORT \
	DP_LOG_KEYS_DIR="$work/log-keys" DP_HTTP_THREADS=$THREADS DP_ACCESS_LOG=false "$BIN/data-plane" 2> "$work/dp.log" & DP_PID=$!
pids="$pids $DP_PID"
wait_url "$DP_URL/readyz"
AUTH="Authorization: Bearer $KEY"
sample=$(curl -fsS -H "$AUTH" -H 'Content-Type: application/json' \
	-d '{"action":"document.update","actor":{"id":"user_42","type":"user","name":"Bench User"},
	     "targets":[{"id":"doc_7","type":"document"}],"context":{"ip":"203.0.113.7","user_agent":"celltrail-bench/1.0"},
	     "metadata":{"field":"title","old":"Draft","new":"Final"}}' "$DP_URL/v1/events" | json_str id)

# The events: the sample's body with its id, times, action, actor and
# target replaced, one a second back from now, by 100 actors (as run.sh
# loads its listed tenant), in two sessions.
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
      FROM events WHERE tenant_id = :'tenant' AND id = :'id') s,
     (SELECT 'ev_' || md5(i::text) AS id, now() - i * interval '1 second' AS at,
             'document.' || (ARRAY['create', 'read', 'update', 'share', 'delete'])[i % 5 + 1] AS action,
             'user_' || i % 100 AS actor, 'doc_' || i % 10000 AS target
      FROM generate_series(:lo, :hi) i) e;
SQL
load() { sql -v tenant="$TENANT" -v id="$sample" -v lo="$1" -v hi="$2" -f "$work/load.sql"; }
t0=$(date +%s)
load 1 $((EVENTS / 2)) & l1=$!
load $((EVENTS / 2 + 1)) "$EVENTS" & l2=$!
wait $l1 && wait $l2 || { echo "bench: loading the events failed" >&2; exit 1; }
sql -c 'VACUUM ANALYZE events' -c 'CHECKPOINT'
load_s=$(( $(date +%s) - t0 ))
total=$(sql -tA -c "SELECT count(*) FROM events WHERE tenant_id = '$TENANT'")

kib() { awk -v k="$1" '$1 == k ":" { print $2 }' "/proc/$DP_PID/status"; }
# Samples VmRSS every 0.1 s into $work/rss until $work/stop exists.
sample_rss() {
	: > "$work/rss"; rm -f "$work/stop"
	( while [ ! -e "$work/stop" ]; do kib VmRSS >> "$work/rss"; sleep 0.1; done ) & sampler=$!
	pids="$pids $sampler"
}
stop_rss() { touch "$work/stop"; wait "$sampler" || true; peak=$(sort -n "$work/rss" | tail -n 1); }
now() { date +%s.%N; }

# Idle: after a few listings, so that the pool's connections and the
# worker threads' buffers exist, as on a serving instance.
for i in 1 2 3 4; do curl -fsS -o /dev/null -H "$AUTH" "$DP_URL/v1/events?limit=1000"; done
idle_rss=$(kib VmRSS) idle_hwm=$(kib VmHWM)

# COPY of the same rows, in the export's order: what the database alone costs.
t0=$(now)
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$RDB_URL" \
	-c "COPY (SELECT body FROM events WHERE tenant_id = '$TENANT' ORDER BY occurred_at DESC, seq DESC) TO STDOUT" |
	wc -lc > "$work/copy.count"
t1=$(now)
set -- $(cat "$work/copy.count"); copy_rows=$1 copy_bytes=$2
copy_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

# One export, counted as it arrives (never written to disk, whose stalls on
# this shared machine would stall the client), timed, with the data
# plane's VmRSS sampled; sets r_s (seconds), r_b (bytes), r_l (lines,
# decompressed) and r_p (peak VmRSS, KiB).
export_run() { # label curl-args...
	label=$1; shift
	case "$label" in *gzip*) dec="gzip -dc" ;; *) dec=cat ;; esac
	sample_rss
	t0=$(now)
	curl -sS -H "$AUTH" -w '%{stderr}%{http_code} %{size_download} %{exitcode}\n' "$@" 2>"$work/curl.out" |
		$dec | wc -l > "$work/lines"
	t1=$(now)
	stop_rss
	set -- $(tail -n 1 "$work/curl.out")
	if [ "${1:-0}" != 200 ] || [ "${3:-1}" != 0 ]; then
		echo "bench: export ($label) failed after $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s:" >&2
		cat "$work/curl.out" >&2
		tail -n 3 "$work/dp.log" >&2
		exit 1
	fi
	r_p=$peak r_b=$2 r_l=$(cat "$work/lines")
	r_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
}
export_run ndjson "$DP_URL/v1/events/export?format=ndjson"; nd_s=$r_s nd_b=$r_b nd_l=$r_l nd_p=$r_p
export_run csv "$DP_URL/v1/events/export?format=csv"; csv_s=$r_s csv_b=$r_b csv_l=$r_l csv_p=$r_p
export_run ndjson-gzip -H 'Accept-Encoding: gzip' "$DP_URL/v1/events/export?format=ndjson"
gz_s=$r_s gz_b=$r_b gz_l=$r_l gz_p=$r_p
end_rss=$(kib VmRSS) end_hwm=$(kib VmHWM)

[ "$nd_l" = "$total" ] || echo "  WARNING: the NDJSON export has $nd_l lines for $total events" >&2
[ "$csv_l" = $((total + 1)) ] || echo "  WARNING: the CSV export has $csv_l lines for $total events and a header" >&2
[ "$gz_l" = "$total" ] || echo "  WARNING: the gzip export has $gz_l lines for $total events" >&2
[ "$copy_rows" = "$total" ] || echo "  WARNING: COPY gave $copy_rows rows for $total events" >&2

echo "Export (region us): a tenant of $total events (loaded by SQL in $load_s s), $THREADS server threads, $(nproc) cores"
awk -v n="$total" -v cs="$copy_s" -v cb="$copy_bytes" \
	-v ns="$nd_s" -v nb="$nd_b" -v xs="$csv_s" -v xb="$csv_b" -v gs="$gz_s" -v gb="$gz_b" 'BEGIN {
	printf "  %-44s %9.0f events/s  %6.1f s  %7.1f MB\n", "COPY (SELECT body ... ORDER BY) TO STDOUT", n / cs, cs, cb / 1048576
	printf "  %-44s %9.0f events/s  %6.1f s  %7.1f MB  %.2fx COPY\n", "GET /v1/events/export?format=ndjson", n / ns, ns, nb / 1048576, cs / ns
	printf "  %-44s %9.0f events/s  %6.1f s  %7.1f MB  %.2fx COPY\n", "GET /v1/events/export?format=csv", n / xs, xs, xb / 1048576, cs / xs
	printf "  %-44s %9.0f events/s  %6.1f s  %7.1f MB  %.2fx COPY\n", "  ndjson, Accept-Encoding: gzip", n / gs, gs, gb / 1048576, cs / gs
}'
awk -v ir="$idle_rss" -v ih="$idle_hwm" -v a="$nd_p" -v b="$csv_p" -v c="$gz_p" -v er="$end_rss" -v eh="$end_hwm" 'BEGIN {
	peak = a; if (b > peak) peak = b; if (c > peak) peak = c
	printf "  data plane VmRSS: idle %.1f MB; peak sampled during the exports %.1f MB (ndjson %.1f, csv %.1f, gzip %.1f); after %.1f MB\n", ir / 1024, peak / 1024, a / 1024, b / 1024, c / 1024, er / 1024
	printf "  data plane VmHWM: %.1f MB before the exports, %.1f MB after: +%.1f MB (target: within 20 MB of idle: %s)\n", ih / 1024, eh / 1024, (eh - ir) / 1024, ((eh - ir) < 20 * 1024 ? "met" : "NOT met")
}'
