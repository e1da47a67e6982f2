#!/bin/sh
# Benchmark of GET /v1/events filters: a tenant of BENCH_EVENTS events by
# 100 actors beside a neighbour tenant of the same size in the same region,
# each filter alone and a few combinations, BENCH_LIST_CONNECTIONS
# connections, p99 against the target of 50 ms; and what the indexes of the
# filters cost ingest: POST /v1/events (100-event batches) and pgbench
# inserts with and without them, in the same run.
#   tests/bench/list.sh BINDIR        (also: BENCH_ONLY=list tests/bench/run.sh BINDIR)
# Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_EVENTS (1000000),
# BENCH_LIST_CONNECTIONS (8), BENCH_CONNECTIONS (64, for ingest),
# BENCH_LIST_PORT (18491: the control plane; the data plane takes the next)
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*|'') usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
SECS=${BENCH_SECONDS:-5} ROUNDS=${BENCH_ROUNDS:-3} EVENTS=${BENCH_EVENTS:-1000000}
LCONNS=${BENCH_LIST_CONNECTIONS:-8} WCONNS=${BENCH_CONNECTIONS:-64}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CP_PORT=${BENCH_LIST_PORT:-18491}
DP_PORT=$((CP_PORT + 1))
cd "$ROOT"

work=$(mktemp -d /tmp/celltrail-bench-list.XXXXXX)
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

ADMIN=bench-admin-token-0123456789abcdef
CP=http://127.0.0.1:$CP_PORT DP=http://127.0.0.1:$DP_PORT
RDB="${PGTMP_URL%/*}/celltrail_region_us"
sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$RDB" "$@"; }
admin() { curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$3" "$CP$2"; }
json_str() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4; }
wait_http() { # url
	n=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; do
		n=$((n + 1)); [ $n -le 300 ] || { echo "bench: $1 never answered 200" >&2; exit 1; }
		sleep 0.1
	done
}

export CP_DATABASE_URL="$PGTMP_URL" CP_ADMIN_TOKEN="$ADMIN" CP_SIGNING_KEYS_DIR="$work/keys" \
	CP_SECRETS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"$BIN/control-plane" migrate > /dev/null 2>&1
CP_LISTEN=127.0.0.1:$CP_PORT CP_ACCESS_LOG=false "$BIN/control-plane" 2> "$work/cp.log" & pids="$pids $!"
wait_http "$CP/healthz"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PGTMP_URL" -c "CREATE DATABASE celltrail_region_us"
DP_REGION=us DP_DATABASE_URL="$RDB" DP_CONTROL_PLANE_URL="$CP" "$BIN/data-plane" migrate > "$work/m.log" 2>&1 ||
	{ cat "$work/m.log" >&2; exit 1; }
admin POST /v1/plans '{"id":"bench-unbound","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":0,"rate_limit":1000000,"burst":1000000,
	"monthly_event_quota":1000000000000000,"retention_days":3650}' > /dev/null
new_tenant() { # slug: prints "tenant-id api-key"
	id=$(admin POST /v1/tenants "{\"name\":\"Bench\",\"slug\":\"$1\",\"region\":\"us\",\"plan\":\"bench-unbound\"}" | json_str id)
	key=$(admin POST "/v1/tenants/$id/api-keys" '{"name":"b","scopes":["events:write","events:read"]}' | json_str secret)
	echo "$id $key"
}
set -- $(new_tenant bench-list); TENANT=$1 KEY=$2
set -- $(new_tenant bench-neighbour); NTENANT=$1
set -- $(new_tenant bench-write); WTENANT=$1 WKEY=$2
token=$(admin POST /v1/regions/us/credentials '{}' | json_str token)
curl -fsS "$CP/.well-known/jwks.json" > "$work/trust.json"
mkdir -p "$work/cache"
DP_LOG_KEYS_DIR="$work/log-keys" "$BIN/data-plane" log-jwks >/dev/null # the log key ring, before any data plane starts
env DP_REGION=us DP_DATABASE_URL="$RDB" DP_CONTROL_PLANE_URL="$CP" DP_REGION_TOKEN="$token" \
	DP_TRUST_BUNDLE="$work/trust.json" DP_CACHE_DIR="$work/cache" DP_LISTEN=127.0.0.1:$DP_PORT \
	DP_LOG_KEYS_DIR="$work/log-keys" DP_ACCESS_LOG=false "$BIN/data-plane" 2> "$work/dp.log" & pids="$pids $!"
