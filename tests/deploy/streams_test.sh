#!/bin/sh
# End-to-end test of log streams on a private local stack (region us, cell
# us-east-1, two data planes sharing the delivery, short DP_STREAM_*
# intervals), with real receivers on this machine (tests/streams/: an
# HTTPS webhook consumer checking Standard Webhooks signatures, its test
# CA given to the data planes as DP_STREAM_CA_FILE; a Splunk HEC receiver;
# an S3 stand-in checking SigV4 signatures, and s3rver from npm). Every
# check is made at the receivers, with their own check modes:
#
#   a. A tenant (the demo tenant, writing through the region's endpoint
#      with the demo key) with a webhook, a HEC and two S3 streams: each
#      receives every event exactly once, in order.
#   b. A webhook receiver down (its control port's /down) for 60 s while
#      its tenant writes, then back: the stream's GET shows "retrying"
#      with lag_events > 0 while down, then "active", lag 0 and
#      last_delivered_at; every event received exactly once, in order.
#      The other scenarios run during the 60 s.
#   c. The receiver stopped (SIGSTOP) with a batch in flight, the data
#      plane holding that connection SIGKILLed, the receiver resumed: no
#      gap, no event under two batch ids, a batch received twice has the
#      same webhook-id and body, and the batch in flight at the kill is
#      delivered under its own number.
#   d. A destination in another region's territory (eu's host pattern, an
#      S3 region of eu) refused by the control plane (422
#      destination_not_allowed naming the rule); forced into the control
#      plane's database (SQL), refused by the data plane: status
#      "refused", last_error naming the rule, nothing received.
#   f. Paused: nothing delivered; resumed: the backlog; replay {since}:
#      the events again, under new batch ids.
#   e. Last: no destination secret (as written, base64 at any alignment,
#      hex) in any text, varchar, json, jsonb, bytea or array column of
#      any table of the control plane's and the cell's databases, in any
#      cache file or any log file. The scan is first shown to find a
#      secret planted in a table and in a cache file.
#
#   tests/deploy/streams_test.sh [BIN]
# Ports: STREAMS_TEST_PORT (18900): the control plane, +1 the region's
# endpoint, +10 the cell-router's status, +20 the mover's, +40 the data
# planes, +99 PostgreSQL; the receivers on free ports picked at run time.
# STREAMS_TEST_DOWN (60): seconds receiver b is down. KEEP_TEST_LOGS=1
# keeps the stack and the receivers' records. STREAMS_TEST_PLANT=1 leaves
# a secret in a log before the last scan, which must then fail.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=$(cd "${1:-bin}" && pwd)
BASE=${STREAMS_TEST_PORT:-18900}
DOWN=${STREAMS_TEST_DOWN:-60}
PY=/usr/bin/python3
T_START=$(date +%s)

