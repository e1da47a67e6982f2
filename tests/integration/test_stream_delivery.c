/* Log streams' delivery (data-plane/stream.c), from outside: every stored
 * event reaches a webhook receiver once, in order, in batches within the
 * configured bounds; a failed batch is re-sent unchanged (same id, same
 * body), also by the next process after a SIGKILL; the owner's pause,
 * resume and replay and the failure budget apply; a destination outside
 * the residency rule, a secret sealed for another stream or a data plane
 * without stream keys is "refused" with nothing sent; two instances on one
 * database never send one batch at once; the state reaches the control
 * plane.
 *
 * The control plane is played by a fake server serving documents signed
 * here (as test_dp_config.c does), the receiver by a small HTTP server of
 * this process on 127.0.0.1, allowed by the documents' stream_rules. */
#include <arpa/inet.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "fixtures.h"
#include "it.h"
#include "jwk.h"
#include "keyring.h"
#include "seal.h"
#include "secret.h"

#define REGION_TOKEN "it-region-token-us-streams-0123456789"
#define KEY_ID "b00000000000000000000001"
#define KEY_SEC "3333333333333333333333333333333333333333333333333333333333333333"
#define TENANT "20000000-0000-4000-8000-000000000001"
#define STREAM "30000000-0000-4000-8000-000000000001"
#define STREAM_B "30000000-0000-4000-8000-000000000002"
#define STREAM_C "30000000-0000-4000-8000-000000000003"
#define WH_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define DEADLINE_MS 60000

/* ---- the webhook receiver ---- */

struct got {
	char batch_id[64];
	char *body;
	long status;              /* what it was answered */
	long at_ms;               /* when it arrived (it_now_ms) */
};

struct receiver {
	int lfd, port;
	atomic_int stop, active, max_active;
	pthread_t th;
	pthread_mutex_t mu;
	struct got *got;
	size_t n, cap;
	int fail_next;            /* answer the next ones 503 */
	int fail_all;
	int hold_ms;              /* hold each request this long before answering */
	int hold_forever;         /* never answer (until stopped) */
	int retry_after;          /* with a 503: Retry-After of this many seconds */
	atomic_int threads;
	char url[64], other_url[64];
};

struct rconn {
	struct receiver *r;
	int fd;
};

static void *rconn_main(void *arg)
{
	struct rconn *a = arg;
	struct receiver *r = a->r;
	int fd = a->fd;
	free(a);
	struct buf in = { 0 };
	char head_id[64] = "", cl[32] = "";
	size_t need = 0, hlen = 0;
	char chunk[65536];
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (atomic_load(&r->stop))
			goto out;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t k = recv(fd, chunk, sizeof chunk, 0);
		if (k <= 0)
			goto out;
		buf_append(&in, chunk, (size_t)k);
		buf_append(&in, "", 1);
		in.len--;
		if (!hlen) {
			char *end = strstr(in.p, "\r\n\r\n");
			if (!end)
				continue;
			hlen = (size_t)(end + 4 - in.p);
			fake_header(in.p, "Content-Length", cl, sizeof cl);
			fake_header(in.p, "webhook-id", head_id, sizeof head_id);
			need = hlen + (size_t)atol(cl);
		}
		if (in.len >= need)
			break;
	}
	int now = atomic_fetch_add(&r->active, 1) + 1;
	int m = atomic_load(&r->max_active);
	while (now > m && !atomic_compare_exchange_weak(&r->max_active, &m, now))
		;
	pthread_mutex_lock(&r->mu);
	int hold = r->hold_ms, forever = r->hold_forever;
	long status = 200;
	if (r->fail_all || r->fail_next > 0) {
		status = 503;
		if (r->fail_next > 0)
			r->fail_next--;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 256;
		r->got = realloc(r->got, r->cap * sizeof *r->got);
	}
	struct got *g = &r->got[r->n++];
	snprintf(g->batch_id, sizeof g->batch_id, "%s", head_id);
	g->body = strndup(in.p + hlen, need - hlen);
	g->status = forever ? 0 : status;
	g->at_ms = it_now_ms();
	int retry_after = status == 503 ? r->retry_after : 0;
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; (forever || i < hold / 10) && !atomic_load(&r->stop); i++)
		usleep(10000);
	atomic_fetch_sub(&r->active, 1);
	if (retry_after) {
		char resp[200];
		snprintf(resp, sizeof resp,
		         "HTTP/1.1 503 X\r\nRetry-After: %d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		         retry_after);
		it_raw_send(fd, resp, strlen(resp));
	} else if (!forever) {
		fake_respond(fd, (int)status, "application/json", "{}");
	}
out:
	buf_free(&in);
	close(fd);
	atomic_fetch_sub(&r->threads, 1);
	return NULL;
}

