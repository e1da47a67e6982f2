/* SQL of regional config documents, region credentials and fleet status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cpdb.h"
#include "doc_rows.h"
#include "log.h"

enum db_status cpdb_region_version(struct db_conn *c, const char *region, int64_t *ver)
{
	const char *p[] = { region };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT config_version FROM regions WHERE name = $1", 1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else
		*ver = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

/* Stored signed documents, regional (region_documents, keyed by region) or
 * cell and routes (signed_documents, keyed by aud), are read, stored and
 * pruned alike: the helpers below take the statement and the key. */

/* `sql` selects the token of key $1 at version $2. */
static enum db_status doc_token(struct db_conn *c, const char *sql, const char *key, int64_t ver,
                                char **token)
{
	char v[24];
	snprintf(v, sizeof v, "%lld", (long long)ver);
	const char *p[] = { key, v };
	PGresult *r;
	enum db_status st = db_exec(c, &r, sql, 2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else if (!(*token = strdup(PQgetvalue(r, 0, 0))))
		st = DB_ERROR;
	PQclear(r);
	return st;
}

/* `sql` inserts the document with the nkeys (1 or 2) parameters of `keys`
 * first, then version, token, kid, issued and expiry (epoch seconds), and
 * returns a row when it stored it. */
static enum db_status doc_store(struct db_conn *c, const char *sql, const char *const keys[],
                                int nkeys, int64_t ver, const char *token, const char *kid,
                                int64_t iat, int64_t exp, int *stored)
{
	PGresult *r;
	char v[24], i[24], e[24];
	snprintf(v, sizeof v, "%lld", (long long)ver);
	snprintf(i, sizeof i, "%lld", (long long)iat);
	snprintf(e, sizeof e, "%lld", (long long)exp);
	const char *p[7];
	int n = 0;
	for (; n < nkeys && n < 2; n++)
		p[n] = keys[n];
	p[n++] = v;
	p[n++] = token;
	p[n++] = kid;
	p[n++] = i;
	p[n++] = e;
	enum db_status st = db_exec(c, &r, sql, n, p);
	if (st == DB_OK) {
		*stored = PQntuples(r) == 1;
		PQclear(r);
	}
	return st;
}

/* `sql` deletes the documents of key $1 up to version $2. */
static enum db_status doc_prune(struct db_conn *c, const char *sql, const char *key, int64_t ver,
                                int keep)
{
	char v[24];
	snprintf(v, sizeof v, "%lld", (long long)(ver - keep));
	const char *p[] = { key, v };
	return db_exec(c, NULL, sql, 2, p);
}

enum db_status cpdb_doc_get(struct db_conn *c, const char *region, int64_t ver, char **token)
{
	return doc_token(c, "SELECT token FROM region_documents WHERE region = $1 AND version = $2::bigint",
	                 region, ver, token);
}

enum db_status cpdb_doc_insert(struct db_conn *c, const char *region, int64_t ver, const char *token,
                               const char *kid, int64_t iat, int64_t exp, int *stored)
{
	const char *keys[] = { region };
	return doc_store(c,
		"INSERT INTO region_documents (region, version, token, kid, issued_at, expires_at)"
		" VALUES ($1, $2::bigint, $3, $4, to_timestamp($5::bigint), to_timestamp($6::bigint))"
		" ON CONFLICT DO NOTHING RETURNING 1", keys, 1, ver, token, kid, iat, exp, stored);
}

enum db_status cpdb_doc_prune(struct db_conn *c, const char *region, int64_t ver, int keep)
{
	return doc_prune(c, "DELETE FROM region_documents WHERE region = $1 AND version <= $2::bigint",
	                 region, ver, keep);
}

/* The tenants a region's document lists: the live ones, and the deleted
 * ones whose erasure the region has not completed (status 'd', no keys),
 * which is how the region learns to erase them; a tenant leaves the
 * document once its region reports it erased. */
#define DOC_TENANT(t)                                                                          \
	"(" t ".status <> 'deleted' OR NOT EXISTS (SELECT 1 FROM erasures e"                       \
	" WHERE e.tenant_id = " t ".id AND e.completed_at IS NOT NULL))"

/* The tenants of the cell $2 (every one of the region when $2 is NULL):
 * those living there, and those a move between cells took away from it
 * whose linger has not ended (moves.linger_until, CP_MOVE_LINGER), so that
 * the source serves their reads while the router may still send them there. */
#define DOC_CELL_OF(t, cell)                                                                   \
	"(" cell " IS NULL OR " t ".cell = " cell " OR EXISTS (SELECT 1 FROM moves m"            \
	" WHERE m.tenant_id = " t ".id AND m.from_cell = " cell " AND m.linger_until IS NOT NULL))"
#define DOC_CELL(t) DOC_CELL_OF(t, "$2::text")

/* The content rows of the region `region`'s tenants placed in `cell` (SQL
 * expressions): a tenant, then a key if it has one (see cpdb_doc_row). */
#define DOC_CONTENT(region, cell)                                                              \
	"SELECT t.id, t.slug, t.status, t.plan, k.id,"                                             \
	/* hex: a third of the cost of base64url in SQL at 3M keys */                              \
	"       encode(k.secret_sha256, 'hex'),"                                                   \
	"       'events:write' = ANY (k.scopes), 'events:read' = ANY (k.scopes),"                  \
	"       coalesce(extract(epoch FROM k.expires_at)::bigint, 0)"                             \
	" FROM tenants t"                                                                          \
	/* Expired keys too, with their expiry (a data plane refuses them):                        \
	 * a document is a function of its version, whenever and by                               \
	 * whichever replica it is built, so two builds of one version                             \
	 * agree, and a delta chain's state with them. */                                          \
	" LEFT JOIN api_keys k ON k.tenant_id = t.id AND k.revoked_at IS NULL AND t.status <> 'deleted'" \
	" WHERE t.region = " region " AND " DOC_CELL_OF("t", cell) " AND " DOC_TENANT("t")

/* The content of the region's tenants placed in `cell`, in order (tenant
 * id, then key id); when `ids` is not NULL (a Postgres array literal of
 * uuids) only of those. */
static enum db_status doc_content_ordered(struct db_conn *c, const char *region, const char *cell,
                                          const char *ids, cpdb_doc_row_fn fn, void *arg)
{
	const char *p[] = { region, cell, ids };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		DOC_CONTENT("$1", "$2::text")
		"   AND ($3::uuid[] IS NULL OR t.id = ANY ($3::uuid[]))"
		" ORDER BY t.id, k.id", 3, p);
	if (st != DB_OK)
		return st;
	struct cpdb_doc_row row = { .nrows = (size_t)PQntuples(r) };
	for (size_t i = 0; i < row.nrows && st == DB_OK; i++) {
		row.tenant_id = PQgetvalue(r, (int)i, 0);
		row.slug = PQgetvalue(r, (int)i, 1);
		row.status = PQgetvalue(r, (int)i, 2);
		row.plan = PQgetvalue(r, (int)i, 3);
		row.key_id = PQgetisnull(r, (int)i, 4) ? NULL : PQgetvalue(r, (int)i, 4);
		row.key_sha256_hex = PQgetvalue(r, (int)i, 5);
		row.can_write = PQgetvalue(r, (int)i, 6)[0] == 't';
		row.can_read = PQgetvalue(r, (int)i, 7)[0] == 't';
		row.expires_at = atoll(PQgetvalue(r, (int)i, 8));
		if (fn(&row, arg) != 0)
			st = DB_ERROR;
	}
	PQclear(r);
	return st;
}

