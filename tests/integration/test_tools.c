/*
 * test_tools.c - agent tool policies as callers and providers see them:
 * histories that break the graph, offered tools stripped or refused,
 * tool calls in answers (whole and streamed) removed or stopped, sessions
 * warden records, agent identity, and the `warden policy` review commands.
 *
 * The fixture starts the usual environment, then restarts warden on a
 * copy of its rules with an `agents:` section appended.  Tenant t1's
 * routes are p-eu (mock 0) and p-de (mock 1).
 */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define KEY_DENY "wk-it-agent-deny"	/* agent deny-bot of t1 */
#define KEY_STRIP "wk-it-agent-strip"	/* agent strip-bot of t1 */
#define KEY_LIM "wk-it-agent-lim"	/* agent lim-bot of t1 */
#define KEY_LIM2 "wk-it-agent-lim-2"	/* lim-bot too */
#define KEY_REQ "wk-it-agent-req"	/* agent req-bot of t1 */

extern char **environ;

static void
digest_line(const char *key, char out[72])
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
	char kd[72], ks[72], kl[72], kl2[72], kr[72], *base, *agents, *text;
	int port;

	it_env_start(NULL);
	/* Restart warden on the same rules plus agents, on a fresh port. */
	it_stop(it.warden, SIGTERM);
	digest_line(KEY_DENY, kd);
	digest_line(KEY_STRIP, ks);
	digest_line(KEY_LIM, kl);
	digest_line(KEY_LIM2, kl2);
	digest_line(KEY_REQ, kr);
	base = it_read_file(it.config, NULL);
	agents = it_fixture("agents-tools.yaml", (const char *const[]){
		"KEY_DENY", kd, "KEY_STRIP", ks, "KEY_LIM", kl, "KEY_LIM2", kl2,
		"KEY_REQ", kr, NULL });
	if (base == NULL || asprintf(&text, "%s%s", base, agents) < 0)
		abort();
	it_write_file(it.config, text, 0600);
	free(base);
	free(agents);
	free(text);
	/* On a port that is not yet it.port: an audit log of its own, so
	 * that the session flood's 10,051 records do not become the next
	 * suites' log. */
	port = it_free_port();
	it.warden = it_warden_start(port);
	it.port = port;
	snprintf(it.base, sizeof(it.base), "http://127.0.0.1:%d", it.port);
}

static void
teardown(void)
{
	it_env_stop();
}

/* ---- requests ---- */

/* A string list, NULL-terminated; L() makes one inline. */
#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

struct req {
	const char *token;		/* unique text in the user message */
	bool stream;
	const char *const *history;	/* earlier tool calls, in order */
	const char *const *tools;	/* offered tools */
	const char *tool_choice;	/* forced tool, or NULL */
	const char *answer;		/* tool calls the mock answers with */
	const char *mock;		/* more mock directives ("k=v ...") */
};

static char *
body_of(const struct req *q)
{
	json_t *root = json_object(), *msgs = json_array();
	char *content, *text;

	for (size_t i = 0; q->history != NULL && q->history[i] != NULL; i++) {
		char id[32];

		snprintf(id, sizeof(id), "hist_%zu", i);
		json_array_append_new(msgs, json_pack("{s:s,s:n,s:[{s:s,s:s,"
		    "s:{s:s,s:s}}]}", "role", "assistant", "content", "tool_calls",
		    "id", id, "type", "function", "function", "name",
		    q->history[i], "arguments", "{}"));
		json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role",
		    "tool", "tool_call_id", id, "content", "result"));
	}
	if (asprintf(&content, "%s%s%s%s%s%s%s", q->token, q->answer ?
	    " [[mock tool_call=" : "", q->answer ? q->answer : "",
	    q->answer ? "]]" : "", q->mock ? " [[mock " : "",
	    q->mock ? q->mock : "", q->mock ? "]]" : "") < 0)
		abort();
	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user",
	    "content", content));
	free(content);
	json_object_set_new(root, "model", json_string("gpt-4o"));
	json_object_set_new(root, "stream", json_boolean(q->stream));
	json_object_set_new(root, "messages", msgs);
	if (q->tools != NULL) {
		json_t *tools = json_array();

		for (size_t i = 0; q->tools[i] != NULL; i++)
			json_array_append_new(tools, json_pack("{s:s,s:{s:s,s:{s:s}}}",
			    "type", "function", "function", "name", q->tools[i],
			    "parameters", "type", "object"));
		json_object_set_new(root, "tools", tools);
	}
	if (q->tool_choice != NULL)
		json_object_set_new(root, "tool_choice", json_pack("{s:s,s:{s:s}}",
		    "type", "function", "function", "name", q->tool_choice));
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}


/* send_req with a timeout of its own (a client that gives up). */
static void
send_req_timeout(const char *key, const char *h1, const char *h2,
    const struct req *q, long timeout_ms, struct it_resp *r)
{
	char *body = body_of(q);
	const char *h[] = { h1 != NULL ? h1 : h2, h1 != NULL ? h2 : NULL, NULL };

	it_chat_at(it_url("/v1/chat/completions"), key, h, body, timeout_ms, r);
	free(body);
}

/* POST q to warden as key, with up to two extra header lines. */
static void
send_req(const char *key, const char *h1, const char *h2, const struct req *q,
    struct it_resp *r)
{
	send_req_timeout(key, h1, h2, q, 10000, r);
}

