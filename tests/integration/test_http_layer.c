/* The HTTP layer from outside, through http-testd (common/http with a few
 * test routes: POST /echo limited to 1024 bytes, GET /slow, GET|DELETE
 * /items/{id}, GET /fail, GET /convention). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

static const char *const json_ct[] = { "Content-Type: application/json", NULL };

static int start_testd(struct it_proc *p)
{
	char bin[1024];
	it_bin("http-testd", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(p, "http-testd", argv, NULL);
	return it_wait_port(p, 10000);
}

static void url(char *buf, size_t len, int port, const char *path)
{
	snprintf(buf, len, "http://127.0.0.1:%d%s", port, path);
}

/* Asserts a problem+json answer with the given status and code. */
static void assert_problem(const struct it_resp *r, long status, const char *code)
{
	char ct[128], want[64];
	ck_assert_int_eq(r->status, status);
	ck_assert_int_eq(it_header(r, "Content-Type", ct, sizeof ct), 0);
	ck_assert_str_eq(ct, "application/problem+json");
	snprintf(want, sizeof want, "\"code\":\"%s\"", code);
	ck_assert_msg(strstr(r->body, want), "expected %s in %.300s", want, r->body);
	snprintf(want, sizeof want, "\"status\":%ld", status);
	ck_assert_msg(strstr(r->body, want), "expected %s in %.300s", want, r->body);
}

/* A JSON body within the limit reaches the handler intact. */
START_TEST(echo_roundtrip)
{
	struct it_proc p;
	struct it_resp r;
	char u[128], ct[64];
	const char *body = "{\"name\":\"Zoë\",\"n\":[1,2,3]}";
	url(u, sizeof u, start_testd(&p), "/echo");
	it_http(&r, "POST", u, json_ct, body, strlen(body));
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, body);
	ck_assert_int_eq(it_header(&r, "Content-Type", ct, sizeof ct), 0);
	ck_assert_str_eq(ct, "application/json");
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* Every answer carries a request id: the client's when well-formed,
 * otherwise a fresh one, so that logs and clients can be correlated. */
