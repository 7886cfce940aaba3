/*
 * fmt_requests.c - strict readers of requests in the Anthropic Messages,
 * OpenAI Responses and Embeddings formats: the facts the policy decides
 * on (model, stream, the previous response), and for agents the request's
 * tool-call history and offered tools in one normalized form, which is
 * the chat shape gateway/tools.c already judges (a "view"): assistant
 * messages with tool_calls, tool messages that answer them, function
 * tools.  What the tool policy strips from the view is stripped from the
 * request itself (gw_req_tools_apply), so what is checked is what is
 * sent.
 *
 * Provider-side tools (web search, code execution, computer use, remote
 * MCP servers) run at the provider, out of the client's sight: they are
 * tools by their names here (web_search, web_fetch, code_execution,
 * code_interpreter, computer_use, file_search, image_generation,
 * local_shell, mcp), and an agent's request that offers one its policy
 * does not list is refused, never stripped.
 */
#include "gateway/gw_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_REQ_MAX_ITEMS 4096		/* messages or input items */

static enum wd_err
bad(char *why, size_t whylen, const char **param, const char *p,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum wd_err
bad(char *why, size_t whylen, const char **param, const char *p,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	*param = p;
	return WD_EPARSE;
}

void
gw_req_clear(struct gw_req *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof(*r));
}

/* The tool name a format's tool entry goes by; *provider when it runs at
 * the provider.  NULL: not a tool entry this reader knows. */
static const char *
offered_name(unsigned api, json_t *t, bool *provider)
{
	const char *type = json_string_value(json_object_get(t, "type"));
	const char *name = json_string_value(json_object_get(t, "name"));
	static const struct {
		const char *prefix, *tool;
	} rsp[] = {
		{ "web_search", "web_search" }, { "file_search", "file_search" },
		{ "code_interpreter", "code_interpreter" },
		{ "computer", "computer_use" },
		{ "image_generation", "image_generation" },
		{ "local_shell", "local_shell" }, { "mcp", "mcp" },
	}, msg[] = {
		{ "web_search_", "web_search" }, { "web_fetch_", "web_fetch" },
		{ "code_execution_", "code_execution" },
	};

	*provider = false;
	if (!json_is_object(t))
		return NULL;
	if (api == POL_API_RESPONSES) {
		if (type == NULL)
			return NULL;
		if (strcmp(type, "function") == 0 || strcmp(type, "custom") == 0)
			return name;
		for (size_t i = 0; i < sizeof(rsp) / sizeof(rsp[0]); i++)
			if (strncmp(type, rsp[i].prefix, strlen(rsp[i].prefix)) == 0) {
				*provider = true;
				return rsp[i].tool;
			}
		return NULL;
	}
	/* Messages: client tools have no type (or "custom"); Anthropic's
	 * client-run tools (bash, computer, text editor) go by their name. */
	for (size_t i = 0; type != NULL && i < sizeof(msg) / sizeof(msg[0]); i++)
		if (strncmp(type, msg[i].prefix, strlen(msg[i].prefix)) == 0) {
			*provider = true;
			return msg[i].tool;
		}
	return name;
}

static enum wd_err
check_tools(struct gw_req *r, char *why, size_t whylen, const char **param)
{
	json_t *tools = json_object_get(r->root, "tools"), *t;
	size_t i;

	if (gw_ans_absent(tools))
		return WD_OK;
	if (!json_is_array(tools) || json_array_size(tools) > 256)
		return bad(why, whylen, param, "tools", "'tools' must be an array "
		    "of at most 256");
	json_array_foreach(tools, i, t) {
		bool provider;

		if (offered_name(r->api, t, &provider) == NULL)
			return bad(why, whylen, param, "tools", "tools[%zu] is not a "
			    "tool this format knows", i);
	}
	return WD_OK;
}

static enum wd_err
check_model_stream(struct gw_req *r, char *why, size_t whylen,
    const char **param)
{
	json_t *model = json_object_get(r->root, "model");
	json_t *stream = json_object_get(r->root, "stream");

	if (!json_is_string(model) || json_string_length(model) == 0 ||
	    json_string_length(model) > 256 ||
	    strlen(json_string_value(model)) != json_string_length(model))
		return bad(why, whylen, param, "model", "'model' is required and "
		    "must be a non-empty string");
	r->model = json_string_value(model);
	if (!gw_ans_absent(stream) && !json_is_boolean(stream))
		return bad(why, whylen, param, "stream", "'stream' must be a "
		    "boolean");
	r->stream = json_is_true(stream);
	return WD_OK;
}

