#!/bin/sh
# Runs the unit and integration tests with the binaries of BINDIR against a
# throwaway PostgreSQL cluster, removed afterwards.
#   tests/run.sh BINDIR LABEL
# With LABEL "asan" the binaries are the sanitizer build: any sanitizer
# report, in the tests or in a service they started, fails the run.
# With IT_SUITES set (suite names, see BINDIR/it-tests --list), only those
# integration suites run, and with IT_UNIT=0 neither the unit tests nor the
# export verifier's: make test splits each build's run in two parts that
# way, each with its own cluster. IT_PART names the part in the output.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINDIR=$(cd "$1" && pwd)
LABEL=$2
cd "$ROOT"
export IT_LABEL="$LABEL"  # a test may size its load by the build it runs against

log_prefix=celltrail-test-logs
. tests/it_env.sh
if [ "$LABEL" = asan ]; then
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:log_path=$logdir/sanitizer"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logdir/sanitizer"
	export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
fi

part=${IT_PART:-$LABEL}
status=0
t0=$(date +%s)
if [ "${IT_UNIT:-1}" != 0 ]; then
	echo "== unit tests ($part)"
	"$BINDIR/unit-tests" || status=1
	echo "== export verifier ($part)"
	sh tests/log/verify_test.sh "$BINDIR" || status=1
fi
echo "== integration tests ($part${IT_SUITES:+: $IT_SUITES})"
"$BINDIR/it-tests" || status=1

if ls "$logdir"/sanitizer* >/dev/null 2>&1; then
	echo "== sanitizer reports ($part):"
	cat "$logdir"/sanitizer*
	status=1
fi
took="$(( $(date +%s) - t0 )) s"
if [ $status -eq 0 ]; then echo "== all $part tests passed ($took)"; else echo "== $part tests FAILED ($took)"; fi
exit $status
