/* Fixtures the integration suites share (fixtures.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "problem.h"

/* --- answers --- */

void res_call(struct res *r, const char *method, const char *url, const char *const headers[],
              const char *body, size_t len)
{
	memset(r, 0, sizeof *r);
	it_http(&r->raw, method, url, headers, body, len);
	r->status = r->raw.status;
	r->json = json_loadb(r->raw.body, r->raw.len, 0, NULL);
}

void res_free(struct res *r)
{
	json_decref(r->json);
	r->json = NULL;
	it_resp_free(&r->raw);
}

void expect_status(const struct res *r, long st, int line)
{
	ck_assert_msg(r->status == st, "line %d: status %ld, want %ld: %.700s", line, r->status, st,
	              r->raw.body);
}

void expect_problem(const struct res *r, long st, const char *code, const char *field,
                    int null_field_absent, int line)
{
	expect_status(r, st, line);
	ck_assert_msg(!strcmp(it_js(r->json, "code"), code), "line %d: code '%s', want '%s': %.500s", line,
	              it_js(r->json, "code"), code, r->raw.body);
	if (field)
		ck_assert_msg(!strcmp(it_js(r->json, "field"), field), "line %d: field '%s', want '%s': %.500s",
		              line, it_js(r->json, "field"), field, r->raw.body);
	else if (null_field_absent)
		ck_assert_msg(!json_object_get(r->json, "field"), "line %d: unexpected field: %.500s", line,
		              r->raw.body);
}

int replayed(const struct res *r)
{
	char v[32];
	return it_header(&r->raw, "Idempotent-Replayed", v, sizeof v) == 0 && !strcmp(v, "true");
}

long code_status(const char *code)
{
	/* The one table of codes (common/problem.c), so that a code added
	 * there is known here at once. */
	for (int i = 0; i < PROB__COUNT; i++)
		if (!strcmp(problem_info((enum problem_code)i)->code, code))
			return problem_info((enum problem_code)i)->status;
	return -1;
}

int is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

int is_api_time(const char *s)
{
	return strlen(s) == 27 && s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[26] == 'Z';
}

/* --- SQL --- */

long long sqll(const char *url, const char *sql)
{
	char *v = it_sql(url, sql);
	ck_assert_msg(v != NULL, "%s: no row", sql);
	long long n = atoll(v);
	free(v);
	return n;
}

/* --- requests at once --- */

struct at_once {
	pthread_barrier_t *go;
	void *(*fn)(void *item);
	void *item;
};

static void *at_once_main(void *arg)
{
	struct at_once *a = arg;
	pthread_barrier_wait(a->go);
	return a->fn(a->item);
}

void run_at_once(void *items, size_t size, int n, void *(*fn)(void *item))
{
	pthread_t t[32];
	struct at_once a[32];
	pthread_barrier_t go;
	ck_assert_int_le(n, 32);
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		a[i] = (struct at_once){ &go, fn, (char *)items + (size_t)i * size };
		ck_assert_int_eq(pthread_create(&t[i], NULL, at_once_main, &a[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
}

long get_json_auth(const char *url, const char *auth, json_t **out)
{
	struct it_resp r;
	char h[512];
	const char *hs[2] = { NULL, NULL };
	if (auth) {
		snprintf(h, sizeof h, "Authorization: %s", auth);
		hs[0] = h;
	}
	it_http(&r, "GET", url, hs, NULL, 0);
	*out = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	long st = r.status;
	it_resp_free(&r);
	return st;
}

const char *query_enc(const char *s)
{
	char b[4096];
	size_t n = 0;
	for (; *s && n + 4 < sizeof b; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
			b[n++] = (char)c;
		else
			n += (size_t)snprintf(b + n, sizeof b - n, "%%%02X", c);
	}
	b[n] = '\0';
	return it_fmt("%s", b);
}
