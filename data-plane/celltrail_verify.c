/* celltrail-verify: checks an NDJSON export of a tenant's events against
 * the region's signed checkpoints, offline (no network).
 *
 *   celltrail-verify --jwks FILE --checkpoints FILE [--max-lag SECONDS] EXPORT.ndjson
 *
 * The export ends with the tenant's log (`{"log":...}` lines: every leaf
 * hash in order, which leaves retention removed, whether the export is
 * complete) and the checkpoint of the log's head when the export started.
 * The checks:
 *   - every checkpoint (the file's and the export's) is signed ES256 by a
 *     key of the JWK set, and is of the export's tenant;
 *   - the tree rebuilt from the leaf hashes has each checkpoint's root at
 *     its size (two checkpoints of one size agree); a checkpoint larger than
 *     the log was signed after the export's own (else the log was cut short);
 *   - every event line's leaf hash (SHA-256 of 0x00 and the line's bytes,
 *     without the newline) is a leaf of the log, each leaf once; in a
 *     complete export, every leaf not removed has its event;
 *   - no event is backdated: one received more than --max-lag (300) seconds
 *     before the iat of a checkpoint that does not cover its leaf is forged;
 *     an event not in the log is judged against the newest checkpoint (within
 *     --max-lag of it, it is only "not yet covered").
 * The log lines' event_ids (optional) only name failures, never decide
 * one: in a complete export, an event line that is no leaf while the leaf
 * recorded for its id has no event is one failure, that event altered, at
 * that leaf; a leaf without its event names the id recorded for it.
 * Exit 0 and a `verified:` line; 1 and a `FAIL ` line per failure, the
 * first first (the export's shape, then checkpoints, then events and leaves
 * in log order); 2 on a usage error (options, unreadable file, unusable
 * JWK set). Memory: 32 bytes and a hash-table slot per leaf, and the
 * position of each leaf's event; the export is read twice. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "jwk.h"
#include "merkle.h"
#include "names.h"
#include "timefmt.h"

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
/* An event is at most a few hundred kB; a longer line is not one. */
#define MAX_LINE (16u << 20)
/* The export writes up to 1000 leaves per log line. */
#define MAX_LOG_LINE_LEAVES 1000
/* Leaves a log can have here: indexes are kept in 32 bits. */
#define MAX_LEAVES 0xfffffff0u

static const char usage_text[] =
	"usage: celltrail-verify --jwks FILE --checkpoints FILE [--max-lag SECONDS] EXPORT.ndjson\n"
	"  Verifies an NDJSON export of a tenant's events (GET /v1/events/export?format=ndjson)\n"
	"  against the region's signed checkpoints, offline.\n"
	"  --jwks FILE         the data plane's GET /.well-known/jwks.json\n"
	"  --checkpoints FILE  checkpoints saved earlier: one compact JWS per line (or a JSON\n"
	"                      object with a \"checkpoint\" member); blank lines ignored\n"
	"  --max-lag SECONDS   how long an event may take to reach the log (default 300)\n"
	"  exit 0: verified; 1: a check failed (each failure on a FAIL line); 2: usage error\n";

/* ---- failures, printed sorted: (group, position, sub, sequence) ---- */

enum group { G_EXPORT, G_CHECKPOINT, G_TRAIL };

struct failure {
	int group;
	uint64_t pos;
	int sub;
	size_t seq;
	char *text;
};

struct failures {
	struct failure *v;
	size_t n, cap;
};

static void fail_add(struct failures *f, int group, uint64_t pos, int sub, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail_add(struct failures *f, int group, uint64_t pos, int sub, const char *fmt, ...)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;
		struct failure *v = realloc(f->v, cap * sizeof *v);
		if (!v) {
			fprintf(stderr, "celltrail-verify: out of memory\n");
			exit(EXIT_USAGE);
		}
		f->v = v;
		f->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0) {
		fprintf(stderr, "celltrail-verify: out of memory\n");
		exit(EXIT_USAGE);
	}
	va_end(ap);
	f->v[f->n] = (struct failure){ group, pos, sub, f->n, text };
	f->n++;
}

static int fail_cmp(const void *a, const void *b)
{
	const struct failure *x = a, *y = b;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->pos != y->pos)
		return x->pos < y->pos ? -1 : 1;
	if (x->sub != y->sub)
		return x->sub < y->sub ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Takes failure i back (a better-named one replaces it); fail_compact
 * then closes the gaps. */
static void fail_drop(struct failures *f, size_t i)
{
	free(f->v[i].text);
	f->v[i].text = NULL;
}

static void fail_compact(struct failures *f)
{
	size_t o = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].text)
			f->v[o++] = f->v[i];
	f->n = o;
}

static void fail_free(struct failures *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].text);
	free(f->v);
}

/* ---- names printed in messages ---- */

