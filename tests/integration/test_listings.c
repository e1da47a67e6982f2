/* Every listing with filters or a cursor, paged through every combination
 * of its filters against a reference model kept by the test: what the
 * test created, filtered and ordered as the API documents.
 *
 *   events_every_filter_combination  GET /v1/events: all 32 subsets of actor, action, target,
 *                                    since, until, limits 1, 2, 7, 1000, since/until at event times
 *   cp_every_filter_combination      GET /v1/tenants (region, status; admin and tenant user),
 *                                    /v1/tenants/{id}/users, /v1/tenants/{id}/api-keys,
 *                                    /v1/admins, /v1/audit-log (tenant; admin and owner),
 *                                    limits 1, 2, 7, 100
 *
 * Each page is checked on its own (at most `limit` items, a full page
 * when next_cursor is given, no empty page after a cursor), and the pages
 * put together must be exactly the model's list, in its order, each item
 * once. Each test makes its data once and then only reads, so that the
 * thousand-odd requests take seconds. CK_RUN_SUITE=listings runs them. */
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "it.h"

#define MAXN 64 /* items of one listing, at most */

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

/* A request that must succeed; its JSON answer (caller json_decref()s). */
static json_t *call_ok(const char *method, const char *url, const char *auth, const char *body, long want)
{
	struct it_resp r;
	char h[512];
	const char *hs[3] = { "Content-Type: application/json", NULL, NULL };
	if (auth) {
		snprintf(h, sizeof h, "Authorization: %s", auth);
		hs[1] = h;
	}
	it_http(&r, method, url, hs, body, body ? strlen(body) : 0);
	ck_assert_msg(r.status == want, "%s %s: %ld, want %ld: %.400s", method, url, r.status, want,
	              r.body ? r.body : "");
	json_t *j = json_loadb(r.body, r.len, 0, NULL);
	ck_assert_msg(j != NULL, "%s %s: not JSON", method, url);
	it_resp_free(&r);
	return j;
}

/* A 400 validation answer naming `field`. */
static void expect_bad_param(const char *url, const char *auth, const char *field)
{
	json_t *j;
	long st = get_json_auth(url, auth, &j);
	const char *code = json_string_value(json_object_get(j, "code"));
	/* The same fault is the same code on both services. */
	ck_assert_msg(st == 400 && code && !strcmp(code, "validation_failed") &&
	                  !strcmp(json_string_value(json_object_get(j, "field")), field),
	              "GET %s: %ld, want 400 with field %s: code %s", url, st, field, code ? code : "(none)");
	json_decref(j);
}

/* The page's cursor to follow, or JSON null on the last page. A list of
 * the {items, next_cursor, has_more} shape says has_more, and gives
 * next_cursor exactly when it is true: no member, not null, at the end. */
static json_t *page_next(json_t *j, const char *member, const char *what, int limit)
{
	json_t *more = json_object_get(j, "has_more"), *next = json_object_get(j, "next_cursor");
	if (!more && strcmp(member, "items")) /* a list of another shape */
		return next;
	ck_assert_msg(json_is_boolean(more), "%s, limit %d: no boolean has_more", what, limit);
	ck_assert_msg(json_is_true(more) ? json_is_string(next) : !next,
	              "%s, limit %d: has_more %s with next_cursor %s", what, limit, json_is_true(more) ? "true" : "false",
	              next ? (json_is_string(next) ? json_string_value(next) : "not a string") : "absent");
	return next ? next : json_null();
}

/* Pages through `url` (which has a query string, possibly empty) with
 * `limit`, following next_cursor; the `key` member of every item of the
 * array `member` is compared with want[0..nwant-1]. `what` names the
 * combination in failure messages. */
