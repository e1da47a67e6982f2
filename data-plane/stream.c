/* Delivery of the tenants' log streams (stream.h).
 *
 * A round of one stream, on a connection of the pool held for the round:
 *   1. the stream's advisory lock (pg_try_advisory_lock on that session):
 *      held by another instance's worker, the stream is skipped;
 *   2. its cursor row, made at first sight (position from `since`);
 *   3. the owner's new commands: resume (clears failed/failing), replay
 *      (the position goes back, once nothing is in flight);
 *   4. paused, failed: no attempt. The residency rule of the document and
 *      the sealed secret are checked: "refused" and no attempt when either
 *      fails;
 *   5. with nothing in flight, the next events (below the feed horizon,
 *      so final: feed.c) make a batch, recorded in its own statement
 *      before the first attempt; a partial batch waits DP_STREAM_BATCH_WAIT
 *      from its first event's receipt;
 *   6. an attempt re-reads exactly the recorded rows and sends them under
 *      the batch's id and made_at; acknowledged, the position moves to the
 *      batch's end; failed, the next attempt is after a backoff.
 * No transaction is open across a send: it would hold back every tenant's
 * feed horizon in the cell. A process killed between the send and the
 * acknowledgement's record leaves the batch in flight: the next round
 * anywhere sends it again, the same batch id and the same events.
 *
 * A stream is delivered only where its tenant's document names it (the
 * tenant placed in this cell). After a move the cursor row stays in the old
 * cell's database until the tenant is erased there, and the new cell starts
 * a new cursor from the stream's `since` (see README: Log streams). */
#include "stream.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "buf.h"
#include "cfgdoc.h"
#include "cp_client.h"
#include "cp_errors.h"
#include "dp.h"
#include "dpdb.h"
#include "keyring.h"
#include "log.h"
#include "residency.h"
#include "seal.h"
#include "snapshot.h"
#include "stream_send.h"
#include "timefmt.h"

/* Batches one stream may send in a round before the others get theirs. */
#define ROUND_BATCHES 8
/* Touched tenants a worker remembers; beyond, every stream is looked at. */
#define TOUCH_CAP 256
/* Streams per report request (the control plane takes at most 1000). */
#define REPORT_CHUNK 1000
#define REPORT_TIMEOUT_MS 10000
#define REPORT_RESPONSE_MAX 65536
/* A webhook body's envelope around the events, at most (ids, type, time). */
#define WEBHOOK_ENVELOPE 512
/* A HEC line's wrapping of one event, at most (time, source, fields). */
#define HEC_PER_EVENT 320

enum { ST_ACTIVE, ST_RETRYING, ST_FAILED, ST_PAUSED, ST_REFUSED, ST__N };
static const char *const status_names[ST__N] = { "active", "retrying", "failed", "paused", "refused" };

struct entry {
	char id[37], tenant[37];
	size_t idx;                /* in the document of version `ver` */
	int64_t next_us;           /* looked at again then */
	uint32_t sig;              /* of what the owner can change (entry_sig) */
};

struct worker {
	struct dp_streams *s;
	unsigned index;
	struct dp_loop *loop;
	struct stream_sender *sender;
	pthread_mutex_t mu;
	char touched[TOUCH_CAP][37];
	size_t ntouched;
	int all;                   /* touched past TOUCH_CAP: every stream now */
	/* loop thread only */
	struct entry *e;
	size_t n;
	int64_t ver;
	uint32_t rules_sig;        /* of the document's stream_rules */
	uint64_t rng;
};

struct dp_streams {
	struct dp_app *app;
	struct keyring *kr;        /* NULL without DP_STREAM_KEYS_DIR */
	char kr_error[256];
	struct worker *w;
	unsigned nw;
	struct dp_loop *reporter;
	atomic_int stopping;
	atomic_ullong events[3], batches_ok[3], batches_failed[3], send_us[3], bytes[3];
	atomic_ullong reports_ok, reports_failed;
	atomic_llong by_status[ST__N], lag_events, lag_seconds_max;
};

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

void dp_streams_touch(struct dp_streams *s, const char *tenant)
{
	if (!s)
		return;
	struct worker *w = &s->w[fnv(tenant) % s->nw];
	pthread_mutex_lock(&w->mu);
	if (w->ntouched < TOUCH_CAP)
		snprintf(w->touched[w->ntouched++], 37, "%s", tenant);
	else
		w->all = 1;
	pthread_mutex_unlock(&w->mu);
	dp_loop_wake(w->loop);
}

/* ---- one stream's copy, taken from the document in use ---- */

struct job {
	struct cfgdoc_stream st;   /* url and sealed are our copies */
	char region[33];
	char **hosts, **s3;
	size_t nhosts, ns3;
};

static void job_free(struct job *j)
{
	free(j->st.url);
	free(j->st.sealed);
	for (size_t i = 0; i < j->nhosts; i++)
		free(j->hosts[i]);
	for (size_t i = 0; i < j->ns3; i++)
		free(j->s3[i]);
	free(j->hosts);
	free(j->s3);
}

