/* Unit tests of delta documents (common/cfgdoc): a chain of random deltas
 * applied to a full document must reach exactly the state a small model
 * in this file holds, as a full document of that state would; and a delta
 * that does not lead on from the state in use, or does not reach the
 * state it names, is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "cfgdoc_envelope.h"
#include "jwk.h"
#include "secret.h"
#include "unit.h"

#define ISS "celltrail-control-plane"
#define MAX_T 48
#define MAX_K 3

static struct jwk key;
static struct cfgdoc_trust trust;
static int64_t now;

/* ---- the model: what a document of each version should say ---- */

struct mkey {
	char id[25];
	unsigned char sha[32];
	int w, r;
	int64_t exp;
};

struct mtenant {
	int present;
	char id[37], slug[32];
	const char *status, *plan;
	struct mkey keys[MAX_K];
	int nkeys;
	int changed;          /* since the last document */
	int in_base;          /* in the state the next delta applies to */
};

struct model {
	struct mtenant t[MAX_T];
	int regions;          /* directory entries: a claim that changes too */
	int64_t ver;
	unsigned key_seq;
	uint64_t rng;
};

static uint64_t rnd(struct model *m)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

static void new_key(struct model *m, struct mkey *k)
{
	snprintf(k->id, sizeof k->id, "%024x", ++m->key_seq);
	uint64_t v = rnd(m);
	secret_sha256(&v, sizeof v, k->sha);
	k->w = (int)(rnd(m) % 2);
	k->r = !k->w || rnd(m) % 2;
	k->exp = rnd(m) % 3 ? 0 : now + 3600 + (int64_t)(rnd(m) % 1000);
}

static void record(const struct mtenant *t, struct buf *b)
{
	ck_assert_int_eq(cfgdoc_add_tenant(b, t->id, t->slug, t->status, t->plan), 0);
	for (int i = 0; i < t->nkeys; i++)
		ck_assert_int_eq(cfgdoc_add_key(b, t->keys[i].id, t->keys[i].sha, t->keys[i].w, t->keys[i].r,
		                                t->keys[i].exp), 0);
}

