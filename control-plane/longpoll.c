/* Long polls of the document routes (GET /v1/regions/{region}/config?wait=N
 * and the others).
 *
 * A request that is up to date is parked (libmicrohttpd suspend) without
 * holding a worker thread, on a key (a document's aud, or "full:<aud>"
 * for a full document). The document worker resumes the parked requests
 * of a key when it publishes a newer version of it (lp_published). One
 * thread LISTENs on the region_config channel (raised by a trigger
 * whenever a region's config version rises, so a change made through any
 * replica reaches every replica) and wakes the worker through the hook;
 * it also resumes requests whose wait is over. The latest version
 * published per key is kept, so a publication between a handler's check
 * and its park is not lost. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "log.h"
#include "longpoll.h"

#define MAX_KEYS 2048
#define KEY_LEN 96

struct waiter {
	struct http_req *req;
	char key[KEY_LEN];
	int64_t seen, deadline_ms;
	struct waiter *next;
};

struct heard {
	char key[KEY_LEN];
	int64_t version;
};

struct lp {
	struct cp_app *app;
	pthread_t thread;
	pthread_mutex_t lock;
	struct waiter *waiters;
	struct heard heard[MAX_KEYS];
	size_t nheard;
	void (*hook)(void *);       /* called on a NOTIFY: wakes the document worker */
	void *hook_arg;
	int draining;
	atomic_int stop;
	atomic_long parked;         /* requests parked right now */
	atomic_ulong wakeups;       /* parked requests resumed, for any reason */
	atomic_int listening;       /* the LISTEN connection is up */
};

int64_t lp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Latest version published for `key` (-1 if none). Lock held. */
static int64_t heard_of(struct lp *lp, const char *key)
{
	for (size_t i = 0; i < lp->nheard; i++)
		if (!strcmp(lp->heard[i].key, key))
			return lp->heard[i].version;
	return -1;
}

static void hear(struct lp *lp, const char *key, int64_t version)
{
	for (size_t i = 0; i < lp->nheard; i++)
		if (!strcmp(lp->heard[i].key, key)) {
			if (version > lp->heard[i].version)
				lp->heard[i].version = version;
			return;
		}
	if (lp->nheard < MAX_KEYS) {
		snprintf(lp->heard[lp->nheard].key, sizeof lp->heard[0].key, "%s", key);
		lp->heard[lp->nheard++].version = version;
	}
}

int lp_park(struct lp *lp, struct http_req *req, const char *key, int64_t seen, int64_t deadline_ms)
{
	struct waiter *w = calloc(1, sizeof *w);
	if (!w)
		return -1;
	w->req = req;
	snprintf(w->key, sizeof w->key, "%s", key);
	w->seen = seen;
	w->deadline_ms = deadline_ms;
	pthread_mutex_lock(&lp->lock);
	if (lp->draining || heard_of(lp, key) > seen) {
		int newer = !lp->draining;
		pthread_mutex_unlock(&lp->lock);
		free(w);
		return newer ? 1 : -1; /* a newer version is published, or draining */
	}
	/* Suspended before it is visible to the resuming thread. */
	http_req_suspend(req);
	w->next = lp->waiters;
	lp->waiters = w;
	atomic_fetch_add(&lp->parked, 1);
	pthread_mutex_unlock(&lp->lock);
	return 0;
}

/* Takes out of the list the waiters that `wake` selects, then resumes them
 * with the lock released. */
static void resume_where(struct lp *lp, int (*wake)(const struct waiter *, void *), void *arg)
{
	struct waiter *ready = NULL;
	pthread_mutex_lock(&lp->lock);
	for (struct waiter **pp = &lp->waiters; *pp;) {
		struct waiter *w = *pp;
		if (wake(w, arg)) {
			*pp = w->next;
			w->next = ready;
			ready = w;
		} else {
			pp = &w->next;
		}
	}
	pthread_mutex_unlock(&lp->lock);
	while (ready) {
		struct waiter *w = ready;
		ready = w->next;
		atomic_fetch_sub(&lp->parked, 1);
		atomic_fetch_add(&lp->wakeups, 1);
		http_req_resume(w->req);
		free(w);
	}
}

static int wake_any(const struct waiter *w, void *arg)
{
	(void)w, (void)arg;
	return 1;
}

static int wake_due(const struct waiter *w, void *now)
{
	return w->deadline_ms <= *(int64_t *)now;
}

struct change {
	const char *key;
	int64_t version;
};

static int wake_key(const struct waiter *w, void *arg)
{
	const struct change *ch = arg;
	return !strcmp(w->key, ch->key) && ch->version > w->seen;
}

void lp_published(struct lp *lp, const char *key, int64_t version)
{
	if (!lp)
		return;
	struct change ch = { key, version };
	pthread_mutex_lock(&lp->lock);
	hear(lp, key, version);
	pthread_mutex_unlock(&lp->lock);
	resume_where(lp, wake_key, &ch);
}

