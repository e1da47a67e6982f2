/* Tenant moves and cell drains: the control plane's side (moves.h). The
 * state of a move lives here; the mover of the target region drives it
 * step by step, and every step is checked against the state it leaves.
 *
 *   awaiting_approval --approve--> copying --> catching_up --> cutover --> verifying --complete--> done
 *   awaiting_approval, copying, catching_up --abort--> aborted
 *   copying, catching_up, cutover, verifying --mover reports--> failed
 *
 * The abort and the step to cutover take the move's row lock, so exactly
 * one of them wins; from cutover on only the mover ends a move. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "config_doc.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "log.h"
#include "movecred.h"
#include "moves.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"
#include "requests.h"
#include "signing_keys.h"

static const char *const states[] = { "awaiting_approval", "copying", "catching_up", "cutover",
	                                  "verifying", "done", "aborted", "failed", NULL };

static int state_known(const char *s)
{
	for (int i = 0; states[i]; i++)
		if (!strcmp(s, states[i]))
			return 1;
	return 0;
}

static int is(const char *s, const char *a)
{
	return s && !strcmp(s, a);
}

/* A state the mover is working in. */
static int mover_state(const char *s)
{
	return is(s, "copying") || is(s, "catching_up") || is(s, "cutover") || is(s, "verifying");
}

/* The steps a mover may report from `from`: its next step, or failed. */
static int step_allowed(const char *from, const char *to)
{
	if (!mover_state(from))
		return 0;
	return is(to, from) || is(to, "failed") || (is(from, "copying") && is(to, "catching_up")) ||
	       (is(from, "catching_up") && is(to, "cutover")) || (is(from, "cutover") && is(to, "verifying"));
}

