/* Tenant moves from the control plane's side, from outside, acting as the
 * mover with a region credential (no data plane): the request of a move
 * with every field at both ends of its limits, who may do what, every
 * (state, step) pair against a reference model of the state machine, the
 * mover's lease, the flip in one transaction (tenant, both regions'
 * versions, cell, regional and routes documents, the moved claim and key
 * aliases), usage from a move's source, erasure reports and their audit
 * records, a deleted tenant's move, and cell drains. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfgdoc.h"
#include "cpfx.h"
#include "movecred.h"
#include "secret.h"

static char keys_env[700];

static void setup(void)
{
	snprintf(keys_env, sizeof keys_env, "CP_SIGNING_KEYS_DIR=%s/keys-moves-%d", it_env("IT_LOG_DIR"),
	         (int)getpid());
	/* Short, so that cell_flip sees a linger end. */
	const char *const extra[] = { keys_env, "CP_MOVE_LINGER=1s", NULL };
	cpfx_start("it_moves", extra);
}

static void teardown(void)
{
	cpfx_stop();
}

/* ---- helpers ---- */

/* A request with `token` that must be answered `want`; the answer's JSON
 * (caller decrefs; NULL without a body). */
#define CALL(method, path, token, body, want) call((method), (path), (token), (body), (want), __LINE__)
static json_t *call(const char *method, const char *path, const char *token, const char *body, long want,
                    int line)
{
	struct res r;
	api(&r, method, path, token, body);
	ck_assert_msg(r.status == want, "line %d: %s %s: %ld, want %ld: %.400s", line, method, path, r.status,
	              want, r.raw.body);
	json_t *j = r.json ? json_incref(r.json) : NULL;
	res_free(&r);
	return j;
}
#define ADM(method, path, body, want) call((method), (path), ADMIN_TOKEN, (body), (want), __LINE__)

/* The problem code of a refused request. */
#define REFUSED(method, path, token, body, st, code)                                              \
	do {                                                                                       \
		struct res r_;                                                                         \
		api(&r_, (method), (path), (token), (body));                                           \
		EXPECT_PROBLEM_SOME(&r_, (st), (code), NULL);                                          \
		res_free(&r_);                                                                         \
	} while (0)

static long long ji(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void tenant_in(const char *slug, const char *region, const char *cell, char id[37])
{
	json_t *t = ADM("POST", "/v1/tenants",
	                cell ? it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"free\","
	                              "\"cell\":\"%s\"}", slug, slug, region, cell)
	                     : it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"free\"}",
	                              slug, slug, region),
	                201);
	snprintf(id, 37, "%s", it_js(t, "id"));
	json_decref(t);
}

/* A credential: "regions/<r>" or "cells/<c>". */
static void credential(const char *what, char token[160])
{
	json_t *j = ADM("POST", it_fmt("/v1/%s/credentials", what), NULL, 201);
	snprintf(token, 160, "%s", it_js(j, "token"));
	json_decref(j);
}

/* An owner (or member) of the tenant `slug`, logged in. */
static void user_of(const char *tenant, const char *slug, const char *role, char token[128])
{
	const char *email = it_fmt("%s@%s.test", role, slug);
	new_user(tenant, email, role, NULL);
	login(slug, email, token);
}

/* A key of the tenant: its id. */
static void key_of(const char *tenant, char id[25])
{
	json_t *k = ADM("POST", it_fmt("/v1/tenants/%s/api-keys", tenant),
	                "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\"]}", 201);
	snprintf(id, 25, "%s", it_js(k, "id"));
	json_decref(k);
}

static const char *state_of(const char *move)
{
	static char s[40];
	char *v = q(it_fmt("SELECT state FROM moves WHERE id = '%s'", move));
	snprintf(s, sizeof s, "%s", v ? v : "");
	free(v);
	return s;
}

static const char *cell_of(const char *tenant)
{
	static char s[64];
	char *v = q(it_fmt("SELECT cell || '/' || region FROM tenants WHERE id = '%s'", tenant));
	snprintf(s, sizeof s, "%s", v);
	free(v);
	return s;
}

/* Requests a move as `token`; its id into `id`. */
static void move_of(const char *tenant, const char *token, const char *body, char id[37])
{
	json_t *m = call("POST", it_fmt("/v1/tenants/%s/moves", tenant), token, body, 201, __LINE__);
	snprintf(id, 37, "%s", it_js(m, "id"));
	json_decref(m);
}

static json_t *progress(const char *move, const char *token, const char *mover, const char *state, long want)
{
	return call("POST", it_fmt("/v1/moves/%s/progress", move), token,
	            state ? it_fmt("{\"mover\":\"%s\",\"state\":\"%s\"%s}", mover, state,
	                           !strcmp(state, "failed") ? ",\"error\":\"broken\"" : "")
	                  : it_fmt("{\"mover\":\"%s\",\"events_copied\":5,\"lag_events\":1}", mover),
	            want, __LINE__);
}

/* Drives a copying move to verifying as mover "m1". */
static void to_verifying(const char *move, const char *token)
{
	json_decref(progress(move, token, "m1", "catching_up", 200));
	json_decref(progress(move, token, "m1", "cutover", 200));
	json_decref(progress(move, token, "m1", "verifying", 200));
}

static const char *complete_body(long se, const char *sd, long te, const char *td)
{
	return it_fmt("{\"mover\":\"m1\",\"source_events\":%ld,\"source_digest\":\"%s\",\"target_events\":%ld,"
	              "\"target_digest\":\"%s\",\"write_pause_ms\":120}", se, sd, te, td);
}