wait_http "$DP/readyz"

# wrk: prints "req/s p50_ms p99_ms"; fails on any non-2xx answer.
measure() { # conns url [wrk args...]
	c=$1 url=$2; shift 2
	wrk -t2 -c"$c" -d"${SECS}s" --latency "$@" "$url" > "$work/wrk.out" 2>&1
	awk -v url="$url" -f "$ROOT/tests/bench/wrk.awk" "$work/wrk.out"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { cut -d' ' -f"$2" "$1" | median; }

# ---- ingest, with and without the filters' indexes ----
export BENCH_API_KEY="$WKEY" BENCH_BATCH=100
export BENCH_EVENT='{"action":"document.update","actor":{"id":"user_42","type":"user","name":"Bench User"},'\
'"targets":[{"id":"doc_7","type":"document","name":"Q3 report"}],"context":{"ip":"203.0.113.7"},'\
'"metadata":{"field":"title","old":"Draft","new":"Final"}}'
curl -fsS -o "$work/sample" -H "Authorization: Bearer $WKEY" -H 'Content-Type: application/json' \
	-d "$BENCH_EVENT" "$DP/v1/events"
sample=$(json_str id < "$work/sample")
# The previous build's INSERT of 100 rows: with the trigger, it also pays
# for deriving the keys, as the current INSERT does.
sql -tA -v t="$WTENANT" -v id="$sample" > "$work/insert.sql" <<'SQL'
SELECT format($f$INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id,
                    target_ids, content_sha256, body)
SELECT %L::uuid, e.id, now(), now(), %L, %L, %L::text[], %L::bytea, (%L || e.id || %L)::json
FROM (SELECT 'pg_' || replace(gen_random_uuid()::text, '-', '') AS id FROM generate_series(1, 100)) e;$f$,
       tenant_id, action, actor_id, target_ids, content_sha256,
       split_part(body::text, id, 1), split_part(body::text, id, 2))
FROM events WHERE tenant_id = :'t' AND id = :'id'
SQL
pgb() {
	"$PG_BIN/pgbench" -n -M prepared -c "$WCONNS" -j 2 -T "$SECS" -f "$work/insert.sql" "$RDB" > "$work/pgb.out" 2>&1 ||
		{ tail -5 "$work/pgb.out" >&2; exit 1; }
	awk '/^tps = / { printf "%.0f\n", $3 * 100 }' "$work/pgb.out"
}
post() { measure "$WCONNS" "$DP" -s "$ROOT/tests/bench/post_events.lua" | awk '{ print $1 * 100 }'; }
NEW_INDEXES="events_by_key"
sql -tA -c "SELECT string_agg(pg_get_indexdef(c.oid), ';' ORDER BY c.relname) FROM pg_class c
	WHERE c.relname = ANY(string_to_array('$(echo $NEW_INDEXES | tr ' ' ,)', ','))" > "$work/indexes.sql"
drop_indexes() { for i in $NEW_INDEXES; do sql -c "DROP INDEX $i"; done; }
: > "$work/post-idx"; : > "$work/post-noidx"; : > "$work/pg-new"; : > "$work/pg-old"
for r in $(seq 1 "$ROUNDS"); do
	post >> "$work/post-idx"; pgb >> "$work/pg-new"
done
drop_indexes
for r in $(seq 1 "$ROUNDS"); do
	post >> "$work/post-noidx"
done
sql -c "ALTER TABLE events DISABLE TRIGGER events_derive_keys"
for r in $(seq 1 "$ROUNDS"); do
	pgb >> "$work/pg-old"
