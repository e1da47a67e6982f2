/* The data plane's SQL: every statement it sends to the regional database
 * is in db_events.c (and db_region.c, db_rate.c, db_erasure.c, db_feed.c,
 * db_move.c, db_log.c, db_proof.c, db_stream.c), parameterized. Each names the tenant it works for: a
 * tenant's rows are reached through its id only. */
#ifndef DP_DPDB_H
#define DP_DPDB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"

struct usage_record;

/* Microseconds since the epoch to timestamptz and back, exactly, in the
 * statements' text. (TS() is only stable: where the planner must prune
 * events' weekly partitions, pass an instant as $n::timestamptz text.) */
#define TS(p) "('epoch'::timestamptz + (" p ")::bigint * interval '1 microsecond')"
#define US(c) "(extract(epoch FROM " c ") * 1000000)::bigint"

/* ---- ingest (inside the group-commit transaction) ---- */

/* The events that already exist among the pairs (tenants[i], ids[i]),
 * both text array literals. `fn` is called for each one found. */
typedef void (*dp_existing_fn)(void *ctx, const char *tenant, const char *id, const char *sha256_hex,
                               const char *body, size_t body_len);
enum db_status dp_db_events_existing(struct db_conn *c, const char *tenants, const char *ids,
                                     dp_existing_fn fn, void *ctx) __attribute__((warn_unused_result));

/* Events partitioned by time (db_partitions.c). Before the first lookup of
 * ids in a group: when events are partitioned, transaction locks for the
 * tenants of `tenants` (a uuid array literal, repeats allowed) whose
 * events occur at `occurred_us` (a bigint array literal, same order);
 * margin_ms: longer than any transaction lasts. */
enum db_status dp_db_events_lock_tenants(struct db_conn *c, const char *tenants, const char *occurred_us,
                                         int64_t margin_ms) __attribute__((warn_unused_result));

/* Adds counts[i] events to the usage counter of (tenants[i], periods[i]
 * "YYYY-MM"), received at received_us[i]; the rows are locked until the
 * transaction ends, so the totals passed to `fn` are exact. */
typedef void (*dp_usage_fn)(void *ctx, const char *tenant, const char *period, int64_t total);
enum db_status dp_db_usage_add(struct db_conn *c, const char *tenants, const char *periods,
                               const char *counts, const char *received_us, dp_usage_fn fn,
                               void *ctx) __attribute__((warn_unused_result));
/* Takes back `n` of the events just added (requests refused for quota). */
enum db_status dp_db_usage_sub(struct db_conn *c, const char *tenant, const char *period, int64_t n)
	__attribute__((warn_unused_result));

/* The columns of a multi-row insert, as text array literals. */
enum { DP_COL_TENANT, DP_COL_ID, DP_COL_OCCURRED, DP_COL_RECEIVED, DP_COL_ACTION, DP_COL_ACTOR,
       DP_COL_TARGETS, DP_COL_SHA, DP_COL_BODY, DP_NCOLS };
/* Inserts the rows; an id that already exists is skipped, so *inserted
 * tells whether another transaction got there first. */
enum db_status dp_db_events_insert(struct db_conn *c, struct buf cols[DP_NCOLS], long *inserted)
	__attribute__((warn_unused_result));

/* ---- Idempotency-Key records (db_idempotency.c, inside the group-commit
 * transaction; the arrays are text array literals of equal length, sorted
 * by tenant then key so that claims lock in one order) ---- */

/* Claims each (tenants[i], keys[i]) for the request whose SHA-256 is
 * hashes[i] (hex): a record is inserted unless one younger than `ttl_ms`
 * exists (an older one is taken over). A claim of a key another
 * transaction holds waits until it ends. `fn` is called for each key this
 * transaction now holds. */
typedef void (*dp_idem_claimed_fn)(void *ctx, const char *tenant, const char *key);
enum db_status dp_db_idem_claim(struct db_conn *c, const char *tenants, const char *keys,
                                const char *hashes, int64_t ttl_ms, dp_idem_claimed_fn fn, void *ctx)
	__attribute__((warn_unused_result));
/* The records of (tenants[i], keys[i]): `fn` gets each one found, with its
 * request hash (hex), status, Location ("" when none) and body. */
typedef void (*dp_idem_record_fn)(void *ctx, const char *tenant, const char *key, const char *sha256_hex,
                                  int status, const char *location, const char *body, size_t body_len);
enum db_status dp_db_idem_get(struct db_conn *c, const char *tenants, const char *keys,
                              dp_idem_record_fn fn, void *ctx) __attribute__((warn_unused_result));
/* Completes the claimed records with their answers (statuses: integers;
 * locations: "" for none). */
enum db_status dp_db_idem_store(struct db_conn *c, const char *tenants, const char *keys,
                                const char *statuses, const char *locations, const char *bodies)
	__attribute__((warn_unused_result));
