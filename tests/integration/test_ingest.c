/* POST /v1/events under its limits: group sizes against batch sizes, the
 * queue's byte bound, the database's statement timeout, and shutdown with
 * the regional database stalled. Each test runs a control plane and one
 * data plane of region "us" (it_stack_start). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"

/* A tenant on a plan with no practical rate or quota, and a key of it. */
struct bulk {
	char tenant[40];
	char key[200];
};

static void json_str(const char *text, const char *member, char *out, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %.300s", text);
	snprintf(out, len, "%s", it_js(j, member));
	json_decref(j);
}

static void bulk_tenant(struct it_stack *s, struct bulk *b, const char *slug)
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/plans",
	               it_fmt("{\"id\":\"bulk-%s\",\"name\":\"Bulk %s\",\"currency\":\"USD\",\"base_price\":0,"
	                      "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	                      "\"monthly_event_quota\":1000000000,\"retention_days\":30}",
	                      slug, slug));
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"bulk-%s\"}", slug, slug,
	                      s->region, slug));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_str(r.body, "id", b->tenant, sizeof b->tenant);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", b->tenant),
	               "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}");
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	json_str(r.body, "secret", b->key, sizeof b->key);
	it_resp_free(&r);
	it_stack_sync(s);
}

/* ---- one POST on its own thread ---- */

struct shot {
	char url[128];
	char auth[300];
	const char *body;
	size_t len;
	long timeout_ms;
	pthread_barrier_t *bar;   /* may be NULL */
	pthread_t th;
	/* results */
	long status;              /* 0: no response */
	CURLcode rc;
	int retry_after;
	char ctype[128];
	char *out;
	size_t out_len;
};

static size_t shot_body(char *p, size_t sz, size_t n, void *u)
{
	struct shot *x = u;
	char *o = realloc(x->out, x->out_len + sz * n + 1);
	if (!o)
		return 0;
	memcpy(o + x->out_len, p, sz * n);
	x->out = o;
	x->out_len += sz * n;
	x->out[x->out_len] = '\0';
	return sz * n;
}

static size_t shot_hdr(char *p, size_t sz, size_t n, void *u)
{
	struct shot *x = u;
	size_t len = sz * n;
	if (len >= 12 && !strncasecmp(p, "Retry-After:", 12))
		x->retry_after = 1;
	if (len >= 13 && !strncasecmp(p, "Content-Type:", 13))
		snprintf(x->ctype, sizeof x->ctype, "%.*s", (int)(len - 13), p + 13);
	return len;
}

