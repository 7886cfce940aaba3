/*
 * converse.c - Bedrock's Converse API spoken for an OpenAI chat client:
 *
 *   gw_converse_request  chat completions request -> Converse request
 *   gw_converse_answer   Converse answer -> chat completion
 *   gw_converse_feed     converse-stream (AWS event-stream frames,
 *                        eventstream.c) -> chat.completion.chunk SSE text
 *
 * The chunks this writes go through the same strict SSE reader and tool
 * policy as any OpenAI stream (txn_upstream.c feeds them to gw_sse_feed and
 * gw_tools_event): what the client gets is what was checked.  What cannot
 * be translated faithfully (content parts other than text, an event of a
 * type not known here, an exception frame, a frame over the limit) is an
 * error, never passed on or skipped.
 */
#include "gateway/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Text of an OpenAI message content: a string, or an array of text parts. */
static json_t *
text_blocks(json_t *content, const char **why)
{
	json_t *out = json_array(), *part;
	size_t i;

	if (json_is_string(content)) {
		json_array_append_new(out, json_pack("{s:O}", "text", content));
		return out;
	}
	if (json_is_null(content))
		return out;
	if (!json_is_array(content))
		goto bad;
	json_array_foreach(content, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));

		if (type == NULL || strcmp(type, "text") != 0 ||
		    !json_is_string(json_object_get(part, "text")))
			goto bad;
		json_array_append_new(out, json_pack("{s:O}", "text",
		    json_object_get(part, "text")));
	}
	return out;
bad:
	*why = "only text content can be sent to Bedrock Converse";
	json_decref(out);
	return NULL;
}

/* A tool call's arguments (a JSON text) as the object Converse wants. */
static json_t *
args_object(json_t *call, const char **why)
{
	const char *a = json_string_value(json_object_get(json_object_get(call,
	    "function"), "arguments"));
	json_t *o = a ? json_loads(a, 0, NULL) : NULL;

	if (!json_is_object(o)) {
		json_decref(o);
		*why = "a tool call's arguments are not a JSON object";
		return NULL;
	}
	return o;
}

static json_t *
convert_message(json_t *m, json_t *system, const char **why)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	json_t *content = json_object_get(m, "content"), *blocks, *c;
	size_t i;

	if (role == NULL)
		goto bad;
	if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
		if ((blocks = text_blocks(content, why)) == NULL)
			return NULL;
		json_array_extend(system, blocks);
		json_decref(blocks);
		return json_null();	/* nothing in messages */
	}
	if (strcmp(role, "tool") == 0) {
		const char *id = json_string_value(json_object_get(m,
		    "tool_call_id"));

		if (id == NULL || (blocks = text_blocks(content, why)) == NULL)
			goto bad;
		return json_pack("{s:s,s:[{s:{s:s,s:o}}]}", "role", "user",
		    "content", "toolResult", "toolUseId", id, "content", blocks);
	}
	if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)
		goto bad;
	if ((blocks = text_blocks(content, why)) == NULL)
		return NULL;
	json_array_foreach(json_object_get(m, "tool_calls"), i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *name = json_string_value(json_object_get(
		    json_object_get(c, "function"), "name"));
		json_t *input = args_object(c, why);

		if (input == NULL || id == NULL || name == NULL) {
			json_decref(input);
			json_decref(blocks);
			goto bad;
		}
		json_array_append_new(blocks, json_pack("{s:{s:s,s:s,s:o}}",
		    "toolUse", "toolUseId", id, "name", name, "input", input));
	}
	return json_pack("{s:s,s:o}", "role", role, "content", blocks);
bad:
	if (*why == NULL)
		*why = "a message cannot be expressed in Bedrock Converse";
	return NULL;
}

