/*
 * txn_answer.c - ANSWER: the transfer of an attempt ended; read how, and
 * end the transaction with what the client gets (a whole answer, the end
 * of its stream, an error), or go back to ATTEMPT for the next route
 * while nothing went out yet.
 *
 * A whole answer of an agent is read strictly by the request's format,
 * its calls checked, and what goes out is the format's serialization of
 * what was checked (agent_answer.c); other answers go out as the provider
 * sent them, once they are known to be JSON objects.
 */
#include "gateway/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole answer of status goes out (once it is recorded). */
static enum txn_state
whole(struct txn *t, int status)
{
	/* The answer detectors read exactly what would go out. */
	if (status >= 200 && status < 300 && !gw_txn_answer_clean(t,
	    (const char *)evbuffer_pullup(t->ans.buf, -1),
	    evbuffer_get_length(t->ans.buf), true)) {
		t->audit.refused_late = true;
		gw_txn_error(t, t->pol.deny.id, "%s", t->pol.deny.message);
		t->end.name = t->pol.deny.code;
		return TXN_END;
	}
	if (t->ans.hmac != NULL)
		aud_hmac_update(t->ans.hmac, evbuffer_pullup(t->ans.buf, -1),
		    evbuffer_get_length(t->ans.buf));
	t->end.reason = TXN_END_WHOLE;
	t->end.status = status;
	t->end.code = WD_CODE_NONE;
	return TXN_END;
}

/* The stream ended: an agent's must have ended as it should. */
static enum txn_state
stream_done(struct txn *t)
{
	struct evbuffer *out;
	bool ok = true;

	if (txn_checked(t)) {
		out = evbuffer_new();
		ok = out != NULL && gw_agent_stream_end(t->ans.astream,
		    t->ans.buf, out, &t->pol.deny);
		if (out != NULL)
			evbuffer_add_buffer(t->ans.buf, out);
		evbuffer_free(out);
		if (!ok) {
			wd_warn("request %s: provider '%s': %s", t->audit.reqid,
			    t->up.route->id, t->pol.deny.message);
			return gw_txn_stream_error(t, WD_CODE_UPSTREAM_ERROR,
			    t->pol.deny.message);
		}
	}
	/* The rest (an unterminated last event) passes the answer detectors
	 * like every event before it. */
	if (evbuffer_get_length(t->ans.buf) > 0 && !gw_txn_answer_clean(t,
	    (const char *)evbuffer_pullup(t->ans.buf, -1),
	    evbuffer_get_length(t->ans.buf), false)) {
		evbuffer_drain(t->ans.buf, evbuffer_get_length(t->ans.buf));
		t->audit.refused_late = true;
		gw_txn_stream_error(t, t->pol.deny.id, t->pol.deny.message);
		t->end.name = t->pol.deny.code;
		return TXN_END;
	}
	gw_txn_note_stream(t, t->ans.buf);
	t->end.reason = TXN_END_STREAM;
	t->end.status = 200;
	t->end.code = WD_CODE_NONE;
	return TXN_END;
}

