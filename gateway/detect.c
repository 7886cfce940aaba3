/*
 * detect.c - content detection on requests: which text of a request of
 * any format is scanned (chat messages' content and tool call arguments;
 * Messages' system and content blocks, tool_use input and tool results;
 * Responses' instructions and input items; Embeddings' input; an MCP
 * tools/call's arguments), and the redaction of what was found.  Answers
 * are detect_answer.c's.
 *
 * Each string value is one text for the scanner: a match never spans two
 * values, and a value's offsets are the offsets the redaction uses.
 */
#include "gateway/gw_detect.h"
#include "detect/det.h"

#include <stdlib.h>
#include <string.h>

/* String values of one request that are scanned: a body of at most
 * server.max_body_bytes holds fewer. */
#define MAX_TEXTS 65536

static enum wd_err
add_text(struct gw_detect *d, json_t *v)
{
	json_t **n;

	if (!json_is_string(v) || json_string_length(v) == 0)
		return WD_OK;
	if (d->ntexts >= MAX_TEXTS)
		return WD_ELIMIT;
	if ((d->ntexts & (d->ntexts - 1)) == 0 || d->ntexts == 0) {
		size_t cap = d->ntexts == 0 ? 16 : d->ntexts * 2;

		if ((n = realloc(d->texts, cap * sizeof(*n))) == NULL)
			return WD_ENOMEM;
		d->texts = n;
	}
	d->texts[d->ntexts++] = v;
	return WD_OK;
}

/* Nesting followed into content blocks and tool arguments: deeper than
 * any format nests text (jansson itself stops at 2048). */
#define MAX_DEPTH 64

/* Every string value inside v, at any depth (object keys are names, not
 * data): tool arguments, MCP arguments. */
static enum wd_err
add_all(struct gw_detect *d, json_t *v, int depth)
{
	const char *k;
	json_t *e;
	size_t i;
	enum wd_err rc;

	if (depth > MAX_DEPTH)
		return WD_ELIMIT;
	if (json_is_string(v))
		return add_text(d, v);
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((rc = add_all(d, e, depth + 1)) != WD_OK)
				return rc;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, e)
			if ((rc = add_all(d, e, depth + 1)) != WD_OK)
				return rc;
	}
	return WD_OK;
}

static enum wd_err add_blocks(struct gw_detect *d, json_t *c, int depth);

/*
 * One content block or part of any format: its text (chat and Responses
 * parts, Messages text blocks), thinking, a tool_use's input (every
 * string of it), a tool_result's content, a document's text source.
 * Ids, names, types and media data are not text.
 */
static enum wd_err
add_block(struct gw_detect *d, json_t *b, int depth)
{
	const char *type = json_string_value(json_object_get(b, "type"));
	json_t *src = json_object_get(b, "source");
	enum wd_err rc;

	if (depth > MAX_DEPTH)
		return WD_ELIMIT;
	if ((rc = add_text(d, json_object_get(b, "text"))) != WD_OK ||
	    (rc = add_text(d, json_object_get(b, "thinking"))) != WD_OK ||
	    (rc = add_blocks(d, json_object_get(b, "content"), depth + 1)) !=
	    WD_OK)
		return rc;
	if (type != NULL && (strcmp(type, "tool_use") == 0 ||
	    strcmp(type, "server_tool_use") == 0) &&
	    (rc = add_all(d, json_object_get(b, "input"), depth + 1)) != WD_OK)
		return rc;
	if (json_is_object(src) && json_is_string(json_object_get(src, "type")) &&
	    strcmp(json_string_value(json_object_get(src, "type")), "text") == 0 &&
	    (rc = add_text(d, json_object_get(src, "data"))) != WD_OK)
		return rc;
	if (json_is_object(src))
		return add_blocks(d, json_object_get(src, "content"), depth + 1);
	return WD_OK;
}

