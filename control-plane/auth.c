/* Authentication and tenant scoping.
 *
 * Credentials are bearer tokens: the bootstrap admin token from
 * configuration (compared by SHA-256 in constant time), a region
 * credential, a cell credential, or a session token from POST /v1/auth/login (login.c; only
 * its SHA-256 is stored). Tokens are never logged. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"
#include "secret.h"

#define REGION_TOKEN_PREFIX "crt_"
#define CELL_TOKEN_PREFIX "cct_"

static int role_from(const char *s, enum cp_role *out)
{
	for (int i = 0; cp_role_names[i]; i++)
		if (!strcmp(s, cp_role_names[i])) {
			*out = (enum cp_role)i;
			return 0;
		}
	return -1;
}

static enum http_step unauthorized(struct http_req *req, const char *why)
{
	http_add_header(req, "WWW-Authenticate", "Bearer");
	return http_reply_problem(req, PROB_UNAUTHORIZED, "%s", why), HTTP_ANSWERED;
}

enum http_step cp_authenticate(struct http_req *req, int level)
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
		return HTTP_ANSWERED; /* nothing queued: the layer answers 500 */
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
			return HTTP_ANSWERED;
		}
		p->role = CP_ROLE_REGION;
		snprintf(p->scope, sizeof p->scope, "region:%s", p->region);
	} else if (!strncmp(token, CELL_TOKEN_PREFIX, strlen(CELL_TOKEN_PREFIX))) {
		/* Looked up by hash: the lookup is an index probe on the SHA-256,
		 * never a comparison of the token itself. */
		struct db_conn *c = db_acquire(app->db);
		enum db_status st = DB_UNAVAILABLE;
		char hex[65];
		secret_hex(sha, 32, hex);
		if (c) {
			st = cpdb_cell_credential_lookup(c, hex, p->cell, p->region);
			db_release(app->db, c);
		}
		if (st != DB_OK) {
			free(p);
			if (st == DB_NOT_FOUND)
				return unauthorized(req, "The cell credential is unknown or revoked.");
			cp_reply_db_error(req, st);
			return HTTP_ANSWERED;
		}
		p->role = CP_ROLE_CELL;
		snprintf(p->scope, sizeof p->scope, "cell:%s", p->cell);
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
			return HTTP_ANSWERED;
		}
		if (role_from(s.role, &p->role) != 0) {
			free(p);
			return HTTP_ANSWERED; /* nothing queued: the layer answers 500 */
		}
		snprintf(p->user_id, sizeof p->user_id, "%s", s.user_id);
		snprintf(p->tenant_id, sizeof p->tenant_id, "%s", s.tenant_id);
		snprintf(p->scope, sizeof p->scope, "user:%s", s.user_id);
	}
	http_req_set_auth(req, p, free);
	http_req_set_log_ids(req, p->tenant_id[0] ? p->tenant_id : NULL, NULL);
	if (p->role == CP_ROLE_REGION && level != CP_AUTH_REGION)
		return http_reply_problem(req, PROB_FORBIDDEN,
		                          "A region credential only reaches its region's config routes."), HTTP_ANSWERED;
	if (p->role == CP_ROLE_CELL && level != CP_AUTH_REGION && level != CP_AUTH_CELL)
		return http_reply_problem(req, PROB_FORBIDDEN,
		                          "A cell credential only reaches its cell's config and report routes."), HTTP_ANSWERED;
	if (level == CP_AUTH_REGION && p->role != CP_ROLE_REGION && p->role != CP_ROLE_CELL &&
	    p->role != CP_ROLE_ADMIN)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only a region credential or an admin may do this."), HTTP_ANSWERED;
	if (level == CP_AUTH_CELL && p->role != CP_ROLE_CELL && p->role != CP_ROLE_ADMIN)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only a cell credential or an admin may do this."), HTTP_ANSWERED;
	if (level == CP_AUTH_ADMIN && p->role != CP_ROLE_ADMIN)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only platform admins may do this."), HTTP_ANSWERED;
	/* Told from the path, so that it is refused before any body is read. */
	const char *region = http_req_param(req, "region");
	if ((p->role == CP_ROLE_REGION || p->role == CP_ROLE_CELL) && region && strcmp(region, p->region) != 0)
		return http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to another region."), HTTP_ANSWERED;
	const char *cell = http_req_param(req, "cell");
	if (p->role == CP_ROLE_CELL && cell && strcmp(cell, p->cell) != 0)
		return http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to another cell."), HTTP_ANSWERED;
	return HTTP_GO_ON;
}

enum http_step cp_require_tenant(struct http_req *req, const char *tenant_id, int write)
{
	const struct cp_principal *p = cp_principal(req);
	if (!tenant_id || !name_valid_uuid(tenant_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant."), HTTP_ANSWERED;
	if (p->role == CP_ROLE_ADMIN)
		return HTTP_GO_ON;
	if (strcasecmp(p->tenant_id, tenant_id) != 0)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant."), HTTP_ANSWERED;
	if (write && p->role != CP_ROLE_OWNER)
		return http_reply_problem(req, PROB_FORBIDDEN, "Only the tenant's owners may do this."), HTTP_ANSWERED;
	return HTTP_GO_ON;
}
