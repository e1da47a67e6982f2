/* Regional config documents: built from one database snapshot, signed
 * once per version, stored so that every replica serves the same bytes,
 * and the latest of each region kept in memory (the document cache). */
#ifndef CP_CONFIG_DOC_H
#define CP_CONFIG_DOC_H

#include <stdint.h>
#include <stdio.h>

#include "db.h"

struct cp_app;
struct doc_cache;

#define CP_ISSUER "celltrail-control-plane"

/* A signed document, shared by reference between the cache and the
 * responses that send it. */
struct cp_doc {
	_Atomic int refs;
	int64_t version;
	char *token;
	size_t len;
};
/* Drops a reference (accepts NULL); the last one frees the document. */
void cp_doc_release(void *doc);

/* NULL when out of memory. doc_cache_free accepts NULL. */
struct doc_cache *doc_cache_new(void);
void doc_cache_free(struct doc_cache *dc);
/* The signed document of `region` at version `want` or newer: from the
 * cache, else from region_documents, else built, signed and stored now.
 * *out holds a reference (cp_doc_release). */
enum db_status cp_doc_get(struct cp_app *app, const char *region, int64_t want,
                          struct cp_doc **out) __attribute__((warn_unused_result));
/* Builds and signs the region's current document in one snapshot, without
 * storing it. *token malloc'd; *ver its version. For issuance and benchmarks. */
enum db_status cp_doc_build(struct db_conn *c, struct cp_app *app, const char *region,
                            int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64])
	__attribute__((warn_unused_result));
/* Appends cp_config_documents_built_total, cp_config_build_seconds_total,
 * cp_config_document_bytes{region}. */
void doc_cache_metrics(struct doc_cache *dc, FILE *out);

#endif
