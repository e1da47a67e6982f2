/* A tenant's rate limit holds per region, whatever the number of data-plane
 * instances behind the balancer, with reads and writes limited apart.
 *
 *   region_rate         1, 2 and 4 instances of one region on one database,
 *                       requests spread evenly and 3:1 at far above the
 *                       plan's rate: together they admit the plan's rate
 *                       (within 15 %), and RateLimit-Limit is the rate on
 *                       every answer of every instance
 *   reads_writes_apart  reads do not take from the write bucket, nor writes
 *                       from the read bucket
 *
 * CK_RUN_SUITE=ratelimit runs them alone. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

#define RATE 20
#define BURST 30
#define MAX_INST 4
/* Requests per second the test offers: ten times the rate, paced, so that
 * the machine is not swamped (the instances' exchange threads must run). */
#define OFFERED (10 * RATE)

static void admin_ok(const struct it_stack *s, struct it_resp *r, const char *method, const char *path,
                     const char *body, long want)
{
	it_stack_admin(s, r, method, path, body);
	ck_assert_msg(r->status == want, "%s %s: %ld, want %ld: %.400s", method, path, r->status, want,
	              r->body);
}

static void new_plan(const struct it_stack *s, const char *id, long rate, long burst)
{
	struct it_resp r;
	admin_ok(s, &r, "POST", "/v1/plans",
	         it_fmt("{\"id\":\"%s\",\"name\":\"Plan %s\",\"currency\":\"USD\",\"base_price\":0,"
	                "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":%ld,\"burst\":%ld,"
	                "\"monthly_event_quota\":100000000,\"retention_days\":30}",
	                id, id, rate, burst),
	         201);
	it_resp_free(&r);
}

/* A new tenant of the stack's region on `plan`, and a key of it with both
 * scopes (into key). */
static void new_tenant(const struct it_stack *s, const char *slug, const char *plan, char key[200])
{
	struct it_resp r;
	admin_ok(s, &r, "POST", "/v1/tenants",
	         it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"%s\"}", slug, slug,
	                s->region, plan),
	         201);
	json_t *j = json_loadb(r.body, r.len, 0, NULL);
	char id[40];
	snprintf(id, sizeof id, "%s", it_js(j, "id"));
	json_decref(j);
	it_resp_free(&r);
	admin_ok(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", id),
	         "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}", 201);
	j = json_loadb(r.body, r.len, 0, NULL);
	snprintf(key, 200, "%s", it_js(j, "secret"));
	json_decref(j);
	it_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* More instances of the stack's region, on its database                */

struct inst {
	struct it_proc p;
	char url[64];
};

static char env_db[600], env_region[40], env_cp[128], env_trust[800], env_token[300];

/* What every further instance shares: the stack's database and control
 * plane, a trust bundle, a region credential of its own. */
static void extra_prepare(const struct it_stack *s)
{
	struct it_resp r;
	char trust[700];
	snprintf(trust, sizeof trust, "%s/rl-trust-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_write_trust(s->cp_url, trust);
	admin_ok(s, &r, "POST", it_fmt("/v1/regions/%s/credentials", s->region), "{}", 201);
	json_t *j = json_loadb(r.body, r.len, 0, NULL);
	snprintf(env_token, sizeof env_token, "DP_REGION_TOKEN=%s", it_js(j, "token"));
	json_decref(j);
	it_resp_free(&r);
	snprintf(env_db, sizeof env_db, "DP_DATABASE_URL=%s", s->dp_db);
	snprintf(env_region, sizeof env_region, "DP_REGION=%s", s->region);
	snprintf(env_cp, sizeof env_cp, "DP_CONTROL_PLANE_URL=%s", s->cp_url);
	snprintf(env_trust, sizeof env_trust, "DP_TRUST_BUNDLE=%s", trust);
}

static void extra_start(const struct it_stack *s, struct inst *in, int n)
{
	char bin[1024], cache[700], name[64];
	snprintf(cache, sizeof cache, "DP_CACHE_DIR=%s/rl-cache-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), n);
	snprintf(name, sizeof name, "DP_INSTANCE=it-rl-%d", n);
	it_bin("data-plane", bin, sizeof bin);
	const char *const env[] = { env_db, env_region, env_cp, env_trust, env_token, cache, name,
		                        "DP_LISTEN=127.0.0.1:0", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&in->p, "data-plane", argv, env);
	snprintf(in->url, sizeof in->url, "http://127.0.0.1:%d", it_wait_port(&in->p, 60000));
	struct it_stack t = *s; /* it_stack_sync waits for t.dp_url */
	snprintf(t.dp_url, sizeof t.dp_url, "%s", in->url);
	it_stack_sync(&t);
}

/* Waits until the stack's instance and the `n` others serve the region's
 * current document. */
static void sync_all(const struct it_stack *s, const struct inst *in, int n)
{
	it_stack_sync(s);
	for (int i = 0; i < n; i++) {
		struct it_stack t = *s;
		snprintf(t.dp_url, sizeof t.dp_url, "%s", in[i].url);
		it_stack_sync(&t);
	}
}

/* ------------------------------------------------------------------ */
/* Traffic                                                              */

struct client {
	CURL *h;
	char limit[32], remaining[32];
};

static size_t on_header(char *p, size_t size, size_t n, void *u)
{
	struct client *c = u;
	size_t len = size * n;
	char line[256];
	snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), p);
	line[strcspn(line, "\r\n")] = '\0';
	if (!strncasecmp(line, "RateLimit-Limit:", 16))
		snprintf(c->limit, sizeof c->limit, "%s", line + 16 + strspn(line + 16, " "));
	else if (!strncasecmp(line, "RateLimit-Remaining:", 20))
		snprintf(c->remaining, sizeof c->remaining, "%s", line + 20 + strspn(line + 20, " "));
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

struct tally {
	long ok, limited, other, bad_limit, bad_remaining, last_other;
};

/* One request over `c`'s kept-alive connection: a write (a small event)
 * or a read (the first page of one). */
static void one(struct client *c, const char *url, const char *key, int write, long burst, long rate,
                struct tally *t)
{
	static const char ev[] = "{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}}";
	char auth[300];
	struct curl_slist *h = NULL;
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c->h, CURLOPT_URL, it_fmt("%s/v1/events%s", url, write ? "" : "?limit=1"));
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, h);
	if (write) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, ev);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(ev));
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	c->limit[0] = c->remaining[0] = '\0';
	long status = 0;
	if (curl_easy_perform(c->h) == CURLE_OK)
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	if (status >= 200 && status < 300)
		t->ok++;
	else if (status == 429)
		t->limited++;
	else {
		t->other++;
		t->last_other = status;
	}
	if (atol(c->limit) != rate)
		t->bad_limit++;
	if (!c->remaining[0] || atol(c->remaining) < 0 || atol(c->remaining) > burst)
		t->bad_remaining++;
}

