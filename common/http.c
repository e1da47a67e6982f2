/* HTTP server layer: libmicrohttpd in thread-pool mode, each worker
 * thread with its own poll() loop. Not epoll: libmicrohttpd 0.9.75's
 * MHD_quiesce_daemon races an epoll worker that drops the listening socket
 * from its set at the same moment, and aborts the process ("Failed to
 * remove listen FD from epoll set") on a SIGTERM under load. Its poll()
 * workers are told through their inter-thread channel instead.
 *
 * A request's state (struct http_req) is created on the first callback and
 * freed only in the completion notification, as libmicrohttpd's examples
 * do. A response is never queued while an upload is still arriving, except
 * to refuse it outright before reading any of it (a declared Content-Length
 * over the limit, a path that is not UTF-8, credentials the route refuses),
 * in which case libmicrohttpd closes the connection after answering. So a
 * request with a body is authenticated on its first callback: a client
 * without credentials cannot make the server hold its body.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * sends its request a byte at a time (slowloris) is never idle, nor is one
 * that reads its response a byte at a time. A watchdog thread therefore
 * closes every connection whose request has not arrived whole (line,
 * headers and body) within that same timeout, and resets every connection
 * whose response has not been delivered whole (to the client, not only to
 * the kernel's send buffer) within the response timeout; for a streamed
 * response, within the timeout of its last progress (http_reply_stream). */
#include "http.h"
#include "log.h"
#include "metrics.h"

#include <microhttpd.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EXTRA_HEADERS 12
#define REQ_ID_MAX 64

/* A client connection, as the watchdog sees it. */
struct http_conn {
	struct http_conn *prev, *next;
	MHD_socket fd;
	/* When it started waiting for a request to arrive whole (accepted, or
	 * the previous request completed); 0 while a request is handled. */
	_Atomic uint64_t waiting_since_us;
	/* When its latest response was queued; 0 once delivered (handed whole
	 * to the kernel, `sent`, and the kernel's send queue empty). */
	_Atomic uint64_t response_since_us;
	atomic_int sent;
	/* libmicrohttpd has closed it with a response still in the kernel's
	 * send queue: `fd` is our duplicate, kept to reset the connection at
	 * the deadline (or closed once the queue is empty). */
	int lingering;
	int cut;                  /* shut down: its request did not arrive in time */
	int reset;                /* reset: its response was not delivered in time */
};

/* Most connections kept lingering at once (each holds a descriptor);
 * beyond it, the kernel finishes them alone. */
#define LINGER_MAX 1024

struct http_server {
	struct MHD_Daemon *daemon;
	struct http_server_opts o;
	struct metrics *metrics;
	uint16_t port;
	atomic_int inflight;
	atomic_int draining;

	pthread_mutex_t conns_lock;
	struct http_conn conns;   /* list head; guarded by conns_lock */
	int nlingering;           /* guarded by conns_lock */
	pthread_t watchdog;
	int watchdog_started;
	atomic_int watchdog_stop;
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	enum route_result found;
	struct route_match m;
	char id[REQ_ID_MAX + 1];
	uint64_t start_us;
	char log_tenant[64];      /* for the access log; "" when not known */
	char log_key[64];

	char *body;
	size_t body_len, body_cap;
	size_t refused_bytes;     /* body bytes dropped: past the route's limit, or after an early refusal */
	int too_large;
	int bad_text;             /* the path or query is not UTF-8 once decoded */
	int ambiguous_length;     /* both Content-Length and Transfer-Encoding */

	unsigned status;          /* 0 until a response is queued */
	int nhdr;
	char *hdr[MAX_EXTRA_HEADERS][2];

	int authed;               /* the route's authentication passed */
	void *auth;
	void (*auth_free)(void *);
	void *state;
	void (*state_free)(void *);
	int suspended;            /* parked by the handler's last invocation */
	int stream_broken;        /* its streamed response ended without its last chunk */
};

/* A client that keeps streaming a chunked body past its limit is cut off
 * after this many extra bytes rather than read forever. */
#define REFUSED_BODY_SLACK (256 * 1024)

/* After the drain deadline, how long the requests made to give up have to
 * send their answers before every connection is closed. */
#define DRAIN_GRACE_US 1000000u

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The watchdog's record of `conn` (NULL when it is not watched). */
static struct http_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void http_signals_block(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int http_signals_wait(void)
{
	sigset_t set;
	int sig = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	while (sigwait(&set, &sig) != 0)
		;
	return sig;
}

/* ---- request id ---- */

static int valid_req_id(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= REQ_ID_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return 0;
	}
	return n > 0;
}

/* Request ids are for correlation, not security: a per-thread generator
 * (splitmix64) seeded once from OpenSSL, instead of the DRBG per request. */
static void new_req_id(char *out)
{
	static const char hex[] = "0123456789abcdef";
	static _Thread_local uint64_t state;
	unsigned char raw[12];
	if (!state && RAND_bytes((unsigned char *)&state, sizeof state) != 1)
		state = now_us() ^ (uint64_t)(uintptr_t)&state;
	for (size_t i = 0; i < sizeof raw; i += 6) {
		uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
		z ^= z >> 31;
		memcpy(raw + i, &z, 6);
	}
	for (size_t i = 0; i < sizeof raw; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * sizeof raw] = '\0';
}

