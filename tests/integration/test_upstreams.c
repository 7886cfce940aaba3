/*
 * test_upstreams.c - warden against mock_cloud over TLS with a test CA
 * made here with openssl: each provider kind (OpenAI Bearer, Azure
 * api-key on both paths, Anthropic x-api-key, Bedrock SigV4 and Bedrock
 * API key, Vertex AI with a service account's RS256 jwt-bearer grant and
 * a token refreshed before it expires) reaches the mock with credentials
 * sealed in a real swtpm, and the mock verifies them (SigV4 recomputed
 * with the secret, the JWT with the account's public key).  Wrong
 * credentials are refused by the mock, a route without the private CA
 * is refused by TLS, and no credential appears in any output.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wd.h"
#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define KEY_T "wk-it-upstreams"
#define KEY_AGENT "wk-it-upstreams-agent"	/* agent conv-bot of t */
#define CONVERSE_MODEL "eu.anthropic.claude-3-haiku-20240307-v1:0"
#define S_OPENAI "sk-up-openai-51d2e0"
#define S_AZURE "az-up-key-77c4b1f0"
#define S_ANTHROPIC "sk-ant-up-3a9e02"
#define S_AWS_ID "AKIAUPTEST0001"
#define S_AWS_SECRET "upSecretKey/9f3+ExampleOnly0042"
#define S_BEDROCK_KEY "bedrock-api-key-up-c81d"
#define S_WRONG "az-up-wrong-0000"
#define S_AWS_WRONG_SECRET "upWrongSecret/0000"
#define SA_EMAIL "warden-it@proj.iam.gserviceaccount.com"
#define TOKEN_TTL 6		/* seconds: a refresh happens during the run */

static const char *const secrets[] = { S_OPENAI, S_AZURE, S_ANTHROPIC,
	S_AWS_SECRET, S_BEDROCK_KEY, S_WRONG, S_AWS_WRONG_SECRET, NULL };

static char dir[200], tpmdir[256], store[256], cfg[300], wlog[300];
static char mlog[300], mrec[300], ca[300], tcti[128];
static int wport, mport;
static char sa_line[80];		/* a line of the SA key's PEM, to search */
static pid_t warden, mock;

static void teardown(void);

static void
shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
shf(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (it_run(cmd, NULL, NULL) != 0) {
		fprintf(stderr, "test_upstreams: failed: %s\n", cmd);
		teardown();	/* leave no mock or swtpm behind */
		abort();
	}
}

static void
seal(const char *name, const char *value)
{
	shf("printf '%%s' '%s' | %s secrets seal %s --store %s --tcti '%s' "
	    ">>%s 2>&1", value, getenv("WARDEN_BIN"), name, store, tcti, wlog);
}

