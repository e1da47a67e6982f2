/* SQL of the tamper-evidence log (migration 0010): the head an append
 * locks, the events it reads, what it writes, and the sweep's probe. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

static int unhex(const char *s, size_t len, uint8_t *out, size_t cap)
{
	if (len % 2 || len / 2 > cap)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (int)(len / 2);
}

/* Columns tree_size, next_tx, next_seq, frontier (hex), root (hex). */
static int head_from(PGresult *r, int row, struct dp_log_head *h)
{
	int n;
	h->tree_size = strtoll(PQgetvalue(r, row, 0), NULL, 10);
	h->next_tx = strtoull(PQgetvalue(r, row, 1), NULL, 10);
	h->next_seq = strtoll(PQgetvalue(r, row, 2), NULL, 10);
	if ((n = unhex(PQgetvalue(r, row, 3), (size_t)PQgetlength(r, row, 3), h->frontier, sizeof h->frontier)) < 0)
		return -1;
	h->frontier_len = (size_t)n;
	return unhex(PQgetvalue(r, row, 4), (size_t)PQgetlength(r, row, 4), h->root, sizeof h->root) == 32 ? 0 : -1;
}

#define HEAD_COLS "tree_size, next_tx::text, next_seq, encode(frontier, 'hex'), encode(root_hash, 'hex')"

enum db_status dp_db_log_lock_head(struct db_conn *c, const char *tenant, struct dp_log_head *h)
{
	const char *p[1] = { tenant };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT " HEAD_COLS " FROM log_heads WHERE tenant_id = $1::uuid"
	                            " FOR UPDATE SKIP LOCKED",
	                            1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		/* None, or held by another transaction: a row this statement
		 * inserts is this transaction's (locked); a row that exists (or
		 * that another transaction is inserting) gives none, and then the
		 * head is someone else's to move. An empty tree's root is
		 * SHA-256 of nothing. A tenant moving in (its copy under way: a
		 * move's progress here, no feed offset yet, which the cutover
		 * writes) gets its head after the cutover: its copied history is
		 * then appended whole, not signed page by page as it arrives. */
		st = db_exec(c, &r,
		             "INSERT INTO log_heads (tenant_id, root_hash)"
		             " SELECT $1::uuid, sha256(''::bytea)"
		             "  WHERE EXISTS (SELECT 1 FROM events WHERE tenant_id = $1::uuid)"
		             "    AND NOT (EXISTS (SELECT 1 FROM move_progress WHERE tenant_id = $1::uuid)"
		             "             AND NOT EXISTS (SELECT 1 FROM tenant_feed_offsets WHERE tenant_id = $1::uuid))"
		             " ON CONFLICT (tenant_id) DO NOTHING RETURNING " HEAD_COLS,
		             1, p);
		if (st != DB_OK)
			return st;
		if (PQntuples(r) == 0) {
			PQclear(r);
			/* Busy, unless the tenant has no events (then no head). */
			st = db_exec(c, &r, "SELECT 1 FROM log_heads WHERE tenant_id = $1::uuid", 1, p);
			if (st != DB_OK)
				return st;
			st = PQntuples(r) ? DB_CONFLICT : DB_NOT_FOUND;
			PQclear(r);
			return st;
		}
	}
	st = head_from(r, 0, h) == 0 ? DB_OK : DB_ERROR;
	PQclear(r);
	return st;
}

