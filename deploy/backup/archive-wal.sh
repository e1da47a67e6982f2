#!/bin/sh
# PostgreSQL's archive_command for the cells' and the control plane's
# databases: copies one WAL file (a segment, a timeline history file, a
# backup history file, a .partial) into the WAL archive, safely.
#
#   archive-wal.sh WAL_PATH WAL_NAME ARCHIVE_DIR    (%p %f and the archive)
#   archive-wal.sh --init ARCHIVE_DIR               (once, as the server's user)
#
# In postgresql.conf (deploy/backup/README.md has the other lines):
#
#   archive_command = '/opt/celltrail/deploy/backup/archive-wal.sh %p %f /archive/cell-us-east-1'
#
# The copy is written to a temporary name in ARCHIVE_DIR, flushed to disk
# (dd conv=fsync), compared with the source, then linked to its final name
# (ln, which never replaces a file) and the directory flushed (sync DIR).
# A file of that name already in the archive is accepted only when it is
# identical (PostgreSQL may archive a file again after a crash); a
# different one is refused. Any failure exits non-zero: PostgreSQL keeps
# the WAL file and retries (pg_stat_archiver counts the failures), so a
# full or missing archive fills pg_wal rather than losing WAL silently.
#
# ARCHIVE_DIR must be an initialized archive (--init writes the marker file
# CELLTRAIL_WAL_ARCHIVE into it): a mount point whose file system is not
# mounted has no marker, and archiving into it is refused instead of
# filling the database host's own disk. It must support hard links (local
# file systems and NFS do) and live off the database host.
#
# Exit status: 0 archived (or already there, identical); 1 refused or
# failed (PostgreSQL retries); 2 usage error.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
MARKER=CELLTRAIL_WAL_ARCHIVE

die() { printf 'archive-wal: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--init)
	[ $# = 2 ] || { usage >&2; exit 2; }
	umask 077
	mkdir -p "$2" || die "cannot create $2"
	[ -w "$2" ] || die "$2 is not writable by $(id -un)"
	if [ ! -f "$2/$MARKER" ]; then
		printf 'WAL archive of Celltrail (deploy/backup/archive-wal.sh), made %s\n' \
			"$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$2/$MARKER"
		sync "$2/$MARKER" "$2"
	fi
	exit 0 ;;
--) shift ;;
-*) usage >&2; exit 2 ;;
esac
[ $# = 3 ] || { usage >&2; exit 2; }
src=$1 name=$2 dir=$3

case "$name" in
'' | */* | .*) die "'$name' is not a WAL file name" ;;
esac
[ -f "$src" ] && [ -r "$src" ] || die "$src: no such readable file (run from the data directory, as archive_command is)"
[ -d "$dir" ] || die "archive $dir does not exist (not mounted?)"
[ -f "$dir/$MARKER" ] || die "archive $dir has no $MARKER marker (not mounted? initialize it with: archive-wal.sh --init $dir)"

dest="$dir/$name"
if [ -e "$dest" ]; then
	if cmp -s "$src" "$dest"; then
		# Archived before (say, just before a crash): make sure it is on disk.
		sync "$dest" "$dir" || die "could not flush $dest"
		printf 'archive-wal: %s is already archived, identical\n' "$name" >&2
		exit 0
	fi
	die "$dest exists and differs from $src: refusing to overwrite it (two clusters archiving into one archive?)"
fi

tmp="$dir/.$name.tmp.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
rm -f "$tmp"
# Written and flushed (fsync) before it gets its name.
err=$(dd if="$src" of="$tmp" bs=1048576 conv=fsync 2>&1) || die "copying $src to $tmp failed: $err"
cmp -s "$src" "$tmp" || die "the copy $tmp differs from $src"
# ln fails when the name exists: a concurrent copy of the same file is
# then accepted only if identical, as above.
if ! ln "$tmp" "$dest" 2>/dev/null; then
	[ -e "$dest" ] && cmp -s "$src" "$dest" || die "could not link $tmp to $dest"
fi
rm -f "$tmp"
sync "$dir" || die "could not flush the directory $dir"
exit 0
