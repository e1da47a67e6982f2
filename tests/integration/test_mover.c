/* The move agent from outside (suite mover): bin/mover --once against a
 * fake control plane and fake source and target cells played in this
 * process, each keeping a log of the calls it got, so that a test states
 * the exact sequence of calls and bodies a move makes: a whole move, a
 * mover killed mid-copy and started again (it resumes from the target's
 * progress, no page stored twice), the control plane refusing the move
 * mid-copy (409: the mover leaves it, then erases the target's copy of the
 * aborted move), a digest mismatch (failed, fence lifted, target erased),
 * an aborted move, and the erasure of a done move's source (refused while
 * its usage is unreported, then done). Also: --help against the README's
 * table (test_services.c), /metrics against the README's, and no
 * credential in the mover's log. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "it.h"

#define MOVE "11111111-2222-4333-8444-555555555555"
#define TENANT "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define REGION_TOKEN "crt_us_mover-it-region-token-0123456789"
#define CRED "eyJmb3ZlIjoibW92ZSJ9.eyJtb3ZlLWl0In0.c2lnbmF0dXJlLW9mLXRoZS1tb3Zl"
#define CRED2 "eyJmb3ZlIjoibW92ZSJ9.eyJtb3ZlLWl0LTIifQ.c2lnbmF0dXJlLXR3bw"
#define MAXROWS 64
#define MAXLOG 256
#define RECORD_US 1700000000000000LL
#define SAFE_US (RECORD_US + 5000000LL) /* the source's safe_since_us */

enum { CP, SRC, DST };

/* The three fakes' shared world: the source's rows, the target's copy,
 * the move at the control plane, and each server's log of calls. */
struct world {
	pthread_mutex_t mu;
	struct fake_srv srv[3];
	/* source: row i has tx 100+i, seq i+1, id ev-i */
	int nrows;
	int fenced;
	long fence_tx;
	int gets;                /* pages served */
	int append_at_get;       /* the n-th page request appends one row first (0: never) */
	/* target */
	int stored[MAXROWS];
	int next_row;            /* progress: rows (0..next_row-1) covered */
	long long events;
	int duplicates;          /* rows posted again after being stored */
	int corrupt;             /* the target's digest is off by one */
	int posts;               /* pages posted */
	int hold_post;           /* the n-th page post is stored, then held until released */
	atomic_int holding, release;
	int abort_after_post;    /* the n-th page post aborts the move at the control plane */
	int erase_rounds;        /* target erase: batches before done */
	int src_erase_409;       /* source erase: refusals before it erases */
	/* control plane */
	char state[24];
	int target_erased, source_erased, erase_due;
	int cred2;               /* the cells take only the second credential, which claims after the first hand out */
	int claims;
	int src_missing;         /* the source has no move routes (404): an older data plane */
	int cp_down;             /* the cutover's report: first hung (held past the mover's timeout), then 503 */
	/* logs */
	char log[3][MAXLOG][600];
	int n[3];
	long long pause_ms;
};

static struct world W;

static void wlog(int who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(int who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (W.n[who] < MAXLOG)
		vsnprintf(W.log[who][W.n[who]++], sizeof W.log[0][0], fmt, ap);
	va_end(ap);
}

/* Near 2^60 like the data planes' hashes, so that adding the two parts of
 * a digest carries through every digit (at most 7 rows: no overflow). */
static long long row_hash(int i)
{
	return 1234567890123456789LL - 1000003LL * i;
}

static void row_pos(int i, char *out, size_t len)
{
	if (i < 0)
		snprintf(out, len, "0.0");
	else
		snprintf(out, len, "%d.%d", 100 + i, i + 1);
}

/* The index of the last row at or before position `pos` ("0.0": -1). */
static int pos_row(const char *pos)
{
	long tx = 0, seq = 0;
	sscanf(pos, "%ld.%ld", &tx, &seq);
	return tx ? (int)(tx - 100) : -1;
}

static const char *query(const char *target, const char *name, char *out, size_t len)
{
	const char *q = strchr(target, '?');
	out[0] = '\0';
	for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
		if (!strncmp(p + 1, name, strlen(name)) && p[1 + strlen(name)] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(p + 2 + strlen(name), "&"), p + 2 + strlen(name));
			return out;
		}
	}
	return NULL;
}

static void reply_json(int fd, int status, json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT);
	fake_respond(fd, status, "application/json", t);
	free(t);
	json_decref(j);
}

static int authorized(const char *req, const char *token)
{
	char auth[4200];
	fake_header(req, "Authorization", auth, sizeof auth);
	return !strncmp(auth, "Bearer ", 7) && !strcmp(auth + 7, token);
}

/* The control plane's admin view of the move. */
static json_t *move_view(void)
{
	return json_pack("{ss ss ss ss ss ss ss ss}", "id", MOVE, "tenant_id", TENANT, "kind", "cell", "state", W.state,
	                 "from_region", "us", "to_region", "us", "from_cell", "us-src", "to_cell", "us-dst");
}

static int claim_due(void)
{
	const char *s = W.state;
	if (!strcmp(s, "copying") || !strcmp(s, "catching_up") || !strcmp(s, "cutover") || !strcmp(s, "verifying"))
		return 1;
	if (!strcmp(s, "aborted") || !strcmp(s, "failed"))
		return !W.target_erased;
	return !strcmp(s, "done") && W.erase_due && !W.source_erased;
}

