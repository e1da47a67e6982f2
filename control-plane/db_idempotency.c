/* SQL of Idempotency-Key records, in both of their tables (see idempotency.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"

/* The statements of each store, with the same parameters: $1 scope, $2 key,
 * $3 request hash (claim); get answers (hash, status, location, body,
 * sealed). usage_batches keeps no status, Location or seal: its store
 * statement takes the body only ($3). */
static const struct {
	const char *claim, *get, *store;
} idem_sql[] = {
	[CPDB_IDEM_REQUESTS] = {
		"INSERT INTO idempotency_keys (principal, key, request_sha256, status, body)"
		" VALUES ($1, $2, $3::bytea, 0, '') ON CONFLICT DO NOTHING RETURNING 1",
		"SELECT encode(request_sha256, 'hex'), status, coalesce(location, ''), body, sealed"
		" FROM idempotency_keys WHERE principal = $1 AND key = $2",
		"UPDATE idempotency_keys SET status = $3::int, location = $4, body = $5, sealed = $6::boolean"
		" WHERE principal = $1 AND key = $2",
	},
	[CPDB_IDEM_USAGE_BATCHES] = {
		"INSERT INTO usage_batches (region, key, request_sha256, response) VALUES ($1, $2, $3::bytea, '')"
		" ON CONFLICT DO NOTHING RETURNING 1",
		"SELECT encode(request_sha256, 'hex'), 0, '', response, false"
		" FROM usage_batches WHERE region = $1 AND key = $2 AND cell IS NULL",
		"UPDATE usage_batches SET response = $3 WHERE region = $1 AND key = $2 AND cell IS NULL",
	},
	/* A cell's batches: scope is the cell; the row names its region too. */
	[CPDB_IDEM_CELL_BATCHES] = {
		"INSERT INTO usage_batches (region, cell, key, request_sha256, response)"
		" SELECT region, name, $2, $3::bytea, '' FROM cells WHERE name = $1"
		" ON CONFLICT DO NOTHING RETURNING 1",
		"SELECT encode(request_sha256, 'hex'), 0, '', response, false"
		" FROM usage_batches WHERE cell = $1 AND key = $2",
		"UPDATE usage_batches SET response = $3 WHERE cell = $1 AND key = $2",
	},
};

enum db_status cpdb_idem_claim(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                               const char *key, const char *request_sha256_hex, int *claimed)
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", request_sha256_hex);
	const char *p[] = { scope, key, hex };
	PGresult *r;
	/* A concurrent claim of the same key waits here for the first
	 * transaction, then sees its record (or claims it if that rolled back). */
	enum db_status st = db_exec(c, &r, idem_sql[store].claim, 3, p);
	if (st == DB_OK) {
		*claimed = PQntuples(r) == 1;
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_idem_get(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                             const char *key, struct cpdb_idem *out)
{
	const char *p[] = { scope, key };
	PGresult *r;
	enum db_status st = db_exec(c, &r, idem_sql[store].get, 2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	snprintf(out->request_sha256, sizeof out->request_sha256, "%s", PQgetvalue(r, 0, 0));
	out->status = atoi(PQgetvalue(r, 0, 1));
	snprintf(out->location, sizeof out->location, "%s", PQgetvalue(r, 0, 2));
	out->body = strdup(PQgetvalue(r, 0, 3));
	out->sealed = PQgetvalue(r, 0, 4)[0] == 't';
	PQclear(r);
	return out->body ? DB_OK : DB_ERROR;
}

enum db_status cpdb_idem_store(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                               const char *key, int status, const char *location, const char *body,
                               int sealed)
{
	if (store == CPDB_IDEM_USAGE_BATCHES || store == CPDB_IDEM_CELL_BATCHES) {
		const char *p[] = { scope, key, body };
		return db_exec(c, NULL, idem_sql[store].store, 3, p);
	}
	char st_s[8];
	snprintf(st_s, sizeof st_s, "%d", status);
	const char *p[] = { scope, key, st_s, location && *location ? location : NULL, body,
		                sealed ? "true" : "false" };
	return db_exec(c, NULL, idem_sql[store].store, 6, p);
}

enum db_status cpdb_idem_purge(struct db_conn *c, long *removed)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"DELETE FROM idempotency_keys WHERE created_at < now() - interval '1 day'", 0, NULL);
	if (st == DB_OK) {
		*removed = atol(PQcmdTuples(r));
		PQclear(r);
	}
	return st;
}
