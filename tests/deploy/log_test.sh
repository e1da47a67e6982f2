#!/bin/sh
# End-to-end test of tamper evidence on a private local stack (region us,
# cells us-east-1 and us-west-2, and eu, one data plane each, behind the
# regions' routers, a mover per region). Tenants write events through the
# region's endpoint; the test keeps what a customer keeps off the box (the checkpoints of
# GET /v1/checkpoints/latest, saved as the trail grows, and the JWK set
# found through the control plane's log_jwks_url), then:
#
#   1. The JWK set is served at the region's endpoint (the router sends
#      the unauthenticated GET /.well-known/jwks.json to a cell; every cell
#      answers the same set).
#   2. An untouched trail verifies: its NDJSON export with bin/celltrail-
#      verify and with the independent implementation tests/log/rfc9162.py
#      (exit 0); inclusion proofs of several events and a consistency proof
#      between two saved checkpoints verify with the latter.
#   3. Tampering done in SQL as the database superuser, each on a tenant of
#      its own, is detected by both verifiers (exit 1), and bin/celltrail-
#      verify's first FAIL line names the right event, leaf or checkpoint:
#        meta     an event's stored body changed (named as that event,
#                 altered)
#        delete   an event deleted from the middle of the trail (named as
#                 its leaf and the event id the log recorded)
#        cut      the newest events deleted with their leaves, nodes and
#                 the checkpoints stored after them, the head rolled back
#                 to match (detected against a checkpoint saved earlier)
#        swap     two events swapped in the log, nodes, head and root
#                 recomputed (the database is self-consistent: only the
#                 signed checkpoints catch it)
#        swapnaive  the same without recomputing anything
#        late     an event inserted with a backdated time, which the
#                 appender then appends
#        hidden   the same with an old transaction id, which the appender
#                 never sees
#        rehash   an event changed and its leaf hash, nodes and head
#                 recomputed (caught by the checkpoints)
#      and one that is not detected, as the README says: an event deleted
#      and its leaf marked removed as retention marks it.
#   4. A cell move of the clean trail, then a region move (us -> eu): the
#      new cell rebuilds the log from the copied events, and the checkpoints
#      saved before the moves verify against an export taken after each
#      (after the region move, with both regions' JWK sets).
#
#   tests/deploy/log_test.sh [BIN]
# Ports: LOG_TEST_PORT (18400): the control plane, +1.. the regions'
# endpoints, +10 the cell-router's status, +20 the mover's, +40 the data
# planes, +99 PostgreSQL. KEEP_TEST_LOGS=1 keeps the stack and the files.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${LOG_TEST_PORT:-18400}
PY=/usr/bin/python3
T_START=$(date +%s)

