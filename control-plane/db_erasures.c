/* SQL of the erasure of deleted tenants (migrations/control-plane/0006). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cpdb.h"

/* The erasure as the admin view shows it, of tenants t and erasures e
 * (LEFT JOINed: a tenant deleted by an older build has no row until its
 * region reports, and reads as requested when it was deleted). */
#define ERASURE_DOC                                                                             \
	"json_build_object('status', CASE WHEN e.completed_at IS NULL THEN 'pending' ELSE 'done' END," \
	" 'requested_at', api_ts(coalesce(e.requested_at, t.updated_at)),"                          \
	" 'completed_at', api_ts(e.completed_at), 'events_deleted', coalesce(e.events_deleted, 0))"

enum db_status cpdb_erasure_request(struct db_conn *c, const char *tenant_id)
{
	const char *p[] = { tenant_id };
	return db_exec(c, NULL,
	               "INSERT INTO erasures (tenant_id, requested_at)"
	               " SELECT id, updated_at FROM tenants WHERE id = $1 AND status = 'deleted'"
	               " ON CONFLICT (tenant_id) DO NOTHING",
	               1, p);
}

/* The id of a deleted tenant's document, or NULL. */
static const char *deleted_id(json_t *doc)
{
	const char *status = json_string_value(json_object_get(doc, "status"));
	return status && !strcmp(status, "deleted") ? json_string_value(json_object_get(doc, "id")) : NULL;
}

enum db_status cpdb_erasure_attach(struct db_conn *c, json_t *docs)
{
	struct buf ids = { 0 };
	json_t *rows = NULL, *doc, *row;
	size_t i, n = 0;
	enum db_status st = DB_OK;

	if (json_is_object(docs)) {
		const char *id = deleted_id(docs);
		if (id) {
			db_array_add(&ids, id, strlen(id));
			n++;
		}
	} else {
		json_array_foreach(docs, i, doc) {
			const char *id = deleted_id(doc);
			if (id) {
				db_array_add(&ids, id, strlen(id));
				n++;
			}
		}
	}
	if (n == 0)
		goto out;
	db_array_end(&ids);
	if (ids.failed) {
		st = DB_ERROR;
		goto out;
	}
	const char *p[] = { ids.p };
	st = db_json_rows(c, &rows,
	                  "SELECT json_build_object('id', t.id, 'erasure', " ERASURE_DOC ")::text"
	                  " FROM tenants t LEFT JOIN erasures e ON e.tenant_id = t.id"
	                  " WHERE t.id = ANY($1::uuid[]) AND t.status = 'deleted'",
	                  1, p);
	if (st != DB_OK)
		goto out;
	json_array_foreach(rows, i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		json_t *er = json_object_get(row, "erasure");
		if (json_is_object(docs)) {
			if (!strcmp(id, deleted_id(docs)) && json_object_set(docs, "erasure", er) != 0)
				st = DB_ERROR;
			continue;
		}
		size_t k;
		json_array_foreach(docs, k, doc) {
			const char *did = deleted_id(doc);
			if (did && !strcmp(did, id) && json_object_set(doc, "erasure", er) != 0)
				st = DB_ERROR;
		}
	}
out:
	json_decref(rows);
	buf_free(&ids);
	return st;
}

enum db_status cpdb_erasure_record(struct db_conn *c, const char *tenant_id, int64_t events,
                                   int64_t rows, int done, int *completed_now, json_t **erasure)
{
	char e[24], r[24];
	snprintf(e, sizeof e, "%" PRId64, events);
	snprintf(r, sizeof r, "%" PRId64, rows);
	const char *p[] = { tenant_id, e, r, done ? "t" : "f" };
	PGresult *res;
	enum db_status st = db_exec(c, &res,
		"SELECT completed_at IS NOT NULL FROM erasures WHERE tenant_id = $1 FOR UPDATE", 1, p);
	if (st != DB_OK)
		return st;
	int was_done = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	st = db_exec(c, NULL,
		"INSERT INTO erasures AS e (tenant_id, requested_at, events_deleted, rows_deleted,"
		"                           completed_at, reported_at)"
		" SELECT id, updated_at, $2::bigint, $3::bigint,"
		"        CASE WHEN $4::bool THEN clock_timestamp() END, clock_timestamp()"
		"   FROM tenants WHERE id = $1"
		" ON CONFLICT (tenant_id) DO UPDATE SET"
		"   events_deleted = greatest(e.events_deleted, excluded.events_deleted),"
		"   rows_deleted = greatest(e.rows_deleted, excluded.rows_deleted),"
		"   completed_at = coalesce(e.completed_at, excluded.completed_at),"
		"   reported_at = excluded.reported_at",
		4, p);
	if (st != DB_OK)
		return st;
	*completed_now = done && !was_done;
	return db_json_one(c, erasure,
	                   "SELECT " ERASURE_DOC "::text FROM tenants t JOIN erasures e ON e.tenant_id = t.id"
	                   " WHERE t.id = $1",
	                   1, p);
}