enum db_status cpdb_doc_content(struct db_conn *c, const char *region, const char *cell,
                                cpdb_doc_row_fn fn, void *arg)
{
	const char *p[] = { region, cell };
	enum db_status st;
	/* The whole cell (a million tenants, three million keys): read in
	 * sequence and joined by hash in memory (this transaction only);
	 * through the indexes it reads the heap in random order, three times
	 * as long. Not sorted by the server: the rows stream in (COPY) and are
	 * held compactly while the server still joins, then grouped here
	 * (doc_rows.c), whatever order the plan gives them. COPY takes no
	 * parameters: they are settings of this transaction. */
	if ((st = db_exec(c, NULL, "SET LOCAL enable_indexscan = off", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL, "SET LOCAL enable_bitmapscan = off", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL, "SET LOCAL work_mem = '1GB'", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL, "SET LOCAL jit = off", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL,
	                  "SELECT set_config('celltrail.doc_region', $1, true),"
	                  "       set_config('celltrail.doc_cell', coalesce($2, ''), true)",
	                  2, p)) != DB_OK)
		return st;
	struct doc_rows ds;
	doc_rows_init(&ds, fn, arg);
	st = db_copy_out(c,
		"COPY (" DOC_CONTENT("current_setting('celltrail.doc_region')",
		                     "nullif(current_setting('celltrail.doc_cell'), '')") ") TO STDOUT",
		doc_rows_line, &ds);
	if (st == DB_OK)
		doc_rows_finish(&ds);
	doc_rows_free(&ds);
	if (st != DB_OK)
		return st;
	if (ds.bad) {
		log_error(NULL, "document content of %s: a row that is not what the statement selects, "
		          "or out of memory", region);
		return DB_ERROR;
	}
	return ds.stopped ? DB_ERROR : DB_OK;
}

