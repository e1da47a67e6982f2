/* POST /v1/events: validation on the HTTP thread, group commit on the
 * writer threads. See ingest.h. */
#include "ingest.h"
#include "deadline.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp.h"
#include "dpdb.h"
#include "event.h"
#include "feed_wait.h"
#include "http.h"
#include "idempotency.h"
#include "limits.h"
#include "log.h"
#include "secret.h"
#include "stream.h"
#include "timefmt.h"

#define RETRY_AFTER_DB "2"

enum outcome { J_PENDING, J_STORED, J_REPLAYED, J_CONFLICT, J_QUOTA, J_UNAVAILABLE, J_UNKNOWN, J_ERROR,
               J_KEY_REPLAYED,   /* its Idempotency-Key's first answer, from the record */
               J_KEY_CONFLICT,   /* its Idempotency-Key was used with another request */
               J_MOVING };       /* its tenant is fenced for a move: nothing stored */

/* Answered by the drain deadline instead of by a writer. */
enum abandon { A_NO, A_QUEUED, A_COMMITTING };

struct job {
	struct http_req *req;
	struct dp_ingest *g;
	struct job *next;            /* the queue; then a writer's list of jobs to free */
	struct job *rnext;           /* the drain deadline's list to answer */
	size_t bytes;                /* of the request's body, counted in g->bytes */
	/* under g->mu */
	int in_queue, held;          /* waiting; taken by a writer */
	int orphan;                  /* the request completed while held: the writer frees it */
	enum abandon abandoned;
	char tenant[37];
	char req_id[65], key_id[25];   /* for the writer's log lines (copies: the request may go first) */
	int64_t quota;
	int64_t received_us;
	char period[8];
	json_t *root;                /* the parsed body: events borrow from it */
	struct dp_event *ev;
	size_t n;
	int batch;                   /* answered as {"events": [...]} */
	char idem_key[IDEMKEY_MAX + 1];  /* the Idempotency-Key (a copy), "" when none */
	char idem_hash[65];          /* of the request, compared with the record's */
	/* decided by the group transaction (reset on each attempt) */
	enum outcome outcome;
	size_t conflict;             /* the first event whose id holds other content */
	int64_t used;                /* for a quota refusal: events stored this month */
	char **existing;             /* per event: its stored body when it was there already */
	size_t *existing_len;
	size_t n_new;
	int idem_claimed;            /* this transaction holds the key's record */
	int idem_status;             /* J_KEY_REPLAYED: the first answer */
	char idem_location[24 + DP_EVENT_ID_MAX];
	char *idem_body;
	size_t idem_len;
};

struct dp_ingest {
	struct dp_app *app;
	pthread_t *threads;
	size_t nthreads, started;
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	struct job *head, *tail;
	size_t queued, active;
	size_t bytes;                /* bodies of the requests queued or held */
	size_t resuming;             /* writers resuming requests outside the lock */
	struct group **wgroups;      /* per writer: the group it commits (empty when n is 0) */
	size_t registered;
	int draining;
	atomic_ullong events_stored, events_replayed, requests_stored, requests_replayed,
		requests_conflict, requests_quota, requests_failed, groups, group_retries, busy,
		requests_key_replayed, requests_key_conflict, writes_paused;
	atomic_ullong group_events_hist[8];   /* 1, 2-7, 8-31, 32-127, 128-511, 512-2047, 2048+ */
	atomic_ullong group_events_sum;       /* the histogram's _sum */
};

/* ---- jobs ---- */

static void job_reset(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->existing[i]);
		j->existing[i] = NULL;
	}
	free(j->idem_body);
	j->idem_body = NULL;
	j->idem_len = 0;
	j->idem_claimed = 0;
	j->idem_status = 0;
	j->idem_location[0] = '\0';
	j->outcome = J_PENDING;
	j->n_new = j->n;
	j->conflict = 0;
	j->used = 0;
}

static void job_free_now(struct job *j)
{
	for (size_t i = 0; j->ev && i < j->n; i++) {
		free(j->existing ? j->existing[i] : NULL);
		dp_event_clear(&j->ev[i]);
	}
	free(j->existing);
	free(j->existing_len);
	free(j->idem_body);
	free(j->ev);
	json_decref(j->root);
	free(j);
}

/* The request's state destructor: runs when the request completes. A job a
 * writer still holds (its answer was given by the drain deadline) is left
 * to the writer. */
static void job_free(void *p)
{
	struct job *j = p;
	if (!j)
		return;
	struct dp_ingest *g = j->g;
	if (g) {
		pthread_mutex_lock(&g->mu);
		if (j->held) {
			j->orphan = 1;
			pthread_mutex_unlock(&g->mu);
			return;
		}
		if (j->in_queue) { /* only if the server stopped a request still waiting */
			struct job **pp = &g->head, *prev = NULL;
			while (*pp != j) {
				prev = *pp;
				pp = &(*pp)->next;
			}
			*pp = j->next;
			if (g->tail == j)
				g->tail = prev;
			g->queued--;
			g->bytes -= j->bytes;
			j->in_queue = 0;
		}
		pthread_mutex_unlock(&g->mu);
	}
	job_free_now(j);
}

/* ---- the group transaction ---- */

struct ref {                 /* an event whose id the client chose */
	const char *tenant, *id;
	struct job *job;
	size_t idx;
};

struct ukey {                /* one usage counter the group adds to */
	const char *tenant, *period;
	int64_t sum, total, committed;
	int64_t first;           /* the earliest receipt among its requests */
	int got;
};

struct ikey {                /* a request's Idempotency-Key */
	const char *tenant, *key;
	struct job *job;
};

struct group {
	struct dp_ingest *g;
	struct job **jobs;
	size_t n, nevents;
	struct ref *refs;
	size_t nrefs;
	struct ikey *ikeys;          /* sorted by tenant, then key; one per (tenant, key) */
	size_t nikeys;
	struct ukey *keys;
	size_t nkeys;
	int careful;                 /* quota or a fence at stake: counters first */
	int fenced_pending;          /* step_fence refused a request that would store */
	int weeks_missing;           /* the insert met a week with no partition */
};

static int ref_cmp(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);
	return c ? c : strcmp(x->id, y->id);
}

static int ikey_cmp(const void *a, const void *b)
{
	const struct ikey *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);
	return c ? c : strcmp(x->key, y->key);
}

static int ukey_cmp(const void *a, const void *b)
{
	const struct ukey *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);
	return c ? c : strcmp(x->period, y->period);
}

