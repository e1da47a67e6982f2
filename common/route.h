/* Route table and path matching.
 *
 * A service declares one static table of routes: method, path pattern with
 * {param} segments, handler, body limit and the authentication it needs.
 * Matching is pure (no I/O) so that it is unit-tested directly. */
#ifndef CT_ROUTE_H
#define CT_ROUTE_H

#include <stddef.h>

struct http_req;

/* What a handler did with its request, and what a step that may answer
 * for a handler did. The convention is stated in http.h. */
enum http_result { HTTP_REPLIED, HTTP_SUSPENDED, HTTP_FAILED };
enum http_step { HTTP_GO_ON, HTTP_ANSWERED };

typedef enum http_result (*http_handler_fn)(struct http_req *req);

struct http_route {
	const char *method;     /* "GET", "POST", ... (HEAD is served by GET) */
	const char *pattern;    /* "/v1/tenants/{id}" */
	http_handler_fn handler;
	size_t body_limit;      /* bytes; 0 = no body accepted */
	int auth;               /* 0 = public; other values mean what the service says */
};

#define ROUTE_MAX_PARAMS    8
#define ROUTE_MAX_PARAM_LEN 256

enum route_result { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

struct route_match {
	int route;                 /* index into the table, -1 when none */
	int nparams;
	const char *names[ROUTE_MAX_PARAMS];    /* point into the pattern */
	size_t name_lens[ROUTE_MAX_PARAMS];
	char values[ROUTE_MAX_PARAMS][ROUTE_MAX_PARAM_LEN + 1];
	char allow[96];            /* ROUTE_BAD_METHOD: "GET, HEAD, POST" */
};

/* Finds the route for `method` and `path`. Segments are matched exactly,
 * {param} matches one non-empty segment of at most ROUTE_MAX_PARAM_LEN bytes.
 * When the path matches only under other methods, fills m->allow. */
enum route_result route_find(const struct http_route *routes, size_t n, const char *method,
                             const char *path, struct route_match *m);

/* Value of path parameter `name` in `m`, or NULL. */
const char *route_param(const struct route_match *m, const char *name);

#endif
