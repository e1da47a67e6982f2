#!/bin/sh
# End-to-end test of tenant moves on a private local stack (regions us,
# cells us-east-1 and us-west-2, and eu, cell eu-west-1; one data plane
# each, a mover per region), under light load through the regions'
# endpoints (single events with Idempotency-Key, batches, events without
# ids, GET /v1/tenant, GET /v1/events and the feed):
#
#   1. A cell move (us-east-1 -> us-west-2) and a region move (us -> eu,
#      requested by the tenant's owner, approved by an admin) of tenants of
#      MOVES_TEST_EVENTS events, side by side. After each: every event
#      acknowledged 201 is at the target exactly once, none at the source
#      once erased (erase_after_seconds 0), billed = stored, reads never
#      saw a 5xx, and the write pause (first to last 503 tenant_moving).
#   2. A feed cursor taken before the move, read after it at the tenant's
#      endpoint: every event after it, nothing missed or repeated.
#   3. A POST with an Idempotency-Key answered 201 before the move, sent
#      again after it, is answered as the first time (201, the same event)
#      with Idempotent-Replayed: true; an event with a client id sent
#      again is answered 200 (a replay).
#   4. After the region move, the old key at us is 421 with eu's endpoint,
#      and served at eu.
#   5. A move aborted while copying (the mover held with SIGSTOP once it
#      has copied some pages) leaves the target with no row of the tenant
#      and the tenant served by its source.
#
#   tests/deploy/moves_test.sh [BIN]
# Ports: MOVES_TEST_PORT (18500): the control plane, +1.. the regions'
# endpoints, +10 the cell-routers' status, +20 the movers', +40 the data
# planes, +99 PostgreSQL. KEEP_TEST_LOGS=1 keeps the stack and the load
# records.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${MOVES_TEST_PORT:-18500}
EVENTS=${MOVES_TEST_EVENTS:-3000}
RATE=20
T_START=$(date +%s)