done
sql -c "ALTER TABLE events ENABLE TRIGGER events_derive_keys" -c "TRUNCATE events"

# ---- two tenants of EVENTS events each, loaded without the new indexes ----
# One a second back from now; received up to an hour after; 100 actors
# (10 of them services), ten actions under four prefixes, 10,000 targets of
# three types, names, and metadata with an environment, a region and a
# ticket (each ticket on 10 events: a rare word and a rare member).
cat > "$work/load.sql" <<'SQL'
INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids, content_sha256,
                    body, keys)
SELECT :'tenant'::uuid, id, at, rec, action, actor, ARRAY[target], sha256(convert_to(id, 'UTF8')),
       json_build_object('id', id, 'occurred_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                         'received_at', to_char(rec AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                         'action', action, 'actor', json_build_object('id', actor, 'type', atype, 'name', aname),
                         'targets', json_build_array(json_build_object('id', target, 'type', ttype, 'name', tname)),
                         'context', '{}'::json, 'metadata', meta::json),
       ARRAY['at:' || atype, 'ac:' || action, 'tt:' || ttype,
             events_meta_key('env', meta->>'env'), events_meta_key('region', meta->>'region'),
             events_meta_key('ticket', meta->>'ticket')]
       || (SELECT array_agg('ap:' || left(action, p)) FROM generate_series(1, length(action)) AS p
            WHERE substr(action, p, 1) = '.')
       || events_query_words(concat_ws(' ', action, actor, aname, target, tname,
                                       meta->>'env', meta->>'region', meta->>'ticket'))
FROM (SELECT 'ev_' || md5(:'tenant' || i) AS id, now() - i * interval '1 second' AS at,
             now() - i * interval '1 second' + (i * 7919 % 3600) * interval '1 second' AS rec,
             (ARRAY['document.create', 'document.read', 'document.update', 'document.share', 'document.delete',
                    'user.login', 'user.logout', 'user.mfa.enroll', 'billing.invoice.paid',
                    'admin.settings.update'])[i / 7 % 10 + 1] AS action,
             'user_' || i % 100 AS actor, CASE WHEN i % 100 < 90 THEN 'user' ELSE 'service' END AS atype,
             (ARRAY['Alice', 'Bob', 'Carol', 'Dave', 'Erin'])[i / 11 % 5 + 1] || ' ' ||
             (ARRAY['Smith', 'Jones', 'Brown', 'Lee'])[i % 4 + 1] AS aname,
             'doc_' || i * 7919 % 10000 AS target, (ARRAY['document', 'folder', 'repo'])[i / 3 % 3 + 1] AS ttype,
             'Report ' || i % 50 AS tname,
             jsonb_build_object('env', (ARRAY['prod', 'staging', 'dev'])[i / 13 % 3 + 1],
                                'region', (ARRAY['eu-west', 'us-east'])[i % 2 + 1],
                                'ticket', 'tk' || i % 100000, 'count', i % 7) AS meta
      FROM generate_series(:lo::bigint, :hi) i) e;