static void *raccept_main(void *arg)
{
	struct receiver *r = arg;
	while (!atomic_load(&r->stop)) {
		struct pollfd pfd = { r->lfd, POLLIN, 0 };
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		int fd = accept(r->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct rconn *a = malloc(sizeof *a);
		a->r = r;
		a->fd = fd;
		pthread_t th;
		atomic_fetch_add(&r->threads, 1);
		if (pthread_create(&th, NULL, rconn_main, a) != 0) {
			atomic_fetch_sub(&r->threads, 1);
			close(fd);
			free(a);
		} else {
			pthread_detach(th);
		}
	}
	return NULL;
}

static void receiver_start(struct receiver *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	r->lfd = listen_loopback(&r->port);
	ck_assert_int_eq(pthread_create(&r->th, NULL, raccept_main, r), 0);
}

static void receiver_stop(struct receiver *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->th, NULL);
	while (atomic_load(&r->threads) > 0)
		usleep(10000);
	close(r->lfd);
	for (size_t i = 0; i < r->n; i++)
		free(r->got[i].body);
	free(r->got);
	pthread_mutex_destroy(&r->mu);
}

/* The receiver's URL (in a buffer of the receiver: the documents are
 * signed again from it later). */
static const char *receiver_url(struct receiver *r)
{
	snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/hook", r->port);
	return r->url;
}

/* The events of the batches answered 2xx, in the order received, each
 * checked against its batch: the ids into `ids` (caller frees each),
 * how many in *n; the largest batch in *max_events, *max_bytes. */
struct seen {
	char **ids;
	size_t n;
	size_t max_events, max_bytes, batches;
};

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ids[i]);
	free(s->ids);
	memset(s, 0, sizeof *s);
}

static void delivered(struct receiver *r, struct seen *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		if (r->got[i].status < 200 || r->got[i].status > 299)
			continue;
		json_t *b = json_loads(r->got[i].body, 0, NULL);
		ck_assert_msg(b, "a batch body is not JSON");
		json_t *d = json_object_get(b, "data"), *ev = json_object_get(d, "events");
		ck_assert_str_eq(it_js(b, "type"), "audit_events.batch");
		ck_assert_str_eq(it_js(d, "batch_id"), r->got[i].batch_id);
		ck_assert_str_eq(it_js(d, "stream_id"), STREAM);
		ck_assert_str_eq(it_js(d, "tenant_id"), TENANT);
		s->batches++;
		if (json_array_size(ev) > s->max_events)
			s->max_events = json_array_size(ev);
		if (strlen(r->got[i].body) > s->max_bytes)
			s->max_bytes = strlen(r->got[i].body);
		s->ids = realloc(s->ids, (s->n + json_array_size(ev) + 1) * sizeof *s->ids);
		size_t k;
		json_t *e;
		json_array_foreach(ev, k, e)
			s->ids[s->n++] = strdup(it_js(e, "id"));
		json_decref(b);
	}
	pthread_mutex_unlock(&r->mu);
}

/* Waits until the receiver acknowledged `want` events; fails after the deadline. */
static void wait_delivered(struct receiver *r, size_t want, struct seen *s)
{
	long deadline = it_now_ms() + DEADLINE_MS;
	for (;;) {
		delivered(r, s);
		if (s->n >= want)
			return;
		ck_assert_msg(it_now_ms() < deadline, "%zu of %zu events delivered", s->n, want);
		seen_free(s);
		usleep(50000);
	}
}

static char db_url[512];

/* The tenant's events in feed order (the order the cell committed them:
 * within one request it need not be the request's), ids joined by ','. */
static char *feed_order(void)
{
	char *v = it_sql(db_url, "SELECT string_agg(id, ',' ORDER BY tx_id, seq) FROM events WHERE tenant_id = '" TENANT "'");
	ck_assert_ptr_nonnull(v);
	return v;
}

/* Delivered events [at, at + n) are feed events [from, from + n): each
 * once, in feed order. */
static void check_feed_slice(const struct seen *s, size_t at, size_t from, size_t n)
{
	char *feed = feed_order(), *save = NULL;
	size_t i = 0;
	ck_assert_msg(s->n >= at + n, "%zu events delivered, want at least %zu", s->n, at + n);
	for (char *t = strtok_r(feed, ",", &save); t && i < from + n; t = strtok_r(NULL, ",", &save), i++)
		if (i >= from)
			ck_assert_msg(!strcmp(s->ids[at + i - from], t), "delivered event %zu is %s, the feed's %s",
			              at + i - from, s->ids[at + i - from], t);
	ck_assert_msg(i == from + n, "the feed has %zu events, want %zu", i, from + n);
	free(feed);
}

/* Every event stored, exactly once, in feed order, and nothing else. */
static void check_once_in_order(const struct seen *s, int n)
{
	ck_assert_msg(s->n == (size_t)n, "%zu events delivered, want %d", s->n, n);
	check_feed_slice(s, 0, 0, (size_t)n);
}

/* ---- documents ---- */