static void cp_handle(struct fake_srv *s, int fd, const char *req)
{
	char method[8], target[512];
	const char *body = strstr(req, "\r\n\r\n") + 4;
	sscanf(req, "%7s %511s", method, target);
	pthread_mutex_lock(&W.mu);
	json_t *b = json_loads(body, 0, NULL);
	json_int_t pause = json_integer_value(json_object_get(b, "write_pause_ms"));
	if (json_object_get(b, "write_pause_ms")) {
		W.pause_ms = pause;
		json_object_del(b, "write_pause_ms");
	}
	char *bt = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : strdup("-");
	const char *path = target;
	int progress = !strcmp(path, "/v1/moves/" MOVE "/progress");
	/* Progress without a state (the lease's renewal) comes with the clock: not in the sequence. */
	if (!progress || json_object_get(b, "state"))
		wlog(CP, "%s %s %s", method, path, bt);
	free(bt);
	if (!authorized(req, REGION_TOKEN)) {
		wlog(CP, "BAD CREDENTIAL");
		fake_respond(fd, 401, "application/problem+json", "{\"code\":\"unauthorized\"}");
	} else if (!strcmp(path, "/v1/regions/us/moves/claim")) {
		W.claims++;
		if (claim_due())
			reply_json(fd, 200, json_pack("{so ss si}", "move", move_view(), "credential",
			                              W.cred2 && W.claims > 1 ? CRED2 : CRED,
			                              "lease_seconds", 30));
		else
			fake_respond(fd, 204, "application/json", NULL);
	} else if (progress && W.cp_down && !strcmp(json_string_value(json_object_get(b, "state")) ?: "", "cutover")) {
		int hang = W.cp_down-- == 2;
		wlog(CP, hang ? "-> hung" : "-> 503");
		if (hang) {
			pthread_mutex_unlock(&W.mu);
			for (int i = 0; i < 25 && !atomic_load(&s->stop); i++)
				usleep(100000);
			pthread_mutex_lock(&W.mu);
		}
		fake_respond(fd, 503, "application/problem+json", "{\"code\":\"unavailable\"}");
	} else if (progress) {
		const char *st = json_string_value(json_object_get(b, "state"));
		const char *cur = W.state;
		int ok = !st || (!strcmp(cur, "copying") && !strcmp(st, "catching_up")) ||
		         (!strcmp(cur, "catching_up") && !strcmp(st, "cutover")) ||
		         (!strcmp(cur, "cutover") && !strcmp(st, "verifying")) ||
		         (!strcmp(st, "failed") && (!strcmp(cur, "copying") || !strcmp(cur, "catching_up") ||
		                                    !strcmp(cur, "cutover") || !strcmp(cur, "verifying")));
		if (!strcmp(cur, "aborted") || !strcmp(cur, "failed") || !strcmp(cur, "done"))
			ok = 0;
		if (ok && st)
			snprintf(W.state, sizeof W.state, "%s", st);
		if (ok)
			reply_json(fd, 200, move_view());
		else {
			wlog(CP, "-> 409");
			fake_respond(fd, 409, "application/problem+json", "{\"code\":\"conflict\",\"detail\":\"the move is aborted\"}");
		}
	} else if (!strcmp(path, "/v1/moves/" MOVE "/complete")) {
		int match = json_equal(json_object_get(b, "source_events"), json_object_get(b, "target_events")) &&
		            json_equal(json_object_get(b, "source_digest"), json_object_get(b, "target_digest"));
		if (strcmp(W.state, "verifying")) {
			fake_respond(fd, 409, "application/problem+json", "{\"code\":\"conflict\"}");
		} else if (!match) {
			wlog(CP, "-> 422");
			fake_respond(fd, 422, "application/problem+json", "{\"code\":\"unprocessable\",\"detail\":\"mismatch\"}");
		} else {
			snprintf(W.state, sizeof W.state, "done");
			reply_json(fd, 200, move_view());
		}
	} else if (!strcmp(path, "/v1/moves/" MOVE "/erased")) {
		if (!strcmp(json_string_value(json_object_get(b, "side")), "target"))
			W.target_erased = 1;
		else
			W.source_erased = 1;
		reply_json(fd, 200, move_view());
	} else {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
	}
	json_decref(b);
	pthread_mutex_unlock(&W.mu);
}

/* Rows (after, upto] of the source: count and digest. */
static void digest_of(int after, int upto, long long *n, long long *d)
{
	*n = *d = 0;
	for (int i = after + 1; i <= upto && i < W.nrows; i++)
		(*n)++, *d += row_hash(i);
}

static void src_handle(struct fake_srv *s, int fd, const char *req)
{
	(void)s;
	char method[8], target[512], after[64], upto[64], lim[16];
	sscanf(req, "%7s %511s", method, target);
	pthread_mutex_lock(&W.mu);
	if (!authorized(req, W.cred2 ? CRED2 : CRED)) {
		wlog(SRC, "BAD CREDENTIAL %s %s", method, target);
		fake_respond(fd, 401, "application/problem+json", "{\"code\":\"unauthorized\"}");
		goto out;
	}
	if (W.src_missing) {
		wlog(SRC, "-> 404");
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
		goto out;
	}
	/* The lag's measures (a digest without upto) come with the clock. */
	if (!strstr(target, "/digest?") || strstr(target, "upto="))
		wlog(SRC, "%s %s", method, target);
	if (!strncmp(target, "/v1/moves/" MOVE "/events?", strlen("/v1/moves/" MOVE "/events?"))) {
		if (++W.gets == W.append_at_get && W.nrows < MAXROWS)
			W.nrows++;
		int from = pos_row(query(target, "after", after, sizeof after)) + 1;
		int limit = atoi(query(target, "limit", lim, sizeof lim) ? lim : "1000");
		json_t *ev = json_array();
		int i;
		for (i = from; i < W.nrows && i < from + limit; i++) {
			char id[16], tx[16];
			snprintf(id, sizeof id, "ev-%d", i);
			snprintf(tx, sizeof tx, "%d", 100 + i);
			json_array_append_new(ev, json_pack("{ss ss si s{si}}", "id", id, "tx_id", tx, "seq", i + 1, "body", "n", i));
		}
		char next[32];
		row_pos(i - 1 >= from ? i - 1 : from - 1, next, sizeof next);
		char horizon[24];
		snprintf(horizon, sizeof horizon, "%ld", W.fenced ? W.fence_tx + 1 : 100L + W.nrows);
		reply_json(fd, 200, json_pack("{so ss sb ss}", "events", ev, "next", next, "more", i < W.nrows, "horizon",
		                              horizon));
	} else if (strstr(target, "/digest?")) {
		long long n, d;
		int a = pos_row(query(target, "after", after, sizeof after));
		int u = query(target, "upto", upto, sizeof upto) ? pos_row(upto) : MAXROWS;
		char ds[32];
		digest_of(a, u, &n, &d);
		snprintf(ds, sizeof ds, "%lld", d);
		if (strstr(target, "count_only=true"))
			reply_json(fd, 200, json_pack("{sI}", "events", (json_int_t)n));
		else
			reply_json(fd, 200, json_pack("{sI ss}", "events", (json_int_t)n, "digest", ds));
	} else if (strstr(target, "/records?")) {
		reply_json(fd, 200,
		           json_pack("{s[{ss ss si ss ss sI}] s[{ss si} ] sI}", "idempotency", "key", "k-1", "request_sha256",
		                     "00", "status", 201, "location", "/v1/events/ev-0", "body", "{}", "created_at_us",
		                     (json_int_t)RECORD_US, "usage", "period", "2026-12", "events", W.nrows,
		                     "safe_since_us", (json_int_t)SAFE_US));
	} else if (!strcmp(target, "/v1/moves/" MOVE "/fence") && !strcmp(method, "POST")) {
		if (!W.fenced) {
			/* A write in flight commits before the fence does. */
			W.nrows++;
			W.fenced = 1;
			W.fence_tx = 100 + W.nrows;
		}
		char ftx[24];
		snprintf(ftx, sizeof ftx, "%ld", W.fence_tx);
		reply_json(fd, 200, json_pack("{ss}", "fence_tx", ftx));
	} else if (!strcmp(target, "/v1/moves/" MOVE "/fence")) {
		W.fenced = 0;
		fake_respond(fd, 204, "application/json", NULL);
	} else if (!strcmp(target, "/v1/moves/" MOVE "/erase")) {
		if (W.src_erase_409) {
			W.src_erase_409--;
			wlog(SRC, "-> 409");
			fake_respond(fd, 409, "application/problem+json", "{\"code\":\"conflict\",\"detail\":\"usage not reported\"}");
		} else {
			int done = W.nrows <= 5;
			int n = done ? W.nrows : 5;
			W.nrows -= n;
			reply_json(fd, 200, json_pack("{sb si si}", "done", done, "events_deleted", n, "rows_deleted", n + 1));
		}
	} else {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
	}
out:
	pthread_mutex_unlock(&W.mu);
}

