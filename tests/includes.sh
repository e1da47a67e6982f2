#!/bin/sh
# Checks the include graph of the services (run by `make testbins`):
# a module is X.c with its X.h, in common/, control-plane/ or data-plane/;
# module A depends on module B when A.c or A.h has #include "B.h".
# Fails (exit 1, naming each offence) when
#   - modules depend on each other in a cycle (A -> B -> ... -> A),
#   - common/ includes a header of control-plane/ or data-plane/, or
#   - one service includes a header of the other.
#   tests/includes.sh [ROOT]   check the tree at ROOT (default: this one)
#   tests/includes.sh --self-test   check that a planted cycle and a planted
#                              upward include are caught
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
-h | --help) usage; exit 0 ;;
--self-test) ;;
-*) usage >&2; exit 2 ;;
esac
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "${1:-}" = --self-test ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/common" "$tmp/control-plane" "$tmp/data-plane"
	printf '#include "b.h"\n' >"$tmp/control-plane/a.c"
	printf '#include "c.h"\n' >"$tmp/control-plane/b.c"
	printf '#include "a.h"\n' >"$tmp/control-plane/c.h"
	: >"$tmp/control-plane/a.h"
	: >"$tmp/control-plane/b.h"
	printf '#include "buf.h"\n' >"$tmp/common/log.c"
	: >"$tmp/common/buf.h"
	if out=$(sh "$SELF" "$tmp" 2>&1) || ! echo "$out" | grep -q 'cycle.*control-plane/a'; then
		echo "includes.sh --self-test: a planted cycle was not caught:" >&2
		echo "$out" >&2
		exit 1
	fi
	rm "$tmp/control-plane/c.h"
	printf '#include "../control-plane/a.h"\n' >"$tmp/common/buf.h"
	if out=$(sh "$SELF" "$tmp" 2>&1) || ! echo "$out" | grep -q 'common/buf.h includes control-plane/a.h'; then
		echo "includes.sh --self-test: common/ including control-plane/ was not caught:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "includes.sh: self-test passed"
	exit 0
fi

cd "${1:-$(dirname "$0")/..}"

# One line per include between files of the three directories:
# "<including file> <included file>", paths relative to the root. A
# quoted name is looked up beside the including file, then in common/
# (the -Icommon of the Makefile); anything else is a system header.
edges() {
	for f in common/*.[ch] control-plane/*.[ch] data-plane/*.[ch]; do
		[ -f "$f" ] || continue
		dir=${f%/*}
		sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$f" | while read -r name; do
			if [ -f "$dir/$name" ]; then
				to=$(realpath -m --relative-to=. "$dir/$name")
			elif [ -f "common/$name" ]; then
				to=common/$name
			else
				continue
			fi
			echo "$f $to"
		done
	done
}

edges | awk '
	function mod(path) { sub(/\.[ch]$/, "", path); return path }
	function area(path) { sub(/\/.*/, "", path); return path }
	# Depth-first search; grey nodes are on the current path.
	function visit(m,    i, t) {
		colour[m] = 1
		stack[++depth] = m
		for (i = 1; i <= nout[m]; i++) {
			t = out[m, i]
			if (colour[t] == 1) {
				cyc = t
				for (j = depth; j >= 1 && stack[j] != t; j--)
					;
				for (k = j + 1; k <= depth; k++)
					cyc = cyc " -> " stack[k]
				# Through the file that closes it.
				printf "includes.sh: include cycle: %s -> %s (%s)\n", cyc, t, via[m, t] > "/dev/stderr"
				bad = 1
			} else if (!colour[t]) {
				visit(t)
			}
		}
		depth--
		colour[m] = 2
	}
	{
		from = $1; to = $2
		a = area(from); b = area(to)
		if (a == "common" && b != "common") {
			printf "includes.sh: %s includes %s: common/ must not depend on a service\n", from, to > "/dev/stderr"
			bad = 1
		} else if (a != b && b != "common") {
			printf "includes.sh: %s includes %s: a service must not depend on the other\n", from, to > "/dev/stderr"
			bad = 1
		}
		m = mod(from); t = mod(to)
		if (m == t || seen[m, t]++)
			next
		if (!(m in known)) { known[m] = 1; order[++nmods] = m }
		if (!(t in known)) { known[t] = 1; order[++nmods] = t }
		out[m, ++nout[m]] = t
		ndeps++
		via[m, t] = from " includes " to
	}
	END {
		for (i = 1; i <= nmods; i++)
			if (!colour[order[i]])
				visit(order[i])
		if (bad)
			exit 1
		printf "includes.sh: %d modules, %d dependencies between them, no cycle\n", nmods, ndeps
	}
'
