/*
 * test_payloads.c - what warden keeps, it keeps sealed (issue 19), on a
 * real swtpm: no kept payload file holds what was sent; `audit payload
 * show` decrypts one for a reader with the TPM; `audit purge` destroys a
 * tenant's keys in the TPM, so its payloads are gone for good, even from
 * a backup of the whole audit directory taken before, while other tenants'
 * still decrypt; the purge and `secrets seal|rotate|rm` are recorded in the
 * chain whether or not a gateway holds the log; a clear payload.key of an
 * older warden is sealed and removed; without the TPM, payload show says
 * the TPM's reason.
 */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit/aud.h"
#include "gateway/gw_int.h"
#include "secrets/sec.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define MARK_T1 "tok-pay-marker-t1-4f0c2a"
#define MARK_T1S "tok-pay-marker-t1s-9e7d11"
#define MARK_T2 "tok-pay-marker-t2-c35b08"

static char tpmdir[256], store[256], cfg[256], tcti[128], wlog[256],
    authfile[256];

/* Run a shell command; its exit status, and its output in *out. */
static int
run(char **out, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return it_run(cmd, out, NULL);
}

static void
setup(void)
{
	char cmd[512], *text, *p, *out;
	FILE *f;

	it_env_start(NULL);
	snprintf(tpmdir, sizeof(tpmdir), "%s/pay-tpm", it_tmpdir());
	snprintf(store, sizeof(store), "%s/pay-store", it_tmpdir());
	snprintf(cfg, sizeof(cfg), "%s/pay.yaml", it_tmpdir());
	snprintf(wlog, sizeof(wlog), "%s/warden-pay.log", it_tmpdir());
	/* The audit signing key's auth value (warden refuses a key without). */
	snprintf(authfile, sizeof(authfile), "%s/pay-auth", it_tmpdir());
	it_write_file(authfile, "pay-suite-signing-auth", 0600);
	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh start %s", tpmdir);
	if ((f = popen(cmd, "r")) == NULL || fgets(tcti, sizeof(tcti), f) == NULL
	    || pclose(f) != 0)
		abort();
	tcti[strcspn(tcti, "\n")] = '\0';
	/* The suite's rules: keep full (t2: redacted), the TPM for keys. */
	text = it_read_file(it.config, NULL);
	if (text == NULL || (p = strstr(text, "dev_credentials:")) == NULL ||
	    strstr(text, "audit:\n") == NULL || strstr(text, "rules:\n") == NULL)
		abort();
	*p = '\0';
	{
		char *a = strstr(text, "audit:\n") + 7, *r, *o;

		r = strstr(text, "rules:\n") + 7;
		if (asprintf(&o, "%.*s  payloads: full\n  payload_ttl_days: 2\n"
		    "  checkpoint_interval_s: 2\n"
		    "%.*s  - { id: t2-redacted, when: { tenant: [t2] }, keep: "
		    "{ payloads: redacted } }\n%ssecrets:\n  store: %s\n  tcti: "
		    "'%s'\n  auth_file: %s\ndev_credentials:%s", (int)(a - text),
		    text, (int)(r - a), a, r, store, tcti, authfile, p + 16) < 0)
			abort();
		it_write_file(cfg, o, 0600);
		free(o);
	}
	free(text);
	/* Lint it here: a broken config would fail every test obscurely. */
	if (run(&out, "%s lint -c %s", getenv("WARDEN_BIN"), cfg) != 0) {
		fprintf(stderr, "test_payloads: %s\n", out);
		abort();
	}
	free(out);
}

static void
teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh stop %s >/dev/null 2>&1",
	    tpmdir);
	(void)it_run(cmd, NULL, NULL);
	it_env_stop();
}

static pid_t
start(int port, const char *adir)
{
	char listen[32];
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", cfg,
		"--listen", listen, "--audit-dir", (char *)adir,
		"--dev-credentials", NULL };
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	pid = it_spawn(argv, wlog);
	ck_assert_msg(it_wait_port(port, 8000), "warden did not come up; see %s",
	    wlog);
	return pid;
}

