/* Unit tests of common/cursor: opaque pagination cursors and the `limit`
 * query parameter of list endpoints. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cursor.h"
#include "secret.h"
#include "unit.h"

/* Decodes the cursor whose plain form is `plain` (`len` bytes), as a
 * client could forge it. */
static int decode_plain(const void *plain, size_t len, struct cursor *c)
{
	char text[4 * 64 + 1];
	ck_assert_uint_le(len, 3 * 64);
	secret_b64url(plain, len, text);
	return cursor_decode(text, c);
}

static int decode_str(const char *plain, struct cursor *c)
{
	return decode_plain(plain, strlen(plain), c);
}

static int b64url_char(char ch)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(alphabet, ch);
	ck_assert_ptr_nonnull(p);
	return (int)(p - alphabet);
}

START_TEST(round_trip)
{
	/* The cursor handed out with a page brings the client to the next page. */
	static const struct {
		int64_t ts;
		const char *id;
	} cases[] = {
		{ 0, "a" },
		{ 1700000000123456, "t_01HXYZ" },
		{ INT64_MAX, "AZaz09-_" },
		{ INT64_MAX, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cursor in = { 0 }, out;
		char text[CURSOR_TEXT_MAX];

		in.ts_us = cases[i].ts;
		snprintf(in.id, sizeof in.id, "%s", cases[i].id);
		ck_assert_str_eq(in.id, cases[i].id);
		cursor_encode(&in, text);
		ck_assert_uint_gt(strlen(text), 0);
		ck_assert_uint_lt(strlen(text), CURSOR_TEXT_MAX);
		ck_assert_uint_eq(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                               "0123456789-_"),
		                  strlen(text));

		memset(&out, 'x', sizeof out);
		ck_assert_int_eq(cursor_decode(text, &out), 0);
		ck_assert_int_eq(out.ts_us, cases[i].ts);
		ck_assert_str_eq(out.id, cases[i].id);
	}
}
END_TEST

START_TEST(id_of_max_length)
{
	/* An id of CURSOR_ID_MAX characters survives the round trip whole. */
	struct cursor in = { .ts_us = INT64_MAX }, out;
	char text[CURSOR_TEXT_MAX];

	memset(in.id, 'Z', CURSOR_ID_MAX);
	in.id[CURSOR_ID_MAX] = '\0';
	cursor_encode(&in, text);
	ck_assert_uint_lt(strlen(text), CURSOR_TEXT_MAX);
	ck_assert_int_eq(cursor_decode(text, &out), 0);
	ck_assert_int_eq(out.ts_us, INT64_MAX);
	ck_assert_uint_eq(strlen(out.id), CURSOR_ID_MAX);
	ck_assert_str_eq(out.id, in.id);
}
END_TEST

START_TEST(stable_text)
{
	/* Cursors issued before an upgrade still decode: the text format is fixed. */
	struct cursor c = { .ts_us = 5 }, out;
	char text[CURSOR_TEXT_MAX];

	snprintf(c.id, sizeof c.id, "abc");
	cursor_encode(&c, text);
	ck_assert_str_eq(text, "YzEuNS5hYmM");

	ck_assert_int_eq(cursor_decode("YzEuMTcwMDAwMDAwMDAwMDAwMC50XzAxSFhZWg", &out), 0);
	ck_assert_int_eq(out.ts_us, 1700000000000000);
	ck_assert_str_eq(out.id, "t_01HXYZ");
}
END_TEST

