/* The document worker: two threads that keep every subject a request
 * asked for at its region's config version (cp_doc_refresh), woken when a
 * version rises (the LISTEN thread of longpoll.c) or a request waits, and
 * at least every second. One builds cells' deltas, the other full
 * documents (regional, routes, and cells' when due), so that a full build
 * of a million tenants never holds up a delta. The deltas thread also
 * prunes the change log once a minute. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config_doc.h"
#include "cp_app.h"
#include "deadline.h"
#include "doc_worker.h"
#include "log.h"

#define PASS_EVERY_MS 1000
#define PRUNE_EVERY_S 60

struct doc_worker;

struct doc_thread {
	struct doc_worker *w;
	pthread_t thread;
	int fulls;             /* which half of the work */
	int started, kicked;   /* kicked: guarded by the worker's lock */
};

struct doc_worker {
	struct cp_app *app;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
	struct doc_thread t[2];
};

static void *thread_main(void *arg)
{
	struct doc_thread *t = arg;
	struct doc_worker *w = t->w;
	time_t pruned = 0;
	log_set_task(t->fulls ? "doc_fulls" : "doc_deltas");
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		t->kicked = 0;
		pthread_mutex_unlock(&w->lock);
		time_t now = time(NULL);
		int prune = !t->fulls && now - pruned >= PRUNE_EVERY_S;
		if (prune)
			pruned = now;
		cp_doc_refresh(w->app, prune, t->fulls);
		pthread_mutex_lock(&w->lock);
		struct timespec until = deadline_in(CLOCK_REALTIME, PASS_EVERY_MS);
		while (!w->stop && !t->kicked && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

void doc_worker_stop(struct doc_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < 2; i++)
		if (w->t[i].started)
			pthread_join(w->t[i].thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct doc_worker *doc_worker_start(struct cp_app *app, char *err, size_t errlen)
{
	struct doc_worker *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->app = app;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	for (int i = 0; i < 2; i++) {
		w->t[i] = (struct doc_thread){ .w = w, .fulls = i };
		if (pthread_create(&w->t[i].thread, NULL, thread_main, &w->t[i]) != 0) {
			snprintf(err, errlen, "cannot start the document worker");
			doc_worker_stop(w);
			return NULL;
		}
		w->t[i].started = 1;
	}
	return w;
}

void doc_worker_kick(void *vw)
{
	struct doc_worker *w = vw;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->t[0].kicked = w->t[1].kicked = 1;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
}
