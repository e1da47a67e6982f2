/* The control plane's REST API from outside, over HTTP, against a real
 * PostgreSQL: who may call what, tenants and their home region, bad input,
 * users and logins, API keys and their secrets, idempotency, the audit log,
 * config versions and the public lookup.
 *
 * Every test is its own TCase with its own control plane on a fresh
 * database (a checked fixture: Check forks per test, so the service is
 * started in the test's own process and stopped after it, exit status 0
 * required). */
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cpfx.h"

#define BODY_LIMIT (16 * 1024)
#define LOGIN_LIMIT 4096

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

static void cp_setup(void)
{
	const char *const extra[] = { "CP_ACCESS_LOG=true", NULL };
	cpfx_start("it_cp_api", extra);
}

static void cp_teardown(void)
{
	cpfx_stop();
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int is_hex(const char *s, size_t n)
{
	if (strlen(s) < n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* SQL on this test's database                                         */

static long audit_rows(void)
{
	return qlong("SELECT count(*) FROM audit_log");
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

static int header_is(const struct res *r, const char *name, const char *want)
{
	char v[512];
	return it_header(&r->raw, name, v, sizeof v) == 0 && !strcmp(v, want);
}

/* ------------------------------------------------------------------ */
/* Building a world, as the admin                                      */

static void new_admin(const char *email, char id[37])
{
	struct res r;
	api(&r, "POST", "/v1/admins", ADMIN_TOKEN,
	    it_fmt("{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email));
	EXPECT(&r, 201);
	snprintf(id, 37, "%s", it_js(r.json, "id"));
	res_free(&r);
}

/* A key of `tenant_id` created by `token`; `secret` may be NULL. */
static void new_key(const char *token, const char *tenant_id, char id[25], char secret[200])
{
	struct res r;
	api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", tenant_id), token,
	    "{\"name\":\"a key\",\"scopes\":[\"events:write\"]}");
	EXPECT(&r, 201);
	snprintf(id, 25, "%s", it_js(r.json, "id"));
	if (secret)
		snprintf(secret, 200, "%s", it_js(r.json, "secret"));
	res_free(&r);
}

/* ------------------------------------------------------------------ */
/* 1. Authorization matrix                                             */

enum who { ANON, GARBAGE, OWNER_B, MEMBER_A, OWNER_A, ADMIN, NWHO };
static const char *const who_name[NWHO] = { "anonymous", "a garbage token", "the owner of B",
	                                        "a member of A", "the owner of A", "the admin token" };

/* An object made afresh (by the admin) before each request of a row, for
 * requests that consume their target. */
enum fresh { F_NONE, F_USER, F_KEY, F_ADMIN, F_MOVE, F_STREAM };

struct authz_row {
	const char *method;
	const char *pattern;  /* as `control-plane routes` prints it */
	const char *path;     /* {A}: tenant A; {member}: A's member; {fresh}: the fresh object; {n}: a counter */
	const char *body;     /* same placeholders; NULL sends none */
	enum fresh fresh;
	int writes;           /* a success leaves exactly one audit record */
	int relogin;          /* a success ends the caller's session */
	int expect[NWHO];     /* anonymous, garbage, owner B, member A, owner A, admin */
};

/* The single source of truth: every user and admin route, aimed at tenant
 * A's objects, and what each principal gets. Owner B never learns that A's
 * objects exist (404) except on admin-only routes (403 for any id); members
 * read but do not write; the audit log is for owners; the admin token is
 * not a session (logout is a 400). Destructive rows come last. */
static const struct authz_row authz_rows[] = {
	{ "GET", "/v1/tenants", "/v1/tenants", NULL, F_NONE, 0, 0, { 401, 401, 200, 200, 200, 200 } },
	{ "POST", "/v1/tenants", "/v1/tenants",
	  "{\"name\":\"T {n}\",\"slug\":\"authz-{n}\",\"region\":\"us\",\"plan\":\"free\"}", F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 201 } },
	{ "GET", "/v1/tenants/{id}", "/v1/tenants/{A}", NULL, F_NONE, 0, 0, { 401, 401, 404, 200, 200, 200 } },
	{ "PATCH", "/v1/tenants/{id}", "/v1/tenants/{A}", "{\"name\":\"Tenant A\"}", F_NONE, 1, 0,
	  { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/users", "/v1/tenants/{A}/users",
	  "{\"email\":\"user{n}@a.test\",\"role\":\"member\",\"password\":\"" PASSWORD "\"}", F_NONE, 1, 0,
	  { 401, 401, 404, 403, 201, 201 } },
	{ "GET", "/v1/tenants/{id}/users", "/v1/tenants/{A}/users", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "PATCH", "/v1/tenants/{id}/users/{user_id}", "/v1/tenants/{A}/users/{member}",
	  "{\"role\":\"member\"}", F_NONE, 1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "DELETE", "/v1/tenants/{id}/users/{user_id}", "/v1/tenants/{A}/users/{fresh}", NULL, F_USER, 1, 0,
	  { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/api-keys", "/v1/tenants/{A}/api-keys",
	  "{\"name\":\"key {n}\",\"scopes\":[\"events:write\"]}", F_NONE, 1, 0,
	  { 401, 401, 404, 403, 201, 201 } },
	{ "GET", "/v1/tenants/{id}/api-keys", "/v1/tenants/{A}/api-keys", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "DELETE", "/v1/tenants/{id}/api-keys/{key_id}", "/v1/tenants/{A}/api-keys/{fresh}", NULL, F_KEY,
	  1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "GET", "/v1/audit-log", "/v1/audit-log?tenant_id={A}", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/admins", "/v1/admins",
	  "{\"email\":\"admin{n}@ops.test\",\"password\":\"" PASSWORD "\"}", F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 201 } },
	{ "GET", "/v1/admins", "/v1/admins", NULL, F_NONE, 0, 0, { 401, 401, 403, 403, 403, 200 } },
	{ "DELETE", "/v1/admins/{id}", "/v1/admins/{fresh}", NULL, F_ADMIN, 1, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/regions", "/v1/regions",
	  "{\"name\":\"r{n}\",\"display_name\":\"Region {n}\",\"cloud_regions\":[\"xx-east-1\"],"
	  "\"endpoint\":\"https://r{n}.api.celltrail.example\",\"wave\":4}",
	  F_NONE, 1, 0, { 401, 401, 403, 403, 403, 201 } },
	{ "PATCH", "/v1/regions/{name}", "/v1/regions/jp", "{\"display_name\":\"Japan\"}", F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "GET", "/v1/regions/{region}/fleet", "/v1/regions/eu/fleet", NULL, F_NONE, 0, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/regions/{name}/credentials", "/v1/regions/eu/credentials", NULL, F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 201 } },
	{ "GET", "/v1/regions/{region}/cells", "/v1/regions/eu/cells", NULL, F_NONE, 0, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/regions/{region}/cells", "/v1/regions/eu/cells",
	  "{\"name\":\"eu-cell-{n}\",\"kind\":\"shared\"}", F_NONE, 1, 0, { 401, 401, 403, 403, 403, 201 } },
	{ "GET", "/v1/regions/{region}/cells/{cell}", "/v1/regions/eu/cells/eu-west-2", NULL, F_NONE, 0, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "PATCH", "/v1/regions/{region}/cells/{cell}", "/v1/regions/eu/cells/eu-west-2",
	  "{\"status\":\"active\"}", F_NONE, 1, 0, { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/cells/{cell}/credentials", "/v1/cells/eu-west-1/credentials", NULL, F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 201 } },
	{ "POST", "/v1/plans", "/v1/plans",
	  "{\"id\":\"p{n}\",\"name\":\"Plan {n}\",\"currency\":\"EUR\",\"base_price\":100,"
	  "\"events_included\":10,\"price_per_1000\":5,\"rate_limit\":10,\"burst\":20,"
	  "\"monthly_event_quota\":1000,\"retention_days\":30}",
	  F_NONE, 1, 0, { 401, 401, 403, 403, 403, 201 } },
	{ "PATCH", "/v1/plans/{id}", "/v1/plans/free", "{\"name\":\"Free\"}", F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	{ "GET", "/v1/tenants/{id}/usage", "/v1/tenants/{A}/usage?period=2026-01", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 403, 200, 200 } },
	{ "GET", "/v1/tenants/{id}/invoices", "/v1/tenants/{A}/invoices", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 403, 200, 200 } },
	/* No invoice exists in this world: these rows check who is refused
	 * before the lookup (the billing suite covers invoices themselves). */
	{ "GET", "/v1/invoices/{id}", "/v1/invoices/00000000-0000-4000-8000-000000000000", NULL, F_NONE,
	  0, 0, { 401, 401, 404, 404, 404, 404 } },
	{ "POST", "/v1/invoices/{id}/finalize", "/v1/invoices/00000000-0000-4000-8000-000000000000/finalize",
	  NULL, F_NONE, 0, 0, { 401, 401, 403, 403, 403, 404 } },
	{ "POST", "/v1/invoices/{id}/void", "/v1/invoices/00000000-0000-4000-8000-000000000000/void",
	  NULL, F_NONE, 0, 0, { 401, 401, 403, 403, 403, 404 } },
	{ "POST", "/v1/billing/periods/{period}/close", "/v1/billing/periods/2020-01/close", NULL, F_NONE,
	  1, 0, { 401, 401, 403, 403, 403, 201 } },
	{ "GET", "/v1/tenants/{id}/users/{user_id}", "/v1/tenants/{A}/users/{member}", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "GET", "/v1/tenants/{id}/api-keys/{key_id}", "/v1/tenants/{A}/api-keys/{fresh}", NULL, F_KEY, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "GET", "/v1/admins/{id}", "/v1/admins/{fresh}", NULL, F_ADMIN, 0, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	/* A move between regions is the owner's request; one between cells the admin's. */
	{ "POST", "/v1/tenants/{id}/moves", "/v1/tenants/{A}/moves", "{\"to_region\":\"us\"}", F_NONE, 1, 0,
	  { 401, 401, 404, 403, 201, 403 } },
	{ "GET", "/v1/tenants/{id}/moves", "/v1/tenants/{A}/moves", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "GET", "/v1/tenants/{id}/moves/{move}", "/v1/tenants/{A}/moves/{fresh}", NULL, F_MOVE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/moves/{move}/approve", "/v1/tenants/{A}/moves/{fresh}/approve", NULL, F_MOVE,
	  1, 0, { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/tenants/{id}/moves/{move}/abort", "/v1/tenants/{A}/moves/{fresh}/abort", NULL, F_MOVE,
	  1, 0, { 401, 401, 403, 403, 403, 200 } },
	{ "POST", "/v1/cells/{cell}/drain", "/v1/cells/eu-west-2/drain", "{}", F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 202 } },
	{ "GET", "/v1/cells/{cell}/drain", "/v1/cells/eu-west-2/drain", NULL, F_NONE, 0, 0,
	  { 401, 401, 403, 403, 403, 200 } },
	/* Log streams: owners change, members read (tenant A's region eu
	 * allows *.siem.example, set by world_init). */
	{ "POST", "/v1/tenants/{id}/streams", "/v1/tenants/{A}/streams",
	  "{\"kind\":\"splunk_hec\",\"url\":\"https://h{n}.siem.example\",\"token\":\"t{n}\"}", F_NONE, 1, 0,
	  { 401, 401, 404, 403, 201, 201 } },
	{ "GET", "/v1/tenants/{id}/streams", "/v1/tenants/{A}/streams", NULL, F_NONE, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "GET", "/v1/tenants/{id}/streams/{stream}", "/v1/tenants/{A}/streams/{fresh}", NULL, F_STREAM, 0, 0,
	  { 401, 401, 404, 200, 200, 200 } },
	{ "PATCH", "/v1/tenants/{id}/streams/{stream}", "/v1/tenants/{A}/streams/{fresh}",
	  "{\"url\":\"https://p{n}.siem.example\"}", F_STREAM, 1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/pause", "/v1/tenants/{A}/streams/{fresh}/pause", NULL,
	  F_STREAM, 1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/resume", "/v1/tenants/{A}/streams/{fresh}/resume", NULL,
	  F_STREAM, 1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/replay", "/v1/tenants/{A}/streams/{fresh}/replay",
	  "{\"since\":\"2026-01-01T00:00:00Z\"}", F_STREAM, 1, 0, { 401, 401, 404, 403, 200, 200 } },
	{ "DELETE", "/v1/tenants/{id}/streams/{stream}", "/v1/tenants/{A}/streams/{fresh}", NULL, F_STREAM, 1, 0,
	  { 401, 401, 404, 403, 204, 204 } },
	{ "POST", "/v1/auth/logout", "/v1/auth/logout", NULL, F_NONE, 0, 1, { 401, 401, 200, 200, 200, 400 } },
	{ "DELETE", "/v1/tenants/{id}", "/v1/tenants/{A}", NULL, F_NONE, 1, 0,
	  { 401, 401, 403, 403, 403, 200 } },
};
#define NROWS (sizeof authz_rows / sizeof authz_rows[0])

struct var {
	const char *name, *value;
};

/* Replaces each {name} of `tpl` found in `vars` (NULL-terminated) by its
 * value; other braces are copied as they are. */
static void expand(const char *tpl, const struct var *vars, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = tpl; *p;) {
		const struct var *hit = NULL;
		const char *end = *p == '{' ? strchr(p, '}') : NULL;
		for (const struct var *v = vars; end && v->name && !hit; v++)
			if (strlen(v->name) == (size_t)(end - p - 1) && !strncmp(p + 1, v->name, strlen(v->name)))
				hit = v;
		const char *src = hit ? hit->value : p;
		size_t n = hit ? strlen(hit->value) : 1;
		ck_assert_msg(o + n < len, "expand: %s is too long", tpl);
		memcpy(out + o, src, n);
		o += n;
		p = hit ? end + 1 : p + 1;
	}
	out[o] = '\0';
}

struct world {
	char a[37], b[37], owner_a[37], member_a[37], owner_b[37];
	char tok[NWHO][128];
};

static const char *const who_email[NWHO] = { NULL, NULL, "owner@b.test", "member@a.test", "owner@a.test", NULL };
static const char *const who_slug[NWHO] = { NULL, NULL, "tenant-b", "tenant-a", "tenant-a", NULL };

static void world_init(struct world *w)
{
	new_tenant("tenant-a", "eu", "free", w->a);
	new_tenant("tenant-b", "us", "free", w->b);
	new_user(w->a, "owner@a.test", "owner", w->owner_a);
	new_user(w->a, "member@a.test", "member", w->member_a);
	new_user(w->b, "owner@b.test", "owner", w->owner_b);
	memset(w->tok, 0, sizeof w->tok);
	snprintf(w->tok[GARBAGE], sizeof w->tok[GARBAGE], "cts_thisIsNotATokenAnyoneWasGiven0123456789abc");
	snprintf(w->tok[ADMIN], sizeof w->tok[ADMIN], "%s", ADMIN_TOKEN);
	for (int i = 0; i < NWHO; i++)
		if (who_email[i])
			login(who_slug[i], who_email[i], w->tok[i]);
	free(q("UPDATE regions SET stream_hosts = '{*.siem.example}' WHERE name = 'eu' RETURNING 1"));
}

/* Every user or admin route of `control-plane routes` has a row, and every
 * row is a route; admin-only routes refuse tenant users with 403. */
static void check_rows_cover_routes(void)
{
	char bin[1024], out[8192];
	char *argv[] = { bin, "routes", NULL };
	int covered[NROWS] = { 0 };

	it_bin("control-plane", bin, sizeof bin);
	ck_assert_int_eq(it_run("cp-routes", argv, NULL, out, sizeof out), 0);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char method[16], pattern[200], auth[16];
		ck_assert_int_eq(sscanf(line, "%15s %199s %15s", method, pattern, auth), 3);
		/* Tenant users and admins are the principals here; other levels
		 * (a region's own credential) have their own tests. */
		if (strcmp(auth, "user") != 0 && strcmp(auth, "admin") != 0)
			continue;
		size_t i;
		for (i = 0; i < NROWS; i++)
			if (!strcmp(authz_rows[i].method, method) && !strcmp(authz_rows[i].pattern, pattern))
				break;
		ck_assert_msg(i < NROWS, "the authorization table has no row for %s %s", method, pattern);
		covered[i] = 1;
		if (!strcmp(auth, "admin"))
			ck_assert_msg(authz_rows[i].expect[OWNER_A] == 403 && authz_rows[i].expect[MEMBER_A] == 403,
			              "%s %s is admin-only but its row lets tenant users in", method, pattern);
	}
	for (size_t i = 0; i < NROWS; i++)
		ck_assert_msg(covered[i], "row %s %s is no authenticated route", authz_rows[i].method,
		              authz_rows[i].pattern);
}

static void make_fresh(const struct world *w, enum fresh f, int n, char out[64])
{
	out[0] = '\0';
	if (f == F_USER)
		new_user(w->a, it_fmt("fresh%d@a.test", n), "member", out);
	else if (f == F_KEY)
		new_key(ADMIN_TOKEN, w->a, out, NULL);
	else if (f == F_ADMIN)
		new_admin(it_fmt("fresh%d@ops.test", n), out);
	else if (f == F_STREAM) {
		/* One stream at a time: the tenant may have ten. */
		free(q(it_fmt("UPDATE streams SET deleted_at = now() WHERE tenant_id = '%s' RETURNING 1", w->a)));
		struct res r;
		api(&r, "POST", it_fmt("/v1/tenants/%s/streams", w->a), ADMIN_TOKEN,
		    "{\"kind\":\"splunk_hec\",\"url\":\"https://f.siem.example\",\"token\":\"t\"}");
		EXPECT(&r, 201);
		snprintf(out, 64, "%s", it_js(r.json, "id"));
		res_free(&r);
	} else if (f == F_MOVE) {
		/* A move awaiting approval, the tenant's only one that has not ended. */
		free(q(it_fmt("UPDATE moves SET state = 'aborted' WHERE tenant_id = '%s'"
		              " AND state NOT IN ('done', 'aborted', 'failed') RETURNING 1", w->a)));
		char *id = q(it_fmt("INSERT INTO moves (tenant_id, kind, from_region, from_cell, to_region, to_cell,"
		                    " state, erase_after_seconds) SELECT id, 'region', region, cell, 'us', 'us-east-1',"
		                    " 'awaiting_approval', 0 FROM tenants WHERE id = '%s' RETURNING id", w->a));
		snprintf(out, 64, "%s", id);
		free(id);
	}
}

/* Each principal gets exactly the answer of the table on every
 * authenticated route; refusals change nothing and leave no audit record,
 * and the owner of another tenant never sees tenant A's id. */
START_TEST(authz_matrix)
{
	struct world w;
	int n = 0;

	check_rows_cover_routes();
	world_init(&w);
	for (size_t i = 0; i < NROWS; i++) {
		const struct authz_row *row = &authz_rows[i];
		for (int who = 0; who < NWHO; who++) {
			char fresh[64], num[16], path[512], body[1024];
			struct res r;

			snprintf(num, sizeof num, "%d", ++n);
			make_fresh(&w, row->fresh, n, fresh);
			const struct var vars[] = { { "A", w.a }, { "member", w.member_a }, { "fresh", fresh },
				                        { "n", num }, { NULL, NULL } };
			expand(row->path, vars, path, sizeof path);
			if (row->body)
				expand(row->body, vars, body, sizeof body);
			long audits = audit_rows();
			struct opts o = { .token = who == ANON ? NULL : w.tok[who] };
			api_ex(&r, row->method, path, &o, row->body ? body : NULL, row->body ? strlen(body) : 0);

			ck_assert_msg(r.status == row->expect[who], "%s %s as %s: %ld, want %d: %.300s",
			              row->method, path, who_name[who], r.status, row->expect[who], r.raw.body);
			static const struct { long status; const char *code; } codes[] = {
				{ 401, "unauthorized" }, { 403, "forbidden" }, { 404, "not_found" }, { 400, "bad_request" },
			};
			for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++)
				if (r.status == codes[c].status)
					ck_assert_str_eq(it_js(r.json, "code"), codes[c].code);
			long want = r.status < 300 && row->writes ? 1 : 0;
			ck_assert_msg(audit_rows() - audits == want, "%s %s as %s: %ld audit record(s), want %ld",
			              row->method, path, who_name[who], audit_rows() - audits, want);
			if (who == OWNER_B)
				ck_assert_msg(!strstr(r.raw.body, w.a), "%s %s shows tenant A's id to the owner of B",
				              row->method, path);
			if (row->relogin && r.status == 200) {
				/* the session ended: its token no longer works */
				struct res again;
				api(&again, "GET", "/v1/tenants", w.tok[who], NULL);
				EXPECT_PROBLEM(&again, 401, "unauthorized", NULL);
				res_free(&again);
				login(who_slug[who], who_email[who], w.tok[who]);
			}
			res_free(&r);
		}
	}
	/* Tenant A is gone: its users' sessions ended with it. */
	for (int who = MEMBER_A; who <= OWNER_A; who++) {
		struct res r;
		api(&r, "GET", "/v1/tenants", w.tok[who], NULL);
		EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
		res_free(&r);
	}
}
END_TEST

/* Only "Bearer <known token>" authenticates: other schemes, empty,
 * over-long or nearly-right tokens are 401; the scheme name is
 * case-insensitive. */
START_TEST(authz_bad_headers)
{
	static char longtok[700];
	memset(longtok, 'a', sizeof longtok - 1);
	static const struct { const char *auth; long status; } cases[] = {
		{ "Basic aXQ6aXQ=", 401 },
		{ "Bearer", 401 },
		{ "Bearer ", 401 },
		{ "Bearer " ADMIN_TOKEN "x", 401 },
		{ "Bearer " ADMIN_TOKEN " ", 401 },
		{ "Token " ADMIN_TOKEN, 401 },
		{ "bearer " ADMIN_TOKEN, 200 },
		{ "BEARER  " ADMIN_TOKEN, 200 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct res r;
		struct opts o = { .auth = cases[i].auth };
		api_ex(&r, "GET", "/v1/admins", &o, NULL, 0);
		ck_assert_msg(r.status == cases[i].status, "Authorization: %s -> %ld, want %ld", cases[i].auth,
		              r.status, cases[i].status);
		res_free(&r);
	}
	struct res r;
	api(&r, "GET", "/v1/admins", longtok, NULL);
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 2. Tenants                                                          */

/* An admin creates a tenant in an active region: 201 with Location and the
 * documented fields. A taken slug is 409 naming slug; a draining, unknown
 * region or an unknown plan is 422 naming the field; none creates a row. */
START_TEST(tenant_create)
{
	struct res r, g;
	char loc[256];

	api(&r, "POST", "/v1/tenants", ADMIN_TOKEN,
	    "{\"name\":\"Acme Corp\",\"slug\":\"acme\",\"region\":\"eu\",\"plan\":\"pro\"}");
	EXPECT(&r, 201);
	const char *id = it_js(r.json, "id");
	ck_assert_msg(is_uuid(id), "id '%s'", id);
	ck_assert_int_eq(it_header(&r.raw, "Location", loc, sizeof loc), 0);
	ck_assert_str_eq(loc, it_fmt("/v1/tenants/%s", id));
	ck_assert_str_eq(it_js(r.json, "slug"), "acme");
	ck_assert_str_eq(it_js(r.json, "name"), "Acme Corp");
	ck_assert_str_eq(it_js(r.json, "region"), "eu");
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://eu.api.celltrail.example");
	ck_assert_ptr_null(json_object_get(r.json, "region_endpoint")); /* one name: endpoint */
	ck_assert_str_eq(it_js(r.json, "plan"), "pro");
	ck_assert_str_eq(it_js(r.json, "status"), "active");
	ck_assert_msg(is_api_time(it_js(r.json, "created_at")), "%s", it_js(r.json, "created_at"));
	ck_assert_msg(is_api_time(it_js(r.json, "updated_at")), "%s", it_js(r.json, "updated_at"));
	api(&g, "GET", loc, ADMIN_TOKEN, NULL);
	EXPECT(&g, 200);
	ck_assert_msg(json_equal(g.json, r.json), "GET %s differs from the creation's answer", loc);
	res_free(&g);
	res_free(&r);

	api(&r, "POST", "/v1/tenants", ADMIN_TOKEN,
	    "{\"name\":\"Other\",\"slug\":\"acme\",\"region\":\"us\",\"plan\":\"free\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", "slug");
	res_free(&r);

	api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, "{\"status\":\"draining\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "draining");
	res_free(&r);
	static const struct { const char *region, *plan, *field; } refused[] = {
		{ "jp", "free", "region" },     /* draining */
		{ "mars", "free", "region" },   /* unknown */
		{ "eu", "platinum", "plan" },   /* unknown plan */
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		api(&r, "POST", "/v1/tenants", ADMIN_TOKEN,
		    it_fmt("{\"name\":\"N\",\"slug\":\"refused-%zu\",\"region\":\"%s\",\"plan\":\"%s\"}", i,
		        refused[i].region, refused[i].plan));
		EXPECT_PROBLEM(&r, 422, "unprocessable", refused[i].field);
		res_free(&r);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants"), 1);
	/* An active region takes tenants again. */
	api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, "{\"status\":\"active\"}");
	EXPECT(&r, 200);
	res_free(&r);
	char jp[37];
	new_tenant("refused-0", "jp", "free", jp);
}
END_TEST

/* Walks a listing page by page; returns the number of items and appends
 * their ids to `ids` (space-separated). Every page but the last is full,
 * says has_more: true and has a next_cursor; the last says has_more:
 * false and has no next_cursor member at all. */
static int walk(const char *path, const char *token, int limit, char *ids, size_t idslen)
{
	char cursor[256] = "";
	int total = 0;
	for (int pages = 0; pages < 100; pages++) {
		struct res r;
		const char *sep = strchr(path, '?') ? "&" : "?";
		api(&r, "GET", cursor[0] ? it_fmt("%s%slimit=%d&cursor=%s", path, sep, limit, cursor)
		                         : it_fmt("%s%slimit=%d", path, sep, limit),
		    token, NULL);
		EXPECT(&r, 200);
		json_t *items = json_object_get(r.json, "items"), *next = json_object_get(r.json, "next_cursor");
		json_t *more = json_object_get(r.json, "has_more");
		ck_assert_msg(json_is_array(items) && json_is_boolean(more) &&
		                  (json_is_true(more) ? json_is_string(next) : !next),
		              "not a page: %.300s", r.raw.body);
		if (!next)
			next = json_null();
		ck_assert_int_le(json_array_size(items), limit);
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			ck_assert_msg(!json_object_get(it, "_ts") && !json_object_get(it, "_id"), "sort keys leak");
			const char *id = json_is_integer(json_object_get(it, "id"))
			                     ? it_fmt("%lld", (long long)json_integer_value(json_object_get(it, "id")))
			                     : it_js(it, "id");
			size_t have = strlen(ids);
			snprintf(ids + have, idslen - have, "%s ", id);
			total++;
		}
		if (json_is_null(next)) {
			res_free(&r);
			return total;
		}
		ck_assert_int_eq(json_array_size(items), limit);
		snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
		res_free(&r);
	}
	ck_abort_msg("%s: more than 100 pages", path);
	return -1;
}

/* Paging with limit=1 visits every tenant exactly once, in creation order,
 * and ends with next_cursor null; the region filter holds on every page;
 * bad limits and cursors are 400 naming the parameter. */
START_TEST(tenant_list)
{
	static const char *const regions[] = { "eu", "us", "eu", "in", "eu", "us" };
	char ids[6][37], want[512] = "", want_eu[512] = "", got[2048] = "";

	for (int i = 0; i < 6; i++) {
		new_tenant(it_fmt("list-%d", i), regions[i], "free", ids[i]);
		strcat(want, ids[i]);
		strcat(want, " ");
		if (!strcmp(regions[i], "eu")) {
			strcat(want_eu, ids[i]);
			strcat(want_eu, " ");
		}
	}
	ck_assert_int_eq(walk("/v1/tenants", ADMIN_TOKEN, 1, got, sizeof got), 6);
	ck_assert_str_eq(got, want);
	got[0] = '\0';
	ck_assert_int_eq(walk("/v1/tenants", ADMIN_TOKEN, 4, got, sizeof got), 6);
	ck_assert_str_eq(got, want);
	got[0] = '\0';
	ck_assert_int_eq(walk("/v1/tenants?region=eu", ADMIN_TOKEN, 1, got, sizeof got), 3);
	ck_assert_str_eq(got, want_eu);
	got[0] = '\0';
	ck_assert_int_eq(walk("/v1/tenants?region=jp", ADMIN_TOKEN, 1, got, sizeof got), 0);

	struct res r;
	api(&r, "GET", "/v1/tenants?region=us", ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	size_t i;
	json_t *it;
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 2);
	json_array_foreach(json_object_get(r.json, "items"), i, it)
		ck_assert_str_eq(it_js(it, "region"), "us");
	ck_assert(!json_object_get(r.json, "next_cursor") && json_is_false(json_object_get(r.json, "has_more")));
	res_free(&r);

	static const char *const bad_limits[] = { "0", "101", "-1", "abc", "1x", "", "+5", "99999999999999999999" };
	for (size_t k = 0; k < sizeof bad_limits / sizeof bad_limits[0]; k++) {
		api(&r, "GET", it_fmt("/v1/tenants?limit=%s", bad_limits[k]), ADMIN_TOKEN, NULL);
		EXPECT_PROBLEM(&r, 400, "validation_failed", "limit");
		res_free(&r);
	}
	api(&r, "GET", "/v1/tenants?limit=100", ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	static const char *const bad_cursors[] = { "garbage", "%25%25%25", "YWJj", "", "Yz", "===" };
	for (size_t k = 0; k < sizeof bad_cursors / sizeof bad_cursors[0]; k++) {
		api(&r, "GET", it_fmt("/v1/tenants?cursor=%s", bad_cursors[k]), ADMIN_TOKEN, NULL);
		EXPECT_PROBLEM(&r, 400, "validation_failed", "cursor");
		res_free(&r);
	}
	api(&r, "GET", "/v1/tenants?region=EU", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "region");
	res_free(&r);
}
END_TEST

/* A cursor this API returned for another listing (the audit log's) is not
 * a cursor of the tenant list: 400 validation_failed naming cursor. */
START_TEST(tenant_list_foreign_cursor)
{
	char a[37], b[37];
	new_tenant("foreign-a", "eu", "free", a);
	new_tenant("foreign-b", "eu", "free", b);
	struct res r;
	api(&r, "GET", "/v1/audit-log?limit=1", ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	const char *cursor = json_string_value(json_object_get(r.json, "next_cursor"));
	ck_assert_ptr_nonnull(cursor);
	const char *path = it_fmt("/v1/tenants?cursor=%s", cursor);
	res_free(&r);
	api(&r, "GET", path, ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "cursor");
	res_free(&r);
}
END_TEST

/* A tenant's home region never changes (409 with a sentence that says
 * why); unknown fields are 400 naming them; the owner renames, only the
 * admin changes plan and status; nothing changes on a refusal. */
START_TEST(tenant_patch)
{
	char a[37], owner[128];
	struct res r;

	new_tenant("patchy", "eu", "free", a);
	new_user(a, "owner@patchy.test", "owner", NULL);
	login("patchy", "owner@patchy.test", owner);
	const char *path = it_fmt("/v1/tenants/%s", a);

	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"region\":\"us\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	const char *detail = it_js(r.json, "detail");
	ck_assert_msg(strlen(detail) > 40 && strstr(detail, "region") && detail[strlen(detail) - 1] == '.',
	              "not a sentence that explains: %s", detail);
	res_free(&r);
	api(&r, "PATCH", path, owner, "{\"region\":\"jp\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);

	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"name\":\"X\",\"colour\":\"red\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "colour");
	ck_assert_msg(strstr(it_js(r.json, "detail"), "colour"), "%s", it_js(r.json, "detail"));
	res_free(&r);
	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"slug\":\"other\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "slug");
	res_free(&r);
	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"name\":\"\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "name");
	res_free(&r);
	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"status\":\"deleted\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "status");
	res_free(&r);
	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"plan\":\"platinum\"}");
	EXPECT_PROBLEM(&r, 422, "unprocessable", "plan");
	res_free(&r);
	api(&r, "PATCH", path, owner, "{\"plan\":\"enterprise\"}");
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	api(&r, "PATCH", path, owner, "{\"status\":\"suspended\"}");
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	char *row = q(it_fmt("SELECT name || '/' || region || '/' || plan || '/' || status FROM tenants WHERE id = '%s'", a));
	ck_assert_str_eq(row, "Tenant patchy/eu/free/active");
	free(row);

	api(&r, "PATCH", path, owner, "{\"name\":\"Renamed\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "name"), "Renamed");
	ck_assert_str_eq(it_js(r.json, "region"), "eu");
	ck_assert_str_ne(it_js(r.json, "updated_at"), it_js(r.json, "created_at"));
	res_free(&r);
	api(&r, "PATCH", path, ADMIN_TOKEN, "{\"plan\":\"enterprise\",\"status\":\"suspended\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "plan"), "enterprise");
	ck_assert_str_eq(it_js(r.json, "status"), "suspended");
	ck_assert_str_eq(it_js(r.json, "name"), "Renamed");
	res_free(&r);
}
END_TEST

/* Deleting a tenant offboards it: status deleted, every key revoked, every
 * session of its users ended and no new one possible, the slug no longer
 * resolves; other tenants are untouched. */
START_TEST(tenant_delete)
{
	char a[37], b[37], owner[128], member[128], other[128], k1[25], k2[25], kb[25];
	struct res r;

	new_tenant("doomed", "eu", "free", a);
	new_tenant("spared", "eu", "free", b);
	new_user(a, "owner@doomed.test", "owner", NULL);
	new_user(a, "member@doomed.test", "member", NULL);
	new_user(b, "owner@spared.test", "owner", NULL);
	login("doomed", "owner@doomed.test", owner);
	login("doomed", "member@doomed.test", member);
	login("spared", "owner@spared.test", other);
	new_key(owner, a, k1, NULL);
	new_key(ADMIN_TOKEN, a, k2, NULL);
	new_key(other, b, kb, NULL);

	api(&r, "DELETE", it_fmt("/v1/tenants/%s", a), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "deleted");
	ck_assert_str_eq(it_js(r.json, "id"), a);
	res_free(&r);

	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM api_keys WHERE tenant_id = '%s' AND revoked_at IS NULL", a)), 0);
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM api_keys WHERE tenant_id = '%s' AND revoked_at IS NOT NULL", a)), 2);
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM api_keys WHERE tenant_id = '%s' AND revoked_at IS NULL", b)), 1);
	const char *const tokens[] = { owner, member };
	for (int i = 0; i < 2; i++) {
		api(&r, "GET", it_fmt("/v1/tenants/%s", a), tokens[i], NULL);
		EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
		res_free(&r);
	}
	ck_assert_int_eq(login_pw("doomed", "owner@doomed.test", PASSWORD, NULL), 401);
	api(&r, "GET", it_fmt("/v1/tenants/%s", b), other, NULL);
	EXPECT(&r, 200);
	res_free(&r);

	api(&r, "GET", "/v1/lookup?tenant=doomed", NULL, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "DELETE", it_fmt("/v1/tenants/%s", a), ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	static const char *const gone[] = { "/v1/tenants/%s/api-keys", "/v1/tenants/%s/users" };
	for (int i = 0; i < 2; i++) {
		api(&r, "GET", it_fmt(gone[i], a), ADMIN_TOKEN, NULL);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", a), ADMIN_TOKEN,
	    "{\"name\":\"late\",\"scopes\":[\"events:read\"]}");
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "PATCH", it_fmt("/v1/tenants/%s", a), ADMIN_TOKEN, "{\"name\":\"Back\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	/* The record stays, for the admin, as deleted. */
	api(&r, "GET", "/v1/tenants?status=deleted", ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 1);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "items"), 0), "id"), a);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. Bad input                                                        */

struct bad_case {
	const char *path;   /* {A}: a tenant id */
	const char *body;
	long status;
	const char *code;
	const char *field;  /* NULL: the problem names no field */
};

#define TENANT "/v1/tenants"
#define USERS "/v1/tenants/{A}/users"
#define KEYS "/v1/tenants/{A}/api-keys"
#define PW "\"password\":\"" PASSWORD "\""
#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10
#define S201 X50 X50 X50 X50 "x"
#define S64 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd"

static const struct bad_case bad_cases[] = {
	/* tenants: unknown fields, types, missing fields, lengths, formats */
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\",\"owner\":\"me\"}", 400, "validation_failed", "owner" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\",\"id\":\"00000000-0000-0000-0000-000000000000\"}", 400, "validation_failed", "id" },
	{ TENANT, "{\"name\":5,\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":null,\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":\"N\",\"slug\":true,\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":[\"eu\"],\"plan\":\"free\"}", 400, "validation_failed", "region" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":{}}", 400, "validation_failed", "plan" },
	{ TENANT, "{\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":\"N\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"plan\":\"free\"}", 400, "validation_failed", "region" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"eu\"}", 400, "validation_failed", "plan" },
	{ TENANT, "{}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":\"" S201 "\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":\"\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "name" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"" S64 "\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"Upper\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"-lead\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"trail-\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ab\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"a_b\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"sp ace\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"caf\\u00e9\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"x'--\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "validation_failed", "slug" },
	{ TENANT, "{\"name\":\"N\\u0000x\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "invalid_json", NULL },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"EU\",\"plan\":\"free\"}", 400, "validation_failed", "region" },
	{ TENANT, "{\"name\":\"N\",\"slug\":\"ok-1\",\"region\":\"eu'; --\",\"plan\":\"free\"}", 400, "validation_failed", "region" },
	/* not JSON, or not an object */
	{ TENANT, "{", 400, "invalid_json", NULL },
	{ TENANT, "", 400, "invalid_json", NULL },
	{ TENANT, "[]", 400, "invalid_json", NULL },
	{ TENANT, "\"tenant\"", 400, "invalid_json", NULL },
	{ TENANT, "null", 400, "invalid_json", NULL },
	{ TENANT, "{\"name\":\"a\",\"name\":\"b\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "invalid_json", NULL },
	{ TENANT, "{\"name\":\"\xff\xfe\",\"slug\":\"ok-1\",\"region\":\"eu\",\"plan\":\"free\"}", 400, "invalid_json", NULL },
	{ TENANT, "{\"name\":\"N\",} ", 400, "invalid_json", NULL },
	{ TENANT, "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 400, "invalid_json", NULL },
	/* users */
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"member\"," PW ",\"admin\":true}", 400, "validation_failed", "admin" },
	{ USERS, "{\"email\":5,\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":1," PW "}", 400, "validation_failed", "role" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"member\",\"password\":[\"x\"]}", 400, "validation_failed", "password" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"member\"}", 400, "validation_failed", "password" },
	{ USERS, "{\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u@a.test\"," PW "}", 400, "validation_failed", "role" },
	{ USERS, "{\"email\":\"not-an-email\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u@localhost\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u@@a.test\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"@a.test\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u v@a.test\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u@a..test\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"" S201 "@" S64 ".test\",\"role\":\"member\"," PW "}", 400, "validation_failed", "email" },
	{ USERS, "{\"email\":\"u\\u0000@a.test\",\"role\":\"member\"," PW "}", 400, "invalid_json", NULL },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"admin\"," PW "}", 400, "validation_failed", "role" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"Owner\"," PW "}", 400, "validation_failed", "role" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"member\",\"password\":\"short\"}", 400, "validation_failed", "password" },
	{ USERS, "{\"email\":\"u@a.test\",\"role\":\"member\",\"password\":\"" S201 S64 "\"}", 400, "validation_failed", "password" },
	{ USERS, "[{\"email\":\"u@a.test\"}]", 400, "invalid_json", NULL },
	/* API keys */
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"secret\":\"mine\"}", 400, "validation_failed", "secret" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":\"events:write\"}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:delete\"]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\",\"admin\"]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[1]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[null]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\",\"events:write\"]}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"name\":\"k\"}", 400, "validation_failed", "scopes" },
	{ KEYS, "{\"scopes\":[\"events:write\"]}", 400, "validation_failed", "name" },
	{ KEYS, "{\"name\":\"\",\"scopes\":[\"events:write\"]}", 400, "validation_failed", "name" },
	{ KEYS, "{\"name\":7,\"scopes\":[\"events:write\"]}", 400, "validation_failed", "name" },
	{ KEYS, "{\"name\":\"" S201 "\",\"scopes\":[\"events:write\"]}", 400, "validation_failed", "name" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"tomorrow\"}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":1893456000}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"2001-01-01T00:00:00Z\"}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"2030-13-01T00:00:00Z\"}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"2030-02-30T00:00:00Z\"}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"0000-01-01T00:00:00Z\"}", 400, "validation_failed", "expires_at" },
	{ KEYS, "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"2030-01-01 00:00:00\"}", 400, "validation_failed", "expires_at" },
};

/* Every malformed body is refused with 400 naming the culprit (never a
 * 500), and none of them creates anything or writes the audit log. */
START_TEST(bad_input)
{
	char a[37];
	new_tenant("victim", "eu", "free", a);
	new_user(a, "owner@victim.test", "owner", NULL);
	long tenants = qlong("SELECT count(*) FROM tenants"), users = qlong("SELECT count(*) FROM users");
	long audits = audit_rows();

	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		char path[256];
		struct res r;
		const struct var vars[] = { { "A", a }, { NULL, NULL } };
		expand(c->path, vars, path, sizeof path);
		api(&r, "POST", path, ADMIN_TOKEN, c->body);
		ck_assert_msg(r.status == c->status && !strcmp(it_js(r.json, "code"), c->code) &&
		              (c->field ? !strcmp(it_js(r.json, "field"), c->field) : !json_object_get(r.json, "field")),
		              "case %zu, POST %s %.120s: got %ld %s field '%s', want %ld %s field '%s': %.300s", i,
		              c->path, c->body, r.status, it_js(r.json, "code"), it_js(r.json, "field"), c->status,
		              c->code, c->field ? c->field : "", r.raw.body);
		res_free(&r);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants"), tenants);
	ck_assert_int_eq(qlong("SELECT count(*) FROM users"), users);
	ck_assert_int_eq(qlong("SELECT count(*) FROM api_keys"), 0);
	ck_assert_int_eq(audit_rows(), audits);
}
END_TEST

/* A body that is not declared as JSON is 415, on every route that takes one. */
START_TEST(bad_content_type)
{
	char a[37];
	new_tenant("typed", "eu", "free", a);
	const char *const paths[] = { "/v1/tenants", it_fmt("/v1/tenants/%s/users", a),
		                          it_fmt("/v1/tenants/%s/api-keys", a), "/v1/auth/login" };
	const char *const types[] = { "text/plain", "application/x-www-form-urlencoded", "application/jsonx" };
	for (size_t i = 0; i < 4; i++)
		for (size_t t = 0; t < 3; t++) {
			struct res r;
			struct opts o = { .token = ADMIN_TOKEN, .ctype = types[t] };
			api_ex(&r, "POST", paths[i], &o, "{}", 2);
			EXPECT_PROBLEM(&r, 415, "unsupported_media_type", NULL);
			res_free(&r);
		}
}
END_TEST

/* SQL metacharacters are data: a name, an email and a key name full of
 * quotes and comments are stored and read back byte for byte, and the
 * tables are all still there. */
START_TEST(sql_metacharacters_are_data)
{
	static const char evil[] = "x'); DROP TABLE tenants; --";
	struct res r;
	char a[37];

	api(&r, "POST", "/v1/tenants", ADMIN_TOKEN,
	    it_fmt("{\"name\":\"%s\",\"slug\":\"evil\",\"region\":\"eu\",\"plan\":\"free\"}", evil));
	EXPECT(&r, 201);
	ck_assert_str_eq(it_js(r.json, "name"), evil);
	snprintf(a, sizeof a, "%s", it_js(r.json, "id"));
	res_free(&r);
	api(&r, "GET", it_fmt("/v1/tenants/%s", a), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "name"), evil);
	res_free(&r);
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	    "{\"email\":\"o'brien+x@a.test\",\"role\":\"owner\"," PW "}");
	EXPECT(&r, 201);
	ck_assert_str_eq(it_js(r.json, "email"), "o'brien+x@a.test");
	res_free(&r);
	api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", a), ADMIN_TOKEN,
	    "{\"name\":\"'; DELETE FROM api_keys; -- \\\"\\\\\",\"scopes\":[\"events:read\"]}");
	EXPECT(&r, 201);
	ck_assert_str_eq(it_js(r.json, "name"), "'; DELETE FROM api_keys; -- \"\\");
	res_free(&r);
	api(&r, "GET", "/v1/lookup?tenant=evil'%20OR%20'1'='1", NULL, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/tenants?region=eu'%20OR%201=1", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "region");
	res_free(&r);
	char *name = q(it_fmt("SELECT name FROM tenants WHERE id = '%s'", a));
	ck_assert_str_eq(name, evil);
	free(name);
	ck_assert_int_eq(qlong("SELECT count(*) FROM api_keys"), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
	                       "('tenants', 'users', 'api_keys', 'audit_log')"), 4);
}
END_TEST

/* An email with a non-ASCII capital is either lowercased and stored, or
 * refused as invalid naming the field: never a bare database refusal. */
START_TEST(email_non_ascii)
{
	char a[37];
	struct res r;
	new_tenant("unicode", "eu", "free", a);
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	    "{\"email\":\"\u00c9mile@Unicode.test\",\"role\":\"owner\"," PW "}");
	if (r.status == 201)
		ck_assert_str_eq(it_js(r.json, "email"), "\xc3\xa9mile@unicode.test");
	else
		EXPECT_PROBLEM(&r, 400, "validation_failed", "email");
	res_free(&r);
}
END_TEST

/* Bodies are capped per route: one byte over the limit is 413 (declared or
 * chunked), exactly the limit is read. */
START_TEST(body_too_large)
{
	char a[37];
	struct res r;
	new_tenant("big", "eu", "free", a);

	static const char base[] = "{\"name\":\"Big\",\"slug\":\"big-2\",\"region\":\"eu\",\"plan\":\"free\"}";
	char *body = malloc(BODY_LIMIT + 2);
	ck_assert_ptr_nonnull(body);
	/* JSON whitespace pads a valid body to exactly the limit. */
	memset(body, ' ', BODY_LIMIT + 1);
	memcpy(body, base, strlen(base));
	body[BODY_LIMIT + 1] = '\0';
	struct opts admin = { .token = ADMIN_TOKEN };
	api_ex(&r, "POST", "/v1/tenants", &admin, body, BODY_LIMIT);
	EXPECT(&r, 201);
	res_free(&r);

	const char *const paths[] = { "/v1/tenants", it_fmt("/v1/tenants/%s/users", a),
		                          it_fmt("/v1/tenants/%s/api-keys", a), "/v1/admins", "/v1/regions" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		api_ex(&r, "POST", paths[i], &admin, body, BODY_LIMIT + 1);
		EXPECT_PROBLEM(&r, 413, "body_too_large", NULL);
		res_free(&r);
	}
	api_ex(&r, "POST", "/v1/auth/login", NULL, body, LOGIN_LIMIT + 1);
	EXPECT_PROBLEM(&r, 413, "body_too_large", NULL);
	res_free(&r);

	/* Chunked: no length is declared, the limit still holds. */
	const char *const h[] = { "Authorization: Bearer " ADMIN_TOKEN, "Content-Type: application/json", NULL };
	struct it_resp raw;
	it_http_chunked(&raw, it_fmt("%s/v1/tenants", cpfx.url), h, body, BODY_LIMIT + 1, 4096);
	ck_assert_int_eq(raw.status, 413);
	ck_assert_ptr_nonnull(strstr(raw.body, "\"code\":\"body_too_large\""));
	it_resp_free(&raw);
	free(body);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants"), 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. Users and logins                                                 */

/* Emails are trimmed and lowercased and unique per tenant only; a login
 * returns a session token with its expiry, the tenant, its home region and
 * the region's endpoint, and that token works. */
START_TEST(users_and_login)
{
	char a[37], b[37], tok[128];
	struct res r;

	new_tenant("acme", "eu", "free", a);
	new_tenant("globex", "us", "free", b);
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	    "{\"email\":\"  Mixed@Case.Test \",\"role\":\"owner\"," PW "}");
	EXPECT(&r, 201);
	ck_assert_str_eq(it_js(r.json, "email"), "mixed@case.test");
	ck_assert_str_eq(it_js(r.json, "role"), "owner");
	ck_assert_str_eq(it_js(r.json, "tenant_id"), a);
	ck_assert_msg(is_uuid(it_js(r.json, "id")), "%s", r.raw.body);
	ck_assert_msg(!strstr(r.raw.body, "password") && !strstr(r.raw.body, "scrypt"), "%s", r.raw.body);
	char loc[256], uid[37];
	snprintf(uid, sizeof uid, "%s", it_js(r.json, "id"));
	ck_assert_int_eq(it_header(&r.raw, "Location", loc, sizeof loc), 0);
	ck_assert_str_eq(loc, it_fmt("/v1/tenants/%s/users/%s", a, uid));
	res_free(&r);

	api(&r, "POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	    "{\"email\":\"MIXED@case.test\",\"role\":\"member\"," PW "}");
	EXPECT_PROBLEM(&r, 409, "conflict", "email");
	res_free(&r);
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", b), ADMIN_TOKEN,
	    "{\"email\":\"mixed@case.test\",\"role\":\"owner\"," PW "}");
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(qlong("SELECT count(*) FROM users WHERE email = 'mixed@case.test'"), 2);

	api(&r, "POST", "/v1/auth/login", NULL,
	    "{\"email\":\" Mixed@CASE.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"acme\"}");
	EXPECT(&r, 200);
	const char *token = it_js(r.json, "token");
	ck_assert_msg(!strncmp(token, "cts_", 4) && strlen(token) > 40, "token '%s'", token);
	snprintf(tok, sizeof tok, "%s", token);
	ck_assert_msg(is_api_time(it_js(r.json, "expires_at")), "%s", it_js(r.json, "expires_at"));
	ck_assert_str_eq(it_js(json_object_get(r.json, "tenant"), "id"), a);
	ck_assert_str_eq(it_js(json_object_get(r.json, "tenant"), "slug"), "acme");
	ck_assert_str_eq(it_js(json_object_get(r.json, "user"), "id"), uid);
	ck_assert_str_eq(it_js(r.json, "region"), "eu");
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://eu.api.celltrail.example");
	/* expires_at is about 12 h (CP_SESSION_TTL) ahead of the database's clock. */
	char *ok = q(it_fmt("SELECT abs(extract(epoch FROM '%s'::timestamptz - now() - interval '12 hours')) < 60",
	                 it_js(r.json, "expires_at")));
	ck_assert_str_eq(ok, "t");
	free(ok);
	res_free(&r);

	api(&r, "POST", "/v1/auth/login", NULL,
	    "{\"email\":\"mixed@case.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"globex\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(json_object_get(r.json, "tenant"), "id"), b);
	ck_assert_str_eq(it_js(r.json, "region"), "us");
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://us.api.celltrail.example");
	res_free(&r);

	api(&r, "GET", "/v1/tenants", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 1);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "items"), 0), "id"), a);
	res_free(&r);

	/* Wrong password, unknown email, unknown tenant: one answer for all. */
	static const char *const wrong[] = {
		"{\"email\":\"mixed@case.test\",\"password\":\"wrong password!\",\"tenant\":\"acme\"}",
		"{\"email\":\"nobody@case.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"acme\"}",
		"{\"email\":\"mixed@case.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"initech\"}",
		"{\"email\":\"mixed@case.test\",\"password\":\"" PASSWORD "\"}",
		"{\"email\":\"mixed@case.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"NOT A SLUG\"}",
	};
	char detail[400] = "";
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		api(&r, "POST", "/v1/auth/login", NULL, wrong[i]);
		EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
		ck_assert_ptr_null(json_object_get(r.json, "token"));
		if (i == 0)
			snprintf(detail, sizeof detail, "%s", it_js(r.json, "detail"));
		else
			ck_assert_str_eq(it_js(r.json, "detail"), detail);
		res_free(&r);
	}
	api(&r, "POST", "/v1/auth/login", NULL, "{\"email\":\"mixed@case.test\",\"tenant\":\"acme\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "password");
	res_free(&r);

	/* The list pages, and never shows a password or its hash. */
	char b_user[37];
	new_user(b, "second@case.test", "member", b_user);
	new_user(a, "second@case.test", "member", NULL);
	char listed[1024] = "";
	ck_assert_int_eq(walk(it_fmt("/v1/tenants/%s/users", a), tok, 1, listed, sizeof listed), 2);
	ck_assert_ptr_nonnull(strstr(listed, uid));
	api(&r, "GET", it_fmt("/v1/tenants/%s/users", a), tok, NULL);
	EXPECT(&r, 200);
	ck_assert_msg(!strstr(r.raw.body, "password") && !strstr(r.raw.body, "scrypt"), "%s", r.raw.body);
	res_free(&r);
	/* B's user is out of reach through A's path, even for the admin. */
	const char *const reach[][3] = { { "PATCH", "{\"role\":\"owner\"}", tok },
		                             { "DELETE", NULL, tok },
		                             { "PATCH", "{\"role\":\"owner\"}", ADMIN_TOKEN },
		                             { "DELETE", NULL, ADMIN_TOKEN } };
	for (int i = 0; i < 4; i++) {
		api(&r, reach[i][0], it_fmt("/v1/tenants/%s/users/%s", a, b_user), reach[i][2], reach[i][1]);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	char *role = q(it_fmt("SELECT role FROM users WHERE id = '%s'", b_user));
	ck_assert_str_eq(role, "member");
	free(role);

	/* Logout ends exactly this session. */
	char tok2[128];
	login("acme", "mixed@case.test", tok2);
	api(&r, "POST", "/v1/auth/logout", tok, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	api(&r, "GET", "/v1/tenants", tok, NULL);
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);
	api(&r, "POST", "/v1/auth/logout", tok, NULL);
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/tenants", tok2, NULL);
	EXPECT(&r, 200);
	res_free(&r);
}
END_TEST

/* A refused login is a 401 like any other: application/problem+json with
 * a WWW-Authenticate challenge (RFC 9110, 15.5.2: a 401 MUST carry one). */
START_TEST(login_401_challenges)
{
	char a[37];
	struct res r;
	new_tenant("challenge", "eu", "free", a);
	new_user(a, "owner@challenge.test", "owner", NULL);
	static const char *const refused[] = {
		"{\"email\":\"owner@challenge.test\",\"password\":\"wrong password!\",\"tenant\":\"challenge\"}",
		"{\"email\":\"nobody@challenge.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"challenge\"}",
		"{\"email\":\"owner@challenge.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"Not A Slug\"}",
		"{\"email\":\"not an email\",\"password\":\"" PASSWORD "\",\"tenant\":\"challenge\"}",
	};
	for (int i = 0; i < 4; i++) {
		api(&r, "POST", "/v1/auth/login", NULL, refused[i]);
		EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
		char v[64];
		ck_assert_msg(it_header(&r.raw, "WWW-Authenticate", v, sizeof v) == 0,
		              "a refused login (%s) answers 401 without WWW-Authenticate", refused[i]);
		ck_assert_str_eq(v, "Bearer");
		res_free(&r);
	}
}
END_TEST

/* After CP_LOGIN_MAX_FAILURES (5) wrong passwords from one address, the
 * account answers that address 429 with Retry-After, even to the right
 * password, and other accounts do not notice; once the delay has passed
 * the right password works again and the address's failures are forgotten
 * (test_login.c has the other addresses). */
START_TEST(login_lockout)
{
	char a[37];
	struct res r;
	new_tenant("locked", "eu", "free", a);
	new_user(a, "victim@locked.test", "owner", NULL);
	new_user(a, "bystander@locked.test", "member", NULL);

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(login_pw("locked", "victim@locked.test", "not the password", NULL), 401);
	api(&r, "POST", "/v1/auth/login", NULL,
	    "{\"email\":\"victim@locked.test\",\"password\":\"" PASSWORD "\",\"tenant\":\"locked\"}");
	EXPECT_PROBLEM(&r, 429, "rate_limited", NULL);
	char ra[32];
	ck_assert_int_eq(it_header(&r.raw, "Retry-After", ra, sizeof ra), 0);
	long secs = atol(ra);
	ck_assert_msg(secs >= 1 && secs <= 900 && strspn(ra, "0123456789") == strlen(ra), "Retry-After: %s", ra);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "retry_after_seconds")), secs);
	ck_assert_ptr_null(json_object_get(r.json, "token"));
	res_free(&r);
	ck_assert_int_eq(login_pw("locked", "victim@locked.test", "not the password", NULL), 429);
	ck_assert_int_eq(login_pw("locked", "bystander@locked.test", PASSWORD, NULL), 200);

	usleep((useconds_t)(secs * 1000000 + 300000));
	ck_assert_int_eq(login_pw("locked", "victim@locked.test", PASSWORD, NULL), 200);
	ck_assert_int_eq(qlong("SELECT count(*) FROM login_failures WHERE email = 'victim@locked.test'"), 0);
}
END_TEST

