# Tenant moves under load (sourced by tests/faults/run.sh after lib.sh, and
# by tests/deploy/moves_test.sh): a tenant's whole trail copied from its
# cell to another cell of its region, or to another region, while it keeps
# writing, reading and following its feed, then the same invariants after
# every scenario: every event acknowledged 201 (before, during, after) is at
# the target exactly once, none is at the source once it is erased
# (erase_after_seconds 0), billed = stored, reads never saw a 5xx, and the
# write pause (first to last 503 tenant_moving) is printed.
#
# move-cell        1,000,000 events (loaded straight into the source cell's
#                  database with one SQL statement) moved us-east-1 -> us-west-2
# move-region      the same, us -> eu; 421 at us with eu's endpoint for its
#                  old key, which eu serves
# move-mover-kill  the mover killed (SIGKILL) mid-copy, started again: it resumes
# move-cp-kill     the control plane killed mid-move, started again
# move-target-db-restart  the target cell's PostgreSQL restarted mid-copy
# move-abort       aborted just before cutover: the source stays
#                  authoritative, the target holds no row of the tenant
# cell-drain       20 tenants of one cell under load, the cell drained: it
#                  ends with no tenant
#
# MOVES_EVENTS (1000000): the events of the moved tenants of move-cell and
# move-region; MOVES_FAULT_EVENTS (300000) those of the fault scenarios.

MOVES_EVENTS=${MOVES_EVENTS:-1000000}
MOVES_FAULT_EVENTS=${MOVES_FAULT_EVENTS:-300000}
MOVE_PASSWORD=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')

# A tenant of REGION placed in CELL on plan faults, with a key of both
# scopes and an owner: sets T_<label>, K_<label>, S_<label> (its slug),
# C_<label> (its cell) and R_<label> (its region).
mv_tenant() { # label region cell
	_slug="mv-$(printf %s "$1" | tr _ -)-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
	_b=$(api POST /v1/tenants "{\"name\":\"move $1\",\"slug\":\"$_slug\",\"region\":\"$2\",\"plan\":\"faults\",\"cell\":\"$3\"}") ||
		fatal "could not create tenant $1 in cell $3"
	_id=$(printf '%s' "$_b" | jget id)
	_k=$(api POST "/v1/tenants/$_id/api-keys" '{"name":"load","scopes":["events:read","events:write"]}' | jget secret) ||
		fatal "could not create a key for tenant $1"
	api POST "/v1/tenants/$_id/users" "{\"email\":\"owner@$_slug.test\",\"role\":\"owner\",\"password\":\"$MOVE_PASSWORD\"}" > /dev/null ||
		fatal "could not create the owner of tenant $1"
	eval "T_$1=\$_id K_$1=\$_k S_$1=\$_slug C_$1=\$3 R_$1=\$2"
}

# The owner's session token of tenant LABEL (region moves are the owner's
# request).
mv_owner() { # label
	eval "_s=\$S_$1"
	curl -fsS --max-time 10 -H 'Content-Type: application/json' \
		-d "{\"tenant\":\"$_s\",\"email\":\"owner@$_s.test\",\"password\":\"$MOVE_PASSWORD\"}" \
		"$CP_URL/v1/auth/login" | jget token
}

# N events of TENANT loaded straight into CELL's database with one
# statement, as the ingest stores them: the body as the data plane writes
# it (compact JSON: id, occurred_at, received_at, action, actor, targets,
# context, metadata), content_sha256 of the event, the filter keys by
# events_keys(body) (computed once per distinct body shape: they do not
# depend on the id), and the tenant's usage counter of the month raised
# by N in the same statement (the cell reports it to the control plane as
# usual). The ids are PREFIX-1 .. PREFIX-N, received over the last N
# microseconds.
mv_preload() { # cell tenant n prefix
	rsql "$1" "
WITH shapes AS MATERIALIZED (
    SELECT a, b, events_keys(b) AS keys
      FROM (SELECT a, format('{\"id\":\"x\",\"occurred_at\":\"x\",\"received_at\":\"x\",\"action\":\"faults.preload\",\"actor\":{\"id\":\"load-%s\",\"type\":\"test\"},\"targets\":[{\"id\":\"doc-%s\",\"type\":\"document\"}],\"context\":{},\"metadata\":{}}', a, a)::json AS b
              FROM generate_series(0, 96) a) s),
rows AS (
    SELECT i, '$4-' || i AS id, now() - ($3 - i) * interval '1 microsecond' AS at
      FROM generate_series(1, $3) i),
ins AS (
    INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,
                        content_sha256, body, keys)
    SELECT '$2'::uuid, r.id, r.at, r.at, 'faults.preload', 'load-' || (r.i % 97), ARRAY['doc-' || (r.i % 97)],
           sha256(convert_to(b.text, 'UTF8')), b.text::json, s.keys
      FROM rows r
      JOIN shapes s ON s.a = r.i % 97,
           LATERAL (SELECT format('{\"id\":%s,\"occurred_at\":%s,\"received_at\":%s,\"action\":\"faults.preload\",\"actor\":{\"id\":\"load-%s\",\"type\":\"test\"},\"targets\":[{\"id\":\"doc-%s\",\"type\":\"document\"}],\"context\":{},\"metadata\":{}}',
                               to_json(r.id), to_json(t.ts), to_json(t.ts), s.a, s.a) AS text
                      FROM (SELECT to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ts) t) b
    RETURNING 1)
