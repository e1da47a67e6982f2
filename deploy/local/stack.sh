#!/bin/sh
# The local multi-region stack: one PostgreSQL cluster standing in for the
# control plane's database and each region's own database server, the
# control plane, and the data planes of each region: one by default, or
# several behind a local HAProxy (STACK_DP_INSTANCES=2, as `make run` does).
#
#   deploy/local/stack.sh start   (make run)  create once, migrate, (re)start
#   deploy/local/stack.sh stop    (make stop) stop what start started, by pid
#   deploy/local/stack.sh status
#
# Everything lives under var/: the cluster, logs, pid files, generated
# secrets and stack.env. Ports and regions can be changed with:
#   STACK_CP_PORT (8080), STACK_DP_BASE_PORT (8081, then +1 per region),
#   STACK_PG_PORT (15432), STACK_REGIONS ("us eu jp"); STACK_VAR (var/) moves
#   the whole state elsewhere, as the benchmarks do for a stack of their own.
#   STACK_CP_PG_PORT (unset): put the control plane's database in a second
#   cluster of its own (var/pg-cp) on that port, so that it can be stopped
#   without the regions' (tests/faults do); keep it the same for one STACK_VAR.
#   STACK_DP_INSTANCES (1): data planes per region. With 2 or more, each
#   region's port is its balancer's, and the data planes listen on ports
#   from STACK_DP_INSTANCE_PORT (8100) on; deploy/rollout (driver local)
#   replaces them one by one.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR="${STACK_VAR:-$ROOT/var}"
BIN="$ROOT/bin"
CP_PORT=${STACK_CP_PORT:-8080}
DP_BASE_PORT=${STACK_DP_BASE_PORT:-8081}
PG_PORT=${STACK_PG_PORT:-15432}  # below the ephemeral range (32768+): see README
CP_DB_PORT=${STACK_CP_PG_PORT:-$PG_PORT}
REGIONS=${STACK_REGIONS:-us eu jp}
INSTANCES=${STACK_DP_INSTANCES:-1}
INSTANCE_PORT=${STACK_DP_INSTANCE_PORT:-8100}
LB_SLOTS=8  # balancer server slots per region: instances during a rollout
. "$ROOT/deploy/local/pg.sh"

