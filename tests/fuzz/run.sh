#!/bin/sh
# Runs libFuzzer targets, one after the other, each for SECONDS.
#   tests/fuzz/run.sh BINDIR SECONDS TARGET...
# Target T is BINDIR/fuzz-T. It starts from its committed seeds,
# tests/fuzz/corpus/T/ (never written), and the inputs earlier runs found,
# build/fuzz/corpus/T/ (where new ones go), with tests/fuzz/T.dict if there
# is one. A crash, a sanitizer report (leaks included), a broken invariant
# or an input slower than 25 s fails the target: its log is printed with
# the reproducer's path, and the script exits 1 once all have run.
set -u
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BINDIR=$(cd "$1" && pwd)
SECONDS_EACH=$2
shift 2
cd "$ROOT"

WORK=build/fuzz
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0
failed=0
for t in "$@"; do
	bin=$BINDIR/fuzz-$t
	seeds=tests/fuzz/corpus/$t
	corpus=$WORK/corpus/$t
	art=$WORK/artifacts/$t
	log=$WORK/logs/$t.log
	mkdir -p "$corpus" "$art" "$WORK/logs"
	[ -d "$seeds" ] || { echo "fuzz-$t: no seed corpus $seeds" >&2; exit 1; }
	opts="-max_total_time=$SECONDS_EACH -timeout=25 -rss_limit_mb=2048 -print_final_stats=1"
	opts="$opts -artifact_prefix=$art/"
	[ -f "tests/fuzz/$t.dict" ] && opts="$opts -dict=tests/fuzz/$t.dict"
	stamp=$WORK/logs/$t.start
	: >"$stamp"
	# shellcheck disable=SC2086
	"$bin" $opts "$corpus" "$seeds" >"$log" 2>&1
	rc=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	last=$(grep -aE '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	found=$(find "$art" -type f -newer "$stamp" 2>/dev/null)
	rm -f "$stamp"
	if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
		passed=$((passed + 1))
		echo "fuzz-$t: ok: ${runs:-?} runs in ${SECONDS_EACH} s (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
	else
		failed=$((failed + 1))
		echo "fuzz-$t: FAILED (exit $rc) after ${runs:-?} runs; its log, $log:"
		grep -avE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | sed 's/^/  | /'
		for f in $found; do
			echo "fuzz-$t: reproducer: $f"
			echo "fuzz-$t: rerun it with: $bin $f"
		done
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
