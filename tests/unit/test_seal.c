/* Unit tests of common/seal: a stream's secret sealed by the control plane
 * opens only with the region's key, only for its stream, and not at all
 * once any byte of it changed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jwk.h"
#include "seal.h"
#include "secret.h"
#include "unit.h"

/* A region key pair and its public half as the catalog holds it. */
static void keys(struct jwk *priv, struct jwk *pub)
{
	char err[200];
	ck_assert_int_eq(jwk_generate(priv), 0);
	json_t *j = jwk_public_json(priv);
	ck_assert_int_eq(jwk_from_json(j, pub, err, sizeof err), 0);
	json_decref(j);
}

START_TEST(round_trip)
{
	/* What the control plane seals, the data plane opens: same bytes. */
	struct jwk priv, pub;
	char err[256], kid[64];
	size_t len = 99;
	keys(&priv, &pub);
	const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	char *s = seal_secret(&pub, "st_1", secret, strlen(secret));
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(strstr(s, "MfKQ9r8"));
	ck_assert_int_eq(seal_kid(s, kid), 0);
	ck_assert_str_eq(kid, priv.kid);
	char *o = seal_open(&priv, "st_1", s, &len, err, sizeof err);
	ck_assert_msg(o != NULL, "%s", err);
	ck_assert_str_eq(o, secret);
	ck_assert_uint_eq(len, strlen(secret));
	/* Two seals of one secret differ (fresh ephemeral key and IV). */
	char *s2 = seal_secret(&pub, "st_1", secret, strlen(secret));
	ck_assert_str_ne(s, s2);
	free(o);
	free(s);
	free(s2);
	jwk_clear(&priv);
	jwk_clear(&pub);
}
END_TEST

START_TEST(wrong_key_and_stream)
{
	/* Another region's key cannot open it, and a value moved to another
	 * stream of the same region is refused. */
	struct jwk priv, pub, other, opub;
	char err[256];
	size_t len;
	keys(&priv, &pub);
	keys(&other, &opub);
	char *s = seal_secret(&pub, "st_1", "tok", 3);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(seal_open(&other, "st_1", s, &len, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "sealed to key"));
	/* Same kid but another private key: the tag check refuses it. */
	strcpy(other.kid, priv.kid);
	ck_assert_ptr_null(seal_open(&other, "st_1", s, &len, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "does not open"));
	ck_assert_ptr_null(seal_open(&priv, "st_2", s, &len, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "another stream"));
	/* A public-only key opens nothing. */
	ck_assert_ptr_null(seal_open(&pub, "st_1", s, &len, err, sizeof err));
	free(s);
	jwk_clear(&priv);
	jwk_clear(&pub);
	jwk_clear(&other);
	jwk_clear(&opub);
}
END_TEST

START_TEST(every_byte_flip_refused)
{
	/* Changing any one byte of the value (to any of a few others) is
	 * refused, and the error never carries the secret. */
	struct jwk priv, pub;
	char err[256];
	size_t len;
	keys(&priv, &pub);
	char *s = seal_secret(&pub, "st_1", "hunter2-secret", 14);
	ck_assert_ptr_nonnull(s);
	size_t n = strlen(s);
	static const unsigned char deltas[] = { 0x01, 0x02, 0x20, 0x80 };
	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < sizeof deltas; d++) {
			char *t = strdup(s);
			t[i] = (char)((unsigned char)t[i] ^ deltas[d]);
			if (t[i] == '\0')
				t[i] = 'A';
			char *o = seal_open(&priv, "st_1", t, &len, err, sizeof err);
			ck_assert_msg(o == NULL, "byte %zu ^ %02x accepted", i, deltas[d]);
			ck_assert_ptr_null(strstr(err, "hunter2"));
			free(t);
		}
	/* A byte cut off or added at the end is refused too. */
	s[n - 1] = '\0';
	ck_assert_ptr_null(seal_open(&priv, "st_1", s, &len, err, sizeof err));
	free(s);
	jwk_clear(&priv);
	jwk_clear(&pub);
}
END_TEST