for b in control-plane data-plane cell-router celltrail-verify; do
	[ -x "$BIN/$b" ] || { echo "log test: build first: make services $BIN/celltrail-verify (no $BIN/$b)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/celltrail-log-test.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
. "$ROOT/tests/faults/moves.sh"
SCEN=log
SCEN_DIR="$WORK/log"
D=$SCEN_DIR
mkdir -p "$D"
cleanup() {
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "log test: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== log: tamper evidence end to end (private stack on ports $BASE..$((BASE + 99)))"
# Appender rounds every 200 ms and a sweep every second, so that the test
# waits for checkpoints a fraction of a second, and finds the rows it
# inserts behind the service's back within a second.
export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS="us eu" STACK_DP_INSTANCES=1
export STACK_DP_ENV="$DP_TEST_ENV DP_LOG_INTERVAL=200ms DP_LOG_SWEEP_INTERVAL=1s"
export STACK_CELLS_us="us-east-1 us-west-2" STACK_CELLS_eu=eu-west-1
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
for _r in $STACK_REGIONS; do
	for _c in $(cells_of "$_r"); do eval "CELL_REGION_$(cv "$_c")=\$_r"; done
done
EP=$DP_URL_us
api POST /v1/plans '{"id":"faults","name":"Log tests","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create plan faults"
echo "  stack ready in $(($(date +%s) - T_START)) s"

# The database superuser on a cell's database (the adversary).
ssql() { # cell SQL, as a session of the data plane's build (whose level
	# partitioned events require of a deletion: migration 0012)
	eval "_u=\$CELL_DB_$(cv "$1")"
	PGOPTIONS='-c celltrail.schema_level=12' "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 \
		"$(su_url "$_u")" -c "$2"
}

# ---- the customer's side ----

# Tenants, one per case: T_<l>, K_<l>.
LABELS="clean meta delete cut swap swapnaive late hidden rehash retained"
# (clean, which moves to another region at the end, with an owner: a
# region move is the owner's request.)
for l in $LABELS; do
	if [ $l = clean ]; then mv_tenant clean us us-east-1; continue; fi
	set -- $(new_tenant "log-$l" us faults us-east-1)
	eval "T_$l=\$1 K_$l=\$2"
done
wait_until 30 key_works "$(router_port us)" "$K_rehash" || fatal "the tenants' keys do not work through the router"

# Posts events PREFIX-FROM .. PREFIX-TO of tenant LABEL in one request.
post_batch() { # label from to
	eval "_k=\$K_$1"
	awk -v l="$1" -v a="$2" -v b="$3" 'BEGIN {
		printf "{\"events\":["
		for (i = a; i <= b; i++)
			printf "%s{\"id\":\"%s-%d\",\"action\":\"log.test\",\"actor\":{\"id\":\"user-%d\",\"type\":\"user\"},\"targets\":[{\"id\":\"doc-%d\",\"type\":\"document\"}],\"metadata\":{\"n\":%d,\"note\":\"caf\\u00e9 \\u2713\"}}", (i > a ? "," : ""), l, i, i, i, i
		printf "]}"
	}' > "$D/batch.json"
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $_k" \
		-H 'Content-Type: application/json' --data-binary @"$D/batch.json" "$EP/v1/events")" = 201 ]
}

# The tree size of tenant LABEL's latest checkpoint (0 when none).
cp_size() { # label
	eval "_k=\$K_$1"
	curl -s --max-time 5 -H "Authorization: Bearer $_k" -H 'Accept: application/json' "$EP/v1/checkpoints/latest" |
		jq -r '.tree_size // 0' 2>/dev/null || echo 0
}
cp_covers() { [ "$(cp_size "$1")" -ge "$2" ]; }  # label size

# Saves tenant LABEL's latest checkpoint once it covers SIZE leaves, as a
# customer's scheduled fetch would: one compact JWS per line of
# $D/LABEL.cps.
save_cp() { # label size
	wait_until 20 cp_covers "$1" "$2" || { bad "$1: no checkpoint of $2 leaves within 20 s (latest $(cp_size "$1"))"; return 1; }
	eval "_k=\$K_$1"
	curl -fsS --max-time 5 -H "Authorization: Bearer $_k" "$EP/v1/checkpoints/latest" > "$D/cp.jws" || return 1
	cat "$D/cp.jws" >> "$D/$1.cps"
	echo >> "$D/$1.cps"
}

# True once the clock is past the second of LABEL's last saved checkpoint.
after_last_cp() { # label
	_iat=$(grep . "$D/$1.cps" | tail -n 1 | cut -d. -f2 | "$PY" -c '
import base64, json, sys
t = sys.stdin.read().strip()
print(json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))["iat"])')
	[ "$(date +%s)" -gt "$_iat" ]
}

export_of() { # label file
	eval "_k=\$K_$1"
	curl -fsS --max-time 30 -H "Authorization: Bearer $_k" "$EP/v1/events/export?format=ndjson" > "$2"
}

