/* A control plane of a test's own and a client of its API (cpfx.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpfx.h"

struct cpfx cpfx;

void cpfx_start(const char *db_prefix, const char *const extra[])
{
	memset(&cpfx, 0, sizeof cpfx);
	it_cp_start(&cpfx.proc, db_prefix, extra, cpfx.db, sizeof cpfx.db, cpfx.url, sizeof cpfx.url);
}

void cpfx_stop(void)
{
	if (cpfx.pg)
		PQfinish(cpfx.pg);
	cpfx.pg = NULL;
	int st = it_stop(&cpfx.proc);
	ck_assert_msg(st == 0, "the control plane exited with %d on SIGTERM (log %s)", st, cpfx.proc.log);
}

void cpfx_restart(const char *const extra[])
{
	cpfx_stop();
	it_cp_restart(&cpfx.proc, cpfx.db, extra, cpfx.url, sizeof cpfx.url);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *db(void)
{
	if (!cpfx.pg) {
		cpfx.pg = PQconnectdb(cpfx.db);
		ck_assert_msg(PQstatus(cpfx.pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(cpfx.pg));
		PQsetNoticeProcessor(cpfx.pg, quiet, NULL);
	}
	return cpfx.pg;
}

char *q(const char *sql)
{
	PGresult *r = PQexec(db(), sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
	              PQresultErrorMessage(r));
	char *v = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	return v;
}

long qlong(const char *sql)
{
	char *v = q(sql);
	ck_assert_msg(v != NULL, "%s: no row", sql);
	long n = atol(v);
	free(v);
	return n;
}

void q_fails(const char *sql, const char *state)
{
	PGresult *r = PQexec(db(), sql);
	ExecStatusType st = PQresultStatus(r);
	const char *got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	ck_assert_msg(st == PGRES_FATAL_ERROR, "%s succeeded; it must fail", sql);
	ck_assert_msg(got && !strcmp(got, state), "%s failed with %s, want %s: %s", sql,
	              got ? got : "(none)", state, PQresultErrorMessage(r));
	PQclear(r);
}

void api_ex(struct res *r, const char *method, const char *path, const struct opts *o,
            const char *body, size_t len)
{
	static const struct opts none;
	char url[4096], auth[1200], idem[400], rid[120], ct[160], v[256];
	const char *h[8];
	int n = 0;

	if (!o)
		o = &none;
	snprintf(url, sizeof url, "%s%s", cpfx.url, path);
	if (o->auth)
		h[n++] = it_fmt("Authorization: %s", o->auth);
	else if (o->token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
		h[n++] = auth;
	}
	if (o->idem) {
		snprintf(idem, sizeof idem, "Idempotency-Key: %s", o->idem);
		h[n++] = idem;
	}
	if (o->req_id) {
		snprintf(rid, sizeof rid, "X-Request-Id: %s", o->req_id);
		h[n++] = rid;
	}
	if (body) {
		snprintf(ct, sizeof ct, "Content-Type: %s", o->ctype ? o->ctype : "application/json");
		h[n++] = ct;
	}
	h[n] = NULL;

	res_call(r, method, url, h, body, len);
	ck_assert_msg(r->status > 0, "%s %s: no answer", method, path);
	ck_assert_msg(r->status < 500, "%s %s: %ld: %.600s", method, path, r->status, r->raw.body);
	ck_assert_msg(it_header(&r->raw, "X-Request-Id", r->rid, sizeof r->rid) == 0 && r->rid[0],
	              "%s %s: no X-Request-Id", method, path);
	if (r->status >= 400) {
		ck_assert_msg(it_header(&r->raw, "Content-Type", v, sizeof v) == 0 &&
		              !strncmp(v, "application/problem+json", 24),
		              "%s %s: %ld answered as %s", method, path, r->status, v);
		ck_assert_msg(json_is_object(r->json), "%s %s: problem is not JSON: %.300s", method, path,
		              r->raw.body);
		const char *code = it_js(r->json, "code");
		ck_assert_msg(code_status(code) == r->status, "%s %s: code '%s' with status %ld", method,
		              path, code, r->status);
		ck_assert_int_eq(json_integer_value(json_object_get(r->json, "status")), r->status);
		ck_assert_str_eq(it_js(r->json, "type"), it_fmt("urn:celltrail:problem:%s", code));
		ck_assert_msg(strlen(it_js(r->json, "detail")) > 0, "%s %s: problem without detail", method, path);
		ck_assert_str_eq(it_js(r->json, "request_id"), r->rid);
		if (r->status == 401) {
			ck_assert_msg(it_header(&r->raw, "WWW-Authenticate", v, sizeof v) == 0,
			              "%s %s: 401 without WWW-Authenticate: %.300s", method, path, r->raw.body);
			ck_assert_str_eq(v, "Bearer");
		}
	} else if (cpfx.success_is_object) {
		ck_assert_msg(it_header(&r->raw, "Content-Type", v, sizeof v) == 0 &&
		              !strncmp(v, "application/json", 16), "%s %s: answered as %s", method, path, v);
		ck_assert_msg(json_is_object(r->json), "%s %s: body is not a JSON object: %.300s", method,
		              path, r->raw.body);
	} else if (r->raw.len > 0) {
		ck_assert_msg(it_header(&r->raw, "Content-Type", v, sizeof v) == 0 &&
		              !strncmp(v, "application/json", 16), "%s %s: answered as %s", method, path, v);
		ck_assert_msg(r->json != NULL, "%s %s: body is not JSON: %.300s", method, path, r->raw.body);
	}
}

void api(struct res *r, const char *method, const char *path, const char *token, const char *body)
{
	struct opts o = { .token = token };
	api_ex(r, method, path, &o, body, body ? strlen(body) : 0);
}

/* --- a world built by the admin through the API --- */

