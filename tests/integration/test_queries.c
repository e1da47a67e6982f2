/* What a query string may say, on both services, and every query GET
 * /v1/events answers, against a reference model kept by the test.
 *
 *   misspelled_parameters_refused   every query parameter the OpenAPI files document, on
 *                                   every operation that documents it, sent misspelled: 400
 *                                   naming it; every route refuses an undeclared one; a
 *                                   repeated single parameter, 21 values, 65 parameters
 *   events_every_query_combination  all 512 subsets of the nine filters of GET /v1/events,
 *                                   both orders, paged by cursor, against the model
 *   events_query_bounds             each bound at both ends, and a cursor under another query
 *
 * CK_RUN_SUITE=queries runs them. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixtures.h"
#include "it.h"

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

/* `method url` answers 400 validation_failed naming `field`. */
static void expect_refused(const char *method, const char *url, const char *auth, const char *field)
{
	struct it_resp r;
	char h[512];
	const char *hs[2] = { NULL, NULL };
	if (auth) {
		snprintf(h, sizeof h, "Authorization: %s", auth);
		hs[0] = h;
	}
	it_http(&r, method, url, hs, NULL, 0);
	json_t *j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *f = json_string_value(json_object_get(j, "field"));
	ck_assert_msg(r.status == 400 && code && !strcmp(code, "validation_failed") && f && !strcmp(f, field),
	              "%s %s: %ld, want 400 validation_failed naming '%s': %.300s", method, url, r.status, field,
	              r.body ? r.body : "");
	json_decref(j);
	it_resp_free(&r);
}

static void expect_ok(const char *url, const char *auth)
{
	json_t *j;
	long st = get_json_auth(url, auth, &j);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	ck_assert_msg(st == 200, "GET %s: %ld, want 200: %.300s", url, st, text ? text : "");
	free(text);
	json_decref(j);
}

/* A plan whose rate never gets in the way of thousands of reads, for the
 * stack's tenant. */
static void fast_plan(struct it_stack *s)
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/plans",
	               "{\"id\":\"queries\",\"name\":\"Queries\",\"currency\":\"USD\",\"base_price\":0,"
	               "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	               "\"monthly_event_quota\":1000000,\"retention_days\":30}");
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(s, &r, "PATCH", it_fmt("/v1/tenants/%s", s->tenant), "{\"plan\":\"queries\"}");
	ck_assert_msg(r.status == 200, "PATCH tenant: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_sync(s);
}

/* ------------------------------------------------------------------ */
/* Misspelled parameters                                               */

/* Every operation of a spec with its query parameters, resolved through
 * $ref: "METHOD PATH AUTH name name ..." per line. */
static const char py_params[] =
	"import sys, yaml\n"
	"d = yaml.safe_load(open(sys.argv[1]))\n"
	"def res(p):\n"
	"    while isinstance(p, dict) and '$ref' in p:\n"
	"        node = d\n"
	"        for part in p['$ref'].lstrip('#/').split('/'): node = node[part]\n"
	"        p = node\n"
	"    return p\n"
	"for path, item in d['paths'].items():\n"
	"    common = [res(p) for p in item.get('parameters') or []]\n"
	"    for m, op in item.items():\n"
	"        if m not in ('get', 'post', 'patch', 'delete', 'put'): continue\n"
	"        ps = common + [res(p) for p in op.get('parameters') or []]\n"
	"        names = [p['name'] for p in ps if p.get('in') == 'query']\n"
	"        print(' '.join([m.upper(), path, op.get('x-celltrail-auth', '?')] + names))\n";

/* The credentials of an auth level of the stack. */
static const char *auth_of(const struct it_stack *s, const char *level, char *buf, size_t len)
{
	if (!strcmp(level, "public"))
		return NULL;
	if (!strcmp(level, "api_key"))
		snprintf(buf, len, "Bearer %s", s->key);
	else if (!strcmp(level, "region"))
		snprintf(buf, len, "Bearer %s", s->dp_base[4] + strlen("DP_REGION_TOKEN="));
	else
		snprintf(buf, len, "Bearer %s", IT_ADMIN_TOKEN);
	return buf;
}

/* `path` with its {parameters} filled: the stack's region or tenant, or
 * a plausible id (the query is refused before any handler looks). */
static const char *fill_path(const struct it_stack *s, const char *path)
{
	char out[512] = "";
	size_t n = 0;
	for (const char *p = path; *p && n + 64 < sizeof out;) {
		if (*p != '{') {
			out[n++] = *p++;
			continue;
		}
		const char *e = strchr(p, '}');
		ck_assert_ptr_nonnull(e);
		const char *v = !strncmp(p, "{region}", 8) || !strncmp(p, "{name}", 6) ? s->region
		                : !strncmp(p, "{id}", 4)                              ? s->tenant
		                : !strncmp(p, "{period}", 8)                          ? "2026-01"
		                                                                      : "x1";
		n += (size_t)snprintf(out + n, sizeof out - n, "%s", v);
		p = e + 1;
	}
	out[n] = '\0';
	return it_fmt("%s", out);
}

