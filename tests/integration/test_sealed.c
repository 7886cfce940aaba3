/*
 * test_sealed.c - the gateway on credentials sealed in a real swtpm: the
 * provider gets the sealed value, a rotation takes effect on reload
 * without a restart, audit checkpoints are signed by the TPM key and
 * verify with its public key, and without the TPM warden refuses to start
 * and says why.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define SEALED_US "sk-it-tpm-us-5b7c1e9a0d"
#define ROTATED_US "sk-it-tpm-us-rotated-e2f4"

static char tpmdir[256], store[256], sealed_cfg[256], tcti[128], wlog[256];
static char authfile[256];


static void
seal_opt(const char *name, const char *value, const char *verb,
    const char *extra)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | %s secrets %s %s "
	    "--store %s --tcti '%s' %s >>%s 2>&1", value, getenv("WARDEN_BIN"),
	    verb, name, store, tcti, extra, wlog);
	if (it_run(cmd, NULL, NULL) != 0) {
		fprintf(stderr, "test_sealed: %s %s failed\n", verb, name);
		abort();
	}
}

static void
seal(const char *name, const char *value, const char *verb)
{
	seal_opt(name, value, verb, "");
}

static void
setup(void)
{
	char cmd[512], *text, *dc, *cfg;
	FILE *p;

	it_env_start(NULL);
	snprintf(tpmdir, sizeof(tpmdir), "%s/sealed-tpm", it_tmpdir());
	snprintf(store, sizeof(store), "%s/sealed-store", it_tmpdir());
	snprintf(sealed_cfg, sizeof(sealed_cfg), "%s/sealed.yaml", it_tmpdir());
	snprintf(wlog, sizeof(wlog), "%s/warden-sealed.log", it_tmpdir());
	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh start %s", tpmdir);
	if ((p = popen(cmd, "r")) == NULL || fgets(tcti, sizeof(tcti), p) == NULL
	    || pclose(p) != 0)
		abort();
	tcti[strcspn(tcti, "\n")] = '\0';
	seal("c-eu", "sk-it-tpm-eu-0a1b2c", "seal");
	/* c-de also needs an auth value, from a file only warden can read. */
	snprintf(authfile, sizeof(authfile), "%s/tpm-auth", it_tmpdir());
	it_write_file(authfile, "it-auth-value-9\n", 0600);
	{
		char extra[300];

		snprintf(extra, sizeof(extra), "--auth-file %s", authfile);
		seal_opt("c-de", "sk-it-tpm-de-3d4e5f", "seal", extra);
	}
	seal("c-us", SEALED_US, "seal");
	/* The suite's rules without plain-text credentials, on the TPM. */
	text = it_read_file(it.config, NULL);
	dc = strstr(text, "dev_credentials:");
	if (dc == NULL)
		abort();
	*dc = '\0';
	if (asprintf(&cfg, "%ssecrets:\n  store: %s\n  tcti: '%s'\n"
	    "  auth_file: %s\n", text, store, tcti, authfile) < 0)
		abort();
	it_write_file(sealed_cfg, cfg, 0600);
	free(cfg);
	free(text);
}

static void
teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh stop %s >/dev/null 2>&1",
	    tpmdir);
	it_run(cmd, NULL, NULL);
	it_env_stop();
}

static pid_t
start_sealed(int port, const char *auditdir)
{
	char listen[32];
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", sealed_cfg,
		"--listen", listen, "--audit-dir", (char *)auditdir, NULL };
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	pid = it_spawn(argv, wlog);
	ck_assert_msg(it_wait_port(port, 5000), "warden on sealed credentials "
	    "did not come up; see %s", wlog);
	return pid;
}

static void
chat_on(int port, const char *token, struct it_resp *r)
{
	char url[128], *body = it_chat_body("gpt-4o", token, false);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	it_chat_at(url, IT_KEY_T2, NULL, body, 5000, r);
	free(body);
}

/* The Authorization the US mock recorded for the request with token. */
static bool
us_got(const char *token, const char *value)
{
	char *line = it_record_find(2, token);
	bool hit = line != NULL && strstr(line, value) != NULL;

	free(line);
	return hit;
}

