/* The cells of a region: GET/POST /v1/regions/{region}/cells, GET/PATCH
 * /v1/regions/{region}/cells/{cell} (admin) and POST
 * /v1/cells/{cell}/credentials (admin: a cell's credential). Cells are
 * implementation, never the client's concern: only admins see them. A
 * change raises the region's config version (its cell and routes
 * documents name the cells), in the same transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "requests.h"
#include "secret.h"

#define CELL_TOKEN_PREFIX "cct_"

struct cell_ctx {
	struct cell_in in;
	const char *region, *name;
};

/* The region must exist: DB_OK, or a 404 in `out`. */
static enum db_status region_exists(struct db_conn *c, const char *region, struct cp_outcome *out)
{
	json_t *r;
	enum db_status st = cpdb_region_get(c, region, &r);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No region named '%s'.", region);
	json_decref(r);
	return st;
}

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	(void)req;
	struct cell_ctx *ctx = vctx;
	json_t *items;
	enum db_status st = region_exists(c, ctx->region, out);
	if (st != DB_OK)
		return st;
	if ((st = cpdb_cells_list(c, ctx->region, &items)) != DB_OK)
		return st;
	json_t *body = cp_list_result(items);
	json_object_set_new(body, "region", json_string(ctx->region));
	return cp_done(out, 200, body);
}

