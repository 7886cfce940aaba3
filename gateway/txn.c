/*
 * txn.c - the transaction's state machine (txn.h): its start, the steps
 * before the provider (admit, read, decide), and the one function that
 * moves it, gw_txn_run(), which ends every transaction in
 * gw_txn_finish() (txn_end.c), once.
 *
 * The steps after (attempts and fallback, the answer) are in
 * txn_upstream.c and txn_answer.c; the record in txn_record.c.  Those
 * steps do not call the machine: a transfer's end comes back here
 * (transfer_done), and so does a client that leaves (client_gone).
 */
#include "gateway/txn.h"
#include "gateway/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ADMIT: nothing goes out that cannot be recorded; then who is asking. */
static enum txn_state
step_admit(struct txn *t)
{
	const unsigned char *digest = gw_conn_key_digest(t->conn);

	if (t->audit.log != NULL && !aud_healthy(t->audit.log))
		return gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, NULL);
	/* Authorization: Bearer, or x-api-key (Anthropic clients): hashed
	 * once, at admission, when the connection admitted it. */
	t->req.tenant = digest != NULL ? gw_auth_digest(t->pol.snap, digest,
	    &t->req.caller) : gw_auth_request(t->pol.snap, t->req.http,
	    &t->req.caller);
	if (t->req.tenant == NULL)
		return gw_txn_error(t, WD_CODE_INVALID_API_KEY, NULL);
	return TXN_READ;
}

/* READ: the format reads the body strictly. */
static enum txn_state
step_read(struct txn *t)
{
	const char *param = NULL;
	char why[256];

	if (t->req.fmt->read_request((const char *)evbuffer_pullup(t->req.body,
	    -1), evbuffer_get_length(t->req.body), &t->req.chat, why,
	    sizeof(why), &param) != WD_OK) {
		gw_txn_error(t, WD_CODE_INVALID_REQUEST, "%s", why);
		t->end.param = param;
		return TXN_END;
	}
	return TXN_DECIDE;
}

/* Replace the body with root's JSON: the request was modified. */
static bool
rewrite_body(struct evbuffer *buf, json_t *root)
{
	char *text = json_dumps(root, JSON_COMPACT);

	if (text == NULL)
		return false;
	evbuffer_drain(buf, evbuffer_get_length(buf));
	evbuffer_add(buf, text, strlen(text));
	free(text);
	return true;
}

/* Two of one policy header would leave the choice to us. */
static bool
policy_headers_once(const struct gw_http_req *req, char *msg, size_t len)
{
	static const char *const once[] = { "x-warden-data-class",
		"x-warden-subject-region", "x-warden-agent", "x-warden-session" };

	for (size_t h = 0; h < sizeof(once) / sizeof(once[0]); h++) {
		size_t n = 0;

		for (size_t i = 0; i < req->nhdrs; i++)
			n += strcasecmp(req->hdrs[i].name, once[h]) == 0;
		if (n > 1) {
			snprintf(msg, len, "%s given more than once", once[h]);
			return false;
		}
	}
	return true;
}

/* The client headers the format forwards unchanged (anthropic-version,
 * anthropic-beta), copied: the head is not kept past DECIDE. */
static void
forward_headers(struct txn *t, const struct gw_http_req *req)
{
	const char *const *f = t->req.fmt->forward;

	t->req.nfwd = 0;
	for (size_t i = 0; f != NULL && f[i] != NULL && t->req.nfwd < 2; i++) {
		const char *v = gw_http_header(req, f[i]);
		int n;

		if (v == NULL)
			continue;
		n = snprintf(t->req.fwd[t->req.nfwd], sizeof(t->req.fwd[0]),
		    "%s: %s", f[i], v);
		if (n > 0 && (size_t)n < sizeof(t->req.fwd[0]))
			t->req.nfwd++;
	}
}

/*
 * previous_response_id is state kept at the provider that made it: the
 * follow-up goes only to that route, and only if the policy allows that
 * route for this request.  An id warden does not know is refused, never
 * sent to some route to try.  TXN_DECIDE: go on.
 */
