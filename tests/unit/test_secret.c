/* Unit tests of common/secret: random bytes, hex, SHA-256, constant-time
 * equality, base64url and AES-256-GCM sealing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "unit.h"

#define NONCE 12
#define TAG 16

static const unsigned char key_a[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const unsigned char key_b[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1e,
};

/* Decodes a NUL-terminated base64url text into `out`. */
static long unb64(const char *in, void *out, size_t cap)
{
	return secret_unb64url(in, strlen(in), out, cap);
}

/* A copy of `sealed` (malloc'd, caller frees) with byte `at` of the raw
 * nonce || ciphertext || tag flipped, re-encoded as base64url. */
static char *flip_raw_byte(const char *sealed, long at)
{
	unsigned char raw[256];
	long n = unb64(sealed, raw, sizeof raw);
	ck_assert_int_gt(n, at);
	raw[at] ^= 0x01;
	char *out = malloc(4 * (((size_t)n + 2) / 3) + 1);
	ck_assert_ptr_nonnull(out);
	secret_b64url(raw, (size_t)n, out);
	return out;
}

START_TEST(random_fills)
{
	/* Two tokens drawn one after the other are different. */
	unsigned char a[32], b[32], zero[32] = { 0 };
	ck_assert_int_eq(secret_random(a, sizeof a), 0);
	ck_assert_int_eq(secret_random(b, sizeof b), 0);
	ck_assert_mem_ne(a, b, sizeof a);
	ck_assert_mem_ne(a, zero, sizeof a);
}
END_TEST

START_TEST(hex_round_trip)
{
	/* Bytes written as lowercase hex read back as the same bytes. */
	static const unsigned char in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };
	unsigned char back[sizeof in];
	char hex[2 * sizeof in + 1];

	memset(hex, 'x', sizeof hex);
	secret_hex(in, sizeof in, hex);
	ck_assert_str_eq(hex, "00017f80abcdefff");
	ck_assert_int_eq(secret_unhex(hex, back, sizeof back), 0);
	ck_assert_mem_eq(back, in, sizeof in);

	ck_assert_int_eq(secret_unhex("00017F80ABCDEFFF", back, sizeof back), 0);
	ck_assert_mem_eq(back, in, sizeof in);

	secret_hex(in, 0, hex);
	ck_assert_str_eq(hex, "");
	ck_assert_int_eq(secret_unhex("", back, 0), 0);
}
END_TEST

START_TEST(unhex_every_byte_pair)
{
	/* Every pair of bytes against a reference written here: accepted
	 * exactly when both are hex digits (either case), with their value. */
	for (int a = 1; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			char in[3] = { (char)a, (char)b, '\0' };
			unsigned char out = 0;
			int va = a >= '0' && a <= '9' ? a - '0' : a >= 'a' && a <= 'f' ? a - 'a' + 10
			       : a >= 'A' && a <= 'F' ? a - 'A' + 10 : -1;
			int vb = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10
			       : b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
			int rc = secret_unhex(in, &out, 1);
			if (va < 0 || vb < 0)
				ck_assert_msg(rc == -1, "0x%02x 0x%02x accepted", a, b);
			else
				ck_assert_msg(rc == 0 && out == (unsigned char)(va << 4 | vb), "0x%02x 0x%02x", a, b);
		}
}
END_TEST

