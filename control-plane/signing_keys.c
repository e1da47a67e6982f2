/* The control plane's signing identity (signing_keys.h). */
#include "signing_keys.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp_app.h"
#include "cpdb.h"
#include "deadline.h"
#include "keyring.h"
#include "keyset.h"
#include "log.h"
#include "mutate.h"
#include "secret.h"

/* The JWK set a replica serves is read again when older than this. */
#define JWKS_MAX_AGE_MS 1000

#define HELD_MAX KEYSET_MAX_SIGNATURES

struct cp_signing {
	struct db_pool *db;
	unsigned char kek[32];
	char kek_id[17];
	/* CP_SIGNING_KEK_PREVIOUS, while the keys are resealed under a new
	 * CP_SIGNING_KEK (reseal-keys): rows it sealed still open. */
	unsigned char kek_prev[32];
	char kek_prev_id[17];
	int have_prev;
	int64_t overlap_s;
	pthread_mutex_t lock;
	/* The published keys, opened: the current one first (kid "" before
	 * the first load). */
	struct jwk held[HELD_MAX];
	size_t nheld;
	int64_t activated_at;     /* of the current key, unix seconds */
	json_t *jwks;
	int64_t set_ver;          /* version of `keyset` */
	char *keyset;             /* the signed key set (keyset.h) */
	int64_t loaded_ms;        /* monotonic, of the last load */
};

/* The KEK from 64 hex characters, and its id: the hex of the first 8
 * bytes of its SHA-256, which names it in the rows it sealed. */
static int kek_parse_named(const char *name, const char *hex, unsigned char kek[32], char id[17], char *err,
                           size_t errlen)
{
	unsigned char md[32];
	if (!hex || strlen(hex) != 64 || secret_unhex(hex, kek, 32) != 0) {
		snprintf(err, errlen, "%s must be 64 hex characters (generate one with: openssl rand -hex 32)", name);
		return -1;
	}
	secret_sha256(kek, 32, md);
	secret_hex(md, 8, id);
	return 0;
}

static int kek_parse(const char *hex, unsigned char kek[32], char id[17], char *err, size_t errlen)
{
	return kek_parse_named("CP_SIGNING_KEK", hex, kek, id, err, errlen);
}

/* CP_SIGNING_KEK_PREVIOUS beside CP_SIGNING_KEK: a key of its own. */
static int kek_prev_parse(const char *hex, const char *kek_id, unsigned char kek[32], char id[17], char *err,
                          size_t errlen)
{
	if (kek_parse_named("CP_SIGNING_KEK_PREVIOUS", hex, kek, id, err, errlen) != 0)
		return -1;
	if (!strcmp(id, kek_id)) {
		snprintf(err, errlen, "CP_SIGNING_KEK_PREVIOUS is CP_SIGNING_KEK: set it to the key-encryption key being "
		                      "replaced, or unset it");
		return -1;
	}
	return 0;
}

int cp_signing_kek_prev_check(const char *kek_hex, const char *prev_hex, char *err, size_t errlen)
{
	unsigned char kek[32], prev[32];
	char id[17], prev_id[17];
	int rc = -1;
	if (!kek_hex)
		snprintf(err, errlen, "CP_SIGNING_KEK_PREVIOUS: set without CP_SIGNING_KEK (it is only for moving the "
		                      "keys of the database to a new CP_SIGNING_KEK)");
	else if (kek_parse(kek_hex, kek, id, err, errlen) == 0)
		rc = kek_prev_parse(prev_hex, id, prev, prev_id, err, errlen);
	OPENSSL_cleanse(kek, sizeof kek);
	OPENSSL_cleanse(prev, sizeof prev);
	return rc;
}

int cp_signing_kek_check(const char *kek_hex, char *err, size_t errlen)
{
	unsigned char kek[32];
	char id[17];
	int rc = kek_parse(kek_hex, kek, id, err, errlen);
	OPENSSL_cleanse(kek, sizeof kek);
	return rc;
}

static int copy_key(const struct jwk *from, struct jwk *to)
{
	memset(to, 0, sizeof *to);
	memcpy(to->kid, from->kid, sizeof to->kid);
	memcpy(to->x, from->x, sizeof to->x);
	memcpy(to->y, from->y, sizeof to->y);
	to->public_pem = strdup(from->public_pem);
	to->private_pem = from->private_pem ? strdup(from->private_pem) : NULL;
	if (to->public_pem && (to->private_pem || !from->private_pem))
		return 0;
	jwk_clear(to);
	return -1;
}

/* ---- reading the rows ---- */


struct row {
	char kid[64], kek_id[17];
	char *sealed;
	int current;
};

struct rows {
	json_t *keys;
	struct row r[HELD_MAX];
	size_t n;
	int64_t activated_at, set_ver;
	int bad, current;
};

