/*
 * test_secrets.c - secrets/: sealing against a real swtpm (never a fake).
 *
 * swtpm has no resource manager, so no two tests share one: each test
 * starts its own in a fresh directory (checked fixture, in the test's
 * process) through scripts/swtpm.sh.  A test that fails exits without its
 * teardown, so the suite's unchecked teardown (in Check's parent) stops
 * whatever swtpm is still running under the suite's directory.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit/aud.h"
#include "common/wd.h"
#include "gateway/gw_int.h"
#include "secrets/sec.h"
#include "secrets/sec_int.h"
#include "tests/unit/suites.h"

static char base[256];			/* the suite's directory (parent) */
static char dir[300];			/* this test's directory */
static char tpmdir[320], store[320], tcti[128];

static const char *
script(void)
{
	const char *s = getenv("WARDEN_SWTPM_SH");

	return s ? s : "scripts/swtpm.sh";
}

/* Run a shell command; its exit status. */
static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run a shell command; its first output line into out. */
static int
sh_line(char *out, size_t len, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(out, (int)len, p) != NULL)
		out[strcspn(out, "\n")] = '\0';
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
swtpm_start(const char *d, char out[128])
{
	int rc = sh_line(out, 128, "sh %s start '%s'", script(), d);

	ck_assert_msg(rc == 0 && strncmp(out, "swtpm:", 6) == 0,
	    "swtpm did not start in %s", d);
}

static void
swtpm_stop(const char *d)
{
	sh("sh %s stop '%s'", script(), d);
}

/* Nothing is loaded in the test's swtpm: no object, no session. */
static void
assert_tpm_empty(void)
{
	char out[256];

	ck_assert_int_eq(sh_line(out, sizeof(out), "TPM2TOOLS_TCTI='%s' "
	    "tpm2_getcap handles-transient; TPM2TOOLS_TCTI='%s' "
	    "tpm2_getcap handles-loaded-session", tcti, tcti), 0);
	ck_assert_msg(out[0] == '\0', "left in the TPM: %s", out);
}

/* How many transient objects the test's swtpm holds. */
static int
loaded_objects(void)
{
	char out[64];

	ck_assert_int_eq(sh_line(out, sizeof(out), "TPM2TOOLS_TCTI='%s' "
	    "tpm2_getcap handles-transient | wc -l", tcti), 0);
	return atoi(out);
}

/* n objects loaded by other processes that exit: tpm2-tools leave what
 * they create loaded (there is no resource manager). */
static void
leave_objects(int n)
{
	ck_assert_int_eq(sh("cd '%s' && export TPM2TOOLS_TCTI='%s' && i=0 && "
	    "while [ $i -lt %d ]; do i=$((i + 1)); tpm2_createprimary -Q -C o "
	    "-G ecc -c left$i.ctx || exit 1; done", dir, tcti, n), 0);
}

static void
suite_setup(void)
{
	snprintf(base, sizeof(base), "/tmp/warden-ut-secrets.XXXXXX");
	if (mkdtemp(base) == NULL)
		abort();
}

static void
suite_teardown(void)
{
	sh("for d in '%s'/*/tpm*; do [ -d \"$d\" ] && sh %s stop \"$d\"; done; "
	    "rm -rf '%s'", base, script(), base);
}