/* A test CA and a server certificate for 127.0.0.1 signed by it. */
static void
make_ca(void)
{
	shf("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key "
	    "-out ca.pem -days 2 -subj '/CN=warden test CA' >/dev/null 2>&1 && "
	    "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
	    "-subj '/CN=127.0.0.1' >/dev/null 2>&1 && "
	    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > srv.ext && "
	    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out srv.pem -days 2 -extfile srv.ext "
	    ">/dev/null 2>&1", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	/* A service account key (and a stranger's), PKCS#8 PEM as Google
	 * issues them. */
	shf("cd %s && openssl genpkey -algorithm RSA -pkeyopt "
	    "rsa_keygen_bits:2048 -out sa.pem >/dev/null 2>&1 && openssl pkey "
	    "-in sa.pem -pubout -out sa.pub >/dev/null 2>&1 && openssl genpkey "
	    "-algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa-wrong.pem "
	    ">/dev/null 2>&1", dir);
	{
		char path[300], *pem, *nl;

		snprintf(path, sizeof(path), "%s/sa.pem", dir);
		pem = it_read_file(path, NULL);
		nl = strchr(pem, '\n');
		snprintf(sa_line, sizeof(sa_line), "%.60s", nl + 1);
		free(pem);
	}
}

static void
write_rules(void)
{
	unsigned char d[32];
	char hex[65], ahex[65], *text;
	const char *m = "https://127.0.0.1";

	wd_sha256(KEY_T, strlen(KEY_T), d);
	wd_hex(d, 32, hex);
	wd_sha256(KEY_AGENT, strlen(KEY_AGENT), d);
	wd_hex(d, 32, ahex);
	if (asprintf(&text,
	    "version: 1\n"
	    "server: { listen: '127.0.0.1:%d', workers: 1 }\n"
	    "audit: { dir: %s/audit }\n"
	    "upstream: { connect_timeout_ms: 2000, first_byte_timeout_ms: 3000,"
	    " max_attempts: 1 }\n"
	    "secrets: { store: %s, tcti: '%s', auth_file: %s/sign-auth }\n"
	    "jurisdictions: { EU: [DE, FR, IE, SE] }\n"
	    "providers:\n"
	    "  - { id: openai-eu, kind: openai, base_url: '%s:%d/v1',"
	    " country: IE, ca_file: %s, credential: c-openai, models: [m-openai] }\n"
	    "  - { id: azure-v1, kind: azure, base_url: '%s:%d/openai/v1',"
	    " residency: { processing: EU, storage: SE, deployment: datazone },"
	    " ca_file: %s, credential: c-azure, models: [m-azure] }\n"
	    "  - { id: azure-dep, kind: azure, base_url: '%s:%d',"
	    " azure_deployment: gpt-4o-eu, api_version: 2024-10-21,"
	    " residency: { processing: SE, storage: SE, deployment: regional },"
	    " ca_file: %s, credential: c-azure, models: [m-azure-dep] }\n"
	    "  - { id: anthropic, kind: anthropic, base_url: '%s:%d/v1',"
	    " country: US, ca_file: %s, credential: c-anthropic,"
	    " models: [m-anthropic] }\n"
	    "  - { id: bedrock-eu, kind: bedrock, base_url: '%s:%d/openai/v1',"
	    " region: eu-central-1, residency: { processing: EU, storage: DE,"
	    " deployment: datazone }, ca_file: %s, credential: c-aws,"
	    " models: [eu.m-bedrock] }\n"
	    "  - { id: bedrock-key, kind: bedrock, auth: bearer,"
	    " base_url: '%s:%d/openai/v1', region: eu-central-1, country: DE,"
	    " ca_file: %s, credential: c-bedrock-key, models: [m-bedrock-key] }\n"
	    "  - { id: azure-wrong, kind: azure, base_url: '%s:%d/openai/v1',"
	    " country: SE, ca_file: %s, credential: c-wrong, models: [m-wrong] }\n"
	    "  - { id: bedrock-wrong, kind: bedrock, base_url: '%s:%d/openai/v1',"
	    " region: eu-central-1, country: DE, ca_file: %s,"
	    " credential: c-aws-wrong, models: [m-aws-wrong] }\n"
	    "  - { id: no-ca, kind: azure, base_url: '%s:%d/openai/v1',"
	    " country: SE, credential: c-azure, models: [m-no-ca] }\n"
	    "  - { id: vertex-eu, kind: vertex, base_url: '%s:%d/v1/projects/"
	    "proj/locations/europe-west4/endpoints/openapi',"
	    " token_url: '%s:%d/token', service_account: " SA_EMAIL ","
	    " residency: { processing: NL, storage: NL, deployment: regional },"
	    " ca_file: %s, credential: c-vertex, models: [m-vertex] }\n"
	    "  - { id: vertex-wrong, kind: vertex, base_url: '%s:%d/v1/projects/"
	    "proj/locations/europe-west4/endpoints/openapi',"
	    " token_url: '%s:%d/token', service_account: " SA_EMAIL ","
	    " country: NL, ca_file: %s, credential: c-vertex-wrong,"
	    " models: [m-vertex-wrong] }\n"
	    "  - { id: bedrock-converse, kind: bedrock, bedrock_api: converse,"
	    " base_url: '%s:%d', region: eu-central-1, residency: { processing:"
	    " EU, storage: DE, deployment: datazone }, ca_file: %s,"
	    " credential: c-aws, models: ['" CONVERSE_MODEL "'] }\n"
	    "  - { id: plain, base_url: 'http://127.0.0.1:9/v1', country: DE,"
	    " insecure_http: true, credential: c-openai, models: [m-plain] }\n"
	    "tenants:\n"
	    "  - { id: t, keys: ['sha256:%s'], routes: [openai-eu, azure-v1,"
	    " azure-dep, anthropic, bedrock-eu, bedrock-key, azure-wrong,"
	    " bedrock-wrong, no-ca, vertex-eu, vertex-wrong, bedrock-converse, plain] }\n"
	    "agents:\n"
	    "  - id: conv-bot\n"
	    "    tenant: t\n"
	    "    keys: ['sha256:%s']\n"
	    "    tools: { search: {}, email: { sink: external } }\n"
	    "    graph: { start: [search], search: [search, email] }\n",
	    wport, dir, store, tcti, dir,
	    m, mport, ca, m, mport, ca, m, mport, ca, m, mport, ca, m, mport, ca,
	    m, mport, ca, m, mport, ca, m, mport, ca, m, mport,
	    m, mport, m, mport, ca, m, mport, m, mport, ca, m, mport, ca, hex,
	    ahex) < 0)
		abort();
	/* The audit signing key's auth value (warden refuses a key without). */
	{
		char af[400];

		snprintf(af, sizeof(af), "%s/sign-auth", dir);
		it_write_file(af, "upstreams-signing-auth", 0600);
	}
	it_write_file(cfg, text, 0600);
	free(text);
}

static void
setup(void)
{
	char keys[300], *kt, portarg[32], auditdir[300];
	FILE *p;

	snprintf(dir, sizeof(dir), "%s/upstreams", it_tmpdir());
	shf("rm -rf %s && mkdir -p %s", dir, dir);
	snprintf(tpmdir, sizeof(tpmdir), "%s/tpm", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(cfg, sizeof(cfg), "%s/rules.yaml", dir);
	snprintf(wlog, sizeof(wlog), "%s/warden.log", dir);
	snprintf(mlog, sizeof(mlog), "%s/mock.log", dir);
	snprintf(mrec, sizeof(mrec), "%s/mock-record.jsonl", dir);
	snprintf(auditdir, sizeof(auditdir), "%s/audit", dir);
	make_ca();
	/* The mock knows the right credentials only. */
	snprintf(keys, sizeof(keys), "%s/mock-keys", dir);
	mport = it_free_port();
	if (asprintf(&kt, "openai=%s\nazure=%s\nanthropic=%s\naws=%s:%s\n"
	    "aws_region=eu-central-1\nbedrock_key=%s\nsa_email=" SA_EMAIL "\n"
	    "sa_pubkey=%s/sa.pub\ntoken_url=https://127.0.0.1:%d/token\n",
	    S_OPENAI, S_AZURE, S_ANTHROPIC, S_AWS_ID, S_AWS_SECRET,
	    S_BEDROCK_KEY, dir, mport) < 0)
		abort();
	it_write_file(keys, kt, 0600);
	free(kt);
	{
		char port[16], cert[300], key[300], ttl[16];
		char *argv[] = { getenv("MOCK_CLOUD_BIN"), "--port", port, "--cert",
			cert, "--key", key, "--keys", keys, "--record", mrec,
			"--token-ttl", ttl, NULL };

		snprintf(ttl, sizeof(ttl), "%d", TOKEN_TTL);

		snprintf(port, sizeof(port), "%d", mport);
		snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
		snprintf(key, sizeof(key), "%s/srv.key", dir);
		mock = it_spawn(argv, mlog);
		if (!it_wait_port(mport, 5000))
			abort();
	}
	/* Every credential sealed in a real swtpm. */
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh start %s", tpmdir);
		if ((p = popen(cmd, "r")) == NULL ||
		    fgets(tcti, sizeof(tcti), p) == NULL || pclose(p) != 0)
			abort();
		tcti[strcspn(tcti, "\n")] = '\0';
	}
	seal("c-openai", S_OPENAI);
	seal("c-azure", S_AZURE);
	seal("c-anthropic", S_ANTHROPIC);
	seal("c-aws", S_AWS_ID ":" S_AWS_SECRET);
	seal("c-bedrock-key", S_BEDROCK_KEY);
	seal("c-wrong", S_WRONG);
	seal("c-aws-wrong", S_AWS_ID ":" S_AWS_WRONG_SECRET);
	/* The service account's private key imported into the TPM, where
	 * it signs; its PEM file is removed.  The wrong key goes the other
	 * way warden accepts, sealed as PEM. */
	shf("%s secrets import-key c-vertex --store %s --tcti '%s' < %s/sa.pem "
	    ">>%s 2>&1 && rm %s/sa.pem", getenv("WARDEN_BIN"), store, tcti, dir,
	    wlog, dir);
	shf("%s secrets seal c-vertex-wrong --store %s --tcti '%s' < "
	    "%s/sa-wrong.pem >>%s 2>&1", getenv("WARDEN_BIN"), store, tcti, dir,
	    wlog);
	wport = it_free_port();
	write_rules();
	{
		char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", cfg,
			"--listen", portarg, "--audit-dir", auditdir, NULL };

		snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", wport);
		warden = it_spawn(argv, wlog);
		if (!it_wait_port(wport, 8000)) {
			fprintf(stderr, "warden did not come up; see %s\n", wlog);
			warden = 0;
			teardown();	/* leave no mock or swtpm behind */
			abort();
		}
	}
}

