/* Authentication and tenant scoping.
 *
 * Credentials are bearer tokens: the bootstrap admin token from
 * configuration (compared by SHA-256 in constant time), or a session token
 * from POST /v1/auth/login (only its SHA-256 is stored). Tokens and
 * passwords are never logged. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp.h"
#include "cpdb.h"
#include "log.h"
#include "login_guard.h"
#include "names.h"
#include "password.h"
#include "requests.h"
#include "secret.h"

#define SESSION_PREFIX "cts_"

const char *const cp_role_names[] = { "admin", "owner", "member", NULL };

#define REGION_TOKEN_PREFIX "crt_"

static int role_from(const char *s, enum cp_role *out)
{
	for (int i = 0; cp_role_names[i]; i++)
		if (!strcmp(s, cp_role_names[i])) {
			*out = (enum cp_role)i;
			return 0;
		}
	return -1;
}

const struct cp_principal *cp_principal(struct http_req *req)
{
	static const struct cp_principal anonymous = { .role = CP_ROLE_MEMBER, .scope = "anonymous" };
	const struct cp_principal *p = http_req_auth(req);
	return p ? p : &anonymous;
}

static int unauthorized(struct http_req *req, const char *why)
{
	http_add_header(req, "WWW-Authenticate", "Bearer");
	return http_reply_problem(req, PROB_UNAUTHORIZED, "%s", why), -1;
}

int cp_authenticate(struct http_req *req, int level)
{
	struct cp_app *app = http_req_app(req);
	const char *token = http_req_bearer(req);
	unsigned char sha[32];
	struct cp_principal *p;

	if (!token)
		return unauthorized(req, "Send a token: Authorization: Bearer <token>.");
	secret_sha256(token, strlen(token), sha);
	p = calloc(1, sizeof *p);
	if (!p)
		return -1;
	if (app->have_admin_token && secret_equal(sha, app->admin_token_sha256, 32)) {
		p->role = CP_ROLE_ADMIN;
		p->via_admin_token = 1;
		snprintf(p->scope, sizeof p->scope, "admin-token");
	} else if (!strncmp(token, REGION_TOKEN_PREFIX, strlen(REGION_TOKEN_PREFIX))) {
		struct db_conn *c = db_acquire(app->db);
		enum db_status st = DB_UNAVAILABLE;
		char hex[65];
		secret_hex(sha, 32, hex);
		if (c) {
			st = cpdb_credential_region(c, hex, p->region);
			db_release(app->db, c);
		}
		if (st != DB_OK) {
			free(p);
			if (st == DB_NOT_FOUND)
				return unauthorized(req, "The region credential is unknown or revoked.");
			cp_reply_db_error(req, st);
			return -1;
		}
		p->role = CP_ROLE_REGION;
		snprintf(p->scope, sizeof p->scope, "region:%s", p->region);
	} else {
		struct cpdb_session s;
		struct db_conn *c = db_acquire(app->db);
		enum db_status st = DB_UNAVAILABLE;
		secret_hex(sha, 32, p->session);
		if (c) {
			st = cpdb_session_lookup(c, p->session, &s);
			db_release(app->db, c);
		}
		if (st != DB_OK) {
			free(p);
			if (st == DB_NOT_FOUND)
				return unauthorized(req, "The token is unknown or has expired; log in again.");
			cp_reply_db_error(req, st);
			return -1;
		}
		if (role_from(s.role, &p->role) != 0) {
			free(p);
			return -1;
		}
		snprintf(p->user_id, sizeof p->user_id, "%s", s.user_id);
		snprintf(p->tenant_id, sizeof p->tenant_id, "%s", s.tenant_id);
		snprintf(p->scope, sizeof p->scope, "user:%s", s.user_id);
	}
	http_req_set_auth(req, p, free);
	http_req_set_log_ids(req, p->tenant_id[0] ? p->tenant_id : NULL, NULL);
	if (p->role == CP_ROLE_REGION && level != CP_AUTH_REGION)
		return http_reply_problem(req, PROB_FORBIDDEN,
		                          "A region credential only reaches its region's config routes."), -1;
	if (level == CP_AUTH_REGION && p->role != CP_ROLE_REGION && p->role != CP_ROLE_ADMIN)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only a region credential or an admin may do this."), -1;
	if (level == CP_AUTH_ADMIN && p->role != CP_ROLE_ADMIN)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only platform admins may do this."), -1;
	/* Told from the path, so that it is refused before any body is read. */
	const char *region = http_req_param(req, "region");
	if (p->role == CP_ROLE_REGION && region && strcmp(region, p->region) != 0)
		return http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to another region."), -1;
	return 0;
}