for b in control-plane data-plane cell-router mover; do
	[ -x "$BIN/$b" ] || { echo "streams test: build first: make services (no $BIN/$b)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/celltrail-streams-test.XXXXXX)
chmod 0755 "$WORK"  # the stack's PostgreSQL runs as another user
. "$ROOT/tests/faults/lib.sh"
D="$WORK/streams"
mkdir -p "$D"
RX_PIDS=""
WRITER=""
cleanup() {
	[ -z "$WRITER" ] || kill "$WRITER" 2>/dev/null || true
	for _p in $RX_PIDS; do kill -CONT "$_p" 2>/dev/null || true; kill "$_p" 2>/dev/null || true; done
	[ -z "${STACK_VAR:-}" ] || sh "$ROOT/deploy/local/stack.sh" stop > /dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "streams test: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== streams: log streams end to end (private stack on ports $BASE..$((BASE + 99)))"

# ---- receivers (tests/streams/) ----

# A secret: whsec_ and base64 of 32 random bytes, or 40 hex characters.
whsec() { echo "whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"; }
rand_hex() { od -An -tx1 -N20 /dev/urandom | tr -d ' \n'; }
RXD="$ROOT/tests/streams"

"$PY" "$RXD/webhook_receiver.py" make-ca "$WORK/ca" || fatal "could not make the test CA (openssl)"
# rx_start NAME [VAR=value...] command...: a receiver in the background,
# its record in $D/NAME; once it printed its port: P_NAME (the service),
# C_NAME (its control port, when it has one) and RXPID_NAME.
rx_start() {
	_n=$1; shift
	mkdir -p "$D/$_n"
	env "$@" > "$D/$_n.out" 2> "$D/$_n.err" &
	eval "RXPID_$_n=\$!"
	RX_PIDS="$RX_PIDS $!"
	wait_until 60 grep -qs '^PORT ' "$D/$_n.out" || { cat "$D/$_n.err" >&2; fatal "receiver $_n did not start"; }
	eval "P_$_n=$(sed -n 's/^PORT //p' "$D/$_n.out")"
	wait_until 2 grep -qs '^CONTROL ' "$D/$_n.out" || true
	eval "C_$_n=$(sed -n 's/^CONTROL //p' "$D/$_n.out")"
}
rx_ctl() { eval "curl -fsS -o /dev/null --max-time 5 -X POST \"http://127.0.0.1:\$C_$1$2\""; }  # name /route?query
rx_stat() { eval "curl -fsS --max-time 5 \"http://127.0.0.1:\$C_$1/stats\"" | jq -r ".$2"; }  # name counter
# The distinct events of STREAM a webhook receiver accepted.
wh_count() { jq -r --arg s "$2" 'select(.stream_id == $s) | .events[]' "$D/$1/deliveries.jsonl" 2>/dev/null | sort -u | wc -l; }
wh_has() { [ "$(wh_count "$1" "$2")" -ge "$3" ]; }  # name stream n
# The receivers' own checks: every event of $D/LABEL.ids exactly once,
# in order (webhook: in batches of increasing number, no webhook-id with
# two bodies; HEC: repeats of a batch the same bytes; S3: objects named
# by batch, none written with two bodies).
wh_check() { "$PY" "$RXD/webhook_receiver.py" check --dir "$D/$1" --stream "$2" --expect "$D/$3.ids"; }  # name stream label
hec_check() { "$PY" "$RXD/hec_receiver.py" check --dir "$D/$1" --stream "$2" --expect "$D/$3.ids"; }
s3_check() { "$PY" "$RXD/s3_receiver.py" check --dir "$D/$1" --bucket "$2" --prefix "$3" --expect "$D/$4.ids" ${5:-}; }  # name bucket prefix label [--s3rver]
quiet() { "$@" > /dev/null 2>&1; }
# check_rx DESCRIPTION SECONDS CHECK...: waits until the check holds,
# then reports its verdict with its summary.
check_rx() {
	_d=$1 _t=$2; shift 2
	wait_until "$_t" quiet "$@" || true
	if _o=$("$@" 2>&1); then ok "$_d: $(echo $_o)"; else bad "$_d: $(echo $_o)"; fi
}

SEC_W1=$(whsec) SEC_W2=$(whsec) SEC_W3=$(whsec) SEC_HEC=$(rand_hex) SEC_S3=$(rand_hex)
for n in w1 w2 w3; do
	eval "_sec=\$SEC_$(echo $n | tr a-z A-Z)"
	rx_start $n WEBHOOK_SECRETS="$_sec" "$PY" "$RXD/webhook_receiver.py" serve --dir "$D/$n" --tls "$WORK/ca"
done
rx_start hec HEC_TOKENS="$SEC_HEC" "$PY" "$RXD/hec_receiver.py" serve --dir "$D/hec"
# S3: the stand-in that checks each SigV4 signature against the secret,
# another for the destination forced in SQL (d), and s3rver from npm
# (its fixed credentials S3RVER:S3RVER), the server written to for real.
rx_start s3 S3_CREDENTIALS="AKIACELLTRAILTEST:$SEC_S3" "$PY" "$RXD/s3_receiver.py" serve --dir "$D/s3" --bucket trail
rx_start s3d S3_CREDENTIALS="AKIACELLTRAILTEST:$SEC_S3" "$PY" "$RXD/s3_receiver.py" serve --dir "$D/s3d" --bucket forced
rx_start s3rver sh "$RXD/s3rver.sh" serve "$D/s3rver" trail

# ---- the stack ----
export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$WORK/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 20)) STACK_DP_INSTANCE_PORT=$((BASE + 40))
export STACK_PG_PORT=$((BASE + 99)) STACK_REGIONS=us STACK_CELLS_us=us-east-1 STACK_DP_INSTANCES=2
# Batches of at most 50 events, waiting 200 ms; retries from 200 ms to
# 2 s; an attempt's timeout 5 s; status reported every second.
export STACK_DP_ENV="$DP_TEST_ENV DP_STREAM_CA_FILE=$WORK/ca/ca.crt DP_STREAM_BATCH=50 DP_STREAM_BATCH_WAIT=200ms
 DP_STREAM_RETRY_MIN=200ms DP_STREAM_RETRY_MAX=2s DP_STREAM_TIMEOUT=5s DP_STREAM_POLL_INTERVAL=200ms
 DP_STREAM_REPORT_INTERVAL=1s"
