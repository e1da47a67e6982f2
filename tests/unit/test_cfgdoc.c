/* Unit tests of common/cfgdoc: the signed regional configuration document
 * a data plane accepts only when it is genuine, meant for its region, fresh
 * and newer than what it serves. */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "jws.h"
#include "jwk.h"
#include "secret.h"
#include "unit.h"

#define ISS "celltrail-control-plane"
#define T1 "11111111-1111-4111-8111-111111111111"
#define T2 "22222222-2222-4222-8222-222222222222"
#define T3 "33333333-3333-4333-8333-333333333333"
#define K1 "aaaaaaaaaaaaaaaaaaaaaaa1"
#define K2 "aaaaaaaaaaaaaaaaaaaaaaa2"
#define K3 "aaaaaaaaaaaaaaaaaaaaaaa3"

static struct jwk trusted, stranger;
static struct cfgdoc_trust trust;
static char bundle_path[64];
static int64_t now;

static void setup(void)
{
	now = (int64_t)time(NULL);
	ck_assert_int_eq(jwk_generate(&trusted), 0);
	ck_assert_int_eq(jwk_generate(&stranger), 0);
	/* The trust bundle is a JWK set file, as a data plane is given it. */
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(&trusted));
	snprintf(bundle_path, sizeof bundle_path, "/tmp/cfgdoc-trust-XXXXXX");
	int fd = mkstemp(bundle_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(json_dump_file(set, bundle_path, 0), 0);
	json_decref(set);
	char err[256];
	ck_assert_msg(cfgdoc_trust_load(bundle_path, &trust, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
	cfgdoc_trust_free(&trust);
	jwk_clear(&trusted);
	jwk_clear(&stranger);
	unlink(bundle_path);
}

/* The claims of a document for `region`, addressed to `aud`. */
static json_t *claims(const char *region, const char *aud, int64_t ver, int64_t exp)
{
	return json_pack("{ss ss sI sI sI ss sI si ss"
	                 " s{ss ss ss ss si}"
	                 " s[[sss][sss]]"
	                 " s{s[iiii] s[iiii]}}",
	                 "iss", ISS, "aud", aud, "iat", (json_int_t)now, "nbf", (json_int_t)now - 5,
	                 "exp", (json_int_t)exp, "jti", "doc-1", "ver", (json_int_t)ver, "fmt", 1,
	                 "kind", "full",
	                 "region", "name", region, "display_name", "Region", "endpoint_url",
	                 "https://us.example.test", "status", "active", "wave", 1,
	                 "directory", "us", "https://us.example.test", "active", "eu",
	                 "https://eu.example.test", "active",
	                 "plans", "pro", 100, 200, 1000000, 30, "free", 5, 10, 1000, 7);
}

static unsigned char sha_a[32], sha_b[32];

/* Two tenants with keys (one suspended), built as the control plane does. */
static char *tenants_text(void)
{
	struct buf b = { 0 };
	secret_sha256("secret-a", 8, sha_a);
	secret_sha256("secret-b", 8, sha_b);
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T1, "acme", "active", "pro"), 0);
	ck_assert_int_eq(cfgdoc_add_key(&b, K1, sha_a, 1, 1, 0), 0);
	ck_assert_int_eq(cfgdoc_add_key(&b, K2, sha_b, 0, 1, now + 3600), 0);
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T2, "paused", "suspended", "free"), 0);
	ck_assert_int_eq(cfgdoc_add_key(&b, K3, sha_a, 1, 0, 0), 0);
	char *t = buf_take(&b);
	ck_assert_ptr_nonnull(t);
	return t;
}

static char *sign_with(const struct jwk *key, json_t *c, const char *tenants)
{
	char *tok = cfgdoc_sign(key, c, tenants);
	json_decref(c);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

/* A well-formed document of region us, version `ver`. */
static char *good(int64_t ver)
{
	char *t = tenants_text();
	char *tok = sign_with(&trusted, claims("us", "us", ver, now + 3600), t);
	free(t);
	return tok;
}

static struct cfgdoc_verify_opts opts(int64_t min_version)
{
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = "us", .now = now, .skew = 60,
		                            .min_version = min_version, .max_bytes = 1 << 20 };
	return o;
}

static enum cfgdoc_result verify_o(const char *tok, size_t len, const struct cfgdoc_verify_opts *o)
{
	struct cfgdoc *d = (struct cfgdoc *)1;
	char detail[256];
	enum cfgdoc_result r = cfgdoc_verify(tok, len, &trust, o, &d, detail, sizeof detail);
	ck_assert_msg((r == CFGDOC_OK) == (d != NULL), "result %s but document %p (%s)",
	              cfgdoc_result_names[r], (void *)d, detail);
	ck_assert(detail[0]);
	cfgdoc_free(d);
	return r;
}

static enum cfgdoc_result verify(const char *tok, int64_t min_version)
{
	struct cfgdoc_verify_opts o = opts(min_version);
	return verify_o(tok, strlen(tok), &o);
}

#define ck_result(got, want) \
	ck_assert_msg((got) == (want), "got %s, want %s", cfgdoc_result_names[got], cfgdoc_result_names[want])

START_TEST(accepts_and_indexes)
{
	/* A genuine document is accepted and every tenant and key can be found by id. */
	char *tok = good(7), detail[256];
	struct cfgdoc_verify_opts o = opts(6);
	struct cfgdoc *d;

	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
	ck_assert_int_eq(d->ver, 7);
	ck_assert_int_eq(d->iat, now);
	ck_assert_int_eq(d->exp, now + 3600);
	ck_assert_str_eq(d->kid, trusted.kid);
	ck_assert_str_eq(d->self.name, "us");
	ck_assert_uint_eq(d->ntenants, 2);
	ck_assert_uint_eq(d->nkeys, 3);
	ck_assert_uint_eq(d->token_len, strlen(tok));
	ck_assert(memcmp(d->token, tok, d->token_len) == 0);

	const struct cfgdoc_key *k = cfgdoc_find_key(d, K2);
	ck_assert_ptr_nonnull(k);
	ck_assert(memcmp(k->sha256, sha_b, 32) == 0);
	ck_assert_uint_eq(k->scopes, CFGDOC_SCOPE_READ);
	ck_assert_int_eq(k->expires, now + 3600);
	const struct cfgdoc_tenant *t = &d->tenants[k->tenant];
	ck_assert_str_eq(t->id, T1);
	ck_assert_str_eq(t->slug, "acme");
	ck_assert_int_eq(t->status, 'a');
	ck_assert_str_eq(d->plans[t->plan].id, "pro");
	ck_assert_int_eq(d->plans[t->plan].rate, 100);
	ck_assert_int_eq(d->plans[t->plan].retention_days, 30);

	k = cfgdoc_find_key(d, K3);
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->scopes, CFGDOC_SCOPE_WRITE);
	ck_assert_str_eq(d->tenants[k->tenant].id, T2);
	ck_assert_int_eq(d->tenants[k->tenant].status, 's');
	ck_assert_uint_eq(cfgdoc_find_key(d, K1)->scopes, CFGDOC_SCOPE_READ | CFGDOC_SCOPE_WRITE);
	ck_assert_ptr_null(cfgdoc_find_key(d, "aaaaaaaaaaaaaaaaaaaaaaa4"));
	ck_assert_ptr_eq(cfgdoc_find_tenant(d, T2), &d->tenants[1]);
	ck_assert_ptr_null(cfgdoc_find_tenant(d, T3));

	const struct cfgdoc_region *r = cfgdoc_find_region(d, "eu");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->endpoint, "https://eu.example.test");
	ck_assert_ptr_null(cfgdoc_find_region(d, "jp"));
	cfgdoc_free(d);
	free(tok);
}
END_TEST

static int pauses;
static void count_pause(void)
{
	pauses++;
}

