/*
 * routes.c - which handler a request goes to, and the small endpoints:
 * /v1/models, /healthz, /metrics.  /v1/chat/completions is a transaction
 * (txn.c).  gw_warden_handler is what the HTTP layer is given.
 */
#include "gateway/gw_int.h"
#include "audit/aud.h"
#include "gateway/mcp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

/* Answer with j (a reference we own) as compact JSON, and count it. */
static void
respond_json(struct gw_conn *c, int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (text == NULL) {
		gw_reply_error(c, WD_CODE_INTERNAL, NULL, 0, "out of memory");
		return;
	}
	gw_metrics_request("", status);
	gw_respond(c, status, "application/json", NULL, 0, text, strlen(text));
	free(text);
}

static void
models(struct gw_conn *c, struct gw_http_req *req)
{
	struct pol_snapshot *snap = gw_server_snapshot(gw_conn_worker(c)->srv);
	const struct pol_tenant *t;
	json_t *list, *data, *seen;

	t = gw_auth_request(snap, req, NULL);
	if (t == NULL) {
		pol_snapshot_unref(snap);
		gw_metrics_request("", 401);
		gw_reply_error(c, WD_CODE_INVALID_API_KEY, NULL, 0, NULL);
		return;
	}
	data = json_array();
	seen = json_object();
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct pol_provider *p = t->routes[i];

		for (size_t m = 0; m < p->nmodels; m++) {
			if (json_object_get(seen, p->models[m]) != NULL)
				continue;
			json_object_set_new(seen, p->models[m], json_true());
			json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}",
			    "id", p->models[m], "object", "model", "created", 0,
			    "owned_by", p->id));
		}
	}
	/* Anthropic callers (x-api-key, anthropic-version) get their list. */
	if (gw_http_header(req, "x-api-key") != NULL ||
	    gw_http_header(req, "anthropic-version") != NULL) {
		const char *ids[256];
		size_t n = 0, k;
		json_t *m;

		json_array_foreach(data, k, m)
			if (n < 256)
				ids[n++] = json_string_value(json_object_get(m, "id"));
		list = gw_models_anthropic(ids, n);
		json_decref(data);
	} else {
		list = json_pack("{s:s, s:o}", "object", "list", "data", data);
	}
	respond_json(c, 200, list);
	json_decref(seen);
	pol_snapshot_unref(snap);
}

static void
healthz(struct gw_conn *c)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	struct aud_log *audit = gw_conn_worker(c)->srv->audit;
	json_t *j;
	char *text;

	if (audit == NULL || aud_healthy(audit)) {
		gw_respond(c, 200, "application/json", NULL, 0, ok, sizeof(ok) - 1);
		return;
	}
	/* Unhealthy while decisions cannot be recorded: take us out. */
	j = json_pack("{s:s,s:s}", "status", "unhealthy", "audit",
	    aud_last_error(audit));
	text = json_dumps(j, JSON_COMPACT);
	gw_respond(c, 503, "application/json", NULL, 0, text, strlen(text));
	free(text);
	json_decref(j);
}

/*
 * /metrics names every route and its traffic: loopback callers, or a
 * bearer key whose digest is in server.metrics_keys.  Digests compare in
 * constant time, as tenant keys do.
 */
static bool
metrics_allowed(struct gw_conn *c, struct gw_http_req *req, int *status)
{
	struct pol_snapshot *snap;
	const char *a = gw_http_header(req, "authorization");
	unsigned char d[32];
	bool ok = false;

	if (gw_conn_is_loopback(c))
		return true;
	*status = 401;
	if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
		return false;
	for (a += 7; *a == ' '; a++)
		;
	if (*a == '\0' || strlen(a) > 512)
		return false;
	*status = 403;
	wd_sha256(a, strlen(a), d);
	snap = gw_server_snapshot(gw_conn_worker(c)->srv);
	for (size_t i = 0; i < snap->server.nmetrics_keys; i++)
		ok |= CRYPTO_memcmp(d, snap->server.metrics_keys[i], 32) == 0;
	pol_snapshot_unref(snap);
	wd_wipe(d, sizeof(d));
	return ok;
}

static void
metrics(struct gw_conn *c, struct gw_http_req *req)
{
	struct evbuffer *out;
	int status;

	if (!metrics_allowed(c, req, &status)) {
		gw_metrics_request("", status);
		gw_reply_error(c, status == 401 ? WD_CODE_METRICS_KEY_REQUIRED :
		    WD_CODE_METRICS_FORBIDDEN, NULL, 0, NULL);
		return;
	}
	out = evbuffer_new();
	if (out == NULL) {
		gw_reply_error(c, WD_CODE_INTERNAL, NULL, 0, "out of memory");
		return;
	}
	gw_metrics_render(out);
	gw_respond(c, 200, "text/plain; version=0.0.4", NULL, 0,
	    evbuffer_pullup(out, -1), evbuffer_get_length(out));
	evbuffer_free(out);
}

/*
 * POST /admin/reload: reload the rules now; loopback callers only.  The
 * answer says the new policy_version, or every error in the file.
 */
