/*
 * gw_detect.h - private to gateway/: content detection (detect/) applied
 * to the OpenAI chat format.  gateway/detect.c walks a request's text
 * (message content and content parts, tool call arguments, tool results)
 * through one scanner before the policy decides, and redacts what the
 * decision says to redact; it scans a streamed answer event by event.
 *
 * Called by the transaction (txn.c: requests; txn_upstream.c: answers)
 * and cli_policy.c (warden check).
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
/*
 * Replace what redacting detectors found with their placeholders, in the
 * JSON string values themselves (the body stays valid JSON).  WD_ELIMIT:
 * more detections than can be kept to redact; refuse the request.
 */
enum wd_err gw_detect_redact(struct gw_detect *d,
    const struct pol_snapshot *snap);
void gw_detect_clear(struct gw_detect *d);

/* A streamed or whole answer, scanned by the detectors with answers: on. */
struct gw_detect_answer {
	struct det_scan *scan;
	uint64_t mask;			/* detectors that watch answers */
	uint32_t seen[POL_MAX_DETECTORS];
};

enum wd_err gw_detect_answer_open(struct gw_detect_answer *a,
    const struct pol_snapshot *snap);
/*
 * One SSE event (or, with whole set, a whole JSON answer) of the answer:
 * its text pieces go through the scanner.  *fired gets the detector
 * index whose match completes (or may complete) in it, or -1.
 */
enum wd_err gw_detect_answer_piece(struct gw_detect_answer *a,
    const char *ev, size_t n, bool whole, int *fired);
void gw_detect_answer_clear(struct gw_detect_answer *a);

/* /metrics: warden_detections_total{detector, where} (metrics.c). */
void gw_metrics_detect(const char *detector, const char *where, uint32_t n);

#endif /* GW_DETECT_H */
