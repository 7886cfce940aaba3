/*
 * txn_upstream.c - a transaction's attempts at its routes: ATTEMPT signs
 * and starts the transfer to the next route (or ends with the last
 * attempt's error), and curl's callbacks carry the transfer through
 * UPSTREAM (nothing sent yet) or STREAMING (a stream is going out) to
 * ANSWER: the machine (txn.c) is told by the on_done it passes in, and
 * txn_answer.c reads how it ended.
 *
 * Fallback: before a single byte of an answer went to the client, a
 * failed attempt (connect error, timeout, 5xx, 429) moves on to the next
 * route of the tenant that serves the model, up to upstream.max_attempts
 * (txn_answer.c decides; this file starts the next attempt).
 */
#include "gateway/txn.h"
#include "secrets/sec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Pause the provider when this much is waiting to go to the client. */
#define OUT_HIGH_MARK (256u << 10)

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
	struct gw_out_hdr h[2] = {
		{ "Cache-Control", "no-cache" },
		{ "X-Warden-Route", t->up.route->id },
	};

	t->up.status = status;
	wd_strlcpy(t->up.ctype, ctype ? ctype : "application/json",
	    sizeof(t->up.ctype));
	gw_metrics_upstream(t->up.route->id, wd_mono_us() - t->up.started_us);
	if (!t->req.chat.stream || status != 200)
		return;
	/* An agent's stream is read as SSE (a Converse route's as AWS
	 * event-stream frames, translated to SSE): an answer that says it is
	 * something else is not read at all (txn_answer.c refuses it). */
	if (txn_checked(t) && !ctype_is(ctype, t->ans.conv != NULL ?
	    "application/vnd.amazon.eventstream" : "text/event-stream")) {
		t->up.cut = TXN_CUT_NOT_SSE;
		return;
	}
	/* Records before answers: the decision's record is written (durable
	 * as the log's durability says) before the first byte of the stream.
	 * If it cannot be, nothing goes out: on_data stops the transfer and
	 * the answer is a 503.  (A callback of curl's cannot end the
	 * transfer itself.) */
	t->end.status = 200;
	if (gw_txn_record_stream(t) != WD_OK) {
		t->up.cut = TXN_CUT_NO_RECORD;
		return;
	}
	/* Streams go out as they come: headers now, events as they end. */
	t->state = TXN_STREAMING;
	t->ans.streamed = true;
	gw_respond_start(t->conn, 200, "text/event-stream", h, 2);
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

void
gw_txn_note_stream(struct txn *t, struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	const char *p = (const char *)evbuffer_pullup(out, -1), *u;
	struct txn_answer *a = &t->ans;

	/* The usage chunk the client did not ask for (limits asked for it)
	 * is taken out before anything counts what goes out. */
	if (t->lim.strip_usage && len > 0) {
		gw_limits_stream_usage(out, true, &a->usage);
		len = evbuffer_get_length(out);
		p = (const char *)evbuffer_pullup(out, -1);
	}
	if (len == 0)
		return;
	if (a->hmac != NULL)
		aud_hmac_update(a->hmac, p, len);
	/* keep: full stores the stream too, up to 1 MiB. */
	if (t->pol.decided && t->pol.dec.keep == POL_KEEP_FULL &&
	    (a->copy != NULL || (a->copy = evbuffer_new()) != NULL) &&
	    evbuffer_get_length(a->copy) + len <= (1u << 20))
		evbuffer_add(a->copy, p, len);
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
				json_decref(a->usage);
				a->usage = json_incref(json_object_get(j, "usage"));
			}
			json_decref(j);
		}
	}
}

