/* Structured logging: one JSON object per line on stderr.
 *
 * Every line carries time, level, service and message, and the context of
 * the thread that writes it (struct log_ctx): the request being handled
 * ("req_id", and "tenant" and "key_id" once known) or the background task
 * ("task"). Secrets must never be passed to these functions. */
#ifndef CT_LOG_H
#define CT_LOG_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern const char *const log_level_names[]; /* NULL-terminated, index = level */

/* Sets the service name written on every line and the minimum level. */
void log_init(const char *service, enum log_level min_level);
int log_enabled(enum log_level lvl);

/* What the lines of a thread are about. Each thread has its own, set
 * where its work starts: a thread's main function names its task (a
 * string literal: "main", "config_pull", ...); the HTTP layer sets the
 * request's around each call into a handler, so that a line written deep
 * in a helper (a database warning) names the request without being told.
 * The strings are borrowed: they must stay valid while the context is set.
 * NULL or "" leaves a member out. */
struct log_ctx {
	const char *task;    /* background work of the thread */
	const char *req_id;  /* the request being handled */
	const char *tenant;  /* its tenant's id and API key's id, never a secret */
	const char *key_id;
};

/* Replaces the calling thread's context; returns the previous one, for the
 * caller to set back once its work is done. */
struct log_ctx log_ctx_set(struct log_ctx ctx);
struct log_ctx log_ctx_get(void);
/* The thread's context becomes the task `task` alone (first thing in a
 * thread's main function). */
void log_set_task(const char *task);

/* Writes one line with the thread's context. `req_id` (may be NULL) names
 * the request explicitly: when it is not the context's, the context's
 * tenant and key id are left out. `fields` (may be NULL) is an object
 * whose members are added to the line (over the context's); the reference
 * is stolen. */
void log_write(enum log_level lvl, const char *req_id, json_t *fields,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One access-log line, formatted directly (no JSON tree: this runs for
 * every request); its members are the arguments, not the thread's
 * context. `terminated` < 0 leaves that member out; `tenant` and `key_id`
 * (identifiers, never secrets) are left out when NULL. */
void log_request(enum log_level lvl, const char *req_id, const char *method, const char *path,
                 unsigned status, double duration_ms, int terminated, const char *tenant,
                 const char *key_id);

/* Repeated lines of one kind (a database that is down, a client that keeps
 * sending garbage) are written at most once per interval, each with the
 * number of lines of its kind left out since the previous one
 * ("suppressed": N), so that a failure cannot flood the log.
 *
 * One struct log_limit per kind, zero-initialized (static storage); it is
 * lock-free and may be shared by every thread. */
struct log_limit {
	_Atomic int64_t next_ms;       /* the next line may be written from then on */
	_Atomic uint64_t suppressed;   /* lines left out since the last one written */
};

/* The interval of every limiter (default 10 s). Set once at start-up. */
#define LOG_REPEAT_INTERVAL_DEFAULT_MS 10000
void log_set_repeat_interval(int64_t ms);

/* The decision alone, on a clock the caller gives (milliseconds, any
 * origin >= 0): returns -1 when the line is to be left out (and counts it),
 * or the number left out since the last line written (>= 0) when it is to
 * be written. A line is written when `now_ms` is at least `interval_ms`
 * after the previous line written; the first one always is. */
int64_t log_limit_take(struct log_limit *l, int64_t now_ms, int64_t interval_ms);

/* log_write() through the limiter `l`, adding "suppressed": N; `fields`
 * (may be NULL) is stolen, written or not. */
void log_write_limited(struct log_limit *l, enum log_level lvl, const char *req_id, json_t *fields,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

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
/* A warning limited per call site: each use has its own limiter. */
#define log_warn_limited(rid, ...)                                         \
	do {                                                                   \
		static struct log_limit log_limit_site_;                          \
		log_write_limited(&log_limit_site_, LOG_WARN, rid, NULL, __VA_ARGS__); \
	} while (0)

#endif
