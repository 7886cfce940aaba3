/*
 * detect_answer.c - content detection on answers: the text of a whole
 * answer or of one stream event, named by the answer's format (struct
 * gw_format's answer_text: one walker per format, here), and of an MCP
 * tools/call result.
 *
 * A stream's text pieces go into one scanner in the order they come, so
 * a match split across two deltas is found; what is not text (ids, model
 * names, types, signatures) is never fed between them.  Values that are
 * texts of their own (a whole answer's blocks, a tool's input strings,
 * the repeats a Responses stream sends in its .done and
 * response.completed events) are fed between text boundaries: they never
 * join a delta's text, so they cannot break a split match either.
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"
#include "detect/det.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64			/* as detect.c */
#define NO_SLOT (-1)

enum wd_err
gw_detect_answer_open(struct gw_detect_answer *a,
    const struct pol_snapshot *snap, const struct gw_format *fmt)
{
	memset(a, 0, sizeof(*a));
	a->fmt = fmt;
	a->slot = NO_SLOT;
	if (snap->detect.db == NULL || snap->detect.answers == 0)
		return WD_OK;
	a->mask = snap->detect.answers;
	return det_scan_open(snap->detect.db, &a->scan);
}

/* The current text ends here (nothing fed since: nothing to end). */
static enum wd_err
text_end(struct gw_detect_answer *a)
{
	if (!a->fed)
		return WD_OK;
	a->fed = false;
	return det_scan_next_text(a->scan);
}

enum wd_err
gw_detect_feed(struct gw_detect_answer *a, json_t *v)
{
	if (!json_is_string(v) || json_string_length(v) == 0)
		return WD_OK;
	a->fed = true;
	return det_scan_feed(a->scan, json_string_value(v),
	    json_string_length(v));
}

enum wd_err
gw_detect_feed_one(struct gw_detect_answer *a, json_t *v)
{
	enum wd_err rc;

	if (!json_is_string(v) || json_string_length(v) == 0)
		return WD_OK;
	a->slot = NO_SLOT;
	if ((rc = text_end(a)) != WD_OK || (rc = gw_detect_feed(a, v)) != WD_OK)
		return rc;
	return text_end(a);
}

static enum wd_err
feed_all(struct gw_detect_answer *a, json_t *v, int depth)
{
	const char *k;
	json_t *e;
	size_t i;
	enum wd_err rc = WD_OK;

	if (depth > MAX_DEPTH)
		return WD_ELIMIT;
	if (json_is_string(v))
		return gw_detect_feed_one(a, v);
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((rc = feed_all(a, e, depth + 1)) != WD_OK)
				break;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, e)
			if ((rc = feed_all(a, e, depth + 1)) != WD_OK)
				break;
	}
	return rc;
}

enum wd_err
gw_detect_feed_all(struct gw_detect_answer *a, json_t *v)
{
	return feed_all(a, v, 0);
}

/* A stream's pieces of one place (a block, an item's part): a piece of
 * another place starts a new text. */
static enum wd_err
at_slot(struct gw_detect_answer *a, long slot)
{
	if (slot == a->slot)
		return WD_OK;
	a->slot = slot;
	return text_end(a);
}

static long
index_of(json_t *o, const char *key)
{
	json_int_t i = json_integer_value(json_object_get(o, key));

	return i >= 0 && i < 1024 ? (long)i : 1023;
}

/* ---- chat: choices[].message (whole) or .delta (stream) ---- */

enum wd_err
gw_detect_text_chat(struct gw_detect_answer *a, json_t *root, bool whole)
{
	enum wd_err (*feed)(struct gw_detect_answer *, json_t *) = whole ?
	    gw_detect_feed_one : gw_detect_feed;
	json_t *c, *m, *tc;
	size_t i, j;
	enum wd_err rc;

	json_array_foreach(json_object_get(root, "choices"), i, c) {
		m = json_object_get(c, whole ? "message" : "delta");
		if ((rc = feed(a, json_object_get(m, "content"))) != WD_OK ||
		    (rc = feed(a, json_object_get(m, "refusal"))) != WD_OK)
			return rc;
		json_array_foreach(json_object_get(m, "tool_calls"), j, tc) {
			rc = feed(a, json_object_get(json_object_get(tc, "function"),
			    "arguments"));
			if (rc != WD_OK)
				return rc;
		}
	}
	return WD_OK;
}

/* ---- Anthropic Messages ---- */

/* A whole content block: text, thinking, a tool_use's input strings. */
static enum wd_err
messages_block(struct gw_detect_answer *a, json_t *b)
{
	enum wd_err rc;

	if ((rc = gw_detect_feed_one(a, json_object_get(b, "text"))) != WD_OK ||
	    (rc = gw_detect_feed_one(a, json_object_get(b, "thinking"))) !=
	    WD_OK)
		return rc;
	return gw_detect_feed_all(a, json_object_get(b, "input"));
}

