#!/bin/sh
# A throwaway PostgreSQL cluster for the tests, on a free port.
#
#   tests/pgtmp.sh create          prints shell assignments: PGTMP_DIR, PGTMP_PORT, PGTMP_URL
#   tests/pgtmp.sh stop DIR        stops the server (the directory stays)
#   tests/pgtmp.sh start DIR PORT  starts it again on the same port
#   tests/pgtmp.sh destroy DIR     stops it and removes the directory
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/local/pg.sh"

case "${1:-}" in
create)
	dir=$(mktemp -d /tmp/celltrail-pgtmp.XXXXXX)
	chmod 0755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	pw=$(pg_random_hex)
	# A throwaway cluster outlives no machine: what a test stops or kills
	# is PostgreSQL, never the kernel, and the kernel keeps every write
	# PostgreSQL made before its end, so nothing committed is lost without
	# fsync. Without it the suites' thousands of commits and databases do
	# not wait on the disk.
	PG_FSYNC=off pg_init "$dir/data" "$pw" >&2
	# A port is free only if the server can bind it: try a few at random,
	# below the ephemeral range (32768 and up), where the lingering
	# TIME-WAIT of some client connection could take the port.
	tries=0
	while :; do
		port=$(( 20000 + $(od -An -tu2 -N2 /dev/urandom | tr -d ' ') % 12000 ))
		if pg_start "$dir/data" "$port" "$dir/postgres.log" 2>/dev/null; then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 10 ]; then
			cat "$dir/postgres.log" >&2
			echo "pgtmp: could not start PostgreSQL on a free port" >&2
			exit 1
		fi
	done
	echo "$port" > "$dir/port"
	echo "PGTMP_DIR=$dir"
	echo "PGTMP_PORT=$port"
	echo "PGTMP_URL=postgresql://postgres:$pw@127.0.0.1:$port/postgres"
	;;
stop)
	pg_stop "$2/data"
	;;
start)
	pg_start "$2/data" "$3" "$2/postgres.log"
	;;
destroy)
	case "$2" in /tmp/celltrail-pgtmp.*) ;; *) echo "pgtmp: refusing to remove $2" >&2; exit 2 ;; esac
	pg_stop "$2/data" || true
	rm -rf "$2"
	;;
*)
	echo "usage: $0 create | stop DIR | start DIR PORT | destroy DIR" >&2
	exit 2
	;;
esac
