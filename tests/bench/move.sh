#!/bin/sh
# Benchmark of a tenant move against a plain copy of the same rows: a
# tenant of BENCH_MOVE_EVENTS events (loaded by SQL, as the ingest stores
# them) in cell us-east-1 of a private stack is moved to us-west-2 by the
# mover, under a light write load (BENCH_MOVE_RATE single-event POSTs a
# second through the region's endpoint); the baseline, in the same run, is
# `pg_dump --data-only` of a table holding exactly those rows piped into
# `psql` into an empty table of the target cell's database with the
# events table's columns and indexes. Prints both in events/s and their
# ratio (the issue's goal: >= 0.5x), the move's copy phase alone, and the
# write pause: the move's write_pause_ms (fence to flip) and the clients'
# (first to last 503 tenant_moving).
#   tests/bench/move.sh BINDIR      (also: BENCH_ONLY=move tests/bench/run.sh BINDIR)
# Knobs: BENCH_MOVE_EVENTS (200000), BENCH_MOVE_RATE (50), BENCH_MOVE_BATCH
# (the mover's MOVER_BATCH; unset: its default), BENCH_MOVE_PORT
# (19600: the first of 100 ports of the private stack: the control plane,
# the endpoint +1, the cell-router +10, the mover +20, the data planes
# +40, PostgreSQL +99).
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -* | '') usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
N=${BENCH_MOVE_EVENTS:-200000}
RATE=${BENCH_MOVE_RATE:-50}
BASE=${BENCH_MOVE_PORT:-19600}
cd "$ROOT"
for b in control-plane data-plane cell-router mover faults-load; do
	[ -x "$BIN/$b" ] || { echo "bench: build first: make benchbins (no $BIN/$b)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/celltrail-bench-move.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
. "$ROOT/tests/faults/moves.sh"
SCEN=bench SCEN_DIR="$WORK/load"
mkdir -p "$SCEN_DIR"
cleanup() {
	load_stop
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS=us STACK_DP_INSTANCES=1 STACK_DP_ENV="$DP_TEST_ENV"
export STACK_CELLS_us="us-east-1 us-west-2"
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
for c in $CELLS_us; do eval "CELL_REGION_$(cv "$c")=us"; done
api POST /v1/plans '{"id":"faults","name":"Bench","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create the plan"

[ -z "${BENCH_MOVE_BATCH:-}" ] || mover_restart us MOVER_BATCH="$BENCH_MOVE_BATCH"
mv_tenant bm us us-east-1
t0=$(now_ms)
mv_preload us-east-1 "$T_bm" "$N" pre-bm
load_ms=$(($(now_ms) - t0))
# The rows settled as a copy would find them: vacuumed, analysed, on disk.
rsql us-east-1 "VACUUM ANALYZE events" > /dev/null
rsql us-east-1 "CHECKPOINT" > /dev/null 2>&1 || true

# The baseline: the same rows in a table of their own (bench.events, the
# events table's columns, defaults and indexes), dumped as data and
# restored into an empty table just like it in the target cell's database.
SRC=$CELL_DB_us_east_1 DST=$CELL_DB_us_west_2
bsql() { "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$1" -c "$2"; }
bsql "$SRC" "CREATE SCHEMA bench; CREATE TABLE bench.events (LIKE public.events INCLUDING ALL);
	INSERT INTO bench.events OVERRIDING SYSTEM VALUE SELECT * FROM public.events WHERE tenant_id = '$T_bm'" > /dev/null
bsql "$DST" "CREATE SCHEMA bench; CREATE TABLE bench.events (LIKE public.events INCLUDING ALL)" > /dev/null
bsql "$SRC" "VACUUM ANALYZE bench.events" > /dev/null
t0=$(now_ms)
"$PG_BIN/pg_dump" --data-only -t bench.events "$SRC" | "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DST" > /dev/null ||
	fatal "pg_dump | psql failed"
dump_ms=$(($(now_ms) - t0))
restored=$(bsql "$DST" "SELECT count(*) FROM bench.events")
[ "$restored" = "$N" ] || fatal "pg_dump | psql restored $restored rows, not $N"
bsql "$SRC" "SET client_min_messages = warning; DROP SCHEMA bench CASCADE" > /dev/null
bsql "$DST" "SET client_min_messages = warning; DROP SCHEMA bench CASCADE" > /dev/null

# The move, under a light write load through the region's endpoint.
wait_until 20 key_works "$(router_port us)" "$K_bm" || fatal "the tenant's key does not work through the router"
load_start bm-single "$(router_port us)" "$K_bm" post "$RATE" -i -a "$SCEN_DIR/bm-single.ids"
sleep 2
mv_cell bm us-west-2 || fatal "the move was not created"
mv_wait bm 600 done failed aborted || true
sleep 1
load_stop
st=$(mv_field bm state)
[ "$st" = done ] || fatal "the move ended $st: $(mv_field bm error)"
set -- $(mv_get bm | python3 -c '
import json, sys
from datetime import datetime
m = json.load(sys.stdin)
t = lambda k: datetime.fromisoformat(m[k].replace("Z", "+00:00")).timestamp()
print(m["events_copied"], m["source_events"], m["write_pause_ms"],
      int((t("finished_at") - t("copy_started_at")) * 1000), int((t("cutover_started_at") - t("copy_started_at")) * 1000))')
copied=$1 source=$2 pause=$3 move_ms=$4 copy_ms=$5
set -- $(mv_pause bm)
client_pause=$1 n503=$2 n_moving=$3
copy_s=$(curl -s "$MOVER_URL_us/metrics" | awk '$1 == "mover_copy_seconds_total" { print $2 }')

echo "Tenant move: $N events (loaded by SQL in $load_ms ms) moved us-east-1 -> us-west-2 under $RATE POST/s, MOVER_BATCH ${BENCH_MOVE_BATCH:-default}, one cluster, $(nproc) cores"
awk -v n="$N" -v d="$dump_ms" -v m="$move_ms" -v c="$copy_ms" -v cp="$copied" -v src="$source" 'BEGIN {
	b = n / (d / 1000); r = src / (m / 1000)
	printf "  baseline: pg_dump --data-only | psql, %d rows        %9.0f events/s (%d ms)\n", n, b, d
	printf "  move, claim of the copy to the flip, %d events  %9.0f events/s (%d ms): %.2fx the baseline (goal >= 0.5x: %s)\n", src, r, m, r / b, (r >= 0.5 * b ? "met" : "NOT met")
	printf "  of it the copy (copy_started_at to cutover_started_at): %d ms, %.0f events/s\n", c, cp / (c / 1000) }'
echo "  write pause: the move reports $pause ms (fence to flip); clients saw $client_pause ms from the first 503 to the end of the last ($n503 answers, $n_moving tenant_moving); mover_copy_seconds_total $copy_s"
