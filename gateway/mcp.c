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
 * read strictly and checked: tools/list results lose the tools the agent
 * may never call and those whose definition changed since it was pinned,
 * and server requests for sampling or elicitation pass only where the
 * agent's `mcp:` rules allow them (refused ones are answered to the
 * server with an error, never shown to the client).
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
 * tools it hid and why, the definitions it pinned or set pending).
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"
#include "gateway/mcp.h"
#include "gateway/store.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MCP_MAX_SSE_EVENT GW_MCP_MAX_BODY
/* A tools/list record names at most this many hidden tools (and counts
 * the rest): a server may list thousands. */
#define MCP_LOG_HIDDEN_MAX 64

struct mcp_txn {
	struct gw_conn *conn;		/* NULL once the client left */
	struct gw_server *srv;
	struct pol_snapshot *snap;	/* a reference */
	struct gw_creds *creds;		/* a reference */
	const struct pol_mcp_server *m;
	const struct pol_tenant *tenant;
	const struct pol_agent *agent;
	const unsigned char *key;	/* the caller's key digest */
	char reqid[40];
	char session[129];		/* X-Warden-Session, or "" */
	char pins[4200];		/* the pin file */
	struct gw_rpc msg;		/* the client's message */
	char *out_body;			/* what goes to the server */
	size_t out_len;
	char *hdrs[8];			/* request headers for the server */
	size_t nhdrs;
	char *url;
	struct gw_up_xfer *x;
	/* The answer. */
	int status;
	bool sse, started, failed;
	char sess_id[256];		/* Mcp-Session-Id from the server */
	struct evbuffer *acc;		/* JSON body, or SSE bytes not yet whole */
	struct gw_sse sse_st;
	/* tools/call: for its record. */
	bool is_call;
	char tool[129];			/* the server's tool name */
	const char *agent_tool;		/* borrowed from snap */
	char args_hmac[AUD_HASH_HEX + 1];
	char result_hmac[AUD_HASH_HEX + 1];
	bool is_list;
	bool standalone;		/* a GET: the server's own stream */
	bool recorded;			/* its one record is written */
	json_t *log;			/* hidden tools, pins, refused requests */
	/* Content detection (issue 20): the arguments before the decision,
	 * the result on its way back. */
	struct gw_detect det;
	uint64_t det_classes;		/* classes the arguments carry */
	struct gw_detect_answer res;
	const char *res_code;		/* the result was withheld: why */
	char res_msg[160];
};

static void txn_free(struct mcp_txn *t);

/* ---- answers to the client ---- */

/* A JSON-RPC error as the whole answer, with HTTP status. */
static void
rpc_error(struct gw_conn *c, int status, json_t *id, int code,
    const char *wcode, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
rpc_error(struct gw_conn *c, int status, json_t *id, int code,
    const char *wcode, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *j;
	char *text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:s,s:O?,s:{s:i,s:s,s:{s:s}}}", "jsonrpc", "2.0", "id",
	    id ? id : json_null(), "error", "code", code, "message", msg, "data",
	    "warden", wcode);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	gw_metrics_request("mcp", status);
	if (text == NULL) {
		gw_reply_error(c, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
		return;
	}
	gw_respond(c, status, "application/json", NULL, 0, text, strlen(text));
	free(text);
}

/* ---- the audit record of a tools/call or tools/list ---- */

/* Which detectors fired on the arguments (and the result), how often:
 * never what they found. */
static void
detections_json(const struct mcp_txn *t, json_t *rec)
{
	json_t *o = json_object(), *r = json_object();

	for (size_t i = 0; i < t->snap->detect.n && i < POL_MAX_DETECTORS; i++) {
		if (t->det.scan != NULL && t->det.counts[i] > 0)
			json_object_set_new(o, t->snap->detect.d[i].id,
			    json_integer(t->det.counts[i]));
		if (t->res.scan != NULL && t->res.seen[i] > 0)
			json_object_set_new(r, t->snap->detect.d[i].id,
			    json_integer(t->res.seen[i]));
	}
	if (json_object_size(o) > 0)
		json_object_set(rec, "detections", o);
	if (json_object_size(r) > 0)
		json_object_set(rec, "result_detections", r);
	json_decref(o);
	json_decref(r);
}

