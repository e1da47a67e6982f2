/* bin/celltrail's calls to the control-plane API: one kept-alive libcurl
 * handle for the whole command, the token as a bearer credential, bounded
 * answers, timeouts, and every failure turned into one line on stderr and
 * the command's exit status.
 *
 * Exit statuses (the CLI's, also in its --help and the README):
 *   API_OK       0  the API answered 2xx
 *   API_REFUSED  1  the API answered 4xx (its problem document printed)
 *   API_USAGE    2  a usage or configuration error, found before any call
 *   API_FAILED   3  the server failed (5xx, an answer that is not what the
 *                   API sends) or could not be reached (connection refused,
 *                   name not found, TLS, timeout, an answer too large)
 *
 * The token is never printed, logged or put in a URL: it goes only into
 * the Authorization header, and its copies are wiped once libcurl holds
 * it. A base URL carrying credentials ("user:pass@") is refused. Paths are
 * built with every argument percent-encoded (api_path), so an argument
 * cannot reach another route. */
#ifndef CLI_API_H
#define CLI_API_H

#include <jansson.h>
#include <stddef.h>

enum { API_OK = 0, API_REFUSED = 1, API_USAGE = 2, API_FAILED = 3 };

#define API_MAX_ANSWER (16u << 20)    /* bytes; a longer answer fails the call */
#define API_TIMEOUT_DEFAULT_S 30
#define API_CONNECT_TIMEOUT_MAX_S 10
#define API_PATH_MAX 2048

struct api;

struct api_settings {
	const char *url;    /* the control plane's base URL: http:// or https:// */
	const char *token;  /* NULL: calls without a credential (public routes) */
	const char *cacert; /* NULL: the system's CAs */
	long timeout_s;     /* whole call; the connection gets at most
	                     * API_CONNECT_TIMEOUT_MAX_S of it */
};

struct api_answer {
	long status;  /* HTTP status */
	char *body;   /* malloc'd, NUL-terminated; "" when none */
	size_t len;
	json_t *json; /* the body parsed (owned), NULL when empty */
};

/* Checks `s` (the URL's form, the token's characters, the CA file is
 * readable) and sets up a handle. Returns it, or NULL with a sentence in
 * `err` (a usage error: API_USAGE). Nothing is sent yet. Freed with
 * api_free(). */
struct api *api_new(const struct api_settings *s, char *err, size_t errlen);

/* Accepts NULL. */
void api_free(struct api *a);

/* One call: METHOD `path` (built with api_path) with `body` (NULL: none;
 * sent as application/json). On 2xx fills `ans` (released with
 * api_answer_free) and returns API_OK; an empty body or 204 leaves
 * ans->json NULL. Otherwise prints one line on stderr and returns
 * API_REFUSED or API_FAILED, `ans` released. */
int api_call(struct api *a, const char *method, const char *path, const json_t *body,
             struct api_answer *ans) __attribute__((warn_unused_result));

/* Accepts a zeroed `ans`. */
void api_answer_free(struct api_answer *ans);

/* Writes `tmpl` into `out` with each "{}" replaced by the next of
 * `args` (NULL-terminated), percent-encoded but for A-Z a-z 0-9 - . _ ~.
 * Returns 0, or -1 when an argument is empty or missing, or the path does
 * not fit (`out` is then ""). */
int api_path(char *out, size_t outlen, const char *tmpl, const char *const args[])
	__attribute__((warn_unused_result));

/* Appends "?name=value" (or "&name=value" when `path` has a query)
 * with `value` percent-encoded; a NULL `value` appends nothing. Returns
 * 0, or -1 when it does not fit (`path` then unchanged). */
int api_query(char *path, size_t cap, const char *name, const char *value)
	__attribute__((warn_unused_result));

/* The line printed for a refused or failed answer, without the program's
 * name or a newline: "HTTP <status> <code>: <detail>", with the field,
 * the time to wait and the request id in parentheses when the problem
 * document has them; "HTTP <status>" and what the body is when it is not
 * a problem document (`problem` NULL or not an object). Control
 * characters of the detail become '?'. */
void api_problem_line(char *out, size_t outlen, long status, const json_t *problem,
                      const char *content_type);

#endif