INSERT INTO usage_counters AS u (tenant_id, period, events, pending_since, last_at, updated_at)
SELECT '$2'::uuid, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-01')::date, count(*), now(), now(), clock_timestamp()
  FROM ins
ON CONFLICT (tenant_id, period) DO UPDATE SET events = u.events + excluded.events,
    pending_since = CASE WHEN u.events = u.reported THEN excluded.pending_since ELSE u.pending_since END,
    last_at = greatest(u.last_at, excluded.last_at), updated_at = excluded.updated_at" > /dev/null
}

# A feed cursor of TENANT at the position (TX, SEQ), made as the feed makes
# it (data-plane/feed.c): for a follower that starts after the preloaded
# rows without paging through them.
mv_cursor_at() { # tenant tx seq
	python3 -c '
import base64, sys
t, tx, seq = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3])
b = bytes([1]) + tx.to_bytes(8, "big") + seq.to_bytes(8, "big")
h = 2166136261
for c in t + b:
    h = ((h ^ c) * 16777619) & 0xffffffff
print(base64.urlsafe_b64encode(b + h.to_bytes(4, "big")).decode().rstrip("="))' "$1" "$2" "$3"
}
# The cursor after TENANT's last row in CELL (in feed order).
mv_cursor_end() { # cell tenant
	set -- "$2" $(rsql "$1" "SELECT tx_id, seq FROM events WHERE tenant_id = '$2' ORDER BY tx_id DESC, seq DESC LIMIT 1" | tr '|' ' ')
	mv_cursor_at "$1" "$2" "$3"
}

# Moves: created, read, awaited.
mv_cell() { # label to-cell [erase-after-seconds]
	eval "_t=\$T_$1"
	_b=$(api POST "/v1/tenants/$_t/moves" "{\"to_cell\":\"$2\",\"erase_after_seconds\":${3:-0}}") ||
		{ bad "$1: the move to cell $2 was not created"; return 1; }
	eval "M_$1=\$(printf '%s' \"\$_b\" | jget id)"
}
mv_region() { # label to-region: the owner requests it, an admin approves it
	eval "_t=\$T_$1"
	_o=$(mv_owner "$1") || { bad "$1: its owner could not log in"; return 1; }
	_b=$(curl -fsS --max-time 10 -H "Authorization: Bearer $_o" -H 'Content-Type: application/json' \
		-d "{\"to_region\":\"$2\",\"erase_after_seconds\":0}" "$CP_URL/v1/tenants/$_t/moves") ||
		{ bad "$1: the owner's move to region $2 was not created"; return 1; }
	eval "M_$1=\$(printf '%s' \"\$_b\" | jget id)"
	_st=$(printf '%s' "$_b" | jget state)
	check "$1: the owner's request waits for an admin's approval (state $_st)" [ "$_st" = awaiting_approval ]
	eval "api POST \"/v1/tenants/\$_t/moves/\$M_$1/approve\" '{}'" > /dev/null ||
		{ bad "$1: the admin's approval was refused"; return 1; }
}
mv_get() { eval "api GET \"/v1/tenants/\$T_$1/moves/\$M_$1\""; }  # label
mv_field() { mv_get "$1" | jget "$2"; }  # label field
mv_in() { # label states...: the move is in one of them
	_s=$(mv_field "$1" state) || return 1
	_l=$1; shift
	case " $* " in *" $_s "*) return 0 ;; esac
	return 1
}
mv_wait() { # label seconds states...
	_l=$1 _w=$2; shift 2
	wait_until "$_w" mv_in "$_l" "$@"
}
# Waits for the move to end, then checks that it ended done.
mv_done() { # name label seconds
	mv_wait "$2" "$3" done failed aborted || true
	_s=$(mv_field "$2" state)
	check "$1: the move ends done within $3 s ($_s$([ "$_s" = failed ] && echo ": $(mv_field "$2" error)"))" [ "$_s" = done ]
}
mv_erased() { [ "$(mv_field "$1" "$2_erased_at")" != null ]; }  # label source|target
# Copied at least N events (the move's events_copied).
mv_copied() { _c=$(mv_field "$1" events_copied) && [ "${_c:-0}" != null ] && [ "${_c:-0}" -ge "$2" ]; }
mv_show() { # label: one line of the move's figures
	mv_get "$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print("    move %s: %s, events_copied %s, source_events %s, write_pause_ms %s, error %s" % (
    m.get("id"), m.get("state"), m.get("events_copied"), m.get("source_events"), m.get("write_pause_ms"), m.get("error")))'
}

