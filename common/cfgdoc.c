/* Regional config documents: build, sign, verify, index. */
#include "cfgdoc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "cfgdoc_envelope.h"
#include "jws.h"
#include "names.h"
#include "residency.h"
#include "seal.h"
#include "secret.h"

const char *const cfgdoc_result_names[CFGDOC__COUNT] = {
	[CFGDOC_OK] = "ok",
	[CFGDOC_MALFORMED] = "malformed",
	[CFGDOC_BAD_ALG] = "alg",
	[CFGDOC_UNKNOWN_KID] = "kid",
	[CFGDOC_BAD_SIGNATURE] = "signature",
	[CFGDOC_BAD_ISSUER] = "issuer",
	[CFGDOC_WRONG_AUDIENCE] = "audience",
	[CFGDOC_NOT_YET_VALID] = "not_yet_valid",
	[CFGDOC_EXPIRED] = "expired",
	[CFGDOC_ROLLBACK] = "rollback",
	[CFGDOC_BAD_CONTENT] = "content",
};

/* ---- lookup tables ---- */

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t table_cap(size_t n)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap *= 2;
	return cap;
}

/* Inserts index i under `id`; returns -1 if `id` is there already (or,
 * never with a table of table_cap() slots, when it is full). */
static int slot_put(uint32_t *slots, size_t cap, const char *id, uint32_t i,
                    const char *(*id_of)(const struct cfgdoc *, uint32_t), const struct cfgdoc *d)
{
	size_t s = hash(id) & (cap - 1);
	for (size_t probes = 0; probes < cap; probes++, s = (s + 1) & (cap - 1)) {
		if (!slots[s]) {
			slots[s] = i + 1;
			return 0;
		}
		if (!strcmp(id_of(d, slots[s] - 1), id))
			return -1;
	}
	return -1;
}

static const char *key_id(const struct cfgdoc *d, uint32_t i) { return d->keys[i].id; }
static const char *tenant_id(const struct cfgdoc *d, uint32_t i) { return d->tenants[i].id; }
static const char *moved_key(const struct cfgdoc *d, uint32_t i) { return d->moved[i].key; }

static const struct cfgdoc_key *own_key(const struct cfgdoc *d, const char *id)
{
	if (!d->key_cap)
		return NULL;
	size_t s = hash(id) & (d->key_cap - 1);
	for (size_t probes = 0; probes < d->key_cap && d->key_slots[s]; probes++, s = (s + 1) & (d->key_cap - 1))
		if (!strcmp(d->keys[d->key_slots[s] - 1].id, id))
			return &d->keys[d->key_slots[s] - 1];
	return NULL;
}

static const struct cfgdoc_tenant *own_tenant(const struct cfgdoc *d, const char *id)
{
	if (!d->tenant_cap)
		return NULL;
	size_t s = hash(id) & (d->tenant_cap - 1);
	for (size_t probes = 0; probes < d->tenant_cap && d->tenant_slots[s];
	     probes++, s = (s + 1) & (d->tenant_cap - 1))
		if (!strcmp(d->tenants[d->tenant_slots[s] - 1].id, id))
			return &d->tenants[d->tenant_slots[s] - 1];
	return NULL;
}

static const char *removed_id(const struct cfgdoc *d, uint32_t i) { return d->removed[i]; }

static int is_removed(const struct cfgdoc *d, const char *id)
{
	if (!d->removed_cap)
		return 0;
	size_t s = hash(id) & (d->removed_cap - 1);
	for (size_t probes = 0; probes < d->removed_cap && d->removed_slots[s];
	     probes++, s = (s + 1) & (d->removed_cap - 1))
		if (!strcmp(d->removed[d->removed_slots[s] - 1], id))
			return 1;
	return 0;
}

/* A base tenant the layers replaced or removed. */
static int masked(const struct cfgdoc *d, const char *id)
{
	return own_tenant(d, id) || is_removed(d, id);
}

const struct cfgdoc_key *cfgdoc_find_key(const struct cfgdoc *d, const char *id)
{
	const struct cfgdoc_key *k = own_key(d, id);
	if (k || !d->base)
		return k;
	if (!(k = own_key(d->base, id)) || masked(d, d->base->tenants[k->tenant].id))
		return NULL;
	return k;
}

const struct cfgdoc_tenant *cfgdoc_find_tenant(const struct cfgdoc *d, const char *id)
{
	const struct cfgdoc_tenant *t = own_tenant(d, id);
	if (t || !d->base || is_removed(d, id))
		return t;
	return own_tenant(d->base, id);
}

static int owns_key(const struct cfgdoc *d, const struct cfgdoc_key *k)
{
	return d->nkeys && k >= d->keys && k < d->keys + d->nkeys;
}

static int owns_tenant(const struct cfgdoc *d, const struct cfgdoc_tenant *t)
{
	return d->ntenants && t >= d->tenants && t < d->tenants + d->ntenants;
}

const struct cfgdoc_tenant *cfgdoc_key_tenant(const struct cfgdoc *d, const struct cfgdoc_key *k)
{
	return owns_key(d, k) || !d->base ? &d->tenants[k->tenant] : &d->base->tenants[k->tenant];
}

const struct cfgdoc_plan *cfgdoc_tenant_plan(const struct cfgdoc *d, const struct cfgdoc_tenant *t)
{
	if (owns_tenant(d, t) || !d->base)
		return &d->plans[t->plan];
	/* A plan the newest claims no longer list (no tenant of the state
	 * should use it) keeps the limits the base gave it. */
	uint32_t i = d->base_plans[t->plan];
	return i < d->nplans ? &d->plans[i] : &d->base->plans[t->plan];
}

/* The record hash of a tenant of the state. */
static const unsigned char *tenant_hash(const struct cfgdoc *d, const struct cfgdoc_tenant *t)
{
	return owns_tenant(d, t) || !d->base ? d->thash[t - d->tenants] : d->base->thash[t - d->base->tenants];
}

const struct cfgdoc_tenant *cfgdoc_tenants_next(const struct cfgdoc *d, size_t *it)
{
	while (*it < d->ntenants + (d->base ? d->base->ntenants : 0)) {
		size_t i = (*it)++;
		if (i < d->ntenants)
			return &d->tenants[i];
		const struct cfgdoc_tenant *t = &d->base->tenants[i - d->ntenants];
		if (!masked(d, t->id))
			return t;
	}
	return NULL;
}

size_t cfgdoc_tenant_count(const struct cfgdoc *d)
{
	return d->base ? d->live_tenants : d->ntenants;
}

size_t cfgdoc_key_count(const struct cfgdoc *d)
{
	return d->base ? d->live_keys : d->nkeys;
}

const struct cfgdoc_moved *cfgdoc_find_moved(const struct cfgdoc *d, const char *id)
{
	if (!d->moved_cap)
		return NULL;
	size_t s = hash(id) & (d->moved_cap - 1);
	for (size_t probes = 0; probes < d->moved_cap && d->moved_slots[s];
	     probes++, s = (s + 1) & (d->moved_cap - 1))
		if (!strcmp(d->moved[d->moved_slots[s] - 1].key, id))
			return &d->moved[d->moved_slots[s] - 1];
	return NULL;
}

const struct cfgdoc_region *cfgdoc_find_region(const struct cfgdoc *d, const char *name)
{
	for (size_t i = 0; i < d->ndir; i++)
		if (!strcmp(d->dir[i].name, name))
			return &d->dir[i];
	return NULL;
}

void cfgdoc_free(struct cfgdoc *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) > 0)
		return;
	cfgdoc_free(d->base);
	free(d->thash);
	free(d->removed);
	free(d->removed_slots);
	free(d->base_plans);
	free(d->dir);
	free(d->plans);
	free(d->tenants);
	free(d->keys);
	free(d->key_slots);
	free(d->tenant_slots);
	free(d->moved);
	free(d->moved_slots);
	for (size_t i = 0; i < d->nstreams; i++) {
		free(d->streams[i].url);
		free(d->streams[i].sealed);
	}
	free(d->streams);
	for (size_t i = 0; i < d->nstream_hosts; i++)
		free(d->stream_hosts[i]);
	free(d->stream_hosts);
	for (size_t i = 0; i < d->nstream_s3_regions; i++)
		free(d->stream_s3_regions[i]);
	free(d->stream_s3_regions);
	free(d->token);
	free(d);
}

/* ---- trust bundle ---- */

