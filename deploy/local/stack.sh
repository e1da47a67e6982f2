#!/bin/sh
# The local multi-region stack: the control plane, and each region as a set
# of cells, each cell with its own database and its own data planes, behind
# one HAProxy that is every region's router, fed by a cell-router per
# region. One PostgreSQL cluster stands in for the control plane's database
# server and for each cell's (or a cluster per cell: STACK_CELL_CLUSTERS).
#
#   deploy/local/stack.sh start   (make run)  create once, migrate, (re)start
#   deploy/local/stack.sh stop    (make stop) stop what start started, by pid
#   deploy/local/stack.sh status
#   deploy/local/stack.sh renew-certs   new certificates for every TLS hop,
#                                       taken up without a restart
#
# Everything lives under var/: the clusters, logs, pid files, generated
# secrets, stack.env and waves (deploy/waves for this stack's catalog, for
# deploy/rollout -w). Ports, regions and cells can be changed with:
#   STACK_CP_PORT (8080), STACK_DP_BASE_PORT (8081, then +1 per region: each
#   region's endpoint, its router), STACK_PG_PORT (15432), STACK_REGIONS
#   ("us eu jp"); STACK_VAR (var/) moves the whole state elsewhere, as the
#   tests and benchmarks do for a stack of their own.
#   STACK_CELLS_<region>: the region's cells, space-separated, first cell
#   first (defaults: us "us-east-1 us-west-2", eu "eu-west-1", jp
#   "ap-northeast-1", any other region its first cloud region in
#   deploy/regions.conf), e.g. STACK_CELLS_us="us-east-1 us-west-2 us-east-2".
#   The control plane's catalog is made to match: the stack's cells active,
#   its other shared cells of those regions without tenants closed.
#   STACK_DP_INSTANCES (1): data planes per cell (1 to 4; make run uses 2),
#   listening on ports from STACK_DP_INSTANCE_PORT (8100) on; deploy/rollout
#   (driver local) replaces them one by one. The cell-routers' /healthz,
#   /readyz and /metrics listen from STACK_ROUTER_PORT (8090), one per region.
#   A mover per region (bin/mover: it copies the tenants moving into the
#   region), each given every cell's first data plane (MOVER_CELLS); its
#   /healthz and /metrics listen from STACK_MOVER_PORT (8095), one per region.
#   STACK_DP_ENV: more settings for every data plane, space-separated
#   VAR=value (tests/faults: DP_USAGE_REPORT_INTERVAL=1s).
#   Log streams: each region's stream key ring (var/stream-keys/<region>,
#   made once) is given to its data planes (DP_STREAM_KEYS_DIR), and its
#   catalog entry gets that key's public half (stream_key) and a residency
#   rule allowing loopback destinations (stream_hosts 127.0.0.1, localhost,
#   [::1]; stream_s3_regions its cloud regions), so that streams deliver to
#   receivers on this machine.
#   STACK_CP_PG_PORT (unset): put the control plane's database in a cluster
#   of its own (var/pg-cp) on that port, so that it can be stopped without
#   the cells' (tests/faults do); keep it the same for one STACK_VAR.
#   TLS: every hop a client or a service makes over the network is TLS,
#   with certificates of a local CA made once (var/tls/ca.crt: CA_CERT of
#   stack.env; deploy/local/certs.sh). It terminates at HAProxy, on the
#   same host as the service behind it: the control plane's edge (its own
#   HAProxy on STACK_CP_PORT; the control plane listens on loopback at
#   STACK_CP_BACKEND_PORT, default STACK_CP_PORT + 9) and each region's
#   endpoint (the balancer). The data planes, routers and movers call the
#   control plane over https with the CA pinned (*_CA_FILE), and every
#   service reaches PostgreSQL with sslmode=verify-full (clusters accept
#   TLS only). Certificates last TLS_CERT_DAYS (30); a start reissues any
#   within TLS_RENEW_DAYS (7) of its end, and `renew-certs` reissues all,
#   handing them to HAProxy (runtime API) and PostgreSQL (reload).
#   STACK_CELL_CLUSTERS (0): 1 puts each cell's database in a cluster of its
#   own (var/pg-<cell>), on ports from STACK_CELL_PG_PORT (STACK_PG_PORT + 1)
#   in the order the cells are run, so that one cell's database can fail
#   alone (tests/faults do); keep it the same for one STACK_VAR.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR="${STACK_VAR:-$ROOT/var}"
BIN="$ROOT/bin"
CP_PORT=${STACK_CP_PORT:-8080}
CP_BACKEND_PORT=${STACK_CP_BACKEND_PORT:-$((CP_PORT + 9))}
DP_BASE_PORT=${STACK_DP_BASE_PORT:-8081}
PG_PORT=${STACK_PG_PORT:-15432}  # below the ephemeral range (32768+): see README
CP_DB_PORT=${STACK_CP_PG_PORT:-$PG_PORT}
REGIONS=${STACK_REGIONS:-us eu jp}
INSTANCES=${STACK_DP_INSTANCES:-1}
INSTANCE_PORT=${STACK_DP_INSTANCE_PORT:-8100}
ROUTER_PORT=${STACK_ROUTER_PORT:-8090}
MOVER_PORT=${STACK_MOVER_PORT:-8095}
CELL_CLUSTERS=${STACK_CELL_CLUSTERS:-0}
CELL_PG_PORT=${STACK_CELL_PG_PORT:-$((PG_PORT + 1))}
LB_SLOTS=8  # balancer server slots per cell: instances during a rollout
. "$ROOT/deploy/local/pg.sh"
. "$ROOT/deploy/local/certs.sh"
TLS_DIR="$VAR/tls"
CA_CERT="$TLS_DIR/ca.crt"
CP_URL="https://127.0.0.1:$CP_PORT"

say() { printf '%s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# A cell name as part of a variable's name: us-east-1 -> us_east_1.
v() { printf '%s' "$1" | tr - _; }

# The cells the stack runs in REGION, first cell first.
cells_of() { # region
	eval "_c=\${STACK_CELLS_$1:-}"
	if [ -z "$_c" ]; then
		case "$1" in
		us) _c="us-east-1 us-west-2" ;;
		eu) _c="eu-west-1" ;;
		jp) _c="ap-northeast-1" ;;
		*) _c=$(awk -v r="$1" '$1 == r { split($3, c, ","); print c[1] }' "$ROOT/deploy/regions.conf") ;;
		esac
	fi
	echo $_c
}

