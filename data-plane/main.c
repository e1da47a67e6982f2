/* data-plane: one region's stateless API service. Pulls the region's
 * signed config from the control plane and serves the tenants whose home
 * region this is, storing their data in the region's own database.
 *
 *   data-plane [serve]   run the HTTP service
 *   data-plane migrate   apply the regional migrations and claim the
 *                        database for DP_REGION, then exit
 *   data-plane --help    print usage and the configuration table */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "http.h"
#include "log.h"
#include "migrate.h"
#include "names.h"
#include "svc.h"

#define PROG "data-plane"

#define O(f) offsetof(struct dp_config, f)
static const struct cfg_var dp_vars[] = {
	{ "DP_REGION", CFG_STR, NULL, 1, O(region), 0, 0, NULL,
	  "Name of the region this instance serves ([a-z][a-z0-9-]*)." },
	{ "DP_LISTEN", CFG_ADDR, "127.0.0.1:8081", 0, O(listen), 0, 0, NULL,
	  "Address and port the tenant API listens on." },
	{ "DP_DATABASE_URL", CFG_SECRET, NULL, 1, O(database_url), 0, 0, NULL,
	  "PostgreSQL connection string of this region's own database." },
	{ "DP_CONTROL_PLANE_URL", CFG_STR, NULL, 1, O(control_plane_url), 0, 0, NULL,
	  "Base URL of the control plane (config is pulled from it, never on a request's path)." },
	{ "DP_DB_POOL_SIZE", CFG_INT, "8", 0, O(db_pool_size), 1, 256, NULL,
	  "Database connections kept by the pool." },
	{ "DP_DB_ACQUIRE_TIMEOUT", CFG_DURATION, "2s", 0, O(db_acquire_timeout_ms), 1, 60000, NULL,
	  "Longest wait for a free database connection before answering 503." },
	{ "DP_HTTP_THREADS", CFG_INT, "4", 0, O(http_threads), 1, 256, NULL,
	  "HTTP worker threads (each runs its own epoll loop)." },
	{ "DP_MAX_CONNECTIONS", CFG_INT, "4096", 0, O(max_connections), 1, 65536, NULL,
	  "Concurrent client connections accepted." },
	{ "DP_CONNECTION_TIMEOUT", CFG_DURATION, "30s", 0, O(connection_timeout_ms), 1000, 3600000, NULL,
	  "Idle or stalled connections are closed after this long." },
	{ "DP_CONNECTION_MEMORY", CFG_INT, "32768", 0, O(connection_memory), 8192, 1048576, NULL,
	  "Bytes of buffer per connection; bounds the request line and headers." },
	{ "DP_DRAIN_TIMEOUT", CFG_DURATION, "10s", 0, O(drain_timeout_ms), 0, 600000, NULL,
	  "On SIGTERM, how long requests in flight may take to finish." },
	{ "DP_MIGRATIONS_DIR", CFG_STR, NULL, 0, O(migrations_dir), 0, 0, NULL,
	  "Directory of the regional migrations (default: the one shipped with the binary)." },
	{ "DP_LOG_LEVEL", CFG_ENUM, "info", 0, O(log_level), 0, 0, log_level_names,
	  "Lowest level logged." },
	{ "DP_ACCESS_LOG", CFG_BOOL, "true", 0, O(access_log), 0, 0, NULL,
	  "Log one line per request (5xx answers are always logged)." },
	CFG_END
};
#undef O

static const struct http_route dp_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0 },
	{ "GET", "/metrics", http_handle_metrics, 0, 0 },
};

static void dp_metrics(FILE *out, void *app)
{
	svc_db_metrics(out, ((struct dp_app *)app)->db, PROG);
}

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [serve|migrate|--help]\n\n"
	               "  serve     run the regional tenant API (the default)\n"
	               "  migrate   apply the regional migrations to DP_DATABASE_URL, claim that\n"
	               "            database for DP_REGION, and exit",
	               dp_vars);
}