static json_t *model_claims(const struct model *m, int64_t ver)
{
	json_t *dir = json_array();
	for (int i = 0; i < m->regions; i++) {
		char name[16];
		snprintf(name, sizeof name, "r%d", i);
		ck_assert_int_eq(cfgdoc_directory_add(dir, i ? name : "us", "https://x.example.test", "active"), 0);
	}
	json_t *plans = json_object();
	ck_assert_int_eq(cfgdoc_plans_add(plans, "pro", 100, 200, 1000000, 30), 0);
	ck_assert_int_eq(cfgdoc_plans_add(plans, "free", 5, 10, 1000, 7), 0);
	json_t *region = json_pack("{ss ss ss ss si}", "name", "us", "display_name", "US", "endpoint_url",
	                           "https://us.example.test", "status", "active", "wave", 1);
	struct cfgdoc_head head = { .iss = ISS, .aud = "us", .jti = "j", .iat = now, .exp = now + 3600, .ver = ver };
	json_t *c = cfgdoc_claims(&head, region, dir, plans);
	json_decref(region);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* The sum of the model's records. */
static struct cfgdoc_sum model_sum(const struct model *m)
{
	struct cfgdoc_sum s = { 0 };
	for (int i = 0; i < MAX_T; i++)
		if (m->t[i].present) {
			struct buf b = { 0 };
			unsigned char h[32];
			record(&m->t[i], &b);
			cfgdoc_record_hash(b.p, b.len, h);
			cfgdoc_sum_add(&s, h);
			buf_free(&b);
		}
	return s;
}

static void digest_of(json_t *c, const struct model *m, char out[CFGDOC_DIGEST_LEN + 1])
{
	struct cfgdoc_sum s = model_sum(m);
	ck_assert_int_eq(cfgdoc_state_digest(c, &s, out), 0);
}

/* A full document of the model's state; every tenant is then in the base. */
static char *full_doc(struct model *m)
{
	struct buf b = { 0 };
	char digest[CFGDOC_DIGEST_LEN + 1];
	json_t *c = model_claims(m, m->ver);
	for (int i = 0; i < MAX_T; i++) {
		if (m->t[i].present)
			record(&m->t[i], &b);
		m->t[i].changed = 0;
		m->t[i].in_base = m->t[i].present;
	}
	digest_of(c, m, digest);
	ck_assert_int_eq(json_object_set_new(c, "digest", json_string(digest)), 0);
	char *tok = cfgdoc_sign_text(&key, c, "tenants", b.p ? b.p : "");
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	buf_free(&b);
	return tok;
}

/* The delta from base `base_ver` to the model's state. */
static char *delta_doc(struct model *m, int64_t base_ver)
{
	struct buf up = { 0 }, rm = { 0 };
	char digest[CFGDOC_DIGEST_LEN + 1];
	json_t *c = model_claims(m, m->ver);
	for (int i = 0; i < MAX_T; i++) {
		struct mtenant *t = &m->t[i];
		if (t->changed && t->present)
			record(t, &up);
		else if (t->changed && t->in_base) {
			buf_append(&rm, t->id, strlen(t->id));
			buf_append(&rm, ";", 1);
		}
		t->changed = 0;
		t->in_base = t->present;
	}
	digest_of(c, m, digest);
	buf_append(&rm, "", 1);
	ck_assert_int_eq(cfgdoc_delta_claims(c, base_ver, rm.p, digest), 0);
	char *tok = cfgdoc_sign_text(&key, c, "upsert", up.p ? up.p : "");
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	buf_free(&up);
	buf_free(&rm);
	return tok;
}

/* One random change to the model. */
static void mutate(struct model *m)
{
	struct mtenant *t = &m->t[rnd(m) % MAX_T];
	static const char *const statuses[] = { "active", "suspended", "deleted" };
	switch (rnd(m) % 7) {
	case 0: /* a tenant comes or goes */
		t->present = !t->present;
		if (t->present) {
			snprintf(t->slug, sizeof t->slug, "ten%u", (unsigned)(rnd(m) % 1000));
			t->status = "active";
			t->plan = "pro";
			t->nkeys = 0;
		}
		break;
	case 1:
		t->status = statuses[rnd(m) % 3];
		break;
	case 2:
		t->plan = rnd(m) % 2 ? "pro" : "free";
		break;
	case 3: /* a key created */
		if (t->nkeys < MAX_K)
			new_key(m, &t->keys[t->nkeys++]);
		break;
	case 4: /* a key revoked */
		if (t->nkeys) {
			unsigned i = (unsigned)(rnd(m) % (unsigned)t->nkeys);
			t->nkeys--;
			t->keys[i] = t->keys[t->nkeys];
		}
		break;
	case 5:
		snprintf(t->slug, sizeof t->slug, "sl%03u", (unsigned)(rnd(m) % 1000));
		break;
	case 6: /* the directory changes: a claim, no record */
		m->regions = 1 + (int)(rnd(m) % 3);
		return;
	}
	if (!t->present && !t->in_base)
		return;
	t->changed = 1;
}

/* The state holds exactly the model's tenants and keys. */
static void check_state(const struct cfgdoc *d, const struct model *m)
{
	size_t tenants = 0, keys = 0;
	for (int i = 0; i < MAX_T; i++) {
		const struct mtenant *mt = &m->t[i];
		const struct cfgdoc_tenant *t = cfgdoc_find_tenant(d, mt->id);
		ck_assert_msg((t != NULL) == mt->present, "v%lld tenant %s: %s", (long long)d->ver, mt->id,
		              mt->present ? "missing" : "still there");
		if (!t)
			continue;
		tenants++;
		ck_assert_str_eq(t->slug, mt->slug);
		ck_assert_int_eq(t->status, mt->status[0] == 'a' ? 'a' : mt->status[0] == 's' ? 's' : 'd');
		ck_assert_str_eq(cfgdoc_tenant_plan(d, t)->id, mt->plan);
		ck_assert_int_eq(cfgdoc_tenant_plan(d, t)->rate, !strcmp(mt->plan, "pro") ? 100 : 5);
		for (int k = 0; k < mt->nkeys; k++) {
			const struct cfgdoc_key *dk = cfgdoc_find_key(d, mt->keys[k].id);
			ck_assert_msg(dk != NULL, "v%lld key %s of %s missing", (long long)d->ver, mt->keys[k].id, mt->id);
			ck_assert_str_eq(cfgdoc_key_tenant(d, dk)->id, mt->id);
			ck_assert_int_eq(memcmp(dk->sha256, mt->keys[k].sha, 32), 0);
			ck_assert_uint_eq(dk->scopes, (mt->keys[k].w ? CFGDOC_SCOPE_WRITE : 0u) |
			                                  (mt->keys[k].r ? CFGDOC_SCOPE_READ : 0u));
			ck_assert_int_eq(dk->expires, mt->keys[k].exp);
			keys++;
		}
	}
	/* No key the model does not hold: every key id ever made is looked up. */
	size_t found = 0;
	for (unsigned s = 1; s <= m->key_seq; s++) {
		char id[25];
		snprintf(id, sizeof id, "%024x", s);
		found += cfgdoc_find_key(d, id) != NULL;
	}
	ck_assert_uint_eq(found, keys);
	ck_assert_uint_eq(cfgdoc_tenant_count(d), tenants);
	ck_assert_uint_eq(cfgdoc_key_count(d), keys);
	size_t it = 0, walked = 0;
	for (const struct cfgdoc_tenant *t; (t = cfgdoc_tenants_next(d, &it));) {
		ck_assert_ptr_eq(cfgdoc_find_tenant(d, t->id), t);
		walked++;
	}
	ck_assert_uint_eq(walked, tenants);
	ck_assert_uint_eq(d->ndir, (size_t)m->regions);
	struct cfgdoc_sum s = model_sum(m);
	ck_assert_int_eq(memcmp(d->sum.v, s.v, 32), 0);
}

static struct cfgdoc_verify_opts opts(int64_t min_version)
{
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = "us", .now = now, .skew = 60,
		                            .min_version = min_version, .max_bytes = 1 << 22 };
	return o;
}

