/* SQL of tenant moves (migration 0009): the source's pages, fence, digest
 * and records; the target's page insert, progress and records. Pages are
 * built and parsed by PostgreSQL (json_agg, json_to_recordset): one
 * statement per page on either side, nothing decoded row by row here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

/* The tenant's feed horizon: the snapshot's xmin plus its offset. */
#define HORIZON(t)                                                                          \
	"move_xid_add(pg_snapshot_xmin(pg_current_snapshot()),"                                  \
	" coalesce((SELECT off FROM tenant_feed_offsets WHERE tenant_id = " t "), 0))"

static void pos_params(char tx[24], char seq[24], const struct dp_move_pos *p)
{
	snprintf(tx, 24, "%" PRIu64, p->tx);
	snprintf(seq, 24, "%" PRId64, p->seq);
}

static void pos_read(struct dp_move_pos *p, const char *tx, const char *seq)
{
	p->tx = strtoull(tx, NULL, 10);
	p->seq = strtoll(seq, NULL, 10);
}

enum db_status dp_db_move_page(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                               int limit, struct buf *rows, struct dp_move_page *pg)
{
	char tx[24], seq[24], lim[16], bytes[24];
	pos_params(tx, seq, after);
	snprintf(lim, sizeof lim, "%d", limit);
	snprintf(bytes, sizeof bytes, "%ld", (long)DP_MOVE_PAGE_BYTES);
	const char *p[5] = { tenant, tx, seq, lim, bytes };
	PGresult *r;
	enum db_status st;

	/* The feed's keyset, walked in index order (see db_feed.c). */
	if ((st = db_exec(c, NULL, "SET LOCAL enable_bitmapscan = off", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL, "SET LOCAL enable_seqscan = off", 0, NULL)) != DB_OK)
		return st;
	/* One statement: the horizon and the rows come from one snapshot. A
	 * page ends at `limit` rows or once its bodies, twice over (a row's
	 * filter keys come from its body) and 512 bytes a row, would pass $5
	 * bytes, whichever comes first (always one row at least), so that the
	 * page stays within the target's body limit whatever the events. */
	st = db_exec(
		c, &r,
		"WITH h AS MATERIALIZED (SELECT " HORIZON("$1::uuid") " AS x),"
		" p AS MATERIALIZED (SELECT e.*, row_number() OVER w AS rn,"
		"          sum(2 * octet_length(e.body::text) + 512) OVER w AS cum"
		"   FROM events e, h WHERE e.tenant_id = $1::uuid AND (e.tx_id, e.seq) > ($2::xid8, $3::bigint)"
		"    AND e.tx_id < h.x WINDOW w AS (ORDER BY e.tx_id, e.seq) ORDER BY e.tx_id, e.seq LIMIT $4::int + 1),"
		" k AS MATERIALIZED (SELECT count(*) AS k FROM p WHERE rn <= $4::int AND (rn = 1 OR cum <= $5::bigint))"
		" SELECT (SELECT x::text FROM h), (SELECT count(*) FROM p), (SELECT k FROM k),"
		"  (SELECT json_agg(json_build_object('id', id, 'tx_id', tx_id::text, 'seq', seq,"
		"     'occurred_at_us', " US("occurred_at") ", 'received_at_us', " US("received_at") ","
		"     'action', action, 'actor_id', actor_id, 'target_ids', target_ids,"
		"     'content_sha256', encode(content_sha256, 'hex'), 'body', body, 'keys', keys) ORDER BY rn)"
		"     FROM p WHERE rn <= (SELECT k FROM k))::text,"
		"  (SELECT tx_id::text FROM p WHERE rn = (SELECT k FROM k)),"
		"  (SELECT seq FROM p WHERE rn = (SELECT k FROM k))",
		5, p);
	if (st != DB_OK)
		return st;
	memset(pg, 0, sizeof *pg);
	pg->horizon = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	long n = strtol(PQgetvalue(r, 0, 1), NULL, 10), k = strtol(PQgetvalue(r, 0, 2), NULL, 10);
	pg->more = n > k;
	pg->n = (int)k;
	pg->next = *after;
	if (pg->n) {
		buf_append(rows, PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3));
		pos_read(&pg->next, PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5));
	} else {
		buf_append(rows, "[]", 2);
	}
	PQclear(r);
	return rows->failed ? DB_ERROR : DB_OK;
}

