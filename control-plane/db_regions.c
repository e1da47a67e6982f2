/* SQL of the region catalog. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"
#include "jsonx.h"

/* Where the region publishes the public keys of its log checkpoints: its
 * endpoint's /.well-known/jwks.json, served by any data plane of the
 * region (its cells share the key ring). Derived, never stored: it follows
 * the endpoint. */
static int add_log_jwks_url(json_t *region)
{
	const char *ep = json_string_value(json_object_get(region, "endpoint"));
	if (!ep)
		return 0;
	size_t n = strlen(ep);
	while (n && ep[n - 1] == '/')
		n--;
	char url[512];
	snprintf(url, sizeof url, "%.*s/.well-known/jwks.json", (int)n, ep);
	return json_object_set_new(region, "log_jwks_url", json_string(url));
}

/* The view's member is endpoint_url, which the previous build reads while
 * a rollout runs both; the API calls it endpoint everywhere. */
static enum db_status region_vocab(enum db_status st, json_t **doc)
{
	size_t i;
	json_t *r;
	if (st != DB_OK)
		return st;
	jsonx_rename(*doc, "endpoint_url", "endpoint");
	if (json_is_array(*doc)) {
		json_array_foreach(*doc, i, r)
			if (add_log_jwks_url(r) != 0)
				goto fail;
	} else if (add_log_jwks_url(*doc) != 0) {
		goto fail;
	}
	return DB_OK;
fail:
	json_decref(*doc);
	*doc = NULL;
	return DB_ERROR;
}

/* The view's document and the region's log-stream fields (residency.h),
 * which the view of an older migration does not have. */
#define REGION_DOC                                                                                \
	"(a.doc::jsonb || jsonb_build_object('stream_hosts', to_jsonb(r.stream_hosts),"            \
	"  'stream_s3_regions', to_jsonb(r.stream_s3_regions), 'stream_key', r.stream_key))::text" \
	" FROM api_regions a JOIN regions r ON r.name = a.name"

enum db_status cpdb_regions_list(struct db_conn *c, json_t **items)
{
	return region_vocab(db_json_rows(c, items, "SELECT " REGION_DOC " ORDER BY a.wave, a.name", 0, NULL),
	                    items);
}

enum db_status cpdb_region_get(struct db_conn *c, const char *name, json_t **doc)
{
	const char *p[] = { name };
	return region_vocab(db_json_one(c, doc, "SELECT " REGION_DOC " WHERE a.name = $1", 1, p), doc);
}

enum db_status cpdb_region_insert(struct db_conn *c, const char *name, const char *display_name,
                                  const char *cloud_regions, const char *endpoint, const char *wave,
                                  const char *status, json_t **doc)
{
	const char *p[] = { name, display_name, cloud_regions, endpoint, wave, status };
	enum db_status st = db_exec(c, NULL,
		"INSERT INTO regions (name, display_name, cloud_regions, endpoint_url, wave, status)"
		" VALUES ($1, $2, ARRAY(SELECT json_array_elements_text($3::json)), $4, $5::int,"
		"         coalesce($6, 'active'))", 6, p);
	return st == DB_OK ? cpdb_region_get(c, name, doc) : st;
}

enum db_status cpdb_region_update(struct db_conn *c, const char *name, const char *display_name,
                                  const char *cloud_regions, const char *endpoint, const char *wave,
                                  const char *status, json_t **doc)
{
	const char *p[] = { name, display_name, cloud_regions, endpoint, wave, status };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"UPDATE regions SET"
		"  display_name = coalesce($2, display_name),"
		"  cloud_regions = CASE WHEN $3::json IS NULL THEN cloud_regions"
		"                  ELSE ARRAY(SELECT json_array_elements_text($3::json)) END,"
		"  endpoint_url = coalesce($4, endpoint_url),"
		"  wave = coalesce($5::int, wave),"
		"  status = coalesce($6, status),"
		"  updated_at = now()"
		" WHERE name = $1", 6, p);
	if (st != DB_OK)
		return st;
	int n = atoi(PQcmdTuples(r));
	PQclear(r);
	return n ? cpdb_region_get(c, name, doc) : DB_NOT_FOUND;
}

enum db_status cpdb_regions_bump_all(struct db_conn *c)
{
	return db_exec(c, NULL, "UPDATE regions SET config_version = config_version + 1", 0, NULL);
}

enum db_status cpdb_region_bump(struct db_conn *c, const char *region)
{
	const char *p[] = { region };
	return db_exec(c, NULL,
	               "UPDATE regions SET config_version = config_version + 1 WHERE name = $1", 1, p);
}

enum db_status cpdb_regions_count(struct db_conn *c, long *n)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT count(*) FROM regions", 0, NULL);
	if (st == DB_OK) {
		*n = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}
