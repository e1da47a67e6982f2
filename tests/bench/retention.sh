#!/bin/sh
# Retention of events partitioned by week against row-by-row deletion of
# the same rows, and the listing of a large tenant with and without the
# rest of its cell (bin/retention-bench, tests/bench/retention_bench.c),
# on a throwaway PostgreSQL. Knobs: BENCH_EVENTS (2000000; the issue's
# figure is 100000000, about 60 GB of table and indexes per copy, and the
# bench makes two copies and a tenth), BENCH_TENANTS (1000), BENCH_WEEKS
# (40), BENCH_BIG (BENCH_EVENTS / 10), BENCH_LISTS (300).
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
