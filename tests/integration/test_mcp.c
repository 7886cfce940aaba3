/*
 * test_mcp.c - the MCP gateway (issue 15) with real MCP software on both
 * sides: the official @modelcontextprotocol/sdk as the server
 * (tests/mcp-node/server.mjs) and as the client (mcp.test.mjs), warden
 * between them with the agent crm-bot's tool rules.  The node tests say
 * what the client sees; this file starts everything and then checks the
 * audit records the calls left.
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

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define KEY_CRM "wk-it-agent-crm"
#define MCP_TOKEN "tok-it-mcp-server-5e1f"

static pid_t mcp_server;
static int mcp_port;
static char mcp_log[256];

static const char tools_map[] =
    "    tools: { read_customer: read_customer, send_email: send_email,"
    " search_docs: search_docs, summarize: summarize, confirm: confirm }\n";

static const char agent_fmt[] =
    "  mcp-crm: " MCP_TOKEN "\n"
    "mcp_pins_dir: %s/pins\n"
    "mcp_servers:\n"
    "  - id: crm\n"
    "    url: http://127.0.0.1:%d/mcp\n"
    "    country: DE\n"
    "    credential: mcp-crm\n"
    "    origins: ['http://localhost:3000']\n"
    "%s"
    "  - id: crm-stateless\n"
    "    url: http://127.0.0.1:%d/stateless\n"
    "    country: DE\n"
    "    credential: mcp-crm\n"
    "%s"
    "agents:\n"
    "  - id: crm-bot\n"
    "    tenant: t1\n"
    "    keys: ['%s']\n"
    "    mcp: { sampling: deny, elicitation: allow }\n"
    "    tools:\n"
    "      search_docs: {}\n"
    "      read_customer: { labels: [personal] }\n"
    "      send_email: { sink: external }\n"
    "      summarize: {}\n"
    "      confirm: {}\n"
    "    graph:\n"
    "      start: &all [search_docs, read_customer, send_email, summarize,"
    " confirm]\n"
    "      search_docs: *all\n"
    "      read_customer: *all\n"
    "      send_email: *all\n"
    "      summarize: *all\n"
    "      confirm: *all\n"
    "    flows:\n"
    "      - id: no-pii-out\n"
    "        deny: { from_label: personal, to_sink: external }\n"
    "      - id: no-fin-out\n"
    "        deny: { from_label: financial, to_sink: external }\n"
    "detect:\n"
    "  iban: financial\n"
    "  secret: { action: block }\n"
    "  card: { class: financial, action: redact }\n"
    "  patterns:\n"
    "    - { id: ticket, regex: 'TKT-[0-9]{6}', answers: true }\n";

static void
setup(void)
{
	char kd[72], dir[256], *base, *extra, *text, portarg[16], *p, *fixed;
	unsigned char d[32];
	char hex[65];
	char *argv[] = { "/usr/bin/env", "node", "tests/mcp-node/server.mjs",
		portarg, NULL };

	it_env_start(NULL);
	it_stop(it.warden, SIGTERM);
	mcp_port = it_free_port();
	snprintf(portarg, sizeof(portarg), "%d", mcp_port);
	snprintf(mcp_log, sizeof(mcp_log), "%s/mcp-server.log", it_tmpdir());
	setenv("MCP_SERVER_TOKEN", MCP_TOKEN, 1);
	mcp_server = it_spawn(argv, mcp_log);
	if (!it_wait_port(mcp_port, 10000)) {
		fprintf(stderr, "the MCP server did not come up; see %s\n", mcp_log);
		abort();
	}
	wd_sha256(KEY_CRM, strlen(KEY_CRM), d);
	wd_hex(d, 32, hex);
	snprintf(kd, sizeof(kd), "sha256:%s", hex);
	snprintf(dir, sizeof(dir), "%s/pins", it_tmpdir());
	mkdir(dir, 0700);
	base = it_read_file(it.config, NULL);
	/* Content detection (detect.test.mjs) adds a financial class. */
	if (base != NULL && (p = strstr(base, "data_classes: [public, personal, "
	    "health]\n")) != NULL && asprintf(&fixed, "%.*sdata_classes: "
	    "[public, personal, health, financial]\n%s", (int)(p - base), base,
	    p + strlen("data_classes: [public, personal, health]\n")) >= 0) {
		free(base);
		base = fixed;
	}
	if (base == NULL || asprintf(&extra, agent_fmt, it_tmpdir(), mcp_port,
	    tools_map, mcp_port, tools_map, kd) < 0 ||
	    asprintf(&text, "%s%s", base, extra) < 0)
		abort();
	it_write_file(it.config, text, 0600);
	free(base);
	free(extra);
	free(text);
	it.port = it_free_port();
	snprintf(it.base, sizeof(it.base), "http://127.0.0.1:%d", it.port);
	it.warden = it_warden_start(it.port);
}