static int strs_copy(char **from, size_t n, char ***to, size_t *nto)
{
	*nto = 0;
	if (!(*to = calloc(n + 1, sizeof **to)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!((*to)[i] = strdup(from[i])))
			return -1;
		(*nto)++;
	}
	return 0;
}

/* 0 with `j` filled; 1 when the document changed since the entries were
 * made; -1 when out of memory. */
static int job_take(struct dp_streams *s, const struct worker *w, const struct entry *e, struct job *j)
{
	int ret = 1;
	memset(j, 0, sizeof *j);
	const struct dp_snapshot *snap = dp_snaps_enter(s->app->snaps);
	if (!snap || snap->doc->ver != w->ver || e->idx >= snap->doc->nstreams)
		goto out;
	const struct cfgdoc *d = snap->doc;
	ret = -1;
	j->st = d->streams[e->idx];
	j->st.url = strdup(d->streams[e->idx].url);
	j->st.sealed = d->streams[e->idx].sealed ? strdup(d->streams[e->idx].sealed) : NULL;
	snprintf(j->region, sizeof j->region, "%s", d->self.name);
	if (!j->st.url || (d->streams[e->idx].sealed && !j->st.sealed) ||
	    strs_copy(d->stream_hosts, d->nstream_hosts, &j->hosts, &j->nhosts) ||
	    strs_copy(d->stream_s3_regions, d->nstream_s3_regions, &j->s3, &j->ns3))
		goto out;
	ret = 0;
out:
	dp_snaps_leave(s->app->snaps);
	return ret;
}

/* ---- the events of a batch ---- */

struct rows {
	struct buf text;
	struct stream_event *ev;
	size_t *off;
	size_t n, cap;
	uint64_t last_tx;
	int64_t last_seq;
	int failed;
};

static void on_row(void *ctx, uint64_t tx, int64_t seq, const char *json, size_t len, int64_t received_at_us)
{
	struct rows *r = ctx;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		void *e = realloc(r->ev, cap * sizeof *r->ev), *o = e ? realloc(r->off, cap * sizeof *r->off) : NULL;
		if (e)
			r->ev = e;
		if (!o) {
			r->failed = 1;
			return;
		}
		r->off = o;
		r->cap = cap;
	}
	r->off[r->n] = r->text.len;
	buf_append(&r->text, json, len);
	r->ev[r->n] = (struct stream_event){ .json = NULL, .len = len, .received_at_us = received_at_us };
	r->n++;
	r->last_tx = tx;
	r->last_seq = seq;
}

/* The pointers into the text, once it stopped moving. */
static int rows_fix(struct rows *r)
{
	if (r->failed || r->text.failed)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		r->ev[i].json = r->text.p + r->off[i];
	return 0;
}

static void rows_clear(struct rows *r)
{
	buf_free(&r->text);
	free(r->ev);
	free(r->off);
	memset(r, 0, sizeof *r);
}

struct next_ctx {
	const char *tenant;
	const struct dp_stream_cursor *cur;
	int limit, overhead, available;
	int64_t bytes;
	struct rows *rows;
};

static enum db_status next_tx(struct db_conn *c, void *ctx)
{
	struct next_ctx *n = ctx;
	rows_clear(n->rows);
	return dp_db_stream_next(c, n->tenant, n->cur->after_tx, n->cur->after_seq, n->limit, n->bytes, n->overhead,
	                         &n->available, on_row, n->rows);
}

/* Runs `fn` in a READ COMMITTED transaction on `c` (no transaction open). */
static enum db_status tx_on(struct db_conn *c, db_tx_fn fn, void *ctx)
{
	enum db_status st = db_exec(c, NULL, "BEGIN", 0, NULL);
	if (st != DB_OK)
		return st;
	st = fn(c, ctx);
	if (st == DB_OK)
		return db_exec(c, NULL, "COMMIT", 0, NULL);
	if (db_exec(c, NULL, "ROLLBACK", 0, NULL) != DB_OK)
		return DB_UNAVAILABLE;
	return st;
}

/* ---- checks before an attempt ---- */

/* The destination under the document's residency rule: 0, or -1 with `why`. */
static int residency_ok(const struct job *j, char *why, size_t whylen)
{
	struct residency_rule rule = { 0 };
	for (size_t i = 0; i < j->nhosts && i < RESIDENCY_MAX_RULES; i++)
		rule.hosts[rule.nhosts++] = j->hosts[i];
	for (size_t i = 0; i < j->ns3 && i < RESIDENCY_MAX_RULES; i++)
		rule.s3_regions[rule.ns3++] = j->s3[i];
	int s3 = !strcmp(j->st.kind, "s3");
	return residency_check(&rule, j->region, j->st.url, s3 ? j->st.s3_region : NULL, why, whylen);
}

/* Opens the stream's sealed secret: the secret (wipe and free), or NULL
 * with `why` (never holding a secret). */
