/* Issuing signed documents (regional, cell, routes): build from one
 * database snapshot, sign once per version, store so every replica serves
 * the same bytes, and keep the latest per subject in memory. */
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
#include "secret.h"
#include "keyring.h"
#include "seal.h"
#include <openssl/crypto.h>

/* Subjects held in memory: regions, cells and routes documents. */
#define MAX_SUBJECTS 1024
#define KEEP_VERSIONS 5

struct doc_slot {
	struct cp_doc_subject subject;
	pthread_mutex_t build;    /* one build per subject at a time in this process */
	struct cp_doc *doc;       /* guarded by doc_cache.lock */
};

struct doc_cache {
	pthread_mutex_t lock;
	struct doc_slot slots[MAX_SUBJECTS];
	size_t n;
	atomic_ulong built;        /* documents this process built and signed */
	atomic_ulong build_us;     /* the time that took, in microseconds */
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
		pthread_mutex_destroy(&dc->slots[i].build);
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
	return 0;
}

/* The slot of a subject; a cell's slot is its region's too, so the cell
 * is found by aud, which holds no region. */
static struct doc_slot *slot_for(struct doc_cache *dc, const struct cp_doc_subject *subj)
{
	struct doc_slot *s = NULL;
	pthread_mutex_lock(&dc->lock);
	for (size_t i = 0; i < dc->n && !s; i++)
		if (!strcmp(dc->slots[i].subject.aud, subj->aud) &&
		    !strcmp(dc->slots[i].subject.region, subj->region))
			s = &dc->slots[i];
	if (!s && dc->n < MAX_SUBJECTS) {
		s = &dc->slots[dc->n++];
		s->subject = *subj;
		pthread_mutex_init(&s->build, NULL);
	}
	pthread_mutex_unlock(&dc->lock);
	return s;
}

/* The cached document if it is at least `want`, with a reference. */
static struct cp_doc *cached(struct doc_cache *dc, struct doc_slot *s, int64_t want)
{
	struct cp_doc *d = NULL;
	pthread_mutex_lock(&dc->lock);
	if (s->doc && s->doc->version >= want)
		d = doc_ref(s->doc);
	pthread_mutex_unlock(&dc->lock);
	return d;
}

static void cache_put(struct doc_cache *dc, struct doc_slot *s, struct cp_doc *d)
{
	pthread_mutex_lock(&dc->lock);
	if (!s->doc || s->doc->version < d->version) {
		cp_doc_release(s->doc);
		s->doc = doc_ref(d);
	}
	pthread_mutex_unlock(&dc->lock);
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
		/* One allocation of about the final size: regrowing tens of
		 * megabytes costs more than building them. */
		b->cap = row->nrows * 96 + 64;
		if (!(b->p = malloc(b->cap)))
			return -1;
		b->p[0] = '\0';
	}
	if (strcmp(row->tenant_id, t->last) != 0) {
		if (cfgdoc_add_tenant(b, row->tenant_id, row->slug, row->status, row->plan) != 0)
			goto fail;
		snprintf(t->last, sizeof t->last, "%s", row->tenant_id);
	}
	if (row->key_id && cfgdoc_add_key_b64(b, row->key_id, row->key_sha256_b64, row->can_write,
	                                      row->can_read, row->expires_at) != 0)
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

