/* Fixtures the integration suites share, above the harness of it.h: an
 * answer as a suite checks it (struct res) and the checks the suites make
 * of answers. cpfx.h adds a control plane of a test's own and a client of
 * its API.
 *
 * The names are those the suites use in their tests (EXPECT, res_free ...),
 * so a test reads the same wherever it lives. */
#ifndef IT_FIXTURES_H
#define IT_FIXTURES_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "it.h"

/* --- answers --- */

struct res {
	long status;
	json_t *json;        /* the parsed body; NULL when it is not JSON */
	char rid[80];        /* X-Request-Id of the answer (set by api_ex) */
	struct it_resp raw;
};
/* Sends one request (it_http) and parses its answer into `r`; checks
 * nothing. The caller res_free()s `r`. */
void res_call(struct res *r, const char *method, const char *url, const char *const headers[],
              const char *body, size_t len);
void res_free(struct res *r);

#define EXPECT(r, st) expect_status((r), (st), __LINE__)
void expect_status(const struct res *r, long st, int line);
/* The status, the problem's code and its field: with `field` NULL the
 * problem must not name a field (EXPECT_PROBLEM) or may name any
 * (EXPECT_PROBLEM_SOME). */
#define EXPECT_PROBLEM(r, st, code, field) expect_problem((r), (st), (code), (field), 1, __LINE__)
#define EXPECT_PROBLEM_SOME(r, st, code, field) expect_problem((r), (st), (code), (field), 0, __LINE__)
void expect_problem(const struct res *r, long st, const char *code, const char *field,
                    int null_field_absent, int line);
/* 1 when the answer carries Idempotent-Replayed: true (exactly). */
int replayed(const struct res *r);

/* The status the README's table of problem codes gives `code`; -1 if none. */
long code_status(const char *code);
/* A lowercase UUID. */
int is_uuid(const char *s);
/* RFC 3339 UTC with microseconds, as the API writes every timestamp. */
int is_api_time(const char *s);

/* GET `url` with `auth` ("Bearer ..." or NULL): the status, and the JSON
 * body in *out (the caller json_decref()s; NULL when not JSON). */
long get_json_auth(const char *url, const char *auth, json_t **out);
/* `s` percent-encoded for a query string (it_fmt's ring; at most about
 * 1000 characters of `s` are encoded). */
const char *query_enc(const char *s);

/* --- signed documents (long-polled routes) --- */

struct doc {
	long status;
	char etag[32];   /* "" when the answer has none */
	char *body;      /* the caller free()s */
	size_t len;
};
/* GET a document's route `url` (no query) with Bearer `token`, If-None-Match
 * `etag` when not NULL and ?wait= when `wait` is nonzero. */
void doc_fetch(struct doc *d, const char *url, const char *token, const char *etag, int wait);

/* --- SQL --- */

/* it_sql's answer as a number; fails the test when there is no row. */
long long sqll(const char *url, const char *sql);

/* A database `name` (url in `url`) migrated by a data plane of region us
 * without DP_CELL: claimed by region us, by no cell. */
void dp_region_db(const char *name, char *url, size_t len);

/* --- files --- */

/* Writes `text` to `path` (created or truncated); fails the test if it cannot. */
void write_text(const char *path, const char *text);
struct jwk;
/* Writes a trust bundle (JWK set) holding the public half of `key` to `path`. */
void write_trust_bundle(const struct jwk *key, const char *path);

/* --- requests at once --- */

/* Runs fn(items + i * size) for each i < n (at most 32) on a thread of its
 * own, all released together once every thread is ready; returns when all
 * have returned. For races: concurrent retries, rival writers. */
void run_at_once(void *items, size_t size, int n, void *(*fn)(void *item));

/* --- a fake HTTP server (plays the control plane for a data plane) --- */

struct fake_srv;
/* Answers one request: `req` is its head and body (all of Content-Length),
 * NUL-terminated; the server closes `fd` after it returns. */
typedef void fake_handler(struct fake_srv *s, int fd, const char *req);

struct fake_srv {
	int lfd, port;       /* listening on 127.0.0.1:port */
	atomic_int stop;     /* set by fake_srv_stop: a handler holding a request ends early */
	fake_handler *handle;
	void *ctx;           /* the handler's state */
	pthread_t accept_th;
	pthread_mutex_t mu;  /* guards conns */
	pthread_t conns[1024];
	int nconns;
};
/* Listens on a free port of 127.0.0.1 and answers each connection's one
 * request with `handle` on a thread of its own. */
void fake_srv_start(struct fake_srv *s, fake_handler *handle, void *ctx);
/* Stops accepting, waits for every connection's thread, closes. */
void fake_srv_stop(struct fake_srv *s);

/* A listening socket on a free port of 127.0.0.1; its port in *port. */
int listen_loopback(int *port);
/* Writes an answer with Connection: close; `body` NULL: none. */
void fake_respond(int fd, int status, const char *ctype, const char *body);
/* A long poll that finds nothing newer: after a short hold (ended early by
 * fake_srv_stop), 304 when the server has a document, else 503
 * unavailable. */
void fake_nothing_newer(struct fake_srv *s, int fd, int have_doc);
/* The value of header `name` in request head `req` ("" when absent). */
void fake_header(const char *req, const char *name, char *out, size_t len);

#endif
