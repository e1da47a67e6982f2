/* SQL of tenants and plans. */
#include <stdio.h>
#include <stdlib.h>

#include "cpdb.h"
#include "jsonx.h"

/* The view's member is region_endpoint, which the previous build reads
 * while a rollout runs both; the API calls a data-plane URL endpoint
 * everywhere (the region catalog, the lookup, a 421). */
static enum db_status tenant_vocab(enum db_status st, json_t **doc)
{
	if (st == DB_OK)
		jsonx_rename(*doc, "region_endpoint", "endpoint");
	return st;
}

enum db_status cpdb_plan_exists(struct db_conn *c, const char *id, int *exists)
{
	const char *p[] = { id };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT 1 FROM plans WHERE id = $1", 1, p);
	if (st == DB_OK) {
		*exists = PQntuples(r) == 1;
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_returning_id(struct db_conn *c, char id[40], const char *sql, int n,
                                 const char *const *params)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r, sql, n, params);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	snprintf(id, 40, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_tenant_insert(struct db_conn *c, const char *slug, const char *name,
                                  const char *region, const char *plan, const char *cell,
                                  json_t **doc)
{
	const char *p[] = { slug, name, region, plan, cell };
	char id[40];
	enum db_status st = cpdb_returning_id(c, id,
		"INSERT INTO tenants (slug, name, region, plan, cell) VALUES ($1, $2, $3, $4, $5) RETURNING id",
		5, p);
	return st == DB_OK ? cpdb_tenant_get(c, id, 0, doc) : st;
}

/* A deleted tenant's document carries its erasure; `*doc` is freed on failure. */
static enum db_status attach_erasure(struct db_conn *c, json_t **doc)
{
	enum db_status st = cpdb_erasure_attach(c, *doc);
	if (st != DB_OK) {
		json_decref(*doc);
		*doc = NULL;
	}
	return st;
}

enum db_status cpdb_tenant_get(struct db_conn *c, const char *id, int for_update, json_t **doc)
{
	const char *p[] = { id };
	if (for_update) {
		enum db_status st = db_exec(c, NULL, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", 1, p);
		if (st != DB_OK)
			return st;
	}
	enum db_status st = tenant_vocab(db_json_one(c, doc, "SELECT doc::text FROM api_tenants WHERE id = $1", 1, p), doc);
	return st == DB_OK ? attach_erasure(c, doc) : st;
}

enum db_status cpdb_tenant_by_slug(struct db_conn *c, const char *slug, json_t **doc)
{
	const char *p[] = { slug };
	return tenant_vocab(db_json_one(c, doc,
	                   "SELECT doc::text FROM api_tenants WHERE slug = $1 AND status <> 'deleted'", 1, p), doc);
}

enum db_status cpdb_tenants_page(struct db_conn *c, const char *region, const char *status,
                                 const char *only_id, const struct cp_page *pg, json_t **items)
{
	char limit[16];
	snprintf(limit, sizeof limit, "%d", pg->limit + 1);
	const char *p[] = { region, status, only_id, pg->have_cursor ? pg->ts : NULL,
		                pg->have_cursor ? pg->id : NULL, limit };
	enum db_status st = tenant_vocab(db_json_page(c, items,
		"SELECT doc::text, (extract(epoch FROM created_at) * 1000000)::bigint, id"
		" FROM api_tenants"
		" WHERE ($1::text IS NULL OR region = $1)"
		"   AND ($2::text IS NULL OR status = $2)"
		"   AND ($3::uuid IS NULL OR id = $3)"
		"   AND ($4::bigint IS NULL OR (created_at, id) >"
		"        ('epoch'::timestamptz + $4::bigint * interval '1 microsecond', $5::uuid))"
		" ORDER BY created_at, id LIMIT $6::int", 6, p), items);
	return st == DB_OK ? attach_erasure(c, items) : st;
}

enum db_status cpdb_tenant_update(struct db_conn *c, const char *id, const char *name,
                                  const char *plan, const char *status, json_t **doc)
{
	const char *p[] = { id, name, plan, status };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE tenants SET name = coalesce($2, name), plan = coalesce($3, plan),"
		"  status = coalesce($4, status), updated_at = clock_timestamp()"
		" WHERE id = $1 RETURNING id", 4, p);
	return st == DB_OK ? cpdb_tenant_get(c, id, 0, doc) : st;
}

enum db_status cpdb_tenant_offboard(struct db_conn *c, const char *id)
{
	const char *p[] = { id };
	enum db_status st = db_exec(c, NULL,
		"UPDATE api_keys SET revoked_at = clock_timestamp()"
		" WHERE tenant_id = $1 AND revoked_at IS NULL", 1, p);
	if (st != DB_OK)
		return st;
	return db_exec(c, NULL,
		"DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE tenant_id = $1)", 1, p);
}
