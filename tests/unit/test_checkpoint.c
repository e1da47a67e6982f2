/* Unit tests of common/checkpoint: a checkpoint a customer keeps proves
 * what the region's log held only if nothing but the region's key can
 * make one; every altered or ill-formed token is refused with a sentence
 * saying why, before any of its members is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "jwk.h"
#include "jws.h"
#include "secret.h"
#include "unit.h"

#define TENANT "11111111-1111-4111-8111-111111111111"

static struct jwk signer, other, stranger;
static struct jwk pub[2]; /* the public key set a verifier has */

static void public_of(const struct jwk *k, struct jwk *out)
{
	json_t *j = jwk_public_json(k);
	char err[256];
	ck_assert_msg(jwk_from_json(j, out, err, sizeof err) == 0, "%s", err);
	ck_assert_ptr_null(out->private_pem);
	json_decref(j);
}

static void setup(void)
{
	ck_assert_int_eq(jwk_generate(&signer), 0);
	ck_assert_int_eq(jwk_generate(&other), 0);
	ck_assert_int_eq(jwk_generate(&stranger), 0);
	public_of(&other, &pub[0]);
	public_of(&signer, &pub[1]);
}

static void teardown(void)
{
	jwk_clear(&signer);
	jwk_clear(&other);
	jwk_clear(&stranger);
	jwk_clear(&pub[0]);
	jwk_clear(&pub[1]);
}

static struct checkpoint sample(void)
{
	struct checkpoint c = { .tenant_id = TENANT, .tree_size = 12345, .iat = 1765000000,
		                    .region = "eu", .cell = "eu-2" };
	for (int i = 0; i < 32; i++)
		c.root[i] = (uint8_t)(i * 7 + 1);
	return c;
}

/* Verifies against pub[]; returns the result, and the sentence in err. */
static int verify(const char *tok, size_t len, struct checkpoint *out, char *err, size_t errlen)
{
	err[0] = '\0';
	int r = checkpoint_verify(tok, len, pub, 2, out, err, errlen);
	ck_assert_msg(err[0], "no sentence for %.*s", (int)len, tok);
	return r;
}

/* Refused, with a sentence containing `why`. */
static void refused(const char *tok, size_t len, const char *why)
{
	struct checkpoint out;
	char err[256];
	int r = verify(tok, len, &out, err, sizeof err);
	ck_assert_msg(r == -1, "accepted: %.*s", (int)len, tok);
	ck_assert_msg(strstr(err, why), "refused with '%s', expected '%s' in it", err, why);
	ck_assert_int_eq(out.tree_size, 0);
}

/* A validly signed token with any header and payload: the forgeries below
 * are signed by a trusted key, so only the checks of content stop them. */
static char *forge(const struct jwk *key, json_t *hdr, json_t *payload)
{
	char *h = json_dumps(hdr, JSON_COMPACT), *p = json_dumps(payload, JSON_COMPACT);
	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(p);
	char *tok = jws_es256_sign(key, h, strlen(h), p, strlen(p));
	ck_assert_ptr_nonnull(tok);
	free(h);
	free(p);
	json_decref(hdr);
	json_decref(payload);
	return tok;
}

static json_t *good_header(const struct jwk *k)
{
	return json_pack("{ss ss ss}", "alg", "ES256", "kid", k->kid, "typ", "checkpoint+jwt");
}

static json_t *good_payload(void)
{
	struct checkpoint c = sample();
	char root[44];
	checkpoint_b64_hash(c.root, root);
	return json_pack("{ss sI ss sI ss ss}", "tenant_id", TENANT, "tree_size", (json_int_t)c.tree_size,
	                 "root_hash", root, "iat", (json_int_t)c.iat, "region", "eu", "cell", "eu-2");
}

