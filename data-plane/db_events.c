/* SQL of the events API, usage metering and retention. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"
#include "event.h"
#include "log.h"
#include "partitions.h"
#include "timefmt.h"
#include "usage_report.h"

#define RFC3339(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define PERIOD(p) "((" p ") || '-01')::date"

static int64_t int_at(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

enum db_status dp_db_events_existing(struct db_conn *c, const char *tenants, const char *ids,
                                     dp_existing_fn fn, void *ctx)
{
	const char *p[2] = { tenants, ids };
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		/* events_find (migration 0013): one probe per id, whatever the
		 * layout of `events`. */
		"SELECT e.tenant_id::text, e.id, encode(e.content_sha256, 'hex'), e.body::text"
		"  FROM events_find($1::uuid[], $2::text[]) e",
		2, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
		   (size_t)PQgetlength(r, i, 3));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_usage_add(struct db_conn *c, const char *tenants, const char *periods,
                               const char *counts, const char *received_us, dp_usage_fn fn,
                               void *ctx)
{
	const char *p[4] = { tenants, periods, counts, received_us };
	PGresult *r;
	/* Rows are locked in one order (tenant, period) whatever the request
	 * order, so that concurrent groups never deadlock on them. */
	enum db_status st = db_exec(
		c, &r,
		"INSERT INTO usage_counters AS u (tenant_id, period, events, pending_since, last_at, updated_at)"
		" SELECT t, " PERIOD("p") ", n, " TS("r") ", " TS("r") ", clock_timestamp()"
		"   FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS x(t, p, n, r)"
		"  ORDER BY t, p"
		" ON CONFLICT (tenant_id, period) DO UPDATE SET"
		"   events = u.events + excluded.events,"
		"   pending_since = CASE WHEN u.events = u.reported THEN excluded.pending_since"
		"                        ELSE u.pending_since END,"
		"   last_at = greatest(u.last_at, excluded.last_at),"
		"   updated_at = excluded.updated_at"
		" RETURNING tenant_id::text, to_char(period, 'YYYY-MM'), events",
		4, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), int_at(r, i, 2));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_usage_sub(struct db_conn *c, const char *tenant, const char *period, int64_t n)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, n);
	const char *p[3] = { tenant, period, num };
	return db_exec(c, NULL,
	               "UPDATE usage_counters SET events = events - $3::bigint"
	               " WHERE tenant_id = $1::uuid AND period = " PERIOD("$2"),
	               3, p);
}