static const char *js(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A mover's id: 1..64 of [A-Za-z0-9._-]. */
static int mover_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

/* A digest: a decimal number of 1..64 digits. */
static int digest_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Two decimal numbers are equal (leading zeros aside). */
static int digest_equal(const char *a, const char *b)
{
	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	return !strcmp(a, b);
}

/* Clients never need cells: only admins see them. */
static json_t *view(struct http_req *req, json_t *docs)
{
	if (cp_principal(req)->role == CP_ROLE_ADMIN)
		return docs;
	json_t *d;
	size_t i;
	if (json_is_object(docs)) {
		json_object_del(docs, "from_cell");
		json_object_del(docs, "to_cell");
		json_object_del(docs, "drain_id");
	} else {
		json_array_foreach(docs, i, d) {
			json_object_del(d, "from_cell");
			json_object_del(d, "to_cell");
			json_object_del(d, "drain_id");
		}
	}
	return docs;
}

/* ---- POST /v1/tenants/{id}/moves ---- */

struct move_ctx {
	struct move_in in;
	uint64_t present;
	const char *tenant, *move;
};

/* The target cell of a cell move: DB_OK, or a client error in `out`. */
static enum db_status check_to_cell(struct db_conn *c, const char *tenant, const char *region,
                                    const char *from_cell, const char *to_cell, struct cp_outcome *out)
{
	json_t *cell;
	enum db_status st = cpdb_cells_lock(c, region);
	if (st != DB_OK)
		return st;
	out->prob_extra = json_pack("{ss}", "field", "to_cell");
	if ((st = cpdb_cell_get(c, to_cell, &cell)) == DB_NOT_FOUND)
		return cp_fail(out, PROB_UNPROCESSABLE, "There is no cell named '%s'.", to_cell);
	if (st != DB_OK)
		return st;
	const char *owner = js(cell, "tenant_id");
	if (strcmp(js(cell, "region"), region) != 0)
		st = cp_fail(out, PROB_UNPROCESSABLE, "Cell %s is in region %s, not the tenant's region %s; "
		             "move between regions with to_region.", to_cell, js(cell, "region"), region);
	else if (!strcmp(to_cell, from_cell))
		st = cp_fail(out, PROB_CONFLICT, "The tenant lives in cell %s already.", to_cell);
	else if (strcmp(js(cell, "status"), "active") != 0)
		st = cp_fail(out, PROB_CONFLICT, "Cell %s is %s and takes no new tenants.", to_cell,
		             js(cell, "status"));
	else if (!strcmp(js(cell, "kind"), "dedicated") &&
	         (owner ? strcmp(owner, tenant) != 0 : json_integer_value(json_object_get(cell, "tenants")) > 0))
		st = cp_fail(out, PROB_CONFLICT, "Cell %s is dedicated to another tenant.", to_cell);
	else {
		json_decref(out->prob_extra);
		out->prob_extra = NULL;
	}
	json_decref(cell);
	return st;
}

/* The target region of a region move and its cell by placement. */
static enum db_status check_to_region(struct db_conn *c, const char *from_region, const char *to_region,
                                      char cell[64], struct cp_outcome *out)
{
	json_t *r;
	out->prob_extra = json_pack("{ss}", "field", "to_region");
	enum db_status st = cpdb_region_get(c, to_region, &r);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_UNPROCESSABLE, "There is no region named '%s'.", to_region);
	if (st != DB_OK)
		return st;
	int active = !strcmp(js(r, "status"), "active");
	json_decref(r);
	if (!strcmp(to_region, from_region))
		return cp_fail(out, PROB_CONFLICT, "The tenant lives in region %s already.", to_region);
	if (!active)
		return cp_fail(out, PROB_CONFLICT, "Region '%s' is not active and takes no tenants.", to_region);
	if ((st = cpdb_cells_lock(c, to_region)) != DB_OK)
		return st;
	if ((st = cpdb_cell_least_loaded(c, to_region, cell)) == DB_NOT_FOUND)
		return cp_fail(out, PROB_CONFLICT, "Region %s has no active shared cell to place the tenant in.",
		               to_region);
	if (st == DB_OK) {
		json_decref(out->prob_extra);
		out->prob_extra = NULL;
	}
	return st;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct move_ctx *ctx = vctx;
	struct cp_app *app = http_req_app(req);
	json_t *t, *doc = NULL;
	char cell[64];
	enum db_status st = cpdb_tenant_get(c, ctx->tenant, 1, &t);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	const char *region = js(t, "region"), *from_cell = js(t, "cell");
	if (!strcmp(js(t, "status"), "deleted")) {
		st = cp_fail(out, PROB_CONFLICT, "The tenant has been deleted and cannot move.");
		goto out;
	}
	if (!from_cell) {
		st = cp_fail(out, PROB_CONFLICT, "The tenant is not placed in a cell and cannot move.");
		goto out;
	}
	if (ctx->in.to_cell) {
		st = check_to_cell(c, ctx->tenant, region, from_cell, ctx->in.to_cell, out);
		snprintf(cell, sizeof cell, "%s", ctx->in.to_cell);
	} else {
		st = check_to_region(c, region, ctx->in.to_region, cell, out);
	}
	if (st != DB_OK)
		goto out;
	struct cpdb_move_new m = {
		.tenant_id = ctx->tenant, .kind = ctx->in.to_cell ? "cell" : "region",
		.from_region = region, .from_cell = from_cell,
		.to_region = ctx->in.to_cell ? region : ctx->in.to_region, .to_cell = cell,
		.state = ctx->in.to_cell ? "copying" : "awaiting_approval",
		.requested_by = cp_principal(req)->scope,
		.erase_after_seconds = (ctx->present & 4) ? ctx->in.erase_after_seconds
		                                          : app->cfg.move_erase_after_ms / 1000,
	};
	st = cpdb_move_insert(c, &m, &doc);
	if (st == DB_CONFLICT) {
		st = cp_fail(out, PROB_CONFLICT, "The tenant has a move that has not ended; abort it or "
		             "wait for it to end first.");
		goto out;
	}
	if (st != DB_OK || (st = cp_audit(c, req, ctx->tenant, "move.requested", "move", js(doc, "id"), NULL,
	                                  doc)) != DB_OK)
		goto out;
	snprintf(out->location, sizeof out->location, "/v1/tenants/%s/moves/%s", ctx->tenant, js(doc, "id"));
	st = cp_done(out, 201, view(req, doc));
	doc = NULL;
out:
	json_decref(doc);
	json_decref(t);
	return st;
}