static json_t *progress_json(void)
{
	long long d = 0;
	int stored = 0;
	char next[32];
	for (int i = 0; i < MAXROWS; i++)
		if (W.stored[i])
			d += row_hash(i), stored++;
	char ds[32];
	row_pos(W.next_row - 1, next, sizeof next);
	snprintf(ds, sizeof ds, "%lld", d + W.corrupt);
	return json_pack("{ss sI ss si}", "next", next, "events", (json_int_t)W.events, "digest", ds, "stored", stored);
}

static void dst_handle(struct fake_srv *s, int fd, const char *req)
{
	char method[8], target[512];
	const char *body = strstr(req, "\r\n\r\n") + 4;
	sscanf(req, "%7s %511s", method, target);
	pthread_mutex_lock(&W.mu);
	if (!authorized(req, W.cred2 ? CRED2 : CRED)) {
		wlog(DST, "BAD CREDENTIAL %s %s", method, target);
		fake_respond(fd, 401, "application/problem+json", "{\"code\":\"unauthorized\"}");
		pthread_mutex_unlock(&W.mu);
		return;
	}
	if (!strcmp(target, "/v1/moves/" MOVE "/progress")) {
		wlog(DST, "GET progress");
		reply_json(fd, 200, progress_json());
	} else if (!strcmp(target, "/v1/moves/" MOVE "/events")) {
		json_t *page = json_loads(body, 0, NULL), *e;
		size_t i;
		char ids[300] = "";
		int inserted = 0;
		json_array_foreach(json_object_get(page, "events"), i, e) {
			int r = atoi(it_js(e, "id") + 3);
			snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? "," : "", it_js(e, "id"));
			if (W.stored[r])
				W.duplicates++;
			else
				W.stored[r] = 1, inserted++, W.events++;
		}
		int nr = pos_row(it_js(page, "next")) + 1;
		if (nr > W.next_row)
			W.next_row = nr;
		json_decref(page);
		wlog(DST, "POST events %s", ids);
		int n = ++W.posts;
		if (n == W.abort_after_post)
			snprintf(W.state, sizeof W.state, "aborted");
		json_t *ans = progress_json();
		json_object_del(ans, "stored");
		json_object_set_new(ans, "inserted", json_integer(inserted));
		if (n == W.hold_post) {
			/* Stored, and the answer lost with the mover. */
			atomic_store(&W.holding, 1);
			pthread_mutex_unlock(&W.mu);
			while (!atomic_load(&W.release) && !atomic_load(&s->stop))
				usleep(10000);
			json_decref(ans);
			return;
		}
		reply_json(fd, 200, ans);
	} else if (!strcmp(target, "/v1/moves/" MOVE "/records")) {
		json_t *r = json_loads(body, 0, NULL);
		wlog(DST, "POST records idempotency=%zu usage=%zu", json_array_size(json_object_get(r, "idempotency")),
		     json_array_size(json_object_get(r, "usage")));
		json_decref(r);
		reply_json(fd, 200, json_pack("{si si ss}", "idempotency", 1, "usage", 1, "feed_offset", "0"));
	} else if (!strcmp(target, "/v1/moves/" MOVE "/erase")) {
		wlog(DST, "POST erase");
		int done = W.erase_rounds <= 1;
		if (W.erase_rounds > 0)
			W.erase_rounds--;
		if (done) {
			memset(W.stored, 0, sizeof W.stored);
			W.events = 0;
			W.next_row = 0;
		}
		reply_json(fd, 200, json_pack("{sb si si}", "done", done, "events_deleted", done ? 3 : 4, "rows_deleted",
		                              done ? 4 : 5));
	} else {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
	}
	pthread_mutex_unlock(&W.mu);
}

static void setup(void)
{
	memset(&W, 0, sizeof W);
	pthread_mutex_init(&W.mu, NULL);
	W.nrows = 5;
	snprintf(W.state, sizeof W.state, "copying");
	fake_srv_start(&W.srv[CP], cp_handle, NULL);
	fake_srv_start(&W.srv[SRC], src_handle, NULL);
	fake_srv_start(&W.srv[DST], dst_handle, NULL);
}

static void teardown(void)
{
	atomic_store(&W.release, 1);
	for (int i = 0; i < 3; i++)
		fake_srv_stop(&W.srv[i]);
	pthread_mutex_destroy(&W.mu);
}