static void
record_mcp(struct mcp_txn *t, const char *verdict, const char *rule,
    const char *why)
{
	json_t *rec;

	if ((t->recorded && !t->standalone) || t->srv->audit == NULL)
		return;
	t->recorded = true;
	/* A result the answer detectors withheld: the client got an error,
	 * not what the server answered. */
	if (t->res_code != NULL && strcmp(verdict, "allow") == 0) {
		verdict = "deny";
		rule = t->res_code;
		why = t->res_msg;
	}
	/* A listing that lost tools on its way to the client. */
	if (t->is_list && strcmp(verdict, "allow") == 0 && t->log != NULL &&
	    json_array_size(json_object_get(t->log, "hidden_tools")) > 0)
		verdict = "modify";
	rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:s?,s:s?,"
	    "s:s?,s:s?,s:s?,s:i}",
	    "kind", t->standalone ? "mcp_stream" : t->is_list ? "mcp_list" :
	    "mcp_call", "format", "mcp",
	    "request_id", t->reqid,
	    "policy_version", t->snap->version, "tenant", t->tenant->id,
	    "agent", t->agent->id, "session", t->session[0] ? t->session : NULL,
	    "server", t->m->id, "server_country", t->m->country,
	    "tool", t->is_call ? t->tool : NULL, "agent_tool", t->agent_tool,
	    "verdict", verdict, "rule", rule, "message", why,
	    "status", t->status);
	if (rec == NULL)
		return;
	if (t->is_call) {
		json_object_set_new(rec, "arguments_hmac", t->args_hmac[0] ?
		    json_string(t->args_hmac) : json_null());
		json_object_set_new(rec, "result_hmac", t->result_hmac[0] ?
		    json_string(t->result_hmac) : json_null());
	}
	if (t->log != NULL)
		json_object_set(rec, "mcp", t->log);
	detections_json(t, rec);
	(void)aud_append(t->srv->audit, rec);
}

/*
 * The record of a call or a listing that was forwarded, written before
 * the client gets the answer it describes (the server's response, an
 * error in its place), as for chat: a kill -9 cannot leave an answered
 * call without its record.  Once only; why: what went wrong, or NULL.
 */
static void
record_answer(struct mcp_txn *t, const char *why)
{
	if (t->is_call || t->is_list)
		record_mcp(t, "allow", NULL, why);
}

static void
digest_of(struct mcp_txn *t, json_t *j, char out[AUD_HASH_HEX + 1])
{
	char *text;

	out[0] = '\0';
	/* keep: none leaves no trace of payloads, digests included. */
	if (t->srv->audit == NULL || t->snap->keep == POL_KEEP_NONE || j == NULL)
		return;
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return;
	aud_payload_digest(t->srv->audit, text, strlen(text), out);
	free(text);
}

/* ---- the policy ---- */

/* Tools the agent can reach from the start of a session: "ever". */
static uint64_t
reachable(const struct pol_agent *a)
{
	uint64_t seen = a->start, front = a->start;

	while (front != 0) {
		uint64_t next = 0;

		for (size_t i = 0; i < a->ntools; i++)
			if (front & (1ull << i))
				next |= a->next[i];
		front = next & ~seen;
		seen |= next;
	}
	return seen;
}

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

/*
 * tools/list result: keep the tools the agent may call, as pinned.  Its
 * record says which it hid and why, and which definitions this listing
 * pinned (first seen) or set pending (changed): the log, not only the
 * pin file, tells which definition was trusted from when.
 */
static void
filter_list(struct mcp_txn *t, json_t *result)
{
	json_t *tools = json_object_get(result, "tools"), *hidden, *pins;
	uint64_t ever = reachable(t->agent);
	size_t more = 0;

	if (!json_is_array(tools))
		return;
	hidden = json_array();
	pins = json_array();
	for (size_t i = 0; i < json_array_size(tools); ) {
		json_t *tool = json_array_get(tools, i);
		const char *name = json_string_value(json_object_get(tool, "name"));
		const char *at = name ? pol_mcp_agent_tool(t->m, name) : NULL;
		int idx = at ? pol_tool_index(t->agent, at) : -1;
		const char *why = NULL;
		bool wrote = false;
		char fp[65];

		if (idx < 0 || !(ever & (1ull << idx)))
			why = "not a tool the agent may call";
		else {
			gw_pin_fingerprint(tool, fp);
			switch (gw_pin_check(t->pins, t->m->id, name, fp, &wrote)) {
			case GW_PIN_OK:
				break;
			case GW_PIN_CHANGED:
				why = "definition changed: pending approval";
				break;
			default:
				why = "the pin file cannot be written";
			}
		}
		if (wrote)
			json_array_append_new(pins, json_pack("{s:s,s:s,s:s}",
			    "tool", name, "state", why == NULL ? "pinned" :
			    "pending", "fingerprint", fp));
		if (why == NULL) {
			i++;
			continue;
		}
		if (json_array_size(hidden) < MCP_LOG_HIDDEN_MAX)
			json_array_append_new(hidden, json_pack("{s:s,s:s}",
			    "tool", name == NULL ? "?" : strlen(name) > 128 ?
			    "(a name longer than 128 bytes)" : name, "why", why));
		else
			more++;
		json_array_remove(tools, i);
	}
	if (t->log == NULL)
		t->log = json_object();
	json_object_set_new(t->log, "hidden_tools", hidden);
	if (more > 0)
		json_object_set_new(t->log, "hidden_more",
		    json_integer((json_int_t)more));
	json_object_set_new(t->log, "pins", pins);
}