static void
teardown(void)
{
	it_stop(mcp_server, SIGTERM);
	it_env_stop();
}

/* grep -r the warden's audit log for every needle on one line. */
static bool
audit_has(const char *a, const char *b, const char *c)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "grep -rhF '%s' %s/audit | grep -F '%s' | "
	    "grep -qF '%s'", a, it_tmpdir(), b, c);
	return system(cmd) == 0;
}

/*
 * The records, each a line holding all three:
 * - every tools/call, allowed and refused, with the refusing rule;
 * - every tools/list: the tools it hid and why, the definitions it
 *   pinned at first sight or set pending when they changed; the
 *   operator's approval;
 * - other requests: what they asked for and a digest of the answer;
 * - a sampling request refused on the server's own stream;
 * - a server's log message withheld from a call's stream, and from its
 *   own stream.
 */
static const char *const records_wanted[][3] = {
	{ "\"kind\":\"mcp_call\"", "\"tool\":\"search_docs\"",
	  "\"verdict\":\"allow\"" },
	{ "\"kind\":\"mcp_call\"", "\"tool\":\"send_email\"",
	  "\"rule\":\"no-pii-out\"" },
	{ "\"kind\":\"mcp_call\"", "\"session\":\"flow-chat\"",
	  "\"verdict\":\"deny\"" },
	{ "\"kind\":\"mcp_call\"", "\"rule\":\"mcp_pin\"",
	  "\"server\":\"crm\"" },
	{ "\"kind\":\"mcp_call\"", "\"arguments_hmac\":\"",
	  "\"tool\":\"read_customer\"" },
	{ "\"kind\":\"mcp_call\"", "\"rule\":\"header_mismatch\"",
	  "\"server\":\"crm-stateless\"" },
	{ "\"kind\":\"mcp_list\"", "{\"tool\":\"admin_shell\",\"why\":"
	  "\"not a tool the agent may call\"}", "\"verdict\":\"modify\"" },
	{ "\"kind\":\"mcp_list\"", "\"state\":\"pinned\",\"tool\":"
	  "\"send_email\"", "\"server\":\"crm\"" },
	{ "\"kind\":\"mcp_list\"", "\"state\":\"pending\",\"tool\":"
	  "\"send_email\"", "{\"tool\":\"send_email\",\"why\":"
	  "\"definition changed: pending approval\"}" },
	{ "\"kind\":\"mcp_pin_approved\"", "\"server\":\"crm\"",
	  "\"tool\":\"send_email\"" },
	{ "\"kind\":\"mcp_request\"", "\"method\":\"resources/read\"",
	  "\"name\":\"crm://policies/standard\"" },
	{ "\"kind\":\"mcp_request\"", "\"method\":\"prompts/get\"",
	  "\"name\":\"greet\",\"policy_version\"" },
	{ "\"kind\":\"mcp_request\"", "\"method\":\"prompts/get\"",
	  "\"result_hmac\":\"" },
	{ "\"kind\":\"mcp_stream\"", "\"refused_server_request\":"
	  "\"sampling/createMessage\"", "\"verdict\":\"deny\"" },
	{ "\"kind\":\"mcp_call\"", "\"withheld_notifications\":"
	  "[\"notifications/message\"]", "\"session\":\"notify-1\"" },
	{ "\"kind\":\"mcp_stream\"", "\"withheld_notifications\":"
	  "[\"notifications/message\"]", "\"rule\":\"detected_ticket\"" },
};

