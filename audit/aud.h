/*
 * aud.h - the audit module: a hash-chained, append-only log of every
 * decision warden makes, written by one thread per log with group commit,
 * and the tools that verify and export it.
 *
 * Owns the log directory (segment files, kept payloads, the inbox through
 * which other processes' events reach the chain).  The keys of what it
 * keeps (the payload HMAC key, per-tenant data keys) are not its own: the
 * TPM holds them, reached through struct aud_keys.  The gateway builds
 * each record's fields as a JSON object and submits it; this module adds
 * seq, prev and hash, writes, fsyncs, and tells the submitter when the
 * record is durable.  The byte-exact format is audit/FORMAT.md.
 */
#ifndef AUD_H
#define AUD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/wd.h"
#include "common/wd_json.h"

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
/*
 * The keys of what the log keeps outside the chain, held elsewhere (in the
 * TPM, through gateway/paykeys.c).  audit/ never sees a data key: it hands
 * plaintext and gets ciphertext back, and the other way round.
 */
struct aud_keys {
	/* The HMAC key for payload digests into key (32 bytes), made on
	 * first use; dir is the log's directory. */
	enum wd_err (*hmac_key)(void *ctx, const char *dir, unsigned char *key,
	    char *err, size_t errlen);
	/* AES-256-GCM under the data key of tenant and month ("YYYY-MM"):
	 * encrypt creates the key if missing and fills nonce and tag;
	 * decrypt checks tag into out (len bytes).  WD_EDESTROYED: the key
	 * was destroyed; WD_ENOTFOUND: there never was one. */
	enum wd_err (*crypt)(void *ctx, bool encrypt, const char *tenant,
	    const char *month, const void *aad, size_t aadlen,
	    const unsigned char *in, size_t len, unsigned char *out,
	    unsigned char nonce[12], unsigned char tag[16], char *err,
	    size_t errlen);
	/* Destroy the data keys of tenant (NULL: every tenant) of months
	 * before `before` (NULL: every month), appending {"tenant","month",
	 * "nv"} per key destroyed to ids. */
	enum wd_err (*destroy)(void *ctx, const char *tenant,
	    const char *before, json_t *ids, char *err, size_t errlen);
	/* Another process destroyed tenant's keys: wipe cached copies. */
	void (*forget)(void *ctx, const char *tenant);
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
	/* NULL: no TPM; digests use DIR/payload.key in clear (development
	 * only) and no payload is kept. */
	const struct aud_keys *keys;
	/* Only to append events (the CLI, when no gateway holds the log):
	 * no payload key, no sweep. */
	bool events_only;
	/* A log behind the TPM counter (rolled back) is refused with
	 * WD_EROLLBACK unless this is set; the rollback_detected record is
	 * written either way. */
	bool accept_rollback;
};

/*
 * Open (create) the log in opts->dir and start its writer thread.  A torn
 * last line from a crash is cut and a `recovery` record says what was
 * found.  The tree files (DIR/tree/) are checked and rebuilt from the
 * segments if they do not match.  With a counter, a log whose last
 * checkpoint is behind the counter gets a `rollback_detected` record and
 * WD_EROLLBACK (the log is closed) unless opts->accept_rollback.  errs
 * gets a message on failure.
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

/*
 * A record's canonical text written directly (canon.c), for records made
 * on every request: no jansson tree, no sort.  Members are given in
 * bytewise key order (aud_canon_key, then one value); objects and arrays
 * nest (aud_canon_obj/arr ... aud_canon_close).  instance and ts are the
 * log's (added here); prev, seq and hash are added at append.  Any misuse
 * (a key out of order, a string not UTF-8, too big) fails the record, not
 * the process: aud_try_append_canon then says WD_EINVAL and the caller
 * builds the record as a jansson object instead.
 */
#define AUD_CANON_DEPTH 8
#define AUD_CANON_MAX ((size_t)16 << 20)
struct aud_canon {
	struct wd_jbuf b;		/* the text; b.fail: the record failed */
	size_t at_prev, at_seq;
	unsigned depth;
	bool arr[AUD_CANON_DEPTH];
	size_t n[AUD_CANON_DEPTH];
	const char *last[AUD_CANON_DEPTH];
	bool value_next;
	unsigned nreserved;	/* how many of the log's members are placed */
	const char *instance;
	char ts[40];
};
void aud_canon_begin(struct aud_canon *c, const struct aud_log *log);
/* The same with a given instance and ts (NULL: now): tests. */
void aud_canon_begin_as(struct aud_canon *c, const char *instance,
    const char *ts);
void aud_canon_keyn(struct aud_canon *c, const char *key, size_t n);
/* key: a C string (its length is worked out at compile time for a
 * literal). */
