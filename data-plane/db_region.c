/* SQL of the region and cell identity check, and the check every new
 * database session passes before any statement of the data plane runs on it. */
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
	const char *cell;                   /* DP_CELL; NULL: the cell is not judged */
	int claim;
	int has_cell;                       /* the cell column exists (migration 0008) */
	char owner[64];                     /* the region recorded; "": none */
	char owner_cell[64];                /* the cell recorded; "": none (NULL) */
};

static enum db_status read_owner(struct db_conn *c, struct region_q *q)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            q->has_cell ? "SELECT region, cell FROM region_identity"
	                                        : "SELECT region FROM region_identity",
	                            0, NULL);
	if (st != DB_OK)
		return st;
	q->owner[0] = q->owner_cell[0] = '\0';
	if (PQntuples(r) == 1) {
		snprintf(q->owner, sizeof q->owner, "%s", PQgetvalue(r, 0, 0));
		if (q->has_cell && !PQgetisnull(r, 0, 1))
			snprintf(q->owner_cell, sizeof q->owner_cell, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return DB_OK;
}

/* Runs without BEGIN as well: the check of a new session calls it directly. */
static enum db_status region_tx(struct db_conn *c, void *ctx)
{
	struct region_q *q = ctx;
	const char *params[2] = { q->region, q->cell };
	PGresult *r;
	enum db_status st;

	q->owner[0] = q->owner_cell[0] = '\0';
	/* Before the first migration there is no table: the database is
	 * unclaimed. Before migration 0008 there is no cell column: no cell
	 * can have claimed it yet. */
	st = db_exec(c, &r,
	             "SELECT to_regclass('region_identity') IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute "
	             "WHERE attrelid = to_regclass('region_identity') AND attname = 'cell' AND attnum > 0 "
	             "AND NOT attisdropped)",
	             0, NULL);
	if (st != DB_OK)
		return st;
	int migrated = PQgetvalue(r, 0, 0)[0] == 't';
	q->has_cell = PQgetvalue(r, 0, 1)[0] == 't';
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
	if ((st = read_owner(c, q)) != DB_OK)
		return st;
	/* A database of this region that no cell claimed yet (one of the
	 * previous build, or migrated without DP_CELL) becomes this cell's, by
	 * migrate or by the first session of a data plane with DP_CELL. One
	 * statement, so that of two cells claiming at once one wins, and both
	 * read the winner below. Never a database of another region. */
	if (q->cell && q->has_cell && !q->owner_cell[0] && !strcmp(q->owner, q->region)) {
		st = db_exec(c, NULL, "UPDATE region_identity SET cell = $2 WHERE cell IS NULL AND region = $1",
		             2, params);
		if (st != DB_OK)
			return st;
		if ((st = read_owner(c, q)) != DB_OK)
			return st;
	}
	return DB_OK;
}

/* The region first: a database of another region is that, whatever its
 * cell. Without DP_CELL the cell is not looked at: a data plane of a
 * region without cells (the previous build, or this one without DP_CELL)
 * serves its region's database whichever cell claimed it, which is what a
 * rollback to the previous build needs. */
static enum dp_region_check judge(const struct region_q *q)
{
	if (!q->owner[0])
		return DP_REGION_UNCLAIMED;
	if (strcmp(q->owner, q->region) != 0)
		return DP_REGION_MISMATCH;
	if (!q->cell)
		return DP_REGION_OK;
	if (!q->owner_cell[0])
		return DP_REGION_UNCLAIMED; /* no cell column yet (before migration 0008) */
	return strcmp(q->owner_cell, q->cell) == 0 ? DP_REGION_OK : DP_REGION_WRONG_CELL;
}

/* The owner that disagrees: the cell when that is what differs. */
static const char *owner_of(const struct region_q *q, enum dp_region_check v)
{
	return v == DP_REGION_WRONG_CELL ? q->owner_cell : q->owner;
}

enum dp_region_check dp_db_region_claim(struct db_pool *db, const char *region, const char *cell,
                                        char *owner, size_t len)
{
	struct region_q q = { .region = region, .cell = cell, .claim = 1 };
	if (db_tx(db, DB_READ_COMMITTED, region_tx, &q) != DB_OK)
		return DP_REGION_UNKNOWN;
	enum dp_region_check v = judge(&q);
	snprintf(owner, len, "%s", owner_of(&q, v));
	return v;
}

/* ---- the per-session guard ---- */

struct dp_region_guard {
	const char *region;
	const char *cell;                   /* NULL: the cell is not judged */
	atomic_int state;                   /* enum dp_region_check of the last session checked */
	atomic_ullong failures[DP_REGION_UNKNOWN]; /* per enum dp_region_check but OK */
	pthread_mutex_t lock;               /* owner and the log's pace */
	char owner[64];
	int64_t last_logged;                /* monotonic seconds; 0: never */
	int logged_state;
	unsigned long long unlogged;
};

struct dp_region_guard *dp_region_guard_new(const char *region, const char *cell)
{
	struct dp_region_guard *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->region = region;
	g->cell = cell;
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

static void log_refusal(const struct dp_region_guard *g, const struct region_q *q, enum dp_region_check v,
                        unsigned long long skipped)
{
	if (v == DP_REGION_MISMATCH)
		log_write(LOG_ERROR, NULL, json_pack("{ss ss sI}", "owner", q->owner, "region", g->region,
		                                     "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches the database of region '%s', not '%s': its sessions are "
		          "refused and the events routes answer 503",
		          q->owner, g->region);
	else if (v == DP_REGION_WRONG_CELL)
		log_write(LOG_ERROR, NULL, json_pack("{ss ss ss sI}", "owner", q->owner_cell, "cell", g->cell,
		                                     "region", g->region, "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches the database of cell '%s', not '%s': its sessions are "
		          "refused and the events routes answer 503",
		          q->owner_cell, g->cell);
	else if (v == DP_REGION_UNCLAIMED && g->cell)
		log_write(LOG_ERROR, NULL, json_pack("{ss ss sI}", "cell", g->cell, "region", g->region,
		                                     "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches a database not claimed for cell '%s' of region '%s' (run "
		          "'data-plane migrate'): its sessions are refused and the events routes answer 503",
		          g->cell, g->region);
	else if (v == DP_REGION_UNCLAIMED)
		log_write(LOG_ERROR, NULL, json_pack("{ss sI}", "region", g->region, "not_logged", (json_int_t)skipped),
		          "DP_DATABASE_URL reaches a database not claimed for region '%s' (run 'data-plane "
		          "migrate'): its sessions are refused and the events routes answer 503",
		          g->region);
}

int dp_region_guard_check(struct db_conn *c, void *arg)
{
	struct dp_region_guard *g = arg;
	struct region_q q = { .region = g->region, .cell = g->cell };

	/* A session that breaks during the check is refused like one that
	 * failed it; the state stays what the last complete check found. */
	if (region_tx(c, &q) != DB_OK)
		return -1;
	enum dp_region_check v = judge(&q);
	int was = atomic_exchange(&g->state, (int)v);
	if (v != DP_REGION_OK)
		atomic_fetch_add(&g->failures[v], 1);

	/* Said when it changes, and while it lasts once a minute with the
	 * count of refusals in between: every request would log it otherwise. */
	int64_t now = mono_s();
	int say = 0;
	unsigned long long skipped = 0;
	pthread_mutex_lock(&g->lock);
	snprintf(g->owner, sizeof g->owner, "%s", owner_of(&q, v));
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
	if (say && v != DP_REGION_OK)
		log_refusal(g, &q, v, skipped);
	else if (say && was != DP_REGION_UNKNOWN && g->cell)
		log_info(NULL, "the database belongs to cell '%s' of region '%s' again: sessions accepted", g->cell,
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

/* The reasons are the values of /readyz's "database": one vocabulary. */
void dp_region_guard_metrics(struct dp_region_guard *g, FILE *out)
{
	fprintf(out,
	        "# HELP dp_db_region_check_failures_total New database sessions refused because the "
	        "database belongs to another region, to another cell of this one, or to none.\n"
	        "# TYPE dp_db_region_check_failures_total counter\n"
	        "dp_db_region_check_failures_total{reason=\"wrong_region\"} %llu\n"
	        "dp_db_region_check_failures_total{reason=\"unclaimed\"} %llu\n"
	        "dp_db_region_check_failures_total{reason=\"wrong_cell\"} %llu\n",
	        (unsigned long long)atomic_load(&g->failures[DP_REGION_MISMATCH]),
	        (unsigned long long)atomic_load(&g->failures[DP_REGION_UNCLAIMED]),
	        (unsigned long long)atomic_load(&g->failures[DP_REGION_WRONG_CELL]));
}