START_TEST(mcp_sdk_client_through_warden)
{
	char cmd[1024], path[256];
	int st;

	snprintf(path, sizeof(path), "%s/mcp-node.log", it_tmpdir());
	snprintf(cmd, sizeof(cmd), "WARDEN_URL=%s MCP_KEY=%s "
	    "MCP_SERVER_URL=http://127.0.0.1:%d MCP_SERVER_TOKEN=%s "
	    "WARDEN_BIN=%s WARDEN_CONFIG=%s WARDEN_AUDIT_DIR=%s/audit "
	    "MCP_TENANT_KEY=%s "
	    "node --test --test-concurrency=1 --test-force-exit "
	    "tests/mcp-node/ >%s 2>&1",
	    it.base, KEY_CRM, mcp_port, MCP_TOKEN, getenv("WARDEN_BIN"),
	    it.config, it_tmpdir(), IT_KEY_T1, path);
	st = system(cmd);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		char *log = it_read_file(path, NULL), *nok;

		/* Check's messages are short: from the first failure on. */
		nok = log != NULL ? strstr(log, "not ok") : NULL;
		ck_abort_msg("MCP SDK tests failed:\n%.3000s", nok ? nok :
		    log ? log : "");
	}
	sleep(1);
	for (size_t i = 0; i < sizeof(records_wanted) / sizeof(*records_wanted);
	    i++) {
		const char *const *w = records_wanted[i];

		ck_assert_msg(audit_has(w[0], w[1], w[2]), "no record with %s %s "
		    "%s", w[0], w[1], w[2]);
	}
	/* Never a request's arguments (the prompt's "Ada"). */
	snprintf(cmd, sizeof(cmd), "grep -rh '\"kind\":\"mcp_request\"' %s/audit | "
	    "grep -q Ada", it_tmpdir());
	ck_assert(system(cmd) != 0);
	{
		/* The approval names the pending fingerprint the listing
		 * recorded, and the one pinned before it. */
		char *pend = NULL, *first = NULL, from[96];

		snprintf(cmd, sizeof(cmd), "grep -rhoE '\"fingerprint\":\"[0-9a-f]{64}\","
		    "\"state\":\"pending\",\"tool\":\"send_email\"' %s/audit | "
		    "head -n 1 | cut -c16-79", it_tmpdir());
		ck_assert_int_eq(it_run(cmd, &pend, NULL), 0);
		snprintf(cmd, sizeof(cmd), "grep -rhoE '\"fingerprint\":\"[0-9a-f]{64}\","
		    "\"state\":\"pinned\",\"tool\":\"send_email\"' %s/audit | "
		    "head -n 1 | cut -c16-79", it_tmpdir());
		ck_assert_int_eq(it_run(cmd, &first, NULL), 0);
		ck_assert_int_eq(strlen(pend), 65);
		ck_assert_int_eq(strlen(first), 65);
		pend[64] = first[64] = '\0';
		ck_assert_str_ne(pend, first);
		snprintf(from, sizeof(from), "\"from\":\"%s\"", first);
		ck_assert(audit_has("\"kind\":\"mcp_pin_approved\"", from,
		    "\"to\":\"") && audit_has("\"kind\":\"mcp_pin_approved\"",
		    "\"to\":\"", pend));
		free(pend);
		free(first);
	}
	/* Content detection (detect.test.mjs): the records name the
	 * detectors and their counts, never what they found; /metrics
	 * counts them as where="mcp" (arguments) and "mcp_result". */
	ck_assert(audit_has("\"kind\":\"mcp_call\"", "\"rule\":\"detected_secret\"",
	    "\"detections\":{\"secret\":1}"));
	ck_assert(audit_has("\"kind\":\"mcp_call\"", "\"rule\":\"no-fin-out\"",
	    "\"detections\":{\"iban\":1}"));
	ck_assert(audit_has("\"kind\":\"mcp_call\"", "\"rule\":\"detected_ticket\"",
	    "\"result_detections\":{\"ticket\":1}"));
	snprintf(cmd, sizeof(cmd), "grep -rqF Zq8vT3kLm2Xw9Rb7 %s/audit %s",
	    it_tmpdir(), it.warden_log);
	ck_assert(system(cmd) != 0);
	{
		struct it_resp r;

		it_http("GET", it_url("/metrics"), NULL, NULL, 5000, &r);
		ck_assert_msg(strstr(r.body, "warden_detections_total{detector="
		    "\"secret\",where=\"mcp\"} 1") != NULL, "%s", r.body);
		/* A tool's result and a server's log message on a call's
		 * stream and on its own, withheld. */
		ck_assert_ptr_nonnull(strstr(r.body, "warden_detections_total{"
		    "detector=\"ticket\",where=\"mcp_result\"} 3"));
		it_resp_free(&r);
	}
	/* Neither the server's credential nor the client's key in logs. */
	ck_assert(!it_file_contains(it.warden_log, MCP_TOKEN));
	ck_assert(!it_file_contains(path, "wk-it-tenant"));
}
END_TEST