/* The lockout holds however long a slow attack has gone on: an address
 * with a long history of failures on an account (set directly, standing
 * for weeks of one guess per delay) still gets a 401 for a wrong password
 * and is delayed again, so the right password then gets 429. */
START_TEST(login_lockout_long_attack)
{
	char a[37];
	new_tenant("patient", "eu", "free", a);
	new_user(a, "target@patient.test", "owner", NULL);
	free(q("INSERT INTO login_failures (tenant_slug, email, source, failures, last_failed_at)"
	       " VALUES ('patient', 'target@patient.test', '127.0.0.1', 1100, now())"));
	ck_assert_int_eq(login_pw("patient", "target@patient.test", "guess number 1101", NULL), 401);
	ck_assert_int_eq(qlong("SELECT failures FROM login_failures WHERE email = 'target@patient.test'"), 1101);
	ck_assert_int_eq(login_pw("patient", "target@patient.test", PASSWORD, NULL), 429);
}
END_TEST

/* A tenant keeps at least one owner: the last owner can be neither
 * demoted nor deleted (409), by the admin or by itself; with a second
 * owner both work. */
START_TEST(last_owner)
{
	char a[37], o[37], m[37], otok[128];
	struct res r;
	new_tenant("owned", "eu", "free", a);
	new_user(a, "owner@owned.test", "owner", o);
	new_user(a, "member@owned.test", "member", m);
	login("owned", "owner@owned.test", otok);
	const char *opath = it_fmt("/v1/tenants/%s/users/%s", a, o), *mpath = it_fmt("/v1/tenants/%s/users/%s", a, m);

	const char *const who[] = { ADMIN_TOKEN, otok };
	for (int i = 0; i < 2; i++) {
		api(&r, "PATCH", opath, who[i], "{\"role\":\"member\"}");
		EXPECT_PROBLEM(&r, 409, "conflict", NULL);
		res_free(&r);
		api(&r, "DELETE", opath, who[i], NULL);
		EXPECT_PROBLEM(&r, 409, "conflict", NULL);
		res_free(&r);
	}
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM users WHERE tenant_id = '%s' AND role = 'owner'", a)), 1);

	api(&r, "PATCH", mpath, otok, "{\"role\":\"owner\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "role"), "owner");
	res_free(&r);
	api(&r, "PATCH", opath, otok, "{\"role\":\"member\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "role"), "member");
	res_free(&r);
	/* The demoted user's session now has a member's rights. */
	api(&r, "PATCH", mpath, otok, "{\"role\":\"member\"}");
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	api(&r, "DELETE", mpath, ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	api(&r, "DELETE", opath, ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_is_true(json_object_get(r.json, "deleted")), 1);
	res_free(&r);
	/* A deleted user's session ends with it. */
	api(&r, "GET", "/v1/tenants", otok, NULL);
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);
	api(&r, "DELETE", opath, ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
}
END_TEST

struct shot {
	const char *method;
	char url[512];
	char hdr[4][600];
	const char *body;
	long status;
	char id[64];
	char secret[200];
	int replayed;
};

static void *fire(void *arg)
{
	struct shot *s = arg;
	const char *h[5];
	int n = 0;
	for (int i = 0; i < 4; i++)
		if (s->hdr[i][0])
			h[n++] = s->hdr[i];
	h[n] = NULL;
	struct it_resp r;
	it_http(&r, s->method, s->url, h, s->body, s->body ? strlen(s->body) : 0);
	s->status = r.status;
	json_t *j = json_loadb(r.body, r.len, 0, NULL);
	snprintf(s->id, sizeof s->id, "%s", it_js(j, "id"));
	snprintf(s->secret, sizeof s->secret, "%s", it_js(j, "secret"));
	json_decref(j);
	char v[32];
	s->replayed = it_header(&r, "Idempotent-Replayed", v, sizeof v) == 0 && !strcmp(v, "true");
	it_resp_free(&r);
	return NULL;
}

/* Runs the n shots at once. */
static void volley(struct shot *s, int n)
{
	run_at_once(s, sizeof *s, n, fire);
}

static void shot_init(struct shot *s, const char *method, const char *path, const char *token,
                      const char *idem, const char *body)
{
	memset(s, 0, sizeof *s);
	s->method = method;
	s->body = body;
	snprintf(s->url, sizeof s->url, "%s%s", cpfx.url, path);
	snprintf(s->hdr[0], sizeof s->hdr[0], "Authorization: Bearer %s", token);
	if (body)
		snprintf(s->hdr[1], sizeof s->hdr[1], "Content-Type: application/json");
	if (idem)
		snprintf(s->hdr[2], sizeof s->hdr[2], "Idempotency-Key: %s", idem);
}

/* Runs up to `rounds` races: NRACE owners of a fresh tenant, all changed
 * by `method` (with `body`) at the same moment; after each, the tenant
 * must still have an owner. */
#define NRACE 4
static void race_last_owner(const char *method, const char *body, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		char a[37], o[NRACE][37];
		struct shot s[NRACE];
		int ok = 0;
		new_tenant(it_fmt("race-%d", round), "eu", "free", a);
		for (int i = 0; i < NRACE; i++) {
			new_user(a, it_fmt("owner%d@race.test", i), "owner", o[i]);
			shot_init(&s[i], method, it_fmt("/v1/tenants/%s/users/%s", a, o[i]), ADMIN_TOKEN, NULL, body);
		}
		volley(s, NRACE);
		for (int i = 0; i < NRACE; i++) {
			ck_assert_msg(s[i].status == 200 || s[i].status == 409, "round %d: %ld", round, s[i].status);
			ok += s[i].status == 200;
		}
		long owners = qlong(it_fmt("SELECT count(*) FROM users WHERE tenant_id = '%s' AND role = 'owner'", a));
		ck_assert_msg(owners >= 1,
		              "round %d: %d concurrent %s of the tenant's %d owners all succeeded: tenant %s "
		              "has no owner left", round, ok, method, NRACE, a);
	}
}

/* Two owners demoting each other at the same moment still leave the
 * tenant with an owner: the last-owner rule holds under concurrency. */
START_TEST(last_owner_concurrent_demotions)
{
	race_last_owner("PATCH", "{\"role\":\"member\"}", 20);
}
END_TEST

/* Two owners deleted at the same moment still leave the tenant with an
 * owner. */
START_TEST(last_owner_concurrent_deletions)
{
	race_last_owner("DELETE", NULL, 20);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. API keys                                                         */

/* A key's secret is <home region>_<24 hex id>_<64 hex>, shown once: lists
 * never carry it; revocation stamps revoked_at; keys of another tenant
 * cannot be reached through this tenant's path. */
START_TEST(api_keys)
{
	char a[37], b[37], owner[128], member[128];
	struct res r;
	static const char *const homes[] = { "in", "jp" };
	char ids[2][25], secrets[2][200];

	new_tenant("keys-in", homes[0], "free", a);
	new_tenant("keys-jp", homes[1], "free", b);
	new_user(a, "owner@keys.test", "owner", NULL);
	new_user(a, "member@keys.test", "member", NULL);
	login("keys-in", "owner@keys.test", owner);
	login("keys-in", "member@keys.test", member);
	const char *const tenants[] = { a, b };
	const char *const creators[] = { owner, ADMIN_TOKEN };
	for (int i = 0; i < 2; i++) {
		api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", tenants[i]), creators[i],
		    "{\"name\":\"ingest\",\"scopes\":[\"events:read\",\"events:write\"],"
		    "\"expires_at\":\"2099-01-02T03:04:05+02:00\"}");
		EXPECT(&r, 201);
		const char *id = it_js(r.json, "id"), *secret = it_js(r.json, "secret");
		ck_assert_msg(strlen(id) == 24 && is_hex(id, 24), "id '%s'", id);
		size_t rl = strlen(homes[i]);
		ck_assert_msg(strlen(secret) == rl + 1 + 24 + 1 + 64 && !strncmp(secret, homes[i], rl) &&
		              secret[rl] == '_' && !strncmp(secret + rl + 1, id, 24) && secret[rl + 25] == '_' &&
		              is_hex(secret + rl + 26, 64),
		              "secret '%s' is not %s_<id>_<64 hex>", secret, homes[i]);
		ck_assert_str_eq(it_js(r.json, "prefix"), it_fmt("%s_%s", homes[i], id));
		ck_assert_str_eq(it_js(r.json, "tenant_id"), tenants[i]);
		ck_assert_str_eq(it_js(r.json, "name"), "ingest");
		json_t *want_scopes = json_pack("[ss]", "events:read", "events:write");
		ck_assert_msg(json_equal(json_object_get(r.json, "scopes"), want_scopes), "%s", r.raw.body);
		json_decref(want_scopes);
		ck_assert_str_eq(it_js(r.json, "expires_at"), "2099-01-02T01:04:05.000000Z");
		ck_assert(json_is_null(json_object_get(r.json, "revoked_at")));
		char loc[256];
		ck_assert_int_eq(it_header(&r.raw, "Location", loc, sizeof loc), 0);
		ck_assert_str_eq(loc, it_fmt("/v1/tenants/%s/api-keys/%s", tenants[i], id));
		snprintf(ids[i], sizeof ids[i], "%s", id);
		snprintf(secrets[i], sizeof secrets[i], "%s", secret);
		res_free(&r);
	}
	char k2[25];
	new_key(owner, a, k2, NULL);
	/* The last second of year 9999 (a leap second, which rolls over) is
	 * refused, or comes back as an RFC 3339 time: never as year 10000. */
	api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", b), ADMIN_TOKEN,
	    "{\"name\":\"forever\",\"scopes\":[\"events:read\"],\"expires_at\":\"9999-12-31T23:59:60Z\"}");
	if (r.status == 201)
		ck_assert_msg(is_api_time(it_js(r.json, "expires_at")), "expires_at came back as '%s'",
		              it_js(r.json, "expires_at"));
	else
		EXPECT_PROBLEM(&r, 400, "validation_failed", "expires_at");
	res_free(&r);

	const char *const readers[] = { owner, member, ADMIN_TOKEN };
	for (int i = 0; i < 3; i++) {
		api(&r, "GET", it_fmt("/v1/tenants/%s/api-keys", a), readers[i], NULL);
		EXPECT(&r, 200);
		json_t *items = json_object_get(r.json, "items");
		ck_assert_int_eq(json_array_size(items), 2);
		size_t k;
		json_t *it;
		json_array_foreach(items, k, it) {
			ck_assert_ptr_null(json_object_get(it, "secret"));
			ck_assert_msg(!strncmp(it_js(it, "prefix"), "in_", 3), "%s", it_js(it, "prefix"));
		}
		ck_assert_str_eq(it_js(json_array_get(items, 0), "id"), ids[0]);
		ck_assert_msg(!strstr(r.raw.body, secrets[0] + 3 + 25), "the list shows a secret");
		res_free(&r);
	}

	char paged[256] = "";
	ck_assert_int_eq(walk(it_fmt("/v1/tenants/%s/api-keys", a), member, 1, paged, sizeof paged), 2);
	ck_assert_str_eq(paged, it_fmt("%s %s ", ids[0], k2));

	/* Revocation. */
	api(&r, "DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", a, ids[0]), owner, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "id"), ids[0]);
	ck_assert_msg(is_api_time(it_js(r.json, "revoked_at")), "%s", r.raw.body);
	ck_assert_ptr_null(json_object_get(r.json, "secret"));
	char revoked_at[40];
	snprintf(revoked_at, sizeof revoked_at, "%s", it_js(r.json, "revoked_at"));
	res_free(&r);
	api(&r, "GET", it_fmt("/v1/tenants/%s/api-keys", a), owner, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "items"), 0), "revoked_at"), revoked_at);
	ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(r.json, "items"), 1), "revoked_at")));
	res_free(&r);

	/* B's key through A's path, unknown and malformed ids: 404. */
	const char *const missing[] = { ids[1], "0123456789abcdef01234567", "nothex", "0123456789ABCDEF01234567" };
	for (int i = 0; i < 4; i++) {
		api(&r, "DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", a, missing[i]), owner, NULL);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM api_keys WHERE id = '%s' AND revoked_at IS NULL", ids[1])), 1);
	/* Only SHA-256 of the secret's random part is kept. */
	char *sha = q(it_fmt("SELECT encode(secret_sha256, 'hex') = encode(sha256('%s'::bytea), 'hex') FROM api_keys WHERE id = '%s'",
	                  secrets[1] + strlen(homes[1]) + 26, ids[1]));
	ck_assert_str_eq(sha, "t");
	free(sha);
}
END_TEST