/* Gives claimed keys back (their requests were refused: nothing to replay). */
enum db_status dp_db_idem_release(struct db_conn *c, const char *tenants, const char *keys)
	__attribute__((warn_unused_result));
/* Deletes at most `batch` records older than `ttl_ms`; *deleted is how many. */
enum db_status dp_db_idem_purge(struct db_conn *c, int64_t ttl_ms, int batch, long *deleted)
	__attribute__((warn_unused_result));

/* ---- reads ---- */

/* One event's stored JSON (malloc'd into *body); DB_NOT_FOUND if none. */
enum db_status dp_db_event_get(struct db_conn *c, const char *tenant, const char *id, char **body,
                               size_t *len) __attribute__((warn_unused_result));

/* What a listing of events asks for: every member may be given at once.
 * Strings are borrowed (from the request). A filter with n values matches
 * an event matching any of them; different filters must all match. */
#define DP_QUERY_VALUES_MAX 20          /* values of one filter (ROUTE_QUERY_VALUES_MAX) */
#define DP_QUERY_META_MAX 64            /* metadata.<key>=<value> pairs */
struct dp_event_query {
	const char *tenant;
	const char *actor[DP_QUERY_VALUES_MAX];        /* actor.id */
	const char *actor_type[DP_QUERY_VALUES_MAX];   /* actor.type */
	const char *action[DP_QUERY_VALUES_MAX];       /* exact, or "p.*": actions starting with "p." */
	const char *target[DP_QUERY_VALUES_MAX];       /* one of targets[].id */
	const char *target_type[DP_QUERY_VALUES_MAX];  /* one of targets[].type */
	int n_actor, n_actor_type, n_action, n_target, n_target_type;
	/* metadata: the string member meta_key[i] equals meta_value[i]; pairs
	 * of one key are alternatives, different keys must all hold. */
	const char *meta_key[DP_QUERY_META_MAX], *meta_value[DP_QUERY_META_MAX];
	int n_meta;
	const char *q;                          /* words that must all be the event's (NULL: none) */
	int64_t since_us, until_us;             /* occurred_at in [since, until); -1: no bound */
	int64_t received_since_us, received_until_us; /* received_at, likewise */
	/* Bounds the listing adds, not the client (-1: none), outside the
	 * query's identity (its cursors): the start of the week the tenant's
	 * retention ends in (what is older goes, and is not listed), and an
	 * instant after every stored occurred_at. With events partitioned by
	 * week they leave out the partitions that cannot hold an answer. */
	int64_t kept_from_us, stored_before_us;
	int asc;                                /* oldest first; else newest first */
	int has_cursor;
	int64_t cursor_us, cursor_seq;          /* the last row of the previous page */
	int limit;                              /* rows at most, 1..DP_SCAN_MAX */
};
#define DP_SCAN_MAX 10000

/* One listed event: its stored JSON (valid during the call only) and its
 * sort key, which a cursor names. */
struct dp_event_row {
	const char *body;
	size_t body_len;
	int64_t occurred_us;
	int64_t seq;
};
/* Called per row in order; non-zero stops the scan (still DB_OK). */
typedef int (*dp_event_row_fn)(void *ctx, const struct dp_event_row *row);
/* Runs `q`: its filters, in its order (occurred_at, then seq, both
 * descending or both ascending), the rows after its cursor, at most
 * q->limit of them, calling `fn` for each. Nothing of the request is
 * written into the statement's text: every value is a parameter. One
 * statement: an export runs it in a short transaction per page, never one
 * across pages. */
enum db_status dp_db_events_scan(struct db_conn *c, const struct dp_event_query *q, dp_event_row_fn fn,
                                 void *ctx) __attribute__((warn_unused_result));

/* ---- background work ---- */

/* Usage counters of `period` changed at or after since_us (all of them
 * when since_us < 0). */
enum db_status dp_db_usage_changed(struct db_conn *c, const char *period, int64_t since_us,
                                   dp_usage_fn fn, void *ctx) __attribute__((warn_unused_result));

/* What has not reached the control plane yet, for /metrics. */
enum db_status dp_db_usage_backlog(struct db_conn *c, int64_t *batches, int64_t *events,
                                   int64_t *unbatched) __attribute__((warn_unused_result));

struct dp_outbox_batch {
	int64_t id;
	char key[128];
	char *body;     /* malloc'd */
	int64_t events;
	int records;
};
/* The oldest batch not yet acknowledged or rejected (DB_NOT_FOUND: none). */
enum db_status dp_db_outbox_next(struct db_conn *c, struct dp_outbox_batch *b)
	__attribute__((warn_unused_result));