START_TEST(many_tenants_index)
{
	/* A region with thousands of tenants still finds each key (the tables grow). */
	struct buf b = { 0 };
	unsigned char h[32] = { 1 };
	char id[37], kid[25], slug[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof id, "%08x-0000-4000-8000-000000000000", i);
		snprintf(slug, sizeof slug, "tenant-%d", i);
		snprintf(kid, sizeof kid, "%024x", i);
		ck_assert_int_eq(cfgdoc_add_tenant(&b, id, slug, "active", "free"), 0);
		ck_assert_int_eq(cfgdoc_add_key(&b, kid, h, 1, 1, 0), 0);
	}
	char *text = buf_take(&b), detail[256];
	char *tok = sign_with(&trusted, claims("us", "us", 1, now + 60), text);
	struct cfgdoc_verify_opts o = opts(0);
	struct cfgdoc *d;
	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
	ck_assert_uint_eq(d->nkeys, 3000);
	for (int i = 0; i < 3000; i++) {
		snprintf(kid, sizeof kid, "%024x", i);
		const struct cfgdoc_key *k = cfgdoc_find_key(d, kid);
		ck_assert_ptr_nonnull(k);
		ck_assert_uint_eq(k->tenant, (unsigned)i);
	}
	/* The holder of the verified bytes gets them back whole, */
	ck_assert_uint_eq(d->token_len, strlen(tok));
	ck_assert_str_eq(d->token, tok);
	cfgdoc_free(d);
	/* or no copy with no_token; a pause every CFGDOC_PAUSE_EVERY records
	 * hashed (3000 tenants) and parsed (6000 lines), the same state. */
	pauses = 0;
	o.no_token = 1;
	o.pause = count_pause;
	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
	ck_assert_ptr_null(d->token);
	ck_assert_uint_eq(d->token_len, 0);
	ck_assert_int_eq(pauses, 3000 / CFGDOC_PAUSE_EVERY + 6000 / CFGDOC_PAUSE_EVERY);
	ck_assert_uint_eq(d->nkeys, 3000);
	ck_assert_ptr_nonnull(cfgdoc_find_key(d, kid));
	cfgdoc_free(d);
	free(tok);
	free(text);
}
END_TEST

START_TEST(large_document_in_pieces)
{
	/* A document of several megabytes is decoded and hashed a megabyte at
	 * a time: the same state, and a pause between every two pieces; with
	 * the payload's last piece ending on each length base64url allows
	 * (4k, 4k + 2, 4k + 3 characters: the first slug's length moves it). */
	const int n = 12000;
	unsigned seen = 0;
	for (int pad = 0; pad < 12 && seen != (1u << 0 | 1u << 2 | 1u << 3); pad++) {
		struct buf b = { 0 };
		unsigned char h[32] = { 7 };
		char id[37], kid[25], slug[48];
		for (int i = 0; i < n; i++) {
			snprintf(id, sizeof id, "%08x-0000-4000-8000-000000000001", i);
			snprintf(slug, sizeof slug, "large-%d%.*s", i, i ? 0 : pad, "xxxxxxxxxxxxxxxx");
			snprintf(kid, sizeof kid, "%024x", i + 1);
			ck_assert_int_eq(cfgdoc_add_tenant(&b, id, slug, "active", "free"), 0);
			ck_assert_int_eq(cfgdoc_add_key(&b, kid, h, 1, 0, 0), 0);
		}
		char *text = buf_take(&b), detail[256];
		char *tok = sign_with(&trusted, claims("us", "us", 1, now + 60), text);
		const char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
		size_t p64 = (size_t)(dot2 - dot1 - 1), input = (size_t)(dot2 - tok);
		ck_assert_uint_gt(p64, 2 * JWS_PACE_BYTES);
		if (seen & 1u << (p64 % 4)) {
			free(tok);
			free(text);
			continue;
		}
		seen |= 1u << (p64 % 4);
		struct cfgdoc_verify_opts o = opts(0);
		o.max_bytes = 0;
		o.pause = count_pause;
		pauses = 0;
		struct cfgdoc *d;
		ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
		size_t pieces = (p64 + JWS_PACE_BYTES - 1) / JWS_PACE_BYTES + (input + JWS_PACE_BYTES - 1) / JWS_PACE_BYTES;
		ck_assert_int_eq(pauses, (int)(pieces - 2) + n / CFGDOC_PAUSE_EVERY + 2 * n / CFGDOC_PAUSE_EVERY);
		ck_assert_uint_eq(d->ntenants, (size_t)n);
		ck_assert_uint_eq(strlen(d->tenants[0].slug), 7 + (size_t)pad);
		for (int i = 0; i < n; i += 997) {
			snprintf(kid, sizeof kid, "%024x", i + 1);
			const struct cfgdoc_key *k = cfgdoc_find_key(d, kid);
			ck_assert_ptr_nonnull(k);
			ck_assert_uint_eq(k->tenant, (unsigned)i);
			if (i) {
				snprintf(slug, sizeof slug, "large-%d", i);
				ck_assert_str_eq(d->tenants[i].slug, slug);
			}
		}
		cfgdoc_free(d);
		free(tok);
		free(text);
	}
	ck_assert_uint_eq(seen, 1u << 0 | 1u << 2 | 1u << 3);
}
END_TEST

/* "<header>.<payload>.<signature>" split at the dots (pointers into tok). */
static void segments(const char *tok, const char **p, size_t *plen, const char **s)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	*p = d1 + 1;
	*plen = (size_t)(d2 - d1 - 1);
	*s = d2 + 1;
}

START_TEST(refuses_alg_none)
{
	/* A token that claims to need no signature is refused before anything else. */
	char *tok = good(7), hdr[256], forged[65536];
	const char *payload, *sig;
	size_t plen;
	segments(tok, &payload, &plen, &sig);

	static const char *const headers[] = {
		"{\"alg\":\"none\"}",
		"{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		"{\"alg\":\"None\",\"kid\":\"%s\"}",
		"{\"kid\":\"%s\"}",
	};
	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
		char json[256];
		snprintf(json, sizeof json, headers[i], trusted.kid);
		secret_b64url(json, strlen(json), hdr);
		snprintf(forged, sizeof forged, "%s.%.*s.", hdr, (int)plen, payload);
		ck_result(verify(forged, 0), CFGDOC_BAD_ALG);
		/* Keeping the genuine signature does not help either. */
		snprintf(forged, sizeof forged, "%s.%.*s.%s", hdr, (int)plen, payload, sig);
		ck_result(verify(forged, 0), CFGDOC_BAD_ALG);
	}
	free(tok);
}
END_TEST

START_TEST(refuses_hs256_with_public_key)
{
	/* The classic key-confusion forgery: HMAC keyed with the public PEM. */
	jwt_t *jwt;
	json_t *c = claims("us", "us", 9, now + 3600);
	char *cj = json_dumps(c, JSON_COMPACT), *t = tenants_text();
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, cj), 0);
	ck_assert_int_eq(jwt_add_grant(jwt, "tenants", t), 0);
	ck_assert_int_eq(jwt_add_header(jwt, "kid", trusted.kid), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)trusted.public_pem,
	                             (int)strlen(trusted.public_pem)),
	                 0);
	char *tok = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(tok);
	ck_result(verify(tok, 0), CFGDOC_BAD_ALG);
	free(tok);
	jwt_free(jwt);
	free(cj);
	free(t);
	json_decref(c);
}
END_TEST

START_TEST(refuses_unknown_kid)
{
	/* A document signed by a key outside the trust bundle is refused. */
	char *t = tenants_text();
	char *tok = sign_with(&stranger, claims("us", "us", 7, now + 3600), t);
	ck_result(verify(tok, 0), CFGDOC_UNKNOWN_KID);
	free(tok);
	free(t);
}
END_TEST

START_TEST(refuses_spliced_payload)
{
	/* A genuine signature does not vouch for another document's payload. */
	char *a = good(7), *b = good(8), spliced[65536];
	const char *pa, *sa, *pb, *sb;
	size_t la, lb;
	segments(a, &pa, &la, &sa);
	segments(b, &pb, &lb, &sb);
	snprintf(spliced, sizeof spliced, "%.*s%.*s.%s", (int)(pa - a), a, (int)lb, pb, sa);
	ck_result(verify(spliced, 0), CFGDOC_BAD_SIGNATURE);
	/* One flipped character of the signature. */
	free(b);
	b = strdup(a);
	size_t n = strlen(b);
	b[n - 5] = b[n - 5] == 'A' ? 'B' : 'A';
	ck_result(verify(b, 0), CFGDOC_BAD_SIGNATURE);
	/* No signature, a zero one, one too long, and one that is not base64url. */
	const char *pa2, *sa2;
	size_t la2;
	segments(a, &pa2, &la2, &sa2);
	static const char *const sigs[] = {
		"", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"!!!!",
	};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		snprintf(spliced, sizeof spliced, "%.*s%s", (int)(sa2 - a), a, sigs[i]);
		ck_result(verify(spliced, 0), CFGDOC_BAD_SIGNATURE);
	}
	free(a);
	free(b);
}
END_TEST

START_TEST(refuses_trusted_kid_with_other_key)
{
	/* Naming a trusted key in the header does not make another key's
	 * signature valid. */
	jwt_t *jwt;
	json_t *c = claims("us", "us", 9, now + 3600);
	char *cj = json_dumps(c, JSON_COMPACT), *t = tenants_text();
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, cj), 0);
	ck_assert_int_eq(jwt_add_grant(jwt, "tenants", t), 0);
	ck_assert_int_eq(jwt_add_header(jwt, "kid", trusted.kid), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)stranger.private_pem,
	                             (int)strlen(stranger.private_pem)),
	                 0);
	char *tok = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(tok);
	ck_result(verify(tok, 0), CFGDOC_BAD_SIGNATURE);
	free(tok);
	/* The same made with the trusted key verifies: libjwt and cfgdoc agree on ES256. */
	ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)trusted.private_pem,
	                             (int)strlen(trusted.private_pem)),
	                 0);
	tok = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(tok);
	ck_result(verify(tok, 0), CFGDOC_OK);
	free(tok);
	jwt_free(jwt);
	free(cj);
	free(t);
	json_decref(c);
}
END_TEST

