/*
 * txn_record.c - the end of a chat transaction as the audit log sees it:
 * its one record (gw_record() in record.c says what it holds), written
 * before the caller gets the answer it describes, and what the payload
 * store keeps of the conversation when the decision says `redacted` or
 * `full`.
 */
#include "gateway/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * keep: redacted or full: the request and the answer go to the payload
 * store (outside the chain; the record holds their digests).  The answer
 * is t->ans.buf for a whole answer, the stream's copy for a stream.
 */
/* The end's code as records name it (NULL: none). */
static const char *
record_code(const struct txn *t)
{
	if (t->end.code == WD_CODE_NONE)
		return NULL;
	if (t->end.name != NULL && wd_errdef(t->end.code)->family)
		return t->end.name;	/* detected_<id> */
	return wd_errdef(t->end.code)->code;
}

static bool
keep_payload(struct txn *t)
{
	const char *req, *resp = NULL;
	size_t reqlen, resplen = 0;
	bool full = t->pol.dec.keep == POL_KEEP_FULL, ok;
	json_t *p;

	if (!t->pol.decided || t->pol.dec.keep < POL_KEEP_REDACTED || t->audit.log == NULL ||
	    t->req.tenant == NULL)
		return false;
	req = (const char *)evbuffer_pullup(t->req.body, -1);
	reqlen = evbuffer_get_length(t->req.body);
	if (t->ans.streamed && t->ans.copy != NULL) {
		resp = (const char *)evbuffer_pullup(t->ans.copy, -1);
		resplen = evbuffer_get_length(t->ans.copy);
	} else if (!t->ans.streamed && t->ans.buf != NULL) {
		resp = (const char *)evbuffer_pullup(t->ans.buf, -1);
		resplen = evbuffer_get_length(t->ans.buf);
	}
	p = json_pack("{s:s,s:s,s:s,s:i}", "decision_id", t->pol.dec.id, "tenant",
	    t->req.tenant->id, "mode", pol_keep_name(t->pol.dec.keep), "status",
	    t->end.status);
	if (full) {
		json_t *rj = json_loadb(req, reqlen, JSON_ALLOW_NUL, NULL);

		json_t *sj = resp == NULL ? json_null() : t->ans.streamed ?
		    json_stringn(resp, resplen) :
		    json_loadb(resp, resplen, JSON_ALLOW_NUL, NULL);

		json_object_set_new(p, "request", rj ? rj :
		    json_string("[request body is not JSON]"));
		json_object_set_new(p, "response", sj ? sj :
		    json_string("[answer is not valid UTF-8 JSON]"));
	} else {
		char note[64];

		json_object_set_new(p, "request", aud_redact(req, reqlen, true));
		snprintf(note, sizeof(note), "[stream: %zu bytes redacted]",
		    resplen);
		json_object_set_new(p, "response", resp == NULL ? json_null() :
		    t->ans.streamed ? json_string(note) :
		    aud_redact(resp, resplen, false));
	}
	ok = aud_payload_store(t->audit.log, t->req.tenant->id, t->pol.dec.id,
	    t->pol.dec.keep_ttl_days, p) == WD_OK;
	json_decref(p);
	return ok;
}

/* Append rec now; on failure amend it (unless the answer is an error
 * already, the caller withholds it and answers 503) and queue it for the
 * writer's retry. */
static enum wd_err
append(struct txn *t, json_t *rec)
{
	json_t *back;
	enum wd_err rc = aud_try_append(t->audit.log, rec, &back);

	if (rc == WD_OK || back == NULL)
		return rc;
	if (t->end.status < 400) {
		json_object_set_new(back, "status", json_integer(503));
		json_object_set_new(back, "code", json_string(
		    wd_errdef(WD_CODE_AUDIT_UNAVAILABLE)->code));
	}
	aud_append(t->audit.log, back);
	return rc;
}

void
gw_txn_digest_request(struct txn *t)
{
	if (!t->audit.req_hmac_due)
		return;
	t->audit.req_hmac_due = false;
	aud_payload_digest(t->audit.log, evbuffer_pullup(t->req.body, -1),
	    evbuffer_get_length(t->req.body), t->audit.req_hmac);
}

