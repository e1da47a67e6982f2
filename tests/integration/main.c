/* Integration tests: the services and the HTTP/DB layers, from outside. */
#include <curl/curl.h>
#include <stdlib.h>

#include "it.h"

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *sr = srunner_create(http_layer_suite());
	srunner_add_suite(sr, services_suite());
	srunner_add_suite(sr, db_suite());
	srunner_add_suite(sr, cp_api_suite());
	srunner_add_suite(sr, openapi_suite());
	srunner_add_suite(sr, dp_config_suite());
	srunner_add_suite(sr, config_issue_suite());
	srunner_add_suite(sr, e2e_config_suite());
	srunner_add_suite(sr, billing_suite());
	srunner_add_suite(sr, events_suite());
	srunner_add_suite(sr, hostile_suite());
	srunner_add_suite(sr, scrape_suite());
	srunner_add_suite(sr, cli_suite());
	srunner_add_suite(sr, listings_suite());
	srunner_add_suite(sr, ratelimit_suite());
	srunner_add_suite(sr, login_suite());
	srunner_add_suite(sr, dp_deps_suite());
	srunner_add_suite(sr, ingest_suite());
	srunner_add_suite(sr, log_context_suite());
	srunner_add_suite(sr, write_rules_suite());
	srunner_add_suite(sr, feed_suite());
	srunner_add_suite(sr, erasure_suite());
	srunner_add_suite(sr, export_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, queries_suite());
	srunner_add_suite(sr, cells_suite());
	srunner_add_suite(sr, cells_dp_suite());
	srunner_add_suite(sr, moves_dp_suite());
	srunner_add_suite(sr, cell_router_suite());
	srunner_add_suite(sr, mover_suite());
	srunner_add_suite(sr, moves_suite());
	srunner_add_suite(sr, log_routes_suite());
	srunner_add_suite(sr, streams_suite());
	srunner_add_suite(sr, cp_streams_suite());
	srunner_add_suite(sr, stream_send_suite());
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