static void on_existing(void *ctx, const char *tenant, const char *id, const char *sha_hex,
                        const char *body, size_t len)
{
	struct group *gr = ctx;
	struct ref key = { .tenant = tenant, .id = id };
	struct ref *r = bsearch(&key, gr->refs, gr->nrefs, sizeof *gr->refs, ref_cmp);
	if (!r)
		return;
	struct job *j = r->job;
	if (j->outcome == J_KEY_REPLAYED || j->outcome == J_KEY_CONFLICT)
		return; /* answered from its key's record: its ids are not looked at */
	unsigned char sha[32];
	if (secret_unhex(sha_hex, sha, sizeof sha) == 0 && !memcmp(sha, j->ev[r->idx].sha256, 32)) {
		if (!j->existing[r->idx] && (j->existing[r->idx] = malloc(len + 1))) {
			memcpy(j->existing[r->idx], body, len + 1);
			j->existing_len[r->idx] = len;
			j->n_new--;
		}
		return;
	}
	if (j->outcome != J_CONFLICT || r->idx < j->conflict) {
		j->outcome = J_CONFLICT;
		j->conflict = r->idx;
	}
}

static void on_usage(void *ctx, const char *tenant, const char *period, int64_t total)
{
	struct group *gr = ctx;
	struct ukey key = { .tenant = tenant, .period = period };
	struct ukey *k = bsearch(&key, gr->keys, gr->nkeys, sizeof *gr->keys, ukey_cmp);
	if (k) {
		k->total = total;
		k->got = 1;
	}
}

static void num_add(struct buf *b, int64_t v)
{
	char s[24];
	int n = snprintf(s, sizeof s, "%" PRId64, v);
	db_array_add(b, s, (size_t)n);
}

static struct job *ikey_job(struct group *gr, const char *tenant, const char *key)
{
	struct ikey k = { .tenant = tenant, .key = key };
	struct ikey *f = bsearch(&k, gr->ikeys, gr->nikeys, sizeof *gr->ikeys, ikey_cmp);
	return f ? f->job : NULL;
}

static void on_claimed(void *ctx, const char *tenant, const char *key)
{
	struct job *j = ikey_job(ctx, tenant, key);
	if (j)
		j->idem_claimed = 1;
}

static void on_record(void *ctx, const char *tenant, const char *key, const char *sha256_hex, int status,
                      const char *location, const char *body, size_t len)
{
	struct job *j = ikey_job(ctx, tenant, key);
	if (!j || j->idem_claimed)
		return;
	if (strcmp(sha256_hex, j->idem_hash) != 0) {
		j->outcome = J_KEY_CONFLICT;
		return;
	}
	if (!(j->idem_body = malloc(len + 1)))
		return; /* left pending: the step fails */
	memcpy(j->idem_body, body, len + 1);
	j->idem_len = len;
	j->idem_status = status;
	snprintf(j->idem_location, sizeof j->idem_location, "%s", location);
	j->outcome = J_KEY_REPLAYED;
}

/* Step 0: the Idempotency-Keys of the group, claimed before anything else
 * (in key order: groups sharing keys lock them alike). A key another
 * transaction holds is waited for; a key with a record is answered from it
 * (replayed, or 422 for another request) and nothing else of its request
 * is done. */
static enum db_status step_claim(struct db_conn *c, struct group *gr)
{
	struct buf a = { 0 }, b = { 0 }, h = { 0 };
	enum db_status st = DB_OK;
	size_t left = 0;

	if (gr->nikeys == 0)
		return DB_OK;
	for (size_t i = 0; i < gr->nikeys; i++) {
		db_array_add(&a, gr->ikeys[i].tenant, strlen(gr->ikeys[i].tenant));
		db_array_add(&b, gr->ikeys[i].key, strlen(gr->ikeys[i].key));
		db_array_add(&h, gr->ikeys[i].job->idem_hash, 64);
	}
	db_array_end(&a);
	db_array_end(&b);
	db_array_end(&h);
	st = a.failed || b.failed || h.failed
	         ? DB_ERROR
	         : dp_db_idem_claim(c, a.p, b.p, h.p, gr->g->app->cfg.idempotency_ttl_ms, on_claimed, gr);
	buf_free(&a);
	buf_free(&b);
	buf_free(&h);
	if (st != DB_OK)
		return st;
	for (size_t i = 0; i < gr->nikeys; i++)
		if (!gr->ikeys[i].job->idem_claimed) {
			db_array_add(&a, gr->ikeys[i].tenant, strlen(gr->ikeys[i].tenant));
			db_array_add(&b, gr->ikeys[i].key, strlen(gr->ikeys[i].key));
			left++;
		}
	if (left) {
		db_array_end(&a);
		db_array_end(&b);
		st = a.failed || b.failed ? DB_ERROR : dp_db_idem_get(c, a.p, b.p, on_record, gr);
	}
	buf_free(&a);
	buf_free(&b);
	/* A key neither claimed nor answered: its record was deleted as
	 * expired between the two statements (or its body found no memory):
	 * the group runs again. */
	for (size_t i = 0; st == DB_OK && i < gr->nikeys; i++)
		if (!gr->ikeys[i].job->idem_claimed && gr->ikeys[i].job->outcome == J_PENDING)
			st = DB_RETRY;
	return st;
}

static int answer_body(const struct job *j, struct buf *b);
static void answer_location(const struct job *j, int status, char *out, size_t len);

/* Last step: the answers of the requests whose keys this transaction
 * claimed become their records; the keys of requests refused (a conflict,
 * the quota) are given back, as nothing of them is stored. */
static enum db_status step_record(struct db_conn *c, struct group *gr)
{
	struct buf t = { 0 }, k = { 0 }, s = { 0 }, l = { 0 }, bd = { 0 }, rt = { 0 }, rk = { 0 };
	enum db_status st = DB_OK;
	size_t nstore = 0, nrelease = 0;

	for (size_t i = 0; i < gr->nikeys && !bd.failed; i++) {
		struct job *j = gr->ikeys[i].job;
		if (!j->idem_claimed)
			continue;
		if (j->outcome == J_PENDING || j->outcome == J_REPLAYED) {
			int status = j->outcome == J_PENDING ? 201 : 200;
			char loc[sizeof j->idem_location], code[8];
			struct buf body = { 0 };
			answer_location(j, status, loc, sizeof loc);
			snprintf(code, sizeof code, "%d", status);
			if (answer_body(j, &body) != 0) {
				buf_free(&body);
				st = DB_ERROR;
				break;
			}
			db_array_add(&t, j->tenant, strlen(j->tenant));
			db_array_add(&k, j->idem_key, strlen(j->idem_key));
			db_array_add(&s, code, strlen(code));
			db_array_add(&l, loc, strlen(loc));
			db_array_add(&bd, body.p, body.len);
			buf_free(&body);
			nstore++;
		} else {
			db_array_add(&rt, j->tenant, strlen(j->tenant));
			db_array_add(&rk, j->idem_key, strlen(j->idem_key));
			nrelease++;
		}
	}
	if (st == DB_OK && nstore) {
		db_array_end(&t);
		db_array_end(&k);
		db_array_end(&s);
		db_array_end(&l);
		db_array_end(&bd);
		st = t.failed || k.failed || s.failed || l.failed || bd.failed
		         ? DB_ERROR
		         : dp_db_idem_store(c, t.p, k.p, s.p, l.p, bd.p);
	}
	if (st == DB_OK && nrelease) {
		db_array_end(&rt);
		db_array_end(&rk);
		st = rt.failed || rk.failed ? DB_ERROR : dp_db_idem_release(c, rt.p, rk.p);
	}
	buf_free(&t);
	buf_free(&k);
	buf_free(&s);
	buf_free(&l);
	buf_free(&bd);
	buf_free(&rt);
	buf_free(&rk);
	return st;
}

