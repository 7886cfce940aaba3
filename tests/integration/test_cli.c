/*
 * test_cli.c - the command line's first contact: every command and
 * subcommand that `warden --help` lists answers --help, -h and
 * `warden help CMD [SUB]` with its own usage on standard output and exit
 * 0; an unknown option is a usage error (exit 2, usage on standard error,
 * nothing on standard output).
 *
 * The list of commands is read from `warden --help` itself, so a
 * subcommand added to gateway/cli_help.c's table is covered here without
 * a change; the few named below must be among them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define MAX_CMDS 64

struct cli_run {
	int status;			/* exit code, or -1 if it did not exit */
	char *out, *err;		/* malloc'd, NUL-terminated */
};

struct cli_cmd {
	char cmd[32], sub[32];		/* sub "" when none */
};

/* Run warden with args (NULL-terminated), stdin from /dev/null. */
static void
run(struct cli_run *r, const char *const *args)
{
	r->status = it_run_warden(args, &r->out, &r->err);
}

static void
run_free(struct cli_run *r)
{
	free(r->out);
	free(r->err);
}

/*
 * The commands of the top-level usage: every line is a synopsis
 * ("usage: warden CMD [SUB] ...", "       warden CMD ..."), a
 * continuation (more spaces), empty, or the closing "See ..." line;
 * anything else (two commands run together on one line) fails.
 */
static size_t
list_commands(struct cli_cmd *cmds, size_t max)
{
	const char *const args[] = { "--help", NULL };
	struct cli_run r;
	size_t n = 0;
	char *line, *save = NULL;

	run(&r, args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ck_assert_msg(strncmp(r.out, "usage: warden ", 14) == 0, "%s", r.out);
	for (line = strtok_r(r.out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char w1[32] = "", w2[32] = "";
		const char *p;

		if (strncmp(line, "usage: warden ", 14) == 0)
			p = line + 14;
		else if (strncmp(line, "       warden ", 14) == 0)
			p = line + 14;
		else if (strncmp(line, "        ", 8) == 0 ||
		    strncmp(line, "See ", 4) == 0)
			continue;
		else
			ck_abort_msg("stray usage line: '%s'", line);
		ck_assert_msg(strstr(p, "warden ") == NULL,
		    "two commands on one line: '%s'", line);
		ck_assert(sscanf(p, "%31s %31s", w1, w2) >= 1);
		ck_assert(n < max);
		snprintf(cmds[n].cmd, sizeof(cmds[n].cmd), "%s", w1);
		/* A subcommand is a plain word; options and ARGS are not. */
		if (w2[0] >= 'a' && w2[0] <= 'z' &&
		    strspn(w2, "abcdefghijklmnopqrstuvwxyz-") == strlen(w2))
			snprintf(cmds[n].sub, sizeof(cmds[n].sub), "%s", w2);
		else
			cmds[n].sub[0] = '\0';
		n++;
	}
	run_free(&r);
	return n;
}

static bool
listed(const struct cli_cmd *cmds, size_t n, const char *cmd, const char *sub)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cmds[i].cmd, cmd) == 0 && strcmp(cmds[i].sub, sub) == 0)
			return true;
	return false;
}

START_TEST(usage_lists_every_command)
{
	static const char *const want[][2] = {
		{ "serve", "" }, { "lint", "" }, { "check", "" }, { "test", "" },
		{ "reload", "" }, { "policy", "graph" }, { "policy", "reach" },
		{ "policy", "review" }, { "audit", "verify" },
		{ "audit", "export" }, { "audit", "verify-export" },
		{ "audit", "purge" }, { "audit", "pubkey" },
		{ "audit", "prove" }, { "audit", "verify-proof" },
		{ "secrets", "seal" }, { "secrets", "rotate" }, { "secrets", "rm" },
		{ "secrets", "list" }, { "secrets", "check" }, { "keys", "new" },
		{ "version", "" }, { "help", "" },
	};
	struct cli_cmd cmds[MAX_CMDS];
	size_t n = list_commands(cmds, MAX_CMDS);

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(listed(cmds, n, want[i][0], want[i][1]),
		    "`warden --help` does not list warden %s %s", want[i][0],
		    want[i][1]);
}
END_TEST