/* Searches every text rendering of every row of every table. */
static void expect_not_in_database(const char *const needles[], int n)
{
	char *tables = q("SELECT string_agg(tablename, ' ') FROM pg_tables WHERE schemaname = 'public'");
	ck_assert_ptr_nonnull(tables);
	int seen = 0;
	for (char *save = NULL, *t = strtok_r(tables, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *dump = q(it_fmt("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"%s\" t", t));
		for (int i = 0; i < n; i++)
			ck_assert_msg(!strstr(dump, needles[i]), "table %s holds secret #%d in clear", t, i);
		free(dump);
		seen++;
	}
	ck_assert_int_ge(seen, 8);
	free(tables);
}

/* A key's secret, a password, a session token, a region credential and
 * the admin token are never stored in clear nor logged, not even through
 * an idempotent creation whose response is kept for replays. */
START_TEST(secrets_stay_secret)
{
	static const char pw[] = "Tr0ub4dor&3-unique-password";
	char a[37], tok[128], k1[25], s1[200];
	struct res r, again;
	new_tenant("vault", "us", "free", a);
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	    it_fmt("{\"email\":\"owner@vault.test\",\"role\":\"owner\",\"password\":\"%s\"}", pw));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(login_pw("vault", "owner@vault.test", "Tr0ub4dor&3-wrong-password", NULL), 401);
	ck_assert_int_eq(login_pw("vault", "owner@vault.test", pw, tok), 200);
	new_key(tok, a, k1, s1);

	struct opts o = { .token = tok, .idem = "vault-key-1" };
	const char *body = "{\"name\":\"sealed\",\"scopes\":[\"events:read\"]}";
	api_ex(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", a), &o, body, strlen(body));
	EXPECT(&r, 201);
	api_ex(&again, "POST", it_fmt("/v1/tenants/%s/api-keys", a), &o, body, strlen(body));
	EXPECT(&again, 201);
	ck_assert_str_eq(it_js(again.json, "secret"), it_js(r.json, "secret"));
	char s2[200];
	snprintf(s2, sizeof s2, "%s", it_js(r.json, "secret"));
	res_free(&r);
	res_free(&again);
	ck_assert_int_eq(qlong("SELECT count(*) FROM idempotency_keys WHERE sealed"), 1);

	/* A region's credential for its data planes is a secret too. */
	api(&r, "POST", "/v1/regions/us/credentials", ADMIN_TOKEN, NULL);
	EXPECT(&r, 201);
	char cred[128];
	snprintf(cred, sizeof cred, "%s", it_js(r.json, "token"));
	ck_assert_msg(!strncmp(cred, "crt_us_", 7) && strlen(cred) > 40, "credential '%s'", cred);
	res_free(&r);

	const char *const needles[] = { s1, s2, s1 + 3 + 25, s2 + 3 + 25, pw, tok, tok + 4, ADMIN_TOKEN, cred, cred + 7 };
	const int n = sizeof needles / sizeof needles[0];
	expect_not_in_database(needles, n);

	char *log = it_slurp(cpfx.proc.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "\"msg\":\"request\""), "no access log lines in %s", cpfx.proc.log);
	for (int i = 0; i < n; i++)
		ck_assert_msg(!strstr(log, needles[i]), "the log %s holds secret #%d", cpfx.proc.log, i);
	ck_assert_msg(!strstr(log, "Tr0ub4dor&3-wrong-password"), "the log holds a wrong password");
	free(log);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. Idempotency                                                      */

/* A retried creation with the same Idempotency-Key and body gets the first
 * answer again (status, Location, body, the key's secret) marked
 * Idempotent-Replayed, and nothing is created twice; another body with the
 * key is 422; principals have their own key spaces. */
START_TEST(idempotency_replay)
{
	struct res r1, r2;
	char loc1[256], loc2[256];
	const char *body = "{\"name\":\"Once\",\"slug\":\"once\",\"region\":\"eu\",\"plan\":\"free\"}";
	struct opts admin = { .token = ADMIN_TOKEN, .idem = "shared-key-1" };

	api_ex(&r1, "POST", "/v1/tenants", &admin, body, strlen(body));
	EXPECT(&r1, 201);
	ck_assert_int_ne(it_header(&r1.raw, "Idempotent-Replayed", loc1, sizeof loc1), 0);
	long audits = audit_rows();
	long v[NREGIONS];
	versions(v);
	api_ex(&r2, "POST", "/v1/tenants", &admin, body, strlen(body));
	EXPECT(&r2, 201);
	ck_assert_msg(header_is(&r2, "Idempotent-Replayed", "true"), "no Idempotent-Replayed: true");
	ck_assert_msg(json_equal(r1.json, r2.json), "replay differs:\n%s\n%s", r1.raw.body, r2.raw.body);
	ck_assert_int_eq(it_header(&r1.raw, "Location", loc1, sizeof loc1), 0);
	ck_assert_int_eq(it_header(&r2.raw, "Location", loc2, sizeof loc2), 0);
	ck_assert_str_eq(loc1, loc2);
	ck_assert_str_ne(r1.rid, r2.rid);
	char a[37];
	snprintf(a, sizeof a, "%s", it_js(r1.json, "id"));
	res_free(&r1);
	res_free(&r2);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE slug = 'once'"), 1);
	ck_assert_int_eq(audit_rows(), audits);
	EXPECT_VERSIONS(v, 0, 0, 0, 0);

	/* Same key, another body (or another route): 422, nothing created. */
	const char *other = "{\"name\":\"Twice\",\"slug\":\"twice\",\"region\":\"eu\",\"plan\":\"free\"}";
	api_ex(&r1, "POST", "/v1/tenants", &admin, other, strlen(other));
	EXPECT_PROBLEM(&r1, 422, "unprocessable", NULL);
	res_free(&r1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE slug = 'twice'"), 0);

	/* API keys: the replay carries the same secret. */
	new_user(a, "owner@once.test", "owner", NULL);
	new_user(a, "owner2@once.test", "owner", NULL);
	char t1[128], t2[128];
	login("once", "owner@once.test", t1);
	login("once", "owner2@once.test", t2);
	const char *kbody = "{\"name\":\"retry me\",\"scopes\":[\"events:write\"]}";
	const char *kpath = it_fmt("/v1/tenants/%s/api-keys", a);
	struct opts owner1 = { .token = t1, .idem = "shared-key-1" }, owner2 = { .token = t2, .idem = "shared-key-1" };
	api_ex(&r1, "POST", kpath, &owner1, kbody, strlen(kbody));
	EXPECT(&r1, 201); /* the admin's use of the same key does not collide */
	api_ex(&r2, "POST", kpath, &owner1, kbody, strlen(kbody));
	EXPECT(&r2, 201);
	ck_assert_msg(header_is(&r2, "Idempotent-Replayed", "true"), "no Idempotent-Replayed: true");
	ck_assert_str_eq(it_js(r2.json, "id"), it_js(r1.json, "id"));
	ck_assert_str_eq(it_js(r2.json, "secret"), it_js(r1.json, "secret"));
	ck_assert_msg(strlen(it_js(r1.json, "secret")) == 3 + 24 + 1 + 64, "%s", r1.raw.body);
	ck_assert_msg(json_equal(r1.json, r2.json), "replay differs");
	char first[25];
	snprintf(first, sizeof first, "%s", it_js(r1.json, "id"));
	res_free(&r1);
	res_free(&r2);
	/* Another owner, same key and body: its own new key. */
	api_ex(&r1, "POST", kpath, &owner2, kbody, strlen(kbody));
	EXPECT(&r1, 201);
	ck_assert_msg(!header_is(&r1, "Idempotent-Replayed", "true"), "replayed another principal's answer");
	ck_assert_str_ne(it_js(r1.json, "id"), first);
	res_free(&r1);
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM api_keys WHERE tenant_id = '%s'", a)), 2);
	/* The admin's key already names a tenant creation. */
	struct opts admin_key = { .token = ADMIN_TOKEN, .idem = "shared-key-1" };
	api_ex(&r1, "POST", kpath, &admin_key, kbody, strlen(kbody));
	EXPECT_PROBLEM(&r1, 422, "unprocessable", NULL);
	res_free(&r1);

	/* A failed request is not remembered: fixing it and retrying works. */
	struct opts retry = { .token = ADMIN_TOKEN, .idem = "fix-and-retry" };
	const char *dup = "{\"name\":\"Dup\",\"slug\":\"once\",\"region\":\"eu\",\"plan\":\"free\"}";
	api_ex(&r1, "POST", "/v1/tenants", &retry, dup, strlen(dup));
	EXPECT_PROBLEM(&r1, 409, "conflict", "slug");
	res_free(&r1);
	api_ex(&r1, "POST", "/v1/tenants", &retry, dup, strlen(dup));
	EXPECT_PROBLEM(&r1, 409, "conflict", "slug");
	res_free(&r1);

	/* Malformed keys. */
	static char longkey[300];
	memset(longkey, 'k', 256);
	const char *const bad[] = { "has space", longkey, "tab\there" };
	for (int i = 0; i < 3; i++) {
		struct opts o = { .token = ADMIN_TOKEN, .idem = bad[i] };
		api_ex(&r1, "POST", "/v1/tenants", &o, other, strlen(other));
		EXPECT_PROBLEM(&r1, 400, "validation_failed", "Idempotency-Key");
		res_free(&r1);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE slug = 'twice'"), 0);
}
END_TEST

/* Twenty identical creations sent at once with one Idempotency-Key make
 * exactly one tenant, and all twenty answers carry its id. */
START_TEST(idempotency_concurrent)
{
	enum { N = 20 };
	struct shot s[N];
	const char *body = "{\"name\":\"Racy\",\"slug\":\"racy\",\"region\":\"eu\",\"plan\":\"free\"}";
	long v[NREGIONS];
	versions(v);
	for (int i = 0; i < N; i++)
		shot_init(&s[i], "POST", "/v1/tenants", ADMIN_TOKEN, "race-key", body);
	volley(s, N);
	int replays = 0;
	for (int i = 0; i < N; i++) {
		ck_assert_msg(s[i].status == 201, "request %d: %ld", i, s[i].status);
		ck_assert_msg(is_uuid(s[i].id), "request %d: id '%s'", i, s[i].id);
		ck_assert_str_eq(s[i].id, s[0].id);
		replays += s[i].replayed;
	}
	ck_assert_int_eq(replays, N - 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants"), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'tenant.create'"), 1);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);

	char racy[64];
	snprintf(racy, sizeof racy, "%s", s[0].id);

	/* Without a key, ten creations of one slug at once: one wins, the
	 * others are told the slug is taken. */
	const char *dup = "{\"name\":\"Dup\",\"slug\":\"dup-race\",\"region\":\"us\",\"plan\":\"free\"}";
	for (int i = 0; i < 10; i++)
		shot_init(&s[i], "POST", "/v1/tenants", ADMIN_TOKEN, NULL, dup);
	volley(s, 10);
	int created = 0;
	for (int i = 0; i < 10; i++) {
		ck_assert_msg(s[i].status == 201 || s[i].status == 409, "request %d: %ld", i, s[i].status);
		created += s[i].status == 201;
	}
	ck_assert_int_eq(created, 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE slug = 'dup-race'"), 1);

	/* And twenty key creations of one owner with one key: one key, one secret. */
	char tok[128];
	new_user(racy, "owner@racy.test", "owner", NULL);
	login("racy", "owner@racy.test", tok);
	const char *kbody = "{\"name\":\"racy key\",\"scopes\":[\"events:read\"]}";
	const char *path = it_fmt("/v1/tenants/%s/api-keys", racy);
	for (int i = 0; i < N; i++)
		shot_init(&s[i], "POST", path, tok, "race-key", kbody);
	volley(s, N);
	for (int i = 0; i < N; i++) {
		ck_assert_msg(s[i].status == 201, "key request %d: %ld", i, s[i].status);
		ck_assert_str_eq(s[i].id, s[0].id);
		ck_assert_str_eq(s[i].secret, s[0].secret);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM api_keys"), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 7. Audit log                                                        */

struct audit_want {
	char rid[80];
	const char *action, *object_type;
	char object_id[64];
	const char *actor_type;
	char actor_id[37];    /* "" for the admin token: null */
	char tenant_id[37];   /* "": null */
	int before, after;    /* present (non-null) */
};

/* Looks up the record of request `rid` in `items`. */
static json_t *audit_find(json_t *items, const char *rid)
{
	size_t i;
	json_t *it, *hit = NULL;
	json_array_foreach(items, i, it)
		if (!strcmp(it_js(it, "request_id"), rid)) {
			ck_assert_msg(!hit, "two audit records for request %s", rid);
			hit = it;
		}
	return hit;
}

/* Every change made through the API leaves one audit record naming the
 * actor, the action, the object, its before/after and the request id the
 * caller was given. Owners read their tenant's records only; members may
 * not read them; the admin reads all, newest first, page by page. */
START_TEST(audit_log)
{
	struct audit_want w[24];
	int n = 0;
	struct res r;
	char a[37], b[37], otok[128], owner_a[37];
	int seq = 0;

#define RECORD(res, act, otype, oid, atype, aid, tid, bef, aft)                                          \
	do {                                                                                              \
		struct audit_want *x = &w[n++];                                                               \
		snprintf(x->rid, sizeof x->rid, "%s", (res)->rid);                                            \
		x->action = (act);                                                                            \
		x->object_type = (otype);                                                                     \
		snprintf(x->object_id, sizeof x->object_id, "%s", (oid));                                     \
		x->actor_type = (atype);                                                                      \
		snprintf(x->actor_id, sizeof x->actor_id, "%s", (aid));                                       \
		snprintf(x->tenant_id, sizeof x->tenant_id, "%s", (tid));                                     \
		x->before = (bef);                                                                            \
		x->after = (aft);                                                                             \
	} while (0)

	/* Requests with a client-chosen X-Request-Id, and some without. */
#define SEND(m_, p_, t_, bd_)                                                                             \
	do {                                                                                               \
		struct opts o_ = { .token = (t_), .req_id = (seq++ % 2) ? NULL : it_fmt("it-audit-%d", seq) };    \
		const char *b_ = (bd_);                                                                        \
		api_ex(&r, (m_), (p_), &o_, b_, b_ ? strlen(b_) : 0);                                          \
		if (o_.req_id)                                                                                 \
			ck_assert_str_eq(r.rid, o_.req_id);                                                        \
	} while (0)

	SEND("POST", "/v1/tenants", ADMIN_TOKEN, "{\"name\":\"A\",\"slug\":\"audit-a\",\"region\":\"eu\",\"plan\":\"free\"}");
	EXPECT(&r, 201);
	snprintf(a, sizeof a, "%s", it_js(r.json, "id"));
	RECORD(&r, "tenant.create", "tenant", a, "admin_token", "", a, 0, 1);
	res_free(&r);
	SEND("POST", "/v1/tenants", ADMIN_TOKEN, "{\"name\":\"B\",\"slug\":\"audit-b\",\"region\":\"us\",\"plan\":\"free\"}");
	EXPECT(&r, 201);
	snprintf(b, sizeof b, "%s", it_js(r.json, "id"));
	RECORD(&r, "tenant.create", "tenant", b, "admin_token", "", b, 0, 1);
	res_free(&r);
	SEND("POST", it_fmt("/v1/tenants/%s/users", a), ADMIN_TOKEN,
	     "{\"email\":\"owner@audit.test\",\"role\":\"owner\"," PW "}");
	EXPECT(&r, 201);
	snprintf(owner_a, sizeof owner_a, "%s", it_js(r.json, "id"));
	RECORD(&r, "user.create", "user", owner_a, "admin_token", "", a, 0, 1);
	res_free(&r);
	login("audit-a", "owner@audit.test", otok);

	SEND("POST", it_fmt("/v1/tenants/%s/users", a), otok, "{\"email\":\"member@audit.test\",\"role\":\"member\"," PW "}");
	EXPECT(&r, 201);
	char member[37];
	snprintf(member, sizeof member, "%s", it_js(r.json, "id"));
	RECORD(&r, "user.create", "user", member, "user", owner_a, a, 0, 1);
	res_free(&r);
	SEND("PATCH", it_fmt("/v1/tenants/%s/users/%s", a, member), otok, "{\"role\":\"owner\"}");
	EXPECT(&r, 200);
	RECORD(&r, "user.update", "user", member, "user", owner_a, a, 1, 1);
	res_free(&r);
	SEND("DELETE", it_fmt("/v1/tenants/%s/users/%s", a, member), otok, NULL);
	EXPECT(&r, 200);
	RECORD(&r, "user.delete", "user", member, "user", owner_a, a, 1, 0);
	res_free(&r);
	SEND("PATCH", it_fmt("/v1/tenants/%s", a), otok, "{\"name\":\"A renamed\"}");
	EXPECT(&r, 200);
	RECORD(&r, "tenant.update", "tenant", a, "user", owner_a, a, 1, 1);
	res_free(&r);
	SEND("POST", it_fmt("/v1/tenants/%s/api-keys", a), otok, "{\"name\":\"k\",\"scopes\":[\"events:write\"]}");
	EXPECT(&r, 201);
	char key[25];
	snprintf(key, sizeof key, "%s", it_js(r.json, "id"));
	RECORD(&r, "api_key.create", "api_key", key, "user", owner_a, a, 0, 1);
	res_free(&r);
	SEND("DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", a, key), otok, NULL);
	EXPECT(&r, 200);
	RECORD(&r, "api_key.revoke", "api_key", key, "user", owner_a, a, 1, 1);
	res_free(&r);
	SEND("POST", "/v1/admins", ADMIN_TOKEN, "{\"email\":\"ops@audit.test\"," PW "}");
	EXPECT(&r, 201);
	char adm[37];
	snprintf(adm, sizeof adm, "%s", it_js(r.json, "id"));
	RECORD(&r, "admin.create", "user", adm, "admin_token", "", "", 0, 1);
	res_free(&r);
	char atok[128];
	login(NULL, "ops@audit.test", atok);
	SEND("PATCH", "/v1/regions/in", atok, "{\"wave\":2}");
	EXPECT(&r, 200);
	RECORD(&r, "region.update", "region", "in", "user", adm, "", 1, 1);
	res_free(&r);
	SEND("POST", "/v1/regions", atok,
	     "{\"name\":\"br\",\"display_name\":\"Brazil\",\"cloud_regions\":[\"sa-east-1\"],"
	     "\"endpoint\":\"https://br.api.celltrail.example\",\"wave\":5}");
	EXPECT(&r, 201);
	RECORD(&r, "region.create", "region", "br", "user", adm, "", 0, 1);
	res_free(&r);
	SEND("DELETE", it_fmt("/v1/tenants/%s", b), atok, NULL);
	EXPECT(&r, 200);
	RECORD(&r, "tenant.delete", "tenant", b, "user", adm, b, 1, 1);
	res_free(&r);
	SEND("DELETE", it_fmt("/v1/admins/%s", adm), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	RECORD(&r, "admin.delete", "user", adm, "admin_token", "", "", 1, 0);
	res_free(&r);
	/* A request id the server does not accept is replaced, and the
	 * record carries the one the caller was given. */
	{
		struct opts o = { .token = otok, .req_id = "not a valid id!" };
		const char *bd = "{\"name\":\"A again\"}";
		api_ex(&r, "PATCH", it_fmt("/v1/tenants/%s", a), &o, bd, strlen(bd));
		EXPECT(&r, 200);
		ck_assert_str_ne(r.rid, "not a valid id!");
		RECORD(&r, "tenant.update", "tenant", a, "user", owner_a, a, 1, 1);
		res_free(&r);
	}
	/* Refused and read-only requests leave nothing. */
	SEND("PATCH", it_fmt("/v1/tenants/%s", a), otok, "{\"region\":\"us\"}");
	EXPECT(&r, 409);
	res_free(&r);
	SEND("GET", it_fmt("/v1/tenants/%s/users", a), otok, NULL);
	EXPECT(&r, 200);
	res_free(&r);
#undef SEND
#undef RECORD

	ck_assert_int_eq(audit_rows(), n);
	api(&r, "GET", "/v1/audit-log?limit=100", ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	json_t *items = json_object_get(r.json, "items");
	ck_assert_int_eq(json_array_size(items), n);
	for (int i = 0; i < n; i++) {
		json_t *rec = audit_find(items, w[i].rid);
		ck_assert_msg(rec, "no audit record for %s (request %s)", w[i].action, w[i].rid);
		ck_assert_str_eq(it_js(rec, "action"), w[i].action);
		ck_assert_str_eq(it_js(rec, "object_type"), w[i].object_type);
		ck_assert_str_eq(it_js(rec, "object_id"), w[i].object_id);
		ck_assert_str_eq(it_js(rec, "actor_type"), w[i].actor_type);
		if (w[i].actor_id[0])
			ck_assert_str_eq(it_js(rec, "actor_id"), w[i].actor_id);
		else
			ck_assert_msg(json_is_null(json_object_get(rec, "actor_id")), "%s: actor_id", w[i].action);
		if (w[i].tenant_id[0])
			ck_assert_str_eq(it_js(rec, "tenant_id"), w[i].tenant_id);
		else
			ck_assert_msg(json_is_null(json_object_get(rec, "tenant_id")), "%s: tenant_id", w[i].action);
		ck_assert_msg(json_is_object(json_object_get(rec, "before")) == w[i].before, "%s: before", w[i].action);
		ck_assert_msg(json_is_object(json_object_get(rec, "after")) == w[i].after, "%s: after", w[i].action);
		ck_assert_msg(is_api_time(it_js(rec, "at")), "%s", it_js(rec, "at"));
	}
	/* before/after carry the change. */
	json_t *upd = audit_find(items, w[4].rid);
	ck_assert_str_eq(it_js(json_object_get(upd, "before"), "role"), "member");
	ck_assert_str_eq(it_js(json_object_get(upd, "after"), "role"), "owner");
	json_t *ren = audit_find(items, w[6].rid);
	ck_assert_str_eq(it_js(json_object_get(ren, "before"), "name"), "A");
	ck_assert_str_eq(it_js(json_object_get(ren, "after"), "name"), "A renamed");
	ck_assert_msg(!strstr(r.raw.body, "scrypt$"), "a password hash in the audit log");
	/* Newest first. */
	for (size_t i = 1; i < json_array_size(items); i++)
		ck_assert_int_gt(json_integer_value(json_object_get(json_array_get(items, i - 1), "id")),
		                 json_integer_value(json_object_get(json_array_get(items, i), "id")));
	res_free(&r);
	char all[2048] = "", paged[2048] = "";
	ck_assert_int_eq(walk("/v1/audit-log", ADMIN_TOKEN, 3, paged, sizeof paged), n);
	ck_assert_int_eq(walk("/v1/audit-log", ADMIN_TOKEN, 100, all, sizeof all), n);
	ck_assert_str_eq(paged, all);

	/* The owner of A reads exactly A's records. */
	long of_a = qlong(it_fmt("SELECT count(*) FROM audit_log WHERE tenant_id = '%s'", a));
	ck_assert_int_eq(of_a, 9);
	const char *const views[] = { "/v1/audit-log", it_fmt("/v1/audit-log?tenant_id=%s", a) };
	for (int v = 0; v < 2; v++) {
		api(&r, "GET", views[v], otok, NULL);
		EXPECT(&r, 200);
		items = json_object_get(r.json, "items");
		ck_assert_int_eq(json_array_size(items), of_a);
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it)
			ck_assert_str_eq(it_js(it, "tenant_id"), a);
		res_free(&r);
	}
	api(&r, "GET", it_fmt("/v1/audit-log?tenant_id=%s", a), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), of_a);
	res_free(&r);
	api(&r, "GET", it_fmt("/v1/audit-log?tenant_id=%s", b), otok, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/audit-log?tenant_id=not-a-uuid", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "tenant_id");
	res_free(&r);
	char mtok[128];
	new_user(a, "reader@audit.test", "member", NULL);
	login("audit-a", "reader@audit.test", mtok);
	api(&r, "GET", "/v1/audit-log", mtok, NULL);
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
}
END_TEST

/* The audit log is append-only in the database itself: UPDATE, DELETE and
 * TRUNCATE fail even for the table's owner, and the records stay. */
START_TEST(audit_append_only)
{
	char a[37];
	new_tenant("ledger", "eu", "free", a);
	new_user(a, "owner@ledger.test", "owner", NULL);
	long before = audit_rows();
	ck_assert_int_eq(before, 2);
	q_fails("UPDATE audit_log SET action = 'forged'", "42501");
	q_fails("UPDATE audit_log SET after = NULL WHERE action = 'tenant.create'", "42501");
	q_fails("DELETE FROM audit_log", "42501");
	q_fails(it_fmt("DELETE FROM audit_log WHERE tenant_id = '%s'", a), "42501");
	q_fails("TRUNCATE audit_log", "42501");
	ck_assert_int_eq(audit_rows(), before);
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action IN ('tenant.create', 'user.create')"), 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 8. Config versions                                                  */

/* A region's config_version rises by exactly one for each change its data
 * planes must learn (its tenants and keys), and every region's rises for a
 * catalog change; refused and replayed requests change none. */
START_TEST(config_versions)
{
	long v[NREGIONS];
	char a[37], key[25];
	struct res r;
	versions(v);

	new_tenant("cv-eu", "eu", "free", a); /* in, eu, us, jp */
	EXPECT_VERSIONS(v, 0, 1, 0, 0);
	new_key(ADMIN_TOKEN, a, key, NULL);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);
	api(&r, "DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", a, key), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);
	api(&r, "PATCH", it_fmt("/v1/tenants/%s", a), ADMIN_TOKEN, "{\"plan\":\"pro\"}");
	EXPECT(&r, 200);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);

	/* Refusals change nothing. */
	api(&r, "POST", "/v1/tenants", ADMIN_TOKEN, "{\"name\":\"D\",\"slug\":\"cv-eu\",\"region\":\"eu\",\"plan\":\"free\"}");
	EXPECT(&r, 409);
	res_free(&r);
	api(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", a), ADMIN_TOKEN,
	    "{\"name\":\"k\",\"scopes\":[\"events:write\"],\"expires_at\":\"2001-01-01T00:00:00Z\"}");
	EXPECT(&r, 400);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 0);

	api(&r, "PATCH", "/v1/regions/us", ADMIN_TOKEN, "{\"display_name\":\"United States of America\"}");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "config_version")), v[2] + 1);
	res_free(&r);
	EXPECT_VERSIONS(v, 1, 1, 1, 1);
	api(&r, "POST", "/v1/regions", ADMIN_TOKEN,
	    "{\"name\":\"au\",\"display_name\":\"Australia\",\"cloud_regions\":[\"ap-southeast-2\"],"
	    "\"endpoint\":\"https://au.api.celltrail.example\",\"wave\":4}");
	EXPECT(&r, 201);
	res_free(&r);
	EXPECT_VERSIONS(v, 1, 1, 1, 1);

	char us[37], jp[37];
	new_tenant("cv-us", "us", "free", us);
	EXPECT_VERSIONS(v, 0, 0, 1, 0);
	new_tenant("cv-jp", "jp", "free", jp);
	EXPECT_VERSIONS(v, 0, 0, 0, 1);
	api(&r, "DELETE", it_fmt("/v1/tenants/%s", jp), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 1);
}
END_TEST

