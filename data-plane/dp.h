/* The data plane's shared state, handed to every handler. */
#ifndef DP_H
#define DP_H

#include <stdint.h>

#include "config.h"
#include "db.h"

struct dp_config {
	const char *region;
	struct cfg_addr listen;
	const char *database_url;
	const char *control_plane_url;
	long db_pool_size;
	int64_t db_acquire_timeout_ms;
	long http_threads;
	long max_connections;
	int64_t connection_timeout_ms;
	long connection_memory;
	int64_t drain_timeout_ms;
	const char *migrations_dir;
	int log_level;
	int access_log;
};

struct dp_app {
	struct dp_config cfg;
	struct db_pool *db;
};

/* The regional database records which region it belongs to, so that a data
 * plane pointed at another region's database refuses to start instead of
 * writing a tenant's data in the wrong place. */
enum dp_region_check { DP_REGION_OK, DP_REGION_MISMATCH, DP_REGION_UNCLAIMED, DP_REGION_UNKNOWN };

/* Records `region` as the owner of an unclaimed database (migrate does
 * this). Returns DP_REGION_OK, or DP_REGION_MISMATCH with the owner in
 * `owner`, or DP_REGION_UNKNOWN when the database cannot be asked. */
enum dp_region_check dp_db_region_claim(struct db_pool *db, const char *region, char *owner,
                                        size_t len);
/* Compares the recorded owner with `region` without changing anything. */
enum dp_region_check dp_db_region_check(struct db_pool *db, const char *region, char *owner,
                                        size_t len);

#endif