enum db_status dp_db_events_insert(struct db_conn *c, struct buf cols[DP_NCOLS], long *inserted)
{
	const char *p[DP_NCOLS];
	PGresult *r;
	for (int i = 0; i < DP_NCOLS; i++)
		p[i] = cols[i].p ? cols[i].p : "{}";
	enum db_status st = db_exec(
		c, &r,
		/* The keys the listing filters on are derived from the body by
		 * the function of migration 0004. */
		"INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
		"                    content_sha256, body, keys, tx_id)"
		" SELECT t, i, " TS("o") ", " TS("r") ", a, ac, tg::text[], decode(h, 'hex'), j, events_keys(j),"
		/* A tenant moved in sorts its own rows after the copied ones
		 * (migration 0009): its offset added to the transaction's id. */
		"        CASE WHEN f.off IS NULL THEN pg_current_xact_id()"
		"             ELSE move_xid_add(pg_current_xact_id(), f.off) END"
		"   FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],"
		"               $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(t, i, o, r, a, ac, tg, h, b, n)"
		"        LEFT JOIN tenant_feed_offsets f ON f.tenant_id = x.t,"
		"        LATERAL (SELECT b::json AS j) AS y"
		/* Rows take their seq (the feed's order inside a transaction) in
		 * the order they are inserted: the request's, whatever the join's. */
		"  ORDER BY x.n"
		/* No conflict target: with events partitioned by week, (tenant_id,
		 * id) is unique per partition only. Across partitions it is
		 * event_ids (contract 0002), whose trigger fails the statement
		 * (DB_CONFLICT) on an id another transaction stored meanwhile, or
		 * before that step the tenants' locks the group holds
		 * (dp_db_events_lock_tenants). A row counted out here, or that
		 * failure, makes the group run again. */
		" ON CONFLICT DO NOTHING",
		DP_NCOLS, p);
	if (st != DB_OK)
		return st;
	*inserted = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_event_get(struct db_conn *c, const char *tenant, const char *id, char **body,
                               size_t *len)
{
	const char *p[2] = { tenant, id };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT body::text FROM events_find(ARRAY[$1::uuid], ARRAY[$2::text])",
	                            2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	*len = (size_t)PQgetlength(r, 0, 0);
	*body = malloc(*len + 1);
	if (*body)
		memcpy(*body, PQgetvalue(r, 0, 0), *len + 1);
	PQclear(r);
	return *body ? DB_OK : DB_ERROR;
}

/* The parameters of a statement assembled from optional clauses. Each
 * clause adds its values through list_param, which refuses (and makes the
 * statement fail) rather than write past the array; LIST_PARAMS_MAX counts
 * every clause's parameters at their most, so all of them at once fit. */
enum {
	LIST_PARAMS_MAX = 1 /* tenant */ + 2 /* actor, action */ + 1 /* single keys */ +
	                  5 /* any-of keys: actor, actor_type, action, target, target_type */ + 1 /* q */ +
	                  2 * DP_QUERY_META_MAX + 7 /* times */ + 2 /* cursor */ + 1 /* limit */
};
struct list_params {
	const char *v[LIST_PARAMS_MAX];
	char num[LIST_PARAMS_MAX][TIMEFMT_LEN]; /* the text of numeric values and instants */
	struct buf own[LIST_PARAMS_MAX]; /* the text of built values (array literals) */
	int n, overflow;
};

/* Adds `text` (or, when NULL, `num` as text) as the next parameter and
 * returns its number ($n), or 0 once the array is full. */
static int list_param(struct list_params *ps, const char *text, int64_t num)
{
	if (ps->n >= LIST_PARAMS_MAX) {
		ps->overflow = 1;
		return 0;
	}
	if (!text) {
		snprintf(ps->num[ps->n], sizeof ps->num[ps->n], "%" PRId64, num);
		text = ps->num[ps->n];
	}
	ps->v[ps->n++] = text;
	return ps->n;
}

/* Adds the instant `us` (microseconds since the epoch) as the next
 * parameter, as RFC 3339 text for $n::timestamptz, and returns its number. */
static int list_ts(struct list_params *ps, int64_t us)
{
	if (ps->n >= LIST_PARAMS_MAX) {
		ps->overflow = 1;
		return 0;
	}
	timefmt_format(us, ps->num[ps->n]);
	ps->v[ps->n] = ps->num[ps->n];
	return ++ps->n;
}

/* The next parameter's buffer, to build its text in; NULL once full. */
static struct buf *list_own(struct list_params *ps)
{
	if (ps->n >= LIST_PARAMS_MAX) {
		ps->overflow = 1;
		return NULL;
	}
	return &ps->own[ps->n];
}

static void list_params_free(struct list_params *ps)
{
	for (int i = 0; i < LIST_PARAMS_MAX; i++)
		buf_free(&ps->own[i]);
}

/* Adds the key `prefix` + `value` to the array literal `b`. */
static void key_add(struct buf *b, const char *prefix, const char *value)
{
	struct buf k = { 0 };
	buf_printf(&k, "%s%s", prefix, value);
	if (k.failed)
		b->failed = 1;
	else
		db_array_add(b, k.p, k.len);
	buf_free(&k);
}

/* "user.*": actions starting with "user." (dpdb.h). */
static int action_is_prefix(const char *action)
{
	size_t len = strlen(action);
	return len > 2 && !strcmp(action + len - 2, ".*");
}

/* An action filter's value as a key: "ap:user." for "user.*", "ac:x"
 * for "x". */
static void action_key(struct buf *b, const char *action)
{
	size_t len = strlen(action);
	if (action_is_prefix(action)) {
		struct buf p = { 0 };
		buf_append(&p, action, len - 1);
		key_add(b, "ap:", p.p ? p.p : "");
		b->failed |= p.failed;
		buf_free(&p);
	} else {
		key_add(b, "ac:", action);
	}
}

/* A filter of n values as keys: one value joins `all` (keys the event
 * must all have); several make their own "any of" clause. */
static void list_keys(struct list_params *ps, struct buf *w, struct buf *all, const char *prefix,
                      const char *const *vals, int n)
{
	if (n == 0)
		return;
	if (n == 1) {
		if (!strcmp(prefix, "ac:"))
			action_key(all, vals[0]);
		else
			key_add(all, prefix, vals[0]);
		return;
	}
	struct buf *b = list_own(ps);
	if (!b)
		return;
	for (int i = 0; i < n; i++) {
		if (!strcmp(prefix, "ac:"))
			action_key(b, vals[i]);
		else
			key_add(b, prefix, vals[i]);
	}
	db_array_end(b);
	buf_printf(w, " AND keys && $%d::text[]", list_param(ps, b->p ? b->p : "{}", 0));
}

/* `col` equal to one of `vals`: a single value as `=`, so that the index
 * leading with (tenant_id, col) returns rows in the listing's order and the
 * scan stops at the page (`= ANY` would make it read and sort them all). */
static void list_in(struct list_params *ps, struct buf *w, const char *col, const char *const *vals, int n)
{
	if (n == 1) {
		buf_printf(w, " AND %s = $%d", col, list_param(ps, vals[0], 0));
	} else if (n > 1) {
		struct buf *b = list_own(ps);
		if (!b)
			return;
		for (int i = 0; i < n; i++)
			db_array_add(b, vals[i], strlen(vals[i]));
		db_array_end(b);
		buf_printf(w, " AND %s = ANY($%d::text[])", col, list_param(ps, b->p ? b->p : "{}", 0));
	}
}

/* The WHERE clause of `q` into `w`, its values into `ps`. The actor, an
 * exact action and the targets are their own columns, with their own
 * indexes and statistics (ids are too many for the statistics of a shared
 * array, which would make the planner misjudge how rare one is). The
 * other equality filters become keys of one GIN index (events_by_key),
 * which answers any combination of them in one scan driven by the rarest. */
static void list_where(const struct dp_event_query *q, struct list_params *ps, struct buf *w)
{
	struct buf all = { 0 };
	int k = list_param(ps, q->tenant, 0), prefixes = 0;
	buf_printf(w, "tenant_id = $%d::uuid", k);
	list_in(ps, w, "actor_id", q->actor, q->n_actor);
	for (int i = 0; i < q->n_action; i++)
		prefixes += action_is_prefix(q->action[i]);
	if (prefixes)
		list_keys(ps, w, &all, "ac:", q->action, q->n_action);
	else
		list_in(ps, w, "action", q->action, q->n_action);
	if (q->n_target == 1) {
		buf_printf(w, " AND target_ids @> ARRAY[$%d::text]", list_param(ps, q->target[0], 0));
	} else if (q->n_target > 1) {
		struct buf *b = list_own(ps);
		if (b) {
			for (int i = 0; i < q->n_target; i++)
				db_array_add(b, q->target[i], strlen(q->target[i]));
			db_array_end(b);
			buf_printf(w, " AND target_ids && $%d::text[]", list_param(ps, b->p ? b->p : "{}", 0));
		}
	}
	list_keys(ps, w, &all, "at:", q->actor_type, q->n_actor_type);
	list_keys(ps, w, &all, "tt:", q->target_type, q->n_target_type);
	if (all.len) {
		struct buf *b = list_own(ps);
		if (b) {
			buf_append(b, all.p, all.len);
			db_array_end(b);
			b->failed |= all.failed;
			buf_printf(w, " AND keys @> $%d::text[]", list_param(ps, b->p ? b->p : "{}", 0));
		}
	}
	buf_free(&all);
	if (q->q)
		buf_printf(w, " AND keys @> events_query_words($%d)", list_param(ps, q->q, 0));
	/* metadata: one clause per key, its values the alternatives. */
	for (int i = 0; i < q->n_meta; i++) {
		int again = 0, n = 0;
		for (int j = 0; j < i; j++)
			again |= !strcmp(q->meta_key[j], q->meta_key[i]);
		if (again)
			continue;
		for (int j = i; j < q->n_meta; j++)
			n += !strcmp(q->meta_key[j], q->meta_key[i]);
		int key = list_param(ps, q->meta_key[i], 0);
		buf_printf(w, " AND keys %s ARRAY[", n == 1 ? "@>" : "&&");
		for (int j = i, first = 1; j < q->n_meta; j++)
			if (!strcmp(q->meta_key[j], q->meta_key[i])) {
				buf_printf(w, "%sevents_meta_key($%d, $%d)", first ? "" : ", ", key,
				           list_param(ps, q->meta_value[j], 0));
				first = 0;
			}
		buf_append(w, "]", 1);
	}
	/* Instants as typed constants ($n::timestamptz, RFC 3339 text), which
	 * the planner compares with the weekly partitions' bounds: only the
	 * partitions that can hold an answer are planned. */
	if (q->since_us >= 0)
		buf_printf(w, " AND occurred_at >= $%d::timestamptz", list_ts(ps, q->since_us));
	if (q->until_us >= 0)
		buf_printf(w, " AND occurred_at < $%d::timestamptz", list_ts(ps, q->until_us));
	if (q->kept_from_us >= 0)
		buf_printf(w, " AND occurred_at >= $%d::timestamptz", list_ts(ps, q->kept_from_us));
	if (q->stored_before_us >= 0)
		buf_printf(w, " AND occurred_at < $%d::timestamptz", list_ts(ps, q->stored_before_us));
	if (q->received_since_us >= 0)
		buf_printf(w, " AND received_at >= $%d::timestamptz", list_ts(ps, q->received_since_us));
	if (q->received_until_us >= 0) {
		/* An event occurs at most DP_EVENT_FUTURE_US after it is
		 * received (event.h): a bound on occurred_at too, which the
		 * listing's index can use. */
		k = list_ts(ps, q->received_until_us);
		buf_printf(w, " AND received_at < $%d::timestamptz AND occurred_at < $%d::timestamptz", k,
		           list_ts(ps, q->received_until_us + DP_EVENT_FUTURE_US));
	}
	if (q->has_cursor) {
		int ts = list_ts(ps, q->cursor_us);
		int seq = list_param(ps, NULL, q->cursor_seq);
		/* The first test bounds the index scan; the second breaks ties. */
		const char *op = q->asc ? ">" : "<";
		buf_printf(w, " AND occurred_at %s= $%d::timestamptz AND (occurred_at %s $%d::timestamptz OR seq %s $%d::bigint)",
		           op, ts, op, ts, op, seq);
	}
}

/* One statement of a scan: `q` as it is; *rows: the rows handed to `fn`,
 * *stopped: whether `fn` asked to stop. */
static enum db_status scan_once(struct db_conn *c, const struct dp_event_query *q, dp_event_row_fn fn, void *ctx,
                                int *rows, int *stopped)
{
	struct list_params *ps = NULL;
	struct buf w = { 0 }, sql = { 0 };
	enum db_status st = DB_ERROR;
	PGresult *r = NULL;

	if (q->limit < 1 || q->limit > DP_SCAN_MAX) {
		log_error(NULL, "an events scan of %d rows asked (1 to %d)", q->limit, DP_SCAN_MAX);
		goto out;
	}
	if (!(ps = calloc(1, sizeof *ps)))
		goto out;
	list_where(q, ps, &w);
	int k = list_param(ps, NULL, q->limit);
	const char *dir = q->asc ? "ASC" : "DESC";
	buf_printf(&sql,
	           "SELECT body::text, " US("occurred_at") ", seq FROM events WHERE %s"
	           " ORDER BY occurred_at %s, seq %s LIMIT $%d::int",
	           w.p ? w.p : "false", dir, dir, k);
	if (w.failed || sql.failed || ps->overflow || !sql.p) {
		log_error(NULL, "the events query could not be assembled (%d parameters at most)", LIST_PARAMS_MAX);
		goto out;
	}
	for (int i = 0; i < LIST_PARAMS_MAX; i++)
		if (ps->own[i].failed)
			goto out;
	st = db_exec(c, &r, sql.p, ps->n, ps->v);
	if (st != DB_OK)
		goto out;
	for (int i = 0; i < PQntuples(r); i++) {
		struct dp_event_row row = { .body = PQgetvalue(r, i, 0), .body_len = (size_t)PQgetlength(r, i, 0),
			                    .occurred_us = int_at(r, i, 1), .seq = int_at(r, i, 2) };
		(*rows)++;
		if (fn(ctx, &row)) {
			*stopped = 1;
			break;
		}
	}
out:
	PQclear(r);
	buf_free(&sql);
	buf_free(&w);
	if (ps)
		list_params_free(ps);
	free(ps);
	return st;
}

/* The windows of a scan, in its order: the two newest weeks of its range
 * (counted from its upper bound, or now), the seven before, then the rest;
 * oldest first, the mirror image from its lower bound. Each is the query
 * with since/until narrowed: a statement plans only the weekly partitions
 * its window can touch, and a tenant with recent events is answered by the
 * first. */
#define SCAN_WINDOWS 3
static int scan_windows(const struct dp_event_query *q, int64_t lo[SCAN_WINDOWS], int64_t hi[SCAN_WINDOWS])
{
	/* [from, to): what the query may return. No event is before 1970. */
	int64_t from = 0, to = INT64_MAX;
	if (q->since_us > from)
		from = q->since_us;
	if (q->kept_from_us > from)
		from = q->kept_from_us;
	if (q->until_us >= 0 && q->until_us < to)
		to = q->until_us;
	if (q->stored_before_us >= 0 && q->stored_before_us < to)
		to = q->stored_before_us;
	if (q->has_cursor && !q->asc && q->cursor_us < to - 1)
		to = q->cursor_us < 0 ? 0 : q->cursor_us + 1;
	if (q->has_cursor && q->asc && q->cursor_us > from)
		from = q->cursor_us;
	static const int64_t span[SCAN_WINDOWS - 1] = { 2, 9 }; /* weeks from the anchor */
	const int64_t reach = span[SCAN_WINDOWS - 2] * DP_WEEK_US;
	/* Nothing to window: an empty range, oldest first from the start of
	 * time, or an instant too near the end of the integers to count
	 * weeks from (a forged cursor). One statement answers. */
	if (to <= from || (q->asc && from == 0) || from > INT64_MAX - 2 * reach)
		return 0;
	int n = 0;
	if (!q->asc) {
		int64_t anchor = dp_week_of(to == INT64_MAX ? timefmt_now_us() : to - 1), upper = to;
		for (int i = 0; i < SCAN_WINDOWS - 1 && upper > from; i++) {
			int64_t b = anchor - (span[i] - 1) * DP_WEEK_US;
			lo[n] = b > from ? b : from;
			hi[n++] = upper;
			upper = lo[n - 1];
		}
		if (upper > from) {
			lo[n] = from;
			hi[n++] = upper;
		}
	} else {
		int64_t anchor = dp_week_of(from), lower = from;
		for (int i = 0; i < SCAN_WINDOWS - 1 && lower < to; i++) {
			int64_t b = anchor + span[i] * DP_WEEK_US;
			lo[n] = lower;
			hi[n++] = b < to ? b : to;
			lower = hi[n - 1];
		}
		if (lower < to) {
			lo[n] = lower;
			hi[n++] = to;
		}
	}
	return n;
}

enum db_status dp_db_events_scan(struct db_conn *c, const struct dp_event_query *q, dp_event_row_fn fn,
                                 void *ctx)
{
	int64_t lo[SCAN_WINDOWS], hi[SCAN_WINDOWS];
	int n = scan_windows(q, lo, hi), rows = 0, stopped = 0;
	if (n == 0)
		return scan_once(c, q, fn, ctx, &rows, &stopped);
	struct dp_event_query *w = malloc(sizeof *w); /* large for a stack */
	if (!w)
		return DB_ERROR;
	enum db_status st = DB_OK;
	for (int i = 0; i < n && st == DB_OK && !stopped && rows < q->limit; i++) {
		*w = *q;
		/* Every window's bounds are instants from 1970 on (lo >= 0, hi >
		 * lo), but an open end: INT64_MAX, left open as the query's. */
		w->since_us = lo[i];
		w->until_us = hi[i] == INT64_MAX ? q->until_us : hi[i];
		w->limit = q->limit - rows;
		int got = 0;
		st = scan_once(c, w, fn, ctx, &got, &stopped);
		rows += got;
	}
	free(w);
	return st;
}

enum db_status dp_db_usage_changed(struct db_conn *c, const char *period, int64_t since_us,
                                   dp_usage_fn fn, void *ctx)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, since_us < 0 ? 0 : since_us);
	const char *p[2] = { period, num };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT tenant_id::text, events FROM usage_counters"
	                            " WHERE period = " PERIOD("$1") " AND updated_at >= " TS("$2"),
	                            2, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), period, int_at(r, i, 1));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_usage_backlog(struct db_conn *c, int64_t *batches, int64_t *events,
                                   int64_t *unbatched)
{
	PGresult *r;
	enum db_status st = db_exec(
		c, &r,
		"SELECT (SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL AND rejected_at IS NULL),"
		"       (SELECT coalesce(sum(events), 0) FROM usage_outbox"
		"         WHERE sent_at IS NULL AND rejected_at IS NULL),"
		"       (SELECT coalesce(sum(events - reported), 0) FROM usage_counters WHERE events > reported)",
		0, NULL);
	if (st != DB_OK)
		return st;
	*batches = int_at(r, 0, 0);
	*events = int_at(r, 0, 1);
	*unbatched = int_at(r, 0, 2);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_outbox_next(struct db_conn *c, struct dp_outbox_batch *b)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT id, key, body::text, events, records FROM usage_outbox"
	                            " WHERE sent_at IS NULL AND rejected_at IS NULL ORDER BY id LIMIT 1",
	                            0, NULL);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	b->id = int_at(r, 0, 0);
	snprintf(b->key, sizeof b->key, "%s", PQgetvalue(r, 0, 1));
	b->body = strdup(PQgetvalue(r, 0, 2));
	b->events = int_at(r, 0, 3);
	b->records = (int)int_at(r, 0, 4);
	PQclear(r);
	return b->body ? DB_OK : DB_ERROR;
}

