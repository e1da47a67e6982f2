/* Connection pool and transaction runner. */
#include "db.h"
#include "deadline.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TX_MAX_ATTEMPTS 5

struct db_conn {
	PGconn *pg;
	int in_use;
	char sqlstate[6];
	char constraint[64];      /* the constraint the last failure names, "" if none */
	struct db_pool *pool;
	int busy_fd;           /* the socket while a statement runs, else -1; under pool->lock */
};

struct db_pool {
	char **keys, **vals;   /* parsed conninfo plus our defaults, NULL-terminated */
	unsigned size;
	unsigned acquire_timeout_ms;
	struct db_conn *conns;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	unsigned in_use;
	atomic_ullong tx_ok, tx_rolled_back, tx_retries, tx_failed, acquire_timeouts;
	atomic_ullong reconnects; /* broken or abandoned sessions replaced */
	db_conn_check_fn check;   /* run on every new session; NULL: none */
	void *check_arg;
	int closing;              /* db_pool_interrupt() was called; under lock */
};

const char *db_status_str(enum db_status st)
{
	static const char *const names[] = { "ok", "not_found", "conflict", "invalid",
		                                 "retry", "unavailable", "error", "rollback",
		                                 "commit_unknown" };
	return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

static void free_kv(char **keys, char **vals)
{
	if (keys)
		for (size_t i = 0; keys[i]; i++) {
			free(keys[i]);
			free(vals[i]);
		}
	free(keys);
	free(vals);
}

/* Parses `conninfo` and adds defaults the caller did not set: a connect
 * timeout (so that a dead server fails fast instead of hanging a request)
 * and TCP keepalives (so that a vanished server is noticed). */
static int build_params(struct db_pool *p, const char *conninfo, char *err, size_t errlen)
{
	static const char *const defaults[][2] = {
		{ "connect_timeout", "3" }, { "keepalives", "1" }, { "keepalives_idle", "30" },
		{ "application_name", "celltrail" },
	};
	const size_t ndef = sizeof defaults / sizeof defaults[0];
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	size_t n = 0, k = 0;

	if (!opts) {
		/* perr may echo the string; it can hold a password, so do not show it. */
		snprintf(err, errlen, "the database connection string is malformed");
		PQfreemem(perr);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	p->keys = calloc(n + ndef + 1, sizeof *p->keys);
	p->vals = calloc(n + ndef + 1, sizeof *p->vals);
	if (!p->keys || !p->vals)
		goto oom;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;
		for (size_t d = 0; !v && d < ndef; d++)
			if (strcmp(o->keyword, defaults[d][0]) == 0)
				v = defaults[d][1];
		if (!v)
			continue;
		p->keys[k] = strdup(o->keyword);
		p->vals[k] = strdup(v);
		if (!p->keys[k] || !p->vals[k++])
			goto oom;
	}
	PQconninfoFree(opts);
	return 0;
oom:
	PQconninfoFree(opts);
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct db_pool *db_pool_new(const char *conninfo, unsigned size, unsigned acquire_timeout_ms,
                            char *err, size_t errlen)
{
	struct db_pool *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (build_params(p, conninfo, err, errlen))
		goto fail;
	p->size = size ? size : 1;
	p->acquire_timeout_ms = acquire_timeout_ms;
	p->conns = calloc(p->size, sizeof *p->conns);
	if (!p->conns) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->size; i++) {
		p->conns[i].pool = p;
		p->conns[i].busy_fd = -1;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->freed, &ca);
	pthread_condattr_destroy(&ca);
	return p;
fail:
	free_kv(p->keys, p->vals);
	free(p);
	return NULL;
}

void db_pool_free(struct db_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->size; i++)
		if (p->conns[i].pg)
			PQfinish(p->conns[i].pg);
	free(p->conns);
	free_kv(p->keys, p->vals);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->freed);
	free(p);
}

void db_pool_set_check(struct db_pool *p, db_conn_check_fn fn, void *arg)
{
	p->check = fn;
	p->check_arg = arg;
}

/* Makes sure `c` has a working session; (re)connects when it has none,
 * and a new session is used only once the pool's check accepted it. */