/* Moves up to `max_records` unreported counters, at most `max_events` of
 * each, into a batch: calls `fn` for each (oldest period first, then by
 * tenant; the record's strings live for the call only). The counters'
 * `reported` moves in the same transaction as dp_db_outbox_insert() of the
 * batch, so usage lands in exactly one. DB_NOT_FOUND when nothing is
 * unreported, or another instance is cutting a batch right now. Run it in
 * a READ COMMITTED transaction. */
typedef void (*dp_record_fn)(void *ctx, const struct usage_record *r);
/* The advisory lock a cut tries first (a transaction-level try: when
 * another session holds it, nothing is cut this round). */
#define DP_USAGE_TAKE_LOCK "7143210001"
enum db_status dp_db_usage_take(struct db_conn *c, int max_records, int64_t max_events,
                                dp_record_fn fn, void *ctx) __attribute__((warn_unused_result));
/* Stores a batch `body` (a usage report) keyed "<key_prefix><uuid>". */
enum db_status dp_db_outbox_insert(struct db_conn *c, const char *key_prefix, const char *body,
                                   int records, int64_t events) __attribute__((warn_unused_result));
/* The control plane acknowledged (sent), refused for good (rejected), or
 * could not be reached (attempt failed): recorded with `error` (may be NULL). */
enum dp_outbox_outcome { DP_OUTBOX_SENT, DP_OUTBOX_REJECTED, DP_OUTBOX_FAILED };
enum db_status dp_db_outbox_mark(struct db_conn *c, int64_t id, enum dp_outbox_outcome o,
                                 const char *error) __attribute__((warn_unused_result));
/* Deletes acknowledged batches older than `days`. */
enum db_status dp_db_outbox_purge(struct db_conn *c, int days, long *deleted)
	__attribute__((warn_unused_result));

/* Deletes at most `batch` events of `tenant` that occurred before
 * cutoff_us, and marks their leaves of the tenant's log removed (hashes
 * kept); *deleted is how many. Locks the log's head first (waiting for an
 * append in progress): run it in a READ COMMITTED transaction. */
enum db_status dp_db_retention(struct db_conn *c, const char *tenant, int64_t cutoff_us, int batch,
                               long *deleted) __attribute__((warn_unused_result));

/* ---- erasure of deleted tenants (db_erasure.c) ---- */

/* Of the tenants in `tenants` (a uuid array literal: the deleted tenants
 * of the configuration in use) and those erased before (once a tenant is
 * erased, its document may no longer list it), calls `fn` for each one
 * whose erasure has work left: rows in a table of tenant data, a batch
 * never run, not complete, or figures the control plane has not
 * acknowledged. */
typedef void (*dp_erasure_tenant_fn)(void *ctx, const char *tenant);
enum db_status dp_db_erasure_todo(struct db_conn *c, const char *tenants, dp_erasure_tenant_fn fn,
                                  void *ctx) __attribute__((warn_unused_result));

/* Where one tenant's erasure stands after a batch. */
struct dp_erasure_state {
	int busy;                   /* another instance holds the tenant: nothing was done */
	long deleted;               /* rows this batch deleted (at most the batch size) */
	long events;                /* of which events */
	int64_t events_deleted, rows_deleted;   /* the region's totals */
	int done;                   /* no row of the tenant is left in any table */
	int report_due;             /* the control plane has not acknowledged these figures */
};
/* One batch of `tenant`'s erasure, in a READ COMMITTED transaction: claims
 * the tenant's erasure row (FOR UPDATE SKIP LOCKED: busy when another
 * instance holds it), deletes at most `batch` rows of one table, and adds
 * them to the totals in the same transaction, so that a row is counted
 * exactly once whichever instances erase, and whenever one stops. A batch
 * that deletes nothing and finds nothing left marks the erasure complete. */
enum db_status dp_db_erasure_batch(struct db_conn *c, const char *tenant, int batch,
                                   struct dp_erasure_state *s) __attribute__((warn_unused_result));
/* The control plane acknowledged these figures. */
enum db_status dp_db_erasure_reported(struct db_conn *c, const char *tenant, int64_t events,
                                      int64_t rows, int done) __attribute__((warn_unused_result));
/* A report could not be delivered: `error` is kept for an operator. */
enum db_status dp_db_erasure_report_failed(struct db_conn *c, const char *tenant, const char *error)
	__attribute__((warn_unused_result));
/* How many of `tenants` are not erased, or not yet acknowledged as erased. */
enum db_status dp_db_erasure_pending(struct db_conn *c, const char *tenants, long *pending)
	__attribute__((warn_unused_result));

/* ---- rate exchange (db_rate.c) ---- */

/* Called for the i-th bucket passed to dp_db_rate_sync with the demand
 * (requests per second) the other live instances published for it. */