START_TEST(refuses_other_region)
{
	/* A region never accepts another region's document, even genuinely signed. */
	char *t = tenants_text();
	char *tok = sign_with(&trusted, claims("eu", "eu", 7, now + 3600), t);
	ck_result(verify(tok, 0), CFGDOC_WRONG_AUDIENCE);
	free(tok);
	/* Addressed to us but carrying eu's region record. */
	tok = sign_with(&trusted, claims("eu", "us", 7, now + 3600), t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	free(t);
}
END_TEST

START_TEST(refuses_bad_issuer_and_time)
{
	/* Only the control plane's issuer, and only inside the validity window. */
	char *t = tenants_text();
	json_t *c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "iss", json_string("someone-else"));
	char *tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_ISSUER);
	free(tok);

	c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "nbf", json_integer(now + 600));
	tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_NOT_YET_VALID);
	free(tok);

	c = claims("us", "us", 7, now + 3600);
	json_object_del(c, "ver");
	tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	free(t);
}
END_TEST

START_TEST(refuses_expired)
{
	/* A document past exp (beyond the allowed skew) is refused for serving,
	 * but a cached one may still be loaded at start-up and reported stale. */
	char *t = tenants_text();
	char *tok = sign_with(&trusted, claims("us", "us", 7, now - 3600), t);
	ck_result(verify(tok, 0), CFGDOC_EXPIRED);
	struct cfgdoc_verify_opts o = opts(0);
	o.allow_expired = 1;
	ck_result(verify_o(tok, strlen(tok), &o), CFGDOC_OK);
	free(tok);
	/* Within the skew it is still accepted. */
	tok = sign_with(&trusted, claims("us", "us", 7, now - 30), t);
	ck_result(verify(tok, 0), CFGDOC_OK);
	free(tok);
	free(t);
}
END_TEST

START_TEST(refuses_rollback)
{
	/* A replayed or older document never replaces a newer one. */
	char *tok = good(7);
	ck_result(verify(tok, 7), CFGDOC_ROLLBACK);
	ck_result(verify(tok, 8), CFGDOC_ROLLBACK);
	ck_result(verify(tok, 6), CFGDOC_OK);
	free(tok);
	tok = good(0);
	ck_result(verify(tok, 0), CFGDOC_ROLLBACK);
	free(tok);
}
END_TEST

START_TEST(refuses_truncated_and_garbage)
{
	/* A token cut short by a network or disk fault is never accepted. */
	char *tok = good(7);
	size_t n = strlen(tok);
	struct cfgdoc_verify_opts o = opts(0);
	for (size_t cut = 0; cut < n; cut += (cut < 64 || n - cut < 64) ? 1 : 97)
		ck_assert_msg(verify_o(tok, cut, &o) != CFGDOC_OK, "accepted a token cut at %zu", cut);
	ck_result(verify_o(tok, n - 10, &o), CFGDOC_BAD_SIGNATURE);
	ck_result(verify_o(tok, (size_t)(strrchr(tok, '.') - tok), &o), CFGDOC_MALFORMED);
	ck_result(verify_o(tok, 0, &o), CFGDOC_MALFORMED);
	/* Larger than the cap. */
	o.max_bytes = n - 1;
	ck_result(verify_o(tok, n, &o), CFGDOC_MALFORMED);
	free(tok);

	static const char *const junk[] = { "", "garbage", "a.b.c", "..", "...", "a.b.c.d",
		                                "{}.{}.{}", "\xff\xfe.\x01.\x02",
		                                "W10.e30.", "bnVsbA.e30." };
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
		ck_assert_msg(verify(junk[i], 0) == CFGDOC_MALFORMED, "junk %zu: %s", i,
		              cfgdoc_result_names[verify(junk[i], 0)]);
	/* A header without kid names no trusted key. */
	ck_result(verify("eyJhbGciOiJFUzI1NiJ9.e30.", 0), CFGDOC_UNKNOWN_KID);
	/* An embedded NUL. */
	o.max_bytes = 0;
	ck_result(verify_o("a\0b.c.d", 7, &o), CFGDOC_MALFORMED);
}
END_TEST

/* Signs `text` as the tenants of an otherwise good document and verifies it. */
static enum cfgdoc_result verify_tenants(const char *text)
{
	char *tok = sign_with(&trusted, claims("us", "us", 7, now + 3600), text);
	enum cfgdoc_result r = verify(tok, 0);
	free(tok);
	return r;
}

START_TEST(refuses_malformed_tenants)
{
	/* A document whose tenant records are inconsistent is refused as a
	 * whole: no half-understood set of keys is ever served. */
	char h[48], text[1024];
	unsigned char sha[32] = { 7 };
	secret_b64url(sha, 32, h);

	snprintf(text, sizeof text, "t|%s|acme|a|pro;k|%s|%s|wr|0;", T1, K1, h);
	ck_result(verify_tenants(text), CFGDOC_OK);
	ck_result(verify_tenants(""), CFGDOC_OK);

	/* HASH stands for a well-formed hash. */
	static const char *const bad[] = {
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH|wr|0;k|" K1 "|HASH|r|0;",           /* duplicate key id */
		"t|" T1 "|acme|a|pro;t|" T2 "|beta|a|pro;k|" K1 "|HASH|w|0;k|" K1 "|HASH|r|0;",
		"k|" K1 "|HASH|wr|0;t|" T1 "|acme|a|pro;",                          /* k before any t */
		"t|" T1 "|acme|a|pro;t|" T1 "|acme2|a|pro;",                        /* duplicate tenant */
		"t|" T1 "|acme|a|pro;k|" K1 "|AAAA|wr|0;",                          /* hash too short */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH!|wr|0;",                         /* not base64url */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASHAAAA|wr|0;",                      /* hash too long */
		"t|" T1 "|acme|a|pro;k|" K1 "||wr|0;",                              /* no hash */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH|x|0;",                           /* bad scopes */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH||0;",                            /* no scopes */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH|wr|-1;",                         /* bad expiry */
		"t|" T1 "|acme|a|pro;k|AAAAAAAAAAAAAAAAAAAAAAA1|HASH|wr|0;",        /* key id not lower hex */
		"t|" T1 "|acme|a|pro;k|aaaa|HASH|wr|0;",                            /* key id too short */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH|wr|0|extra;",                    /* extra field */
		"t|" T1 "|acme|a;",                                                  /* missing field */
		"t|" T1 "|acme|x|pro;",                                              /* bad status */
		"t|" T1 "|acme|a|gold;",                                             /* unknown plan */
		"t|not-a-uuid|acme|a|pro;",                                          /* bad tenant id */
		"t|" T1 "|Acme!|a|pro;",                                             /* bad slug */
		"t|" T1 "|acme|a|pro;;k|" K1 "|HASH|wr|0;",                         /* empty record */
		"t|" T1 "|acme|a|pro;k|" K1 "|HASH|wr|0",                            /* record not ended */
		"x|" T1 "|acme|a|pro;",                                              /* unknown record */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf b = { 0 };
		for (const char *p = bad[i]; *p;) {
			if (!strncmp(p, "HASH", 4)) {
				buf_append(&b, h, strlen(h));
				p += 4;
			} else {
				buf_append(&b, p++, 1);
			}
		}
		snprintf(text, sizeof text, "%s", b.p);
		buf_free(&b);
		enum cfgdoc_result r = verify_tenants(text);
		ck_assert_msg(r == CFGDOC_BAD_CONTENT, "case %zu: %s", i, cfgdoc_result_names[r]);
	}
}
END_TEST

START_TEST(refuses_unknown_format)
{
	/* A document of a format or kind this data plane does not know is refused. */
	char *t = tenants_text();
	json_t *c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "fmt", json_integer(2));
	char *tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "kind", json_string("delta"));
	tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "directory", json_pack("[[ss]]", "eu", "https://eu.example.test"));
	tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	c = claims("us", "us", 7, now + 3600);
	json_object_set_new(c, "plans", json_pack("{s[iii]}", "pro", 1, 2, 3));
	tok = sign_with(&trusted, c, t);
	ck_result(verify(tok, 0), CFGDOC_BAD_CONTENT);
	free(tok);
	free(t);
}
END_TEST

