# Shared by tests/faults/run.sh and tests/faults/soak.sh (sourced): a
# private local stack, its processes, load generators and the checker that
# counts what was acknowledged, stored and billed.
#
# The caller sets ROOT, BIN (the binaries), WORK (a scratch directory the
# stack's PostgreSQL user can reach) and BASE (the first of 100 ports: the
# control plane on BASE, the regions' endpoints (their routers) on
# BASE+1.., extra data planes from BASE+10, the cell-routers' status from
# BASE+20, the movers' from BASE+30, the cells' data planes from BASE+40, the cells' PostgreSQL
# clusters from BASE+90 (one per cell, in the order run), the control
# plane's on BASE+98).
#
# The stack runs each region as cells (deploy/local/stack.sh: us has
# us-east-1 and us-west-2, eu eu-west-1, jp ap-northeast-1), one data plane
# per cell, each cell's database in a cluster of its own. A region's "own"
# data plane, which the scenarios of one region load and restart straight
# (bypassing the router), is its first cell's: its service name is $DP_<r>
# (dp_port REGION, dp_cache REGION); tenants are placed in the first cell
# unless new_tenant names another. For scenarios across cells: router_port
# (a region's endpoint), cell_dps_kill / cell_dps_start (a cell's data
# planes), cell_pg_stop / cell_pg_start (a cell's cluster), router_start
# (a region's cell-router, after svc_stop cell-router-REGION),
# balancer_restart (HAProxy), rsql CELL.

