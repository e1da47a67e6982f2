/* Each service's openapi.yaml against the route table it documents: every
 * route the service serves is described, nothing is described that it does
 * not serve, each operation's auth level is the table's, and the file is
 * OpenAPI 3.1.0 YAML a tool can load.
 *
 * The route table comes from the binary itself: `<service> routes` prints
 * one "METHOD PATH AUTH" line per route, PATH as routed ("/v1/events/{id}")
 * and AUTH as the spec names it in `x-celltrail-auth` (control plane:
 * public, user, admin, region; data plane: public, api_key). Each test
 * runs once per service of `services` (Check's loop index). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

#define MAX_OPS 128

struct op {
	char method[8];
	char path[256];
	char auth[16];   /* from the route table; "" from the YAML */
};

/* The services with a spec: "<name>/openapi.yaml" and "$IT_BIN/<name>". */
static const char *const services[] = { "control-plane", "data-plane" };
#define NSERVICES ((int)(sizeof services / sizeof services[0]))

static char out[65536];

/* The last `n` bytes of s: a traceback's useful end. */
static const char *tail(const char *s, size_t n)
{
	size_t len = strlen(s);
	return len > n ? s + len - n : s;
}

static void spec_path(const char *svc, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/openapi.yaml", it_env("IT_ROOT"), svc);
}

/* The route table as `<svc> routes` prints it: "METHOD PATH AUTH". */
static size_t routes_from_binary(const char *svc, struct op *ops)
{
	char bin[1024];
	it_bin(svc, bin, sizeof bin);
	char *argv[] = { bin, "routes", NULL };
	int st = it_run(svc, argv, NULL, out, sizeof out);
	ck_assert_msg(st == 0,
	              "%s routes exited %d (it must print its route table, one 'METHOD PATH AUTH' "
	              "line per route, and exit 0 without any configuration): %.400s",
	              svc, st, out);

	size_t n = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		ck_assert_msg(n < MAX_OPS, "more than %d routes", MAX_OPS);
		char rest[2];
		int got = sscanf(line, "%7s %255s %15s %1s", ops[n].method, ops[n].path, ops[n].auth, rest);
		ck_assert_msg(got == 3 && ops[n].path[0] == '/',
		              "%s routes printed a line that is not METHOD PATH AUTH: %s", svc, line);
		n++;
	}
	ck_assert_msg(n > 0, "%s routes printed no route", svc);
	return n;
}

/* Strips trailing blanks and a CR in place. */
static void rstrip(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Operations under `paths:`, read line-wise: a path key is exactly two
 * spaces then "/...:", a method key exactly four spaces then "get:" (or
 * post, patch, delete, put). Another top-level key ends the section. */
static size_t ops_from_yaml(const char *text, struct op *ops)
{
	static const char *const methods[] = { "get", "post", "patch", "delete", "put" };
	char *copy = strdup(text);
	char path[256] = "";
	int in_paths = 0;
	size_t n = 0;

	ck_assert_ptr_nonnull(copy);
	for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		rstrip(line);
		if (line[0] && line[0] != ' ' && line[0] != '#') {
			in_paths = !strcmp(line, "paths:");
			path[0] = '\0';
			continue;
		}
		if (!in_paths)
			continue;
		size_t len = strlen(line);
		if (!strncmp(line, "  /", 3) && line[len - 1] == ':') {
			ck_assert_msg(len - 3 < sizeof path, "path key too long: %s", line);
			memcpy(path, line + 2, len - 3);
			path[len - 3] = '\0';
			continue;
		}
		if (strncmp(line, "    ", 4) != 0 || line[4] == ' ' || !path[0])
			continue;
		for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
			size_t m = strlen(methods[i]);
			if (!strncmp(line + 4, methods[i], m) && !strcmp(line + 4 + m, ":")) {
				ck_assert_msg(n < MAX_OPS, "more than %d operations in openapi.yaml", MAX_OPS);
				for (size_t k = 0; k <= m; k++)
					ops[n].method[k] = (char)(methods[i][k] >= 'a' ? methods[i][k] - 32 : methods[i][k]);
				snprintf(ops[n].path, sizeof ops[n].path, "%s", path);
				ops[n].auth[0] = '\0';
				n++;
			}
		}
	}
	free(copy);
	return n;
}