/* The claims of a signed document (not verified: the cells suite does). */
static json_t *doc_claims(const char *path, const char *token)
{
	struct doc d;
	doc_fetch(&d, it_fmt("%s%s", cpfx.url, path), token, NULL, 0);
	ck_assert_msg(d.status == 200, "%s: %ld", path, d.status);
	const char *a = strchr(d.body, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	ck_assert_ptr_nonnull(b);
	size_t n = (size_t)(b - a - 1);
	char *raw = malloc(n + 1);
	long m = secret_unb64url(a + 1, n, raw, n);
	ck_assert_int_gt(m, 0);
	json_t *c = json_loadb(raw, (size_t)m, 0, NULL);
	ck_assert_ptr_nonnull(c);
	free(raw);
	free(d.body);
	return c;
}

/* The verified move credential of a claim's answer `c`, for `move`:
 * its erase_after. */
static long long credential_erase_after(json_t *c, const char *move)
{
	char path[600], err[300], detail[300];
	struct cfgdoc_trust trust;
	struct movecred mc;
	snprintf(path, sizeof path, "%s/trust-moves-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_write_trust(cpfx.url, path);
	ck_assert_msg(cfgdoc_trust_load(path, &trust, err, sizeof err) == 0, "%s", err);
	struct cfgdoc_verify_opts vo = { .issuer = "celltrail-control-plane", .now = time(NULL), .skew = 60,
		                             .max_bytes = MOVECRED_MAX_BYTES };
	const char *tok = it_js(c, "credential");
	enum cfgdoc_result vr = movecred_verify(tok, strlen(tok), &trust, &vo, move, &mc, detail, sizeof detail);
	ck_assert_msg(vr == CFGDOC_OK, "credential: %d %s", vr, detail);
	cfgdoc_trust_free(&trust);
	return mc.erase_after;
}

/* A usage batch (one record of 2 events of `tenant` this month) with
 * `token`, keyed `idem`, answered `want`. */
static void usage_as(const char *token, const char *tenant, const char *idem, long want, int line)
{
	char month[8];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(month, sizeof month, "%Y-%m", &tm);
	const char *body = it_fmt("{\"records\":[{\"tenant\":\"%s\",\"period\":\"%s\",\"events\":2,"
	                          "\"window_start\":\"%s-01T00:00:00Z\",\"window_end\":\"%s-01T00:01:00Z\"}]}",
	                          tenant, month, month, month);
	struct opts o = { .token = token, .idem = idem };
	struct res r;
	api_ex(&r, "POST", "/v1/usage", &o, body, strlen(body));
	ck_assert_msg(r.status == want, "line %d: usage: %ld, want %ld: %s", line, r.status, want, r.raw.body);
	res_free(&r);
}
#define USAGE(token, tenant, idem, want) usage_as((token), (tenant), (idem), (want), __LINE__)

static int has_audit(const char *action, const char *move)
{
	return qlong(it_fmt("SELECT count(*) FROM audit_log WHERE action = '%s' AND object_id = '%s'", action,
	                    move)) > 0;
}

/* ---- requests ---- */

/* POST /v1/tenants/{id}/moves checks every field at both ends of its
 * limits, unknown members, both or neither target, and the target's
 * fitness; a tenant has one move at a time; mover ids have limits too. */
START_TEST(request_limits)
{
	char t[37], u[37], mv[37], rus[160];
	tenant_in("lim-a", "us", "us-east-1", t);
	tenant_in("lim-b", "us", "us-east-2", u);
	credential("regions/us", rus);
	char path[200];
	snprintf(path, sizeof path, "/v1/tenants/%s/moves", t);
	static const struct {
		const char *body;
		long want;
		const char *code;
	} cases[] = {
		{ "{}", 400, "validation_failed" },
		{ "{\"to_cell\":\"us-west-2\",\"to_region\":\"eu\"}", 400, "validation_failed" },
		{ "{\"to_cell\":\"us-west-2\",\"color\":1}", 400, "validation_failed" },
		{ "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":-1}", 400, "validation_failed" },
		{ "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":31536001}", 400, "validation_failed" },
		{ "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":\"1\"}", 400, "validation_failed" },
		{ "{\"to_cell\":7}", 400, "validation_failed" },
		{ "{\"to_cell\":\"a\"}", 400, "validation_failed" },
		{ "{\"to_cell\":\"Us-west\"}", 400, "validation_failed" },
		/* 64 characters: one past the longest name */
		{ "{\"to_cell\":\"a123456789012345678901234567890123456789012345678901234567890123\"}", 400,
		  "validation_failed" },
		/* 63: a name, but no cell */
		{ "{\"to_cell\":\"a12345678901234567890123456789012345678901234567890123456789012\"}", 422,
		  "unprocessable" },
		{ "{\"to_cell\":\"eu-west-1\"}", 422, "unprocessable" },
		{ "{\"to_cell\":\"us-east-1\"}", 409, "conflict" },
		{ "{\"to_cell\":\"us-dedi\"}", 409, "conflict" },
		{ "{\"to_cell\":\"us-drain\"}", 409, "conflict" },
		{ "[]", 400, "invalid_json" },
	};
	json_decref(ADM("POST", "/v1/regions/us/cells", "{\"name\":\"us-dedi\",\"kind\":\"dedicated\"}", 201));
	json_decref(ADM("POST", "/v1/regions/us/cells", "{\"name\":\"us-drain\",\"kind\":\"shared\"}", 201));
	json_decref(ADM("PATCH", "/v1/regions/us/cells/us-drain", "{\"status\":\"draining\"}", 200));
	char other[37];
	tenant_in("lim-d", "us", "us-dedi", other); /* us-dedi is lim-d's now */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct res r;
		api(&r, "POST", path, ADMIN_TOKEN, cases[i].body);
		ck_assert_msg(r.status == cases[i].want, "%s: %ld, want %ld: %s", cases[i].body, r.status,
		              cases[i].want, r.raw.body);
		EXPECT_PROBLEM_SOME(&r, cases[i].want, cases[i].code, NULL);
		res_free(&r);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves"), 0);
	/* Both ends of erase_after_seconds, and its default. */
	static const char *const ok[] = { "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":0}",
		                              "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":31536000}",
		                              "{\"to_cell\":\"us-west-2\"}" };
	static const long long erase[] = { 0, 31536000, 604800 };
	for (int i = 0; i < 3; i++) {
		struct res r;
		api(&r, "POST", path, ADMIN_TOKEN, ok[i]);
		EXPECT(&r, 201);
		ck_assert_int_eq(ji(r.json, "erase_after_seconds"), erase[i]);
		ck_assert_str_eq(it_js(r.json, "state"), "copying");
		ck_assert_str_eq(it_js(r.json, "kind"), "cell");
		ck_assert_str_eq(it_js(r.json, "to_cell"), "us-west-2");
		ck_assert_str_eq(it_js(r.json, "from_cell"), "us-east-1");
		snprintf(mv, sizeof mv, "%s", it_js(r.json, "id"));
		/* Location names the move. */
		char loc[300];
		ck_assert_int_eq(it_header(&r.raw, "Location", loc, sizeof loc), 0);
		ck_assert_str_eq(loc, it_fmt("/v1/tenants/%s/moves/%s", t, mv));
		res_free(&r);
		/* One move at a time. */
		REFUSED("POST", path, ADMIN_TOKEN, "{\"to_cell\":\"us-east-2\"}", 409, "conflict");
		json_decref(ADM("POST", it_fmt("%s/%s/abort", path, mv), NULL, 200));
	}
	/* to_region: unknown, the current one (the owner asks). */
	char owner[128];
	user_of(t, "lim-a", "owner", owner);
	REFUSED("POST", path, owner, "{\"to_region\":\"mars\"}", 422, "unprocessable");
	REFUSED("POST", path, owner, "{\"to_region\":\"us\"}", 409, "conflict");
	REFUSED("POST", path, owner, "{\"to_region\":\"EU\"}", 400, "validation_failed");
	/* A dedicated cell for its own tenant: lim-d may move there (from it, here back). */
	json_decref(ADM("POST", it_fmt("/v1/tenants/%s/moves", other), "{\"to_cell\":\"us-east-2\"}", 201));
	/* A deleted tenant does not move. */
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", u), NULL, 200));
	REFUSED("POST", it_fmt("/v1/tenants/%s/moves", u), ADMIN_TOKEN, "{\"to_cell\":\"us-west-2\"}", 409,
	        "conflict");
	/* Mover ids: 1..64 of [A-Za-z0-9._-]. */
	json_decref(ADM("POST", path, "{\"to_cell\":\"us-west-2\"}", 201));
	static const char *const movers[] = { "", "a b", "x\\u00e9", "a1234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < sizeof movers / sizeof movers[0]; i++)
		REFUSED("POST", "/v1/regions/us/moves/claim", rus, it_fmt("{\"mover\":\"%s\"}", movers[i]), 400,
		        "validation_failed");
	REFUSED("POST", "/v1/regions/us/moves/claim", rus, "{}", 400, "validation_failed");
	REFUSED("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m\",\"x\":1}", 400, "validation_failed");
	json_t *c = CALL("POST", "/v1/regions/us/moves/claim", rus,
	                 "{\"mover\":\"A123456789012345678901234567890123456789012345678901234567890._-\"}", 200);
	json_decref(c);
	c = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"Z\"}", 200); /* the other move */
	json_decref(c);
}
END_TEST