/* Each region of the catalog names where its log checkpoints' public
 * keys are (the endpoint's /.well-known/jwks.json), in the list and on its
 * own, and the URL follows an endpoint change (a trailing slash is not
 * doubled). */
START_TEST(region_log_jwks_url)
{
	struct res r;
	size_t i;
	json_t *reg;
	api(&r, "GET", "/v1/regions", NULL, NULL);
	EXPECT(&r, 200);
	json_t *items = json_object_get(r.json, "items");
	ck_assert_uint_gt(json_array_size(items), 1);
	json_array_foreach(items, i, reg)
		ck_assert_str_eq(it_js(reg, "log_jwks_url"), it_fmt("%s/.well-known/jwks.json", it_js(reg, "endpoint")));
	res_free(&r);

	api(&r, "GET", "/v1/regions/jp", NULL, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "log_jwks_url"), "https://jp.api.celltrail.example/.well-known/jwks.json");
	res_free(&r);

	static const char *const ends[][2] = {
		{ "https://jp2.api.celltrail.example", "https://jp2.api.celltrail.example/.well-known/jwks.json" },
		{ "https://jp3.api.celltrail.example/", "https://jp3.api.celltrail.example/.well-known/jwks.json" },
		{ "http://127.0.0.1:9/base", "http://127.0.0.1:9/base/.well-known/jwks.json" },
	};
	for (i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, it_fmt("{\"endpoint\":\"%s\"}", ends[i][0]));
		EXPECT(&r, 200);
		ck_assert_str_eq(it_js(r.json, "log_jwks_url"), ends[i][1]);
		res_free(&r);
		api(&r, "GET", "/v1/regions/jp", NULL, NULL);
		EXPECT(&r, 200);
		ck_assert_str_eq(it_js(r.json, "log_jwks_url"), ends[i][1]);
		res_free(&r);
	}
	/* It is derived: a client cannot set it. */
	api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, "{\"log_jwks_url\":\"https://evil.example/jwks.json\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "log_jwks_url");
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 9. Lookup                                                           */