# Both verifiers on LABEL's export FILE and saved checkpoints; bin/celltrail-
# verify's output in FILE.out, the Python one's in FILE.py; sets V_RC and
# P_RC.
verify_both() { # label file
	V_RC=0 P_RC=0
	"$BIN/celltrail-verify" --jwks "$D/jwks.json" --checkpoints "$D/$1.cps" "$2" > "$2.out" 2>&1 || V_RC=$?
	"$PY" tests/log/rfc9162.py verify-export --jwks "$D/jwks.json" --checkpoints "$D/$1.cps" "$2" > "$2.py" 2>&1 || P_RC=$?
}

first_fail() { grep -m1 '^FAIL ' "$1.out" || true; }  # file

# True when LINE holds one of the fixed strings WHAT...
names() { # line what...
	_l=$1; shift
	for _w; do case "$_l" in *"$_w"*) return 0 ;; esac; done
	return 1
}

# A tampered trail: both verifiers exit 1 and the first FAIL line holds
# one of WHAT... (fixed strings).
expect_caught() { # label description what...
	_lb=$1 _ds=$2; shift 2
	set -- "$_lb" "$_ds" "$*" "$@"
	export_of "$1" "$D/$1.ndjson" || { bad "$1: the export failed"; return; }
	verify_both "$1" "$D/$1.ndjson"
	_f=$(first_fail "$D/$1.ndjson")
	if [ "$V_RC" = 1 ] && [ "$P_RC" = 1 ] && (shift 3; names "$_f" "$@"); then
		ok "$1: $2: detected by both verifiers, named: $_f"
	else
		bad "$1: $2: celltrail-verify exit $V_RC (want 1), first line '$_f' (want it to name $3); rfc9162.py exit $P_RC (want 1)"
		sed 's/^/        /' "$D/$1.ndjson.out" "$D/$1.ndjson.py" | head -n 12
	fi
}

# ---- 1. the JWK set, found through the control plane ----
JWKS_URL=$(api GET /v1/regions/us | jget log_jwks_url)
check "the control plane names us's JWK set at its endpoint ($JWKS_URL)" [ "$JWKS_URL" = "$EP/.well-known/jwks.json" ]
curl -fsS --max-time 5 "$JWKS_URL" > "$D/jwks.json" || fatal "GET $JWKS_URL (no credential) failed through the router"
check "the router serves the JWK set without a credential ($(jq '.keys | length' "$D/jwks.json") key(s), all ES256 P-256)" \
	jq -e '(.keys | length) >= 1 and all(.keys[]; .kty == "EC" and .crv == "P-256" and (.kid | length) > 0 and (has("d") | not))' "$D/jwks.json" > /dev/null
for c in $(cells_of us); do
	eval "_cu=\$CELL_URL_$(cv "$c")"
	curl -fsS --max-time 5 "$_cu/.well-known/jwks.json" > "$D/jwks.$c.json" || true
	check "cell $c answers the same JWK set (the region's key ring)" \
		[ "$(jq -cS .keys "$D/jwks.$c.json" 2>/dev/null)" = "$(jq -cS .keys "$D/jwks.json")" ]
done

# ---- the trails: four rounds of writes, a checkpoint saved after each ----
# clean: 4 x 10 events; the others: 4 x 4.
N=0
for round in 1 2 3 4; do
	for l in $LABELS; do
		n=4; [ $l = clean ] && n=10
		post_batch $l $(( (round - 1) * n + 1 )) $((round * n)) || fatal "$l: round $round was not stored (201)"
	done
	for l in $LABELS; do
		n=4; [ $l = clean ] && n=10
		save_cp $l $((round * n)) || true
	done
done
echo "  trails written and checkpoints saved in $(($(date +%s) - T_START)) s"

# ---- 2. the untouched trail ----
export_of clean "$D/clean.ndjson" || fatal "clean: the export failed"
verify_both clean "$D/clean.ndjson"
check "clean: celltrail-verify verifies the untouched trail (exit $V_RC: $(head -n 1 "$D/clean.ndjson.out"))" \
	eval '[ "$V_RC" = 0 ] && grep -q "^verified:" "$D/clean.ndjson.out"'
