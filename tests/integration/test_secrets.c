/*
 * test_secrets.c - `warden secrets seal|list|rotate|rm|check`, the real
 * binary against a real swtpm started by the suite (scripts/swtpm.sh).
 *
 * Every command's stdout and stderr are searched for every value sealed
 * so far: a secret must never come back out of warden.  The suite's
 * swtpm lives in Check's parent (unchecked fixture); the tests run one at
 * a time and each warden process flushes what it loads, so sharing one
 * swtpm without a resource manager is safe here.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define VALUE_A "sk-it-sealed-a-4e1f9c07d2"
#define VALUE_A2 "sk-it-rotated-a-88b3e5d1f0"
#define VALUE_B "sk-it-sealed-b-c3a97e2b61"
#define VALUE_P "sk-it-pcr-bound-1d2e3f4a5b"
#define VALUE_ARG "sk-it-never-on-argv-77aa"

static const char *const values[] = { VALUE_A, VALUE_A2, VALUE_B, VALUE_P,
	VALUE_ARG };

static char dir[64] = "/tmp/warden-it-secrets.XXXXXX";
static char tpmdir[128], store[128], config[128], tcti[128];

static const char *
script(void)
{
	const char *s = getenv("WARDEN_SWTPM_SH");

	return s ? s : "scripts/swtpm.sh";
}

static void
suite_setup(void)
{
	char text[1024];
	FILE *p;

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(tpmdir, sizeof(tpmdir), "%s/tpm", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(config, sizeof(config), "%s/rules.yaml", dir);
	snprintf(text, sizeof(text), "sh %s start %s", script(), tpmdir);
	if ((p = popen(text, "r")) == NULL || fgets(tcti, sizeof(tcti), p) ==
	    NULL || pclose(p) != 0) {
		fprintf(stderr, "test_secrets: swtpm did not start\n");
		abort();
	}
	tcti[strcspn(tcti, "\n")] = '\0';
	snprintf(text, sizeof(text),
	    "version: 1\n"
	    "audit:\n"
	    "  dir: %s/audit\n"
	    "secrets:\n"
	    "  store: %s\n"
	    "  tcti: '%s'\n"
	    "providers:\n"
	    "  - { id: p-a, base_url: 'http://127.0.0.1:9/v1', country: IE,"
	    " credential: it-cred-a, models: [gpt-4o] }\n"
	    "  - { id: p-a-backup, base_url: 'http://127.0.0.1:9/v1', country: DE,"
	    " credential: it-cred-a, models: [gpt-4o] }\n"
	    "  - { id: p-b, base_url: 'http://127.0.0.1:9/v1', country: FR,"
	    " credential: it-cred-b, models: [gpt-4o] }\n"
	    "tenants:\n"
	    "  - { id: t1, routes: [p-a, p-a-backup, p-b] }\n",
	    dir, store, tcti);
	it_write_file(config, text, 0600);
}

static void
suite_teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "sh %s stop %s; rm -rf %s", script(), tpmdir,
	    dir);
	if (it_run(cmd, NULL, NULL) != 0)
		fprintf(stderr, "test_secrets: cleanup failed\n");
}

/*
 * Run `warden secrets ARGS` with stdin from the file input (or /dev/null);
 * *out: stdout and stderr together.  Fails the test if any sealed value
 * shows up in them.  Returns the exit code.
 */
static int
warden(const char *input, char **out, const char *fmt, ...)
{
	char args[1024], cmd[2048], path[128];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/out", dir);
	snprintf(cmd, sizeof(cmd), "%s secrets %s <%s >%s 2>&1",
	    getenv("WARDEN_BIN"), args, input ? input : "/dev/null", path);
	st = it_run(cmd, NULL, NULL);
	*out = it_read_file(path, NULL);
	ck_assert(*out != NULL);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		ck_assert_msg(strstr(*out, values[i]) == NULL,
		    "`warden secrets %s` printed a secret value:\n%s", args, *out);
	return st;
}

/* A file holding text, for standard input. */
static const char *
input(const char *name, const char *text)
{
	static char path[8][128];
	static int n;
	char *p = path[n++ % 8];

	snprintf(p, 128, "%s/%s", dir, name);
	it_write_file(p, text, 0600);
	return p;
}

static void
assert_mode(const char *path, unsigned mode)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "%s missing", path);
	ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %04o, not %04o",
	    path, st.st_mode & 07777, mode);
}