/* Step 1: client ids already stored: a replay when the content matches,
 * a conflict otherwise. */
/* Longer than a group's transaction can last: each of its statements, and
 * each wait between them, is cut at DP_DB_STATEMENT_TIMEOUT (a dozen at
 * most), and never less than 10 minutes. */
static int64_t lock_margin_ms(const struct dp_app *app)
{
	int64_t m = 12 * app->cfg.db_statement_timeout_ms;
	return m > 600000 ? m : 600000;
}

static enum db_status step_existing(struct db_conn *c, struct group *gr)
{
	struct buf a = { 0 }, b = { 0 }, o = { 0 };
	enum db_status st = DB_OK;

	if (gr->nrefs) {
		for (size_t i = 0; i < gr->nrefs; i++) {
			db_array_add(&a, gr->refs[i].tenant, strlen(gr->refs[i].tenant));
			db_array_add(&b, gr->refs[i].id, strlen(gr->refs[i].id));
			buf_printf(&o, "%s%" PRId64, i ? "," : "{", gr->refs[i].job->ev[gr->refs[i].idx].occurred_us);
		}
		db_array_end(&a);
		db_array_end(&b);
		buf_append(&o, "}", 2);
		if (a.failed || b.failed || o.failed)
			st = DB_ERROR;
		else if ((st = dp_db_events_lock_tenants(c, a.p, o.p, lock_margin_ms(gr->g->app))) == DB_OK)
			st = dp_db_events_existing(c, a.p, b.p, on_existing, gr);
	}
	buf_free(&a);
	buf_free(&b);
	buf_free(&o);
	for (size_t i = 0; st == DB_OK && i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (j->outcome == J_PENDING && j->n_new == 0)
			j->outcome = J_REPLAYED;
	}
	return st;
}

static void on_fenced(void *ctx, const char *tenant)
{
	struct group *gr = ctx;
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (strcmp(j->tenant, tenant) || (j->outcome != J_PENDING && j->outcome != J_REPLAYED))
			continue;
		gr->fenced_pending |= j->outcome == J_PENDING;
		j->outcome = J_MOVING;
	}
}

/* The fence of a tenant being moved (move.c): read after the usage rows are
 * locked, which the fencer locks too, so that a fence committed before
 * this transaction got them is seen here, and one committed after waited
 * for this transaction. The requests of a fenced tenant that would write
 * (store events, or a key's record) become J_MOVING: 503 tenant_moving,
 * nothing of theirs stored; the rest of the group goes on. One indexed
 * lookup per group. */
static enum db_status step_fence(struct db_conn *c, struct group *gr)
{
	struct buf a = { 0 };
	size_t n = 0;
	gr->fenced_pending = 0;
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (j->outcome == J_PENDING || j->outcome == J_REPLAYED) {
			db_array_add(&a, j->tenant, strlen(j->tenant));
			n++;
		}
	}
	enum db_status st = DB_OK;
	if (n) {
		db_array_end(&a);
		st = a.failed ? DB_ERROR : dp_db_fenced(c, a.p, on_fenced, gr);
	}
	buf_free(&a);
	return st;
}

/* Step 2: the usage counters, one per tenant and month, locked until the
 * transaction ends, so the quota is exact across writers and instances.
 * Requests are admitted in arrival order while they fit. Optimistic
 * (`refuse` 0): a group that would cross a quota asks to be run again
 * carefully (DB_ROLLBACK with gr->careful set); careful: the requests that
 * do not fit are refused and their count taken back. */
static enum db_status step_usage(struct db_conn *c, struct group *gr, int refuse)
{
	struct buf a = { 0 }, b = { 0 }, cnt = { 0 }, rcv = { 0 };
	enum db_status st = DB_OK;

	gr->nkeys = 0;
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (j->outcome == J_PENDING)
			gr->keys[gr->nkeys++] = (struct ukey){ .tenant = j->tenant, .period = j->period,
				                                   .first = INT64_MAX };
	}
	if (gr->nkeys == 0)
		return step_fence(c, gr); /* replays only: no usage row, yet a fence holds back their keys' records */
	qsort(gr->keys, gr->nkeys, sizeof *gr->keys, ukey_cmp);
	size_t u = 0;
	for (size_t i = 0; i < gr->nkeys; i++)
		if (u == 0 || ukey_cmp(&gr->keys[u - 1], &gr->keys[i]))
			gr->keys[u++] = gr->keys[i];
	gr->nkeys = u;
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (j->outcome != J_PENDING)
			continue;
		struct ukey key = { .tenant = j->tenant, .period = j->period };
		struct ukey *k = bsearch(&key, gr->keys, gr->nkeys, sizeof *gr->keys, ukey_cmp);
		k->sum += (int64_t)j->n_new;
		if (j->received_us < k->first)
			k->first = j->received_us;
	}
	for (size_t i = 0; i < gr->nkeys; i++) {
		struct ukey *k = &gr->keys[i];
		db_array_add(&a, k->tenant, strlen(k->tenant));
		db_array_add(&b, k->period, strlen(k->period));
		num_add(&cnt, k->sum);
		num_add(&rcv, k->first);
	}
	db_array_end(&a);
	db_array_end(&b);
	db_array_end(&cnt);
	db_array_end(&rcv);
	if (a.failed || b.failed || cnt.failed || rcv.failed)
		st = DB_ERROR;
	else
		st = dp_db_usage_add(c, a.p, b.p, cnt.p, rcv.p, on_usage, gr);
	buf_free(&a);
	buf_free(&b);
	buf_free(&cnt);
	buf_free(&rcv);
	if (st != DB_OK)
		return st;
	if ((st = step_fence(c, gr)) != DB_OK)
		return st;
	if (gr->fenced_pending && !refuse) {
		/* Its events are in already: run again, counters first. */
		gr->careful = 1;
		return DB_ROLLBACK;
	}

	for (size_t i = 0; i < gr->nkeys; i++) {
		struct ukey *k = &gr->keys[i];
		if (!k->got)
			return DB_ERROR;
		int64_t before = k->total - k->sum, taken = 0;
		for (size_t x = 0; x < gr->n; x++) {
			struct job *j = gr->jobs[x];
			if (j->outcome != J_PENDING || strcmp(j->tenant, k->tenant) || strcmp(j->period, k->period))
				continue;
			if (before + taken + (int64_t)j->n_new <= j->quota) {
				taken += (int64_t)j->n_new;
				continue;
			}
			if (!refuse) {
				gr->careful = 1;
				return DB_ROLLBACK;
			}
			j->outcome = J_QUOTA;
			j->used = before + taken;
		}
		k->committed = before + taken;
		if (taken < k->sum && (st = dp_db_usage_sub(c, k->tenant, k->period, k->sum - taken)) != DB_OK)
			return st;
	}
	return DB_OK;
}