static void
tpm_setup(void)
{
	snprintf(dir, sizeof(dir), "%s/t.XXXXXX", base);
	ck_assert(mkdtemp(dir) != NULL);
	snprintf(tpmdir, sizeof(tpmdir), "%s/tpm", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	swtpm_start(tpmdir, tcti);
}

static void
tpm_teardown(void)
{
	swtpm_stop(tpmdir);
}

static struct sec_tpm *
open_tpm(void)
{
	struct sec_tpm *t = NULL;
	char err[512];
	enum wd_err e = sec_tpm_open(tcti, &t, err, sizeof(err));

	ck_assert_msg(e == WD_OK, "open: %s", err);
	return t;
}

static struct sec_cache *
new_cache(size_t cap)
{
	struct sec_cache *c = NULL;
	char err[512];

	ck_assert_msg(sec_cache_new(cap, &c, err, sizeof(err)) == WD_OK, "%s",
	    err);
	return c;
}

static void
seal(struct sec_tpm *t, const char *name, const void *v, size_t len,
    const struct sec_seal_opts *o, enum sec_mode mode)
{
	char err[512];
	enum wd_err e = sec_seal(t, store, name, v, len, o, mode, err,
	    sizeof(err));

	ck_assert_msg(e == WD_OK, "seal %s: %s", name, err);
}

static void
unseal_eq(struct sec_tpm *t, const char *name, const void *v, size_t len)
{
	struct sec_cache *c = new_cache(SEC_VALUE_MAX);
	const unsigned char *got;
	char err[512];
	size_t glen;
	enum wd_err e = sec_unseal(t, store, name, NULL, 0, c, err, sizeof(err));

	ck_assert_msg(e == WD_OK, "unseal %s: %s", name, err);
	got = sec_cache_get(c, name, &glen);
	ck_assert(got != NULL);
	ck_assert_uint_eq(glen, len);
	ck_assert(memcmp(got, v, len) == 0);
	sec_cache_free(c);
}

/* Unseal that must fail: returns the error text (static). */
static const char *
unseal_fails(struct sec_tpm *t, const char *name, const char *auth,
    enum wd_err want)
{
	static char err[512];
	struct sec_cache *c = new_cache(SEC_VALUE_MAX);
	enum wd_err e = sec_unseal(t, store, name, (const unsigned char *)auth,
	    auth ? strlen(auth) : 0, c, err, sizeof(err));

	ck_assert_msg(e == want, "unseal %s: got %s (%s), want %s", name,
	    wd_strerror(e), err, wd_strerror(want));
	ck_assert_uint_eq(sec_cache_count(c), 0);
	sec_cache_free(c);
	return err;
}

#define VALUE "sk-test-1f0c2b7e9d44a3c1"

START_TEST(round_trip_short)
{
	struct sec_tpm *t = open_tpm();
	struct sec_meta m;
	char err[512];

	seal(t, "openai-eu", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	unseal_eq(t, "openai-eu", VALUE, strlen(VALUE));
	ck_assert_int_eq(sec_stat(store, "openai-eu", &m, err, sizeof(err)),
	    WD_OK);
	ck_assert_str_eq(m.name, "openai-eu");
	ck_assert_uint_eq(m.size, strlen(VALUE));
	ck_assert_str_eq(m.pcrs, "");
	ck_assert_int_eq(m.template_version, SEC_TEMPLATE_VERSION);
	ck_assert_uint_eq(strlen(m.created), 20);	/* 2026-01-02T03:04:05Z */
	/* Sealing the same name again is refused, not a silent replace. */
	ck_assert_int_eq(sec_seal(t, store, "openai-eu", (const unsigned char *)"x",
	    1, NULL, SEC_CREATE, err, sizeof(err)), WD_EINVAL);
	ck_assert(strstr(err, "exists") != NULL);
	unseal_eq(t, "openai-eu", VALUE, strlen(VALUE));
	sec_tpm_close(t);
}
END_TEST

START_TEST(round_trip_16k)
{
	struct sec_tpm *t = open_tpm();
	unsigned char *v = malloc(SEC_VALUE_MAX + 1);
	char err[512];

	ck_assert_int_eq(wd_random(v, SEC_VALUE_MAX + 1), WD_OK);
	v[100] = '\0';			/* binary values are fine */
	seal(t, "service-account", v, SEC_VALUE_MAX, NULL, SEC_CREATE);
	unseal_eq(t, "service-account", v, SEC_VALUE_MAX);
	ck_assert_int_eq(sec_seal(t, store, "too-long", v, SEC_VALUE_MAX + 1,
	    NULL, SEC_CREATE, err, sizeof(err)), WD_EINVAL);
	ck_assert_int_eq(sec_seal(t, store, "empty", v, 0, NULL, SEC_CREATE,
	    err, sizeof(err)), WD_EINVAL);
	free(v);
	sec_tpm_close(t);
}
END_TEST

START_TEST(unseal_after_swtpm_restart)
{
	struct sec_tpm *t = open_tpm();

	seal(t, "persist", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	swtpm_stop(tpmdir);
	swtpm_start(tpmdir, tcti);	/* same state, new port */
	t = open_tpm();
	unseal_eq(t, "persist", VALUE, strlen(VALUE));
	sec_tpm_close(t);
}
END_TEST

START_TEST(blob_from_another_tpm_fails_integrity)
{
	struct sec_tpm *t = open_tpm();
	char other[400], otcti[128];
	const char *err;

	seal(t, "moved", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	snprintf(other, sizeof(other), "%s/tpm-other", dir);
	swtpm_start(other, otcti);
	snprintf(tcti, sizeof(tcti), "%s", otcti);
	t = open_tpm();
	err = unseal_fails(t, "moved", NULL, WD_ETPM);
	ck_assert_msg(strstr(err, "integrity check failed") != NULL &&
	    strstr(err, "(0x1df)") != NULL && strstr(err, "Load") != NULL,
	    "%s", err);
	sec_tpm_close(t);
	swtpm_stop(other);
}
END_TEST

/* Flip one byte of a file in a secret's directory. */
static void
flip(const char *name, const char *file, long off)
{
	char path[512];
	unsigned char b;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", store, name, file);
	fd = open(path, O_RDWR);
	ck_assert(fd >= 0);
	if (off < 0)
		off += lseek(fd, 0, SEEK_END);
	ck_assert(pread(fd, &b, 1, off) == 1);
	b ^= 0x01;
	ck_assert(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

START_TEST(modified_or_swapped_blobs_fail)
{
	struct sec_tpm *t = open_tpm();
	const char *err;

	seal(t, "a", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	seal(t, "b", VALUE "-b", strlen(VALUE) + 2, NULL, SEC_CREATE);
	seal(t, "c", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	/* The ciphertext: GCM refuses it. */
	flip("a", "envelope.bin", -1);
	err = unseal_fails(t, "a", NULL, WD_EPARSE);
	ck_assert_msg(strstr(err, "fails authentication") != NULL, "%s", err);
	/* The sealed private blob: the TPM refuses it. */
	flip("b", "tpm.priv", -1);
	err = unseal_fails(t, "b", NULL, WD_ETPM);
	ck_assert_msg(strstr(err, "TPM: ") != NULL && strstr(err, "(0x") != NULL,
	    "%s", err);
	/* c's blobs put under another name: the name is authenticated. */
	ck_assert_int_eq(sh("mv '%s/c' '%s/d' && sed -i 's/\"c\"/\"d\"/' "
	    "'%s/d/meta.json'", store, store, store), 0);
	err = unseal_fails(t, "d", NULL, WD_EPARSE);
	ck_assert_msg(strstr(err, "belongs to another name") != NULL, "%s", err);
	sec_tpm_close(t);
}
END_TEST

START_TEST(pcr_binding_breaks_when_pcr_changes)
{
	struct sec_seal_opts o = { .pcrs = "sha256:23" };
	struct sec_tpm *t = open_tpm();
	struct sec_meta m;
	char err[512];
	const char *e;

	seal(t, "bound", VALUE, strlen(VALUE), &o, SEC_CREATE);
	ck_assert_int_eq(sec_stat(store, "bound", &m, err, sizeof(err)), WD_OK);
	ck_assert_str_eq(m.pcrs, "sha256:23");
	unseal_eq(t, "bound", VALUE, strlen(VALUE));
	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_pcrextend 23:sha256="
	    "00000000000000000000000000000000000000000000000000000000000000ff",
	    tcti), 0);
	e = unseal_fails(t, "bound", NULL, WD_ETPM);
	ck_assert_msg(strstr(e, "policy check failed") != NULL &&
	    strstr(e, "(0x99d)") != NULL && strstr(e, "PCR") != NULL, "%s", e);
	sec_tpm_close(t);
}
END_TEST

START_TEST(pcr_spec_parsing)
{
	struct sec_pcrs p;
	char err[256];

	ck_assert_int_eq(sec_pcrs_parse("sha256:23,7,7", &p, err, sizeof(err)),
	    WD_OK);
	ck_assert_str_eq(p.text, "sha256:7,23");
	ck_assert_int_eq(sec_pcrs_parse("sha1:0+sha256:16,23", &p, err,
	    sizeof(err)), WD_OK);
	ck_assert_str_eq(p.text, "sha1:0+sha256:16,23");
	ck_assert_uint_eq(p.sel.count, 2);
	ck_assert_int_eq(sec_pcrs_parse(NULL, &p, err, sizeof(err)), WD_OK);
	ck_assert_uint_eq(p.sel.count, 0);
	static const char *const bad[] = { "sha256", "sha256:", "sha256:24",
		"md5:1", "sha256:1,", "sha256:-1", "sha256:1+sha256:2", "7,23",
		"sha256:1x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(sec_pcrs_parse(bad[i], &p, err, sizeof(err)) ==
		    WD_EINVAL, "%s accepted", bad[i]);
}
END_TEST

START_TEST(wrong_auth_fails)
{
	/* NODA: three wrong auths would otherwise lock the TPM out (0x921). */
	struct sec_seal_opts o = { .auth = (const unsigned char *)"right",
		.authlen = 5, .noda = true };
	struct sec_seal_opts op = o;
	struct sec_cache *c = new_cache(64);
	struct sec_tpm *t = open_tpm();
	char err[512];
	const char *e;

	seal(t, "authed", VALUE, strlen(VALUE), &o, SEC_CREATE);
	e = unseal_fails(t, "authed", "wrong", WD_ETPM);
	ck_assert_msg(strstr(e, "(0x9a2)") != NULL || strstr(e, "(0x98e)") !=
	    NULL, "%s", e);
	ck_assert_msg(strstr(e, "wrong auth value") != NULL, "%s", e);
	e = unseal_fails(t, "authed", NULL, WD_EINVAL);
	ck_assert(strstr(e, "auth value") != NULL);
	ck_assert_int_eq(sec_unseal(t, store, "authed",
	    (const unsigned char *)"right", 5, c, err, sizeof(err)), WD_OK);
	/* With a PCR policy the auth value goes through PolicyAuthValue. */
	op.pcrs = "sha256:16";
	seal(t, "authed-pcr", VALUE, strlen(VALUE), &op, SEC_CREATE);
	unseal_fails(t, "authed-pcr", "wrong", WD_ETPM);
	ck_assert_int_eq(sec_unseal(t, store, "authed-pcr",
	    (const unsigned char *)"right", 5, c, err, sizeof(err)), WD_OK);
	ck_assert_uint_eq(sec_cache_count(c), 2);
	sec_cache_free(c);
	sec_tpm_close(t);
}
END_TEST

START_TEST(tpm_gone_is_a_clean_error)
{
	struct sec_tpm *t = open_tpm();
	struct sec_tpm *t2 = NULL;
	char err[512];
	const char *e;

	seal(t, "x", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	swtpm_stop(tpmdir);
	/* Mid-session: the context is open, the TPM went away. */
	e = unseal_fails(t, "x", NULL, WD_ETPM);
	ck_assert_msg(strstr(e, "(0xa000a)") != NULL &&
	    strstr(e, "not reachable") != NULL, "%s", e);
	ck_assert_int_eq(sec_seal(t, store, "y", (const unsigned char *)"v", 1,
	    NULL, SEC_CREATE, err, sizeof(err)), WD_ETPM);
	sec_tpm_close(t);
	/* At open. */
	ck_assert_int_eq(sec_tpm_open(tcti, &t2, err, sizeof(err)), WD_ETPM);
	ck_assert(t2 == NULL);
	ck_assert_msg(strstr(err, "(0xa000a)") != NULL && strstr(err, tcti) !=
	    NULL, "%s", err);
	/* Nothing was written for the failed seal. */
	ck_assert_int_eq(access(store, F_OK), 0);
	ck_assert_int_ne(sh("ls -A '%s' | grep -v '^x$' | grep -q .", store), 0);
}
END_TEST

START_TEST(tcti_is_required)
{
	struct sec_tpm *t = NULL;
	char err[512];

	ck_assert_int_eq(sec_tpm_open(NULL, &t, err, sizeof(err)), WD_EINVAL);
	ck_assert_int_eq(sec_tpm_open("", &t, err, sizeof(err)), WD_EINVAL);
	ck_assert(strstr(err, "2321") != NULL);
	ck_assert(t == NULL);
	ck_assert_int_eq(sec_tpm_open("nosuchtcti:x", &t, err, sizeof(err)),
	    WD_ETPM);
	ck_assert(t == NULL);
}
END_TEST

START_TEST(unsafe_store_permissions_refused)
{
	struct sec_tpm *t = open_tpm();
	struct sec_cache *c = new_cache(64);
	struct sec_meta m;
	char err[512], path[512];

	seal(t, "perm", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	ck_assert_int_eq(chmod(store, 0755), 0);
	ck_assert_int_eq(sec_unseal(t, store, "perm", NULL, 0, c, err,
	    sizeof(err)), WD_EPERM);
	ck_assert_msg(strstr(err, "chmod 700") != NULL && strstr(err, store) !=
	    NULL, "%s", err);
	ck_assert_int_eq(sec_seal(t, store, "perm2", (const unsigned char *)"v", 1,
	    NULL, SEC_CREATE, err, sizeof(err)), WD_EPERM);
	ck_assert_int_eq(sec_stat(store, "perm", &m, err, sizeof(err)), WD_EPERM);
	ck_assert_int_eq(chmod(store, 0700), 0);

	snprintf(path, sizeof(path), "%s/perm/envelope.bin", store);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(sec_unseal(t, store, "perm", NULL, 0, c, err,
	    sizeof(err)), WD_EPERM);
	ck_assert_msg(strstr(err, "chmod 600") != NULL && strstr(err, path) !=
	    NULL, "%s", err);
	ck_assert_int_eq(chmod(path, 0600), 0);

	snprintf(path, sizeof(path), "%s/perm", store);
	ck_assert_int_eq(chmod(path, 0750), 0);
	ck_assert_int_eq(sec_unseal(t, store, "perm", NULL, 0, c, err,
	    sizeof(err)), WD_EPERM);
	ck_assert_int_eq(chmod(path, 0700), 0);

	/* A symlink in place of a blob is not followed. */
	ck_assert_int_eq(sh("cd '%s/perm' && mv tpm.pub real.pub && "
	    "ln -s real.pub tpm.pub", store), 0);
	ck_assert_int_ne(sec_unseal(t, store, "perm", NULL, 0, c, err,
	    sizeof(err)), WD_OK);
	ck_assert_int_eq(sh("cd '%s/perm' && rm tpm.pub && mv real.pub tpm.pub",
	    store), 0);
	ck_assert_int_eq(sec_unseal(t, store, "perm", NULL, 0, c, err,
	    sizeof(err)), WD_OK);
	/* Owner: another uid's store is refused (root can make one). */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(store, 65534, 65534), 0);
		ck_assert_int_eq(sec_unseal(t, store, "perm", NULL, 0, c, err,
		    sizeof(err)), WD_EPERM);
		ck_assert_msg(strstr(err, "chown 0") != NULL, "%s", err);
		ck_assert_int_eq(chown(store, 0, 0), 0);
	}
	sec_cache_free(c);
	sec_tpm_close(t);
}
END_TEST

START_TEST(names_are_validated)
{
	static const char *const bad[] = { "", ".", "..", "../x", "a/b", "x~y",
		"a b", "ü", "-\n", "a\\b" };
	char long_ok[SEC_NAME_MAX + 2], err[256];
	struct sec_meta m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!sec_name_valid(bad[i]), "'%s' accepted", bad[i]);
	memset(long_ok, 'a', SEC_NAME_MAX);
	long_ok[SEC_NAME_MAX] = '\0';
	ck_assert(sec_name_valid(long_ok));
	ck_assert(sec_name_valid("openai-eu_1.v2"));
	ck_assert(sec_name_valid(SEC_SIGN_KEY));
	long_ok[SEC_NAME_MAX] = 'a';
	long_ok[SEC_NAME_MAX + 1] = '\0';
	ck_assert(!sec_name_valid(long_ok));
	/* Refused before any file or TPM is touched. */
	ck_assert_int_eq(sec_seal(NULL, "/nonexistent", "../x",
	    (const unsigned char *)"v", 1, NULL, SEC_CREATE, err, sizeof(err)),
	    WD_EINVAL);
	ck_assert_int_eq(sec_seal(NULL, "/nonexistent", ".hidden",
	    (const unsigned char *)"v", 1, NULL, SEC_CREATE, err, sizeof(err)),
	    WD_EINVAL);
	ck_assert_int_eq(sec_remove("/tmp", "../etc", err, sizeof(err)),
	    WD_EINVAL);
	ck_assert_int_eq(sec_stat("/tmp", "../x", &m, err, sizeof(err)),
	    WD_EINVAL);
}
END_TEST

START_TEST(rotate_is_atomic)
{
	struct sec_tpm *t = open_tpm();
	char err[512];

	seal(t, "rot", "old-value", 9, NULL, SEC_CREATE);
	seal(t, "rot", "new-value-2", 11, NULL, SEC_REPLACE);
	unseal_eq(t, "rot", "new-value-2", 11);
	/* No staging directory is left behind. */
	ck_assert_int_ne(sh("ls -A '%s' | grep -q '~'", store), 0);
	/* Replacing what does not exist creates nothing. */
	ck_assert_int_eq(sec_seal(t, store, "nope", (const unsigned char *)"v", 1,
	    NULL, SEC_REPLACE, err, sizeof(err)), WD_ENOTFOUND);
	ck_assert_int_ne(sh("test -e '%s/nope'", store), 0);
	/* The TPM fails in the middle of a rotation: the old value stays. */
	sec_tpm_close(t);
	t = open_tpm();
	swtpm_stop(tpmdir);
	ck_assert_int_eq(sec_seal(t, store, "rot", (const unsigned char *)"lost",
	    4, NULL, SEC_REPLACE, err, sizeof(err)), WD_ETPM);
	sec_tpm_close(t);
	swtpm_start(tpmdir, tcti);
	t = open_tpm();
	unseal_eq(t, "rot", "new-value-2", 11);
	ck_assert_int_ne(sh("ls -A '%s' | grep -q '~'", store), 0);
	/* rm: gone, and a second rm says so. */
	ck_assert_int_eq(sec_remove(store, "rot", err, sizeof(err)), WD_OK);
	ck_assert_int_eq(sec_remove(store, "rot", err, sizeof(err)),
	    WD_ENOTFOUND);
	unseal_fails(t, "rot", NULL, WD_ENOTFOUND);
	sec_tpm_close(t);
}
END_TEST

/* The smaps block of the mapping holding p: Locked: kB and VmFlags. */
static void
mapping_info(const void *p, long *locked_kb, char *flags, size_t flen)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	uintptr_t a = (uintptr_t)p;
	bool in = false;
	char line[512];

	*locked_kb = -1;
	flags[0] = '\0';
	ck_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;

		/* "lo-hi perms ..." opens a mapping's block; "Key: value"
		 * lines never parse as two hex numbers around a '-'. */
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
			in = a >= lo && a < hi;
		} else if (in && strncmp(line, "Locked:", 7) == 0) {
			*locked_kb = atol(line + 7);
		} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, flen, "%s", line + 8);
		}
	}
	fclose(f);
}

