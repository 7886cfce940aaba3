/*
 * proxy.c - one chat completions transaction: authenticate the caller,
 * validate the body, pick a route, forward with the route's credential,
 * and relay the answer (whole, or streamed event by event).
 *
 * struct txn owns everything of the request from dispatch until the end:
 * the snapshot reference, the body, the upstream transfer and the answer
 * buffers.  It ends exactly once, in txn_end(), after an answer was sent
 * or the client left.
 *
 * Fallback: before a single byte of an answer went to the client, a
 * failed attempt (connect error, timeout, 5xx, 429) moves on to the next
 * route of the tenant that serves the model, up to upstream.max_attempts.
 */
#include "gateway/txn.h"
#include "gateway/provider.h"
#include "secrets/sec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Pause the provider when this much is waiting to go to the client. */
#define OUT_HIGH_MARK (256u << 10)

static void try_next(struct txn *t, const char *why, int status, const char *type,
    const char *code);

static void
txn_end(struct txn *t)
{
	gw_txn_record(t);		/* if no answer path did (client gone) */
	if (t->xfer != NULL)
		gw_up_abort(t->xfer);
	if (t->conn != NULL)
		gw_conn_set_hooks(t->conn, NULL);
	gw_tools_clear(&t->tools);
	gw_detect_clear(&t->det);
	gw_detect_answer_clear(&t->det_ans);
	gw_chat_clear(&t->chat);
	if (t->body != NULL)
		evbuffer_free(t->body);
	if (t->resp != NULL)
		evbuffer_free(t->resp);
	if (t->resp_hmac != NULL) {
		char scratch[AUD_HASH_HEX + 1];

		aud_hmac_final(t->resp_hmac, scratch);
	}
	json_decref(t->attempt_log);
	json_decref(t->usage);
	free(t->up_body);
	if (t->conv != NULL) {
		gw_converse_stream_clear(t->conv);
		free(t->conv);
	}
	if (t->stream_copy != NULL)
		evbuffer_free(t->stream_copy);
	gw_creds_unref(t->creds);
	pol_snapshot_unref(t->snap);
	free(t);
}

static void
client_gone(void *arg)
{
	struct txn *t = arg;

	t->conn = NULL;
	t->final_status = 499;
	t->final_code = "client_gone";
	/* The attempt in flight ends here: it belongs in the record. */
	if (t->xfer != NULL && t->route != NULL)
		json_array_append_new(t->attempt_log, t->up_status ? json_pack(
		    "{s:s,s:i,s:s}", "route", t->route->id, "status", t->up_status,
		    "error", "client_gone") : json_pack("{s:s,s:s}", "route",
		    t->route->id, "error", "client_gone"));
	gw_metrics_request(t->route ? t->route->id : "", 499);
	txn_end(t);
}

static void
client_drained(void *arg)
{
	struct txn *t = arg;

	if (t->xfer != NULL)
		gw_up_resume(t->xfer);
}

static const char *
route_id(const struct txn *t)
{
	return t->route != NULL ? t->route->id : "";
}

/* End with an error answer; retry_after_s > 0 adds Retry-After. */
static void
fail_retry(struct txn *t, int status, const char *type, const char *code,
    const char *msg, int retry_after_s)
{
	struct gw_conn *c = t->conn;
	char ra[16];
	struct gw_out_hdr h[1] = { { "Retry-After", ra } };

	gw_metrics_request(route_id(t), status);
	t->final_status = status;
	t->final_code = code;
	gw_txn_record(t);		/* an error goes out either way */
	t->conn = NULL;
	gw_conn_set_hooks(c, NULL);
	snprintf(ra, sizeof(ra), "%d", retry_after_s);
	gw_send_error_hdr(c, status, h, retry_after_s > 0 ? 1 : 0, type, code,
	    "%s", msg);
	txn_end(t);
}

static void
fail(struct txn *t, int status, const char *type, const char *code,
    const char *msg)
{
	fail_retry(t, status, type, code, msg, 0);
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

static void
fail_tools(struct txn *t, const struct gw_tools_deny *d)
{
	t->refused_late = t->decided;
	fail_retry(t, d->status, d->status == 403 ? "policy_violation" :
	    d->status == 429 ? "rate_limit_exceeded" : d->status >= 500 ?
	    "server_error" : "invalid_request_error", d->code, d->message,
	    d->retry_after_s);
}

/* Is the Content-Type want, parameters allowed? */
static bool
ctype_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	if (ctype == NULL || strncasecmp(ctype, want, n) != 0)
		return false;
	ctype += n;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	return *ctype == '\0' || *ctype == ';';
}

