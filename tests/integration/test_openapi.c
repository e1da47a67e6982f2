/* Each service's openapi.yaml against the route table it documents: every
 * route the service serves is described, nothing is described that it does
 * not serve, each operation's auth level is the table's, and the file is
 * OpenAPI 3.1.0 YAML a tool can load.
 *
 * The route table comes from the binary itself: `<service> routes` prints
 * one "METHOD PATH AUTH" line per route, PATH as routed ("/v1/events/{id}")
 * and AUTH as the spec names it in `x-celltrail-auth` (control plane:
 * public, user, admin, region; data plane: public, api_key). Each test
 * runs once per service of `services` (Check's loop index).
 *
 * The spec also says what the code can answer: the Problem schema's `code`
 * enum is exactly the problem codes the service's sources (and common/'s)
 * can send, the control plane's AuditEntry `action` enum exactly the
 * actions its handlers write, and the pattern of an event's `occurred_at`
 * accepts exactly what the parser does. */
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"
#include "problem.h"
#include "timefmt.h"

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
 * level: none is public; the data plane's `api_key` scheme is api_key, its
 * `move_credential` scheme move; the
 * control plane's `bearer` scheme is admin, region or cell by the role it lists,
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
	"        elif 'move_credential' in sec[0]: auth = 'move'\n"
	"        elif 'admin' in (sec[0].get('bearer') or []): auth = 'admin'\n"
	"        elif 'region' in (sec[0].get('bearer') or []): auth = 'region'\n"
	"        elif 'cell' in (sec[0].get('bearer') or []): auth = 'cell'\n"
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

/* ---- what the code can answer, against the spec ---- */

/* The lines of property `prop` of `schema` under `components: schemas:`
 * (schema keys indented 4, property keys 8), up to the next key at either
 * depth; NULL when absent. The caller frees. */
static char *schema_prop(const char *text, const char *schema, const char *prop)
{
	char key[160];
	const char *p = strstr(text, "\n  schemas:\n");
	if (!p)
		return NULL;
	snprintf(key, sizeof key, "\n    %s:\n", schema);
	if (!(p = strstr(p, key)))
		return NULL;
	p += strlen(key);
	snprintf(key, sizeof key, "        %s:", prop);
	for (const char *l = p; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		size_t ind = strspn(l, " ");
		if (l[ind] != '\n' && ind <= 4)
			return NULL; /* the schema ended */
		if (strncmp(l, key, strlen(key)) != 0)
			continue;
		const char *end = strchr(l, '\n');
		while (end && end[1]) {
			size_t i2 = strspn(end + 1, " ");
			if (end[1 + i2] != '\n' && i2 <= 8)
				break;
			end = strchr(end + 1, '\n');
		}
		size_t len = end ? (size_t)(end - l) : strlen(l);
		char *block = strndup(l, len);
		ck_assert_ptr_nonnull(block);
		return block;
	}
	return NULL;
}

/* The items of the flow list after "enum: [" in `block`, as " a b c ". */
static void enum_items(const char *block, const char *what, char *items, size_t len)
{
	const char *p = block ? strstr(block, "enum: [") : NULL;
	ck_assert_msg(p, "%s has no 'enum: [...]'", what);
	const char *end = strchr(p, ']');
	ck_assert_msg(end, "%s: enum without ']'", what);
	size_t n = 0;
	items[n++] = ' ';
	for (p += 7; p < end; p++) {
		char c = *p == ',' || *p == '\n' || *p == '\'' || *p == '"' ? ' ' : *p;
		if (c == ' ' && items[n - 1] == ' ')
			continue;
		ck_assert_msg(n + 2 < len, "%s: enum too long", what);
		items[n++] = c;
	}
	if (items[n - 1] != ' ')
		items[n++] = ' ';
	items[n] = '\0';
}

/* Whether the " a b c " list holds `word`. */
static int listed(const char *list, const char *word)
{
	char w[160];
	snprintf(w, sizeof w, " %s ", word);
	return strstr(list, w) != NULL;
}

static void add_word(char *list, size_t size, const char *word)
{
	if (!listed(list, word)) {
		size_t n = strlen(list);
		snprintf(list + n, size - n, "%s%s ", n ? "" : " ", word);
	}
}