static void client_init(struct client *c)
{
	memset(c, 0, sizeof *c);
	c->h = curl_easy_init();
	ck_assert_ptr_nonnull(c->h);
	curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
}

/* Sends OFFERED writes a second (fewer if the instances are slower), over
 * the instances `urls` in turn, weights[i] requests to the i-th each round, for `warm_ms`
 * uncounted (the buckets empty and the shares settle), then for
 * `window_ms` counted; returns the counted window's real length. */
static long drive(const char *const urls[], const int weights[], int n, const char *key, long warm_ms,
                  long window_ms, struct tally *t)
{
	struct client c[MAX_INST];
	struct tally warm = { 0 };
	for (int i = 0; i < n; i++)
		client_init(&c[i]);
	long t0 = it_now_ms(), start = 0, end = 0, sent = 0;
	memset(t, 0, sizeof *t);
	for (;;) {
		long now = it_now_ms(), due = t0 + sent * 1000 / OFFERED;
		if (due > now) {
			usleep((useconds_t)(due - now) * 1000);
			now = it_now_ms();
		}
		if (!start && now - t0 >= warm_ms)
			start = now;
		if (start && now - start >= window_ms) {
			end = now;
			break;
		}
		for (int i = 0; i < n; i++)
			for (int k = 0; k < weights[i]; k++) {
				one(&c[i], urls[i], key, 1, BURST, RATE, start ? t : &warm);
				sent++;
			}
	}
	for (int i = 0; i < n; i++)
		curl_easy_cleanup(c[i].h);
	t->bad_limit += warm.bad_limit;
	t->other += warm.other;
	return end - start;
}

/* The accepted count of a window against the plan's rate over its real
 * length; the requests must have been well above the rate to mean it. */
static void check_rate(const char *what, const struct tally *t, long ms)
{
	double want = RATE * (double)ms / 1000.0, got = (double)t->ok;
	fprintf(stderr, "  %s: %ld admitted, %ld refused in %ld ms (want %.1f +-15 %%)\n", what, t->ok,
	        t->limited, ms, want);
	ck_assert_msg(t->other == 0, "%s: %ld answers neither 2xx nor 429 (last %ld)", what, t->other,
	              t->last_other);
	ck_assert_msg(t->ok + t->limited >= 3 * want,
	              "%s: only %ld requests in %ld ms: too few to test a rate of %d/s", what,
	              t->ok + t->limited, ms, RATE);
	ck_assert_msg(got >= want * 0.85 && got <= want * 1.15,
	              "%s: %ld admitted in %ld ms, want %.1f (a rate of %d/s in the region) +-15 %%", what,
	              t->ok, ms, want, RATE);
	ck_assert_msg(t->bad_limit == 0, "%s: %ld answers with RateLimit-Limit other than %d", what,
	              t->bad_limit, RATE);
	ck_assert_msg(t->bad_remaining == 0, "%s: %ld answers with RateLimit-Remaining outside 0..%d", what,
	              t->bad_remaining, BURST);
}

