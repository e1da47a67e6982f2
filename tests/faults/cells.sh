# Fault scenarios of cells (sourced by tests/faults/run.sh, after lib.sh):
# a fault in one cell stays in that cell. cell-db stops the PostgreSQL
# cluster of a cell, cell-dp-kill kills every data plane of a cell, and
# cell-cp-down (run inside cp-absent, while the control plane is stopped)
# restarts a region's router agent and HAProxy, which route from what the
# agent cached. Every
# request goes through the region's endpoint (HAProxy routing by key id);
# the figures of the cells not at fault must not move: no failed request,
# and a p99 within CELL_P99_FACTOR x the p99 before the fault
# + CELL_P99_SLACK_MS (see tests/faults/README.md for why these).

CELL_DB_DOWN=20        # seconds the cell's database is down (the acceptance's figure)
CELL_P99_FACTOR=2
CELL_P99_SLACK_MS=20

cell_n() { _i=$2; set -- $(cells_of "$1"); shift "$_i" 2>/dev/null || shift $#; echo "${1:-}"; }  # region index: its cell (0 first)

# A tenant of REGION placed in CELL on plan faults, with a key of both
# scopes: sets T_<label>, K_<label>, C_<label> (its cell) and R_<label>
# (its region).
cell_tenant() { # label region cell
	set -- "$1" "$2" "$3" $(new_tenant "$(printf %s "$1" | tr _ -)" "$2" faults "$3")
	[ -n "${5:-}" ] || fatal "could not create tenant $1 in cell $3"
	eval "T_$1=\$4 K_$1=\$5 C_$1=\$3 R_$1=\$2"
}

# The tenants of the cell scenarios that will run, one per scenario and
# cell (so that each one's counts are exact); returns once every key
# works through its region's router.
cells_tenants() {
	CE=$(cell_n us 0) CW=$(cell_n us 1) CEU=$(cell_n eu 0) CJP=$(cell_n jp 0)
	[ -n "$CW" ] && [ -n "$CEU" ] && [ -n "$CJP" ] ||
		fatal "the cell scenarios need two cells in us and one in eu and jp (CELLS_us: '$CE $CW')"
	CELL_LABELS=""
	for s in cell-db:cdb cell-dp-kill:cdk cell-cp-down:ccd; do
		want "${s%%:*}" || continue
		for c in e:us:$CE w:us:$CW eu:eu:$CEU jp:jp:$CJP; do
			case "${s#*:}$c" in cdkeu* | cdkjp*) continue ;; esac  # cell-dp-kill: the region us only
			l="${s#*:}_${c%%:*}"
			_rc=${c#*:}
			cell_tenant "$l" "${_rc%%:*}" "${_rc#*:}"
			CELL_LABELS="$CELL_LABELS $l"
		done
	done
	for l in $CELL_LABELS; do
		eval "_k=\$K_$l _r=\$R_$l"
		wait_until 20 key_works "$(router_port "$_r")" "$_k" || fatal "the key of tenant $l does not work through the router of $_r"
	done
}

# Loads on tenant LABEL through its region's router: LABEL-post and
# LABEL-tenant (GET /v1/tenant) at the rates given.
cell_loads() { # label post-rate tenant-rate
	eval "_k=\$K_$1 _r=\$R_$1"
	load_start "$1-post" "$(router_port "$_r")" "$_k" post "$2"
	load_start "$1-tenant" "$(router_port "$_r")" "$_k" tenant "$3"
}

# check_tenant for a tenant of a cell (its events are in the cell's
# database), then its figures.
cell_check() { # label
	eval "_t=\$T_$1 _k=\$K_$1 _c=\$C_$1 _r=\$R_$1"
	check_tenant "$_c" "$_c" "$_t" "$(router_port "$_r")" "$_k" "$SCEN_DIR/$1-post.load" "$SCEN-$1-post"
	tally "$_c"
}

# The figures of a cell not at fault: no request failed, and the p99 of
# those sent while the fault lasted (from FAULT_MS to CLEAR_MS) within the
# tolerance of the p99 before it (from BEFORE_MS, a second after the loads
# started). The p99 of the recovery (from CLEAR_MS to END_MS: the faulty
# cell's database or data planes starting and catching up, on the cores
# every cell shares on this machine) is printed beside it.
cell_unmoved() { # label before-ms fault-ms clear-ms end-ms
	eval "_c=\$C_$1"
	_e=$(errors_total "$1-post" "$1-tenant")
	_n=$(($(sent_in "$1-post" 0 99999999999999) + $(sent_in "$1-tenant" 0 99999999999999)))
	_f="$SCEN_DIR/$1-post.load $SCEN_DIR/$1-tenant.load"
	set -- $(p99_in "$2" "$3" $_f) $(p99_in "$3" "$4" $_f) $(p99_in "$4" "$5" $_f)
	_b99=$1 _bn=$2 _d99=$3 _dn=$4
	check "cell $_c: no request failed ($_e of $_n)" [ "$_e" = 0 ]
	check "cell $_c: p99 during the fault $_d99 ms ($_dn requests) <= $CELL_P99_FACTOR x p99 before $_b99 ms ($_bn requests) + $CELL_P99_SLACK_MS ms (recovery: p99 $5 ms, $6 requests)" \
		eval '[ "$_bn" -gt 0 ] && [ "$_dn" -gt 0 ] && [ "$_d99" -le $((_b99 * CELL_P99_FACTOR + CELL_P99_SLACK_MS)) ]'
}

# How busy the machine was before and during the fault (PSI): a p99 that
# moved with the whole machine is told from one that moved with the fault.
machine() { # psi-before ms-before psi-fault ms-fault psi-end ms-end
	set -- "$(psi_share "$1" "$2" "$3" "$4")" "$(psi_share "$3" "$4" "$5" "$6")"
	echo "  machine: some task waited for a CPU ${1% *} of the time before the fault, ${2% *} while it lasted; for I/O ${1#* }, ${2#* }"
}

sleep_until() { # ms: sleeps until that time (now_ms)
	_d=$(($1 - $(now_ms)))
	[ "$_d" -le 0 ] || sleep "$(awk -v d="$_d" 'BEGIN { printf "%.3f", d / 1000 }')"
}

# ---------------------------------------------------------------------------
cells_db() {
	begin cell-db "the PostgreSQL cluster of cell $CE is stopped for $CELL_DB_DOWN s under load on a tenant of every cell, then started"
	[ -f "$(cell_pg_data "$CE")/PG_VERSION" ] ||
		fatal "cell $CE has no PostgreSQL cluster of its own: the stack must run with STACK_CELL_CLUSTERS=1"
	dps0=$(for i in $(cell_instances "$CE"); do svc_pid "data-plane-$i"; done)
	for l in cdb_e cdb_w cdb_eu cdb_jp; do cell_loads "$l" $((RATE / 2)) $((RATE / 4)); done
	t0=$(now_ms)
	sleep 1
	psi0=$(psi_now) m0=$(now_ms)
	sleep 4
	psi1=$(psi_now) t_stop=$(now_ms)
	cell_pg_stop "$CE"
	t_down=$(now_ms)  # once it is down (a fast shutdown takes a moment)
	sleep_until $((t_stop + CELL_DB_DOWN * 1000))
	psi2=$(psi_now) t_start=$(now_ms)
	cell_pg_start "$CE" ||
		fatal "the PostgreSQL cluster of cell $CE did not start again"
	t_up=$(now_ms)
	# Back once a POST of its tenant sent after the start is acknowledged.
	e201() { awk -v a="$t_up" '$6 >= a && $3 == 201' "$SCEN_DIR/cdb_e-post.load" | grep -q .; }
	wait_until 20 e201 || true
	sleep_until $(($(now_ms) > t_up + 3000 ? $(now_ms) + 1000 : t_up + 4000))
	load_stop
	machine "$psi0" "$m0" "$psi1" "$t_stop" "$psi2" "$t_start"
	for l in cdb_w cdb_eu cdb_jp; do cell_unmoved "$l" $((t0 + 1000)) "$t_stop" "$t_start" $((t_up + 2000)); done
	# Sent while it was down and answered before it started again (a
	# request may wait DP_DB_ACQUIRE_TIMEOUT, 2 s, for a connection).
	down() { awk -v a="$t_down" -v b="$((t_start - 2500))" '$6 >= a && $6 < b' "$SCEN_DIR/cdb_e-post.load"; }
	during=$(down | wc -l)
	during_ra=$(down | awk '$3 == 503 && $8 != "-"' | wc -l)
	check "cell $CE: POSTs sent while its database was down were answered 503 with Retry-After ($during_ra of $during)" \
		eval '[ "$during" -gt 0 ] && [ "$during_ra" = "$during" ]'
	down | awk '$3 != 503 || $8 == "-"' | head -n 3 | sed 's/^/    | /'
	others=$(awk '$3 != 201 && $3 != 503' "$SCEN_DIR/cdb_e-post.load" | wc -l)
	bare=$(awk '$3 == 503 && $8 == "-"' "$SCEN_DIR/cdb_e-post.load" | wc -l)
	check "cell $CE: POSTs were answered 201 or 503 ($others otherwise), every 503 with Retry-After ($bare without)" \
		[ "$others$bare" = 00 ]
	check "cell $CE: GET /v1/tenant answered 200 throughout: its keys kept authenticating ($(errors_total cdb_e-tenant) failed)" \
		no_errors cdb_e-tenant
	n401=$(cat "$SCEN_DIR"/*.load | awk '$3 == 401' | wc -l)
	check "no request of any cell was answered 401 ($n401)" [ "$n401" = 0 ]
	check "cell $CE: POSTs sent from 2 s after its database is back all succeeded" \
		[ "$(errors_in cdb_e-post $((t_up + 2000)) 99999999999999)" = 0 ]
	dps1=$(for i in $(cell_instances "$CE"); do svc_alive "data-plane-$i" && svc_pid "data-plane-$i"; done)
	check "cell $CE: its data planes were not restarted ($(echo $dps0))" [ "$(echo $dps1)" = "$(echo $dps0)" ]
	for l in cdb_e cdb_w cdb_eu cdb_jp; do cell_check "$l"; done
	finish
}

# ---------------------------------------------------------------------------
cells_dp_kill() {
	begin cell-dp-kill "every data plane of cell $CE is killed (SIGKILL) under load, then started again"
	dps=$(cell_instances "$CE")
	[ -n "$dps" ] || fatal "no data plane of cell $CE is running"
	cell_loads cdk_e $((RATE / 2)) $((RATE / 4))
	cell_loads cdk_w "$RATE" $((RATE / 2))
	t0=$(now_ms)
	sleep 1
	psi0=$(psi_now) m0=$(now_ms)
	sleep 3
	psi1=$(psi_now) t_kill=$(now_ms)
	cell_dps_kill "$CE"
	gone=1
	for n in $dps; do ! svc_alive "data-plane-$n" || gone=0; done
	check "every data plane of cell $CE is gone ($(echo $dps))" [ $gone = 1 ]
	sleep 4
	psi2=$(psi_now) t_start=$(now_ms)
	cell_dps_start "$CE"
	wait_until 20 key_works "$(router_port us)" "$K_cdk_e" || true
	t_up=$(now_ms)
	check "cell $CE serves again through the router $((t_up - t_start)) ms after its data planes are started again (at most 20 s)" \
		key_works "$(router_port us)" "$K_cdk_e"
	sleep 3
	load_stop
	machine "$psi0" "$m0" "$psi1" "$t_kill" "$psi2" "$t_start"
	cell_unmoved cdk_w $((t0 + 1000)) "$t_kill" "$t_start" $((t_up + 1000))
	check "cell $CE: requests failed while its data planes were down ($(errors_total cdk_e-post cdk_e-tenant)): the kill hit the load" \
		[ "$(errors_total cdk_e-post cdk_e-tenant)" -gt 0 ]
	bare=$(cat "$SCEN_DIR/cdk_e-post.load" "$SCEN_DIR/cdk_e-tenant.load" | awk '$3 == 503 && $8 == "-"' | wc -l)
	n503=$(cat "$SCEN_DIR/cdk_e-post.load" "$SCEN_DIR/cdk_e-tenant.load" | awk '$3 == 503' | wc -l)
	check "cell $CE: the router answered its requests 503 with Retry-After while no data plane of it was up ($n503 503s, $bare without)" \
		eval '[ "$n503" -gt 0 ] && [ "$bare" = 0 ]'
	check "cell $CE: every request sent from 1 s after it serves again succeeded" \
		[ "$(errors_in cdk_e-post $((t_up + 1000)) 99999999999999)$(errors_in cdk_e-tenant $((t_up + 1000)) 99999999999999)" = 00 ]
	cell_check cdk_e
	cell_check cdk_w
	finish
}

# ---------------------------------------------------------------------------
# cell-cp-down, in three parts called by cp-absent: the first once its
# control plane is stopped (the loads, then the restarts, run beside
# cp-absent's own steps, so that the control plane is not down longer than
# either needs), the second before it starts the control plane again, the
# third after its loads are stopped.

cells_cp_down_start() {
	echo "  cell-cp-down: a tenant of every cell under load through the routers; the router agent of us, then HAProxy restarted"
	# Once each cell serves through its router (cp-absent has just
	# restarted a data plane, which HAProxy's checks take back in a second).
	for l in ccd_e ccd_w ccd_eu ccd_jp; do
		eval "_k=\$K_$l _r=\$R_$l"
		wait_until 10 key_works "$(router_port "$_r")" "$_k" || fatal "tenant $l is not served through the router of $_r"
	done
	for l in ccd_e ccd_w ccd_eu ccd_jp; do cell_loads "$l" $((RATE / 4)) $((RATE / 4)); done
	CCD_T0=$(now_ms)
	# Its checks print as usual; their counts come back through the file.
	( PASS=0 FAIL=0; cells_cp_down_restarts; echo "$PASS $FAIL $CCD_T_HP0 $CCD_T_HP1" > "$SCEN_DIR/ccd.result" ) \
		> "$SCEN_DIR/ccd.out" 2>&1 &
	CCD_PID=$!
}

cells_cp_down_restarts() {
	ra=cell-router-us
	svc_alive "$ra" || fatal "the router agent of us ($ra) is not running"
	map=$(svc_env "$ra" ROUTER_MAP_FILE) sock=$(svc_env "$ra" ROUTER_HAPROXY_SOCKET)
	rver() { curl -s --max-time 3 "$ROUTER_URL_us/metrics" | awk '$1 == "router_config_version" { print $2 }'; }
	ver0=$(rver) map0=$(cksum < "$map") lines0=$(grep -c . "$map" || true)
	sleep 1
	svc_stop "$ra"
	router_start us
	ok "the router agent of us, restarted with the control plane down, is ready (a verified document from its cache)"
	ver1=$(rver)
	check "it applies the version it had ($ver1 = $ver0), and the map file is the same ($lines0 routes)" \
		eval '[ -n "$ver0" ] && [ "$ver1" = "$ver0" ] && [ "$(cksum < "$map")" = "$map0" ]'
	# HAProxy's map: pushed by the restarted agent from its cache, then read
	# from the file by a restarted HAProxy; nothing may be lost either way.
	wkid=$(echo "$K_ccd_w" | cut -d_ -f2)
	hmap() { printf 'show map %s\n' "$map" | socat -t 5 stdio "unix-connect:$sock"; }
	n_map=$(hmap | grep -c . || true)
	check "HAProxy's map holds every route of the file after the agent's restart ($n_map = $lines0), the key of $CW's tenant to $CW" \
		eval '[ "$n_map" = "$lines0" ] && hmap | grep -q " $wkid $CW\$"'
	check "a request of $CW's tenant through the router succeeds after the agent's restart" key_works "$(router_port us)" "$K_ccd_w"
	CCD_T_HP0=$(now_ms)
	balancer_restart
	CCD_T_HP1=$(now_ms)
	n_map=$(hmap | grep -c . || true)
	check "HAProxy restarted with the control plane down (in $((CCD_T_HP1 - CCD_T_HP0)) ms, its data planes back): its map holds every route ($n_map = $lines0), $CW's key to $CW" \
		eval '[ "$n_map" = "$lines0" ] && hmap | grep -q " $wkid $CW\$"'
	check "a request of $CW's tenant through the router succeeds after both restarts" key_works "$(router_port us)" "$K_ccd_w"
}

# Waits for the restarts; the control plane is still down.
cells_cp_down_wait() {
	wait "$CCD_PID" || true
	cat "$SCEN_DIR/ccd.out"
	[ -s "$SCEN_DIR/ccd.result" ] || { bad "cell-cp-down: the restarts did not complete (above)"; CCD_T_HP0=0 CCD_T_HP1=0; return 0; }
	set -- $(cat "$SCEN_DIR/ccd.result")
	PASS=$((PASS + $1)) FAIL=$((FAIL + $2)) CCD_T_HP0=$3 CCD_T_HP1=$4
}

# Requests of the loads of cell-cp-down sent in [FROM_MS, TO_MS) not
# answered 2xx.
ccd_errors() { # from-ms to-ms
	_e=0
	for _l in ccd_e ccd_w ccd_eu ccd_jp; do
		_e=$((_e + $(errors_in "$_l-post" "$1" "$2") + $(errors_in "$_l-tenant" "$1" "$2")))
	done
	echo "$_e"
}

# True once every cell's data planes and every router agent apply their
# region's current configuration version.
cells_current() {
	for _r in $STACK_REGIONS; do
		_want=$(cp_version "$_r") || return 1
		_v=$(curl -s --max-time 3 "$(eval "echo \$ROUTER_URL_$_r")/readyz" | jget config_version 2>/dev/null)
		[ -n "$_v" ] && [ "$_v" != null ] && [ "$_v" -ge "$_want" ] || return 1
		for _c in $(cells_of "$_r"); do
			for _i in $(cell_instances "$_c"); do dp_has_version "$(inst_port "$_i")" "$_want" || return 1; done
		done
	done
}

cells_cp_down_check() { # ms when the control plane was started again
	# While HAProxy restarts, from a second before it is stopped (a request
	# in flight then is cut) until its data planes are back, requests fail.
	hp0=$((CCD_T_HP0 - 1000))
	for l in ccd_e ccd_w ccd_eu ccd_jp; do
		eval "_c=\$C_$l"
		check "cell $_c: while the control plane was down, $(sent_in "$l-post" "$CCD_T0" "$1") POSTs and $(sent_in "$l-tenant" "$CCD_T0" "$1") GET /v1/tenant through the router, none failed but during HAProxy's restart" \
			[ "$(errors_in "$l-post" "$CCD_T0" "$hp0")$(errors_in "$l-tenant" "$CCD_T0" "$hp0")$(errors_in "$l-post" "$CCD_T_HP1" "$1")$(errors_in "$l-tenant" "$CCD_T_HP1" "$1")" = 0000 ]
	done
	check "no request of the cells' loads failed but during HAProxy's restart ($(ccd_errors 0 "$hp0") before it, $(ccd_errors "$CCD_T_HP1" 99999999999999) after it; $(ccd_errors "$hp0" "$CCD_T_HP1") during it)" \
		[ "$(ccd_errors 0 "$hp0")$(ccd_errors "$CCD_T_HP1" 99999999999999)" = 00 ]
	for l in ccd_e ccd_w ccd_eu ccd_jp; do cell_check "$l"; done
	# The data planes and router agents this scenario did not check pull
	# again after their backoff; the next scenario starts once they have.
	_t=$(now_ms)
	if wait_until 40 cells_current; then
		ok "every data plane and router agent has the current configuration again ($(($(now_ms) - _t)) ms after the checks)"
	else
		bad "every data plane and router agent has the current configuration again within 40 s"
	fi
}
