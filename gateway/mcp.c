/*
 * mcp.c - /mcp/SERVER: MCP's Streamable HTTP transport, proxied to the
 * servers the rules declare, with the agents' tool rules enforced where
 * the tools run (issue 15).
 *
 * One POST is one transaction (struct mcp_txn): authenticate the virtual
 * key, find the agent (its own key, or X-Warden-Agent) and its session
 * (X-Warden-Session: the same session as its chat traffic; Mcp-Session-Id
 * is the server's and passes through), read the message strictly, check
 * the 2026-07-28 routing headers against it, decide, and forward with
 * the server's own credential (never the client's key).  Answers come
 * back as one JSON message or an SSE stream; every message in them is
 * read strictly and checked on its way to the client (mcp_answer.c).
 *
 * A GET is the server's standalone stream (2025-11-25): forwarded and
 * checked event by event like a POST's stream, its notifications pass,
 * its requests are gated as above (each refusal one `mcp_stream`
 * record), and a response on it (which only a resumed stream may carry,
 * and warden does not resume: Last-Event-ID is not passed on) is dropped.
 *
 * A tools/call is decided BEFORE it reaches the server, on the session's
 * record (chat and MCP calls in order), and committed to the session
 * when it is forwarded: the labels of its tool are in the session from
 * then on, for later chat and MCP calls alike.  Each tools/call leaves
 * one audit record (kind mcp_call), each tools/list one (mcp_list: the
 * tools it hid and why, the definitions it pinned or set pending), any
 * other request one (mcp_request: its method and what it named), a
 * notification or a response the client sends one (mcp_message).  What
 * any message carries to the server is read by the content detectors
 * first (scan_sent).
 */
#include "gateway/mcp_int.h"
#include "gateway/store.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the policy ---- */

/*
 * The classes content detection found in the arguments go where the
 * tool's sink is: a flow rule keeping them from that sink refuses the
 * call, whatever the session read before (detections add, never remove).
 */
static bool
detected_flows_ok(const struct mcp_txn *t, const char **rule, char *msg,
    size_t msglen)
{
	int idx = pol_tool_index(t->agent, t->agent_tool);
	const struct pol_tool *tool;

	if (t->det_classes == 0 || idx < 0)
		return true;
	tool = &t->agent->tools[idx];
	for (size_t f = 0; f < t->agent->nflows; f++) {
		const struct pol_flow *fl = &t->agent->flows[f];

		if (tool->sink == fl->to_sink && (t->det_classes &
		    fl->from_labels)) {
			*rule = fl->id;
			snprintf(msg, msglen, "flow rule '%s': the arguments of '%s' "
			    "carry data the rule keeps from a %s sink (found by "
			    "content detection)", fl->id, tool->name,
			    pol_sink_name(tool->sink));
			return false;
		}
	}
	return true;
}

/*
 * tools/call: may the agent make it, now, in this session?  Allowed
 * calls are committed (limits window, session record) before they are
 * forwarded.  False with *rule and msg when refused.
 */
