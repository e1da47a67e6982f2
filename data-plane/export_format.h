/* The formats of GET /v1/events/export: how one stored event becomes a
 * line of NDJSON or a record of CSV. Pure functions over struct buf, no
 * I/O: unit-tested on their own.
 *
 * NDJSON is exact: each line is the event's stored JSON, as GET
 * /v1/events/{id} returns it, then "\n".
 *
 * CSV follows RFC 4180: a header line, CRLF after every record, a field
 * quoted when it holds '"', ',', CR or LF, with '"' doubled. The columns,
 * in this order (DP_CSV_COLUMNS):
 *   id, occurred_at, received_at, action, actor_id, actor_type,
 *   actor_name, targets, context, metadata
 * the strings as they are, actor_name empty when the actor has none,
 * targets, context and metadata as compact JSON (members in stored order).
 * Actor members other than id, type and name are in NDJSON only.
 * A spreadsheet runs a cell that starts with '=', '+', '-' or '@' (or TAB
 * or CR, per OWASP) as a formula: such a cell is written with a "'" before
 * it, which alters the value (the export is for people and spreadsheets;
 * NDJSON is the exact format). UTF-8 passes through, without a byte order
 * mark. */
#ifndef DP_EXPORT_FORMAT_H
#define DP_EXPORT_FORMAT_H

#include <stddef.h>

struct buf;

enum dp_export_format { DP_EXPORT_NDJSON, DP_EXPORT_CSV };

#define DP_CSV_COLUMNS \
	"id,occurred_at,received_at,action,actor_id,actor_type,actor_name,targets,context,metadata"

/* Appends what comes before the first event: the CSV header line, nothing
 * for NDJSON. */
void dp_export_begin(enum dp_export_format f, struct buf *out);
/* Appends one event, `body` its stored JSON (`len` bytes). Returns 0, or
 * -1 when `body` is not a JSON object (CSV; nothing appended) or `out`
 * failed (out->failed). */
int dp_export_event(enum dp_export_format f, const char *body, size_t len, struct buf *out)
	__attribute__((warn_unused_result));
/* Appends one CSV field: `n` bytes of `s`, defused and quoted as above. */
void dp_csv_field(struct buf *out, const char *s, size_t n);

#endif