static enum txn_state
previous_route(struct txn *t)
{
	char route[GW_RESP_ROUTE_MAX + 1];
	struct txn_policy *p = &t->pol;

	switch (gw_store()->response_route(t->req.tenant->id,
	    t->req.chat.previous_response_id, route, sizeof(route))) {
	case GW_STORE_OK:
		break;
	case GW_STORE_UNAVAILABLE:
		return gw_txn_error(t, WD_CODE_STATE_STORE_UNAVAILABLE, "the shared "
		    "state store cannot say which route holds previous_response_id");
	default:
		return gw_txn_error(t, WD_CODE_UNKNOWN_RESPONSE, NULL);
	}
	for (size_t i = 0; i < p->dec.nroutes; i++)
		if (strcmp(p->dec.routes[i]->id, route) == 0) {
			t->up.cand = &p->dec.routes[i];
			t->up.ncand = 1;
			return TXN_DECIDE;
		}
	return gw_txn_error(t, WD_CODE_RESPONSE_ROUTE, "previous_response_id "
	    "is held by route '%s', which is not a compliant route for this "
	    "request", route);
}

/*
 * The tool policy for the other formats: the request's history and tools
 * as the chat view tools.c judges; a provider-side tool the agent does not
 * list is refused; what the policy strips from the view goes from the
 * request.
 */
static enum txn_state
decide_tools(struct txn *t, struct gw_http_req *req)
{
	struct txn_policy *p = &t->pol;
	struct gw_tools_deny d;
	struct gw_req r;
	struct gw_chat as_chat;
	char refused[64];
	json_t *view;
	enum gw_tools_rc rc;

	if (t->req.fmt == &gw_format_embeddings ||
	    t->req.fmt == &gw_format_count_tokens)
		return TXN_ATTEMPT;	/* no tools run from these */
	gw_req_of_chat(&t->req.chat, &r);
	view = gw_req_tools_view(&r, NULL, refused, sizeof(refused));
	if (view == NULL)
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	memset(&as_chat, 0, sizeof(as_chat));
	as_chat.root = view;
	rc = gw_tools_request(p->tools, p->snap, t->req.tenant,
	    &t->req.caller, req, &as_chat, &d);
	if (rc != GW_TOOLS_DENY && p->tools->agent != NULL) {
		json_t *check = gw_req_tools_view(&r, p->tools->agent, refused,
		    sizeof(refused));

		json_decref(check);
		if (refused[0] != '\0') {
			json_decref(view);
			return gw_txn_error(t, WD_CODE_TOOL_POLICY, "agent '%s' "
			    "does not list the provider-side tool '%s'; a request "
			    "that offers it is refused", p->tools->agent->id,
			    refused);
		}
	}
	if (rc == GW_TOOLS_DENY) {
		json_decref(view);
		return gw_txn_refuse(t, &d);
	}
	if (rc == GW_TOOLS_MODIFIED) {
		gw_req_tools_apply(&r, view);
		if (!rewrite_body(t->req.body, t->req.chat.root)) {
			json_decref(view);
			return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
		}
		p->dec.verdict = POL_MODIFY;
	}
	json_decref(view);
	return TXN_ATTEMPT;
}

/* Every answer carries the decision's headers and, under a requests or
 * tokens per minute limit, the x-ratelimit-* ones (Retry-After comes
 * with the 429 itself). */
static void
limit_headers(struct txn *t)
{
	struct txn_limits *L = &t->lim;
	const char *names[7], *values[7];
	size_t n = gw_limits_headers(L->l, names, values, L->buf), k = 2;

	L->hdrs[0] = t->pol.hdrs[0];
	L->hdrs[1] = t->pol.hdrs[1];
	for (size_t i = 0; i < n && k < GW_CONN_MAX_STICKY; i++)
		if (strcmp(names[i], "Retry-After") != 0)
			L->hdrs[k++] = (struct gw_out_hdr){ names[i], values[i] };
	if (t->conn != NULL && k > 2)
		gw_conn_set_answer_headers(t->conn, L->hdrs, k);
}

