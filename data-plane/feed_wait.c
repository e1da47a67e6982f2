/* Long polls of the events feed: parked requests, their wake-ups and the
 * thread that polls for them (the contract is in feed_wait.h). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpdb.h"
#include "feed_wait.h"
#include "http.h"
#include "log.h"

/* Commit counters, one per bucket of tenants: a waiter compares its
 * tenant's bucket only, so another tenant's commits rarely make it read
 * again. */
#define GEN_BUCKETS 1024
/* Waiters one poll statement asks about; more are asked about in turns. */
#define POLL_BATCH 1000

enum reason { R_COMMIT, R_POLL, R_DEADLINE, R_DRAIN, R_COUNT };
static const char *const reason_names[R_COUNT] = { "commit", "poll", "deadline", "drain" };

struct waiter {
	struct http_req *req;
	uint64_t id;
	char tenant[37];
	uint64_t tx;
	int64_t seq;
	int64_t deadline_ms;
	struct waiter *next;
};

struct dp_feed {
	struct db_pool *db;
	long max_waiters;
	int64_t poll_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* the thread's sleep, cut short by stop */
	struct waiter *waiters;     /* lock; newest first */
	long nwaiters;              /* lock */
	uint64_t next_id;           /* lock */
	uint64_t gen[GEN_BUCKETS];  /* lock */
	int draining, stop;         /* lock */
	atomic_long parked;
	atomic_ulong wakeups[R_COUNT];
	atomic_ulong refused, polls, poll_failures;
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
                                 uint64_t gen, uint64_t tx, int64_t seq, int64_t deadline_ms)
{
	struct waiter *w = calloc(1, sizeof *w);
	enum dp_feed_parked ret = DP_FEED_NOMEM;
	if (!w)
		return ret;
	w->req = req;
	snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
	w->tx = tx;
	w->seq = seq;
	w->deadline_ms = deadline_ms;
	pthread_mutex_lock(&f->lock);
	if (f->draining) {
		ret = DP_FEED_DRAINING;
	} else if (f->gen[bucket(tenant)] != gen) {
		ret = DP_FEED_CHANGED;
	} else if (f->nwaiters >= f->max_waiters) {
		atomic_fetch_add(&f->refused, 1);
		ret = DP_FEED_FULL;
	} else {
		/* Suspended before another thread can see it to resume it. */
		http_req_suspend(req);
		w->id = ++f->next_id;
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
	(void)w, (void)arg;
	return R_DRAIN;
}

static enum reason sel_tenant(const struct waiter *w, const void *tenant)
{
	return strcmp(w->tenant, tenant) ? R_COUNT : R_COMMIT;
}

static enum reason sel_due(const struct waiter *w, const void *now)
{
	return w->deadline_ms <= *(const int64_t *)now ? R_DEADLINE : R_COUNT;
}

struct ready_set {
	const uint64_t *ids;   /* of the waiters asked about, ascending */
	const int *hit;        /* hit[i]: ids[i] has events ready */
	long n;
};

static enum reason sel_ready(const struct waiter *w, const void *arg)
{
	const struct ready_set *rs = arg;
	for (long lo = 0, hi = rs->n - 1; lo <= hi;) {
		long mid = (lo + hi) / 2;
		if (rs->ids[mid] == w->id)
			return rs->hit[mid] ? R_POLL : R_COUNT;
		if (rs->ids[mid] < w->id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return R_COUNT;
}

void dp_feed_committed(struct dp_feed *f, const char *tenant)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->gen[bucket(tenant)]++;
	pthread_mutex_unlock(&f->lock);
	resume_where(f, sel_tenant, tenant);
}

struct poll_q {
	struct buf tenants, txs, seqs;
	int *hit;
	long n;
};

static void on_ready(void *ctx, long i)
{
	struct poll_q *q = ctx;
	if (i >= 0 && i < q->n)
		q->hit[i] = 1;
}

static enum db_status poll_tx(struct db_conn *c, void *ctx)
{
	struct poll_q *q = ctx;
	return dp_db_feed_ready(c, q->tenants.p, q->txs.p, q->seqs.p, on_ready, q);
}

/* Asks the database which waiters (the oldest POLL_BATCH) may be handed
 * something now, and resumes those. */
static void poll_once(struct dp_feed *f)
{
	struct poll_q q;
	memset(&q, 0, sizeof q);
	struct asked {
		char tenant[37];
		uint64_t tx;
		int64_t seq;
	} *asked = NULL;
	uint64_t *ids = NULL;
	long n = 0;
	char num[24];

	pthread_mutex_lock(&f->lock);
	long total = f->nwaiters < POLL_BATCH ? f->nwaiters : POLL_BATCH;
	if (total > 0 && (ids = malloc((size_t)total * sizeof *ids)) &&
	    (asked = malloc((size_t)total * sizeof *asked)) && (q.hit = calloc((size_t)total, sizeof *q.hit))) {
		/* The list is newest first: the oldest `total` are its tail,
		 * taken from the end of the arrays so that ids ascend. */
		long skip = f->nwaiters - total;
		n = total;
		long i = total;
		for (struct waiter *w = f->waiters; w; w = w->next) {
			if (skip-- > 0)
				continue;
			i--;
			ids[i] = w->id;
			memcpy(asked[i].tenant, w->tenant, sizeof asked[i].tenant);
			asked[i].tx = w->tx;
			asked[i].seq = w->seq;
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (n == 0)
		goto out;
	q.n = n;
	for (long i = 0; i < n; i++) {
		db_array_add(&q.tenants, asked[i].tenant, strlen(asked[i].tenant));
		snprintf(num, sizeof num, "%" PRIu64, asked[i].tx);
		db_array_add(&q.txs, num, strlen(num));
		snprintf(num, sizeof num, "%" PRId64, asked[i].seq);
		db_array_add(&q.seqs, num, strlen(num));
	}
	db_array_end(&q.tenants);
	db_array_end(&q.txs);
	db_array_end(&q.seqs);
	if (q.tenants.failed || q.txs.failed || q.seqs.failed)
		goto out;
	atomic_fetch_add(&f->polls, 1);
	if (db_tx(f->db, DB_READ_COMMITTED, poll_tx, &q) != DB_OK) {
		/* The waiters still wake on local commits and at their deadline,
		 * when they read (and answer 503 if the database is still away). */
		atomic_fetch_add(&f->poll_failures, 1);
		goto out;
	}
	struct ready_set rs = { ids, q.hit, n };
	resume_where(f, sel_ready, &rs);
out:
	buf_free(&q.tenants);
	buf_free(&q.txs);
	buf_free(&q.seqs);
	free(q.hit);
	free(asked);
	free(ids);
}

static void *poll_main(void *arg)
{
	struct dp_feed *f = arg;
	log_set_task("feed_poll");
	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t ns = until.tv_nsec + (f->poll_ms % 1000) * 1000000;
		until.tv_sec += f->poll_ms / 1000 + ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&f->wake, &f->lock, &until);
		if (f->stop)
			break;
		long waiting = f->nwaiters;
		pthread_mutex_unlock(&f->lock);
		int64_t now = dp_feed_now_ms();
		resume_where(f, sel_due, &now);
		if (waiting)
			poll_once(f);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct dp_feed *dp_feed_start(struct db_pool *db, long max_waiters, int64_t poll_ms, char *err,
                              size_t errlen)
{
	struct dp_feed *f = calloc(1, sizeof *f);
	pthread_condattr_t ca;
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->db = db;
	f->max_waiters = max_waiters;
	f->poll_ms = poll_ms;
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&f->thread, NULL, poll_main, f) != 0) {
		snprintf(err, errlen, "cannot start the events feed's thread");
		pthread_cond_destroy(&f->wake);
		pthread_mutex_destroy(&f->lock);
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
	resume_where(f, sel_all, NULL);
}

void dp_feed_stop(struct dp_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = 1;
	f->draining = 1;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	resume_where(f, sel_all, NULL);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
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
	        "# HELP dp_feed_polls_total Statements asking the database which parked feed requests have events ready.\n"
	        "# TYPE dp_feed_polls_total counter\n"
	        "dp_feed_polls_total %lu\n"
	        "# HELP dp_feed_poll_failures_total Those statements that failed (waiters then wake on local commits and deadlines).\n"
	        "# TYPE dp_feed_poll_failures_total counter\n"
	        "dp_feed_poll_failures_total %lu\n",
	        atomic_load(&f->refused), atomic_load(&f->polls), atomic_load(&f->poll_failures));
}