/* The mover's settings against the fakes; `extra` adds some. */
static const char *const *mover_env(const char *extra)
{
	static char cp[128], cells[256], ex[256];
	static const char *env[12];
	int n = 0;
	snprintf(cp, sizeof cp, "MOVER_CONTROL_PLANE_URL=http://127.0.0.1:%d", W.srv[CP].port);
	snprintf(cells, sizeof cells, "MOVER_CELLS=us-src=http://127.0.0.1:%d/ us-dst=http://127.0.0.1:%d",
	         W.srv[SRC].port, W.srv[DST].port);
	env[n++] = cp;
	env[n++] = cells;
	env[n++] = "MOVER_REGION=us";
	env[n++] = "MOVER_REGION_TOKEN=" REGION_TOKEN;
	env[n++] = "MOVER_BATCH=2";
	env[n++] = "MOVER_LISTEN=127.0.0.1:0";
	env[n++] = "MOVER_INTERVAL=100ms";
	if (extra) {
		snprintf(ex, sizeof ex, "%s", extra);
		env[n++] = ex;
	}
	env[n] = NULL;
	return env;
}

static void mover_start(struct it_proc *p, int once, const char *extra)
{
	static char bin[1024];
	it_bin("mover", bin, sizeof bin);
	char *argv[] = { bin, once ? "--once" : NULL, NULL };
	it_spawn(p, "mover", argv, mover_env(extra));
}