/*
 * Whole: content[] blocks.  Stream: content_block_start begins block
 * `index` (its text, if any, is the start of what the deltas continue);
 * content_block_delta's text, partial_json and thinking continue it;
 * message_start's message may carry whole blocks.
 */
enum wd_err
gw_detect_text_messages(struct gw_detect_answer *a, json_t *root, bool whole)
{
	const char *type = json_string_value(json_object_get(root, "type"));
	json_t *b, *d;
	size_t i;
	enum wd_err rc;

	if (whole || (type != NULL && strcmp(type, "message_start") == 0)) {
		if (!whole)
			root = json_object_get(root, "message");
		json_array_foreach(json_object_get(root, "content"), i, b)
			if ((rc = messages_block(a, b)) != WD_OK)
				return rc;
		return WD_OK;
	}
	if (type == NULL)
		return WD_OK;
	if (strcmp(type, "content_block_start") == 0) {
		a->slot = NO_SLOT;
		if ((rc = at_slot(a, index_of(root, "index"))) != WD_OK)
			return rc;
		b = json_object_get(root, "content_block");
		if ((rc = gw_detect_feed(a, json_object_get(b, "text"))) != WD_OK ||
		    (rc = gw_detect_feed(a, json_object_get(b, "thinking"))) !=
		    WD_OK)
			return rc;
		if (json_object_size(json_object_get(b, "input")) > 0)
			return gw_detect_feed_all(a, json_object_get(b, "input"));
		return WD_OK;
	}
	if (strcmp(type, "content_block_delta") == 0) {
		d = json_object_get(root, "delta");
		if ((rc = at_slot(a, index_of(root, "index"))) != WD_OK ||
		    (rc = gw_detect_feed(a, json_object_get(d, "text"))) != WD_OK ||
		    (rc = gw_detect_feed(a, json_object_get(d, "partial_json"))) !=
		    WD_OK)
			return rc;
		return gw_detect_feed(a, json_object_get(d, "thinking"));
	}
	return WD_OK;
}

/* ---- OpenAI Responses ---- */

/* A content part or summary part: its text or refusal. */
static enum wd_err
responses_part(struct gw_detect_answer *a, json_t *p)
{
	enum wd_err rc;

	if ((rc = gw_detect_feed_one(a, json_object_get(p, "text"))) != WD_OK)
		return rc;
	return gw_detect_feed_one(a, json_object_get(p, "refusal"));
}

/* An output item: a message's content, a call's arguments or input, a
 * reasoning item's summary and content. */
static enum wd_err
responses_item(struct gw_detect_answer *a, json_t *it)
{
	json_t *p;
	size_t i;
	enum wd_err rc;

	json_array_foreach(json_object_get(it, "content"), i, p)
		if ((rc = responses_part(a, p)) != WD_OK)
			return rc;
	json_array_foreach(json_object_get(it, "summary"), i, p)
		if ((rc = responses_part(a, p)) != WD_OK)
			return rc;
	if ((rc = gw_detect_feed_one(a, json_object_get(it, "arguments"))) !=
	    WD_OK)
		return rc;
	return gw_detect_feed_one(a, json_object_get(it, "input"));
}

static enum wd_err
responses_whole(struct gw_detect_answer *a, json_t *resp)
{
	json_t *it;
	size_t i;
	enum wd_err rc;

	json_array_foreach(json_object_get(resp, "output"), i, it)
		if ((rc = responses_item(a, it)) != WD_OK)
			return rc;
	return WD_OK;
}

/*
 * Whole: output[] items.  Stream: every *.delta event (output text,
 * function call arguments, reasoning and summary text, refusal, custom
 * tool input) continues the text of its place (output_index,
 * content_index, summary_index).  The .done events, output_item and
 * content_part events and response.completed repeat what the deltas
 * carried: their values are scanned as texts of their own, so a repeat
 * never joins (or splits) a delta's text.
 */
enum wd_err
gw_detect_text_responses(struct gw_detect_answer *a, json_t *root,
    bool whole)
{
	const char *type = json_string_value(json_object_get(root, "type"));
	size_t tl = type != NULL ? strlen(type) : 0;
	enum wd_err rc;

	if (whole)
		return responses_whole(a, root);
	if (tl > 6 && strcmp(type + tl - 6, ".delta") == 0) {
		if (!json_is_string(json_object_get(root, "delta")))
			return WD_OK;
		if ((rc = at_slot(a, index_of(root, "output_index") << 20 |
		    index_of(root, "content_index") << 10 |
		    index_of(root, "summary_index"))) != WD_OK)
			return rc;
		return gw_detect_feed(a, json_object_get(root, "delta"));
	}
	if ((rc = gw_detect_feed_one(a, json_object_get(root, "text"))) !=
	    WD_OK ||
	    (rc = gw_detect_feed_one(a, json_object_get(root, "arguments"))) !=
	    WD_OK ||
	    (rc = gw_detect_feed_one(a, json_object_get(root, "refusal"))) !=
	    WD_OK ||
	    (rc = gw_detect_feed_one(a, json_object_get(root, "input"))) !=
	    WD_OK ||
	    (rc = responses_part(a, json_object_get(root, "part"))) != WD_OK ||
	    (rc = responses_item(a, json_object_get(root, "item"))) != WD_OK)
		return rc;
	return responses_whole(a, json_object_get(root, "response"));
}

