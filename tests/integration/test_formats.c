/*
 * test_formats.c - the Anthropic Messages, OpenAI Responses and Embeddings
 * endpoints end to end: real warden, the real mock providers (which speak
 * every format), the official @anthropic-ai/sdk and openai npm clients
 * (tests/openai-node/formats/formats.mjs).  For each format: residency
 * denial, fallback that stays compliant, a forbidden tool call stopped
 * mid-stream before any of it goes out, errors in the caller's format,
 * and one audit record per transaction naming the format.
 *
 * The shared environment's mocks (eu, de, us) with tests/fixtures/
 * formats.yaml in place of env.yaml.
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define KEY_EU "wk-it-formats-eu"
#define KEY_US "wk-it-formats-us"
#define KEY_AGENT "wk-it-formats-agent"

static void
digest(const char *key, char out[72])
{
	unsigned char d[32];
	char hex[65];

	wd_sha256(key, strlen(key), d);
	wd_hex(d, 32, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

static void
setup(void)
{
	char port[16], mock[3][16], keu[72], kus[72], kag[72], *text;

	it_env_start(NULL);
	it_stop(it.warden, SIGTERM);
	snprintf(port, sizeof(port), "%d", it.port);
	for (int i = 0; i < 3; i++)
		snprintf(mock[i], sizeof(mock[i]), "%d", it.mock_port[i]);
	digest(KEY_EU, keu);
	digest(KEY_US, kus);
	digest(KEY_AGENT, kag);
	text = it_fixture("formats.yaml", (const char *const[]){
		"PORT", port, "TMPDIR", it_tmpdir(), "MOCK_EU", mock[0],
		"MOCK_DE", mock[1], "MOCK_US", mock[2], "KEY_EU", keu,
		"KEY_US", kus, "KEY_AGENT", kag, "SECRET_EU", IT_SECRET_EU,
		"SECRET_DE", IT_SECRET_DE, "SECRET_US", IT_SECRET_US, NULL });
	it_write_file(it.config, text, 0600);
	free(text);
	it.warden = it_warden_start(it.port);
}

static void
teardown(void)
{
	it_env_stop();
}

static void
post(const char *path, const char *const *hdrs, const char *body,
    struct it_resp *r)
{
	it_http("POST", it_url(path), hdrs, body, 10000, r);
}

#define ANTH(key) (const char *const[]){ "x-api-key: " key, \
	"anthropic-version: 2023-06-01", "anthropic-beta: tools-2024-05-16", \
	"Content-Type: application/json", NULL }
#define BEARER(key) (const char *const[]){ "Authorization: Bearer " key, \
	"Content-Type: application/json", NULL }

/* An Anthropic error: {"type":"error","error":{"type":T,"message":...}}. */
static void
assert_anthropic_error(const struct it_resp *r, long status, const char *type,
    const char *fragment)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *e = json_object_get(j, "error");

	ck_assert_msg(r->status == status, "status %ld: %s", r->status, r->body);
	ck_assert_msg(json_is_object(j) && json_object_size(j) == 2, "%s",
	    r->body);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "type")), type);
	if (fragment != NULL)
		ck_assert_msg(strstr(json_string_value(json_object_get(e,
		    "message")), fragment) != NULL, "%s", r->body);
	json_decref(j);
}

START_TEST(residency_denial_in_each_format)
{
	struct it_resp r;

	post("/v1/messages", ANTH(KEY_US), "{\"model\":\"claude-x\","
	    "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x res-m\"}]}", &r);
	assert_anthropic_error(&r, 403, "permission_error", "residency");
	it_resp_free(&r);
	post("/v1/responses", BEARER(KEY_US), "{\"model\":\"gpt-x\",\"input\":"
	    "\"x res-r\"}", &r);
	it_assert_error(&r, 403, NULL, "residency", NULL);
	it_resp_free(&r);
	post("/v1/embeddings", BEARER(KEY_US), "{\"model\":\"emb-x\",\"input\":"
	    "\"x res-e\"}", &r);
	it_assert_error(&r, 403, NULL, "residency", NULL);
	it_resp_free(&r);
	/* Nothing of them reached any provider. */
	for (int i = 0; i < 3; i++)
		ck_assert(!it_record_has(i, "res-m") && !it_record_has(i, "res-r")
		    && !it_record_has(i, "res-e"));
}
END_TEST

