/* Integration tests: the services and the HTTP/DB layers, from outside.
 *
 *   it-tests            every suite, in the order below
 *   it-tests --list     the suites' names, one per line
 * With IT_SUITES set (names separated by spaces), only those suites run:
 * tests/run.sh splits the suites over processes that way. A name that is
 * not a suite is a usage error (exit 2), so that a shard never silently
 * runs nothing. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"

/* Each name is the one its suite_create() gives (what CK_RUN_SUITE takes). */
static const struct {
	const char *name;
	Suite *(*make)(void);
} suites[] = {
	{ "http-layer", http_layer_suite },   { "services", services_suite },
	{ "db", db_suite },                   { "cp-api", cp_api_suite },
	{ "openapi", openapi_suite },         { "dp-config", dp_config_suite },
	{ "config-issue", config_issue_suite }, { "e2e-config", e2e_config_suite },
	{ "billing", billing_suite },         { "events", events_suite },
	{ "hostile", hostile_suite },         { "metrics", scrape_suite },
	{ "cli", cli_suite },                 { "listings", listings_suite },
	{ "ratelimit", ratelimit_suite },     { "login", login_suite },
	{ "dp-deps", dp_deps_suite },         { "ingest", ingest_suite },
	{ "log-context", log_context_suite }, { "write-rules", write_rules_suite },
	{ "feed", feed_suite },               { "erasure", erasure_suite },
	{ "export", export_suite },           { "log", log_suite },
	{ "queries", queries_suite },         { "cells", cells_suite },
	{ "cfg-delta", cfg_delta_suite },
	{ "cells-dp", cells_dp_suite },       { "moves-dp", moves_dp_suite },
	{ "cell-router", cell_router_suite }, { "mover", mover_suite },
	{ "moves", moves_suite },             { "log-routes", log_routes_suite },
	{ "streams", streams_suite },         { "cp-streams", cp_streams_suite },
	{ "stream-send", stream_send_suite },  { "key-rotation", rotation_suite },
};
#define NSUITES (sizeof suites / sizeof suites[0])

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < NSUITES; i++)
			puts(suites[i].name);
		return EXIT_SUCCESS;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: it-tests [--list]   (IT_SUITES=\"name ...\" runs only those)\n");
		return 2;
	}
	/* Which suites run: all, or each one IT_SUITES names (every word must
	 * name one). */
	int run[NSUITES];
	const char *only = getenv("IT_SUITES");
	for (size_t i = 0; i < NSUITES; i++)
		run[i] = !only;
	for (const char *p = only ? only + strspn(only, " ") : ""; *p; p += strspn(p, " ")) {
		size_t n = strcspn(p, " "), i = 0;
		while (i < NSUITES && !(strlen(suites[i].name) == n && !strncmp(suites[i].name, p, n)))
			i++;
		if (i == NSUITES) {
			fprintf(stderr, "it-tests: IT_SUITES names no suite \"%.*s\" (see it-tests --list)\n", (int)n, p);
			return 2;
		}
		run[i] = 1;
		p += n;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *sr = NULL;
	for (size_t i = 0; i < NSUITES; i++) {
		if (!run[i])
			continue;
		if (!sr)
			sr = srunner_create(suites[i].make());
		else
			srunner_add_suite(sr, suites[i].make());
	}
	if (!sr) {
		fprintf(stderr, "it-tests: IT_SUITES names no suite\n");
		curl_global_cleanup();
		return 2;
	}
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	/* Whatever the suites ran, every line the services wrote names a
	 * request or a task. */
	if (getenv("IT_LOG_DIR") && it_logs_check(getenv("IT_LOG_DIR")))
		failed++;
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
