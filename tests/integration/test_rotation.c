/* Rotating the control plane's signing key with the data plane running,
 * from outside: stage, rotate and retire with the keys in the control
 * plane's database (CP_SIGNING_KEK), under a steady load of writes and
 * reads, the data plane never restarted; then a rotation without staging
 * (the data plane meets a key it does not trust and asks for the key set
 * at once); then a restart of the data plane with the control plane down,
 * which serves from its cache only through the key set it kept, since its
 * trust bundle names a key retired since. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "it.h"

#define KEK "5a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879"

static struct it_stack st;

struct load {
	atomic_int stop;
	atomic_long ok, failed;
	char last_failure[600];
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	char auth[300], url[128], body[200];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", st.key);
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	for (long i = 0; !atomic_load(&l->stop); i++) {
		struct it_resp r;
		if (i % 2) {
			snprintf(url, sizeof url, "%s/v1/events", st.dp_url);
			snprintf(body, sizeof body, "{\"action\":\"doc.edit\",\"actor\":{\"id\":\"u%ld\",\"type\":\"user\"}}", i);
			it_http(&r, "POST", url, h, body, strlen(body));
		} else {
			snprintf(url, sizeof url, "%s/v1/events?limit=5", st.dp_url);
			it_http(&r, "GET", url, h, NULL, 0);
		}
		if (r.status == 200 || r.status == 201) {
			atomic_fetch_add(&l->ok, 1);
		} else {
			atomic_fetch_add(&l->failed, 1);
			snprintf(l->last_failure, sizeof l->last_failure, "%ld %s%.200s", r.status, r.error, r.body);
		}
		it_resp_free(&r);
		usleep(5000);
	}
	return NULL;
}

/* `control-plane <cmd>` on the stack's database with the KEK. */
static void key_cmd(const char *cmd, const char *arg)
{
	char bin[1024], out[4096], db[600];
	it_bin("control-plane", bin, sizeof bin);
	snprintf(db, sizeof db, "CP_DATABASE_URL=%s", st.cp_db);
	char *argv[] = { bin, (char *)cmd, (char *)arg, NULL };
	const char *const env[] = { db, "CP_SIGNING_KEK=" KEK, NULL };
	ck_assert_msg(it_run(cmd, argv, env, out, sizeof out) == 0, "control-plane %s: %s", cmd, out);
}

static char *cp_sql(const char *q)
{
	char *v = it_sql(st.cp_db, q);
	ck_assert_msg(v, "no row: %s", q);
	return v;
}

/* Waits (up to 15 s) until the data plane's `series` is at least `want`. */
static long long wait_metric(const char *series, long long want)
{
	long long v = 0;
	for (int i = 0; i < 300; i++) {
		if ((v = it_metric(st.dp_url, series)) >= want)
			return v;
		usleep(50 * 1000);
	}
	ck_abort_msg("%s stayed at %lld, want at least %lld (log %s)", series, v, want, st.dp.log);
	return v;
}