. "$ROOT/deploy/local/pg.sh"

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "  ok    $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL  $*"; }
check() { # description command...
	_d=$1; shift
	if "$@"; then ok "$_d"; else bad "$_d"; fi
}
fatal() { echo "faults: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# Settings every data plane of the tests runs with: usage reported every
# second, so that a test does not wait ten for the outbox; FAULTS_DP_ENV
# adds more (VAR=value, space-separated).
DP_TEST_ENV="DP_USAGE_REPORT_INTERVAL=1s${FAULTS_DP_ENV:+ $FAULTS_DP_ENV}"

# ---- the stack ----

# A cell name as part of a variable's name: us-east-1 -> us_east_1.
cv() { printf '%s' "$1" | tr - _; }

# Starts a private stack: its cells with one data plane each, behind the
# regions' routers, each cell's database and the control plane's in a
# PostgreSQL cluster of its own.
stack_up() { # regions
	export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
	export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
	export STACK_PG_PORT=$((BASE + 99)) STACK_CP_PG_PORT=$((BASE + 98))
	export STACK_CELL_CLUSTERS=1 STACK_CELL_PG_PORT=$((BASE + 90))
	export STACK_ROUTER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
	export STACK_MOVER_PORT=$((BASE + 30))
	export STACK_REGIONS="$1" STACK_DP_INSTANCES=1 STACK_DP_ENV="$DP_TEST_ENV"
	sh "$ROOT/deploy/local/stack.sh" start > "$WORK/stack.log" 2>&1 ||
		{ tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
	. "$STACK_VAR/stack.env"
	# What the control plane is started with, to start it again.
	CP_SECRETS_KEY=$(sed -n 's/^CP_SECRETS_KEY=//p' "$STACK_VAR/secrets")
	CP_SIGNING_KEK=$(sed -n 's/^CP_SIGNING_KEK=//p' "$STACK_VAR/secrets")
	CP_PG_DATA=$(readlink -f "$STACK_VAR/pg-cp")/data
	ALL_CELLS=""
	for _r in $STACK_REGIONS; do
		eval "_cs=\$CELLS_$_r"
		for _c in $_cs; do
			eval "CELL_REGION_$(cv "$_c")=\$_r"
			ALL_CELLS="$ALL_CELLS $_c"
		done
		# The region's own data plane: its first cell's first instance.
		_i=$(cell_instances "${_cs%% *}" | head -n 1)
		[ -n "$_i" ] || fatal "region $_r has no data plane"
		eval "DP_$_r=data-plane-\$_i"
	done
}

# The cells of REGION (first cell first), the region of CELL, the region's
# first cell.
cells_of() { eval "echo \$CELLS_$1"; }
region_of() { eval "echo \${CELL_REGION_$(cv "$1"):-}"; }
first_cell() { set -- $(cells_of "$1"); echo "$1"; }

# The data-plane instances of CELL (names as deploy/drivers/local gives
# them: <cell>-<n>; the service is data-plane-<instance>).
cell_instances() { sh "$ROOT/deploy/drivers/local" list-instances "$1"; }
inst_port() { sed -n 's/^INST_PORT=//p' "$STACK_VAR/run/data-plane-$1.inst"; }

# The port of REGION's endpoint (its router), of its own data plane
# (straight), and that data plane's cache directory.
router_port() { eval "echo \${DP_URL_$1##*:}"; }
# The database of a connection URL, as the cluster's superuser (PG_URL,
# over TLS like every connection of the stack: its query string is kept
# and the database named in it).
su_url() { # database-url
	_db=${1%%\?*}
	printf '%s&dbname=%s\n' "$PG_URL" "${_db##*/}"
}
# The base URL of a port: a region's endpoint (its router) is https, with
# the stack's CA (CURL_CA_BUNDLE); a data plane's own port plain http.
port_url() { # port
	for _r in $REGIONS; do
		[ "$1" = "$(router_port "$_r")" ] && { echo "https://127.0.0.1:$1"; return; }
	done
	echo "http://127.0.0.1:$1"
}
dp_port() { eval "inst_port \${DP_$1#data-plane-}"; }
dp_cache() { eval "echo \$STACK_VAR/cache/\${DP_$1#data-plane-}"; }

stack_down() {
	# A process left stopped (SIGSTOP) would hold up its SIGTERM.
	for f in "$STACK_VAR"/run/*.pid; do
		[ -e "$f" ] && svc_alive "$(basename "$f" .pid)" && kill -CONT "$(cat "$f")" 2>/dev/null
	done
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
}

# ---- processes, recorded as the stack records its own (run/NAME.pid and
# NAME.start), so that `stack.sh stop` stops them too ----

proc_start() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

svc_pid() { cat "$STACK_VAR/run/$1.pid" 2>/dev/null; }

svc_alive() { # name: running, and the very process started (not a reused pid)
	_p=$(svc_pid "$1")
	[ -n "$_p" ] && [ "$(proc_start "$_p")" = "$(cat "$STACK_VAR/run/$1.start" 2>/dev/null)" ]
}

svc_run() { # name binary VAR=value...
	_n=$1 _b=$2
	shift 2
	env "$@" "$_b" >> "$STACK_VAR/log/$_n.log" 2>&1 < /dev/null &
	echo $! > "$STACK_VAR/run/$_n.pid"
	proc_start $! > "$STACK_VAR/run/$_n.start"
}

svc_signal() { # name signal
	svc_alive "$1" && kill "-$2" "$(svc_pid "$1")"
}

svc_wait_gone() { # name seconds
	_i=0
	while svc_alive "$1"; do
		_i=$((_i + 1))
		[ $_i -le $(($2 * 10)) ] || return 1
		sleep 0.1
	done
}

svc_stop() { # name: SIGTERM (it drains), SIGKILL 15 s later
	svc_alive "$1" || return 0
	svc_signal "$1" TERM
	svc_wait_gone "$1" 15 || { svc_signal "$1" KILL; svc_wait_gone "$1" 5; }
}

svc_kill() { # name: SIGKILL, returns once it is gone
	svc_signal "$1" KILL
	svc_wait_gone "$1" 10
}

wait_until() { # seconds command...: polls every 0.2 s until it succeeds
	_end=$(($(now_ms) + $1 * 1000))
	shift
	while ! "$@"; do
		[ "$(now_ms)" -lt $_end ] || return 1
		sleep 0.2
	done
}

http_status() { # url [curl options...]
	_u=$1; shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$_u" 2>/dev/null || true
}

# The control plane, as the stack starts it, with more settings if given.
cp_start() { # [VAR=value...]
	svc_run control-plane "$BIN/control-plane" CP_LISTEN="$CP_LISTEN" CP_TRUSTED_PROXIES=127.0.0.1 \
		CP_DATABASE_URL="$CP_DATABASE_URL" CP_ADMIN_TOKEN="$ADMIN_TOKEN" \
		CP_SECRETS_KEY="$CP_SECRETS_KEY" CP_SIGNING_KEK="$CP_SIGNING_KEK" \
		CP_SIGNING_KEYS_DIR="$STACK_VAR/signing-keys" \
		CP_REGIONS_FILE="$STACK_VAR/run/regions.conf" "$@"
	wait_until 20 cp_healthy || fatal "the control plane did not start (log: $STACK_VAR/log/control-plane.log)"
}
cp_healthy() { [ "$(http_status "$CP_URL/healthz")" = 200 ]; }

# A data plane of CELL (or of REGION's first cell) as the stack starts
# one, on PORT with CACHE_DIR, with more settings if given. NAME is
# data-plane-<instance> for one of the stack's instances.
dp_start() { # name cell|region port cache-dir [VAR=value...]
	_name=$1 _cell=$2 _port=$3 _cache=$4
	shift 4
	[ -n "$(region_of "$_cell")" ] || _cell=$(first_cell "$_cell")
	_reg=$(region_of "$_cell")
	[ -n "$_reg" ] || fatal "dp_start: no cell or region '$2'"
	eval "_db=\$CELL_DB_$(cv "$_cell") _tok=\$CELL_TOKEN_$(cv "$_cell")"
	# shellcheck disable=SC2086
	svc_run "$_name" "$BIN/data-plane" DP_REGION="$_reg" DP_CELL="$_cell" DP_LISTEN="127.0.0.1:$_port" \
		DP_CONTROL_PLANE_URL="$CP_URL" DP_CONTROL_PLANE_CA_FILE="$CA_CERT" DP_DATABASE_URL="$_db" DP_CELL_TOKEN="$_tok" \
		DP_TRUST_BUNDLE="$TRUST_BUNDLE" DP_CACHE_DIR="$_cache" DP_INSTANCE="faults-$_name" \
		DP_LOG_KEYS_DIR="$STACK_VAR/log-keys/$_reg" $DP_TEST_ENV "$@"
	wait_until 20 dp_healthy "$_port" || fatal "$_name did not start (log: $STACK_VAR/log/$_name.log)"
}
dp_healthy() { [ "$(http_status "http://127.0.0.1:$1/healthz")" = 200 ]; }

# The region's own data plane, again (same port, cache and balancer slot),
# with more settings if given.
dp_restart() { # region [VAR=value...]
	_reg=$1; shift
	eval "_n=\$DP_$_reg"
	svc_stop "$_n"
	dp_start "$_n" "$_reg" "$(dp_port "$_reg")" "$(dp_cache "$_reg")" "$@"
}

# Every data plane of CELL killed (SIGKILL), or started again as they were
# (same ports, caches and balancer slots: the router's health checks take
# them back).
cell_dps_kill() { # cell
	for _i in $(cell_instances "$1"); do svc_kill "data-plane-$_i"; done
}
cell_dps_start() { # cell [VAR=value...]
	_c=$1; shift
	for _i in $(cell_instances "$_c"); do
		svc_alive "data-plane-$_i" ||
			dp_start "data-plane-$_i" "$_c" "$(inst_port "$_i")" "$STACK_VAR/cache/$_i" "$@"
	done
}

# REGION's cell-router, started as the stack starts it (from its settings
# file; stop it with svc_stop cell-router-REGION); ready once it has
# applied a verified document, from the control plane or its cache.
router_start() { # region
	_n=cell-router-$1
	( set -a; . "$STACK_VAR/run/router-$1.env"; exec "$BIN/cell-router" ) >> "$STACK_VAR/log/$_n.log" 2>&1 < /dev/null &
	echo $! > "$STACK_VAR/run/$_n.pid"
	proc_start $! > "$STACK_VAR/run/$_n.start"
	wait_until 20 router_ready "$1" || fatal "$_n did not become ready (log: $STACK_VAR/log/$_n.log)"
}
router_ready() { eval "[ \"\$(http_status \"\$ROUTER_URL_$1/readyz\")\" = 200 ]"; }

# HAProxy, every region's router, stopped and started again from its
# configuration and the map files on disk (it reads no control plane);
# the data planes are back in their backends once the driver puts them.
balancer_restart() {
	svc_stop balancer
	rm -f "$STACK_VAR/run/balancer.sock"
	haproxy -db -f "$STACK_VAR/run/balancer.cfg" >> "$STACK_VAR/log/balancer.log" 2>&1 < /dev/null &
	echo $! > "$STACK_VAR/run/balancer.pid"
	proc_start $! > "$STACK_VAR/run/balancer.start"
	wait_until 10 test -S "$STACK_VAR/run/balancer.sock" || fatal "HAProxy did not start again"
	for _c in $ALL_CELLS; do
		for _i in $(cell_instances "$_c"); do
			sed -i 's/^INST_ENABLED=1$/INST_ENABLED=0/' "$STACK_VAR/run/data-plane-$_i.inst"
			wait_until 20 sh "$ROOT/deploy/drivers/local" ready "$_i" 2>/dev/null ||
				fatal "data plane $_i is not back in its backend"
		done
	done
}

# A cell's PostgreSQL cluster (var/pg-<cell>), stopped (fast) or started.
cell_pg_data() { echo "$(readlink -f "$STACK_VAR/pg-$1")/data"; }
cell_pg_stop() { pg_stop "$(cell_pg_data "$1")"; }
cell_pg_start() { # cell
	eval "_u=\$CELL_DB_$(cv "$1")"
	_p=${_u##*:}; _p=${_p%%/*}
	pg_start "$(cell_pg_data "$1")" "$_p" "$(dirname "$(cell_pg_data "$1")")/postgres.log"
}

# ---- JSON and SQL ----

# Prints a member of the JSON document on stdin: jget a.b.0.c
jget() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d.get(k)
print("null" if d is None else str(d).lower() if isinstance(d, bool) else d)' "$1"
}

# An admin call to the control plane: api METHOD PATH [JSON]; the body on
# stdout, fails unless 2xx.
api() {
	if [ $# -ge 3 ]; then
		curl -fsS --max-time 10 -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
			-H 'Content-Type: application/json' -d "$3" "$CP_URL$2"
	else
		curl -fsS --max-time 10 -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" "$CP_URL$2"
	fi
}

rsql() { # region|cell SQL: runs it on the cell's database (a region's: its
	# first cell's) as its data planes' role
	if [ -n "$(region_of "$1")" ]; then eval "_u=\$CELL_DB_$(cv "$1")"; else eval "_u=\$DP_DATABASE_URL_$1"; fi
	"$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$_u" -c "$2"
}

readyz() { # port member
	curl -s --max-time 3 "http://127.0.0.1:$1/readyz" | jget "$2" 2>/dev/null
}

# The region's configuration version at the control plane.
cp_version() { api GET "/v1/regions/$1" | jget config_version; }

# True once the data plane on PORT uses version MIN or later.
dp_has_version() { # port min
	_v=$(readyz "$1" config_version)
	[ -n "$_v" ] && [ "$_v" != null ] && [ "$_v" -ge "$2" ]
}

# Waits until the data plane on PORT uses its region's current version.
dp_synced() { # region port [seconds]
	_want=$(cp_version "$1") || return 1
	wait_until "${3:-15}" dp_has_version "$2" "$_want"
}

# ---- tenants ----

# A tenant of REGION on plan PLAN with a key of both scopes, placed in CELL
# (default: the region's first cell); prints "id key".
new_tenant() { # name region plan [cell]
	_slug="f-$1-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
	_b=$(api POST /v1/tenants "{\"name\":\"faults $1\",\"slug\":\"$_slug\",\"region\":\"$2\",\"plan\":\"$3\",\"cell\":\"${4:-$(first_cell "$2")}\"}") ||
		fatal "could not create tenant $1"
	_id=$(printf '%s' "$_b" | jget id)
	_k=$(api POST "/v1/tenants/$_id/api-keys" '{"name":"load","scopes":["events:read","events:write"]}' | jget secret) ||
		fatal "could not create a key for tenant $1"
	echo "$_id $_k"
}

# A new key for TENANT (a configuration change of its region); prints it.
new_key() { # tenant
	api POST "/v1/tenants/$1/api-keys" '{"name":"probe","scopes":["events:read"]}' | jget secret
}

key_works() { # port key
	[ "$(http_status "$(port_url "$1")/v1/tenant" -H "Authorization: Bearer $2")" = 200 ]
}

# ---- load ----

LOADS=""  # "pid file" pairs of the running load generators

# Starts bin/faults-load; its records go to $SCEN_DIR/NAME.load.
load_start() { # name port key mode rate [faults-load options...]
	_n=$1 _port=$2 _key=$3 _mode=$4 _rate=$5
	shift 5
	"$BIN/faults-load" -u "$(port_url "$_port")" -k "$_key" -m "$_mode" -r "$_rate" \
		-o "$SCEN_DIR/$_n.load" -p "$SCEN-$_n" "$@" 2>> "$SCEN_DIR/load.summary" &
	LOADS="$LOADS $!"
}

load_stop() { # stops every load generator (each waits for its requests in flight)
	for _p in $LOADS; do kill -TERM "$_p" 2>/dev/null || true; done
	for _p in $LOADS; do wait "$_p" 2>/dev/null || true; done
	LOADS=""
}

# ---- the checker ----

# The event ids of the post records of FILE (all of them, or those
# answered STATUS).
load_ids() { # file prefix [status]
	awk -v p="$2" -v want="${3:-}" '$2 == "post" && (want == "" || $3 == want) {
		for (j = 0; j < $5; j++) print p "-" $1 "-" j }' "$1"
}

# Counts of the records of FILE: "sent 2xx errors" and the errors by
# status (0: no answer), from START_MS to END_MS if given.
load_counts() { # file [from-ms to-ms]
	awk -v from="${2:-0}" -v to="${3:-99999999999999}" '$6 >= from && $6 < to {
		n++; if ($3 ~ /^2/) ok++; else { e++; s[$3]++ } }
		END { printf "%d %d %d", n, ok, e; for (k in s) printf " %s:%d", k, s[k]; print "" }' "$1"
}

# True once REGION (its first cell) or CELL has reported all its usage:
# nothing counted and not yet batched, no batch unsent.
outbox_drained() {
	[ "$(rsql "$1" "SELECT (SELECT coalesce(sum(events - reported), 0) FROM usage_counters)
		+ (SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL AND rejected_at IS NULL)" 2>/dev/null)" = 0 ]
}

# Billed events of TENANT this month (and the month the run began in, if
# it crossed into a new one) at the control plane.
PERIOD0=$(date -u +%Y-%m)
billed() { # tenant
	_per=$(date -u +%Y-%m)
	_t=$(api GET "/v1/tenants/$1/usage?period=$_per" | jget total) || return 1
	if [ "$_per" != "$PERIOD0" ]; then
		_n=$(api GET "/v1/tenants/$1/usage?period=$PERIOD0" | jget total) || return 1
		_t=$((_t + _n))
	fi
	echo "$_t"
}

# The body faults-load sent for request SEQ of PREFIX with N events.
post_body() { # prefix seq n
	_j=0 _b=""
	while [ $_j -lt "$3" ]; do
		[ $_j = 0 ] || _b="$_b,"
		_b="$_b{\"id\":\"$1-$2-$_j\",\"action\":\"faults.load\",\"actor\":{\"id\":\"load-$(($2 % 97))\",\"type\":\"test\"},\"targets\":[{\"id\":\"doc-$_j\",\"type\":\"document\"}]}"
		_j=$((_j + 1))
	done
	[ "$3" = 1 ] && printf '%s' "$_b" || printf '{"events":[%s]}' "$_b"
}

# A client's way out of an unknown outcome: each request that got no 2xx
# answer but whose events are stored is sent again, as it was, and must be
# answered 200 with Idempotent-Replayed (stored once, billed once).
# Prints "resent replayed".
replay_unacked() { # port key stored-ids-file loads ("file prefix" pairs)...
	_port=$1 _key=$2 _stored=$3
	shift 3
	_resent=0 _replayed=0
	while [ $# -ge 2 ]; do
		for _r in $(awk '$2 == "post" && $3 !~ /^2/ { print $1 ":" $5 }' "$1"); do
			grep -qx "$2-${_r%%:*}-0" "$_stored" || continue
			_resent=$((_resent + 1))
			_h=$(post_body "$2" "${_r%%:*}" "${_r#*:}" | curl -s -o /dev/null -D - --max-time 10 \
				-H "Authorization: Bearer $_key" -H 'Content-Type: application/json' \
				--data-binary @- "$(port_url "$_port")/v1/events" | tr -d '\r')
			case "$_h" in
			"HTTP/1.1 200"*) printf '%s\n' "$_h" | grep -qi '^idempotent-replayed: true' && _replayed=$((_replayed + 1)) ;;
			esac
		done
		shift 2
	done
	echo "$_resent $_replayed"
}

# Checks a tenant's events after a scenario: every id answered 201 is
# stored, nothing stored that was not sent, the usage counter of its
# cell's database (REGION: the region's first cell) equals what is stored,
# a request stored without a 201 is answered as a replay when sent again,
# and once the outbox has drained the control plane bills exactly what is
# stored. Prints the figures as it goes; sets STORED and BILLED. Loads:
# "file prefix" pairs of post loads of TENANT, sent to PORT with KEY.
check_tenant() { # label region|cell tenant port key loads...
	_label=$1 _reg=$2 _ten=$3 _tport=$4 _tkey=$5
	shift 5
	_loads="$*"
	: > "$SCEN_DIR/$_label.sent"; : > "$SCEN_DIR/$_label.acked"
	while [ $# -ge 2 ]; do
		load_ids "$1" "$2" >> "$SCEN_DIR/$_label.sent"
		load_ids "$1" "$2" 201 >> "$SCEN_DIR/$_label.acked"
		shift 2
	done
	sort -o "$SCEN_DIR/$_label.sent" "$SCEN_DIR/$_label.sent"
	sort -o "$SCEN_DIR/$_label.acked" "$SCEN_DIR/$_label.acked"
	rsql "$_reg" "SELECT id FROM events WHERE tenant_id = '$_ten'" | sort > "$SCEN_DIR/$_label.stored"
	_acked=$(wc -l < "$SCEN_DIR/$_label.acked")
	STORED=$(wc -l < "$SCEN_DIR/$_label.stored")
	_lost=$(comm -23 "$SCEN_DIR/$_label.acked" "$SCEN_DIR/$_label.stored" | wc -l)
	_alien=$(comm -13 "$SCEN_DIR/$_label.sent" "$SCEN_DIR/$_label.stored" | wc -l)
	_unacked=$((STORED - _acked + _lost))
	check "$_label: every acknowledged event is stored ($_acked acknowledged, $_lost missing)" [ "$_lost" = 0 ]
	check "$_label: nothing stored that was not sent ($_alien)" [ "$_alien" = 0 ]
	if [ "$_unacked" -gt 0 ]; then
		# shellcheck disable=SC2086
		set -- $(replay_unacked "$_tport" "$_tkey" "$SCEN_DIR/$_label.stored" $_loads)
		check "$_label: the $1 request(s) stored without a 201, sent again, are answered 200 replayed ($2)" \
			[ "$1" = "$2" ]
		_again=$(rsql "$_reg" "SELECT count(*) FROM events WHERE tenant_id = '$_ten'")
		check "$_label: and stored once ($_again = $STORED)" [ "$_again" = "$STORED" ]
	fi
	_counter=$(rsql "$_reg" "SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '$_ten'")
	check "$_label: $_reg's usage counter ($_counter) = events stored ($STORED)" [ "$_counter" = "$STORED" ]
	if wait_until "${DRAIN_SECONDS:-90}" outbox_drained "$_reg"; then
		ok "$_label: $_reg's usage outbox drained"
	else
		bad "$_label: $_reg's usage outbox did not drain in ${DRAIN_SECONDS:-90} s"
	fi
	BILLED=$(billed "$_ten") || BILLED=unknown
	check "$_label: billed at the control plane ($BILLED) = stored ($STORED)" [ "$BILLED" = "$STORED" ]
	_rej=$(rsql "$_reg" "SELECT count(*) FROM usage_outbox WHERE rejected_at IS NOT NULL")
	check "$_label: no usage batch refused by the control plane ($_rej)" [ "$_rej" = 0 ]
	FIG_ACKED=$_acked FIG_UNACKED_STORED=$_unacked
}

# Prints the figures of a scenario's loads: per load, and the tenant's
# events stored and billed.
figures() { # label
	echo "  figures ($1):"
	for _f in "$SCEN_DIR"/*.load; do
		[ -e "$_f" ] || continue
		_c=$(load_counts "$_f")
		set -- $_c
		_errs=""
		[ $# -gt 3 ] && { shift 3; _errs=" ($*)"; }
		set -- $_c
		printf '    %-22s sent %6d  2xx %6d  errors %4d%s\n' "$(basename "$_f" .load)" "$1" "$2" "$3" "$_errs"
	done
}

# ---- cells (tests/faults/cells.sh) ----

# The value of VAR in the environment of service NAME.
svc_env() { # name VAR
	tr '\0' '\n' < "/proc/$(svc_pid "$1")/environ" | sed -n "s/^$2=//p" | head -n 1
}

# The 99th percentile of the latency of the records of FILES sent from
# FROM_MS to TO_MS (all of them, answered or not: a failure is slow too),
# and how many: "p99 count" ("- 0" when none).
p99_in() { # from-ms to-ms files...
	_a=$1 _b=$2; shift 2
	cat "$@" | awk -v a="$_a" -v b="$_b" '$6 >= a && $6 < b { print $7 }' | sort -n |
		awk '{ v[NR] = $1 } END { if (!NR) { print "- 0"; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++
		       print v[i < 1 ? 1 : i], NR }'
}

# The machine's stall time so far (Linux PSI, "some" line of
# /proc/pressure/cpu and io, in microseconds; "- -" without PSI), so that
# a scenario can say how busy the machine was while it measured.
psi_now() { # -> "cpu_us io_us"
	for _k in cpu io; do
		awk '/^some/ { sub(/total=/, "", $5); printf "%s ", $5; f = 1 } END { if (!f) printf "- " }' "/proc/pressure/$_k" 2>/dev/null ||
			printf -- '- '
	done
	echo
}
# The share of time from sample A to sample B (psi_now) that some task
# waited for a CPU and for I/O: "cpu% io%".
psi_share() { # "a-cpu a-io" a-ms "b-cpu b-io" b-ms
	echo "$1 $2 $3 $4" | awk '{ if ($1 == "-" || $4 == "-") { print "- -"; exit }
		t = ($6 - $3) * 1000; printf "%.0f%% %.0f%%\n", ($4 - $1) / t * 100, ($5 - $2) / t * 100 }'
}

