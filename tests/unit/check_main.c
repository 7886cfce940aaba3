/*
 * check_main.c - runs every unit suite.  Check's default fork mode is kept:
 * a test that crashes is reported as a failure and the others still run.
 * Exit status is nonzero when any test failed.
 */
#include <check.h>
#include <stdlib.h>

#include "tests/unit/suites.h"

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(suite_wd());
	srunner_add_suite(sr, suite_http());
	srunner_add_suite(sr, suite_sse());
	srunner_add_suite(sr, suite_openai());
	srunner_add_suite(sr, suite_policy());
	srunner_add_suite(sr, suite_tools());
	srunner_add_suite(sr, suite_secrets());
	srunner_add_suite(sr, suite_audit());
	srunner_add_suite(sr, suite_witness());
	srunner_add_suite(sr, suite_sessions());
	srunner_add_suite(sr, suite_limits());
	srunner_add_suite(sr, suite_store());
	srunner_add_suite(sr, suite_errors());
	srunner_add_suite(sr, suite_detect());
	srunner_add_suite(sr, suite_residency());
	srunner_add_suite(sr, suite_provider());
	srunner_add_suite(sr, suite_formats());
	srunner_add_suite(sr, suite_reports());
	srunner_add_suite(sr, suite_mcp());
	srunner_add_suite(sr, suite_h1());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
