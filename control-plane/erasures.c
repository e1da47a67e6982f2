/* POST /v1/regions/{region}/erasures (see erasures.h). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cpdb.h"
#include "erasure_report.h"
#include "erasures.h"
#include "http.h"
#include "idempotency.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"

struct erasure_ctx {
	const char *region;
	struct erasure_report rep;
};

static enum db_status erasure_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                 struct cp_outcome *out)
{
	const struct cp_principal *p = cp_principal(req);
	struct erasure_ctx *ctx = vctx;
	json_t *tenant, *erasure;
	int completed_now;
	enum db_status st = cpdb_tenant_get(c, ctx->rep.tenant_id, 1, &tenant);
	if (st == DB_NOT_FOUND) {
		out->prob_extra = json_pack("{ss}", "field", "tenant_id");
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	}
	if (st != DB_OK)
		return st;
	const char *home = json_string_value(json_object_get(tenant, "region"));
	int deleted = !strcmp(json_string_value(json_object_get(tenant, "status")), "deleted");
	if (strcmp(home, ctx->region) != 0) {
		json_decref(tenant);
		out->prob_extra = json_pack("{ss}", "field", "tenant_id");
		return cp_fail(out, PROB_FORBIDDEN,
		               "The tenant's home region is not %s: only its home region holds its data.",
		               ctx->region);
	}
	/* A cell holds only the data of the tenants placed in it. */
	const char *cell = json_string_value(json_object_get(tenant, "cell"));
	if (p->role == CP_ROLE_CELL && (!cell || strcmp(cell, p->cell) != 0)) {
		json_decref(tenant);
		out->prob_extra = json_pack("{ss}", "field", "tenant_id");
		return cp_fail(out, PROB_FORBIDDEN, "The tenant is not placed in cell %s.", p->cell);
	}
	json_decref(tenant);
	if (!deleted) {
		out->prob_extra = json_pack("{ss}", "field", "tenant_id");
		return cp_fail(out, PROB_CONFLICT, "The tenant is not deleted: its data is not to be erased.");
	}
	st = cpdb_erasure_record(c, ctx->rep.tenant_id, ctx->rep.events_deleted, ctx->rep.rows_deleted,
	                         ctx->rep.done, &completed_now, &erasure);
	/* Its region has erased the tenant's events: its stream destinations
	 * (secrets included) and their reports go too. */
	if (st == DB_OK && ctx->rep.done && (st = cpdb_streams_erase(c, ctx->rep.tenant_id)) != DB_OK)
		json_decref(erasure);
	/* The tenant leaves its region's documents now: a new version, so that
	 * a delta carries the removal (the change log joins changes to raises). */
	else if (st == DB_OK && completed_now && (st = cpdb_region_bump(c, ctx->region)) != DB_OK)
		json_decref(erasure);
	if (st != DB_OK)
		return st;
	json_t *answer = json_pack("{ss so}", "tenant_id", ctx->rep.tenant_id, "erasure", erasure);
	return answer ? cp_done(out, 200, answer) : DB_ERROR;
}

enum http_result cp_region_erasure_report(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct erasure_ctx ctx = { .region = http_req_param(req, "region") };
	struct idem k = { .store = IDEM_REQUESTS, .scope = p->scope };
	struct jsonx_err err;
	enum http_result rc = HTTP_REPLIED;
	json_t *obj;

	if (!ctx.region || !name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (idem_key_read(req, "Each erasure report needs an Idempotency-Key, so that a retry is "
	                       "answered as the first was.", &k) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (http_req_json_object(req, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (erasure_report_parse(obj, &ctx.rep, &err) != 0) {
		rc = http_reply_problem_ex(req, PROB_VALIDATION,
		                           err.field[0] ? json_pack("{ss}", "field", err.field) : NULL, "%s",
		                           err.msg);
		goto out;
	}
	/* The report is the same when its members are. */
	char *canon = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon) {
		rc = HTTP_FAILED;
		goto out;
	}
	idem_hash_bytes(canon, strlen(canon), &k);
	rc = cp_mutate_keyed(req, &k, erasure_tx, &ctx);
	free(canon);
out:
	json_decref(obj);
	return rc;
}