typedef void (*dp_peer_demand_fn)(void *ctx, long i, double others);
/* Publishes `instance`'s demand: the buckets (tenants[i], buckets[i]
 * "read"|"write") at demands[i] requests per second, all three text array
 * literals, replacing what it published before, and marks it alive. Then
 * calls `fn` for every bucket passed with the demand of the instances
 * seen within `ttl_ms`, and sets *live to the instances alive within
 * `ttl_ms` (this one included). With `purge`, also deletes rows nobody
 * refreshed for ten times `ttl_ms`. Run it in a READ COMMITTED
 * transaction. */
enum db_status dp_db_rate_sync(struct db_conn *c, const char *instance, const char *tenants,
                               const char *buckets, const char *demands, int64_t ttl_ms, int purge,
                               dp_peer_demand_fn fn, void *ctx, long *live)
	__attribute__((warn_unused_result));
/* Deletes everything `instance` published (when it stops). */
enum db_status dp_db_rate_forget(struct db_conn *c, const char *instance)
	__attribute__((warn_unused_result));

/* ---- the events feed (db_feed.c) ---- */

/* What one read of the feed found. */
struct dp_feed_page {
	int n, more;            /* rows appended; more rows are ready after them */
	uint64_t horizon;       /* xmin of the read's snapshot: every row below it is final */
	uint64_t last_tx;       /* position of the last row appended (when n > 0) */
	int64_t last_seq;
};
/* Appends to `out` (JSON array elements separated by commas) up to `limit`
 * events of `tenant` after the position (after_tx, after_seq), in the
 * order (tx_id, seq), taking only rows whose inserting transaction is
 * below the snapshot's xmin: no row can later appear before one handed
 * out. Run it in a READ COMMITTED transaction (it sets planner options
 * for itself with SET LOCAL). */
enum db_status dp_db_events_feed(struct db_conn *c, const char *tenant, uint64_t after_tx,
                                 int64_t after_seq, int limit, struct buf *out,
                                 struct dp_feed_page *pg) __attribute__((warn_unused_result));
/* Which of the readers waiting at positions (txs[i], seqs[i]) of
 * tenants[i] (text array literals of the same length) have at least one
 * event they may be handed now: `fn` is called with each such i. Run it
 * in a READ COMMITTED transaction. */
typedef void (*dp_feed_ready_fn)(void *ctx, long i);
enum db_status dp_db_feed_ready(struct db_conn *c, const char *tenants, const char *txs,
                                const char *seqs, dp_feed_ready_fn fn, void *ctx)
	__attribute__((warn_unused_result));

/* ---- the log's reads: checkpoints and proofs (db_proof.c, migration 0010) ---- */

struct dp_checkpoint;
/* The stored checkpoint of `tenant` of exactly `tree_size` leaves, or the
 * newest when tree_size is 0, into `out` (its jws malloc'd: release with
 * dp_checkpoint_clear; iat is signed_at in whole seconds). DB_NOT_FOUND
 * when there is none. */
enum db_status dp_db_checkpoint_get(struct db_conn *c, const char *tenant, int64_t tree_size,
                                    struct dp_checkpoint *out) __attribute__((warn_unused_result));
/* The size of the tenant's log: its head (0 when it has none). */
enum db_status dp_db_log_size(struct db_conn *c, const char *tenant, int64_t *size)
	__attribute__((warn_unused_result));
/* What a proof of an event starts from, read in one snapshot. */
struct dp_event_leaf {
	int exists;                 /* the event is stored */
	int64_t index;              /* its newest leaf, -1 when not in the log (yet) */
	unsigned char leaf[32];     /* that leaf's hash */
	int64_t log_size;           /* the head's size (>= index + 1) */
	int64_t checkpoint_size;    /* the newest checkpoint's size, 0 when none */
};
enum db_status dp_db_event_leaf(struct db_conn *c, const char *tenant, const char *id,
                                struct dp_event_leaf *out) __attribute__((warn_unused_result));
/* The stored hashes of the perfect subtrees (levels[i], idxs[i]): int and
 * bigint array literals of one length, each level 0 (a leaf) or a multiple
 * of 4 (log_nodes). One statement; `fn` gets each one found, with its i
 * (one not stored is not passed). */
typedef void (*dp_log_hash_fn)(void *ctx, long i, const unsigned char hash[32]);
enum db_status dp_db_log_hashes(struct db_conn *c, const char *tenant, const char *levels, const char *idxs,
                                dp_log_hash_fn fn, void *ctx) __attribute__((warn_unused_result));
/* The leaves [from, from + n) of the tenant's log in order: `fn` gets each
 * one's index, hash, and the id of its event as log_leaves records it
 * (NULL when retention removed the event; valid only during the call). */
typedef void (*dp_log_leaf_fn)(void *ctx, int64_t index, const unsigned char hash[32], const char *event_id);
enum db_status dp_db_log_leaves(struct db_conn *c, const char *tenant, int64_t from, int n,
                                dp_log_leaf_fn fn, void *ctx) __attribute__((warn_unused_result));