START_TEST(round_trip)
{
	/* What the region signs is what a verifier reads back, with or
	 * without a cell, under whichever key of the set signed it. */
	struct checkpoint c = sample(), got;
	char err[256];
	for (int with_cell = 0; with_cell < 2; with_cell++) {
		snprintf(c.cell, sizeof c.cell, "%s", with_cell ? "eu-2" : "");
		snprintf(c.kid, sizeof c.kid, "ignored");
		char *tok = checkpoint_sign(&signer, &c);
		ck_assert_ptr_nonnull(tok);
		ck_assert_msg(verify(tok, strlen(tok), &got, err, sizeof err) == 0, "%s", err);
		ck_assert_str_eq(got.tenant_id, TENANT);
		ck_assert_int_eq(got.tree_size, c.tree_size);
		ck_assert_mem_eq(got.root, c.root, 32);
		ck_assert_int_eq(got.iat, c.iat);
		ck_assert_str_eq(got.region, "eu");
		ck_assert_str_eq(got.cell, with_cell ? "eu-2" : "");
		ck_assert_str_eq(got.kid, signer.kid);
		/* the header says what it is */
		char hbuf[256];
		long n = secret_unb64url(tok, (size_t)(strchr(tok, '.') - tok), hbuf, sizeof hbuf - 1);
		ck_assert_int_gt(n, 0);
		hbuf[n] = '\0';
		ck_assert_ptr_nonnull(strstr(hbuf, "\"typ\":\"checkpoint+jwt\""));
		ck_assert_ptr_nonnull(strstr(hbuf, "\"alg\":\"ES256\""));
		free(tok);
	}
	/* tree size 1 and the largest */
	c.tree_size = 1;
	char *tok = checkpoint_sign(&other, &c);
	ck_assert_int_eq(verify(tok, strlen(tok), &got, err, sizeof err), 0);
	ck_assert_int_eq(got.tree_size, 1);
	ck_assert_str_eq(got.kid, other.kid);
	free(tok);
	c.tree_size = INT64_MAX;
	tok = checkpoint_sign(&other, &c);
	ck_assert_int_eq(verify(tok, strlen(tok), &got, err, sizeof err), 0);
	ck_assert_int_eq(got.tree_size, INT64_MAX);
	free(tok);
	/* nothing to sign for an empty log or a bad tenant */
	c.tree_size = 0;
	ck_assert_ptr_null(checkpoint_sign(&signer, &c));
	c.tree_size = 5;
	snprintf(c.tenant_id, sizeof c.tenant_id, "not-a-uuid");
	ck_assert_ptr_null(checkpoint_sign(&signer, &c));
	c = sample();
	c.region[0] = '\0';
	ck_assert_ptr_null(checkpoint_sign(&signer, &c));
	c = sample();
	snprintf(c.cell, sizeof c.cell, "Bad Cell");
	ck_assert_ptr_null(checkpoint_sign(&signer, &c));
	c = sample();
	c.iat = -1;
	ck_assert_ptr_null(checkpoint_sign(&signer, &c));
}
END_TEST

START_TEST(header_tampered)
{
	/* The algorithm is never taken from the header; only the set's keys
	 * count; a token of another kind is not a checkpoint. */
	const char *algs[] = {"none", "HS256", "ES384", "RS256", "es256", ""};
	for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
		json_t *h = good_header(&signer);
		json_object_set_new(h, "alg", json_string(algs[i]));
		char *tok = forge(&signer, h, good_payload());
		refused(tok, strlen(tok), "alg");
		free(tok);
	}
	json_t *h = good_header(&signer);
	json_object_del(h, "alg");
	char *tok = forge(&signer, h, good_payload());
	refused(tok, strlen(tok), "alg");
	free(tok);
	h = good_header(&signer);
	json_object_set_new(h, "alg", json_integer(256));
	tok = forge(&signer, h, good_payload());
	refused(tok, strlen(tok), "alg");
	free(tok);

	/* alg none with an empty signature, as an attacker would send it */
	char hb[200], pb[400], none[700];
	const char *hn = "{\"alg\":\"none\",\"kid\":\"x\",\"typ\":\"checkpoint+jwt\"}";
	secret_b64url(hn, strlen(hn), hb);
	json_t *gp = good_payload();
	char *ptext = json_dumps(gp, JSON_COMPACT);
	json_decref(gp);
	secret_b64url(ptext, strlen(ptext), pb);
	free(ptext);
	snprintf(none, sizeof none, "%s.%s.", hb, pb);
	refused(none, strlen(none), "alg");

	const char *typs[] = {"JWT", "checkpoint", "CHECKPOINT+JWT", ""};
	for (size_t i = 0; i < sizeof typs / sizeof *typs; i++) {
		h = good_header(&signer);
		json_object_set_new(h, "typ", json_string(typs[i]));
		tok = forge(&signer, h, good_payload());
		refused(tok, strlen(tok), "typ");
		free(tok);
	}
	h = good_header(&signer);
	json_object_del(h, "typ");
	tok = forge(&signer, h, good_payload());
	refused(tok, strlen(tok), "typ");
	free(tok);

	h = good_header(&signer);
	json_object_set_new(h, "crit", json_pack("[s]", "x"));
	tok = forge(&signer, h, good_payload());
	refused(tok, strlen(tok), "crit");
	free(tok);

	/* a key not in the set, under its own kid or a trusted one's */
	tok = forge(&stranger, good_header(&stranger), good_payload());
	refused(tok, strlen(tok), "kid");
	free(tok);
	tok = forge(&stranger, good_header(&signer), good_payload());
	refused(tok, strlen(tok), "signature");
	free(tok);
	h = good_header(&signer);
	json_object_del(h, "kid");
	tok = forge(&signer, h, good_payload());
	refused(tok, strlen(tok), "kid");
	free(tok);

	/* an empty key set trusts nothing */
	struct checkpoint c = sample(), out;
	tok = checkpoint_sign(&signer, &c);
	char err[256];
	ck_assert_int_eq(checkpoint_verify(tok, strlen(tok), pub, 0, &out, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "kid"));
	free(tok);

	/* duplicate header members are ambiguous */
	const char *dup = "{\"alg\":\"ES256\",\"alg\":\"none\",\"typ\":\"checkpoint+jwt\"}";
	tok = jws_es256_sign(&signer, dup, strlen(dup), "{}", 2);
	refused(tok, strlen(tok), "header");
	free(tok);
}
END_TEST