/* Appends " METHOD PATH;" to the message in buf, while it fits. */
static void note_op(char *buf, size_t size, const struct op *o)
{
	size_t n = strlen(buf);
	if (n + 300 < size)
		snprintf(buf + n, size - n, " %.7s %.255s;", o->method, o->path);
}

static int has_op(const struct op *ops, size_t n, const struct op *want)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ops[i].method, want->method) && !strcmp(ops[i].path, want->path))
			return 1;
	return 0;
}

/* Loads the spec and both lists; the caller frees *text. */
static void load(const char *svc, char **text, struct op *routes, size_t *nroutes, struct op *doc,
                 size_t *ndoc)
{
	char path[1024];
	spec_path(svc, path, sizeof path);
	*text = it_slurp(path);
	ck_assert_msg(*text, "%s is missing", path);
	*nroutes = routes_from_binary(svc, routes);
	*ndoc = ops_from_yaml(*text, doc);
	ck_assert_msg(*ndoc > 0, "no operation found under paths: in %s", path);
}

/* A client reading the spec finds every route the service serves. */
START_TEST(every_route_is_documented)
{
	static struct op routes[MAX_OPS], doc[MAX_OPS];
	const char *svc = services[_i];
	size_t nr, nd;
	char *text, missing[4096] = "";
	load(svc, &text, routes, &nr, doc, &nd);
	for (size_t i = 0; i < nr; i++)
		if (!has_op(doc, nd, &routes[i]))
			note_op(missing, sizeof missing, &routes[i]);
	ck_assert_msg(!missing[0], "%s/openapi.yaml lacks route(s):%s", svc, missing);
	free(text);
}
END_TEST

/* The spec promises no route the service does not serve. */
START_TEST(no_undocumented_extra)
{
	static struct op routes[MAX_OPS], doc[MAX_OPS];
	const char *svc = services[_i];
	size_t nr, nd;
	char *text, extra[4096] = "";
	load(svc, &text, routes, &nr, doc, &nd);
	for (size_t i = 0; i < nd; i++)
		if (!has_op(routes, nr, &doc[i]))
			note_op(extra, sizeof extra, &doc[i]);
	ck_assert_msg(!extra[0], "%s/openapi.yaml documents route(s) the route table lacks:%s", svc,
	              extra);
	free(text);
}
END_TEST

/* Loads the spec in Python and prints "METHOD PATH AUTH" per operation
 * (AUTH from its security requirement), after checking the version and
 * that every local $ref resolves. The security requirement gives the
 * level: none is public; the data plane's `api_key` scheme is api_key; the
 * control plane's `bearer` scheme is admin or region by the role it lists,
 * user otherwise. The scheme must be defined under securitySchemes, and
 * an operation's `x-celltrail-auth` must say the same level. Prints
 * "ERROR ..." lines on a problem. */