static void
teardown(void)
{
	if (warden > 0)
		it_stop(warden, SIGTERM);
	if (mock > 0)
		it_stop(mock, SIGTERM);
	shf("sh scripts/swtpm.sh stop %s >/dev/null 2>&1 || true", tpmdir);
}

static void
chat(const char *model, bool stream, struct it_resp *r)
{
	char url[128], *body = it_chat_body(model, "hello upstream", stream);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    wport);
	it_chat_at(url, KEY_T, NULL, body, 10000, r);
	free(body);
}

static void
expect_verified(const char *model, const char *kind)
{
	struct it_resp r;
	char want[64];

	chat(model, false, &r);
	snprintf(want, sizeof(want), "\"verified %s\"", kind);
	ck_assert_msg(r.status == 200 && strstr(r.body, want) != NULL,
	    "%s: status %ld body %s", model, r.status, r.body);
	it_resp_free(&r);
}

START_TEST(each_kind_authenticates_over_tls)
{
	expect_verified("m-openai", "openai");
	expect_verified("m-azure", "azure");
	expect_verified("m-azure-dep", "azure-deployment");
	expect_verified("m-anthropic", "anthropic");
	expect_verified("eu.m-bedrock", "bedrock-sigv4");
	expect_verified("m-bedrock-key", "bedrock-key");
	expect_verified("m-vertex", "vertex");
}
END_TEST

