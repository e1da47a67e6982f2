/* Long polls of the document routes (?wait=N): requests parked without a
 * worker thread on a key, resumed when the document worker publishes a
 * newer version of it, or at their deadline; and the thread that LISTENs
 * for config-version changes (of any replica) and wakes the worker. */
#ifndef CP_LONGPOLL_H
#define CP_LONGPOLL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cp_app;
struct http_req;
struct lp;

/* Starts the LISTEN thread. NULL (and `err` says why) when it cannot. */
struct lp *lp_start(struct cp_app *app, char *err, size_t errlen);
/* Stops the thread and resumes every parked request; accepts NULL. */
void lp_stop(struct lp *lp);
/* Parks `req` until a version above `seen` is published for `key` (at
 * most 95 characters: a document's aud or its full_key) or
 * `deadline_ms` (CLOCK_MONOTONIC ms). Returns 0; 1 when a newer version
 * is published already (look again); -1 when the service is draining or
 * out of memory (answer now instead). */
int lp_park(struct lp *lp, struct http_req *req, const char *key, int64_t seen,
            int64_t deadline_ms) __attribute__((warn_unused_result));
/* The document worker published `version` for `key`: resumes its parked
 * requests that wait for it. Accepts NULL. */
void lp_published(struct lp *lp, const char *key, int64_t version);
/* `fn(arg)` is called whenever a NOTIFY says a region's version rose. */
void lp_set_hook(struct lp *lp, void (*fn)(void *), void *arg);
/* Calls the hook now (a request waits for the document worker). Accepts NULL. */
void lp_kick(struct lp *lp);
/* Resumes every parked request and refuses new parks (drain); `app` is
 * the struct cp_app (http_server_opts.on_drain). */
void lp_drain(void *app);
/* Appends cp_longpolls_parked, cp_longpoll_wakeups_total, cp_notify_connected. */
void lp_metrics(struct lp *lp, FILE *out);
/* CLOCK_MONOTONIC in milliseconds, the clock of deadlines. */
int64_t lp_now_ms(void);

#endif
