#!/bin/sh
# Restores a base backup (base-backup.sh's) into a new data directory,
# recovers it from the WAL archive (archive-wal.sh's), starts it and waits
# until recovery has ended and the server accepts writes (promoted, on a
# new timeline). Prints the last transaction it replayed: the recovery
# point reached.
#
#   deploy/backup/restore.sh -b BACKUP -D PGDATA -a ARCHIVE [options]
#
#   -b, --backup DIR        a backup (DIR/backup_manifest), or the directory
#                           holding them: the newest complete one (with
#                           --target-time, the newest that started before it;
#                           should that one have ended after the target,
#                           PostgreSQL refuses: name an older one)
#   -D, --pgdata DIR        the new data directory; must not exist or be empty
#   -a, --archive DIR       the WAL archive recovery reads (restore_command)
#   -t, --target-time TIME  stop recovery at this time (recovery_target_time,
#                           e.g. '2025-01-07 03:15:00+00'), before a bad
#                           change; default: replay all the archive holds
#   -p, --port PORT         the port the restored server listens on (default:
#                           the backup's setting); point the cell's data
#                           planes at it (deploy/backup/README.md)
#   -l, --log FILE          the server's log for this start (default
#                           PGDATA.restore.log beside PGDATA); the server runs
#                           with logging_collector off, and hot_standby off
#                           (nobody connects before it is promoted), until
#                           its next restart
#   -u, --user USER         when run as root: the OS user that owns and runs
#                           the cluster (postgres)
#   -w, --wal-from DIR      WAL files that never reached the archive (the lost
#                           cluster's pg_wal, when its disk survived), copied
#                           into the new pg_wal first: recovery then replays
#                           them after the archive, losing less
#       --no-archive        archive_mode = off in the restored cluster: for a
#                           drill or a copy beside the live cluster, so that
#                           its new timeline never enters the live archive
#       --timeout SECONDS   how long start and recovery may take (600)
#       --no-verify         skip pg_verifybackup of the restored files
#       --accept-gap        start even though the archive misses a segment
#                           (recovery then ends at the gap, losing what
#                           follows it); without it, a gap is refused
#       --no-start          restore and configure, but do not start
#       --pg-bin DIR        PostgreSQL's binaries (PG_BIN, or
#                           /usr/lib/postgresql/15/bin)
#
# Steps: the backup's files are copied (plain) or extracted (tar) into
# PGDATA and checked against the backup's manifest (pg_verifybackup, WAL
# included); WAL of --wal-from goes into PGDATA/pg_wal; postgresql.auto.conf
# gets restore_command, recovery_target_action = 'promote' (and the target)
# and recovery.signal is created; the server starts, replays the archive
# until a segment is missing (or the target), and promotes. The settings
# added stay in postgresql.auto.conf, inert outside recovery.
#
# On stdout, key=value lines: backup, pgdata, port, timeline (the new one),
# redo_done_at (the LSN recovery ended at), last_replayed_xact (the commit
# time of the last transaction replayed; empty when none was),
# recovery_stop (what stopped it: the end of the archive, or the target),
# archive_files (WAL files restored from the archive), seconds (the whole
# restore). Before starting, the archive is checked for a missing segment
# on the backup's timeline (refused unless --accept-gap). What it does goes to stderr.
#
# Exit status: 0 restored and promoted; 1 failed (the log's tail is
# printed); 2 usage error.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

say() { printf 'restore: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

BACKUP="" PGDATA_NEW="" ARCHIVE="" TARGET="" PORT="" LOG="" OSUSER=postgres WALFROM=""
NOARCHIVE=0 TIMEOUT=600 VERIFY=1 START=1 GAPOK=0
PGB=${PG_BIN:-/usr/lib/postgresql/15/bin}
need() { [ $# -ge 2 ] || { usage >&2; exit 2; }; }
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-b | --backup) need "$@"; BACKUP=$2; shift 2 ;;
	-D | --pgdata) need "$@"; PGDATA_NEW=$2; shift 2 ;;
	-a | --archive) need "$@"; ARCHIVE=$2; shift 2 ;;
	-t | --target-time) need "$@"; TARGET=$2; shift 2 ;;
	-p | --port) need "$@"; PORT=$2; shift 2 ;;
	-l | --log) need "$@"; LOG=$2; shift 2 ;;
	-u | --user) need "$@"; OSUSER=$2; shift 2 ;;
	-w | --wal-from) need "$@"; WALFROM=$2; shift 2 ;;
	--no-archive) NOARCHIVE=1; shift ;;
	--timeout) need "$@"; TIMEOUT=$2; shift 2 ;;
	--no-verify) VERIFY=0; shift ;;
	--accept-gap) GAPOK=1; shift ;;
	--no-start) START=0; shift ;;
	--pg-bin) need "$@"; PGB=$2; shift 2 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -n "$BACKUP" ] && [ -n "$PGDATA_NEW" ] && [ -n "$ARCHIVE" ] || { usage >&2; exit 2; }