static enum cfgdoc_result apply(const char *tok, const struct cfgdoc *state, int64_t min_version,
                                struct cfgdoc **out, int *is_delta, char *detail, size_t dlen)
{
	struct cfgdoc_verify_opts o = opts(min_version);
	return cfgdoc_verify_any(tok, strlen(tok), &trust, &o, state, out, is_delta, detail, dlen);
}

static void model_init(struct model *m, uint64_t seed)
{
	memset(m, 0, sizeof *m);
	m->rng = seed * 2654435761u + 1;
	m->regions = 1;
	m->ver = 1;
	for (int i = 0; i < MAX_T; i++) {
		struct mtenant *t = &m->t[i];
		snprintf(t->id, sizeof t->id, "%08x-0000-4000-8000-%012x", (unsigned)seed, (unsigned)i);
		snprintf(t->slug, sizeof t->slug, "tenant%d", i);
		t->status = "active";
		t->plan = i % 2 ? "pro" : "free";
		t->present = i % 3 != 0;
		for (int k = 0; t->present && k < i % 4 && k < MAX_K; k++)
			new_key(m, &t->keys[t->nkeys++]);
	}
}

static void setup(void)
{
	now = (int64_t)time(NULL);
	ck_assert_int_eq(jwk_generate(&key), 0);
	trust.keys = calloc(1, sizeof *trust.keys);
	ck_assert_ptr_nonnull(trust.keys);
	json_t *pub = jwk_public_json(&key);
	char err[128];
	ck_assert_msg(jwk_from_json(pub, &trust.keys[0], err, sizeof err) == 0, "%s", err);
	json_decref(pub);
	trust.n = 1;
}

static void teardown(void)
{
	cfgdoc_trust_free(&trust);
	jwk_clear(&key);
}

/* Chains of random deltas, with a fresh full document now and then:
 * after every step the state is the model's, and equals (sum, lookups)
 * what a full document of the same state gives. */
