/* The rate exchange between the instances of a region (see ratesync.h). */
#include "ratesync.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "background.h"
#include "buf.h"
#include "dp.h"
#include "dpdb.h"
#include "limits.h"
#include "log.h"
#include "secret.h"
#include "snapshot.h"

/* Instances silent for this many intervals are gone. */
#define TTL_INTERVALS 12
#define TTL_MIN_MS 1000
/* Rows of instances that died without stopping are purged every so many steps. */
#define PURGE_EVERY 40

struct item {
	char tenant[37];
	enum dp_bucket b;
	double mine, others;
};

struct dp_ratesync {
	struct dp_app *app;
	struct dp_loop *loop;
	char id[33];
	int64_t ttl_ms;
	int64_t last_ns, last_ok_ns;
	unsigned long steps;
	int alone;             /* acting alone after losing touch */
	struct item *items;
	size_t nitems, cap;
	int oom;
	atomic_ullong failures;
	atomic_long live;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_demand(void *ctx, const char *tenant, enum dp_bucket b, double demand)
{
	struct dp_ratesync *r = ctx;
	if (r->nitems == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct item *it = realloc(r->items, cap * sizeof *it);
		if (!it) {
			r->oom = 1;
			return;
		}
		r->items = it;
		r->cap = cap;
	}
	struct item *it = &r->items[r->nitems++];
	memcpy(it->tenant, tenant, sizeof it->tenant);
	it->b = b;
	it->mine = demand;
	it->others = 0;
}

static void on_peers(void *ctx, long i, double others)
{
	struct dp_ratesync *r = ctx;
	if (i >= 0 && (size_t)i < r->nitems)
		r->items[i].others = others;
}

struct sync_q {
	struct dp_ratesync *r;
	const char *tenants, *buckets, *demands;
	int purge;
	long live;
};

static enum db_status sync_tx(struct db_conn *c, void *ctx)
{
	struct sync_q *q = ctx;
	for (size_t i = 0; i < q->r->nitems; i++)
		q->r->items[i].others = 0; /* the body may run again */
	return dp_db_rate_sync(c, q->r->id, q->tenants, q->buckets, q->demands, q->r->ttl_ms, q->purge,
	                       on_peers, q->r, &q->live);
}

static int64_t step(void *ctx)
{
	struct dp_ratesync *r = ctx;
	struct dp_limits *l = r->app->limits;
	struct buf tenants = { 0 }, buckets = { 0 }, demands = { 0 };
	int64_t now = mono_ns();
	char num[32];

	r->nitems = 0;
	r->oom = 0;
	dp_limits_demand(l, (double)(now - r->last_ns) * 1e-9, on_demand, r);
	r->last_ns = now;
	/* A deleted tenant's demand is not published: its erasure deletes its
	 * rows, and nothing may write them back; nor that of a tenant the
	 * document no longer holds (erased, or moved away). */
	const struct dp_snapshot *snap = dp_snaps_enter(r->app->snaps);
	size_t kept = 0;
	for (size_t i = 0; i < r->nitems; i++) {
		const struct cfgdoc_tenant *t = snap ? cfgdoc_find_tenant(snap->doc, r->items[i].tenant) : NULL;
		if (t && t->status != 'd')
			r->items[kept++] = r->items[i];
	}
	dp_snaps_leave(r->app->snaps);
	r->nitems = kept;
	for (size_t i = 0; i < r->nitems; i++) {
		const char *bn = dp_bucket_names[r->items[i].b];
		int n = snprintf(num, sizeof num, "%.3f", r->items[i].mine);
		db_array_add(&tenants, r->items[i].tenant, strlen(r->items[i].tenant));
		db_array_add(&buckets, bn, strlen(bn));
		db_array_add(&demands, num, (size_t)n);
	}
	db_array_end(&tenants);
	db_array_end(&buckets);
	db_array_end(&demands);
	struct sync_q q = { .r = r, .tenants = tenants.p, .buckets = buckets.p, .demands = demands.p,
		                .purge = r->steps++ % PURGE_EVERY == 0 };
	/* A bucket left out for want of memory keeps its share: better than
	 * publishing a demand that is too low. */
	enum db_status st = r->oom || tenants.failed || buckets.failed || demands.failed
	                        ? DB_ERROR
	                        : db_tx(r->app->db, DB_READ_COMMITTED, sync_tx, &q);
	buf_free(&tenants);
	buf_free(&buckets);
	buf_free(&demands);
	if (st == DB_OK) {
		long live = q.live < 1 ? 1 : q.live;
		atomic_store(&r->live, live);
		dp_limits_share_default(l, 1.0 / (double)live, 0);
		for (size_t i = 0; i < r->nitems; i++) {
			struct item *it = &r->items[i];
			dp_limits_share_set(l, it->tenant, it->b, it->mine / (it->mine + it->others));
		}
		if (r->alone)
			log_info(NULL, "rate limits shared with the region's instances again");
		r->alone = 0;
		r->last_ok_ns = now;
	} else {
		atomic_fetch_add(&r->failures, 1);
		if (!r->alone && now - r->last_ok_ns > r->ttl_ms * 1000000) {
			log_warn(NULL, "rate limits: no exchange with the region's instances for %lld ms;"
			               " this instance applies the plans' whole rates until it is back",
			         (long long)r->ttl_ms);
			dp_limits_share_default(l, 1.0, 1);
			atomic_store(&r->live, 1);
			r->alone = 1;
		}
	}
	return r->app->cfg.rate_sync_ms;
}

struct dp_ratesync *dp_ratesync_start(struct dp_app *app)
{
	unsigned char rnd[16];
	struct dp_ratesync *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	if (secret_random(rnd, sizeof rnd) != 0) {
		free(r);
		return NULL;
	}
	/* Random, not DP_INSTANCE: two instances given one name by mistake
	 * must still count as two. */
	secret_hex(rnd, sizeof rnd, r->id);
	r->app = app;
	r->ttl_ms = app->cfg.rate_sync_ms * TTL_INTERVALS;
	if (r->ttl_ms < TTL_MIN_MS)
		r->ttl_ms = TTL_MIN_MS;
	r->last_ns = r->last_ok_ns = mono_ns();
	atomic_init(&r->live, 1);
	if (!(r->loop = dp_loop_start("rate_sync", step, r))) {
		free(r);
		return NULL;
	}
	return r;
}

static enum db_status forget_tx(struct db_conn *c, void *ctx)
{
	return dp_db_rate_forget(c, ctx);
}

void dp_ratesync_stop(struct dp_ratesync *r)
{
	if (!r)
		return;
	dp_loop_stop(r->loop);
	/* The others see this instance gone at once instead of after the TTL.
	 * Not tried when the database was already out of reach: the rows
	 * expire by themselves, and stopping should not wait on it. */
	if (!r->alone && db_tx(r->app->db, DB_READ_COMMITTED, forget_tx, r->id) != DB_OK)
		log_warn(NULL, "rate limits: could not withdraw this instance's demand; it expires by itself");
	free(r->items);
	free(r);
}

void dp_ratesync_metrics(struct dp_ratesync *r, FILE *out)
{
	fprintf(out,
	        "# HELP dp_rate_instances Instances of the region this one shares tenants' rate limits with, itself included.\n"
	        "# TYPE dp_rate_instances gauge\ndp_rate_instances %ld\n"
	        "# HELP dp_rate_sync_failures_total Rate exchanges with the regional database that failed.\n"
	        "# TYPE dp_rate_sync_failures_total counter\ndp_rate_sync_failures_total %llu\n",
	        atomic_load(&r->live), atomic_load(&r->failures));
}
