/*
 * test_lifecycle.c - starting, refusing to start, and stopping gracefully;
 * the `keys` and `lint` commands against the real binary.
 */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/env.h"
#include "tests/integration/suites.h"

static void
setup(void)
{
	it_env_start(NULL);
}

static void
teardown(void)
{
	it_env_stop();
}

START_TEST(sigterm_lets_requests_in_flight_finish)
{
	int port = it_free_port(), fds[2], st;
	pid_t w = it_warden_start(port), child;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	ck_assert(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		struct it_resp r;
		const char *h[] = { "Authorization: Bearer " IT_KEY_T2, NULL };
		char *body = it_chat_body("gpt-4o", "[[mock delay_ms=800]]", false);

		it_http("POST", url, h, body, 5000, &r);
		if (write(fds[1], &r.status, sizeof(r.status)) < 0)
			_exit(1);
		_exit(0);
	}
	usleep(300000);			/* the request is in flight */
	kill(w, SIGTERM);
	usleep(100000);
	/* New connections are refused while the old request finishes. */
	ck_assert(!it_wait_port(port, 100));
	{
		long status = 0;

		ck_assert(read(fds[0], &status, sizeof(status)) == sizeof(status));
		ck_assert_int_eq(status, 200);
	}
	waitpid(child, NULL, 0);
	st = it_stop(w, SIGTERM);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(keys_new_makes_a_working_key)
{
	char *out, key[128] = "", rule[128] = "", cmd[512], *cfg, *p;
	int rc, port = it_free_port();
	pid_t w;
	struct it_resp r;
	char auth[200];
	const char *h[] = { auth, NULL };

	snprintf(cmd, sizeof(cmd), "%s keys new", getenv("WARDEN_BIN"));
	rc = it_run(cmd, &out, NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert(sscanf(out, "key:  %127s\nrule: %127s", key, rule) == 2);
	ck_assert(strncmp(key, "wk-", 3) == 0);
	ck_assert(strncmp(rule, "sha256:", 7) == 0 && strlen(rule) == 71);
	free(out);
	/* Swap tenant t2's key for the new one and use it. */
	cfg = it_read_file(it.config, NULL);
	p = strstr(cfg, "{ id: t2, keys: ['");
	ck_assert(p != NULL);
	memcpy(p + strlen("{ id: t2, keys: ['"), rule, 71);
	it_write_file(it.config, cfg, 0600);
	free(cfg);
	w = it_warden_start(port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(cmd, sizeof(cmd), "http://127.0.0.1:%d/v1/models", port);
	it_http("GET", cmd, h, NULL, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "\"o3\"") != NULL);
	it_resp_free(&r);
	it_stop(w, SIGTERM);
}
END_TEST

START_TEST(bad_rules_stop_the_start)
{
	char path[256], cmd[512], *out;
	int rc;

	snprintf(path, sizeof(path), "%s/bad.yaml", it_tmpdir());
	it_write_file(path, "version: 1\nprovders: []\ntenants:\n"
	    "  - { id: t, keys: [], routes: [nope] }\n", 0600);
	snprintf(cmd, sizeof(cmd), "%s serve -c %s --audit-dir %s/audit-cmd "
	    "--dev-credentials --listen 127.0.0.1:%d",
	    getenv("WARDEN_BIN"), path, it_tmpdir(), it_free_port());
	rc = it_run(cmd, &out, NULL);
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(out, "bad.yaml:2:1: unknown key 'provders' in the "
	    "rules file (did you mean 'providers'?)") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "bad.yaml:4:33: tenant 't' names unknown "
	    "route 'nope'") != NULL, "%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s lint -c %s", getenv("WARDEN_BIN"), path);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 2);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s lint -c %s", getenv("WARDEN_BIN"), it.config);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 0);
	ck_assert(strstr(out, "configuration OK") != NULL);
	free(out);
	/* Rules others may write are refused. */
	chmod(path, 0666);
	it_write_file(path, "version: 1\n", 0666);
	snprintf(cmd, sizeof(cmd), "%s lint -c %s", getenv("WARDEN_BIN"), path);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 2);
	ck_assert(strstr(out, "writable by group or others") != NULL);
	free(out);
}
END_TEST