/* The stream broke off after it began. */
static enum txn_state
stream_broke(struct txn *t)
{
	struct txn_attempt *a = &t->up;
	char msg[384];

	if (a->cut == TXN_CUT_AUDIT) {
		wd_warn("request %s: the audit log failed mid-stream; the stream "
		    "stops", t->audit.reqid);
		return gw_txn_stream_error(t, WD_CODE_AUDIT_UNAVAILABLE, "the "
		    "audit log cannot be written; the rest of this answer is "
		    "withheld");
	}
	if (a->cut == TXN_CUT_TOOLS) {
		t->audit.refused_late = true;
		wd_warn("request %s: %s", t->audit.reqid, t->pol.deny.message);
		gw_txn_stream_error(t, t->pol.deny.id, t->pol.deny.message);
		t->end.name = t->pol.deny.code;
		return TXN_END;
	}
	if (a->err == WD_OK && a->body != NULL && t->ans.conv != NULL &&
	    (t->ans.conv->npending > 0 || !t->ans.conv->done)) {
		/* A Converse stream that ended inside a frame or before its
		 * last event was cut short: not a complete answer. */
		a->err = WD_EUPSTREAM;
		snprintf(a->detail, sizeof(a->detail), "the event stream ended "
		    "before its last event");
	}
	/* An agent's stream is complete at [DONE], whatever came after. */
	if ((t->ans.astream != NULL && t->ans.astream->done) ||
	    a->err == WD_OK)
		return stream_done(t);
	snprintf(msg, sizeof(msg), "the stream from provider '%s' broke off: %s",
	    a->route->id, a->cut == TXN_CUT_TOO_BIG ?
	    "an event exceeded upstream.max_sse_event_bytes" : a->detail);
	wd_warn("request %s: %s", t->audit.reqid, msg);
	return gw_txn_stream_error(t, a->err == WD_ETIMEOUT ?
	    WD_CODE_UPSTREAM_TIMEOUT : WD_CODE_UPSTREAM_ERROR, msg);
}

/*
 * An agent's whole answer: read strictly, its calls checked, and what goes
 * out is warden's serialization of what was checked; an error answer
 * carries its error object only.  Anything unreadable is a 502.
 */
static enum txn_state
agent_whole(struct txn *t)
{
	const char *text = (const char *)evbuffer_pullup(t->ans.buf, -1);
	size_t len = evbuffer_get_length(t->ans.buf);
	const struct txn_attempt *a = &t->up;
	struct evbuffer *out;
	struct gw_tools_deny d;

	if (a->status == 401 || a->status == 403)
		return gw_txn_error(t, WD_CODE_UPSTREAM_AUTH, "provider '%s' "
		    "refused warden's credential (status %d)", a->route->id,
		    a->status);
	/* A stream request answered with a whole answer (a 2xx other than
	 * 200, or not SSE): not what the client reads, so not relayed. */
	if (t->req.chat.stream && a->status >= 200 && a->status < 300) {
		gw_txn_error(t, WD_CODE_BAD_UPSTREAM_RESPONSE, "provider '%s' "
		    "answered a stream request with status %d and Content-Type "
		    "'%.60s'", a->route->id, a->status, a->ctype);
		wd_warn("request %s: %s", t->audit.reqid, t->end.msg);
		return TXN_END;
	}
	if ((out = evbuffer_new()) == NULL)
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	if (!gw_agent_answer(t->req.fmt, t->pol.tools, a->status, text, len,
	    out, &t->ans.usage, &d)) {
		evbuffer_free(out);
		if (d.status == 403)
			return gw_txn_refuse(t, &d);
		gw_txn_error(t, d.id, "provider '%s': %s", a->route->id,
		    d.message);
		wd_warn("request %s: %s", t->audit.reqid, t->end.msg);
		return TXN_END;
	}
	evbuffer_drain(t->ans.buf, len);
	evbuffer_add_buffer(t->ans.buf, out);
	evbuffer_free(out);
	return whole(t, a->status);
}

/*
 * A whole answer for a caller without tool policy: a JSON object, or
 * an error the provider explained.  It goes out as the provider sent it,
 * so it is scanned, not parsed: only its usage becomes a tree.
 */