static int
count(const char *file, const char *needle)
{
	char *text = it_read_file(file, NULL), *at = text;
	int n = 0;

	while ((at = strstr(at, needle)) != NULL) {
		n++;
		at += strlen(needle);
	}
	free(text);
	return n;
}

/* The mock's tokens live TOKEN_TTL seconds and it refuses expired ones.
 * Requests across more than one lifetime all succeed: the keeper fetched
 * a new token before the old one expired, with a newly signed JWT. */
START_TEST(vertex_token_refreshed_before_expiry)
{
	static const char ok[] = "\"path\":\"/token\",\"kind\":\"google-oauth\","
	    "\"verdict\":\"ok\"";
	int before = count(mrec, ok);

	ck_assert_int_ge(before, 1);
	for (int i = 0; i < TOKEN_TTL + 2; i++) {
		expect_verified("m-vertex", "vertex");
		sleep(1);
	}
	expect_verified("m-vertex", "vertex");
	ck_assert_int_ge(count(mrec, ok), before + 1);
	ck_assert_int_eq(count(mrec, "access token missing, unknown or "
	    "expired"), 0);
}
END_TEST

#ifndef __SANITIZE_ADDRESS__
/*
 * A Vertex access token exists in clear in locked memory only: after
 * requests that used one, no copy is left in warden's other writable
 * memory.  (The mock's tokens begin "ya29.mock-", which nothing else
 * holds; ASan makes mlock a no-op, hence not there.)
 */
START_TEST(vertex_token_only_in_locked_memory)
{
	static const unsigned char a[] = "ya29.", b[] = "mock-";

	expect_verified("m-vertex", "vertex");
	expect_verified("m-vertex", "vertex");
	ck_assert_msg(!it_unlocked_holds(warden, a, b, 5), "warden holds a "
	    "Vertex access token in memory that is not locked");
}
END_TEST
#endif

/* A JWT signed with a key that is not the service account's: the token
 * endpoint refuses it, the route has no token, warden refuses to send. */
START_TEST(vertex_wrong_key_gets_no_token)
{
	struct it_resp r;

	chat("m-vertex-wrong", false, &r);
	ck_assert_msg(r.status == 500 && strstr(r.body, "credential_unavailable")
	    && strstr(r.body, "access token"), "%ld %s", r.status, r.body);
	it_resp_free(&r);
	ck_assert_int_ge(count(mrec, "token: JWT signature does not verify"), 1);
}
END_TEST