START_TEST(rejects_garbage)
{
	/* A string that is not base64url of a cursor is a 400, not a query. */
	struct cursor c;
	ck_assert_int_eq(cursor_decode("", &c), -1);
	ck_assert_int_eq(cursor_decode("A", &c), -1);
	ck_assert_int_eq(cursor_decode("!!!!", &c), -1);
	ck_assert_int_eq(cursor_decode("YzEuNS5hYmM=", &c), -1);
	ck_assert_int_eq(cursor_decode("YzEuNS5hYmM ", &c), -1);
	ck_assert_int_eq(cursor_decode("YzEuNS+hYmM", &c), -1);
	ck_assert_int_eq(cursor_decode("c1.5.abc", &c), -1);
	ck_assert_int_eq(cursor_decode("AAAA", &c), -1);
	ck_assert_int_eq(decode_str("", &c), -1);
	ck_assert_int_eq(decode_str("c1.", &c), -1);
	ck_assert_int_eq(decode_str("c1.5", &c), -1);
	ck_assert_int_eq(decode_str("hello world", &c), -1);
}
END_TEST

START_TEST(rejects_other_prefix)
{
	/* Only cursors of this format version decode. */
	struct cursor c;
	ck_assert_int_eq(decode_str("c1.5.abc", &c), 0);
	ck_assert_int_eq(decode_str("c2.5.abc", &c), -1);
	ck_assert_int_eq(decode_str("C1.5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1:5.abc", &c), -1);
	ck_assert_int_eq(decode_str("x.5.abc", &c), -1);
	ck_assert_int_eq(decode_str(".c1.5.abc", &c), -1);
}
END_TEST

START_TEST(rejects_bad_timestamp)
{
	/* A forged timestamp (signed, spaced, overflowing, missing) is refused. */
	struct cursor c;
	ck_assert_int_eq(decode_str("c1.-5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.-9223372036854775808.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.+5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1. 5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1..abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.x.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.5x.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.5 .abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.0x10.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.9223372036854775808.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.99999999999999999999.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.9223372036854775807.abc", &c), 0);
	ck_assert_int_eq(c.ts_us, INT64_MAX);
}
END_TEST

START_TEST(rejects_bad_id)
{
	/* The id goes into SQL parameters only as [A-Za-z0-9_-]{1,64}. */
	struct cursor c;
	char plain[128];

	ck_assert_int_eq(decode_str("c1.5.", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.a/b", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.a.b", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.a b", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.ab'", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.ab%", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.abc\n", &c), -1);
	ck_assert_int_eq(decode_str("c1.5.\xc3\xa9t\xc3\xa9", &c), -1);

	snprintf(plain, sizeof plain, "c1.5.");
	memset(plain + 5, 'a', CURSOR_ID_MAX);
	plain[5 + CURSOR_ID_MAX] = '\0';
	ck_assert_int_eq(decode_str(plain, &c), 0);
	ck_assert_uint_eq(strlen(c.id), CURSOR_ID_MAX);
	strcat(plain, "a");
	ck_assert_int_eq(decode_str(plain, &c), -1);
}
END_TEST

