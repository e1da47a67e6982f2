#!/bin/sh
# A base backup of one PostgreSQL cluster (a cell's database server, or the
# control plane's) with pg_basebackup, into a directory named after the
# time it started, checked with pg_verifybackup; keeps the last N backups
# and removes from the WAL archive what the oldest kept one does not need.
#
#   deploy/backup/base-backup.sh -d CONNINFO -D BACKUP_ROOT [options]
#
#   -d, --dbname CONNINFO   the cluster, as a libpq URL or key=value string,
#                           as a role with REPLICATION (or a superuser); the
#                           password from it, PGPASSWORD or ~/.pgpass
#   -D, --dir DIR           where backups go: DIR/<UTC start>Z
#                           (20250107T031500Z), written as <name>.partial
#                           and renamed once complete and verified
#   -k, --keep N            complete backups kept, this one included (7);
#                           older ones are removed
#   -a, --archive DIR       the WAL archive (archive-wal.sh's): once the old
#                           backups are removed, pg_archivecleanup removes
#                           the WAL segments before the start of the oldest
#                           backup kept. Without it nothing is removed there.
#   -F, --format plain|tar  plain (default): a copy of the data directory;
#                           tar: base.tar.gz and pg_wal.tar.gz (checked by
#                           extracting them into a scratch directory)
#   -X, --wal-method stream|fetch
#                           how the WAL written during the backup is
#                           included (stream, default: a second connection;
#                           fetch: at the end, needing it still in pg_wal)
#   -l, --label TEXT        the backup's label (celltrail <dir name>)
#       --pg-bin DIR        PostgreSQL's client binaries (PG_BIN, or
#                           /usr/lib/postgresql/15/bin)
#
# The backup is taken with --checkpoint=fast and a manifest with SHA-256
# checksums; pg_verifybackup checks every file and the WAL against it
# before the backup counts. A backup that fails is removed and nothing is
# pruned. Prints the backup's directory on stdout; what it did on stderr.
# Run it from cron or a timer, e.g. daily, off the database host or on it,
# with DIR on storage off that host (deploy/backup/README.md).
#
# Exit status: 0 done; 1 failed; 2 usage error.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

say() { printf 'base-backup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

CONN="" ROOT="" KEEP=7 ARCHIVE="" FORMAT=plain WAL=stream LABEL=""
PGB=${PG_BIN:-/usr/lib/postgresql/15/bin}
need() { [ $# -ge 2 ] || { usage >&2; exit 2; }; }
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-d | --dbname) need "$@"; CONN=$2; shift 2 ;;
	-D | --dir) need "$@"; ROOT=$2; shift 2 ;;
	-k | --keep) need "$@"; KEEP=$2; shift 2 ;;
	-a | --archive) need "$@"; ARCHIVE=$2; shift 2 ;;
	-F | --format) need "$@"; FORMAT=$2; shift 2 ;;
	-X | --wal-method) need "$@"; WAL=$2; shift 2 ;;
	-l | --label) need "$@"; LABEL=$2; shift 2 ;;
	--pg-bin) need "$@"; PGB=$2; shift 2 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -n "$CONN" ] && [ -n "$ROOT" ] || { usage >&2; exit 2; }
case "$KEEP" in '' | *[!0-9]* | 0) say "--keep must be a number of at least 1, not '$KEEP'"; exit 2 ;; esac
case "$FORMAT" in plain | p) FORMAT=plain ;; tar | t) FORMAT=tar ;; *) say "--format is plain or tar"; exit 2 ;; esac
case "$WAL" in stream | fetch) ;; *) say "--wal-method is stream or fetch"; exit 2 ;; esac
for b in pg_basebackup pg_verifybackup pg_archivecleanup; do
	[ -x "$PGB/$b" ] || die "no $PGB/$b (--pg-bin)"
done
[ -z "$ARCHIVE" ] || [ -d "$ARCHIVE" ] || die "archive $ARCHIVE does not exist"