/* A string from the input, made safe to print inside quotes on one line. */
static void printable(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[o++] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
	}
	if (len > 0 && o + 4 >= cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void fmt_iat(int64_t iat, char out[32])
{
	time_t t = (time_t)iat;
	struct tm tm;
	if (iat < 0 || iat > 253402300799 || !gmtime_r(&t, &tm) ||
	    !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%" PRId64, iat);
}

/* ---- checkpoints ---- */

struct cp {
	struct checkpoint c;
	char where[96];      /* "line 3 of FILE" or "the export" */
	int own;             /* the export's own */
};

struct cps {
	struct cp *v;
	size_t n, cap;
};

static int cps_add(struct cps *s, const struct checkpoint *c, const char *where, int own)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct cp *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n] = (struct cp){ .c = *c, .own = own };
	snprintf(s->v[s->n].where, sizeof s->v[s->n].where, "%s", where);
	s->n++;
	return 0;
}

static int cp_cmp(const void *a, const void *b)
{
	const struct cp *x = a, *y = b;
	if (x->c.tree_size != y->c.tree_size)
		return x->c.tree_size < y->c.tree_size ? -1 : 1;
	if (x->c.iat != y->c.iat)
		return x->c.iat < y->c.iat ? -1 : 1;
	return 0;
}

static void cp_name(const struct checkpoint *c, char *out, size_t cap)
{
	char t[32];
	fmt_iat(c->iat, t);
	snprintf(out, cap, "checkpoint tree_size=%" PRId64 " iat=%s", c->tree_size, t);
}

/* ---- the JWK set ---- */

static int load_jwks(const char *path, struct jwk **keys, size_t *n)
{
	json_error_t je;
	json_t *set = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	json_t *arr = set ? json_object_get(set, "keys") : NULL;
	int rc = -1;
	*keys = NULL;
	*n = 0;
	if (!set) {
		fprintf(stderr, "celltrail-verify: %s: not a JSON file: %s\n", path, je.text);
		goto out;
	}
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		fprintf(stderr, "celltrail-verify: %s: not a JWK set (no \"keys\" array of keys)\n", path);
		goto out;
	}
	*keys = calloc(json_array_size(arr), sizeof **keys);
	if (!*keys)
		goto out;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		char err[160];
		if (jwk_from_json(json_array_get(arr, i), &(*keys)[i], err, sizeof err) != 0) {
			fprintf(stderr, "celltrail-verify: %s: key %zu: %s\n", path, i, err);
			goto out;
		}
		(*n)++;
	}
	rc = 0;
out:
	json_decref(set);
	return rc;
}

static void free_keys(struct jwk *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jwk_clear(&keys[i]);
	free(keys);
}

/* The token of a checkpoints-file line: a compact JWS, or a JSON object
 * with a "checkpoint" member (what GET /v1/checkpoints/latest answers with
 * Accept: application/json). Verifies it into `c`; -1 with `err`. */
static int checkpoint_of_text(const char *s, size_t len, const struct jwk *keys, size_t nkeys,
                              struct checkpoint *c, char *err, size_t errlen)
{
	if (len > 0 && s[0] == '{') {
		json_error_t je;
		json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
		json_t *t = json_object_get(o, "checkpoint");
		int rc = -1;
		if (!json_is_string(t))
			snprintf(err, errlen, "a JSON line without a \"checkpoint\" string");
		else
			rc = checkpoint_verify(json_string_value(t), json_string_length(t), keys, nkeys, c, err,
			                       errlen);
		json_decref(o);
		return rc;
	}
	return checkpoint_verify(s, len, keys, nkeys, c, err, errlen);
}

