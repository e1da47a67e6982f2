/* Structured logging: one JSON object per line on stderr.
 *
 * Every line carries time, level, service and message; request-scoped lines
 * also carry the request id. Secrets must never be passed to these functions. */
#ifndef CT_LOG_H
#define CT_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern const char *const log_level_names[]; /* NULL-terminated, index = level */

/* Sets the service name written on every line and the minimum level. */
void log_init(const char *service, enum log_level min_level);
int log_enabled(enum log_level lvl);

/* Writes one line. `req_id` may be NULL. `fields` (may be NULL) is an object
 * whose members are added to the line; the reference is stolen. */
void log_write(enum log_level lvl, const char *req_id, json_t *fields,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One access-log line, formatted directly (no JSON tree: this runs for
 * every request). `terminated` < 0 leaves that member out. */
void log_request(enum log_level lvl, const char *req_id, const char *method, const char *path,
                 unsigned status, double duration_ms, int terminated);

/* Writes `s` as the body of a JSON string into out (at most outlen bytes
 * with the NUL, cut at a character boundary): quotes, backslashes and
 * control characters escaped, bytes that are not UTF-8 replaced by U+FFFD.
 * Returns the length written. */
size_t log_json_escape(const char *s, char *out, size_t outlen);

#define log_debug(rid, ...) \
	do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, rid, NULL, __VA_ARGS__); } while (0)
#define log_info(rid, ...)  log_write(LOG_INFO, rid, NULL, __VA_ARGS__)
#define log_warn(rid, ...)  log_write(LOG_WARN, rid, NULL, __VA_ARGS__)
#define log_error(rid, ...) log_write(LOG_ERROR, rid, NULL, __VA_ARGS__)

#endif