/* The same request straight to mock 0, as warden would forward it. */
static void
send_direct(const struct req *q, struct it_resp *r)
{
	char url[128], *body = body_of(q);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    it.mock_port[0]);
	it_chat_at(url, NULL, NULL, body, 10000, r);
	free(body);
}


/* Neither route of t1 received a request with token. */
static void
assert_not_forwarded(const char *token)
{
	for (int i = 0; i < 3; i++) {
		char *line = it_record_find(i, token);

		ck_assert_msg(line == NULL, "mock %d received it: %s", i, line);
	}
}

/* The body mock 0 received for the request with token, as JSON. */
static json_t *
received_body(const char *token)
{
	char *line = it_record_find(0, token);
	json_t *rec, *body;

	ck_assert_msg(line != NULL, "mock 0 did not receive '%s'", token);
	rec = json_loads(line, 0, NULL);
	free(line);
	ck_assert_ptr_nonnull(rec);
	body = json_loads(json_string_value(json_object_get(rec, "body")), 0, NULL);
	json_decref(rec);
	ck_assert_ptr_nonnull(body);
	return body;
}

/* The names of the tools in a request body, comma-separated ("" if none;
 * "<absent>" when the body has no tools at all). */
static void
tool_names(json_t *body, char *out, size_t len)
{
	json_t *tools = json_object_get(body, "tools"), *t;
	size_t i, n = 0;

	out[0] = '\0';
	if (tools == NULL) {
		snprintf(out, len, "<absent>");
		return;
	}
	json_array_foreach(tools, i, t)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "," : "",
		    json_string_value(json_object_get(json_object_get(t,
		    "function"), "name")));
}

/* The tool calls of a non-streamed answer, comma-separated, and its
 * finish_reason. */
static void
answer_calls(const struct it_resp *r, char *out, size_t len, char *finish,
    size_t flen)
{
	json_t *j = json_loads(r->body, 0, NULL), *ch, *calls, *c;
	size_t i, n = 0;

	ck_assert_msg(j != NULL, "answer not JSON: %s", r->body);
	ch = json_array_get(json_object_get(j, "choices"), 0);
	calls = json_object_get(json_object_get(ch, "message"), "tool_calls");
	out[0] = '\0';
	if (calls == NULL)
		snprintf(out, len, "<absent>");
	json_array_foreach(calls, i, c)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "," : "",
		    json_string_value(json_object_get(json_object_get(c,
		    "function"), "name")));
	snprintf(finish, flen, "%s",
	    json_string_value(json_object_get(ch, "finish_reason")));
	json_decref(j);
}

/* Replace the digits after each prefix with 'N'. */
static void
normalize(char *s, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (char *p = strstr(s, prefix); p != NULL; p = strstr(p, prefix)) {
		p += pl;
		while (*p >= '0' && *p <= '9')
			*p++ = 'N';
	}
}

static void
normalize_all(char *s)
{
	normalize(s, "chatcmpl-mock-");
	normalize(s, "\"created\":");
	normalize(s, "\"created\": ");
	normalize(s, "\"id\":\"call_");
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL;
	    p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ---- the request ---- */

START_TEST(history_breaking_the_graph_is_refused)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-hist-1", .history = L("ticket") };

	/* ticket may not come first. */
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'graph'", "may not call 'ticket' after 'start'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* A flow broken in the history: read, then email. */
	q.token = "tok-tools-hist-2";
	q.history = L("read", "email");
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'no-pii-out'", "'email'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* strip is about offered tools: a broken history is refused the same,
	 * streamed or not. */
	q.token = "tok-tools-hist-3";
	q.stream = true;
	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'no-pii-out'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* An undeclared tool in the history. */
	q.token = "tok-tools-hist-4";
	q.stream = false;
	q.history = L("search", "rm_rf");
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'undeclared_tool'", "'rm_rf'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* The same history without the offence goes through untouched. */
	q.token = "tok-tools-hist-5";
	q.history = L("search", "read", "ticket");
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	json_decref(received_body(q.token));
}
END_TEST

START_TEST(deny_agent_offered_tool_not_allowed_next)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-offer-1",
		.tools = L("search", "email") };
	json_t *b;
	char names[256];

	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("'email'", "rule 'graph'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* After search, both may come next: offered as they are. */
	q.token = "tok-tools-offer-2";
	q.history = L("search");
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "search,email");
	json_decref(b);

	/* After read, email is cut by the flow rule. */
	q.token = "tok-tools-offer-3";
	q.history = L("read");
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("'email'", "rule 'no-pii-out'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
}
END_TEST

START_TEST(strip_agent_offered_tools_are_removed)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-strip-1", .history = L("read"),
		.tools = L("search", "email", "ticket") };
	json_t *b;
	char names[256];

	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "search,ticket");
	/* The rest of the request is as it was sent. */
	ck_assert_uint_eq(json_array_size(json_object_get(b, "messages")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(b, "model")), "gpt-4o");
	json_decref(b);

	/* Forcing a tool that was stripped cannot be honoured. */
	q.token = "tok-tools-strip-2";
	q.tool_choice = "email";
	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("tool_choice names 'email'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* Forcing one that stays is fine. */
	q.token = "tok-tools-strip-3";
	q.tool_choice = "ticket";
	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "search,ticket");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(b, "tool_choice"), "function"), "name")), "ticket");
	json_decref(b);

	/* Nothing left to offer: no tools, no tool_choice go upstream. */
	q.token = "tok-tools-strip-4";
	q.history = NULL;
	q.tools = L("ticket", "email");
	q.tool_choice = NULL;
	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "<absent>");
	ck_assert_ptr_null(json_object_get(b, "tool_choice"));
	json_decref(b);
}
END_TEST

