/* GET /v1/events/feed: a tenant's events in the order the region committed
 * them, after a cursor the consumer keeps, optionally waiting for them.
 *
 * Why nothing is skipped or handed out twice. seq is assigned when a row
 * is inserted, so a lower seq can become visible after a higher one (two
 * group commits, two instances, a slow transaction), and "seq > last seen"
 * would skip it. Each row records the id of the transaction that inserted
 * it (tx_id, migration 0005), and a read hands out only rows whose tx_id is
 * below the xmin of its own snapshot, in (tx_id, seq) order. Every
 * transaction below that xmin has ended (committed: its rows are in the
 * snapshot; aborted: it has none), and every transaction id assigned later
 * is at least the snapshot's xmax, above it. So the set of rows below a
 * position handed out is final: a reader resuming after (tx_id, seq) can
 * only find rows that sort after it, never one it passed. Each row is
 * handed out once because the position strictly increases. The cursor is
 * that position and nothing else, so it survives a restart and works on
 * any instance of the region.
 *
 * The price is lag: a row becomes visible to the feed only once every
 * transaction older than its own has ended, anywhere in the database
 * cluster (ingest groups, retention deletes, any writer; read-only
 * transactions do not count), which the statement timeout bounds
 * (DP_DB_STATEMENT_TIMEOUT, also idle_in_transaction_session_timeout).
 *
 * A waiting request (wait=N) holds neither a thread nor a database
 * connection: it is parked in feed_wait.c between reads, and woken by this
 * instance's commits at once, by other instances' (and by the end of an
 * older transaction that held events back) within DP_FEED_POLL_INTERVAL. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cursor.h"
#include "dp.h"
#include "dpdb.h"
#include "feed_wait.h"
#include "http.h"
#include "secret.h"

#define FEED_DEFAULT 100
#define FEED_MAX 1000
#define WAIT_MAX_S 60
/* Reads of one invocation when the tenant keeps committing between a read
 * and the park: the page is answered (empty) after this many. */
#define READS_MAX 4
#define RETRY_AFTER_DB "2"

/* ---- the cursor ----
 * base64url of: version 1 (1 byte), tx_id (8, big-endian), seq (8), and a
 * 32-bit FNV-1a check over the tenant's id and the 17 bytes before it. The
 * check catches a garbled cursor and one of another tenant; a made-up
 * position of the caller's own tenant passes it but can only re-read the
 * caller's own events, and one ahead of the feed is refused (see below). */
#define CUR_VERSION 1
#define CUR_BYTES 21
#define CUR_TEXT 28

static uint32_t cur_check(const char *tenant, const unsigned char *b, size_t n)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
		h = (h ^ *p) * 16777619u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void put_be(unsigned char *b, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *b, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

static void cur_encode(const char *tenant, uint64_t tx, int64_t seq, char out[CUR_TEXT + 1])
{
	unsigned char b[CUR_BYTES];
	b[0] = CUR_VERSION;
	put_be(b + 1, tx, 8);
	put_be(b + 9, (uint64_t)seq, 8);
	put_be(b + 17, cur_check(tenant, b, 17), 4);
	secret_b64url(b, sizeof b, out);
}

static int cur_decode(const char *tenant, const char *text, uint64_t *tx, int64_t *seq)
{
	unsigned char b[CUR_BYTES + 3];
	if (strlen(text) != CUR_TEXT || secret_unb64url(text, CUR_TEXT, b, sizeof b) != CUR_BYTES)
		return -1;
	if (b[0] != CUR_VERSION || get_be(b + 17, 4) != cur_check(tenant, b, 17))
		return -1;
	*tx = get_be(b + 1, 8);
	uint64_t s = get_be(b + 9, 8);
	if (s > INT64_MAX || *tx > INT64_MAX)
		return -1;
	*seq = (int64_t)s;
	return 0;
}

/* ---- the handler ---- */

struct feed_state {
	uint64_t tx;              /* the position: where the page starts after */
	int64_t seq;
	int limit;
	int64_t deadline_ms;      /* 0: answer at once */
	int parked;               /* has waited already */
};

static enum http_result db_failed(struct http_req *req, enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_RETRY) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE, "The region's database is unavailable. Retry later.");
	}
	return HTTP_FAILED; /* the DB layer logged it; the HTTP layer answers 500 */
}

/* wait: absent (0) or 0..WAIT_MAX_S seconds, digits only. */
static int parse_wait(const char *v, long *out)
{
	*out = 0;
	if (!v)
		return 0;
	size_t n = strlen(v);
	if (n == 0 || n > 2 || strspn(v, "0123456789") != n)
		return -1;
	*out = atol(v);
	return *out <= WAIT_MAX_S ? 0 : -1;
}

