/* SQL of log streams' delivery (migration region/0011): each stream's
 * cursor on its tenant's feed and the batch it has in flight. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

/* The tenant $T's feed horizon, as the feed reads it (db_feed.c): every
 * row below it is final. A tenant moved in has an offset (migration 0009). */
#define HORIZON(T)                                                                                  \
	"WITH h AS MATERIALIZED (SELECT move_xid_add(pg_snapshot_xmin(pg_current_snapshot()),"         \
	"   coalesce((SELECT off FROM tenant_feed_offsets WHERE tenant_id = " T "::uuid), 0)) AS x)"

/* The position just before the tenant's first final event received at or
 * after $S (unix s), or just below the horizon: columns px, ps of p. */
#define SINCE_POS(T, S)                                                                             \
	HORIZON(T) ","                                                                                  \
	" f AS (SELECT e.tx_id, e.seq FROM events e, h WHERE e.tenant_id = " T "::uuid"                 \
	"        AND e.received_at >= to_timestamp(" S "::bigint) AND e.tx_id < h.x"                     \
	"      ORDER BY e.tx_id, e.seq LIMIT 1),"                                                         \
	" p AS (SELECT coalesce((SELECT tx_id FROM f), h.x) AS px,"                                     \
	"              coalesce((SELECT seq - 1 FROM f), -1) AS ps FROM h)"

static const char lock_sql[] = "SELECT pg_try_advisory_lock(hashtextextended('celltrail-stream:' || $1, 0))";