/* One command's help, asked for in the way args say. */
static void
assert_help(const struct cli_cmd *c, const char *const *args)
{
	char want[96];
	struct cli_run r;

	run(&r, args);
	snprintf(want, sizeof(want), "usage: warden %s%s%s", c->cmd,
	    c->sub[0] ? " " : "", c->sub);
	ck_assert_msg(r.status == 0, "warden %s %s %s: exit %d, stderr: %s",
	    args[0], args[1], args[2] ? args[2] : "", r.status, r.err);
	ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0,
	    "warden %s %s %s: stdout does not begin with '%s': %s", args[0],
	    args[1], args[2] ? args[2] : "", want, r.out);
	ck_assert_msg(r.err[0] == '\0', "help wrote to stderr: %s", r.err);
	run_free(&r);
}

START_TEST(every_command_answers_help)
{
	static const char *const flags[] = { "--help", "-h" };
	struct cli_cmd cmds[MAX_CMDS];
	size_t n = list_commands(cmds, MAX_CMDS);

	ck_assert_uint_ge(n, 20);
	for (size_t i = 0; i < n; i++) {
		const struct cli_cmd *c = &cmds[i];

		for (size_t f = 0; f < 2; f++) {
			const char *a[4] = { c->cmd, NULL, NULL, NULL };

			if (c->sub[0] != '\0') {
				a[1] = c->sub;
				a[2] = flags[f];
			} else {
				a[1] = flags[f];
			}
			assert_help(c, a);
		}
		/* `warden help CMD [SUB]` says the same. */
		{
			const char *a[4] = { "help", c->cmd,
				c->sub[0] ? c->sub : NULL, NULL };

			assert_help(c, a);
		}
	}
}
END_TEST

/* Help after other arguments still wins: `warden audit verify DIR -h`. */
START_TEST(help_after_arguments)
{
	static const struct cli_cmd c = { "audit", "verify" };
	const char *const a[] = { "audit", "verify", "/nonexistent", "-h",
		NULL };

	assert_help(&c, a);
}
END_TEST

START_TEST(unknown_option_is_a_usage_error)
{
	struct cli_cmd cmds[MAX_CMDS];
	size_t n = list_commands(cmds, MAX_CMDS);

	for (size_t i = 0; i < n; i++) {
		const struct cli_cmd *c = &cmds[i];
		const char *a[4] = { c->cmd, NULL, NULL, NULL };
		struct cli_run r;

		a[c->sub[0] ? 2 : 1] = "--no-such-option";
		if (c->sub[0])
			a[1] = c->sub;
		run(&r, a);
		ck_assert_msg(r.status == 2, "warden %s %s --no-such-option: "
		    "exit %d", c->cmd, c->sub, r.status);
		ck_assert_msg(r.out[0] == '\0', "warden %s %s: a usage error "
		    "wrote to stdout: %s", c->cmd, c->sub, r.out);
		ck_assert_msg(strstr(r.err, "usage: warden") != NULL,
		    "warden %s %s: no usage on stderr: %s", c->cmd, c->sub,
		    r.err);
		run_free(&r);
	}
}
END_TEST

START_TEST(no_command_is_a_usage_error)
{
	const char *const none[] = { NULL };
	const char *const bogus[] = { "no-such-command", "--help", NULL };
	struct cli_run r;

	run(&r, none);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert(strstr(r.err, "usage: warden") != NULL);
	run_free(&r);
	run(&r, bogus);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert(strstr(r.err, "unknown command") != NULL);
	run_free(&r);
}
END_TEST

Suite *
suite_cli(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("help");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, usage_lists_every_command);
	tcase_add_test(tc, every_command_answers_help);
	tcase_add_test(tc, help_after_arguments);
	tcase_add_test(tc, unknown_option_is_a_usage_error);
	tcase_add_test(tc, no_command_is_a_usage_error);
	suite_add_tcase(s, tc);
	return s;
}