START_TEST(lifecycle_never_shows_a_value)
{
	char *out, path[256];
	int rc;

	/* tpm2-tss at trace level prints command and response buffers;
	 * warden silences it whatever the environment asks for. */
	setenv("TSS2_LOG", "all+trace", 1);
	rc = warden(input("a", VALUE_A "\n"), &out,
	    "seal it-cred-a --store %s --tcti '%s'", store, tcti);
	ck_assert_msg(rc == 0, "%s", out);
	/* No audit log named: done, and it says it is not recorded. */
	ck_assert_str_eq(out, "warden secrets: not recorded in an audit log "
	    "(give -c FILE or --audit-dir DIR)\n"
	    "sealed it-cred-a (" "25" " bytes)\n");
	free(out);
	/* Store and tcti from the rules file. */
	rc = warden(input("b", VALUE_B), &out, "seal it-cred-b -c %s", config);
	ck_assert_msg(rc == 0 && strstr(out, "sealed it-cred-b (25 bytes)"),
	    "%s", out);
	free(out);
	/* With the rules' audit.dir it is recorded there, by name only. */
	snprintf(path, sizeof(path), "%s/audit/audit-000001.jsonl", dir);
	ck_assert(it_file_contains(path, "\"kind\":\"secret_seal\",\"name\":"
	    "\"it-cred-b\""));
	ck_assert(!it_file_contains(path, VALUE_B));

	assert_mode(store, 0700);
	snprintf(path, sizeof(path), "%s/it-cred-a", store);
	assert_mode(path, 0700);
	static const char *const files[] = { "tpm.pub", "tpm.priv",
		"envelope.bin", "meta.json" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/it-cred-a/%s", store, files[i]);
		assert_mode(path, 0600);
		ck_assert(!it_file_contains(path, VALUE_A));
	}

	rc = warden(NULL, &out, "list --store %s", store);
	ck_assert_msg(rc == 0, "%s", out);
	ck_assert(strstr(out, "it-cred-a") && strstr(out, "it-cred-b"));
	ck_assert(strstr(out, " 25") != NULL);		/* the size */
	free(out);
	rc = warden(NULL, &out, "list -c %s", config);
	ck_assert_msg(rc == 0 && strstr(out, "p-a, p-a-backup") &&
	    strstr(out, "p-b"), "%s", out);
	free(out);

	rc = warden(NULL, &out, "check -c %s", config);
	ck_assert_msg(rc == 0, "%s", out);
	ck_assert_str_eq(out, "ok it-cred-a\nok it-cred-b\n");	/* no trace */
	free(out);

	rc = warden(input("a2", VALUE_A2 "\r\n"), &out, "rotate it-cred-a -c %s",
	    config);
	ck_assert_msg(rc == 0 && strstr(out, "rotated it-cred-a (26 bytes)"),
	    "%s", out);
	free(out);
	rc = warden(NULL, &out, "check --store %s --tcti '%s'", store, tcti);
	ck_assert_msg(rc == 0 && strstr(out, "ok it-cred-a"), "%s", out);
	free(out);
	/* Sealing over an existing name is refused; rotating a missing one
	 * too. */
	rc = warden(input("x", VALUE_ARG), &out, "seal it-cred-a -c %s", config);
	ck_assert_msg(rc == 1 && strstr(out, "rotate"), "%s", out);
	free(out);
	rc = warden(input("x", VALUE_ARG), &out, "rotate nope -c %s", config);
	ck_assert_msg(rc == 1 && strstr(out, "no secret 'nope'"), "%s", out);
	free(out);

	rc = warden(NULL, &out, "rm it-cred-b -c %s", config);
	ck_assert_msg(rc == 0 && strcmp(out, "removed it-cred-b\n") == 0, "%s",
	    out);
	free(out);
	rc = warden(NULL, &out, "check -c %s", config);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "ok it-cred-a\n") &&
	    strstr(out, "FAIL it-cred-b: no secret 'it-cred-b'"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "list -c %s", config);
	ck_assert_msg(rc == 0 && strstr(out, "(missing)"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "rm it-cred-b -c %s", config);
	ck_assert_int_eq(rc, 1);
	free(out);
}
END_TEST

START_TEST(value_never_taken_from_arguments)
{
	char *out;

	/* A second positional argument, or any option that could carry a
	 * value: usage error, nothing sealed, nothing echoed. */
	static const char *const tries[] = { "seal argv-x " VALUE_ARG,
		"seal argv-x --value=" VALUE_ARG, "seal argv-x --value " VALUE_ARG,
		"seal argv-x -v" VALUE_ARG, "seal argv-x -- " VALUE_ARG };
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		ck_assert_int_eq(warden(NULL, &out, "%s --store %s --tcti '%s'",
		    tries[i], store, tcti), 2);
		free(out);
	}
	/* Nor from the environment: with empty input nothing is sealed. */
	ck_assert_int_eq(warden(NULL, &out, "seal argv-x --store %s --tcti '%s' "
	    "WARDEN_SECRET=" VALUE_ARG, store, tcti), 2);
	free(out);
	setenv("WARDEN_SECRET", VALUE_ARG, 1);
	setenv("VALUE", VALUE_ARG, 1);
	ck_assert_int_eq(warden(NULL, &out, "seal argv-x --store %s --tcti '%s'",
	    store, tcti), 1);
	ck_assert_msg(strstr(out, "empty value") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "list --store %s", store), 0);
	ck_assert(strstr(out, "argv-x") == NULL);
	free(out);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
	char *out;

	ck_assert_int_eq(warden(NULL, &out, ""), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "frob"), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "seal"), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "seal x --tcti '%s'", tcti), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "seal x --store %s", store), 2);
	ck_assert_msg(strstr(out, "--tcti") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "seal ../x --store %s --tcti '%s'",
	    store, tcti), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "rm --store %s", store), 2);
	free(out);
	ck_assert_int_eq(warden(NULL, &out, "list --pcr sha256:1 --store %s",
	    store), 2);
	free(out);
}
END_TEST