int cfgdoc_trust_from_json(const json_t *set, const char *what, struct cfgdoc_trust *t, char *err, size_t errlen)
{
	json_t *keys = json_object_get(set, "keys"), *k;
	size_t i;

	memset(t, 0, sizeof *t);
	if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 64) {
		snprintf(err, errlen, "%s: expected a JWK set {\"keys\": [1 to 64 keys]}", what);
		return -1;
	}
	t->keys = calloc(json_array_size(keys), sizeof *t->keys);
	if (!t->keys) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	json_array_foreach(keys, i, k) {
		char why[200];
		if (jwk_from_json(k, &t->keys[t->n], why, sizeof why) != 0) {
			snprintf(err, errlen, "%s: %s", what, why);
			cfgdoc_trust_free(t);
			return -1;
		}
		t->n++;
	}
	return 0;
}

int cfgdoc_trust_load(const char *path, struct cfgdoc_trust *t, char *err, size_t errlen)
{
	json_error_t je;
	json_t *set = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	char what[600];

	memset(t, 0, sizeof *t);
	if (!set) {
		snprintf(err, errlen, "cannot read trust bundle %s: %s", path, je.text);
		return -1;
	}
	snprintf(what, sizeof what, "trust bundle %s", path);
	int rc = cfgdoc_trust_from_json(set, what, t, err, errlen);
	json_decref(set);
	return rc;
}

const struct jwk *cfgdoc_trust_find(const struct cfgdoc_trust *t, const char *kid)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->keys[i].kid, kid))
			return &t->keys[i];
	return NULL;
}

void cfgdoc_trust_free(struct cfgdoc_trust *t)
{
	for (size_t i = 0; i < t->n; i++)
		jwk_clear(&t->keys[i]);
	free(t->keys);
	memset(t, 0, sizeof *t);
}

/* ---- content ---- */

