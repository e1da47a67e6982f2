#!/bin/sh
# Retention of events partitioned by week against row-by-row deletion of
# the same rows, and the listing of a large tenant with and without the
# rest of its cell (bin/retention-bench, tests/bench/retention_bench.c),
# on a throwaway PostgreSQL. Knobs: BENCH_EVENTS (2000000), BENCH_TENANTS
# (1000), BENCH_WEEKS (40), BENCH_BIG (BENCH_EVENTS / 10), BENCH_LISTS
# (300), BENCH_ORDER (random: events made in no order of time, the worst
# case for deletes; time: in the order they occurred, as a cell ingests
# them, BENCH_EVENTS then a multiple of BENCH_BIG). The bench holds one copy of the cell at a time, about 820 bytes
# an event with its indexes (100,000,000 events: 82 GB free on the disk
# of the throwaway cluster, /tmp), plus the first tenant's copy.
#   tests/bench/retention.sh BINDIR
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -* | '') usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1" && pwd)
cd "$ROOT"
eval "$(sh tests/pgtmp.sh create)"
trap 'sh tests/pgtmp.sh destroy "$PGTMP_DIR" || true' EXIT INT TERM
"$BIN/retention-bench" "$PGTMP_URL" "$ROOT/migrations/region"