static void
on_head(void *arg, int status, const char *ctype)
{
	struct txn *t = arg;
	struct gw_out_hdr h[2 + 7] = {
		{ "Cache-Control", "no-cache" },
		{ "X-Warden-Route", t->route->id },
	};

	t->up_status = status;
	snprintf(t->up_ctype, sizeof(t->up_ctype), "%s",
	    ctype ? ctype : "application/json");
	gw_metrics_upstream(t->route->id, wd_mono_us() - t->attempt_us);
	if (!t->chat.stream || status != 200)
		return;
	/* An agent's stream is read as SSE (a Converse route's as AWS
	 * event-stream frames, translated to SSE): an answer that says it is
	 * something else is not read at all (on_done refuses it). */
	if (t->tools.agent != NULL && !ctype_is(ctype, t->conv != NULL ?
	    "application/vnd.amazon.eventstream" : "text/event-stream")) {
		t->bad_ctype = true;
		return;
	}
	/* Records before answers: the decision's record is written (durable
	 * as the log's durability says) before the first byte of the stream.
	 * If it cannot be, nothing goes out: on_data stops the transfer and
	 * on_done answers 503.  (A callback of curl's cannot end the
	 * transfer itself.) */
	t->final_status = 200;
	if (gw_txn_record_stream(t) != WD_OK) {
		t->open_failed = true;
		return;
	}
	/* Streams go out as they come: headers now, events as they end. */
	t->streaming = true;
	memcpy(h + 2, t->lim_hdrs, t->nlim_hdrs * sizeof(*h));
	gw_respond_start(t->conn, 200, "text/event-stream", h, 2 + t->nlim_hdrs);
}

/* What a stream sends: into the response digest, and its usage chunk. */
static void
note_stream_bytes(struct txn *t, struct evbuffer *out)
{
	size_t len;
	const char *p, *u;

	/* The usage chunk the client did not ask for (limits asked for it)
	 * is taken out before anything counts what goes out. */
	if (t->strip_usage)
		gw_limits_stream_usage(out, true, &t->usage);
	len = evbuffer_get_length(out);
	p = (const char *)evbuffer_pullup(out, -1);
	if (len == 0)
		return;
	if (t->resp_hmac != NULL)
		aud_hmac_update(t->resp_hmac, p, len);
	/* keep: full stores the stream too, up to 1 MiB. */
	if (t->decided && t->dec.keep == POL_KEEP_FULL &&
	    (t->stream_copy != NULL || (t->stream_copy = evbuffer_new()) != NULL) &&
	    evbuffer_get_length(t->stream_copy) + len <= (1u << 20))
		evbuffer_add(t->stream_copy, p, len);
	/* OpenAI sends usage in a chunk of its own near the end. */
	u = memmem(p, len, "\"usage\":{", 9);
	if (u != NULL) {
		const char *start = u, *end;

		while (start > p && start[-1] != '\n')
			start--;
		end = memchr(u, '\n', len - (size_t)(u - p));
		if (end != NULL && end - start > 6 && strncmp(start, "data: ", 6) == 0) {
			json_t *j = json_loadb(start + 6, (size_t)(end - start - 6), 0,
			    NULL);

			if (json_is_object(json_object_get(j, "usage"))) {
				json_decref(t->usage);
				t->usage = json_incref(json_object_get(j, "usage"));
			}
			json_decref(j);
		}
	}
}

/*
 * The content detectors that watch answers, on one event (or the whole
 * answer); false when one fired (or cannot run): t->tool_deny says why,
 * never what was found.
 */
static bool
answer_clean(struct txn *t, const char *ev, size_t n, bool whole)
{
	int fired;

	if (t->det_ans.scan == NULL)
		return true;
	if (gw_detect_answer_piece(&t->det_ans, ev, n, whole, &fired) != WD_OK) {
		t->tool_deny.status = 503;
		t->tool_deny.code = "detector_unavailable";
		snprintf(t->tool_deny.message, sizeof(t->tool_deny.message),
		    "content detection cannot run on this answer; it was ended");
		return false;
	}
	if (fired < 0)
		return true;
	gw_metrics_detect(t->snap->detect.d[fired].id, "answer", 1);
	t->tool_deny.status = 403;
	t->tool_deny.code = t->snap->detect.d[fired].code;
	snprintf(t->tool_deny.message, sizeof(t->tool_deny.message), "the answer "
	    "contains what detector '%s' looks for; it was not passed on",
	    t->snap->detect.d[fired].id);
	return false;
}

/* How much of the first complete bytes of acc comes before a
 * "data: [DONE]" line. */
static size_t
before_done(struct evbuffer *acc, size_t complete)
{
	static const char done[] = "data: [DONE]";
	const char *p;
	size_t off = 0;

	if (complete < sizeof(done) - 1)
		return complete;
	p = (const char *)evbuffer_pullup(acc, (ev_ssize_t)complete);
	while (off + sizeof(done) - 1 <= complete) {
		const char *hit = memmem(p + off, complete - off, done,
		    sizeof(done) - 1);

		if (hit == NULL)
			break;
		if (hit == p || hit[-1] == '\n' || hit[-1] == '\r')
			return (size_t)(hit - p);
		off = (size_t)(hit - p) + 1;
	}
	return complete;
}