START_TEST(sealed_credentials_reach_the_provider_and_rotate_on_reload)
{
	int port = it_free_port();
	char adir[256], cmd[8192], *out;
	struct it_resp r;
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-sealed", it_tmpdir());
	w = start_sealed(port, adir);
	chat_on(port, "tok-sealed-1", &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	ck_assert(us_got("tok-sealed-1", "Bearer " SEALED_US));

	/* A credential sealed with an auth value unseals with
	 * secrets.auth_file: make p-eu fail so that p-de answers. */
	{
		char url[128], *b = it_chat_body("gpt-4o", "tok-sealed-auth", false);
		const char *h[] = { "Authorization: Bearer " IT_KEY_T1, NULL };
		char *line;

		it_mock_config(0, "{\"fail_next\":1}");
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
		    port);
		it_http("POST", url, h, b, 5000, &r);
		ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
		it_resp_free(&r);
		free(b);
		line = it_record_find(1, "tok-sealed-auth");
		ck_assert(line != NULL && strstr(line, "Bearer sk-it-tpm-de-3d4e5f"));
		free(line);
	}

	/* Rotate while warden runs: the TPM is free between its uses. */
	seal("c-us", ROTATED_US, "rotate");
	kill(w, SIGHUP);
	usleep(500000);
	chat_on(port, "tok-sealed-2", &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	ck_assert_msg(us_got("tok-sealed-2", "Bearer " ROTATED_US),
	    "the rotated credential was not used after reload");
	/* The reload record names the rotated credential, never its value. */
	{
		char seg[300];

		snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", adir);
		ck_assert(it_file_contains(seg, "\"credentials_changed\":"
		    "[\"c-us\"]"));
		ck_assert(!it_file_contains(seg, ROTATED_US));
	}

	/* A credential gone from the store: the reload fails, the running
	 * credentials stay. */
	snprintf(cmd, sizeof(cmd), "%s secrets rm c-us --store %s >>%s 2>&1",
	    getenv("WARDEN_BIN"), store, wlog);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	kill(w, SIGHUP);
	usleep(500000);
	chat_on(port, "tok-sealed-3", &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	ck_assert(us_got("tok-sealed-3", "Bearer " ROTATED_US));
	ck_assert(it_file_contains(wlog, "credential 'c-us' is not available"));
	seal("c-us", ROTATED_US, "seal");

	/* Enough records for a checkpoint (checkpoint_every: 10), signed
	 * in the TPM and verified with the exported public key. */
	for (int i = 0; i < 12; i++) {
		chat_on(port, "tok-sealed-more", &r);
		it_resp_free(&r);
	}
	{
		int st = it_stop(w, SIGTERM);

		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	snprintf(cmd, sizeof(cmd), "%s audit pubkey --secrets-store %s "
	    ">%s/audit.pem && %s audit verify %s --pubkey %s/audit.pem "
	    ">%s/verify.out 2>&1", getenv("WARDEN_BIN"), store, it_tmpdir(),
	    getenv("WARDEN_BIN"), adir, it_tmpdir(), it_tmpdir());
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "%s/verify.out", it_tmpdir());
	out = it_read_file(cmd, NULL);
	ck_assert_msg(strstr(out, "OK: ") == out && strstr(out, "verified with "
	    "the trusted key; every record is covered") != NULL &&
	    strstr(out, " 0 checkpoints") == NULL, "%s", out);
	free(out);
	/* Without the key: consistent, not authenticated (exit 3). */
	snprintf(cmd, sizeof(cmd), "%s audit verify %s >/dev/null 2>&1",
	    getenv("WARDEN_BIN"), adir);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 3);
	/* An export whose manifest the TPM signs, checked with the auditor's
	 * key by warden and by the independent verifier (audit/verify.py);
	 * an inclusion proof of a record and a consistency proof. */
	snprintf(cmd, sizeof(cmd), "%s audit export %s --format csv -o %s/e.csv "
	    "--secrets-store %s --tcti '%s' --auth-file %s >>%s 2>&1 && "
	    "%s audit verify-export %s/e.csv --pubkey %s/audit.pem >>%s 2>&1 && "
	    "python3 audit/verify.py export %s/e.csv --pubkey %s/audit.pem "
	    ">>%s 2>&1 && python3 audit/verify.py log %s --pubkey %s/audit.pem "
	    ">>%s 2>&1 && %s audit prove %s 3 >%s/p.json 2>>%s && "
	    "%s audit verify-proof %s/p.json --pubkey %s/audit.pem >>%s 2>&1 && "
	    "python3 audit/verify.py proof %s/p.json --pubkey %s/audit.pem "
	    ">>%s 2>&1", getenv("WARDEN_BIN"), adir, it_tmpdir(), store, tcti,
	    authfile, wlog, getenv("WARDEN_BIN"), it_tmpdir(), it_tmpdir(), wlog,
	    it_tmpdir(), it_tmpdir(), wlog, adir, it_tmpdir(), wlog,
	    getenv("WARDEN_BIN"), adir, it_tmpdir(), wlog, getenv("WARDEN_BIN"),
	    it_tmpdir(), it_tmpdir(), wlog, it_tmpdir(), it_tmpdir(), wlog);
	ck_assert_msg(it_run(cmd, NULL, NULL) == 0, "export, proof or their checks failed: see "
	    "%s", wlog);
	/* The export checked with another key: invalid. */
	snprintf(cmd, sizeof(cmd), "openssl ecparam -name prime256v1 -genkey "
	    "-noout -out %s/other.key 2>/dev/null && openssl ec -in %s/other.key "
	    "-pubout -out %s/other.pem 2>/dev/null && %s audit verify-export "
	    "%s/e.csv --pubkey %s/other.pem >/dev/null 2>&1", it_tmpdir(),
	    it_tmpdir(), it_tmpdir(), getenv("WARDEN_BIN"), it_tmpdir(),
	    it_tmpdir());
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 1);

	/* Nothing sealed ever came out in a log. */
	ck_assert(!it_file_contains(wlog, SEALED_US));
	ck_assert(!it_file_contains(wlog, ROTATED_US));
	ck_assert(!it_file_contains(it.warden_log, SEALED_US));
}
END_TEST