/* ---- tenant moves (db_move.c) ---- */

/* A feed position "<tx_id>.<seq>": rows after it in (tx_id, seq) order. */
struct dp_move_pos {
	uint64_t tx;
	int64_t seq;
};
/* What one source page found. */
struct dp_move_page {
	int n, more;               /* rows in the page; more are ready after them */
	uint64_t horizon;          /* the tenant's feed horizon (xmin + offset) of the read */
	struct dp_move_pos next;   /* the last row's position (`after` when n is 0) */
};
/* A source page stops short of its `limit` rows before this many bytes
 * of bodies (counted twice, and 512 a row): within the target's body
 * limit (64 MiB) whatever the events. */
#define DP_MOVE_PAGE_BYTES (24L * 1024 * 1024)
/* Appends to `rows` the JSON array (built by the database) of up to
 * `limit` rows of `tenant` after `after` and below the horizon (fewer past
 * DP_MOVE_PAGE_BYTES, one at least), in feed order, each {id, tx_id, seq, occurred_at_us, received_at_us, action,
 * actor_id, target_ids, content_sha256, body, keys}. Run it in a READ
 * COMMITTED transaction (it sets planner options with SET LOCAL). */
enum db_status dp_db_move_page(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                               int limit, struct buf *rows, struct dp_move_page *pg)
	__attribute__((warn_unused_result));
/* Fences `tenant` for `move`: locks its usage rows of last, this and next
 * month (waiting for the ingests holding them), then records the fence
 * with fence_tx (decimal, in the tenant's feed positions): every row of
 * the tenant stored here is at or below it. A fence already there is kept
 * and its fence_tx returned; DB_CONFLICT when it is another move's. */
enum db_status dp_db_move_fence(struct db_conn *c, const char *tenant, const char *move,
                                char fence_tx[24]) __attribute__((warn_unused_result));
/* Lifts `move`'s fence of `tenant` (none: nothing to do). */
enum db_status dp_db_move_unfence(struct db_conn *c, const char *tenant, const char *move)
	__attribute__((warn_unused_result));
/* Which of `tenants` (a uuid array literal) are fenced: one indexed lookup;
 * `fn` gets each. In the ingest's group transaction, after its usage rows. */
typedef void (*dp_fenced_fn)(void *ctx, const char *tenant);
enum db_status dp_db_fenced(struct db_conn *c, const char *tenants, dp_fenced_fn fn, void *ctx)
	__attribute__((warn_unused_result));
/* The count and digest (decimal sum of move_row_hash) of `tenant`'s rows
 * in after < (tx_id, seq) <= upto (no upper bound when `upto` is NULL),
 * computed in keyset ranges of at most DP_MOVE_DIGEST_CHUNK rows, one
 * statement each (a million rows would outlast a statement timeout), the
 * parts added exactly by the database. Run it in a REPEATABLE READ
 * transaction: every range is then read from one snapshot. */
#define DP_MOVE_DIGEST_CHUNK 50000
enum db_status dp_db_move_digest(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                                 const struct dp_move_pos *upto, int64_t *events, char digest[48])
	__attribute__((warn_unused_result));
/* The count alone of the same rows, from the feed index only (no row is
 * read or hashed): the mover's measure of its lag. */
enum db_status dp_db_move_count(struct db_conn *c, const char *tenant, const struct dp_move_pos *after,
                                const struct dp_move_pos *upto, int64_t *events)
	__attribute__((warn_unused_result));
/* Appends {"idempotency": [...], "usage": [...], "safe_since_us": n}
 * (built by the database): the tenant's completed Idempotency-Key records
 * created at or after since_us, its usage counters with events, and the
 * time before which every record of the tenant is in this answer or never
 * will be (the start of the oldest transaction running in the database,
 * read before the records' snapshot, less a margin; now when none): the
 * next call's since_us. Run it in a READ COMMITTED transaction (two
 * statements, two snapshots, in that order). */
enum db_status dp_db_move_records_get(struct db_conn *c, const char *tenant, int64_t since_us,
                                      struct buf *out) __attribute__((warn_unused_result));
/* The target's progress of a move: the source position reached, the rows
 * inserted and their digest; `stored` is the tenant's rows here. */
struct dp_move_progress {
	struct dp_move_pos next;
	int64_t events, stored;
	char digest[48];
};
/* Inserts `rows_json` (the `events` array of a source page, parsed by the
 * database) for `tenant` and adds them to `move`'s progress (its position
 * raised to `next`) in the same statement: *pr is the progress after it,
 * *inserted the rows inserted. Rows that are not a page's give
 * DB_INVALID. Not `careful`, an id already here (a page posted again)
 * gives DB_CONFLICT: then run it careful, skipping ids already here (ON
 * CONFLICT DO NOTHING). */
