/* Unit tests of common/route: path patterns, 404 versus 405, HEAD, declared query parameters. */
#include <stdio.h>
#include <string.h>

#include "route.h"
#include "unit.h"

static enum http_result nop(struct http_req *req)
{
	(void)req;
	return HTTP_REPLIED;
}

enum {
	R_HEALTH, R_TENANTS_LIST, R_TENANTS_CREATE, R_TENANT_GET, R_TENANT_DELETE,
	R_KEYS_CREATE, R_KEY_DELETE,
};

static const struct http_route routes[] = {
	[R_HEALTH]         = { "GET", "/healthz", nop, 0, 0, NULL },
	[R_TENANTS_LIST]   = { "GET", "/v1/tenants", nop, 0, 1, NULL },
	[R_TENANTS_CREATE] = { "POST", "/v1/tenants", nop, 4096, 1, NULL },
	[R_TENANT_GET]     = { "GET", "/v1/tenants/{id}", nop, 0, 1, NULL },
	[R_TENANT_DELETE]  = { "DELETE", "/v1/tenants/{id}", nop, 0, 1, NULL },
	[R_KEYS_CREATE]    = { "POST", "/v1/tenants/{id}/api-keys", nop, 1024, 1, NULL },
	[R_KEY_DELETE]     = { "DELETE", "/v1/tenants/{tenant}/api-keys/{key}", nop, 0, 1, NULL },
};
#define NROUTES (sizeof routes / sizeof routes[0])

static enum route_result find(const char *method, const char *path, struct route_match *m)
{
	return route_find(routes, NROUTES, method, path, m);
}

START_TEST(static_path_found)
{
	/* A fixed path reaches its own handler and carries no parameters. */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/healthz", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_HEALTH);
	ck_assert_int_eq(m.nparams, 0);
	ck_assert_ptr_null(route_param(&m, "id"));
}
END_TEST

