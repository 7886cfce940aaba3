/*
 * test_witness.c - issue 11 through the real binary and a real swtpm:
 * each checkpoint warden makes reaches loopback witnesses as it is made
 * (syslog over UDP, TCP and a Unix socket; an HTTP POST), byte for byte
 * the line in the log; checkpoints carry the TPM counter, which only
 * grows, across runs, and `warden audit counter` reads it; the signing
 * key warden makes signs only with the auth value (tpm2_sign without it
 * fails), and without an auth file warden refuses to make one.
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/env.h"
#include "tests/integration/suites.h"
#include "tests/integration/wit_listen.h"

#define AUTH "it-audit-key-auth-5"

static char tpmdir[256], store[256], authfile[256], tcti[128];
static const char *ww_extra;	/* one more serve option, or NULL */

static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return it_run(cmd, NULL, NULL);
}

static void
setup(void)
{
	char cmd[512];
	FILE *p;

	it_env_start(NULL);
	/* A fresh TPM per test: swtpm counts each restart without
	 * TPM2_Shutdown as a failed authorization (dictionary-attack
	 * protection), and the signing key is DA-protected. */
	snprintf(tpmdir, sizeof(tpmdir), "%s/wit-tpm-%d", it_tmpdir(),
	    (int)getpid());
	snprintf(store, sizeof(store), "%s/wit-store-%d", it_tmpdir(),
	    (int)getpid());
	snprintf(authfile, sizeof(authfile), "%s/wit-auth", it_tmpdir());
	it_write_file(authfile, AUTH, 0600);
	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh start %s", tpmdir);
	if ((p = popen(cmd, "r")) == NULL || fgets(tcti, sizeof(tcti), p) == NULL
	    || pclose(p) != 0)
		abort();
	tcti[strcspn(tcti, "\n")] = '\0';
}

static void
teardown(void)
{
	sh("sh scripts/swtpm.sh stop %s >/dev/null 2>&1", tpmdir);
	it_env_stop();
}

/* One warden on the TPM, with witness_yaml under `audit:`. */
struct ww {
	pid_t pid;
	int port;
	char dir[256], log[256], cfg[256];
};

static bool
ww_start(struct ww *w, const char *name, const char *witness_yaml,
    const char *st, bool auth, bool dev_key)
{
	char listen[32], *text, *a, *cfg;
	char *argv[20];
	int n = 0;

	w->port = it_free_port();
	snprintf(w->dir, sizeof(w->dir), "%s/wit-audit-%s", it_tmpdir(), name);
	snprintf(w->log, sizeof(w->log), "%s/warden-wit-%s.log", it_tmpdir(),
	    name);
	snprintf(w->cfg, sizeof(w->cfg), "%s/wit-%s.yaml", it_tmpdir(), name);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", w->port);
	text = it_read_file(it.config, NULL);
	ck_assert_ptr_nonnull(text);
	a = strstr(text, "\naudit:\n");
	ck_assert_ptr_nonnull(a);
	a[7] = '\0';
	ck_assert(asprintf(&cfg, "%s\n%s%s", text, witness_yaml, a + 8) >= 0);
	it_write_file(w->cfg, cfg, 0600);
	free(cfg);
	free(text);
	argv[n++] = getenv("WARDEN_BIN");
	argv[n++] = "serve";
	argv[n++] = "-c";
	argv[n++] = w->cfg;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--audit-dir";
	argv[n++] = w->dir;
	argv[n++] = "--dev-credentials";
	argv[n++] = "--tcti";
	argv[n++] = tcti;
	argv[n++] = "--secrets-store";
	argv[n++] = (char *)st;
	if (auth) {
		argv[n++] = "--auth-file";
		argv[n++] = authfile;
	}
	if (dev_key)
		argv[n++] = "--dev-unauthenticated-audit-key";
	if (ww_extra != NULL)
		argv[n++] = (char *)ww_extra;
	argv[n] = NULL;
	w->pid = it_spawn(argv, w->log);
	return it_wait_port(w->port, 5000);
}

static void
chats(const struct ww *w, int n)
{
	char url[128], *body = it_chat_body("gpt-4o", "tok-wit", false);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    w->port);
	for (int i = 0; i < n; i++) {
		struct it_resp r;

		it_chat_at(url, IT_KEY_T1, NULL, body, 5000, &r);
		ck_assert_msg(r.status == 200, "%ld: %s", r.status, r.body);
		it_resp_free(&r);
	}
	free(body);
}