enum db_status cpdb_doc_content_of(struct db_conn *c, const char *region, const char *cell,
                                   const char *ids, cpdb_doc_row_fn fn, void *arg)
{
	return doc_content_ordered(c, region, cell, ids, fn, arg);
}

enum db_status cpdb_config_changed(struct db_conn *c, const char *region, int64_t base, int64_t ver,
                                   struct buf *ids, size_t *n, int *complete)
{
	char b[24], v[24];
	snprintf(b, sizeof b, "%lld", (long long)base);
	snprintf(v, sizeof v, "%lld", (long long)ver);
	const char *p[] = { region, b, v };
	PGresult *r;
	*n = 0;
	*complete = 0;
	/* Every version of the range must have its bump logged: a version
	 * raised before the log existed, or pruned, leaves a hole. */
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM config_bumps WHERE region = $1 AND ver > $2::bigint AND ver <= $3::bigint",
		3, p);
	if (st != DB_OK)
		return st;
	*complete = atoll(PQgetvalue(r, 0, 0)) == ver - base;
	PQclear(r);
	if (!*complete)
		return DB_OK;
	/* The log's statistics are skewed by design (a bulk import logs a
	 * million rows under one transaction, a key revocation one), and the
	 * planner then reads the whole log where the index on (xact,
	 * tenant_id) finds a handful: this transaction reads through indexes,
	 * without JIT compilation, whatever the estimates. */
	if ((st = db_exec(c, NULL, "SET LOCAL enable_seqscan = off", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, NULL, "SET LOCAL jit = off", 0, NULL)) != DB_OK)
		return st;
	st = db_exec(c, &r,
		/* Through the index on (xact, tenant_id), one bump at a time: a
		 * join the planner costs from the whole log (a bulk import logs a
		 * million rows under one transaction) would read all of it. */
		"SELECT DISTINCT c.tenant_id FROM config_bumps b,"
		"       LATERAL (SELECT tenant_id FROM config_changes c WHERE c.xact = b.xact OFFSET 0) c"
		" WHERE b.region = $1 AND b.ver > $2::bigint AND b.ver <= $3::bigint", 3, p);
	if (st != DB_OK)
		return st;
	*n = (size_t)PQntuples(r);
	buf_append(ids, "{", 1);
	for (size_t i = 0; i < *n; i++) {
		if (i)
			buf_append(ids, ",", 1);
		buf_append(ids, PQgetvalue(r, (int)i, 0), (size_t)PQgetlength(r, (int)i, 0));
	}
	buf_append(ids, "}", 1);
	PQclear(r);
	return ids->failed ? DB_ERROR : DB_OK;
}