SQL
load() { sql -v tenant="$1" -v lo="$2" -v hi="$3" -f "$work/load.sql"; }
t0=$(date +%s)
load "$TENANT" 1 $((EVENTS / 2)) & l1=$!
load "$TENANT" $((EVENTS / 2 + 1)) "$EVENTS" & l2=$!
wait $l1 && wait $l2
load "$NTENANT" 1 $((EVENTS / 2)) & l1=$!
load "$NTENANT" $((EVENTS / 2 + 1)) "$EVENTS" & l2=$!
wait $l1 && wait $l2
tr ';' '\n' < "$work/indexes.sql" | sed 's/$/;/' | sql
sql -c 'VACUUM ANALYZE events' -c 'CHECKPOINT'
load_s=$(( $(date +%s) - t0 ))
size=$(sql -tA -c "SELECT pg_size_pretty(pg_total_relation_size('events'))")
isizes=$(sql -tA -c "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_relation_size(oid)), ', ' ORDER BY relname)
	FROM pg_class WHERE relname LIKE 'events\_by\_%'")

# ---- the listing, filter by filter ----
ts() { date -u -d "@$(( $(date +%s) - $1 ))" +%Y-%m-%dT%H:%M:%SZ; }
SINCE=$(ts 500000) UNTIL=$(ts 496400) RSINCE=$(ts 86400)
curl -fsS -o "$work/page1" -H "Authorization: Bearer $KEY" "$DP/v1/events?actor=user_7&action=document.*&limit=100"
CUR=$(json_str next_cursor < "$work/page1")
[ -n "$CUR" ] || { echo "bench: no next_cursor on the first page" >&2; exit 1; }
export BENCH_API_KEY="$KEY" BENCH_N=100
echo "GET /v1/events filters: tenant of $EVENTS events by 100 actors + a neighbour of $EVENTS, loaded in ${load_s} s;"
echo "  events table $size; indexes: $isizes"
echo "  wrk, $LCONNS connections, ${SECS}s x $ROUNDS rounds (medians), limit 100; target p99 < 50 ms"
printf '  %-72s %8s %8s %8s  %s\n' "query" "req/s" "p50 ms" "p99 ms" "target"
while IFS='|' read -r label query; do
	[ -n "$label" ] || continue
	: > "$work/q"
	for r in $(seq 1 "$ROUNDS"); do
		BENCH_PATH="/v1/events?limit=100&$query" measure "$LCONNS" "$DP" -s "$ROOT/tests/bench/get_query.lua" >> "$work/q"
	done
	p99=$(col "$work/q" 3)
	printf '  %-72s %8s %8s %8s  %s\n' "$label" "$(col "$work/q" 1)" "$(col "$work/q" 2)" "$p99" \
		"$(awk -v p="$p99" 'BEGIN { print (p < 50 ? "met" : "NOT met") }')"
done <<EOF
no filter|
actor=user_{n}|actor=user_{n}
actor (3 values)|actor=user_{n}&actor=user_1&actor=user_2
actor_type=service|actor_type=service
action=document.update|action=document.update
action=user.* (prefix)|action=user.%2A
target=doc_{n}|target=doc_{n}
target_type=folder|target_type=folder
since/until (one hour, 5.8 days back)|since=$SINCE&until=$UNTIL
received_since (last day)|received_since=$RSINCE
q=alice (a word of 20%)|q=alice
q=tk12{n} (a word of 10 events)|q=tk12{n}
metadata.env=prod (33%)|metadata.env=prod
metadata.ticket=tk42{n} (10 events)|metadata.ticket=tk42{n}
order=asc|order=asc
actor + action prefix + order=asc|actor=user_{n}&action=document.%2A&order=asc
q + metadata + actor_type|q=alice&metadata.env=prod&actor_type=user
target_type + since/until|target_type=repo&since=$SINCE&until=$UNTIL
actor + q (rare)|actor=user_{n}&q=tk12{n}
actor + action prefix, page 2 (cursor)|actor=user_7&action=document.%2A&cursor=$CUR
everything at once|actor=user_{n}&actor_type=user&action=document.%2A&target_type=document&q=alice&metadata.env=prod&received_since=$RSINCE
EOF

pi=$(col "$work/post-idx" 1) pn=$(col "$work/post-noidx" 1) gn=$(col "$work/pg-new" 1) go=$(col "$work/pg-old" 1)
echo "Ingest cost of the filters ($WCONNS connections, 100-event batches, events/s, medians of $ROUNDS):"
awk -v pi="$pi" -v pn="$pn" -v gn="$gn" -v go="$go" 'BEGIN {
	printf "  POST /v1/events: %d with the new index, %d without (%.2fx)\n", pi, pn, pi / pn
	printf "  pgbench 100-row INSERT: %d with the derived keys and their index, %d as before this schema (%.2fx)\n", gn, go, gn / go
	printf "  POST with indexes vs pgbench with indexes: %.2fx\n", pi / gn }'