enum wd_err
gw_converse_request(const char *chat, size_t len, char **out, size_t *outlen,
    const char **why)
{
	json_t *req = json_loadb(chat, len, 0, NULL), *msgs = json_array();
	json_t *system = json_array(), *inf = json_object(), *m, *v, *conv = NULL;
	size_t i;
	enum wd_err rc = WD_EINVAL;

	*why = NULL;
	*out = NULL;
	if (!json_is_array(json_object_get(req, "messages")))
		goto out;
	json_array_foreach(json_object_get(req, "messages"), i, m) {
		json_t *c = convert_message(m, system, why);

		if (c == NULL)
			goto out;
		if (!json_is_null(c))
			json_array_append_new(msgs, c);
	}
	if ((v = json_object_get(req, "max_completion_tokens")) != NULL ||
	    (v = json_object_get(req, "max_tokens")) != NULL)
		json_object_set(inf, "maxTokens", v);
	if ((v = json_object_get(req, "temperature")) != NULL)
		json_object_set(inf, "temperature", v);
	if ((v = json_object_get(req, "top_p")) != NULL)
		json_object_set(inf, "topP", v);
	if (json_is_string(v = json_object_get(req, "stop")))
		json_object_set_new(inf, "stopSequences", json_pack("[O]", v));
	else if (json_is_array(v))
		json_object_set(inf, "stopSequences", v);
	conv = json_pack("{s:O}", "messages", msgs);
	if (json_array_size(system) > 0)
		json_object_set(conv, "system", system);
	if (json_object_size(inf) > 0)
		json_object_set(conv, "inferenceConfig", inf);
	if (json_array_size(json_object_get(req, "tools")) > 0) {
		json_t *tools = json_array(), *t;

		json_array_foreach(json_object_get(req, "tools"), i, t) {
			json_t *f = json_object_get(t, "function");
			json_t *params = json_object_get(f, "parameters");

			if (!json_is_string(json_object_get(f, "name"))) {
				json_decref(tools);
				*why = "a tool without a name";
				goto out;
			}
			json_array_append_new(tools, json_pack("{s:{s:O,s:s,s:{s:O}}}",
			    "toolSpec", "name", json_object_get(f, "name"),
			    "description", json_string_value(json_object_get(f,
			    "description")) ? json_string_value(json_object_get(f,
			    "description")) : "", "inputSchema", "json", params ?
			    params : json_pack("{s:s}", "type", "object")));
		}
		json_object_set_new(conv, "toolConfig", json_pack("{s:o}", "tools",
		    tools));
	}
	*out = json_dumps(conv, JSON_COMPACT);
	if (*out == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	*outlen = strlen(*out);
	rc = WD_OK;
out:
	if (rc != WD_OK && *why == NULL)
		*why = "the request cannot be expressed in Bedrock Converse";
	json_decref(conv);
	json_decref(inf);
	json_decref(system);
	json_decref(msgs);
	json_decref(req);
	return rc;
}

static const char *
finish_reason(const char *stop)
{
	if (stop == NULL)
		return NULL;
	if (strcmp(stop, "tool_use") == 0)
		return "tool_calls";
	if (strcmp(stop, "max_tokens") == 0)
		return "length";
	if (strcmp(stop, "content_filtered") == 0 ||
	    strcmp(stop, "guardrail_intervened") == 0)
		return "content_filter";
	return "stop";
}

static json_t *
usage_json(json_t *u)
{
	if (!json_is_object(u))
		return json_null();
	return json_pack("{s:O?,s:O?,s:O?}", "prompt_tokens", json_object_get(u,
	    "inputTokens"), "completion_tokens", json_object_get(u,
	    "outputTokens"), "total_tokens", json_object_get(u, "totalTokens"));
}

enum wd_err
gw_converse_answer(const char *body, size_t len, const char *model,
    const char *id, char **out, size_t *outlen)
{
	json_t *a = json_loadb(body, len, 0, NULL), *blocks, *b, *msg, *calls;
	size_t i;
	char *text = NULL;
	size_t tlen = 0;
	enum wd_err rc = WD_EPARSE;
	json_t *res = NULL;

	*out = NULL;
	blocks = json_object_get(json_object_get(json_object_get(a, "output"),
	    "message"), "content");
	if (!json_is_array(blocks))
		goto out;
	calls = json_array();
	json_array_foreach(blocks, i, b) {
		json_t *t = json_object_get(b, "text"), *tu = json_object_get(b,
		    "toolUse");

		if (json_is_string(t)) {
			size_t n = json_string_length(t);
			char *nt = realloc(text, tlen + n + 1);

			if (nt == NULL)
				break;
			text = nt;
			memcpy(text + tlen, json_string_value(t), n);
			tlen += n;
			text[tlen] = '\0';
		} else if (json_is_object(tu)) {
			char *args = json_dumps(json_object_get(tu, "input"),
			    JSON_COMPACT | JSON_ENCODE_ANY);

			if (args == NULL || !json_is_string(json_object_get(tu, "name")) ||
			    !json_is_string(json_object_get(tu, "toolUseId"))) {
				free(args);
				json_decref(calls);
				goto out;
			}
			json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:s}}",
			    "id", json_object_get(tu, "toolUseId"), "type", "function",
			    "function", "name", json_object_get(tu, "name"),
			    "arguments", args));
			free(args);
		} else {
			json_decref(calls);	/* unknown block: not passed on */
			goto out;
		}
	}
	msg = json_pack("{s:s,s:s?}", "role", "assistant", "content", text);
	if (json_array_size(calls) > 0)
		json_object_set(msg, "tool_calls", calls);
	json_decref(calls);
	res = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s?}],s:o}", "id", id,
	    "object", "chat.completion", "created", (json_int_t)time(NULL),
	    "model", model, "choices", "index", 0, "message", msg,
	    "finish_reason", finish_reason(json_string_value(json_object_get(a,
	    "stopReason"))), "usage", usage_json(json_object_get(a, "usage")));
	if (res == NULL || (*out = json_dumps(res, JSON_COMPACT)) == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	*outlen = strlen(*out);
	rc = WD_OK;
out:
	free(text);
	json_decref(res);
	json_decref(a);
	return rc;
}