/* A documented name misspelled: the second letter dropped (a one-letter
 * name doubled); "metadata.{key}" stands for any key. */
static void misspell(const char *name, char *out, size_t len)
{
	char real[128];
	const char *brace = strchr(name, '{');
	snprintf(real, sizeof real, "%.*s%s", brace ? (int)(brace - name) : (int)strlen(name), name, brace ? "role" : "");
	if (strlen(real) == 1)
		snprintf(out, len, "%s%s", real, real);
	else
		snprintf(out, len, "%c%s", real[0], real + 2);
}

START_TEST(misspelled_parameters_refused)
{
	static const char *const services[] = { "control-plane", "data-plane" };
	struct it_stack s;
	char out[65536], authbuf[512];
	int checked = 0, ops = 0, moves = 0;

	it_stack_start(&s, "eu", NULL, NULL);
	fast_plan(&s);
	for (int k = 0; k < 2; k++) {
		char spec[1024], py[64];
		snprintf(spec, sizeof spec, "%s/%s/openapi.yaml", it_env("IT_ROOT"), services[k]);
		snprintf(py, sizeof py, "python3");
		char *argv[] = { py, "-c", (char *)py_params, spec, NULL };
		int st = it_run("python3", argv, NULL, out, sizeof out);
		ck_assert_msg(st == 0, "reading %s: %.400s", spec, out);
		const char *base = k ? s.dp_url : s.cp_url;
		for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char *f[32], *sv = NULL;
			int nf = 0;
			for (char *w = strtok_r(line, " ", &sv); w && nf < 32; w = strtok_r(NULL, " ", &sv))
				f[nf++] = w;
			ck_assert_int_ge(nf, 3);
			/* A move route answers only a data plane of a cell with a
			 * move credential: test_moves_dp.c checks its parameters. */
			if (!strcmp(f[2], "move")) {
				moves++;
				continue;
			}
			const char *auth = auth_of(&s, f[2], authbuf, sizeof authbuf);
			const char *url = it_fmt("%s%s", base, fill_path(&s, f[1]));
			/* Every route refuses a parameter it does not declare. */
			expect_refused(f[0], it_fmt("%s?zz_undeclared=1", url), auth, "zz_undeclared");
			ops++;
			for (int i = 3; i < nf; i++) {
				char bad[300];
				misspell(f[i], bad, sizeof bad);
				expect_refused(f[0], it_fmt("%s?%s=1", url, bad), auth, bad);
				checked++;
			}
		}
	}
	/* Both specs document filters; most of them on the events listing. */
	ck_assert_int_ge(ops, 40);
	ck_assert_int_eq(moves, 9);
	ck_assert_int_ge(checked, 25);

	/* A parameter that is not repeatable, given twice; given without '='. */
	char a[512];
	snprintf(a, sizeof a, "Bearer %s", s.key);
	expect_refused("GET", it_fmt("%s/v1/events?limit=1&limit=2", s.dp_url), a, "limit");
	expect_refused("GET", it_fmt("%s/v1/events?q=a&q=a", s.dp_url), a, "q");
	expect_refused("GET", it_fmt("%s/v1/events?since=2026-01-01T00:00:00Z&since=2026-01-01T00:00:00Z", s.dp_url), a,
	               "since");
	expect_refused("GET", it_fmt("%s/v1/events?limit", s.dp_url), a, "limit");
	expect_refused("GET", it_fmt("%s/v1/tenants?limit=1&limit=1", s.cp_url), "Bearer " IT_ADMIN_TOKEN, "limit");
	expect_refused("GET", it_fmt("%s/v1/regions/%s/config?wait=1&wait=1", s.cp_url, s.region),
	               auth_of(&s, "region", authbuf, sizeof authbuf), "wait");
	/* Empty pieces are no parameters. */
	expect_ok(it_fmt("%s/v1/events?&limit=1&", s.dp_url), a);
	/* 20 values of a filter pass, 21 are refused; likewise per metadata key. */
	const char *filters[] = { "actor", "actor_type", "action", "target", "target_type", "metadata.role" };
	for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
		char q[2048] = "";
		for (int v = 0; v < 20; v++)
			snprintf(q + strlen(q), sizeof q - strlen(q), "&%s=v%d", filters[i], v);
		expect_ok(it_fmt("%s/v1/events?%s", s.dp_url, q + 1), a);
		expect_refused("GET", it_fmt("%s/v1/events?%s&%s=v20", s.dp_url, q + 1, filters[i]), a, filters[i]);
	}
	/* 64 parameters pass, the 65th is refused and named. */
	char q[4096] = "";
	for (int v = 0; v < 64; v++)
		snprintf(q + strlen(q), sizeof q - strlen(q), "&metadata.k%d=v", v);
	expect_ok(it_fmt("%s/v1/events?%s", s.dp_url, q + 1), a);
	expect_refused("GET", it_fmt("%s/v1/events?%s&metadata.k64=v", s.dp_url, q + 1), a, "metadata.k64");
	/* Unauthenticated, the credentials are refused first: nothing is
	 * said about the query. */
	json_t *j;
	ck_assert_int_eq(get_json_auth(it_fmt("%s/v1/events?actr=u", s.dp_url), NULL, &j), 401);
	json_decref(j);
	it_stack_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The reference model of GET /v1/events                               */

