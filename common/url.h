/* Joining a service's base URL with a request path, for every call one
 * service makes to another.
 *
 * An operator writes a base URL with or without a trailing '/' (or
 * several); the callers write paths with or without a leading one. The
 * joined URL has exactly one '/' between the two, so that a base of
 * "http://cp:8080/" never turns "/v1/usage" into "//v1/usage" (a 404 at
 * the other end). The base may carry a path prefix of its own
 * ("https://edge.example/celltrail"); it is kept as written. */
#ifndef CT_URL_H
#define CT_URL_H

#include <stddef.h>

/* Writes base + "/" + path into `out` (`outlen` bytes with the NUL),
 * dropping the base's trailing slashes and the path's leading ones (but
 * never the "//" of "scheme://"). Returns 0, or -1 when the result does not
 * fit: `out` is then the empty string, never a truncated URL. */
int url_join(char *out, size_t outlen, const char *base, const char *path)
	__attribute__((warn_unused_result));

#endif