enum db_status dp_db_move_insert(struct db_conn *c, const char *move, const char *tenant,
                                 const char *rows_json, const struct dp_move_pos *next, int careful,
                                 struct dp_move_progress *pr, int64_t *inserted)
	__attribute__((warn_unused_result));
enum db_status dp_db_move_progress(struct db_conn *c, const char *move, const char *tenant,
                                   struct dp_move_progress *pr) __attribute__((warn_unused_result));
/* Stores the source's records (GET .../records' JSON text): the
 * Idempotency-Key records not here yet, the usage counters as events =
 * reported = the source's, the tenant's feed offset raised past every row
 * here (decimal in feed_offset), and the seq identity past its largest seq. */
enum db_status dp_db_move_records_put(struct db_conn *c, const char *tenant, const char *records,
                                      long *idem, long *usage, char feed_offset[24])
	__attribute__((warn_unused_result));
/* The tenant's events not yet reported to the control plane. */
enum db_status dp_db_move_unreported(struct db_conn *c, const char *tenant, int64_t *events)
	__attribute__((warn_unused_result));
/* Deletes at most `batch` rows of `tenant` from the first table of tenant
 * data (db_erasure.c's list) that has any, usage not yet reported held
 * back; *deleted and *events (of which events) are how many, *left
 * whether any row of the tenant is left after it (db_erasure.c). */
enum db_status dp_db_tenant_erase_batch(struct db_conn *c, const char *tenant, int batch,
                                        long *deleted, long *events, int *left)
	__attribute__((warn_unused_result));

/* ---- the tamper-evidence log (db_log.c, migration 0010) ---- */

/* A tenant's log head as stored. */
struct dp_log_head {
	int64_t tree_size;
	uint64_t next_tx;           /* feed position of the last leaf's event */
	int64_t next_seq;
	uint8_t frontier[64 * 32];  /* merkle.h's encoding, frontier_len bytes */
	size_t frontier_len;
	uint8_t root[32];
};
/* Locks `tenant`'s head row for this transaction (FOR UPDATE SKIP LOCKED),
 * inserting an empty head first when there is none and the tenant has
 * events. DB_NOT_FOUND: no head and no event (nothing to append);
 * DB_CONFLICT: another transaction holds the head (another appender: skip,
 * never wait). Run it in a READ COMMITTED transaction. */
enum db_status dp_db_log_lock_head(struct db_conn *c, const char *tenant, struct dp_log_head *h)
	__attribute__((warn_unused_result));
/* Calls `fn` with up to `limit` events of `tenant` after (after_tx,
 * after_seq) and below the feed horizon (dp_db_events_feed's), in feed
 * order: its id and stored JSON text (valid during the call), and its
 * feed position. *n is how many. Same transaction as the lock. */
typedef void (*dp_log_row_fn)(void *ctx, const char *id, const char *body, size_t len, uint64_t tx,
                              int64_t seq, int64_t occurred_us);
enum db_status dp_db_log_rows(struct db_conn *c, const char *tenant, uint64_t after_tx, int64_t after_seq,
                              int limit, dp_log_row_fn fn, void *ctx, int *n)
	__attribute__((warn_unused_result));
/* One append's writes, in one statement: the leaves first_index.. (ids: a
 * text array literal; occurred_us: a bigint array literal of their events'
 * occurred_at; leaf_hex: their 32-byte hashes in hex, one after the
 * other), the completed nodes (levels and idxs: array literals; node_hex
 * likewise), the new head, and its signed checkpoint when jws is not NULL (kept if one of that
 * size is there). */
struct dp_log_write {
	const char *tenant;
	int64_t first_index;
	const char *ids, *occurred_us, *leaf_hex;
	const char *levels, *idxs, *node_hex;
	int64_t tree_size;
	uint64_t next_tx;
	int64_t next_seq;
	const char *frontier_hex, *root_hex;
	int64_t iat;
	const char *kid, *jws;
};
enum db_status dp_db_log_write(struct db_conn *c, const struct dp_log_write *w)
	__attribute__((warn_unused_result));
/* The head (read, not locked) and its stored checkpoint: *jws malloc'd,
 * NULL when none of the head's size is stored. DB_NOT_FOUND: no head. */
enum db_status dp_db_log_head_get(struct db_conn *c, const char *tenant, struct dp_log_head *h,
                                  char **jws, int64_t *iat) __attribute__((warn_unused_result));
/* Stores a checkpoint (kept if one of that size is there). */
enum db_status dp_db_log_checkpoint_put(struct db_conn *c, const char *tenant, int64_t tree_size,
                                        const char *root_hex, int64_t iat, const char *kid,
                                        const char *jws) __attribute__((warn_unused_result));
/* Of `tenants` (a uuid array literal), calls `fn` with each that has an
 * event past its head below the feed horizon: one indexed probe each. */