/* ---- the stream ---- */

void
gw_converse_stream_init(struct gw_converse_stream *s, const char *model,
    const char *id)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->model, sizeof(s->model), "%s", model);
	snprintf(s->id, sizeof(s->id), "%s", id);
	for (size_t i = 0; i < GW_CONVERSE_MAX_BLOCKS; i++)
		s->tool_of_block[i] = -1;
}

void
gw_converse_stream_clear(struct gw_converse_stream *s)
{
	free(s->pending);
	s->pending = NULL;
	s->npending = 0;
}

/* Append n bytes of text to the growing output. */
static bool
append(char **outp, size_t *outlen, size_t *outcap, const char *text,
    size_t n)
{
	size_t need = *outlen + n + 1;

	if (need > *outcap) {
		char *p = realloc(*outp, need * 2);

		if (p == NULL)
			return false;
		*outp = p;
		*outcap = need * 2;
	}
	memcpy(*outp + *outlen, text, n);
	*outlen += n;
	return true;
}

/* One chunk with delta (or, with usage, no choices) as an SSE event. */
static bool
emit(struct gw_converse_stream *s, json_t *delta, const char *finish,
    json_t *usage, char **outp, size_t *outlen, size_t *outcap)
{
	json_t *c = json_pack("{s:s,s:s,s:i,s:s}", "id", s->id, "object",
	    "chat.completion.chunk", "created", 0, "model", s->model);
	char *text;
	bool ok;

	if (usage != NULL) {
		json_object_set_new(c, "choices", json_array());
		json_object_set_new(c, "usage", usage);
	} else
		json_object_set_new(c, "choices", json_pack("[{s:i,s:o,s:s?}]",
		    "index", 0, "delta", delta, "finish_reason", finish));
	text = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	if (text == NULL)
		return false;
	ok = append(outp, outlen, outcap, "data: ", 6) &&
	    append(outp, outlen, outcap, text, strlen(text)) &&
	    append(outp, outlen, outcap, "\n\n", 2);
	free(text);
	return ok;
}

