/*
 * gw.h - the gateway module's face to main(): serve, and the small CLI
 * commands that belong to the gateway.
 *
 * gateway/ owns the HTTP server, the upstream client, the OpenAI wire
 * format and the process's threads.  It borrows policy snapshots from
 * policy/ and credentials from secrets/.
 */
#ifndef GW_H
#define GW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/wd.h"

struct gw_serve_opts {
	const char *config;		/* rules file */
	const char *listen;		/* overrides server.listen */
	int workers;			/* overrides server.workers if > 0 */
	const char *audit_dir;		/* overrides audit.dir */
	const char *tcti;		/* overrides secrets.tcti */
	const char *secrets_store;	/* overrides secrets.store */
	bool dev_credentials;		/* allow plain-text dev_credentials */
	const char *user;		/* become this user after binding */
	bool allow_root;		/* run as root anyway */
	const char *auth_file;		/* overrides secrets.auth_file */
	/* Make or use an audit signing key without an auth value when no
	 * auth file is set (development only; issue 11). */
	bool dev_unauth_key;
	/* Open an audit log that is behind the TPM counter (rolled back)
	 * anyway: its rollback_detected record is then signed in (issue 11).
	 * Without it warden refuses to start on such a log. */
	bool accept_rollback;
};

/* Run the gateway until SIGTERM/SIGINT.  Returns a process exit code. */
int gw_serve(const struct gw_serve_opts *opts);

/* `warden lint`, `check`, `test` (cli_policy.c).  Exit codes. */
int gw_cmd_lint(int argc, char **argv);
int gw_cmd_check(int argc, char **argv);
int gw_cmd_test(int argc, char **argv);
int gw_cmd_policy(int argc, char **argv);
int gw_cmd_reload(int argc, char **argv);
int gw_cmd_audit(int argc, char **argv);
/* audit stats | tail | register | report, policy report (cli_report.c) */
int gw_cmd_audit_report(int argc, char **argv);
int gw_cmd_policy_report(int argc, char **argv);
/* warden mcp list|approve (cli_mcp.c). */
int gw_cmd_mcp(int argc, char **argv);

/* `warden audit counter` (cli_counter.c): the TPM rollback counter.
 * Exit code: 0, 1 failed, 2 usage. */
int gw_cmd_audit_counter(int argc, char **argv);
struct sec_counter;
/* The counter's state now: index and TCTI from config (either may be
 * NULL; tcti and index, if given, win).  For `audit verify` too. */
enum wd_err gw_tpm_counter_read(const char *config, const char *tcti,
    const char *index, struct sec_counter *out, char *err, size_t errlen);

/* `warden secrets seal|rotate|rm|list|check` (cli_secrets.c).  Exit
 * code: 0, 1 failed, 2 usage. */
int gw_cmd_secrets(int argc, char **argv);

/* `warden keys new`: print a fresh virtual key and its config line. */
int gw_keys_new(void);

/*
 * Every command's usage, from one table (cli_help.c): of all commands
 * (cmd NULL), of one, or of one subcommand.  gw_cli_help() answers -h,
 * --help and `help`: the exit code, or -1 when argv does not ask for help.
 */
void gw_cli_usage(FILE *f, const char *cmd, const char *sub);
int gw_cli_help(int argc, char **argv);

/* jansson's blocks kept per thread and wiped when freed (json_mem.c);
 * once, first thing in main(). */
void gw_json_mem_init(void);

#endif /* GW_H */
