/* SQL of the erasure of deleted tenants (migrations/region/0007), and the
 * one list of the regional tables that hold a tenant's rows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

/* Every regional table with a tenant_id column, and what of it may go now.
 * A new table of tenant data is one line here; the erasure test finds every
 * table with a tenant_id column in the catalog and fails on one that is
 * left out. `hold` keeps rows that must not go yet: usage not yet cut into
 * a batch for the control plane (usage_outbox keeps the batch; billing
 * outlives the tenant), which the usage reporter cuts within
 * DP_USAGE_REPORT_INTERVAL. Events first: they are the bulk, and what the
 * control plane shows. */
#define ERASABLE(table, hold)                                                                  \
	{ table, "DELETE FROM " table " WHERE tenant_id = $1::uuid" hold " AND ctid = ANY(ARRAY("     \
	         "SELECT ctid FROM " table " WHERE tenant_id = $1::uuid" hold " LIMIT $2::int))",     \
	  " OR EXISTS (SELECT 1 FROM " table " WHERE tenant_id = d.t)" }
static const struct erasable {
	const char *table, *erase, *left;
} erasable[] = {
	/* Events by (occurred_at, seq), unique within a tenant: partitioned by
	 * week, a ctid names a row in each partition. */
	{ "events",
	  "DELETE FROM events WHERE tenant_id = $1::uuid AND (occurred_at, seq) IN ("
	  "SELECT occurred_at, seq FROM events WHERE tenant_id = $1::uuid LIMIT $2::int)",
	  " OR EXISTS (SELECT 1 FROM events WHERE tenant_id = d.t)" },
	ERASABLE("usage_counters", " AND events = reported"),
	ERASABLE("rate_demand", ""),
	ERASABLE("idempotency_keys", ""),
	ERASABLE("move_progress", ""),
	ERASABLE("tenant_feed_offsets", ""),
	ERASABLE("tenant_fences", ""),
	ERASABLE("log_checkpoints", ""),
	ERASABLE("log_nodes", ""),
	ERASABLE("log_leaves", ""),
	ERASABLE("log_heads", ""),
	ERASABLE("stream_cursors", ""),
};
#undef ERASABLE
#define NERASABLE (sizeof erasable / sizeof erasable[0])

/* Whether any row of tenant $1 is left in any table (column 0 of one row). */
static int left_sql(struct buf *b)
{
	buf_printf(b, "SELECT false");
	for (size_t i = 0; i < NERASABLE; i++)
		buf_printf(b, "%s", erasable[i].left);
	buf_printf(b, " FROM (SELECT $1::uuid AS t) d");
	return b->failed ? -1 : 0;
}

enum db_status dp_db_tenant_erase_batch(struct db_conn *c, const char *tenant, int batch,
                                        long *deleted, long *events, int *left)
{
	char lim[16];
	const char *p[2] = { tenant, lim };
	struct buf sql = { 0 };
	PGresult *r = NULL;
	enum db_status st = DB_OK;

	snprintf(lim, sizeof lim, "%d", batch);
	*deleted = *events = 0;
	*left = 1;
	for (size_t i = 0; i < NERASABLE && *deleted == 0; i++) {
		if ((st = db_exec(c, &r, erasable[i].erase, 2, p)) != DB_OK)
			goto out;
		*deleted = strtol(PQcmdTuples(r), NULL, 10);
		if (!strcmp(erasable[i].table, "events"))
			*events = *deleted;
		PQclear(r);
		r = NULL;
	}
	if (left_sql(&sql) != 0) {
		st = DB_ERROR;
		goto out;
	}
	if ((st = db_exec(c, &r, sql.p, 1, p)) != DB_OK)
		goto out;
	*left = !strcmp(PQgetvalue(r, 0, 0), "t");
out:
	PQclear(r);
	buf_free(&sql);
	return st;
}

enum db_status dp_db_erasure_todo(struct db_conn *c, const char *tenants, dp_erasure_tenant_fn fn,
                                  void *ctx)
{
	struct buf sql = { 0 };
	PGresult *r = NULL;
	enum db_status st = DB_ERROR;

	buf_printf(&sql, "SELECT d.t::text"
	                 " FROM (SELECT unnest($1::uuid[]) UNION SELECT erased_tenant FROM erasures) AS d(t)"
	                 " LEFT JOIN erasures e ON e.erased_tenant = d.t"
	                 " WHERE e.erased_tenant IS NULL OR e.completed_at IS NULL"
	                 "    OR e.reported_events <> e.events_deleted OR e.reported_rows <> e.rows_deleted"
	                 "    OR NOT e.reported_done");
	for (size_t i = 0; i < NERASABLE; i++)
		buf_printf(&sql, "%s", erasable[i].left);
	if (sql.failed)
		goto out;
	const char *p[1] = { tenants };
	if ((st = db_exec(c, &r, sql.p, 1, p)) != DB_OK)
		goto out;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0));
