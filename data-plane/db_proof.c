/* SQL of the log's reads (migration 0010): stored checkpoints, an event's
 * leaf, and the stored hashes proofs are computed from. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"
#include "log.h"
#include "secret.h"

/* A bytea column read as encode(x, 'hex'): exactly 32 bytes or DB_ERROR. */
static enum db_status hash_at(PGresult *r, int row, int col, unsigned char out[32])
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 64 ||
	    secret_unhex(PQgetvalue(r, row, col), out, 32) != 0)
		return DB_ERROR;
	return DB_OK;
}

enum db_status dp_db_checkpoint_get(struct db_conn *c, const char *tenant, int64_t tree_size,
                                    struct dp_checkpoint *out)
{
	char size[24];
	snprintf(size, sizeof size, "%" PRId64, tree_size);
	const char *p[2] = { tenant, size };
	PGresult *r;
	memset(out, 0, sizeof *out);
	/* 0: the newest, a backward walk of the primary key. */
	enum db_status st = db_exec(c, &r,
	                            "SELECT tree_size, encode(root_hash, 'hex'),"
	                            "       floor(extract(epoch FROM signed_at))::bigint, jws"
	                            "  FROM log_checkpoints WHERE tenant_id = $1::uuid"
	                            "   AND ($2::bigint = 0 OR tree_size = $2::bigint)"
	                            " ORDER BY tree_size DESC LIMIT 1",
	                            2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	out->tree_size = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->iat = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	st = hash_at(r, 0, 1, out->root);
	if (st == DB_OK && !(out->jws = strdup(PQgetvalue(r, 0, 3))))
		st = DB_ERROR;
	PQclear(r);
	return st;
}

enum db_status dp_db_log_size(struct db_conn *c, const char *tenant, int64_t *size)
{
	const char *p[1] = { tenant };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT tree_size FROM log_heads WHERE tenant_id = $1::uuid", 1, p);
	if (st != DB_OK)
		return st;
	*size = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_event_leaf(struct db_conn *c, const char *tenant, const char *id,
                                struct dp_event_leaf *out)
{
	const char *p[2] = { tenant, id };
	PGresult *r;
	memset(out, 0, sizeof *out);
	out->index = -1;
	/* One statement, one snapshot: a leaf read here is below the head
	 * size read with it, and so is the newest checkpoint. */
	enum db_status st = db_exec(
		c, &r,
		"SELECT EXISTS (SELECT 1 FROM events_find(ARRAY[$1::uuid], ARRAY[$2::text])),"
		"       coalesce((SELECT tree_size FROM log_heads WHERE tenant_id = $1::uuid), 0),"
		"       coalesce((SELECT tree_size FROM log_checkpoints WHERE tenant_id = $1::uuid"
		"                  ORDER BY tree_size DESC LIMIT 1), 0),"
		"       l.leaf_index, encode(l.leaf_hash, 'hex')"
		"  FROM (SELECT 1) one LEFT JOIN LATERAL ("
		"    SELECT leaf_index, leaf_hash FROM log_leaves"
		"     WHERE tenant_id = $1::uuid AND event_id = $2"
		"     ORDER BY leaf_index DESC LIMIT 1) l ON true",
		2, p);
	if (st != DB_OK)
		return st;
	out->exists = PQgetvalue(r, 0, 0)[0] == 't';
	out->log_size = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->checkpoint_size = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	if (!PQgetisnull(r, 0, 3)) {
		out->index = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		st = hash_at(r, 0, 4, out->leaf);
	}
	PQclear(r);
	return st;
}

enum db_status dp_db_log_hashes(struct db_conn *c, const char *tenant, const char *levels, const char *idxs,
                                dp_log_hash_fn fn, void *ctx)
{
	const char *p[3] = { tenant, levels, idxs };
	PGresult *r;
	/* Level 0 is a leaf; the others are log_nodes' (levels 4, 8, ...). One
	 * primary-key lookup per hash asked (LATERAL): joined instead, the
	 * planner hashed every leaf and node of the tenant (36 ms at 100,000
	 * leaves, against 0.5). A hash not stored has no row. */
	enum db_status st = db_exec(
		c, &r,
		"SELECT k.ord - 1, encode(h.hash, 'hex')"
		"  FROM unnest($2::int[], $3::bigint[]) WITH ORDINALITY AS k(level, idx, ord)"
		"  CROSS JOIN LATERAL ("
		"    SELECT leaf_hash AS hash FROM log_leaves"
		"     WHERE k.level = 0 AND tenant_id = $1::uuid AND leaf_index = k.idx"
		"    UNION ALL"
		"    SELECT hash FROM log_nodes"
		"     WHERE k.level > 0 AND tenant_id = $1::uuid AND level = k.level AND idx = k.idx) h",
		3, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r) && st == DB_OK; i++) {
		unsigned char h[32];
		if (PQgetisnull(r, i, 1))
			continue; /* the caller finds it missing */
		if ((st = hash_at(r, i, 1, h)) == DB_OK)
			fn(ctx, strtol(PQgetvalue(r, i, 0), NULL, 10), h);
	}
	PQclear(r);
	return st;
}

enum db_status dp_db_log_leaves(struct db_conn *c, const char *tenant, int64_t from, int n,
                                dp_log_leaf_fn fn, void *ctx)
{
	char f[24], to[24];
	snprintf(f, sizeof f, "%" PRId64, from);
	snprintf(to, sizeof to, "%" PRId64, from + n);
	const char *p[3] = { tenant, f, to };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            /* A leaf's event is removed when its leaf says
	                             * so, or when retention removed its week whole
	                             * (event_drops) and no event of that id and
	                             * time is left. */
	                            "SELECT l.leaf_index, encode(l.leaf_hash, 'hex'),"
	                            "       CASE WHEN l.occurred_at IS NOT NULL AND l.event_id IS NOT NULL"
	                            "             AND EXISTS (SELECT 1 FROM event_drops d WHERE l.occurred_at >= d.lower"
	                            "                           AND l.occurred_at < d.upper)"
	                            "             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = l.tenant_id"
	                            "                           AND e.id = l.event_id AND e.occurred_at = l.occurred_at)"
	                            "            THEN NULL ELSE l.event_id END"
	                            "  FROM log_leaves l"
	                            " WHERE l.tenant_id = $1::uuid AND l.leaf_index >= $2::bigint"
	                            "   AND l.leaf_index < $3::bigint ORDER BY l.leaf_index",
	                            3, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r) && st == DB_OK; i++) {
		unsigned char h[32];
		if ((st = hash_at(r, i, 1, h)) == DB_OK)
			fn(ctx, strtoll(PQgetvalue(r, i, 0), NULL, 10), h,
			   PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2));
	}
	PQclear(r);
	return st;
}