static const char py_check[] =
	"import sys, yaml\n"
	"d = yaml.safe_load(open(sys.argv[1]))\n"
	"if d.get('openapi') != '3.1.0': print('ERROR openapi is %r, want 3.1.0' % d.get('openapi'))\n"
	"def walk(x):\n"
	"    if isinstance(x, dict):\n"
	"        r = x.get('$ref')\n"
	"        if isinstance(r, str):\n"
	"            node = d\n"
	"            for part in r.lstrip('#/').split('/'):\n"
	"                node = node.get(part) if isinstance(node, dict) else None\n"
	"            if node is None: print('ERROR unresolved $ref ' + r)\n"
	"        for v in x.values(): walk(v)\n"
	"    elif isinstance(x, list):\n"
	"        for v in x: walk(v)\n"
	"walk(d)\n"
	"glob = d.get('security')\n"
	"for p, item in d['paths'].items():\n"
	"    for m, op in item.items():\n"
	"        if m not in ('get', 'post', 'patch', 'delete', 'put'): continue\n"
	"        sec = op.get('security', glob)\n"
	"        schemes = (d.get('components') or {}).get('securitySchemes') or {}\n"
	"        for name in (sec[0] if sec else {}):\n"
	"            if name not in schemes:\n"
	"                print('ERROR %s %s: security scheme %r is not defined' % (m.upper(), p, name))\n"
	"        if not sec: auth = 'public'\n"
	"        elif 'api_key' in sec[0]: auth = 'api_key'\n"
	"        elif 'admin' in (sec[0].get('bearer') or []): auth = 'admin'\n"
	"        elif 'region' in (sec[0].get('bearer') or []): auth = 'region'\n"
	"        elif 'bearer' in sec[0]: auth = 'user'\n"
	"        else: auth = 'unknown-scheme:' + ','.join(sorted(sec[0]))\n"
	"        if op.get('x-celltrail-auth') != auth:\n"
	"            print('ERROR %s %s: x-celltrail-auth is %r, its security says %s' %\n"
	"                  (m.upper(), p, op.get('x-celltrail-auth'), auth))\n"
	"        for code, resp in op['responses'].items():\n"
	"            if '$ref' not in resp and 'X-Request-Id' not in (resp.get('headers') or {}):\n"
	"                print('ERROR %s %s: response %s lacks X-Request-Id' % (m.upper(), p, code))\n"
	"        print('%s %s %s' % (m.upper(), p, auth))\n";

/* Tools can load the spec: OpenAPI 3.1.0 YAML, each route's auth as the table has it. */
START_TEST(spec_is_openapi_yaml)
{
	static struct op routes[MAX_OPS], doc[MAX_OPS];
	const char *svc = services[_i];
	size_t nr, nd;
	char *text, path[1024];
	load(svc, &text, routes, &nr, doc, &nd);
	spec_path(svc, path, sizeof path);

	/* Plain-text checks, always: the version line and no tab indentation. */
	int version = 0;
	for (const char *l = text; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, "openapi: 3.1.0\n", 15) || !strncmp(l, "openapi: '3.1.0'\n", 17) ||
		    !strncmp(l, "openapi: \"3.1.0\"\n", 17))
			version = 1;
	ck_assert_msg(version, "%s/openapi.yaml has no top-level line 'openapi: 3.1.0'", svc);
	ck_assert_msg(!strchr(text, '\t'), "%s/openapi.yaml contains a tab (YAML indents with spaces)",
	              svc);

	char *probe[] = { "/usr/bin/python3", "-c", "import yaml", NULL };
	if (access("/usr/bin/python3", X_OK) != 0 || it_run("python3", probe, NULL, out, sizeof out) != 0) {
		fprintf(stderr, "openapi: /usr/bin/python3 with PyYAML is absent; only the plain-text "
		                "checks ran\n");
		free(text);
		return;
	}
	char *argv[] = { "/usr/bin/python3", "-c", (char *)py_check, path, NULL };
	int st = it_run("python3", argv, NULL, out, sizeof out);
	ck_assert_msg(st == 0, "%s/openapi.yaml does not load as YAML (exit %d):\n%s", svc, st,
	              tail(out, 1200));
	ck_assert_msg(!strstr(out, "ERROR"), "%s/openapi.yaml:\n%.1500s", svc, out);
	/* The YAML parser sees what the line-wise reader saw, with the table's auth. */
	for (size_t i = 0; i < nr; i++) {
		char want[300];
		snprintf(want, sizeof want, "%s %s %s\n", routes[i].method, routes[i].path, routes[i].auth);
		ck_assert_msg(strstr(out, want), "%s/openapi.yaml: %s %s should be '%s' auth; parsed:\n%.1500s",
		              svc, routes[i].method, routes[i].path, routes[i].auth, out);
	}
	free(text);
}
END_TEST

Suite *openapi_suite(void)
{
	Suite *s = suite_create("openapi");
	TCase *tc = tcase_create("spec");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, every_route_is_documented, 0, NSERVICES);
	tcase_add_loop_test(tc, no_undocumented_extra, 0, NSERVICES);
	tcase_add_loop_test(tc, spec_is_openapi_yaml, 0, NSERVICES);
	suite_add_tcase(s, tc);
	return s;
}