static char *secret_open(struct dp_streams *s, const struct job *j, size_t *len, char *why, size_t whylen)
{
	char kid[64], err[200];
	struct jwk key = { 0 };
	char *secret = NULL;
	if (!s->kr) {
		snprintf(why, whylen, "%s", s->kr_error);
		return NULL;
	}
	if (!j->st.sealed) {
		snprintf(why, whylen, "no sealed secret for this stream in the configuration (the region has no stream_key)");
		return NULL;
	}
	if (seal_kid(j->st.sealed, kid) != 0) {
		snprintf(why, whylen, "the stream's sealed secret is malformed");
		return NULL;
	}
	if (keyring_current(s->kr, &key) != 0) {
		snprintf(why, whylen, "the current key of DP_STREAM_KEYS_DIR cannot be loaded");
		return NULL;
	}
	if (strcmp(key.kid, kid)) {
		snprintf(why, whylen, "the secret is sealed to key %.64s, not this region's current stream key %.64s",
		         kid, key.kid);
		goto out;
	}
	if (!(secret = seal_open(&key, j->st.id, j->st.sealed, len, err, sizeof err)))
		snprintf(why, whylen, "the sealed secret cannot be opened: %s", err);
out:
	jwk_clear(&key);
	return secret;
}

static void secret_free(char *secret, size_t len)
{
	if (secret) {
		OPENSSL_cleanse(secret, len);
		free(secret);
	}
}

/* ---- one stream's round ---- */

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* min(RETRY_MAX, RETRY_MIN * 2^(attempts-1)) ±20%, at least Retry-After
 * (capped at RETRY_MAX). */
static int64_t backoff_ms(struct worker *w, int attempts, int64_t retry_after_s)
{
	const struct dp_config *c = &w->s->app->cfg;
	int64_t d = c->stream_retry_min_ms;
	for (int i = 1; i < attempts && d < c->stream_retry_max_ms; i++)
		d *= 2;
	if (d > c->stream_retry_max_ms)
		d = c->stream_retry_max_ms;
	d = d * (80 + (int64_t)(rnd(w) % 41)) / 100;
	int64_t ra = retry_after_s > 0 ? retry_after_s * 1000 : 0;
	if (ra > c->stream_retry_max_ms)
		ra = c->stream_retry_max_ms;
	return d > ra ? d : ra;
}

static void refuse(struct db_conn *c, const struct job *j, const char *why)
{
	if (dp_db_stream_set_status(c, j->st.id, "refused", why) != DB_OK)
		log_debug(NULL, "stream %s: its refusal is recorded next round", j->st.id);
}

static int kind_index(const char *kind)
{
	int k = stream_kind_parse(kind);
	return k < 0 ? 0 : k;
}

/* Sends batches of `j` on `c` (holding the stream's lock). Returns the
 * time (unix us) to look at the stream again. */
