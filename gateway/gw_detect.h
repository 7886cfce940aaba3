/*
 * gw_detect.h - private to gateway/: content detection (detect/) applied
 * to every API format and to MCP.  gateway/detect.c walks a request's
 * text (every format's messages, content blocks, tool arguments and
 * results; an MCP tools/call's arguments) through one scanner before the
 * policy decides, and redacts what the decision says to redact;
 * detect_answer.c scans an answer (whole, or a stream event by event,
 * its text named by the answer's format) and an MCP tools/call result.
 *
 * Called by the transaction (txn.c: requests; txn_upstream.c: answers),
 * the MCP endpoint (mcp.c) and cli_policy.c (warden check).
 * A scanner that cannot run is an error the caller answers with 503
 * detector_unavailable: nothing goes out unscanned.
 */
#ifndef GW_DETECT_H
#define GW_DETECT_H

#include <jansson.h>

#include "policy/pol.h"

struct det_scan;

/* One request's detections; the texts are borrowed from the chat root. */
struct gw_detect {
	struct det_scan *scan;		/* NULL: nothing scanned */
	json_t **texts;			/* string values, in scan order */
	size_t ntexts;
	uint32_t counts[POL_MAX_DETECTORS];
};

/*
 * Scan the request's text against snap's detectors (nothing to do when
 * the rules have none).  *counts (may be NULL) points at the counts for
 * pol_facts.det_counts, or is NULL when nothing was scanned.
 * WD_ENOMEM / WD_EIO: the detector cannot run; refuse the request.
 */
enum wd_err gw_detect_request(struct gw_detect *d,
    const struct pol_snapshot *snap, json_t *root, const uint32_t **counts);
/* The same for an MCP tools/call's params.arguments: every string value
 * in it, at any depth (/metrics: where="mcp"). */
enum wd_err gw_detect_mcp_args(struct gw_detect *d,
    const struct pol_snapshot *snap, json_t *args, const uint32_t **counts);
/*
 * Replace what redacting detectors found with their placeholders, in the
 * JSON string values themselves (the body stays valid JSON).  WD_ELIMIT:
 * more detections than can be kept to redact; refuse the request.
 */
enum wd_err gw_detect_redact(struct gw_detect *d,
    const struct pol_snapshot *snap);
void gw_detect_clear(struct gw_detect *d);

struct gw_format;

/* A streamed or whole answer, scanned by the detectors with answers: on. */
struct gw_detect_answer {
	struct det_scan *scan;
	const struct gw_format *fmt;	/* the answer's; NULL: MCP results */
	uint64_t mask;			/* detectors that watch answers */
	uint32_t seen[POL_MAX_DETECTORS];
	bool fed;			/* the current text has bytes */
	long slot;			/* where the stream's text is (a block) */
};

/* fmt's answer_text names the text of its answers (NULL: MCP). */
enum wd_err gw_detect_answer_open(struct gw_detect_answer *a,
    const struct pol_snapshot *snap, const struct gw_format *fmt);
/*
 * One SSE event (or, with whole set, a whole JSON answer) of the answer:
 * its text pieces go through the scanner.  *fired gets the detector
 * index whose match completes (or may complete) in it, or -1.
 */
enum wd_err gw_detect_answer_piece(struct gw_detect_answer *a,
    const char *ev, size_t n, bool whole, int *fired);
/* An MCP result: a tools/call's (call) content[] text, embedded
 * resources' text, structuredContent's strings; any other request's
 * every string value. */
enum wd_err gw_detect_mcp_result(struct gw_detect_answer *a, json_t *result,
    bool call, int *fired);
void gw_detect_answer_clear(struct gw_detect_answer *a);

/*
 * For the formats' answer_text (struct gw_format): feed v as the next
 * piece of the current text; v as a text of its own; every string in v,
 * each a text of its own.  Not strings: nothing.
 */
enum wd_err gw_detect_feed(struct gw_detect_answer *a, json_t *v);
enum wd_err gw_detect_feed_one(struct gw_detect_answer *a, json_t *v);
enum wd_err gw_detect_feed_all(struct gw_detect_answer *a, json_t *v);
/* The walkers the format tables name (detect_answer.c). */
enum wd_err gw_detect_text_chat(struct gw_detect_answer *a, json_t *root,
    bool whole);
enum wd_err gw_detect_text_messages(struct gw_detect_answer *a, json_t *root,
    bool whole);
enum wd_err gw_detect_text_responses(struct gw_detect_answer *a,
    json_t *root, bool whole);
enum wd_err gw_detect_text_none(struct gw_detect_answer *a, json_t *root,
    bool whole);

/* /metrics: warden_detections_total{detector, where} (metrics.c); where
 * is request, answer, mcp (tools/call arguments) or mcp_result. */
void gw_metrics_detect(const char *detector, const char *where, uint32_t n);

#endif /* GW_DETECT_H */