enum db_status dp_db_move_fence(struct db_conn *c, const char *tenant, const char *move,
                                char fence_tx[24])
{
	const char *p[2] = { tenant, move };
	PGresult *r;
	enum db_status st;

	/* The usage rows every ingest of the tenant upserts (last, this and
	 * next month: a writer's clock may differ from the database's): held,
	 * the fence waits for the ingests in flight, and every later one
	 * waits for the fence and then sees it. */
	st = db_exec(c, NULL,
	             "INSERT INTO usage_counters AS u (tenant_id, period)"
	             " SELECT $1::uuid, (date_trunc('month', now() AT TIME ZONE 'UTC') + m * interval '1 month')::date"
	             "   FROM generate_series(-1, 1) AS m ORDER BY 2"
	             " ON CONFLICT (tenant_id, period) DO UPDATE SET events = u.events",
	             1, p);
	if (st != DB_OK)
		return st;
	/* Every ingest that stored rows of the tenant ended before the rows
	 * were ours, so its id is below this statement's snapshot's xmax
	 * (not this transaction's own id, which a write before the wait may
	 * have taken earlier): fence_tx = xmax - 1 bounds them, and once the
	 * feed's horizon is above it, every one of them is in the feed. */
	st = db_exec(c, &r,
	             "WITH i AS (INSERT INTO tenant_fences (tenant_id, move_id, fence_tx)"
	             "  VALUES ($1::uuid, $2::uuid, move_xid_add(pg_snapshot_xmax(pg_current_snapshot()),"
	             "          coalesce((SELECT off FROM tenant_feed_offsets WHERE tenant_id = $1::uuid), 0) - 1))"
	             "  ON CONFLICT (tenant_id) DO NOTHING RETURNING fence_tx, move_id)"
	             " SELECT fence_tx::text, move_id::text FROM i"
	             " UNION ALL SELECT fence_tx::text, move_id::text FROM tenant_fences"
	             "  WHERE tenant_id = $1::uuid AND NOT EXISTS (SELECT 1 FROM i)",
	             2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return DB_ERROR;
	}
	snprintf(fence_tx, 24, "%s", PQgetvalue(r, 0, 0));
	st = strcmp(PQgetvalue(r, 0, 1), move) ? DB_CONFLICT : DB_OK;
	PQclear(r);
	return st;
}

enum db_status dp_db_move_unfence(struct db_conn *c, const char *tenant, const char *move)
{
	const char *p[2] = { tenant, move };
	return db_exec(c, NULL, "DELETE FROM tenant_fences WHERE tenant_id = $1::uuid AND move_id = $2::uuid",
	               2, p);
}