/* Splits `line` (NUL-terminated) at '|' into at most `max` fields. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	f[n++] = line;
	for (char *p = line; *p; p++)
		if (*p == '|') {
			if (n == max)
				return -1;
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

static int parse_int(const char *s, int64_t *out)
{
	if (!*s || strlen(s) > 18)
		return -1;
	int64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

static int plan_index(const struct cfgdoc *d, const char *id, uint32_t *out)
{
	for (size_t i = 0; i < d->nplans; i++)
		if (!strcmp(d->plans[i].id, id)) {
			*out = (uint32_t)i;
			return 0;
		}
	return -1;
}

/* Builds tenants, keys and their tables from the tenants text (modified in place). */
static int parse_tenants(struct cfgdoc *d, char *text, void (*pause)(void), char *detail, size_t dlen)
{
	size_t nt = 0, nk = 0, lineno = 0;
	/* Count first, to allocate once: a record starts the text or follows ';'. */
	for (const char *p = text; *p; p++) {
		if (p != text && p[-1] != ';')
			continue;
		if (*p == 't')
			nt++;
		else
			nk++;
	}
	d->tenants = calloc(nt ? nt : 1, sizeof *d->tenants);
	d->keys = calloc(nk ? nk : 1, sizeof *d->keys);
	d->tenant_cap = table_cap(nt);
	d->key_cap = table_cap(nk);
	d->tenant_slots = calloc(d->tenant_cap, sizeof *d->tenant_slots);
	d->key_slots = calloc(d->key_cap, sizeof *d->key_slots);
	if (!d->tenants || !d->keys || !d->tenant_slots || !d->key_slots) {
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	for (char *line = text, *next; line && *line; line = next) {
		char *f[6];
		next = strchr(line, ';');
		if (!next)
			goto bad; /* every record is ended */
		*next++ = '\0';
		lineno++;
		if (pause && lineno % CFGDOC_PAUSE_EVERY == 0)
			pause();
		int n = split(line, f, 6);
		if (n == 5 && !strcmp(f[0], "t") && d->ntenants < nt) {
			struct cfgdoc_tenant *t = &d->tenants[d->ntenants];
			if (!name_valid_uuid(f[1]) || !name_valid_slug(f[2]) || strlen(f[3]) != 1 ||
			    !strchr("asd", f[3][0]) || plan_index(d, f[4], &t->plan) != 0)
				goto bad;
			snprintf(t->id, sizeof t->id, "%s", f[1]);
			snprintf(t->slug, sizeof t->slug, "%s", f[2]);
			t->status = f[3][0];
			if (slot_put(d->tenant_slots, d->tenant_cap, t->id, (uint32_t)d->ntenants, tenant_id, d))
				goto bad;
			d->ntenants++;
		} else if (n == 5 && !strcmp(f[0], "k") && d->ntenants > 0 && d->nkeys < nk) {
			struct cfgdoc_key *k = &d->keys[d->nkeys];
			if (strlen(f[1]) != 24 || strspn(f[1], "0123456789abcdef") != 24 ||
			    secret_unb64url(f[2], strlen(f[2]), k->sha256, 32) != 32 ||
			    (strcmp(f[3], "w") && strcmp(f[3], "r") && strcmp(f[3], "wr")) ||
			    parse_int(f[4], &k->expires) != 0)
				goto bad;
			memcpy(k->id, f[1], 25);
			k->scopes = (strchr(f[3], 'w') ? CFGDOC_SCOPE_WRITE : 0) |
			            (strchr(f[3], 'r') ? CFGDOC_SCOPE_READ : 0);
			k->tenant = (uint32_t)d->ntenants - 1;
			d->tenants[d->ntenants - 1].nkeys++;
			if (slot_put(d->key_slots, d->key_cap, k->id, (uint32_t)d->nkeys, key_id, d))
				goto bad;
			d->nkeys++;
		} else {
			goto bad;
		}
	}
	return 0;
bad:
	snprintf(detail, dlen, "tenants record %zu is malformed or repeated", lineno);
	return -1;
}

/* The `moved` claim: "<key id, 24 hex>|<region>;" records, no key twice. */
static int parse_moved(struct cfgdoc *d, const char *text, char *detail, size_t dlen)
{
	size_t n = 0, lineno = 0;
	for (const char *p = text; *p; p++)
		n += *p == ';';
	d->moved = calloc(n ? n : 1, sizeof *d->moved);
	d->moved_cap = table_cap(n);
	d->moved_slots = calloc(d->moved_cap, sizeof *d->moved_slots);
	if (!d->moved || !d->moved_slots) {
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	for (const char *line = text, *end; *line; line = end + 1) {
		struct cfgdoc_moved *m = &d->moved[d->nmoved];
		lineno++;
		end = strchr(line, ';');
		size_t rlen = end ? (size_t)(end - line) : 0;
		if (!end || rlen < 26 || line[24] != '|' || strspn(line, "0123456789abcdef") != 24 ||
		    rlen - 25 >= sizeof m->region)
			goto bad;
		memcpy(m->key, line, 24);
		m->key[24] = '\0';
		memcpy(m->region, line + 25, rlen - 25);
		m->region[rlen - 25] = '\0';
		if (!name_valid_region(m->region) ||
		    slot_put(d->moved_slots, d->moved_cap, m->key, (uint32_t)d->nmoved, moved_key, d))
			goto bad;
		d->nmoved++;
	}
	return 0;
bad:
	snprintf(detail, dlen, "moved record %zu is malformed or repeated", lineno);
	return -1;
}

static int copy_str(const json_t *v, char *out, size_t len)
{
	const char *s = json_string_value(v);
	if (!s || strlen(s) >= len)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* A JSON string of 1 to max-1 bytes (0 to max-1 with `empty_ok`) and no
 * NUL inside, copied into out[max]. */
static int copy_str_n(const json_t *v, char *out, size_t max, int empty_ok)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0;
	if (!s || n != json_string_length(v) || n >= max || (!n && !empty_ok))
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

/* The same, malloc'd. */
static char *dup_str_n(const json_t *v, size_t max)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0;
	if (!s || n != json_string_length(v) || !n || n >= max)
		return NULL;
	return strdup(s);
}

/* A required integer member >= 0. */
static int member_count(const json_t *o, const char *name, int64_t *out)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* An array of at most RESIDENCY_MAX_RULES strings of 1 to max-1 bytes. */
static int str_list(const json_t *v, size_t max, char ***out, size_t *n)
{
	size_t i;
	json_t *e;
	if (!json_is_array(v) || json_array_size(v) > RESIDENCY_MAX_RULES)
		return -1;
	if (!(*out = calloc(json_array_size(v) + 1, sizeof **out)))
		return -1;
	json_array_foreach(v, i, e) {
		if (!((*out)[*n] = dup_str_n(e, max)))
			return -1;
		(*n)++;
	}
	return 0;
}

/* The `stream_rules` claim: {"hosts":[...],"s3_regions":[...]}. */
static int parse_stream_rules(struct cfgdoc *d, const json_t *v, char *detail, size_t dlen)
{
	if (!json_is_object(v) ||
	    str_list(json_object_get(v, "hosts"), RESIDENCY_MAX_PATTERN + 1, &d->stream_hosts,
	             &d->nstream_hosts) ||
	    str_list(json_object_get(v, "s3_regions"), sizeof d->streams->s3_region, &d->stream_s3_regions,
	             &d->nstream_s3_regions)) {
		snprintf(detail, dlen, "claim 'stream_rules' is malformed");
		return -1;
	}
	return 0;
}

static int stream_id_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One member of the `streams` claim into `s`. */
static int parse_stream(struct cfgdoc_stream *s, const json_t *o)
{
	json_t *paused = json_object_get(o, "paused"), *sealed = json_object_get(o, "secret");
	if (!json_is_object(o) || copy_str_n(json_object_get(o, "id"), s->id, sizeof s->id, 0) ||
	    !name_valid_uuid(s->id) ||
	    copy_str_n(json_object_get(o, "tenant"), s->tenant, sizeof s->tenant, 0) ||
	    !name_valid_uuid(s->tenant) ||
	    copy_str_n(json_object_get(o, "kind"), s->kind, sizeof s->kind, 0) ||
	    member_count(o, "revision", &s->revision) || !json_is_boolean(paused) ||
	    member_count(o, "since", &s->since) || member_count(o, "resume", &s->resume) ||
	    member_count(o, "replay", &s->replay) || member_count(o, "replay_since", &s->replay_since))
		return -1;
	s->paused = json_is_true(paused);
	if (!strcmp(s->kind, "webhook") || !strcmp(s->kind, "splunk_hec")) {
		if (!(s->url = dup_str_n(json_object_get(o, "url"), RESIDENCY_MAX_URL + 1)))
			return -1;
	} else if (!strcmp(s->kind, "s3")) {
		if (!(s->url = dup_str_n(json_object_get(o, "endpoint"), RESIDENCY_MAX_URL + 1)) ||
		    copy_str_n(json_object_get(o, "bucket"), s->bucket, sizeof s->bucket, 0) ||
		    copy_str_n(json_object_get(o, "s3_region"), s->s3_region, sizeof s->s3_region, 0) ||
		    copy_str_n(json_object_get(o, "access_key_id"), s->access_key_id, sizeof s->access_key_id, 0) ||
		    copy_str_n(json_object_get(o, "prefix"), s->prefix, sizeof s->prefix, 1))
			return -1;
	} else {
		return -1;
	}
	/* Absent while the region has no stream key; never empty. */
	if (sealed && !(s->sealed = dup_str_n(sealed, SEAL_MAX_BYTES + 1)))
		return -1;
	return 0;
}

/* The `streams` claim: at most CFGDOC_MAX_STREAMS well-formed members, no
 * stream id twice. */
static int parse_streams(struct cfgdoc *d, const json_t *v, char *detail, size_t dlen)
{
	size_t i;
	json_t *e;
	const char **ids = NULL;
	int ret = -1;
	if (!json_is_array(v) || json_array_size(v) > CFGDOC_MAX_STREAMS) {
		snprintf(detail, dlen, "claim 'streams' is not an array of at most %d streams", CFGDOC_MAX_STREAMS);
		return -1;
	}
	if (!(d->streams = calloc(json_array_size(v) + 1, sizeof *d->streams)) ||
	    !(ids = calloc(json_array_size(v) + 1, sizeof *ids))) {
		snprintf(detail, dlen, "out of memory");
		goto out;
	}
	json_array_foreach(v, i, e) {
		d->nstreams++; /* counted first: cfgdoc_free frees what a bad one holds */
		if (parse_stream(&d->streams[i], e) != 0) {
			snprintf(detail, dlen, "stream %zu of claim 'streams' is malformed", i);
			goto out;
		}
		ids[i] = d->streams[i].id;
	}
	qsort(ids, d->nstreams, sizeof *ids, stream_id_cmp);
	for (i = 1; i < d->nstreams; i++)
		if (!strcmp(ids[i], ids[i - 1])) {
			snprintf(detail, dlen, "claim 'streams' names stream %s twice", ids[i]);
			goto out;
		}
	ret = 0;
out:
	free(ids);
	return ret;
}

/* The claims of a state but its tenant records: region, directory, plans,
 * moved, stream_rules and streams. */
static int parse_state_claims(struct cfgdoc *d, json_t *claims, char *detail, size_t dlen)
{
	json_t *v, *e;
	size_t i;
	const char *k;

	/* region */
	v = json_object_get(claims, "region");
	if (!json_is_object(v) || copy_str(json_object_get(v, "name"), d->self.name, sizeof d->self.name) ||
	    copy_str(json_object_get(v, "endpoint_url"), d->self.endpoint, sizeof d->self.endpoint) ||
	    copy_str(json_object_get(v, "status"), d->self.status, sizeof d->self.status)) {
		snprintf(detail, dlen, "claim 'region' is missing or malformed");
		return -1;
	}

	/* directory */
	v = json_object_get(claims, "directory");
	if (!json_is_array(v) || json_array_size(v) > 1000 ||
	    !(d->dir = calloc(json_array_size(v) + 1, sizeof *d->dir)))
		goto bad_dir;
	json_array_foreach(v, i, e) {
		struct cfgdoc_region *r = &d->dir[d->ndir++];
		if (json_array_size(e) != 3 || copy_str(json_array_get(e, 0), r->name, sizeof r->name) ||
		    copy_str(json_array_get(e, 1), r->endpoint, sizeof r->endpoint) ||
		    copy_str(json_array_get(e, 2), r->status, sizeof r->status))
			goto bad_dir;
	}

	/* plans */
	v = json_object_get(claims, "plans");
	if (!json_is_object(v) || json_object_size(v) > 1000 ||
	    !(d->plans = calloc(json_object_size(v) + 1, sizeof *d->plans)))
		goto bad_plans;
	json_object_foreach(v, k, e) {
		struct cfgdoc_plan *p = &d->plans[d->nplans++];
		int64_t *f[] = { &p->rate, &p->burst, &p->quota, &p->retention_days };
		if (strlen(k) >= sizeof p->id || json_array_size(e) != 4)
			goto bad_plans;
		strcpy(p->id, k);
		for (int j = 0; j < 4; j++) {
			json_t *n = json_array_get(e, (size_t)j);
			if (!json_is_integer(n) || json_integer_value(n) < 0)
				goto bad_plans;
			*f[j] = json_integer_value(n);
		}
	}

	/* moved: optional; a document without it moved no key away */
	v = json_object_get(claims, "moved");
	if (v && (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))) {
		snprintf(detail, dlen, "claim 'moved' is not a string");
		return -1;
	}
	if (v && parse_moved(d, json_string_value(v), detail, dlen) != 0)
		return -1;

	/* stream_rules, streams: optional; without them no stream, and no
	 * destination allowed */
	v = json_object_get(claims, "stream_rules");
	if (v && parse_stream_rules(d, v, detail, dlen) != 0)
		return -1;
	v = json_object_get(claims, "streams");
	if (v && parse_streams(d, v, detail, dlen) != 0)
		return -1;

	return 0;
bad_dir:
	snprintf(detail, dlen, "claim 'directory' is missing or malformed");
	return -1;
bad_plans:
	snprintf(detail, dlen, "claim 'plans' is missing or malformed");
	return -1;
}

struct hashes {
	unsigned char (*h)[32];
	size_t n, cap;
	void (*pause)(void);
};

static int hash_record(const char *rec, size_t len, void *arg)
{
	struct hashes *hs = arg;
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 64;
		void *p = realloc(hs->h, cap * sizeof *hs->h);
		if (!p)
			return -1;
		hs->h = p;
		hs->cap = cap;
	}
	cfgdoc_record_hash(rec, len, hs->h[hs->n++]);
	if (hs->pause && hs->n % CFGDOC_PAUSE_EVERY == 0)
		hs->pause();
	return 0;
}

