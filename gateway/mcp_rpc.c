/*
 * mcp_rpc.c - JSON-RPC 2.0 messages of MCP, read strictly: what cannot
 * be read exactly one way is refused, never passed on.
 */
#include "gateway/gw_int.h"
#include "gateway/mcp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum wd_err
bad(int *code, int c, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum wd_err
bad(int *code, int c, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	*code = c;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return WD_EPARSE;
}

/* A request id: a string or an integer (MCP: never null). */
static bool
id_ok(json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

enum wd_err
gw_rpc_read(const char *buf, size_t len, struct gw_rpc *out, int *code,
    char *why, size_t whylen)
{
	struct gw_json_count jc = { 0 };
	json_error_t je;
	json_t *root, *v;
	const char *k, *ver;
	enum wd_err rc;

	memset(out, 0, sizeof(*out));
	if (len > GW_MCP_MAX_BODY)
		return bad(code, GW_RPC_INVALID, why, whylen, "message of %zu bytes "
		    "(at most %u)", len, GW_MCP_MAX_BODY);
	if (gw_json_count_values(&jc, buf, len) > GW_MCP_MAX_VALUES)
		return bad(code, GW_RPC_INVALID, why, whylen, "more than %u JSON "
		    "values in one message", GW_MCP_MAX_VALUES);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return bad(code, GW_RPC_PARSE, why, whylen, "not JSON: %s (at %d)",
		    je.text, je.position);
	out->root = root;
	if (json_is_array(root)) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "JSON-RPC batches are "
		    "not accepted (MCP removed them in 2025-06-18)");
		goto fail;
	}
	if (!json_is_object(root)) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "a JSON-RPC message is "
		    "an object");
		goto fail;
	}
	json_object_foreach(root, k, v)
		if (strcmp(k, "jsonrpc") != 0 && strcmp(k, "id") != 0 &&
		    strcmp(k, "method") != 0 && strcmp(k, "params") != 0 &&
		    strcmp(k, "result") != 0 && strcmp(k, "error") != 0) {
			rc = bad(code, GW_RPC_INVALID, why, whylen, "unknown member "
			    "'%.64s'", k);
			goto fail;
		}
	ver = json_string_value(json_object_get(root, "jsonrpc"));
	if (ver == NULL || strcmp(ver, "2.0") != 0) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "'jsonrpc' must be "
		    "\"2.0\"");
		goto fail;
	}
	out->id = json_object_get(root, "id");
	if ((v = json_object_get(root, "method")) != NULL) {
		out->method = json_string_value(v);
		if (out->method == NULL || *out->method == '\0' ||
		    strlen(out->method) > GW_MCP_MAX_METHOD ||
		    strlen(out->method) != json_string_length(v)) {
			rc = bad(code, GW_RPC_INVALID, why, whylen, "'method' must be "
			    "a string of 1 to %d characters", GW_MCP_MAX_METHOD);
			goto fail;
		}
		if (json_object_get(root, "result") != NULL ||
		    json_object_get(root, "error") != NULL) {
			rc = bad(code, GW_RPC_INVALID, why, whylen, "a request has no "
			    "'result' or 'error'");
			goto fail;
		}
		out->params = json_object_get(root, "params");
		if (out->params != NULL && !json_is_object(out->params)) {
			rc = bad(code, GW_RPC_INVALID, why, whylen, "MCP 'params' is an "
			    "object");
			goto fail;
		}
		if (out->id != NULL && !id_ok(out->id)) {
			rc = bad(code, GW_RPC_INVALID, why, whylen, "'id' must be a "
			    "string or an integer");
			goto fail;
		}
		out->kind = out->id ? GW_RPC_REQUEST : GW_RPC_NOTIFICATION;
		return WD_OK;
	}
	out->kind = GW_RPC_RESPONSE;
	out->result = json_object_get(root, "result");
	out->error = json_object_get(root, "error");
	if (json_object_get(root, "params") != NULL ||
	    (out->result == NULL) == (out->error == NULL)) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "a response has exactly "
		    "one of 'result' and 'error', and no 'params'");
		goto fail;
	}
	if (out->result != NULL && !json_is_object(out->result)) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "MCP 'result' is an "
		    "object");
		goto fail;
	}
	if (out->error != NULL && (!json_is_object(out->error) ||
	    !json_is_integer(json_object_get(out->error, "code")) ||
	    !json_is_string(json_object_get(out->error, "message")))) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "'error' needs an "
		    "integer 'code' and a string 'message'");
		goto fail;
	}
	if (out->id == NULL || (!id_ok(out->id) &&
	    !(json_is_null(out->id) && out->error != NULL))) {
		rc = bad(code, GW_RPC_INVALID, why, whylen, "a response's 'id' is a "
		    "string or an integer");
		goto fail;
	}
	return WD_OK;
fail:
	gw_rpc_clear(out);
	return rc;
}

void
gw_rpc_clear(struct gw_rpc *m)
{
	json_decref(m->root);
	memset(m, 0, sizeof(*m));
}
