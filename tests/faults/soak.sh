#!/bin/sh
# A bounded soak (make soak) on a private local stack: fixed-rate mixed
# traffic to three regions (POST /v1/events, GET /v1/events, key checks
# with GET /v1/tenant), with the control plane restarted half-way.
#
#   tests/faults/soak.sh [BIN]
#
# Asserts: every request answered 2xx (those sent while the control plane
# restarts too: a data plane never calls it on a request's path); the
# resident memory (VmRSS) of every data plane, and of each control-plane
# process, grows by at most 10% from the end of its warm-up to the end;
# every acknowledged event stored, and billed exactly once the outbox has
# drained.
#
# SOAK_SECONDS (120), SOAK_WARMUP (a sixth of it, at least 10 s), SOAK_RATE
# (40: POSTs a second per region; as many key checks, a quarter as many
# queries), SOAK_PORT (18800: the first of 100 ports). KEEP_TEST_LOGS=1
# keeps the stack's logs and the records.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${SOAK_PORT:-18800}
SECONDS_=${SOAK_SECONDS:-120}
WARMUP=${SOAK_WARMUP:-$((SECONDS_ / 6 < 10 ? 10 : SECONDS_ / 6))}
RATE=${SOAK_RATE:-40}
REGIONS="us eu jp"
[ "$SECONDS_" -ge $((2 * WARMUP + 10)) ] ||
	{ echo "soak: SOAK_SECONDS ($SECONDS_) must be at least twice SOAK_WARMUP ($WARMUP) + 10" >&2; exit 2; }
[ -x "$BIN/control-plane" ] && [ -x "$BIN/data-plane" ] && [ -x "$BIN/faults-load" ] ||
	{ echo "soak: build first: make $BIN/faults-load services" >&2; exit 1; }

