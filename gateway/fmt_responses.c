/*
 * fmt_responses.c - the strict reader and writer of OpenAI Responses
 * answers (POST /v1/responses), a sibling of chat_answer.c's table.
 *
 * Where calls hide in this format: output items.  function_call and
 * custom_tool_call are the client's tools (by name); the provider-side
 * tools run at the provider and are named by their kind: web_search_call
 * is "web_search", code_interpreter_call "code_interpreter", computer_call
 * "computer_use", file_search_call "file_search", image_generation_call
 * "image_generation", local_shell_call "local_shell", mcp_call and
 * mcp_approval_request "mcp".  In a stream an item is named at
 * response.output_item.added, before any argument delta of it; the
 * openai-node ResponseStream pushes each added item at the end of its
 * output list and applies deltas to output[output_index], and its final
 * response is the one response.completed carries: so items start at the
 * next index, deltas go to an open item of their kind, and the final
 * response must hold exactly the calls the stream named (step() below).
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RI_MESSAGE = 1, RI_FUNCTION, RI_REASONING, RI_PROVIDER, RI_OTHER };

static const struct {
	const char *type, *tool;	/* tool NULL: named by its "name" */
	int kind;
} item_types[] = {
	{ "message", NULL, RI_MESSAGE },
	{ "function_call", NULL, RI_FUNCTION },
	{ "custom_tool_call", NULL, RI_FUNCTION },
	{ "reasoning", NULL, RI_REASONING },
	{ "web_search_call", "web_search", RI_PROVIDER },
	{ "code_interpreter_call", "code_interpreter", RI_PROVIDER },
	{ "computer_call", "computer_use", RI_PROVIDER },
	{ "file_search_call", "file_search", RI_PROVIDER },
	{ "image_generation_call", "image_generation", RI_PROVIDER },
	{ "local_shell_call", "local_shell", RI_PROVIDER },
	{ "mcp_call", "mcp", RI_PROVIDER },
	{ "mcp_approval_request", "mcp", RI_PROVIDER },
	{ "mcp_list_tools", NULL, RI_OTHER },
};

/* Keys that carry items or whole responses in a client's reading. */
static const char *
callish_key(json_t *obj)
{
	static const char *const keys[] = { "output", "item", "response",
		"tool_calls", "function_call", "choices", NULL };

	for (size_t i = 0; keys[i] != NULL; i++)
		if (json_object_get(obj, keys[i]) != NULL)
			return keys[i];
	return NULL;
}

static enum wd_err
read_parts(struct gw_answer *a, json_t *content, size_t pos, char *why,
    size_t whylen)
{
	static const char *const text_keys[] = { "type", "text", "annotations",
		"logprobs", NULL };
	static const char *const ref_keys[] = { "type", "refusal", NULL };
	json_t *p;
	size_t i;

	if (!json_is_array(content) || json_array_size(content) > 64)
		return gw_ans_bad(why, whylen, "output[%zu].content is not an array", pos);
	json_array_foreach(content, i, p) {
		const char *t;
		struct gw_ans_event e = { .kind = GW_ANS_TEXT, .call = pos };

		if (!json_is_object(p) || !gw_ans_opt_string(p, "type", &t) ||
		    t == NULL)
			return gw_ans_bad(why, whylen, "a content part without a type");
		if (strcmp(t, "output_text") == 0) {
			if (gw_ans_stray_key(p, text_keys) != NULL ||
			    !gw_ans_is_str(p, "text", true))
				return gw_ans_bad(why, whylen, "malformed output_text");
			e.text = json_string_value(json_object_get(p, "text"));
		} else if (strcmp(t, "refusal") == 0) {
			if (gw_ans_stray_key(p, ref_keys) != NULL ||
			    !gw_ans_is_str(p, "refusal", true))
				return gw_ans_bad(why, whylen, "malformed refusal");
			e.text = json_string_value(json_object_get(p, "refusal"));
		} else {
			return gw_ans_bad(why, whylen, "unknown content part '%.40s'", t);
		}
		if (gw_ans_add(a, &e) != WD_OK)
			return WD_ENOMEM;
	}
	return WD_OK;
}