/* ---- the answer, whole ---- */

START_TEST(answer_with_forbidden_call_deny)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-ans-1", .answer = "ticket" };

	/* The mock answers with ticket, which may not come first. */
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'graph'", "'ticket'"));
	ck_assert(strstr(r.body, "call_") == NULL);
	it_resp_free(&r);
	json_decref(received_body(q.token));

	/* read then email: the second call breaks the flow rule. */
	q.token = "tok-tools-ans-2";
	q.answer = "read,email";
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("rule 'no-pii-out'"));
	it_resp_free(&r);
}
END_TEST

START_TEST(answer_with_forbidden_call_strip)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-ans-3", .answer = "read,email" };
	char calls[256], finish[64];

	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	answer_calls(&r, calls, sizeof(calls), finish, sizeof(finish));
	ck_assert_str_eq(calls, "read");
	ck_assert_str_eq(finish, "tool_calls");
	ck_assert(strstr(r.body, "email") == NULL);
	it_resp_free(&r);

	/* Nothing allowed is left: a plain answer that stopped. */
	q.token = "tok-tools-ans-4";
	q.answer = "email";
	send_req(KEY_STRIP, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	answer_calls(&r, calls, sizeof(calls), finish, sizeof(finish));
	ck_assert_str_eq(calls, "<absent>");
	ck_assert_str_eq(finish, "stop");
	ck_assert(strstr(r.body, "email") == NULL);
	{
		json_t *j = json_loads(r.body, 0, NULL);
		json_t *m = json_object_get(json_array_get(json_object_get(j,
		    "choices"), 0), "message");

		ck_assert(json_is_string(json_object_get(m, "content")));
		json_decref(j);
	}
	it_resp_free(&r);
}
END_TEST

START_TEST(answer_with_allowed_calls_is_unchanged)
{
	struct it_resp via, direct;
	struct req q = { .token = "tok-tools-ans-5", .answer = "search,read" };

	for (int i = 0; i < 2; i++) {
		const char *key = i ? KEY_STRIP : KEY_DENY;

		send_req(key, NULL, NULL, &q, &via);
		send_direct(&q, &direct);
		ck_assert_msg(via.status == 200, "%ld %s", via.status, via.body);
		ck_assert_int_eq(direct.status, 200);
		ck_assert(strstr(via.body, "\"name\":\"read\"") != NULL);
		normalize_all(via.body);
		normalize_all(direct.body);
		ck_assert_str_eq(via.body, direct.body);
		it_resp_free(&via);
		it_resp_free(&direct);
	}
}
END_TEST

/* ---- the answer, streamed ---- */

/* The events of an SSE body, split at blank lines (LF only). */
static size_t
split_events(char *body, char **ev, size_t max)
{
	size_t n = 0;
	char *p = body;

	while (*p != '\0' && n < max) {
		char *end = strstr(p, "\n\n");

		ev[n++] = p;
		if (end == NULL)
			break;
		end[1] = '\0';
		p = end + 2;
	}
	return n;
}

static void
stream_stops_before_forbidden_call(const char *key, const char *token)
{
	struct it_resp via, direct;
	struct req q = { .token = token, .stream = true, .answer = "read,email" };
	char *ev[64], *dev[64], *data;
	size_t n, dn;
	json_t *j, *e;

	send_req(key, NULL, NULL, &q, &via);
	send_direct(&q, &direct);
	ck_assert_int_eq(via.status, 200);
	ck_assert_int_eq(direct.status, 200);
	/* Nothing of the forbidden call: neither its name nor its id. */
	ck_assert_msg(strstr(via.body, "\"name\":\"email\"") == NULL, "%s",
	    via.body);
	ck_assert_msg(strstr(via.body, "\"index\":1") == NULL, "%s", via.body);
	ck_assert_uint_eq(count(via.body, "\"id\":\"call_"), 1);
	ck_assert(strstr(via.body, "data: [DONE]") == NULL);
	ck_assert(strstr(direct.body, "\"name\":\"email\"") != NULL);
	normalize_all(via.body);
	normalize_all(direct.body);
	n = split_events(via.body, ev, 64);
	dn = split_events(direct.body, dev, 64);
	/* role, read's header and two argument deltas, then the error. */
	ck_assert_msg(n == 5, "%zu events", n);
	ck_assert_uint_ge(dn, 9);
	for (size_t i = 0; i < 4; i++)
		ck_assert_str_eq(ev[i], dev[i]);
	ck_assert(strstr(ev[1], "\"name\":\"read\"") != NULL);
	ck_assert_msg(strncmp(ev[4], "event: error\ndata: ", 19) == 0, "%s", ev[4]);
	data = ev[4] + 19;
	j = json_loads(data, JSON_DISABLE_EOF_CHECK, NULL);
	ck_assert_msg(j != NULL, "error data not JSON: %s", data);
	e = json_object_get(j, "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
	    "policy_violation");
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
	    "tool_policy");
	ck_assert(strstr(json_string_value(json_object_get(e, "message")),
	    "no-pii-out") != NULL);
	json_decref(j);
	it_resp_free(&via);
	it_resp_free(&direct);
}

