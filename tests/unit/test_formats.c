/*
 * test_formats.c - the Anthropic Messages, OpenAI Responses and
 * Embeddings answer formats (gateway/fmt_*.c) under an agent's tool
 * policy, as gateway/agent_answer.c runs them: strict reading, a call
 * named at the start of its block (item) and judged before any of its
 * arguments go out, the order rules of named-event streams, and what the
 * client gets being warden's own serialization.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/aud_int.h"
#include "gateway/gw_int.h"
#include "gateway/store.h"
#include "policy/pol_int.h"
#include "tests/unit/suites.h"

#define HEX_A "0123456789abcdef0123456789abcdef" \
	      "0123456789abcdef0123456789abcdef"
#define HEX_B "fedcba9876543210fedcba9876543210" \
	      "fedcba9876543210fedcba9876543210"

/* read_customer yields personal data; send_email is an external sink;
 * web_search (a provider-side tool) is one too. */
#define RULES(viol) \
	"version: 1\n" \
	"data_classes: [personal]\n" \
	"providers:\n" \
	"  - id: p1\n" \
	"    base_url: https://a.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m]\n" \
	"tenants:\n" \
	"  - id: t1\n" \
	"    keys: [\"sha256:" HEX_A "\"]\n" \
	"    routes: [p1]\n" \
	"agents:\n" \
	"  - id: a1\n" \
	"    tenant: t1\n" \
	"    keys: [\"sha256:" HEX_B "\"]\n" \
	"    on_violation: " viol "\n" \
	"    tools:\n" \
	"      read_customer: { labels: [personal] }\n" \
	"      send_email: { sink: external }\n" \
	"      web_search: { sink: external }\n" \
	"    graph:\n" \
	"      start: [read_customer, send_email, web_search]\n" \
	"      read_customer: [read_customer, send_email, web_search]\n" \
	"      send_email: [read_customer]\n" \
	"      web_search: [read_customer]\n" \
	"    flows:\n" \
	"      - id: no-personal-data-out\n" \
	"        deny: { from_label: personal, to_sink: external }\n"

static struct ut_ld ld;

static void
setup_tools(struct gw_tools *tl, const char *viol)
{
	char *text;
	struct gw_header h[1] = { { "X-Warden-Session", NULL } };
	struct gw_http_req req;
	struct gw_tools_deny d;
	json_t *root = json_loads("{\"model\":\"m\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"x\"}]}", 0, NULL);

	gw_store_memory_reset();
	ck_assert_int_ge(asprintf(&text, strcmp(viol, "deny") == 0 ?
	    RULES("deny") : RULES("strip")), 0);
	ut_load_text(&ld, text, 0600);
	free(text);
	ck_assert_msg(ld.rc == WD_OK, "%s", ld.errs);
	struct pol_caller caller = { .tenant = &ld.snap->tenants[0],
		.agent = &ld.snap->agents[0], .key = ld.snap->agents[0].keys[0] };

	memset(&req, 0, sizeof(req));
	req.hdrs = h;
	req.nhdrs = 0;
	memset(tl, 0, sizeof(*tl));
	ck_assert_int_eq(gw_tools_request(tl, ld.snap, &ld.snap->tenants[0],
	    &caller, &req, &(struct gw_chat){ .root = root }, &d), GW_TOOLS_OK);
	json_decref(root);
}

static void
teardown_tools(struct gw_tools *tl)
{
	gw_tools_clear(tl);
	ut_ld_done(&ld);
}

/* Run a whole stream through gw_agent_stream_feed/end; out gets what the
 * client would; returns true when it ended cleanly. */
static bool
run_stream(const struct gw_format *fmt, struct gw_tools *tl,
    const char *stream, struct evbuffer *out, struct gw_tools_deny *d)
{
	struct gw_agent_stream as;
	struct evbuffer *acc = evbuffer_new();
	bool go_on;
	size_t len = strlen(stream);

	memset(d, 0, sizeof(*d));
	gw_agent_stream_init(&as, fmt);
	evbuffer_add(acc, stream, len);
	gw_agent_stream_feed(&as, tl, acc, gw_sse_event_len(stream, len) == len
	    ? len : len, out, &go_on, d);
	if (!go_on) {
		evbuffer_free(acc);
		return false;
	}
	go_on = gw_agent_stream_end(&as, acc, out, d);
	evbuffer_free(acc);
	return go_on;
}

static char *
text_of(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	evbuffer_copyout(b, s, n);
	s[n] = '\0';
	return s;
}

#define M_START "event: message_start\ndata: {\"type\":\"message_start\"," \
	"\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":" \
	"\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null," \
	"\"stop_sequence\":null,\"usage\":{\"input_tokens\":5," \
	"\"output_tokens\":1}}}\n\n"
#define M_TEXT0 "event: content_block_start\ndata: {\"type\":" \
	"\"content_block_start\",\"index\":0,\"content_block\":{\"type\":" \
	"\"text\",\"text\":\"\"}}\n\n" \
	"event: ping\ndata: {\"type\":\"ping\"}\n\n" \
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"," \
	"\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" \
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\"," \
	"\"index\":0}\n\n"
#define M_TOOL(i, name) "event: content_block_start\ndata: {\"type\":" \
	"\"content_block_start\",\"index\":" #i ",\"content_block\":{\"type\":" \
	"\"tool_use\",\"id\":\"toolu_" #i "\",\"name\":\"" name "\"," \
	"\"input\":{}}}\n\n" \
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"," \
	"\"index\":" #i ",\"delta\":{\"type\":\"input_json_delta\"," \
	"\"partial_json\":\"{\\\"to\\\":\\\"x@example.com\\\"}\"}}\n\n" \
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\"," \
	"\"index\":" #i "}\n\n"
#define M_END "event: message_delta\ndata: {\"type\":\"message_delta\"," \
	"\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null}," \
	"\"usage\":{\"output_tokens\":9}}\n\n" \
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