START_TEST(cache_locks_and_wipes)
{
	static const char a[] = "AAAAAAAAAAAAAAAA-first-value";
	struct sec_cache *c = new_cache(256);
	const unsigned char *region, *v;
	char flags[512];
	size_t rlen, len;
	long locked;

	ck_assert_int_eq(sec_cache_put(c, "one", (const unsigned char *)a,
	    sizeof(a) - 1), WD_OK);
	ck_assert_int_eq(sec_cache_put(c, "two", (const unsigned char *)"22222",
	    5), WD_OK);
	v = sec_cache_get(c, "one", &len);
	ck_assert(v != NULL && len == sizeof(a) - 1 && memcmp(v, a, len) == 0);
	ck_assert(sec_cache_get(c, "three", &len) == NULL && len == 0);
	mapping_info(v, &locked, flags, sizeof(flags));
#ifndef __SANITIZE_ADDRESS__
	/* ASan turns mlock into a no-op (it would lock shadow memory). */
	ck_assert_msg(locked >= 4, "Locked: %ld kB", locked);
	ck_assert_msg(strstr(flags, " lo") != NULL, "VmFlags:%s", flags);
#endif
	ck_assert_msg(strstr(flags, " dd") != NULL, "VmFlags:%s", flags);
	/* Replacement wipes the old value: no trace of it in the region. */
	ck_assert_int_eq(sec_cache_put(c, "one", (const unsigned char *)"B", 1),
	    WD_OK);
	sec_cache_region(c, &region, &rlen);
	ck_assert(memmem(region, rlen, "AAAA", 4) == NULL);
	ck_assert(memmem(region, rlen, "first", 5) == NULL);
	v = sec_cache_get(c, "two", &len);
	ck_assert(len == 5 && memcmp(v, "22222", 5) == 0);
	/* Full: refused, nothing half-written. */
	ck_assert_int_eq(sec_cache_put(c, "big", (const unsigned char *)region,
	    255), WD_ELIMIT);
	ck_assert_uint_eq(sec_cache_count(c), 2);
	/* Removing everything leaves the region all zero. */
	ck_assert(sec_cache_remove(c, "two"));
	ck_assert(sec_cache_remove(c, "one"));
	ck_assert(!sec_cache_remove(c, "one"));
	for (size_t i = 0; i < rlen; i++)
		ck_assert_msg(region[i] == 0, "byte %zu not wiped", i);
	sec_cache_free(c);
}
END_TEST

START_TEST(harden_process)
{
	struct rlimit rl;
	char err[256];

	ck_assert_int_eq(sec_harden_process(err, sizeof(err)), WD_OK);
	ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_CORE, &rl), 0);
	ck_assert(rl.rlim_cur == 0);
}
END_TEST

#ifndef __SANITIZE_ADDRESS__
/* ASan's allocator maps terabytes and keeps freed chunks in quarantine:
 * scanning memory this way means nothing there, so these two are left
 * out of sanitizer builds. */

/*
 * Is needle (given as two halves kept apart, so this test's own copy is
 * never contiguous) anywhere in writable memory outside [skip, +skiplen)?
 */
static unsigned char *
locked_alloc(void *arg, size_t len)
{
	struct sec_buf *b = arg;
	char err[256];

	return sec_buf_alloc(b, len, err, sizeof(err)) == WD_OK ? b->p : NULL;
}

static bool
memory_holds(const unsigned char *h1, const unsigned char *h2, size_t half,
    const void *skip, size_t skiplen)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	ck_assert(f != NULL);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || perms[1] != 'w' || hi - lo > (64ul << 20) ||
		    strstr(line, "[v") != NULL)
			continue;
		for (const unsigned char *p = (const unsigned char *)lo;
		    p + 2 * half <= (const unsigned char *)hi; p++) {
			if ((uintptr_t)p >= (uintptr_t)skip &&
			    (uintptr_t)p < (uintptr_t)skip + skiplen)
				continue;
			if (*p == h1[0] && memcmp(p, h1, half) == 0 &&
			    memcmp(p + half, h2, half) == 0) {
				found = true;
				break;
			}
		}
	}
	fclose(f);
	return found;
}

START_TEST(no_plaintext_left_outside_the_cache)
{
	/* The needle halves: their concatenation exists only where the
	 * value was really copied. */
	static const char value[] = "sk-needle-5a0d9b13e7c2f468-sk-needle-end!";
	struct { unsigned char h2[16], gap[16], h1[16]; } key;
	char hex[128], err[512];
	const unsigned char *region;
	struct sec_cache *c;
	struct sec_tpm *t;
	size_t rlen, half = (sizeof(value) - 1) / 2;

	/* Seal here: neither sealing nor unsealing may leave copies. */
	t = open_tpm();
	seal(t, "needle", value, sizeof(value) - 1, NULL, SEC_CREATE);
	sec_tpm_close(t);
	/* The data key, as tpm2-tools unseals it (hex, so stdio never holds
	 * the raw bytes). */
	ck_assert_int_eq(sh_line(hex, sizeof(hex),
	    "cd '%s' && export TPM2TOOLS_TCTI='%s' && "
	    "tpm2_createprimary -Q -C o -G ecc -c p.ctx && tpm2_flushcontext -t && "
	    "tpm2_load -Q -C p.ctx -u '%s/needle/tpm.pub' -r '%s/needle/tpm.priv' "
	    "-c o.ctx && tpm2_flushcontext -t && tpm2_unseal -c o.ctx | "
	    "od -An -v -tx1 | tr -d ' \\n'; tpm2_flushcontext -t",
	    dir, tcti, store, store), 0);
	ck_assert_uint_eq(strlen(hex), 64);
	ck_assert_int_eq(wd_unhex(hex + 32, key.h2, 16), WD_OK);
	hex[32] = '\0';
	ck_assert_int_eq(wd_unhex(hex, key.h1, 16), WD_OK);
	memset(hex, 0, sizeof(hex));

	t = open_tpm();
	c = new_cache(256);
	ck_assert_int_eq(sec_unseal(t, store, "needle", NULL, 0, c, err,
	    sizeof(err)), WD_OK);
	sec_cache_region(c, &region, &rlen);
	ck_assert(memmem(region, rlen, value, sizeof(value) - 1) != NULL);
	ck_assert_msg(!memory_holds(key.h1, key.h2, 16, NULL, 0),
	    "a copy of the data key survives the unseal");
	ck_assert_msg(!memory_holds((const unsigned char *)value,
	    (const unsigned char *)value + half, half, region, rlen),
	    "a copy of the value survives outside the cache");
	sec_tpm_close(t);
	ck_assert(!memory_holds(key.h1, key.h2, 16, NULL, 0));
	sec_cache_free(c);
	ck_assert(!memory_holds((const unsigned char *)value,
	    (const unsigned char *)value + half, half, NULL, 0));
}
END_TEST

