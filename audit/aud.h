/*
 * aud.h - the audit module: a hash-chained, append-only log of every
 * decision warden makes, written by one thread per log with group commit,
 * and the tools that verify and export it.
 *
 * Owns the log directory (segment files, the HMAC key for payload
 * digests).  The gateway builds each record's fields as a JSON object and
 * submits it; this module adds seq, prev and hash, writes, fsyncs, and
 * tells the submitter when the record is durable.  The byte-exact format
 * is audit/FORMAT.md.
 */
#ifndef AUD_H
#define AUD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/wd.h"

#define AUD_HASH_HEX 64
#define AUD_SUFFIX_LEN 75	/* ,"hash":"<64 hex>"} */

struct aud_log;

/* Signs checkpoint messages; the key lives elsewhere (the TPM). */
struct aud_signer {
	/* DER ECDSA signature over SHA-256(msg) into sig (*siglen in/out). */
	enum wd_err (*sign)(void *ctx, const unsigned char *msg, size_t len,
	    unsigned char *sig, size_t *siglen);
	void *ctx;
	const char *pubkey_pem;		/* its public key */
};

/* The TPM monotonic counter (rollback detection).  next() is called on
 * the writer thread for each checkpoint: bump is true at open, at close
 * and when at least 60 s passed since the last bump (the writer
 * decides); *value gets the counter's value after any bump. */
struct aud_counter {
	enum wd_err (*next)(void *ctx, bool bump, uint64_t *value);
	void *ctx;
};
/* Sends each checkpoint off the host as it is made (witnesses).
 * Called on the writer thread after the checkpoint line is durable;
 * must not block for long. */
struct aud_witness {
	void (*send)(void *ctx, const char *line, size_t len);
	void *ctx;
};

struct aud_opts {
	const char *dir;
	const char *instance;		/* this process's id */
	bool strict;			/* durability: strict */
	int group_commit_ms;		/* at most one fsync per window */
	size_t segment_max_bytes;
	int segment_max_age_s;
	unsigned checkpoint_every;	/* records; 0: never by count */
	int checkpoint_interval_s;	/* 0: never by time */
	const struct aud_signer *signer;	/* NULL: no checkpoints */
	const struct aud_counter *counter;	/* NULL: none */
	const struct aud_witness *witness;	/* NULL: none */
};

/*
 * Open (create) the log in opts->dir and start its writer thread.  A torn
 * last line from a crash is cut and a `recovery` record says what was
 * found.  errs gets a message on failure.
 */
enum wd_err aud_open(const struct aud_opts *opts, struct aud_log **out,
    char *errs, size_t errlen);
/* Write what is queued, a final checkpoint, and stop. */
void aud_close(struct aud_log *log);

/*
 * Append a record now (ownership of rec moves here): on WD_OK its line is
 * in the file (durable within the group-commit window); WD_EIO means the
 * log is failing and the record waits in memory for the retry, so the
 * caller must not acknowledge what it describes.  Thread-safe.
 */
enum wd_err aud_append(struct aud_log *log, json_t *rec);
/* The same, but on failure the record is handed back in *rec_back (the
 * caller may amend it, then aud_append it to wait for the retry). */
enum wd_err aud_try_append(struct aud_log *log, json_t *rec,
    json_t **rec_back);

/*
 * aud_append, reporting to done (old interface).  kind and ts are added if
 * absent.  done, if not NULL, is called from the writer thread once the
 * record is on disk (WD_OK) or could not be written (WD_EIO); the caller
 * hops back to its own thread.
 */
void aud_submit(struct aud_log *log, json_t *rec,
    void (*done)(void *arg, enum wd_err rc), void *arg);

/* False while the log cannot be written: the gateway answers 503. */
bool aud_healthy(const struct aud_log *log);
const char *aud_last_error(const struct aud_log *log);
bool aud_strict(const struct aud_log *log);

/* HMAC-SHA256 of data with the log's payload key, as 64 hex. */
void aud_payload_digest(const struct aud_log *log, const void *data,
    size_t len, char out[AUD_HASH_HEX + 1]);
/* An HMAC computed in pieces (streams). */
struct aud_hmac;
struct aud_hmac *aud_hmac_new(const struct aud_log *log);
void aud_hmac_update(struct aud_hmac *h, const void *data, size_t len);
void aud_hmac_final(struct aud_hmac *h, char out[AUD_HASH_HEX + 1]);

/* ---- kept payloads (payload.c): outside the chain ---- */

/* A request or answer body with every message text replaced by its size
 * (the `redacted` mode).  Caller owns the result. */
json_t *aud_redact(const char *body, size_t len, bool is_request);
/* Keep payload (ownership stays with the caller) for ttl_days under
 * DIR/payloads/TENANT/. */
enum wd_err aud_payload_store(const struct aud_log *log, const char *tenant,
    const char *decision_id, int ttl_days, json_t *payload);