START_TEST(mcp_refuses_what_it_cannot_read)
{
	char auth[128];
	const char *h[] = { auth, "Content-Type: application/json", NULL };
	struct it_resp r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", KEY_CRM);
	/* Duplicate keys: one reader could take the first, another the last. */
	it_http("POST", it_url("/mcp/crm"), h, "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"tools/call\",\"params\":{\"name\":\"search_docs\","
	    "\"name\":\"send_email\"}}", 5000, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert(strstr(r.body, "-32700") != NULL);
	it_resp_free(&r);
	it_http("POST", it_url("/mcp/crm"), h, "[{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"ping\"}]", 5000, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert(strstr(r.body, "batches") != NULL);
	it_resp_free(&r);
	it_http("POST", it_url("/mcp/nope"), h, "{}", 5000, &r);
	ck_assert_int_eq(r.status, 404);
	it_resp_free(&r);
	/* A GET is the server's own stream; without a session the server
	 * has none to give: its status, not its bytes.  2026-07-28 has no
	 * such stream at all: 405. */
	it_http("GET", it_url("/mcp/crm"), h, NULL, 5000, &r);
	ck_assert_msg(r.status == 400 && strstr(r.body, "opened no stream") !=
	    NULL, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	{
		const char *hs[] = { h[0], "MCP-Protocol-Version: 2026-07-28",
			NULL };
		char allow[64];

		it_http("GET", it_url("/mcp/crm-stateless"), hs, NULL, 5000, &r);
		ck_assert_int_eq(r.status, 405);
		ck_assert_str_eq(it_resp_header(&r, "Allow", allow,
		    sizeof(allow)), "POST");
		it_resp_free(&r);
	}
	/* No key: 401; a tenant key without an agent: 403. */
	it_http("POST", it_url("/mcp/crm"), h + 1, "{\"jsonrpc\":\"2.0\","
	    "\"id\":1,\"method\":\"ping\"}", 5000, &r);
	ck_assert_int_eq(r.status, 401);
	it_resp_free(&r);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", IT_KEY_T1);
	it_http("POST", it_url("/mcp/crm"), h, "{\"jsonrpc\":\"2.0\",\"id\":1,"
	    "\"method\":\"ping\"}", 5000, &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert(strstr(r.body, "agent_required") != NULL);
	it_resp_free(&r);
}
END_TEST

/* A content detector that cannot run (its memory budget is smaller than
 * one scanner) refuses a tools/call before the server sees it. */
START_TEST(mcp_detector_that_cannot_run_refuses)
{
	static const char last[] = "answers: true }\n";
	char url[128], auth[128], *rules, *at, *broken;
	const char *h[] = { auth, "Content-Type: application/json",
		"Accept: application/json, text/event-stream",
		"MCP-Protocol-Version: 2026-07-28", "Mcp-Method: tools/call",
		"Mcp-Name: search_docs", NULL };
	struct it_resp r;
	int port = it_free_port();
	pid_t w;

	rules = it_read_file(it.config, NULL);
	ck_assert_ptr_nonnull(rules);
	at = strstr(rules, last);
	ck_assert_ptr_nonnull(at);
	ck_assert_int_ge(asprintf(&broken, "%.*s  max_memory: 1\n%s",
	    (int)(at + strlen(last) - rules), rules, at + strlen(last)), 0);
	it_write_file(it.config, broken, 0600);
	w = it_warden_start(port);
	it_write_file(it.config, rules, 0600);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp/crm-stateless", port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", KEY_CRM);
	it_http("POST", url, h, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":"
	    "\"tools/call\",\"params\":{\"name\":\"search_docs\",\"arguments\":"
	    "{\"q\":\"det-fail-mcp\"}}}", 5000, &r);
	ck_assert_msg(r.status == 503, "%ld %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "\"detector_unavailable\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\"id\":7"));
	it_resp_free(&r);
	/* Nor is the server's own stream opened unread. */
	{
		const char *hg[] = { auth, "Accept: text/event-stream",
			"MCP-Protocol-Version: 2025-11-25", NULL };

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp/crm", port);
		it_http("GET", url, hg, NULL, 5000, &r);
		ck_assert_msg(r.status == 503 && strstr(r.body,
		    "\"detector_unavailable\""), "%ld %s", r.status, r.body);
		it_resp_free(&r);
	}
	it_stop(w, SIGTERM);
	free(rules);
	free(broken);
}
END_TEST

/* How many requests the MCP server has seen (one Authorization each). */
static int
server_seen(void)
{
	char url[128];
	struct it_resp r;
	int n = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/seen", mcp_port);
	it_http("GET", url, NULL, NULL, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	for (const char *p = r.body; (p = strstr(p, "Bearer ")) != NULL; p++)
		n++;
	it_resp_free(&r);
	return n;
}

/*
 * Whatever a client sends a server is read by the detectors, not only a
 * call's arguments: a notification's params, a response (a sampling or
 * an elicitation answer), a prompt's arguments.  What a blocking
 * detector finds is refused before the server sees it, and every message
 * leaves a record.
 */
START_TEST(mcp_client_messages_are_scanned_and_recorded)
{
	static const char key[] = "sk-proj-Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a";
	char auth[128], body[512], cmd[512];
	const char *h[] = { auth, "Content-Type: application/json",
		"Accept: application/json, text/event-stream", NULL };
	struct it_resp r;
	int seen;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", KEY_CRM);
	seen = server_seen();
	/* A notification carrying a key: its POST refused, no id to answer. */
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":"
	    "\"notifications/progress\",\"params\":{\"progressToken\":1,"
	    "\"progress\":1,\"message\":\"%s\"}}", key);
	it_http("POST", it_url("/mcp/crm"), h, body, 5000, &r);
	ck_assert_msg(r.status == 403 && strstr(r.body, "detected_secret") &&
	    strstr(r.body, "\"id\":null"), "%ld %s", r.status, r.body);
	it_resp_free(&r);
	/* A response (as to a sampling request) carrying it. */
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":\"s-1\","
	    "\"result\":{\"role\":\"assistant\",\"model\":\"m\",\"content\":"
	    "{\"type\":\"text\",\"text\":\"the key is %s\"}}}", key);
	it_http("POST", it_url("/mcp/crm"), h, body, 5000, &r);
	ck_assert_msg(r.status == 403 && strstr(r.body, "detected_secret"),
	    "%ld %s", r.status, r.body);
	it_resp_free(&r);
	/* A prompt's arguments: a request, so a JSON-RPC error for its id. */
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":"
	    "\"prompts/get\",\"params\":{\"name\":\"greet\",\"arguments\":"
	    "{\"name\":\"%s\"}}}", key);
	it_http("POST", it_url("/mcp/crm"), h, body, 5000, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "detected_secret") &&
	    strstr(r.body, "\"id\":7"), "%ld %s", r.status, r.body);
	it_resp_free(&r);
	ck_assert_int_eq(server_seen(), seen);
	/* A clean notification goes on, and is recorded too. */
	it_http("POST", it_url("/mcp/crm"), h, "{\"jsonrpc\":\"2.0\",\"method\":"
	    "\"notifications/roots/list_changed\"}", 5000, &r);
	it_resp_free(&r);
	ck_assert_int_eq(server_seen(), seen + 1);
	ck_assert(audit_has("\"kind\":\"mcp_message\"", "\"rpc\":\"notification\"",
	    "\"rule\":\"detected_secret\""));
	ck_assert(audit_has("\"kind\":\"mcp_message\"", "\"rpc\":\"response\"",
	    "\"detections\":{\"secret\":1}"));
	ck_assert(audit_has("\"kind\":\"mcp_request\"", "\"method\":\"prompts/get\"",
	    "\"rule\":\"detected_secret\""));
	ck_assert(audit_has("\"method\":\"notifications/roots/list_changed\"",
	    "\"rpc\":\"notification\"", "\"verdict\":\"allow\""));
	/* Never the value itself. */
	snprintf(cmd, sizeof(cmd), "grep -rqF '%s' %s/audit", key, it_tmpdir());
	ck_assert_int_ne(system(cmd), 0);
	/* And what a server gives back for any request, not only a tool's
	 * result, is read by the answer detectors: a prompt that repeats a
	 * ticket number (answers: true) is withheld. */
	{
		const char *hs[] = { auth, "Content-Type: application/json",
			"Accept: application/json, text/event-stream",
			"MCP-Protocol-Version: 2026-07-28",
			"Mcp-Method: prompts/get", "Mcp-Name: greet", NULL };

		it_http("POST", it_url("/mcp/crm-stateless"), hs, "{\"jsonrpc\":"
		    "\"2.0\",\"id\":8,\"method\":\"prompts/get\",\"params\":"
		    "{\"name\":\"greet\",\"arguments\":{\"who\":"
		    "\"TKT-123456\"}}}", 5000, &r);
		ck_assert_msg(r.status == 200 && strstr(r.body,
		    "detected_ticket") && strstr(r.body, "\"id\":8") &&
		    !strstr(r.body, "warmly"), "%ld %s", r.status, r.body);
		it_resp_free(&r);
		ck_assert(audit_has("\"kind\":\"mcp_request\"",
		    "\"rule\":\"detected_ticket\"",
		    "\"result_detections\":{\"ticket\":1}"));
	}
}
END_TEST

