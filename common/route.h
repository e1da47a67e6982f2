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
/* HTTP_PARKED: only the authenticate hook returns it (http.h). */
enum http_step { HTTP_GO_ON, HTTP_ANSWERED, HTTP_PARKED };

typedef enum http_result (*http_handler_fn)(struct http_req *req);

struct http_route {
	const char *method;     /* "GET", "POST", ... (HEAD is served by GET) */
	const char *pattern;    /* "/v1/tenants/{id}" */
	http_handler_fn handler;
	size_t body_limit;      /* bytes; 0 = no body accepted */
	int auth;               /* 0 = public; other values mean what the service says */
	/* The query parameters the route reads, NULL-terminated; NULL: none at
	 * all. The HTTP layer refuses any other before the handler runs (see
	 * route_query_check). A name is matched exactly, given at most once,
	 * with a value; "name[]" may be given up to ROUTE_QUERY_VALUES_MAX
	 * times (the handler reads them with http_req_query_values); "pre.*"
	 * matches every name "pre.<something>" (http_req_query_prefixed),
	 * and "pre.*[]" lets each of them repeat. Empty pieces ("?&a=1&")
	 * are no parameters. */
	const char *const *query;
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

/* Bounds of a query string: values of one repeatable name, and parameters
 * in all (a filter with 20 values is as far as a URL goes in practice; a
 * query of more than 64 parameters is not one a client meant). */
#define ROUTE_QUERY_VALUES_MAX 20
#define ROUTE_QUERY_PARAMS_MAX 64

enum route_query_fault {
	ROUTE_QUERY_OK,
	ROUTE_QUERY_UNKNOWN,     /* the route declares no such name */
	ROUTE_QUERY_REPEATED,    /* a name that is not repeatable, given twice */
	ROUTE_QUERY_TOO_MANY,    /* a repeatable name given more than ROUTE_QUERY_VALUES_MAX times */
	ROUTE_QUERY_TOO_LONG,    /* more than ROUTE_QUERY_PARAMS_MAX parameters in all */
	ROUTE_QUERY_NO_VALUE,    /* "?name" without "=": never taken for an empty or absent value */
};

/* Checks the query parameters of a request, `n` of them in the order sent
 * (names[i], and values[i] NULL when the parameter had no '='), against
 * `decl` (a route's `query`). Returns ROUTE_QUERY_OK, or the first fault
 * with *bad the index of the parameter to name. Pure. */
enum route_query_fault route_query_check(const char *const *decl, const char *const *names,
                                         const char *const *values, size_t n, size_t *bad);

/* Whether `name` is what the declaration entry `d` admits, and whether
 * that entry is repeatable. */
int route_query_matches(const char *d, const char *name, int *repeatable);

#endif