START_TEST(signed_stream_is_relayed)
{
	struct it_resp r;

	chat("eu.m-bedrock", true, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "verified bedrock-sigv4")
	    && strstr(r.body, "data: [DONE]"), "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/* The mocks check what they get: a wrong key or a signature made with a
 * wrong secret is refused, and warden reports it as its own failure. */
START_TEST(wrong_credentials_are_refused_by_the_mock)
{
	struct it_resp r;
	char *rec;

	chat("m-wrong", false, &r);
	ck_assert_msg(r.status == 502 && strstr(r.body, "upstream_auth"),
	    "%ld %s", r.status, r.body);
	it_resp_free(&r);
	chat("m-aws-wrong", false, &r);
	ck_assert_msg(r.status == 502 && strstr(r.body, "upstream_auth"),
	    "%ld %s", r.status, r.body);
	it_resp_free(&r);
	rec = it_read_file(mrec, NULL);
	ck_assert_ptr_nonnull(strstr(rec, "azure: api-key wrong"));
	ck_assert_ptr_nonnull(strstr(rec, "SigV4: signature does not match"));
	free(rec);
}
END_TEST

/* Directly at the mock: a forged SigV4 (right key id and scope, made-up
 * signature) and a missing anthropic-version are refused. */
START_TEST(mock_refuses_forged_signatures)
{
	char cmd[2048], out[300], date[17];
	FILE *p;

	{
		time_t t = time(NULL);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	}
	snprintf(out, sizeof(out), "%s/forged.out", dir);
	snprintf(cmd, sizeof(cmd), "curl -s -o %s -w '%%{http_code}' --cacert %s "
	    "-H 'X-Amz-Date: %s' -H 'X-Amz-Content-Sha256: "
	    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' "
	    "-H 'Authorization: AWS4-HMAC-SHA256 Credential=" S_AWS_ID "/%.8s/"
	    "eu-central-1/bedrock/aws4_request, SignedHeaders=host;"
	    "x-amz-content-sha256;x-amz-date, Signature=%064d' --data '{}' "
	    "https://127.0.0.1:%d/openai/v1/chat/completions", out, ca, date,
	    date, 0, mport);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(cmd, sizeof(cmd), p));
	pclose(p);
	ck_assert_str_eq(cmd, "401");
	ck_assert(it_file_contains(out, "signature does not match"));
	snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -w '%%{http_code}' "
	    "--cacert %s -H 'x-api-key: " S_ANTHROPIC "' --data '{}' "
	    "https://127.0.0.1:%d/v1/chat/completions", ca, mport);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(cmd, sizeof(cmd), p));
	pclose(p);
	ck_assert_str_eq(cmd, "401");
}
END_TEST

/* Without its ca_file the route uses the system store, which does not
 * know the test CA: the TLS handshake fails, nothing is sent. */
START_TEST(route_without_private_ca_fails_tls)
{
	struct it_resp r;
	char *rec;
	size_t before;

	rec = it_read_file(mrec, &before);
	free(rec);
	chat("m-no-ca", false, &r);
	ck_assert_msg(r.status == 502 && strstr(r.body, "upstream_error"),
	    "%ld %s", r.status, r.body);
	it_resp_free(&r);
	rec = it_read_file(mrec, NULL);
	/* The mock saw nothing of it: what it recorded since are the Vertex
	 * keeper's token refreshes at most (they run on their own clock). */
	ck_assert_uint_ge(strlen(rec), before);
	for (char *l = rec + before, *nl; *l != '\0'; l = nl + 1) {
		nl = strchr(l, '\n');
		ck_assert_msg(nl != NULL, "torn mock record: %s", l);
		*nl = '\0';
		ck_assert_msg(strstr(l, "\"path\":\"/token\"") != NULL,
		    "the mock saw a request of the route without its CA: %s", l);
	}
	free(rec);
}
END_TEST