/* ---- a provider transfer, for the credential scan ---- */

/* A one-shot HTTP server on the test's own event loop: it reads a
 * request into a buffer it wipes, and says whether the credential was in
 * it (so the scan below is known to look for something that travelled). */
struct tiny_srv {
	int lfd, port;
	struct event *ev;
	struct event_base *evb;
	const unsigned char *h1, *h2;	/* the credential, in two halves */
	size_t half;
	int seen;			/* requests that carried it */
};

static void
tiny_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: 2\r\n\r\n{}";
	static unsigned char buf[8192];
	struct tiny_srv *s = arg;
	size_t got = 0;

	(void)what;
	/* The whole head and the small body arrive in one go on loopback;
	 * read until the blank line and the 2-byte body. */
	while (got < sizeof(buf)) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		if (memmem(buf, got, "\r\n\r\n{}", 6) != NULL)
			break;
	}
	for (size_t i = 0; i + 2 * s->half <= got; i++)
		if (memcmp(buf + i, s->h1, s->half) == 0 &&
		    memcmp(buf + i + s->half, s->h2, s->half) == 0) {
			s->seen++;
			break;
		}
	wd_wipe(buf, sizeof(buf));
	ck_assert(send(fd, ans, sizeof(ans) - 1, MSG_NOSIGNAL) ==
	    (ssize_t)sizeof(ans) - 1);
	/* Left open: curl keeps the connection for the next transfer, as
	 * with a real provider; a second request on it is read by this
	 * callback again. */
}

static void
tiny_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tiny_srv *s = arg;
	int c = accept(fd, NULL, NULL);

	(void)what;
	if (c < 0)
		return;
	event_add(event_new(s->evb, c, EV_READ | EV_PERSIST, tiny_conn_cb, s),
	    NULL);
}

static void
tiny_start(struct tiny_srv *s, struct event_base *evb)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	s->evb = evb;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert(s->lfd >= 0);
	ck_assert(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(listen(s->lfd, 8) == 0);
	ck_assert(getsockname(s->lfd, (struct sockaddr *)&sa, &sl) == 0);
	s->port = ntohs(sa.sin_port);
	s->ev = event_new(evb, s->lfd, EV_READ | EV_PERSIST, tiny_accept_cb, s);
	event_add(s->ev, NULL);
}

/*
 * One provider request as txn_upstream.c makes it: the Authorization header
 * built in a buffer of ours from the cache's value, handed to the client
 * (libcurl, or warden's own for plain http at a literal address), and
 * wiped at once (the client copied it).
 */
static void
transfer_with(struct gw_upstream *up, struct event_base *evb, int port,
    const unsigned char *cred, size_t credlen, bool curl_only)
{
	static const char pre[] = "Authorization: Bearer ";
	char url[64], *auth = calloc(1, sizeof(pre) + credlen);
	const char *hdrs[3] = { "Content-Type: application/json", auth,
		"Expect:" };
	struct ut_xfer xs = { .evb = evb };
	struct gw_up_req r = { 0 };
	struct gw_up_xfer *x;

	ck_assert(auth != NULL);
	memcpy(auth, pre, sizeof(pre) - 1);
	memcpy(auth + sizeof(pre) - 1, cred, credlen);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    port);
	r.url = url;
	r.headers = hdrs;
	r.nheaders = 3;
	r.body = "{}";
	r.body_len = 2;
	r.connect_ms = r.first_byte_ms = r.idle_ms = r.total_ms = 5000;
	r.curl_only = curl_only;
	r.on_head = ut_xfer_head;
	r.on_data = ut_xfer_data;
	r.on_done = ut_xfer_done;
	r.arg = &xs;
	ck_assert_int_eq(gw_up_start(up, &r, &x), WD_OK);
	wd_wipe(auth, sizeof(pre) + credlen);
	free(auth);
	while (!xs.done)
		event_base_dispatch(evb);
	ck_assert_int_eq(xs.err, WD_OK);
	ck_assert_int_eq(xs.status, 200);
}

/*
 * After provider transfers, the credential is nowhere in the process's
 * memory but the locked cache.  libcurl builds each request head, with
 * "Authorization: Bearer <credential>", in heap buffers it frees without
 * clearing; gw_curl_global_init() gives it allocators that wipe.  warden's
 * own client (upstream_h1.c) wipes its copy of the head once it is sent.
 * Both clients take turns here.
 */
START_TEST(no_credential_left_after_transfers)
{
	static const char value[] = "sk-needle-c0ffee77d1e5a4b3-sk-needle-end!";
	size_t rlen, len, half = (sizeof(value) - 1) / 2;
	const unsigned char *region, *cred;
	struct tiny_srv srv = { 0 };
	struct event_base *evb;
	struct gw_upstream *up;
	struct sec_cache *c;
	struct sec_tpm *t;
	char err[512];

	ck_assert_int_eq(gw_curl_global_init(), WD_OK);
	t = open_tpm();
	seal(t, "cred", value, sizeof(value) - 1, NULL, SEC_CREATE);
	c = new_cache(256);
	ck_assert_int_eq(sec_unseal(t, store, "cred", NULL, 0, c, err,
	    sizeof(err)), WD_OK);
	sec_tpm_close(t);
	sec_cache_region(c, &region, &rlen);
	cred = sec_cache_get(c, "cred", &len);
	ck_assert(cred != NULL && len == sizeof(value) - 1);
	evb = event_base_new();
	up = gw_upstream_new(evb);
	ck_assert(evb != NULL && up != NULL);
	srv.h1 = cred;
	srv.h2 = cred + half;
	srv.half = half;
	tiny_start(&srv, evb);
	for (int i = 0; i < 6; i++)
		transfer_with(up, evb, srv.port, cred, len, i % 2 == 1);
	ck_assert_int_eq(srv.seen, 6);
	/* The upstream stays up, its connection and easy handle pooled, as
	 * in a running warden. */
	ck_assert_msg(!memory_holds(cred, cred + half, half, region, rlen),
	    "a copy of the credential is left outside the locked cache "
	    "after the transfers");
	gw_upstream_free(up);
	sec_cache_free(c);
}
END_TEST

/*
 * Is needle (two halves kept apart) anywhere in writable memory that is
 * not locked (smaps VmFlags "lo": the sec_buf regions, OpenSSL's secure
 * heap), outside [skip, +skiplen)?
 */
static bool
unlocked_holds(const unsigned char *h1, const unsigned char *h2, size_t half,
    const void *skip, size_t skiplen)
{
	static struct { unsigned long lo, hi; bool use; char name[128]; }
	    maps[8192];
	FILE *f = fopen("/proc/self/smaps", "r");
	size_t n = 0;
	char line[512];
	bool found = false;

	ck_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char perms[5];
		int used = 0;

		if (sscanf(line, "%lx-%lx %4s %n", &lo, &hi, perms, &used) == 3 &&
		    used > 0 && n < sizeof(maps) / sizeof(maps[0])) {
			maps[n].lo = lo;
			maps[n].hi = hi;
			maps[n].use = perms[0] == 'r' && perms[1] == 'w' &&
			    hi - lo <= (64ul << 20) && strstr(line, "[v") == NULL;
			snprintf(maps[n].name, sizeof(maps[n].name), "%.100s", line);
			n++;
		} else if (strncmp(line, "VmFlags:", 8) == 0 && n > 0 &&
		    strstr(line, " lo") != NULL) {
			maps[n - 1].use = false;	/* locked */
		}
	}
	fclose(f);
	for (size_t i = 0; i < n && !found; i++) {
		if (!maps[i].use)
			continue;
		for (const unsigned char *p = (const unsigned char *)maps[i].lo;
		    p + 2 * half <= (const unsigned char *)maps[i].hi; p++) {
			if ((uintptr_t)p >= (uintptr_t)skip &&
			    (uintptr_t)p < (uintptr_t)skip + skiplen)
				continue;
			if (*p == h1[0] && memcmp(p, h1, half) == 0 &&
			    memcmp(p + half, h2, half) == 0) {
				fprintf(stderr, "found at %p in %s", (const void *)p,
				    maps[i].name);
				found = true;
				break;
			}
		}
	}
	return found;
}

/*
 * Kept payloads (issue 19): the data key, the payload HMAC key and the
 * payload's text leave no copy in unlocked memory when a payload is
 * sealed and read back (the gateway's path: gw_paykeys, aud_payload_*).
 */
