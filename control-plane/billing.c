/* Billing: plans and their prices (GET/POST /v1/plans, PATCH
 * /v1/plans/{id}), usage from the regions (POST /v1/usage), a tenant's
 * usage (GET /v1/tenants/{id}/usage), closing a period into invoices
 * (POST /v1/billing/periods/{period}/close) and the invoices themselves.
 *
 * Usage is exact by construction: a batch's Idempotency-Key is claimed in
 * the same transaction that writes its ledger rows, so a batch counts once
 * or not at all, and a replay returns the first answer. Every invoice can
 * be recomputed from the ledger and the plan history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "billing.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "idempotency.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"
#include "requests.h"
#include "usage_report.h"

/* 1e13, the bound on a tenant's events per month that keeps every amount
 * within bigint (requests.h), checked in SQL. */
#define MAX_EVENTS_PER_MONTH "10000000000000"

/* ---- plans ---- */

struct plan_ctx {
	struct plan_in in;
	const char *id;
	char num[7][24];
	const char *v[9];
};

/* Turns the parsed fields into the text parameters of the SQL; for an
 * update, `present` marks the given ones (bit i of the update table). */
static void plan_params(struct plan_ctx *ctx, uint64_t present, int update)
{
	ctx->v[0] = ctx->in.name;
	ctx->v[1] = ctx->in.currency;
	for (int i = 0; i < 7; i++) {
		int given = update ? (present >> (i + 2)) & 1 : 1;
		snprintf(ctx->num[i], sizeof ctx->num[i], "%lld", (long long)ctx->in.n[i]);
		ctx->v[2 + i] = given ? ctx->num[i] : NULL;
	}
}

enum http_result cp_plans_list(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	json_t *items;
	struct db_conn *c = db_acquire(app->db);
	if (!c)
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_plans_list(c, &items);
	db_release(app->db, c);
	return st == DB_OK ? http_reply_json(req, 200, cp_list_result(items))
	                   : cp_reply_db_error(req, st);
}

