/* GET /v1/audit-log?tenant_id=&limit=&cursor=: newest first. Admins read
 * everything (or one tenant); an owner reads its own tenant's records. */
#include <string.h>
#include <strings.h>

#include "audit_log.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"

struct audit_ctx {
	const char *tenant;
	struct cp_page pg;
};

/* A tenant's cell is for admins only: an owner's view of its tenant's
 * records leaves it out, as its view of the tenant does. */
static void hide_cells(json_t *items)
{
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *type = json_string_value(json_object_get(it, "object_type"));
		if (!type || strcmp(type, "tenant") != 0)
			continue;
		json_t *b = json_object_get(it, "before"), *a = json_object_get(it, "after");
		if (json_is_object(b))
			json_object_del(b, "cell");
		if (json_is_object(a))
			json_object_del(a, "cell");
	}
}

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	struct audit_ctx *ctx = vctx;
	json_t *items;
	enum db_status st = cpdb_audit_page(c, ctx->tenant, &ctx->pg, &items);
	if (st != DB_OK)
		return st;
	if (cp_principal(req)->role != CP_ROLE_ADMIN)
		hide_cells(items);
	return cp_done(out, 200, cp_page_result(items, ctx->pg.limit));
}

enum http_result cp_audit_list(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct audit_ctx ctx = { .tenant = http_req_query(req, "tenant_id") };

	if (p->role != CP_ROLE_ADMIN) {
		if (ctx.tenant && strcasecmp(ctx.tenant, p->tenant_id) != 0)
			return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant.");
		if (p->role != CP_ROLE_OWNER)
			return http_reply_problem(req, PROB_FORBIDDEN, "Only owners read their tenant's audit log.");
		ctx.tenant = p->tenant_id;
	} else if (ctx.tenant && !name_valid_uuid(ctx.tenant)) {
		return http_reply_invalid_field(req, "tenant_id", "tenant_id must be a tenant id.");
	}
	if (cp_parse_page(req, &ctx.pg, CP_CURSOR_AUDIT) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}