static bool
decide_call(struct mcp_txn *t, const char **rule, char *msg, size_t msglen)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct pol_tool_why why = { "undeclared_tool", "" };
	struct pol_tstate st;
	char **names = NULL, entry[80];
	const char *e = entry;
	size_t n = 0, asked = 0, ran = 0;
	bool run, counted = false;
	struct gw_sess_ref r = {
		.tenant = t->agent->tenant->id, .agent = t->agent->id,
		.session = t->session, .max = t->agent->max_sessions,
		.ttl_s = t->agent->session_ttl_s,
	};

	t->agent_tool = pol_mcp_agent_tool(t->m, t->tool);
	if (t->agent_tool == NULL || pol_tool_index(t->agent,
	    t->agent_tool) < 0) {
		*rule = "undeclared_tool";
		snprintf(msg, msglen, "server '%s' tool '%.64s' is not a tool of "
		    "agent '%s'", t->m->id, t->tool, t->agent->id);
		return false;
	}
	/* The definition the client saw must be the pinned one; tools/call
	 * has none, so the server's last tools/list answer stands for it:
	 * a tool whose definition is pending approval is refused. */
	switch (gw_pin_status(t->pins, t->m->id, t->tool)) {
	case GW_PIN_OK:
		break;
	case GW_PIN_CHANGED:
		*rule = "mcp_pin";
		snprintf(msg, msglen, "server '%s' changed the definition of tool "
		    "'%.64s'; refused until an operator runs 'warden mcp approve "
		    "%s %.64s'", t->m->id, t->tool, t->m->id, t->tool);
		return false;
	case GW_PIN_UNSEEN:
		*rule = "mcp_pin";
		snprintf(msg, msglen, "tool '%.64s' of server '%s' was never listed "
		    "(tools/list pins its definition first)", t->tool, t->m->id);
		return false;
	default:
		*rule = "mcp_pins";
		snprintf(msg, msglen, "the tool pin file cannot be read");
		return false;
	}
	if (!detected_flows_ok(t, rule, msg, msglen))
		return false;
	memset(&tl, 0, sizeof(tl));
	tl.agent = t->agent;
	tl.key = t->key;
	/* Read the record, decide, append where it was read; if another
	 * request of the session got in between, decide again on the new
	 * record (the call is counted in the key's window once). */
	for (int tries = 0; tries < 8; tries++) {
		enum gw_store_rc src;

		pol_tstate_init(&st);
		n = asked = ran = 0;
		if (t->session[0] != '\0') {
			if (gw_tools_session_state(t->agent, t->session, &st, &names,
			    &n, &d) != GW_TOOLS_OK) {
				*rule = d.code;
				snprintf(msg, msglen, "%s", d.message);
				return false;
			}
			/* A call the model asked for in chat and the agent now
			 * runs here is that call, not another. */
			for (size_t i = 0; i < n; i++) {
				if (strcmp(names[i], t->agent_tool) == 0)
					asked++;
				else if (strncmp(names[i], GW_SESSION_RUN, 4) == 0 &&
				    strcmp(names[i] + 4, t->agent_tool) == 0)
					ran++;
			}
			free(names);
		}
		run = asked > ran;
		if (!run && !pol_tool_step(t->agent, &st, t->agent_tool, true,
		    &why)) {
			*rule = why.rule;
			snprintf(msg, msglen, "%s", why.message);
			return false;
		}
		if (!run && !counted) {
			if (!gw_tools_commit_call(&tl, 0, t->agent_tool, &why)) {
				*rule = why.rule;
				snprintf(msg, msglen, "%s", why.message);
				return false;
			}
			counted = true;
		}
		if (t->session[0] == '\0')
			return true;
		snprintf(entry, sizeof(entry), "%s%s", run ? GW_SESSION_RUN :
		    GW_SESSION_MCP, t->agent_tool);
		src = gw_store()->session_append_at(&r, n, &e, 1);
		if (src == GW_STORE_OK)
			return true;
		if (src != GW_STORE_CONTRADICTS)
			break;
	}
	*rule = "session";
	snprintf(msg, msglen, "session '%s' cannot record the call", t->session);
	return false;
}

/* ---- the transaction ---- */

static bool
add_hdr(struct mcp_txn *t, const char *name, const char *value)
{
	char *h;

	if (value == NULL)
		return true;
	if (t->nhdrs >= sizeof(t->hdrs) / sizeof(t->hdrs[0]) ||
	    asprintf(&h, "%s: %s", name, value) < 0)
		return false;
	t->hdrs[t->nhdrs++] = h;
	return true;
}

/* Header values the client sends on: printable ASCII, at most max. */
static bool
hdr_sane(const char *v, size_t max)
{
	size_t n = 0;

	if (v == NULL)
		return true;
	for (; *v != '\0'; v++, n++)
		if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e ||
		    n >= max)
			return false;
	return true;
}

/*
 * The client's Mcp-Session-Id: the server's id and the tag only this
 * caller gets for it (mcp_session_tag).  True, with the server's id in
 * fwd_sid, when it is this caller's; a session another caller opened,
 * or one that was never opened through warden, is nobody's here.
 */
