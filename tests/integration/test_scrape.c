/* What a Prometheus scraper reads from both services: /metrics after some
 * traffic passes `promtool check metrics` without a remark, and the
 * README's metric tables (section "## Metrics") list exactly the families
 * each service exports, with their types: a family exported but not
 * listed, or listed as "always" there but not exported, fails. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

#define MAX_FAMILIES 256

struct family {
	char name[128];
	char type[16];
	char when[128];   /* README rows: the "when" column */
	int cp, dp;       /* README rows: which services' tables list it */
};

static struct it_stack st;

static void setup(void)
{
	it_stack_start(&st, "us", NULL, NULL);
}

static void teardown(void)
{
	it_stack_stop(&st);
}

/* Requests that make labelled series exist: successes, client errors and
 * unmatched routes on both services. */
static void traffic(void)
{
	char auth[300], u[512];
	struct it_resp r;
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", st.key);
	const char *const post_h[] = { auth, "Content-Type: application/json", NULL };
	const char *const get_h[] = { auth, NULL };
	const char *ev = "{\"id\":\"scrape-1\",\"action\":\"user.login\","
	                 "\"actor\":{\"id\":\"u-1\",\"type\":\"user\"}}";

	snprintf(u, sizeof u, "%s/v1/events", st.dp_url);
	it_http(&r, "POST", u, post_h, ev, strlen(ev));
	ck_assert_msg(r.status == 201 || r.status == 200, "POST /v1/events: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_http(&r, "GET", u, get_h, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 401);
	it_resp_free(&r);
	snprintf(u, sizeof u, "%s/no/such/route", st.dp_url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 404);
	it_resp_free(&r);

	snprintf(u, sizeof u, "%s/v1/plans", st.cp_url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	snprintf(u, sizeof u, "%s/no/such/route", st.cp_url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 404);
	it_resp_free(&r);
}

/* GET base/metrics into a malloc'd string the caller frees. */
static char *scrape(const char *base)
{
	char u[512];
	struct it_resp r;
	snprintf(u, sizeof u, "%s/metrics", base);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_msg(r.status == 200, "GET %s: %ld", u, r.status);
	char *text = strdup(r.body ? r.body : "");
	ck_assert_ptr_nonnull(text);
	it_resp_free(&r);
	return text;
}

/* A scrape passes promtool's parser and linter with nothing to say. */
static void promtool_check(const char *svc, const char *text)
{
	static char out[65536];
	char path[1024];
	ck_assert_msg(access("/usr/bin/promtool", X_OK) == 0,
	              "/usr/bin/promtool is missing (Debian package prometheus: make deps)");
	snprintf(path, sizeof path, "%s/metrics-%s-%d.txt", it_env("IT_LOG_DIR"), svc, (int)getpid());
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "exec /usr/bin/promtool check metrics < '%s'", path);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int rc = it_run("promtool", argv, NULL, out, sizeof out);
	ck_assert_msg(rc == 0 && !out[0], "promtool check metrics on the %s's /metrics (exit %d):\n%.3000s",
	              svc, rc, out);
	unlink(path);
}

static struct family *find(struct family *fs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(fs[i].name, name))
			return &fs[i];
	return NULL;
}

/* Lines of `text` that start with `prefix` and contain `part` (may be ""). */
static int count_lines(const char *text, const char *prefix, const char *part)
{
	int n = 0;
	size_t len = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *end = strchr(p, '\n');
		size_t ll = end ? (size_t)(end - p) : strlen(p);
		if (ll >= len && !strncmp(p, prefix, len) && (p[len] == '{' || p[len] == ' ')) {
			const char *hit = part[0] ? strstr(p, part) : p;
			n += hit && hit < p + ll;
		}
	}
	return n;
}