/* A C file's text with its comments blanked. The caller frees. */
static char *source_code(const char *path)
{
	char *t = it_slurp(path);
	ck_assert_msg(t, "%s is missing", path);
	for (char *p = t; *p; p++) {
		if (*p == '"' || *p == '\'') { /* a literal: skip to its end */
			char q = *p;
			for (p++; *p && *p != q; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				break;
		} else if (p[0] == '/' && p[1] == '*') {
			char *e = strstr(p + 2, "*/");
			char *stop = e ? e + 2 : p + strlen(p);
			for (; p < stop; p++)
				if (*p != '\n')
					*p = ' ';
			p--;
		} else if (p[0] == '/' && p[1] == '/') {
			for (; *p && *p != '\n'; p++)
				*p = ' ';
			if (!*p)
				break;
		}
	}
	return t;
}

/* Calls `fn` with the text of every "*.c" file of IT_ROOT/dir but `skip`. */
static void each_source(const char *dir, const char *skip, void (*fn)(const char *path, char *text, void *ctx),
                        void *ctx)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", it_env("IT_ROOT"), dir);
	DIR *d = opendir(path);
	ck_assert_msg(d, "cannot list %s", path);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		size_t n = strlen(e->d_name);
		if (n < 3 || strcmp(e->d_name + n - 2, ".c") || (skip && !strcmp(e->d_name, skip)))
			continue;
		snprintf(path, sizeof path, "%s/%s/%s", it_env("IT_ROOT"), dir, e->d_name);
		char *text = source_code(path);
		fn(path, text, ctx);
		free(text);
	}
	closedir(d);
}

/* The table of common/problem.c: "[PROB_X] = { "code", ..." rows, as
 * " PROB_X=code " words. */
static void problem_table(char *table, size_t size)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/common/problem.c", it_env("IT_ROOT"));
	char *t = source_code(path);
	table[0] = '\0';
	int rows = 0;
	for (const char *p = t; (p = strstr(p, "[PROB_")) != NULL; p++) {
		char name[64], code[64];
		if (sscanf(p, "[%63[A-Z_]] = { \"%63[a-z_]\"", name, code) != 2)
			continue;
		char w[140];
		snprintf(w, sizeof w, "%s=%s", name, code);
		add_word(table, size, w);
		rows++;
	}
	free(t);
	ck_assert_msg(rows >= 10, "common/problem.c: found only %d rows of the problem table", rows);
}

struct codes_ctx {
	const char *table;
	char codes[4096];   /* " code code " the sources can send */
	char unknown[1024]; /* PROB_ names not in the table */
};

static void collect_codes(const char *path, char *text, void *vctx)
{
	struct codes_ctx *c = vctx;
	(void)path;
	for (char *p = text; (p = strstr(p, "PROB_")) != NULL; p++) {
		if (p > text && (p[-1] == '_' || (p[-1] >= 'A' && p[-1] <= 'Z') || (p[-1] >= 'a' && p[-1] <= 'z') ||
		                 (p[-1] >= '0' && p[-1] <= '9')))
			continue;
		size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
		char name[64];
		if (n >= sizeof name)
			continue;
		memcpy(name, p, n);
		name[n] = '\0';
		if (!strcmp(name, "PROB__COUNT") || !strcmp(name, "PROB_") ||
		    !strcmp(name, "PROBLEM_TYPE_PREFIX"))
			continue;
		char key[80];
		snprintf(key, sizeof key, " %s=", name);
		const char *row = strstr(c->table, key);
		if (!row) {
			add_word(c->unknown, sizeof c->unknown, name);
			continue;
		}
		char code[64];
		ck_assert_int_eq(sscanf(row + strlen(key), "%63[a-z_]", code), 1);
		add_word(c->codes, sizeof c->codes, code);
	}
}

/* A client switching on a problem's `code` finds in the spec every code
 * the service can send, and no code it never sends. */