/* ---- responses ---- */

int http_add_header(struct http_req *req, const char *name, const char *value)
{
	if (req->nhdr == MAX_EXTRA_HEADERS)
		return -1;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -1;
	}
	req->hdr[req->nhdr][0] = n;
	req->hdr[req->nhdr][1] = v;
	req->nhdr++;
	return 0;
}

/* Adds the headers every response carries and queues `resp` (destroyed
 * here either way). HTTP_REPLIED when queued, HTTP_FAILED otherwise. */
static enum http_result queue_response(struct http_req *req, unsigned status, const char *ctype,
                                       struct MHD_Response *resp)
{
	enum http_result ret = HTTP_FAILED;
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	for (int i = 0; i < req->nhdr; i++)
		MHD_add_response_header(resp, req->hdr[i][0], req->hdr[i][1]);
	if (atomic_load(&req->srv->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (MHD_queue_response(req->conn, status, resp) == MHD_YES) {
		req->status = status;
		ret = HTTP_REPLIED;
		/* The response deadline starts (again, on a connection whose
		 * previous response may still be on its way). */
		struct http_conn *c = conn_of(req->conn);
		if (c) {
			atomic_store(&c->sent, 0);
			atomic_store(&c->response_since_us, now_us());
		}
	}
	MHD_destroy_response(resp);
	return ret;
}

/* Queues a response. The body is either copied (`owned` 0, no release),
 * handed over as malloc'd memory (`owned` 1), or shared (`release` set:
 * called with `cls` once libmicrohttpd is done with it). Ownership passes
 * on every path, success or not. */
static enum http_result queue_body(struct http_req *req, unsigned status, const char *ctype,
                                   void *data, size_t len, int owned, void (*release)(void *),
                                   void *cls)
{
	struct MHD_Response *resp;
	enum http_result ret = HTTP_FAILED;

	if (req->status) {
		log_error(req->id, "a second response for one request was refused (status %u)", status);
		goto out;
	}
	if (release)
		resp = MHD_create_response_from_buffer_with_free_callback_cls(len, data, release, cls);
	else
		resp = MHD_create_response_from_buffer(len, data,
		                                       owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (!resp)
		goto out;
	owned = 0;
	release = NULL;
	ret = queue_response(req, status, ctype, resp);
out:
	if (owned)
		free(data);
	if (release)
		release(cls);
	return ret;
}

/* A streamed response: the caller's fill and free functions, and what the
 * reader needs to keep the watchdog's deadline moving. */
struct stream {
	struct http_req *req;     /* valid while the reader is called */
	struct http_conn *conn;   /* the watchdog's record (NULL: unwatched) */
	http_fill_fn fill;
	void (*free_fn)(void *);
	void *cls;
};

/* libmicrohttpd's content reader. Each call is progress: the response
 * deadline restarts before and after the fill, so that the response
 * timeout bounds a stall (a client that stops reading, a fill that hangs),
 * never the length of the whole transfer. */
static struct log_ctx req_log_ctx(const struct http_req *req);

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	(void)pos;
	if (s->conn)
		atomic_store(&s->conn->response_since_us, now_us());
	/* What the fill and the layers under it write names the request. */
	struct log_ctx prev = log_ctx_set(req_log_ctx(s->req));
	long n = s->fill(s->cls, buf, max);
	log_ctx_set(prev);
	if (s->conn)
		atomic_store(&s->conn->response_since_us, now_us());
	if (n == HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n <= 0 || (size_t)n > max) {
		/* 0 would make libmicrohttpd call again at once, for ever: a
		 * fill that has nothing is broken, as one that says so. */
		if (n != HTTP_STREAM_BROKEN)
			log_error(s->req->id, "a stream's fill returned %ld for a buffer of %zu bytes", n, max);
		s->req->stream_broken = 1;
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	if (s->free_fn)
		s->free_fn(s->cls);
	free(s);
}

/* The block libmicrohttpd asks a stream for at most (it may ask less: what
 * the connection's write buffer has room for). */
#define STREAM_BLOCK (32 * 1024)

enum http_result http_reply_stream(struct http_req *req, unsigned status, const char *content_type,
                                   http_fill_fn fill, void (*free_fn)(void *), void *cls)
{
	struct stream *s = NULL;
	struct MHD_Response *resp = NULL;
	enum http_result ret = HTTP_FAILED;

	if (req->status) {
		log_error(req->id, "a second response for one request was refused (status %u)", status);
		goto out;
	}
	if (!(s = calloc(1, sizeof *s)))
		goto out;
	*s = (struct stream){ .req = req, .conn = conn_of(req->conn), .fill = fill, .free_fn = free_fn, .cls = cls };
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, s, stream_free);
	if (!resp)
		goto out;
	s = NULL;       /* the response frees it, and calls free_fn */
	free_fn = NULL;
	ret = queue_response(req, status, content_type, resp);
out:
	free(s);
	if (free_fn)
		free_fn(cls);
	return ret;
}

static enum http_result queue(struct http_req *req, unsigned status, const char *ctype, void *data,
                              size_t len, int owned)
{
	return queue_body(req, status, ctype, data, len, owned, NULL, NULL);
}

enum http_result http_reply_shared(struct http_req *req, unsigned status, const char *content_type,
                                   const void *data, size_t len, void (*release)(void *), void *cls)
{
	return queue_body(req, status, content_type, (void *)data, len, 0, release, cls);
}

enum http_result http_reply_raw(struct http_req *req, unsigned status, const char *content_type,
                                const void *data, size_t len)
{
	return queue(req, status, content_type, (void *)data, len, 0);
}

static enum http_result reply_json_typed(struct http_req *req, unsigned status, json_t *body,
                                         const char *ctype)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	if (!text)
		return HTTP_FAILED;
	return queue(req, status, ctype, text, strlen(text), 1);
}

enum http_result http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
	return reply_json_typed(req, status, body, "application/json");
}

