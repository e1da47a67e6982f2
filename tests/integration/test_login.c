/* Logins under attack, from outside: a flood of logins does not stall the
 * other routes (a bound on password checks at once, 503 login_busy beyond),
 * each source address has a token bucket of attempts (429 beyond), and
 * failures delay the source that made them on that account only, so an
 * attacker cannot lock the owner out. Sources are told apart by binding
 * the client to 127.0.0.2, 127.0.0.3... (all of 127.0.0.0/8 is loopback).
 *
 * Every test starts its own control plane on a fresh database. */
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

#define PASSWORD "correct horse battery staple"
#define WRONG "not the password at all"

static struct it_proc cp;
static int cp_started;
static char cp_db[512], cp_url[64];

static void start(const char *const extra[])
{
	it_cp_start(&cp, "it_login", extra, cp_db, sizeof cp_db, cp_url, sizeof cp_url);
	cp_started = 1;
}

static void teardown(void)
{
	if (!cp_started)
		return;
	cp_started = 0;
	int st = it_stop(&cp);
	ck_assert_msg(st == 0, "the control plane exited with %d on SIGTERM (log %s)", st, cp.log);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void admin(const char *method, const char *path, const char *body, long want, char id[37])
{
	struct it_resp r;
	const char *const h[] = { "Authorization: Bearer " IT_ADMIN_TOKEN, "Content-Type: application/json", NULL };
	it_http(&r, method, it_fmt("%s%s", cp_url, path), h, body, body ? strlen(body) : 0);
	ck_assert_msg(r.status == want, "%s %s: %ld %s", method, path, r.status, r.body);
	if (id) {
		json_t *j = json_loads(r.body, 0, NULL);
		snprintf(id, 37, "%s", it_js(j, "id"));
		json_decref(j);
	}
	it_resp_free(&r);
}

/* A tenant `slug` with an owner `email` whose password is PASSWORD. */
static void tenant_with_owner(const char *slug, const char *email)
{
	char t[37];
	admin("POST", "/v1/tenants",
	      it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"eu\",\"plan\":\"free\"}", slug, slug), 201, t);
	admin("POST", it_fmt("/v1/tenants/%s/users", t),
	      it_fmt("{\"email\":\"%s\",\"role\":\"owner\",\"password\":\"" PASSWORD "\"}", email), 201, NULL);
}

struct answer {
	long status;
	char code[40];
	long retry_after;       /* the header, -1 when absent */
	long retry_after_body;  /* retry_after_seconds, -1 when absent */
	int problem_json;
};

/* One login from `source` (NULL: the default address). */
static void login_from(const char *source, const char *slug, const char *email, const char *password,
                       struct answer *a)
{
	struct it_resp r;
	char v[64], url[128];
	const char *const h[] = { "Content-Type: application/json", NULL };
	json_t *b = json_pack("{ss ss ss}", "tenant", slug, "email", email, "password", password);
	char *body = json_dumps(b, JSON_COMPACT);
	snprintf(url, sizeof url, "%s/v1/auth/login", cp_url); /* not it_fmt: flooders are threads */
	it_http_from(&r, source, "POST", url, h, body, strlen(body));
	free(body);
	json_decref(b);
	memset(a, 0, sizeof *a);
	a->status = r.status;
	a->retry_after = it_header(&r, "Retry-After", v, sizeof v) == 0 && strspn(v, "0123456789") == strlen(v)
	                 ? atol(v) : -1;
	a->problem_json = it_header(&r, "Content-Type", v, sizeof v) == 0 &&
	                  !strncasecmp(v, "application/problem+json", 24);
	json_t *j = json_loads(r.body, 0, NULL);
	snprintf(a->code, sizeof a->code, "%s", it_js(j, "code"));
	json_t *ra = json_object_get(j, "retry_after_seconds");
	a->retry_after_body = json_is_integer(ra) ? (long)json_integer_value(ra) : -1;
	json_decref(j);
	it_resp_free(&r);
}

static long login_status(const char *source, const char *slug, const char *email, const char *password)
{
	struct answer a;
	login_from(source, slug, email, password, &a);
	return a.status;
}

/* A refusal that says when to come back: problem+json with `code`, a
 * Retry-After of 1..max seconds, the same in retry_after_seconds. */