/* The checkpoint lines of the log at dir, in order (without newline). */
static int
log_checkpoints(const char *dir, char **out, int max)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort), k = 0;

	for (int i = 0; i < n; i++) {
		if (strncmp(ents[i]->d_name, "audit-", 6) == 0) {
			char path[512], *text, *line, *save;

			snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
			text = it_read_file(path, NULL);
			for (line = text ? strtok_r(text, "\n", &save) : NULL;
			    line != NULL; line = strtok_r(NULL, "\n", &save))
				if (strstr(line, "\"kind\":\"checkpoint\"") != NULL &&
				    k < max)
					out[k++] = strdup(line);
			free(text);
		}
		free(ents[i]);
	}
	if (n > 0)
		free(ents);
	return k;
}

/* Until the log at w holds n checkpoints (signed on the writer thread,
 * after the answers went out), at most 10 s. */
static void
wait_checkpoints(const struct ww *w, int n)
{
	char *cps[32];
	int k = 0;

	for (int i = 0; i < 500 && k < n; i++) {
		k = log_checkpoints(w->dir, cps, 32);
		for (int j = 0; j < k; j++)
			free(cps[j]);
		if (k < n)
			usleep(20000);
	}
	ck_assert_msg(k >= n, "%d checkpoints in %s, wanted %d", k, w->dir, n);
}

static long long
counter_of(const char *line)
{
	json_t *j = json_loads(line, 0, NULL);
	json_t *c = json_object_get(j, "counter");
	long long v;

	ck_assert_msg(json_is_integer(c), "no counter in %s", line);
	v = (long long)json_integer_value(c);
	json_decref(j);
	return v;
}

/* Each checkpoint the witness received, in order, is the log's. */
static void
assert_witnessed(struct wl *l, char **cps, int ncp, const char *what)
{
	ck_assert_msg(wl_count(l, ncp, 5000) == ncp, "%s got %d checkpoints, "
	    "the log has %d", what, l->n, ncp);
	for (int i = 0; i < ncp; i++)
		ck_assert_msg(l->msg[i] != NULL && strcmp(l->msg[i], cps[i]) == 0,
		    "%s: checkpoint %d differs:\n%s\n%s", what, i,
		    l->msg[i] ? l->msg[i] : "(none)", cps[i]);
}

static long long
tpm_counter(void)
{
	char cmd[512], path[300], *out;
	long long v;

	snprintf(path, sizeof(path), "%s/wit-counter.out", it_tmpdir());
	snprintf(cmd, sizeof(cmd), "%s audit counter --tcti '%s' --value >%s "
	    "2>&1", getenv("WARDEN_BIN"), tcti, path);
	ck_assert_int_eq(sh("%s", cmd), 0);
	out = it_read_file(path, NULL);
	v = strtoll(out, NULL, 10);
	free(out);
	return v;
}