void lp_set_hook(struct lp *lp, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&lp->lock);
	lp->hook = fn;
	lp->hook_arg = arg;
	pthread_mutex_unlock(&lp->lock);
}

/* Wakes the document worker: a version rose somewhere. */
static void call_hook(struct lp *lp)
{
	if (!lp)
		return;
	/* Called under the lock, so that once lp_set_hook(NULL) returns no
	 * call can still reach what the hook pointed to (the worker stops
	 * and is freed right after). The hook only signals. */
	pthread_mutex_lock(&lp->lock);
	if (lp->hook)
		lp->hook(lp->hook_arg);
	pthread_mutex_unlock(&lp->lock);
}

void lp_kick(struct lp *lp)
{
	call_hook(lp);
}

/* What the server says on the idle LISTEN connection (its going away,
 * say) is logged as a line of its own, not printed raw by libpq. */
static void listen_notice(void *arg, const char *message)
{
	char msg[300];
	(void)arg;
	snprintf(msg, sizeof msg, "%s", message);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn_limited(NULL, "long polls: %s", msg);
}

static PGconn *listen_conn(struct lp *lp)
{
	return cpdb_listen_config(lp->app->cfg.database_url, listen_notice);
}

static void *listen_main(void *arg)
{
	struct lp *lp = arg;
	log_set_task("long_poll_listen");
	PGconn *pg = NULL;
	int64_t retry_at = 0;

	while (!atomic_load(&lp->stop)) {
		int64_t now = lp_now_ms();
		atomic_store(&lp->listening, pg != NULL);
		if (!pg && now >= retry_at) {
			pg = listen_conn(lp);
			if (pg) {
				/* Changes made while we were not listening: the
				 * worker looks again. */
				call_hook(lp);
			} else {
				log_warn(NULL, "long polls: cannot LISTEN; retrying in 1 s");
				retry_at = now + 1000;
			}
		}
		if (pg) {
			struct pollfd pfd = { .fd = PQsocket(pg), .events = POLLIN };
			if (poll(&pfd, 1, 100) > 0 && PQconsumeInput(pg) == 0) {
				log_warn(NULL, "long polls: the LISTEN connection broke; reconnecting");
				PQfinish(pg);
				pg = NULL;
				continue;
			}
			char region[33];
			int64_t version;
			int heard = 0;
			while (cpdb_config_change(pg, region, &version))
				heard = 1;
			/* The polls wake when the worker has published the version. */
			if (heard)
				call_hook(lp);
		} else {
			usleep(100 * 1000);
		}
		now = lp_now_ms();
		resume_where(lp, wake_due, &now);
	}
	PQfinish(pg);
	return NULL;
}

struct lp *lp_start(struct cp_app *app, char *err, size_t errlen)
{
	struct lp *lp = calloc(1, sizeof *lp);
	if (!lp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	lp->app = app;
	pthread_mutex_init(&lp->lock, NULL);
	if (pthread_create(&lp->thread, NULL, listen_main, lp) != 0) {
		snprintf(err, errlen, "cannot start the long-poll thread");
		pthread_mutex_destroy(&lp->lock);
		free(lp);
		return NULL;
	}
	return lp;
}

void lp_drain(void *vapp)
{
	struct lp *lp = ((struct cp_app *)vapp)->lp;
	if (!lp)
		return;
	pthread_mutex_lock(&lp->lock);
	lp->draining = 1;
	pthread_mutex_unlock(&lp->lock);
	resume_where(lp, wake_any, NULL);
}

void lp_stop(struct lp *lp)
{
	if (!lp)
		return;
	atomic_store(&lp->stop, 1);
	pthread_join(lp->thread, NULL);
	resume_where(lp, wake_any, NULL);
	pthread_mutex_destroy(&lp->lock);
	free(lp);
}

void lp_metrics(struct lp *lp, FILE *out)
{
	if (!lp)
		return;
	fprintf(out,
	        "# HELP cp_longpolls_parked Config polls held open right now.\n"
	        "# TYPE cp_longpolls_parked gauge\n"
	        "cp_longpolls_parked %ld\n"
	        "# HELP cp_longpoll_wakeups_total Held polls resumed (a change, their deadline, or a drain).\n"
	        "# TYPE cp_longpoll_wakeups_total counter\n"
	        "cp_longpoll_wakeups_total %lu\n"
	        "# HELP cp_notify_connected 1 while the LISTEN connection that wakes polls is up.\n"
	        "# TYPE cp_notify_connected gauge\n"
	        "cp_notify_connected %d\n",
	        atomic_load(&lp->parked), atomic_load(&lp->wakeups), atomic_load(&lp->listening));
}
