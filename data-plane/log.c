/* The appender of the tenants' logs and their signed checkpoints (log.h). */
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "background.h"
#include "buf.h"
#include "checkpoint.h"
#include "dp.h"
#include "dpdb.h"
#include "http.h"
#include "keyring.h"
#include "problem.h"
#include "secret.h"
#include "snapshot.h"
#include "timefmt.h"

/* The touched set: open addressing over tenant ids. Past half full, the
 * next round sweeps instead (every tenant with rows past its head is
 * found by one statement), so a burst of many tenants costs no memory. */
#define TOUCH_CAP 8192
/* Full batches one tenant may take in a round before the others get
 * theirs (it is looked at again next round). */
#define ROUND_BATCHES 8
/* dp_log_checkpoint_head: pause while another instance appends. */
#define BUSY_PAUSE_MS 10

struct dp_log {
	struct dp_app *app;
	struct keyring *kr;
	struct dp_loop *loop;
	atomic_int stopping;
	pthread_mutex_t mu;
	char (*set)[37];             /* TOUCH_CAP slots, "" = empty */
	size_t nset;
	int overflow;                /* the set filled up: sweep next round */
	int64_t next_sweep_us;       /* loop thread only */
	int64_t swept_ver;           /* loop thread only: the configuration the last sweep read */
	atomic_ullong leaves, appends_ok, appends_failed, checkpoints, append_us, proofs_incl, proofs_cons;
};

/* ---- the touched set ---- */

static size_t slot_of(const char *tenant)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = tenant; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return (size_t)(h % TOUCH_CAP);
}

static void touch_locked(struct dp_log *l, const char *tenant)
{
	if (l->overflow)
		return;
	if (l->nset >= TOUCH_CAP / 2) {
		l->overflow = 1;
		return;
	}
	for (size_t i = slot_of(tenant);; i = (i + 1) % TOUCH_CAP) {
		if (!l->set[i][0]) {
			snprintf(l->set[i], sizeof l->set[i], "%s", tenant);
			l->nset++;
			return;
		}
		if (!strcmp(l->set[i], tenant))
			return;
	}
}

void dp_log_touch(struct dp_log *l, const char *tenant)
{
	if (!l || !tenant || strlen(tenant) != 36)
		return;
	pthread_mutex_lock(&l->mu);
	touch_locked(l, tenant);
	pthread_mutex_unlock(&l->mu);
}

/* ---- one append ---- */

/* Appends the hex of `n` bytes to `b` (secret_hex, 32 bytes at a time). */
static void hex(struct buf *b, const uint8_t *p, size_t n)
{
	char tmp[65];
	while (n) {
		size_t k = n > 32 ? 32 : n;
		secret_hex(p, k, tmp);
		buf_append(b, tmp, 2 * k);
		p += k;
		n -= k;
	}
}

struct append {
	struct dp_log *l;
	const char *tenant;
	const struct jwk *key;
	int batch;
	/* per attempt (db_tx may run the body again) */
	struct merkle_frontier f;
	struct buf ids, occurred, leaf_hex, levels, idxs, node_hex;
	uint64_t last_tx;
	int64_t last_seq;
	int n, busy, failed;
	int more;                    /* rows past the batch wait: not caught up */
	long nodes;
	int64_t tree_size;           /* after the append */
	int checkpointed;
};

static void append_reset(struct append *a)
{
	buf_free(&a->ids);
	buf_free(&a->occurred);
	buf_free(&a->leaf_hex);
	buf_free(&a->levels);
	buf_free(&a->idxs);
	buf_free(&a->node_hex);
	a->n = a->busy = a->failed = a->checkpointed = a->more = 0;
	a->nodes = 0;
	a->tree_size = 0;
}