START_TEST(size_limits_both_ends)
{
	/* A secret of SEAL_MAX_SECRET bytes seals and opens; one byte more
	 * does not seal. No sealed value is longer than SEAL_MAX_BYTES, and
	 * opening refuses a longer one before any work. */
	struct jwk priv, pub;
	char err[256];
	size_t len;
	keys(&priv, &pub);
	char *big = malloc(SEAL_MAX_SECRET + 2);
	memset(big, 'k', SEAL_MAX_SECRET + 1);
	big[SEAL_MAX_SECRET + 1] = '\0';
	ck_assert_ptr_null(seal_secret(&pub, "st_1", big, SEAL_MAX_SECRET + 1));
	char *s = seal_secret(&pub, "st_1", big, SEAL_MAX_SECRET);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_le(strlen(s), SEAL_MAX_BYTES);
	char *o = seal_open(&priv, "st_1", s, &len, err, sizeof err);
	ck_assert_msg(o != NULL, "%s", err);
	ck_assert_uint_eq(len, SEAL_MAX_SECRET);
	free(o);
	free(s);
	/* Escaped characters grow the plaintext: find the longest value that
	 * still seals (at most SEAL_MAX_BYTES) and check that the next byte of
	 * secret makes none, and that the longest opens. */
	/* Binary search over k, the count of escaped bytes (monotone). */
	size_t lo = 0, hi = SEAL_MAX_SECRET;
	while (lo < hi) {
		size_t mid = (lo + hi + 1) / 2;
		memset(big, 'k', SEAL_MAX_SECRET);
		memset(big, 0x01, mid);
		char *t = seal_secret(&pub, "st_1", big, SEAL_MAX_SECRET);
		if (t)
			lo = mid;
		else
			hi = mid - 1;
		free(t);
	}
	ck_assert_uint_lt(lo, SEAL_MAX_SECRET);
	memset(big, 'k', SEAL_MAX_SECRET);
	memset(big, 0x01, lo + 1);
	ck_assert_ptr_null(seal_secret(&pub, "st_1", big, SEAL_MAX_SECRET));
	memset(big, 0x01, lo);
	big[lo] = 'k';
	char *longest = seal_secret(&pub, "st_1", big, SEAL_MAX_SECRET);
	ck_assert_ptr_nonnull(longest);
	ck_assert_uint_le(strlen(longest), SEAL_MAX_BYTES);
	ck_assert_uint_ge(strlen(longest), SEAL_MAX_BYTES - 8);
	o = seal_open(&priv, "st_1", longest, &len, err, sizeof err);
	ck_assert_msg(o != NULL, "%s", err);
	free(o);
	/* SEAL_MAX_BYTES + 1 bytes: refused for its size. */
	char *huge = malloc(SEAL_MAX_BYTES + 2);
	memset(huge, 'A', SEAL_MAX_BYTES + 1);
	huge[SEAL_MAX_BYTES + 1] = '\0';
	memcpy(huge, longest, strlen(longest));
	ck_assert_ptr_null(seal_open(&priv, "st_1", huge, &len, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "at most 8192 bytes"));
	/* Exactly SEAL_MAX_BYTES of garbage after a valid header: not refused
	 * for its size but for its form. */
	huge[SEAL_MAX_BYTES] = '\0';
	ck_assert_ptr_null(seal_open(&priv, "st_1", huge, &len, err, sizeof err));
	ck_assert_ptr_null(strstr(err, "at most 8192 bytes"));
	char kid[64];
	ck_assert_int_eq(seal_kid(huge, kid), 0);
	huge[SEAL_MAX_BYTES] = 'A';
	ck_assert_int_eq(seal_kid(huge, kid), -1);
	/* A secret with a NUL inside is never sealed. */
	ck_assert_ptr_null(seal_secret(&pub, "st_1", "a\0b", 3));
	free(huge);
	free(longest);
	free(big);
	jwk_clear(&priv);
	jwk_clear(&pub);
}
END_TEST

/* base64url of a JSON header + the given rest, for kid parsing cases. */
static char *with_header(const char *hdr, const char *rest)
{
	char *b = malloc(4 * strlen(hdr) / 3 + 8 + strlen(rest));
	secret_b64url(hdr, strlen(hdr), b);
	strcat(b, rest);
	return b;
}

