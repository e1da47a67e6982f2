/* SQL of the events feed: a page of a tenant's events in commit order, and
 * the LISTEN connection that hears of new ones (migration 0005). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

enum db_status dp_db_events_feed(struct db_conn *c, const char *tenant, uint64_t after_tx,
                                 int64_t after_seq, int limit, struct buf *out,
                                 struct dp_feed_page *pg)
{
	char tx[24], seq[24], lim[16];
	snprintf(tx, sizeof tx, "%" PRIu64, after_tx);
	snprintf(seq, sizeof seq, "%" PRId64, after_seq);
	snprintf(lim, sizeof lim, "%d", limit + 1); /* one more: whether more is ready */
	const char *p[4] = { tenant, tx, seq, lim };
	PGresult *r;
	enum db_status st;
	/* The keyset must be walked in index order, stopping after the page.
	 * A table filled faster than it is analyzed makes the planner think
	 * a tenant has a handful of rows and fetch all of them after the
	 * position to sort them (a bitmap scan): ruled out for this read. */
	st = db_exec(c, NULL, "SET LOCAL enable_bitmapscan = off", 0, NULL);
	if (st != DB_OK)
		return st;
	st = db_exec(c, NULL, "SET LOCAL enable_seqscan = off", 0, NULL);
	if (st != DB_OK)
		return st;
	/* One statement, so that the horizon and the rows come from the same
	 * snapshot: a row below the horizon is in it if it was ever committed.
	 * `last` is the tenant's highest position committed (one backward
	 * step of the index): at or above the horizon, committed rows wait,
	 * held back by an older transaction still open, whose end no
	 * notification will announce. */
	st = db_exec(
		c, &r,
		"WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),"
		" l AS MATERIALIZED (SELECT tx_id FROM events WHERE tenant_id = $1::uuid"
		"                     ORDER BY tx_id DESC, seq DESC LIMIT 1)"
		" SELECT h.x::text, coalesce((SELECT l.tx_id >= h.x FROM l), false),"
		"        p.tx_id::text, p.seq, p.body"
		"   FROM h LEFT JOIN LATERAL ("
		"     SELECT e.tx_id, e.seq, e.body::text AS body FROM events e"
		"      WHERE e.tenant_id = $1::uuid AND (e.tx_id, e.seq) > ($2::xid8, $3::bigint)"
		"        AND e.tx_id < h.x"
		"      ORDER BY e.tx_id, e.seq LIMIT $4::int) p ON true"
		"  ORDER BY p.tx_id, p.seq",
		4, p);
	if (st != DB_OK)
		return st;
	int rows = PQntuples(r);
	memset(pg, 0, sizeof *pg);
	if (rows < 1) {
		PQclear(r);
		return DB_ERROR; /* the horizon row is always there */
	}
	pg->horizon = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	pg->pending = PQgetvalue(r, 0, 1)[0] == 't';
	if (PQgetisnull(r, 0, 2))
		rows = 0; /* the LEFT JOIN's one row of nothing */
	pg->more = rows > limit;
	pg->n = pg->more ? limit : rows;
	for (int i = 0; i < pg->n; i++) {
		if (i)
			buf_append(out, ",", 1);
		buf_append(out, PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4));
	}
	if (pg->n) {
		pg->last_tx = strtoull(PQgetvalue(r, pg->n - 1, 2), NULL, 10);
		pg->last_seq = strtoll(PQgetvalue(r, pg->n - 1, 3), NULL, 10);
	}
	PQclear(r);
	return out->failed ? DB_ERROR : DB_OK;
}

PGconn *dp_db_feed_listen(const char *conninfo, PQnoticeProcessor notice, void *arg)
{
	PGconn *pg = PQconnectdb(conninfo);
	PQsetNoticeProcessor(pg, notice, arg);
	if (PQstatus(pg) == CONNECTION_OK) {
		PGresult *r = PQexec(pg, "LISTEN events_feed");
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
			return pg;
	}
	PQfinish(pg);
	return NULL;
}

int dp_db_feed_heard(PGconn *pg, char tenant[37])
{
	PGnotify *n;
	while ((n = PQnotifies(pg)) != NULL) {
		/* The payload of the trigger of 0005_event_feed.sql: a uuid. */
		int ok = strlen(n->extra) == 36;
		if (ok)
			memcpy(tenant, n->extra, 37);
		PQfreemem(n);
		if (ok)
			return 1;
	}
	return 0;
}