enum db_status dp_db_stream_lock(struct db_conn *c, const char *id, int *got)
{
	PGresult *r;
	const char *p[1] = { id };
	enum db_status st = db_exec(c, &r, lock_sql, 1, p);
	if (st != DB_OK)
		return st;
	*got = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_stream_unlock(struct db_conn *c, const char *id)
{
	const char *p[1] = { id };
	return db_exec(c, NULL, "SELECT pg_advisory_unlock(hashtextextended('celltrail-stream:' || $1, 0))", 1, p);
}

static void i64(char *b, size_t n, int64_t v)
{
	snprintf(b, n, "%" PRId64, v);
}

enum db_status dp_db_stream_cursor(struct db_conn *c, const char *id, const char *tenant, int64_t since,
                                   int64_t resume, int64_t replay, struct dp_stream_cursor *out)
{
	char s[24], rs[24], rp[24];
	i64(s, sizeof s, since);
	i64(rs, sizeof rs, resume);
	i64(rp, sizeof rp, replay);
	const char *p[5] = { id, tenant, s, rs, rp };
	PGresult *r;
	enum db_status st = db_exec(c, NULL,
	                            SINCE_POS("$2", "$3")
	                            " INSERT INTO stream_cursors (stream_id, tenant_id, after_tx, after_seq,"
	                            "   resume_applied, replay_applied)"
	                            " SELECT $1::uuid, $2::uuid, p.px, p.ps, $4::bigint, $5::bigint FROM p"
	                            " WHERE NOT EXISTS (SELECT 1 FROM stream_cursors WHERE stream_id = $1::uuid)"
	                            " ON CONFLICT (stream_id) DO NOTHING",
	                            5, p);
	if (st != DB_OK)
		return st;
	st = db_exec(c, &r,
	             "SELECT after_tx::text, after_seq, batch_no, batch_to_tx IS NOT NULL, coalesce(batch_to_tx::text, '0'),"
	             "  coalesce(batch_to_seq, 0), coalesce(batch_events, 0),"
	             "  coalesce(floor(extract(epoch FROM batch_made_at))::bigint, 0), attempts,"
	             "  greatest(0, coalesce(ceil(extract(epoch FROM next_attempt_at - clock_timestamp()) * 1000)::bigint, 0)),"
	             "  failing_since IS NOT NULL, status, resume_applied, replay_applied"
	             " FROM stream_cursors WHERE stream_id = $1::uuid",
	             1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	memset(out, 0, sizeof *out);
	out->after_tx = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	out->after_seq = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->batch_no = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	out->in_flight = !strcmp(PQgetvalue(r, 0, 3), "t");
	out->batch_to_tx = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
	out->batch_to_seq = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
	out->batch_events = (int)strtol(PQgetvalue(r, 0, 6), NULL, 10);
	out->batch_made_at = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	out->attempts = (int)strtol(PQgetvalue(r, 0, 8), NULL, 10);
	out->retry_in_ms = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
	out->failing = !strcmp(PQgetvalue(r, 0, 10), "t");
	snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, 0, 11));
	out->resume_applied = strtoll(PQgetvalue(r, 0, 12), NULL, 10);
	out->replay_applied = strtoll(PQgetvalue(r, 0, 13), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_stream_rewind(struct db_conn *c, const char *id, const char *tenant, int64_t since,
                                   int64_t replay)
{
	char s[24], rp[24];
	i64(s, sizeof s, since);
	i64(rp, sizeof rp, replay);
	const char *p[4] = { id, tenant, s, rp };
	return db_exec(c, NULL,
	               SINCE_POS("$2", "$3")
	               " UPDATE stream_cursors SET after_tx = p.px, after_seq = p.ps, replay_applied = $4::bigint,"
	               "   updated_at = now()"
	               " FROM p WHERE stream_id = $1::uuid AND batch_to_tx IS NULL",
	               4, p);
}

enum db_status dp_db_stream_resume(struct db_conn *c, const char *id, int64_t resume)
{
	char rs[24];
	i64(rs, sizeof rs, resume);
	const char *p[2] = { id, rs };
	return db_exec(c, NULL,
	               "UPDATE stream_cursors SET resume_applied = $2::bigint, attempts = 0, next_attempt_at = NULL,"
	               "   failing_since = NULL,"
	               "   status = CASE WHEN status IN ('failed', 'retrying') THEN 'active' ELSE status END,"
	               "   updated_at = now()"
	               " WHERE stream_id = $1::uuid",
	               2, p);
}

enum db_status dp_db_stream_set_status(struct db_conn *c, const char *id, const char *status,
                                       const char *error)
{
	const char *p[3] = { id, status, error };
	return db_exec(c, NULL,
	               "UPDATE stream_cursors SET status = $2,"
	               "   last_error = CASE WHEN $3::text IS NULL THEN last_error ELSE $3 END,"
	               "   last_error_at = CASE WHEN $3::text IS NULL THEN last_error_at ELSE now() END,"
	               "   updated_at = now()"
	               " WHERE stream_id = $1::uuid"
	               "   AND (status <> $2 OR ($3::text IS NOT NULL AND $3 IS DISTINCT FROM last_error))",
	               3, p);
}

static enum db_status rows(PGresult *r, dp_stream_row_fn fn, void *ctx)
{
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, strtoull(PQgetvalue(r, i, 0), NULL, 10), strtoll(PQgetvalue(r, i, 1), NULL, 10),
		   PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2), strtoll(PQgetvalue(r, i, 3), NULL, 10));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_stream_next(struct db_conn *c, const char *tenant, uint64_t after_tx, int64_t after_seq,
                                 int limit, int64_t bytes, int overhead, int *available,
                                 dp_stream_row_fn fn, void *ctx)
{
	char tx[24], seq[24], lim[16], by[24], ov[16];
	snprintf(tx, sizeof tx, "%" PRIu64, after_tx);
	i64(seq, sizeof seq, after_seq);
	snprintf(lim, sizeof lim, "%d", limit);
	i64(by, sizeof by, bytes);
	snprintf(ov, sizeof ov, "%d", overhead);
	const char *p[6] = { tenant, tx, seq, lim, by, ov };
	PGresult *r;
	/* As the feed's read: the keyset walked in index order (db_feed.c). */
	enum db_status st = db_exec(c, NULL, "SET LOCAL enable_bitmapscan = off", 0, NULL);
	if (st != DB_OK || (st = db_exec(c, NULL, "SET LOCAL enable_seqscan = off", 0, NULL)) != DB_OK)
		return st;
	/* The byte bound is a running sum in feed order: the rows kept are a
	 * prefix, the first one always. The last ORDER BY names w's columns:
	 * a bare tx_id would be the output column, tx_id::text, whose order
	 * is not the feed's once transaction ids gain a digit (999, 1000). */
	st = db_exec(c, &r,
	             HORIZON("$1") ","
	             " q AS (SELECT e.tx_id, e.seq, e.body::text AS body, e.received_at FROM events e, h"
	             "        WHERE e.tenant_id = $1::uuid AND (e.tx_id, e.seq) > ($2::xid8, $3::bigint)"
	             "          AND e.tx_id < h.x ORDER BY e.tx_id, e.seq LIMIT $4::int),"
	             " w AS (SELECT q.*, row_number() OVER o AS rn,"
	             "         sum(octet_length(q.body) + $6::int) OVER o AS run, count(*) OVER () AS total FROM q"
	             "       WINDOW o AS (ORDER BY q.tx_id, q.seq))"
	             " SELECT tx_id::text, seq, body, floor(extract(epoch FROM received_at) * 1000000)::bigint, total"
	             "   FROM w WHERE rn = 1 OR run <= $5::bigint ORDER BY w.tx_id, w.seq",
	             6, p);
	if (st != DB_OK)
		return st;
	*available = PQntuples(r) ? (int)strtol(PQgetvalue(r, 0, 4), NULL, 10) : 0;
	return rows(r, fn, ctx);
}

enum db_status dp_db_stream_batch_rows(struct db_conn *c, const char *tenant, uint64_t after_tx,
                                       int64_t after_seq, uint64_t to_tx, int64_t to_seq, int limit,
                                       dp_stream_row_fn fn, void *ctx)
{
	char tx[24], seq[24], ttx[24], tseq[24], lim[16];
	snprintf(tx, sizeof tx, "%" PRIu64, after_tx);
	i64(seq, sizeof seq, after_seq);
	snprintf(ttx, sizeof ttx, "%" PRIu64, to_tx);
	i64(tseq, sizeof tseq, to_seq);
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[6] = { tenant, tx, seq, ttx, tseq, lim };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"SELECT e.tx_id::text, e.seq, e.body::text, floor(extract(epoch FROM e.received_at) * 1000000)::bigint"
		"  FROM events e WHERE e.tenant_id = $1::uuid AND (e.tx_id, e.seq) > ($2::xid8, $3::bigint)"
		"   AND (e.tx_id, e.seq) <= ($4::xid8, $5::bigint) ORDER BY e.tx_id, e.seq LIMIT $6::int",
		6, p);
	if (st != DB_OK)
		return st;
	return rows(r, fn, ctx);
}