static int64_t deliver(struct worker *w, struct db_conn *c, struct job *j)
{
	struct dp_streams *s = w->s;
	const struct dp_config *cfg = &s->app->cfg;
	struct dp_stream_cursor cur;
	char why[600];
	int64_t now = timefmt_now_us(), poll = now + cfg->stream_poll_ms * 1000;
	int k = kind_index(j->st.kind);
	struct rows rows = { 0 };
	int64_t next = poll;
	/* A first sight after a replay starts from the replay's point. */
	int64_t since = j->st.replay > 0 ? j->st.replay_since : j->st.since;

	if (dp_db_stream_cursor(c, j->st.id, j->st.tenant, since, j->st.resume, j->st.replay, &cur) != DB_OK)
		return poll;
	if (j->st.resume > cur.resume_applied) {
		if (dp_db_stream_resume(c, j->st.id, j->st.resume) != DB_OK ||
		    dp_db_stream_cursor(c, j->st.id, j->st.tenant, since, j->st.resume, j->st.replay, &cur) != DB_OK)
			return poll;
		log_info(NULL, "stream %s resumed", j->st.id);
	}
	for (int b = 0; b < ROUND_BATCHES && !atomic_load(&s->stopping); b++) {
		if (j->st.replay > cur.replay_applied && !cur.in_flight) {
			if (dp_db_stream_rewind(c, j->st.id, j->st.tenant, j->st.replay_since, j->st.replay) != DB_OK ||
			    dp_db_stream_cursor(c, j->st.id, j->st.tenant, since, j->st.resume, j->st.replay, &cur) != DB_OK)
				goto out;
			log_info(NULL, "stream %s replays from %" PRId64, j->st.id, j->st.replay_since);
		}
		if (j->st.paused) {
			if (dp_db_stream_set_status(c, j->st.id, "paused", NULL) != DB_OK)
				log_debug(NULL, "stream %s: its paused state is recorded next round", j->st.id);
			goto out;
		}
		if (!strcmp(cur.status, "failed"))
			goto out;
		if (residency_ok(j, why, sizeof why) != 0) {
			if (strcmp(cur.status, "refused"))
				log_warn(NULL, "stream %s refused: %s", j->st.id, why);
			refuse(c, j, why);
			goto out;
		}
		size_t slen = 0;
		char *secret = secret_open(s, j, &slen, why, sizeof why);
		if (!secret) {
			if (strcmp(cur.status, "refused"))
				log_warn(NULL, "stream %s refused: %s", j->st.id, why);
			refuse(c, j, why);
			goto out;
		}
		if (!strcmp(cur.status, "paused") || !strcmp(cur.status, "refused")) {
			const char *to = cur.failing ? "retrying" : "active";
			if (dp_db_stream_set_status(c, j->st.id, to, NULL) == DB_OK)
				snprintf(cur.status, sizeof cur.status, "%s", to);
		}

		struct stream_batch batch = { 0 };
		if (!cur.in_flight) {
			int over = k == STREAM_SPLUNK_HEC ? HEC_PER_EVENT : 1;
			int64_t budget = cfg->stream_batch_bytes - (k == STREAM_WEBHOOK ? WEBHOOK_ENVELOPE : 0);
			struct next_ctx n = { .tenant = j->st.tenant, .cur = &cur, .limit = (int)cfg->stream_batch,
				                  .overhead = over, .bytes = budget, .rows = &rows };
			if (tx_on(c, next_tx, &n) != DB_OK || rows_fix(&rows) != 0) {
				secret_free(secret, slen);
				goto out;
			}
			if (rows.n == 0) {
				secret_free(secret, slen);
				goto out; /* caught up */
			}
			int full = rows.n >= (size_t)cfg->stream_batch || n.available > (int)rows.n;
			int64_t ready = rows.ev[0].received_at_us + cfg->stream_batch_wait_ms * 1000;
			if (!full && ready > timefmt_now_us()) {
				secret_free(secret, slen);
				next = ready < poll ? ready : poll;
				goto out;
			}
			int64_t made_at;
			enum db_status st = dp_db_stream_make_batch(c, j->st.id, &cur, rows.last_tx, rows.last_seq,
			                                            (int)rows.n, &made_at);
			if (st != DB_OK) {
				secret_free(secret, slen);
				next = st == DB_NOT_FOUND ? now : poll; /* moved under us: read again */
				goto out;
			}
			cur.in_flight = 1;
			cur.batch_no++;
			cur.batch_to_tx = rows.last_tx;
			cur.batch_to_seq = rows.last_seq;
			cur.batch_events = (int)rows.n;
			cur.batch_made_at = made_at;
			cur.attempts = 0;
			cur.retry_in_ms = 0;
		} else {
			if (cur.retry_in_ms > 0) {
				secret_free(secret, slen);
				int64_t at = timefmt_now_us() + cur.retry_in_ms * 1000;
				next = at < poll ? at : poll;
				goto out;
			}
			rows_clear(&rows);
			if (dp_db_stream_batch_rows(c, j->st.tenant, cur.after_tx, cur.after_seq, cur.batch_to_tx,
			                            cur.batch_to_seq, cur.batch_events + 1, on_row, &rows) != DB_OK ||
			    rows_fix(&rows) != 0) {
				secret_free(secret, slen);
				goto out;
			}
			if (rows.n != (size_t)cur.batch_events)
				/* Retention or an erasure took rows of the batch since it
				 * was made: what is left is sent, under the same id. */
				log_warn(NULL, "stream %s: batch %" PRId64 " had %d event(s), %zu are left", j->st.id,
				         cur.batch_no, cur.batch_events, rows.n);
		}

		stream_batch_id(j->st.id, cur.batch_no, batch.id);
		batch.no = cur.batch_no;
		batch.made_at = cur.batch_made_at;
		batch.events = rows.ev;
		batch.n = rows.n;
		struct stream_dest d = { .kind = (enum stream_kind)k,
			                     .stream_id = j->st.id,
			                     .tenant_id = j->st.tenant,
			                     .url = j->st.url,
			                     .bucket = j->st.bucket,
			                     .s3_region = j->st.s3_region,
			                     .access_key_id = j->st.access_key_id,
			                     .prefix = j->st.prefix,
			                     .secret = secret,
			                     .secret_len = slen };
		struct stream_send_result res = { 0 };
		int sent = stream_send(w->sender, &d, &batch, &res, why, sizeof why);
		secret_free(secret, slen);
		atomic_fetch_add(&s->send_us[k], (unsigned long long)(res.seconds * 1e6));
		atomic_fetch_add(&s->bytes[k], (unsigned long long)res.bytes);
		if (sent == 0) {
			atomic_fetch_add(&s->batches_ok[k], 1);
			atomic_fetch_add(&s->events[k], (unsigned long long)rows.n);
			/* Sent but not recorded (the database went away): the batch
			 * is still in flight and is sent again, the same one. */
			if (dp_db_stream_delivered(c, j->st.id, cur.batch_no, (int)rows.n) != DB_OK)
				goto out;
			cur.after_tx = cur.batch_to_tx;
			cur.after_seq = cur.batch_to_seq;
			cur.in_flight = 0;
			cur.failing = 0;
			snprintf(cur.status, sizeof cur.status, "active");
			rows_clear(&rows);
			next = now; /* more may be ready */
			continue;
		}
		atomic_fetch_add(&s->batches_failed[k], 1);
		int64_t wait = backoff_ms(w, cur.attempts + 1, res.retry_after_s);
		char status[16] = "";
		if (dp_db_stream_failed(c, j->st.id, cur.batch_no, why, wait, cfg->stream_failure_budget_ms, status) !=
		    DB_OK)
			goto out;
		if (!strcmp(status, "failed"))
			log_error(NULL, "stream %s failed: its failure budget ran out (%s); delivery stops until its owner resumes it",
			          j->st.id, why);
		else
			log_warn(NULL, "stream %s: batch %s not delivered (%s); next attempt in %" PRId64 " ms", j->st.id,
			         batch.id, why, wait);
		int64_t at = timefmt_now_us() + wait * 1000;
		next = at < poll ? at : poll;
		goto out;
	}
out:
	rows_clear(&rows);
	return next;
}