/* Answer a refused server request on the server's side. */
static void
reply_done(void *arg, enum wd_err err, const char *detail)
{
	(void)err;
	(void)detail;
	free(arg);
}

static size_t
reply_data(void *arg, const char *data, size_t len)
{
	(void)arg;
	(void)data;
	return len;
}

static void
reply_head(void *arg, int status, const char *ctype)
{
	(void)arg;
	(void)status;
	(void)ctype;
}

struct mcp_reply {
	char *body;
	char *hdrs[6];
	size_t nhdrs;
	struct gw_upstream *up;
	struct gw_up_req req;
};

static void
reply_free(void *arg)
{
	struct mcp_reply *r = arg;

	free(r->body);
	for (size_t i = 0; i < r->nhdrs; i++) {
		wd_wipe(r->hdrs[i], strlen(r->hdrs[i]));
		free(r->hdrs[i]);
	}
	free(r);
}

static void
reply_done_free(void *arg, enum wd_err err, const char *detail)
{
	reply_done(NULL, err, detail);
	reply_free(arg);
}

static void
reply_start(evutil_socket_t fd, short what, void *arg)
{
	struct mcp_reply *r = arg;
	struct gw_up_xfer *x;

	(void)fd;
	(void)what;
	if (gw_up_start(r->up, &r->req, &x) != WD_OK)
		reply_free(r);
}

static void
refuse_server_request(struct mcp_txn *t, json_t *id, const char *method)
{
	struct mcp_reply *r = calloc(1, sizeof(*r));
	static const struct timeval now = { 0, 0 };
	struct gw_up_req *up;
	json_t *j;

	if (r == NULL)
		return;
	j = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id,
	    "error", "code", GW_RPC_POLICY, "message", "refused by warden: "
	    "the agent's rules do not allow this request");
	r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	/* A POST of its own (the stream it came on may be a GET's): the
	 * session, the revision and the server's credential go with it. */
	r->hdrs[r->nhdrs++] = strdup("Content-Type: application/json");
	r->hdrs[r->nhdrs++] = strdup("Accept: application/json, "
	    "text/event-stream");
	for (size_t i = 0; i < t->nhdrs && r->nhdrs < 6; i++)
		if (strncasecmp(t->hdrs[i], "MCP-Protocol-Version:", 21) == 0 ||
		    strncasecmp(t->hdrs[i], "Mcp-Session-Id:", 15) == 0 ||
		    strncasecmp(t->hdrs[i], "Authorization:", 14) == 0)
			r->hdrs[r->nhdrs++] = strdup(t->hdrs[i]);
	if (r->body == NULL) {
		reply_free(r);
		return;
	}
	memset(&r->req, 0, sizeof(r->req));
	up = &r->req;
	up->url = t->m->url;
	up->headers = (const char *const *)r->hdrs;
	up->nheaders = r->nhdrs;
	up->proxy = t->snap->upstream.proxy;
	up->curl_only = t->snap->upstream.curl_only;
	up->body = r->body;
	up->body_len = strlen(r->body);
	up->connect_ms = t->snap->upstream.connect_timeout_ms;
	up->first_byte_ms = t->snap->upstream.first_byte_timeout_ms;
	up->idle_ms = t->snap->upstream.idle_timeout_ms;
	up->total_ms = t->snap->upstream.total_timeout_ms;
	up->on_head = reply_head;
	up->on_data = reply_data;
	up->on_done = reply_done_free;
	up->arg = r;
	r->up = gw_conn_worker(t->conn)->up;
	/* We are inside curl's write callback: start it from the loop. */
	if (event_base_once(gw_conn_worker(t->conn)->base, -1, EV_TIMEOUT,
	    reply_start, r, &now) != 0)
		reply_free(r);
	if (t->log == NULL)
		t->log = json_object();
	json_object_set_new(t->log, "refused_server_request",
	    json_string(method));
	/* On a call's stream the call's record says so; on the server's
	 * own stream each refusal is a record. */
	if (t->standalone)
		record_mcp(t, "deny", "mcp_server_request", "the agent's rules "
		    "do not allow this server request");
}