static void on_row(const struct cpdb_signing_key *k, void *arg)
{
	struct rows *r = arg;
	json_t *j = json_loads(k->public_jwk, 0, NULL);
	struct jwk pub;
	char why[200];
	r->set_ver = k->set_ver;
	if (!j || jwk_from_json(j, &pub, why, sizeof why) != 0 || strcmp(pub.kid, k->kid) != 0) {
		log_error(NULL, "signing key %s: its public JWK is not the key its kid names; left out", k->kid);
		json_decref(j);
		return;
	}
	jwk_clear(&pub);
	if (r->n == HELD_MAX) {
		log_error(NULL, "more than %d signing keys are published; %s is left out", HELD_MAX, k->kid);
		json_decref(j);
		return;
	}
	json_array_append_new(r->keys, j);
	struct row *w = &r->r[r->n++];
	snprintf(w->kid, sizeof w->kid, "%s", k->kid);
	snprintf(w->kek_id, sizeof w->kek_id, "%s", k->kek_id);
	w->sealed = strdup(k->sealed);
	r->bad |= !w->sealed;
	w->current = !strcmp(k->state, "current"); /* the query puts it first */
	if (w->current) {
		r->current = 1;
		r->activated_at = k->activated_at;
	}
}

static void rows_clear(struct rows *r)
{
	json_decref(r->keys);
	for (size_t i = 0; i < r->n; i++)
		free(r->r[i].sealed);
	memset(r, 0, sizeof *r);
}

/* Opens a row's sealed private key. */
static int open_sealed(const unsigned char kek[32], const char *kek_id, const char *setting, const struct row *r,
                       struct jwk *key, char *err, size_t errlen)
{
	size_t len;
	if (strcmp(r->kek_id, kek_id) != 0) {
		snprintf(err, errlen, "the signing key %s is sealed with the key-encryption key %s, and "
		         "%s here is %s: every replica needs the same CP_SIGNING_KEK", r->kid, r->kek_id, setting, kek_id);
		return -1;
	}
	char *pem = secret_open(kek, r->sealed, &len);
	if (!pem) {
		snprintf(err, errlen, "the signing key %s cannot be opened with %s", r->kid, setting);
		return -1;
	}
	int rc = jwk_from_private_pem(pem, len, "the sealed signing key", key, err, errlen);
	OPENSSL_cleanse(pem, len);
	free(pem);
	if (rc == 0 && strcmp(key->kid, r->kid) != 0) {
		snprintf(err, errlen, "the row of signing key %s holds key %s", r->kid, key->kid);
		jwk_clear(key);
		rc = -1;
	}
	return rc;
}

struct load_q {
	int64_t overlap_s;
	struct rows rows;
};

static enum db_status load_tx(struct db_conn *c, void *ctx)
{
	struct load_q *q = ctx;
	rows_clear(&q->rows);
	if (!(q->rows.keys = json_array()))
		return DB_ERROR;
	return cpdb_signing_keys(c, q->overlap_s, on_row, &q->rows);
}

/* Reads the rows on `c` (NULL: the pool's) and installs what they say:
 * the published keys opened (those held already are not opened again),
 * the JWK set, and the key set signed by those keys when its version
 * changed. A key other than the current one that cannot be opened (sealed
 * with another CP_SIGNING_KEK) is published but does not sign the set;
 * the current one must open. What an older snapshot read (a transaction
 * begun before another's change) is not installed over a newer one. Into
 * `current` (may be NULL), the current key of the rows this call read.
 * Returns 0, or -1 with `err` (the keys in use stay). */
