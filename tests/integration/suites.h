/* suites.h - the integration suites, one constructor per file. */
#ifndef IT_SUITES_H
#define IT_SUITES_H

#include <check.h>

Suite *suite_gateway(void);
Suite *suite_lifecycle(void);
Suite *suite_policy(void);
Suite *suite_sealed(void);
Suite *suite_tools(void);
Suite *suite_audit(void);
Suite *suite_secrets(void);
Suite *suite_hostile(void);
Suite *suite_cli(void);
Suite *suite_answers(void);
Suite *suite_witness(void);
Suite *suite_payloads(void);
Suite *suite_formats(void);
Suite *suite_replicas(void);	/* test_replicas.c: limits, budgets, sessions over Redis */
Suite *suite_detect(void);
Suite *suite_upstreams(void);	/* test_upstreams.c: provider kinds over TLS */
Suite *suite_reports(void);
Suite *suite_mcp(void);
Suite *suite_h1(void);		/* test_h1.c: warden's HTTP/1.1 client vs a raw provider */

#endif