/* Who may do what: cell moves are the admin's; region moves the owner
 * requests and the admin approves; reads for the tenant's users without
 * cells; the mover's routes for the target region's credential or an
 * admin, never a cell credential or another region's. */
START_TEST(permissions)
{
	char t[37], o[37], mv[37], rm[37], owner[128], member[128], stranger[128], rus[160], reu[160], cell[160];
	tenant_in("perm-a", "us", "us-east-1", t);
	tenant_in("perm-o", "us", "us-east-1", o);
	user_of(t, "perm-a", "owner", owner);
	user_of(t, "perm-a", "member", member);
	user_of(o, "perm-o", "owner", stranger);
	credential("regions/us", rus);
	credential("regions/eu", reu);
	credential("cells/us-east-1", cell);
	char path[200], one[300], prog[200];
	snprintf(path, sizeof path, "/v1/tenants/%s/moves", t);
	const char *tocell = "{\"to_cell\":\"us-west-2\"}", *toreg = "{\"to_region\":\"eu\"}";
	REFUSED("POST", path, owner, tocell, 403, "forbidden");
	REFUSED("POST", path, member, tocell, 403, "forbidden");
	REFUSED("POST", path, stranger, tocell, 404, "not_found");
	REFUSED("POST", path, rus, tocell, 403, "forbidden");
	REFUSED("POST", path, cell, tocell, 403, "forbidden");
	struct res r;
	api(&r, "POST", path, ADMIN_TOKEN, toreg);
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	ck_assert_msg(strstr(it_js(r.json, "detail"), "owner") && strstr(it_js(r.json, "detail"), "approve"),
	              "the refusal says who requests and who approves: %s", it_js(r.json, "detail"));
	res_free(&r);
	REFUSED("POST", path, member, toreg, 403, "forbidden");
	REFUSED("POST", path, stranger, toreg, 404, "not_found");
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves"), 0);
	move_of(t, owner, toreg, rm);
	ck_assert_str_eq(state_of(rm), "awaiting_approval");
	ck_assert(has_audit("move.requested", rm));
	/* Reads: the tenant's users without cells, the admin with. */
	snprintf(one, sizeof one, "%s/%s", path, rm);
	json_t *j = CALL("GET", one, member, NULL, 200);
	ck_assert_ptr_null(json_object_get(j, "from_cell"));
	ck_assert_ptr_null(json_object_get(j, "to_cell"));
	ck_assert_str_eq(it_js(j, "to_region"), "eu");
	json_decref(j);
	j = CALL("GET", path, owner, NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 1);
	ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(j, "items"), 0), "to_cell"));
	json_decref(j);
	j = ADM("GET", one, NULL, 200);
	ck_assert_str_eq(it_js(j, "from_cell"), "us-east-1");
	ck_assert_str_eq(it_js(j, "to_cell"), "eu-west-1");
	json_decref(j);
	REFUSED("GET", one, stranger, NULL, 404, "not_found");
	REFUSED("GET", it_fmt("/v1/tenants/%s/moves/%s", o, rm), ADMIN_TOKEN, NULL, 404, "not_found");
	REFUSED("GET", it_fmt("%s/not-a-uuid", path), ADMIN_TOKEN, NULL, 404, "not_found");
	REFUSED("GET", path, rus, NULL, 403, "forbidden");
	/* Approve and abort: admins only. */
	const char *const nobody[] = { owner, member, rus, cell };
	for (int i = 0; i < 4; i++) {
		REFUSED("POST", it_fmt("%s/approve", one), nobody[i], NULL, 403, "forbidden");
		REFUSED("POST", it_fmt("%s/abort", one), nobody[i], NULL, 403, "forbidden");
	}
	REFUSED("POST", it_fmt("%s/approve", one), stranger, NULL, 403, "forbidden");
	j = ADM("POST", it_fmt("%s/approve", one), NULL, 200);
	ck_assert_str_eq(it_js(j, "state"), "copying");
	ck_assert_str_eq(it_js(j, "approved_by"), "admin-token");
	ck_assert(is_api_time(it_js(j, "approved_at")));
	json_decref(j);
	ck_assert(has_audit("move.approved", rm));
	/* The mover's routes: eu's credential drives it; us's, a cell's, users' do not. */
	snprintf(prog, sizeof prog, "/v1/moves/%s/progress", rm);
	const char *pb = "{\"mover\":\"m\",\"events_copied\":1}";
	REFUSED("POST", prog, rus, pb, 403, "forbidden");
	REFUSED("POST", prog, cell, pb, 403, "forbidden");
	REFUSED("POST", prog, owner, pb, 403, "forbidden");
	REFUSED("POST", "/v1/regions/eu/moves/claim", rus, "{\"mover\":\"m\"}", 403, "forbidden");
	REFUSED("POST", "/v1/regions/us/moves/claim", cell, "{\"mover\":\"m\"}", 403, "forbidden");
	REFUSED("POST", "/v1/regions/eu/moves/claim", owner, "{\"mover\":\"m\"}", 403, "forbidden");
	json_decref(CALL("POST", prog, reu, pb, 200));
	json_decref(CALL("POST", prog, ADMIN_TOKEN, pb, 200));
	/* A cell move's mover is its region's. */
	json_decref(ADM("POST", it_fmt("%s/abort", one), NULL, 200));
	move_of(t, ADMIN_TOKEN, tocell, mv);
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", mv), reu, pb, 403, "forbidden");
	json_decref(CALL("POST", it_fmt("/v1/moves/%s/progress", mv), rus, pb, 200));
	REFUSED("POST", "/v1/moves/00000000-0000-0000-0000-000000000000/progress", rus, pb, 404, "not_found");
}
END_TEST

