/* Service start-up helpers. */
#include "svc.h"
#include "http.h"
#include "log.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void svc_data_path(const char *rel, char *out, size_t len)
{
	char exe[4096], installed[4200];
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (n <= 0) {
		snprintf(out, len, "%s", rel);
		return;
	}
	exe[n] = '\0';
	char *bindir = dirname(exe);
	snprintf(installed, sizeof installed, "%s/../share/celltrail/%s", bindir, rel);
	if (stat(installed, &st) == 0) {
		snprintf(out, len, "%s", installed);
		return;
	}
	snprintf(out, len, "%s/../%s", bindir, rel);
	if (stat(out, &st) == 0)
		return;
	/* The source tree keeps deployment files under deploy/. */
	snprintf(out, len, "%s/../deploy/%s", bindir, rel);
	if (stat(out, &st) != 0)
		snprintf(out, len, "%s", installed);
}

void svc_load_config(const char *prog, const struct cfg_var *tab, void *cfg)
{
	char err[512];
	if (cfg_load(tab, cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s: invalid configuration: %s (see %s --help)\n", prog, err, prog);
		exit(SVC_EXIT_USAGE);
	}
}

void svc_db_metrics(FILE *out, struct db_pool *pool, const char *service)
{
	struct db_stats s;
	if (!pool)
		return;
	db_pool_stats(pool, &s);
	fprintf(out,
	        "# HELP db_pool_connections_in_use Connections of the pool lent out right now.\n"
	        "# TYPE db_pool_connections_in_use gauge\n"
	        "db_pool_connections_in_use{service=\"%s\"} %u\n"
	        "# HELP db_pool_connections_max Connections the pool may hold (its configured size).\n"
	        "# TYPE db_pool_connections_max gauge\n"
	        "db_pool_connections_max{service=\"%s\"} %u\n"
	        "# HELP db_transactions_total Transactions run, by outcome.\n"
	        "# TYPE db_transactions_total counter\n"
	        "db_transactions_total{service=\"%s\",outcome=\"committed\"} %llu\n"
	        "db_transactions_total{service=\"%s\",outcome=\"rolled_back\"} %llu\n"
	        "db_transactions_total{service=\"%s\",outcome=\"failed\"} %llu\n"
	        "# HELP db_transaction_retries_total Attempts repeated after a serialization failure, deadlock or lost connection.\n"
	        "# TYPE db_transaction_retries_total counter\n"
	        "db_transaction_retries_total{service=\"%s\"} %llu\n"
	        "# HELP db_reconnects_total Broken connections replaced.\n"
	        "# TYPE db_reconnects_total counter\n"
	        "db_reconnects_total{service=\"%s\"} %llu\n"
	        "# HELP db_acquire_timeouts_total Requests that found no free connection in time.\n"
	        "# TYPE db_acquire_timeouts_total counter\n"
	        "db_acquire_timeouts_total{service=\"%s\"} %llu\n",
	        service, s.in_use, service, s.size, service, s.tx_ok, service, s.tx_rolled_back, service,
	        s.tx_failed, service,
	        s.tx_retries, service, s.reconnects, service, s.acquire_timeouts);
}

void svc_wait_and_drain(struct http_server *srv, int64_t drain_ms)
{
	int sig = http_signals_wait();
	log_info(NULL, "signal %d: draining requests in flight", sig);
	int left = http_server_drain(srv, (unsigned)drain_ms);
	if (left)
		log_warn(NULL, "%d request(s) cut off at the drain deadline", left);
}

void svc_http_opts(const struct svc_common_cfg *c, struct http_server_opts *o)
{
	o->listen = c->listen;
	o->threads = (unsigned)c->http_threads;
	o->max_connections = (unsigned)c->max_connections;
	o->connection_timeout_s = (unsigned)((c->connection_timeout_ms + 999) / 1000);
	o->response_timeout_ms = (unsigned)c->response_timeout_ms;
	o->connection_memory = (size_t)c->connection_memory;
	o->access_log = c->access_log;
}

int svc_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}