enum http_result cp_cells_list(struct http_req *req)
{
	struct cell_ctx ctx = { .region = http_req_param(req, "region") };
	if (!ctx.region || !name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	return cp_read(req, list_tx, &ctx);
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct cell_ctx *ctx = vctx;
	json_t *doc, *other;
	enum db_status st = region_exists(c, ctx->region, out);
	if (st != DB_OK)
		return st;
	/* A cell never shadows a region: both name documents and waves. */
	if ((st = cpdb_region_get(c, ctx->in.name, &other)) == DB_OK) {
		json_decref(other);
		out->prob_extra = json_pack("{ss}", "field", "name");
		return cp_fail(out, PROB_CONFLICT, "'%s' is the name of a region; a cell needs another.",
		               ctx->in.name);
	}
	if (st != DB_NOT_FOUND)
		return st;
	if (ctx->in.tenant_id) {
		json_t *t;
		st = cpdb_tenant_get(c, ctx->in.tenant_id, 0, &t);
		if (st != DB_OK && st != DB_NOT_FOUND)
			return st;
		int fits = st == DB_OK && !strcmp(json_string_value(json_object_get(t, "region")), ctx->region) &&
		           strcmp(json_string_value(json_object_get(t, "status")), "deleted") != 0;
		if (st == DB_OK)
			json_decref(t);
		if (!fits) {
			out->prob_extra = json_pack("{ss}", "field", "tenant_id");
			return cp_fail(out, PROB_UNPROCESSABLE, "There is no live tenant %s in region %s.",
			               ctx->in.tenant_id, ctx->region);
		}
	}
	st = cpdb_cell_insert(c, ctx->in.name, ctx->region, ctx->in.kind, ctx->in.tenant_id, &doc);
	if (st == DB_CONFLICT) {
		out->prob_extra = json_pack("{ss}", "field", "name");
		return cp_fail(out, PROB_CONFLICT, "Cell '%s' exists already.", ctx->in.name);
	}
	if (st != DB_OK)
		return st;
	if ((st = cpdb_region_bump(c, ctx->region)) != DB_OK ||
	    (st = cp_audit(c, req, NULL, "cell.create", "cell", ctx->in.name, NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	snprintf(out->location, sizeof out->location, "/v1/regions/%s/cells/%s", ctx->region, ctx->in.name);
	return cp_done(out, 201, doc);
}

enum http_result cp_cells_create(struct http_req *req)
{
	struct cell_ctx ctx = { .region = http_req_param(req, "region") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (!ctx.region || !name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (cp_parse_body(req, cpreq_cell_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_cell(ctx.in.name))
		http_reply_invalid_field(req, "name", "%s", "name must be 2 to 63 characters of a-z, 0-9 and "
		                         "'-', starting with a letter (like us-west-2-acme).");
	else if (strcmp(ctx.in.kind, "shared") && strcmp(ctx.in.kind, "dedicated"))
		http_reply_invalid_field(req, "kind", "%s", "kind must be shared or dedicated.");
	else if (ctx.in.tenant_id && !name_valid_uuid(ctx.in.tenant_id))
		http_reply_invalid_field(req, "tenant_id", "%s", "tenant_id must be a tenant's id.");
	else if (ctx.in.tenant_id && strcmp(ctx.in.kind, "dedicated"))
		http_reply_invalid_field(req, "tenant_id", "%s", "Only a dedicated cell is for one tenant.");
	else
		rc = cp_mutate(req, create_tx, &ctx);
	json_decref(obj);
	return rc;
}

/* The region's cell `name` into *doc: DB_OK, or a 404 in `out`. */
static enum db_status region_cell(struct db_conn *c, const char *region, const char *name,
                                  json_t **doc, struct cp_outcome *out)
{
	enum db_status st = cpdb_cell_get(c, name, doc);
	if (st == DB_OK && strcmp(json_string_value(json_object_get(*doc, "region")), region) != 0) {
		json_decref(*doc);
		st = DB_NOT_FOUND;
	}
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "Region %s has no cell named '%s'.", region, name);
	return st;
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx,
                             struct cp_outcome *out)
{
	(void)req;
	struct cell_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st = region_cell(c, ctx->region, ctx->name, &doc, out);
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

enum http_result cp_cells_get(struct http_req *req)
{
	struct cell_ctx ctx = { .region = http_req_param(req, "region"), .name = http_req_param(req, "cell") };
	if (!ctx.region || !name_valid_region(ctx.region) || !ctx.name || !name_valid_cell(ctx.name))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	return cp_read(req, get_tx, &ctx);
}

static enum db_status update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct cell_ctx *ctx = vctx;
	json_t *before, *after;
	/* Placements in the region wait for this change and see it. */
	enum db_status st = cpdb_cells_lock(c, ctx->region);
	if (st != DB_OK)
		return st;
	if ((st = region_cell(c, ctx->region, ctx->name, &before, out)) != DB_OK)
		return st;
	json_int_t held = json_integer_value(json_object_get(before, "tenants"));
	if (!strcmp(ctx->in.status, "closed") && held > 0) {
		json_decref(before);
		out->prob_extra = json_pack("{ss}", "field", "status");
		return cp_fail(out, PROB_CONFLICT, "Cell %s still holds %lld tenant(s); it closes once it "
		               "holds none (set it draining to stop new placements).", ctx->name, (long long)held);
	}
	st = cpdb_cell_set_status(c, ctx->name, ctx->in.status, &after);
	if (st == DB_OK && (st = cpdb_region_bump(c, ctx->region)) == DB_OK)
		st = cp_audit(c, req, NULL, "cell.update", "cell", ctx->name, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_cells_update(struct http_req *req)
{
	struct cell_ctx ctx = { .region = http_req_param(req, "region"), .name = http_req_param(req, "cell") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (!ctx.region || !name_valid_region(ctx.region) || !ctx.name || !name_valid_cell(ctx.name))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	if (cp_parse_body(req, cpreq_cell_update, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (strcmp(ctx.in.status, "active") && strcmp(ctx.in.status, "draining") &&
	    strcmp(ctx.in.status, "closed"))
		http_reply_invalid_field(req, "status", "%s", "status must be active, draining or closed.");
	else
		rc = cp_mutate(req, update_tx, &ctx);
	json_decref(obj);
	return rc;
}

struct cred_ctx {
	const char *cell;
	char token[128];
};

static enum db_status cred_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	struct cred_ctx *ctx = vctx;
	char hex[65];
	json_t *doc, *cell;
	enum db_status st = cpdb_cell_get(c, ctx->cell, &cell);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No cell named '%s'.", ctx->cell);
	if (st != DB_OK)
		return st;
	json_decref(cell);
	snprintf(ctx->token, sizeof ctx->token, CELL_TOKEN_PREFIX "%s_", ctx->cell);
	if (secret_token_complete(ctx->token, sizeof ctx->token, hex) != 0)
		return DB_ERROR;
	if ((st = cpdb_cell_credential_insert(c, ctx->cell, hex, &doc)) != DB_OK)
		return st;
	if ((st = cp_audit(c, req, NULL, "cell.credential.create", "cell_credential",
	                   json_string_value(json_object_get(doc, "id")), NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	return cp_credential_created(out, doc, ctx->token);
}

enum http_result cp_cell_credentials_create(struct http_req *req)
{
	struct cred_ctx ctx = { .cell = http_req_param(req, "cell") };
	if (!ctx.cell || !name_valid_cell(ctx.cell))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	enum http_result rc = cp_mutate(req, cred_tx, &ctx);
	memset(ctx.token, 0, sizeof ctx.token);
	return rc;
}