START_TEST(stream_with_forbidden_call_deny)
{
	stream_stops_before_forbidden_call(KEY_DENY, "tok-tools-sse-1");
}
END_TEST

START_TEST(stream_with_forbidden_call_strip)
{
	stream_stops_before_forbidden_call(KEY_STRIP, "tok-tools-sse-2");
}
END_TEST

START_TEST(stream_with_forbidden_first_call)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-sse-3", .stream = true,
		.answer = "ticket" };

	send_req(KEY_DENY, NULL, NULL, &q, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "ticket\"") == NULL);
	ck_assert(strstr(r.body, "call_") == NULL);
	ck_assert_msg(count(r.body, "data: ") == 2, "%s", r.body);
	ck_assert(strstr(r.body, "event: error\ndata: ") != NULL);
	ck_assert(strstr(r.body, "\"code\":\"tool_policy\"") != NULL);
	it_resp_free(&r);
}
END_TEST

START_TEST(stream_with_allowed_calls_is_byte_identical)
{
	struct it_resp via, direct;
	struct req q = { .token = "tok-tools-sse-4", .stream = true,
		.answer = "search,read,ticket" };
	char buf[64];

	send_req(KEY_DENY, NULL, NULL, &q, &via);
	send_direct(&q, &direct);
	ck_assert_int_eq(via.status, 200);
	ck_assert_int_eq(direct.status, 200);
	ck_assert_str_eq(it_resp_header(&via, "Content-Type", buf, sizeof(buf)),
	    "text/event-stream");
	ck_assert(strstr(via.body, "data: [DONE]") != NULL);
	ck_assert(strstr(via.body, "\"name\":\"ticket\"") != NULL);
	normalize_all(via.body);
	normalize_all(direct.body);
	ck_assert_msg(strcmp(via.body, direct.body) == 0,
	    "stream differs:\nvia warden:\n%s\ndirect:\n%s", via.body,
	    direct.body);
	it_resp_free(&via);
	it_resp_free(&direct);
}
END_TEST

/* ---- sessions ---- */

