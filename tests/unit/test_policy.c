/*
 * test_policy.c - policy/: pol_load on small rules files, and the queries
 * the gateway makes against a snapshot.
 *
 * Error tests compare the whole error stream, "FILE:LINE:COL: message"
 * lines and the closing count, because that text is the interface an
 * operator sees.  In expected text '@' stands for the temp file's path.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/pol_int.h"
#include "tests/unit/suites.h"

#define HEX_A "0123456789abcdef0123456789abcdef" \
	      "0123456789abcdef0123456789abcdef"
#define HEX_B "fedcba9876543210fedcba9876543210" \
	      "fedcba9876543210fedcba9876543210"

/* One provider, lines 2-7; files that need more append to it. */
#define PROVIDER \
	"version: 1\n" \
	"providers:\n" \
	"  - id: p1\n" \
	"    base_url: https://a.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m]\n"

static const char minimal[] =
    "version: 1\n"
    "providers:\n"
    "  - id: p1\n"
    "    base_url: https://api.example.com/v1//\n"
    "    country: IE\n"
    "    credential: cred-p1\n"
    "    models: [gpt-4o, gpt-4o-mini]\n"
    "tenants:\n"
    "  - id: t1\n"
    "    keys: [\"sha256:" HEX_A "\"]\n"
    "    routes: [p1]\n";

/* Load text and expect it refused with exactly these errors. */
static void
expect_errors(const char *text, enum wd_err rc, const char *tmpl)
{
	struct ut_ld l;
	char *want;

	ut_load_text(&l, text, 0600);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == rc, "rc %d (%s), want %d; errors:\n%s", l.rc,
	    wd_strerror(l.rc), rc, l.errs);
	ck_assert_ptr_null(l.snap);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
}

/* As expect_errors, for the first line(s) only. */
static void
expect_errors_start(const char *text, enum wd_err rc, const char *tmpl)
{
	struct ut_ld l;
	char *want;

	ut_load_text(&l, text, 0600);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == rc, "rc %d (%s), want %d; errors:\n%s", l.rc,
	    wd_strerror(l.rc), rc, l.errs);
	ck_assert_msg(strncmp(l.errs, want, strlen(want)) == 0,
	    "errors:\n%s\nwant them to start with:\n%s", l.errs, want);
	free(want);
	ut_ld_done(&l);
}

/* ---- files that load ---- */