static size_t
on_data(void *arg, const char *data, size_t len)
{
	struct txn *t = arg;
	const struct pol_upstream *u = &t->snap->upstream;
	size_t complete;
	enum wd_err rc;

	if (t->open_failed)
		return 0;		/* no record, no answer */
	if (!t->streaming) {
		if (evbuffer_get_length(t->resp) + len > u->max_response_bytes) {
			t->too_big = true;
			return 0;
		}
		evbuffer_add(t->resp, data, len);
		return len;
	}
	if (t->astream.done)
		return 0;		/* bytes after [DONE]: the end, now */
	if (gw_conn_pending(t->conn) > OUT_HIGH_MARK)
		return GW_UP_PAUSE;
	/* The log failed since the stream began: what follows could not be
	 * recorded as sent, so it is not sent (on_done ends the stream with
	 * the error event). */
	if (t->audit != NULL && !aud_healthy(t->audit)) {
		t->audit_failed = true;
		return 0;
	}
	rc = gw_sse_feed(&t->sse, t->resp, data, len, u->max_sse_event_bytes,
	    &complete);
	if (rc != WD_OK) {
		t->too_big = true;
		return 0;
	}
	if (complete > 0) {
		struct evbuffer *out = evbuffer_new();
		bool go_on = true;

		if (out == NULL)
			return 0;
		if (t->tools.agent == NULL) {
			/* The stream's own end marker waits until the record is
			 * written: a client that saw [DONE] was answered in full. */
			complete = before_done(t->resp, complete);
			evbuffer_remove_buffer(t->resp, out, complete);
		} else {
			/* [DONE] is held the same way: finish_stream sends it. */
			complete = gw_agent_stream_feed(&t->astream, &t->tools,
			    t->resp, complete, out, &go_on, &t->tool_deny);
			t->tool_violation = !go_on && !t->astream.done;
		}
		gw_sse_consumed(&t->sse, complete);
		/* The answer detectors read exactly what is about to go out;
		 * a hit withholds all of it (on_done ends the stream). */
		if (go_on && evbuffer_get_length(out) > 0 && !answer_clean(t,
		    (const char *)evbuffer_pullup(out, -1),
		    evbuffer_get_length(out), false)) {
			evbuffer_free(out);
			t->tool_violation = true;
			return 0;
		}
		/* What passed goes out; after a violation nothing more of the
		 * stream does (on_done ends it with an error event). */
		note_stream_bytes(t, out);
		gw_respond_chunk_buf(t->conn, out);
		evbuffer_free(out);
		if (!go_on)
			return 0;
	}
	return len;
}

/*
 * A Bedrock converse-stream: its event-stream frames become chat chunks
 * (converse.c), which then take the same path as any OpenAI stream:
 * on_data's SSE reader and tool check.  Before the answer streams (an
 * error status) the bytes are buffered as they are.
 */
static size_t
on_data_converse(void *arg, const char *data, size_t len)
{
	struct txn *t = arg;
	char *sse;
	size_t n, rc;

	if (!t->streaming)
		return on_data(arg, data, len);
	if (gw_conn_pending(t->conn) > OUT_HIGH_MARK)
		return GW_UP_PAUSE;
	if (gw_converse_feed(t->conv, data, len, &sse, &n) != WD_OK) {
		t->too_big = true;
		return 0;
	}
	rc = n > 0 ? on_data(arg, sse, n) : n;
	free(sse);
	return rc == n ? len : 0;
}

/* The stream broke after it began: close it with an error event. */
static void
end_stream_with_error(struct txn *t, const char *type, const char *code,
    const char *msg)
{
	struct evbuffer *ev = evbuffer_new();
	struct gw_conn *c = t->conn;

	if (ev != NULL) {
		evbuffer_add_printf(ev, "event: error\ndata: ");
		gw_error_json(ev, type, code, msg);
		evbuffer_add(ev, "\n\n", 2);
		gw_respond_chunk_buf(c, ev);
		evbuffer_free(ev);
	}
	/* The caller got status 200 and then this error event: the record
	 * says so (status as sent, the error in code); metrics count it as
	 * the failure it is. */
	t->final_status = 200;
	t->final_code = code;
	gw_metrics_request(route_id(t), strcmp(type, "policy_violation") == 0 ?
	    403 : 502);
	gw_txn_record(t);
	t->conn = NULL;
	gw_respond_end(c, true);
	txn_end(t);
}

/* An agent's stream ended: false when it did not end as it should (and
 * the client got the error event). */
static bool
agent_stream_end(struct txn *t)
{
	struct evbuffer *out = evbuffer_new();
	bool ok = out != NULL && gw_agent_stream_end(&t->astream, t->resp, out,
	    &t->tool_deny);

	if (out != NULL)
		evbuffer_add_buffer(t->resp, out);
	evbuffer_free(out);
	if (!ok) {
		wd_warn("request %s: provider '%s': %s", gw_conn_request_id(t->conn),
		    t->route->id, t->tool_deny.message);
		end_stream_with_error(t, "server_error", "upstream_error",
		    t->tool_deny.message);
	}
	return ok;
}

