/* API keys of a tenant: POST/GET /v1/tenants/{id}/api-keys and
 * DELETE /v1/tenants/{id}/api-keys/{key_id} (revocation). The secret is
 * returned once, at creation; the database keeps only its SHA-256, and an
 * idempotent replay of the creation gets it from a sealed record. Every
 * change raises the config version of the tenant's home region. */
#include <stdio.h>
#include <string.h>

#include "api_keys.h"
#include "apikey.h"
#include "auth.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "requests.h"

struct key_ctx {
	struct key_in in;
	const char *tenant_id, *key_id;
	char *scopes;    /* JSON text */
};


static enum db_status tenant_for_keys(struct db_conn *c, const char *tenant_id, int for_update,
                                      struct cp_outcome *out, json_t **tenant)
{
	enum db_status st = cpdb_tenant_get(c, tenant_id, for_update, tenant);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	if (!strcmp(json_string_value(json_object_get(*tenant, "status")), "deleted")) {
		json_decref(*tenant);
		*tenant = NULL;
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	}
	return DB_OK;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct key_ctx *ctx = vctx;
	json_t *tenant, *doc;
	char text[APIKEY_TEXT_MAX];
	struct apikey k;
	enum db_status st = tenant_for_keys(c, ctx->tenant_id, 1, out, &tenant);
	if (st != DB_OK)
		return st;
	char region[APIKEY_REGION_MAX + 1];
	snprintf(region, sizeof region, "%s", json_string_value(json_object_get(tenant, "region")));
	json_decref(tenant);

	if (ctx->in.expires_at) {
		/* The database compares with its own clock. */
		int future, representable;
		st = cpdb_api_key_expiry_check(c, ctx->in.expires_at, &future, &representable);
		if (st == DB_INVALID) {
			out->prob_extra = json_pack("{ss}", "field", "expires_at");
			return cp_fail(out, PROB_VALIDATION, "expires_at is not a valid time.");
		}
		if (st != DB_OK)
			return st;
		if (!future || !representable) {
			out->prob_extra = json_pack("{ss}", "field", "expires_at");
			return cp_fail(out, PROB_VALIDATION, "expires_at must be in the future and before 9999-12-31 (UTC).");
		}
	}
	if (apikey_generate(region, text, &k) != 0)
		return DB_ERROR;
	st = cpdb_api_key_insert(c, k.id, ctx->tenant_id, ctx->in.name, k.secret_sha256, ctx->scopes,
	                         ctx->in.expires_at, &doc);
	if (st != DB_OK)
		return st;
	if ((st = cpdb_region_bump(c, region)) != DB_OK ||
	    (st = cp_audit(c, req, ctx->tenant_id, "api_key.create", "api_key", k.id, NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	/* The audit record above has no secret; only the response does. */
	json_object_set_new(doc, "secret", json_string(text));
	memset(text, 0, sizeof text);
	out->sealed = 1;
	snprintf(out->location, sizeof out->location, "/v1/tenants/%s/api-keys/%s", ctx->tenant_id, k.id);
	return cp_done(out, 201, doc);
}

enum http_result cp_api_keys_create(struct http_req *req)
{
	struct key_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	size_t i;
	json_t *v;
	if (cp_require_tenant(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_key_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!*ctx.in.name) {
		http_reply_invalid_field(req, "name", "%s", "name must not be empty.");
		goto out;
	}
	if (json_array_size(ctx.in.scopes) == 0)
		goto bad_scopes;
	json_array_foreach(ctx.in.scopes, i, v) {
		const char *s = json_string_value(v);
		if (!s || (strcmp(s, "events:write") && strcmp(s, "events:read")))
			goto bad_scopes;
	}
	if (ctx.in.expires_at && !name_valid_timestamp(ctx.in.expires_at)) {
		http_reply_invalid_field(req, "expires_at", "%s", "expires_at must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z.");
		goto out;
	}
	ctx.scopes = json_dumps(ctx.in.scopes, JSON_COMPACT);
	rc = cp_mutate(req, create_tx, &ctx);
	free(ctx.scopes);
	goto out;
bad_scopes:
	http_reply_invalid_field(req, "scopes", "%s", "scopes must be a non-empty list of events:read and events:write.");
out:
	json_decref(obj);
	return rc;
}

struct list_ctx {
	const char *tenant_id;
	struct cp_page pg;
};

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	(void)req;
	struct list_ctx *ctx = vctx;
	json_t *tenant, *items;
	enum db_status st = tenant_for_keys(c, ctx->tenant_id, 0, out, &tenant);
	if (st != DB_OK)
		return st;
	json_decref(tenant);
	st = cpdb_api_keys_page(c, ctx->tenant_id, &ctx->pg, &items);
	return st == DB_OK ? cp_done(out, 200, cp_page_result(items, ctx->pg.limit)) : st;
}

enum http_result cp_api_keys_list(struct http_req *req)
{
	struct list_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	if (cp_require_tenant(req, ctx.tenant_id, 0) != HTTP_GO_ON || cp_parse_page(req, &ctx.pg, CP_CURSOR_KEY_ID) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}

static enum db_status revoke_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct key_ctx *ctx = vctx;
	json_t *tenant, *before, *after;
	enum db_status st = tenant_for_keys(c, ctx->tenant_id, 1, out, &tenant);
	if (st != DB_OK)
		return st;
	st = cpdb_api_key_get(c, ctx->tenant_id, ctx->key_id, &before);
	if (st == DB_NOT_FOUND) {
		json_decref(tenant);
		return cp_fail(out, PROB_NOT_FOUND, "No such API key.");
	}
	if (st == DB_OK)
		st = cpdb_api_key_revoke(c, ctx->tenant_id, ctx->key_id, &after);
	/* The key may be listed as moved in the region it was made in. */
	if (st == DB_OK &&
	    (st = cpdb_region_bump(c, json_string_value(json_object_get(tenant, "region")))) == DB_OK &&
	    (st = cpdb_moved_keys_bump(c, ctx->tenant_id)) == DB_OK)
		st = cp_audit(c, req, ctx->tenant_id, "api_key.revoke", "api_key", ctx->key_id, before, after);
	json_decref(tenant);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_api_keys_delete(struct http_req *req)
{
	struct key_ctx ctx = { .tenant_id = http_req_param(req, "id"), .key_id = http_req_param(req, "key_id") };
	if (cp_require_tenant(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (strlen(ctx.key_id) != APIKEY_ID_HEX || strspn(ctx.key_id, "0123456789abcdef") != APIKEY_ID_HEX)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such API key.");
	return cp_mutate(req, revoke_tx, &ctx);
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx,
                             struct cp_outcome *out)
{
	(void)req;
	struct key_ctx *ctx = vctx;
	json_t *tenant, *doc;
	enum db_status st = tenant_for_keys(c, ctx->tenant_id, 0, out, &tenant);
	if (st != DB_OK)
		return st;
	json_decref(tenant);
	st = cpdb_api_key_get(c, ctx->tenant_id, ctx->key_id, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such API key.");
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

enum http_result cp_api_keys_get(struct http_req *req)
{
	struct key_ctx ctx = { .tenant_id = http_req_param(req, "id"), .key_id = http_req_param(req, "key_id") };
	if (cp_require_tenant(req, ctx.tenant_id, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (strlen(ctx.key_id) != APIKEY_ID_HEX || strspn(ctx.key_id, "0123456789abcdef") != APIKEY_ID_HEX)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such API key.");
	return cp_read(req, get_tx, &ctx);
}
