#!/bin/sh
# Checks that the field tables copied into tests/fuzz/fuzz_cp_request.c are
# the control plane's: every copy, marked "/* control-plane/<file>.c <table> */",
# has exactly the rows of that table in <file>; every table of
# control-plane/*.c has a copy; and the limits copied from billing.c
# (#define MAX_...) are defined alike there. Exits 1 naming each difference.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
H=tests/fuzz/fuzz_cp_request.c

# The rows of a table: the lines after its declaration up to JSONX_END,
# blanks squeezed. $1 file, $2 a line that starts the table (ERE), $3 1 when
# that line is a marker comment followed by the declaration.
rows() {
	awk -v start="$2" -v marker="$3" '
		!on && $0 ~ start { on = marker ? 1 : 2; next }
		on == 1 { if ($0 ~ /jsonx_field.*\[\] = \{/) on = 2; next }
		on == 2 && /JSONX_END/ { exit }
		on == 2 { gsub(/[ \t]+/, " "); sub(/^ /, ""); sub(/ $/, ""); print }
	' "$1"
}

fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -o 'static const struct jsonx_field [a-z_]*\[\]' control-plane/*.c |
	sed 's/:static const struct jsonx_field / /; s/\[\]$//' | sort >"$tmp/sources"
grep -o '^/\* control-plane/[a-z_]*\.c [a-z_]* \*/$' "$H" |
	sed 's|^/\* ||; s| \*/$||' | sort >"$tmp/copies"
if ! cmp -s "$tmp/sources" "$tmp/copies"; then
	echo "tables.sh: the tables of control-plane/ and the copies in $H differ:" >&2
	diff "$tmp/sources" "$tmp/copies" | sed -n 's/^< /  not copied: /p; s/^> /  no such table: /p' >&2
	fail=1
fi

while read -r file table; do
	rows "$file" "static const struct jsonx_field $table\\[\\] = \\{" 0 >"$tmp/a"
	rows "$H" "^/\\* $file $table \\*/\$" 1 >"$tmp/b"
	if [ ! -s "$tmp/a" ] || ! cmp -s "$tmp/a" "$tmp/b"; then
		echo "tables.sh: $table of $file differs from its copy in $H:" >&2
		diff "$tmp/a" "$tmp/b" >&2 || true
		fail=1
	fi
done <"$tmp/copies"

grep '^#define MAX_' "$H" | while IFS= read -r line; do
	if ! grep -Fxq "$line" control-plane/billing.c; then
		echo "tables.sh: '$line' is not in control-plane/billing.c" >&2
		exit 1
	fi
done || fail=1

[ "$fail" = 0 ] && echo "tables.sh: $(wc -l <"$tmp/copies") field tables match control-plane/"
exit "$fail"