/* Anyone can find a tenant's home region and endpoint by its slug; an
 * unknown or deleted slug is 404 and a missing parameter 400. */
START_TEST(lookup)
{
	char id[37];
	struct res r;
	new_tenant("findme", "jp", "free", id);

	api(&r, "GET", "/v1/lookup?tenant=findme", NULL, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "slug"), "findme");
	ck_assert_ptr_null(json_object_get(r.json, "tenant"));
	ck_assert_str_eq(it_js(r.json, "region"), "jp");
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://jp.api.celltrail.example");
	ck_assert_msg(!strstr(r.raw.body, id), "the public lookup shows the tenant id");
	res_free(&r);

	/* An endpoint change shows at once. */
	api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, "{\"endpoint\":\"https://jp2.api.celltrail.example\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://jp2.api.celltrail.example");
	ck_assert_ptr_null(json_object_get(r.json, "endpoint_url"));
	res_free(&r);
	/* The old request name is an unknown member now. */
	api(&r, "PATCH", "/v1/regions/jp", ADMIN_TOKEN, "{\"endpoint_url\":\"https://jp3.api.celltrail.example\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "endpoint_url");
	res_free(&r);
	api(&r, "GET", "/v1/lookup?tenant=findme", NULL, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "endpoint"), "https://jp2.api.celltrail.example");
	res_free(&r);

	static const char *const unknown[] = { "nobody", "FINDME", "find_me", "x", "findme-" };
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		api(&r, "GET", it_fmt("/v1/lookup?tenant=%s", unknown[i]), NULL, NULL);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	api(&r, "GET", "/v1/lookup", NULL, NULL);
	EXPECT(&r, 400);
	ck_assert_str_eq(it_js(r.json, "field"), "tenant");
	res_free(&r);
	/* A parameter of another name is refused as unknown, naming it. */
	api(&r, "GET", "/v1/lookup?slug=findme", NULL, NULL);
	EXPECT(&r, 400);
	ck_assert_str_eq(it_js(r.json, "field"), "slug");
	res_free(&r);

	api(&r, "DELETE", it_fmt("/v1/tenants/%s", id), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	api(&r, "GET", "/v1/lookup?tenant=findme", NULL, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */

/* One TCase per test, each with its own control plane and database (a
 * checked fixture), so that no test sees another's tenants or audit
 * records; CK_RUN_CASE=<test name> runs one. */
/* Every 201's Location can be fetched, and gives the object just made. */
START_TEST(locations_resolve)
{
	static const struct { const char *path, *body, *id_member; } made[] = {
		{ "/v1/tenants", "{\"name\":\"Loc\",\"slug\":\"loc-t\",\"region\":\"eu\",\"plan\":\"pro\"}", "id" },
		{ "/v1/regions", "{\"name\":\"loc\",\"display_name\":\"Loc\",\"cloud_regions\":[\"xx-loc-1\"],"
		  "\"endpoint\":\"https://loc.example\",\"wave\":4}", "name" },
		{ "/v1/admins", "{\"email\":\"loc-admin@example.test\",\"password\":\"" PASSWORD "\"}", "id" },
		{ "/v1/plans", "{\"id\":\"loc\",\"name\":\"Loc\",\"currency\":\"USD\",\"base_price\":1,"
		  "\"events_included\":1,\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,"
		  "\"monthly_event_quota\":1,\"retention_days\":1}", "id" },
		{ "/v1/tenants/{T}/users", "{\"email\":\"loc@example.test\",\"role\":\"member\",\"password\":\"" PASSWORD "\"}", "id" },
		{ "/v1/tenants/{T}/api-keys", "{\"name\":\"loc\",\"scopes\":[\"events:read\"]}", "id" },
	};
	char tenant[64] = "";
	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		struct res r, g;
		char path[256], loc[512];
		const char *t = strstr(made[i].path, "{T}");
		if (t)
			snprintf(path, sizeof path, "%.*s%s%s", (int)(t - made[i].path), made[i].path, tenant, t + 3);
		else
			snprintf(path, sizeof path, "%s", made[i].path);
		api(&r, "POST", path, ADMIN_TOKEN, made[i].body);
		ck_assert_msg(r.status == 201, "POST %s: %ld", path, r.status);
		ck_assert_msg(it_header(&r.raw, "Location", loc, sizeof loc) == 0, "POST %s: no Location", path);
		if (i == 0)
			snprintf(tenant, sizeof tenant, "%s", it_js(r.json, "id"));
		api(&g, "GET", loc, ADMIN_TOKEN, NULL);
		ck_assert_msg(g.status == 200, "GET %s (the Location of POST %s): %ld", loc, path, g.status);
		ck_assert_str_eq(it_js(g.json, made[i].id_member), it_js(r.json, made[i].id_member));
		ck_assert_ptr_null(json_object_get(g.json, "secret")); /* shown once, at creation */
		res_free(&r);
		res_free(&g);
	}
}
END_TEST

/* The lists that are never paged answer the shape of every list's last
 * page: items, has_more false, and no next_cursor member. */
START_TEST(unpaged_lists_shape)
{
	char id[37];
	struct res r;
	new_tenant("unpaged", "eu", "free", id);
	const char *const paths[] = { "/v1/regions", "/v1/plans", "/v1/regions/eu/fleet",
		                          it_fmt("/v1/tenants/%s/invoices", id) };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		api(&r, "GET", paths[i], ADMIN_TOKEN, NULL);
		EXPECT(&r, 200);
		ck_assert_msg(json_is_array(json_object_get(r.json, "items")) &&
		                  json_is_false(json_object_get(r.json, "has_more")) &&
		                  !json_object_get(r.json, "next_cursor"),
		              "GET %s: %.300s", paths[i], r.raw.body);
		res_free(&r);
	}
}
END_TEST

Suite *cp_api_suite(void)
{
	const TTest *const tests[] = {
		authz_matrix, authz_bad_headers,
		tenant_create, tenant_list, tenant_list_foreign_cursor, unpaged_lists_shape, tenant_patch, tenant_delete,
		bad_input, bad_content_type, sql_metacharacters_are_data, body_too_large, email_non_ascii,
		users_and_login, login_401_challenges, login_lockout, login_lockout_long_attack, last_owner,
		last_owner_concurrent_demotions, last_owner_concurrent_deletions,
		api_keys, secrets_stay_secret,
		idempotency_replay, idempotency_concurrent,
		audit_log, audit_append_only,
		config_versions, lookup, locations_resolve, region_log_jwks_url,
	};
	Suite *s = suite_create("cp-api");
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], cp_setup, cp_teardown, 60);
	return s;
}