check "clean: rfc9162.py verify-export verifies it too (exit $P_RC: $(head -n 1 "$D/clean.ndjson.py"))" [ "$P_RC" = 0 ]
check "clean: the export holds the 40 events, its log lines and its checkpoint" \
	eval '[ "$(grep -c "^{\"id\":" "$D/clean.ndjson")" = 40 ] && grep -q "^{\"log\":" "$D/clean.ndjson" && tail -n 1 "$D/clean.ndjson" | grep -q "^{\"checkpoint\":"'

# Inclusion proofs: events at both ends and inside, against the latest
# checkpoint and against an older one (tree_size 20).
sed -n 2p "$D/clean.cps" > "$D/cp20.jws"
sed -n 4p "$D/clean.cps" > "$D/cp40.jws"
for spec in "clean-1 40" "clean-7 40" "clean-20 40" "clean-33 40" "clean-40 40" "clean-1 20" "clean-13 20" "clean-20 20"; do
	set -- $spec
	_q=""; [ "$2" = 40 ] || _q="?tree_size=$2"
	curl -fsS --max-time 5 -H "Authorization: Bearer $K_clean" "$EP/v1/events/$1/proof$_q" > "$D/proof.json" &&
		curl -fsS --max-time 5 -H "Authorization: Bearer $K_clean" "$EP/v1/events/$1" > "$D/event.json" || true
	check "clean: the inclusion proof of $1 in the checkpoint of $2 verifies with rfc9162.py (leaf $(jq -r .leaf_index "$D/proof.json" 2>/dev/null))" \
		"$PY" tests/log/rfc9162.py verify-proof --jwks "$D/jwks.json" --checkpoint "$D/cp$2.jws" --event "$D/event.json" --proof "$D/proof.json"
done
# The same proof against the wrong checkpoint does not.
check "clean: a proof checked against another checkpoint is refused by rfc9162.py" \
	eval '! "$PY" tests/log/rfc9162.py verify-proof --jwks "$D/jwks.json" --checkpoint "$D/cp40.jws" --event "$D/event.json" --proof "$D/proof.json" > /dev/null 2>&1'
curl -fsS --max-time 5 -H "Authorization: Bearer $K_clean" "$EP/v1/checkpoints/consistency?from=20&to=40" > "$D/cons.json" || true
check "clean: the consistency proof from the saved checkpoint of 20 to that of 40 verifies with rfc9162.py" \
	"$PY" tests/log/rfc9162.py verify-consistency --jwks "$D/jwks.json" --old "$D/cp20.jws" --new "$D/cp40.jws" --proof "$D/cons.json"

# ---- 3. tampering, as the database superuser ----
CELL=us-east-1
leaf_of() { ssql $CELL "SELECT leaf_index FROM log_leaves WHERE tenant_id = '$1' AND event_id = '$2'"; }  # tenant id