#define NEV 240
#define NB 30 /* events of the neighbour tenant */

static const char *const m_actions[] = { "user.login", "user.logout", "user.x.y", "user", "doc.read",
	                                 "doc.write",  "a%b.c",       "a_b.c",    "axb.c" };
static const char *const m_actors[] = { "u1", "u2", "u3", "u4", "svc-1" };
static const char *const m_atypes[] = { "user", "service" };
static const char *const m_names[] = { "Alice Smith", "Bob Jones", NULL };
static const char *const m_tids[] = { "d1", "d2", "d3", "r1" };
static const char *const m_ttypes[] = { "doc", "repo" };
static const char *const m_tnames[] = { "Q3 Plan", NULL, "Roadmap" };
static const char *const m_roles[] = { "admin", "dev", NULL };
static const char *const m_envs[] = { "prod", "staging" };

struct mev {
	char id[16];
	int64_t occ, rec, seq;
	const char *action, *actor, *atype, *aname;
	int nt;
	const char *tid[2], *ttype[2], *tname[2];
	const char *role, *env;
	char words[24][24]; /* lowercase words: what q matches */
	int nw;
};

static void api_time_us(int64_t us, char out[40])
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char b[24];
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%06dZ", b, (int)(us % 1000000));
}

/* Adds the words of `text` (runs of letters and digits, lowercased). */
static void add_words(struct mev *e, const char *text)
{
	if (!text)
		return;
	for (const char *p = text; *p;) {
		while (*p && !isalnum((unsigned char)*p))
			p++;
		size_t n = 0;
		char w[24];
		while (isalnum((unsigned char)p[n]) && n < sizeof w - 1) {
			w[n] = (char)tolower((unsigned char)p[n]);
			n++;
		}
		p += n;
		if (!n)
			continue;
		w[n] = '\0';
		int dup = 0;
		for (int i = 0; i < e->nw; i++)
			dup |= !strcmp(e->words[i], w);
		if (!dup && e->nw < 24)
			snprintf(e->words[e->nw++], sizeof e->words[0], "%s", w);
	}
}

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static void make_event(struct mev *e, const char *prefix, int i, int64_t base)
{
	memset(e, 0, sizeof *e);
	snprintf(e->id, sizeof e->id, "%s%03d", prefix, i);
	/* 80 instants for 240 events: many ties, which seq breaks. */
	e->occ = base + (int64_t)(next_rand() % 80) * 1000000 + (i % 7 == 0 ? 250000 : 0);
	e->action = m_actions[next_rand() % 9];
	e->actor = m_actors[next_rand() % 5];
	e->atype = m_atypes[!strcmp(e->actor, "svc-1")];
	e->aname = m_names[next_rand() % 3];
	e->nt = (int)(next_rand() % 3);
	for (int k = 0; k < e->nt; k++) {
		int t = (int)(next_rand() % 4);
		e->tid[k] = m_tids[t];
		e->ttype[k] = m_ttypes[t == 3];
		e->tname[k] = m_tnames[next_rand() % 3];
	}
	if (e->nt == 2 && e->tid[0] == e->tid[1])
		e->nt = 1;
	e->role = m_roles[next_rand() % 3];
	e->env = m_envs[next_rand() % 2];
	add_words(e, e->action);
	add_words(e, e->actor);
	add_words(e, e->aname);
	for (int k = 0; k < e->nt; k++) {
		add_words(e, e->tid[k]);
		add_words(e, e->tname[k]);
	}
	add_words(e, e->role);
	add_words(e, e->env);
}

static const char *event_json(const struct mev *e)
{
	char occ[40], tg[512] = "", name[64] = "", role[64] = "";
	api_time_us(e->occ, occ);
	for (int k = 0; k < e->nt; k++) {
		char tn[64] = "";
		if (e->tname[k])
			snprintf(tn, sizeof tn, ",\"name\":\"%s\"", e->tname[k]);
		snprintf(tg + strlen(tg), sizeof tg - strlen(tg), "%s{\"id\":\"%s\",\"type\":\"%s\"%s}", k ? "," : "",
		         e->tid[k], e->ttype[k], tn);
	}
	if (e->aname)
		snprintf(name, sizeof name, ",\"name\":\"%s\"", e->aname);
	if (e->role)
		snprintf(role, sizeof role, "\"role\":\"%s\",", e->role);
	/* A number and a nested object in metadata: neither a string member. */
	return it_fmt("{\"id\":\"%s\",\"occurred_at\":\"%s\",\"action\":\"%s\",\"actor\":{\"id\":\"%s\",\"type\":\"%s\"%s},"
	              "\"targets\":[%s],\"metadata\":{%s\"env\":\"%s\",\"n\":5,\"deep\":{\"role\":\"dev\"}}}",
	              e->id, occ, e->action, e->actor, e->atype, name, tg, role, e->env);
}