static struct jwk signer, other_key;
static char dir[512], trust_path[600], cache_dir[600], keys_dir[600];
static struct keyring *ring;

struct sdef {
	const char *id;
	const char *url;
	int paused;
	int64_t since, resume, replay, replay_since;
	const char *seal_for;     /* the stream id the secret is sealed for (NULL: id) */
	int no_secret;
};

static json_t *stream_json(const struct sdef *d)
{
	struct jwk k = { 0 };
	ck_assert_int_eq(keyring_current(ring, &k), 0);
	json_t *o = json_pack("{ss ss ss sI sb sI sI sI sI ss}", "id", d->id, "tenant", TENANT, "kind", "webhook",
	                      "revision", (json_int_t)1, "paused", d->paused, "since", (json_int_t)d->since, "resume",
	                      (json_int_t)d->resume, "replay", (json_int_t)d->replay, "replay_since",
	                      (json_int_t)d->replay_since, "url", d->url);
	if (!d->no_secret) {
		char *sealed = seal_secret(&k, d->seal_for ? d->seal_for : d->id, WH_SECRET, strlen(WH_SECRET));
		ck_assert_ptr_nonnull(sealed);
		json_object_set_new(o, "secret", json_string(sealed));
		free(sealed);
	}
	jwk_clear(&k);
	return o;
}

/* A document of region us, version `ver`, with the streams `defs`. */
static char *doc(int64_t ver, const struct sdef *defs, int n)
{
	int64_t now = (int64_t)time(NULL);
	struct buf b = { 0 };
	unsigned char h[32];
	ck_assert_int_eq(cfgdoc_add_tenant(&b, TENANT, "streamer", "active", "pro"), 0);
	secret_sha256(KEY_SEC, strlen(KEY_SEC), h);
	ck_assert_int_eq(cfgdoc_add_key(&b, KEY_ID, h, 1, 1, 0), 0);
	char *tenants = buf_take(&b);
	json_t *streams = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(streams, stream_json(&defs[i]));
	json_t *c = json_pack("{ss ss sI sI sI ss sI si ss"
	                      " s{ss ss ss ss si}"
	                      " s[[sss]]"
	                      " s{s[iiii]}"
	                      " s{s[s] s[]} so}",
	                      "iss", "celltrail-control-plane", "aud", "us", "iat", (json_int_t)now, "nbf",
	                      (json_int_t)now - 60, "exp", (json_int_t)now + 3600, "jti", "it", "ver", (json_int_t)ver,
	                      "fmt", 1, "kind", "full", "region", "name", "us", "display_name", "Region",
	                      "endpoint_url", "https://us.example.test", "status", "active", "wave", 1, "directory",
	                      "us", "https://us.example.test", "active", "plans", "pro", 1000000, 1000000,
	                      1000000000, 30, "stream_rules", "hosts", "127.0.0.1", "s3_regions", "streams", streams);
	ck_assert_ptr_nonnull(c);
	char *tok = cfgdoc_sign(&signer, c, tenants);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	free(tenants);
	return tok;
}

/* ---- the fake control plane: config and stream reports ---- */

struct fake_cp {
	struct fake_srv srv;
	pthread_mutex_t mu;
	char *token;
	long ver;
	int reports;
	char *last_report;
};

static void fake_cp_handle(struct fake_srv *s, int fd, const char *req)
{
	struct fake_cp *cp = s->ctx;
	char method[16], path[300], inm[64], auth[300];
	sscanf(req, "%15s %299s", method, path);
	fake_header(req, "If-None-Match", inm, sizeof inm);
	fake_header(req, "Authorization", auth, sizeof auth);
	if (!strcmp(method, "POST") && !strcmp(path, "/v1/regions/us/streams/status")) {
		ck_assert_str_eq(auth, "Bearer " REGION_TOKEN);
		pthread_mutex_lock(&cp->mu);
		cp->reports++;
		free(cp->last_report);
		cp->last_report = strdup(strstr(req, "\r\n\r\n") + 4);
		pthread_mutex_unlock(&cp->mu);
		fake_respond(fd, 204, "application/json", NULL);
		return;
	}
	if (!strcmp(method, "POST")) {
		fake_respond(fd, 200, "application/json", "{}");
		return;
	}
	if (strstr(path, "/v1/regions/us/config") != path) {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
		return;
	}
	pthread_mutex_lock(&cp->mu);
	char etag[40];
	snprintf(etag, sizeof etag, "\"%ld\"", cp->ver);
	int same = !strcmp(inm, etag);
	char *token = cp->token ? strdup(cp->token) : NULL;
	pthread_mutex_unlock(&cp->mu);
	if (same || !token)
		fake_nothing_newer(&cp->srv, fd, token != NULL);
	else
		fake_respond(fd, 200, "application/jwt", token);
	free(token);
}

static struct fake_cp cp;

