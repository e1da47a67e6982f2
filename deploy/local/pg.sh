# PostgreSQL helpers for the local stack and the test harness (sourced).
#
# initdb refuses to run as root, so when we are root every server command
# runs as the unprivileged `postgres` user (created by Debian's package).
# Clusters listen on 127.0.0.1 only, with no Unix socket, and require a
# password (scram-sha-256) even there.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# Runs a command as the cluster's owner.
pg_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		# From /, since the caller's directory may be closed to that user.
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Makes a directory the cluster's owner can write.
pg_prepare_dir() {
	mkdir -p "$1"
	chmod 0700 "$1"
	if [ "$(id -u)" = 0 ]; then
		chown postgres:postgres "$1"
	fi
}

# Prints 32 random hex characters.
pg_random_hex() {
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

# pg_init DATADIR PASSWORD: creates a cluster whose superuser `postgres`
# has PASSWORD. The password file is removed afterwards. PG_FSYNC=off
# (tests only: a throwaway cluster) leaves out fsync; the default is on.
pg_init() {
	_pwfile="$1.pw"
	pg_prepare_dir "$1"
	( umask 077; printf '%s\n' "$2" > "$_pwfile" )
	[ "$(id -u)" = 0 ] && chown postgres "$_pwfile"
	pg_as_owner "$PG_BIN/initdb" -D "$1" -U postgres --pwfile="$_pwfile" \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
		>"$1.initdb.log" 2>&1 || { rm -f "$_pwfile"; cat "$1.initdb.log" >&2; return 1; }
	rm -f "$_pwfile"
	cat >> "$1/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
fsync = ${PG_FSYNC:-on}
logging_collector = off
CONF
}

# pg_tls DATADIR CRT KEY: the cluster serves TLS with CRT and KEY (copied
# into DATADIR, owned by the cluster's owner, the key 0600) and accepts
# connections over TLS only (pg_hba: hostssl). Idempotent; a running
# cluster rereads its files (pg_ctl reload: new connections get the new
# certificate, open ones keep theirs; no restart).
pg_tls() {
	for _f in "$2:server.crt:0644" "$3:server.key:0600"; do
		_src=${_f%%:*} _rest=${_f#*:}
		_dst="$1/${_rest%%:*}"
		cp "$_src" "$_dst.new"
		chmod "${_rest#*:}" "$_dst.new"
		[ "$(id -u)" = 0 ] && chown postgres:postgres "$_dst.new"
		mv "$_dst.new" "$_dst"
	done
	grep -q "^include_if_exists = 'celltrail-tls.conf'" "$1/postgresql.conf" ||
		echo "include_if_exists = 'celltrail-tls.conf'" >> "$1/postgresql.conf"
	cat > "$1/celltrail-tls.conf" <<CONF
# Written by deploy/local/pg.sh (pg_tls)
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$1/celltrail-tls.conf"
	sed -i 's/^host\([[:space:]]\)/hostssl\1/' "$1/pg_hba.conf"
	if pg_running "$1"; then
		pg_as_owner "$PG_BIN/pg_ctl" -D "$1" reload >/dev/null
	fi
}

# pg_start DATADIR PORT LOGFILE: starts the cluster and waits until it
# accepts connections. Fails (without retrying) when the port is taken.
pg_start() {
	touch "$3"
	[ "$(id -u)" = 0 ] && chown postgres "$3"
	pg_as_owner "$PG_BIN/pg_ctl" -D "$1" -l "$3" -o "-p $2" -w -t 30 start >/dev/null
}

# pg_running DATADIR: true when the cluster's postmaster is alive.
pg_running() {
	[ -f "$1/postmaster.pid" ] && pg_as_owner "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

pg_stop() {
	if pg_running "$1"; then
		pg_as_owner "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 30 stop >/dev/null
	fi
}

# pg_psql URL SQL...: runs statements, stops at the first error.
pg_psql() {
	_url=$1; shift
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$_url" "$@"
}
