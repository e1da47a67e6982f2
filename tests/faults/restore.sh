# The restore drill (sourced by tests/faults/run.sh, after lib.sh): a
# cell's database is lost and restored from a base backup and the WAL
# archive with deploy/backup/, under load, and the recovery point reached
# is measured.
#
# On the cluster of jp's cell (its own, STACK_CELL_CLUSTERS=1): WAL
# archiving is turned on (postgresql.conf, a restart) with
# deploy/backup/archive-wal.sh as archive_command and archive_timeout
# RESTORE_ARCHIVE_TIMEOUT; a base backup is taken (base-backup.sh), a
# tenant of the cell writes (bin/faults-load, straight to the cell's data
# plane) and a second backup is taken under load with --keep 1 (the first
# and the WAL before the second are pruned); after RESTORE_WRITE_SECONDS
# more of writes the cluster is destroyed (an immediate stop, its data
# directory moved away: the WAL not archived yet is gone) and restored
# with restore.sh into the same path and port; the data plane, never
# restarted, reconnects by itself. Then, of the events acknowledged
# before the destruction: how many are present; the recovery point (the
# destruction's time minus the receipt of the last event present) within
# RESTORE_ARCHIVE_TIMEOUT + RESTORE_MARGIN; every event acknowledged
# before the last archived segment's end present (its time: the WAL
# position, sampled every 200 ms, was inside an archived segment); no
# gap (an event acknowledged before the last present one was received is
# present); reads and writes served again; the usage counter equal to the
# events stored, and the control plane billing at least that; and a
# checkpoint saved before the destruction verifies against an export after
# it exactly when it covers only events that were recovered.
#
# Test-only knobs, to see it fail: RESTORE_ARCHIVE_COMMAND (say /bin/false:
# nothing is archived), RESTORE_DROP_SEGMENT=1 (a WAL segment after the
# backup is deleted from the archive before the restore: restore.sh refuses
# to restore past the gap) or RESTORE_DROP_SEGMENT=accept (the same,
# restored with --accept-gap: recovery ends at the gap).

RESTORE_ARCHIVE_TIMEOUT=${RESTORE_ARCHIVE_TIMEOUT:-10}  # seconds: what may be lost
# The bound's margin: after archive_timeout forces a segment switch, the
# archiver copies and fsyncs the 16 MB segment (tens of milliseconds here,
# seconds on a loaded machine), and the checkpointer that forces the switch
# wakes on its own schedule; 5 s covers both with room on this 2-core
# machine shared with other suites.
RESTORE_MARGIN=${RESTORE_MARGIN:-5}
# Writes after the second backup: longer than the bound, so that a
# recovery from the backup alone (nothing archived) cannot pass for one
# from the archive.
RESTORE_WRITE_SECONDS=${RESTORE_WRITE_SECONDS:-$((RESTORE_ARCHIVE_TIMEOUT + RESTORE_MARGIN + 5))}

# The cell's cluster as its superuser (the stack's PG_PASSWORD).
restore_su() { # sql
	"$PG_BIN/psql" -X -q -tA -F' ' -v ON_ERROR_STOP=1 "$RS_SU" -c "$1"
}
restore_start_wal() { # backup dir: the segment its backup_label starts in
	sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' "$1/backup_label" 2>/dev/null ||
		true
}
ms_to_s() { awk -v m="$1" 'BEGIN { printf "%.1f", m / 1000 }'; }
ms_clock() { date -u -d "@$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')" +%H:%M:%S.%3N; }

