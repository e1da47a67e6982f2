/* Signed documents (common/cfgdoc.h): a region's regional document, a
 * cell's document (full, or a delta from a base version) and a region's
 * routes document. Each is built by the document worker (doc_worker.h)
 * from one database snapshot, signed once per version (its region's
 * config version), stored so that every replica serves the same bytes,
 * and the latest of each subject kept in memory (the document cache),
 * which request threads only read. */
#ifndef CP_CONFIG_DOC_H
#define CP_CONFIG_DOC_H

#include <stdint.h>
#include <stdio.h>

#include "db.h"

struct cp_app;
struct doc_cache;

/* A signed document, shared by reference between the cache and the
 * responses that send it. */
struct cp_doc {
	_Atomic int refs;
	int64_t version;
	int64_t base;         /* a delta's base version; -1 for a full document */
	int64_t exp;          /* a delta's exp (unix s); 0 when not known (a full document) */
	int64_t at;           /* when this process built or loaded it (unix s) */
	char *token;
	size_t len;
};
/* Drops a reference (accepts NULL); the last one frees the document. */
void cp_doc_release(void *doc);

/* Which document: its kind, its region, and for a cell document its cell.
 * aud is the document's audience, the key of the cache and of the store. */
enum cp_doc_kind { CP_DOC_REGION, CP_DOC_CELL, CP_DOC_ROUTES };
struct cp_doc_subject {
	enum cp_doc_kind kind;
	char region[33];
	char cell[64];
	char aud[80];
	char full_key[88];    /* "full:<aud>": what long polls for a full document wait on */
};
/* Fills `s` (cell is read for CP_DOC_CELL only). Returns 0, or -1 when a
 * name does not fit. */
int cp_doc_subject(struct cp_doc_subject *s, enum cp_doc_kind kind, const char *region,
                   const char *cell) __attribute__((warn_unused_result));

/* NULL when out of memory. doc_cache_free accepts NULL. */
struct doc_cache *doc_cache_new(void);
void doc_cache_free(struct doc_cache *dc);
/* What the worker published for `s`, which this registers (the worker
 * keeps it current from then on): *ver the newest version, full or delta
 * (-1: none yet), *full a reference to the newest full document (NULL:
 * none; cp_doc_release). Returns -1 when no subject can be added. */
int cp_doc_published(struct cp_app *app, const struct cp_doc_subject *s, int64_t *ver,
                     struct cp_doc **full) __attribute__((warn_unused_result));
/* Wakes the worker for `s`; with full_at >= 0, asks it for a full
 * document at that version or above. */
void cp_doc_want(struct cp_app *app, const struct cp_doc_subject *s, int64_t full_at);
/* The delta of cell subject `s` from version `base`: from memory, else
 * from the store (config_deltas); DB_NOT_FOUND when there is none. Its
 * version may be below the newest (a chain). *out: cp_doc_release. */
enum db_status cp_doc_delta(struct cp_app *app, const struct cp_doc_subject *s, int64_t base,
                            struct cp_doc **out) __attribute__((warn_unused_result));
/* A pass of one of the worker's two threads over every registered
 * subject, publishing and waking its long polls. The deltas thread
 * (`fulls` 0) brings each cell to its region's version with a delta (a
 * full document only for a cell with no state yet, or when a delta cannot
 * be built); the fulls thread (`fulls` 1) builds the regional and routes
 * documents of every version and a cell's full document when one is due,
 * so that no delta waits behind a full build. With `prune`, also prunes
 * the regions' change logs. */
void cp_doc_refresh(struct cp_app *app, int prune, int fulls);
/* Builds and signs the subject's current document in one snapshot, without
 * storing it. *token malloc'd; *ver its version. For issuance and benchmarks. */
enum db_status cp_doc_build(struct db_conn *c, struct cp_app *app, const struct cp_doc_subject *s,
                            int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64])
	__attribute__((warn_unused_result));
/* Appends cp_config_documents_built_total, cp_config_build_seconds_total,
 * cp_config_full_builds_total, cp_config_deltas_built_total,
 * cp_config_delta_build_seconds_total, cp_config_delta_fallbacks_total,
 * cp_config_delta_bytes,
 * cp_config_document_bytes{region}, cp_cell_document_bytes{cell} and
 * cp_routes_document_bytes{region}. */
void doc_cache_metrics(struct doc_cache *dc, FILE *out);

#endif
