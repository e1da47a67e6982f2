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

/* A CA file pinned for calls to `url` (the service's *_CA_FILE setting):
 * only certificates it issued are accepted, the system's trust store is
 * not consulted. Returns NULL when `ca_file` is NULL (no pin: the system's
 * store, as for any https URL) or usable: `url` is https (a pin on plain
 * http would protect nothing and is a mistake) and the file can be read
 * and holds a PEM certificate. Otherwise the reason, for the operator. */
const char *url_ca_problem(const char *url, const char *ca_file);

#endif
