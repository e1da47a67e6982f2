/* SQL of the region identity check. */
#include <stdio.h>
#include <string.h>

#include "dp.h"

struct region_q {
	const char *region;
	int claim;
	char owner[64];
};

static enum db_status region_tx(struct db_conn *c, void *ctx)
{
	struct region_q *q = ctx;
	const char *params[1] = { q->region };
	PGresult *r;
	enum db_status st;

	q->owner[0] = '\0';
	/* Before the first migration there is no table: the database is unclaimed. */
	st = db_exec(c, &r, "SELECT to_regclass('region_identity') IS NOT NULL", 0, NULL);
	if (st != DB_OK)
		return st;
	int migrated = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!migrated)
		return DB_OK;
	if (q->claim) {
		st = db_exec(c, NULL,
		             "INSERT INTO region_identity (region) VALUES ($1) ON CONFLICT DO NOTHING", 1,
		             params);
		if (st != DB_OK)
			return st;
	}
	st = db_exec(c, &r, "SELECT region FROM region_identity", 0, NULL);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 1)
		snprintf(q->owner, sizeof q->owner, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

static enum dp_region_check run(struct db_pool *db, const char *region, int claim, char *owner,
                                size_t len)
{
	struct region_q q = { .region = region, .claim = claim };
	if (db_tx(db, DB_READ_COMMITTED, region_tx, &q) != DB_OK)
		return DP_REGION_UNKNOWN;
	snprintf(owner, len, "%s", q.owner);
	if (!q.owner[0])
		return DP_REGION_UNCLAIMED;
	return strcmp(q.owner, region) == 0 ? DP_REGION_OK : DP_REGION_MISMATCH;
}

enum dp_region_check dp_db_region_claim(struct db_pool *db, const char *region, char *owner,
                                        size_t len)
{
	return run(db, region, 1, owner, len);
}

enum dp_region_check dp_db_region_check(struct db_pool *db, const char *region, char *owner,
                                        size_t len)
{
	return run(db, region, 0, owner, len);
}
