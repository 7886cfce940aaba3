/*
 * chat_answer.c - the strict reader of OpenAI Chat Completions answers
 * (DESIGN.md's format.read_answer for the chat format), for requests of
 * agents: a whole answer or one chunk of a stream becomes normalized
 * events (text, tool call, finish, usage, error), and anything that is
 * not a well-formed answer of that shape is refused.
 *
 * Why so strict: the client parses the bytes again (the openai SDKs,
 * JSON.parse, their stream accumulators), and every place where its
 * reading can differ from ours is a way around the tool policy.  So
 * jansson reads with JSON_REJECT_DUPLICATES and refuses what JavaScript
 * would read differently or not at all (integers past 2^63, \u0000, lone
 * surrogates, bad UTF-8); every place a call can hide in this format is
 * read (tool_calls, legacy function_call, custom tool calls); call and
 * choice indexes are plain JSON integers in range; keys the openai-node
 * accumulator would merge into a message (a chunk's "message") are
 * refused.  What the client then gets is write(): this file's own
 * serialization of the very object that was checked.
 *
 * Called by the transaction (txn_answer.c, agent_answer.c); tools.c consumes the events.  Later formats
 * (Responses, Anthropic) add a table like gw_format_chat beside it.
 */
#include "common/wd_json.h"
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum wd_err
gw_ans_bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return WD_EPARSE;
}

enum wd_err
gw_ans_open_block(struct gw_fmt_stream *st, struct gw_answer *a, size_t idx,
    unsigned char kind, const char *what, char *why, size_t whylen)
{
	if (idx != st->nblocks)
		return gw_ans_bad(why, whylen, "%s %zu starts where %s %u must",
		    what, idx, what, st->nblocks);
	st->kind[idx] = kind;
	st->open[idx] = 1;
	st->nblocks++;
	for (size_t i = 0; i < a->nev; i++)
		if (a->ev[i].kind == GW_ANS_CALL) {
			if (st->ncalls >= GW_ANS_MAX_CALLS)
				return gw_ans_bad(why, whylen, "too many calls");
			st->callno[idx] = (unsigned char)st->ncalls;
			snprintf(st->name[idx], sizeof(st->name[idx]), "%s",
			    a->ev[i].name);
			a->ev[i].call = st->ncalls++;
		}
	return WD_OK;
}

void
gw_ans_error_event(struct evbuffer *out, json_t *e)
{
	char *s = e != NULL ? json_dumps(e, JSON_COMPACT) : NULL;

	if (s != NULL)
		evbuffer_add_printf(out, "event: error\ndata: %s\n\n", s);
	free(s);
	json_decref(e);
}

static enum wd_err
add_event(struct gw_answer *a, const struct gw_ans_event *e)
{
	if (a->nev == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct gw_ans_event *n = realloc(a->ev, cap * sizeof(*n));

		if (n == NULL)
			return WD_ENOMEM;
		a->ev = n;
		a->cap = cap;
	}
	a->ev[a->nev++] = *e;
	return WD_OK;
}

void
gw_answer_clear(struct gw_answer *a)
{
	json_decref(a->root);
	free(a->ev);
	memset(a, 0, sizeof(*a));
}

/* Absent or JSON null: the openai clients treat both as "not given". */
bool
gw_ans_absent(json_t *v)
{
	return v == NULL || json_is_null(v);
}

/* A string member (need: present), or (not need) absent or null. */
bool
gw_ans_is_str(json_t *obj, const char *key, bool need)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) || (!need && gw_ans_absent(v));
}

/* A plain JSON integer in [0, max): not "1", not 1.0, not -1. */
static bool
index_ok(json_t *v, size_t max, size_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return false;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i >= max)
		return false;
	*out = (size_t)i;
	return true;
}

/* Every key of obj is one of keys (NULL-terminated); else its name. */
static const char *
stray_key(json_t *obj, const char *const *keys)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		size_t i;

		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return k;
	}
	return NULL;
}

/* Keys that carry calls (or a message full of them) in some client's
 * reading: where they do not belong, the answer is malformed. */
