# The environment of the integration tests, sourced by tests/run.sh and
# tests/valgrind.sh from the repository's root with ROOT, BINDIR and
# log_prefix (the log directory's name in /tmp) set:
# a log directory (kept with KEEP_TEST_LOGS), a throwaway PostgreSQL cluster
# removed on exit, and the IT_* variables tests/integration/it.h describes.
#   log_prefix=NAME; . tests/it_env.sh
logdir=$(mktemp -d "/tmp/$log_prefix.XXXXXX")
chmod 0755 "$logdir"
eval "$(sh tests/pgtmp.sh create)"
cleanup() {
	sh tests/pgtmp.sh destroy "$PGTMP_DIR" || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "test logs kept in $logdir"; else rm -rf "$logdir"; fi
}
trap cleanup EXIT INT TERM

export IT_ROOT="$ROOT" IT_BIN="$BINDIR" IT_LOG_DIR="$logdir"
export IT_PG_URL="$PGTMP_URL" IT_PG_DIR="$PGTMP_DIR" IT_PG_PORT="$PGTMP_PORT"
# The log keys of every data plane the tests start (it_spawn gives them
# DP_LOG_KEYS_DIR), made once before any starts: instances sharing a ring
# must not race to create its first key.
export IT_LOG_KEYS_DIR="$logdir/log-keys"
DP_LOG_KEYS_DIR="$IT_LOG_KEYS_DIR" "$BINDIR/data-plane" log-jwks >/dev/null || {
	echo "it_env.sh: cannot create the log key ring in $IT_LOG_KEYS_DIR" >&2
	exit 1
}
