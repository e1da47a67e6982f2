/* Unit tests of common/movecred: the credential a data plane accepts for
 * one move only when the control plane signed it for that move and it is
 * still fresh; anything else is refused before the data is touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfgdoc.h"
#include "cfgdoc_envelope.h"
#include "jwk.h"
#include "movecred.h"
#include "secret.h"
#include "unit.h"

#define ISS "celltrail-control-plane"
#define MOVE "0b0e8c58-4e1f-4a55-9d1c-3f0a3a3c0001"
#define OTHER "0b0e8c58-4e1f-4a55-9d1c-3f0a3a3c0002"
#define TENANT "11111111-1111-4111-8111-111111111111"

static struct jwk trusted, stranger;
static struct cfgdoc_trust trust;
static char bundle_path[64];
static int64_t now;

static void setup(void)
{
	now = (int64_t)time(NULL);
	ck_assert_int_eq(jwk_generate(&trusted), 0);
	ck_assert_int_eq(jwk_generate(&stranger), 0);
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(&trusted));
	snprintf(bundle_path, sizeof bundle_path, "/tmp/movecred-trust-XXXXXX");
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

#define ck_result(got, want) \
	ck_assert_msg((got) == (want), "got %s, want %s", cfgdoc_result_names[got], cfgdoc_result_names[want])

static struct movecred cred(void)
{
	struct movecred m = { .id = MOVE, .tenant = TENANT, .from_region = "us", .from_cell = "us-1",
		                  .to_region = "eu", .to_cell = "eu-2", .erase_after = 0, .iat = now,
		                  .exp = now + 900 };
	return m;
}

static struct cfgdoc_verify_opts opts(void)
{
	/* region, cell, min_version and allow_expired are not used: set them
	 * to what would change the outcome of a document's verification. */
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = "zz", .cell = "zz-9", .now = now,
		                            .skew = 60, .min_version = 1000, .allow_expired = 1,
		                            .max_bytes = 1 << 20 };
	return o;
}

static enum cfgdoc_result verify(const char *tok, const char *move, struct movecred *out)
{
	struct cfgdoc_verify_opts o = opts();
	struct movecred scratch;
	char detail[256] = "";
	enum cfgdoc_result r = movecred_verify(tok, strlen(tok), &trust, &o, move, out ? out : &scratch,
	                                       detail, sizeof detail);
	ck_assert(detail[0]);
	return r;
}

/* Signs `claims` (stolen) as they are, for the forgeries below. */
static char *sign_claims(const struct jwk *key, json_t *claims)
{
	char *text = json_dumps(claims, JSON_COMPACT);
	char *tok = cfgdoc_envelope_sign(key, text, strlen(text));
	ck_assert_ptr_nonnull(tok);
	free(text);
	json_decref(claims);
	return tok;
}

/* The claims movecred_sign makes, as JSON to alter. */
static json_t *claims_of(const struct movecred *m)
{
	char *tok = movecred_sign(&trusted, ISS, m);
	ck_assert_ptr_nonnull(tok);
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	char text[4096];
	long n = secret_unb64url(d1 + 1, (size_t)(d2 - d1 - 1), text, sizeof text);
	ck_assert_int_gt(n, 0);
	json_t *c = json_loadb(text, (size_t)n, 0, NULL);
	ck_assert_ptr_nonnull(c);
	free(tok);
	return c;
}

START_TEST(round_trip)
{
	/* What the control plane signs is what both data planes read back. */
	struct movecred m = cred(), got;
	m.erase_after = now + 7 * 86400;
	char *tok = movecred_sign(&trusted, ISS, &m);
	ck_assert_ptr_nonnull(tok);
	ck_assert_uint_le(strlen(tok), MOVECRED_MAX_BYTES);
	ck_result(verify(tok, MOVE, &got), CFGDOC_OK);
	ck_assert_str_eq(got.id, MOVE);
	ck_assert_str_eq(got.tenant, TENANT);
	ck_assert_str_eq(got.from_region, "us");
	ck_assert_str_eq(got.from_cell, "us-1");
	ck_assert_str_eq(got.to_region, "eu");
	ck_assert_str_eq(got.to_cell, "eu-2");
	ck_assert_int_eq(got.erase_after, now + 7 * 86400);
	ck_assert_int_eq(got.iat, now);
	ck_assert_int_eq(got.exp, now + 900);
	ck_assert_uint_eq(strlen(got.jti), 32);
	/* Each credential has its own jti. */
	char *again = movecred_sign(&trusted, ISS, &m);
	struct movecred got2;
	ck_result(verify(again, MOVE, &got2), CFGDOC_OK);
	ck_assert_str_ne(got.jti, got2.jti);
	free(again);
	free(tok);
}
END_TEST