enum http_result cp_moves_create(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct move_ctx ctx = { .tenant = http_req_param(req, "id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_require_tenant(req, ctx.tenant, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_move_create, &ctx.in, &ctx.present, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!ctx.in.to_cell == !ctx.in.to_region)
		http_reply_invalid_field(req, ctx.in.to_cell ? "to_region" : "to_cell", "%s",
		                         "Give exactly one of to_cell (a cell of the tenant's region) and "
		                         "to_region (another region).");
	else if (ctx.in.to_cell && !name_valid_cell(ctx.in.to_cell))
		http_reply_invalid_field(req, "to_cell", "%s", "to_cell must be a cell name like us-east-1.");
	else if (ctx.in.to_region && !name_valid_region(ctx.in.to_region))
		http_reply_invalid_field(req, "to_region", "%s", "to_region must be a region name like 'eu'.");
	else if (ctx.in.to_cell && p->role != CP_ROLE_ADMIN)
		http_reply_problem(req, PROB_FORBIDDEN, "Only platform admins move a tenant between cells.");
	else if (ctx.in.to_region && p->role != CP_ROLE_OWNER)
		http_reply_problem(req, PROB_FORBIDDEN, "A move between regions is requested by the tenant's "
		                   "owner, and an admin approves it (POST .../moves/{move}/approve).");
	else
		rc = cp_mutate(req, create_tx, &ctx);
	json_decref(obj);
	return rc;
}

/* ---- GET ---- */

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	struct move_ctx *ctx = vctx;
	json_t *t, *items;
	enum db_status st = cpdb_tenant_get(c, ctx->tenant, 0, &t);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	json_decref(t);
	if ((st = cpdb_moves_list(c, ctx->tenant, &items)) != DB_OK)
		return st;
	return cp_done(out, 200, cp_list_result(view(req, items)));
}

enum http_result cp_moves_list(struct http_req *req)
{
	struct move_ctx ctx = { .tenant = http_req_param(req, "id") };
	if (cp_require_tenant(req, ctx.tenant, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	struct move_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st = cpdb_move_get(c, ctx->move, ctx->tenant, 0, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "The tenant has no such move.");
	return st == DB_OK ? cp_done(out, 200, view(req, doc)) : st;
}

/* The tenant and move of the path, checked; a step. */
static enum http_step tenant_move(struct http_req *req, struct move_ctx *ctx, int write)
{
	ctx->tenant = http_req_param(req, "id");
	ctx->move = http_req_param(req, "move");
	if (cp_require_tenant(req, ctx->tenant, write) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (!ctx->move || !name_valid_uuid(ctx->move))
		return http_reply_problem(req, PROB_NOT_FOUND, "The tenant has no such move."), HTTP_ANSWERED;
	return HTTP_GO_ON;
}

enum http_result cp_moves_get(struct http_req *req)
{
	struct move_ctx ctx = { 0 };
	if (tenant_move(req, &ctx, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, get_tx, &ctx);
}

/* ---- approve, abort ---- */

static enum db_status approve_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                 struct cp_outcome *out)
{
	struct move_ctx *ctx = vctx;
	json_t *before, *after;
	enum db_status st = cpdb_move_get(c, ctx->move, ctx->tenant, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "The tenant has no such move.");
	if (st != DB_OK)
		return st;
	if (!is(js(before, "state"), "awaiting_approval")) {
		st = cp_fail(out, PROB_CONFLICT, "The move is %s: only a move between regions awaiting "
		             "approval can be approved.", js(before, "state"));
		json_decref(before);
		return st;
	}
	st = cpdb_move_approve(c, ctx->move, cp_principal(req)->scope, &after);
	if (st == DB_OK && (st = cp_audit(c, req, ctx->tenant, "move.approved", "move", ctx->move, before,
	                                  after)) != DB_OK)
		json_decref(after);
	json_decref(before);
	return st == DB_OK ? cp_done(out, 200, after) : st;
}

enum http_result cp_moves_approve(struct http_req *req)
{
	struct move_ctx ctx = { 0 };
	if (tenant_move(req, &ctx, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_mutate(req, approve_tx, &ctx);
}

static enum db_status abort_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	struct move_ctx *ctx = vctx;
	json_t *before, *after;
	/* The row lock orders this abort and the mover's step to cutover. */
	enum db_status st = cpdb_move_get(c, ctx->move, ctx->tenant, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "The tenant has no such move.");
	if (st != DB_OK)
		return st;
	const char *s = js(before, "state");
	if (!is(s, "awaiting_approval") && !is(s, "copying") && !is(s, "catching_up")) {
		st = cp_fail(out, PROB_CONFLICT, "The move is %s: a move can be aborted only before its "
		             "cutover.", s);
		json_decref(before);
		return st;
	}
	st = cpdb_move_finish(c, ctx->move, "aborted", NULL, &after);
	if (st == DB_OK && (st = cp_audit(c, req, ctx->tenant, "move.aborted", "move", ctx->move, before,
	                                  after)) != DB_OK)
		json_decref(after);
	json_decref(before);
	return st == DB_OK ? cp_done(out, 200, after) : st;
}

enum http_result cp_moves_abort(struct http_req *req)
{
	struct move_ctx ctx = { 0 };
	if (tenant_move(req, &ctx, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_mutate(req, abort_tx, &ctx);
}

enum db_status cp_moves_abort_open(struct db_conn *c, struct http_req *req, const char *tenant_id)
{
	json_t *before, *after;
	enum db_status st = cpdb_move_open_of_tenant(c, tenant_id, &before);
	if (st == DB_NOT_FOUND)
		return DB_OK;
	if (st != DB_OK)
		return st;
	const char *id = js(before, "id");
	st = cpdb_move_finish(c, id, "aborted", "the tenant was deleted", &after);
	if (st == DB_OK) {
		st = cp_audit(c, req, tenant_id, "move.aborted", "move", id, before, after);
		json_decref(after);
	}
	json_decref(before);
	return st;
}

/* ---- drains ---- */

struct drain_ctx {
	struct move_in in;
	uint64_t present;
	const char *cell;
};

static enum db_status drain_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	struct drain_ctx *ctx = vctx;
	json_t *cell, *after = NULL, *drain = NULL;
	enum db_status st = cpdb_cell_get(c, ctx->cell, &cell);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No cell named '%s'.", ctx->cell);
	if (st != DB_OK)
		return st;
	const char *region = js(cell, "region"), *status = js(cell, "status");
	if ((st = cpdb_cells_lock(c, region)) != DB_OK)
		goto out;
	if (is(status, "closed")) {
		st = cp_fail(out, PROB_CONFLICT, "Cell %s is closed and holds no tenant.", ctx->cell);
		goto out;
	}
	/* A draining cell takes no new tenant: placement skips it. */
	if (!is(status, "draining")) {
		if ((st = cpdb_cell_set_status(c, ctx->cell, "draining", &after)) != DB_OK ||
		    (st = cpdb_region_bump(c, region)) != DB_OK ||
		    (st = cp_audit(c, req, NULL, "cell.update", "cell", ctx->cell, cell, after)) != DB_OK)
			goto out;
	}
	/* One drain at a time: asking again shows the running one (the
	 * cell's row lock, taken above, orders two such requests). */
	st = cpdb_drain_latest(c, ctx->cell, &drain);
	if (st == DB_OK && is(js(drain, "state"), "running")) {
		st = cp_done(out, 202, drain);
		drain = NULL;
		goto out;
	}
	json_decref(drain);
	drain = NULL;
	if (st != DB_OK && st != DB_NOT_FOUND)
		goto out;
	st = cpdb_drain_insert(c, ctx->cell, (ctx->present & 1) ? ctx->in.parallel : 2,
	                       cp_principal(req)->scope, &drain);
	if (st != DB_OK)
		goto out;
	if (json_integer_value(json_object_get(drain, "tenants_left")) == 0) {
		const char *id = js(drain, "id");
		json_t *done;
		if ((st = cpdb_drain_finish(c, id, "done")) != DB_OK || (st = cpdb_drain_get(c, id, &done)) != DB_OK)
			goto out;
		json_decref(drain);
		drain = done;
	}
	snprintf(out->location, sizeof out->location, "/v1/cells/%s/drain", ctx->cell);
	st = cp_done(out, 202, drain);
	drain = NULL;
out:
	json_decref(cell);
	json_decref(after);
	json_decref(drain);
	return st;
}

enum http_result cp_cell_drain(struct http_req *req)
{
	struct drain_ctx ctx = { .cell = http_req_param(req, "cell") };
	json_t *obj;
	if (!ctx.cell || !name_valid_cell(ctx.cell))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	if (cp_parse_body(req, cpreq_cell_drain, &ctx.in, &ctx.present, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	enum http_result rc = cp_mutate(req, drain_tx, &ctx);
	json_decref(obj);
	return rc;
}

static enum db_status drain_get_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                   struct cp_outcome *out)
{
	(void)req;
	struct drain_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st = cpdb_drain_latest(c, ctx->cell, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "Cell %s has never been drained.", ctx->cell);
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

enum http_result cp_cell_drain_get(struct http_req *req)
{
	struct drain_ctx ctx = { .cell = http_req_param(req, "cell") };
	if (!ctx.cell || !name_valid_cell(ctx.cell))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	return cp_read(req, drain_get_tx, &ctx);
}

/* Creates the moves the running drains of `region` may start now, and
 * ends the drains with nothing left to do. */
static enum db_status drains_advance(struct db_conn *c, struct http_req *req, const char *region)
{
	struct cp_app *app = http_req_app(req);
	json_t *drains, *d;
	size_t i;
	enum db_status st = cpdb_drains_running(c, region, &drains);
	if (st != DB_OK)
		return st;
	if (json_array_size(drains) && (st = cpdb_cells_lock(c, region)) != DB_OK)
		goto out;
	json_array_foreach(drains, i, d) {
		const char *id = js(d, "id"), *cell = js(d, "cell");
		long active, left;
		char tenant[37], to[64], by[48];
		json_int_t parallel = json_integer_value(json_object_get(d, "parallel"));
		for (;;) {
			if ((st = cpdb_drain_state(c, id, cell, &active, &left, tenant)) != DB_OK)
				goto out;
			if (active >= parallel || !tenant[0])
				break;
			if ((st = cpdb_cell_least_loaded(c, region, to)) == DB_NOT_FOUND) {
				log_warn(NULL, "drain of cell %s: region %s has no active shared cell to move to", cell,
				         region);
				if ((st = cpdb_drain_finish(c, id, "failed")) != DB_OK)
					goto out;
				break;
			}
			if (st != DB_OK)
				goto out;
			json_t *doc;
			snprintf(by, sizeof by, "drain:%s", id);
			struct cpdb_move_new m = { .tenant_id = tenant, .kind = "cell", .from_region = region,
				                       .from_cell = cell, .to_region = region, .to_cell = to,
				                       .state = "copying", .requested_by = by, .drain_id = id,
				                       .erase_after_seconds = app->cfg.move_erase_after_ms / 1000 };
			if ((st = cpdb_move_insert(c, &m, &doc)) != DB_OK)
				goto out;
			st = cp_audit(c, req, tenant, "move.requested", "move", js(doc, "id"), NULL, doc);
			json_decref(doc);
			if (st != DB_OK)
				goto out;
		}
		if (active == 0 && !tenant[0] &&
		    (st = cpdb_drain_finish(c, id, left == 0 ? "done" : "failed")) != DB_OK)
			goto out;
	}
out:
	json_decref(drains);
	return st;
}

/* ---- the mover's routes ---- */

struct mover_ctx {
	struct mover_in in;
	uint64_t present;
	const char *region, *move;
	struct cp_outcome out;
	struct http_req *req;
	json_t *move_doc;       /* claim: the move leased */
	int64_t erase_at;
};

/* The move of the path, locked, and the caller's right to drive it: the
 * region credential of its target region, or an admin. */
static enum db_status mover_move(struct db_conn *c, struct http_req *req, struct mover_ctx *ctx,
                                 json_t **doc, struct cp_outcome *out)
{
	const struct cp_principal *p = cp_principal(req);
	int other;
	enum db_status st = cpdb_move_get(c, ctx->move, NULL, 1, doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such move.");
	if (st != DB_OK)
		return st;
	if (p->role == CP_ROLE_REGION && strcmp(p->region, js(*doc, "to_region")) != 0)
		st = cp_fail(out, PROB_FORBIDDEN, "Only the mover of the move's target region drives it.");
	else if ((st = cpdb_move_lease(c, ctx->move, ctx->in.mover, &other)) == DB_OK && other)
		st = cp_fail(out, PROB_CONFLICT, "Another mover holds this move (state %s).", js(*doc, "state"));
	if (st != DB_OK) {
		json_decref(*doc);
		*doc = NULL;
	}
	return st;
}

/* The mover routes' shared checks before the body: who may call, and the
 * move id of the path. A step. */
static enum http_step mover_begin(struct http_req *req, struct mover_ctx *ctx,
                                  const struct jsonx_field *fields, json_t **obj)
{
	const struct cp_principal *p = cp_principal(req);
	ctx->req = req;
	if (p->role == CP_ROLE_CELL)
		return http_reply_problem(req, PROB_FORBIDDEN, "A cell credential does not drive moves; the "
		                          "mover uses its region's credential."), HTTP_ANSWERED;
	ctx->move = http_req_param(req, "move");
	if (ctx->move && !name_valid_uuid(ctx->move))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such move."), HTTP_ANSWERED;
	if (cp_parse_body(req, fields, &ctx->in, &ctx->present, obj) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (!mover_valid(ctx->in.mover)) {
		json_decref(*obj);
		*obj = NULL;
		return http_reply_invalid_field(req, "mover", "%s", "mover must be 1 to 64 characters of "
		                                "A-Z, a-z, 0-9, '.', '_' and '-'."), HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

static enum db_status claim_tx(struct db_conn *c, void *vctx)
{
	struct mover_ctx *ctx = vctx;
	struct cp_app *app = http_req_app(ctx->req);
	cp_outcome_reset(&ctx->out);
	json_decref(ctx->move_doc);
	ctx->move_doc = NULL;
	/* Lingers end here: movers claim every MOVER_INTERVAL while idle. */
	enum db_status st = cpdb_move_lingers_end(c);
	if (st == DB_OK)
		st = drains_advance(c, ctx->req, ctx->region);
	if (st != DB_OK)
		return st;
	st = cpdb_move_claim(c, ctx->region, ctx->in.mover, app->cfg.move_lease_ms / 1000, &ctx->move_doc,
	                     &ctx->erase_at);
	return st == DB_NOT_FOUND ? DB_OK : st;
}

/* Signs the credential of the leased move into the answer. */
static json_t *claim_answer(struct cp_app *app, json_t *doc, int64_t erase_at)
{
	struct jwk key = { 0 };
	struct movecred m = { .erase_after = erase_at };
	json_t *answer = NULL;
	char *token = NULL;
	snprintf(m.id, sizeof m.id, "%s", js(doc, "id"));
	snprintf(m.tenant, sizeof m.tenant, "%s", js(doc, "tenant_id"));
	snprintf(m.from_region, sizeof m.from_region, "%s", js(doc, "from_region"));
	snprintf(m.from_cell, sizeof m.from_cell, "%s", js(doc, "from_cell"));
	snprintf(m.to_region, sizeof m.to_region, "%s", js(doc, "to_region"));
	snprintf(m.to_cell, sizeof m.to_cell, "%s", js(doc, "to_cell"));
	m.iat = time(NULL);
	m.exp = m.iat + app->cfg.move_credential_ttl_ms / 1000;
	if (cp_signing_key(app, NULL, &key) != 0)
		goto out;
	if (!(token = movecred_sign(&key, CP_ISSUER, &m)))
		goto out;
	answer = json_pack("{sOsssI}", "move", doc, "credential", token, "lease_seconds",
	                   (json_int_t)(app->cfg.move_lease_ms / 1000));
out:
	if (token)
		memset(token, 0, strlen(token));
	free(token);
	jwk_clear(&key);
	return answer;
}

enum http_result cp_moves_claim(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	struct mover_ctx ctx = { .region = http_req_param(req, "region") };
	json_t *obj = NULL;
	enum http_result rc;
	if (!ctx.region || !name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (mover_begin(req, &ctx, cpreq_move_claim, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!cp_signing_configured(app)) {
		json_decref(obj);
		return http_reply_problem(req, PROB_UNAVAILABLE, "This control plane has no signing key "
		                          "(CP_SIGNING_KEK or CP_SIGNING_KEYS_DIR) and cannot sign move credentials.");
	}
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, claim_tx, &ctx);
	if (st != DB_OK) {
		rc = cp_reply_db_error(req, st);
	} else if (!ctx.move_doc) {
		rc = http_reply_raw(req, 204, "application/json", "", 0);
	} else {
		json_t *answer = claim_answer(app, ctx.move_doc, ctx.erase_at);
		rc = answer ? http_reply_json(req, 200, answer) : HTTP_FAILED;
		if (!answer)
			log_error(NULL, "move %s: cannot sign its credential", js(ctx.move_doc, "id"));
	}
	json_decref(ctx.move_doc);
	cp_outcome_reset(&ctx.out);
	json_decref(obj);
	return rc;
}

static enum db_status progress_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                  struct cp_outcome *out)
{
	struct mover_ctx *ctx = vctx;
	struct cp_app *app = http_req_app(req);
	json_t *before, *after;
	enum db_status st = mover_move(c, req, ctx, &before, out);
	if (st != DB_OK)
		return st;
	const char *from = js(before, "state");
	const char *to = ctx->in.state ? ctx->in.state : from;
	if (!step_allowed(from, to)) {
		st = cp_fail(out, PROB_CONFLICT, ctx->in.state ? "The move is %s: it cannot go to %s."
		                                               : "The move is %s: nothing is to be done%s.",
		             from, ctx->in.state ? ctx->in.state : "");
		json_decref(before);
		return st;
	}
	struct cpdb_move_report r = {
		.mover = ctx->in.mover, .state = is(to, from) ? NULL : to, .error = ctx->in.error,
		.events_copied = (ctx->present & 4) ? ctx->in.events_copied : -1,
		.lag_events = (ctx->present & 8) ? ctx->in.lag_events : -1,
		.source_events = (ctx->present & 16) ? ctx->in.source_events : -1,
		.lease_seconds = app->cfg.move_lease_ms / 1000,
	};
	st = cpdb_move_progress(c, ctx->move, &r, &after);
	if (st == DB_OK && is(to, "failed") && !is(from, "failed"))
		st = cp_audit(c, req, js(before, "tenant_id"), "move.failed", "move", ctx->move, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_moves_progress(struct http_req *req)
{
	struct mover_ctx ctx = { 0 };
	json_t *obj = NULL;
	enum http_result rc = HTTP_REPLIED;
	if (mover_begin(req, &ctx, cpreq_move_progress, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (ctx.in.state && !state_known(ctx.in.state))
		http_reply_invalid_field(req, "state", "%s", "state must be one of awaiting_approval, copying, "
		                         "catching_up, cutover, verifying, done, aborted, failed.");
	else if (is(ctx.in.state, "failed") && (!ctx.in.error || !*ctx.in.error))
		http_reply_invalid_field(req, "error", "%s", "A move reported failed says why in error.");
	else
		rc = cp_mutate(req, progress_tx, &ctx);
	json_decref(obj);
	return rc;
}

static enum db_status complete_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                  struct cp_outcome *out)
{
	struct mover_ctx *ctx = vctx;
	struct cp_app *app = http_req_app(req);
	json_t *before, *after = NULL;
	enum db_status st = mover_move(c, req, ctx, &before, out);
	if (st != DB_OK)
		return st;
	const char *state = js(before, "state");
	if (is(state, "done")) {
		/* A repeated complete (its answer was lost) finds it done. */
		st = cp_done(out, 200, before);
		return st;
	}
	if (!is(state, "verifying")) {
		st = cp_fail(out, PROB_CONFLICT, "The move is %s: only a verifying move can complete.", state);
		goto out;
	}
	if (ctx->in.source_events != ctx->in.target_events ||
	    !digest_equal(ctx->in.source_digest, ctx->in.target_digest)) {
		st = cp_fail(out, PROB_UNPROCESSABLE, "The target does not hold exactly the source's events "
		             "(source %lld events, digest %s; target %lld, digest %s): the tenant stays where "
		             "it is; report the move failed.", (long long)ctx->in.source_events,
		             ctx->in.source_digest, (long long)ctx->in.target_events, ctx->in.target_digest);
		goto out;
	}
	if ((st = cpdb_move_complete(c, ctx->move, ctx->in.source_events,
	                             (ctx->present & 32) ? ctx->in.write_pause_ms : -1,
	                             app->cfg.move_linger_ms, &after)) != DB_OK)
		goto out;
	/* Both regions' documents, cell and routes documents name the new home. */
	const char *from = js(before, "from_region"), *to = js(before, "to_region");
	if ((st = cpdb_region_bump(c, from)) != DB_OK ||
	    (strcmp(from, to) != 0 && (st = cpdb_region_bump(c, to)) != DB_OK) ||
	    (st = cp_audit(c, req, js(before, "tenant_id"), "move.done", "move", ctx->move, before, after)) != DB_OK)
		goto out;
	st = cp_done(out, 200, after);
	after = NULL;
out:
	json_decref(before);
	json_decref(after);
	return st;
}

enum http_result cp_moves_complete(struct http_req *req)
{
	struct mover_ctx ctx = { 0 };
	json_t *obj = NULL;
	enum http_result rc = HTTP_REPLIED;
	if (mover_begin(req, &ctx, cpreq_move_complete, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!digest_valid(ctx.in.source_digest))
		http_reply_invalid_field(req, "source_digest", "%s", "A digest is a decimal number of 1 to 64 digits.");
	else if (!digest_valid(ctx.in.target_digest))
		http_reply_invalid_field(req, "target_digest", "%s", "A digest is a decimal number of 1 to 64 digits.");
	else
		rc = cp_mutate(req, complete_tx, &ctx);
	json_decref(obj);
	return rc;
}

static enum db_status erased_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct mover_ctx *ctx = vctx;
	json_t *before, *after = NULL;
	int source = is(ctx->in.side, "source"), first;
	enum db_status st = mover_move(c, req, ctx, &before, out);
	if (st != DB_OK)
		return st;
	const char *state = js(before, "state");
	if (source && !is(state, "done")) {
		st = cp_fail(out, PROB_CONFLICT, "The move is %s: the source's copy is erased only after a "
		             "move is done.", state);
		goto out;
	}
	if (!source && !is(state, "aborted") && !is(state, "failed")) {
		st = cp_fail(out, PROB_CONFLICT, "The move is %s: the target's copy is erased only after a "
		             "move is aborted or failed.", state);
		goto out;
	}
	if ((st = cpdb_move_erased(c, ctx->move, source, ctx->in.events_deleted, ctx->in.rows_deleted, &first,
	                           &after)) != DB_OK)
		goto out;
	if (first && source) {
		json_t *what = json_pack("{sOsOsOsOsOsO}", "region", json_object_get(after, "from_region"), "cell",
		                         json_object_get(after, "from_cell"), "events_deleted",
		                         json_object_get(after, "events_erased"), "rows_deleted",
		                         json_object_get(after, "rows_erased"), "erased_at",
		                         json_object_get(after, "source_erased_at"), "move", after);
		st = cp_audit(c, req, js(before, "tenant_id"), "move.source_erased", "move", ctx->move, before, what);
		json_decref(what);
	} else if (first) {
		json_t *what = json_pack("{sOsOsIsIsOsO}", "region", json_object_get(after, "to_region"), "cell",
		                         json_object_get(after, "to_cell"), "events_deleted",
		                         (json_int_t)ctx->in.events_deleted, "rows_deleted",
		                         (json_int_t)ctx->in.rows_deleted, "erased_at",
		                         json_object_get(after, "target_erased_at"), "move", after);
		st = cp_audit(c, req, js(before, "tenant_id"), "move.target_erased", "move", ctx->move, before, what);
		json_decref(what);
	}
	if (st != DB_OK)
		goto out;
	st = cp_done(out, 200, after);
	after = NULL;
out:
	json_decref(before);
	json_decref(after);
	return st;
}

enum http_result cp_moves_erased(struct http_req *req)
{
	struct mover_ctx ctx = { 0 };
	json_t *obj = NULL;
	enum http_result rc = HTTP_REPLIED;
	if (mover_begin(req, &ctx, cpreq_move_erased, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!is(ctx.in.side, "source") && !is(ctx.in.side, "target"))
		http_reply_invalid_field(req, "side", "%s", "side must be source or target.");
	else
		rc = cp_mutate(req, erased_tx, &ctx);
	json_decref(obj);
	return rc;
}

/* ---- metrics ---- */

struct counts_ctx {
	json_t *counts;
};

static enum db_status counts_tx(struct db_conn *c, void *vctx)
{
	struct counts_ctx *ctx = vctx;
	json_decref(ctx->counts);
	ctx->counts = NULL;
	return cpdb_moves_by_state(c, &ctx->counts);
}

void cp_moves_metrics(struct cp_app *app, FILE *out)
{
	struct counts_ctx ctx = { 0 };
	if (db_tx(app->db, DB_AUTOCOMMIT, counts_tx, &ctx) != DB_OK) {
		json_decref(ctx.counts);
		return; /* no figures rather than wrong ones */
	}
	fprintf(out, "# HELP cp_moves Tenant moves by state.\n# TYPE cp_moves gauge\n");
	for (int i = 0; states[i]; i++)
		fprintf(out, "cp_moves{state=\"%s\"} %lld\n", states[i],
		        (long long)json_integer_value(json_object_get(ctx.counts, states[i])));
	json_decref(ctx.counts);
}