# Checks the regions and cells, and sets CELLS_<region>, ALL_CELLS, and
# for every cell (<c>: its name with - as _) CELL_REGION_<c> and its
# database: CDB_ROLE_<c>, CDB_NAME_<c>, CDB_PWVAR_<c> (the secret holding
# its password), CDB_PORT_<c> and CDB_CLUSTER_<c>.
plan_cells() {
	ALL_CELLS="" i=0
	case "$CELL_CLUSTERS" in 0 | 1) ;; *) die "STACK_CELL_CLUSTERS must be 0 or 1, not '$CELL_CLUSTERS'" ;; esac
	for r in $REGIONS; do
		grep -q "^$r[[:space:]]" "$ROOT/deploy/regions.conf" || die "region '$r' is not in deploy/regions.conf"
		cs=$(cells_of "$r")
		[ -n "$cs" ] || die "region $r has no cell (STACK_CELLS_$r)"
		first=1
		for c in $cs; do
			ok=1
			case "$c" in
			[a-z]?*) case "$c" in *[!a-z0-9-]*) ok=0 ;; esac ;;
			*) ok=0 ;;
			esac
			[ $ok = 1 ] && [ ${#c} -le 63 ] || die "region $r: '$c' is not a cell name ([a-z][a-z0-9-]{1,62})"
			case " $ALL_CELLS " in *" $c "*) die "cell $c is named twice (STACK_CELLS_*)" ;; esac
			awk -v c="$c" '$1 == c { f = 1 } END { exit !f }' "$ROOT/deploy/regions.conf" &&
				die "cell $c is named like a region"
			ALL_CELLS="$ALL_CELLS $c"
			cv=$(v "$c")
			if [ $first = 1 ]; then
				# The region's database of the build before cells: its events stay.
				eval "CDB_ROLE_$cv=celltrail_dp_$r CDB_NAME_$cv=celltrail_region_$r CDB_PWVAR_$cv=DP_DB_PASSWORD_$r"
			else
				eval "CDB_ROLE_$cv=celltrail_dp_cell_$cv CDB_NAME_$cv=celltrail_cell_$cv CDB_PWVAR_$cv=CELL_DB_PASSWORD_$cv"
			fi
			if [ "$CELL_CLUSTERS" = 1 ]; then
				eval "CDB_PORT_$cv=$((CELL_PG_PORT + i)) CDB_CLUSTER_$cv=pg-$c"
			else
				eval "CDB_PORT_$cv=$PG_PORT CDB_CLUSTER_$cv=pg"
			fi
			eval "CELL_REGION_$cv=$r"
			first=0 i=$((i + 1))
		done
		eval "CELLS_$r=\$cs"
	done
	ALL_CELLS=$(echo $ALL_CELLS)
}

cell_db_url() { # cell
	cv=$(v "$1")
	eval "_role=\$CDB_ROLE_$cv _name=\$CDB_NAME_$cv _port=\$CDB_PORT_$cv _pwv=\$CDB_PWVAR_$cv"
	eval "_pw=\$$_pwv"
	pg_url "$_role" "$_pw" "$_name" "$_port"
}

# The cluster must live where the unprivileged `postgres` user can reach it.
# When the checkout is somewhere it cannot (under /root, say), the cluster
# goes to /var/tmp and var/pg points there.
# Prints the cluster's home as a path without symlinks: the postgres user
# must not have to traverse the checkout's parents to reach it.
pg_home() { # [name: pg, or pg-cp for STACK_CP_PG_PORT's]
	c=${1:-pg}
	if [ ! -L "$VAR/$c" ] && [ ! -d "$VAR/$c" ]; then
		mkdir -p "$VAR/$c"
		[ "$(id -u)" = 0 ] && chown postgres "$VAR/$c"
		if ! pg_as_owner test -w "$VAR/$c" 2>/dev/null; then
			rmdir "$VAR/$c"
			alt="/var/tmp/celltrail-$c-$(printf '%s' "$VAR" | cksum | cut -d' ' -f1)"
			mkdir -p "$alt"
			chmod 0755 "$alt"
			chown postgres "$alt"
			ln -s "$alt" "$VAR/$c"
		fi
	fi
	readlink -f "$VAR/$c"
}

# Creates the cluster var/NAME once, and starts it unless it runs.
cluster_up() { # name port
	pgdir="$(pg_home "$1")"
	if [ ! -f "$pgdir/data/PG_VERSION" ]; then
		say "creating the PostgreSQL cluster in var/$1 (port $2)"
		pg_init "$pgdir/data" "$PG_PASSWORD"
	fi
	pg_tls "$pgdir/data" "$TLS_DIR/postgres.crt" "$TLS_DIR/postgres.key"
	if ! pg_running "$pgdir/data"; then
		pg_start "$pgdir/data" "$2" "$pgdir/postgres.log" ||
			die "PostgreSQL did not start (port $2 taken? see $pgdir/postgres.log)"
	fi
}

# Reads var/secrets, generating any secret not there yet.
load_secrets() {
	umask 077
	touch "$VAR/secrets"
	. "$VAR/secrets"
	for name in PG_PASSWORD CP_DB_PASSWORD ADMIN_TOKEN CP_SECRETS_KEY CP_SIGNING_KEK DEMO_PASSWORD \
		$(for c in $ALL_CELLS; do eval "echo \$CDB_PWVAR_$(v "$c")"; done); do
		eval "val=\${$name:-}"
		if [ -z "$val" ]; then
			val=$(pg_random_hex)
			case $name in CP_SECRETS_KEY | CP_SIGNING_KEK) val="$val$(pg_random_hex)" ;; esac  # 32 bytes
			printf '%s=%s\n' "$name" "$val" >> "$VAR/secrets"
			eval "$name=\$val"
		fi
	done
	umask 022
}

dp_port() { # region -> port, by its position in $REGIONS
	i=0
	for r in $REGIONS; do
		[ "$r" = "$1" ] && { echo $((DP_BASE_PORT + i)); return; }
		i=$((i + 1))
	done
}

pg_url() { # user password db [port]: over TLS, the server's certificate checked against the local CA
	echo "postgresql://$1:$2@127.0.0.1:${4:-$PG_PORT}/$3?sslmode=verify-full&sslrootcert=$CA_CERT"
}