START_TEST(problem_codes_match_the_spec)
{
	static char table[8192];
	static struct codes_ctx c;
	const char *svc = services[_i];
	char path[1024], doc[4096], missing[2048] = "", extra[2048] = "";
	memset(&c, 0, sizeof c);
	problem_table(table, sizeof table);
	c.table = table;
	each_source("common", "problem.c", collect_codes, &c);
	each_source(svc, NULL, collect_codes, &c);
	ck_assert_msg(!c.unknown[0], "problem names used but not in common/problem.c's table:%s", c.unknown);

	spec_path(svc, path, sizeof path);
	char *text = it_slurp(path);
	ck_assert_ptr_nonnull(text);
	char *block = schema_prop(text, "Problem", "code");
	enum_items(block, "the Problem schema's code", doc, sizeof doc);
	char word[64];
	for (const char *p = c.codes; sscanf(p, " %63s", word) == 1; p = strstr(p + 1, word) + strlen(word))
		if (!listed(doc, word))
			add_word(missing, sizeof missing, word);
	for (const char *p = doc; sscanf(p, " %63s", word) == 1; p = strstr(p + 1, word) + strlen(word))
		if (!listed(c.codes, word))
			add_word(extra, sizeof extra, word);
	ck_assert_msg(!missing[0] && !extra[0],
	              "%s/openapi.yaml, Problem.code enum: lacks codes the service can send:%s; "
	              "lists codes it never sends:%s",
	              svc, missing[0] ? missing : " -", extra[0] ? extra : " -");
	free(block);
	free(text);
}
END_TEST

struct actions_ctx {
	char actions[4096];   /* " a.b c.d " */
	char opaque[2048];    /* calls whose action is not a literal */
	char writers[1024];   /* files inserting into audit_log but db_audit.c */
};

/* Whether a string literal's content looks like an action: a.b[.c...]. */
static int is_action(const char *s, size_t n)
{
	int dots = 0;
	if (!n || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return 0;
			dots++;
		} else if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) {
			return 0;
		}
	}
	return dots > 0;
}

static void collect_actions(const char *path, char *text, void *vctx)
{
	struct actions_ctx *c = vctx;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (strcasestr(text, "INSERT INTO audit_log") && strcmp(base, "db_audit.c"))
		add_word(c->writers, sizeof c->writers, base);
	/* cp_audit() for requests, cp_audit_operator() for an operator's commands. */
	static const char *const calls[] = { "cp_audit(", "cp_audit_operator(" };
	for (size_t ci = 0; ci < 2; ci++) {
		for (char *p = text; (p = strstr(p, calls[ci])) != NULL; p++) {
			if (p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
				continue;
			/* A declaration or definition names a type first: no call. */
			const char *args = p + strlen(calls[ci]);
			if (!strncmp(args, "struct ", 7))
				continue;
			int depth = 1, found = 0;
			for (const char *q = args; *q && depth; q++) {
				if (*q == '(')
					depth++;
				else if (*q == ')')
					depth--;
				else if (*q == '"') {
					const char *e = strchr(q + 1, '"');
					if (!e)
						break;
					if (is_action(q + 1, (size_t)(e - q - 1))) {
						char a[128];
						snprintf(a, sizeof a, "%.*s", (int)(e - q - 1), q + 1);
						add_word(c->actions, sizeof c->actions, a);
						found = 1;
					}
					q = e;
				}
			}
			if (!found) {
				char where[200];
				int line = 1;
				for (const char *q = text; q < p; q++)
					line += *q == '\n';
				snprintf(where, sizeof where, "%s:%d", base, line);
				add_word(c->opaque, sizeof c->opaque, where);
			}
		}
	}
}

/* An auditor reading the spec finds every action the control plane
 * writes to the audit log, and no action it never writes. */
START_TEST(audit_actions_match_the_spec)
{
	static struct actions_ctx c;
	char path[1024], doc[4096], missing[2048] = "", extra[2048] = "", word[128];
	memset(&c, 0, sizeof c);
	each_source("control-plane", NULL, collect_actions, &c);
	ck_assert_msg(!c.writers[0], "audit_log written outside control-plane/db_audit.c (by%s): this "
	              "test reads the actions of cp_audit() calls only", c.writers);
	ck_assert_msg(!c.opaque[0], "cp_audit() calls whose action is not a string literal:%s", c.opaque);
	ck_assert_msg(listed(c.actions, "tenant.create"), "no cp_audit() call found: %s", c.actions);
	/* Nor in SQL: a migration writing audit records would bypass cp_audit. */
	snprintf(path, sizeof path, "%s/migrations/control-plane", it_env("IT_ROOT"));
	DIR *d = opendir(path);
	ck_assert_msg(d, "cannot list %s", path);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		char f[1400];
		if (!strstr(e->d_name, ".sql"))
			continue;
		snprintf(f, sizeof f, "%s/%s", path, e->d_name);
		char *sql = it_slurp(f);
		ck_assert_ptr_nonnull(sql);
		ck_assert_msg(!strcasestr(sql, "INSERT INTO audit_log"),
		              "%s writes audit records: this test reads cp_audit() calls only", f);
		free(sql);
	}
	closedir(d);

	spec_path("control-plane", path, sizeof path);
	char *text = it_slurp(path);
	ck_assert_ptr_nonnull(text);
	char *block = schema_prop(text, "AuditEntry", "action");
	enum_items(block, "AuditEntry.action", doc, sizeof doc);
	for (const char *p = c.actions; sscanf(p, " %127s", word) == 1; p = strstr(p + 1, word) + strlen(word))
		if (!listed(doc, word))
			add_word(missing, sizeof missing, word);
	for (const char *p = doc; sscanf(p, " %127s", word) == 1; p = strstr(p + 1, word) + strlen(word))
		if (!listed(c.actions, word))
			add_word(extra, sizeof extra, word);
	ck_assert_msg(!missing[0] && !extra[0],
	              "control-plane/openapi.yaml, AuditEntry.action enum: lacks actions the service "
	              "writes:%s; lists actions it never writes:%s",
	              missing[0] ? missing : " -", extra[0] ? extra : " -");
	free(block);
	free(text);
}
END_TEST