static int load(struct cp_signing *s, struct db_conn *c, struct jwk *current, char *err, size_t errlen)
{
	static struct log_limit unopened;
	struct load_q q = { .overlap_s = s->overlap_s };
	enum db_status st = c ? load_tx(c, &q) : db_tx(s->db, DB_AUTOCOMMIT, load_tx, &q);
	struct jwk held[HELD_MAX];
	size_t n = 0;
	char *keyset = NULL, why[400];
	json_t *jwks = NULL;
	int rc = -1;
	if (st != DB_OK || q.rows.bad) {
		snprintf(err, errlen, "the signing keys cannot be read (%s)", db_status_str(st));
		goto out;
	}
	if (!q.rows.current) {
		snprintf(err, errlen, "no signing key is current (control-plane rotate-key makes one)");
		goto out;
	}
	for (size_t i = 0; i < q.rows.n; i++) {
		const struct jwk *have = NULL;
		pthread_mutex_lock(&s->lock);
		for (size_t k = 0; k < s->nheld && !have; k++)
			if (!strcmp(s->held[k].kid, q.rows.r[i].kid))
				have = &s->held[k];
		int copied = have ? copy_key(have, &held[n]) : -1;
		pthread_mutex_unlock(&s->lock);
		const struct row *row = &q.rows.r[i];
		int prev = s->have_prev && !strcmp(row->kek_id, s->kek_prev_id);
		if (copied == 0 || open_sealed(prev ? s->kek_prev : s->kek, prev ? s->kek_prev_id : s->kek_id,
		                               prev ? "CP_SIGNING_KEK_PREVIOUS" : "CP_SIGNING_KEK", row, &held[n], why,
		                               sizeof why) == 0) {
			n++;
		} else if (q.rows.r[i].current) {
			snprintf(err, errlen, "%s", why);
			goto out;
		} else {
			log_write_limited(&unopened, LOG_ERROR, NULL, NULL, "signing: %s; it is published but does not "
			                  "sign the key set (control-plane retire-key %s drops it)", why, q.rows.r[i].kid);
		}
	}
	if (current && copy_key(&held[0], current) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	int older = q.rows.set_ver < s->set_ver;
	int resign = q.rows.set_ver != s->set_ver || !s->keyset;
	pthread_mutex_unlock(&s->lock);
	if (older) {
		rc = 0; /* a newer view is installed already */
		goto out;
	}
	if (resign && !(keyset = keyset_sign(held, n, q.rows.set_ver, (int64_t)time(NULL), CP_ISSUER))) {
		snprintf(err, errlen, "cannot sign the key set");
		goto out;
	}
	if (!(jwks = json_pack("{sO}", "keys", q.rows.keys))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	if (q.rows.set_ver < s->set_ver) { /* installed meanwhile */
		pthread_mutex_unlock(&s->lock);
		rc = 0;
		goto out;
	}
	if (s->held[0].kid[0] && strcmp(s->held[0].kid, held[0].kid) != 0)
		log_info(NULL, "signing key %s is current (was %s)", held[0].kid, s->held[0].kid);
	for (size_t k = 0; k < s->nheld; k++)
		jwk_clear(&s->held[k]);
	memcpy(s->held, held, n * sizeof *held);
	s->nheld = n;
	n = 0;
	s->activated_at = q.rows.activated_at;
	json_decref(s->jwks);
	s->jwks = jwks;
	jwks = NULL;
	if (keyset) {
		free(s->keyset);
		s->keyset = keyset;
		s->set_ver = q.rows.set_ver;
		keyset = NULL;
	}
	s->loaded_ms = deadline_mono_ms();
	pthread_mutex_unlock(&s->lock);
	rc = 0;
out:
	if (rc != 0 && current)
		jwk_clear(current);
	for (size_t k = 0; k < n; k++)
		jwk_clear(&held[k]);
	free(keyset);
	json_decref(jwks);
	rows_clear(&q.rows);
	return rc;
}

/* ---- the first key ---- */

static json_t *audit_view(const char *kid, const char *state)
{
	return json_pack("{ss ss}", "kid", kid, "state", state);
}

/* Seals `k` and inserts it in `state`. */
static enum db_status insert_key(struct db_conn *c, const unsigned char kek[32], const char *kek_id,
                                 const struct jwk *k, const char *state, int64_t retired_at)
{
	json_t *pub = jwk_public_json(k);
	char *pubs = pub ? json_dumps(pub, JSON_COMPACT) : NULL;
	char *sealed = secret_seal(kek, k->private_pem, strlen(k->private_pem));
	enum db_status st = DB_ERROR;
	if (pubs && sealed)
		st = retired_at ? cpdb_signing_key_previous(c, k->kid, pubs, sealed, kek_id, retired_at)
		                : cpdb_signing_key_insert(c, k->kid, state, pubs, sealed, kek_id);
	json_decref(pub);
	free(pubs);
	free(sealed);
	return st;
}

/* A new key, sealed and inserted in `state` (current or staged); its kid
 * into `kid`. */
static enum db_status make_key(struct db_conn *c, const unsigned char kek[32], const char *kek_id, const char *state,
                               char kid[64])
{
	struct jwk k;
	if (jwk_generate(&k) != 0)
		return DB_ERROR;
	enum db_status st = insert_key(c, kek, kek_id, &k, state, 0);
	snprintf(kid, 64, "%s", k.kid);
	jwk_clear(&k);
	return st;
}

struct first_q {
	const unsigned char *kek;
	const char *kek_id, *dir, *actor;
	int64_t overlap_s;
	char kid[64];
	int made, imported;
	char err[300];
};

/* Imports the ring of a CP_SIGNING_KEYS_DIR: current, next (staged), and
 * the keys retired within the overlap (previous). */
static enum db_status import_ring(struct db_conn *c, struct first_q *q)
{
	struct keyring *kr = keyring_open_existing(q->dir, q->overlap_s, q->err, sizeof q->err);
	if (!kr)
		return q->err[0] ? DB_ERROR : DB_NOT_FOUND; /* a ring that cannot be read; none */
	struct keyring_key *keys = NULL;
	size_t n = 0;
	enum db_status st = DB_ERROR;
	if (keyring_keys(kr, &keys, &n) != 0) {
		snprintf(q->err, sizeof q->err, "cannot read the keys of %s", q->dir);
		goto out;
	}
	st = DB_OK;
	for (size_t i = 0; i < n && st == DB_OK; i++) {
		const char *state = keys[i].role == KEYRING_CURRENT ? "current"
		                    : keys[i].role == KEYRING_NEXT  ? "staged"
		                                                    : "previous";
		st = insert_key(c, q->kek, q->kek_id, &keys[i].key, state,
		                keys[i].role == KEYRING_RETIRED ? keys[i].retired_at : 0);
		if (st == DB_OK)
			st = cp_audit_operator(c, q->actor, "signing_key.import", "signing_key", keys[i].key.kid, NULL,
			           audit_view(keys[i].key.kid, state));
		if (keys[i].role == KEYRING_CURRENT)
			snprintf(q->kid, sizeof q->kid, "%s", keys[i].key.kid);
	}
	q->imported = st == DB_OK ? (int)n : 0;
out:
	keyring_keys_free(keys, n);
	keyring_free(kr);
	return st;
}

static enum db_status first_tx(struct db_conn *c, void *ctx)
{
	struct first_q *q = ctx;
	json_t *cur = NULL;
	q->made = q->imported = 0;
	q->err[0] = '\0';
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = cpdb_signing_key_get(c, NULL, "current", &cur);
	json_decref(cur);
	if (st != DB_NOT_FOUND)
		return st; /* DB_OK: a key is current already */
	if (q->dir) {
		st = import_ring(c, q);
		if (st != DB_NOT_FOUND)
			return st;
	}
	st = make_key(c, q->kek, q->kek_id, "current", q->kid);
	if (st == DB_OK)
		st = cp_audit_operator(c, q->actor, "signing_key.create", "signing_key", q->kid, NULL, audit_view(q->kid, "current"));
	q->made = st == DB_OK;
	return st;
}

void cp_signing_actor(char *out, size_t len)
{
	char host[128] = "";
	const char *user = getenv("USER");
	if (gethostname(host, sizeof host - 1) != 0 || !host[0])
		snprintf(host, sizeof host, "unknown");
	snprintf(out, len, "%s@%s", user && *user ? user : "control-plane", host);
}

struct cp_signing *cp_signing_open(struct db_pool *db, const char *kek_hex, const char *prev_hex,
                                   int64_t overlap_s, const char *import_dir, char *err, size_t errlen)
{
	struct cp_signing *s = calloc(1, sizeof *s);
	char actor[300];
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->db = db;
	s->overlap_s = overlap_s;
	pthread_mutex_init(&s->lock, NULL);
	if (kek_parse(kek_hex, s->kek, s->kek_id, err, errlen) != 0)
		goto fail;
	if (prev_hex && kek_prev_parse(prev_hex, s->kek_id, s->kek_prev, s->kek_prev_id, err, errlen) != 0)
		goto fail;
	s->have_prev = prev_hex != NULL;
	cp_signing_actor(actor, sizeof actor);
	struct first_q q = { .kek = s->kek, .kek_id = s->kek_id, .dir = import_dir, .actor = actor,
		                 .overlap_s = overlap_s };
	enum db_status st = db_tx(db, DB_READ_COMMITTED, first_tx, &q);
	if (st != DB_OK) {
		snprintf(err, errlen, "the signing keys cannot be prepared: %s", q.err[0] ? q.err : db_status_str(st));
		goto fail;
	}
	if (q.imported)
		log_info(NULL, "imported %d signing key(s) of %s into the database; signing key %s is current",
		         q.imported, import_dir, q.kid);
	else if (q.made)
		log_info(NULL, "created signing key %s in the database", q.kid);
	if (load(s, NULL, NULL, err, errlen) != 0)
		goto fail;
	return s;
fail:
	cp_signing_free(s);
	return NULL;
}

void cp_signing_free(struct cp_signing *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s->kek, sizeof s->kek);
	OPENSSL_cleanse(s->kek_prev, sizeof s->kek_prev);
	for (size_t k = 0; k < s->nheld; k++)
		jwk_clear(&s->held[k]);
	json_decref(s->jwks);
	free(s->keyset);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- signing ---- */

int cp_signing_configured(const struct cp_app *app)
{
	return app->signing || app->keys;
}

int cp_signing_key(struct cp_app *app, struct db_conn *c, struct jwk *key)
{
	struct cp_signing *s = app->signing;
	char err[400];
	memset(key, 0, sizeof *key);
	if (!s)
		return app->keys ? keyring_current(app->keys, key) : -1;
	/* The current key as this transaction sees the rows: a rotation is
	 * followed at once, whichever replica made it. */
	if (load(s, c, key, err, sizeof err) != 0) {
		log_error(NULL, "signing: %s", err);
		return -1;
	}
	return 0;
}

json_t *cp_signing_jwks(struct cp_app *app)
{
	struct cp_signing *s = app->signing;
	char err[400];
	if (!s)
		return app->keys ? keyring_jwks(app->keys) : NULL;
	pthread_mutex_lock(&s->lock);
	int stale = deadline_mono_ms() - s->loaded_ms >= JWKS_MAX_AGE_MS;
	pthread_mutex_unlock(&s->lock);
	if (stale && load(s, NULL, NULL, err, sizeof err) != 0)
		log_warn_limited(NULL, "signing: %s; serving the JWK set read last", err);
	pthread_mutex_lock(&s->lock);
	json_t *j = json_deep_copy(s->jwks);
	pthread_mutex_unlock(&s->lock);
	return j;
}

char *cp_signing_keyset(struct cp_app *app, int64_t *ver)
{
	struct cp_signing *s = app->signing;
	char err[400];
	if (!s)
		return NULL;
	pthread_mutex_lock(&s->lock);
	int stale = deadline_mono_ms() - s->loaded_ms >= JWKS_MAX_AGE_MS;
	pthread_mutex_unlock(&s->lock);
	if (stale && load(s, NULL, NULL, err, sizeof err) != 0)
		log_warn_limited(NULL, "signing: %s; serving the key set read last", err);
	pthread_mutex_lock(&s->lock);
	char *doc = s->keyset ? strdup(s->keyset) : NULL;
	*ver = s->set_ver;
	pthread_mutex_unlock(&s->lock);
	return doc;
}

void cp_signing_metrics(struct cp_app *app, FILE *out)
{
	struct cp_signing *s = app->signing;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	int64_t at = s->activated_at;
	pthread_mutex_unlock(&s->lock);
	fprintf(out, "# HELP cp_signing_key_age_seconds Time since the current signing key began to sign.\n"
	             "# TYPE cp_signing_key_age_seconds gauge\ncp_signing_key_age_seconds %lld\n",
	        at > 0 ? (long long)(time(NULL) - at) : 0LL);
}

/* ---- the operator's commands ---- */

struct op_q {
	const unsigned char *kek;
	const char *kek_id, *actor, *kid_in;
	int rotate;
	int64_t overlap_s;          /* rotate: CP_KEY_OVERLAP */
	char kid[64], old[64];
	char err[300];
};

static const char *jstr(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* Refuses a command whose CP_SIGNING_KEK did not seal the key in `state`
 * (when there is one): a key it sealed could not be opened by the
 * replicas, which would stop signing. */
static enum db_status same_kek(struct db_conn *c, struct op_q *q, const char *state)
{
	json_t *k = NULL;
	enum db_status st = cpdb_signing_key_get(c, NULL, state, &k);
	if (st == DB_NOT_FOUND)
		return DB_OK;
	if (st == DB_OK && strcmp(jstr(k, "kek_id"), q->kek_id) != 0) {
		snprintf(q->err, sizeof q->err, "CP_SIGNING_KEK here (%s) is not the key-encryption key that sealed the %s "
		         "signing key %s (%s): the replicas could not open a key sealed with it; nothing was changed",
		         q->kek_id, state, jstr(k, "kid"), jstr(k, "kek_id"));
		st = DB_ROLLBACK;
	}
	json_decref(k);
	return st;
}

static enum db_status stage_tx(struct db_conn *c, void *ctx)
{
	struct op_q *q = ctx;
	json_t *staged = NULL;
	q->err[0] = '\0';
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = same_kek(c, q, "current");
	if (st == DB_OK)
		st = cpdb_signing_key_get(c, NULL, "staged", &staged);
	if (st == DB_OK) {
		snprintf(q->err, sizeof q->err, "key %s is staged already: rotate-key makes it sign, retire-key %s drops it",
		         jstr(staged, "kid"), jstr(staged, "kid"));
		json_decref(staged);
		return DB_ROLLBACK;
	}
	if (st != DB_NOT_FOUND)
		return st;
	st = make_key(c, q->kek, q->kek_id, "staged", q->kid);
	if (st == DB_OK)
		st = cp_audit_operator(c, q->actor, "signing_key.stage", "signing_key", q->kid, NULL, audit_view(q->kid, "staged"));
	return st;
}

static enum db_status rotate_tx(struct db_conn *c, void *ctx)
{
	struct op_q *q = ctx;
	json_t *staged = NULL, *cur = NULL;
	q->err[0] = q->old[0] = '\0';
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = same_kek(c, q, "current");
	if (st == DB_OK)
		st = same_kek(c, q, "staged");
	/* Without a staged key the new key set is signed by the new key and
	 * the one it replaces, which holders trust; with no overlap the old
	 * one is gone at once and the set is signed by a key no holder knows. */
	if (st == DB_OK && q->overlap_s == 0) {
		st = cpdb_signing_key_get(c, NULL, "staged", &staged);
		json_decref(staged);
		staged = NULL;
		if (st == DB_NOT_FOUND) {
			snprintf(q->err, sizeof q->err, "no key is staged and CP_KEY_OVERLAP is 0: no data plane or router "
			         "could follow the new key (its key set would be signed by it alone); stage-key first, let "
			         "them take it (dp_keyset_version), then rotate-key; nothing was changed");
			return DB_ROLLBACK;
		}
	}
	if (st == DB_OK && (st = cpdb_signing_key_get(c, NULL, "current", &cur)) == DB_OK) {
		snprintf(q->old, sizeof q->old, "%s", jstr(cur, "kid"));
		json_decref(cur);
		st = cpdb_signing_key_set_state(c, q->old, "previous");
		if (st == DB_OK)
			st = cp_audit_operator(c, q->actor, "signing_key.rotate", "signing_key", q->old, audit_view(q->old, "current"),
			           audit_view(q->old, "previous"));
	} else if (st == DB_NOT_FOUND) {
		st = DB_OK;
	}
	if (st != DB_OK)
		return st;
	st = cpdb_signing_key_get(c, NULL, "staged", &staged);
	int was_staged = st == DB_OK;
	if (st == DB_OK) {
		snprintf(q->kid, sizeof q->kid, "%s", jstr(staged, "kid"));
		json_decref(staged);
		st = cpdb_signing_key_set_state(c, q->kid, "current");
	} else if (st == DB_NOT_FOUND) {
		st = make_key(c, q->kek, q->kek_id, "current", q->kid);
	}
	if (st == DB_OK)
		st = cp_audit_operator(c, q->actor, "signing_key.rotate", "signing_key", q->kid, was_staged ? audit_view(q->kid, "staged") : NULL,
		           audit_view(q->kid, "current"));
	/* New documents for every region, signed with the new key. */
	if (st == DB_OK)
		st = cpdb_regions_bump_all(c);
	return st;
}

static enum db_status retire_tx(struct db_conn *c, void *ctx)
{
	struct op_q *q = ctx;
	json_t *k = NULL;
	q->err[0] = '\0';
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = cpdb_signing_key_get(c, q->kid_in, NULL, &k);
	if (st == DB_NOT_FOUND) {
		snprintf(q->err, sizeof q->err, "no signing key %s", q->kid_in);
		return DB_ROLLBACK;
	}
	if (st != DB_OK)
		return st;
	const char *state = jstr(k, "state");
	if (!strcmp(state, "current") || !strcmp(state, "retired")) {
		snprintf(q->err, sizeof q->err, !strcmp(state, "current")
		                                    ? "key %s is current: rotate-key first, then retire it"
		                                    : "key %s is retired already", q->kid_in);
		json_decref(k);
		return DB_ROLLBACK;
	}
	json_t *before = audit_view(q->kid_in, state);
	json_decref(k);
	st = cpdb_signing_key_set_state(c, q->kid_in, "retired");
	if (st == DB_OK)
		st = cp_audit_operator(c, q->actor, "signing_key.retire", "signing_key", q->kid_in, before, audit_view(q->kid_in, "retired"));
	else
		json_decref(before);
	snprintf(q->kid, sizeof q->kid, "%s", q->kid_in);
	return st;
}

static int run_op(struct db_pool *db, db_tx_fn fn, struct op_q *q, char kid[64], char *err, size_t errlen)
{
	enum db_status st = db_tx(db, DB_READ_COMMITTED, fn, q);
	if (st != DB_OK) {
		snprintf(err, errlen, "%s", q->err[0] ? q->err : db_status_str(st));
		return -1;
	}
	if (kid)
		snprintf(kid, 64, "%s", q->kid);
	return 0;
}

/* A command that seals a key: run with the KEK parsed, then wiped. */
static int sealing_op(struct db_pool *db, db_tx_fn fn, const char *kek_hex, int64_t overlap_s, const char *actor,
                      char kid[64], char *err, size_t errlen)
{
	unsigned char kek[32];
	char kek_id[17];
	if (kek_parse(kek_hex, kek, kek_id, err, errlen) != 0)
		return -1;
	struct op_q q = { .kek = kek, .kek_id = kek_id, .actor = actor, .overlap_s = overlap_s };
	int rc = run_op(db, fn, &q, kid, err, errlen);
	OPENSSL_cleanse(kek, sizeof kek);
	return rc;
}

int cp_signing_stage(struct db_pool *db, const char *kek_hex, const char *actor, char kid[64], char *err,
                     size_t errlen)
{
	return sealing_op(db, stage_tx, kek_hex, -1, actor, kid, err, errlen);
}

int cp_signing_rotate(struct db_pool *db, const char *kek_hex, int64_t overlap_s, const char *actor, char kid[64],
                      char *err, size_t errlen)
{
	return sealing_op(db, rotate_tx, kek_hex, overlap_s, actor, kid, err, errlen);
}

int cp_signing_retire(struct db_pool *db, const char *kid, const char *actor, char *err, size_t errlen)
{
	struct op_q q = { .actor = actor, .kid_in = kid };
	return run_op(db, retire_tx, &q, NULL, err, errlen);
}

/* ---- a new key-encryption key ---- */

struct reseal_row {
	char kid[64], state[16], kek_id[17];
	char *sealed;
};

struct reseal_q {
	const unsigned char *kek, *prev;
	const char *kek_id, *prev_id, *actor;
	struct reseal_row *rows;
	size_t n, cap;
	int resealed, already, left, bad;
	char err[400];
};

static void on_sealed(const struct cpdb_signing_key *k, void *arg)
{
	struct reseal_q *q = arg;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		struct reseal_row *r = realloc(q->rows, cap * sizeof *r);
		if (!r) {
			q->bad = 1;
			return;
		}
		q->rows = r;
		q->cap = cap;
	}
	struct reseal_row *w = &q->rows[q->n];
	snprintf(w->kid, sizeof w->kid, "%s", k->kid);
	snprintf(w->state, sizeof w->state, "%s", k->state);
	snprintf(w->kek_id, sizeof w->kek_id, "%s", k->kek_id);
	w->sealed = k->sealed ? strdup(k->sealed) : NULL;
	q->bad |= k->sealed && !w->sealed;
	q->n++;
}

static void reseal_rows_clear(struct reseal_q *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->rows[i].sealed);
	q->n = 0;
}

/* Every row sealed under the previous KEK: opened with it, checked (the
 * key its kid names), sealed under the new one; a row already under the
 * new one is left; one under neither refuses the whole change, unless it
 * is retired (never opened again). */
static enum db_status reseal_tx(struct db_conn *c, void *ctx)
{
	struct reseal_q *q = ctx;
	q->err[0] = '\0';
	q->resealed = q->already = q->left = 0;
	reseal_rows_clear(q);
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = cpdb_signing_keys_all(c, on_sealed, q);
	if (st == DB_OK && q->bad)
		st = DB_ERROR;
	for (size_t i = 0; i < q->n && st == DB_OK; i++) {
		struct reseal_row *r = &q->rows[i];
		if (!strcmp(r->kek_id, q->kek_id)) {
			q->already++;
			continue;
		}
		if (strcmp(r->kek_id, q->prev_id) != 0 || !r->sealed) {
			if (!strcmp(r->state, "retired")) {
				q->left++;
				continue;
			}
			snprintf(q->err, sizeof q->err, "the %s signing key %s is sealed with the key-encryption key %s, "
			         "neither CP_SIGNING_KEK (%s) nor CP_SIGNING_KEK_PREVIOUS (%s): nothing was changed",
			         r->state, r->kid, r->kek_id, q->kek_id, q->prev_id);
			return DB_ROLLBACK;
		}
		struct row one = { .sealed = r->sealed };
		struct jwk key;
		snprintf(one.kid, sizeof one.kid, "%s", r->kid);
		snprintf(one.kek_id, sizeof one.kek_id, "%s", r->kek_id);
		if (open_sealed(q->prev, q->prev_id, "CP_SIGNING_KEK_PREVIOUS", &one, &key, q->err, sizeof q->err) != 0) {
			snprintf(q->err + strlen(q->err), sizeof q->err - strlen(q->err), ": nothing was changed");
			return DB_ROLLBACK;
		}
		char *sealed = secret_seal(q->kek, key.private_pem, strlen(key.private_pem));
		jwk_clear(&key);
		if (!sealed)
			return DB_ERROR;
		st = cpdb_signing_key_reseal(c, r->kid, sealed, q->kek_id);
		free(sealed);
		if (st == DB_OK)
			st = cp_audit_operator(c, q->actor, "signing_key.reseal", "signing_key", r->kid,
			                       json_pack("{ss ss}", "kid", r->kid, "kek_id", q->prev_id),
			                       json_pack("{ss ss}", "kid", r->kid, "kek_id", q->kek_id));
		q->resealed += st == DB_OK;
	}
	return st;
}

int cp_signing_reseal(struct db_pool *db, const char *kek_hex, const char *prev_hex, const char *actor,
                      struct cp_reseal_result *out, char *err, size_t errlen)
{
	unsigned char kek[32], prev[32];
	char kek_id[17], prev_id[17];
	int rc = -1;
	memset(out, 0, sizeof *out);
	if (kek_parse(kek_hex, kek, kek_id, err, errlen) != 0)
		goto wipe;
	if (!prev_hex) {
		snprintf(err, errlen, "CP_SIGNING_KEK_PREVIOUS: required: the key-encryption key the keys are sealed "
		                      "with now (CP_SIGNING_KEK is the new one)");
		goto wipe;
	}
	if (kek_prev_parse(prev_hex, kek_id, prev, prev_id, err, errlen) != 0)
		goto wipe;
	struct reseal_q q = { .kek = kek, .prev = prev, .kek_id = kek_id, .prev_id = prev_id, .actor = actor };
	enum db_status st = db_tx(db, DB_READ_COMMITTED, reseal_tx, &q);
	if (st != DB_OK) {
		snprintf(err, errlen, "%s", q.err[0] ? q.err : db_status_str(st));
	} else {
		out->resealed = q.resealed;
		out->already = q.already;
		out->left = q.left;
		snprintf(out->kek_id, sizeof out->kek_id, "%s", kek_id);
		snprintf(out->prev_id, sizeof out->prev_id, "%s", prev_id);
		rc = 0;
	}
	reseal_rows_clear(&q);
	free(q.rows);
wipe:
	OPENSSL_cleanse(kek, sizeof kek);
	OPENSSL_cleanse(prev, sizeof prev);
	return rc;
}

/* ---- previous keys whose overlap has passed ---- */

struct age_q {
	const char *actor;
	int64_t overlap_s;
	char kid[HELD_MAX][64];
	size_t n;
};

static void on_aged(const char *kid, void *arg)
{
	struct age_q *q = arg;
	if (q->n < HELD_MAX)
		snprintf(q->kid[q->n++], sizeof q->kid[0], "%s", kid);
}

static enum db_status age_tx(struct db_conn *c, void *ctx)
{
	struct age_q *q = ctx;
	q->n = 0;
	enum db_status st = cpdb_signing_keys_lock(c);
	if (st == DB_OK)
		st = cpdb_signing_keys_aged(c, q->overlap_s, on_aged, q);
	for (size_t i = 0; i < q->n && st == DB_OK; i++) {
		st = cpdb_signing_key_set_state(c, q->kid[i], "retired");
		if (st == DB_OK)
			st = cp_audit_operator(c, q->actor, "signing_key.retire", "signing_key", q->kid[i],
			                       audit_view(q->kid[i], "previous"), audit_view(q->kid[i], "retired"));
	}
	return st;
}

void cp_signing_age(struct cp_app *app)
{
	char actor[360], host[300];
	if (!app->signing)
		return;
	cp_signing_actor(host, sizeof host);
	snprintf(actor, sizeof actor, "%s (CP_KEY_OVERLAP passed)", host);
	struct age_q q = { .actor = actor, .overlap_s = app->signing->overlap_s };
	if (db_tx(app->db, DB_READ_COMMITTED, age_tx, &q) != DB_OK) {
		log_warn(NULL, "signing: retiring the keys whose overlap passed failed; will retry");
		return;
	}
	for (size_t i = 0; i < q.n; i++)
		log_info(NULL, "signing key %s retired: CP_KEY_OVERLAP has passed since it stopped signing", q.kid[i]);
}

struct pub_q {
	int64_t overlap_s;
	json_t *keys;
};

static void on_pub(const struct cpdb_signing_key *k, void *arg)
{
	struct pub_q *q = arg;
	json_t *j = json_loads(k->public_jwk, 0, NULL);
	if (j)
		json_array_append_new(q->keys, j);
}

static enum db_status pub_tx(struct db_conn *c, void *ctx)
{
	struct pub_q *q = ctx;
	json_array_clear(q->keys);
	return cpdb_signing_keys(c, q->overlap_s, on_pub, q);
}

json_t *cp_signing_db_jwks(struct db_pool *db, int64_t overlap_s, char *err, size_t errlen)
{
	struct pub_q q = { .overlap_s = overlap_s, .keys = json_array() };
	enum db_status st = q.keys ? db_tx(db, DB_AUTOCOMMIT, pub_tx, &q) : DB_ERROR;
	if (st != DB_OK || !json_array_size(q.keys)) {
		snprintf(err, errlen, st != DB_OK ? "the signing keys cannot be read (%s)" : "no signing keys%s",
		         st != DB_OK ? db_status_str(st) : "");
		json_decref(q.keys);
		return NULL;
	}
	return json_pack("{so}", "keys", q.keys);
}

static enum db_status list_tx(struct db_conn *c, void *ctx)
{
	json_t **items = ctx;
	json_decref(*items);
	*items = NULL;
	return cpdb_signing_keys_list(c, items);
}

json_t *cp_signing_db_list(struct db_pool *db, char *err, size_t errlen)
{
	json_t *items = NULL;
	enum db_status st = db_tx(db, DB_AUTOCOMMIT, list_tx, &items);
	if (st != DB_OK) {
		snprintf(err, errlen, "the signing keys cannot be read (%s)", db_status_str(st));
		json_decref(items);
		return NULL;
	}
	return items;
}
