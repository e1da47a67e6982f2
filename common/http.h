/* HTTP server layer over libmicrohttpd.
 *
 * One route table per service; bodies accumulated up to the route's limit
 * (413 above it); JSON in and out; errors as application/problem+json;
 * X-Request-Id taken or generated, returned and logged; per-route metrics;
 * graceful drain on SIGTERM. Handlers never see libmicrohttpd. */
#ifndef CT_HTTP_H
#define CT_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "jsonx.h"
#include "problem.h"
#include "route.h"

/* The reply convention.
 *
 * A handler returns what it did with its request (enum http_result):
 *   HTTP_REPLIED    a response is queued. Should none be (a reply that
 *                   could not be queued and whose result was dropped),
 *                   the server logs it and answers 500.
 *   HTTP_SUSPENDED  it called http_req_suspend() and queued nothing; it
 *                   runs again once resumed. Returned without suspending
 *                   and with nothing queued, the server logs it and
 *                   answers 500.
 *   HTTP_FAILED     an internal failure: the server answers 500
 *                   (application/problem+json, internal_error) unless a
 *                   response is already queued, which then stands.
 * A request answered 5xx always gets its access-log line, at warning
 * level.
 *
 * The reply functions below return HTTP_REPLIED once their response is
 * queued and HTTP_FAILED when it could not be (for lack of memory, say, or
 * because a response was queued already: a request gets one response, a
 * second is refused and logged), so that a handler ends with
 * `return http_reply_json(...)`.
 *
 * A step that may answer for a handler (the authenticate hook, parsing
 * the body, a check of the path or the caller) returns enum http_step:
 * HTTP_GO_ON when it queued nothing and the handler goes on, or
 * HTTP_ANSWERED when the handler must return HTTP_REPLIED at once: the
 * step has queued the answer (a refusal), or tried to, or failed with
 * nothing queued, which the rules above answer with a 500. Steps that
 * other files call are marked warn_unused_result. */

struct http_server;
struct http_req;
struct sockaddr;

struct http_server_opts {
	const char *service;            /* for logs and metrics labels */
	struct cfg_addr listen;         /* port 0 picks a free port */
	unsigned threads;               /* worker threads (a poll() loop each) */
	unsigned max_connections;
	unsigned connection_timeout_s;  /* idle connections, and requests that have not
	                                 * arrived whole, are closed after this */
	unsigned response_timeout_ms;   /* a response not sent whole this long after it
	                                 * was queued has its connection reset (0: none);
	                                 * a parked request has no response yet, and a
	                                 * streamed one counts from its last progress */
	size_t connection_memory;       /* per connection; bounds request headers */
	int access_log;                 /* one log line per request (a 5xx is logged
	                                 * whatever this says) */
	const struct http_route *routes;
	size_t nroutes;
	/* Called for routes with auth != 0 before the handler, a step: returns
	 * HTTP_GO_ON, or HTTP_ANSWERED after queueing a 401/403 itself (the
	 * server answers 500 when it queued nothing). It runs once per request, as
	 * soon as the headers are in when the request brings a body (declared
	 * or chunked), so that a refused request is answered without reading a
	 * byte of its body (libmicrohttpd then closes the connection); it may
	 * look at the headers, the path and its parameters, never the body.
	 * A request without a body may also be parked here: the hook calls
	 * http_req_suspend() and returns HTTP_PARKED (nothing queued); once
	 * resumed, the hook runs again for it (its state, http_req_set_state,
	 * carried across; the hook clears it before it lets the handler run). */
	enum http_step (*authenticate)(struct http_req *req, int auth);
	/* Called when draining starts, before waiting for requests in flight:
	 * a service resumes the requests it holds suspended (may be NULL). */
	void (*on_drain)(void *app);
	/* Called once the drain deadline has passed with requests still in
	 * flight: a service makes them stop waiting (on its database, say) so
	 * that they are answered before the server stops (may be NULL). */
	void (*on_drain_deadline)(void *app);
	/* Appends service-specific metrics to GET /metrics (may be NULL). */
	void (*metrics_extra)(FILE *out, void *app);
	void *app;                      /* handed to handlers via http_req_app() */
};

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and every thread
 * it creates afterwards) and ignores SIGPIPE. Call first thing in main(). */
