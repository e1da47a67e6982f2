/* Unit tests of common/forwarded: whose address a request comes from
 * behind a trusted proxy (the control plane's login guard keys on it). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "forwarded.h"
#include "unit.h"

static struct sockaddr_storage mk(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static void text_of(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* The reference: which of the peers each list trusts, and what the last
 * X-Forwarded-For entry each header yields ("" when it yields nothing). */
static const struct {
	const char *list;
	const char *trusts[6]; /* the peers of `peers` it trusts */
} lists[] = {
	{ "", { NULL } },
	{ "127.0.0.1", { "127.0.0.1", NULL } },
	{ "10.0.0.0/8, 127.0.0.1", { "127.0.0.1", "10.200.3.4", NULL } },
	{ "10.1.2.3/8", { "10.200.3.4", NULL } }, /* host bits cleared */
	{ "fd00::/8 ::1", { "fd12::7", "::1", NULL } },
	{ "0.0.0.0/0", { "127.0.0.1", "10.200.3.4", "192.0.2.9", NULL } },
	{ "::/0", { "127.0.0.1", "10.200.3.4", "192.0.2.9", "fd12::7", "::1", NULL } },
};
static const char *const peers[] = { "127.0.0.1", "10.200.3.4", "192.0.2.9", "fd12::7", "::1" };
static const struct {
	const char *xff;
	const char *client; /* "" : none */
} headers[] = {
	{ NULL, "" },
	{ "", "" },
	{ "203.0.113.7", "203.0.113.7" },
	{ "198.51.100.1, 203.0.113.7", "203.0.113.7" },   /* the first, the client's own, is not believed */
	{ "198.51.100.1,203.0.113.7", "203.0.113.7" },
	{ "  203.0.113.7  ", "203.0.113.7" },
	{ "1.1.1.1, 2001:db8::5", "2001:db8::5" },
	{ "203.0.113.7, ", "" },                          /* an empty last entry */
	{ "203.0.113.7:4711", "" },                       /* a port: not an address */
	{ "203.0.113.7 198.51.100.1", "" },               /* two words */
	{ "unknown", "" },
	{ "[2001:db8::5]", "" },
};

START_TEST(every_list_peer_and_header)
{
	for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
		struct fwd_list fl;
		char err[160];
		ck_assert_msg(fwd_parse(lists[l].list, &fl, err, sizeof err) == 0, "%s: %s", lists[l].list, err);
		for (size_t p = 0; p < sizeof peers / sizeof peers[0]; p++) {
			int trusted = 0;
			for (size_t t = 0; lists[l].trusts[t]; t++)
				trusted |= !strcmp(lists[l].trusts[t], peers[p]);
			struct sockaddr_storage peer = mk(peers[p]), buf;
			for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
				const char *want = trusted && headers[h].client[0] ? headers[h].client : peers[p];
				const struct sockaddr *got = fwd_client(&fl, (struct sockaddr *)&peer, headers[h].xff, &buf);
				char text[INET6_ADDRSTRLEN];
				text_of(got, text, sizeof text);
				ck_assert_msg(!strcmp(text, want), "list '%s', peer %s, X-Forwarded-For '%s': %s, want %s",
				              lists[l].list, peers[p], headers[h].xff ? headers[h].xff : "(none)", text, want);
			}
		}
	}
}
END_TEST

START_TEST(no_peer_no_client)
{
	struct fwd_list fl;
	char err[160];
	struct sockaddr_storage buf;
	ck_assert_int_eq(fwd_parse("0.0.0.0/0", &fl, err, sizeof err), 0);
	ck_assert_ptr_null(fwd_client(&fl, NULL, "203.0.113.7", &buf));
	ck_assert_ptr_null(fwd_client(NULL, NULL, "203.0.113.7", &buf));
}
END_TEST

START_TEST(list_limits_both_ends)
{
	struct fwd_list fl;
	char err[160], text[32 * 16 + 16] = "";
	/* Prefix lengths at both ends of each family. */
	ck_assert_int_eq(fwd_parse("10.0.0.0/0 10.0.0.0/32 ::/0 ::1/128", &fl, err, sizeof err), 0);
	ck_assert_uint_eq(fl.n, 4);
	ck_assert_uint_eq(fl.p[0].bits, 96);
	ck_assert_uint_eq(fl.p[1].bits, 128);
	ck_assert_uint_eq(fl.p[2].bits, 0);
	ck_assert_uint_eq(fl.p[3].bits, 128);
	const char *bad[] = { "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/8/8",
		              "10.0.0", "example.org", "10.0.0.1:80", "1.2.3.4 nope" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		ck_assert_msg(fwd_parse(bad[i], &fl, err, sizeof err) == -1, "'%s' accepted", bad[i]);
		ck_assert_msg(strstr(err, "not an IP address"), "'%s': %s", bad[i], err);
	}
	/* 32 entries are taken, a 33rd is refused. */
	for (int i = 0; i < 32; i++)
		snprintf(text + strlen(text), sizeof text - strlen(text), "10.0.0.%d ", i);
	ck_assert_int_eq(fwd_parse(text, &fl, err, sizeof err), 0);
	ck_assert_uint_eq(fl.n, 32);
	snprintf(text + strlen(text), sizeof text - strlen(text), "10.0.1.0");
	ck_assert_int_eq(fwd_parse(text, &fl, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "more than 32"));
	/* Empty and unset: an empty list, which trusts no one. */
	ck_assert_int_eq(fwd_parse(NULL, &fl, err, sizeof err), 0);
	ck_assert_uint_eq(fl.n, 0);
	ck_assert_int_eq(fwd_parse(" , ", &fl, err, sizeof err), 0);
	ck_assert_uint_eq(fl.n, 0);
}
END_TEST

Suite *forwarded_suite(void)
{
	Suite *s = suite_create("forwarded");
	TCase *tc = tcase_create("forwarded");
	tcase_add_test(tc, every_list_peer_and_header);
	tcase_add_test(tc, no_peer_no_client);
	tcase_add_test(tc, list_limits_both_ends);
	suite_add_tcase(s, tc);
	return s;
}