enum db_status dp_db_log_rows(struct db_conn *c, const char *tenant, uint64_t after_tx, int64_t after_seq,
                              int limit, dp_log_row_fn fn, void *ctx, int *n)
{
	char tx[24], seq[24], lim[16];
	snprintf(tx, sizeof tx, "%" PRIu64, after_tx);
	snprintf(seq, sizeof seq, "%" PRId64, after_seq);
	snprintf(lim, sizeof lim, "%d", limit);
	const char *p[4] = { tenant, tx, seq, lim };
	PGresult *r;
	/* Index order, as the feed reads (db_feed.c): both settings in one
	 * round trip, for this transaction only. */
	enum db_status st = db_exec(c, NULL,
	                            "SELECT set_config('enable_bitmapscan', 'off', true),"
	                            "       set_config('enable_seqscan', 'off', true)",
	                            0, NULL);
	if (st != DB_OK)
		return st;
	/* The feed's horizon and order: a leaf is never followed by an event
	 * that commits before it in the feed. A tenant moved in has an offset
	 * (migration 0009). */
	st = db_exec(c, &r,
	             "WITH h AS MATERIALIZED (SELECT move_xid_add(pg_snapshot_xmin(pg_current_snapshot()),"
	             "   coalesce((SELECT off FROM tenant_feed_offsets WHERE tenant_id = $1::uuid), 0)) AS x)"
	             " SELECT e.id, e.body::text, e.tx_id::text, e.seq,"
	             "        " US("e.occurred_at") " FROM h, events e"
	             "  WHERE e.tenant_id = $1::uuid AND (e.tx_id, e.seq) > ($2::xid8, $3::bigint)"
	             "    AND e.tx_id < h.x"
	             "  ORDER BY e.tx_id, e.seq LIMIT $4::int",
	             4, p);
	if (st != DB_OK)
		return st;
	*n = PQntuples(r);
	for (int i = 0; i < *n; i++)
		fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
		   strtoull(PQgetvalue(r, i, 2), NULL, 10), strtoll(PQgetvalue(r, i, 3), NULL, 10),
		   strtoll(PQgetvalue(r, i, 4), NULL, 10));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_log_write(struct db_conn *c, const struct dp_log_write *w)
{
	char first[24], size[24], tx[24], seq[24], iat[24];
	snprintf(first, sizeof first, "%" PRId64, w->first_index);
	snprintf(size, sizeof size, "%" PRId64, w->tree_size);
	snprintf(tx, sizeof tx, "%" PRIu64, w->next_tx);
	snprintf(seq, sizeof seq, "%" PRId64, w->next_seq);
	snprintf(iat, sizeof iat, "%" PRId64, w->iat);
	const char *p[16] = { w->tenant, first, w->ids, w->leaf_hex, w->levels, w->idxs, w->node_hex, size,
		                  tx, seq, w->frontier_hex, w->root_hex, iat, w->kid, w->jws, w->occurred_us };
	/* One round trip for the whole append: every data-modifying CTE runs
	 * whether or not the statement reads it. The hashes come as one hex
	 * string each, cut into 32-byte pieces by ordinality. */
	return db_exec(
		c, NULL,
		"WITH l AS (INSERT INTO log_leaves (tenant_id, leaf_index, event_id, leaf_hash, occurred_at)"
		"   SELECT $1::uuid, $2::bigint + u.k - 1, u.id, substring(b.v FROM ((u.k - 1) * 32 + 1)::int FOR 32),"
		"          'epoch'::timestamptz + u.o * interval '1 microsecond'"
		"     FROM unnest($3::text[], $16::bigint[]) WITH ORDINALITY AS u(id, o, k), decode($4, 'hex') AS b(v)),"
		" n AS (INSERT INTO log_nodes (tenant_id, level, idx, hash)"
		"   SELECT $1::uuid, u.lv, u.ix, substring(b.v FROM ((u.k - 1) * 32 + 1)::int FOR 32)"
		"     FROM unnest($5::smallint[], $6::bigint[]) WITH ORDINALITY AS u(lv, ix, k), decode($7, 'hex') AS b(v)),"
		" h AS (UPDATE log_heads SET tree_size = $8::bigint, next_tx = $9::xid8, next_seq = $10::bigint,"
		"        frontier = decode($11, 'hex'), root_hash = decode($12, 'hex'), updated_at = now()"
		"      WHERE tenant_id = $1::uuid)"
		" INSERT INTO log_checkpoints (tenant_id, tree_size, root_hash, signed_at, kid, jws)"
		" SELECT $1::uuid, $8::bigint, decode($12, 'hex'), to_timestamp($13::bigint), $14, $15"
		"  WHERE $15::text IS NOT NULL"
		" ON CONFLICT (tenant_id, tree_size) DO NOTHING",
		16, p);
}

enum db_status dp_db_log_head_get(struct db_conn *c, const char *tenant, struct dp_log_head *h,
                                  char **jws, int64_t *iat)
{
	const char *p[1] = { tenant };
	PGresult *r;
	*jws = NULL;
	*iat = 0;
	enum db_status st = db_exec(
		c, &r,
		"SELECT " HEAD_COLS ", k.jws, k.iat"
		"  FROM log_heads h LEFT JOIN LATERAL ("
		"    SELECT jws, extract(epoch FROM signed_at)::bigint AS iat FROM log_checkpoints c"
		"     WHERE c.tenant_id = h.tenant_id AND c.tree_size = h.tree_size) k ON true"
		" WHERE h.tenant_id = $1::uuid",
		1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else if (head_from(r, 0, h) != 0)
		st = DB_ERROR;
	else if (!PQgetisnull(r, 0, 5)) {
		*iat = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
		if (!(*jws = strdup(PQgetvalue(r, 0, 5))))
			st = DB_ERROR;
	}
	PQclear(r);
	return st;
}

enum db_status dp_db_log_checkpoint_put(struct db_conn *c, const char *tenant, int64_t tree_size,
                                        const char *root_hex, int64_t iat, const char *kid, const char *jws)
{
	char size[24], at[24];
	snprintf(size, sizeof size, "%" PRId64, tree_size);
	snprintf(at, sizeof at, "%" PRId64, iat);
	const char *p[6] = { tenant, size, root_hex, at, kid, jws };
	return db_exec(c, NULL,
	               "INSERT INTO log_checkpoints (tenant_id, tree_size, root_hash, signed_at, kid, jws)"
	               " VALUES ($1::uuid, $2::bigint, decode($3, 'hex'), to_timestamp($4::bigint), $5, $6)"
	               " ON CONFLICT (tenant_id, tree_size) DO NOTHING",
	               6, p);
}

enum db_status dp_db_log_pending(struct db_conn *c, const char *tenants, dp_log_pending_fn fn, void *ctx)
{
	const char *p[1] = { tenants };
	PGresult *r;
	enum db_status st = db_exec(c, NULL,
	                            "SELECT set_config('enable_bitmapscan', 'off', true),"
	                            "       set_config('enable_seqscan', 'off', true)",
	                            0, NULL);
	if (st != DB_OK)
		return st;
	/* One probe of the feed's index per tenant: its first event past its
	 * head that an append may take now. */
	st = db_exec(
		c, &r,
		"WITH x AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x)"
		" SELECT t.t::text FROM x, unnest($1::uuid[]) AS t(t)"
		"  LEFT JOIN log_heads h ON h.tenant_id = t.t"
		"  LEFT JOIN tenant_feed_offsets o ON o.tenant_id = t.t"
		"  WHERE EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = t.t"
		"                   AND (e.tx_id, e.seq) > (coalesce(h.next_tx, '0'::xid8), coalesce(h.next_seq, 0))"
		"                   AND e.tx_id < move_xid_add(x.x, coalesce(o.off, 0)))",
		1, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0));
	PQclear(r);
	return DB_OK;
}
