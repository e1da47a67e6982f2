/* http-testd: a tiny service built on common/http, used by the integration
 * tests to exercise the HTTP layer through routes the real services do not
 * have (an echo with a small body limit, a slow route for drain tests).
 * Prints "PORT <n>" on stdout once listening; drains and exits 0 on SIGTERM. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

static enum http_result handle_echo(struct http_req *req)
{
	json_t *body;
	if (http_req_json_object(req, &body) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return http_reply_json(req, 200, body);
}

/* Slow requests that have reached their handler: a test waits for its
 * request to be in flight before it signals the process. */
static atomic_int slow_started;

static enum http_result handle_slow_started(struct http_req *req)
{
	return http_reply_json(req, 200, json_pack("{si}", "started", atomic_load(&slow_started)));
}

static enum http_result handle_slow(struct http_req *req)
{
	const char *ms = http_req_query(req, "ms");
	long n = ms ? strtol(ms, NULL, 10) : 1000;
	if (n < 0 || n > 5000)
		return http_reply_problem(req, PROB_BAD_REQUEST, "ms must be within 0..5000.");
	atomic_fetch_add(&slow_started, 1);
	usleep((useconds_t)n * 1000u);
	return http_reply_json(req, 200, json_pack("{sI}", "slept_ms", (json_int_t)n));
}

static enum http_result handle_item(struct http_req *req)
{
	return http_reply_json(req, 200, json_pack("{ss}", "id", http_req_param(req, "id")));
}

static enum http_result handle_fail(struct http_req *req)
{
	(void)req;
	return HTTP_FAILED; /* an internal failure: the layer must answer 500 */
}

/* The reply convention (http.h) from the handler's side: queues
 * ?replies= responses (0 to 2; the second is refused), then returns
 * ?result=: replied, suspended (without suspending), failed, or passed
 * (what the last reply returned; failed when there was none). */
static enum http_result handle_convention(struct http_req *req)
{
	const char *result = http_req_query(req, "result"), *replies = http_req_query(req, "replies");
	long n = replies ? strtol(replies, NULL, 10) : 0;
	enum http_result last = HTTP_FAILED;
	for (long i = 0; i < n && i < 2; i++)
		last = http_reply_json(req, i ? 409 : 200, json_pack("{si}", "reply", (int)i));
	if (!result || !strcmp(result, "passed"))
		return last;
	if (!strcmp(result, "replied"))
		return HTTP_REPLIED;
	if (!strcmp(result, "suspended"))
		return HTTP_SUSPENDED;
	return HTTP_FAILED;
}

static const char *const q_slow[] = { "ms", NULL };
static const char *const q_convention[] = { "result", "replies", NULL };

static const struct http_route routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0, NULL },
	{ "GET", "/metrics", http_handle_metrics, 0, 0, NULL },
	{ "POST", "/echo", handle_echo, 1024, 0, NULL },
	{ "GET", "/slow", handle_slow, 0, 0, q_slow },
	{ "GET", "/slow/started", handle_slow_started, 0, 0, NULL },
	{ "GET", "/items/{id}", handle_item, 0, 0, NULL },
	{ "DELETE", "/items/{id}", handle_item, 0, 0, NULL },
	{ "GET", "/fail", handle_fail, 0, 0, NULL },
	{ "GET", "/convention", handle_convention, 0, 0, q_convention },
};

int main(void)
{
	char err[256];
	struct http_server_opts o = {
		.service = "http-testd",
		.listen = { "127.0.0.1", 0 },
		.threads = 2,
		.max_connections = 64,
		.connection_timeout_s = 2,
		.connection_memory = 16384,
		.access_log = 0,
		.routes = routes,
		.nroutes = sizeof routes / sizeof routes[0],
	};

	http_signals_block();
	log_init("http-testd", LOG_WARN);
	log_set_task("main");
	struct http_server *srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		fprintf(stderr, "http-testd: %s\n", err);
		return 1;
	}
	printf("PORT %u\n", http_server_port(srv));
	fflush(stdout);
	http_signals_wait();
	int left = http_server_drain(srv, 5000);
	http_server_free(srv);
	return left ? 1 : 0;
}