static int open_pool(struct dp_app *app)
{
	char err[512];
	app->db = db_pool_new(app->cfg.database_url, (unsigned)app->cfg.db_pool_size,
	                      (unsigned)app->cfg.db_acquire_timeout_ms, err, sizeof err);
	if (!app->db) {
		fprintf(stderr, PROG ": DP_DATABASE_URL: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_migrate(struct dp_app *app)
{
	char dir[4096], err[1024], owner[64];
	int applied, ret = SVC_EXIT_FAILURE;

	if (app->cfg.migrations_dir)
		snprintf(dir, sizeof dir, "%s", app->cfg.migrations_dir);
	else
		svc_data_path("migrations/region", dir, sizeof dir);
	if (migrate_run(app->cfg.database_url, dir, &applied, err, sizeof err) != 0) {
		fprintf(stderr, PROG ": migrate: %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	if (open_pool(app))
		return SVC_EXIT_USAGE;
	switch (dp_db_region_claim(app->db, app->cfg.region, owner, sizeof owner)) {
	case DP_REGION_OK:
		printf("%d migration(s) applied from %s; database belongs to region %s\n", applied, dir,
		       app->cfg.region);
		ret = SVC_EXIT_OK;
		break;
	case DP_REGION_MISMATCH:
		fprintf(stderr, PROG ": migrate: this database belongs to region '%s', not '%s'\n", owner,
		        app->cfg.region);
		break;
	default:
		fprintf(stderr, PROG ": migrate: could not record the region in the database\n");
	}
	db_pool_free(app->db);
	return ret;
}

static int cmd_serve(struct dp_app *app)
{
	char err[512], addr[96], owner[64];
	struct http_server_opts o = {
		.service = PROG,
		.listen = app->cfg.listen,
		.threads = (unsigned)app->cfg.http_threads,
		.max_connections = (unsigned)app->cfg.max_connections,
		.connection_timeout_s = (unsigned)((app->cfg.connection_timeout_ms + 999) / 1000),
		.connection_memory = (size_t)app->cfg.connection_memory,
		.access_log = app->cfg.access_log,
		.routes = dp_routes,
		.nroutes = sizeof dp_routes / sizeof dp_routes[0],
		.metrics_extra = dp_metrics,
		.app = app,
	};

	if (open_pool(app))
		return SVC_EXIT_USAGE;
	/* A wrong database is a fatal misconfiguration; an unreachable one is
	 * not: the region keeps answering what it can without it. */
	switch (dp_db_region_check(app->db, app->cfg.region, owner, sizeof owner)) {
	case DP_REGION_OK:
		break;
	case DP_REGION_MISMATCH:
		log_error(NULL, "DP_DATABASE_URL points at the database of region '%s', not '%s'; refusing to start",
		          owner, app->cfg.region);
		fprintf(stderr, PROG ": DP_DATABASE_URL belongs to region '%s', not '%s'\n", owner,
		        app->cfg.region);
		db_pool_free(app->db);
		return SVC_EXIT_USAGE;
	case DP_REGION_UNCLAIMED:
		log_error(NULL, "the regional database has not been migrated for region '%s'; run '" PROG " migrate'",
		          app->cfg.region);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	case DP_REGION_UNKNOWN:
		log_warn(NULL, "regional database unreachable at start; serving what needs no database");
		break;
	}
	struct http_server *srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		log_error(NULL, "%s", err);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	cfg_addr_format(&app->cfg.listen, addr, sizeof addr);
	log_write(LOG_INFO, NULL,
	          json_pack("{ss ss si}", "region", app->cfg.region, "listen", addr, "port",
	                    http_server_port(srv)),
	          "data plane listening");

	int sig = http_signals_wait();
	log_info(NULL, "signal %d: draining requests in flight", sig);
	int left = http_server_drain(srv, (unsigned)app->cfg.drain_timeout_ms);
	if (left)
		log_warn(NULL, "%d request(s) cut off at the drain deadline", left);
	http_server_free(srv);
	db_pool_free(app->db);
	log_info(NULL, "stopped");
	return SVC_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct dp_app app = { 0 };
	const char *cmd = argc > 1 ? argv[1] : "serve";

	http_signals_block();
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return SVC_EXIT_OK;
	}
	if (argc > 2 || (strcmp(cmd, "serve") && strcmp(cmd, "migrate"))) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	svc_load_config(PROG, dp_vars, &app.cfg);
	if (!name_valid_region(app.cfg.region)) {
		fprintf(stderr, PROG ": invalid configuration: DP_REGION: '%s' is not a region name "
		                "([a-z][a-z0-9-]*, at most 32 characters)\n", app.cfg.region);
		return SVC_EXIT_USAGE;
	}
	if (strncmp(app.cfg.control_plane_url, "http://", 7) && strncmp(app.cfg.control_plane_url, "https://", 8)) {
		fprintf(stderr, PROG ": invalid configuration: DP_CONTROL_PLANE_URL: must start with http:// or https://\n");
		return SVC_EXIT_USAGE;
	}
	log_init(PROG, (enum log_level)app.cfg.log_level);
	return !strcmp(cmd, "migrate") ? cmd_migrate(&app) : cmd_serve(&app);
}