/* One query of the model: each filter 0 to 3 values. */
struct mq {
	const char *actor[3], *atype[3], *action[3], *target[3], *ttype[3], *mkey[3], *mval[3];
	int nactor, natype, naction, ntarget, nttype, nmeta;
	const char *q;
	int64_t since, until, rsince, runtil; /* -1: none */
	int asc;
};

static int any_of(const char *const *vals, int n, const char *v)
{
	for (int i = 0; i < n; i++)
		if (v && !strcmp(vals[i], v))
			return 1;
	return 0;
}

static int action_matches(const struct mq *q, const char *a)
{
	for (int i = 0; i < q->naction; i++) {
		size_t len = strlen(q->action[i]);
		if (len > 2 && !strcmp(q->action[i] + len - 2, ".*")) {
			if (!strncmp(a, q->action[i], len - 1)) /* "user.*": starts with "user." */
				return 1;
		} else if (!strcmp(a, q->action[i])) {
			return 1;
		}
	}
	return 0;
}

static int word_matches(const struct mev *e, const char *q)
{
	struct mev tmp = { .nw = 0 };
	add_words(&tmp, q);
	for (int i = 0; i < tmp.nw; i++) {
		int found = 0;
		for (int j = 0; j < e->nw; j++)
			found |= !strcmp(tmp.words[i], e->words[j]);
		if (!found)
			return 0;
	}
	return 1;
}

static int meta_matches(const struct mq *q, const struct mev *e)
{
	for (int i = 0; i < q->nmeta; i++) {
		int ok = 0;
		for (int j = 0; j < q->nmeta; j++) {
			if (strcmp(q->mkey[j], q->mkey[i]))
				continue;
			const char *have = !strcmp(q->mkey[j], "role") ? e->role : !strcmp(q->mkey[j], "env") ? e->env : NULL;
			ok |= have && !strcmp(have, q->mval[j]);
		}
		if (!ok)
			return 0;
	}
	return 1;
}

static int matches(const struct mq *q, const struct mev *e)
{
	if (q->nactor && !any_of(q->actor, q->nactor, e->actor))
		return 0;
	if (q->natype && !any_of(q->atype, q->natype, e->atype))
		return 0;
	if (q->naction && !action_matches(q, e->action))
		return 0;
	if (q->ntarget && !(any_of(q->target, q->ntarget, e->tid[0]) || (e->nt > 1 && any_of(q->target, q->ntarget, e->tid[1]))))
		return 0;
	if (q->nttype && !((e->nt > 0 && any_of(q->ttype, q->nttype, e->ttype[0])) ||
	                   (e->nt > 1 && any_of(q->ttype, q->nttype, e->ttype[1]))))
		return 0;
	if (q->ntarget && e->nt == 0)
		return 0;
	if (q->q && !word_matches(e, q->q))
		return 0;
	if (!meta_matches(q, e))
		return 0;
	if ((q->since >= 0 && e->occ < q->since) || (q->until >= 0 && e->occ >= q->until))
		return 0;
	if ((q->rsince >= 0 && e->rec < q->rsince) || (q->runtil >= 0 && e->rec >= q->runtil))
		return 0;
	return 1;
}

static const struct mev *sort_ev;
static int sort_asc;
static int by_key(const void *pa, const void *pb)
{
	const struct mev *a = &sort_ev[*(const int *)pa], *b = &sort_ev[*(const int *)pb];
	int c = a->occ != b->occ ? (a->occ < b->occ ? -1 : 1) : (a->seq < b->seq ? -1 : a->seq > b->seq);
	return sort_asc ? c : -c;
}

/* The model's ids for `q`, in order. */
static int model(const struct mev *ev, int n, const struct mq *q, int out[NEV])
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (matches(q, &ev[i]))
			out[k++] = i;
	sort_ev = ev;
	sort_asc = q->asc;
	qsort(out, (size_t)k, sizeof *out, by_key);
	return k;
}

static void add_param(char *qs, size_t len, const char *name, const char *value)
{
	snprintf(qs + strlen(qs), len - strlen(qs), "&%s=%s", name, query_enc(value));
}

static void time_param(char *qs, size_t len, const char *name, int64_t us)
{
	char t[40];
	if (us < 0)
		return;
	api_time_us(us, t);
	add_param(qs, len, name, t);
}

static void query_string(const struct mq *q, char *qs, size_t len)
{
	qs[0] = '\0';
	for (int i = 0; i < q->nactor; i++)
		add_param(qs, len, "actor", q->actor[i]);
	for (int i = 0; i < q->natype; i++)
		add_param(qs, len, "actor_type", q->atype[i]);
	for (int i = 0; i < q->naction; i++)
		add_param(qs, len, "action", q->action[i]);
	for (int i = 0; i < q->ntarget; i++)
		add_param(qs, len, "target", q->target[i]);
	for (int i = 0; i < q->nttype; i++)
		add_param(qs, len, "target_type", q->ttype[i]);
	for (int i = 0; i < q->nmeta; i++)
		add_param(qs, len, it_fmt("metadata.%s", q->mkey[i]), q->mval[i]);
	if (q->q)
		add_param(qs, len, "q", q->q);
	time_param(qs, len, "since", q->since);
	time_param(qs, len, "until", q->until);
	time_param(qs, len, "received_since", q->rsince);
	time_param(qs, len, "received_until", q->runtil);
	if (q->asc)
		add_param(qs, len, "order", "asc");
	else if (strlen(qs) % 2)
		add_param(qs, len, "order", "desc"); /* the default, given now and then */
}