static enum wd_err
event(struct gw_converse_stream *s, const struct gw_es_message *m, char **out,
    size_t *outlen, size_t *outcap)
{
	size_t tl, ml;
	const char *type = gw_es_header_str(m, ":event-type", &tl);
	const char *mtype = gw_es_header_str(m, ":message-type", &ml);
	json_t *p;
	enum wd_err rc = WD_EPARSE;
	bool ok = true;
	long blk;

	if (mtype == NULL || ml != 5 || memcmp(mtype, "event", 5) != 0 ||
	    type == NULL)
		return WD_EUPSTREAM;	/* an exception frame, or no type */
	p = json_loadb(m->payload, m->payload_len, 0, NULL);
	if (!json_is_object(p))
		goto out;
	blk = (long)json_integer_value(json_object_get(p, "contentBlockIndex"));
	if (blk < 0 || blk >= GW_CONVERSE_MAX_BLOCKS)
		goto out;
#define IS(name) (tl == sizeof(name) - 1 && memcmp(type, name, tl) == 0)
	if (IS("messageStart"))
		ok = emit(s, json_pack("{s:s,s:s}", "role", "assistant", "content",
		    ""), NULL, NULL, out, outlen, outcap);
	else if (IS("contentBlockStart")) {
		json_t *tu = json_object_get(json_object_get(p, "start"),
		    "toolUse");

		if (json_is_object(tu)) {
			if (!json_is_string(json_object_get(tu, "name")) ||
			    !json_is_string(json_object_get(tu, "toolUseId")) ||
			    s->tool_of_block[blk] != -1)
				goto out;
			s->tool_of_block[blk] = s->ntools++;
			ok = emit(s, json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}",
			    "tool_calls", "index", s->tool_of_block[blk], "id",
			    json_object_get(tu, "toolUseId"), "type", "function",
			    "function", "name", json_object_get(tu, "name"),
			    "arguments", ""), NULL, NULL, out, outlen, outcap);
		}
	} else if (IS("contentBlockDelta")) {
		json_t *d = json_object_get(p, "delta"), *t, *tu;

		if (json_is_string(t = json_object_get(d, "text")))
			ok = emit(s, json_pack("{s:O}", "content", t), NULL, NULL,
			    out, outlen, outcap);
		else if (json_is_object(tu = json_object_get(d, "toolUse")) &&
		    json_is_string(json_object_get(tu, "input")) &&
		    s->tool_of_block[blk] >= 0)
			ok = emit(s, json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls",
			    "index", s->tool_of_block[blk], "function", "arguments",
			    json_object_get(tu, "input")), NULL, NULL, out, outlen,
			    outcap);
		else
			goto out;	/* a delta of a kind not known here */
	} else if (IS("contentBlockStop")) {
		/* nothing to say */
	} else if (IS("messageStop"))
		ok = emit(s, json_object(), finish_reason(json_string_value(
		    json_object_get(p, "stopReason"))), NULL, out, outlen,
		    outcap);
	else if (IS("metadata")) {
		ok = emit(s, NULL, NULL, usage_json(json_object_get(p, "usage")),
		    out, outlen, outcap);
		/* metadata is the stream's last event */
		if (ok)
			ok = append(out, outlen, outcap, "data: [DONE]\n\n", 14);
		s->done = true;
	} else
		goto out;		/* unknown event: not skipped silently */
#undef IS
	rc = ok ? WD_OK : WD_ENOMEM;
out:
	json_decref(p);
	return rc;
}

enum wd_err
gw_converse_feed(struct gw_converse_stream *s, const char *data, size_t len,
    char **out, size_t *outlen)
{
	size_t cap = 0, off = 0;
	enum wd_err rc = WD_OK;

	*out = NULL;
	*outlen = 0;
	if (s->npending + len > GW_ES_MAX_MESSAGE + 16)
		return WD_ELIMIT;
	if (len > 0) {
		char *p = realloc(s->pending, s->npending + len);

		if (p == NULL)
			return WD_ENOMEM;
		s->pending = p;
		memcpy(s->pending + s->npending, data, len);
		s->npending += len;
	}
	while (off < s->npending) {
		struct gw_es_message m;
		bool complete;

		if (s->done) {
			rc = WD_EPARSE;	/* nothing may follow the last event */
			break;
		}
		rc = gw_es_decode(s->pending + off, s->npending - off, &m,
		    &complete);
		if (rc != WD_OK || !complete)
			break;
		if ((rc = event(s, &m, out, outlen, &cap)) != WD_OK)
			break;
		off += m.frame_len;
	}
	memmove(s->pending, s->pending + off, s->npending - off);
	s->npending -= off;
	if (rc != WD_OK) {
		free(*out);
		*out = NULL;
		*outlen = 0;
	}
	return rc;
}