/*
 * A tools/call result, scanned by the detectors that watch answers: a
 * detection (or a scanner that cannot run) turns the message into a
 * JSON-RPC error naming the detector; the result goes nowhere.
 */
static void
withhold_result(struct mcp_txn *t, struct gw_rpc *sm)
{
	const struct pol_detector *det;
	const char *code;
	int fired = -1;

	if (t->res.scan == NULL)
		return;
	if (gw_detect_mcp_result(&t->res, sm->result, &fired) != WD_OK) {
		code = wd_errdef(WD_CODE_DETECTOR_UNAVAILABLE)->code;
		snprintf(t->res_msg, sizeof(t->res_msg), "content detection "
		    "cannot run on the tool's result; it was withheld");
	} else if (fired >= 0) {
		det = &t->snap->detect.d[fired];
		gw_metrics_detect(det->id, "mcp_result", 1);
		code = det->code;
		snprintf(t->res_msg, sizeof(t->res_msg), "the tool's result "
		    "contains what detector '%s' looks for; it was withheld",
		    det->id);
	} else {
		return;
	}
	t->res_code = code;
	json_object_del(sm->root, "result");
	sm->result = NULL;
	json_object_set_new(sm->root, "error", json_pack("{s:i,s:s,s:{s:s}}",
	    "code", GW_RPC_POLICY, "message", t->res_msg, "data", "warden",
	    code));
	sm->error = json_object_get(sm->root, "error");
}

/*
 * One message from the server: checked, maybe changed; false when it
 * must not reach the client (a refused server request).  *bad when it
 * cannot be read strictly.
 */
static bool
server_message(struct mcp_txn *t, struct gw_rpc *sm)
{
	if (sm->kind == GW_RPC_REQUEST) {
		bool ok = true;

		if (strcmp(sm->method, "sampling/createMessage") == 0)
			ok = t->agent->mcp_sampling;
		else if (strcmp(sm->method, "elicitation/create") == 0)
			ok = t->agent->mcp_elicitation;
		if (!ok)
			refuse_server_request(t, sm->id, sm->method);
		return ok;
	}
	if (sm->kind == GW_RPC_RESPONSE && t->standalone) {
		/* Only a resumed stream may carry one; warden resumes none:
		 * it would be a result no check has seen. */
		wd_warn("mcp %s: server '%s' sent a response on its own stream: "
		    "dropped", t->reqid, t->m->id);
		return false;
	}
	if (sm->kind != GW_RPC_RESPONSE || !json_equal(sm->id, t->msg.id))
		return true;
	if (t->is_list && sm->result != NULL)
		filter_list(t, sm->result);
	if (t->is_call)
		digest_of(t, sm->result ? sm->result : sm->error, t->result_hmac);
	if (t->is_call && sm->result != NULL)
		withhold_result(t, sm);
	record_answer(t, NULL);
	return true;
}

/* ---- the upstream transfer ---- */

static void
on_header(void *arg, const char *line, size_t len)
{
	struct mcp_txn *t = arg;
	size_t n = 15;

	if (len > n && strncasecmp(line, "mcp-session-id:", n) == 0) {
		const char *v = line + n;
		size_t vl = len - n;

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
		    v[vl - 1] == ' '))
			vl--;
		/* Visible ASCII only (the spec's rule); else dropped. */
		if (vl >= sizeof(t->sess_id))
			return;
		for (size_t i = 0; i < vl; i++)
			if (v[i] < 0x21 || v[i] > 0x7e)
				return;
		memcpy(t->sess_id, v, vl);
		t->sess_id[vl] = '\0';
	}
}

static void
start_stream(struct mcp_txn *t)
{
	struct gw_out_hdr h[2] = { { "Mcp-Session-Id", t->sess_id },
		{ "Cache-Control", "no-cache" } };

	if (t->started || t->conn == NULL)
		return;
	t->started = true;
	gw_metrics_request("mcp", t->status);
	if (t->sess_id[0] != '\0')
		gw_respond_start(t->conn, t->status, "text/event-stream", h, 2);
	else
		gw_respond_start(t->conn, t->status, "text/event-stream", h + 1,
		    1);
}

static void
on_head(void *arg, int status, const char *ctype)
{
	struct mcp_txn *t = arg;

	t->status = status;
	t->sse = ctype != NULL && strncasecmp(ctype, "text/event-stream",
	    17) == 0;
	if (t->sse && status == 200)
		start_stream(t);
}