/* Runs mover --once to its end; fails the test unless it exits 0. */
static void mover_once(void)
{
	struct it_proc p;
	mover_start(&p, 1, NULL);
	int rc = it_wait(&p, 60000);
	ck_assert_msg(rc == 0, "mover --once exited with %d (log %s)", rc, p.log);
	/* No credential is ever written to the log. */
	char *log = it_slurp(p.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(!strstr(log, REGION_TOKEN) && !strstr(log, CRED) && !strstr(log, CRED2),
	              "a credential is in the mover's log %s", p.log);
	free(log);
}

/* The log of server `who` from entry `from` on equals `want` (NULL-terminated). */
static void expect_log(int who, int from, const char *const want[])
{
	static const char *const names[] = { "control plane", "source", "target" };
	char all[16384] = "";
	pthread_mutex_lock(&W.mu);
	for (int i = 0; i < W.n[who]; i++)
		snprintf(all + strlen(all), sizeof all - strlen(all), "  %d: %s\n", i, W.log[who][i]);
	int i = 0;
	for (; want[i]; i++)
		ck_assert_msg(from + i < W.n[who] && !strcmp(W.log[who][from + i], want[i]),
		              "the %s's call %d is not\n  %s\nits calls:\n%s", names[who], from + i, want[i], all);
	ck_assert_msg(from + i == W.n[who], "the %s got more calls than expected:\n%s", names[who], all);
	pthread_mutex_unlock(&W.mu);
}

#define M "/v1/moves/" MOVE
#define CLAIM "POST /v1/regions/us/moves/claim {\"mover\":\"mover-us\"}"
#define PROGRESS(state, copied, lag, src)                                                                     \
	"POST " M "/progress {\"events_copied\":" #copied ",\"lag_events\":" #lag ",\"mover\":\"mover-us\","      \
	"\"source_events\":" #src ",\"state\":\"" state "\"}"

/* The source's digest of rows 0..n-1, as the fakes compute it. */
static const char *digest_rows(int n)
{
	long long d = 0;
	for (int i = 0; i < n; i++)
		d += row_hash(i);
	return it_fmt("%lld", d);
}

/* A whole move: copy (a write arrives meanwhile), catch up, cutover, fence
 * (a write in flight commits first: the drain copies it), records, verify,
 * complete; every call in order with its body. */
START_TEST(full_move)
{
	W.append_at_get = 2;
	mover_once();
	const char *const cp[] = {
		CLAIM,
		PROGRESS("catching_up", 6, 0, 6),
		PROGRESS("cutover", 6, 0, 6),
		PROGRESS("verifying", 7, 0, 7),
		it_fmt("POST " M "/complete {\"mover\":\"mover-us\",\"source_digest\":\"%s\",\"source_events\":7,"
		       "\"target_digest\":\"%s\",\"target_events\":7}",
		       digest_rows(7), digest_rows(7)),
		CLAIM,
		NULL,
	};
	const char *const src[] = {
		"GET " M "/events?after=0.0&limit=2",
		"GET " M "/events?after=101.2&limit=2",
		"GET " M "/events?after=103.4&limit=2",
		"GET " M "/digest?after=0.0&upto=105.6",
		"GET " M "/records?since_us=0",
		"GET " M "/events?after=105.6&limit=2",
		/* Each catch-up round copies the records since the last safe_since_us. */
		it_fmt("GET " M "/records?since_us=%lld", SAFE_US),
		"POST " M "/fence",
		"GET " M "/events?after=105.6&limit=2",
		it_fmt("GET " M "/records?since_us=%lld", SAFE_US),
		"GET " M "/digest?after=105.6&upto=106.7",
		NULL,
	};
	const char *const dst[] = {
		"GET progress",
		"POST events ev-0,ev-1",
		"POST events ev-2,ev-3",
		"POST events ev-4,ev-5",
		"POST records idempotency=1 usage=1",
		"POST records idempotency=1 usage=1",
		"POST events ev-6",
		"POST records idempotency=1 usage=1",
		"GET progress",
		NULL,
	};
	expect_log(CP, 0, cp);
	expect_log(SRC, 0, src);
	expect_log(DST, 0, dst);
	ck_assert_str_eq(W.state, "done");
	ck_assert_int_eq(W.duplicates, 0);
	ck_assert_int_eq(W.fenced, 1); /* the source stays fenced: the tenant lives at the target */
	ck_assert_msg(W.pause_ms >= 0 && W.pause_ms < 30000, "write_pause_ms %lld", W.pause_ms);
}
END_TEST

/* Killed while the target stores its second page (stored, the answer
 * lost), the mover started again resumes from the target's progress: no
 * row is posted twice and the move ends done. */
START_TEST(resume_after_kill)
{
	W.hold_post = 2;
	struct it_proc p;
	mover_start(&p, 1, NULL);
	long deadline = it_now_ms() + 30000;
	while (!atomic_load(&W.holding) && it_now_ms() < deadline)
		usleep(10000);
	ck_assert_msg(atomic_load(&W.holding), "the mover never posted its second page (log %s)", p.log);
	kill(p.pid, SIGKILL);
	ck_assert_int_eq(it_wait(&p, 10000), 128 + SIGKILL);
	atomic_store(&W.release, 1);
	int cp0 = W.n[CP], dst0 = W.n[DST];
	mover_once();
	const char *const dst[] = {
		"GET progress",
		"POST events ev-4",
		"POST records idempotency=1 usage=1",
		"POST records idempotency=1 usage=1",
		"POST events ev-5",
		"POST records idempotency=1 usage=1",
		"GET progress",
		NULL,
	};
	expect_log(DST, dst0, dst);
	const char *const cp[] = {
		CLAIM,
		PROGRESS("catching_up", 5, 0, 5),
		PROGRESS("cutover", 5, 0, 5),
		PROGRESS("verifying", 6, 0, 6),
		it_fmt("POST " M "/complete {\"mover\":\"mover-us\",\"source_digest\":\"%s\",\"source_events\":6,"
		       "\"target_digest\":\"%s\",\"target_events\":6}",
		       digest_rows(6), digest_rows(6)),
		CLAIM,
		NULL,
	};
	expect_log(CP, cp0, cp);
	/* The second run's first page starts where the target's progress was. */
	pthread_mutex_lock(&W.mu);
	int found = 0;
	for (int i = 0; i < W.n[SRC]; i++)
		if (!strcmp(W.log[SRC][i], "GET " M "/events?after=103.4&limit=2"))
			found++;
	pthread_mutex_unlock(&W.mu);
	ck_assert_int_eq(found, 2); /* the first run's prefetch, and the second run's first page */
	ck_assert_int_eq(W.duplicates, 0);
	ck_assert_str_eq(W.state, "done");
}
END_TEST

/* The control plane answers 409 mid-copy (an admin aborted the move): the
 * mover stops copying, never fences, and the claim that follows hands it
 * the aborted move, whose target copy it erases (two batches) and reports. */
START_TEST(conflict_mid_copy)
{
	W.abort_after_post = 1;
	W.erase_rounds = 2;
	mover_once();
	pthread_mutex_lock(&W.mu);
	int n = W.n[CP], refused = -1, fenced = 0, transitions = 0;
	for (int i = 0; i < n; i++) {
		if (!strcmp(W.log[CP][i], "-> 409") && refused < 0)
			refused = i;
		if (strstr(W.log[CP][i], "\"state\":\"cutover\"") || strstr(W.log[CP][i], "\"state\":\"verifying\""))
			transitions++;
	}
	for (int i = 0; i < W.n[SRC]; i++)
		fenced += strstr(W.log[SRC][i], "/fence") != NULL;
	pthread_mutex_unlock(&W.mu);
	ck_assert_msg(refused > 0, "no progress was refused");
	ck_assert_int_eq(fenced, 0);
	ck_assert_int_eq(transitions, 0);
	const char *const cp[] = {
		CLAIM,
		"POST " M "/erased {\"events_deleted\":7,\"mover\":\"mover-us\",\"rows_deleted\":9,\"side\":\"target\"}",
		CLAIM,
		NULL,
	};
	expect_log(CP, refused + 1, cp);
	/* The target: pages, then the erasure in two batches, nothing else. */
	pthread_mutex_lock(&W.mu);
	int e = W.n[DST] - 2;
	ck_assert_str_eq(W.log[DST][e], "POST erase");
	ck_assert_str_eq(W.log[DST][e + 1], "POST erase");
	for (int i = 0; i < e; i++)
		ck_assert_msg(!strncmp(W.log[DST][i], "POST events", 11) || !strcmp(W.log[DST][i], "GET progress"),
		              "target call %d: %s", i, W.log[DST][i]);
	pthread_mutex_unlock(&W.mu);
	ck_assert_str_eq(W.state, "aborted");
	ck_assert_int_eq(W.target_erased, 1);
	ck_assert_int_eq(W.events, 0);
}
END_TEST

/* The target's digest differs: the control plane refuses to complete
 * (422), the mover reports failed with the figures, lifts the fence and
 * erases the target's copy; the source stays authoritative. */
START_TEST(digest_mismatch)
{
	W.corrupt = 1;
	mover_once();
	const char *const cp[] = {
		CLAIM,
		PROGRESS("catching_up", 5, 0, 5),
		PROGRESS("cutover", 5, 0, 5),
		PROGRESS("verifying", 6, 0, 6),
		it_fmt("POST " M "/complete {\"mover\":\"mover-us\",\"source_digest\":\"%s\",\"source_events\":6,"
		       "\"target_digest\":\"%lld\",\"target_events\":6}",
		       digest_rows(6), atoll(digest_rows(6)) + 1),
		"-> 422",
		it_fmt("POST " M "/progress {\"error\":\"verification failed: the source has 6 events (digest %s), the "
		       "target 6 (digest %lld)\",\"events_copied\":6,\"lag_events\":0,\"mover\":\"mover-us\","
		       "\"source_events\":6,\"state\":\"failed\"}",
		       digest_rows(6), atoll(digest_rows(6)) + 1),
		"POST " M "/erased {\"events_deleted\":3,\"mover\":\"mover-us\",\"rows_deleted\":4,\"side\":\"target\"}",
		CLAIM,
		NULL,
	};
	expect_log(CP, 0, cp);
	const char *const src_tail[] = {
		"GET " M "/digest?after=104.5&upto=105.6",
		"DELETE " M "/fence",
		NULL,
	};
	expect_log(SRC, W.n[SRC] - 2, src_tail);
	const char *const dst_tail[] = { "GET progress", "POST erase", NULL };
	expect_log(DST, W.n[DST] - 2, dst_tail);
	ck_assert_str_eq(W.state, "failed");
	ck_assert_int_eq(W.fenced, 0);
	ck_assert_int_eq(W.events, 0);
}
END_TEST

/* An aborted move handed out by the claim: the target's copy is erased and
 * reported; the source is not called. */
START_TEST(aborted_move)
{
	snprintf(W.state, sizeof W.state, "aborted");
	W.stored[0] = W.stored[1] = 1;
	W.events = 2;
	mover_once();
	const char *const cp[] = {
		CLAIM,
		"POST " M "/erased {\"events_deleted\":3,\"mover\":\"mover-us\",\"rows_deleted\":4,\"side\":\"target\"}",
		CLAIM,
		NULL,
	};
	const char *const none[] = { NULL };
	const char *const dst[] = { "POST erase", NULL };
	expect_log(CP, 0, cp);
	expect_log(SRC, 0, none);
	expect_log(DST, 0, dst);
	ck_assert_int_eq(W.target_erased, 1);
}
END_TEST

/* A done move past its grace period: the source refuses to erase while
 * the tenant's usage is unreported (409: the mover leaves it for later and
 * --once ends), then erases in batches until done; the report has the sums. */
START_TEST(erase_done_source)
{
	snprintf(W.state, sizeof W.state, "done");
	W.erase_due = 1;
	W.nrows = 7;
	W.src_erase_409 = 1;
	mover_once();
	const char *const cp1[] = { CLAIM, CLAIM, NULL };
	const char *const src1[] = { "POST " M "/erase", "-> 409", NULL };
	expect_log(CP, 0, cp1);
	expect_log(SRC, 0, src1);
	ck_assert_int_eq(W.source_erased, 0);
	mover_once();
	const char *const cp2[] = {
		CLAIM,
		"POST " M "/erased {\"events_deleted\":7,\"mover\":\"mover-us\",\"rows_deleted\":9,\"side\":\"source\"}",
		CLAIM,
		NULL,
	};
	const char *const src2[] = { "POST " M "/erase", "POST " M "/erase", NULL };
	expect_log(CP, 2, cp2);
	expect_log(SRC, 2, src2);
	const char *const none[] = { NULL };
	expect_log(DST, 0, none);
	ck_assert_int_eq(W.source_erased, 1);
}
END_TEST

/* The control plane hangs (past MOVER_HTTP_TIMEOUT), then answers 503, at
 * the cutover's report: the mover calls again with backoff and the move
 * goes on as if nothing happened. */
START_TEST(control_plane_down)
{
	W.cp_down = 2;
	struct it_proc p;
	mover_start(&p, 1, "MOVER_HTTP_TIMEOUT=1s");
	int rc = it_wait(&p, 60000);
	ck_assert_msg(rc == 0, "mover --once exited with %d (log %s)", rc, p.log);
	const char *const cp[] = {
		CLAIM,
		PROGRESS("catching_up", 5, 0, 5),
		PROGRESS("cutover", 5, 0, 5),
		"-> hung",
		PROGRESS("cutover", 5, 0, 5),
		"-> 503",
		PROGRESS("cutover", 5, 0, 5),
		PROGRESS("verifying", 6, 0, 6),
		it_fmt("POST " M "/complete {\"mover\":\"mover-us\",\"source_digest\":\"%s\",\"source_events\":6,"
		       "\"target_digest\":\"%s\",\"target_events\":6}",
		       digest_rows(6), digest_rows(6)),
		CLAIM,
		NULL,
	};
	expect_log(CP, 0, cp);
	ck_assert_str_eq(W.state, "done");
}
END_TEST

/* A source cell without the move routes (404: a data plane of an older
 * build, mid-rollout) leaves the move for later: not failed, --once ends. */
START_TEST(cell_not_ready)
{
	W.src_missing = 1;
	mover_once();
	const char *const cp[] = { CLAIM, CLAIM, NULL };
	expect_log(CP, 0, cp);
	ck_assert_str_eq(W.state, "copying");
	W.src_missing = 0;
	mover_once();
	ck_assert_str_eq(W.state, "done");
}
END_TEST

/* A credential that expires mid-move (401 at a cell) is replaced by
 * claiming the move again: the first claim hands out a credential the
 * cells no longer take, the second a good one, and the move goes on. */
START_TEST(credential_refresh)
{
	W.cred2 = 1;
	mover_once();
	const char *const dst_head[] = { "BAD CREDENTIAL GET " M "/progress", "GET progress" };
	pthread_mutex_lock(&W.mu);
	ck_assert_int_ge(W.n[DST], 2);
	ck_assert_str_eq(W.log[DST][0], dst_head[0]);
	ck_assert_str_eq(W.log[DST][1], dst_head[1]);
	int bad = 0;
	for (int i = 0; i < W.n[DST]; i++)
		bad += !strncmp(W.log[DST][i], "BAD", 3);
	ck_assert_int_eq(W.claims, 3); /* the move, the fresh credential, nothing due */
	pthread_mutex_unlock(&W.mu);
	ck_assert_int_eq(bad, 1);
	ck_assert_str_eq(W.state, "done");
}
END_TEST

/* ---- with the real services ---- */

static json_t *admin_json(const struct it_stack *s, const char *method, const char *path, const char *body, long want)
{
	struct it_resp r;
	it_stack_admin(s, &r, method, path, body);
	ck_assert_msg(r.status == want, "%s %s: %ld, want %ld: %.400s", method, path, r.status, want, r.body);
	json_t *j = r.body && r.len ? json_loads(r.body, 0, NULL) : NULL;
	it_resp_free(&r);
	return j;
}

/* Writes of the moving tenant while the mover runs, at the source, until
 * stopped or answered other than 201 or 503 (the tenant has left the cell). */
struct writer {
	const char *url, *key;
	atomic_int stop;
	int acked, paused, n;
	long last;
	char ids[4096][16];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->key);
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	while (!atomic_load(&w->stop) && w->n < 4096) {
		struct it_resp r;
		char ev[200], url[200];
		snprintf(ev, sizeof ev, "{\"id\":\"w-%04d\",\"action\":\"user.login\",\"actor\":{\"id\":\"w\",\"type\":\"user\"}}", w->n);
		snprintf(url, sizeof url, "%s/v1/events", w->url);
		it_http(&r, "POST", url, h, ev, strlen(ev));
		w->last = r.status;
		if (r.status == 201)
			snprintf(w->ids[w->acked++], sizeof w->ids[0], "w-%04d", w->n);
		else if (r.status == 503 && r.body && strstr(r.body, "tenant_moving"))
			w->paused++;
		it_resp_free(&r);
		w->n++;
		if (w->last != 201 && w->last != 503)
			break;
	}
	return NULL;
}