/* Pages through `qs` by `limit`: each page at most `limit` items, full
 * when more follow, next_cursor exactly when has_more; together exactly
 * want[0..n-1] of `ev`. */
static void page_through(const char *base, const char *auth, const char *qs, int limit, const struct mev *ev,
                         const int *want, int n)
{
	char cursor[512] = "";
	int got = 0, pages = 0;
	for (;;) {
		const char *u = it_fmt("%s/v1/events?limit=%d%s%s%s", base, limit, qs, cursor[0] ? "&cursor=" : "",
		                       cursor[0] ? query_enc(cursor) : "");
		json_t *j;
		long st = get_json_auth(u, auth, &j);
		ck_assert_msg(st == 200, "GET %s: %ld", u, st);
		json_t *items = json_object_get(j, "items"), *next = json_object_get(j, "next_cursor");
		json_t *more = json_object_get(j, "has_more");
		ck_assert_msg(json_is_array(items) && json_is_boolean(more), "GET %s: not a page", u);
		ck_assert_msg(json_is_true(more) ? json_is_string(next) : next == NULL,
		              "GET %s: next_cursor must be given exactly when has_more", u);
		size_t k = json_array_size(items);
		ck_assert_msg(k <= (size_t)limit && (!json_is_true(more) || k == (size_t)limit),
		              "GET %s: %zu items on a page of %d (has_more %d)", u, k, limit, json_is_true(more));
		ck_assert_msg(pages == 0 || k > 0, "GET %s: an empty page after a cursor", u);
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			const char *id = json_string_value(json_object_get(it, "id"));
			ck_assert_msg(got < n && id && !strcmp(id, ev[want[got]].id),
			              "?%s by %d: item %d is %s, want %s (%d in all)", qs + (*qs == '&'), limit, got,
			              id ? id : "?", got < n ? ev[want[got]].id : "nothing more", n);
			got++;
		}
		pages++;
		if (!json_is_true(more)) {
			json_decref(j);
			break;
		}
		snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
		json_decref(j);
	}
	ck_assert_msg(got == n, "?%s by %d: %d items, want %d", qs + (*qs == '&'), limit, got, n);
}

/* Posts `n` events in batches of 20 (so that received_at takes several
 * values), then reads each one's seq and received_at from the database. */
static void store(const struct it_stack *s, const char *key, struct mev *ev, int n, const char *tenant)
{
	char auth[256];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	const char *const h[] = { "Content-Type: application/json", auth, NULL };
	for (int i = 0; i < n; i += 20) {
		char body[65536] = "{\"events\":[";
		for (int k = i; k < n && k < i + 20; k++)
			snprintf(body + strlen(body), sizeof body - strlen(body), "%s%s", k > i ? "," : "", event_json(&ev[k]));
		snprintf(body + strlen(body), sizeof body - strlen(body), "]}");
		struct it_resp r;
		it_http(&r, "POST", it_fmt("%s/v1/events", s->dp_url), h, body, strlen(body));
		ck_assert_msg(r.status == 201, "POST: %ld %.300s", r.status, r.body);
		it_resp_free(&r);
	}
	char *all = it_sql(s->dp_db, it_fmt("SELECT string_agg(id || ' ' || seq || ' ' || "
	                                    "(extract(epoch FROM received_at) * 1000000)::bigint, ',')"
	                                    " FROM events WHERE tenant_id = '%s'", tenant));
	ck_assert_ptr_nonnull(all);
	int found = 0;
	for (char *sv = NULL, *row = strtok_r(all, ",", &sv); row; row = strtok_r(NULL, ",", &sv)) {
		char id[32];
		long long seq, rec;
		ck_assert_int_eq(sscanf(row, "%31s %lld %lld", id, &seq, &rec), 3);
		for (int i = 0; i < n; i++)
			if (!strcmp(ev[i].id, id)) {
				ev[i].seq = seq, ev[i].rec = rec;
				found++;
			}
	}
	ck_assert_int_eq(found, n);
	free(all);
}

/* The query of subset `mask` (bit per filter) and `variant`: values taken
 * from a seed event so that most combinations find something, with a
 * second value (any of), prefixes, bounds exactly at stored times. */
