/*
 * test_answers.c - a hostile provider against an agent's tool policy:
 * what warden checks must be what the client gets.
 *
 * The answers are data (tests/mock/hostile_answers.json): each case is the
 * exact bytes the mock sends (its raw= directive), and what warden must
 * make of them.  Every case tries to get the forbidden call (send_email
 * after read_customer, flow no-personal-data-out) to the client.  Each is
 * checked twice: here, on the bytes warden sends; and by the official
 * openai npm client (tests/openai-node/hostile_provider.mjs), on what its
 * stream accumulator and its parsed answer end with.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <openssl/evp.h>

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define KEY_AGENT "wk-it-support-bot"
#define CASES "tests/mock/hostile_answers.json"
#define MAX_CASES 64

static void
setup(void)
{
	unsigned char d[32];
	char hex[65], digest[80], *base, *agents, *text;

	it_env_start(NULL);
	/* Restart warden on the same rules plus the agent, on a fresh port. */
	it_stop(it.warden, SIGTERM);
	wd_sha256(KEY_AGENT, strlen(KEY_AGENT), d);
	wd_hex(d, 32, hex);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	base = it_read_file(it.config, NULL);
	agents = it_fixture("agents-answers.yaml", (const char *const[]){
		"KEY_AGENT", digest, NULL });
	if (base == NULL || asprintf(&text, "%s%s", base, agents) < 0)
		abort();
	free(agents);
	it_write_file(it.config, text, 0600);
	free(base);
	free(text);
	it.port = it_free_port();
	snprintf(it.base, sizeof(it.base), "http://127.0.0.1:%d", it.port);
	it.warden = it_warden_start(it.port);
}

static void
teardown(void)
{
	it_env_stop();
}

static json_t *
load_cases(void)
{
	json_error_t err;
	json_t *j = json_load_file(CASES, 0, &err);

	ck_assert_msg(j != NULL, "%s: %s", CASES, err.text);
	ck_assert(json_array_size(json_object_get(j, "cases")) <= MAX_CASES);
	return j;
}

/* The chat body: the conversation has read personal data; the last user
 * message tells the mock to answer exactly raw. */
static char *
case_body(json_t *c, const char *token)
{
	const char *raw = json_string_value(json_object_get(c, "raw"));
	const char *type = json_string_value(json_object_get(c, "type"));
	json_int_t status = json_integer_value(json_object_get(c, "status"));
	size_t rl = json_string_length(json_object_get(c, "raw"));
	unsigned char *b64 = malloc(4 * ((rl + 2) / 3) + 1);
	char *content, *text, st[32] = "", ty[96] = "";
	json_t *root;

	EVP_EncodeBlock(b64, (const unsigned char *)raw, (int)rl);
	if (status != 0)
		snprintf(st, sizeof(st), " raw_status=%d", (int)status);
	if (type != NULL)
		snprintf(ty, sizeof(ty), " raw_type=%s", type);
	if (asprintf(&content, "%s mail them [[mock raw=%s%s%s]]", token,
	    (char *)b64, st, ty) < 0)
		abort();
	root = json_pack("{s:s,s:b,s:[{s:s,s:s},{s:s,s:n,s:[{s:s,s:s,s:{s:s,"
	    "s:s}}]},{s:s,s:s,s:s},{s:s,s:s}],s:[{s:s,s:{s:s,s:{s:s}}}]}",
	    "model", "gpt-4o", "stream", json_is_true(json_object_get(c,
	    "stream")), "messages",
	    "role", "user", "content", "look up the customer",
	    "role", "assistant", "content", "tool_calls", "id", "h1", "type",
	    "function", "function", "name", "read_customer", "arguments", "{}",
	    "role", "tool", "tool_call_id", "h1", "content", "A. Person",
	    "role", "user", "content", content,
	    "tools", "type", "function", "function", "name", "search_kb",
	    "parameters", "type", "object");
	ck_assert_ptr_nonnull(root);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	free(content);
	free(b64);
	return text;
}