START_TEST(session_remembers_allowed_calls)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-sess-1", .answer = "search" };
	const char *s1 = "X-Warden-Session: it-sess-one";

	/* The answer's allowed call is what warden records. */
	send_req(KEY_DENY, s1, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert(strstr(r.body, "\"name\":\"search\"") != NULL);
	it_resp_free(&r);

	/* Hiding it: the history contradicts the session. */
	q.token = "tok-tools-sess-2";
	q.answer = NULL;
	send_req(KEY_DENY, s1, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-one'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* Another call in its place is no better. */
	q.token = "tok-tools-sess-3";
	q.history = L("read");
	send_req(KEY_DENY, s1, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-one'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* With it, the request goes on, and may add to it. */
	q.token = "tok-tools-sess-4";
	q.history = L("search");
	send_req(KEY_DENY, s1, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	q.token = "tok-tools-sess-5";
	q.history = L("search", "read");
	send_req(KEY_DENY, s1, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	q.token = "tok-tools-sess-6";
	q.history = L("search");
	send_req(KEY_DENY, s1, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-one'"));
	it_resp_free(&r);

	/* Another session, another agent: independent of it-sess-one. */
	q.token = "tok-tools-sess-7";
	q.history = NULL;
	send_req(KEY_DENY, "X-Warden-Session: it-sess-two", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	q.token = "tok-tools-sess-8";
	send_req(KEY_STRIP, s1, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	/* Without the header nothing is compared. */
	q.token = "tok-tools-sess-9";
	send_req(KEY_DENY, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

START_TEST(session_records_streamed_calls)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-sess-10", .stream = true,
		.answer = "read" };
	const char *s = "X-Warden-Session: it-sess-stream";

	send_req(KEY_DENY, s, NULL, &q, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "data: [DONE]") != NULL);
	it_resp_free(&r);
	q.token = "tok-tools-sess-11";
	q.stream = false;
	q.answer = NULL;
	send_req(KEY_DENY, s, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-stream'"));
	it_resp_free(&r);
	q.token = "tok-tools-sess-12";
	q.history = L("read");
	send_req(KEY_DENY, s, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

START_TEST(session_from_history_alone)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-sess-13", .history = L("search") };
	const char *s = "X-Warden-Session: it-sess-hist";

	/* What the first request's history showed is recorded too. */
	send_req(KEY_DENY, s, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	q.token = "tok-tools-sess-14";
	q.history = NULL;
	send_req(KEY_DENY, s, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-hist'"));
	it_resp_free(&r);
}
END_TEST

START_TEST(invalid_session_token)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-sess-15" };
	char big[200];

	send_req(KEY_DENY, "X-Warden-Session: no spaces/allowed", NULL, &q, &r);
	it_assert_error(&r, 400, "invalid_request_error", "invalid_session", NULL);
	it_resp_free(&r);
	memset(big, 'a', sizeof(big));
	memcpy(big, "X-Warden-Session: ", 18);
	big[18 + 129] = '\0';		/* 129 characters: one too many */
	send_req(KEY_DENY, big, NULL, &q, &r);
	it_assert_error(&r, 400, "invalid_request_error", "invalid_session", NULL);
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	big[18 + 128] = '\0';		/* 128: fine */
	send_req(KEY_DENY, big, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/* ---- who the agent is ---- */

START_TEST(agent_identity)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-id-1" };
	json_t *b;
	char names[256];

	/* An agent's key may not act as another agent ... */
	send_req(KEY_DENY, "X-Warden-Agent: strip-bot", NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "agent_mismatch",
	    L("deny-bot", "strip-bot"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	/* ... but may name itself. */
	q.token = "tok-tools-id-2";
	send_req(KEY_DENY, "X-Warden-Agent: deny-bot", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);

	/* A tenant key names agents of its own tenant only. */
	q.token = "tok-tools-id-3";
	send_req(IT_KEY_T1, "X-Warden-Agent: no-such-bot", NULL, &q, &r);
	it_assert_error(&r, 400, "invalid_request_error", "unknown_agent",
	    L("no-such-bot"));
	it_resp_free(&r);
	send_req(IT_KEY_T1, "X-Warden-Agent: other-bot", NULL, &q, &r);
	it_assert_error(&r, 400, "invalid_request_error", "unknown_agent",
	    L("other-bot"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);

	/* A tenant key acting as strip-bot gets strip-bot's policy. */
	q.token = "tok-tools-id-4";
	q.tools = L("search", "email");
	send_req(IT_KEY_T1, "X-Warden-Agent: strip-bot", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "search");
	json_decref(b);
	/* ... or deny-bot's. */
	q.token = "tok-tools-id-5";
	send_req(IT_KEY_T1, "X-Warden-Agent: deny-bot", NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy", L("'email'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	q.token = "tok-tools-id-6";
	q.tools = NULL;
	q.answer = "ticket";
	send_req(IT_KEY_T1, "X-Warden-Agent: deny-bot", NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy", L("'ticket'"));
	it_resp_free(&r);
}
END_TEST

START_TEST(no_agent_no_tool_checks)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-none-1",
		.history = L("ticket", "email", "rm_rf"), .tools = L("rm_rf"),
		.answer = "rm_rf" };
	char calls[256], finish[64], names[256];
	json_t *b;

	/* A tenant key without X-Warden-Agent is no agent: nothing is
	 * checked, stripped or recorded. */
	send_req(IT_KEY_T1, "X-Warden-Session: it-sess-none", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	answer_calls(&r, calls, sizeof(calls), finish, sizeof(finish));
	ck_assert_str_eq(calls, "rm_rf");
	ck_assert_str_eq(finish, "tool_calls");
	it_resp_free(&r);
	b = received_body(q.token);
	tool_names(b, names, sizeof(names));
	ck_assert_str_eq(names, "rm_rf");
	json_decref(b);
	q.token = "tok-tools-none-2";
	q.stream = true;
	send_req(IT_KEY_T1, NULL, NULL, &q, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "\"name\":\"rm_rf\"") != NULL);
	ck_assert(strstr(r.body, "data: [DONE]") != NULL);
	it_resp_free(&r);
}
END_TEST

/*
 * The legacy function-calling API (request `functions`, assistant
 * `function_call`) is the same thing under older names; OpenAI still
 * accepts it.  An agent must not get around its policy by using it
 * (once it could: only `tools` and `tool_calls` were looked at, and both
 * requests below reached the provider unchecked).
 */
START_TEST(legacy_functions_offered_are_checked)
{
	struct it_resp r;
	const char *body =
	    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"tok-tools-legacy-1\"}],\"functions\":[{\"name\":\"email\","
	    "\"parameters\":{\"type\":\"object\"}}],\"function_call\":"
	    "{\"name\":\"email\"}}";
	const char *h[] = { "Authorization: Bearer " KEY_DENY,
		"Content-Type: application/json", NULL };

	/* email may not come first; whether warden checks the legacy fields
	 * or refuses them, nothing goes upstream. */
	it_http("POST", it_url("/v1/chat/completions"), h, body, 10000, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy", L("function"));
	it_resp_free(&r);
	assert_not_forwarded("tok-tools-legacy-1");
}
END_TEST

START_TEST(legacy_function_call_history_is_checked)
{
	struct it_resp r;
	const char *body =
	    "{\"model\":\"gpt-4o\",\"messages\":["
	    "{\"role\":\"assistant\",\"content\":null,\"function_call\":"
	    "{\"name\":\"read\",\"arguments\":\"{}\"}},"
	    "{\"role\":\"function\",\"name\":\"read\",\"content\":\"r\"},"
	    "{\"role\":\"assistant\",\"content\":null,\"function_call\":"
	    "{\"name\":\"email\",\"arguments\":\"{}\"}},"
	    "{\"role\":\"function\",\"name\":\"email\",\"content\":\"sent\"},"
	    "{\"role\":\"user\",\"content\":\"tok-tools-legacy-2\"}]}";
	const char *h[] = { "Authorization: Bearer " KEY_DENY,
		"Content-Type: application/json", NULL };

	/* read, then email: the flow rule is broken, whatever the API. */
	it_http("POST", it_url("/v1/chat/completions"), h, body, 10000, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("function"));
	it_resp_free(&r);
	assert_not_forwarded("tok-tools-legacy-2");
}
END_TEST

/* ---- sessions that cannot be shaken off ---- */

/*
 * A client that leaves a stream after it received an allowed call has
 * that call in its session: it cannot come back with a history that
 * hides it.  (Calls were once recorded only at a stream's clean end: the
 * second request below was forwarded.)
 */
START_TEST(dropped_stream_call_is_committed)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-drop-1", .stream = true,
		.answer = "read", .mock = "stall_after=2" };
	const char *s = "X-Warden-Session: it-sess-drop";

	/* role, then read's header; then the provider stalls and the client
	 * gives up. */
	send_req_timeout(KEY_DENY, s, NULL, &q, 1500, &r);
	ck_assert_msg(strstr(r.body, "\"name\":\"read\"") != NULL, "%s", r.body);
	ck_assert(strstr(r.body, "data: [DONE]") == NULL);
	it_resp_free(&r);
	ck_assert(it_record_aborted(0, q.token, 3000));
	q = (struct req){ .token = "tok-tools-drop-2" };
	send_req(KEY_DENY, s, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-drop'", "1 calls recorded"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	/* With the call in its history, the conversation goes on. */
	q.token = "tok-tools-drop-3";
	q.history = L("read");
	send_req(KEY_DENY, s, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/* POST body n times over one keep-alive connection; counts answers by
 * status (403, 429, other) and keeps the last 429's Retry-After. */
struct flood {
	size_t n403, n429, other;
	long retry_after;
};

static size_t
flood_hdr(char *p, size_t size, size_t n, void *arg)
{
	struct flood *f = arg;

	if (size * n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		f->retry_after = strtol(p + 12, NULL, 10);
	return size * n;
}

static size_t
flood_body(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static void
flood(const char *key, const char *agent, size_t n, struct flood *f)
{
	CURL *e = curl_easy_init();
	struct curl_slist *base = NULL;
	char auth[128], ag[128];
	struct req q = { .token = "tok-tools-flood", .tools = L("email") };
	char *body = body_of(&q);

	memset(f, 0, sizeof(*f));
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(ag, sizeof(ag), "X-Warden-Agent: %s", agent);
	base = curl_slist_append(base, auth);
	base = curl_slist_append(base, ag);
	base = curl_slist_append(base, "Content-Type: application/json");
	base = curl_slist_append(base, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, it_url("/v1/chat/completions"));
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, flood_hdr);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, flood_body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	for (size_t i = 0; i < n; i++) {
		struct curl_slist *h = NULL;
		char sess[64];
		long status = 0;

		snprintf(sess, sizeof(sess), "X-Warden-Session: flood-%zu", i);
		for (struct curl_slist *b = base; b != NULL; b = b->next)
			h = curl_slist_append(h, b->data);
		h = curl_slist_append(h, sess);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (status == 403)
			f->n403++;
		else if (status == 429)
			f->n429++;
		else
			f->other++;
		curl_slist_free_all(h);
	}
	curl_slist_free_all(base);
	curl_easy_cleanup(e);
	free(body);
}

/*
 * Another tenant's 10,050 sessions do not push out an agent's live
 * session: each agent has its own room (sessions.max, 10,000 by default);
 * the tenant that runs out gets 429 session_limit.  (Sessions were once
 * one LRU of 10,000 for the process: after the flood, deny-bot's record
 * was gone and its trimmed history was accepted again.)
 */
START_TEST(other_tenant_cannot_evict_sessions)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-evict-1", .answer = "search" };
	const char *s = "X-Warden-Session: it-sess-live";
	struct flood f;

	send_req(KEY_DENY, s, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	/* t2's agent opens 10,050 sessions (each request is refused for the
	 * tool it offers, after its session was made). */
	flood(IT_KEY_T2, "other-bot", 10050, &f);
	/* deny-bot's session still knows its call. */
	q = (struct req){ .token = "tok-tools-evict-3" };
	send_req(KEY_DENY, s, NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("contradict session 'it-sess-live'"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	ck_assert_uint_eq(f.n403, 10000);
	ck_assert_uint_eq(f.n429, 50);
	ck_assert_uint_eq(f.other, 0);
	ck_assert_int_ge(f.retry_after, 3500);
	ck_assert_int_le(f.retry_after, 3600);
	/* The 429 in full. */
	q = (struct req){ .token = "tok-tools-evict-2" };
	send_req(IT_KEY_T2, "X-Warden-Agent: other-bot",
	    "X-Warden-Session: flood-new", &q, &r);
	it_assert_error(&r, 429, "rate_limit_exceeded", "session_limit",
	    L("agent 'other-bot'", "sessions.max"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
}
END_TEST

/*
 * lim-bot may make 2 calls per key per hour, whatever the session: a
 * fresh X-Warden-Session per request (or none) resets nothing.  (Call
 * limits were once per session only.)
 */
START_TEST(fresh_session_does_not_reset_key_limit)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-lim-1", .answer = "search" };
	char calls[256], finish[64];

	send_req(KEY_LIM, "X-Warden-Session: lim-a", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	q.token = "tok-tools-lim-2";
	send_req(KEY_LIM, NULL, NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	answer_calls(&r, calls, sizeof(calls), finish, sizeof(finish));
	ck_assert_str_eq(calls, "search");
	it_resp_free(&r);
	q.token = "tok-tools-lim-3";
	send_req(KEY_LIM, "X-Warden-Session: lim-b", NULL, &q, &r);
	it_assert_error(&r, 403, "policy_violation", "tool_policy",
	    L("at most 2 tool calls in 3600 s per key", "limits.max_calls"));
	it_resp_free(&r);
	/* Streamed: the call never reaches the client. */
	q.token = "tok-tools-lim-4";
	q.stream = true;
	send_req(KEY_LIM, "X-Warden-Session: lim-c", NULL, &q, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "\"name\":\"search\"") == NULL);
	ck_assert(strstr(r.body, "\"code\":\"tool_policy\"") != NULL);
	it_resp_free(&r);
	/* The agent's other key counts on its own. */
	q.token = "tok-tools-lim-5";
	q.stream = false;
	send_req(KEY_LIM2, "X-Warden-Session: lim-d", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

START_TEST(session_required_agent)
{
	struct it_resp r;
	struct req q = { .token = "tok-tools-req-1" };

	send_req(KEY_REQ, NULL, NULL, &q, &r);
	it_assert_error(&r, 400, "invalid_request_error", "session_required",
	    L("agent 'req-bot' requires sessions", "X-Warden-Session"));
	it_resp_free(&r);
	assert_not_forwarded(q.token);
	q.token = "tok-tools-req-2";
	send_req(KEY_REQ, "X-Warden-Session: it-req", NULL, &q, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/* POST a raw body as deny-bot; expect an error and nothing forwarded. */
static void
raw_refused(const char *msgs, const char *token, long status,
    const char *type, const char *code, const char *fragment)
{
	struct it_resp r;
	const char *h[] = { "Authorization: Bearer " KEY_DENY,
		"Content-Type: application/json", NULL };
	char *body;

	if (asprintf(&body, "{\"model\":\"gpt-4o\",\"messages\":[%s,"
	    "{\"role\":\"user\",\"content\":\"%s\"}]}", msgs, token) < 0)
		abort();
	it_http("POST", it_url("/v1/chat/completions"), h, body, 10000, &r);
	it_assert_error(&r, status, type, code, L(fragment));
	it_resp_free(&r);
	free(body);
	assert_not_forwarded(token);
}

/*
 * Messages that carry a tool's result without the call that would have
 * set its label are refused: a tool message whose tool_call_id answers
 * no earlier call, a legacy function message, tool_calls that are not an
 * array.  (All three were once forwarded: only assistant tool_calls
 * arrays were looked at.)
 */
START_TEST(tool_results_without_calls_refused)
{
	raw_refused("{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\","
	    "\"tool_call_id\":\"call_x\",\"content\":\"personal data\"}",
	    "tok-tools-orphan-1", 403, "policy_violation", "tool_policy",
	    "messages[1].tool_call_id 'call_x' answers no call");
	raw_refused("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
	    "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"search\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\","
	    "\"tool_call_id\":\"call_b\",\"content\":\"personal data\"}",
	    "tok-tools-orphan-2", 403, "policy_violation", "tool_policy",
	    "messages[1].tool_call_id 'call_b' answers no call");
	raw_refused("{\"role\":\"function\",\"name\":\"read\",\"content\":"
	    "\"personal data\"}", "tok-tools-orphan-3", 403, "policy_violation",
	    "tool_policy", "messages[0] has role 'function'");
	raw_refused("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{"
	    "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"read\",\"arguments\":\"{}\"}}},{\"role\":\"tool\",\"tool_call_id\":"
	    "\"call_a\",\"content\":\"personal data\"}", "tok-tools-orphan-4",
	    400, "invalid_request_error", "invalid_tool_call",
	    "messages[0].tool_calls must be an array");
}
END_TEST

/* ---- warden policy ---- */

/* Run warden with args; stdout into *out (malloc'd); the exit status. */
static int
run_warden(char **out, const char *const *args)
{
	char *err;
	int rc = it_run_warden(args, out, &err);

	free(err);
	ck_assert_int_ge(rc, 0);
	return rc;
}

START_TEST(policy_review_command)
{
	char *out, path[256];
	int rc;

	rc = run_warden(&out, L("policy", "review", "-c", "rules/example.yaml"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "LEAK") == NULL, "%s", out);
	ck_assert(strstr(out, "agent support-bot (tenant acme-health, ") != NULL);
	free(out);

	snprintf(path, sizeof(path), "%s/leaky.yaml", it_tmpdir());
	it_write_file(path,
	    "version: 1\n"
	    "data_classes: [personal]\n"
	    "providers:\n"
	    "  - { id: p1, base_url: 'https://a.example', country: IE,"
	    " credential: c, models: [m] }\n"
	    "tenants:\n"
	    "  - { id: t1, routes: [p1] }\n"
	    "agents:\n"
	    "  - id: leaky\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      crm: { labels: [personal] }\n"
	    "      summarise: {}\n"
	    "      post: { sink: external }\n"
	    "    graph:\n"
	    "      start: [crm]\n"
	    "      crm: [summarise]\n"
	    "      summarise: [post]\n", 0600);
	rc = run_warden(&out, L("policy", "review", "-c", path));
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "  LEAK: labelled data from 'crm' can reach an "
	    "external sink: crm -> summarise -> post\n") != NULL, "%s", out);
	free(out);
	/* An invalid rules file is exit 2. */
	rc = run_warden(&out, L("policy", "review", "-c", "/nonexistent.yaml"));
	ck_assert_int_eq(rc, 2);
	free(out);
}
END_TEST

START_TEST(policy_reach_command)
{
	char *out;
	int rc;

	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "support-bot", "--from", "start", "--to", "send_email"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_str_eq(out, "start -> search_kb -> send_email\n");
	free(out);
	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "support-bot", "--from", "read_customer", "--to", "sink:external"));
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ck_assert_str_eq(out, "unreachable\n");
	free(out);
	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "support-bot", "--from", "read_customer", "--to", "create_ticket"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_str_eq(out, "read_customer -> create_ticket\n");
	free(out);
	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "support-bot", "--from", "nope", "--to", "send_email"));
	ck_assert_int_eq(rc, 2);
	free(out);
	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "no-such-agent", "--from", "start", "--to", "send_email"));
	ck_assert_int_eq(rc, 2);
	free(out);
	rc = run_warden(&out, L("policy", "reach", "-c", "rules/example.yaml",
	    "support-bot", "--from", "start"));
	ck_assert_int_eq(rc, 2);
	free(out);
}
END_TEST

START_TEST(policy_graph_command)
{
	char *out, *line, *save;
	json_t *j, *e;
	json_error_t jerr;
	size_t i, nlines = 0;
	int rc, always = 0, sometimes = 0;

	rc = run_warden(&out, L("policy", "graph", "-c", "rules/example.yaml",
	    "support-bot", "--format", "dot"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strncmp(out, "digraph \"support-bot\" {\n", 24) == 0, "%s",
	    out);
	ck_assert(strlen(out) > 2 && strcmp(out + strlen(out) - 2, "}\n") == 0);
	/* Every statement inside ends with ';'. */
	for (line = strtok_r(out + 24, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), nlines++)
		if (strcmp(line, "}") != 0)
			ck_assert_msg(line[strlen(line) - 1] == ';', "line '%s'", line);
	/* rankdir, start, 4 tools, 2 + 4 + 3 + 1 edges, and the '}' */
	ck_assert_uint_eq(nlines, 17);
	free(out);

	rc = run_warden(&out, L("policy", "graph", "-c", "rules/example.yaml",
	    "support-bot", "--format", "mermaid"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strncmp(out, "flowchart LR\n", 13) == 0, "%s", out);
	ck_assert(strstr(out, "  start --> search_kb\n") != NULL);
	ck_assert(strstr(out, "  read_customer -. \"cut: "
	    "no-personal-data-out\" .-> send_email\n") != NULL);
	free(out);

	rc = run_warden(&out, L("policy", "graph", "-c", "rules/example.yaml",
	    "support-bot", "--format", "json"));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "agent")),
	    "support-bot");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "nodes")), 4);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "edges")), 10);
	json_array_foreach(json_object_get(j, "edges"), i, e) {
		const char *cut = json_string_value(json_object_get(e, "cut"));
		const char *to = json_string_value(json_object_get(e, "to"));

		if (cut == NULL)
			continue;
		ck_assert_str_eq(to, "send_email");
		if (strcmp(cut, "always") == 0) {
			ck_assert_str_eq(json_string_value(json_object_get(e,
			    "from")), "read_customer");
			always++;
		} else {
			ck_assert_str_eq(cut, "after_labelled_data");
			sometimes++;
		}
	}
	ck_assert_int_eq(always, 1);
	ck_assert_int_eq(sometimes, 2);
	json_decref(j);
	free(out);

	rc = run_warden(&out, L("policy", "graph", "-c", "rules/example.yaml",
	    "support-bot", "--format", "svg"));
	ck_assert_int_eq(rc, 2);
	free(out);
}
END_TEST

Suite *
suite_tools(void)
{
	Suite *s = suite_create("tools");
	TCase *tc = tcase_create("tools");
	TCase *cli = tcase_create("cli");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	/* 60: other_tenant_cannot_evict_sessions sends 10,051 requests. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, history_breaking_the_graph_is_refused);
	tcase_add_test(tc, deny_agent_offered_tool_not_allowed_next);
	tcase_add_test(tc, strip_agent_offered_tools_are_removed);
	tcase_add_test(tc, answer_with_forbidden_call_deny);
	tcase_add_test(tc, answer_with_forbidden_call_strip);
	tcase_add_test(tc, answer_with_allowed_calls_is_unchanged);
	tcase_add_test(tc, stream_with_forbidden_call_deny);
	tcase_add_test(tc, stream_with_forbidden_call_strip);
	tcase_add_test(tc, stream_with_forbidden_first_call);
	tcase_add_test(tc, stream_with_allowed_calls_is_byte_identical);
	tcase_add_test(tc, session_remembers_allowed_calls);
	tcase_add_test(tc, session_records_streamed_calls);
	tcase_add_test(tc, session_from_history_alone);
	tcase_add_test(tc, invalid_session_token);
	tcase_add_test(tc, agent_identity);
	tcase_add_test(tc, no_agent_no_tool_checks);
	tcase_add_test(tc, legacy_functions_offered_are_checked);
	tcase_add_test(tc, legacy_function_call_history_is_checked);
	tcase_add_test(tc, dropped_stream_call_is_committed);
	tcase_add_test(tc, other_tenant_cannot_evict_sessions);
	tcase_add_test(tc, fresh_session_does_not_reset_key_limit);
	tcase_add_test(tc, session_required_agent);
	tcase_add_test(tc, tool_results_without_calls_refused);
	suite_add_tcase(s, tc);

	tcase_set_timeout(cli, 30);
	tcase_add_test(cli, policy_review_command);
	tcase_add_test(cli, policy_reach_command);
	tcase_add_test(cli, policy_graph_command);
	suite_add_tcase(s, cli);
	return s;
}
