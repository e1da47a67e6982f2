/* What both services' main() share: locating installed data files,
 * the exit codes, and database pool metrics. */
#ifndef CT_SVC_H
#define CT_SVC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"

/* Exit codes of both binaries. */
enum { SVC_EXIT_OK = 0, SVC_EXIT_FAILURE = 1, SVC_EXIT_USAGE = 2 };

/* Resolves a data directory shipped with the binaries: an installed tree
 * (<prefix>/bin/X next to <prefix>/share/celltrail/<rel>) or the source tree
 * (bin/X next to <rel>, or next to deploy/<rel>). Writes the first that
 * exists, or the installed one. */
void svc_data_path(const char *rel, char *out, size_t len);

/* Loads `tab` into `cfg`; on a malformed or missing value prints
 * "<prog>: NAME: reason" and exits with SVC_EXIT_USAGE. */
void svc_load_config(const char *prog, const struct cfg_var *tab, void *cfg);

struct http_server;
/* Waits for SIGTERM/SIGINT/SIGHUP, then drains `srv` (at most `drain_ms`),
 * logging both. The caller frees the server afterwards. */
void svc_wait_and_drain(struct http_server *srv, int64_t drain_ms);

/* Appends the pool's counters to a /metrics page. */
void svc_db_metrics(FILE *out, struct db_pool *pool, const char *service);

#endif