START_TEST(payload_keys_and_text_stay_in_locked_memory)
{
	/* Needle halves apart; the text exists whole only in the payload's
	 * JSON string (the caller's, skipped) and where it was copied. */
	static const char t1[] = "pay-needle-7d1c0e93a5b2f4", t2[] =
	    "-health-record-2f6a8e01c!";
	struct { unsigned char a[16], gap[16], b[16]; } dk, hk;
	struct sec_buf key = { 0 }, plain = { 0 };
	struct gw_paykeys *pk = NULL;
	struct aud_log *log = NULL;
	struct sec_tpm *t;
	char err[512], adir[400], kstore[500], tenant[65], whole[64];
	char digest[AUD_HASH_HEX + 1];
	const char *text;
	size_t len = 0, half = sizeof(t1) - 1;
	json_t *payload;

	ck_assert_uint_eq(sizeof(t1), sizeof(t2));
	/* As the gateway does before it opens anything. */
	ck_assert(CRYPTO_secure_malloc_init(1 << 16, 16) != 0);
	snprintf(adir, sizeof(adir), "%s/audit", dir);
	ck_assert_msg(gw_paykeys_new(adir, tcti, NULL, &pk, err, sizeof(err)) ==
	    WD_OK, "%s", err);
	{
		struct aud_opts o = { .dir = adir, .instance = "ut",
			.group_commit_ms = 1, .keys = gw_paykeys_keys(pk) };

		ck_assert_msg(aud_open(&o, &log, err, sizeof(err)) == WD_OK, "%s",
		    err);
	}
	snprintf(whole, sizeof(whole), "%s%s", t1, t2);
	payload = json_pack("{s:s,s:{s:[{s:s,s:s}]}}", "tenant", "t1",
	    "request", "messages", "role", "user", "content", whole);
	wd_wipe(whole, sizeof(whole));
	text = json_string_value(json_object_get(json_array_get(json_object_get(
	    json_object_get(payload, "request"), "messages"), 0), "content"));
	ck_assert_int_eq(aud_payload_store(log, "t1", "dec-scan-1", 1, payload),
	    WD_OK);
	aud_payload_digest(log, text, strlen(text), digest);
	ck_assert_int_eq(aud_payload_read(adir, gw_paykeys_keys(pk),
	    "dec-scan-1", locked_alloc, &plain, &len, tenant, err, sizeof(err)),
	    WD_OK);
	ck_assert_str_eq(tenant, "t1");
	ck_assert(memmem(plain.p, len, t1, half) != NULL);
	sec_buf_free(&plain);

	/* The keys, fetched into locked memory and split for the scan. */
	ck_assert_int_eq(sec_buf_alloc(&key, 32, err, sizeof(err)), WD_OK);
	t = open_tpm();
	{
		char month[8];

		aud_key_month(time(NULL) + 86400, month);
		snprintf(kstore, sizeof(kstore), "%s/payload-keys/t1", adir);
		ck_assert_msg(sec_dkey_unseal(t, kstore, month, key.p, err,
		    sizeof(err)) == WD_OK, "%s", err);
	}
	sec_tpm_close(t);
	memcpy(dk.a, key.p, 16);
	memcpy(dk.b, key.p + 16, 16);
	ck_assert_int_eq(gw_paykeys_keys(pk)->hmac_key(pk, adir, key.p, err,
	    sizeof(err)), WD_OK);
	memcpy(hk.a, key.p, 16);
	memcpy(hk.b, key.p + 16, 16);
	sec_buf_free(&key);

	ck_assert_msg(!unlocked_holds(dk.a, dk.b, 16, NULL, 0),
	    "a copy of the data key in unlocked memory");
	ck_assert_msg(!unlocked_holds(hk.a, hk.b, 16, NULL, 0),
	    "a copy of the payload HMAC key in unlocked memory");
	ck_assert_msg(!unlocked_holds((const unsigned char *)t1,
	    (const unsigned char *)t2, half, text, strlen(text)),
	    "a copy of the payload text in unlocked memory");
	aud_close(log);
	gw_paykeys_free(pk);
	ck_assert(!unlocked_holds(dk.a, dk.b, 16, NULL, 0));
	ck_assert(!unlocked_holds(hk.a, hk.b, 16, NULL, 0));
	json_decref(payload);
}
END_TEST

#endif /* __SANITIZE_ADDRESS__ */

START_TEST(objects_are_flushed)
{
	struct sec_tpm *t = open_tpm();
	struct sec_cache *c = new_cache(50 * 32);
	char name[32], val[32], err[512];
	uint64_t t0, t1, t2;

	t0 = wd_mono_us();
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "cred-%02d", i);
		snprintf(val, sizeof(val), "sk-value-%02d", i);
		seal(t, name, val, strlen(val), NULL, SEC_CREATE);
	}
	sec_tpm_close(t);
	t1 = wd_mono_us();
	t = open_tpm();
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "cred-%02d", i);
		ck_assert_msg(sec_unseal(t, store, name, NULL, 0, c, err,
		    sizeof(err)) == WD_OK, "%s: %s", name, err);
	}
	sec_tpm_close(t);
	t2 = wd_mono_us();
	ck_assert_uint_eq(sec_cache_count(c), 50);
	fprintf(stderr, "secrets: 50 seals %.1f ms (%.2f ms each), "
	    "open + 50 unseals %.1f ms (%.2f ms each) on swtpm\n",
	    (double)(t1 - t0) / 1e3, (double)(t1 - t0) / 50e3,
	    (double)(t2 - t1) / 1e3, (double)(t2 - t1) / 50e3);
	/* Nothing stays loaded in the TPM once the context is closed. */
	assert_tpm_empty();
	sec_cache_free(c);
}
END_TEST

START_TEST(tpm2_tools_unseal_the_data_key)
{
	struct { unsigned char key[32]; } k;
	EVP_CIPHER_CTX *ctx;
	unsigned char env[256], plain[256];
	char hex[128], path[512], aad[128];
	struct sec_tpm *t = open_tpm();
	size_t n;
	int len, fin;
	FILE *f;

	seal(t, "interop", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	/* Exactly the recovery commands the README gives an operator. */
	ck_assert_int_eq(sh_line(hex, sizeof(hex),
	    "cd '%s' && export TPM2TOOLS_TCTI='%s' && "
	    "tpm2_createprimary -Q -C o -G ecc -c p.ctx && tpm2_flushcontext -t && "
	    "tpm2_load -Q -C p.ctx -u '%s/interop/tpm.pub' -r '%s/interop/tpm.priv' "
	    "-c o.ctx && tpm2_flushcontext -t && tpm2_unseal -c o.ctx | "
	    "od -An -v -tx1 | tr -d ' \\n'; tpm2_flushcontext -t",
	    dir, tcti, store, store), 0);
	ck_assert_int_eq(wd_unhex(hex, k.key, 32), WD_OK);
	/* The envelope: "WSE1", nonce, tag, ciphertext; AAD names it. */
	snprintf(path, sizeof(path), "%s/interop/envelope.bin", store);
	f = fopen(path, "rb");
	ck_assert(f != NULL);
	n = fread(env, 1, sizeof(env), f);
	fclose(f);
	ck_assert_uint_eq(n, 32 + strlen(VALUE));
	ck_assert(memcmp(env, "WSE1", 4) == 0);
	snprintf(aad, sizeof(aad), "warden/secrets/v1:interop");
	ctx = EVP_CIPHER_CTX_new();
	ck_assert(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k.key,
	    env + 4) == 1);
	ck_assert(EVP_DecryptUpdate(ctx, NULL, &len, (unsigned char *)aad,
	    (int)strlen(aad)) == 1);
	ck_assert(EVP_DecryptUpdate(ctx, plain, &len, env + 32,
	    (int)(n - 32)) == 1);
	ck_assert(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
	    env + 16) == 1);
	ck_assert(EVP_DecryptFinal_ex(ctx, plain + len, &fin) == 1);
	EVP_CIPHER_CTX_free(ctx);
	ck_assert_uint_eq((size_t)len, strlen(VALUE));
	ck_assert(memcmp(plain, VALUE, strlen(VALUE)) == 0);
}
END_TEST

#define SIGN_AUTH "warden-ut-audit-key-auth"

