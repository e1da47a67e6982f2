/* The read side of a tenant's log (log.h): GET /v1/checkpoints/latest,
 * /v1/checkpoints/{tree_size}, /v1/checkpoints/consistency and
 * /v1/events/{id}/proof. Proofs are computed from the hashes the appender
 * stored (leaves, and perfect subtrees at the levels 4, 8, ...), read in
 * one statement per proof. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "checkpoint.h"
#include "dp.h"
#include "dpdb.h"
#include "event.h"
#include "http.h"
#include "log.h"
#include "merkle.h"
#include "secret.h"

#define RETRY_AFTER_DB "2"
/* Tree sizes a request may name: 1..2^62 (a log never gets near it). */
#define SIZE_MAX_ARG (INT64_C(1) << 62)

static enum http_result db_failed(struct http_req *req, enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_RETRY) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE, "The region's database is unavailable. Retry later.");
	}
	return HTTP_FAILED; /* the DB layer logged it; the HTTP layer answers 500 */
}

/* Every route's gate: the scope and read bucket of GET /v1/events, then
 * the log itself (a region may run without it). A step. */
static enum http_step log_admit(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	if (dp_events_admit(req, http_req_auth(req), CFGDOC_SCOPE_READ) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (!app->log) {
		http_reply_problem(req, PROB_NOT_FOUND, "The log is off in this region: there are no checkpoints or proofs.");
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

/* A tree size as a request gives it: decimal digits only, 1..2^62.
 * Returns 0, or -1 (absent, empty, signed, spaced, too large). */
static int parse_size(const char *s, int64_t *out)
{
	int64_t v = 0;
	if (!s || !*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		int d = *p - '0';
		if (v > (SIZE_MAX_ARG - d) / 10)
			return -1; /* checked before the step: 10 * v would overflow first */
		v = v * 10 + d;
	}
	if (v < 1)
		return -1;
	*out = v;
	return 0;
}


static json_t *hash_array(const merkle_hash *h, int n)
{
	json_t *a = json_array();
	char s[48];
	for (int i = 0; a && i < n; i++) {
		checkpoint_b64_hash(h[i], s); /* as every part of the log writes hashes */
		if (json_array_append_new(a, json_string(s)) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* ---- proofs from stored hashes ---- */

/* A proof is computed twice. First with a `get` that records the perfect
 * subtrees the proof reads (which ones depends on m and n alone), so that
 * the stored hashes they need are known: a subtree at level L is stored
 * when L is a multiple of 4 (level 0: the leaf), else it is folded from
 * the 2^(L mod 4) stored ones below it at level L - (L mod 4). All of them
 * are read in one statement. Then with a `get` that answers from them. */
struct sub {
	int level;
	uint64_t idx;
	merkle_hash h;
};

struct proof {
	const char *tenant;
	int kind;                    /* 0 inclusion, 1 consistency */
	uint64_t m, n;
	struct sub *subs;
	int nsubs, cap;
	int recording;
	/* The stored hashes, in the order asked: sub k's are rows
	 * first[k] .. first[k] + 2^(level mod 4). */
	int *first;
	int nrows;
	merkle_hash *rows;
	unsigned char *have;
	merkle_hash out[MERKLE_MAX_PROOF];
	int len;                     /* hashes in out; -1 when the proof failed */
	int missing;                 /* a stored hash was not there */
};

static int find_sub(const struct proof *p, int level, uint64_t idx)
{
	for (int i = 0; i < p->nsubs; i++)
		if (p->subs[i].level == level && p->subs[i].idx == idx)
			return i;
	return -1;
}

static int get_hash(void *ctx, int level, uint64_t idx, merkle_hash out)
{
	struct proof *p = ctx;
	int i = find_sub(p, level, idx);
	if (!p->recording) {
		if (i < 0)
			return -1; /* not asked the first time: cannot happen */
		memcpy(out, p->subs[i].h, MERKLE_HASH_LEN);
		return 0;
	}
	if (level < 0 || level >= MERKLE_MAX_LEVELS)
		return -1;
	if (i < 0) {
		if (p->nsubs == p->cap) {
			int cap = p->cap ? 2 * p->cap : 64;
			struct sub *s = realloc(p->subs, (size_t)cap * sizeof *s);
			if (!s)
				return -1;
			p->subs = s;
			p->cap = cap;
		}
		p->subs[p->nsubs++] = (struct sub){ .level = level, .idx = idx };
	}
	memset(out, 0, MERKLE_HASH_LEN);
	return 0;
}

static int run_proof(struct proof *p)
{
	if (p->kind == 0)
		return merkle_inclusion_proof(p->m, p->n, get_hash, p, p->out);
	return merkle_consistency_proof(p->m, p->n, get_hash, p, p->out);
}

static void row_found(void *ctx, long i, const unsigned char hash[32])
{
	struct proof *p = ctx;
	if (i >= 0 && i < p->nrows) {
		memcpy(p->rows[i], hash, MERKLE_HASH_LEN);
		p->have[i] = 1;
	}
}

static void proof_free(struct proof *p)
{
	free(p->subs);
	free(p->first);
	free(p->rows);
	free(p->have);
}

/* The proof of p->kind for (p->m, p->n), which the caller has checked
 * against the log's size, into p->out / p->len. A tx body. */
static enum db_status proof_tx(struct db_conn *c, void *ctx)
{
	struct proof *p = ctx;
	struct buf levels = { 0 }, idxs = { 0 };
	enum db_status st = DB_ERROR;

	p->nsubs = 0;
	p->missing = 0;
	p->recording = 1;
	if (run_proof(p) < 0)
		goto out;
	free(p->first);
	free(p->rows);
	free(p->have);
	p->rows = NULL;
	p->have = NULL;
	p->nrows = 0;
	if (!(p->first = calloc((size_t)p->nsubs + 1, sizeof *p->first)))
		goto out;
	for (int k = 0; k < p->nsubs; k++) {
		p->first[k] = p->nrows;
		p->nrows += 1 << (p->subs[k].level % 4);
	}
	p->rows = calloc((size_t)p->nrows + 1, sizeof *p->rows);
	p->have = calloc((size_t)p->nrows + 1, 1);
	if (!p->rows || !p->have)
		goto out;
	buf_append(&levels, "{", 1);
	buf_append(&idxs, "{", 1);
	for (int k = 0; k < p->nsubs; k++) {
		int r = p->subs[k].level % 4, base = p->subs[k].level - r;
		uint64_t at = p->subs[k].idx << r;
		for (uint64_t j = 0; j < (UINT64_C(1) << r); j++) {
			int sep = k || j;
			buf_printf(&levels, "%s%d", sep ? "," : "", base);
			buf_printf(&idxs, "%s%" PRIu64, sep ? "," : "", at + j);
		}
	}
	buf_append(&levels, "}", 2); /* with the NUL */
	buf_append(&idxs, "}", 2);
	if (levels.failed || idxs.failed)
		goto out;
	if (p->nrows > 0 && (st = dp_db_log_hashes(c, p->tenant, levels.p, idxs.p, row_found, p)) != DB_OK)
		goto out;
	st = DB_ERROR;
	for (int k = 0; k < p->nsubs; k++) {
		int r = p->subs[k].level % 4, w = 1 << r;
		merkle_hash *h = p->rows + p->first[k];
		for (int j = 0; j < w; j++)
			if (!p->have[p->first[k] + j])
				p->missing = 1;
		if (p->missing)
			goto out;
		/* Folded in place, a level at a time, up to the subtree's root. */
		for (; w > 1; w /= 2)
			for (int j = 0; j < w / 2; j++)
				merkle_node_hash(h[2 * j], h[2 * j + 1], h[j]);
		memcpy(p->subs[k].h, h[0], MERKLE_HASH_LEN);
	}
	p->recording = 0;
	if ((p->len = run_proof(p)) >= 0)
		st = DB_OK;
out:
	buf_free(&levels);
	buf_free(&idxs);
	return st;
}

/* Computes the proof; answers the request itself when it fails. Returns
 * 0 with p->out / p->len filled, or -1 after queueing the failure. */
static int proof_compute(struct http_req *req, struct proof *p)
{
	struct dp_app *app = http_req_app(req);
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, proof_tx, p);
	if (st != DB_OK) {
		if (p->missing)
			log_error(http_req_id(req), "the log of tenant %s lacks a stored hash for the %s proof (%" PRIu64
			          ", %" PRIu64 "): was it altered?", p->tenant, p->kind ? "consistency" : "inclusion",
			          p->m, p->n);
		db_failed(req, st);
		return -1;
	}
	return 0;
}

/* ---- checkpoints ---- */

/* 1 when Accept asks for the JSON form: it lists application/json and
 * not application/jose (neither refused with q=0). The JWS otherwise. */
static int wants_json(const char *accept)
{
	return http_accept_lists(accept, "application/json") && !http_accept_lists(accept, "application/jose");
}

/* The iat the token's payload says (what was signed), or `fallback`. */
static int64_t payload_iat(const char *jws, int64_t fallback)
{
	const char *a = strchr(jws, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	if (!b || b - a - 1 > 4096)
		return fallback;
	char raw[3072];
	long n = secret_unb64url(a + 1, (size_t)(b - a - 1), raw, sizeof raw);
	json_t *o = n > 0 ? json_loadb(raw, (size_t)n, 0, NULL) : NULL;
	json_t *v = json_object_get(o, "iat");
	int64_t iat = json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
	json_decref(o);
	return iat;
}

static enum http_result reply_checkpoint(struct http_req *req, const struct dp_auth *a,
                                         const struct dp_checkpoint *cp)
{
	char root[48];
	if (http_add_header(req, "Vary", "Accept") != 0)
		return HTTP_FAILED;
	if (!wants_json(http_req_header(req, "Accept")))
		return http_reply_raw(req, 200, "application/jose", cp->jws, strlen(cp->jws));
	checkpoint_b64_hash(cp->root, root);
	return http_reply_json(req, 200,
	                       json_pack("{ss sI ss sI ss}", "tenant_id", a->tenant_id, "tree_size",
	                                 (json_int_t)cp->tree_size, "root_hash", root, "iat",
	                                 (json_int_t)payload_iat(cp->jws, cp->iat), "checkpoint", cp->jws));
}

struct cp_q {
	const char *tenant;
	int64_t size;                /* 0: the newest */
	struct dp_checkpoint cp;
};

static enum db_status cp_tx(struct db_conn *c, void *ctx)
{
	struct cp_q *q = ctx;
	dp_checkpoint_clear(&q->cp);
	return dp_db_checkpoint_get(c, q->tenant, q->size, &q->cp);
}

static enum http_result checkpoint_reply(struct http_req *req, int64_t size)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	struct cp_q q = { .tenant = a->tenant_id, .size = size };
	enum http_result rc;
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, cp_tx, &q);
	if (st == DB_NOT_FOUND)
		rc = size ? http_reply_problem(req, PROB_NOT_FOUND, "No checkpoint of this tenant has tree_size %" PRId64 ".",
		                               size)
		          : http_reply_problem(req, PROB_NOT_FOUND, "This tenant has no checkpoint yet.");
	else if (st != DB_OK)
		rc = db_failed(req, st);
	else
		rc = reply_checkpoint(req, a, &q.cp);
	dp_checkpoint_clear(&q.cp);
	return rc;
}

enum http_result dp_handle_checkpoint_latest(struct http_req *req)
{
	if (log_admit(req) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return checkpoint_reply(req, 0);
}

enum http_result dp_handle_checkpoint_get(struct http_req *req)
{
	int64_t size;
	if (log_admit(req) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (parse_size(http_req_param(req, "tree_size"), &size) != 0)
		return http_reply_invalid_field(req, "tree_size", "tree_size must be an integer from 1 to 2^62.");
	return checkpoint_reply(req, size);
}

/* ---- consistency ---- */

struct size_q {
	const char *tenant;
	int64_t size;
};

static enum db_status size_tx(struct db_conn *c, void *ctx)
{
	struct size_q *q = ctx;
	return dp_db_log_size(c, q->tenant, &q->size);
}

enum http_result dp_handle_checkpoint_consistency(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	int64_t m, n;

	if (log_admit(req) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (parse_size(http_req_query(req, "from"), &m) != 0)
		return http_reply_invalid_field(req, "from", "from must be an integer from 1 to 2^62.");
	if (parse_size(http_req_query(req, "to"), &n) != 0)
		return http_reply_invalid_field(req, "to", "to must be an integer from 1 to 2^62.");
	if (m > n)
		return http_reply_invalid_field(req, "from", "from must be at most to (%" PRId64 ").", n);
	struct size_q sq = { .tenant = a->tenant_id };
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, size_tx, &sq);
	if (st != DB_OK)
		return db_failed(req, st);
	if (n > sq.size)
		return http_reply_invalid_field(req, "to", "to must be at most the log's size, %" PRId64 ".", sq.size);
	struct proof p = { .tenant = a->tenant_id, .kind = 1, .m = (uint64_t)m, .n = (uint64_t)n };
	enum http_result rc = HTTP_REPLIED;
	if (proof_compute(req, &p) == 0) {
		json_t *proof = hash_array(p.out, p.len);
		rc = proof ? http_reply_json(req, 200, json_pack("{sI sI so}", "from", (json_int_t)m, "to", (json_int_t)n,
		                                                 "proof", proof))
		           : HTTP_FAILED;
		if (rc == HTTP_REPLIED)
			dp_log_count_proof(app->log, 1);
	}
	proof_free(&p);
	return rc;
}

/* ---- inclusion ---- */

struct leaf_q {
	const char *tenant, *id;
	struct dp_event_leaf leaf;
};

static enum db_status leaf_tx(struct db_conn *c, void *ctx)
{
	struct leaf_q *q = ctx;
	return dp_db_event_leaf(c, q->tenant, q->id, &q->leaf);
}

enum http_result dp_handle_event_proof(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	const char *id = http_req_param(req, "id"), *ts = http_req_query(req, "tree_size");
	int64_t n = 0;

	if (log_admit(req) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!dp_event_id_valid(id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No event has this id.");
	if (ts && parse_size(ts, &n) != 0)
		return http_reply_invalid_field(req, "tree_size", "tree_size must be an integer from 1 to 2^62.");
	struct leaf_q q = { .tenant = a->tenant_id, .id = id };
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, leaf_tx, &q);
	if (st != DB_OK)
		return db_failed(req, st);
	const struct dp_event_leaf *l = &q.leaf;
	if (!l->exists)
		return http_reply_problem(req, PROB_NOT_FOUND, "No event has this id.");
	if (ts && n > l->log_size)
		return http_reply_invalid_field(req, "tree_size", "tree_size must be at most the log's size, %" PRId64 ".",
		                                l->log_size);
	if (l->index < 0)
		return http_reply_problem(req, PROB_CONFLICT,
		                          "This event is not in the log yet: ask again in a few seconds.");
	if (!ts) {
		n = l->checkpoint_size;
		if (n <= l->index)
			return http_reply_problem(req, PROB_CONFLICT,
			                          "No checkpoint covers this event yet (leaf %" PRId64
			                          "): ask again in a few seconds.", l->index);
	} else if (n <= l->index) {
		return http_reply_problem(req, PROB_CONFLICT,
		                          "This event's leaf, %" PRId64 ", is not below tree_size %" PRId64 ".", l->index,
		                          n);
	}
	struct proof p = { .tenant = a->tenant_id, .kind = 0, .m = (uint64_t)l->index, .n = (uint64_t)n };
	enum http_result rc = HTTP_REPLIED;
	if (proof_compute(req, &p) == 0) {
		json_t *path = hash_array(p.out, p.len);
		char leaf[48];
		checkpoint_b64_hash(l->leaf, leaf);
		rc = path ? http_reply_json(req, 200,
		                            json_pack("{ss sI sI ss so}", "event_id", id, "leaf_index", (json_int_t)l->index,
		                                      "tree_size", (json_int_t)n, "leaf_hash", leaf, "audit_path", path))
		          : HTTP_FAILED;
		if (rc == HTTP_REPLIED)
			dp_log_count_proof(app->log, 0);
	}
	proof_free(&p);
	return rc;
}
