/* Unit test runner: every suite in one SRunner. CK_FORK, CK_VERBOSITY and
 * CK_RUN_SUITE from the environment are honoured by Check itself. */
#include <stdlib.h>

#include "unit.h"

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	srunner_add_suite(sr, config_suite());
	srunner_add_suite(sr, jsonx_suite());
	srunner_add_suite(sr, problem_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_add_suite(sr, names_suite());
	srunner_add_suite(sr, cursor_suite());
	srunner_add_suite(sr, apikey_suite());
	srunner_add_suite(sr, secret_suite());
	srunner_add_suite(sr, password_suite());
	srunner_add_suite(sr, login_guard_suite());
	srunner_add_suite(sr, cfgdoc_suite());
	srunner_add_suite(sr, cfgdelta_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, snapshot_suite());
	srunner_add_suite(sr, event_suite());
	srunner_add_suite(sr, url_suite());
	srunner_add_suite(sr, forwarded_suite());
	srunner_add_suite(sr, usage_report_suite());
	srunner_add_suite(sr, erasure_report_suite());
	srunner_add_suite(sr, export_suite());
	srunner_add_suite(sr, movecred_suite());
	srunner_add_suite(sr, jscan_suite());
	srunner_add_suite(sr, merkle_suite());
	srunner_add_suite(sr, checkpoint_suite());
	srunner_add_suite(sr, seal_suite());
	srunner_add_suite(sr, residency_suite());
	srunner_add_suite(sr, doc_rows_suite());
	srunner_add_suite(sr, keyset_suite());
	srunner_add_suite(sr, celltrail_cli_suite());
	srunner_add_suite(sr, config_store_suite());

	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