/* An allowed stream goes through as named events; a forbidden tool_use
 * stops the stream at its content_block_start: none of it, and none of
 * its input_json_delta, reaches the client. */
START_TEST(messages_stream_call_judged_at_block_start)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct evbuffer *out = evbuffer_new();
	char *s;

	setup_tools(&tl, "deny");
	ck_assert_msg(run_stream(&gw_format_messages, &tl, M_START M_TEXT0
	    M_TOOL(1, "read_customer") M_END, out, &d), "%s", d.message);
	s = text_of(out);
	ck_assert_ptr_nonnull(strstr(s, "event: content_block_start\ndata: "
	    "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
	    "{\"type\":\"tool_use\""));
	ck_assert_ptr_nonnull(strstr(s, "event: message_stop\n"));
	free(s);
	evbuffer_drain(out, evbuffer_get_length(out));
	teardown_tools(&tl);
	/* read_customer, then send_email: the flow rule. */
	setup_tools(&tl, "deny");
	ck_assert(!run_stream(&gw_format_messages, &tl, M_START M_TEXT0
	    M_TOOL(1, "read_customer") M_TOOL(2, "send_email") M_END, out, &d));
	ck_assert_int_eq(d.status, 403);
	ck_assert_str_eq(d.code, "tool_policy");
	s = text_of(out);
	ck_assert_ptr_null(strstr(s, "send_email"));
	ck_assert_ptr_nonnull(strstr(s, "read_customer"));
	ck_assert_ptr_null(strstr(s, "\"index\":2"));
	ck_assert_ptr_nonnull(strstr(s, "text_delta"));
	free(s);
	evbuffer_free(out);
	teardown_tools(&tl);
}
END_TEST

static void
stream_refused(const struct gw_format *fmt, const char *stream, int status,
    const char *why)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct evbuffer *out = evbuffer_new();

	setup_tools(&tl, "deny");
	ck_assert_msg(!run_stream(fmt, &tl, stream, out, &d), "passed: %s",
	    stream);
	ck_assert_int_eq(d.status, status);
	ck_assert_msg(strstr(d.message, why) != NULL, "'%s' lacks '%s'",
	    d.message, why);
	evbuffer_free(out);
	teardown_tools(&tl);
}

/* What the @anthropic-ai/sdk accumulator would read otherwise. */
START_TEST(messages_stream_order_rules)
{
	/* A block that starts anywhere but next is pushed at the end. */
	stream_refused(&gw_format_messages, M_START M_TOOL(1, "read_customer")
	    M_END, 502, "starts where block 0 must");
	/* The name dispatches, the type accumulates. */
	stream_refused(&gw_format_messages, M_START "event: ping\ndata: "
	    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
	    "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"send_email\","
	    "\"input\":{}}}\n\n" M_END, 502, "with data of type");
	/* Arguments to a text block (or to no block). */
	stream_refused(&gw_format_messages, M_START M_TEXT0 "event: "
	    "content_block_delta\ndata: {\"type\":\"content_block_delta\","
	    "\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
	    "\"partial_json\":\"{}\"}}\n\n" M_END, 502, "not open");
	stream_refused(&gw_format_messages, M_START "event: content_block_delta"
	    "\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
	    "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n" M_END,
	    502, "not open");
	/* Index -1 is content.at(-1) in JavaScript. */
	stream_refused(&gw_format_messages, M_START M_TEXT0 "event: "
	    "content_block_delta\ndata: {\"type\":\"content_block_delta\","
	    "\"index\":-1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"
	    "\n\n" M_END, 502, "index is not an integer");
	/* Content hidden in message_start; duplicate keys; no stop. */
	stream_refused(&gw_format_messages, "event: message_start\ndata: "
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":"
	    "\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
	    "\"tool_use\",\"id\":\"t\",\"name\":\"send_email\",\"input\":{}}]}}"
	    "\n\n" M_END, 502, "message_start with content");
	stream_refused(&gw_format_messages, M_START "event: content_block_start"
	    "\ndata: {\"type\":\"content_block_start\",\"index\":0,"
	    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
	    "\"read_customer\",\"name\":\"send_email\",\"input\":{}}}\n\n" M_END,
	    502, "not strict JSON");
	stream_refused(&gw_format_messages, M_START M_TEXT0, 502,
	    "without its last event");
	/* A provider's error event ends the stream. */
	stream_refused(&gw_format_messages, M_START "event: error\ndata: "
	    "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"busy\"}}\n\n", 502, "busy");
}
END_TEST

/* Whole messages: tool_use, server_tool_use (a provider-side tool) and
 * what the client gets after a strip. */
START_TEST(messages_whole_answer)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct evbuffer *out = evbuffer_new();
	json_t *usage;
	char *s;
	const char *ok = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
	    "\"assistant\",\"model\":\"m\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"ok\"},{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":"
	    "\"read_customer\",\"input\":{\"id\":1}}],\"stop_reason\":"
	    "\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,"
	    "\"output_tokens\":2}}";
	const char *web = "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":"
	    "\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
	    "\"name\":\"read_customer\",\"input\":{}},{\"type\":"
	    "\"server_tool_use\",\"id\":\"s1\",\"name\":\"web_search\","
	    "\"input\":{\"query\":\"x\"}}],\"stop_reason\":\"tool_use\"}";

	setup_tools(&tl, "strip");
	ck_assert_msg(gw_agent_answer(&gw_format_messages, &tl, 200, ok,
	    strlen(ok), out, &usage, &d), "%s", d.message);
	ck_assert_ptr_nonnull(usage);
	json_decref(usage);
	evbuffer_drain(out, evbuffer_get_length(out));
	/* web_search after read_customer: personal data out; stripped. */
	ck_assert_msg(gw_agent_answer(&gw_format_messages, &tl, 200, web,
	    strlen(web), out, &usage, &d), "%s", d.message);
	s = text_of(out);
	ck_assert_ptr_null(strstr(s, "web_search"));
	ck_assert_ptr_nonnull(strstr(s, "read_customer"));
	ck_assert_ptr_nonnull(strstr(s, "\"stop_reason\":\"tool_use\""));
	free(s);
	evbuffer_drain(out, evbuffer_get_length(out));
	/* Unknown block types, an error key, a user message: refused. */
	s = "{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"content\":[{\"type\":\"tool_call\",\"name\":\"send_email\"}]}";
	ck_assert(!gw_agent_answer(&gw_format_messages, &tl, 200, s, strlen(s),
	    out, &usage, &d));
	ck_assert_int_eq(d.status, 502);
	s = "{\"id\":\"m\",\"type\":\"message\",\"role\":\"user\",\"content\":[]}";
	ck_assert(!gw_agent_answer(&gw_format_messages, &tl, 200, s, strlen(s),
	    out, &usage, &d));
	/* An error answer: its type and message, nothing else of it. */
	s = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
	    "\"message\":\"slow\"},\"content\":[{\"type\":\"tool_use\"}]}";
	ck_assert(gw_agent_answer(&gw_format_messages, &tl, 429, s, strlen(s),
	    out, &usage, &d));
	s = text_of(out);
	ck_assert_str_eq(s, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"rate_limit_error\",\"message\":\"slow\"}}");
	free(s);
	evbuffer_free(out);
	teardown_tools(&tl);
}
END_TEST