# ---- the mover ----
mover_start() { # region [VAR=value...]: from its settings file, as the stack starts it
	_r=$1; shift
	_n=mover-$_r
	( set -a; . "$STACK_VAR/run/mover-$_r.env"; set +a; exec env "$@" "$BIN/mover" ) >> "$STACK_VAR/log/$_n.log" 2>&1 < /dev/null &
	echo $! > "$STACK_VAR/run/$_n.pid"
	proc_start $! > "$STACK_VAR/run/$_n.start"
	eval "_u=\$MOVER_URL_$_r"
	wait_until 20 eval '[ "$(http_status "$_u/healthz")" = 200 ]' || fatal "$_n did not start (log: $STACK_VAR/log/$_n.log)"
}
mover_restart() { svc_stop "mover-$1"; mover_start "$@"; }  # region [VAR=value...]

# ---- load ----

# The loads of tenant LABEL through its region's endpoint (the router):
# single events with an Idempotency-Key and client ids, batches of 10
# without a key, single events without ids (the data plane makes them)
# with a key, GET /v1/tenant, GET /v1/events and the feed (after CURSOR,
# if given). Every load follows a 421 to the endpoint it names.
mv_loads() { # label rate [feed-cursor]
	eval "_k=\$K_$1 _r=\$R_$1"
	_p=$(router_port "$_r")
	load_start "$1-single" "$_p" "$_k" post "$2" -i -f -a "$SCEN_DIR/$1-single.ids"
	load_start "$1-batch" "$_p" "$_k" post $(($2 / 10 + 1)) -b 10 -f -a "$SCEN_DIR/$1-batch.ids"
	load_start "$1-noid" "$_p" "$_k" post $(($2 / 2 + 1)) -n -i -f -a "$SCEN_DIR/$1-noid.ids"
	load_start "$1-tenant" "$_p" "$_k" tenant $(($2 / 2 + 1)) -f
	load_start "$1-query" "$_p" "$_k" query $(($2 / 4 + 1)) -f
	if [ -n "${3:-}" ]; then
		load_start "$1-feed" "$_p" "$_k" feed 20 -l 1000 -s "$3" -f -a "$SCEN_DIR/$1-feed.ids"
	else
		load_start "$1-feed" "$_p" "$_k" feed 20 -l 1000 -f -a "$SCEN_DIR/$1-feed.ids"
	fi
}

# The write pause of LABEL's loads: from the first 503 to the end of the
# last (tenant_moving while the source is fenced, wrong_cell while the
# router's map lags the flip), how many, and how many were tenant_moving;
# "- 0 0" when none.
mv_pause() { # label
	cat "$SCEN_DIR/$1"-single.load "$SCEN_DIR/$1"-batch.load "$SCEN_DIR/$1"-noid.load 2>/dev/null |
		awk '$3 == 503 { n++; if ($9 == "tenant_moving") m++; if (!a || $6 < a) a = $6; if ($6 + $7 > b) b = $6 + $7 }
		     END { if (n) print b - a, n, m + 0; else print "- 0 0" }'
}

# ---- the invariants ----

