/* Unit tests of control-plane/login_guard: source keys, the per-source
 * token buckets at both ends, their fixed table under churn, and the
 * password-check slots. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../control-plane/login_guard.c"
#include "unit.h"

static struct sockaddr_in v4(const char *text)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	ck_assert_int_eq(inet_pton(AF_INET, text, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 v6(const char *text)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	ck_assert_int_eq(inet_pton(AF_INET6, text, &a.sin6_addr), 1);
	return a;
}

#define SA(x) ((const struct sockaddr *)(const void *)&(x))

/* What is stored with failed logins: an IPv4 address as such (also when
 * it arrives IPv4-mapped), an IPv6 address as its /64. */
START_TEST(source_keys)
{
	char k[LOGIN_SOURCE_MAX];
	struct sockaddr_in a = v4("192.0.2.7");
	struct sockaddr_in6 b = v6("2001:db8:1:2:3:4:5:6"), m = v6("::ffff:192.0.2.7");
	struct sockaddr_un u = { .sun_family = AF_UNIX };
	login_source_key(SA(a), k);
	ck_assert_str_eq(k, "192.0.2.7");
	login_source_key(SA(b), k);
	ck_assert_str_eq(k, "2001:db8:1:2::/64");
	login_source_key(SA(m), k);
	ck_assert_str_eq(k, "192.0.2.7");
	login_source_key(NULL, k);
	ck_assert_str_eq(k, "unknown");
	login_source_key(SA(u), k);
	ck_assert_str_eq(k, "unknown");
	struct sockaddr_in6 w = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	login_source_key(SA(w), k);
	ck_assert_str_eq(k, "ffff:ffff:ffff:ffff::/64");
}
END_TEST

/* The burst-th attempt is allowed, the next refused with a wait of at
 * most a token's time; addresses of one /64 (and a v4 address, mapped or
 * not) share a bucket, other addresses do not. */
START_TEST(bucket_both_ends)
{
	struct login_guard *g = login_guard_new(1, 1, 3);
	struct sockaddr_in a = v4("192.0.2.7"), other = v4("192.0.2.8");
	struct sockaddr_in6 am = v6("::ffff:192.0.2.7"), b1 = v6("2001:db8::1"), b2 = v6("2001:db8::ffff:2"),
	                    c = v6("2001:db8:0:1::1");
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(login_guard_take(g, SA(a)), 0);
	ck_assert_int_eq(login_guard_take(g, SA(am)), 0);
	ck_assert_int_eq(login_guard_take(g, SA(a)), 0);
	long w = login_guard_take(g, SA(am));
	ck_assert_msg(w >= 1 && w <= 60, "wait %ld", w);
	ck_assert_int_eq(login_guard_take(g, SA(other)), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(login_guard_take(g, i % 2 ? SA(b1) : SA(b2)), 0);
	ck_assert_int_gt(login_guard_take(g, SA(b1)), 0);
	ck_assert_int_eq(login_guard_take(g, SA(c)), 0);
	login_guard_free(g);
}
END_TEST

/* Tokens come back at the rate: 60,000 a minute is one a millisecond. */
START_TEST(bucket_refills)
{
	struct login_guard *g = login_guard_new(1, 60000, 1);
	struct sockaddr_in a = v4("198.51.100.1");
	ck_assert_int_eq(login_guard_take(g, SA(a)), 0);
	usleep(20000);
	ck_assert_int_eq(login_guard_take(g, SA(a)), 0);
	login_guard_free(g);
}
END_TEST

/* The table is fixed; a flood of new addresses replaces the fullest
 * buckets, never one that is emptier than them: an address that used its
 * burst is still refused after 100,000 others passed once each. */
START_TEST(bucket_table_churn)
{
	struct login_guard *g = login_guard_new(1, 1, 2);
	struct sockaddr_in x = v4("203.0.113.9");
	ck_assert_int_eq(login_guard_take(g, SA(x)), 0);
	ck_assert_int_eq(login_guard_take(g, SA(x)), 0);
	ck_assert_int_gt(login_guard_take(g, SA(x)), 0);
	for (uint32_t i = 0; i < 100000; i++) {
		struct sockaddr_in o = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i) };
		ck_assert_int_eq(login_guard_take(g, SA(o)), 0);
	}
	ck_assert_int_gt(login_guard_take(g, SA(x)), 0);
	login_guard_free(g);
}
END_TEST

/* `concurrency` slots: the next enter fails until one leaves. */
START_TEST(slots_both_ends)
{
	struct login_guard *g = login_guard_new(2, 1, 1);
	ck_assert_int_eq(login_guard_enter(g), 0);
	ck_assert_int_eq(login_guard_enter(g), 0);
	ck_assert_int_eq(login_guard_enter(g), -1);
	login_guard_leave(g);
	ck_assert_int_eq(login_guard_enter(g), 0);
	ck_assert_int_eq(login_guard_enter(g), -1);
	login_guard_leave(g);
	login_guard_leave(g);
	ck_assert_int_eq(atomic_load(&g->in_progress), 0);
	ck_assert_uint_eq(atomic_load(&g->refused_busy), 2);
	login_guard_free(g);
}
END_TEST

Suite *login_guard_suite(void)
{
	Suite *s = suite_create("login_guard");
	TCase *tc = tcase_create("login_guard");
	tcase_add_test(tc, source_keys);
	tcase_add_test(tc, bucket_both_ends);
	tcase_add_test(tc, bucket_refills);
	tcase_add_test(tc, bucket_table_churn);
	tcase_add_test(tc, slots_both_ends);
	suite_add_tcase(s, tc);
	return s;
}
