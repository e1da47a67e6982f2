#!/bin/sh
# End-to-end test of the admin CLI, bin/celltrail, on a private local stack
# (region us, cells us-east-1 and us-west-2, and eu, cell eu-west-1; one
# data plane each, a mover per region), as an operator uses it instead of
# curl against the control plane:
#
#   1. Every command and subcommand: --help prints usage on stdout and
#      exits 0, an unknown option prints it on stderr and exits 2, and the
#      route each one's help names is one the control plane serves
#      (`control-plane routes`).
#   2. A tenant, a user (password from standard input), an API key:
#      created, shown, listed as tables and as the API's JSON (read with
#      jq; a shown object byte for byte what curl gets), paged with
#      --limit/--cursor and --all; the key revoked; the tenant offboarded
#      (only with --yes).
#   3. Cells (one region's, every region's), the region catalog, the fleet
#      (each data plane with its config version, and a summary per region),
#      a cell move started and followed to done, a log stream created with
#      its secret from a file (never shown back), paused, resumed,
#      replayed, deleted; a destination outside the region's rule refused.
#   4. Exit statuses: 2 for usage errors (nothing sent), 1 with the problem
#      (status, code, detail) on one line of stderr for a wrong token, an
#      unknown tenant and a conflict, 3 for a refused connection, a server
#      that never answers (--timeout), a 503, an answer that is not JSON
#      and one larger than 16 MiB; https trusted only with the CA named
#      (--cacert, CELLTRAIL_CACERT).
#   5. Configuration: flag over environment over the file; a file that
#      others may read, with an unknown key, or missing while named, is
#      refused (exit 2); the token never appears in any output.
#
#   tests/deploy/cli_test.sh [BIN]
# Ports: CLI_TEST_PORT (19100): the control plane, +1.. the regions'
# endpoints, +10 the cell-routers' status, +20 the movers', +40 the data
# planes, +80.. the test's own fake servers, +99 PostgreSQL.
# KEEP_TEST_LOGS=1 keeps the stack and the outputs.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${CLI_TEST_PORT:-19100}
T_START=$(date +%s)

for b in control-plane data-plane cell-router mover celltrail; do
	[ -x "$BIN/$b" ] || { echo "cli test: build first: make services (no $BIN/$b)" >&2; exit 1; }