static void serve(long ver, const struct sdef *defs, int n)
{
	char *tok = doc(ver, defs, n);
	pthread_mutex_lock(&cp.mu);
	free(cp.token);
	cp.token = tok;
	cp.ver = ver;
	pthread_mutex_unlock(&cp.mu);
}

/* ---- data planes ---- */

struct dp {
	struct it_proc p;
	int port;
};

/* Starts a data plane of region us on the test's database; `extra` adds
 * settings (NULL-terminated, may be NULL); `with_keys` 0 leaves
 * DP_STREAM_KEYS_DIR unset. */
static void start_dp(struct dp *d, const char *instance, int with_keys, const char *const extra[])
{
	static char e_db[600], e_cp[300], e_trust[700], e_cache[2][700], e_keys[700], e_inst[2][100];
	static int k;
	const char *env[40];
	int n = 0;
	char bin[1024];
	k = (k + 1) % 2;
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_url);
	snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=http://127.0.0.1:%d", cp.srv.port);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	static int c;
	snprintf(e_cache[k], sizeof e_cache[k], "DP_CACHE_DIR=%s/cache-%s-%d", dir, instance, c++);
	snprintf(e_keys, sizeof e_keys, "DP_STREAM_KEYS_DIR=%s", keys_dir);
	snprintf(e_inst[k], sizeof e_inst[k], "DP_INSTANCE=%s", instance);
	env[n++] = e_db;
	env[n++] = e_cp;
	env[n++] = e_trust;
	env[n++] = e_cache[k];
	env[n++] = e_inst[k];
	if (with_keys)
		env[n++] = e_keys;
	env[n++] = "DP_REGION=us";
	env[n++] = "DP_LISTEN=127.0.0.1:0";
	env[n++] = "DP_REGION_TOKEN=" REGION_TOKEN;
	env[n++] = "DP_ACCESS_LOG=false";
	env[n++] = "DP_LOG=false";
	env[n++] = "DP_PULL_WAIT=1s";
	env[n++] = "DP_STREAM_POLL_INTERVAL=100ms";
	env[n++] = "DP_STREAM_BATCH_WAIT=100ms";
	env[n++] = "DP_STREAM_RETRY_MIN=50ms";
	env[n++] = "DP_STREAM_RETRY_MAX=200ms";
	env[n++] = "DP_STREAM_REPORT_INTERVAL=200ms";
	env[n++] = "DP_STREAM_TIMEOUT=5s";
	for (int i = 0; extra && extra[i]; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, it_fmt("data-plane-%s", instance), argv, env);
	d->port = it_wait_port(&d->p, 30000);
}