static int ensure_connected(struct db_pool *p, struct db_conn *c)
{
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
		atomic_fetch_add(&p->reconnects, 1);
	}
	c->pg = PQconnectdbParams((const char *const *)p->keys, (const char *const *)p->vals, 0);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
		msg[strcspn(msg, "\n")] = '\0';
		log_warn_limited(NULL, "database connection failed: %s", msg);
		PQfinish(c->pg);
		c->pg = NULL;
		return -1;
	}
	if (p->check && p->check(c, p->check_arg) != 0) {
		PQfinish(c->pg);
		c->pg = NULL;
		return -1;
	}
	return 0;
}

struct db_conn *db_acquire(struct db_pool *p)
{
	struct timespec deadline;
	struct db_conn *c = NULL;

	deadline = deadline_in(CLOCK_MONOTONIC, p->acquire_timeout_ms);
	pthread_mutex_lock(&p->lock);
	while (!c) {
		if (p->closing) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		/* Prefer a connection that is already open. */
		for (unsigned i = 0; i < p->size && !c; i++)
			if (!p->conns[i].in_use && p->conns[i].pg)
				c = &p->conns[i];
		for (unsigned i = 0; i < p->size && !c; i++)
			if (!p->conns[i].in_use)
				c = &p->conns[i];
		if (c)
			break;
		if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			atomic_fetch_add(&p->acquire_timeouts, 1);
			log_warn_limited(NULL, "no database connection free within %u ms", p->acquire_timeout_ms);
			return NULL;
		}
	}
	c->in_use = 1;
	p->in_use++;
	pthread_mutex_unlock(&p->lock);

	if (ensure_connected(p, c)) {
		db_release(p, c);
		return NULL;
	}
	c->sqlstate[0] = '\0';
	return c;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
	if (!c)
		return;
	/* A connection left inside a transaction must not be reused as is. */
	if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PQfinish(c->pg);
		c->pg = NULL;
		atomic_fetch_add(&p->reconnects, 1);
	}
	pthread_mutex_lock(&p->lock);
	c->in_use = 0;
	p->in_use--;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

const char *db_last_sqlstate(const struct db_conn *c)
{
	return c->sqlstate;
}

const char *db_last_constraint(const struct db_conn *c)
{
	return c->constraint;
}

/* 57014: query_canceled (statement_timeout); 55P03: lock_not_available. */
static int is_timeout(const char *state)
{
	return !strcmp(state, "57014") || !strcmp(state, "55P03");
}

static enum db_status classify(const char *state)
{
	if (!state || !*state)
		return DB_UNAVAILABLE;
	if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
		return DB_RETRY;
	if (!strcmp(state, "23505") || !strcmp(state, "23P01"))
		return DB_CONFLICT;
	if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))
		return DB_INVALID;
	/* 08P01 is a protocol violation: our bug (a wrong parameter count, say),
	 * not an outage, so it is neither retried nor answered 503. */
	if (!strcmp(state, "08P01"))
		return DB_ERROR;
	/* 08: connection exception; 57P01..57P03: admin shutdown, crash, cannot connect now */
	if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3))
		return DB_UNAVAILABLE;
	/* A statement or lock wait cut by statement_timeout or lock_timeout:
	 * the database is too slow to answer, not a bug. */
	if (is_timeout(state))
		return DB_UNAVAILABLE;
	return DB_ERROR;
}

/* Publishes the connection's socket as busy (under the lock, so that
 * db_pool_interrupt() can cut it while this thread waits on it, never
 * after it was closed); 0, or -1 when the pool is closing. */
static int busy_begin(struct db_conn *c)
{
	struct db_pool *p = c->pool;
	pthread_mutex_lock(&p->lock);
	int closing = p->closing;
	if (!closing)
		c->busy_fd = PQsocket(c->pg);
	pthread_mutex_unlock(&p->lock);
	if (closing)
		c->sqlstate[0] = '\0';
	return closing ? -1 : 0;
}

static void busy_end(struct db_conn *c)
{
	pthread_mutex_lock(&c->pool->lock);
	c->busy_fd = -1;
	pthread_mutex_unlock(&c->pool->lock);
}

static enum db_status failed(struct db_conn *c, PGresult *r);