/* Every output warden made: its log, the audit log, and the answers. */
START_TEST(no_credential_in_any_output)
{
	char cmd[1024];

	expect_verified("eu.m-bedrock", "bedrock-sigv4");
	expect_verified("m-anthropic", "anthropic");
	for (size_t i = 0; secrets[i] != NULL; i++) {
		snprintf(cmd, sizeof(cmd), "grep -rqF -- '%s' %s/audit %s",
		    secrets[i], dir, wlog);
		ck_assert_msg(it_run(cmd, NULL, NULL) == 1, "secret %zu found in warden's output",
		    i);
	}
	expect_verified("m-vertex", "vertex");
	/* No access token, no piece of the service account's key. */
	snprintf(cmd, sizeof(cmd), "grep -rqF -- 'ya29.mock-' %s/audit %s", dir,
	    wlog);
	ck_assert_msg(it_run(cmd, NULL, NULL) == 1, "an access token in warden's output");
	snprintf(cmd, sizeof(cmd), "grep -rqF -- '%s' %s/audit %s", sa_line, dir,
	    wlog);
	ck_assert_msg(it_run(cmd, NULL, NULL) == 1, "the service account key in warden's output");
	/* The store holds TPM blobs only: no piece of the imported PEM. */
	snprintf(cmd, sizeof(cmd), "grep -rqF -- '%s' %s", sa_line, store);
	ck_assert_msg(it_run(cmd, NULL, NULL) == 1, "the service account key in the store");
	snprintf(cmd, sizeof(cmd), "grep -q imported-key %s/c-vertex/meta.json",
	    store);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	/* The AWS secret is not in the mock's record either (it only
	 * ever saw the signature). */
	snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' %s", S_AWS_SECRET, mrec);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 1);
}
END_TEST

static void
post(const char *key, const char *body, struct it_resp *r)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    wport);
	it_chat_at(url, key, NULL, body, 10000, r);
}

/* Converse, answered whole: SigV4 over the translated body, the answer
 * back as a chat completion. */
START_TEST(converse_answer_as_chat_completion)
{
	struct it_resp r;
	json_t *j;

	post(KEY_T, "{\"model\":\"" CONVERSE_MODEL "\",\"max_tokens\":50,"
	    "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":\"hello\"}]}", &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "object")),
	    "chat.completion");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_array_get(json_object_get(j, "choices"), 0), "message"),
	    "content")), "verified bedrock-converse");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j,
	    "usage"), "total_tokens")), 5);
	json_decref(j);
	it_resp_free(&r);
	ck_assert_int_ge(count(mrec, "\"path\":\"/model/" "eu.anthropic."
	    "claude-3-haiku-20240307-v1%3A0/converse\",\"kind\":"
	    "\"bedrock-converse\",\"verdict\":\"ok\""), 1);
}
END_TEST

/* converse-stream: event-stream frames relayed to the client as chat
 * chunks over SSE, ending in [DONE]. */
START_TEST(converse_stream_relayed_as_sse)
{
	struct it_resp r;

	post(KEY_T, "{\"model\":\"" CONVERSE_MODEL "\",\"stream\":true,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}", &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_msg(strstr(r.body, "\"delta\":{"
	    "\"content\":\"bedrock-converse-stream\"}") != NULL, "%s", r.body);
	ck_assert(strstr(r.body, "\"object\":\"chat.completion.chunk\"") != NULL);
	ck_assert(strstr(r.body, "\"finish_reason\":\"stop\"") != NULL);
	ck_assert_msg(strstr(r.body, "data: [DONE]\n\n") != NULL, "%s", r.body);
	ck_assert(strstr(r.body, ":event-type") == NULL);	/* no raw frames */
	it_resp_free(&r);
}
END_TEST

/* The agent's tool policy applies to a Converse stream as to any: an
 * allowed call passes, a call the graph forbids stops the stream before
 * any of it leaves. */
START_TEST(converse_stream_tool_policy)
{
	struct it_resp r;
	static const char fmt[] = "{\"model\":\"" CONVERSE_MODEL "\","
	    "\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"please [[tool %s]]\"}],\"tools\":[{\"type\":\"function\","
	    "\"function\":{\"name\":\"search\",\"parameters\":{\"type\":"
	    "\"object\"}}}]}";
	char body[512];

	snprintf(body, sizeof(body), fmt, "search");
	post(KEY_AGENT, body, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "\"name\":\"search\"")
	    && strstr(r.body, "data: [DONE]") && !strstr(r.body, "event: error"),
	    "%ld %s", r.status, r.body);
	ck_assert(strstr(r.body, "\"finish_reason\":\"tool_calls\"") != NULL);
	it_resp_free(&r);
	snprintf(body, sizeof(body), fmt, "email");
	post(KEY_AGENT, body, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_msg(strstr(r.body, "\"name\":\"email\"") == NULL, "%s",
	    r.body);
	ck_assert(strstr(r.body, "tu-1") == NULL);
	ck_assert(strstr(r.body, "data: [DONE]") == NULL);
	ck_assert(strstr(r.body, "event: error\ndata: ") != NULL);
	ck_assert(strstr(r.body, "\"code\":\"tool_policy\"") != NULL);
	it_resp_free(&r);
}
END_TEST

/* The official openai client reads a Converse stream through warden:
 * text, a tool call with its arguments, the finish reason, usage; and a
 * forbidden call surfaces as the SDK's error, with none of it read. */
static char *
sdk(const char *key, const char *prompt, const char *tool)
{
	char cmd[1024], *out = malloc(8192);
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "WARDEN_BASE_URL=http://127.0.0.1:%d/v1 "
	    "WARDEN_KEY=%s MODEL='" CONVERSE_MODEL "' PROMPT='%s' %s%s "
	    "node tests/openai-node/converse_client.mjs 2>&1", wport, key,
	    prompt, tool ? "TOOL=" : "", tool ? tool : "");
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, 8191, p);
	out[n] = '\0';
	pclose(p);
	return out;
}