mv_count() { rsql "$1" "SELECT count(*) FROM events WHERE tenant_id = '$2'"; }  # cell tenant
# Rows of TENANT in every table of CELL that has a tenant_id column.
mv_rows() { # cell tenant
	_tabs=$(rsql "$1" "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id'
		AND table_schema = current_schema() AND data_type = 'uuid'")
	_n=0
	for _tb in $_tabs; do _n=$((_n + $(rsql "$1" "SELECT count(*) FROM $_tb WHERE tenant_id = '$2'"))); done
	echo "$_n"
}

# After a move of tenant LABEL from FROM_CELL to TO_CELL with PRELOADED
# events loaded by SQL (ids PREFIX-1..N), its loads stopped: every
# acknowledged id is stored at the target exactly once; nothing stored
# that was not sent; the feed handed every stored event out once (its
# follower drained to the end after the loads); reads never saw a 5xx;
# once the source is erased no row of the tenant is left there; billed =
# stored. Prints the write pause. With ERASE=no, the source's copy is kept
# (a drain's grace period) and only counted.
mv_check() { # label from-cell to-cell preloaded [erase: yes|no]
	_l=$1 _from=$2 _to=$3 _pre=$4 _erase=${5:-yes}
	eval "_t=\$T_$_l _k=\$K_$_l"
	_md="$SCEN_DIR/$_l"
	cat "$SCEN_DIR/$_l"-single.ids "$SCEN_DIR/$_l"-batch.ids "$SCEN_DIR/$_l"-noid.ids "$SCEN_DIR/$_l".extra.ids 2>/dev/null |
		awk '{ print $2 }' | sort > "$_md.acked"
	rsql "$_to" "SELECT id FROM events WHERE tenant_id = '$_t'" | sort > "$_md.stored"
	_acked=$(wc -l < "$_md.acked")
	_dup=$(uniq -d "$_md.acked" | wc -l)
	_stored=$(wc -l < "$_md.stored")
	_distinct=$(rsql "$_to" "SELECT count(DISTINCT id) FROM events WHERE tenant_id = '$_t'")
	_lost=$(comm -23 "$_md.acked" "$_md.stored" | wc -l)
	_pre_at=$(rsql "$_to" "SELECT count(*) FROM events WHERE tenant_id = '$_t' AND action = 'faults.preload'")
	check "$_l: every event acknowledged 201 ($_acked, $_dup acknowledged twice) is at the target $_to ($_lost missing)" \
		[ "$_lost$_dup" = 00 ]
	comm -23 "$_md.acked" "$_md.stored" | head -n 3 | sed 's/^/    | missing /'
	check "$_l: the $_pre events loaded before the move are at the target ($_pre_at)" [ "$_pre_at" = "$_pre" ]
	check "$_l: each exactly once ($_stored rows, $_distinct ids)" [ "$_stored" = "$_distinct" ]
	# Stored but never acknowledged: requests whose answer was lost (no
	# answer, status 0) may have committed; nothing else may be there.
	_extra=$((_stored - _pre - _acked + _lost))
	_noanswer=$(cat "$SCEN_DIR/$_l"-single.load "$SCEN_DIR/$_l"-batch.load "$SCEN_DIR/$_l"-noid.load 2>/dev/null |
		awk '$3 == 0 { n += $5 } END { print n + 0 }')
	check "$_l: stored without a 201: $_extra events, at most the $_noanswer events of requests that got no answer" \
		[ "$_extra" -le "$_noanswer" ]
	# The feed: its follower drained to the end through the endpoint the
	# tenant now lives at; no id twice, none stored missing.
	if [ -f "$SCEN_DIR/$_l-feed.ids" ]; then
		_cur=$(awk '$1 == "cursor" { print $2 }' "$SCEN_DIR/$_l-feed.ids")
		_reg=$(api GET "/v1/tenants/$_t" | jget region)
		eval "_ep=\$DP_URL_$_reg"
		awk '$1 != "cursor" { print $2 }' "$SCEN_DIR/$_l-feed.ids" > "$_md.fed"
		_more=true _n=0
		while [ "$_more" = true ] && [ $_n -lt 5000 ]; do
			_pg=$(curl -s --max-time 10 -H "Authorization: Bearer $_k" \
				"$_ep/v1/events/feed?limit=1000${_cur:+&after=$_cur}") || break
			printf '%s' "$_pg" | python3 -c '
import json, sys
p = json.load(sys.stdin)
for e in p.get("items") or []:
    print(e["id"])
print("cursor %s %s" % (p.get("next_cursor"), "true" if p.get("has_more") else "false"), file=sys.stderr)' \
				>> "$_md.fed" 2> "$_md.fedcur" || break
			set -- $(cat "$_md.fedcur")
			_cur=$2 _more=$3 _n=$((_n + 1))
		done
		_fed=$(wc -l < "$_md.fed")
		_fdup=$(sort "$_md.fed" | uniq -d | wc -l)
		# What the follower must have seen: every row at the target after
		# the cursor it started from (all of them, when it started at the
		# beginning; else the acknowledged ones and any other row).
		sort -u "$_md.fed" > "$_md.fed.sorted"
		if [ -n "$(eval "echo \${FEED_BEFORE_$_l:-}")" ]; then
			sort "$(eval "echo \$FEED_BEFORE_$_l")" | comm -23 "$_md.stored" - > "$_md.want"
		elif [ -n "$(eval "echo \${FEED_FROM_$_l:-}")" ]; then
			grep -v "^$(eval "echo \$FEED_FROM_$_l")-" "$_md.stored" > "$_md.want" || true
		else
			cp "$_md.stored" "$_md.want"
		fi
		_fmiss=$(comm -23 "$_md.want" "$_md.fed.sorted" | wc -l)
		_falien=$(comm -13 "$_md.stored" "$_md.fed.sorted" | wc -l)
		check "$_l: the feed, followed from before the move to its end after it, handed out $_fed events: none twice ($_fdup), none stored missed ($_fmiss), none not stored ($_falien)" \
			[ "$_fdup$_fmiss$_falien" = 000 ]
	fi
	# Reads: GET /v1/tenant, /v1/events and the feed: never a 5xx. Reads
	# that got no answer (the client's 5 s timeout) are counted apart: on
	# this shared machine they come with stalls of everything, GET
	# /v1/tenant (served from memory) too; each is listed with its time.
	_reads="$SCEN_DIR/$_l-tenant.load $SCEN_DIR/$_l-query.load $SCEN_DIR/$_l-feed.load"
	# shellcheck disable=SC2086
	_r5=$(cat $_reads 2>/dev/null | awk '$3 >= 500' | wc -l)
	# shellcheck disable=SC2086
	_r0=$(cat $_reads 2>/dev/null | awk '$3 == 0' | wc -l)
	# shellcheck disable=SC2086
	_rn=$(cat $_reads 2>/dev/null | wc -l)
	check "$_l: no read was answered 5xx ($_r5 of $_rn)" [ "$_r5" = 0 ]
	# shellcheck disable=SC2086
	cat $_reads 2>/dev/null | awk '$3 >= 500 { k[$2 " " $3 " " $9]++ } END { for (x in k) print "    | " x ": " k[x] }'
	if [ "$_r0" != 0 ]; then
		# shellcheck disable=SC2086
		echo "    reads without an answer within 5 s: $_r0 ($(cat $_reads | awk '$3 == 0 { print $2 "@" strftime("%H:%M:%S", int($6 / 1000), 1) }' | sort | uniq -c | awk '{ printf "%s%s x%d", s, $2, $1; s = ", " }'))"
	fi
	# Writes: 201; 503 with Retry-After, nothing stored (tenant_moving
	# while fenced, wrong_cell while the router's map lags the flip); 421
	# after a region move (followed); or no answer (outcome unknown,
	# bounded above). Anything else is listed.
	_w="$SCEN_DIR/$_l-single.load $SCEN_DIR/$_l-batch.load $SCEN_DIR/$_l-noid.load"
	# shellcheck disable=SC2086
	_wo=$(cat $_w 2>/dev/null | awk '!($3 == 201 || $3 == 421 || $3 == 0 || ($3 == 503 && ($9 == "tenant_moving" || $9 == "wrong_cell") && $8 != "-"))' | wc -l)
	check "$_l: writes were answered 201, 503 tenant_moving or wrong_cell with Retry-After, 421, or not at all; nothing else ($_wo)" [ "$_wo" = 0 ]
	# shellcheck disable=SC2086
	cat $_w 2>/dev/null | awk '$3 != 201 { k[$2 " " $3 " " $9]++ } END { for (x in k) print "    | " x ": " k[x] }'
	set -- $(mv_pause "$_l")
	MV_PAUSE=$1
	echo "  write pause of $_l: ${1} ms from the first 503 to the end of the last ($2 answers, $3 of them tenant_moving); the move reports write_pause_ms $(mv_field "$_l" write_pause_ms)"
	# The source: erased (erase_after_seconds 0), or kept for the grace period.
	if [ "$_erase" = yes ]; then
		if wait_until "${ERASE_SECONDS:-60}" mv_erased "$_l" source; then
			_left=$(mv_rows "$_from" "$_t")
			check "$_l: the source $_from is erased ($(mv_field "$_l" events_erased) events): no row of the tenant is left in any of its tables ($_left)" \
				[ "$_left" = 0 ]
		else
			bad "$_l: the source $_from was not erased within ${ERASE_SECONDS:-60} s (source_erased_at null)"
		fi
	else
		echo "    not erased here: $_from holds $(mv_count "$_from" "$_t") events of the tenant (a drain's grace period; after an abort, none)"
	fi
	# Billing: both cells' outboxes drained, billed once.
	if wait_until "${DRAIN_SECONDS:-90}" mv_drained; then
		ok "$_l: the usage outboxes of $_from and $_to drained"
	else
		bad "$_l: the usage outboxes of $_from and $_to did not drain in ${DRAIN_SECONDS:-90} s"
	fi
	_billed=$(billed "$_t") || _billed=unknown
	check "$_l: billed at the control plane ($_billed) = stored ($_stored)" [ "$_billed" = "$_stored" ]
	STORED=$_stored BILLED=$_billed FIG_UNACKED_STORED=$_extra
}

mv_drained() { outbox_drained "$_from" && outbox_drained "$_to"; }

# A replay after the cutover: the request sent with an Idempotency-Key
# before the move, sent again to the endpoint the tenant lives at now, is
# answered as the first time (201, the same event) with
# Idempotent-Replayed: true.
mv_replay() { # label endpoint idempotency-key body first-answer-file
	eval "_k=\$K_$1"
	_h=$(curl -s -D - -o "$SCEN_DIR/$1.replay" --max-time 10 -H "Authorization: Bearer $_k" \
		-H "Idempotency-Key: $3" -H 'Content-Type: application/json' -d "$4" "$2/v1/events" | tr -d '\r')
	case "$_h" in "HTTP/1.1 201"*) ;; *) return 1 ;; esac
	printf '%s\n' "$_h" | grep -qi '^idempotent-replayed: true' && cmp -s "$SCEN_DIR/$1.replay" "$5"
}

