#!/bin/sh
# Fault scenarios on a private local stack under load (make faults). Each
# scenario runs load generators (bin/faults-load) that record every
# request's id and status, injects one fault, and checks the outcome
# written in tests/faults/README.md: no acknowledged event lost, usage
# billed exactly, data planes serving where the design says they do, and
# recovery without a restart by hand. The last, restore, destroys a cell's
# database and restores it from a base backup and the WAL archive
# (deploy/backup/), and measures the recovery point it reached.
#
#   tests/faults/run.sh [BIN]
#
# FAULTS_PORT (18700): the first of 100 ports (see lib.sh). FAULTS_ONLY:
# the scenarios to run (names as in the README), space-separated;
# FAULTS_SKIP: scenarios not to run (make test skips expiry, a 60 s wait).
# FAULTS_RATE (100): requests a second of each ingest load.
# KEEP_TEST_LOGS=1 keeps the stack, its logs and every load record.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${FAULTS_PORT:-18700}
ONLY=${FAULTS_ONLY:-}
SKIP=${FAULTS_SKIP:-}
RATE=${FAULTS_RATE:-100}
HANG_SECONDS=12  # longer than the usage reporter's 10 s send timeout

[ -x "$BIN/control-plane" ] && [ -x "$BIN/data-plane" ] && [ -x "$BIN/faults-load" ] ||
	{ echo "faults: build first: make $BIN/faults-load services" >&2; exit 1; }

WORK=$(mktemp -d /tmp/celltrail-faults.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
. "$ROOT/tests/faults/cells.sh"
. "$ROOT/tests/faults/moves.sh"
. "$ROOT/tests/faults/restore.sh"

CACHE_FS="$WORK/cachefs"
MOUNTED=""
cleanup() {
	load_stop
	stack_down
	[ -z "$MOUNTED" ] || umount "$CACHE_FS" 2>/dev/null || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "faults: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

want() {
	case " $SKIP " in *" $1 "*) return 1 ;; esac
	[ -z "$ONLY" ] || case " $ONLY " in *" $1 "*) true ;; *) false ;; esac
}

