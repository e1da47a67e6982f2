/* Issuing signed documents (regional, cell, routes): build from one
 * database snapshot, sign once per version, store so every replica serves
 * the same bytes, and keep the latest per subject in memory. Only the
 * document worker (doc_worker.c, woken through lp_kick) builds, through cp_doc_refresh: request
 * threads read what it published. A cell's document is published as a
 * delta from the state the worker last published (the change log of
 * 0011_config_changes.sql names the tenants to send), with a full one
 * rebuilt now and then, or when a request needs it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cfgdoc.h"
#include "config_doc.h"
#include "cp_app.h"
#include "cpdb.h"
#include "jsonx.h"
#include "log.h"
#include "longpoll.h"
#include "secret.h"
#include "signing_keys.h"
#include "seal.h"
#include <openssl/crypto.h>

/* Subjects held in memory: regions, cells and routes documents. */
#define MAX_SUBJECTS 1024
#define KEEP_VERSIONS 5
/* Deltas kept per cell: in memory, and in the store (config_deltas); the
 * change log keeps as many versions. */
#define MEM_DELTAS 256
#define KEEP_DELTAS 4096
/* More changed tenants than this in one step: a full document instead. */
#define DELTA_MAX_TENANTS 20000

/* A cell's state as the worker last published it: per tenant (16 bytes of
 * its uuid) the SHA-256 of its record, and their sum (cfgdoc.h). Open
 * addressing, linear probing, deletion by backward shift. */
struct rec_ent {
	unsigned char id[16], h[32];
	unsigned char used;
};
struct cell_state {
	int64_t ver;
	struct rec_ent *e;
	size_t cap, n;
	struct cfgdoc_sum sum;
};

struct doc_slot {
	struct cp_doc_subject subject;
	/* guarded by doc_cache.lock: */
	struct cp_doc *doc;           /* the newest full document */
	int64_t published;            /* newest version published, full or delta; -1: none */
	struct cp_doc *deltas[MEM_DELTAS]; /* the newest deltas, a ring */
	size_t dnext;
	int64_t want_full;            /* a request waits for a full at this version or above */
	int has_state;                /* cs is set (for the fulls thread, which never reads cs) */
	/* A cell's full document the fulls thread built, at a version that
	 * may not be on the deltas' chain: the deltas thread publishes it
	 * together with a delta from it to the chain, so that a data plane
	 * starting from it always finds the way on. NULL: none. */
	struct cp_doc *pending_full;
	/* the deltas thread's only: */
	struct cell_state *cs;
};

struct doc_cache {
	pthread_mutex_t lock;
	struct doc_slot slots[MAX_SUBJECTS];
	size_t n;
	atomic_ulong built;        /* documents this process built and signed */
	atomic_ulong build_us;     /* the time that took, in microseconds */
	atomic_ulong fulls;        /* full cell documents built */
	atomic_ulong deltas;       /* delta documents built */
	atomic_ulong delta_us;     /* the time those took */
	atomic_ulong delta_bytes;  /* the size of the last one */
	atomic_ulong fallbacks;    /* deltas that could not be built: a full instead */
};

static struct cp_doc *doc_ref(struct cp_doc *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

void cp_doc_release(void *vd)
{
	struct cp_doc *d = vd;
	if (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		free(d->token);
		free(d);
	}
}

static struct cp_doc *doc_new(int64_t version, int64_t base, int64_t exp, char *token)
{
	struct cp_doc *d = calloc(1, sizeof *d);
	if (!d) {
		free(token);
		return NULL;
	}
	d->refs = 1;
	d->version = version;
	d->base = base;
	d->exp = exp;
	d->at = (int64_t)time(NULL);
	d->token = token;
	d->len = strlen(token);
	return d;
}

static void cell_state_free(struct cell_state *cs)
{
	if (cs) {
		free(cs->e);
		free(cs);
	}
}

struct doc_cache *doc_cache_new(void)
{
	struct doc_cache *dc = calloc(1, sizeof *dc);
	if (dc)
		pthread_mutex_init(&dc->lock, NULL);
	return dc;
}

void doc_cache_free(struct doc_cache *dc)
{
	if (!dc)
		return;
	for (size_t i = 0; i < dc->n; i++) {
		cp_doc_release(dc->slots[i].doc);
		for (size_t j = 0; j < MEM_DELTAS; j++)
			cp_doc_release(dc->slots[i].deltas[j]);
		cell_state_free(dc->slots[i].cs);
		cp_doc_release(dc->slots[i].pending_full);
	}
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

int cp_doc_subject(struct cp_doc_subject *s, enum cp_doc_kind kind, const char *region,
                   const char *cell)
{
	memset(s, 0, sizeof *s);
	s->kind = kind;
	if (strlen(region) >= sizeof s->region || (kind == CP_DOC_CELL && strlen(cell) >= sizeof s->cell))
		return -1;
	snprintf(s->region, sizeof s->region, "%s", region);
	if (kind == CP_DOC_CELL) {
		snprintf(s->cell, sizeof s->cell, "%s", cell);
		snprintf(s->aud, sizeof s->aud, CFGDOC_AUD_CELL "%s", cell);
	} else {
		snprintf(s->aud, sizeof s->aud, "%s%s", kind == CP_DOC_ROUTES ? CFGDOC_AUD_ROUTES : "", region);
	}
	snprintf(s->full_key, sizeof s->full_key, "full:%s", s->aud);
	return 0;
}

/* The slot of a subject; a cell's slot is its region's too, so the cell
 * is found by aud, which holds no region. *added is 1 for a new one. */
static struct doc_slot *slot_for(struct doc_cache *dc, const struct cp_doc_subject *subj, int *added)
{
	struct doc_slot *s = NULL;
	*added = 0;
	pthread_mutex_lock(&dc->lock);
	for (size_t i = 0; i < dc->n && !s; i++)
		if (!strcmp(dc->slots[i].subject.aud, subj->aud) &&
		    !strcmp(dc->slots[i].subject.region, subj->region))
			s = &dc->slots[i];
	if (!s && dc->n < MAX_SUBJECTS) {
		s = &dc->slots[dc->n];
		memset(s, 0, sizeof *s);
		s->subject = *subj;
		s->published = -1;
		s->want_full = -1;

		dc->n++; /* the worker sees it complete */
		*added = 1;
	}
	pthread_mutex_unlock(&dc->lock);
	return s;
}

int cp_doc_published(struct cp_app *app, const struct cp_doc_subject *subj, int64_t *ver,
                     struct cp_doc **full)
{
	int added;
	struct doc_slot *s = slot_for(app->docs, subj, &added);
	*ver = -1;
	*full = NULL;
	if (!s)
		return -1;
	pthread_mutex_lock(&app->docs->lock);
	*ver = s->published;
	if (s->doc)
		*full = doc_ref(s->doc);
	pthread_mutex_unlock(&app->docs->lock);
	if (added)
		lp_kick(app->lp);
	return 0;
}

void cp_doc_want(struct cp_app *app, const struct cp_doc_subject *subj, int64_t full_at)
{
	int added;
	struct doc_slot *s = slot_for(app->docs, subj, &added);
	if (s && full_at >= 0) {
		pthread_mutex_lock(&app->docs->lock);
		if (full_at > s->want_full)
			s->want_full = full_at;
		pthread_mutex_unlock(&app->docs->lock);
	}
	lp_kick(app->lp);
}

/* A delta is served only while it has this long (s) before its exp:
 * 10 minutes, or an eighth of the lifetime when that is shorter. */
static int64_t delta_fresh_s(const struct cp_app *app)
{
	int64_t m = app->cfg.doc_lifetime_ms / 8000;
	return m < 600 ? m : 600;
}

enum db_status cp_doc_delta(struct cp_app *app, const struct cp_doc_subject *subj, int64_t base,
                            struct cp_doc **out)
{
	int added;
	struct doc_slot *s = slot_for(app->docs, subj, &added);
	*out = NULL;
	if (!s)
		return DB_ERROR;
	pthread_mutex_lock(&app->docs->lock);
	int64_t margin = delta_fresh_s(app), fresh = (int64_t)time(NULL) + margin;
	for (size_t i = 0; i < MEM_DELTAS && !*out; i++)
		if (s->deltas[i] && s->deltas[i]->base == base && s->deltas[i]->exp > fresh)
			*out = doc_ref(s->deltas[i]);
	pthread_mutex_unlock(&app->docs->lock);
	if (*out)
		return DB_OK;
	/* One another replica built, or older than those held: a read. */
	struct db_conn *c = db_acquire(app->db);
	if (!c)
		return DB_UNAVAILABLE;
	int64_t ver;
	char *token = NULL;
	enum db_status st = cpdb_delta_get(c, subj->aud, base, margin, &ver, &token);
	db_release(app->db, c);
	/* The store served it only while fresh enough. */
	if (st == DB_OK && !(*out = doc_new(ver, base, INT64_MAX, token)))
		st = DB_ERROR;
	return st;
}

/* Makes `d` (a reference taken) the subject's newest full document or one
 * of its deltas, then wakes the polls waiting for it. */
static void publish(struct cp_app *app, struct doc_slot *s, struct cp_doc *d)
{
	struct doc_cache *dc = app->docs;
	int64_t pub, full = -1;
	pthread_mutex_lock(&dc->lock);
	if (d->base < 0) {
		if (!s->doc || s->doc->version <= d->version) {
			cp_doc_release(s->doc);
			s->doc = d;
		} else {
			cp_doc_release(d);
		}
		full = s->doc->version;
	} else {
		cp_doc_release(s->deltas[s->dnext]);
		s->deltas[s->dnext] = d;
		s->dnext = (s->dnext + 1) % MEM_DELTAS;
	}
	if (d->version > s->published)
		s->published = d->version;
	pub = s->published;
	pthread_mutex_unlock(&dc->lock);
	lp_published(app->lp, s->subject.aud, pub);
	if (full >= 0)
		lp_published(app->lp, s->subject.full_key, full);
}

/* ---- the per-record state of a cell ---- */

static int uuid_bytes(const char *s, unsigned char out[16])
{
	size_t j = 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (j % 2 == 0)
			out[j / 2] = (unsigned char)(v << 4);
		else
			out[j / 2] |= (unsigned char)v;
		j++;
	}
	return 0;
}

static size_t rec_slot(const struct cell_state *cs, const unsigned char id[16])
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < 16; i++)
		h = (h ^ id[i]) * 1099511628211ULL;
	return (size_t)(h & (cs->cap - 1));
}