# Creates a role and its own database, reachable by that role only.
ensure_db() { # role password database [port]
	super=$(pg_url postgres "$PG_PASSWORD" postgres "${4:-}")
	exists=$(pg_psql "$super" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$1'")
	if [ "$exists" != 1 ]; then
		pg_psql "$super" -c "CREATE ROLE \"$1\" LOGIN PASSWORD '$2'"
	fi
	exists=$(pg_psql "$super" -tAc "SELECT 1 FROM pg_database WHERE datname = '$3'")
	if [ "$exists" != 1 ]; then
		pg_psql "$super" -c "CREATE DATABASE \"$3\" OWNER \"$1\""
		pg_psql "$super" -c "REVOKE ALL ON DATABASE \"$3\" FROM PUBLIC"
	fi
}

# The start time of a process (field 22 of /proc/PID/stat).
proc_start() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# Is PIDFILE's process alive and one of ours (not a reused pid)? Its start
# time was recorded beside it (NAME.start); a pid file without one is
# checked by the binary it runs.
ours() {
	[ -f "$1" ] || return 1
	pid=$(cat "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	if [ -f "${1%.pid}.start" ]; then
		[ "$(proc_start "$pid")" = "$(cat "${1%.pid}.start")" ]
		return
	fi
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	case "$exe" in "$BIN"/*) return 0 ;; esac
	return 1
}

# Stops every process of var/run/*.pid that is ours: all are sent SIGTERM
# at once (each drains its requests in flight); any still there 15 s later
# gets SIGKILL.
stop_services() {
	stopping=""
	for f in "$VAR"/run/*.pid; do
		[ -e "$f" ] || continue
		if ours "$f"; then
			pid=$(cat "$f")
			kill -TERM "$pid" 2>/dev/null || true
			stopping="$stopping $pid:$(basename "$f" .pid)"
		fi
		rm -f "$f" "${f%.pid}.start" "${f%.pid}.inst"
	done
	n=0
	for p in $stopping; do
		pid=${p%%:*}
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
		say "stopped ${p#*:} (pid $pid)"
	done
	return 0
}

wait_healthy() { # name url
	n=0
	until curl -fsS -o /dev/null --max-time 1 --cacert "$CA_CERT" "$2/healthz" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -ge 100 ]; then
			tail -n 20 "$VAR/log/$1.log" >&2 || true
			die "$1 did not answer $2/healthz within 20 s (log: var/log/$1.log)"
		fi
		sleep 0.2
	done
}

start_service() { # name env-assignments... -- binary
	name=$1; shift
	env_args=""
	while [ "$1" != "--" ]; do env_args="$env_args $1"; shift; done
	shift
	# shellcheck disable=SC2086
	env $env_args nohup "$@" >>"$VAR/log/$name.log" 2>&1 &
	echo $! > "$VAR/run/$name.pid"
	proc_start $! > "$VAR/run/$name.start"
}

# One admin API call: api METHOD PATH [JSON]. Prints the body; fails
# unless the status is 2xx.
api() {
	if [ $# -ge 3 ]; then
		curl -fsS --cacert "$CA_CERT" -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
			-H 'Content-Type: application/json' -d "$3" "$CP_URL$2"
	else
		curl -fsS --cacert "$CA_CERT" -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" "$CP_URL$2"
	fi
}

# The first "name":"value" string member of a JSON text (no nesting needed).
json_str() { # name
	grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4
}

remember() { # NAME VALUE: keep a generated value in var/secrets
	umask 077
	printf '%s=%s\n' "$1" "$2" >> "$VAR/secrets"
	umask 022
	eval "$1=\$2"
}


router_port() { # region -> the port of its cell-router's status API
	i=0
	for r in $REGIONS; do
		[ "$r" = "$1" ] && { echo $((ROUTER_PORT + i)); return; }
		i=$((i + 1))
	done
}

mover_port() { # region -> the port of its mover's /healthz and /metrics
	i=0
	for r in $REGIONS; do
		[ "$r" = "$1" ] && { echo $((MOVER_PORT + i)); return; }
		i=$((i + 1))
	done
}

# The regions file the control plane seeds its catalog from at its first
# start: deploy/regions.conf, with the cloud regions of each region the
# stack runs replaced by the cells it runs there.
write_regions_file() {
	spec=""
	for r in $REGIONS; do eval "spec=\"\$spec $r=\$(echo \$CELLS_$r | tr ' ' ,)\""; done
	awk -v spec="$spec" '
		BEGIN { n = split(spec, s, " "); for (i = 1; i <= n; i++) { split(s[i], kv, "="); cells[kv[1]] = kv[2] } }
		/^[[:space:]]*(#|$)/ { print; next }
		$1 in cells { $3 = cells[$1] } { print }' "$ROOT/deploy/regions.conf" > "$VAR/run/regions.conf"
}

# Makes the catalog's cells of each region the stack runs match the cells
# it runs: a missing one is added (shared), a closed one made active, and
# any other shared cell of the region that holds no tenant is closed (a
# catalog seeded before cells, or by another STACK_CELLS, lists the
# region's every cloud region). A cell with tenants that the stack does not
# run is left as it is, with a warning.
sync_cells() {
	for r in $REGIONS; do
		eval "cs=\$CELLS_$r"
		api GET "/v1/regions/$r/cells" > "$VAR/run/cells.json" || die "could not list the cells of region $r"
		for c in $cs; do
			st=$(jq -r --arg c "$c" '.items[] | select(.name == $c) | .status' "$VAR/run/cells.json")
			case "$st" in
			'') api POST "/v1/regions/$r/cells" "{\"name\":\"$c\",\"kind\":\"shared\"}" >/dev/null ||
				die "could not add cell $c to region $r" ;;
			closed) api PATCH "/v1/regions/$r/cells/$c" '{"status":"active"}' >/dev/null ||
				die "could not reopen cell $c of region $r" ;;
			esac
		done
		jq -r '.items[] | select(.status != "closed") | "\(.name) \(.kind) \(.tenants)"' "$VAR/run/cells.json" |
		while read -r c kind tenants; do
			case " $cs " in *" $c "*) continue ;; esac
			if [ "$kind" = shared ] && [ "$tenants" = 0 ]; then
				api PATCH "/v1/regions/$r/cells/$c" '{"status":"closed"}' >/dev/null ||
					die "could not close cell $c of region $r"
			else
				say "warning: cell $c of region $r ($kind, $tenants tenants) is in the catalog but not run by the stack" >&2
			fi
		done
	done
	rm -f "$VAR/run/cells.json"
}

# Points each running region at its router, then makes sure each has a
# credential, a demo tenant in its first cell with an owner and an API key
# holding both scopes, and each cell a credential.
seed_demo() {
	for r in $REGIONS; do
		eval "first=\${CELLS_$r%% *}"
		api PATCH "/v1/regions/$r" "{\"endpoint\":\"https://127.0.0.1:$(dp_port "$r")\"}" >/dev/null ||
			die "could not set the endpoint of region $r"
		eval "tenant=\${DEMO_TENANT_$r:-}"
		if [ -z "$tenant" ] || ! api GET "/v1/tenants/$tenant" >/dev/null 2>&1; then
			body=$(api POST /v1/tenants "{\"name\":\"Demo ($r)\",\"slug\":\"demo-$r\",\"region\":\"$r\",\"plan\":\"pro\",\"cell\":\"$first\"}") ||
				die "could not create the demo tenant of region $r (is the slug demo-$r taken?)"
			tenant=$(printf '%s' "$body" | json_str id)
			remember "DEMO_TENANT_$r" "$tenant"
			api POST "/v1/tenants/$tenant/users" \
				"{\"email\":\"owner@demo-$r.test\",\"role\":\"owner\",\"password\":\"$DEMO_PASSWORD\"}" >/dev/null ||
				die "could not create the demo owner of region $r"
			eval "DEMO_KEY_$r="  # a new tenant needs a new key
		fi
		eval "rt=\${REGION_TOKEN_$r:-}"
		if [ -z "$rt" ]; then
			body=$(api POST "/v1/regions/$r/credentials" '{}') ||
				die "could not create the credential of region $r"
			remember "REGION_TOKEN_$r" "$(printf '%s' "$body" | json_str token)"
		fi
		eval "key=\${DEMO_KEY_$r:-}"
		if [ -z "$key" ]; then
			body=$(api POST "/v1/tenants/$tenant/api-keys" '{"name":"demo","scopes":["events:read","events:write"]}') ||
				die "could not create the demo API key of region $r"
			remember "DEMO_KEY_$r" "$(printf '%s' "$body" | json_str secret)"
		fi
	done
	for c in $ALL_CELLS; do
		eval "ct=\${CELL_TOKEN_$(v "$c"):-}"
		if [ -z "$ct" ]; then
			body=$(api POST "/v1/cells/$c/credentials" '{}') || die "could not create the credential of cell $c"
			remember "CELL_TOKEN_$(v "$c")" "$(printf '%s' "$body" | json_str token)"
		fi
	done
}

# Each region's stream key ring (var/stream-keys/<region>, made once and
# kept: a second start reuses it, so secrets sealed to it stay openable)
# and its catalog entry: stream_key the ring's current public key, and a
# residency rule for the local stack: loopback destinations (plain http
# included, residency.h) and, for s3, the region's cloud regions of
# deploy/regions.conf and the cells it runs. Made before any data plane
# starts (instances must not race to make the first key).
seed_streams() {
	mkdir -p "$VAR/stream-keys"
	chmod 0700 "$VAR/stream-keys"
	for r in $REGIONS; do
		# (A build before log streams has no stream-key: the stack runs
		# without streams.)
		jwk=$(DP_STREAM_KEYS_DIR="$VAR/stream-keys/$r" "$BIN/data-plane" stream-key 2>>"$VAR/log/migrate.log") || {
			say "warning: $BIN/data-plane stream-key failed (log: $VAR/log/migrate.log): region $r's streams will be refused" >&2
			continue
		}
		chmod 0700 "$VAR/stream-keys/$r"
		eval "cs=\$CELLS_$r"
		s3=$(awk -v r="$r" '$1 == r { print $3 }' "$ROOT/deploy/regions.conf" | tr , ' ')
		s3=$(for x in $s3 $cs; do echo "$x"; done | awk '!seen[$0]++' | jq -R . | jq -sc .)
		body=$(printf '%s' "$jwk" | jq -c --argjson s3 "$s3" \
			'{stream_key: ., stream_hosts: ["127.0.0.1", "localhost", "[::1]"], stream_s3_regions: $s3}') ||
			die "data-plane stream-key printed no JWK for region $r"
		api PATCH "/v1/regions/$r" "$body" >/dev/null ||
			say "warning: could not set the stream key and rule of region $r: its streams will be refused" >&2
	done
}

# Each cell's settings for its data planes, whatever their build: what
# deploy/drivers/local starts an instance with; and each region's for its
# cell-router (mode 0600: secrets).
write_envs() {
	umask 077
	for c in $ALL_CELLS; do
		cv=$(v "$c")
		eval "r=\$CELL_REGION_$cv token=\$CELL_TOKEN_$cv"
		cat > "$VAR/run/cell-$c.env" <<ENV
DP_REGION='$r'
DP_CELL='$c'
DP_CONTROL_PLANE_URL='$CP_URL'
DP_CONTROL_PLANE_CA_FILE='$CA_CERT'
DP_DATABASE_URL='$(cell_db_url "$c")'
DP_CELL_TOKEN='$token'
DP_TRUST_BUNDLE='$VAR/trust-bundle.json'
DP_LOG_KEYS_DIR='$VAR/log-keys/$r'
DP_STREAM_KEYS_DIR='$VAR/stream-keys/$r'
ENV
		for kv in ${STACK_DP_ENV:-}; do printf '%s\n' "$kv"; done >> "$VAR/run/cell-$c.env"
	done
	# The log keys of each region, shared by its cells' instances: made
	# once here, before any starts (instances must not race to make the
	# first key).
	mkdir -p "$VAR/log-keys"
	for r in $REGIONS; do
		DP_LOG_KEYS_DIR="$VAR/log-keys/$r" "$BIN/data-plane" log-jwks >/dev/null ||
			die "could not create the log keys of region $r"
	done
	for r in $REGIONS; do
		eval "token=\$REGION_TOKEN_$r"
		cat > "$VAR/run/router-$r.env" <<ENV
ROUTER_REGION='$r'
ROUTER_CONTROL_PLANE_URL='$CP_URL'
ROUTER_CONTROL_PLANE_CA_FILE='$CA_CERT'
ROUTER_REGION_TOKEN='$token'
ROUTER_TRUST_BUNDLE='$VAR/trust-bundle.json'
ROUTER_CACHE_DIR='$VAR/cache/router-$r'
ROUTER_MAP_FILE='$VAR/run/routes-$r.map'
ROUTER_HAPROXY_SOCKET='$VAR/run/balancer.sock'
ROUTER_LISTEN='127.0.0.1:$(router_port "$r")'
ENV
	done
	umask 022
}

# The global section of an HAProxy of the stack (var/run/NAME.cfg): its
# runtime API on var/run/NAME.sock (certificates and servers change through
# it), TLS 1.2 at least, and, when started as root, nobody's rights once it
# has read its certificates. One thread: here HAProxy shares the cores with
# every data plane (and a benchmark's load), and a second thread only
# contends with them (make bench: about 35,000 req/s routed with two
# threads, 50,000 with one). A router host of its own sizes it to its cores.
haproxy_global() { # name
	echo "# Written by deploy/local/stack.sh"
	echo "global"
	echo "	stats socket $VAR/run/$1.sock mode 600 level admin"
	echo "	log stdout format raw local0 info"
	echo "	maxconn 4096"
	echo "	nbthread 1"
	echo "	ssl-default-bind-options ssl-min-ver TLSv1.2"
	if [ "$(id -u)" = 0 ]; then
		echo "	user nobody"
		echo "	group nogroup"
	fi
}

# HAProxy, each region's router: one frontend on the region's port that
# sends a request to the backend of its key's cell (the cell-router's map:
# key id -> cell; word 2 of "Bearer <region>_<key id>_<secret>" split on
# '_'), telling the data plane which cell it was routed to; a request
# without a routed key goes to the region's first cell with a live server,
# whose data plane answers it (401, 421). One backend per cell of LB_SLOTS
# server slots, all in maintenance until the driver puts a ready instance
# in one. Health checks on /readyz; a refused connection or an empty answer
# is retried on another instance of the same cell.
write_balancer_cfg() {
	{
		haproxy_global balancer
		cat <<'CFG'
defaults
	mode http
	log global
	option httplog
	option dontlog-normal
	timeout connect 2s
	timeout client 60s
	timeout server 60s
	timeout queue 10s
	timeout http-keep-alive 10s
	retries 3
	option redispatch 1
	retry-on conn-failure empty-response
	default-server inter 1s fastinter 250ms downinter 1s rise 1 fall 2
	# A cell with no live data plane: a problem document with Retry-After,
	# like every other refusal (code unavailable), not HAProxy's HTML page.
	http-error status 503 content-type application/problem+json string '{"type":"urn:celltrail:problem:unavailable","title":"Service unavailable","status":503,"code":"unavailable","detail":"No data plane is up to serve this request; retry shortly."}' hdr Retry-After 1
CFG
		for r in $REGIONS; do
			eval "cs=\$CELLS_$r"
			echo "frontend dp_$r"
			echo "	bind 127.0.0.1:$(dp_port "$r") ssl crt $TLS_DIR/router.pem alpn http/1.1"
			echo "	http-request del-header X-Celltrail-Cell"
			echo "	http-request set-var(txn.cell) req.hdr(authorization),word(2,_),map($VAR/run/routes-$r.map)"
			echo "	http-request set-header X-Celltrail-Cell %[var(txn.cell)] if { var(txn.cell) -m found }"
			echo "	use_backend cell_%[var(txn.cell)] if { var(txn.cell) -m found }"
			for c in $cs; do echo "	use_backend cell_$c if { nbsrv(cell_$c) gt 0 }"; done
			echo "	default_backend cell_${cs%% *}"
			for c in $cs; do
				echo "backend cell_$c"
				echo "	balance roundrobin"
				echo "	option httpchk GET /readyz"
				echo "	http-check expect status 200"
				i=1
				while [ $i -le $LB_SLOTS ]; do
					echo "	server s$i 127.0.0.1:1 check disabled"
					i=$((i + 1))
				done
			done
		done
	} > "$VAR/run/balancer.cfg"
	cat > "$VAR/run/balancer.env" <<ENV
LB_SOCKET='$VAR/run/balancer.sock'
LB_SLOTS=$LB_SLOTS
PORT_FIRST=$INSTANCE_PORT
PORT_LAST=$((INSTANCE_PORT + 99))
DRAIN_WAIT=30
ENV
}

# The CA once, and each certificate the stack serves (deploy/local/certs.sh)
# unless it is fresh; ALL=1 reissues every one.
tls_setup() { # [ALL]
	command -v openssl >/dev/null || die "openssl is needed (make deps installs it)"
	tls_ca "$TLS_DIR" || die "could not make the local CA in $TLS_DIR"
	for n in cp router postgres; do
		if [ "${1:-}" = 1 ] || ! tls_fresh "$TLS_DIR" "$n"; then
			tls_issue "$TLS_DIR" "$n" || die "could not issue the certificate $n in $TLS_DIR"
		fi
	done
}

# The control plane's TLS edge: an HAProxy of its own (the control plane
# is global, the regions' balancer regional) on STACK_CP_PORT, in front of
# the control plane on loopback. Its long polls (config, routes) are held
# open up to a minute: the edge waits longer than that.
write_cp_edge_cfg() {
	{
		haproxy_global cp-edge
		cat <<'CFG'
defaults
	mode http
	log global
	option httplog
	option dontlog-normal
	timeout connect 2s
	timeout client 120s
	timeout server 120s
	timeout http-keep-alive 10s
	# Only a connection that failed is tried again: a request sent and
	# not answered (the control plane stopped mid-request) may have been
	# carried out, and a POST must not run twice.
	retries 3
	retry-on conn-failure
	http-error status 503 content-type application/problem+json string '{"type":"urn:celltrail:problem:unavailable","title":"Service unavailable","status":503,"code":"unavailable","detail":"The control plane is not answering; retry shortly."}' hdr Retry-After 1
CFG
		echo "frontend cp"
		echo "	bind 127.0.0.1:$CP_PORT ssl crt $TLS_DIR/cp.pem alpn http/1.1"
		# The client's address, for what the control plane keeps per
		# source (logins), believed from this edge only
		# (CP_TRUSTED_PROXIES): whatever X-Forwarded-For the client sent
		# is replaced, not added to.
		echo "	http-request set-header X-Forwarded-For %[src]"
		echo "	default_backend cp"
		echo "backend cp"
		echo "	server cp1 127.0.0.1:$CP_BACKEND_PORT"
	} > "$VAR/run/cp-edge.cfg"
}

# An HAProxy from var/run/NAME.cfg, once its configuration checks; returns
# when its runtime API (var/run/NAME.sock) answers.
start_haproxy() { # name what
	haproxy -c -q -f "$VAR/run/$1.cfg" || die "invalid configuration $VAR/run/$1.cfg"
	start_service "$1" -- haproxy -db -f "$VAR/run/$1.cfg"
	n=0
	until [ -S "$VAR/run/$1.sock" ]; do
		n=$((n + 1))
		[ $n -lt 100 ] || { tail -n 20 "$VAR/log/$1.log" >&2; die "$2 did not start (log: $VAR/log/$1.log)"; }
		sleep 0.1
	done
}

start_cp_edge() {
	command -v haproxy >/dev/null && command -v socat >/dev/null ||
		die "haproxy and socat are needed (make deps installs them)"
	rm -f "$VAR/run/cp-edge.sock"
	write_cp_edge_cfg
	start_haproxy cp-edge "the control plane's edge"
}

# A cell-router, run from its region's settings file.
start_router() { # region
	name="cell-router-$1"
	( set -a; . "$VAR/run/router-$1.env"; exec nohup "$BIN/cell-router" ) >>"$VAR/log/$name.log" 2>&1 </dev/null &
	echo $! > "$VAR/run/$name.pid"
	proc_start $! > "$VAR/run/$name.start"
}

# Each region's map, built before HAProxy reads it (cell-router --once:
# from the control plane, or from its verified cache); HAProxy; then the
# cell-routers, which push each change through HAProxy's runtime API; then
# STACK_DP_INSTANCES data planes per cell, from the source tree's build,
# each put in its cell's backend once ready.
start_routing_and_data_planes() {
	command -v haproxy >/dev/null && command -v socat >/dev/null ||
		die "haproxy and socat are needed (make deps installs them)"
	[ -x "$BIN/cell-router" ] || die "build first: make all (no $BIN/cell-router)"
	# (region-*.env: a build before cells ran a region's data planes with them.)
	rm -f "$VAR"/run/*.inst "$VAR"/run/next-* "$VAR/run/balancer.sock" "$VAR"/run/region-*.env
	rmdir "$VAR/run/driver.lock" 2>/dev/null || true
	write_envs
	for r in $REGIONS; do
		mkdir -p "$VAR/cache/router-$r"
		( set -a; . "$VAR/run/router-$r.env"; unset ROUTER_HAPROXY_SOCKET; exec "$BIN/cell-router" --once ) \
			>>"$VAR/log/cell-router-$r.log" 2>&1 </dev/null ||
			{ tail -n 5 "$VAR/log/cell-router-$r.log" >&2; die "the map of region $r could not be built (log: $VAR/log/cell-router-$r.log)"; }
	done
	write_balancer_cfg
	start_haproxy balancer "the balancer"
	for r in $REGIONS; do start_router "$r"; done
	names=""
	for c in $ALL_CELLS; do
		i=0
		while [ $i -lt "$INSTANCES" ]; do
			names="$names $(sh "$ROOT/deploy/drivers/local" start "$ROOT" "$c")" || die "could not start a data plane of cell $c"
			i=$((i + 1))
		done
	done
	for inst in $names; do
		n=0
		while :; do
			rc=0
			sh "$ROOT/deploy/drivers/local" ready "$inst" 2>/dev/null || rc=$?
			[ $rc = 0 ] && break
			n=$((n + 1))
			if [ $rc = 2 ] || [ $n -ge 150 ]; then
				tail -n 20 "$VAR/log/data-plane-$inst.log" >&2 || true
				die "data plane $inst did not become ready within 30 s (log: $VAR/log/data-plane-$inst.log)"
			fi
			sleep 0.2
		done
	done
	for r in $REGIONS; do
		wait_healthy "cell-router-$r" "http://127.0.0.1:$(router_port "$r")"
		# The demo key is routed to its cell and served there.
		eval "key=\$DEMO_KEY_$r"
		n=0
		until curl -fsS -o /dev/null --max-time 2 --cacert "$CA_CERT" -H "Authorization: Bearer $key" \
			"https://127.0.0.1:$(dp_port "$r")/v1/tenant" 2>/dev/null; do
			n=$((n + 1))
			[ $n -lt 100 ] || die "region $r: its demo key is not served through its router within 20 s (logs: $VAR/log/)"
			sleep 0.2
		done
	done
}

# A mover per region, run from its settings file (mode 0600: the region's
# credential). It reaches every cell of every run region straight, at the
# cell's first data plane: a move into its region reads from a cell of any
# region (MOVER_CELLS "<cell>=<URL> ...").
start_movers() {
	[ -x "$BIN/mover" ] || { say "warning: no $BIN/mover (build it: make all): no mover runs, moves wait" >&2; return 0; }
	cells=""
	for c in $ALL_CELLS; do
		inst=$(sh "$ROOT/deploy/drivers/local" list-instances "$c" | head -n 1)
		cells="$cells $c=$(sh "$ROOT/deploy/drivers/local" url "$inst")"
	done
	umask 077
	for r in $REGIONS; do
		eval "token=\$REGION_TOKEN_$r"
		cat > "$VAR/run/mover-$r.env" <<ENV
MOVER_REGION='$r'
MOVER_CONTROL_PLANE_URL='$CP_URL'
MOVER_CA_FILE='$CA_CERT'
MOVER_REGION_TOKEN='$token'
MOVER_CELLS='$(echo $cells)'
MOVER_LISTEN='127.0.0.1:$(mover_port "$r")'
ENV
	done
	umask 022
	for r in $REGIONS; do
		name="mover-$r"
		( set -a; . "$VAR/run/mover-$r.env"; exec nohup "$BIN/mover" ) >>"$VAR/log/$name.log" 2>&1 </dev/null &
		echo $! > "$VAR/run/$name.pid"
		proc_start $! > "$VAR/run/$name.start"
	done
	for r in $REGIONS; do wait_healthy "mover-$r" "http://127.0.0.1:$(mover_port "$r")"; done
}

# var/waves: deploy/waves for this stack's catalog (GET /v1/regions and
# each region's cells): each wave keeps the cells of the catalog that are
# not closed, a cell the production waves do not name goes in the last
# wave, and empty waves are left out (deploy/rollout -w var/waves).
write_waves() {
	: > "$VAR/run/catalog-cells"
	for r in $(api GET /v1/regions | jq -r '.items[].name'); do
		api GET "/v1/regions/$r/cells" | jq -r '.items[] | select(.status != "closed") | .name' >> "$VAR/run/catalog-cells" ||
			die "could not list the cells of region $r"
	done
	awk -v list="$VAR/run/catalog-cells" '
		BEGIN { while ((getline c < list) > 0) { want[c] = 1; order[++n] = c } }
		/^[[:space:]]*(#|$)/ { next }
		{ line = ""; for (i = 3; i <= NF; i++) if ($i in want) { line = line " " $i; named[$i] = 1 }
		  if (line != "") { w++; bake[w] = $2; cells[w] = line } }
		END {
			extra = ""; for (i = 1; i <= n; i++) if (!(order[i] in named)) extra = extra " " order[i]
			if (extra != "") { if (w == 0) { w = 1; bake[1] = "10m" } cells[w] = cells[w] extra }
			print "# Written by deploy/local/stack.sh: deploy/waves for the cells of this"
			print "# stack'"'"'s catalog. deploy/rollout -w var/waves BUILD"
			print "#"
			print "# wave  bake  cells"
			for (i = 1; i <= w; i++) printf "%-7d %-5s%s\n", i, bake[i], cells[i]
		}' "$ROOT/deploy/waves" > "$VAR/waves"
	rm -f "$VAR/run/catalog-cells"
}

cmd_start() {
	[ -x "$BIN/control-plane" ] && [ -x "$BIN/data-plane" ] || die "build first: make all"
	case "$INSTANCES" in
	[1-4]) ;;
	*) die "STACK_DP_INSTANCES must be 1 to 4, not '$INSTANCES'" ;;
	esac
	command -v jq >/dev/null || die "jq is needed (make deps installs it)"
	plan_cells
	mkdir -p "$VAR/log" "$VAR/run"
	chmod 0755 "$VAR"
	load_secrets
	stop_services
	tls_setup

	# var/pg: the control plane's database unless it has a cluster of its
	# own, and the cells' unless each has one.
	if [ "$CP_DB_PORT" = "$PG_PORT" ] || [ "$CELL_CLUSTERS" = 0 ]; then cluster_up pg "$PG_PORT"; fi
	[ "$CP_DB_PORT" = "$PG_PORT" ] || cluster_up pg-cp "$CP_DB_PORT"
	if [ "$CELL_CLUSTERS" = 1 ]; then
		for c in $ALL_CELLS; do eval "cluster_up pg-$c \$CDB_PORT_$(v "$c")"; done
	fi

	ensure_db celltrail_cp "$CP_DB_PASSWORD" celltrail_cp "$CP_DB_PORT"
	CP_DB_URL=$(pg_url celltrail_cp "$CP_DB_PASSWORD" celltrail_cp "$CP_DB_PORT")
	CP_DATABASE_URL=$CP_DB_URL "$BIN/control-plane" migrate >>"$VAR/log/migrate.log" 2>&1 ||
		{ tail -n 5 "$VAR/log/migrate.log" >&2; die "control-plane migrations failed"; }
	for c in $ALL_CELLS; do
		cv=$(v "$c")
		eval "_pwv=\$CDB_PWVAR_$cv"
		eval "ensure_db \$CDB_ROLE_$cv \"\$$_pwv\" \$CDB_NAME_$cv \$CDB_PORT_$cv"
		eval "r=\$CELL_REGION_$cv"
		# DP_CELL: migrate claims the database for its cell (region 0008).
		DP_REGION=$r DP_CELL=$c DP_CONTROL_PLANE_URL="$CP_URL" DP_DATABASE_URL=$(cell_db_url "$c") \
			"$BIN/data-plane" migrate >>"$VAR/log/migrate.log" 2>&1 ||
			{ tail -n 5 "$VAR/log/migrate.log" >&2; die "migrations of cell $c (region $r) failed"; }
	done

	write_regions_file
	start_service control-plane CP_LISTEN="127.0.0.1:$CP_BACKEND_PORT" CP_TRUSTED_PROXIES=127.0.0.1 CP_DATABASE_URL="$CP_DB_URL" \
		CP_ADMIN_TOKEN="$ADMIN_TOKEN" CP_SECRETS_KEY="$CP_SECRETS_KEY" \
		CP_SIGNING_KEK="$CP_SIGNING_KEK" CP_SIGNING_KEYS_DIR="$VAR/signing-keys" \
		CP_REGIONS_FILE="$VAR/run/regions.conf" -- "$BIN/control-plane"
	start_cp_edge
	wait_healthy control-plane "$CP_URL"
	sync_cells
	seed_demo
	seed_streams
	# The data planes and the routers trust the keys the control plane publishes.
	CP_DATABASE_URL="$CP_DB_URL" CP_SIGNING_KEK="$CP_SIGNING_KEK" "$BIN/control-plane" jwks > "$VAR/trust-bundle.json" ||
		die "could not export the trust bundle"
	start_routing_and_data_planes
	start_movers
	write_waves

	umask 077
	{
		echo "# Written by deploy/local/stack.sh; source it: . var/stack.env"
		echo "CP_URL=$CP_URL"
		echo "CA_CERT=$CA_CERT"
		echo "# curl and bin/celltrail in a shell that sourced this file trust the local CA (and only it)."
		echo "CURL_CA_BUNDLE=$CA_CERT"
		echo "CELLTRAIL_CACERT=$CA_CERT"
		echo "CP_LISTEN=127.0.0.1:$CP_BACKEND_PORT"
		echo "ADMIN_TOKEN=$ADMIN_TOKEN"
		echo "REGIONS=\"$REGIONS\""
		for r in $REGIONS; do
			echo "DP_URL_$r=https://127.0.0.1:$(dp_port "$r")"
			eval "echo CELLS_$r=\\\"\$CELLS_$r\\\""
			echo "ROUTER_URL_$r=http://127.0.0.1:$(router_port "$r")"
			if [ -x "$BIN/mover" ]; then echo "MOVER_URL_$r=http://127.0.0.1:$(mover_port "$r")"; fi
		done
		# (Quoted: a connection URL's query has '&'.)
		echo "PG_URL='$(pg_url postgres "$PG_PASSWORD" postgres)'"
		echo "PG_BIN=$PG_BIN"
		echo "CP_DATABASE_URL='$CP_DB_URL'"
		for r in $REGIONS; do
			eval "first=\${CELLS_$r%% *}"
			echo "DP_DATABASE_URL_$r='$(cell_db_url "$first")'"
		done
		for c in $ALL_CELLS; do
			cv=$(v "$c")
			echo "CELL_DB_$cv='$(cell_db_url "$c")'"
			eval "echo CELL_TOKEN_$cv=\$CELL_TOKEN_$cv"
			inst=$(sh "$ROOT/deploy/drivers/local" list-instances "$c" | head -n 1)
			echo "CELL_URL_$cv=$(sh "$ROOT/deploy/drivers/local" url "$inst")"
		done
		echo "TRUST_BUNDLE=$VAR/trust-bundle.json"
		for r in $REGIONS; do eval "echo REGION_TOKEN_$r=\$REGION_TOKEN_$r"; done
		echo "DEMO_PASSWORD=$DEMO_PASSWORD"
		for r in $REGIONS; do
			eval "echo DEMO_TENANT_$r=\$DEMO_TENANT_$r"
			eval "echo DEMO_KEY_$r=\$DEMO_KEY_$r"
			echo "DEMO_OWNER_$r=owner@demo-$r.test"
		done
		printf 'export CP_URL CA_CERT CURL_CA_BUNDLE CELLTRAIL_CACERT CP_LISTEN ADMIN_TOKEN REGIONS PG_URL PG_BIN CP_DATABASE_URL DEMO_PASSWORD TRUST_BUNDLE'
		for r in $REGIONS; do
			printf ' DP_URL_%s CELLS_%s ROUTER_URL_%s DP_DATABASE_URL_%s DEMO_TENANT_%s DEMO_KEY_%s DEMO_OWNER_%s REGION_TOKEN_%s' \
				"$r" "$r" "$r" "$r" "$r" "$r" "$r" "$r"
			if [ -x "$BIN/mover" ]; then printf ' MOVER_URL_%s' "$r"; fi
		done
		for c in $ALL_CELLS; do printf ' CELL_DB_%s CELL_TOKEN_%s CELL_URL_%s' "$(v "$c")" "$(v "$c")" "$(v "$c")"; done
		echo
	} > "$VAR/stack.env"
	umask 022

	first=$(echo "$REGIONS" | cut -d' ' -f1)
	cat <<MSG

The local stack is running.

  control plane   $CP_URL (TLS: HAProxy; the control plane on 127.0.0.1:$CP_BACKEND_PORT)
$(for r in $REGIONS; do
	printf '  region %-8s https://127.0.0.1:%s  (router: HAProxy and cell-router, http://127.0.0.1:%s/metrics)\n' \
		"$r" "$(dp_port "$r")" "$(router_port "$r")"
	if [ -x "$BIN/mover" ]; then
		printf '    mover                 http://127.0.0.1:%s/metrics (copies the tenants moving into %s)\n' "$(mover_port "$r")" "$r"
	fi
	eval "cs=\$CELLS_$r"
	for c in $cs; do
		cv=$(v "$c")
		eval "db=\$CDB_NAME_$cv port=\$CDB_PORT_$cv cl=\$CDB_CLUSTER_$cv"
		urls=$(for i in $(sh "$ROOT/deploy/drivers/local" list-instances "$c"); do sh "$ROOT/deploy/drivers/local" url "$i"; done | tr '\n' ' ')
		printf '    cell %-16s database %s (127.0.0.1:%s, var/%s)\n' "$c" "$db" "$port" "$cl"
		printf '    %-21s data planes %s\n' "" "$urls"
	done
done)
  PostgreSQL      127.0.0.1:$PG_PORT (cluster in var/pg)$(
	[ "$CELL_CLUSTERS" = 1 ] && printf '; a cluster per cell from 127.0.0.1:%s (var/pg-<cell>)' "$CELL_PG_PORT")
  logs            var/log/*.log (one JSON object per line)
  local CA        $CA_CERT (every https URL above, and PostgreSQL: sslmode=verify-full)

Clients use the region's endpoint; HAProxy sends each request to the cell
of its key's tenant. Each region has a demo tenant (demo-<region>, in the
region's first cell) with an owner and an API key.
Try:
  . var/stack.env
  curl -s --cacert \$CA_CERT \$CP_URL/v1/regions
  curl -s --cacert \$CA_CERT -H "Authorization: Bearer \$ADMIN_TOKEN" \$CP_URL/v1/regions/$first/cells
  curl -s --cacert \$CA_CERT "\$CP_URL/v1/lookup?tenant=demo-$first"
  curl -s --cacert \$CA_CERT -H "Authorization: Bearer \$ADMIN_TOKEN" \$CP_URL/v1/tenants
  curl -s --cacert \$CA_CERT -H 'Content-Type: application/json' \\
       -d "{\"tenant\":\"demo-$first\",\"email\":\"\$DEMO_OWNER_$first\",\"password\":\"\$DEMO_PASSWORD\"}" \\
       \$CP_URL/v1/auth/login
  curl -s --cacert \$CA_CERT \$DP_URL_$first/healthz
  curl -s --cacert \$CA_CERT -H "Authorization: Bearer \$DEMO_KEY_$first" -H 'Content-Type: application/json' \\
       -d '{"action":"user.login","actor":{"id":"u-1","type":"user"}}' \$DP_URL_$first/v1/events
  curl -s --cacert \$CA_CERT -H "Authorization: Bearer \$DEMO_KEY_$first" "\$DP_URL_$first/v1/events?actor=u-1"
  curl -s --cacert \$CA_CERT -H "Authorization: Bearer \$DEMO_KEY_$first" \$DP_URL_$first/v1/tenant
  curl -s \$ROUTER_URL_$first/metrics | grep ^router_
  curl -s --cacert \$CA_CERT \$CP_URL/metrics | grep http_requests_total
  deploy/local/stack.sh status

Stop everything with: make stop
MSG
}

# Every cluster under var/: pg, pg-cp, pg-<cell>.
clusters() {
	for d in "$VAR"/pg "$VAR"/pg-*; do
		[ -e "$d/data/PG_VERSION" ] && echo "${d##*/}"
	done
	return 0
}

cmd_stop() {
	stop_services
	for cl in $(clusters); do
		pgdir=$(pg_home "$cl")
		if pg_running "$pgdir/data"; then
			pg_stop "$pgdir/data"
			say "stopped PostgreSQL (var/$cl)"
		fi
	done
}

# New certificates for every hop, taken up while everything runs: HAProxy
# gets them through its runtime API (the control plane's edge, the
# regions' balancer), each PostgreSQL cluster rereads its files. A process
# that is not running takes them up when it starts.
cmd_renew_certs() {
	[ -s "$CA_CERT" ] || die "no local CA in $TLS_DIR: start the stack first"
	tls_setup 1
	for e in cp-edge:cp balancer:router; do
		sock="$VAR/run/${e%%:*}.sock"
		if ours "$VAR/run/${e%%:*}.pid" && [ -S "$sock" ]; then
			tls_haproxy_reload "$sock" "$TLS_DIR/${e#*:}.pem" || die "HAProxy (${e%%:*}) refused the new certificate ${e#*:}"
			say "${e%%:*}: serving certificate ${e#*:} serial $(tls_serial "$TLS_DIR/${e#*:}.crt")"
		fi
	done
	for cl in $(clusters); do
		pg_tls "$(pg_home "$cl")/data" "$TLS_DIR/postgres.crt" "$TLS_DIR/postgres.key"
		say "postgresql (var/$cl): serving certificate postgres serial $(tls_serial "$TLS_DIR/postgres.crt")"
	done
}

cmd_status() {
	for f in "$VAR"/run/*.pid; do
		[ -e "$f" ] || continue
		build=""
		if [ -f "${f%.pid}.inst" ]; then
			build=", cell $(sed -n 's/^INST_CELL=//p' "${f%.pid}.inst"), port $(sed -n 's/^INST_PORT=//p' "${f%.pid}.inst"), build $(sed -n "s/^INST_BUILD='\(.*\)'$/\1/p" "${f%.pid}.inst")"
		fi
		if ours "$f"; then say "$(basename "$f" .pid): running (pid $(cat "$f")$build)"
		else say "$(basename "$f" .pid): not running"; fi
	done
	for cl in $(clusters); do
		if pg_running "$(pg_home "$cl")/data"; then say "postgresql (var/$cl): running"
		else say "postgresql (var/$cl): not running"; fi
	done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
renew-certs) cmd_renew_certs ;;
*) echo "usage: $0 start|stop|status|renew-certs" >&2; exit 2 ;;
esac