static void
finish_stream(struct txn *t)
{
	struct gw_conn *c = t->conn;

	if (t->tools.agent != NULL && !agent_stream_end(t))
		return;
	/* The rest (an unterminated last event) passes the answer
	 * detectors like every event before it. */
	if (evbuffer_get_length(t->resp) > 0 && !answer_clean(t,
	    (const char *)evbuffer_pullup(t->resp, -1),
	    evbuffer_get_length(t->resp), false)) {
		evbuffer_drain(t->resp, evbuffer_get_length(t->resp));
		t->refused_late = true;
		end_stream_with_error(t, t->tool_deny.status == 403 ?
		    "policy_violation" : "server_error", t->tool_deny.code,
		    t->tool_deny.message);
		return;
	}
	/* What is left (the held [DONE], an unterminated last event) goes
	 * out only once the record is written. */
	note_stream_bytes(t, t->resp);
	t->final_status = 200;
	if (gw_txn_record(t) != WD_OK) {
		/* Not recorded: the stream must not end as if it had. */
		evbuffer_drain(t->resp, evbuffer_get_length(t->resp));
		end_stream_with_error(t, "server_error", "audit_unavailable",
		    "the audit log cannot be written; this answer is not "
		    "acknowledged");
		return;
	}
	if (evbuffer_get_length(t->resp) > 0)
		gw_respond_chunk_buf(c, t->resp);
	gw_metrics_request(route_id(t), 200);
	gw_tools_commit(&t->tools, true);
	t->conn = NULL;
	gw_respond_end(c, false);
	txn_end(t);
}

static void finish_agent_answer(struct txn *t);
static void send_buffered(struct txn *t, int status);

static void
finish_buffered(struct txn *t)
{
	const char *text = (const char *)evbuffer_pullup(t->resp, -1);
	size_t len = evbuffer_get_length(t->resp);
	json_t *j = NULL;
	char msg[256];
	int status = t->up_status;

	if (t->tools.agent != NULL) {
		finish_agent_answer(t);
		return;
	}
	if (len > 0)
		j = json_loadb(text, len, 0, NULL);
	if (status >= 200 && status < 300) {
		if (!json_is_object(j)) {
			json_decref(j);
			snprintf(msg, sizeof(msg), "provider '%s' answered with "
			    "something that is not a JSON object", t->route->id);
			fail(t, 502, "server_error", "bad_upstream_response", msg);
			return;
		}
	} else if (status == 401 || status == 403) {
		/* The provider refused *our* credential: the caller's key is
		 * fine, so this is a gateway-side failure. */
		json_decref(j);
		snprintf(msg, sizeof(msg), "provider '%s' refused warden's "
		    "credential (status %d)", t->route->id, status);
		fail(t, 502, "server_error", "upstream_auth", msg);
		return;
	} else if (!json_is_object(j) || !json_is_object(json_object_get(j, "error"))) {
		json_decref(j);
		snprintf(msg, sizeof(msg), "provider '%s' answered status %d",
		    t->route->id, status);
		fail(t, 502, "server_error", "upstream_error", msg);
		return;
	}
	if (json_is_object(json_object_get(j, "usage")))
		t->usage = json_incref(json_object_get(j, "usage"));
	json_decref(j);
	send_buffered(t, status);
}

/*
 * An agent's whole answer: read strictly, its calls checked, and what goes
 * out is warden's serialization of what was checked; an error answer
 * carries its error object only.  Anything unreadable is a 502.
 */
static void
finish_agent_answer(struct txn *t)
{
	const char *text = (const char *)evbuffer_pullup(t->resp, -1);
	size_t len = evbuffer_get_length(t->resp);
	struct evbuffer *out;
	struct gw_tools_deny d;
	char msg[384];

	if (t->up_status == 401 || t->up_status == 403) {
		snprintf(msg, sizeof(msg), "provider '%s' refused warden's "
		    "credential (status %d)", t->route->id, t->up_status);
		fail(t, 502, "server_error", "upstream_auth", msg);
		return;
	}
	/* A stream request answered with a whole answer (a 2xx other than
	 * 200, or not SSE): not what the client reads, so not relayed. */
	if (t->chat.stream && t->up_status >= 200 && t->up_status < 300) {
		snprintf(msg, sizeof(msg), "provider '%s' answered a stream request "
		    "with status %d and Content-Type '%.60s'", t->route->id,
		    t->up_status, t->up_ctype);
		wd_warn("request %s: %s", gw_conn_request_id(t->conn), msg);
		fail(t, 502, "server_error", "bad_upstream_response", msg);
		return;
	}
	if ((out = evbuffer_new()) == NULL) {
		fail(t, 500, "server_error", NULL, "out of memory");
		return;
	}
	if (!gw_agent_answer(&gw_format_chat, &t->tools, t->up_status, text, len,
	    out, &t->usage, &d)) {
		evbuffer_free(out);
		if (d.status == 403) {
			fail_tools(t, &d);
			return;
		}
		snprintf(msg, sizeof(msg), "provider '%s': %s", t->route->id,
		    d.message);
		wd_warn("request %s: %s", gw_conn_request_id(t->conn), msg);
		fail(t, d.status, "server_error", d.code, msg);
		return;
	}
	evbuffer_drain(t->resp, len);
	evbuffer_add_buffer(t->resp, out);
	evbuffer_free(out);
	if (t->up_status >= 200 && t->up_status < 300)
		gw_tools_commit(&t->tools, false);
	send_buffered(t, t->up_status);
}

