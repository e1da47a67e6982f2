/* SQL of API keys. Only the SHA-256 of a secret ever reaches the database. */
#include <stdio.h>

#include "cpdb.h"
#include "secret.h"

enum db_status cpdb_api_key_insert(struct db_conn *c, const char *id, const char *tenant_id,
                                   const char *name, const unsigned char secret_sha256[32],
                                   const char *scopes, const char *expires_at, json_t **doc)
{
	char hex[80];
	hex[0] = '\\';
	hex[1] = 'x';
	secret_hex(secret_sha256, 32, hex + 2);
	const char *p[] = { id, tenant_id, name, hex, scopes, expires_at };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes, expires_at, region)"
		" VALUES ($1, $2::uuid, $3, $4::bytea,"
		"         ARRAY(SELECT DISTINCT s FROM json_array_elements_text($5::json) s ORDER BY 1),"
		"         $6::timestamptz, (SELECT region FROM tenants WHERE id = $2::uuid))"
		" RETURNING id", 6, p);
	return st == DB_OK ? cpdb_api_key_get(c, tenant_id, id, doc) : st;
}

enum db_status cpdb_api_keys_page(struct db_conn *c, const char *tenant_id,
                                  const struct cp_page *pg, json_t **items)
{
	char limit[16];
	snprintf(limit, sizeof limit, "%d", pg->limit + 1);
	const char *p[] = { tenant_id, pg->have_cursor ? pg->ts : NULL, pg->have_cursor ? pg->id : NULL,
		                limit };
	return db_json_page(c, items,
		"SELECT doc::text, (extract(epoch FROM created_at) * 1000000)::bigint, id"
		" FROM api_keys_view WHERE tenant_id = $1::uuid"
		"   AND ($2::bigint IS NULL OR (created_at, id) >"
		"        ('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3))"
		" ORDER BY created_at, id LIMIT $4::int", 4, p);
}

enum db_status cpdb_api_key_get(struct db_conn *c, const char *tenant_id, const char *id,
                                json_t **doc)
{
	const char *p[] = { tenant_id, id };
	return db_json_one(c, doc,
		"SELECT doc::text FROM api_keys_view WHERE tenant_id = $1::uuid AND id = $2", 2, p);
}

enum db_status cpdb_api_key_revoke(struct db_conn *c, const char *tenant_id, const char *id,
                                   json_t **doc)
{
	const char *p[] = { tenant_id, id };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp())"
		" WHERE tenant_id = $1::uuid AND id = $2 RETURNING id", 2, p);
	return st == DB_OK ? cpdb_api_key_get(c, tenant_id, id, doc) : st;
}

enum db_status cpdb_api_key_expiry_check(struct db_conn *c, const char *expires_at, int *future,
                                         int *representable)
{
	const char *p[] = { expires_at };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT $1::timestamptz > now(), $1::timestamptz < '9999-12-31T00:00:00Z'", 1, p);
	if (st != DB_OK)
		return st;
	*future = PQgetvalue(r, 0, 0)[0] == 't';
	*representable = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	return DB_OK;
}