START_TEST(unhex_refuses)
{
	/* Hex of the wrong length or with a non-hex character is refused. */
	unsigned char out[4];
	ck_assert_int_eq(secret_unhex("abc", out, 1), -1);
	ck_assert_int_eq(secret_unhex("abc", out, 2), -1);
	ck_assert_int_eq(secret_unhex("a", out, 1), -1);
	ck_assert_int_eq(secret_unhex("", out, 1), -1);
	ck_assert_int_eq(secret_unhex("0g", out, 1), -1);
	ck_assert_int_eq(secret_unhex("g0", out, 1), -1);
	ck_assert_int_eq(secret_unhex("zz", out, 1), -1);
	ck_assert_int_eq(secret_unhex(" 0", out, 1), -1);
	ck_assert_int_eq(secret_unhex("0 ", out, 1), -1);
	ck_assert_int_eq(secret_unhex("-1", out, 1), -1);
	ck_assert_int_eq(secret_unhex("0x", out, 1), -1);
	ck_assert_int_eq(secret_unhex("00112233", out, 3), -1);
	ck_assert_int_eq(secret_unhex("001122334", out, 4), -1);
	ck_assert_int_eq(secret_unhex("00112233 ", out, 4), -1);
	ck_assert_int_eq(secret_unhex("00112233\n", out, 4), -1);
	ck_assert_int_eq(secret_unhex("00112233", out, 4), 0);
}
END_TEST

START_TEST(b64url_rfc4648_vectors)
{
	/* base64url matches RFC 4648 (section 10), without padding, both ways. */
	static const struct {
		const char *plain, *b64;
	} v[] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char out[16], back[16];
		size_t len = strlen(v[i].plain);

		memset(out, 'x', sizeof out);
		secret_b64url(v[i].plain, len, out);
		ck_assert_str_eq(out, v[i].b64);
		ck_assert_int_eq(unb64(v[i].b64, back, sizeof back), (long)len);
		ck_assert_mem_eq(back, v[i].plain, len);
	}
}
END_TEST

START_TEST(b64url_alphabet)
{
	/* The URL-safe alphabet uses '-' and '_' where base64 has '+' and '/'. */
	static const unsigned char in[] = { 0xfb, 0xff, 0xbf, 0x00, 0x10, 0x83 };
	unsigned char back[sizeof in];
	char out[16];

	secret_b64url(in, sizeof in, out);
	ck_assert_str_eq(out, "-_-_ABCD");
	ck_assert_int_eq(unb64(out, back, sizeof back), (long)sizeof in);
	ck_assert_mem_eq(back, in, sizeof in);
	secret_b64url(in, 2, out);
	ck_assert_str_eq(out, "-_8");
}
END_TEST

START_TEST(unb64url_refuses)
{
	/* Impossible lengths, foreign characters and padding are refused. */
	unsigned char out[64];
	ck_assert_int_eq(unb64("Z", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm9vY", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm9vYmFyZ", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm+v", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm/v", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zg==", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm8=", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm 9v", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm9v\n", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm.v", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm9\xc3\xa9", out, sizeof out), -1);
	ck_assert_int_eq(secret_unb64url("Zm9v\0Zm9v", 9, out, sizeof out), -1);
}
END_TEST

START_TEST(unb64url_noncanonical)
{
	/* Unused low bits must be zero, so each value has exactly one text. */
	unsigned char out[8];
	ck_assert_int_eq(unb64("Zg", out, sizeof out), 1);
	ck_assert_int_eq(unb64("Zh", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zv", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm8", out, sizeof out), 2);
	ck_assert_int_eq(unb64("Zm9", out, sizeof out), -1);
	ck_assert_int_eq(unb64("Zm-", out, sizeof out), -1);
}
END_TEST

START_TEST(unb64url_capacity)
{
	/* Decoding never writes past `cap`: too long an input is an error. */
	unsigned char out[8];
	memset(out, 0xee, sizeof out);
	ck_assert_int_eq(unb64("Zm9vYmFy", out, 6), 6);
	ck_assert_mem_eq(out, "foobar", 6);
	ck_assert_int_eq(out[6], 0xee);

	memset(out, 0xee, sizeof out);
	ck_assert_int_eq(unb64("Zm9vYmFy", out, 5), -1);
	ck_assert_int_eq(out[5], 0xee);
	memset(out, 0xee, sizeof out);
	ck_assert_int_eq(unb64("Zm9vYmE", out, 4), -1);
	ck_assert_int_eq(out[4], 0xee);
	ck_assert_int_eq(unb64("Zg", out, 0), -1);
	ck_assert_int_eq(unb64("", out, 0), 0);
}
END_TEST