static bool
session_open(struct mcp_txn *t, const char *csid)
{
	const char *dot = strrchr(csid, '.');
	char want[MCP_SID_TAG + 1];
	size_t len;

	if (dot == NULL || strlen(dot + 1) != MCP_SID_TAG)
		return false;
	len = (size_t)(dot - csid);
	if (!mcp_session_tag(t, csid, len, want) ||
	    !wd_ct_equal(want, dot + 1, MCP_SID_TAG))
		return false;
	memcpy(t->fwd_sid, csid, len);
	t->fwd_sid[len] = '\0';
	return true;
}

/* 2026-07-28: Mcp-Method and Mcp-Name must say what the body says. */
static bool
headers_match(const struct gw_http_req *req, const struct gw_rpc *m,
    bool stateless, char *why, size_t whylen)
{
	const char *hm = gw_http_header(req, "mcp-method");
	const char *hn = gw_http_header(req, "mcp-name");
	const char *name = NULL;

	if (m->method != NULL) {
		name = json_string_value(json_object_get(m->params, "name"));
		if (strcmp(m->method, "resources/read") == 0 ||
		    strcmp(m->method, "resources/subscribe") == 0 ||
		    strcmp(m->method, "resources/unsubscribe") == 0)
			name = json_string_value(json_object_get(m->params, "uri"));
		else if (strcmp(m->method, "tools/call") != 0 &&
		    strcmp(m->method, "prompts/get") != 0)
			name = NULL;
	}
	if (stateless && m->method != NULL && hm == NULL) {
		snprintf(why, whylen, "MCP 2026-07-28 requires an Mcp-Method "
		    "header");
		return false;
	}
	if (hm != NULL && (m->method == NULL || strcmp(hm, m->method) != 0)) {
		snprintf(why, whylen, "Mcp-Method '%.64s' does not match the "
		    "body's method '%.64s'", hm, m->method ? m->method : "");
		return false;
	}
	if (stateless && name != NULL && hn == NULL) {
		snprintf(why, whylen, "MCP 2026-07-28 requires an Mcp-Name header "
		    "for %s", m->method);
		return false;
	}
	if (hn != NULL && (name == NULL || strcmp(hn, name) != 0)) {
		snprintf(why, whylen, "Mcp-Name '%.64s' does not match the body's "
		    "'%.64s'", hn, name ? name : "");
		return false;
	}
	return true;
}

static bool
origin_allowed(const struct pol_mcp_server *m, const char *origin)
{
	if (origin == NULL)
		return true;		/* not a browser */
	for (size_t i = 0; i < m->norigins; i++)
		if (strcmp(m->origins[i], origin) == 0)
			return true;
	return false;
}

/* To the server: method NULL (POST), "DELETE" or "GET" (its own stream:
 * no body, and no Last-Event-ID, see the top). */
