/*
 * txn.c - the transaction's state machine (txn.h): its start, the steps
 * before the provider (admit, read, decide), the one function that moves
 * it, gw_txn_run(), and the one end every transaction goes through,
 * txn_finish().
 *
 * The steps after (attempts and fallback, the answer) are in
 * txn_upstream.c and txn_answer.c; the record in txn_record.c.
 */
#include "gateway/txn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum txn_state
gw_txn_error(struct txn *t, enum wd_code code, const char *fmt, ...)
{
	struct txn_end *e = &t->end;
	va_list ap;

	e->reason = TXN_END_ERROR;
	e->status = wd_errdef(code)->status;
	e->code = code;
	e->param = NULL;
	e->retry_after_s = 0;
	if (fmt == NULL) {
		snprintf(e->msg, sizeof(e->msg), "%s", wd_errdef(code)->message);
	} else {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return TXN_END;
}

enum txn_state
gw_txn_refuse(struct txn *t, const struct gw_tools_deny *d)
{
	t->audit.refused_late = t->pol.decided;
	gw_txn_error(t, d->id, "%s", d->message);
	t->end.retry_after_s = d->retry_after_s;
	return TXN_END;
}

enum txn_state
gw_txn_stream_error(struct txn *t, enum wd_code code, const char *msg)
{
	gw_txn_error(t, code, "%s", msg);
	/* The caller got status 200 and then this error event: the record
	 * says so (status as sent, the error in code). */
	t->end.reason = TXN_END_STREAM_ERROR;
	t->end.status = 200;
	return TXN_END;
}

static const char *
route_id(const struct txn *t)
{
	return t->up.route != NULL ? t->up.route->id : "";
}

/* Metrics count what the client got: a stream's error event as the
 * failure it is. */
static int
metric_status(const struct txn *t)
{
	if (t->end.reason != TXN_END_STREAM_ERROR)
		return t->end.status;
	return wd_errdef(t->end.code)->status == 403 ? 403 : 502;
}

/* The record could not be written: no answer goes out as if it was.
 * The record, amended, waits for the writer's retry (and is not written
 * again). */
static void
withhold(struct txn *t)
{
	switch (t->end.reason) {
	case TXN_END_WHOLE:
		gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, "the audit log "
		    "cannot be written; this answer was withheld");
		break;
	case TXN_END_STREAM:
		evbuffer_drain(t->ans.buf, evbuffer_get_length(t->ans.buf));
		gw_txn_stream_error(t, WD_CODE_AUDIT_UNAVAILABLE, "the audit "
		    "log cannot be written; this answer is not acknowledged");
		break;
	default:
		break;
	}
}

static void
send_end(struct txn *t, struct gw_conn *c)
{
	struct txn_end *e = &t->end;
	char ra[16];
	struct gw_out_hdr h[1];
	struct evbuffer *ev;

	switch (e->reason) {
	case TXN_END_ERROR:
		if (e->code == WD_CODE_INVALID_REQUEST) {
			gw_send_invalid(c, e->param, "%s", e->msg);
			return;
		}
		snprintf(ra, sizeof(ra), "%d", e->retry_after_s);
		h[0] = (struct gw_out_hdr){ "Retry-After", ra };
		gw_reply_error(c, e->code, h, e->retry_after_s > 0 ? 1 : 0,
		    "%s", e->msg);
		return;
	case TXN_END_WHOLE:
		h[0] = (struct gw_out_hdr){ "X-Warden-Route", route_id(t) };
		gw_respond(c, e->status, "application/json", h, 1,
		    evbuffer_pullup(t->ans.buf, -1),
		    evbuffer_get_length(t->ans.buf));
		return;
	case TXN_END_STREAM:
		/* What is left (the held [DONE], an unterminated last event)
		 * goes out only now that the record is written. */
		if (evbuffer_get_length(t->ans.buf) > 0)
			gw_respond_chunk_buf(c, t->ans.buf);
		gw_respond_end(c, false);
		return;
	case TXN_END_STREAM_ERROR:
		if ((ev = evbuffer_new()) != NULL) {
			evbuffer_add_printf(ev, "event: error\ndata: ");
			gw_error_json(ev, e->code, e->msg);
			evbuffer_add(ev, "\n\n", 2);
			gw_respond_chunk_buf(c, ev);
			evbuffer_free(ev);
		}
		gw_respond_end(c, true);
		return;
	case TXN_END_GONE:
		return;
	}
}

/*
 * Every end comes here, once: the record before any answer it describes,
 * metrics, the session settled, the transfer and the connection let go,
 * the answer, and the memory.
 */
