/* The DB layer against a real server: error classification, the
 * transaction runner's retries, and reconnection after a restart. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "it.h"
#include "log.h"

static char db_url[512];

static void setup(void)
{
	log_init("it-db", (enum log_level)(LOG_ERROR + 1)); /* the errors below are on purpose */
	it_create_db("it_db_layer", db_url, sizeof db_url);
	free(it_sql(db_url, "CREATE TABLE kv (k text PRIMARY KEY, v integer NOT NULL CHECK (v >= 0))"));
	free(it_sql(db_url, "INSERT INTO kv VALUES ('counter', 0)"));
}

static struct db_pool *pool(unsigned size)
{
	char err[256];
	struct db_pool *p = db_pool_new(db_url, size, 5000, err, sizeof err);
	ck_assert_msg(p, "%s", err);
	return p;
}

struct stmt { const char *sql; const char *arg; };

static enum db_status run_stmt(struct db_conn *c, void *ctx)
{
	struct stmt *s = ctx;
	const char *params[1] = { s->arg };
	return db_exec(c, NULL, s->sql, s->arg ? 1 : 0, params);
}

/* Errors are classified so that handlers can answer 409, 400 or 500. */
START_TEST(classifies_errors)
{
	struct db_pool *p = pool(2);
	struct stmt dup = { "INSERT INTO kv VALUES ($1, 1)", "counter" };
	struct stmt neg = { "UPDATE kv SET v = $1::int WHERE k = 'counter'", "-5" };
	struct stmt notint = { "SELECT $1::int", "abc" };
	struct stmt syntax = { "SELEC 1", NULL };
	/* A statement given more parameters than it names is our bug, not an
	 * outage: an error (500), never retried as "unavailable" (503). */
	struct stmt extra = { "SELECT 1", "surplus" };
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &dup), DB_CONFLICT);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &neg), DB_INVALID);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &notint), DB_INVALID);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &syntax), DB_ERROR);
	struct db_stats before, after;
	db_pool_stats(p, &before);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &extra), DB_ERROR);
	db_pool_stats(p, &after);
	ck_assert_int_eq(after.tx_retries, before.tx_retries);
	/* Parameters are data, never SQL. */
	struct stmt evil = { "INSERT INTO kv VALUES ($1, 7)", "x'); DROP TABLE kv; --" };
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &evil), DB_OK);
	char *v = it_sql(db_url, "SELECT v FROM kv WHERE k = 'x''); DROP TABLE kv; --'");
	ck_assert_str_eq(v, "7");
	free(v);
	db_pool_free(p);
}
END_TEST

struct incr { struct db_pool *pool; int ok, failed_retry, failed_other; };

/* Read, wait, write: two of these at once under SERIALIZABLE conflict. */
static enum db_status incr_tx(struct db_conn *c, void *ctx)
{
	(void)ctx;
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT v FROM kv WHERE k = 'counter'", 0, NULL);
	if (st != DB_OK)
		return st;
	char next[32];
	snprintf(next, sizeof next, "%d", atoi(PQgetvalue(r, 0, 0)) + 1);
	PQclear(r);
	st = db_exec(c, NULL, "SELECT pg_sleep(0.003)", 0, NULL);
	if (st != DB_OK)
		return st;
	const char *params[1] = { next };
	return db_exec(c, NULL, "UPDATE kv SET v = $1::int WHERE k = 'counter'", 1, params);
}

static void *incr_thread(void *arg)
{
	struct incr *in = arg;
	for (int i = 0; i < 15; i++) {
		enum db_status st = db_tx(in->pool, DB_SERIALIZABLE, incr_tx, NULL);
		if (st == DB_OK)
			in->ok++;
		else if (st == DB_RETRY)
			in->failed_retry++;
		else
			in->failed_other++;
	}
	return NULL;
}

static enum db_status select_one(struct db_conn *c, void *ctx);

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* The statement timeout: a statement cut by it is "unavailable" (503 for
 * a client), not an error (500), and is not run again. */
START_TEST(statement_timeout)
{
	struct db_pool *p = pool(1);
	struct timespec t0;
	struct db_stats before, after;
	struct stmt sleep = { "SELECT pg_sleep(3)", NULL };
	ck_assert_int_eq(db_pool_set_timeouts(p, 200), 0);
	db_pool_stats(p, &before);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, run_stmt, &sleep), DB_UNAVAILABLE);
	ck_assert_int_lt(elapsed_ms(&t0), 2000);
	db_pool_stats(p, &after);
	ck_assert_int_eq(after.tx_retries, before.tx_retries);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, select_one, NULL), DB_OK);
	db_pool_free(p);
}
END_TEST

