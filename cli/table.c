/* Tables and object views for people (table.h). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct table {
	size_t ncols, nrows, cap;
	char *headers[TABLE_MAX_COLS];
	char **cells; /* nrows * ncols, row after row */
	int failed;
};

char *table_sanitize(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f) {
			out[o++] = '?';
		} else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		           (unsigned char)s[i + 1] <= 0x9f) {
			/* U+0080..U+009F: the C1 controls (CSI among them). */
			out[o++] = '?';
			i++;
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return out;
}

size_t table_text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

struct table *table_new(size_t ncols, const char *const headers[])
{
	if (ncols == 0 || ncols > TABLE_MAX_COLS)
		return NULL;
	struct table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ncols = ncols;
	for (size_t c = 0; c < ncols; c++)
		if (!(t->headers[c] = table_sanitize(headers[c]))) {
			table_free(t);
			return NULL;
		}
	return t;
}

int table_add_row(struct table *t, const char *const cells[])
{
	if (t->failed)
		return -1;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
		if (!p)
			goto fail;
		t->cells = p;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++)
		if (!(row[c] = table_sanitize(cells[c] ? cells[c] : "-"))) {
			while (c--)
				free(row[c]);
			goto fail;
		}
	t->nrows++;
	return 0;
fail:
	t->failed = 1;
	return -1;
}

size_t table_rows(const struct table *t)
{
	return t->nrows;
}

/* Writes `s` cut to `w` characters ("..." ending a cut), padded with
 * spaces to `w` unless `pad` is 0. */
static void put_cell(FILE *out, const char *s, size_t w, int pad)
{
	size_t have = table_text_width(s);
	if (have > w) {
		size_t keep = w > 3 ? w - 3 : w, chars = 0;
		const char *p = s;
		/* Up to the first byte of character number `keep`. */
		for (; *p; p++)
			if (((unsigned char)*p & 0xc0) != 0x80 && chars++ == keep)
				break;
		fwrite(s, 1, (size_t)(p - s), out);
		if (w > 3)
			fputs("...", out);
		return;
	}
	fputs(s, out);
	if (pad)
		for (; have < w; have++)
			fputc(' ', out);
}

int table_print(const struct table *t, FILE *out, size_t max_width)
{
	size_t width[TABLE_MAX_COLS];
	if (t->failed)
		return -1;
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = table_text_width(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = table_text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
		if (max_width && width[c] > max_width)
			width[c] = max_width;
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		char *const *row = r == 0 ? t->headers : t->cells + (r - 1) * t->ncols;
		for (size_t c = 0; c < t->ncols; c++) {
			if (c)
				fputs("  ", out);
			put_cell(out, row[c], width[c], c + 1 < t->ncols);
		}
		fputc('\n', out);
	}
	return 0;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t c = 0; c < t->ncols; c++)
		free(t->headers[c]);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

static int is_scalar(const json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

/* Appends the text of scalar `v`. */
static void scalar_text(struct buf *b, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		buf_append(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		buf_printf(b, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		buf_append(b, "true", 4);
		break;
	case JSON_FALSE:
		buf_append(b, "false", 5);
		break;
	default:
		buf_append(b, "-", 1);
		break;
	}
}

char *table_value_text(const json_t *v)
{
	struct buf b = { 0 };
	if (!v || json_is_null(v)) {
		buf_append(&b, "-", 1);
	} else if (is_scalar(v)) {
		scalar_text(&b, v);
	} else {
		int flat = json_is_array(v) && json_array_size(v) > 0;
		for (size_t i = 0; flat && i < json_array_size(v); i++)
			flat = is_scalar(json_array_get(v, i));
		if (flat) {
			for (size_t i = 0; i < json_array_size(v); i++) {
				if (i)
					buf_append(&b, ",", 1);
				scalar_text(&b, json_array_get(v, i));
			}
		} else if (json_is_array(v) && json_array_size(v) == 0) {
			buf_append(&b, "-", 1);
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			if (!s)
				b.failed = 1;
			else
				buf_append(&b, s, strlen(s));
			free(s);
		}
	}
	char *raw = buf_take(&b);
	if (!raw)
		return NULL;
	char *out = table_sanitize(raw);
	free(raw);
	return out;
}

char *table_field(const json_t *obj, const char *spec)
{
	struct buf b = { 0 };
	char sep = strchr(spec, '|') ? '|' : strchr(spec, '/') ? '/' : 0;
	int any = 0;
	for (const char *p = spec; *p;) {
		size_t n = sep ? strcspn(p, (const char[]){ sep, '\0' }) : strlen(p);
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
		const json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;
		if (v && !json_is_null(v)) {
			char *s = table_value_text(v);
			if (!s) {
				buf_free(&b);
				return NULL;
			}
			if (any)
				buf_append(&b, "/", 1);
			buf_append(&b, s, strlen(s));
			free(s);
			any = 1;
			if (sep == '|')
				break;
		}
		p += n;
		if (*p)
			p++;
	}
	if (!any)
		buf_append(&b, "-", 1);
	return buf_take(&b);
}

int table_print_object(FILE *out, const json_t *obj)
{
	const char *key;
	const json_t *v;
	size_t w = 0;
	json_object_foreach((json_t *)obj, key, v) {
		size_t kw = table_text_width(key);
		if (kw > w)
			w = kw;
	}
	json_object_foreach((json_t *)obj, key, v) {
		char *k = table_sanitize(key), *s = table_value_text(v);
		if (!k || !s) {
			free(k);
			free(s);
			return -1;
		}
		put_cell(out, k, w, 1);
		fprintf(out, "  %s\n", s);
		free(k);
		free(s);
	}
	return 0;
}