/* A client validating `occurred_at` with the spec's pattern accepts what
 * the data plane accepts and nothing else: every combination of separator,
 * fraction length (0 to 10 digits) and zone on a valid date and time. */
START_TEST(occurred_at_pattern_is_the_parser)
{
	static const char *const seps[] = { "T", "t", " ", "x" };
	static const char *const zones[] = { "Z", "z", "+02:00", "-23:59", "+2:00", "", "+02:00Z", "+0200" };
	char path[1024], pattern[512], bad[2048] = "";
	spec_path("data-plane", path, sizeof path);
	char *text = it_slurp(path);
	ck_assert_ptr_nonnull(text);
	char *block = schema_prop(text, "EventInput", "occurred_at");
	ck_assert_msg(block, "data-plane/openapi.yaml: no EventInput.occurred_at");
	const char *p = strstr(block, "pattern: '");
	ck_assert_msg(p, "EventInput.occurred_at has no pattern");
	ck_assert_int_eq(sscanf(p + 10, "%511[^']", pattern), 1);
	regex_t re;
	ck_assert_msg(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0, "pattern %s does not compile",
	              pattern);
	int tried = 0, accepted = 0;
	for (size_t s = 0; s < sizeof seps / sizeof seps[0]; s++)
		for (int digits = -1; digits <= 10; digits++)
			for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
				char frac[16] = "", in[64];
				if (digits >= 0) {
					frac[0] = '.';
					for (int k = 0; k < digits; k++)
						frac[1 + k] = (char)('1' + k % 9);
					frac[1 + digits] = '\0';
				}
				snprintf(in, sizeof in, "2030-01-01%s10:00:00%s%s", seps[s], frac, zones[z]);
				int64_t us;
				int parses = timefmt_parse(in, &us) == 0;
				int matches = regexec(&re, in, 0, NULL, 0) == 0;
				tried++;
				accepted += parses;
				if (parses != matches) {
					size_t n = strlen(bad);
					if (n + 100 < sizeof bad)
						snprintf(bad + n, sizeof bad - n, " '%s' (parser %s, pattern %s);", in,
						         parses ? "accepts" : "refuses", matches ? "matches" : "refuses");
				}
			}
	regfree(&re);
	ck_assert_msg(accepted > 0 && accepted < tried, "the inputs do not exercise the parser");
	ck_assert_msg(!bad[0], "occurred_at's pattern %s disagrees with the parser on:%s", pattern, bad);
	free(block);
	free(text);
}
END_TEST

/* The rows "| `code` | status | ..." of the Markdown tables in `text`, as
 * " code=status " words; a code listed twice is added to `dup`. */