for b in control-plane data-plane cell-router mover faults-load; do
	[ -x "$BIN/$b" ] || { echo "moves test: build first: make services $BIN/faults-load (no $BIN/$b)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/celltrail-moves-test.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
. "$ROOT/tests/faults/moves.sh"
SCEN=moves
SCEN_DIR="$WORK/moves"
mkdir -p "$SCEN_DIR"
cleanup() {
	load_stop
	[ -z "${STACK_VAR:-}" ] || kill -CONT "$(cat "$STACK_VAR/run/mover-us.pid" 2>/dev/null)" 2>/dev/null || true
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "moves test: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== moves: end-to-end test (private stack on ports $BASE..$((BASE + 99)))"
export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS="us eu" STACK_DP_INSTANCES=1 STACK_DP_ENV="$DP_TEST_ENV"
export STACK_CELLS_us="us-east-1 us-west-2" STACK_CELLS_eu=eu-west-1
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
ALL_CELLS=""
for _r in $STACK_REGIONS; do
	for _c in $(cells_of "$_r"); do eval "CELL_REGION_$(cv "$_c")=\$_r"; ALL_CELLS="$ALL_CELLS $_c"; done
done
api POST /v1/plans '{"id":"faults","name":"Move tests","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create plan faults"
# The mover of us copies in pages of 200, so that the abort below finds
# the copy under way.
mover_restart us MOVER_BATCH=200
echo "  stack ready in $(($(date +%s) - T_START)) s"

# Two tenants of us-east-1, each with EVENTS events and requests answered
# before the move (a POST with an Idempotency-Key, an event with a client
# id), then a feed cursor at the end of its trail, taken through the API.
for l in cm rm; do
	mv_tenant "$l" us us-east-1
	eval "_t=\$T_$l _k=\$K_$l"
	mv_preload us-east-1 "$_t" "$EVENTS" "pre-$l"
	wait_until 20 key_works "$(router_port us)" "$_k" || fatal "the key of $l does not work through the router"
	b='{"action":"moves.before","actor":{"id":"u-1","type":"user"}}'
	[ "$(curl -s -o "$SCEN_DIR/$l.first" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $_k" -H 'Idempotency-Key: before-1' \
		-H 'Content-Type: application/json' -d "$b" "$DP_URL_us/v1/events")" = 201 ] || fatal "$l: the POST with an Idempotency-Key was not answered 201"
	# Both acknowledged before the move: checked with the loads' events.
	printf '0 %s\n0 client-1\n' "$(jq -r .id "$SCEN_DIR/$l.first")" > "$SCEN_DIR/$l.extra.ids"
	c='{"id":"client-1","action":"moves.before","actor":{"id":"u-1","type":"user"}}'
	[ "$(http_status "$DP_URL_us/v1/events" -H "Authorization: Bearer $_k" -H 'Content-Type: application/json' -d "$c")" = 201 ] ||
		fatal "$l: the event with a client id was not answered 201"
	# The feed, page by page to its end: the cursor a consumer holds.
	cur="" more=true n=0
	: > "$SCEN_DIR/$l.before"
	while [ "$more" = true ] && [ $n -lt 100 ]; do
		curl -fsS --max-time 10 -H "Authorization: Bearer $_k" "$DP_URL_us/v1/events/feed?limit=1000${cur:+&after=$cur}" > "$SCEN_DIR/page.json" ||
			fatal "$l: the feed did not answer"
		jq -r '.items[].id' "$SCEN_DIR/page.json" >> "$SCEN_DIR/$l.before"
		cur=$(jq -r .next_cursor "$SCEN_DIR/page.json") more=$(jq -r .has_more "$SCEN_DIR/page.json") n=$((n + 1))
	done
	eval "CUR_$l=\$cur"
	# The events before the cursor: the follower need not see them again.
	eval "FEED_BEFORE_$l=\$SCEN_DIR/\$l.before"
	[ "$(sort -u "$SCEN_DIR/$l.before" | wc -l)" = $((EVENTS + 2)) ] ||
		fatal "$l: the feed before the move handed out $(wc -l < "$SCEN_DIR/$l.before") events, not $((EVENTS + 2))"
	mv_loads "$l" "$RATE" "$cur"
done
sleep 2

t0=$(now_ms)
mv_cell cm us-west-2 || fatal "the cell move was not created"
mv_region rm eu || fatal "the region move was not created"
mv_done cell-move cm 90
mv_done region-move rm 90
echo "  both moves done in $(( ($(now_ms) - t0) / 1000 )) s"
mv_show cm; mv_show rm
sleep 2
load_stop

# The requests of before the move, sent again after it at the tenant's
# endpoint: answered as replays, stored once.
b='{"action":"moves.before","actor":{"id":"u-1","type":"user"}}'
c='{"id":"client-1","action":"moves.before","actor":{"id":"u-1","type":"user"}}'
check "cm: a POST with an Idempotency-Key from before the move, sent again after it, is answered as the first time (201, same event) with Idempotent-Replayed: true" \
	mv_replay cm "$DP_URL_us" before-1 "$b" "$SCEN_DIR/cm.first"
check "rm: the same at eu, with the key of us" mv_replay rm "$DP_URL_eu" before-1 "$b" "$SCEN_DIR/rm.first"
for l in cm rm; do
	eval "_k=\$K_$l _reg=\$(api GET \"/v1/tenants/\$T_$l\" | jget region)"
	eval "_ep=\$DP_URL_$_reg"
	check "$l: an event with a client id from before the move, sent again, is answered 200 (a replay), not stored twice" \
		[ "$(http_status "$_ep/v1/events" -H "Authorization: Bearer $_k" -H 'Content-Type: application/json' -d "$c")" = 200 ]
done

# The feed cursor of before the move, read after it at the tenant's
# endpoint: exactly the events stored after it.
for l in cm rm; do
	eval "_t=\$T_$l _k=\$K_$l _cur=\$CUR_$l _reg=\$(api GET \"/v1/tenants/\$T_$l\" | jget region)"
	eval "_ep=\$DP_URL_$_reg _to=\$(api GET \"/v1/tenants/\$_t\" | jget cell)"
	: > "$SCEN_DIR/$l.after"
	more=true n=0
	while [ "$more" = true ] && [ $n -lt 100 ]; do
		curl -fsS --max-time 10 -H "Authorization: Bearer $_k" "$_ep/v1/events/feed?limit=1000&after=$_cur" > "$SCEN_DIR/page.json" || break
		jq -r '.items[].id' "$SCEN_DIR/page.json" >> "$SCEN_DIR/$l.after"
		_cur=$(jq -r .next_cursor "$SCEN_DIR/page.json") more=$(jq -r .has_more "$SCEN_DIR/page.json") n=$((n + 1))
	done
	rsql "$_to" "SELECT id FROM events WHERE tenant_id = '$_t'" | sort > "$SCEN_DIR/$l.all"
	sort "$SCEN_DIR/$l.before" > "$SCEN_DIR/$l.before.sorted"
	comm -23 "$SCEN_DIR/$l.all" "$SCEN_DIR/$l.before.sorted" > "$SCEN_DIR/$l.want"
	sort "$SCEN_DIR/$l.after" > "$SCEN_DIR/$l.after.sorted"
	got=$(wc -l < "$SCEN_DIR/$l.after") want=$(wc -l < "$SCEN_DIR/$l.want")
	dup=$(uniq -d "$SCEN_DIR/$l.after.sorted" | wc -l)
	miss=$(comm -23 "$SCEN_DIR/$l.want" "$SCEN_DIR/$l.after.sorted" | wc -l)
	again=$(comm -12 "$SCEN_DIR/$l.before.sorted" "$SCEN_DIR/$l.after.sorted" | wc -l)
	check "$l: the feed cursor of before the move, read at $_ep after it, hands out the $want events stored after it ($got: $miss missed, $dup twice, $again of before again)" \
		[ "$got $miss $dup $again" = "$want 0 0 0" ]
done

mv_check cm us-east-1 us-west-2 "$EVENTS"
mv_check rm us-east-1 eu-west-1 "$EVENTS"
mv_region_after rm

# Abort while copying: the mover is held (SIGSTOP) once the move has
# copied a page, the admin aborts, the mover goes on and erases the
# target's copy.
mv_tenant ab us us-east-1
mv_preload us-east-1 "$T_ab" 20000 pre-ab
mv_cell ab us-west-2 || fatal "the move to abort was not created"
if wait_until 30 mv_copied ab 1; then
	svc_signal mover-us STOP
	st=$(mv_field ab state) at=$(mv_count us-west-2 "$T_ab")
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
		-H 'Content-Type: application/json' -d '{}' "$CP_URL/v1/tenants/$T_ab/moves/$M_ab/abort")
	svc_signal mover-us CONT
	check "abort: answered 200 in state $st with $at events already at the target ($code)" \
		eval '[ "$code" = 200 ] && [ "$at" -gt 0 ]'
else
	bad "abort: the move did not start copying within 30 s ($(mv_field ab state))"
fi
check "abort: the move is aborted ($(mv_field ab state))" mv_in ab aborted
check "abort: the target's copy is erased within 30 s" wait_until 30 mv_erased ab target
left=$(mv_rows us-west-2 "$T_ab")
check "abort: the target holds no row of the tenant in any table ($left)" [ "$left" = 0 ]
check "abort: the source is authoritative: it holds all 20000 events ($(mv_count us-east-1 "$T_ab")) and the tenant lives there" \
	eval '[ "$(mv_count us-east-1 "$T_ab")" = 20000 ] && [ "$(api GET "/v1/tenants/$T_ab" | jget cell)" = us-east-1 ]'
check "abort: the tenant writes at its source after the abort (201)" \
	[ "$(http_status "$DP_URL_us/v1/events" -H "Authorization: Bearer $K_ab" -H 'Content-Type: application/json' \
		-d '{"id":"after-abort","action":"moves.after","actor":{"id":"a","type":"test"}}')" = 201 ]

echo "moves test: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ "$FAIL" = 0 ]
