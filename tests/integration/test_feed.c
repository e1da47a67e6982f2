/* GET /v1/events/feed: every stored event exactly once, in commit order,
 * under concurrent writers, out-of-order commits and a restart; its
 * cursor, limit and wait at both ends; long polls woken by a local
 * commit, another instance's commit and a drain. Each test runs a control
 * plane and a data plane of region "us" (it_stack_start). */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"

/* A tenant with no practical rate limit or quota, and a key of it (the
 * stack's own tenant is on a plan whose rate the follower would exhaust). */
struct bulk {
	char tenant[40];
	char key[200];
	char auth[240];
};

static void member(const char *text, const char *name, char *out, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %.300s", text);
	snprintf(out, len, "%s", it_js(j, name));
	json_decref(j);
}

static void bulk_tenant(struct it_stack *s, struct bulk *b, const char *slug, const char *scopes)
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/plans",
	               it_fmt("{\"id\":\"feed-%s\",\"name\":\"Feed %s\",\"currency\":\"USD\",\"base_price\":0,"
	                      "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	                      "\"monthly_event_quota\":1000000000,\"retention_days\":30}",
	                      slug, slug));
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"feed-%s\"}", slug, slug,
	                      s->region, slug));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	member(r.body, "id", b->tenant, sizeof b->tenant);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", b->tenant),
	               it_fmt("{\"name\":\"k\",\"scopes\":%s}", scopes));
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	member(r.body, "secret", b->key, sizeof b->key);
	it_resp_free(&r);
	snprintf(b->auth, sizeof b->auth, "Authorization: Bearer %s", b->key);
	it_stack_sync(s);
}

/* ---- one request, thread-safe, with its own timeout ---- */

struct call {
	long status;               /* 0: no answer */
	json_t *json;
	char retry_after[16];
	char *body;
	size_t len;
	long ms;                   /* how long it took */
};

static size_t call_body(char *p, size_t sz, size_t n, void *u)
{
	struct call *x = u;
	char *o = realloc(x->body, x->len + sz * n + 1);
	if (!o)
		return 0;
	memcpy(o + x->len, p, sz * n);
	x->body = o;
	x->len += sz * n;
	o[x->len] = '\0';
	return sz * n;
}

static size_t call_hdr(char *p, size_t sz, size_t n, void *u)
{
	struct call *x = u;
	size_t len = sz * n;
	if (len > 12 && !strncasecmp(p, "Retry-After:", 12))
		snprintf(x->retry_after, sizeof x->retry_after, "%.*s", (int)strcspn(p + 13, "\r\n"), p + 13);
	return len;
}

static void call_free(struct call *x)
{
	json_decref(x->json);
	free(x->body);
	memset(x, 0, sizeof *x);
}

/* GET (body NULL) or POST `url`; fills `x` (call_free() it). */
static void call(struct call *x, const char *url, const char *auth, const char *body, long timeout_ms)
{
	memset(x, 0, sizeof *x);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, call_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, call_hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	long t0 = it_now_ms();
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
	x->ms = it_now_ms() - t0;
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (x->body)
		x->json = json_loadb(x->body, x->len, 0, NULL);
}

/* GET /v1/events/feed with `query` ("after=...&limit=..." or ""). */
static void feed(struct call *x, const char *base, const struct bulk *b, const char *query, long timeout_ms)
{
	char url[600];
	snprintf(url, sizeof url, "%s/v1/events/feed%s%s", base, *query ? "?" : "", query);
	call(x, url, b->auth, NULL, timeout_ms);
}

static void post_events(const char *base, const struct bulk *b, const char *body)
{
	struct call x;
	char url[200];
	snprintf(url, sizeof url, "%s/v1/events", base);
	call(&x, url, b->auth, body, 30000);
	ck_assert_msg(x.status == 201, "POST /v1/events: %ld %.300s", x.status, x.body ? x.body : "");
	call_free(&x);
}

static const char *ev(const char *id)
{
	return it_fmt("{\"id\":\"%s\",\"action\":\"a.b\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}}", id);
}

/* The page's shape, which every answer of the feed has; returns its items. */
static json_t *page(const struct call *x)
{
	ck_assert_msg(x->status == 200, "feed: %ld %.500s", x->status, x->body ? x->body : "");
	ck_assert_msg(x->json && json_is_object(x->json), "feed: not an object");
	ck_assert_msg(json_is_string(json_object_get(x->json, "next_cursor")), "feed: no next_cursor: %.300s",
	              x->body);
	ck_assert_msg(json_is_boolean(json_object_get(x->json, "has_more")), "feed: no has_more");
	json_t *items = json_object_get(x->json, "items");
	ck_assert_msg(json_is_array(items), "feed: no items");
	ck_assert_int_eq(json_object_size(x->json), 3);
	return items;
}