static void page_through(const char *url_in, const char *auth, const char *member, const char *key, int limit,
                         const char *const want[], int nwant, const char *what_in)
{
	char cursor[512] = "", url[1024], what[1024];
	/* Copies: the arguments may be it_fmt texts, which the pages reuse. */
	snprintf(url, sizeof url, "%s", url_in);
	snprintf(what, sizeof what, "%s", what_in);
	const char *got[MAXN + 1];
	int ngot = 0, pages = 0;
	char *kept[MAXN + 1];
	for (;;) {
		const char *u = it_fmt("%s%slimit=%d%s%s", url, strchr(url, '?') ? "&" : "?", limit,
		                       cursor[0] ? "&cursor=" : "", cursor[0] ? query_enc(cursor) : "");
		json_t *j;
		long st = get_json_auth(u, auth, &j);
		ck_assert_msg(st == 200, "%s, limit %d, page %d: status %ld", what, limit, pages + 1, st);
		json_t *items = json_object_get(j, member), *next = page_next(j, member, what, limit);
		ck_assert_msg(json_is_array(items) && (json_is_null(next) || json_is_string(next)),
		              "%s, limit %d: not a page: no \"%s\" array or next_cursor", what, limit, member);
		size_t n = json_array_size(items);
		ck_assert_msg(n <= (size_t)limit, "%s, limit %d, page %d: %zu items", what, limit, pages + 1, n);
		if (!json_is_null(next) && n != (size_t)limit) {
			char *text = json_dumps(j, JSON_COMPACT);
			ck_abort_msg("%s, limit %d, page %d: %zu items but a next_cursor: %.600s", what, limit, pages + 1, n,
			             text);
		}
		ck_assert_msg(pages == 0 || n > 0, "%s, limit %d: page %d after a next_cursor is empty (%d items in all)",
		              what, limit, pages + 1, ngot);
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			ck_assert_msg(ngot < MAXN, "%s, limit %d: more than %d items (%d expected)", what, limit, MAXN, nwant);
			const char *id = json_string_value(json_object_get(it, key));
			if (!id) { /* audit ids are numbers */
				char num[32];
				snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(it, key)));
				kept[ngot] = strdup(num);
			} else {
				kept[ngot] = strdup(id);
			}
			got[ngot] = kept[ngot];
			ngot++;
		}
		pages++;
		if (json_is_null(next)) {
			json_decref(j);
			break;
		}
		snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
		json_decref(j);
		ck_assert_msg(pages <= nwant + 1, "%s, limit %d: %d pages for %d items", what, limit, pages, nwant);
	}
	int same = ngot == nwant;
	for (int i = 0; same && i < ngot; i++)
		same = !strcmp(got[i], want[i]);
	if (!same) {
		char g[4096] = "", w[4096] = "";
		for (int i = 0; i < ngot; i++)
			snprintf(g + strlen(g), sizeof g - strlen(g), "%s%s", i ? "," : "", got[i]);
		for (int i = 0; i < nwant; i++)
			snprintf(w + strlen(w), sizeof w - strlen(w), "%s%s", i ? "," : "", want[i]);
		ck_abort_msg("%s, limit %d: pages give %d items [%s], want %d [%s]", what, limit, ngot, g, nwant, w);
	}
	for (int i = 0; i < ngot; i++)
		free(kept[i]);
}

/* ------------------------------------------------------------------ */
/* GET /v1/events                                                      */

#define NEV 36
#define SLOTS 12 /* distinct occurred_at values: three events at each */

static const char *const actors[] = { "alice", "bob", "carol" };
static const char *const actions[] = { "doc.edit", "doc.view", "user.login", "user.logout" };
static const char *const targets[] = { "t1", "t2", "t3" };

