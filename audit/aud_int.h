/*
 * aud_int.h - private to audit/: the log's state, shared by open.c (start
 * and recovery) and writer.c (the writer thread).
 */
#ifndef AUD_INT_H
#define AUD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/evp.h>

#include "audit/aud.h"

#define AUD_SEGMENT_FMT "audit-%06llu.jsonl"
#define AUD_KEY_FILE "payload.key"
#define AUD_TREE_DIR "tree"
/* A checkpoint may sign a tree at most this many records behind its own
 * seq (records appended while the TPM signed); verifiers keep as many
 * leaves back. */
#define AUD_CP_MAX_LAG 60000u
#define AUD_BUMP_EVERY_S 60	/* the TPM counter, at most once a minute */

/* Where a checkpoint record is: its seq, segment and byte offset. */
struct aud_cp_entry {
	uint64_t seq, segno, offset;
};

/* Nodes completed but not yet written to a level file. */
struct aud_pend {
	unsigned char *p;
	size_t len, cap;
};

/* The writer's tree (tiles.c); under the log's wlock. */
struct aud_tree {
	char *logdir;
	struct aud_frontier fr;
	int fd[AUD_MAX_LEVELS];
	struct aud_pend pend[AUD_MAX_LEVELS];
	/* Taken from pend under the lock, written without it (the writer
	 * thread's sync: appenders do not wait on the tree's writes). */
	struct aud_pend out[AUD_MAX_LEVELS];
	int cpfd;
	bool broken;			/* a write failed: rebuilt at next open */
};

struct aud_tree_reader {
	int fd[AUD_MAX_LEVELS];
};

struct aud_pre {
	char *text;
	size_t len, at_prev, at_seq;
	size_t cap;			/* of text, from aud_canon_end (else 0) */
};
/* A written record's text (from aud_canon_end) let go: kept for the
 * thread's next record, or freed. */
void aud_canon_text_done(struct aud_pre *pre);

struct aud_item {
	json_t *rec;
	struct aud_pre pre;		/* rec serialised already, or text NULL */
	bool cp;			/* a checkpoint: indexed, witnessed */
	void (*done)(void *arg, enum wd_err rc);
	void *arg;
	struct aud_item *next;
};

struct aud_log {
	struct aud_opts o;		/* dir and instance point below */
	char *dir;
	char *instance;
	int fd;				/* current segment, O_APPEND */
	int lockfd;			/* flock()ed while the log is ours */
	uint64_t segno;
	size_t segbytes;
	time_t segstart;
	uint64_t seq;			/* last written */
	char prev[AUD_HASH_HEX + 1];	/* its hash */
	unsigned char hmac_key[32];	/* payload digests */
	pthread_t th;
	bool started;
	pthread_mutex_t wlock;		/* the file, seq, prev: one writer */
	pthread_mutex_t mu;		/* guards the queue and stop */
	pthread_cond_t cv;
	struct aud_item *head, *tail;
	size_t nqueued;
	bool stop;
	atomic_bool healthy;
	atomic_bool dirty;		/* appended, not yet fsynced */
	atomic_bool wfail;		/* a write failed; cleared by one that works */
	char lasterr[256];
	/* Written under wlock, read by the writer thread's wait too. */
	atomic_uint since_cp;		/* records since the last checkpoint */
	atomic_ullong last_cp_us;
	uint64_t last_batch_us;		/* when the last batch was taken */
	uint64_t last_sweep_us;		/* payload TTL sweep */
	struct aud_mac *mac;		/* digest.c: HMAC midstates, locked */
	uint64_t dropped;
	uint64_t last_inbox_us;		/* inbox.c: events of other processes */
	struct aud_tree tree;		/* under wlock */
	EVP_MD_CTX *mdctx;		/* under wlock: the lines' digests */
	char *linebuf;			/* under wlock: a line being written */
	size_t linecap;
	char *batchbuf;			/* under wlock: a batch's lines */
	size_t batchcap;
	unsigned char last_leaf[32];	/* recovery: the last record's leaf */
	struct aud_cp_entry *tailcps;	/* recovery: checkpoints in the */
	size_t ntailcps;		/* last segment */
	atomic_ullong cp_size;		/* tree size the last checkpoint signed */
	atomic_bool cp_force;		/* checkpoint at once (open, asked) */
	pthread_cond_t cpcv;		/* with mu: a checkpoint was written */
	bool no_final_cp;		/* refused at open: nothing to sign */
	char *cpline;			/* the last checkpoint line written */
	size_t cplen;
	bool bumped_once;		/* the counter was bumped since open */
	uint64_t last_bump_us;
	uint64_t cp_retry_us;		/* a failed checkpoint: not before */
};