static const char *cursor_of(const struct call *x)
{
	return json_string_value(json_object_get(x->json, "next_cursor"));
}

static int more_of(const struct call *x)
{
	return json_is_true(json_object_get(x->json, "has_more"));
}

static const char *item_id(json_t *items, size_t i)
{
	return json_string_value(json_object_get(json_array_get(items, i), "id"));
}

/* The tenant's stored ids in SQL, sorted, comma-separated (malloc'd). */
static char *stored_ids(const struct it_stack *s, const struct bulk *b)
{
	char *v = it_sql(s->dp_db, it_fmt("SELECT coalesce(string_agg(id, ',' ORDER BY id COLLATE \"C\"), '')"
	                                  "  FROM events WHERE tenant_id = '%s'",
	                                  b->tenant));
	ck_assert(v != NULL);
	return v;
}

static long metric(const struct it_stack *s, const char *line_start)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/metrics", s->dp_url), NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	const char *p = strstr(r.body, it_fmt("\n%s", line_start));
	long v = p ? atol(p + 1 + strlen(line_start)) : -1;
	it_resp_free(&r);
	return v;
}

/* Waits until `name` (a metric line's start, with its trailing blank)
 * reads at least `want` on the stack's data plane. */
static void wait_metric(const struct it_stack *s, const char *name, long want)
{
	long deadline = it_now_ms() + 30000, v;
	while ((v = metric(s, name)) < want) {
		ck_assert_msg(it_now_ms() < deadline, "%s stayed %ld, want %ld", name, v, want);
		usleep(20 * 1000);
	}
}

/* ---- a long poll on its own thread ---- */

struct poll_req {
	char url[700];
	const struct bulk *b;
	long timeout_ms;
	pthread_t th;
	struct call x;
};

static void *poll_main(void *arg)
{
	struct poll_req *p = arg;
	call(&p->x, p->url, p->b->auth, NULL, p->timeout_ms);
	return NULL;
}

static void poll_start(struct poll_req *p, const char *base, const struct bulk *b, const char *query)
{
	memset(p, 0, sizeof *p);
	snprintf(p->url, sizeof p->url, "%s/v1/events/feed?%s", base, query);
	p->b = b;
	p->timeout_ms = 90000;
	ck_assert_int_eq(pthread_create(&p->th, NULL, poll_main, p), 0);
}

static void poll_join(struct poll_req *p)
{
	pthread_join(p->th, NULL);
}

/* A second data plane of the stack's region on the same database. */
static void second_dp(const struct it_stack *s, struct it_proc *p, char *url, size_t len, const char *extra)
{
	const char *env[16];
	char cache[700], bin[1024];
	int n = 0;
	snprintf(cache, sizeof cache, "DP_CACHE_DIR=%s/feed-dp2-%d", it_env("IT_LOG_DIR"), (int)getpid());
	for (int i = 0; i < 8; i++)
		if (strncmp(s->dp_base[i], "DP_CACHE_DIR=", 13) && strncmp(s->dp_base[i], "DP_INSTANCE=", 12))
			env[n++] = s->dp_base[i];
	env[n++] = cache;
	env[n++] = "DP_INSTANCE=it-stack-2";
	if (extra)
		env[n++] = extra;
	env[n] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(p, "data-plane-2", argv, env);
	int port = it_wait_port(p, 60000);
	snprintf(url, len, "http://127.0.0.1:%d", port);
	/* Serving once the document with the tenant is in use. */
	long deadline = it_now_ms() + 60000;
	for (;;) {
		struct it_resp r;
		it_http(&r, "GET", it_fmt("%s/readyz", url), NULL, NULL, 0);
		long st = r.status;
		it_resp_free(&r);
		if (st == 200)
			break;
		ck_assert_msg(it_now_ms() < deadline, "the second data plane never became ready");
		usleep(50 * 1000);
	}
}

/* ---- the cursor, as the reference the tests forge cursors with ---- */