/* ---- the state machine against a reference model ---- */

enum step { S_PROGRESS, S_APPROVE, S_ABORT, S_COMPLETE, S_ERASED_SOURCE, S_ERASED_TARGET, S_CLAIM };
static const char *const states[] = { "awaiting_approval", "copying", "catching_up", "cutover",
	                                  "verifying", "done", "aborted", "failed" };
#define NSTATES 8

static int idx(const char *s)
{
	for (int i = 0; i < NSTATES; i++)
		if (!strcmp(s, states[i]))
			return i;
	return -1;
}

/* The model: the state after `step` (to `to` for progress) from `from`, or
 * -1 when the step is refused (409; 204 for a claim with nothing due). */
static int model(int from, enum step step, int to)
{
	int working = from >= 1 && from <= 4;
	switch (step) {
	case S_PROGRESS:
		/* done only through complete, with the figures */
		return working && (to == from || to == 7 || (to == from + 1 && to <= 4)) ? to : -1;
	case S_APPROVE:
		return from == 0 ? 1 : -1;
	case S_ABORT:
		return from <= 2 ? 6 : -1;
	case S_COMPLETE: /* verifying is the flip test's; done answers again */
		return from == 5 ? 5 : -1;
	case S_ERASED_SOURCE:
		return from == 5 ? 5 : -1;
	case S_ERASED_TARGET:
		return from == 6 || from == 7 ? from : -1;
	case S_CLAIM: /* copy began, erase_at passed, nothing erased yet */
		return from == 0 ? -1 : from;
	}
	return -1;
}

/* Every step from every state, the move set in that state by SQL each
 * time, answered as the model says and leaving the state it says. */
START_TEST(state_machine)
{
	char t[37], mv[37], rus[160], reu[160], owner[128];
	tenant_in("sm-a", "us", "us-east-1", t);
	user_of(t, "sm-a", "owner", owner);
	credential("regions/us", rus);
	credential("regions/eu", reu);
	move_of(t, owner, "{\"to_region\":\"eu\"}", mv);
	char base[300];
	snprintf(base, sizeof base, "/v1/tenants/%s/moves/%s", t, mv);
	int checked = 0;
	for (int from = 0; from < NSTATES; from++) {
		for (int step = S_PROGRESS; step <= S_CLAIM; step++) {
			int ntos = step == S_PROGRESS ? NSTATES : 1;
			for (int to = 0; to < ntos; to++) {
				if (step == S_COMPLETE && from == 4)
					continue;
				free(q(it_fmt("UPDATE moves SET state = '%s', lease_owner = NULL, lease_until = NULL,"
				              " copy_started_at = now(), erase_at = now() - interval '1 second',"
				              " finished_at = NULL, source_erased_at = NULL, target_erased_at = NULL"
				              " WHERE id = '%s' RETURNING 1", states[from], mv)));
				int want = model(from, (enum step)step, to);
				struct res r;
				const char *what = "";
				switch ((enum step)step) {
				case S_PROGRESS:
					what = it_fmt("progress %s", states[to]);
					api(&r, "POST", it_fmt("/v1/moves/%s/progress", mv), reu,
					    it_fmt("{\"mover\":\"m\",\"state\":\"%s\",\"error\":\"e\"}", states[to]));
					break;
				case S_APPROVE:
					what = "approve";
					api(&r, "POST", it_fmt("%s/approve", base), ADMIN_TOKEN, NULL);
					break;
				case S_ABORT:
					what = "abort";
					api(&r, "POST", it_fmt("%s/abort", base), ADMIN_TOKEN, NULL);
					break;
				case S_COMPLETE:
					what = "complete";
					api(&r, "POST", it_fmt("/v1/moves/%s/complete", mv), reu, complete_body(3, "9", 3, "9"));
					break;
				case S_ERASED_SOURCE:
				case S_ERASED_TARGET:
					what = step == S_ERASED_SOURCE ? "erased source" : "erased target";
					api(&r, "POST", it_fmt("/v1/moves/%s/erased", mv), reu,
					    it_fmt("{\"mover\":\"m\",\"side\":\"%s\",\"events_deleted\":3,\"rows_deleted\":4}",
					           step == S_ERASED_SOURCE ? "source" : "target"));
					break;
				case S_CLAIM:
					what = "claim";
					api(&r, "POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m\"}");
					break;
				}
				long st = want < 0 ? (step == S_CLAIM ? 204 : 409) : 200;
				ck_assert_msg(r.status == st, "%s from %s: %ld, want %ld: %s", what, states[from], r.status,
				              st, r.raw.body);
				if (st == 409)
					EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
				res_free(&r);
				int now = idx(state_of(mv));
				int expect = want < 0 ? from : want;
				ck_assert_msg(now == expect, "%s from %s: the move is %s, want %s", what, states[from],
				              states[now], states[expect]);
				checked++;
			}
		}
	}
	ck_assert_int_eq(checked, NSTATES * (NSTATES + 6) - 1);
	/* failed needs its reason; an unknown state is no state. */
	free(q(it_fmt("UPDATE moves SET state = 'copying', cutover_started_at = NULL, finished_at = NULL"
	              " WHERE id = '%s' RETURNING 1", mv)));
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", mv), reu, "{\"mover\":\"m\",\"state\":\"failed\"}", 400,
	        "validation_failed");
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", mv), reu, "{\"mover\":\"m\",\"state\":\"paused\"}", 400,
	        "validation_failed");
	REFUSED("POST", it_fmt("/v1/moves/%s/erased", mv), reu,
	        "{\"mover\":\"m\",\"side\":\"both\",\"events_deleted\":0,\"rows_deleted\":0}", 400, "validation_failed");
	/* The steps stamp their times. */
	json_t *j = progress(mv, reu, "m", "catching_up", 200);
	ck_assert(json_is_null(json_object_get(j, "cutover_started_at")));
	json_decref(j);
	j = progress(mv, reu, "m", "cutover", 200);
	ck_assert(is_api_time(it_js(j, "cutover_started_at")));
	json_decref(j);
	j = progress(mv, reu, "m", "failed", 200);
	ck_assert(is_api_time(it_js(j, "finished_at")));
	ck_assert_str_eq(it_js(j, "error"), "broken");
	json_decref(j);
	ck_assert(has_audit("move.failed", mv));
	(void)rus;
}
END_TEST