case "$TIMEOUT" in '' | *[!0-9]*) say "--timeout is a number of seconds"; exit 2 ;; esac
case "$PORT" in *[!0-9]*) say "--port is a number"; exit 2 ;; esac
for b in pg_ctl pg_controldata pg_verifybackup; do [ -x "$PGB/$b" ] || die "no $PGB/$b (--pg-bin)"; done
T0=$(date +%s)

# The archive's path goes into restore_command between double quotes,
# inside a single-quoted setting.
ARCHIVE=$(cd "$ARCHIVE" 2>/dev/null && pwd) || die "archive $ARCHIVE does not exist"
case "$ARCHIVE" in *[\'\"\\%]*) die "the archive's path may not hold quotes, backslashes or %" ;; esac
[ -z "$TARGET" ] || TARGET_S=$(date -d "$TARGET" +%s 2>/dev/null) || die "--target-time: '$TARGET' is not a time"
case "$TARGET" in *\'*) die "--target-time may not hold a quote" ;; esac

# Runs a command as the cluster's owner (from /: our directory may be closed to it).
as_owner() {
	if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$OSUSER" -- "$@"); else "$@"; fi
}
[ "$(id -u)" != 0 ] || id "$OSUSER" > /dev/null 2>&1 || die "no user $OSUSER (--user)"

start_wal() { # backup dir: its backup_label's START lines
	if [ -f "$1/backup_label" ]; then cat "$1/backup_label"
	elif [ -f "$1/base.tar.gz" ]; then tar -xzOf "$1/base.tar.gz" backup_label 2>/dev/null
	else tar -xOf "$1/base.tar" backup_label 2>/dev/null; fi
}

# The backup: the one named, or the newest complete one under it (before the target).
if [ ! -f "$BACKUP/backup_manifest" ]; then
	pick=""
	for d in $(ls -1 "$BACKUP" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort -r); do
		[ -f "$BACKUP/$d/backup_manifest" ] || continue
		if [ -n "$TARGET" ]; then
			st=$(start_wal "$BACKUP/$d" | sed -n 's/^START TIME: //p')
			[ -n "$st" ] && [ "$(date -d "$st" +%s)" -lt "$TARGET_S" ] || continue
		fi
		pick="$BACKUP/$d"
		break
	done
	[ -n "$pick" ] || die "no complete backup in $BACKUP${TARGET:+ that started before $TARGET}"
	BACKUP=$pick
fi
BACKUP=$(cd "$BACKUP" && pwd)
label=$(start_wal "$BACKUP") || die "no backup_label in $BACKUP"
say "restoring $BACKUP ($(printf '%s\n' "$label" | sed -n 's/^START TIME: //p'), $(printf '%s\n' "$label" | sed -n 's/^START WAL LOCATION: //p'))"

# The new data directory: empty, reachable and owned by the server's user.
if [ -e "$PGDATA_NEW" ]; then
	[ -d "$PGDATA_NEW" ] && [ -z "$(ls -A "$PGDATA_NEW")" ] || die "$PGDATA_NEW exists and is not empty"
fi
mkdir -p "$PGDATA_NEW"
PGDATA_NEW=$(cd "$PGDATA_NEW" && pwd)
chmod 0700 "$PGDATA_NEW"
if [ -f "$BACKUP/base.tar.gz" ]; then
	tar -xzf "$BACKUP/base.tar.gz" -C "$PGDATA_NEW" || die "could not extract $BACKUP/base.tar.gz"
	mkdir -p "$PGDATA_NEW/pg_wal"
	[ ! -f "$BACKUP/pg_wal.tar.gz" ] || tar -xzf "$BACKUP/pg_wal.tar.gz" -C "$PGDATA_NEW/pg_wal" ||
		die "could not extract $BACKUP/pg_wal.tar.gz"
elif [ -f "$BACKUP/base.tar" ]; then
	tar -xf "$BACKUP/base.tar" -C "$PGDATA_NEW" || die "could not extract $BACKUP/base.tar"
	mkdir -p "$PGDATA_NEW/pg_wal"
	[ ! -f "$BACKUP/pg_wal.tar" ] || tar -xf "$BACKUP/pg_wal.tar" -C "$PGDATA_NEW/pg_wal" ||
		die "could not extract $BACKUP/pg_wal.tar"
else
	cp -Rp "$BACKUP/." "$PGDATA_NEW/" || die "could not copy $BACKUP into $PGDATA_NEW"
	rm -f "$PGDATA_NEW/backup_manifest"
fi
if [ "$VERIFY" = 1 ]; then
	"$PGB/pg_verifybackup" -q -m "$BACKUP/backup_manifest" "$PGDATA_NEW" ||
		die "the restored files in $PGDATA_NEW do not match the backup's manifest (pg_verifybackup)"
	say "the restored files match the backup's manifest (pg_verifybackup, WAL included)"
fi
rm -f "$PGDATA_NEW/postmaster.pid" "$PGDATA_NEW/standby.signal"
if [ -n "$WALFROM" ]; then
	n=0
	for f in $(ls -1 "$WALFROM" | grep -E '^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history$'); do
		# (over the backup's copy: the one the backup ended in is incomplete there)
		cp -p "$WALFROM/$f" "$PGDATA_NEW/pg_wal/$f" || die "could not copy $WALFROM/$f"
		n=$((n + 1))
	done
	say "copied $n WAL file(s) from $WALFROM into pg_wal, replayed after the archive"
fi

# Recovery replays segment after segment and ends, without an error, at
# the first one restore_command cannot find: a segment missing from the
# archive would silently lose everything after it. So the archive must
# hold, on the backup's timeline, every segment from the backup's start to
# the newest it has; the backup's own pg_wal counts, but only below the
# segment its end is in (that one ends there, incomplete).
start_seg=$(printf '%s\n' "$label" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p')
end_lsn=$(sed -n 's/.*"End-LSN": *"\([0-9A-F]*\/[0-9A-F]*\)".*/\1/p' "$BACKUP/backup_manifest" | tail -n 1)
segsize=$("$PGB/pg_controldata" "$PGDATA_NEW" 2>/dev/null | sed -n 's/^Bytes per WAL segment: *//p')
if [ -n "$start_seg" ] && [ -n "$end_lsn" ] && [ -n "$segsize" ]; then
	gap=$( { ls -1 "$ARCHIVE" ${WALFROM:+"$WALFROM"} | sed 's/^/A /'; ls -1 "$PGDATA_NEW/pg_wal" | sed 's/^/W /'; } |
		awk -v start="$start_seg" -v endlsn="$end_lsn" -v size="$segsize" '
		function hex(s,  i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1; return v }
		function num(n) { return hex(substr(n, 9, 8)) * per + hex(substr(n, 17, 8)) }
		BEGIN { per = 4294967296 / size; tli = substr(start, 1, 8); first = num(start)
		        split(endlsn, l, "/"); endseg = hex(l[1]) * per + int(hex(l[2]) / size); max = -1 }
		length($2) != 24 || $2 ~ /[^0-9A-F]/ || substr($2, 1, 8) != tli { next }
		{ n = num($2); if ($1 == "W" && n >= endseg) next; have[n] = 1; if (n > max) max = n }
		END { for (i = first; i <= max; i++) if (!(i in have)) { printf "%s%08X%08X\n", tli, int(i / per), i % per; exit } }')
	if [ -n "$gap" ]; then
		[ "$GAPOK" = 1 ] || die "the archive misses WAL segment $gap (the backup starts in $start_seg, the archive goes further): recovery would stop there; find it, or accept losing what follows with --accept-gap"
		say "WARNING: the archive misses WAL segment $gap: recovery will end there (--accept-gap)"
	fi
fi

# Recovery settings: after everything else in postgresql.auto.conf, which
# is read last, so that they win.
{
	echo "# Added by deploy/backup/restore.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ): recovery of"
	echo "# $BACKUP from the archive $ARCHIVE (used only in recovery)."
	echo "restore_command = 'cp \"$ARCHIVE/%f\" \"%p\"'"
	echo "recovery_target_timeline = 'latest'"
	echo "recovery_target_action = 'promote'"
	[ -z "$TARGET" ] || echo "recovery_target_time = '$TARGET'"
	[ "$NOARCHIVE" = 0 ] || echo "archive_mode = off"
} >> "$PGDATA_NEW/postgresql.auto.conf"
: > "$PGDATA_NEW/recovery.signal"
[ "$(id -u)" != 0 ] || chown -R "$OSUSER:$(id -gn "$OSUSER")" "$PGDATA_NEW"
as_owner test -w "$PGDATA_NEW" || die "$OSUSER cannot reach $PGDATA_NEW (its parents must be searchable by it)"

if [ "$START" = 0 ]; then
	say "restored into $PGDATA_NEW; start it with pg_ctl to recover"
	printf 'backup=%s\npgdata=%s\n' "$BACKUP" "$PGDATA_NEW"
	exit 0
fi

LOG=${LOG:-$PGDATA_NEW.restore.log}
touch "$LOG"
[ "$(id -u)" != 0 ] || chown "$OSUSER" "$LOG"
off=$(wc -c < "$LOG")
newlog() { tail -c +$((off + 1)) "$LOG"; }
# hot_standby off: no client (a data plane reconnecting) gets in before
# recovery has ended and the server is promoted, writable.
opts="-c logging_collector=off -c hot_standby=off${PORT:+ -p $PORT}"
say "starting it (log $LOG${PORT:+, port $PORT}) and replaying the archive"
as_owner "$PGB/pg_ctl" -D "$PGDATA_NEW" -l "$LOG" -o "$opts" -W start > /dev/null ||
	{ newlog | tail -n 20 >&2; die "pg_ctl start failed"; }
end=$(($(date +%s) + TIMEOUT)) pid_by=$(($(date +%s) + 30)) seen=0
while ! newlog | grep -q 'database system is ready to accept connections'; do
	# (FATAL lines alone are clients refused while it starts: not a failure.)
	if newlog | grep -q -e 'PANIC:' -e 'startup process .* exited' -e 'aborting startup' -e 'database system is shut down'; then
		sleep 1
		newlog | tail -n 25 >&2
		die "recovery failed (above; log $LOG)"
	fi
	# pg_ctl -W returns before the postmaster writes its pid file.
	[ "$seen" = 1 ] || [ ! -f "$PGDATA_NEW/postmaster.pid" ] || seen=1
	if [ "$seen" = 1 ] && ! as_owner "$PGB/pg_ctl" -D "$PGDATA_NEW" status > /dev/null 2>&1; then
		newlog | tail -n 25 >&2
		die "the server is not running (above; log $LOG)"
	fi
	if [ "$seen" = 0 ] && [ "$(date +%s)" -ge "$pid_by" ]; then
		newlog | tail -n 25 >&2
		die "the server did not start within 30 s (above; log $LOG)"
	fi
	[ "$(date +%s)" -lt "$end" ] || { newlog | tail -n 25 >&2; die "recovery did not end within $TIMEOUT s (log $LOG)"; }
	sleep 0.2
done

# The end of recovery, as the server logged it.
xact=$(newlog | sed -n 's/.*last completed transaction was at log time \(.*\)$/\1/p' | tail -n 1)
redo=$(newlog | sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' | tail -n 1)
tli=$(newlog | sed -n 's/.*selected new timeline ID: \([0-9]*\).*/\1/p' | tail -n 1)
stop=$(newlog | sed -n 's/.*LOG: *\(recovery stopping .*\)$/\1/p' | tail -n 1)
[ -n "$stop" ] || stop="end of the WAL available (the first segment neither the archive nor pg_wal holds)"
say "recovered and promoted in $(($(date +%s) - T0)) s: timeline ${tli:-?}, redo done at ${redo:-?}, last transaction replayed ${xact:-none}"
[ -n "$xact" ] || say "no transaction was replayed: the backup's own end is the recovery point"
nseg=$(newlog | grep -c 'restored log file ".*" from archive' || true)
[ "$nseg" -gt 0 ] || say "WARNING: no WAL file came from the archive: only the backup itself was restored"
printf 'backup=%s\npgdata=%s\nport=%s\ntimeline=%s\nredo_done_at=%s\nlast_replayed_xact=%s\nrecovery_stop=%s\narchive_files=%s\nseconds=%s\n' \
	"$BACKUP" "$PGDATA_NEW" "$PORT" "$tli" "$redo" "$xact" "$stop" "$nseg" "$(($(date +%s) - T0))"
