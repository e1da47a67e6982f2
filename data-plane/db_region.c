/* SQL of the region identity check, and the check every new database
 * session passes before any statement of the data plane runs on it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp.h"
#include "log.h"

#define LOG_EVERY_S 60

struct region_q {
	const char *region;
	int claim;
	char owner[64];
};

/* Runs without BEGIN as well: the check of a new session calls it directly. */
static enum db_status region_tx(struct db_conn *c, void *ctx)
{
	struct region_q *q = ctx;
	const char *params[1] = { q->region };
	PGresult *r;
	enum db_status st;

	q->owner[0] = '\0';
	/* Before the first migration there is no table: the database is unclaimed. */
	st = db_exec(c, &r, "SELECT to_regclass('region_identity') IS NOT NULL", 0, NULL);
	if (st != DB_OK)
		return st;
	int migrated = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!migrated)
		return DB_OK;
	if (q->claim) {
		st = db_exec(c, NULL,
		             "INSERT INTO region_identity (region) VALUES ($1) ON CONFLICT DO NOTHING", 1,
		             params);
		if (st != DB_OK)
			return st;
	}
	st = db_exec(c, &r, "SELECT region FROM region_identity", 0, NULL);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 1)
		snprintf(q->owner, sizeof q->owner, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

static enum dp_region_check judge(const struct region_q *q)
{
	if (!q->owner[0])
		return DP_REGION_UNCLAIMED;
	return strcmp(q->owner, q->region) == 0 ? DP_REGION_OK : DP_REGION_MISMATCH;
}

enum dp_region_check dp_db_region_claim(struct db_pool *db, const char *region, char *owner,
                                        size_t len)
{
	struct region_q q = { .region = region, .claim = 1 };
	if (db_tx(db, DB_READ_COMMITTED, region_tx, &q) != DB_OK)
		return DP_REGION_UNKNOWN;
	snprintf(owner, len, "%s", q.owner);
	return judge(&q);
}

/* ---- the per-session guard ---- */

struct dp_region_guard {
	const char *region;
	atomic_int state;                   /* enum dp_region_check of the last session checked */
	atomic_ullong failures[2];          /* [0] wrong region, [1] unclaimed */
	pthread_mutex_t lock;               /* owner and the log's pace */
	char owner[64];
	int64_t last_logged;                /* monotonic seconds; 0: never */
	int logged_state;
	unsigned long long unlogged;
};

struct dp_region_guard *dp_region_guard_new(const char *region)
{
	struct dp_region_guard *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->region = region;
	atomic_init(&g->state, DP_REGION_UNKNOWN);
	g->logged_state = DP_REGION_UNKNOWN;
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

void dp_region_guard_free(struct dp_region_guard *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec + 1;
}

int dp_region_guard_check(struct db_conn *c, void *arg)
{
	struct dp_region_guard *g = arg;
	struct region_q q = { .region = g->region };

	/* A session that breaks during the check is refused like one that
	 * failed it; the state stays what the last complete check found. */
	if (region_tx(c, &q) != DB_OK)
		return -1;
	enum dp_region_check v = judge(&q);
	int was = atomic_exchange(&g->state, (int)v);
	if (v != DP_REGION_OK)
		atomic_fetch_add(&g->failures[v == DP_REGION_MISMATCH ? 0 : 1], 1);

	/* Said when it changes, and while it lasts once a minute with the
	 * count of refusals in between: every request would log it otherwise. */
	int64_t now = mono_s();
	int say = 0;
	unsigned long long skipped = 0;
	pthread_mutex_lock(&g->lock);
	snprintf(g->owner, sizeof g->owner, "%s", q.owner);
	if ((int)v != g->logged_state || (v != DP_REGION_OK && now - g->last_logged >= LOG_EVERY_S)) {
		say = 1;
		skipped = g->unlogged;
		g->unlogged = 0;
		g->last_logged = now;
		g->logged_state = (int)v;
	} else if (v != DP_REGION_OK) {
		g->unlogged++;
	}
	pthread_mutex_unlock(&g->lock);
	if (say && v == DP_REGION_MISMATCH)
		log_write(LOG_ERROR, NULL, json_pack("{ss ss sI}", "owner", q.owner, "region", g->region,
		                                     "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches the database of region '%s', not '%s': its sessions are "
		          "refused and the events routes answer 503",
		          q.owner, g->region);
	else if (say && v == DP_REGION_UNCLAIMED)
		log_write(LOG_ERROR, NULL, json_pack("{ss sI}", "region", g->region, "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches a database not claimed for region '%s' (run 'data-plane "
		          "migrate'): its sessions are refused and the events routes answer 503",
		          g->region);
	else if (say && was != DP_REGION_UNKNOWN)
		log_info(NULL, "the regional database belongs to region '%s' again: sessions accepted", g->region);
	return v == DP_REGION_OK ? 0 : -1;
}

enum dp_region_check dp_region_guard_state(struct dp_region_guard *g, char *owner, size_t len)
{
	enum dp_region_check v = (enum dp_region_check)atomic_load(&g->state);
	pthread_mutex_lock(&g->lock);
	snprintf(owner, len, "%s", g->owner);
	pthread_mutex_unlock(&g->lock);
	return v;
}

void dp_region_guard_metrics(struct dp_region_guard *g, FILE *out)
{
	fprintf(out,
	        "# HELP dp_db_region_check_failures_total New database sessions refused because the "
	        "database belongs to another region or to none.\n"
	        "# TYPE dp_db_region_check_failures_total counter\n"
	        "dp_db_region_check_failures_total{reason=\"wrong_region\"} %llu\n"
	        "dp_db_region_check_failures_total{reason=\"unclaimed\"} %llu\n",
	        (unsigned long long)atomic_load(&g->failures[0]),
	        (unsigned long long)atomic_load(&g->failures[1]));
}