/* content: a string, or blocks (parts) read by add_block. */
static enum wd_err
add_blocks(struct gw_detect *d, json_t *c, int depth)
{
	size_t i;
	json_t *part;
	enum wd_err rc;

	if (json_is_string(c))
		return add_text(d, c);
	json_array_foreach(c, i, part) {
		if ((rc = add_block(d, part, depth)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

/*
 * The other formats' text (issue 13): Messages' system and content
 * blocks, Responses' instructions and input (a string, or items: message
 * content, function_call arguments, outputs (a string or parts), custom
 * tool input, reasoning summaries), Embeddings' input strings.  One
 * policy for all: what chat's messages would be scanned for is scanned
 * wherever the format puts it.  No value is added twice (redaction
 * rewrites each once).
 */
static enum wd_err
collect_formats(struct gw_detect *d, json_t *root)
{
	json_t *in = json_object_get(root, "input"), *it;
	size_t i;
	enum wd_err rc;

	if ((rc = add_blocks(d, json_object_get(root, "system"), 0)) != WD_OK ||
	    (rc = add_text(d, json_object_get(root, "instructions"))) != WD_OK)
		return rc;
	if (json_is_string(in))
		return add_text(d, in);
	json_array_foreach(in, i, it) {
		if ((rc = add_text(d, it)) != WD_OK ||
		    (rc = add_blocks(d, json_object_get(it, "content"), 0)) !=
		    WD_OK ||
		    (rc = add_text(d, json_object_get(it, "arguments"))) != WD_OK ||
		    (rc = add_blocks(d, json_object_get(it, "output"), 0)) != WD_OK ||
		    (rc = add_text(d, json_object_get(it, "input"))) != WD_OK ||
		    (rc = add_blocks(d, json_object_get(it, "summary"), 0)) != WD_OK)
			return rc;
	}
	return WD_OK;
}

static enum wd_err
collect(struct gw_detect *d, json_t *root)
{
	json_t *m, *tc;
	size_t i, j;
	enum wd_err rc;

	if ((rc = collect_formats(d, root)) != WD_OK)
		return rc;

	json_array_foreach(json_object_get(root, "messages"), i, m) {
		if ((rc = add_blocks(d, json_object_get(m, "content"), 0)) != WD_OK)
			return rc;
		json_array_foreach(json_object_get(m, "tool_calls"), j, tc) {
			rc = add_text(d, json_object_get(json_object_get(tc,
			    "function"), "arguments"));
			if (rc != WD_OK)
				return rc;
		}
		rc = add_text(d, json_object_get(json_object_get(m,
		    "function_call"), "arguments"));
		if (rc != WD_OK)
			return rc;
	}
	return WD_OK;
}

/* The texts collected go through one scanner; counts to metrics. */
static enum wd_err
scan_texts(struct gw_detect *d, const struct pol_snapshot *snap,
    const char *where, const uint32_t **counts)
{
	enum wd_err rc;

	if ((rc = det_scan_open(snap->detect.db, &d->scan)) != WD_OK)
		return rc;
	for (size_t i = 0; i < d->ntexts; i++) {
		json_t *v = d->texts[i];

		if ((rc = det_scan_feed(d->scan, json_string_value(v),
		    json_string_length(v))) != WD_OK ||
		    (rc = det_scan_next_text(d->scan)) != WD_OK)
			return rc;
	}
	memcpy(d->counts, det_scan_counts(d->scan), sizeof(d->counts));
	for (size_t i = 0; i < snap->detect.n; i++)
		if (d->counts[i] > 0)
			gw_metrics_detect(snap->detect.d[i].id, where, d->counts[i]);
	if (counts != NULL)
		*counts = d->counts;
	return WD_OK;
}

enum wd_err
gw_detect_request(struct gw_detect *d, const struct pol_snapshot *snap,
    json_t *root, const uint32_t **counts)
{
	enum wd_err rc;

	if (counts != NULL)
		*counts = NULL;
	if (snap->detect.db == NULL)
		return WD_OK;
	if ((rc = collect(d, root)) != WD_OK)
		return rc;
	return scan_texts(d, snap, "request", counts);
}

enum wd_err
gw_detect_mcp_args(struct gw_detect *d, const struct pol_snapshot *snap,
    json_t *args, const uint32_t **counts)
{
	enum wd_err rc;

	if (counts != NULL)
		*counts = NULL;
	if (snap->detect.db == NULL)
		return WD_OK;
	if ((rc = add_all(d, args, 0)) != WD_OK)
		return rc;
	return scan_texts(d, snap, "mcp", counts);
}

static int
span_cmp(const void *a, const void *b)
{
	const struct det_span *x = a, *y = b;

	if (x->text != y->text)
		return x->text < y->text ? -1 : 1;
	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	return x->to < y->to ? 1 : x->to > y->to ? -1 : 0;
}

/* Text v with the spans sp[0..n) (sorted, one text) replaced. */
static enum wd_err
redact_one(const struct pol_snapshot *snap, json_t *v,
    const struct det_span *sp, size_t n)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), out = 0, cap = len + 1;
	uint64_t at = 0;
	char *buf;
	enum wd_err rc = WD_OK;

	for (size_t i = 0; i < n; i++)
		cap += strlen(snap->detect.d[sp[i].det].placeholder);
	if ((buf = malloc(cap)) == NULL)
		return WD_ENOMEM;
	for (size_t i = 0; i < n;) {
		const char *ph = snap->detect.d[sp[i].det].placeholder;
		uint64_t from = sp[i].from, to = sp[i].to;

		/* Overlapping spans of several detectors become one, named
		 * after the one that starts first. */
		for (i++; i < n && sp[i].from < to; i++)
			if (sp[i].to > to)
				to = sp[i].to;
		if (to > len)
			to = len;
		if (from < at)
			from = at;
		memcpy(buf + out, s + at, (size_t)(from - at));
		out += (size_t)(from - at);
		memcpy(buf + out, ph, strlen(ph));
		out += strlen(ph);
		at = to;
	}
	memcpy(buf + out, s + at, len - (size_t)at);
	out += len - (size_t)at;
	/* A pattern may cut a UTF-8 sequence: then this fails, and the
	 * request is refused rather than sent half redacted. */
	if (json_string_setn(v, buf, out) != 0)
		rc = WD_EINVAL;
	wd_wipe(buf, cap);
	free(buf);
	return rc;
}

enum wd_err
gw_detect_redact(struct gw_detect *d, const struct pol_snapshot *snap)
{
	const struct det_span *all;
	struct det_span *sp;
	size_t n, k = 0;
	enum wd_err rc = WD_OK;

	if (d->scan == NULL)
		return WD_OK;
	if (det_scan_spans_lost(d->scan))
		return WD_ELIMIT;
	all = det_scan_spans(d->scan, &n);
	if (n == 0)
		return WD_OK;
	if ((sp = malloc(n * sizeof(*sp))) == NULL)
		return WD_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (snap->detect.d[all[i].det].action == POL_DET_REDACT &&
		    all[i].text < d->ntexts)
			sp[k++] = all[i];
	qsort(sp, k, sizeof(*sp), span_cmp);
	for (size_t i = 0; i < k && rc == WD_OK;) {
		size_t j = i;

		while (j < k && sp[j].text == sp[i].text)
			j++;
		rc = redact_one(snap, d->texts[sp[i].text], sp + i, j - i);
		i = j;
	}
	free(sp);
	return rc;
}

void
gw_detect_clear(struct gw_detect *d)
{
	det_scan_close(d->scan);
	free(d->texts);
	memset(d, 0, sizeof(*d));
}