void new_tenant(const char *slug, const char *region, const char *plan, char id[37])
{
	struct res r;
	api(&r, "POST", "/v1/tenants", ADMIN_TOKEN,
	    it_fmt("{\"name\":\"Tenant %s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"%s\"}", slug, slug,
	        region, plan));
	EXPECT(&r, 201);
	snprintf(id, 37, "%s", it_js(r.json, "id"));
	ck_assert_msg(is_uuid(id), "tenant id '%s'", id);
	res_free(&r);
}

void new_user(const char *tenant_id, const char *email, const char *role, char id[37])
{
	struct res r;
	api(&r, "POST", it_fmt("/v1/tenants/%s/users", tenant_id), ADMIN_TOKEN,
	    it_fmt("{\"email\":\"%s\",\"role\":\"%s\",\"password\":\"" PASSWORD "\"}", email, role));
	EXPECT(&r, 201);
	if (id)
		snprintf(id, 37, "%s", it_js(r.json, "id"));
	res_free(&r);
}

long login_pw(const char *slug, const char *email, const char *password, char token[128])
{
	struct res r;
	const char *body = slug ? it_fmt("{\"email\":\"%s\",\"password\":\"%s\",\"tenant\":\"%s\"}", email,
	                              password, slug)
	                        : it_fmt("{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
	api(&r, "POST", "/v1/auth/login", NULL, body);
	long st = r.status;
	if (st == 200 && token)
		snprintf(token, 128, "%s", it_js(r.json, "token"));
	res_free(&r);
	return st;
}

void login(const char *slug, const char *email, char token[128])
{
	long st = login_pw(slug, email, PASSWORD, token);
	ck_assert_msg(st == 200, "login of %s to %s: %ld", email, slug ? slug : "(admins)", st);
}

const char *const region_names[NREGIONS] = { "in", "eu", "us", "jp" };

void versions(long v[NREGIONS])
{
	struct res r;
	size_t i;
	json_t *it;
	api(&r, "GET", "/v1/regions", NULL, NULL);
	EXPECT(&r, 200);
	for (int k = 0; k < NREGIONS; k++) {
		v[k] = -1;
		json_array_foreach(json_object_get(r.json, "items"), i, it)
			if (!strcmp(it_js(it, "name"), region_names[k]))
				v[k] = (long)json_integer_value(json_object_get(it, "config_version"));
		ck_assert_msg(v[k] > 0, "region %s has no config_version", region_names[k]);
	}
	res_free(&r);
}

void expect_versions(long before[NREGIONS], const long delta[NREGIONS], int line)
{
	long now[NREGIONS];
	versions(now);
	for (int k = 0; k < NREGIONS; k++)
		ck_assert_msg(now[k] - before[k] == delta[k],
		              "line %d: region %s config_version went %ld -> %ld, want +%ld", line,
		              region_names[k], before[k], now[k], delta[k]);
	memcpy(before, now, sizeof now);
}