mkdir -p "$ROOT"
chmod 0700 "$ROOT"
# One backup at a time per directory; a lock left by a dead process is taken over.
LOCK="$ROOT/.lock"
if ! mkdir "$LOCK" 2>/dev/null; then
	pid=$(cat "$LOCK/pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then die "a backup into $ROOT is running (pid $pid)"; fi
	say "taking over the lock of a process that is gone (pid ${pid:-unknown})"
	rm -rf "$LOCK"
	mkdir "$LOCK" || die "could not lock $ROOT"
fi
echo $$ > "$LOCK/pid"
PART=""
cleanup() {
	[ -z "$PART" ] || rm -rf "$PART" "$PART.verify"
	rm -rf "$LOCK"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

name=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$ROOT/$name" ] || [ -e "$ROOT/$name.partial" ]; do
	sleep 1
	name=$(date -u +%Y%m%dT%H%M%SZ)
done
PART="$ROOT/$name.partial"
t0=$(date +%s)
set -- -d "$CONN" -D "$PART" -X "$WAL" --checkpoint=fast --manifest-checksums=SHA256 \
	-l "${LABEL:-celltrail $name}" --no-password
if [ "$FORMAT" = plain ]; then set -- "$@" -F plain; else set -- "$@" -F tar -z; fi
say "backing up into $PART ($FORMAT, WAL $WAL)"
"$PGB/pg_basebackup" "$@" || die "pg_basebackup failed"

# The WAL segment the backup starts in: the oldest the backup needs.
if [ "$FORMAT" = plain ]; then
	label=$(cat "$PART/backup_label")
	"$PGB/pg_verifybackup" -q "$PART" || die "pg_verifybackup found the backup in $PART broken"
else
	label=$(tar -xzOf "$PART/base.tar.gz" backup_label) || die "no backup_label in $PART/base.tar.gz"
	V="$PART.verify"
	mkdir -p "$V/pg_wal"
	tar -xzf "$PART/base.tar.gz" -C "$V" || die "could not extract $PART/base.tar.gz"
	[ ! -f "$PART/pg_wal.tar.gz" ] || tar -xzf "$PART/pg_wal.tar.gz" -C "$V/pg_wal" ||
		die "could not extract $PART/pg_wal.tar.gz"
	"$PGB/pg_verifybackup" -q -m "$PART/backup_manifest" "$V" ||
		die "pg_verifybackup found the backup in $PART broken"
	rm -rf "$V"
fi
start_wal=$(printf '%s\n' "$label" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p')
[ -n "$start_wal" ] || die "no START WAL LOCATION in the backup's backup_label"
mv "$PART" "$ROOT/$name"
PART=""
sync "$ROOT" 2>/dev/null || true
size=$(du -sk "$ROOT/$name" | cut -f1)
say "backup $ROOT/$name complete and verified: $((size / 1024)) MiB in $(($(date +%s) - t0)) s, starts in WAL segment $start_wal"

# Retention: the last KEEP complete backups.
backups() { ls -1 "$ROOT" | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort; }
n=$(backups | wc -l)
if [ "$n" -gt "$KEEP" ]; then
	for old in $(backups | head -n $((n - KEEP))); do
		rm -rf "${ROOT:?}/$old"
		say "removed the backup $old (keeping $KEEP)"
	done
fi
if [ -n "$ARCHIVE" ]; then
	oldest=$(backups | head -n 1)
	if [ "$FORMAT" = plain ] || [ -f "$ROOT/$oldest/backup_label" ]; then
		olabel=$(cat "$ROOT/$oldest/backup_label")
	else
		olabel=$(tar -xzOf "$ROOT/$oldest/base.tar.gz" backup_label)
	fi
	owal=$(printf '%s\n' "$olabel" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p')
	[ -n "$owal" ] || die "no START WAL LOCATION in the backup_label of $oldest: the archive is not pruned"
	before=$(ls -1 "$ARCHIVE" | wc -l)
	"$PGB/pg_archivecleanup" "$ARCHIVE" "$owal" || die "pg_archivecleanup $ARCHIVE $owal failed"
	say "WAL archive $ARCHIVE: removed $((before - $(ls -1 "$ARCHIVE" | wc -l))) file(s) before $owal (the start of the oldest backup kept, $oldest)"
fi
printf '%s\n' "$ROOT/$name"
