#!/bin/sh
# Checks the offline verifier a customer runs on an export, against an
# independent implementation written from RFC 9162 (tests/log/rfc9162.py,
# Python with its own P-256 key): fixtures made by Python, each tampering
# a database administrator could do (an event's metadata changed, an event
# deleted from the middle, the newest events cut off with the checkpoints
# after them, two leaves swapped, a backdated event absent from the log or
# appended to it, two signed roots for one size) must fail in both, naming
# the same event, leaf or checkpoint first (an altered event named as
# altered, a deleted one by its leaf and the id the log recorded, from the
# trailer's event_ids; an export without them still verifies); untouched, retention-trimmed,
# filtered and just-arrived exports verify in both; usage errors exit 2; and common/merkle.c's proofs
# (bin/merkle-vectors) are exactly RFC 9162's as Python computes them.
#   tests/log/verify_test.sh [BINDIR]     (default bin)
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BINDIR=$(cd "${1:-$ROOT/bin}" && pwd)
PY="/usr/bin/python3 $ROOT/tests/log/rfc9162.py"
CV="$BINDIR/celltrail-verify"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
bad() { echo "verify_test: FAILED: $*" >&2; failed=1; }

# run NAME WANT_RC EXPECT CMD...: the command's exit status and, when
# EXPECT is set, that its first line is a FAIL line containing EXPECT.
run() {
	name=$1 want=$2 expect=$3
	shift 3
	rc=0
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if grep -q 'runtime error\|Sanitizer' "$tmp/err"; then
		bad "$name: a sanitizer report"
		head -20 "$tmp/err" >&2
		return
	fi
	if [ "$rc" != "$want" ]; then
		bad "$name: exit $rc, want $want"
		sed 's/^/  | /' "$tmp/out" "$tmp/err" | head -5 >&2
		return
	fi
	first=$(head -n 1 "$tmp/out")
	if [ -n "$expect" ]; then
		case "$first" in
		"FAIL "*"$expect"*) ;;
		*) bad "$name: first line '$first' does not name '$expect'" ;;
		esac
	elif [ "$want" = 0 ]; then
		case "$first" in verified:*) ;; *) bad "$name: first line '$first' is not 'verified:'" ;; esac
	fi
}

TAMPERS="none retention late-event filtered alter-metadata delete-middle cut-newest swap fork
	backdate-absent backdate-appended"
for t in $TAMPERS; do  # the fixtures, made side by side
	$PY make-export --out "$tmp/$t" --tamper "$t" --chunk 7 &
done
wait
for t in $TAMPERS; do
	d=$tmp/$t
	[ -f "$d/expect" ] || { bad "make-export --tamper $t made nothing"; continue; }
	expect=$(cat "$d/expect")
	want=1
	[ -z "$expect" ] && want=0
	for impl in c py; do
		if [ $impl = c ]; then v=$CV; else v="$PY verify-export"; fi
		run "$t ($impl)" $want "$expect" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$d/export.ndjson"
	done
done

# A checkpoint whose key is not in the set: the file's checkpoints fail.
d=$tmp/none
run "foreign key (c)" 1 "checkpoint" "$CV" --jwks "$tmp/swap/jwks.json" --checkpoints "$d/checkpoints" \
	"$d/export.ndjson"
run "foreign key (py)" 1 "checkpoint" $PY verify-export --jwks "$tmp/swap/jwks.json" \
	--checkpoints "$d/checkpoints" "$d/export.ndjson"
# An export cut short anywhere, or garbage, fails; never a crash.
head -c 3000 "$d/export.ndjson" >"$tmp/short.ndjson"
run "export cut short" 1 "" "$CV" --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$tmp/short.ndjson"
head -c 20000 /dev/urandom >"$tmp/garbage"
run "garbage export" 1 "" "$CV" --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$tmp/garbage"
run "garbage checkpoints" 1 "checkpoint on line" "$CV" --jwks "$d/jwks.json" --checkpoints "$tmp/garbage" \
	"$d/export.ndjson"
: >"$tmp/empty"
run "empty export" 1 "" "$CV" --jwks "$d/jwks.json" --checkpoints "$tmp/empty" "$tmp/empty"
# event_ids only name failures: an export without them verifies as before
# (an altered event then fails as an event not in the log), and a
# malformed one fails naming the log line.
for t in none alter-metadata delete-middle; do
	d=$tmp/$t
	sed 's/,"event_ids":\[[^]]*\]//' "$d/export.ndjson" >"$tmp/$t-noids.ndjson"
	grep -q event_ids "$tmp/$t-noids.ndjson" && bad "$t: event_ids not stripped"
	sed '0,/"event_ids":\[/s//"event_ids":[7,/' "$d/export.ndjson" >"$tmp/$t-badids.ndjson"
	# ids that name other events: the verdict stays the hashes'
	sed '/^{"log":/s/"ev-/"zz-/g' "$d/export.ndjson" >"$tmp/$t-wrongids.ndjson"
