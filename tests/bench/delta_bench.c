/* delta-bench: what a cell of N tenants x 3 keys costs a data plane per
 * change, with delta documents and, as the same-run baseline, with a full
 * document per change.
 *   delta-bench [TENANTS (1000000)] [CHANGES (50)]
 * Builds and signs the full document in process (the control plane's
 * share, without its database), verifies and applies it as a data plane
 * does, then CHANGES times revokes one key of a random tenant: builds and
 * signs the delta, verifies and applies it on the state in use. Prints:
 *   full_build_s full_apply_s full_bytes delta_apply_p50_ms delta_apply_p99_ms
 *   delta_bytes_max delta_build_p99_ms rss_full_mb rss_layered_mb
 *   lookup_full_ns lookup_layered_ns */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "bench_clock.h"
#include "cfgdoc.h"
#include "jwk.h"
#include "secret.h"

#define ISS "celltrail-control-plane"

static long rss_mb(void)
{
	return rss_kb() / 1024;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void tenant_id(size_t i, char out[37])
{
	snprintf(out, 37, "%08x-0000-4000-8000-%012x", (unsigned)(i / 65536) & 0xfffffffu, (unsigned)i);
}

static void key_id(size_t i, int k, char out[25])
{
	snprintf(out, 25, "%021x%03u", (unsigned)i, (unsigned)k % 1000u);
}

/* One tenant's record with its keys from `first` on (3 = none). */
static void record(struct buf *b, size_t i, int first)
{
	char id[37], kid[25], slug[32];
	unsigned char sha[32];
	tenant_id(i, id);
	snprintf(slug, sizeof slug, "tenant-%zu", i);
	if (cfgdoc_add_tenant(b, id, slug, "active", i % 2 ? "pro" : "free") != 0)
		abort();
	for (int k = first; k < 3; k++) {
		key_id(i, k, kid);
		secret_sha256(kid, 24, sha);
		if (cfgdoc_add_key(b, kid, sha, 1, 1, 0) != 0)
			abort();
	}
}

static json_t *claims(int64_t ver)
{
	json_t *dir = json_array(), *plans = json_object();
	json_t *region = json_pack("{ss ss ss ss si}", "name", "eu", "display_name", "EU", "endpoint_url",
	                           "https://eu.example.test", "status", "active", "wave", 1);
	if (cfgdoc_directory_add(dir, "eu", "https://eu.example.test", "active") ||
	    cfgdoc_plans_add(plans, "pro", 100, 200, 1000000, 30) || cfgdoc_plans_add(plans, "free", 5, 10, 1000, 7))
		abort();
	struct cfgdoc_head head = { .iss = ISS, .aud = "eu", .jti = "bench", .iat = time(NULL),
		                        .exp = time(NULL) + 3600, .ver = ver };
	json_t *c = cfgdoc_claims(&head, region, dir, plans);
	json_decref(region);
	return c;
}

static int add_hash(const char *rec, size_t len, void *arg)
{
	unsigned char h[32];
	cfgdoc_record_hash(rec, len, h);
	cfgdoc_sum_add(arg, h);
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
	int changes = argc > 2 ? atoi(argv[2]) : 50;
	struct jwk key;
	struct cfgdoc_trust trust = { 0 };
	char detail[256], digest[CFGDOC_DIGEST_LEN + 1], err[128];

	if (n < 1 || changes < 1 || jwk_generate(&key) != 0)
		return 2;
	trust.keys = calloc(1, sizeof *trust.keys);
	json_t *pub = jwk_public_json(&key);
	if (!trust.keys || jwk_from_json(pub, &trust.keys[0], err, sizeof err) != 0)
		return 1;
	json_decref(pub);
	trust.n = 1;
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = "eu", .now = time(NULL), .skew = 60,
	                                .no_token = 1 /* as a data plane verifies */ };

	/* The full document: records, their sum, digest, signature. */
	double t0 = now_s();
	struct buf text = { 0 };
	text.cap = n * 200 + 64;
	text.p = malloc(text.cap);
	text.p[0] = '\0';
	for (size_t i = 0; i < n; i++)
		record(&text, i, 0);
	struct cfgdoc_sum sum = { 0 };
	cfgdoc_each_record(text.p, text.len, add_hash, &sum);
	json_t *c = claims(1);
	if (cfgdoc_state_digest(c, &sum, digest) != 0 || json_object_set_new(c, "digest", json_string(digest)))
		return 1;
	char *full = cfgdoc_sign_text(&key, c, "tenants", text.p);
	json_decref(c);
	double full_build = now_s() - t0;
	if (!full)
		return 1;
	size_t full_bytes = strlen(full);

	/* A data plane applies it (the baseline: one of these per change). */
	long rss0 = rss_mb();
	struct cfgdoc *state = NULL;
	int is_delta;
	t0 = now_s();
	enum cfgdoc_result r = cfgdoc_verify_any(full, full_bytes, &trust, &o, NULL, &state, &is_delta, detail,
	                                         sizeof detail);
	double full_apply = now_s() - t0;
	if (r != CFGDOC_OK) {
		fprintf(stderr, "full refused: %s\n", detail);
		return 1;
	}
	long rss_full = rss_mb() - rss0;
	free(full);

	/* Lookups of every key's id in a random order, on the full state. */
	size_t probes = n < 1000000 ? n : 1000000;
	char (*ids)[25] = malloc(probes * sizeof *ids);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < probes; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		key_id(x % n, (int)(x % 3), ids[i]);
	}
	size_t hits = 0;
	t0 = now_s();
	for (size_t i = 0; i < probes; i++)
		hits += cfgdoc_find_key(state, ids[i]) != NULL;
	double look_full = (now_s() - t0) / (double)probes * 1e9;

	/* Changes: one key of a random tenant revoked each time. */
	double *apply_ms = calloc((size_t)changes, sizeof *apply_ms);
	double *build_ms = calloc((size_t)changes, sizeof *build_ms);
	size_t max_bytes = 0;
	for (int ch = 0; ch < changes; ch++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t i = x % n;
		const struct cfgdoc_tenant *t;
		char id[37];
		tenant_id(i, id);
		t0 = now_s();
		/* The control plane's in-memory part: the tenant's new record, the
		 * sum updated with it, the claims, the digest, the signature. */
		t = cfgdoc_find_tenant(state, id);
		struct buf old = { 0 }, up = { 0 };
		record(&old, i, 3 - (int)t->nkeys);
		record(&up, i, 3 - (int)t->nkeys + (t->nkeys > 0));
		unsigned char h[32];
		cfgdoc_record_hash(old.p, old.len, h);
		cfgdoc_sum_sub(&sum, h);
		cfgdoc_record_hash(up.p, up.len, h);
		cfgdoc_sum_add(&sum, h);
		c = claims(2 + ch);
		if (cfgdoc_state_digest(c, &sum, digest) != 0 || cfgdoc_delta_claims(c, 1 + ch, NULL, digest) != 0)
			return 1;
		char *tok = cfgdoc_sign_text(&key, c, "upsert", up.p);
		json_decref(c);
		build_ms[ch] = (now_s() - t0) * 1e3;
		buf_free(&old);
		buf_free(&up);
		if (strlen(tok) > max_bytes)
			max_bytes = strlen(tok);
		struct cfgdoc *next = NULL;
		t0 = now_s();
		r = cfgdoc_verify_any(tok, strlen(tok), &trust, &o, state, &next, &is_delta, detail, sizeof detail);
		apply_ms[ch] = (now_s() - t0) * 1e3;
		free(tok);
		if (r != CFGDOC_OK || !is_delta) {
			fprintf(stderr, "delta %d refused: %s\n", ch, detail);
			return 1;
		}
		cfgdoc_free(state);
		state = next;
	}
	long rss_layered = rss_mb() - rss0;
	t0 = now_s();
	for (size_t i = 0; i < probes; i++)
		hits += cfgdoc_find_key(state, ids[i]) != NULL;
	double look_layered = (now_s() - t0) / (double)probes * 1e9;
	qsort(apply_ms, (size_t)changes, sizeof *apply_ms, cmp_d);
	qsort(build_ms, (size_t)changes, sizeof *build_ms, cmp_d);
	size_t p99 = (size_t)changes * 99 / 100;
	printf("%.3f %.3f %zu %.3f %.3f %zu %.3f %ld %ld %.0f %.0f\n", full_build, full_apply, full_bytes,
	       apply_ms[changes / 2], apply_ms[p99 < (size_t)changes ? p99 : (size_t)changes - 1], max_bytes,
	       build_ms[p99 < (size_t)changes ? p99 : (size_t)changes - 1], rss_full, rss_layered, look_full,
	       look_layered);
	fprintf(stderr, "delta-bench: %zu lookups hit\n", hits);
	cfgdoc_free(state);
	free(apply_ms);
	free(build_ms);
	free(ids);
	buf_free(&text);
	cfgdoc_trust_free(&trust);
	jwk_clear(&key);
	return 0;
}