/* Step 3: the new events of the admitted requests, in one statement. */
static enum db_status step_insert(struct db_conn *c, struct group *gr)
{
	struct buf cols[DP_NCOLS] = { { 0 } };
	enum db_status st = DB_OK;
	long expected = 0, inserted = 0;

	for (size_t x = 0; x < gr->n; x++) {
		struct job *j = gr->jobs[x];
		if (j->outcome != J_PENDING)
			continue;
		for (size_t i = 0; i < j->n; i++) {
			const struct dp_event *e = &j->ev[i];
			char hex[65];
			if (j->existing[i])
				continue;
			db_array_add(&cols[DP_COL_TENANT], j->tenant, 36);
			db_array_add(&cols[DP_COL_ID], e->id, strlen(e->id));
			num_add(&cols[DP_COL_OCCURRED], e->occurred_us);
			num_add(&cols[DP_COL_RECEIVED], j->received_us);
			db_array_add(&cols[DP_COL_ACTION], e->action, strlen(e->action));
			db_array_add(&cols[DP_COL_ACTOR], e->actor_id, strlen(e->actor_id));
			struct buf t = { 0 };
			size_t ti;
			const json_t *tv;
			json_array_foreach(e->targets, ti, tv) {
				const char *tid = json_string_value(json_object_get(tv, "id"));
				db_array_add(&t, tid, strlen(tid));
			}
			db_array_end(&t);
			db_array_add(&cols[DP_COL_TARGETS], t.p ? t.p : "{}", t.p ? t.len : 2);
			buf_free(&t);
			secret_hex(e->sha256, 32, hex);
			db_array_add(&cols[DP_COL_SHA], hex, 64);
			db_array_add(&cols[DP_COL_BODY], e->body, e->body_len);
			expected++;
		}
	}
	if (expected) {
		for (int i = 0; i < DP_NCOLS; i++) {
			db_array_end(&cols[i]);
			if (cols[i].failed)
				st = DB_ERROR;
		}
		if (st == DB_OK) {
			st = dp_db_events_insert(c, cols, &inserted);
			if (dp_db_no_partition(c, st))
				gr->weeks_missing = 1;
		}
		/* Another transaction stored one of these ids since step 1 (in
		 * the same week: counted out; in another, with ids indexed across
		 * weeks: the index's conflict): run the group again, which will
		 * see it. */
		if ((st == DB_OK && inserted != expected) || st == DB_CONFLICT) {
			atomic_fetch_add(&gr->g->group_retries, 1);
			st = DB_RETRY;
		}
	}
	for (int i = 0; i < DP_NCOLS; i++)
		buf_free(&cols[i]);
	return st;
}

/* The group's transaction. The requests' Idempotency-Keys are claimed
 * first and their records written last, so that an answer and its record
 * commit together. Usually the events go in first and the usage
 * rows are locked last, so that a busy tenant's counter is held only for
 * the commit; a group that would cross a quota runs again with the
 * counters first, refusing what does not fit. */
static enum db_status group_tx(struct db_conn *c, void *ctx)
{
	struct group *gr = ctx;
	enum db_status st;

	for (size_t i = 0; i < gr->n; i++)
		job_reset(gr->jobs[i]);
	if ((st = step_claim(c, gr)) != DB_OK)
		return st;
	if ((st = step_existing(c, gr)) != DB_OK)
		return st;
	if (gr->careful) {
		if ((st = step_usage(c, gr, 1)) != DB_OK || (st = step_insert(c, gr)) != DB_OK)
			return st;
		return step_record(c, gr);
	}
	if ((st = step_insert(c, gr)) != DB_OK || (st = step_usage(c, gr, 0)) != DB_OK)
		return st;
	return step_record(c, gr);
}

/* ---- writers ---- */

static uint64_t pair_hash(const char *tenant, const char *id)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *s = tenant; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = (h ^ '/') * 1099511628211ULL;
	for (const char *s = id; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h | 1;
}

/* An Idempotency-Key's entry in the same table as the ids (a byte no id
 * holds separates it: a key equal to an id may only end a group early). */
