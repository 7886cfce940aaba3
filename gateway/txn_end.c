/*
 * txn_end.c - how a transaction ends: the steps say how (gw_txn_error,
 * gw_txn_refuse, gw_txn_stream_error, or an answer in t->end), and
 * gw_txn_finish(), which the machine (txn.c) calls exactly once, does it:
 * the record before any answer it describes, metrics, the session
 * settled, the transfer and the connection let go, the answer, the
 * memory (relayd: relay_close).
 */
#include "gateway/txn.h"
#include "gateway/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum txn_state
gw_txn_error(struct txn *t, enum wd_code code, const char *fmt, ...)
{
	struct txn_end *e = &t->end;
	va_list ap;

	e->reason = TXN_END_ERROR;
	e->status = wd_errdef(code)->status;
	e->code = code;
	e->name = NULL;
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
	t->end.name = d->code;
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

/* A Responses answer: which route holds it, for previous_response_id. */
static void
remember_response(struct txn *t)
{
	json_t *j = NULL;
	const char *id;

	if (t->req.fmt != &gw_format_responses || t->up.route == NULL ||
	    t->req.tenant == NULL)
		return;
	if (t->end.reason == TXN_END_STREAM) {
		if (t->ans.astream == NULL)
			return;
		id = t->ans.astream->fs.resp_id;
	} else {
		j = json_loadb((const char *)evbuffer_pullup(t->ans.buf, -1),
		    evbuffer_get_length(t->ans.buf), 0, NULL);
		id = json_string_value(json_object_get(j, "id"));
	}
	if (id != NULL && *id != '\0')
		(void)gw_store()->response_put(t->req.tenant->id, id,
		    t->up.route->id);
	json_decref(j);
}

/* The code on the wire: a family's member by name, else the catalogue's. */
static const char *
end_wire_code(const struct txn_end *e)
{
	return e->name != NULL && wd_errdef(e->code)->family ? e->name :
	    wd_code_wire(e->code);
}

/* Anthropic callers get Anthropic's error shape (fmt_messages.c). */
static void
send_format_error(struct txn *t, struct gw_conn *c, struct gw_out_hdr *h,
    size_t nh)
{
	const struct txn_end *e = &t->end;
	const struct wd_errdef *d = wd_errdef(e->code);
	json_t *j = t->req.fmt->error_body(d->status, d->type, end_wire_code(e),
	    e->msg);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	gw_respond(c, d->status, "application/json", h, nh, text ? text : "{}",
	    text ? strlen(text) : 2);
	free(text);
	json_decref(j);
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
		if (t->req.fmt->api == POL_API_MESSAGES) {
			snprintf(ra, sizeof(ra), "%d", e->retry_after_s);
			h[0] = (struct gw_out_hdr){ "Retry-After", ra };
			send_format_error(t, c, h, e->retry_after_s > 0 ? 1 : 0);
			return;
		}
		if (e->code == WD_CODE_INVALID_REQUEST) {
			gw_send_invalid(c, e->param, "%s", e->msg);
			return;
		}
		snprintf(ra, sizeof(ra), "%d", e->retry_after_s);
		h[0] = (struct gw_out_hdr){ "Retry-After", ra };
		gw_reply_error_named(c, e->code, e->name, h,
		    e->retry_after_s > 0 ? 1 : 0, "%s", e->msg);
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
			if (t->req.fmt == &gw_format_chat) {
				evbuffer_add_printf(ev, "event: error\ndata: ");
				gw_error_json_named(ev, e->code, e->name, e->msg);
				evbuffer_add(ev, "\n\n", 2);
			} else {
				/* Each format's own error event. */
				t->req.fmt->error_event(ev, wd_errdef(e->code)->type,
				    end_wire_code(e), e->msg);
			}
			gw_respond_chunk_buf(c, ev);
			evbuffer_free(ev);
		}
		gw_respond_end(c, true);
		return;
	case TXN_END_GONE:
		return;
	}
}

/* What comes before the record: the log's health, the limits settled,
 * the transfer let go. */
