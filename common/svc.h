/* What both services' main() share: the settings both have, loading the
 * configuration, the HTTP server options, waiting for a signal and
 * draining, locating installed data files, the exit codes, and database
 * pool metrics. */
#ifndef CT_SVC_H
#define CT_SVC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"

/* The settings both services have, each under its own prefix (CP_, DP_). */
struct svc_common_cfg {
	struct cfg_addr listen;
	long db_pool_size;
	int64_t db_acquire_timeout_ms;
	long http_threads;
	long max_connections;
	int64_t connection_timeout_ms;
	int64_t response_timeout_ms;
	long connection_memory;
	int64_t drain_timeout_ms;
	int log_level;
	int64_t log_repeat_ms;
	int access_log;
};

/* The configuration-table rows of those settings. P is the prefix ("CP_"),
 * T the service's configuration struct, M its svc_common_cfg member. */
#define SVC_COMMON_VARS(P, T, M, LISTEN_DEFAULT, MAX_CONNECTIONS_DEFAULT)                        \
	{ P "LISTEN", CFG_ADDR, LISTEN_DEFAULT, 0, offsetof(T, M.listen), 0, 0, NULL,                \
	  "Address and port the HTTP API listens on." },                                           \
	{ P "DB_POOL_SIZE", CFG_INT, "8", 0, offsetof(T, M.db_pool_size), 1, 256, NULL,              \
	  "Database connections kept by the pool." },                                              \
	{ P "DB_ACQUIRE_TIMEOUT", CFG_DURATION, "2s", 0, offsetof(T, M.db_acquire_timeout_ms), 1,    \
	  60000, NULL, "Longest wait for a free database connection before answering 503." },     \
	{ P "HTTP_THREADS", CFG_INT, "4", 0, offsetof(T, M.http_threads), 1, 256, NULL,              \
	  "HTTP worker threads (each runs its own poll loop)." },                                 \
	{ P "MAX_CONNECTIONS", CFG_INT, MAX_CONNECTIONS_DEFAULT, 0, offsetof(T, M.max_connections),  \
	  1, 65536, NULL, "Concurrent client connections accepted." },                            \
	{ P "CONNECTION_TIMEOUT", CFG_DURATION, "30s", 0, offsetof(T, M.connection_timeout_ms),      \
	  1000, 3600000, NULL, "Idle or stalled connections are closed after this long." },       \
	{ P "RESPONSE_TIMEOUT", CFG_DURATION, "60s", 0, offsetof(T, M.response_timeout_ms), 1000,    \
	  3600000, NULL, "A response not delivered whole this long after it is ready has its "      \
	  "connection reset (a slow reader); a parked long poll is not counted, and a streamed "   \
	  "response (an export) only while it makes no progress." },                               \
	{ P "CONNECTION_MEMORY", CFG_INT, "32768", 0, offsetof(T, M.connection_memory), 8192,        \
	  1048576, NULL, "Bytes of buffer per connection; bounds the request line and headers." }, \
	{ P "DRAIN_TIMEOUT", CFG_DURATION, "10s", 0, offsetof(T, M.drain_timeout_ms), 0, 600000,     \
	  NULL, "On SIGTERM, how long requests in flight may take to finish." },                  \
	{ P "LOG_LEVEL", CFG_ENUM, "info", 0, offsetof(T, M.log_level), 0, 0, log_level_names,      \
	  "Lowest level logged." },                                                                 \
	{ P "LOG_REPEAT_INTERVAL", CFG_DURATION, "10s", 0, offsetof(T, M.log_repeat_ms), 100,        \
	  3600000, NULL, "Repeated warnings of one kind are logged once per interval, with a "      \
	  "count of those left out (\"suppressed\")." },                                                     \
	{ P "ACCESS_LOG", CFG_BOOL, "true", 0, offsetof(T, M.access_log), 0, 0, NULL,                \
	  "Log one line per request (5xx answers are always logged)." }

struct http_server_opts;
/* Fills the server options that come from the common settings. */
void svc_http_opts(const struct svc_common_cfg *c, struct http_server_opts *o);

/* Exit codes of both binaries. */
enum { SVC_EXIT_OK = 0, SVC_EXIT_FAILURE = 1, SVC_EXIT_USAGE = 2 };

/* Resolves a data directory shipped with the binaries: an installed tree
 * (<prefix>/bin/X next to <prefix>/share/celltrail/<rel>) or the source tree
 * (bin/X next to <rel>, or next to deploy/<rel>). Writes the first that
 * exists, or the installed one. */
void svc_data_path(const char *rel, char *out, size_t len);

/* Loads `tab` into `cfg`; on a malformed or missing value prints
 * "<prog>: invalid configuration: NAME: reason (see <prog> --help)" and
 * exits with SVC_EXIT_USAGE. */
void svc_load_config(const char *prog, const struct cfg_var *tab, void *cfg);

/* 1 when --help (or -h) is anywhere among the arguments, as after a
 * command ("migrate --help"): the usage goes to stdout, as GNU tools do. */
int svc_wants_help(int argc, char **argv);

struct http_server;
/* Waits for SIGTERM/SIGINT/SIGHUP, then drains `srv` (at most `drain_ms`),
 * logging both. The caller frees the server afterwards. */
void svc_wait_and_drain(struct http_server *srv, int64_t drain_ms);

/* Appends the pool's counters to a /metrics page. */
void svc_db_metrics(FILE *out, struct db_pool *pool, const char *service);

#endif