static uint64_t key_hash(const char *tenant, const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *s = tenant; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = (h ^ '\n') * 1099511628211ULL;
	for (const char *s = key; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h | 1;
}

/* The slot of `h` in the open-addressing table `seen` (a power of two,
 * `cap` slots), or the empty slot where it goes; `cap` when neither is
 * found within `cap` probes (a full table: never, as it is kept at most
 * half full, but no loop depends on that). */
static size_t seen_slot(const uint64_t *seen, size_t cap, uint64_t h)
{
	size_t s = h & (cap - 1);
	for (size_t probes = 0; probes < cap; probes++, s = (s + 1) & (cap - 1))
		if (!seen[s] || seen[s] == h)
			return s;
	return cap;
}

/* Takes the next group off the queue: every waiting request, up to
 * `max_events` (at least one request), stopping before a request that
 * names an id already in the group, so that a concurrent retry is
 * answered after its original. `seen` holds at most `seen_cap` / 2 ids; a
 * request of up to DP_BATCH_MAX ids always fits an empty one. Called with
 * the lock held. */
static size_t take_group(struct dp_ingest *g, struct group *gr, uint64_t *seen, size_t seen_cap,
                         size_t max_events)
{
	size_t nseen = 0;
	memset(seen, 0, seen_cap * sizeof *seen);
	gr->n = gr->nevents = gr->nrefs = gr->nikeys = 0;
	while (g->head) {
		struct job *j = g->head;
		if (gr->n && gr->nevents + j->n > max_events)
			break;
		size_t named = 0;
		int clash = 0;
		if (j->idem_key[0]) {
			/* The same key twice in one transaction would find its own
			 * claim: the second request waits for the next group. */
			named++;
			size_t s = seen_slot(seen, seen_cap, key_hash(j->tenant, j->idem_key));
			clash = s == seen_cap || seen[s] != 0;
		}
		for (size_t i = 0; i < j->n && !clash; i++) {
			if (!j->ev[i].id_given)
				continue;
			named++;
			size_t s = seen_slot(seen, seen_cap, pair_hash(j->tenant, j->ev[i].id));
			clash = s == seen_cap || seen[s] != 0;
		}
		if (gr->n && (clash || nseen + named > seen_cap / 2))
			break;
		for (size_t i = 0; i < j->n; i++) {
			if (!j->ev[i].id_given)
				continue;
			uint64_t h = pair_hash(j->tenant, j->ev[i].id);
			size_t s = seen_slot(seen, seen_cap, h);
			if (s < seen_cap && !seen[s]) {
				seen[s] = h;
				nseen++;
			}
			gr->refs[gr->nrefs++] = (struct ref){ j->tenant, j->ev[i].id, j, i };
		}
		if (j->idem_key[0]) {
			uint64_t h = key_hash(j->tenant, j->idem_key);
			size_t s = seen_slot(seen, seen_cap, h);
			if (s < seen_cap && !seen[s]) {
				seen[s] = h;
				nseen++;
			}
			gr->ikeys[gr->nikeys++] = (struct ikey){ j->tenant, j->idem_key, j };
		}
		g->head = j->next;
		if (!g->head)
			g->tail = NULL;
		g->queued--;
		j->next = NULL;
		j->in_queue = 0;
		j->held = 1;
		gr->jobs[gr->n++] = j;
		gr->nevents += j->n;
	}
	return gr->n;
}

static void hist_add(struct dp_ingest *g, size_t n)
{
	int b = n <= 1 ? 0 : n < 8 ? 1 : n < 32 ? 2 : n < 128 ? 3 : n < 512 ? 4 : n < 2048 ? 5 : 6;
	atomic_fetch_add(&g->group_events_hist[b], 1);
	atomic_fetch_add(&g->group_events_sum, n);
}


struct weeks_q {
	const char *occurred;
	long made;
};

static enum db_status weeks_tx(struct db_conn *c, void *ctx)
{
	struct weeks_q *q = ctx;
	return dp_db_events_weeks_ensure(c, q->occurred, NULL, &q->made);
}

/* The weekly partitions of the group's events that are missing, made:
 * how many, or -1 when the database failed. */
static long weeks_make(struct dp_app *app, const struct group *gr)
{
	struct buf o = { 0 };
	buf_append(&o, "{", 1);
	for (size_t x = 0; x < gr->n; x++)
		for (size_t i = 0; i < gr->jobs[x]->n; i++)
			buf_printf(&o, "%s%" PRId64, o.len > 1 ? "," : "", gr->jobs[x]->ev[i].occurred_us);
	buf_append(&o, "}", 1);
	struct weeks_q q = { o.p, 0 };
	enum db_status st = o.failed ? DB_ERROR : db_tx(app->db, DB_READ_COMMITTED, weeks_tx, &q);
	if (st == DB_OK)
		log_info(NULL, "ingest: %ld weekly partition(s) made for events of a week the cell had none for", q.made);
	buf_free(&o);
	return st == DB_OK ? q.made : -1;
}

static void commit_group(struct dp_ingest *g, struct group *gr)
{
	struct dp_app *app = g->app;
	/* The lines of a group of one request (the database's, say) name it
	 * beside the writer's task; a larger group's name them all when it
	 * fails. Set back before any request is resumed: its job may go. */
	struct log_ctx task = log_ctx_get();
	if (gr->n == 1)
		log_ctx_set((struct log_ctx){ .task = task.task, .req_id = gr->jobs[0]->req_id,
		                              .tenant = gr->jobs[0]->tenant, .key_id = gr->jobs[0]->key_id });
	qsort(gr->refs, gr->nrefs, sizeof *gr->refs, ref_cmp);
	qsort(gr->ikeys, gr->nikeys, sizeof *gr->ikeys, ikey_cmp);
	gr->careful = 0;
	gr->weeks_missing = 0;
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, group_tx, gr);
	if (st == DB_ROLLBACK && gr->careful)
		st = db_tx(app->db, DB_READ_COMMITTED, group_tx, gr);
	/* Events partitioned by week, and an event in a week not made yet:
	 * made, and the group runs once more. */
	if (st == DB_INVALID && gr->weeks_missing && weeks_make(app, gr) >= 0) {
		gr->weeks_missing = 0;
		st = db_tx(app->db, DB_READ_COMMITTED, group_tx, gr);
		if (st == DB_ROLLBACK && gr->careful)
			st = db_tx(app->db, DB_READ_COMMITTED, group_tx, gr);
	}
	atomic_fetch_add(&g->groups, 1);
	hist_add(g, gr->nevents);
	int64_t now = timefmt_now_us();
	if (st == DB_OK)
		for (size_t i = 0; i < gr->nkeys; i++)
			if (gr->keys[i].got)
				dp_limits_usage_set(app->limits, gr->keys[i].tenant, gr->keys[i].period,
				                    gr->keys[i].committed, now);
	if (st == DB_OK) /* wake the tenants' feed readers of this instance, its log appender and streams */
		for (size_t i = 0; i < gr->nkeys; i++) {
			dp_feed_committed(app->feed, gr->keys[i].tenant);
			dp_log_touch(app->log, gr->keys[i].tenant);
			dp_streams_touch(app->streams, gr->keys[i].tenant);
		}
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		if (st != DB_OK)
			j->outcome = st == DB_UNAVAILABLE || st == DB_RETRY ? J_UNAVAILABLE
			             : st == DB_COMMIT_UNKNOWN                ? J_UNKNOWN
			                                                      : J_ERROR;
		else if (j->outcome == J_PENDING)
			j->outcome = J_STORED;
		switch (j->outcome) {
		case J_STORED:
			atomic_fetch_add(&g->requests_stored, 1);
			atomic_fetch_add(&g->events_stored, j->n_new);
			atomic_fetch_add(&g->events_replayed, j->n - j->n_new);
			break;
		case J_REPLAYED:
			atomic_fetch_add(&g->requests_replayed, 1);
			atomic_fetch_add(&g->events_replayed, j->n);
			break;
		case J_CONFLICT: atomic_fetch_add(&g->requests_conflict, 1); break;
		case J_KEY_REPLAYED: atomic_fetch_add(&g->requests_key_replayed, 1); break;
		case J_KEY_CONFLICT: atomic_fetch_add(&g->requests_key_conflict, 1); break;
		case J_QUOTA: atomic_fetch_add(&g->requests_quota, 1); break;
		case J_MOVING: atomic_fetch_add(&g->writes_paused, 1); break;
		default: atomic_fetch_add(&g->requests_failed, 1); break;
		}
	}
	if (st != DB_OK && st != DB_UNAVAILABLE && st != DB_COMMIT_UNKNOWN) {
		json_t *ids = json_array();
		for (size_t i = 0; i < gr->n; i++)
			json_array_append_new(ids, json_string(gr->jobs[i]->req_id));
		log_write(LOG_ERROR, NULL, json_pack("{so}", "req_ids", ids),
		          "ingest: a group of %zu request(s) failed: %s", gr->n, db_status_str(st));
	}
	log_ctx_set(task);
	/* Last: once resumed, a request may complete and free its job at once.
	 * A request the drain deadline answered is not resumed again; one that
	 * has completed since is freed here. */
	size_t nresume = 0;
	struct job *orphans = NULL;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < gr->n; i++) {
		struct job *j = gr->jobs[i];
		j->held = 0;
		g->bytes -= j->bytes;
		if (j->orphan) {
			j->next = orphans;
			orphans = j;
		} else if (!j->abandoned) {
			gr->jobs[nresume++] = j;
		}
	}
	gr->n = 0; /* nothing held: the drain deadline leaves this group alone */
	g->resuming++;
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < nresume; i++)
		http_req_resume(gr->jobs[i]->req);
	while (orphans) {
		struct job *j = orphans;
		orphans = j->next;
		job_free_now(j);
	}
	pthread_mutex_lock(&g->mu);
	g->resuming--;
	pthread_cond_broadcast(&g->idle);
	pthread_mutex_unlock(&g->mu);
}