START_TEST(rejects_too_long_text)
{
	/* Text of CURSOR_TEXT_MAX bytes or more is refused before decoding. */
	struct cursor c;
	char text[CURSOR_TEXT_MAX + 8];

	memset(text, 'A', CURSOR_TEXT_MAX);
	text[CURSOR_TEXT_MAX] = '\0';
	ck_assert_int_eq(cursor_decode(text, &c), -1);
	memset(text, 'A', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	ck_assert_int_eq(cursor_decode(text, &c), -1);
}
END_TEST

START_TEST(rejects_noncanonical_base64)
{
	/* Nonzero trailing bits would give one cursor two texts: they are refused. */
	struct cursor c;
	char text[CURSOR_TEXT_MAX];
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	/* "c1.5.abc": 8 bytes, 11 characters, 2 unused bits in the last one */
	snprintf(text, sizeof text, "YzEuNS5hYmM");
	ck_assert_int_eq(cursor_decode(text, &c), 0);
	for (int bit = 1; bit <= 2; bit++) {
		text[10] = alphabet[b64url_char('M') | bit];
		ck_assert_int_eq(cursor_decode(text, &c), -1);
	}

	/* "c1.5.ab": 7 bytes, 10 characters, 4 unused bits in the last one */
	secret_b64url("c1.5.ab", 7, text);
	ck_assert_uint_eq(strlen(text), 10);
	ck_assert_int_eq(cursor_decode(text, &c), 0);
	ck_assert_str_eq(c.id, "ab");
	text[9] = alphabet[b64url_char(text[9]) | 8];
	ck_assert_int_eq(cursor_decode(text, &c), -1);
}
END_TEST

START_TEST(rejects_embedded_nul)
{
	/* A NUL inside the decoded bytes cannot cut the cursor short. */
	struct cursor c;
	ck_assert_int_eq(decode_plain("c1.5.abc\0", 9, &c), -1);
	ck_assert_int_eq(decode_plain("c1.5.ab\0c", 9, &c), -1);
	ck_assert_int_eq(decode_plain("c1.5\0.abc", 9, &c), -1);
	ck_assert_int_eq(decode_plain("\0c1.5.abc", 9, &c), -1);
}
END_TEST

START_TEST(limit_default_and_range)
{
	/* No limit gives the default; 1..max is taken as is. */
	int v = -7;
	ck_assert_int_eq(cursor_parse_limit(NULL, 20, 100, &v), 0);
	ck_assert_int_eq(v, 20);
	ck_assert_int_eq(cursor_parse_limit("1", 20, 100, &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(cursor_parse_limit("42", 20, 100, &v), 0);
	ck_assert_int_eq(v, 42);
	ck_assert_int_eq(cursor_parse_limit("100", 20, 100, &v), 0);
	ck_assert_int_eq(v, 100);
	ck_assert_int_eq(cursor_parse_limit("007", 20, 100, &v), 0);
	ck_assert_int_eq(v, 7);
}
END_TEST

START_TEST(limit_refused)
{
	/* A limit out of range or not a plain number is a 400, not a clamp. */
	int v;
	ck_assert_int_eq(cursor_parse_limit("0", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("-1", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("101", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("+5", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit(" 5", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("5 ", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("5x", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("x5", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("5.0", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("0x10", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("2147483648", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("4294967301", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("9223372036854775808", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("99999999999999999999999", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("-99999999999999999999999", 20, 100, &v), -1);
}
END_TEST

/* One position has one cursor text: whitespace, signs and leading zeros in
 * the timestamp are not a cursor this API wrote. */
START_TEST(rejects_noncanonical_timestamp)
{
	struct cursor c;
	ck_assert_int_eq(decode_str("c1.\t5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.\n5.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.-0.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.005.abc", &c), -1);
	ck_assert_int_eq(decode_str("c1.0.abc", &c), 0);
	ck_assert_int_eq(c.ts_us, 0);
	ck_assert_int_eq(decode_str("c1.9223372036854775808.abc", &c), -1); /* overflow */
}
END_TEST

/* ?limit=%095 (a tab) is refused like any other malformed limit. */
START_TEST(limit_refuses_whitespace)
{
	int v = 0;
	ck_assert_int_eq(cursor_parse_limit("\t5", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("\n7", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("5\t", 20, 100, &v), -1);
	ck_assert_int_eq(cursor_parse_limit("-5", 20, 100, &v), -1);
}
END_TEST

Suite *cursor_suite(void)
{
	Suite *s = suite_create("cursor");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, id_of_max_length);
	tcase_add_test(tc, stable_text);
	tcase_add_test(tc, rejects_garbage);
	tcase_add_test(tc, rejects_other_prefix);
	tcase_add_test(tc, rejects_bad_timestamp);
	tcase_add_test(tc, rejects_bad_id);
	tcase_add_test(tc, rejects_too_long_text);
	tcase_add_test(tc, rejects_noncanonical_base64);
	tcase_add_test(tc, rejects_embedded_nul);
	tcase_add_test(tc, limit_default_and_range);
	tcase_add_test(tc, limit_refused);
	tcase_add_test(tc, rejects_noncanonical_timestamp);
	tcase_add_test(tc, limit_refuses_whitespace);
	suite_add_tcase(s, tc);
	return s;
}
