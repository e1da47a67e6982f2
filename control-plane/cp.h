/* The control plane's shared state, handed to every handler. */
#ifndef CP_H
#define CP_H

#include <stdint.h>

#include "config.h"
#include "db.h"

struct cp_config {
	struct cfg_addr listen;
	const char *database_url;
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

struct cp_app {
	struct cp_config cfg;
	struct db_pool *db;
};

#endif
