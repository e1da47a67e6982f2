/* Users: a tenant's users under /v1/tenants/{id}/users (owners manage,
 * members read) and platform admins under /v1/admins. Emails are
 * normalized (trimmed, lowercased) and unique per tenant; passwords are
 * hashed with scrypt and never stored or logged in clear. A tenant keeps
 * at least one owner. */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "password.h"
#include "requests.h"
#include "principal.h"
#include "users.h"



struct user_ctx {
	struct user_in in;
	const char *tenant_id;   /* NULL for platform admins */
	const char *user_id;
	char email[256];
	char hash[PASSWORD_HASH_MAX];
};


static int tenant_role(const char *r)
{
	return r && (!strcmp(r, "owner") || !strcmp(r, "member"));
}

/* Validates email and password and hashes the password, a step: HTTP_GO_ON,
 * or HTTP_ANSWERED after replying 400 (or, when hashing fails, with nothing
 * queued: the server answers 500). */
static enum http_step prepare(struct http_req *req, struct user_ctx *ctx)
{
	struct cp_app *app = http_req_app(req);
	size_t pwlen = strlen(ctx->in.password);
	if (name_normalize_email(ctx->in.email, ctx->email, sizeof ctx->email) != 0)
		return http_reply_invalid_field(req, "email", "%s", "email is not a valid address (ASCII only, one '@', a domain with a dot)."), HTTP_ANSWERED;
	if (pwlen < PASSWORD_MIN_LEN)
		return http_reply_invalid_field(req, "password", "%s", "password must have at least 10 characters."), HTTP_ANSWERED;
	if (password_hash(ctx->in.password, (int)app->cfg.scrypt_log2n, ctx->hash) != 0)
		return HTTP_ANSWERED;
	return HTTP_GO_ON;
}

static enum db_status tenant_live(struct db_conn *c, const char *tenant_id, struct cp_outcome *out)
{
	json_t *t;
	enum db_status st = cpdb_tenant_get(c, tenant_id, 0, &t);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	int deleted = !strcmp(json_string_value(json_object_get(t, "status")), "deleted");
	json_decref(t);
	return deleted ? cp_fail(out, PROB_NOT_FOUND, "No such tenant.") : DB_OK;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct user_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st;
	if (ctx->tenant_id && (st = tenant_live(c, ctx->tenant_id, out)) != DB_OK)
		return st;
	st = cpdb_user_insert(c, ctx->tenant_id, ctx->email, ctx->tenant_id ? ctx->in.role : "admin",
	                      ctx->hash, &doc);
	if (st == DB_CONFLICT) {
		out->prob_extra = json_pack("{ss}", "field", "email");
		return cp_fail(out, PROB_CONFLICT, "A user with this email exists already.");
	}
	if (st != DB_OK)
		return st;
	const char *id = json_string_value(json_object_get(doc, "id"));
	st = cp_audit(c, req, ctx->tenant_id, ctx->tenant_id ? "user.create" : "admin.create", "user",
	              id, NULL, doc);
	if (st != DB_OK) {
		json_decref(doc);
		return st;
	}
	if (ctx->tenant_id)
		snprintf(out->location, sizeof out->location, "/v1/tenants/%s/users/%s", ctx->tenant_id, id);
	else
		snprintf(out->location, sizeof out->location, "/v1/admins/%s", id);
	return cp_done(out, 201, doc);
}

enum http_result cp_users_create(struct http_req *req)
{
	struct user_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_require_tenant(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_user_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!tenant_role(ctx.in.role))
		http_reply_invalid_field(req, "role", "%s", "role must be owner or member.");
	else if (prepare(req, &ctx) == HTTP_GO_ON)
		rc = cp_mutate(req, create_tx, &ctx);
	else
		rc = HTTP_REPLIED;
	json_decref(obj);
	return rc;
}

enum http_result cp_admins_create(struct http_req *req)
{
	struct user_ctx ctx = { 0 };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_admin_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (prepare(req, &ctx) == HTTP_GO_ON)
		rc = cp_mutate(req, create_tx, &ctx);
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
	json_t *items;
	enum db_status st;
	if (ctx->tenant_id && (st = tenant_live(c, ctx->tenant_id, out)) != DB_OK)
		return st;
	st = cpdb_users_page(c, ctx->tenant_id, &ctx->pg, &items);
	return st == DB_OK ? cp_done(out, 200, cp_page_result(items, ctx->pg.limit)) : st;
}