START_TEST(auth_values_come_from_a_private_file_only)
{
	char cmd[1024], path[256], *out;

	snprintf(path, sizeof(path), "%s/auth-check.out", it_tmpdir());
	/* Without the auth file: refused, saying why. */
	snprintf(cmd, sizeof(cmd), "%s secrets check --store %s --tcti '%s' "
	    ">%s 2>&1", getenv("WARDEN_BIN"), store, tcti, path);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 1);
	out = it_read_file(path, NULL);
	ck_assert_msg(strstr(out, "FAIL c-de: sealed with an auth value") != NULL,
	    "%s", out);
	ck_assert(strstr(out, "ok c-eu") != NULL);
	free(out);
	/* With it: all ok. */
	snprintf(cmd, sizeof(cmd), "%s secrets check --store %s --tcti '%s' "
	    "--auth-file %s >%s 2>&1", getenv("WARDEN_BIN"), store, tcti,
	    authfile, path);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	/* An auth file others can read is refused before the TPM sees it. */
	chmod(authfile, 0644);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 1);
	out = it_read_file(path, NULL);
	ck_assert_msg(strstr(out, "no one else can read") != NULL, "%s", out);
	ck_assert(strstr(out, "it-auth-value-9") == NULL);
	free(out);
	chmod(authfile, 0600);
}
END_TEST

/*
 * Credentials up to the store's limit (16 KiB: service-account tokens,
 * long JWTs) reach the provider whole.  warden used to build the header
 * in 1024 bytes and refused anything over 900 at use, after sealing it.
 */