static uint32_t fnv(const char *tenant, const unsigned char *b, size_t n)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
		h = (h ^ *p) * 16777619u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void forge(const char *tenant, unsigned long long tx, long long seq, char out[40])
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char b[21];
	b[0] = 1;
	for (int i = 0; i < 8; i++) {
		b[1 + i] = (unsigned char)(tx >> (56 - 8 * i));
		b[9 + i] = (unsigned char)((unsigned long long)seq >> (56 - 8 * i));
	}
	uint32_t h = fnv(tenant, b, 17);
	for (int i = 0; i < 4; i++)
		b[17 + i] = (unsigned char)(h >> (24 - 8 * i));
	int k = 0;
	for (int i = 0; i < 21; i += 3) {
		unsigned v = (unsigned)b[i] << 16 | (unsigned)b[i + 1] << 8 | b[i + 2];
		out[k++] = a[v >> 18 & 63];
		out[k++] = a[v >> 12 & 63];
		out[k++] = a[v >> 6 & 63];
		out[k++] = a[v & 63];
	}
	out[k] = '\0';
}

/* ---- tests ---- */

/* A consumer pages through the feed in insertion order, finds next_cursor
 * and has_more on every page (also the last), and limit and wait are
 * refused past both ends and accepted at them. */
START_TEST(pages_limit_and_wait_ends)
{
	struct it_stack s;
	struct bulk b;
	struct call x;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &b, "feed-pages", "[\"events:write\",\"events:read\"]");

	/* An empty trail: an empty page that still says where to resume. */
	feed(&x, s.dp_url, &b, "", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	ck_assert(!more_of(&x));
	char start[64];
	snprintf(start, sizeof start, "%s", cursor_of(&x));
	call_free(&x);

	char body[8192] = "{\"events\":[";
	for (int i = 0; i < 5; i++)
		strcat(body, it_fmt("%s%s", i ? "," : "", ev(it_fmt("e%d", i))));
	strcat(body, "]}");
	post_events(s.dp_url, &b, body);
	post_events(s.dp_url, &b, ev("e5"));

	/* limit=1 (the lower end) pages one by one from the empty page's cursor. */
	char cur[64];
	snprintf(cur, sizeof cur, "%s", start);
	for (int i = 0; i < 6; i++) {
		feed(&x, s.dp_url, &b, it_fmt("after=%s&limit=1", cur), 20000);
		json_t *items = page(&x);
		ck_assert_int_eq(json_array_size(items), 1);
		ck_assert_str_eq(item_id(items, 0), it_fmt("e%d", i));
		ck_assert_int_eq(more_of(&x), i < 5);
		snprintf(cur, sizeof cur, "%s", cursor_of(&x));
		call_free(&x);
	}
	/* At the end: empty, has_more false, the same position. */
	feed(&x, s.dp_url, &b, it_fmt("after=%s", cur), 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	ck_assert(!more_of(&x));
	ck_assert_str_eq(cursor_of(&x), cur);
	call_free(&x);
	/* No after: from the beginning; limit=1000 (the upper end) takes all. */
	feed(&x, s.dp_url, &b, "limit=1000&wait=0", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 6);
	ck_assert(!more_of(&x));
	ck_assert_str_eq(cursor_of(&x), cur);
	call_free(&x);
	feed(&x, s.dp_url, &b, "limit=5", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 5);
	ck_assert(more_of(&x));
	call_free(&x);

	/* Out of range or not a number: 400 naming the parameter. */
	static const char *const bad[][2] = {
		{ "limit=0", "limit" }, { "limit=1001", "limit" }, { "limit=x", "limit" }, { "limit=", "limit" },
		{ "wait=61", "wait" },  { "wait=-1", "wait" },     { "wait=1.5", "wait" }, { "wait=", "wait" },
		{ "wait=100", "wait" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct res r;
		res_call(&r, "GET", it_fmt("%s/v1/events/feed?%s", s.dp_url, bad[i][0]),
		         (const char *const[]){ b.auth, NULL }, NULL, 0);
		EXPECT_PROBLEM(&r, 400, "validation_failed", bad[i][1]);
		res_free(&r);
	}
	/* wait=60, the upper end, is accepted (the wait itself is tested below). */
	feed(&x, s.dp_url, &b, it_fmt("after=%s&wait=60&limit=1", start), 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 1);
	call_free(&x);

	/* The events of one request follow in the request's order. A batch of
	 * 20 in a cell whose tenant_feed_offsets was never analyzed gets the
	 * insert's join as a hash right join, whose output came last-first. */
	enum { NBATCH = 20 };
	char *big = malloc(NBATCH * 96 + 32);
	ck_assert_ptr_nonnull(big);
	strcpy(big, "{\"events\":[");
	for (int i = 0; i < NBATCH; i++)
		strcat(big, it_fmt("%s%s", i ? "," : "", ev(it_fmt("f%03d", i))));
	strcat(big, "]}");
	post_events(s.dp_url, &b, big);
	free(big);
	/* One transaction: the feed hands out all of it or none (wait, since
	 * another transaction open meanwhile can hold it back a moment). */
	feed(&x, s.dp_url, &b, it_fmt("after=%s&limit=1000&wait=10", cur), 20000);
	json_t *items = page(&x);
	ck_assert_int_eq(json_array_size(items), NBATCH);
	for (int i = 0; i < NBATCH; i++)
		ck_assert_msg(!strcmp(item_id(items, (size_t)i), it_fmt("f%03d", i)),
		              "item %d of the feed is %s, want f%03d (the request's order)", i, item_id(items, (size_t)i), i);
	call_free(&x);
	it_stack_stop(&s);
}
END_TEST

/* A cursor that was garbled, cut, made for another tenant, from another
 * version, or ahead of the feed is refused (400 naming `after`), never
 * read as a position; the key's scope and the caller are checked as on
 * GET /v1/events. */
START_TEST(cursor_and_gate)
{
	struct it_stack s;
	struct bulk b, other, wonly;
	struct call x;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &b, "feed-cur", "[\"events:write\",\"events:read\"]");
	bulk_tenant(&s, &other, "feed-other", "[\"events:write\",\"events:read\"]");
	bulk_tenant(&s, &wonly, "feed-wonly", "[\"events:write\"]");
	post_events(s.dp_url, &b, ev("c1"));
	/* A wait: another transaction open meanwhile can hold the event back
	 * a moment. */
	feed(&x, s.dp_url, &b, "wait=10", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 1);
	char good[64];
	snprintf(good, sizeof good, "%s", cursor_of(&x));
	call_free(&x);
	ck_assert_int_eq((int)strlen(good), 28);

	char flipped[64], cut[64], longer[80], forged[40], ahead[40], v2[64];
	snprintf(flipped, sizeof flipped, "%s", good);
	flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
	snprintf(cut, sizeof cut, "%.27s", good);
	snprintf(longer, sizeof longer, "%sA", good);
	forge(b.tenant, 1ULL << 62, 1, ahead);          /* a check that holds, a position never handed out */
	forge(other.tenant, 0, 0, forged);              /* another tenant's cursor */
	/* Version 2 of a cursor: the same bytes with the version changed. */
	snprintf(v2, sizeof v2, "%s", good);
	v2[0] = 'A'; v2[1] = 'g'; /* 0x02 in the first byte */
	const char *const bad[] = { "x", "", cut, longer, flipped, forged, ahead, v2, "AAAA", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct res r;
		res_call(&r, "GET", it_fmt("%s/v1/events/feed?after=%s", s.dp_url, bad[i]),
		         (const char *const[]){ b.auth, NULL }, NULL, 0);
		EXPECT_PROBLEM(&r, 400, "validation_failed", "after");
		res_free(&r);
	}
	/* The reference codec agrees with the service on a real position:
	 * (0, 0) is the start of the trail. */
	char zero[40];
	forge(b.tenant, 0, 0, zero);
	feed(&x, s.dp_url, &b, it_fmt("after=%s", zero), 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 1);
	ck_assert_str_eq(cursor_of(&x), good);
	call_free(&x);
	/* Another tenant reads its own (empty) trail, never this one's. */
	feed(&x, s.dp_url, &other, "", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	call_free(&x);

	struct res r;
	res_call(&r, "GET", it_fmt("%s/v1/events/feed", s.dp_url), (const char *const[]){ wonly.auth, NULL }, NULL, 0);
	EXPECT_PROBLEM(&r, 403, "insufficient_scope", NULL);
	res_free(&r);
	res_call(&r, "GET", it_fmt("%s/v1/events/feed", s.dp_url), NULL, NULL, 0);
	ck_assert_int_eq(r.status, 401);
	res_free(&r);
	it_stack_stop(&s);
}
END_TEST

/* A transaction that inserted an event with a lower seq and has not
 * committed holds back every later commit: the feed hands out nothing
 * past it until it commits, then hands out its event first. A feed that
 * followed seq would hand out the later event at once and skip this one. */
START_TEST(out_of_order_commit_not_skipped)
{
	struct it_stack s;
	struct bulk b;
	struct call x;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &b, "feed-ooo", "[\"events:write\",\"events:read\"]");
	post_events(s.dp_url, &b, ev("before"));
	feed(&x, s.dp_url, &b, "wait=10", 20000); /* as in cursor_and_gate */
	ck_assert_int_eq(json_array_size(page(&x)), 1);
	char cur[64];
	snprintf(cur, sizeof cur, "%s", cursor_of(&x));
	call_free(&x);

	/* The slow writer: inserts (lower seq, lower transaction id), stays open. */
	PGconn *slow = PQconnectdb(s.dp_db);
	ck_assert(PQstatus(slow) == CONNECTION_OK);
	PGresult *q = PQexec(slow, it_fmt("BEGIN; INSERT INTO events (tenant_id, id, occurred_at, received_at, action,"
	                                  " actor_id, content_sha256, body) VALUES ('%s', 'slow', now(), now(), 'a.b', 'u',"
	                                  " sha256('slow'), '{\"id\":\"slow\"}')",
	                                  b.tenant));
	ck_assert_msg(PQresultStatus(q) == PGRES_COMMAND_OK, "%s", PQerrorMessage(slow));
	PQclear(q);
	/* Later writers commit while it is open. */
	post_events(s.dp_url, &b, ev("after1"));
	post_events(s.dp_url, &b, ev("after2"));
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id LIKE 'after%%'",
	                                      b.tenant)), 2);
	feed(&x, s.dp_url, &b, it_fmt("after=%s", cur), 20000);
	ck_assert_msg(json_array_size(page(&x)) == 0, "the feed handed out a commit past an open insert: %s", x.body);
	ck_assert(!more_of(&x));
	ck_assert_str_eq(cursor_of(&x), cur);
	call_free(&x);

	/* A follower waits; the slow commit wakes it and comes first. */
	struct poll_req p;
	poll_start(&p, s.dp_url, &b, it_fmt("after=%s&wait=30", cur));
	wait_metric(&s, "dp_feed_waiters ", 1);
	q = PQexec(slow, "COMMIT");
	ck_assert(PQresultStatus(q) == PGRES_COMMAND_OK);
	PQclear(q);
	PQfinish(slow);
	poll_join(&p);
	json_t *items = page(&p.x);
	ck_assert_msg(p.x.ms < 15000, "woken after %ld ms", p.x.ms);
	ck_assert_int_eq(json_array_size(items), 3);
	ck_assert_str_eq(item_id(items, 0), "slow");
	ck_assert_str_eq(item_id(items, 1), "after1");
	ck_assert_str_eq(item_id(items, 2), "after2");
	call_free(&p.x);
	it_stack_stop(&s);
}
END_TEST

