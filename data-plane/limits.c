#include "limits.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
/* Below this many requests per second a bucket's demand counts as none
 * (one request in twenty seconds), and its share goes back to the default. */
#define DEMAND_MIN 0.05

const char *const dp_bucket_names[DP_NBUCKETS] = { [DP_BUCKET_READ] = "read",
	                                               [DP_BUCKET_WRITE] = "write" };

struct bucket {
	double tokens;        /* -1: new, starts full */
	int64_t last_ns;
	double share;         /* this instance's part of the region's rate; 0: the default */
	uint32_t count;       /* requests since the last dp_limits_demand */
	double demand;        /* requests per second, smoothed */
};

struct entry {
	char id[37];
	struct bucket b[DP_NBUCKETS];
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
	_Atomic double default_share;
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
	atomic_init(&l->default_share, 1.0);
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
	for (int b = 0; b < DP_NBUCKETS; b++)
		e->b[b].tokens = -1; /* a new bucket starts full */
	size_t i = (h / STRIPES) & (st->cap - 1);
	while (st->slots[i])
		i = (i + 1) & (st->cap - 1);
	st->slots[i] = e;
	st->n++;
	return e;
}

int dp_limits_take(struct dp_limits *l, const char *tenant, enum dp_bucket b, int64_t rate,
                   int64_t burst, int64_t now_ns, struct dp_rate *out)
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
	struct bucket *bk = &e->b[b];
	double def = atomic_load(&l->default_share);
	double share = bk->share > 0 ? bk->share : def;
	double r = (double)rate * share;
	/* The bucket holds at least half the default share of the burst. A
	 * share comes from a moment's demand, and can be far below the part of
	 * the tenant's traffic this instance gets next: an instance the
	 * balancer has just taken in counted its first request or two over a
	 * long interval. Until the next exchange corrects it, so small a
	 * bucket would refuse a tenant well under its plan. The refill stays
	 * at the share, so the region's sustained rate is still the plan's. */
	double cap = (double)burst * share;
	if (cap < (double)burst * def * 0.5)
		cap = (double)burst * def * 0.5;
	/* A bucket that cannot hold one token would refuse everything. */
	if (cap < 1.0)
		cap = 1.0;
	if (bk->tokens < 0) {
		bk->tokens = cap;
	} else if (now_ns > bk->last_ns) {
		bk->tokens += (double)(now_ns - bk->last_ns) * 1e-9 * r;
	}
	if (bk->tokens > cap)
		bk->tokens = cap; /* also when the burst or the share shrank */
	bk->last_ns = now_ns;
	if (bk->count < UINT32_MAX)
		bk->count++;
	out->allowed = bk->tokens >= 1.0;
	if (out->allowed)
		bk->tokens -= 1.0;
	double tokens = bk->tokens;
	pthread_mutex_unlock(&st->mu);

	/* The headers speak for the region: this instance's bucket stands for
	 * the region's burst, so its tokens for tokens * burst / cap in the
	 * whole region (tokens/share when the share sizes the bucket), as long
	 * as the balancer keeps spreading the tenant's requests as it did; the
	 * region refills at the plan's rate. Retry-After is this bucket's own:
	 * when it will hold a token again. */
	out->limit = rate;
	double held = tokens * (double)burst / cap;
	double left = floor(held);
	out->remaining = left > (double)burst ? burst : left < 0 ? 0 : (int64_t)left;
	double missing = (double)burst - held;
	out->reset_s = missing <= 0 ? 0 : (int64_t)ceil(missing / (double)rate);
	double need = 1.0 - tokens;
	out->retry_after_s = need <= 0 ? 1 : (int64_t)ceil(need / r);
	if (out->retry_after_s < 1)
		out->retry_after_s = 1;
	return 0;
}

void dp_limits_demand(struct dp_limits *l, double elapsed_s, dp_demand_fn fn, void *ctx)
{
	if (elapsed_s <= 0)
		return;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *st = &l->s[i];
		pthread_mutex_lock(&st->mu);
		for (size_t j = 0; j < st->cap; j++) {
			struct entry *e = st->slots[j];
			if (!e)
				continue;
			for (int b = 0; b < DP_NBUCKETS; b++) {
				struct bucket *bk = &e->b[b];
				double now = (double)bk->count / elapsed_s;
				/* Smoothed, so that one quiet interval does not give the
				 * tenant's whole rate to the other instances. */
				bk->demand = bk->demand > 0 ? 0.5 * bk->demand + 0.5 * now : now;
				bk->count = 0;
				if (bk->demand < DEMAND_MIN) {
					bk->demand = 0;
					bk->share = 0;
					continue;
				}
				fn(ctx, e->id, (enum dp_bucket)b, bk->demand);
			}
		}
		pthread_mutex_unlock(&st->mu);
	}
}

void dp_limits_share_set(struct dp_limits *l, const char *tenant, enum dp_bucket b, double share)
{
	struct stripe *st;
	struct entry *e = lookup(l, tenant, &st);
	if (e)
		e->b[b].share = share > 1.0 ? 1.0 : share;
	pthread_mutex_unlock(&st->mu);
}

void dp_limits_share_default(struct dp_limits *l, double share, int reset)
{
	atomic_store(&l->default_share, share > 1.0 ? 1.0 : share);
	if (!reset)
		return;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *st = &l->s[i];
		pthread_mutex_lock(&st->mu);
		for (size_t j = 0; j < st->cap; j++)
			if (st->slots[j])
				for (int b = 0; b < DP_NBUCKETS; b++)
					st->slots[j]->b[b].share = 0;
		pthread_mutex_unlock(&st->mu);
	}
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