static void
admin_reload(struct gw_conn *c)
{
	struct gw_server *srv = gw_conn_worker(c)->srv;
	struct pol_snapshot *snap;
	char *errs = NULL;
	size_t len = 0;
	FILE *f;

	if (!gw_conn_is_loopback(c)) {
		gw_metrics_request("", 403);
		gw_reply_error(c, WD_CODE_ADMIN_LOOPBACK_ONLY, NULL, 0, NULL);
		return;
	}
	f = open_memstream(&errs, &len);
	if (f == NULL) {
		gw_reply_error(c, WD_CODE_INTERNAL, NULL, 0, "out of memory");
		return;
	}
	if (gw_server_reload(srv, f) != WD_OK) {
		fclose(f);
		gw_metrics_request("", 422);
		gw_reply_error(c, WD_CODE_RELOAD_FAILED, NULL, 0, "%s", errs && *errs ? errs : "reload failed");
		free(errs);
		return;
	}
	fclose(f);
	free(errs);
	snap = gw_server_snapshot(srv);
	respond_json(c, 200, json_pack("{s:s,s:s}", "status", "reloaded",
	    "policy_version", snap->version));
	pol_snapshot_unref(snap);
}

static const struct {
	const char *path;
	enum gw_method method;
	const char *allow;
} table[] = {
	{ "/v1/chat/completions", GW_M_POST, "POST" },
	{ "/v1/models", GW_M_GET, "GET, HEAD" },
	{ "/healthz", GW_M_GET, "GET, HEAD" },
	{ "/metrics", GW_M_GET, "GET, HEAD" },
	{ "/admin/reload", GW_M_POST, "POST" },
	{ "/v1/messages", GW_M_POST, "POST" },
	{ "/v1/messages/count_tokens", GW_M_POST, "POST" },
	{ "/v1/responses", GW_M_POST, "POST" },
	{ "/v1/embeddings", GW_M_POST, "POST" },
};

/* The formats of table[5...], in its order. */
static const struct gw_format *const formats[] = { &gw_format_messages,
	&gw_format_count_tokens, &gw_format_responses, &gw_format_embeddings };

static void
dispatch(struct gw_conn *c, struct gw_http_req *req, struct evbuffer *body)
{
	size_t i, n = sizeof(table) / sizeof(table[0]);
	enum gw_method m = req->method;

	/* MCP servers (issue 15): one path per server, its own methods. */
	if (strncmp(req->path, "/mcp/", 5) == 0) {
		gw_mcp(c, req, body);
		return;
	}
	for (i = 0; i < n; i++)
		if (strcmp(req->path, table[i].path) == 0)
			break;
	if (i == n) {
		evbuffer_free(body);
		gw_metrics_request("", 404);
		gw_reply_error(c, WD_CODE_UNKNOWN_URL, NULL, 0, "unknown path: %.200s", req->path);
		return;
	}
	if (m == GW_M_HEAD && table[i].method == GW_M_GET)
		m = GW_M_GET;		/* answered without a body */
	if (m != table[i].method) {
		struct gw_out_hdr allow = { "Allow", table[i].allow };

		evbuffer_free(body);
		gw_metrics_request("", 405);
		gw_reply_error(c, WD_CODE_METHOD_NOT_ALLOWED, &allow, 1,
		    "method %s is not allowed on %s",
		    req->method_name, table[i].path);
		return;
	}
	switch (i) {
	case 0:
		gw_txn_start(c, req, body, &gw_format_chat);
		return;
	case 1:
		evbuffer_free(body);
		models(c, req);
		return;
	case 2:
		evbuffer_free(body);
		healthz(c);
		return;
	case 3:
		evbuffer_free(body);
		metrics(c, req);
		return;
	case 4:
		evbuffer_free(body);
		admin_reload(c);
		return;
	default:
		gw_txn_start(c, req, body, formats[i - 5]);
		return;
	}
}

/* The snapshot is taken once per request head, never per read event. */
static enum gw_admit_rc
head(struct gw_conn *c, const struct gw_http_req *req, struct gw_admit *a,
    struct gw_admit_deny *deny)
{
	struct gw_worker *w = gw_conn_worker(c);

	return gw_admit_head(w, gw_worker_snapshot(w), req,
	    gw_conn_keymemo(c), a, deny);
}

/* Refused before the body was read, or for its JSON values: a request
 * that may succeed later says when (Retry-After: 1). */
static void
refuse(struct gw_conn *c, const struct gw_admit_deny *d)
{
	static const struct gw_out_hdr retry = { "Retry-After", "1" };
	int status = wd_errdef(d->code)->status;

	gw_metrics_request("", status);
	gw_reply_error(c, d->code, &retry, status == 413 ? 0 : 1,
	    d->message != NULL ? "%s" : NULL, d->message);
}

static void
malformed(struct gw_conn *c, int status, const char *why)
{
	gw_metrics_request("", status);
	gw_reply_http_error(c, status, why);
}

const struct gw_http_handler gw_warden_handler = {
	.head = head,
	.body = gw_admit_body,
	.done = gw_admit_done,
	.dispatch = dispatch,
	.refuse = refuse,
	.malformed = malformed,
	.turn_end = gw_txn_flush_ended,
};
