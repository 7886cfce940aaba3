/*
 * fmt_messages.c - the strict reader and writer of Anthropic Messages
 * answers (POST /v1/messages), a sibling of chat_answer.c's table: a whole
 * message or one named stream event becomes normalized events, anything
 * that is not a well-formed message of that shape is refused, and what
 * the client gets is this file's serialization of what was checked.
 *
 * Where calls hide in this format: content blocks of type tool_use (the
 * client's tools), server_tool_use (provider-side tools: web search, code
 * execution ...) and mcp_tool_use (remote MCP servers).  In a stream a
 * call is named at its content_block_start, before any input_json_delta
 * of that block, so the policy sees the name before one byte of it goes
 * out.  The @anthropic-ai/sdk accumulator pushes each started block at
 * the end of its list and applies a delta to content.at(index): so a
 * block must start at the next index, and deltas must name a started,
 * open block of their kind (step() below).
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MB_TEXT = 1, MB_CALL, MB_THINKING, MB_OTHER };

/* Types of provider-side tool results: data, never a call. */
static bool
is_result_type(const char *t)
{
	size_t n = strlen(t);

	return n > 12 && strcmp(t + n - 12, "_tool_result") == 0 &&
	    strcmp(t, "tool_result") != 0;
}

/*
 * One content block (a whole message's, or a stream's start).  *kind
 * gets its MB_ kind; calls add a CALL event (call = position).
 */
static enum wd_err
read_block(struct gw_answer *a, json_t *b, size_t pos, json_t *parent,
    int *kind, char *why, size_t whylen)
{
	static const char *const text_keys[] = { "type", "text", "citations",
		NULL };
	static const char *const call_keys[] = { "type", "id", "name", "input",
		"caller", NULL };
	static const char *const mcp_keys[] = { "type", "id", "name",
		"server_name", "input", NULL };
	static const char *const think_keys[] = { "type", "thinking",
		"signature", NULL };
	static const char *const redacted_keys[] = { "type", "data", NULL };
	static const char *const result_keys[] = { "type", "tool_use_id",
		"content", "is_error", NULL };
	const char *type, *k;
	struct gw_ans_event e = { .choice = 0, .call = pos, .node = b,
		.parent = parent };

	if (!json_is_object(b) || !gw_ans_opt_string(b, "type", &type) ||
	    type == NULL)
		return gw_ans_bad(why, whylen, "content[%zu] has no type", pos);
	if (strcmp(type, "text") == 0) {
		*kind = MB_TEXT;
		if ((k = gw_ans_stray_key(b, text_keys)) != NULL)
			return gw_ans_bad(why, whylen, "text block has '%.40s'", k);
		if (!gw_ans_is_str(b, "text", true))
			return gw_ans_bad(why, whylen, "text block without text");
		if (!gw_ans_absent(json_object_get(b, "citations")) &&
		    !json_is_array(json_object_get(b, "citations")))
			return gw_ans_bad(why, whylen, "citations is not an array");
		e.kind = GW_ANS_TEXT;
		e.text = json_string_value(json_object_get(b, "text"));
		return gw_ans_add(a, &e);
	}
	if (strcmp(type, "tool_use") == 0 || strcmp(type, "server_tool_use") == 0
	    || strcmp(type, "mcp_tool_use") == 0) {
		bool mcp = type[0] == 'm';

		*kind = MB_CALL;
		if ((k = gw_ans_stray_key(b, mcp ? mcp_keys : call_keys)) != NULL)
			return gw_ans_bad(why, whylen, "%s block has '%.40s'", type, k);
		if (!gw_ans_is_str(b, "id", true) || !gw_ans_is_str(b, "name", true) ||
		    *json_string_value(json_object_get(b, "name")) == '\0' ||
		    strlen(json_string_value(json_object_get(b, "name"))) > 64 ||
		    !json_is_object(json_object_get(b, "input")) ||
		    (mcp && !gw_ans_is_str(b, "server_name", true)))
			return gw_ans_bad(why, whylen, "%s block needs id, a name of 1 to "
			    "64 bytes and an input object", type);
		e.kind = GW_ANS_CALL;
		/* A remote MCP server is one provider-side tool: "mcp". */
		e.name = mcp ? "mcp" : json_string_value(json_object_get(b,
		    "name"));
		return gw_ans_add(a, &e);
	}
	if (strcmp(type, "thinking") == 0 || strcmp(type,
	    "redacted_thinking") == 0) {
		bool red = type[0] == 'r';

		*kind = MB_THINKING;
		if ((k = gw_ans_stray_key(b, red ? redacted_keys : think_keys)) !=
		    NULL || !gw_ans_is_str(b, red ? "data" : "thinking", true) ||
		    !gw_ans_is_str(b, "signature", false))
			return gw_ans_bad(why, whylen, "malformed %s block", type);
		return WD_OK;
	}
	if (is_result_type(type)) {
		*kind = MB_OTHER;
		if ((k = gw_ans_stray_key(b, result_keys)) != NULL ||
		    !gw_ans_is_str(b, "tool_use_id", true))
			return gw_ans_bad(why, whylen, "malformed %.40s block", type);
		return WD_OK;
	}
	return gw_ans_bad(why, whylen, "unknown content block type '%.40s'", type);
}

