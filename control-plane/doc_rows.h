/* doc_rows: a whole cell's document content as it streams from the
 * database (COPY text rows of db_config.c's content statement), handed on
 * a tenant at a time: the tenant, then its keys in id order. Owns only the
 * grouping and the checks of the rows; the statement is db_config.c's,
 * what is written of the rows config_doc.c's. */
#ifndef CP_DOC_ROWS_H
#define CP_DOC_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "cpdb.h"

struct doc_key {
	char id[25], sha[65];
	int w, r;
	int64_t exp;
};

struct doc_rows {
	cpdb_doc_row_fn fn;
	void *arg;
	char tenant[37], slug[64], status[16], plan[64];
	int have;                      /* a tenant's group is open */
	struct doc_key *keys;
	size_t nkeys, capkeys;
	unsigned char (*seen)[16];     /* the tenants whose group ended: open addressing, */
	size_t nseen, capseen;         /* kept at most half full; all-zero is empty */
	size_t rows;                   /* rows read */
	/* Why the rows stopped being handed on (at most one is set):
	 *  ungrouped  a tenant came again after its group ended: the rows
	 *             are not grouped by tenant (another plan than the hash
	 *             join's); read them again in order;
	 *  bad        a row is not what the statement selects (the field
	 *             count, an escape, a value of the wrong shape), or out
	 *             of memory;
	 *  stopped    `fn` returned non-zero. */
	int ungrouped, bad, stopped;
};

void doc_rows_init(struct doc_rows *d, cpdb_doc_row_fn fn, void *arg);
/* One COPY row (db_line_fn): nine tab-separated fields, tenant id, slug,
 * status, plan, key id (\N for none), key SHA-256 hex, write (t/f), read
 * (t/f), expiry (unix s). Returns non-zero once the rows stop. */
int doc_rows_line(char *line, size_t len, void *d);
/* After the last row: hands the open group on. */
void doc_rows_finish(struct doc_rows *d);
void doc_rows_free(struct doc_rows *d);

#endif
