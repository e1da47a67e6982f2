/* SQL of cells, the placement rule's query and cell credentials. */
#include <stdio.h>
#include <stdlib.h>

#include "cpdb.h"

enum db_status cpdb_cells_list(struct db_conn *c, const char *region, json_t **items)
{
	const char *p[] = { region };
	return db_json_rows(c, items, "SELECT doc::text FROM api_cells WHERE region = $1 ORDER BY name",
	                    1, p);
}

enum db_status cpdb_cell_get(struct db_conn *c, const char *name, json_t **doc)
{
	const char *p[] = { name };
	return db_json_one(c, doc, "SELECT doc::text FROM api_cells WHERE name = $1", 1, p);
}

enum db_status cpdb_cell_claim(struct db_conn *c, const char *name, json_t **doc)
{
	const char *p[] = { name };
	return db_json_one(c, doc,
		"SELECT json_build_object('name', name, 'region', region, 'kind', kind, 'status', status)::text"
		" FROM cells WHERE name = $1", 1, p);
}

enum db_status cpdb_cells_lock(struct db_conn *c, const char *region)
{
	const char *p[] = { region };
	return db_exec(c, NULL, "SELECT 1 FROM cells WHERE region = $1 ORDER BY name FOR UPDATE", 1, p);
}

enum db_status cpdb_cell_insert(struct db_conn *c, const char *name, const char *region,
                                const char *kind, const char *tenant_id, json_t **doc)
{
	const char *p[] = { name, region, kind, tenant_id };
	enum db_status st = db_exec(c, NULL,
		"INSERT INTO cells (name, region, kind, tenant_id) VALUES ($1, $2, $3, $4::uuid)", 4, p);
	return st == DB_OK ? cpdb_cell_get(c, name, doc) : st;
}

enum db_status cpdb_cell_set_status(struct db_conn *c, const char *name, const char *status,
                                    json_t **doc)
{
	const char *p[] = { name, status };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE cells SET status = $2 WHERE name = $1 RETURNING name", 2, p);
	return st == DB_OK ? cpdb_cell_get(c, name, doc) : st;
}

enum db_status cpdb_cell_least_loaded(struct db_conn *c, const char *region, char cell[64])
{
	const char *p[] = { region };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT cell_least_loaded($1)", 1, p);
	if (st != DB_OK)
		return st;
	if (PQgetisnull(r, 0, 0))
		st = DB_NOT_FOUND;
	else
		snprintf(cell, 64, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

enum db_status cpdb_cell_dedicate(struct db_conn *c, const char *cell, const char *tenant_id)
{
	const char *p[] = { cell, tenant_id };
	return db_exec(c, NULL,
		"UPDATE cells SET tenant_id = $2::uuid WHERE name = $1 AND kind = 'dedicated' AND tenant_id IS NULL",
		2, p);
}

enum db_status cpdb_cell_credential_insert(struct db_conn *c, const char *cell,
                                           const char *token_sha256_hex, json_t **doc)
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { cell, hex };
	return db_json_one(c, doc,
		"INSERT INTO cell_credentials (cell, token_sha256) VALUES ($1, $2::bytea)"
		" RETURNING json_build_object('id', id, 'cell', cell,"
		"                             'created_at', api_ts(created_at))::text", 2, p);
}

enum db_status cpdb_cell_credential_lookup(struct db_conn *c, const char *token_sha256_hex,
                                           char cell[64], char region[33])
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { hex };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT k.cell, c.region FROM cell_credentials k JOIN cells c ON c.name = k.cell"
		" WHERE k.token_sha256 = $1::bytea AND k.revoked_at IS NULL", 1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		st = DB_NOT_FOUND;
	} else {
		snprintf(cell, 64, "%s", PQgetvalue(r, 0, 0));
		snprintf(region, 33, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return st;
}

enum db_status cpdb_usage_outside_cell(struct db_conn *c, const char *cell, const char *records,
                                       char tenant[64], long *n)
{
	const char *p[] = { cell, records };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*), (array_agg(v->>'tenant' ORDER BY i))[1]"
		" FROM json_array_elements($2::json) WITH ORDINALITY AS r(v, i)"
		" WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = (v->>'tenant')::uuid AND t.cell = $1)"
		/* the source of a done move reports what it stored before the cutover */
		"   AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.tenant_id = (v->>'tenant')::uuid"
		"                    AND m.from_cell = $1 AND m.state = 'done')",
		2, p);
	if (st != DB_OK)
		return st;
	*n = atol(PQgetvalue(r, 0, 0));
	snprintf(tenant, 64, "%s", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
	PQclear(r);
	return DB_OK;
}
