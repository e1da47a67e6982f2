/* Unit tests of common/names: region names, slugs, UUIDs, emails,
 * timestamps and endpoint URLs as both services accept them. */
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "unit.h"

#define EMAIL_BUF 256

/* Writes `n` copies of `c` followed by `tail` into `buf`; returns `buf`. */
static char *run(char *buf, size_t len, char c, size_t n, const char *tail)
{
	ck_assert_uint_lt(n + strlen(tail), len);
	memset(buf, c, n);
	strcpy(buf + n, tail);
	return buf;
}

START_TEST(region_valid)
{
	/* Region names an operator writes in regions.conf are accepted. */
	char buf[64];
	ck_assert_int_eq(name_valid_region("eu"), 1);
	ck_assert_int_eq(name_valid_region("e"), 1);
	ck_assert_int_eq(name_valid_region("eu-west-1"), 1);
	ck_assert_int_eq(name_valid_region("us2"), 1);
	ck_assert_int_eq(name_valid_region(run(buf, sizeof buf, 'a', 32, "")), 1);
}
END_TEST

START_TEST(region_invalid)
{
	/* A region name that could not be a path segment or key prefix is refused. */
	char buf[64];
	ck_assert_int_eq(name_valid_region(""), 0);
	ck_assert_int_eq(name_valid_region(run(buf, sizeof buf, 'a', 33, "")), 0);
	ck_assert_int_eq(name_valid_region("1eu"), 0);
	ck_assert_int_eq(name_valid_region("-eu"), 0);
	ck_assert_int_eq(name_valid_region("EU"), 0);
	ck_assert_int_eq(name_valid_region("eU"), 0);
	ck_assert_int_eq(name_valid_region("eu_west"), 0);
	ck_assert_int_eq(name_valid_region("eu west"), 0);
	ck_assert_int_eq(name_valid_region("eu.west"), 0);
	ck_assert_int_eq(name_valid_region("eu/west"), 0);
}
END_TEST

START_TEST(slug_length_edges)
{
	/* A tenant slug is 3 to 63 bytes: 2 and 64 are refused. */
	char buf[128];
	ck_assert_int_eq(name_valid_slug("ab"), 0);
	ck_assert_int_eq(name_valid_slug("abc"), 1);
	ck_assert_int_eq(name_valid_slug(run(buf, sizeof buf, 'a', 63, "")), 1);
	ck_assert_int_eq(name_valid_slug(run(buf, sizeof buf, 'a', 64, "")), 0);
	ck_assert_int_eq(name_valid_slug(""), 0);
	ck_assert_int_eq(name_valid_slug("a"), 0);
}
END_TEST

START_TEST(slug_characters)
{
	/* Slugs are lowercase alphanumerics with inner dashes only. */
	ck_assert_int_eq(name_valid_slug("acme"), 1);
	ck_assert_int_eq(name_valid_slug("acme-corp-2"), 1);
	ck_assert_int_eq(name_valid_slug("1password"), 1);
	ck_assert_int_eq(name_valid_slug("a-b"), 1);
	ck_assert_int_eq(name_valid_slug("a--b"), 1);
	ck_assert_int_eq(name_valid_slug("-acme"), 0);
	ck_assert_int_eq(name_valid_slug("acme-"), 0);
	ck_assert_int_eq(name_valid_slug("---"), 0);
	ck_assert_int_eq(name_valid_slug("Acme"), 0);
	ck_assert_int_eq(name_valid_slug("acme_corp"), 0);
	ck_assert_int_eq(name_valid_slug("acme corp"), 0);
	ck_assert_int_eq(name_valid_slug("acme.io"), 0);
}
END_TEST

