/*
 * detect.c - content detection on the chat format: which text of a
 * request is scanned (every message's content, string or text parts;
 * tool call arguments; tool results), the redaction of what was found,
 * and the scan of an answer's text as its events pass.
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

/* content: a string, or parts of which the text ones are read. */
static enum wd_err
add_content(struct gw_detect *d, json_t *c)
{
	size_t i;
	json_t *part;
	enum wd_err rc;

	if (json_is_string(c))
		return add_text(d, c);
	json_array_foreach(c, i, part) {
		if ((rc = add_text(d, json_object_get(part, "text"))) != WD_OK)
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

	json_array_foreach(json_object_get(root, "messages"), i, m) {
		if ((rc = add_content(d, json_object_get(m, "content"))) != WD_OK)
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
			gw_metrics_detect(snap->detect.d[i].id, "request",
			    d->counts[i]);
	if (counts != NULL)
		*counts = d->counts;
	return WD_OK;
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

enum wd_err
gw_detect_answer_open(struct gw_detect_answer *a,
    const struct pol_snapshot *snap)
{
	memset(a, 0, sizeof(*a));
	if (snap->detect.db == NULL || snap->detect.answers == 0)
		return WD_OK;
	a->mask = snap->detect.answers;
	return det_scan_open(snap->detect.db, &a->scan);
}

static enum wd_err
feed(struct gw_detect_answer *a, json_t *v)
{
	if (!json_is_string(v))
		return WD_OK;
	return det_scan_feed(a->scan, json_string_value(v),
	    json_string_length(v));
}

/* The text of one chunk (delta) or whole answer (message). */
static enum wd_err
feed_choices(struct gw_detect_answer *a, json_t *root, const char *key)
{
	json_t *c, *m, *tc;
	size_t i, j;
	enum wd_err rc;

	json_array_foreach(json_object_get(root, "choices"), i, c) {
		m = json_object_get(c, key);
		if ((rc = feed(a, json_object_get(m, "content"))) != WD_OK)
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

enum wd_err
gw_detect_answer_piece(struct gw_detect_answer *a, const char *ev, size_t n,
    bool whole, int *fired)
{
	const uint32_t *counts;
	uint64_t hit;
	enum wd_err rc = WD_OK;

	*fired = -1;
	if (a->scan == NULL)
		return WD_OK;
	if (whole) {
		json_t *j = json_loadb(ev, n, 0, NULL);

		rc = j != NULL ? feed_choices(a, j, "message") :
		    det_scan_feed(a->scan, ev, n);
		json_decref(j);
		if (rc == WD_OK)
			rc = det_scan_next_text(a->scan);
	} else {
		/* The event's data lines; what is not JSON is scanned as it
		 * is (the tool policy judges its form). */
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
			json_t *j = json_loadb(line, len, 0, NULL);

			rc = j != NULL ? feed_choices(a, j, "delta") :
			    det_scan_feed(a->scan, line, len);
			json_decref(j);
		}
	}
	if (rc != WD_OK)
		return rc;
	counts = det_scan_counts(a->scan);
	/* A match that ends where the text so far ends counts too: the
	 * next piece may not continue it, and this one must not go out. */
	hit = det_scan_pending(a->scan) & a->mask;
	for (size_t i = 0; i < POL_MAX_DETECTORS; i++)
		if (counts[i] > a->seen[i] && (a->mask & (1ull << i)))
			hit |= 1ull << i;
	memcpy(a->seen, counts, sizeof(a->seen));
	if (hit != 0)
		*fired = __builtin_ctzll(hit);
	return WD_OK;
}

void
gw_detect_answer_clear(struct gw_detect_answer *a)
{
	det_scan_close(a->scan);
	memset(a, 0, sizeof(*a));
}