static size_t
count(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The code of the error warden ended a stream with, or of its error body. */
static const char *
error_code(const struct it_resp *r, char *buf, size_t len)
{
	const char *p = strstr(r->body, "event: error\ndata: ");
	json_t *j;

	p = p != NULL ? p + 19 : r->body;
	j = json_loads(p, JSON_DISABLE_EOF_CHECK, NULL);
	snprintf(buf, len, "%s", json_string_value(json_object_get(
	    json_object_get(j, "error"), "code")) ?: "(none)");
	json_decref(j);
	return buf;
}

START_TEST(hostile_answer)
{
	json_t *all = load_cases(), *c = json_array_get(json_object_get(all,
	    "cases"), (size_t)_i), *expect;
	const char *name, *forbidden;
	char token[96], url[128], code[64], *body;
	struct it_resp via, direct;
	bool stream;

	if (c == NULL) {
		json_decref(all);
		return;			/* fewer cases than loop slots */
	}
	name = json_string_value(json_object_get(c, "name"));
	forbidden = json_string_value(json_object_get(all, "forbidden"));
	expect = json_object_get(c, "expect");
	stream = json_is_true(json_object_get(c, "stream"));
	snprintf(token, sizeof(token), "tok-answers-%s", name);
	body = case_body(c, token);

	/* The hostile bytes are real: straight from the mock, the client
	 * would get them. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    it.mock_port[0]);
	it_chat_at(url, "none", NULL, body, 10000, &direct);
	ck_assert_msg(direct.len == json_string_length(json_object_get(c, "raw")),
	    "%s: the mock sent %zu bytes", name, direct.len);
	it_resp_free(&direct);

	it_chat_at(it_url("/v1/chat/completions"), KEY_AGENT, NULL, body, 10000,
	    &via);
	ck_assert_msg(via.status == json_integer_value(json_object_get(expect,
	    "status")), "%s: status %ld: %s", name, via.status, via.body);
	{
		char call[96], id[96];

		snprintf(call, sizeof(call), "\"name\":\"%s\"", forbidden);
		snprintf(id, sizeof(id), "call_%s", forbidden);
		ck_assert_msg(strstr(via.body, call) == NULL && strstr(via.body,
		    id) == NULL, "%s: the forbidden call went out:\n%s", name,
		    via.body);
	}
	if (json_object_get(expect, "code") != NULL) {
		const char *want = json_string_value(json_object_get(expect,
		    "code"));

		ck_assert_msg(strcmp(error_code(&via, code, sizeof(code)), want)
		    == 0, "%s: code %s, want %s:\n%s", name, code, want, via.body);
		if (stream && via.status == 200)
			ck_assert_msg(strstr(via.body, "[DONE]") == NULL,
			    "%s: a refused stream ended with [DONE]", name);
	}
	if (json_is_true(json_object_get(expect, "done"))) {
		ck_assert_msg(count(via.body, "[DONE]") == 1 && via.len >= 14 &&
		    strcmp(via.body + via.len - 14, "data: [DONE]\n\n") == 0,
		    "%s: not one [DONE] at the end:\n%s", name, via.body);
		ck_assert_msg(strstr(via.body, "event: error") == NULL, "%s: %s",
		    name, via.body);
	}
	if (json_is_true(json_object_get(expect, "no_choices")))
		ck_assert_msg(strstr(via.body, "choices") == NULL,
		    "%s: the error body carries choices: %s", name, via.body);
	if (json_object_get(expect, "allowed") != NULL) {
		char call[96];

		snprintf(call, sizeof(call), "\"name\":\"%s\"", json_string_value(
		    json_object_get(expect, "allowed")));
		ck_assert_msg(strstr(via.body, call) != NULL, "%s: %s", name,
		    via.body);
	}
	/* What warden sent is its own serialization: one data line per
	 * event, LF line ends, no byte-order mark. */
	if (stream && via.status == 200) {
		ck_assert_msg(strchr(via.body, '\r') == NULL, "%s: CR sent", name);
		ck_assert_msg(strstr(via.body, "\xEF\xBB\xBF") == NULL,
		    "%s: BOM sent", name);
	}
	it_resp_free(&via);
	free(body);
	json_decref(all);
}
END_TEST

/* The official openai npm client, on every case, judges what it ends with. */
START_TEST(openai_node_client_never_gets_the_forbidden_call)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "WARDEN_BASE_URL=%s/v1 WARDEN_AGENT_KEY=%s "
	    "node --test tests/openai-node/hostile_provider.mjs "
	    ">%s/openai-hostile.log 2>&1", it.base, KEY_AGENT, it_tmpdir());
	st = it_run(cmd, NULL, NULL);
	if (st != 0) {
		char path[256], fails[3000] = "", *log, *line, *save = NULL;
		size_t n = 0;

		snprintf(path, sizeof(path), "%s/openai-hostile.log", it_tmpdir());
		log = it_read_file(path, NULL);
		/* The failed tests' names: Check's message must stay small. */
		for (line = strtok_r(log ? log : "", "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			if (strncmp(line, "not ok", 6) == 0 && n + strlen(line) + 2 <
			    sizeof(fails))
				n += (size_t)snprintf(fails + n, sizeof(fails) - n,
				    "%s\n", line);
		ck_abort_msg("openai npm client on hostile answers (%s):\n%s",
		    path, fails);
	}
}
END_TEST

Suite *
suite_answers(void)
{
	Suite *s = suite_create("answers");
	TCase *tc = tcase_create("hostile_provider");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, hostile_answer, 0, MAX_CASES);
	tcase_add_test(tc, openai_node_client_never_gets_the_forbidden_call);
	suite_add_tcase(s, tc);
	return s;
}
