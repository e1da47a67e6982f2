/* Unit tests of control-plane/doc_rows: a cell's content rows grouped by
 * tenant as they stream in. Random cells whose rows come in any order
 * against a model (every row handed on once, a tenant's rows together,
 * its keys in id order), every field's limit at both ends, malformed rows,
 * a tenant whose rows disagree, and a consumer that stops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../control-plane/doc_rows.c"
#include "secret.h"
#include "unit.h"

#define MAXROWS 2000

struct seen_rows {
	char row[MAXROWS][200];  /* each handed-on row as text */
	char tenant[MAXROWS][37];
	size_t n;
	size_t stop_at;          /* non-zero: refuse the row of this number (1-based) */
};

static int collect(const struct cpdb_doc_row *r, void *arg)
{
	struct seen_rows *s = arg;
	ck_assert_uint_lt(s->n, MAXROWS);
	if (s->stop_at && s->n + 1 == s->stop_at)
		return -1;
	ck_assert(!r->key_id || (r->key_sha256_b64 && !r->key_sha256_hex));
	snprintf(s->row[s->n], sizeof s->row[s->n], "%s|%s|%s|%s|%s|%s|%d|%d|%lld", r->tenant_id, r->slug,
	         r->status, r->plan, r->key_id ? r->key_id : "-", r->key_id ? r->key_sha256_b64 : "-",
	         r->key_id ? r->can_write : 0, r->key_id ? r->can_read : 0,
	         (long long)(r->key_id ? r->expires_at : 0));
	snprintf(s->tenant[s->n], sizeof s->tenant[s->n], "%s", r->tenant_id);
	s->n++;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static unsigned rnd(unsigned *seed)
{
	unsigned x = *seed ? *seed : 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *seed = x;
}

static void hex(unsigned *seed, char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = "0123456789abcdef"[rnd(seed) % 16];
	out[n] = '\0';
}

/* Feeds `lines` and finishes. Each is copied into a buffer of its exact
 * size, as libpq hands a row over (the reader writes into it), so that a
 * read past its end is caught under ASan. */
static void feed(struct doc_rows *d, char lines[][200], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *buf = strdup(lines[i]);
		ck_assert_ptr_nonnull(buf);
		int stop = doc_rows_line(buf, strlen(buf), d) != 0;
		free(buf);
		if (stop)
			break;
	}
	doc_rows_finish(d);
}

/* snprintf into a row buffer, which must hold it. */
#define ROW(buf, ...) ck_assert_int_lt(snprintf((buf), 200, __VA_ARGS__), 200)

struct model_tenant {
	char id[37], slug[40], status[16], plan[16];
	int nkeys;
	char key[6][25], sha[6][65];
	int w[6], r[6];
	long long exp[6];
};

/* Random cells, tenants and keys in random order: every row handed on
 * once, each tenant's together, its keys ascending. */