#define aud_canon_key(c, key) aud_canon_keyn((c), (key), strlen(key))
void aud_canon_str(struct aud_canon *c, const char *s);	/* NULL: null */
void aud_canon_null(struct aud_canon *c);
void aud_canon_bool(struct aud_canon *c, bool b);
void aud_canon_int(struct aud_canon *c, long long v);
/* A jansson value as jansson serialises it (sorted keys, compact). */
void aud_canon_json(struct aud_canon *c, const json_t *v);
/* A value given as JSON text, written as aud_canon_json would write its
 * tree, for the shapes a provider's usage takes: objects (keys without
 * escapes, each once), arrays, integers, strings without escapes, true,
 * false, null.  False for anything else (a real, an escape, a duplicate
 * key, deeper than 6): then nothing was written, and the caller writes
 * the tree. */
bool aud_canon_raw(struct aud_canon *c, const char *text, size_t len);
void aud_canon_obj(struct aud_canon *c);
void aud_canon_arr(struct aud_canon *c);
void aud_canon_close(struct aud_canon *c);
void aud_canon_free(struct aud_canon *c);
/* Append c's record (c is spent either way): WD_OK written as
 * aud_try_append writes; WD_EINVAL the record could not be written
 * directly; WD_EIO the log is failing.  On either failure nothing was
 * queued: the caller builds the record as a jansson object and uses
 * aud_try_append / aud_append. */
enum wd_err aud_try_append_canon(struct aud_log *log, struct aud_canon *c);
/*
 * The same for n records at once, in order, with one turn of the write
 * lock and one write(): the records a worker finished in one turn of its
 * event loop.  written[i] says which were written (all of them, or none
 * when the log is failing; a record that could not be made is left out).
 * Every cs[i] is spent.  At most AUD_APPEND_MAX.
 */
#define AUD_APPEND_MAX 64
enum wd_err aud_try_append_canons(struct aud_log *log, struct aud_canon *cs,
    size_t n, bool *written);

/* Ask the writer thread for a checkpoint of everything appended so far
 * and wait up to timeout_ms for it (reloads, tests). */
enum wd_err aud_checkpoint_sync(struct aud_log *log, int timeout_ms);

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
 * DIR/payloads/TENANT/, encrypted under the tenant's key for the month it
 * expires in.  WD_EUNSUPPORTED when the log has no keys (no TPM). */
enum wd_err aud_payload_store(const struct aud_log *log, const char *tenant,
    const char *decision_id, int ttl_days, json_t *payload);
/*
 * Decrypt decision_id's payload into memory from alloc(arg, len) (the
 * caller's locked memory); *len, *tenant (64+1) say what was found.
 * WD_ENOTFOUND: no such payload (never kept, expired or purged);
 * WD_EDESTROYED: its key was destroyed; err says which and why.
 */
enum wd_err aud_payload_read(const char *dir, const struct aud_keys *keys,
    const char *decision_id, unsigned char *(*alloc)(void *arg, size_t len),
    void *arg, size_t *len, char tenant[65], char *err, size_t errlen);
/* Delete expired payloads; returns how many.  With keys, also destroy
 * the data keys of months that are over, listed in ids (may be NULL). */
size_t aud_payload_sweep(const char *dir);
enum wd_err aud_payload_expire(const char *dir, const struct aud_keys *keys,
    json_t *ids, size_t *files, char *err, size_t errlen);
/* Destroy every data key of tenant (ids lists them), then delete its
 * payload files (*files of them).  If the keys cannot be destroyed
 * nothing is deleted. */
enum wd_err aud_payload_purge(const char *dir, const struct aud_keys *keys,
    const char *tenant, json_t *ids, size_t *files, char *err, size_t errlen);
/* The month ("YYYY-MM", UTC) a payload expiring at t is keyed under. */
void aud_key_month(time_t t, char out[8]);

/* ---- events from other processes (inbox.c) ---- */

/*
 * Put an event (kind and its fields; never a secret value) into the log
 * of dir from a process that is not its writer (`warden secrets`, `warden
 * audit purge`).  It is written atomically into DIR/inbox/ with who asked
 * (uid, user, sudo user, host, pid) and when; if no warden holds the log
 * it is appended at once, otherwise the running writer takes it into the
 * chain within a second (this waits up to wait_ms for that).
 * *in_chain: whether it is in the chain on return.  Takes ownership of rec.
 */
enum wd_err aud_post_event(const char *dir, json_t *rec, int wait_ms,
    bool *in_chain, char *err, size_t errlen);