static enum wd_err
read_usage(struct gw_answer *a, json_t *obj, char *why, size_t whylen)
{
	json_t *u = json_object_get(obj, "usage");
	struct gw_ans_event e = { .kind = GW_ANS_USAGE, .node = u };

	if (gw_ans_absent(u))
		return WD_OK;
	if (!json_is_object(u))
		return gw_ans_bad(why, whylen, "usage is not an object");
	return gw_ans_add(a, &e);
}

static enum wd_err
read_stop(struct gw_answer *a, json_t *obj, char *why, size_t whylen)
{
	struct gw_ans_event e = { .kind = GW_ANS_FINISH, .choice_obj = obj };

	if (!gw_ans_opt_string(obj, "stop_reason", &e.text) ||
	    !gw_ans_is_str(obj, "stop_sequence", false))
		return gw_ans_bad(why, whylen, "stop_reason is not a string");
	return e.text != NULL ? gw_ans_add(a, &e) : WD_OK;
}

/* The message object; a stream's message_start must have no content. */
static enum wd_err
read_message(struct gw_answer *a, json_t *m, bool start, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "id", "type", "role", "model",
		"content", "stop_reason", "stop_sequence", "usage", "container",
		"context_management", NULL };
	json_t *content = json_object_get(m, "content"), *b;
	const char *type, *role, *k;
	size_t i;
	enum wd_err rc;

	if (!json_is_object(m))
		return gw_ans_bad(why, whylen, "the message is not an object");
	if ((k = gw_ans_stray_key(m, keys)) != NULL)
		return gw_ans_bad(why, whylen, "the message has '%.40s'", k);
	if (!gw_ans_opt_string(m, "type", &type) || type == NULL ||
	    strcmp(type, "message") != 0 || !gw_ans_opt_string(m, "role",
	    &role) || role == NULL || strcmp(role, "assistant") != 0 ||
	    !gw_ans_is_str(m, "id", true) || !gw_ans_is_str(m, "model", false))
		return gw_ans_bad(why, whylen, "not an assistant message");
	if (!json_is_array(content))
		return gw_ans_bad(why, whylen, "content is not an array");
	if (json_array_size(content) > GW_FMT_MAX_BLOCKS)
		return gw_ans_bad(why, whylen, "more than %d content blocks",
		    GW_FMT_MAX_BLOCKS);
	if (start && (json_array_size(content) > 0 ||
	    !gw_ans_absent(json_object_get(m, "stop_reason"))))
		return gw_ans_bad(why, whylen, "message_start with content or a stop");
	json_array_foreach(content, i, b) {
		int kind;

		if ((rc = read_block(a, b, i, content, &kind, why, whylen)) !=
		    WD_OK)
			return rc;
	}
	if ((rc = read_usage(a, m, why, whylen)) != WD_OK)
		return rc;
	return read_stop(a, m, why, whylen);
}