typedef void (*dp_log_pending_fn)(void *ctx, const char *tenant);
enum db_status dp_db_log_pending(struct db_conn *c, const char *tenants, dp_log_pending_fn fn, void *ctx)
	__attribute__((warn_unused_result));

/* ---- log streams' delivery (db_stream.c, migration 0011) ----
 * Each statement runs on its own (autocommit) unless said otherwise: a
 * stream's worker never holds a transaction open across a send. */

/* A stream's cursor row as the worker reads it. Times are unix (seconds
 * or milliseconds as named); 0 when NULL. */
struct dp_stream_cursor {
	uint64_t after_tx;
	int64_t after_seq;
	int64_t batch_no;
	int in_flight;                  /* batch_to_tx is set: batch batch_no is in flight */
	uint64_t batch_to_tx;
	int64_t batch_to_seq;
	int batch_events;
	int64_t batch_made_at;          /* unix s */
	int attempts;
	int64_t retry_in_ms;            /* until next_attempt_at; 0 when due or none */
	int failing;                    /* failing_since is set */
	char status[16];
	int64_t resume_applied, replay_applied;
};

/* Session advisory lock of stream `id` on `c` (held until unlocked or the
 * session ends): *got 1 when this session holds it now. */
enum db_status dp_db_stream_lock(struct db_conn *c, const char *id, int *got)
	__attribute__((warn_unused_result));
enum db_status dp_db_stream_unlock(struct db_conn *c, const char *id) __attribute__((warn_unused_result));

/* Makes the cursor row of stream `id` of `tenant` when there is none, its
 * position just before the tenant's first event (in feed order, below the
 * horizon) received at or after `since` (unix s; just below the horizon
 * when there is none), with resume_applied and replay_applied as given;
 * then reads it into `out`. */
enum db_status dp_db_stream_cursor(struct db_conn *c, const char *id, const char *tenant, int64_t since,
                                   int64_t resume, int64_t replay, struct dp_stream_cursor *out)
	__attribute__((warn_unused_result));
/* Replay: the position goes to just before the first event received at or
 * after `since` (as above) and replay_applied to `replay`, only while no
 * batch is in flight. */
enum db_status dp_db_stream_rewind(struct db_conn *c, const char *id, const char *tenant, int64_t since,
                                   int64_t replay) __attribute__((warn_unused_result));
/* Resume: clears a failed or failing state (attempts, failing_since,
 * next_attempt_at) and sets resume_applied. */
enum db_status dp_db_stream_resume(struct db_conn *c, const char *id, int64_t resume)
	__attribute__((warn_unused_result));
/* Sets the status; with `error` also last_error and last_error_at (now). */
enum db_status dp_db_stream_set_status(struct db_conn *c, const char *id, const char *status,
                                       const char *error) __attribute__((warn_unused_result));

/* One event of a batch as read. */
typedef void (*dp_stream_row_fn)(void *ctx, uint64_t tx, int64_t seq, const char *json, size_t len,
                                 int64_t received_at_us);
/* The events of a new batch: `tenant`'s rows after (after_tx, after_seq),
 * below the feed horizon, in feed order, at most `limit`, and no more than
 * fit in `bytes` counting each as its length plus `overhead` (the first
 * always); *available gets how many there were up to `limit` before the
 * byte bound (more than the rows given: the bytes cut the batch). Run it
 * in a READ COMMITTED transaction (SET LOCAL planner options). */
enum db_status dp_db_stream_next(struct db_conn *c, const char *tenant, uint64_t after_tx, int64_t after_seq,
                                 int limit, int64_t bytes, int overhead, int *available,
                                 dp_stream_row_fn fn, void *ctx)
	__attribute__((warn_unused_result));
/* The events of the batch in flight: after (after_tx, after_seq) up to and
 * including (to_tx, to_seq), in feed order (at most `limit`). */
enum db_status dp_db_stream_batch_rows(struct db_conn *c, const char *tenant, uint64_t after_tx,
                                       int64_t after_seq, uint64_t to_tx, int64_t to_seq, int limit,
                                       dp_stream_row_fn fn, void *ctx) __attribute__((warn_unused_result));
/* Records batch number batch_no + 1 in flight (up to (to_tx, to_seq), n
 * events, made now), only when the row is still at `cur` with nothing in
 * flight: DB_NOT_FOUND otherwise. *made_at gets its batch_made_at (unix s). */
enum db_status dp_db_stream_make_batch(struct db_conn *c, const char *id, const struct dp_stream_cursor *cur,
                                       uint64_t to_tx, int64_t to_seq, int n, int64_t *made_at)
	__attribute__((warn_unused_result));
/* The destination acknowledged batch `no` of `n` events: the position
 * moves to its end, nothing is in flight, the failing state is cleared. */