/* One stream: its lock, its round, the lock back. */
static int64_t one_stream(struct worker *w, struct job *j)
{
	struct dp_streams *s = w->s;
	int64_t poll = timefmt_now_us() + s->app->cfg.stream_poll_ms * 1000;
	struct db_conn *c = db_acquire(s->app->db);
	int got = 0;
	if (!c)
		return poll;
	if (dp_db_stream_lock(c, j->st.id, &got) != DB_OK || !got) {
		db_release(s->app->db, c);
		return poll;
	}
	int64_t next = deliver(w, c, j);
	/* A broken session dropped the lock with it. */
	if (dp_db_stream_unlock(c, j->st.id) != DB_OK)
		log_debug(NULL, "stream %s: unlock failed; the session's end releases it", j->st.id);
	db_release(s->app->db, c);
	return next;
}

/* ---- the worker loops ---- */

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->id, ((const struct entry *)b)->id);
}

static uint32_t fnv_more(uint32_t h, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)p)[i]) * 16777619u;
	return h;
}

/* What the owner changes of a stream (a command, a destination, the
 * secret): a stream whose signature is the same waits for its time. */
static uint32_t entry_sig(const struct cfgdoc_stream *st)
{
	int64_t v[6] = { st->revision, st->paused, st->since, st->resume, st->replay, st->replay_since };
	uint32_t h = fnv_more(2166136261u, v, sizeof v);
	h = fnv_more(h, st->url, strlen(st->url) + 1);
	return st->sealed ? fnv_more(h, st->sealed, strlen(st->sealed)) : h;
}

static uint32_t rules_sig(const struct cfgdoc *d)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < d->nstream_hosts; i++)
		h = fnv_more(h, d->stream_hosts[i], strlen(d->stream_hosts[i]) + 1);
	h = fnv_more(h, "|", 1);
	for (size_t i = 0; i < d->nstream_s3_regions; i++)
		h = fnv_more(h, d->stream_s3_regions[i], strlen(d->stream_s3_regions[i]) + 1);
	return h;
}

/* The entries of the document in use: this worker's share of the streams
 * of its tenants (not deleted). A stream the owner did not change keeps
 * its time (a new document of the region need not look at every stream);
 * a changed one, a new one, or all when the rule changed, are due now. */
static void rebuild(struct worker *w)
{
	struct dp_streams *s = w->s;
	const struct dp_snapshot *snap = dp_snaps_enter(s->app->snaps);
	struct entry *e = NULL;
	size_t n = 0;
	int64_t now = timefmt_now_us();
	if (!snap)
		goto out;
	const struct cfgdoc *d = snap->doc;
	if (!(e = calloc(d->nstreams + 1, sizeof *e)))
		goto out;
	uint32_t rs = rules_sig(d);
	int keep = rs == w->rules_sig;
	for (size_t i = 0; i < d->nstreams; i++) {
		const struct cfgdoc_stream *st = &d->streams[i];
		const struct cfgdoc_tenant *t = cfgdoc_find_tenant(d, st->tenant);
		if (!t || t->status == 'd' || fnv(st->tenant) % s->nw != w->index)
			continue;
		snprintf(e[n].id, sizeof e[n].id, "%s", st->id);
		snprintf(e[n].tenant, sizeof e[n].tenant, "%s", st->tenant);
		e[n].idx = i;
		e[n].sig = entry_sig(st);
		e[n].next_us = now;
		const struct entry *old = keep && w->n ? bsearch(&e[n], w->e, w->n, sizeof *e, entry_cmp) : NULL;
		if (old && old->sig == e[n].sig)
			e[n].next_us = old->next_us;
		n++;
	}
	qsort(e, n, sizeof *e, entry_cmp);
	free(w->e);
	w->e = e;
	w->n = n;
	w->ver = d->ver;
	w->rules_sig = rs;
	e = NULL;
out:
	dp_snaps_leave(s->app->snaps);
	free(e);
}

