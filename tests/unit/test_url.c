/* Unit tests of common/url: the one way a data plane builds the URL of a
 * control-plane call, whatever slashes DP_CONTROL_PLANE_URL ends with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "url.h"

START_TEST(every_slash_combination)
{
	/* Every base (0 to 3 trailing slashes, with and without a path prefix)
	 * with every path (0 to 2 leading slashes) gives one '/' between them. */
	static const char *const bases[] = { "http://127.0.0.1:8080", "https://cp.example/prefix" };
	static const char *const paths[] = { "v1/usage", "v1/regions/us/config?wait=30" };
	for (size_t b = 0; b < 2; b++)
		for (int bs = 0; bs <= 3; bs++)
			for (size_t p = 0; p < 2; p++)
				for (int ps = 0; ps <= 2; ps++) {
					char base[128], path[128], want[256], got[256];
					snprintf(base, sizeof base, "%s%.*s", bases[b], bs, "///");
					snprintf(path, sizeof path, "%.*s%s", ps, "//", paths[p]);
					snprintf(want, sizeof want, "%s/%s", bases[b], paths[p]);
					ck_assert_int_eq(url_join(got, sizeof got, base, path), 0);
					ck_assert_msg(!strcmp(got, want), "%s + %s gave %s, want %s", base, path, got, want);
				}
}
END_TEST

START_TEST(scheme_slashes_kept)
{
	char got[64];
	/* Degenerate bases still never lose the authority's "//". */
	ck_assert_int_eq(url_join(got, sizeof got, "http://", "/v1/usage"), 0);
	ck_assert_str_eq(got, "http:///v1/usage");
	ck_assert_int_eq(url_join(got, sizeof got, "http://h", ""), 0);
	ck_assert_str_eq(got, "http://h/");
	ck_assert_int_eq(url_join(got, sizeof got, "http://h/a//", "//b"), 0);
	ck_assert_str_eq(got, "http://h/a/b");
}
END_TEST

START_TEST(length_bound_both_ends)
{
	/* "http://h" + "/" + "v1" is 11 characters: it fits in 12 bytes, not
	 * in 11, and a result that does not fit is empty, never cut short. */
	char got[32];
	memset(got, 'x', sizeof got);
	ck_assert_int_eq(url_join(got, 12, "http://h//", "/v1"), 0);
	ck_assert_str_eq(got, "http://h/v1");
	memset(got, 'x', sizeof got);
	ck_assert_int_eq(url_join(got, 11, "http://h//", "/v1"), -1);
	ck_assert_str_eq(got, "");
	ck_assert_int_eq(url_join(got, 0, "http://h", "v1"), -1);
	ck_assert_int_eq(url_join(got, 1, "", ""), -1);
	ck_assert_int_eq(url_join(got, 2, "", ""), 0);
	ck_assert_str_eq(got, "/");
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(ca_pin_checked)
{
	char dir[] = "/tmp/ct-url-XXXXXX", pem[64], junk[64], gone[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pem, sizeof pem, "%s/ca.pem", dir);
	snprintf(junk, sizeof junk, "%s/junk.pem", dir);
	snprintf(gone, sizeof gone, "%s/missing.pem", dir);
	write_file(pem, "# local CA\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	write_file(junk, "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n");

	/* No pin: nothing to check, whatever the scheme. */
	ck_assert_ptr_null(url_ca_problem("http://cp:8080", NULL));
	ck_assert_ptr_null(url_ca_problem("https://cp", NULL));
	/* A pin on https with a PEM certificate. */
	ck_assert_ptr_null(url_ca_problem("https://cp", pem));
	/* A pin that would protect nothing, or that cannot work, is refused. */
	ck_assert_ptr_nonnull(url_ca_problem("http://cp:8080", pem));
	ck_assert_ptr_nonnull(url_ca_problem("HTTPS://cp", pem));
	ck_assert_ptr_nonnull(url_ca_problem("https://cp", ""));
	ck_assert_ptr_nonnull(url_ca_problem("https://cp", gone));
	ck_assert_ptr_nonnull(url_ca_problem("https://cp", junk));
	ck_assert_ptr_nonnull(url_ca_problem("https://cp", dir)); /* a directory reads as nothing */
	unlink(pem);
	unlink(junk);
	rmdir(dir);
}
END_TEST

Suite *url_suite(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("url");
	tcase_add_test(tc, every_slash_combination);
	tcase_add_test(tc, scheme_slashes_kept);
	tcase_add_test(tc, length_bound_both_ends);
	tcase_add_test(tc, ca_pin_checked);
	suite_add_tcase(s, tc);
	return s;
}