enum db_status dp_db_stream_delivered(struct db_conn *c, const char *id, int64_t no, int n)
	__attribute__((warn_unused_result));
/* An attempt of batch `no` failed: attempts + 1, last_error, next attempt
 * in `retry_ms`, status "failed" once it has been failing for
 * `budget_ms`, else "retrying"; the status set goes to `status` (16 bytes). */
enum db_status dp_db_stream_failed(struct db_conn *c, const char *id, int64_t no, const char *error,
                                   int64_t retry_ms, int64_t budget_ms, char status[16])
	__attribute__((warn_unused_result));

/* What a report says of one stream. Times unix s, -1 when none. */
struct dp_stream_state {
	const char *id, *status, *last_error;    /* last_error NULL when none */
	int64_t lag_events, lag_seconds, delivered_events, last_delivered_at, last_error_at;
};
typedef void (*dp_stream_state_fn)(void *ctx, const struct dp_stream_state *st);
/* The state of each stream of `ids` (a uuid array literal) that has a
 * cursor row, with its lag: the tenant's events after its position below
 * the horizon (counted up to 10,000,000) and the age of the first of them. */
enum db_status dp_db_stream_states(struct db_conn *c, const char *ids, dp_stream_state_fn fn, void *ctx)
	__attribute__((warn_unused_result));

/* ---- events partitioned by time (db_partitions.c) ---- */

/* Whether `events` is partitioned, whether its ids are indexed across
 * partitions (event_ids, contract 0002), and where its weekly partitions
 * start. */
enum db_status dp_db_events_layout(struct db_conn *c, int *partitioned, int *ids_indexed, int64_t *weekly_from_us)
	__attribute__((warn_unused_result));
/* Makes the weekly partitions missing for the instants `occurred_us` (a
 * bigint[] literal, microseconds) or the rows of a move page (`rows_json`,
 * their occurred_at_us), either NULL: after an insert failed for want of
 * one (SQLSTATE 23514), in a transaction of its own. *made: how many. */
enum db_status dp_db_events_weeks_ensure(struct db_conn *c, const char *occurred_us, const char *rows_json,
                                         long *made) __attribute__((warn_unused_result));
/* Whether the statement that just failed on `c` with `st` was an insert
 * into `events` with no partition for a row: a check violation (23514)
 * that names no constraint. */
int dp_db_no_partition(struct db_conn *c, enum db_status st);
/* How long removing a whole week may take (its entries of event_ids are
 * deleted one by one). */
#define DP_WEEK_REMOVE_TIMEOUT "15min"
/* How many instances seen within `within_ms` run a build below `level`
 * (*older, the sighting kept), and how long since one last did (*quiet_ms:
 * 0 now, -1 never). */
enum db_status dp_db_fleet_older(struct db_conn *c, int level, int64_t within_ms, long *older, int64_t *quiet_ms)
	__attribute__((warn_unused_result));
/* Makes the weekly partition starting at lower_us if missing (*made). */
enum db_status dp_db_partition_ensure(struct db_conn *c, int64_t lower_us, int *made)
	__attribute__((warn_unused_result));
/* Each weekly partition ending at or before before_us, oldest first. */
typedef void (*dp_partition_fn)(void *ctx, const char *name, int64_t lower_us, int64_t upper_us);
enum db_status dp_db_partitions(struct db_conn *c, int64_t before_us, dp_partition_fn fn, void *ctx)
	__attribute__((warn_unused_result));
/* In one transaction: holds the weekly partition `name` ([lower_us,
 * upper_us)) against writes and, unless some event of it belongs to a
 * tenant that may keep it, sets *freed and truncates it (*removed, when it
 * held any: *estimate is then the planner's estimate of its rows). A
 * tenant may keep an event when it is not among `tenants` (uuid array
 * literal), or when its `kept_from_us` (bigint array literal, same order:
 * the instant from which it keeps its events) is before upper_us.
 * *detached: the week is apart from `events` (a detachment left it so),
 * and was not looked at. */
enum db_status dp_db_partition_remove(struct db_conn *c, const char *name, int64_t lower_us, int64_t upper_us,
                                      const char *tenants, const char *kept_from_us, int *freed, int *removed,
                                      int *detached, int64_t *estimate) __attribute__((warn_unused_result));
/* Detaches a weekly partition from `events` without locking out its
 * queries (DETACH ... CONCURRENTLY, or FINALIZE of one left half done):
 * outside any transaction (DB_AUTOCOMMIT). Nothing when not attached. */
enum db_status dp_db_partition_detach(struct db_conn *c, const char *name) __attribute__((warn_unused_result));
/* Then drops it if empty (*dropped), or attaches it again. */
enum db_status dp_db_partition_forget(struct db_conn *c, const char *name, int *dropped)
	__attribute__((warn_unused_result));

#endif