START_TEST(random_chains_reach_the_model)
{
	struct model m;
	char detail[256];
	for (uint64_t seed = 1; seed <= 12; seed++) {
		model_init(&m, seed);
		char *tok = full_doc(&m);
		struct cfgdoc *state = NULL;
		int is_delta = 1;
		ck_assert_msg(apply(tok, NULL, 0, &state, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
		ck_assert_int_eq(is_delta, 0);
		free(tok);
		check_state(state, &m);
		for (int step = 0; step < 60; step++) {
			int changes = (int)(rnd(&m) % 6); /* 0: a delta that changes nothing but exp */
			for (int i = 0; i < changes; i++)
				mutate(&m);
			int64_t base = m.ver;
			m.ver += 1 + (int64_t)(rnd(&m) % 3);
			int full = rnd(&m) % 11 == 0;
			tok = full ? full_doc(&m) : delta_doc(&m, base);
			struct cfgdoc *next = NULL;
			enum cfgdoc_result r = apply(tok, state, state->ver, &next, &is_delta, detail, sizeof detail);
			ck_assert_msg(r == CFGDOC_OK, "seed %llu step %d: %s: %s", (unsigned long long)seed, step,
			              cfgdoc_result_names[r], detail);
			ck_assert_int_eq(is_delta, !full);
			ck_assert_int_eq(next->ver, m.ver);
			ck_assert_uint_eq(next->deltas, full ? 0 : state->deltas + 1);
			/* The replaced state goes as the data plane lets it go: its
			 * base lives on in the new one. */
			cfgdoc_free(state);
			state = next;
			check_state(state, &m);
			free(tok);
		}
		/* The same state from a full document: same sum, same answers. */
		tok = full_doc(&m);
		struct cfgdoc *fresh = NULL;
		ck_assert(apply(tok, NULL, 0, &fresh, &is_delta, detail, sizeof detail) == CFGDOC_OK);
		ck_assert_int_eq(memcmp(fresh->sum.v, state->sum.v, 32), 0);
		check_state(fresh, &m);
		cfgdoc_free(fresh);
		cfgdoc_free(state);
		free(tok);
	}
}
END_TEST

/* Three versions: v1 full, v2 and v3 deltas; the hostile deltas below are
 * tried on the v2 state. */
struct chain {
	struct model m;
	struct cfgdoc *v1, *v2;
	char *d12, *d23;
};

static void chain_make(struct chain *c)
{
	char detail[256];
	int is_delta;
	model_init(&c->m, 99);
	char *tok = full_doc(&c->m);
	ck_assert(apply(tok, NULL, 0, &c->v1, &is_delta, detail, sizeof detail) == CFGDOC_OK);
	free(tok);
	mutate(&c->m);
	c->m.t[1].status = "suspended";
	c->m.t[1].changed = 1;
	c->m.ver = 2;
	c->d12 = delta_doc(&c->m, 1);
	ck_assert_msg(apply(c->d12, c->v1, 1, &c->v2, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
	c->m.t[2].plan = "pro";
	c->m.t[2].changed = 1;
	c->m.ver = 3;
	c->d23 = delta_doc(&c->m, 2);
}

static void chain_free(struct chain *c)
{
	cfgdoc_free(c->v1);
	cfgdoc_free(c->v2);
	free(c->d12);
	free(c->d23);
}

static void refused(const char *tok, const struct cfgdoc *state, int64_t min, enum cfgdoc_result want,
                    const char *why)
{
	char detail[256];
	struct cfgdoc *out = (struct cfgdoc *)1;
	int is_delta = 0;
	enum cfgdoc_result r = apply(tok, state, min, &out, &is_delta, detail, sizeof detail);
	ck_assert_msg(r == want, "got %s (%s), want %s", cfgdoc_result_names[r], detail, cfgdoc_result_names[want]);
	ck_assert_ptr_null(out);
	if (why)
		ck_assert_msg(strstr(detail, why) != NULL, "detail '%s' does not say '%s'", detail, why);
}

START_TEST(refuses_delta_for_another_base)
{
	struct chain c;
	chain_make(&c);
	/* v2→v3 on the v1 state: a base it was not made for. */
	refused(c.d23, c.v1, 1, CFGDOC_BAD_CONTENT, "base");
	/* No state at all. */
	refused(c.d23, NULL, 0, CFGDOC_BAD_CONTENT, "base");
	/* base_ver 2 but the state is v2 of another chain: same version, other
	 * records (the digest gives it away). */
	struct model other;
	model_init(&other, 7);
	other.ver = 2;
	char *tok = full_doc(&other);
	struct cfgdoc *o2 = NULL;
	int is_delta;
	char detail[256];
	ck_assert(apply(tok, NULL, 0, &o2, &is_delta, detail, sizeof detail) == CFGDOC_OK);
	refused(c.d23, o2, 2, CFGDOC_BAD_CONTENT, NULL);
	cfgdoc_free(o2);
	free(tok);
	chain_free(&c);
}
END_TEST

START_TEST(refuses_replayed_older_delta)
{
	struct chain c;
	chain_make(&c);
	char detail[256];
	int is_delta;
	struct cfgdoc *v3 = NULL;
	ck_assert(apply(c.d23, c.v2, 2, &v3, &is_delta, detail, sizeof detail) == CFGDOC_OK);
	/* v1→v2 again on v3: older than the version in use... */
	refused(c.d12, v3, 3, CFGDOC_ROLLBACK, NULL);
	/* ...and, whatever the floor, not a delta for this base. */
	refused(c.d12, v3, 0, CFGDOC_BAD_CONTENT, "base");
	/* The same delta twice on its own result. */
	refused(c.d23, v3, 0, CFGDOC_BAD_CONTENT, "base");
	cfgdoc_free(v3);
	chain_free(&c);
}
END_TEST

/* A delta signed by the trusted key whose digest names another state. */
START_TEST(refuses_digest_mismatch)
{
	struct chain c;
	chain_make(&c);
	/* The records change as intended, the digest is of the state without
	 * one of the changes. */
	struct model wrong = c.m;
	wrong.t[2].plan = "free";
	char digest[CFGDOC_DIGEST_LEN + 1];
	json_t *cl = model_claims(&c.m, 3);
	digest_of(cl, &wrong, digest);
	struct buf up = { 0 };
	record(&c.m.t[2], &up);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 2, NULL, digest), 0);
	char *tok = cfgdoc_sign_text(&key, cl, "upsert", up.p);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "digest");
	free(tok);
	/* The claims differ from those the digest covers (a directory entry
	 * added after the digest was taken). */
	json_decref(cl);
	cl = model_claims(&c.m, 3);
	digest_of(cl, &c.m, digest);
	ck_assert_int_eq(cfgdoc_directory_add(json_object_get(cl, "directory"), "eu", "https://eu.example.test",
	                                      "active"), 0);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 2, NULL, digest), 0);
	tok = cfgdoc_sign_text(&key, cl, "upsert", up.p);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "digest");
	free(tok);
	/* No digest at all: a delta must carry one. */
	json_object_del(cl, "digest");
	tok = cfgdoc_sign_text(&key, cl, "upsert", up.p);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "digest");
	free(tok);
	json_decref(cl);
	buf_free(&up);
	/* A full document whose digest is wrong is refused too; one with no
	 * digest (a control plane of an older build) is not. */
	cl = model_claims(&c.m, 4);
	digest[0] = digest[0] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(json_object_set_new(cl, "digest", json_string(digest)), 0);
	struct buf all = { 0 };
	for (int i = 0; i < MAX_T; i++)
		if (c.m.t[i].present)
			record(&c.m.t[i], &all);
	tok = cfgdoc_sign_text(&key, cl, "tenants", all.p);
	refused(tok, NULL, 0, CFGDOC_BAD_CONTENT, "digest");
	free(tok);
	json_object_del(cl, "digest");
	tok = cfgdoc_sign_text(&key, cl, "tenants", all.p);
	struct cfgdoc *d = NULL;
	int is_delta;
	char detail[256];
	ck_assert_msg(apply(tok, NULL, 0, &d, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
	cfgdoc_free(d);
	free(tok);
	json_decref(cl);
	buf_free(&all);
	chain_free(&c);
}
END_TEST

/* A delta signed with a correct digest of a state no base reaches: a
 * removal of a tenant the base does not hold, a key given to a second
 * tenant, a tenant both upserted and removed, malformed records. */
static char *raw_delta(const struct model *m, int64_t base, const char *upsert, const char *remove)
{
	char digest[CFGDOC_DIGEST_LEN + 1];
	json_t *cl = model_claims(m, base + 1);
	digest_of(cl, m, digest);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, base, remove, digest), 0);
	char *tok = cfgdoc_sign_text(&key, cl, "upsert", upsert);
	json_decref(cl);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