/*
 * How a process that appends directly (no writer holds the log) signs
 * what it appended: a checkpoint at close with signer, carrying counter
 * (bumped; the log's rollback check applies at open as for the gateway).
 * checkpoint_interval_s 0: the interval the log's last checkpoint
 * carried.  aud_post_event is this with d NULL (appended unsigned).
 */
struct aud_direct {
	const struct aud_signer *signer;
	const struct aud_counter *counter;
	int checkpoint_interval_s;
};
enum wd_err aud_post_event_direct(const char *dir, json_t *rec, int wait_ms,
    const struct aud_direct *d, bool *in_chain, bool *appended, char *err,
    size_t errlen);
/* Check an inbox file's bytes: a JSON object of a known kind, none of
 * the fields the writer sets.  *out: the record (caller owns). */
enum wd_err aud_event_parse(const char *buf, size_t len, json_t **out,
    char *why, size_t whylen);

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
/* aud_line that also gives the record's Merkle leaf hash (leaf, raw). */
char *aud_line_leaf(json_t *rec, const char *prev, char hash[AUD_HASH_HEX + 1],
    unsigned char leaf[32], size_t *len);

/* ---- the Merkle tree (merkle.c), RFC 9162 section 2.1 ---- */

#define AUD_MAX_LEVELS 64
#define AUD_MAX_PATH 128		/* hashes in any proof of a 2^64 tree */

/* SHA-256(0x00 || c) and SHA-256(0x01 || l || r). */
void aud_leaf_hash(const void *c, size_t len, unsigned char out[32]);
void aud_node_hash(const unsigned char l[32], const unsigned char r[32],
    unsigned char out[32]);

/* The compact range of a tree: node[k] is the root of the perfect
 * subtree bit k of size stands for. */
struct aud_frontier {
	uint64_t size;
	unsigned char node[AUD_MAX_LEVELS][32];
};
/* Append a leaf; node(), if given, sees every node completed by it
 * (level 0: the leaf itself), in level order. */
void aud_frontier_push(struct aud_frontier *f, const unsigned char leaf[32],
    void (*node)(void *ctx, unsigned level, const unsigned char h[32]),
    void *ctx);
void aud_frontier_root(const struct aud_frontier *f, unsigned char out[32]);

/* Where proofs find the perfect subtrees: node index at level (covering
 * leaves [index << level, (index + 1) << level)). */
struct aud_nodes {
	enum wd_err (*get)(void *ctx, unsigned level, uint64_t index,
	    unsigned char out[32]);
	void *ctx;
};
struct aud_proof_path {
	size_t n;
	unsigned char h[AUD_MAX_PATH][32];
};
enum wd_err aud_inclusion_path(const struct aud_nodes *s, uint64_t index,
    uint64_t size, struct aud_proof_path *out);
enum wd_err aud_consistency_path(const struct aud_nodes *s, uint64_t first,
    uint64_t second, struct aud_proof_path *out);
bool aud_verify_inclusion(uint64_t index, uint64_t size,
    const unsigned char leaf[32], const struct aud_proof_path *p,
    const unsigned char root[32]);
bool aud_verify_consistency(uint64_t first, uint64_t second,
    const unsigned char first_root[32], const unsigned char second_root[32],
    const struct aud_proof_path *p);

/* What a version 2 checkpoint signs (audit/FORMAT.md). */
struct aud_tree_head {
	uint64_t size;
	unsigned char root[32];
	int64_t time_us;
	bool has_counter;
	uint64_t counter;
	int interval_s;			/* the writer's checkpoint_interval_s */
};
int aud_tree_head_msg(char *buf, size_t len, const struct aud_tree_head *th);

/* ---- verification and export (verify.c) ---- */

/* Exit statuses of the verifiers. */
#define AUD_VERIFIED 0			/* valid, authenticated by the key */
#define AUD_INVALID 1
#define AUD_UNREADABLE 2
#define AUD_UNAUTHENTICATED 3		/* consistent, not authenticated */

struct aud_verify_opts {
	const char *pubkey_pem_path;	/* the auditor's key, or NULL */
	const char *pin;		/* or: hex SHA-256 of the key's DER */
	bool progress;			/* a progress bar on stderr */
	bool has_tpm_counter;		/* compare the last checkpoint with: */
	uint64_t tpm_counter;
	int64_t now_us;			/* 0: the clock (tests set it) */
	/* Tests: bytes read at a time (0: AUD_VERIFY_WINDOW), and a call
	 * after each window of a segment was walked. */
	size_t window;
	void (*after_window)(void *arg, const char *path);
	void *hook_arg;
};
#define AUD_VERIFY_WINDOW ((size_t)16 << 20)