START_TEST(fallback_stays_compliant_in_each_format)
{
	static const struct {
		const char *path, *body, *token;
		bool anth;
	} c[] = {
		{ "/v1/messages", "{\"model\":\"claude-x\",\"max_tokens\":9,"
		    "\"messages\":[{\"role\":\"user\",\"content\":\"fb-m\"}]}",
		    "fb-m", true },
		{ "/v1/responses", "{\"model\":\"gpt-x\",\"input\":\"fb-r\"}",
		    "fb-r", false },
		{ "/v1/embeddings", "{\"model\":\"emb-x\",\"input\":[\"fb-e\"]}",
		    "fb-e", false },
	};
	struct it_resp r;
	char route[64];

	for (size_t i = 0; i < 3; i++) {
		it_mock_config(0, "{\"fail_next\":1,\"status\":500}");
		post(c[i].path, c[i].anth ? ANTH(KEY_EU) : BEARER(KEY_EU),
		    c[i].body, &r);
		ck_assert_msg(r.status == 200, "%s: %ld %s", c[i].path, r.status,
		    r.body);
		ck_assert_str_eq(it_resp_header(&r, "x-warden-route", route,
		    sizeof(route)), "p-de");
		ck_assert(it_record_has(0, c[i].token));
		ck_assert(it_record_has(1, c[i].token));
		ck_assert_msg(!it_record_has(2, c[i].token), "%s went to the US",
		    c[i].path);
		it_resp_free(&r);
	}
}
END_TEST

/* The stream as the client got it: no byte of send_email, and the
 * format's own error event last. */
START_TEST(forbidden_call_stopped_mid_stream_in_each_format)
{
	struct it_resp r;

	post("/v1/messages", ANTH(KEY_AGENT), "{\"model\":\"claude-x\","
	    "\"max_tokens\":9,\"stream\":true,\"tools\":[{\"name\":"
	    "\"read_customer\",\"input_schema\":{}}],\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x [[mock tool_call=read_customer,send_email]]\"}]}", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "\"name\":\"send_email\"") == NULL, "%s",
	    r.body);
	ck_assert(strstr(r.body, "\"name\":\"read_customer\"") != NULL);
	ck_assert_msg(strstr(r.body, "event: error\ndata: {\"type\":\"error\","
	    "\"error\":{\"type\":") != NULL, "%s", r.body);
	ck_assert(strstr(r.body, "message_stop") == NULL);
	it_resp_free(&r);
	post("/v1/responses", BEARER(KEY_AGENT), "{\"model\":\"gpt-x\","
	    "\"stream\":true,\"tools\":[{\"type\":\"function\",\"name\":"
	    "\"read_customer\",\"parameters\":{}}],\"input\":\"x [[mock "
	    "tool_call=read_customer,send_email]]\"}", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "\"name\":\"send_email\"") == NULL, "%s",
	    r.body);
	ck_assert(strstr(r.body, "event: error\ndata: {\"type\":\"error\","
	    "\"code\":\"tool_policy\"") != NULL);
	ck_assert(strstr(r.body, "response.completed") == NULL);
	it_resp_free(&r);
}
END_TEST

/* Unlisted provider-side tools are refused, not passed or stripped. */
START_TEST(provider_side_tool_not_listed_is_refused)
{
	struct it_resp r;

	post("/v1/responses", BEARER(KEY_AGENT), "{\"model\":\"gpt-x\","
	    "\"tools\":[{\"type\":\"code_interpreter\",\"container\":{\"type\":"
	    "\"auto\"}}],\"input\":\"pst-r\"}", &r);
	it_assert_error(&r, 403, NULL, "tool_policy", NULL);
	it_resp_free(&r);
	post("/v1/messages", ANTH(KEY_AGENT), "{\"model\":\"claude-x\","
	    "\"max_tokens\":9,\"tools\":[{\"type\":\"code_execution_20250522\","
	    "\"name\":\"code_execution\"}],\"messages\":[{\"role\":\"user\","
	    "\"content\":\"pst-m\"}]}", &r);
	assert_anthropic_error(&r, 403, "permission_error", "code_execution");
	it_resp_free(&r);
	for (int i = 0; i < 3; i++)
		ck_assert(!it_record_has(i, "pst-r") && !it_record_has(i, "pst-m"));
}
END_TEST