static void expect_refused(const struct answer *a, long status, const char *code, long max, const char *what)
{
	ck_assert_msg(a->status == status && !strcmp(a->code, code),
	              "%s: %ld %s, want %ld %s", what, a->status, a->code, status, code);
	ck_assert_msg(a->problem_json, "%s: not application/problem+json", what);
	ck_assert_msg(a->retry_after >= 1 && a->retry_after <= max, "%s: Retry-After %ld (1..%ld)", what,
	              a->retry_after, max);
	ck_assert_int_eq(a->retry_after_body, a->retry_after);
}

static long sql_long(const char *sql)
{
	char *v = it_sql(cp_db, sql);
	long n = v ? atol(v) : -1;
	free(v);
	return n;
}

/* ------------------------------------------------------------------ */

struct flood {
	atomic_int stop;
	atomic_long answered, unauthorized, busy, bad;
	char bad_what[200];
};

static void *flooder(void *arg)
{
	struct flood *f = arg;
	static atomic_int seq;
	int me = atomic_fetch_add(&seq, 1);
	for (int i = 0; !atomic_load(&f->stop); i++) {
		struct answer a;
		char email[64];
		snprintf(email, sizeof email, "ghost%d-%d@flood.test", me, i);
		login_from(NULL, "nobody", email, WRONG, &a);
		atomic_fetch_add(&f->answered, 1);
		if (a.status == 401) {
			atomic_fetch_add(&f->unauthorized, 1);
		} else if (a.status == 503 && !strcmp(a.code, "login_busy") && a.problem_json &&
		           a.retry_after >= 1 && a.retry_after_body == a.retry_after) {
			atomic_fetch_add(&f->busy, 1);
			usleep(100000); /* a client that respects the answer, somewhat */
		} else {
			if (atomic_fetch_add(&f->bad, 1) == 0)
				snprintf(f->bad_what, sizeof f->bad_what, "%ld %s Retry-After %ld", a.status, a.code,
				         a.retry_after);
		}
	}
	return NULL;
}

/* A flood of logins (40 clients at once, unknown accounts, a real 32 MiB
 * scrypt) neither stalls GET /healthz nor GET /v1/regions: beyond
 * CP_LOGIN_CONCURRENCY password checks, logins are refused at once with
 * 503 login_busy and Retry-After, and the rest are still answered 401. */
START_TEST(login_flood_leaves_other_routes_alone)
{
	const char *const extra[] = { "CP_SCRYPT_LOG2N=15", "CP_LOGIN_CONCURRENCY=1", "CP_HTTP_THREADS=2",
	                              "CP_ACCESS_LOG=false", NULL };
	enum { CLIENTS = 40 };
	struct flood f = { 0 };
	pthread_t th[CLIENTS];
	int64_t worst = 0;
	const char *worst_path = "";

	start(extra);
	for (int i = 0; i < CLIENTS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, flooder, &f), 0);
	/* The flood is on once every client has had an answer or two. */
	for (int64_t until = mono_ms() + 60000; atomic_load(&f.answered) < 2 * CLIENTS && mono_ms() < until;)
		usleep(20000);
	for (int i = 0; i < 10; i++) {
		const char *path = i % 2 ? "/v1/regions" : "/healthz";
		struct it_resp r;
		int64_t t0 = mono_ms();
		it_http(&r, "GET", it_fmt("%s%s", cp_url, path), NULL, NULL, 0);
		int64_t took = mono_ms() - t0;
		ck_assert_msg(r.status == 200, "GET %s during the flood: %ld", path, r.status);
		it_resp_free(&r);
		if (took > worst) {
			worst = took;
			worst_path = path;
		}
		usleep(50000);
	}
	/* Until the bound has visibly refused some (it always does with 40
	 * clients and one slot; the wait only covers a slow start). */
	for (int64_t until = mono_ms() + 30000; atomic_load(&f.busy) == 0 && mono_ms() < until;)
		usleep(20000);
	atomic_store(&f.stop, 1);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);

	ck_assert_msg(worst < 1500, "GET %s took %lld ms during the login flood", worst_path, (long long)worst);
	ck_assert_msg(atomic_load(&f.bad) == 0, "%ld login(s) answered otherwise, e.g. %s", atomic_load(&f.bad),
	              f.bad_what);
	ck_assert_msg(atomic_load(&f.busy) > 0, "no login was refused with 503 login_busy (%ld answered)",
	              atomic_load(&f.answered));
	ck_assert_msg(atomic_load(&f.unauthorized) > 0, "no login was checked during the flood");
}
END_TEST