static void *writer_main(void *arg)
{
	struct dp_ingest *g = arg;
	size_t max = (size_t)g->app->cfg.ingest_group_max;
	/* A group holds at most `max` events, and at least one request of up
	 * to DP_BATCH_MAX: the table of its ids is sized for the larger, at
	 * most half full. */
	size_t cap = max > DP_BATCH_MAX ? max : DP_BATCH_MAX;
	size_t seen_cap = 16;
	while (seen_cap < 2 * cap)
		seen_cap *= 2;
	struct group gr = { .g = g };
	log_set_task("ingest_writer");
	uint64_t *seen = calloc(seen_cap, sizeof *seen);
	gr.jobs = calloc(cap, sizeof *gr.jobs);
	gr.refs = calloc(cap, sizeof *gr.refs);
	gr.keys = calloc(cap, sizeof *gr.keys);
	gr.ikeys = calloc(cap, sizeof *gr.ikeys);
	if (!seen || !gr.jobs || !gr.refs || !gr.keys || !gr.ikeys) {
		log_error(NULL, "ingest: out of memory starting a writer");
		goto out;
	}
	pthread_mutex_lock(&g->mu);
	size_t me = g->registered++;
	g->wgroups[me] = &gr;
	for (;;) {
		while (!g->head && !g->draining)
			pthread_cond_wait(&g->work, &g->mu);
		if (!g->head)
			break; /* draining, and nothing left */
		take_group(g, &gr, seen, seen_cap, max);
		g->active++;
		pthread_mutex_unlock(&g->mu);
		commit_group(g, &gr);
		pthread_mutex_lock(&g->mu);
		g->active--;
		if (!g->head && !g->active)
			pthread_cond_broadcast(&g->idle);
	}
	g->wgroups[me] = NULL;
	pthread_mutex_unlock(&g->mu);
out:
	free(seen);
	free(gr.jobs);
	free(gr.refs);
	free(gr.keys);
	free(gr.ikeys);
	return NULL;
}

struct dp_ingest *dp_ingest_new(struct dp_app *app)
{
	struct dp_ingest *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->app = app;
	g->nthreads = (size_t)app->cfg.ingest_writers;
	g->threads = calloc(g->nthreads, sizeof *g->threads);
	g->wgroups = calloc(g->nthreads, sizeof *g->wgroups);
	if (!g->threads || !g->wgroups) {
		free(g->threads);
		free(g->wgroups);
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->work, NULL);
	pthread_cond_init(&g->idle, NULL);
	return g;
}

int dp_ingest_start(struct dp_ingest *g, char *err, size_t errlen)
{
	for (; g->started < g->nthreads; g->started++)
		if (pthread_create(&g->threads[g->started], NULL, writer_main, g) != 0) {
			snprintf(err, errlen, "cannot start ingest writer threads");
			return -1;
		}
	return 0;
}

/* With g->mu held: stops taking new work and waits, at most `ms`, until
 * the writers have answered everything queued or in a commit. */
static void drain_locked(struct dp_ingest *g, unsigned ms)
{
	struct timespec deadline = deadline_in(CLOCK_REALTIME, ms);
	g->draining = 1;
	pthread_cond_broadcast(&g->work);
	while ((g->head || g->active) && g->started)
		if (pthread_cond_timedwait(&g->idle, &g->mu, &deadline) != 0)
			break;
}

void dp_ingest_drain(struct dp_ingest *g, unsigned timeout_ms)
{
	pthread_mutex_lock(&g->mu);
	drain_locked(g, timeout_ms);
	pthread_mutex_unlock(&g->mu);
}

void dp_ingest_abandon(struct dp_ingest *g, unsigned grace_ms)
{
	struct job *list = NULL;
	pthread_mutex_lock(&g->mu);
	drain_locked(g, grace_ms);
	while (g->head) {
		struct job *j = g->head;
		g->head = j->next;
		j->next = NULL;
		j->in_queue = 0;
		g->queued--;
		g->bytes -= j->bytes;
		j->abandoned = A_QUEUED;
		j->rnext = list;
		list = j;
		atomic_fetch_add(&g->requests_failed, 1);
	}
	g->tail = NULL;
	for (size_t w = 0; w < g->registered; w++)
		for (size_t i = 0; g->wgroups[w] && i < g->wgroups[w]->n; i++) {
			struct job *j = g->wgroups[w]->jobs[i];
			if (j->held && !j->abandoned) {
				j->abandoned = A_COMMITTING;
				j->rnext = list;
				list = j;
			}
		}
	/* A writer resuming the requests of a group it finished does so
	 * outside the lock: the server must not stop before it is done. */
	while (g->resuming)
		pthread_cond_wait(&g->idle, &g->mu);
	pthread_mutex_unlock(&g->mu);
	if (list)
		log_warn(NULL, "ingest: requests not stored by the drain deadline were answered 503");
	/* Suspended, these requests cannot complete before they are resumed. */
	while (list) {
		struct job *j = list;
		list = j->rnext;
		http_req_resume(j->req);
	}
}

void dp_ingest_free(struct dp_ingest *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->draining = 1;
	pthread_cond_broadcast(&g->work);
	pthread_mutex_unlock(&g->mu);
	/* A writer leaves only once the queue is empty. */
	for (size_t i = 0; i < g->started; i++)
		pthread_join(g->threads[i], NULL);
	pthread_cond_destroy(&g->work);
	pthread_cond_destroy(&g->idle);
	pthread_mutex_destroy(&g->mu);
	free(g->threads);
	free(g->wgroups);
	free(g);
}