static void
outcome(struct txn *t, const char *resp, struct gw_outcome *out)
{
	struct gw_outcome o = {
		.request_id = t->audit.reqid,
		.snap = t->pol.snap,
		.dec = &t->pol.dec,
		.decided = t->pol.decided,
		.tenant = t->req.tenant ? t->req.tenant->id : NULL,
		.api = pol_api_name(t->req.fmt->api),
		.model = t->req.chat.model,
		.stream = t->req.chat.stream,
		.route = t->up.route,
		.status = t->end.status,
		.code = record_code(t),
		.upstream_status = t->up.status,
		.attempts = t->audit.attempts,
		.nattempts = t->audit.nattempts,
		.tools = (t->pol.tools != NULL ? t->pol.tools->log : NULL),
		.usage = t->ans.usage,
		.usage_text = t->ans.usage_text,
		.usage_len = t->ans.usage != NULL ? 0 : t->ans.usage_len,
		.limits = gw_limits_json(t->lim.l),
		.latency_us = wd_mono_us() - t->audit.started_us,
		.req_hmac = t->audit.req_hmac,	/* owed: made just below */
		.resp_hmac = resp,
	};

	gw_txn_digest_request(t);
	*out = o;
}

/* stored: payload.stored; late: a later check (the tool policy) refused
 * what the decision allowed, the verdict is deny. */
static json_t *
build_record(struct txn *t, const char *resp, bool stored, bool late)
{
	struct gw_outcome o;
	json_t *rec;

	outcome(t, resp, &o);
	o.stored = stored;
	o.refused_late = late;
	rec = gw_record(&o);
	json_decref(o.limits);
	return rec;
}

/*
 * The record written directly as its canonical text (no jansson tree):
 * the path of every request.  WD_OK: written.  Otherwise nothing was
 * written or queued and the caller takes the jansson path, which knows
 * what to do when the log is failing.
 */
static bool
canon_direct(struct txn *t, const char *resp, bool stored, bool late,
    struct aud_canon *c)
{
	struct gw_outcome o;
	bool ok;

	outcome(t, resp, &o);
	o.stored = stored;
	o.refused_late = late;
	aud_canon_begin(c, t->audit.log);
	ok = gw_record_canon(&o, c);
	json_decref(o.limits);
	if (!ok)
		aud_canon_free(c);
	return ok;
}

static enum wd_err
append_direct(struct txn *t, const char *resp, bool stored, bool late)
{
	struct aud_canon c;
	enum wd_err rc;

	if (!canon_direct(t, resp, stored, late, &c))
		return WD_EINVAL;
	rc = aud_try_append_canon(t->audit.log, &c);
	aud_canon_free(&c);
	return rc;
}

/*
 * The end of a stream whose record went out before its first byte: how
 * it ended, under the same decision_id.  The verdict is the final one (a
 * tool call refused mid-stream turns allow into deny).
 */
static enum wd_err
record_stream_end(struct txn *t)
{
	char resp[AUD_HASH_HEX + 1] = "";
	struct gw_stream_end e;
	struct aud_canon c;
	json_t *rec;
	enum wd_err rc;

	if (t->audit.stream_closed)
		return WD_OK;
	t->audit.stream_closed = true;
	if (t->ans.hmac != NULL) {
		aud_hmac_final(t->ans.hmac, resp);
		t->ans.hmac = NULL;
	}
	e = (struct gw_stream_end){
		.request_id = t->audit.reqid,
		.decision_id = t->pol.dec.id,
		.tenant = t->req.tenant ? t->req.tenant->id : NULL,
		.code = record_code(t),
		.verdict = t->audit.refused_late ? "deny" :
		    pol_verdict_name(t->pol.dec.verdict),
		.keep = pol_keep_name(t->pol.dec.keep),
		.resp_hmac = resp,
		.status = t->end.status,
		.latency_ms = (long long)((wd_mono_us() - t->audit.started_us) /
		    1000),
		.attempts = t->audit.attempts,
		.nattempts = t->audit.nattempts,
		.usage = gw_txn_usage(t),
		.tools = (t->pol.tools != NULL ? t->pol.tools->log : NULL),
	};
	e.stored = keep_payload(t);
	if (t->audit.log == NULL)
		return WD_OK;
	/* What the stream spent against its limits (settled by now). */
	e.limits = gw_limits_json(t->lim.l);
	/* Written directly (no tree); the jansson record if the log is
	 * failing (amended and queued) or the direct writer cannot. */
	aud_canon_begin(&c, t->audit.log);
	rc = gw_stream_end_canon(&e, &c) ?
	    aud_try_append_canon(t->audit.log, &c) : WD_EINVAL;
	aud_canon_free(&c);
	if (rc == WD_OK) {
		json_decref(e.limits);
		return WD_OK;
	}
	rec = gw_stream_end_record(&e);
	json_decref(e.limits);
	if (rec == NULL)
		return WD_ENOMEM;
	return append(t, rec);
}