START_TEST(refuses_inconsistent_records)
{
	struct chain c;
	chain_make(&c);
	char rm[64], *tok;
	/* t0 is absent (i % 3 == 0) in both states: its removal changes
	 * nothing, and the delta (t2's new record) reaches the model. */
	ck_assert(!c.m.t[0].present);
	snprintf(rm, sizeof rm, "%s;", c.m.t[0].id);
	struct buf t2 = { 0 };
	record(&c.m.t[2], &t2);
	tok = raw_delta(&c.m, 2, t2.p, rm);
	struct cfgdoc *v3 = NULL;
	int is_delta;
	char detail[256];
	ck_assert_msg(apply(tok, c.v2, 2, &v3, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
	check_state(v3, &c.m);
	cfgdoc_free(v3);
	free(tok);
	buf_free(&t2);
	/* The same removal without the upsert: not the state the digest names. */
	tok = raw_delta(&c.m, 2, "", rm);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "digest");
	free(tok);
	/* A key of t5 given to t4 (both present, t5 left alone). */
	ck_assert(c.m.t[5].present && c.m.t[5].nkeys > 0 && c.m.t[4].present);
	struct buf b = { 0 };
	struct mtenant stolen = c.m.t[4];
	stolen.keys[0] = c.m.t[5].keys[0];
	stolen.nkeys = 1;
	record(&stolen, &b);
	tok = raw_delta(&c.m, 2, b.p, NULL);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "key");
	free(tok);
	buf_free(&b);
	/* Upserted and removed at once. */
	record(&c.m.t[4], &b);
	snprintf(rm, sizeof rm, "%s;", c.m.t[4].id);
	tok = raw_delta(&c.m, 2, b.p, rm);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "remove");
	free(tok);
	buf_free(&b);
	/* Malformed: a key before any tenant, a bad remove record. */
	tok = raw_delta(&c.m, 2, "k|aaaaaaaaaaaaaaaaaaaaaaa9|AAAA|w|0;", NULL);
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, NULL);
	free(tok);
	tok = raw_delta(&c.m, 2, "", "not-a-uuid;");
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "remove");
	free(tok);
	/* A delta with no base_ver. */
	json_t *cl = model_claims(&c.m, 3);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 2, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
	json_object_del(cl, "base_ver");
	tok = cfgdoc_sign_text(&key, cl, "upsert", "");
	refused(tok, c.v2, 2, CFGDOC_BAD_CONTENT, "base_ver");
	free(tok);
	json_decref(cl);
	/* The envelope's rules hold for a delta: another key. */
	struct jwk other;
	ck_assert_int_eq(jwk_generate(&other), 0);
	snprintf(other.kid, sizeof other.kid, "%s", key.kid);
	cl = model_claims(&c.m, 3);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 2, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
	tok = cfgdoc_sign_text(&other, cl, "upsert", "");
	refused(tok, c.v2, 2, CFGDOC_BAD_SIGNATURE, NULL);
	free(tok);
	json_decref(cl);
	jwk_clear(&other);
	chain_free(&c);
}
END_TEST