void dp_ingest_metrics(struct dp_ingest *g, FILE *out)
{
	static const char *const le[] = { "1", "7", "31", "127", "511", "2047", "+Inf" };
	unsigned long long cum = 0;
	pthread_mutex_lock(&g->mu);
	size_t queued = g->queued, bytes = g->bytes;
	pthread_mutex_unlock(&g->mu);
	fprintf(out,
	        "# HELP dp_events_stored_total Events stored (committed) by this instance.\n"
	        "# TYPE dp_events_stored_total counter\ndp_events_stored_total %llu\n"
	        "# HELP dp_events_replayed_total Events sent again under an id already stored with the same content.\n"
	        "# TYPE dp_events_replayed_total counter\ndp_events_replayed_total %llu\n"
	        "# HELP dp_ingest_requests_total Ingest requests by outcome.\n"
	        "# TYPE dp_ingest_requests_total counter\n"
	        "dp_ingest_requests_total{outcome=\"stored\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"replayed\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"conflict\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"quota_exceeded\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"failed\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"queue_full\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"key_replayed\"} %llu\n"
	        "dp_ingest_requests_total{outcome=\"key_conflict\"} %llu\n"
	        "# HELP dp_ingest_queue_requests Requests waiting for a group commit.\n"
	        "# TYPE dp_ingest_queue_requests gauge\ndp_ingest_queue_requests %zu\n"
	        "# HELP dp_ingest_queue_bytes Body bytes of the ingest requests waiting for or in a group commit.\n"
	        "# TYPE dp_ingest_queue_bytes gauge\ndp_ingest_queue_bytes %zu\n"
	        "# HELP dp_ingest_group_retries_total Group transactions run again after a concurrent insert of the same id.\n"
	        "# TYPE dp_ingest_group_retries_total counter\ndp_ingest_group_retries_total %llu\n"
	        "# HELP dp_ingest_group_events Events per group-commit transaction.\n"
	        "# TYPE dp_ingest_group_events histogram\n",
	        (unsigned long long)g->events_stored, (unsigned long long)g->events_replayed,
	        (unsigned long long)g->requests_stored, (unsigned long long)g->requests_replayed,
	        (unsigned long long)g->requests_conflict, (unsigned long long)g->requests_quota,
	        (unsigned long long)g->requests_failed, (unsigned long long)g->busy,
	        (unsigned long long)g->requests_key_replayed, (unsigned long long)g->requests_key_conflict, queued, bytes,
	        (unsigned long long)g->group_retries);
	for (int i = 0; i < 7; i++) {
		cum += g->group_events_hist[i];
		fprintf(out, "dp_ingest_group_events_bucket{le=\"%s\"} %llu\n", le[i], cum);
	}
	fprintf(out, "dp_ingest_group_events_sum %llu\n", (unsigned long long)g->group_events_sum);
	fprintf(out, "dp_ingest_group_events_count %llu\n", cum);
	fprintf(out,
	        "# HELP dp_writes_paused_total Ingest requests answered 503 tenant_moving: their tenant was fenced for a move.\n"
	        "# TYPE dp_writes_paused_total counter\ndp_writes_paused_total %llu\n",
	        (unsigned long long)g->writes_paused);
}

/* ---- the handler ---- */

/* The body of a stored (or by-id replayed) request's answer: the event, or
 * {"events": [...]}, each as stored. 0, or -1 without memory. */
static int answer_body(const struct job *j, struct buf *b)
{
	if (j->batch)
		buf_append(b, "{\"events\":[", 11);
	for (size_t i = 0; i < j->n; i++) {
		if (i)
			buf_append(b, ",", 1);
		if (j->existing[i])
			buf_append(b, j->existing[i], j->existing_len[i]);
		else
			buf_append(b, j->ev[i].body, j->ev[i].body_len);
	}
	if (j->batch)
		buf_append(b, "]}", 2);
	return b->failed ? -1 : 0;
}

/* The Location of an answer: a single event's URL on a 201, else "". Ids
 * are [A-Za-z0-9._:-]: nothing to escape. */
static void answer_location(const struct job *j, int status, char *out, size_t len)
{
	if (status == 201 && !j->batch)
		snprintf(out, len, "/v1/events/%s", j->ev[0].id);
	else if (len)
		out[0] = '\0';
}

/* The one case where the outcome is not known: say so. */
static enum http_result reply_unknown(struct http_req *req, const char *what)
{
	http_add_header(req, "Retry-After", RETRY_AFTER_DB);
	return http_reply_problem(req, PROB_UNAVAILABLE,
	                          "%s while this request was committing: its events may or may not be stored. "
	                          "Retry with the same ids: stored events are answered 200.",
	                          what);
}

static enum http_result reply_outcome(struct http_req *req, struct job *j)
{
	pthread_mutex_lock(&j->g->mu);
	enum abandon ab = j->abandoned;
	pthread_mutex_unlock(&j->g->mu);
	/* Answered by the drain deadline: a writer may still be at work on the
	 * job, whose outcome is not read. */
	if (ab == A_COMMITTING)
		return reply_unknown(req, "This instance stopped before the region's database answered");
	if (ab == A_QUEUED) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE,
		                          "This instance stopped before the region's database could store this "
		                          "request; nothing was stored. Retry.");
	}
	switch (j->outcome) {
	case J_STORED:
	case J_REPLAYED: {
		struct buf b = { 0 };
		int status = j->outcome == J_STORED ? 201 : 200;
		char loc[sizeof j->idem_location];
		if (answer_body(j, &b) != 0) {
			buf_free(&b);
			return HTTP_FAILED;
		}
		answer_location(j, status, loc, sizeof loc);
		if (loc[0])
			http_add_header(req, "Location", loc);
		if (j->outcome == J_REPLAYED)
			http_add_header(req, "Idempotent-Replayed", "true");
		enum http_result rc = http_reply_raw(req, (unsigned)status, "application/json", b.p, b.len);
		buf_free(&b);
		return rc;
	}
	case J_KEY_REPLAYED:
		/* The first answer as it was, marked as a replay like the
		 * control plane's. */
		if (j->idem_location[0])
			http_add_header(req, "Location", j->idem_location);
		http_add_header(req, "Idempotent-Replayed", "true");
		return http_reply_raw(req, (unsigned)j->idem_status, "application/json", j->idem_body, j->idem_len);
	case J_KEY_CONFLICT:
		return http_reply_problem(req, PROB_UNPROCESSABLE, "%s", DP_IDEM_CONFLICT_DETAIL);
	case J_CONFLICT: {
		char field[48];
		if (j->batch)
			snprintf(field, sizeof field, "events[%zu].id", j->conflict);
		else
			snprintf(field, sizeof field, "id");
		return http_reply_problem_ex(req, PROB_CONFLICT, json_pack("{ss}", "field", field),
		                             "An event with id '%s' is already stored with other content.",
		                             j->ev[j->conflict].id);
	}
	case J_QUOTA: {
		int64_t next;
		char ra[24];
		timefmt_month(j->received_us, NULL, &next, NULL);
		snprintf(ra, sizeof ra, "%" PRId64, (next - j->received_us + 999999) / 1000000);
		http_add_header(req, "Retry-After", ra);
		return http_reply_problem_ex(
			req, PROB_QUOTA_EXCEEDED,
			json_pack("{sI sI ss}", "quota", (json_int_t)j->quota, "used", (json_int_t)j->used,
			          "period", j->period),
			"This request's %zu event(s) would exceed the plan's quota of %" PRId64
			" events in %s (%" PRId64 " used); nothing was stored.",
			j->n_new, j->quota, j->period, j->used);
	}
	case J_MOVING:
		http_add_header(req, "Retry-After", "1");
		return http_reply_problem(req, PROB_TENANT_MOVING,
		                          "This tenant is moving to another cell; its writes are paused for a "
		                          "moment and nothing was stored. Retry.");
	case J_UNKNOWN:
		return reply_unknown(req, "The region's database did not confirm the commit");
	case J_UNAVAILABLE:
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE,
		                          "The region's database is unavailable; nothing was stored. Retry later.");
	default:
		return HTTP_FAILED; /* 500, logged by the writer */
	}
}