START_TEST(long_credentials_reach_the_provider_intact)
{
	static const size_t sizes[] = { 4096, 16384 };
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
	char path[256], adir[256], cmd[1024], token[32];
	unsigned seed = 12;

	snprintf(path, sizeof(path), "%s/long-cred", it_tmpdir());
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *value = malloc(sizes[i] + 1), *needle;
		int port = it_free_port();
		struct it_resp r;
		pid_t w;

		ck_assert(value != NULL);
		for (size_t k = 0; k < sizes[i]; k++) {
			seed = seed * 1103515245u + 12345u;
			value[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		value[sizes[i]] = '\0';
		it_write_file(path, value, 0600);
		snprintf(cmd, sizeof(cmd), "%s secrets rotate c-us --store %s "
		    "--tcti '%s' <%s >>%s 2>&1", getenv("WARDEN_BIN"), store, tcti,
		    path, wlog);
		ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
		snprintf(adir, sizeof(adir), "%s/audit-long-%zu", it_tmpdir(),
		    sizes[i]);
		w = start_sealed(port, adir);
		snprintf(token, sizeof(token), "tok-long-%zu", sizes[i]);
		chat_on(port, token, &r);
		ck_assert_msg(r.status == 200, "%zu bytes: %ld %s", sizes[i],
		    r.status, r.body);
		it_resp_free(&r);
		/* The whole value, between the quotes of its JSON string. */
		ck_assert(asprintf(&needle, "\"Bearer %s\"", value) > 0);
		ck_assert_msg(us_got(token, needle), "the provider did not get "
		    "the %zu-byte credential intact", sizes[i]);
		free(needle);
		it_stop(w, SIGTERM);
		ck_assert(!it_file_contains(wlog, value));
		free(value);
	}
	unlink(path);
	seal("c-us", SEALED_US, "rotate");
}
END_TEST

/* Hold the swtpm's three object slots from other processes: tpm2-tools
 * leave what they create loaded (no resource manager).  flush_after_ms
 * >= 0: a background process flushes them that much later. */
static void
fill_tpm(int flush_after_ms)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cd %s && export TPM2TOOLS_TCTI='%s' && "
	    "for i in 1 2 3; do tpm2_createprimary -Q -C o -G ecc -c full$i.ctx "
	    "|| exit 1; done && test $(tpm2_getcap handles-transient | wc -l) "
	    "-eq 3", it_tmpdir(), tcti);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	if (flush_after_ms >= 0) {
		snprintf(cmd, sizeof(cmd), "(sleep %d.%03d; TPM2TOOLS_TCTI='%s' "
		    "tpm2_flushcontext -t) >/dev/null 2>&1 &", flush_after_ms / 1000,
		    flush_after_ms % 1000, tcti);
		ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	}
}

/* A request through the gateway on port reaches the US mock with the
 * sealed credential. */
static void
chat_ok(int port, const char *token)
{
	struct it_resp r;

	chat_on(port, token, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(us_got(token, "Bearer sk-it-tpm-us-"));
	it_resp_free(&r);
}

/* How many transient objects the swtpm holds now. */
static int
loaded_objects(void)
{
	char cmd[512], *out = NULL;
	int n;

	snprintf(cmd, sizeof(cmd), "TPM2TOOLS_TCTI='%s' tpm2_getcap "
	    "handles-transient | wc -l", tcti);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 0);
	n = atoi(out);
	free(out);
	return n;
}

/* A gateway on the sealed credentials starts, sends one request with its
 * credential, and stops. */
static void
serve_one(const char *audit, const char *token)
{
	int port = it_free_port();
	char adir[256];
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/%s", it_tmpdir(), audit);
	w = start_sealed(port, adir);
	chat_ok(port, token);
	it_stop(w, SIGTERM);
}