enum http_result http_reply_problem_ex(struct http_req *req, enum problem_code code, json_t *extra,
                                       const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);

	json_t *body = problem_body(code, detail, req->id);
	if (extra) {
		json_object_update_missing(body, extra);
		json_decref(extra);
	}
	return reply_json_typed(req, problem_info(code)->status, body, "application/problem+json");
}

enum http_result http_reply_invalid_field(struct http_req *req, const char *field, const char *fmt, ...)
{
	char detail[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return http_reply_problem_ex(req, PROB_VALIDATION, json_pack("{ss}", "field", field), "%s", detail);
}

const char *http_req_bearer(const struct http_req *req)
{
	const char *h = http_req_header(req, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);
	return n > 0 && n <= HTTP_BEARER_MAX ? h : NULL;
}

enum http_result http_reply_invalid(struct http_req *req, const struct jsonx_err *err)
{
	json_t *extra = err->field[0] ? json_pack("{ss}", "field", err->field) : NULL;
	return http_reply_problem_ex(req, PROB_VALIDATION, extra, "%s", err->msg);
}

/* ---- request accessors ---- */

const char *http_req_method(const struct http_req *req) { return req->method; }
const char *http_req_path(const struct http_req *req) { return req->path; }
const char *http_req_id(const struct http_req *req) { return req->id; }
void *http_req_app(const struct http_req *req) { return req->srv->o.app; }
void *http_req_auth(const struct http_req *req) { return req->auth; }

const struct sockaddr *http_req_peer(const struct http_req *req)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci ? ci->client_addr : NULL;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
	return route_param(&req->m, name);
}

const char *http_req_query(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The query's parameters in the order sent, up to the array's size. */
struct query_walk {
	const char *want;         /* NULL: every name; else this name or, with prefix, names under it */
	int prefix;
	const char **names, **vals;
	size_t n, max, total;
};

static enum MHD_Result query_walk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct query_walk *w = cls;
	(void)kind;
	if (!*key && !value)
		return MHD_YES; /* "?&a=1", "?a=1&": an empty piece is no parameter */
	if (w->want && (w->prefix ? strncmp(key, w->want, strlen(w->want)) != 0 : strcmp(key, w->want) != 0))
		return MHD_YES;
	if (w->n < w->max) {
		if (w->names)
			w->names[w->n] = key;
		w->vals[w->n] = value;
		w->n++;
	}
	w->total++;
	return MHD_YES;
}

int http_req_query_values(const struct http_req *req, const char *name, const char **vals, int max)
{
	struct query_walk w = { .want = name, .vals = vals, .max = max > 0 ? (size_t)max : 0 };
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
	return (int)w.total;
}

int http_req_query_prefixed(const struct http_req *req, const char *prefix, const char **names,
                            const char **vals, int max)
{
	struct query_walk w = { .want = prefix, .prefix = 1, .names = names, .vals = vals,
		                .max = max > 0 ? (size_t)max : 0 };
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
	return (int)w.total;
}

/* Refuses a query parameter the route does not declare (route.h), a step:
 * a typo must not widen a filter into "everything". */
static enum http_step check_query(struct http_req *req, const struct http_route *r)
{
	const char *names[ROUTE_QUERY_PARAMS_MAX + 1], *vals[ROUTE_QUERY_PARAMS_MAX + 1];
	struct query_walk w = { .names = names, .vals = vals, .max = ROUTE_QUERY_PARAMS_MAX + 1 };
	size_t bad;

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
	enum route_query_fault f = route_query_check(r->query, names, vals, w.n, &bad);
	if (f == ROUTE_QUERY_OK)
		return HTTP_GO_ON;
	const char *name = names[bad];
	switch (f) {
	case ROUTE_QUERY_UNKNOWN:
		http_reply_invalid_field(req, name, "Unknown query parameter '%.200s': %s %s %s.", name, r->method,
		                         r->pattern, r->query ? "does not take it" : "takes no query parameter");
		break;
	case ROUTE_QUERY_REPEATED:
		http_reply_invalid_field(req, name, "The query parameter '%.200s' may be given only once.", name);
		break;
	case ROUTE_QUERY_TOO_MANY:
		http_reply_invalid_field(req, name, "The query parameter '%.200s' may be given at most %d times.",
		                         name, ROUTE_QUERY_VALUES_MAX);
		break;
	case ROUTE_QUERY_TOO_LONG:
		http_reply_invalid_field(req, name, "A query may have at most %d parameters; '%.200s' is one too many.",
		                         ROUTE_QUERY_PARAMS_MAX, name);
		break;
	default:
		http_reply_invalid_field(req, name, "The query parameter '%.200s' has no value: write %.200s=<value>.",
		                         name, name);
		break;
	}
	return HTTP_ANSWERED;
}