/*
 * LIMITS, the end of DECIDE: reserve what the request may cost on every
 * limit that applies, or refuse it (429, naming the limit; 503 when the
 * store cannot answer and a limit does not say fail_open).  A stream
 * under a token or cost limit asks the provider for its usage.
 */
static enum txn_state
reserve_limits(struct txn *t)
{
	struct txn_limits *L = &t->lim;
	struct pol_caller who = t->req.caller;
	char msg[400];
	bool asked;

	/* An agent named by X-Warden-Agent counts as that agent.  The
	 * in-flight lease is named by the decision id: random, where a
	 * request id may be the client's. */
	if (who.agent == NULL && t->pol.tools != NULL &&
	    t->pol.tools->agent != NULL)
		who.agent = t->pol.tools->agent;
	/* Planned on the heap and kept only when a limit applies: most
	 * requests have none, and a stream holds its txn for long. */
	if (!gw_limits_any(t->pol.snap, &who))
		return TXN_ATTEMPT;
	if ((L->l = malloc(sizeof(*L->l))) == NULL)
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	/* max_tokens from the facts when the request has no tree yet. */
	gw_limits_plan(L->l, t->pol.snap, &who, t->req.chat.model,
	    evbuffer_get_length(t->req.body), t->req.chat.root == NULL &&
	    t->req.chat.text != NULL ? t->req.chat.max_tokens :
	    gw_limits_max_tokens(t->req.chat.root), t->pol.dec.id, time(NULL));
	if (L->l->n == 0) {
		free(L->l);
		L->l = NULL;
		return TXN_ATTEMPT;
	}
	/* Only chat has stream_options; the other formats' streams carry
	 * their usage in their own events. */
	if (t->req.fmt == &gw_format_chat && t->req.chat.stream &&
	    gw_limits_need_usage(L->l) &&
	    gw_limits_ask_usage(gw_chat_tree(&t->req.chat), &asked)) {
		gw_txn_digest_request(t);
		if (!rewrite_body(t->req.body, t->req.chat.root))
			return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
		L->strip_usage = true;
	}
	switch (gw_limits_reserve(L->l, msg, sizeof(msg))) {
	case GW_LIM_OK:
		limit_headers(t);
		return TXN_ATTEMPT;
	case GW_LIM_OVER:
		limit_headers(t);
		gw_txn_error(t, WD_CODE_LIMIT_EXCEEDED, "%s", msg);
		t->end.retry_after_s = L->l->retry_s;
		return TXN_END;
	case GW_LIM_NO_PRICE:
		return gw_txn_error(t, WD_CODE_NO_PRICE, "%s", msg);
	case GW_LIM_UNAVAILABLE:
		break;
	}
	return gw_txn_error(t, WD_CODE_STATE_STORE_UNAVAILABLE, "%s", msg);
}