sh deploy/local/stack.sh start > "$WORK/stack.log" 2>&1 || { tail -n 20 "$WORK/stack.log" >&2; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
CELL=us-east-1
CELL_REGION_us_east_1=us
EP=$DP_URL_us
api POST /v1/plans '{"id":"faults","name":"Stream tests","currency":"USD","base_price":0,
	"events_included":0,"price_per_1000":1,"rate_limit":100000,"burst":100000,
	"monthly_event_quota":1000000000,"retention_days":3650}' > /dev/null || fatal "could not create plan faults"
check "the stack set us's stream key and its loopback rule in the catalog" \
	eval '[ "$(api GET /v1/regions/us | jq -c "[.stream_key.kty, .stream_key.crv, .stream_hosts]")" = "[\"EC\",\"P-256\",[\"127.0.0.1\",\"localhost\",\"[::1]\"]]" ]'
echo "  stack ready in $(($(date +%s) - T_START)) s"

# ---- helpers ----

# Posts events LABEL-FROM .. LABEL-TO in one request with KEY (retried on
# a failure: the ids make a repeat a replay) and notes their ids in
# $D/LABEL.posted.
post_events() { # key label from to
	awk -v l="$2" -v a="$3" -v b="$4" 'BEGIN {
		printf "{\"events\":["
		for (i = a; i <= b; i++)
			printf "%s{\"id\":\"%s-%d\",\"action\":\"stream.test\",\"actor\":{\"id\":\"user-%d\",\"type\":\"user\"},\"metadata\":{\"n\":%d}}", (i > a ? "," : ""), l, i, i % 7, i
		printf "]}"
	}' > "$D/post-$2.json"
	_i=0
	until case "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $1" \
		-H 'Content-Type: application/json' --data-binary @"$D/post-$2.json" "$EP/v1/events")" in 2??) true ;; *) false ;; esac; do
		_i=$((_i + 1)); [ $_i -lt 20 ] || { bad "$2: events $3..$4 not accepted after 20 tries"; return 1; }
		sleep 0.5
	done
	seq "$3" "$4" | sed "s/^/$2-/" >> "$D/$2.posted"
}
# $D/LABEL.ids: the events LABEL-* of TENANT in the order of the feed the
# streams read, (tx_id, seq) (a request's events are committed together;
# their order inside it is the data plane's); fails unless they are
# exactly the events posted.
feed_ids() { # tenant label
	csql "SELECT id FROM events WHERE tenant_id = '$1' AND id LIKE '$2-%' ORDER BY tx_id, seq" > "$D/$2.ids"
	[ "$(sort "$D/$2.ids")" = "$(sort -u "$D/$2.posted")" ] ||
		{ bad "$2: the events stored are not those posted ($(wc -l < "$D/$2.ids") stored, $(sort -u "$D/$2.posted" | wc -l) posted)"; return 1; }
}

# stream_new TENANT JSON: creates a stream, prints its id.
stream_new() { api POST "/v1/tenants/$1/streams" "$2" | jget id; }
sget() { api GET "/v1/tenants/$1/streams/$2" | jget "$3"; }  # tenant stream field
# POST, prints "<status> <body>".
cp_post() { # path json
	curl -s -o "$D/resp.json" -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
		-H 'Content-Type: application/json' -d "$2" "$CP_URL$1"
	printf ' %s' "$(cat "$D/resp.json")"
}
is_status() { [ "$(sget "$1" "$2" status)" = "$3" ]; }  # tenant stream status
cpsql() { "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$CP_DATABASE_URL" -c "$1"; }
csql() { "$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$(su_url "$CELL_DB_us_east_1")" -c "$1"; }
webhook() { echo "{\"kind\":\"webhook\",\"url\":\"https://$1\",\"secret\":\"$2\"${3:+,$3}}"; }  # host:port/path secret [more]
s3() { # port bucket region [more]
	echo "{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:$1\",\"bucket\":\"$2\",\"region\":\"$3\",\"access_key_id\":\"AKIACELLTRAILTEST\",\"secret_access_key\":\"$SEC_S3\",\"prefix\":\"ct/\"${4:+,$4}}"
}