/* Events committed behind an older transaction that writes no event
 * (nothing of the data plane's sees it end) still reach a waiting
 * follower soon after that transaction ends, not at its deadline. */
START_TEST(held_back_by_other_transaction)
{
	struct it_stack s;
	struct bulk b;
	struct call x;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &b, "feed-held", "[\"events:write\",\"events:read\"]");
	PGconn *old = PQconnectdb(s.dp_db);
	ck_assert(PQstatus(old) == CONNECTION_OK);
	PGresult *q = PQexec(old, "BEGIN; SELECT pg_current_xact_id()");
	ck_assert(PQresultStatus(q) == PGRES_TUPLES_OK);
	PQclear(q);
	post_events(s.dp_url, &b, ev("held"));
	feed(&x, s.dp_url, &b, "", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	char cur[64];
	snprintf(cur, sizeof cur, "%s", cursor_of(&x));
	call_free(&x);
	struct poll_req p;
	poll_start(&p, s.dp_url, &b, it_fmt("after=%s&wait=60", cur));
	wait_metric(&s, "dp_feed_waiters ", 1);
	long t0 = it_now_ms();
	q = PQexec(old, "COMMIT");
	PQclear(q);
	PQfinish(old);
	poll_join(&p);
	json_t *items = page(&p.x);
	ck_assert_int_eq(json_array_size(items), 1);
	ck_assert_str_eq(item_id(items, 0), "held");
	ck_assert_msg(it_now_ms() - t0 < 20000, "answered %ld ms after the old transaction ended", it_now_ms() - t0);
	call_free(&p.x);
	ck_assert_int_ge(metric(&s, "dp_feed_wakeups_total{reason=\"poll\"} "), 1);
	it_stack_stop(&s);
}
END_TEST

