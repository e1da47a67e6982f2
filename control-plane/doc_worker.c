/* The document worker: one thread that keeps every subject a request asked
 * for at its region's config version (cp_doc_refresh), woken when a
 * version rises (the LISTEN thread of longpoll.c) or a request waits, and
 * at least every second; once a minute it also prunes the change log. */
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

struct doc_worker {
	struct cp_app *app;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int kicked, stop;
};

static void *worker_main(void *arg)
{
	struct doc_worker *w = arg;
	time_t pruned = 0;
	log_set_task("doc_worker");
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		w->kicked = 0;
		pthread_mutex_unlock(&w->lock);
		time_t now = time(NULL);
		int prune = now - pruned >= PRUNE_EVERY_S;
		if (prune)
			pruned = now;
		cp_doc_refresh(w->app, prune);
		pthread_mutex_lock(&w->lock);
		struct timespec until = deadline_in(CLOCK_REALTIME, PASS_EVERY_MS);
		while (!w->stop && !w->kicked && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
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
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		snprintf(err, errlen, "cannot start the document worker");
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void doc_worker_kick(void *vw)
{
	struct doc_worker *w = vw;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->kicked = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void doc_worker_stop(struct doc_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