START_TEST(refuses_other_move)
{
	/* A credential of one move opens no other: the aud names the move. */
	struct movecred m = cred(), got;
	char *tok = movecred_sign(&trusted, ISS, &m);
	ck_result(verify(tok, OTHER, &got), CFGDOC_WRONG_AUDIENCE);
	ck_assert_str_eq(got.id, "");
	ck_result(verify(tok, "", NULL), CFGDOC_WRONG_AUDIENCE);
	ck_result(verify(tok, "0B0E8C58-4E1F-4A55-9D1C-3F0A3A3C0001", NULL), CFGDOC_WRONG_AUDIENCE);
	free(tok);

	/* aud and move.id must agree: a signed aud of one move with the body
	 * of another is content the data plane refuses. */
	json_t *c = claims_of(&m);
	json_object_set_new(json_object_get(c, "move"), "id", json_string(OTHER));
	tok = sign_claims(&trusted, c);
	ck_result(verify(tok, MOVE, NULL), CFGDOC_BAD_CONTENT);
	ck_result(verify(tok, OTHER, NULL), CFGDOC_WRONG_AUDIENCE);
	free(tok);
}
END_TEST

START_TEST(refuses_expired_and_early)
{
	/* exp and nbf hold with the documents' skew, and allow_expired does not
	 * apply: a credential is never used from a cache. */
	struct movecred m = cred();
	m.iat = now - 1000;
	m.exp = now - 61;
	char *tok = movecred_sign(&trusted, ISS, &m);
	ck_result(verify(tok, MOVE, NULL), CFGDOC_EXPIRED);
	free(tok);
	m.exp = now - 59; /* within the skew */
	tok = movecred_sign(&trusted, ISS, &m);
	ck_result(verify(tok, MOVE, NULL), CFGDOC_OK);
	free(tok);
	m.iat = now + 61;
	m.exp = now + 900;
	tok = movecred_sign(&trusted, ISS, &m);
	ck_result(verify(tok, MOVE, NULL), CFGDOC_NOT_YET_VALID);
	free(tok);
	m.iat = now + 59;
	tok = movecred_sign(&trusted, ISS, &m);
	ck_result(verify(tok, MOVE, NULL), CFGDOC_OK);
	free(tok);
}
END_TEST

START_TEST(refuses_bad_alg_kid_signature_issuer)
{
	struct movecred m = cred();
	char *tok = movecred_sign(&trusted, ISS, &m), forged[8192], hdr[512];
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');

	/* alg none (with and without the genuine signature) */
	static const char *const headers[] = { "{\"alg\":\"none\",\"kid\":\"%s\"}",
		                                   "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
		                                   "{\"kid\":\"%s\"}" };
	for (size_t i = 0; i < 3; i++) {
		char json[256];
		snprintf(json, sizeof json, headers[i], trusted.kid);
		secret_b64url(json, strlen(json), hdr);
		snprintf(forged, sizeof forged, "%s.%.*s.", hdr, (int)(d2 - d1 - 1), d1 + 1);
		ck_result(verify(forged, MOVE, NULL), CFGDOC_BAD_ALG);
		snprintf(forged, sizeof forged, "%s.%.*s.%s", hdr, (int)(d2 - d1 - 1), d1 + 1, d2 + 1);
		ck_result(verify(forged, MOVE, NULL), CFGDOC_BAD_ALG);
	}
	/* A key the data plane does not trust. */
	char *other = movecred_sign(&stranger, ISS, &m);
	ck_result(verify(other, MOVE, NULL), CFGDOC_UNKNOWN_KID);
	free(other);
	/* The stranger's signature under the trusted kid. */
	char json[256];
	snprintf(json, sizeof json, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", trusted.kid);
	secret_b64url(json, strlen(json), hdr);
	other = movecred_sign(&stranger, ISS, &m);
	const char *o1 = strchr(other, '.'), *o2 = strchr(o1 + 1, '.');
	snprintf(forged, sizeof forged, "%s.%.*s.%s", hdr, (int)(o2 - o1 - 1), o1 + 1, o2 + 1);
	ck_result(verify(forged, MOVE, NULL), CFGDOC_BAD_SIGNATURE);
	free(other);
	/* Another issuer. */
	other = movecred_sign(&trusted, "someone-else", &m);
	ck_result(verify(other, MOVE, NULL), CFGDOC_BAD_ISSUER);
	free(other);
	free(tok);
}
END_TEST

START_TEST(refuses_tampered_payload)
{
	/* One changed claim (here the tenant) breaks the signature. */
	struct movecred m = cred();
	char *tok = movecred_sign(&trusted, ISS, &m), forged[8192], p64[4096];
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	json_t *c = claims_of(&m);
	json_object_set_new(json_object_get(c, "move"), "tenant",
	                    json_string("22222222-2222-4222-8222-222222222222"));
	char *text = json_dumps(c, JSON_COMPACT);
	secret_b64url(text, strlen(text), p64);
	snprintf(forged, sizeof forged, "%.*s.%s.%s", (int)(d1 - tok), tok, p64, d2 + 1);
	ck_result(verify(forged, MOVE, NULL), CFGDOC_BAD_SIGNATURE);
	/* A flipped signature byte. */
	snprintf(forged, sizeof forged, "%s", tok);
	char *last = forged + strlen(forged) - 2;
	*last = *last == 'A' ? 'B' : 'A';
	ck_result(verify(forged, MOVE, NULL), CFGDOC_BAD_SIGNATURE);
	free(text);
	json_decref(c);
	free(tok);
}
END_TEST

START_TEST(refuses_not_a_jws)
{
	static const char *const junk[] = { "", "x", "a.b", "a.b.c.d", "..", "Bearer x.y.z",
		                                "eyJhbGciOiJFUzI1NiJ9.e30." };
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		enum cfgdoc_result r = verify(junk[i], MOVE, NULL);
		ck_assert_msg(r == CFGDOC_MALFORMED || r == CFGDOC_UNKNOWN_KID, "'%s': %s", junk[i],
		              cfgdoc_result_names[r]);
	}
	/* Larger than MOVECRED_MAX_BYTES, whatever the caller's bound. */
	char *big = malloc(MOVECRED_MAX_BYTES + 2);
	memset(big, 'a', MOVECRED_MAX_BYTES + 1);
	big[10] = '.';
	big[20] = '.';
	big[MOVECRED_MAX_BYTES + 1] = '\0';
	ck_result(verify(big, MOVE, NULL), CFGDOC_MALFORMED);
	free(big);
}
END_TEST

