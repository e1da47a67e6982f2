/* Requests waiting for a newer cell document: the parked list, the
 * wake-ups when a document is installed and the thread that resumes them
 * at their deadlines (the contract is in cell_wait.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cell_wait.h"
#include "feed_wait.h"
#include "http.h"

struct waiter {
	struct http_req *req;
	int64_t deadline_ms;
	struct waiter *next;
};

struct dp_cell_wait {
	long max_waiters;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* the thread's sleep: a new earlier deadline, stop */
	struct waiter *waiters;    /* lock */
	long nwaiters;             /* lock */
	uint64_t gen;              /* lock */
	int draining, stop;        /* lock */
	atomic_long parked;
};

uint64_t dp_cell_wait_gen(struct dp_cell_wait *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t g = w->gen;
	pthread_mutex_unlock(&w->lock);
	return g;
}

enum dp_cell_parked dp_cell_wait_park(struct dp_cell_wait *w, struct http_req *req, uint64_t gen,
                                      int64_t deadline_ms)
{
	struct waiter *x = calloc(1, sizeof *x);
	enum dp_cell_parked ret = DP_CELL_REFUSED;
	if (!x)
		return ret;
	x->req = req;
	x->deadline_ms = deadline_ms;
	pthread_mutex_lock(&w->lock);
	if (w->gen != gen) {
		ret = DP_CELL_CHANGED;
	} else if (!w->draining && w->nwaiters < w->max_waiters) {
		/* Suspended before another thread can see it to resume it. */
		http_req_suspend(req);
		x->next = w->waiters;
		w->waiters = x;
		w->nwaiters++;
		atomic_fetch_add(&w->parked, 1);
		pthread_cond_signal(&w->wake);
		x = NULL;
		ret = DP_CELL_PARKED;
	}
	pthread_mutex_unlock(&w->lock);
	free(x);
	return ret;
}

/* Takes out the waiters due at `now` (every one when `now` is INT64_MAX)
 * and resumes them with the lock released. */
static void resume_due(struct dp_cell_wait *w, int64_t now)
{
	struct waiter *ready = NULL;
	pthread_mutex_lock(&w->lock);
	for (struct waiter **pp = &w->waiters; *pp;) {
		struct waiter *x = *pp;
		if (x->deadline_ms <= now) {
			*pp = x->next;
			w->nwaiters--;
			x->next = ready;
			ready = x;
		} else {
			pp = &x->next;
		}
	}
	pthread_mutex_unlock(&w->lock);
	while (ready) {
		struct waiter *x = ready;
		ready = x->next;
		atomic_fetch_sub(&w->parked, 1);
		http_req_resume(x->req);
		free(x);
	}
}

void dp_cell_wait_installed(struct dp_cell_wait *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->gen++;
	pthread_mutex_unlock(&w->lock);
	resume_due(w, INT64_MAX);
}

static void *wait_main(void *arg)
{
	struct dp_cell_wait *w = arg;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		int64_t next = INT64_MAX;
		for (struct waiter *x = w->waiters; x; x = x->next)
			if (x->deadline_ms < next)
				next = x->deadline_ms;
		if (next == INT64_MAX) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		int64_t now = dp_feed_now_ms();
		if (next > now) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			int64_t ns = until.tv_nsec + ((next - now) % 1000) * 1000000;
			until.tv_sec += (next - now) / 1000 + ns / 1000000000;
			until.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&w->wake, &w->lock, &until);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		resume_due(w, now);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct dp_cell_wait *dp_cell_wait_start(long max_waiters, char *err, size_t errlen)
{
	struct dp_cell_wait *w = calloc(1, sizeof *w);
	pthread_condattr_t ca;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->max_waiters = max_waiters;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&w->thread, NULL, wait_main, w) != 0) {
		snprintf(err, errlen, "cannot start the wrong-cell wait thread");
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void dp_cell_wait_drain(struct dp_cell_wait *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->draining = 1;
	pthread_mutex_unlock(&w->lock);
	resume_due(w, INT64_MAX);
}

void dp_cell_wait_stop(struct dp_cell_wait *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	w->draining = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	resume_due(w, INT64_MAX);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void dp_cell_wait_metrics(struct dp_cell_wait *w, FILE *out)
{
	if (!w)
		return;
	fprintf(out,
	        "# HELP dp_wrong_cell_waiters Requests routed here for a key this cell's document does not hold yet, parked until a newer document or DP_WRONG_CELL_WAIT.\n"
	        "# TYPE dp_wrong_cell_waiters gauge\n"
	        "dp_wrong_cell_waiters %ld\n",
	        atomic_load(&w->parked));
}
