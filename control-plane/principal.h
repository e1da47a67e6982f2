/* Who is calling: the principal the authenticate hook (auth.h) attaches
 * to every request of a non-public route, and its roles. Everything that
 * decides by caller (scoping, audit records, idempotency scopes) reads it
 * here; nothing here touches the database. */
#ifndef CP_PRINCIPAL_H
#define CP_PRINCIPAL_H

struct http_req;

/* A region credential (CP_ROLE_REGION) reaches only its region's config
 * routes (CP_AUTH_REGION); admins reach those too. A cell credential
 * (CP_ROLE_CELL) reaches its cell's config route (CP_AUTH_CELL) and its
 * region's report routes (status, erasures, usage), never the region's
 * config or routes documents. */
enum cp_role { CP_ROLE_ADMIN, CP_ROLE_OWNER, CP_ROLE_MEMBER, CP_ROLE_REGION, CP_ROLE_CELL };

/* The names of the user roles, indexed by enum cp_role, NULL-terminated
 * (a region credential has no stored role). */
extern const char *const cp_role_names[];

struct cp_principal {
	enum cp_role role;
	int via_admin_token;
	char user_id[37];     /* "" for the bootstrap admin token */
	char tenant_id[37];   /* "" for platform admins */
	char region[33];      /* a region credential's region, a cell credential's cell's region */
	char cell[64];        /* a cell credential's cell */
	char session[65];     /* hex SHA-256 of the session token, "" for the admin token */
	char scope[80];       /* idempotency scope: "admin-token", "user:<id>", "region:<r>", "cell:<c>" */
};

/* The request's principal; on a public route, an anonymous member with
 * scope "anonymous". Borrowed: valid as long as the request. */
const struct cp_principal *cp_principal(struct http_req *req);

#endif
