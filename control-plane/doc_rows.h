/* doc_rows: a whole cell's document content as it streams from the
 * database (COPY text rows of db_config.c's content statement), held
 * compactly as it arrives and handed on at the end a tenant at a time:
 * the tenant, then its keys in id order, whatever order the rows came in
 * (the plan decides it). Owns only the grouping and the checks of the
 * rows; the statement is db_config.c's, what is written of them
 * config_doc.c's. */
#ifndef CP_DOC_ROWS_H
#define CP_DOC_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cpdb.h"

struct doc_key {
	char id[25], sha[48];          /* the SHA-256 base64url (43), from the hex as it streams in */
	unsigned char w, r;
	uint32_t tenant;               /* index into tenants */
	int64_t exp;
};

struct doc_tenant {
	char id[37];
	uint32_t nkeys;
	size_t strs;                   /* slug, status and plan, each NUL-ended, at strs.p + strs */
};

struct doc_rows {
	cpdb_doc_row_fn fn;
	void *arg;
	struct doc_tenant *tenants;
	size_t ntenants, captenants;
	struct doc_key *keys;
	size_t nkeys, capkeys;
	struct buf strs;
	uint32_t *slots;               /* tenants by id: open addressing, kept at most half full; */
	size_t capslots;               /* 0 is empty, else index + 1 */
	size_t rows;                   /* rows read */
	long last;                     /* the tenant of the previous row, -1 */
	/* Why the rows stopped (at most one is set):
	 *  bad      a row is not what the statement selects (the field count,
	 *           an escape, a value of the wrong shape, a tenant's fields
	 *           differing between its rows), or out of memory;
	 *  stopped  `fn` returned non-zero. */
	int bad, stopped;
};

void doc_rows_init(struct doc_rows *d, cpdb_doc_row_fn fn, void *arg);
/* One COPY row (db_line_fn): nine tab-separated fields, tenant id, slug,
 * status, plan, key id (\N for none), key SHA-256 hex, write (t/f), read
 * (t/f), expiry (unix s). Returns non-zero once the rows are bad. */
int doc_rows_line(char *line, size_t len, void *d);
/* After the last row: hands every tenant on, in the order they first
 * came, each with its keys in id order (key_sha256_b64 set: converted
 * while the rows streamed in, when this process waited for the server). */
void doc_rows_finish(struct doc_rows *d);
void doc_rows_free(struct doc_rows *d);

#endif