START_TEST(every_byte)
{
	/* Any one character of the token changed, in the header, the payload
	 * or the signature, and it no longer verifies. */
	struct checkpoint c = sample();
	char *tok = checkpoint_sign(&signer, &c);
	size_t len = strlen(tok);
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	for (size_t i = 0; i < len; i++) {
		char was = tok[i];
		if (was == '.')
			continue;
		const char *p = strchr(alphabet, was);
		ck_assert_ptr_nonnull(p);
		for (int d = 1; d < 64; d *= 5) { /* 1, 5, 25: low and high bits */
			tok[i] = alphabet[((p - alphabet) + d) % 64];
			struct checkpoint out;
			char err[256];
			ck_assert_msg(verify(tok, len, &out, err, sizeof err) == -1, "byte %zu -> %c accepted", i,
			              tok[i]);
		}
		tok[i] = was;
	}
	free(tok);
}
END_TEST

START_TEST(shape)
{
	/* Extra or missing parts, whitespace, padding, NUL, oversize: refused
	 * before anything is decoded. */
	struct checkpoint c = sample(), out;
	char *tok = checkpoint_sign(&signer, &c), err[256];
	size_t len = strlen(tok);
	char buf[4096];
	ck_assert_int_eq(verify(tok, len, &out, err, sizeof err), 0);

	const char *d1 = strchr(tok, '.');
	const char *d2 = strchr(d1 + 1, '.');
	snprintf(buf, sizeof buf, "%s.", tok);
	refused(buf, strlen(buf), "JWS");
	snprintf(buf, sizeof buf, ".%s", tok);
	refused(buf, strlen(buf), "JWS");
	snprintf(buf, sizeof buf, "%s.%s", tok, d2 + 1);
	refused(buf, strlen(buf), "JWS");
	snprintf(buf, sizeof buf, "%.*s", (int)(d2 - tok), tok);
	refused(buf, strlen(buf), "JWS");
	snprintf(buf, sizeof buf, "%.*s.%s", (int)(d1 - tok), tok, d2 + 1);
	refused(buf, strlen(buf), "JWS");
	snprintf(buf, sizeof buf, "%.*s..%s", (int)(d1 - tok), tok, d1 + 1);
	refused(buf, strlen(buf), "JWS");

	const char *ws[] = {" ", "\n", "\r\n", "\t"};
	for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
		snprintf(buf, sizeof buf, "%s%s", ws[i], tok);
		refused(buf, strlen(buf), "base64url");
		snprintf(buf, sizeof buf, "%s%s", tok, ws[i]);
		refused(buf, strlen(buf), "base64url");
		snprintf(buf, sizeof buf, "%.*s%s%s", (int)(d2 - tok + 1), tok, ws[i], d2 + 1);
		refused(buf, strlen(buf), "base64url");
	}
	snprintf(buf, sizeof buf, "%s==", tok);
	refused(buf, strlen(buf), "base64url");
	memcpy(buf, tok, len);
	buf[10] = '\0';
	refused(buf, len, "base64url");
	refused(tok, 0, "JWS");
	refused(tok, len - 1, "");
	/* a long token is not a checkpoint */
	char *big = malloc(100000);
	memset(big, 'A', 100000);
	big[10] = '.';
	big[20] = '.';
	refused(big, 100000, "JWS");
	free(big);
	free(tok);
}
END_TEST

/* A payload with `name` set to `v` (stolen; NULL removes it). */
static void payload_refused(const char *name, json_t *v, const char *why)
{
	json_t *p = good_payload();
	if (v)
		json_object_set_new(p, name, v);
	else
		json_object_del(p, name);
	char *tok = forge(&signer, good_header(&signer), p);
	refused(tok, strlen(tok), why);
	free(tok);
}