/* The perfect subtrees log_nodes keeps: levels 4, 8, 12, ... */
static void on_node(int level, uint64_t index, const merkle_hash h, void *ctx)
{
	struct append *a = ctx;
	if (level % 4)
		return;
	buf_printf(&a->levels, "%s%d", a->nodes ? "," : "{", level);
	buf_printf(&a->idxs, "%s%" PRIu64, a->nodes ? "," : "{", index);
	hex(&a->node_hex, h, MERKLE_HASH_LEN);
	a->nodes++;
}

static void on_row(void *ctx, const char *id, const char *body, size_t len, uint64_t tx, int64_t seq,
                   int64_t occurred_us)
{
	struct append *a = ctx;
	merkle_hash h;
	if (a->failed || a->more)
		return;
	if (a->n == a->batch) {
		a->more = 1; /* the one row read past the batch */
		return;
	}
	a->n++;
	merkle_leaf_hash(body, len, h);
	if (merkle_frontier_push(&a->f, h, on_node, a) != 0) {
		a->failed = 1; /* 2^63 leaves: not in this universe */
		return;
	}
	db_array_add(&a->ids, id, strlen(id));
	buf_printf(&a->occurred, "%s%" PRId64, a->n > 1 ? "," : "{", occurred_us);
	hex(&a->leaf_hex, h, MERKLE_HASH_LEN);
	a->last_tx = tx;
	a->last_seq = seq;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void fill_checkpoint(struct dp_log *l, const char *tenant, int64_t size, const merkle_hash root,
                            struct checkpoint *cp)
{
	memset(cp, 0, sizeof *cp);
	snprintf(cp->tenant_id, sizeof cp->tenant_id, "%s", tenant);
	cp->tree_size = size;
	memcpy(cp->root, root, MERKLE_HASH_LEN);
	cp->iat = now_s();
	snprintf(cp->region, sizeof cp->region, "%s", l->app->cfg.region);
	snprintf(cp->cell, sizeof cp->cell, "%s", l->app->cfg.cell ? l->app->cfg.cell : "");
}

/* The transaction of one append: lock the head (skip when another holds
 * it), read the next events, hash them in, write leaves, nodes, head and
 * checkpoint in one statement. */
static enum db_status append_tx(struct db_conn *c, void *ctx)
{
	struct append *a = ctx;
	struct dp_log_head h;
	struct buf fr = { 0 }, rt = { 0 };
	char *jws = NULL;
	enum db_status st;

	append_reset(a);
	st = dp_db_log_lock_head(c, a->tenant, &h);
	if (st == DB_CONFLICT || st == DB_NOT_FOUND) {
		a->busy = st == DB_CONFLICT;
		return DB_OK;
	}
	if (st != DB_OK)
		return st;
	a->tree_size = h.tree_size;
	if (merkle_frontier_decode(&a->f, (uint64_t)h.tree_size, h.frontier, h.frontier_len) != 0) {
		log_error(NULL, "log of tenant %s: the stored frontier does not match tree_size %" PRId64, a->tenant,
		          h.tree_size);
		return DB_ERROR;
	}
	a->last_tx = h.next_tx;
	a->last_seq = h.next_seq;
	int rows;
	/* One row more than the batch: whether this append catches up. */
	if ((st = dp_db_log_rows(c, a->tenant, h.next_tx, h.next_seq, a->batch + 1, on_row, a, &rows)) != DB_OK)
		return st;
	if (a->failed)
		return DB_ERROR;
	if (a->n == 0)
		return DB_OK;
	db_array_end(&a->ids);
	buf_append(&a->occurred, "}", 1);
	if (a->nodes) {
		buf_append(&a->levels, "}", 1);
		buf_append(&a->idxs, "}", 1);
	} else {
		buf_append(&a->levels, "{}", 2);
		buf_append(&a->idxs, "{}", 2);
	}
	buf_append(&a->node_hex, "", 0);
	merkle_hash root;
	merkle_frontier_root(&a->f, root);
	uint8_t enc[MERKLE_MAX_LEVELS * MERKLE_HASH_LEN];
	size_t enclen = merkle_frontier_encode(&a->f, enc, sizeof enc);
	hex(&fr, enc, enclen);
	buf_append(&fr, "", 0);
	hex(&rt, root, MERKLE_HASH_LEN);

	/* A checkpoint says that at its iat the log held everything committed
	 * a moment before (a verifier calls an event it does not cover, received
	 * well before it, backdated). So only a head that caught up is signed:
	 * while a backlog is appended (the log turned on over stored events, a
	 * moved-in history, an instance back after a long outage) the heads in
	 * between are not. */
	struct checkpoint cp;
	fill_checkpoint(a->l, a->tenant, (int64_t)a->f.size, root, &cp);
	if (!a->more && !(jws = checkpoint_sign(a->key, &cp))) {
		log_error(NULL, "log of tenant %s: signing a checkpoint failed", a->tenant);
		st = DB_ERROR;
		goto out;
	}
	if (a->ids.failed || a->occurred.failed || a->leaf_hex.failed || a->levels.failed || a->idxs.failed || a->node_hex.failed ||
	    fr.failed || rt.failed) {
		st = DB_ERROR;
		goto out;
	}
	struct dp_log_write w = {
		.tenant = a->tenant, .first_index = h.tree_size, .ids = a->ids.p, .occurred_us = a->occurred.p,
		.leaf_hex = a->leaf_hex.p,
		.levels = a->levels.p, .idxs = a->idxs.p, .node_hex = a->node_hex.p ? a->node_hex.p : "",
		.tree_size = (int64_t)a->f.size, .next_tx = a->last_tx, .next_seq = a->last_seq,
		.frontier_hex = fr.p ? fr.p : "", .root_hex = rt.p, .iat = cp.iat, .kid = a->key->kid,
		.jws = jws, /* NULL: no checkpoint */
	};
	if ((st = dp_db_log_write(c, &w)) == DB_OK) {
		a->tree_size = (int64_t)a->f.size;
		a->checkpointed = jws != NULL;
	}
out:
	free(jws);
	buf_free(&fr);
	buf_free(&rt);
	return st;
}

/* One append of `tenant` with `key`, on `c` (NULL: a connection of the
 * pool, with the runner's retries). Counts it. */
static enum db_status append_one(struct dp_log *l, struct db_conn *c, const char *tenant,
                                 const struct jwk *key, struct append *a)
{
	int64_t t0 = timefmt_now_us();
	a->l = l;
	a->tenant = tenant;
	a->key = key;
	a->batch = (int)l->app->cfg.log_batch;
	enum db_status st = c ? db_tx_on(c, append_tx, a) : db_tx(l->app->db, DB_READ_COMMITTED, append_tx, a);
	atomic_fetch_add(&l->append_us, (unsigned long long)(timefmt_now_us() - t0));
	if (st != DB_OK) {
		atomic_fetch_add(&l->appends_failed, 1);
	} else if (a->n > 0) {
		atomic_fetch_add(&l->appends_ok, 1);
		atomic_fetch_add(&l->leaves, (unsigned long long)a->n);
		if (a->checkpointed)
			atomic_fetch_add(&l->checkpoints, 1);
	}
	return st;
}

/* ---- the rounds ---- */

struct todo {
	char (*ids)[37];
	size_t n, cap;
};

static void todo_add(void *ctx, const char *tenant)
{
	struct todo *t = ctx;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		void *p = realloc(t->ids, cap * sizeof *t->ids);
		if (!p)
			return; /* the next sweep finds it */
		t->ids = p;
		t->cap = cap;
	}
	snprintf(t->ids[t->n++], sizeof t->ids[0], "%s", tenant);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

struct sweep {
	const char *tenants;
	struct todo *t;
	size_t before;
};

static enum db_status sweep_tx(struct db_conn *c, void *ctx)
{
	struct sweep *s = ctx;
	s->t->n = s->before; /* another attempt starts over */
	return dp_db_log_pending(c, s->tenants, todo_add, s->t);
}

/* The cell's tenants (of the configuration in use) that have events past
 * their heads: other instances' commits, moved-in rows, a failed round's.
 * Returns 0, or -1 when there is no configuration yet or the statement
 * failed (then the next round sweeps again). */
static int sweep(struct dp_log *l, struct todo *t)
{
	int ret = -1;
	struct dp_app *app = l->app;
	struct buf arr = { 0 };
	size_t n = 0;
	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	if (s) {
		ret = 0;
		l->swept_ver = s->doc->ver;
		size_t it = 0;
		for (const struct cfgdoc_tenant *dt; (dt = cfgdoc_tenants_next(s->doc, &it));) {
			if (dt->status == 'd')
				continue; /* erasure's */
			db_array_add(&arr, dt->id, strlen(dt->id));
			n++;
		}
	}
	dp_snaps_leave(app->snaps);
	db_array_end(&arr);
	if (n && !arr.failed) {
		struct sweep sw = { .tenants = arr.p, .t = t, .before = t->n };
		if (db_tx(app->db, DB_READ_COMMITTED, sweep_tx, &sw) != DB_OK) {
			t->n = sw.before;
			ret = -1;
			log_warn(NULL, "log: the sweep for tenants with events to append failed; retried next round");
		}
	}
	buf_free(&arr);
	return ret;
}

static int64_t log_step(void *ctx)
{
	struct dp_log *l = ctx;
	struct dp_app *app = l->app;
	struct todo t = { 0 };
	struct jwk key = { 0 };
	int64_t now = timefmt_now_us();
	int do_sweep;

	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < TOUCH_CAP && l->nset; i++)
		if (l->set[i][0]) {
			todo_add(&t, l->set[i]);
			l->set[i][0] = '\0';
			l->nset--;
		}
	l->nset = 0;
	/* A new configuration may bring tenants (one moved in): swept at once. */
	const struct dp_snapshot *snap = dp_snaps_enter(app->snaps);
	int new_config = snap && snap->doc->ver != l->swept_ver;
	dp_snaps_leave(app->snaps);
	do_sweep = l->overflow || new_config || now >= l->next_sweep_us;
	l->overflow = 0;
	pthread_mutex_unlock(&l->mu);
	if (do_sweep && sweep(l, &t) == 0)
		l->next_sweep_us = now + app->cfg.log_sweep_interval_ms * 1000;
	if (!t.n)
		goto out;
	qsort(t.ids, t.n, sizeof *t.ids, id_cmp);
	if (keyring_current(l->kr, &key) != 0) {
		log_warn(NULL, "log: the current key of DP_LOG_KEYS_DIR cannot be loaded; %zu tenant(s) wait", t.n);
		for (size_t i = 0; i < t.n; i++)
			dp_log_touch(l, t.ids[i]);
		goto out;
	}
	for (size_t i = 0; i < t.n && !atomic_load(&l->stopping); i++) {
		if (i && !strcmp(t.ids[i], t.ids[i - 1]))
			continue;
		for (int b = 0;; b++) {
			struct append a = { 0 };
			enum db_status st = append_one(l, NULL, t.ids[i], &key, &a);
			int full = a.more, busy = a.busy;
			append_reset(&a);
			if (st != DB_OK) {
				log_warn(NULL, "log: appending tenant %s's events failed (%s); retried next round", t.ids[i],
				         db_status_str(st));
				dp_log_touch(l, t.ids[i]);
				break;
			}
			if (busy) {
				dp_log_touch(l, t.ids[i]); /* held by another: looked at again next round */
				break;
			}
			if (!full || atomic_load(&l->stopping))
				break;
			if (b + 1 == ROUND_BATCHES) {
				dp_log_touch(l, t.ids[i]); /* more next round, after the others */
				break;
			}
		}
	}
out:
	jwk_clear(&key);
	free(t.ids);
	return app->cfg.log_interval_ms;
}