static void *shot_main(void *arg)
{
	struct shot *x = arg;
	struct curl_slist *h = curl_slist_append(NULL, x->auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (x->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, shot_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, shot_hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (x->bar)
		pthread_barrier_wait(x->bar);
	x->rc = curl_easy_perform(c);
	if (x->rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return NULL;
}

/* POST `body` (GET when NULL) to `path` of the stack's data plane on a new
 * thread; shot_join() waits for the answer. */
static void shot_start(struct shot *x, const struct it_stack *s, const char *key, const char *path,
                       const char *body, long timeout_ms, pthread_barrier_t *bar)
{
	memset(x, 0, sizeof *x);
	snprintf(x->url, sizeof x->url, "%s%s", s->dp_url, path);
	snprintf(x->auth, sizeof x->auth, "Authorization: Bearer %s", key);
	x->body = body;
	x->len = body ? strlen(body) : 0;
	x->timeout_ms = timeout_ms;
	x->bar = bar;
	ck_assert_int_eq(pthread_create(&x->th, NULL, shot_main, x), 0);
}

static void shot_join(struct shot *x)
{
	pthread_join(x->th, NULL);
}

static void shot_free(struct shot *x)
{
	free(x->out);
	x->out = NULL;
}

/* One POST, answered before this returns. */
static void post_now(struct shot *x, const struct it_stack *s, const char *key, const char *body)
{
	shot_start(x, s, key, "/v1/events", body, 15000, NULL);
	shot_join(x);
}

static const char *problem_code(const struct shot *x)
{
	static char code[64];
	code[0] = '\0';
	if (x->out)
		json_str(x->out, "code", code, sizeof code);
	return code;
}

/* 503 application/problem+json "unavailable" with Retry-After. */
static void expect_503(const struct shot *x, const char *what)
{
	ck_assert_msg(x->status == 503, "%s: %ld (curl %d): %.300s", what, x->status, (int)x->rc,
	              x->out ? x->out : "");
	ck_assert_msg(strstr(x->ctype, "application/problem+json") != NULL, "%s: Content-Type%s", what, x->ctype);
	ck_assert_msg(!strcmp(problem_code(x), "unavailable"), "%s: code %s", what, problem_code(x));
	ck_assert_msg(x->retry_after, "%s: 503 without Retry-After", what);
}

/* A gauge or counter of the data plane's /metrics (-1 when absent). */
static long long metric(const struct it_stack *s, const char *name)
{
	struct it_resp r;
	long long v = -1;
	it_http(&r, "GET", it_fmt("%s/metrics", s->dp_url), NULL, NULL, 0);
	ck_assert_msg(r.status == 200, "GET /metrics: %ld", r.status);
	size_t n = strlen(name);
	for (const char *p = r.body; p && *p;) {
		if (!strncmp(p, name, n) && p[n] == ' ') {
			v = atoll(p + n + 1);
			break;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	it_resp_free(&r);
	return v;
}

static void wait_metric(const struct it_stack *s, const char *name, long long want, int timeout_ms)
{
	long t0 = it_now_ms();
	long long v;
	while ((v = metric(s, name)) != want && it_now_ms() - t0 < timeout_ms)
		usleep(20000);
	ck_assert_msg(v == want, "%s is %lld after %d ms, not %lld", name, v, timeout_ms, want);
}

/* ---- a session of the test's own holding a lock ---- */

static PGconn *lock_events(const char *url, const char *mode)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	PGresult *r = PQexec(c, "BEGIN");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQexec(c, it_fmt("LOCK TABLE events IN %s MODE", mode));
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "lock: %s", PQerrorMessage(c));
	PQclear(r);
	return c;
}

static void unlock_events(PGconn *c)
{
	PGresult *r = PQexec(c, "COMMIT");
	PQclear(r);
	PQfinish(c);
}

/* ------------------------------------------------------------------ */
/* Group sizes against batch sizes                                      */

/* The body of request `r` of a volley: B events; with ids, requests 0
 * and 1 are the same events (P), 2 has fresh ids (Q), 3 reuses P's first
 * id with other content and fresh ids (R) for the rest. */
static char *volley_body(int G, int B, int ids, int r)
{
	size_t cap = (size_t)B * 160 + 64, len = 0;
	char *b = malloc(cap);
	ck_assert_ptr_nonnull(b);
	if (B == 1 && r % 2 == 0)
		b[0] = '\0'; /* a single event, not a batch, every other time */
	else
		len = (size_t)snprintf(b, cap, "{\"events\":[");
	for (int i = 0; i < B; i++) {
		char id[64] = "";
		const char *action = ids ? (r <= 1 ? "x.a" : r == 2 ? "x.b" : "x.c") : "n";
		if (ids)
			snprintf(id, sizeof id, "\"id\":\"g%d-b%d-%c%d\",", G, B, r <= 1 || (r == 3 && i == 0) ? 'p' : r == 2 ? 'q' : 'r',
			         i);
		len += (size_t)snprintf(b + len, cap - len,
		                        "%s{%s\"action\":\"%s\",\"actor\":{\"id\":\"g%d-b%d-i%d\",\"type\":\"t\"}}",
		                        i ? "," : "", id, action, G, B, ids);
	}
	if (!(B == 1 && r % 2 == 0))
		snprintf(b + len, cap - len, "]}");
	return b;
}

/* Four requests of B events at once; with ids, one of two contents of the
 * shared id wins and each request is answered as the model says; every
 * acknowledged event is stored once, nothing else. */
static void volley(const struct it_stack *s, const struct bulk *t, int G, int B, int ids)
{
	enum { N = 4 };
	struct shot x[N];
	char *bodies[N];
	pthread_barrier_t bar;
	const char *what = it_fmt("group %d, batch %d, %s ids", G, B, ids ? "with" : "without");
	pthread_barrier_init(&bar, NULL, N);
	for (int r = 0; r < N; r++) {
		bodies[r] = volley_body(G, B, ids, r);
		shot_start(&x[r], s, t->key, "/v1/events", bodies[r], 30000, &bar);
	}
	for (int r = 0; r < N; r++)
		shot_join(&x[r]);
	pthread_barrier_destroy(&bar);
	for (int r = 0; r < N; r++)
		ck_assert_msg(x[r].status == 201 || x[r].status == 200 || x[r].status == 409,
		              "%s: request %d answered %ld (curl %d): %.300s", what, r, x[r].status, (int)x[r].rc,
		              x[r].out ? x[r].out : "");
	const char *like = it_fmt("tenant_id = '%s' AND actor_id = 'g%d-b%d-i%d'", t->tenant, G, B, ids);
	if (!ids) {
		for (int r = 0; r < N; r++)
			ck_assert_msg(x[r].status == 201, "%s: request %d answered %ld", what, r, x[r].status);
		ck_assert_int_eq(sqll(s->dp_db, it_fmt("SELECT count(*) FROM events WHERE %s", like)), N * B);
	} else {
		int p_won = x[3].status == 409;
		if (p_won)
			ck_assert_msg((x[0].status == 201 && x[1].status == 200) || (x[0].status == 200 && x[1].status == 201),
			              "%s: the same request twice answered %ld and %ld", what, x[0].status, x[1].status);
		else
			ck_assert_msg(x[3].status == 201 && x[0].status == 409 && x[1].status == 409,
			              "%s: answers %ld %ld %ld", what, x[0].status, x[1].status, x[3].status);
		ck_assert_msg(x[2].status == 201, "%s: fresh ids answered %ld", what, x[2].status);
		ck_assert_int_eq(sqll(s->dp_db, it_fmt("SELECT count(*) FROM events WHERE %s", like)), 2 * B);
		ck_assert_int_eq(sqll(s->dp_db, it_fmt("SELECT count(*) FROM events WHERE %s AND action = 'x.b'", like)), B);
		ck_assert_int_eq(sqll(s->dp_db, it_fmt("SELECT count(*) FROM events WHERE %s AND action = '%s'", like,
		                                       p_won ? "x.a" : "x.c")),
		                 B);
	}
	for (int r = 0; r < N; r++) {
		shot_free(&x[r]);
		free(bodies[r]);
	}
}

/* Every group size (the smallest, some between, the largest) with batches
 * just under, at and over it, and of 1,000 events (the largest), with and
 * without ids, concurrently: each request is answered, and stored once. */
START_TEST(group_sizes_and_batches)
{
	static const int groups[] = { 1, 7, 256, 1000, 100000 };
	struct it_stack s;
	struct bulk t;
	const char *env[] = { "DP_INGEST_WRITERS=1", NULL, NULL };
	for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
		int G = groups[gi];
		char e[64];
		snprintf(e, sizeof e, "DP_INGEST_GROUP_MAX=%d", G);
		env[1] = e;
		if (gi == 0) {
			it_stack_start(&s, "us", NULL, env);
			bulk_tenant(&s, &t, "groups");
		} else {
			it_stack_dp_restart(&s, env);
		}
		int batches[] = { 1, G - 1, G, G + 1, 1000 };
		for (int bi = 0; bi < 5; bi++) {
			int B = batches[bi], dup = 0;
			for (int k = 0; k < bi; k++)
				dup |= batches[k] == B;
			if (B < 1 || B > 1000 || dup)
				continue;
			volley(&s, &t, G, B, 0);
			volley(&s, &t, G, B, 1);
		}
		/* The writers hold no lock for long: /metrics answers. */
		ck_assert_int_eq(metric(&s, "dp_ingest_queue_requests"), 0);
	}
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", t.tenant)),
	                 sqll(s.dp_db, it_fmt("SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '%s'",
	                                      t.tenant)));
	it_stack_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The queue's byte bound                                               */

/* A batch of one event without id, padded with blanks to exactly `size`
 * bytes. */
static char *sized_body(size_t size, const char *action)
{
	char *b = malloc(size + 1);
	ck_assert_ptr_nonnull(b);
	int n = snprintf(b, size + 1, "{\"events\":[{\"action\":\"%s\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}]", action);
	ck_assert_int_lt(n, (int)size);
	memset(b + n, ' ', size - 1 - (size_t)n);
	b[size - 1] = '}';
	b[size] = '\0';
	return b;
}

/* DP_INGEST_QUEUE_BYTES at both ends: while one request is held by a
 * stalled writer, a request that fills the bound exactly is queued, one
 * byte more is refused (503, Retry-After), and once the queue drained the
 * refused one is accepted; what was acknowledged is stored. */
START_TEST(queue_bytes_both_ends)
{
	enum { Q = 1048576, A = 300 };
	struct it_stack s;
	struct bulk t;
	struct shot a, fits, over, small, again;
	const char *env[] = { "DP_INGEST_WRITERS=1", "DP_INGEST_QUEUE_BYTES=1048576", "DP_DB_STATEMENT_TIMEOUT=60s", NULL };
	it_stack_start(&s, "us", NULL, env);
	bulk_tenant(&s, &t, "qbytes");
	char *ba = sized_body(A, "q.a"), *bfits = sized_body(Q - A, "q.fits"), *bover = sized_body(Q - A + 1, "q.over"),
	     *bsmall = sized_body(200, "q.small");

	PGconn *lock = lock_events(s.dp_db, "SHARE");
	shot_start(&a, &s, t.key, "/v1/events", ba, 30000, NULL);
	wait_metric(&s, "dp_ingest_queue_bytes", A, 10000);
	wait_metric(&s, "dp_ingest_queue_requests", 0, 10000); /* taken by the writer */

	post_now(&over, &s, t.key, bover);
	expect_503(&over, "one byte over the bound");
	shot_start(&fits, &s, t.key, "/v1/events", bfits, 30000, NULL);
	wait_metric(&s, "dp_ingest_queue_bytes", Q, 10000);
	post_now(&small, &s, t.key, bsmall);
	expect_503(&small, "a small request while the queue is full");
	ck_assert_msg(a.status == 0 && fits.status == 0, "answered while the writer is stalled: %ld %ld", a.status,
	              fits.status);

	unlock_events(lock);
	shot_join(&a);
	shot_join(&fits);
	ck_assert_msg(a.status == 201, "held request: %ld %.200s", a.status, a.out ? a.out : "");
	ck_assert_msg(fits.status == 201, "request filling the bound: %ld %.200s", fits.status, fits.out ? fits.out : "");
	wait_metric(&s, "dp_ingest_queue_bytes", 0, 10000);
	post_now(&again, &s, t.key, bover);
	ck_assert_msg(again.status == 201, "refused request once the queue drained: %ld %.200s", again.status,
	              again.out ? again.out : "");

	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", t.tenant)), 3);
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND action IN "
	                                      "('q.a', 'q.fits', 'q.over')", t.tenant)),
	                 3);
	shot_free(&a);
	shot_free(&fits);
	shot_free(&over);
	shot_free(&small);
	shot_free(&again);
	free(ba);
	free(bfits);
	free(bover);
	free(bsmall);
	it_stack_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The statement timeout                                                */