/* One output item; calls add a CALL event (call = position). */
static enum wd_err
read_item(struct gw_answer *a, json_t *it, size_t pos, json_t *parent,
    int *kind, char *why, size_t whylen)
{
	static const char *const msg_keys[] = { "type", "id", "role", "status",
		"content", NULL };
	static const char *const fn_keys[] = { "type", "id", "call_id", "name",
		"arguments", "input", "status", NULL };
	struct gw_ans_event e = { .kind = GW_ANS_CALL, .call = pos, .node = it,
		.parent = parent };
	const char *t, *k;
	size_t i;

	if (!json_is_object(it) || !gw_ans_opt_string(it, "type", &t) ||
	    t == NULL)
		return gw_ans_bad(why, whylen, "output[%zu] has no type", pos);
	for (i = 0; i < sizeof(item_types) / sizeof(item_types[0]); i++)
		if (strcmp(t, item_types[i].type) == 0)
			break;
	if (i == sizeof(item_types) / sizeof(item_types[0]))
		return gw_ans_bad(why, whylen, "unknown output item type '%.40s'", t);
	*kind = item_types[i].kind;
	switch (*kind) {
	case RI_MESSAGE:
		if ((k = gw_ans_stray_key(it, msg_keys)) != NULL)
			return gw_ans_bad(why, whylen, "a message item has '%.40s'", k);
		if (!gw_ans_is_str(it, "role", true) || strcmp(json_string_value(
		    json_object_get(it, "role")), "assistant") != 0)
			return gw_ans_bad(why, whylen, "a message item not of the "
			    "assistant");
		return read_parts(a, json_object_get(it, "content"), pos, why,
		    whylen);
	case RI_FUNCTION: {
		bool custom = t[0] == 'c';

		if ((k = gw_ans_stray_key(it, fn_keys)) != NULL ||
		    json_object_get(it, custom ? "arguments" : "input") != NULL)
			return gw_ans_bad(why, whylen, "a %s item has a stray key", t);
		if (!gw_ans_is_str(it, "name", true) || !gw_ans_is_str(it, "call_id", false) ||
		    !gw_ans_is_str(it, "id", false) || !gw_ans_is_str(it, "status", false) ||
		    !gw_ans_is_str(it, custom ? "input" : "arguments", true))
			return gw_ans_bad(why, whylen, "a %s item needs a name and %s "
			    "strings", t, custom ? "input" : "arguments");
		e.name = json_string_value(json_object_get(it, "name"));
		if (*e.name == '\0' || strlen(e.name) > 64)
			return gw_ans_bad(why, whylen, "a %s item's name is empty or long",
			    t);
		return gw_ans_add(a, &e);
	}
	case RI_REASONING:
		if (callish_key(it) != NULL)
			return gw_ans_bad(why, whylen, "a reasoning item has '%s'",
			    callish_key(it));
		return WD_OK;
	case RI_PROVIDER:
		/* Their fields differ by tool and version; none holds a call
		 * the client runs, but the item itself is one. */
		if (callish_key(it) != NULL)
			return gw_ans_bad(why, whylen, "a %s item has '%s'", t,
			    callish_key(it));
		e.name = item_types[i].tool;
		return gw_ans_add(a, &e);
	default:
		if (callish_key(it) != NULL)
			return gw_ans_bad(why, whylen, "a %s item has '%s'", t,
			    callish_key(it));
		return WD_OK;
	}
}

