/* SQL of the rate exchange: each instance's demand per tenant bucket, and
 * the instances alive in the region (migrations/region/0003). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpdb.h"
#include "partitions.h"

#define SINCE(ms) "clock_timestamp() - (" ms ")::bigint * interval '1 millisecond'"

enum db_status dp_db_rate_sync(struct db_conn *c, const char *instance, const char *tenants,
                               const char *buckets, const char *demands, int64_t ttl_ms, int purge,
                               dp_peer_demand_fn fn, void *ctx, long *live)
{
	char ttl[24], dead[24];
	PGresult *r;
	enum db_status st;

	snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
	snprintf(dead, sizeof dead, "%" PRId64, ttl_ms * 10);
	const char *p1[1] = { instance };
	st = db_exec(c, NULL,
	             "INSERT INTO rate_instances (instance_id, seen_at, schema_level)"
	             " VALUES ($1, clock_timestamp(), " DP_SCHEMA_LEVEL_SQL ")"
	             " ON CONFLICT (instance_id) DO UPDATE SET seen_at = excluded.seen_at,"
	             "   schema_level = excluded.schema_level",
	             1, p1);
	if (st != DB_OK)
		return st;
	const char *p3[3] = { instance, tenants, buckets };
	st = db_exec(c, NULL,
	             "DELETE FROM rate_demand d WHERE d.instance_id = $1 AND NOT EXISTS ("
	             "  SELECT 1 FROM unnest($2::uuid[], $3::text[]) AS k(t, b)"
	             "   WHERE k.t = d.tenant_id AND k.b = d.bucket)",
	             3, p3);
	if (st != DB_OK)
		return st;
	const char *p4[4] = { instance, tenants, buckets, demands };
	st = db_exec(c, NULL,
	             "INSERT INTO rate_demand (instance_id, tenant_id, bucket, demand, updated_at)"
	             " SELECT $1, t, b, d, clock_timestamp()"
	             "   FROM unnest($2::uuid[], $3::text[], $4::float8[]) AS x(t, b, d)"
	             " ON CONFLICT (instance_id, tenant_id, bucket) DO UPDATE SET"
	             "   demand = excluded.demand, updated_at = excluded.updated_at",
	             4, p4);
	if (st != DB_OK)
		return st;
	/* One row per bucket passed, in the order passed. */
	const char *p5[4] = { instance, tenants, buckets, ttl };
	st = db_exec(c, &r,
	             "SELECT k.n, coalesce(sum(d.demand), 0)"
	             "  FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS k(t, b, n)"
	             "  LEFT JOIN rate_demand d ON d.tenant_id = k.t AND d.bucket = k.b"
	             "   AND d.instance_id <> $1 AND d.updated_at > " SINCE("$4")
	             " GROUP BY k.n ORDER BY k.n",
	             4, p5);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, strtol(PQgetvalue(r, i, 0), NULL, 10) - 1, strtod(PQgetvalue(r, i, 1), NULL));
	PQclear(r);
	const char *p6[1] = { ttl };
	st = db_exec(c, &r, "SELECT count(*) FROM rate_instances WHERE seen_at > " SINCE("$1"), 1, p6);
	if (st != DB_OK)
		return st;
	*live = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (purge) {
		/* What instances that died without stopping left behind. */
		const char *p7[1] = { dead };
		st = db_exec(c, NULL, "DELETE FROM rate_demand WHERE updated_at < " SINCE("$1"), 1, p7);
		if (st == DB_OK)
			st = db_exec(c, NULL, "DELETE FROM rate_instances WHERE seen_at < " SINCE("$1"), 1, p7);
	}
	return st;
}

enum db_status dp_db_rate_forget(struct db_conn *c, const char *instance)
{
	const char *p[1] = { instance };
	enum db_status st = db_exec(c, NULL, "DELETE FROM rate_demand WHERE instance_id = $1", 1, p);
	if (st == DB_OK)
		st = db_exec(c, NULL, "DELETE FROM rate_instances WHERE instance_id = $1", 1, p);
	return st;
}