/* Send t->resp as the answer, once the record is written. */
static void
send_buffered(struct txn *t, int status)
{
	struct gw_out_hdr h[1 + 7] = { { "X-Warden-Route", t->route->id } };
	struct gw_conn *c = t->conn;
	const char *text = (const char *)evbuffer_pullup(t->resp, -1);
	size_t len = evbuffer_get_length(t->resp);

	/* The answer detectors read exactly what would go out. */
	if (status >= 200 && status < 300 && !answer_clean(t, text, len, true)) {
		t->refused_late = true;
		fail(t, t->tool_deny.status, t->tool_deny.status == 403 ?
		    "policy_violation" : "server_error", t->tool_deny.code,
		    t->tool_deny.message);
		return;
	}
	t->final_status = status;
	if (t->resp_hmac != NULL)
		aud_hmac_update(t->resp_hmac, text, len);
	if (t->audit != NULL && !aud_healthy(t->audit)) {
		fail(t, 503, "server_error", "audit_unavailable", "the audit log "
		    "cannot be written; warden refuses traffic until it can");
		return;
	}
	if (gw_txn_record(t) != WD_OK) {
		/* Fail closed: no answer goes out unrecorded.  The record is
		 * queued for the writer's retry; fail() does not record it
		 * again. */
		fail(t, 503, "server_error", "audit_unavailable", "the audit "
		    "log cannot be written; this answer was withheld");
		return;
	}
	gw_metrics_request(route_id(t), status);
	t->conn = NULL;
	memcpy(h + 1, t->lim_hdrs, t->nlim_hdrs * sizeof(*h));
	gw_respond(c, status, "application/json", h, 1 + t->nlim_hdrs, text,
	    len);
	txn_end(t);
}

static void
on_done(void *arg, enum wd_err err, const char *detail)
{
	struct txn *t = arg;
	char msg[384];

	t->xfer = NULL;
	json_array_append_new(t->attempt_log, err == WD_OK ? json_pack("{s:s,s:i}",
	    "route", t->route->id, "status", t->up_status) : json_pack(
	    "{s:s,s:s}", "route", t->route->id, "error", detail));
	if (t->open_failed) {
		fail(t, 503, "server_error", "audit_unavailable", "the audit log "
		    "cannot be written; this answer was withheld");
		return;
	}
	if (t->streaming && t->audit_failed) {
		wd_warn("request %s: the audit log failed mid-stream; the stream "
		    "stops", gw_conn_request_id(t->conn));
		end_stream_with_error(t, "server_error", "audit_unavailable",
		    "the audit log cannot be written; the rest of this answer is "
		    "withheld");
		return;
	}
	if (t->streaming && t->tool_violation) {
		t->refused_late = true;
		wd_warn("request %s: %s", gw_conn_request_id(t->conn),
		    t->tool_deny.message);
		end_stream_with_error(t, t->tool_deny.status == 403 ?
		    "policy_violation" : "server_error", t->tool_deny.code,
		    t->tool_deny.message);
		return;
	}
	if (t->streaming && err == WD_OK && t->up_body != NULL &&
	    t->conv != NULL && (t->conv->npending > 0 || !t->conv->done)) {
		/* A Converse stream that ended inside a frame or before its
		 * last event was cut short: not a complete answer. */
		err = WD_EUPSTREAM;
		detail = "the event stream ended before its last event";
	}
	/* An agent's stream is complete at [DONE], whatever came after. */
	if (t->streaming && t->astream.done) {
		finish_stream(t);
		return;
	}
	if (t->bad_ctype && !t->too_big && err == WD_OK) {
		snprintf(msg, sizeof(msg), "provider '%s' answered a stream request "
		    "with Content-Type '%.60s', not text/event-stream",
		    t->route->id, t->up_ctype);
		wd_warn("request %s: %s", gw_conn_request_id(t->conn), msg);
		fail(t, 502, "server_error", "bad_upstream_response", msg);
		return;
	}
	if (t->streaming) {
		if (err == WD_OK) {
			finish_stream(t);
			return;
		}
		snprintf(msg, sizeof(msg), "the stream from provider '%s' broke "
		    "off: %s", t->route->id, t->too_big ?
		    "an event exceeded upstream.max_sse_event_bytes" : detail);
		wd_warn("request %s: %s", gw_conn_request_id(t->conn), msg);
		end_stream_with_error(t, "server_error", err == WD_ETIMEOUT ?
		    "upstream_timeout" : "upstream_error", msg);
		return;
	}
	if (t->too_big) {
		snprintf(msg, sizeof(msg), "the answer of provider '%s' exceeded "
		    "upstream.max_response_bytes", t->route->id);
		fail(t, 502, "server_error", "upstream_too_large", msg);
		return;
	}
	if (err == WD_OK && t->up_status >= 200 && t->up_status < 300 &&
	    gw_provider_converse(t->route)) {
		char *chat;
		size_t n;

		/* A Converse answer, as the chat completion the client asked
		 * for; what cannot be read that way is refused. */
		if (gw_converse_answer((const char *)evbuffer_pullup(t->resp, -1),
		    evbuffer_get_length(t->resp), t->chat.model, t->dec.id, &chat,
		    &n) == WD_OK) {
			evbuffer_drain(t->resp, evbuffer_get_length(t->resp));
			evbuffer_add(t->resp, chat, n);
			free(chat);
		} else
			evbuffer_drain(t->resp, evbuffer_get_length(t->resp));
	}
	if (err == WD_OK && t->up_status != 429 && t->up_status < 500) {
		finish_buffered(t);
		return;
	}
	if (err == WD_OK)
		snprintf(msg, sizeof(msg), "attempt %d: provider '%s' answered "
		    "status %d", t->attempts, t->route->id, t->up_status);
	else
		snprintf(msg, sizeof(msg), "attempt %d: provider '%s' failed: %s",
		    t->attempts, t->route->id, detail);
	wd_warn("request %s: %s", gw_conn_request_id(t->conn), msg);
	if (err == WD_ETIMEOUT)
		try_next(t, msg, 504, "server_error", "upstream_timeout");
	else if (err == WD_OK && t->up_status == 429)
		try_next(t, msg, 429, "rate_limit_exceeded", "upstream_rate_limited");
	else
		try_next(t, msg, 502, "server_error", "upstream_error");
}