/* ---- leases ---- */

/* A claim leases the oldest move due to one mover with a credential for
 * exactly that move; another mover gets 204 and 409 while the lease holds,
 * the same mover takes it again, and anyone takes it once it runs out. */
START_TEST(leases)
{
	char t[37], mv[37], rus[160], path[600];
	credential("regions/us", rus);
	json_t *none = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"a\"}", 204);
	ck_assert_ptr_null(none);
	tenant_in("ls-a", "us", "us-east-1", t);
	move_of(t, ADMIN_TOKEN, "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":60}", mv);
	json_t *c = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"a\"}", 200);
	json_t *m = json_object_get(c, "move");
	ck_assert_str_eq(it_js(m, "id"), mv);
	ck_assert_str_eq(it_js(m, "to_cell"), "us-west-2");
	ck_assert(is_api_time(it_js(m, "copy_started_at")));
	ck_assert_int_eq(ji(c, "lease_seconds"), 30);
	/* The credential verifies with the published keys and names the move. */
	snprintf(path, sizeof path, "%s/trust-moves-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_write_trust(cpfx.url, path);
	struct cfgdoc_trust trust;
	char err[300], detail[300];
	ck_assert_msg(cfgdoc_trust_load(path, &trust, err, sizeof err) == 0, "%s", err);
	struct cfgdoc_verify_opts vo = { .issuer = "celltrail-control-plane", .now = time(NULL), .skew = 60,
	                                 .max_bytes = MOVECRED_MAX_BYTES };
	struct movecred mc;
	const char *tok = it_js(c, "credential");
	enum cfgdoc_result vr = movecred_verify(tok, strlen(tok), &trust, &vo, mv, &mc, detail, sizeof detail);
	ck_assert_msg(vr == CFGDOC_OK, "credential: %d %s", vr, detail);
	ck_assert_str_eq(mc.tenant, t);
	ck_assert_str_eq(mc.from_cell, "us-east-1");
	ck_assert_str_eq(mc.to_cell, "us-west-2");
	ck_assert_str_eq(mc.from_region, "us");
	ck_assert_str_eq(mc.to_region, "us");
	ck_assert_int_eq(mc.erase_after, 0);
	ck_assert_int_eq(mc.exp - mc.iat, 900);
	/* Not a credential of another move. */
	ck_assert_int_ne(movecred_verify(tok, strlen(tok), &trust, &vo, "00000000-0000-0000-0000-000000000000", &mc,
	                                 detail, sizeof detail), CFGDOC_OK);
	json_decref(c);
	/* Held: b gets nothing and may not report. */
	ck_assert_ptr_null(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"b\"}", 204));
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", mv), rus, "{\"mover\":\"b\",\"events_copied\":1}", 409,
	        "conflict");
	/* a again: the same move. */
	c = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"a\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "id"), mv);
	json_decref(c);
	json_t *p = progress(mv, rus, "a", NULL, 200);
	ck_assert_int_eq(ji(p, "events_copied"), 5);
	ck_assert_int_eq(ji(p, "lag_events"), 1);
	json_decref(p);
	/* The lease runs out: b takes it, a is refused. */
	free(q(it_fmt("UPDATE moves SET lease_until = now() - interval '1 second' WHERE id = '%s' RETURNING 1", mv)));
	c = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"b\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "id"), mv);
	json_decref(c);
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", mv), rus, "{\"mover\":\"a\",\"events_copied\":1}", 409,
	        "conflict");
	cfgdoc_trust_free(&trust);
}
END_TEST

/* ---- the flip ---- */

static long version_of(const char *region)
{
	return qlong(it_fmt("SELECT config_version FROM regions WHERE name = '%s'", region));
}

/* Whether `text` (a tenants text) holds tenant `t` or key `k`. */
static int holds(json_t *claims, const char *member, const char *what)
{
	const char *text = it_js(claims, member);
	return text && strstr(text, what) != NULL;
}

/* A cell move: figures that differ are 422 and change nothing; figures
 * that agree flip the tenant in one transaction: its cell, the region's
 * version raised once, the tenant out of the source cell's document and
 * into the target's, its keys routed to the target; the source cell's
 * document keeps the tenant and its keys for CP_MOVE_LINGER, then drops
 * them with the region's version raised (on a mover's claim); again is 200; usage
 * from the source cell is accepted after done (and not before); the
 * source's erasure is reported and audited. */