static const char *
misplaced_call_key(json_t *obj, const char *const *allowed)
{
	static const char *const callish[] = { "tool_calls", "function_call",
		"message", "delta", "function", NULL };

	for (size_t i = 0; callish[i] != NULL; i++) {
		bool ok = false;

		if (json_object_get(obj, callish[i]) == NULL)
			continue;
		for (size_t j = 0; allowed[j] != NULL; j++)
			ok |= strcmp(allowed[j], callish[i]) == 0;
		if (!ok)
			return callish[i];
	}
	return NULL;
}

/* A string field that may be absent: NULL then, else it must be a string. */
static bool
opt_string(json_t *obj, const char *key, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (gw_ans_absent(v))
		return true;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	return true;
}

static json_t *
load(const char *buf, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *root;

	/* One pass (json_scan.c); what it refuses, jansson explains. */
	root = gw_json_load(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		gw_ans_bad(why, whylen, "not strict JSON (%.80s at byte %d)", jerr.text,
		    jerr.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		gw_ans_bad(why, whylen, "not a JSON object");
		return NULL;
	}
	return root;
}

/* usage and a top level without stray call keys: common to both shapes. */
static enum wd_err
read_top(struct gw_answer *a, char *why, size_t whylen)
{
	static const char *const none[] = { NULL };
	json_t *usage = json_object_get(a->root, "usage");
	const char *k;

	if ((k = misplaced_call_key(a->root, none)) != NULL)
		return gw_ans_bad(why, whylen, "'%s' outside a choice", k);
	if (!json_is_array(json_object_get(a->root, "choices")))
		return gw_ans_bad(why, whylen, "no 'choices' array");
	if (json_array_size(json_object_get(a->root, "choices")) >
	    GW_ANS_MAX_CHOICES * 4)
		return gw_ans_bad(why, whylen, "too many choices");
	if (!gw_ans_absent(usage)) {
		struct gw_ans_event e = { .kind = GW_ANS_USAGE, .node = usage };

		if (!json_is_object(usage))
			return gw_ans_bad(why, whylen, "'usage' is not an object");
		return add_event(a, &e);
	}
	return WD_OK;
}

/*
 * One function or legacy function_call object: keys name and arguments
 * only; name a non-empty string (required when need_name), arguments a
 * string.
 */
static enum wd_err
read_function(json_t *fn, bool need_name, const char *where, const char **name,
    char *why, size_t whylen)
{
	static const char *const keys[] = { "name", "arguments", NULL };
	const char *args, *k;

	if (!json_is_object(fn))
		return gw_ans_bad(why, whylen, "%s is not an object", where);
	if ((k = stray_key(fn, keys)) != NULL)
		return gw_ans_bad(why, whylen, "%s has an unknown key '%.40s'", where, k);
	if (!opt_string(fn, "name", name) || (*name != NULL && **name == '\0'))
		return gw_ans_bad(why, whylen, "%s.name is not a non-empty string", where);
	if (need_name && *name == NULL)
		return gw_ans_bad(why, whylen, "%s has no name", where);
	if (!opt_string(fn, "arguments", &args))
		return gw_ans_bad(why, whylen, "%s.arguments is not a string", where);
	return WD_OK;
}

static enum wd_err
read_text(struct gw_answer *a, json_t *obj, size_t choice, json_t *ch,
    char *why, size_t whylen)
{
	static const char *const fields[] = { "content", "refusal", NULL };

	for (size_t i = 0; fields[i] != NULL; i++) {
		json_t *v = json_object_get(obj, fields[i]);
		struct gw_ans_event e = { .kind = GW_ANS_TEXT, .choice = choice,
			.choice_obj = ch };

		if (gw_ans_absent(v))
			continue;
		/* A whole answer's content may be an array of parts. */
		if (json_is_array(v) && !a->chunk && i == 0)
			continue;
		if (!json_is_string(v))
			return gw_ans_bad(why, whylen, "'%s' is not a string", fields[i]);
		e.text = json_string_value(v);
		if (add_event(a, &e) != WD_OK)
			return WD_ENOMEM;
	}
	return WD_OK;
}

static enum wd_err
read_finish(struct gw_answer *a, json_t *ch, size_t choice, char *why,
    size_t whylen)
{
	struct gw_ans_event e = { .kind = GW_ANS_FINISH, .choice = choice,
		.choice_obj = ch };

	if (!opt_string(ch, "finish_reason", &e.text))
		return gw_ans_bad(why, whylen, "finish_reason is not a string");
	return e.text != NULL ? add_event(a, &e) : WD_OK;
}

/* ---- a whole answer ---- */

static enum wd_err
read_message_calls(struct gw_answer *a, json_t *msg, size_t c, json_t *ch,
    char *why, size_t whylen)
{
	static const char *const call_keys[] = { "id", "type", "function",
		"custom", NULL };
	static const char *const custom_keys[] = { "name", "input", NULL };
	json_t *calls = json_object_get(msg, "tool_calls"), *call;
	json_t *fc = json_object_get(msg, "function_call");
	size_t j;
	enum wd_err rc;

	if (!gw_ans_absent(calls) && !json_is_array(calls))
		return gw_ans_bad(why, whylen, "choices[%zu].message.tool_calls is not an "
		    "array", c);
	if (json_array_size(calls) > GW_ANS_MAX_CALLS)
		return gw_ans_bad(why, whylen, "choices[%zu] has more than %d tool calls",
		    c, GW_ANS_MAX_CALLS);
	json_array_foreach(calls, j, call) {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .choice = c,
			.call = j, .node = call, .parent = calls, .choice_obj = ch };
		const char *type, *k, *id;
		json_t *fn, *custom;
		char where[64];

		snprintf(where, sizeof(where), "choices[%zu].tool_calls[%zu]", c, j);
		if (!json_is_object(call))
			return gw_ans_bad(why, whylen, "%s is not an object", where);
		if ((k = stray_key(call, call_keys)) != NULL)
			return gw_ans_bad(why, whylen, "%s has an unknown key '%.40s'",
			    where, k);
		if (!opt_string(call, "type", &type) || !opt_string(call, "id",
		    &id))
			return gw_ans_bad(why, whylen, "%s: type or id is not a string",
			    where);
		fn = json_object_get(call, "function");
		custom = json_object_get(call, "custom");
		if (!gw_ans_absent(fn) && !gw_ans_absent(custom))
			return gw_ans_bad(why, whylen, "%s is both a function and a custom "
			    "call", where);
		if (!gw_ans_absent(custom)) {
			if (type == NULL || strcmp(type, "custom") != 0)
				return gw_ans_bad(why, whylen, "%s: a custom call of type "
				    "'%.20s'", where, type ? type : "(none)");
			if (!json_is_object(custom) ||
			    (k = stray_key(custom, custom_keys)) != NULL ||
			    !opt_string(custom, "name", &e.name) || e.name == NULL ||
			    *e.name == '\0' || !opt_string(custom, "input", &k))
				return gw_ans_bad(why, whylen, "%s.custom is malformed", where);
		} else {
			if (type != NULL && strcmp(type, "function") != 0)
				return gw_ans_bad(why, whylen, "%s has type '%.20s'", where,
				    type);
			if ((rc = read_function(fn, true, where, &e.name, why,
			    whylen)) != WD_OK)
				return rc;
		}
		if ((rc = add_event(a, &e)) != WD_OK)
			return rc;
	}
	if (!gw_ans_absent(fc) && json_array_size(calls) > 0)
		return gw_ans_bad(why, whylen, "choices[%zu] has both function_call and "
		    "tool_calls", c);
	if (!gw_ans_absent(fc)) {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .choice = c,
			.call = GW_ANS_FN_CALL, .node = fc, .parent = msg,
			.choice_obj = ch };
		char where[64];

		snprintf(where, sizeof(where), "choices[%zu].message.function_call",
		    c);
		if ((rc = read_function(fc, true, where, &e.name, why,
		    whylen)) != WD_OK)
			return rc;
		if ((rc = add_event(a, &e)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

static enum wd_err
chat_read_answer(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	static const char *const choice_ok[] = { "message", NULL };
	static const char *const msg_ok[] = { "tool_calls", "function_call",
		NULL };
	json_t *choices, *ch;
	size_t i;
	enum wd_err rc;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_chat;
	if ((a->root = load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	if (!gw_ans_absent(json_object_get(a->root, "error")))
		return gw_ans_bad(why, whylen, "a successful answer carries 'error'");
	if ((rc = read_top(a, why, whylen)) != WD_OK)
		return rc;
	choices = json_object_get(a->root, "choices");
	if (json_array_size(choices) > GW_ANS_MAX_CHOICES)
		return gw_ans_bad(why, whylen, "more than %d choices", GW_ANS_MAX_CHOICES);
	json_array_foreach(choices, i, ch) {
		json_t *msg;
		const char *k;
		size_t idx;

		if (!json_is_object(ch))
			return gw_ans_bad(why, whylen, "choices[%zu] is not an object", i);
		/* The index is where the client puts the choice: it must be
		 * where it is. */
		if (!index_ok(json_object_get(ch, "index"), GW_ANS_MAX_CHOICES,
		    &idx) || idx != i)
			return gw_ans_bad(why, whylen, "choices[%zu].index is not %zu", i, i);
		if ((k = misplaced_call_key(ch, choice_ok)) != NULL)
			return gw_ans_bad(why, whylen, "choices[%zu] has '%s'", i, k);
		msg = json_object_get(ch, "message");
		if (!json_is_object(msg))
			return gw_ans_bad(why, whylen, "choices[%zu].message is not an object",
			    i);
		if ((k = misplaced_call_key(msg, msg_ok)) != NULL)
			return gw_ans_bad(why, whylen, "choices[%zu].message has '%s'", i, k);
		if ((rc = read_text(a, msg, i, ch, why, whylen)) != WD_OK ||
		    (rc = read_message_calls(a, msg, i, ch, why, whylen)) != WD_OK ||
		    (rc = read_finish(a, ch, i, why, whylen)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

/* ---- one chunk of a stream ---- */

static enum wd_err
read_delta_calls(struct gw_answer *a, json_t *delta, size_t c, json_t *ch,
    char *why, size_t whylen)
{
	static const char *const call_keys[] = { "index", "id", "type",
		"function", NULL };
	json_t *calls = json_object_get(delta, "tool_calls"), *call;
	json_t *fc = json_object_get(delta, "function_call");
	size_t j;
	enum wd_err rc;

	if (!gw_ans_absent(calls) && !json_is_array(calls))
		return gw_ans_bad(why, whylen, "delta.tool_calls is not an array");
	if (json_array_size(calls) > GW_ANS_MAX_CALLS)
		return gw_ans_bad(why, whylen, "too many tool call deltas");
	json_array_foreach(calls, j, call) {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .choice = c,
			.node = call, .parent = calls, .choice_obj = ch };
		const char *type, *id, *k;
		json_t *fn;

		if (!json_is_object(call))
			return gw_ans_bad(why, whylen, "a tool call delta is not an object");
		if ((k = stray_key(call, call_keys)) != NULL)
			return gw_ans_bad(why, whylen, "a tool call delta has an unknown key "
			    "'%.40s'", k);
		if (!index_ok(json_object_get(call, "index"), GW_ANS_MAX_CALLS,
		    &e.call))
			return gw_ans_bad(why, whylen, "a tool call delta's index is not an "
			    "integer from 0 to %d", GW_ANS_MAX_CALLS - 1);
		if (!opt_string(call, "type", &type) || !opt_string(call, "id", &id))
			return gw_ans_bad(why, whylen, "tool call %zu: type or id is not a "
			    "string", e.call);
		/* The openai-node accumulator knows no other type in a stream. */
		if (type != NULL && strcmp(type, "function") != 0)
			return gw_ans_bad(why, whylen, "tool call %zu has type '%.20s'",
			    e.call, type);
		fn = json_object_get(call, "function");
		if (!gw_ans_absent(fn) && (rc = read_function(fn, false, "a tool call "
		    "delta's function", &e.name, why, whylen)) != WD_OK)
			return rc;
		if ((rc = add_event(a, &e)) != WD_OK)
			return rc;
	}
	if (!gw_ans_absent(fc)) {
		struct gw_ans_event e = { .kind = GW_ANS_CALL, .choice = c,
			.call = GW_ANS_FN_CALL, .node = fc, .parent = delta,
			.choice_obj = ch };

		if ((rc = read_function(fc, false, "delta.function_call", &e.name,
		    why, whylen)) != WD_OK)
			return rc;
		if ((rc = add_event(a, &e)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

static enum wd_err
chat_read_chunk(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	static const char *const choice_ok[] = { "delta", NULL };
	static const char *const delta_ok[] = { "tool_calls", "function_call",
		NULL };
	json_t *choices, *ch, *err;
	size_t i;
	enum wd_err rc;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_chat;
	a->chunk = true;
	if ((a->root = load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	/* The openai clients throw on a chunk whose "error" is set. */
	err = json_object_get(a->root, "error");
	if (!gw_ans_absent(err)) {
		struct gw_ans_event e = { .kind = GW_ANS_ERROR, .node = err };

		if (!json_is_object(err))
			return gw_ans_bad(why, whylen, "'error' is not an object");
		opt_string(err, "message", &e.text);
		return add_event(a, &e);
	}
	if ((rc = read_top(a, why, whylen)) != WD_OK)
		return rc;
	choices = json_object_get(a->root, "choices");
	json_array_foreach(choices, i, ch) {
		json_t *delta;
		const char *k, *role;
		size_t c;

		if (!json_is_object(ch))
			return gw_ans_bad(why, whylen, "choices[%zu] is not an object", i);
		if (!index_ok(json_object_get(ch, "index"), GW_ANS_MAX_CHOICES, &c))
			return gw_ans_bad(why, whylen, "choices[%zu].index is not an integer "
			    "from 0 to %d", i, GW_ANS_MAX_CHOICES - 1);
		/* The accumulator assigns a choice's other keys onto its
		 * snapshot: a "message" there would replace the message. */
		if ((k = misplaced_call_key(ch, choice_ok)) != NULL)
			return gw_ans_bad(why, whylen, "a chunk's choice has '%s'", k);
		delta = json_object_get(ch, "delta");
		if (!json_is_object(delta))
			return gw_ans_bad(why, whylen, "choices[%zu].delta is not an object",
			    i);
		if ((k = misplaced_call_key(delta, delta_ok)) != NULL)
			return gw_ans_bad(why, whylen, "a delta has '%s'", k);
		if (!opt_string(delta, "role", &role))
			return gw_ans_bad(why, whylen, "delta.role is not a string");
		if ((rc = read_text(a, delta, c, ch, why, whylen)) != WD_OK ||
		    (rc = read_delta_calls(a, delta, c, ch, why, whylen)) != WD_OK ||
		    (rc = read_finish(a, ch, c, why, whylen)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

/* ---- strip, write, errors ---- */

static void
chat_drop_call(struct gw_answer *a, const struct gw_ans_event *ev)
{
	json_t *msg = json_object_get(ev->choice_obj, "message");
	json_t *calls = json_object_get(msg, "tool_calls");

	(void)a;
	if (ev->call == GW_ANS_FN_CALL) {
		json_object_del(msg, "function_call");
	} else {
		for (size_t j = 0; j < json_array_size(calls); j++)
			if (json_array_get(calls, j) == ev->node) {
				json_array_remove(calls, j);
				break;
			}
	}
	/* Nothing left to call: an ordinary, finished message. */
	if (json_array_size(json_object_get(msg, "tool_calls")) == 0 &&
	    gw_ans_absent(json_object_get(msg, "function_call"))) {
		json_object_del(msg, "tool_calls");
		json_object_del(msg, "function_call");
		if (gw_ans_absent(json_object_get(msg, "content")))
			json_object_set_new(msg, "content", json_string(""));
		json_object_set_new(ev->choice_obj, "finish_reason",
		    json_string("stop"));
	}
}

/*
 * Compact JSON of what was checked, as jansson would write it
 * (wd_json_put_value): no raw control characters and no line ends, so a
 * chunk is exactly one data line; and
 * duplicates were refused on reading, so JSON.parse (last key wins) and a
 * first-wins reader get the same object.
 */
enum wd_err
gw_ans_write_json(const json_t *root, const char *event, bool chunk,
    struct evbuffer *out)
{
	char small[4096];
	struct wd_jbuf b = { .p = small, .cap = sizeof(small) };
	size_t pre = 0;
	enum wd_err rc = WD_ENOMEM;

	/* On the stack while it fits (most answers, every usual event). */
	wd_json_put_value(&b, root, false);
	if (b.fail)
		goto out;
	if (chunk)
		pre = (event != NULL ? 8 + strlen(event) : 0) + 6;
	/* Room for all of it first: the adds below cannot fail half-way. */
	if (evbuffer_expand(out, pre + b.len + (chunk ? 2 : 0)) != 0)
		goto out;
	if (chunk && event != NULL) {
		evbuffer_add(out, "event: ", 7);
		evbuffer_add(out, event, strlen(event));
		evbuffer_add(out, "\n", 1);
	}
	if (chunk)
		evbuffer_add(out, "data: ", 6);
	evbuffer_add(out, b.p, b.len);
	if (chunk)
		evbuffer_add(out, "\n\n", 2);
	rc = WD_OK;
out:
	wd_jbuf_free(&b);
	return rc;
}

static enum wd_err
chat_write(const struct gw_answer *a, struct evbuffer *out)
{
	return gw_ans_write_json(a->root, NULL, a->chunk, out);
}

/* {"error":{message,type,param,code}}: the error object's known fields,
 * and nothing else of the body (no "choices" ride along). */
static json_t *
chat_read_error(const char *buf, size_t len)
{
	static const char *const keys[] = { "message", "type", "param", "code",
		NULL };
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *err = json_object_get(root, "error"), *out = NULL, *e;

	if (!json_is_object(root) || !json_is_object(err))
		goto out;
	e = json_object();
	for (size_t i = 0; keys[i] != NULL; i++) {
		json_t *v = json_object_get(err, keys[i]);

		if (json_is_string(v) || json_is_null(v) ||
		    (json_is_integer(v) && strcmp(keys[i], "code") == 0))
			json_object_set(e, keys[i], v);
	}
	if (!json_is_string(json_object_get(e, "message")))
		json_object_set_new(e, "message", json_string(""));
	out = json_pack("{s:o}", "error", e);
out:
	json_decref(root);
	return out;
}

json_t *
gw_openai_error_body(int status, const char *type, const char *code,
    const char *message)
{
	(void)status;
	return json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message",
	    message ? message : "", "type", type ? type : "server_error",
	    "param", "code", code ? code : "error");
}

static void
chat_error_event(struct evbuffer *out, const char *type, const char *code,
    const char *message)
{
	/* The transaction writes chat's own (txn_end.c); this is the
	 * table's, for callers holding only a format. */
	gw_ans_error_event(out, gw_openai_error_body(0, type, code, message));
}

const struct gw_format gw_format_chat = {
	.name = "chat",
	.read_request = gw_chat_parse,
	.path = "/chat/completions",
	.read_answer = chat_read_answer,
	.read_chunk = chat_read_chunk,
	.drop_call = chat_drop_call,
	.write = chat_write,
	.read_error = chat_read_error,
	.done = "data: [DONE]\n\n",
	.error_body = gw_openai_error_body,
	.error_event = chat_error_event,
	.auth_prefix = "Authorization: Bearer ",
	.api = POL_API_CHAT,
	.answer_text = gw_detect_text_chat,
};

/* ---- shared with the other formats' readers (fmt_*.c) ---- */

enum wd_err
gw_ans_add(struct gw_answer *a, const struct gw_ans_event *e)
{
	return add_event(a, e);
}

json_t *
gw_ans_load(const char *buf, size_t len, char *why, size_t whylen)
{
	return load(buf, len, why, whylen);
}

bool
gw_ans_index_ok(json_t *v, size_t max, size_t *out)
{
	return index_ok(v, max, out);
}

const char *
gw_ans_stray_key(json_t *obj, const char *const *keys)
{
	return stray_key(obj, keys);
}

bool
gw_ans_opt_string(json_t *obj, const char *key, const char **out)
{
	return opt_string(obj, key, out);
}