static enum txn_state
plain_whole(struct txn *t)
{
	const char *text = (const char *)evbuffer_pullup(t->ans.buf, -1);
	size_t len = evbuffer_get_length(t->ans.buf);
	const struct txn_attempt *a = &t->up;
	struct gw_json_top top;
	bool obj = len > 0 && gw_json_scan_answer(text, len, &top) &&
	    top.object;

	if (a->status >= 200 && a->status < 300) {
		if (!obj)
			return gw_txn_error(t, WD_CODE_BAD_UPSTREAM_RESPONSE,
			    "provider '%s' answered with something that is not "
			    "a JSON object", a->route->id);
	} else if (a->status == 401 || a->status == 403) {
		/* The provider refused *our* credential: the caller's key is
		 * fine, so this is a gateway-side failure. */
		return gw_txn_error(t, WD_CODE_UPSTREAM_AUTH, "provider '%s' "
		    "refused warden's credential (status %d)", a->route->id,
		    a->status);
	} else if (!obj || top.error.kind != '{') {
		return gw_txn_error(t, WD_CODE_UPSTREAM_ERROR, "provider '%s' "
		    "answered status %d", a->route->id, a->status);
	}
	/* Its usage: kept as text when short (the scan read it strictly),
	 * a tree otherwise. */
	if (top.usage.kind == '{' && top.usage.len <= sizeof(t->ans.usage_text)) {
		memcpy(t->ans.usage_text, top.usage.p, top.usage.len);
		t->ans.usage_len = top.usage.len;
	} else if (top.usage.kind == '{' && (t->ans.usage = gw_json_load(
	    top.usage.p, top.usage.len, 0, NULL)) == NULL) {
		return gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
	}
	return whole(t, a->status);
}

/* A Converse answer, as the chat completion the client asked for; what
 * cannot be read that way is refused (an empty answer is not JSON). */
static void
converse_whole(struct txn *t)
{
	char *chat;
	size_t n;

	if (gw_converse_answer((const char *)evbuffer_pullup(t->ans.buf, -1),
	    evbuffer_get_length(t->ans.buf), t->req.chat.model, t->pol.dec.id,
	    &chat, &n) == WD_OK) {
		evbuffer_drain(t->ans.buf, evbuffer_get_length(t->ans.buf));
		evbuffer_add(t->ans.buf, chat, n);
		free(chat);
	} else {
		evbuffer_drain(t->ans.buf, evbuffer_get_length(t->ans.buf));
	}
}

enum txn_state
gw_txn_answer(struct txn *t)
{
	const struct txn_attempt *a = &t->up;
	enum wd_code code;

	if (a->cut == TXN_CUT_NO_RECORD)
		return gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, "the audit log "
		    "cannot be written; this answer was withheld");
	if (t->ans.streamed)
		return stream_broke(t);
	if (a->cut == TXN_CUT_NOT_SSE && a->err == WD_OK) {
		gw_txn_error(t, WD_CODE_BAD_UPSTREAM_RESPONSE, "provider '%s' "
		    "answered a stream request with Content-Type '%.60s', not "
		    "text/event-stream", a->route->id, a->ctype);
		wd_warn("request %s: %s", t->audit.reqid, t->end.msg);
		return TXN_END;
	}
	if (a->cut == TXN_CUT_TOO_BIG)
		return gw_txn_error(t, WD_CODE_UPSTREAM_TOO_LARGE, "the answer of "
		    "provider '%s' exceeded upstream.max_response_bytes",
		    a->route->id);
	if (a->err == WD_OK && a->status >= 200 && a->status < 300 &&
	    gw_provider_converse(a->route))
		converse_whole(t);
	if (a->err == WD_OK && a->status != 429 && a->status < 500)
		return txn_checked(t) ? agent_whole(t) :
		    plain_whole(t);
	/* This attempt failed before anything went out: the next route, and
	 * this error if there is none. */
	code = a->err == WD_ETIMEOUT ? WD_CODE_UPSTREAM_TIMEOUT :
	    a->err == WD_OK && a->status == 429 ? WD_CODE_UPSTREAM_RATE_LIMITED :
	    WD_CODE_UPSTREAM_ERROR;
	if (a->err == WD_OK)
		gw_txn_error(t, code, "attempt %d: provider '%s' answered status "
		    "%d", a->count, a->route->id, a->status);
	else
		gw_txn_error(t, code, "attempt %d: provider '%s' failed: %s",
		    a->count, a->route->id, a->detail);
	wd_warn("request %s: %s", t->audit.reqid, t->end.msg);
	return TXN_ATTEMPT;
}