START_TEST(builder_matches_verifier)
{
	/* The claims the control plane builds with cfgdoc_claims() are the ones
	 * the verifier reads: every member comes back as it went in. */
	json_t *region = json_pack("{ss ss ss ss si}", "name", "us", "display_name", "US",
	                           "endpoint_url", "https://us.example.test", "status", "active", "wave", 2);
	json_t *dir = json_array(), *plans = json_object();
	ck_assert_int_eq(cfgdoc_directory_add(dir, "eu", "https://eu.example.test", "draining"), 0);
	ck_assert_int_eq(cfgdoc_directory_add(dir, "us", "https://us.example.test", "active"), 0);
	ck_assert_int_eq(cfgdoc_plans_add(plans, "pro", 100, 200, INT64_C(1000000000000), 30), 0);
	ck_assert_int_eq(cfgdoc_plans_add(plans, "free", 5, 10, 1000, 7), 0);
	struct cfgdoc_head head = { .iss = ISS, .aud = "us", .jti = "doc-9", .iat = now,
		                        .exp = now + 3600, .ver = 9 };
	json_t *c = cfgdoc_claims(&head, region, dir, plans);
	json_decref(region);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(json_string_value(json_object_get(c, "kind")), CFGDOC_KIND_FULL);
	char *t = tenants_text();
	char *tok = sign_with(&trusted, c, t);
	free(t);
	struct cfgdoc_verify_opts o = opts(8);
	struct cfgdoc *d = NULL;
	char detail[256];
	ck_assert_msg(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail) == CFGDOC_OK,
	              "%s", detail);
	ck_assert_int_eq(d->ver, 9);
	ck_assert_int_eq(d->nbf, now);
	ck_assert_int_eq(d->exp, now + 3600);
	ck_assert_str_eq(d->jti, "doc-9");
	ck_assert_str_eq(d->self.endpoint, "https://us.example.test");
	ck_assert_int_eq(d->ndir, 2);
	ck_assert_str_eq(cfgdoc_find_region(d, "eu")->status, "draining");
	ck_assert_int_eq(d->nplans, 2);
	const struct cfgdoc_plan *pro = !strcmp(d->plans[0].id, "pro") ? &d->plans[0] : &d->plans[1];
	ck_assert_str_eq(pro->id, "pro");
	ck_assert_int_eq(pro->rate, 100);
	ck_assert_int_eq(pro->burst, 200);
	ck_assert_int_eq(pro->quota, INT64_C(1000000000000));
	ck_assert_int_eq(pro->retention_days, 30);
	cfgdoc_free(d);
	free(tok);
	/* A region record without one of its members builds nothing. */
	region = json_pack("{ss}", "name", "us");
	ck_assert_ptr_null(cfgdoc_claims(&head, region, json_array(), json_object()));
	json_decref(region);
}
END_TEST

static int load_bundle(const char *text)
{
	char path[64] = "/tmp/cfgdoc-bundle-XXXXXX", err[256];
	struct cfgdoc_trust t;
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	int rc = cfgdoc_trust_load(path, &t, err, sizeof err);
	if (rc == 0)
		cfgdoc_trust_free(&t);
	else
		ck_assert_msg(strstr(err, path), "error does not name the file: %s", err);
	unlink(path);
	return rc;
}