enum wd_err aud_start_writer(struct aud_log *l);
enum wd_err aud_mac_init(struct aud_log *l);
void aud_mac_free(struct aud_log *l);
enum wd_err aud_open_segment(struct aud_log *l, uint64_t segno);
void aud_fsync_dir(const char *dir);

/* Take DIR/inbox/ into the chain (writer thread, or aud_close after it
 * stopped: never two at once); the hourly payload sweep. */
void aud_inbox_ingest(struct aud_log *l);
void aud_payload_housekeeping(struct aud_log *l);
bool aud_inbox_due(const struct aud_log *l);

/* Segment files of dir in order; *n of them.  Caller frees each and v. */
char **aud_segments(const char *dir, size_t *n);

/* aud_split_line into buf (buflen bytes, at least the line's length + 2):
 * no allocation. */
char *aud_split_line_into(const char *line, size_t len,
    char hash[AUD_HASH_HEX + 1], size_t *clen, char *buf, size_t buflen);
/* A record serialised before its seq and prev are known (outside the
 * log's lock): its canonical text and where "prev" and "seq" go.  False
 * (use aud_line) if rec cannot be prepared. */
bool aud_line_prepare(json_t *rec, struct aud_pre *pre);
/* The line aud_line would give for the record with seq and prev; ctx, if
 * not NULL, is a digest context to use (the writer keeps one). */
char *aud_line_splice(const struct aud_pre *pre, uint64_t seq,
    const char *prev, char hash[AUD_HASH_HEX + 1], unsigned char leaf[32],
    size_t *len, EVP_MD_CTX *ctx);
/* The same into *buf (*cap bytes, grown as needed; the caller's). */
char *aud_line_splice_into(const struct aud_pre *pre, uint64_t seq,
    const char *prev, char hash[AUD_HASH_HEX + 1], unsigned char leaf[32],
    size_t *len, EVP_MD_CTX *ctx, char **buf, size_t *cap);

/* Finish c into pre (the splice's input); false (c freed) if the record
 * failed. */
bool aud_canon_end(struct aud_canon *c, struct aud_pre *pre);
/* Now as a record's ts: RFC 3339, UTC, microseconds. */
void aud_ts_now(char *buf, size_t len);

/* aud_check_line that also gives the leaf. */
bool aud_check_line_leaf(const char *canon, size_t clen, const char *prev,
    const char *hash, unsigned char leaf[32]);
/* SHA-256, fetched once (chain.c). */
const EVP_MD *aud_sha256(void);
/* This thread's digest context, reused for every hash (merkle.c);
 * NULL when out of memory. */
EVP_MD_CTX *aud_md_ctx(void);

/* The tree head a version 2 checkpoint line signs (proof.c); *j, if not
 * NULL, gets the record. */
bool aud_cp_head(const char *line, size_t len, struct aud_tree_head *th,
    json_t **j);

/* ---- the tree on disk (tiles.c) ---- */
void aud_tree_init(struct aud_tree *t);
/* Check the files against a log of size records whose last leaf is
 * last (tail: checkpoints recovery found in the last segment); rebuild
 * from the segments if they do not match (*rebuilt). */
enum wd_err aud_tree_open(struct aud_tree *t, const char *dir, uint64_t size,
    const unsigned char last[32], const struct aud_cp_entry *tail,
    size_t ntail, bool *rebuilt);
void aud_tree_add(struct aud_tree *t, const unsigned char leaf[32]);
void aud_tree_flush(struct aud_tree *t);
/* aud_tree_flush in two steps: take the pending nodes (under the lock),
 * then write them (without it; one thread at a time). */
void aud_tree_take(struct aud_tree *t);
void aud_tree_write_taken(struct aud_tree *t);
void aud_tree_note_checkpoint(struct aud_tree *t, uint64_t seq,
    uint64_t segno, uint64_t offset);
void aud_tree_free(struct aud_tree *t);
enum wd_err aud_tree_reader_open(struct aud_tree_reader *r, const char *dir);
void aud_tree_reader_close(struct aud_tree_reader *r);
enum wd_err aud_tree_reader_get(void *ctx, unsigned level, uint64_t index,
    unsigned char out[32]);
/* The checkpoint index of dir; caller frees *out. */
enum wd_err aud_tree_checkpoints(const char *dir, struct aud_cp_entry **out,
    size_t *n);
json_t *aud_checkpoint_at(const char *dir, const struct aud_cp_entry *e);
/* The line at offset of segment segno, without its newline; caller frees. */
char *aud_read_line_at(const char *dir, uint64_t segno, uint64_t offset,
    size_t *len);

#endif /* AUD_INT_H */