START_TEST(cell_flip)
{
	char t[37], mv[37], key[25], rus[160], ca[160], cb[160], cc[160];
	credential("regions/us", rus);
	credential("cells/us-east-1", ca);
	credential("cells/us-west-2", cb);
	credential("cells/us-east-2", cc);
	tenant_in("cf-a", "us", "us-east-1", t);
	key_of(t, key);
	move_of(t, ADMIN_TOKEN, "{\"to_cell\":\"us-west-2\",\"erase_after_seconds\":0}", mv);
	json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	to_verifying(mv, rus);
	/* Usage from the target before the flip: not its tenant yet. */
	USAGE(cb, t, "u-early", 403);
	long v0 = version_of("us"), veu = version_of("eu");
	static const char *const bad[][2] = { { "3", "4" }, { "4", "9" } };
	for (int i = 0; i < 2; i++) {
		struct res r;
		api(&r, "POST", it_fmt("/v1/moves/%s/complete", mv), rus, complete_body(3, "9", atol(bad[i][0]), bad[i][1]));
		EXPECT_PROBLEM_SOME(&r, 422, "unprocessable", NULL);
		res_free(&r);
		ck_assert_str_eq(state_of(mv), "verifying");
		ck_assert_str_eq(cell_of(t), "us-east-1/us");
		ck_assert_int_eq(version_of("us"), v0);
	}
	REFUSED("POST", it_fmt("/v1/moves/%s/complete", mv), rus,
	        "{\"mover\":\"m1\",\"source_events\":3,\"source_digest\":\"9x\",\"target_events\":3,\"target_digest\":\"9\"}",
	        400, "validation_failed");
	json_t *d = CALL("POST", it_fmt("/v1/moves/%s/complete", mv), rus, complete_body(3, "009", 3, "9"), 200);
	ck_assert_str_eq(it_js(d, "state"), "done");
	ck_assert_int_eq(ji(d, "write_pause_ms"), 120);
	ck_assert_int_eq(ji(d, "source_events"), 3);
	ck_assert(is_api_time(it_js(d, "finished_at")));
	ck_assert_str_eq(it_js(d, "erase_at"), it_js(d, "finished_at")); /* erase_after_seconds 0 */
	json_decref(d);
	ck_assert_str_eq(cell_of(t), "us-west-2/us");
	ck_assert_int_eq(version_of("us"), v0 + 1);
	ck_assert_int_eq(version_of("eu"), veu);
	ck_assert(has_audit("move.done", mv));
	json_decref(CALL("POST", it_fmt("/v1/moves/%s/complete", mv), rus, complete_body(3, "9", 3, "9"), 200));
	ck_assert_int_eq(version_of("us"), v0 + 1);
	/* Documents: the tenant entered us-west-2, its keys are routed there,
	 * and us-east-1 still lists it while the linger lasts (the router may
	 * still send it there). */
	json_t *src = doc_claims("/v1/cells/us-east-1/config", ca), *dst = doc_claims("/v1/cells/us-west-2/config", cb);
	ck_assert(holds(src, "tenants", t) && holds(src, "tenants", key));
	ck_assert(holds(dst, "tenants", t) && holds(dst, "tenants", key));
	ck_assert_ptr_null(json_object_get(src, "moved")); /* a move within a region moves no key away */
	json_decref(src);
	json_decref(dst);
	json_t *routes = doc_claims("/v1/regions/us/routes", rus);
	ck_assert(holds(routes, "routes", it_fmt("%s|us-west-2;", key)));
	json_decref(routes);
	/* The linger ends at a mover's claim past it: the version is raised
	 * once, and the tenant has left us-east-1's document. */
	long deadline = it_now_ms() + 30000;
	while (version_of("us") == v0 + 1) {
		ck_assert_msg(it_now_ms() < deadline, "the linger never ended");
		usleep(100000);
		json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	}
	ck_assert_int_eq(version_of("us"), v0 + 2);
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM moves WHERE id = '%s' AND linger_until IS NULL", mv)), 1);
	json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	ck_assert_int_eq(version_of("us"), v0 + 2);
	src = doc_claims("/v1/cells/us-east-1/config", ca);
	ck_assert(!holds(src, "tenants", t) && !holds(src, "tenants", key));
	json_decref(src);
	dst = doc_claims("/v1/cells/us-west-2/config", cb);
	ck_assert(holds(dst, "tenants", t) && holds(dst, "tenants", key));
	json_decref(dst);
	/* Usage: the source reports what it stored before the cutover, the
	 * target after; a cell that never held the tenant is refused. */
	USAGE(ca, t, "u-1", 201);
	USAGE(cb, t, "u-1", 201);
	USAGE(cc, t, "u-1", 403);
	ck_assert_int_eq(qlong(it_fmt("SELECT sum(events) FROM usage_ledger WHERE tenant_id = '%s'", t)), 4);
	/* The source's erasure, due at once (erase_after_seconds 0). */
	json_t *c = CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "id"), mv);
	json_decref(c);
	REFUSED("POST", it_fmt("/v1/moves/%s/erased", mv), rus,
	        "{\"mover\":\"m1\",\"side\":\"target\",\"events_deleted\":3,\"rows_deleted\":5}", 409, "conflict");
	d = CALL("POST", it_fmt("/v1/moves/%s/erased", mv), rus,
	         "{\"mover\":\"m1\",\"side\":\"source\",\"events_deleted\":3,\"rows_deleted\":5}", 200);
	ck_assert(is_api_time(it_js(d, "source_erased_at")));
	ck_assert_int_eq(ji(d, "events_erased"), 3);
	json_decref(d);
	char *a = q(it_fmt("SELECT after::text FROM audit_log WHERE action = 'move.source_erased' AND object_id = '%s'", mv));
	ck_assert_ptr_nonnull(a);
	ck_assert_msg(strstr(a, "\"events_deleted\": 3") && strstr(a, "\"rows_deleted\": 5") &&
	              strstr(a, "\"cell\": \"us-east-1\"") && strstr(a, "\"region\": \"us\"") && strstr(a, "erased_at"),
	              "the audit record says what was erased, where and when: %s", a);
	free(a);
	/* Said twice: one audit record. */
	json_decref(CALL("POST", it_fmt("/v1/moves/%s/erased", mv), rus,
	                 "{\"mover\":\"m1\",\"side\":\"source\",\"events_deleted\":3,\"rows_deleted\":5}", 200));
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'move.source_erased'"), 1);
	ck_assert_ptr_null(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 204));
	/* A cell move is a cell's tenant change, never a region's. */
	ck_assert_str_eq(cell_of(t), "us-west-2/us");
	/* The cell never changes but through a move. */
	q_fails(it_fmt("UPDATE tenants SET cell = 'us-east-1' WHERE id = '%s'", t), "23514");
}
END_TEST

/* A region move: the owner requests, the admin approves, the flip raises
 * both regions' versions; the old region's documents list the tenant's
 * keys as moved to the new region, whose documents hold them (the alias);
 * new keys take the new region; the old region's usage is accepted after
 * done; target erasure after an abort is reported. */