set -- $(new_tenant sb us faults "$CELL"); T_B=$1 K_B=$2
set -- $(new_tenant sc us faults "$CELL"); T_C=$1 K_C=$2
set -- $(new_tenant sd us faults "$CELL"); T_D=$1 K_D=$2
set -- $(new_tenant sf us faults "$CELL"); T_F=$1 K_F=$2
wait_until 30 key_works "$(router_port us)" "$K_F" || fatal "the tenants' keys do not work through the router"

# ---- b. receiver down for $DOWN s (runs while the others proceed) ----
S_B=$(stream_new "$T_B" "$(webhook "127.0.0.1:$P_w2/b" "$SEC_W2")") || fatal "b: the webhook stream was not created"
post_events "$K_B" b 1 5
check "b: the stream delivers before the receiver goes down (5 events within 30 s)" wait_until 30 wh_has w2 "$S_B" 5
rx_ctl w2 "/down?seconds=$DOWN" || fatal "b: could not take the receiver down"
T_DOWN=$(date +%s)
# The tenant writes one event every 2 s while the receiver is down.
(
	n=6
	while [ $(($(date +%s) - T_DOWN)) -lt $((DOWN - 2)) ]; do
		post_events "$K_B" b $n $n > /dev/null || true
		n=$((n + 1)); sleep 2
	done
) & WRITER=$!
b_behind() { [ "$(sget "$T_B" "$S_B" status)" = retrying ] && [ "$(sget "$T_B" "$S_B" lag_events)" -gt 0 ]; }
check "b: while the receiver is down the stream's GET shows status retrying with lag_events > 0 (within 30 s)" wait_until 30 b_behind
# The backlog straddles a transaction id gaining a digit (999 -> 1000):
# there the text of two ids sorts unlike the ids (a batch read ordered by
# the text once sent events after later ones, then those again). The
# cell's transaction ids are advanced past the next power of ten while
# the tenant writes.
cross_xid_digit() {
	_x=$(csql "SELECT pg_current_xact_id()")
	_b=10; while [ "$_b" -le "$_x" ]; do _b=$((_b * 10)); done
	_n=$((_b - _x + 5))
	[ $_n -le 100000 ] || { echo "  b: (transaction ids at $_x: the next digit is $_n away, not crossed)"; return 0; }
	{ echo "SET synchronous_commit = off;"; seq $_n | sed 's/.*/SELECT pg_current_xact_id();/'; } |
		"$PG_BIN/psql" -X -q -tA "$(su_url "$CELL_DB_us_east_1")" > /dev/null
	echo "  b: the cell's transaction ids advanced from $_x past $_b while the receiver is down"
}
b_wrote() { [ "$(wc -l < "$D/b.posted")" -ge 8 ]; }
wait_until 30 b_wrote || true
cross_xid_digit
echo "  b: receiver down since $(date -u -d "@$T_DOWN" +%T); the other scenarios run meanwhile"

# ---- a. webhook, HEC and S3 streams of the demo tenant ----
T_A=$DEMO_TENANT_us K_A=$DEMO_KEY_us
S_AW=$(stream_new "$T_A" "$(webhook "localhost:$P_w1/a" "$SEC_W1")") || fatal "a: the webhook stream was not created"
S_AH=$(stream_new "$T_A" "{\"kind\":\"splunk_hec\",\"url\":\"http://127.0.0.1:$P_hec/services/collector/event\",\"token\":\"$SEC_HEC\"}") ||
	fatal "a: the HEC stream was not created"
S_AS=$(stream_new "$T_A" "$(s3 "$P_s3" trail us-east-1)") || fatal "a: the S3 stream was not created"
S_AR=$(stream_new "$T_A" "{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:$P_s3rver\",\"bucket\":\"trail\",\"region\":\"us-east-1\",\"access_key_id\":\"S3RVER\",\"secret_access_key\":\"S3RVER\",\"prefix\":\"ct/\"}") ||
	fatal "a: the s3rver stream was not created"
check "a: the new streams are listed with their kinds, without a secret" \
	eval '[ "$(api GET "/v1/tenants/$T_A/streams" | jq -c "[.items[].kind] | sort")" = "[\"s3\",\"s3\",\"splunk_hec\",\"webhook\"]" ] &&
		! api GET "/v1/tenants/$T_A/streams" | grep -q -e "$SEC_W1" -e "$SEC_HEC" -e "$SEC_S3" -e secret'