START_TEST(method_selects_route)
{
	/* GET and POST on the same path reach different handlers. */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/v1/tenants", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_TENANTS_LIST);
	ck_assert_int_eq(find("POST", "/v1/tenants", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_TENANTS_CREATE);
}
END_TEST

START_TEST(param_extracted)
{
	/* The {id} segment of the URL is handed to the handler verbatim. */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/v1/tenants/t_01HXYZ", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_TENANT_GET);
	ck_assert_int_eq(m.nparams, 1);
	ck_assert_str_eq(route_param(&m, "id"), "t_01HXYZ");
	ck_assert_ptr_null(route_param(&m, "tenant"));
	ck_assert_ptr_null(route_param(&m, "i"));
}
END_TEST

START_TEST(two_params_extracted)
{
	/* Several parameters in one path are each bound to their own name. */
	struct route_match m;
	ck_assert_int_eq(find("DELETE", "/v1/tenants/acme/api-keys/k42", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_KEY_DELETE);
	ck_assert_int_eq(m.nparams, 2);
	ck_assert_str_eq(route_param(&m, "tenant"), "acme");
	ck_assert_str_eq(route_param(&m, "key"), "k42");
	ck_assert_ptr_null(route_param(&m, "id"));
}
END_TEST

START_TEST(unknown_path_404)
{
	/* A path no route knows is a 404, with no Allow list. */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/v2/tenants", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(m.route, -1);
	ck_assert_str_eq(m.allow, "");
	ck_assert_int_eq(find("GET", "/", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("GET", "/v1", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("GET", "/v1/tenantsX", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("GET", "/V1/tenants", &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(wrong_method_405_allow)
{
	/* A known path with a wrong method is a 405 that lists what is allowed. */
	struct route_match m;
	ck_assert_int_eq(find("PUT", "/v1/tenants", &m), ROUTE_BAD_METHOD);
	ck_assert_int_eq(m.route, -1);
	ck_assert_str_eq(m.allow, "GET, HEAD, POST");
}
END_TEST

START_TEST(wrong_method_405_on_param_path)
{
	/* The Allow list is built for patterns with parameters too. */
	struct route_match m;
	ck_assert_int_eq(find("PATCH", "/v1/tenants/acme", &m), ROUTE_BAD_METHOD);
	ck_assert_str_eq(m.allow, "GET, HEAD, DELETE");
	ck_assert_int_eq(find("GET", "/v1/tenants/acme/api-keys", &m), ROUTE_BAD_METHOD);
	ck_assert_str_eq(m.allow, "POST");
	ck_assert_int_eq(m.nparams, 0);
	ck_assert_ptr_null(route_param(&m, "id"));
}
END_TEST

START_TEST(head_served_by_get)
{
	/* HEAD works wherever GET does, through the GET handler. */
	struct route_match m;
	ck_assert_int_eq(find("HEAD", "/v1/tenants/acme", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_TENANT_GET);
	ck_assert_str_eq(route_param(&m, "id"), "acme");
	ck_assert_int_eq(find("HEAD", "/healthz", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, R_HEALTH);
}
END_TEST

START_TEST(head_without_get_405)
{
	/* HEAD on a path that has no GET is a 405, not a silent POST. */
	struct route_match m;
	ck_assert_int_eq(find("HEAD", "/v1/tenants/acme/api-keys", &m), ROUTE_BAD_METHOD);
	ck_assert_str_eq(m.allow, "POST");
}
END_TEST

START_TEST(method_is_case_sensitive)
{
	/* Methods are case-sensitive (RFC 9110): "get" is not GET. */
	struct route_match m;
	ck_assert_int_eq(find("get", "/healthz", &m), ROUTE_BAD_METHOD);
	ck_assert_str_eq(m.allow, "GET, HEAD");
}
END_TEST

START_TEST(empty_segment_not_param)
{
	/* An empty segment never satisfies {param}: no handler sees id="". */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/v1/tenants/", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("POST", "/v1/tenants//api-keys", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("DELETE", "/v1/tenants/acme/api-keys/", &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(trailing_slash_not_matched)
{
	/* "/healthz/" and "//healthz" are different paths from "/healthz". */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/healthz/", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("GET", "//healthz", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("GET", "healthz", &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(param_is_one_segment)
{
	/* A {param} never swallows a slash: extra segments are a 404. */
	struct route_match m;
	ck_assert_int_eq(find("GET", "/v1/tenants/a/b", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(find("DELETE", "/v1/tenants/a/api-keys/b/c", &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(param_length_limit)
{
	/* A parameter of ROUTE_MAX_PARAM_LEN bytes is accepted, one more is a 404. */
	char path[64 + ROUTE_MAX_PARAM_LEN + 2];
	char seg[ROUTE_MAX_PARAM_LEN + 2];
	struct route_match m;

	memset(seg, 'x', ROUTE_MAX_PARAM_LEN);
	seg[ROUTE_MAX_PARAM_LEN] = '\0';
	snprintf(path, sizeof path, "/v1/tenants/%s", seg);
	ck_assert_int_eq(find("GET", path, &m), ROUTE_FOUND);
	ck_assert_uint_eq(strlen(route_param(&m, "id")), ROUTE_MAX_PARAM_LEN);
	ck_assert_str_eq(route_param(&m, "id"), seg);

	strcat(path, "y");
	ck_assert_int_eq(find("GET", path, &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(allow_has_no_repeats)
{
	/* Two GET routes matching one path list GET once in Allow. */
	static const struct http_route t[] = {
		{ "GET", "/v1/items/{id}", nop, 0, 0, NULL },
		{ "GET", "/v1/items/special", nop, 0, 0, NULL },
		{ "POST", "/v1/items/{id}", nop, 0, 0, NULL },
		{ "POST", "/v1/items/special", nop, 0, 0, NULL },
	};
	struct route_match m;
	ck_assert_int_eq(route_find(t, 4, "PUT", "/v1/items/special", &m), ROUTE_BAD_METHOD);
	ck_assert_str_eq(m.allow, "GET, HEAD, POST");
}
END_TEST

START_TEST(first_route_in_table_wins)
{
	/* A literal route listed before a {param} one wins for that literal path. */
	static const struct http_route t[] = {
		{ "GET", "/v1/items/export", nop, 0, 0, NULL },
		{ "GET", "/v1/items/{id}", nop, 0, 0, NULL },
	};
	struct route_match m;
	ck_assert_int_eq(route_find(t, 2, "GET", "/v1/items/export", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, 0);
	ck_assert_int_eq(m.nparams, 0);
	ck_assert_int_eq(route_find(t, 2, "GET", "/v1/items/i7", &m), ROUTE_FOUND);
	ck_assert_int_eq(m.route, 1);
	ck_assert_str_eq(route_param(&m, "id"), "i7");
}
END_TEST

/* The query check (route_query_check) as a route table declares it. */
static const char *const qdecl[] = { "limit", "cursor", "action[]", "metadata.*[]", "tag.*", NULL };

static enum route_query_fault qcheck(const char *const *decl, const char *const *names,
                                     const char *const *vals, size_t n, size_t *bad)
{
	*bad = 999;
	return route_query_check(decl, names, vals, n, bad);
}

START_TEST(query_known_names_pass)
{
	/* Every declared form, once each, passes: a typo is what is refused. */
	const char *n[] = { "limit", "cursor", "action", "metadata.role", "tag.x" };
	const char *v[] = { "1", "c", "a", "admin", "" };
	size_t bad;
	ck_assert_int_eq(qcheck(qdecl, n, v, 5, &bad), ROUTE_QUERY_OK);
	ck_assert_int_eq(qcheck(qdecl, n, v, 0, &bad), ROUTE_QUERY_OK);
}
END_TEST

START_TEST(query_unknown_named)
{
	/* A misspelled or undeclared name is refused and named, wherever it is. */
	const char *v[] = { "1", "2", "3" };
	static const char *const cases[][3] = {
		{ "limit", "cursr", "action" }, { "limt", "cursor", "action" }, { "limit", "cursor", "actions" },
		{ "limit", "cursor", "metadata." }, { "limit", "cursor", "metadata" }, { "limit", "cursor", "tag" },
		{ "limit", "cursor", "" }, { "limit", "cursor", "action[]" }, { "limit", "cursor", "metadatarole" },
		{ "limit", "cursor", "Limit" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t bad;
		ck_assert_int_eq(qcheck(qdecl, cases[i], v, 3, &bad), ROUTE_QUERY_UNKNOWN);
		size_t want = !strcmp(cases[i][1], "cursr") ? 1 : !strcmp(cases[i][0], "limt") ? 0 : 2;
		ck_assert_uint_eq(bad, want);
	}
	/* A route that declares nothing takes nothing. */
	const char *n[] = { "limit" };
	size_t bad;
	ck_assert_int_eq(qcheck(NULL, n, v, 1, &bad), ROUTE_QUERY_UNKNOWN);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(qcheck(NULL, n, v, 0, &bad), ROUTE_QUERY_OK);
}
END_TEST

START_TEST(query_repeats)
{
	/* Only names declared with [] repeat; each up to 20 values, the 21st refused. */
	const char *n[32], *v[32];
	size_t bad;
	for (int i = 0; i < 32; i++)
		n[i] = "action", v[i] = "x";
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_VALUES_MAX, &bad), ROUTE_QUERY_OK);
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_VALUES_MAX + 1, &bad), ROUTE_QUERY_TOO_MANY);
	ck_assert_uint_eq(bad, ROUTE_QUERY_VALUES_MAX);
	for (int i = 0; i < 32; i++)
		n[i] = "metadata.role";
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_VALUES_MAX, &bad), ROUTE_QUERY_OK);
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_VALUES_MAX + 1, &bad), ROUTE_QUERY_TOO_MANY);
	/* Prefixed names count per name. */
	const char *m[] = { "metadata.a", "metadata.b", "metadata.a" };
	ck_assert_int_eq(qcheck(qdecl, m, v, 3, &bad), ROUTE_QUERY_OK);
	const char *r1[] = { "limit", "action", "limit" };
	ck_assert_int_eq(qcheck(qdecl, r1, v, 3, &bad), ROUTE_QUERY_REPEATED);
	ck_assert_uint_eq(bad, 2);
	const char *r2[] = { "tag.x", "tag.y", "tag.x" };
	ck_assert_int_eq(qcheck(qdecl, r2, v, 3, &bad), ROUTE_QUERY_REPEATED);
	ck_assert_uint_eq(bad, 2);
}
END_TEST

START_TEST(query_total_bound)
{
	/* 64 parameters pass, the 65th is refused and named. */
	char names[80][24];
	const char *n[80], *v[80];
	size_t bad;
	for (int i = 0; i < 80; i++) {
		snprintf(names[i], sizeof names[i], "metadata.k%d", i);
		n[i] = names[i], v[i] = "v";
	}
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_PARAMS_MAX, &bad), ROUTE_QUERY_OK);
	ck_assert_int_eq(qcheck(qdecl, n, v, ROUTE_QUERY_PARAMS_MAX + 1, &bad), ROUTE_QUERY_TOO_LONG);
	ck_assert_uint_eq(bad, ROUTE_QUERY_PARAMS_MAX);
}
END_TEST

START_TEST(query_without_value)
{
	/* "?limit" (no '=') is refused, never read as absent; "?limit=" is a value. */
	const char *n[] = { "cursor", "limit" };
	const char *v1[] = { "c", NULL }, *v2[] = { "c", "" };
	size_t bad;
	ck_assert_int_eq(qcheck(qdecl, n, v1, 2, &bad), ROUTE_QUERY_NO_VALUE);
	ck_assert_uint_eq(bad, 1);
	ck_assert_int_eq(qcheck(qdecl, n, v2, 2, &bad), ROUTE_QUERY_OK);
}
END_TEST

Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, static_path_found);
	tcase_add_test(tc, method_selects_route);
	tcase_add_test(tc, param_extracted);
	tcase_add_test(tc, two_params_extracted);
	tcase_add_test(tc, unknown_path_404);
	tcase_add_test(tc, wrong_method_405_allow);
	tcase_add_test(tc, wrong_method_405_on_param_path);
	tcase_add_test(tc, head_served_by_get);
	tcase_add_test(tc, head_without_get_405);
	tcase_add_test(tc, method_is_case_sensitive);
	tcase_add_test(tc, empty_segment_not_param);
	tcase_add_test(tc, trailing_slash_not_matched);
	tcase_add_test(tc, param_is_one_segment);
	tcase_add_test(tc, param_length_limit);
	tcase_add_test(tc, allow_has_no_repeats);
	tcase_add_test(tc, first_route_in_table_wins);
	tcase_add_test(tc, query_known_names_pass);
	tcase_add_test(tc, query_unknown_named);
	tcase_add_test(tc, query_repeats);
	tcase_add_test(tc, query_total_bound);
	tcase_add_test(tc, query_without_value);
	suite_add_tcase(s, tc);
	return s;
}