enum db_status dp_db_usage_take(struct db_conn *c, int max_records, int64_t max_events,
                                dp_record_fn fn, void *ctx)
{
	char nrec[16], nev[24];
	snprintf(nrec, sizeof nrec, "%d", max_records);
	snprintf(nev, sizeof nev, "%" PRId64, max_events);
	const char *p[2] = { nrec, nev };
	PGresult *r;
	/* A counter with more than max_events unreported waits for the next
	 * batch for the rest. Every record must be one the usage report's
	 * format accepts (a refused one would hold back every batch after it):
	 * a window is never null, even on a counter whose start was not kept. */
	enum db_status st = db_exec(
		c, &r,
		"WITH lock AS (SELECT pg_try_advisory_xact_lock(" DP_USAGE_TAKE_LOCK ") AS got),"
		" d AS (SELECT c.tenant_id, c.period, c.events, c.reported, c.pending_since, c.last_at"
		"         FROM usage_counters c, lock WHERE lock.got AND c.events > c.reported"
		"        ORDER BY c.period, c.tenant_id LIMIT $1::int FOR UPDATE OF c),"
		" u AS (UPDATE usage_counters c"
		"          SET reported = c.reported + least(d.events - d.reported, $2::bigint)"
		"         FROM d WHERE c.tenant_id = d.tenant_id AND c.period = d.period"
		"       RETURNING c.tenant_id, c.period, least(d.events - d.reported, $2::bigint) AS n,"
		"                 d.pending_since, d.last_at)"
		" SELECT tenant_id::text, to_char(period, 'YYYY-MM'), n,"
		"        " RFC3339("coalesce(pending_since, last_at, now())") ", "
		RFC3339("coalesce(greatest(last_at, pending_since), now())")
		"   FROM u ORDER BY period, tenant_id",
		2, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++) {
		struct usage_record rec = {
			.tenant = PQgetvalue(r, i, 0), .period = PQgetvalue(r, i, 1), .events = int_at(r, i, 2),
			.window_start = PQgetvalue(r, i, 3), .window_end = PQgetvalue(r, i, 4),
		};
		fn(ctx, &rec);
	}
	st = PQntuples(r) ? DB_OK : DB_NOT_FOUND;
	PQclear(r);
	return st;
}

