#!/bin/sh
# End-to-end test of TLS on every hop of the local stack (region us, cells
# us-east-1 and us-west-2, and eu, cell eu-west-1; one data plane each, a
# cell-router and a mover per region):
#
#   1. The stack's own description: stack.env's control-plane and region
#      URLs are https, CA_CERT is a CA certificate, and every certificate
#      served chains to it.
#   2. Clients to the control plane and to the regions: answered over TLS
#      verified against CA_CERT only; refused in plain HTTP on the same
#      port, and refused by a client that does not trust the local CA; a
#      region's 421 names its https endpoint.
#   3. Services to the control plane, with the CA pinned: a data plane, a
#      cell-router and a mover pinned to another CA refuse the control
#      plane's certificate (they never get a document, never become ready);
#      the same with the stack's CA do. A pin on a plain http URL, an
#      unreadable or non-PEM file: refused at start (exit 2).
#   4. Services to PostgreSQL: every session of the services' roles is
#      encrypted (pg_stat_ssl); a connection without TLS is refused
#      (hostssl only); verify-full against another CA fails.
#   5. Certificates renewed without a restart, under load (writes through
#      a region, reads of the control plane): `stack.sh renew-certs` makes
#      every endpoint (control plane, regions, each PostgreSQL cluster)
#      serve a new certificate of the same CA; no process of the stack has
#      a new pid, not one request failed, and a key made after the renewal
#      reaches the region (a data plane pulled it over the new
#      certificate).
#
#   tests/deploy/tls_test.sh [BIN]
# Ports: TLS_TEST_PORT (19000): the control plane's edge, +9 the control
# plane, +1.. the regions' endpoints, +10 the cell-routers' status, +20
# the movers', +40 the data planes, +60 the test's own data planes, +99
# PostgreSQL. KEEP_TEST_LOGS=1 keeps the stack and the outputs.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${TLS_TEST_PORT:-19000}
T_START=$(date +%s)

for b in control-plane data-plane cell-router mover faults-load; do
	[ -x "$BIN/$b" ] || { echo "tls test: build first: make all testbins (no $BIN/$b)" >&2; exit 1; }
