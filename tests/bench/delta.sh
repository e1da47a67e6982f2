#!/bin/sh
# Delta propagation of cell documents: BENCH_TENANTS tenants (100000; the
# issue's figure is 1000000) with 3 keys each in cell us-east-1, made in
# SQL; the time of the first full build; then BENCH_CHANGES (50) times one
# key revoked (with its version raise, in one transaction) and the time
# from its commit to the delta being served to a poll waiting with
# ?since=<previous>&wait=, with its bytes; beside it, in the same run, the
# old path for the same change: a full document of the new version built
# and served (a GET without since). Prints p50/p99 of both and the bytes.
#   tests/bench/delta.sh BINDIR
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
N=${BENCH_TENANTS:-100000}
CHANGES=${BENCH_CHANGES:-50}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cd "$ROOT"
work=$(mktemp -d /tmp/celltrail-delta.XXXXXX)
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
PORT=18097 TOKEN=bench-admin-token-0123456789abcdef
export CP_DATABASE_URL="$PGTMP_URL" CP_ADMIN_TOKEN="$TOKEN" CP_SIGNING_KEYS_DIR="$work/keys" \
	CP_SECRETS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"$BIN/control-plane" migrate >/dev/null
CP_LISTEN=127.0.0.1:$PORT CP_ACCESS_LOG=false "$BIN/control-plane" 2>"$work/cp.log" & pids="$pids $!"
n=0
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
	n=$((n + 1)); [ $n -gt 100 ] && { echo "bench: no control plane" >&2; exit 1; }; sleep 0.1
done
sql() { "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$CP_DATABASE_URL" "$@"; }
t=$(date +%s.%N)
sql <<SQL
INSERT INTO tenants (slug, name, region, plan, cell)
  SELECT 'bulk-' || i, 'Bulk ' || i, 'us', 'pro', 'us-east-1' FROM generate_series(1, $N) i;
INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes)
  SELECT substr(md5(t.id::text || k), 1, 24), t.id, 'k' || k,
         sha256(convert_to(t.id::text || k, 'UTF8')), ARRAY['events:read', 'events:write']
  FROM tenants t, generate_series(1, 3) k WHERE t.slug LIKE 'bulk-%';
UPDATE regions SET config_version = config_version + 1 WHERE name = 'us';
SQL
echo "delta bench: $N tenants x 3 keys made in $(echo "$(date +%s.%N) - $t" | bc) s"
URL="http://127.0.0.1:$PORT/v1/cells/us-east-1/config"
get() { # query: prints "http_code size_download time_total etag"
	curl -sS -o "$work/body" -D "$work/hdr" -H "Authorization: Bearer $TOKEN" \
		-w '%{http_code} %{size_download} %{time_total}' "$URL$1"
	printf ' %s\n' "$(grep -i '^etag:' "$work/hdr" | tr -dc 0-9)"
}
set -- $(get "?wait=60")
echo "delta bench: first full document: $2 bytes in $3 s (version $4)"
ver=$4
: > "$work/delta.txt"; : > "$work/full.txt"
i=0
while [ $i -lt "$CHANGES" ]; do
	i=$((i + 1))
	key=$(sql -c "SELECT id FROM api_keys WHERE revoked_at IS NULL AND name = 'k1' ORDER BY id LIMIT 1 OFFSET $i")
	# The poll waits first, so the time runs from the commit to the answer.
	( get "?since=$ver&wait=30" > "$work/poll" ) &
	poll=$!
	sleep 0.05
	t0=$(date +%s.%N)
	sql -c "WITH k AS (UPDATE api_keys SET revoked_at = now() WHERE id = '$key' RETURNING 1)
	        UPDATE regions SET config_version = config_version + 1 WHERE name = 'us'" >/dev/null
	wait $poll
	t1=$(date +%s.%N)
	set -- $(cat "$work/poll")
	[ "$1" = 200 ] || { echo "bench: the delta poll answered $1" >&2; exit 1; }
	echo "$(echo "$t1 - $t0" | bc) $2" >> "$work/delta.txt"
	ver=$4
	# The old path for the same change: a full document of that version.
	set -- $(get "")
	echo "$3 $2" >> "$work/full.txt"
done
stats() { sort -n "$1" | awk -v what="$2" '{ t[NR] = $1 * 1000; b += $2 } END {
	printf "delta bench: %s: p50 %.1f ms, p99 %.1f ms, %.0f bytes on average (%d changes)\n",
	what, t[int((NR + 1) / 2)], t[int(NR * 0.99 + 0.999)], b / NR, NR }'; }
stats "$work/delta.txt" "revoke -> delta served to a waiting poll"
stats "$work/full.txt" "same change, full document built and served (old path)"