static int load_checkpoints(const char *path, const struct jwk *keys, size_t nkeys, struct cps *cps,
                            struct failures *f)
{
	FILE *in = fopen(path, "rb");
	if (!in) {
		fprintf(stderr, "celltrail-verify: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int rc = 0;
	for (uint64_t no = 1; (got = getline(&line, &cap, in)) >= 0; no++) {
		size_t a = 0, b = (size_t)got;
		while (a < b && strchr(" \t\r\n", line[a]) && line[a])
			a++;
		while (b > a && strchr(" \t\r\n", line[b - 1]) && line[b - 1])
			b--;
		if (a == b)
			continue;
		struct checkpoint c;
		char err[200], where[96], shown[40];
		printable(path, strlen(path), shown, sizeof shown);
		snprintf(where, sizeof where, "line %" PRIu64 " of %s", no, shown);
		if (checkpoint_of_text(line + a, b - a, keys, nkeys, &c, err, sizeof err) != 0)
			fail_add(f, G_CHECKPOINT, 0, 0, "checkpoint on %s: %s", where, err);
		else if (cps_add(cps, &c, where, 0) != 0)
			rc = -1;
	}
	if (ferror(in)) {
		fprintf(stderr, "celltrail-verify: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(in);
	return rc;
}

/* ---- the export's log ---- */

struct trail {
	char tenant[37];
	int64_t size;            /* declared tree_size */
	int complete;
	uint64_t n;              /* leaves read */
	merkle_hash *leaf;
	uint8_t *removed;        /* per leaf */
	char **id;               /* per leaf: event_ids' entry (untrusted, names only), NULL none */
	uint64_t nremoved;
	uint64_t *event_at;      /* per leaf: 1 + byte offset of its event's line, 0 none */
	uint32_t *slot;          /* hash table: 1 + leaf index, 0 empty */
	uint64_t slots;          /* a power of two */
	int logs;                /* log lines seen */
	int have_cp;
	struct checkpoint own;
	int own_ok;
};

static int trail_grow(struct trail *t, uint64_t want, uint64_t *cap)
{
	if (want <= *cap)
		return 0;
	uint64_t c = *cap ? *cap : 1024;
	while (c < want)
		c *= 2;
	merkle_hash *l = realloc(t->leaf, c * sizeof *l);
	if (!l)
		return -1;
	t->leaf = l;
	uint8_t *r = realloc(t->removed, c);
	if (!r)
		return -1;
	t->removed = r;
	char **id = realloc(t->id, c * sizeof *id);
	if (!id)
		return -1;
	t->id = id;
	*cap = c;
	return 0;
}

/* One {"log":{...}} line; -1 with a sentence in err. */
static int read_log_line(struct trail *t, json_t *log, uint64_t *cap, char *err, size_t errlen)
{
	const char *tenant = json_string_value(json_object_get(log, "tenant_id"));
	json_t *size = json_object_get(log, "tree_size"), *complete = json_object_get(log, "complete");
	json_t *from = json_object_get(log, "from"), *hashes = json_object_get(log, "leaf_hashes");
	json_t *removed = json_object_get(log, "removed");
	json_t *ids = json_object_get(log, "event_ids"); /* optional: older exports lack it */

	if (!json_is_object(log) || !tenant || !name_valid_uuid(tenant) || !json_is_integer(size) ||
	    json_integer_value(size) < 1 || !json_is_boolean(complete) || !json_is_integer(from) ||
	    !json_is_array(hashes) || !json_is_array(removed)) {
		snprintf(err, errlen, "a log line without tenant_id, tree_size, complete, from, leaf_hashes "
		                      "and removed of their types");
		return -1;
	}
	if (t->logs == 0) {
		snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
		t->size = json_integer_value(size);
		t->complete = json_is_true(complete);
	} else if (strcmp(t->tenant, tenant) || t->size != json_integer_value(size) ||
	           t->complete != json_is_true(complete)) {
		snprintf(err, errlen, "a log line whose tenant_id, tree_size or complete differs from the first's");
		return -1;
	}
	t->logs++;
	size_t nh = json_array_size(hashes);
	if (json_integer_value(from) < 0 || (uint64_t)json_integer_value(from) != t->n) {
		snprintf(err, errlen, "a log line from %" PRId64 " where leaf %" PRIu64 " is next",
		         (int64_t)json_integer_value(from), t->n);
		return -1;
	}
	if (nh == 0 || nh > MAX_LOG_LINE_LEAVES || t->n + nh > (uint64_t)t->size || t->n + nh > MAX_LEAVES) {
		snprintf(err, errlen, "a log line with %zu leaf hashes from leaf %" PRIu64 " of %" PRId64, nh, t->n,
		         t->size);
		return -1;
	}
	if (trail_grow(t, t->n + nh, cap) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nh; i++) {
		json_t *h = json_array_get(hashes, i);
		if (!json_is_string(h) ||
		    checkpoint_unb64_hash(json_string_value(h), json_string_length(h), t->leaf[t->n + i])) {
			snprintf(err, errlen, "leaf hash %" PRIu64 " is not the base64url of 32 bytes", t->n + i);
			return -1;
		}
		t->removed[t->n + i] = 0;
		t->id[t->n + i] = NULL;
	}
	int64_t prev = -1;
	for (size_t i = 0; i < json_array_size(removed); i++) {
		json_t *r = json_array_get(removed, i);
		int64_t v = json_is_integer(r) ? json_integer_value(r) : -1;
		if (v <= prev || v < (int64_t)t->n || v >= (int64_t)(t->n + nh)) {
			snprintf(err, errlen, "\"removed\" of the log line from %" PRIu64 " is not increasing leaf "
			                      "indexes of its range", t->n);
			return -1;
		}
		t->removed[v] = 1;
		t->nremoved++;
		prev = v;
	}
	/* The database's ids: they only name a failure, never decide one. */
	if (ids && (!json_is_array(ids) || json_array_size(ids) != nh)) {
		snprintf(err, errlen, "\"event_ids\" of the log line from %" PRIu64 " is not an array as long as its "
		                      "leaf_hashes", t->n);
		return -1;
	}
	for (size_t i = 0; ids && i < nh; i++) {
		json_t *e = json_array_get(ids, i);
		if (!json_is_string(e) && !json_is_null(e)) {
			while (i--) {
				free(t->id[t->n + i]);
				t->id[t->n + i] = NULL;
			}
			snprintf(err, errlen, "\"event_ids\" of the log line from %" PRIu64 " holds something other "
			                      "than strings and nulls", t->n);
			return -1;
		}
		if (json_is_string(e) && !(t->id[t->n + i] = strdup(json_string_value(e)))) {
			while (i--) {
				free(t->id[t->n + i]);
				t->id[t->n + i] = NULL;
			}
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	t->n += nh;
	return 0;
}

static uint64_t hash_slot(const merkle_hash h, uint64_t slots)
{
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v & (slots - 1);
}

static int trail_index(struct trail *t)
{
	t->slots = 1;
	while (t->slots < 2 * t->n + 2)
		t->slots *= 2;
	t->slot = calloc(t->slots, sizeof *t->slot);
	t->event_at = calloc(t->n ? t->n : 1, sizeof *t->event_at);
	if (!t->slot || !t->event_at)
		return -1;
	for (uint64_t i = 0; i < t->n; i++) {
		uint64_t s = hash_slot(t->leaf[i], t->slots);
		while (t->slot[s])
			s = (s + 1) & (t->slots - 1);
		t->slot[s] = (uint32_t)(i + 1);
	}
	return 0;
}

/* The leaf with hash h that no event has claimed yet, else one that has
 * (*dup set), else -1. */
static int64_t trail_find(const struct trail *t, const merkle_hash h, int *dup)
{
	int64_t taken = -1;
	*dup = 0;
	for (uint64_t s = hash_slot(h, t->slots); t->slot[s]; s = (s + 1) & (t->slots - 1)) {
		uint64_t i = t->slot[s] - 1;
		if (memcmp(t->leaf[i], h, MERKLE_HASH_LEN) != 0)
			continue;
		if (!t->event_at[i])
			return (int64_t)i;
		taken = (int64_t)i;
	}
	*dup = taken >= 0;
	return taken;
}

static void trail_free(struct trail *t)
{
	for (uint64_t i = 0; t->id && i < t->n; i++)
		free(t->id[i]);
	free(t->id);
	free(t->leaf);
	free(t->removed);
	free(t->event_at);
	free(t->slot);
}

/* ---- reading the export ---- */

enum kind { K_EVENT, K_LOG, K_CHECKPOINT };

static enum kind kind_of(const char *s, size_t len)
{
	if (len >= 7 && !memcmp(s, "{\"log\":", 7))
		return K_LOG;
	if (len >= 14 && !memcmp(s, "{\"checkpoint\":", 14))
		return K_CHECKPOINT;
	return K_EVENT;
}

/* Reads one line into *line (its bytes without the '\n'); 1, 0 at the end,
 * -1 on a read error. A line longer than MAX_LINE is returned cut, *toolong. */
static int next_line(FILE *in, char **line, size_t *cap, size_t *len, int *toolong)
{
	errno = 0;
	ssize_t got = getline(line, cap, in);
	if (got < 0)
		return ferror(in) ? -1 : 0;
	*len = (size_t)got;
	if (*len > 0 && (*line)[*len - 1] == '\n')
		(*len)--;
	*toolong = *len > MAX_LINE;
	return 1;
}

/* Pass 1: the trailer (log lines and the export's checkpoint), and the
 * shape: events first, then log lines, then one checkpoint line, nothing
 * after. Returns -1 on a read error. */
static int read_trailer(FILE *in, const char *path, const struct jwk *keys, size_t nkeys, struct trail *t,
                        struct failures *f, uint64_t *events)
{
	char *line = NULL, err[240];
	size_t cap = 0, len;
	uint64_t leaf_cap = 0, no = 0;
	int toolong, r, stage = 0; /* 0 events, 1 log lines, 2 checkpoint seen */
	int bad = 0;

	while ((r = next_line(in, &line, &cap, &len, &toolong)) == 1) {
		no++;
		enum kind k = kind_of(line, len);
		if (k == K_EVENT && stage > 0 && len == 0)
			continue; /* a blank line after the export */
		if (k == K_EVENT) {
			if (stage > 0 && !bad) {
				fail_add(f, G_EXPORT, no, 0, "export line %" PRIu64 ": an event after the log", no);
				bad = 1;
			}
			(*events)++;
			continue;
		}
		if (bad)
			continue;
		json_error_t je;
		json_t *o = toolong ? NULL : json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
		if (k == K_LOG) {
			if (stage > 1) {
				fail_add(f, G_EXPORT, no, 0, "export line %" PRIu64 ": a log line after the checkpoint", no);
				bad = 1;
			} else if (!o || read_log_line(t, json_object_get(o, "log"), &leaf_cap, err, sizeof err)) {
				fail_add(f, G_EXPORT, no, 0, "export line %" PRIu64 ": %s", no,
				         o ? err : "a log line that is not JSON");
				bad = 1;
			}
			stage = 1;
		} else {
			json_t *tok = json_object_get(o, "checkpoint");
			if (stage != 1) {
				fail_add(f, G_EXPORT, no, 0, "export line %" PRIu64 ": a checkpoint line %s", no,
				         stage == 0 ? "without log lines before it" : "after the checkpoint line");
				bad = 1;
			} else if (!json_is_string(tok)) {
				fail_add(f, G_EXPORT, no, 0, "export line %" PRIu64 ": a checkpoint line without a "
				         "\"checkpoint\" string", no);
				bad = 1;
			} else {
				t->have_cp = 1;
				if (checkpoint_verify(json_string_value(tok), json_string_length(tok), keys, nkeys,
				                      &t->own, err, sizeof err) == 0)
					t->own_ok = 1;
				else
					fail_add(f, G_CHECKPOINT, 0, 0, "checkpoint of the export (line %" PRIu64 "): %s", no,
					         err);
			}
			stage = 2;
		}
		json_decref(o);
	}
	free(line);
	if (r < 0) {
		fprintf(stderr, "celltrail-verify: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!bad) {
		if (t->logs == 0)
			fail_add(f, G_EXPORT, 0, 0, "export: no log lines (was the log on when it was exported?)");
		else if (!t->have_cp)
			fail_add(f, G_EXPORT, no, 0, "export: no checkpoint line after the log (cut short?)");
		else if (t->n != (uint64_t)t->size)
			fail_add(f, G_EXPORT, no, 0, "export: the log lines hold %" PRIu64 " leaves of tree_size %" PRId64,
			         t->n, t->size);
	}
	return 0;
}

/* ---- the checks ---- */

/* Roots at every checkpoint's size; tenants; checkpoints beyond the log. */
static void check_checkpoints(struct trail *t, struct cps *cps, struct failures *f)
{
	char name[96];
	if (cps->n)
		qsort(cps->v, cps->n, sizeof *cps->v, cp_cmp);
	struct merkle_frontier fr;
	merkle_frontier_init(&fr);
	uint64_t pushed = 0;
	for (size_t i = 0; i < cps->n; i++) {
		struct cp *c = &cps->v[i];
		uint64_t pos = (uint64_t)c->c.tree_size;
		cp_name(&c->c, name, sizeof name);
		if (strcmp(c->c.tenant_id, t->tenant) != 0) {
			fail_add(f, G_CHECKPOINT, pos, 0, "%s (%s): of tenant %s, not the export's %s", name, c->where,
			         c->c.tenant_id, t->tenant);
			continue;
		}
		/* one size, one root */
		for (size_t j = 0; j < i; j++)
			if (cps->v[j].c.tree_size == c->c.tree_size && !strcmp(cps->v[j].c.tenant_id, t->tenant) &&
			    memcmp(cps->v[j].c.root, c->c.root, MERKLE_HASH_LEN) != 0) {
				fail_add(f, G_CHECKPOINT, pos, 1, "%s (%s): another root than the checkpoint of the same "
				         "size on %s", name, c->where, cps->v[j].where);
				break;
			}
		if (pos <= t->n) {
			while (pushed < pos)
				merkle_frontier_push(&fr, t->leaf[pushed++], NULL, NULL);
			merkle_hash root;
			merkle_frontier_root(&fr, root);
			if (memcmp(root, c->c.root, MERKLE_HASH_LEN) != 0)
				fail_add(f, G_CHECKPOINT, pos, 0, "%s (%s): its root is not the root of the export's first "
				         "%" PRIu64 " leaves: the log was altered", name, c->where, pos);
		} else if (t->own_ok && c->c.iat < t->own.iat) {
			char own[96];
			cp_name(&t->own, own, sizeof own);
			fail_add(f, G_CHECKPOINT, pos, 0, "%s (%s): signed before the export's %s, yet larger than its "
			         "log of %" PRIu64 " leaves: the log was cut short", name, c->where, own, t->n);
		}
	}
}

/* The most recent iat among checkpoints of at most `leaf` leaves (those
 * that do not cover leaf `leaf`); cps sorted by size, prefix[] their
 * running maxima. -1 (none) or the index of the checkpoint. */
static ssize_t newest_not_covering(const struct cps *cps, const ssize_t *prefix, uint64_t leaf)
{
	size_t lo = 0, hi = cps->n; /* first with tree_size > leaf */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if ((uint64_t)cps->v[mid].c.tree_size <= leaf)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? -1 : prefix[lo - 1];
}

/* received_at (µs, from 1970 on) more than `lag` seconds before `iat`:
 * compared in whole seconds, so that no signed iat can overflow it. */
static int before(int64_t received_us, int64_t iat, int64_t lag)
{
	return received_us / 1000000 < iat - lag;
}

/* An event line of a complete export that is no leaf: if the leaf the log
 * recorded for its id has no event, the two are one altered event. */
struct stray {
	char *id;
	struct failures *in; /* where its failure or note is */
	size_t idx;
	int used;
};

struct strays {
	struct stray *v;
	size_t n, cap;
};

static int stray_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stray *)a)->id, ((const struct stray *)b)->id);
}

/* The first unused stray of that id, or NULL; v sorted. */
static struct stray *stray_find(struct strays *s, const char *id)
{
	size_t lo = 0, hi = s->n; /* first with id >= */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(s->v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < s->n && !strcmp(s->v[lo].id, id); lo++)
		if (!s->v[lo].used)
			return &s->v[lo];
	return NULL;
}

struct pending {
	size_t *v;   /* failure indexes waiting for a position */
	size_t n, cap;
};

/* Notes the event line (id `jid`) whose failure or note is in->v[idx], when
 * the export is complete and its log names events. -1 out of memory. */
static int stray_add(struct strays *s, const struct trail *t, json_t *jid, struct failures *in, size_t idx)
{
	if (!t->complete || !json_is_string(jid))
		return 0;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 16;
		struct stray *v = realloc(s->v, ncap * sizeof *v);
		if (!v)
			return -1;
		s->v = v;
		s->cap = ncap;
	}
	char *id = strdup(json_string_value(jid));
	if (!id)
		return -1;
	s->v[s->n++] = (struct stray){ id, in, idx, 0 };
	return 0;
}

/* The id of the event line at byte `off` (for naming a leaf's neighbour). */
static void id_at(FILE *in, uint64_t off, char *out, size_t cap)
{
	char *line = NULL;
	size_t lcap = 0, len;
	int toolong;
	snprintf(out, cap, "?");
	if (fseeko(in, (off_t)off, SEEK_SET) == 0 && next_line(in, &line, &lcap, &len, &toolong) == 1 &&
	    !toolong) {
		json_t *o = json_loadb(line, len, 0, NULL);
		json_t *id = json_object_get(o, "id");
		if (json_is_string(id))
			printable(json_string_value(id), json_string_length(id), out, cap);
		json_decref(o);
	}
	free(line);
}

/* Pass 2: every event line against the log and the checkpoints. */
static int check_events(FILE *in, const char *path, struct trail *t, const struct cps *cps, int64_t max_lag,
                        struct failures *f, struct failures *notes)
{
	char *line = NULL;
	size_t cap = 0, len;
	int toolong, r;
	uint64_t no = 0, off = 0;
	struct pending pend = {0};
	struct strays strays = {0};
	int rc = -1;

	/* Of the tenant's checkpoints: the running maximum of iat by size, and
	 * the newest overall (another tenant's were reported already). */
	ssize_t *prefix = malloc((cps->n ? cps->n : 1) * sizeof *prefix);
	if (!prefix)
		goto out;
	ssize_t newest = -1;
	for (size_t i = 0; i < cps->n; i++) {
		prefix[i] = i > 0 ? prefix[i - 1] : -1;
		if (strcmp(cps->v[i].c.tenant_id, t->tenant) != 0)
			continue;
		if (prefix[i] < 0 || cps->v[prefix[i]].c.iat < cps->v[i].c.iat)
			prefix[i] = (ssize_t)i;
		if (newest < 0 || cps->v[i].c.iat > cps->v[newest].c.iat)
			newest = (ssize_t)i;
	}

	while ((r = next_line(in, &line, &cap, &len, &toolong)) == 1) {
		no++;
		uint64_t here = off;
		off += len + 1;
		if (kind_of(line, len) != K_EVENT)
			break; /* the trailer: pass 1 checked the shape */
		char id[120], name[160];
		json_t *o = toolong ? NULL : json_loadb(line, len, 0, NULL);
		json_t *jid = json_object_get(o, "id");
		if (json_is_string(jid)) {
			printable(json_string_value(jid), json_string_length(jid), id, sizeof id);
			snprintf(name, sizeof name, "event \"%s\"", id);
		} else {
			snprintf(name, sizeof name, "event on export line %" PRIu64, no);
		}
		const char *rtext = json_string_value(json_object_get(o, "received_at"));
		int64_t rat = 0;
		int have_rat = rtext && timefmt_parse(rtext, &rat) == 0;

		merkle_hash h;
		merkle_leaf_hash(line, len, h);
		int dup;
		int64_t leaf = t->n ? trail_find(t, h, &dup) : -1;
		if (leaf >= 0) {
			/* every pending event not in the log sits above this one */
			for (size_t i = 0; i < pend.n; i++)
				f->v[pend.v[i]].pos = (uint64_t)leaf + 1;
			pend.n = 0;
		}
		if (leaf >= 0 && dup) {
			fail_add(f, G_TRAIL, (uint64_t)leaf, 0, "%s (leaf %" PRId64 "): appears twice in the export",
			         name, leaf);
		} else if (leaf >= 0) {
			t->event_at[leaf] = here + 1;
			if (!o || !json_is_object(o))
				fail_add(f, G_TRAIL, (uint64_t)leaf, 0, "%s (leaf %" PRId64 "): not a JSON object", name, leaf);
			else if (!have_rat)
				fail_add(f, G_TRAIL, (uint64_t)leaf, 0, "%s (leaf %" PRId64 "): received_at is not an RFC "
				         "3339 time", name, leaf);
			if (t->removed[leaf])
				fail_add(f, G_TRAIL, (uint64_t)leaf, 0, "%s (leaf %" PRId64 "): in the export, yet its leaf "
				         "is marked removed", name, leaf);
			ssize_t c = newest_not_covering(cps, prefix, (uint64_t)leaf);
			if (have_rat && c >= 0 && before(rat, cps->v[c].c.iat, max_lag)) {
				char cn[96];
				cp_name(&cps->v[c].c, cn, sizeof cn);
				fail_add(f, G_TRAIL, (uint64_t)leaf, 0, "%s (leaf %" PRId64 "): received_at %s is more than "
				         "%" PRId64 " s before %s, which does not cover it: backdated (forged)", name, leaf,
				         rtext, max_lag, cn);
			}
		} else {
			/* Not in the log: forged or altered, unless too recent for
			 * any checkpoint to cover it. */
			int late = 0;
			char cn[96] = "";
			if (newest >= 0) {
				cp_name(&cps->v[newest].c, cn, sizeof cn);
				late = !have_rat || before(rat, cps->v[newest].c.iat, max_lag);
			}
			if (late || newest < 0) {
				if (pend.n == pend.cap) {
					size_t ncap = pend.cap ? 2 * pend.cap : 16;
					size_t *v = realloc(pend.v, ncap * sizeof *v);
					if (!v)
						goto out;
					pend.v = v;
					pend.cap = ncap;
				}
				pend.v[pend.n++] = f->n;
				if (stray_add(&strays, t, jid, f, f->n) != 0)
					goto out;
				if (!have_rat)
					fail_add(f, G_TRAIL, 0, 0, "%s (no leaf): not in the log, and no RFC 3339 received_at",
					         name);
				else if (newest >= 0)
					fail_add(f, G_TRAIL, 0, 0, "%s (no leaf): not in the log, and received_at %s is more than "
					         "%" PRId64 " s before the newest %s: altered or forged", name, rtext, max_lag, cn);
				else
					fail_add(f, G_TRAIL, 0, 0, "%s (no leaf): not in the log", name);
			} else {
				if (stray_add(&strays, t, jid, notes, notes->n) != 0)
					goto out;
				fail_add(notes, G_TRAIL, 0, 0, "%s: not yet covered by a checkpoint (received_at %s, "
				         "within %" PRId64 " s of the newest %s)", name, rtext, max_lag, cn);
			}
		}
		json_decref(o);
	}
	if (r < 0) {
		fprintf(stderr, "celltrail-verify: %s: %s\n", path, strerror(errno));
		goto out;
	}

	/* Leaves without their event, in a complete export: one whose recorded
	 * id is an event line that is no leaf is that event, altered. */
	if (strays.n)
		qsort(strays.v, strays.n, sizeof *strays.v, stray_cmp);
	if (t->complete) {
		int64_t below = -1; /* the last leaf with an event, below i */
		for (uint64_t i = 0; i < t->n; i++) {
			if (t->event_at[i]) {
				below = (int64_t)i;
				continue;
			}
			if (t->removed[i])
				continue;
			char rid[120], nm[160] = "";
			if (t->id[i]) {
				printable(t->id[i], strlen(t->id[i]), rid, sizeof rid);
				struct stray *st = stray_find(&strays, t->id[i]);
				if (st) {
					st->used = 1;
					fail_drop(st->in, st->idx);
					fail_add(f, G_TRAIL, i, 1, "event \"%s\" (leaf %" PRIu64 "): its content is not what the "
					         "log recorded: altered", rid, i);
					continue;
				}
				snprintf(nm, sizeof nm, "event \"%s\", ", rid);
			}
			uint64_t above = i + 1;
			while (above < t->n && !t->event_at[above])
				above++;
			char a[120], b[120];
			if (below >= 0)
				id_at(in, t->event_at[below] - 1, a, sizeof a);
			if (above < t->n)
				id_at(in, t->event_at[above] - 1, b, sizeof b);
			if (below >= 0 && above < t->n)
				fail_add(f, G_TRAIL, i, 1, "leaf %" PRIu64 " (%sbetween events \"%s\" and \"%s\"): its event is "
				         "not in the export (deleted?)", i, nm, a, b);
			else if (below >= 0)
				fail_add(f, G_TRAIL, i, 1, "leaf %" PRIu64 " (%safter event \"%s\"): its event is not in the "
				         "export (deleted?)", i, nm, a);
			else if (above < t->n)
				fail_add(f, G_TRAIL, i, 1, "leaf %" PRIu64 " (%sbefore event \"%s\"): its event is not in the "
				         "export (deleted?)", i, nm, b);
			else
				fail_add(f, G_TRAIL, i, 1, "leaf %" PRIu64 " (%sno event of the log is in the export): its "
				         "event is not in the export (deleted?)", i, nm);
		}
	}
	fail_compact(f);
	fail_compact(notes);
	rc = 0;
out:
	for (size_t i = 0; i < strays.n; i++)
		free(strays.v[i].id);
	free(strays.v);
	free(prefix);
	free(pend.v);
	free(line);
	return rc;
}

static int parse_lag(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 100LL * 365 * 86400 || s[0] == '-' || s[0] == ' ')
		return -1;
	*out = v;
	return 0;
}

/* tests/fuzz/fuzz_verify.c includes this file with another name for main. */
#ifndef CELLTRAIL_VERIFY_MAIN
#define CELLTRAIL_VERIFY_MAIN main
#endif
int CELLTRAIL_VERIFY_MAIN(int argc, char **argv);

int CELLTRAIL_VERIFY_MAIN(int argc, char **argv)
{
	const char *jwks = NULL, *cpfile = NULL, *export = NULL;
	int64_t max_lag = 300;
	int rc = EXIT_USAGE;
	struct jwk *keys = NULL;
	size_t nkeys = 0;
	struct cps cps = {0};
	struct failures f = {0}, notes = {0};
	struct trail t = {0};
	FILE *in = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (!strcmp(a, "--jwks") || !strcmp(a, "--checkpoints") || !strcmp(a, "--max-lag")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "celltrail-verify: %s needs a value\n%s", a, usage_text);
				return EXIT_USAGE;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--jwks"))
				jwks = v;
			else if (!strcmp(a, "--checkpoints"))
				cpfile = v;
			else if (parse_lag(v, &max_lag) != 0) {
				fprintf(stderr, "celltrail-verify: --max-lag wants whole seconds, not '%s'\n", v);
				return EXIT_USAGE;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "celltrail-verify: unknown option %s\n%s", a, usage_text);
			return EXIT_USAGE;
		} else if (export) {
			fprintf(stderr, "celltrail-verify: one export only\n%s", usage_text);
			return EXIT_USAGE;
		} else {
			export = a;
		}
	}
	if (!jwks || !cpfile || !export) {
		fprintf(stderr, "celltrail-verify: --jwks, --checkpoints and the export are required\n%s", usage_text);
		return EXIT_USAGE;
	}
	if (load_jwks(jwks, &keys, &nkeys) != 0)
		goto out;
	in = fopen(export, "rb");
	if (!in) {
		fprintf(stderr, "celltrail-verify: %s: %s\n", export, strerror(errno));
		goto out;
	}
	if (load_checkpoints(cpfile, keys, nkeys, &cps, &f) != 0)
		goto out;

	uint64_t events = 0;
	if (read_trailer(in, export, keys, nkeys, &t, &f, &events) != 0)
		goto out;
	int shape_ok = 1;
	for (size_t i = 0; i < f.n; i++)
		if (f.v[i].group == G_EXPORT)
			shape_ok = 0;
	if (shape_ok) {
		if (t.own_ok && cps_add(&cps, &t.own, "the export's own", 1) != 0)
			goto oom;
		if (t.own_ok && t.own.tree_size != t.size) {
			char name[96];
			cp_name(&t.own, name, sizeof name);
			fail_add(&f, G_CHECKPOINT, (uint64_t)t.own.tree_size, 0, "%s (the export's own): not of the "
			         "size of the export's log, %" PRId64, name, t.size);
		}
		check_checkpoints(&t, &cps, &f);
		if (trail_index(&t) != 0)
			goto oom;
		rewind(in);
		if (check_events(in, export, &t, &cps, max_lag, &f, &notes) != 0)
			goto out;
	}

	if (f.n)
		qsort(f.v, f.n, sizeof *f.v, fail_cmp);
	for (size_t i = 0; i < f.n; i++)
		printf("FAIL %s\n", f.v[i].text);
	if (f.n == 0) {
		int64_t newest = 0;
		for (size_t i = 0; i < cps.n; i++)
			if (cps.v[i].c.tree_size > newest)
				newest = cps.v[i].c.tree_size;
		printf("verified: %" PRIu64 " events, %" PRIu64 " leaves (%" PRIu64 " removed), %zu checkpoints, "
		       "newest tree size %" PRId64 "%s\n", events, t.n, t.nremoved, cps.n, newest,
		       notes.n ? "; some events not yet covered (see the notes)" : "");
	}
	for (size_t i = 0; i < notes.n; i++)
		printf("note: %s\n", notes.v[i].text);
	rc = f.n ? EXIT_FAILED : EXIT_OK;
	goto out;
oom:
	fprintf(stderr, "celltrail-verify: out of memory\n");
	rc = EXIT_USAGE;
out:
	if (in)
		fclose(in);
	trail_free(&t);
	free(cps.v);
	fail_free(&f);
	fail_free(&notes);
	free_keys(keys, nkeys);
	return rc;
}