enum db_status cpdb_config_log_prune(struct db_conn *c, const char *region, int64_t ver, int keep,
                                     long *removed)
{
	char v[24];
	snprintf(v, sizeof v, "%lld", (long long)(ver - keep));
	const char *p[] = { region, v };
	PGresult *r;
	*removed = 0;
	enum db_status st = db_exec(c, &r,
		"DELETE FROM config_bumps WHERE ctid = ANY (ARRAY(SELECT ctid FROM config_bumps"
		" WHERE region = $1 AND ver <= $2::bigint LIMIT 10000))", 2, p);
	if (st != DB_OK)
		return st;
	*removed += atol(PQcmdTuples(r));
	PQclear(r);
	/* The changes of transactions whose bump is gone (pruned, or none:
	 * a change no document shows); a transaction's changes and bump
	 * become visible together, so none of a pending one is taken. */
	st = db_exec(c, &r,
		"DELETE FROM config_changes WHERE ctid = ANY (ARRAY(SELECT c.ctid FROM config_changes c"
		" WHERE NOT EXISTS (SELECT 1 FROM config_bumps b WHERE b.xact = c.xact) LIMIT 10000))", 0, NULL);
	if (st != DB_OK)
		return st;
	*removed += atol(PQcmdTuples(r));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_delta_get(struct db_conn *c, const char *aud, int64_t base, int64_t fresh_s,
                              int64_t *ver, char **token)
{
	char b[24], f[24];
	snprintf(b, sizeof b, "%lld", (long long)base);
	snprintf(f, sizeof f, "%lld", (long long)fresh_s);
	const char *p[] = { aud, b, f };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		/* One that expires within $3 seconds would be refused by a data
		 * plane (or soon after): a full document instead. */
		"SELECT ver, token FROM config_deltas WHERE aud = $1 AND base_ver = $2::bigint"
		"   AND expires_at > now() + make_interval(secs => $3::bigint)", 3, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else if (!(*token = strdup(PQgetvalue(r, 0, 1))))
		st = DB_ERROR;
	else
		*ver = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

enum db_status cpdb_delta_insert(struct db_conn *c, const char *aud, int64_t base, int64_t ver,
                                 const char *token, const char *kid, int64_t iat, int64_t exp,
                                 int *stored)
{
	char b[24];
	snprintf(b, sizeof b, "%lld", (long long)base);
	const char *keys[] = { aud, b };
	return doc_store(c,
		"INSERT INTO config_deltas (aud, base_ver, ver, token, kid, issued_at, expires_at)"
		" VALUES ($1, $2::bigint, $3::bigint, $4, $5, to_timestamp($6::bigint), to_timestamp($7::bigint))"
		" ON CONFLICT DO NOTHING RETURNING 1", keys, 2, ver, token, kid, iat, exp, stored);
}

enum db_status cpdb_delta_prune(struct db_conn *c, const char *aud, int64_t ver, int keep)
{
	return doc_prune(c, "DELETE FROM config_deltas WHERE aud = $1 AND base_ver <= $2::bigint", aud,
	                 ver, keep);
}

/* Runs a statement and allocates one zeroed element of `size` per row
 * of its result, for the caller to fill from *r, then PQclear(*r) and
 * free(*array). When there is no row, or on an error, *array is NULL and
 * there is nothing to release. */
static enum db_status rows_array(struct db_conn *c, PGresult **r, const char *sql, int nparams,
                                 const char *const *params, size_t size, void **array, size_t *n)
{
	*array = NULL;
	*n = 0;
	enum db_status st = db_exec(c, r, sql, nparams, params);
	if (st != DB_OK)
		return st;
	size_t rows = (size_t)PQntuples(*r);
	if (rows == 0 || !(*array = calloc(rows, size))) {
		PQclear(*r);
		*r = NULL;
		return rows == 0 ? DB_OK : DB_ERROR;
	}
	*n = rows;
	return DB_OK;
}

enum db_status cpdb_doc_plans(struct db_conn *c, const char *region, const char *cell,
                              struct cpdb_plan_limits **plans, size_t *n)
{
	const char *p[] = { region, cell };
	PGresult *r;
	void *a;
	/* Every plan of the catalog, when it is no larger than a document
	 * may carry: read without touching the tenants, so that a delta costs
	 * the tenants it changes, not the cell's million. Beyond that, the
	 * plans of the document's tenants. */
	enum db_status st = rows_array(c, &r,
		"SELECT id, rate_limit, burst, monthly_event_quota, retention_days FROM plans"
		" WHERE (SELECT count(*) FROM plans) <= " CPDB_DOC_MAX_PLANS
		"    OR id IN (SELECT plan FROM tenants t WHERE region = $1"
		"              AND " DOC_CELL("t") " AND " DOC_TENANT("t") ")"
		" ORDER BY id", 2, p, sizeof **plans, &a, n);
	if ((*plans = a) == NULL)
		return st;
	for (size_t i = 0; i < *n; i++) {
		struct cpdb_plan_limits *pl = &(*plans)[i];
		snprintf(pl->id, sizeof pl->id, "%s", PQgetvalue(r, (int)i, 0));
		pl->rate_limit = atoll(PQgetvalue(r, (int)i, 1));
		pl->burst = atoll(PQgetvalue(r, (int)i, 2));
		pl->monthly_event_quota = atoll(PQgetvalue(r, (int)i, 3));
		pl->retention_days = atoll(PQgetvalue(r, (int)i, 4));
	}
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_docs_expiring(struct db_conn *c, int64_t within_s, struct cpdb_region_name **regions,
                                  size_t *n)
{
	char w[24];
	snprintf(w, sizeof w, "%lld", (long long)within_s);
	const char *p[] = { w };
	PGresult *r;
	void *a;
	enum db_status st = rows_array(c, &r,
		"SELECT r.name FROM regions r"
		" WHERE EXISTS (SELECT 1 FROM region_documents d WHERE d.region = r.name"
		"               AND d.version = r.config_version"
		"               AND d.expires_at < now() + $1::bigint * interval '1 second')"
		"    OR EXISTS (SELECT 1 FROM signed_documents d WHERE d.region = r.name"
		"               AND d.version = r.config_version"
		"               AND d.expires_at < now() + $1::bigint * interval '1 second')"
		"    OR EXISTS (SELECT 1 FROM config_deltas d WHERE d.aud IN"
		"               (SELECT 'cell:' || name FROM cells WHERE region = r.name)"
		"               AND d.ver = r.config_version"
		"               AND d.expires_at < now() + $1::bigint * interval '1 second')",
		1, p, sizeof **regions, &a, n);
	if ((*regions = a) == NULL)
		return st;
	for (size_t i = 0; i < *n; i++)
		snprintf((*regions)[i].name, sizeof (*regions)[i].name, "%s", PQgetvalue(r, (int)i, 0));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_signed_doc_get(struct db_conn *c, const char *aud, int64_t ver, char **token)
{
	return doc_token(c, "SELECT token FROM signed_documents WHERE aud = $1 AND version = $2::bigint",
	                 aud, ver, token);
}

enum db_status cpdb_signed_doc_insert(struct db_conn *c, const char *aud, const char *region,
                                      int64_t ver, const char *token, const char *kid, int64_t iat,
                                      int64_t exp, int *stored)
{
	const char *keys[] = { aud, region };
	return doc_store(c,
		"INSERT INTO signed_documents (aud, region, version, token, kid, issued_at, expires_at)"
		" VALUES ($1, $2, $3::bigint, $4, $5, to_timestamp($6::bigint), to_timestamp($7::bigint))"
		" ON CONFLICT DO NOTHING RETURNING 1", keys, 2, ver, token, kid, iat, exp, stored);
}

enum db_status cpdb_signed_doc_prune(struct db_conn *c, const char *aud, int64_t ver, int keep)
{
	return doc_prune(c, "DELETE FROM signed_documents WHERE aud = $1 AND version <= $2::bigint", aud,
	                 ver, keep);
}

enum db_status cpdb_routes_content(struct db_conn *c, const char *region, cpdb_route_fn fn, void *arg)
{
	const char *p[] = { region };
	PGresult *r;
	/* Every key not revoked, expired ones too: the router only picks the
	 * cell, whose data plane refuses an expired key itself. */
	enum db_status st = db_exec(c, &r,
		"SELECT k.id, t.cell FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
		" WHERE t.region = $1 AND k.revoked_at IS NULL AND t.cell IS NOT NULL ORDER BY k.id", 1, p);
	if (st != DB_OK)
		return st;
	size_t n = (size_t)PQntuples(r);
	for (size_t i = 0; i < n && st == DB_OK; i++)
		if (fn(PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1), n, arg) != 0)
			st = DB_ERROR;
	PQclear(r);
	return st;
}

enum db_status cpdb_commit_unsynced(struct db_conn *c)
{
	return db_exec(c, NULL, "SET LOCAL synchronous_commit = off", 0, NULL);
}

enum db_status cpdb_credential_insert(struct db_conn *c, const char *region,
                                      const char *token_sha256_hex, json_t **doc)
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { region, hex };
	return db_json_one(c, doc,
		"INSERT INTO region_credentials (region, token_sha256) VALUES ($1, $2::bytea)"
		" RETURNING json_build_object('id', id, 'region', region,"
		"                             'created_at', api_ts(created_at))::text", 2, p);
}

enum db_status cpdb_credential_region(struct db_conn *c, const char *token_sha256_hex,
                                      char region[33])
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { hex };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT region FROM region_credentials WHERE token_sha256 = $1::bytea AND revoked_at IS NULL",
		1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else
		snprintf(region, 33, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

enum db_status cpdb_fleet_upsert(struct db_conn *c, const char *region, const char *instance,
                                 const char *version, const char *source,
                                 const char *last_pull_ok_at, const char *last_error,
                                 const char *stale, const char *cell)
{
	const char *p[] = { region, instance, version, source, last_pull_ok_at, last_error, stale, cell };
	return db_exec(c, NULL,
		"INSERT INTO fleet_instances (region, instance, version, source, last_pull_ok_at,"
		"                             last_error, stale, last_seen, cell)"
		" VALUES ($1, $2, $3::bigint, $4, $5::timestamptz, $6, $7::boolean, now(), $8)"
		" ON CONFLICT (region, instance) DO UPDATE SET version = EXCLUDED.version,"
		"   source = EXCLUDED.source, last_pull_ok_at = EXCLUDED.last_pull_ok_at,"
		"   last_error = EXCLUDED.last_error, stale = EXCLUDED.stale, last_seen = now(),"
		"   cell = EXCLUDED.cell", 8, p);
}

enum db_status cpdb_fleet_list(struct db_conn *c, const char *region, int64_t stale_after_s,
                               json_t **items)
{
	char s[24];
	snprintf(s, sizeof s, "%lld", (long long)stale_after_s);
	const char *p[] = { region, s };
	return db_json_rows(c, items,
		"SELECT json_build_object('instance', f.instance, 'cell', f.cell, 'config_version', f.version,"
		"  'current_version', r.config_version, 'source', f.source,"
		"  'stale', f.stale, 'last_pull_ok_at', api_ts(f.last_pull_ok_at),"
		"  'last_error', f.last_error, 'last_seen', api_ts(f.last_seen),"
		"  'silent', f.last_seen < now() - $2::bigint * interval '1 second')::text"
		" FROM fleet_instances f JOIN regions r ON r.name = f.region"
		" WHERE f.region = $1 ORDER BY f.instance", 2, p);
}

PGconn *cpdb_listen_config(const char *conninfo, PQnoticeProcessor notice)
{
	PGconn *pg = PQconnectdb(conninfo);
	PQsetNoticeProcessor(pg, notice, NULL);
	if (PQstatus(pg) == CONNECTION_OK) {
		PGresult *r = PQexec(pg, "LISTEN region_config");
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
			return pg;
	}
	PQfinish(pg);
	return NULL;
}

int cpdb_config_change(PGconn *pg, char region[33], int64_t *version)
{
	PGnotify *n;
	while ((n = PQnotifies(pg)) != NULL) {
		long long v;
		/* The payload of the trigger of 0003_region_config.sql. */
		int ok = sscanf(n->extra, "%32s %lld", region, &v) == 2;
		PQfreemem(n);
		if (ok) {
			*version = v;
			return 1;
		}
	}
	return 0;
}