static struct rec_ent *rec_find(const struct cell_state *cs, const unsigned char id[16])
{
	if (!cs->cap)
		return NULL;
	for (size_t i = rec_slot(cs, id);; i = (i + 1) & (cs->cap - 1)) {
		if (!cs->e[i].used)
			return NULL;
		if (!memcmp(cs->e[i].id, id, 16))
			return &cs->e[i];
	}
}

static int rec_put(struct cell_state *cs, const unsigned char id[16], const unsigned char h[32])
{
	if ((cs->n + 1) * 10 > cs->cap * 7) {
		struct cell_state g = { .cap = cs->cap ? cs->cap * 2 : 1024 };
		if (!(g.e = calloc(g.cap, sizeof *g.e)))
			return -1;
		for (size_t i = 0; i < cs->cap; i++)
			if (cs->e[i].used) {
				size_t j = rec_slot(&g, cs->e[i].id);
				while (g.e[j].used)
					j = (j + 1) & (g.cap - 1);
				g.e[j] = cs->e[i];
			}
		free(cs->e);
		cs->e = g.e;
		cs->cap = g.cap;
	}
	size_t i = rec_slot(cs, id);
	while (cs->e[i].used && memcmp(cs->e[i].id, id, 16))
		i = (i + 1) & (cs->cap - 1);
	if (!cs->e[i].used)
		cs->n++;
	cs->e[i].used = 1;
	memcpy(cs->e[i].id, id, 16);
	memcpy(cs->e[i].h, h, 32);
	return 0;
}