/* The kids the data plane's kept key set names, sorted by the caller's order. */
static int kept_has(const char *kid)
{
	char path[1024];
	snprintf(path, sizeof path, "%.900s/keyset.json", st.dp_base[5] + strlen("DP_CACHE_DIR="));
	char *text = it_slurp(path);
	ck_assert_msg(text, "no %s", path);
	json_t *doc = json_loads(text, 0, NULL);
	free(text);
	const char *p64 = it_js(doc, "payload");
	char claims[8192];
	long n = 0;
	/* base64url by hand: the claims are JSON text. */
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned acc = 0;
	int bits = 0;
	for (const char *c = p64; *c && n < (long)sizeof claims - 1; c++) {
		const char *at = strchr(a, *c);
		ck_assert_ptr_nonnull(at);
		acc = (acc << 6) | (unsigned)(at - a);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			claims[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	claims[n] = '\0';
	json_decref(doc);
	return strstr(claims, kid) != NULL;
}

/* The stack's data plane answers a read of the tenant's events (200). */
static void expect_served(const char *when)
{
	struct it_resp r;
	char auth[300], url[128];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", st.key);
	const char *const h[] = { auth, NULL };
	snprintf(url, sizeof url, "%s/v1/events?limit=1", st.dp_url);
	it_http(&r, "GET", url, h, NULL, 0);
	ck_assert_msg(r.status == 200, "%s: %ld %.300s", when, r.status, r.body);
	it_resp_free(&r);
}

START_TEST(rotation_without_restarts)
{
	const char *const cp_env[] = { "CP_SIGNING_KEK=" KEK, NULL };
	const char *const dp_env[] = { "DP_KEYSET_INTERVAL=1s", NULL };
	it_stack_start(&st, "eu", cp_env, dp_env);
	pid_t dp_pid = st.dp.pid;
	char *k1 = cp_sql("SELECT kid FROM signing_keys WHERE state = 'current'");
	/* The data plane takes the first key set: its keys are the bundle's. */
	long long ver = wait_metric("dp_keyset_version", 1);

	struct load l = { 0 };
	pthread_t t;
	pthread_create(&t, NULL, load_main, &l);
	usleep(300 * 1000);

	/* Stage: the data plane trusts the new key before it signs. */
	key_cmd("stage-key", NULL);
	char *k2 = cp_sql("SELECT kid FROM signing_keys WHERE state = 'staged'");
	ver = wait_metric("dp_keyset_version", ver + 1);
	ck_assert(kept_has(k1) && kept_has(k2));

	/* Rotate: documents are re-signed with it, and the data plane applies
	 * them without refusing one for its key. */
	long long applied = it_metric(st.dp_url, "dp_config_applied_total");
	key_cmd("rotate-key", NULL);
	wait_metric("dp_config_applied_total", applied + 1);
	ver = wait_metric("dp_keyset_version", ver + 1);
	ck_assert_int_eq(it_metric(st.dp_url, "dp_config_rejected_total{reason=\"kid\"}"), 0);

	/* Retire the old key: it leaves what the data plane trusts. */
	key_cmd("retire-key", k1);
	ver = wait_metric("dp_keyset_version", ver + 1);
	ck_assert(!kept_has(k1) && kept_has(k2));

	/* A rotation without staging: the new key signs at once; the data
	 * plane refuses the first document for its key, asks for the key set
	 * (signed by the new key and by the one it trusts), and applies the
	 * document again within a few seconds. */
	applied = it_metric(st.dp_url, "dp_config_applied_total");
	key_cmd("rotate-key", NULL);
	char *k3 = cp_sql("SELECT kid FROM signing_keys WHERE state = 'current'");
	wait_metric("dp_config_applied_total", applied + 1);
	ck_assert(kept_has(k3));

	usleep(500 * 1000);
	atomic_store(&l.stop, 1);
	pthread_join(t, NULL);
	ck_assert_msg(atomic_load(&l.failed) == 0, "%ld of %ld requests failed during the rotations; the last: %s",
	              atomic_load(&l.failed), atomic_load(&l.failed) + atomic_load(&l.ok), l.last_failure);
	ck_assert_int_gt(atomic_load(&l.ok), 50);
	ck_assert_int_eq(st.dp.pid, dp_pid); /* never restarted */
	ck_assert(it_alive(&st.dp));
	fprintf(stderr, "  rotation under load: %ld requests, none failed; key set version %lld\n",
	        atomic_load(&l.ok), it_metric(st.dp_url, "dp_keyset_version"));

	/* The control plane down, the data plane restarted: its trust bundle
	 * names k1 only, its cached document is signed by k3; the kept key set
	 * is what lets it serve. */
	it_stack_cp_stop(&st);
	it_stack_dp_respawn(&st, dp_env);
	expect_served("after a restart with the control plane down");
	ck_assert_int_ge(it_metric(st.dp_url, "dp_keyset_version"), ver);
	free(k1);
	free(k2);
	free(k3);
	it_stack_cp_start(&st, cp_env);
	it_stack_stop(&st);
}
END_TEST

#define KEK_B "8081828384858687888990919293949596979899a0a1a2a3a4a5a6a7a8a9aaab"
#define KEK_C "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"

/* `control-plane <cmd>` with CP_SIGNING_KEK `kek` and, unless NULL,
 * CP_SIGNING_KEK_PREVIOUS `prev`; its exit status, its output in `out`. */
static int kek_cmd(const char *cmd, const char *kek, const char *prev, char *out, size_t outlen)
{
	char bin[1024], db[600], k[100], p[100];
	it_bin("control-plane", bin, sizeof bin);
	snprintf(db, sizeof db, "CP_DATABASE_URL=%s", st.cp_db);
	snprintf(k, sizeof k, "CP_SIGNING_KEK=%s", kek);
	snprintf(p, sizeof p, "CP_SIGNING_KEK_PREVIOUS=%s", prev ? prev : "");
	char *argv[] = { "timeout", "30", bin, (char *)cmd, NULL };
	const char *const env[] = { db, k, prev ? p : NULL, NULL };
	return it_run(cmd, argv, env, out, outlen);
}

/* A serve of the control plane with CP_SIGNING_KEK `kek` alone: whether it
 * refuses to start, and why (it never gets to listen when it refuses). */
static int serve_refused(const char *kek, char *out, size_t outlen)
{
	char bin[1024], db[600], k[100];
	it_bin("control-plane", bin, sizeof bin);
	snprintf(db, sizeof db, "CP_DATABASE_URL=%s", st.cp_db);
	snprintf(k, sizeof k, "CP_SIGNING_KEK=%s", kek);
	char *argv[] = { "timeout", "10", bin, "serve", NULL };
	const char *const env[] = { db, k, "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_LISTEN=127.0.0.1:0", NULL };
	int rc = it_run("serve", argv, env, out, outlen);
	return rc != 0 && rc != 124; /* 124: still running at the timeout, so it started */
}

/* A new key-encryption key, the fleet never down: replicas run with the
 * new CP_SIGNING_KEK and the old one as CP_SIGNING_KEK_PREVIOUS, reseal-keys
 * seals every key again under the new one (audited, each key once; again:
 * nothing to do), then the replicas run with the new one alone and a
 * rotation works. The old KEK alone no longer opens the keys; a reseal
 * from a KEK that sealed none of them changes nothing; the data plane
 * serves throughout. */
START_TEST(kek_replaced_without_restarts_of_data_planes)
{
	char out[4096];
	const char *const cp_env[] = { "CP_SIGNING_KEK=" KEK, NULL };
	it_stack_start(&st, "eu", cp_env, NULL);
	long long ver = wait_metric("dp_keyset_version", 1);
	key_cmd("stage-key", NULL);
	char *old_id = cp_sql("SELECT DISTINCT kek_id FROM signing_keys");

	/* Replicas with both keys: they open what the old one sealed. */
	it_stack_cp_stop(&st);
	const char *const both[] = { "CP_SIGNING_KEK=" KEK_B, "CP_SIGNING_KEK_PREVIOUS=" KEK, NULL };
	it_stack_cp_start(&st, both);
	ck_assert_msg(kek_cmd("reseal-keys", KEK_B, KEK_B, out, sizeof out) != 0 && strstr(out, "is CP_SIGNING_KEK"),
	              "the same key as both: %s", out);
	ck_assert_msg(kek_cmd("reseal-keys", KEK_B, NULL, out, sizeof out) != 0 &&
	              strstr(out, "CP_SIGNING_KEK_PREVIOUS: required"), "no previous key: %s", out);
	ck_assert_msg(kek_cmd("reseal-keys", KEK_B, KEK, out, sizeof out) == 0, "reseal-keys: %s", out);
	ck_assert_msg(strstr(out, "2 signing key(s) resealed"), "%s", out);
	char *n_old = cp_sql(it_fmt("SELECT count(*) FROM signing_keys WHERE kek_id = '%s'", old_id));
	ck_assert_str_eq(n_old, "0");
	char *audited = cp_sql("SELECT count(*) FROM audit_log WHERE action = 'signing_key.reseal' AND actor_type = 'operator'");
	ck_assert_str_eq(audited, "2");
	ck_assert_msg(kek_cmd("reseal-keys", KEK_B, KEK, out, sizeof out) == 0 && strstr(out, "0 signing key(s) resealed") &&
	              strstr(out, "2 already"), "a second reseal: %s", out);

	/* The new key alone: it starts, and a rotation under it works (the
	 * data plane follows it, never restarted). */
	it_stack_cp_stop(&st);
	const char *const only_b[] = { "CP_SIGNING_KEK=" KEK_B, NULL };
	it_stack_cp_start(&st, only_b);
	ck_assert_msg(kek_cmd("rotate-key", KEK_B, NULL, out, sizeof out) == 0, "rotate-key under the new KEK: %s", out);
	wait_metric("dp_keyset_version", ver + 2);
	expect_served("the data plane after the new KEK");

	/* The old key alone opens nothing any more. */
	ck_assert_msg(serve_refused(KEK, out, sizeof out) && strstr(out, "key-encryption key"),
	              "a replica with the old KEK alone: %s", out);
	/* A reseal from a key that sealed none of them: refused whole. */
	ck_assert_msg(kek_cmd("reseal-keys", KEK_C, KEK, out, sizeof out) != 0 && strstr(out, "nothing was changed"),
	              "a reseal from the wrong key: %s", out);
	char *still = cp_sql(it_fmt("SELECT count(*) FROM signing_keys WHERE kek_id = '%s'", old_id));
	ck_assert_str_eq(still, "0");
	free(still);
	free(audited);
	free(n_old);
	free(old_id);
	it_stack_stop(&st);
}
END_TEST

/* `control-plane rotate-key` with CP_KEY_OVERLAP `overlap`; its exit status. */
static int rotate_with_overlap(const char *overlap, char *out, size_t outlen)
{
	char bin[1024], db[600], ov[64];
	it_bin("control-plane", bin, sizeof bin);
	snprintf(db, sizeof db, "CP_DATABASE_URL=%s", st.cp_db);
	snprintf(ov, sizeof ov, "CP_KEY_OVERLAP=%s", overlap);
	char *argv[] = { bin, "rotate-key", NULL };
	const char *const env[] = { db, "CP_SIGNING_KEK=" KEK, ov, NULL };
	return it_run("rotate-key", argv, env, out, outlen);
}

/* With CP_KEY_OVERLAP 0 a key that was not staged first could not be
 * followed (the key it replaces leaves the set at once): rotate-key
 * refuses it and changes nothing; staged first, it goes through. The
 * smallest overlap (1 s) lets an unstaged rotation through. */
START_TEST(rotation_unstaged_without_overlap_refused)
{
	char out[4096];
	const char *const cp_env[] = { "CP_SIGNING_KEK=" KEK, NULL };
	it_stack_start(&st, "eu", cp_env, NULL);
	char *k1 = cp_sql("SELECT kid FROM signing_keys WHERE state = 'current'");
	ck_assert_msg(rotate_with_overlap("0", out, sizeof out) != 0 && strstr(out, "no key is staged"),
	              "rotate-key, nothing staged, no overlap: %s", out);
	char *still = cp_sql("SELECT kid || ' ' || (SELECT count(*) FROM signing_keys) FROM signing_keys WHERE state = 'current'");
	ck_assert_str_eq(still, it_fmt("%s 1", k1));
	key_cmd("stage-key", NULL);
	ck_assert_msg(rotate_with_overlap("0", out, sizeof out) == 0, "rotate-key of a staged key, no overlap: %s", out);
	ck_assert_msg(rotate_with_overlap("1s", out, sizeof out) == 0, "rotate-key, nothing staged, 1 s overlap: %s", out);
	char *n = cp_sql("SELECT count(*) FROM signing_keys");
	ck_assert_str_eq(n, "3");
	free(n);
	free(still);
	free(k1);
	it_stack_stop(&st);
}
END_TEST

Suite *rotation_suite(void)
{
	Suite *s = suite_create("key-rotation");
	const TTest *const tests[] = { rotation_without_restarts, kek_replaced_without_restarts_of_data_planes,
		                           rotation_unstaged_without_overlap_refused };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 120);
	return s;
}
