/* SQL of the events feed (migration 0005): a page of a tenant's events in
 * commit order, and which waiting readers have events ready. */
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
	 * snapshot: a row below the horizon is in it if it was ever committed. */
	st = db_exec(
		c, &r,
		/* A tenant moved in has an offset (migration 0009): its rows
		 * copied from another cell keep that cell's positions. */
		"WITH h AS MATERIALIZED (SELECT move_xid_add(pg_snapshot_xmin(pg_current_snapshot()),"
		"   coalesce((SELECT off FROM tenant_feed_offsets WHERE tenant_id = $1::uuid), 0)) AS x)"
		" SELECT h.x::text, p.tx_id::text, p.seq, p.body"
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
	if (PQgetisnull(r, 0, 1))
		rows = 0; /* the LEFT JOIN's one row of nothing */
	pg->more = rows > limit;
	pg->n = pg->more ? limit : rows;
	for (int i = 0; i < pg->n; i++) {
		if (i)
			buf_append(out, ",", 1);
		buf_append(out, PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3));
	}
	if (pg->n) {
		pg->last_tx = strtoull(PQgetvalue(r, pg->n - 1, 1), NULL, 10);
		pg->last_seq = strtoll(PQgetvalue(r, pg->n - 1, 2), NULL, 10);
	}
	PQclear(r);
	return out->failed ? DB_ERROR : DB_OK;
}

enum db_status dp_db_feed_ready(struct db_conn *c, const char *tenants, const char *txs,
                                const char *seqs, dp_feed_ready_fn fn, void *ctx)
{
	const char *p[3] = { tenants, txs, seqs };
	PGresult *r;
	enum db_status st = db_exec(c, NULL, "SET LOCAL enable_bitmapscan = off", 0, NULL);
	if (st != DB_OK)
		return st;
	if ((st = db_exec(c, NULL, "SET LOCAL enable_seqscan = off", 0, NULL)) != DB_OK)
		return st;
	/* One probe of the feed's index per reader: its first row after its
	 * position, if that row can be handed out. */
	st = db_exec(
		c, &r,
		"WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x)"
		" SELECT w.k - 1 FROM h, unnest($1::uuid[], $2::xid8[], $3::bigint[]) WITH ORDINALITY AS w(t, tx, seq, k)"
		"  LEFT JOIN tenant_feed_offsets o ON o.tenant_id = w.t"
		"  WHERE EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = w.t"
		"                   AND (e.tx_id, e.seq) > (w.tx, w.seq)"
		"                   AND e.tx_id < move_xid_add(h.x, coalesce(o.off, 0)))",
		3, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, strtol(PQgetvalue(r, i, 0), NULL, 10));
	PQclear(r);
	return DB_OK;
}
