/* SQL of the Idempotency-Key records of POST /v1/events
 * (migrations/region/0006). Every statement names the tenant of each key. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpdb.h"

#define OLDER_THAN(p) "now() - (" p ")::bigint * interval '1 millisecond'"

enum db_status dp_db_idem_claim(struct db_conn *c, const char *tenants, const char *keys,
                                const char *hashes, int64_t ttl_ms, dp_idem_claimed_fn fn, void *ctx)
{
	char ttl[24];
	PGresult *r;
	snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
	const char *p[] = { tenants, keys, hashes, ttl };
	/* Inserted in key order, so that two groups sharing keys lock them in
	 * the same order. A record past its lifetime is taken over: to the
	 * client it no longer exists, whether or not it was purged yet. */
	enum db_status st = db_exec(
		c, &r,
		"INSERT INTO idempotency_keys (tenant_id, key, request_sha256, status, body)"
		" SELECT u.t, u.k, decode(u.h, 'hex'), 0, ''"
		" FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(t, k, h) ORDER BY u.t, u.k"
		" ON CONFLICT (tenant_id, key) DO UPDATE"
		" SET request_sha256 = excluded.request_sha256, status = 0, location = NULL, body = '',"
		" created_at = now()"
		" WHERE idempotency_keys.created_at < " OLDER_THAN("$4")
		" RETURNING tenant_id::text, key",
		4, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_idem_get(struct db_conn *c, const char *tenants, const char *keys,
                              dp_idem_record_fn fn, void *ctx)
{
	PGresult *r;
	const char *p[] = { tenants, keys };
	enum db_status st = db_exec(
		c, &r,
		"SELECT i.tenant_id::text, i.key, encode(i.request_sha256, 'hex'), i.status,"
		" coalesce(i.location, ''), i.body"
		" FROM idempotency_keys i JOIN unnest($1::uuid[], $2::text[]) AS u(t, k)"
		" ON i.tenant_id = u.t AND i.key = u.k",
		2, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), atoi(PQgetvalue(r, i, 3)),
		   PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_idem_store(struct db_conn *c, const char *tenants, const char *keys,
                                const char *statuses, const char *locations, const char *bodies)
{
	const char *p[] = { tenants, keys, statuses, locations, bodies };
	return db_exec(c, NULL,
	               "UPDATE idempotency_keys i SET status = u.s, location = nullif(u.l, ''), body = u.b"
	               " FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[]) AS u(t, k, s, l, b)"
	               " WHERE i.tenant_id = u.t AND i.key = u.k",
	               5, p);
}

enum db_status dp_db_idem_release(struct db_conn *c, const char *tenants, const char *keys)
{
	const char *p[] = { tenants, keys };
	return db_exec(c, NULL,
	               "DELETE FROM idempotency_keys i USING unnest($1::uuid[], $2::text[]) AS u(t, k)"
	               " WHERE i.tenant_id = u.t AND i.key = u.k",
	               2, p);
}

enum db_status dp_db_idem_purge(struct db_conn *c, int64_t ttl_ms, int batch, long *deleted)
{
	char ttl[24], lim[16];
	PGresult *r;
	snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
	snprintf(lim, sizeof lim, "%d", batch);
	const char *p[] = { ttl, lim };
	/* SKIP LOCKED: a record being taken over by a claim is left to it. */
	enum db_status st = db_exec(
		c, &r,
		"DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
		" WHERE created_at < " OLDER_THAN("$1") " ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)",
		2, p);
	if (st != DB_OK)
		return st;
	*deleted = atol(PQcmdTuples(r));
	PQclear(r);
	return DB_OK;
}
