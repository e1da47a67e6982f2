/* Check suites of the unit tests: one constructor per module under test,
 * all run from main.c by a single SRunner. */
#ifndef CT_UNIT_H
#define CT_UNIT_H

#include <check.h>

Suite *route_suite(void);
Suite *config_suite(void);
Suite *jsonx_suite(void);
Suite *problem_suite(void);
Suite *metrics_suite(void);
Suite *names_suite(void);
Suite *cursor_suite(void);
Suite *apikey_suite(void);
Suite *secret_suite(void);
Suite *password_suite(void);
Suite *login_guard_suite(void);
Suite *cfgdoc_suite(void);
Suite *cfgdelta_suite(void);
Suite *log_suite(void);
Suite *snapshot_suite(void);
Suite *event_suite(void);
Suite *url_suite(void);
Suite *forwarded_suite(void);
Suite *usage_report_suite(void);
Suite *erasure_report_suite(void);
Suite *export_suite(void);
Suite *movecred_suite(void);
Suite *jscan_suite(void);
Suite *merkle_suite(void);
Suite *checkpoint_suite(void);
Suite *seal_suite(void);
Suite *residency_suite(void);
Suite *doc_rows_suite(void);
Suite *keyset_suite(void);
Suite *celltrail_cli_suite(void);
Suite *config_store_suite(void);

#endif