/* Send a chat as key with content; the decision id into id. */
static void
chat(int port, const char *key, const char *content, bool stream, char id[65])
{
	char url[128], auth[128], *body = it_chat_body("gpt-4o", content, stream);
	const char *h[] = { auth, NULL };
	struct it_resp r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	it_http("POST", url, h, body, 5000, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert(it_resp_header(&r, "X-Warden-Decision", id, 65) != NULL);
	it_resp_free(&r);
	free(body);
}

static int
show(char **out, const char *dir, const char *id)
{
	return run(out, "%s audit payload show %s --dir %s --tcti '%s'",
	    getenv("WARDEN_BIN"), id, dir, tcti);
}

static void
stop(pid_t w)
{
	int st = it_stop(w, SIGTERM);

	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The chain verifies with the TPM's key, in warden and in the
 * independent verifier (purge, secret_* and inbox_rejected records). */
static void
verify(const char *adir)
{
	char *out;
	int rc = run(&out, "%s audit pubkey --secrets-store %s >%s/pay.pem && "
	    "%s audit verify %s --pubkey %s/pay.pem && python3 audit/verify.py "
	    "log %s --pubkey %s/pay.pem", getenv("WARDEN_BIN"), store,
	    it_tmpdir(), getenv("WARDEN_BIN"), adir, it_tmpdir(), adir,
	    it_tmpdir());

	ck_assert_msg(rc == 0, "verify %s: %s", adir, out);
	free(out);
}

START_TEST(kept_payloads_are_sealed_and_purge_destroys_every_copy)
{
	char adir[256], backup[300], seg[300], d1[65], d1s[65], d2[65], d3[65];
	char *out;
	int port = it_free_port(), rc;
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-pay1", it_tmpdir());
	snprintf(backup, sizeof(backup), "%s/audit-pay1-backup", it_tmpdir());
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", adir);
	w = start(port, adir);
	chat(port, IT_KEY_T1, MARK_T1, false, d1);
	chat(port, IT_KEY_T1, MARK_T1S, true, d1s);
	chat(port, IT_KEY_T2, MARK_T2, false, d2);

	/* No file anywhere under the audit dir holds a marker. */
	rc = run(&out, "grep -rl -e %s -e %s -e %s %s", MARK_T1, MARK_T1S,
	    MARK_T2, adir);
	ck_assert_msg(rc == 1, "a marker in clear: %s", out);
	free(out);
	rc = run(&out, "ls %s/payloads/t1/*.wpe %s/payloads/t2/*.wpe | wc -l",
	    adir, adir);
	ck_assert_msg(rc == 0 && atoi(out) == 3, "%s", out);
	free(out);
	ck_assert(it_file_contains(seg, "\"stored\":true"));

	/* A reader with the TPM decrypts them, while the gateway runs. */
	ck_assert_int_eq(show(&out, adir, d1), 0);
	ck_assert_msg(strstr(out, MARK_T1) != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(show(&out, adir, d1s), 0);
	ck_assert_msg(strstr(out, MARK_T1S) != NULL &&
	    strstr(out, "data: [DONE]") != NULL, "%s", out);
	free(out);
	/* redacted: the structure, no text. */
	ck_assert_int_eq(show(&out, adir, d2), 0);
	ck_assert_msg(strstr(out, "[redacted: ") != NULL &&
	    strstr(out, "\"role\":\"user\"") != NULL &&
	    strstr(out, MARK_T2) == NULL, "%s", out);
	free(out);

	/* A backup of the whole audit dir, key blobs included. */
	ck_assert_int_eq(run(&out, "cp -a %s %s", adir, backup), 0);
	free(out);

	/* Purge t1 while the gateway holds the log. */
	rc = run(&out, "%s audit purge %s --tenant t1 --tcti '%s'",
	    getenv("WARDEN_BIN"), adir, tcti);
	ck_assert_msg(rc == 0 && strstr(out, "destroyed key t1/") != NULL &&
	    strstr(out, "purged 2 payloads of tenant t1") != NULL &&
	    strstr(out, "recorded in the audit chain") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(show(&out, adir, d1), 4);
	ck_assert_msg(strstr(out, "expired or was purged") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(show(&out, adir, d2), 0);	/* t2 is untouched */
	ck_assert(strstr(out, "[redacted: ") != NULL);
	free(out);
	/* The backup's blobs: the TPM no longer has what opens them. */
	ck_assert_int_eq(show(&out, backup, d1), 3);
	ck_assert_msg(strstr(out, "destroyed") != NULL && strstr(out, MARK_T1) ==
	    NULL, "%s", out);
	free(out);
	ck_assert_int_eq(show(&out, backup, d1s), 3);
	free(out);
	ck_assert_int_eq(show(&out, backup, d2), 0);
	free(out);
	/* A new key of t1 for the same month (likely at the same NV index)
	 * opens only what was kept after the purge, never the old copies. */
	chat(port, IT_KEY_T1, "tok-pay-after-purge", false, d3);
	ck_assert_int_eq(show(&out, adir, d3), 0);
	ck_assert(strstr(out, "tok-pay-after-purge") != NULL);
	free(out);
	ck_assert_int_eq(show(&out, backup, d1), 3);
	ck_assert_msg(strstr(out, "destroyed") != NULL, "%s", out);
	free(out);

	/* The purge is in the chain (taken in by the running writer), says
	 * who asked, and the chain verifies with the TPM's key. */
	stop(w);
	ck_assert(it_file_contains(seg, "\"kind\":\"purge\""));
	ck_assert(it_file_contains(seg, "\"reason\":\"requested\""));
	ck_assert(it_file_contains(seg, "\"tenant\":\"t1\""));
	ck_assert(it_file_contains(seg, "\"by\":{\"host\":"));
	ck_assert(it_file_contains(seg, "\"month\":"));
	verify(adir);
	ck_assert(!it_file_contains(wlog, MARK_T1));
}
END_TEST

START_TEST(secrets_changes_and_purges_are_recorded_with_or_without_a_gateway)
{
	char adir[256], seg[300], d2[65], *out;
	int port = it_free_port(), rc;
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-pay2", it_tmpdir());
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", adir);
	/* No gateway yet: appended at once. */
	rc = run(&out, "printf '%%s' sk-rec-value-1a2b | %s secrets seal c-rec "
	    "--store %s --tcti '%s' --audit-dir %s", getenv("WARDEN_BIN"), store,
	    tcti, adir);
	ck_assert_msg(rc == 0 && strstr(out, "queued") == NULL, "%s", out);
	free(out);
	ck_assert(it_file_contains(seg, "\"kind\":\"secret_seal\""));
	ck_assert(it_file_contains(seg, "\"name\":\"c-rec\""));
	/* With a gateway holding the log: through the inbox. */
	w = start(port, adir);
	chat(port, IT_KEY_T2, "tok-pay-rec", false, d2);
	rc = run(&out, "printf '%%s' sk-rec-value-2c3d | %s secrets rotate c-rec "
	    "--store %s --tcti '%s' --audit-dir %s", getenv("WARDEN_BIN"), store,
	    tcti, adir);
	ck_assert_msg(rc == 0 && strstr(out, "queued") == NULL, "%s", out);
	free(out);
	ck_assert(it_file_contains(seg, "\"kind\":\"secret_rotate\""));
	rc = run(&out, "%s secrets rm c-rec --store %s --audit-dir %s",
	    getenv("WARDEN_BIN"), store, adir);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	ck_assert(it_file_contains(seg, "\"kind\":\"secret_remove\""));
	/* An RSA key imported into the TPM is a change as well: recorded,
	 * and so is an import refused because the name exists.  Neither
	 * record holds any of the PEM. */
	rc = run(&out, "cd %s && openssl genpkey -algorithm RSA -pkeyopt "
	    "rsa_keygen_bits:2048 -out rec-sa.pem 2>&1", it_tmpdir());
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	for (int i = 0; i < 2; i++) {
		rc = run(&out, "%s secrets import-key c-rec-sa --store %s --tcti "
		    "'%s' --audit-dir %s < %s/rec-sa.pem", getenv("WARDEN_BIN"),
		    store, tcti, adir, it_tmpdir());
		ck_assert_msg(i == 0 ? rc == 0 : rc != 0, "%d: %s", i, out);
		ck_assert_msg(strstr(out, "queued") == NULL, "%s", out);
		free(out);
	}
	ck_assert(it_file_contains(seg, "\"key\":\"RSA-2048\",\"kind\":"
	    "\"secret_import\",\"name\":\"c-rec-sa\""));
	ck_assert(it_file_contains(seg, "\"error\":\"'c-rec-sa' exists "
	    "already\""));
	{
		char pem[8192], line[128];
		FILE *f;

		snprintf(pem, sizeof(pem), "%s/rec-sa.pem", it_tmpdir());
		ck_assert((f = fopen(pem, "r")) != NULL);
		/* Each base64 line of the key, none of them in the log. */
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] != '-' && strlen(line) > 16)
				ck_assert_msg(!it_file_contains(seg, line),
				    "PEM line in the log: %s", line);
		}
		fclose(f);
		unlink(pem);
	}
	/* What is not a valid event is set aside, and the chain says so. */
	{
		char bad[400];

		snprintf(bad, sizeof(bad), "%s/inbox/00000000000000000001-x.json",
		    adir);
		it_write_file(bad, "{\"kind\":\"request\",\"event_id\":\"x\","
		    "\"ts\":\"2026-01-01T00:00:00Z\",\"status\":200}", 0600);
		for (int i = 0; i < 40 && access(bad, F_OK) == 0; i++)
			usleep(100 * 1000);
		ck_assert_msg(access(bad, F_OK) != 0, "inbox file not taken");
		usleep(100 * 1000);
		ck_assert(it_file_contains(seg, "\"kind\":\"inbox_rejected\""));
		ck_assert(!it_file_contains(seg, "\"kind\":\"request\",\"prev"));
	}
	stop(w);
	/* A purge with no gateway running: appended directly, and signed
	 * by the CLI with the TPM key and its auth value (-c: the rules'
	 * secrets.auth_file), the TPM counter bumped and carried. */
	rc = run(&out, "%s audit purge --tenant t2 -c %s %s",
	    getenv("WARDEN_BIN"), cfg, adir);
	ck_assert_msg(rc == 0 && strstr(out, "recorded in the audit chain") !=
	    NULL && strstr(out, "destroyed key t2/") != NULL &&
	    strstr(out, "no checkpoint signs it") == NULL, "%s", out);
	free(out);
	ck_assert_int_eq(show(&out, adir, d2), 4);
	free(out);
	ck_assert(it_file_contains(seg, "\"tenant\":\"t2\""));
	/* Records name what was done, never a value. */
	ck_assert(!it_file_contains(seg, "sk-rec-value"));
	ck_assert(it_file_contains(seg, "\"result\":\"ok\""));
	rc = run(&out, "ls -A %s/inbox | grep -v '^.rejected-' | wc -l", adir);
	ck_assert_msg(rc == 0 && atoi(out) == 0, "inbox left: %s", out);
	free(out);
	/* Authenticated at once, in warden and in the independent verifier:
	 * the CLI's checkpoint covers the purge record. */
	verify(adir);
	/* So too a secret sealed while no gateway runs. */
	rc = run(&out, "printf '%%s' sk-rec-value-3e4f | %s secrets seal c-rec2 "
	    "-c %s --audit-dir %s", getenv("WARDEN_BIN"), cfg, adir);
	ck_assert_msg(rc == 0 && strstr(out, "queued") == NULL &&
	    strstr(out, "no checkpoint signs it") == NULL, "%s", out);
	free(out);
	verify(adir);
	/* And still once the checkpoint interval (2 s here) has passed: no
	 * record is left that a checkpoint does not cover. */
	sleep(3);
	verify(adir);
	/* With the TPM out of reach (a port nothing listens on) likewise:
	 * appended, unsigned, and said so. */
	rc = run(&out, "printf '%%s' sk-rec-value-5a6b | %s secrets seal c-rec3 "
	    "-c %s --audit-dir %s && %s secrets rm c-rec3 -c %s --tcti "
	    "'swtpm:host=127.0.0.1,port=1' --audit-dir %s", getenv("WARDEN_BIN"),
	    cfg, adir, getenv("WARDEN_BIN"), cfg, adir);
	ck_assert_msg(rc == 0 && strstr(out, "no checkpoint signs it") != NULL &&
	    strstr(out, "queued") == NULL, "%s", out);
	free(out);
	ck_assert(it_file_contains(seg, "\"name\":\"c-rec3\",\"prev\""));
	/* Without the signing key's auth value the CLI still records, says
	 * plainly that no checkpoint signs it, and the log is consistent but
	 * not authenticated (exit 3) until the gateway signs it in. */
	rc = run(&out, "%s secrets rm c-rec2 --store %s --tcti '%s' "
	    "--audit-dir %s", getenv("WARDEN_BIN"), store, tcti, adir);
	ck_assert_msg(rc == 0 && strstr(out, "no checkpoint signs it") != NULL &&
	    strstr(out, "auth value") != NULL, "%s", out);
	free(out);
	rc = run(&out, "%s audit pubkey --secrets-store %s >%s/pay.pem && "
	    "%s audit verify %s --pubkey %s/pay.pem", getenv("WARDEN_BIN"), store,
	    it_tmpdir(), getenv("WARDEN_BIN"), adir, it_tmpdir());
	ck_assert_msg(rc == 3 && strstr(out, "NOT AUTHENTICATED") != NULL,
	    "%d %s", rc, out);
	free(out);
	/* The next start is not taken for a rollback: the CLI's checkpoints
	 * carried the counter it bumped. */
	port = it_free_port();
	w = start(port, adir);
	stop(w);
	ck_assert(!it_file_contains(seg, "rollback_detected"));
	ck_assert(!it_file_contains(wlog, "behind the TPM counter"));
	verify(adir);
}
END_TEST

START_TEST(a_clear_payload_key_is_sealed_and_removed)
{
	static const char key[] = "0123456789abcdef0123456789ABCDEF";
	char adir[256], path[300], seg[300], d1[65], hex[65], want[96];
	unsigned char d[32];
	unsigned int dl = 32;
	char *body = it_chat_body("gpt-4o", "tok-pay-migrate", false);
	int port = it_free_port();
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-pay3", it_tmpdir());
	ck_assert_int_eq(mkdir(adir, 0700), 0);
	snprintf(path, sizeof(path), "%s/payload.key", adir);
	it_write_file(path, key, 0600);
	w = start(port, adir);
	chat(port, IT_KEY_T1, "tok-pay-migrate", false, d1);
	stop(w);
	ck_assert_msg(access(path, F_OK) != 0, "payload.key is still in clear");
	snprintf(path, sizeof(path), "%s/payload-hmac/hmac/tpm.priv", adir);
	ck_assert(access(path, F_OK) == 0);
	/* The digests still use the key it had: the chain stays checkable. */
	HMAC(EVP_sha256(), key, 32, (const unsigned char *)body, strlen(body), d,
	    &dl);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	snprintf(want, sizeof(want), "\"request_hmac\":\"%s\"", hex);
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", adir);
	ck_assert_msg(it_file_contains(seg, want), "digest not under the old key");
	/* And a second start unseals it (no clear file comes back). */
	w = start(port, adir);
	stop(w);
	snprintf(path, sizeof(path), "%s/payload.key", adir);
	ck_assert(access(path, F_OK) != 0);
	free(body);
}
END_TEST


#ifndef __SANITIZE_ADDRESS__
/* (ASan makes mlock a no-op: locked and unlocked look alike there.) */

/*
 * The running gateway, after keeping payloads: its copies of the tenant's
 * data key and of the payload HMAC key are in locked memory only.
 */
START_TEST(the_gateway_keeps_its_keys_in_locked_memory_only)
{
	struct { unsigned char a[16], gap[16], b[16]; } dk, hk;
	struct gw_paykeys *pk = NULL;
	struct sec_buf key = { 0 };
	struct sec_tpm *t = NULL;
	char adir[256], kstore[400], month[8], err[512], d[65];
	int port = it_free_port();
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-pay5", it_tmpdir());
	w = start(port, adir);
	for (int i = 0; i < 5; i++)
		chat(port, IT_KEY_T1, "tok-pay-scan", i % 2 == 1, d);
	/* The keys, fetched here into locked memory, split for the scan. */
	ck_assert_int_eq(sec_buf_alloc(&key, 32, err, sizeof(err)), WD_OK);
	ck_assert_msg(sec_tpm_open(tcti, &t, err, sizeof(err)) == WD_OK, "%s",
	    err);
	aud_key_month(time(NULL) + 2 * 86400, month);
	snprintf(kstore, sizeof(kstore), "%s/payload-keys/t1", adir);
	ck_assert_msg(sec_dkey_unseal(t, kstore, month, key.p, err,
	    sizeof(err)) == WD_OK, "%s", err);
	sec_tpm_close(t);
	memcpy(dk.a, key.p, 16);
	memcpy(dk.b, key.p + 16, 16);
	ck_assert_int_eq(gw_paykeys_new(adir, tcti, NULL, &pk, err,
	    sizeof(err)), WD_OK);
	ck_assert_msg(gw_paykeys_keys(pk)->hmac_key(pk, adir, key.p, err,
	    sizeof(err)) == WD_OK, "%s", err);
	gw_paykeys_free(pk);
	memcpy(hk.a, key.p, 16);
	memcpy(hk.b, key.p + 16, 16);
	sec_buf_free(&key);
	ck_assert_msg(!it_unlocked_holds(w, dk.a, dk.b, 16),
	    "the gateway holds the data key in unlocked memory");
	ck_assert_msg(!it_unlocked_holds(w, hk.a, hk.b, 16),
	    "the gateway holds the payload HMAC key in unlocked memory");
	stop(w);
}
END_TEST

#endif /* __SANITIZE_ADDRESS__ */

/* Last: it stops the suite's swtpm. */
START_TEST(without_the_tpm_payload_show_says_why)
{
	char adir[256], d1[65], cmd[512], *out;
	int port = it_free_port(), rc;
	pid_t w;

	snprintf(adir, sizeof(adir), "%s/audit-pay4", it_tmpdir());
	w = start(port, adir);
	chat(port, IT_KEY_T1, "tok-pay-notpm", false, d1);
	stop(w);
	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh stop %s >/dev/null 2>&1",
	    tpmdir);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	rc = show(&out, adir, d1);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "TPM: tcti:IO failure (0xa000a)") != NULL &&
	    strstr(out, "not reachable") != NULL, "%s", out);
	ck_assert(strstr(out, "tok-pay-notpm") == NULL);
	free(out);
	/* And a purge without the TPM destroys nothing, and says so. */
	rc = run(&out, "%s audit purge %s --tenant t1 --tcti '%s'",
	    getenv("WARDEN_BIN"), adir, tcti);
	ck_assert_msg(rc == 1 && strstr(out, "no key was destroyed and no "
	    "payload deleted") != NULL &&
	    strstr(out, "0xa000a") != NULL, "%s", out);
	free(out);
	rc = run(&out, "ls %s/payloads/t1/*.wpe | wc -l", adir);
	ck_assert_msg(rc == 0 && atoi(out) == 1, "%s", out);
	free(out);
}
END_TEST

Suite *
suite_payloads(void)
{
	Suite *s = suite_create("payloads");
	TCase *tc = tcase_create("payloads");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, kept_payloads_are_sealed_and_purge_destroys_every_copy);
	tcase_add_test(tc,
	    secrets_changes_and_purges_are_recorded_with_or_without_a_gateway);
	tcase_add_test(tc, a_clear_payload_key_is_sealed_and_removed);
#ifndef __SANITIZE_ADDRESS__
	tcase_add_test(tc, the_gateway_keeps_its_keys_in_locked_memory_only);
#endif
	tcase_add_test(tc, without_the_tpm_payload_show_says_why);
	suite_add_tcase(s, tc);
	return s;
}