/* A bulk text claim (tenants or upsert): a string of printable ASCII. */
static char *text_claim(json_t *claims, const char *name, char *detail, size_t dlen)
{
	json_t *v = json_object_get(claims, name);
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(detail, dlen, "claim '%s' is missing or not a string", name);
		return NULL;
	}
	return (char *)json_string_value(v);
}

/* Parses a tenants or upsert text (in place: the claim is ours to cut)
 * into d's own tenants and keys, with the hash of each record. */
static int parse_records(struct cfgdoc *d, char *text, void (*pause)(void), char *detail, size_t dlen)
{
	struct hashes hs = { .pause = pause };
	if (cfgdoc_each_record(text, strlen(text), hash_record, &hs) != 0) {
		free(hs.h);
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	d->thash = hs.h;
	if (parse_tenants(d, text, pause, detail, dlen) != 0)
		return -1;
	if (hs.n != d->ntenants) {
		snprintf(detail, dlen, "the tenant records do not start with a tenant");
		return -1;
	}
	return 0;
}

/* The `digest` claim, when the document has one, against `sum`. */
static int check_digest(json_t *claims, const struct cfgdoc_sum *sum, int required, char *detail,
                        size_t dlen)
{
	const char *want = json_string_value(json_object_get(claims, "digest"));
	char got[CFGDOC_DIGEST_LEN + 1];
	if (!want && !required)
		return 0;
	if (!want) {
		snprintf(detail, dlen, "claim 'digest' is missing");
		return -1;
	}
	if (cfgdoc_state_digest(claims, sum, got) != 0) {
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	if (strcmp(want, got) != 0) {
		snprintf(detail, dlen, "digest: the state reached is not the state the document describes");
		return -1;
	}
	return 0;
}

/* A required integer claim. */
static int claim_int(json_t *claims, const char *name, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* Printable ASCII but '"' and '\\': text a JSON string carries as it is. */
static int plain(const char *p, size_t n)
{
	unsigned char bad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		bad |= (unsigned char)(c < 0x20 || c > 0x7e || c == '"' || c == '\\');
	}
	return !bad;
}

/* Parses a payload (modified, then restored). The bulk member a document
 * ends with (cfgdoc_sign_text: "...,\"tenants\":\"<text>\"}") is cut out
 * before the JSON parser sees it and set as a string afterwards: the text
 * needs no unescaping, and a JSON parser's per-character work on hundreds
 * of megabytes is most of a large document's cost. Any other payload, or
 * a value that is not plain, is parsed whole. Duplicate members are
 * refused either way. */
#define BULK_MIN 4096
static json_t *load_claims(char *text, size_t len, json_error_t *je)
{
	char *end = text + len - 2, *q;
	if (len < BULK_MIN || memcmp(end, "\"}", 2) != 0 || !(q = memrchr(text, '"', (size_t)(end - text))) ||
	    end - q - 1 < BULK_MIN || q - text < 8 || q[-1] != ':' || q[-2] != '"')
		return json_loadb(text, len, JSON_REJECT_DUPLICATES, je);
	char *name = memrchr(text, '"', (size_t)(q - 2 - text));
	size_t vlen = (size_t)(end - q - 1), nlen = name ? (size_t)(q - 2 - name - 1) : 0;
	char member[33];
	if (!name || nlen == 0 || nlen >= sizeof member || !plain(q + 1, vlen))
		return json_loadb(text, len, JSON_REJECT_DUPLICATES, je);
	memcpy(member, name + 1, nlen);
	member[nlen] = '\0';
	char saved[2] = { q[1], q[2] };
	q[1] = '"';
	q[2] = '}';
	json_t *claims = json_loadb(text, (size_t)(q + 3 - text), JSON_REJECT_DUPLICATES, je);
	q[1] = saved[0];
	q[2] = saved[1];
	const char *empty = json_string_value(json_object_get(claims, member));
	if (!empty || *empty || json_object_set_new(claims, member, json_stringn_nocheck(q + 1, vlen)) != 0) {
		json_decref(claims);
		return json_loadb(text, len, JSON_REJECT_DUPLICATES, je);
	}
	return claims;
}

/* The checks all three documents and the move credential share (see
 * cfgdoc_envelope.h). */
int cfgdoc_envelope_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                           const struct cfgdoc_verify_opts *o, const char *want_aud,
                           const char *want_kind, struct cfgdoc_envelope *e, char *detail,
                           size_t dlen)
{
	enum cfgdoc_result res = CFGDOC_MALFORMED;
	json_t *hdr = NULL, *claims = NULL;
	const struct jwk *key = NULL;
	char *tok = NULL;

	memset(e, 0, sizeof *e);
	snprintf(detail, dlen, "not a compact JWS");
	if (len == 0 || (o->max_bytes && len > o->max_bytes) || memchr(token, '\0', len))
		goto out;
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
	    dot1 - token > 1024)
		goto out;

	/* 1. The header, before anything is verified: alg is pinned. */
	char hbuf[800];
	long hn = secret_unb64url(token, (size_t)(dot1 - token), hbuf, sizeof hbuf - 1);
	json_error_t je;
	if (hn <= 0 || !(hdr = json_loadb(hbuf, (size_t)hn, JSON_REJECT_DUPLICATES, &je)) ||
	    !json_is_object(hdr))
		goto out;
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	if (!alg || strcmp(alg, "ES256") != 0) {
		res = CFGDOC_BAD_ALG;
		snprintf(detail, dlen, "header alg is '%.20s'; only ES256 is accepted", alg ? alg : "(none)");
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		snprintf(detail, dlen, "header 'crit' is not supported");
		goto out;
	}
	key = kid ? cfgdoc_trust_find(trust, kid) : NULL;
	if (!key) {
		res = CFGDOC_UNKNOWN_KID;
		snprintf(detail, dlen, "kid '%.64s' is not among the keys trusted here (the trust bundle, or the signed key set kept)", kid ? kid : "(none)");
		goto out;
	}

	/* 2. The signature, with the key the kid names and the alg pinned above.
	 * OpenSSL checks it directly: libjwt 1.10 decodes into alloca() buffers
	 * sized by the token, which overflows a thread's stack for large ones. */
	if (!jws_es256_verify_paced(key, token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token),
	                            o->pause)) {
		res = CFGDOC_BAD_SIGNATURE;
		snprintf(detail, dlen, "the signature does not verify with key %.64s", key->kid);
		goto out;
	}
	size_t p64 = (size_t)(dot2 - dot1 - 1);
	tok = malloc(p64 + 1);
	/* Decoded a megabyte at a time (four characters make three bytes, so
	 * every piece but the last decodes whole), pausing between. */
	long plen = tok ? 0 : -1;
	for (size_t at = 0; plen >= 0 && at < p64; at += JWS_PACE_BYTES) {
		size_t n = p64 - at < JWS_PACE_BYTES ? p64 - at : JWS_PACE_BYTES;
		long got = secret_unb64url(dot1 + 1 + at, n, tok + plen, p64 - (size_t)plen);
		plen = got < 0 ? -1 : plen + got;
		if (o->pause && plen >= 0 && at + n < p64)
			o->pause();
	}
	if (plen <= 0 || !(claims = load_claims(tok, (size_t)plen, &je)) || !json_is_object(claims)) {
		snprintf(detail, dlen, "the payload is not a JSON object");
		goto out;
	}

	/* 3. Claims. */
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	if (!iss || strcmp(iss, o->issuer) != 0) {
		res = CFGDOC_BAD_ISSUER;
		snprintf(detail, dlen, "iss is '%.64s', expected '%s'", iss ? iss : "(none)", o->issuer);
		goto out;
	}
	const char *aud = json_string_value(json_object_get(claims, "aud"));
	if (!aud || strcmp(aud, want_aud) != 0) {
		res = CFGDOC_WRONG_AUDIENCE;
		snprintf(detail, dlen, "aud is '%.80s', this is '%s'", aud ? aud : "(none)", want_aud);
		goto out;
	}
	res = CFGDOC_BAD_CONTENT;
	if (claim_int(claims, "iat", &e->iat) || claim_int(claims, "nbf", &e->nbf) ||
	    claim_int(claims, "exp", &e->exp) || claim_int(claims, "ver", &e->ver)) {
		snprintf(detail, dlen, "iat, nbf, exp or ver is missing or not an integer");
		goto out;
	}
	if (e->nbf > o->now + o->skew) {
		res = CFGDOC_NOT_YET_VALID;
		snprintf(detail, dlen, "nbf is %lld s in the future", (long long)(e->nbf - o->now));
		goto out;
	}
	if (e->exp <= o->now - o->skew && !o->allow_expired) {
		res = CFGDOC_EXPIRED;
		snprintf(detail, dlen, "expired %lld s ago", (long long)(o->now - e->exp));
		goto out;
	}
	if (e->ver <= o->min_version) {
		res = CFGDOC_ROLLBACK;
		snprintf(detail, dlen, "ver %lld is not newer than %lld, the version in use",
		         (long long)e->ver, (long long)o->min_version);
		goto out;
	}

	/* 4. What kind of content follows. */
	int64_t fmt;
	const char *kind = json_string_value(json_object_get(claims, "kind"));
	const char *jti = json_string_value(json_object_get(claims, "jti"));
	if (claim_int(claims, "fmt", &fmt) || fmt != CFGDOC_FMT || !kind ||
	    (want_kind ? strcmp(kind, want_kind) != 0
	               : strcmp(kind, CFGDOC_KIND_FULL) != 0 && strcmp(kind, CFGDOC_KIND_DELTA) != 0)) {
		snprintf(detail, dlen, "unsupported document format or kind");
		goto out;
	}
	snprintf(e->jti, sizeof e->jti, "%s", jti ? jti : "");
	snprintf(e->kid, sizeof e->kid, "%s", key->kid);
	e->claims = claims;
	claims = NULL;
	res = CFGDOC_OK;
	snprintf(detail, dlen, "ok");