START_TEST(region_flip)
{
	char t[37], mv[37], k1[25], k2[25], owner[128], reu[160], rus[160];
	credential("regions/eu", reu);
	credential("regions/us", rus);
	tenant_in("rf-a", "us", "us-east-1", t);
	user_of(t, "rf-a", "owner", owner);
	key_of(t, k1);
	move_of(t, owner, "{\"to_region\":\"eu\",\"erase_after_seconds\":3600}", mv);
	/* Not due before the approval. */
	ck_assert_ptr_null(CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m1\"}", 204));
	json_decref(ADM("POST", it_fmt("/v1/tenants/%s/moves/%s/approve", t, mv), NULL, 200));
	json_t *c = CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m1\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "to_region"), "eu");
	json_decref(c);
	to_verifying(mv, reu);
	long vus = version_of("us"), veu = version_of("eu");
	json_decref(CALL("POST", it_fmt("/v1/moves/%s/complete", mv), reu, complete_body(0, "0", 0, "0"), 200));
	ck_assert_str_eq(cell_of(t), "eu-west-1/eu");
	ck_assert_int_eq(version_of("us"), vus + 1);
	ck_assert_int_eq(version_of("eu"), veu + 1);
	/* The old key keeps its text; a new key names the new region. */
	json_t *k = ADM("GET", it_fmt("/v1/tenants/%s/api-keys/%s", t, k1), NULL, 200);
	ck_assert_str_eq(it_js(k, "prefix"), it_fmt("us_%s", k1));
	json_decref(k);
	key_of(t, k2);
	k = ADM("GET", it_fmt("/v1/tenants/%s/api-keys/%s", t, k2), NULL, 200);
	ck_assert_str_eq(it_js(k, "prefix"), it_fmt("eu_%s", k2));
	json_decref(k);
	char *r = q(it_fmt("SELECT region FROM api_keys WHERE id = '%s'", k2));
	ck_assert_str_eq(r, "eu");
	free(r);
	/* A key a previous build inserts gets its tenant's region. */
	free(q(it_fmt("INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes)"
	              " VALUES ('00000000000000000000abcd', '%s', 'old', '\\x%064d'::bytea, '{events:read}') RETURNING 1",
	              t, 0)));
	r = q("SELECT region FROM api_keys WHERE id = '00000000000000000000abcd'");
	ck_assert_str_eq(r, "eu");
	free(r);
	/* The moved claim at us (regional and cell documents), the keys at eu. */
	json_t *us = doc_claims("/v1/regions/us/config", rus);
	ck_assert_str_eq(it_js(us, "moved"), it_fmt("%s|eu;", k1));
	ck_assert(!holds(us, "tenants", t));
	json_decref(us);
	char cus[160], ceu[160];
	credential("cells/us-east-1", cus);
	credential("cells/eu-west-1", ceu);
	us = doc_claims("/v1/cells/us-east-1/config", cus);
	ck_assert_str_eq(it_js(us, "moved"), it_fmt("%s|eu;", k1));
	ck_assert(!holds(us, "tenants", t)); /* no linger: the old region answers 421 */
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM moves WHERE id = '%s' AND linger_until IS NULL", mv)), 1);
	json_decref(us);
	json_t *eu = doc_claims("/v1/regions/eu/config", reu);
	ck_assert(holds(eu, "tenants", t) && holds(eu, "tenants", k1) && holds(eu, "tenants", k2));
	ck_assert_ptr_null(json_object_get(eu, "moved"));
	json_decref(eu);
	eu = doc_claims("/v1/cells/eu-west-1/config", ceu);
	ck_assert(holds(eu, "tenants", k1));
	json_decref(eu);
	json_t *routes = doc_claims("/v1/regions/eu/routes", reu);
	ck_assert(holds(routes, "routes", it_fmt("%s|eu-west-1;", k1)));
	json_decref(routes);
	/* A revoked key is no longer listed as moved. */
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", t, k1), NULL, 200));
	us = doc_claims("/v1/regions/us/config", rus);
	ck_assert_ptr_null(json_object_get(us, "moved"));
	json_decref(us);
	/* Usage from the old region (region credential) and the old cell. */
	USAGE(rus, t, "u-1", 201);
	USAGE(cus, t, "u-1", 201);
	USAGE(reu, t, "u-1", 201);
	char t3[37];
	tenant_in("rf-c", "us", "us-east-1", t3);
	USAGE(reu, t3, "u-2", 403);
	/* Not due yet: erase_at is an hour away. */
	ck_assert_ptr_null(CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m1\"}", 204));
	/* Done: the credential's erase_after is erase_at. */
	free(q(it_fmt("UPDATE moves SET erase_at = now() - interval '1 second' WHERE id = '%s' RETURNING 1", mv)));
	c = CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m1\"}", 200);
	ck_assert_int_eq(credential_erase_after(c, mv),
	                 qlong(it_fmt("SELECT extract(epoch FROM erase_at)::bigint FROM moves WHERE id = '%s'", mv)));

	json_decref(c);
	/* An aborted move's target copy: due, then reported. */
	char t2[37], m2[37], o2[128];
	tenant_in("rf-b", "us", "us-east-1", t2);
	user_of(t2, "rf-b", "owner", o2);
	move_of(t2, o2, "{\"to_region\":\"eu\"}", m2);
	json_decref(ADM("POST", it_fmt("/v1/tenants/%s/moves/%s/approve", t2, m2), NULL, 200));
	free(q(it_fmt("UPDATE moves SET source_erased_at = now() WHERE id = '%s' RETURNING 1", mv)));
	c = CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m2\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "id"), m2);
	json_decref(c);
	json_decref(ADM("POST", it_fmt("/v1/tenants/%s/moves/%s/abort", t2, m2), NULL, 200));
	REFUSED("POST", it_fmt("/v1/moves/%s/progress", m2), reu, "{\"mover\":\"m2\",\"state\":\"cutover\"}", 409,
	        "conflict");
	c = CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m2\"}", 200);
	ck_assert_str_eq(it_js(json_object_get(c, "move"), "state"), "aborted");
	json_decref(c);
	json_decref(CALL("POST", it_fmt("/v1/moves/%s/erased", m2), reu,
	                 "{\"mover\":\"m2\",\"side\":\"target\",\"events_deleted\":7,\"rows_deleted\":9}", 200));
	ck_assert(has_audit("move.target_erased", m2));
	ck_assert_ptr_null(CALL("POST", "/v1/regions/eu/moves/claim", reu, "{\"mover\":\"m2\"}", 204));
	ck_assert_str_eq(cell_of(t2), "us-east-1/us");
	/* The region never changes but through a move. */
	q_fails(it_fmt("UPDATE tenants SET region = 'us', cell = 'us-east-1' WHERE id = '%s'", t), "23514");
}
END_TEST