/* Start an attempt on the next candidate route, or fail with status. */
static void
try_next(struct txn *t, const char *why, int status, const char *type,
    const char *code)
{
	const struct pol_upstream *u = &t->snap->upstream;
	const struct pol_provider *p;
	const unsigned char *cred;
	size_t credlen = 0;
	const char *hdrs[5 + GW_PROV_MAX_HDRS];
	/* URL and the kind's auth headers (gateway/provider.c); they hold
	 * the credential until curl has its copy, then are wiped. */
	static _Thread_local struct gw_prov_req pr;
	struct gw_prov_in in;
	const char *why_not;
	struct gw_up_req r;
	enum wd_err rc;

	if (t->next >= t->ncand || t->attempts >= u->max_attempts) {
		fail(t, status, type, code, why);
		return;
	}
	p = t->route = t->cand[t->next++];
	t->attempts++;
	cred = gw_creds_get(t->creds, t->snap, p->credential, &credlen);
	free(t->up_body);
	t->up_body = NULL;
	if (gw_provider_converse(p)) {
		if (gw_converse_request((const char *)evbuffer_pullup(t->body, -1),
		    evbuffer_get_length(t->body), &t->up_body, &t->up_body_len,
		    &why_not) != WD_OK) {
			fail(t, 400, "invalid_request_error", "unsupported_for_route",
			    why_not);
			return;
		}
		if (t->conv == NULL && (t->conv = calloc(1, sizeof(*t->conv))) ==
		    NULL) {
			fail(t, 500, "server_error", NULL, "out of memory");
			return;
		}
		gw_converse_stream_clear(t->conv);	/* a previous attempt's */
		gw_converse_stream_init(t->conv, t->chat.model, t->dec.id);
	}
	memset(&in, 0, sizeof(in));
	in.route = p;
	in.cred = cred;
	in.credlen = credlen;
	in.model = t->chat.model;
	in.stream = t->chat.stream;
	in.body = t->up_body ? t->up_body : (const char *)evbuffer_pullup(
	    t->body, -1);
	in.body_len = t->up_body ? t->up_body_len : evbuffer_get_length(t->body);
	in.now = time(NULL);
	if ((rc = gw_provider_prepare(&in, &pr, &why_not)) != WD_OK) {
		/* A NUL or newline would have cut or split the header:
		 * refused, not sent. */
		gw_prov_req_wipe(&pr);
		fail(t, 500, "server_error", rc == WD_ELIMIT ? "bad_route" :
		    "credential_unavailable", why_not);
		return;
	}
	snprintf(t->reqid_hdr, sizeof(t->reqid_hdr), "X-Request-Id: %s",
	    gw_conn_request_id(t->conn));
	hdrs[0] = "Content-Type: application/json";
	hdrs[1] = t->chat.stream ? "Accept: text/event-stream"
				 : "Accept: application/json";
	hdrs[2] = t->reqid_hdr;
	hdrs[3] = "User-Agent: warden/" WD_VERSION;
	hdrs[4] = "Expect:";		/* no 100-continue round trip */
	for (size_t i = 0; i < pr.nhdrs; i++)
		hdrs[5 + i] = pr.hdrs[i];
	memset(&r, 0, sizeof(r));
	r.url = pr.url;
	r.proxy = u->proxy;
	r.ca_file = p->ca_file;
	r.headers = hdrs;
	r.nheaders = 5 + pr.nhdrs;
	r.body = in.body;
	r.body_len = in.body_len;
	r.connect_ms = u->connect_timeout_ms;
	r.first_byte_ms = u->first_byte_timeout_ms;
	r.idle_ms = u->idle_timeout_ms;
	r.total_ms = u->total_timeout_ms;
	r.on_head = on_head;
	r.on_data = t->up_body != NULL ? on_data_converse : on_data;
	r.on_done = on_done;
	r.arg = t;
	t->up_status = 0;
	t->too_big = false;
	evbuffer_drain(t->resp, evbuffer_get_length(t->resp));
	gw_sse_init(&t->sse);
	gw_agent_stream_init(&t->astream, &gw_format_chat);
	t->attempt_us = wd_mono_us();
	rc = gw_up_start(gw_conn_worker(t->conn)->up, &r, &t->xfer);
	/* curl copied the header strings; ours can go. */
	gw_prov_req_wipe(&pr);
	if (rc != WD_OK)
		fail(t, 500, "server_error", NULL, "cannot start upstream request");
}