/* 1 when a media range's parameters (from after the type to the end of
 * the element) give it q=0: the client refuses the type. */
static int accept_q_zero(const char *p, const char *end)
{
	for (; p < end; p++) {
		if (*p != ';')
			continue;
		while (p + 1 < end && (p[1] == ' ' || p[1] == '\t'))
			p++;
		if (end - p >= 4 && (p[1] == 'q' || p[1] == 'Q') && p[2] == '=') {
			const char *v = p + 3;
			if (v >= end || *v != '0')
				return 0;
			for (v++; v < end && (*v == '.' || *v == '0'); v++)
				;
			return v == end || *v == ';' || *v == ' ' || *v == '\t';
		}
	}
	return 0;
}

/* The format an Accept header names: exactly one of text/csv and
 * application/x-ndjson listed (not refused with q=0). -1 otherwise:
 * neither (a wildcard says nothing about which), or both. */
int http_accept_lists(const char *accept, const char *type)
{
	size_t want = strlen(type);
	for (const char *p = accept; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *t = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - t);
		const char *params = p;
		while (*p && *p != ',')
			p++;
		if (n == want && !strncasecmp(t, type, n) && !accept_q_zero(params, p))
			return 1;
	}
	return 0;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct last_header {
	const char *name, *value;
};

static enum MHD_Result on_header_line(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct last_header *l = cls;
	(void)kind;
	if (key && !strcasecmp(key, l->name))
		l->value = value;
	return MHD_YES;
}

const char *http_req_header_last(const struct http_req *req, const char *name)
{
	struct last_header l = { name, NULL };
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, on_header_line, &l);
	return l.value;
}

const char *http_req_body(const struct http_req *req, size_t *len)
{
	*len = req->body_len;
	return req->body ? req->body : "";
}

void http_req_set_log_ids(struct http_req *req, const char *tenant, const char *key_id)
{
	snprintf(req->log_tenant, sizeof req->log_tenant, "%s", tenant ? tenant : "");
	snprintf(req->log_key, sizeof req->log_key, "%s", key_id ? key_id : "");
}

void http_req_set_auth(struct http_req *req, void *ctx, void (*free_fn)(void *))
{
	if (req->auth && req->auth_free)
		req->auth_free(req->auth);
	req->auth = ctx;
	req->auth_free = free_fn;
}

void http_req_set_state(struct http_req *req, void *state, void (*free_fn)(void *))
{
	if (req->state && req->state_free)
		req->state_free(req->state);
	req->state = state;
	req->state_free = free_fn;
}

void *http_req_state(const struct http_req *req) { return req->state; }

void http_req_suspend(struct http_req *req)
{
	req->suspended = 1;
	MHD_suspend_connection(req->conn);
}

void http_req_resume(struct http_req *req)
{
	MHD_resume_connection(req->conn);
}

enum http_step http_req_json_object(struct http_req *req, json_t **out)
{
	const char *ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct jsonx_err err;
	size_t n = strlen("application/json");

	*out = NULL;
	if (!ct || strncasecmp(ct, "application/json", n) != 0 || (ct[n] && ct[n] != ';' && ct[n] != ' '))
		return http_reply_problem(req, PROB_UNSUPPORTED_MEDIA_TYPE,
		                          "Send the body as Content-Type: application/json."), HTTP_ANSWERED;
	json_t *v = jsonx_parse(req->body ? req->body : "", req->body_len, 0, &err);
	if (!v)
		return http_reply_problem(req, PROB_INVALID_JSON, "%s", err.msg), HTTP_ANSWERED;
	if (!json_is_object(v)) {
		json_decref(v);
		return http_reply_problem(req, PROB_INVALID_JSON, "The body must be a JSON object."), HTTP_ANSWERED;
	}
	*out = v;
	return HTTP_GO_ON;
}

/* ---- built-in handlers ---- */

enum http_result http_handle_healthz(struct http_req *req)
{
	return http_reply_json(req, 200, json_pack("{ss}", "status", "ok"));
}

enum http_result http_handle_metrics(struct http_req *req)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return HTTP_FAILED;
	metrics_render(req->srv->metrics, req->srv->o.service, f);
	if (req->srv->o.metrics_extra)
		req->srv->o.metrics_extra(f, req->srv->o.app);
	if (fclose(f) != 0) {
		free(buf);
		return HTTP_FAILED;
	}
	return queue(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, 1);
}

/* ---- libmicrohttpd callbacks ---- */