START_TEST(trust_bundle_checked)
{
	/* A data plane refuses a trust bundle it cannot fully use, saying which file. */
	char err[256], text[1024];
	struct cfgdoc_trust t;
	ck_assert_int_eq(cfgdoc_trust_load("/nonexistent/trust.json", &t, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/trust.json"));
	ck_assert_int_eq(load_bundle("not json"), -1);
	ck_assert_int_eq(load_bundle("{\"keys\": []}"), -1);
	ck_assert_int_eq(load_bundle("[]"), -1);
	snprintf(text, sizeof text,
	         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"wrong\"}]}",
	         trusted.x, trusted.y);
	ck_assert_int_eq(load_bundle(text), -1);
	snprintf(text, sizeof text,
	         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\"}]}",
	         trusted.x, trusted.y, trusted.kid);
	ck_assert_int_eq(load_bundle(text), 0);
	for (int i = 0; i < CFGDOC__COUNT; i++)
		ck_assert_ptr_nonnull(cfgdoc_result_names[i]);
}
END_TEST

/* ---- cell documents ---- */

#define CELL "us-east-1"

/* A document of region us addressed to `aud`, with `cell` (stolen; NULL:
 * no claim) as its cell claim. */
static char *cell_doc(const char *aud, json_t *cell)
{
	json_t *c = claims("us", aud, 7, now + 3600);
	if (cell)
		ck_assert_int_eq(json_object_set_new(c, "cell", cell), 0);
	char *t = tenants_text();
	char *tok = sign_with(&trusted, c, t);
	free(t);
	return tok;
}

static json_t *cell_claim(const char *name, const char *region, const char *kind, const char *status)
{
	return json_pack("{ss ss ss ss}", "name", name, "region", region, "kind", kind, "status", status);
}

static enum cfgdoc_result verify_cell(const char *tok, const char *cell)
{
	struct cfgdoc_verify_opts o = opts(0);
	o.cell = cell;
	return verify_o(tok, strlen(tok), &o);
}

START_TEST(cell_document_accepted)
{
	/* A cell's data plane accepts its cell's document and knows the cell. */
	char *tok = cell_doc(CFGDOC_AUD_CELL CELL, cell_claim(CELL, "us", "dedicated", "draining"));
	struct cfgdoc_verify_opts o = opts(0);
	struct cfgdoc *d;
	char detail[256];
	o.cell = CELL;
	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
	ck_assert_str_eq(d->cell.name, CELL);
	ck_assert_str_eq(d->cell.region, "us");
	ck_assert_str_eq(d->cell.kind, "dedicated");
	ck_assert_str_eq(d->cell.status, "draining");
	ck_assert_uint_eq(d->ntenants, 2);
	cfgdoc_free(d);
	free(tok);
	/* A regional document has no cell. */
	tok = good(7);
	o.cell = NULL;
	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_OK);
	ck_assert_str_eq(d->cell.name, "");
	cfgdoc_free(d);
	free(tok);
}
END_TEST

START_TEST(cell_document_refused)
{
	/* Every document but this cell's of this region is refused: by
	 * audience when it is meant for someone else, as content when its
	 * cell claim is missing or malformed. */
	static const struct {
		const char *aud, *name, *region, *kind, *status; /* name NULL: no claim */
		const char *verifier_cell;                       /* NULL: a regional data plane */
		enum cfgdoc_result want;
	} cases[] = {
		{ "us", NULL, NULL, NULL, NULL, CELL, CFGDOC_WRONG_AUDIENCE },              /* regional doc to a cell */
		{ CFGDOC_AUD_CELL CELL, CELL, "us", "shared", "active", NULL, CFGDOC_WRONG_AUDIENCE }, /* cell doc to the region */
		{ CFGDOC_AUD_CELL "us-west-2", "us-west-2", "us", "shared", "active", CELL, CFGDOC_WRONG_AUDIENCE },
		{ CFGDOC_AUD_CELL CELL, "us-west-2", "us", "shared", "active", CELL, CFGDOC_WRONG_AUDIENCE },
		{ CFGDOC_AUD_CELL CELL, CELL, "eu", "shared", "active", CELL, CFGDOC_WRONG_AUDIENCE },
		{ CFGDOC_AUD_CELL CELL, NULL, NULL, NULL, NULL, CELL, CFGDOC_BAD_CONTENT },
		{ CFGDOC_AUD_CELL CELL, CELL, "us", "huge", "active", CELL, CFGDOC_BAD_CONTENT },
		{ CFGDOC_AUD_CELL CELL, CELL, "us", "shared", "open", CELL, CFGDOC_BAD_CONTENT },
		{ CFGDOC_AUD_CELL CELL, CELL, "US", "shared", "active", CELL, CFGDOC_BAD_CONTENT },
		{ CFGDOC_AUD_CELL "routes:us", CELL, "us", "shared", "active", CELL, CFGDOC_WRONG_AUDIENCE },
		{ CFGDOC_AUD_ROUTES "us", CELL, "us", "shared", "active", CELL, CFGDOC_WRONG_AUDIENCE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *cl = cases[i].name ? cell_claim(cases[i].name, cases[i].region, cases[i].kind, cases[i].status)
		                           : NULL;
		char *tok = cell_doc(cases[i].aud, cl);
		enum cfgdoc_result r = verify_cell(tok, cases[i].verifier_cell);
		ck_assert_msg(r == cases[i].want, "case %zu: %s, want %s", i, cfgdoc_result_names[r],
		              cfgdoc_result_names[cases[i].want]);
		free(tok);
	}
	/* A claim that is not an object, or lacks a member. */
	json_t *shapes[] = { json_string(CELL), json_pack("{ss ss ss}", "name", CELL, "region", "us", "kind", "shared"),
		                 json_pack("{si ss ss ss}", "name", 1, "region", "us", "kind", "shared", "status", "active") };
	for (size_t i = 0; i < 3; i++) {
		char *tok = cell_doc(CFGDOC_AUD_CELL CELL, shapes[i]);
		ck_result(verify_cell(tok, CELL), CFGDOC_BAD_CONTENT);
		free(tok);
	}
}
END_TEST

START_TEST(cell_name_limits)
{
	/* A cell name of 2 to 63 characters, a region of up to 32: both ends. */
	char c63[64], c64[65], r32[33], r33[34];
	memset(c63, 'c', 63), c63[63] = '\0';
	memset(c64, 'c', 64), c64[64] = '\0';
	memset(r32, 'r', 32), r32[32] = '\0';
	memset(r33, 'r', 33), r33[33] = '\0';
	static const char *const names[] = { "ab", "a" };
	for (int i = 0; i < 2; i++) {
		char aud[80];
		snprintf(aud, sizeof aud, CFGDOC_AUD_CELL "%s", names[i]);
		char *tok = cell_doc(aud, cell_claim(names[i], "us", "shared", "active"));
		ck_result(verify_cell(tok, names[i]), i == 0 ? CFGDOC_OK : CFGDOC_BAD_CONTENT);
		free(tok);
	}
	const char *long_names[] = { c63, c64 };
	for (int i = 0; i < 2; i++) {
		char aud[80];
		snprintf(aud, sizeof aud, CFGDOC_AUD_CELL "%s", long_names[i]);
		char *tok = cell_doc(aud, cell_claim(long_names[i], "us", "shared", "active"));
		ck_result(verify_cell(tok, long_names[i]), i == 0 ? CFGDOC_OK : CFGDOC_BAD_CONTENT);
		free(tok);
	}
	/* The claim's region at 32 and 33 characters: well-formed (then it
	 * is not this region) or not. */
	char *tok = cell_doc(CFGDOC_AUD_CELL CELL, cell_claim(CELL, r32, "shared", "active"));
	ck_result(verify_cell(tok, CELL), CFGDOC_WRONG_AUDIENCE);
	free(tok);
	tok = cell_doc(CFGDOC_AUD_CELL CELL, cell_claim(CELL, r33, "shared", "active"));
	ck_result(verify_cell(tok, CELL), CFGDOC_BAD_CONTENT);
	free(tok);
}
END_TEST

/* ---- routes documents ---- */

#define KA "0123456789abcdef01234567"
#define KB "89abcdef0123456789abcdef"

/* The claims of a routes document of region `region` addressed to `aud`. */
static json_t *routes_claims(const char *region, const char *aud, int64_t ver, int64_t nbf, int64_t exp)
{
	return json_pack("{ss ss sI sI sI ss sI si ss ss s[[sss][sss]]}", "iss", ISS, "aud", aud, "iat",
	                 (json_int_t)now, "nbf", (json_int_t)nbf, "exp", (json_int_t)exp, "jti", "r-1", "ver",
	                 (json_int_t)ver, "fmt", 1, "kind", CFGDOC_KIND_ROUTES, "region", region, "cells",
	                 "us-east-1", "active", "shared", "us-west-2-acme", "active", "dedicated");
}

static char *routes_sign(const struct jwk *key, json_t *c, const char *routes)
{
	char *tok = cfgdoc_sign_text(key, c, "routes", routes);
	json_decref(c);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

static enum cfgdoc_result verify_routes(const char *tok, int64_t min_version)
{
	struct cfgdoc_verify_opts o = opts(min_version);
	struct cfgdoc_routes *r = (struct cfgdoc_routes *)1;
	char detail[256];
	enum cfgdoc_result res = cfgdoc_verify_routes(tok, strlen(tok), &trust, &o, &r, detail, sizeof detail);
	ck_assert_msg((res == CFGDOC_OK) == (r != NULL), "result %s but document %p (%s)",
	              cfgdoc_result_names[res], (void *)r, detail);
	ck_assert(detail[0]);
	cfgdoc_routes_free(r);
	return res;
}

static char *routes_doc(const char *routes)
{
	return routes_sign(&trusted, routes_claims("us", CFGDOC_AUD_ROUTES "us", 5, now, now + 3600), routes);
}

START_TEST(routes_accepted)
{
	/* The router's document: every route with its cell, in order. */
	struct buf b = { 0 };
	ck_assert_int_eq(cfgdoc_add_route(&b, KA, "us-west-2-acme"), 0);
	ck_assert_int_eq(cfgdoc_add_route(&b, KB, "us-east-1"), 0);
	char *text = buf_take(&b);
	char *tok = routes_doc(text);
	struct cfgdoc_verify_opts o = opts(4);
	struct cfgdoc_routes *r;
	char detail[256];
	ck_result(cfgdoc_verify_routes(tok, strlen(tok), &trust, &o, &r, detail, sizeof detail), CFGDOC_OK);
	ck_assert_int_eq(r->ver, 5);
	ck_assert_str_eq(r->region, "us");
	ck_assert_str_eq(r->kid, trusted.kid);
	ck_assert_uint_eq(r->ncells, 2);
	ck_assert_str_eq(r->cells[1].name, "us-west-2-acme");
	ck_assert_str_eq(r->cells[1].kind, "dedicated");
	ck_assert_uint_eq(r->nroutes, 2);
	ck_assert_str_eq(r->routes[0].key, KA);
	ck_assert_str_eq(r->cells[r->routes[0].cell].name, "us-west-2-acme");
	ck_assert_str_eq(r->routes[1].key, KB);
	ck_assert_str_eq(r->cells[r->routes[1].cell].name, "us-east-1");
	ck_assert_uint_eq(r->token_len, strlen(tok));
	ck_assert_str_eq(r->token, tok);
	cfgdoc_routes_free(r);
	free(tok);
	free(text);
	/* No key at all is a region without keys yet. */
	tok = routes_doc("");
	ck_result(verify_routes(tok, 0), CFGDOC_OK);
	free(tok);
	/* The builder refuses what the verifier would. */
	ck_assert_int_eq(cfgdoc_add_route(&b, "0123", "us-east-1"), -1);
	ck_assert_int_eq(cfgdoc_add_route(&b, KA, "Us"), -1);
	buf_free(&b);
}
END_TEST

START_TEST(routes_malformed_records)
{
	/* Every kind of malformed route record is refused as content. */
	static const char *const bad[] = {
		"0123456789abcdef0123456|us-east-1;",       /* key id of 23 */
		"0123456789abcdef012345678|us-east-1;",     /* key id of 25 */
		"0123456789ABCDEF01234567|us-east-1;",      /* upper case */
		"0123456789abcdef0123456g|us-east-1;",      /* not hex */
		"0123456789abcdef01234567us-east-1;",       /* no '|' */
		"0123456789abcdef01234567|us-east-1",       /* not ended */
		"0123456789abcdef01234567|;",               /* no cell */
		"0123456789abcdef01234567|us-west-2;",      /* a cell the cells claim does not list */
		"0123456789abcdef01234567|us-east-1|x;",    /* a third field */
		";",                                        /* an empty record */
		"0123456789abcdef01234567|us-east-1;;",     /* an empty record after one */
		"|us-east-1;",                              /* no key id */
		"0123456789abcdef01234567|us-east-1;0123456789abcdef01234567|us-west-2-acme;", /* a key twice */
		"0123456789abcdef01234567| us-east-1;",     /* a space */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *tok = routes_doc(bad[i]);
		enum cfgdoc_result r = verify_routes(tok, 0);
		ck_assert_msg(r == CFGDOC_BAD_CONTENT, "'%s': %s", bad[i], cfgdoc_result_names[r]);
		free(tok);
	}
	/* The routes claim itself missing, or not a string. */
	char *tok;
	static const char *const payloads[] = { "{\"routes\":1}", "{}" };
	for (int i = 0; i < 2; i++) {
		json_t *cl = routes_claims("us", CFGDOC_AUD_ROUTES "us", 5, now, now + 3600);
		json_t *extra = json_loads(payloads[i], 0, NULL);
		json_object_update(cl, extra);
		json_decref(extra);
		/* Signed with the routes text under another member: "routes" is
		 * then the one above, or absent. */
		tok = cfgdoc_sign_text(&trusted, cl, "other", "");
		json_decref(cl);
		ck_assert_ptr_nonnull(tok);
		ck_result(verify_routes(tok, 0), CFGDOC_BAD_CONTENT);
		free(tok);
	}
}
END_TEST

START_TEST(routes_cells_claim)
{
	/* The cells claim: 1 to 1000 entries [name, status, kind], names valid
	 * and distinct; a cell name of 63 characters, not 64. */
	char c63[64], c64[65];
	memset(c63, 'c', 63), c63[63] = '\0';
	memset(c64, 'c', 64), c64[64] = '\0';
	json_t *cells[] = {
		json_pack("[]"),
		json_pack("[[ss]]", "us-east-1", "active"),
		json_pack("[[sss]]", "US", "active", "shared"),
		json_pack("[[sss][sss]]", "us-east-1", "active", "shared", "us-east-1", "active", "shared"),
		json_pack("[[sss]]", c64, "active", "shared"),
		json_pack("[[sss]]", c63, "active", "shared"),
		json_string("us-east-1"),
	};
	enum cfgdoc_result want[] = { CFGDOC_BAD_CONTENT, CFGDOC_BAD_CONTENT, CFGDOC_BAD_CONTENT,
		                          CFGDOC_BAD_CONTENT, CFGDOC_BAD_CONTENT, CFGDOC_OK, CFGDOC_BAD_CONTENT };
	for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
		json_t *c = routes_claims("us", CFGDOC_AUD_ROUTES "us", 5, now, now + 3600);
		ck_assert_int_eq(json_object_set_new(c, "cells", cells[i]), 0);
		char text[120];
		snprintf(text, sizeof text, KA "|%s;", c63);
		char *tok = routes_sign(&trusted, c, i == 5 ? text : "");
		enum cfgdoc_result r = verify_routes(tok, 0);
		ck_assert_msg(r == want[i], "case %zu: %s", i, cfgdoc_result_names[r]);
		free(tok);
	}
	/* 1000 cells, and 1001. */
	for (int n = CFGDOC_ROUTES_MAX_CELLS; n <= CFGDOC_ROUTES_MAX_CELLS + 1; n++) {
		json_t *list = json_array();
		for (int i = 0; i < n; i++) {
			char name[32];
			snprintf(name, sizeof name, "cell-%d", i);
			json_array_append_new(list, json_pack("[sss]", name, "active", "shared"));
		}
		json_t *c = routes_claims("us", CFGDOC_AUD_ROUTES "us", 5, now, now + 3600);
		json_object_set_new(c, "cells", list);
		char *tok = routes_sign(&trusted, c, KA "|cell-999;");
		ck_result(verify_routes(tok, 0), n == CFGDOC_ROUTES_MAX_CELLS ? CFGDOC_OK : CFGDOC_BAD_CONTENT);
		free(tok);
	}
}
END_TEST

START_TEST(routes_envelope_checks)
{
	/* The routes document is held to the regional document's rules. */
	struct {
		const struct jwk *key;
		const char *region, *aud, *kind;
		int64_t ver, nbf, exp, min_version;
		enum cfgdoc_result want;
	} cases[] = {
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 4, CFGDOC_OK },
		{ &stranger, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 0, CFGDOC_UNKNOWN_KID },
		{ &trusted, "eu", CFGDOC_AUD_ROUTES "eu", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 0, CFGDOC_WRONG_AUDIENCE },
		{ &trusted, "us", "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 0, CFGDOC_WRONG_AUDIENCE },
		{ &trusted, "us", CFGDOC_AUD_CELL "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 0, CFGDOC_WRONG_AUDIENCE },
		{ &trusted, "eu", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 0, CFGDOC_BAD_CONTENT },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_FULL, 5, now, now + 3600, 0, CFGDOC_BAD_CONTENT },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now + 3600, 5, CFGDOC_ROLLBACK },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now - 61, 0, CFGDOC_EXPIRED },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now, now - 59, 0, CFGDOC_OK },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now + 61, now + 3600, 0, CFGDOC_NOT_YET_VALID },
		{ &trusted, "us", CFGDOC_AUD_ROUTES "us", CFGDOC_KIND_ROUTES, 5, now + 60, now + 3600, 0, CFGDOC_OK },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *c = routes_claims(cases[i].region, cases[i].aud, cases[i].ver, cases[i].nbf, cases[i].exp);
		json_object_set_new(c, "kind", json_string(cases[i].kind));
		char *tok = routes_sign(cases[i].key, c, KA "|us-east-1;");
		enum cfgdoc_result r = verify_routes(tok, cases[i].min_version);
		ck_assert_msg(r == cases[i].want, "case %zu: %s, want %s", i, cfgdoc_result_names[r],
		              cfgdoc_result_names[cases[i].want]);
		/* A routes document is never a configuration document. */
		if (cases[i].key == &trusted) /* one addressed to "us" fails on its kind */
			ck_result(verify(tok, 0), strcmp(cases[i].aud, "us") ? CFGDOC_WRONG_AUDIENCE : CFGDOC_BAD_CONTENT);
		free(tok);
	}
	/* A regional document is never a routes document. */
	char *tok = good(7);
	ck_result(verify_routes(tok, 0), CFGDOC_WRONG_AUDIENCE);
	free(tok);
}
END_TEST