enum db_status dp_db_stream_make_batch(struct db_conn *c, const char *id, const struct dp_stream_cursor *cur,
                                       uint64_t to_tx, int64_t to_seq, int n, int64_t *made_at)
{
	char atx[24], aseq[24], no[24], ttx[24], tseq[24], nn[16];
	snprintf(atx, sizeof atx, "%" PRIu64, cur->after_tx);
	i64(aseq, sizeof aseq, cur->after_seq);
	i64(no, sizeof no, cur->batch_no);
	snprintf(ttx, sizeof ttx, "%" PRIu64, to_tx);
	i64(tseq, sizeof tseq, to_seq);
	snprintf(nn, sizeof nn, "%d", n);
	const char *p[7] = { id, atx, aseq, no, ttx, tseq, nn };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"UPDATE stream_cursors SET batch_no = batch_no + 1, batch_to_tx = $5::xid8, batch_to_seq = $6::bigint,"
		"   batch_events = $7::int, batch_made_at = now(), attempts = 0, next_attempt_at = NULL, updated_at = now()"
		" WHERE stream_id = $1::uuid AND batch_to_tx IS NULL AND after_tx = $2::xid8"
		"   AND after_seq = $3::bigint AND batch_no = $4::bigint"
		" RETURNING floor(extract(epoch FROM batch_made_at))::bigint",
		7, p);
	if (st != DB_OK)
		return st;
	st = PQntuples(r) == 1 ? DB_OK : DB_NOT_FOUND;
	if (st == DB_OK)
		*made_at = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return st;
}