static enum wd_err
parse_messages(struct gw_req *r, bool count, char *why, size_t whylen,
    const char **param)
{
	json_t *msgs = json_object_get(r->root, "messages"), *m;
	json_t *mt = json_object_get(r->root, "max_tokens");
	size_t i;

	if (!json_is_array(msgs) || json_array_size(msgs) == 0 ||
	    json_array_size(msgs) > GW_REQ_MAX_ITEMS)
		return bad(why, whylen, param, "messages", "'messages' must be a "
		    "non-empty array");
	if (!count && (!json_is_integer(mt) || json_integer_value(mt) < 1))
		return bad(why, whylen, param, "max_tokens", "'max_tokens' must be "
		    "a positive integer");
	if (count && json_object_get(r->root, "stream") != NULL)
		return bad(why, whylen, param, "stream", "count_tokens does not "
		    "stream");
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content"), *b;
		size_t j;

		if (role == NULL || (strcmp(role, "user") != 0 &&
		    strcmp(role, "assistant") != 0))
			return bad(why, whylen, param, "messages", "messages[%zu].role "
			    "must be 'user' or 'assistant'", i);
		if (json_is_string(c))
			continue;
		if (!json_is_array(c))
			return bad(why, whylen, param, "messages", "messages[%zu]."
			    "content must be a string or an array of blocks", i);
		json_array_foreach(c, j, b)
			if (!json_is_string(json_object_get(b, "type")))
				return bad(why, whylen, param, "messages", "messages"
				    "[%zu].content[%zu] has no type", i, j);
	}
	return WD_OK;
}

static enum wd_err
parse_responses(struct gw_req *r, char *why, size_t whylen,
    const char **param)
{
	json_t *in = json_object_get(r->root, "input"), *it;
	json_t *prev = json_object_get(r->root, "previous_response_id");
	size_t i;

	if (!gw_ans_absent(prev)) {
		if (!json_is_string(prev) || json_string_length(prev) == 0 ||
		    json_string_length(prev) > 128)
			return bad(why, whylen, param, "previous_response_id",
			    "'previous_response_id' must be a response id");
		r->previous_response_id = json_string_value(prev);
	}
	if (json_is_string(in))
		return WD_OK;
	if (!json_is_array(in) || json_array_size(in) > GW_REQ_MAX_ITEMS)
		return bad(why, whylen, param, "input", "'input' must be a string "
		    "or an array of items");
	json_array_foreach(in, i, it) {
		const char *type = json_string_value(json_object_get(it, "type"));
		const char *role = json_string_value(json_object_get(it, "role"));

		if (!json_is_object(it) || (type == NULL && role == NULL))
			return bad(why, whylen, param, "input", "input[%zu] has "
			    "neither a type nor a role", i);
	}
	return WD_OK;
}

static enum wd_err
parse_embeddings(struct gw_req *r, char *why, size_t whylen,
    const char **param)
{
	json_t *in = json_object_get(r->root, "input"), *x;
	size_t i;

	if (json_object_get(r->root, "stream") != NULL)
		return bad(why, whylen, param, "stream", "embeddings do not "
		    "stream");
	if (json_is_string(in))
		return WD_OK;
	if (!json_is_array(in) || json_array_size(in) == 0 ||
	    json_array_size(in) > 2048)
		return bad(why, whylen, param, "input", "'input' must be a string "
		    "or a non-empty array of at most 2048");
	json_array_foreach(in, i, x)
		if (!json_is_string(x) && !json_is_array(x))
			return bad(why, whylen, param, "input", "input[%zu] is "
			    "neither text nor tokens", i);
	return WD_OK;
}

enum wd_err
gw_req_parse(unsigned api, bool count_tokens, const char *body, size_t len,
    struct gw_req *out, char *why, size_t whylen, const char **param)
{
	json_error_t jerr;
	enum wd_err rc;

	memset(out, 0, sizeof(*out));
	out->api = api;
	*param = NULL;
	if (len == 0)
		return bad(why, whylen, param, NULL, "request body is empty");
	out->root = gw_json_load(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (out->root == NULL) {
		snprintf(why, whylen, "request body is not valid JSON: %s (at byte "
		    "%d)", jerr.text, jerr.position);
		return WD_EPARSE;
	}
	if (!json_is_object(out->root))
		return bad(why, whylen, param, NULL, "request body must be a JSON "
		    "object");
	if ((rc = check_model_stream(out, why, whylen, param)) != WD_OK)
		return rc;
	switch (api) {
	case POL_API_MESSAGES:
		rc = parse_messages(out, count_tokens, why, whylen, param);
		break;
	case POL_API_RESPONSES:
		rc = parse_responses(out, why, whylen, param);
		break;
	case POL_API_EMBEDDINGS:
		return parse_embeddings(out, why, whylen, param);
	default:
		return bad(why, whylen, param, NULL, "not a format of this reader");
	}
	if (rc != WD_OK)
		return rc;
	return check_tools(out, why, whylen, param);
}

/* ---- the tool view ---- */

static json_t *
view_call(const char *id, const char *name, json_t *args)
{
	char *a = json_is_string(args) ? strdup(json_string_value(args)) :
	    args != NULL ? json_dumps(args, JSON_COMPACT) : strdup("{}");
	json_t *c = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id ? id : "",
	    "type", "function", "function", "name", name, "arguments",
	    a ? a : "{}");

