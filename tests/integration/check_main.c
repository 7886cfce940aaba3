/*
 * check_main.c - runs the integration suites: real warden, real mock
 * providers, real sockets.  Needs WARDEN_BIN and MOCK_BIN (make sets them).
 */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/integration/suites.h"

int
main(void)
{
	SRunner *sr;
	int failed;

	if (getenv("WARDEN_BIN") == NULL || getenv("MOCK_BIN") == NULL) {
		fprintf(stderr, "integration_tests: set WARDEN_BIN and MOCK_BIN\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sr = srunner_create(suite_gateway());
	srunner_add_suite(sr, suite_policy());
	srunner_add_suite(sr, suite_sealed());
	srunner_add_suite(sr, suite_tools());
	srunner_add_suite(sr, suite_lifecycle());
	srunner_add_suite(sr, suite_audit());
	srunner_add_suite(sr, suite_secrets());
	srunner_add_suite(sr, suite_hostile());
	srunner_add_suite(sr, suite_cli());
	srunner_add_suite(sr, suite_answers());
	srunner_add_suite(sr, suite_witness());
	srunner_add_suite(sr, suite_payloads());
	srunner_add_suite(sr, suite_formats());
	srunner_add_suite(sr, suite_replicas());
	srunner_add_suite(sr, suite_detect());
	srunner_add_suite(sr, suite_upstreams());
	srunner_add_suite(sr, suite_reports());
	srunner_add_suite(sr, suite_mcp());
	srunner_add_suite(sr, suite_h1());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
