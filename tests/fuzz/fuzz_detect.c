/*
 * fuzz_detect.c - the content scanner (detect/) on text cut into pieces
 * of fuzzer-chosen sizes, and the redaction of what it found in a chat
 * body (gateway/detect.c).
 *
 * Input: the first 8 bytes are piece sizes (1..64, used in a cycle); the
 * rest is one text.  Invariants: every detection lies inside the text;
 * the pieces find what one piece finds (same count per validated
 * detector: the look-back window holds every match they read back); the
 * redacted body is still JSON and holds none of the redacted spans'
 * bytes where a placeholder now stands.  A text that is JSON is also
 * read as a request body of any format, as MCP arguments and result,
 * and as a whole answer and a stream event of each format (the walkers
 * of detect.c and detect_answer.c): they must not fail or crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "detect/det.h"
#include "gateway/gw_detect.h"
#include "gateway/gw_int.h"
#include "policy/pol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pol_snapshot *snap;

/* Every built-in, card and iban redacted, one rules pattern. */
static void
init(void)
{
	char path[] = "/tmp/fuzz-detect-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (f == NULL)
		abort();
	fprintf(f, "version: 1\ndata_classes: [personal, financial]\n"
	    "providers:\n  - { id: p, base_url: 'http://127.0.0.1:1/v1', "
	    "country: IE, credential: c, models: [m] }\n"
	    "tenants:\n  - { id: t, keys: ['sha256:%064d'], routes: [p] }\n"
	    "detect:\n", 0);
	for (int i = 0; i < DET_NBUILTIN; i++)
		fprintf(f, "  %s: { class: personal%s }\n", det_builtin_name(i),
		    i == DET_CARD || i == DET_IBAN || i == DET_EMAIL ?
		    ", action: redact, answers: true" : "");
	fprintf(f, "  patterns:\n    - { id: emp, regex: 'EMP-[0-9]{4,8}', "
	    "class: personal, action: redact }\n");
	fclose(f);
	if (pol_load(path, stderr, &snap) != WD_OK)
		abort();
	unlink(path);
}

static void
scan(const char *t, size_t len, const uint8_t *sizes, size_t nsizes,
    uint32_t counts[DET_MAX], uint64_t *fired)
{
	struct det_scan *s;
	const struct det_span *sp;
	size_t off = 0, k = 0, n;

	if (det_scan_open(snap->detect.db, &s) != WD_OK)
		abort();
	while (off < len) {
		size_t step = nsizes ? (size_t)(sizes[k++ % nsizes] % 64) + 1 : len;

		if (step > len - off)
			step = len - off;
		if (det_scan_feed(s, t + off, step) != WD_OK)
			abort();
		off += step;
	}
	if (det_scan_next_text(s) != WD_OK || det_scan_pending(s) != 0)
		abort();
	sp = det_scan_spans(s, &n);
	for (size_t i = 0; i < n; i++)
		if (sp[i].from >= sp[i].to || sp[i].to > len || sp[i].text != 0)
			abort();
	memcpy(counts, det_scan_counts(s), DET_MAX * sizeof(uint32_t));
	*fired = det_scan_fired(s);
	det_scan_close(s);
}

/* The text as JSON: every format's walkers. */
static void
walk_json(const char *t, size_t len)
{
	static const struct gw_format *const fmts[] = { &gw_format_chat,
		&gw_format_messages, &gw_format_responses, &gw_format_embeddings };
	json_t *root = json_loadb(t, len, 0, NULL);
	struct gw_detect d = { 0 };
	struct gw_detect_answer a;
	const uint32_t *c;
	char *ev;
	int fired;
	enum wd_err rc;

	if (root == NULL)
		return;
	rc = gw_detect_request(&d, snap, root, &c);
	if (rc != WD_OK && rc != WD_ELIMIT)
		abort();
	rc = gw_detect_redact(&d, snap);
	if (rc != WD_OK && rc != WD_EINVAL && rc != WD_ELIMIT)
		abort();
	gw_detect_clear(&d);
	rc = gw_detect_mcp_args(&d, snap, root, &c);
	if (rc != WD_OK && rc != WD_ELIMIT)
		abort();
	gw_detect_clear(&d);
	if (gw_detect_answer_open(&a, snap, NULL) != WD_OK)
		abort();
	/* Both readings: a tools/call's result, any other result. */
	for (int call = 0; call < 2; call++) {
		rc = gw_detect_mcp_result(&a, root, call == 1, &fired);
		if (rc != WD_OK && rc != WD_ELIMIT)
			abort();
	}
	gw_detect_answer_clear(&a);
	json_decref(root);
	if (asprintf(&ev, "event: x\ndata: %.*s\n\n", (int)len, t) < 0)
		abort();
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		if (gw_detect_answer_open(&a, snap, fmts[i]) != WD_OK)
			abort();
		rc = gw_detect_answer_piece(&a, t, len, true, &fired);
		if (rc != WD_OK && rc != WD_ELIMIT)
			abort();
		rc = gw_detect_answer_piece(&a, ev, strlen(ev), false, &fired);
		if (rc != WD_OK && rc != WD_ELIMIT)
			abort();
		gw_detect_answer_clear(&a);
	}
	free(ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t whole[DET_MAX], pieces[DET_MAX];
	uint64_t fw, fp;
	const char *t;
	size_t len;
	json_t *root, *v;

	if (snap == NULL)
		init();
	if (size < 8)
		return 0;
	t = (const char *)data + 8;
	len = size - 8;
	walk_json(t, len);
	scan(t, len, NULL, 0, whole, &fw);
	scan(t, len, data, 8, pieces, &fp);
	if (fw != fp)
		abort();
	for (int d = 0; d < DET_NBUILTIN; d++)
		if (d != DET_SECRET && whole[d] != pieces[d])
			abort();
	/* Redaction, on the text as a chat message (if it is UTF-8). */
	v = json_stringn(t, len);
	if (v == NULL)
		return 0;
	root = json_pack("{s:s,s:[{s:s,s:o}]}", "model", "m", "messages", "role",
	    "user", "content", v);
	{
		struct gw_detect d = { 0 };
		const uint32_t *c;
		enum wd_err rc = gw_detect_request(&d, snap, root, &c);
		char *out;

		if (rc != WD_OK)
			abort();
		rc = gw_detect_redact(&d, snap);
		if (rc != WD_OK && rc != WD_EINVAL && rc != WD_ELIMIT)
			abort();
		out = json_dumps(root, JSON_COMPACT);
		if (out == NULL)
			abort();
		free(out);
		gw_detect_clear(&d);
	}
	json_decref(root);
	return 0;
}
