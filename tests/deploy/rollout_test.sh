#!/bin/sh
# End-to-end test of deploy/rollout, driver local, on a private copy of the
# local stack (cells ap-south-1 and ap-south-2 of region in, eu-west-1 of
# eu, us-east-1 of us; two data planes each behind the regions' router)
# under background traffic through every region's router: GET /v1/tenant
# everywhere, and POST and GET /v1/events to the canary cell ap-south-1.
# The waves: 1 ap-south-1 ap-south-2, 2 eu-west-1 us-east-1 and jp's cell
# (none running); jp's other cell is closed and named nowhere.
#
#   0. Waves files that leave out a cell of the catalog, name one it does
#      not have, name one twice or name a closed one are refused before
#      anything changes; the stack's var/waves is accepted.
#   1. A good build (a copy of bin/) passes every wave: no request fails.
#   2. A build that never becomes ready (it cannot reach the control plane)
#      is rolled back in the canary cell (exit 3); no other cell ever ran
#      it (the driver's instances.log), the others keep the same instances
#      of the previous build: no request fails.
#   3. A build that answers 5xx (its database is unreachable: the events
#      routes answer 503) is rolled back in the canary cell by the 5xx
#      gate; no other cell ever ran it; the only failed requests are the
#      canary's own 5xx answers, which the summary reports exactly.
#
#   tests/deploy/rollout_test.sh
# Ports: DEPLOY_TEST_PORT (18600) for the control plane, the next three for
# the regions' routers, +10 on for the cell-routers' status, +15 on for the
# movers', +20 on for the data planes, +99 for PostgreSQL.
set -eu
# --help prints the comment above; an unknown option is a usage error.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BASE=${DEPLOY_TEST_PORT:-18600}

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "  ok    $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL  $*"; }
check() { # description command...
	d=$1; shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
fatal() { echo "deploy test: $*" >&2; exit 1; }

[ -x bin/data-plane ] && [ -x bin/control-plane ] || fatal "build first: make all"
for t in haproxy socat curl; do command -v $t >/dev/null || fatal "$t is missing (make deps)"; done

work=$(mktemp -d /tmp/celltrail-deploy-test.XXXXXX)
chmod 0755 "$work"  # the stack's PostgreSQL runs as another user
export PG_FSYNC="${PG_FSYNC:-off}"  # a throwaway stack (deploy/local/pg.sh)
export STACK_VAR="$work/stack" STACK_CP_PORT=$BASE STACK_DP_BASE_PORT=$((BASE + 1))
export STACK_PG_PORT=$((BASE + 99))
export STACK_DP_INSTANCE_PORT=$((BASE + 20)) STACK_ROUTER_PORT=$((BASE + 10)) STACK_MOVER_PORT=$((BASE + 15))
export STACK_REGIONS="in eu us" STACK_DP_INSTANCES=2
export STACK_CELLS_in="ap-south-1 ap-south-2" STACK_CELLS_eu=eu-west-1 STACK_CELLS_us=us-east-1
REGIONS=$STACK_REGIONS CELLS="ap-south-1 ap-south-2 eu-west-1 us-east-1"
OTHERS="ap-south-2 eu-west-1 us-east-1"  # every cell but the canary
traffic_pids=""
cleanup() {
	touch "$work/stop"
	for p in $traffic_pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	sh deploy/local/stack.sh stop >/dev/null 2>&1 || true
	if [ "${KEEP_TEST_LOGS:-}" ]; then echo "deploy test: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== deploy: rollout test (private stack on ports $BASE..$((BASE + 99)))"
sh deploy/local/stack.sh start > "$work/stack.log" 2>&1 || { tail -n 20 "$work/stack.log"; fatal "the stack did not start"; }
. "$STACK_VAR/stack.env"
drv() { deploy/drivers/local "$@"; }
admin() { # METHOD PATH [JSON]: the body; fails unless 2xx
	curl -fsS -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
		${3:+-d "$3"} "$CP_URL$2"
}

# The waves file the stack wrote for its catalog passes the checks (the
# rollout stops at the build, which does not exist).
vw_rc=0; deploy/rollout -w "$STACK_VAR/waves" "$work/none" > "$work/varwaves.out" 2>&1 || vw_rc=$?
varwaves_ok() { [ $vw_rc = 1 ] && grep -q "build .*none cannot be used" "$work/varwaves.out"; }

# A tenant of its own in ap-south-2, the canary's neighbour in wave 1.
T2=$(admin POST /v1/tenants '{"name":"Neighbour","slug":"neighbour","region":"in","plan":"pro","cell":"ap-south-2"}' |
	jq -r .id) || fatal "could not create a tenant in cell ap-south-2"
K2=$(admin POST "/v1/tenants/$T2/api-keys" '{"name":"k","scopes":["events:read","events:write"]}' | jq -r .secret) ||
	fatal "could not create its key"
# jp runs nowhere here: its first cell stays in the catalog (a cell without
# instances, skipped), its second is closed (no waves file may name it).
admin PATCH /v1/regions/jp/cells/ap-northeast-2 '{"status":"closed"}' > /dev/null || fatal "could not close ap-northeast-2"
cat > "$work/waves" <<EOF
# wave  bake  cells
1       3s    ap-south-1 ap-south-2
2       3s    eu-west-1 us-east-1 ap-northeast-1
EOF
n=0
until curl -fsS -o /dev/null -H "Authorization: Bearer $K2" "$DP_URL_in/v1/tenant" 2>/dev/null; do
	n=$((n + 1)); [ $n -lt 100 ] || fatal "the ap-south-2 tenant's key is not served through the router"; sleep 0.2
done

# Builds: A is a copy of bin/ with the migrations beside it; B and C wrap
# A's binary (exec, so that the pid is the data plane's) with a fault.
mkdir -p "$work/A/bin" "$work/B/bin" "$work/C/bin"
cp bin/data-plane "$work/A/bin/"
cp -R migrations "$work/A/migrations"
wrapper() { # build variable value
	cat > "$work/$1/bin/data-plane" <<EOF
#!/bin/sh
[ "\${1:-serve}" = serve ] && export $2='$3'
exec "$work/A/bin/data-plane" "\$@"
EOF
	chmod +x "$work/$1/bin/data-plane"
}
wrapper B DP_CONTROL_PLANE_URL https://127.0.0.1:9  # never ready: no config
wrapper C DP_DATABASE_URL postgresql://celltrail:x@127.0.0.1:9/none  # POSTs: 503

# Background traffic through the regions' routers, bounded: at most 600
# rounds of 20 requests per loop. Each answer's status goes to a file per
# loop, one per line. Each curl sends a burst of requests through its URL
# glob; the glob is in the fragment, which curl does not send: a query
# parameter the route does not read would be refused (400).
get_loop() { # name url key
	n=0
	while [ ! -f "$work/stop" ] && [ $n -lt 600 ]; do
		curl -s --rate 20/s -w '%{stderr}%{http_code}\n' -H "Authorization: Bearer $3" \
			"$2/v1/tenant#[1-20]" >/dev/null 2>>"$work/codes.get-$1" || true
		n=$((n + 1))
	done
}
read_loop() { # region
	eval "url=\$DP_URL_$1 key=\$DEMO_KEY_$1"
	n=0
	while [ ! -f "$work/stop" ] && [ $n -lt 600 ]; do
		curl -s --rate 10/s -w '%{stderr}%{http_code}\n' -H "Authorization: Bearer $key" \
			"$url/v1/events?limit=1#[1-10]" >/dev/null 2>>"$work/codes.read-$1" || true
		n=$((n + 1))
	done
}
post_loop() { # region
	eval "url=\$DP_URL_$1 key=\$DEMO_KEY_$1"
	n=0
	while [ ! -f "$work/stop" ] && [ $n -lt 600 ]; do
		curl -s --rate 10/s -w '%{stderr}%{http_code}\n' -H "Authorization: Bearer $key" \
			-H 'Content-Type: application/json' -d '{"action":"deploy.test","actor":{"id":"t","type":"test"}}' \
			"$url/v1/events#[1-10]" >/dev/null 2>>"$work/codes.post-$1" || true
		n=$((n + 1))
	done
}
for r in $REGIONS; do
	: > "$work/codes.get-$r"
	eval "get_loop \"\$r\" \"\$DP_URL_$r\" \"\$DEMO_KEY_$r\"" &
	traffic_pids="$traffic_pids $!"
done
: > "$work/codes.get-ap-south-2"
get_loop ap-south-2 "$DP_URL_in" "$K2" &
traffic_pids="$traffic_pids $!"
: > "$work/codes.post-in"
post_loop in &
traffic_pids="$traffic_pids $!"
: > "$work/codes.read-in"
read_loop in &
traffic_pids="$traffic_pids $!"

# A phase's figures: requests answered and failed (not 2xx) per loop
# since mark.
mark() {
	for f in "$work"/codes.*; do
		case "$f" in *.mark) ;; *) wc -l < "$f" > "$f.mark" ;; esac
	done
	wc -l < "$STACK_VAR/run/instances.log" > "$work/history.mark"
}
figures() { # prints "loop sent failed" per loop, then "total sent failed"
	for f in "$work"/codes.*; do
		[ "${f%.mark}" = "$f" ] || continue
		from=$(($(cat "$f.mark") + 1))
		sed -n "$from,\$p" "$f" | awk -v n="${f##*/codes.}" '
			{ sent++ } !/^2/ { failed++ } END { print n, sent + 0, failed + 0 }'
	done | awk '{ print; s += $2; f += $3 } END { print "total", s, f }'
}
# What failed since mark: each loop's statuses other than 2xx (000: no
# answer), and HAProxy's log of the answers it did not count as normal.
why() {
	for f in "$work"/codes.*; do
		[ "${f%.mark}" = "$f" ] || continue
		tail -n +$(($(cat "$f.mark") + 1)) "$f" | grep -v '^2' | sort | uniq -c |
			sed "s#^#    | ${f##*/codes.}: #"
	done
	grep -v -e maintenance -e '^\[' -e ' is UP' -e ' is DOWN' "$STACK_VAR/log/balancer.log" | tail -n 5 | sed 's/^/    | /'
}
sent() { awk '$1 == "total" { print $2 }' "$1"; }
failed() { awk '$1 == "total" { print $3 }' "$1"; }