# ---- the scenarios ----

# A tenant of CELL of REGION with PRE events, its loads, its move (cell or
# region) started: sets everything mv_check needs.
mv_start() { # label region cell pre rate
	mv_tenant "$1" "$2" "$3"
	eval "_t=\$T_$1"
	_t0=$(now_ms)
	mv_preload "$3" "$_t" "$4" "pre-$1"
	echo "  $1: $4 events loaded into $3 with one SQL statement in $(($(now_ms) - _t0)) ms"
	eval "FEED_FROM_$1=pre-$1"
	wait_until 20 key_works "$(router_port "$2")" "$(eval "echo \$K_$1")" || fatal "the key of $1 does not work through the router of $2"
	mv_loads "$1" "$5" "$(mv_cursor_end "$3" "$_t")"
	sleep 2
}

moves_cell() {
	begin move-cell "a tenant of $MOVES_EVENTS events moved from cell us-east-1 to us-west-2 under load"
	mv_start mc us us-east-1 "$MOVES_EVENTS" "$RATE"
	t0=$(now_ms)
	mv_cell mc us-west-2 || { load_stop; finish; return; }
	mv_done move-cell mc 1200
	echo "  move-cell: $(( ($(now_ms) - t0) / 1000 )) s"; mv_show mc
	sleep 2
	load_stop
	mv_check mc us-east-1 us-west-2 "$MOVES_EVENTS"
	tally move-cell
	finish
}