/* Runs the service's authentication for route `r` once per request: a
 * request authenticated before its body arrived, or on a first run before
 * it was parked, is not asked again, so that work already done for it is
 * answered for. Returns HTTP_GO_ON, HTTP_PARKED when the hook parked it,
 * or HTTP_ANSWERED once an answer is queued (a 500 when the hook queued
 * none, or returned HTTP_PARKED without suspending). */
static enum http_step authenticate(struct http_req *req, const struct http_route *r)
{
	if (!r->auth || req->authed || !req->srv->o.authenticate)
		return HTTP_GO_ON;
	req->suspended = 0;
	enum http_step step = req->srv->o.authenticate(req, r->auth);
	if (step == HTTP_PARKED && req->suspended && !req->status)
		return HTTP_PARKED; /* asked again once resumed */
	if (step != HTTP_GO_ON) {
		if (!req->status)
			http_reply_problem(req, PROB_INTERNAL, "Authentication failed unexpectedly.");
		return HTTP_ANSWERED;
	}
	req->authed = 1;
	return HTTP_GO_ON;
}

static void dispatch(struct http_req *req)
{
	if (req->ambiguous_length) {
		/* RFC 9112, 6.3: a possible request smuggling; never keep the
		 * connection, whose next bytes cannot be trusted. */
		http_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
		http_reply_problem(req, PROB_BAD_REQUEST,
		                   "Send either Content-Length or Transfer-Encoding, not both.");
		return;
	}
	if (req->bad_text) {
		http_reply_problem(req, PROB_BAD_REQUEST,
		                   "The path and query parameters must be UTF-8 without NUL once percent-decoded.");
		return;
	}
	if (req->found == ROUTE_NOT_FOUND) {
		http_reply_problem(req, PROB_NOT_FOUND, "No route for %s %s.", req->method, req->path);
		return;
	}
	if (req->found == ROUTE_BAD_METHOD) {
		http_add_header(req, MHD_HTTP_HEADER_ALLOW, req->m.allow);
		http_reply_problem(req, PROB_METHOD_NOT_ALLOWED, "%s is not allowed here; allowed: %s.",
		                   req->method, req->m.allow);
		return;
	}
	const struct http_route *r = &req->srv->o.routes[req->m.route];

	if (req->too_large) {
		http_reply_problem(req, PROB_BODY_TOO_LARGE,
		                   "The body is larger than this route's limit of %zu bytes.", r->body_limit);
		return;
	}
	if (authenticate(req, r) != HTTP_GO_ON || check_query(req, r) != HTTP_GO_ON)
		return;
	req->suspended = 0;
	enum http_result rc = r->handler(req);
	if (rc == HTTP_SUSPENDED && req->suspended && !req->status)
		return; /* parked: the handler runs again once resumed */
	if (!req->status) {
		/* HTTP_FAILED, or a handler's mistake: the reply convention (http.h). */
		if (rc == HTTP_REPLIED)
			log_error(req->id, "handler of %s %s returned without a response", r->method, r->pattern);
		else if (rc == HTTP_SUSPENDED)
			log_error(req->id, "handler of %s %s returned suspended without suspending", r->method,
			          r->pattern);
		http_reply_problem(req, PROB_INTERNAL, "An internal error occurred; it has been logged.");
	}
}

/* ---- the watchdog ---- */

/* Marks the connection's request as arrived whole (1: the watchdog leaves
 * it alone) or the connection as waiting for the next one (0). */
static void conn_receiving_done(struct MHD_Connection *conn, int done)
{
	struct http_conn *c = conn_of(conn);
	if (c)
		atomic_store(&c->waiting_since_us, done ? 0 : now_us());
}

/* Bytes the kernel still holds to send on `fd` (0 when it cannot tell). */
static int send_queued(MHD_socket fd)
{
	int n = 0;
	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : 0;
}

/* Ends the connection at once: a reset, so that what the kernel still
 * holds for a slow reader is dropped rather than sent on after the close.
 * libmicrohttpd sees the end of the stream and closes its side. */
static void conn_reset(MHD_socket fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	shutdown(fd, SHUT_RDWR);
}

static void unlink_conn(struct http_conn *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	struct http_conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = calloc(1, sizeof *c);
		if (!c || !ci) {
			free(c); /* unwatched: only the idle timeout applies */
			return;
		}
		c->fd = ci->connect_fd;
		atomic_store(&c->waiting_since_us, now_us());
		pthread_mutex_lock(&srv->conns_lock);
		c->next = srv->conns.next;
		c->prev = &srv->conns;
		c->next->prev = c;
		srv->conns.next = c;
		pthread_mutex_unlock(&srv->conns_lock);
		*socket_context = c;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
		/* libmicrohttpd closes the socket only after this returns, so the
		 * watchdog never shuts down a descriptor that was reused. A
		 * response still in the kernel's send queue keeps its deadline:
		 * the watchdog keeps a duplicate of the socket until the queue is
		 * empty or the deadline resets it. */
		pthread_mutex_lock(&srv->conns_lock);
		int keep = srv->o.response_timeout_ms && !c->reset && srv->nlingering < LINGER_MAX &&
		           atomic_load(&c->response_since_us) && send_queued(c->fd) > 0;
		if (keep && (c->fd = dup(c->fd)) >= 0) {
			c->lingering = 1;
			atomic_store(&c->sent, 1);
			atomic_store(&c->waiting_since_us, 0);
			srv->nlingering++;
		} else {
			unlink_conn(c);
			free(c);
		}
		pthread_mutex_unlock(&srv->conns_lock);
		*socket_context = NULL;
	}
}