struct mev {
	char id[16];
	int actor, action;
	unsigned targets; /* bit i: targets[i] */
	int64_t occ_us;
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

/* The model's answer for the filters (NULL / -1: absent): stored order is
 * the index, newest first means occurred_at descending, then the later
 * stored first. */
static int events_want(const struct mev *ev, const char *actor, const char *action, const char *target,
                       int64_t since, int64_t until, const char *out[NEV])
{
	int idx[NEV], n = 0;
	for (int i = 0; i < NEV; i++) {
		const struct mev *e = &ev[i];
		int tmatch = 0;
		for (int k = 0; k < 3; k++)
			tmatch |= target && (e->targets >> k & 1) && !strcmp(targets[k], target);
		if ((actor && strcmp(actors[e->actor], actor)) || (action && strcmp(actions[e->action], action)) ||
		    (target && !tmatch) || (since >= 0 && e->occ_us < since) || (until >= 0 && e->occ_us >= until))
			continue;
		idx[n++] = i;
	}
	/* Insertion sort, newest first. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0; j--) {
			const struct mev *a = &ev[idx[j - 1]], *b = &ev[idx[j]];
			if (a->occ_us > b->occ_us || (a->occ_us == b->occ_us && idx[j - 1] > idx[j]))
				break;
			int t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	for (int i = 0; i < n; i++)
		out[i] = ev[idx[i]].id;
	return n;
}

/* A tenant's listing, with every combination of its five filters, and
 * since/until exactly at stored events' times (since includes them, until
 * excludes them), paged with small limits and the largest one, always
 * gives exactly the filtered events, newest first, each once. */
START_TEST(events_every_filter_combination)
{
	struct it_stack s;
	struct it_resp r;
	struct mev ev[NEV];
	char auth[256];

	it_stack_start(&s, "eu", NULL, NULL);
	/* A plan whose rate never gets in the way of a thousand reads. */
	it_stack_admin(&s, &r, "POST", "/v1/plans",
	               "{\"id\":\"listings\",\"name\":\"Listings\",\"currency\":\"USD\",\"base_price\":0,"
	               "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	               "\"monthly_event_quota\":1000000,\"retention_days\":30}");
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(&s, &r, "PATCH", it_fmt("/v1/tenants/%s", s.tenant), "{\"plan\":\"listings\"}");
	ck_assert_msg(r.status == 200, "PATCH tenant: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_sync(&s);
	snprintf(auth, sizeof auth, "Bearer %s", s.key);

	/* Whole seconds an hour ago; slot 5 has a fraction, to test the
	 * microseconds of since/until. Stored one request at a time, so the
	 * stored order is the index. */
	int64_t base = ((int64_t)time(NULL) - 3600) * 1000000;
	for (int i = 0; i < NEV; i++) {
		struct mev *e = &ev[i];
		int slot = (i * 5) % SLOTS;
		snprintf(e->id, sizeof e->id, "e%02d", i);
		e->actor = i % 3;
		e->action = (i / 2) % 4;
		e->targets = (i % 2 == 0 ? 1u : 0) | (i % 3 == 1 ? 2u : 0) | (i % 5 == 0 ? 4u : 0);
		e->occ_us = base + slot * 1000000 + (slot == 5 ? 123457 : 0);
		char occ[40], tg[128] = "";
		api_time_us(e->occ_us, occ);
		for (int k = 0; k < 3; k++)
			if (e->targets >> k & 1)
				snprintf(tg + strlen(tg), sizeof tg - strlen(tg), "%s{\"id\":\"%s\",\"type\":\"doc\"}",
				         tg[0] ? "," : "", targets[k]);
		const char *body =
			it_fmt("{\"id\":\"%s\",\"occurred_at\":\"%s\",\"action\":\"%s\",\"actor\":{\"id\":\"%s\",\"type\":\"user\"},"
			       "\"targets\":[%s]}",
			       e->id, occ, actions[e->action], actors[e->actor], tg);
		json_decref(call_ok("POST", it_fmt("%s/v1/events", s.dp_url), auth, body, 201));
	}

	static const int limits[] = { 1, 2, 7, 1000 };
	const char *want[NEV];
	char since_t[40], until_t[40];
	int checked = 0;
	for (unsigned mask = 0; mask < 32; mask++) {
		for (int variant = 0; variant < 3; variant++) {
			/* Values from a different event for each variant: the
			 * filters mostly match something. */
			const struct mev *a = &ev[(variant * 13 + (int)mask * 7) % NEV];
			const char *actor = mask & 1 ? actors[a->actor] : NULL;
			const char *action = mask & 2 ? actions[a->action] : NULL;
			const char *target = NULL;
			if (mask & 4) {
				target = "t2"; /* events without a target use one they lack */
				for (int k = 0; k < 3; k++)
					if (a->targets >> k & 1)
						target = targets[k];
			}
			/* since and until at events' exact times: slots 2 and 9;
			 * then slot 5 alone (until one microsecond later); then an
			 * empty range (until == since). */
			int64_t s_us = variant == 0 ? base + 2 * 1000000 : base + 5 * 1000000 + 123457;
			int64_t u_us = variant == 0 ? base + 9 * 1000000 : variant == 1 ? s_us + 1 : s_us;
			int64_t since = mask & 8 ? s_us : -1, until = mask & 16 ? u_us : -1;
			if (variant == 2 && (mask & 24) != 24)
				continue; /* the empty range needs both */
			api_time_us(s_us, since_t);
			api_time_us(u_us, until_t);
			char q[1024] = "";
			if (actor)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&actor=%s", query_enc(actor));
			if (action)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&action=%s", query_enc(action));
			if (target)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&target=%s", query_enc(target));
			if (since >= 0)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&since=%s", query_enc(since_t));
			if (until >= 0)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&until=%s", query_enc(until_t));
			int n = events_want(ev, actor, action, target, since, until, want);
			char url[1200];
			snprintf(url, sizeof url, "%s/v1/events?%s", s.dp_url, q[0] ? q + 1 : "");
			for (size_t l = 0; l < sizeof limits / sizeof *limits; l++)
				page_through(url, auth, "items", "id", limits[l], want, n, it_fmt("GET /v1/events?%s", q[0] ? q + 1 : ""));
			checked++;
		}
	}
	ck_assert_int_ge(checked, 64);

	/* The boundaries on their own: an event exactly at `since` is in,
	 * exactly at `until` out. */
	api_time_us(base + 2 * 1000000, since_t);
	api_time_us(base + 3 * 1000000, until_t);
	int n = events_want(ev, NULL, NULL, NULL, base + 2 * 1000000, base + 3 * 1000000, want);
	ck_assert_int_eq(n, 3);
	page_through(it_fmt("%s/v1/events?since=%s&until=%s", s.dp_url, query_enc(since_t), query_enc(until_t)), auth, "items",
	             "id", 1000, want, n, "one slot");

	/* limit at both ends, and one beyond each. */
	expect_bad_param(it_fmt("%s/v1/events?limit=0", s.dp_url), auth, "limit");
	expect_bad_param(it_fmt("%s/v1/events?limit=1001", s.dp_url), auth, "limit");
	expect_bad_param(it_fmt("%s/v1/events?cursor=nope", s.dp_url), auth, "cursor");
	/* The filters' lengths at both ends (1 to 256 bytes, an action 512:
	 * 128 characters of up to 4 bytes), and beyond. */
	char longest[514];
	memset(longest, 'x', 513);
	longest[513] = '\0';
	static const char *const filters[] = { "actor", "action", "target" };
	static const int maxlen[] = { 256, 512, 256 };
	for (int i = 0; i < 3; i++) {
		const char *none[1];
		expect_bad_param(it_fmt("%s/v1/events?%s=", s.dp_url, filters[i]), auth, filters[i]);
		expect_bad_param(it_fmt("%s/v1/events?%s=%.*s", s.dp_url, filters[i], maxlen[i] + 1, longest), auth, filters[i]);
		page_through(it_fmt("%s/v1/events?%s=%.*s", s.dp_url, filters[i], maxlen[i], longest), auth, "items", "id", 7,
		             none, 0, it_fmt("a %s of %d bytes", filters[i], maxlen[i]));
		page_through(it_fmt("%s/v1/events?%s=%s", s.dp_url, filters[i], i == 0 ? "bob" : i == 1 ? "doc.view" : "t3"),
		             auth, "items", "id", 1, want, events_want(ev, i == 0 ? "bob" : NULL, i == 1 ? "doc.view" : NULL,
		                                                        i == 2 ? "t3" : NULL, -1, -1, want),
		             it_fmt("%s alone", filters[i]));
	}
	expect_bad_param(it_fmt("%s/v1/events?since=yesterday", s.dp_url), auth, "since");
	expect_bad_param(it_fmt("%s/v1/events?until=2026-01-01T00:00:00", s.dp_url), auth, "until");
	it_stack_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Control-plane listings                                              */

#define PW "listing password 12345"

struct mtenant {
	char id[40], slug[40];
	int region; /* index in cp_regions */
	const char *status;
};

struct maudit {
	char id[24]; /* the record's id, once read back */
	const char *action;
	char object[64];
	char tenant[40]; /* "" for none */
};

static const char *const cp_regions[] = { "in", "eu", "us" };
static const char *const statuses[] = { "active", "suspended", "deleted" };

static char cp_url[64], cp_db[512];
static struct maudit audit[128];
static int naudit;

static const char *cp(const char *path)
{
	return it_fmt("%s%s", cp_url, path);
}

static void audited(const char *action, const char *object, const char *tenant)
{
	ck_assert_int_lt(naudit, 128);
	audit[naudit].action = action;
	snprintf(audit[naudit].object, sizeof audit[naudit].object, "%s", object);
	snprintf(audit[naudit].tenant, sizeof audit[naudit].tenant, "%s", tenant ? tenant : "");
	naudit++;
}

/* The audit listing's answer for `tenant` (NULL: all): newest first. */
static int audit_want(const char *tenant, const char *ids[])
{
	int n = 0;
	for (int i = naudit - 1; i >= 0; i--)
		if (!tenant || !strcmp(audit[i].tenant, tenant))
			ids[n++] = audit[i].id;
	return n;
}

static void login(const char *slug, const char *email, char auth[300])
{
	json_t *j = call_ok("POST", cp("/v1/auth/login"), NULL,
	                    it_fmt("{\"email\":\"%s\",\"password\":\"" PW "\",\"tenant\":\"%s\"}", email, slug), 200);
	snprintf(auth, 300, "Bearer %s", json_string_value(json_object_get(j, "token")));
	json_decref(j);
}

/* Every control-plane listing with a cursor, through every combination
 * of its filters, as the platform admin and as tenant users: exactly the
 * objects the test made, in the documented order, each once. */
START_TEST(cp_every_filter_combination)
{
	struct it_proc proc;
	struct mtenant t[12];
	const char *admin = "Bearer " IT_ADMIN_TOKEN;
	static const int limits[] = { 1, 2, 7, 100 };
	const int nlimits = (int)(sizeof limits / sizeof *limits);
	const char *want[MAXN];
	json_t *j;

	naudit = 0;
	it_cp_start(&proc, "it_listings_cp", NULL, cp_db, sizeof cp_db, cp_url, sizeof cp_url);
	/* Records written before the test's (a seeded catalog, say) stay
	 * out of the model: the audit ids of the test start after them. */
	char *v = it_sql(cp_db, "SELECT coalesce(max(id), 0) FROM audit_log");
	int first_audit = atoi(v) + 1;
	free(v);
	v = it_sql(cp_db, "SELECT count(*) FROM users WHERE tenant_id IS NULL");
	ck_assert_msg(!strcmp(v, "0"), "admins exist before the test: %s", v);
	free(v);

	/* Tenants across the regions and the statuses, in creation order. */
	for (int i = 0; i < 12; i++) {
		struct mtenant *m = &t[i];
		m->region = i % 3;
		m->status = i % 4 == 1 ? "suspended" : i % 4 == 2 ? "deleted" : "active";
		snprintf(m->slug, sizeof m->slug, "lst-%d-%d", (int)getpid(), i);
		j = call_ok("POST", cp("/v1/tenants"), admin,
		            it_fmt("{\"name\":\"L%d\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"pro\"}", i, m->slug,
		                   cp_regions[m->region]),
		            201);
		snprintf(m->id, sizeof m->id, "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		audited("tenant.create", m->id, m->id);
	}
	/* Tenants 0 and 4 (active) get users, keys and the most records. */
	const struct mtenant *ta = &t[0], *tb = &t[4];
	char users_a[10][40], users_b[3][40], keys_a[9][32], keys_b[2][32], admins[5][40];
	for (int i = 0; i < 10; i++) {
		j = call_ok("POST", cp(it_fmt("/v1/tenants/%s/users", ta->id)), admin,
		            it_fmt("{\"email\":\"u%d@a.example\",\"role\":\"%s\",\"password\":\"" PW "\"}", i,
		                   i == 0 ? "owner" : "member"),
		            201);
		snprintf(users_a[i], sizeof users_a[i], "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		audited("user.create", users_a[i], ta->id);
		if (i < 3) {
			j = call_ok("POST", cp(it_fmt("/v1/tenants/%s/users", tb->id)), admin,
			            it_fmt("{\"email\":\"u%d@b.example\",\"role\":\"owner\",\"password\":\"" PW "\"}", i), 201);
			snprintf(users_b[i], sizeof users_b[i], "%s", json_string_value(json_object_get(j, "id")));
			json_decref(j);
			audited("user.create", users_b[i], tb->id);
		}
	}
	for (int i = 0; i < 9; i++) {
		j = call_ok("POST", cp(it_fmt("/v1/tenants/%s/api-keys", ta->id)), admin,
		            "{\"name\":\"k\",\"scopes\":[\"events:read\"]}", 201);
		snprintf(keys_a[i], sizeof keys_a[i], "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		audited("api_key.create", keys_a[i], ta->id);
		if (i < 2) {
			j = call_ok("POST", cp(it_fmt("/v1/tenants/%s/api-keys", tb->id)), admin,
			            "{\"name\":\"k\",\"scopes\":[\"events:read\"]}", 201);
			snprintf(keys_b[i], sizeof keys_b[i], "%s", json_string_value(json_object_get(j, "id")));
			json_decref(j);
			audited("api_key.create", keys_b[i], tb->id);
		}
	}
	for (int i = 1; i < 9; i += 3) { /* revoked keys stay listed */
		json_decref(call_ok("DELETE", cp(it_fmt("/v1/tenants/%s/api-keys/%s", ta->id, keys_a[i])), admin, NULL, 200));
		audited("api_key.revoke", keys_a[i], ta->id);
	}
	for (int i = 0; i < 5; i++) {
		j = call_ok("POST", cp("/v1/admins"), admin,
		            it_fmt("{\"email\":\"admin%d@celltrail.example\",\"password\":\"" PW "\"}", i), 201);
		snprintf(admins[i], sizeof admins[i], "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		audited("admin.create", admins[i], NULL);
	}
	/* Statuses last: a suspended or deleted tenant takes no users. */
	for (int i = 0; i < 12; i++)
		if (strcmp(t[i].status, "active")) {
			int del = !strcmp(t[i].status, "deleted");
			json_decref(call_ok(del ? "DELETE" : "PATCH", cp(it_fmt("/v1/tenants/%s", t[i].id)), admin,
			                    del ? NULL : "{\"status\":\"suspended\"}", 200));
			audited(del ? "tenant.delete" : "tenant.update", t[i].id, t[i].id);
		}
	char owner_a[300], member_a[300];
	login(ta->slug, "u0@a.example", owner_a);
	login(ta->slug, "u1@a.example", member_a);

	/* The audit log holds the test's changes in its order (checked once
	 * against the database, which also gives each record's id); then the
	 * listing is compared by id. */
	v = it_sql(cp_db, it_fmt("SELECT string_agg(action || ' ' || object_id || ' ' || coalesce(tenant_id::text, '-'),"
	                         " ',' ORDER BY id) FROM audit_log WHERE id >= %d",
	                         first_audit));
	{
		char m[8192] = "";
		for (int i = 0; i < naudit; i++)
			snprintf(m + strlen(m), sizeof m - strlen(m), "%s%s %s %s", i ? "," : "", audit[i].action,
			         audit[i].object, audit[i].tenant[0] ? audit[i].tenant : "-");
		ck_assert_msg(v && !strcmp(v, m), "the audit log differs from the test's changes:\n%s\nwant\n%s", v, m);
	}
	free(v);
	v = it_sql(cp_db, it_fmt("SELECT string_agg(id::text, ',' ORDER BY id) FROM audit_log WHERE id >= %d", first_audit));
	{
		int i = 0;
		for (char *save = NULL, *w = strtok_r(v, ",", &save); w; w = strtok_r(NULL, ",", &save), i++) {
			ck_assert_int_lt(i, naudit);
			snprintf(audit[i].id, sizeof audit[i].id, "%s", w);
		}
		ck_assert_int_eq(i, naudit);
	}
	free(v);

	/* GET /v1/tenants: every subset of {region, status}, each value,
	 * plus a region without tenants. Oldest first. */
	static const char *const region_values[] = { "in", "eu", "us", "jp" };
	for (int ri = -1; ri < 4; ri++)
		for (int si = -1; si < 3; si++) {
			char q[128] = "";
			if (ri >= 0)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&region=%s", region_values[ri]);
			if (si >= 0)
				snprintf(q + strlen(q), sizeof q - strlen(q), "&status=%s", statuses[si]);
			int n = 0, n_own = 0;
			const char *own[1];
			for (int i = 0; i < 12; i++) {
				int match = (ri < 0 || (ri < 3 && t[i].region == ri)) && (si < 0 || !strcmp(t[i].status, statuses[si]));
				if (match)
					want[n++] = t[i].id;
				if (match && &t[i] == ta)
					own[n_own++] = t[i].id;
			}
			char url[256];
			snprintf(url, sizeof url, "%s/v1/tenants?%s", cp_url, q[0] ? q + 1 : "");
			for (int l = 0; l < nlimits; l++) {
				page_through(url, admin, "items", "id", limits[l], want, n, it_fmt("admin GET /v1/tenants?%s", q));
				/* A tenant user sees its own tenant, when it matches. */
				page_through(url, member_a, "items", "id", limits[l], own, n_own,
				             it_fmt("member GET /v1/tenants?%s", q));
			}
		}
	expect_bad_param(cp("/v1/tenants?region=EU!"), admin, "region");
	expect_bad_param(cp("/v1/tenants?status=gone"), admin, "status");

	/* Users of a tenant, keys of a tenant, admins: no filters; oldest
	 * first; another tenant's never. */
	const char *ua[10], *ub[3], *ka[9], *kb[2], *ad[5];
	for (int i = 0; i < 10; i++)
		ua[i] = users_a[i];
	for (int i = 0; i < 3; i++)
		ub[i] = users_b[i];
	for (int i = 0; i < 9; i++)
		ka[i] = keys_a[i];
	for (int i = 0; i < 2; i++)
		kb[i] = keys_b[i];
	for (int i = 0; i < 5; i++)
		ad[i] = admins[i];
	for (int l = 0; l < nlimits; l++) {
		page_through(cp(it_fmt("/v1/tenants/%s/users", ta->id)), admin, "items", "id", limits[l], ua, 10, "users of A");
		page_through(cp(it_fmt("/v1/tenants/%s/users", ta->id)), member_a, "items", "id", limits[l], ua, 10,
		             "users of A, as a member");
		page_through(cp(it_fmt("/v1/tenants/%s/users", tb->id)), admin, "items", "id", limits[l], ub, 3, "users of B");
		page_through(cp(it_fmt("/v1/tenants/%s/api-keys", ta->id)), admin, "items", "id", limits[l], ka, 9, "keys of A");
		page_through(cp(it_fmt("/v1/tenants/%s/api-keys", ta->id)), member_a, "items", "id", limits[l], ka, 9,
		             "keys of A, as a member");
		page_through(cp(it_fmt("/v1/tenants/%s/api-keys", tb->id)), admin, "items", "id", limits[l], kb, 2, "keys of B");
		page_through(cp("/v1/admins"), admin, "items", "id", limits[l], ad, 5, "admins");
	}

	/* GET /v1/audit-log: no filter, each tenant, a tenant without
	 * records; newest first. An owner reads its own tenant's, with or
	 * without naming it. */
	const char *aw[128];
	for (int ti = -2; ti < 12; ti++) {
		const char *tenant = ti == -2 ? NULL : ti == -1 ? "00000000-0000-4000-8000-000000000000" : t[ti].id;
		int n = audit_want(tenant, aw);
		ck_assert_int_le(n, MAXN);
		char url[256];
		snprintf(url, sizeof url, "%s/v1/audit-log%s%s", cp_url, tenant ? "?tenant_id=" : "", tenant ? tenant : "");
		for (int l = 0; l < nlimits; l++)
			page_through(url, admin, "items", "id", limits[l], aw, n,
			             it_fmt("admin GET /v1/audit-log?tenant_id=%s", tenant ? tenant : "(none)"));
	}
	{
		int n = audit_want(ta->id, aw);
		for (int l = 0; l < nlimits; l++) {
			page_through(cp("/v1/audit-log"), owner_a, "items", "id", limits[l], aw, n, "owner GET /v1/audit-log");
			page_through(cp(it_fmt("/v1/audit-log?tenant_id=%s", ta->id)), owner_a, "items", "id", limits[l], aw, n,
			             "owner GET /v1/audit-log?tenant_id=own");
		}
		long st = get_json_auth(cp(it_fmt("/v1/audit-log?tenant_id=%s", tb->id)), owner_a, &j);
		ck_assert_msg(st == 404, "an owner reading another tenant's audit log: %ld", st);
		json_decref(j);
		st = get_json_auth(cp("/v1/audit-log"), member_a, &j);
		ck_assert_msg(st == 403, "a member reading the audit log: %ld", st);
		json_decref(j);
	}
	expect_bad_param(cp("/v1/audit-log?tenant_id=nope"), admin, "tenant_id");

	/* limit at both ends and one beyond, a foreign cursor: on every
	 * listing. */
	char lists[5][128] = { "/v1/tenants", "", "", "/v1/admins", "/v1/audit-log" };
	snprintf(lists[1], sizeof lists[1], "/v1/tenants/%s/users", ta->id);
	snprintf(lists[2], sizeof lists[2], "/v1/tenants/%s/api-keys", ta->id);
	for (int i = 0; i < 5; i++) {
		expect_bad_param(cp(it_fmt("%s?limit=0", lists[i])), admin, "limit");
		expect_bad_param(cp(it_fmt("%s?limit=101", lists[i])), admin, "limit");
		expect_bad_param(cp(it_fmt("%s?cursor=nope", lists[i])), admin, "cursor");
	}
	int st = it_stop(&proc);
	ck_assert_msg(st == 0, "the control plane exited with %d on SIGTERM (log %s)", st, proc.log);
}
END_TEST

Suite *listings_suite(void)
{
	Suite *s = suite_create("listings");
	TCase *tc = tcase_create(__func__);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, events_every_filter_combination);
	tcase_add_test(tc, cp_every_filter_combination);
	suite_add_tcase(s, tc);
	return s;
}