START_TEST(missing_credential_stops_the_start)
{
	char path[256], cmd[512], *out, *cfg, *p;

	cfg = it_read_file(it.config, NULL);
	p = strstr(cfg, "  c-us: ");
	ck_assert(p != NULL);
	*p = '\0';			/* drop c-us from dev_credentials */
	snprintf(path, sizeof(path), "%s/nocred.yaml", it_tmpdir());
	it_write_file(path, cfg, 0600);
	free(cfg);
	snprintf(cmd, sizeof(cmd), "%s serve -c %s --audit-dir %s/audit-cmd "
	    "--dev-credentials --listen 127.0.0.1:%d",
	    getenv("WARDEN_BIN"), path, it_tmpdir(), it_free_port());
	ck_assert_int_ne(it_run(cmd, &out, NULL), 0);
	ck_assert_msg(strstr(out, "route 'p-us': credential 'c-us' is not "
	    "available") != NULL, "%s", out);
	ck_assert(strstr(out, IT_SECRET_EU) == NULL);
	free(out);
}
END_TEST

/*
 * A start that is refused after binding its port (here: a route's
 * credential is missing) never accepts a connection: warden listens only
 * once every check has passed.  Connections are tried back to back for
 * as long as the refused process lives, five starts over.
 */
START_TEST(a_refused_start_never_accepts)
{
	char path[256], log[300], portarg[32], *cfg, *p;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int accepted = 0, tries = 0;

	cfg = it_read_file(it.config, NULL);
	ck_assert_ptr_nonnull(p = strstr(cfg, "  c-us: "));
	*p = '\0';			/* drop c-us from dev_credentials */
	snprintf(path, sizeof(path), "%s/refused.yaml", it_tmpdir());
	it_write_file(path, cfg, 0600);
	free(cfg);
	snprintf(log, sizeof(log), "%s/refused.log", it_tmpdir());
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int round = 0; round < 5; round++) {
		int port = it_free_port(), st;
		char dir[300];
		pid_t w;

		snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", port);
		snprintf(dir, sizeof(dir), "%s/audit-refused", it_tmpdir());
		{
			char *const argv[] = { getenv("WARDEN_BIN"), "serve",
				"-c", path, "--audit-dir", dir,
				"--dev-credentials", "--listen", portarg, NULL };

			w = it_spawn(argv, log);
		}
		sa.sin_port = htons((uint16_t)port);
		for (double until = it_now_s() + 10;; tries++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			ck_assert(fd >= 0);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				accepted++;
			close(fd);
			if (waitpid(w, &st, WNOHANG) == w)
				break;
			ck_assert_msg(it_now_s() < until, "the refused start "
			    "did not end; see %s", log);
		}
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "see %s",
		    log);
	}
	ck_assert_msg(it_file_contains(log, "credential 'c-us' is not "
	    "available"), "see %s", log);
	ck_assert_msg(accepted == 0, "%d of %d connections were accepted by "
	    "a start that was refused", accepted, tries);
}
END_TEST

START_TEST(dev_credentials_need_the_flag)
{
	char cmd[512], *out;

	snprintf(cmd, sizeof(cmd), "%s serve -c %s --audit-dir %s/audit-cmd "
	    "--listen 127.0.0.1:%d", getenv("WARDEN_BIN"), it.config,
	    it_tmpdir(), it_free_port());
	ck_assert_int_eq(it_run(cmd, &out, NULL), 1);
	ck_assert_msg(strstr(out, "dev_credentials holds plain-text credentials")
	    != NULL, "%s", out);
	ck_assert(strstr(out, IT_SECRET_EU) == NULL);
	free(out);
}
END_TEST