/* mover --once with `env`, to its end (exit 0). */
static void real_mover_once(const char *const env[])
{
	char bin[1024];
	struct it_proc p;
	it_bin("mover", bin, sizeof bin);
	char *argv[] = { bin, "--once", NULL };
	it_spawn(&p, "mover", argv, env);
	int rc = it_wait(&p, 120000);
	ck_assert_msg(rc == 0, "mover --once exited with %d (log %s)", rc, p.log);
}

/* A whole cell move with the real control plane and two cells' data
 * planes: the tenant's events are at the target exactly once with their
 * ids, the tenant lives there, its old key works there, the move is done
 * with its figures; while the move lingers, the source still serves the
 * tenant's reads routed there (its writes 503 tenant_moving), and the
 * source's copy is erased once due and the linger is over. */
START_TEST(real_cell_move)
{
	struct it_stack s;
	char from[64], to[64], tok_from[200], tok_to[200], e_cell[100], e_tok[260];
	const int N = 57;
	/* Ended by hand below, once the source has been seen serving. */
	const char *const cp_env[] = { "CP_MOVE_LINGER=10m", NULL };
	it_stack_start(&s, "us", cp_env, NULL);
	json_t *t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s", s.tenant), NULL, 200);
	snprintf(from, sizeof from, "%s", it_js(t, "cell"));
	json_decref(t);
	snprintf(to, sizeof to, "%s", strcmp(from, "us-east-1") ? "us-east-1" : "us-west-2");
	t = admin_json(&s, "POST", it_fmt("/v1/cells/%s/credentials", from), "{}", 201);
	snprintf(tok_from, sizeof tok_from, "%s", it_js(t, "token"));
	json_decref(t);
	t = admin_json(&s, "POST", it_fmt("/v1/cells/%s/credentials", to), "{}", 201);
	snprintf(tok_to, sizeof tok_to, "%s", it_js(t, "token"));
	json_decref(t);

	/* The source: the stack's data plane, now its tenant's cell's. */
	snprintf(e_cell, sizeof e_cell, "DP_CELL=%s", from);
	snprintf(e_tok, sizeof e_tok, "DP_CELL_TOKEN=%s", tok_from);
	const char *const src_env[] = { e_cell, e_tok, "DP_USAGE_REPORT_INTERVAL=200ms", NULL };
	it_stack_dp_restart(&s, src_env);

	/* The target: a data plane of the other cell on a database of its own. */
	char db[600], e_db[700], e_cache[700], e_cell2[100], e_tok2[260], bin[1024];
	it_create_db(it_fmt("it_mover_target_%d", (int)getpid()), db, sizeof db);
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s/mover-target-cache-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(e_cell2, sizeof e_cell2, "DP_CELL=%s", to);
	snprintf(e_tok2, sizeof e_tok2, "DP_CELL_TOKEN=%s", tok_to);
	it_bin("data-plane", bin, sizeof bin);
	{
		char out[8192];
		char *argv[] = { bin, "migrate", NULL };
		const char *const menv[] = { e_db, s.dp_base[1], s.dp_base[2], NULL };
		ck_assert_msg(it_run("dp-migrate", argv, menv, out, sizeof out) == 0, "%s", out);
	}
	const char *const dst_env[] = { e_db, s.dp_base[1], s.dp_base[2], s.dp_base[3], s.dp_base[4], e_cache,
		                            "DP_LISTEN=127.0.0.1:0", "DP_INSTANCE=it-target", e_cell2, e_tok2,
		                            "DP_USAGE_REPORT_INTERVAL=200ms", NULL };
	struct it_proc dst;
	char *argv[] = { bin, NULL };
	it_spawn(&dst, "data-plane", argv, dst_env);
	int dst_port = it_wait_port(&dst, 60000);

	/* The tenant's events at the source. */
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s.key);
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	for (int i = 0; i < N; i++) {
		struct it_resp r;
		const char *ev = it_fmt("{\"id\":\"mv-%03d\",\"action\":\"user.login\",\"actor\":{\"id\":\"u-%d\",\"type\":\"user\"}}", i, i);
		it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), h, ev, strlen(ev));
		ck_assert_msg(r.status == 201, "POST /v1/events: %ld %.300s", r.status, r.body);
		it_resp_free(&r);
	}

	/* The move, driven by the mover while the tenant keeps writing. */
	static struct writer w;
	pthread_t wt;
	memset(&w, 0, sizeof w);
	w.url = s.dp_url;
	w.key = s.key;
	ck_assert_int_eq(pthread_create(&wt, NULL, writer_main, &w), 0);
	t = admin_json(&s, "POST", it_fmt("/v1/tenants/%s/moves", s.tenant),
	               it_fmt("{\"to_cell\":\"%s\",\"erase_after_seconds\":0}", to), 201);
	char move[40];
	snprintf(move, sizeof move, "%s", it_js(t, "id"));
	json_decref(t);
	char e_mcp[128], e_mtok[400], e_cells[300];
	snprintf(e_mcp, sizeof e_mcp, "MOVER_CONTROL_PLANE_URL=%s", s.cp_url);
	snprintf(e_mtok, sizeof e_mtok, "MOVER_REGION_TOKEN=%.300s", s.dp_base[4] + strlen("DP_REGION_TOKEN="));
	snprintf(e_cells, sizeof e_cells, "MOVER_CELLS=%.63s=%.63s %.63s=http://127.0.0.1:%d", from, s.dp_url, to, dst_port);
	const char *const menv[] = { e_mcp, e_mtok, e_cells, "MOVER_REGION=us", "MOVER_BATCH=7", NULL };
	real_mover_once(menv);
	atomic_store(&w.stop, 1);
	pthread_join(wt, NULL);
	/* Every write acknowledged at the source is at the target, once. */
	for (int i = 0; i < w.acked; i++)
		ck_assert_msg(sqll(db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id = '%s'", s.tenant,
		                              w.ids[i])) == 1,
		              "%s, acknowledged at the source, is not at the target once", w.ids[i]);
	fprintf(stderr, "mover: real cell move of %d events with %d writes acknowledged during it, %d paused (503), last %ld\n",
	        N, w.acked, w.paused, w.last);
	t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s/moves/%s", s.tenant, move), NULL, 200);
	ck_assert_msg(!strcmp(it_js(t, "state"), "done"), "the move is %s (error %s)", it_js(t, "state"), it_js(t, "error"));
	ck_assert_int_eq(json_integer_value(json_object_get(t, "events_copied")), N + w.acked);
	ck_assert_int_eq(json_integer_value(json_object_get(t, "source_events")), N + w.acked);
	ck_assert(json_is_integer(json_object_get(t, "write_pause_ms")));
	json_decref(t);
	t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s", s.tenant), NULL, 200);
	ck_assert_str_eq(it_js(t, "cell"), to);
	json_decref(t);
	ck_assert_int_eq(sqll(db, it_fmt("SELECT count(DISTINCT id) FROM events WHERE tenant_id = '%s'", s.tenant)), N + w.acked);
	ck_assert_int_eq(sqll(db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", s.tenant)), N + w.acked);
	ck_assert_int_eq(sqll(db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id = 'mv-042'", s.tenant)), 1);

	/* The linger: a read the router still sends to the source is served
	 * from its copy, whole up to the fence; a write is paused. */
	{
		char hc[100];
		snprintf(hc, sizeof hc, "X-Celltrail-Cell: %s", from);
		const char *const hr[] = { auth, hc, NULL };
		const char *const hw[] = { auth, hc, "Content-Type: application/json", NULL };
		struct it_resp r;
		it_http(&r, "GET", it_fmt("%s/v1/events?limit=1", s.dp_url), hr, NULL, 0);
		ck_assert_msg(r.status == 200, "a read at the source while the move lingers: %ld %.300s", r.status, r.body);
		json_t *page = json_loads(r.body, 0, NULL);
		ck_assert_int_eq((long long)json_array_size(json_object_get(page, "items")), 1);
		json_decref(page);
		it_resp_free(&r);
		const char *ev = "{\"id\":\"late\",\"action\":\"user.login\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}}";
		it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), hw, ev, strlen(ev));
		ck_assert_msg(r.status == 503 && strstr(r.body, "tenant_moving"), "a write at the source: %ld %.300s",
		              r.status, r.body);
		it_resp_free(&r);
	}
	ck_assert_int_eq(sqll(s.cp_db, it_fmt("WITH u AS (UPDATE moves SET linger_until = now() WHERE id = '%s'"
	                                      " AND linger_until IS NOT NULL RETURNING 1) SELECT count(*) FROM u", move)), 1);

	/* Grace period 0: the source's copy is erased once its usage is reported. */
	long deadline = it_now_ms() + 60000;
	for (;;) {
		real_mover_once(menv);
		t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s/moves/%s", s.tenant, move), NULL, 200);
		int erased = json_is_string(json_object_get(t, "source_erased_at"));
		long long events_erased = json_integer_value(json_object_get(t, "events_erased"));
		json_decref(t);
		if (erased) {
			ck_assert_int_eq(events_erased, N + w.acked);
			break;
		}
		ck_assert_msg(it_now_ms() < deadline, "the source's copy is not erased");
		usleep(300000);
	}
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", s.tenant)), 0);
	ck_assert_int_eq(it_stop(&dst), 0);
	it_stack_stop(&s);
}
END_TEST

/* The README's table of the mover's metrics ("### Mover" under "## Metrics")
 * and the mover_* families of a scrape agree both ways; /healthz answers. */
START_TEST(metrics_match_readme)
{
	snprintf(W.state, sizeof W.state, "done"); /* nothing due */
	struct it_proc p;
	mover_start(&p, 0, NULL);
	int port = it_wait_port(&p, 60000);
	struct it_resp s;
	it_http(&s, "GET", it_fmt("http://127.0.0.1:%d/healthz", port), NULL, NULL, 0);
	ck_assert_int_eq(s.status, 200);
	it_resp_free(&s);
	char *readme = it_slurp(it_fmt("%s/README.md", it_env("IT_ROOT")));
	ck_assert_ptr_nonnull(readme);
	const char *m = strstr(readme, "\n## Metrics\n");
	ck_assert_ptr_nonnull(m);
	const char *t = strstr(m, "\n### Mover\n"), *end = strstr(m + 1, "\n## ");
	ck_assert_msg(t && (!end || t < end), "README: no '### Mover' table under '## Metrics'");
	const char *sub = strstr(t + 1, "\n### ");
	if (sub && (!end || sub < end))
		end = sub;
	it_http(&s, "GET", it_fmt("http://127.0.0.1:%d/metrics", port), NULL, NULL, 0);
	ck_assert_int_eq(s.status, 200);
	int rows = 0, families = 0;
	for (const char *l = t; (l = strstr(l + 1, "\n| `")) && (!end || l < end);) {
		char name[100], type[20];
		ck_assert_int_eq(sscanf(l, "\n| `%99[^`]` | %19s", name, type), 2);
		ck_assert_msg(strstr(s.body, it_fmt("# TYPE %s %s\n", name, type)),
		              "README lists %s (%s), which the mover does not export so", name, type);
		rows++;
	}
	for (const char *l = s.body; (l = strstr(l, "# TYPE mover_")); l++) {
		char name[100];
		ck_assert_int_eq(sscanf(l, "# TYPE %99s", name), 1);
		ck_assert_msg(strstr(t, it_fmt("\n| `%s` |", name)), "the mover exports %s, which the README does not list", name);
		families++;
	}
	ck_assert_int_eq(rows, families);
	ck_assert_msg(strstr(s.body, "mover_steps_total{step=\"claim\",outcome=\"ok\"}"), "%.2000s", s.body);
	/* What a Prometheus scraper reads passes its linter without a remark. */
	char path[1024], out[4096];
	snprintf(path, sizeof path, "%s/metrics-mover-%d.txt", it_env("IT_LOG_DIR"), (int)getpid());
	write_text(path, s.body);
	char *argv[] = { "/bin/sh", "-c", (char *)it_fmt("exec /usr/bin/promtool check metrics < '%s'", path), NULL };
	int lint = it_run("promtool", argv, NULL, out, sizeof out);
	ck_assert_msg(lint == 0 && !out[0], "promtool check metrics on the mover's /metrics (exit %d):\n%.3000s", lint, out);
	unlink(path);
	it_resp_free(&s);
	free(readme);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

Suite *mover_suite(void)
{
	const TTest *const tests[] = {
		full_move, resume_after_kill, conflict_mid_copy, digest_mismatch, aborted_move, erase_done_source,
		control_plane_down, cell_not_ready, credential_refresh, metrics_match_readme, real_cell_move,
	};
	Suite *s = suite_create("mover");
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 90);
	return s;
}