/* Each source address has CP_LOGIN_PER_SOURCE_BURST attempts (whatever
 * their outcome), then 429 rate_limited with Retry-After, the right
 * password included; another address is not affected. */
START_TEST(login_per_source_limit)
{
	const char *const extra[] = { "CP_LOGIN_PER_SOURCE_BURST=5", "CP_LOGIN_PER_SOURCE_RATE=1",
	                              "CP_LOGIN_MAX_FAILURES=100", NULL };
	struct answer a;
	start(extra);
	tenant_with_owner("bucket", "owner@bucket.test");

	/* Attempts 1..5 from .2 are checked: wrong, unknown, right, wrong, right. */
	ck_assert_int_eq(login_status("127.0.0.2", "bucket", "owner@bucket.test", WRONG), 401);
	ck_assert_int_eq(login_status("127.0.0.2", "bucket", "ghost@bucket.test", WRONG), 401);
	ck_assert_int_eq(login_status("127.0.0.2", "bucket", "owner@bucket.test", PASSWORD), 200);
	ck_assert_int_eq(login_status("127.0.0.2", "bucket", "owner@bucket.test", WRONG), 401);
	ck_assert_int_eq(login_status("127.0.0.2", "bucket", "owner@bucket.test", PASSWORD), 200);
	/* The 6th and 7th are refused before any check. */
	for (int i = 0; i < 2; i++) {
		login_from("127.0.0.2", "bucket", "owner@bucket.test", PASSWORD, &a);
		expect_refused(&a, 429, "rate_limited", 60, "the 6th and 7th attempt from one address");
	}
	/* Another address has its own bucket, to its own 5th attempt. */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(login_status("127.0.0.3", "bucket", "ghost@bucket.test", WRONG), 401);
	ck_assert_int_eq(login_status("127.0.0.3", "bucket", "owner@bucket.test", PASSWORD), 200);
	login_from("127.0.0.3", "bucket", "owner@bucket.test", PASSWORD, &a);
	expect_refused(&a, 429, "rate_limited", 60, "the 6th attempt from another address");
}
END_TEST

/* A login from SOURCE carrying the X-Forwarded-For line XFF, and a second
 * one, XFF2, after it unless NULL (as HAProxy adds its own); its status. */
static long login_via2(const char *source, const char *xff, const char *xff2)
{
	struct it_resp r;
	char fwd[128], fwd2[128], url[128];
	snprintf(fwd, sizeof fwd, "X-Forwarded-For: %s", xff);
	snprintf(fwd2, sizeof fwd2, "X-Forwarded-For: %s", xff2 ? xff2 : "");
	const char *const h[] = { "Content-Type: application/json", fwd, xff2 ? fwd2 : NULL, NULL };
	const char *body = "{\"tenant\":\"proxied\",\"email\":\"owner@proxied.test\",\"password\":\"" WRONG "\"}";
	snprintf(url, sizeof url, "%s/v1/auth/login", cp_url);
	it_http_from(&r, source, "POST", url, h, body, strlen(body));
	long st = r.status;
	it_resp_free(&r);
	return st;
}

static long login_via(const char *source, const char *xff)
{
	return login_via2(source, xff, NULL);
}

/* Behind a trusted proxy (CP_TRUSTED_PROXIES; the control plane's TLS
 * edge), the source of a login is the address the proxy put last in
 * X-Forwarded-For, in the line it appended or in a line of its own after
 * the client's (HAProxy): each client behind it has its own bucket, and
 * what the client wrote before it is not believed. From a peer that is not
 * trusted, X-Forwarded-For is ignored: the peer is the source. */