START_TEST(audit_signing_key)
{
	static const char data[] = "checkpoint 42: 9f86d081884c7d65";
	const unsigned char *auth = (const unsigned char *)SIGN_AUTH;
	size_t authlen = strlen(SIGN_AUTH);
	unsigned char digest[32], sig[SEC_SIG_MAX];
	struct sec_tpm *t = open_tpm();
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md;
	EVP_PKEY *pub;
	char err[512], *pem = NULL;
	struct sec_meta m;
	bool created;
	BIO *bio;

	ck_assert_int_eq(sec_sign_key_ensure(t, store, auth, authlen, NULL, &created,
	    err, sizeof(err)), WD_OK);
	ck_assert(created);
	ck_assert_int_eq(sec_sign_key_ensure(t, store, auth, authlen, NULL, &created,
	    err, sizeof(err)), WD_OK);
	ck_assert(!created);
	/* A key with an auth value is not used without one. */
	ck_assert_int_eq(sec_sign_key_ensure(t, store, NULL, 0, NULL, &created, err,
	    sizeof(err)), WD_ECONFIG);
	ck_assert_int_eq(sec_stat(store, SEC_SIGN_KEY, &m, err, sizeof(err)),
	    WD_OK);
	ck_assert_int_eq(m.kind, SEC_KIND_SIGNING_KEY);
	ck_assert(m.auth);
	wd_sha256(data, sizeof(data) - 1, digest);
	ck_assert_msg(sec_sign_digest(t, store, auth, authlen, digest, sig,
	    &siglen, err, sizeof(err)) == WD_OK, "%s", err);
	ck_assert(siglen > 8 && siglen <= SEC_SIG_MAX && sig[0] == 0x30);
	ck_assert_int_eq(sec_sign_pubkey_pem(store, &pem, err, sizeof(err)),
	    WD_OK);
	ck_assert(strstr(pem, "-----BEGIN PUBLIC KEY-----") == pem);
	bio = BIO_new_mem_buf(pem, -1);
	pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	ck_assert(pub != NULL);
	md = EVP_MD_CTX_new();
	ck_assert(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1);
	ck_assert_int_eq(EVP_DigestVerify(md, sig, siglen,
	    (const unsigned char *)data, sizeof(data) - 1), 1);
	/* And not over other data. */
	ck_assert(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1);
	ck_assert_int_ne(EVP_DigestVerify(md, sig, siglen,
	    (const unsigned char *)data, sizeof(data) - 2), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	BIO_free(bio);
	free(pem);
	/* A wrong auth value signs nothing (one try: the key is subject to
	 * dictionary-attack lockout). */
	siglen = sizeof(sig);
	ck_assert_int_eq(sec_sign_digest(t, store, (const unsigned char *)"nope",
	    4, digest, sig, &siglen, err, sizeof(err)), WD_ETPM);
	ck_assert_msg(strstr(err, "Sign") != NULL, "%s", err);
	/* A credential is not a signing key, and vice versa. */
	unseal_fails(t, SEC_SIGN_KEY, NULL, WD_EINVAL);
	sec_tpm_close(t);
}
END_TEST

/*
 * Issue 11: the blobs of warden's key and access to the TPM are not
 * enough to sign.  tpm2-tools loads them like anyone could; tpm2_sign
 * fails without the auth value and works with it.
 */
START_TEST(tpm2_sign_needs_the_auth_value)
{
	const unsigned char *auth = (const unsigned char *)SIGN_AUTH;
	struct sec_tpm *t = open_tpm();
	char err[512], path[512], *pem = NULL;
	bool created;
	FILE *f;

	ck_assert_int_eq(sec_sign_key_ensure(t, store, auth, strlen(SIGN_AUTH),
	    NULL, &created, err, sizeof(err)), WD_OK);
	sec_tpm_close(t);
	ck_assert_int_eq(sec_sign_pubkey_pem(store, &pem, err, sizeof(err)),
	    WD_OK);
	snprintf(path, sizeof(path), "%s/pub.pem", dir);
	f = fopen(path, "w");
	ck_assert(f != NULL && fputs(pem, f) >= 0 && fclose(f) == 0);
	free(pem);
	ck_assert_int_eq(sh("cd '%s' && printf 'seq 7: forged' > msg && "
	    "printf '%%s' '%s' > auth && TPM2TOOLS_TCTI='%s' sh -c '"
	    "tpm2_createprimary -Q -C o -G ecc -c p.ctx && "
	    "tpm2_flushcontext -t && tpm2_load -Q -C p.ctx -u %s/%s/tpm.pub "
	    "-r %s/%s/tpm.priv -c k.ctx && tpm2_flushcontext -t' >/dev/null 2>&1",
	    dir, SIGN_AUTH, tcti, store, SEC_SIGN_KEY, store, SEC_SIGN_KEY), 0);
	/* Without the auth value: refused by the TPM. */
	ck_assert_int_ne(sh("cd '%s' && TPM2TOOLS_TCTI='%s' tpm2_sign -c k.ctx "
	    "-g sha256 -f plain -o nosig msg >/dev/null 2>&1", dir, tcti), 0);
	sh("cd '%s' && TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t >/dev/null 2>&1",
	    dir, tcti);
	/* With it: a signature openssl accepts under warden's public key. */
	ck_assert_int_eq(sh("cd '%s' && TPM2TOOLS_TCTI='%s' tpm2_sign -c k.ctx "
	    "-p file:auth -g sha256 -f plain -o sig msg >/dev/null 2>&1 && "
	    "openssl dgst -sha256 -verify pub.pem -signature sig msg "
	    ">/dev/null 2>&1", dir, tcti), 0);
	sh("cd '%s' && TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t >/dev/null 2>&1",
	    dir, tcti);
}
END_TEST

/* A key from before issue 11 (no auth value) is refused once warden has
 * an auth value, with how to move on. */
START_TEST(signing_key_without_auth_is_refused)
{
	struct sec_tpm *t = open_tpm();
	char err[512];
	bool created;

	ck_assert_int_eq(sec_sign_key_ensure(t, store, NULL, 0, NULL, &created, err,
	    sizeof(err)), WD_OK);
	ck_assert(created);
	ck_assert_int_eq(sec_sign_key_ensure(t, store,
	    (const unsigned char *)SIGN_AUTH, strlen(SIGN_AUTH), NULL, &created,
	    err, sizeof(err)), WD_EPERM);
	ck_assert_msg(strstr(err, "without an auth value") != NULL &&
	    strstr(err, "audit pubkey") != NULL, "%s", err);
	sec_tpm_close(t);
}
END_TEST

/* Bound to PCR 23 as well: signs while the PCR holds its value, with the
 * auth value only (tpm2_sign -p alone is refused: no USERWITHAUTH), and
 * not after the PCR changed. */
START_TEST(signing_key_bound_to_pcrs)
{
	const unsigned char *auth = (const unsigned char *)SIGN_AUTH;
	size_t authlen = strlen(SIGN_AUTH);
	unsigned char digest[32] = { 7 }, sig[SEC_SIG_MAX];
	struct sec_tpm *t = open_tpm();
	size_t siglen = sizeof(sig);
	char err[512];
	struct sec_meta m;
	bool created;

	ck_assert_msg(sec_sign_key_ensure(t, store, auth, authlen, "sha256:23",
	    &created, err, sizeof(err)) == WD_OK, "%s", err);
	ck_assert(created);
	ck_assert_int_eq(sec_stat(store, SEC_SIGN_KEY, &m, err, sizeof(err)),
	    WD_OK);
	ck_assert_str_eq(m.pcrs, "sha256:23");
	/* The binding cannot change under a key. */
	ck_assert_int_eq(sec_sign_key_ensure(t, store, auth, authlen, NULL,
	    &created, err, sizeof(err)), WD_EPERM);
	ck_assert_msg(sec_sign_digest(t, store, auth, authlen, digest, sig,
	    &siglen, err, sizeof(err)) == WD_OK, "%s", err);
	sec_tpm_close(t);
	/* The auth value alone (a password session) does not open it. */
	ck_assert_int_eq(sh("cd '%s' && printf '%%s' '%s' > auth && printf x > "
	    "msg && TPM2TOOLS_TCTI='%s' sh -c 'tpm2_createprimary -Q -C o -G ecc "
	    "-c p.ctx && tpm2_flushcontext -t && tpm2_load -Q -C p.ctx -u "
	    "%s/%s/tpm.pub -r %s/%s/tpm.priv -c k.ctx && tpm2_flushcontext -t' "
	    ">/dev/null 2>&1", dir, SIGN_AUTH, tcti, store, SEC_SIGN_KEY, store,
	    SEC_SIGN_KEY), 0);
	ck_assert_int_ne(sh("cd '%s' && TPM2TOOLS_TCTI='%s' tpm2_sign -c k.ctx "
	    "-p file:auth -g sha256 -f plain -o sig msg >/dev/null 2>&1", dir,
	    tcti), 0);
	sh("TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t >/dev/null 2>&1", tcti);
	/* The PCR moves: no more signatures. */
	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_pcrextend 23:sha256="
	    "0000000000000000000000000000000000000000000000000000000000000001 "
	    ">/dev/null 2>&1", tcti), 0);
	t = open_tpm();
	siglen = sizeof(sig);
	ck_assert_int_eq(sec_sign_digest(t, store, auth, authlen, digest, sig,
	    &siglen, err, sizeof(err)), WD_ETPM);
	ck_assert_msg(strstr(err, "PCR values") != NULL, "%s", err);
	sec_tpm_close(t);
}
END_TEST

#define UT_NV 0x01800a0du

START_TEST(counter_counts_up_only)
{
	struct sec_tpm *t = open_tpm();
	struct sec_counter a, b, c;
	char err[512];
	bool created = false;

	ck_assert_int_eq(sec_counter_read(t, UT_NV, &a, err, sizeof(err)),
	    WD_ENOTFOUND);
	ck_assert_msg(sec_counter_define(t, UT_NV, &created, &a, err,
	    sizeof(err)) == WD_OK, "%s", err);
	ck_assert(created);
	ck_assert_uint_eq(strlen(a.name), SEC_COUNTER_NAME_HEX);
	ck_assert(strncmp(a.name, "000b", 4) == 0);	/* SHA-256 name */
	ck_assert_int_eq(sec_counter_increment(t, UT_NV, &b, err, sizeof(err)),
	    WD_OK);
	ck_assert_uint_eq(b.value, a.value + 1);
	ck_assert_int_eq(sec_counter_read(t, UT_NV, &c, err, sizeof(err)),
	    WD_OK);
	ck_assert_uint_eq(c.value, b.value);
	ck_assert_str_eq(c.name, b.name);
	/* Defined already: taken as it is, not reset. */
	ck_assert_int_eq(sec_counter_define(t, UT_NV, &created, &c, err,
	    sizeof(err)), WD_OK);
	ck_assert(!created);
	ck_assert_uint_eq(c.value, b.value);
	sec_tpm_close(t);

	/* The value survives a TPM restart. */
	swtpm_stop(tpmdir);
	swtpm_start(tpmdir, tcti);
	t = open_tpm();
	ck_assert_int_eq(sec_counter_read(t, UT_NV, &c, err, sizeof(err)),
	    WD_OK);
	ck_assert_uint_eq(c.value, b.value);
	sec_tpm_close(t);

	/* Deleting the index and defining it again does not go back. */
	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_nvundefine -C o 0x%x "
	    ">/dev/null 2>&1", tcti, UT_NV), 0);
	t = open_tpm();
	ck_assert_int_eq(sec_counter_define(t, UT_NV, &created, &c, err,
	    sizeof(err)), WD_OK);
	ck_assert(created);
	ck_assert_msg(c.value >= b.value, "a new counter started at %llu, "
	    "below %llu", (unsigned long long)c.value,
	    (unsigned long long)b.value);
	sec_tpm_close(t);
}
END_TEST

/* An ordinary NV index can be written to any value: not a counter. */
START_TEST(counter_refuses_an_ordinary_index)
{
	struct sec_tpm *t;
	struct sec_counter c;
	char err[512];

	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_nvdefine -C o -s 8 -a "
	    "'ownerread|ownerwrite|no_da' 0x%x >/dev/null 2>&1", tcti, UT_NV), 0);
	t = open_tpm();
	ck_assert_int_eq(sec_counter_define(t, UT_NV, NULL, &c, err,
	    sizeof(err)), WD_EINVAL);
	ck_assert_msg(strstr(err, "not a monotonic counter") != NULL, "%s", err);
	ck_assert_int_eq(sec_counter_read(t, UT_NV, &c, err, sizeof(err)),
	    WD_EINVAL);
	sec_tpm_close(t);
}
END_TEST

/*
 * A destroyable data key: destroying it ends its NV index, so a copy of
 * the store taken before (a backup) cannot be unsealed any more, not even
 * after a new key takes the same name and, likely, the same NV index.
 */