START_TEST(equal_compares)
{
	/* Equality sees a difference in any byte, first or last. */
	static const unsigned char a[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	unsigned char b[sizeof a];

	memcpy(b, a, sizeof a);
	ck_assert_int_eq(secret_equal(a, b, sizeof a), 1);
	b[0] ^= 0x80;
	ck_assert_int_eq(secret_equal(a, b, sizeof a), 0);
	b[0] = a[0];
	b[sizeof b - 1] ^= 0x01;
	ck_assert_int_eq(secret_equal(a, b, sizeof a), 0);
	ck_assert_int_eq(secret_equal(a, b, sizeof a - 1), 1);
	ck_assert_int_eq(secret_equal(a, b, 0), 1);
}
END_TEST

START_TEST(sha256_vectors)
{
	/* SHA-256 matches FIPS 180-2, so stored key hashes stay comparable. */
	unsigned char d[32];
	char hex[65];

	secret_sha256("abc", 3, d);
	secret_hex(d, sizeof d, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	secret_sha256("", 0, d);
	secret_hex(d, sizeof d, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	secret_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
	secret_hex(d, sizeof d, hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(seal_open_round_trip)
{
	/* A value sealed with the key is recovered exactly with the same key. */
	static const char plain[] = "whsec_0123456789abcdef";
	size_t len = 0;

	char *sealed = secret_seal(key_a, plain, strlen(plain));
	ck_assert_ptr_nonnull(sealed);
	ck_assert_uint_eq(strlen(sealed), (4 * (NONCE + strlen(plain) + TAG) + 2) / 3);

	char *back = secret_open(key_a, sealed, &len);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(len, strlen(plain));
	ck_assert_str_eq(back, plain);
	free(back);
	free(sealed);
}
END_TEST

START_TEST(seal_binary_and_empty)
{
	/* Binary values with NUL bytes, and empty ones, survive sealing. */
	static const unsigned char bin[] = { 0x00, 0xff, 0x00, 0x41, 0x00 };
	size_t len = 99;

	char *sealed = secret_seal(key_a, bin, sizeof bin);
	ck_assert_ptr_nonnull(sealed);
	char *back = secret_open(key_a, sealed, &len);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(len, sizeof bin);
	ck_assert_mem_eq(back, bin, sizeof bin);
	ck_assert_int_eq(back[sizeof bin], '\0');
	free(back);
	free(sealed);

	len = 99;
	sealed = secret_seal(key_a, "", 0);
	ck_assert_ptr_nonnull(sealed);
	back = secret_open(key_a, sealed, &len);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(back, "");
	free(back);
	free(sealed);
}
END_TEST

START_TEST(seal_fresh_nonce)
{
	/* Sealing the same value twice gives two different texts, both openable. */
	size_t len;
	char *a = secret_seal(key_a, "same", 4);
	char *b = secret_seal(key_a, "same", 4);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_ne(a, b);

	char *pa = secret_open(key_a, a, &len);
	char *pb = secret_open(key_a, b, &len);
	ck_assert_ptr_nonnull(pa);
	ck_assert_ptr_nonnull(pb);
	ck_assert_str_eq(pa, "same");
	ck_assert_str_eq(pb, "same");
	free(pa);
	free(pb);
	free(a);
	free(b);
}
END_TEST

START_TEST(open_wrong_key)
{
	/* A value sealed under one key does not open under another. */
	size_t len;
	char *sealed = secret_seal(key_a, "tenant secret", 13);
	ck_assert_ptr_nonnull(sealed);
	ck_assert_ptr_null(secret_open(key_b, sealed, &len));
	free(sealed);
}
END_TEST

START_TEST(open_tampered)
{
	/* Any flipped bit in nonce, ciphertext or tag makes the value unopenable. */
	static const char plain[] = "tenant secret";
	const long n = NONCE + (long)strlen(plain) + TAG;
	const long at[] = { 0, NONCE - 1, NONCE, NONCE + 5, n - TAG, n - 1 };
	size_t len;

	char *sealed = secret_seal(key_a, plain, strlen(plain));
	ck_assert_ptr_nonnull(sealed);
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		char *bad = flip_raw_byte(sealed, at[i]);
		ck_assert_str_ne(bad, sealed);
		ck_assert_msg(secret_open(key_a, bad, &len) == NULL, "byte %ld flipped still opens",
		              at[i]);
		free(bad);
	}
	char *back = secret_open(key_a, sealed, &len);
	ck_assert_ptr_nonnull(back);
	free(back);
	free(sealed);
}
END_TEST

START_TEST(open_truncated_or_garbage)
{
	/* A cut-short or non-base64url sealed value is refused, not read past. */
	size_t len;
	char *sealed = secret_seal(key_a, "tenant secret", 13);
	ck_assert_ptr_nonnull(sealed);
	size_t slen = strlen(sealed);

	for (size_t cut = 1; cut <= slen; cut++) {
		char *part = strndup(sealed, slen - cut);
		ck_assert_ptr_nonnull(part);
		ck_assert_msg(secret_open(key_a, part, &len) == NULL, "cut by %zu still opens", cut);
		free(part);
	}

	char *longer = malloc(slen + 5);
	ck_assert_ptr_nonnull(longer);
	snprintf(longer, slen + 5, "%sAAAA", sealed);
	ck_assert_ptr_null(secret_open(key_a, longer, &len));
	longer[slen] = '=';
	longer[slen + 1] = '\0';
	ck_assert_ptr_null(secret_open(key_a, longer, &len));
	free(longer);

	ck_assert_ptr_null(secret_open(key_a, "", &len));
	ck_assert_ptr_null(secret_open(key_a, "not sealed at all!", &len));
	ck_assert_ptr_null(secret_open(key_a, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &len));
	free(sealed);
}
END_TEST

/* A completed token is its prefix and 43 base64url characters, the hex
 * given is the SHA-256 of the whole; the buffer must hold exactly that. */
START_TEST(token_complete)
{
	char tok[64], hex[65], want[65];
	unsigned char sha[32];
	for (size_t cap = 48; cap <= 50; cap++) {
		strcpy(tok, "ab_x_");
		int rc = secret_token_complete(tok, cap, hex);
		if (cap < 5 + 44) {
			ck_assert_int_eq(rc, -1);
			continue;
		}
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(strlen(tok), 5 + 43);
		ck_assert(!strncmp(tok, "ab_x_", 5));
		ck_assert_uint_eq(strspn(tok + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
		secret_sha256(tok, strlen(tok), sha);
		secret_hex(sha, sizeof sha, want);
		ck_assert_str_eq(hex, want);
	}
}
END_TEST

Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, random_fills);
	tcase_add_test(tc, hex_round_trip);
	tcase_add_test(tc, unhex_refuses);
	tcase_add_test(tc, unhex_every_byte_pair);
	tcase_add_test(tc, b64url_rfc4648_vectors);
	tcase_add_test(tc, b64url_alphabet);
	tcase_add_test(tc, unb64url_refuses);
	tcase_add_test(tc, unb64url_noncanonical);
	tcase_add_test(tc, unb64url_capacity);
	tcase_add_test(tc, equal_compares);
	tcase_add_test(tc, sha256_vectors);
	tcase_add_test(tc, seal_open_round_trip);
	tcase_add_test(tc, seal_binary_and_empty);
	tcase_add_test(tc, seal_fresh_nonce);
	tcase_add_test(tc, open_wrong_key);
	tcase_add_test(tc, open_tampered);
	tcase_add_test(tc, open_truncated_or_garbage);
	tcase_add_test(tc, token_complete);
	suite_add_tcase(s, tc);
	return s;
}