START_TEST(sizes_and_newlines)
{
	char *out, *big = malloc(16386);
	int rc;

	rc = warden(input("e", ""), &out, "seal size-x --store %s --tcti '%s'",
	    store, tcti);
	ck_assert_msg(rc == 1 && strstr(out, "empty value"), "%s", out);
	free(out);
	rc = warden(input("nl", "\n"), &out, "seal size-x --store %s --tcti '%s'",
	    store, tcti);
	ck_assert_msg(rc == 1 && strstr(out, "empty value"), "%s", out);
	free(out);
	memset(big, 'k', 16385);
	big[16385] = '\0';
	rc = warden(input("big", big), &out, "seal size-x --store %s --tcti '%s'",
	    store, tcti);
	ck_assert_msg(rc == 1 && strstr(out, "16384"), "%s", out);
	free(out);
	big[16384] = '\n';			/* 16 KiB and its newline: fits */
	rc = warden(input("big", big), &out, "seal size-16k --store %s "
	    "--tcti '%s'", store, tcti);
	ck_assert_msg(rc == 0 && strstr(out, "(16384 bytes)"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "check --store %s --tcti '%s'", store, tcti);
	ck_assert_msg(strstr(out, "ok size-16k"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "rm size-16k --store %s", store);
	ck_assert_int_eq(rc, 0);
	free(out);
	free(big);
}
END_TEST

START_TEST(tpm_unreachable_and_unsafe_store)
{
	char *out, dead[128];
	int rc;

	/* A loopback port nothing listens on. */
	snprintf(dead, sizeof(dead), "swtpm:host=127.0.0.1,port=%d",
	    it_free_port());
	rc = warden(input("u", VALUE_ARG), &out, "seal dead-x --store %s "
	    "--tcti '%s'", store, dead);
	ck_assert_msg(rc == 1 && strstr(out, "(0xa000a)") &&
	    strstr(out, "not reachable"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "check -c %s --tcti '%s'", config, dead);
	ck_assert_msg(rc == 1 && strstr(out, "FAIL it-cred-a: TPM: ") &&
	    strstr(out, "(0xa000a)"), "%s", out);
	free(out);

	ck_assert_int_eq(chmod(store, 0755), 0);
	rc = warden(NULL, &out, "list --store %s", store);
	ck_assert_msg(rc == 1 && strstr(out, "chmod 700"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "check -c %s", config);
	ck_assert_msg(rc == 1 && strstr(out, "chmod 700"), "%s", out);
	free(out);
	ck_assert_int_eq(chmod(store, 0700), 0);
}
END_TEST

START_TEST(pcr_binding_via_cli)
{
	char *out, cmd[512];
	int rc;

	/* seal binds; rotate without --pcr keeps the binding */
	static const char *const how[] = { "seal pcr-x --pcr sha256:23",
		"rotate pcr-x" };
	for (size_t i = 0; i < 2; i++) {
		rc = warden(input("p", VALUE_P), &out, "%s --store %s --tcti '%s'",
		    how[i], store, tcti);
		ck_assert_msg(rc == 0, "%s: %s", how[i], out);
		free(out);
		rc = warden(NULL, &out, "list --store %s", store);
		ck_assert_msg(strstr(out, "sha256:23") != NULL, "%s", out);
		free(out);
	}
	snprintf(cmd, sizeof(cmd), "TPM2TOOLS_TCTI='%s' TSS2_LOG=all+none "
	    "tpm2_pcrextend 23:sha256=%064d >/dev/null", tcti, 7);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	rc = warden(NULL, &out, "check --store %s --tcti '%s'", store, tcti);
	ck_assert_msg(rc == 1 && strstr(out, "FAIL pcr-x: TPM: ") &&
	    strstr(out, "(0x99d)"), "%s", out);
	free(out);
	rc = warden(NULL, &out, "rm pcr-x --store %s", store);
	ck_assert_int_eq(rc, 0);
	free(out);
}
END_TEST

Suite *
suite_secrets(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("cli");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lifecycle_never_shows_a_value);
	tcase_add_test(tc, value_never_taken_from_arguments);
	tcase_add_test(tc, usage_errors_exit_2);
	tcase_add_test(tc, sizes_and_newlines);
	tcase_add_test(tc, tpm_unreachable_and_unsafe_store);
	tcase_add_test(tc, pcr_binding_via_cli);
	suite_add_tcase(s, tc);
	return s;
}
