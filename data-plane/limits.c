#include "limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64

struct entry {
	char id[37];
	double tokens;
	int64_t last_ns;
	char period[8];
	int64_t used, as_of_us;
};

struct stripe {
	pthread_mutex_t mu;
	struct entry **slots;
	size_t cap, n;
} __attribute__((aligned(64)));

struct dp_limits {
	struct stripe s[STRIPES];
	pthread_mutex_t refresh_mu;
	char refreshed_period[8];
	int64_t refreshed_us;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct dp_limits *dp_limits_new(void)
{
	struct dp_limits *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&l->s[i].mu, NULL);
	pthread_mutex_init(&l->refresh_mu, NULL);
	return l;
}

void dp_limits_free(struct dp_limits *l)
{
	if (!l)
		return;
	for (int i = 0; i < STRIPES; i++) {
		for (size_t j = 0; j < l->s[i].cap; j++)
			free(l->s[i].slots[j]);
		free(l->s[i].slots);
		pthread_mutex_destroy(&l->s[i].mu);
	}
	pthread_mutex_destroy(&l->refresh_mu);
	free(l);
}

/* The entry of `id` in its stripe, made if missing; the stripe is locked
 * on return (also on NULL). */
static struct entry *lookup(struct dp_limits *l, const char *id, struct stripe **out)
{
	uint64_t h = hash(id);
	struct stripe *st = &l->s[h % STRIPES];
	*out = st;
	pthread_mutex_lock(&st->mu);
	if (st->cap) {
		for (size_t i = (h / STRIPES) & (st->cap - 1);; i = (i + 1) & (st->cap - 1)) {
			if (!st->slots[i])
				break;
			if (!strcmp(st->slots[i]->id, id))
				return st->slots[i];
		}
	}
	if ((st->n + 1) * 2 > st->cap) { /* keep the table at most half full */
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct entry **slots = calloc(cap, sizeof *slots);
		if (!slots)
			return NULL;
		for (size_t j = 0; j < st->cap; j++) {
			struct entry *e = st->slots[j];
			if (!e)
				continue;
			size_t i = (hash(e->id) / STRIPES) & (cap - 1);
			while (slots[i])
				i = (i + 1) & (cap - 1);
			slots[i] = e;
		}
		free(st->slots);
		st->slots = slots;
		st->cap = cap;
	}
	struct entry *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	snprintf(e->id, sizeof e->id, "%s", id);
	e->tokens = -1; /* a new bucket starts full */
	size_t i = (h / STRIPES) & (st->cap - 1);
	while (st->slots[i])
		i = (i + 1) & (st->cap - 1);
	st->slots[i] = e;
	st->n++;
	return e;
}

int dp_limits_take(struct dp_limits *l, const char *tenant, int64_t rate, int64_t burst,
                   int64_t now_ns, struct dp_rate *out)
{
	struct stripe *st;
	struct entry *e = lookup(l, tenant, &st);
	if (!e) {
		pthread_mutex_unlock(&st->mu);
		return -1;
	}
	if (rate < 1)
		rate = 1;
	if (burst < 1)
		burst = 1;
	if (e->tokens < 0) {
		e->tokens = (double)burst;
	} else if (now_ns > e->last_ns) {
		e->tokens += (double)(now_ns - e->last_ns) * 1e-9 * (double)rate;
	}
	if (e->tokens > (double)burst)
		e->tokens = (double)burst; /* also when the plan's burst shrank */
	e->last_ns = now_ns;
	out->allowed = e->tokens >= 1.0;
	if (out->allowed)
		e->tokens -= 1.0;
	double tokens = e->tokens;
	pthread_mutex_unlock(&st->mu);

	out->limit = burst;
	out->remaining = (int64_t)tokens;
	double missing = (double)burst - tokens;
	out->reset_s = missing <= 0 ? 0 : (int64_t)(missing / (double)rate + 0.999999);
	double need = 1.0 - tokens;
	out->retry_after_s = need <= 0 ? 1 : (int64_t)(need / (double)rate + 0.999999);
	if (out->retry_after_s < 1)
		out->retry_after_s = 1;
	return 0;
}

void dp_limits_usage_set(struct dp_limits *l, const char *tenant, const char *period,
                         int64_t events, int64_t as_of_us)
{
	struct stripe *st;
	struct entry *e = lookup(l, tenant, &st);
	if (e && (strcmp(e->period, period) != 0 || as_of_us >= e->as_of_us)) {
		if (strcmp(e->period, period) == 0 || strcmp(period, e->period) > 0) {
			snprintf(e->period, sizeof e->period, "%s", period);
			e->used = events;
			e->as_of_us = as_of_us;
		}
	}
	pthread_mutex_unlock(&st->mu);
}

void dp_limits_usage_refreshed(struct dp_limits *l, const char *period, int64_t as_of_us)
{
	pthread_mutex_lock(&l->refresh_mu);
	snprintf(l->refreshed_period, sizeof l->refreshed_period, "%s", period);
	l->refreshed_us = as_of_us;
	pthread_mutex_unlock(&l->refresh_mu);
}

int dp_limits_usage_get(struct dp_limits *l, const char *tenant, const char *period,
                        int64_t *events, int64_t *as_of_us)
{
	struct stripe *st;
	int64_t refreshed = 0;

	pthread_mutex_lock(&l->refresh_mu);
	if (!strcmp(l->refreshed_period, period))
		refreshed = l->refreshed_us;
	pthread_mutex_unlock(&l->refresh_mu);

	*events = 0;
	*as_of_us = refreshed;
	struct entry *e = lookup(l, tenant, &st);
	if (e && !strcmp(e->period, period)) {
		*events = e->used;
		if (e->as_of_us > *as_of_us)
			*as_of_us = e->as_of_us;
	}
	pthread_mutex_unlock(&st->mu);
	return *as_of_us != 0;
}