struct read_q {
	const char *tenant;
	const struct feed_state *s;
	struct buf out;
	struct dp_feed_page page;
};

static enum db_status read_tx(struct db_conn *c, void *ctx)
{
	struct read_q *q = ctx;
	q->out.len = 0;
	q->out.failed = 0;
	return dp_db_events_feed(c, q->tenant, q->s->tx, q->s->seq, q->s->limit, &q->out, &q->page);
}

/* The page of `q`, its position moved past it. */
static enum http_result answer(struct http_req *req, const char *tenant, struct feed_state *s,
                               struct read_q *q)
{
	char cur[CUR_TEXT + 1];
	if (q->page.n) {
		s->tx = q->page.last_tx;
		s->seq = q->page.last_seq;
	}
	cur_encode(tenant, s->tx, s->seq, cur);
	struct buf b = { 0 };
	buf_append(&b, "{\"items\":[", 10);
	buf_append(&b, q->out.p ? q->out.p : "", q->out.len);
	buf_printf(&b, "],\"next_cursor\":\"%s\",\"has_more\":%s}", cur, q->page.more ? "true" : "false");
	if (b.failed) {
		buf_free(&b);
		return HTTP_FAILED;
	}
	enum http_result rc = http_reply_raw(req, 200, "application/json", b.p, b.len);
	buf_free(&b);
	return rc;
}

enum http_result dp_handle_events_feed(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	struct feed_state *s = http_req_state(req);
	enum http_result rc = HTTP_FAILED;
	int first = !s;

	if (first) {
		const char *after = http_req_query(req, "after");
		long wait;
		int limit;
		uint64_t tx = 0;
		int64_t seq = 0;
		if (dp_events_admit(req, a, CFGDOC_SCOPE_READ) != HTTP_GO_ON)
			return HTTP_REPLIED;
		if (cursor_parse_limit(http_req_query(req, "limit"), FEED_DEFAULT, FEED_MAX, &limit) != 0)
			return http_reply_invalid_field(req, "limit", "limit must be an integer from 1 to %d.", FEED_MAX);
		if (parse_wait(http_req_query(req, "wait"), &wait) != 0)
			return http_reply_invalid_field(req, "wait", "wait must be a number of seconds from 0 to %d.",
			                                WAIT_MAX_S);
		if (after && cur_decode(a->tenant_id, after, &tx, &seq) != 0)
			return http_reply_invalid_field(req, "after", "after is not a cursor this feed returned.");
		if (!(s = calloc(1, sizeof *s)))
			return HTTP_FAILED;
		s->tx = tx;
		s->seq = seq;
		s->limit = limit;
		s->deadline_ms = wait ? dp_feed_now_ms() + wait * 1000 : 0;
		http_req_set_state(req, s, free);
	}

	struct read_q q = { .tenant = a->tenant_id, .s = s };
	for (int reads = 0;; reads++) {
		uint64_t gen = dp_feed_gen(app->feed, a->tenant_id);
		enum db_status st = db_tx(app->db, DB_READ_COMMITTED, read_tx, &q);
		if (st != DB_OK) {
			rc = db_failed(req, st);
			goto out;
		}
		/* Every position handed out is below the horizon of its read, and
		 * horizons only rise: one at or above it was never handed out,
		 * and resuming there would skip what commits below it. */
		if (first && s->tx >= q.page.horizon) {
			rc = http_reply_invalid_field(req, "after", "after is ahead of this region's feed.");
			goto out;
		}
		first = 0;
		int64_t now = dp_feed_now_ms();
		if (q.page.n || now >= s->deadline_ms || reads + 1 >= READS_MAX)
			break;
		switch (dp_feed_park(app->feed, req, a->tenant_id, gen, s->tx, s->seq, s->deadline_ms)) {
		case DP_FEED_PARKED:
			s->parked = 1;
			rc = HTTP_SUSPENDED; /* this handler runs again once resumed */
			goto out;
		case DP_FEED_CHANGED:
			continue;
		case DP_FEED_FULL:
			if (s->parked)
				break; /* it has waited: the empty page, not a refusal */
			http_add_header(req, "Retry-After", "1");
			rc = http_reply_problem(req, PROB_UNAVAILABLE,
			                        "Too many feed requests are waiting on this instance; retry, or ask without wait.");
			goto out;
		case DP_FEED_DRAINING:
		case DP_FEED_NOMEM:
			break;
		}
		break;
	}
	rc = answer(req, a->tenant_id, s, &q);
out:
	buf_free(&q.out);
	return rc;
}