bool
gw_txn_answer_clean(struct txn *t, const char *ev, size_t n, bool whole)
{
	struct gw_tools_deny *d = &t->pol.deny;
	const struct pol_detector *det;
	int fired;

	if (t->ans.det.scan == NULL)
		return true;
	if (gw_detect_answer_piece(&t->ans.det, ev, n, whole, &fired) != WD_OK) {
		d->id = WD_CODE_DETECTOR_UNAVAILABLE;
		d->status = wd_errdef(d->id)->status;
		d->code = wd_errdef(d->id)->code;
		snprintf(d->message, sizeof(d->message), "content detection "
		    "cannot run on this answer; it was ended");
		return false;
	}
	if (fired < 0)
		return true;
	det = &t->pol.snap->detect.d[fired];
	gw_metrics_detect(det->id, "answer", 1);
	d->id = WD_CODE_DETECTED;
	d->status = wd_errdef(d->id)->status;
	d->code = det->code;		/* detected_<id> */
	snprintf(d->message, sizeof(d->message), "the answer contains what "
	    "detector '%s' looks for; it was not passed on", det->id);
	return false;
}

/* STREAMING: pass on the events that are complete (and, for an agent,
 * checked).  0 stops the transfer. */
static size_t
relay(struct txn *t, const char *data, size_t len)
{
	const struct pol_upstream *u = &t->pol.snap->upstream;
	struct evbuffer *out;
	size_t complete;
	bool go_on = true;

	if (t->ans.astream != NULL && t->ans.astream->done)
		return 0;		/* bytes after [DONE]: the end, now */
	if (gw_conn_pending(t->conn) > OUT_HIGH_MARK)
		return GW_UP_PAUSE;
	/* The log failed since the stream began: what follows could not be
	 * recorded as sent, so it is not sent (the answer ends the stream
	 * with the error event). */
	if (t->audit.log != NULL && !aud_healthy(t->audit.log)) {
		t->up.cut = TXN_CUT_AUDIT;
		return 0;
	}
	if (gw_sse_feed(&t->ans.sse, t->ans.buf, data, len,
	    u->max_sse_event_bytes, &complete) != WD_OK) {
		t->up.cut = TXN_CUT_TOO_BIG;
		return 0;
	}
	if (complete == 0)
		return len;
	if ((out = evbuffer_new()) == NULL)
		return 0;
	if (!txn_checked(t)) {
		/* The stream's own end marker waits until the record is
		 * written: a client that saw [DONE] was answered in full. */
		complete = before_done(t->ans.buf, complete);
		evbuffer_remove_buffer(t->ans.buf, out, complete);
	} else {
		/* [DONE] is held the same way: the end sends it. */
		complete = gw_agent_stream_feed(t->ans.astream, t->pol.tools,
		    t->ans.buf, complete, out, &go_on, &t->pol.deny);
		if (!go_on && !t->ans.astream->done)
			t->up.cut = TXN_CUT_TOOLS;
	}
	gw_sse_consumed(&t->ans.sse, complete);
	/* The answer detectors read exactly what is about to go out; a hit
	 * withholds all of it (the answer ends the stream). */
	if (go_on && evbuffer_get_length(out) > 0 && !gw_txn_answer_clean(t,
	    (const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out),
	    false)) {
		evbuffer_free(out);
		t->up.cut = TXN_CUT_TOOLS;
		return 0;
	}
	/* What passed goes out; after a violation nothing more of the
	 * stream does (the answer ends it with an error event). */
	gw_txn_note_stream(t, out);
	gw_respond_chunk_buf(t->conn, out);
	evbuffer_free(out);
	return go_on ? len : 0;
}

static size_t
on_data(void *arg, const char *data, size_t len)
{
	struct txn *t = arg;

	if (t->up.cut == TXN_CUT_NO_RECORD)
		return 0;		/* no record, no answer */
	if (t->state == TXN_STREAMING)
		return relay(t, data, len);
	if (evbuffer_get_length(t->ans.buf) + len >
	    t->pol.snap->upstream.max_response_bytes) {
		t->up.cut = TXN_CUT_TOO_BIG;
		return 0;
	}
	evbuffer_add(t->ans.buf, data, len);
	return len;
}