static void make_query(struct mq *q, unsigned mask, int variant, const struct mev *ev, int64_t base)
{
	static char qtext[4][64];
	const struct mev *e = &ev[(mask * 7 + (unsigned)variant * 31) % NEV];
	int v = (int)(mask + (unsigned)variant) % 3;
	memset(q, 0, sizeof *q);
	q->since = q->until = q->rsince = q->runtil = -1;
	q->asc = variant & 1;
	if (mask & 1) {
		q->actor[q->nactor++] = e->actor;
		if (v)
			q->actor[q->nactor++] = v == 1 ? "u9" : "u2";
	}
	if (mask & 2) {
		q->atype[q->natype++] = v == 2 ? "robot" : e->atype;
		if (v == 1)
			q->atype[q->natype++] = "service";
	}
	if (mask & 4) {
		/* The seed's action, exact or as a prefix of its first part, and
		 * the LIKE metacharacters taken literally. */
		static const char *const prefixes[] = { "user.*", "doc.*", "a%b.*", "a_b.*", "user.x.*" };
		if (v == 0)
			q->action[q->naction++] = e->action;
		else {
			q->action[q->naction++] = prefixes[(mask / 8 + (unsigned)variant) % 5];
			if (v == 2)
				q->action[q->naction++] = e->action;
		}
	}
	if (mask & 8) {
		q->target[q->ntarget++] = e->nt ? e->tid[0] : "d2";
		if (v == 1)
			q->target[q->ntarget++] = "r1";
	}
	if (mask & 16) {
		q->ttype[q->nttype++] = e->nt ? e->ttype[e->nt - 1] : "repo";
		if (v == 2)
			q->ttype[q->nttype++] = "nothing";
	}
	if (mask & 32) {
		/* occurred_at: since alone at the seed's time (included), until
		 * alone at it (excluded), or both around it. */
		if (v != 1)
			q->since = v == 0 ? e->occ : e->occ - 20 * 1000000;
		if (v != 0)
			q->until = v == 1 ? e->occ : e->occ + 1;
	}
	if (mask & 64) {
		if (v != 1)
			q->rsince = e->rec;
		if (v != 0)
			q->runtil = v == 1 ? e->rec : e->rec + 1;
	}
	if (mask & 128) {
		/* One or two of the seed's words, in another case. */
		char *t = qtext[(mask + (unsigned)variant) % 4];
		const char *w1 = e->words[(mask / 3) % (unsigned)e->nw], *w2 = e->words[(mask / 5 + 1) % (unsigned)e->nw];
		if (v == 0)
			snprintf(t, 64, "%s", w1);
		else if (v == 1)
			snprintf(t, 64, "%c%s, %s", toupper((unsigned char)w1[0]), w1 + 1, w2);
		else
			snprintf(t, 64, "%s zzz", w1); /* a word no event has */
		q->q = t;
	}
	if (mask & 256) {
		if (v != 1 && e->role) {
			q->mkey[q->nmeta] = "role", q->mval[q->nmeta++] = e->role;
			if (v == 2)
				q->mkey[q->nmeta] = "role", q->mval[q->nmeta++] = "nobody";
		}
		q->mkey[q->nmeta] = "env", q->mval[q->nmeta++] = v == 1 ? "prod" : e->env;
		if (v == 1 && !(mask & 1)) /* now and then, a member that is not a string: nothing */
			q->mkey[q->nmeta] = "deep", q->mval[q->nmeta++] = "dev";
	}
	(void)base;
}

/* Every subset of the nine filters (actor, actor_type, action, target,
 * target_type, since/until, received_since/received_until, q, metadata),
 * with values repeated for "any of", in both orders, paged by cursor,
 * gives exactly the model's events in the model's order; the neighbour
 * tenant's events never show. */