enum wd_err
gw_txn_record_stream(struct txn *t)
{
	json_t *rec;
	enum wd_err rc;

	if (t->audit.recorded)
		return WD_OK;
	t->audit.recorded = true;
	/* What is known before the first byte: decision, route, status.
	 * The answer's digest, usage and end come in stream_end. */
	if (t->audit.log == NULL) {
		t->audit.stream_opened = true;
		return WD_OK;
	}
	if (append_direct(t, "", false, false) == WD_OK) {
		t->audit.stream_opened = true;
		return WD_OK;
	}
	rec = build_record(t, "", false, false);
	rc = append(t, rec);
	if (rc == WD_OK)
		t->audit.stream_opened = true;
	return rc;
}

/*
 * Before a transaction's one record: the answer's digest into resp, and
 * whether the payload store keeps it.  false: there is nothing to write
 * (written already, or no log).
 */
static bool
record_begin(struct txn *t, char resp[AUD_HASH_HEX + 1], bool *stored)
{
	if (t->ans.hmac != NULL) {
		aud_hmac_final(t->ans.hmac, resp);
		t->ans.hmac = NULL;
	}
	if (t->audit.recorded)
		return false;
	t->audit.recorded = true;
	*stored = keep_payload(t);
	return t->audit.log != NULL;
}

/* Rare: the log is failing (the record is amended and queued), or the
 * direct writer could not write it. */
static enum wd_err
record_jansson(struct txn *t, const char *resp, bool stored)
{
	return append(t, build_record(t, resp, stored, t->audit.refused_late));
}

/*
 * The transaction's one audit record, written before the caller gets the
 * answer it describes (so a crash cannot lose an acknowledged record).
 * WD_EIO: the log is failing; the record waits in memory for the retry.
 */
enum wd_err
gw_txn_record(struct txn *t)
{
	enum wd_err rc;

	gw_txn_record_many(&t, 1, &rc);
	return rc;
}

/*
 * The records of transactions that ended in one turn of a worker's loop,
 * written together: one turn of the log's lock and one write() for all
 * (aud_try_append_canons), in the order they ended.  rcs[i] is what
 * gw_txn_record(ts[i]) would say.  A record the direct writer cannot
 * make, and all of them when the log refuses the batch, go the single
 * way, each.
 */
void
gw_txn_record_many(struct txn **ts, size_t n, enum wd_err *rcs)
{
	struct aud_canon cs[AUD_APPEND_MAX];
	char resp[AUD_APPEND_MAX][AUD_HASH_HEX + 1];
	bool stored[AUD_APPEND_MAX], written[AUD_APPEND_MAX];
	size_t at[AUD_APPEND_MAX], k = 0;
	struct aud_log *log = NULL;

	for (size_t i = 0; i < n; i++) {
		struct txn *t = ts[i];

		if (t->audit.stream_opened) {
			rcs[i] = record_stream_end(t);
			continue;
		}
		if (k == AUD_APPEND_MAX || (log != NULL && t->audit.log != log)) {
			rcs[i] = gw_txn_record(t);	/* a batch of its own */
			continue;
		}
		rcs[i] = WD_OK;
		resp[k][0] = '\0';
		stored[k] = false;
		if (!record_begin(t, resp[k], &stored[k]))
			continue;
		if (!canon_direct(t, resp[k], stored[k], t->audit.refused_late,
		    &cs[k])) {
			rcs[i] = record_jansson(t, resp[k], stored[k]);
			continue;
		}
		log = t->audit.log;
		at[k++] = i;
	}
	if (k == 0)
		return;
	aud_try_append_canons(log, cs, k, written);
	for (size_t j = 0; j < k; j++)
		if (!written[j])
			rcs[at[j]] = record_jansson(ts[at[j]], resp[j], stored[j]);
}

json_t *
gw_txn_usage(struct txn *t)
{
	if (t->ans.usage == NULL && t->ans.usage_len > 0)
		t->ans.usage = gw_json_load(t->ans.usage_text, t->ans.usage_len,
		    0, NULL);
	return t->ans.usage;
}

/* An error whose copy failed: it still says there was one. */
static char attempt_oom[] = "out of memory";

void
gw_txn_note_attempt(struct txn *t, int status, const char *error)
{
	struct gw_attempt *a;

	if (t->audit.nattempts >= GW_ATTEMPTS_MAX)
		return;		/* more than the rules allow: cannot be */
	a = &t->audit.attempts[t->audit.nattempts++];
	a->route = t->up.route->id;
	a->status = status;
	a->error = error == NULL ? NULL : strdup(error);
	if (error != NULL && a->error == NULL)
		a->error = attempt_oom;
}

void
gw_txn_attempts_clear(struct txn *t)
{
	for (size_t i = 0; i < t->audit.nattempts; i++)
		if (t->audit.attempts[i].error != attempt_oom)
			free(t->audit.attempts[i].error);
	t->audit.nattempts = 0;
}