/* Embeddings and token counts: numbers, no text. */
enum wd_err
gw_detect_text_none(struct gw_detect_answer *a, json_t *root, bool whole)
{
	(void)a;
	(void)root;
	(void)whole;
	return WD_OK;
}

/* ---- the scan ---- */

static enum wd_err
text_of(struct gw_detect_answer *a, const char *p, size_t n, bool whole)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	enum wd_err rc;

	/* What is not JSON, or a format that cannot name its text, is
	 * scanned as it is: nothing passes unscanned. */
	if (j == NULL || a->fmt == NULL || a->fmt->answer_text == NULL) {
		a->fed = true;
		rc = det_scan_feed(a->scan, p, n);
	} else {
		rc = a->fmt->answer_text(a, j, whole);
	}
	json_decref(j);
	return rc;
}

/* Which watched detector fired since the last look (or has a match
 * ending where the text so far ends: the next piece may not continue
 * it, and this one must not go out). */
static void
hits(struct gw_detect_answer *a, int *fired)
{
	const uint32_t *counts = det_scan_counts(a->scan);
	uint64_t hit = det_scan_pending(a->scan) & a->mask;

	for (size_t i = 0; i < POL_MAX_DETECTORS; i++)
		if (counts[i] > a->seen[i] && (a->mask & (1ull << i)))
			hit |= 1ull << i;
	memcpy(a->seen, counts, sizeof(a->seen));
	if (hit != 0)
		*fired = __builtin_ctzll(hit);
}

enum wd_err
gw_detect_answer_piece(struct gw_detect_answer *a, const char *ev, size_t n,
    bool whole, int *fired)
{
	enum wd_err rc = WD_OK;

	*fired = -1;
	if (a->scan == NULL)
		return WD_OK;
	if (whole) {
		if ((rc = text_of(a, ev, n, true)) == WD_OK)
			rc = text_end(a);
	} else {
		/* The event's data lines. */
		for (size_t off = 0; off < n && rc == WD_OK;) {
			const char *line = ev + off, *nl = memchr(line, '\n', n - off);
			size_t len = nl ? (size_t)(nl - line) : n - off;

			off += len + 1;
			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (len < 5 || memcmp(line, "data:", 5) != 0)
				continue;
			line += 5;
			len -= 5;
			if (len > 0 && *line == ' ')
				line++, len--;
			if (len == 6 && memcmp(line, "[DONE]", 6) == 0)
				continue;
			rc = text_of(a, line, len, false);
		}
	}
	if (rc != WD_OK)
		return rc;
	hits(a, fired);
	return WD_OK;
}

enum wd_err
gw_detect_mcp_result(struct gw_detect_answer *a, json_t *result, bool call,
    int *fired)
{
	json_t *b;
	size_t i;
	enum wd_err rc;

	*fired = -1;
	if (a->scan == NULL)
		return WD_OK;
	/* Any other result (a resource's contents, a prompt's messages, a
	 * completion's values): every string value, each a text. */
	if (!call) {
		if ((rc = gw_detect_feed_all(a, result)) != WD_OK ||
		    (rc = text_end(a)) != WD_OK)
			return rc;
		hits(a, fired);
		return WD_OK;
	}
	/* content[]: text blocks, embedded resources' text; and the
	 * structured result's strings.  Each value is a text of its own. */
	json_array_foreach(json_object_get(result, "content"), i, b) {
		if ((rc = gw_detect_feed_one(a, json_object_get(b, "text"))) !=
		    WD_OK ||
		    (rc = gw_detect_feed_one(a, json_object_get(json_object_get(b,
		    "resource"), "text"))) != WD_OK)
			return rc;
	}
	if ((rc = gw_detect_feed_all(a, json_object_get(result,
	    "structuredContent"))) != WD_OK || (rc = text_end(a)) != WD_OK)
		return rc;
	hits(a, fired);
	return WD_OK;
}

void
gw_detect_answer_clear(struct gw_detect_answer *a)
{
	det_scan_close(a->scan);
	memset(a, 0, sizeof(*a));
}