/* SIGTERM; the log names no secret. */
static void stop_dp(struct dp *d)
{
	ck_assert_int_eq(it_stop(&d->p), 0);
	char *log = it_slurp(d->p.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(!strstr(log, WH_SECRET) && !strstr(log, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
	              "the destination's secret appears in %s", d->p.log);
	free(log);
}

/* `n` events "<prefix>-<i>" from `from`, in one request, each with a
 * metadata string of `pad` bytes. */
static void post(const struct dp *d, const char *prefix, int from, int n, int pad)
{
	struct buf b = { 0 };
	char *p = malloc((size_t)pad + 1);
	memset(p, 'x', (size_t)pad);
	p[pad] = '\0';
	buf_printf(&b, "{\"events\":[");
	for (int i = 0; i < n; i++)
		buf_printf(&b, "%s{\"id\":\"%s-%d\",\"action\":\"doc.edit\",\"actor\":{\"id\":\"u\",\"type\":\"user\"},"
		               "\"metadata\":{\"p\":\"%s\"}}",
		           i ? "," : "", prefix, from + i, p);
	buf_printf(&b, "]}");
	free(p);
	const char *h[] = { "Authorization: Bearer us_" KEY_ID "_" KEY_SEC, "Content-Type: application/json", NULL };
	struct it_resp r;
	long deadline = it_now_ms() + DEADLINE_MS;
	for (;;) {
		it_http(&r, "POST", it_fmt("http://127.0.0.1:%d/v1/events", d->port), h, b.p, b.len);
		if (r.status == 201 || r.status == 200)
			break;
		/* 401 until the document is there */
		ck_assert_msg(it_now_ms() < deadline, "POST /v1/events: %ld %.300s", r.status, r.body);
		it_resp_free(&r);
		usleep(50000);
	}
	it_resp_free(&r);
	buf_free(&b);
}

static char *cursor_col(const char *stream, const char *col)
{
	return it_sql(db_url, it_fmt("SELECT %s FROM stream_cursors WHERE stream_id = '%s'", col, stream));
}

/* Waits until the stream's cursor row has `status`. */
static void wait_status(const char *stream, const char *status)
{
	long deadline = it_now_ms() + DEADLINE_MS;
	for (;;) {
		char *v = cursor_col(stream, "status");
		int ok = v && !strcmp(v, status);
		ck_assert_msg(ok || it_now_ms() < deadline, "stream status %s, want %s", v ? v : "(none)", status);
		free(v);
		if (ok)
			return;
		usleep(50000);
	}
}

static size_t received(struct receiver *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void setup(void)
{
	static int seq;
	char err[256];
	snprintf(dir, sizeof dir, "%s/streams-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), seq);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(cache_dir, sizeof cache_dir, "%s/cache", dir);
	snprintf(keys_dir, sizeof keys_dir, "%s/stream-keys", dir);
	ck_assert_int_eq(jwk_generate(&signer), 0);
	ck_assert_int_eq(jwk_generate(&other_key), 0);
	snprintf(trust_path, sizeof trust_path, "%s/trust.json", dir);
	write_trust_bundle(&signer, trust_path);
	ring = keyring_open(keys_dir, 0, err, sizeof err);
	ck_assert_msg(ring != NULL, "%s", err);
	dp_region_db(it_fmt("it_streams_%d_%d", (int)getpid(), seq++), db_url, sizeof db_url);
	memset(&cp, 0, sizeof cp);
	pthread_mutex_init(&cp.mu, NULL);
	fake_srv_start(&cp.srv, fake_cp_handle, &cp);
}

static void teardown(void)
{
	fake_srv_stop(&cp.srv);
	free(cp.token);
	free(cp.last_report);
	pthread_mutex_destroy(&cp.mu);
	keyring_free(ring);
	jwk_clear(&signer);
	jwk_clear(&other_key);
}

/* ---- tests ---- */

/* One run: DP_STREAM_BATCH `batch`, DP_STREAM_BATCH_BYTES `bytes`;
 * `requests` requests of `per` events with `pad` bytes of metadata each. */
static void batch_bounds(const char *batch, const char *bytes, int requests, int per, int pad, struct seen *s)
{
	struct receiver r;
	struct dp d;
	static int run;
	/* A database of its own: batches numbered from 1 again. */
	dp_region_db(it_fmt("it_streams_%d_b%d", (int)getpid(), run++), db_url, sizeof db_url);
	receiver_start(&r);
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	const char *extra[] = { it_fmt("DP_STREAM_BATCH=%s", batch), it_fmt("DP_STREAM_BATCH_BYTES=%s", bytes), NULL };
	start_dp(&d, "a", 1, extra);
	for (int i = 0; i < requests; i++)
		post(&d, "e", i * per, per, pad);
	wait_delivered(&r, (size_t)(requests * per), s);
	check_once_in_order(s, requests * per);
	/* Batches are numbered from 1 with no gap, one id each. */
	pthread_mutex_lock(&r.mu);
	for (size_t i = 0; i < r.n; i++)
		ck_assert_str_eq(r.got[i].batch_id, it_fmt("%s-%012zu", STREAM, i + 1));
	pthread_mutex_unlock(&r.mu);
	stop_dp(&d);
	receiver_stop(&r);
}

START_TEST(batches_within_bounds)
{
	struct seen s;
	/* DP_STREAM_BATCH=1: one event a batch. */
	batch_bounds("1", "65536", 2, 10, 10, &s);
	ck_assert_uint_eq(s.max_events, 1);
	ck_assert_uint_eq(s.batches, 20);
	seen_free(&s);
	/* The smallest byte bound with events of ~4 KiB: several a batch,
	 * never a body past 64 KiB. */
	batch_bounds("10000", "65536", 2, 100, 4000, &s);
	ck_assert_msg(s.max_bytes <= 65536, "a body of %zu bytes", s.max_bytes);
	ck_assert_msg(s.max_events > 1 && s.max_events < 20, "%zu events in a batch", s.max_events);
	seen_free(&s);
	/* The largest bounds: one batch takes what the requests stored at
	 * once (more than one request's 1000). */
	batch_bounds("10000", "16777216", 3, 1000, 10, &s);
	ck_assert_msg(s.max_events > 1, "%zu events in the largest batch", s.max_events);
	ck_assert_msg(s.max_bytes <= 16777216, "a body of %zu bytes", s.max_bytes);
	seen_free(&s);
}
END_TEST

START_TEST(failed_batch_resent_unchanged)
{
	/* 503 twice, then 200: the same batch id and the same body bytes
	 * each time, and nothing skipped after. */
	struct receiver r;
	struct dp d;
	struct seen s;
	receiver_start(&r);
	r.fail_next = 2;
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	const char *extra[] = { "DP_STREAM_BATCH=5", NULL };
	start_dp(&d, "a", 1, extra);
	post(&d, "e", 0, 5, 10);
	wait_delivered(&r, 5, &s);
	seen_free(&s);
	post(&d, "e", 5, 7, 10);
	wait_delivered(&r, 12, &s);
	check_once_in_order(&s, 12);
	seen_free(&s);
	pthread_mutex_lock(&r.mu);
	ck_assert_uint_ge(r.n, 4);
	ck_assert_int_eq(r.got[0].status, 503);
	ck_assert_int_eq(r.got[1].status, 503);
	ck_assert_int_eq(r.got[2].status, 200);
	for (int i = 1; i < 3; i++) {
		ck_assert_str_eq(r.got[i].batch_id, r.got[0].batch_id);
		ck_assert_str_eq(r.got[i].body, r.got[0].body);
	}
	ck_assert_str_eq(r.got[3].batch_id, it_fmt("%s-%012d", STREAM, 2));
	pthread_mutex_unlock(&r.mu);
	char *v = cursor_col(STREAM, "delivered_events");
	ck_assert_str_eq(v, "12");
	free(v);
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(sigkill_resends_same_batch)
{
	/* The receiver holds the first batch unanswered; the data plane is
	 * killed; the next process sends the same batch id and body. */
	struct receiver r;
	struct dp d;
	struct seen s;
	receiver_start(&r);
	r.hold_forever = 1;
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	start_dp(&d, "a", 1, NULL);
	post(&d, "e", 0, 8, 10);
	long deadline = it_now_ms() + DEADLINE_MS;
	while (received(&r) < 1) {
		ck_assert_msg(it_now_ms() < deadline, "no batch sent");
		usleep(20000);
	}
	char *in_flight = cursor_col(STREAM, "batch_to_tx IS NOT NULL");
	ck_assert_str_eq(in_flight, "t");
	free(in_flight);
	kill(d.p.pid, SIGKILL);
	ck_assert_int_eq(it_wait(&d.p, 10000), 128 + SIGKILL);
	pthread_mutex_lock(&r.mu);
	r.hold_forever = 0;
	char first_id[64], *first_body = strdup(r.got[0].body);
	snprintf(first_id, sizeof first_id, "%s", r.got[0].batch_id);
	pthread_mutex_unlock(&r.mu);
	start_dp(&d, "b", 1, NULL);
	wait_delivered(&r, 8, &s);
	check_once_in_order(&s, 8);
	seen_free(&s);
	pthread_mutex_lock(&r.mu);
	ck_assert_str_eq(first_id, it_fmt("%s-%012d", STREAM, 1));
	ck_assert_str_eq(r.got[1].batch_id, first_id);
	ck_assert_str_eq(r.got[1].body, first_body);
	pthread_mutex_unlock(&r.mu);
	free(first_body);
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(pause_resume_replay_budget)
{
	struct receiver r;
	struct dp d;
	struct seen s;
	receiver_start(&r);
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	const char *extra[] = { "DP_STREAM_FAILURE_BUDGET=300ms", NULL };
	start_dp(&d, "a", 1, extra);
	post(&d, "e", 0, 4, 10);
	wait_delivered(&r, 4, &s);
	seen_free(&s);

	/* Paused: events wait. */
	def.paused = 1;
	serve(3, &def, 1);
	wait_status(STREAM, "paused");
	post(&d, "e", 4, 4, 10);
	usleep(600 * 1000);
	delivered(&r, &s);
	ck_assert_uint_eq(s.n, 4);
	seen_free(&s);
	/* Resumed: they go, in order. */
	def.paused = 0;
	def.resume = 1;
	serve(4, &def, 1);
	wait_delivered(&r, 8, &s);
	check_once_in_order(&s, 8);
	seen_free(&s);

	/* Replay from the beginning: every event again, in order, under new batch ids. */
	def.replay = 1;
	def.replay_since = 1;
	serve(5, &def, 1);
	wait_delivered(&r, 16, &s);
	check_feed_slice(&s, 0, 0, 8);
	check_feed_slice(&s, 8, 0, 8);
	seen_free(&s);

	/* The destination fails past the budget: "failed", no more attempts;
	 * resume clears it and delivery goes on. */
	pthread_mutex_lock(&r.mu);
	r.fail_all = 1;
	pthread_mutex_unlock(&r.mu);
	post(&d, "f", 0, 3, 10);
	wait_status(STREAM, "failed");
	char *err = cursor_col(STREAM, "last_error");
	ck_assert_msg(err && strstr(err, "503"), "last_error %s", err ? err : "(null)");
	free(err);
	size_t tries = received(&r);
	usleep(500 * 1000);
	ck_assert_uint_eq(received(&r), tries);
	pthread_mutex_lock(&r.mu);
	r.fail_all = 0;
	pthread_mutex_unlock(&r.mu);
	def.resume = 2;
	serve(6, &def, 1);
	wait_delivered(&r, 19, &s);
	ck_assert_uint_eq(s.n, 19);
	check_feed_slice(&s, 16, 8, 3);
	seen_free(&s);
	wait_status(STREAM, "active");
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(refusals)
{
	/* A host outside the rule, a secret sealed for another stream, and
	 * then a data plane without stream keys: "refused", nothing sent. */
	struct receiver r;
	struct dp d;
	receiver_start(&r);
	snprintf(r.other_url, sizeof r.other_url, "http://localhost:%d/hook", r.port);
	struct sdef defs[2] = {
		{ .id = STREAM_B, .url = r.other_url },
		{ .id = STREAM_C, .url = receiver_url(&r), .seal_for = STREAM_B },
	};
	serve(2, defs, 2);
	start_dp(&d, "a", 1, NULL);
	post(&d, "e", 0, 3, 10);
	wait_status(STREAM_B, "refused");
	wait_status(STREAM_C, "refused");
	char *e1 = cursor_col(STREAM_B, "last_error"), *e2 = cursor_col(STREAM_C, "last_error");
	ck_assert_msg(e1 && strstr(e1, "localhost"), "last_error %s", e1 ? e1 : "(null)");
	ck_assert_msg(e2 && strstr(e2, "sealed"), "last_error %s", e2 ? e2 : "(null)");
	free(e1);
	free(e2);
	stop_dp(&d);

	struct sdef good = { .id = STREAM, .url = receiver_url(&r) };
	serve(3, &good, 1);
	start_dp(&d, "b", 0, NULL);
	wait_status(STREAM, "refused");
	char *e3 = cursor_col(STREAM, "last_error");
	ck_assert_msg(e3 && strstr(e3, "DP_STREAM_KEYS_DIR"), "last_error %s", e3 ? e3 : "(null)");
	free(e3);
	usleep(300 * 1000);
	ck_assert_uint_eq(received(&r), 0);
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(two_instances_one_sender)
{
	/* Two data planes on one database: each batch is sent by one of them
	 * at a time (never two requests at once), each id acknowledged once. */
	struct receiver r;
	struct dp a, b;
	struct seen s;
	receiver_start(&r);
	r.hold_ms = 30;
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	const char *extra[] = { "DP_STREAM_BATCH=3", "DP_STREAM_POLL_INTERVAL=10ms", "DP_STREAM_BATCH_WAIT=0ms", NULL };
	start_dp(&a, "a", 1, extra);
	start_dp(&b, "b", 1, extra);
	for (int i = 0; i < 6; i++)
		post(i % 2 ? &b : &a, "e", i * 5, 5, 10);
	wait_delivered(&r, 30, &s);
	check_once_in_order(&s, 30);
	seen_free(&s);
	ck_assert_int_eq(atomic_load(&r.max_active), 1);
	pthread_mutex_lock(&r.mu);
	for (size_t i = 0; i < r.n; i++)
		for (size_t j = i + 1; j < r.n; j++)
			ck_assert_msg(strcmp(r.got[i].batch_id, r.got[j].batch_id), "batch %s sent twice",
			              r.got[i].batch_id);
	pthread_mutex_unlock(&r.mu);
	stop_dp(&a);
	stop_dp(&b);
	receiver_stop(&r);
}
END_TEST

START_TEST(state_reported)
{
	/* The report reaches the control plane with each field, and the
	 * metrics count the delivery. */
	struct receiver r;
	struct dp d;
	struct seen s;
	receiver_start(&r);
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	start_dp(&d, "a", 1, NULL);
	post(&d, "e", 0, 6, 10);
	wait_delivered(&r, 6, &s);
	seen_free(&s);
	long deadline = it_now_ms() + DEADLINE_MS;
	json_t *st = NULL;
	for (;;) {
		pthread_mutex_lock(&cp.mu);
		json_t *rep = cp.last_report ? json_loads(cp.last_report, 0, NULL) : NULL;
		pthread_mutex_unlock(&cp.mu);
		st = json_array_get(json_object_get(rep, "streams"), 0);
		if (st && json_integer_value(json_object_get(st, "delivered_events")) == 6) {
			json_incref(st);
			ck_assert(json_integer_value(json_object_get(rep, "observed_at")) > 1700000000);
			ck_assert_str_eq(it_js(rep, "cell"), "us"); /* no DP_CELL: the region's one cell */
			ck_assert_uint_eq(json_array_size(json_object_get(rep, "streams")), 1);
			json_decref(rep);
			break;
		}
		json_decref(rep);
		ck_assert_msg(it_now_ms() < deadline, "no report of 6 events delivered");
		usleep(50000);
	}
	ck_assert_str_eq(it_js(st, "id"), STREAM);
	ck_assert_str_eq(it_js(st, "status"), "active");
	ck_assert_int_eq(json_integer_value(json_object_get(st, "lag_events")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "lag_seconds")), 0);
	ck_assert(json_integer_value(json_object_get(st, "last_delivered_at")) > 1700000000);
	ck_assert(json_is_null(json_object_get(st, "last_error")));
	ck_assert(json_is_null(json_object_get(st, "last_error_at")));
	json_decref(st);
	struct it_resp m;
	it_http(&m, "GET", it_fmt("http://127.0.0.1:%d/metrics", d.port), NULL, NULL, 0);
	ck_assert_msg(strstr(m.body, "\ndp_stream_events_delivered_total{kind=\"webhook\"} 6\n"), "metrics: no delivery counted");
	ck_assert_msg(strstr(m.body, "\ndp_stream_streams{status=\"active\"} 1\n"), "metrics: no active stream");
	it_resp_free(&m);
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(retry_after_and_backoff)
{
	/* The destination's Retry-After holds the next attempt back, beyond
	 * the backoff; without it the waits follow the backoff, each within
	 * RETRY_MIN * 2^(n-1) +-20% (capped at RETRY_MAX). */
	struct receiver r;
	struct dp d;
	struct seen s;
	receiver_start(&r);
	r.fail_next = 1;
	r.retry_after = 1;
	struct sdef def = { .id = STREAM, .url = receiver_url(&r) };
	serve(2, &def, 1);
	const char *extra[] = { "DP_STREAM_RETRY_MIN=100ms", "DP_STREAM_RETRY_MAX=400ms", NULL };
	start_dp(&d, "a", 1, extra);
	post(&d, "e", 0, 2, 10);
	wait_delivered(&r, 2, &s);
	seen_free(&s);
	pthread_mutex_lock(&r.mu);
	ck_assert_uint_eq(r.n, 2);
	long gap = r.got[1].at_ms - r.got[0].at_ms;
	/* Retry-After 1 s is above RETRY_MAX: capped at 400 ms, still above
	 * the 100 ms backoff. */
	ck_assert_msg(gap >= 300, "second attempt %ld ms after the first", gap);
	r.retry_after = 0;
	r.fail_next = 4;
	pthread_mutex_unlock(&r.mu);
	post(&d, "e", 2, 2, 10);
	wait_delivered(&r, 4, &s);
	seen_free(&s);
	pthread_mutex_lock(&r.mu);
	ck_assert_uint_eq(r.n, 7);
	/* attempts 1..4 failed: waits of about 100, 200, 400, 400 ms */
	static const long base[] = { 100, 200, 400, 400 };
	for (int i = 0; i < 4; i++) {
		long g = r.got[3 + i].at_ms - r.got[2 + i].at_ms;
		ck_assert_msg(g >= base[i] * 8 / 10 - 5, "wait %d was %ld ms, want at least %ld", i + 1, g, base[i] * 8 / 10);
		ck_assert_msg(g <= base[i] * 12 / 10 + 1000, "wait %d was %ld ms", i + 1, g);
	}
	pthread_mutex_unlock(&r.mu);
	stop_dp(&d);
	receiver_stop(&r);
}
END_TEST

START_TEST(stream_key_command)
{
	/* data-plane stream-key: the public P-256 JWK of the ring's current
	 * key, for encryption, the same on every run; no private part. */
	char bin[1024], out[4096], env_dir[800], path[700];
	struct jwk k = { 0 };
	snprintf(path, sizeof path, "%s/new-ring", dir);
	snprintf(env_dir, sizeof env_dir, "DP_STREAM_KEYS_DIR=%s", path);
	const char *const env[] = { env_dir, NULL };
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, "stream-key", NULL };
	char kid[2][100];
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(it_run("data-plane", argv, env, out, sizeof out) == 0, "%s", out);
		json_t *j = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, NULL);
		ck_assert_msg(j, "not JSON: %s", out);
		ck_assert_str_eq(it_js(j, "kty"), "EC");
		ck_assert_str_eq(it_js(j, "crv"), "P-256");
		ck_assert_str_eq(it_js(j, "use"), "enc");
		ck_assert_ptr_null(json_object_get(j, "d"));
		snprintf(kid[i], sizeof kid[i], "%s", it_js(j, "kid"));
		json_decref(j);
	}
	ck_assert_str_eq(kid[0], kid[1]);
	char err[200];
	struct keyring *kr = keyring_open(path, 0, err, sizeof err);
	ck_assert_ptr_nonnull(kr);
	ck_assert_int_eq(keyring_current(kr, &k), 0);
	ck_assert_str_eq(k.kid, kid[0]);
	jwk_clear(&k);
	keyring_free(kr);
	/* Without the directory: a usage error. */
	const char *const none[] = { NULL };
	ck_assert_int_eq(it_run("data-plane", argv, none, out, sizeof out), 2);
}
END_TEST

Suite *streams_suite(void)
{
	Suite *s = suite_create("streams");
	TCase *tc = tcase_create("streams");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, batches_within_bounds);
	tcase_add_test(tc, failed_batch_resent_unchanged);
	tcase_add_test(tc, sigkill_resends_same_batch);
	tcase_add_test(tc, pause_resume_replay_budget);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, two_instances_one_sender);
	tcase_add_test(tc, state_reported);
	tcase_add_test(tc, retry_after_and_backoff);
	tcase_add_test(tc, stream_key_command);
	suite_add_tcase(s, tc);
	return s;
}