/* A response object; in a stream's first events its output is empty. */
static enum wd_err
read_response(struct gw_answer *a, json_t *r, bool start, char *why,
    size_t whylen)
{
	json_t *out = json_object_get(r, "output"), *it, *u;
	const char *obj, *status;
	size_t i;
	enum wd_err rc;

	if (!json_is_object(r))
		return gw_ans_bad(why, whylen, "the response is not an object");
	if (!gw_ans_opt_string(r, "object", &obj) || obj == NULL ||
	    strcmp(obj, "response") != 0 || !gw_ans_is_str(r, "id", true))
		return gw_ans_bad(why, whylen, "not a response object");
	if (!gw_ans_opt_string(r, "status", &status))
		return gw_ans_bad(why, whylen, "status is not a string");
	/* The SDK computes output_text from output: given, it would be one
	 * more reading of the answer. */
	if (json_object_get(r, "output_text") != NULL ||
	    json_object_get(r, "choices") != NULL)
		return gw_ans_bad(why, whylen, "a response with output_text or choices");
	if (!json_is_array(out))
		return gw_ans_bad(why, whylen, "output is not an array");
	if (json_array_size(out) > GW_FMT_MAX_BLOCKS)
		return gw_ans_bad(why, whylen, "more than %d output items",
		    GW_FMT_MAX_BLOCKS);
	if (start && json_array_size(out) > 0)
		return gw_ans_bad(why, whylen, "a stream's first response has output");
	json_array_foreach(out, i, it) {
		int kind;

		if ((rc = read_item(a, it, i, out, &kind, why, whylen)) != WD_OK)
			return rc;
	}
	u = json_object_get(r, "usage");
	if (!gw_ans_absent(u)) {
		struct gw_ans_event e = { .kind = GW_ANS_USAGE, .node = u };

		if (!json_is_object(u))
			return gw_ans_bad(why, whylen, "usage is not an object");
		if ((rc = gw_ans_add(a, &e)) != WD_OK)
			return rc;
	}
	if (status != NULL && !start) {
		struct gw_ans_event e = { .kind = GW_ANS_FINISH, .text = status,
			.choice_obj = r };

		return gw_ans_add(a, &e);
	}
	return WD_OK;
}

