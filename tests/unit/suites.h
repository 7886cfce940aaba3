/*
 * suites.h - the unit suites, one constructor per file in tests/unit/.
 * check_main.c runs them all; add a line here and there for a new file.
 */
#ifndef UT_SUITES_H
#define UT_SUITES_H

#include <check.h>
#include <stddef.h>

#include "common/wd.h"

struct pol_snapshot;

Suite *suite_wd(void);		/* test_wd.c: common/ helpers */
Suite *suite_http(void);	/* test_http.c: request heads, chunked bodies */
Suite *suite_sse(void);		/* test_sse.c: SSE event framing */
Suite *suite_openai(void);	/* test_openai.c: chat bodies, errors, auth */
Suite *suite_policy(void);	/* test_policy.c: rules file loading */
Suite *suite_tools(void);	/* test_tools.c: agents, tool graphs, review */
Suite *suite_witness(void);	/* test_witness.c: checkpoints off the host */
Suite *suite_secrets(void);	/* test_secrets.c: sealing against swtpm */
Suite *suite_audit(void);	/* test_audit.c: the hash-chained audit log */
Suite *suite_sessions(void);	/* test_sessions.c: sessions, limits per key */
Suite *suite_limits(void);	/* test_limits.c: limits, budgets, prices */
Suite *suite_store(void);	/* test_store.c: memory and Redis stores */

/* A redis-server child for one test (ut_redis.c). */
#include <stdbool.h>
#include <sys/types.h>
struct ut_redis {
	pid_t pid;
	int port;
};
/* Start one on port (0: a free one) and wait until it answers. */
void ut_redis_start(struct ut_redis *r, int port);
void ut_redis_stop(struct ut_redis *r);
bool ut_redis_ping(int port);
/* One command to it (e.g. "SCRIPT FLUSH"); aborts the test on error. */
void ut_redis_cmd(int port, const char *cmd);
Suite *suite_errors(void);	/* test_errors.c: the error catalogue, README */
Suite *suite_detect(void);	/* test_detect.c: content detectors */
Suite *suite_residency(void);	/* test_residency.c: route residency records */
Suite *suite_provider(void);	/* test_provider.c: provider kinds, SigV4, event-stream */
Suite *suite_formats(void);	/* test_formats.c: Messages, Responses, Embeddings */
Suite *suite_reports(void);	/* test_reports.c: stats and the auditor's page */
Suite *suite_mcp(void);		/* test_mcp.c: JSON-RPC, MCP in sessions, pins */
Suite *suite_h1(void);		/* test_h1.c: warden's HTTP/1.1 answer reader */

/* Rules-file helpers shared by the suites (ut_rules.c). */

/*
 * Write text to a fresh file in /tmp with the given mode; returns its path
 * (malloc'd, caller unlinks and frees).  Aborts the test on failure.
 */
char *ut_write_rules(const char *text, unsigned mode);

/* The result of loading one file. */
struct ut_ld {
	char *path;
	enum wd_err rc;
	struct pol_snapshot *snap;
	char *errs;			/* everything written to the error stream */
	size_t errlen;
};

/* pol_load(l->path) into l; a failed load must leave no snapshot. */
void ut_load_path(struct ut_ld *l);
/* Write text (with mode) to a fresh file and load it. */
void ut_load_text(struct ut_ld *l, const char *text, unsigned mode);
/* Unlink the file and free everything in l. */
void ut_ld_done(struct ut_ld *l);
/* tmpl with each '@' replaced by path; caller frees. */
char *ut_expand(const char *tmpl, const char *path);

/* A provider transfer's end as its callbacks saw it (ut_xfer.c): pass
 * ut_xfer_head, ut_xfer_data and ut_xfer_done with arg a struct ut_xfer;
 * the end breaks evb's loop. */
struct event_base;
struct ut_xfer {
	struct event_base *evb;
	int status;
	enum wd_err err;
	bool done;
};
void ut_xfer_head(void *arg, int status, const char *ctype);
size_t ut_xfer_data(void *arg, const char *data, size_t len);
void ut_xfer_done(void *arg, enum wd_err err, const char *detail);

#endif /* UT_SUITES_H */