/* One whole SSE event from the server: its data is one message. */
static bool
sse_event(struct mcp_txn *t, const char *ev, size_t len, struct evbuffer *out)
{
	const char *p = ev, *end = ev + len;
	struct evbuffer *data = evbuffer_new();
	char id[256] = "", why[160];
	struct gw_rpc sm;
	bool ok = false, any = false;
	int code;
	char *text;

	if (data == NULL)
		return false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *v;

		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll > 5 && strncmp(p, "data:", 5) == 0) {
			v = p + 5 + (p[5] == ' ');
			if (any)
				evbuffer_add(data, "\n", 1);
			evbuffer_add(data, v, ll - (size_t)(v - p));
			any = true;
		} else if (ll > 3 && strncmp(p, "id:", 3) == 0) {
			v = p + 3 + (p[3] == ' ');
			snprintf(id, sizeof(id), "%.*s", (int)(ll - (size_t)(v - p)), v);
		}
		p = nl ? nl + 1 : end;
	}
	if (!any) {		/* a comment, a keep-alive, a retry: nothing */
		evbuffer_free(data);
		return true;
	}
	if (gw_rpc_read((const char *)evbuffer_pullup(data, -1),
	    evbuffer_get_length(data), &sm, &code, why, sizeof(why)) != WD_OK)
		goto out;
	if (server_message(t, &sm)) {
		text = json_dumps(sm.root, JSON_COMPACT);
		if (text == NULL)
			goto out;
		evbuffer_add_printf(out, "event: message\n");
		for (size_t i = 0; id[0] && i < strlen(id); i++)
			if (id[i] == '\r' || id[i] == '\n')
				id[0] = '\0';
		if (id[0] != '\0')
			evbuffer_add_printf(out, "id: %s\n", id);
		evbuffer_add_printf(out, "data: %s\n\n", text);
		free(text);
	}
	ok = true;
out:
	gw_rpc_clear(&sm);
	evbuffer_free(data);
	return ok;
}

static size_t
on_data(void *arg, const char *data, size_t len)
{
	struct mcp_txn *t = arg;
	struct evbuffer *out;
	size_t complete = 0;

	if (t->conn == NULL)
		return 0;
	if (!t->sse || t->status != 200) {
		if (evbuffer_get_length(t->acc) + len > GW_MCP_MAX_BODY)
			return 0;
		evbuffer_add(t->acc, data, len);
		return len;
	}
	if (gw_sse_feed(&t->sse_st, t->acc, data, len, MCP_MAX_SSE_EVENT,
	    &complete) != WD_OK)
		return 0;
	out = evbuffer_new();
	if (out == NULL)
		return 0;
	while (complete > 0) {
		const char *buf = (const char *)evbuffer_pullup(t->acc, complete);
		size_t n = gw_sse_event_len(buf, complete);

		if (n == 0 || n > complete)
			break;
		if (!sse_event(t, buf, n, out)) {
			t->failed = true;
			evbuffer_free(out);
			return 0;
		}
		evbuffer_drain(t->acc, n);
		gw_sse_consumed(&t->sse_st, n);
		complete -= n;
	}
	if (evbuffer_get_length(out) > 0)
		gw_respond_chunk_buf(t->conn, out);
	evbuffer_free(out);
	return len;
}