/* Deleting a tenant aborts its move first, with its audit record. */
START_TEST(delete_aborts)
{
	char t[37], mv[37];
	tenant_in("da-a", "us", "us-east-1", t);
	move_of(t, ADMIN_TOKEN, "{\"to_cell\":\"us-west-2\"}", mv);
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", t), NULL, 200));
	ck_assert_str_eq(state_of(mv), "aborted");
	ck_assert(has_audit("move.aborted", mv));
	/* The gauge counts moves by state. */
	struct it_resp m;
	it_http(&m, "GET", it_fmt("%s/metrics", cpfx.url), NULL, NULL, 0);
	ck_assert_msg(strstr(m.body, "cp_moves{state=\"aborted\"} 1\n") && strstr(m.body, "cp_moves{state=\"copying\"} 0\n"),
	              "cp_moves in the scrape");
	it_resp_free(&m);
}
END_TEST

/* ---- drains ---- */

/* Drives every open move of the drain to done as the region's mover. */
static int finish_open_moves(const char *cell, const char *token)
{
	int n = 0;
	for (;;) {
		char *id = q(it_fmt("SELECT id FROM moves WHERE from_cell = '%s' AND state = 'copying' LIMIT 1", cell));
		if (!id)
			return n;
		to_verifying(id, token);
		json_decref(call("POST", it_fmt("/v1/moves/%s/complete", id), token, complete_body(1, "1", 1, "1"), 200,
		                 __LINE__));
		free(id);
		n++;
	}
}

/* A drain sets its cell draining (placement skips it), creates at most
 * `parallel` moves per claim to the least loaded other cells, and ends
 * done once the cell is empty; parallel at both ends of its limits. */
START_TEST(drain)
{
	char rus[160], t[4][37], x[37];
	credential("regions/us", rus);
	for (int i = 0; i < 3; i++)
		tenant_in(it_fmt("dr-%d", i), "us", "us-east-2", t[i]);
	tenant_in("dr-gone", "us", "us-east-2", t[3]);
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", t[3]), NULL, 200));
	REFUSED("POST", "/v1/cells/us-east-2/drain", ADMIN_TOKEN, "{\"parallel\":0}", 400, "validation_failed");
	REFUSED("POST", "/v1/cells/us-east-2/drain", ADMIN_TOKEN, "{\"parallel\":11}", 400, "validation_failed");
	REFUSED("POST", "/v1/cells/us-east-2/drain", ADMIN_TOKEN, "{\"parallel\":2,\"x\":1}", 400, "validation_failed");
	REFUSED("POST", "/v1/cells/no-such/drain", ADMIN_TOKEN, "{}", 404, "not_found");
	REFUSED("GET", "/v1/cells/us-east-2/drain", ADMIN_TOKEN, NULL, 404, "not_found");
	long v = version_of("us");
	json_t *d = ADM("POST", "/v1/cells/us-east-2/drain", "{\"parallel\":2}", 202);
	ck_assert_str_eq(it_js(d, "state"), "running");
	ck_assert_int_eq(ji(d, "tenants_left"), 3);
	ck_assert_int_eq(ji(d, "moves_active"), 0);
	json_decref(d);
	ck_assert_int_eq(version_of("us"), v + 1);
	char *s = q("SELECT status FROM cells WHERE name = 'us-east-2'");
	ck_assert_str_eq(s, "draining");
	free(s);
	/* Placement skips the draining cell. */
	for (int i = 0; i < 3; i++) {
		tenant_in(it_fmt("dr-new-%d", i), "us", NULL, x);
		ck_assert_msg(strncmp(cell_of(x), "us-east-2/", 10) != 0, "placed in the draining cell");
	}
	/* Asking again shows the running drain. */
	d = ADM("POST", "/v1/cells/us-east-2/drain", "{}", 202);
	ck_assert_int_eq(ji(d, "parallel"), 2);
	json_decref(d);
	ck_assert_int_eq(qlong("SELECT count(*) FROM cell_drains"), 1);
	/* A claim starts two moves, no more. */
	json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves WHERE drain_id IS NOT NULL"), 2);
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves WHERE to_cell = 'us-east-2'"), 0);
	json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves WHERE drain_id IS NOT NULL"), 2);
	ck_assert_int_eq(finish_open_moves("us-east-2", rus), 2);
	json_decref(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 200));
	ck_assert_int_eq(qlong("SELECT count(*) FROM moves WHERE drain_id IS NOT NULL"), 3);
	d = ADM("GET", "/v1/cells/us-east-2/drain", NULL, 200);
	ck_assert_int_eq(ji(d, "tenants_left"), 1);
	ck_assert_int_eq(ji(d, "moves_active"), 1);
	ck_assert_int_eq(ji(d, "moves_done"), 2);
	json_decref(d);
	ck_assert_int_eq(finish_open_moves("us-east-2", rus), 1);
	/* The next claim finds the cell empty: done. Moves erase a week later. */
	ck_assert_ptr_null(CALL("POST", "/v1/regions/us/moves/claim", rus, "{\"mover\":\"m1\"}", 204));
	d = ADM("GET", "/v1/cells/us-east-2/drain", NULL, 200);
	ck_assert_str_eq(it_js(d, "state"), "done");
	ck_assert_int_eq(ji(d, "tenants_left"), 0);
	ck_assert_int_eq(ji(d, "moves_done"), 3);
	ck_assert(is_api_time(it_js(d, "finished_at")));
	json_decref(d);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE cell = 'us-east-2' AND status <> 'deleted'"), 0);
	/* The other end of parallel, on an empty cell: done at once. */
	json_decref(ADM("POST", "/v1/regions/us/cells", "{\"name\":\"us-empty\",\"kind\":\"shared\"}", 201));
	d = ADM("POST", "/v1/cells/us-empty/drain", "{\"parallel\":10}", 202);
	ck_assert_str_eq(it_js(d, "state"), "done");
	json_decref(d);
	d = ADM("POST", "/v1/cells/us-east-1/drain", "{\"parallel\":1}", 202);
	ck_assert_int_eq(ji(d, "parallel"), 1);
	json_decref(d);
}
END_TEST

Suite *moves_suite(void)
{
	Suite *s = suite_create("moves");
	const TTest *const tests[] = { request_limits, permissions, state_machine, leases, cell_flip, region_flip,
		                           delete_aborts, drain };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 90);
	return s;
}