moves_region() {
	begin move-region "a tenant of $MOVES_EVENTS events moved from region us to eu under load"
	mv_start mr us us-east-1 "$MOVES_EVENTS" "$RATE"
	t0=$(now_ms)
	mv_region mr eu || { load_stop; finish; return; }
	mv_done move-region mr 1200
	echo "  move-region: $(( ($(now_ms) - t0) / 1000 )) s"; mv_show mr
	sleep 2
	load_stop
	mv_check mr us-east-1 eu-west-1 "$MOVES_EVENTS"
	mv_region_after mr
	tally move-region
	finish
}

# After a region move us -> eu: its key at us is 421 with eu's endpoint,
# and served at eu.
mv_region_after() { # label
	eval "_k=\$K_$1"
	_a=$(curl -s --max-time 5 -w ' %{http_code}' -H "Authorization: Bearer $_k" "$DP_URL_us/v1/tenant")
	_st=${_a##* } _ep=$(printf '%s' "${_a% *}" | jget endpoint 2>/dev/null)
	check "$1: its key at us is answered 421 with eu's endpoint ($_st, $_ep)" [ "$_st $_ep" = "421 $DP_URL_eu" ]
	check "$1: its old key (prefix us) is served at eu" \
		[ "$(http_status "$DP_URL_eu/v1/tenant" -H "Authorization: Bearer $_k")" = 200 ]
}

# A fault in the middle of the copy: the move starts, and once it has
# copied a fifth of the events FAULT runs (a function), then the move must
# end done with the same invariants.
mv_fault_scenario() { # name label description fault-function
	begin "$1" "$3"
	mv_start "$2" us us-east-1 "$MOVES_FAULT_EVENTS" $((RATE / 2))
	mv_cell "$2" us-west-2 || { load_stop; finish; return; }
	if wait_until 120 mv_copied "$2" $((MOVES_FAULT_EVENTS / 5)); then
		check "$1: the fault hits mid-copy (state $(mv_field "$2" state), $(mv_field "$2" events_copied) copied)" mv_in "$2" copying
		"$4" "$2"
	else
		bad "$1: the copy did not reach $((MOVES_FAULT_EVENTS / 5)) events within 120 s"
	fi
	mv_done "$1" "$2" 600
	mv_show "$2"
	sleep 2
	load_stop
	mv_check "$2" us-east-1 us-west-2 "$MOVES_FAULT_EVENTS"
	tally "$1"
	finish
}
fault_mover_kill() {
	MV_L=$1
	c0=$(mv_field "$1" events_copied)
	t0=$(rsql us-west-2 "SELECT count(*) FROM events WHERE tenant_id = '$(eval "echo \$T_$1")'")
	svc_kill mover-us
	sleep 2
	mover_start us
	t=$(now_ms)
	resumed() { _c=$(mv_field "$MV_L" events_copied); [ "$_c" != null ] && [ "$_c" -gt "$c0" ] || mv_in "$MV_L" done; }
	check "move-mover-kill: the restarted mover resumes (events_copied $c0 at the kill, $t0 rows at the target, then more)" \
		wait_until 60 resumed
	echo "    resumed in $(($(now_ms) - t)) ms; the target's progress: $(mv_field "$1" events_copied) copied"
}
fault_cp_kill() {
	svc_kill control-plane
	sleep 4
	cp_start
}
fault_target_db() {
	cell_pg_stop us-west-2
	sleep 3
	cell_pg_start us-west-2 || fatal "the PostgreSQL of us-west-2 did not start again"
}
moves_faults() {
	want move-mover-kill && mv_fault_scenario move-mover-kill mk "the mover killed (SIGKILL) mid-copy, started again" fault_mover_kill
	want move-cp-kill && mv_fault_scenario move-cp-kill ck "the control plane killed (SIGKILL) mid-move, started again 4 s later" fault_cp_kill
	want move-target-db-restart && mv_fault_scenario move-target-db-restart td "the target cell's PostgreSQL stopped mid-copy for 3 s, then started" fault_target_db
	return 0
}

moves_abort() {
	begin move-abort "a move aborted just before cutover (in catching_up)"
	mv_start ma us us-east-1 "$MOVES_FAULT_EVENTS" $((RATE / 2))
	mv_cell ma us-west-2 || { load_stop; finish; return; }
	# Just before cutover: the copy has reached the end once (catching_up);
	# the mover is held there (SIGSTOP) so that the abort wins the race.
	if wait_until 300 mv_in ma catching_up cutover verifying done; then
		svc_signal mover-us STOP
		st=$(mv_field ma state)
		copied=$(mv_count us-west-2 "$T_ma")
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
			-H 'Content-Type: application/json' -d '{}' "$CP_URL/v1/tenants/$T_ma/moves/$M_ma/abort")
		svc_signal mover-us CONT
		check "move-abort: aborted in $st with $copied events at the target (abort answered $code)" \
			[ "$st $code" = "catching_up 200" ]
	else
		bad "move-abort: the move did not reach catching_up within 300 s ($(mv_field ma state))"
	fi
	check "move-abort: the target's copy is erased (within 120 s)" wait_until 120 mv_erased ma target
	sleep 2
	load_stop
	left=$(mv_rows us-west-2 "$T_ma")
	check "move-abort: the target us-west-2 holds no row of the tenant in any table ($left)" [ "$left" = 0 ]
	check "move-abort: the tenant still lives in us-east-1 ($(api GET "/v1/tenants/$T_ma" | jget cell))" \
		[ "$(api GET "/v1/tenants/$T_ma" | jget cell)" = us-east-1 ]
	check "move-abort: it writes there (201 after the abort)" \
		[ "$(http_status "$DP_URL_us/v1/events" -H "Authorization: Bearer $K_ma" -H 'Content-Type: application/json' \
			-d '{"id":"after-abort","action":"faults.load","actor":{"id":"a","type":"test"}}')" = 201 ]
	echo "0 after-abort" > "$SCEN_DIR/ma.extra.ids"
	# The source stays authoritative: every acknowledged event there.
	mv_check ma us-west-2 us-east-1 "$MOVES_FAULT_EVENTS" no
	tally move-abort
	finish
}