START_TEST(checkpoints_reach_udp_and_http_witnesses_as_made)
{
	struct wl u, h;
	struct ww w;
	char yaml[256], *cps[32], *start;
	int ncp;
	long long last = -1;

	ck_assert(wl_start(&u, WL_UDP, NULL));
	ck_assert(wl_start(&h, WL_HTTP, NULL));
	snprintf(yaml, sizeof(yaml), "  witness:\n    syslog: udp://127.0.0.1:%d\n"
	    "    url: http://127.0.0.1:%d/checkpoints\n", u.port, h.port);
	ck_assert_msg(ww_start(&w, "udp", yaml, store, true, false),
	    "warden did not come up; see %s", w.log);
	/* checkpoint_every: 10.  The first one leaves while warden runs. */
	chats(&w, 12);
	ck_assert_msg(wl_count(&u, 1, 5000) >= 1, "no checkpoint reached the "
	    "syslog collector while warden ran");
	ck_assert_msg(wl_count(&h, 1, 5000) >= 1, "no checkpoint reached the "
	    "HTTP witness while warden ran");
	{
		char url[96];
		struct it_resp r;

		/* Counted for operators. */
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", w.port);
		for (int i = 0; ; i++) {
			bool seen;

			it_http("GET", url, NULL, NULL, 5000, &r);
			seen = strstr(r.body, "warden_audit_witness_total{result="
			    "\"sent\"} 2\n") != NULL;
			ck_assert_msg(seen || i < 40, "%s", r.body);
			it_resp_free(&r);
			if (seen)
				break;
			usleep(50000);
		}
	}
	chats(&w, 13);
	wait_checkpoints(&w, 2);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ncp = log_checkpoints(w.dir, cps, 32);
	ck_assert_int_ge(ncp, 3);
	assert_witnessed(&u, cps, ncp, "the UDP syslog collector");
	assert_witnessed(&h, cps, ncp, "the HTTP witness");
	/* Every checkpoint carries the TPM counter; it never goes down; the
	 * last (made at stop, which bumps it) is the TPM's value now. */
	for (int i = 0; i < ncp; i++) {
		long long v = counter_of(cps[i]);

		ck_assert_int_ge(v, last);
		last = v;
	}
	ck_assert_int_eq(tpm_counter(), last);
	/* The start record names the counter's index and TPM name. */
	start = NULL;
	{
		char seg[512], *text;

		snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", w.dir);
		text = it_read_file(seg, NULL);
		start = strstr(text, "\"tpm_counter\":{");
		ck_assert_msg(start != NULL && strstr(start, "\"index\":\"0x01800a0d\"")
		    != NULL && strstr(start, "\"name\":\"000b") != NULL, "%s", text);
		free(text);
	}
	/* And the checkpoints verify with the key's public half. */
	ck_assert_int_eq(sh("%s audit pubkey --secrets-store %s >%s/wit.pem && "
	    "%s audit verify %s --pubkey %s/wit.pem >/dev/null 2>&1",
	    getenv("WARDEN_BIN"), store, it_tmpdir(), getenv("WARDEN_BIN"), w.dir,
	    it_tmpdir()), 0);
	for (int i = 0; i < ncp; i++)
		free(cps[i]);
	wl_stop(&u);
	wl_stop(&h);

	/* A second run on the same TPM: its checkpoints are above the first
	 * run's, so a copy of the first run's log put back later is behind. */
	{
		struct wl t;
		char path[108];
		int n2;

		snprintf(path, sizeof(path), "%s/wit-syslog.sock", it_tmpdir());
		ck_assert(wl_start(&t, WL_UNIX, path));
		snprintf(yaml, sizeof(yaml), "  witness:\n    syslog: unix:%s\n",
		    path);
		ck_assert_msg(ww_start(&w, "unix", yaml, store, true, false),
		    "warden did not come up; see %s", w.log);
		chats(&w, 11);
		ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
		n2 = log_checkpoints(w.dir, cps, 32);
		ck_assert_int_ge(n2, 2);
		assert_witnessed(&t, cps, n2, "the Unix syslog collector");
		ck_assert_int_gt(counter_of(cps[0]), last);
		for (int i = 0; i < n2; i++)
			free(cps[i]);
		wl_stop(&t);
	}
}
END_TEST

START_TEST(tcp_witness_gets_octet_counted_frames)
{
	struct wl t;
	struct ww w;
	char yaml[128], *cps[32];
	int ncp;

	ck_assert(wl_start(&t, WL_TCP, NULL));
	snprintf(yaml, sizeof(yaml), "  witness:\n    syslog: tcp://127.0.0.1:%d\n",
	    t.port);
	ck_assert_msg(ww_start(&w, "tcp", yaml, store, true, false),
	    "warden did not come up; see %s", w.log);
	/* The writer thread signs by count off the request path (format 2):
	 * a checkpoint covers every record so far, so the next one waits for
	 * ten more after it. */
	chats(&w, 11);
	wait_checkpoints(&w, 1);
	chats(&w, 10);
	wait_checkpoints(&w, 2);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ncp = log_checkpoints(w.dir, cps, 32);
	ck_assert_int_ge(ncp, 3);
	assert_witnessed(&t, cps, ncp, "the TCP syslog collector");
	for (int i = 0; i < ncp; i++)
		free(cps[i]);
	wl_stop(&t);
}
END_TEST

/*
 * The key serves only warden: without an auth file warden makes no key
 * (unless told it is development); the key it made with one cannot sign
 * with tpm2-tools unless the auth value is given.
 */
