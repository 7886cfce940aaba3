/*
 * openai.c - the OpenAI wire format as warden needs it: error bodies,
 * validation of chat completion requests, and the caller's key.
 *
 * Request bodies are untrusted: jansson parses them with duplicate keys
 * rejected (two "model" keys could smuggle a different model past the
 * policy), invalid UTF-8 and NUL escapes refused, and nesting bounded by
 * jansson's own depth limit.
 */
#include "gateway/gw_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void
error_json(struct evbuffer *out, const char *type, const char *code,
    const char *param, const char *message)
{
	json_t *o;
	char *text;

	o = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message,
	    "type", type, "param", param, "code", code);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text != NULL)
		evbuffer_add(out, text, strlen(text));
	else
		evbuffer_add_printf(out, "{\"error\":{\"message\":\"internal error\","
		    "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
	free(text);
	json_decref(o);
}

/* The wire's code: a family's member by name, else the catalogue's. */
static const char *
wire_code(enum wd_code code, const char *name)
{
	return name != NULL && wd_errdef(code)->family ? name :
	    wd_code_wire(code);
}

void
gw_error_json_named(struct evbuffer *out, enum wd_code code,
    const char *name, const char *message)
{
	const struct wd_errdef *e = wd_errdef(code);

	error_json(out, e->type, wire_code(code, name), NULL,
	    message != NULL ? message : e->message);
}

void
gw_error_json(struct evbuffer *out, enum wd_code code, const char *message)
{
	gw_error_json_named(out, code, NULL, message);
}

/* status 0: the catalogue's. */
static void
send_error(struct gw_conn *c, int status, const struct gw_out_hdr *extra,
    size_t nextra, enum wd_code code, const char *name, const char *param,
    const char *fmt, va_list ap)
{
	const struct wd_errdef *e = wd_errdef(code);
	struct evbuffer *buf = evbuffer_new();
	struct gw_out_hdr hdr[4];
	size_t nhdr = 0;
	char msg[512];

	if (status == 0)
		status = e->status;
	if (fmt != NULL)
		vsnprintf(msg, sizeof(msg), fmt, ap);
	else
		snprintf(msg, sizeof(msg), "%s", e->message);
	if (buf == NULL) {
		gw_respond(c, 500, "application/json", NULL, 0, "{}", 2);
		return;
	}
	error_json(buf, e->type, wire_code(code, name), param, msg);
	if (status == 401)
		hdr[nhdr++] = (struct gw_out_hdr){ "WWW-Authenticate", "Bearer" };
	for (size_t i = 0; i < nextra && nhdr < 4; i++)
		hdr[nhdr++] = extra[i];
	gw_respond(c, status, "application/json", hdr, nhdr,
	    evbuffer_pullup(buf, -1), evbuffer_get_length(buf));
	evbuffer_free(buf);
}

void
gw_reply_error(struct gw_conn *c, enum wd_code code,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(c, 0, hdrs, nhdrs, code, NULL, NULL, fmt, ap);
	va_end(ap);
}

void
gw_reply_error_named(struct gw_conn *c, enum wd_code code, const char *name,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(c, 0, hdrs, nhdrs, code, name, NULL, fmt, ap);
	va_end(ap);
}

static void
send_status(struct gw_conn *c, int status, enum wd_code code,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(c, status, NULL, 0, code, NULL, NULL, fmt, ap);
	va_end(ap);
}

void
gw_reply_http_error(struct gw_conn *c, int status, const char *why)
{
	send_status(c, status, WD_CODE_HTTP, "%s", why);
}

void
gw_send_invalid(struct gw_conn *c, const char *param, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(c, 0, NULL, 0, WD_CODE_INVALID_REQUEST, NULL, param, fmt, ap);
	va_end(ap);
}

void
gw_chat_clear(struct gw_chat *chat)
{
	json_decref(chat->root);
	memset(chat, 0, sizeof(*chat));
}

static enum wd_err
bad(char *why, size_t whylen, const char **param, const char *p,
    const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	*param = p;
	return WD_EPARSE;
}

json_t *
gw_chat_tree(struct gw_chat *chat)
{
	json_error_t jerr;

	/* gw_json_scan_chat took the body: the same bytes build. */
	if (chat->root == NULL && chat->text != NULL)
		chat->root = gw_json_load(chat->text, chat->text_len,
		    JSON_REJECT_DUPLICATES, &jerr);
	return chat->root;
}

enum wd_err
gw_chat_parse(const char *body, size_t len, struct gw_chat *out, char *why,
    size_t whylen, const char **param)
{
	struct gw_chat_facts f;
	json_error_t jerr;
	json_t *root, *model, *msgs, *stream, *m, *tools;
	size_t i;

	memset(out, 0, sizeof(*out));
	*param = NULL;
	if (len == 0)
		return bad(why, whylen, param, NULL, "request body is empty");
	/* The common request: its facts without a tree; the tree comes
	 * when a policy reads more (gw_chat_tree). */
	if (gw_json_scan_chat(body, len, &f)) {
		memcpy(out->model_buf, f.model, f.model_len);
		out->model_buf[f.model_len] = '\0';
		out->model = out->model_buf;
		out->stream = f.stream;
		out->text = body;
		out->text_len = len;
		out->max_tokens = f.max_completion_tokens >= 0 ?
		    f.max_completion_tokens : f.max_tokens;
		if (out->max_tokens > (1LL << 40))
			out->max_tokens = 1LL << 40;
		return WD_OK;
	}
	root = gw_json_load(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(why, whylen, "request body is not valid JSON: %s "
		    "(at byte %d)", jerr.text, jerr.position);
		return WD_EPARSE;
	}
	out->root = root;
	if (!json_is_object(root))
		return bad(why, whylen, param, NULL,
		    "request body must be a JSON object");
	model = json_object_get(root, "model");
	if (!json_is_string(model) || json_string_length(model) == 0)
		return bad(why, whylen, param, "model",
		    "'model' is required and must be a non-empty string");
	if (json_string_length(model) > 256 ||
	    strlen(json_string_value(model)) != json_string_length(model))
		return bad(why, whylen, param, "model", "'model' is not a valid name");
	out->model = json_string_value(model);
	msgs = json_object_get(root, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return bad(why, whylen, param, "messages",
		    "'messages' is required and must be a non-empty array");
	json_array_foreach(msgs, i, m) {
		json_t *role = json_object_get(m, "role");

		if (!json_is_object(m) || !json_is_string(role)) {
			snprintf(why, whylen, "'messages[%zu]' must be an object "
			    "with a string 'role'", i);
			*param = "messages";
			return WD_EPARSE;
		}
	}
	stream = json_object_get(root, "stream");
	if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream))
		return bad(why, whylen, param, "stream", "'stream' must be a boolean");
	out->stream = json_is_true(stream);
	tools = json_object_get(root, "tools");
	if (tools != NULL && !json_is_array(tools) && !json_is_null(tools))
		return bad(why, whylen, param, "tools", "'tools' must be an array");
	return WD_OK;
}

const struct pol_tenant *
gw_auth(const struct pol_snapshot *snap, const char *authorization,
    struct pol_caller *caller)
{
	unsigned char digest[32];
	const struct pol_tenant *t;

	if (caller != NULL)
		memset(caller, 0, sizeof(*caller));
	if (!gw_auth_bearer_digest(authorization, digest))
		return NULL;
	t = gw_auth_digest(snap, digest, caller);
	wd_wipe(digest, sizeof(digest));
	return t;
}