static void
finish_json(struct mcp_txn *t)
{
	size_t len = evbuffer_get_length(t->acc);
	const char *body = (const char *)evbuffer_pullup(t->acc, -1);
	struct gw_out_hdr h = { "Mcp-Session-Id", t->sess_id };
	struct gw_rpc sm;
	char why[160];
	int code;
	char *text;

	if (t->standalone) {
		/* The server has no stream for us (405, an unknown session):
		 * its status, never its bytes (a response would go unread). */
		int said = t->status;

		if (said < 400 || said > 499)
			t->status = 502;
		rpc_error(t->conn, t->status, NULL, GW_RPC_INVALID,
		    "mcp_server_error", "MCP server '%s' opened no stream (it "
		    "answered %d)", t->m->id, said);
		return;
	}
	if (len == 0 && t->status >= 200 && t->status < 300) {
		/* 202 Accepted for notifications and responses. */
		record_answer(t, NULL);
		gw_metrics_request("mcp", t->status);
		gw_respond(t->conn, t->status, "application/json",
		    t->sess_id[0] ? &h : NULL, t->sess_id[0] ? 1 : 0, "", 0);
		return;
	}
	if (gw_rpc_read(body, len, &sm, &code, why, sizeof(why)) != WD_OK) {
		/* Not a message: a plain HTTP error (404 for an unknown
		 * session) keeps its status, without the server's bytes. */
		if (t->status >= 400 && t->status < 500) {
			record_answer(t, "the MCP server answered with an error");
			rpc_error(t->conn, t->status, t->msg.id, GW_RPC_INVALID,
			    "mcp_server_error", "the MCP server answered %d",
			    t->status);
		} else {
			t->status = 502;
			record_answer(t, "the MCP server's answer cannot be read");
			rpc_error(t->conn, 502, t->msg.id, GW_RPC_INVALID,
			    "bad_upstream_response", "the MCP server's answer is not "
			    "one JSON-RPC message: %s", why);
		}
		return;
	}
	if (!server_message(t, &sm)) {
		gw_rpc_clear(&sm);
		t->status = 502;
		record_answer(t, "the MCP server answered with a refused request");
		rpc_error(t->conn, 502, t->msg.id, GW_RPC_POLICY, "mcp_refused",
		    "the MCP server answered with a request the agent's rules "
		    "refuse");
		return;
	}
	text = json_dumps(sm.root, JSON_COMPACT);
	gw_rpc_clear(&sm);
	if (text == NULL) {
		gw_reply_error(t->conn, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
		return;
	}
	gw_metrics_request("mcp", t->status);
	gw_respond(t->conn, t->status, "application/json",
	    t->sess_id[0] ? &h : NULL, t->sess_id[0] ? 1 : 0, text, strlen(text));
	free(text);
}

static void
on_done(void *arg, enum wd_err err, const char *detail)
{
	struct mcp_txn *t = arg;
	struct gw_conn *c = t->conn;

	t->x = NULL;
	if (c == NULL) {
		record_answer(t, "the client left");
		txn_free(t);
		return;
	}
	gw_conn_set_hooks(c, NULL);
	if (t->started) {
		if (t->standalone && !t->failed)
			wd_info("mcp %s: server '%s' stream ended: %s", t->reqid,
			    t->m->id, err != WD_OK && detail ? detail : "closed");
		else if (err != WD_OK || t->failed ||
		    evbuffer_get_length(t->acc) > 0)
			wd_warn("mcp %s: stream from server '%s' ended badly: %s",
			    t->reqid, t->m->id, t->failed ? "unreadable event" :
			    detail ? detail : "cut");
		/* Written already if the response came; else how it ended. */
		record_answer(t, err != WD_OK || t->failed ? "the MCP server's "
		    "stream broke off" : NULL);
		gw_respond_end(c, err != WD_OK || t->failed);
	} else if (err != WD_OK) {
		t->status = 502;
		record_answer(t, "the MCP server failed");
		rpc_error(c, 502, t->msg.id, GW_RPC_INVALID, "mcp_upstream_error",
		    "MCP server '%s' cannot be reached: %s", t->m->id,
		    detail ? detail : wd_strerror(err));
	} else {
		finish_json(t);		/* records before it answers */
		record_answer(t, NULL);	/* (out of memory there) */
	}
	txn_free(t);
}

static void
client_gone(void *arg)
{
	struct mcp_txn *t = arg;

	t->conn = NULL;
	if (t->x != NULL) {
		gw_up_abort(t->x);
		t->x = NULL;
		t->status = 499;
		record_answer(t, "the client left");
		txn_free(t);
	}
}

/* ---- the transaction ---- */

static void
txn_free(struct mcp_txn *t)
{
	if (t == NULL)
		return;
	gw_rpc_clear(&t->msg);
	free(t->out_body);
	for (size_t i = 0; i < t->nhdrs; i++) {
		wd_wipe(t->hdrs[i], strlen(t->hdrs[i]));
		free(t->hdrs[i]);
	}
	if (t->acc != NULL)
		evbuffer_free(t->acc);
	json_decref(t->log);
	gw_detect_clear(&t->det);
	gw_detect_answer_clear(&t->res);
	gw_creds_unref(t->creds);
	pol_snapshot_unref(t->snap);
	free(t);
}

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

/* Header values the client sends on: printable ASCII, bounded. */
static bool
hdr_sane(const char *v)
{
	size_t n = 0;

	if (v == NULL)
		return true;
	for (; *v != '\0'; v++, n++)
		if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e ||
		    n > 255)
			return false;
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
	struct gw_conn_hooks hooks = { client_gone, NULL, t };
	char *auth = NULL;

	if (!add_hdr(t, "Content-Type", t->standalone ? NULL :
	    "application/json") ||
	    !add_hdr(t, "Accept", t->standalone ? "text/event-stream" :
	    "application/json, text/event-stream") ||
	    !add_hdr(t, "MCP-Protocol-Version",
	    gw_http_header(req, "mcp-protocol-version")) ||
	    !add_hdr(t, "Mcp-Session-Id", gw_http_header(req, "mcp-session-id")) ||
	    !add_hdr(t, "Mcp-Method", gw_http_header(req, "mcp-method")) ||
	    !add_hdr(t, "Mcp-Name", gw_http_header(req, "mcp-name")))
		goto nomem;
	/* The server's own credential, from the TPM; never the client's. */
	if (t->m->credential != NULL) {
		cred = gw_creds_get(t->creds, t->snap, t->m->credential, &clen);
		if (cred == NULL) {
			rpc_error(c, 503, t->msg.id, GW_RPC_INVALID,
			    "credential_unavailable", "the credential of MCP server "
			    "'%s' is not available", t->m->id);
			txn_free(t);
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
	up.on_head = on_head;
	up.on_data = on_data;
	up.on_done = on_done;
	up.on_header = on_header;
	up.arg = t;
	t->conn = c;
	gw_conn_set_hooks(c, &hooks);
	if (gw_up_start(gw_conn_worker(c)->up, &up, &t->x) != WD_OK) {
		gw_conn_set_hooks(c, NULL);
		rpc_error(c, 502, t->msg.id, GW_RPC_INVALID, "mcp_upstream_error",
		    "cannot start the transfer to MCP server '%s'", t->m->id);
		txn_free(t);
	}
	return;
nomem:
	gw_reply_error(c, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
	txn_free(t);
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
		rpc_error(c, 403, NULL, GW_RPC_POLICY, "agent_mismatch", "this key "
		    "belongs to agent '%s'; it may not act as '%.64s'",
		    t->agent->id, hdr);
		return false;
	}
	if (t->agent == NULL && hdr != NULL)
		t->agent = pol_find_agent(t->snap, t->tenant, hdr);
	if (t->agent == NULL) {
		rpc_error(c, 403, NULL, GW_RPC_POLICY, "agent_required", "MCP is for "
		    "agents: use an agent's key, or name one with X-Warden-Agent");
		return false;
	}
	sess = gw_http_header(req, "x-warden-session");
	if (sess == NULL && t->agent->session_required) {
		rpc_error(c, 400, NULL, GW_RPC_POLICY, "session_required", "agent "
		    "'%s' requires sessions: send X-Warden-Session", t->agent->id);
		return false;
	}
	if (sess != NULL && !wd_token_sane(sess, 128)) {
		rpc_error(c, 400, NULL, GW_RPC_INVALID, "invalid_session",
		    "X-Warden-Session must be 1 to 128 characters of A-Z a-z 0-9 "
		    ". _ : -");
		return false;
	}
	snprintf(t->session, sizeof(t->session), "%s", sess ? sess : "");
	return true;
}

/* A tools/call refused before the decision: recorded, answered. */
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
	t->agent_tool = pol_mcp_agent_tool(t->m, t->tool);
	t->status = status;
	record_mcp(t, "deny", rule, msg);
	rpc_error(c, status, t->msg.id, GW_RPC_POLICY, rule != NULL ? rule :
	    wd_errdef(code)->code, "warden refused the call: %s", msg);
}

/*
 * The content detectors on params.arguments, before the decision: their
 * classes join the decision (flow rules for the tool's sink), a blocking
 * detector refuses the call naming itself (never what it found), and a
 * detector that cannot run refuses it (fail closed).  False: answered.
 */
static bool
scan_args(struct mcp_txn *t, struct gw_conn *c)
{
	const struct pol_detect *pd = &t->snap->detect;
	const uint32_t *counts;
	enum wd_err rc;

	rc = gw_detect_mcp_args(&t->det, t->snap, json_object_get(t->msg.params,
	    "arguments"), &counts);
	if (rc == WD_ELIMIT) {
		refuse_call(t, c, 200, WD_CODE_TOO_MANY_TEXTS,
		    wd_errdef(WD_CODE_TOO_MANY_TEXTS)->code, "%s",
		    wd_errdef(WD_CODE_TOO_MANY_TEXTS)->message);
		return false;
	}
	if (rc != WD_OK || gw_detect_answer_open(&t->res, t->snap, NULL) !=
	    WD_OK) {
		refuse_call(t, c, 503, WD_CODE_DETECTOR_UNAVAILABLE,
		    wd_errdef(WD_CODE_DETECTOR_UNAVAILABLE)->code, "%s",
		    wd_errdef(WD_CODE_DETECTOR_UNAVAILABLE)->message);
		return false;
	}
	for (size_t i = 0; counts != NULL && i < pd->n; i++) {
		if (counts[i] == 0)
			continue;
		t->det_classes |= pd->d[i].classes;
		if (pd->d[i].action == POL_DET_BLOCK) {
			refuse_call(t, c, 200, WD_CODE_DETECTED, pd->d[i].code,
			    "the arguments contain what detector '%s' looks "
			    "for; they were not sent", pd->d[i].id);
			return false;
		}
	}
	return true;
}

/* An allowed call's arguments, redacted where the detectors say so:
 * what the server gets (and what the record digests).  False: answered. */
static bool
redact_args(struct mcp_txn *t, struct gw_conn *c)
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
		refuse_call(t, c, 200, WD_CODE_REDACTION_FAILED,
		    wd_errdef(WD_CODE_REDACTION_FAILED)->code, "%s",
		    wd_errdef(WD_CODE_REDACTION_FAILED)->message);
		return false;
	}
	wd_wipe(t->out_body, t->out_len);
	free(t->out_body);
	t->out_body = text;
	t->out_len = strlen(text);
	digest_of(t, json_object_get(t->msg.params, "arguments"), t->args_hmac);
	return true;
}