out:
	free(tok);
	json_decref(claims);
	json_decref(hdr);
	return res;
}

/* A malloc'd NUL-terminated copy of the token, for the cache. */
static char *token_copy(const char *token, size_t len)
{
	char *t = malloc(len + 1);
	if (t) {
		memcpy(t, token, len);
		t[len] = '\0';
	}
	return t;
}

/* The `cell` claim of a cell document: {name, region, kind, status}. */
static int parse_cell(struct cfgdoc_cell *c, const json_t *v)
{
	const char *kind = json_string_value(json_object_get(v, "kind"));
	const char *status = json_string_value(json_object_get(v, "status"));
	if (!json_is_object(v) || copy_str(json_object_get(v, "name"), c->name, sizeof c->name) ||
	    copy_str(json_object_get(v, "region"), c->region, sizeof c->region) || !kind ||
	    (strcmp(kind, "shared") && strcmp(kind, "dedicated")) || !status ||
	    (strcmp(status, "active") && strcmp(status, "draining") && strcmp(status, "closed")) ||
	    !name_valid_cell(c->name) || !name_valid_region(c->region))
		return -1;
	snprintf(c->kind, sizeof c->kind, "%s", kind);
	snprintf(c->status, sizeof c->status, "%s", status);
	return 0;
}

/* The envelope's aud for o (a regional or a cell document). */
static void doc_aud(const struct cfgdoc_verify_opts *o, char aud[80])
{
	if (o->cell)
		snprintf(aud, 80, CFGDOC_AUD_CELL "%s", o->cell);
	else
		snprintf(aud, 80, "%s", o->region);
}

/* A new state's envelope fields, cell claim, state claims and token. */
static enum cfgdoc_result doc_head(struct cfgdoc *d, const struct cfgdoc_envelope *e,
                                   const struct cfgdoc_verify_opts *o, const char *token, size_t len,
                                   char *detail, size_t dlen)
{
	d->ver = e->ver;
	d->iat = e->iat;
	d->nbf = e->nbf;
	d->exp = e->exp;
	memcpy(d->jti, e->jti, sizeof d->jti);
	memcpy(d->kid, e->kid, sizeof d->kid);
	if (o->cell) {
		/* The aud names the cell; the claim must say the same, and place
		 * it in this region: a cell of another region is never served. */
		if (parse_cell(&d->cell, json_object_get(e->claims, "cell")) != 0) {
			snprintf(detail, dlen, "claim 'cell' is missing or malformed");
			return CFGDOC_BAD_CONTENT;
		}
		if (strcmp(d->cell.name, o->cell) || strcmp(d->cell.region, o->region)) {
			snprintf(detail, dlen, "the document is for cell '%s' of region '%s', this is cell '%s' of '%s'",
			         d->cell.name, d->cell.region, o->cell, o->region);
			return CFGDOC_WRONG_AUDIENCE;
		}
	}
	if (parse_state_claims(d, e->claims, detail, dlen) != 0)
		return CFGDOC_BAD_CONTENT;
	if (strcmp(d->self.name, o->region) != 0) {
		snprintf(detail, dlen, "the region record is '%s', not '%s'", d->self.name, o->region);
		return CFGDOC_BAD_CONTENT;
	}
	if (o->no_token)
		return CFGDOC_OK;
	if (!(d->token = token_copy(token, len))) {
		snprintf(detail, dlen, "out of memory");
		return CFGDOC_BAD_CONTENT;
	}
	d->token_len = len;
	return CFGDOC_OK;
}

/* A full document's state from its verified envelope. */
static enum cfgdoc_result full_state(const struct cfgdoc_envelope *e, const struct cfgdoc_verify_opts *o,
                                     const char *token, size_t len, struct cfgdoc **out, char *detail,
                                     size_t dlen)
{
	struct cfgdoc *d = calloc(1, sizeof *d);
	enum cfgdoc_result res = CFGDOC_BAD_CONTENT;
	char *text;
	if (!d)
		return res;
	if ((res = doc_head(d, e, o, token, len, detail, dlen)) != CFGDOC_OK)
		goto out;
	res = CFGDOC_BAD_CONTENT;
	if (!(text = text_claim(e->claims, "tenants", detail, dlen)) || parse_records(d, text, o->pause, detail, dlen) != 0)
		goto out;
	for (size_t i = 0; i < d->ntenants; i++)
		cfgdoc_sum_add(&d->sum, d->thash[i]);
	if (check_digest(e->claims, &d->sum, 0, detail, dlen) != 0)
		goto out;
	*out = d;
	d = NULL;
	res = CFGDOC_OK;
	snprintf(detail, dlen, "ok");
out:
	cfgdoc_free(d);
	return res;
}

enum cfgdoc_result cfgdoc_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                 const struct cfgdoc_verify_opts *o, struct cfgdoc **out,
                                 char *detail, size_t dlen)
{
	struct cfgdoc_envelope e;
	char aud[80];

	*out = NULL;
	doc_aud(o, aud);
	enum cfgdoc_result res = (enum cfgdoc_result)cfgdoc_envelope_verify(
		token, len, trust, o, aud, CFGDOC_KIND_FULL, &e, detail, dlen);
	if (res != CFGDOC_OK)
		return res;
	res = full_state(&e, o, token, len, out, detail, dlen);
	json_decref(e.claims);
	return res;
}

/* ---- applying a delta ---- */

