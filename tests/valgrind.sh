#!/bin/sh
# The services under valgrind memcheck: a subset of the integration suites,
# with every binary they start from BINDIR (control-plane, data-plane,
# http-testd, their migrate and --help runs) wrapped in valgrind through
# IT_WRAP (tests/integration/harness.c), against a throwaway PostgreSQL
# cluster. Any memcheck error or definitely lost block in any of those
# processes fails the run, and its report is printed.
#   tests/valgrind.sh BINDIR
# VALGRIND_SUITES chooses the suites (CK_RUN_SUITE names, run one by one);
# the default takes about a minute and a half on a 2-core machine. The
# hostile suite (slow and malformed clients, about two minutes more here)
# is left to ASan+UBSan in make test: VALGRIND_SUITES="... hostile" adds it.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINDIR=$(cd "$1" && pwd)
SUITES=${VALGRIND_SUITES:-"http-layer services openapi"}
cd "$ROOT"

log_prefix=celltrail-valgrind-logs
. tests/it_env.sh
# Definite leaks count as errors (--errors-for-leak-kinds), so the
# summary's error count covers both; a process with errors also exits 99,
# which the tests see as a failed stop.
export IT_WRAP="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
--errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40 \
--suppressions=$ROOT/tests/valgrind.supp --log-file=$logdir/valgrind-%p.log"
# Check's per-test timeouts, for programs many times slower.
export CK_TIMEOUT_MULTIPLIER="${CK_TIMEOUT_MULTIPLIER:-4}"

status=0
start=$(date +%s)
for suite in $SUITES; do
	echo "== $suite (services under valgrind)"
	CK_RUN_SUITE=$suite "$BINDIR/it-tests" || status=1
done

checked=0
bad=0
for f in "$logdir"/valgrind-*.log; do
	[ -e "$f" ] || continue
	# A process killed by SIGKILL (a test's own doing) has no summary.
	grep -q "ERROR SUMMARY:" "$f" || continue
	checked=$((checked + 1))
	if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
		echo "== valgrind report ($(basename "$f")):"
		cat "$f"
		bad=$((bad + 1))
	fi
done
echo "== valgrind: $checked processes checked, $bad with errors or definite leaks ($(( $(date +%s) - start )) s)"
if [ "$checked" -eq 0 ]; then
	echo "== valgrind: no process ran under valgrind"
	status=1
fi
[ "$bad" -eq 0 ] || status=1
if [ $status -eq 0 ]; then echo "== all valgrind tests passed"; else echo "== valgrind tests FAILED"; fi
exit $status