/* Forgets a lingering connection (conns_lock held). */
static void lingering_drop(struct http_server *srv, struct http_conn *c)
{
	close(c->fd);
	unlink_conn(c);
	free(c);
	srv->nlingering--;
}

static void *watchdog_main(void *arg)
{
	struct http_server *srv = arg;
	uint64_t limit_us = (uint64_t)srv->o.connection_timeout_s * 1000000u;
	uint64_t response_us = (uint64_t)srv->o.response_timeout_ms * 1000u;
	log_set_task("watchdog");
	while (!atomic_load(&srv->watchdog_stop)) {
		usleep(100 * 1000);
		uint64_t now = now_us();
		pthread_mutex_lock(&srv->conns_lock);
		for (struct http_conn *c = srv->conns.next, *next; c != &srv->conns; c = next) {
			next = c->next;
			uint64_t since = atomic_load(&c->waiting_since_us);
			if (limit_us && since && !c->cut && now - since > limit_us) {
				/* libmicrohttpd sees the end of the stream and closes it. */
				shutdown(c->fd, SHUT_RDWR);
				c->cut = 1;
			}
			uint64_t rsince = atomic_load(&c->response_since_us);
			if (!response_us || !rsince || c->reset)
				continue;
			if (atomic_load(&c->sent) && send_queued(c->fd) == 0) {
				/* Delivered. A response queued meanwhile changed the time. */
				atomic_compare_exchange_strong(&c->response_since_us, &rsince, 0);
				if (c->lingering)
					lingering_drop(srv, c);
			} else if (now - rsince > response_us) {
				static struct log_limit resets;
				log_write_limited(&resets, LOG_INFO, NULL, NULL,
				                  "a response was not delivered within %u ms: connection reset",
				                  srv->o.response_timeout_ms);
				conn_reset(c->fd);
				c->reset = 1;
				if (c->lingering)
					lingering_drop(srv, c);
			}
		}
		pthread_mutex_unlock(&srv->conns_lock);
	}
	return NULL;
}

static void watchdog_stop(struct http_server *srv)
{
	if (!srv->watchdog_started)
		return;
	atomic_store(&srv->watchdog_stop, 1);
	pthread_join(srv->watchdog, NULL);
	srv->watchdog_started = 0;
}

/* Closes the duplicates of lingering connections (once libmicrohttpd has
 * stopped: no other entry is left). The kernel finishes sending them. */
static void lingering_close(struct http_server *srv)
{
	pthread_mutex_lock(&srv->conns_lock);
	for (struct http_conn *c = srv->conns.next, *next; c != &srv->conns; c = next) {
		next = c->next;
		if (c->lingering)
			lingering_drop(srv, c);
	}
	pthread_mutex_unlock(&srv->conns_lock);
}

/* 1 when `str` is UTF-8: no stray continuation bytes, overlong forms,
 * surrogates or code points past U+10FFFF. */
static int valid_utf8(const char *str)
{
	for (const unsigned char *s = (const unsigned char *)str; *s;) {
		size_t n;
		if (s[0] < 0x80)
			n = 1;
		else if (s[0] >= 0xC2 && s[0] <= 0xDF)
			n = 2;
		else if (s[0] >= 0xE0 && s[0] <= 0xEF)
			n = 3;
		else if (s[0] >= 0xF0 && s[0] <= 0xF4)
			n = 4;
		else
			return 0;
		for (size_t i = 1; i < n; i++)
			if ((s[i] & 0xC0) != 0x80)
				return 0; /* also stops at the terminating NUL */
		if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
		    (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
			return 0;
		s += n;
	}
	return 1;
}

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
	int *bad = cls;
	(void)kind;
	if (!valid_utf8(key) || (value && !valid_utf8(value))) {
		*bad = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

/* Called on the first callback of a request, once its headers are in. */
static enum MHD_Result begin(struct http_req *req)
{
	const char *rid = http_req_header(req, "X-Request-Id");
	if (rid && valid_req_id(rid))
		snprintf(req->id, sizeof req->id, "%s", rid);
	else
		new_req_id(req->id);

	/* Handlers and the database take parameters as UTF-8 text. */
	req->bad_text = !valid_utf8(req->path);
	if (!req->bad_text)
		MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_arg, &req->bad_text);
	req->found = route_find(req->srv->o.routes, req->srv->o.nroutes, req->method, req->path, &req->m);
	const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && http_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		req->ambiguous_length = 1; /* refused before reading a byte of it */
		conn_receiving_done(req->conn, 1);
		dispatch(req);
		return MHD_YES;
	}
	if (req->found != ROUTE_FOUND)
		return MHD_YES; /* answered once the request is read, keeping the connection */
	const struct http_route *r = &req->srv->o.routes[req->m.route];
	unsigned long long declared = 0;
	char *end = NULL;
	if (cl)
		declared = strtoull(cl, &end, 10);
	/* A request that brings a body is refused before a byte of it is read
	 * when the refusal does not depend on it: its path's text, then its
	 * credentials, then its declared length. Such an early answer closes
	 * the connection, so requests without a body are answered once read,
	 * as before, and keep it. */
	int has_body = http_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) || declared > 0 ||
	               (cl && *end != '\0');
	/* A hook parks only requests without a body (http.h). */
	if (has_body && (req->bad_text || authenticate(req, r) != HTTP_GO_ON)) {
		conn_receiving_done(req->conn, 1);
		if (!req->status)
			dispatch(req); /* the path's text */
		return MHD_YES;
	}
	if (cl && *end == '\0' && declared > r->body_limit) {
		req->too_large = 1;
		conn_receiving_done(req->conn, 1);
		dispatch(req);
	}
	return MHD_YES;
}