START_TEST(minimal_file_loads)
{
	struct ut_ld l;
	const struct pol_provider *p;
	const struct pol_tenant *t;
	unsigned char want[32];

	ut_load_text(&l, minimal, 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_str_eq(l.errs, "");
	ck_assert_ptr_nonnull(l.snap);
	ck_assert_int_eq(atomic_load(&l.snap->refs), 1);
	ck_assert_str_eq(l.snap->path, l.path);
	ck_assert_uint_eq(strlen(l.snap->version), 64);
	ck_assert_uint_eq(strspn(l.snap->version, "0123456789abcdef"), 64);

	ck_assert_uint_eq(l.snap->nproviders, 1);
	p = &l.snap->providers[0];
	ck_assert_str_eq(p->id, "p1");
	ck_assert_str_eq(p->api, "openai");
	ck_assert_str_eq(p->base_url, "https://api.example.com/v1");
	ck_assert_str_eq(p->country, "IE");
	ck_assert(!p->zdr);
	ck_assert_int_eq(p->retention_days, -1);
	ck_assert_str_eq(p->credential, "cred-p1");
	ck_assert_uint_eq(p->nmodels, 2);
	ck_assert_str_eq(p->models[0], "gpt-4o");
	ck_assert_str_eq(p->models[1], "gpt-4o-mini");

	ck_assert_uint_eq(l.snap->ntenants, 1);
	t = &l.snap->tenants[0];
	ck_assert_str_eq(t->id, "t1");
	ck_assert_uint_eq(t->nkeys, 1);
	ck_assert_int_eq(wd_unhex(HEX_A, want, 32), WD_OK);
	ck_assert_mem_eq(t->keys[0], want, 32);
	ck_assert_uint_eq(t->nroutes, 1);
	ck_assert_ptr_eq(t->routes[0], p);

	/* Defaults for everything the file leaves out. */
	ck_assert_ptr_null(l.snap->server.listen);
	ck_assert_int_eq(l.snap->server.workers, 0);
	ck_assert_uint_eq(l.snap->server.max_body_bytes, 1u << 20);
	ck_assert_uint_eq(l.snap->server.max_header_bytes, 32u << 10);
	ck_assert_uint_eq(l.snap->server.max_headers, 100);
	ck_assert_int_eq(l.snap->upstream.max_attempts, 3);
	ck_assert_uint_eq(l.snap->upstream.max_sse_event_bytes, 1u << 20);
	ck_assert_uint_eq(l.snap->ndevcreds, 0);
	ut_ld_done(&l);
}
END_TEST

/* Write text to dir/name with mode 0600. */
static void
write_at(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fchmod(fileno(f), 0600), 0);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Load dir/main.yaml; errors come back with the directory as '@'. */
static void
load_main(const char *dir, struct ut_ld *l)
{
	memset(l, 0, sizeof(*l));
	ck_assert_int_ge(asprintf(&l->path, "%s/main.yaml", dir), 0);
	ut_load_path(l);
}

static void
rm_dir(const char *dir)
{
	static const char *const names[] = { "main.yaml", "inc.yaml" };
	char path[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* The version of a policy, or fail. */
static void
version_of(const char *text, char out[65])
{
	struct ut_ld l;

	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	memcpy(out, l.snap->version, 65);
	ut_ld_done(&l);
}

/*
 * policy_version names what the policy decides: formatting, comments and
 * key order do not change it, process settings and credential values do
 * not either; a model or a route does.
 */
START_TEST(policy_version_is_canonical)
{
	char base[65], v[65];

	version_of(minimal, base);
	version_of(
	    "# the same policy, written differently\n"
	    "tenants:\n"
	    "- routes: [ p1 ]\n"
	    "  keys:\n"
	    "  - \"sha256:" HEX_A "\"\n"
	    "  id: t1\n"
	    "providers:\n"
	    "- {models: [gpt-4o, gpt-4o-mini], credential: cred-p1, country: IE,\n"
	    "   base_url: \"https://api.example.com/v1\", id: p1}\n"
	    "version: 1   # trailing comment\n", v);
	ck_assert_str_eq(v, base);
	/* Process settings and dev credential values are not policy. */
	{
		char text[2048];

		snprintf(text, sizeof(text), "%s%s", minimal,
		    "server:\n  workers: 4\n"
		    "dev_credentials:\n  cred-p1: sk-anything\n");
		version_of(text, v);
		ck_assert_str_eq(v, base);
	}
	version_of(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://api.example.com/v1//\n"
	    "    country: IE\n"
	    "    credential: cred-p1\n"
	    "    models: [gpt-4o]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys: [\"sha256:" HEX_A "\"]\n"
	    "    routes: [p1]\n", v);
	ck_assert_str_ne(v, base);
	version_of(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://api.example.com/v1//\n"
	    "    country: DE\n"
	    "    credential: cred-p1\n"
	    "    models: [gpt-4o, gpt-4o-mini]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys: [\"sha256:" HEX_A "\"]\n"
	    "    routes: [p1]\n", v);
	ck_assert_str_ne(v, base);
	/* Nor does splitting the policy into files. */
	{
		char dir[] = "/tmp/warden-unit-inc-XXXXXX";
		struct ut_ld l;

		ck_assert_ptr_nonnull(mkdtemp(dir));
		write_at(dir, "main.yaml",
		    "version: 1\n"
		    "include: inc.yaml\n"
		    "tenants:\n"
		    "  - id: t1\n"
		    "    keys: [\"sha256:" HEX_A "\"]\n"
		    "    routes: [p1]\n");
		write_at(dir, "inc.yaml",
		    "providers:\n"
		    "  - id: p1\n"
		    "    base_url: https://api.example.com/v1\n"
		    "    country: IE\n"
		    "    credential: cred-p1\n"
		    "    models: [gpt-4o, gpt-4o-mini]\n");
		load_main(dir, &l);
		ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
		ck_assert_str_eq(l.snap->version, base);
		ut_ld_done(&l);
		rm_dir(dir);
	}
}
END_TEST

START_TEST(settings_are_read)
{
	struct ut_ld l;

	ut_load_text(&l, PROVIDER
	    "    retention: { zdr: true, days: 0 }\n"
	    "server:\n"
	    "  listen: 127.0.0.1:9999\n"
	    "  workers: 3\n"
	    "  max_body_bytes: 2048\n"
	    "  max_header_bytes: 4096\n"
	    "  max_headers: 8\n"
	    "  header_timeout_ms: 100\n"
	    "  shutdown_grace_ms: 0\n"
	    "upstream:\n"
	    "  max_attempts: 16\n"
	    "  max_sse_event_bytes: 1024\n"
	    "dev_credentials:\n"
	    "  c: sk-dev\n", 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_str_eq(l.snap->server.listen, "127.0.0.1:9999");
	ck_assert_int_eq(l.snap->server.workers, 3);
	ck_assert_uint_eq(l.snap->server.max_body_bytes, 2048);
	ck_assert_uint_eq(l.snap->server.max_header_bytes, 4096);
	ck_assert_uint_eq(l.snap->server.max_headers, 8);
	ck_assert_int_eq(l.snap->server.header_timeout_ms, 100);
	ck_assert_int_eq(l.snap->server.shutdown_grace_ms, 0);
	ck_assert_int_eq(l.snap->upstream.max_attempts, 16);
	ck_assert_uint_eq(l.snap->upstream.max_sse_event_bytes, 1024);
	ck_assert(l.snap->providers[0].zdr);
	ck_assert_int_eq(l.snap->providers[0].retention_days, 0);
	ck_assert_str_eq(pol_devcred(l.snap, "c"), "sk-dev");
	ck_assert_ptr_null(pol_devcred(l.snap, "d"));
	ut_ld_done(&l);
}
END_TEST

/* audit.witness and audit.counter_nv_index (issue 11). */
START_TEST(witness_and_counter_are_read)
{
	struct ut_ld l;

	ut_load_text(&l, PROVIDER
	    "audit:\n"
	    "  counter_nv_index: 0x01800b00\n"
	    "  witness:\n"
	    "    syslog: tcp://[::1]:6514\n"
	    "    url: https://witness.example/checkpoints\n"
	    "    ca_file: /etc/warden/witness-ca.pem\n", 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_eq(l.snap->audit.counter_nv_index, 0x01800b00u);
	ck_assert_str_eq(l.snap->audit.witness.syslog, "tcp://[::1]:6514");
	ck_assert_str_eq(l.snap->audit.witness.url,
	    "https://witness.example/checkpoints");
	ck_assert_str_eq(l.snap->audit.witness.ca_file,
	    "/etc/warden/witness-ca.pem");
	ut_ld_done(&l);
	ut_load_text(&l, PROVIDER, 0600);
	ck_assert_uint_eq(l.snap->audit.counter_nv_index, 0x01800a0du);
	ck_assert_ptr_null(l.snap->audit.witness.syslog);
	ut_ld_done(&l);
	ut_load_text(&l, PROVIDER "audit:\n  counter_nv_index: none\n"
	    "secrets:\n  sign_pcrs: sha256:7,23\n", 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_eq(l.snap->audit.counter_nv_index, 0);
	ck_assert_str_eq(l.snap->secrets.sign_pcrs, "sha256:7,23");
	ut_ld_done(&l);
}
END_TEST

START_TEST(witness_errors_say_where)
{
	expect_errors(
	    "version: 1\n"
	    "audit:\n"
	    "  counter_nv_index: 0x81000001\n"
	    "  witness:\n"
	    "    syslog: udp://127.0.0.1\n"
	    "    url: ftp://x\n"
	    "    sislog: x\n", WD_ECONFIG,
	    "@:3:21: audit.counter_nv_index '0x81000001' must be none or an NV "
	    "index in hex, 0x01000000 to 0x01bfffff (the owner range is "
	    "0x01800000 to 0x01bfffff)\n"
	    "@:7:5: unknown key 'sislog' in audit.witness (did you mean "
	    "'syslog'?)\n"
	    "@:5:13: audit.witness.syslog 'udp://127.0.0.1' must be "
	    "udp://HOST:PORT, tcp://HOST:PORT or unix:/PATH (under 108 bytes)\n"
	    "@:6:10: audit.witness.url 'ftp://x' must be an http:// or https:// "
	    "URL without spaces (at most 2048 bytes)\n"
	    "@: 4 errors\n");
	expect_errors(
	    "version: 1\n"
	    "audit:\n"
	    "  witness:\n"
	    "    syslog: tcp://h:0\n"
	    "    ca_file: /x\n", WD_ECONFIG,
	    "@:4:13: audit.witness.syslog 'tcp://h:0' must be udp://HOST:PORT, "
	    "tcp://HOST:PORT or unix:/PATH (under 108 bytes)\n"
	    "@:4:5: audit.witness.ca_file is set but url is not\n"
	    "@: 2 errors\n");
	expect_errors(
	    "version: 1\n"
	    "secrets:\n"
	    "  sign_pcrs: sha256:x\n", WD_ECONFIG,
	    "@:3:14: secrets.sign_pcrs 'sha256:x' must be like sha256:7,23 "
	    "(banks sha1, sha256, sha384, sha512 joined by '+')\n"
	    "@: 1 error\n");
}
END_TEST

/* The demo rules, with the demo keys its comment documents. */
START_TEST(example_rules_load)
{
	static const struct {
		const char *key, *tenant;
	} demo[] = {
		{ "wk-demo-acme-health", "acme-health" },
		{ "wk-demo-acme-research", "acme-research" },
		{ "wk-demo-first-bank", "first-bank" },
		{ "wk-demo-sakura-retail", "sakura-retail" },
		{ "wk-demo-globex-travel", "globex-travel" },
	};
	static char text[65536];
	size_t n;
	FILE *f = fopen("rules/example.yaml", "r");
	struct ut_ld l;

	ck_assert_msg(f != NULL, "rules/example.yaml: %s (run from the "
	    "repository root)", strerror(errno));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	ck_assert_uint_lt(n, sizeof(text) - 1);
	text[n] = '\0';
	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_ge(l.snap->nproviders, 1);
	/* Credentials live in the TPM store: every route names one, and the
	 * example holds no plain-text credential. */
	for (size_t i = 0; i < l.snap->nproviders; i++)
		ck_assert_msg(l.snap->providers[i].credential != NULL,
		    "no credential for %s", l.snap->providers[i].id);
	ck_assert_uint_eq(l.snap->ndevcreds, 0);
	ck_assert_ptr_nonnull(l.snap->secrets.tcti);
	for (size_t i = 0; i < sizeof(demo) / sizeof(demo[0]); i++) {
		unsigned char d[32];
		const struct pol_tenant *t;

		wd_sha256(demo[i].key, strlen(demo[i].key), d);
		t = pol_find_key(l.snap, d);
		ck_assert_msg(t != NULL, "demo key %s not found", demo[i].key);
		ck_assert_str_eq(t->id, demo[i].tenant);
		ck_assert_uint_ge(t->nroutes, 1);
	}
	ut_ld_done(&l);
}
END_TEST

START_TEST(readable_by_others_is_fine)
{
	struct ut_ld l;

	ut_load_text(&l, minimal, 0644);
	ck_assert_int_eq(l.rc, WD_OK);
	ut_ld_done(&l);
}
END_TEST

/* The caps, metrics keys and upstream.proxy: defaults, values, the
 * proxy in the policy version, and a proxy with a password refused. */
START_TEST(caps_and_proxy_are_read)
{
	struct ut_ld l;
	char v0[65];

	ut_load_text(&l, PROVIDER, 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_eq(l.snap->server.max_connections, 512);
	ck_assert_uint_eq(l.snap->server.max_inflight, 128);
	ck_assert_uint_eq(l.snap->server.max_inflight_per_key, 64);
	ck_assert_uint_eq(l.snap->server.max_json_values, 50000);
	ck_assert_uint_eq(l.snap->server.nmetrics_keys, 0);
	ck_assert_ptr_null(l.snap->upstream.proxy);
	ck_assert(!l.snap->upstream.curl_only);
	memcpy(v0, l.snap->version, sizeof(v0));
	ut_ld_done(&l);
	ut_load_text(&l, PROVIDER
	    "server:\n"
	    "  max_connections: 10\n"
	    "  max_inflight: 5\n"
	    "  max_inflight_per_key: 2\n"
	    "  max_json_values: 100\n"
	    "  metrics_keys: [\"sha256:" HEX_A "\"]\n"
	    "upstream:\n"
	    "  proxy: http://127.0.0.1:3128\n", 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_eq(l.snap->server.max_connections, 10);
	ck_assert_uint_eq(l.snap->server.max_inflight, 5);
	ck_assert_uint_eq(l.snap->server.max_inflight_per_key, 2);
	ck_assert_uint_eq(l.snap->server.max_json_values, 100);
	ck_assert_uint_eq(l.snap->server.nmetrics_keys, 1);
	ck_assert_str_eq(l.snap->upstream.proxy, "http://127.0.0.1:3128");
	/* Where requests travel through is policy. */
	ck_assert_str_ne(l.snap->version, v0);
	ut_ld_done(&l);
	expect_errors(PROVIDER
	    "upstream:\n"
	    "  proxy: http://user:pw@proxy.example:3128\n", WD_ECONFIG,
	    "@:9:10: upstream.proxy must be http(s)://HOST:PORT, without user "
	    "or password\n"
	    "@: 1 error\n");
	expect_errors(PROVIDER
	    "upstream:\n"
	    "  proxy: socks5://proxy.example:1080\n", WD_ECONFIG,
	    "@:9:10: upstream.proxy must be an http:// or https:// URL\n"
	    "@: 1 error\n");
	/* Who speaks plain http: warden's own client unless told. */
	ut_load_text(&l, PROVIDER
	    "upstream:\n"
	    "  http_client: curl\n", 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert(l.snap->upstream.curl_only);
	ut_ld_done(&l);
	expect_errors(PROVIDER
	    "upstream:\n"
	    "  http_client: wget\n", WD_ECONFIG,
	    "@:9:16: upstream.http_client must be warden or curl, not 'wget'\n"
	    "@: 1 error\n");
}
END_TEST

/* ---- each error, where it is ---- */

START_TEST(unknown_key_did_you_mean)
{
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    credential: c\n"
	    "    modles: [m]\n", WD_ECONFIG,
	    "@:7:5: unknown key 'modles' in provider (did you mean 'models'?)\n"
	    "@:3:5: provider 'p1' without 'models'\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(unknown_key_in_server)
{
	expect_errors(
	    "version: 1\n"
	    "server:\n"
	    "  listn: 127.0.0.1:80\n", WD_ECONFIG,
	    "@:3:3: unknown key 'listn' in server (did you mean 'listen'?)\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(unknown_key_without_hint)
{
	expect_errors(
	    "version: 1\n"
	    "colour: red\n", WD_ECONFIG,
	    "@:2:1: unknown key 'colour' in the rules file\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(duplicate_key)
{
	expect_errors(
	    "version: 1\n"
	    "version: 1\n", WD_ECONFIG,
	    "@:2:1: duplicate key 'version' in the rules file\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(mapping_where_list_expected)
{
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    credential: c\n"
	    "    models: {gpt-4o: yes}\n", WD_ECONFIG,
	    "@:7:13: models must be a list, not a mapping\n"
	    "@: 1 error\n");
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  p1: x\n", WD_ECONFIG,
	    "@:3:3: providers must be a list, not a mapping\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(scalar_where_mapping_expected)
{
	expect_errors(
	    "version: 1\n"
	    "server: fast\n", WD_ECONFIG,
	    "@:2:9: server must be a mapping, not a scalar\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(invalid_country)
{
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: XX\n"
	    "    credential: c\n"
	    "    models: [m]\n", WD_ECONFIG,
	    "@:5:14: 'XX' is not an ISO 3166-1 alpha-2 country code\n"
	    "@: 1 error\n");
	/* Codes are upper case; "UK" and "EU" are not assigned. */
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: ie\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "  - id: p2\n"
	    "    base_url: https://a.example\n"
	    "    country: UK\n"
	    "    credential: c\n"
	    "    models: [m]\n", WD_ECONFIG,
	    "@:5:14: 'ie' is not an ISO 3166-1 alpha-2 country code\n"
	    "@:10:14: 'UK' is not an ISO 3166-1 alpha-2 country code\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(country_table)
{
	ck_assert(pol_country_valid("AD"));
	ck_assert(pol_country_valid("DE"));
	ck_assert(pol_country_valid("US"));
	ck_assert(pol_country_valid("ZW"));
	ck_assert(!pol_country_valid("ZZ"));
	ck_assert(!pol_country_valid("EU"));
	ck_assert(!pol_country_valid("D"));
	ck_assert(!pol_country_valid("DEU"));
	ck_assert(!pol_country_valid(""));
	ck_assert(!pol_country_valid("de"));
}
END_TEST

START_TEST(unknown_route)
{
	expect_errors(PROVIDER
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [p1, p2, openai-eu]\n", WD_ECONFIG,
	    "@:10:18: tenant 't1' names unknown route 'p2' (did you mean "
	    "'p1'?)\n"
	    "@:10:22: tenant 't1' names unknown route 'openai-eu'\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(provider_without_credential)
{
	expect_errors(
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    models: [m]\n", WD_ECONFIG,
	    "@:3:5: provider 'p1' without 'credential'\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(bad_key_format)
{
	expect_errors(PROVIDER
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys:\n"
	    "      - sha256:abc\n"
	    "      - md5:" HEX_A "\n"
	    "      - sha256:" HEX_A "0\n"
	    "      - sha256:g123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef\n"
	    "      - sha256:" HEX_B "\n"
	    "    routes: [p1]\n", WD_ECONFIG,
	    "@:11:9: key must be 'sha256:' and 64 hex digits (make one with "
	    "'warden keys new')\n"
	    "@:12:9: key must be 'sha256:' and 64 hex digits (make one with "
	    "'warden keys new')\n"
	    "@:13:9: key must be 'sha256:' and 64 hex digits (make one with "
	    "'warden keys new')\n"
	    "@:14:9: key must be 'sha256:' and 64 hex digits (make one with "
	    "'warden keys new')\n"
	    "@: 4 errors\n");
}
END_TEST

static const char dup_provider[] =
    PROVIDER
    "  - id: p1\n"
    "    base_url: https://b.example\n"
    "    country: DE\n"
    "    credential: d\n"
    "    models: [m]\n";

START_TEST(duplicate_provider_id)
{
	struct ut_ld l;

	ut_load_text(&l, dup_provider, 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_msg(strstr(l.errs, ": provider id 'p1' is used twice\n") !=
	    NULL, "errors:\n%s", l.errs);
	ck_assert_msg(strstr(l.errs, ": 1 error\n") != NULL, "errors:\n%s",
	    l.errs);
	ut_ld_done(&l);
}
END_TEST

/*
 * Say where: the second provider (line 8), as for tenants and rules.
 * (Once reported with no place at all, "FILE: provider id ...".)
 */
START_TEST(duplicate_provider_id_location)
{
	expect_errors_start(dup_provider, WD_ECONFIG,
	    "@:8:");
}
END_TEST

START_TEST(duplicate_tenant_and_shared_key)
{
	struct ut_ld l;

	ut_load_text(&l, PROVIDER
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys: [\"sha256:" HEX_A "\"]\n"
	    "    routes: [p1]\n"
	    "  - id: t2\n"
	    "    keys: [\"sha256:" HEX_A "\"]\n"
	    "    routes: [p1]\n"
	    "  - id: t1\n"
	    "    routes: [p1]\n", 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	{
		char *want = ut_expand(
		    "@:15:5: tenant id 't1' is used twice\n"
		    "@:12:5: tenants 't1' and 't2' share a key\n"
		    "@: 2 errors\n", l.path);

		ck_assert_str_eq(l.errs, want);
		free(want);
	}
	ut_ld_done(&l);
}
END_TEST

START_TEST(integer_out_of_range)
{
	expect_errors(
	    "version: 1\n"
	    "server:\n"
	    "  workers: 257\n"
	    "  max_body_bytes: 10\n"
	    "upstream:\n"
	    "  max_attempts: 0\n", WD_ECONFIG,
	    "@:3:12: workers must be between 0 and 256, not 257\n"
	    "@:4:19: max_body_bytes must be between 1024 and 1073741824, not 10\n"
	    "@:6:17: max_attempts must be between 1 and 16, not 0\n"
	    "@: 3 errors\n");
}
END_TEST

START_TEST(integer_malformed)
{
	expect_errors(
	    "version: 2\n"
	    "server:\n"
	    "  workers: many\n"
	    "  max_headers: 99999999999999999999\n"
	    "  header_timeout_ms: 1e3\n", WD_ECONFIG,
	    "@:1:10: version must be between 1 and 1, not 2\n"
	    "@:3:12: workers must be an integer, not 'many'\n"
	    "@:4:16: max_headers must be an integer, not '99999999999999999999'\n"
	    "@:5:22: header_timeout_ms must be an integer, not '1e3'\n"
	    "@: 4 errors\n");
}
END_TEST

START_TEST(missing_version)
{
	expect_errors(
	    "server:\n"
	    "  workers: 1\n", WD_ECONFIG,
	    "@:1:1: missing 'version: 1'\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(yaml_syntax_error)
{
	/* A tab may not indent. */
	expect_errors_start(
	    "version: 1\n"
	    "server:\n"
	    "\tlisten: x\n", WD_ECONFIG,
	    "@:3:1: found character that cannot start any token\n");
	expect_errors_start(
	    "version: 1\n"
	    "server: a: b\n", WD_ECONFIG,
	    "@:2:10: mapping values are not allowed in this context\n");
}
END_TEST

/*
 * Bytes libyaml's reader refuses (control characters, bad UTF-8) must be
 * reported where they are.  libyaml leaves problem_mark at 0:0 for
 * reader errors (it sets problem_offset instead); printing the mark said
 * 1:1 for all of them.
 */
START_TEST(yaml_encoding_error_location)
{
	expect_errors_start(
	    "version: 1\n"
	    "server:\n"
	    "  listen: a\001b\n", WD_ECONFIG,
	    "@:3:12: control characters are not allowed\n");
	expect_errors_start(
	    "version: 1\n"
	    "server:\n"
	    "  listen: caf\351\n", WD_ECONFIG,
	    "@:3:14: ");
}
END_TEST

START_TEST(jurisdiction_errors)
{
	expect_errors(
	    "version: 1\n"
	    "jurisdictions:\n"
	    "  AAA: [BBB]\n"
	    "  BBB: [AAA, DE]\n"
	    "  DE: [FR]\n"
	    "  CCC: [XX, EUU]\n"
	    "  EUR: [FR]\n", WD_ECONFIG,
	    "@:5:3: jurisdiction name 'DE' is a country code; choose another "
	    "name\n"
	    "@:4:9: jurisdiction 'BBB' contains itself (through 'AAA')\n"
	    "@:6:9: 'XX' is neither an ISO 3166-1 alpha-2 country code nor a "
	    "jurisdiction\n"
	    "@:6:13: unknown jurisdiction 'EUU' (did you mean 'EUR'?)\n"
	    "@: 4 errors\n");
}
END_TEST

START_TEST(rule_errors)
{
	expect_errors(
	    "version: 1\n"
	    "data_classes: [personal, health]\n"
	    "jurisdictions:\n"
	    "  EUR: [IE, DE]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: []\n"
	    "rules:\n"
	    "  - id: r1\n"
	    "    when: { data_class: [helth], subject_region: EUX, tenant: [t2] }\n"
	    "    require: { provider_country: [EUR, ZZ] }\n"
	    "  - id: r2\n"
	    "    when: { data_class: personal }\n", WD_ECONFIG,
	    "@:12:5: rule 'r2' requires nothing and keeps nothing (give "
	    "'require' or 'keep')\n"
	    "@:10:26: unknown data class 'helth' (did you mean 'health'?)\n"
	    "@:10:50: unknown jurisdiction or country 'EUX' (did you mean "
	    "'EUR'?)\n"
	    "@:11:40: unknown jurisdiction or country 'ZZ'\n"
	    "@:10:64: unknown tenant 't2' (did you mean 't1'?)\n"
	    "@: 5 errors\n");
}
END_TEST

START_TEST(several_errors_all_reported)
{
	expect_errors(
	    "version: 1\n"
	    "tenant:\n"
	    "  - id: x\n"
	    "server:\n"
	    "  workers: -1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: ftp://a.example\n"
	    "    country: ie\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [nope]\n", WD_ECONFIG,
	    "@:2:1: unknown key 'tenant' in the rules file (did you mean "
	    "'tenants'?)\n"
	    "@:5:12: workers must be between 0 and 256, not -1\n"
	    "@:8:15: base_url must start with http:// or https://\n"
	    "@:9:14: 'ie' is not an ISO 3166-1 alpha-2 country code\n"
	    "@:14:14: tenant 't1' names unknown route 'nope'\n"
	    "@: 5 errors\n");
}
END_TEST

START_TEST(dev_credential_not_echoed)
{
	struct ut_ld l;

	ut_load_text(&l,
	    "version: 1\n"
	    "dev_credentials:\n"
	    "  c1: [sk-secret-value]\n", 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_ptr_null(strstr(l.errs, "sk-secret"));
	ut_ld_done(&l);
	expect_errors(
	    "version: 1\n"
	    "dev_credentials:\n"
	    "  c1: [sk-secret-value]\n", WD_ECONFIG,
	    "@:3:7: dev credential 'c1' must be a non-empty string\n"
	    "@: 1 error\n");
}
END_TEST

/*
 * A rules file is one YAML document.  Loading only the first one would
 * accept a file split by '---' without its second half, so anything
 * after the first document must be refused.
 */
START_TEST(second_document_refused)
{
	struct ut_ld l;

	ut_load_text(&l, PROVIDER
	    "---\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [nope]\n", 0600);
	ck_assert_msg(l.rc == WD_ECONFIG, "rc %d (%s): the second document "
	    "was silently ignored", l.rc, wd_strerror(l.rc));
	ut_ld_done(&l);
}
END_TEST

START_TEST(root_not_a_mapping)
{
	expect_errors_start("- a\n- b\n", WD_ECONFIG,
	    "@:1:1: a rules file must be a mapping, not a list\n");
}
END_TEST

START_TEST(empty_file)
{
	expect_errors("", WD_ECONFIG, "@: empty rules file\n");
	expect_errors("# only a comment\n", WD_ECONFIG, "@: empty rules file\n");
}
END_TEST

/* ---- the file itself ---- */

START_TEST(group_writable_refused)
{
	static const unsigned modes[] = { 0620, 0602, 0666 };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct ut_ld l;
		char *want;

		ut_load_text(&l, minimal, modes[i]);
		ck_assert_int_eq(l.rc, WD_EPERM);
		ck_assert_ptr_null(l.snap);
		want = ut_expand("@: writable by group or others; refusing it "
		    "(chmod go-w @)\n", l.path);
		ck_assert_str_eq(l.errs, want);
		free(want);
		ut_ld_done(&l);
	}
}
END_TEST

START_TEST(file_over_size_limit)
{
	struct ut_ld l;
	char *want;
	int fd;

	memset(&l, 0, sizeof(l));
	l.path = ut_write_rules("version: 1\n", 0600);
	fd = open(l.path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)POL_MAX_FILE_BYTES + 1), 0);
	close(fd);
	ut_load_path(&l);
	ck_assert_int_eq(l.rc, WD_ELIMIT);
	want = ut_expand("@: larger than 8388608 bytes\n", l.path);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
}
END_TEST

START_TEST(missing_file)
{
	struct ut_ld l;

	memset(&l, 0, sizeof(l));
	l.path = strdup("/nonexistent/warden-rules.yaml");
	ut_load_path(&l);
	ck_assert_int_eq(l.rc, WD_EIO);
	ck_assert_str_eq(l.errs, "/nonexistent/warden-rules.yaml: cannot open: "
	    "No such file or directory\n");
	free(l.path);
	l.path = strdup("/tmp");
	free(l.errs);
	ut_load_path(&l);
	ck_assert_int_eq(l.rc, WD_EIO);
	ck_assert_str_eq(l.errs, "/tmp: not a regular file\n");
	free(l.path);
	l.path = NULL;
	ut_ld_done(&l);
}
END_TEST

/* ---- includes ---- */

START_TEST(include_loads_and_resolves)
{
	char dir[] = "/tmp/warden-unit-inc-XXXXXX";
	struct ut_ld l;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_at(dir, "main.yaml",
	    "version: 1\n"
	    "include: inc.yaml\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [p1]\n");
	write_at(dir, "inc.yaml",
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    credential: c\n"
	    "    models: [m]\n");
	load_main(dir, &l);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_eq(l.snap->nproviders, 1);
	ck_assert_ptr_eq(l.snap->tenants[0].routes[0], &l.snap->providers[0]);
	ut_ld_done(&l);
	rm_dir(dir);
}
END_TEST

START_TEST(include_errors_name_the_included_file)
{
	char dir[] = "/tmp/warden-unit-inc-XXXXXX";
	struct ut_ld l;
	char *want;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_at(dir, "main.yaml",
	    "version: 1\n"
	    "include: [inc.yaml]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [p1]\n");
	write_at(dir, "inc.yaml",
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: XX\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "server:\n"
	    "  workers: 1\n");
	load_main(dir, &l);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	want = ut_expand(
	    "@/inc.yaml:7:1: unknown key 'server' in an included rules file\n"
	    "@/inc.yaml:4:14: 'XX' is not an ISO 3166-1 alpha-2 country code\n"
	    "@/main.yaml: 2 errors\n", dir);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
	rm_dir(dir);
}
END_TEST

START_TEST(include_self_and_missing)
{
	char dir[] = "/tmp/warden-unit-inc-XXXXXX";
	struct ut_ld l;
	char *want;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_at(dir, "main.yaml",
	    "version: 1\n"
	    "include: main.yaml\n");
	load_main(dir, &l);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	want = ut_expand(
	    "@/main.yaml:2:10: 'main.yaml' is included twice (or includes "
	    "itself)\n"
	    "@/main.yaml: 1 error\n", dir);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);

	write_at(dir, "main.yaml",
	    "version: 1\n"
	    "include: nope.yaml\n");
	load_main(dir, &l);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	want = ut_expand(
	    "@/nope.yaml: cannot open: No such file or directory\n"
	    "@/main.yaml: 1 error\n", dir);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
	rm_dir(dir);
}
END_TEST

/* ---- size of what a file can ask for ---- */

struct load_job {
	const char *path;
	enum wd_err rc;
};

static void *
load_thread(void *arg)
{
	struct load_job *j = arg;
	struct pol_snapshot *snap = NULL;
	FILE *devnull = fopen("/dev/null", "w");

	j->rc = pol_load(j->path, devnull, &snap);
	pol_snapshot_unref(snap);
	fclose(devnull);
	return NULL;
}

/*
 * A chain of jurisdictions (J0: [J1], J1: [J2], ...) must load or be
 * refused, not overflow the stack (resolving jurisdictions once recursed
 * per link).  Run on a 256 KiB stack to keep the test fast; on the default
 * 8 MiB stack a 60,000-link chain, a 1.1 MB file, crashed `warden`.
 */
START_TEST(deep_jurisdiction_chain)
{
	enum { N = 10000 };
	size_t cap = 64 + (size_t)N * 24, n;
	char *text = malloc(cap);
	struct load_job job;
	pthread_attr_t attr;
	pthread_t th;

	ck_assert_ptr_nonnull(text);
	n = (size_t)snprintf(text, cap, "version: 1\njurisdictions:\n");
	for (int i = 0; i < N - 1; i++)
		n += (size_t)snprintf(text + n, cap - n, "  J%d: [J%d]\n", i, i + 1);
	n += (size_t)snprintf(text + n, cap - n, "  J%d: [DE]\n", N - 1);
	ck_assert_uint_lt(n, cap);
	job.path = ut_write_rules(text, 0600);
	job.rc = WD_EINVAL;
	free(text);
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, 256u << 10), 0);
	ck_assert_int_eq(pthread_create(&th, &attr, load_thread, &job), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	pthread_attr_destroy(&attr);
	unlink(job.path);
	free((char *)job.path);
	ck_assert_msg(job.rc == WD_OK || job.rc == WD_ECONFIG, "rc %d", job.rc);
}
END_TEST

/* ---- queries ---- */

START_TEST(find_key_by_digest)
{
	enum { NT = 40 };
	char text[16384], key[32], hex[65];
	size_t n;
	unsigned char d[32];
	struct ut_ld l;

	n = (size_t)snprintf(text, sizeof(text), "%s", PROVIDER "tenants:\n");
	for (int i = 0; i < NT; i++) {
		snprintf(key, sizeof(key), "wk-unit-%d", i);
		wd_sha256(key, strlen(key), d);
		wd_hex(d, 32, hex);
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "  - id: t%d\n    keys: [\"sha256:%s\"]\n    routes: [p1]\n",
		    i, hex);
		ck_assert_uint_lt(n, sizeof(text));
	}
	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_uint_ge(l.snap->keyidx_cap, 2 * NT);
	for (int i = 0; i < NT; i++) {
		const struct pol_tenant *t;
		char want[16];

		snprintf(key, sizeof(key), "wk-unit-%d", i);
		wd_sha256(key, strlen(key), d);
		t = pol_find_key(l.snap, d);
		ck_assert_msg(t != NULL, "key %d not found", i);
		snprintf(want, sizeof(want), "t%d", i);
		ck_assert_str_eq(t->id, want);
		/* Same slot, different digest: not a match. */
		d[31] ^= 1;
		ck_assert_ptr_null(pol_find_key(l.snap, d));
	}
	wd_sha256("wk-unknown", 10, d);
	ck_assert_ptr_null(pol_find_key(l.snap, d));
	memset(d, 0, sizeof(d));
	ck_assert_ptr_null(pol_find_key(l.snap, d));
	ut_ld_done(&l);
}
END_TEST

START_TEST(find_key_without_tenants)
{
	struct ut_ld l;
	unsigned char d[32];

	ut_load_text(&l, PROVIDER, 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	ck_assert_int_eq(wd_unhex(HEX_A, d, 32), WD_OK);
	ck_assert_ptr_null(pol_find_key(l.snap, d));
	ut_ld_done(&l);
}
END_TEST

START_TEST(provider_serves)
{
	struct ut_ld l;
	const struct pol_provider *p;

	ut_load_text(&l, minimal, 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	p = &l.snap->providers[0];
	ck_assert(pol_provider_serves(p, "gpt-4o"));
	ck_assert(pol_provider_serves(p, "gpt-4o-mini"));
	ck_assert(!pol_provider_serves(p, "gpt-4"));
	ck_assert(!pol_provider_serves(p, "gpt-4o-min"));
	ck_assert(!pol_provider_serves(p, "GPT-4O"));
	ck_assert(!pol_provider_serves(p, "gpt-4o "));
	ck_assert(!pol_provider_serves(p, ""));
	ut_ld_done(&l);
}
END_TEST

START_TEST(snapshot_refcount)
{
	struct ut_ld l;

	ut_load_text(&l, minimal, 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	ck_assert_ptr_eq(pol_snapshot_ref(l.snap), l.snap);
	ck_assert_int_eq(atomic_load(&l.snap->refs), 2);
	pol_snapshot_unref(l.snap);
	ck_assert_int_eq(atomic_load(&l.snap->refs), 1);
	pol_snapshot_unref(NULL);
	ut_ld_done(&l);
}
END_TEST

Suite *
suite_policy(void)
{
	Suite *s = suite_create("policy");
	TCase *ok = tcase_create("load");
	TCase *err = tcase_create("errors");
	TCase *file = tcase_create("file");
	TCase *q = tcase_create("queries");
	TCase *inc = tcase_create("includes");
	TCase *big = tcase_create("limits");

	tcase_add_test(ok, minimal_file_loads);
	tcase_add_test(ok, policy_version_is_canonical);
	tcase_add_test(ok, settings_are_read);
	tcase_add_test(ok, caps_and_proxy_are_read);
	tcase_add_test(ok, example_rules_load);
	tcase_add_test(ok, readable_by_others_is_fine);
	suite_add_tcase(s, ok);

	tcase_add_test(err, unknown_key_did_you_mean);
	tcase_add_test(err, unknown_key_in_server);
	tcase_add_test(err, witness_errors_say_where);
	tcase_add_test(err, witness_and_counter_are_read);
	tcase_add_test(err, unknown_key_without_hint);
	tcase_add_test(err, duplicate_key);
	tcase_add_test(err, mapping_where_list_expected);
	tcase_add_test(err, scalar_where_mapping_expected);
	tcase_add_test(err, invalid_country);
	tcase_add_test(err, country_table);
	tcase_add_test(err, unknown_route);
	tcase_add_test(err, provider_without_credential);
	tcase_add_test(err, bad_key_format);
	tcase_add_test(err, duplicate_provider_id);
	tcase_add_test(err, duplicate_provider_id_location);
	tcase_add_test(err, duplicate_tenant_and_shared_key);
	tcase_add_test(err, integer_out_of_range);
	tcase_add_test(err, integer_malformed);
	tcase_add_test(err, missing_version);
	tcase_add_test(err, yaml_syntax_error);
	tcase_add_test(err, yaml_encoding_error_location);
	tcase_add_test(err, several_errors_all_reported);
	tcase_add_test(err, jurisdiction_errors);
	tcase_add_test(err, rule_errors);
	tcase_add_test(err, dev_credential_not_echoed);
	tcase_add_test(err, second_document_refused);
	tcase_add_test(err, root_not_a_mapping);
	tcase_add_test(err, empty_file);
	suite_add_tcase(s, err);

	tcase_add_test(file, group_writable_refused);
	tcase_add_test(file, file_over_size_limit);
	tcase_add_test(file, missing_file);
	suite_add_tcase(s, file);

	tcase_add_test(inc, include_loads_and_resolves);
	tcase_add_test(inc, include_errors_name_the_included_file);
	tcase_add_test(inc, include_self_and_missing);
	suite_add_tcase(s, inc);

	tcase_add_test(big, deep_jurisdiction_chain);
	tcase_set_timeout(big, 60);
	suite_add_tcase(s, big);

	tcase_add_test(q, find_key_by_digest);
	tcase_add_test(q, find_key_without_tenants);
	tcase_add_test(q, provider_serves);
	tcase_add_test(q, snapshot_refcount);
	suite_add_tcase(s, q);
	return s;
}