# Recomputes a tenant's stored tree from its log_leaves as a DBA would
# (RFC 9162: nodes at levels 4, 8, ...; the head's frontier and root), so
# that the database agrees with itself.
rebuild_tree() { # tenant
	ssql $CELL "SELECT encode(leaf_hash, 'hex') FROM log_leaves WHERE tenant_id = '$1' ORDER BY leaf_index" > "$D/leaves.hex"
	"$PY" - "$1" "$D/leaves.hex" > "$D/rebuild.sql" <<'PY'
import hashlib, sys
tenant, leaves = sys.argv[1], [bytes.fromhex(l.strip()) for l in open(sys.argv[2]) if l.strip()]
node = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()
def mth(h):
    if len(h) == 1:
        return h[0]
    k = 1
    while k * 2 < len(h):
        k *= 2
    return node(mth(h[:k]), mth(h[k:]))
n = len(leaves)
out = ["BEGIN;", f"DELETE FROM log_nodes WHERE tenant_id = '{tenant}';"]
level = 4
while (1 << level) <= n:
    w = 1 << level
    for i in range(n // w):
        out.append(f"INSERT INTO log_nodes VALUES ('{tenant}', {level}, {i}, '\\x{mth(leaves[i * w:(i + 1) * w]).hex()}');")
    level += 4
front, start = b"", 0
for bit in range(63, -1, -1):
    if n & (1 << bit):
        front += mth(leaves[start:start + (1 << bit)])
        start += 1 << bit
out.append(f"UPDATE log_heads SET frontier = '\\x{front.hex()}', root_hash = '\\x{mth(leaves).hex()}' WHERE tenant_id = '{tenant}';")
out.append("COMMIT;")
print("\n".join(out))
PY
	eval "_u=\$CELL_DB_$(cv $CELL)"
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$(su_url "$_u")" -f "$D/rebuild.sql" > /dev/null
}

# meta: the actor of meta-6 changed in its stored body: named as that
# event altered (the export's event_ids say which event leaf 5 was).
i=$(leaf_of "$T_meta" meta-6)
ssql $CELL "UPDATE events SET body = replace(body::text, '\"user-6\"', '\"user-666\"')::json, actor_id = 'user-666'
	WHERE tenant_id = '$T_meta' AND id = 'meta-6'" > /dev/null
expect_caught meta "an event's stored body changed (meta-6, leaf $i)" \
	"event \"meta-6\" (leaf $i): its content is not what the log recorded: altered"

# delete: delete-8 (leaf 7) removed.
i=$(leaf_of "$T_delete" delete-8)
ssql $CELL "DELETE FROM events WHERE tenant_id = '$T_delete' AND id = 'delete-8'" > /dev/null
expect_caught delete "an event deleted from the middle (delete-8)" "leaf $i (event \"delete-8\", between"

# cut: the last 8 of 16 events gone with every trace of them; the head
# rolled back to the stored checkpoint of 8 (a power of two: its frontier
# is its root), its feed position to the 8th event's.
ssql $CELL "BEGIN;
DELETE FROM events WHERE tenant_id = '$T_cut' AND id IN (SELECT event_id FROM log_leaves WHERE tenant_id = '$T_cut' AND leaf_index >= 8);
DELETE FROM log_leaves WHERE tenant_id = '$T_cut' AND leaf_index >= 8;
DELETE FROM log_nodes WHERE tenant_id = '$T_cut' AND (idx + 1) * (1::bigint << level) > 8;
DELETE FROM log_checkpoints WHERE tenant_id = '$T_cut' AND tree_size > 8;
UPDATE log_heads h SET tree_size = 8, root_hash = c.root_hash, frontier = c.root_hash, next_tx = e.tx_id, next_seq = e.seq
  FROM log_checkpoints c, log_leaves l JOIN events e ON e.tenant_id = l.tenant_id AND e.id = l.event_id
 WHERE h.tenant_id = '$T_cut' AND c.tenant_id = h.tenant_id AND c.tree_size = 8 AND l.tenant_id = h.tenant_id AND l.leaf_index = 7;
COMMIT;" > /dev/null
check "cut: the database agrees with itself after the cut (head at 8, no leaf, node or checkpoint above)" \
	[ "$(ssql $CELL "SELECT (SELECT tree_size FROM log_heads WHERE tenant_id = '$T_cut') || ' ' ||
		(SELECT count(*) FROM log_leaves WHERE tenant_id = '$T_cut') || ' ' ||
		(SELECT max(tree_size) FROM log_checkpoints WHERE tenant_id = '$T_cut') || ' ' ||
		(SELECT count(*) FROM events WHERE tenant_id = '$T_cut')")" = "8 8 8 8" ]
# The export's checkpoint is signed when it starts, in whole seconds: it
# is taken once the second of the last saved one has passed.
check "cut: a second has passed since the last checkpoint saved" wait_until 5 after_last_cp cut
expect_caught cut "the newest 8 events deleted with their leaves and the checkpoints after them" "checkpoint tree_size=12 "

# swap: swap-6 and swap-7 (leaves 5 and 6) exchanged in the log, the tree
# recomputed: the leaves, nodes and head agree; the checkpoints of 8 and
# more do not.
swap_leaves() { # tenant
	ssql $CELL "UPDATE log_leaves l SET event_id = o.event_id, leaf_hash = o.leaf_hash
		FROM log_leaves o WHERE l.tenant_id = '$1' AND o.tenant_id = l.tenant_id
		AND l.leaf_index IN (5, 6) AND o.leaf_index = 11 - l.leaf_index" > /dev/null
}
swap_leaves "$T_swap"
rebuild_tree "$T_swap"
expect_caught swap "two events swapped in the log, tree recomputed" "checkpoint tree_size=8 "
swap_leaves "$T_swapnaive"
expect_caught swapnaive "two events swapped in the log, nothing recomputed" "checkpoint tree_size=8 "

# An event as the ingest stores it, but with a time of an hour ago.
forge_sql() { # tenant id [tx_id seq]
	_ts=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%S.000000Z)
	_b="{\"id\":\"$2\",\"occurred_at\":\"$_ts\",\"received_at\":\"$_ts\",\"action\":\"log.test\",\"actor\":{\"id\":\"user-0\",\"type\":\"user\"},\"targets\":[],\"context\":{},\"metadata\":{}}"
	if [ $# -ge 4 ]; then
		echo "INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, content_sha256, body, tx_id, seq)
		OVERRIDING SYSTEM VALUE VALUES ('$1', '$2', '$_ts', '$_ts', 'log.test', 'user-0', sha256(convert_to('$_b', 'UTF8')), '$_b', '$3', $4)"
	else
		echo "INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, content_sha256, body)
		VALUES ('$1', '$2', '$_ts', '$_ts', 'log.test', 'user-0', sha256(convert_to('$_b', 'UTF8')), '$_b')"
	fi
}

# late: inserted now, backdated an hour: the appender appends it (leaf 16)
# after checkpoints signed at times it claims to precede.
ssql $CELL "$(forge_sql "$T_late" late-forged)" > /dev/null
check "late: the appender appends the inserted event (a checkpoint of 17 leaves within 20 s)" wait_until 20 cp_covers late 17
expect_caught late "an event inserted with a time an hour back, appended after it" '"late-forged"'

# hidden: the same with the transaction id of the 4th event, so that it
# sorts before the head's feed position and is never appended.
set -- $(ssql $CELL "SELECT e.tx_id, e.seq FROM events e JOIN log_leaves l ON l.tenant_id = e.tenant_id AND l.event_id = e.id
	WHERE l.tenant_id = '$T_hidden' AND l.leaf_index = 3" | tr '|' ' ')
ssql $CELL "$(forge_sql "$T_hidden" hidden-forged "$1" "$(($2 + 1000000000))")" > /dev/null
expect_caught hidden "an event inserted with a time an hour back and an old transaction id (never appended)" '"hidden-forged"'
check "hidden: the appender did not append it (its log holds 16 leaves)" [ "$(cp_size hidden)" = 16 ]

# rehash: rehash-6 changed, its leaf hash and the tree recomputed from the
# stored body: caught by the checkpoint of 8, the first that covers it.
ssql $CELL "BEGIN;
UPDATE events SET body = replace(body::text, '\"user-6\"', '\"user-666\"')::json, actor_id = 'user-666'
 WHERE tenant_id = '$T_rehash' AND id = 'rehash-6';
UPDATE log_leaves l SET leaf_hash = sha256('\\x00'::bytea || convert_to(e.body::text, 'UTF8'))
  FROM events e WHERE l.tenant_id = '$T_rehash' AND e.tenant_id = l.tenant_id AND e.id = l.event_id AND e.id = 'rehash-6';
COMMIT;" > /dev/null
rebuild_tree "$T_rehash"
expect_caught rehash "an event changed and its leaf hash and tree recomputed" "checkpoint tree_size=8 "

# retained: a documented limit, not a detection. retained-6 deleted and
# its leaf marked removed as retention marks it: the export verifies, the
# leaf counted as removed (README: what is not detected).
ssql $CELL "WITH d AS (DELETE FROM events WHERE tenant_id = '$T_retained' AND id = 'retained-6' RETURNING id)
	UPDATE log_leaves l SET event_id = NULL, removed_at = now() FROM d WHERE l.tenant_id = '$T_retained' AND l.event_id = d.id" > /dev/null
export_of retained "$D/retained.ndjson" || true
verify_both retained "$D/retained.ndjson"
check "retained: a deletion marked as retention is not detected, as the README says: both verifiers exit 0, one leaf removed ($V_RC $P_RC: $(head -n 1 "$D/retained.ndjson.out"))" \
	eval '[ "$V_RC $P_RC" = "0 0" ] && grep -q "(1 removed)" "$D/retained.ndjson.out"'

# ---- 4. a move: the log rebuilt in the new cell ----
# clean moved to us-west-2: the new cell's appender rebuilds its log from
# the copied events, in their order, so the checkpoints saved before the
# move verify against an export taken after it.
move_state() { api GET "/v1/tenants/$T_clean/moves/$1" | jget state; }
move_ended() { case "$(move_state "$1")" in done | failed | aborted) return 0 ;; esac; return 1; }
if M=$(api POST "/v1/tenants/$T_clean/moves" '{"to_cell":"us-west-2","erase_after_seconds":0}' | jget id); then
	wait_until 60 move_ended "$M" || true
	check "move: clean's move to us-west-2 ends done within 60 s ($(move_state "$M"))" [ "$(move_state "$M")" = done ]
	check "move: the new cell signs a checkpoint of the 40 copied events within 20 s" wait_until 20 cp_covers clean 40
	export_of clean "$D/moved.ndjson" || true
	verify_both clean "$D/moved.ndjson"
	check "move: the checkpoints saved before the move verify against the export after it (celltrail-verify exit $V_RC, rfc9162.py exit $P_RC: $(head -n 1 "$D/moved.ndjson.out"))" \
		[ "$V_RC $P_RC" = "0 0" ]
	cell=$(tail -n 1 "$D/moved.ndjson" | "$PY" -c '
import base64, json, sys
t = json.load(sys.stdin)["checkpoint"].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))["cell"])' 2>/dev/null || true)
	check "move: the export's checkpoint is the new cell's ($cell)" [ "$cell" = us-west-2 ]