/* The agent's tool policy on the request; false when it denied. */
static bool
check_tools(struct txn *t, struct gw_http_req *req)
{
	struct gw_tools_deny d;

	switch (gw_tools_request(&t->tools, t->snap, t->tenant, &t->caller,
	    req, t->chat.root, &d)) {
	case GW_TOOLS_DENY:
		fail_tools(t, &d);
		return false;
	case GW_TOOLS_MODIFIED:
		if (!rewrite_body(t->body, t->chat.root)) {
			fail(t, 500, "server_error", NULL, "out of memory");
			return false;
		}
		t->dec.verdict = POL_MODIFY;
		return true;
	case GW_TOOLS_OK:
		break;
	}
	return true;
}

/*
 * Limits, the end of the decision: reserve what the request may cost on
 * every limit that applies, or refuse it (429 naming the limit, with
 * Retry-After and the x-ratelimit-* headers; 503 when the store cannot
 * answer and a limit does not say fail_open).  A stream under a token or
 * cost limit asks the provider for its usage.  false: answered.
 */
static bool
reserve_limits(struct txn *t)
{
	struct pol_caller who = t->caller;
	const char *names[7], *values[7];
	struct gw_out_hdr h[7];
	char msg[400];
	size_t n;
	bool asked;

	/* An agent named by X-Warden-Agent counts as that agent.  The
	 * in-flight lease is named by the decision id: random, where a
	 * request id may be the client's. */
	if (who.agent == NULL && t->tools.agent != NULL)
		who.agent = t->tools.agent;
	gw_limits_plan(&t->lim, t->snap, &who, t->chat.model,
	    evbuffer_get_length(t->body), gw_limits_max_tokens(t->chat.root),
	    t->dec.id, time(NULL));
	if (t->lim.n == 0)
		return true;
	if (t->chat.stream && gw_limits_need_usage(&t->lim) &&
	    gw_limits_ask_usage(t->chat.root, &asked)) {
		if (!rewrite_body(t->body, t->chat.root)) {
			fail(t, 500, "server_error", NULL, "out of memory");
			return false;
		}
		t->strip_usage = true;
	}
	switch (gw_limits_reserve(&t->lim, msg, sizeof(msg))) {
	case GW_LIM_OK:
		break;
	case GW_LIM_NO_PRICE:
		fail(t, 403, "policy_violation", "no_price_for_model", msg);
		return false;
	case GW_LIM_UNAVAILABLE:
		fail(t, 503, "server_error", "state_store_unavailable", msg);
		return false;
	case GW_LIM_OVER: {
		struct gw_conn *c = t->conn;

		n = gw_limits_headers(&t->lim, names, values, t->lim_buf);
		for (size_t i = 0; i < n; i++)
			h[i] = (struct gw_out_hdr){ names[i], values[i] };
		gw_metrics_request("", 429);
		t->final_status = 429;
		t->final_code = "limit_exceeded";
		gw_txn_record(t);
		t->conn = NULL;
		gw_conn_set_hooks(c, NULL);
		gw_send_error_hdr(c, 429, h, n, "rate_limit_exceeded",
		    "limit_exceeded", "%s", msg);
		txn_end(t);
		return false;
	}
	}
	n = gw_limits_headers(&t->lim, names, values, t->lim_buf);
	for (size_t i = 0; i < n; i++)
		t->lim_hdrs[i] = (struct gw_out_hdr){ names[i], values[i] };
	t->nlim_hdrs = n;
	return true;
}