void
gw_txn_transfer_ended(struct txn *t, enum wd_err err, const char *detail)
{
	t->up.xfer = NULL;
	t->up.err = err;
	wd_strlcpy(t->up.detail, detail ? detail : "", sizeof(t->up.detail));
	gw_txn_note_attempt(t, err == WD_OK ? t->up.status : 0,
	    err == WD_OK ? NULL : t->up.detail);
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

	if (t->state != TXN_STREAMING)
		return on_data(arg, data, len);
	if (gw_conn_pending(t->conn) > OUT_HIGH_MARK)
		return GW_UP_PAUSE;
	if (gw_converse_feed(t->ans.conv, data, len, &sse, &n) != WD_OK) {
		t->up.cut = TXN_CUT_TOO_BIG;
		return 0;
	}
	rc = n > 0 ? on_data(arg, sse, n) : n;
	free(sse);
	return rc == n ? len : 0;
}

void
gw_txn_drained(struct txn *t)
{
	if (t->up.xfer != NULL)
		gw_up_resume(t->up.xfer);
}

/* A Converse route: the request body translated for this attempt, and
 * the stream translator ready.  Not WD_OK: t->end says why. */
static enum wd_err
converse_prepare(struct txn *t)
{
	const char *why_not;

	if (gw_converse_request((const char *)evbuffer_pullup(t->req.body, -1),
	    evbuffer_get_length(t->req.body), &t->up.body, &t->up.body_len,
	    &why_not) != WD_OK) {
		gw_txn_error(t, WD_CODE_UNSUPPORTED_FOR_ROUTE, "%s", why_not);
		return WD_EINVAL;
	}
	if (t->ans.conv == NULL &&
	    (t->ans.conv = calloc(1, sizeof(*t->ans.conv))) == NULL) {
		gw_txn_error(t, WD_CODE_INTERNAL, "out of memory");
		return WD_ENOMEM;
	}
	gw_converse_stream_clear(t->ans.conv);	/* a previous attempt's */
	gw_converse_stream_init(t->ans.conv, t->req.chat.model, t->pol.dec.id);
	return WD_OK;
}