START_TEST(events_every_query_combination)
{
	static struct mev ev[NEV], other[NB];
	struct it_stack s;
	struct it_resp r;
	char auth[256], okey[200], otenant[40];
	int want[NEV];

	it_stack_start(&s, "eu", NULL, NULL);
	fast_plan(&s);
	/* The neighbour: a tenant with events of the same shapes. */
	it_stack_admin(&s, &r, "POST", "/v1/tenants",
	               "{\"name\":\"Neighbour\",\"slug\":\"neighbour-q\",\"region\":\"eu\",\"plan\":\"queries\"}");
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	snprintf(otenant, sizeof otenant, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	it_resp_free(&r);
	it_stack_admin(&s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", otenant),
	               "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\"]}");
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	snprintf(okey, sizeof okey, "%s", json_string_value(json_object_get(j, "secret")));
	json_decref(j);
	it_resp_free(&r);
	it_stack_sync(&s);

	int64_t base = ((int64_t)time(NULL) - 7200) * 1000000;
	rng = 12345;
	for (int i = 0; i < NEV; i++)
		make_event(&ev[i], "e", i, base);
	for (int i = 0; i < NB; i++)
		make_event(&other[i], "n", i, base);
	store(&s, okey, other, NB / 2, otenant);
	store(&s, s.key, ev, NEV, s.tenant);
	store(&s, okey, other + NB / 2, NB - NB / 2, otenant);
	snprintf(auth, sizeof auth, "Bearer %s", s.key);

	int nonempty = 0, paged = 0;
	for (unsigned mask = 0; mask < 512; mask++) {
		for (int variant = 0; variant < 2; variant++) {
			struct mq q;
			char qs[4096];
			make_query(&q, mask, variant, ev, base);
			query_string(&q, qs, sizeof qs);
			int n = model(ev, NEV, &q, want);
			/* About three pages, and at least two when there are two. */
			int limit = n <= 1 ? 1 + (int)(mask % 2) : (n + 2) / 3;
			page_through(s.dp_url, auth, qs, limit, ev, want, n);
			nonempty += n > 0;
			paged += n > limit;
		}
	}
	/* The model is not trivially empty: most queries find something and
	 * go through several pages, the one with every filter included. */
	ck_assert_int_ge(nonempty, 400);
	ck_assert_int_ge(paged, 300);
	struct mq all;
	for (int variant = 0; variant < 6; variant++) {
		make_query(&all, 511, variant, ev, base);
		char qs[4096];
		query_string(&all, qs, sizeof qs);
		int n = model(ev, NEV, &all, want);
		page_through(s.dp_url, auth, qs, 1, ev, want, n);
	}
	/* The neighbour sees its own only. */
	memset(&all, 0, sizeof all);
	all.since = all.until = all.rsince = all.runtil = -1;
	char oauth[256];
	snprintf(oauth, sizeof oauth, "Bearer %s", okey);
	int n = model(other, NB, &all, want);
	page_through(s.dp_url, oauth, "", 7, other, want, n);
	all.asc = 1;
	n = model(other, NB, &all, want);
	page_through(s.dp_url, oauth, "&order=asc", 4, other, want, n);
	it_stack_stop(&s);
}
END_TEST

/* Each bound of the query at both ends; a cursor is refused under any
 * other query (filters, order, tenant) and kept under another limit. */
START_TEST(events_query_bounds)
{
	struct it_stack s;
	struct it_resp r;
	char a[256];
	it_stack_start(&s, "eu", NULL, NULL);
	fast_plan(&s);
	snprintf(a, sizeof a, "Bearer %s", s.key);
	const char *const h[] = { "Content-Type: application/json", it_fmt("Authorization: %s", a), NULL };
	for (int i = 0; i < 3; i++) {
		const char *body = it_fmt("{\"id\":\"b%d\",\"action\":\"user.login\",\"actor\":{\"id\":\"u1\",\"type\":\"user\"},"
		                          "\"metadata\":{\"role\":\"admin\"}}", i);
		it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), h, body, strlen(body));
		ck_assert_int_eq(r.status, 201);
		it_resp_free(&r);
	}
	char x[1100];
	memset(x, 'x', sizeof x - 1);
	x[sizeof x - 1] = '\0';
	json_t *j;
	static const struct {
		const char *name;
		int max;
	} lens[] = { { "actor", 256 }, { "actor_type", 64 }, { "action", 512 }, { "target", 256 },
		     { "target_type", 64 }, { "metadata.role", 256 }, { "q", 256 } };
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		expect_ok(it_fmt("%s/v1/events?%s=%.*s", s.dp_url, lens[i].name, lens[i].max, x), a);
		expect_ok(it_fmt("%s/v1/events?%s=x", s.dp_url, lens[i].name), a);
		expect_refused("GET", it_fmt("%s/v1/events?%s=%.*s", s.dp_url, lens[i].name, lens[i].max + 1, x), a,
		               lens[i].name);
		expect_refused("GET", it_fmt("%s/v1/events?%s=", s.dp_url, lens[i].name), a, lens[i].name);
	}
	/* A metadata key of 128 bytes, not 129; "metadata." names no key. */
	expect_ok(it_fmt("%s/v1/events?metadata.%.128s=v", s.dp_url, x), a);
	expect_refused("GET", it_fmt("%s/v1/events?metadata.%.129s=v", s.dp_url, x), a, it_fmt("metadata.%.129s", x));
	expect_refused("GET", it_fmt("%s/v1/events?metadata.=v", s.dp_url), a, "metadata.");
	/* q: 1 to 8 words. */
	expect_ok(it_fmt("%s/v1/events?q=%s", s.dp_url, query_enc("a b c d e f g h")), a);
	expect_refused("GET", it_fmt("%s/v1/events?q=%s", s.dp_url, query_enc("a b c d e f g h i")), a, "q");
	expect_refused("GET", it_fmt("%s/v1/events?q=%s", s.dp_url, query_enc(" .,- ")), a, "q");
	/* order and limit. */
	expect_refused("GET", it_fmt("%s/v1/events?order=newest", s.dp_url), a, "order");
	expect_refused("GET", it_fmt("%s/v1/events?order=ASC", s.dp_url), a, "order");
	expect_ok(it_fmt("%s/v1/events?limit=1000&order=asc", s.dp_url), a);
	expect_refused("GET", it_fmt("%s/v1/events?limit=1001", s.dp_url), a, "limit");
	expect_refused("GET", it_fmt("%s/v1/events?received_since=soon", s.dp_url), a, "received_since");
	expect_refused("GET", it_fmt("%s/v1/events?received_until=2026-01-01", s.dp_url), a, "received_until");

	/* Values past an index entry's size are stored and found: a metadata
	 * value of 7800 hexadecimal digits (one word that does not compress),
	 * and a value and a word just past the 256 bytes kept as they are. */
	{
		char big[7801], mid[251], body[9000];
		uint32_t rnd = 2463534242u; /* xorshift: digits that do not compress */
		for (size_t i = 0; i < sizeof big - 1; i++) {
			rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
			big[i] = "0123456789abcdef"[rnd % 16];
		}
		big[sizeof big - 1] = '\0';
		for (size_t i = 0; i < sizeof mid - 1; i++) {
			rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
			mid[i] = "abcdefghijklmnopqrstuvwxyz"[rnd % 26];
		}
		mid[sizeof mid - 1] = '\0';
		snprintf(body, sizeof body, "{\"id\":\"long-1\",\"action\":\"doc.note\",\"actor\":{\"id\":\"u1\",\"type\":\"user\"},"
		                            "\"metadata\":{\"blob\":\"%s\",\"mid\":\"%s\",\"tag\":\"zeta\"}}", big, mid);
		char hauth[300];
		snprintf(hauth, sizeof hauth, "Authorization: %s", a);
		const char *const hp[] = { "Content-Type: application/json", hauth, NULL };
		it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), hp, body, strlen(body));
		ck_assert_msg(r.status == 201, "an event with a 7800-byte metadata value: %ld %.600s", r.status, r.body);
		it_resp_free(&r);
		const char *const finds[] = { "q=zeta", it_fmt("q=%s", mid), it_fmt("metadata.mid=%s", mid),
			                      "metadata.tag=zeta" };
		for (size_t i = 0; i < sizeof finds / sizeof *finds; i++) {
			ck_assert_int_eq(get_json_auth(it_fmt("%s/v1/events?%s", s.dp_url, finds[i]), a, &j), 200);
			json_t *items = json_object_get(j, "items");
			ck_assert_msg(json_array_size(items) == 1 &&
			                  !strcmp(json_string_value(json_object_get(json_array_get(items, 0), "id")), "long-1"),
			              "?%.40s... finds the long event", finds[i]);
			json_decref(j);
		}
		/* The same long value one letter off finds nothing. */
		mid[0] = mid[0] == 'a' ? 'b' : 'a';
		ck_assert_int_eq(get_json_auth(it_fmt("%s/v1/events?metadata.mid=%s", s.dp_url, mid), a, &j), 200);
		ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 0);
		json_decref(j);
	}

	/* A row the previous build stores (its INSERT names none of the
	 * derived columns) is found by every new filter all the same. */
	free(it_sql(s.dp_db, it_fmt("INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id,"
	                            " target_ids, content_sha256, body) SELECT '%s', 'old-build', now(), now(),"
	                            " 'legacy.thing', 'ghost', ARRAY['t9'], sha256('x'), json_build_object('id',"
	                            " 'old-build', 'action', 'legacy.thing', 'actor', json_build_object('id', 'ghost',"
	                            " 'type', 'robot', 'name', 'Old Timer'), 'targets', json_build_array("
	                            "json_build_object('id', 't9', 'type', 'vault', 'name', 'Gold Vault')), 'context',"
	                            " '{}'::json, 'metadata', json_build_object('tier', 'gold', 'n', 3))",
	                            s.tenant)));
	ck_assert_int_eq(get_json_auth(it_fmt("%s/v1/events?actor_type=robot&target_type=vault&q=%s&metadata.tier=gold"
	                                 "&action=legacy.*", s.dp_url, query_enc("TIMER gold vault")), a, &j), 200);
	ck_assert_msg(json_array_size(json_object_get(j, "items")) == 1 &&
	                  !strcmp(it_js(json_array_get(json_object_get(j, "items"), 0), "id"), "old-build"),
	              "the previous build's row is not found by the new filters");
	json_decref(j);

	/* A cursor belongs to its query. */
	ck_assert_int_eq(get_json_auth(it_fmt("%s/v1/events?limit=1&action=user.*", s.dp_url), a, &j), 200);
	char cur[256];
	snprintf(cur, sizeof cur, "%s", json_string_value(json_object_get(j, "next_cursor")));
	json_decref(j);
	const char *c = query_enc(cur);
	expect_ok(it_fmt("%s/v1/events?limit=2&action=user.*&cursor=%s", s.dp_url, c), a);
	expect_ok(it_fmt("%s/v1/events?action=user.*&order=desc&cursor=%s", s.dp_url, c), a);
	expect_refused("GET", it_fmt("%s/v1/events?limit=1&cursor=%s", s.dp_url, c), a, "cursor");
	expect_refused("GET", it_fmt("%s/v1/events?limit=1&action=user.*&order=asc&cursor=%s", s.dp_url, c), a, "cursor");
	expect_refused("GET", it_fmt("%s/v1/events?limit=1&action=user.*&actor=u1&cursor=%s", s.dp_url, c), a, "cursor");
	expect_refused("GET", it_fmt("%s/v1/events?limit=1&action=user.login&cursor=%s", s.dp_url, c), a, "cursor");
	it_stack_stop(&s);
}
END_TEST

Suite *queries_suite(void)
{
	Suite *s = suite_create("queries");
	const TTest *const tests[] = { misspelled_parameters_refused, events_every_query_combination,
		                              events_query_bounds };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 240);
	return s;
}