/* The loader says where each mistake in mcp_servers: is. */
START_TEST(mcp_rules_errors_say_where)
{
	char path[256], out[256], cmd[1024];
	static const char *const want[] = {
		"bad.yaml:10:5: unknown key 'colour' in mcp server",
		"bad.yaml:8:10: url must start with http:// or https://",
		"bad.yaml:9:14: 'XX' is not an ISO 3166-1 alpha-2 country code",
		"bad.yaml:12:5: mcp server id 'crm' is used twice",
		"bad.yaml:15:52: mcp server tools must be a mapping, not a list",
		"bad.yaml:15:20: mcp server 'ok': plain http:// to a host that is "
		    "not loopback; use https://",
		"bad.yaml:19:22: mcp.sampling must be allow or deny, not 'maybe'",
	};
	int st;

	snprintf(path, sizeof(path), "%s/bad.yaml", it_tmpdir());
	snprintf(out, sizeof(out), "%s/bad.out", it_tmpdir());
	it_write_file(path,
	    "version: 1\n"
	    "providers:\n"
	    "  - { id: p1, base_url: 'https://a.example', country: IE,"
	    " credential: c, models: [m] }\n"
	    "tenants:\n"
	    "  - { id: t1, routes: [p1] }\n"
	    "mcp_servers:\n"
	    "  - id: crm\n"
	    "    url: ftp://x.example\n"
	    "    country: XX\n"
	    "    colour: red\n"
	    "    tools: { a: b }\n"
	    "  - id: crm\n"
	    "    url: http://x.example\n"
	    "    country: DE\n"
	    "  - { id: ok, url: 'http://y', country: DE, tools: [a] }\n"
	    "agents:\n"
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    mcp: { sampling: maybe }\n"
	    "    tools: { b: {} }\n"
	    "    graph: { start: [b] }\n", 0600);
	snprintf(cmd, sizeof(cmd), "%s lint -c %s >%s 2>&1",
	    getenv("WARDEN_BIN"), path, out);
	st = system(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(it_file_contains(out, want[i]), "missing: %s\n%s",
		    want[i], it_read_file(out, NULL));
}
END_TEST

/* An MCP initialize to warden on port, as KEY_CRM: its HTTP status. */
static long
mcp_initialize(int port)
{
	static const char body[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
	    "\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
	    "\"capabilities\":{},\"clientInfo\":{\"name\":\"it\",\"version\":"
	    "\"1\"}}}";
	const char *h[] = { "Authorization: Bearer " KEY_CRM,
		"Content-Type: application/json",
		"Accept: application/json, text/event-stream", NULL };
	struct it_resp r;
	char url[128];
	long status;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp/crm", port);
	it_http("POST", url, h, body, 5000, &r);
	status = r.status;
	it_resp_free(&r);
	return status;
}

/*
 * MCP calls count in flight like chat requests (a call's answer holds
 * memory while the tool runs): with server.max_inflight_per_key at 1,
 * while one POST of the agent's key is in flight (its body still
 * coming), the next gets 429; once the first is gone, it passes.
 */
START_TEST(mcp_calls_count_in_flight)
{
	static const char head[] = "POST /mcp/crm HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer " KEY_CRM "\r\n"
	    "Content-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\n"
	    "Content-Length: 200\r\n\r\n{\"jsonrpc\":";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char cfg[256], saved[sizeof(it.config)], *text, *fixed, *p;
	int port = it_free_port(), fd;
	pid_t w;

	text = it_read_file(it.config, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(p = strstr(text, "\nserver:\n"));
	ck_assert(asprintf(&fixed, "%.*s\nserver:\n  max_inflight_per_key: 1\n%s",
	    (int)(p - text), text, p + 9) > 0);
	snprintf(cfg, sizeof(cfg), "%s/mcp-inflight.yaml", it_tmpdir());
	it_write_file(cfg, fixed, 0600);
	free(fixed);
	free(text);
	memcpy(saved, it.config, sizeof(saved));
	snprintf(it.config, sizeof(it.config), "%s", cfg);
	w = it_warden_start(port);
	memcpy(it.config, saved, sizeof(saved));

	ck_assert_int_eq(mcp_initialize(port), 200);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ck_assert((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(send(fd, head, sizeof(head) - 1, 0) ==
	    (ssize_t)(sizeof(head) - 1));
	/* In flight once warden has read its head (its body is being
	 * read): on a loaded machine that can take a while. */
	{
		long st = 0;

		for (int i = 0; i < 30 && st != 429; i++) {
			usleep(100000);
			st = mcp_initialize(port);
		}
		ck_assert_int_eq(st, 429);
	}
	close(fd);
	usleep(200000);
	ck_assert_int_eq(mcp_initialize(port), 200);
	ck_assert_int_eq(WEXITSTATUS(it_stop(w, SIGTERM)), 0);
}
END_TEST

Suite *
suite_mcp(void)
{
	Suite *s = suite_create("mcp");
	TCase *tc = tcase_create("gateway");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, mcp_rules_errors_say_where);
	tcase_add_test(tc, mcp_refuses_what_it_cannot_read);
	tcase_add_test(tc, mcp_sdk_client_through_warden);
	tcase_add_test(tc, mcp_detector_that_cannot_run_refuses);
	tcase_add_test(tc, mcp_client_messages_are_scanned_and_recorded);
	tcase_add_test(tc, mcp_calls_count_in_flight);
	suite_add_tcase(s, tc);
	return s;
}