/* Claude Code's contract: anthropic-version and -beta go through as they
 * are; the provider gets the route's credential in x-api-key. */
START_TEST(anthropic_headers_forwarded)
{
	struct it_resp r;
	char *rec;

	post("/v1/messages", ANTH(KEY_EU), "{\"model\":\"claude-x\","
	    "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"hdr-m\"}]}", &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	rec = it_record_find(0, "hdr-m");
	ck_assert_ptr_nonnull(rec);
	ck_assert_msg(strstr(rec, "\"anthropic-version\":\"2023-06-01\"") !=
	    NULL, "%s", rec);
	ck_assert(strstr(rec, "\"anthropic-beta\":\"tools-2024-05-16\"") != NULL);
	ck_assert(strstr(rec, "\"x-api-key\":\"" IT_SECRET_EU "\"") != NULL);
	ck_assert(strstr(rec, KEY_EU) == NULL);
	free(rec);
}
END_TEST

START_TEST(format_a_route_does_not_speak)
{
	struct it_resp r;

	post("/v1/messages", ANTH(KEY_EU), "{\"model\":\"chat-only-x\","
	    "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x\"}]}", &r);
	assert_anthropic_error(&r, 400, "invalid_request_error",
	    "anthropic-messages");
	it_resp_free(&r);
}
END_TEST

/* The formats' codes are the catalogue's: on the Anthropic path in the
 * message, on the OpenAI paths in code. */
START_TEST(format_codes_from_the_catalogue)
{
	struct it_resp r;

	post("/v1/messages", ANTH(KEY_EU), "{\"model\":\"chat-only-x\","
	    "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x\"}]}", &r);
	assert_anthropic_error(&r, 400, "invalid_request_error",
	    "(warden: api_not_served)");
	it_resp_free(&r);
	post("/v1/responses", BEARER(KEY_EU), "{\"model\":\"chat-only-x\","
	    "\"input\":\"x\"}", &r);
	it_assert_error(&r, 400, "invalid_request_error", "api_not_served",
	    NULL);
	it_resp_free(&r);
	/* An id warden never saw goes nowhere: 404, not a route's guess. */
	post("/v1/responses", BEARER(KEY_EU), "{\"model\":\"gpt-x\","
	    "\"input\":\"x\",\"previous_response_id\":\"resp_never\"}", &r);
	it_assert_error(&r, 404, "invalid_request_error", "unknown_response",
	    NULL);
	it_resp_free(&r);
}
END_TEST

START_TEST(models_in_the_callers_format)
{
	struct it_resp r;

	it_http("GET", it_url("/v1/models"), (const char *const[]){
	    "x-api-key: " KEY_EU, "anthropic-version: 2023-06-01", NULL }, NULL,
	    5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "\"type\":\"model\"") != NULL &&
	    strstr(r.body, "\"has_more\":false") != NULL, "%s", r.body);
	it_resp_free(&r);
	it_http("GET", it_url("/v1/models"), BEARER(KEY_EU), NULL, 5000, &r);
	ck_assert(strstr(r.body, "\"object\":\"list\"") != NULL);
	it_resp_free(&r);
}
END_TEST