/* The remove claim: "<uuid>;" records, parsed into d->removed. */
static int parse_remove(struct cfgdoc *d, const char *text, char *detail, size_t dlen)
{
	size_t n = 0;
	for (const char *p = text; *p; p++)
		n += *p == ';';
	d->removed = calloc(n ? n : 1, sizeof *d->removed);
	if (!d->removed) {
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	for (const char *line = text, *end; *line; line = end + 1) {
		end = strchr(line, ';');
		if (!end || end - line != 36)
			goto bad;
		memcpy(d->removed[d->nremoved], line, 36);
		d->removed[d->nremoved][36] = '\0';
		if (!name_valid_uuid(d->removed[d->nremoved]))
			goto bad;
		d->nremoved++;
	}
	return 0;
bad:
	snprintf(detail, dlen, "remove record %zu is malformed", d->nremoved + 1);
	return -1;
}

static int index_removed(struct cfgdoc *d)
{
	d->removed_cap = table_cap(d->nremoved);
	if (!(d->removed_slots = calloc(d->removed_cap, sizeof *d->removed_slots)))
		return -1;
	for (size_t i = 0; i < d->nremoved; i++)
		if (slot_put(d->removed_slots, d->removed_cap, d->removed[i], (uint32_t)i, removed_id, d) != 0)
			return -1;
	return 0;
}

static int index_records(struct cfgdoc *d)
{
	free(d->tenant_slots);
	free(d->key_slots);
	d->tenant_cap = table_cap(d->ntenants);
	d->key_cap = table_cap(d->nkeys);
	d->tenant_slots = calloc(d->tenant_cap, sizeof *d->tenant_slots);
	d->key_slots = calloc(d->key_cap, sizeof *d->key_slots);
	if (!d->tenant_slots || !d->key_slots)
		return -1;
	for (size_t i = 0; i < d->ntenants; i++)
		if (slot_put(d->tenant_slots, d->tenant_cap, d->tenants[i].id, (uint32_t)i, tenant_id, d) != 0)
			return -1;
	for (size_t i = 0; i < d->nkeys; i++)
		if (slot_put(d->key_slots, d->key_cap, d->keys[i].id, (uint32_t)i, key_id, d) != 0)
			return -1;
	return 0;
}

/* The index in d->plans of plan `id`, or UINT32_MAX. */
static uint32_t plan_of(const struct cfgdoc *d, const char *id)
{
	uint32_t i;
	return plan_index(d, id, &i) == 0 ? i : UINT32_MAX;
}

/* The state `s` with delta `u` (its upserted records in u's own arrays,
 * its removals in u->removed, its other claims parsed) applied, into u:
 * u keeps the claims and becomes the layered state. */
static int layer(struct cfgdoc *u, const struct cfgdoc *s, char *detail, size_t dlen)
{
	struct cfgdoc *base = s->base ? s->base : (struct cfgdoc *)s;
	size_t own = s->base ? s->ntenants : 0, own_keys = s->base ? s->nkeys : 0;
	size_t nt = u->ntenants, nk = u->nkeys, i;

	/* No tenant is both upserted and removed. A removal of a tenant the
	 * state does not hold changes nothing (a delta from a base the control
	 * plane holds no state of lists every changed tenant that is gone):
	 * the digest, checked after, says whether the state reached is the one
	 * meant. */
	for (i = 0; i < u->nremoved; i++)
		if (own_tenant(u, u->removed[i])) {
			snprintf(detail, dlen, "remove names tenant %s, which the delta also upserts", u->removed[i]);
			return -1;
		}
	if (index_removed(u) != 0)
		goto oom;
	/* A key id is one key of the state: an upserted key may only replace
	 * a key of a tenant the delta replaces or removes. */
	for (i = 0; i < nk; i++) {
		const struct cfgdoc_key *k = cfgdoc_find_key(s, u->keys[i].id);
		const char *owner = k ? cfgdoc_key_tenant(s, k)->id : NULL;
		if (owner && !own_tenant(u, owner) && !is_removed(u, owner)) {
			snprintf(detail, dlen, "upsert gives key %s to tenant %s; it is a key of tenant %s",
			         u->keys[i].id, u->tenants[u->keys[i].tenant].id, owner);
			return -1;
		}
	}
	/* The digest's sum: out with every replaced or removed record, in
	 * with the new ones. */
	u->sum = s->sum;
	size_t live = cfgdoc_tenant_count(s), live_keys = cfgdoc_key_count(s);
	for (i = 0; i < nt + u->nremoved; i++) {
		const char *id = i < nt ? u->tenants[i].id : u->removed[i - nt];
		const struct cfgdoc_tenant *old = cfgdoc_find_tenant(s, id);
		if (old) {
			cfgdoc_sum_sub(&u->sum, tenant_hash(s, old));
			live--;
		}
		if (i < nt) {
			cfgdoc_sum_add(&u->sum, u->thash[i]);
			live++;
		}
	}
	/* Keys leave with their tenants (counted by a walk of the state's own
	 * and base keys would cost the whole state; the upserted and removed
	 * tenants' old keys are counted through their key ids instead). */
	for (i = 0; i < own_keys; i++)
		if (own_tenant(u, s->tenants[s->keys[i].tenant].id) || is_removed(u, s->tenants[s->keys[i].tenant].id))
			live_keys--;
	for (i = 0; i < nt + u->nremoved; i++) {
		const char *id = i < nt ? u->tenants[i].id : u->removed[i - nt];
		const struct cfgdoc_tenant *bt = own_tenant(base, id);
		if (bt && (!s->base || !masked(s, id)))
			live_keys -= bt->nkeys;
	}
	live_keys += nk;

	/* The state's own records the delta leaves alone stay, after the
	 * delta's; their plans are looked up again in the new plans claim. */
	size_t keep_t = 0, keep_k = 0;
	for (i = 0; i < own; i++)
		if (!own_tenant(u, s->tenants[i].id) && !is_removed(u, s->tenants[i].id))
			keep_t++;
	for (i = 0; i < own_keys; i++) {
		const char *owner = s->tenants[s->keys[i].tenant].id;
		if (!own_tenant(u, owner) && !is_removed(u, owner))
			keep_k++;
	}
	if (keep_t || keep_k) {
		uint32_t *map = calloc(own ? own : 1, sizeof *map);
		void *t = realloc(u->tenants, (nt + keep_t + 1) * sizeof *u->tenants);
		if (t)
			u->tenants = t;
		void *k = realloc(u->keys, (nk + keep_k + 1) * sizeof *u->keys);
		if (k)
			u->keys = k;
		void *h = realloc(u->thash, (nt + keep_t + 1) * sizeof *u->thash);
		if (h)
			u->thash = h;
		if (!map || !t || !k || !h) {
			free(map);
			goto oom;
		}
		for (i = 0; i < own; i++) {
			map[i] = UINT32_MAX;
			if (own_tenant(u, s->tenants[i].id) || is_removed(u, s->tenants[i].id))
				continue;
			struct cfgdoc_tenant *nt_ = &u->tenants[u->ntenants];
			*nt_ = s->tenants[i];
			if ((nt_->plan = plan_of(u, s->plans[s->tenants[i].plan].id)) == UINT32_MAX) {
				free(map);
				snprintf(detail, dlen, "tenant %s keeps plan '%s', which the plans claim does not list",
				         nt_->id, s->plans[s->tenants[i].plan].id);
				return -1;
			}
			memcpy(u->thash[u->ntenants], s->thash[i], 32);
			map[i] = (uint32_t)u->ntenants++;
		}
		for (i = 0; i < own_keys; i++)
			if (map[s->keys[i].tenant] != UINT32_MAX) {
				u->keys[u->nkeys] = s->keys[i];
				u->keys[u->nkeys++].tenant = map[s->keys[i].tenant];
			}
		free(map);
		if (index_records(u) != 0)
			goto oom;
	}
	/* Removals pile up against the base: the state's own ones stay
	 * unless the delta upserts the tenant again. */
	if (s->base && s->nremoved) {
		void *r = realloc(u->removed, (u->nremoved + s->nremoved + 1) * sizeof *u->removed);
		if (!r)
			goto oom;
		u->removed = r;
		for (i = 0; i < s->nremoved; i++)
			if (!own_tenant(u, s->removed[i]) && !is_removed(u, s->removed[i]))
				memcpy(u->removed[u->nremoved++], s->removed[i], 37);
		free(u->removed_slots);
		if (index_removed(u) != 0)
			goto oom;
	}
	/* Removals of tenants only the layers held need no mask. */
	if (!(u->base_plans = calloc(base->nplans + 1, sizeof *u->base_plans)))
		goto oom;
	for (i = 0; i < base->nplans; i++)
		u->base_plans[i] = plan_of(u, base->plans[i].id);
	u->live_tenants = live;
	u->live_keys = live_keys;
	u->deltas = s->deltas + 1;
	atomic_fetch_add(&base->refs, 1);
	u->base = base;
	return 0;
oom:
	snprintf(detail, dlen, "out of memory");
	return -1;
}

enum cfgdoc_result cfgdoc_verify_any(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                     const struct cfgdoc_verify_opts *o, const struct cfgdoc *state,
                                     struct cfgdoc **out, int *is_delta, char *detail, size_t dlen)
{
	struct cfgdoc_envelope e;
	struct cfgdoc *u = NULL;
	char aud[80], *text;
	int64_t base_ver;

	*out = NULL;
	*is_delta = 0;
	doc_aud(o, aud);
	enum cfgdoc_result res = (enum cfgdoc_result)cfgdoc_envelope_verify(token, len, trust, o, aud, NULL,
	                                                                     &e, detail, dlen);
	if (res != CFGDOC_OK)
		return res;
	if (strcmp(json_string_value(json_object_get(e.claims, "kind")), CFGDOC_KIND_DELTA) != 0) {
		res = full_state(&e, o, token, len, out, detail, dlen);
		goto out;
	}
	*is_delta = 1;
	res = CFGDOC_BAD_CONTENT;
	if (claim_int(e.claims, "base_ver", &base_ver) != 0) {
		snprintf(detail, dlen, "claim 'base_ver' is missing or not an integer");
		goto out;
	}
	if (!state || base_ver != state->ver || e.ver <= base_ver) {
		snprintf(detail, dlen, "base: the delta leads from version %lld to %lld; the state in use is %s%lld",
		         (long long)base_ver, (long long)e.ver, state ? "version " : "none",
		         state ? (long long)state->ver : 0LL);
		goto out;
	}
	if (!(u = calloc(1, sizeof *u)))
		goto out;
	if ((res = doc_head(u, &e, o, token, len, detail, dlen)) != CFGDOC_OK)
		goto out;
	res = CFGDOC_BAD_CONTENT;
	json_t *rm = json_object_get(e.claims, "remove");
	if (rm && (!json_is_string(rm) || strlen(json_string_value(rm)) != json_string_length(rm))) {
		snprintf(detail, dlen, "claim 'remove' is not a string");
		goto out;
	}
	if (!(text = text_claim(e.claims, "upsert", detail, dlen)) || parse_records(u, text, o->pause, detail, dlen) != 0 ||
	    (rm && parse_remove(u, json_string_value(rm), detail, dlen) != 0) || layer(u, state, detail, dlen) != 0 ||
	    check_digest(e.claims, &u->sum, 1, detail, dlen) != 0)
		goto out;
	*out = u;
	u = NULL;
	res = CFGDOC_OK;
	snprintf(detail, dlen, "ok");
out:
	cfgdoc_free(u);
	json_decref(e.claims);
	return res;
}

/* ---- routes document ---- */

void cfgdoc_routes_free(struct cfgdoc_routes *r)
{
	if (!r)
		return;
	free(r->cells);
	free(r->routes);
	free(r->token);
	free(r);
}

static int route_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cfgdoc_route *)a)->key, ((const struct cfgdoc_route *)b)->key);
}