#define R_EV(type, rest) "event: " type "\ndata: {\"type\":\"" type "\"," rest \
	"}\n\n"
#define R_RESP(status, output) "\"response\":{\"id\":\"resp_1\",\"object\":" \
	"\"response\",\"status\":\"" status "\",\"model\":\"m\",\"output\":" \
	output "}"
#define R_START R_EV("response.created", "\"sequence_number\":0," \
	R_RESP("in_progress", "[]"))
#define R_FN(name) "{\"type\":\"function_call\",\"id\":\"fc_1\"," \
	"\"call_id\":\"call_1\",\"name\":\"" name "\",\"arguments\":\"\"," \
	"\"status\":\"in_progress\"}"
#define R_CALL(name) \
	R_EV("response.output_item.added", "\"sequence_number\":1," \
	    "\"output_index\":0,\"item\":" R_FN(name)) \
	R_EV("response.function_call_arguments.delta", "\"sequence_number\":2," \
	    "\"item_id\":\"fc_1\",\"output_index\":0,\"delta\":" \
	    "\"{\\\"to\\\":\\\"x@example.com\\\"}\"") \
	R_EV("response.output_item.done", "\"sequence_number\":3," \
	    "\"output_index\":0,\"item\":" R_FN(name))
#define R_DONE(output) R_EV("response.completed", "\"sequence_number\":9," \
	R_RESP("completed", output))

START_TEST(responses_stream_call_judged_at_item_added)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct evbuffer *out = evbuffer_new();
	char *s;

	setup_tools(&tl, "deny");
	ck_assert_msg(run_stream(&gw_format_responses, &tl, R_START
	    R_CALL("read_customer") R_DONE("[" R_FN("read_customer") "]"), out,
	    &d), "%s", d.message);
	s = text_of(out);
	ck_assert_ptr_nonnull(strstr(s, "event: response.completed\n"));
	free(s);
	evbuffer_drain(out, evbuffer_get_length(out));
	teardown_tools(&tl);
	setup_tools(&tl, "deny");
	ck_assert(!run_stream(&gw_format_responses, &tl, R_START
	    R_CALL("read_customer") R_EV("response.output_item.added",
	    "\"sequence_number\":4,\"output_index\":1,\"item\":"
	    R_FN("send_email")) R_DONE("[" R_FN("read_customer") ","
	    R_FN("send_email") "]"), out, &d));
	ck_assert_int_eq(d.status, 403);
	s = text_of(out);
	ck_assert_ptr_null(strstr(s, "send_email"));
	ck_assert_ptr_null(strstr(s, "\"output_index\":1"));
	free(s);
	evbuffer_free(out);
	teardown_tools(&tl);
}
END_TEST

START_TEST(responses_stream_order_rules)
{
	/* The final response may hold only the calls the stream named. */
	stream_refused(&gw_format_responses, R_START R_DONE("[" R_FN(
	    "send_email") "]"), 502, "the final response has 1 items");
	stream_refused(&gw_format_responses, R_START R_CALL("read_customer")
	    R_DONE("[" R_FN("send_email") "]"), 502, "not the call the stream");
	/* An item at another index, arguments before their item. */
	stream_refused(&gw_format_responses, R_START R_EV(
	    "response.output_item.added", "\"sequence_number\":1,"
	    "\"output_index\":1,\"item\":" R_FN("read_customer")) R_DONE("[]"),
	    502, "starts where item 0 must");
	stream_refused(&gw_format_responses, R_START R_EV(
	    "response.function_call_arguments.delta", "\"sequence_number\":1,"
	    "\"item_id\":\"x\",\"output_index\":0,\"delta\":\"{}\"")
	    R_DONE("[]"), 502, "not open");
	/* output_index "0" or 0.0. */
	stream_refused(&gw_format_responses, R_START R_EV(
	    "response.output_item.added", "\"sequence_number\":1,"
	    "\"output_index\":0.0,\"item\":" R_FN("read_customer"))
	    R_DONE("[]"), 502, "output_index is not an integer");
	/* Output in the first response; output_text beside output. */
	stream_refused(&gw_format_responses, R_EV("response.created",
	    "\"sequence_number\":0," R_RESP("in_progress", "[" R_FN(
	    "send_email") "]")) R_DONE("[]"), 502, "first response has output");
	/* No completed event: not a whole stream. */
	stream_refused(&gw_format_responses, R_START, 502,
	    "without its last event");
	/* A provider-side tool the agent does not list. */
	stream_refused(&gw_format_responses, R_START R_EV(
	    "response.output_item.added", "\"sequence_number\":1,"
	    "\"output_index\":0,\"item\":{\"type\":\"code_interpreter_call\","
	    "\"id\":\"ci\",\"status\":\"in_progress\"}") R_DONE("[]"), 403,
	    "code_interpreter");
}
END_TEST