/* ---- life ---- */

struct dp_log *dp_log_start(struct dp_app *app, int *failed)
{
	char err[512];
	*failed = 0;
	if (!app->cfg.log)
		return NULL;
	struct dp_log *l = calloc(1, sizeof *l);
	if (!l || !(l->set = calloc(TOUCH_CAP, sizeof *l->set)))
		goto fail;
	l->app = app;
	pthread_mutex_init(&l->mu, NULL);
	if (!(l->kr = keyring_open(app->cfg.log_keys_dir, app->cfg.log_key_overlap_ms / 1000, err, sizeof err))) {
		log_error(NULL, "DP_LOG_KEYS_DIR: %s", err);
		pthread_mutex_destroy(&l->mu);
		goto fail;
	}
	if (!(l->loop = dp_loop_start("log_appender", log_step, l))) {
		keyring_free(l->kr);
		pthread_mutex_destroy(&l->mu);
		goto fail;
	}
	return l;
fail:
	if (l)
		free(l->set);
	free(l);
	*failed = 1;
	return NULL;
}

void dp_log_stop(struct dp_log *l)
{
	if (!l)
		return;
	atomic_store(&l->stopping, 1);
	dp_loop_stop(l->loop);
	keyring_free(l->kr);
	pthread_mutex_destroy(&l->mu);
	free(l->set);
	free(l);
}