#define WARM_MS 1200
#define WINDOW_MS 2500

START_TEST(region_rate)
{
	struct it_stack s;
	struct inst extra[MAX_INST - 1];
	char key[200];
	struct tally t;
	const char *urls[MAX_INST];
	int even[MAX_INST] = { 1, 1, 1, 1 }, uneven[2] = { 3, 1 };
	long ms;

	memset(extra, 0, sizeof extra);
	it_stack_start(&s, "us", NULL, NULL);
	new_plan(&s, "rl", RATE, BURST);
	extra_prepare(&s);
	urls[0] = s.dp_url;

	/* One instance. */
	new_tenant(&s, "rl-one", "rl", key);
	it_stack_sync(&s);
	ms = drive(urls, even, 1, key, WARM_MS, WINDOW_MS, &t);
	check_rate("1 instance", &t, ms);

	/* Two: evenly, then 3:1 (a fresh tenant each, so no bucket carries over). */
	extra_start(&s, &extra[0], 1);
	urls[1] = extra[0].url;
	new_tenant(&s, "rl-two", "rl", key);
	sync_all(&s, extra, 1);
	ms = drive(urls, even, 2, key, WARM_MS, WINDOW_MS, &t);
	check_rate("2 instances, 1:1", &t, ms);
	new_tenant(&s, "rl-uneven", "rl", key);
	sync_all(&s, extra, 1);
	ms = drive(urls, uneven, 2, key, WARM_MS, WINDOW_MS, &t);
	check_rate("2 instances, 3:1", &t, ms);

	/* Four. */
	extra_start(&s, &extra[1], 2);
	extra_start(&s, &extra[2], 3);
	urls[2] = extra[1].url;
	urls[3] = extra[2].url;
	new_tenant(&s, "rl-four", "rl", key);
	sync_all(&s, extra, 3);
	ms = drive(urls, even, 4, key, WARM_MS, WINDOW_MS, &t);
	check_rate("4 instances", &t, ms);

	for (int i = 0; i < MAX_INST - 1; i++)
		if (extra[i].p.pid > 0) {
			int st = it_stop(&extra[i].p);
			ck_assert_msg(st == 0, "instance %d exited with %d on SIGTERM (log %s)", i + 1, st, extra[i].p.log);
		}
	/* Stopped instances withdrew their demand. */
	char *left = it_sql(s.dp_db, "SELECT count(*) FROM rate_instances");
	ck_assert_str_eq(left, "1");
	free(left);
	it_stack_stop(&s);
}
END_TEST

/* `n` quick requests of one kind to one instance: how many were admitted;
 * RateLimit-Limit must be `rate` on each. */
static long burst_of(const char *url, const char *key, int write, int n, long rate, long burst,
                     long *first_remaining)
{
	struct client c;
	struct tally t = { 0 };
	client_init(&c);
	for (int i = 0; i < n; i++) {
		one(&c, url, key, write, burst, rate, &t);
		if (i == 0)
			*first_remaining = atol(c.remaining);
	}
	curl_easy_cleanup(c.h);
	ck_assert_msg(t.other == 0, "%ld answers neither 2xx nor 429 (last %ld)", t.other, t.last_other);
	ck_assert_msg(t.bad_limit == 0, "%ld answers with RateLimit-Limit other than %ld", t.bad_limit, rate);
	return t.ok;
}

/* Rate 1, burst 5: eight writes then eight reads admit five of each (a
 * token more if a second passed), and the same with reads first. */
START_TEST(reads_writes_apart)
{
	struct it_stack s;
	char key[200];
	long rem;
	it_stack_start(&s, "us", NULL, NULL);
	new_plan(&s, "rw", 1, 5);
	for (int reads_first = 0; reads_first < 2; reads_first++) {
		new_tenant(&s, reads_first ? "rw-reads" : "rw-writes", "rw", key);
		it_stack_sync(&s);
		long t0 = it_now_ms();
		long a = burst_of(s.dp_url, key, !reads_first, 8, 1, 5, &rem);
		ck_assert_int_eq(rem, 4);
		long b = burst_of(s.dp_url, key, reads_first, 8, 1, 5, &rem);
		ck_assert_int_eq(rem, 4);
		long slack = (it_now_ms() - t0) / 1000 + 1;
		const char *first = reads_first ? "reads" : "writes", *then = reads_first ? "writes" : "reads";
		ck_assert_msg(a >= 5 && a <= 5 + slack, "%s: %ld of 8 admitted, want 5", first, a);
		ck_assert_msg(b >= 5 && b <= 5 + slack, "%s after the %s were refused: %ld of 8 admitted, want 5",
		              then, first, b);
	}
	it_stack_stop(&s);
}
END_TEST

Suite *ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	const TTest *const tests[] = { region_rate, reads_writes_apart };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 180);
	return s;
}