done
command -v jq > /dev/null || { echo "cli test: jq is needed (make deps)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/celltrail-cli-test.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
fatal() { echo "cli test: $*" >&2; exit 1; }
FAKE_PIDS=""
cleanup() {
	for p in $FAKE_PIDS; do kill "$p" 2>/dev/null || true; done
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "cli test: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The CLI with no configuration of the caller's: its settings come only
# from what each step gives it, and its home directory is the test's
# (whose ~/.config/celltrail/config is made in part 5).
unset CELLTRAIL_URL CELLTRAIL_TOKEN CELLTRAIL_CACERT CELLTRAIL_CONFIG
CT_HOME=$WORK/home
mkdir -p "$CT_HOME"

# Runs the CLI: stdout in $OUT, stderr in $ERR, its exit status in RC;
# everything it printed is kept in $ALL (no token may appear in it).
OUT=$WORK/out ERR=$WORK/err ALL=$WORK/all-output
ct() {
	RC=0
	HOME=$CT_HOME "$BIN/celltrail" "$@" > "$OUT" 2> "$ERR" < /dev/null || RC=$?
	cat "$OUT" "$ERR" >> "$ALL"
}
# The same with standard input from FILE.
ct_in() { # file args...
	_in=$1
	shift
	RC=0
	HOME=$CT_HOME "$BIN/celltrail" "$@" > "$OUT" 2> "$ERR" < "$_in" || RC=$?
	cat "$OUT" "$ERR" >> "$ALL"
}
# ok when the last run exited WANT (and, when given, its stderr holds
# TEXT); else the failure with what it printed.
want() { # want description [stderr text]
	if [ "$RC" = "$1" ] && { [ $# -lt 3 ] || grep -qF -- "$3" "$ERR"; }; then
		ok "$2"
	else
		bad "$2: exit $RC (want $1)${3:+, stderr lacking '$3'}"
		sed 's/^/        out: /' "$OUT" | head -n 8
		sed 's/^/        err: /' "$ERR" | head -n 8
	fi
}
# stderr is one line (a refusal or a failure, as the README says).
one_line() { [ "$(wc -l < "$ERR")" = 1 ]; }

echo "== cli: the admin CLI end to end (private stack on ports $BASE..$((BASE + 99)))"

# ---- 1. --help of every command, without a stack ----

groups=$("$BIN/celltrail" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
[ -n "$groups" ] || fatal "celltrail --help lists no command"
"$BIN/control-plane" routes | awk '{ print $1, $2 }' | sed 's/{[^}]*}/{}/g' | sort -u > "$WORK/routes"
nhelp=0 badhelp="" badroute=""
for g in $groups; do
	ct "$g" --help
	[ "$RC" = 0 ] && [ -s "$OUT" ] && [ ! -s "$ERR" ] || badhelp="$badhelp '$g --help' ($RC)"
	subs=$("$BIN/celltrail" "$g" --help | awk '/^Subcommands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
	[ -n "$subs" ] || badhelp="$badhelp '$g' (no subcommand listed)"
	for s in $subs; do
		nhelp=$((nhelp + 1))
		ct "$g" "$s" --help
		[ "$RC" = 0 ] && [ -s "$OUT" ] && [ ! -s "$ERR" ] || badhelp="$badhelp '$g $s --help' ($RC)"
		route=$(sed -n 's/^Calls: \([A-Z]*\) \([^ ]*\).*/\1 \2/p' "$OUT" | sed 's/{[^}]*}/{}/g')
		grep -qxF "$route" "$WORK/routes" || badroute="$badroute '$g $s': '$route';"
		ct "$g" "$s" --no-such-option
		[ "$RC" = 2 ] && [ ! -s "$OUT" ] && grep -q '^Usage: celltrail' "$ERR" || badhelp="$badhelp '$g $s --no-such-option' ($RC)"
	done
done
ct --help
[ "$RC" = 0 ] && grep -q '^Exit status:' "$OUT" || badhelp="$badhelp '--help' ($RC)"
check "--help of celltrail, its $(echo $groups | wc -w) commands and $nhelp subcommands: usage on stdout, exit 0; an unknown option: usage on stderr, exit 2${badhelp:+ (broken:$badhelp)}" \
	[ -z "$badhelp" ]
check "every subcommand calls a route the control plane serves${badroute:+ (not served:$badroute)}" [ -z "$badroute" ]
ct
want 2 "no command: exit 2" "no command"
ct --no-such-option
want 2 "an unknown option before the command: exit 2, the usage on stderr" "Usage: celltrail"
ct tenants --help --json
want 0 "a command's --help: exit 0"
ct rollout status
want 2 "'rollout status': exit 2, naming why (no rollout API)" "no rollout API"
ct tenants frobnicate
want 2 "an unknown subcommand: exit 2" "has no subcommand 'frobnicate'"

# ---- the stack ----

export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS="us eu" STACK_DP_INSTANCES=1 STACK_DP_ENV="$DP_TEST_ENV"
export STACK_CELLS_us="us-east-1 us-west-2" STACK_CELLS_eu=eu-west-1
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
echo "  stack ready in $(($(date +%s) - T_START)) s"

# ---- 2. tenants, users, keys ----

export CELLTRAIL_URL="$CP_URL" CELLTRAIL_TOKEN="$ADMIN_TOKEN"
SLUG="cli-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
ct tenants create --name "CLI Corp" --slug "$SLUG" --region us --plan pro --cell us-east-1
want 0 "tenants create (table): exit 0"
T=$(awk '$1 == "id" { print $2 }' "$OUT")
check "tenants create: the answer shown member by member (id $T, slug, region us, cell us-east-1)" \
	eval 'grep -q "^slug  *$SLUG\$" "$OUT" && grep -q "^region  *us\$" "$OUT" && grep -q "^cell  *us-east-1\$" "$OUT" && [ -n "$T" ]'
ct tenants create --name "CLI Two" --slug "$SLUG-2" --region eu --plan pro --json
want 0 "tenants create --json: exit 0"
T2=$(jq -r .id "$OUT" 2>/dev/null || true)
check "tenants create --json: the API's tenant ($T2, region eu)" eval '[ "$(jq -r .region "$OUT")" = eu ]'
ct tenants create --name "CLI Dup" --slug "$SLUG" --region us --plan pro
want 1 "a second tenant with the same slug: exit 1, the problem on one line of stderr" "HTTP 409 conflict"
check "  ...which is one line" one_line

ct tenants show "$T" --json
curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$CP_URL/v1/tenants/$T" > "$WORK/curl.json"
check "tenants show --json: byte for byte the API's answer (plus a newline)" \
	eval '[ "$RC" = 0 ] && [ "$(cat "$OUT")" = "$(cat "$WORK/curl.json")" ]'
ct tenants list
want 0 "tenants list (table): exit 0"
hcol=$(head -n 1 "$OUT" | awk '{ print index($0, "SLUG") }')
rcol=$(grep -F " $SLUG " "$OUT" | head -n 1 | awk -v s=" $SLUG " '{ print index($0, s) + 1 }')
check "tenants list: a header, and the row of $SLUG with its slug under SLUG (column $hcol, found at $rcol)" \
	eval 'head -n 1 "$OUT" | grep -q "^ID  *SLUG  *NAME  *REGION  *CELL  *PLAN  *STATUS  *CREATED\$" && [ "$hcol" = "$rcol" ]'
ct tenants list --region eu --json
check "tenants list --region eu --json: jq finds $SLUG-2 and not $SLUG" \
	eval '[ "$RC" = 0 ] && jq -e --arg s "$SLUG-2" "any(.items[]; .slug == \$s)" "$OUT" > /dev/null &&
		jq -e --arg s "$SLUG" "all(.items[]; .slug != \$s)" "$OUT" > /dev/null'
ct tenants list --limit 1 --json
C1=$(jq -r '.next_cursor // empty' "$OUT")
check "tenants list --limit 1: one item, has_more, a next_cursor" \
	eval '[ "$(jq ".items | length" "$OUT")" = 1 ] && [ "$(jq -r .has_more "$OUT")" = true ] && [ -n "$C1" ]'
ct tenants list --limit 1
check "tenants list --limit 1 (table): says on stderr how to get more" eval 'grep -q -- "--cursor" "$ERR" && [ "$(wc -l < "$OUT")" = 2 ]'
ct tenants list --limit 1 --cursor "$C1" --json
check "tenants list --cursor: the next page" eval '[ "$RC" = 0 ] && [ "$(jq ".items | length" "$OUT")" = 1 ]'
ct tenants list --limit 2 --all --json
NT=$(jq '.items | length' "$OUT" 2>/dev/null || echo 0)
ct tenants list --limit 100 --json
check "tenants list --all (pages of 2): every tenant once ($NT), has_more false" \
	eval '[ "$NT" = "$(jq ".items | length" "$OUT")" ] && [ "$NT" -ge 4 ]'

printf '%s\n' 'correct horse battery' > "$WORK/pw"
ct_in "$WORK/pw" users create "$T" --email owner@cli.test --role owner --password-file -
want 0 "users create, the password from standard input: exit 0"
U=$(awk '$1 == "id" { print $2 }' "$OUT")
check "users create: the answer shows no password" eval '! grep -q "correct horse" "$OUT" "$ERR"'
ct users list "$T"
check "users list (table): owner@cli.test, owner" eval 'grep -q "^$U  *owner@cli.test  *owner " "$OUT"'
ct users show "$T" "$U" --json
check "users show --json: the user" eval '[ "$(jq -r .email "$OUT")" = owner@cli.test ]'
ct users create "$T" --email m@cli.test --role member
want 2 "users create without --password-file: exit 2" "--password-file is required"
ct users create "$T" --email m@cli.test --role member --password-file "$WORK/no-such-file"
want 2 "users create with a missing password file: exit 2" "no-such-file"

ct keys create "$T" --name ingest --scopes events:read,events:write --json
want 0 "keys create --json: exit 0"
K=$(jq -r .id "$OUT") KS=$(jq -r .secret "$OUT")
check "keys create: the secret, once (us_${K}_...)" eval 'case "$KS" in "us_${K}_"*) true ;; *) false ;; esac'
ct keys create "$T" --name read-only --scopes events:read
check "keys create (table): the secret shown, and a note on stderr to keep it" \
	eval '[ "$RC" = 0 ] && grep -q "^secret  *us_" "$OUT" && grep -q "shown this once" "$ERR"'
ct keys list "$T"
check "keys list (table): both keys, scopes joined" \
	eval 'grep -q "^$K  *ingest  *us_$K  *events:read,events:write " "$OUT" && grep -q " read-only " "$OUT"'
check "keys list: no secret" eval '! grep -qF "$KS" "$OUT"'
ct keys list "$T" --json
check "keys list --json: ingest not revoked" \
	eval '[ "$(jq -r --arg k "$K" ".items[] | select(.id == \$k) | .revoked_at" "$OUT")" = null ]'
check "the key works at the region's endpoint" wait_until 20 key_works "$(router_port us)" "$KS"
ct keys revoke "$T" "$K"
check "keys revoke: exit 0, revoked_at set" eval '[ "$RC" = 0 ] && grep -q "^revoked_at  *20" "$OUT"'
ct keys show "$T" "$K" --json
check "keys show --json: revoked" eval '[ "$(jq -r .revoked_at "$OUT")" != null ]'
key_refused() { [ "$(http_status "$(port_url "$(router_port us)")/v1/tenant" -H "Authorization: Bearer $KS")" = 401 ]; }
check "the revoked key is refused at the region's endpoint" wait_until 20 key_refused

# ---- 3. cells, regions, fleet, moves, streams ----

ct cells list
check "cells list: every region's cells (us-east-1, us-west-2, eu-west-1), active" \
	eval '[ "$RC" = 0 ] && grep -q "^us-east-1  *us  *active " "$OUT" && grep -q "^us-west-2  *us  *active " "$OUT" &&
		grep -q "^eu-west-1  *eu  *active " "$OUT"'
ct cells list us --json
check "cells list us --json: us's cells only" \
	eval '[ "$RC" = 0 ] && jq -e "all(.items[]; .region == \"us\") and any(.items[]; .name == \"us-west-2\")" "$OUT" > /dev/null'
ct cells list --json
check "cells list --json: every region's, as one list" \
	eval 'jq -e "any(.items[]; .name == \"eu-west-1\") and .has_more == false" "$OUT" > /dev/null'
ct cells show us us-east-1
check "cells show us us-east-1: counts the tenant placed there" \
	eval '[ "$RC" = 0 ] && [ "$(awk "\$1 == \"tenants\" { print \$2 }" "$OUT")" -ge 1 ]'
ct regions list
check "regions list: us and eu" eval '[ "$RC" = 0 ] && grep -q "^us " "$OUT" && grep -q "^eu " "$OUT"'
ct_noauth() { env -u CELLTRAIL_TOKEN HOME="$CT_HOME" "$BIN/celltrail" "$@" > "$OUT" 2> "$ERR" < /dev/null; }
RC=0; ct_noauth regions show eu --json || RC=$?
check "regions show (a public route) works without a token" eval '[ "$RC" = 0 ] && [ "$(jq -r .name "$OUT")" = eu ]'
RC=0; ct_noauth tenants list || RC=$?
want 2 "tenants list without a token: exit 2, nothing sent" "no token"

fleet_has() { # region instances: the fleet view lists that many
	ct fleet status "$1" --json
	[ "$RC" = 0 ] && [ "$(jq '.items | length' "$OUT")" -ge "$2" ]
}
check "fleet status us --json: both cells' data planes reported" wait_until 30 fleet_has us 2
check "fleet status us --json: each with its cell and config version" \
	eval 'jq -e "all(.items[]; (.cell | type) == \"string\" and (.config_version | type) == \"number\")" "$OUT" > /dev/null'
ct fleet status
check "fleet status (table): a row per data plane with its region, and a summary line per region" \
	eval '[ "$RC" = 0 ] && head -n 1 "$OUT" | grep -q "^REGION  *CELL  *INSTANCE  *CONFIG  *CURRENT" &&
		grep -q "^us  *us-west-2 " "$OUT" && grep -q "^eu  *eu-west-1 " "$OUT" &&
		grep -q "^us: config version [0-9]*, 2 instances: " "$OUT" && grep -q "^eu: config version [0-9]*, 1 instance: " "$OUT"'

ct moves start "$T" --to-cell us-west-2 --to-region eu
want 2 "moves start with two destinations: exit 2" "exactly one of"
ct moves start "$T" --to-cell us-west-2 --erase-after 0 --json
want 0 "moves start --to-cell us-west-2: exit 0"
M=$(jq -r .id "$OUT" 2>/dev/null || true)
move_done() { ct moves show "$T" "$M" --json; [ "$(jq -r .state "$OUT")" = done ]; }
check "moves show: the move is done within 60 s" wait_until 60 move_done
ct moves list "$T"
check "moves list (table): the move, cell, done, from us/us-east-1 to us/us-west-2" \
	eval 'grep -q "^$M  *cell  *done  *us/us-east-1  *us/us-west-2 " "$OUT"'
ct tenants show "$T" --json
check "the tenant now lives in us-west-2" eval '[ "$(jq -r .cell "$OUT")" = us-west-2 ]'
ct moves abort "$T" "$M"
want 1 "moves abort of a done move: exit 1 (409)" "HTTP 409 conflict"

printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64)" > "$WORK/whsec"
chmod 600 "$WORK/whsec"
ct streams create "$T" --kind webhook --dest-url "http://127.0.0.1:$((BASE + 89))/hook" --secret-file "$WORK/whsec" --json
want 0 "streams create (webhook, the secret from a file): exit 0"
S=$(jq -r .id "$OUT" 2>/dev/null || true)
check "streams create: the secret is not shown back" eval '! grep -qF "$(cut -c7- "$WORK/whsec")" "$OUT" "$ERR"'
ct streams pause "$T" "$S" --json
check "streams pause: paused" eval '[ "$RC" = 0 ] && [ "$(jq -r .status "$OUT")" = paused ]'
ct streams resume "$T" "$S" --json
check "streams resume: not paused" eval '[ "$RC" = 0 ] && [ "$(jq -r .paused "$OUT")" = false ]'
ct streams replay "$T" "$S" --since 2020-01-01T00:00:00Z
want 0 "streams replay --since: exit 0"
ct streams replay "$T" "$S"
want 2 "streams replay without --since: exit 2" "--since is required"
ct streams update "$T" "$S" --secret-file "$WORK/whsec"
check "streams update with only --secret-file (the kind asked of the API): revision 2" \
	eval '[ "$RC" = 0 ] && grep -q "^revision  *2\$" "$OUT"'
ct streams list "$T"
check "streams list (table): the stream, webhook, its destination" eval 'grep -q "^$S  *webhook  *[a-z]*  *http://127.0.0.1:" "$OUT"'
ct streams delete "$T" "$S"
check "streams delete: 'Deleted.'" eval '[ "$RC" = 0 ] && [ "$(cat "$OUT")" = Deleted. ]'
ct streams create "$T" --kind webhook --dest-url https://siem.example.com/hook --secret-file "$WORK/whsec"
want 1 "a stream outside the region's rule: exit 1, destination_not_allowed" "HTTP 422 destination_not_allowed"

# ---- 4. exit statuses ----

ct tenants show
want 2 "tenants show without its argument: exit 2" "takes the arguments TENANT"
ct tenants create --name x --slug x-1 --region us
want 2 "tenants create without --plan: exit 2" "--plan is required"
ct keys list "$T" --limit 0
want 2 "keys list --limit 0: exit 2" "--limit must be"
ct tenants list --timeout 0
want 2 "--timeout 0: exit 2" "--timeout must be"
ct tenants update "$T"
want 2 "tenants update with nothing to change: exit 2" "nothing to change"
ct tenants list --url ftp://127.0.0.1/
want 2 "a URL that is not http(s): exit 2" "must start with http"
ct tenants list --url "http://admin:pw@127.0.0.1:$BASE"
want 2 "a URL with credentials: exit 2" "must not carry credentials"
ct tenants delete "$T2"
want 2 "tenants delete without --yes: exit 2" "--yes"
ct tenants list --token wrong-token
want 1 "a wrong token: exit 1, 401 unauthorized on stderr" "HTTP 401 unauthorized"
check "  ...on one line, with the request id" eval 'one_line && grep -q "(request " "$ERR"'
ct tenants show 00000000-0000-0000-0000-000000000000
want 1 "an unknown tenant: exit 1, 404 not_found" "HTTP 404 not_found"
ct tenants show "../../v1/regions"
want 1 "an argument is one path segment (percent-encoded): exit 1, 404, not another route" "HTTP 404"
ct tenants list --url "http://127.0.0.1:$((BASE + 98))"
want 3 "a refused connection: exit 3" "cannot reach"

# A server that accepts and never answers; one that answers 503 with a
# problem, HTML with 200 and 17 MiB of JSON.
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); time.sleep(600)' $((BASE + 80)) &
FAKE_PIDS="$FAKE_PIDS $!"
cat > "$WORK/fake.py" << 'EOF'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the CLI hung up: what the 17 MiB answer is for
    def do_GET(self):
        if self.path.startswith("/v1/tenants"):
            self.reply(503, "application/problem+json", json.dumps({"type": "urn:celltrail:problem:unavailable",
                "title": "Unavailable", "status": 503, "code": "unavailable", "detail": "The database\x1b[31m is down.",
                "request_id": "fake-1", "retry_after_seconds": 1}).encode())
        elif self.path == "/v1/regions/big":
            self.reply(200, "application/json", b'{"name":"' + b"x" * (17 << 20) + b'"}')
        elif len(sys.argv) > 2:
            self.reply(200, "application/json", b'{"items":[{"name":"tls","status":"active"}],"has_more":false}')
        else:
            self.reply(200, "text/html", b"<html>not the API</html>")
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 2:  # https, with this certificate and key
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
python3 "$WORK/fake.py" $((BASE + 81)) 2> "$WORK/fake.log" &
FAKE_PIDS="$FAKE_PIDS $!"
fake_up() { [ "$(http_status "http://127.0.0.1:$((BASE + 81))/")" = 200 ]; }
wait_until 10 fake_up || fatal "the fake server did not start"
t0=$(now_ms)
ct tenants list --url "http://127.0.0.1:$((BASE + 80))" --timeout 1
want 3 "a server that never answers, --timeout 1: exit 3 in about a second ($(($(now_ms) - t0)) ms)" "within the timeout"
ct tenants list --url "http://127.0.0.1:$((BASE + 81))"
want 3 "a 503 with a problem: exit 3, status, code, detail and request id on stderr" \
	"HTTP 503 unavailable: The database?[31m is down. (retry after 1 s; request fake-1)"
check "  ...one line, its control character made harmless" eval 'one_line && ! grep -q "$(printf "\033")" "$ERR"'
ct regions list --url "http://127.0.0.1:$((BASE + 81))"
want 3 "a 200 that is not JSON: exit 3" "not JSON"
ct regions show big --url "http://127.0.0.1:$((BASE + 81))"
want 3 "an answer larger than 16 MiB: exit 3" "exceeds"

# https: a certificate of a CA of the test's own, trusted only when named.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.pem" > "$WORK/openssl.log" 2>&1 ||
	fatal "openssl could not make a certificate: $(tail -n 3 "$WORK/openssl.log")"
python3 "$WORK/fake.py" $((BASE + 82)) "$WORK/tls.pem" "$WORK/tls.key" 2>> "$WORK/fake.log" &
FAKE_PIDS="$FAKE_PIDS $!"
tls_up() { curl -s -o /dev/null --cacert "$WORK/tls.pem" "https://127.0.0.1:$((BASE + 82))/v1/regions"; }
wait_until 10 tls_up || fatal "the https fake server did not start"
TLS_URL="https://127.0.0.1:$((BASE + 82))"
ct regions list --url "$TLS_URL"
want 3 "https to a certificate the system does not trust: exit 3" "cannot reach"
ct regions list --url "$TLS_URL" --cacert "$WORK/tls.pem"
check "https with --cacert naming its CA: exit 0" eval '[ "$RC" = 0 ] && grep -q "^tls  *-  *active" "$OUT"'
export CELLTRAIL_CACERT="$WORK/tls.pem"
ct regions list --url "$TLS_URL" --json
check "https with CELLTRAIL_CACERT: exit 0" eval '[ "$RC" = 0 ] && [ "$(jq -r ".items[0].name" "$OUT")" = tls ]'
unset CELLTRAIL_CACERT
ct regions list --url "$TLS_URL" --cacert "$WORK/no-such-ca.pem"
want 2 "a CA file that cannot be read: exit 2" "no-such-ca.pem cannot be read"

# ---- 5. configuration ----

unset CELLTRAIL_URL CELLTRAIL_TOKEN
CONF=$WORK/celltrail.conf
printf '# the CLI test\nurl = %s\ntoken = "%s"\ncacert = %s\n' "$CP_URL" "$ADMIN_TOKEN" "$CA_CERT" > "$CONF"
chmod 600 "$CONF"
export CELLTRAIL_CONFIG="$CONF"
ct tenants show "$T" --json
check "the configuration file (\$CELLTRAIL_CONFIG, mode 0600) gives the URL, the token and the CA" \
	eval '[ "$RC" = 0 ] && [ "$(jq -r .id "$OUT")" = "$T" ]'
export CELLTRAIL_TOKEN=wrong-token
ct tenants show "$T"
want 1 "CELLTRAIL_TOKEN over the file's token" "HTTP 401"
ct tenants show "$T" --token "$ADMIN_TOKEN"
want 0 "--token over CELLTRAIL_TOKEN"
unset CELLTRAIL_TOKEN
mkdir -p "$CT_HOME/.config/celltrail"
cp "$CONF" "$CT_HOME/.config/celltrail/config"
unset CELLTRAIL_CONFIG
ct tenants show "$T"
want 0 "without CELLTRAIL_CONFIG, the default file ~/.config/celltrail/config"
export CELLTRAIL_CONFIG="$CONF"
chmod 640 "$CONF"
ct tenants list
want 2 "a configuration file the group may read: refused, exit 2" "chmod 600"
chmod 604 "$CONF"
ct tenants list
want 2 "one others may read: refused, exit 2" "holds a token"
chmod 600 "$CONF"
printf 'url = %s\nproxy = x\n' "$CP_URL" > "$CONF"
ct tenants list
want 2 "an unknown key: refused, naming its line" "line 2: unknown key 'proxy'"
export CELLTRAIL_CONFIG="$WORK/missing"
ct --url "$CP_URL" --token "$ADMIN_TOKEN" tenants list
want 2 "a named configuration file that is missing: exit 2, whatever the flags give" "missing"
unset CELLTRAIL_CONFIG

# ---- the tenant offboarded ----

export CELLTRAIL_URL="$CP_URL" CELLTRAIL_TOKEN="$ADMIN_TOKEN" CELLTRAIL_CACERT="$CA_CERT"
ct tenants delete "$T2" --yes
check "tenants delete --yes: status deleted" eval '[ "$RC" = 0 ] && grep -q "^status  *deleted\$" "$OUT"'

check "no output of the CLI holds the token ($(wc -c < "$ALL") bytes of output)" eval '! grep -qF "$ADMIN_TOKEN" "$ALL"'

echo "== cli: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ "$FAIL" = 0 ]