static void
txn_finish(struct txn *t)
{
	struct gw_conn *c = t->conn;
	char scratch[AUD_HASH_HEX + 1];

	if (t->end.reason == TXN_END_WHOLE && t->audit.log != NULL &&
	    !aud_healthy(t->audit.log))
		gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, NULL);
	if (gw_txn_record(t) != WD_OK)
		withhold(t);
	gw_metrics_request(route_id(t), metric_status(t));
	if ((t->end.reason == TXN_END_WHOLE && t->end.status >= 200 &&
	    t->end.status < 300) || t->end.reason == TXN_END_STREAM)
		gw_tools_commit(&t->pol.tools, t->end.reason == TXN_END_STREAM);
	if (t->up.xfer != NULL)
		gw_up_abort(t->up.xfer);
	t->conn = NULL;
	if (c != NULL) {
		gw_conn_set_hooks(c, NULL);
		send_end(t, c);
	}
	gw_tools_clear(&t->pol.tools);
	gw_chat_clear(&t->req.chat);
	if (t->req.body != NULL)
		evbuffer_free(t->req.body);
	if (t->ans.buf != NULL)
		evbuffer_free(t->ans.buf);
	if (t->ans.copy != NULL)
		evbuffer_free(t->ans.copy);
	if (t->ans.hmac != NULL)
		aud_hmac_final(t->ans.hmac, scratch);
	json_decref(t->audit.attempts);
	json_decref(t->ans.usage);
	gw_creds_unref(t->pol.creds);
	pol_snapshot_unref(t->pol.snap);
	free(t);
}

/* ADMIT: nothing goes out that cannot be recorded; then who is asking. */
static enum txn_state
step_admit(struct txn *t)
{
	if (t->audit.log != NULL && !aud_healthy(t->audit.log))
		return gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, NULL);
	t->req.tenant = gw_auth(t->pol.snap, gw_http_header(t->req.http,
	    "authorization"), &t->req.caller);
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
	};
	char id[sizeof(p->dec.id)], msg[96];
	struct gw_tools_deny d;

	if (!policy_headers_once(req, msg, sizeof(msg)))
		return gw_txn_error(t, WD_CODE_DUPLICATE_POLICY_HEADER, "%s",
		    msg);
	memcpy(id, p->dec.id, sizeof(id));
	if (pol_decide(p->snap, &f, &p->dec) != WD_OK)
		return gw_txn_error(t, WD_CODE_INTERNAL,
		    "policy evaluation failed");
	memcpy(p->dec.id, id, sizeof(id));
	p->decided = true;
	if (p->dec.keep >= POL_KEEP_HASH && t->audit.log != NULL) {
		aud_payload_digest(t->audit.log, evbuffer_pullup(t->req.body, -1),
		    evbuffer_get_length(t->req.body), t->audit.req_hmac);
		t->ans.hmac = aud_hmac_new(t->audit.log);
	}
	if (p->dec.verdict == POL_DENY)
		return gw_txn_error(t, p->dec.ecode, "%s", p->dec.message);
	t->up.cand = p->dec.routes;
	t->up.ncand = p->dec.nroutes;
	switch (gw_tools_request(&p->tools, p->snap, t->req.tenant,
	    &t->req.caller, req, t->req.chat.root, &d)) {
	case GW_TOOLS_DENY:
		return gw_txn_refuse(t, &d);
	case GW_TOOLS_MODIFIED:
		if (!rewrite_body(t->req.body, t->req.chat.root))
			return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
		p->dec.verdict = POL_MODIFY;
		break;
	case GW_TOOLS_OK:
		break;
	}
	/* What ends the transaction if no route is left to try. */
	gw_txn_error(t, WD_CODE_UPSTREAM_ERROR, "no route");
	return TXN_ATTEMPT;
}

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
			t->state = gw_txn_attempt(t);
			break;
		case TXN_UPSTREAM:
		case TXN_STREAMING:
			return;		/* curl calls txn_upstream.c back */
		case TXN_ANSWER:
			t->state = gw_txn_answer(t);
			break;
		case TXN_END:
			txn_finish(t);
			return;
		}
	}
}

static void
client_gone(void *arg)
{
	struct txn *t = arg;

	t->conn = NULL;
	/* The attempt in flight ends here: it belongs in the record. */
	if (t->up.xfer != NULL && t->up.route != NULL)
		json_array_append_new(t->audit.attempts, t->up.status ?
		    json_pack("{s:s,s:i,s:s}", "route", t->up.route->id, "status",
		    t->up.status, "error", "client_gone") : json_pack("{s:s,s:s}",
		    "route", t->up.route->id, "error", "client_gone"));
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
	unsigned char rnd[16];
	struct txn *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->ans.buf = evbuffer_new()) == NULL) {
		free(t);
		evbuffer_free(body);
		gw_reply_error(c, WD_CODE_INTERNAL, NULL, 0, "out of memory");
		return;
	}
	t->state = TXN_ADMIT;
	t->conn = c;
	t->req.fmt = fmt;
	t->req.http = req;
	t->req.body = body;
	gw_server_acquire(gw_conn_worker(c)->srv, &t->pol.snap, &t->pol.creds);
	t->audit.log = gw_conn_worker(c)->srv->audit;
	t->audit.started_us = wd_mono_us();
	t->audit.attempts = json_array();
	snprintf(t->audit.reqid, sizeof(t->audit.reqid), "%s",
	    gw_conn_request_id(c));
	hooks.arg = t;
	gw_conn_set_hooks(c, &hooks);
	/* Every answer names its decision, so a caller can find the audit
	 * record, however the request ends. */
	wd_random(rnd, sizeof(rnd));
	wd_hex(rnd, sizeof(rnd), t->pol.dec.id);
	t->pol.hdrs[0] = (struct gw_out_hdr){ "X-Warden-Decision", t->pol.dec.id };
	t->pol.hdrs[1] = (struct gw_out_hdr){ "X-Warden-Policy-Version",
		t->pol.snap->version };
	gw_conn_set_answer_headers(c, t->pol.hdrs, 2);
	gw_txn_run(t);
}