/* Delete expired payloads; returns how many. */
size_t aud_payload_sweep(const char *dir);
/* Delete every payload of tenant; returns how many. */
size_t aud_payload_purge(const char *dir, const char *tenant);

/* ---- the chain (chain.c): shared by the writer and the verifier ---- */

/*
 * The line for rec (which holds seq and prev, not hash): canonical JSON
 * with the hash appended as the last member, and a newline.  *hash gets
 * the hex hash.  Caller frees the line.
 */
char *aud_line(json_t *rec, const char *prev, char hash[AUD_HASH_HEX + 1],
    size_t *len);
/*
 * Split a line (without its newline) into the canonical text (returned,
 * caller frees) and the hash it claims; NULL if the line is not one of
 * ours.  aud_check_line recomputes the hash with prev.
 */
char *aud_split_line(const char *line, size_t len, char hash[AUD_HASH_HEX + 1],
    size_t *clen);
bool aud_check_line(const char *canon, size_t clen, const char *prev,
    const char *hash);
/* The checkpoint message that is signed: "<seq>:<hash>". */
int aud_checkpoint_msg(char *buf, size_t len, uint64_t seq, const char *hash);

/* ---- verification and export (verify.c) ---- */

struct aud_verify_opts {
	const char *pubkey_pem_path;	/* NULL: signatures not checked */
	bool progress;			/* a progress bar on stderr */
};

/* `warden audit verify DIR`: 0 valid, 1 invalid, 2 could not read. */
int aud_verify_dir(const char *dir, const struct aud_verify_opts *o,
    FILE *out);

struct aud_export_opts {
	const char *format;		/* jsonl | csv */
	int64_t since_us, until_us;	/* 0: open */
	const char *tenant;		/* NULL: all */
	const char *verdict;		/* NULL: all */
	const char *pubkey_pem;		/* embedded for the auditor */
};

/* RFC 3339 UTC time to microseconds since the epoch; 0 if not one. */
int64_t aud_parse_ts(const char *ts);

int aud_export(const char *dir, const struct aud_export_opts *o,
    const char *outpath, FILE *msgs);
/* `warden audit verify-export FILE`: 0 valid, 1 invalid, 2 unreadable. */
int aud_verify_export(const char *path, FILE *out);

/* ---- for auditors: stats, register, tail, report (issue 18) ---- */

/*
 * Read DIR's records in order, checking each line's hash and its link to
 * the one before (not signatures: aud_verify_dir does that), and call fn
 * with each (borrowed) up to max_seq (0: all); fn returning non-zero
 * stops.  A line still being written is left for later.  Returns 0, 1
 * (the chain is broken: why says where) or 2 (cannot read).
 */
int aud_read_records(const char *dir, uint64_t max_seq,
    int (*fn)(void *arg, json_t *rec), void *arg, char *why, size_t whylen);

struct aud_stats_opts {
	int64_t since_us, until_us;	/* 0: open */
	const char *tenant;		/* NULL: all */
	uint64_t max_seq;		/* 0: all */
};
/* Count the request records of DIR (stats.c); *out gets a JSON object:
 * requests, first, last, counts by verdict, rule, route, country, tenant,
 * app, agent, data_class, code, denied_by_rule, tool_violations (agent ->
 * rule), keep, by_hour, by_day (bucket -> verdict) and the register
 * (array of {data_class, country, requests, routes, rules,
 * legal_basis}).  Returns as aud_read_records. */
int aud_stats(const char *dir, const struct aud_stats_opts *o, json_t **out,
    char *why, size_t whylen);
void aud_stats_print(json_t *st, FILE *out);
void aud_register_print(json_t *st, const char *tenant, bool csv, FILE *out);

struct aud_tail_opts {
	bool follow;			/* -f: wait for more, across segments */
	const char *tenant, *verdict;	/* NULL: all */
	int poll_ms;			/* how often to look when following */
	volatile int *stop;		/* set by a signal handler: return 0 */
};
/* `warden audit tail` (tail.c): one line per record; 0 at the end (or
 * stop), 1 when the chain breaks (said loudly), 2 unreadable. */
int aud_tail(const char *dir, const struct aud_tail_opts *o, FILE *out);

/* HTML helpers shared by the report pages (html.c). */
void aud_html_esc(FILE *f, const char *s);
/* A bar chart as inline SVG: n bars of labels[i] with values[i]. */
void aud_html_bars(FILE *f, const char *title, const char *const *labels,
    const long long *values, size_t n);

struct aud_report_opts {
	const char *tenant;		/* NULL: all */
	int64_t since_us, until_us;
	const char *pubkey_pem_path;	/* the auditor's trusted key */
	json_t *art30;			/* the rules' extract for tenant, or NULL */
};
/* `warden audit report` (report_html.c): verify DIR with the trusted
 * key, then write one self-contained HTML page to out.  Returns the
 * verification's exit status (0 verified; the page says so on top). */
int aud_report_html(const char *dir, const struct aud_report_opts *o,
    FILE *out, FILE *msgs);

#endif /* AUD_H */