out:
	PQclear(r);
	buf_free(&sql);
	return st;
}

enum db_status dp_db_erasure_batch(struct db_conn *c, const char *tenant, int batch,
                                   struct dp_erasure_state *s)
{
	char lim[16];
	const char *p[2] = { tenant, lim };
	struct buf sql = { 0 };
	PGresult *r = NULL;
	enum db_status st;
	long n = 0;
	int events = 0;

	memset(s, 0, sizeof *s);
	snprintf(lim, sizeof lim, "%d", batch);
	st = db_exec(c, NULL, "INSERT INTO erasures (erased_tenant) VALUES ($1::uuid) ON CONFLICT DO NOTHING",
	             1, p);
	if (st != DB_OK)
		goto out;
	/* The claim: an instance erasing this tenant holds its row until its
	 * batch commits; the others pass it by. */
	st = db_exec(c, &r, "SELECT 1 FROM erasures WHERE erased_tenant = $1::uuid FOR UPDATE SKIP LOCKED",
	             1, p);
	if (st != DB_OK)
		goto out;
	if (PQntuples(r) == 0) {
		s->busy = 1;
		goto out;
	}
	PQclear(r);
	r = NULL;
	/* One table's rows at most, `batch` of them at most. */
	for (size_t i = 0; i < NERASABLE && n == 0; i++) {
		if ((st = db_exec(c, &r, erasable[i].erase, 2, p)) != DB_OK)
			goto out;
		n = strtol(PQcmdTuples(r), NULL, 10);
		events = n > 0 && !strcmp(erasable[i].table, "events");
		PQclear(r);
		r = NULL;
	}
	/* Nothing deleted is done only when nothing is left, held back or
	 * not: a row on hold, or changed under the statement, is for later. */
	int left = 1;
	if (n == 0) {
		if (left_sql(&sql) != 0) {
			st = DB_ERROR;
			goto out;
		}
		if ((st = db_exec(c, &r, sql.p, 1, p)) != DB_OK)
			goto out;
		left = !strcmp(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		r = NULL;
	}
	char num[24];
	snprintf(num, sizeof num, "%ld", n);
	const char *u[4] = { tenant, num, events ? "t" : "f", left ? "f" : "t" };
	st = db_exec(c, &r,
	             "UPDATE erasures SET"
	             "  events_deleted = events_deleted + CASE WHEN $3::bool THEN $2::bigint ELSE 0 END,"
	             "  rows_deleted = rows_deleted + $2::bigint,"
	             "  batches = batches + CASE WHEN $2::bigint > 0 THEN 1 ELSE 0 END,"
	             "  largest_batch = greatest(largest_batch, $2::int),"
	             "  completed_at = CASE WHEN $4::bool THEN coalesce(completed_at, now()) ELSE completed_at END"
	             " WHERE erased_tenant = $1::uuid"
	             " RETURNING events_deleted, rows_deleted, completed_at IS NOT NULL,"
	             "  reported_events <> events_deleted OR reported_rows <> rows_deleted"
	             "  OR reported_done <> (completed_at IS NOT NULL)",
	             4, u);
	if (st != DB_OK)
		goto out;
	if (PQntuples(r) != 1) {
		st = DB_ERROR;
		goto out;
	}
	s->deleted = n;
	s->events = events ? n : 0;
	s->events_deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	s->rows_deleted = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	s->done = !strcmp(PQgetvalue(r, 0, 2), "t");
	s->report_due = !strcmp(PQgetvalue(r, 0, 3), "t");
out:
	PQclear(r);
	buf_free(&sql);
	return st;
}

enum db_status dp_db_erasure_reported(struct db_conn *c, const char *tenant, int64_t events,
                                      int64_t rows, int done)
{
	char e[24], n[24];
	snprintf(e, sizeof e, "%" PRId64, events);
	snprintf(n, sizeof n, "%" PRId64, rows);
	const char *p[4] = { tenant, e, n, done ? "t" : "f" };
	return db_exec(c, NULL,
	               "UPDATE erasures SET reported_events = $2::bigint, reported_rows = $3::bigint,"
	               "  reported_done = $4::bool, reported_at = now(), last_error = NULL"
	               " WHERE erased_tenant = $1::uuid",
	               4, p);
}

enum db_status dp_db_erasure_report_failed(struct db_conn *c, const char *tenant, const char *error)
{
	const char *p[2] = { tenant, error };
	return db_exec(c, NULL, "UPDATE erasures SET last_error = $2 WHERE erased_tenant = $1::uuid", 2, p);
}

enum db_status dp_db_erasure_pending(struct db_conn *c, const char *tenants, long *pending)
{
	const char *p[1] = { tenants };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM unnest($1::uuid[]) AS d(t) LEFT JOIN erasures e ON e.erased_tenant = d.t"
		" WHERE e.erased_tenant IS NULL OR e.completed_at IS NULL OR NOT e.reported_done",
		1, p);
	if (st == DB_OK) {
		*pending = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
	return st;
}