enum db_status dp_db_outbox_insert(struct db_conn *c, const char *key_prefix, const char *body,
                                   int records, int64_t events)
{
	char nrec[16], nev[24];
	snprintf(nrec, sizeof nrec, "%d", records);
	snprintf(nev, sizeof nev, "%" PRId64, events);
	const char *p[4] = { key_prefix, body, nrec, nev };
	return db_exec(c, NULL,
	               "INSERT INTO usage_outbox (key, body, records, events)"
	               " VALUES ($1 || gen_random_uuid(), $2::json, $3::int, $4::bigint)",
	               4, p);
}

enum db_status dp_db_outbox_mark(struct db_conn *c, int64_t id, enum dp_outbox_outcome o,
                                 const char *error)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, id);
	const char *p[2] = { num, error };
	static const char *const sql[] = {
		[DP_OUTBOX_SENT] = "UPDATE usage_outbox SET sent_at = now(), attempts = attempts + 1,"
		                   " last_error = $2 WHERE id = $1::bigint",
		[DP_OUTBOX_REJECTED] = "UPDATE usage_outbox SET rejected_at = now(), attempts = attempts + 1,"
		                       " last_error = $2 WHERE id = $1::bigint",
		[DP_OUTBOX_FAILED] = "UPDATE usage_outbox SET attempts = attempts + 1, last_error = $2"
		                     " WHERE id = $1::bigint",
	};
	return db_exec(c, NULL, sql[o], 2, p);
}