/* Every request above is one record, and names its format. */
START_TEST(one_record_per_transaction)
{
	const char *ids[3] = { "it-fmt-rec-m", "it-fmt-rec-r", "it-fmt-rec-e" };
	const char *paths[3] = { "/v1/messages", "/v1/responses",
		"/v1/embeddings" };
	const char *bodies[3] = { "{\"model\":\"claude-x\",\"max_tokens\":9,"
	    "\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x\"}]}", "{\"model\":\"gpt-x\",\"input\":\"x\",\"stream\":true}",
	    "{\"model\":\"emb-x\",\"input\":\"x\"}" };
	const char *apis[3] = { "anthropic-messages", "openai-responses",
		"openai-embeddings" };
	char cmd[512], *out;

	for (int i = 0; i < 3; i++) {
		struct it_resp r;
		char h[64];

		snprintf(h, sizeof(h), "X-Request-Id: %s", ids[i]);
		post(paths[i], (const char *const[]){ "x-api-key: " KEY_EU,
		    "Authorization: Bearer " KEY_EU, h, NULL }, bodies[i], &r);
		ck_assert_msg(r.status == 200, "%s %ld %s", paths[i], r.status,
		    r.body);
		it_resp_free(&r);
	}
	/* Records are group-committed: wait (at most 5 s) for the last. */
	for (int w = 0; w < 50; w++) {
		snprintf(cmd, sizeof(cmd), "cat %s/audit/*.jsonl | grep -c '%s'",
		    it_tmpdir(), ids[2]);
		it_run(cmd, &out, NULL);
		w = atoi(out) > 0 ? 50 : w;
		free(out);
		usleep(100 * 1000);
	}
	for (int i = 0; i < 3; i++) {
		/* A stream's end is a stream_end line of the same record's
		 * decision (issue 11): the transaction's record is one. */
		snprintf(cmd, sizeof(cmd), "cat %s/audit/*.jsonl | grep "
		    "'\"kind\":\"request\"' | grep -c '\"request_id\":\"%s\"'",
		    it_tmpdir(), ids[i]);
		it_run(cmd, &out, NULL);
		if (atoi(out) != 1) {
			char dbg[1200], *o2;

			snprintf(dbg, sizeof(dbg), "grep -h '%s' %s/audit/*.jsonl | "
			    "cut -c1-200", ids[i], it_tmpdir());
			it_run(dbg, &o2, NULL);
			ck_abort_msg("%s: %s records: %s", ids[i], out, o2);
		}
		free(out);
		snprintf(cmd, sizeof(cmd), "cat %s/audit/*.jsonl | grep "
		    "'\"request_id\":\"%s\"' | grep -c '\"api\":\"%s\"'",
		    it_tmpdir(), ids[i], apis[i]);
		it_run(cmd, &out, NULL);
		ck_assert_msg(atoi(out) == 1, "%s names no format", ids[i]);
		free(out);
	}
}
END_TEST

START_TEST(official_clients)
{
	char cmd[1024], *out = NULL;
	int rc;

	snprintf(cmd, sizeof(cmd), "WARDEN_URL=%s WARDEN_KEY=%s WARDEN_US_KEY=%s "
	    "WARDEN_AGENT_KEY=%s MOCK_EU_URL=http://127.0.0.1:%d node --test "
	    "tests/openai-node/formats/formats.mjs", it.base, KEY_EU, KEY_US,
	    KEY_AGENT, it.mock_port[0]);
	rc = it_run(cmd, &out, NULL);
	if (rc != 0) {
		char fails[3000] = "", *save = NULL, *line;
		size_t n = 0;

		/* Check's messages are short: the failing tests' names. */
		for (line = strtok_r(out ? out : "", "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			if ((strncmp(line, "not ok", 6) == 0 || strstr(line,
			    "error:") != NULL) && n + strlen(line) + 2 < 2000)
				n += (size_t)snprintf(fails + n, sizeof(fails) - n,
				    "%s\n", line);
		ck_abort_msg("the official clients failed:\n%s", fails);
	}
	free(out);
}
END_TEST

/* Content detection on answers, judged by the official clients
 * (tests/openai-node/formats/detect.mjs). */
START_TEST(answer_detection_in_each_format)
{
	char cmd[1024], *out = NULL;
	int rc;

	snprintf(cmd, sizeof(cmd), "WARDEN_URL=%s WARDEN_KEY=%s node --test "
	    "tests/openai-node/formats/detect.mjs 2>&1", it.base, KEY_EU);
	rc = it_run(cmd, &out, NULL);
	ck_assert_msg(rc == 0, "the official clients failed:\n%.3000s",
	    out ? out : "");
	free(out);
}
END_TEST

Suite *
suite_formats(void)
{
	Suite *s = suite_create("formats");
	TCase *tc = tcase_create("formats");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, residency_denial_in_each_format);
	tcase_add_test(tc, fallback_stays_compliant_in_each_format);
	tcase_add_test(tc, forbidden_call_stopped_mid_stream_in_each_format);
	tcase_add_test(tc, provider_side_tool_not_listed_is_refused);
	tcase_add_test(tc, anthropic_headers_forwarded);
	tcase_add_test(tc, format_a_route_does_not_speak);
	tcase_add_test(tc, format_codes_from_the_catalogue);
	tcase_add_test(tc, models_in_the_callers_format);
	tcase_add_test(tc, one_record_per_transaction);
	tcase_add_test(tc, official_clients);
	tcase_add_test(tc, answer_detection_in_each_format);
	suite_add_tcase(s, tc);
	return s;
}