START_TEST(a_busy_tpm_is_waited_for_and_dead_processes_objects_flushed)
{
	char cmd[1024], *out;
	int rc;

	/* Slots another process holds for a moment: warden waits for them
	 * at start (unsealing, the audit key's first signature). */
	fill_tpm(300);
	serve_one("audit-busy", "tok-busy-tpm");
	/* Slots that stay full, held by processes that are gone: a command
	 * fails with the TPM's reason after the retries, flushes them as it
	 * ends and says so, and the same command then works ... */
	fill_tpm(-1);
	snprintf(cmd, sizeof(cmd), "%s secrets check -c %s 2>&1",
	    getenv("WARDEN_BIN"), sealed_cfg);
	rc = it_run(cmd, &out, NULL);
	ck_assert_msg(rc == 1 && strstr(out, "FAIL c-us") != NULL &&
	    strstr(out, "0x902") != NULL &&
	    strstr(out, "still full after warden retried") != NULL &&
	    strstr(out, "TPM: flushed 3 object(s) and 0 session(s) that "
	    "stayed loaded") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(loaded_objects(), 0);
	rc = it_run(cmd, &out, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "FAIL") == NULL, "%s", out);
	free(out);
	/* ... and a gateway that starts flushes them first (what a warden
	 * killed mid-operation leaves would otherwise keep the next one
	 * from starting), says so, and serves. */
	fill_tpm(-1);
	serve_one("audit-fulltpm", "tok-full-tpm");
	ck_assert_msg(it_file_contains(wlog, "TPM: flushed 3 object(s) and 0 "
	    "session(s) that stayed loaded"), "no word of the flush in %s", wlog);
	ck_assert_int_eq(loaded_objects(), 0);
}
END_TEST

/* How many lines of the log say that the gateway flushed n objects. */
static int
flushes_logged(int n)
{
	char cmd[512], *out = NULL;
	int count;

	snprintf(cmd, sizeof(cmd), "grep -c 'TPM: flushed %d object(s)' %s",
	    n, wlog);
	it_run(cmd, &out, NULL);
	count = out != NULL ? atoi(out) : 0;
	free(out);
	return count;
}

/*
 * While the gateway runs, a command killed mid-operation leaves the
 * slots full: the next TPM operation (here a reload's unseal) waits its
 * 2 s and fails, the running credentials stay, and what was left is
 * flushed then, so that the operations after it work.
 */
START_TEST(a_running_gateway_flushes_what_a_dead_command_left)
{
	int port = it_free_port(), before, i;
	char adir[256];
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-runfull", it_tmpdir());
	w = start_sealed(port, adir);
	before = flushes_logged(3);
	/* Once the start's own TPM work (its checkpoint) is done. */
	for (i = 0; i < 50 && loaded_objects() != 0; i++)
		usleep(100000);
	ck_assert_int_lt(i, 50);
	usleep(300000);
	fill_tpm(-1);
	kill(w, SIGHUP);
	for (i = 0; i < 100 && flushes_logged(3) == before; i++)
		usleep(100000);
	ck_assert_msg(flushes_logged(3) == before + 1, "no word of the flush "
	    "in %s", wlog);
	ck_assert_int_eq(loaded_objects(), 0);
	chat_ok(port, "tok-run-full");
	it_stop(w, SIGTERM);
}
END_TEST

START_TEST(without_the_tpm_warden_refuses_to_start)
{
	char cmd[1024], path[256], *out;
	int rc;

	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh stop %s >/dev/null 2>&1",
	    tpmdir);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	snprintf(path, sizeof(path), "%s/notpm.out", it_tmpdir());
	snprintf(cmd, sizeof(cmd), "%s serve -c %s --listen 127.0.0.1:%d "
	    "--audit-dir %s/audit-notpm >%s 2>&1", getenv("WARDEN_BIN"),
	    sealed_cfg, it_free_port(), it_tmpdir(), path);
	rc = it_run(cmd, NULL, NULL);
	out = it_read_file(path, NULL);
	ck_assert_msg(rc != 0, "warden started without its TPM: %s", out);
	ck_assert_msg(strstr(out, "cannot open the TPM") != NULL ||
	    strstr(out, "TPM:") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "credential 'c-") != NULL, "%s", out);
	free(out);
}
END_TEST

Suite *
suite_sealed(void)
{
	Suite *s = suite_create("sealed");
	TCase *tc = tcase_create("sealed");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, sealed_credentials_reach_the_provider_and_rotate_on_reload);
	tcase_add_test(tc, auth_values_come_from_a_private_file_only);
	tcase_add_test(tc, long_credentials_reach_the_provider_intact);
	tcase_add_test(tc, a_busy_tpm_is_waited_for_and_dead_processes_objects_flushed);
	tcase_add_test(tc, a_running_gateway_flushes_what_a_dead_command_left);
	tcase_add_test(tc, without_the_tpm_warden_refuses_to_start);
	suite_add_tcase(s, tc);
	return s;
}
