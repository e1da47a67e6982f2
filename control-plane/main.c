/* control-plane: the global service. Owns tenants, users, keys, plans,
 * billing and the region catalog, and issues each region's signed config.
 *
 *   control-plane [serve]   run the HTTP service
 *   control-plane migrate   apply pending migrations, then exit
 *   control-plane --help    print usage and the configuration table */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "http.h"
#include "log.h"
#include "migrate.h"
#include "svc.h"

#define PROG "control-plane"

#define O(f) offsetof(struct cp_config, f)
static const struct cfg_var cp_vars[] = {
	{ "CP_LISTEN", CFG_ADDR, "127.0.0.1:8080", 0, O(listen), 0, 0, NULL,
	  "Address and port the HTTP API listens on." },
	{ "CP_DATABASE_URL", CFG_SECRET, NULL, 1, O(database_url), 0, 0, NULL,
	  "PostgreSQL connection string of the control-plane database." },
	{ "CP_DB_POOL_SIZE", CFG_INT, "8", 0, O(db_pool_size), 1, 256, NULL,
	  "Database connections kept by the pool." },
	{ "CP_DB_ACQUIRE_TIMEOUT", CFG_DURATION, "2s", 0, O(db_acquire_timeout_ms), 1, 60000, NULL,
	  "Longest wait for a free database connection before answering 503." },
	{ "CP_HTTP_THREADS", CFG_INT, "4", 0, O(http_threads), 1, 256, NULL,
	  "HTTP worker threads (each runs its own epoll loop)." },
	{ "CP_MAX_CONNECTIONS", CFG_INT, "1024", 0, O(max_connections), 1, 65536, NULL,
	  "Concurrent client connections accepted." },
	{ "CP_CONNECTION_TIMEOUT", CFG_DURATION, "30s", 0, O(connection_timeout_ms), 1000, 3600000, NULL,
	  "Idle or stalled connections are closed after this long." },
	{ "CP_CONNECTION_MEMORY", CFG_INT, "32768", 0, O(connection_memory), 8192, 1048576, NULL,
	  "Bytes of buffer per connection; bounds the request line and headers." },
	{ "CP_DRAIN_TIMEOUT", CFG_DURATION, "10s", 0, O(drain_timeout_ms), 0, 600000, NULL,
	  "On SIGTERM, how long requests in flight may take to finish." },
	{ "CP_MIGRATIONS_DIR", CFG_STR, NULL, 0, O(migrations_dir), 0, 0, NULL,
	  "Directory of the control-plane migrations (default: the one shipped with the binary)." },
	{ "CP_LOG_LEVEL", CFG_ENUM, "info", 0, O(log_level), 0, 0, log_level_names,
	  "Lowest level logged." },
	{ "CP_ACCESS_LOG", CFG_BOOL, "true", 0, O(access_log), 0, 0, NULL,
	  "Log one line per request (5xx answers are always logged)." },
	CFG_END
};
#undef O

static int handle_readyz(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	if (db_ping(app->db) != DB_OK) {
		http_add_header(req, "Retry-After", "1");
		return http_reply_problem(req, PROB_UNAVAILABLE, "The control-plane database is unreachable.");
	}
	return http_reply_json(req, 200, json_pack("{ss}", "status", "ready"));
}

static const struct http_route cp_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0 },
	{ "GET", "/readyz", handle_readyz, 0, 0 },
	{ "GET", "/metrics", http_handle_metrics, 0, 0 },
};

static void cp_metrics(FILE *out, void *app)
{
	svc_db_metrics(out, ((struct cp_app *)app)->db, PROG);
}

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [serve|migrate|--help]\n\n"
	               "  serve     run the HTTP API (the default)\n"
	               "  migrate   apply pending migrations to CP_DATABASE_URL and exit",
	               cp_vars);
}

static int cmd_migrate(struct cp_app *app)
{
	char dir[4096], err[1024];
	int applied;

	if (app->cfg.migrations_dir)
		snprintf(dir, sizeof dir, "%s", app->cfg.migrations_dir);
	else
		svc_data_path("migrations/control-plane", dir, sizeof dir);
	if (migrate_run(app->cfg.database_url, dir, &applied, err, sizeof err) != 0) {
		log_error(NULL, "migrate: %s", err);
		fprintf(stderr, PROG ": migrate: %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	printf("%d migration(s) applied from %s\n", applied, dir);
	return SVC_EXIT_OK;
}

static int cmd_serve(struct cp_app *app)
{
	char err[512], addr[96];
	struct http_server_opts o = {
		.service = PROG,
		.listen = app->cfg.listen,
		.threads = (unsigned)app->cfg.http_threads,
		.max_connections = (unsigned)app->cfg.max_connections,
		.connection_timeout_s = (unsigned)((app->cfg.connection_timeout_ms + 999) / 1000),
		.connection_memory = (size_t)app->cfg.connection_memory,
		.access_log = app->cfg.access_log,
		.routes = cp_routes,
		.nroutes = sizeof cp_routes / sizeof cp_routes[0],
		.metrics_extra = cp_metrics,
		.app = app,
	};

	app->db = db_pool_new(app->cfg.database_url, (unsigned)app->cfg.db_pool_size,
	                      (unsigned)app->cfg.db_acquire_timeout_ms, err, sizeof err);
	if (!app->db) {
		fprintf(stderr, PROG ": CP_DATABASE_URL: %s\n", err);
		return SVC_EXIT_USAGE;
	}
	struct http_server *srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		log_error(NULL, "%s", err);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	cfg_addr_format(&app->cfg.listen, addr, sizeof addr);
	log_write(LOG_INFO, NULL, json_pack("{ss si}", "listen", addr, "port", http_server_port(srv)),
	          "control plane listening");

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
	struct cp_app app = { 0 };
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
	svc_load_config(PROG, cp_vars, &app.cfg);
	log_init(PROG, (enum log_level)app.cfg.log_level);
	return !strcmp(cmd, "migrate") ? cmd_migrate(&app) : cmd_serve(&app);
}