enum db_status dp_db_stream_delivered(struct db_conn *c, const char *id, int64_t no, int n)
{
	char b[24], nn[16];
	i64(b, sizeof b, no);
	snprintf(nn, sizeof nn, "%d", n);
	const char *p[3] = { id, b, nn };
	return db_exec(c, NULL,
	               "UPDATE stream_cursors SET after_tx = batch_to_tx, after_seq = batch_to_seq,"
	               "   batch_to_tx = NULL, batch_to_seq = NULL, batch_events = NULL, batch_made_at = NULL,"
	               "   attempts = 0, next_attempt_at = NULL, failing_since = NULL,"
	               "   status = CASE WHEN status IN ('retrying', 'failed') THEN 'active' ELSE status END,"
	               "   last_delivered_at = now(), delivered_events = delivered_events + $3::int, updated_at = now()"
	               " WHERE stream_id = $1::uuid AND batch_no = $2::bigint AND batch_to_tx IS NOT NULL",
	               3, p);
}

enum db_status dp_db_stream_failed(struct db_conn *c, const char *id, int64_t no, const char *error,
                                   int64_t retry_ms, int64_t budget_ms, char status[16])
{
	char b[24], rm[24], bm[24];
	i64(b, sizeof b, no);
	i64(rm, sizeof rm, retry_ms);
	i64(bm, sizeof bm, budget_ms);
	const char *p[5] = { id, b, error, rm, bm };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"UPDATE stream_cursors SET attempts = attempts + 1, failing_since = coalesce(failing_since, now()),"
		"   last_error = $3, last_error_at = now(),"
		"   next_attempt_at = clock_timestamp() + $4::bigint * interval '1 millisecond',"
		"   status = CASE WHEN now() - coalesce(failing_since, now()) >= $5::bigint * interval '1 millisecond'"
		"                 THEN 'failed' ELSE 'retrying' END,"
		"   updated_at = now()"
		" WHERE stream_id = $1::uuid AND batch_no = $2::bigint RETURNING status",
		5, p);
	if (st != DB_OK)
		return st;
	snprintf(status, 16, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "retrying");
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_stream_states(struct db_conn *c, const char *ids, dp_stream_state_fn fn, void *ctx)
{
	const char *p[1] = { ids };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"WITH x AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x)"
		" SELECT s.stream_id::text, s.status, s.delivered_events,"
		"   coalesce(floor(extract(epoch FROM s.last_delivered_at))::bigint, -1),"
		"   s.last_error, coalesce(floor(extract(epoch FROM s.last_error_at))::bigint, -1),"
		"   (SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.tenant_id = s.tenant_id"
		"       AND (e.tx_id, e.seq) > (s.after_tx, s.after_seq) AND e.tx_id < h.hx LIMIT 10000000) q),"
		"   coalesce((SELECT greatest(0, floor(extract(epoch FROM now() - e.received_at)))::bigint"
		"      FROM events e WHERE e.tenant_id = s.tenant_id AND (e.tx_id, e.seq) > (s.after_tx, s.after_seq)"
		"       AND e.tx_id < h.hx ORDER BY e.tx_id, e.seq LIMIT 1), 0)"
		" FROM x, stream_cursors s"
		" CROSS JOIN LATERAL (SELECT move_xid_add(x.x, coalesce((SELECT off FROM tenant_feed_offsets o"
		"                      WHERE o.tenant_id = s.tenant_id), 0)) AS hx) h"
		" WHERE s.stream_id = ANY($1::uuid[])",
		1, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++) {
		struct dp_stream_state s = {
			.id = PQgetvalue(r, i, 0),
			.status = PQgetvalue(r, i, 1),
			.delivered_events = strtoll(PQgetvalue(r, i, 2), NULL, 10),
			.last_delivered_at = strtoll(PQgetvalue(r, i, 3), NULL, 10),
			.last_error = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
			.last_error_at = strtoll(PQgetvalue(r, i, 5), NULL, 10),
			.lag_events = strtoll(PQgetvalue(r, i, 6), NULL, 10),
			.lag_seconds = strtoll(PQgetvalue(r, i, 7), NULL, 10),
		};
		fn(ctx, &s);
	}
	PQclear(r);
	return DB_OK;
}