else
	bad "move: the move of clean to us-west-2 was not created"
fi
# Then to region eu: its checkpoints are signed with eu's key, so the
# customer verifies with both regions' JWK sets (found the same way).
mv_region clean eu || true
mv_done "region move" clean 60
EP=$DP_URL_eu
check "region move: eu signs a checkpoint of the 40 copied events within 20 s" wait_until 20 cp_covers clean 40
curl -fsS --max-time 5 "$(api GET /v1/regions/eu | jget log_jwks_url)" > "$D/jwks.eu.json" || bad "region move: no JWK set at eu's log_jwks_url"
jq -s '{keys: (.[0].keys + .[1].keys)}' "$D/jwks.json" "$D/jwks.eu.json" > "$D/jwks.both.json"
cp "$D/jwks.json" "$D/jwks.us.json"; cp "$D/jwks.both.json" "$D/jwks.json"
export_of clean "$D/moved-eu.ndjson" || true
verify_both clean "$D/moved-eu.ndjson"
check "region move: the checkpoints saved in us verify against the export at eu, with both regions' keys (celltrail-verify exit $V_RC, rfc9162.py exit $P_RC: $(head -n 1 "$D/moved-eu.ndjson.out"))" \
	[ "$V_RC $P_RC" = "0 0" ]
cp "$D/jwks.eu.json" "$D/jwks.json"
verify_both clean "$D/moved-eu.ndjson"
check "region move: with eu's keys alone, us's checkpoints do not verify (exit $V_RC $P_RC)" [ "$V_RC $P_RC" = "1 1" ]

echo "log test: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ "$FAIL" = 0 ]