void http_signals_block(void);
/* Waits for one of the blocked signals; returns its number. */
int http_signals_wait(void);

/* Starts listening. Returns NULL with a sentence in `err` on failure. */
struct http_server *http_server_start(const struct http_server_opts *opts, char *err,
                                      size_t errlen);
uint16_t http_server_port(const struct http_server *srv);
/* Stops accepting connections, lets requests in flight finish (at most
 * `timeout_ms`, on_drain included), then, if some are left, calls
 * on_drain_deadline and gives them a short grace to be answered before
 * every connection is closed. A service must have resumed every request it suspended by then.
 * Returns the number of requests cut off: still running when the
 * connections were closed. */
int http_server_drain(struct http_server *srv, unsigned timeout_ms);
/* Stops (if still running) and frees. Accepts NULL. */
void http_server_free(struct http_server *srv);

/* --- request accessors; strings live as long as the request --- */
const char *http_req_method(const struct http_req *req);
const char *http_req_path(const struct http_req *req);
const char *http_req_id(const struct http_req *req);
const char *http_req_param(const struct http_req *req, const char *name);
/* The value of a query parameter given at most once (the route's
 * `query` declaration makes sure of it), or NULL when absent. */
const char *http_req_query(const struct http_req *req, const char *name);
/* The values of a repeatable query parameter ("name[]" in the route's
 * declaration), in the order sent: fills up to `max` of them into `vals`
 * and returns how many were given (at most ROUTE_QUERY_VALUES_MAX once
 * the layer has checked the query). */
int http_req_query_values(const struct http_req *req, const char *name, const char **vals, int max);
/* The parameters whose names begin with `prefix` ("metadata."), in the
 * order sent: names[i] (the whole name) and vals[i], up to `max`; returns
 * how many there are. */
int http_req_query_prefixed(const struct http_req *req, const char *prefix, const char **names,
                            const char **vals, int max);
const char *http_req_header(const struct http_req *req, const char *name);
/* The last of the header lines named `name` (case-insensitive), NULL when
 * there is none: what a proxy added after the client's own lines (a proxy
 * adds its X-Forwarded-For as a line of its own, after any the client
 * sent; http_req_header gives the first). */
const char *http_req_header_last(const struct http_req *req, const char *name);
/* 1 when the Accept header value `accept` (NULL: none) lists the media
 * type `type` exactly (case-insensitive; a wildcard does not count) and
 * does not refuse it with q=0. */
int http_accept_lists(const char *accept, const char *type);
const char *http_req_body(const struct http_req *req, size_t *len);
/* The token of "Authorization: Bearer <token>" (scheme case-insensitive),
 * or NULL when absent, empty or longer than HTTP_BEARER_MAX. */
#define HTTP_BEARER_MAX 512
const char *http_req_bearer(const struct http_req *req);
void *http_req_app(const struct http_req *req);
/* The TCP peer's address (AF_INET or AF_INET6), or NULL when unknown. No
 * forwarding header is consulted: behind a proxy this is the proxy. */
const struct sockaddr *http_req_peer(const struct http_req *req);
/* Auth context a service attaches in its authenticate hook; `free_fn` (may be
 * NULL) is called on it when the request completes. */
void http_req_set_auth(struct http_req *req, void *ctx, void (*free_fn)(void *));
void *http_req_auth(const struct http_req *req);
/* Names the caller on the request's access-log line: the tenant's id and
 * the API key's id (each may be NULL; copied, cut at 63 bytes). Never a
 * secret. */
void http_req_set_log_ids(struct http_req *req, const char *tenant, const char *key_id);

/* State a handler keeps across the invocations of one suspended request;
 * `free_fn` (may be NULL) runs when the request completes. */
void http_req_set_state(struct http_req *req, void *state, void (*free_fn)(void *));
void *http_req_state(const struct http_req *req);