/* The cells claim: [[name, status, kind], ...], names valid and distinct. */
static int parse_route_cells(struct cfgdoc_routes *r, const json_t *v)
{
	size_t i;
	json_t *e;
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CFGDOC_ROUTES_MAX_CELLS ||
	    !(r->cells = calloc(json_array_size(v), sizeof *r->cells)))
		return -1;
	json_array_foreach(v, i, e) {
		struct cfgdoc_route_cell *c = &r->cells[i];
		if (json_array_size(e) != 3 || copy_str(json_array_get(e, 0), c->name, sizeof c->name) ||
		    copy_str(json_array_get(e, 1), c->status, sizeof c->status) ||
		    copy_str(json_array_get(e, 2), c->kind, sizeof c->kind) || !name_valid_cell(c->name))
			return -1;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(r->cells[j].name, c->name))
				return -1;
		r->ncells++;
	}
	return 0;
}

/* The routes text: "<24 hex>|<cell>;" records, each cell one of `cells`. */
static int parse_routes(struct cfgdoc_routes *r, const char *text, char *detail, size_t dlen)
{
	size_t n = 0, lineno = 0;
	for (const char *p = text; *p; p++)
		n += *p == ';';
	if (!(r->routes = calloc(n ? n : 1, sizeof *r->routes))) {
		snprintf(detail, dlen, "out of memory");
		return -1;
	}
	for (const char *line = text, *end; *line; line = end + 1) {
		lineno++;
		end = strchr(line, ';');
		const char *bar = memchr(line, '|', end ? (size_t)(end - line) : strlen(line));
		size_t clen = bar && end ? (size_t)(end - bar - 1) : 0;
		char cell[64];
		if (!end || !bar || bar - line != 24 || strspn(line, "0123456789abcdef") != 24 || clen == 0 ||
		    clen >= sizeof cell)
			goto bad;
		memcpy(cell, bar + 1, clen);
		cell[clen] = '\0';
		size_t c;
		for (c = 0; c < r->ncells && strcmp(r->cells[c].name, cell); c++)
			;
		if (c == r->ncells) {
			snprintf(detail, dlen, "routes record %zu names cell '%s', which the cells claim does not list",
			         lineno, name_valid_cell(cell) ? cell : "?");
			return -1;
		}
		memcpy(r->routes[r->nroutes].key, line, 24);
		r->routes[r->nroutes].key[24] = '\0';
		r->routes[r->nroutes++].cell = (uint32_t)c;
	}
	/* No key twice: checked on a sorted copy, the document's order kept. */
	if (r->nroutes > 1) {
		struct cfgdoc_route *s = malloc(r->nroutes * sizeof *s);
		if (!s) {
			snprintf(detail, dlen, "out of memory");
			return -1;
		}
		memcpy(s, r->routes, r->nroutes * sizeof *s);
		qsort(s, r->nroutes, sizeof *s, route_cmp);
		for (size_t i = 1; i < r->nroutes; i++)
			if (!strcmp(s[i - 1].key, s[i].key)) {
				snprintf(detail, dlen, "routes: key %s is routed twice", s[i].key);
				free(s);
				return -1;
			}
		free(s);
	}
	return 0;
bad:
	snprintf(detail, dlen, "routes record %zu is malformed", lineno);
	return -1;
}

enum cfgdoc_result cfgdoc_verify_routes(const char *token, size_t len,
                                        const struct cfgdoc_trust *trust,
                                        const struct cfgdoc_verify_opts *o,
                                        struct cfgdoc_routes **out, char *detail, size_t dlen)
{
	struct cfgdoc_envelope e;
	struct cfgdoc_routes *r = NULL;
	char aud[80];

	*out = NULL;
	snprintf(aud, sizeof aud, CFGDOC_AUD_ROUTES "%s", o->region);
	enum cfgdoc_result res = (enum cfgdoc_result)cfgdoc_envelope_verify(
		token, len, trust, o, aud, CFGDOC_KIND_ROUTES, &e, detail, dlen);
	if (res != CFGDOC_OK)
		return res;
	res = CFGDOC_BAD_CONTENT;
	if (!(r = calloc(1, sizeof *r)))
		goto out;
	r->ver = e.ver;
	r->iat = e.iat;
	r->nbf = e.nbf;
	r->exp = e.exp;
	memcpy(r->jti, e.jti, sizeof r->jti);
	memcpy(r->kid, e.kid, sizeof r->kid);
	if (copy_str(json_object_get(e.claims, "region"), r->region, sizeof r->region) ||
	    strcmp(r->region, o->region)) {
		snprintf(detail, dlen, "claim 'region' is missing or not '%s'", o->region);
		goto out;
	}
	if (parse_route_cells(r, json_object_get(e.claims, "cells")) != 0) {
		snprintf(detail, dlen, "claim 'cells' is missing or malformed");
		goto out;
	}
	json_t *v = json_object_get(e.claims, "routes");
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(detail, dlen, "claim 'routes' is missing or not a string");
		goto out;
	}
	if (parse_routes(r, json_string_value(v), detail, dlen) != 0)
		goto out;
	if (!(r->token = token_copy(token, len)))
		goto out;
	r->token_len = len;
	*out = r;
	r = NULL;
	res = CFGDOC_OK;
	snprintf(detail, dlen, "ok");
out:
	cfgdoc_routes_free(r);
	json_decref(e.claims);
	return res;
}

/* ---- building ---- */