enum db_status db_exec(struct db_conn *c, PGresult **res, const char *sql, int nparams,
                       const char *const *params)
{
	if (res)
		*res = NULL;
	if (busy_begin(c) != 0)
		return DB_UNAVAILABLE;
	PGresult *r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	busy_end(c);
	ExecStatusType est = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (est == PGRES_COMMAND_OK || est == PGRES_TUPLES_OK) {
		c->sqlstate[0] = c->constraint[0] = '\0';
		if (res)
			*res = r;
		else
			PQclear(r);
		return DB_OK;
	}
	return failed(c, r);
}

enum db_status db_copy_out(struct db_conn *c, const char *sql, db_line_fn fn, void *arg)
{
	if (busy_begin(c) != 0)
		return DB_UNAVAILABLE;
	PGresult *r = PQexec(c->pg, sql);
	if (r && PQresultStatus(r) == PGRES_COPY_OUT) {
		PQclear(r);
		char *line;
		int n, stop = 0;
		/* Read to the end even once `fn` stopped: the rows are on their
		 * way, and the connection is usable only after them. */
		while ((n = PQgetCopyData(c->pg, &line, 0)) > 0) {
			if (!stop) {
				size_t len = (size_t)n;
				if (len && line[len - 1] == '\n')
					line[--len] = '\0';
				stop = fn(line, len, arg) != 0;
			}
			PQfreemem(line);
		}
		r = PQgetResult(c->pg);
		if (n == -2 && r && PQresultStatus(r) == PGRES_COPY_OUT) {
			/* libpq could not take a row (out of memory) and is still
			 * in the COPY: the session cannot be used again. */
			PQclear(r);
			busy_end(c);
			log_error(NULL, "database: a COPY could not be read to its end: %s", PQerrorMessage(c->pg));
			PQfinish(c->pg);
			c->pg = NULL;
			c->sqlstate[0] = c->constraint[0] = '\0';
			return DB_ERROR;
		}
		/* The end of the command: every result read, as PQexec does. */
		for (PGresult *more; (more = PQgetResult(c->pg));)
			PQclear(more);
	}
	busy_end(c);
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		c->sqlstate[0] = c->constraint[0] = '\0';
		PQclear(r);
		return DB_OK;
	}
	return failed(c, r);
}

/* A statement failed: its SQLSTATE kept on `c`, classified, logged when
 * it is ours or the server's (see db_exec); `r` is cleared. */
static enum db_status failed(struct db_conn *c, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
	snprintf(c->constraint, sizeof c->constraint, "%s", cons ? cons : "");
	snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
	enum db_status st = PQstatus(c->pg) == CONNECTION_BAD ? DB_UNAVAILABLE : classify(state);
	if (st == DB_ERROR || st == DB_UNAVAILABLE) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
		msg[strcspn(msg, "\n")] = '\0';
		/* A database that went away fails every statement in flight. */
		static struct log_limit unavailable;
		json_t *f = json_pack("{ss}", "sqlstate", c->sqlstate);
		if (st == DB_ERROR)
			log_write(LOG_ERROR, NULL, f, "database: %s", msg);
		else
			log_write_limited(&unavailable, LOG_WARN, NULL, f, "database: %s", msg);
	}
	PQclear(r);
	return st;
}

static json_t *decode(PGresult *r, int row)
{
	const char *text = PQgetvalue(r, row, 0);
	json_error_t e;
	json_t *v = json_loadb(text, (size_t)PQgetlength(r, row, 0), JSON_DECODE_ANY, &e);
	if (!v)
		log_error(NULL, "database returned JSON that does not parse: %s", e.text);
	return v;
}

enum db_status db_json_one(struct db_conn *c, json_t **out, const char *sql, int nparams,
                           const char *const *params)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r, sql, nparams, params);
	*out = NULL;
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else if (!(*out = decode(r, 0)))
		st = DB_ERROR;
	PQclear(r);
	return st;
}

static enum db_status rows(struct db_conn *c, json_t **out, const char *sql, int nparams,
                           const char *const *params, int keyed)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r, sql, nparams, params);
	*out = NULL;
	if (st != DB_OK)
		return st;
	if (keyed && PQnfields(r) < 3) {
		PQclear(r);
		log_error(NULL, "a page query must return doc, sort timestamp and id");
		return DB_ERROR;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *v = decode(r, i);
		if (!v) {
			json_decref(arr);
			PQclear(r);
			return DB_ERROR;
		}
		if (keyed && json_is_object(v)) {
			json_object_set_new(v, "_ts", json_integer(strtoll(PQgetvalue(r, i, 1), NULL, 10)));
			json_object_set_new(v, "_id", json_string(PQgetvalue(r, i, 2)));
		}
		json_array_append_new(arr, v);
	}
	PQclear(r);
	*out = arr;
	return DB_OK;
}