void dp_log_count_proof(struct dp_log *l, int consistency)
{
	if (l)
		atomic_fetch_add(consistency ? &l->proofs_cons : &l->proofs_incl, 1);
}

void dp_log_metrics(struct dp_log *l, FILE *out)
{
	unsigned long long z = 0;
	long pending = 0;
	if (l) {
		pthread_mutex_lock(&l->mu);
		pending = (long)l->nset;
		pthread_mutex_unlock(&l->mu);
	}
	fprintf(out,
	        "# HELP dp_log_leaves_appended_total Events appended to their tenants' logs by this instance.\n"
	        "# TYPE dp_log_leaves_appended_total counter\ndp_log_leaves_appended_total %llu\n"
	        "# HELP dp_log_appends_total Appends to a tenant's log that added leaves (ok) or failed.\n"
	        "# TYPE dp_log_appends_total counter\n"
	        "dp_log_appends_total{outcome=\"ok\"} %llu\ndp_log_appends_total{outcome=\"failed\"} %llu\n"
	        "# HELP dp_log_checkpoints_signed_total Checkpoints of a tenant's log signed by this instance.\n"
	        "# TYPE dp_log_checkpoints_signed_total counter\ndp_log_checkpoints_signed_total %llu\n"
	        "# HELP dp_log_append_seconds_total Time spent in appends to the tenants' logs.\n"
	        "# TYPE dp_log_append_seconds_total counter\ndp_log_append_seconds_total %.6f\n"
	        "# HELP dp_log_proofs_total Inclusion and consistency proofs answered.\n"
	        "# TYPE dp_log_proofs_total counter\n"
	        "dp_log_proofs_total{kind=\"inclusion\"} %llu\ndp_log_proofs_total{kind=\"consistency\"} %llu\n"
	        "# HELP dp_log_tenants_pending Tenants whose commits this instance saw and has not appended yet.\n"
	        "# TYPE dp_log_tenants_pending gauge\ndp_log_tenants_pending %ld\n",
	        l ? (unsigned long long)l->leaves : z, l ? (unsigned long long)l->appends_ok : z,
	        l ? (unsigned long long)l->appends_failed : z, l ? (unsigned long long)l->checkpoints : z,
	        l ? (double)l->append_us / 1e6 : 0.0, l ? (unsigned long long)l->proofs_incl : z,
	        l ? (unsigned long long)l->proofs_cons : z, pending);
}