/* The request's log context: its id (set first thing in begin()), and its
 * tenant and key once its authentication names them. */
static struct log_ctx req_log_ctx(const struct http_req *req)
{
	return (struct log_ctx){ .req_id = req->id, .tenant = req->log_tenant, .key_id = req->log_key };
}

static enum MHD_Result request_step(struct http_server *srv, struct MHD_Connection *conn,
                                    const char *url, const char *method, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
	struct http_req *req = *con_cls;

	if (!req) {
		req = calloc(1, sizeof *req);
		if (!req)
			return MHD_NO;
		req->srv = srv;
		req->conn = conn;
		req->method = method;
		req->path = url;
		req->start_us = now_us();
		*con_cls = req;
		atomic_fetch_add(&srv->inflight, 1);
		log_ctx_set(req_log_ctx(req));
		return begin(req);
	}
	log_ctx_set(req_log_ctx(req));
	if (req->status) {
		/* Already answered (refused early): drop whatever still arrives,
		 * and stop reading past the slack a refused body gets. */
		req->refused_bytes += *upload_data_size;
		*upload_data_size = 0;
		return req->refused_bytes > REFUSED_BODY_SLACK ? MHD_NO : MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		size_t limit = req->found == ROUTE_FOUND ? srv->o.routes[req->m.route].body_limit : 0;
		*upload_data_size = 0;
		if (req->too_large || req->body_len + n > limit) {
			req->too_large = 1;
			req->refused_bytes += n;
			return req->refused_bytes > REFUSED_BODY_SLACK ? MHD_NO : MHD_YES;
		}
		if (req->body_len + n + 1 > req->body_cap) {
			size_t cap = req->body_cap ? req->body_cap : 1024;
			while (cap < req->body_len + n + 1)
				cap *= 2;
			if (cap > limit + 1)
				cap = limit + 1;
			char *b = realloc(req->body, cap);
			if (!b)
				return MHD_NO;
			req->body = b;
			req->body_cap = cap;
		}
		memcpy(req->body + req->body_len, upload_data, n);
		req->body_len += n;
		req->body[req->body_len] = '\0';
		return MHD_YES;
	}
	conn_receiving_done(conn, 1);
	dispatch(req);
	return MHD_YES;
}

/* Every line written while a request is worked on names it: the context
 * is the request's for the call, whatever the handler and the helpers it
 * calls write. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	struct log_ctx prev = log_ctx_get();
	enum MHD_Result rc = request_step(cls, conn, url, method, upload_data, upload_data_size, con_cls);
	log_ctx_set(prev);
	return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;

	if (!req)
		return;
	struct log_ctx prev = log_ctx_set(req_log_ctx(req)); /* for the destructors' lines */
	conn_receiving_done(conn, 0); /* the next request's clock starts */
	struct http_conn *c = conn_of(conn);
	if (c && req->status)
		atomic_store(&c->sent, 1); /* in the kernel's hands; delivered once its queue is empty */
	uint64_t us = now_us() - req->start_us;
	unsigned status = req->status ? req->status : 499; /* client went away first */
	metrics_observe(srv->metrics, req->m.route, status, us);
	if (srv->o.access_log || status >= 500 || req->stream_broken)
		log_request(status >= 500 || req->stream_broken ? LOG_WARN : LOG_INFO, req->id, req->method, req->path, status,
		            (double)us / 1000.0,
		            toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? (int)toe : -1,
		            req->log_tenant[0] ? req->log_tenant : NULL, req->log_key[0] ? req->log_key : NULL);
	for (int i = 0; i < req->nhdr; i++) {
		free(req->hdr[i][0]);
		free(req->hdr[i][1]);
	}
	if (req->auth && req->auth_free)
		req->auth_free(req->auth);
	if (req->state && req->state_free)
		req->state_free(req->state);
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
	log_ctx_set(prev);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding of the path and of query arguments, as libmicrohttpd's
 * own except for %00: a decoded NUL would silently cut the text short
 * ("/v1/events/x%00y" served as "/v1/events/x"), so it becomes 0xFF, a
 * byte that is never UTF-8, and the request is refused (begin()). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *r = s, *w = s;
	(void)cls, (void)conn;
	while (*r) {
		int hi, lo;
		if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0) {
			*w++ = (hi | lo) ? (char)(hi << 4 | lo) : (char)0xFF;
			r += 3;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* libmicrohttpd's messages, limited per kind: its format string (a
 * literal of the library) names the kind, so that every client sending
 * garbage cannot flood the log and one kind cannot hide another. */