START_TEST(data_key_destroyed_for_every_copy)
{
	struct sec_tpm *t = open_tpm();
	struct sec_buf k1 = { 0 }, k2 = { 0 };
	char err[512], backup[400];
	uint32_t nv = 0, nv2 = 0;
	struct sec_meta m;

	ck_assert_int_eq(sec_buf_alloc(&k1, SEC_DKEY_LEN, err, sizeof(err)), WD_OK);
	ck_assert_int_eq(sec_buf_alloc(&k2, SEC_DKEY_LEN, err, sizeof(err)), WD_OK);
	ck_assert_msg(sec_dkey_create(t, store, "2026-12", err, sizeof(err)) ==
	    WD_OK, "%s", err);
	ck_assert_int_eq(sec_dkey_create(t, store, "2026-12", err, sizeof(err)),
	    WD_EINVAL);
	ck_assert_msg(sec_dkey_unseal(t, store, "2026-12", k1.p, err,
	    sizeof(err)) == WD_OK, "%s", err);
	ck_assert_int_eq(sec_stat(store, "2026-12", &m, err, sizeof(err)), WD_OK);
	ck_assert(m.auth && m.nv >= SEC_DKEY_NV_FIRST);
	/* Without its NV secret the blobs open nothing (not even with the
	 * empty auth a credential has). */
	unseal_fails(t, "2026-12", NULL, WD_EINVAL);
	/* Its NV secret is write-locked: it can be ended, not replaced. */
	ck_assert_int_ne(sh("head -c 32 /dev/zero >'%s/zero' && "
	    "TPM2TOOLS_TCTI='%s' tpm2_nvwrite 0x%08x -i '%s/zero' "
	    ">/dev/null 2>&1", dir, tcti, m.nv, dir), 0);
	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_nvreadpublic 0x%08x | "
	    "grep -q writelocked", tcti, m.nv), 0);
	snprintf(backup, sizeof(backup), "%s-backup", store);
	ck_assert_int_eq(sh("cp -a '%s' '%s'", store, backup), 0);
	ck_assert_int_eq(sec_dkey_destroy(t, store, "2026-12", &nv, err,
	    sizeof(err)), WD_OK);
	ck_assert_uint_eq(nv, m.nv);
	ck_assert_int_ne(sh("ls '%s/2026-12' >/dev/null 2>&1", store), 0);
	ck_assert_int_eq(sec_dkey_unseal(t, store, "2026-12", k2.p, err,
	    sizeof(err)), WD_ENOTFOUND);
	/* The backup holds the very blobs and the NV handle: not enough. */
	ck_assert_int_eq(sec_dkey_unseal(t, backup, "2026-12", k2.p, err,
	    sizeof(err)), WD_EDESTROYED);
	ck_assert_msg(strstr(err, "destroyed") != NULL, "%s", err);
	/* tpm2-tools see no such index either. */
	ck_assert_int_ne(sh("TPM2TOOLS_TCTI='%s' tpm2_nvread 0x%08x -s 32 "
	    ">/dev/null 2>&1", tcti, nv), 0);
	/* A new key of the same name: new secret, the old copy stays shut. */
	ck_assert_msg(sec_dkey_create(t, store, "2026-12", err, sizeof(err)) ==
	    WD_OK, "%s", err);
	ck_assert_int_eq(sec_stat(store, "2026-12", &m, err, sizeof(err)), WD_OK);
	nv2 = m.nv;
	ck_assert_int_eq(sec_dkey_unseal(t, store, "2026-12", k2.p, err,
	    sizeof(err)), WD_OK);
	ck_assert(memcmp(k1.p, k2.p, SEC_DKEY_LEN) != 0);
	ck_assert_int_eq(sec_dkey_unseal(t, backup, "2026-12", k2.p, err,
	    sizeof(err)), WD_EDESTROYED);
	fprintf(stderr, "secrets: data key NV index 0x%08x, after destroy and "
	    "re-create 0x%08x\n", nv, nv2);
	ck_assert_int_eq(sec_dkey_destroy(t, store, "2026-12", NULL, err,
	    sizeof(err)), WD_OK);
	sec_buf_free(&k1);
	sec_buf_free(&k2);
	sec_tpm_close(t);
}
END_TEST

