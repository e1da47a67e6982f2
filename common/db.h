/* Database layer over libpq: a fixed-size connection pool, parameterized
 * statements only, and one transaction runner.
 *
 * The runner retries serialization failures and deadlocks, and reconnects
 * by itself after the server restarts: a connection found broken is reset
 * on its next use, and a transaction that failed because its connection
 * broke before COMMIT was sent is retried on a fresh connection. */
#ifndef CT_DB_H
#define CT_DB_H

#include <jansson.h>
#include <libpq-fe.h>

struct db_pool;
struct db_conn;

enum db_status {
	DB_OK = 0,
	DB_NOT_FOUND,     /* for callers: no row matched                     */
	DB_CONFLICT,      /* unique or exclusion violation (23505, 23P01)    */
	DB_INVALID,       /* the data broke another constraint (class 22/23) */
	DB_RETRY,         /* serialization failure or deadlock (40001, 40P01) */
	DB_UNAVAILABLE,   /* no connection, the connection broke, or a statement
	                   * timed out (57014, 55P03)                         */
	DB_ERROR,         /* anything else: a bug or an operator problem      */
	DB_ROLLBACK,      /* the transaction body chose to roll back (a client error) */
	DB_COMMIT_UNKNOWN, /* the connection broke after COMMIT was sent: it may have committed */
};

const char *db_status_str(enum db_status st);

/* Creates a pool of `size` connections to `conninfo` (a URL or key=value
 * string). Connections are opened lazily, so the pool is usable while the
 * server is down. Returns NULL only on a malformed conninfo or when out of
 * memory (message in `err`). `acquire_timeout_ms` bounds the wait for a free connection. */
struct db_pool *db_pool_new(const char *conninfo, unsigned size, unsigned acquire_timeout_ms,
                            char *err, size_t errlen);
void db_pool_free(struct db_pool *pool);

/* A check of every new session, run on it before its first use (at the
 * first connection and at every reconnect), so that what a session reaches
 * is checked even when the server behind the connection string changes.
 * It may run statements on `c` with db_exec. Returning non-zero refuses the
 * session: it is closed and db_acquire() answers NULL, as when the server
 * cannot be reached (callers see DB_UNAVAILABLE); the check logs why. Set
 * it before the pool is shared between threads; `arg` must outlive it. */
typedef int (*db_conn_check_fn)(struct db_conn *c, void *arg);
void db_pool_set_check(struct db_pool *pool, db_conn_check_fn fn, void *arg);

/* Takes a connected connection from the pool; NULL when none is free in
 * time or the server cannot be reached. Give it back with db_release(). */
struct db_conn *db_acquire(struct db_pool *pool) __attribute__((warn_unused_result));
void db_release(struct db_pool *pool, struct db_conn *c);

/* Runs one parameterized statement. On DB_OK, *res (when res is not NULL)
 * holds the result, which the caller PQclear()s; on failure *res is NULL.
 * DB_ERROR is logged at error level and DB_UNAVAILABLE at warning level
 * (limited); the other failures are the caller's to answer. Values are
 * text; NULL pointers are SQL NULL. */
enum db_status db_exec(struct db_conn *c, PGresult **res, const char *sql, int nparams,
                       const char *const *params) __attribute__((warn_unused_result));

/* Runs `sql`, a COPY ... TO STDOUT in text format (without parameters: a
 * statement before it passes them, with set_config), and hands each row
 * to `fn` as it arrives, without its newline, NUL-terminated and writable:
 * a result of millions of rows is never held whole, and the caller works
 * while the server still sends. A non-zero return from `fn` stops the
 * calls (the rest is read and dropped); the caller keeps why. Failures
 * as db_exec's. */
typedef int (*db_line_fn)(char *line, size_t len, void *arg);
enum db_status db_copy_out(struct db_conn *c, const char *sql, db_line_fn fn, void *arg)
	__attribute__((warn_unused_result));

/* Runs a query whose first column is JSON text and decodes it.
 * db_json_one: *out is the first row's value (DB_NOT_FOUND when no row).
 * db_json_rows: *out is an array of every row's value.
 * The caller json_decref()s *out. */
enum db_status db_json_one(struct db_conn *c, json_t **out, const char *sql, int nparams,
                           const char *const *params) __attribute__((warn_unused_result));
enum db_status db_json_rows(struct db_conn *c, json_t **out, const char *sql, int nparams,
                            const char *const *params) __attribute__((warn_unused_result));

/* Like db_json_rows for a keyset page: column 0 is an object's JSON text,
 * columns 1 and 2 its sort key (a bigint and an id), attached to each
 * object as "_ts" and "_id" so that the caller can build the next cursor. */
