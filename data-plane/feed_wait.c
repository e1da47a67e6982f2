/* Long polls of the events feed: parked requests and the thread that
 * LISTENs for commits and resumes them (the contract is in feed_wait.h). */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dpdb.h"
#include "feed_wait.h"
#include "http.h"
#include "log.h"

/* Commit counters, one per bucket of tenants: a waiter compares its
 * tenant's bucket only, so another tenant's commits rarely make it read
 * again. */
#define GEN_BUCKETS 1024
/* How often the thread looks at deadlines and recheck times: the error
 * of a deadline, and the longest a resumed waiter waits beyond its
 * recheck time. */
#define TICK_MS 50
/* Without the LISTEN connection: how often it is tried again, and every
 * waiter is resumed to read for itself. */
#define UNHEARD_MS 1000

enum reason { R_COMMIT, R_RECHECK, R_DEADLINE, R_RECONNECT, R_UNHEARD, R_DRAIN, R_COUNT };
static const char *const reason_names[R_COUNT] = { "commit", "recheck", "deadline", "reconnect", "unheard",
	                                               "drain" };

struct waiter {
	struct http_req *req;
	char tenant[37];
	int64_t deadline_ms, recheck_ms;
	struct waiter *next;
};

struct dp_feed {
	char *conninfo;
	long max_waiters;
	pthread_t thread;
	pthread_mutex_t lock;
	struct waiter *waiters;     /* lock */
	long nwaiters;              /* lock */
	uint64_t gen[GEN_BUCKETS];  /* lock */
	int draining;               /* lock */
	atomic_int stop;
	atomic_long parked;
	atomic_ulong wakeups[R_COUNT];
	atomic_ulong refused;
	atomic_int listening;
};

int64_t dp_feed_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned bucket(const char *tenant)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % GEN_BUCKETS;
}

uint64_t dp_feed_gen(struct dp_feed *f, const char *tenant)
{
	pthread_mutex_lock(&f->lock);
	uint64_t g = f->gen[bucket(tenant)];
	pthread_mutex_unlock(&f->lock);
	return g;
}

enum dp_feed_parked dp_feed_park(struct dp_feed *f, struct http_req *req, const char *tenant,
                                 uint64_t gen, int64_t deadline_ms, int64_t recheck_ms)
{
	struct waiter *w = calloc(1, sizeof *w);
	enum dp_feed_parked ret = DP_FEED_NOMEM;
	if (!w)
		return ret;
	w->req = req;
	snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
	w->deadline_ms = deadline_ms;
	w->recheck_ms = recheck_ms;
	pthread_mutex_lock(&f->lock);
	if (f->draining) {
		ret = DP_FEED_DRAINING;
	} else if (f->gen[bucket(tenant)] != gen) {
		ret = DP_FEED_CHANGED;
	} else if (f->nwaiters >= f->max_waiters) {
		atomic_fetch_add(&f->refused, 1);
		ret = DP_FEED_FULL;
	} else {
		/* Suspended before the resuming thread can see it. */
		http_req_suspend(req);
		w->next = f->waiters;
		f->waiters = w;
		f->nwaiters++;
		atomic_fetch_add(&f->parked, 1);
		w = NULL;
		ret = DP_FEED_PARKED;
	}
	pthread_mutex_unlock(&f->lock);
	free(w);
	return ret;
}

/* Which waiters to resume, and why (R_COUNT: not this one). */
typedef enum reason (*select_fn)(const struct waiter *w, const void *arg);

/* Takes the selected waiters out of the list, then resumes them with the
 * lock released. */
static void resume_where(struct dp_feed *f, select_fn sel, const void *arg)
{
	struct waiter *ready = NULL;
	pthread_mutex_lock(&f->lock);
	for (struct waiter **pp = &f->waiters; *pp;) {
		struct waiter *w = *pp;
		enum reason r = sel(w, arg);
		if (r != R_COUNT) {
			*pp = w->next;
			f->nwaiters--;
			w->next = ready;
			ready = w;
			atomic_fetch_add(&f->wakeups[r], 1);
		} else {
			pp = &w->next;
		}
	}
	pthread_mutex_unlock(&f->lock);
	while (ready) {
		struct waiter *w = ready;
		ready = w->next;
		atomic_fetch_sub(&f->parked, 1);
		http_req_resume(w->req);
		free(w);
	}
}

static enum reason sel_all(const struct waiter *w, const void *arg)
{
	(void)w;
	return *(const enum reason *)arg;
}

static enum reason sel_tenant(const struct waiter *w, const void *tenant)
{
	return strcmp(w->tenant, tenant) ? R_COUNT : R_COMMIT;
}