done
for t in jq openssl curl; do
	command -v $t > /dev/null || { echo "tls test: $t is needed (make deps)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/celltrail-tls-test.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"  # check, wait_until, http_status, su_url ...
fatal() { echo "tls test: $*" >&2; exit 1; }
LOAD_PIDS="" OWN_PIDS=""
cleanup() {
	for p in $LOAD_PIDS $OWN_PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "tls test: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== deploy: TLS test (private stack on ports $BASE..$((BASE + 99)))"
export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS="us eu" STACK_DP_INSTANCES=1
export STACK_CELLS_us="us-east-1 us-west-2" STACK_CELLS_eu=eu-west-1
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
echo "  stack ready in $(($(date +%s) - T_START)) s"
PSQL="$PG_BIN/psql"

# Another CA, which signed nothing of the stack's.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/other.key" 2>/dev/null
openssl req -new -x509 -key "$WORK/other.key" -days 2 -subj "/CN=Another CA" -out "$WORK/other.crt" \
	-addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
# An empty trust store: only what a test names is trusted.
: > "$WORK/empty"

# The certificate a TLS endpoint serves, as PEM (postgres: PostgreSQL's
# own negotiation first).
served() { # port [postgres]
	echo | openssl s_client -connect "127.0.0.1:$1" ${2:+-starttls "$2"} 2>/dev/null |
		openssl x509 2>/dev/null
}
serial_of() { openssl x509 -noout -serial | cut -d= -f2; }
chains_to_ca() { # port [postgres]
	served "$@" > "$WORK/served.pem" && [ -s "$WORK/served.pem" ] &&
		openssl verify -CAfile "$CA_CERT" -purpose sslserver "$WORK/served.pem" > /dev/null 2>&1
}

# ---- 1. what the stack says of itself ----

case "$CP_URL" in https://*) ok "stack.env: CP_URL is https ($CP_URL)" ;; *) bad "stack.env: CP_URL is $CP_URL" ;; esac
for r in us eu; do
	eval "u=\$DP_URL_$r"
	case "$u" in https://*) ok "stack.env: DP_URL_$r is https" ;; *) bad "stack.env: DP_URL_$r is $u" ;; esac
done
check "stack.env: CA_CERT is a CA certificate" \
	sh -c "openssl x509 -in '$CA_CERT' -noout -text | grep -q 'CA:TRUE'"
check "the control plane's edge serves a certificate of the local CA" chains_to_ca "$BASE"
check "region us serves a certificate of the local CA" chains_to_ca $((BASE + 1))
check "region eu serves a certificate of the local CA" chains_to_ca $((BASE + 2))
check "PostgreSQL serves a certificate of the local CA" chains_to_ca $((BASE + 99)) postgres

# ---- 2. clients ----

check "control plane: 200 over TLS verified against CA_CERT only" \
	[ "$(http_status "$CP_URL/healthz" --cacert "$CA_CERT" --capath /nonexistent)" = 200 ]
check "control plane: plain HTTP on its port gets no answer" [ "$(http_status "http://127.0.0.1:$BASE/healthz")" = 000 ]
rc=0; curl -s -o /dev/null --max-time 5 --cacert "$WORK/other.crt" "$CP_URL/healthz" || rc=$?
check "control plane: a client trusting another CA refuses it (curl 60, got $rc)" [ $rc = 60 ]
rc=0; curl -s -o /dev/null --max-time 5 --cacert "$WORK/other.crt" "$DP_URL_us/healthz" || rc=$?
check "region us: a client trusting another CA refuses it (curl 60, got $rc)" [ $rc = 60 ]
check "region us: plain HTTP on its port gets no answer" [ "$(http_status "http://127.0.0.1:$((BASE + 1))/healthz")" = 000 ]
check "region us: the demo key's tenant over TLS (200)" \
	[ "$(http_status "$DP_URL_us/v1/tenant" --cacert "$CA_CERT" -H "Authorization: Bearer $DEMO_KEY_us")" = 200 ]
curl -s --cacert "$CA_CERT" -H "Authorization: Bearer $DEMO_KEY_eu" "$DP_URL_us/v1/tenant" > "$WORK/421.json" || true
check "region us: eu's key gets 421 naming eu's https endpoint ($DP_URL_eu)" \
	[ "$(jq -r '.status, .endpoint' "$WORK/421.json" | tr '\n' ' ')" = "421 $DP_URL_eu " ]

# ---- 3. services to the control plane, the CA pinned ----

DB_US=$CELL_DB_us_east_1
own_dp() { # name port ca-file [VAR=value...]: a data plane of cell us-east-1 started by the test
	_n=$1 _p=$2 _ca=$3; shift 3
	mkdir -p "$WORK/$_n"
	env DP_REGION=us DP_CELL=us-east-1 DP_LISTEN="127.0.0.1:$_p" DP_CONTROL_PLANE_URL="$CP_URL" \
		DP_CONTROL_PLANE_CA_FILE="$_ca" DP_DATABASE_URL="$DB_US" DP_CELL_TOKEN="$CELL_TOKEN_us_east_1" \
		DP_TRUST_BUNDLE="$TRUST_BUNDLE" DP_CACHE_DIR="$WORK/$_n" DP_INSTANCE="tls-$_n" \
		DP_LOG_KEYS_DIR="$STACK_VAR/log-keys/us" "$@" \
		"$BIN/data-plane" > "$WORK/$_n.log" 2>&1 &
	OWN_PIDS="$OWN_PIDS $!"
	LAST_PID=$!
}
ready() { [ "$(http_status "http://127.0.0.1:$1/readyz")" = 200 ]; }
own_dp pinned $((BASE + 60)) "$CA_CERT"
own_dp other $((BASE + 61)) "$WORK/other.crt"
OTHER_PID=$LAST_PID
check "a data plane pinned to the stack's CA becomes ready" wait_until 20 ready $((BASE + 60))
sleep 2
other_waits() { # running and answering, but not ready
	kill -0 "$OTHER_PID" 2>/dev/null && [ "$(http_status "http://127.0.0.1:$((BASE + 61))/readyz")" = 503 ]
}
check "a data plane pinned to another CA runs but never becomes ready (/readyz 503)" other_waits
check "... and says why: the control plane's certificate is not trusted" \
	grep -q "SSL certificate problem" "$WORK/other.log"
check "... and it never had a document to serve (no cache written)" [ ! -e "$WORK/other/config.jwt" ]

pin_refused() { # description env...: data-plane with these settings exits 2 at start
	_d=$1; shift
	_rc=0
	env DP_REGION=us DP_CELL=us-east-1 DP_LISTEN="127.0.0.1:$((BASE + 62))" DP_DATABASE_URL="$DB_US" \
		DP_CELL_TOKEN=x DP_TRUST_BUNDLE="$TRUST_BUNDLE" DP_CACHE_DIR="$WORK/refused" \
		DP_LOG_KEYS_DIR="$STACK_VAR/log-keys/us" "$@" timeout 10 "$BIN/data-plane" > "$WORK/refused.log" 2>&1 || _rc=$?
	if [ $_rc = 2 ] && grep -q DP_CONTROL_PLANE_CA_FILE "$WORK/refused.log"; then ok "$_d"; else bad "$_d (exit $_rc)"; fi
}
pin_refused "a pin on a plain http control-plane URL: refused at start (exit 2)" \
	DP_CONTROL_PLANE_URL="http://127.0.0.1:$((BASE + 9))" DP_CONTROL_PLANE_CA_FILE="$CA_CERT"
pin_refused "a pin that names a missing file: refused at start (exit 2)" \
	DP_CONTROL_PLANE_URL="$CP_URL" DP_CONTROL_PLANE_CA_FILE="$WORK/missing.pem"
pin_refused "a pin that names a file with no certificate: refused at start (exit 2)" \
	DP_CONTROL_PLANE_URL="$CP_URL" DP_CONTROL_PLANE_CA_FILE="$WORK/other.key"

router_once() { # ca-file: cell-router --once of region us into the test's map
	mkdir -p "$WORK/router"
	env ROUTER_REGION=us ROUTER_CONTROL_PLANE_URL="$CP_URL" ROUTER_CONTROL_PLANE_CA_FILE="$1" \
		ROUTER_REGION_TOKEN="$REGION_TOKEN_us" ROUTER_TRUST_BUNDLE="$TRUST_BUNDLE" ROUTER_CACHE_DIR="$WORK/router" \
		ROUTER_MAP_FILE="$WORK/router/routes.map" ROUTER_LISTEN="127.0.0.1:$((BASE + 63))" \
		timeout 20 "$BIN/cell-router" --once > "$WORK/router.log" 2>&1
}
if router_once "$WORK/other.crt"; then bad "a cell-router pinned to another CA: --once succeeded"; else
	check "a cell-router pinned to another CA: --once fails, naming the certificate" grep -q "SSL certificate problem" "$WORK/router.log"
fi
check "a cell-router pinned to the stack's CA builds its map" router_once "$CA_CERT"

mover_once() { # ca-file: one mover pass for region us
	env MOVER_REGION=us MOVER_CONTROL_PLANE_URL="$CP_URL" MOVER_CA_FILE="$1" MOVER_REGION_TOKEN="$REGION_TOKEN_us" \
		MOVER_CELLS="us-east-1=$CELL_URL_us_east_1" MOVER_LISTEN="127.0.0.1:$((BASE + 64))" MOVER_ID=tls-test \
		timeout 20 "$BIN/mover" --once > "$WORK/mover.log" 2>&1
}
if mover_once "$WORK/other.crt"; then bad "a mover pinned to another CA: --once succeeded"; else
	check "a mover pinned to another CA: --once fails, naming the certificate" grep -q "SSL certificate problem" "$WORK/mover.log"
fi
check "a mover pinned to the stack's CA claims over TLS (--once exits 0)" mover_once "$CA_CERT"

# ---- 4. services to PostgreSQL ----

sessions=$("$PSQL" -X -tAc "SELECT count(*) || ' ' || count(*) FILTER (WHERE s.ssl)
	FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename LIKE 'celltrail%'" "$PG_URL")
n=${sessions% *} enc=${sessions#* }
check "PostgreSQL: every one of the services' $n sessions is encrypted ($enc)" eval '[ "$n" -gt 0 ] && [ "$n" = "$enc" ]'
nossl=$(printf '%s' "$PG_URL" | sed 's/sslmode=verify-full/sslmode=disable/')
check "PostgreSQL: a connection without TLS is refused (hostssl only)" \
	sh -c "! '$PSQL' -X -tAc 'SELECT 1' '$nossl' > '$WORK/nossl.out' 2>&1 && grep -q 'no encryption' '$WORK/nossl.out'"
othca=$(printf '%s' "$PG_URL" | sed "s|sslrootcert=[^&]*|sslrootcert=$WORK/other.crt|")
check "PostgreSQL: verify-full against another CA fails" \
	sh -c "! '$PSQL' -X -tAc 'SELECT 1' '$othca' > '$WORK/othca.out' 2>&1 && grep -qi 'certificate verify failed' '$WORK/othca.out'"

# ---- 5. renewal without a restart, under load ----

pids_of_stack() {
	for f in "$STACK_VAR"/run/*.pid; do printf '%s=%s\n' "$(basename "$f" .pid)" "$(cat "$f")"; done
	printf 'postgres=%s\n' "$(head -n 1 "$(readlink -f "$STACK_VAR/pg")/data/postmaster.pid")"
}
pids_of_stack | sort > "$WORK/pids.before"
s_cp=$(served "$BASE" | serial_of) s_us=$(served $((BASE + 1)) | serial_of) s_pg=$(served $((BASE + 99)) postgres | serial_of)

CURL_CA_BUNDLE="$CA_CERT" "$BIN/faults-load" -u "$DP_URL_us" -k "$DEMO_KEY_us" -m post -r 40 -d 12 -p tls -o "$WORK/post.load" \
	> "$WORK/post-load.out" 2>&1 &
LOAD_PIDS="$LOAD_PIDS $!"
(
	end=$(($(date +%s) + 12))
	while [ "$(date +%s)" -lt $end ]; do
		printf '%s\n' "$(http_status "$CP_URL/v1/regions" --cacert "$CA_CERT" -H "Authorization: Bearer $ADMIN_TOKEN")"
		sleep 0.05
	done > "$WORK/cp.load"
) &
LOAD_PIDS="$LOAD_PIDS $!"
sleep 4
sh deploy/local/stack.sh renew-certs > "$WORK/renew.out" 2>&1 || { cat "$WORK/renew.out"; bad "stack.sh renew-certs failed"; }
wait $LOAD_PIDS 2>/dev/null || true
LOAD_PIDS=""

n_cp=$(served "$BASE" | serial_of) n_us=$(served $((BASE + 1)) | serial_of) n_pg=$(served $((BASE + 99)) postgres | serial_of)
check "renewed: the control plane's edge serves a new certificate ($s_cp -> $n_cp)" eval '[ -n "$n_cp" ] && [ "$n_cp" != "$s_cp" ]'
check "renewed: region us serves a new certificate ($s_us -> $n_us)" eval '[ -n "$n_us" ] && [ "$n_us" != "$s_us" ]'
check "renewed: PostgreSQL serves a new certificate ($s_pg -> $n_pg)" eval '[ -n "$n_pg" ] && [ "$n_pg" != "$s_pg" ]'
all_chain() { chains_to_ca "$BASE" && chains_to_ca $((BASE + 1)) && chains_to_ca $((BASE + 99)) postgres; }
check "renewed: each one still chains to the same local CA" all_chain
pids_of_stack | sort > "$WORK/pids.after"
check "renewed: no process of the stack was restarted ($(wc -l < "$WORK/pids.before") pids the same)" \
	cmp -s "$WORK/pids.before" "$WORK/pids.after"
total=$(wc -l < "$WORK/post.load") good=$(awk '$3 == 201' "$WORK/post.load" | wc -l)
check "renewed under load: every one of $total writes through region us acknowledged ($good x 201)" \
	eval '[ "$total" -gt 100 ] && [ "$total" = "$good" ]'
total=$(wc -l < "$WORK/cp.load") good=$(grep -c '^200$' "$WORK/cp.load" || true)
check "renewed under load: every one of $total reads of the control plane answered ($good x 200)" \
	eval '[ "$total" -gt 20 ] && [ "$total" = "$good" ]'
key=$(curl -fsS --cacert "$CA_CERT" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"after-renewal","scopes":["events:read"]}' "$CP_URL/v1/tenants/$DEMO_TENANT_us/api-keys" | jq -r .secret)
key_served() { [ "$(http_status "$DP_URL_us/v1/tenant" --cacert "$CA_CERT" -H "Authorization: Bearer $key")" = 200 ]; }
check "renewed: a key made afterwards is served by region us (pulled over the new certificate)" wait_until 30 key_served

echo "== TLS test: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ $FAIL = 0 ]