static enum wd_err
msg_read_answer(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_messages;
	if ((a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	return read_message(a, a->root, false, why, whylen);
}

/* ---- one named event of a stream ---- */

static enum wd_err
read_delta(struct gw_answer *a, json_t *d, size_t idx, char *why,
    size_t whylen)
{
	static const struct {
		const char *type, *field;
	} kinds[] = {
		{ "text_delta", "text" }, { "input_json_delta", "partial_json" },
		{ "thinking_delta", "thinking" }, { "signature_delta", "signature" },
		{ "citations_delta", "citation" },
	};
	const char *type;
	size_t i;

	if (!json_is_object(d) || !gw_ans_opt_string(d, "type", &type) ||
	    type == NULL)
		return gw_ans_bad(why, whylen, "a delta without a type");
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(type, kinds[i].type) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		return gw_ans_bad(why, whylen, "unknown delta type '%.40s'", type);
	if (json_object_size(d) != 2 || json_object_get(d, kinds[i].field) ==
	    NULL || (i != 4 && !gw_ans_is_str(d, kinds[i].field, true)))
		return gw_ans_bad(why, whylen, "malformed %s", type);
	if (i == 0) {
		struct gw_ans_event e = { .kind = GW_ANS_TEXT, .call = idx,
			.text = json_string_value(json_object_get(d, "text")) };

		return gw_ans_add(a, &e);
	}
	if (i == 1) {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .call = idx,
			.node = d };

		return gw_ans_add(a, &e);
	}
	return WD_OK;
}

static enum wd_err
msg_read_chunk(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	json_t *r;
	const char *t;
	size_t idx;
	int kind;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_messages;
	a->chunk = true;
	if ((r = a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	if (!gw_ans_opt_string(r, "type", &a->type) || a->type == NULL)
		return gw_ans_bad(why, whylen, "an event without a type");
	t = a->type;
	if (strcmp(t, "ping") == 0 || strcmp(t, "message_stop") == 0)
		return json_object_size(r) == 1 ? WD_OK :
		    gw_ans_bad(why, whylen, "%s with other keys", t);
	if (strcmp(t, "error") == 0) {
		struct gw_ans_event e = { .kind = GW_ANS_ERROR,
			.node = json_object_get(r, "error") };

		if (!json_is_object(e.node))
			return gw_ans_bad(why, whylen, "an error event without error");
		gw_ans_opt_string(e.node, "message", &e.text);
		return gw_ans_add(a, &e);
	}
	if (strcmp(t, "message_start") == 0) {
		if (json_object_size(r) != 2)
			return gw_ans_bad(why, whylen, "message_start with other keys");
		return read_message(a, json_object_get(r, "message"), true, why,
		    whylen);
	}
	if (strcmp(t, "message_delta") == 0) {
		static const char *const keys[] = { "type", "delta", "usage",
			"context_management", NULL };
		static const char *const dkeys[] = { "stop_reason",
			"stop_sequence", "container", NULL };
		json_t *d = json_object_get(r, "delta");
		enum wd_err rc;

		if (gw_ans_stray_key(r, keys) != NULL || !json_is_object(d) ||
		    gw_ans_stray_key(d, dkeys) != NULL)
			return gw_ans_bad(why, whylen, "malformed message_delta");
		if ((rc = read_stop(a, d, why, whylen)) != WD_OK)
			return rc;
		return read_usage(a, r, why, whylen);
	}
	if (!gw_ans_index_ok(json_object_get(r, "index"), GW_FMT_MAX_BLOCKS,
	    &idx))
		return gw_ans_bad(why, whylen, "%.40s: index is not an integer from 0 to "
		    "%d", t, GW_FMT_MAX_BLOCKS - 1);
	if (strcmp(t, "content_block_start") == 0) {
		if (json_object_size(r) != 3)
			return gw_ans_bad(why, whylen, "content_block_start with other keys");
		return read_block(a, json_object_get(r, "content_block"), idx, r,
		    &kind, why, whylen);
	}
	if (strcmp(t, "content_block_delta") == 0) {
		if (json_object_size(r) != 3)
			return gw_ans_bad(why, whylen, "content_block_delta with other keys");
		return read_delta(a, json_object_get(r, "delta"), idx, why,
		    whylen);
	}
	if (strcmp(t, "content_block_stop") == 0)
		return json_object_size(r) == 2 ? WD_OK :
		    gw_ans_bad(why, whylen, "content_block_stop with other keys");
	return gw_ans_bad(why, whylen, "unknown event type '%.40s'", t);
}

/*
 * The event's place in the stream: message_start first, blocks started
 * at the next index and deltas to an open block of their kind, a
 * message_delta after the blocks, message_stop last.  Calls are numbered
 * as they start (the tool policy wants ordinals, not block positions).
 */
static enum wd_err
msg_step(struct gw_fmt_stream *st, struct gw_answer *a, char *why,
    size_t whylen)
{
	const char *t = a->type;
	size_t idx = 0;

	if (strcmp(t, "ping") == 0 || strcmp(t, "error") == 0)
		return WD_OK;
	if (!st->started) {
		if (strcmp(t, "message_start") != 0)
			return gw_ans_bad(why, whylen, "the stream does not begin with "
			    "message_start");
		st->started = true;
		return WD_OK;
	}
	if (strcmp(t, "message_start") == 0)
		return gw_ans_bad(why, whylen, "a second message_start");
	if (strcmp(t, "message_stop") == 0) {
		for (unsigned i = 0; i < st->nblocks; i++)
			if (st->open[i])
				return gw_ans_bad(why, whylen, "message_stop with block %u "
				    "open", i);
		st->ended = true;
		return WD_OK;
	}
	if (strcmp(t, "message_delta") == 0) {
		st->finished = true;
		return WD_OK;
	}
	if (st->finished)
		return gw_ans_bad(why, whylen, "%s after message_delta", t);
	gw_ans_index_ok(json_object_get(a->root, "index"), GW_FMT_MAX_BLOCKS,
	    &idx);
	if (strcmp(t, "content_block_start") == 0) {
		json_t *b = json_object_get(a->root, "content_block");
		const char *bt = json_string_value(json_object_get(b, "type"));
		unsigned char k = strcmp(bt, "text") == 0 ? MB_TEXT :
		    strstr(bt, "tool_use") != NULL && !is_result_type(bt) ?
		    MB_CALL : strstr(bt, "thinking") != NULL ? MB_THINKING :
		    MB_OTHER;

		return gw_ans_open_block(st, a, idx, k, "block", why, whylen);
	}
	if (idx >= st->nblocks || !st->open[idx])
		return gw_ans_bad(why, whylen, "%s for block %zu, which is not open", t,
		    idx);
	if (strcmp(t, "content_block_stop") == 0) {
		st->open[idx] = 0;
		return WD_OK;
	}
	/* A delta: of its block's kind. */
	{
		const char *dt = json_string_value(json_object_get(
		    json_object_get(a->root, "delta"), "type"));
		int want = strcmp(dt, "text_delta") == 0 ||
		    strcmp(dt, "citations_delta") == 0 ? MB_TEXT :
		    strcmp(dt, "input_json_delta") == 0 ? MB_CALL : MB_THINKING;

		if (st->kind[idx] != want)
			return gw_ans_bad(why, whylen, "%s to a block of another kind",
			    dt);
		for (size_t i = 0; i < a->nev; i++)
			if (a->ev[i].kind == GW_ANS_CALL)
				a->ev[i].call = st->callno[idx];
	}
	return WD_OK;
}

/* ---- strip, write, errors ---- */

static void
msg_drop_call(struct gw_answer *a, const struct gw_ans_event *ev)
{
	json_t *content = json_object_get(a->root, "content");
	bool calls = false;
	size_t i;
	json_t *b;

	for (i = 0; i < json_array_size(content); i++)
		if (json_array_get(content, i) == ev->node) {
			json_array_remove(content, i);
			break;
		}
	json_array_foreach(content, i, b) {
		const char *t = json_string_value(json_object_get(b, "type"));

		calls |= t != NULL && strcmp(t, "tool_use") == 0;
	}
	if (json_array_size(content) == 0)
		json_array_append_new(content, json_pack("{s:s,s:s}", "type",
		    "text", "text", ""));
	if (!calls)
		json_object_set_new(a->root, "stop_reason",
		    json_string("end_turn"));
}

enum wd_err
gw_ans_write_named(const struct gw_answer *a, struct evbuffer *out)
{
	return gw_ans_write_json(a->root, a->type, a->chunk, out);
}

/* {"type":"error","error":{"type","message"}}: those two, nothing else. */
static json_t *
msg_read_error(const char *buf, size_t len)
{
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *err = json_object_get(root, "error"), *out = NULL;
	const char *type, *msg;

	if (!json_is_object(root) || !json_is_object(err))
		goto out;
	type = json_string_value(json_object_get(err, "type"));
	msg = json_string_value(json_object_get(err, "message"));
	out = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
	    type ? type : "api_error", "message", msg ? msg : "");
out:
	json_decref(root);
	return out;
}

/* Anthropic's error types, from warden's status and OpenAI-style type. */
static const char *
anthropic_type(int status, const char *type)
{
	switch (status) {
	case 400: case 422: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 503: case 529: return "overloaded_error";
	default: break;
	}
	if (type != NULL && strcmp(type, "invalid_request_error") == 0)
		return type;
	if (type != NULL && strcmp(type, "permission_error") == 0)
		return type;
	/* A refusal by policy (mid-stream: no status) is a permission one. */
	if (type != NULL && strcmp(type, "policy_violation") == 0)
		return "permission_error";
	return "api_error";
}

json_t *
gw_messages_error_body(int status, const char *type, const char *code,
    const char *message)
{
	char msg[600];

	/* The format has no code: warden's goes in the message. */
	snprintf(msg, sizeof(msg), "%s (warden: %s)", message ? message : "",
	    code ? code : "error");
	return json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
	    anthropic_type(status, type), "message", msg);
}

static json_t *
msg_error_body(int status, const char *type, const char *code,
    const char *message)
{
	return gw_messages_error_body(status, type, code, message);
}

static void
msg_error_event(struct evbuffer *out, const char *type, const char *code,
    const char *message)
{
	gw_ans_error_event(out, gw_messages_error_body(0, type, code, message));
}

/* Claude Code's gateway contract: these reach the provider unchanged. */
static const char *const msg_forward[] = { "anthropic-version",
	"anthropic-beta", NULL };

const struct gw_format gw_format_messages = {
	.name = "anthropic-messages",
	.path = "/messages",
	.read_request = gw_messages_read_request,
	.read_answer = msg_read_answer,
	.read_chunk = msg_read_chunk,
	.drop_call = msg_drop_call,
	.write = gw_ans_write_named,
	.read_error = msg_read_error,
	.done = "",
	.step = msg_step,
	.error_body = msg_error_body,
	.error_event = msg_error_event,
	.auth_prefix = "x-api-key: ",
	.forward = msg_forward,
	.api = POL_API_MESSAGES,
	.answer_text = gw_detect_text_messages,
};

/* ---- count_tokens: {"input_tokens": N}, never streamed ---- */

static enum wd_err
count_read_answer(const char *buf, size_t len, struct gw_answer *a,
    char *why, size_t whylen)
{
	static const char *const keys[] = { "input_tokens",
		"context_management", NULL };
	json_t *n;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_count_tokens;
	if ((a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	n = json_object_get(a->root, "input_tokens");
	if (gw_ans_stray_key(a->root, keys) != NULL || !json_is_integer(n) ||
	    json_integer_value(n) < 0)
		return gw_ans_bad(why, whylen, "not a token count");
	return WD_OK;
}

static enum wd_err
count_read_chunk(const char *buf, size_t len, struct gw_answer *a,
    char *why, size_t whylen)
{
	(void)buf;
	(void)len;
	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_count_tokens;
	return gw_ans_bad(why, whylen, "count_tokens does not stream");
}

static void
count_drop_call(struct gw_answer *a, const struct gw_ans_event *ev)
{
	(void)a;
	(void)ev;			/* no calls in a count */
}

const struct gw_format gw_format_count_tokens = {
	.name = "anthropic-count-tokens",
	.path = "/messages/count_tokens",
	.read_request = gw_count_tokens_read_request,
	.read_answer = count_read_answer,
	.read_chunk = count_read_chunk,
	.drop_call = count_drop_call,
	.write = gw_ans_write_named,
	.read_error = msg_read_error,
	.done = "",
	.error_body = msg_error_body,
	.error_event = msg_error_event,
	.auth_prefix = "x-api-key: ",
	.forward = msg_forward,
	.api = POL_API_MESSAGES,
	.answer_text = gw_detect_text_none,
};
