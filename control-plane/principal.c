/* The principal of a request: set by the authenticate hook (auth.c),
 * read by everything that decides by caller. */
#include <stddef.h>

#include "http.h"
#include "principal.h"

const char *const cp_role_names[] = { "admin", "owner", "member", NULL };

const struct cp_principal *cp_principal(struct http_req *req)
{
	static const struct cp_principal anonymous = { .role = CP_ROLE_MEMBER, .scope = "anonymous" };
	const struct cp_principal *p = http_req_auth(req);
	return p ? p : &anonymous;
}