restore_drill() {
	C=$(first_cell jp)
	begin restore "the PostgreSQL cluster of cell $C, WAL archived (archive_timeout ${RESTORE_ARCHIVE_TIMEOUT} s), is destroyed under load and restored from a base backup and the archive"
	P=$(dp_port jp)
	data=$(cell_pg_data "$C")
	home=$(dirname "$data")
	eval "_u=\$CELL_DB_$(cv "$C")"
	port=${_u##*:}; port=${port%%/*}
	RS_SU="postgresql://postgres:$(sed -n 's/^PG_PASSWORD=//p' "$STACK_VAR/secrets")@127.0.0.1:$port/postgres"
	[ -f "$data/PG_VERSION" ] || fatal "cell $C has no PostgreSQL cluster of its own: the stack must run with STACK_CELL_CLUSTERS=1"
	set -- $(new_tenant restore jp faults "$C")
	T_restore=$1 K_restore=$2
	wait_until 20 key_works "$P" "$K_restore" || fatal "the key of the restore tenant does not work at $P"
	dp0=$(svc_pid "$DP_jp")

	# The archive, written by the server's user; the backups, by us.
	B="$WORK/backup"
	archive="$B/archive" backups="$B/base"
	mkdir -p "$B"
	chmod 0755 "$B"
	pg_prepare_dir "$archive"
	AW="$ROOT/deploy/backup/archive-wal.sh"
	if ! pg_as_owner test -x "$AW"; then  # a checkout the server's user cannot reach
		cp "$AW" "$B/archive-wal.sh"; chmod 0755 "$B/archive-wal.sh"; AW="$B/archive-wal.sh"
	fi
	pg_as_owner "$AW" --init "$archive" || fatal "archive-wal.sh --init $archive failed"
	acmd=${RESTORE_ARCHIVE_COMMAND:-$AW %p %f $archive}
	[ -z "${RESTORE_ARCHIVE_COMMAND:-}" ] || echo "  (test knob) archive_command = '$acmd'"
	cat >> "$data/postgresql.conf" <<CONF
# tests/faults restore: WAL archiving (deploy/backup/README.md)
wal_level = replica
archive_mode = on
archive_command = '$acmd'
archive_timeout = ${RESTORE_ARCHIVE_TIMEOUT}s
CONF
	cell_pg_stop "$C"
	cell_pg_start "$C" || fatal "the PostgreSQL cluster of cell $C did not start again with archiving on"
	restore_su "SELECT pg_switch_wal()" > /dev/null 2>&1 || true
	archived() { [ "$(restore_su "SELECT archived_count > 0 AND failed_count = 0 FROM pg_stat_archiver" 2>/dev/null)" = t ]; }
	rc=0; wait_until 10 archived || rc=1
	check "WAL archiving is on: a segment switched by hand is archived within 10 s ($(restore_su "SELECT archived_count || ' archived, ' || failed_count || ' failed' FROM pg_stat_archiver" 2>/dev/null))" \
		[ "$rc" = 0 ]
	wait_until 20 key_works "$P" "$K_restore" || true

	t_b0=$(now_ms)
	b1=$(sh "$ROOT/deploy/backup/base-backup.sh" -d "$RS_SU" -D "$backups" -k 1 -a "$archive" 2> "$SCEN_DIR/backup1.err") || true
	check "a base backup before the load ($(($(now_ms) - t_b0)) ms, starts in $(restore_start_wal "$b1"), verified)" \
		eval '[ -n "$b1" ] && [ -d "$b1" ]'
	sed 's/^/    | /' "$SCEN_DIR/backup1.err"

	# The WAL position, sampled: time, the segment being written, and the
	# next transaction id (without taking one).
	( while :; do
		restore_su "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, pg_walfile_name(pg_current_wal_lsn()), pg_snapshot_xmax(pg_current_snapshot())" 2>/dev/null || true
		sleep 0.2
	done ) >> "$SCEN_DIR/wal.samples" &
	SAMPLER=$!
	LOADS="$LOADS $SAMPLER"  # stopped with the loads should the scenario end early
	load_start post "$P" "$K_restore" post "$RATE"
	load_start query "$P" "$K_restore" query $((RATE / 4))
	sleep 3
	t_b0=$(now_ms)
	b2=$(sh "$ROOT/deploy/backup/base-backup.sh" -d "$RS_SU" -D "$backups" -k 1 -a "$archive" 2> "$SCEN_DIR/backup2.err") || true
	t_b1=$(now_ms)
	sed 's/^/    | /' "$SCEN_DIR/backup2.err"
	sw=$(restore_start_wal "$b2")
	older=$(ls -1 "$archive" | grep -E '^[0-9A-F]{24}$' | awk -v w="$sw" '($1 "") < (w "")' | wc -l)
	check "a second base backup under load ($((t_b1 - t_b0)) ms, starts in $sw) with --keep 1: the first is removed ($(ls -1 "$backups" | tr '\n' ' ')), and every archived segment before $sw ($older left)" \
		eval '[ -n "$b2" ] && [ "$(ls -1 "$backups" | grep -c .)" = 1 ] && [ "$older" = 0 ]'
	sleep "$RESTORE_WRITE_SECONDS"

	# A feed consumer's cursor at the end of the feed.
	cur="" n_pages=0
	while [ $n_pages -lt 20 ]; do
		n_pages=$((n_pages + 1))
		page=$(curl -fsS --max-time 5 -H "Authorization: Bearer $K_restore" \
			"http://127.0.0.1:$P/v1/events/feed?limit=1000${cur:+&after=$cur}") || break
		cur=$(printf '%s' "$page" | jq -r .next_cursor)
		[ "$(printf '%s' "$page" | jq -r .has_more)" = true ] || break
	done
	# A checkpoint of the tenant's log saved as a customer would, and the keys.
	curl -fsS --max-time 5 "http://127.0.0.1:$P/.well-known/jwks.json" > "$SCEN_DIR/jwks.json" || true
	curl -fsS --max-time 5 -H "Authorization: Bearer $K_restore" "http://127.0.0.1:$P/v1/checkpoints/latest" > "$SCEN_DIR/saved.cps" || true
	t_cp=$(now_ms)
	echo >> "$SCEN_DIR/saved.cps"
	s_cp=$(cut -d. -f2 "$SCEN_DIR/saved.cps" | python3 -c '
import base64, json, sys
t = sys.stdin.read().strip()
print(json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))["tree_size"])' 2>/dev/null || echo 0)
	set -- $(restore_su "SELECT coalesce(last_archived_wal, '-'), coalesce((extract(epoch FROM last_archived_time) * 1000)::bigint, 0), archived_count, failed_count FROM pg_stat_archiver")
	last_wal=${1:--} last_wal_ms=${2:-0} n_archived=${3:-0} n_failed=${4:-0}

	# Destroyed: stopped at once (no shutdown checkpoint, nothing more
	# archived), its data directory moved away.
	t_destroy0=$(now_ms)
	pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop > /dev/null || fatal "could not stop the cluster of $C"
	t_destroy=$(now_ms)
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	LOADS=$(echo " $LOADS " | sed "s/ $SAMPLER / /")
	mv "$data" "$home/data.destroyed"
	echo "  destroyed at $(ms_clock "$t_destroy") (the stop took $((t_destroy - t_destroy0)) ms); last archived segment $last_wal at $(ms_clock "$last_wal_ms") ($n_archived archived, $n_failed failures)"
	if [ "${RESTORE_DROP_SEGMENT:-}" ]; then
		drop=$(ls -1 "$archive" | grep -E '^[0-9A-F]{24}$' | awk -v w="$sw" '($1 "") > (w "")' | head -n 1)
		echo "  (test knob) segment ${drop:-none} deleted from the archive"
		[ -z "$drop" ] || rm -f "$archive/$drop"
	fi
	sleep 1

	t_r0=$(now_ms)
	rc=0
	[ "${RESTORE_DROP_SEGMENT:-}" = accept ] && set -- --accept-gap || set --
	sh "$ROOT/deploy/backup/restore.sh" -b "$backups" -D "$data" -a "$archive" -p "$port" \
		-l "$home/postgres.log" "$@" > "$SCEN_DIR/restore.out" 2> "$SCEN_DIR/restore.err" || rc=$?
	t_restored=$(now_ms)
	sed 's/^/    | /' "$SCEN_DIR/restore.err"
	check "restore.sh restored and promoted the cluster in $((t_restored - t_r0)) ms (exit $rc)" [ "$rc" = 0 ]
	[ "$rc" = 0 ] || fatal "the cluster of $C was not restored (log: $home/postgres.log)"
	xid_restored=$(restore_su "SELECT pg_snapshot_xmax(pg_current_snapshot())" 2>/dev/null || echo 0)
	xid_lost=$(tail -n 1 "$SCEN_DIR/wal.samples" | cut -d' ' -f3)
	s_feed=$(curl -s --max-time 5 -o "$SCEN_DIR/feed.after" -w '%{http_code}' -H "Authorization: Bearer $K_restore" \
		"http://127.0.0.1:$P/v1/events/feed?after=$cur" || true)
	xact=$(sed -n 's/^last_replayed_xact=//p' "$SCEN_DIR/restore.out")
	n_files=$(sed -n 's/^archive_files=//p' "$SCEN_DIR/restore.out")

	# Served again without a restart: the first POST answered 201 after
	# the restore, and then every one.
	ok_after() { awk -v a="$t_restored" '$6 >= a && $3 == 201' "$SCEN_DIR/post.load" | grep -q .; }
	wait_until 20 ok_after || true
	t_ok=$(awk -v a="$t_restored" '$6 >= a && $3 == 201 { print $6; exit }' "$SCEN_DIR/post.load")
	t_ok=${t_ok:-0}
	sleep 3
	load_stop
	check "the data plane accepts writes again without a restart: a POST sent $((t_ok - t_restored)) ms after the restore was acknowledged" \
		eval '[ "$t_ok" -gt 0 ] && same_pid "$DP_jp" "$dp0"'
	check "and every POST and GET /v1/events sent from 2 s after that succeeded" \
		[ "$(errors_in post $((t_ok + 2000)) 99999999999999)$(errors_in query $((t_ok + 2000)) 99999999999999)" = 00 ]
	down_n=$(awk -v a="$t_destroy0" -v b="$t_restored" '$6 >= a && $6 < b' "$SCEN_DIR/post.load" | wc -l)
	# 200 is the answer to a request whose events are all stored already
	# (a request that reached the data plane twice): a correct answer,
	# counted.
	others=$(awk '$3 != 200 && $3 != 201 && $3 != 503' "$SCEN_DIR/post.load" | wc -l)
	replays=$(awk '$3 == 200' "$SCEN_DIR/post.load" | wc -l)
	check "POSTs were answered 201, 503 or 200 (a replay: $replays), nothing else ($others; $down_n sent while the database was gone)" [ "$others" = 0 ]
	awk '$3 != 200 && $3 != 201 && $3 != 503' "$SCEN_DIR/post.load" | head -n 3 | sed 's/^/    | /'

	# What is present of what was acknowledged before the destruction.
	# (acked.pre: "id ack-ms", the ack's time the request's start plus its latency)
	awk -v d="$t_destroy0" -v p="$SCEN-post" '$2 == "post" && $3 == 201 && $6 < d {
		for (j = 0; j < $5; j++) printf "%s-%s-%d %.0f\n", p, $1, j, $6 + $7 }' "$SCEN_DIR/post.load" | LC_ALL=C sort > "$SCEN_DIR/acked.pre"
	load_ids "$SCEN_DIR/post.load" "$SCEN-post" | LC_ALL=C sort > "$SCEN_DIR/sent"
	load_ids "$SCEN_DIR/post.load" "$SCEN-post" 201 | LC_ALL=C sort > "$SCEN_DIR/acked.all"
	rsql "$C" "SELECT id FROM events WHERE tenant_id = '$T_restore'" | LC_ALL=C sort > "$SCEN_DIR/stored"
	LC_ALL=C join -v 1 "$SCEN_DIR/acked.pre" "$SCEN_DIR/stored" > "$SCEN_DIR/lost"
	n_acked=$(wc -l < "$SCEN_DIR/acked.pre") n_lost=$(wc -l < "$SCEN_DIR/lost")
	n_present=$((n_acked - n_lost))
	n_stored=$(wc -l < "$SCEN_DIR/stored")
	n_alien=$(LC_ALL=C comm -13 "$SCEN_DIR/sent" "$SCEN_DIR/stored" | wc -l)
	n_acked_all=$(wc -l < "$SCEN_DIR/acked.all")
	n_unacked=$(LC_ALL=C comm -23 "$SCEN_DIR/stored" "$SCEN_DIR/acked.all" | wc -l)
	d_sec=$(awk -v d="$t_destroy0" 'BEGIN { printf "%.6f", d / 1000 }')
	n_pre=$(rsql "$C" "SELECT count(*) FROM events WHERE tenant_id = '$T_restore' AND received_at < to_timestamp($d_sec)")
	t_last=$(rsql "$C" "SELECT coalesce((extract(epoch FROM max(received_at)) * 1000)::bigint, 0) FROM events WHERE tenant_id = '$T_restore' AND received_at < to_timestamp($d_sec)")
	rpo=$((t_destroy - t_last))
	bound=$(((RESTORE_ARCHIVE_TIMEOUT + RESTORE_MARGIN) * 1000))
	lost_first=$(sort -k2,2n "$SCEN_DIR/lost" | head -n 1 | cut -d' ' -f2)
	# The last moment the WAL written so far lay in archived segments.
	t_cov=$(awk -v w="$last_wal" '($2 "") <= (w "") && $1 > t { t = $1 } END { printf "%.0f\n", t }' "$SCEN_DIR/wal.samples")
	lost_cov=$(awk -v c="$t_cov" '$2 < c' "$SCEN_DIR/lost" | wc -l)
	gap=$(awk -v c="$((t_last - 5))" '$2 < c' "$SCEN_DIR/lost" | wc -l)

	echo "  figures restore: acknowledged before the destruction $n_acked, present after the restore $n_present, lost $n_lost" \
		"(acknowledged $(ms_to_s $((t_destroy - ${lost_first:-$t_destroy}))) s to 0 s before it); stored in all $n_stored," \
		"of them without a 201 $n_unacked; acknowledged in all $n_acked_all"
	echo "  figures restore: recovery point $(ms_to_s "$rpo") s: the last event present was received at $(ms_clock "$t_last")," \
		"the database destroyed at $(ms_clock "$t_destroy"); last transaction replayed ${xact:-none};" \
		"bound archive_timeout ${RESTORE_ARCHIVE_TIMEOUT} s + ${RESTORE_MARGIN} s"
	echo "  figures restore: the restore (pg_verifybackup, copy, $n_files WAL files from the archive replayed, promotion) took $(ms_to_s $((t_restored - t_r0))) s;" \
		"writes were refused for $(ms_to_s $((t_ok - t_destroy0))) s"
	echo "  figures restore: transaction ids: the lost cluster had reached ${xid_lost:-?} (its last sample), the restored one starts at ${xid_restored:-?}:" \
		"$(( ${xid_lost:-0} - ${xid_restored:-0} )) ids are handed out a second time; a feed cursor taken at the end of the feed before the destruction" \
		"is answered $s_feed just after the restore ($(jq -r '.detail // empty' "$SCEN_DIR/feed.after" 2>/dev/null | head -c 60))"
	check "the recovery point $(ms_to_s "$rpo") s is within archive_timeout + margin ($(ms_to_s "$bound") s)" \
		eval '[ "$t_last" -gt 0 ] && [ "$rpo" -le "$bound" ]'
	check "every event acknowledged before the WAL it was in was archived ($(ms_clock "$t_cov"), $(awk -v c="$t_cov" '$2 < c' "$SCEN_DIR/acked.pre" | wc -l) events) is present ($lost_cov missing)" \
		eval '[ "$t_cov" -gt 0 ] && [ "$lost_cov" = 0 ]'
	check "no gap: every event acknowledged before the last one present was received is present ($gap missing)" [ "$gap" = 0 ]
	check "nothing stored that was not sent ($n_alien)" [ "$n_alien" = 0 ]
	present_id=$(LC_ALL=C comm -12 "$SCEN_DIR/acked.all" "$SCEN_DIR/stored" | head -n 1)
	lost_id=$(head -n 1 "$SCEN_DIR/lost" | cut -d' ' -f1)
	s_p=$(http_status "http://127.0.0.1:$P/v1/events/$present_id" -H "Authorization: Bearer $K_restore")
	s_l=$( [ -z "$lost_id" ] && echo none || http_status "http://127.0.0.1:$P/v1/events/$lost_id" -H "Authorization: Bearer $K_restore")
	check "reads: GET /v1/events/{id} of a present event $s_p, of a lost one $s_l (404: the client learns it is gone)" \
		eval '[ "$s_p" = 200 ] && { [ "$s_l" = none ] || [ "$s_l" = 404 ]; }'

	# Usage: the restored counters and outbox are consistent with the
	# restored events; what was billed of the lost ones stays billed.
	counter=$(rsql "$C" "SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '$T_restore'")
	check "the restored usage counter ($counter) = events stored ($n_stored)" [ "$counter" = "$n_stored" ]
	if wait_until "${DRAIN_SECONDS:-90}" outbox_drained "$C"; then ok "$C's usage outbox drained"; else bad "$C's usage outbox did not drain in ${DRAIN_SECONDS:-90} s"; fi
	billed=$(billed "$T_restore") || billed=unknown
	case "$billed" in '' | *[!0-9]*) billed=unknown extra=unknown ;; *) extra=$((billed - n_stored)) ;; esac
	check "billed at the control plane ($billed) >= stored ($n_stored): nothing restored goes unbilled; $extra billed events are not in the trail (lost, or counted again)" \
		eval '[ "$billed" != unknown ] && [ "$billed" -ge "$n_stored" ]'

	# The tenant's log: continued from the restored head; a checkpoint saved
	# before the destruction verifies iff it covers recovered events only.
	cps_size() { curl -s --max-time 5 -H "Authorization: Bearer $K_restore" -H 'Accept: application/json' \
		"http://127.0.0.1:$P/v1/checkpoints/latest" | jq -r '.tree_size // 0' 2>/dev/null || echo 0; }
	wait_until 20 eval '[ "$(cps_size)" = "$n_stored" ]' || true
	check "the log is appended again: its latest checkpoint covers every stored event ($(cps_size) = $n_stored)" \
		[ "$(cps_size)" = "$n_stored" ]
	curl -fsS --max-time 30 -H "Authorization: Bearer $K_restore" "http://127.0.0.1:$P/v1/events/export?format=ndjson" > "$SCEN_DIR/export.ndjson" || true
	v_rc=0
	"$BIN/celltrail-verify" --jwks "$SCEN_DIR/jwks.json" --checkpoints "$SCEN_DIR/saved.cps" "$SCEN_DIR/export.ndjson" > "$SCEN_DIR/verify.out" 2>&1 || v_rc=$?
	v_first=$(grep -m 1 '^FAIL' "$SCEN_DIR/verify.out" || head -n 1 "$SCEN_DIR/verify.out")
	if [ "$s_cp" -gt "$n_pre" ]; then
		check "a checkpoint saved $(ms_to_s $((t_destroy0 - t_cp))) s before the destruction ($s_cp leaves) covers $((s_cp - n_pre)) lost event(s): celltrail-verify refuses the trail after the restore (exit $v_rc: $v_first)" \
			[ "$v_rc" = 1 ]
	else
		check "a checkpoint saved before the destruction ($s_cp leaves) covers recovered events only ($n_pre): celltrail-verify accepts the trail (exit $v_rc: $v_first)" \
			eval '[ "$s_cp" -gt 0 ] && [ "$v_rc" = 0 ]'
	fi
	SCEN_STORED=$n_stored SCEN_BILLED=$billed
	finish
}