int cp_require_tenant(struct http_req *req, const char *tenant_id, int write)
{
	const struct cp_principal *p = cp_principal(req);
	if (!tenant_id || !name_valid_uuid(tenant_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant."), -1;
	if (p->role == CP_ROLE_ADMIN)
		return 0;
	if (strcasecmp(p->tenant_id, tenant_id) != 0)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant."), -1;
	if (write && p->role != CP_ROLE_OWNER)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only the tenant's owners may do this."), -1;
	return 0;
}

/* ---- POST /v1/auth/login ---- */

struct login_ctx {
	struct login_req in;
	char email[256];
	char source[LOGIN_SOURCE_MAX];
	char token[80];
	int checked;       /* the password was verified in this attempt */
	int matched;
};

_Static_assert(sizeof ((struct cp_app *)0)->login_dummy_hash >= PASSWORD_HASH_MAX,
               "room for a password hash");

int cp_login_init(struct cp_app *app)
{
	app->login_dummy_hash[0] = '\0';
	if (password_hash("not a password of anyone", (int)app->cfg.scrypt_log2n,
	                  app->login_dummy_hash) != 0) {
		app->login_dummy_hash[0] = '\0';
		return -1;
	}
	return 0;
}

static void retry_after(struct http_req *req, struct cp_outcome *out, long secs)
{
	char s[24];
	snprintf(s, sizeof s, "%ld", secs);
	http_add_header(req, "Retry-After", s);
	if (out)
		out->prob_extra = json_pack("{sI}", "retry_after_seconds", (json_int_t)secs);
}

/* Counts a failed attempt of this source on this account; the transaction
 * commits so that the count stays. */
static enum db_status login_failed(struct db_conn *c, struct http_req *req, struct login_ctx *ctx,
                                   struct cp_outcome *out)
{
	struct cp_app *app = http_req_app(req);
	const struct cpdb_login_policy pol = {
		.max_failures = app->cfg.login_max_failures,
		.lockout_max_s = (long)(app->cfg.login_lockout_max_ms / 1000),
		.account_max_failures = app->cfg.login_account_max_failures,
	};
	enum db_status st = cpdb_login_failed(c, ctx->in.tenant, ctx->email, ctx->source, &pol);
	if (st != DB_OK)
		return st;
	out->problem = 1;
	out->prob = PROB_UNAUTHORIZED;
	snprintf(out->detail, sizeof out->detail, "Unknown email or wrong password.");
	return DB_OK;
}

static enum db_status login_tx(struct db_conn *c, struct http_req *req, void *vctx,
                               struct cp_outcome *out)
{
	struct login_ctx *ctx = vctx;
	struct cp_app *app = http_req_app(req);
	struct cpdb_login acc;
	long wait_s = 0;

	/* The wait is per source and asked before the account is looked up, so
	 * unknown and known accounts answer alike. */
	enum db_status st = cpdb_login_wait(c, ctx->in.tenant, ctx->email, ctx->source, &wait_s);
	if (st != DB_OK)
		return st;
	if (wait_s > 0) {
		login_guard_count_backoff(app->login);
		retry_after(req, out, wait_s);
		return cp_fail(out, PROB_RATE_LIMITED,
		               "Too many failed logins to this account from your address; "
		               "try again in %ld seconds.", wait_s);
	}
	st = cpdb_login_lookup(c, ctx->in.tenant, ctx->email, &acc);
	if (st != DB_OK && st != DB_NOT_FOUND)
		return st;
	/* The password check runs once even if the transaction is retried. */
	if (!ctx->checked) {
		const char *hash = st == DB_OK ? acc.password_hash : app->login_dummy_hash;
		int v = password_verify(ctx->in.password, hash);
		if (v < 0 && st == DB_OK)
			log_warn(http_req_id(req), "the stored password hash of a user is malformed");
		ctx->matched = st == DB_OK && v == 1;
		ctx->checked = 1;
	}
	if (!ctx->matched)
		return login_failed(c, req, ctx, out);
	if (acc.tenant_id[0] && strcmp(acc.tenant_status, "deleted") == 0)
		return cp_fail(out, PROB_UNAUTHORIZED, "Unknown email or wrong password.");

	unsigned char raw[32], sha[32];
	char hex[65], expires[40];
	if (secret_random(raw, sizeof raw) != 0)
		return DB_ERROR;
	strcpy(ctx->token, SESSION_PREFIX);
	secret_b64url(raw, sizeof raw, ctx->token + strlen(SESSION_PREFIX));
	secret_sha256(ctx->token, strlen(ctx->token), sha);
	secret_hex(sha, 32, hex);
	if ((st = cpdb_login_succeeded(c, ctx->in.tenant, ctx->email, ctx->source)) != DB_OK ||
	    (st = cpdb_session_insert(c, hex, acc.user_id, app->cfg.session_ttl_ms, expires)) != DB_OK)
		return st;

	json_t *user = NULL, *tenant = NULL;
	st = cpdb_user_get(c, acc.tenant_id[0] ? acc.tenant_id : NULL, acc.user_id, 0, &user);
	if (st != DB_OK)
		return st;
	if (acc.tenant_id[0] && (st = cpdb_tenant_get(c, acc.tenant_id, 0, &tenant)) != DB_OK) {
		json_decref(user);
		return st;
	}
	json_t *body = json_pack("{ss ss so}", "token", ctx->token, "expires_at", expires, "user", user);
	if (tenant) {
		json_object_set_new(body, "tenant", tenant);
		json_object_set(body, "region", json_object_get(tenant, "region"));
		json_object_set(body, "region_endpoint", json_object_get(tenant, "region_endpoint"));
	}
	return cp_done(out, 200, body);
}

/* Admission comes before any password work, cheapest first: the source's
 * bucket (429), then a password-check slot (503 login_busy). Neither
 * waits, so a flood of logins never holds the workers that serve the other
 * routes for longer than it takes to refuse them. */
int cp_auth_login(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	struct login_ctx ctx = { 0 };
	json_t *obj;
	long wait_s;
	int rc;

	if (cp_parse_body(req, cpreq_login, &ctx.in, NULL, &obj) != 0)
		return 0;
	if (name_normalize_email(ctx.in.email, ctx.email, sizeof ctx.email) != 0 ||
	    (ctx.in.tenant && !name_valid_slug(ctx.in.tenant))) {
		json_decref(obj);
		http_add_header(req, "WWW-Authenticate", "Bearer");
		return http_reply_problem(req, PROB_UNAUTHORIZED, "Unknown email or wrong password.");
	}
	login_source_key(http_req_peer(req), ctx.source);
	if ((wait_s = login_guard_take(app->login, http_req_peer(req))) > 0) {
		json_decref(obj);
		retry_after(req, NULL, wait_s);
		return http_reply_problem_ex(req, PROB_RATE_LIMITED,
		                             json_pack("{sI}", "retry_after_seconds", (json_int_t)wait_s),
		                             "Too many logins from your address; try again in %ld seconds.",
		                             wait_s);
	}
	if (login_guard_enter(app->login) != 0) {
		json_decref(obj);
		retry_after(req, NULL, 1);
		return http_reply_problem_ex(req, PROB_LOGIN_BUSY,
		                             json_pack("{sI}", "retry_after_seconds", (json_int_t)1),
		                             "Too many logins are being checked right now; try again in a second.");
	}
	/* Logins are not idempotent requests: no Idempotency-Key replay here. */
	rc = cp_run(req, login_tx, &ctx);
	login_guard_leave(app->login);
	json_decref(obj);
	return rc;
}

/* ---- POST /v1/auth/logout ---- */

static enum db_status logout_tx(struct db_conn *c, struct http_req *req, void *ctx,
                                struct cp_outcome *out)
{
	(void)ctx;
	const struct cp_principal *p = cp_principal(req);
	if (p->via_admin_token)
		return cp_fail(out, PROB_BAD_REQUEST, "The admin token is not a session; nothing to end.");
	enum db_status st = cpdb_session_delete(c, p->session);
	return st == DB_OK ? cp_done(out, 200, json_pack("{sb}", "logged_out", 1)) : st;
}

int cp_auth_logout(struct http_req *req)
{
	return cp_run(req, logout_tx, NULL);
}