static int64_t worker_step(void *ctx)
{
	struct worker *w = ctx;
	struct dp_streams *s = w->s;
	char touched[TOUCH_CAP][37];
	size_t nt;
	int all;

	pthread_mutex_lock(&w->mu);
	nt = w->ntouched;
	memcpy(touched, w->touched, nt * sizeof touched[0]);
	all = w->all;
	w->ntouched = 0;
	w->all = 0;
	pthread_mutex_unlock(&w->mu);

	const struct dp_snapshot *snap = dp_snaps_enter(s->app->snaps);
	int64_t ver = snap ? snap->doc->ver : -1;
	dp_snaps_leave(s->app->snaps);
	if (ver < 0)
		return s->app->cfg.stream_poll_ms;
	if (ver != w->ver)
		rebuild(w);
	int64_t now = timefmt_now_us();
	for (size_t i = 0; i < w->n; i++) {
		if (all)
			w->e[i].next_us = now;
		else
			for (size_t t = 0; t < nt; t++)
				if (!strcmp(w->e[i].tenant, touched[t]))
					w->e[i].next_us = now;
	}
	int64_t soonest = now + s->app->cfg.stream_poll_ms * 1000;
	for (size_t i = 0; i < w->n && !atomic_load(&s->stopping); i++) {
		if (w->e[i].next_us > timefmt_now_us()) {
			if (w->e[i].next_us < soonest)
				soonest = w->e[i].next_us;
			continue;
		}
		struct job j;
		int r = job_take(s, w, &w->e[i], &j);
		if (r == 1) {
			job_free(&j);
			return 0; /* a new document: the entries are made again */
		}
		w->e[i].next_us = r == 0 ? one_stream(w, &j) : now + s->app->cfg.stream_poll_ms * 1000;
		job_free(&j);
		if (w->e[i].next_us < soonest)
			soonest = w->e[i].next_us;
	}
	int64_t ms = (soonest - timefmt_now_us() + 999) / 1000;
	return ms < 1 ? 1 : ms;
}

/* ---- reports to the control plane ---- */

struct report {
	json_t *streams;
	int64_t by_status[ST__N], lag, lag_max;
};

static void on_state(void *ctx, const struct dp_stream_state *st)
{
	struct report *r = ctx;
	for (int i = 0; i < ST__N; i++)
		if (!strcmp(st->status, status_names[i]))
			r->by_status[i]++;
	r->lag += st->lag_events;
	if (st->lag_seconds > r->lag_max)
		r->lag_max = st->lag_seconds;
	json_t *o = json_pack("{ss ss sI sI sI}", "id", st->id, "status", st->status, "lag_events",
	                      (json_int_t)st->lag_events, "lag_seconds", (json_int_t)st->lag_seconds,
	                      "delivered_events", (json_int_t)st->delivered_events);
	if (!o)
		return;
	json_object_set_new(o, "last_delivered_at",
	                    st->last_delivered_at >= 0 ? json_integer(st->last_delivered_at) : json_null());
	json_object_set_new(o, "last_error", st->last_error ? json_string(st->last_error) : json_null());
	json_object_set_new(o, "last_error_at", st->last_error_at >= 0 ? json_integer(st->last_error_at) : json_null());
	json_array_append_new(r->streams, o);
}

struct states_ctx {
	const char *ids;
	struct report *r;
	size_t before;
	int64_t saved[ST__N + 2];
};

static enum db_status states_tx(struct db_conn *c, void *ctx)
{
	struct states_ctx *x = ctx;
	/* Another attempt starts over. */
	json_array_clear(x->r->streams);
	memcpy(x->r->by_status, x->saved, sizeof x->r->by_status);
	x->r->lag = x->saved[ST__N];
	x->r->lag_max = x->saved[ST__N + 1];
	return dp_db_stream_states(c, x->ids, on_state, x->r);
}

/* POSTs one report. Returns 0 when the control plane took it. */
static int post_report(struct dp_streams *s, json_t *streams)
{
	const struct dp_config *cfg = &s->app->cfg;
	struct dp_cp_request r;
	char path[128], why[400] = "";
	long status = 0;
	/* Without DP_CELL the region's database is its one cell, named as the
	 * usage batches name it: after the region. */
	json_t *body = json_pack("{ss sI sO}", "cell", cfg->cell ? cfg->cell : cfg->region, "observed_at",
	                         (json_int_t)(timefmt_now_us() / 1000000), "streams", streams);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	snprintf(path, sizeof path, "/v1/regions/%s/streams/status", cfg->region);
	if (!text || dp_cp_request_begin(&r, cfg, path, REPORT_RESPONSE_MAX, REPORT_TIMEOUT_MS, &s->stopping) ||
	    dp_cp_request_header(&r, "Content-Type: application/json") || dp_cp_request_header(&r, "Expect:")) {
		if (text)
			dp_cp_request_end(&r);
		free(text);
		return -1;
	}
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
	CURLcode rc = curl_easy_perform(r.easy);
	if (rc == CURLE_OK)
		curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(why, sizeof why, "%s", dp_cp_request_error(&r, rc));
	dp_cp_request_end(&r);
	free(text);
	if (status == 204 || status == 200)
		return 0;
	if (dp_cp_config_error(status))
		dp_cp_errors_note(DP_CP_STATUS, status, "POST /v1/regions/{region}/streams/status");
	else
		log_warn(NULL, "streams: the state report was not taken (%s%ld)", why[0] ? why : "HTTP ", why[0] ? 0L : status);
	return -1;
}