enum db_status dp_db_fenced(struct db_conn *c, const char *tenants, dp_fenced_fn fn, void *ctx)
{
	const char *p[1] = { tenants };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT tenant_id::text FROM tenant_fences"
	                            " WHERE tenant_id = ANY($1::uuid[])",
	                            1, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_move_digest(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                                 const struct dp_move_pos *upto, int64_t *events, char digest[48])
{
	char tx[24], seq[24], utx[24], useq[24], lim[16], sum[48] = "0";
	pos_params(utx, useq, upto ? upto : after);
	snprintf(lim, sizeof lim, "%d", DP_MOVE_DIGEST_CHUNK);
	struct dp_move_pos at = *after;
	*events = 0;
	/* Range after range in the feed's order, each from where the last
	 * ended; the running sum is a numeric the database adds to. */
	for (;;) {
		pos_params(tx, seq, &at);
		const char *p[7] = { tenant, tx, seq, upto ? utx : NULL, upto ? useq : NULL, lim, sum };
		PGresult *r;
		enum db_status st = db_exec(
			c, &r,
			"WITH r AS MATERIALIZED (SELECT tx_id, seq, move_row_hash(id, content_sha256, body) AS h FROM events"
			"  WHERE tenant_id = $1::uuid AND (tx_id, seq) > ($2::xid8, $3::bigint)"
			"    AND ($4::xid8 IS NULL OR (tx_id, seq) <= ($4::xid8, $5::bigint))"
			"  ORDER BY tx_id, seq LIMIT $6::int),"
			" l AS (SELECT tx_id, seq FROM r ORDER BY tx_id DESC, seq DESC LIMIT 1)"
			" SELECT (SELECT count(*) FROM r), ((SELECT coalesce(sum(h), 0) FROM r) + $7::numeric)::text,"
			"        (SELECT tx_id::text FROM l), (SELECT seq FROM l)",
			7, p);
		if (st != DB_OK)
			return st;
		int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		*events += n;
		snprintf(sum, sizeof sum, "%s", PQgetvalue(r, 0, 1));
		if (n)
			pos_read(&at, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
		PQclear(r);
		if (n < DP_MOVE_DIGEST_CHUNK)
			break;
	}
	snprintf(digest, 48, "%s", sum);
	return DB_OK;
}

enum db_status dp_db_move_count(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                                const struct dp_move_pos *upto, int64_t *events)
{
	char tx[24], seq[24], utx[24], useq[24];
	pos_params(tx, seq, after);
	if (upto)
		pos_params(utx, useq, upto);
	const char *p[5] = { tenant, tx, seq, upto ? utx : NULL, upto ? useq : NULL };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT count(*) FROM events"
	                            " WHERE tenant_id = $1::uuid AND (tx_id, seq) > ($2::xid8, $3::bigint)"
	                            "   AND ($4::xid8 IS NULL OR (tx_id, seq) <= ($4::xid8, $5::bigint))",
	                            5, p);
	if (st != DB_OK)
		return st;
	*events = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_move_records_get(struct db_conn *c, const char *tenant, int64_t since_us,
                                      struct buf *out)
{
	char since[24], safe[24];
	snprintf(since, sizeof since, "%" PRId64, since_us);
	const char *p[3] = { tenant, since, safe };
	PGresult *r;
	/* First, before the records' snapshot: a record is created (created_at
	 * = now(), its transaction's start) and completed in one transaction,
	 * so one created before the oldest transaction running now has
	 * committed, and is in the next statement's snapshot, or never will.
	 * The second of margin covers a transaction that took its start time
	 * but has not published it yet. Autovacuum writes no record
	 * (and its long runs would hold this back). A session this
	 * role may not see (another role's) hides its start: then the last
	 * two minutes. */
	enum db_status st = db_exec(
		c, &r,
		"SELECT (extract(epoch FROM CASE WHEN bool_or(query = '<insufficient privilege>')"
		"                                THEN statement_timestamp() - interval '120 seconds'"
		"                                ELSE least(statement_timestamp(), min(xact_start)) - interval '1 second'"
		"                           END) * 1000000)::bigint"
		"  FROM pg_stat_activity"
		" WHERE datname = current_database() AND backend_type IS DISTINCT FROM 'autovacuum worker'",
		0, NULL);
	if (st != DB_OK)
		return st;
	snprintf(safe, sizeof safe, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!*safe)
		snprintf(safe, sizeof safe, "%" PRId64, since_us);
	st = db_exec(
		c, &r,
		"SELECT json_build_object("
		"  'idempotency', coalesce((SELECT json_agg(json_build_object('key', key,"
		"     'request_sha256', encode(request_sha256, 'hex'), 'status', status, 'location', location,"
		"     'body', body, 'created_at_us', " US("created_at") ") ORDER BY key)"
		"     FROM idempotency_keys WHERE tenant_id = $1::uuid AND status <> 0"
		"      AND created_at >= " TS("$2") "), '[]'::json),"
		"  'usage', coalesce((SELECT json_agg(json_build_object('period', to_char(period, 'YYYY-MM'),"
		"     'events', events) ORDER BY period)"
		"     FROM usage_counters WHERE tenant_id = $1::uuid AND events > 0), '[]'::json),"
		"  'safe_since_us', greatest($2::bigint, $3::bigint))::text",
		3, p);
	if (st != DB_OK)
		return st;
	buf_append(out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	PQclear(r);
	return out->failed ? DB_ERROR : DB_OK;
}

enum db_status dp_db_move_insert(struct db_conn *c, const char *move, const char *tenant,
                                 const char *rows_json, const struct dp_move_pos *next, int careful,
                                 struct dp_move_progress *pr, int64_t *inserted)
{
	char tx[24], seq[24];
	pos_params(tx, seq, next);
	const char *p[5] = { tenant, rows_json, move, tx, seq };
	PGresult *r;
	/* The rows keep the source's tx_id and seq (feed positions) and their
	 * keys (not derived again). The rows' text is parsed twice (the cast,
	 * the rows): at 5000 rows each pass is tens of milliseconds, so the
	 * caller cuts it out of the page. The position only moves forward.
	 * Pages come once each in order, so the rows are inserted without a
	 * look for ids already here (a lookup per row, or ON CONFLICT's
	 * speculative insertion, costs a seventh of the statement); a page
	 * posted again (its answer lost) or at once by a mover that was
	 * replaced then fails on the key, and the caller runs the statement
	 * `careful`: an id already here is skipped, so such a page inserts
	 * nothing and adds nothing to the digest. */
	static const char *const sql[2] = {
#define MOVE_INSERT(on_conflict)                                                                      \
		"WITH ins AS (INSERT INTO events AS e (tenant_id, id, seq, occurred_at, received_at, action, actor_id," \
		"          target_ids, content_sha256, body, keys, tx_id) OVERRIDING SYSTEM VALUE"             \
		"   SELECT $1::uuid, id, seq, " TS("occurred_at_us") ", " TS("received_at_us") ", action, actor_id," \
		"          coalesce(target_ids, '{}'), decode(content_sha256, 'hex'), body, keys, tx_id::xid8"  \
		"     FROM json_to_recordset($2::json) AS x(id text, tx_id text, seq bigint, occurred_at_us bigint," \
		"          received_at_us bigint, action text, actor_id text, target_ids text[], content_sha256 text," \
		"          body json, keys text[])"                                                             \
		on_conflict " RETURNING e.id, e.content_sha256, e.body),"                                      \
		" n AS (SELECT count(*) AS n, coalesce(sum(move_row_hash(id, content_sha256, body)), 0) AS d FROM ins)," \
		" up AS (INSERT INTO move_progress AS m (move_id, tenant_id, next_tx, next_seq, events, digest)" \
		"   SELECT $3::uuid, $1::uuid, $4::xid8, $5::bigint, n.n, n.d FROM n"                          \
		"   ON CONFLICT (move_id) DO UPDATE SET"                                                        \
		"     next_tx = CASE WHEN (excluded.next_tx, excluded.next_seq) > (m.next_tx, m.next_seq)"      \
		"                    THEN excluded.next_tx ELSE m.next_tx END,"                                 \
		"     next_seq = CASE WHEN (excluded.next_tx, excluded.next_seq) > (m.next_tx, m.next_seq)"     \
		"                     THEN excluded.next_seq ELSE m.next_seq END,"                              \
		"     events = m.events + excluded.events, digest = m.digest + excluded.digest, updated_at = now()" \
		"   RETURNING m.next_tx, m.next_seq, m.events, m.digest)"                                       \
		" SELECT up.next_tx::text, up.next_seq, up.events, up.digest::text, n.n FROM up, n"
		MOVE_INSERT(""),
		MOVE_INSERT("   ON CONFLICT DO NOTHING"),
#undef MOVE_INSERT
	};
	enum db_status st = db_exec(c, &r, sql[careful ? 1 : 0], 5, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return DB_ERROR;
	}
	pos_read(&pr->next, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	pr->events = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	snprintf(pr->digest, sizeof pr->digest, "%s", PQgetvalue(r, 0, 3));
	*inserted = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_move_progress(struct db_conn *c, const char *move, const char *tenant,
                                   struct dp_move_progress *pr)
{
	const char *p[2] = { move, tenant };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"SELECT coalesce(m.next_tx::text, '0'), coalesce(m.next_seq, 0), coalesce(m.events, 0),"
		"       coalesce(m.digest, 0)::text,"
		"       (SELECT count(*) FROM events WHERE tenant_id = $2::uuid)"
		"  FROM (SELECT 1) AS one LEFT JOIN move_progress m ON m.move_id = $1::uuid AND m.tenant_id = $2::uuid",
		2, p);
	if (st != DB_OK)
		return st;
	pos_read(&pr->next, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	pr->events = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	snprintf(pr->digest, sizeof pr->digest, "%s", PQgetvalue(r, 0, 3));
	pr->stored = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_move_records_put(struct db_conn *c, const char *tenant, const char *records,
                                      long *idem, long *usage, char feed_offset[24])
{
	const char *p[2] = { tenant, records };
	PGresult *r;
	enum db_status st;

	st = db_exec(c, &r,
	             "SELECT json_typeof($1::json) = 'object' AND json_typeof($1::json->'idempotency') = 'array'"
	             "   AND json_typeof($1::json->'usage') = 'array'",
	             1, p + 1);
	if (st != DB_OK)
		return st;
	int shaped = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!shaped)
		return DB_INVALID;
	/* Completed records only; one already here (a retried post) stays. */
	st = db_exec(
		c, &r,
		"INSERT INTO idempotency_keys (tenant_id, key, request_sha256, status, location, body, created_at)"
		" SELECT $1::uuid, x.key, decode(x.request_sha256, 'hex'), x.status, x.location, x.body,"
		"        " TS("x.created_at_us")
		"   FROM json_to_recordset($2::json->'idempotency') AS x(key text, request_sha256 text, status int,"
		"        location text, body text, created_at_us bigint)"
		"  WHERE x.status <> 0"
		" ON CONFLICT (tenant_id, key) DO NOTHING",
		2, p);
	if (st != DB_OK)
		return st;
	*idem = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	/* The source reports what it stored before the cutover: here the
	 * copied usage counts as reported, and only this cell's own events
	 * (none before the flip) are left to report. Posted again, the same. */
	st = db_exec(
		c, &r,
		"INSERT INTO usage_counters AS u (tenant_id, period, events, reported, updated_at)"
		" SELECT $1::uuid, (x.period || '-01')::date, x.events, x.events, clock_timestamp()"
		"   FROM json_to_recordset($2::json->'usage') AS x(period text, events bigint)"
		"  ORDER BY 2"
		" ON CONFLICT (tenant_id, period) DO UPDATE SET"
		"   events = u.events - u.reported + excluded.events, reported = excluded.events,"
		"   updated_at = excluded.updated_at",
		2, p);
	if (st != DB_OK)
		return st;
	*usage = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	/* Later rows of the tenant stored here sort after every copied one. */
	st = db_exec(
		c, &r,
		"INSERT INTO tenant_feed_offsets AS o (tenant_id, off)"
		" SELECT $1::uuid, greatest(0, coalesce((SELECT max(tx_id)::text::numeric + 1 FROM events"
		"                                         WHERE tenant_id = $1::uuid), 0)"
		"                              - pg_current_xact_id()::text::numeric)::bigint"
		" ON CONFLICT (tenant_id) DO UPDATE SET off = greatest(o.off, excluded.off)"
		" RETURNING off::text",
		1, p);
	if (st != DB_OK)
		return st;
	snprintf(feed_offset, 24, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	/* And the seq identity past every copied seq (the listing's tie-break). */
	return db_exec(c, NULL,
	               "SELECT setval(pg_get_serial_sequence('events', 'seq'), s.m)"
	               "  FROM (SELECT max(seq) AS m FROM events WHERE tenant_id = $1::uuid) s"
	               " WHERE s.m > coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0)",
	               1, p);
}

enum db_status dp_db_move_unreported(struct db_conn *c, const char *tenant, int64_t *events)
{
	const char *p[1] = { tenant };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT coalesce(sum(events - reported), 0) FROM usage_counters"
	                            " WHERE tenant_id = $1::uuid",
	                            1, p);
	if (st != DB_OK)
		return st;
	*events = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return DB_OK;
}