START_TEST(refuses_missing_or_invalid_members)
{
	/* Every member of `move` is required and checked; so are fmt and kind
	 * (a configuration document is no credential). */
	static const struct {
		const char *member;
		const char *json;     /* NULL: removed */
	} cases[] = {
		{ "id", NULL }, { "tenant", NULL }, { "from_region", NULL }, { "from_cell", NULL },
		{ "to_region", NULL }, { "to_cell", NULL }, { "erase_after", NULL },
		{ "tenant", "\"not-a-uuid\"" }, { "tenant", "7" },
		{ "from_region", "\"US\"" }, { "from_region", "\"\"" },
		{ "to_region", "\"a23456789012345678901234567890123\"" },
		{ "from_cell", "\"x\"" }, { "to_cell", "\"eu 2\"" }, { "to_cell", "null" },
		{ "erase_after", "-1" }, { "erase_after", "\"0\"" }, { "erase_after", "1.5" },
	};
	struct movecred m = cred();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *c = claims_of(&m), *mv = json_object_get(c, "move");
		if (cases[i].json)
			json_object_set_new(mv, cases[i].member, json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
		else
			json_object_del(mv, cases[i].member);
		char *tok = sign_claims(&trusted, c);
		struct movecred got;
		ck_assert_msg(verify(tok, MOVE, &got) == CFGDOC_BAD_CONTENT, "case %zu (%s) accepted", i,
		              cases[i].member);
		ck_assert_str_eq(got.tenant, "");
		free(tok);
	}
	static const char *const top[][2] = {
		{ "move", NULL }, { "move", "[]" }, { "kind", "\"full\"" }, { "kind", NULL },
		{ "fmt", "2" }, { "exp", NULL }, { "exp", "\"9\"" },
	};
	for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
		json_t *c = claims_of(&m);
		if (top[i][1])
			json_object_set_new(c, top[i][0], json_loads(top[i][1], JSON_DECODE_ANY, NULL));
		else
			json_object_del(c, top[i][0]);
		char *tok = sign_claims(&trusted, c);
		ck_assert_msg(verify(tok, MOVE, NULL) == CFGDOC_BAD_CONTENT, "top %s accepted", top[i][0]);
		free(tok);
	}
	/* Largest names accepted. */
	snprintf(m.to_cell, sizeof m.to_cell, "%s", "c23456789012345678901234567890123456789012345678901234567890123");
	snprintf(m.from_region, sizeof m.from_region, "%s", "a2345678901234567890123456789012");
	char *tok = movecred_sign(&trusted, ISS, &m);
	struct movecred got;
	ck_result(verify(tok, MOVE, &got), CFGDOC_OK);
	ck_assert_str_eq(got.to_cell, m.to_cell);
	ck_assert_str_eq(got.from_region, m.from_region);
	free(tok);
}
END_TEST

Suite *movecred_suite(void)
{
	Suite *s = suite_create("movecred");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, refuses_other_move);
	tcase_add_test(tc, refuses_expired_and_early);
	tcase_add_test(tc, refuses_bad_alg_kid_signature_issuer);
	tcase_add_test(tc, refuses_tampered_payload);
	tcase_add_test(tc, refuses_not_a_jws);
	tcase_add_test(tc, refuses_missing_or_invalid_members);
	suite_add_tcase(s, tc);
	return s;
}
