/*
 * det.h - the detection module: finds personal data and secrets in text
 * (e-mail, phone numbers, IBANs, payment cards, IP addresses, national
 * identifiers, provider keys ...) and the rules' own patterns.
 *
 * It owns the compiled detector database (struct det_db: one Hyperscan
 * streaming database for every detector of one rules snapshot, built by
 * det_db_compile() when the rules load and freed with the snapshot) and
 * the per-text scanners (struct det_scan: one Hyperscan stream, a bounded
 * look-back window and the detections found so far).  Per-thread scratch
 * space is its own business (thread-local, no lock on the scan path).
 *
 * Data may arrive in pieces: det_scan_feed() takes each piece as it comes
 * and nothing is buffered but the last DET_WINDOW bytes, which is enough
 * to confirm a match whose start lies in an earlier piece (every built-in
 * detector's match is shorter than the window).  A match is confirmed by
 * its checksum where one exists (IBAN mod-97, Luhn, the check digits of
 * national identifiers) and only once the byte after it is known not to
 * continue it, so "4111111111111111" inside a longer number is no card.
 *
 * Called by policy/ (compiles the database while loading the rules) and
 * by gateway/ (scans requests and streamed answers).  Knows nothing of
 * JSON, HTTP or policy: it reports which detector fired where, and how
 * often.
 */
#ifndef DET_H
#define DET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wd.h"

/* Built-in detectors, in the order of det_builtin_name(). */
enum det_builtin {
	DET_EMAIL = 0,
	DET_PHONE,
	DET_IBAN,
	DET_CARD,
	DET_IPV4,
	DET_IPV6,
	DET_US_SSN,
	DET_UK_NINO,
	DET_FR_NIR,
	DET_DE_TAXID,
	DET_SECRET,
	DET_NBUILTIN
};

#define DET_MAX 64			/* detectors per database: a mask */
#define DET_MAX_PATTERNS 48		/* the rules' own patterns */
#define DET_MAX_REGEX 1024		/* bytes of one rules pattern */
#define DET_WINDOW 512			/* look-back kept per scanner */
#define DET_MAX_SPANS 1024		/* detections kept per scanner */

/* The name of built-in detector i ("iban"), or NULL past the end. */
const char *det_builtin_name(int i);
/* The built-in detector called name, or -1. */
int det_builtin_index(const char *name);

/* A detector to compile: a built-in (regex NULL) or a rules pattern. */
struct det_spec {
	const char *id;			/* built-in name or the pattern's id */
	int builtin;			/* enum det_builtin, or -1 */
	const char *regex;		/* rules pattern (Hyperscan syntax) */
};

struct det_db;

/*
 * Compile the detectors in specs (at most DET_MAX) into one streaming
 * database.  Detector i of the database is specs[i].  On WD_ECONFIG,
 * which names the detector whose pattern Hyperscan refuses and why is
 * in err (*bad gets its index); WD_ENOMEM otherwise.
 */
enum wd_err det_db_compile(const struct det_spec *specs, size_t n,
    struct det_db **out, char *err, size_t errlen, size_t *bad);
void det_db_free(struct det_db *db);
size_t det_db_count(const struct det_db *db);
const char *det_db_name(const struct det_db *db, size_t i);
/* Bytes of one scanner's stream state. */
size_t det_db_stream_bytes(const struct det_db *db);

/*
 * Memory budget for this database's scanners in flight, across threads
 * (the rules' detect.max_memory): each scanner reserves its stream state
 * and itself with one atomic add.  A scanner that does not fit is refused
 * with WD_ENOMEM, like a failed allocation.  0: no budget.
 */
void det_db_set_budget(struct det_db *db, size_t bytes);

/* One detection: where (offsets in its text) and which detector. */
struct det_span {
	uint32_t text;			/* which text (det_scan_next_text) */
	uint32_t det;			/* detector index in the database */
	uint64_t from, to;		/* byte offsets in that text, [from, to) */
};

struct det_scan;

/*
 * A scanner over one database.  WD_ENOMEM when the stream, the thread's
 * scratch or the budget cannot be had: the caller must then refuse what
 * it was to scan (fail closed).
 */
enum wd_err det_scan_open(const struct det_db *db, struct det_scan **out);
/* The next piece of the current text. */
enum wd_err det_scan_feed(struct det_scan *s, const char *p, size_t len);
/* The current text ended: matches at its end are settled; the next feed
 * starts a new text (its offsets start at 0 again). */
enum wd_err det_scan_next_text(struct det_scan *s);
void det_scan_close(struct det_scan *s);

/* Detections so far: count per detector, and the spans kept. */
const uint32_t *det_scan_counts(const struct det_scan *s);
uint64_t det_scan_fired(const struct det_scan *s);	/* detector mask */
const struct det_span *det_scan_spans(const struct det_scan *s, size_t *n);
bool det_scan_spans_lost(const struct det_scan *s);	/* over DET_MAX_SPANS */
/*
 * Detectors whose valid match ends exactly where the data fed so far
 * ends: it is a detection unless the next byte continues it.  A stream
 * that must not let a match out asks this before it forwards a piece.
 */
uint64_t det_scan_pending(const struct det_scan *s);

/* Validators (validate.c), exported for the tests: text is the candidate
 * exactly as matched, separators included. */
bool det_luhn_ok(const char *p, size_t n);
bool det_iban_ok(const char *p, size_t n);
bool det_us_ssn_ok(const char *p, size_t n);
bool det_uk_nino_ok(const char *p, size_t n);
bool det_fr_nir_ok(const char *p, size_t n);
bool det_de_taxid_ok(const char *p, size_t n);
bool det_ipv4_ok(const char *p, size_t n);
bool det_ipv6_ok(const char *p, size_t n);
bool det_email_ok(const char *p, size_t n);
bool det_phone_ok(const char *p, size_t n);

#endif /* DET_H */