# What runs: "instance build exe" for every instance of the cells.
snapshot() { # cells...
	for c in "$@"; do
		for i in $(drv list-instances "$c"); do
			pid=$(cat "$STACK_VAR/run/data-plane-$i.pid")
			echo "$i $(drv build "$i") $(readlink "/proc/$pid/exe")"
		done
	done
}
all_on() { # build cells...
	b=$1; shift
	snapshot "$@" > "$work/snap"
	[ -s "$work/snap" ] && awk -v b="$b" '$2 != b || $3 != b "/bin/data-plane" { bad = 1 } END { exit bad }' "$work/snap"
}
two_each() { # cells...
	for c in "$@"; do [ "$(drv list-instances "$c" | wc -l)" = 2 ] || return 1; done
}
# The cells where BUILD was started since mark, from the driver's
# instances.log ("ms start|stop instance cell build"), space-separated.
ran_in() { # build
	tail -n +$(($(cat "$work/history.mark") + 1)) "$STACK_VAR/run/instances.log" |
		awk -v b="$1" '$2 == "start" && $5 == b { print $4 }' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
rollout() { # name build: runs it into $work/NAME.out, its status into $work/NAME.rc
	rc=0
	deploy/rollout -w "$work/waves" --bake 3s --settle 2s --interval 500ms --ready-timeout 5s "$2" > "$work/$1.out" 2>&1 || rc=$?
	echo $rc > "$work/$1.rc"
	sed 's/^/    | /' "$work/$1.out"
}
settle_traffic() { sleep 1; }  # answers in flight when a phase ends

echo "-- usage and consistency checks"
rc=0; deploy/rollout > /dev/null 2>&1 || rc=$?
check "no build: usage error (exit 2, got $rc)" [ $rc = 2 ]
rc=0; deploy/rollout --settle soon "$work/A" > /dev/null 2>&1 || rc=$?
check "a malformed duration: usage error (exit 2, got $rc)" [ $rc = 2 ]
rc=0; deploy/rollout -w "$work/waves" "$work/none" > /dev/null 2>&1 || rc=$?
check "a missing build: error (exit 1, got $rc)" [ $rc = 1 ]
before=$(snapshot $CELLS)
refused() { # name sed-script message: the waves file edited so is refused, naming the cell
	sed "$2" "$work/waves" > "$work/waves.$1"
	rc=0; deploy/rollout -w "$work/waves.$1" "$work/A" > "$work/waves.$1.out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -qF "$3" "$work/waves.$1.out" || { sed 's/^/    | /' "$work/waves.$1.out"; return 1; }
}
check "a waves file that leaves out a cell (eu-west-1) is refused" \
	refused missing 's/ eu-west-1//' 'cell eu-west-1 of region eu (active) is in no wave'
check "a waves file that names a cell the catalog does not have is refused" \
	refused invented 's/ap-south-2$/ap-south-2 ap-south-9/' 'wave 1 names cell ap-south-9, which is in no region of the catalog'
check "a waves file that names a cell twice is refused" \
	refused twice 's/eu-west-1 /eu-west-1 ap-south-1 /' 'cell ap-south-1 is in two waves (1 and 2)'
check "a waves file that names a cell twice in one wave is refused" \
	refused twice-in-one 's/eu-west-1 /eu-west-1 eu-west-1 /' 'cell eu-west-1 is named twice in wave 2'
check "a waves file that names a closed cell is refused" \
	refused closed 's/ap-northeast-1$/ap-northeast-1 ap-northeast-2/' 'wave 2 names cell ap-northeast-2 (region jp), which is closed'
check "the stack's var/waves matches its catalog (refused only for the missing build: exit $vw_rc)" varwaves_ok
varwaves_ok || sed 's/^/    | /' "$work/varwaves.out"
check "nothing changed meanwhile" [ "$(snapshot $CELLS)" = "$before" ]
sleep 2  # some traffic before the first phase

echo "-- phase 1: good build A"
mark
rollout good "$work/A"
settle_traffic
figures > "$work/good.fig"
check "rollout of A succeeds (exit 0, got $(cat "$work/good.rc"))" [ "$(cat "$work/good.rc")" = 0 ]
check "every cell runs A, two instances each" all_on "$work/A" $CELLS
check "every wave passed" [ "$(grep -c '^  wave [12] .* passed ' "$work/good.out")" = 2 ]
check "within wave 1, ap-south-2 started only once ap-south-1 was done" \
	eval 'awk "/ap-south-1: stopped/ { a = NR } /ap-south-2: started/ && !b { b = NR } END { exit !(a && b && a < b) }" "$work/good.out"'
check "traffic flowed: $(sent "$work/good.fig") requests" [ "$(sent "$work/good.fig")" -ge 500 ]
check "no request failed ($(failed "$work/good.fig") of $(sent "$work/good.fig"))" [ "$(failed "$work/good.fig")" = 0 ]
[ "$(failed "$work/good.fig")" = 0 ] || why
two_each $CELLS || bad "two instances per cell after phase 1"
untouched_before=$(snapshot $OTHERS)

echo "-- phase 2: build B never becomes ready"
mark
rollout unready "$work/B"
settle_traffic
figures > "$work/unready.fig"
check "rolled back (exit 3, got $(cat "$work/unready.rc"))" [ "$(cat "$work/unready.rc")" = 3 ]
check "wave 1 rolled back for readiness" grep -q '^result: rolled back in wave 1 (readiness: ' "$work/unready.out"
check "wave 2 reported untouched" [ "$(grep -c '^  wave 2 .* untouched ' "$work/unready.out")" = 1 ]
check "the canary is reported never ready, with no request" \
	grep -q '^    instance ap-south-1-[0-9]* (canary) (never ready): 0 requests, 0 answered 5xx$' "$work/unready.out"
check "B ran in the canary cell only (driver's records: $(ran_in "$work/B"))" [ "$(ran_in "$work/B")" = ap-south-1 ]
check "ap-south-1 runs A again, two instances" all_on "$work/A" ap-south-1
check "the other cells: the same instances of A as before" [ "$(snapshot $OTHERS)" = "$untouched_before" ]
check "no request failed ($(failed "$work/unready.fig") of $(sent "$work/unready.fig"))" \
	[ "$(failed "$work/unready.fig")" = 0 ]
[ "$(failed "$work/unready.fig")" = 0 ] || why
two_each $CELLS || bad "two instances per cell after phase 2"

echo "-- phase 3: build C answers 5xx"
mark
rollout fivexx "$work/C"
settle_traffic
figures > "$work/fivexx.fig"
canary=$(sed -n 's/^    instance ap-south-1-[0-9]* (canary): [0-9]* requests, \([0-9]*\) answered 5xx$/\1/p' "$work/fivexx.out")
others=$(grep -c '^    instance ' "$work/fivexx.out" || true)
check "rolled back (exit 3, got $(cat "$work/fivexx.rc"))" [ "$(cat "$work/fivexx.rc")" = 3 ]
check "wave 1 rolled back by the 5xx gate" grep -q '^result: rolled back in wave 1 (5xx: ' "$work/fivexx.out"
check "stopped at the canary: one instance of C was started ($others)" [ "$others" = 1 ]
check "C ran in the canary cell only (driver's records: $(ran_in "$work/C"))" [ "$(ran_in "$work/C")" = ap-south-1 ]
check "the canary answered some 5xx (${canary:-none})" [ "${canary:-0}" -gt 0 ]
check "failed requests ($(failed "$work/fivexx.fig") of $(sent "$work/fivexx.fig")) = the canary's 5xx (${canary:-none})" \
	[ "$(failed "$work/fivexx.fig")" = "${canary:-x}" ]
check "the neighbour cell's tenant saw no failure ($(awk '$1 == "get-ap-south-2" { print $3 }' "$work/fivexx.fig"))" \
	[ "$(awk '$1 == "get-ap-south-2" { print $3 }' "$work/fivexx.fig")" = 0 ]
check "ap-south-1 runs A again, two instances" all_on "$work/A" ap-south-1
check "the other cells: the same instances of A as before" [ "$(snapshot $OTHERS)" = "$untouched_before" ]
two_each $CELLS || bad "two instances per cell after phase 3"

touch "$work/stop"
for p in $traffic_pids; do wait "$p" 2>/dev/null || true; done
traffic_pids=""
echo "-- figures (requests sent, failed)"
for ph in good unready fivexx; do
	printf '  %-8s %s\n' "$ph" "$(awk '{ printf "%s %s/%s  ", $1, $2, $3 }' "$work/$ph.fig")"
done

pids=$(cat "$STACK_VAR"/run/*.pid)
sh deploy/local/stack.sh stop > /dev/null
left=""
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
check "the stack stops every process it and the rollouts started${left:+ (left:$left)}" [ -z "$left" ]

echo "deploy: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
