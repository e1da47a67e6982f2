#include "background.h"
#include "deadline.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "../common/log.h" /* logging: data-plane/log.h (the tenants' logs) starts these loops */

struct dp_loop {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, woken;
	dp_step_fn step;
	void *ctx;
	const char *name;
};

static void *loop_main(void *arg)
{
	struct dp_loop *l = arg;
	log_set_task(l->name);
	for (;;) {
		int64_t ms = l->step(l->ctx);
		struct timespec until;
		until = deadline_in(CLOCK_MONOTONIC, ms);
		pthread_mutex_lock(&l->mu);
		while (!l->stop && !l->woken)
			if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0)
				break;
		int stop = l->stop;
		l->woken = 0;
		pthread_mutex_unlock(&l->mu);
		if (stop)
			return NULL;
	}
}

struct dp_loop *dp_loop_start(const char *name, dp_step_fn step, void *ctx)
{
	struct dp_loop *l = calloc(1, sizeof *l);
	pthread_condattr_t ca;
	if (!l)
		return NULL;
	l->step = step;
	l->ctx = ctx;
	l->name = name;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
		log_error(NULL, "cannot start the %s thread", name);
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		free(l);
		return NULL;
	}
	return l;
}

void dp_loop_wake(struct dp_loop *l)
{
	pthread_mutex_lock(&l->mu);
	l->woken = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void dp_loop_stop(struct dp_loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
