/* The formats of GET /v1/events/export: how one stored event becomes a
 * line of NDJSON or a record of CSV. Pure functions over struct buf, no
 * I/O: unit-tested on their own.
 *
 * NDJSON is exact: each line is the event's stored JSON, as GET
 * /v1/events/{id} returns it, then "\n". With the log on (log.h), the
 * event lines are followed by the trailer: `log` lines of the tenant's
 * leaves, then the `checkpoint` line of the head they add up to.
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
#include <stdint.h>

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
/* Appends one `log` line of the NDJSON trailer, then "\n":
 *   {"log":{"tenant_id":"<uuid>","tree_size":N,"complete":true|false,
 *    "from":F,"leaf_hashes":["<base64url>",...],"event_ids":[...],
 *    "removed":[i,...]}}
 * the leaves [from, from + n) of a log of tree_size leaves (hashes[i] the
 * leaf hash of leaf from + i, ids[i] the event id log_leaves records for
 * it, NULL -> JSON null, escaped whatever the database holds: verifiers
 * use it only to name a failure), `removed` the indexes among them whose
 * events retention deleted (nremoved of them, ascending). out->failed
 * when an id is not UTF-8. */
void dp_export_log_line(struct buf *out, const char *tenant, int64_t tree_size, int complete, int64_t from,
                        const unsigned char (*hashes)[32], const char *const *ids, int n, const int64_t *removed,
                        int nremoved);
/* Appends the trailer's last line, {"checkpoint":"<compact JWS>"}, then
 * "\n". */
void dp_export_checkpoint_line(struct buf *out, const char *jws);
/* Appends one CSV field: `n` bytes of `s`, defused and quoted as above. */
void dp_csv_field(struct buf *out, const char *s, size_t n);

#endif