enum db_status dp_db_outbox_purge(struct db_conn *c, int days, long *deleted)
{
	char num[24];
	snprintf(num, sizeof num, "%d", days);
	const char *p[1] = { num };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "DELETE FROM usage_outbox WHERE sent_at < now() - $1::int * interval '1 day'",
	                            1, p);
	if (st != DB_OK)
		return st;
	*deleted = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_retention(struct db_conn *c, const char *tenant, int64_t cutoff_us, int batch,
                               long *deleted)
{
	char num[24], lim[16];
	snprintf(num, sizeof num, "%" PRId64, cutoff_us);
	snprintf(lim, sizeof lim, "%d", batch);
	const char *p[3] = { tenant, num, lim };
	PGresult *r;
	/* The tenant's log head first, waiting for an append in progress:
	 * that append's leaves are then seen by the statement below (a later
	 * one reads after the deletion), so no leaf of a deleted event is
	 * left unmarked. */
	enum db_status st = db_exec(c, NULL, "SELECT 1 FROM log_heads WHERE tenant_id = $1::uuid FOR UPDATE", 1, p);
	if (st != DB_OK)
		return st;
	st = db_exec(
		c, &r,
		/* The deleted events' leaves stay in the tenant's log (what
		 * remains still verifies), marked removed: the newest leaf of
		 * each id is its event's (an older one was an earlier event of
		 * that id, already removed). */
		/* Rows named by (occurred_at, seq), unique within a tenant: a
		 * ctid is not unique across partitions. */
		"WITH d AS (DELETE FROM events WHERE tenant_id = $1::uuid AND (occurred_at, seq) IN ("
		"  SELECT occurred_at, seq FROM events WHERE tenant_id = $1::uuid AND occurred_at < " TS("$2")
		"   ORDER BY occurred_at LIMIT $3::int FOR UPDATE SKIP LOCKED) RETURNING id),"
		" l AS (UPDATE log_leaves SET event_id = NULL, removed_at = now()"
		"   WHERE tenant_id = $1::uuid AND leaf_index IN ("
		"     SELECT max(leaf_index) FROM log_leaves"
		"      WHERE tenant_id = $1::uuid AND event_id IN (SELECT id FROM d) GROUP BY event_id))"
		" SELECT count(*) FROM d",
		3, p);
	if (st != DB_OK)
		return st;
	*deleted = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return DB_OK;
}
