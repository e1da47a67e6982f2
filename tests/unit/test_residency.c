/* Unit tests of common/residency: a stream delivers only where its
 * region's rule allows, the same answer on the control plane and the data
 * plane, with a reason that names the rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "residency.h"
#include "unit.h"

/* The host kinds of a destination, with the pattern a rule lists for it,
 * and what the reference model says about it. */
static const struct hostcase {
	const char *name, *host, *pattern;
	int matches;  /* the host matches the pattern */
	int loopback; /* plain http may go there */
} hosts[] = {
	{ "exact name", "siem.eu.example", "siem.eu.example", 1, 0 },
	{ "wildcard match", "a.logs.eu.example", "*.logs.eu.example", 1, 0 },
	{ "wildcard non-match", "logs.eu.example", "*.logs.eu.example", 0, 0 },
	{ "IP literal", "10.1.2.3", "10.1.2.3", 1, 0 },
	{ "loopback name", "localhost", "localhost", 1, 1 },
	{ "loopback IP", "127.0.0.1", "127.0.0.1", 1, 1 },
	{ "IPv6 loopback", "[::1]", "[::1]", 1, 1 },
};

enum kind { WEBHOOK, S3_ALLOWED, S3_OTHER };

/* The reference model: which rule a destination breaks first, or NULL. */
static const char *model(int https, const struct hostcase *h, int listed, enum kind k)
{
	if (!(listed && h->matches))
		return "stream_hosts";
	if (!https && !h->loopback)
		return "plain http";
	if (k == S3_OTHER)
		return "stream_s3_regions";
	return NULL;
}

START_TEST(every_combination_against_model)
{
	/* scheme x host kind x listed or not x kind (and S3 region) */
	char why[1024], url[256];
	for (int https = 0; https <= 1; https++)
		for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++)
			for (int listed = 0; listed <= 1; listed++)
				for (int k = WEBHOOK; k <= S3_OTHER; k++) {
					struct residency_rule r = { .hosts = { "other.example", "*.us.example" },
					                            .nhosts = 2,
					                            .s3_regions = { "eu-west-1", "eu-central-1" },
					                            .ns3 = 2 };
					if (listed)
						r.hosts[r.nhosts++] = hosts[h].pattern;
					snprintf(url, sizeof url, "%s://%s:8443/services/collector/event", https ? "https" : "http",
					         hosts[h].host);
					const char *s3 = k == WEBHOOK ? NULL : k == S3_ALLOWED ? "eu-central-1" : "us-east-1";
					const char *want = model(https, &hosts[h], listed, (enum kind)k);
					why[0] = '\0';
					int rc = residency_check(&r, "eu", url, s3, why, sizeof why);
					ck_assert_msg(rc == (want ? -1 : 0), "%s %s listed=%d kind=%d: rc %d (%s)", url,
					              hosts[h].name, listed, k, rc, why);
					if (want) {
						ck_assert_msg(strstr(why, want) != NULL, "%s: '%s' lacks '%s'", url, why, want);
						if (!strcmp(want, "stream_hosts")) {
							ck_assert_ptr_nonnull(strstr(why, "region eu's"));
							ck_assert_ptr_nonnull(strstr(why, "other.example, *.us.example"));
						}
					}
				}
}
END_TEST

START_TEST(hosts_compared_case_insensitively_and_as_addresses)
{
	/* Names match whatever their case; an IPv6 address matches however it
	 * is written; a name that a resolver would read as an address is
	 * refused; an empty rule allows nothing. */
	char why[512];
	struct residency_rule r = { .hosts = { "SIEM.eu.example", "*.Logs.EU.example", "[0:0::1]" }, .nhosts = 3 };
	ck_assert_int_eq(residency_check(&r, "eu", "HTTPS://siem.EU.example/x", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&r, "eu", "https://a.b.logs.eu.EXAMPLE", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&r, "eu", "https://alogs.eu.example", NULL, why, sizeof why), -1);
	ck_assert_int_eq(residency_check(&r, "eu", "http://[::1]:9000/", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&r, "eu", "http://[::2]:9000/", NULL, why, sizeof why), -1);
	struct residency_rule lo = { .hosts = { "127.0.0.1", "*.example" }, .nhosts = 2 };
	ck_assert_int_eq(residency_check(&lo, "eu", "http://127.1/", NULL, why, sizeof why), -1);
	ck_assert_int_eq(residency_check(&lo, "eu", "http://2130706433/", NULL, why, sizeof why), -1);
	/* "*.example" never matches an address. */
	ck_assert_int_eq(residency_check(&lo, "eu", "https://10.0.0.1/", NULL, why, sizeof why), -1);
	struct residency_rule none = { .nhosts = 0 };
	ck_assert_int_eq(residency_check(&none, "eu", "https://a.example/", NULL, why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "stream_hosts: none"));
	/* 127.0.0.0/8 is loopback, 128.0.0.1 is not. */
	struct residency_rule ips = { .hosts = { "127.8.9.10", "128.0.0.1" }, .nhosts = 2 };
	ck_assert_int_eq(residency_check(&ips, "eu", "http://127.8.9.10/", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&ips, "eu", "http://128.0.0.1/", NULL, why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "plain http"));
}
END_TEST