START_TEST(request_id)
{
	struct it_proc p;
	struct it_resp r;
	char u[128], id[128];
	url(u, sizeof u, start_testd(&p), "/healthz");

	const char *const mine[] = { "X-Request-Id: client-chosen.42", NULL };
	it_http(&r, "GET", u, mine, NULL, 0);
	ck_assert_int_eq(it_header(&r, "X-Request-Id", id, sizeof id), 0);
	ck_assert_str_eq(id, "client-chosen.42");
	it_resp_free(&r);

	const char *const bad[] = { "X-Request-Id: has spaces and \"quotes\"", NULL };
	it_http(&r, "GET", u, bad, NULL, 0);
	ck_assert_int_eq(it_header(&r, "X-Request-Id", id, sizeof id), 0);
	ck_assert_int_eq(strlen(id), 24);
	ck_assert_int_eq(strspn(id, "0123456789abcdef"), 24);
	it_resp_free(&r);

	char id2[128];
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(it_header(&r, "X-Request-Id", id2, sizeof id2), 0);
	ck_assert_str_ne(id, id2);
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* A declared body over the route's limit is refused with 413 before it is
 * read, and the server goes on serving. */
START_TEST(body_limit_declared)
{
	struct it_proc p;
	struct it_resp r;
	char u[128];
	int port = start_testd(&p);
	size_t n = 4096;
	char *big = malloc(n);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	url(u, sizeof u, port, "/echo");
	it_http(&r, "POST", u, json_ct, big, n);
	assert_problem(&r, 413, "body_too_large");
	ck_assert_msg(strstr(r.body, "1024 bytes"), "detail names the limit: %.300s", r.body);
	it_resp_free(&r);
	free(big);

	it_http(&r, "POST", u, json_ct, "{}", 2);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* A chunked body (no declared length) is bounded the same way. */
START_TEST(body_limit_chunked)
{
	struct it_proc p;
	struct it_resp r;
	char u[128];
	url(u, sizeof u, start_testd(&p), "/echo");

	size_t n = 3000;
	char *big = malloc(n);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	it_http_chunked(&r, u, json_ct, big, n, 500);
	assert_problem(&r, 413, "body_too_large");
	it_resp_free(&r);

	/* Under the limit, chunked works. */
	it_http_chunked(&r, u, json_ct, big, 1000, 100);
	ck_assert_int_eq(r.status, 400); /* 1000 bytes of '{' + spaces: not JSON */
	assert_problem(&r, 400, "invalid_json");
	it_resp_free(&r);
	const char *ok = "{\"chunked\":true}";
	it_http_chunked(&r, u, json_ct, ok, strlen(ok), 3);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, ok);
	it_resp_free(&r);
	free(big);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* Malformed JSON bodies are a 400 with a sentence, never a 500. */
START_TEST(bad_bodies)
{
	struct it_proc p;
	struct it_resp r;
	char u[128];
	url(u, sizeof u, start_testd(&p), "/echo");

	it_http(&r, "POST", u, NULL, "{}", 2); /* no Content-Type */
	assert_problem(&r, 415, "unsupported_media_type");
	it_resp_free(&r);
	const char *const text[] = { "Content-Type: text/plain", NULL };
	it_http(&r, "POST", u, text, "{}", 2);
	assert_problem(&r, 415, "unsupported_media_type");
	it_resp_free(&r);

	static const char *const bad[] = {
		"{\"a\":", "[1,2]", "{\"a\":1,\"a\":2}", "{\"a\":\"\xff\xfe\"}", "",
		"{\"n\":123456789012345678901234567890}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		it_http(&r, "POST", u, json_ct, bad[i], strlen(bad[i]));
		assert_problem(&r, 400, "invalid_json");
		it_resp_free(&r);
	}
	char deep[400];
	memset(deep, '[', 200);
	memset(deep + 200, ']', 200);
	char wrapped[420];
	snprintf(wrapped, sizeof wrapped, "{\"a\":%.*s}", 400, deep);
	it_http(&r, "POST", u, json_ct, wrapped, strlen(wrapped));
	assert_problem(&r, 400, "invalid_json");
	ck_assert_msg(strstr(r.body, "nested deeper"), "%.300s", r.body);
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* Unknown paths are 404 and wrong methods 405 with Allow, as problem+json;
 * path parameters reach the handler. */
START_TEST(routing)
{
	struct it_proc p;
	struct it_resp r;
	char u[128], allow[64];
	int port = start_testd(&p);

	url(u, sizeof u, port, "/nowhere");
	it_http(&r, "GET", u, NULL, NULL, 0);
	assert_problem(&r, 404, "not_found");
	it_resp_free(&r);

	url(u, sizeof u, port, "/items/abc-1");
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"id\":\"abc-1\"}");
	it_resp_free(&r);

	it_http(&r, "PUT", u, NULL, NULL, 0);
	assert_problem(&r, 405, "method_not_allowed");
	ck_assert_int_eq(it_header(&r, "Allow", allow, sizeof allow), 0);
	ck_assert_str_eq(allow, "GET, HEAD, DELETE");
	it_resp_free(&r);

	it_http(&r, "HEAD", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.len, 0);
	it_resp_free(&r);

	url(u, sizeof u, port, "/items/");
	it_http(&r, "GET", u, NULL, NULL, 0);
	assert_problem(&r, 404, "not_found");
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* A handler's internal failure is a 500 problem that reveals nothing. */
START_TEST(internal_error)
{
	struct it_proc p;
	struct it_resp r;
	char u[128];
	url(u, sizeof u, start_testd(&p), "/fail");
	it_http(&r, "GET", u, NULL, NULL, 0);
	assert_problem(&r, 500, "internal_error");
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* The reply convention (common/http.h) at the server's edge, every
 * combination of what a handler queued (nothing, one response, a refused
 * second one) and what it returned, against a model: a queued response
 * stands and is the only one sent; with none, the client gets a 500
 * problem; a 5xx always has its access-log line; a handler that says it
 * replied or suspended without having done so is named in the log, as is
 * a second response. */
START_TEST(reply_convention)
{
	static const char *const results[] = { "replied", "suspended", "failed", "passed" };
	struct it_proc p;
	struct it_resp r;
	char u[160], rid[64], hdr[96];
	int port = start_testd(&p);

	for (int n = 0; n <= 2; n++)
		for (size_t k = 0; k < sizeof results / sizeof results[0]; k++) {
			const char *const headers[] = { hdr, NULL };
			snprintf(rid, sizeof rid, "conv-%s-%d", results[k], n);
			snprintf(hdr, sizeof hdr, "X-Request-Id: %s", rid);
			snprintf(u, sizeof u, "http://127.0.0.1:%d/convention?result=%s&replies=%d", port,
			         results[k], n);
			it_http(&r, "GET", u, headers, NULL, 0);
			if (n == 0) {
				assert_problem(&r, 500, "internal_error");
			} else {
				ck_assert_msg(r.status == 200, "%s: status %ld", rid, r.status);
				ck_assert_str_eq(r.body, "{\"reply\":0}");
			}
			it_resp_free(&r);
		}
	ck_assert_int_eq(it_stop(&p), 0); /* every line is written */

	char *log = it_slurp(p.log);
	ck_assert_ptr_nonnull(log);
	for (int n = 0; n <= 2; n++)
		for (size_t k = 0; k < sizeof results / sizeof results[0]; k++) {
			char access[128];
			int broke = n == 0 && (!strcmp(results[k], "replied") || !strcmp(results[k], "suspended"));
			const char *why = !strcmp(results[k], "replied") ? "returned without a response"
			                                                 : "returned suspended without suspending";
			int found_access = 0, found_broke = 0, found_second = 0;
			snprintf(rid, sizeof rid, "\"req_id\":\"conv-%s-%d\"", results[k], n);
			snprintf(access, sizeof access, "\"msg\":\"request\",%s", rid);
			for (char *line = log; line && *line;) {
				char *end = strchr(line, '\n');
				if (end)
					*end = '\0';
				if (strstr(line, rid)) {
					found_access |= strstr(line, access) && strstr(line, "\"status\":500") &&
					                strstr(line, "\"level\":\"warn\"");
					found_broke |= strstr(line, why) != NULL;
					found_second |= strstr(line, "a second response for one request was refused") != NULL;
				}
				if (end)
					*end = '\n';
				line = end ? end + 1 : NULL;
			}
			ck_assert_msg(found_access == (n == 0), "%s: 5xx access line %d (log %s)", rid, found_access, p.log);
			ck_assert_msg(found_broke == broke, "%s: convention line %d (log %s)", rid, found_broke, p.log);
			ck_assert_msg(found_second == (n == 2), "%s: second-response line %d (log %s)", rid,
			              found_second, p.log);
		}
	free(log);
}
END_TEST

struct slow_call {
	char url[128];
	struct it_resp r;
};

static void *slow_thread(void *arg)
{
	struct slow_call *c = arg;
	it_http(&c->r, "GET", c->url, NULL, NULL, 0);
	return NULL;
}

/* SIGTERM lets requests in flight finish, refuses new connections, and
 * the process exits 0: a rolling restart loses no request. */
START_TEST(sigterm_drains)
{
	struct it_proc p;
	struct slow_call c;
	struct it_resp r;
	pthread_t t;
	char u[128];
	int port = start_testd(&p);

	url(c.url, sizeof c.url, port, "/slow?ms=3000");
	ck_assert_int_eq(pthread_create(&t, NULL, slow_thread, &c), 0);
	/* Signalled once the slow request is in its handler (waited for: a
	 * loaded machine, or valgrind, may take long to get it there). */
	url(u, sizeof u, port, "/slow/started");
	for (long t0 = it_now_ms();; usleep(20 * 1000)) {
		it_http(&r, "GET", u, NULL, NULL, 0);
		json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
		int started = json_integer_value(json_object_get(j, "started")) >= 1;
		json_decref(j);
		it_resp_free(&r);
		if (started)
			break;
		ck_assert_msg(it_now_ms() - t0 < 30000, "the slow request never reached its handler");
	}
	kill(p.pid, SIGTERM);
	/* New connections are refused soon after, while the slow one drains. */
	url(u, sizeof u, port, "/healthz");
	for (long t0 = it_now_ms();; usleep(20 * 1000)) {
		it_http(&r, "GET", u, NULL, NULL, 0);
		long st = r.status;
		it_resp_free(&r);
		if (st == 0)
			break; /* not accepted any more */
		ck_assert_msg(it_now_ms() - t0 < 10000, "still accepting connections 10 s after SIGTERM");
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(c.r.status, 200);
	ck_assert_str_eq(c.r.body, "{\"slept_ms\":3000}");
	it_resp_free(&c.r);
	ck_assert_int_eq(it_wait(&p, 10000), 0);
}
END_TEST

/* /metrics counts requests by route and status in Prometheus format. */
START_TEST(metrics)
{
	struct it_proc p;
	struct it_resp r;
	char u[128];
	int port = start_testd(&p);
	url(u, sizeof u, port, "/items/x");
	for (int i = 0; i < 3; i++) {
		it_http(&r, "GET", u, NULL, NULL, 0);
		it_resp_free(&r);
	}
	url(u, sizeof u, port, "/nowhere");
	it_http(&r, "GET", u, NULL, NULL, 0);
	it_resp_free(&r);
	/* A request is counted when libmicrohttpd reports it complete, which can
	 * be just after its client has the response: poll briefly. */
	url(u, sizeof u, port, "/metrics");
	for (int i = 0; i < 100; i++) {
		it_http(&r, "GET", u, NULL, NULL, 0);
		ck_assert_int_eq(r.status, 200);
		if (strstr(r.body, "route=\"/items/{id}\",status=\"200\"} 3\n") &&
		    strstr(r.body, "route=\"unmatched\",status=\"404\"} 1\n"))
			break;
		it_resp_free(&r);
		usleep(20000);
	}
	ck_assert_ptr_nonnull(strstr(r.body, "http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "http_request_duration_seconds_count{method=\"GET\",route=\"/items/{id}\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "process_resident_memory_bytes{service=\"http-testd\"}"));
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

Suite *http_layer_suite(void)
{
	Suite *s = suite_create("http-layer");
	TCase *tc = tcase_create("http");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, echo_roundtrip);
	tcase_add_test(tc, request_id);
	tcase_add_test(tc, body_limit_declared);
	tcase_add_test(tc, body_limit_chunked);
	tcase_add_test(tc, bad_bodies);
	tcase_add_test(tc, routing);
	tcase_add_test(tc, internal_error);
	tcase_add_test(tc, reply_convention);
	tcase_add_test(tc, sigterm_drains);
	tcase_add_test(tc, metrics);
	suite_add_tcase(s, tc);
	return s;
}