/* DECIDE: the policy's decision, then the agent's tool policy. */
static enum txn_state
step_decide(struct txn *t)
{
	struct txn_policy *p = &t->pol;
	struct gw_http_req *req = t->req.http;
	struct pol_facts f = {
		.tenant = t->req.tenant,
		.app = t->req.caller.app ? t->req.caller.app->id : NULL,
		.model = t->req.chat.model,
		.stream = t->req.chat.stream,
		.hdr_classes = gw_http_header(req, "x-warden-data-class"),
		.hdr_region = gw_http_header(req, "x-warden-subject-region"),
		.api = t->req.fmt != &gw_format_chat ?
		    pol_api_name(t->req.fmt->api) : NULL,
	};
	char id[sizeof(p->dec.id)], msg[96];
	struct gw_tools_deny d;
	enum txn_state s;
	json_t *root = NULL;
	enum wd_err rc;

	if (!policy_headers_once(req, msg, sizeof(msg)))
		return gw_txn_error(t, WD_CODE_DUPLICATE_POLICY_HEADER, "%s",
		    msg);
	/* The content detectors, before the policy decides: what they find
	 * joins the facts.  A detector that cannot run refuses the request
	 * (fail closed): nothing leaves unscanned. */
	if (p->snap->detect.db != NULL &&
	    (root = gw_chat_tree(&t->req.chat)) == NULL)
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	rc = gw_detect_request(&t->req.det, p->snap, root, &f.det_counts);
	if (rc == WD_ELIMIT)
		return gw_txn_error(t, WD_CODE_TOO_MANY_TEXTS, NULL);
	if (rc != WD_OK)
		return gw_txn_error(t, WD_CODE_DETECTOR_UNAVAILABLE, NULL);
	memcpy(id, p->dec.id, sizeof(id));
	if (pol_decide(p->snap, &f, &p->dec) != WD_OK)
		return gw_txn_error(t, WD_CODE_INTERNAL,
		    "policy evaluation failed");
	memcpy(p->dec.id, id, sizeof(id));
	p->decided = true;
	if (p->dec.verdict == POL_DENY && p->dec.det_fired != 0) {
		/* Blocked for what it holds: no copy of it is kept. */
		evbuffer_drain(t->req.body, evbuffer_get_length(t->req.body));
	} else if (p->dec.verdict != POL_DENY && p->dec.redact) {
		/* What goes upstream (and what the audit digests) is the
		 * redacted body. */
		if (gw_detect_redact(&t->req.det, p->snap) != WD_OK ||
		    !rewrite_body(t->req.body, t->req.chat.root))
			return gw_txn_error(t, WD_CODE_REDACTION_FAILED, NULL);
		p->dec.verdict = POL_MODIFY;
	}
	if (p->dec.verdict != POL_DENY &&
	    gw_detect_answer_open(&t->ans.det, p->snap, t->req.fmt) != WD_OK)
		return gw_txn_error(t, WD_CODE_DETECTOR_UNAVAILABLE, NULL);
	if (p->dec.keep >= POL_KEEP_HASH && t->audit.log != NULL) {
		/* Of the body as it stands now; made later, off the way to
		 * the provider, unless the body changes first. */
		t->audit.req_hmac_due = true;
		t->ans.hmac = aud_hmac_new(t->audit.log);
	}
	if (p->dec.verdict == POL_DENY) {
		gw_txn_error(t, p->dec.ecode, "%s", p->dec.message);
		t->end.name = p->dec.code;	/* a family's member, maybe */
		return TXN_END;
	}
	t->up.cand = p->dec.routes;
	t->up.ncand = p->dec.nroutes;
	forward_headers(t, req);
	if (t->req.chat.previous_response_id != NULL &&
	    (s = previous_route(t)) != TXN_DECIDE)
		return s;
	if ((p->tools = wd_spare_get(&t->w->spare_tools)) == NULL)
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	if (t->req.fmt != &gw_format_chat) {
		if ((s = decide_tools(t, req)) != TXN_ATTEMPT)
			return s;
	} else {
		switch (gw_tools_request(p->tools, p->snap, t->req.tenant,
		    &t->req.caller, req, &t->req.chat, &d)) {
		case GW_TOOLS_DENY:
			return gw_txn_refuse(t, &d);
		case GW_TOOLS_MODIFIED:
			gw_txn_digest_request(t);
			if (!rewrite_body(t->req.body, t->req.chat.root))
				return gw_txn_error(t, WD_CODE_INTERNAL,
				    "out of memory");
			p->dec.verdict = POL_MODIFY;
			break;
		case GW_TOOLS_OK:
			break;
		}
	}
	if (!txn_checked(t)) {
		/* No agent, no strict reading: nothing of it is needed. */
		gw_tools_clear(p->tools);
		wd_spare_put(&t->w->spare_tools, p->tools);
		p->tools = NULL;
	}
	if (reserve_limits(t) == TXN_END)
		return TXN_END;
	/* What ends the transaction if no route is left to try. */
	gw_txn_error(t, WD_CODE_UPSTREAM_ERROR, "no route");
	return TXN_ATTEMPT;
}

static void transfer_done(void *arg, enum wd_err err, const char *detail);

