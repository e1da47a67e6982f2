/* Numbered SQL migrations.
 *
 * Files named NNNN_name.sql in one directory are applied in order, each in
 * its own transaction together with its row in schema_migrations (version,
 * name, SHA-256). Applied files are skipped; an applied file whose checksum
 * changed is refused. A session advisory lock serializes concurrent
 * migrators. */
#ifndef CT_MIGRATE_H
#define CT_MIGRATE_H

#include <stddef.h>

/* Applies the pending migrations of `dir` to the database at `conninfo`.
 * Sets *applied to the number applied. Returns 0, or -1 with a sentence in
 * `err`. */
int migrate_run(const char *conninfo, const char *dir, int *applied, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The same for the migrations of another step kept in their own table:
 * the region's contract step (migrations/region/contract), which a data
 * plane applies only when its whole cell runs a build that knows it. */
int migrate_run_in(const char *conninfo, const char *dir, const char *table, int *applied, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

#endif