static void
finish_before_record(struct txn *t)
{
	if (t->end.reason == TXN_END_WHOLE && t->audit.log != NULL &&
	    !aud_healthy(t->audit.log))
		gw_txn_error(t, WD_CODE_AUDIT_UNAVAILABLE, NULL);
	/* Limits: what a request that was answered spent (the provider's
	 * usage) replaces its reservation; one that failed gives it back.
	 * Before the record, which says which. */
	if ((t->end.reason == TXN_END_WHOLE && t->end.status >= 200 &&
	    t->end.status < 300) || t->end.reason == TXN_END_STREAM ||
	    t->ans.streamed)
		gw_limits_settle(t->lim.l, t->lim.l != NULL ? gw_txn_usage(t) :
		    NULL);
	else
		gw_limits_release(t->lim.l);
	if (t->up.xfer != NULL) {
		gw_up_abort(t->up.xfer);
		t->up.xfer = NULL;
	}
}

static void finish_after_record(struct txn *t, enum wd_err rc);

/*
 * Every end comes here, once (from gw_txn_run's END).  Inside a turn of
 * the worker's loop a transaction that is not a stream waits for the
 * turn's end, where the records of all that ended in it are written with
 * one write() (gw_txn_flush_ended); its answer still goes only after its
 * record.
 */
void
gw_txn_finish(struct txn *t)
{
	struct gw_worker *w = t->conn != NULL ? gw_conn_worker(t->conn) : NULL;

	finish_before_record(t);
	if (w != NULL && w->turns && !t->audit.stream_opened) {
		t->end.queued = true;
		t->end.next = NULL;
		if (w->ended == NULL)
			w->ended = t;
		else
			*w->ended_tail = t;
		w->ended_tail = &t->end.next;
		return;
	}
	finish_after_record(t, gw_txn_record(t));
}

void
gw_txn_flush_ended(struct gw_worker *w)
{
	/* First the provider requests the turn started (together: the
	 * provider finds them queued); then the records and answers.
	 * Answers sent here may start more work (a pipelined request): its
	 * request goes, or its end joins the list, on the next round. */
	for (;;) {
		struct txn *ts[AUD_APPEND_MAX];
		enum wd_err rcs[AUD_APPEND_MAX];
		size_t n = 0;

		gw_up_turn_end(w->up);
		if (w->ended == NULL)
			break;
		while (w->ended != NULL && n < AUD_APPEND_MAX) {
			ts[n] = w->ended;
			w->ended = ts[n]->end.next;
			ts[n++]->end.next = NULL;
		}
		gw_txn_record_many(ts, n, rcs);
		/* Each stays queued (a client that leaves only lets go of
		 * it) until its own end runs. */
		for (size_t i = 0; i < n; i++) {
			ts[i]->end.queued = false;
			finish_after_record(ts[i], rcs[i]);
		}
	}
}

/* The rest: metrics, tools, the answer, and t freed. */
static void
finish_after_record(struct txn *t, enum wd_err rc)
{
	struct gw_conn *c = t->conn;
	char scratch[AUD_HASH_HEX + 1];

	if (rc != WD_OK)
		withhold(t);
	gw_metrics_request(route_id(t), metric_status(t));
	if ((t->end.reason == TXN_END_WHOLE && t->end.status >= 200 &&
	    t->end.status < 300) || t->end.reason == TXN_END_STREAM) {
		if (t->pol.tools != NULL)
			gw_tools_commit(t->pol.tools,
			    t->end.reason == TXN_END_STREAM);
		remember_response(t);
	}
	t->conn = NULL;
	if (c != NULL) {
		gw_conn_set_hooks(c, NULL);
		send_end(t, c);
	}
	if (t->pol.tools != NULL)
		gw_tools_clear(t->pol.tools);
	wd_spare_put(&t->w->spare_tools, t->pol.tools);
	free(t->ans.astream);
	free(t->lim.l);
	gw_detect_clear(&t->req.det);
	gw_detect_answer_clear(&t->ans.det);
	gw_chat_clear(&t->req.chat);
	gw_worker_buf_done(t->w, t->req.body);
	gw_worker_buf_done(t->w, t->ans.buf);
	if (t->ans.copy != NULL)
		evbuffer_free(t->ans.copy);
	if (t->ans.hmac != NULL)
		aud_hmac_final(t->ans.hmac, scratch);
	free(t->up.body);
	if (t->ans.conv != NULL) {
		gw_converse_stream_clear(t->ans.conv);
		free(t->ans.conv);
	}
	gw_txn_attempts_clear(t);
	json_decref(t->ans.usage);
	gw_lease_done(t->pol.lease);
	wd_spare_put(&t->w->spare_txns, t);
}
