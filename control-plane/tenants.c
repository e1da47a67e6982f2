/* Tenants and their home region: POST/GET /v1/tenants,
 * GET/PATCH/DELETE /v1/tenants/{id}, and the public region lookup
 * GET /v1/lookup?tenant=<slug>. Every change raises the config version of
 * the tenant's home region, in the same transaction.
 *
 * Placement: a new tenant goes to the cell an admin names, or else to the
 * active shared cell of its region with the fewest tenants not deleted
 * (ties: name order; the rule is cell_least_loaded() of the migrations).
 * A dedicated cell is only ever used when named. Only admins see a
 * tenant's cell: clients never need it. */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cpdb.h"
#include "http.h"
#include "moves.h"
#include "mutate.h"
#include "names.h"
#include "requests.h"
#include "principal.h"
#include "tenants.h"


/* region is listed so that trying to change it gets a 409 that says why,
 * not a 400 about an unknown field. */

struct tenant_ctx {
	struct tenant_in in;
	const char *id;
};


/* Region and plan must exist; the region must take new tenants. */
static enum db_status check_refs(struct db_conn *c, const char *region, const char *plan,
                                 struct cp_outcome *out)
{
	enum db_status st;
	if (region) {
		json_t *r;
		st = cpdb_region_get(c, region, &r);
		if (st == DB_NOT_FOUND) {
			out->prob_extra = json_pack("{ss}", "field", "region");
			return cp_fail(out, PROB_UNPROCESSABLE, "There is no region named '%s'.", region);
		}
		if (st != DB_OK)
			return st;
		int active = !strcmp(json_string_value(json_object_get(r, "status")), "active");
		json_decref(r);
		if (!active) {
			out->prob_extra = json_pack("{ss}", "field", "region");
			return cp_fail(out, PROB_UNPROCESSABLE,
			               "Region '%s' is not active and takes no new tenants.", region);
		}
	}
	if (plan) {
		int exists;
		if ((st = cpdb_plan_exists(c, plan, &exists)) != DB_OK)
			return st;
		if (!exists) {
			out->prob_extra = json_pack("{ss}", "field", "plan");
			return cp_fail(out, PROB_UNPROCESSABLE, "There is no plan named '%s'.", plan);
		}
	}
	return DB_OK;
}

/* Chooses the new tenant's cell into `cell`: the named one if it may take
 * it, else the least loaded. The region's cells stay locked until the
 * transaction ends, so concurrent placements count each other. */