WORK=$(mktemp -d /tmp/celltrail-soak.XXXXXX)
chmod 0755 "$WORK"
. "$ROOT/tests/faults/lib.sh"
SAMPLER=""
cleanup() {
	[ -z "$SAMPLER" ] || { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; }
	load_stop
	stack_down
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "soak: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== soak: ${SECONDS_} s, warm-up ${WARMUP} s, per region $RATE POST/s + $RATE GET /v1/tenant/s + $((RATE / 4)) GET /v1/events/s; the control plane restarted half-way (ports $BASE..)"
stack_up "$REGIONS"
api POST /v1/plans '{"id":"soak","name":"Soak","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create plan soak"
for r in $REGIONS; do
	set -- $(new_tenant "soak-$r" "$r" soak)
	eval "T_$r=\$1 K_$r=\$2"
done
for r in $REGIONS; do
	dp_synced "$r" "$(dp_port "$r")" 20 || fatal "data plane $r did not get the current configuration"
done

SCEN=soak SCEN_DIR="$WORK/soak"
mkdir -p "$SCEN_DIR"
# Every 2 s, the RSS of the control plane and of every data plane, and the
# connections established to its port: "unix-ms name pid kB connections".
# (A data plane's RSS follows the most connections it has held at once:
# each has its own buffer, DP_CONNECTION_MEMORY, and the memory is kept
# for reuse. So the load generators hold at most 8 requests in flight
# each, and the figures say how many connections there were.)
conns() { # port
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p="$(printf '%04X' "$1")" '
		$4 == "01" { split($2, a, ":"); if (a[length(a)] == p) n++ } END { print n + 0 }'
}
sample() {
	while :; do
		t=$(now_ms)
		for n in control-plane $(for r in $REGIONS; do eval "echo \$DP_$r"; done); do
			p=$(svc_pid "$n") || continue
			kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
			case $n in control-plane) port=${CP_LISTEN##*:} ;; *) port=$(inst_port "${n#data-plane-}") ;; esac
			[ -n "$kb" ] && echo "$t $n $p $kb $(conns "$port")"
		done
		sleep 2
	done
}
sample > "$SCEN_DIR/rss" &
SAMPLER=$!

t0=$(now_ms)
for r in $REGIONS; do
	eval "key=\$K_$r"
	P=$(dp_port "$r")
	load_start "post-$r" "$P" "$key" post "$RATE" -d "$SECONDS_" -c 8
	load_start "tenant-$r" "$P" "$key" tenant "$RATE" -d "$SECONDS_" -c 8
	load_start "query-$r" "$P" "$key" query $((RATE / 4 > 0 ? RATE / 4 : 1)) -d "$SECONDS_" -c 8
done
sleep $((SECONDS_ / 2))
cp_pid1=$(svc_pid control-plane)
t_restart=$(now_ms)
svc_stop control-plane
cp_start
t_restarted=$(now_ms)
cp_pid2=$(svc_pid control-plane)
echo "  control plane restarted: pid $cp_pid1 -> $cp_pid2 ($((t_restarted - t_restart)) ms)"
for p in $LOADS; do wait "$p" 2>/dev/null || true; done
LOADS=""
t_end=$(now_ms)
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""

echo "-- requests"
total=0 errs=0
for f in "$SCEN_DIR"/*.load; do
	set -- $(load_counts "$f")
	n=$1 good=$2 bad=$3
	shift 3
	total=$((total + n)) errs=$((errs + bad))
	printf '  %-12s sent %6d  2xx %6d  errors %d%s\n' "$(basename "$f" .load)" "$n" "$good" "$bad" "${*:+ ($*)}"
done
during=$(cat "$SCEN_DIR"/*.load | awk -v a="$t_restart" -v b="$t_restarted" '$6 >= a && $6 < b' | wc -l)
during_bad=$(cat "$SCEN_DIR"/*.load | awk -v a="$t_restart" -v b="$t_restarted" '$6 >= a && $6 < b && $3 !~ /^2/' | wc -l)
expect=$((SECONDS_ * (2 * RATE + (RATE / 4 > 0 ? RATE / 4 : 1)) * 3))
check "fixed rate held: $total requests sent of $expect scheduled (at least 98%)" [ $((total * 100)) -ge $((expect * 98)) ]
check "every request answered 2xx ($errs of $total not)" [ "$errs" = 0 ]
check "while the control plane restarted: $during requests, $during_bad not 2xx" eval '[ "$during" -gt 0 ] && [ "$during_bad" = 0 ]'

echo "-- resident memory (VmRSS, kB): after warm-up -> end (connections to it then; most meanwhile)"
sample_at() { # name pid from-ms to-ms first|last|max field
	awk -v n="$1" -v p="$2" -v a="$3" -v b="$4" -v w="$5" -v f="$6" '$2 == n && $3 == p && $1 >= a && $1 <= b {
		if (w == "first" && !seen) v = $f; if (w == "last") v = $f; if (w == "max" && $f > v) v = $f; seen = 1 }
		END { print v + 0 }' "$SCEN_DIR/rss"
}
flat() { # label name pid from-ms to-ms
	a=$(sample_at "$2" "$3" "$4" "$5" first 4)
	b=$(sample_at "$2" "$3" "$4" "$5" last 4)
	pct=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%+.1f", (b - a) * 100 / a; else print "n/a" }')
	c=$(printf '%s -> %s; %s' "$(sample_at "$2" "$3" "$4" "$5" first 5)" "$(sample_at "$2" "$3" "$4" "$5" last 5)" \
		"$(sample_at "$2" "$3" "$4" "$5" max 5)")
	check "$(printf '%-42s %7d -> %7d kB (%s%%, connections %s)' "$1" "$a" "$b" "$pct" "$c")" \
		eval '[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((b * 100)) -le $((a * 110)) ]'
}
warm=$((t0 + WARMUP * 1000))
for r in $REGIONS; do
	eval "n=\$DP_$r"
	flat "data plane $r (pid $(svc_pid "$n"))" "$n" "$(svc_pid "$n")" "$warm" "$t_end"
done
flat "control plane, first (pid $cp_pid1)" control-plane "$cp_pid1" "$warm" "$t_restart"
flat "control plane, after restart (pid $cp_pid2)" control-plane "$cp_pid2" $((t_restarted + WARMUP * 1000)) "$t_end"

echo "-- stored and billed"
for r in $REGIONS; do
	eval "t=\$T_$r key=\$K_$r"
	check_tenant "soak-$r" "$r" "$t" "$(dp_port "$r")" "$key" "$SCEN_DIR/post-$r.load" "soak-post-$r"
	printf '  figures soak-%s: stored %d, billed %s\n' "$r" "$STORED" "$BILLED"
done

echo "soak: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