	free(a);
	return c;
}

static void
view_assistant(json_t *msgs, json_t *calls)
{
	json_array_append_new(msgs, json_pack("{s:s,s:n,s:o}", "role",
	    "assistant", "content", "tool_calls", calls));
}

static void
view_result(json_t *msgs, const char *id)
{
	json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role", "tool",
	    "tool_call_id", id ? id : "", "content", ""));
}

/* Messages: tool_use / server_tool_use / mcp_tool_use blocks of assistant
 * turns are calls; tool_result blocks of user turns answer them. */
static void
view_messages_history(json_t *root, json_t *msgs)
{
	json_t *m, *b;
	size_t i, j;

	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user",
	    "content", ""));
	json_array_foreach(json_object_get(root, "messages"), i, m) {
		json_t *calls = json_array();

		json_array_foreach(json_object_get(m, "content"), j, b) {
			const char *t = json_string_value(json_object_get(b, "type"));
			const char *id = json_string_value(json_object_get(b, "id"));

			if (t == NULL)
				continue;
			if (strcmp(t, "tool_use") == 0 || strcmp(t,
			    "server_tool_use") == 0)
				json_array_append_new(calls, view_call(id,
				    json_string_value(json_object_get(b, "name")) ?
				    json_string_value(json_object_get(b, "name")) :
				    "", json_object_get(b, "input")));
			else if (strcmp(t, "mcp_tool_use") == 0)
				json_array_append_new(calls, view_call(id, "mcp",
				    json_object_get(b, "input")));
			else if (strcmp(t, "tool_result") == 0)
				view_result(msgs, json_string_value(json_object_get(b,
				    "tool_use_id")));
		}
		if (json_array_size(calls) > 0)
			view_assistant(msgs, calls);
		else
			json_decref(calls);
	}
}

/* Responses: function_call / custom_tool_call items and provider-side
 * call items are calls; *_call_output items answer them by call_id. */
static void
view_responses_history(json_t *root, json_t *msgs)
{
	json_t *in = json_object_get(root, "input"), *it;
	size_t i;

	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user",
	    "content", ""));
	json_array_foreach(in, i, it) {
		const char *t = json_string_value(json_object_get(it, "type"));
		const char *cid = json_string_value(json_object_get(it, "call_id"));
		const char *id = cid ? cid : json_string_value(json_object_get(it,
		    "id"));
		size_t n;

		if (t == NULL)
			continue;
		n = strlen(t);
		if (strcmp(t, "function_call") == 0 || strcmp(t,
		    "custom_tool_call") == 0) {
			view_assistant(msgs, json_pack("[o]", view_call(id,
			    json_string_value(json_object_get(it, "name")) ?
			    json_string_value(json_object_get(it, "name")) : "",
			    json_object_get(it, "arguments"))));
		} else if (n > 7 && strcmp(t + n - 7, "_output") == 0) {
			view_result(msgs, id);
		} else if (n > 5 && strcmp(t + n - 5, "_call") == 0) {
			json_t *fake = json_pack("{s:s}", "type", t);
			char tool[40];
			bool provider;
			const char *name;

			/* web_search_call is the web_search tool, ... */
			snprintf(tool, sizeof(tool), "%.*s", (int)(n - 5), t);
			json_object_set_new(fake, "type", json_string(tool));
			name = offered_name(POL_API_RESPONSES, fake, &provider);
			view_assistant(msgs, json_pack("[o]", view_call(id, name ?
			    name : tool, NULL)));
			json_decref(fake);
		} else if (strcmp(t, "item_reference") == 0) {
			/* History kept at the provider: not visible here. */
			view_assistant(msgs, json_pack("[o]", view_call(id,
			    "item_reference", NULL)));
		}
	}
}