static void rec_del(struct cell_state *cs, struct rec_ent *e)
{
	size_t i = (size_t)(e - cs->e), j = i;
	cs->e[i].used = 0;
	cs->n--;
	for (;;) {
		j = (j + 1) & (cs->cap - 1);
		if (!cs->e[j].used)
			return;
		size_t k = rec_slot(cs, cs->e[j].id);
		/* Moves back an entry whose home is not in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			cs->e[i] = cs->e[j];
			cs->e[j].used = 0;
			i = j;
		}
	}
}

/* Hashes every record of a full text into `cs` (NULL: only the sum). */
struct hashing {
	struct cell_state *cs;
	struct cfgdoc_sum *sum;
	/* With `old` (the state the last delta reached): the records that
	 * differ from it, for the bridging delta; `big` once too many. */
	const struct cell_state *old;
	struct buf *upsert;
	size_t changed;
};

static int hash_record(const char *rec, size_t len, void *arg)
{
	struct hashing *hs = arg;
	unsigned char h[32], id[16];
	cfgdoc_record_hash(rec, len, h);
	cfgdoc_sum_add(hs->sum, h);
	if (!hs->cs)
		return 0;
	if (len < 38 || uuid_bytes(rec + 2, id) != 0 || rec_put(hs->cs, id, h) != 0)
		return -1;
	if (hs->old && hs->changed <= DELTA_MAX_TENANTS) {
		const struct rec_ent *e = rec_find(hs->old, id);
		if (!e || memcmp(e->h, h, 32) != 0) {
			hs->changed++;
			buf_append(hs->upsert, rec, len);
		}
	}
	return 0;
}

static json_t *plans_claim(const struct cpdb_plan_limits *plans, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		if (cfgdoc_plans_add(o, plans[i].id, plans[i].rate_limit, plans[i].burst,
		                     plans[i].monthly_event_quota, plans[i].retention_days) != 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

struct tenants_text {
	struct buf *b;
	char last[40];    /* the tenant of the previous row */
	int failed;       /* a tenant or key cannot be written */
};

/* Appends one content row to the tenants text: the tenant at its first
 * row, then the key if any. */
static int tenants_text_row(const struct cpdb_doc_row *row, void *arg)
{
	struct tenants_text *t = arg;
	struct buf *b = t->b;
	if (!b->p) {
		/* One allocation of about the final size when it is known:
		 * regrowing tens of megabytes costs more than building them. A
		 * whole cell's is not (its regrowth moves pages, not bytes). */
		b->cap = (row->nrows ? row->nrows : 1024) * 96 + 64;
		if (!(b->p = malloc(b->cap)))
			return -1;
		b->p[0] = '\0';
	}
	if (strcmp(row->tenant_id, t->last) != 0) {
		if (cfgdoc_add_tenant(b, row->tenant_id, row->slug, row->status, row->plan) != 0)
			goto fail;
		snprintf(t->last, sizeof t->last, "%s", row->tenant_id);
	}
	unsigned char sha[32];
	if (row->key_id && row->key_sha256_b64 &&
	    cfgdoc_add_key_b64(b, row->key_id, row->key_sha256_b64, row->can_write, row->can_read, row->expires_at) != 0)
		goto fail;
	if (row->key_id && !row->key_sha256_b64 &&
	    (secret_unhex(row->key_sha256_hex, sha, sizeof sha) != 0 ||
	     cfgdoc_add_key(b, row->key_id, sha, row->can_write, row->can_read, row->expires_at) != 0))
		goto fail;
	if (b->failed)
		goto fail;
	return 0;
fail:
	t->failed = 1;
	return -1;
}

struct streams_claim {
	json_t *arr;
	const unsigned char *secrets_key;
	struct jwk key;               /* the region's stream key (public) */
	int have_key;
	const char *aud;
	int truncated;                /* rows left out (logged once) */
};

/* Appends one stream to the `streams` claim (cfgdoc.h), its secret opened
 * from the control plane's seal and sealed again to the region's stream
 * key, for that stream only (seal.h); the secret in clear is wiped at once. */
static int stream_row(const struct cpdb_doc_stream *s, void *arg)
{
	struct streams_claim *sc = arg;
	if (json_array_size(sc->arr) >= CFGDOC_MAX_STREAMS) {
		if (!sc->truncated++)
			log_error(NULL, "%s: more than %d streams; the document carries the first", sc->aud,
			          CFGDOC_MAX_STREAMS);
		return 0;
	}
	json_t *dest = json_loads(s->destination, 0, NULL);
	int s3 = !strcmp(s->kind, "s3"), rc = -1;
	json_t *o = json_pack("{ss ss ss sI sb sI sI sI sI}", "id", s->id, "tenant", s->tenant_id, "kind", s->kind,
	                      "revision", (json_int_t)s->revision, "paused", s->paused, "since",
	                      (json_int_t)s->since, "resume", (json_int_t)s->resume, "replay",
	                      (json_int_t)s->replay, "replay_since", (json_int_t)s->replay_since);
	if (!dest || !o)
		goto out;
	if (s3) {
		const char *prefix = json_string_value(json_object_get(dest, "prefix"));
		if (json_object_set(o, "endpoint", json_object_get(dest, "endpoint")) != 0 ||
		    json_object_set(o, "bucket", json_object_get(dest, "bucket")) != 0 ||
		    json_object_set(o, "s3_region", json_object_get(dest, "region")) != 0 ||
		    json_object_set(o, "access_key_id", json_object_get(dest, "access_key_id")) != 0 ||
		    json_object_set_new(o, "prefix", json_string(prefix ? prefix : "")) != 0)
			goto out;
	} else if (json_object_set(o, "url", json_object_get(dest, "url")) != 0) {
		goto out;
	}
	if (sc->have_key) {
		size_t len = 0;
		char *plain = secret_open(sc->secrets_key, s->secret_sealed, &len);
		char *sealed = plain ? seal_secret(&sc->key, s->id, plain, len) : NULL;
		if (plain) {
			OPENSSL_cleanse(plain, len);
			free(plain);
		}
		if (sealed)
			json_object_set_new(o, "secret", json_string(sealed));
		else
			log_error(NULL, "%s: stream %s: its secret cannot be sealed to the region's stream key "
			          "(was CP_SECRETS_KEY changed?); the document carries the stream without it",
			          sc->aud, s->id);
		free(sealed);
	}
	if (json_array_append(sc->arr, o) == 0)
		rc = 0;
out:
	json_decref(dest);
	json_decref(o);
	return rc;
}

/* Adds the `stream_rules` claim (the region's residency rule) and, when
 * the document's tenants have streams, the `streams` claim. `self` is the
 * region as cpdb_region_get shows it. One query for the streams. */
static enum db_status stream_claims(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *subj,
                                    json_t *self, json_t *claims)
{
	struct streams_claim sc = { .arr = json_array(), .secrets_key = app->secrets_key, .aud = subj->aud };
	json_t *key = json_object_get(self, "stream_key");
	enum db_status st = DB_ERROR;
	char err[200];
	if (!sc.arr)
		return DB_ERROR;
	if (json_is_object(key)) {
		if (jwk_from_json(key, &sc.key, err, sizeof err) == 0)
			sc.have_key = 1;
		else
			log_error(NULL, "%s: the region's stream_key cannot be used: %s", subj->aud, err);
	}
	json_t *hosts = json_object_get(self, "stream_hosts"), *s3 = json_object_get(self, "stream_s3_regions");
	if (json_object_set_new(claims, "stream_rules",
	                        json_pack("{so so}", "hosts", hosts ? json_incref(hosts) : json_array(),
	                                  "s3_regions", s3 ? json_incref(s3) : json_array())) != 0)
		goto out;
	st = cpdb_doc_streams(c, subj->region, subj->kind == CP_DOC_CELL ? subj->cell : NULL, stream_row, &sc);
	if (st == DB_OK && json_array_size(sc.arr) > 0 && json_object_set(claims, "streams", sc.arr) != 0)
		st = DB_ERROR;
out:
	json_decref(sc.arr);
	if (sc.have_key)
		jwk_clear(&sc.key);
	return st;
}

/* The claims of a regional or cell document but its tenants: those a full
 * document and a delta of the same version carry alike. */
static enum db_status state_claims(struct db_conn *c, struct cp_app *app,
                                   const struct cp_doc_subject *subj, const struct cfgdoc_head *head,
                                   json_t **claims)
{
	json_t *self = NULL, *regions = NULL, *dir, *cell = NULL;
	struct cpdb_plan_limits *plans = NULL;
	size_t nplans = 0, i;
	const char *only = subj->kind == CP_DOC_CELL ? subj->cell : NULL;
	enum db_status st;
	json_t *r;

	if ((st = cpdb_region_get(c, subj->region, &self)) != DB_OK ||
	    (st = cpdb_regions_list(c, &regions)) != DB_OK ||
	    (only && (st = cpdb_cell_claim(c, only, &cell)) != DB_OK) ||
	    (st = cpdb_doc_plans(c, subj->region, only, &plans, &nplans)) != DB_OK)
		goto out;
	st = DB_NOT_FOUND;
	if (cell && strcmp(json_string_value(json_object_get(cell, "region")), subj->region) != 0)
		goto out;
	st = DB_ERROR;
	dir = json_array();
	json_array_foreach(regions, i, r)
		if (cfgdoc_directory_add(dir, json_string_value(json_object_get(r, "name")),
		                         json_string_value(json_object_get(r, "endpoint")),
		                         json_string_value(json_object_get(r, "status"))) != 0)
			break;
	if (i < json_array_size(regions)) {
		json_decref(dir);
		goto out;
	}
	/* The document is read by data planes of the previous build during a
	 * rollout: its region claim keeps the member name it always had. */
	jsonx_rename(self, "endpoint", "endpoint_url");
	*claims = cfgdoc_claims(head, self, dir, plans_claim(plans, nplans));
	if (!*claims)
		goto out;
	if (cell && json_object_set_new(*claims, "cell",
	                                json_pack("{sOsOsOsO}", "name", json_object_get(cell, "name"),
	                                          "region", json_object_get(cell, "region"), "kind",
	                                          json_object_get(cell, "kind"), "status",
	                                          json_object_get(cell, "status"))) != 0) {
		json_decref(*claims);
		*claims = NULL;
		goto out;
	}
	/* Keys of this region whose tenant moved away: answered with the
	 * tenant's new region (a claim only when there is one). */
	struct buf moved = { 0 };
	if ((st = cpdb_doc_moved(c, subj->region, &moved)) == DB_OK && moved.len &&
	    json_object_set_new(*claims, "moved", json_stringn(moved.p, moved.len)) != 0)
		st = DB_ERROR;
	buf_free(&moved);
	if (st == DB_OK)
		st = stream_claims(c, app, subj, self, *claims);
	if (st != DB_OK) {
		json_decref(*claims);
		*claims = NULL;
		goto out;
	}
out:
	json_decref(self);
	json_decref(regions);
	json_decref(cell);
	free(plans);
	return st;
}

/* The claims and bulk text of a regional or cell document. */
static enum db_status full_claims(struct db_conn *c, struct cp_app *app,
                                  const struct cp_doc_subject *subj, const struct cfgdoc_head *head,
                                  json_t **claims, struct buf *text)
{
	struct tenants_text tt = { .b = text };
	enum db_status st = state_claims(c, app, subj, head, claims);
	if (st != DB_OK)
		return st;
	st = cpdb_doc_content(c, subj->region, subj->kind == CP_DOC_CELL ? subj->cell : NULL,
	                      tenants_text_row, &tt);
	if (st != DB_OK) {
		if (tt.failed)
			log_error(NULL, "%s: a tenant or key cannot be written into the document", subj->aud);
		json_decref(*claims);
		*claims = NULL;
	}
	return st;
}

/* Appends one route line of the routes document. */
static int routes_text_row(const char *key_id, const char *cell, size_t nrows, void *arg)
{
	struct buf *b = arg;
	if (!b->p) {
		b->cap = nrows * 96 + 64;
		if (!(b->p = malloc(b->cap)))
			return -1;
		b->p[0] = '\0';
	}
	if (cfgdoc_add_route(b, key_id, cell) != 0 || b->failed) {
		log_error(NULL, "key %s: its route to cell %s cannot be written into the routes document",
		          key_id, cell);
		return -1;
	}
	return 0;
}

/* The claims and bulk text of a routes document. */
static enum db_status routes_claims(struct db_conn *c, const struct cp_doc_subject *subj,
                                    const struct cfgdoc_head *head, json_t **claims, struct buf *text)
{
	json_t *cells = NULL, *list = NULL, *cl;
	size_t i;
	enum db_status st = cpdb_cells_list(c, subj->region, &cells);
	if (st != DB_OK)
		return st;
	if ((st = cpdb_routes_content(c, subj->region, routes_text_row, text)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (!(list = json_array()))
		goto out;
	json_array_foreach(cells, i, cl)
		if (json_array_append_new(list, json_pack("[OOO]", json_object_get(cl, "name"),
		                                          json_object_get(cl, "status"),
		                                          json_object_get(cl, "kind"))) != 0)
			goto out;
	*claims = json_pack("{ss ss sI sI sI ss sI si ss ss sO}", "iss", head->iss, "aud", head->aud,
	                    "iat", (json_int_t)head->iat, "nbf", (json_int_t)head->iat, "exp",
	                    (json_int_t)head->exp, "jti", head->jti, "ver", (json_int_t)head->ver, "fmt",
	                    CFGDOC_FMT, "kind", CFGDOC_KIND_ROUTES, "region", subj->region, "cells", list);
	if (*claims)
		st = DB_OK;
out:
	json_decref(cells);
	json_decref(list);
	return st;
}

/* The head of a document of version `ver` signed now: *key the current
 * signing key (the caller jwk_clear()s it). */
static enum db_status sign_head(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *subj,
                                int64_t ver, struct jwk *key, char jti_hex[33], struct cfgdoc_head *head)
{
	unsigned char jti[16];
	if (cp_signing_key(app, c, key) != 0 || secret_random(jti, sizeof jti) != 0)
		return DB_ERROR;
	secret_hex(jti, sizeof jti, jti_hex);
	int64_t now = time(NULL);
	*head = (struct cfgdoc_head){ .iss = CP_ISSUER, .aud = subj->aud, .jti = jti_hex, .iat = now,
		                          .exp = now + app->cfg.doc_lifetime_ms / 1000, .ver = ver };
	return DB_OK;
}

/* cp_doc_build, and for a regional or cell document the state of its
 * records into `cs` (NULL: none kept; the digest claim is added alike). */
/* The bridging delta of a cell's full rebuild: from `old` (the state its
 * last delta reached) to the full document's state, its claims those of
 * the full document (with their digest). NULL when the two differ in too
 * many tenants, or on an error (the data planes then take the full). */
static char *bridge_delta(const struct jwk *key, const json_t *claims, const struct cell_state *old,
                          const struct cell_state *cs, const struct hashing *hs, const char *digest)
{
	struct buf removed = { 0 };
	char *token = NULL;
	json_t *dc = NULL;
	size_t gone = 0;
	if (hs->changed > DELTA_MAX_TENANTS || hs->upsert->failed)
		return NULL;
	for (size_t i = 0; i < old->cap; i++)
		if (old->e[i].used && !rec_find(cs, old->e[i].id)) {
			static const char hex[] = "0123456789abcdef";
			const unsigned char *b = old->e[i].id;
			char id[38];
			size_t k = 0;
			for (int j = 0; j < 16; j++) {
				if (j == 4 || j == 6 || j == 8 || j == 10)
					id[k++] = '-';
				id[k++] = hex[b[j] >> 4];
				id[k++] = hex[b[j] & 15];
			}
			id[k++] = ';';
			buf_append(&removed, id, k);
			if (++gone + hs->changed > DELTA_MAX_TENANTS)
				goto out;
		}
	buf_append(&removed, "", 1);
	if (removed.failed || !(dc = json_deep_copy(claims)) ||
	    cfgdoc_delta_claims(dc, old->ver, removed.p, digest) != 0)
		goto out;
	token = cfgdoc_sign_text(key, dc, "upsert", hs->upsert->p ? hs->upsert->p : "");
out:
	json_decref(dc);
	buf_free(&removed);
	return token;
}

static unsigned long between_ms(const struct timespec *a, const struct timespec *b)
{
	return (unsigned long)((b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000);
}

static unsigned long since_us(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (unsigned long)((t1.tv_sec - t0->tv_sec) * 1000000L + (t1.tv_nsec - t0->tv_nsec) / 1000);
}

static enum db_status build_full(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *subj,
                                 int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64],
                                 struct cell_state *cs, const struct cell_state *old, char **bridge)
{
	json_t *claims = NULL;
	struct buf text = { 0 };
	struct jwk key = { 0 };
	struct cfgdoc_head head;
	char jti_hex[33], digest[CFGDOC_DIGEST_LEN + 1];
	enum db_status st;

	struct timespec t0, t1 = { 0 }, t2 = { 0 };
	*token = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((st = cpdb_region_version(c, subj->region, ver)) != DB_OK ||
	    (st = sign_head(c, app, subj, *ver, &key, jti_hex, &head)) != DB_OK)
		goto out;
	*iat = head.iat;
	*exp = head.exp;
	st = subj->kind == CP_DOC_ROUTES ? routes_claims(c, subj, &head, &claims, &text)
	                                 : full_claims(c, app, subj, &head, &claims, &text);
	if (st != DB_OK)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	t2 = t1;
	st = DB_ERROR;
	if (subj->kind != CP_DOC_ROUTES) {
		/* The state digest (cfgdoc.h): older data planes ignore it. */
		struct cfgdoc_sum sum = { { 0 } };
		struct buf upsert = { 0 };
		struct hashing hs = { .cs = cs, .sum = &sum, .upsert = &upsert,
			                  .old = cs && old && old->ver < *ver ? old : NULL };
		if ((text.p && cfgdoc_each_record(text.p, text.len, hash_record, &hs) != 0) ||
		    cfgdoc_state_digest(claims, &sum, digest) != 0 ||
		    json_object_set_new(claims, "digest", json_string(digest)) != 0) {
			buf_free(&upsert);
			goto out;
		}
		if (hs.old && bridge)
			*bridge = bridge_delta(&key, claims, hs.old, cs, &hs, digest);
		buf_free(&upsert);
		if (cs) {
			cs->sum = sum;
			cs->ver = *ver;
		}
		clock_gettime(CLOCK_MONOTONIC, &t2);
	}
	*token = cfgdoc_sign_text(&key, claims, subj->kind == CP_DOC_ROUTES ? "routes" : "tenants",
	                          text.p ? text.p : "");
	if (*token) {
		snprintf(kid, 64, "%s", key.kid);
		st = DB_OK;
		/* Where a large cell's build goes, for its operator. */
		struct timespec t3;
		clock_gettime(CLOCK_MONOTONIC, &t3);
		log_info(NULL, "%s: full document of version %lld built in %lu ms (content read and written %lu ms, "
		         "records hashed %lu ms, signed %lu ms), %zu bytes",
		         subj->aud, (long long)*ver, between_ms(&t0, &t3), between_ms(&t0, &t1), between_ms(&t1, &t2),
		         between_ms(&t2, &t3), strlen(*token));
	}
out:
	json_decref(claims);
	buf_free(&text);
	jwk_clear(&key);
	return st;
}

enum db_status cp_doc_build(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *subj,
                            int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64])
{
	return build_full(c, app, subj, ver, token, iat, exp, kid, NULL, NULL, NULL);
}

/* The store of a subject's documents: the regional one keeps the table
 * the previous build reads. */
static enum db_status stored_get(struct db_conn *c, const struct cp_doc_subject *s, int64_t ver,
                                 char **token)
{
	return s->kind == CP_DOC_REGION ? cpdb_doc_get(c, s->region, ver, token)
	                                : cpdb_signed_doc_get(c, s->aud, ver, token);
}


struct issue {
	struct cp_app *app;
	const struct cp_doc_subject *subject;
	struct cell_state *cs;     /* a cell's new state, built with the document */
	const struct cell_state *old; /* the state its last delta reached, or NULL */
	int64_t ver, exp;
	char *token;
	char *bridge;              /* the delta from old to the new state, or NULL */
};

static enum db_status issue_tx(struct db_conn *c, void *vctx)
{
	struct issue *is = vctx;
	const struct cp_doc_subject *subj = is->subject;
	int64_t iat, exp;
	char kid[64], *built = NULL;

	free(is->token);
	is->token = NULL;
	/* Another replica may have stored this version already (a cell's
	 * state needs the records: it is built all the same). */
	enum db_status st = cpdb_region_version(c, subj->region, &is->ver);
	if (st != DB_OK)
		return st;
	if (!is->cs) {
		st = stored_get(c, subj, is->ver, &is->token);
		if (st != DB_NOT_FOUND)
			return st;
	} else {
		free(is->cs->e);
		memset(is->cs, 0, sizeof *is->cs);
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	free(is->bridge);
	is->bridge = NULL;
	if ((st = build_full(c, is->app, subj, &is->ver, &built, &iat, &exp, kid, is->cs, is->old,
	                     &is->bridge)) != DB_OK)
		return st;
	is->exp = exp;
	atomic_fetch_add(&is->app->docs->built, 1);
	atomic_fetch_add(&is->app->docs->build_us, since_us(&t0));
	/* A stored document can always be rebuilt from the tables, so its
	 * commit need not wait for the disk (this transaction only). */
	if ((st = cpdb_commit_unsynced(c)) != DB_OK) {
		free(built);
		return st;
	}
	int stored = 0;
	if (subj->kind == CP_DOC_REGION)
		st = cpdb_doc_insert(c, subj->region, is->ver, built, kid, iat, exp, &stored);
	else
		st = cpdb_signed_doc_insert(c, subj->aud, subj->region, is->ver, built, kid, iat, exp, &stored);
	if (st == DB_OK && stored) {
		is->token = built;
		built = NULL;
	} else if (st == DB_OK) {
		st = stored_get(c, subj, is->ver, &is->token); /* another replica's */
	}
	free(built);
	if (st == DB_OK)
		st = subj->kind == CP_DOC_REGION ? cpdb_doc_prune(c, subj->region, is->ver, KEEP_VERSIONS)
		                                 : cpdb_signed_doc_prune(c, subj->aud, is->ver, KEEP_VERSIONS);
	/* The bridging delta, for the data planes at the old state. */
	int stored_delta;
	if (st == DB_OK && is->bridge)
		st = cpdb_delta_insert(c, subj->aud, is->old->ver, is->ver, is->bridge, kid, iat, exp, &stored_delta);
	return st;
}

/* The current full document of a subject, published; with `rebase` (the
 * deltas thread's only), a cell's state is re-based on it and the
 * bridging delta from the old state published first. */
static enum db_status refresh_full(struct cp_app *app, struct doc_slot *s, int rebase)
{
	struct issue is = { .app = app, .subject = &s->subject, .old = rebase ? s->cs : NULL };
	if (rebase && s->subject.kind == CP_DOC_CELL && !(is.cs = calloc(1, sizeof *is.cs)))
		return DB_ERROR;
	/* One snapshot: the version and the content it describes agree. */
	enum db_status st = db_tx(app->db, DB_REPEATABLE_READ, issue_tx, &is);
	struct cp_doc *d = NULL, *bridge = NULL;
	if (st == DB_OK) {
		d = doc_new(is.ver, -1, 0, is.token); /* takes the token, also when it fails */
		is.token = NULL;
		if (!d)
			st = DB_ERROR;
	}
	if (st == DB_OK && is.bridge && is.old) {
		bridge = doc_new(is.ver, is.old->ver, is.exp, is.bridge);
		is.bridge = NULL;
	}
	if (st == DB_OK) {
		if (s->subject.kind == CP_DOC_CELL)
			atomic_fetch_add(&app->docs->fulls, 1);
		if (is.cs) {
			cell_state_free(s->cs);
			s->cs = is.cs;
			is.cs = NULL;
			pthread_mutex_lock(&app->docs->lock);
			s->has_state = 1;
			pthread_mutex_unlock(&app->docs->lock);
		}
		if (!rebase && s->subject.kind == CP_DOC_CELL) {
			/* Handed to the deltas thread, which publishes it. */
			pthread_mutex_lock(&app->docs->lock);
			cp_doc_release(s->pending_full);
			s->pending_full = d;
			pthread_mutex_unlock(&app->docs->lock);
			lp_kick(app->lp);
			d = NULL;
		}
		/* The bridge first: the data planes at the old state take it
		 * rather than the whole document. */
		if (bridge) {
			atomic_fetch_add(&app->docs->deltas, 1);
			publish(app, s, bridge);
		}
		if (d)
			publish(app, s, d);
	}
	cell_state_free(is.cs);
	free(is.token);
	free(is.bridge);
	return st;
}

/* A changed tenant's record in the delta being built. */
struct changed {
	unsigned char id[16], h[32];
	const char *rec;
	size_t len;
};

struct delta {
	struct cp_app *app;
	const struct cp_doc_subject *subject;
	const struct cell_state *cs;   /* read only: applied once committed */
	int64_t ver, exp;
	int none, incomplete;          /* no new version; the change log lacks one (or too many changed) */
	struct buf records;            /* the upsert text */
	struct changed *now;           /* the changed tenants present, by their records */
	size_t nnow;
	struct buf removed;            /* the remove text */
	struct cfgdoc_sum sum;         /* the new state's */
	char *token;
};

static int changed_cmp(const void *a, const void *b)
{
	return memcmp(((const struct changed *)a)->id, ((const struct changed *)b)->id, 16);
}

static int collect(const char *rec, size_t len, void *arg)
{
	struct delta *dl = arg;
	struct changed *ch = &dl->now[dl->nnow];
	if (len < 38 || uuid_bytes(rec + 2, ch->id) != 0)
		return -1;
	cfgdoc_record_hash(rec, len, ch->h);
	ch->rec = rec;
	ch->len = len;
	dl->nnow++;
	return 0;
}

static void delta_reset(struct delta *dl)
{
	buf_free(&dl->records);
	buf_free(&dl->removed);
	free(dl->now);
	dl->now = NULL;
	dl->nnow = 0;
	free(dl->token);
	dl->token = NULL;
	dl->none = dl->incomplete = 0;
}

static enum db_status delta_tx(struct db_conn *c, void *vctx)
{
	struct delta *dl = vctx;
	const struct cp_doc_subject *subj = dl->subject;
	const struct cell_state *cs = dl->cs;
	struct buf ids = { 0 };
	struct tenants_text tt = { .b = &dl->records };
	json_t *claims = NULL;
	struct jwk key = { 0 };
	struct cfgdoc_head head;
	char jti_hex[33], digest[CFGDOC_DIGEST_LEN + 1];
	size_t n;
	int complete;

	delta_reset(dl);
	enum db_status st = cpdb_region_version(c, subj->region, &dl->ver);
	if (st != DB_OK)
		return st;
	if (dl->ver <= cs->ver) {
		dl->none = 1;
		return DB_OK;
	}
	if ((st = cpdb_config_changed(c, subj->region, cs->ver, dl->ver, &ids, &n, &complete)) != DB_OK)
		goto out;
	/* A change to a large share of the cell is cheaper as a full document
	 * (and bounds this transaction's work). */
	if (!complete || n > DELTA_MAX_TENANTS) {
		dl->incomplete = 1;
		goto out;
	}
	if (n && (st = cpdb_doc_content_of(c, subj->region, subj->cell, ids.p, tenants_text_row, &tt)) != DB_OK)
		goto out;
	st = DB_ERROR;
	/* The changed tenants now in the cell, then those it no longer has. */
	if (n && !(dl->now = calloc(n, sizeof *dl->now)))
		goto out;
	if (dl->records.p && cfgdoc_each_record(dl->records.p, dl->records.len, collect, dl) != 0)
		goto out;
	if (dl->nnow > 1)
		qsort(dl->now, dl->nnow, sizeof *dl->now, changed_cmp);
	dl->sum = cs->sum;
	for (size_t i = 0; i < dl->nnow; i++) {
		const struct rec_ent *e = rec_find(cs, dl->now[i].id);
		if (e)
			cfgdoc_sum_sub(&dl->sum, e->h);
		cfgdoc_sum_add(&dl->sum, dl->now[i].h);
	}
	for (size_t i = 0; i < n; i++) {
		const char *id = ids.p + 1 + i * 37;
		unsigned char b[16];
		const struct rec_ent *e;
		if (uuid_bytes(id, b) != 0)
			goto out;
		struct changed probe;
		memcpy(probe.id, b, 16);
		if ((dl->nnow && bsearch(&probe, dl->now, dl->nnow, sizeof *dl->now, changed_cmp)) || !(e = rec_find(cs, b)))
			continue;
		cfgdoc_sum_sub(&dl->sum, e->h);
		buf_append(&dl->removed, id, 36);
		buf_append(&dl->removed, ";", 1);
	}
	if (dl->removed.failed || (st = sign_head(c, dl->app, subj, dl->ver, &key, jti_hex, &head)) != DB_OK ||
	    (st = state_claims(c, dl->app, subj, &head, &claims)) != DB_OK)
		goto out;
	dl->exp = head.exp;
	st = DB_ERROR;
	if (cfgdoc_state_digest(claims, &dl->sum, digest) != 0 ||
	    cfgdoc_delta_claims(claims, cs->ver, dl->removed.p, digest) != 0 ||
	    !(dl->token = cfgdoc_sign_text(&key, claims, "upsert", dl->records.p ? dl->records.p : "")))
		goto out;
	int stored;
	if ((st = cpdb_commit_unsynced(c)) == DB_OK &&
	    (st = cpdb_delta_insert(c, subj->aud, cs->ver, dl->ver, dl->token, key.kid, head.iat, head.exp,
	                            &stored)) == DB_OK)
		st = cpdb_delta_prune(c, subj->aud, dl->ver, KEEP_DELTAS);
out:
	buf_free(&ids);
	json_decref(claims);
	jwk_clear(&key);
	return st;
}

/* The next delta of a cell, from the state the worker last published.
 * DB_NOT_FOUND when it cannot be built (the caller builds a full). */
static enum db_status refresh_delta(struct cp_app *app, struct doc_slot *s)
{
	struct cell_state *cs = s->cs;
	struct delta dl = { .app = app, .subject = &s->subject, .cs = cs };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	enum db_status st = db_tx(app->db, DB_REPEATABLE_READ, delta_tx, &dl);
	if (st == DB_OK && dl.incomplete)
		st = DB_NOT_FOUND;
	if (st == DB_OK && !dl.none) {
		/* Committed: the state moves to the new version. */
		for (size_t i = 0; i < dl.nnow && st == DB_OK; i++)
			if (rec_put(cs, dl.now[i].id, dl.now[i].h) != 0)
				st = DB_ERROR;
		for (const char *p = dl.removed.p; st == DB_OK && p && *p; p += 37) {
			unsigned char b[16];
			struct rec_ent *e;
			if (uuid_bytes(p, b) == 0 && (e = rec_find(cs, b)) != NULL)
				rec_del(cs, e);
		}
		if (st != DB_OK) {
			cell_state_free(s->cs); /* half applied: the next pass builds a full */
			s->cs = NULL;
			pthread_mutex_lock(&app->docs->lock);
			s->has_state = 0;
			pthread_mutex_unlock(&app->docs->lock);
		} else {
			cs->sum = dl.sum;
			int64_t base = cs->ver;
			cs->ver = dl.ver;
			struct cp_doc *d = doc_new(dl.ver, base, dl.exp, dl.token);
			dl.token = NULL;
			if (d) {
				atomic_fetch_add(&app->docs->deltas, 1);
				atomic_store(&app->docs->delta_bytes, d->len);
				atomic_fetch_add(&app->docs->delta_us, since_us(&t0));
				publish(app, s, d);
			} else {
				/* Stored but not published: the next pass starts over from
				 * a full document rather than from a state nobody has. */
				cell_state_free(s->cs);
				s->cs = NULL;
				pthread_mutex_lock(&app->docs->lock);
				s->has_state = 0;
				pthread_mutex_unlock(&app->docs->lock);
				st = DB_ERROR;
			}
		}
	}
	delta_reset(&dl);
	return st;
}

/* A delta from `base` (a full document's version, on no chain) to the
 * state the chain reached (cs->ver), built in a snapshot where the region
 * is still at cs->ver: the records of the tenants changed since `base`,
 * and every one of those that is gone (the control plane holds no state
 * of `base`; a data plane ignores the removal of a tenant it does not
 * hold, and the digest, of the chain's state, tells whether it arrived). */
struct extra {
	struct cp_app *app;
	const struct cp_doc_subject *subject;
	const struct cell_state *cs;
	int64_t base, exp;
	int skip, give_up;             /* the region moved on; too many changes */
	char *token;
};

static int id36_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 36);
}

static int present_id(const char *rec, size_t len, void *arg)
{
	struct buf *ids = arg;
	if (len < 38)
		return -1;
	buf_append(ids, rec + 2, 36);
	return 0;
}

static enum db_status extra_tx(struct db_conn *c, void *vctx)
{
	struct extra *x = vctx;
	const struct cp_doc_subject *subj = x->subject;
	struct buf ids = { 0 }, records = { 0 }, present = { 0 }, removed = { 0 };
	struct tenants_text tt = { .b = &records };
	json_t *claims = NULL;
	struct jwk key = { 0 };
	struct cfgdoc_head head;
	char jti_hex[33], digest[CFGDOC_DIGEST_LEN + 1];
	int64_t ver;
	size_t n;
	int complete;

	free(x->token);
	x->token = NULL;
	enum db_status st = cpdb_region_version(c, subj->region, &ver);
	if (st != DB_OK)
		return st;
	if (ver != x->cs->ver) {
		x->skip = 1;
		return DB_OK;
	}
	if ((st = cpdb_config_changed(c, subj->region, x->base, ver, &ids, &n, &complete)) != DB_OK)
		goto out;
	if (!complete || n > DELTA_MAX_TENANTS) {
		x->give_up = 1;
		goto out;
	}
	if (n && (st = cpdb_doc_content_of(c, subj->region, subj->cell, ids.p, tenants_text_row, &tt)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (records.p && cfgdoc_each_record(records.p, records.len, present_id, &present) != 0)
		goto out;
	size_t npresent = present.p ? present.len / 36 : 0;
	if (npresent > 1)
		qsort(present.p, npresent, 36, id36_cmp);
	for (size_t i = 0; i < n; i++) {
		const char *id = ids.p + 1 + i * 37;
		if (!npresent || !bsearch(id, present.p, npresent, 36, id36_cmp)) {
			buf_append(&removed, id, 36);
			buf_append(&removed, ";", 1);
		}
	}
	buf_append(&removed, "", 1);
	if (removed.failed || present.failed || (st = sign_head(c, x->app, subj, ver, &key, jti_hex, &head)) != DB_OK ||
	    (st = state_claims(c, x->app, subj, &head, &claims)) != DB_OK)
		goto out;
	st = DB_ERROR;
	x->exp = head.exp;
	if (cfgdoc_state_digest(claims, &x->cs->sum, digest) != 0 ||
	    cfgdoc_delta_claims(claims, x->base, removed.p, digest) != 0 ||
	    !(x->token = cfgdoc_sign_text(&key, claims, "upsert", records.p ? records.p : "")))
		goto out;
	int stored;
	if ((st = cpdb_commit_unsynced(c)) == DB_OK)
		st = cpdb_delta_insert(c, subj->aud, x->base, ver, x->token, key.kid, head.iat, head.exp, &stored);
out:
	buf_free(&ids);
	buf_free(&records);
	buf_free(&present);
	buf_free(&removed);
	json_decref(claims);
	jwk_clear(&key);
	return st;
}

/* Publishes the full document the fulls thread handed over (see
 * doc_slot), once the chain is at or past its version: with the delta
 * from it to the chain first, when it is not on the chain. */
static void refresh_pending(struct cp_app *app, struct doc_slot *s)
{
	pthread_mutex_lock(&app->docs->lock);
	int64_t base = s->pending_full ? s->pending_full->version : -1;
	pthread_mutex_unlock(&app->docs->lock);
	if (base < 0 || !s->cs || base > s->cs->ver)
		return; /* none, or the chain has not reached it yet */
	struct extra x = { .app = app, .subject = &s->subject, .cs = s->cs, .base = base };
	enum db_status st = base == s->cs->ver ? DB_OK : db_tx(app->db, DB_REPEATABLE_READ, extra_tx, &x);
	if (st != DB_OK || x.skip) {
		free(x.token);
		return; /* the next pass */
	}
	if (x.token) {
		struct cp_doc *d = doc_new(s->cs->ver, base, x.exp, x.token);
		if (d) {
			atomic_fetch_add(&app->docs->deltas, 1);
			publish(app, s, d);
		}
	}
	pthread_mutex_lock(&app->docs->lock);
	struct cp_doc *full = NULL;
	if (s->pending_full && s->pending_full->version == base) { /* not replaced meanwhile */
		full = s->pending_full;
		s->pending_full = NULL;
	}
	/* Too many changes since it: the data planes at `base` get a newer
	 * full document. */
	if (x.give_up && s->cs->ver > s->want_full)
		s->want_full = s->cs->ver;
	pthread_mutex_unlock(&app->docs->lock);
	if (full)
		publish(app, s, full);
	if (x.give_up)
		lp_kick(app->lp);
}

/* The deltas thread's part for one subject (cells only): a delta up to
 * `ver` (its region's version), or, when the cell has no state yet or a
 * delta cannot be built, a full document the state is re-based on. */
static void refresh_deltas(struct cp_app *app, struct doc_slot *s, int64_t ver)
{
	if (s->subject.kind != CP_DOC_CELL)
		return;
	pthread_mutex_lock(&app->docs->lock);
	int64_t pub = s->published;
	pthread_mutex_unlock(&app->docs->lock);
	if (s->cs && pub >= ver) {
		refresh_pending(app, s);
		return;
	}
	enum db_status st = DB_NOT_FOUND;
	if (s->cs) {
		int64_t from = s->cs->ver;
		if ((st = refresh_delta(app, s)) != DB_OK) {
			atomic_fetch_add(&app->docs->fallbacks, 1);
			log_warn_limited(NULL, "%s: no delta from version %lld (%s); building a full document",
			                 s->subject.aud, (long long)from, db_status_str(st));
		}
	}
	if (st != DB_OK && (st = refresh_full(app, s, 1)) != DB_OK && st != DB_NOT_FOUND)
		log_warn_limited(NULL, "%s: building the document failed (%s); will retry", s->subject.aud,
		                 db_status_str(st));
	if (st == DB_OK)
		refresh_pending(app, s);
}

/* The fulls thread's part for one subject: a regional or routes document
 * of every version asked for; a cell's full document when one is due
 * (CP_CONFIG_FULL_EVERY versions after the last, half its lifetime, or a
 * request waiting for one), without touching the cell's delta state, so
 * that no delta waits for a full build. */
static void refresh_fulls(struct cp_app *app, struct doc_slot *s, int64_t ver)
{
	pthread_mutex_lock(&app->docs->lock);
	int64_t pub = s->published, want = s->want_full;
	/* A full document built and waiting for the deltas thread counts. */
	const struct cp_doc *newest = s->pending_full && (!s->doc || s->pending_full->version > s->doc->version)
	                                  ? s->pending_full : s->doc;
	int64_t full = newest ? newest->version : -1, age = newest ? (int64_t)time(NULL) - newest->at : 0;
	int has_state = s->has_state;
	pthread_mutex_unlock(&app->docs->lock);
	int due;
	if (s->subject.kind != CP_DOC_CELL)
		due = pub < ver;
	else
		due = has_state && (want > full || (full >= 0 && ver - full >= app->cfg.full_every) ||
		                    age >= app->cfg.doc_lifetime_ms / 2000);
	if (!due)
		return;
	enum db_status st = refresh_full(app, s, 0);
	if (st != DB_OK && st != DB_NOT_FOUND)
		log_warn_limited(NULL, "%s: building the document failed (%s); will retry", s->subject.aud,
		                 db_status_str(st));
}

void cp_doc_refresh(struct cp_app *app, int prune, int fulls)
{
	struct doc_cache *dc = app->docs;
	pthread_mutex_lock(&dc->lock);
	size_t n = dc->n;
	pthread_mutex_unlock(&dc->lock);
	char done[MAX_SUBJECTS][33];
	size_t ndone = 0;
	for (size_t i = 0; i < n; i++) {
		struct doc_slot *s = &dc->slots[i];
		struct db_conn *c = db_acquire(app->db);
		int64_t ver;
		if (!c)
			return;
		enum db_status st = cpdb_region_version(c, s->subject.region, &ver);
		/* The change log of a region, once a pass when asked. */
		size_t j;
		for (j = 0; j < ndone && strcmp(done[j], s->subject.region); j++)
			;
		if (st == DB_OK && prune && j == ndone) {
			long removed;
			snprintf(done[ndone++], sizeof done[0], "%s", s->subject.region);
			if (cpdb_config_log_prune(c, s->subject.region, ver, KEEP_DELTAS, &removed) != DB_OK)
				log_warn_limited(NULL, "region %s: pruning the change log failed", s->subject.region);
		}
		db_release(app->db, c);
		if (st == DB_OK) {
			if (fulls)
				refresh_fulls(app, s, ver);
			else
				refresh_deltas(app, s, ver);
		}
	}
}

static void bytes_gauge(struct doc_cache *dc, FILE *out, enum cp_doc_kind kind, const char *name,
                        const char *label, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (size_t i = 0; i < dc->n; i++) {
		const struct doc_slot *s = &dc->slots[i];
		if (s->doc && s->subject.kind == kind)
			fprintf(out, "%s{%s=\"%s\"} %zu\n", name, label,
			        kind == CP_DOC_CELL ? s->subject.cell : s->subject.region, s->doc->len);
	}
}

void doc_cache_metrics(struct doc_cache *dc, FILE *out)
{
	if (!dc)
		return;
	fprintf(out,
	        "# HELP cp_config_documents_built_total Signed documents (regional, cell, routes) this process built and signed.\n"
	        "# TYPE cp_config_documents_built_total counter\n"
	        "cp_config_documents_built_total %lu\n"
	        "# HELP cp_config_build_seconds_total Time spent building and signing them.\n"
	        "# TYPE cp_config_build_seconds_total counter\n"
	        "cp_config_build_seconds_total %.3f\n",
	        atomic_load(&dc->built), (double)atomic_load(&dc->build_us) / 1e6);
	fprintf(out,
	        "# HELP cp_config_full_builds_total Full cell documents built (each re-bases the cell's delta state).\n"
	        "# TYPE cp_config_full_builds_total counter\n"
	        "cp_config_full_builds_total %lu\n"
	        "# HELP cp_config_deltas_built_total Delta cell documents built and signed.\n"
	        "# TYPE cp_config_deltas_built_total counter\n"
	        "cp_config_deltas_built_total %lu\n"
	        "# HELP cp_config_delta_build_seconds_total Time spent building and signing deltas.\n"
	        "# TYPE cp_config_delta_build_seconds_total counter\n"
	        "cp_config_delta_build_seconds_total %.3f\n"
	        "# HELP cp_config_delta_fallbacks_total Deltas that could not be built, a full document instead.\n"
	        "# TYPE cp_config_delta_fallbacks_total counter\n"
	        "cp_config_delta_fallbacks_total %lu\n"
	        "# HELP cp_config_delta_bytes Size of the last delta document built.\n"
	        "# TYPE cp_config_delta_bytes gauge\n"
	        "cp_config_delta_bytes %lu\n",
	        atomic_load(&dc->fulls), atomic_load(&dc->deltas), (double)atomic_load(&dc->delta_us) / 1e6,
	        atomic_load(&dc->fallbacks), atomic_load(&dc->delta_bytes));
	pthread_mutex_lock(&dc->lock);
	bytes_gauge(dc, out, CP_DOC_REGION, "cp_config_document_bytes", "region",
	            "Size of the newest regional document held, by region.");
	bytes_gauge(dc, out, CP_DOC_CELL, "cp_cell_document_bytes", "cell",
	            "Size of the newest cell document held, by cell.");
	bytes_gauge(dc, out, CP_DOC_ROUTES, "cp_routes_document_bytes", "region",
	            "Size of the newest routes document held, by region.");
	pthread_mutex_unlock(&dc->lock);
}