START_TEST(kid_parsing)
{
	/* seal_kid reads the kid of a well-formed value and refuses anything
	 * else: wrong number of parts, a non-empty key part, bad base64, a
	 * kid that is missing, empty, not a string or 64 bytes and more. */
	char kid[64];
	static const struct {
		const char *hdr, *rest;
		int rc;
		const char *kid;
	} cases[] = {
		{ "{\"kid\":\"abc\"}", "..iv.ct.tag", 0, "abc" },
		{ "{\"kid\":\"abc\"}", ".x.iv.ct.tag", -1, NULL },
		{ "{\"kid\":\"abc\"}", "..iv.ct", -1, NULL },
		{ "{\"kid\":\"abc\"}", "..iv.ct.tag.more", -1, NULL },
		{ "{\"kid\":\"\"}", "..iv.ct.tag", -1, NULL },
		{ "{\"kid\":7}", "..iv.ct.tag", -1, NULL },
		{ "{}", "..iv.ct.tag", -1, NULL },
		{ "[\"kid\"]", "..iv.ct.tag", -1, NULL },
		{ "{\"kid\":\"123456789012345678901234567890123456789012345678901234567890123\"}", "..a.b.c", 0,
		  "123456789012345678901234567890123456789012345678901234567890123" },
		{ "{\"kid\":\"1234567890123456789012345678901234567890123456789012345678901234\"}", "..a.b.c", -1,
		  NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *v = with_header(cases[i].hdr, cases[i].rest);
		ck_assert_msg(seal_kid(v, kid) == cases[i].rc, "case %zu", i);
		if (cases[i].kid)
			ck_assert_str_eq(kid, cases[i].kid);
		free(v);
	}
	ck_assert_int_eq(seal_kid("not base64!..a.b.c", kid), -1);
	ck_assert_int_eq(seal_kid("", kid), -1);
	ck_assert_int_eq(seal_kid("....", kid), -1);
}
END_TEST

/* Runs tests/unit/seal_interop.py with the given arguments; its output
 * (malloc'd) or NULL when it failed. */
static char *interop(const char *op, const char *pem, const char *stream, const char *arg)
{
	char cmd[16384];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/unit/seal_interop.py %s %s %s '%s'", op, pem, stream, arg);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	char *out = calloc(1, 16384);
	size_t n = fread(out, 1, 16383, p);
	out[n] = '\0';
	if (pclose(p) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

START_TEST(interoperates_with_jwcrypto)
{
	/* Any standard JOSE library opens what we seal, and we open what it
	 * seals: python3-jwcrypto, an implementation written apart from ours. */
	struct jwk priv, pub;
	char err[256], pem[] = "/tmp/ct-seal-XXXXXX";
	size_t len;
	keys(&priv, &pub);
	int fd = mkstemp(pem);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, priv.private_pem, strlen(priv.private_pem)), (int)strlen(priv.private_pem));
	close(fd);
	const char *secret = "splunk-token-9f1c;x=1";
	char *s = seal_secret(&pub, "st_42", secret, strlen(secret));
	ck_assert_ptr_nonnull(s);
	char *o = interop("open", pem, "st_42", s);
	ck_assert_msg(o != NULL, "jwcrypto did not open our sealed value");
	ck_assert_str_eq(o, secret);
	free(o);
	char *theirs = interop("seal", pem, "st_42", secret);
	ck_assert_msg(theirs != NULL, "jwcrypto did not seal");
	o = seal_open(&priv, "st_42", theirs, &len, err, sizeof err);
	ck_assert_msg(o != NULL, "%s", err);
	ck_assert_str_eq(o, secret);
	free(o);
	ck_assert_ptr_null(seal_open(&priv, "st_43", theirs, &len, err, sizeof err));
	unlink(pem);
	free(theirs);
	free(s);
	jwk_clear(&priv);
	jwk_clear(&pub);
}
END_TEST

Suite *seal_suite(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, wrong_key_and_stream);
	tcase_add_test(tc, every_byte_flip_refused);
	tcase_add_test(tc, size_limits_both_ends);
	tcase_add_test(tc, kid_parsing);
	tcase_add_test(tc, interoperates_with_jwcrypto);
	suite_add_tcase(s, tc);
	return s;
}