json_t *dp_log_jwks(struct dp_log *l)
{
	return l ? keyring_jwks(l->kr) : NULL;
}

enum http_result dp_handle_log_jwks(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	if (!app->log)
		return http_reply_problem(req, PROB_NOT_FOUND,
		                          "The log is off on this data plane (DP_LOG): it signs no checkpoints.");
	json_t *j = dp_log_jwks(app->log);
	if (!j)
		return HTTP_FAILED;
	http_add_header(req, "Cache-Control", "max-age=60");
	return http_reply_json(req, 200, j);
}

void dp_checkpoint_clear(struct dp_checkpoint *c)
{
	if (!c)
		return;
	free(c->jws);
	memset(c, 0, sizeof *c);
}

int dp_log_checkpoint_head(struct dp_log *l, struct db_conn *c, const char *tenant, int64_t budget_ms,
                           struct dp_checkpoint *out)
{
	struct jwk key = { 0 };
	struct dp_log_head h;
	char *jws = NULL;
	int64_t iat = 0;
	int ret = -1;
	int64_t deadline = timefmt_now_us() + budget_ms * 1000;
	int caught_up = 0;

	memset(out, 0, sizeof *out);
	if (!l || keyring_current(l->kr, &key) != 0)
		return -1;
	/* What was committed before now is appended, unless another instance
	 * is appending it (then waited for) or it takes longer than the budget. */
	for (;;) {
		struct append a = { 0 };
		enum db_status st = append_one(l, c, tenant, &key, &a);
		int busy = a.busy, again = st == DB_OK && (a.busy || a.more);
		append_reset(&a);
		if (st != DB_OK)
			goto out;
		caught_up = !again;
		if (!again || timefmt_now_us() >= deadline)
			break;
		if (busy) {
			struct timespec ts = { 0, BUSY_PAUSE_MS * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	enum db_status st;
	if (!caught_up) {
		/* A backlog longer than the budget: the newest checkpoint stands
		 * (signed when the log had caught up); the head is not signed
		 * before it catches up (append_tx). */
		st = dp_db_checkpoint_get(c, tenant, 0, out);
		ret = st == DB_OK || st == DB_NOT_FOUND ? 0 : -1;
		goto out;
	}
	st = dp_db_log_head_get(c, tenant, &h, &jws, &iat);
	if (st == DB_NOT_FOUND || (st == DB_OK && h.tree_size == 0)) {
		ret = 0;
		goto out;
	}
	if (st != DB_OK)
		goto out;
	if (!jws) {
		/* A head without its checkpoint (stored by a build that signed
		 * none): signed now; the first stored of a size stays. */
		struct checkpoint cp;
		struct buf rt = { 0 };
		fill_checkpoint(l, tenant, h.tree_size, h.root, &cp);
		char *s = checkpoint_sign(&key, &cp);
		hex(&rt, h.root, MERKLE_HASH_LEN);
		st = s && !rt.failed ? dp_db_log_checkpoint_put(c, tenant, h.tree_size, rt.p, cp.iat, key.kid, s)
		                     : DB_ERROR;
		free(s);
		buf_free(&rt);
		if (st != DB_OK)
			goto out;
		atomic_fetch_add(&l->checkpoints, 1);
		if ((st = dp_db_log_head_get(c, tenant, &h, &jws, &iat)) != DB_OK || !jws)
			goto out;
	}
	if (iat < now_s()) {
		/* The stored checkpoint says when the log reached this size, not
		 * that it still has it: a log cut back to an older size, with the
		 * checkpoints after it deleted, would come with that size's old
		 * checkpoint, and a checkpoint the customer saved in between would
		 * look newer than the export instead of showing the cut. The
		 * reader gets one signed now (not stored: the first of a size
		 * stays). */
		struct checkpoint cp;
		fill_checkpoint(l, tenant, h.tree_size, h.root, &cp);
		char *s = checkpoint_sign(&key, &cp);
		if (!s)
			goto out;
		free(jws);
		jws = s;
		iat = cp.iat;
		atomic_fetch_add(&l->checkpoints, 1);
	}
	out->tree_size = h.tree_size;
	memcpy(out->root, h.root, MERKLE_HASH_LEN);
	out->iat = iat;
	out->jws = jws;
	jws = NULL;
	ret = 0;
out:
	free(jws);
	jwk_clear(&key);
	return ret;
}