json_t *
gw_req_tools_view(const struct gw_req *r, const struct pol_agent *agent,
    char *refused, size_t rlen)
{
	json_t *view = json_object(), *msgs = json_array(), *tools = json_array();
	json_t *t, *choice;
	size_t i;

	refused[0] = '\0';
	json_object_set_new(view, "model", json_string(r->model));
	if (r->api == POL_API_MESSAGES)
		view_messages_history(r->root, msgs);
	else
		view_responses_history(r->root, msgs);
	json_object_set_new(view, "messages", msgs);
	json_array_foreach(json_object_get(r->root, "tools"), i, t) {
		bool provider;
		const char *name = offered_name(r->api, t, &provider);

		if (provider && agent != NULL && pol_tool_index(agent, name) < 0 &&
		    refused[0] == '\0')
			snprintf(refused, rlen, "%s", name);
		json_array_append_new(tools, json_pack("{s:s,s:{s:s}}", "type",
		    "function", "function", "name", name ? name : ""));
	}
	/* Messages' remote MCP servers are provider-side tools too. */
	if (r->api == POL_API_MESSAGES && json_array_size(json_object_get(r->root,
	    "mcp_servers")) > 0) {
		if (agent != NULL && pol_tool_index(agent, "mcp") < 0 &&
		    refused[0] == '\0')
			snprintf(refused, rlen, "mcp");
		json_array_append_new(tools, json_pack("{s:s,s:{s:s}}", "type",
		    "function", "function", "name", "mcp"));
	}
	if (json_array_size(tools) > 0)
		json_object_set_new(view, "tools", tools);
	else
		json_decref(tools);
	/* A forced tool: Messages {type: tool, name}, Responses {type:
	 * function, name}. */
	choice = json_object_get(r->root, "tool_choice");
	if (json_is_string(json_object_get(choice, "name")))
		json_object_set_new(view, "tool_choice", json_pack("{s:s,s:{s:O}}",
		    "type", "function", "function", "name", json_object_get(choice,
		    "name")));
	return view;
}

void
gw_req_tools_apply(struct gw_req *r, json_t *view)
{
	json_t *vt = json_object_get(view, "tools"), *tools, *t;
	size_t i;

	tools = json_object_get(r->root, "tools");
	if (!json_is_array(tools))
		return;
	if (vt == NULL) {
		/* Every offered tool went: no tools, no choice of one. */
		json_object_del(r->root, "tools");
		json_object_del(r->root, "tool_choice");
		json_object_del(r->root, "parallel_tool_calls");
		return;
	}
	for (i = 0; i < json_array_size(tools); ) {
		bool provider, kept = false;
		const char *name;
		size_t j;
		json_t *v;

		t = json_array_get(tools, i);
		name = offered_name(r->api, t, &provider);
		json_array_foreach(vt, j, v) {
			const char *vn = json_string_value(json_object_get(
			    json_object_get(v, "function"), "name"));

			kept |= name != NULL && vn != NULL && strcmp(vn, name) == 0;
		}
		if (kept)
			i++;
		else
			json_array_remove(tools, i);
	}
}

/* ---- format.read_request ---- */

static enum wd_err
read_as(unsigned api, bool count, const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param)
{
	struct gw_req r;
	enum wd_err rc = gw_req_parse(api, count, body, len, &r, why, whylen,
	    param);

	memset(out, 0, sizeof(*out));
	/* root moves to out either way: gw_chat_clear frees it. */
	out->root = r.root;
	out->model = r.model;
	out->stream = r.stream;
	out->api = api;
	out->previous_response_id = r.previous_response_id;
	return rc;
}

enum wd_err
gw_messages_read_request(const char *body, size_t len, struct gw_chat *out,
    char *why, size_t whylen, const char **param)
{
	return read_as(POL_API_MESSAGES, false, body, len, out, why, whylen,
	    param);
}

enum wd_err
gw_count_tokens_read_request(const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param)
{
	return read_as(POL_API_MESSAGES, true, body, len, out, why, whylen,
	    param);
}

enum wd_err
gw_responses_read_request(const char *body, size_t len, struct gw_chat *out,
    char *why, size_t whylen, const char **param)
{
	return read_as(POL_API_RESPONSES, false, body, len, out, why, whylen,
	    param);
}

enum wd_err
gw_embeddings_read_request(const char *body, size_t len, struct gw_chat *out,
    char *why, size_t whylen, const char **param)
{
	return read_as(POL_API_EMBEDDINGS, false, body, len, out, why, whylen,
	    param);
}

void
gw_req_of_chat(const struct gw_chat *c, struct gw_req *out)
{
	memset(out, 0, sizeof(*out));
	out->api = c->api;
	out->root = c->root;
	out->model = c->model;
	out->stream = c->stream;
	out->previous_response_id = c->previous_response_id;
}
