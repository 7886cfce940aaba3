/*
 * mcp_answer.c - the server's side of an MCP transaction (mcp_int.h):
 * every message the server sends on its way to the client, read
 * strictly and checked.  tools/list results lose the tools the agent may
 * never call and those whose definition changed since it was pinned
 * (mcp_pins.c); the server's requests for sampling or elicitation pass
 * only where the agent's `mcp:` rules allow them (refused ones are
 * answered to the server by warden, never shown to the client); a
 * result, a notification or a server request in which an answer
 * detector finds what it watches for is withheld.  A
 * JSON answer is read whole, an SSE answer event by event, re-framed
 * (only data: and id: are kept).  Here too what goes back to the client
 * as warden's own (JSON-RPC errors) and the transaction's record, which
 * is written before the answer it describes goes out.
 */
#include "gateway/mcp_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/hmac.h>
#include <openssl/rand.h>

/* ---- answers to the client ---- */

void
mcp_rpc_error(struct gw_conn *c, int status, json_t *id, int code,
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

/* ---- the records (mcp_call, mcp_list, mcp_request, mcp_message,
 * mcp_stream) ---- */

/* Which detectors fired on what the client sent (and on what the server
 * said), how often: never what they found. */
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

void
mcp_record(struct mcp_txn *t, const char *verdict, const char *rule,
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
	    t->is_call ? "mcp_call" : t->is_req ? "mcp_request" :
	    "mcp_message", "format", "mcp",
	    "request_id", t->reqid,
	    "policy_version", t->snap->version, "tenant", t->tenant->id,
	    "agent", t->agent->id, "session", t->session[0] ? t->session : NULL,
	    "server", t->m->id, "server_country", t->m->country,
	    "tool", t->is_call ? t->tool : NULL, "agent_tool", t->agent_tool,
	    "verdict", verdict, "rule", rule, "message", why,
	    "status", t->status);
	if (rec == NULL)
		return;
	/* A digest of what the client's message carried (a call's
	 * arguments: the format's own name for it). */
	if (!t->is_list && !t->standalone && t->msg.root != NULL)
		json_object_set_new(rec, t->is_call ? "arguments_hmac" :
		    "sent_hmac", t->sent_hmac[0] ? json_string(t->sent_hmac) :
		    json_null());
	if (t->is_req && !t->is_list)
		json_object_set_new(rec, "result_hmac", t->result_hmac[0] ?
		    json_string(t->result_hmac) : json_null());
	/* Any other request: what it asked for (resources name a uri,
	 * prompts a name), never its arguments. */
	if (t->is_req && !t->is_call && !t->is_list) {
		json_t *p = t->msg.params;
		const char *name = json_string_value(json_object_get(p, "uri"));

		if (name == NULL)
			name = json_string_value(json_object_get(p, "name"));
		json_object_set_new(rec, "method", json_string(t->msg.method));
		json_object_set_new(rec, "name", name != NULL && strlen(name) <=
		    512 ? json_string(name) : json_null());
	}
	/* A client's notification or response (a sampling or an elicitation
	 * answer): what it was. */
	if (!t->is_req && !t->standalone && t->msg.root != NULL) {
		json_object_set_new(rec, "rpc", json_string(t->msg.kind ==
		    GW_RPC_NOTIFICATION ? "notification" : t->msg.error != NULL ?
		    "error" : "response"));
		json_object_set_new(rec, "method", t->msg.method != NULL ?
		    json_string(t->msg.method) : json_null());
	}
	if (t->log != NULL)
		json_object_set(rec, "mcp", t->log);
	detections_json(t, rec);
	(void)aud_append(t->srv->audit, rec);
}

/*
 * The record of a request that was forwarded, written before
 * the client gets the answer it describes (the server's response, an
 * error in its place), as for chat: a kill -9 cannot leave an answered
 * call without its record.  Once only; why: what went wrong, or NULL.
 */
void
mcp_record_answer(struct mcp_txn *t, const char *why)
{
	/* Every message a client POSTed; a GET's stream records what it
	 * refused, a DELETE nothing. */
	if (t->is_req || (t->msg.root != NULL && !t->standalone))
		mcp_record(t, "allow", NULL, why);
}

void
mcp_digest(struct mcp_txn *t, json_t *j, char out[AUD_HASH_HEX + 1])
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

/* ---- the session binding ---- */

/* For servers without a credential: this process's own key. */
static unsigned char proc_key[32];
static bool proc_key_ok;
static pthread_once_t proc_key_once = PTHREAD_ONCE_INIT;

static void
proc_key_init(void)
{
	proc_key_ok = RAND_bytes(proc_key, sizeof(proc_key)) == 1;
}