struct waiter {
	struct db_pool *p;
	enum db_status st;
};

static void *lock_waiter(void *arg)
{
	struct waiter *w = arg;
	struct stmt lock = { "LOCK TABLE kv IN ACCESS EXCLUSIVE MODE", NULL };
	w->st = db_tx(w->p, DB_READ_COMMITTED, run_stmt, &lock);
	return NULL;
}

/* For shutdown: once the pool is interrupted, a statement waiting on the
 * server returns at once, and nothing waits on the database any more. */
START_TEST(interrupt_stops_waiting)
{
	struct db_pool *p = pool(2);
	struct waiter w = { p, DB_OK };
	pthread_t th;
	struct timespec t0;
	PGconn *holder = PQconnectdb(db_url);
	ck_assert_int_eq(PQstatus(holder), CONNECTION_OK);
	PQclear(PQexec(holder, "BEGIN"));
	PQclear(PQexec(holder, "LOCK TABLE kv IN ACCESS EXCLUSIVE MODE"));
	ck_assert_int_eq(pthread_create(&th, NULL, lock_waiter, &w), 0);
	/* Until the pool's statement waits on the lock. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		char *n = it_sql(db_url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
		                         "AND query LIKE 'LOCK TABLE kv%'");
		int waiting = atoi(n);
		free(n);
		if (waiting || elapsed_ms(&t0) > 10000)
			break;
		usleep(20000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	db_pool_interrupt(p);
	pthread_join(th, NULL);
	ck_assert_int_eq(w.st, DB_UNAVAILABLE);
	ck_assert_int_lt(elapsed_ms(&t0), 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, select_one, NULL), DB_UNAVAILABLE);
	ck_assert_int_lt(elapsed_ms(&t0), 1000);
	PQclear(PQexec(holder, "COMMIT"));
	PQfinish(holder);
	db_pool_free(p);
}
END_TEST

/* Serialization failures are retried: concurrent read-modify-write
 * transactions lose no update and count none twice. */
START_TEST(retries_serialization_failures)
{
	struct db_pool *p = pool(3);
	struct incr in[3] = { { p, 0, 0, 0 }, { p, 0, 0, 0 }, { p, 0, 0, 0 } };
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, incr_thread, &in[i]);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	int ok = 0;
	for (int i = 0; i < 3; i++) {
		ok += in[i].ok;
		ck_assert_int_eq(in[i].failed_other, 0);
	}
	struct db_stats s;
	db_pool_stats(p, &s);
	ck_assert_msg(s.tx_retries > 0, "no conflict happened: the test proves nothing");
	ck_assert_int_gt(ok, 0);
	char *v = it_sql(db_url, "SELECT v FROM kv WHERE k = 'counter'");
	ck_assert_int_eq(atoi(v), ok); /* every committed increment, and only those */
	free(v);
	db_pool_free(p);
}
END_TEST

static enum db_status select_one(struct db_conn *c, void *ctx)
{
	(void)ctx;
	return db_exec(c, NULL, "SELECT 1", 0, NULL);
}

/* After the server restarts, pooled connections are replaced on their
 * next use and the first transaction succeeds. */
START_TEST(reconnects_after_restart)
{
	struct db_pool *p = pool(2);
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, select_one, NULL), DB_OK);
	ck_assert_int_eq(db_ping(p), DB_OK);
	it_pg_stop();
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, select_one, NULL), DB_UNAVAILABLE);
	it_pg_start();
	ck_assert_int_eq(db_tx(p, DB_READ_COMMITTED, select_one, NULL), DB_OK);
	ck_assert_int_eq(db_ping(p), DB_OK);
	struct db_stats s;
	db_pool_stats(p, &s);
	ck_assert_int_ge(s.reconnects, 1);
	ck_assert_int_eq(s.in_use, 0);
	db_pool_free(p);
}
END_TEST

/* A malformed connection string is reported without echoing it (it may
 * hold a password). */
START_TEST(malformed_conninfo)
{
	char err[256];
	ck_assert_ptr_null(db_pool_new("postgresql://u:s3cret@host:notaport:/x?bogus=1", 1, 100, err, sizeof err));
	ck_assert_ptr_null(strstr(err, "s3cret"));
	ck_assert_ptr_nonnull(strstr(err, "malformed"));
}
END_TEST

Suite *db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("db");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, classifies_errors);
	tcase_add_test(tc, statement_timeout);
	tcase_add_test(tc, interrupt_stops_waiting);
	tcase_add_test(tc, retries_serialization_failures);
	tcase_add_test(tc, reconnects_after_restart);
	tcase_add_test(tc, malformed_conninfo);
	suite_add_tcase(s, tc);
	return s;
}