/* Every series of a histogram has its +Inf bucket, its _sum and its _count. */
static void histogram_complete(const char *svc, const char *text, const char *name)
{
	char b[160], sum[160], cnt[160];
	snprintf(b, sizeof b, "%s_bucket", name);
	snprintf(sum, sizeof sum, "%s_sum", name);
	snprintf(cnt, sizeof cnt, "%s_count", name);
	int nb = count_lines(text, b, "le=\"+Inf\""), ns = count_lines(text, sum, ""),
	    nc = count_lines(text, cnt, "");
	ck_assert_msg(nb == ns && ns == nc,
	              "%s: histogram %s has %d series with a +Inf bucket, %d _sum and %d _count lines",
	              svc, name, nb, ns, nc);
}

/* The families of a scrape, from its "# TYPE" lines; every sample must
 * belong to one of them (a histogram's by its _bucket, _sum, _count). */
static size_t families_of(const char *svc, const char *text, struct family *fs)
{
	size_t n = 0;
	char *copy = strdup(text);
	ck_assert_ptr_nonnull(copy);
	for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[16];
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			ck_assert_msg(!find(fs, n, name), "%s: family %s declared twice", svc, name);
			ck_assert_msg(n < MAX_FAMILIES, "more than %d families", MAX_FAMILIES);
			snprintf(fs[n].name, sizeof fs[n].name, "%s", name);
			snprintf(fs[n].type, sizeof fs[n].type, "%s", type);
			n++;
			continue;
		}
		if (line[0] == '#' || !line[0])
			continue;
		size_t len = strcspn(line, "{ ");
		ck_assert_msg(len < sizeof name, "%s: sample name too long: %.200s", svc, line);
		memcpy(name, line, len);
		name[len] = '\0';
		struct family *f = find(fs, n, name);
		if (!f) {
			static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
			for (int i = 0; i < 3 && !f; i++) {
				size_t sl = strlen(suffixes[i]);
				if (len > sl && !strcmp(name + len - sl, suffixes[i])) {
					char base[128];
					memcpy(base, name, len - sl);
					base[len - sl] = '\0';
					f = find(fs, n, base);
					if (f && strcmp(f->type, "histogram") && strcmp(f->type, "summary"))
						f = NULL;
				}
			}
		}
		ck_assert_msg(f, "%s: sample of no declared family: %.200s", svc, line);
	}
	free(copy);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(fs[i].type, "histogram"))
			histogram_complete(svc, text, fs[i].name);
	return n;
}

/* Trims blanks and backticks around a table cell, in place. */
static char *cell(char *s)
{
	while (*s == ' ' || *s == '`')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '`'))
		s[--n] = '\0';
	return s;
}

/* The rows of the README's metric tables: under "## Metrics", the tables
 * after "### Both services", "### Control plane" and "### Data plane",
 * each row "| `name` | type | labels | when | meaning |". */
static size_t readme_families(struct family *fs)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/README.md", it_env("IT_ROOT"));
	char *text = it_slurp(path);
	ck_assert_msg(text, "%s is missing", path);
	size_t n = 0;
	int in = 0, cp = 0, dp = 0, tables = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "## ", 3)) {
			in = !strcmp(line, "## Metrics");
			cp = dp = 0;
			continue;
		}
		if (!in)
			continue;
		if (!strncmp(line, "### ", 4)) {
			/* The router agent's table is checked against its own scrape
			 * (test_cells.c). */
			if (!strcmp(line + 4, "Cell router")) {
				in = 0;
				continue;
			}
			cp = !strcmp(line + 4, "Both services") || !strcmp(line + 4, "Control plane");
			dp = !strcmp(line + 4, "Both services") || !strcmp(line + 4, "Data plane");
			ck_assert_msg(cp || dp, "README: unknown metrics subsection '%s'", line);
			tables++;
			continue;
		}
		if (strncmp(line, "| `", 3))
			continue;
		char *cells[6];
		int nc = 0;
		for (char *p = line + 1, *bar; nc < 6 && (bar = strchr(p, '|')); p = bar + 1) {
			*bar = '\0';
			cells[nc++] = cell(p);
		}
		ck_assert_msg(nc == 5, "README metrics row without 5 cells: %s", cells[0]);
		struct family *f = find(fs, n, cells[0]);
		ck_assert_msg(!f || !((f->cp && cp) || (f->dp && dp)), "README lists %s twice for one service",
		              cells[0]);
		ck_assert_msg(n < MAX_FAMILIES, "more than %d README rows", MAX_FAMILIES);
		f = &fs[n++];
		snprintf(f->name, sizeof f->name, "%s", cells[0]);
		snprintf(f->type, sizeof f->type, "%s", cells[1]);
		snprintf(f->when, sizeof f->when, "%s", cells[3]);
		f->cp = cp;
		f->dp = dp;
		ck_assert_msg(f->when[0], "README: %s has an empty 'when' cell (always, or the condition)",
		              f->name);
	}
	free(text);
	ck_assert_msg(tables == 3 && n > 0, "README has no '## Metrics' section with its three tables");
	return n;
}

