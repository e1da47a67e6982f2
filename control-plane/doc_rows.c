/* doc_rows: a whole cell's document content grouped by tenant as it
 * streams in (see doc_rows.h). */
#include <stdlib.h>
#include <string.h>

#include "doc_rows.h"
#include "secret.h"

void doc_rows_init(struct doc_rows *d, cpdb_doc_row_fn fn, void *arg)
{
	memset(d, 0, sizeof *d);
	d->fn = fn;
	d->arg = arg;
	d->last = -1;
}

void doc_rows_free(struct doc_rows *d)
{
	free(d->tenants);
	free(d->keys);
	free(d->slots);
	buf_free(&d->strs);
	d->tenants = NULL;
	d->keys = NULL;
	d->slots = NULL;
}

static int hexval(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Whether `s` is a uuid's text: lower case hex, dashes where they go. */
static int uuid_text(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (size_t i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : hexval(s[i]) < 0)
			return 0;
	return 1;
}

/* A uuid text's hash: five overlapping 8-byte words cover its 36 bytes,
 * mixed by multiplication, then MurmurHash3's finalizer, so that every
 * byte reaches the low bits a slot is taken from (ids made in sequence
 * differ in their last bytes only). Byte by byte it was a chain of 36
 * dependent multiplications, per row of a million-tenant document. */
static uint64_t id_hash(const char *id)
{
	uint64_t w, h = 0;
	for (int i = 0; i < 5; i++) {
		memcpy(&w, id + (i < 4 ? 8 * i : 28), 8);
		h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* The slot of tenant `id`: its own, or the empty one where it goes. */
static size_t slot_of(const struct doc_rows *d, const char *id)
{
	size_t k = (size_t)id_hash(id) & (d->capslots - 1);
	while (d->slots[k] && memcmp(d->tenants[d->slots[k] - 1].id, id, 36) != 0)
		k = (k + 1) & (d->capslots - 1);
	return k;
}

static int slots_grow(struct doc_rows *d)
{
	size_t cap = d->capslots ? 2 * d->capslots : (size_t)1 << 12;
	uint32_t *old = d->slots;
	size_t oldcap = d->capslots;
	if (!(d->slots = calloc(cap, sizeof *d->slots))) {
		d->slots = old;
		return -1;
	}
	d->capslots = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			d->slots[slot_of(d, d->tenants[old[i] - 1].id)] = old[i];
	free(old);
	return 0;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? 2 * *cap : 1024;
	void *q = realloc(*p, c * size);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

/* Copies a field into `out` (`n` bytes); -1 if it does not fit or holds
 * a COPY escape (no value of these columns has a backslash). */
static int field_copy(char *out, size_t n, const char *f)
{
	size_t len = strlen(f);
	if (len >= n || strchr(f, '\\'))
		return -1;
	memcpy(out, f, len + 1);
	return 0;
}

/* The tenant of a row, found or added; -1 (bad) for a field of the wrong
 * shape, or fields that differ from its earlier rows'. */
static long tenant_of(struct doc_rows *d, char *const f[4])
{
	for (int i = 1; i < 4; i++)
		if (!*f[i] || strlen(f[i]) > 63 || strchr(f[i], '\\'))
			return -1;
	if (d->last >= 0 && !strcmp(d->tenants[d->last].id, f[0])) {
		/* The previous row's tenant (rows mostly come grouped). */
		const char *s = d->strs.p + d->tenants[d->last].strs;
		for (int i = 1; i < 4; i++, s += strlen(s) + 1)
			if (strcmp(s, f[i]) != 0)
				return -1;
		return d->last;
	}
	if (!uuid_text(f[0]))
		return -1;
	if (2 * (d->ntenants + 1) > d->capslots && slots_grow(d) != 0)
		return -1;
	size_t k = slot_of(d, f[0]);
	if (d->slots[k]) {
		const struct doc_tenant *t = &d->tenants[d->slots[k] - 1];
		const char *s = d->strs.p + t->strs;
		for (int i = 1; i < 4; i++, s += strlen(s) + 1)
			if (strcmp(s, f[i]) != 0)
				return -1;
		return d->last = (long)d->slots[k] - 1;
	}
	if (d->ntenants >= UINT32_MAX - 1 ||
	    grow((void **)&d->tenants, &d->captenants, d->ntenants, sizeof *d->tenants) != 0)
		return -1;
	struct doc_tenant *t = &d->tenants[d->ntenants];
	memcpy(t->id, f[0], 37);
	t->nkeys = 0;
	t->strs = d->strs.len;
	for (int i = 1; i < 4; i++)
		buf_append(&d->strs, f[i], strlen(f[i]) + 1);
	if (d->strs.failed)
		return -1;
	d->slots[k] = (uint32_t)++d->ntenants;
	return d->last = (long)d->ntenants - 1;
}

int doc_rows_line(char *line, size_t len, void *arg)
{
	struct doc_rows *d = arg;
	char *f[9];
	size_t nf = 0;
	(void)len;
	if (d->bad)
		return -1;
	for (char *p = line;;) {
		if (nf == 9) {
			nf++; /* a tenth field */
			break;
		}
		f[nf++] = p;
		char *tab = strchr(p, '\t');
		if (!tab)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	long t;
	if (nf != 9 || (t = tenant_of(d, f)) < 0)
		goto bad;
	d->rows++;
	if (!strcmp(f[4], "\\N"))
		return 0; /* a tenant without a usable key */
	if (grow((void **)&d->keys, &d->capkeys, d->nkeys, sizeof *d->keys) != 0)
		goto bad;
	struct doc_key *k = &d->keys[d->nkeys];
	char *end;
	unsigned char sha[32];
	if (field_copy(k->id, sizeof k->id, f[4]) != 0 || secret_unhex(f[5], sha, sizeof sha) != 0 ||
	    (strcmp(f[6], "t") && strcmp(f[6], "f")) || (strcmp(f[7], "t") && strcmp(f[7], "f")))
		goto bad;
	secret_b64url(sha, sizeof sha, k->sha);
	k->w = f[6][0] == 't';
	k->r = f[7][0] == 't';
	k->exp = strtoll(f[8], &end, 10);
	if (*end || end == f[8])
		goto bad;
	k->tenant = (uint32_t)t;
	d->tenants[t].nkeys++;
	d->nkeys++;
	return 0;
bad:
	d->bad = 1;
	return -1;
}

/* qsort_r's comparison of two keys by their index: by id. */
static int key_cmp(const void *a, const void *b, void *keys)
{
	const struct doc_key *k = keys;
	return strcmp(k[*(const uint32_t *)a].id, k[*(const uint32_t *)b].id);
}

void doc_rows_finish(struct doc_rows *d)
{
	if (d->bad || d->stopped)
		return;
	/* The keys' indexes by tenant (a counting sort: a tenant's keys start
	 * where the keys of the tenants before it end), then each tenant's by
	 * id. */
	size_t *start = malloc((d->ntenants + 1) * sizeof *start);
	uint32_t *order = malloc((d->nkeys ? d->nkeys : 1) * sizeof *order);
	if (!start || !order || d->nkeys > UINT32_MAX) {
		free(start);
		free(order);
		d->bad = 1;
		return;
	}
	start[0] = 0;
	for (size_t i = 0; i < d->ntenants; i++)
		start[i + 1] = start[i] + d->tenants[i].nkeys;
	for (size_t i = 0; i < d->nkeys; i++)
		order[start[d->keys[i].tenant]++] = (uint32_t)i;
	for (size_t i = d->ntenants; i > 0; i--)
		start[i] = start[i - 1];
	start[0] = 0;
	for (size_t i = 0; i < d->ntenants && !d->stopped; i++) {
		const struct doc_tenant *t = &d->tenants[i];
		struct cpdb_doc_row row = { .tenant_id = t->id, .slug = d->strs.p + t->strs };
		row.status = row.slug + strlen(row.slug) + 1;
		row.plan = row.status + strlen(row.status) + 1;
		uint32_t *o = order + start[i];
		if (t->nkeys > 1)
			qsort_r(o, t->nkeys, sizeof *o, key_cmp, d->keys);
		if (t->nkeys == 0 && d->fn(&row, d->arg) != 0)
			d->stopped = 1;
		for (uint32_t j = 0; j < t->nkeys && !d->stopped; j++) {
			const struct doc_key *k = &d->keys[o[j]];
			row.key_id = k->id;
			row.key_sha256_b64 = k->sha;
			row.can_write = k->w;
			row.can_read = k->r;
			row.expires_at = k->exp;
			if (d->fn(&row, d->arg) != 0)
				d->stopped = 1;
		}
	}
	free(start);
	free(order);
}