enum db_status db_json_rows(struct db_conn *c, json_t **out, const char *sql, int nparams,
                            const char *const *params)
{
	return rows(c, out, sql, nparams, params, 0);
}

enum db_status db_json_page(struct db_conn *c, json_t **out, const char *sql, int nparams,
                            const char *const *params)
{
	return rows(c, out, sql, nparams, params, 1);
}

static void backoff(int attempt)
{
	unsigned char rnd = 0;
	RAND_bytes(&rnd, 1);
	/* 2, 4, 8, 16 ms, each with up to as much again of jitter */
	useconds_t base = 1000u << attempt;
	usleep(base + (useconds_t)rnd * base / 255u);
}

enum db_status db_tx_on(struct db_conn *c, db_tx_fn fn, void *ctx)
{
	enum db_status st = db_exec(c, NULL, "BEGIN", 0, NULL);
	if (st != DB_OK)
		return st;
	st = fn(c, ctx);
	if (st == DB_OK)
		return db_exec(c, NULL, "COMMIT", 0, NULL);
	if (db_exec(c, NULL, "ROLLBACK", 0, NULL) != DB_OK)
		return DB_UNAVAILABLE;
	return st;
}

enum db_status db_tx(struct db_pool *p, enum db_isolation iso, db_tx_fn fn, void *ctx)
{
	static const char *const begin_sql[] = {
		"BEGIN ISOLATION LEVEL READ COMMITTED",
		"BEGIN ISOLATION LEVEL REPEATABLE READ",
		"BEGIN ISOLATION LEVEL SERIALIZABLE",
	};
	enum db_status st = DB_UNAVAILABLE;

	for (int attempt = 0; attempt < TX_MAX_ATTEMPTS; attempt++) {
		struct db_conn *c = db_acquire(p);
		int commit_sent = 0;

		if (!c) {
			st = DB_UNAVAILABLE;
			break;
		}
		st = iso == DB_AUTOCOMMIT ? DB_OK : db_exec(c, NULL, begin_sql[iso], 0, NULL);
		if (st == DB_OK)
			st = fn(c, ctx);
		if (st == DB_OK && iso != DB_AUTOCOMMIT) {
			commit_sent = 1;
			st = db_exec(c, NULL, "COMMIT", 0, NULL);
		}
		/* A timeout is not tried again: each attempt would wait as long. */
		int timed_out = st == DB_UNAVAILABLE && is_timeout(c->sqlstate);
		if (st != DB_OK && c->pg && PQstatus(c->pg) == CONNECTION_OK &&
		    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
			/* When it fails, db_release() drops the connection. */
			enum db_status rb = db_exec(c, NULL, "ROLLBACK", 0, NULL);
			(void)rb;
		}
		db_release(p, c);

		if (st == DB_OK) {
			atomic_fetch_add(&p->tx_ok, 1);
			return DB_OK;
		}
		if (st == DB_ROLLBACK) {
			atomic_fetch_add(&p->tx_rolled_back, 1);
			return st;
		}
		if (st == DB_UNAVAILABLE && commit_sent) {
			st = DB_COMMIT_UNKNOWN;
			break;
		}
		int retry = st == DB_RETRY || (st == DB_UNAVAILABLE && !timed_out);
		if (!retry || attempt == TX_MAX_ATTEMPTS - 1)
			break;
		atomic_fetch_add(&p->tx_retries, 1);
		backoff(attempt);
	}
	atomic_fetch_add(&p->tx_failed, 1);
	return st;
}

enum db_status db_ping(struct db_pool *p)
{
	struct db_conn *c = db_acquire(p);
	if (!c)
		return DB_UNAVAILABLE;
	enum db_status st = db_exec(c, NULL, "SELECT 1", 0, NULL);
	if (st == DB_UNAVAILABLE) {
		/* The session died under us (server restart): one fresh try. */
		st = ensure_connected(p, c) == 0 ? db_exec(c, NULL, "SELECT 1", 0, NULL) : DB_UNAVAILABLE;
	}
	db_release(p, c);
	return st;
}