/* Long polls. A handler calls http_req_suspend() and returns HTTP_SUSPENDED
 * without a response: the connection is parked without holding a worker thread.
 * Later, any thread calls http_req_resume() exactly once, and the handler
 * runs again for the same request and answers or suspends again. It is not
 * authenticated again: the authentication context of its first run stays,
 * so that work already done for it is answered for. */
void http_req_suspend(struct http_req *req);
void http_req_resume(struct http_req *req);

/* Parses the body as a JSON object, a step. Returns HTTP_GO_ON with a new
 * reference in *out (caller json_decref()s), or HTTP_ANSWERED after
 * queueing 415 or 400 (*out NULL). */
enum http_step http_req_json_object(struct http_req *req, json_t **out)
	__attribute__((warn_unused_result));

/* --- responses: HTTP_REPLIED when queued, HTTP_FAILED otherwise --- */
/* Adds a header to the response that will be queued. Copies both strings.
 * Returns 0, or -1 when out of memory or past 12 headers (then dropped). */
int http_add_header(struct http_req *req, const char *name, const char *value);
/* Queues `body` (reference stolen) as application/json. */
enum http_result http_reply_json(struct http_req *req, unsigned status, json_t *body);
/* Queues a copy of `len` bytes. */
enum http_result http_reply_raw(struct http_req *req, unsigned status, const char *content_type,
                                const void *data, size_t len);
/* Queues `len` bytes that stay owned by the caller's reference: `release`
 * (called once, from any thread) drops it when the response is done, or
 * at once when it cannot be queued. For large shared bodies that must not
 * be copied per request. */
enum http_result http_reply_shared(struct http_req *req, unsigned status, const char *content_type,
                                   const void *data, size_t len, void (*release)(void *), void *cls);
/* Streamed responses (chunked transfer), for bodies too large to build
 * in memory (an export).
 *
 * `fill` is called on a worker thread of the server each time the
 * connection can take more: it writes at most `max` bytes into `buf` and
 * returns how many (> 0), or HTTP_STREAM_END once the body is complete
 * (the terminating chunk is sent), or HTTP_STREAM_BROKEN when it cannot
 * go on (the database failed, say): the status was sent long ago, so the
 * connection is closed without the terminating chunk and the client sees
 * a truncated transfer, never a short body that looks whole; the access
 * log line is then at warning level. A fill blocks
 * the worker thread, and every other connection of that thread, while it
 * runs: keep each call short (one bounded database page).
 * `free_fn` (may be NULL) is called with `cls` exactly once, from any
 * thread: when the response is done, whether completed, broken or cut off
 * because the client went away or the server stopped, or at once when it
 * cannot be queued (then HTTP_FAILED). `fill` is never called after it.
 * The request's strings (query parameters, headers) stay valid while
 * `fill` runs; its authentication context too.
 *
 * The response timeout bounds stalls, not the whole transfer: the
 * connection is reset when `fill` has not been called (the client does
 * not read, or a fill hangs) for the server's response_timeout_ms, so
 * that an export of any length can finish while a stalled one cannot
 * hold its connection (and what the handler keeps) for ever. */
#define HTTP_STREAM_END ((long)-1)
#define HTTP_STREAM_BROKEN ((long)-2)
typedef long (*http_fill_fn)(void *cls, char *buf, size_t max);
enum http_result http_reply_stream(struct http_req *req, unsigned status, const char *content_type,
                                   http_fill_fn fill, void (*free_fn)(void *), void *cls);
/* Queues a problem document; `extra` (may be NULL, stolen) adds members. */
enum http_result http_reply_problem_ex(struct http_req *req, enum problem_code code, json_t *extra,
                                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define http_reply_problem(req, code, ...) http_reply_problem_ex(req, code, NULL, __VA_ARGS__)
/* Queues 400 validation_failed naming the field of `err`. */
enum http_result http_reply_invalid(struct http_req *req, const struct jsonx_err *err);
/* Queues 400 validation_failed with "field": `field` and the sentence. */
enum http_result http_reply_invalid_field(struct http_req *req, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Built-in handlers for the route tables. */
enum http_result http_handle_healthz(struct http_req *req);
enum http_result http_handle_metrics(struct http_req *req);

#endif