/*
 * `warden audit verify DIR`: AUD_VERIFIED only if a trusted key was given
 * (o->pubkey_pem_path, or the key pinned by o->pin that the log's
 * checkpoints name) and every record is covered by a checkpoint it
 * verifies; records that no checkpoint covers older than the checkpoint
 * interval plus AUD_SLACK_S are AUD_INVALID, younger ones give
 * AUD_UNAUTHENTICATED.
 */
#define AUD_SLACK_S 60
int aud_verify_dir(const char *dir, const struct aud_verify_opts *o,
    FILE *out);
/*
 * What aud_verify_dir found, as data for callers that act on it (the
 * auditor's report): status is the AUD_* exit status; the records seq 1
 * to covered are under the newest tree head the trusted key signed (the
 * checkpoint record at signed_seq); why is the line verify prints.
 */
struct aud_verify_result {
	int status;			/* AUD_VERIFIED ... AUD_UNAUTHENTICATED */
	uint64_t records;		/* lines read (checkpoints included) */
	uint64_t segments;
	uint64_t last_seq;
	uint64_t checkpoints;		/* consistent checkpoint records */
	uint64_t signed_checkpoints;	/* of those, verified with the key */
	uint64_t covered;		/* tree size of the newest signed head */
	uint64_t signed_seq;		/* seq of that checkpoint record; 0 none */
	uint64_t uncovered;		/* non-checkpoint records after it */
	bool has_counter;
	uint64_t counter;		/* the TPM counter it carries */
	char fingerprint[AUD_HASH_HEX + 1];	/* the trusted key's; "" none */
	char why[512];
};
/* aud_verify_dir, also filling *res (out may be NULL: nothing printed). */
int aud_verify_dir_result(const char *dir, const struct aud_verify_opts *o,
    FILE *out, struct aud_verify_result *res);
/* `warden audit verify DIR --witness FILE`: every checkpoint line in
 * FILE (one per line, as struct aud_witness's send() gave them) signed by
 * the trusted key, standing in the log at its seq, and the log's tree of
 * its size having its root.  AUD_* statuses. */
int aud_verify_witness(const char *dir, const char *path,
    const struct aud_verify_opts *o, FILE *out);
/* SHA-256 of the DER SubjectPublicKeyInfo of a PEM key, as 64 hex (the
 * fingerprint --pin takes: `openssl pkey -pubin -outform DER | sha256sum`). */
enum wd_err aud_key_fingerprint(const char *pem, size_t len,
    char out[AUD_HASH_HEX + 1]);

struct aud_export_opts {
	const char *format;		/* jsonl | csv */
	int64_t since_us, until_us;	/* 0: open */
	const char *tenant;		/* NULL: all */
	const char *verdict;		/* NULL: all */
	const struct aud_signer *signer;	/* signs the manifest; NULL: unsigned */
};

/* RFC 3339 UTC time to microseconds since the epoch; 0 if not one. */
int64_t aud_parse_ts(const char *ts);

int aud_export(const char *dir, const struct aud_export_opts *o,
    const char *outpath, FILE *msgs);
/* `warden audit verify-export FILE`: the AUD_* statuses above, against
 * the trusted key in o (the file's own claims are never trusted). */
int aud_verify_export(const char *path, const struct aud_verify_opts *o,
    FILE *out);

/* ---- proofs (proof.c) ---- */

/* `warden audit prove DIR SEQ [--checkpoint N]`: the inclusion proof of
 * record seq against checkpoint cp_seq (0: the newest covering it), as
 * JSON on out.  AUD_VERIFIED, or AUD_INVALID/AUD_UNREADABLE with why. */
int aud_prove_inclusion(const char *dir, uint64_t seq, uint64_t cp_seq,
    FILE *out, FILE *msgs);
/* `warden audit prove DIR --consistency A B`: between checkpoints whose
 * records are seq a and b. */
int aud_prove_consistency(const char *dir, uint64_t a, uint64_t b,
    FILE *out, FILE *msgs);
/* `warden audit verify-proof FILE`: a proof checked alone against the
 * trusted key (AUD_* statuses). */
int aud_verify_proof(const char *path, const struct aud_verify_opts *o,
    FILE *out);

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
	const char *pin;		/* or: the key's SHA-256, as verify --pin */
};
/* `warden audit report` (report_html.c): verify DIR with the trusted
 * key (aud_verify_dir_result), then write one self-contained HTML page to
 * out counting only the records under the newest signed tree head.
 * Returns the verification's exit status; for 1, 2 and 3 the page says
 * NOT VERIFIED on top and shows no figures. */
int aud_report_html(const char *dir, const struct aud_report_opts *o,
    FILE *out, FILE *msgs);

#endif /* AUD_H */