/* A waiting follower is answered as soon as an event is committed, by
 * this instance or by another instance of the region; with nothing
 * committed, at its deadline with an empty page at the same position. */
START_TEST(long_poll_wakes)
{
	struct it_stack s;
	struct bulk b;
	struct call x;
	struct it_proc dp2;
	char url2[64];
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &b, "feed-wake", "[\"events:write\",\"events:read\"]");
	second_dp(&s, &dp2, url2, sizeof url2, NULL);
	feed(&x, s.dp_url, &b, "", 20000);
	char cur[64];
	snprintf(cur, sizeof cur, "%s", cursor_of(&x));
	call_free(&x);

	/* The deadline (wait=1): empty, has_more false, the same cursor. */
	feed(&x, s.dp_url, &b, it_fmt("after=%s&wait=1", cur), 30000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	ck_assert(!more_of(&x));
	ck_assert_str_eq(cursor_of(&x), cur);
	ck_assert_msg(x.ms >= 900 && x.ms < 15000, "wait=1 answered after %ld ms", x.ms);
	call_free(&x);
	/* wait=0 answers at once. */
	feed(&x, s.dp_url, &b, it_fmt("after=%s&wait=0", cur), 30000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	call_free(&x);

	/* A local commit. */
	struct poll_req p;
	poll_start(&p, s.dp_url, &b, it_fmt("after=%s&wait=60", cur));
	wait_metric(&s, "dp_feed_waiters ", 1);
	long t0 = it_now_ms();
	post_events(s.dp_url, &b, ev("local"));
	poll_join(&p);
	json_t *items = page(&p.x);
	ck_assert_int_eq(json_array_size(items), 1);
	ck_assert_str_eq(item_id(items, 0), "local");
	ck_assert_msg(it_now_ms() - t0 < 15000, "woken %ld ms after the commit", it_now_ms() - t0);
	snprintf(cur, sizeof cur, "%s", cursor_of(&p.x));
	call_free(&p.x);

	/* Another instance's commit. */
	poll_start(&p, s.dp_url, &b, it_fmt("after=%s&wait=60", cur));
	wait_metric(&s, "dp_feed_waiters ", 1);
	t0 = it_now_ms();
	post_events(url2, &b, ev("remote"));
	poll_join(&p);
	items = page(&p.x);
	ck_assert_int_eq(json_array_size(items), 1);
	ck_assert_str_eq(item_id(items, 0), "remote");
	ck_assert_msg(it_now_ms() - t0 < 15000, "woken %ld ms after the other instance's commit", it_now_ms() - t0);
	call_free(&p.x);
	/* The local commit woke it at once, the other instance's through a poll. */
	ck_assert_int_ge(metric(&s, "dp_feed_wakeups_total{reason=\"commit\"} "), 1);
	ck_assert_int_ge(metric(&s, "dp_feed_wakeups_total{reason=\"poll\"} "), 1);
	ck_assert_int_ge(metric(&s, "dp_feed_polls_total "), 1);
	ck_assert_int_eq(metric(&s, "dp_feed_waiters "), 0);
	ck_assert_int_eq(it_stop(&dp2), 0);
	it_stack_stop(&s);
}
END_TEST

/* Past DP_FEED_WAITERS_MAX parked requests a new waiting request gets 503
 * with Retry-After (one without wait is still served); a parked request
 * is answered, not cut, when the data plane drains. */
START_TEST(waiters_bound_and_drain)
{
	struct it_stack s;
	struct bulk b;
	struct call x;
	const char *const env[] = { "DP_FEED_WAITERS_MAX=1", NULL };
	it_stack_start(&s, "us", NULL, env);
	bulk_tenant(&s, &b, "feed-bound", "[\"events:write\",\"events:read\"]");
	struct poll_req p;
	poll_start(&p, s.dp_url, &b, "wait=60");
	wait_metric(&s, "dp_feed_waiters ", 1);
	feed(&x, s.dp_url, &b, "wait=5", 20000);
	ck_assert_int_eq(x.status, 503);
	ck_assert_str_eq(it_js(x.json, "code"), "unavailable");
	ck_assert_str_eq(x.retry_after, "1");
	call_free(&x);
	ck_assert_int_eq(metric(&s, "dp_feed_waiters_refused_total "), 1);
	feed(&x, s.dp_url, &b, "", 20000);
	ck_assert_int_eq(json_array_size(page(&x)), 0);
	call_free(&x);

	/* Drain: the parked request is answered with its (empty) page. */
	long t0 = it_now_ms();
	it_stack_dp_restart(&s, env);
	poll_join(&p);
	ck_assert_int_eq(json_array_size(page(&p.x)), 0);
	ck_assert(!more_of(&p.x));
	ck_assert_msg(it_now_ms() - t0 < 30000, "the drained waiter answered after %ld ms", it_now_ms() - t0);
	call_free(&p.x);
	it_stack_stop(&s);
}
END_TEST

/* ---- the acceptance run: writers and a follower ---- */

#define WRITERS 8

struct run {
	struct it_stack *s;
	const struct bulk *b;
	char url2[64];
	pthread_mutex_t lock;          /* dp_url of the stack changes on restart */
	char url1[64];
	atomic_int stop_writers, stop_follower;
	atomic_long posted;
	/* the follower */
	char **ids;
	size_t nids, cap;
	long pages, waits;
};

struct writer {
	struct run *r;
	int n;
	pthread_t th;
};

static void run_url1(struct run *r, char *out, size_t len)
{
	pthread_mutex_lock(&r->lock);
	snprintf(out, len, "%s", r->url1);
	pthread_mutex_unlock(&r->lock);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct run *r = w->r;
	unsigned seed = (unsigned)w->n * 7919u + 1;
	char url[200], *body = malloc(64 * 1024);
	for (long i = 0; !atomic_load(&r->stop_writers); i++) {
		int n = 1 + (int)(rand_r(&seed) % 20);
		size_t k = (size_t)snprintf(body, 64, "{\"events\":[");
		for (int j = 0; j < n; j++)
			k += (size_t)snprintf(body + k, 64 * 1024 - k,
			                      "%s{\"id\":\"w%d-%ld-%d\",\"action\":\"a.b\",\"actor\":{\"id\":\"u%d\",\"type\":\"user\"}}",
			                      j ? "," : "", w->n, i, j, w->n);
		snprintf(body + k, 64 * 1024 - k, "]}");
		/* Half the writers go through the second instance: commits of
		 * two instances interleave. */
		char base[64];
		if (w->n % 2)
			snprintf(base, sizeof base, "%s", r->url2);
		else
			run_url1(r, base, sizeof base);
		snprintf(url, sizeof url, "%s/v1/events", base);
		struct call x;
		call(&x, url, r->b->auth, body, 30000);
		if (x.status == 201)
			atomic_fetch_add(&r->posted, n);
		else if (x.status != 0 && x.status != 503)
			ck_abort_msg("POST: %ld %.300s", x.status, x.body ? x.body : "");
		else
			usleep(20 * 1000); /* restarting */
		call_free(&x);
	}
	free(body);
	return NULL;
}

/* Follows the feed of the stack's data plane until told to stop and
 * caught up; keeps every id it was handed. */
static void *follower_main(void *arg)
{
	struct run *r = arg;
	static const int limits[] = { 1, 7, 100, 1000 };
	char cur[64] = "", base[64], q[200];
	for (long i = 0;; i++) {
		int stopping = atomic_load(&r->stop_follower);
		run_url1(r, base, sizeof base);
		snprintf(q, sizeof q, "%s%s%slimit=%d&wait=%d", cur[0] ? "after=" : "", cur, cur[0] ? "&" : "",
		         limits[i % 4], stopping ? 0 : 2);
		struct call x;
		feed(&x, base, r->b, q, 30000);
		if (x.status == 0 || x.status == 503) {
			call_free(&x); /* restarting */
			usleep(20 * 1000);
			continue;
		}
		json_t *items = page(&x);
		r->pages++;
		for (size_t k = 0; k < json_array_size(items); k++) {
			if (r->nids == r->cap) {
				r->cap = r->cap ? 2 * r->cap : 4096;
				r->ids = realloc(r->ids, r->cap * sizeof *r->ids);
			}
			r->ids[r->nids++] = strdup(item_id(items, k));
		}
		snprintf(cur, sizeof cur, "%s", cursor_of(&x));
		int done = stopping && !more_of(&x) && json_array_size(items) == 0;
		call_free(&x);
		if (done)
			break;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void acceptance(long run_ms, int restart)
{
	struct it_stack s;
	struct bulk b;
	struct it_proc dp2;
	struct run r = { 0 };
	struct writer w[WRITERS];
	pthread_t follower;
	it_stack_start(&s, "us", NULL, (const char *const[]){ "DP_INGEST_WRITERS=4", NULL });
	bulk_tenant(&s, &b, restart ? "feed-run-restart" : "feed-run", "[\"events:write\",\"events:read\"]");
	r.s = &s;
	r.b = &b;
	pthread_mutex_init(&r.lock, NULL);
	snprintf(r.url1, sizeof r.url1, "%s", s.dp_url);
	second_dp(&s, &dp2, r.url2, sizeof r.url2, "DP_INGEST_WRITERS=4");

	ck_assert_int_eq(pthread_create(&follower, NULL, follower_main, &r), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i].r = &r;
		w[i].n = i;
		ck_assert_int_eq(pthread_create(&w[i].th, NULL, writer_main, &w[i]), 0);
	}
	long t0 = it_now_ms();
	if (restart) {
		while (it_now_ms() - t0 < run_ms / 2)
			usleep(50 * 1000);
		/* The follower's instance stops and starts again mid-stream: its
		 * cursor is all the state it keeps. */
		pthread_mutex_lock(&r.lock);
		snprintf(r.url1, sizeof r.url1, "http://127.0.0.1:1");
		pthread_mutex_unlock(&r.lock);
		it_stack_dp_restart(&s, (const char *const[]){ "DP_INGEST_WRITERS=4", NULL });
		pthread_mutex_lock(&r.lock);
		snprintf(r.url1, sizeof r.url1, "%s", s.dp_url);
		pthread_mutex_unlock(&r.lock);
	}
	while (it_now_ms() - t0 < run_ms)
		usleep(50 * 1000);
	atomic_store(&r.stop_writers, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i].th, NULL);
	atomic_store(&r.stop_follower, 1);
	pthread_join(follower, NULL);

	/* The follower's set is the stored set: sorted, no repeat, equal. */
	qsort(r.ids, r.nids, sizeof *r.ids, cmp_str);
	for (size_t i = 1; i < r.nids; i++)
		ck_assert_msg(strcmp(r.ids[i - 1], r.ids[i]) != 0, "handed out twice: %s", r.ids[i]);
	char *stored = stored_ids(&s, &b);
	size_t nstored = 0, i = 0;
	for (char *p = stored, *e; *p; p = *e ? e + 1 : e, i++) {
		e = p + strcspn(p, ",");
		ck_assert_msg(i < r.nids, "stored but never handed out: %.*s (and more)", (int)(e - p), p);
		ck_assert_msg((size_t)(e - p) == strlen(r.ids[i]) && !strncmp(p, r.ids[i], (size_t)(e - p)),
		              "stored %.*s, follower has %s", (int)(e - p), p, r.ids[i]);
		nstored++;
	}
	ck_assert_msg(nstored == r.nids, "the follower has %zu events, %zu are stored", r.nids, nstored);
	ck_assert_msg(nstored >= (size_t)atomic_load(&r.posted), "fewer stored than acknowledged");
	ck_assert_msg(nstored > 1000, "only %zu events in %ld ms", nstored, run_ms);
	fprintf(stderr, "feed run%s: %zu events by %d writers in %ld s, %ld follower pages\n",
	        restart ? " with a restart" : "", nstored, WRITERS, run_ms / 1000, r.pages);
	free(stored);
	for (size_t k = 0; k < r.nids; k++)
		free(r.ids[k]);
	free(r.ids);
	pthread_mutex_destroy(&r.lock);
	ck_assert_int_eq(it_stop(&dp2), 0);
	it_stack_stop(&s);
}

/* 8 writers for 30 s through two instances, a follower reading all the
 * time: it sees every stored event exactly once. The sanitizer build runs
 * it for 10 s: it checks memory there, and the 30 s of the release run
 * are the acceptance. */
START_TEST(writers_and_follower)
{
	const char *label = getenv("IT_LABEL");
	acceptance(label && !strcmp(label, "asan") ? 10000 : 30000, 0);
}
END_TEST

/* The same with the follower's instance restarted mid-stream. */
START_TEST(writers_and_follower_across_restart)
{
	acceptance(8000, 1);
}
END_TEST

Suite *feed_suite(void)
{
	Suite *s = suite_create("feed");
	const TTest *const tests[] = {
		pages_limit_and_wait_ends,
		cursor_and_gate,
		out_of_order_commit_not_skipped,
		held_back_by_other_transaction,
		long_poll_wakes,
		waiters_bound_and_drain,
		writers_and_follower,
		writers_and_follower_across_restart,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