START_TEST(strict_durability_serves_and_records)
{
	char path[256], cmd[1024], listen[32], adir[256], *cfg, *strict, *out;
	int port = it_free_port();
	struct it_resp r;
	pid_t w;

	/* The suite's rules with durability: strict. */
	cfg = it_read_file(it.config, NULL);
	ck_assert_ptr_nonnull(strstr(cfg, "audit:\n"));
	if (asprintf(&strict, "%.*saudit:\n  durability: strict\n%s",
	    (int)(strstr(cfg, "audit:\n") - cfg), cfg,
	    strstr(cfg, "audit:\n") + 7) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/strict.yaml", it_tmpdir());
	it_write_file(path, strict, 0600);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(adir, sizeof(adir), "%s/audit-strict", it_tmpdir());
	{
		char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", path,
			"--listen", listen, "--audit-dir", adir,
			"--dev-credentials", NULL };

		w = it_spawn(argv, it.warden_log);
	}
	ck_assert(it_wait_port(port, 5000));
	snprintf(cmd, sizeof(cmd), "http://127.0.0.1:%d/v1/chat/completions", port);
	{
		const char *h[] = { "Authorization: Bearer " IT_KEY_T2, NULL };
		char *body = it_chat_body("gpt-4o", "tok-strict", false);

		it_http("POST", cmd, h, body, 5000, &r);
		free(body);
	}
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_stop(w, SIGTERM);
	snprintf(cmd, sizeof(cmd), "%s audit verify %s", getenv("WARDEN_BIN"), adir);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 3);	/* consistent; no key given */
	ck_assert_msg(strstr(out, "CONSISTENT: 3 records") != NULL, "%s", out);
	free(out);
	free(strict);
	free(cfg);
}
END_TEST

/* Start a warden whose audit section is replaced by audit_yaml. */
static pid_t
start_with_audit(const char *audit_yaml, const char *name, int port,
    char *adir, size_t adirlen)
{
	char path[256], listen[32], *cfg, *text;
	const char *a, *end;
	pid_t w;

	cfg = it_read_file(it.config, NULL);
	a = strstr(cfg, "audit:\n");
	end = strstr(a, "upstream:\n");
	if (a == NULL || end == NULL || asprintf(&text, "%.*s%s%s",
	    (int)(a - cfg), cfg, audit_yaml, end) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s.yaml", it_tmpdir(), name);
	it_write_file(path, text, 0600);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(adir, adirlen, "%s/audit-%s", it_tmpdir(), name);
	{
		char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", path,
			"--listen", listen, "--audit-dir", adir,
			"--dev-credentials", NULL };

		w = it_spawn(argv, it.warden_log);
	}
	free(text);
	free(cfg);
	ck_assert(it_wait_port(port, 5000));
	return w;
}

/* Without a TPM there is no key to seal payloads under: none is kept
 * (never in clear), the record keeps the digests, and warden says so.
 * test_payloads.c covers keeping them with a TPM. */
START_TEST(without_a_tpm_no_payload_is_kept)
{
	char adir[256], url[128], cmd[1024], *out;
	int port = it_free_port();
	const char *h1[] = { "Authorization: Bearer " IT_KEY_T1, NULL };
	char *body = it_chat_body("gpt-4o", "tok-keep-secret-words", false);
	struct it_resp r;
	pid_t w;

	w = start_with_audit("audit:\n  payloads: full\n  payload_ttl_days: 2\n",
	    "keepfull", port, adir, sizeof(adir));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	it_http("POST", url, h1, body, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_stop(w, SIGTERM);
	snprintf(cmd, sizeof(cmd), "grep -rl tok-keep-secret-words %s", adir);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 1);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/audit-000001.jsonl", adir);
	ck_assert(!it_file_contains(cmd, "\"stored\":true"));
	ck_assert(it_file_contains(cmd, "\"request_hmac\":\""));
	ck_assert(it_file_contains(it.warden_log, "no payload is kept"));
	snprintf(cmd, sizeof(cmd), "%s audit verify %s", getenv("WARDEN_BIN"), adir);
	ck_assert_int_eq(it_run(cmd, &out, NULL), 3);	/* consistent; no key given */
	free(out);
	free(body);
}
END_TEST