START_TEST(uuid_forms)
{
	/* Canonical UUIDs pass in lowercase or uppercase; anything else is refused. */
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a456-426614174000"), 1);
	ck_assert_int_eq(name_valid_uuid("123E4567-E89B-12D3-A456-426614174000"), 1);
	ck_assert_int_eq(name_valid_uuid("00000000-0000-0000-0000-000000000000"), 1);
	ck_assert_int_eq(name_valid_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"), 1);
	ck_assert_int_eq(name_valid_uuid("123e4567e89b12d3a456426614174000"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a456-42661417400"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a456-4266141740000"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a4564-26614174000"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a456_426614174000"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567-e89b-12d3-a456-42661417400g"), 0);
	ck_assert_int_eq(name_valid_uuid("{23e4567-e89b-12d3-a456-42661417400}"), 0);
	ck_assert_int_eq(name_valid_uuid("123e4567 e89b 12d3 a456 426614174000"), 0);
	ck_assert_int_eq(name_valid_uuid(""), 0);
}
END_TEST

START_TEST(email_normalized)
{
	/* "  Alice@Example.COM " signs in as the same user as "alice@example.com". */
	char out[EMAIL_BUF];
	ck_assert_int_eq(name_normalize_email("  Alice@Example.COM \t", out, sizeof out), 0);
	ck_assert_str_eq(out, "alice@example.com");
	ck_assert_int_eq(name_normalize_email("\tbob.smith+tag@mail.example.org", out, sizeof out), 0);
	ck_assert_str_eq(out, "bob.smith+tag@mail.example.org");
	ck_assert_int_eq(name_normalize_email("a@b.co", out, sizeof out), 0);
	ck_assert_str_eq(out, "a@b.co");
}
END_TEST

START_TEST(email_structure_refused)
{
	/* An address without exactly one '@' and a dotted domain is refused. */
	char out[EMAIL_BUF];
	ck_assert_int_eq(name_normalize_email("", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("   ", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("a@b@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@.example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example.", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example..com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@mail..example.com", out, sizeof out), -1);
}
END_TEST

START_TEST(email_characters_refused)
{
	/* Spaces, control characters and header-breaking bytes never reach storage or mail. */
	char out[EMAIL_BUF];
	ck_assert_int_eq(name_normalize_email("ali ce@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("ali\tce@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@exa mple.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice\r\n@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example.com\nBcc: x@y.z", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("al\x01ice@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example.co\x7f", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("\"alice\"@example.com", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("<alice@example.com>", out, sizeof out), -1);
	ck_assert_int_eq(name_normalize_email("alice@example.com,bob@example.com", out, sizeof out),
	                 -1);
	ck_assert_int_eq(name_normalize_email("alice@[127.0.0.1]", out, sizeof out), -1);
}
END_TEST

START_TEST(email_length_limits)
{
	/* 254 bytes and a 64-byte local part are the most an address may have. */
	char in[300], out[EMAIL_BUF];

	/* 64 + '@' + 185 + ".com" = 254 */
	run(in, sizeof in, 'a', 64, "@");
	run(in + 65, sizeof in - 65, 'b', 185, ".com");
	ck_assert_uint_eq(strlen(in), 254);
	ck_assert_int_eq(name_normalize_email(in, out, sizeof out), 0);
	ck_assert_str_eq(out, in);

	/* 64 + '@' + 186 + ".com" = 255 */
	run(in + 65, sizeof in - 65, 'b', 186, ".com");
	ck_assert_uint_eq(strlen(in), 255);
	ck_assert_int_eq(name_normalize_email(in, out, sizeof out), -1);

	/* a local part of 65 bytes in a short address */
	run(in, sizeof in, 'a', 65, "@example.com");
	ck_assert_int_eq(name_normalize_email(in, out, sizeof out), -1);
	run(in, sizeof in, 'a', 64, "@example.com");
	ck_assert_int_eq(name_normalize_email(in, out, sizeof out), 0);
	ck_assert_str_eq(out, in);

	/* the surrounding spaces do not count towards 254 */
	run(in, sizeof in, ' ', 2, "");
	run(in + 2, sizeof in - 2, 'a', 64, "@");
	run(in + 67, sizeof in - 67, 'b', 185, ".com  ");
	ck_assert_uint_eq(strlen(in), 2 + 254 + 2);
	ck_assert_int_eq(name_normalize_email(in, out, sizeof out), 0);
	ck_assert_uint_eq(strlen(out), 254);
	ck_assert(strncmp(out, in + 2, 254) == 0);
}
END_TEST

START_TEST(email_output_buffer)
{
	/* A buffer too small for the address is an error, never a truncated address. */
	char out[EMAIL_BUF];
	ck_assert_int_eq(name_normalize_email("a@b.co", out, 6), -1);
	ck_assert_int_eq(name_normalize_email("a@b.co", out, 7), 0);
	ck_assert_str_eq(out, "a@b.co");
}
END_TEST

START_TEST(timestamp_valid)
{
	/* RFC 3339 times with a zone, with or without fractions, are accepted. */
	ck_assert_int_eq(name_valid_timestamp("2024-02-29T12:34:56Z"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-02-29t12:34:56z"), 1);
	ck_assert_int_eq(name_valid_timestamp("1999-12-31T23:59:59+00:00"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00+05:30"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00-08:00"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00+23:59"), 1);
	ck_assert_int_eq(name_valid_timestamp("2016-12-31T23:59:60Z"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00.5Z"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00.123456Z"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00.123456789Z"), 1);
	ck_assert_int_eq(name_valid_timestamp("2024-06-01T08:00:00.123456789+14:00"), 1);
}
END_TEST

START_TEST(timestamp_invalid)
{
	/* A time the database would misread or refuse is a 400 at the edge. */
	ck_assert_int_eq(name_valid_timestamp(""), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-13-01T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-00-01T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-00T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-32T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T24:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:60:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:61Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00+01:00"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01X00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-1-01T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("24-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00.Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00.1234567890Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00,5Z"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00+0100"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00+1:00"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00+24:00"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00+01:60"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00ZZ"), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00Z "), 0);
	ck_assert_int_eq(name_valid_timestamp("2024-01-01T00:00:00+01:00x"), 0);
	ck_assert_int_eq(name_valid_timestamp(" 2024-01-01T00:00:00Z"), 0);
}
END_TEST

START_TEST(endpoint_valid)
{
	/* Plain http(s) endpoints, with port and path, are accepted. */
	ck_assert_int_eq(name_valid_endpoint("https://eu.api.example.com"), 1);
	ck_assert_int_eq(name_valid_endpoint("http://127.0.0.1:8081"), 1);
	ck_assert_int_eq(name_valid_endpoint("https://eu-west.example.com:8443/v1/"), 1);
	ck_assert_int_eq(name_valid_endpoint("http://dp_eu.internal/~svc/a%20b"), 1);
}
END_TEST

START_TEST(endpoint_invalid)
{
	/* An endpoint that could carry credentials, a query or another scheme is refused. */
	ck_assert_int_eq(name_valid_endpoint(""), 0);
	ck_assert_int_eq(name_valid_endpoint("eu.example.com"), 0);
	ck_assert_int_eq(name_valid_endpoint("ftp://eu.example.com"), 0);
	ck_assert_int_eq(name_valid_endpoint("file:///etc/passwd"), 0);
	ck_assert_int_eq(name_valid_endpoint("https//eu.example.com"), 0);
	ck_assert_int_eq(name_valid_endpoint("http://"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://"), 0);
	ck_assert_int_eq(name_valid_endpoint("https:///path"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://:443"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://user@eu.example.com"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://user:pw@eu.example.com/"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://eu.example.com/?a=1"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://eu.example.com?"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://eu.example.com/#top"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://eu.example .com"), 0);
	ck_assert_int_eq(name_valid_endpoint(" https://eu.example.com"), 0);
	ck_assert_int_eq(name_valid_endpoint("https://eu.example.com/\n"), 0);
}
END_TEST

START_TEST(endpoint_length_limit)
{
	/* An endpoint of 200 bytes is accepted, 201 is refused. */
	char url[256];
	memcpy(url, "https://", 8);
	run(url + 8, sizeof url - 8, 'a', 188, ".com");
	ck_assert_uint_eq(strlen(url), 200);
	ck_assert_int_eq(name_valid_endpoint(url), 1);
	run(url + 8, sizeof url - 8, 'a', 189, ".com");
	ck_assert_uint_eq(strlen(url), 201);
	ck_assert_int_eq(name_valid_endpoint(url), 0);
}
END_TEST

/* An expiry on a day that does not exist is refused before the database sees it. */
START_TEST(timestamp_calendar)
{
	ck_assert(!name_valid_timestamp("2024-02-31T00:00:00Z"));
	ck_assert(!name_valid_timestamp("2023-02-29T00:00:00Z"));
	ck_assert(name_valid_timestamp("2024-02-29T00:00:00Z"));
	ck_assert(!name_valid_timestamp("1900-02-29T00:00:00Z"));
	ck_assert(name_valid_timestamp("2000-02-29T00:00:00Z"));
	ck_assert(!name_valid_timestamp("2030-04-31T00:00:00Z"));
	ck_assert(name_valid_timestamp("2030-12-31T23:59:59Z"));
}
END_TEST

Suite *names_suite(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, region_valid);
	tcase_add_test(tc, region_invalid);
	tcase_add_test(tc, slug_length_edges);
	tcase_add_test(tc, slug_characters);
	tcase_add_test(tc, uuid_forms);
	tcase_add_test(tc, email_normalized);
	tcase_add_test(tc, email_structure_refused);
	tcase_add_test(tc, email_characters_refused);
	tcase_add_test(tc, email_length_limits);
	tcase_add_test(tc, email_output_buffer);
	tcase_add_test(tc, timestamp_valid);
	tcase_add_test(tc, timestamp_invalid);
	tcase_add_test(tc, endpoint_valid);
	tcase_add_test(tc, endpoint_invalid);
	tcase_add_test(tc, endpoint_length_limit);
	tcase_add_test(tc, timestamp_calendar);
	suite_add_tcase(s, tc);
	return s;
}