START_TEST(grouped_against_model)
{
	static char lines[MAXROWS][200];
	static char want[MAXROWS][200];
	static struct seen_rows got;
	static struct model_tenant m[200];
	for (unsigned round = 0; round < 60; round++) {
		unsigned seed = round * 7919 + 1;
		size_t nt = 1 + rnd(&seed) % 200, nl = 0, nw = 0;
		for (size_t i = 0; i < nt; i++) {
			struct model_tenant *t = &m[i];
			char h[33];
			hex(&seed, h, 32);
			snprintf(t->id, sizeof t->id, "%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 12, h + 15, h + 18);
			snprintf(t->slug, sizeof t->slug, "tenant-%zu", i);
			snprintf(t->status, sizeof t->status, "%s", i % 7 == 3 ? "suspended" : i % 11 == 5 ? "deleted" : "active");
			snprintf(t->plan, sizeof t->plan, "%s", i % 2 ? "pro" : "free");
			t->nkeys = (int)(rnd(&seed) % 6);
			for (int k = 0; k < t->nkeys; k++) {
				hex(&seed, t->key[k], 24);
				hex(&seed, t->sha[k], 64);
				t->w[k] = rnd(&seed) % 2;
				t->r[k] = rnd(&seed) % 2;
				t->exp[k] = rnd(&seed) % 3 ? 0 : 1700000000LL + rnd(&seed);
			}
		}
		for (size_t i = 0; i < nt; i++) {
			struct model_tenant *t = &m[i];
			if (t->nkeys == 0) {
				ROW(lines[nl++], "%s\t%s\t%s\t%s\t\\N\t\\N\t\\N\t\\N\t0", t->id, t->slug, t->status,
				         t->plan);
				ROW(want[nw++], "%s|%s|%s|%s|-|-|0|0|0", t->id, t->slug, t->status, t->plan);
			}
			for (int k = 0; k < t->nkeys; k++) {
				ROW(lines[nl++], "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%lld", t->id, t->slug, t->status,
				         t->plan, t->key[k], t->sha[k], t->w[k] ? "t" : "f", t->r[k] ? "t" : "f", t->exp[k]);
				unsigned char raw[32];
				char b64[48];
				ck_assert_int_eq(secret_unhex(t->sha[k], raw, sizeof raw), 0);
				secret_b64url(raw, sizeof raw, b64);
				ROW(want[nw++], "%s|%s|%s|%s|%s|%s|%d|%d|%lld", t->id, t->slug, t->status, t->plan,
				         t->key[k], b64, t->w[k], t->r[k], t->exp[k]);
			}
		}
		/* Every row in any order: grouped by tenant (the hash join's
		 * order) in some rounds, shuffled whole in the others. */
		if (round % 3) {
			for (size_t i = nl; i > 1; i--) {
				size_t j = rnd(&seed) % i;
				char x[200];
				memcpy(x, lines[i - 1], 200);
				memcpy(lines[i - 1], lines[j], 200);
				memcpy(lines[j], x, 200);
			}
		}
		struct doc_rows d;
		memset(&got, 0, sizeof got);
		doc_rows_init(&d, collect, &got);
		feed(&d, lines, nl);
		ck_assert_msg(!d.bad && !d.stopped, "round %u: %d %d", round, d.bad, d.stopped);
		ck_assert_uint_eq(d.rows, nl);
		ck_assert_uint_eq(got.n, nw);
		/* A tenant's rows together, its keys ascending. */
		for (size_t i = 1; i < got.n; i++) {
			if (strcmp(got.tenant[i], got.tenant[i - 1]) != 0) {
				for (size_t j = 0; j + 1 < i; j++)
					ck_assert_msg(strcmp(got.tenant[j], got.tenant[i]) != 0, "round %u: %s in two groups",
					              round, got.tenant[i]);
				continue;
			}
			const char *a = got.row[i - 1] + 37, *b = got.row[i] + 37;
			a = strchr(strchr(strchr(a, '|') + 1, '|') + 1, '|') + 1;
			b = strchr(strchr(strchr(b, '|') + 1, '|') + 1, '|') + 1;
			ck_assert_msg(strncmp(a, b, 24) < 0, "round %u: keys out of order: %s then %s", round,
			              got.row[i - 1], got.row[i]);
		}
		/* Exactly the model's rows. */
		qsort(got.row, got.n, sizeof got.row[0], str_cmp);
		qsort(want, nw, sizeof want[0], str_cmp);
		for (size_t i = 0; i < nw; i++)
			ck_assert_str_eq(got.row[i], want[i]);
		doc_rows_free(&d);
	}
}
END_TEST

#define T1 "11111111-1111-4111-8111-111111111111"
#define T2 "22222222-2222-4222-8222-222222222222"
#define K1 "aaaaaaaaaaaaaaaaaaaaaaa1"
#define K2 "aaaaaaaaaaaaaaaaaaaaaaa2"
#define SHA "0000000000000000000000000000000000000000000000000000000000000000"
#define SHA_B64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* the same, base64url */

/* Two tenants' keys interleaved (keys hashed by tenant, read in their
 * stored order): each tenant's handed on together; a tenant whose rows
 * disagree on its own fields is refused. */
START_TEST(interleaved)
{
	static char lines[4][200] = {
		T1 "\ta-slug\tactive\tpro\t" K2 "\t" SHA "\tt\tt\t0",
		T2 "\tb-slug\tactive\tpro\t" K1 "\t" SHA "\tt\tf\t0",
		T1 "\ta-slug\tactive\tpro\t" K1 "\t" SHA "\tf\tt\t0",
		T2 "\tb-slug\tactive\tpro\t" K2 "\t" SHA "\tf\tt\t0",
	};
	static struct seen_rows got;
	struct doc_rows d;
	memset(&got, 0, sizeof got);
	doc_rows_init(&d, collect, &got);
	feed(&d, lines, 4);
	ck_assert(!d.bad && !d.stopped);
	ck_assert_uint_eq(got.n, 4);
	ck_assert_str_eq(got.row[0], T1 "|a-slug|active|pro|" K1 "|" SHA_B64 "|0|1|0");
	ck_assert_str_eq(got.row[1], T1 "|a-slug|active|pro|" K2 "|" SHA_B64 "|1|1|0");
	ck_assert_str_eq(got.row[2], T2 "|b-slug|active|pro|" K1 "|" SHA_B64 "|1|0|0");
	ck_assert_str_eq(got.row[3], T2 "|b-slug|active|pro|" K2 "|" SHA_B64 "|0|1|0");
	doc_rows_free(&d);

	/* A short row after a tenant's: refused, nothing read past it. */
	static char short_row[2][200] = {
		T1 "\ta-slug\tactive\tpro\t" K2 "\t" SHA "\tt\tt\t0",
		"1\ts\ta\tp\t\\N\t\\N\t\\N\t\\N\t0",
	};
	memset(&got, 0, sizeof got);
	doc_rows_init(&d, collect, &got);
	feed(&d, short_row, 2);
	ck_assert(d.bad);
	doc_rows_free(&d);

	static char differ[2][200] = {
		T1 "\ta-slug\tactive\tpro\t" K2 "\t" SHA "\tt\tt\t0",
		T1 "\ta-slug\tsuspended\tpro\t" K1 "\t" SHA "\tf\tt\t0",
	};
	memset(&got, 0, sizeof got);
	doc_rows_init(&d, collect, &got);
	feed(&d, differ, 2);
	ck_assert(d.bad);
	ck_assert_uint_eq(got.n, 0);
	doc_rows_free(&d);
}
END_TEST

/* Each field at the largest size it may have, and one more. */
START_TEST(field_limits)
{
	static const struct {
		const char *line;
		int bad;
	} cases[] = {
		/* slug: 63 bytes fit, 64 do not */
		{ T1 "\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 0 },
		{ T1 "\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* slug, status, plan: not empty */
		{ T1 "\t\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		{ T1 "\ts\t\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		{ T1 "\ts\tactive\t\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* status: 63 and 64 */
		{ T1 "\ts\tsssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\tpro\t\\N\t\\N\t\\N\t\\N\t0", 0 },
		{ T1 "\ts\tssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* plan: 63 and 64 */
		{ T1 "\ts\tactive\tppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp\t\\N\t\\N\t\\N\t\\N\t0", 0 },
		{ T1 "\ts\tactive\tpppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* key id: 24 and 25 */
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t0", 0 },
		{ T1 "\ts\tactive\tpro\t" K1 "b\t" SHA "\tt\tt\t0", 1 },
		/* SHA-256 hex: 64 and 65 */
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "0\tt\tt\t0", 1 },
		/* tenant id: a uuid, no more, no less */
		{ "1111111-1111-4111-8111-111111111111\ts\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		{ T1 "1\ts\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		{ "11111111x1111-4111-8111-111111111111\ts\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		{ "1111111G-1111-4111-8111-111111111111\ts\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* fields: 9, no fewer, no more */
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt", 1 },
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t0\t0", 1 },
		{ "", 1 },
		/* an escape where none can be */
		{ T1 "\ts\\\\x\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0", 1 },
		/* booleans and the expiry */
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tx\tt\t0", 1 },
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\t1\t0", 1 },
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t12a", 1 },
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t", 1 },
		{ T1 "\ts\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t9223372036854775807", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		static struct seen_rows got;
		static char line[1][200];
		struct doc_rows d;
		memset(&got, 0, sizeof got);
		snprintf(line[0], sizeof line[0], "%s", cases[i].line);
		doc_rows_init(&d, collect, &got);
		feed(&d, line, 1);
		ck_assert_msg(d.bad == cases[i].bad, "case %zu (%s): bad %d", i, cases[i].line, d.bad);
		ck_assert_uint_eq(got.n, cases[i].bad ? 0 : 1);
		doc_rows_free(&d);
	}
}
END_TEST

/* A consumer that refuses a row: nothing is handed on after it. */
START_TEST(consumer_stops)
{
	static char lines[3][200] = {
		T1 "\ta-slug\tactive\tpro\t" K2 "\t" SHA "\tt\tt\t0",
		T1 "\ta-slug\tactive\tpro\t" K1 "\t" SHA "\tt\tt\t0",
		T2 "\tb-slug\tactive\tpro\t\\N\t\\N\t\\N\t\\N\t0",
	};
	static struct seen_rows got;
	struct doc_rows d;
	memset(&got, 0, sizeof got);
	got.stop_at = 2;
	doc_rows_init(&d, collect, &got);
	feed(&d, lines, 3);
	ck_assert(d.stopped && !d.bad);
	ck_assert_uint_eq(got.n, 1);
	ck_assert(strstr(got.row[0], K1)); /* the smaller key first */
	doc_rows_free(&d);
}
END_TEST

Suite *doc_rows_suite(void)
{
	Suite *s = suite_create("doc_rows");
	TCase *tc = tcase_create("core");
	/* Every combination against the model: a few seconds under the
	 * sanitizers, more on a loaded machine. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, grouped_against_model);
	tcase_add_test(tc, interleaved);
	tcase_add_test(tc, field_limits);
	tcase_add_test(tc, consumer_stops);
	suite_add_tcase(s, tc);
	return s;
}