START_TEST(root_is_refused_unless_allowed)
{
	char cmd[1024], *out;

	snprintf(cmd, sizeof(cmd), "env -u WARDEN_ALLOW_ROOT %s serve -c %s "
	    "--audit-dir %s/audit-cmd --dev-credentials --listen 127.0.0.1:%d",
	    getenv("WARDEN_BIN"), it.config, it_tmpdir(), it_free_port());
	if (geteuid() != 0)
		return;		/* nothing to refuse */
	ck_assert_int_eq(it_run(cmd, &out, NULL), 1);
	ck_assert_msg(strstr(out, "refusing to run as root") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(drops_to_an_unprivileged_user_after_binding)
{
	char adir[] = "/tmp/warden-nobody-XXXXXX", listen[32], path[64], url[96];
	char *status, *uid;
	const char *h[] = { "Authorization: Bearer " IT_KEY_T2, NULL };
	char *body = it_chat_body("gpt-4o", "tok-nobody", false);
	int port = it_free_port();
	struct it_resp r;
	pid_t w;

	if (geteuid() != 0)
		return;		/* dropping needs root to begin with */
	ck_assert_ptr_nonnull(mkdtemp(adir));
	ck_assert_int_eq(chown(adir, 65534, 65534), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	{
		char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", it.config,
			"--listen", listen, "--audit-dir", adir, "--dev-credentials",
			"--user", "nobody", NULL };

		w = it_spawn(argv, it.warden_log);
	}
	ck_assert(it_wait_port(port, 5000));
	/* Bound before the drop; serving only after it. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	it_http("GET", url, NULL, NULL, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)w);
	status = it_read_file(path, NULL);
	uid = strstr(status, "\nUid:");
	ck_assert_msg(uid != NULL && strncmp(uid, "\nUid:\t65534\t65534\t65534",
	    23) == 0, "%s", status);
	free(status);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	it_http("POST", url, h, body, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_stop(w, SIGTERM);
	snprintf(path, sizeof(path), "%s/audit-000001.jsonl", adir);
	ck_assert(it_file_contains(path, "\"status\":200"));
	free(body);
}
END_TEST

START_TEST(port_in_use_is_reported)
{
	char cmd[512], *out;

	snprintf(cmd, sizeof(cmd), "%s serve -c %s --audit-dir %s/audit-cmd "
	    "--dev-credentials --listen 127.0.0.1:%d",
	    getenv("WARDEN_BIN"), it.config, it_tmpdir(), it.mock_port[0]);
	ck_assert_int_ne(it_run(cmd, &out, NULL), 0);
	ck_assert_msg(strstr(out, "cannot listen on") != NULL, "%s", out);
	free(out);
}
END_TEST

Suite *
suite_lifecycle(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, sigterm_lets_requests_in_flight_finish);
	tcase_add_test(tc, bad_rules_stop_the_start);
	tcase_add_test(tc, missing_credential_stops_the_start);
	tcase_add_test(tc, port_in_use_is_reported);
	tcase_add_test(tc, a_refused_start_never_accepts);
	tcase_add_test(tc, dev_credentials_need_the_flag);
	tcase_add_test(tc, strict_durability_serves_and_records);
	tcase_add_test(tc, root_is_refused_unless_allowed);
	tcase_add_test(tc, drops_to_an_unprivileged_user_after_binding);
	tcase_add_test(tc, without_a_tpm_no_payload_is_kept);
	tcase_add_test(tc, keys_new_makes_a_working_key);
	suite_add_tcase(s, tc);
	return s;
}