/*
 * The tag's key: from the server's credential where it has one (every
 * replica holds the same, so a session survives a restart and another
 * replica), else this process's random key (then a session is this
 * process's only; a client told 404 starts a new one, as MCP says).
 */
static bool
session_key(const struct mcp_txn *t, unsigned char key[32])
{
	static const char label[] = "warden mcp session v1";
	const unsigned char *cred = NULL;
	size_t clen = 0;
	EVP_MD_CTX *ctx;
	bool ok;

	if (t->m->credential != NULL &&
	    (cred = gw_creds_get(t->creds, t->snap, t->m->credential,
	    &clen)) == NULL)
		return false;
	if (cred == NULL) {
		pthread_once(&proc_key_once, proc_key_init);
		if (!proc_key_ok)
			return false;
		cred = proc_key;
		clen = sizeof(proc_key);
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(ctx, label, sizeof(label)) &&
	    EVP_DigestUpdate(ctx, t->m->id, strlen(t->m->id) + 1) &&
	    EVP_DigestUpdate(ctx, cred, clen) &&
	    EVP_DigestFinal_ex(ctx, key, NULL);
	EVP_MD_CTX_free(ctx);
	return ok;
}

bool
mcp_session_tag(const struct mcp_txn *t, const char *sid, size_t len,
    char out[MCP_SID_TAG + 1])
{
	unsigned char key[32], mac[EVP_MAX_MD_SIZE], msg[128 + 32 + 256];
	size_t alen = strlen(t->agent->id), mlen;
	unsigned int maclen = 0;
	bool ok;

	out[0] = '\0';
	if (len >= sizeof(t->sess_id) || alen >= 128 || t->key == NULL ||
	    !session_key(t, key))
		return false;
	/* The caller (its agent, NUL, its key's digest), then the session. */
	memcpy(msg, t->agent->id, alen + 1);
	memcpy(msg + alen + 1, t->key, 32);
	memcpy(msg + alen + 1 + 32, sid, len);
	mlen = alen + 1 + 32 + len;
	ok = HMAC(EVP_sha256(), key, (int)sizeof(key), msg, mlen, mac,
	    &maclen) != NULL && maclen >= MCP_SID_TAG / 2;
	wd_wipe(key, sizeof(key));
	if (ok)
		wd_hex(mac, MCP_SID_TAG / 2, out);
	return ok;
}

/* ---- the transaction's end ---- */

void
mcp_txn_free(struct mcp_txn *t)
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

/* ---- the messages ---- */

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

/* Answer a refused server request on the server's side: what the
 * server says back is of no interest. */
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
	(void)err;
	(void)detail;
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

/* A header of the refusal's POST; false when out of memory or room. */
static bool
reply_header(struct mcp_reply *r, const char *h)
{
	if (r->nhdrs == sizeof(r->hdrs) / sizeof(r->hdrs[0]) ||
	    (r->hdrs[r->nhdrs] = strdup(h)) == NULL)
		return false;
	r->nhdrs++;
	return true;
}

static void
refuse_server_request(struct mcp_txn *t, json_t *id, const char *method,
    const char *rule, const char *why)
{
	struct mcp_reply *r = calloc(1, sizeof(*r));
	static const struct timeval now = { 0, 0 };
	struct gw_up_req *up;
	json_t *j;
	bool ok;

	if (r == NULL)
		goto out;
	j = json_pack("{s:s,s:O,s:{s:i,s:s+}}", "jsonrpc", "2.0", "id", id,
	    "error", "code", GW_RPC_POLICY, "message", "refused by warden: ",
	    why);
	r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	/* A POST of its own (the stream it came on may be a GET's): the
	 * session, the revision and the server's credential go with it. */
	ok = r->body != NULL &&
	    reply_header(r, "Content-Type: application/json") &&
	    reply_header(r, "Accept: application/json, text/event-stream");
	for (size_t i = 0; ok && i < t->nhdrs; i++)
		if (strncasecmp(t->hdrs[i], "MCP-Protocol-Version:", 21) == 0 ||
		    strncasecmp(t->hdrs[i], "Mcp-Session-Id:", 15) == 0 ||
		    strncasecmp(t->hdrs[i], "Authorization:", 14) == 0)
			ok = reply_header(r, t->hdrs[i]);
	if (!ok) {
		/* The server waits for an answer in vain; the refusal
		 * itself stands and is recorded. */
		reply_free(r);
		goto out;
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
out:
	/* On the server's own stream each record tells of its own event. */
	if (t->standalone) {
		json_decref(t->log);
		t->log = NULL;
	}
	if (t->log == NULL)
		t->log = json_object();
	json_object_set_new(t->log, "refused_server_request",
	    json_string(method));
	/* On a call's stream the call's record says so; on the server's
	 * own stream each refusal is a record. */
	if (t->standalone)
		mcp_record(t, "deny", rule, why);
}

/*
 * What the server says on its own (a notification, a request of its
 * own), read by the detectors that watch answers, as its results are:
 * true if it may reach the client.  False: it is withheld, noted in the
 * call's record (on the server's own stream, a record of its own).  A
 * server request is answered with an error (refuse_server_request).
 */
static bool
server_said_clean(struct mcp_txn *t, struct gw_rpc *sm)
{
	const char *code;
	char why[160];
	int fired = -1;
	json_t *w;

	if (t->res.scan == NULL)
		return true;
	if (gw_detect_mcp_result(&t->res, sm->params, false, &fired) != WD_OK) {
		code = wd_errdef(WD_CODE_DETECTOR_UNAVAILABLE)->code;
		snprintf(why, sizeof(why), "content detection cannot run on the "
		    "server's %s; it was withheld", sm->method);
	} else if (fired >= 0) {
		gw_metrics_detect(t->snap->detect.d[fired].id, "mcp_result", 1);
		code = t->snap->detect.d[fired].code;
		snprintf(why, sizeof(why), "the server's %s holds what detector "
		    "'%s' looks for; it was withheld", sm->method,
		    t->snap->detect.d[fired].id);
	} else {
		return true;
	}
	if (sm->kind == GW_RPC_REQUEST) {
		refuse_server_request(t, sm->id, sm->method, code, why);
		return false;
	}
	if (t->standalone) {
		json_decref(t->log);
		t->log = NULL;
	}
	if (t->log == NULL)
		t->log = json_object();
	if ((w = json_object_get(t->log, "withheld_notifications")) == NULL)
		json_object_set_new(t->log, "withheld_notifications",
		    w = json_array());
	if (json_array_size(w) < 64)
		json_array_append_new(w, json_string(sm->method));
	if (t->standalone)
		mcp_record(t, "deny", code, why);
	return false;
}

/*
 * A result (a tool's, a resource's, a prompt's: any but a listing's),
 * scanned by the detectors that watch answers: a detection (or a scanner
 * that cannot run) turns the message into a JSON-RPC error naming the
 * detector; the result goes nowhere.
 */
static void
withhold_result(struct mcp_txn *t, struct gw_rpc *sm)
{
	const struct pol_detector *det;
	const char *code;
	int fired = -1;

	if (t->res.scan == NULL)
		return;
	if (gw_detect_mcp_result(&t->res, sm->result, t->is_call, &fired) !=
	    WD_OK) {
		code = wd_errdef(WD_CODE_DETECTOR_UNAVAILABLE)->code;
		snprintf(t->res_msg, sizeof(t->res_msg), "content detection "
		    "cannot run on the %s result; it was withheld", t->is_call ?
		    "tool's" : "server's");
	} else if (fired >= 0) {
		det = &t->snap->detect.d[fired];
		gw_metrics_detect(det->id, "mcp_result", 1);
		code = det->code;
		snprintf(t->res_msg, sizeof(t->res_msg), "the %s result "
		    "contains what detector '%s' looks for; it was withheld",
		    t->is_call ? "tool's" : "server's", det->id);
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
 * must not reach the client (a refused server request, a response on
 * the server's own stream).  The answer to the client's request is
 * recorded here, before it goes on.
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
		if (!ok) {
			refuse_server_request(t, sm->id, sm->method,
			    "mcp_server_request", "the agent's rules do not allow "
			    "this server request");
			return false;
		}
		return server_said_clean(t, sm);
	}
	if (sm->kind == GW_RPC_NOTIFICATION)
		return server_said_clean(t, sm);
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
	if (!t->is_list)
		mcp_digest(t, sm->result ? sm->result : sm->error, t->result_hmac);
	/* A listing's definitions are pinned and filtered, not scanned. */
	if (!t->is_list && sm->result != NULL)
		withhold_result(t, sm);
	mcp_record_answer(t, NULL);
	return true;
}

/* ---- the transfer's callbacks ---- */

void
mcp_on_header(void *arg, const char *line, size_t len)
{
	struct mcp_txn *t = arg;
	char tag[MCP_SID_TAG + 1];
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
		/* The client's copy is bound to this caller (see below). */
		if (mcp_session_tag(t, t->sess_id, vl, tag))
			snprintf(t->client_sid, sizeof(t->client_sid), "%s.%s",
			    t->sess_id, tag);
		else
			t->sess_id[0] = t->client_sid[0] = '\0';
	}
}

static void
start_stream(struct mcp_txn *t)
{
	struct gw_out_hdr h[2] = { { "Mcp-Session-Id", t->client_sid },
		{ "Cache-Control", "no-cache" } };

	if (t->started || t->conn == NULL)
		return;
	t->started = true;
	gw_metrics_request("mcp", t->status);
	if (t->client_sid[0] != '\0')
		gw_respond_start(t->conn, t->status, "text/event-stream", h, 2);
	else
		gw_respond_start(t->conn, t->status, "text/event-stream", h + 1,
		    1);
}

void
mcp_on_head(void *arg, int status, const char *ctype)
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
		if (id[0] != '\0' && id[strcspn(id, "\r\n")] == '\0')
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

size_t
mcp_on_data(void *arg, const char *data, size_t len)
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
	struct gw_out_hdr h = { "Mcp-Session-Id", t->client_sid };
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
		mcp_rpc_error(t->conn, t->status, NULL, GW_RPC_INVALID,
		    "mcp_server_error", "MCP server '%s' opened no stream (it "
		    "answered %d)", t->m->id, said);
		return;
	}
	if (len == 0 && t->status >= 200 && t->status < 300) {
		/* 202 Accepted for notifications and responses. */
		mcp_record_answer(t, NULL);
		gw_metrics_request("mcp", t->status);
		gw_respond(t->conn, t->status, "application/json",
		    t->client_sid[0] ? &h : NULL, t->client_sid[0] ? 1 : 0, "",
		    0);
		return;
	}
	if (gw_rpc_read(body, len, &sm, &code, why, sizeof(why)) != WD_OK) {
		/* Not a message: a plain HTTP error (404 for an unknown
		 * session) keeps its status, without the server's bytes. */
		if (t->status >= 400 && t->status < 500) {
			mcp_record_answer(t, "the MCP server answered with an error");
			mcp_rpc_error(t->conn, t->status, t->msg.id, GW_RPC_INVALID,
			    "mcp_server_error", "the MCP server answered %d",
			    t->status);
		} else {
			t->status = 502;
			mcp_record_answer(t, "the MCP server's answer cannot be read");
			mcp_rpc_error(t->conn, 502, t->msg.id, GW_RPC_INVALID,
			    "bad_upstream_response", "the MCP server's answer is not "
			    "one JSON-RPC message: %s", why);
		}
		return;
	}
	if (!server_message(t, &sm)) {
		gw_rpc_clear(&sm);
		t->status = 502;
		mcp_record_answer(t, "the MCP server answered with a message "
		    "warden withheld");
		mcp_rpc_error(t->conn, 502, t->msg.id, GW_RPC_POLICY, "mcp_refused",
		    "the MCP server answered with a message warden does not pass "
		    "on (a request the agent's rules refuse, or what an answer "
		    "detector watches for)");
		return;
	}
	/* Written already if the message was the response; not if the
	 * server answered with some other message. */
	mcp_record_answer(t, NULL);
	text = json_dumps(sm.root, JSON_COMPACT);
	gw_rpc_clear(&sm);
	if (text == NULL) {
		gw_reply_error(t->conn, WD_CODE_OUT_OF_MEMORY, NULL, 0, NULL);
		return;
	}
	gw_metrics_request("mcp", t->status);
	gw_respond(t->conn, t->status, "application/json",
	    t->client_sid[0] ? &h : NULL, t->client_sid[0] ? 1 : 0, text,
	    strlen(text));
	free(text);
}

void
mcp_on_done(void *arg, enum wd_err err, const char *detail)
{
	struct mcp_txn *t = arg;
	struct gw_conn *c = t->conn;

	t->x = NULL;
	if (c == NULL) {
		mcp_record_answer(t, "the client left");
		mcp_txn_free(t);
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
		mcp_record_answer(t, err != WD_OK || t->failed ? "the MCP server's "
		    "stream broke off" : NULL);
		gw_respond_end(c, err != WD_OK || t->failed);
	} else if (err != WD_OK) {
		t->status = 502;
		mcp_record_answer(t, "the MCP server failed");
		mcp_rpc_error(c, 502, t->msg.id, GW_RPC_INVALID, "mcp_upstream_error",
		    "MCP server '%s' cannot be reached: %s", t->m->id,
		    detail ? detail : wd_strerror(err));
	} else {
		finish_json(t);		/* records before it answers */
	}
	mcp_txn_free(t);
}

void
mcp_client_gone(void *arg)
{
	struct mcp_txn *t = arg;

	t->conn = NULL;
	if (t->x != NULL) {
		gw_up_abort(t->x);
		t->x = NULL;
		t->status = 499;
		mcp_record_answer(t, "the client left");
		mcp_txn_free(t);
	}
}