/* A statement the database does not finish within DP_DB_STATEMENT_TIMEOUT
 * is a 503 with Retry-After (not a 500, not a hang), for writes and reads;
 * afterwards the same requests succeed. */
START_TEST(statement_timeout_is_503)
{
	struct it_stack s;
	struct bulk t;
	struct shot w, r, ok;
	const char *env[] = { "DP_DB_STATEMENT_TIMEOUT=300ms", NULL };
	it_stack_start(&s, "us", NULL, env);
	bulk_tenant(&s, &t, "stmt");
	const char *body = "{\"id\":\"slow-1\",\"action\":\"s\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}";

	PGconn *lock = lock_events(s.dp_db, "ACCESS EXCLUSIVE");
	shot_start(&w, &s, t.key, "/v1/events", body, 8000, NULL);
	shot_start(&r, &s, t.key, "/v1/events?limit=5", NULL, 8000, NULL);
	shot_join(&w);
	shot_join(&r);
	unlock_events(lock);
	expect_503(&w, "POST with the table locked");
	expect_503(&r, "GET with the table locked");
	ck_assert_int_eq(sqll(s.dp_db, "SELECT count(*) FROM events WHERE id = 'slow-1'"), 0);

	post_now(&ok, &s, t.key, body);
	ck_assert_msg(ok.status == 201, "after the lock: %ld %.200s", ok.status, ok.out ? ok.out : "");
	shot_free(&w);
	shot_free(&r);
	shot_free(&ok);
	it_stack_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Shutdown with the database stalled                                   */

/* A TCP proxy to the test cluster that stops forwarding on demand (the
 * database seen from the data plane stops answering, the shared cluster is
 * left alone). */
#define PROXY_MAX 64
struct proxy {
	int lfd, port, target;
	atomic_int frozen, stop;
	pthread_t acceptor;
	pthread_mutex_t mu;
	int n;
	struct pair {
		struct proxy *p;
		int a, b;
		pthread_t th;
	} pairs[PROXY_MAX];
};

static int relay(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof buf);
	if (n <= 0)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static void *pair_main(void *arg)
{
	struct pair *q = arg;
	while (!atomic_load(&q->p->stop)) {
		if (atomic_load(&q->p->frozen)) {
			usleep(20000);
			continue;
		}
		struct pollfd f[2] = { { q->a, POLLIN, 0 }, { q->b, POLLIN, 0 } };
		if (poll(f, 2, 50) <= 0 || atomic_load(&q->p->frozen))
			continue;
		if ((f[0].revents && relay(q->a, q->b)) || (f[1].revents && relay(q->b, q->a)))
			break;
	}
	shutdown(q->a, SHUT_RDWR);
	shutdown(q->b, SHUT_RDWR);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct proxy *p = arg;
	while (!atomic_load(&p->stop)) {
		struct pollfd f = { p->lfd, POLLIN, 0 };
		if (poll(&f, 1, 50) <= 0)
			continue;
		int a = accept(p->lfd, NULL, NULL);
		if (a < 0)
			continue;
		int b = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->target) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		pthread_mutex_lock(&p->mu);
		if (b < 0 || p->n == PROXY_MAX || connect(b, (struct sockaddr *)&sa, sizeof sa) != 0) {
			pthread_mutex_unlock(&p->mu);
			close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		struct pair *q = &p->pairs[p->n];
		q->p = p;
		q->a = a;
		q->b = b;
		if (pthread_create(&q->th, NULL, pair_main, q) == 0)
			p->n++;
		else {
			close(a);
			close(b);
		}
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

static void proxy_start(struct proxy *p, int target)
{
	memset(p, 0, sizeof *p);
	p->target = target;
	pthread_mutex_init(&p->mu, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(p->lfd, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(p->lfd, 64), 0);
	ck_assert_int_eq(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), 0);
	p->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&p->acceptor, NULL, acceptor_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
	atomic_store(&p->stop, 1);
	pthread_join(p->acceptor, NULL);
	for (int i = 0; i < p->n; i++) {
		pthread_join(p->pairs[i].th, NULL);
		close(p->pairs[i].a);
		close(p->pairs[i].b);
	}
	close(p->lfd);
	pthread_mutex_destroy(&p->mu);
}

/* `url` with its port replaced by `port`. */
static const char *with_port(const char *url, int port)
{
	const char *at = strrchr(url, '@');
	ck_assert_ptr_nonnull(at);
	const char *colon = strchr(at, ':'), *slash = strchr(at, '/');
	ck_assert_msg(colon && slash && colon < slash, "no port in the database URL");
	return it_fmt("%.*s:%d%s", (int)(colon - url), url, port, slash);
}

/* SIGTERM while the regional database has stopped answering, with ingest
 * requests queued and committing and a read waiting on it: the data plane
 * exits 0 within the drain timeout and a small margin, and every client is
 * answered 503 (problem+json, Retry-After) or has its connection closed;
 * a request told "nothing was stored" has nothing stored. */
START_TEST(shutdown_with_database_stalled)
{
	enum { N = 6, DRAIN_MS = 2000 };
	struct it_stack s;
	struct bulk t;
	struct proxy px;
	struct shot x[N + 1];
	char *bodies[N];
	it_stack_start(&s, "us", NULL, NULL);
	bulk_tenant(&s, &t, "stall");
	proxy_start(&px, atoi(it_env("IT_PG_PORT")));
	char e_db[700];
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", with_port(s.dp_db, px.port));
	const char *env[] = { e_db, "DP_DRAIN_TIMEOUT=2s", "DP_INGEST_WRITERS=2", "DP_DB_STATEMENT_TIMEOUT=60s", NULL };
	it_stack_dp_restart(&s, env);

	struct shot first;
	post_now(&first, &s, t.key, "{\"id\":\"before\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}");
	ck_assert_msg(first.status == 201, "through the proxy: %ld %.200s", first.status, first.out ? first.out : "");
	shot_free(&first);

	atomic_store(&px.frozen, 1);
	long long bytes = 0;
	for (int i = 0; i < N; i++) {
		if (i % 2)
			bodies[i] = strdup(it_fmt("{\"id\":\"stalled-%d\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", i));
		else
			bodies[i] = strdup(it_fmt("{\"events\":[{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}]}"));
		bytes += (long long)strlen(bodies[i]);
		shot_start(&x[i], &s, t.key, "/v1/events", bodies[i], 60000, NULL);
	}
	wait_metric(&s, "dp_ingest_queue_bytes", bytes, 15000);
	/* Last: a read blocks its HTTP thread, and the requests on it, while it
	 * waits on the database. Whether it got there by the SIGTERM or not, it
	 * must be answered or closed. */
	shot_start(&x[N], &s, t.key, "/v1/events?limit=5", NULL, 60000, NULL);
	usleep(300000);

	long t0 = it_now_ms();
	ck_assert_int_eq(kill(s.dp.pid, SIGTERM), 0);
	int st = it_wait(&s.dp, DRAIN_MS + 20000);
	long took = it_now_ms() - t0;
	atomic_store(&px.frozen, 0);
	for (int i = 0; i <= N; i++)
		shot_join(&x[i]);
	proxy_stop(&px);
	fprintf(stderr, "  stalled database: the data plane exited with %d after %ld ms\n", st, took);
	ck_assert_msg(st == 0, "the data plane exited with %d (log %s)", st, s.dp.log);
	ck_assert_msg(took < DRAIN_MS + 8000, "the data plane took %ld ms to stop with a drain timeout of %d ms", took,
	              DRAIN_MS);
	for (int i = 0; i <= N; i++) {
		ck_assert_msg(x[i].rc != CURLE_OPERATION_TIMEDOUT, "request %d was never answered nor closed", i);
		if (x[i].status == 0)
			continue; /* closed */
		expect_503(&x[i], it_fmt("request %d", i));
		if (i < N && i % 2 && strstr(x[i].out, "nothing was stored"))
			ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id = "
			                                      "'stalled-%d'", t.tenant, i)),
			                 0);
	}
	for (int i = 0; i < N; i++) {
		shot_free(&x[i]);
		free(bodies[i]);
	}
	shot_free(&x[N]);
	it_stack_stop(&s);
}
END_TEST

Suite *ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	const TTest *const tests[] = {
		group_sizes_and_batches,
		queue_bytes_both_ends,
		statement_timeout_is_503,
		shutdown_with_database_stalled,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