static void
forward(struct mcp_txn *t, struct gw_conn *c, const struct gw_http_req *req,
    const char *method)
{
	const unsigned char *cred;
	size_t clen;
	struct gw_up_req up;
	struct gw_conn_hooks hooks = { mcp_client_gone, NULL, t };
	char *auth = NULL;

	if (!add_hdr(t, "Content-Type", t->standalone ? NULL :
	    "application/json") ||
	    !add_hdr(t, "Accept", t->standalone ? "text/event-stream" :
	    "application/json, text/event-stream") ||
	    !add_hdr(t, "MCP-Protocol-Version",
	    gw_http_header(req, "mcp-protocol-version")) ||
	    !add_hdr(t, "Mcp-Session-Id", t->fwd_sid[0] ? t->fwd_sid : NULL) ||
	    !add_hdr(t, "Mcp-Method", gw_http_header(req, "mcp-method")) ||
	    !add_hdr(t, "Mcp-Name", gw_http_header(req, "mcp-name")))
		goto nomem;
	/* The server's own credential, from the TPM; never the client's. */
	if (t->m->credential != NULL) {
		cred = gw_creds_get(t->creds, t->snap, t->m->credential, &clen);
		if (cred == NULL) {
			t->status = 503;
			mcp_record_answer(t, "the MCP server's credential is not "
			    "available");
			mcp_rpc_error(c, 503, t->msg.id, GW_RPC_INVALID,
			    "credential_unavailable", "the credential of MCP server "
			    "'%s' is not available", t->m->id);
			mcp_txn_free(t);
			return;
		}
		if (asprintf(&auth, "Authorization: Bearer %.*s", (int)clen,
		    (const char *)cred) < 0)
			goto nomem;
		t->hdrs[t->nhdrs++] = auth;
	}
	t->acc = evbuffer_new();
	if (t->acc == NULL)
		goto nomem;
	gw_sse_init(&t->sse_st);
	memset(&up, 0, sizeof(up));
	up.url = t->m->url;
	up.headers = (const char *const *)t->hdrs;
	up.nheaders = t->nhdrs;
	up.proxy = t->snap->upstream.proxy;
	up.curl_only = t->snap->upstream.curl_only;
	up.body = t->out_body ? t->out_body : "";
	up.body_len = t->out_len;
	up.method = method;
	up.connect_ms = t->snap->upstream.connect_timeout_ms;
	up.first_byte_ms = t->snap->upstream.first_byte_timeout_ms;
	/* The server's own stream is silent until it has something to say:
	 * only the whole transfer's deadline ends it (the client opens
	 * another). */
	up.idle_ms = t->standalone ? 0 : t->snap->upstream.idle_timeout_ms;
	up.total_ms = t->snap->upstream.total_timeout_ms;
	up.on_head = mcp_on_head;
	up.on_data = mcp_on_data;
	up.on_done = mcp_on_done;
	up.on_header = mcp_on_header;
	up.arg = t;
	t->conn = c;
	gw_conn_set_hooks(c, &hooks);
	if (gw_up_start(gw_conn_worker(c)->up, &up, &t->x) != WD_OK) {
		gw_conn_set_hooks(c, NULL);
		t->status = 502;
		mcp_record_answer(t, "the transfer to the MCP server could not "
		    "start");
		mcp_rpc_error(c, 502, t->msg.id, GW_RPC_INVALID, "mcp_upstream_error",
		    "cannot start the transfer to MCP server '%s'", t->m->id);
		mcp_txn_free(t);
	}
	return;
nomem:
	t->status = 500;
	mcp_record_answer(t, "out of memory");
	gw_reply_error(c, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
	mcp_txn_free(t);
}

/* Who calls: tenant, agent, session.  False when answered already. */
static bool
identify(struct mcp_txn *t, struct gw_conn *c, const struct gw_http_req *req)
{
	struct pol_caller caller;
	const char *hdr, *sess;

	t->tenant = gw_auth(t->snap, gw_http_header(req, "authorization"),
	    &caller);
	if (t->tenant == NULL) {
		struct gw_out_hdr h = { "WWW-Authenticate", "Bearer" };

		gw_metrics_request("mcp", 401);
		gw_reply_error(c, WD_CODE_INVALID_API_KEY, &h, 1, "missing or unknown API key: send "
		    "'Authorization: Bearer <virtual key>'");
		return false;
	}
	t->key = caller.key;
	t->agent = caller.agent;
	hdr = gw_http_header(req, "x-warden-agent");
	if (hdr != NULL && t->agent != NULL && strcmp(hdr, t->agent->id) != 0) {
		mcp_rpc_error(c, 403, NULL, GW_RPC_POLICY, "agent_mismatch", "this key "
		    "belongs to agent '%s'; it may not act as '%.64s'",
		    t->agent->id, hdr);
		return false;
	}
	if (t->agent == NULL && hdr != NULL)
		t->agent = pol_find_agent(t->snap, t->tenant, hdr);
	if (t->agent == NULL) {
		mcp_rpc_error(c, 403, NULL, GW_RPC_POLICY, "agent_required", "MCP is for "
		    "agents: use an agent's key, or name one with X-Warden-Agent");
		return false;
	}
	sess = gw_http_header(req, "x-warden-session");
	if (sess == NULL && t->agent->session_required) {
		mcp_rpc_error(c, 400, NULL, GW_RPC_POLICY, "session_required", "agent "
		    "'%s' requires sessions: send X-Warden-Session", t->agent->id);
		return false;
	}
	if (sess != NULL && !wd_token_sane(sess, 128)) {
		mcp_rpc_error(c, 400, NULL, GW_RPC_INVALID, "invalid_session",
		    "X-Warden-Session must be 1 to 128 characters of A-Z a-z 0-9 "
		    ". _ : -");
		return false;
	}
	snprintf(t->session, sizeof(t->session), "%s", sess ? sess : "");
	return true;
}

/* A message refused before it is sent (a tools/call before its
 * decision): recorded, answered. */
static void
refuse_call(struct mcp_txn *t, struct gw_conn *c, int status,
    enum wd_code code, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
refuse_call(struct mcp_txn *t, struct gw_conn *c, int status,
    enum wd_code code, const char *rule, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A notification or a response has no id to answer with a
	 * JSON-RPC error: its POST is refused instead. */
	if (!t->is_req && status == 200)
		status = 403;
	t->agent_tool = t->is_call ? pol_mcp_agent_tool(t->m, t->tool) : NULL;
	t->status = status;
	mcp_record(t, "deny", rule, msg);
	mcp_rpc_error(c, status, t->is_req ? t->msg.id : NULL, GW_RPC_POLICY,
	    rule != NULL ? rule : wd_errdef(code)->code,
	    "warden refused the %s: %s", t->is_call ? "call" : "message", msg);
}

/* refuse_call with the code's own name and message. */
static void
refuse_code(struct mcp_txn *t, struct gw_conn *c, int status,
    enum wd_code code)
{
	refuse_call(t, c, status, code, wd_errdef(code)->code, "%s",
	    wd_errdef(code)->message);
}

/*
 * What a client's message carries to the server: a call's arguments; any
 * other request's or notification's params (a prompt's arguments, a
 * completion's value); a response's result or error (a sampling or an
 * elicitation answer).
 */
static json_t *
sent_payload(const struct mcp_txn *t)
{
	if (t->is_call)
		return json_object_get(t->msg.params, "arguments");
	if (t->msg.kind == GW_RPC_RESPONSE)
		return t->msg.result != NULL ? t->msg.result : t->msg.error;
	return t->msg.params;
}

/*
 * The content detectors on what the message carries (sent_payload),
 * whatever the message: a call's classes join its decision (flow rules
 * for the tool's sink), a blocking detector refuses the message naming
 * itself (never what it found), and a detector that cannot run refuses
 * it (fail closed).  False: answered.
 */
static bool
scan_sent(struct mcp_txn *t, struct gw_conn *c)
{
	const struct pol_detect *pd = &t->snap->detect;
	const uint32_t *counts;
	enum wd_err rc;

	rc = gw_detect_mcp_args(&t->det, t->snap, sent_payload(t), &counts);
	if (rc == WD_ELIMIT) {
		refuse_code(t, c, 200, WD_CODE_TOO_MANY_TEXTS);
		return false;
	}
	/* The answer's detectors too, for what the server gives back. */
	if (rc != WD_OK || (t->is_req && gw_detect_answer_open(&t->res,
	    t->snap, NULL) != WD_OK)) {
		refuse_code(t, c, 503, WD_CODE_DETECTOR_UNAVAILABLE);
		return false;
	}
	for (size_t i = 0; counts != NULL && i < pd->n; i++) {
		if (counts[i] == 0)
			continue;
		t->det_classes |= pd->d[i].classes;
		if (pd->d[i].action == POL_DET_BLOCK) {
			refuse_call(t, c, 200, WD_CODE_DETECTED, pd->d[i].code,
			    "the %s what detector '%s' looks for; %s not "
			    "sent", t->is_call ? "arguments contain" :
			    "message contains", pd->d[i].id, t->is_call ?
			    "they were" : "it was");
			return false;
		}
	}
	return true;
}

/* An allowed message's payload, redacted where the detectors say so:
 * what the server gets (and what the record digests).  False: answered. */
static bool
redact_sent(struct mcp_txn *t, struct gw_conn *c)
{
	const struct pol_detect *pd = &t->snap->detect;
	bool any = false;
	char *text;

	for (size_t i = 0; t->det.scan != NULL && i < pd->n; i++)
		if (t->det.counts[i] > 0 && pd->d[i].action == POL_DET_REDACT)
			any = true;
	if (!any)
		return true;
	if (gw_detect_redact(&t->det, t->snap) != WD_OK ||
	    (text = json_dumps(t->msg.root, JSON_COMPACT)) == NULL) {
		refuse_code(t, c, 200, WD_CODE_REDACTION_FAILED);
		return false;
	}
	wd_wipe(t->out_body, t->out_len);
	free(t->out_body);
	t->out_body = text;
	t->out_len = strlen(text);
	mcp_digest(t, sent_payload(t), t->sent_hmac);
	return true;
}

void
gw_mcp(struct gw_conn *c, struct gw_http_req *req, struct evbuffer *body)
{
	struct gw_server *srv = gw_conn_worker(c)->srv;
	struct mcp_txn *t = calloc(1, sizeof(*t));
	const char *id = req->path + 5, *pv, *csid;
	const char *rule = NULL;
	char why[256], msg[256];
	int code;
	bool stateless;

	if (t == NULL) {
		evbuffer_free(body);
		gw_reply_error(c, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
		return;
	}
	t->srv = srv;
	gw_server_acquire(srv, &t->snap, &t->creds);
	snprintf(t->reqid, sizeof(t->reqid), "%s", gw_conn_request_id(c));
	if ((t->m = pol_mcp_find(t->snap, id)) == NULL) {
		evbuffer_free(body);
		gw_metrics_request("mcp", 404);
		gw_reply_error(c, WD_CODE_UNKNOWN_URL, NULL, 0, "no MCP server '%.64s' in the rules", id);
		goto drop;
	}
	gw_pin_path(t->snap, srv->opts->audit_dir, t->pins, sizeof(t->pins));
	/* DNS rebinding: a browser page may not reach the server through us. */
	if (!origin_allowed(t->m, gw_http_header(req, "origin"))) {
		evbuffer_free(body);
		mcp_rpc_error(c, 403, NULL, GW_RPC_INVALID, "origin_forbidden", "Origin "
		    "'%.100s' may not use MCP server '%s'",
		    gw_http_header(req, "origin"), t->m->id);
		goto drop;
	}
	if (!identify(t, c, req)) {
		evbuffer_free(body);
		goto drop;
	}
	pv = gw_http_header(req, "mcp-protocol-version");
	stateless = pv != NULL && strcmp(pv, "2026-07-28") == 0;
	csid = gw_http_header(req, "mcp-session-id");
	if (!hdr_sane(pv, 256) || !hdr_sane(csid, sizeof(t->client_sid)) ||
	    !hdr_sane(gw_http_header(req, "mcp-method"), 256) ||
	    !hdr_sane(gw_http_header(req, "mcp-name"), 256)) {
		evbuffer_free(body);
		mcp_rpc_error(c, 400, NULL, GW_RPC_INVALID, "invalid_header", "MCP "
		    "headers hold printable ASCII, at most 256 characters (a "
		    "session id as warden gave it)");
		goto drop;
	}
	/* As a server answers a session it does not know: the client
	 * starts a new one. */
	if (csid != NULL && !session_open(t, csid)) {
		evbuffer_free(body);
		gw_metrics_request("mcp", 404);
		mcp_rpc_error(c, 404, NULL, GW_RPC_INVALID, "unknown_session",
		    "Mcp-Session-Id names no session of this caller at MCP "
		    "server '%s'", t->m->id);
		goto drop;
	}
	if (req->method == GW_M_DELETE) {
		evbuffer_free(body);
		if (stateless) {
			struct gw_out_hdr allow = { "Allow", "POST" };

			gw_metrics_request("mcp", 405);
			gw_reply_error(c, WD_CODE_METHOD_NOT_ALLOWED, &allow, 1, "MCP 2026-07-28 has no sessions "
			    "to end");
			goto drop;
		}
		forward(t, c, req, "DELETE");
		return;
	}
	if (req->method == GW_M_GET && !stateless) {
		evbuffer_free(body);
		t->standalone = true;
		/* What the server says on it is read as answers are. */
		if (gw_detect_answer_open(&t->res, t->snap, NULL) != WD_OK) {
			refuse_code(t, c, 503, WD_CODE_DETECTOR_UNAVAILABLE);
			goto drop;
		}
		forward(t, c, req, "GET");
		return;
	}
	if (req->method != GW_M_POST) {
		/* 2026-07-28 has no server stream of its own: the spec's 405. */
		struct gw_out_hdr allow = { "Allow", stateless ? "POST" :
			"GET, POST, DELETE" };

		evbuffer_free(body);
		gw_metrics_request("mcp", 405);
		gw_reply_error(c, WD_CODE_METHOD_NOT_ALLOWED, &allow, 1,
		    "method %s is not allowed on %s (%s)", req->method_name,
		    req->path, stateless ? "MCP 2026-07-28 takes POST only" :
		    "POST messages; GET the server's stream; DELETE ends a "
		    "session");
		goto drop;
	}
	t->out_len = evbuffer_get_length(body);
	t->out_body = malloc(t->out_len + 1);
	if (t->out_body == NULL) {
		evbuffer_free(body);
		gw_reply_error(c, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
		goto drop;
	}
	evbuffer_remove(body, t->out_body, t->out_len);
	t->out_body[t->out_len] = '\0';
	evbuffer_free(body);
	if (gw_rpc_read(t->out_body, t->out_len, &t->msg, &code, why,
	    sizeof(why)) != WD_OK) {
		mcp_rpc_error(c, 400, NULL, code, "invalid_jsonrpc", "%s", why);
		goto drop;
	}
	if (!headers_match(req, &t->msg, stateless, why, sizeof(why))) {
		const char *name = json_string_value(json_object_get(t->msg.params,
		    "name"));

		/* Every tools/call leaves a record, the unreadable ones too. */
		if (t->msg.method != NULL && strcmp(t->msg.method,
		    "tools/call") == 0) {
			t->is_req = t->is_call = true;
			snprintf(t->tool, sizeof(t->tool), "%s", name ? name : "");
			t->agent_tool = name ? pol_mcp_agent_tool(t->m, name) : NULL;
			t->status = 400;
			mcp_digest(t, sent_payload(t), t->sent_hmac);
			mcp_record(t, "deny", "header_mismatch", why);
		}
		mcp_rpc_error(c, 400, t->msg.id, GW_RPC_HEADER_MISMATCH,
		    "header_mismatch", "%s", why);
		goto drop;
	}
	t->is_req = t->msg.kind == GW_RPC_REQUEST;
	if (t->is_req && strcmp(t->msg.method, "tools/list") == 0)
		t->is_list = true;
	if (t->is_req && strcmp(t->msg.method, "tools/call") == 0) {
		const char *name = json_string_value(json_object_get(t->msg.params,
		    "name"));

		if (name == NULL || strlen(name) > 128) {
			mcp_rpc_error(c, 200, t->msg.id, -32602, "invalid_params",
			    "tools/call needs params.name (at most 128 characters)");
			goto drop;
		}
		t->is_call = true;
		snprintf(t->tool, sizeof(t->tool), "%s", name);
	}
	if (!scan_sent(t, c))
		goto drop;
	mcp_digest(t, sent_payload(t), t->sent_hmac);
	if (t->is_call && !decide_call(t, &rule, msg, sizeof(msg))) {
		t->status = 200;
		mcp_record(t, "deny", rule, msg);
		mcp_rpc_error(c, 200, t->msg.id, GW_RPC_POLICY, "tool_policy",
		    "warden refused the call: %s (rule '%s')", msg, rule);
		goto drop;
	}
	if (!redact_sent(t, c))
		goto drop;
	forward(t, c, req, NULL);
	return;
drop:
	mcp_txn_free(t);
}