int db_pool_set_timeouts(struct db_pool *p, unsigned statement_ms)
{
	char opt[160];

	if (!statement_ms)
		return 0;
	/* A session idle inside a transaction is held by a stalled client:
	 * the server ends it after the same time. */
	snprintf(opt, sizeof opt, "-c statement_timeout=%u -c idle_in_transaction_session_timeout=%u", statement_ms,
	         statement_ms);
	return db_pool_add_options(p, opt);
}

int db_pool_add_options(struct db_pool *p, const char *opt)
{
	size_t k = 0;

	for (; p->keys[k]; k++)
		if (!strcmp(p->keys[k], "options"))
			break;
	/* The connection string's own options come last, so they win. */
	size_t len = strlen(opt) + 2 + (p->keys[k] ? strlen(p->vals[k]) : 0);
	char *v = malloc(len);
	char *key = p->keys[k] ? NULL : strdup("options");
	if (!v || (!p->keys[k] && !key)) {
		free(v);
		free(key);
		return -1;
	}
	snprintf(v, len, "%s%s%s", opt, p->keys[k] ? " " : "", p->keys[k] ? p->vals[k] : "");
	if (p->keys[k]) {
		free(p->vals[k]);
	} else {
		p->keys[k] = key; /* the arrays have room: "options" is one of libpq's keywords */
		p->keys[k + 1] = NULL;
	}
	p->vals[k] = v;
	return 0;
}

void db_pool_interrupt(struct db_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->closing = 1;
	/* The sockets stay open (their owners close them): a shutdown makes the
	 * waiting libpq call return at once with the connection broken. */
	for (unsigned i = 0; i < p->size; i++)
		if (p->conns[i].busy_fd >= 0)
			shutdown(p->conns[i].busy_fd, SHUT_RDWR);
	pthread_cond_broadcast(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

struct db_interrupt_timer {
	struct db_pool *pool;
	unsigned ms;
	int cancelled;          /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
};

static void *interrupt_timer_main(void *arg)
{
	struct db_interrupt_timer *t = arg;
	struct timespec at;
	at = deadline_in(CLOCK_MONOTONIC, t->ms);
	pthread_mutex_lock(&t->lock);
	int fire = 0;
	while (!t->cancelled && !fire)
		fire = pthread_cond_timedwait(&t->cond, &t->lock, &at) == ETIMEDOUT;
	pthread_mutex_unlock(&t->lock);
	if (fire && !t->cancelled)
		db_pool_interrupt(t->pool);
	return NULL;
}

struct db_interrupt_timer *db_pool_interrupt_after(struct db_pool *pool, unsigned ms)
{
	struct db_interrupt_timer *t = calloc(1, sizeof *t);
	pthread_condattr_t ca;
	if (!t)
		return NULL;
	t->pool = pool;
	t->ms = ms;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t->thread, NULL, interrupt_timer_main, t) != 0) {
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return NULL;
	}
	return t;
}

void db_interrupt_timer_cancel(struct db_interrupt_timer *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->cancelled = 1;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void db_pool_stats(struct db_pool *p, struct db_stats *out)
{
	out->tx_ok = atomic_load(&p->tx_ok);
	out->tx_rolled_back = atomic_load(&p->tx_rolled_back);
	out->tx_retries = atomic_load(&p->tx_retries);
	out->tx_failed = atomic_load(&p->tx_failed);
	out->reconnects = atomic_load(&p->reconnects);
	out->acquire_timeouts = atomic_load(&p->acquire_timeouts);
	pthread_mutex_lock(&p->lock);
	out->size = p->size;
	out->in_use = p->in_use;
	pthread_mutex_unlock(&p->lock);
}

void db_array_add(struct buf *b, const char *s, size_t len)
{
	buf_append(b, b->len ? "," : "{", 1);
	buf_append(b, "\"", 1);
	for (size_t i = 0, run = 0; i <= len; i++) {
		if (i == len || s[i] == '"' || s[i] == '\\') {
			buf_append(b, s + run, i - run);
			if (i < len)
				buf_append(b, s[i] == '"' ? "\\\"" : "\\\\", 2);
			run = i + 1;
		}
	}
	buf_append(b, "\"", 1);
}

void db_array_end(struct buf *b)
{
	buf_append(b, b->len ? "}" : "{}", b->len ? 1 : 2);
}