static void doc_code_rows(const char *text, char *rows, size_t size, char *dup, size_t dupsize)
{
	rows[0] = '\0';
	for (const char *l = text; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char code[64], w[80];
		unsigned status;
		if (sscanf(l, " | `%63[a-z_]` | %u |", code, &status) != 2)
			continue;
		snprintf(w, sizeof w, "%s=%u", code, status);
		char key[80];
		snprintf(key, sizeof key, " %s=", code);
		if (strstr(rows, key))
			add_word(dup, dupsize, code);
		add_word(rows, size, w);
	}
}

/* One table of problem codes for both services: the README's table and
 * each spec's (in the Problem schema's code) list exactly the codes of
 * common/problem.c, each with its status, so a client reads the same
 * vocabulary wherever it looks. */
START_TEST(problem_table_is_documented)
{
	static char want[4096], rows[4096];
	char dup[512] = "", missing[2048] = "", extra[2048] = "", word[80];
	want[0] = '\0';
	for (int i = 0; i < PROB__COUNT; i++) {
		const struct problem_info *p = problem_info((enum problem_code)i);
		add_word(want, sizeof want, it_fmt("%s=%u", p->code, p->status));
	}
	const char *docs[] = { "README.md", "control-plane/openapi.yaml", "data-plane/openapi.yaml" };
	for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
		char *text = it_slurp(it_fmt("%s/%s", it_env("IT_ROOT"), docs[d]));
		ck_assert_msg(text, "%s is missing", docs[d]);
		dup[0] = missing[0] = extra[0] = '\0';
		doc_code_rows(text, rows, sizeof rows, dup, sizeof dup);
		for (const char *p = want; sscanf(p, " %79s", word) == 1; p = strstr(p + 1, word) + strlen(word))
			if (!listed(rows, word))
				add_word(missing, sizeof missing, word);
		for (const char *p = rows; sscanf(p, " %79s", word) == 1; p = strstr(p + 1, word) + strlen(word))
			if (!listed(want, word))
				add_word(extra, sizeof extra, word);
		ck_assert_msg(!missing[0] && !extra[0] && !dup[0],
		              "%s, the table of problem codes (rows \"| `code` | status | ...\"): lacks%s; "
		              "has rows not in common/problem.c (or with another status):%s; lists twice:%s",
		              docs[d], missing[0] ? missing : " -", extra[0] ? extra : " -", dup[0] ? dup : " -");
		free(text);
	}
}
END_TEST

static struct it_stack served;

/* Region eu: the README's walk-through creates its tenant there. */
static void served_setup(void)
{
	it_stack_start(&served, "eu", NULL, NULL);
}

static void served_teardown(void)
{
	it_stack_stop(&served);
}

/* Each service serves its API reference at GET /openapi.yaml, without a
 * credential, as YAML: byte for byte its openapi.yaml. */
START_TEST(serves_its_document)
{
	const char *const urls[NSERVICES] = { served.cp_url, served.dp_url };
	for (int i = 0; i < NSERVICES; i++) {
		char path[1024], type[128];
		spec_path(services[i], path, sizeof path);
		char *want = it_slurp(path);
		ck_assert_ptr_nonnull(want);
		struct it_resp r;
		it_http(&r, "GET", it_fmt("%s/openapi.yaml", urls[i]), NULL, NULL, 0);
		ck_assert_msg(r.status == 200, "%s: GET /openapi.yaml: %ld", services[i], r.status);
		ck_assert_int_eq(it_header(&r, "Content-Type", type, sizeof type), 0);
		ck_assert_msg(!strcmp(type, "application/yaml"), "%s: Content-Type %s", services[i], type);
		ck_assert_msg(r.len == strlen(want) && !memcmp(r.body, want, r.len),
		              "%s: GET /openapi.yaml is not %s (%zu bytes, the file has %zu)", services[i], path, r.len,
		              strlen(want));
		it_resp_free(&r);
		free(want);
	}
}
END_TEST

/* Whether the data plane routes GET `path` (`data-plane routes`). */
static int dp_routes_get(const char *path)
{
	static struct op ops[MAX_OPS];
	size_t n = routes_from_binary("data-plane", ops);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ops[i].method, "GET") && !strcmp(ops[i].path, path))
			return 1;
	return 0;
}

