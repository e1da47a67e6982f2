/* POST /v1/auth/login and POST /v1/auth/logout.
 *
 * A login is admitted (login_guard.h) before any password work, checked
 * against the per-account delays kept in the database, and opens a session
 * whose token is returned once (only its SHA-256 is stored). Passwords and
 * tokens are never logged. */
#include <stdio.h>
#include <string.h>

#include "cp_app.h"
#include "cpdb.h"
#include "forwarded.h"
#include "http.h"
#include "log.h"
#include "login.h"
#include "login_guard.h"
#include "mutate.h"
#include "names.h"
#include "password.h"
#include "principal.h"
#include "requests.h"
#include "secret.h"

#define SESSION_PREFIX "cts_"

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
	struct cpdb_login acc = { 0 };
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
	/* A retry may find the account gone since the password was checked. */
	if (!ctx->matched || st != DB_OK)
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
		json_object_set(body, "endpoint", json_object_get(tenant, "endpoint"));
	}
	return cp_done(out, 200, body);
}

/* Admission comes before any password work, cheapest first: the source's
 * bucket (429), then a password-check slot (503 login_busy). Neither
 * waits, so a flood of logins never holds the workers that serve the other
 * routes for longer than it takes to refuse them. */
enum http_result cp_auth_login(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	struct login_ctx ctx = { 0 };
	json_t *obj;
	long wait_s;
	enum http_result rc;

	if (cp_parse_body(req, cpreq_login, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (name_normalize_email(ctx.in.email, ctx.email, sizeof ctx.email) != 0 ||
	    (ctx.in.tenant && !name_valid_slug(ctx.in.tenant))) {
		json_decref(obj);
		http_add_header(req, "WWW-Authenticate", "Bearer");
		return http_reply_problem(req, PROB_UNAUTHORIZED, "Unknown email or wrong password.");
	}
	/* The source: the TCP peer, or the client behind a trusted proxy. */
	struct sockaddr_storage fwd;
	const struct sockaddr *src =
		fwd_client(&app->proxies, http_req_peer(req), http_req_header_last(req, "X-Forwarded-For"), &fwd);
	login_source_key(src, ctx.source);
	if ((wait_s = login_guard_take(app->login, src)) > 0) {
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

enum http_result cp_auth_logout(struct http_req *req)
{
	return cp_run(req, logout_tx, NULL);
}