START_TEST(responses_whole_answer)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct evbuffer *out = evbuffer_new();
	json_t *usage;
	const char *s = "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":"
	    "\"completed\",\"output\":[{\"type\":\"web_search_call\",\"id\":"
	    "\"ws\",\"status\":\"completed\"},{\"type\":\"message\",\"id\":"
	    "\"m\",\"role\":\"assistant\",\"status\":\"completed\",\"content\":"
	    "[{\"type\":\"output_text\",\"text\":\"hi\",\"annotations\":[]}]}],"
	    "\"usage\":{\"input_tokens\":1}}";

	setup_tools(&tl, "deny");
	ck_assert_msg(gw_agent_answer(&gw_format_responses, &tl, 200, s,
	    strlen(s), out, &usage, &d), "%s", d.message);
	json_decref(usage);
	s = "{\"id\":\"r\",\"object\":\"response\",\"output\":[],"
	    "\"output_text\":\"x\"}";
	ck_assert(!gw_agent_answer(&gw_format_responses, &tl, 200, s,
	    strlen(s), out, &usage, &d));
	ck_assert_int_eq(d.status, 502);
	s = "{\"id\":\"r\",\"object\":\"response\",\"output\":[{\"type\":"
	    "\"function_call\",\"name\":\"send_email\",\"arguments\":\"{}\","
	    "\"function\":{}}]}";
	ck_assert(!gw_agent_answer(&gw_format_responses, &tl, 200, s,
	    strlen(s), out, &usage, &d));
	ck_assert_int_eq(d.status, 502);
	evbuffer_free(out);
	teardown_tools(&tl);
}
END_TEST

START_TEST(embeddings_answer)
{
	struct gw_answer a;
	char why[160];
	const char *ok = "{\"object\":\"list\",\"data\":[{\"object\":"
	    "\"embedding\",\"index\":0,\"embedding\":[0.1,-2,3e-3]}],\"model\":"
	    "\"m\",\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1}}";
	const char *const bad[] = {
		"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
		    "\"index\":1,\"embedding\":[]}]}",
		"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
		    "\"index\":0,\"embedding\":[\"1\"]}]}",
		"{\"object\":\"list\",\"data\":[],\"choices\":[]}",
		"{\"object\":\"list\",\"object\":\"list\",\"data\":[]}",
		NULL,
	};

	ck_assert_int_eq(gw_format_embeddings.read_answer(ok, strlen(ok), &a,
	    why, sizeof(why)), WD_OK);
	ck_assert_uint_eq(a.nev, 1);
	gw_answer_clear(&a);
	for (size_t i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(gw_format_embeddings.read_answer(bad[i],
		    strlen(bad[i]), &a, why, sizeof(why)) == WD_EPARSE, "%s",
		    bad[i]);
		gw_answer_clear(&a);
	}
}
END_TEST

/* Each format's error body and error event. */
START_TEST(error_shapes)
{
	struct evbuffer *out = evbuffer_new();
	json_t *e = gw_format_messages.error_body(403, "permission_error",
	    "residency", "no route");
	char *s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);

	ck_assert_str_eq(s, "{\"error\":{\"message\":\"no route (warden: "
	    "residency)\",\"type\":\"permission_error\"},\"type\":\"error\"}");
	free(s);
	json_decref(e);
	gw_format_messages.error_event(out, "policy_violation", "tool_policy",
	    "no");
	s = text_of(out);
	ck_assert_str_eq(s, "event: error\ndata: {\"type\":\"error\",\"error\":"
	    "{\"type\":\"permission_error\",\"message\":\"no (warden: "
	    "tool_policy)\"}}"
	    "\n\n");
	free(s);
	evbuffer_drain(out, evbuffer_get_length(out));
	gw_format_responses.error_event(out, "policy_violation", "tool_policy",
	    "no");
	s = text_of(out);
	ck_assert_str_eq(s, "event: error\ndata: {\"type\":\"error\",\"code\":"
	    "\"tool_policy\",\"message\":\"no\",\"param\":null}\n\n");
	free(s);
	evbuffer_free(out);
}
END_TEST

/* Named events: one name, kept; chat streams still refuse any. */
START_TEST(sse_named_events)
{
	char name[64], *data, why[80];
	size_t dlen;

	ck_assert_int_eq(gw_sse_event_read_named("event: ping\ndata: {}\n\n",
	    22, false, name, &data, &dlen, why, sizeof(why)), WD_OK);
	ck_assert_str_eq(name, "ping");
	ck_assert_str_eq(data, "{}");
	free(data);
	ck_assert_int_eq(gw_sse_event_read_named("event: a\nevent: b\ndata: "
	    "{}\n\n", 26, false, name, &data, &dlen, why, sizeof(why)),
	    WD_EPARSE);
	ck_assert_int_eq(gw_sse_event_read("event: a\ndata: {}\n\n", 19, false,
	    &data, &dlen, why, sizeof(why)), WD_EPARSE);
}
END_TEST


/* ---- routes speak formats (policy `api:`) ---- */

#define API_RULES(api2) \
	"version: 1\n" \
	"data_classes: [personal]\n" \
	"providers:\n" \
	"  - id: us\n" \
	"    api: [openai-chat, anthropic-messages]\n" \
	"    base_url: https://us.example\n" \
	"    country: US\n" \
	"    credential: c\n" \
	"    models: [m]\n" \
	"  - id: chat-eu\n" \
	"    base_url: https://eu.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m]\n" \
	"  - id: msg-de\n" \
	"    api: " api2 "\n" \
	"    base_url: https://de.example\n" \
	"    country: DE\n" \
	"    credential: c\n" \
	"    models: [m]\n" \
	"tenants:\n" \
	"  - id: t1\n" \
	"    keys: [\"sha256:" HEX_A "\"]\n" \
	"    data_classes: [personal]\n" \
	"    routes: [us, chat-eu, msg-de]\n" \
	"rules:\n" \
	"  - id: eu-only\n" \
	"    when: { data_class: [personal] }\n" \
	"    require: { provider_country: [IE, DE, FR] }\n"