/* The policy decision; false when it denied (and the answer is sent). */
static bool
decide(struct txn *t, struct gw_http_req *req)
{
	struct pol_facts f = {
		.tenant = t->tenant,
		.app = t->caller.app ? t->caller.app->id : NULL,
		.model = t->chat.model,
		.stream = t->chat.stream,
		.hdr_classes = gw_http_header(req, "x-warden-data-class"),
		.hdr_region = gw_http_header(req, "x-warden-subject-region"),
	};
	char id[sizeof(t->dec.id)];
	const char *type;
	enum wd_err rc;

	/* Two of one policy header would leave the choice to us. */
	static const char *const once[] = { "x-warden-data-class",
		"x-warden-subject-region", "x-warden-agent", "x-warden-session" };

	for (size_t h = 0; h < sizeof(once) / sizeof(once[0]); h++) {
		size_t n = 0;

		for (size_t i = 0; i < req->nhdrs; i++)
			n += strcasecmp(req->hdrs[i].name, once[h]) == 0;
		if (n > 1) {
			char msg[96];

			snprintf(msg, sizeof(msg), "%s given more than once", once[h]);
			fail(t, 400, "invalid_request_error", "duplicate_policy_header",
			    msg);
			return false;
		}
	}
	/* The content detectors, before the policy decides: what they find
	 * joins the facts.  A detector that cannot run refuses the request
	 * (fail closed): nothing leaves unscanned. */
	rc = gw_detect_request(&t->det, t->snap, t->chat.root, &f.det_counts);
	if (rc == WD_ELIMIT) {
		fail(t, 413, "invalid_request_error", "too_many_texts", "the "
		    "request holds more text values than content detection scans");
		return false;
	}
	if (rc != WD_OK) {
		fail(t, 503, "server_error", "detector_unavailable", "content "
		    "detection cannot run; the request was not sent");
		return false;
	}
	memcpy(id, t->dec.id, sizeof(id));
	if (pol_decide(t->snap, &f, &t->dec) != WD_OK) {
		fail(t, 500, "server_error", NULL, "policy evaluation failed");
		return false;
	}
	memcpy(t->dec.id, id, sizeof(id));
	t->decided = true;
	if (t->dec.verdict == POL_DENY && t->dec.det_fired != 0) {
		/* Blocked for what it holds: no copy of it is kept. */
		evbuffer_drain(t->body, evbuffer_get_length(t->body));
	} else if (t->dec.verdict != POL_DENY && t->dec.redact) {
		/* What goes upstream (and what the audit digests) is the
		 * redacted body. */
		if (gw_detect_redact(&t->det, t->snap) != WD_OK ||
		    !rewrite_body(t->body, t->chat.root)) {
			fail(t, 500, "server_error", "redaction_failed", "the "
			    "request could not be redacted; it was not sent");
			return false;
		}
		t->dec.verdict = POL_MODIFY;
	}
	if (t->dec.verdict != POL_DENY &&
	    gw_detect_answer_open(&t->det_ans, t->snap) != WD_OK) {
		fail(t, 503, "server_error", "detector_unavailable", "content "
		    "detection cannot run; the request was not sent");
		return false;
	}
	if (t->dec.keep >= POL_KEEP_HASH && t->audit != NULL) {
		aud_payload_digest(t->audit, evbuffer_pullup(t->body, -1),
		    evbuffer_get_length(t->body), t->req_hmac);
		t->resp_hmac = aud_hmac_new(t->audit);
	}
	if (t->dec.verdict == POL_DENY) {
		type = t->dec.status == 403 ? "policy_violation" :
		    "invalid_request_error";
		fail(t, t->dec.status, type, t->dec.code, t->dec.message);
		return false;
	}
	t->cand = t->dec.routes;
	t->ncand = t->dec.nroutes;
	if (!check_tools(t, req))
		return false;
	return reserve_limits(t);
}

void
gw_proxy_chat(struct gw_conn *c, struct gw_http_req *req, struct evbuffer *body)
{
	struct gw_conn_hooks hooks;
	struct txn *t;
	const char *param;
	char why[256];

	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->resp = evbuffer_new()) == NULL) {
		free(t);
		evbuffer_free(body);
		gw_send_error(c, 500, "server_error", NULL, "out of memory");
		return;
	}
	t->conn = c;
	t->body = body;
	gw_server_acquire(gw_conn_worker(c)->srv, &t->snap, &t->creds);
	t->audit = gw_conn_worker(c)->srv->audit;
	t->started_us = wd_mono_us();
	t->attempt_log = json_array();
	snprintf(t->reqid, sizeof(t->reqid), "%s", gw_conn_request_id(c));
	hooks.gone = client_gone;
	hooks.drained = client_drained;
	hooks.arg = t;
	gw_conn_set_hooks(c, &hooks);

	{
		unsigned char rnd[16];

		/* Every answer names its decision, so a caller can find the
		 * audit record, however the request ends. */
		wd_random(rnd, sizeof(rnd));
		wd_hex(rnd, sizeof(rnd), t->dec.id);
		gw_conn_set_decision(c, t->dec.id, t->snap->version);
	}
	if (t->audit != NULL && !aud_healthy(t->audit)) {
		/* Fail closed: nothing goes out that cannot be recorded. */
		fail(t, 503, "server_error", "audit_unavailable", "the audit log "
		    "cannot be written; warden refuses traffic until it can");
		return;
	}
	t->tenant = gw_auth(t->snap, gw_http_header(req, "authorization"),
	    &t->caller);
	if (t->tenant == NULL) {
		fail(t, 401, "invalid_request_error", "invalid_api_key",
		    "missing or unknown API key: send 'Authorization: Bearer "
		    "<virtual key>'");
		return;
	}
	if (gw_chat_parse((const char *)evbuffer_pullup(body, -1),
	    evbuffer_get_length(body), &t->chat, why, sizeof(why),
	    &param) != WD_OK) {
		struct gw_conn *cc = t->conn;

		gw_metrics_request("", 400);
		t->final_status = 400;
		t->final_code = "invalid_request";
		gw_txn_record(t);
		t->conn = NULL;
		gw_conn_set_hooks(cc, NULL);
		gw_send_invalid(cc, param, "%s", why);
		txn_end(t);
		return;
	}
	if (!decide(t, req))
		return;
	try_next(t, "no route", 502, "server_error", "upstream_error");
}