enum http_result cp_plans_get(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	const char *id = http_req_param(req, "id");
	json_t *doc;
	if (!name_valid_region(id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such plan.");
	struct db_conn *c = db_acquire(app->db);
	if (!c)
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_plan_get(c, id, &doc);
	db_release(app->db, c);
	if (st == DB_NOT_FOUND)
		return http_reply_problem(req, PROB_NOT_FOUND, "No plan named '%s'.", id);
	return st == DB_OK ? http_reply_json(req, 200, doc) : cp_reply_db_error(req, st);
}

static int valid_currency(const char *s)
{
	return s && strlen(s) == 3 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
}

static enum db_status plan_create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                     struct cp_outcome *out)
{
	struct plan_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st = cpdb_plan_insert(c, ctx->in.id, ctx->v, &doc);
	if (st == DB_CONFLICT) {
		out->prob_extra = json_pack("{ss}", "field", "id");
		return cp_fail(out, PROB_CONFLICT, "Plan '%s' exists already.", ctx->in.id);
	}
	if (st != DB_OK)
		return st;
	if ((st = cp_audit(c, req, NULL, "plan.create", "plan", ctx->in.id, NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	snprintf(out->location, sizeof out->location, "/v1/plans/%s", ctx->in.id);
	return cp_done(out, 201, doc);
}

enum http_result cp_plans_create(struct http_req *req)
{
	struct plan_ctx ctx = { 0 };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_plan_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_region(ctx.in.id))
		http_reply_invalid_field(req, "id", "id must match [a-z][a-z0-9-]* (at most 32 characters).");
	else if (!*ctx.in.name)
		http_reply_invalid_field(req, "name", "name must not be empty.");
	else if (!valid_currency(ctx.in.currency))
		http_reply_invalid_field(req, "currency", "currency must be an ISO 4217 code such as USD.");
	else {
		plan_params(&ctx, 0, 0);
		rc = cp_mutate(req, plan_create_tx, &ctx);
	}
	json_decref(obj);
	return rc;
}

static enum db_status plan_update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                     struct cp_outcome *out)
{
	struct plan_ctx *ctx = vctx;
	json_t *before, *after;
	enum db_status st = cpdb_plan_get(c, ctx->id, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No plan named '%s'.", ctx->id);
	if (st != DB_OK)
		return st;
	const char *cur = json_string_value(json_object_get(before, "currency"));
	if (ctx->in.currency && strcmp(ctx->in.currency, cur) != 0) {
		long used;
		if ((st = cpdb_plan_used(c, ctx->id, &used)) != DB_OK) {
			json_decref(before);
			return st;
		}
		if (used) {
			json_decref(before);
			out->prob_extra = json_pack("{ss}", "field", "currency");
			return cp_fail(out, PROB_CONFLICT, "Tenants have been on plan '%s': its currency cannot "
			                                   "change (make a new plan instead).", ctx->id);
		}
	}
	st = cpdb_plan_update(c, ctx->id, ctx->v, &after);
	/* The limits travel in the documents of the regions with tenants on it. */
	if (st == DB_OK && (st = cpdb_plan_bump_regions(c, ctx->id)) == DB_OK)
		st = cp_audit(c, req, NULL, "plan.update", "plan", ctx->id, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_plans_update(struct http_req *req)
{
	struct plan_ctx ctx = { .id = http_req_param(req, "id") };
	uint64_t present;
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (!name_valid_region(ctx.id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such plan.");
	if (cp_parse_body(req, cpreq_plan_update, &ctx.in, &present, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (ctx.in.name && !*ctx.in.name)
		http_reply_invalid_field(req, "name", "name must not be empty.");
	else if (ctx.in.currency && !valid_currency(ctx.in.currency))
		http_reply_invalid_field(req, "currency", "currency must be an ISO 4217 code such as USD.");
	else {
		plan_params(&ctx, present, 1);
		rc = cp_mutate(req, plan_update_tx, &ctx);
	}
	json_decref(obj);
	return rc;
}

/* ---- usage from the regions ---- */

struct usage_ctx {
	const char *region, *cell, *key, *records;   /* cell NULL: a region credential's batch */
	long count;
	long long events;
};

static enum db_status usage_tx(struct db_conn *c, struct http_req *req, void *vctx,
                               struct cp_outcome *out)
{
	(void)req;
	struct usage_ctx *ctx = vctx;
	long bad, foreign;
	char field[16];
	enum db_status st;

	if ((st = cpdb_usage_check_windows(c, ctx->records, &bad, field)) != DB_OK)
		return st;
	if (bad) {
		char f[48];
		snprintf(f, sizeof f, "records[%ld].%s", bad - 1, field);
		out->prob_extra = json_pack("{ss}", "field", f);
		return cp_fail(out, PROB_VALIDATION,
		               "Record %ld: window_start must fall in its period (UTC) and window_end may "
		               "not precede it.", bad - 1);
	}
	if (ctx->cell) {
		/* A cell reports only the tenants placed in it: anything else is
		 * a misrouted or misconfigured data plane, never usage to bill. */
		char tenant[64];
		if ((st = cpdb_usage_outside_cell(c, ctx->cell, ctx->records, tenant, &foreign)) != DB_OK)
			return st;
		if (foreign)
			return cp_fail(out, PROB_FORBIDDEN,
			               "Tenant %s is not placed in cell %s (%ld record(s) name tenants outside "
			               "it); nothing was recorded.", tenant, ctx->cell, foreign);
	}
	if ((st = cpdb_usage_foreign(c, ctx->region, ctx->records, &foreign)) != DB_OK)
		return st;
	if (foreign)
		return cp_fail(out, PROB_FORBIDDEN,
		               "%ld record(s) name tenants whose home region is not %s; nothing was recorded.",
		               foreign, ctx->region);
	long early, over;
	if ((st = cpdb_usage_limits(c, ctx->records, MAX_EVENTS_PER_MONTH, &early, &over)) != DB_OK)
		return st;
	if (early)
		return cp_fail(out, PROB_UNPROCESSABLE,
		               "Record %ld: its period ended before the tenant was created; nothing was "
		               "recorded.", early - 1);
	if (over)
		return cp_fail(out, PROB_UNPROCESSABLE,
		               "Record %ld: the tenant's usage for that period would pass %s events; nothing "
		               "was recorded.", over - 1, MAX_EVENTS_PER_MONTH);
	if ((st = cpdb_usage_insert(c, ctx->region, ctx->cell, ctx->key, ctx->records)) != DB_OK)
		return st;
	json_t *answer = json_pack("{ss sI sI}", "batch", ctx->key, "records", (json_int_t)ctx->count,
	                           "events", (json_int_t)ctx->events);
	return answer ? cp_done(out, 201, answer) : DB_ERROR;
}

enum http_result cp_usage_ingest(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct usage_ctx ctx = { 0 };
	json_t *obj, *records;
	enum http_result rc = HTTP_REPLIED;

	if (p->role != CP_ROLE_REGION && p->role != CP_ROLE_CELL)
		return http_reply_problem(req, PROB_FORBIDDEN, "Usage is reported by a cell's or a region's credential.");
	ctx.region = p->region;
	ctx.cell = p->role == CP_ROLE_CELL ? p->cell : NULL;
	/* A cell's batches have keys of their own. */
	struct idem k = { .store = ctx.cell ? IDEM_CELL_BATCHES : IDEM_USAGE_BATCHES,
		              .scope = ctx.cell ? p->cell : p->region };
	/* Required (a missing one is a missing field); malformed is a bad
	 * request, as on every route that takes the header. */
	if (idem_key_read(req, "Each usage batch needs an Idempotency-Key, so that a retry never "
	                       "counts twice.", &k) != HTTP_GO_ON)
		return HTTP_REPLIED;
	ctx.key = k.key;
	if (http_req_json_object(req, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	struct usage_report_err err;
	int64_t events;
	if (usage_report_parse(obj, &records, &events, &err) != 0) {
		rc = http_reply_problem_ex(req, PROB_VALIDATION,
		                           err.field[0] ? json_pack("{ss}", "field", err.field) : NULL, "%s",
		                           err.detail);
		goto out;
	}
	ctx.events = events;
	ctx.count = (long)json_array_size(records);
	/* The batch is the same when its records are: hash them canonically. */
	char *canon = json_dumps(records, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon) {
		rc = HTTP_FAILED;
		goto out;
	}
	idem_hash_bytes(canon, strlen(canon), &k);
	ctx.records = canon;
	rc = cp_mutate_keyed(req, &k, usage_tx, &ctx);
	free(canon);
out:
	json_decref(obj);
	return rc;
}

/* ---- a tenant's usage ---- */

struct report_ctx {
	const char *tenant, *period;
};

static enum db_status report_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	(void)req;
	struct report_ctx *ctx = vctx;
	json_t *t, *doc;
	enum db_status st = cpdb_tenant_get(c, ctx->tenant, 0, &t);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	json_decref(t);
	st = cpdb_usage_report(c, ctx->tenant, ctx->period, &doc);
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

enum http_result cp_tenant_usage(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct report_ctx ctx = { .tenant = http_req_param(req, "id"), .period = http_req_query(req, "period") };
	if (cp_require_tenant(req, ctx.tenant, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (p->role == CP_ROLE_MEMBER)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only owners and admins read usage.");
	if (!usage_report_period_valid(ctx.period))
		return http_reply_invalid_field(req, "period", "%s", "Give the period as ?period=YYYY-MM.");
	return cp_read(req, report_tx, &ctx);
}

/* ---- periods and invoices ---- */

struct close_ctx {
	const char *period;
};

static enum db_status close_tx(struct db_conn *c, struct http_req *req, void *vctx,
                               struct cp_outcome *out)
{
	struct close_ctx *ctx = vctx;
	int ended, now;
	json_t *summary;
	enum db_status st = cpdb_period_ended(c, ctx->period, &ended);
	if (st != DB_OK)
		return st;
	if (!ended)
		return cp_fail(out, PROB_CONFLICT, "Period %s has not ended yet.", ctx->period);
	if ((st = cpdb_period_close(c, ctx->period, &now, &summary)) != DB_OK)
		return st;
	if (now && (st = cp_audit(c, req, NULL, "billing.period.close", "billing_period", ctx->period,
	                          NULL, summary)) != DB_OK) {
		json_decref(summary);
		return st;
	}
	return cp_done(out, now ? 201 : 200, summary);
}

enum http_result cp_period_close(struct http_req *req)
{
	struct close_ctx ctx = { .period = http_req_param(req, "period") };
	if (!usage_report_period_valid(ctx.period))
		return http_reply_invalid_field(req, "period", "%s", "The period is a month: YYYY-MM.");
	/* Serializable: a close sees every batch committed before it, and a
	 * batch committing meanwhile is either in it or left for the next. */
	return cp_run_serializable(req, close_tx, &ctx);
}

static enum db_status invoices_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                  struct cp_outcome *out)
{
	(void)req;
	const char *tenant = vctx;
	json_t *t, *items;
	enum db_status st = cpdb_tenant_get(c, tenant, 0, &t);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	json_decref(t);
	st = cpdb_invoices_for_tenant(c, tenant, &items);
	return st == DB_OK ? cp_done(out, 200, cp_list_result(items)) : st;
}

enum http_result cp_tenant_invoices(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	const char *tenant = http_req_param(req, "id");
	if (cp_require_tenant(req, tenant, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (p->role == CP_ROLE_MEMBER)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only owners and admins read invoices.");
	return cp_read(req, invoices_tx, (void *)tenant);
}

struct invoice_ctx {
	const char *id;
	const char *to; /* NULL: read */
};

static enum db_status invoice_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                 struct cp_outcome *out)
{
	struct invoice_ctx *ctx = vctx;
	const struct cp_principal *p = cp_principal(req);
	json_t *doc, *after;
	enum db_status st = cpdb_invoice_get(c, ctx->id, ctx->to != NULL, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such invoice.");
	if (st != DB_OK)
		return st;
	const char *tenant = json_string_value(json_object_get(doc, "tenant_id"));
	/* Only the tenant's owners and admins see an invoice; for anyone else
	 * it does not exist. */
	if (p->role != CP_ROLE_ADMIN && (strcasecmp(tenant, p->tenant_id) || p->role != CP_ROLE_OWNER)) {
		json_decref(doc);
		return cp_fail(out, PROB_NOT_FOUND, "No such invoice.");
	}
	if (!ctx->to)
		return cp_done(out, 200, doc);
	const char *status = json_string_value(json_object_get(doc, "status"));
	int allowed = !strcmp(ctx->to, "finalized") ? !strcmp(status, "draft") : strcmp(status, "void") != 0;
	if (!allowed) {
		char why[96];
		snprintf(why, sizeof why, "The invoice is %s; it cannot become %s.", status, ctx->to);
		json_decref(doc);
		return cp_fail(out, PROB_CONFLICT, "%s", why);
	}
	st = cpdb_invoice_set_status(c, ctx->id, ctx->to, &after);
	if (st == DB_OK)
		st = cp_audit(c, req, tenant, !strcmp(ctx->to, "void") ? "invoice.void" : "invoice.finalize",
		              "invoice", ctx->id, doc, after);
	json_decref(doc);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

static enum http_result invoice(struct http_req *req, const char *to)
{
	struct invoice_ctx ctx = { .id = http_req_param(req, "id"), .to = to };
	if (!name_valid_uuid(ctx.id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such invoice.");
	return to ? cp_mutate(req, invoice_tx, &ctx) : cp_read(req, invoice_tx, &ctx);
}

enum http_result cp_invoice_get(struct http_req *req) { return invoice(req, NULL); }
enum http_result cp_invoice_finalize(struct http_req *req) { return invoice(req, "finalized"); }
enum http_result cp_invoice_void(struct http_req *req) { return invoice(req, "void"); }