static enum http_result queue_full(struct http_req *req, const char *why)
{
	http_add_header(req, "Retry-After", "1");
	return http_reply_problem(req, PROB_UNAVAILABLE, "%s", why);
}

/* 400 validation_failed naming every fault in `e` (cleared). */
static enum http_result reply_invalid(struct http_req *req, struct dp_event_errors *e)
{
	json_t *extra = dp_event_errors_extra(e);
	enum http_result rc = extra ? http_reply_problem_ex(req, PROB_VALIDATION, extra, "%s", e->first.msg)
	                            : HTTP_FAILED;
	dp_event_errors_clear(e);
	return rc;
}

/* A fault of the request as a whole: the one entry of its errors. */
static enum http_result reply_invalid_one(struct http_req *req, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum http_result reply_invalid_one(struct http_req *req, const char *field, const char *fmt, ...)
{
	struct dp_event_errors e = { 0 };
	struct jsonx_err err;
	va_list ap;
	snprintf(err.field, sizeof err.field, "%s", field);
	va_start(ap, fmt);
	vsnprintf(err.msg, sizeof err.msg, fmt, ap);
	va_end(ap);
	dp_event_errors_add(&e, &err);
	return reply_invalid(req, &e);
}

enum http_result dp_handle_events_post(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	struct dp_ingest *g = app->ingest;
	struct job *j = http_req_state(req);
	json_t *body;
	struct jsonx_err err;
	struct dp_event_errors errs = { 0 };
	char key[IDEMKEY_MAX + 1];

	if (j)
		return reply_outcome(req, j); /* resumed after its group committed */

	const struct dp_auth *a = http_req_auth(req);
	if (dp_events_admit(req, a, CFGDOC_SCOPE_WRITE) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (dp_idem_key_read(req, key) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (http_req_json_object(req, &body) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!(j = calloc(1, sizeof *j))) {
		json_decref(body);
		return HTTP_FAILED;
	}
	j->req = req;
	j->g = g;
	http_req_body(req, &j->bytes);
	j->root = body;
	memcpy(j->tenant, a->tenant_id, sizeof j->tenant);
	snprintf(j->req_id, sizeof j->req_id, "%s", http_req_id(req));
	memcpy(j->key_id, a->key_id, sizeof j->key_id);
	j->quota = a->plan.quota;
	j->received_us = timefmt_now_us();
	timefmt_month(j->received_us, NULL, NULL, j->period);
	memcpy(j->idem_key, key, sizeof j->idem_key);
	if (key[0])
		dp_idem_hash_request(req, j->idem_hash);
	http_req_set_state(req, j, job_free);

	const json_t *list = json_object_get(body, "events");
	j->batch = list != NULL;
	if (j->batch) {
		if (json_object_size(body) != 1) {
			const char *k;
			json_t *v;
			json_object_foreach(body, k, v)
				if (strcmp(k, "events"))
					return reply_invalid_one(req, k, "A batch has only the member events.");
		}
		if (!json_is_array(list) || json_array_size(list) < 1 || json_array_size(list) > DP_BATCH_MAX)
			return reply_invalid_one(req, "events", "events must be an array of 1 to %d events.", DP_BATCH_MAX);
		j->n = json_array_size(list);
	} else {
		j->n = 1;
	}
	j->ev = calloc(j->n, sizeof *j->ev);
	j->existing = calloc(j->n, sizeof *j->existing);
	j->existing_len = calloc(j->n, sizeof *j->existing_len);
	if (!j->ev || !j->existing || !j->existing_len)
		return HTTP_FAILED;
	int64_t oldest = j->received_us - a->plan.retention_days * INT64_C(86400000000);
	/* Every event is looked at, so that a refused batch names all of its
	 * invalid members (the first fault of each); an invalid event holds no
	 * memory and names no id. */
	for (size_t i = 0; i < j->n; i++) {
		char prefix[40] = "";
		if (j->batch)
			snprintf(prefix, sizeof prefix, "events[%zu].", i);
		enum dp_event_parse_result rc = dp_event_parse(j->batch ? json_array_get(list, i) : body,
		                                               j->received_us, oldest, prefix, &j->ev[i], &err);
		if (rc == DP_EVENT_NO_MEMORY) {
			dp_event_errors_clear(&errs);
			return HTTP_FAILED;
		}
		if (rc != DP_EVENT_OK) {
			memset(&j->ev[i], 0, sizeof j->ev[i]);
			dp_event_errors_add(&errs, &err);
			continue;
		}
		/* An id repeated within the batch (at most 1000 x 1000 compares,
		 * only on ids given). */
		for (size_t k = 0; j->ev[i].id_given && k < i; k++)
			if (j->ev[k].id_given && !strcmp(j->ev[k].id, j->ev[i].id)) {
				snprintf(err.field, sizeof err.field, "events[%zu].id", i);
				snprintf(err.msg, sizeof err.msg, "This id is also the id of events[%zu].", k);
				dp_event_errors_add(&errs, &err);
				break;
			}
	}
	if (errs.total)
		return reply_invalid(req, &errs);
	/* Certainly over quota (the count held here never exceeds the stored
	 * one): refused without asking the database, unless the request names
	 * ids or an Idempotency-Key, which may be the retry of what is stored. */
	int64_t used, as_of;
	int named = j->idem_key[0] != 0; /* may be the retry of a request stored */
	for (size_t i = 0; i < j->n; i++)
		named |= j->ev[i].id_given;
	dp_limits_usage_get(app->limits, j->tenant, j->period, &used, &as_of);
	if (!named && used + (int64_t)j->n > j->quota) {
		j->outcome = J_QUOTA;
		j->used = used;
		j->n_new = j->n;
		atomic_fetch_add(&g->requests_quota, 1);
		return reply_outcome(req, j);
	}

	pthread_mutex_lock(&g->mu);
	/* The bytes bound what the queue pins in memory; a request of the
	 * route's largest body always fits an empty queue. */
	if (g->draining || g->queued >= (size_t)app->cfg.ingest_queue_max ||
	    g->bytes + j->bytes > (size_t)app->cfg.ingest_queue_bytes) {
		const char *why = g->draining ? "This instance is shutting down; nothing was stored. Retry."
		                  : g->queued >= (size_t)app->cfg.ingest_queue_max
		                      ? "Too many requests are waiting to be stored; nothing was stored. Retry."
		                      : "Too many bytes of requests are waiting to be stored; nothing was stored. Retry.";
		pthread_mutex_unlock(&g->mu);
		atomic_fetch_add(&g->busy, 1);
		return queue_full(req, why);
	}
	if (g->tail)
		g->tail->next = j;
	else
		g->head = j;
	g->tail = j;
	g->queued++;
	g->bytes += j->bytes;
	j->in_queue = 1;
	/* Suspended before a writer can see it, so that the resume follows. */
	http_req_suspend(req);
	pthread_cond_signal(&g->work);
	pthread_mutex_unlock(&g->mu);
	return HTTP_SUSPENDED;
}