#define MHD_LOG_KINDS 64

/* libmicrohttpd stops the process on an internal error it cannot go on
 * from (abort(), by default silently): the reason is written first, so
 * that an exit by SIGABRT says where and why. */
static void mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
	(void)cls;
	fprintf(stderr, "libmicrohttpd panic at %s:%u: %s\n", file ? file : "?", line,
	        reason ? reason : "(no reason given)");
	fflush(stderr);
	abort();
}

static struct {
	_Atomic(const char *) fmt;
	struct log_limit limit;
} mhd_log_kinds[MHD_LOG_KINDS + 1]; /* the last one takes the kinds beyond */

static struct log_limit *mhd_log_limit(const char *fmt)
{
	size_t h = (size_t)((uintptr_t)fmt >> 3) % MHD_LOG_KINDS;
	for (size_t i = 0; i < MHD_LOG_KINDS; i++, h = (h + 1) % MHD_LOG_KINDS) {
		const char *cur = atomic_load(&mhd_log_kinds[h].fmt);
		if (cur == fmt)
			return &mhd_log_kinds[h].limit;
		if (!cur) {
			if (atomic_compare_exchange_strong(&mhd_log_kinds[h].fmt, &cur, fmt) || cur == fmt)
				return &mhd_log_kinds[h].limit;
		}
	}
	return &mhd_log_kinds[MHD_LOG_KINDS].limit;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* Outside a request and of a thread without a task: one of the
	 * library's own threads. */
	struct log_ctx prev = log_ctx_get();
	if (!(prev.req_id && *prev.req_id) && !prev.task)
		log_set_task("http");
	log_write_limited(mhd_log_limit(fmt), LOG_WARN, NULL, NULL, "libmicrohttpd: %s", msg);
	log_ctx_set(prev);
}

/* ---- lifecycle ---- */

struct http_server *http_server_start(const struct http_server_opts *opts, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	struct http_server *srv;
	char port[8];

	srv = calloc(1, sizeof *srv);
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->o = *opts;
	pthread_mutex_init(&srv->conns_lock, NULL);
	srv->conns.next = srv->conns.prev = &srv->conns;
	srv->metrics = metrics_new(opts->routes, opts->nroutes);
	if (!srv->metrics) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(port, sizeof port, "%u", opts->listen.port);
	int gai = getaddrinfo(opts->listen.host, port, &hints, &ai);
	if (gai) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s", opts->listen.host,
		         gai_strerror(gai));
		goto fail;
	}
	unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	MHD_set_panic_func(mhd_panic, NULL);
	srv->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads ? opts->threads : 1),
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)opts->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->connection_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts->connection_memory,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!srv->daemon) {
		char addr[80];
		cfg_addr_format(&opts->listen, addr, sizeof addr);
		snprintf(err, errlen, "cannot listen on %s (address in use or not permitted)", addr);
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : opts->listen.port;
	if (opts->connection_timeout_s > 0 || opts->response_timeout_ms > 0) {
		if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
			snprintf(err, errlen, "cannot start the connection watchdog thread");
			MHD_stop_daemon(srv->daemon);
			goto fail;
		}
		srv->watchdog_started = 1;
	}
	return srv;
fail:
	metrics_free(srv->metrics);
	pthread_mutex_destroy(&srv->conns_lock);
	free(srv);
	return NULL;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->port;
}

int http_server_drain(struct http_server *srv, unsigned timeout_ms)
{
	if (!srv->daemon)
		return 0;
	uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;
	atomic_store(&srv->draining, 1);
	if (srv->o.on_drain)
		srv->o.on_drain(srv->o.app);
	/* The listening socket comes back to us, but worker threads may still
	 * touch it: it is closed only after the daemon has stopped. */
	MHD_socket lsock = MHD_quiesce_daemon(srv->daemon);
	while (atomic_load(&srv->inflight) > 0 && now_us() < deadline)
		usleep(10000);
	int left = atomic_load(&srv->inflight);
	if (left > 0 && srv->o.on_drain_deadline) {
		/* What the hook makes stop is answered within moments; a client
		 * that does not read its answer is cut off when the daemon stops. */
		srv->o.on_drain_deadline(srv->o.app);
		uint64_t grace = now_us() + DRAIN_GRACE_US;
		while (atomic_load(&srv->inflight) > 0 && now_us() < grace)
			usleep(10000);
		left = atomic_load(&srv->inflight);
	}
	MHD_stop_daemon(srv->daemon);
	srv->daemon = NULL;
	watchdog_stop(srv);
	if (lsock != MHD_INVALID_SOCKET)
		close(lsock);
	return left;
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	watchdog_stop(srv);
	lingering_close(srv);
	metrics_free(srv->metrics);
	pthread_mutex_destroy(&srv->conns_lock);
	free(srv);
}