START_TEST(counter_index_parsing)
{
	uint32_t v = 0;

	ck_assert_int_eq(sec_counter_parse_index("0x01800a0d", &v), WD_OK);
	ck_assert_uint_eq(v, 0x01800a0du);
	ck_assert_int_eq(sec_counter_parse_index("0x1800a0d", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("0x01c00002", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("0x81000001", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("01800a0d", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("0x", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("0x018000000", &v), WD_OK);
	ck_assert_int_ne(sec_counter_parse_index("0x0180zz0d", &v), WD_OK);
}
END_TEST

/*
 * Expiry is key deletion: the log's writer destroys the data keys of
 * months that are over (for every tenant) when it starts and hourly after,
 * and says so in a `purge` record; this month's keys and later stay.
 */
START_TEST(expired_months_keys_are_destroyed_and_recorded)
{
	struct gw_paykeys *pk = NULL;
	struct aud_log *log = NULL;
	struct sec_tpm *t = open_tpm();
	char err[512], adir[400], s1[500], s2[500], now[8], seg[500], *text;
	struct sec_meta m;
	size_t len = 0;

	snprintf(adir, sizeof(adir), "%s/audit", dir);
	snprintf(s1, sizeof(s1), "%s/payload-keys", adir);
	ck_assert_int_eq(sh("mkdir -p -m 700 '%s' && chmod 700 '%s'", s1, adir),
	    0);
	snprintf(s1, sizeof(s1), "%s/payload-keys/t1", adir);
	snprintf(s2, sizeof(s2), "%s/payload-keys/t2", adir);
	aud_key_month(time(NULL), now);
	ck_assert_int_eq(sec_dkey_create(t, s1, "2020-01", err, sizeof(err)),
	    WD_OK);
	ck_assert_int_eq(sec_dkey_create(t, s2, "2021-07", err, sizeof(err)),
	    WD_OK);
	ck_assert_int_eq(sec_dkey_create(t, s1, now, err, sizeof(err)), WD_OK);
	sec_tpm_close(t);
	ck_assert_msg(gw_paykeys_new(adir, tcti, NULL, &pk, err, sizeof(err)) ==
	    WD_OK, "%s", err);
	{
		struct aud_opts o = { .dir = adir, .instance = "ut",
			.group_commit_ms = 1, .keys = gw_paykeys_keys(pk) };

		ck_assert_msg(aud_open(&o, &log, err, sizeof(err)) == WD_OK, "%s",
		    err);
	}
	usleep(300 * 1000);		/* the writer's first round */
	aud_close(log);
	gw_paykeys_free(pk);
	ck_assert_int_eq(sec_stat(s1, "2020-01", &m, err, sizeof(err)),
	    WD_ENOTFOUND);
	ck_assert_int_eq(sec_stat(s2, "2021-07", &m, err, sizeof(err)),
	    WD_ENOTFOUND);
	ck_assert_int_eq(sec_stat(s1, now, &m, err, sizeof(err)), WD_OK);
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", adir);
	text = (char *)wd_slurp(seg, 1 << 20, &len);
	ck_assert(text != NULL);
	ck_assert_msg(strstr(text, "\"kind\":\"purge\"") != NULL &&
	    strstr(text, "\"reason\":\"expired\"") != NULL &&
	    strstr(text, "\"month\":\"2020-01\"") != NULL &&
	    strstr(text, "\"month\":\"2021-07\"") != NULL, "%s", text);
	snprintf(s2, sizeof(s2), "\"month\":\"%s\"", now);
	ck_assert_msg(strstr(text, s2) == NULL, "%s", text);
	free(text);
}
END_TEST

struct ev_log {
	int n;
	char text[8][128];
};

static void
record_event(const struct sec_event *ev, void *arg)
{
	struct ev_log *l = arg;

	if (l->n < 8)
		snprintf(l->text[l->n++], sizeof(l->text[0]), "%s %s %d",
		    sec_event_name(ev->kind), ev->name, (int)ev->result);
}

START_TEST(events_reach_the_hook)
{
	struct ev_log l = { 0 };
	struct sec_tpm *t = open_tpm();
	struct sec_cache *c = new_cache(64);
	char err[512];

	sec_set_event_hook(record_event, &l);
	seal(t, "ev", "v1", 2, NULL, SEC_CREATE);
	seal(t, "ev", "v2", 2, NULL, SEC_REPLACE);
	ck_assert_int_eq(sec_unseal(t, store, "ev", NULL, 0, c, err,
	    sizeof(err)), WD_OK);
	ck_assert_int_eq(sec_remove(store, "ev", err, sizeof(err)), WD_OK);
	sec_set_event_hook(NULL, NULL);
	ck_assert_int_eq(l.n, 4);
	ck_assert_str_eq(l.text[0], "secret_seal ev 0");
	ck_assert_str_eq(l.text[1], "secret_rotate ev 0");
	ck_assert_str_eq(l.text[2], "secret_unseal ev 0");
	ck_assert_str_eq(l.text[3], "secret_remove ev 0");
	sec_cache_free(c);
	sec_tpm_close(t);
}
END_TEST

/* ---- a busy TPM (tpm_busy.c, the process's TPM lock) ---- */

/* Fill the TPM's three object slots from other processes. */
static void
fill_object_slots(void)
{
	leave_objects(3);
	ck_assert_int_eq(loaded_objects(), 3);
}

START_TEST(slots_held_by_another_process_are_waited_for)
{
	struct sec_tpm *t = open_tpm();
	uint64_t t0, us;

	seal(t, "busy", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	fill_object_slots();
	/* Another process flushes them 300 ms after the unseal began (the
	 * go file), however slowly a loaded machine starts it. */
	ck_assert_int_eq(sh("cd '%s' && (i=0; while [ ! -e go ] && "
	    "[ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done; sleep 0.3; "
	    "TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t) >/dev/null 2>&1 &", dir,
	    tcti), 0);
	t = open_tpm();
	ck_assert_int_eq(sh("touch '%s/go'", dir), 0);
	t0 = wd_mono_us();
	unseal_eq(t, "busy", VALUE, strlen(VALUE));
	us = wd_mono_us() - t0;
	ck_assert_uint_gt(sec_tpm_busy_retries(t), 0);
	ck_assert_uint_eq(sec_tpm_busy_last(t), TPM2_RC_OBJECT_MEMORY);
	ck_assert_msg(us >= 250000, "unsealed after %llu us: the slots were "
	    "free?", (unsigned long long)us);
	sec_tpm_close(t);
}
END_TEST

START_TEST(a_full_tpm_is_a_clear_error_and_nothing_is_unsealed)
{
	struct sec_tpm *t = open_tpm();
	struct sec_cache *c = new_cache(256);
	char err[512];
	uint64_t t0, us;
	enum wd_err e;

	seal(t, "full", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	fill_object_slots();
	t = open_tpm();
	t0 = wd_mono_us();
	e = sec_unseal(t, store, "full", NULL, 0, c, err, sizeof(err));
	us = wd_mono_us() - t0;
	sec_tpm_close(t);
	ck_assert_msg(e == WD_ETPM, "got %s: %s", wd_strerror(e), err);
	ck_assert_uint_eq(sec_cache_count(c), 0);	/* fail closed */
	ck_assert_msg(strstr(err, "0x902") != NULL &&
	    strstr(err, "still full after warden retried for 2 s") != NULL &&
	    strstr(err, "tpm2_flushcontext") != NULL, "%s", err);
	/* Bounded: the 2 s of retries, not a hang. */
	ck_assert_msg(us >= 1900000 && us < 8000000, "gave up after %llu us",
	    (unsigned long long)us);
	/* Once someone flushes them, the same call works. */
	ck_assert_int_eq(sh("TPM2TOOLS_TCTI='%s' tpm2_flushcontext -t", tcti), 0);
	t = open_tpm();
	unseal_eq(t, "full", VALUE, strlen(VALUE));
	sec_tpm_close(t);
	sec_cache_free(c);
}
END_TEST

/* A process killed while it used the TPM: its primary and a session
 * stay loaded (no resource manager flushes them). */
static void
die_holding_a_session(void)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sec_tpm *t = NULL;
		ESYS_TR s = ESYS_TR_NONE;
		char err[512];

		if (sec_tpm_open(tcti, &t, err, sizeof(err)) == WD_OK &&
		    sec_tpm_session(t, TPM2_SE_HMAC, 0, &s, err,
		    sizeof(err)) == WD_OK)
			raise(SIGKILL);
		_exit(1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "the child could not make its session");
}

/*
 * What dead processes left loaded (two objects from tpm2-tools, a primary
 * and a session from a process killed mid-operation) is flushed by
 * sec_tpm_reclaim, after which an unseal needs no waiting at all.
 */
START_TEST(what_dead_processes_left_is_reclaimed)
{
	struct sec_tpm *t = open_tpm();
	unsigned objs = 0, sess = 0;
	char err[512];

	seal(t, "stale", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close(t);
	die_holding_a_session();
	leave_objects(2);
	ck_assert_msg(sec_tpm_reclaim(tcti, &objs, &sess, err,
	    sizeof(err)) == WD_OK, "%s", err);
	ck_assert_uint_eq(objs, 3);
	ck_assert_uint_eq(sess, 1);
	assert_tpm_empty();
	t = open_tpm();
	unseal_eq(t, "stale", VALUE, strlen(VALUE));
	ck_assert_uint_eq(sec_tpm_busy_retries(t), 0);
	sec_tpm_close(t);
}
END_TEST

/* A command that gave up on slots that stayed full: its close flushes
 * what dead processes left, so the next operation works; a close after
 * commands that did not give up leaves the TPM as it is. */
START_TEST(a_close_after_full_slots_reclaims)
{
	struct sec_tpm *t = open_tpm();
	struct sec_cache *c = new_cache(256);
	unsigned objs = 9, sess = 9;
	char err[512];

	seal(t, "full", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	sec_tpm_close_reclaim(t, &objs, &sess);
	ck_assert_uint_eq(objs, 0);	/* nothing gave up */
	ck_assert_uint_eq(sess, 0);
	fill_object_slots();
	t = open_tpm();
	ck_assert_int_eq(sec_unseal(t, store, "full", NULL, 0, c, err,
	    sizeof(err)), WD_ETPM);
	ck_assert_msg(strstr(err, "0x902") != NULL, "%s", err);
	sec_tpm_close_reclaim(t, &objs, &sess);
	ck_assert_uint_eq(objs, 3);
	ck_assert_uint_eq(sess, 0);
	ck_assert_int_eq(loaded_objects(), 0);
	t = open_tpm();
	unseal_eq(t, "full", VALUE, strlen(VALUE));
	sec_tpm_close(t);
	sec_cache_free(c);
}
END_TEST

/* An object another process flushes within the wait is its own: it is
 * not counted, and reclaiming does not touch it. */
START_TEST(an_object_in_use_is_not_reclaimed)
{
	unsigned objs = 9, sess = 9;
	char err[512];

	leave_objects(1);
	ck_assert_int_eq(sh("(sleep 0.5; TPM2TOOLS_TCTI='%s' tpm2_flushcontext "
	    "-t) >/dev/null 2>&1 &", tcti), 0);
	ck_assert_msg(sec_tpm_reclaim(tcti, &objs, &sess, err,
	    sizeof(err)) == WD_OK, "%s", err);
	ck_assert_uint_eq(objs, 0);
	ck_assert_uint_eq(sess, 0);
}
END_TEST

/* Workers unsealing while the audit writer signs, each with its own
 * context, as a gateway's threads and paykeys could. */
struct tpm_user {
	bool signer;
	int fails;
	char err[512];
};

static void *
tpm_user_run(void *arg)
{
	static const unsigned char auth[] = "busy-test-auth";
	struct tpm_user *u = arg;
	unsigned char digest[32] = { 1 }, sig[SEC_SIG_MAX];

	for (int i = 0; i < 12; i++) {
		struct sec_cache *c = NULL;
		struct sec_tpm *t = NULL;
		size_t siglen = sizeof(sig);
		enum wd_err e;

		e = sec_tpm_open(tcti, &t, u->err, sizeof(u->err));
		if (e == WD_OK && u->signer)
			e = sec_sign_digest(t, store, auth, sizeof(auth) - 1, digest,
			    sig, &siglen, u->err, sizeof(u->err));
		else if (e == WD_OK &&
		    (e = sec_cache_new(256, &c, u->err, sizeof(u->err))) == WD_OK)
			e = sec_unseal(t, store, "shared", NULL, 0, c, u->err,
			    sizeof(u->err));
		sec_cache_free(c);
		sec_tpm_close(t);
		if (e != WD_OK)
			u->fails++;
	}
	return NULL;
}

START_TEST(threads_of_one_process_share_the_tpm)
{
	static const unsigned char auth[] = "busy-test-auth";
	struct tpm_user u[4] = { { .signer = true } };
	pthread_t th[4];
	struct sec_tpm *t = open_tpm();
	char err[512];
	bool created;

	seal(t, "shared", VALUE, strlen(VALUE), NULL, SEC_CREATE);
	ck_assert_msg(sec_sign_key_ensure(t, store, auth, sizeof(auth) - 1, NULL,
	    &created, err, sizeof(err)) == WD_OK, "%s", err);
	sec_tpm_close(t);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, tpm_user_run, &u[i]),
		    0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(u[i].fails == 0, "%s %d: %d failed: %s",
		    u[i].signer ? "signer" : "unsealer", i, u[i].fails, u[i].err);
	assert_tpm_empty();
}
END_TEST

Suite *
suite_secrets(void)
{
	Suite *s = suite_create("secrets");
	TCase *tpm = tcase_create("tpm");
	TCase *plain = tcase_create("no tpm");

	tcase_add_unchecked_fixture(tpm, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tpm, tpm_setup, tpm_teardown);
	tcase_set_timeout(tpm, 60);
	tcase_add_test(tpm, round_trip_short);
	tcase_add_test(tpm, round_trip_16k);
	tcase_add_test(tpm, unseal_after_swtpm_restart);
	tcase_add_test(tpm, blob_from_another_tpm_fails_integrity);
	tcase_add_test(tpm, modified_or_swapped_blobs_fail);
	tcase_add_test(tpm, pcr_binding_breaks_when_pcr_changes);
	tcase_add_test(tpm, wrong_auth_fails);
	tcase_add_test(tpm, tpm_gone_is_a_clean_error);
	tcase_add_test(tpm, unsafe_store_permissions_refused);
	tcase_add_test(tpm, rotate_is_atomic);
#ifndef __SANITIZE_ADDRESS__
	tcase_add_test(tpm, no_plaintext_left_outside_the_cache);
	tcase_add_test(tpm, no_credential_left_after_transfers);
	tcase_add_test(tpm, payload_keys_and_text_stay_in_locked_memory);
#endif
	tcase_add_test(tpm, objects_are_flushed);
	tcase_add_test(tpm, tpm2_tools_unseal_the_data_key);
	tcase_add_test(tpm, audit_signing_key);
	tcase_add_test(tpm, tpm2_sign_needs_the_auth_value);
	tcase_add_test(tpm, signing_key_without_auth_is_refused);
	tcase_add_test(tpm, signing_key_bound_to_pcrs);
	tcase_add_test(tpm, counter_counts_up_only);
	tcase_add_test(tpm, counter_refuses_an_ordinary_index);
	tcase_add_test(tpm, events_reach_the_hook);
	tcase_add_test(tpm, data_key_destroyed_for_every_copy);
	tcase_add_test(tpm, expired_months_keys_are_destroyed_and_recorded);
	tcase_add_test(tpm, slots_held_by_another_process_are_waited_for);
	tcase_add_test(tpm, a_full_tpm_is_a_clear_error_and_nothing_is_unsealed);
	tcase_add_test(tpm, what_dead_processes_left_is_reclaimed);
	tcase_add_test(tpm, an_object_in_use_is_not_reclaimed);
	tcase_add_test(tpm, a_close_after_full_slots_reclaims);
	tcase_add_test(tpm, threads_of_one_process_share_the_tpm);
	suite_add_tcase(s, tpm);

	tcase_add_test(plain, pcr_spec_parsing);
	tcase_add_test(plain, counter_index_parsing);
	tcase_add_test(plain, tcti_is_required);
	tcase_add_test(plain, names_are_validated);
	tcase_add_test(plain, cache_locks_and_wipes);
	tcase_add_test(plain, harden_process);
	suite_add_tcase(s, plain);
	return s;
}