/* A document of region us whose `moved` claim is `moved` (NULL: none). */
static enum cfgdoc_result verify_moved(const char *moved, struct cfgdoc **out)
{
	json_t *c = claims("us", "us", 3, now + 3600);
	char *t = tenants_text(), detail[256];
	if (moved)
		json_object_set_new(c, "moved", json_string(moved));
	char *tok = sign_with(&trusted, c, t);
	struct cfgdoc_verify_opts o = opts(0);
	enum cfgdoc_result r = cfgdoc_verify(tok, strlen(tok), &trust, &o, out, detail, sizeof detail);
	free(tok);
	free(t);
	return r;
}

START_TEST(moved_claim_indexed)
{
	/* Keys moved to another region are found with the region they went to;
	 * keys still here and unknown keys are not; no claim is no moved key. */
	struct buf b = { 0 };
	char kid[25];
	for (int i = 0; i < 500; i++) {
		snprintf(kid, sizeof kid, "%024x", i);
		ck_assert_int_eq(cfgdoc_add_moved(&b, kid, i % 2 ? "eu" : "ap-south-1"), 0);
	}
	char *text = buf_take(&b);
	struct cfgdoc *d;
	ck_result(verify_moved(text, &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nmoved, 500);
	for (int i = 0; i < 500; i++) {
		snprintf(kid, sizeof kid, "%024x", i);
		const struct cfgdoc_moved *m = cfgdoc_find_moved(d, kid);
		ck_assert_ptr_nonnull(m);
		ck_assert_ptr_eq(m, &d->moved[i]);
		ck_assert_str_eq(m->region, i % 2 ? "eu" : "ap-south-1");
	}
	ck_assert_ptr_null(cfgdoc_find_moved(d, K1));
	ck_assert_ptr_nonnull(cfgdoc_find_key(d, K1));
	cfgdoc_free(d);
	free(text);

	ck_result(verify_moved(NULL, &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nmoved, 0);
	ck_assert_ptr_null(cfgdoc_find_moved(d, K1));
	cfgdoc_free(d);
	ck_result(verify_moved("", &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nmoved, 0);
	ck_assert_ptr_null(cfgdoc_find_moved(d, K1));
	cfgdoc_free(d);
}
END_TEST

START_TEST(moved_claim_refused)
{
	/* A malformed moved claim refuses the whole document, as a malformed
	 * tenants record does: a data plane keeps the document it has. */
	static const char *const bad[] = {
		"aaaaaaaaaaaaaaaaaaaaaaa1|eu",                          /* not ended */
		"aaaaaaaaaaaaaaaaaaaaaaa1|eu;aaaaaaaaaaaaaaaaaaaaaaa1|ap;", /* key twice */
		"aaaaaaaaaaaaaaaaaaaaaaa1|;",                           /* no region */
		"aaaaaaaaaaaaaaaaaaaaaaa1;",                            /* no field */
		"aaaaaaaaaaaaaaaaaaaaaaa|eu;",                          /* 23 hex */
		"aaaaaaaaaaaaaaaaaaaaaaa12|eu;",                        /* 25 hex */
		"AAAAAAAAAAAAAAAAAAAAAAA1|eu;",                         /* upper case */
		"aaaaaaaaaaaaaaaaaaaaaaa1|EU;",                         /* region name */
		"aaaaaaaaaaaaaaaaaaaaaaa1|eu|x;",                       /* a third field */
		"aaaaaaaaaaaaaaaaaaaaaaa1|a23456789012345678901234567890123;", /* region of 33 */
		";",
	};
	struct cfgdoc *d = (struct cfgdoc *)1;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(verify_moved(bad[i], &d) == CFGDOC_BAD_CONTENT, "accepted %s", bad[i]);
		ck_assert_ptr_null(d);
	}
	/* Not a string. */
	json_t *c = claims("us", "us", 3, now + 3600);
	json_object_set_new(c, "moved", json_integer(1));
	char *t = tenants_text(), detail[256];
	char *tok = sign_with(&trusted, c, t);
	struct cfgdoc_verify_opts o = opts(0);
	ck_result(cfgdoc_verify(tok, strlen(tok), &trust, &o, &d, detail, sizeof detail), CFGDOC_BAD_CONTENT);
	free(tok);
	free(t);
	/* A region name of 32 characters is the longest accepted. */
	ck_result(verify_moved("aaaaaaaaaaaaaaaaaaaaaaa1|a2345678901234567890123456789012;", &d), CFGDOC_OK);
	ck_assert_str_eq(cfgdoc_find_moved(d, K1)->region, "a2345678901234567890123456789012");
	cfgdoc_free(d);
}
END_TEST

START_TEST(moved_builder_checks)
{
	/* The builder refuses what the parser would refuse. */
	struct buf b = { 0 };
	ck_assert_int_eq(cfgdoc_add_moved(&b, "aaaaaaaaaaaaaaaaaaaaaaa", "eu"), -1);
	ck_assert_int_eq(cfgdoc_add_moved(&b, "aaaaaaaaaaaaaaaaaaaaaaaG", "eu"), -1);
	ck_assert_int_eq(cfgdoc_add_moved(&b, K1, ""), -1);
	ck_assert_int_eq(cfgdoc_add_moved(&b, K1, "e|u"), -1);
	ck_assert_int_eq(cfgdoc_add_moved(&b, K1, "a23456789012345678901234567890123"), -1);
	ck_assert_int_eq(cfgdoc_add_moved(&b, K1, "eu"), 0);
	char *text = buf_take(&b);
	ck_assert_str_eq(text, K1 "|eu;");
	free(text);
}
END_TEST

/* ---- the streams and stream_rules claims ---- */
#define S1 "51515151-5151-4151-8151-515151515151"
#define S2 "52525252-5252-4252-8252-525252525252"

/* A document of region us with `rules` and `streams` claims (stolen; NULL: absent). */
static enum cfgdoc_result verify_streams(json_t *rules, json_t *streams, struct cfgdoc **out)
{
	json_t *c = claims("us", "us", 3, now + 3600);
	char *t = tenants_text(), detail[256];
	if (rules)
		json_object_set_new(c, "stream_rules", rules);
	if (streams)
		json_object_set_new(c, "streams", streams);
	char *tok = sign_with(&trusted, c, t);
	struct cfgdoc_verify_opts o = opts(0);
	o.max_bytes = 64u << 20;
	*out = NULL;
	enum cfgdoc_result r = cfgdoc_verify(tok, strlen(tok), &trust, &o, out, detail, sizeof detail);
	free(tok);
	free(t);
	return r;
}

static json_t *webhook_stream(const char *id)
{
	return json_pack("{ss ss ss sI sb sI sI sI sI ss ss}", "id", id, "tenant", T1, "kind", "webhook",
	                 "revision", (json_int_t)4, "paused", 1, "since", (json_int_t)1700000000, "resume",
	                 (json_int_t)2, "replay", (json_int_t)1, "replay_since", (json_int_t)1700000100, "url",
	                 "https://siem.us.example/hook", "secret", "a.b.c.d.e");
}

static json_t *s3_stream(const char *id)
{
	return json_pack("{ss ss ss sI sb sI sI sI sI ss ss ss ss ss}", "id", id, "tenant", T2, "kind", "s3",
	                 "revision", (json_int_t)0, "paused", 0, "since", (json_int_t)0, "resume", (json_int_t)0,
	                 "replay", (json_int_t)0, "replay_since", (json_int_t)0, "endpoint",
	                 "https://s3.us.example", "bucket", "logs", "s3_region", "us-east-1", "access_key_id",
	                 "AKIDEXAMPLE", "prefix", "");
}

static char *str_of(size_t n, char c)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

START_TEST(streams_claim_parsed)
{
	/* Every member lands in its field; absent claims are no stream and no rule. */
	struct cfgdoc *d;
	json_t *rules = json_pack("{s[ss] s[s]}", "hosts", "*.us.example", "127.0.0.1", "s3_regions", "us-east-1");
	ck_result(verify_streams(rules, json_pack("[oo]", webhook_stream(S1), s3_stream(S2)), &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nstreams, 2);
	const struct cfgdoc_stream *w = &d->streams[0], *s = &d->streams[1];
	ck_assert_str_eq(w->id, S1);
	ck_assert_str_eq(w->tenant, T1);
	ck_assert_str_eq(w->kind, "webhook");
	ck_assert_int_eq(w->revision, 4);
	ck_assert_int_eq(w->paused, 1);
	ck_assert_int_eq(w->since, 1700000000);
	ck_assert_int_eq(w->resume, 2);
	ck_assert_int_eq(w->replay, 1);
	ck_assert_int_eq(w->replay_since, 1700000100);
	ck_assert_str_eq(w->url, "https://siem.us.example/hook");
	ck_assert_str_eq(w->sealed, "a.b.c.d.e");
	ck_assert_str_eq(s->kind, "s3");
	ck_assert_int_eq(s->paused, 0);
	ck_assert_str_eq(s->url, "https://s3.us.example");
	ck_assert_str_eq(s->bucket, "logs");
	ck_assert_str_eq(s->s3_region, "us-east-1");
	ck_assert_str_eq(s->access_key_id, "AKIDEXAMPLE");
	ck_assert_str_eq(s->prefix, "");
	ck_assert_ptr_null(s->sealed);
	ck_assert_uint_eq(d->nstream_hosts, 2);
	ck_assert_str_eq(d->stream_hosts[0], "*.us.example");
	ck_assert_str_eq(d->stream_hosts[1], "127.0.0.1");
	ck_assert_uint_eq(d->nstream_s3_regions, 1);
	ck_assert_str_eq(d->stream_s3_regions[0], "us-east-1");
	cfgdoc_free(d);

	ck_result(verify_streams(NULL, NULL, &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nstreams, 0);
	ck_assert_uint_eq(d->nstream_hosts, 0);
	ck_assert_uint_eq(d->nstream_s3_regions, 0);
	cfgdoc_free(d);
	ck_result(verify_streams(json_pack("{s[] s[]}", "hosts", "s3_regions"), json_array(), &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nstreams, 0);
	cfgdoc_free(d);
}
END_TEST

/* Sets `member` of a stream made by `mk` to `v` (stolen; NULL deletes it)
 * and verifies a document with it. */
static enum cfgdoc_result one_stream(json_t *(*mk)(const char *), const char *member, json_t *v)
{
	struct cfgdoc *d;
	json_t *st = mk(S1);
	if (v)
		json_object_set_new(st, member, v);
	else
		json_object_del(st, member);
	enum cfgdoc_result r = verify_streams(NULL, json_pack("[o]", st), &d);
	cfgdoc_free(d);
	return r;
}

/* A string member at its limit is accepted, one byte more is refused. */
static void str_limit(json_t *(*mk)(const char *), const char *member, size_t max, int empty_ok)
{
	char *s = str_of(max, 'a');
	ck_assert_msg(one_stream(mk, member, json_string(s)) == CFGDOC_OK, "%s of %zu refused", member, max);
	char *more = str_of(max + 1, 'a');
	ck_assert_msg(one_stream(mk, member, json_string(more)) == CFGDOC_BAD_CONTENT, "%s of %zu accepted",
	              member, max + 1);
	ck_assert_msg((one_stream(mk, member, json_string("")) == CFGDOC_OK) == empty_ok, "empty %s", member);
	ck_assert_msg(one_stream(mk, member, json_integer(1)) == CFGDOC_BAD_CONTENT, "%s as a number", member);
	ck_assert_msg(one_stream(mk, member, json_stringn("a\0b", 3)) != CFGDOC_OK, "%s with NUL", member);
	free(s);
	free(more);
}

START_TEST(streams_member_limits)
{
	/* Each string member at both ends of what its field holds. */
	str_limit(webhook_stream, "url", 2048, 0);
	str_limit(webhook_stream, "secret", 8192, 0);
	str_limit(s3_stream, "endpoint", 2048, 0);
	str_limit(s3_stream, "bucket", 63, 0);
	str_limit(s3_stream, "s3_region", 32, 0);
	str_limit(s3_stream, "access_key_id", 128, 0);
	str_limit(s3_stream, "prefix", 256, 1);

	/* ids and tenants are UUIDs */
	static const char *const bad_ids[] = { "", "51515151-5151-4151-8151-51515151515",
		                                   "51515151-5151-4151-8151-5151515151511",
		                                   "51515151x5151-4151-8151-515151515151", "not-a-uuid" };
	for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
		ck_assert_msg(one_stream(webhook_stream, "id", json_string(bad_ids[i])) == CFGDOC_BAD_CONTENT,
		              "id %s", bad_ids[i]);
		ck_assert_msg(one_stream(webhook_stream, "tenant", json_string(bad_ids[i])) == CFGDOC_BAD_CONTENT,
		              "tenant %s", bad_ids[i]);
	}
	/* kind: one of three; the members of the kind are required, the other's not read */
	ck_result(one_stream(webhook_stream, "kind", json_string("splunk_hec")), CFGDOC_OK);
	ck_result(one_stream(webhook_stream, "kind", json_string("gcs")), CFGDOC_BAD_CONTENT);
	ck_result(one_stream(webhook_stream, "kind", json_string("Webhook")), CFGDOC_BAD_CONTENT);
	ck_result(one_stream(webhook_stream, "kind", json_string("s3")), CFGDOC_BAD_CONTENT);
	ck_result(one_stream(s3_stream, "kind", json_string("webhook")), CFGDOC_BAD_CONTENT);
	/* integers >= 0 at both ends */
	static const char *const ints[] = { "revision", "since", "resume", "replay", "replay_since" };
	for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
		ck_assert_msg(one_stream(webhook_stream, ints[i], json_integer(0)) == CFGDOC_OK, "%s 0", ints[i]);
		ck_assert_msg(one_stream(webhook_stream, ints[i], json_integer(INT64_MAX)) == CFGDOC_OK, "%s max",
		              ints[i]);
		ck_assert_msg(one_stream(webhook_stream, ints[i], json_integer(-1)) == CFGDOC_BAD_CONTENT, "%s -1",
		              ints[i]);
		ck_assert_msg(one_stream(webhook_stream, ints[i], json_real(1.5)) == CFGDOC_BAD_CONTENT, "%s 1.5",
		              ints[i]);
		ck_assert_msg(one_stream(webhook_stream, ints[i], json_string("1")) == CFGDOC_BAD_CONTENT, "%s \"1\"",
		              ints[i]);
		ck_assert_msg(one_stream(webhook_stream, ints[i], NULL) == CFGDOC_BAD_CONTENT, "no %s", ints[i]);
	}
	ck_result(one_stream(webhook_stream, "paused", json_false()), CFGDOC_OK);
	ck_result(one_stream(webhook_stream, "paused", json_integer(1)), CFGDOC_BAD_CONTENT);
	ck_result(one_stream(webhook_stream, "paused", NULL), CFGDOC_BAD_CONTENT);
	/* the secret is optional, every other member required */
	ck_result(one_stream(webhook_stream, "secret", NULL), CFGDOC_OK);
	static const char *const req[] = { "id", "tenant", "kind", "url" };
	for (size_t i = 0; i < sizeof req / sizeof *req; i++)
		ck_assert_msg(one_stream(webhook_stream, req[i], NULL) == CFGDOC_BAD_CONTENT, "no %s", req[i]);
	static const char *const req3[] = { "endpoint", "bucket", "s3_region", "access_key_id", "prefix" };
	for (size_t i = 0; i < sizeof req3 / sizeof *req3; i++)
		ck_assert_msg(one_stream(s3_stream, req3[i], NULL) == CFGDOC_BAD_CONTENT, "no %s", req3[i]);
}
END_TEST

START_TEST(streams_claim_refused)
{
	struct cfgdoc *d;
	/* not an array, a member not an object, one id twice */
	ck_result(verify_streams(NULL, json_object(), &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(NULL, json_string("[]"), &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(NULL, json_pack("[i]", 1), &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(NULL, json_pack("[oo]", webhook_stream(S1), s3_stream(S1)), &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(NULL, json_pack("[oo]", webhook_stream(S1), s3_stream(S2)), &d), CFGDOC_OK);
	cfgdoc_free(d);
	/* stream_rules: an object of two arrays of non-empty strings, each of
	 * at most RESIDENCY_MAX_RULES, a host pattern at most 253 bytes, an S3
	 * region at most 32 */
	char *p253 = str_of(253, 'h'), *p254 = str_of(254, 'h'), *r32 = str_of(32, 'r'), *r33 = str_of(33, 'r');
	ck_result(verify_streams(json_pack("{s[s] s[s]}", "hosts", p253, "s3_regions", r32), NULL, &d), CFGDOC_OK);
	ck_assert_str_eq(d->stream_hosts[0], p253);
	cfgdoc_free(d);
	ck_result(verify_streams(json_pack("{s[s] s[]}", "hosts", p254, "s3_regions"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[] s[s]}", "hosts", "s3_regions", r33), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[s] s[]}", "hosts", "", "s3_regions"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[] s[s]}", "hosts", "s3_regions", ""), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[i] s[]}", "hosts", 1, "s3_regions"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[]}", "hosts"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[]}", "s3_regions"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("[]"), NULL, &d), CFGDOC_BAD_CONTENT);
	json_t *h64 = json_array(), *h65 = json_array();
	for (int i = 0; i < 65; i++) {
		if (i < 64)
			json_array_append_new(h64, json_string("a.example"));
		json_array_append_new(h65, json_string("a.example"));
	}
	ck_result(verify_streams(json_pack("{so s[]}", "hosts", json_deep_copy(h64), "s3_regions"), NULL, &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nstream_hosts, 64);
	cfgdoc_free(d);
	ck_result(verify_streams(json_pack("{so s[]}", "hosts", h65, "s3_regions"), NULL, &d), CFGDOC_BAD_CONTENT);
	ck_result(verify_streams(json_pack("{s[] so}", "hosts", "s3_regions", json_deep_copy(h64)), NULL, &d), CFGDOC_OK);
	cfgdoc_free(d);
	json_array_append_new(h64, json_string("x"));
	ck_result(verify_streams(json_pack("{s[] so}", "hosts", "s3_regions", h64), NULL, &d), CFGDOC_BAD_CONTENT);
	free(p253);
	free(p254);
	free(r32);
	free(r33);
}
END_TEST

START_TEST(streams_count_limit)
{
	/* CFGDOC_MAX_STREAMS streams are accepted, one more refuses the document. */
	struct cfgdoc *d;
	json_t *a = json_array();
	char id[37];
	for (int i = 0; i <= CFGDOC_MAX_STREAMS; i++) {
		snprintf(id, sizeof id, "%08x-0000-4000-8000-000000000000", (unsigned)i);
		json_array_append_new(a, json_pack("{ss ss ss si sb si si si si ss}", "id", id, "tenant", T1, "kind",
		                                   "webhook", "revision", 0, "paused", 0, "since", 0, "resume", 0,
		                                   "replay", 0, "replay_since", 0, "url", "https://h.example/"));
	}
	ck_result(verify_streams(NULL, json_deep_copy(a), &d), CFGDOC_BAD_CONTENT);
	json_array_remove(a, 0);
	ck_result(verify_streams(NULL, a, &d), CFGDOC_OK);
	ck_assert_uint_eq(d->nstreams, CFGDOC_MAX_STREAMS);
	ck_assert_str_eq(d->streams[CFGDOC_MAX_STREAMS - 1].id, "000186a0-0000-4000-8000-000000000000");
	cfgdoc_free(d);
}
END_TEST

Suite *cfgdoc_suite(void)
{
	Suite *s = suite_create("cfgdoc");
	TCase *tc = tcase_create("cfgdoc");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, accepts_and_indexes);
	tcase_add_test(tc, many_tenants_index);
	tcase_add_test(tc, large_document_in_pieces);
	tcase_add_test(tc, refuses_alg_none);
	tcase_add_test(tc, refuses_hs256_with_public_key);
	tcase_add_test(tc, refuses_unknown_kid);
	tcase_add_test(tc, refuses_spliced_payload);
	tcase_add_test(tc, refuses_trusted_kid_with_other_key);
	tcase_add_test(tc, refuses_other_region);
	tcase_add_test(tc, refuses_bad_issuer_and_time);
	tcase_add_test(tc, refuses_expired);
	tcase_add_test(tc, refuses_rollback);
	tcase_add_test(tc, refuses_truncated_and_garbage);
	tcase_add_test(tc, refuses_malformed_tenants);
	tcase_add_test(tc, refuses_unknown_format);
	tcase_add_test(tc, builder_matches_verifier);
	tcase_add_test(tc, trust_bundle_checked);
	tcase_add_test(tc, cell_document_accepted);
	tcase_add_test(tc, cell_document_refused);
	tcase_add_test(tc, cell_name_limits);
	tcase_add_test(tc, routes_accepted);
	tcase_add_test(tc, routes_malformed_records);
	tcase_add_test(tc, routes_cells_claim);
	tcase_add_test(tc, routes_envelope_checks);
	tcase_add_test(tc, moved_claim_indexed);
	tcase_add_test(tc, moved_claim_refused);
	tcase_add_test(tc, moved_builder_checks);
	tcase_add_test(tc, streams_claim_parsed);
	tcase_add_test(tc, streams_member_limits);
	tcase_add_test(tc, streams_claim_refused);
	tcase_add_test(tc, streams_count_limit);
	suite_add_tcase(s, tc);
	return s;
}