START_TEST(signing_key_needs_the_auth_value)
{
	struct ww w;
	char dev_store[300];
	int st;

	/* No auth file: refused (warden exits by itself), and it says what
	 * to set. */
	(void)ww_start(&w, "noauth", "", store, false, false);
	st = it_wait_exit(w.pid, 10000);
	if (st == -1)
		st = it_stop(w.pid, SIGKILL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "warden without "
	    "an auth file did not exit with an error; see %s", w.log);
	ck_assert_msg(it_file_contains(w.log, "secrets.auth_file"), "see %s",
	    w.log);
	/* Made with the auth value. */
	ck_assert_msg(ww_start(&w, "auth", "", store, true, false),
	    "warden did not come up; see %s", w.log);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ck_assert_int_eq(sh("cd %s && TPM2TOOLS_TCTI='%s' sh -c '"
	    "tpm2_createprimary -Q -C o -G ecc -c wp.ctx && tpm2_flushcontext -t && "
	    "tpm2_load -Q -C wp.ctx -u %s/.audit-signing-key/tpm.pub "
	    "-r %s/.audit-signing-key/tpm.priv -c wk.ctx && tpm2_flushcontext -t && "
	    "printf forged > wmsg' >/dev/null 2>&1", it_tmpdir(), tcti, store,
	    store), 0);
	ck_assert_int_ne(sh("cd %s && TPM2TOOLS_TCTI='%s' tpm2_sign -c wk.ctx "
	    "-g sha256 -f plain -o wsig wmsg >/dev/null 2>&1", it_tmpdir(), tcti),
	    0);
	sh("TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t >/dev/null 2>&1", tcti);
	ck_assert_int_eq(sh("%s audit pubkey --secrets-store %s > %s/wk.pem",
	    getenv("WARDEN_BIN"), store, it_tmpdir()), 0);
	{
		char path[300], *out;
		int rc = sh("cd %s && TPM2TOOLS_TCTI='%s' tpm2_sign -c wk.ctx "
		    "-p file:%s -g sha256 -f plain -o wsig wmsg >wsign.out 2>&1 && "
		    "openssl dgst -sha256 -verify wk.pem -signature wsig wmsg "
		    ">>wsign.out 2>&1", it_tmpdir(), tcti, authfile);

		snprintf(path, sizeof(path), "%s/wsign.out", it_tmpdir());
		out = it_read_file(path, NULL);
		ck_assert_msg(rc == 0, "tpm2_sign with the auth value: %s",
		    out ? out : "");
		free(out);
	}
	sh("TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t >/dev/null 2>&1", tcti);
	/* Development: a key without auth value, only when told so. */
	snprintf(dev_store, sizeof(dev_store), "%s/wit-dev-store", it_tmpdir());
	ck_assert_msg(ww_start(&w, "devkey", "", dev_store, false, true),
	    "warden did not come up; see %s", w.log);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ck_assert(it_file_contains(w.log, "WITHOUT an auth value"));
}
END_TEST

/*
 * No silent rollback: a copy of the log put back from before a later run
 * is behind the TPM counter; warden records it and refuses to start until
 * the operator says --accept-rollback, which signs the record in.
 */
START_TEST(a_log_put_back_is_refused_unless_accepted)
{
	struct ww w;
	char seg[300];
	int st;

	ck_assert_msg(ww_start(&w, "rb", "", store, true, false),
	    "warden did not come up; see %s", w.log);
	chats(&w, 3);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ck_assert_int_eq(sh("cp -a %s %s.old", w.dir, w.dir), 0);
	ck_assert_msg(ww_start(&w, "rb", "", store, true, false),
	    "warden did not come up; see %s", w.log);
	chats(&w, 2);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ck_assert_int_eq(sh("rm -rf %s && mv %s.old %s", w.dir, w.dir, w.dir), 0);
	/* Refused, saying why and what the operator may do: it exits by
	 * itself (its port may have been bound before the log was read). */
	ww_start(&w, "rb", "", store, true, false);
	st = -1;
	for (int i = 0; i < 500 && waitpid(w.pid, &st, WNOHANG) != w.pid; i++)
		usleep(20000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d; see %s",
	    st, w.log);
	ck_assert_msg(it_file_contains(w.log, "behind the TPM counter") &&
	    it_file_contains(w.log, "--accept-rollback"), "see %s", w.log);
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", w.dir);
	ck_assert(it_file_contains(seg, "\"kind\":\"rollback_detected\""));
	/* Accepted: it serves, and the record is signed into the log. */
	ww_extra = "--accept-rollback";
	ck_assert_msg(ww_start(&w, "rb", "", store, true, false),
	    "warden did not come up; see %s", w.log);
	ww_extra = NULL;
	chats(&w, 1);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
	ck_assert_int_eq(sh("%s audit pubkey --secrets-store %s >%s/rb.pem && "
	    "%s audit verify %s --pubkey %s/rb.pem >/dev/null 2>&1",
	    getenv("WARDEN_BIN"), store, it_tmpdir(), getenv("WARDEN_BIN"), w.dir,
	    it_tmpdir()), 0);
	/* And the next start is clean again. */
	ck_assert_msg(ww_start(&w, "rb", "", store, true, false),
	    "warden did not come up; see %s", w.log);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w.pid, SIGTERM)), 0);
}
END_TEST

Suite *
suite_witness(void)
{
	Suite *s = suite_create("witness");
	TCase *tc = tcase_create("witness");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, checkpoints_reach_udp_and_http_witnesses_as_made);
	tcase_add_test(tc, tcp_witness_gets_octet_counted_frames);
	tcase_add_test(tc, signing_key_needs_the_auth_value);
	tcase_add_test(tc, a_log_put_back_is_refused_unless_accepted);
	suite_add_tcase(s, tc);
	return s;
}