SUMMARY="$WORK/summary"
: > "$SUMMARY"
begin() { # name description
	SCEN=$1
	SCEN_DIR="$WORK/$1"
	mkdir -p "$SCEN_DIR"
	SCEN_T0=$(date +%s)
	SCEN_STORED=0 SCEN_BILLED=0
	echo "== $1: $2"
}
# After check_tenant: adds the tenant's figures to the scenario's.
tally() {
	SCEN_STORED=$((SCEN_STORED + STORED))
	case "$BILLED" in *[!0-9]* | '') SCEN_BILLED=unknown ;; *) [ "$SCEN_BILLED" = unknown ] || SCEN_BILLED=$((SCEN_BILLED + BILLED)) ;; esac
	printf '  figures %-14s stored %d, billed %s, stored without a 201 (outcome unknown to the client) %d\n' \
		"$1:" "$STORED" "$BILLED" "$FIG_UNACKED_STORED"
}
finish() {
	figures "$SCEN"
	cat "$SCEN_DIR"/*.load 2>/dev/null | awk -v s="$SCEN" -v st="$SCEN_STORED" -v bi="$SCEN_BILLED" -v t="$(($(date +%s) - SCEN_T0))" '
		{ n++; if ($2 == "post") { posts++; if ($3 == 201) { acked++; ev += $5 } } if ($3 !~ /^2/) { e++; by[$3]++ } }
		END { errs = ""; for (k in by) errs = errs (errs ? " " : "") k ":" by[k]
		      printf "%-12s %6d %6d %6d %6d %6d  %-18s %6d %6s %4ds\n", s, n, posts, acked, ev, e, errs ? errs : "-", st, bi, t }' >> "$SUMMARY"
}

errors_total() { # load names...: requests of them not answered 2xx
	_e=0
	for _l in "$@"; do
		set -- $(load_counts "$SCEN_DIR/$_l.load")
		_e=$((_e + $3))
	done
	echo "$_e"
}
no_errors() { [ "$(errors_total "$@")" = 0 ]; }
sent_in() { load_counts "$SCEN_DIR/$1.load" "$2" "$3" | cut -d' ' -f1; }
errors_in() { load_counts "$SCEN_DIR/$1.load" "$2" "$3" | cut -d' ' -f3; }
cp_down() { ! cp_healthy; }
same_pid() { svc_alive "$1" && [ "$(svc_pid "$1")" = "$2" ]; }
metric() { # port name: a sample's value
	curl -s --max-time 3 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
# The ver claim of the JWT in FILE.
jwt_ver() {
	python3 -c '
import base64, json, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["ver"])' "$1" 2>/dev/null || echo none
}
# The version a cache directory reaches: config.jwt, then the deltas kept
# beside it (config.deltas, one token a line), each of which must decode.
cache_ver() {
	python3 -c '
import base64, json, os, sys
def ver(t):
    p = t.strip().split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["ver"]
v = ver(open(os.path.join(sys.argv[1], "config.jwt")).read())
d = os.path.join(sys.argv[1], "config.deltas")
if os.path.exists(d):
    for line in open(d).read().splitlines():
        if line.strip():
            v = ver(line)
print(v)' "$1" 2>/dev/null || echo none
}
rfc3339_ms() { date -u -d "$1" +%s%3N; }

T_START=$(date +%s)
echo "== faults: private stack on ports $BASE..$((BASE + 99)) (work: $WORK)"
# The drain empties a cell of its own.
want cell-drain && export STACK_CELLS_us="us-east-1 us-west-2 us-east-2"
stack_up "us eu jp"
api POST /v1/plans '{"id":"faults","name":"Fault tests","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create plan faults"
# A tenant of its own per scenario, so that each one's counts are exact.
for s in cpkill:us cphang:eu cpabsent:jp cpdb:us dpkill:us regdb:eu cachefull:eu staleserve:jp staleclosed:jp; do
	set -- $(new_tenant "${s%%:*}" "${s#*:}" faults)
	eval "T_${s%%:*}=\$1 K_${s%%:*}=\$2"
done
for r in us eu jp; do
	dp_synced "$r" "$(dp_port "$r")" 20 || fatal "data plane $r did not get the current configuration"
done
cells_tenants
echo "  stack ready in $(($(date +%s) - T_START)) s: regions us eu jp, cells$ALL_CELLS, one data plane each (region X's own: \$DP_X, its first cell's), a tenant per scenario on plan faults"

# ---------------------------------------------------------------------------
if want cp-kill; then
begin cp-kill "the control plane is killed (SIGKILL) under load, then started again"
P=$(dp_port us)
dp0=$(svc_pid "$DP_us")
load_start post "$P" "$K_cpkill" post "$RATE"
load_start tenant "$P" "$K_cpkill" tenant $((RATE / 2))
sleep 2
t_kill=$(now_ms)
svc_kill control-plane
check "the control plane is gone" cp_down
sleep 4
t_back=$(now_ms)
cp_start
key=$(new_key "$T_cpkill")
check "a change made at the restarted control plane reaches the data plane (a new key works within 15 s)" \
	wait_until 15 key_works "$P" "$key"
sleep 1
load_stop
check "while the control plane was down: $(sent_in post "$t_kill" "$t_back") POSTs and $(sent_in tenant "$t_kill" "$t_back") GET /v1/tenant, none failed" \
	[ "$(errors_in post "$t_kill" "$t_back")$(errors_in tenant "$t_kill" "$t_back")" = 00 ]
check "no request failed over the whole scenario ($(errors_total post tenant))" no_errors post tenant
check "the data plane was not restarted" same_pid "$DP_us" "$dp0"
check_tenant cp-kill us "$T_cpkill" "$(dp_port us)" "$K_cpkill" "$SCEN_DIR/post.load" "$SCEN-post"
tally cp-kill
finish
fi

# ---------------------------------------------------------------------------
if want cp-hang; then
begin cp-hang "the control plane hangs (SIGSTOP) for ${HANG_SECONDS} s under load, then resumes (SIGCONT)"
P=$(dp_port eu)
dp0=$(svc_pid "$DP_eu")
cp0=$(svc_pid control-plane)
fail0=$(metric "$P" dp_usage_send_failures_total)
load_start post "$P" "$K_cphang" post "$RATE"
load_start tenant "$P" "$K_cphang" tenant $((RATE / 2))
sleep 2
t_stop=$(now_ms)
svc_signal control-plane STOP
sleep 2
check "the hung control plane does not answer (/healthz: $(http_status "$CP_URL/healthz"))" cp_down
sleep $((HANG_SECONDS - 2))
t_cont=$(now_ms)
svc_signal control-plane CONT
check "the control plane answers again within 10 s, same process" wait_until 10 cp_healthy
key=$(new_key "$T_cphang")
check "a change made after it resumed reaches the data plane (a new key works within 15 s)" \
	wait_until 15 key_works "$P" "$key"
sleep 1
load_stop
fail1=$(metric "$P" dp_usage_send_failures_total)
check "while the control plane hung: $(sent_in post "$t_stop" "$t_cont") POSTs and $(sent_in tenant "$t_stop" "$t_cont") GET /v1/tenant, none failed" \
	[ "$(errors_in post "$t_stop" "$t_cont")$(errors_in tenant "$t_stop" "$t_cont")" = 00 ]
check "no request failed over the whole scenario ($(errors_total post tenant))" no_errors post tenant
check "usage reports to the hung control plane failed and were retried (send failures $fail0 -> $fail1)" \
	[ "${fail1:-0}" -gt "${fail0:-0}" ]
check "neither the control plane nor the data plane was restarted" \
	eval 'same_pid control-plane "$cp0" && same_pid "$DP_eu" "$dp0"'
check_tenant cp-hang eu "$T_cphang" "$(dp_port eu)" "$K_cphang" "$SCEN_DIR/post.load" "$SCEN-post"
tally cp-hang
finish
fi

# ---------------------------------------------------------------------------
if want cp-absent; then
begin cp-absent "a data plane starts while the control plane is absent"
P=$(dp_port jp)
PN=$((BASE + 10))
svc_stop control-plane
ver=$(readyz "$P" config_version)
dp_restart jp
check "the restarted data plane is ready at once from its cache (readyz $(http_status "http://127.0.0.1:$P/readyz"), source $(readyz "$P" source), version $(readyz "$P" config_version) = $ver)" \
	eval '[ "$(http_status "http://127.0.0.1:$P/readyz")" = 200 ] && [ "$(readyz "$P" source)" = cache ] && [ "$(readyz "$P" config_version)" = "$ver" ]'
want cell-cp-down && cells_cp_down_start
dp0=$(svc_pid "$DP_jp")
load_start post "$P" "$K_cpabsent" post "$RATE"
load_start tenant "$P" "$K_cpabsent" tenant $((RATE / 2))
# A new instance has no cache: it must not serve until it has pulled.
mkdir -p "$WORK/cache-jp-new"
dp_start data-plane-jp-new jp "$PN" "$WORK/cache-jp-new"
sleep 1
s_ready=$(http_status "http://127.0.0.1:$PN/readyz")
s_tenant=$(http_status "http://127.0.0.1:$PN/v1/tenant" -H "Authorization: Bearer $K_cpabsent")
check "a new instance with an empty cache is not ready (readyz $s_ready) and does not serve (GET /v1/tenant $s_tenant)" \
	[ "$s_ready$s_tenant" = 503503 ]
sleep 4
want cell-cp-down && cells_cp_down_wait
t_cp=$(now_ms)
cp_start
check "the new instance becomes ready by itself once the control plane is back (within 15 s)" \
	wait_until 15 eval '[ "$(http_status "http://127.0.0.1:$PN/readyz")" = 200 ]'
key=$(new_key "$T_cpabsent")
check "a change made now reaches both, the restarted one pulling again by itself (a new key works within 15 s)" \
	wait_until 15 eval 'key_works "$P" "$key" && key_works "$PN" "$key"'
sleep 1
load_stop
check "while the control plane was absent: $(sent_in post 0 "$t_cp") POSTs and $(sent_in tenant 0 "$t_cp") GET /v1/tenant, none failed" \
	[ "$(errors_in post 0 "$t_cp")$(errors_in tenant 0 "$t_cp")" = 00 ]
check "no request failed over the whole scenario ($(errors_total post tenant))" no_errors post tenant
check "the data plane was not restarted again" same_pid "$DP_jp" "$dp0"
svc_stop data-plane-jp-new
check_tenant cp-absent jp "$T_cpabsent" "$(dp_port jp)" "$K_cpabsent" "$SCEN_DIR/post.load" "$SCEN-post"
tally cp-absent
want cell-cp-down && cells_cp_down_check "$t_cp"
finish
fi

# ---------------------------------------------------------------------------
if want cp-db; then
begin cp-db "the control plane's PostgreSQL (a cluster of its own) is stopped for 5 s under load, then started"
P=$(dp_port us)
dp0=$(svc_pid "$DP_us")
cp0=$(svc_pid control-plane)
fail0=$(metric "$P" dp_usage_send_failures_total)
load_start post "$P" "$K_cpdb" post "$RATE"
load_start tenant "$P" "$K_cpdb" tenant $((RATE / 2))
sleep 2
t_down=$(now_ms)
pg_stop "$CP_PG_DATA"
sleep 1
s_ready=$(http_status "$CP_URL/readyz")
s_get=$(http_status "$CP_URL/v1/tenants/$T_cpdb" -H "Authorization: Bearer $ADMIN_TOKEN")
s_health=$(http_status "$CP_URL/healthz")
check "the control plane without its database: /readyz $s_ready, GET /v1/tenants/{id} $s_get (503 both), /healthz $s_health" \
	[ "$s_ready$s_get$s_health" = 503503200 ]
sleep 4
t_up=$(now_ms)
pg_start "$CP_PG_DATA" "$STACK_CP_PG_PORT" "$(dirname "$CP_PG_DATA")/postgres.log" || fatal "the control plane's PostgreSQL did not start again"
check "the control plane is ready again by itself within 20 s" \
	wait_until 20 eval '[ "$(http_status "$CP_URL/readyz")" = 200 ]'
key=$(new_key "$T_cpdb")
check "a change made now reaches the data plane (a new key works within 15 s)" wait_until 15 key_works "$P" "$key"
sleep 1
load_stop
fail1=$(metric "$P" dp_usage_send_failures_total)
check "while the control plane's database was down: $(sent_in post "$t_down" "$t_up") POSTs and $(sent_in tenant "$t_down" "$t_up") GET /v1/tenant, none failed" \
	[ "$(errors_in post "$t_down" "$t_up")$(errors_in tenant "$t_down" "$t_up")" = 00 ]
check "no request failed over the whole scenario ($(errors_total post tenant))" no_errors post tenant
check "usage reports failed meanwhile and were retried (send failures $fail0 -> $fail1)" [ "${fail1:-0}" -gt "${fail0:-0}" ]
check "neither the control plane nor the data plane was restarted" \
	eval 'same_pid control-plane "$cp0" && same_pid "$DP_us" "$dp0"'
check_tenant cp-db us "$T_cpdb" "$(dp_port us)" "$K_cpdb" "$SCEN_DIR/post.load" "$SCEN-post"
tally cp-db
finish
fi

# ---------------------------------------------------------------------------
if want dp-kill; then
begin dp-kill "a data plane is killed (SIGKILL) during ingest and started again"
P=$(dp_port us)
load_start post "$P" "$K_dpkill" post "$RATE"
load_start batch "$P" "$K_dpkill" post 10 -b 10
load_start tenant "$P" "$K_dpkill" tenant $((RATE / 2))
sleep 2
t_kill=$(now_ms)
svc_kill "$DP_us"
sleep 1
dp_start "$DP_us" us "$P" "$(dp_cache us)"
t_up=$(now_ms)
check "started again, it is ready at once from its cache" \
	eval '[ "$(http_status "http://127.0.0.1:$P/readyz")" = 200 ]'
sleep 3
load_stop
check "requests failed while it was down ($(errors_total post batch tenant)): the kill hit the load" \
	[ "$(errors_total post batch tenant)" -gt 0 ]
others=$(cat "$SCEN_DIR"/*.load | awk '$3 !~ /^2/ && $3 != 0' | wc -l)
check "every failure is a request without an answer; none was answered an error ($others)" [ "$others" = 0 ]
check "every request sent from 1 s after the restart succeeded" \
	[ "$(errors_in post $((t_up + 1000)) 99999999999999)$(errors_in batch $((t_up + 1000)) 99999999999999)$(errors_in tenant $((t_up + 1000)) 99999999999999)" = 000 ]
check_tenant dp-kill us "$T_dpkill" "$(dp_port us)" "$K_dpkill" "$SCEN_DIR/post.load" "$SCEN-post" "$SCEN_DIR/batch.load" "$SCEN-batch"
tally dp-kill
finish
fi

# ---------------------------------------------------------------------------
if want regional-db; then
begin regional-db "the PostgreSQL cluster of eu's cell $(first_cell eu) is stopped for 5 s under load, then started"
P=$(dp_port eu)
dp0=$(svc_pid "$DP_eu")
load_start post "$P" "$K_regdb" post "$RATE"
load_start tenant "$P" "$K_regdb" tenant $((RATE / 2))
sleep 2
cell_pg_stop "$(first_cell eu)"
t_down=$(now_ms)  # once it is down (a fast shutdown takes a moment)
sleep 1
s_cp=$(http_status "$CP_URL/readyz")
check "the control plane (its own database) stays ready (/readyz $s_cp)" [ "$s_cp" = 200 ]
sleep 4
t_start=$(now_ms)
cell_pg_start "$(first_cell eu)" || fatal "the PostgreSQL of cell $(first_cell eu) did not start again"
t_up=$(now_ms)
sleep 4
load_stop
# Sent while it was down, and answered before it was started again (a
# request may wait DP_DB_ACQUIRE_TIMEOUT, 2 s, for a connection).
down() { awk -v a="$t_down" -v b="$((t_start - 2500))" '$6 >= a && $6 < b' "$SCEN_DIR/post.load"; }
during=$(down | wc -l)
during503=$(down | awk '$3 == 503' | wc -l)
check "POSTs sent while the database was down were answered 503 ($during503 of $during)" \
	eval '[ "$during" -gt 0 ] && [ "$during503" = "$during" ]'
down | awk '$3 != 503' | head -n 3 | sed 's/^/    | /'
others=$(awk '$3 != 201 && $3 != 503' "$SCEN_DIR/post.load" | wc -l)
check "POSTs were answered 201 or 503, nothing else ($others)" [ "$others" = 0 ]
check "GET /v1/tenant answered 200 throughout, from memory ($(errors_total tenant) failed)" no_errors tenant
check "POSTs sent from 2 s after the database is back all succeeded (no restart)" \
	[ "$(errors_in post $((t_up + 2000)) 99999999999999)" = 0 ]
check "the data plane was not restarted" same_pid "$DP_eu" "$dp0"
check_tenant regional-db eu "$T_regdb" "$(dp_port eu)" "$K_regdb" "$SCEN_DIR/post.load" "$SCEN-post"
tally regional-db
finish
fi

# ---------------------------------------------------------------------------
if want cache-full; then
begin cache-full "the configuration cache's file system is full when a new document arrives"
P=$(dp_port eu)
mkdir -p "$CACHE_FS"
how=""
if mount -t tmpfs -o size=256k,mode=0700 tmpfs "$CACHE_FS" 2>/dev/null; then
	MOUNTED=1
	how="a 256 KiB tmpfs, filled"
elif [ "$(id -u)" != 0 ]; then
	how="mount is not permitted: a read-only cache directory instead (EACCES, not ENOSPC)"
else
	how=""
fi
if [ -z "$how" ]; then
	echo "  SKIP  mount is not permitted to root here, and root ignores file modes: no way to make the cache fail"
else
	echo "  cache directory: $how"
	svc_stop "$DP_eu"
	# The whole cache: the document, the deltas applied on it, the floor.
	for f in config.jwt config.deltas version; do
		[ ! -e "$(dp_cache eu)/$f" ] || cp "$(dp_cache eu)/$f" "$CACHE_FS/"
	done
	if [ "$MOUNTED" ]; then
		dd if=/dev/zero of="$CACHE_FS/filler" bs=4k > /dev/null 2>&1 || true
	else
		chmod 0500 "$CACHE_FS"
	fi
	dp_start "$DP_eu" eu "$P" "$CACHE_FS"
	v0=$(readyz "$P" config_version)
	check "it starts from the cached document (source $(readyz "$P" source), version $v0)" \
		[ "$(readyz "$P" source)" = cache ]
	dp0=$(svc_pid "$DP_eu")
	load_start post "$P" "$K_cachefull" post "$RATE"
	load_start tenant "$P" "$K_cachefull" tenant $((RATE / 2))
	sleep 2
	key=$(new_key "$T_cachefull")
	v1=$(cp_version eu)
	check "the new document (version $v1) is applied though it cannot be cached (its new key works within 15 s)" \
		wait_until 15 key_works "$P" "$key"
	sleep 2
	load_stop
	check "the failure is logged" grep -q "version $v1 is applied but" "$STACK_VAR/log/$DP_eu.log"
	grep "version $v1 is applied but" "$STACK_VAR/log/$DP_eu.log" | head -n 1 | sed 's/^/    | /'
	check "the cached files are the previous document and deltas, whole (version $(cache_ver "$CACHE_FS") = $v0)" \
		[ "$(cache_ver "$CACHE_FS")" = "$v0" ]
	check "no temporary file is left in the cache directory ($(ls -A "$CACHE_FS" | tr '\n' ' '))" \
		[ -z "$(ls -A "$CACHE_FS" | grep -v -e '^config.jwt$' -e '^config.deltas$' -e '^version$' -e '^filler$')" ]
	check "the data plane did not crash" same_pid "$DP_eu" "$dp0"
	check "no request failed ($(errors_total post tenant))" no_errors post tenant
	svc_stop "$DP_eu"
	lines=$(wc -l < "$STACK_VAR/log/$DP_eu.log")
	dp_start "$DP_eu" eu "$P" "$CACHE_FS"
	check "restarted on the full cache, it starts from the previous document (version $v0)" \
		eval 'tail -n +$((lines + 1)) "$STACK_VAR/log/$DP_eu.log" | grep "serving the cached configuration" | grep -q "\"version\":$v0,"'
	check "and pulls the current one by itself" dp_synced eu "$P"
	if [ "$MOUNTED" ]; then rm -f "$CACHE_FS/filler"; else chmod 0700 "$CACHE_FS"; fi
	new_key "$T_cachefull" > /dev/null
	v2=$(cp_version eu)
	check "once there is room, the next document (version $v2) is cached by itself" \
		wait_until 15 eval '[ "$(cache_ver "$CACHE_FS")" = "$v2" ]'
	check_tenant cache-full eu "$T_cachefull" "$(dp_port eu)" "$K_cachefull" "$SCEN_DIR/post.load" "$SCEN-post"
	tally cache-full
	# Back to its own cache directory (older: it pulls the current document).
	svc_stop "$DP_eu"
	[ -z "$MOUNTED" ] || { umount "$CACHE_FS"; MOUNTED=""; }
	dp_start "$DP_eu" eu "$P" "$(dp_cache eu)"
	dp_synced eu "$P" || bad "the eu data plane is back on its own cache and current"
fi
finish
fi

if want cell-db; then cells_db; fi
if want cell-dp-kill; then cells_dp_kill; fi
moves_scenarios

# ---------------------------------------------------------------------------
if want expiry; then
begin expiry "the document passes its exp while the control plane is stopped (lifetime 60 s): serve vs fail-closed"
P=$(dp_port jp)
PC=$((BASE + 11))
svc_stop control-plane
cp_start CP_CONFIG_LIFETIME=60s
mkdir -p "$WORK/cache-jp-closed"
dp_start data-plane-jp-closed jp "$PC" "$WORK/cache-jp-closed" DP_STALE_POLICY=fail-closed
new_key "$T_staleserve" > /dev/null  # a new document for jp, valid 60 s
dp_synced jp "$P" && dp_synced jp "$PC" || bad "the jp data planes got the 60 s document"
exp=$(readyz "$P" expires_at)
exp_ms=$(rfc3339_ms "$exp")
check "the document in use expires within 60 s ($exp)" [ $((exp_ms - $(now_ms))) -le 60000 ]
svc_stop control-plane
load_start serve-post "$P" "$K_staleserve" post "$RATE"
load_start serve-tenant "$P" "$K_staleserve" tenant $((RATE / 2))
load_start closed-post "$PC" "$K_staleclosed" post "$RATE"
load_start closed-tenant "$PC" "$K_staleclosed" tenant $((RATE / 2))
check "both data planes report stale once it passes (within 75 s)" \
	wait_until 75 eval '[ "$(readyz "$P" stale)" = true ] && [ "$(readyz "$PC" stale)" = true ]'
sleep 3
check "serve: /readyz $(http_status "http://127.0.0.1:$P/readyz") with stale true, dp_config_stale $(metric "$P" dp_config_stale)" \
	eval '[ "$(http_status "http://127.0.0.1:$P/readyz")" = 200 ] && [ "$(metric "$P" dp_config_stale)" = 1 ]'
echo "    fail-closed: /readyz $(http_status "http://127.0.0.1:$PC/readyz"), stale $(readyz "$PC" stale)"
t_cp=$(now_ms)
cp_start
# The data planes' pulls back off to 30 s (with jitter) while it is away.
fresh() { [ "$(readyz "$P" stale)" = false ] && [ "$(readyz "$PC" stale)" = false ]; }
wait_until 40 fresh || true
t_fresh=$(now_ms)
check "with the control plane back, a new document reaches both by itself (in $(((t_fresh - t_cp) / 1000)) s; at most 40)" fresh
check "the new document has the normal lifetime (expires $(readyz "$P" expires_at))" \
	[ "$(rfc3339_ms "$(readyz "$P" expires_at)")" -gt $(($(now_ms) + 86400000)) ]
sleep 3
load_stop
check "serve: no request failed, before or after exp ($(errors_total serve-post serve-tenant))" \
	no_errors serve-post serve-tenant
check "fail-closed: no request failed before exp ($(errors_in closed-post 0 $((exp_ms - 1000)))+$(errors_in closed-tenant 0 $((exp_ms - 1000))))" \
	[ "$(errors_in closed-post 0 $((exp_ms - 1000)))$(errors_in closed-tenant 0 $((exp_ms - 1000)))" = 00 ]
stale_n=$(cat "$SCEN_DIR"/closed-*.load | awk -v a=$((exp_ms + 1000)) -v b="$t_cp" '$6 >= a && $6 < b' | wc -l)
stale_503=$(cat "$SCEN_DIR"/closed-*.load | awk -v a=$((exp_ms + 1000)) -v b="$t_cp" '$6 >= a && $6 < b && $3 == 503' | wc -l)
check "fail-closed: every request while stale was answered 503 ($stale_503 of $stale_n)" \
	eval '[ "$stale_n" -gt 0 ] && [ "$stale_503" = "$stale_n" ]'
others=$(cat "$SCEN_DIR"/closed-*.load | awk '$3 !~ /^2/ && $3 != 503' | wc -l)
check "fail-closed: nothing answered but 2xx and 503 ($others)" [ "$others" = 0 ]
check "fail-closed: every request from 1 s after the new document succeeded" \
	[ "$(errors_in closed-post $((t_fresh + 1000)) 99999999999999)$(errors_in closed-tenant $((t_fresh + 1000)) 99999999999999)" = 00 ]
svc_stop data-plane-jp-closed
check_tenant expiry-serve jp "$T_staleserve" "$(dp_port jp)" "$K_staleserve" "$SCEN_DIR/serve-post.load" "$SCEN-serve-post"
tally expiry-serve
check_tenant expiry-closed jp "$T_staleclosed" "$(dp_port jp)" "$K_staleclosed" "$SCEN_DIR/closed-post.load" "$SCEN-closed-post"
tally expiry-closed
finish
fi

# Last: it destroys and restores the database of jp's cell.
if want restore; then restore_drill; fi

echo "== faults: summary"
echo "   (requests sent, of them POSTs, POSTs acknowledged 201 and their events, requests not answered 2xx"
echo "    by status, 0 = no answer; events stored in the region; events billed at the control plane)"
printf '%-12s %6s %6s %6s %6s %6s  %-18s %6s %6s %5s\n' scenario sent posts 201 events errors "errors by status" stored billed time
cat "$SUMMARY"
echo "faults: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ "$FAIL" = 0 ]