START_TEST(login_source_behind_trusted_proxy)
{
	const char *const extra[] = { "CP_TRUSTED_PROXIES=127.0.0.2/32", "CP_LOGIN_PER_SOURCE_BURST=2",
	                              "CP_LOGIN_PER_SOURCE_RATE=1", "CP_LOGIN_MAX_FAILURES=100", NULL };
	start(extra);
	tenant_with_owner("proxied", "owner@proxied.test");

	/* Client .1 behind the proxy, whatever it wrote itself first. */
	ck_assert_int_eq(login_via("127.0.0.2", "198.51.100.1, 203.0.113.1"), 401);
	ck_assert_int_eq(login_via("127.0.0.2", "198.51.100.2, 203.0.113.1"), 401);
	ck_assert_int_eq(login_via("127.0.0.2", "203.0.113.1"), 429);
	/* Client .2 behind the same proxy: its own bucket. */
	ck_assert_int_eq(login_via("127.0.0.2", "203.0.113.1, 203.0.113.2"), 401);
	ck_assert_int_eq(login_via("127.0.0.2", "203.0.113.2"), 401);
	ck_assert_int_eq(login_via("127.0.0.2", "203.0.113.2"), 429);
	/* Client .3 sends a line of its own, the proxy adds its line after it:
	 * the proxy's line counts, whatever the client's says. */
	ck_assert_int_eq(login_via2("127.0.0.2", "198.51.100.77", "203.0.113.3"), 401);
	ck_assert_int_eq(login_via2("127.0.0.2", "198.51.100.78", "203.0.113.3"), 401);
	ck_assert_int_eq(login_via2("127.0.0.2", "198.51.100.79", "203.0.113.3"), 429);
	ck_assert_int_eq(login_via2("127.0.0.2", "203.0.113.3", "203.0.113.4"), 401); /* .4's own bucket */
	/* Not a trusted peer: the header changes nothing. */
	ck_assert_int_eq(login_via("127.0.0.3", "203.0.113.7"), 401);
	ck_assert_int_eq(login_via("127.0.0.3", "203.0.113.8"), 401);
	ck_assert_int_eq(login_via("127.0.0.3", "203.0.113.9"), 429);
}
END_TEST

/* An attacker who knows the owner's email and the tenant's slug fails
 * CP_LOGIN_MAX_FAILURES times from one address: that address is delayed
 * for that account (from the max-th failure, not before), the right
 * password included, while the owner logs in from another address and
 * the attacker stays delayed. Unknown accounts are delayed alike (no
 * telling which emails exist), and the attacker's other accounts not. */
START_TEST(login_failures_delay_only_their_source)
{
	const char *const extra[] = { "CP_LOGIN_MAX_FAILURES=5", NULL };
	struct answer a;
	start(extra);
	tenant_with_owner("victim", "owner@victim.test");
	tenant_with_owner("other", "owner@other.test");

	const char *const accounts[] = { "owner@victim.test", "ghost@victim.test" };
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 4; i++)
			ck_assert_int_eq(login_status("127.0.0.2", "victim", accounts[k], WRONG), 401);
		ck_assert_int_eq(sql_long(it_fmt("SELECT count(*) FROM login_failures WHERE email = '%s'"
		                                 " AND locked_until IS NOT NULL", accounts[k])), 0);
		ck_assert_int_eq(login_status("127.0.0.2", "victim", accounts[k], WRONG), 401);
		if (k == 0) /* at once, while the attacker's address is delayed */
			ck_assert_int_eq(login_status("127.0.0.3", "victim", accounts[k], PASSWORD), 200);
		ck_assert_int_eq(sql_long(it_fmt("SELECT count(*) FROM login_failures WHERE email = '%s'"
		                                 " AND source = '127.0.0.2' AND failures = 5"
		                                 " AND locked_until IS NOT NULL", accounts[k])), 1);
	}
	/* The first delay is a second; stretch it so a slow machine still sees it. */
	free(it_sql(cp_db, "UPDATE login_failures SET locked_until = now() + interval '60 seconds'"
	                   " WHERE source = '127.0.0.2'"));
	for (int k = 0; k < 2; k++) {
		login_from("127.0.0.2", "victim", accounts[k], PASSWORD, &a);
		expect_refused(&a, 429, "rate_limited", 60, "the attacker's address after its failures");
	}
	ck_assert_int_eq(login_status("127.0.0.2", "other", "owner@other.test", PASSWORD), 200);

	/* The owner, elsewhere: a typo, then the right password. */
	ck_assert_int_eq(login_status("127.0.0.3", "victim", "owner@victim.test", WRONG), 401);
	ck_assert_int_eq(login_status("127.0.0.3", "victim", "owner@victim.test", PASSWORD), 200);
	ck_assert_int_eq(sql_long("SELECT count(*) FROM login_failures WHERE source = '127.0.0.3'"), 0);
	login_from("127.0.0.2", "victim", "owner@victim.test", PASSWORD, &a);
	expect_refused(&a, 429, "rate_limited", 60, "the attacker's address after the owner logged in");
	/* Once the delay is over, the attacker's address may try again. */
	free(it_sql(cp_db, "UPDATE login_failures SET locked_until = now() - interval '1 second'"
	                   " WHERE source = '127.0.0.2'"));
	ck_assert_int_eq(login_status("127.0.0.2", "victim", "owner@victim.test", WRONG), 401);
}
END_TEST