static int64_t report_step(void *ctx)
{
	struct dp_streams *s = ctx;
	struct dp_app *app = s->app;
	struct report r = { .streams = json_array() };
	char **ids = NULL;
	size_t n = 0;
	int complete = 1;

	const struct dp_snapshot *snap = dp_snaps_enter(app->snaps);
	if (snap && (ids = calloc(snap->doc->nstreams + 1, sizeof *ids))) {
		const struct cfgdoc *d = snap->doc;
		for (size_t i = 0; i < d->nstreams; i++) {
			const struct cfgdoc_tenant *t = cfgdoc_find_tenant(d, d->streams[i].tenant);
			if (t && t->status != 'd' && (ids[n] = strdup(d->streams[i].id)))
				n++;
		}
	}
	dp_snaps_leave(app->snaps);
	for (size_t at = 0; at < n && r.streams && !atomic_load(&s->stopping); at += REPORT_CHUNK) {
		struct buf arr = { 0 };
		for (size_t i = at; i < n && i < at + REPORT_CHUNK; i++)
			db_array_add(&arr, ids[i], strlen(ids[i]));
		db_array_end(&arr);
		struct states_ctx x = { .ids = arr.p, .r = &r };
		memcpy(x.saved, r.by_status, sizeof r.by_status);
		x.saved[ST__N] = r.lag;
		x.saved[ST__N + 1] = r.lag_max;
		enum db_status st = arr.failed ? DB_ERROR : db_tx(app->db, DB_READ_COMMITTED, states_tx, &x);
		buf_free(&arr);
		if (st != DB_OK) {
			complete = 0;
			break;
		}
		if (json_array_size(r.streams) && post_report(s, r.streams) != 0) {
			atomic_fetch_add(&s->reports_failed, 1);
		} else if (json_array_size(r.streams)) {
			atomic_fetch_add(&s->reports_ok, 1);
		}
		json_array_clear(r.streams);
	}
	if (complete) {
		for (int i = 0; i < ST__N; i++)
			atomic_store(&s->by_status[i], r.by_status[i]);
		atomic_store(&s->lag_events, r.lag);
		atomic_store(&s->lag_seconds_max, r.lag_max);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	json_decref(r.streams);
	return app->cfg.stream_report_interval_ms;
}

/* ---- life ---- */

struct dp_streams *dp_streams_start(struct dp_app *app, int *failed)
{
	*failed = 0;
	if (!app->cfg.streams)
		return NULL;
	struct dp_streams *s = calloc(1, sizeof *s);
	if (!s)
		goto fail;
	s->app = app;
	s->nw = (unsigned)app->cfg.stream_workers;
	if (app->cfg.stream_keys_dir && *app->cfg.stream_keys_dir) {
		char err[200];
		if (!(s->kr = keyring_open(app->cfg.stream_keys_dir, 0, err, sizeof err))) {
			log_error(NULL, "DP_STREAM_KEYS_DIR: %s; every stream is refused until it is fixed and the data plane restarted",
			          err);
			snprintf(s->kr_error, sizeof s->kr_error, "DP_STREAM_KEYS_DIR cannot be opened on this data plane");
		}
	} else {
		snprintf(s->kr_error, sizeof s->kr_error,
		         "DP_STREAM_KEYS_DIR is not set on this data plane: no sealed secret can be opened");
	}
	if (!(s->w = calloc(s->nw, sizeof *s->w)))
		goto fail;
	struct stream_send_opts so = { .ca_file = app->cfg.stream_ca_file,
		                           .timeout_ms = (long)app->cfg.stream_timeout_ms,
		                           .connect_timeout_ms = (long)(app->cfg.stream_timeout_ms < 5000 ? app->cfg.stream_timeout_ms : 5000),
		                           .user_agent = DP_CP_USER_AGENT };
	for (unsigned i = 0; i < s->nw; i++) {
		struct worker *w = &s->w[i];
		w->s = s;
		w->index = i;
		w->ver = -1;
		w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)timefmt_now_us() * (i + 1));
		pthread_mutex_init(&w->mu, NULL);
		if (!(w->sender = stream_sender_new(&so)))
			goto fail;
	}
	for (unsigned i = 0; i < s->nw; i++)
		if (!(s->w[i].loop = dp_loop_start("stream_worker", worker_step, &s->w[i])))
			goto fail;
	if (!(s->reporter = dp_loop_start("stream_reporter", report_step, s)))
		goto fail;
	return s;
