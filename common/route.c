/* Path matching for the route table. */
#include "route.h"

#include <string.h>

/* Matches `path` against `pattern`; on success fills the parameters. */
static int match_pattern(const char *pattern, const char *path, struct route_match *m)
{
	const char *p = pattern, *s = path;
	int np = 0;

	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return 0;
		p++, s++;
		const char *pe = strchr(p, '/'), *se = strchr(s, '/');
		size_t plen = pe ? (size_t)(pe - p) : strlen(p);
		size_t slen = se ? (size_t)(se - s) : strlen(s);

		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (slen == 0 || slen > ROUTE_MAX_PARAM_LEN || np == ROUTE_MAX_PARAMS)
				return 0;
			m->names[np] = p + 1;
			m->name_lens[np] = plen - 2;
			memcpy(m->values[np], s, slen);
			m->values[np][slen] = '\0';
			np++;
		} else if (plen != slen || memcmp(p, s, plen) != 0) {
			return 0;
		}
		p += plen, s += slen;
	}
	if (*p || *s)
		return 0;
	m->nparams = np;
	return 1;
}

static void allow_add(char *allow, size_t cap, const char *method)
{
	/* Keep the list free of repeats: "GET, HEAD, POST". */
	size_t mlen = strlen(method);
	for (const char *a = allow; (a = strstr(a, method)) != NULL; a += mlen)
		if ((a == allow || a[-1] == ' ') && (a[mlen] == ',' || a[mlen] == '\0'))
			return;
	size_t len = strlen(allow);
	if (len + mlen + 3 > cap)
		return;
	if (len)
		strcat(allow, ", ");
	strcat(allow, method);
}

enum route_result route_find(const struct http_route *routes, size_t n, const char *method,
                             const char *path, struct route_match *m)
{
	int path_known = 0;
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

	m->route = -1;
	m->nparams = 0;
	m->allow[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!match_pattern(routes[i].pattern, path, m))
			continue;
		if (strcmp(routes[i].method, want) == 0) {
			m->route = (int)i;
			return ROUTE_FOUND;
		}
		path_known = 1;
		allow_add(m->allow, sizeof m->allow, routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			allow_add(m->allow, sizeof m->allow, "HEAD");
	}
	m->nparams = 0;
	return path_known ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

const char *route_param(const struct route_match *m, const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; i < m->nparams; i++)
		if (m->name_lens[i] == len && memcmp(m->names[i], name, len) == 0)
			return m->values[i];
	return NULL;
}

int route_query_matches(const char *d, const char *name, int *repeatable)
{
	size_t dl = strlen(d), nl = strlen(name);
	int rep = dl >= 2 && d[dl - 2] == '[' && d[dl - 1] == ']';
	if (rep)
		dl -= 2;
	*repeatable = rep;
	if (dl && d[dl - 1] == '*') /* a prefix: "metadata.*" needs something after "metadata." */
		return nl > dl - 1 && memcmp(d, name, dl - 1) == 0;
	return nl == dl && memcmp(d, name, dl) == 0;
}

/* The declaration entry admitting `name`, or -1. */
static int query_decl(const char *const *decl, const char *name, int *repeatable)
{
	for (int i = 0; decl && decl[i]; i++)
		if (route_query_matches(decl[i], name, repeatable))
			return i;
	return -1;
}

enum route_query_fault route_query_check(const char *const *decl, const char *const *names,
                                         const char *const *values, size_t n, size_t *bad)
{
	for (size_t i = 0; i < n; i++) {
		int rep;
		*bad = i;
		if (i == ROUTE_QUERY_PARAMS_MAX)
			return ROUTE_QUERY_TOO_LONG;
		if (query_decl(decl, names[i], &rep) < 0)
			return ROUTE_QUERY_UNKNOWN;
		if (!values[i])
			return ROUTE_QUERY_NO_VALUE;
		/* Earlier occurrences of the same name: n is bounded above, so
		 * the quadratic count stays small. */
		size_t seen = 0;
		for (size_t j = 0; j < i; j++)
			seen += strcmp(names[j], names[i]) == 0;
		if (seen && !rep)
			return ROUTE_QUERY_REPEATED;
		if (seen >= ROUTE_QUERY_VALUES_MAX)
			return ROUTE_QUERY_TOO_MANY;
	}
	return ROUTE_QUERY_OK;
}