# The drain empties a cell of its own (us-east-2, which run.sh adds to us
# for it), so that the tenants other scenarios moved into us-west-2 do not
# move again.
moves_drain() {
	case " $CELLS_us " in *" us-east-2 "*) DC=us-east-2 ;; *) DC=us-west-2 ;; esac
	begin cell-drain "20 tenants of cell $DC under load, the cell drained"
	i=0 labels=""
	while [ $i -lt 20 ]; do
		mv_tenant "dr$i" us "$DC"
		mv_preload "$DC" "$(eval "echo \$T_dr$i")" 2000 "pre-dr$i"
		labels="$labels dr$i"
		i=$((i + 1))
	done
	for l in $labels; do
		wait_until 20 key_works "$(router_port us)" "$(eval "echo \$K_$l")" || fatal "the key of $l does not work through the router"
	done
	for l in $labels; do
		eval "_k=\$K_$l"
		load_start "$l-single" "$(router_port us)" "$_k" post 5 -i -a "$SCEN_DIR/$l-single.ids"
	done
	load_start dr0-tenant "$(router_port us)" "$K_dr0" tenant 10
	load_start dr0-query "$(router_port us)" "$K_dr0" query 5
	sleep 2
	t0=$(now_ms)
	d=$(api POST "/v1/cells/$DC/drain" '{"parallel":4}') || { bad "cell-drain: the drain was refused"; load_stop; finish; return; }
	echo "  drain: $(printf '%s' "$d" | jget state), tenants_left $(printf '%s' "$d" | jget tenants_left)"
	drained() { [ "$(api GET "/v1/cells/$DC/drain" | jget state)" = done ]; }
	check "cell-drain: done within 600 s" wait_until 600 drained
	echo "  cell-drain: $(( ($(now_ms) - t0) / 1000 )) s: $(api GET "/v1/cells/$DC/drain")"
	sleep 2
	load_stop
	n=$(api GET /v1/regions/us/cells | python3 -c 'import json,sys; print([c["tenants"] for c in json.load(sys.stdin)["items"] if c["name"] == sys.argv[1]][0])' "$DC")
	check "cell-drain: $DC holds no tenant ($n)" [ "$n" = 0 ]
	for l in $labels; do
		eval "_t=\$T_$l"
		M=$(api GET "/v1/tenants/$_t/moves" | jget items.0.id)
		eval "M_$l=\$M"
		to=$(api GET "/v1/tenants/$_t" | jget cell)
		check "$l: moved from $DC to $to ($(mv_field "$l" state))" eval '[ "$to" != "$DC" ] && mv_in "$l" done'
		mv_check "$l" "$DC" "$to" 2000 no
		tally "$l"
	done
	# The cell takes tenants again (a later run places there).
	api PATCH "/v1/regions/us/cells/$DC" '{"status":"active"}' > /dev/null || true
	finish
}

moves_scenarios() {
	want move-cell && moves_cell
	want move-region && moves_region
	moves_faults
	want move-abort && moves_abort
	want cell-drain && moves_drain
	return 0
}