fail:
	dp_streams_stop(s);
	*failed = 1;
	return NULL;
}

void dp_streams_stop(struct dp_streams *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, 1);
	dp_loop_stop(s->reporter);
	for (unsigned i = 0; s->w && i < s->nw; i++)
		dp_loop_stop(s->w[i].loop);
	for (unsigned i = 0; s->w && i < s->nw; i++) {
		stream_sender_free(s->w[i].sender);
		pthread_mutex_destroy(&s->w[i].mu);
		free(s->w[i].e);
	}
	free(s->w);
	keyring_free(s->kr);
	free(s);
}

void dp_streams_metrics(struct dp_streams *s, FILE *out)
{
	static const char *const kinds[3] = { "webhook", "splunk_hec", "s3" };
	fprintf(out, "# HELP dp_stream_events_delivered_total Events that log streams' destinations acknowledged.\n"
	             "# TYPE dp_stream_events_delivered_total counter\n");
	for (int k = 0; k < 3; k++)
		fprintf(out, "dp_stream_events_delivered_total{kind=\"%s\"} %llu\n", kinds[k],
		        s ? (unsigned long long)s->events[k] : 0ull);
	fprintf(out, "# HELP dp_stream_batches_total Delivery attempts of a batch, by what came of them.\n"
	             "# TYPE dp_stream_batches_total counter\n");
	for (int k = 0; k < 3; k++)
		fprintf(out,
		        "dp_stream_batches_total{kind=\"%s\",outcome=\"delivered\"} %llu\n"
		        "dp_stream_batches_total{kind=\"%s\",outcome=\"failed\"} %llu\n",
		        kinds[k], s ? (unsigned long long)s->batches_ok[k] : 0ull, kinds[k],
		        s ? (unsigned long long)s->batches_failed[k] : 0ull);
	fprintf(out, "# HELP dp_stream_send_seconds_total Time spent sending batches to destinations.\n"
	             "# TYPE dp_stream_send_seconds_total counter\n");
	for (int k = 0; k < 3; k++)
		fprintf(out, "dp_stream_send_seconds_total{kind=\"%s\"} %.6f\n", kinds[k],
		        s ? (double)s->send_us[k] / 1e6 : 0.0);
	fprintf(out, "# HELP dp_stream_bytes_sent_total Body bytes sent to destinations (after gzip for s3).\n"
	             "# TYPE dp_stream_bytes_sent_total counter\n");
	for (int k = 0; k < 3; k++)
		fprintf(out, "dp_stream_bytes_sent_total{kind=\"%s\"} %llu\n", kinds[k],
		        s ? (unsigned long long)s->bytes[k] : 0ull);
	fprintf(out, "# HELP dp_stream_streams This cell's streams by status, as of the last report.\n"
	             "# TYPE dp_stream_streams gauge\n");
	for (int i = 0; i < ST__N; i++)
		fprintf(out, "dp_stream_streams{status=\"%s\"} %lld\n", status_names[i],
		        s ? (long long)s->by_status[i] : 0ll);
	fprintf(out,
	        "# HELP dp_stream_lag_events Events not yet delivered, summed over this cell's streams.\n"
	        "# TYPE dp_stream_lag_events gauge\ndp_stream_lag_events %lld\n"
	        "# HELP dp_stream_lag_seconds_max Age of the oldest event not yet delivered, over this cell's streams.\n"
	        "# TYPE dp_stream_lag_seconds_max gauge\ndp_stream_lag_seconds_max %lld\n"
	        "# HELP dp_stream_reports_total State reports of the streams sent to the control plane.\n"
	        "# TYPE dp_stream_reports_total counter\n"
	        "dp_stream_reports_total{outcome=\"ok\"} %llu\ndp_stream_reports_total{outcome=\"failed\"} %llu\n",
	        s ? (long long)s->lag_events : 0ll, s ? (long long)s->lag_seconds_max : 0ll,
	        s ? (unsigned long long)s->reports_ok : 0ull, s ? (unsigned long long)s->reports_failed : 0ull);
}

int dp_stream_key_command(const char *dir)
{
	char err[300];
	struct jwk key = { 0 };
	struct keyring *kr = keyring_open(dir, 0, err, sizeof err);
	if (!kr) {
		fprintf(stderr, "data-plane: %s\n", err);
		return 1;
	}
	int ret = 1;
	if (keyring_current(kr, &key) != 0) {
		fprintf(stderr, "data-plane: the current key of %s cannot be loaded\n", dir);
		goto out;
	}
	json_t *j = jwk_public_json(&key);
	if (!j)
		goto out;
	/* The key agrees content keys (seal.h): not a signing key. */
	json_object_set_new(j, "use", json_string("enc"));
	json_object_set_new(j, "alg", json_string("ECDH-ES"));
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(j);
	ret = 0;
out:
	jwk_clear(&key);
	keyring_free(kr);
	return ret;
}
