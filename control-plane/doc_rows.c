/* doc_rows: a whole cell's document content grouped by tenant as it
 * streams in (see doc_rows.h). */
#include <stdlib.h>
#include <string.h>

#include "doc_rows.h"

void doc_rows_init(struct doc_rows *d, cpdb_doc_row_fn fn, void *arg)
{
	memset(d, 0, sizeof *d);
	d->fn = fn;
	d->arg = arg;
}

void doc_rows_free(struct doc_rows *d)
{
	free(d->keys);
	free(d->seen);
	d->keys = NULL;
	d->seen = NULL;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct doc_key *)a)->id, ((const struct doc_key *)b)->id);
}

static int hexval(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The 16 bytes of a uuid's text (lower case hex, dashes where they go);
 * -1 for anything else. */
static int uuid_raw(const char *s, unsigned char out[16])
{
	size_t j = 0;
	if (strlen(s) != 36)
		return -1;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[j++] = (unsigned char)(hi << 4 | lo);
		i++;
	}
	return 0;
}

static size_t seen_slot(unsigned char (*t)[16], size_t cap, const unsigned char id[16])
{
	static const unsigned char zero[16];
	uint64_t h;
	memcpy(&h, id + 8, 8); /* random bits of a v4 uuid; any bits do */
	size_t k = (size_t)(h ^ h >> 29) & (cap - 1);
	while (memcmp(t[k], zero, 16) && memcmp(t[k], id, 16))
		k = (k + 1) & (cap - 1);
	return k;
}

/* Whether the group of tenant `id` ended already. */
static int seen_has(const struct doc_rows *ds, const unsigned char id[16])
{
	return ds->capseen && !memcmp(ds->seen[seen_slot(ds->seen, ds->capseen, id)], id, 16);
}

/* Records that the group of tenant `id` ended; -1 when out of memory. */
static int seen_add(struct doc_rows *ds, const unsigned char id[16])
{
	static const unsigned char zero[16];
	if (2 * (ds->nseen + 1) > ds->capseen) {
		size_t cap = ds->capseen ? 2 * ds->capseen : (size_t)1 << 16;
		unsigned char(*t)[16] = calloc(cap, 16);
		if (!t)
			return -1;
		for (size_t i = 0; i < ds->capseen; i++)
			if (memcmp(ds->seen[i], zero, 16))
				memcpy(t[seen_slot(t, cap, ds->seen[i])], ds->seen[i], 16);
		free(ds->seen);
		ds->seen = t;
		ds->capseen = cap;
	}
	size_t k = seen_slot(ds->seen, ds->capseen, id);
	if (memcmp(ds->seen[k], id, 16)) {
		memcpy(ds->seen[k], id, 16);
		ds->nseen++;
	}
	return 0;
}

/* Hands the open group on: the tenant, then its keys in id order. */
static int group_end(struct doc_rows *ds)
{
	if (!ds->have)
		return 0;
	ds->have = 0;
	struct cpdb_doc_row row = { .tenant_id = ds->tenant, .slug = ds->slug, .status = ds->status,
		                        .plan = ds->plan };
	if (ds->nkeys > 1)
		qsort(ds->keys, ds->nkeys, sizeof *ds->keys, key_cmp);
	if (ds->nkeys == 0)
		return ds->fn(&row, ds->arg);
	for (size_t i = 0; i < ds->nkeys; i++) {
		row.key_id = ds->keys[i].id;
		row.key_sha256_hex = ds->keys[i].sha;
		row.can_write = ds->keys[i].w;
		row.can_read = ds->keys[i].r;
		row.expires_at = ds->keys[i].exp;
		if (ds->fn(&row, ds->arg) != 0)
			return -1;
	}
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

int doc_rows_line(char *line, size_t len, void *arg)
{
	struct doc_rows *ds = arg;
	char *f[9];
	size_t nf = 0;
	(void)len;
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
	if (nf != 9) {
		ds->bad = 1;
		return -1;
	}
	ds->rows++;
	if (!ds->have || strcmp(f[0], ds->tenant) != 0) {
		unsigned char id[16];
		if (uuid_raw(f[0], id) != 0) {
			ds->bad = 1;
			return -1;
		}
		/* Met again after its group ended: not grouped by tenant. */
		if (seen_has(ds, id)) {
			ds->ungrouped = 1;
			return -1;
		}
		if (ds->have) {
			unsigned char prev[16];
			if (uuid_raw(ds->tenant, prev) != 0 || seen_add(ds, prev) < 0) {
				ds->bad = 1;
				return -1;
			}
			if (group_end(ds) != 0) {
				ds->stopped = 1;
				return -1;
			}
		}
		if (field_copy(ds->tenant, sizeof ds->tenant, f[0]) != 0 ||
		    field_copy(ds->slug, sizeof ds->slug, f[1]) != 0 ||
		    field_copy(ds->status, sizeof ds->status, f[2]) != 0 ||
		    field_copy(ds->plan, sizeof ds->plan, f[3]) != 0) {
			ds->bad = 1;
			return -1;
		}
		ds->have = 1;
		ds->nkeys = 0;
	}
	if (!strcmp(f[4], "\\N"))
		return 0; /* a tenant without a usable key */
	if (ds->nkeys == ds->capkeys) {
		size_t cap = ds->capkeys ? 2 * ds->capkeys : 8;
		struct doc_key *k = realloc(ds->keys, cap * sizeof *k);
		if (!k) {
			ds->bad = 1;
			return -1;
		}
		ds->keys = k;
		ds->capkeys = cap;
	}
	struct doc_key *k = &ds->keys[ds->nkeys];
	char *end;
	if (field_copy(k->id, sizeof k->id, f[4]) != 0 || field_copy(k->sha, sizeof k->sha, f[5]) != 0 ||
	    (strcmp(f[6], "t") && strcmp(f[6], "f")) || (strcmp(f[7], "t") && strcmp(f[7], "f"))) {
		ds->bad = 1;
		return -1;
	}
	k->w = f[6][0] == 't';
	k->r = f[7][0] == 't';
	k->exp = strtoll(f[8], &end, 10);
	if (*end || end == f[8]) {
		ds->bad = 1;
		return -1;
	}
	ds->nkeys++;
	return 0;
}


void doc_rows_finish(struct doc_rows *d)
{
	if (!d->ungrouped && !d->bad && !d->stopped && group_end(d) != 0)
		d->stopped = 1;
}