/* The delay doubles per failure up to CP_LOGIN_LOCKOUT_MAX (15 minutes by
 * default, as the README and the OpenAPI description say), however long
 * the attack has gone on: after a long history of failures the next one
 * delays the source by exactly the cap. */
START_TEST(login_delay_cap)
{
	start(NULL);
	tenant_with_owner("patient", "target@patient.test");
	ck_assert_int_eq(login_status("127.0.0.2", "patient", "target@patient.test", WRONG), 401);
	free(it_sql(cp_db, "UPDATE login_failures SET failures = 1100, locked_until = NULL"
	                   " WHERE source = '127.0.0.2'"));
	ck_assert_int_eq(login_status("127.0.0.2", "patient", "target@patient.test", WRONG), 401);
	ck_assert_int_eq(sql_long("SELECT failures FROM login_failures WHERE source = '127.0.0.2'"), 1101);
	long secs = sql_long("SELECT round(extract(epoch FROM locked_until - now()))::bigint"
	                     " FROM login_failures WHERE source = '127.0.0.2'");
	ck_assert_msg(secs > 840 && secs <= 900, "delay after 1,101 failures: %ld s (want 15 minutes)", secs);
	struct answer a;
	login_from("127.0.0.2", "patient", "target@patient.test", PASSWORD, &a);
	expect_refused(&a, 429, "rate_limited", 900, "after a long attack");
	ck_assert_int_eq(login_status("127.0.0.3", "patient", "target@patient.test", PASSWORD), 200);
}
END_TEST

/* Guessing from many addresses, each below its own limit: once the
 * account has CP_LOGIN_ACCOUNT_FAILURES failures (and not before),
 * each further failure holds the account for one second for everyone. */
START_TEST(login_distributed_guessing)
{
	const char *const extra[] = { "CP_LOGIN_ACCOUNT_FAILURES=6", "CP_LOGIN_MAX_FAILURES=100", NULL };
	struct answer a;
	start(extra);
	tenant_with_owner("spread", "owner@spread.test");
	const char *const src[] = { "127.0.0.2", "127.0.0.3", "127.0.0.4" };
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(login_status(src[i % 3], "spread", "owner@spread.test", WRONG), 401);
	ck_assert_int_eq(sql_long("SELECT count(*) FROM login_failures WHERE source = '*'"), 0);
	ck_assert_int_eq(login_status(src[2], "spread", "owner@spread.test", WRONG), 401);
	ck_assert_int_eq(sql_long("SELECT count(*) FROM login_failures WHERE source = '*'"
	                          " AND locked_until > now() - interval '1 minute'"), 1);
	/* Stretch the one-second hold so a slow machine still sees it. */
	free(it_sql(cp_db, "UPDATE login_failures SET locked_until = now() + interval '30 seconds'"
	                   " WHERE source = '*'"));
	login_from("127.0.0.5", "spread", "owner@spread.test", PASSWORD, &a);
	expect_refused(&a, 429, "rate_limited", 30, "the account under distributed guessing");
	free(it_sql(cp_db, "UPDATE login_failures SET locked_until = now() - interval '1 second'"
	                   " WHERE source = '*'"));
	ck_assert_int_eq(login_status("127.0.0.5", "spread", "owner@spread.test", PASSWORD), 200);
}
END_TEST

struct guess {
	pthread_t th;
	struct answer a;
};

static void *guesser(void *arg)
{
	struct guess *g = arg;
	login_from("127.0.0.2", "racing", "owner@racing.test", WRONG, &g->a);
	return NULL;
}

/* Parallel guesses do not slip past the delay: with an address one
 * failure short of a long delay on an account, eight wrong passwords sent
 * at once get one 401 and seven 429 (attempts to one account are checked
 * one at a time, each after the failures before it). */