done
for impl in c py; do
	if [ $impl = c ]; then v=$CV; else v="$PY verify-export"; fi
	d=$tmp/none
	run "no event_ids ($impl)" 0 "" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$tmp/none-noids.ndjson"
	run "malformed event_ids ($impl)" 1 "event_ids" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" \
		"$tmp/none-badids.ndjson"
	run "wrong event_ids ($impl)" 0 "" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" \
		"$tmp/none-wrongids.ndjson"
	d=$tmp/alter-metadata
	run "alter, wrong event_ids ($impl)" 1 "(no leaf)" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" \
		"$tmp/alter-metadata-wrongids.ndjson"
	run "alter, no event_ids ($impl)" 1 "(no leaf)" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" \
		"$tmp/alter-metadata-noids.ndjson"
	d=$tmp/delete-middle
	run "delete, no event_ids ($impl)" 1 "(between" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" \
		"$tmp/delete-middle-noids.ndjson"
done
# --max-lag: the backdated event is 894 s before the checkpoint it is not in.
d=$tmp/backdate-appended
run "max-lag 1000" 0 "" "$CV" --max-lag 1000 --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$d/export.ndjson"
run "max-lag 0" 1 "forged-1" "$CV" --max-lag 0 --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$d/export.ndjson"

# rfc9162.py's proof commands, on what the proof routes answer.
d=$tmp/none
run "inclusion proof" 0 "" $PY verify-proof --jwks "$d/jwks.json" --checkpoint "$d/head.jws" \
	--event "$d/event.json" --proof "$d/proof.json"
head -n 1 "$d/export.ndjson" >"$tmp/other-event"
run "proof of another event" 1 "event" $PY verify-proof --jwks "$d/jwks.json" --checkpoint "$d/head.jws" \
	--event "$tmp/other-event" --proof "$d/proof.json"
sed 's/"audit_path": \["./"audit_path": ["A/' "$d/proof.json" >"$tmp/bad-proof.json"
cmp -s "$d/proof.json" "$tmp/bad-proof.json" && sed 's/"audit_path": \["./"audit_path": ["B/' "$d/proof.json" >"$tmp/bad-proof.json"
run "altered audit path" 1 "proof" $PY verify-proof --jwks "$d/jwks.json" --checkpoint "$d/head.jws" \
	--event "$d/event.json" --proof "$tmp/bad-proof.json"
run "inclusion in another checkpoint" 1 "proof" $PY verify-proof --jwks "$d/jwks.json" --checkpoint "$d/old.jws" \
	--event "$d/event.json" --proof "$d/proof.json"
run "consistency proof" 0 "" $PY verify-consistency --jwks "$d/jwks.json" --old "$d/old.jws" --new "$d/head.jws" \
	--proof "$d/consistency.json"
run "consistency reversed" 1 "proof" $PY verify-consistency --jwks "$d/jwks.json" --old "$d/head.jws" \
	--new "$d/old.jws" --proof "$d/consistency.json"
sed 's/"proof": \["./"proof": ["A/' "$d/consistency.json" >"$tmp/bad-consistency.json"
cmp -s "$d/consistency.json" "$tmp/bad-consistency.json" &&
	sed 's/"proof": \["./"proof": ["B/' "$d/consistency.json" >"$tmp/bad-consistency.json"
run "altered consistency proof" 1 "" $PY verify-consistency --jwks "$d/jwks.json" --old "$d/old.jws" \
	--new "$d/head.jws" --proof "$tmp/bad-consistency.json"

# Usage errors: exit 2 with a message on stderr, in both.
d=$tmp/none
echo '{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"k"}]}' >"$tmp/badjwks"
echo 'not json' >"$tmp/notjson"
for impl in c py; do
	if [ $impl = c ]; then v=$CV; else v="$PY verify-export"; fi
	run "no arguments ($impl)" 2 "" $v
	run "no export ($impl)" 2 "" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints"
	run "unknown option ($impl)" 2 "" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" --frob "$d/export.ndjson"
	run "bad max-lag ($impl)" 2 "" $v --max-lag x --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$d/export.ndjson"
	run "missing export ($impl)" 2 "" $v --jwks "$d/jwks.json" --checkpoints "$d/checkpoints" "$tmp/nope"
	run "missing checkpoints ($impl)" 2 "" $v --jwks "$d/jwks.json" --checkpoints "$tmp/nope" "$d/export.ndjson"
	run "unusable jwks ($impl)" 2 "" $v --jwks "$tmp/badjwks" --checkpoints "$d/checkpoints" "$d/export.ndjson"
	run "jwks not json ($impl)" 2 "" $v --jwks "$tmp/notjson" --checkpoints "$d/checkpoints" "$d/export.ndjson"
	[ -s "$tmp/err" ] || bad "usage error ($impl): nothing on stderr"
done
"$CV" --help | grep -q '^usage: celltrail-verify' || bad "--help prints no usage"

# RFC 9162 vectors from common/merkle.c, checked by Python's own PATH,
# PROOF and verification.
"$BINDIR/merkle-vectors" >"$tmp/vectors.json"
run "vectors" 0 "" $PY check-vectors "$tmp/vectors.json"

if [ $failed = 0 ]; then echo "verify_test: all passed"; fi
exit $failed
