/*
 * suites.h - the unit suites, one constructor per file in tests/unit/.
 * check_main.c runs them all; add a line here and there for a new file.
 */
#ifndef UT_SUITES_H
#define UT_SUITES_H

#include <check.h>

Suite *suite_wd(void);		/* test_wd.c: common/ helpers */
Suite *suite_http(void);	/* test_http.c: request heads, chunked bodies */
Suite *suite_sse(void);		/* test_sse.c: SSE event framing */
Suite *suite_openai(void);	/* test_openai.c: chat bodies, errors, auth */
Suite *suite_policy(void);	/* test_policy.c: rules file loading */
Suite *suite_tools(void);	/* test_tools.c: agents, tool graphs, review */
Suite *suite_secrets(void);	/* test_secrets.c: sealing against swtpm */
Suite *suite_audit(void);	/* test_audit.c: the hash-chained audit log */

/* Shared by test_openai.c and test_policy.c (test_policy.c defines them). */

/*
 * Write text to a fresh file in /tmp with the given mode; returns its path
 * (malloc'd, caller unlinks and frees).  Aborts the test on failure.
 */
char *ut_write_rules(const char *text, unsigned mode);

#endif /* UT_SUITES_H */
