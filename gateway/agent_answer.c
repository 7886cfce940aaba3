/*
 * agent_answer.c - an agent's answer from the provider's bytes to the
 * client's: read strictly by the format's reader, the calls checked by the
 * tool policy, and written out as warden's own serialization of what was
 * checked.  Nothing of the provider's bytes reaches the client unparsed.
 *
 * The transaction (txn_upstream.c, txn_answer.c) calls it for requests of agents (other requests keep their byte
 * pass-through); tests/fuzz/fuzz_answer.c calls the same functions and
 * holds what comes out against a reference client's reading.
 */
#include "gateway/gw_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
refuse(struct gw_tools_deny *d, enum wd_code code, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
refuse(struct gw_tools_deny *d, enum wd_code code, const char *fmt,
    ...)
{
	va_list ap;

	d->status = wd_errdef(code)->status;
	d->code = wd_errdef(code)->code;
	d->id = code;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
}

void
gw_agent_stream_init(struct gw_agent_stream *as, const struct gw_format *fmt)
{
	memset(as, 0, sizeof(*as));
	as->fmt = fmt;
}

/* Does the event's data start with [DONE]?  The openai clients stop at any
 * data that does, and read nothing after it. */
static bool
is_done(const char *data)
{
	return data != NULL && strncmp(data, "[DONE]", 6) == 0;
}

size_t
gw_agent_stream_feed(struct gw_agent_stream *as, struct gw_tools *tl,
    struct evbuffer *acc, size_t complete, struct evbuffer *out, bool *go_on,
    struct gw_tools_deny *d)
{
	size_t used = 0;

	*go_on = true;
	while (complete > 0) {
		const char *ev = (const char *)evbuffer_pullup(acc,
		    (ev_ssize_t)complete);
		size_t n = gw_sse_event_len(ev, complete), dlen;
		struct gw_answer ans;
		char *data, why[160];
		enum wd_err rc;
		bool ok = true;

		if (as->done) {
			*go_on = false;		/* anything after [DONE] */
			break;
		}
		rc = gw_sse_event_read(ev, n, !as->seen, &data, &dlen, why,
		    sizeof(why));
		as->seen = true;
		if (rc != WD_OK) {
			refuse(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "the provider sent a "
			    "malformed stream: %s", rc == WD_ENOMEM ? "out of memory" :
			    why);
			*go_on = false;
			break;
		}
		if (is_done(data)) {
			as->done = true;
		} else if (data != NULL) {
			rc = as->fmt->read_chunk(data, dlen, &ans, why, sizeof(why));
			if (rc != WD_OK) {
				refuse(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "the provider "
				    "sent a malformed chunk: %s", rc == WD_ENOMEM ?
				    "out of memory" : why);
				ok = false;
			} else if (ans.nev > 0 && ans.ev[0].kind == GW_ANS_ERROR) {
				refuse(d, WD_CODE_UPSTREAM_ERROR, "the provider reported "
				    "an error in the stream: %.120s", ans.ev[0].text ?
				    ans.ev[0].text : "");
				ok = false;
			} else if (gw_tools_answer(tl, &ans, d) != GW_TOOLS_OK) {
				ok = false;
			} else if (as->fmt->write(&ans, out) != WD_OK) {
				refuse(d, WD_CODE_OUT_OF_MEMORY, "out of memory");
				ok = false;
			}
			gw_answer_clear(&ans);
		}
		free(data);
		if (!ok) {
			*go_on = false;
			break;
		}
		evbuffer_drain(acc, n);
		used += n;
		complete -= n;
	}
	return used;
}

bool
gw_agent_stream_end(struct gw_agent_stream *as, struct evbuffer *acc,
    struct evbuffer *out, struct gw_tools_deny *d)
{
	size_t len = evbuffer_get_length(acc), dlen;
	char *data = NULL, why[160];

	/* Clients drop an unterminated last event (WHATWG; openai-node's
	 * decoder too): only a last [DONE] counts of it. */
	if (!as->done && len > 0 && gw_sse_event_read((const char *)
	    evbuffer_pullup(acc, -1), len, !as->seen, &data, &dlen, why,
	    sizeof(why)) == WD_OK && is_done(data))
		as->done = true;
	free(data);
	evbuffer_drain(acc, len);
	if (!as->done) {
		refuse(d, WD_CODE_UPSTREAM_ERROR, "the provider's stream ended "
		    "without data: [DONE]");
		return false;
	}
	evbuffer_add(out, as->fmt->done, strlen(as->fmt->done));
	return true;
}

bool
gw_agent_answer(const struct gw_format *fmt, struct gw_tools *tl, int status,
    const char *text, size_t len, struct evbuffer *out, json_t **usage,
    struct gw_tools_deny *d)
{
	struct gw_answer ans;
	char why[160];
	enum wd_err rc;
	bool ok = false;

	*usage = NULL;
	if (status < 200 || status >= 300) {
		/* An error answer: its error object, nothing else of it. */
		json_t *err = fmt->read_error(text, len);
		char *s = err != NULL ? json_dumps(err, JSON_COMPACT) : NULL;

		json_decref(err);
		if (s == NULL) {
			refuse(d, WD_CODE_UPSTREAM_ERROR, "the provider answered "
			    "status %d", status);
			return false;
		}
		evbuffer_add(out, s, strlen(s));
		free(s);
		return true;
	}
	rc = fmt->read_answer(text, len, &ans, why, sizeof(why));
	if (rc != WD_OK) {
		refuse(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "the provider sent a "
		    "malformed answer: %s", rc == WD_ENOMEM ? "out of memory" : why);
		goto out;
	}
	if (gw_tools_answer(tl, &ans, d) == GW_TOOLS_DENY)
		goto out;
	if (fmt->write(&ans, out) != WD_OK) {
		refuse(d, WD_CODE_OUT_OF_MEMORY, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ans.nev; i++)
		if (ans.ev[i].kind == GW_ANS_USAGE)
			*usage = json_incref(ans.ev[i].node);
	ok = true;
out:
	gw_answer_clear(&ans);
	return ok;
}