enum http_result cp_users_list(struct http_req *req)
{
	struct list_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	if (cp_require_tenant(req, ctx.tenant_id, 0) != HTTP_GO_ON || cp_parse_page(req, &ctx.pg, CP_CURSOR_UUID) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}

enum http_result cp_admins_list(struct http_req *req)
{
	struct list_ctx ctx = { 0 };
	if (cp_parse_page(req, &ctx.pg, CP_CURSOR_UUID) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}

/* Would this change leave the tenant without an owner? */
static enum db_status keeps_owner(struct db_conn *c, struct user_ctx *ctx, json_t *before,
                                  struct cp_outcome *out)
{
	long owners;
	enum db_status st;
	if (!ctx->tenant_id || strcmp(json_string_value(json_object_get(before, "role")), "owner"))
		return DB_OK;
	/* Owner changes of one tenant take turns on the tenant's row, so two
	 * concurrent demotions cannot both see "another owner remains". */
	json_t *t;
	if ((st = cpdb_tenant_get(c, ctx->tenant_id, 1, &t)) != DB_OK)
		return st;
	json_decref(t);
	if ((st = cpdb_tenant_owner_count(c, ctx->tenant_id, &owners)) != DB_OK)
		return st;
	return owners <= 1 ? cp_fail(out, PROB_CONFLICT, "A tenant must keep at least one owner.") : DB_OK;
}

static enum db_status update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct user_ctx *ctx = vctx;
	json_t *before, *after;
	enum db_status st = cpdb_user_get(c, ctx->tenant_id, ctx->user_id, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such user.");
	if (st != DB_OK)
		return st;
	if (strcmp(ctx->in.role, "owner") && (st = keeps_owner(c, ctx, before, out)) != DB_OK) {
		json_decref(before);
		return st;
	}
	st = cpdb_user_set_role(c, ctx->tenant_id, ctx->user_id, ctx->in.role, &after);
	if (st == DB_OK)
		st = cp_audit(c, req, ctx->tenant_id, "user.update", "user", ctx->user_id, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return cp_done(out, 200, after);
}

enum http_result cp_users_update(struct http_req *req)
{
	struct user_ctx ctx = { .tenant_id = http_req_param(req, "id"),
		                    .user_id = http_req_param(req, "user_id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_require_tenant(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_uuid(ctx.user_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such user.");
	if (cp_parse_body(req, cpreq_user_update, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!tenant_role(ctx.in.role))
		http_reply_invalid_field(req, "role", "%s", "role must be owner or member.");
	else
		rc = cp_mutate(req, update_tx, &ctx);
	json_decref(obj);
	return rc;
}

static enum db_status delete_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct user_ctx *ctx = vctx;
	json_t *before;
	enum db_status st = cpdb_user_get(c, ctx->tenant_id, ctx->user_id, 1, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such user.");
	if (st != DB_OK)
		return st;
	if ((st = keeps_owner(c, ctx, before, out)) == DB_OK &&
	    (st = cpdb_user_delete(c, ctx->tenant_id, ctx->user_id)) == DB_OK)
		st = cp_audit(c, req, ctx->tenant_id, ctx->tenant_id ? "user.delete" : "admin.delete",
		              "user", ctx->user_id, before, NULL);
	json_decref(before);
	return st == DB_OK ? cp_done(out, 200, json_pack("{ss sb}", "id", ctx->user_id, "deleted", 1)) : st;
}

enum http_result cp_users_delete(struct http_req *req)
{
	struct user_ctx ctx = { .tenant_id = http_req_param(req, "id"),
		                    .user_id = http_req_param(req, "user_id") };
	if (cp_require_tenant(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_uuid(ctx.user_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such user.");
	return cp_mutate(req, delete_tx, &ctx);
}

enum http_result cp_admins_delete(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct user_ctx ctx = { .user_id = http_req_param(req, "id") };
	if (!name_valid_uuid(ctx.user_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such admin.");
	if (!strcmp(p->user_id, ctx.user_id))
		return http_reply_problem(req, PROB_CONFLICT, "An admin cannot delete itself.");
	return cp_mutate(req, delete_tx, &ctx);
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx,
                             struct cp_outcome *out)
{
	(void)req;
	struct user_ctx *ctx = vctx;
	json_t *doc;
	enum db_status st;
	if (ctx->tenant_id && (st = tenant_live(c, ctx->tenant_id, out)) != DB_OK)
		return st;
	st = cpdb_user_get(c, ctx->tenant_id, ctx->user_id, 0, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such user.");
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

enum http_result cp_users_get(struct http_req *req)
{
	struct user_ctx ctx = { .tenant_id = http_req_param(req, "id"),
		                    .user_id = http_req_param(req, "user_id") };
	if (cp_require_tenant(req, ctx.tenant_id, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_uuid(ctx.user_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such user.");
	return cp_read(req, get_tx, &ctx);
}

enum http_result cp_admins_get(struct http_req *req)
{
	struct user_ctx ctx = { .user_id = http_req_param(req, "id") };
	if (!name_valid_uuid(ctx.user_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such admin.");
	return cp_read(req, get_tx, &ctx);
}