enum txn_state
gw_txn_attempt(struct txn *t, void (*on_done)(void *, enum wd_err,
    const char *))
{
	const struct pol_upstream *u = &t->pol.snap->upstream;
	struct txn_attempt *a = &t->up;
	const struct pol_provider *p;
	const char *hdrs[5 + GW_PROV_MAX_HDRS + 2], *why_not;
	const char *fwd[2];
	/* URL and the kind's auth headers (gateway/provider.c): they hold
	 * the credential until curl has its copy, then are wiped. */
	static _Thread_local struct gw_prov_req pr;
	struct gw_prov_in in;
	struct gw_up_req r;
	enum wd_err rc;
	size_t extra = 0;

	/* No route left: end with the last attempt's error (t->end). */
	if (a->next >= a->ncand || a->count >= u->max_attempts)
		return TXN_END;
	p = a->route = a->cand[a->next++];
	a->count++;
	free(a->body);
	a->body = NULL;
	if (gw_provider_converse(p) && converse_prepare(t) != WD_OK)
		return TXN_END;
	/* provider.sign: URL and auth headers for the route's kind. */
	memset(&in, 0, sizeof(in));
	in.route = p;
	in.cred = gw_creds_get(t->pol.creds, t->pol.snap, p->credential,
	    &in.credlen);
	in.model = t->req.chat.model;
	in.stream = t->req.chat.stream;
	in.body = a->body ? a->body : (const char *)evbuffer_pullup(t->req.body,
	    -1);
	in.body_len = a->body ? a->body_len : evbuffer_get_length(t->req.body);
	in.now = time(NULL);
	/* The format's path, and the client headers it passes on. */
	if (t->req.fmt != &gw_format_chat) {
		if (p->kind != NULL && strcmp(p->kind, "openai") != 0 &&
		    strcmp(p->kind, "anthropic") != 0)
			return gw_txn_error(t, WD_CODE_BAD_ROUTE, "route '%s' is "
			    "of kind '%s', which speaks chat only", p->id,
			    p->kind);
		in.path = t->req.fmt->path;
		for (size_t i = 0; i < t->req.nfwd; i++)
			fwd[i] = t->req.fwd[i];
		in.fwd = fwd;
		in.nfwd = t->req.nfwd;
	}
	if ((rc = gw_provider_prepare(&in, &pr, &why_not)) != WD_OK) {
		/* A NUL or newline would have cut or split the header:
		 * refused, not sent. */
		gw_prov_req_wipe(&pr);
		return gw_txn_error(t, rc == WD_ELIMIT ? WD_CODE_BAD_ROUTE :
		    WD_CODE_CREDENTIAL_UNAVAILABLE, "%s", why_not);
	}
	memcpy(a->reqid_hdr, "X-Request-Id: ", 14);
	wd_strlcpy(a->reqid_hdr + 14, gw_conn_request_id(t->conn),
	    sizeof(a->reqid_hdr) - 14);
	hdrs[0] = "Content-Type: application/json";
	hdrs[1] = t->req.chat.stream ? "Accept: text/event-stream"
				     : "Accept: application/json";
	hdrs[2] = a->reqid_hdr;
	hdrs[3] = "User-Agent: warden/" WD_VERSION;
	hdrs[4] = "Expect:";		/* no 100-continue round trip */
	for (size_t i = 0; i < pr.nhdrs; i++)
		hdrs[5 + i] = pr.hdrs[i];
	/* anthropic-beta (and -version, unless the kind sent it) go to the
	 * provider as the client sent them (Claude Code's contract). */
	for (size_t i = 0; t->req.fmt != &gw_format_chat && i < t->req.nfwd;
	    i++) {
		bool dup = false;

		for (size_t k = 0; k < pr.nhdrs; k++)
			dup |= strncasecmp(pr.hdrs[k], t->req.fwd[i],
			    strcspn(t->req.fwd[i], ":") + 1) == 0;
		if (!dup)
			hdrs[5 + pr.nhdrs + extra++] = t->req.fwd[i];
	}
	memset(&r, 0, sizeof(r));
	r.url = pr.url;
	r.proxy = u->proxy;
	r.curl_only = u->curl_only;
	r.ca_file = p->ca_file;
	r.headers = hdrs;
	r.nheaders = 5 + pr.nhdrs + extra;
	r.body = in.body;
	r.body_len = in.body_len;
	r.connect_ms = u->connect_timeout_ms;
	r.first_byte_ms = u->first_byte_timeout_ms;
	r.idle_ms = u->idle_timeout_ms;
	r.total_ms = u->total_timeout_ms;
	r.on_head = on_head;
	r.on_data = a->body != NULL ? on_data_converse : on_data;
	r.on_done = on_done;
	r.arg = t;
	a->status = 0;
	a->cut = TXN_CUT_NONE;
	evbuffer_drain(t->ans.buf, evbuffer_get_length(t->ans.buf));
	t->ans.usage_len = 0;		/* a usage is the answer's that ends it */
	gw_sse_init(&t->ans.sse);
	rc = WD_OK;
	if (txn_checked(t) && t->ans.astream == NULL &&
	    (t->ans.astream = malloc(sizeof(*t->ans.astream))) == NULL)
		rc = WD_ENOMEM;
	if (t->ans.astream != NULL)
		gw_agent_stream_init(t->ans.astream, t->req.fmt);
	a->started_us = wd_mono_us();
	if (rc == WD_OK)
		rc = gw_up_start(gw_conn_worker(t->conn)->up, &r, &a->xfer);
	/* curl copied the header strings; ours can go. */
	gw_prov_req_wipe(&pr);
	if (rc != WD_OK)
		return gw_txn_error(t, WD_CODE_INTERNAL,
		    "cannot start upstream request");
	/* While the provider works on it. */
	gw_txn_digest_request(t);
	return TXN_UPSTREAM;
}