START_TEST(payload_members)
{
	/* Every member is required (cell only when present) and of its type:
	 * a signed token that says something else is still not a checkpoint. */
	const char *members[] = {"tenant_id", "tree_size", "root_hash", "iat", "region"};
	for (size_t i = 0; i < sizeof members / sizeof *members; i++) {
		const char *m = members[i];
		payload_refused(m, NULL, m);
		payload_refused(m, json_null(), m);
		payload_refused(m, json_true(), m);
		payload_refused(m, json_pack("[i]", 1), m);
		payload_refused(m, json_object(), m);
		payload_refused(m, json_real(1.0), m);
		if (strcmp(m, "tree_size") && strcmp(m, "iat"))
			payload_refused(m, json_integer(1), m);
		else
			payload_refused(m, json_string("5"), m);
	}
	payload_refused("cell", json_integer(2), "cell");
	payload_refused("cell", json_string(""), "cell");
	payload_refused("cell", json_string("EU 2"), "cell");
	payload_refused("region", json_string(""), "region");
	payload_refused("tenant_id", json_string("11111111-1111-4111-8111-11111111111"), "tenant_id");
	payload_refused("tenant_id", json_string("11111111-1111-4111-8111-1111111111111"), "tenant_id");
	payload_refused("tree_size", json_integer(0), "tree_size");
	payload_refused("tree_size", json_integer(-1), "tree_size");
	payload_refused("tree_size", json_integer(INT64_MIN), "tree_size");
	payload_refused("tree_size", json_real(5.5), "tree_size");
	payload_refused("iat", json_integer(-1), "iat");

	/* root_hash: 32 bytes exactly, in its one spelling */
	uint8_t h[40] = {0};
	char b[64];
	secret_b64url(h, 31, b);
	payload_refused("root_hash", json_string(b), "root_hash");
	secret_b64url(h, 33, b);
	payload_refused("root_hash", json_string(b), "root_hash");
	secret_b64url(h, 32, b);
	ck_assert_uint_eq(strlen(b), 43);
	char padded[80];
	snprintf(padded, sizeof padded, "%s=", b);
	payload_refused("root_hash", json_string(padded), "root_hash");
	b[42] = 'B'; /* the same 32 bytes with an unused bit set */
	payload_refused("root_hash", json_string(b), "root_hash");
	b[42] = '+';
	payload_refused("root_hash", json_string(b), "root_hash");
	payload_refused("root_hash", json_string(""), "root_hash");

	/* not an object, duplicate members */
	char *tok;
	json_t *hdr = good_header(&signer);
	char *htext = json_dumps(hdr, JSON_COMPACT);
	json_decref(hdr);
	const char *bodies[] = {"[]", "5", "\"x\"", "{", "{\"tree_size\":1,\"tree_size\":2}",
	                        "{\"tree_size\":9223372036854775808}"};
	for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
		tok = jws_es256_sign(&signer, htext, strlen(htext), bodies[i], strlen(bodies[i]));
		refused(tok, strlen(tok), "payload");
		free(tok);
	}
	/* an empty payload */
	tok = jws_es256_sign(&signer, htext, strlen(htext), "", 0);
	refused(tok, strlen(tok), "payload");
	free(tok);
	free(htext);

	/* members a later version may add are signed, and harmless */
	json_t *p = good_payload();
	json_object_set_new(p, "note", json_string("x"));
	tok = forge(&signer, good_header(&signer), p);
	struct checkpoint out;
	char err[256];
	ck_assert_msg(verify(tok, strlen(tok), &out, err, sizeof err) == 0, "%s", err);
	free(tok);
}
END_TEST

START_TEST(hash_text)
{
	merkle_hash h, back;
	char b[44];
	for (int i = 0; i < 32; i++)
		h[i] = (uint8_t)(0xff - i);
	checkpoint_b64_hash(h, b);
	ck_assert_uint_eq(strlen(b), 43);
	ck_assert_int_eq(checkpoint_unb64_hash(b, 43, back), 0);
	ck_assert_mem_eq(h, back, 32);
	ck_assert_int_eq(checkpoint_unb64_hash(b, 42, back), -1);
	ck_assert_int_eq(checkpoint_unb64_hash(b, 44, back), -1);
}
END_TEST

Suite *checkpoint_suite(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, header_tampered);
	tcase_add_test(tc, every_byte);
	tcase_add_test(tc, shape);
	tcase_add_test(tc, payload_members);
	tcase_add_test(tc, hash_text);
	suite_add_tcase(s, tc);
	return s;
}