void
gw_txn_run(struct txn *t)
{
	for (;;) {
		switch (t->state) {
		case TXN_ADMIT:
			t->state = step_admit(t);
			break;
		case TXN_READ:
			t->state = step_read(t);
			break;
		case TXN_DECIDE:
			t->state = step_decide(t);
			/* The request head is the connection's: not used
			 * again. */
			t->req.http = NULL;
			break;
		case TXN_ATTEMPT:
			t->state = gw_txn_attempt(t, transfer_done);
			break;
		case TXN_UPSTREAM:
		case TXN_STREAMING:
			return;		/* curl calls txn_upstream.c back */
		case TXN_ANSWER:
			t->state = gw_txn_answer(t);
			break;
		case TXN_END:
			gw_txn_finish(t);
			return;
		}
	}
}

/* The attempt's transfer ended (curl's on_done): ANSWER reads how. */
static void
transfer_done(void *arg, enum wd_err err, const char *detail)
{
	struct txn *t = arg;

	gw_txn_transfer_ended(t, err, detail);
	t->state = TXN_ANSWER;
	gw_txn_run(t);
}

static void
client_gone(void *arg)
{
	struct txn *t = arg;

	t->conn = NULL;
	/* Ended already, its record waiting for the turn's end: it is
	 * written as it stands; the answer has nobody to go to. */
	if (t->end.queued)
		return;
	/* The attempt in flight ends here: it belongs in the record. */
	if (t->up.xfer != NULL && t->up.route != NULL)
		gw_txn_note_attempt(t, t->up.status, "client_gone");
	t->end.reason = TXN_END_GONE;
	t->end.status = wd_errdef(WD_CODE_CLIENT_GONE)->status;
	t->end.code = WD_CODE_CLIENT_GONE;
	t->state = TXN_END;
	gw_txn_run(t);
}

static void
client_drained(void *arg)
{
	gw_txn_drained(arg);
}

void
gw_txn_start(struct gw_conn *c, struct gw_http_req *req,
    struct evbuffer *body, const struct gw_format *fmt)
{
	struct gw_conn_hooks hooks = { client_gone, client_drained, NULL };
	struct gw_worker *w = gw_conn_worker(c);
	unsigned char rnd[16];
	struct txn *t;

	if (w->spare_txns.size == 0) {
		w->spare_txns = (struct wd_spares){ .size = sizeof(struct txn),
		    .max = TXN_SPARES };
		w->spare_tools = (struct wd_spares){
		    .size = sizeof(struct gw_tools), .max = TXN_SPARES };
	}
	t = wd_spare_get(&w->spare_txns);
	if (t == NULL || (t->ans.buf = gw_worker_buf(w)) == NULL) {
		wd_spare_put(&w->spare_txns, t);
		gw_worker_buf_done(w, body);
		gw_reply_error(c, WD_CODE_INTERNAL, NULL, 0, "out of memory");
		return;
	}
	t->state = TXN_ADMIT;
	t->conn = c;
	t->w = w;
	t->req.fmt = fmt;
	t->req.http = req;
	t->req.body = body;
	t->pol.lease = gw_worker_lease(t->w);
	t->pol.snap = t->pol.lease->snap;
	t->pol.creds = t->pol.lease->creds;
	t->audit.log = w->srv->audit;
	t->audit.started_us = wd_mono_us();
	wd_strlcpy(t->audit.reqid, gw_conn_request_id(c),
	    sizeof(t->audit.reqid));
	hooks.arg = t;
	gw_conn_set_hooks(c, &hooks);
	/* Every answer names its decision, so a caller can find the audit
	 * record, however the request ends. */
	wd_random_id(rnd, sizeof(rnd));
	wd_hex(rnd, sizeof(rnd), t->pol.dec.id);
	t->pol.hdrs[0] = (struct gw_out_hdr){ "X-Warden-Decision", t->pol.dec.id };
	t->pol.hdrs[1] = (struct gw_out_hdr){ "X-Warden-Policy-Version",
		t->pol.snap->version };
	gw_conn_set_answer_headers(c, t->pol.hdrs, 2);
	gw_txn_run(t);
}