/* A newcomer pasting the README's walk-through (the ```sh blocks between
 * its walkthrough markers) into a shell gets through every step: create a
 * tenant, add an owner, log in, create a key, send, query, follow the
 * feed, export. The blocks run as written, in one `sh -eu`, with the
 * variables var/stack.env would give (the region's catalog endpoint set
 * to this data plane, as `make run` does). A block calling a route this
 * build does not serve yet is reported and left out. */
START_TEST(readme_walkthrough_runs)
{
	char *readme = it_slurp(it_fmt("%s/README.md", it_env("IT_ROOT")));
	ck_assert_ptr_nonnull(readme);
	char *start = strstr(readme, "<!-- walkthrough:start -->"), *end = strstr(readme, "<!-- walkthrough:end -->");
	ck_assert_msg(start && end && start < end, "README.md has no walkthrough:start/end markers");
	*end = '\0';

	struct it_resp r;
	it_stack_admin(&served, &r, "PATCH", "/v1/regions/eu", it_fmt("{\"endpoint\":\"%s\"}", served.dp_url));
	ck_assert_msg(r.status == 200, "PATCH /v1/regions/eu: %ld %.300s", r.status, r.body);
	it_resp_free(&r);

	static char script[65536];
	char skipped[256] = "";
	int blocks = 0;
	snprintf(script, sizeof script, "set -eu\n");
	for (char *b = strstr(start, "```sh\n"); b; b = strstr(b, "```sh\n")) {
		b += 6;
		char *e = strstr(b, "```");
		ck_assert_msg(e, "README.md: a ```sh block of the walk-through is not closed");
		*e = '\0';
		const char *routes[] = { "/v1/events/feed", "/v1/events/export" };
		int run = 1;
		for (size_t i = 0; i < 2; i++)
			if (strstr(b, routes[i]) && !dp_routes_get(routes[i])) {
				run = 0;
				snprintf(skipped + strlen(skipped), sizeof skipped - strlen(skipped), " %s", routes[i]);
			}
		if (run) {
			for (char *l = b; *l;) {
				char *nl = strchr(l, '\n');
				size_t n = nl ? (size_t)(nl - l) + 1 : strlen(l);
				if (strncmp(l, ". var/stack.env", 15)) /* the variables come from here */
					snprintf(script + strlen(script), sizeof script - strlen(script), "%.*s", (int)n, l);
				l += n;
			}
			blocks++;
		}
		b = e + 3;
	}
	ck_assert_msg(blocks >= 6, "only %d blocks of the walk-through ran", blocks);
	char path[1024];
	snprintf(path, sizeof path, "%s/walkthrough-%d.sh", it_env("IT_LOG_DIR"), (int)getpid());
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(script, f);
	fclose(f);

	char cp_url[128], admin[128];
	snprintf(cp_url, sizeof cp_url, "CP_URL=%s", served.cp_url);
	snprintf(admin, sizeof admin, "ADMIN_TOKEN=%s", IT_ADMIN_TOKEN);
	const char *env[] = { cp_url, admin, NULL };
	char *argv[] = { "timeout", "50", "sh", path, NULL };
	int st = it_run("walkthrough", argv, env, out, sizeof out);
	ck_assert_msg(st == 0, "the README's walk-through failed (exit %d; script %s):\n%s", st, path, tail(out, 3000));
	ck_assert_msg(strstr(out, "\"login-1\"") && strstr(out, "\"export-1\""),
	              "the walk-through's answers lack the events it sent:\n%s", tail(out, 3000));
	printf("  walk-through: %d blocks of the README ran%s%s\n", blocks, skipped[0] ? "; left out (not served):" : "",
	       skipped);
	free(readme);
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
	tcase_add_loop_test(tc, problem_codes_match_the_spec, 0, NSERVICES);
	tcase_add_test(tc, problem_table_is_documented);
	tcase_add_test(tc, audit_actions_match_the_spec);
	tcase_add_test(tc, occurred_at_pattern_is_the_parser);
	suite_add_tcase(s, tc);
	TCase *wire = tcase_create("served");
	tcase_set_timeout(wire, 120);
	tcase_add_checked_fixture(wire, served_setup, served_teardown);
	tcase_add_test(wire, serves_its_document);
	tcase_add_test(wire, readme_walkthrough_runs);
	suite_add_tcase(s, wire);
	return s;
}