static enum db_status place(struct db_conn *c, const char *region, const char *named, char cell[64],
                            struct cp_outcome *out)
{
	enum db_status st = cpdb_cells_lock(c, region);
	if (st != DB_OK)
		return st;
	if (!named) {
		st = cpdb_cell_least_loaded(c, region, cell);
		if (st == DB_NOT_FOUND)
			return cp_fail(out, PROB_CONFLICT, "Region %s has no active shared cell to place a tenant "
			               "in; add a cell or set one active.", region);
		return st;
	}
	json_t *doc;
	out->prob_extra = json_pack("{ss}", "field", "cell");
	st = cpdb_cell_get(c, named, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_UNPROCESSABLE, "There is no cell named '%s'.", named);
	if (st != DB_OK)
		return st;
	const char *in = json_string_value(json_object_get(doc, "region"));
	const char *status = json_string_value(json_object_get(doc, "status"));
	const char *owner = json_string_value(json_object_get(doc, "tenant_id"));
	int dedicated = !strcmp(json_string_value(json_object_get(doc, "kind")), "dedicated");
	json_int_t held = json_integer_value(json_object_get(doc, "tenants"));
	if (strcmp(in, region) != 0)
		st = cp_fail(out, PROB_UNPROCESSABLE, "Cell %s is in region %s, not %s.", named, in, region);
	else if (strcmp(status, "active") != 0)
		st = cp_fail(out, PROB_CONFLICT, "Cell %s is %s and takes no new tenants.", named, status);
	else if (dedicated && (owner || held > 0))
		st = cp_fail(out, PROB_CONFLICT, "Cell %s is dedicated to another tenant.", named);
	else {
		json_decref(out->prob_extra);
		out->prob_extra = NULL;
		snprintf(cell, 64, "%s", named);
	}
	json_decref(doc);
	return st;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct tenant_ctx *ctx = vctx;
	json_t *doc, *cd;
	char cell[64];
	enum db_status st = check_refs(c, ctx->in.region, ctx->in.plan, out);
	if (st != DB_OK || (st = place(c, ctx->in.region, ctx->in.cell, cell, out)) != DB_OK)
		return st;
	st = cpdb_tenant_insert(c, ctx->in.slug, ctx->in.name, ctx->in.region, ctx->in.plan, cell, &doc);
	if (st == DB_CONFLICT) {
		out->prob_extra = json_pack("{ss}", "field", "slug");
		return cp_fail(out, PROB_CONFLICT, "The slug '%s' is taken.", ctx->in.slug);
	}
	if (st != DB_OK)
		return st;
	const char *id = json_string_value(json_object_get(doc, "id"));
	/* A dedicated cell is its first tenant's. */
	if ((st = cpdb_cell_get(c, cell, &cd)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	int dedicated = !strcmp(json_string_value(json_object_get(cd, "kind")), "dedicated");
	json_decref(cd);
	if ((dedicated && (st = cpdb_cell_dedicate(c, cell, id)) != DB_OK) ||
	    (st = cpdb_region_bump(c, ctx->in.region)) != DB_OK ||
	    (st = cp_audit(c, req, id, "tenant.create", "tenant", id, NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	snprintf(out->location, sizeof out->location, "/v1/tenants/%s", id);
	return cp_done(out, 201, doc);
}

enum http_result cp_tenants_create(struct http_req *req)
{
	struct tenant_ctx ctx = { 0 };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_tenant_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!*ctx.in.name)
		http_reply_invalid_field(req, "name", "%s", "name must not be empty.");
	else if (!name_valid_slug(ctx.in.slug))
		http_reply_invalid_field(req, "slug", "%s", "slug must be 3 to 63 characters of a-z, 0-9 and '-', "
		                       "starting and ending with a letter or digit.");
	else if (!name_valid_region(ctx.in.region))
		http_reply_invalid_field(req, "region", "%s", "region must be a region name like 'eu'.");
	else if (!name_valid_region(ctx.in.plan))
		http_reply_invalid_field(req, "plan", "%s", "plan must be a plan id like 'pro'.");
	else if (ctx.in.cell && !name_valid_cell(ctx.in.cell))
		http_reply_invalid_field(req, "cell", "%s", "cell must be a cell name like us-east-1.");
	else
		rc = cp_mutate(req, create_tx, &ctx);
	json_decref(obj);
	return rc;
}

/* Clients never need a tenant's cell: only admins see it. */
static json_t *view(struct http_req *req, json_t *docs)
{
	if (cp_principal(req)->role == CP_ROLE_ADMIN)
		return docs;
	if (json_is_object(docs)) {
		json_object_del(docs, "cell");
	} else {
		size_t i;
		json_t *d;
		json_array_foreach(docs, i, d)
			json_object_del(d, "cell");
	}
	return docs;
}

struct list_ctx {
	const char *region, *status, *only;
	struct cp_page pg;
};

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	(void)req;
	struct list_ctx *ctx = vctx;
	json_t *items;
	enum db_status st = cpdb_tenants_page(c, ctx->region, ctx->status, ctx->only, &ctx->pg, &items);
	return st == DB_OK ? cp_done(out, 200, cp_page_result(view(req, items), ctx->pg.limit)) : st;
}

enum http_result cp_tenants_list(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct list_ctx ctx = { .region = http_req_query(req, "region"),
		                    .status = http_req_query(req, "status") };
	if (ctx.region && !name_valid_region(ctx.region))
		return http_reply_invalid_field(req, "region", "%s", "region must be a region name like 'eu'.");
	if (ctx.status && strcmp(ctx.status, "active") && strcmp(ctx.status, "suspended") &&
	    strcmp(ctx.status, "deleted"))
		return http_reply_invalid_field(req, "status", "%s", "status must be active, suspended or deleted.");
	if (cp_parse_page(req, &ctx.pg, CP_CURSOR_UUID) != HTTP_GO_ON)
		return HTTP_REPLIED;
	/* A tenant user sees its own tenant only. */
	if (p->role != CP_ROLE_ADMIN)
		ctx.only = p->tenant_id;
	return cp_read(req, list_tx, &ctx);
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx,
                             struct cp_outcome *out)
{
	struct tenant_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st = cpdb_tenant_get(c, ctx->id, 0, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	return st == DB_OK ? cp_done(out, 200, view(req, doc)) : st;
}

enum http_result cp_tenants_get(struct http_req *req)
{
	struct tenant_ctx ctx = { .id = http_req_param(req, "id") };
	if (cp_require_tenant(req, ctx.id, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, get_tx, &ctx);
}

static enum db_status update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct tenant_ctx *ctx = vctx;
	json_t *before, *after;
	enum db_status st = cpdb_tenant_get(c, ctx->id, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	const char *region = json_string_value(json_object_get(before, "region"));
	const char *status = json_string_value(json_object_get(before, "status"));
	if (ctx->in.region && strcmp(ctx->in.region, region) != 0) {
		json_decref(before);
		return cp_fail(out, PROB_CONFLICT,
		               "A tenant's home region is fixed at creation: its data lives only there "
		               "and is never moved. Create a new tenant in the other region instead.");
	}
	if (!strcmp(status, "deleted")) {
		json_decref(before);
		return cp_fail(out, PROB_CONFLICT, "The tenant has been deleted and cannot change.");
	}
	if ((st = check_refs(c, NULL, ctx->in.plan, out)) != DB_OK) {
		json_decref(before);
		return st;
	}
	/* Invoices and their late adjustments are in one currency per tenant. */
	if (ctx->in.plan) {
		char now[4], next[4];
		if ((st = cpdb_plan_currency(c, json_string_value(json_object_get(before, "plan")), now)) != DB_OK ||
		    (st = cpdb_plan_currency(c, ctx->in.plan, next)) != DB_OK) {
			json_decref(before);
			return st;
		}
		if (strcmp(now, next) != 0) {
			json_decref(before);
			out->prob_extra = json_pack("{ss}", "field", "plan");
			return cp_fail(out, PROB_CONFLICT, "Plan '%s' is billed in %s and this tenant in %s: a "
			                                   "tenant's currency cannot change.", ctx->in.plan, next, now);
		}
	}
	st = cpdb_tenant_update(c, ctx->id, ctx->in.name, ctx->in.plan, ctx->in.status, &after);
	if (st == DB_OK && (st = cpdb_region_bump(c, region)) == DB_OK)
		st = cp_audit(c, req, ctx->id, "tenant.update", "tenant", ctx->id, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, view(req, after));
}

enum http_result cp_tenants_update(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct tenant_ctx ctx = { .id = http_req_param(req, "id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_require_tenant(req, ctx.id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_tenant_update, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (ctx.in.name && !*ctx.in.name)
		http_reply_invalid_field(req, "name", "%s", "name must not be empty.");
	else if (ctx.in.status && strcmp(ctx.in.status, "active") && strcmp(ctx.in.status, "suspended"))
		http_reply_invalid_field(req, "status", "%s", "status must be active or suspended (DELETE offboards a tenant).");
	else if (ctx.in.plan && !name_valid_region(ctx.in.plan))
		http_reply_invalid_field(req, "plan", "%s", "plan must be a plan id like 'pro'.");
	else if (ctx.in.region && !name_valid_region(ctx.in.region))
		http_reply_invalid_field(req, "region", "%s", "region must be a region name like 'eu'.");
	else if (p->role != CP_ROLE_ADMIN && (ctx.in.plan || ctx.in.status))
		http_reply_problem(req, PROB_FORBIDDEN, "Only platform admins change a tenant's plan or status.");
	else
		rc = cp_mutate(req, update_tx, &ctx);
	json_decref(obj);
	return rc;
}

static enum db_status delete_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct tenant_ctx *ctx = vctx;
	json_t *before, *after;
	enum db_status st = cpdb_tenant_get(c, ctx->id, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	if (!strcmp(json_string_value(json_object_get(before, "status")), "deleted")) {
		json_decref(before);
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	}
	const char *region = json_string_value(json_object_get(before, "region"));
	/* A move of a tenant that is going away has nothing left to move. */
	if ((st = cp_moves_abort_open(c, req, ctx->id)) != DB_OK) {
		json_decref(before);
		return st;
	}
	st = cpdb_tenant_update(c, ctx->id, NULL, NULL, "deleted", &after);
	if (st == DB_OK && (st = cpdb_tenant_offboard(c, ctx->id)) == DB_OK &&
	    (st = cpdb_erasure_request(c, ctx->id)) == DB_OK &&
	    (st = cpdb_region_bump(c, region)) == DB_OK &&
	    (st = cpdb_moved_keys_bump(c, ctx->id)) == DB_OK)
		st = cp_audit(c, req, ctx->id, "tenant.delete", "tenant", ctx->id, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_tenants_delete(struct http_req *req)
{
	struct tenant_ctx ctx = { .id = http_req_param(req, "id") };
	if (cp_require_tenant(req, ctx.id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_mutate(req, delete_tx, &ctx);
}

static enum db_status lookup_tx(struct db_conn *c, struct http_req *req, void *vslug,
                                struct cp_outcome *out)
{
	(void)req;
	json_t *doc;
	enum db_status st = cpdb_tenant_by_slug(c, vslug, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No tenant with that slug.");
	if (st != DB_OK)
		return st;
	json_t *body = json_pack("{sO sO sO}", "slug", json_object_get(doc, "slug"), "region",
	                         json_object_get(doc, "region"), "endpoint", json_object_get(doc, "endpoint"));
	json_decref(doc);
	return cp_done(out, 200, body);
}

enum http_result cp_lookup(struct http_req *req)
{
	const char *slug = http_req_query(req, "tenant");
	if (!slug)
		return http_reply_invalid_field(req, "tenant", "%s", "Give the tenant's slug: /v1/lookup?tenant=<slug>.");
	if (!name_valid_slug(slug))
		return http_reply_problem(req, PROB_NOT_FOUND, "No tenant with that slug.");
	return cp_read(req, lookup_tx, (void *)slug);
}