static enum reason sel_due(const struct waiter *w, const void *now)
{
	int64_t t = *(const int64_t *)now;
	if (w->deadline_ms <= t)
		return R_DEADLINE;
	if (w->recheck_ms > 0 && w->recheck_ms <= t)
		return R_RECHECK;
	return R_COUNT;
}

static void resume_all(struct dp_feed *f, enum reason r)
{
	resume_where(f, sel_all, &r);
}

/* What the server says on the idle LISTEN connection (its going away,
 * say) is logged as a line of its own, not printed raw by libpq. */
static void listen_notice(void *arg, const char *message)
{
	char msg[300];
	(void)arg;
	snprintf(msg, sizeof msg, "%s", message);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn_limited(NULL, "events feed: %s", msg);
}

static void *listen_main(void *arg)
{
	struct dp_feed *f = arg;
	log_set_task("feed_listen");
	PGconn *pg = NULL;
	int64_t retry_at = 0;

	while (!atomic_load(&f->stop)) {
		int64_t now = dp_feed_now_ms();
		if (!pg && now >= retry_at) {
			pg = dp_db_feed_listen(f->conninfo, listen_notice, NULL);
			atomic_store(&f->listening, pg != NULL);
			/* Commits made while nobody listened: every waiter reads
			 * again, now (connected) or once a second (not). */
			resume_all(f, pg ? R_RECONNECT : R_UNHEARD);
			if (!pg) {
				log_warn_limited(NULL, "events feed: cannot LISTEN; retrying in 1 s");
				retry_at = now + UNHEARD_MS;
			}
		}
		if (pg) {
			struct pollfd pfd = { .fd = PQsocket(pg), .events = POLLIN };
			if (poll(&pfd, 1, TICK_MS) > 0 && PQconsumeInput(pg) == 0) {
				log_warn(NULL, "events feed: the LISTEN connection broke; reconnecting");
				PQfinish(pg);
				pg = NULL;
				atomic_store(&f->listening, 0);
				continue;
			}
			char tenant[37];
			while (dp_db_feed_heard(pg, tenant)) {
				pthread_mutex_lock(&f->lock);
				f->gen[bucket(tenant)]++;
				pthread_mutex_unlock(&f->lock);
				resume_where(f, sel_tenant, tenant);
			}
		} else {
			usleep(TICK_MS * 1000);
		}
		now = dp_feed_now_ms();
		resume_where(f, sel_due, &now);
	}
	PQfinish(pg);
	return NULL;
}

struct dp_feed *dp_feed_start(const char *conninfo, long max_waiters, char *err, size_t errlen)
{
	struct dp_feed *f = calloc(1, sizeof *f);
	if (!f || !(f->conninfo = strdup(conninfo))) {
		snprintf(err, errlen, "out of memory");
		free(f);
		return NULL;
	}
	f->max_waiters = max_waiters;
	pthread_mutex_init(&f->lock, NULL);
	if (pthread_create(&f->thread, NULL, listen_main, f) != 0) {
		snprintf(err, errlen, "cannot start the events feed's thread");
		pthread_mutex_destroy(&f->lock);
		free(f->conninfo);
		free(f);
		return NULL;
	}
	return f;
}

void dp_feed_drain(struct dp_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->draining = 1;
	pthread_mutex_unlock(&f->lock);
	resume_all(f, R_DRAIN);
}

void dp_feed_stop(struct dp_feed *f)
{
	if (!f)
		return;
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	resume_all(f, R_DRAIN);
	pthread_mutex_destroy(&f->lock);
	free(f->conninfo);
	free(f);
}

void dp_feed_metrics(struct dp_feed *f, FILE *out)
{
	if (!f)
		return;
	fprintf(out,
	        "# HELP dp_feed_waiters Feed requests parked (wait=N) right now.\n"
	        "# TYPE dp_feed_waiters gauge\n"
	        "dp_feed_waiters %ld\n"
	        "# HELP dp_feed_wakeups_total Parked feed requests resumed, by reason.\n"
	        "# TYPE dp_feed_wakeups_total counter\n",
	        atomic_load(&f->parked));
	for (int r = 0; r < R_COUNT; r++)
		fprintf(out, "dp_feed_wakeups_total{reason=\"%s\"} %lu\n", reason_names[r],
		        atomic_load(&f->wakeups[r]));
	fprintf(out,
	        "# HELP dp_feed_waiters_refused_total Feed requests answered 503 because DP_FEED_WAITERS_MAX were parked.\n"
	        "# TYPE dp_feed_waiters_refused_total counter\n"
	        "dp_feed_waiters_refused_total %lu\n"
	        "# HELP dp_feed_notify_connected 1 while the LISTEN connection that wakes feed requests is up.\n"
	        "# TYPE dp_feed_notify_connected gauge\n"
	        "dp_feed_notify_connected %d\n",
	        atomic_load(&f->refused), atomic_load(&f->listening));
}