/* A large document's bulk text is cut out before the JSON parser sees it:
 * what it gives must be what parsing the whole payload gives, and a
 * payload the cut does not fit is still parsed whole, duplicates refused. */
static char *payload_doc(const struct model *m, const char *tail)
{
	json_t *c = model_claims(m, m->ver);
	char *small = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	struct buf p = { 0 };
	buf_append(&p, small, strlen(small) - 1);
	buf_append(&p, tail, strlen(tail));
	free(small);
	char *tok = cfgdoc_envelope_sign(&key, p.p, p.len);
	buf_free(&p);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

START_TEST(bulk_text_cut_or_parsed_whole)
{
	struct model m;
	model_init(&m, 5);
	struct buf recs = { 0 }, tail = { 0 };
	for (int i = 0; i < MAX_T; i++)
		if (m.t[i].present)
			record(&m.t[i], &recs);
	ck_assert_uint_gt(recs.len, 4096); /* large enough to be cut */
	char detail[256];
	int is_delta;
	struct cfgdoc *d = NULL;
	/* Cut: the records last. */
	buf_append(&tail, ",\"tenants\":\"", strlen(",\"tenants\":\""));
	buf_append(&tail, recs.p, recs.len);
	buf_append(&tail, "\"}", strlen("\"}"));
	char *tok = payload_doc(&m, tail.p);
	ck_assert_msg(apply(tok, NULL, 0, &d, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
	check_state(d, &m);
	cfgdoc_free(d);
	free(tok);
	/* Whole: another member after the records. */
	buf_free(&tail);
	buf_append(&tail, ",\"tenants\":\"", strlen(",\"tenants\":\""));
	buf_append(&tail, recs.p, recs.len);
	buf_append(&tail, "\",\"later\":\"x\"}", strlen("\",\"later\":\"x\"}"));
	tok = payload_doc(&m, tail.p);
	ck_assert_msg(apply(tok, NULL, 0, &d, &is_delta, detail, sizeof detail) == CFGDOC_OK, "%s", detail);
	check_state(d, &m);
	cfgdoc_free(d);
	free(tok);
	/* The bulk member twice: refused, cut or not. */
	buf_free(&tail);
	buf_append(&tail, ",\"tenants\":\"\",\"tenants\":\"", strlen(",\"tenants\":\"\",\"tenants\":\""));
	buf_append(&tail, recs.p, recs.len);
	buf_append(&tail, "\"}", strlen("\"}"));
	tok = payload_doc(&m, tail.p);
	refused(tok, NULL, 0, CFGDOC_MALFORMED, NULL);
	free(tok);
	/* An escape in the records: parsed whole, then refused as content. */
	buf_free(&tail);
	buf_append(&tail, ",\"tenants\":\"", strlen(",\"tenants\":\""));
	buf_append(&tail, recs.p, recs.len);
	buf_append(&tail, "t|\\u0041\"}", strlen("t|\\u0041\"}"));
	tok = payload_doc(&m, tail.p);
	refused(tok, NULL, 0, CFGDOC_BAD_CONTENT, "tenants");
	free(tok);
	buf_free(&tail);
	buf_free(&recs);
}
END_TEST

struct recs {
	size_t n, len[4], stop_at;
};

static int rec_seen(const char *rec, size_t len, void *arg)
{
	struct recs *r = arg;
	(void)rec;
	if (r->n < 4)
		r->len[r->n] = len;
	r->n++;
	return r->stop_at && r->n == r->stop_at ? 7 : 0;
}

/* The builder refuses what the format cannot carry. */
START_TEST(delta_claims_checked)
{
	json_t *cl = json_object();
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 1, NULL, "short"), -1);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, -1, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), -1);
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 1, "a\"b;", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), -1);
	json_object_set_new(cl, "tenants", json_string(""));
	ck_assert_int_eq(cfgdoc_delta_claims(cl, 1, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), -1);
	json_decref(cl);
	/* The sum: adding then subtracting is the identity, with carries. */
	struct cfgdoc_sum s = { 0 }, z = { 0 };
	unsigned char h[32];
	memset(h, 0xff, sizeof h);
	cfgdoc_sum_add(&s, h);
	cfgdoc_sum_add(&s, h);
	cfgdoc_sum_sub(&s, h);
	ck_assert_int_eq(memcmp(s.v, h, 32), 0);
	cfgdoc_sum_sub(&s, h);
	ck_assert_int_eq(memcmp(s.v, z.v, 32), 0);
	/* Records split where each tenant starts; a non-zero return stops. */
	const char *text = "t|a|b|a|p;k|1|2|w|0;t|c|d|a|p;";
	struct recs got = { 0 };
	ck_assert_int_eq(cfgdoc_each_record(text, strlen(text), rec_seen, &got), 0);
	ck_assert_uint_eq(got.n, 2);
	ck_assert_uint_eq(got.len[0], strlen("t|a|b|a|p;k|1|2|w|0;"));
	ck_assert_uint_eq(got.len[1], strlen("t|c|d|a|p;"));
	got.stop_at = 1;
	got.n = 0;
	ck_assert_int_eq(cfgdoc_each_record(text, strlen(text), rec_seen, &got), 7);
	ck_assert_uint_eq(got.n, 1);
	got.n = 0;
	got.stop_at = 0;
	ck_assert_int_eq(cfgdoc_each_record("", 0, rec_seen, &got), 0);
	ck_assert_uint_eq(got.n, 0);
}
END_TEST

Suite *cfgdelta_suite(void)
{
	Suite *s = suite_create("cfgdelta");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, random_chains_reach_the_model);
	tcase_add_test(tc, refuses_delta_for_another_base);
	tcase_add_test(tc, refuses_replayed_older_delta);
	tcase_add_test(tc, refuses_digest_mismatch);
	tcase_add_test(tc, refuses_inconsistent_records);
	tcase_add_test(tc, delta_claims_checked);
	tcase_add_test(tc, bulk_text_cut_or_parsed_whole);
	suite_add_tcase(s, tc);
	return s;
}