START_TEST(converse_stream_through_the_openai_sdk)
{
	char *out;

	out = sdk(KEY_T, "hello", NULL);
	ck_assert_msg(strstr(out, "\"content\":\"verified bedrock-converse-"
	    "stream\"") && strstr(out, "\"finish\":\"stop\"") &&
	    strstr(out, "\"total_tokens\":5"), "%s", out);
	free(out);
	out = sdk(KEY_AGENT, "please [[tool search]]", "search");
	ck_assert_msg(strstr(out, "\"tool_calls\":[{\"name\":\"search\","
	    "\"arguments\":\"{\\\"q\\\":\\\"x\\\"}\"}]") &&
	    strstr(out, "\"finish\":\"tool_calls\""), "%s", out);
	free(out);
	out = sdk(KEY_AGENT, "please [[tool email]]", "search");
	/* The SDK raises the stream's error event: the policy's code, and
	 * not one chunk of the call was handed to the caller. */
	ck_assert_msg(strncmp(out, "{\"error\":", 9) == 0 &&
	    strstr(out, "\"code\":\"tool_policy\""), "%s", out);
	ck_assert_msg(strstr(out, "tool_calls") == NULL, "%s", out);
	free(out);
}
END_TEST

/* A route accepted over plain http says so in every record, and lint
 * warns about it. */
START_TEST(insecure_http_shows_in_records_and_lint)
{
	struct it_resp r;
	char cmd[1024];

	chat("m-plain", false, &r);
	ck_assert_msg(r.status == 502, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	snprintf(cmd, sizeof(cmd), "sleep 0.3; grep -h '\"route\":\"plain\"' "
	    "%s/audit/*.jsonl | grep -q '\"route_insecure_http\":true'", dir);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
	/* Only that route's records. */
	snprintf(cmd, sizeof(cmd), "grep -h '\"route_insecure_http\"' "
	    "%s/audit/*.jsonl | grep -vq '\"route\":\"plain\"'", dir);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 1);
	snprintf(cmd, sizeof(cmd), "%s lint -c %s 2>&1 | grep -q \"warning: "
	    "route 'plain': insecure_http\"", getenv("WARDEN_BIN"), cfg);
	ck_assert_int_eq(it_run(cmd, NULL, NULL), 0);
}
END_TEST

Suite *
suite_upstreams(void)
{
	Suite *s = suite_create("upstreams");
	TCase *tc = tcase_create("upstreams");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, each_kind_authenticates_over_tls);
	tcase_add_test(tc, signed_stream_is_relayed);
	tcase_add_test(tc, wrong_credentials_are_refused_by_the_mock);
	tcase_add_test(tc, mock_refuses_forged_signatures);
	tcase_add_test(tc, route_without_private_ca_fails_tls);
	tcase_add_test(tc, vertex_token_refreshed_before_expiry);
	tcase_add_test(tc, vertex_wrong_key_gets_no_token);
#ifndef __SANITIZE_ADDRESS__
	tcase_add_test(tc, vertex_token_only_in_locked_memory);
#endif
	tcase_add_test(tc, converse_answer_as_chat_completion);
	tcase_add_test(tc, converse_stream_relayed_as_sse);
	tcase_add_test(tc, converse_stream_tool_policy);
	tcase_add_test(tc, converse_stream_through_the_openai_sdk);
	tcase_add_test(tc, insecure_http_shows_in_records_and_lint);
	tcase_add_test(tc, no_credential_in_any_output);
	suite_add_tcase(s, tc);
	return s;
}