enum db_status db_json_page(struct db_conn *c, json_t **out, const char *sql, int nparams,
                            const char *const *params) __attribute__((warn_unused_result));

/* Array parameters: a text array literal built element by element, for
 * statements that take many rows at once (unnest($1::text[], ...)).
 * db_array_add appends one element (quoted, so any text is safe);
 * db_array_end closes the literal ("{}" when nothing was added). */
struct buf;
void db_array_add(struct buf *b, const char *s, size_t len);
void db_array_end(struct buf *b);

/* The SQLSTATE of the last failed statement on `c` ("" if none). */
const char *db_last_sqlstate(const struct db_conn *c);
/* The constraint the last failed statement on `c` names ("" if none). */
const char *db_last_constraint(const struct db_conn *c);

/* A transaction body: runs statements on `c`, returns DB_OK to commit or
 * any other status to roll back (DB_RETRY asks for another attempt). It may
 * run more than once, so it must not have side effects outside the database
 * other than filling `ctx`. */
typedef enum db_status (*db_tx_fn)(struct db_conn *c, void *ctx);

/* DB_AUTOCOMMIT runs the body's statements without BEGIN/COMMIT: for
 * reads whose statements need no common snapshot, it saves two round
 * trips. A body that writes must use a real isolation level. */
enum db_isolation { DB_READ_COMMITTED, DB_REPEATABLE_READ, DB_SERIALIZABLE, DB_AUTOCOMMIT };

/* Runs `fn` in one transaction, retrying serialization failures, deadlocks
 * and connection losses before COMMIT (at most a few attempts, with jittered
 * backoff). A connection lost during COMMIT gives DB_COMMIT_UNKNOWN and is
 * never retried: the transaction may or may not have committed, and the
 * caller must say so (a retry keyed by an idempotency key or a client id
 * finds out which). */
enum db_status db_tx(struct db_pool *pool, enum db_isolation iso, db_tx_fn fn, void *ctx)
	__attribute__((warn_unused_result));

/* Runs `fn` in one READ COMMITTED transaction on `c`, a connection the
 * caller holds (with no transaction open) for a reason of its own, such as
 * a session-level lock; not retried. On failure the transaction is rolled
 * back; a failed ROLLBACK is DB_UNAVAILABLE. */
enum db_status db_tx_on(struct db_conn *c, db_tx_fn fn, void *ctx) __attribute__((warn_unused_result));

/* Bounds every statement of the pool's sessions to `statement_ms` (server
 * side: statement_timeout, and idle_in_transaction_session_timeout), set
 * at connect; 0 leaves the server's defaults. A statement cut by it is
 * DB_UNAVAILABLE and is not retried. (PostgreSQL stops the timer before a
 * transaction commits: a COMMIT is not cut by it.)
 * Call before the pool is used. Returns 0, or -1 when out of memory. */
int db_pool_set_timeouts(struct db_pool *pool, unsigned statement_ms) __attribute__((warn_unused_result));
/* Adds server settings ("-c name=value ...") to every new session of the
 * pool, before the connection string's own. Returns 0 or -1 (memory). */
int db_pool_add_options(struct db_pool *pool, const char *opt) __attribute__((warn_unused_result));

/* For shutdown: from now on nothing waits on the database. Statements in
 * progress return DB_UNAVAILABLE at once (their connections are cut),
 * later ones and db_acquire() fail at once. A connection attempt in
 * progress still runs to its connect_timeout. Irreversible. */
void db_pool_interrupt(struct db_pool *pool);

/* For shutdown work that should still reach the database when it answers
 * (a last write) but must not hang when it does not: db_pool_interrupt()
 * is called `ms` from now unless db_interrupt_timer_cancel() comes first.
 * NULL when no timer could be started (then nothing is interrupted). */
struct db_interrupt_timer;
struct db_interrupt_timer *db_pool_interrupt_after(struct db_pool *pool, unsigned ms);
/* Stops the timer (if it has not fired) and frees it; NULL is ignored. */
void db_interrupt_timer_cancel(struct db_interrupt_timer *t);

/* Connects if needed and runs "SELECT 1". DB_OK when the server answers. */
enum db_status db_ping(struct db_pool *pool);

/* Counters for /metrics. */
struct db_stats {
	unsigned long long tx_ok, tx_rolled_back, tx_retries, tx_failed, reconnects, acquire_timeouts;
	unsigned size, in_use;
};
void db_pool_stats(struct db_pool *pool, struct db_stats *out);

#endif