START_TEST(login_parallel_guesses)
{
	const char *const extra[] = { "CP_HTTP_THREADS=8", "CP_SCRYPT_LOG2N=14", NULL };
	enum { N = 8 };
	struct guess g[N];
	int n401 = 0, n429 = 0;
	start(extra);
	tenant_with_owner("racing", "owner@racing.test");
	/* 20 failures so far: the 21st delays the address by 2^16 s, capped at 15 minutes. */
	free(it_sql(cp_db, "INSERT INTO login_failures (tenant_slug, email, source, failures, last_failed_at)"
	                   " VALUES ('racing', 'owner@racing.test', '127.0.0.2', 20, now())"));
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pthread_create(&g[i].th, NULL, guesser, &g[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(g[i].th, NULL);
		if (g[i].a.status == 401)
			n401++;
		else
			expect_refused(&g[i].a, 429, "rate_limited", 900, "a parallel guess");
		n429 += g[i].a.status == 429;
	}
	ck_assert_msg(n401 == 1 && n429 == N - 1, "%d answered 401 and %d 429 (want 1 and %d)", n401, n429, N - 1);
	ck_assert_int_eq(sql_long("SELECT failures FROM login_failures WHERE source = '127.0.0.2'"), 21);
}
END_TEST

/* Every combination of address, account (known or not) and password
 * (right or wrong), in seeded random orders, against a model: a pair of
 * account and address is delayed from its CP_LOGIN_MAX_FAILURES-th
 * failure in a row; a success clears only its own pair; an unknown account
 * answers like a known one with a wrong password. The test stretches each
 * new delay so that a slow machine sees the same answers as the model. */
START_TEST(login_delays_match_model)
{
	enum { SOURCES = 3, ACCOUNTS = 2, MAXF = 2, STEPS = 40 };
	const char *const extra[] = { "CP_LOGIN_MAX_FAILURES=2", NULL };
	const char *const src[SOURCES] = { "127.0.0.2", "127.0.0.3", "127.0.0.4" };
	const char *const acct[ACCOUNTS] = { "owner@model.test", "ghost@model.test" };
	start(extra);
	tenant_with_owner("model", "owner@model.test");

	for (unsigned seed = 1; seed <= 3; seed++) {
		int fails[ACCOUNTS][SOURCES] = { { 0 } }, delayed[ACCOUNTS][SOURCES] = { { 0 } };
		unsigned state = seed;
		free(it_sql(cp_db, "DELETE FROM login_failures"));
		for (int step = 0; step < STEPS; step++) {
			int s = rand_r(&state) % SOURCES, k = rand_r(&state) % ACCOUNTS, right = rand_r(&state) % 2;
			long want;
			if (delayed[k][s]) {
				want = 429;
			} else if (k == 0 && right) {
				want = 200;
				fails[k][s] = 0;
			} else {
				want = 401;
				delayed[k][s] = ++fails[k][s] >= MAXF;
			}
			struct answer a;
			login_from(src[s], "model", acct[k], right ? PASSWORD : WRONG, &a);
			ck_assert_msg(a.status == want, "seed %u step %d: %s from %s with the %s password: %ld, want %ld",
			              seed, step, acct[k], src[s], right ? "right" : "wrong", a.status, want);
			if (want == 429)
				expect_refused(&a, 429, "rate_limited", 60, "a delayed pair");
			if (want == 401 && delayed[k][s])
				free(it_sql(cp_db, it_fmt("UPDATE login_failures SET locked_until = now() + interval '60 seconds'"
				                          " WHERE email = '%s' AND source = '%s'", acct[k], src[s])));
			for (int kk = 0; kk < ACCOUNTS; kk++)
				for (int ss = 0; ss < SOURCES; ss++) {
					long have = sql_long(it_fmt("SELECT coalesce(sum(failures), 0) FROM login_failures"
					                            " WHERE email = '%s' AND source = '%s'", acct[kk], src[ss]));
					ck_assert_msg(have == fails[kk][ss], "seed %u step %d: %s from %s: %ld failures, model %d",
					              seed, step, acct[kk], src[ss], have, fails[kk][ss]);
				}
		}
	}
}
END_TEST

Suite *login_suite(void)
{
	const TTest *const tests[] = {
		login_flood_leaves_other_routes_alone, login_per_source_limit, login_source_behind_trusted_proxy,
		login_failures_delay_only_their_source, login_delays_match_model, login_parallel_guesses,
		login_delay_cap,
		login_distributed_guessing,
	};
	Suite *s = suite_create("login");
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, teardown, 120);
	return s;
}
