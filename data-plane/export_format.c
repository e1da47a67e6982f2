/* NDJSON lines and CSV records of stored events (export_format.h). */
#include "export_format.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "checkpoint.h"

void dp_export_begin(enum dp_export_format f, struct buf *out)
{
	if (f == DP_EXPORT_CSV)
		buf_append(out, DP_CSV_COLUMNS "\r\n", strlen(DP_CSV_COLUMNS) + 2);
}

void dp_csv_field(struct buf *out, const char *s, size_t n)
{
	/* OWASP's list: what a spreadsheet takes for the start of a formula. */
	int defuse = n > 0 && strchr("=+-@\t\r", s[0]) != NULL;
	int quote = 0;
	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == '"' || s[i] == ',' || s[i] == '\r' || s[i] == '\n';
	if (quote)
		buf_append(out, "\"", 1);
	if (defuse)
		buf_append(out, "'", 1);
	if (!quote) {
		buf_append(out, s, n);
		return;
	}
	for (const char *p = s, *end = s + n; p < end;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q) {
			buf_append(out, p, (size_t)(end - p));
			break;
		}
		buf_append(out, p, (size_t)(q - p + 1));
		buf_append(out, "\"", 1); /* doubled */
		p = q + 1;
	}
	buf_append(out, "\"", 1);
}

/* A member as a field: a string as it is, anything else as compact JSON,
 * nothing when absent or null. */
static void json_field(struct buf *out, const json_t *v)
{
	if (!v || json_is_null(v))
		return;
	if (json_is_string(v)) {
		dp_csv_field(out, json_string_value(v), json_string_length(v));
		return;
	}
	char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	if (!text) {
		out->failed = 1;
		return;
	}
	dp_csv_field(out, text, strlen(text));
	free(text);
}

static int csv_record(const char *body, size_t len, struct buf *out)
{
	json_t *ev = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return -1;
	}
	const json_t *actor = json_object_get(ev, "actor");
	const json_t *cols[] = {
		json_object_get(ev, "id"),
		json_object_get(ev, "occurred_at"),
		json_object_get(ev, "received_at"),
		json_object_get(ev, "action"),
		json_object_get(actor, "id"),
		json_object_get(actor, "type"),
		json_object_get(actor, "name"),
		json_object_get(ev, "targets"),
		json_object_get(ev, "context"),
		json_object_get(ev, "metadata"),
	};
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		if (i)
			buf_append(out, ",", 1);
		json_field(out, cols[i]);
	}
	buf_append(out, "\r\n", 2);
	json_decref(ev);
	return out->failed ? -1 : 0;
}

int dp_export_event(enum dp_export_format f, const char *body, size_t len, struct buf *out)
{
	if (f == DP_EXPORT_CSV)
		return csv_record(body, len, out);
	buf_append(out, body, len);
	buf_append(out, "\n", 1);
	return out->failed ? -1 : 0;
}

void dp_export_log_line(struct buf *out, const char *tenant, int64_t tree_size, int complete, int64_t from,
                        const unsigned char (*hashes)[32], const char *const *ids, int n, const int64_t *removed,
                        int nremoved)
{
	char h[48];
	buf_printf(out, "{\"log\":{\"tenant_id\":\"%s\",\"tree_size\":%" PRId64 ",\"complete\":%s,\"from\":%" PRId64
	           ",\"leaf_hashes\":[",
	           tenant, tree_size, complete ? "true" : "false", from);
	for (int i = 0; i < n; i++) {
		checkpoint_b64_hash(hashes[i], h);
		buf_printf(out, "%s\"%s\"", i ? "," : "", h);
	}
	buf_append(out, "],\"event_ids\":[", 15);
	for (int i = 0; i < n; i++) {
		if (i)
			buf_append(out, ",", 1);
		if (!ids[i]) {
			buf_append(out, "null", 4);
			continue;
		}
		/* The database's text, escaped as JSON: a tampered id must not
		 * break the line the verifier reads. */
		json_t *s = json_string(ids[i]);
		char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		json_decref(s);
		if (!text) {
			out->failed = 1;
			return;
		}
		buf_append(out, text, strlen(text));
		free(text);
	}
	buf_append(out, "],\"removed\":[", 13);
	for (int i = 0; i < nremoved; i++)
		buf_printf(out, "%s%" PRId64, i ? "," : "", removed[i]);
	buf_append(out, "]}}\n", 4);
}

void dp_export_checkpoint_line(struct buf *out, const char *jws)
{
	/* Escaped as JSON whatever the database holds: a line the client
	 * cannot parse would hide what the verifier should report. */
	json_t *s = json_string(jws);
	char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	json_decref(s);
	if (!text) {
		out->failed = 1;
		return;
	}
	buf_append(out, "{\"checkpoint\":", 14);
	buf_append(out, text, strlen(text));
	buf_append(out, "}\n", 2);
	free(text);
}