say() { printf '%s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

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
	for name in PG_PASSWORD CP_DB_PASSWORD ADMIN_TOKEN CP_SECRETS_KEY DEMO_PASSWORD \
		$(for r in $REGIONS; do echo "DP_DB_PASSWORD_$r"; done); do
		eval "v=\${$name:-}"
		if [ -z "$v" ]; then
			v=$(pg_random_hex)
			[ "$name" = CP_SECRETS_KEY ] && v="$v$(pg_random_hex)"  # 32 bytes
			printf '%s=%s\n' "$name" "$v" >> "$VAR/secrets"
			eval "$name=\$v"
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

pg_url() { # user password db [port]
	echo "postgresql://$1:$2@127.0.0.1:${4:-$PG_PORT}/$3"
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
	until curl -fsS -o /dev/null --max-time 1 "$2/healthz" 2>/dev/null; do
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
		curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
			-H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$CP_PORT$2"
	else
		curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$CP_PORT$2"
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

# Points each running region at its local data plane, then makes sure each
# has a demo tenant with an owner and an API key holding both scopes.
seed_demo() {
	for r in $REGIONS; do
		api PATCH "/v1/regions/$r" "{\"endpoint\":\"http://127.0.0.1:$(dp_port "$r")\"}" >/dev/null ||
			die "could not set the endpoint of region $r"
		eval "tenant=\${DEMO_TENANT_$r:-}"
		if [ -z "$tenant" ] || ! api GET "/v1/tenants/$tenant" >/dev/null 2>&1; then
			body=$(api POST /v1/tenants "{\"name\":\"Demo ($r)\",\"slug\":\"demo-$r\",\"region\":\"$r\",\"plan\":\"pro\"}") ||
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
}

# Each region's settings for its data planes, whatever their build: what
# deploy/drivers/local starts an instance with (mode 0600: secrets).
write_region_envs() {
	umask 077
	for r in $REGIONS; do
		eval "pw=\$DP_DB_PASSWORD_$r; token=\$REGION_TOKEN_$r"
		cat > "$VAR/run/region-$r.env" <<EOF
DP_REGION='$r'
DP_CONTROL_PLANE_URL='http://127.0.0.1:$CP_PORT'
DP_DATABASE_URL='$(pg_url "celltrail_dp_$r" "$pw" "celltrail_region_$r")'
DP_REGION_TOKEN='$token'
DP_TRUST_BUNDLE='$VAR/trust-bundle.json'
EOF
	done
	umask 022
}

# The balancer: one frontend on each region's port, one backend of
# LB_SLOTS server slots, all in maintenance until the driver puts a ready
# instance in one. Health checks on /readyz; a refused connection or an
# empty answer is retried on another instance.
write_balancer_cfg() {
	{
		echo "# Written by deploy/local/stack.sh"
		echo "global"
		echo "	stats socket $VAR/run/balancer.sock mode 600 level admin"
		echo "	log stdout format raw local0 info"
		echo "	maxconn 4096"
		if [ "$(id -u)" = 0 ]; then
			echo "	user nobody"
			echo "	group nogroup"
		fi
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
CFG
		for r in $REGIONS; do
			echo "frontend dp_$r"
			echo "	bind 127.0.0.1:$(dp_port "$r")"
			echo "	default_backend dp_$r"
			echo "backend dp_$r"
			echo "	balance roundrobin"
			echo "	option httpchk GET /readyz"
			echo "	http-check expect status 200"
			i=1
			while [ $i -le $LB_SLOTS ]; do
				echo "	server s$i 127.0.0.1:1 check disabled"
				i=$((i + 1))
			done
		done
	} > "$VAR/run/balancer.cfg"
	cat > "$VAR/run/balancer.env" <<EOF
LB_SOCKET='$VAR/run/balancer.sock'
LB_SLOTS=$LB_SLOTS
PORT_FIRST=$INSTANCE_PORT
PORT_LAST=$((INSTANCE_PORT + 99))
DRAIN_WAIT=30
EOF
}

# STACK_DP_INSTANCES data planes per region, from the source tree's build,
# behind the balancer; each is put in the balancer once ready.
start_balanced_data_planes() {
	command -v haproxy >/dev/null && command -v socat >/dev/null ||
		die "haproxy and socat are needed for STACK_DP_INSTANCES > 1 (make deps installs them)"
	rm -f "$VAR"/run/*.inst "$VAR"/run/next-* "$VAR/run/balancer.sock"
	rmdir "$VAR/run/driver.lock" 2>/dev/null || true
	write_region_envs
	write_balancer_cfg
	haproxy -c -q -f "$VAR/run/balancer.cfg" || die "invalid balancer configuration $VAR/run/balancer.cfg"
	start_service balancer -- haproxy -db -f "$VAR/run/balancer.cfg"
	n=0
	until [ -S "$VAR/run/balancer.sock" ]; do
		n=$((n + 1))
		[ $n -lt 100 ] || { tail -n 20 "$VAR/log/balancer.log" >&2; die "the balancer did not start (log: $VAR/log/balancer.log)"; }
		sleep 0.1
	done
	names=""
	for r in $REGIONS; do
		i=0
		while [ $i -lt "$INSTANCES" ]; do
			names="$names $(sh "$ROOT/deploy/drivers/local" start "$ROOT" "$r")" || die "could not start a data plane of region $r"
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
}

cmd_start() {
	[ -x "$BIN/control-plane" ] && [ -x "$BIN/data-plane" ] || die "build first: make all"
	case "$INSTANCES" in
	[1-4]) ;;
	*) die "STACK_DP_INSTANCES must be 1 to 4, not '$INSTANCES'" ;;
	esac
	for r in $REGIONS; do
		grep -q "^$r[[:space:]]" "$ROOT/deploy/regions.conf" || die "region '$r' is not in deploy/regions.conf"
	done
	mkdir -p "$VAR/log" "$VAR/run"
	chmod 0755 "$VAR"
	load_secrets
	stop_services

	cluster_up pg "$PG_PORT"
	[ "$CP_DB_PORT" = "$PG_PORT" ] || cluster_up pg-cp "$CP_DB_PORT"

	ensure_db celltrail_cp "$CP_DB_PASSWORD" celltrail_cp "$CP_DB_PORT"
	CP_DB_URL=$(pg_url celltrail_cp "$CP_DB_PASSWORD" celltrail_cp "$CP_DB_PORT")
	CP_DATABASE_URL=$CP_DB_URL "$BIN/control-plane" migrate >>"$VAR/log/migrate.log" 2>&1 ||
		{ tail -n 5 "$VAR/log/migrate.log" >&2; die "control-plane migrations failed"; }
	for r in $REGIONS; do
		eval "pw=\$DP_DB_PASSWORD_$r"
		ensure_db "celltrail_dp_$r" "$pw" "celltrail_region_$r"
		DP_REGION=$r DP_CONTROL_PLANE_URL="http://127.0.0.1:$CP_PORT" \
			DP_DATABASE_URL=$(pg_url "celltrail_dp_$r" "$pw" "celltrail_region_$r") \
			"$BIN/data-plane" migrate >>"$VAR/log/migrate.log" 2>&1 ||
			{ tail -n 5 "$VAR/log/migrate.log" >&2; die "region $r migrations failed"; }
	done

	start_service control-plane CP_LISTEN="127.0.0.1:$CP_PORT" CP_DATABASE_URL="$CP_DB_URL" \
		CP_ADMIN_TOKEN="$ADMIN_TOKEN" CP_SECRETS_KEY="$CP_SECRETS_KEY" \
		CP_SIGNING_KEYS_DIR="$VAR/signing-keys" \
		CP_REGIONS_FILE="$ROOT/deploy/regions.conf" -- "$BIN/control-plane"
	wait_healthy control-plane "http://127.0.0.1:$CP_PORT"
	seed_demo
	# The data planes trust the keys the control plane publishes.
	CP_SIGNING_KEYS_DIR="$VAR/signing-keys" "$BIN/control-plane" jwks > "$VAR/trust-bundle.json" ||
		die "could not export the trust bundle"
	if [ "$INSTANCES" -gt 1 ]; then
		start_balanced_data_planes
	else
		for r in $REGIONS; do
			eval "pw=\$DP_DB_PASSWORD_$r; token=\$REGION_TOKEN_$r"
			mkdir -p "$VAR/cache/$r"
			start_service "data-plane-$r" DP_REGION="$r" DP_LISTEN="127.0.0.1:$(dp_port "$r")" \
				DP_CONTROL_PLANE_URL="http://127.0.0.1:$CP_PORT" \
				DP_DATABASE_URL="$(pg_url "celltrail_dp_$r" "$pw" "celltrail_region_$r")" \
				DP_REGION_TOKEN="$token" DP_TRUST_BUNDLE="$VAR/trust-bundle.json" \
				DP_CACHE_DIR="$VAR/cache/$r" DP_INSTANCE="local-$r-1" \
				-- "$BIN/data-plane"
		done
		for r in $REGIONS; do
			wait_healthy "data-plane-$r" "http://127.0.0.1:$(dp_port "$r")"
		done
	fi

	umask 077
	{
		echo "# Written by deploy/local/stack.sh; source it: . var/stack.env"
		echo "CP_URL=http://127.0.0.1:$CP_PORT"
		echo "ADMIN_TOKEN=$ADMIN_TOKEN"
		echo "REGIONS=\"$REGIONS\""
		for r in $REGIONS; do echo "DP_URL_$r=http://127.0.0.1:$(dp_port "$r")"; done
		echo "PG_URL=$(pg_url postgres "$PG_PASSWORD" postgres)"
		echo "PG_BIN=$PG_BIN"
		echo "CP_DATABASE_URL=$CP_DB_URL"
		for r in $REGIONS; do
			eval "pw=\$DP_DB_PASSWORD_$r"
			echo "DP_DATABASE_URL_$r=$(pg_url "celltrail_dp_$r" "$pw" "celltrail_region_$r")"
		done
		echo "TRUST_BUNDLE=$VAR/trust-bundle.json"
		for r in $REGIONS; do eval "echo REGION_TOKEN_$r=\$REGION_TOKEN_$r"; done
		echo "DEMO_PASSWORD=$DEMO_PASSWORD"
		for r in $REGIONS; do
			eval "echo DEMO_TENANT_$r=\$DEMO_TENANT_$r"
			eval "echo DEMO_KEY_$r=\$DEMO_KEY_$r"
			echo "DEMO_OWNER_$r=owner@demo-$r.test"
		done
		echo "export CP_URL ADMIN_TOKEN REGIONS PG_URL PG_BIN CP_DATABASE_URL DEMO_PASSWORD TRUST_BUNDLE$(for r in $REGIONS; do printf ' DP_URL_%s DP_DATABASE_URL_%s DEMO_TENANT_%s DEMO_KEY_%s DEMO_OWNER_%s REGION_TOKEN_%s' "$r" "$r" "$r" "$r" "$r" "$r"; done)"
	} > "$VAR/stack.env"
	umask 022

	first=$(echo "$REGIONS" | cut -d' ' -f1)
	cat <<MSG

The local stack is running.

  control plane   http://127.0.0.1:$CP_PORT
$(for r in $REGIONS; do printf '  data plane %-4s http://127.0.0.1:%s\n' "$r" "$(dp_port "$r")"; done)$(
	[ "$INSTANCES" -gt 1 ] && printf '\n  (each region: %s data planes behind HAProxy; deploy/local/stack.sh status lists them)' "$INSTANCES")
  PostgreSQL      127.0.0.1:$PG_PORT (cluster in var/pg)
  logs            var/log/*.log (one JSON object per line)

Each region has a demo tenant (demo-<region>) with an owner and an API key.
Try:
  . var/stack.env
  curl -s \$CP_URL/v1/regions
  curl -s "\$CP_URL/v1/lookup?tenant=demo-$first"
  curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" \$CP_URL/v1/tenants
  curl -s -H 'Content-Type: application/json' \\
       -d "{\"tenant\":\"demo-$first\",\"email\":\"\$DEMO_OWNER_$first\",\"password\":\"\$DEMO_PASSWORD\"}" \\
       \$CP_URL/v1/auth/login
  curl -s \$DP_URL_$first/healthz
  curl -s -H "Authorization: Bearer \$DEMO_KEY_$first" -H 'Content-Type: application/json' \\
       -d '{"action":"user.login","actor":{"id":"u-1","type":"user"}}' \$DP_URL_$first/v1/events
  curl -s -H "Authorization: Bearer \$DEMO_KEY_$first" "\$DP_URL_$first/v1/events?actor=u-1"
  curl -s -H "Authorization: Bearer \$DEMO_KEY_$first" \$DP_URL_$first/v1/tenant
  curl -s \$CP_URL/metrics | grep http_requests_total

Stop everything with: make stop
MSG
}

cmd_stop() {
	stop_services
	if [ -e "$VAR/pg/data/PG_VERSION" ]; then
		pgdir=$(pg_home)
		if pg_running "$pgdir/data"; then
			pg_stop "$pgdir/data"
			say "stopped PostgreSQL"
		fi
	fi
	if [ -e "$VAR/pg-cp/data/PG_VERSION" ] && pg_running "$(pg_home pg-cp)/data"; then
		pg_stop "$(pg_home pg-cp)/data"
		say "stopped PostgreSQL (control plane)"
	fi
}

cmd_status() {
	for f in "$VAR"/run/*.pid; do
		[ -e "$f" ] || continue
		build=""
		if [ -f "${f%.pid}.inst" ]; then
			build=", port $(sed -n 's/^INST_PORT=//p' "${f%.pid}.inst"), build $(sed -n "s/^INST_BUILD='\(.*\)'$/\1/p" "${f%.pid}.inst")"
		fi
		if ours "$f"; then say "$(basename "$f" .pid): running (pid $(cat "$f")$build)"
		else say "$(basename "$f" .pid): not running"; fi
	done
	if [ -e "$VAR/pg/data/PG_VERSION" ] && pg_running "$(pg_home)/data"; then
		say "postgresql: running"
	else
		say "postgresql: not running"
	fi
	if [ -e "$VAR/pg-cp/data/PG_VERSION" ]; then
		if pg_running "$(pg_home pg-cp)/data"; then say "postgresql (control plane): running"
		else say "postgresql (control plane): not running"; fi
	fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