static enum wd_err
rsp_read_answer(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_responses;
	if ((a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	if (!gw_ans_absent(json_object_get(a->root, "error")))
		return gw_ans_bad(why, whylen, "a successful answer carries 'error'");
	return read_response(a, a->root, false, why, whylen);
}

/* ---- one named event of a stream ---- */

/* Events about one output item (output_index), and what they carry. */
enum { EV_PLAIN, EV_TEXT_DELTA, EV_ARGS_DELTA, EV_ARGS_DONE, EV_PART };

static const struct {
	const char *type;
	int what;
	int kind;			/* of the item; 0: any */
} item_events[] = {
	{ "response.content_part.added", EV_PART, 0 },
	{ "response.content_part.done", EV_PART, 0 },
	{ "response.output_text.delta", EV_TEXT_DELTA, RI_MESSAGE },
	{ "response.output_text.done", EV_PLAIN, RI_MESSAGE },
	{ "response.output_text.annotation.added", EV_PLAIN, RI_MESSAGE },
	{ "response.refusal.delta", EV_TEXT_DELTA, RI_MESSAGE },
	{ "response.refusal.done", EV_PLAIN, RI_MESSAGE },
	{ "response.function_call_arguments.delta", EV_ARGS_DELTA, RI_FUNCTION },
	{ "response.function_call_arguments.done", EV_ARGS_DONE, RI_FUNCTION },
	{ "response.custom_tool_call_input.delta", EV_ARGS_DELTA, RI_FUNCTION },
	{ "response.custom_tool_call_input.done", EV_ARGS_DONE, RI_FUNCTION },
	{ "response.reasoning_summary_part.added", EV_PLAIN, RI_REASONING },
	{ "response.reasoning_summary_part.done", EV_PLAIN, RI_REASONING },
	{ "response.reasoning_summary_text.delta", EV_PLAIN, RI_REASONING },
	{ "response.reasoning_summary_text.done", EV_PLAIN, RI_REASONING },
	{ "response.reasoning_text.delta", EV_PLAIN, RI_REASONING },
	{ "response.reasoning_text.done", EV_PLAIN, RI_REASONING },
	{ "response.web_search_call.in_progress", EV_PLAIN, RI_PROVIDER },
	{ "response.web_search_call.searching", EV_PLAIN, RI_PROVIDER },
	{ "response.web_search_call.completed", EV_PLAIN, RI_PROVIDER },
	{ "response.file_search_call.in_progress", EV_PLAIN, RI_PROVIDER },
	{ "response.file_search_call.searching", EV_PLAIN, RI_PROVIDER },
	{ "response.file_search_call.completed", EV_PLAIN, RI_PROVIDER },
	{ "response.code_interpreter_call.in_progress", EV_PLAIN, RI_PROVIDER },
	{ "response.code_interpreter_call.interpreting", EV_PLAIN, RI_PROVIDER },
	{ "response.code_interpreter_call.completed", EV_PLAIN, RI_PROVIDER },
	{ "response.code_interpreter_call_code.delta", EV_PLAIN, RI_PROVIDER },
	{ "response.code_interpreter_call_code.done", EV_PLAIN, RI_PROVIDER },
	{ "response.image_generation_call.in_progress", EV_PLAIN, RI_PROVIDER },
	{ "response.image_generation_call.generating", EV_PLAIN, RI_PROVIDER },
	{ "response.image_generation_call.partial_image", EV_PLAIN,
	  RI_PROVIDER },
	{ "response.image_generation_call.completed", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_call.in_progress", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_call.completed", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_call.failed", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_call_arguments.delta", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_call_arguments.done", EV_PLAIN, RI_PROVIDER },
	{ "response.mcp_list_tools.in_progress", EV_PLAIN, RI_OTHER },
	{ "response.mcp_list_tools.completed", EV_PLAIN, RI_OTHER },
	{ "response.mcp_list_tools.failed", EV_PLAIN, RI_OTHER },
};

static int
item_event(const char *type)
{
	for (size_t i = 0; i < sizeof(item_events) / sizeof(item_events[0]); i++)
		if (strcmp(type, item_events[i].type) == 0)
			return (int)i;
	return -1;
}

static bool
is_response_event(const char *t, bool *start)
{
	*start = strcmp(t, "response.created") == 0 || strcmp(t,
	    "response.in_progress") == 0 || strcmp(t, "response.queued") == 0;
	return *start || strcmp(t, "response.completed") == 0 || strcmp(t,
	    "response.incomplete") == 0 || strcmp(t, "response.failed") == 0;
}

static enum wd_err
rsp_read_chunk(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	json_t *r;
	const char *t, *k;
	size_t idx, ci;
	bool start;
	int ie, kind;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_responses;
	a->chunk = true;
	if ((r = a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	if (!gw_ans_opt_string(r, "type", &a->type) || a->type == NULL)
		return gw_ans_bad(why, whylen, "an event without a type");
	t = a->type;
	if (strcmp(t, "error") == 0) {
		struct gw_ans_event e = { .kind = GW_ANS_ERROR, .node = r };

		gw_ans_opt_string(r, "message", &e.text);
		return gw_ans_add(a, &e);
	}
	/* The openai clients throw at any event whose "error" is set. */
	if (!gw_ans_absent(json_object_get(r, "error")))
		return gw_ans_bad(why, whylen, "%.60s carries 'error'", t);
	if (!json_is_integer(json_object_get(r, "sequence_number")) ||
	    json_integer_value(json_object_get(r, "sequence_number")) < 0)
		return gw_ans_bad(why, whylen, "%.60s has no sequence_number", t);
	if (is_response_event(t, &start)) {
		static const char *const keys[] = { "type", "sequence_number",
			"response", NULL };

		if (gw_ans_stray_key(r, keys) != NULL)
			return gw_ans_bad(why, whylen, "%.60s has other keys", t);
		return read_response(a, json_object_get(r, "response"), start,
		    why, whylen);
	}
	if (!gw_ans_index_ok(json_object_get(r, "output_index"),
	    GW_FMT_MAX_BLOCKS, &idx))
		return gw_ans_bad(why, whylen, "%.60s: output_index is not an integer "
		    "from 0 to %d", t, GW_FMT_MAX_BLOCKS - 1);
	if (strcmp(t, "response.output_item.added") == 0 ||
	    strcmp(t, "response.output_item.done") == 0) {
		static const char *const keys[] = { "type", "sequence_number",
			"output_index", "item", NULL };

		if (gw_ans_stray_key(r, keys) != NULL)
			return gw_ans_bad(why, whylen, "%.60s has other keys", t);
		return read_item(a, json_object_get(r, "item"), idx, r, &kind,
		    why, whylen);
	}
	if ((ie = item_event(t)) < 0)
		return gw_ans_bad(why, whylen, "unknown event type '%.60s'", t);
	if ((k = callish_key(r)) != NULL)
		return gw_ans_bad(why, whylen, "%.60s has '%s'", t, k);
	if (json_object_get(r, "content_index") != NULL &&
	    !gw_ans_index_ok(json_object_get(r, "content_index"), 64, &ci))
		return gw_ans_bad(why, whylen, "%.60s: a bad content_index", t);
	switch (item_events[ie].what) {
	case EV_TEXT_DELTA: {
		struct gw_ans_event e = { .kind = GW_ANS_TEXT, .call = idx };

		if (!gw_ans_opt_string(r, "delta", &e.text) || e.text == NULL)
			return gw_ans_bad(why, whylen, "%.60s without a delta string", t);
		return gw_ans_add(a, &e);
	}
	case EV_ARGS_DELTA: {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .call = idx,
			.node = r };

		if (!gw_ans_is_str(r, "delta", true))
			return gw_ans_bad(why, whylen, "%.60s without a delta string", t);
		return gw_ans_add(a, &e);
	}
	case EV_ARGS_DONE: {
		/* A name here repeats the item's: step() holds them equal. */
		struct gw_ans_event e = { .kind = GW_ANS_SEEN, .call = idx,
			.node = r };

		if (!gw_ans_opt_string(r, "name", &e.name))
			return gw_ans_bad(why, whylen, "%.60s: name is not a string", t);
		return e.name != NULL ? gw_ans_add(a, &e) : WD_OK;
	}
	case EV_PART: {
		json_t *p = json_object_get(r, "part");
		const char *pt = json_string_value(json_object_get(p, "type"));

		if (!json_is_object(p) || pt == NULL || (strcmp(pt,
		    "output_text") != 0 && strcmp(pt, "refusal") != 0 &&
		    strcmp(pt, "reasoning_text") != 0))
			return gw_ans_bad(why, whylen, "%.60s: a bad part", t);
		if (strcmp(pt, "reasoning_text") != 0) {
			/* The texts point into p, which root holds. */
			json_t *arr = json_pack("[O]", p);
			enum wd_err rc = read_parts(a, arr, idx, why, whylen);

			json_decref(arr);
			return rc;
		}
		return WD_OK;
	}
	default:
		return WD_OK;
	}
}

static int
kind_of(json_t *item)
{
	const char *t = json_string_value(json_object_get(item, "type"));

	for (size_t i = 0; t != NULL && i < sizeof(item_types) /
	    sizeof(item_types[0]); i++)
		if (strcmp(t, item_types[i].type) == 0)
			return item_types[i].kind;
	return 0;
}

/*
 * Calls of an item the stream started before (output_item.done, the
 * final response, an arguments-done name): the same tool at the same
 * position, or the answer is refused.  They become SEEN: checked once.
 */
static enum wd_err
match_seen(struct gw_fmt_stream *st, struct gw_answer *a, char *why,
    size_t whylen)
{
	for (size_t i = 0; i < a->nev; i++) {
		struct gw_ans_event *e = &a->ev[i];
		size_t p = e->call;

		if (e->kind != GW_ANS_CALL && e->kind != GW_ANS_SEEN)
			continue;
		if (e->name == NULL)
			continue;
		if (p >= st->nblocks || (st->kind[p] != RI_FUNCTION &&
		    st->kind[p] != RI_PROVIDER) || strcmp(st->name[p],
		    e->name) != 0)
			return gw_ans_bad(why, whylen, "output %zu names '%.64s', not the "
			    "call the stream started there", p, e->name);
		e->kind = GW_ANS_SEEN;
		e->call = st->callno[p];
	}
	return WD_OK;
}

static enum wd_err
rsp_step(struct gw_fmt_stream *st, struct gw_answer *a, char *why,
    size_t whylen)
{
	const char *t = a->type;
	json_t *seqv = json_object_get(a->root, "sequence_number");
	size_t idx = 0;
	bool start;
	int ie;

	if (strcmp(t, "error") == 0)
		return WD_OK;
	if (json_integer_value(seqv) <= st->seq && st->started)
		return gw_ans_bad(why, whylen, "sequence_number does not increase");
	st->seq = json_integer_value(seqv);
	if (!st->started) {
		const char *id;

		if (strcmp(t, "response.created") != 0)
			return gw_ans_bad(why, whylen, "the stream does not begin with "
			    "response.created");
		st->started = true;
		/* The id a follow-up's previous_response_id will name. */
		id = json_string_value(json_object_get(json_object_get(a->root,
		    "response"), "id"));
		snprintf(st->resp_id, sizeof(st->resp_id), "%s", id ? id : "");
		return WD_OK;
	}
	if (is_response_event(t, &start)) {
		json_t *out;

		if (strcmp(t, "response.created") == 0)
			return gw_ans_bad(why, whylen, "a second response.created");
		if (start)
			return WD_OK;
		/* The final response is what finalResponse() gives: the
		 * items the stream started, no others. */
		out = json_object_get(json_object_get(a->root, "response"),
		    "output");
		if (json_array_size(out) != st->nblocks)
			return gw_ans_bad(why, whylen, "the final response has %zu items, "
			    "the stream started %u", json_array_size(out),
			    st->nblocks);
		for (size_t i = 0; i < st->nblocks; i++)
			if (kind_of(json_array_get(out, i)) != st->kind[i])
				return gw_ans_bad(why, whylen, "the final output %zu is "
				    "not the item the stream started", i);
		st->ended = true;
		return match_seen(st, a, why, whylen);
	}
	gw_ans_index_ok(json_object_get(a->root, "output_index"),
	    GW_FMT_MAX_BLOCKS, &idx);
	if (strcmp(t, "response.output_item.added") == 0) {
		int kind = kind_of(json_object_get(a->root, "item"));

		return gw_ans_open_block(st, a, idx, (unsigned char)kind, "item",
		    why, whylen);
	}
	if (idx >= st->nblocks || !st->open[idx])
		return gw_ans_bad(why, whylen, "%.60s for item %zu, which is not open", t,
		    idx);
	if (strcmp(t, "response.output_item.done") == 0) {
		if (kind_of(json_object_get(a->root, "item")) != st->kind[idx])
			return gw_ans_bad(why, whylen, "item %zu is done as another kind",
			    idx);
		st->open[idx] = 0;
		return match_seen(st, a, why, whylen);
	}
	ie = item_event(t);
	if (ie >= 0 && item_events[ie].kind != 0 &&
	    item_events[ie].kind != st->kind[idx])
		return gw_ans_bad(why, whylen, "%.60s for an item of another kind", t);
	if (ie >= 0 && item_events[ie].what == EV_PART &&
	    st->kind[idx] != RI_MESSAGE && st->kind[idx] != RI_REASONING)
		return gw_ans_bad(why, whylen, "%.60s for an item without parts", t);
	for (size_t i = 0; i < a->nev; i++)
		if (a->ev[i].kind == GW_ANS_CALL && a->ev[i].name == NULL)
			a->ev[i].call = st->callno[idx];
	return match_seen(st, a, why, whylen);
}

/* ---- strip, write, errors ---- */

static void
rsp_drop_call(struct gw_answer *a, const struct gw_ans_event *ev)
{
	json_t *out = json_object_get(a->root, "output");

	for (size_t i = 0; i < json_array_size(out); i++)
		if (json_array_get(out, i) == ev->node) {
			json_array_remove(out, i);
			break;
		}
}

static json_t *
rsp_read_error(const char *buf, size_t len)
{
	return gw_format_chat.read_error(buf, len);
}

/* Responses' own error event: {"type":"error",code,message,param}. */
static void
rsp_error_event(struct evbuffer *out, const char *type, const char *code,
    const char *message)
{
	gw_ans_error_event(out, json_pack("{s:s,s:s,s:s,s:n}", "type", "error",
	    "code", code ? code : (type ? type : "error"), "message",
	    message ? message : "", "param"));
}

const struct gw_format gw_format_responses = {
	.name = "openai-responses",
	.path = "/responses",
	.read_request = gw_responses_read_request,
	.read_answer = rsp_read_answer,
	.read_chunk = rsp_read_chunk,
	.drop_call = rsp_drop_call,
	.write = gw_ans_write_named,
	.read_error = rsp_read_error,
	.done = "",
	.step = rsp_step,
	.error_body = gw_openai_error_body,
	.error_event = rsp_error_event,
	.auth_prefix = "Authorization: Bearer ",
	.api = POL_API_RESPONSES,
	.answer_text = gw_detect_text_responses,
};
