/* Authentication and tenant scoping: the hook the HTTP layer calls before
 * every non-public route (bearer token -> principal.h), the auth levels
 * of the route table, and the check that a caller may see a tenant. */
#ifndef CP_AUTH_H
#define CP_AUTH_H

struct http_req;

/* Route authentication levels (struct http_route.auth). */
/* CP_AUTH_REGION: a region credential of the path's region, a cell
 * credential of a cell of it, or an admin (handlers of region-only
 * routes refuse the cell credential). CP_AUTH_CELL: a cell credential of
 * the path's cell, or an admin. */
enum { CP_AUTH_PUBLIC = 0, CP_AUTH_USER = 1, CP_AUTH_ADMIN = 2, CP_AUTH_REGION = 3, CP_AUTH_CELL = 4 };

/* The authenticate hook (http_server_opts.authenticate): the admin token,
 * a region credential, a cell credential or a session. Returns 0 with the principal set, or
 * -1 after replying (401, 403, 503) or for a 500. */
/* The authenticate hook (http.h), a step. */
enum http_step cp_authenticate(struct http_req *req, int level) __attribute__((warn_unused_result));

/* Tenant scoping. Admins pass; a tenant user passes for its own tenant
 * only. Another tenant's objects do not exist for it: 404, never 403.
 * With `write`, members get 403 on their own tenant.
 * A step: HTTP_GO_ON, or HTTP_ANSWERED after replying. */
enum http_step cp_require_tenant(struct http_req *req, const char *tenant_id, int write)
	__attribute__((warn_unused_result));

#endif