static void put(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

int cfgdoc_add_tenant(struct buf *b, const char *id, const char *slug, const char *status,
                      const char *plan)
{
	const char *s = !strcmp(status, "active") ? "|a|" : !strcmp(status, "suspended") ? "|s|" : "|d|";
	if (!name_valid_uuid(id) || !name_valid_slug(slug) || !name_valid_region(plan))
		return -1;
	put(b, "t|");
	put(b, id);
	put(b, "|");
	put(b, slug);
	put(b, s);
	put(b, plan);
	put(b, ";");
	return 0;
}

int cfgdoc_add_key_b64(struct buf *b, const char *id, const char *sha256_b64url, int write,
                       int read, int64_t expires)
{
	char tail[40];
	if (strlen(id) != 24 || strspn(id, "0123456789abcdef") != 24 || strlen(sha256_b64url) != 43 ||
	    (!write && !read))
		return -1;
	put(b, "k|");
	put(b, id);
	put(b, "|");
	put(b, sha256_b64url);
	snprintf(tail, sizeof tail, "|%s%s|%lld;", write ? "w" : "", read ? "r" : "",
	         (long long)(expires > 0 ? expires : 0));
	put(b, tail);
	return 0;
}

int cfgdoc_add_moved(struct buf *b, const char *key_id, const char *region)
{
	if (strlen(key_id) != 24 || strspn(key_id, "0123456789abcdef") != 24 ||
	    !name_valid_region(region))
		return -1;
	put(b, key_id);
	put(b, "|");
	put(b, region);
	put(b, ";");
	return 0;
}

int cfgdoc_add_route(struct buf *b, const char *key_id, const char *cell)
{
	if (strlen(key_id) != 24 || strspn(key_id, "0123456789abcdef") != 24 || !name_valid_cell(cell))
		return -1;
	put(b, key_id);
	put(b, "|");
	put(b, cell);
	put(b, ";");
	return 0;
}

int cfgdoc_add_key(struct buf *b, const char *id, const unsigned char sha256[32], int write,
                   int read, int64_t expires)
{
	char h[48];
	secret_b64url(sha256, 32, h);
	return cfgdoc_add_key_b64(b, id, h, write, read, expires);
}

char *cfgdoc_envelope_sign(const struct jwk *key, const char *payload, size_t plen)
{
	json_t *hdr = json_pack("{ss ss ss}", "alg", "ES256", "typ", "JWT", "kid", key->kid);
	char *htext = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
	char *token = htext ? jws_es256_sign(key, htext, strlen(htext), payload, plen) : NULL;
	json_decref(hdr);
	free(htext);
	return token;
}

char *cfgdoc_sign(const struct jwk *key, const json_t *claims, const char *tenants)
{
	return cfgdoc_sign_text(key, claims, "tenants", tenants);
}

char *cfgdoc_sign_text(const struct jwk *key, const json_t *claims, const char *member,
                       const char *tenants)
{
	json_t *payload = json_deep_copy(claims);
	char *ptext = NULL, *token = NULL;

	/* The tenants text needs no escaping (see the format); it is spliced
	 * into the payload as the last member rather than copied through the
	 * JSON encoder, which matters at tens of megabytes. */
	for (const char *t = tenants; *t; t++)
		if (*t == '"' || *t == '\\' || (unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			goto out;
	size_t mlen = strlen(member);
	if (!payload || json_object_get(payload, member) || mlen == 0 || mlen > 32 ||
	    strspn(member, "abcdefghijklmnopqrstuvwxyz_") != mlen)
		goto out;
	char *small = json_dumps(payload, JSON_COMPACT);
	if (!small || small[strlen(small) - 1] != '}') {
		free(small);
		goto out;
	}
	size_t slen = strlen(small) - 1, tlen = strlen(tenants);
	ptext = malloc(slen + tlen + mlen + 16);
	if (!ptext) {
		free(small);
		goto out;
	}
	memcpy(ptext, small, slen);
	free(small);
	size_t at = slen;
	if (slen > 1)
		ptext[at++] = ',';
	ptext[at++] = '"';
	memcpy(ptext + at, member, mlen);
	at += mlen;
	memcpy(ptext + at, "\":\"", 3);
	at += 3;
	memcpy(ptext + at, tenants, tlen);
	at += tlen;
	memcpy(ptext + at, "\"}", 3);
	token = cfgdoc_envelope_sign(key, ptext, at + 2);
out:
	json_decref(payload);
	free(ptext);
	return token;
}

json_t *cfgdoc_claims(const struct cfgdoc_head *head, const json_t *region, json_t *directory,
                      json_t *plans)
{
	/* "O" refuses a NULL member: a region record without one fails here. */
	return json_pack("{ss ss sI sI sI ss sI si ss s{sOsOsOsOsO} so so}", "iss", head->iss, "aud",
	                 head->aud, "iat", (json_int_t)head->iat, "nbf", (json_int_t)head->iat, "exp",
	                 (json_int_t)head->exp, "jti", head->jti, "ver", (json_int_t)head->ver, "fmt",
	                 CFGDOC_FMT, "kind", CFGDOC_KIND_FULL, "region", "name",
	                 json_object_get(region, "name"), "display_name",
	                 json_object_get(region, "display_name"), "endpoint_url",
	                 json_object_get(region, "endpoint_url"), "status", json_object_get(region, "status"),
	                 "wave", json_object_get(region, "wave"), "directory", directory, "plans", plans);
}

int cfgdoc_directory_add(json_t *directory, const char *name, const char *endpoint_url,
                         const char *status)
{
	return json_array_append_new(directory, json_pack("[sss]", name, endpoint_url, status));
}

int cfgdoc_plans_add(json_t *plans, const char *id, int64_t rate, int64_t burst, int64_t quota,
                     int64_t retention_days)
{
	return json_object_set_new(plans, id, json_pack("[IIII]", (json_int_t)rate, (json_int_t)burst,
	                                                (json_int_t)quota, (json_int_t)retention_days));
}

/* ---- the state digest (cfgdoc.h) ---- */

/* secret_sha256: the algorithm fetched once; SHA256() looks it up under
 * a lock at every call, per record of a million-tenant document. */
void cfgdoc_record_hash(const char *rec, size_t len, unsigned char out[32])
{
	secret_sha256(rec, len, out);
}

void cfgdoc_sum_add(struct cfgdoc_sum *s, const unsigned char h[32])
{
	unsigned carry = 0;
	for (int i = 0; i < 32; i++) {
		carry += (unsigned)s->v[i] + h[i];
		s->v[i] = (unsigned char)carry;
		carry >>= 8;
	}
}

void cfgdoc_sum_sub(struct cfgdoc_sum *s, const unsigned char h[32])
{
	int borrow = 0;
	for (int i = 0; i < 32; i++) {
		int d = (int)s->v[i] - h[i] - borrow;
		borrow = d < 0;
		s->v[i] = (unsigned char)(d + (borrow ? 256 : 0));
	}
}

static const char *const state_claims[] = { "region", "directory", "plans", "cell",
	                                        "moved", "stream_rules", "streams" };

int cfgdoc_state_digest(const json_t *claims, const struct cfgdoc_sum *sum,
                        char out[CFGDOC_DIGEST_LEN + 1])
{
	json_t *o = json_object();
	char *text = NULL;
	int ret = -1;
	if (!o)
		return -1;
	for (size_t i = 0; i < sizeof state_claims / sizeof *state_claims; i++) {
		json_t *v = json_object_get(claims, state_claims[i]);
		if (v && json_object_set(o, state_claims[i], v) != 0)
			goto out;
	}
	if (!(text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)))
		goto out;
	static const char tag[] = "celltrail-cfgdoc-state-1\n";
	unsigned char in[sizeof tag - 1 + 64], d[32];
	memcpy(in, tag, sizeof tag - 1);
	SHA256((const unsigned char *)text, strlen(text), in + sizeof tag - 1);
	memcpy(in + sizeof tag - 1 + 32, sum->v, 32);
	SHA256(in, sizeof in, d);
	char b64[48];
	secret_b64url(d, sizeof d, b64);
	if (strlen(b64) != CFGDOC_DIGEST_LEN)
		goto out;
	memcpy(out, b64, CFGDOC_DIGEST_LEN + 1);
	ret = 0;
out:
	free(text);
	json_decref(o);
	return ret;
}

int cfgdoc_each_record(const char *text, size_t len,
                       int (*fn)(const char *rec, size_t len, void *arg), void *arg)
{
	const char *start = NULL, *end = text + len;
	for (const char *p = text; p < end;) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *next = semi ? semi + 1 : end;
		if (p[0] == 't' && p + 1 < end && p[1] == '|') {
			if (start) {
				int r = fn(start, (size_t)(p - start), arg);
				if (r)
					return r;
			}
			start = p;
		}
		p = next;
	}
	return start ? fn(start, (size_t)(end - start), arg) : 0;
}

int cfgdoc_delta_claims(json_t *claims, int64_t base_ver, const char *remove, const char *digest)
{
	if (base_ver < 0 || !digest || strlen(digest) != CFGDOC_DIGEST_LEN || json_object_get(claims, "tenants"))
		return -1;
	if (remove && *remove) {
		for (const char *p = remove; *p; p++)
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				return -1;
		if (json_object_set_new(claims, "remove", json_string(remove)) != 0)
			return -1;
	}
	return json_object_set_new(claims, "kind", json_string(CFGDOC_KIND_DELTA)) ||
	       json_object_set_new(claims, "base_ver", json_integer((json_int_t)base_ver)) ||
	       json_object_set_new(claims, "digest", json_string(digest)) ? -1 : 0;
}