i=1
while [ $i -le 200 ]; do post_events "$K_A" a $i $((i + 19)); i=$((i + 20)); done
feed_ids "$T_A" a || true
check_rx "a: webhook (HTTPS, signatures checked)" 60 wh_check w1 "$S_AW" a
check_rx "a: Splunk HEC" 60 hec_check hec "$S_AH" a
check_rx "a: S3 (SigV4 checked)" 60 s3_check s3 trail ct/ a
check_rx "a: S3 (s3rver)" 60 s3_check s3rver trail ct/ a --s3rver

# ---- c. a data plane SIGKILLed with a batch in flight ----
S_C=$(stream_new "$T_C" "$(webhook "127.0.0.1:$P_w3/c" "$SEC_W3")") || fatal "c: the webhook stream was not created"
post_events "$K_C" c 1 10
check "c: first 10 events delivered within 30 s" wait_until 30 wh_has w3 "$S_C" 10
# The receiver stopped: an attempt's bytes wait unread in one of its
# sockets; the data plane at the other end of that connection holds the
# batch (recorded in stream_cursors before its first attempt).
kill -STOP "$RXPID_w3"
post_events "$K_C" c 11 40
holder() {
	HOLDER=""
	for _peer in $(ss -Htn state established "( sport = :$P_w3 )" 2>/dev/null | awk '$1 > 0 { n = split($4, a, ":"); print a[n] }'); do
		_pid=$(ss -Htnp state established "( sport = :$_peer and dport = :$P_w3 )" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
		for _f in "$STACK_VAR"/run/data-plane-*.pid; do
			[ -n "$_pid" ] && [ "$(cat "$_f")" = "$_pid" ] && { HOLDER=$(basename "$_f" .pid); return 0; }
		done
	done
	return 1
}
in_flight() { csql "SELECT batch_no FROM stream_cursors WHERE stream_id = '$S_C' AND batch_to_tx IS NOT NULL"; }
HOLDER=""
if wait_until 30 holder; then
	NO=$(in_flight); NO=${NO:-0}
	svc_kill "$HOLDER"
	ok "c: $HOLDER had batch $NO in flight to the stopped receiver: SIGKILLed"
	kill -CONT "$RXPID_w3"
	post_events "$K_C" c 41 50
	feed_ids "$T_C" c || true
	check_rx "c: after the kill, no gap and no event twice" 60 wh_check w3 "$S_C" c
	_id=$(printf '%s-%012d' "$S_C" "$NO")
	_first=$(sed -n 11p "$D/c.ids")
	check "c: the batch in flight at the kill ($_id) was delivered under its own id, starting after the 10 delivered before ($_first)" \
		eval 'jq -e --arg i "$_id" --arg f "$_first" "select(.webhook_id == \$i) | .events[0] == \$f" "$D/w3/deliveries.jsonl" | grep -q true'
	# The killed instance again, as the stack starts one.
	sh "$ROOT/deploy/drivers/local" start "$ROOT" "$CELL" > /dev/null || bad "c: the data plane could not be started again"
else
	bad "c: no data plane had an attempt waiting at the stopped receiver within 30 s"
	kill -CONT "$RXPID_w3"
fi

# ---- d. a destination outside the region's territory ----
api PATCH /v1/regions/eu '{"stream_hosts":["*.eu.example"],"stream_s3_regions":["eu-west-1","eu-west-2"]}' > /dev/null ||
	fatal "could not set eu's stream rule"
r=$(cp_post "/v1/tenants/$T_D/streams" "$(webhook "siem.eu.example/hook" "$SEC_W1")")
check "d: a webhook to eu's host is refused by the control plane: 422 destination_not_allowed naming stream_hosts ($r)" \
	eval 'case "$r" in "422 "*destination_not_allowed*stream_hosts*) true ;; *) false ;; esac'
r=$(cp_post "/v1/tenants/$T_D/streams" "$(s3 "$P_s3d" forced eu-west-1)")
check "d: an S3 stream in eu-west-1 is refused by the control plane: 422 destination_not_allowed naming stream_s3_regions ($r)" \
	eval 'case "$r" in "422 "*destination_not_allowed*stream_s3_regions*) true ;; *) false ;; esac'
# The same forced into the control plane's database: streams made paused
# at allowed destinations, then rewritten in SQL, unpaused, their
# revision and their region's config version raised as a change through
# the API would.
S_DS=$(stream_new "$T_D" "$(s3 "$P_s3d" forced us-east-1 '"paused":true')") || fatal "d: the S3 stream was not created"
S_DW=$(stream_new "$T_D" "$(webhook "127.0.0.1:$P_w1/d" "$SEC_W1" '"paused":true')") || fatal "d: the webhook stream was not created"
cpsql "BEGIN;
UPDATE streams SET destination = jsonb_set(destination, '{region}', '\"eu-west-1\"'), paused = false,
       revision = revision + 1, updated_at = now() WHERE id = '$S_DS';
UPDATE streams SET destination = jsonb_set(destination, '{url}', '\"https://siem.eu.example/hook\"'), paused = false,
       revision = revision + 1, updated_at = now() WHERE id = '$S_DW';
UPDATE regions SET config_version = config_version + 1 WHERE name = 'us';
COMMIT;" || fatal "d: could not force the destinations in SQL"
post_events "$K_D" d 1 5
check "d: the forced S3 region is refused by the data plane: status refused within 30 s" wait_until 30 is_status "$T_D" "$S_DS" refused
check "d: its last_error names the rule ($(sget "$T_D" "$S_DS" last_error))" eval 'sget "$T_D" "$S_DS" last_error | grep -q stream_s3_regions'
check "d: the forced eu host is refused by the data plane: status refused within 30 s" wait_until 30 is_status "$T_D" "$S_DW" refused
check "d: its last_error names the rule ($(sget "$T_D" "$S_DW" last_error))" eval 'sget "$T_D" "$S_DW" last_error | grep -q stream_hosts'
check "d: the S3 receiver of the forced stream got no request at all" [ "$(rx_stat s3d requests)" = 0 ]

# ---- f. pause, resume, replay ----
S_F=$(stream_new "$T_F" "$(webhook "127.0.0.1:$P_w1/f" "$SEC_W1" '"paused":true')") || fatal "f: the webhook stream was not created"
F_SINCE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
post_events "$K_F" f 1 10
check "f: a paused stream shows status paused" is_status "$T_F" "$S_F" paused
# The data plane has seen it (its cursor row made), and a second more.
f_seen() { [ -n "$(csql "SELECT 1 FROM stream_cursors WHERE stream_id = '$S_F'")" ]; }
wait_until 30 f_seen || true
sleep 1
check "f: paused: nothing delivered" [ "$(wh_count w1 "$S_F")" = 0 ]
api POST "/v1/tenants/$T_F/streams/$S_F/resume" '{}' > /dev/null || bad "f: resume failed"
post_events "$K_F" f 11 15
feed_ids "$T_F" f || true
check_rx "f: resumed: the backlog, then the new events" 30 wh_check w1 "$S_F" f
N=$(wc -l < "$D/w1/deliveries.jsonl")
api POST "/v1/tenants/$T_F/streams/$S_F/replay" "{\"since\":\"$F_SINCE\"}" > /dev/null || bad "f: replay failed"
# The receiver keeps each webhook-id once: what it records after line N
# came under new batch ids.
replayed() { tail -n +"$((N + 1))" "$D/w1/deliveries.jsonl" | jq -r --arg s "$S_F" 'select(.stream_id == $s) | .events[]'; }
f_replayed() { [ "$(replayed | wc -l)" -ge 15 ]; }
wait_until 30 f_replayed || true
check "f: replay since $F_SINCE: every event again, in order, under new batch ids ($(replayed | wc -l) events)" \
	eval '[ "$(replayed)" = "$(cat "$D/f.ids")" ]'

# ---- b, continued: the receiver back after $DOWN s ----
wait "$WRITER" || true
WRITER=""
while [ $(($(date +%s) - T_DOWN)) -lt "$DOWN" ]; do sleep 1; done
echo "  b: receiver back after $(($(date +%s) - T_DOWN)) s; $(wc -l < "$D/b.posted") events written"
feed_ids "$T_B" b || true
b_caught_up() {
	api GET "/v1/tenants/$T_B/streams/$S_B" > "$D/b.json" &&
		jq -e '.status == "active" and .lag_events == 0 and .last_delivered_at != null' "$D/b.json" > /dev/null
}
check_rx "b: receiver down ${DOWN} s, then back" 60 wh_check w2 "$S_B" b
check "b: back: the stream's GET shows active, lag_events 0, last_delivered_at set (within 30 s)" wait_until 30 b_caught_up

# ---- e. no destination secret at rest ----
printf '%s\n' "$SEC_W1" "$SEC_W2" "$SEC_W3" "$SEC_HEC" "$SEC_S3" > "$D/secrets"
# Every text-like column of every table of a database, one value a line
# (bytea as hex).
dump_db() { # url file
	"$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$1" -c "
SELECT format('SELECT %s FROM %I.%I;', CASE WHEN c.udt_name = 'bytea' THEN format('encode(%I, ''hex'')', c.column_name)
                                           ELSE format('%I::text', c.column_name) END, c.table_schema, c.table_name)
  FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
 WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
   AND c.udt_name IN ('text', 'varchar', 'bpchar', 'json', 'jsonb', 'bytea', '_text', '_varchar', '_json', '_jsonb', 'xml')" > "$D/cols.sql" &&
	"$PG_BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$1" -f "$D/cols.sql" > "$2"
	echo "$(wc -l < "$D/cols.sql") columns"
}
scan() { # prints what it found; fails when it found a secret
	_c1=$(dump_db "$(su_url "$CP_DATABASE_URL")" "$D/cp.dump") && _c2=$(dump_db "$(su_url "$CELL_DB_us_east_1")" "$D/cell.dump") ||
		{ echo "could not read the databases"; return 1; }
	echo "scanned: control plane $_c1, cell $_c2"
	find "$STACK_VAR"/cache* "$STACK_VAR"/log* -type f > "$D/files" 2>/dev/null || true
	echo "$D/cp.dump" "$D/cell.dump" | tr ' ' '\n' >> "$D/files"
	"$PY" - "$D/secrets" "$D/files" <<'PYEOF'
import base64, sys
forms = []
for s in open(sys.argv[1]).read().split():
    raw = [s.encode()]
    if s.startswith("whsec_"):
        raw += [s[6:].encode(), base64.b64decode(s[6:])]
    for r in raw:
        forms += [r, r.hex().encode(), r.hex().upper().encode()]
        for k in range(3):  # base64 of the secret at each alignment
            m = (len(r) - k) // 3 * 3
            core = base64.b64encode(r[k:k + m]).rstrip(b"=")
            forms += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
found = 0
for path in open(sys.argv[2]).read().split("\n"):
    if not path:
        continue
    try:
        data = open(path, "rb").read()
    except OSError:
        continue
    for f in forms:
        if len(f) >= 16 and f in data:
            print(f"secret found in {path}")
            found += 1
            break
sys.exit(1 if found else 0)
PYEOF
}
# The scan can fail: a secret planted in a table (bytea, base64 of a
# webhook key) and in a cache file (base64 of the HEC token) is found.
csql "CREATE TABLE stream_test_plant (b bytea)"
csql "INSERT INTO stream_test_plant VALUES (decode('$(printf '%s' "${SEC_W2#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')', 'hex'))"
printf 'x%s\n' "$(printf '%s' "$SEC_HEC" | base64)" > "$STACK_VAR/cache/plant"
rc=0; scan > "$D/scan.out" || rc=$?
check "e: the scan finds planted secrets (in a table and a cache file): exit $rc, $(grep -c found "$D/scan.out") found" \
	eval '[ $rc = 1 ] && grep -q "found in .*cell.dump" "$D/scan.out" && grep -q "found in .*cache/plant" "$D/scan.out"'
csql "DROP TABLE stream_test_plant"
rm -f "$STACK_VAR/cache/plant"
# STREAMS_TEST_PLANT=1: a webhook secret left in a data plane's log, as a
# careless log line would write it (the next check must then fail).
[ -z "${STREAMS_TEST_PLANT:-}" ] || echo "{\"msg\":\"sending with $SEC_W3\"}" >> "$(ls "$STACK_VAR"/log/data-plane-*.log | head -n 1)"
if scan > "$D/scan.out"; then
	ok "e: no destination secret in the databases ($(sed -n 's/^scanned: //p' "$D/scan.out")), the cache files or the logs ($(($(wc -l < "$D/files") - 2)) files)"
else
	bad "e: a destination secret at rest: $(grep found "$D/scan.out" | tr '\n' ' ')"
fi

echo "streams test: $PASS passed, $FAIL failed ($(($(date +%s) - T_START)) s)"
[ "$FAIL" = 0 ]