void
gw_mcp(struct gw_conn *c, struct gw_http_req *req, struct evbuffer *body)
{
	struct gw_server *srv = gw_conn_worker(c)->srv;
	struct mcp_txn *t = calloc(1, sizeof(*t));
	const char *id = req->path + 5, *pv;
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
		rpc_error(c, 403, NULL, GW_RPC_INVALID, "origin_forbidden", "Origin "
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
	if (!hdr_sane(pv) || !hdr_sane(gw_http_header(req, "mcp-session-id")) ||
	    !hdr_sane(gw_http_header(req, "mcp-method")) ||
	    !hdr_sane(gw_http_header(req, "mcp-name"))) {
		evbuffer_free(body);
		rpc_error(c, 400, NULL, GW_RPC_INVALID, "invalid_header", "MCP "
		    "headers hold printable ASCII, at most 256 characters");
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
		rpc_error(c, 400, NULL, code, "invalid_jsonrpc", "%s", why);
		goto drop;
	}
	if (!headers_match(req, &t->msg, stateless, why, sizeof(why))) {
		const char *name = json_string_value(json_object_get(t->msg.params,
		    "name"));

		/* Every tools/call leaves a record, the unreadable ones too. */
		if (t->msg.method != NULL && strcmp(t->msg.method,
		    "tools/call") == 0) {
			t->is_call = true;
			snprintf(t->tool, sizeof(t->tool), "%s", name ? name : "");
			t->agent_tool = name ? pol_mcp_agent_tool(t->m, name) : NULL;
			t->status = 400;
			digest_of(t, json_object_get(t->msg.params, "arguments"),
			    t->args_hmac);
			record_mcp(t, "deny", "header_mismatch", why);
		}
		rpc_error(c, 400, t->msg.id, GW_RPC_HEADER_MISMATCH,
		    "header_mismatch", "%s", why);
		goto drop;
	}
	if (t->msg.kind == GW_RPC_REQUEST &&
	    strcmp(t->msg.method, "tools/list") == 0)
		t->is_list = true;
	if (t->msg.kind == GW_RPC_REQUEST &&
	    strcmp(t->msg.method, "tools/call") == 0) {
		const char *name = json_string_value(json_object_get(t->msg.params,
		    "name"));

		if (name == NULL || strlen(name) > 128) {
			rpc_error(c, 200, t->msg.id, -32602, "invalid_params",
			    "tools/call needs params.name (at most 128 characters)");
			goto drop;
		}
		t->is_call = true;
		snprintf(t->tool, sizeof(t->tool), "%s", name);
		if (!scan_args(t, c))
			goto drop;
		digest_of(t, json_object_get(t->msg.params, "arguments"),
		    t->args_hmac);
		if (!decide_call(t, &rule, msg, sizeof(msg))) {
			t->status = 200;
			record_mcp(t, "deny", rule, msg);
			rpc_error(c, 200, t->msg.id, GW_RPC_POLICY, "tool_policy",
			    "warden refused the call: %s (rule '%s')", msg, rule);
			goto drop;
		}
		if (!redact_args(t, c))
			goto drop;
	}
	forward(t, c, req, NULL);
	return;
drop:
	txn_free(t);
}