/* The claims and bulk text of a regional or cell document. */
static enum db_status full_claims(struct db_conn *c, struct cp_app *app,
                                  const struct cp_doc_subject *subj, const struct cfgdoc_head *head,
                                  json_t **claims, struct buf *text)
{
	json_t *self = NULL, *regions = NULL, *dir, *cell = NULL;
	struct cpdb_plan_limits *plans = NULL;
	size_t nplans = 0, i;
	struct tenants_text tt = { .b = text };
	const char *only = subj->kind == CP_DOC_CELL ? subj->cell : NULL;
	enum db_status st;
	json_t *r;

	if ((st = cpdb_region_get(c, subj->region, &self)) != DB_OK ||
	    (st = cpdb_regions_list(c, &regions)) != DB_OK ||
	    (only && (st = cpdb_cell_get(c, only, &cell)) != DB_OK) ||
	    (st = cpdb_doc_plans(c, subj->region, only, &plans, &nplans)) != DB_OK)
		goto out;
	st = DB_NOT_FOUND;
	if (cell && strcmp(json_string_value(json_object_get(cell, "region")), subj->region) != 0)
		goto out;
	if ((st = cpdb_doc_content(c, subj->region, only, tenants_text_row, &tt)) != DB_OK) {
		if (tt.failed)
			log_error(NULL, "%s: a tenant or key cannot be written into the document", subj->aud);
		goto out;
	}
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

enum db_status cp_doc_build(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *subj,
                            int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64])
{
	json_t *claims = NULL;
	struct buf text = { 0 };
	struct jwk key = { 0 };
	unsigned char jti[16];
	char jti_hex[33];
	enum db_status st;

	*token = NULL;
	if ((st = cpdb_region_version(c, subj->region, ver)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (keyring_current(app->keys, &key) != 0 || secret_random(jti, sizeof jti) != 0)
		goto out;
	secret_hex(jti, sizeof jti, jti_hex);
	*iat = time(NULL);
	*exp = *iat + app->cfg.doc_lifetime_ms / 1000;
	struct cfgdoc_head head = { .iss = CP_ISSUER, .aud = subj->aud, .jti = jti_hex, .iat = *iat,
		                        .exp = *exp, .ver = *ver };
	st = subj->kind == CP_DOC_ROUTES ? routes_claims(c, subj, &head, &claims, &text)
	                                 : full_claims(c, app, subj, &head, &claims, &text);
	if (st != DB_OK)
		goto out;
	st = DB_ERROR;
	*token = cfgdoc_sign_text(&key, claims, subj->kind == CP_DOC_ROUTES ? "routes" : "tenants",
	                          text.p ? text.p : "");
	if (*token) {
		snprintf(kid, 64, "%s", key.kid);
		st = DB_OK;
	}
out:
	json_decref(claims);
	buf_free(&text);
	jwk_clear(&key);
	return st;
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
	int64_t want, ver;
	char *token;
};

static enum db_status issue_tx(struct db_conn *c, void *vctx)
{
	struct issue *is = vctx;
	const struct cp_doc_subject *subj = is->subject;
	int64_t iat, exp;
	char kid[64], *built = NULL;

	free(is->token);
	is->token = NULL;
	/* Another replica may have stored this version already. */
	enum db_status st = cpdb_region_version(c, subj->region, &is->ver);
	if (st != DB_OK)
		return st;
	st = stored_get(c, subj, is->ver, &is->token);
	if (st != DB_NOT_FOUND)
		return st;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((st = cp_doc_build(c, is->app, subj, &is->ver, &built, &iat, &exp, kid)) != DB_OK)
		return st;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_fetch_add(&is->app->docs->built, 1);
	atomic_fetch_add(&is->app->docs->build_us,
	                 (unsigned long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000));
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
	return st;
}

enum db_status cp_doc_get(struct cp_app *app, const struct cp_doc_subject *subj, int64_t want,
                          struct cp_doc **out)
{
	struct doc_slot *s = slot_for(app->docs, subj);
	enum db_status st = DB_OK;

	*out = NULL;
	if (!s)
		return DB_ERROR;
	if ((*out = cached(app->docs, s, want)) != NULL)
		return DB_OK;
	pthread_mutex_lock(&s->build);
	if ((*out = cached(app->docs, s, want)) == NULL) {
		struct issue is = { .app = app, .subject = subj, .want = want };
		/* One snapshot: the version and the content it describes agree. */
		st = db_tx(app->db, DB_REPEATABLE_READ, issue_tx, &is);
		if (st == DB_OK) {
			struct cp_doc *d = calloc(1, sizeof *d);
			if (d) {
				d->refs = 1;
				d->version = is.ver;
				d->token = is.token;
				d->len = strlen(is.token);
				is.token = NULL;
				cache_put(app->docs, s, d);
				*out = d;
			} else {
				st = DB_ERROR;
			}
		}
		free(is.token);
	}
	pthread_mutex_unlock(&s->build);
	return st;
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
	pthread_mutex_lock(&dc->lock);
	bytes_gauge(dc, out, CP_DOC_REGION, "cp_config_document_bytes", "region",
	            "Size of the newest regional document held, by region.");
	bytes_gauge(dc, out, CP_DOC_CELL, "cp_cell_document_bytes", "cell",
	            "Size of the newest cell document held, by cell.");
	bytes_gauge(dc, out, CP_DOC_ROUTES, "cp_routes_document_bytes", "region",
	            "Size of the newest routes document held, by region.");
	pthread_mutex_unlock(&dc->lock);
}