START_TEST(url_limits_both_ends)
{
	/* A URL of 2048 bytes is checked, 2049 refused; userinfo, fragment,
	 * no host, a bad port and a scheme other than http(s) are refused. */
	char why[512];
	struct residency_rule r = { .hosts = { "h.example" }, .nhosts = 1 };
	char *u = malloc(RESIDENCY_MAX_URL + 2);
	strcpy(u, "https://h.example/");
	size_t n = strlen(u);
	memset(u + n, 'p', RESIDENCY_MAX_URL + 1 - n);
	u[RESIDENCY_MAX_URL] = '\0';
	ck_assert_int_eq(residency_check(&r, "eu", u, NULL, why, sizeof why), 0);
	u[RESIDENCY_MAX_URL] = 'p';
	u[RESIDENCY_MAX_URL + 1] = '\0';
	ck_assert_int_eq(residency_check(&r, "eu", u, NULL, why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "longer than 2048"));
	free(u);
	static const struct {
		const char *url, *why;
	} bad[] = {
		{ "https://user:pw@h.example/", "userinfo" },
		{ "https://user@h.example/", "userinfo" },
		{ "https://h.example/#frag", "fragment" },
		{ "https://h.example#", "fragment" },
		{ "https:///path", "no host" },
		{ "https://:443/", "no host" },
		{ "https://h.example:0/", "port" },
		{ "https://h.example:65536/", "port" },
		{ "https://h.example:/", "port" },
		{ "https://h.example:12a/", "port" },
		{ "https://h.example:1234567/", "port" },
		{ "https://[::1/", "not a DNS name" },
		{ "https://h_x.example/", "not a DNS name" },
		{ "https://h..example/", "not a DNS name" },
		{ "https://-h.example/", "not a DNS name" },
		{ "ftp://h.example/", "not an http or https" },
		{ "h.example", "not an http or https" },
		{ "https://h.example/ a", "space" },
		{ "", "no url" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		ck_assert_msg(residency_check(&r, "eu", bad[i].url, NULL, why, sizeof why) == -1, "%s", bad[i].url);
		ck_assert_msg(strstr(why, bad[i].why) != NULL, "%s: %s", bad[i].url, why);
	}
	ck_assert_int_eq(residency_check(&r, "eu", "https://h.example:1/", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&r, "eu", "https://h.example:65535?q=1", NULL, why, sizeof why), 0);
	ck_assert_int_eq(residency_check(&r, "eu", "https://h.example", NULL, why, sizeof why), 0);
	/* An s3 endpoint is named as such in the reason. */
	ck_assert_int_eq(residency_check(&r, "eu", "https://h.example#", "eu-west-1", why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "endpoint"));
}
END_TEST

START_TEST(pattern_validity)
{
	/* What an admin may put in stream_hosts. */
	static const char *const good[] = { "siem.eu.example", "*.eu.example", "*.example", "127.0.0.1",
		                            "[::1]", "[2001:db8::1]", "localhost", "A-b.C9" };
	static const char *const badp[] = { "", "*", "*.", "**.example", "*.127.0.0.1", "a.*.example",
		                            "::1", "[::1", "h_x.example", "h..example", "-a.example",
		                            "a-.example", "https://a.example", "a.example:443", "127.1",
		                            "a.example.", ".a.example", "a b" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(residency_pattern_valid(good[i]) == 1, "%s", good[i]);
	for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++)
		ck_assert_msg(residency_pattern_valid(badp[i]) == 0, "%s", badp[i]);
	ck_assert_int_eq(residency_pattern_valid(NULL), 0);
	/* 253 bytes at most, labels of 63 at most. */
	char p[300];
	memset(p, 0, sizeof p);
	for (size_t i = 0; i < 253; i++)
		p[i] = (i % 50 == 49) ? '.' : 'a';
	ck_assert_int_eq(residency_pattern_valid(p), 1);
	p[253] = 'a';
	ck_assert_int_eq(residency_pattern_valid(p), 0);
	memset(p, 0, sizeof p);
	memset(p, 'a', 63);
	ck_assert_int_eq(residency_pattern_valid(p), 1);
	p[63] = 'a';
	ck_assert_int_eq(residency_pattern_valid(p), 0);
}
END_TEST

Suite *residency_suite(void)
{
	Suite *s = suite_create("residency");
	TCase *tc = tcase_create("residency");
	tcase_add_test(tc, every_combination_against_model);
	tcase_add_test(tc, hosts_compared_case_insensitively_and_as_addresses);
	tcase_add_test(tc, url_limits_both_ends);
	tcase_add_test(tc, pattern_validity);
	suite_add_tcase(s, tc);
	return s;
}