/* Appends to the message in buf while it fits. */
static void note(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t size, const char *fmt, ...)
{
	size_t l = strlen(buf);
	va_list ap;
	va_start(ap, fmt);
	if (l + 1 < size)
		vsnprintf(buf + l, size - l, fmt, ap);
	va_end(ap);
}

/* The README's tables against one service's scrape, both ways. */
static void compare(const char *svc, int is_cp, const struct family *got, size_t ngot,
                    struct family *doc, size_t ndoc)
{
	char missing[4096] = "", extra[4096] = "", types[4096] = "";
	for (size_t i = 0; i < ngot; i++) {
		struct family *d = NULL;
		for (size_t k = 0; k < ndoc && !d; k++)
			if (!strcmp(doc[k].name, got[i].name) && (is_cp ? doc[k].cp : doc[k].dp))
				d = &doc[k];
		if (!d)
			note(missing, sizeof missing, " %s (%s);", got[i].name, got[i].type);
		else if (strcmp(d->type, got[i].type))
			note(types, sizeof types, " %s is a %s, the README says %s;", got[i].name, got[i].type,
			     d->type);
	}
	for (size_t k = 0; k < ndoc; k++) {
		if (!(is_cp ? doc[k].cp : doc[k].dp) || strcmp(doc[k].when, "always"))
			continue;
		int found = 0;
		for (size_t i = 0; i < ngot && !found; i++)
			found = !strcmp(doc[k].name, got[i].name);
		if (!found)
			note(extra, sizeof extra, " %s;", doc[k].name);
	}
	ck_assert_msg(!missing[0] && !extra[0] && !types[0],
	              "the %s's /metrics and the README's metric tables disagree:\n"
	              "  exported, not in the README:%s\n"
	              "  in the README as 'always', not exported:%s\n"
	              "  types:%s",
	              svc, missing[0] ? missing : " -", extra[0] ? extra : " -", types[0] ? types : " -");
}

/* Both scrapes pass promtool check metrics, and the README lists what they export. */
START_TEST(metrics_lint_and_readme)
{
	static struct family cpf[MAX_FAMILIES], dpf[MAX_FAMILIES], doc[MAX_FAMILIES];
	traffic();
	char *cpt = scrape(st.cp_url), *dpt = scrape(st.dp_url);
	/* Series with labels exist: the scrape saw the traffic. */
	ck_assert_msg(strstr(dpt, "http_requests_total{method=\"POST\",route=\"/v1/events\""),
	              "no POST /v1/events series in:\n%.2000s", dpt);
	ck_assert_msg(strstr(dpt, ",status=\"401\"}"), "no status=\"401\" series");
	ck_assert_msg(strstr(cpt, "route=\"unmatched\",status=\"404\"}"), "no unmatched 404 series");
	promtool_check("control plane", cpt);
	promtool_check("data plane", dpt);

	size_t ncp = families_of("control plane", cpt, cpf);
	size_t ndp = families_of("data plane", dpt, dpf);
	size_t ndoc = readme_families(doc);
	compare("control plane", 1, cpf, ncp, doc, ndoc);
	compare("data plane", 0, dpf, ndp, doc, ndoc);
	free(cpt);
	free(dpt);
}
END_TEST

Suite *scrape_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("scrape");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, metrics_lint_and_readme);
	suite_add_tcase(s, tc);
	return s;
}
