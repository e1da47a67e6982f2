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

#endif