static void
decide_api(struct ut_ld *l, const char *api, struct pol_decision *d)
{
	struct pol_facts f = { .tenant = &l->snap->tenants[0], .model = "m",
		.api = api };

	ck_assert_int_eq(pol_decide(l->snap, &f, d), WD_OK);
}

/* A request goes only to compliant routes that speak its format: the
 * US route speaks Messages but residency excludes it; the fallback is the
 * German Messages route, never the Irish chat-only one. */
START_TEST(routes_speak_formats)
{
	struct ut_ld l;
	struct pol_decision d;
	json_t *j;

	ut_load_text(&l, API_RULES("[anthropic-messages, openai-responses]"),
	    0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	decide_api(&l, NULL, &d);
	ck_assert_int_eq(d.verdict, POL_ALLOW);
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "chat-eu");
	decide_api(&l, "anthropic-messages", &d);
	ck_assert_int_eq(d.verdict, POL_ALLOW);
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "msg-de");
	j = pol_decision_json(l.snap, &d);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "facts"), "api")), "anthropic-messages");
	json_decref(j);
	/* Embeddings: no route speaks them. */
	decide_api(&l, "openai-embeddings", &d);
	ck_assert_int_eq(d.verdict, POL_DENY);
	ck_assert_str_eq(d.code, "api_not_served");
	ut_ld_done(&l);
	/* Without the German route, Messages has only the US one: residency. */
	ut_load_text(&l, API_RULES("openai-chat"), 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	decide_api(&l, "anthropic-messages", &d);
	ck_assert_int_eq(d.verdict, POL_DENY);
	ck_assert_str_eq(d.code, "residency");
	ut_ld_done(&l);
}
END_TEST

START_TEST(api_list_errors)
{
	struct ut_ld l;

	ut_load_text(&l, API_RULES("[anthropic-messages, anthropic]"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_ptr_nonnull(strstr(l.errs, "api 'anthropic' is not supported"));
	ut_ld_done(&l);
	ut_load_text(&l, API_RULES("[openai-chat, openai-chat]"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_ptr_nonnull(strstr(l.errs, "listed twice"));
	ut_ld_done(&l);
	ut_load_text(&l, API_RULES("[]"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ut_ld_done(&l);
}
END_TEST

/* The formats a route speaks are part of the policy version. */
START_TEST(api_in_policy_version)
{
	struct ut_ld a, b;

	ut_load_text(&a, API_RULES("[anthropic-messages, openai-responses]"),
	    0600);
	ut_load_text(&b, API_RULES("[openai-responses, anthropic-messages]"),
	    0600);
	ck_assert_str_eq(a.snap->version, b.snap->version);
	ut_ld_done(&b);
	ut_load_text(&b, API_RULES("[anthropic-messages]"), 0600);
	ck_assert_str_ne(a.snap->version, b.snap->version);
	ut_ld_done(&b);
	ut_ld_done(&a);
}
END_TEST

/* ---- requests: strict reading and the tool view ---- */

START_TEST(requests_read_strictly)
{
	struct gw_req r;
	char why[160];
	const char *param;
	static const struct {
		unsigned api;
		const char *body;
		bool ok;
	} cases[] = {
		{ POL_API_MESSAGES, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":"
		    "[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}", true },
		{ POL_API_MESSAGES, "{\"model\":\"m\",\"messages\":[{\"role\":"
		    "\"user\",\"content\":\"hi\"}]}", false },	/* max_tokens */
		{ POL_API_MESSAGES, "{\"model\":\"m\",\"model\":\"n\",\"max_tokens\":"
		    "5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", false },
		{ POL_API_MESSAGES, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":"
		    "[{\"role\":\"system\",\"content\":\"x\"}]}", false },
		{ POL_API_RESPONSES, "{\"model\":\"m\",\"input\":\"hi\","
		    "\"previous_response_id\":\"resp_1\"}", true },
		{ POL_API_RESPONSES, "{\"model\":\"m\",\"input\":7}", false },
		{ POL_API_RESPONSES, "{\"model\":\"m\",\"input\":\"x\",\"tools\":"
		    "[{\"type\":\"teleport\"}]}", false },
		{ POL_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}",
		    true },
		{ POL_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"a\",\"stream\":"
		    "true}", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum wd_err rc = gw_req_parse(cases[i].api, false, cases[i].body,
		    strlen(cases[i].body), &r, why, sizeof(why), &param);

		ck_assert_msg((rc == WD_OK) == cases[i].ok, "case %zu: %s", i,
		    why);
		gw_req_clear(&r);
	}
	ck_assert_int_eq(gw_req_parse(POL_API_RESPONSES, false, cases[4].body,
	    strlen(cases[4].body), &r, why, sizeof(why), &param), WD_OK);
	ck_assert_str_eq(r.previous_response_id, "resp_1");
	gw_req_clear(&r);
}
END_TEST

static enum gw_tools_rc
view_check(struct gw_tools *tl, const char *viol, unsigned api,
    const char *body, char *refused, struct gw_tools_deny *d, char **sent)
{
	struct gw_req r;
	char why[160];
	const char *param;
	json_t *view;
	enum gw_tools_rc rc;
	struct gw_http_req req;

	setup_tools(tl, viol);
	ck_assert_int_eq(gw_req_parse(api, false, body, strlen(body), &r, why,
	    sizeof(why), &param), WD_OK);
	view = gw_req_tools_view(&r, tl->agent, refused, 64);
	memset(&req, 0, sizeof(req));
	struct pol_caller caller = { .tenant = &ld.snap->tenants[0],
		.agent = &ld.snap->agents[0], .key = ld.snap->agents[0].keys[0] };

	gw_tools_clear(tl);
	rc = gw_tools_request(tl, ld.snap, &ld.snap->tenants[0], &caller, &req,
	    &(struct gw_chat){ .root = view }, d);
	if (rc == GW_TOOLS_MODIFIED)
		gw_req_tools_apply(&r, view);
	*sent = json_dumps(r.root, JSON_COMPACT);
	json_decref(view);
	gw_req_clear(&r);
	return rc;
}

/* History in each format's shape is judged like chat history; offered
 * tools are stripped from the request itself; an unlisted provider-side
 * tool is found. */
START_TEST(request_tools_view)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	char refused[64], *sent;

	/* Messages: read_customer was called and answered; send_email may
	 * not be offered now (strip), read_customer may. */
	ck_assert_int_eq(view_check(&tl, "strip", POL_API_MESSAGES,
	    "{\"model\":\"m\",\"max_tokens\":9,\"messages\":["
	    "{\"role\":\"user\",\"content\":\"hi\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	    "\"t1\",\"name\":\"read_customer\",\"input\":{}}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
	    "\"tool_use_id\":\"t1\",\"content\":\"Ann\"}]}],"
	    "\"tools\":[{\"name\":\"send_email\",\"input_schema\":{}},"
	    "{\"name\":\"read_customer\",\"input_schema\":{}}]}", refused, &d,
	    &sent), GW_TOOLS_MODIFIED);
	ck_assert_str_eq(refused, "");
	ck_assert_ptr_null(strstr(sent, "send_email"));
	ck_assert_ptr_nonnull(strstr(sent, "\"name\":\"read_customer\","
	    "\"input_schema\""));
	free(sent);
	teardown_tools(&tl);
	/* A tool_result that answers no call is refused. */
	ck_assert_int_eq(view_check(&tl, "deny", POL_API_MESSAGES,
	    "{\"model\":\"m\",\"max_tokens\":9,\"messages\":["
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
	    "\"tool_use_id\":\"t9\",\"content\":\"Ann\"}]}]}", refused, &d,
	    &sent), GW_TOOLS_DENY);
	free(sent);
	teardown_tools(&tl);
	/* Responses: a function_call history, then web_search offered after
	 * read_customer: the flow rule (deny). */
	ck_assert_int_eq(view_check(&tl, "deny", POL_API_RESPONSES,
	    "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	    "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":"
	    "\"read_customer\",\"arguments\":\"{}\"},{\"type\":"
	    "\"function_call_output\",\"call_id\":\"c1\",\"output\":\"Ann\"}],"
	    "\"tools\":[{\"type\":\"web_search\"}]}", refused, &d, &sent),
	    GW_TOOLS_DENY);
	ck_assert_str_eq(d.code, "tool_policy");
	free(sent);
	teardown_tools(&tl);
	/* A provider-side tool the agent does not list. */
	view_check(&tl, "deny", POL_API_RESPONSES, "{\"model\":\"m\",\"input\":"
	    "\"x\",\"tools\":[{\"type\":\"code_interpreter\",\"container\":"
	    "{\"type\":\"auto\"}}]}", refused, &d, &sent);
	ck_assert_str_eq(refused, "code_interpreter");
	free(sent);
	teardown_tools(&tl);
	view_check(&tl, "deny", POL_API_MESSAGES, "{\"model\":\"m\","
	    "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"x\"}],\"tools\":[{\"type\":\"code_execution_20250522\",\"name\":"
	    "\"code_execution\"}]}", refused, &d, &sent);
	ck_assert_str_eq(refused, "code_execution");
	free(sent);
	teardown_tools(&tl);
}
END_TEST

/* Keys where each client sends them; one request, one key. */
START_TEST(keys_from_either_header)
{
	struct ut_ld l;
	struct pol_caller who;
	struct gw_http_req req;
	struct gw_header h[3];
	const char *text = "version: 1\n"
	    "providers:\n"
	    "  - id: p\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys: [\"sha256:0cc8ed90becd495001cf9b69685f6b7102df4f75c58b7d66"
	    "0a4e24dad5d32e40\"]\n"
	    "    routes: [p]\n";

	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	memset(&req, 0, sizeof(req));
	req.hdrs = h;
	h[0] = (struct gw_header){ "x-api-key", "wk-formats-test" };
	req.nhdrs = 1;
	ck_assert_ptr_nonnull(gw_auth_request(l.snap, &req, &who));
	h[1] = (struct gw_header){ "Authorization", "Bearer wk-formats-test" };
	req.nhdrs = 2;
	ck_assert_ptr_nonnull(gw_auth_request(l.snap, &req, &who));
	h[1] = (struct gw_header){ "Authorization", "Bearer wk-other" };
	ck_assert_ptr_null(gw_auth_request(l.snap, &req, &who));
	h[1] = (struct gw_header){ "X-Api-Key", "wk-formats-test" };
	ck_assert_ptr_null(gw_auth_request(l.snap, &req, &who));
	h[0] = (struct gw_header){ "Authorization", "Bearer wk-formats-test" };
	req.nhdrs = 1;
	ck_assert_ptr_nonnull(gw_auth_request(l.snap, &req, &who));
	h[0] = (struct gw_header){ "x-api-key", "wk-nobody" };
	ck_assert_ptr_null(gw_auth_request(l.snap, &req, &who));
	ut_ld_done(&l);
}
END_TEST

/*
 * One connection's requests with one memo: every digest is the key's own
 * (never the last request's), keys of one length included, and what is
 * no key stays no key after a good one.
 */
START_TEST(key_memo_gives_each_request_its_own_digest)
{
	static const struct { const char *name, *value, *key; } seq[] = {
		{ "Authorization", "Bearer wk-aaaa", "wk-aaaa" },
		{ "Authorization", "Bearer wk-aaaa", "wk-aaaa" },
		{ "Authorization", "Bearer wk-aaab", "wk-aaab" },
		{ "x-api-key", "wk-aaaa", "wk-aaaa" },
		{ "x-api-key", "wk-aaab", "wk-aaab" },
		{ "Authorization", "Bearer  wk-aaab", "wk-aaab" },
		{ "Authorization", "Bearer ", NULL },
		{ "Authorization", "Basic wk-aaab", NULL },
		{ "Authorization", "Bearer wk-aaab", "wk-aaab" },
		{ "x-other", "wk-aaab", NULL },
		{ "Authorization", "bearer wk-ZZZZ", "wk-ZZZZ" },
	};
	struct gw_keymemo memo = { 0 };

	for (int round = 0; round < 2; round++)
	for (size_t i = 0; i < sizeof(seq) / sizeof(*seq); i++) {
		struct gw_header h = { seq[i].name, seq[i].value };
		struct gw_http_req req = { .hdrs = &h, .nhdrs = 1 };
		unsigned char got[32], want[32];
		bool ok = gw_auth_key_digest(&req, got, &memo);

		ck_assert_msg(ok == (seq[i].key != NULL), "request %zu", i);
		if (!ok)
			continue;
		wd_sha256(seq[i].key, strlen(seq[i].key), want);
		ck_assert_msg(memcmp(got, want, 32) == 0, "request %zu: %s",
		    i, seq[i].value);
	}
	gw_keymemo_clear(&memo);
	ck_assert_ptr_null(memo.key);
}
END_TEST

/* The gateway's record written directly (gw_record_canon) is byte for
 * byte the jansson record (gw_record, stamped and serialised as the
 * audit log does), over decisions of the example rules and outcomes with
 * every optional member, unicode and escapes in the values, big ints. */
START_TEST(record_canon_matches_jansson_record)
{
	static const char *const models[] = { "gpt-4o", "claude-3-5-sonnet",
	    "mistral-large", "no-such-model", "m\xc3\xa9t\xc3\xa9o\"\\/\x01" };
	static const char *const classes[] = { NULL, "health", "financial",
	    "personal,health", "bogus" };
	static const char *const regions[] = { NULL, "EU", "JP", "US" };
	struct ut_ld l = { .path = (char *)"rules/example.yaml" };
	size_t n = 0, direct = 0;

	ut_load_path(&l);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs ? l.errs : "");
	for (size_t ti = 0; ti < l.snap->ntenants; ti++)
	for (size_t mi = 0; mi < sizeof(models) / sizeof(*models); mi++)
	for (size_t ci = 0; ci < sizeof(classes) / sizeof(*classes); ci++)
	for (size_t ri = 0; ri < sizeof(regions) / sizeof(*regions); ri++) {
		struct pol_facts f = { .tenant = &l.snap->tenants[ti],
		    .model = models[mi], .hdr_classes = classes[ci],
		    .hdr_region = regions[ri], .stream = (ri & 1) != 0,
		    .app = ci & 1 ? "support-bot" : NULL };
		struct pol_decision *d = calloc(1, sizeof(*d));
		uint32_t counts[POL_MAX_DETECTORS] = { 0 };

		ck_assert_ptr_nonnull(d);
		if (l.snap->detect.n > 0 && (mi & 1))
			counts[(ti + mi) % l.snap->detect.n] = 3;
		f.det_counts = counts;
		if (pol_decide(l.snap, &f, d) != WD_OK)
			d->verdict = POL_DENY;	/* as the gateway has it */
		for (unsigned v = 0; v < 8; v++) {
			json_t *tools = v & 1 ? json_pack("{s:s,s:s,s:[{s:s,s:b}]}",
			    "agent", "crm", "session", "s-\xe2\x82\xac\n1", "answer",
			    "tool", "lookup", "allowed", 1) : NULL;
			json_t *usage = v & 2 ? json_pack("{s:I,s:I,s:{s:f}}",
			    "prompt_tokens", (json_int_t)INT64_MAX, "completion_tokens",
			    (json_int_t)-1, "details", "x", 0.5) : NULL;
			char gone[] = "client_gone", err[] = "timed out \"x\"\n\xc3\xa9";
			/* A usage as text (no tree): one written as it is, one
			 * (a real) that goes the tree's way. */
			const char *utext = v == 5 ? "{\"prompt_tokens\":19, "
			    "\"completion_tokens\":10,\"total_tokens\":29,"
			    "\"prompt_tokens_details\":{\"cached_tokens\":0}}" :
			    v == 1 ? "{\"cost\":1.5e-3,\"total_tokens\":3}" : NULL;
			struct gw_attempt attempts[] = {
				{ "openai-eu", 502, NULL }, { "openai-us", 0, err },
				{ "openai-eu", 200, gone },
			};
			json_t *limits = v == 6 ? json_pack("{s:{s:i}}", "key",
			    "tokens", 12) : NULL;
			const struct pol_provider *rt = v == 0 ? NULL : d->nroutes > 0 &&
			    (v & 1) ? d->routes[0] : &l.snap->providers[(ti + v) %
			    l.snap->nproviders];
			struct gw_outcome o = {
				.request_id = v == 3 ? NULL : "r-0123456789",
				.snap = l.snap, .dec = d, .decided = v != 5,
				.tenant = v == 7 ? NULL : l.snap->tenants[ti].id,
				.api = v & 2 ? "openai-chat" : "",
				.model = models[mi], .stream = v & 1, .route = rt,
				.status = v == 4 ? 499 : 200,
				.code = v == 4 ? "client_closed" : NULL,
				.upstream_status = v & 4 ? 200 : 0,
				.attempts = v & 4 ? attempts : NULL,
				.nattempts = v & 4 ? 1 + v % 3 : 0,
				.tools = tools, .usage = usage,
				.usage_text = utext,
				.usage_len = utext != NULL ? strlen(utext) : 0,
				.limits = limits,
				.latency_us = (uint64_t)v * 1234567u,
				.req_hmac = v & 1 ? "ab12" : "",
				.resp_hmac = v & 2 ? "cd34" : NULL,
				.stored = v == 2 || v == 7, .refused_late = v == 3,
			};
			struct aud_canon c;
			struct aud_pre a, b;
			json_t *rec = gw_record(&o);

			json_object_set_new(rec, "instance", json_string("inst-\xc3\xa9"));
			json_object_set_new(rec, "ts",
			    json_string("2026-11-30T01:02:03.456789Z"));
			ck_assert(aud_line_prepare(rec, &a));
			aud_canon_begin_as(&c, "inst-\xc3\xa9",
			    "2026-11-30T01:02:03.456789Z");
			ck_assert_msg(gw_record_canon(&o, &c), "the direct writer "
			    "failed on %s", a.text);
			ck_assert(aud_canon_end(&c, &b));
			ck_assert_msg(a.len == b.len && memcmp(a.text, b.text,
			    a.len) == 0, "jansson:\n%s\ndirect:\n%s", a.text, b.text);
			ck_assert_uint_eq(a.at_prev, b.at_prev);
			ck_assert_uint_eq(a.at_seq, b.at_seq);
			if (v == 5)
				ck_assert_ptr_nonnull(strstr(b.text, "\"usage\":{"
				    "\"completion_tokens\":10,\"prompt_tokens\":19,"
				    "\"prompt_tokens_details\":{\"cached_tokens\":0},"
				    "\"total_tokens\":29}"));
			direct++;
			n++;
			free(a.text);
			free(b.text);
			json_decref(rec);
			json_decref(tools);
			json_decref(usage);
			json_decref(limits);
		}
		free(d);
	}
	ck_assert_uint_gt(n, 1000);
	ck_assert_uint_eq(direct, n);
	free(l.errs);
	pol_snapshot_unref(l.snap);
}
END_TEST

/* stream_end written directly is byte for byte the jansson record. */
START_TEST(stream_end_canon_matches_jansson_record)
{
	static const char *const strs[] = { "", "a", "t\xc3\xa9nant\"\\/\n\x1f",
	    "\xf0\x9f\x98\x80", "deny" };
	size_t n = 0;

	for (unsigned v = 0; v < 512; v++) {
		char err[] = "connect \"refused\"\t\xe2\x82\xac";
		struct gw_attempt attempts[] = {
			{ strs[v % 5], v & 1 ? 0 : 503, v & 1 ? err : NULL },
			{ strs[(v + 1) % 5], 200, v & 2 ? err : NULL },
		};
		json_t *usage = v & 1 ? json_pack("{s:I,s:f}", "total_tokens",
		    (json_int_t)INT64_MIN, "cost", 1e-7) : NULL;
		json_t *tools = v & 2 ? json_pack("{s:s,s:[]}", "agent", strs[(v /
		    4) % 5], "answer") : NULL;
		json_t *limits = v & 4 ? json_pack("{s:i}", "tokens", 7) : NULL;
		struct gw_stream_end e = {
			.request_id = strs[(v / 8) % 5], .decision_id = "0123abcd",
			.tenant = v & 8 ? NULL : strs[(v / 2) % 5],
			.code = v & 16 ? NULL : strs[(v / 16) % 5],
			.verdict = v & 32 ? "deny" : "allow",
			.keep = v & 64 ? "full" : "none",
			.resp_hmac = v & 128 ? "" : "beef",
			.status = v & 256 ? 499 : 200,
			.latency_ms = (long long)v * 1000003,
			.attempts = attempts, .nattempts = 1 + (v / 3) % 2,
			.usage = usage, .tools = tools,
			.limits = limits, .stored = (v % 3) == 0,
		};
		json_t *rec = gw_stream_end_record(&e);
		struct aud_canon c;
		struct aud_pre a, b;

		ck_assert_ptr_nonnull(rec);
		json_object_set_new(rec, "instance", json_string("i"));
		json_object_set_new(rec, "ts", json_string("2026-11-30T00:00:00Z"));
		ck_assert(aud_line_prepare(rec, &a));
		aud_canon_begin_as(&c, "i", "2026-11-30T00:00:00Z");
		ck_assert(gw_stream_end_canon(&e, &c));
		ck_assert(aud_canon_end(&c, &b));
		ck_assert_msg(a.len == b.len && memcmp(a.text, b.text, a.len) == 0,
		    "jansson:\n%s\ndirect:\n%s", a.text, b.text);
		ck_assert_uint_eq(a.at_prev, b.at_prev);
		ck_assert_uint_eq(a.at_seq, b.at_seq);
		n++;
		free(a.text);
		free(b.text);
		json_decref(rec);
		json_decref(usage);
		json_decref(tools);
		json_decref(limits);
	}
	ck_assert_uint_eq(n, 512);
}
END_TEST

Suite *
suite_formats(void)
{
	Suite *s = suite_create("formats");
	TCase *tc = tcase_create("formats");

	tcase_add_test(tc, messages_stream_call_judged_at_block_start);
	tcase_add_test(tc, messages_stream_order_rules);
	tcase_add_test(tc, messages_whole_answer);
	tcase_add_test(tc, responses_stream_call_judged_at_item_added);
	tcase_add_test(tc, responses_stream_order_rules);
	tcase_add_test(tc, responses_whole_answer);
	tcase_add_test(tc, embeddings_answer);
	tcase_add_test(tc, error_shapes);
	tcase_add_test(tc, sse_named_events);
	tcase_add_test(tc, routes_speak_formats);
	tcase_add_test(tc, api_list_errors);
	tcase_add_test(tc, api_in_policy_version);
	tcase_add_test(tc, requests_read_strictly);
	tcase_add_test(tc, request_tools_view);
	tcase_add_test(tc, keys_from_either_header);
	tcase_add_test(tc, key_memo_gives_each_request_its_own_digest);
	tcase_add_test(tc, record_canon_matches_jansson_record);
	tcase_add_test(tc, stream_end_canon_matches_jansson_record);
	suite_add_tcase(s, tc);
	return s;
}
