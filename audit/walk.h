/*
 * walk.h - private to audit/: the record walker verify.c and export.c
 * share (walk.c).
 */
#ifndef AUD_WALK_H
#define AUD_WALK_H

#include <openssl/evp.h>

#include "audit/aud.h"

struct aud_walk_leaf {
	unsigned char leaf[32];
	bool cp;			/* a checkpoint record */
	uint64_t nc;			/* records not checkpoints, to here */
	char ts[40];
};

struct aud_walk {
	char prev[AUD_HASH_HEX + 1];
	uint64_t seq;			/* last seen */
	bool first;
	bool export;			/* walking an export (stubs) */
	uint64_t records, stubs, checkpoints, signed_cps;
	struct aud_frontier fr, base;
	struct aud_walk_leaf *ring;
	struct aud_frontier *snaps;
	uint64_t last_cp_size;		/* of the last version 2 checkpoint */
	uint64_t covered;		/* trees up to here are authenticated */
	uint64_t nc, cov_nc;		/* non-checkpoint records, all / covered */
	char uncov_ts[40];		/* ts of the oldest record not covered */
	bool trusted;			/* a key or a pin was given */
	char pin[AUD_HASH_HEX + 1];
	EVP_PKEY *key;
	char *keypem;			/* the pinned key as found */
	bool has_interval;
	int interval_s;			/* of the newest authenticated head */
	bool has_counter;
	uint64_t counter;		/* the newest counter authenticated */
	bool last_cp_counter_set;
	char why[300];
	char *buf;			/* the fast path's canonical text */
	size_t buflen;
	bool fast_failed;
};

enum wd_err aud_walk_init(struct aud_walk *w, const struct aud_verify_opts *o,
    char *errs, size_t errlen);
void aud_walk_free(struct aud_walk *w);
void aud_walk_base(struct aud_walk *w, const char *anchor,
    const struct aud_frontier *base, uint64_t seq_before);
bool aud_walk_key(struct aud_walk *w, const char *pem);
bool aud_walk_sig(EVP_PKEY *key, const void *msg, size_t len, const char *b64);
/* One full record line; false with w->why.  *recp: the record, parsed. */
bool aud_walk_line(struct aud_walk *w, const char *line, size_t len,
    json_t **recp);
/* A line's own part of the fast path, computed alone (on another
 * thread): read, hash recomputed, leaf.  The walker's checks (seq, prev
 * against the record before, the hash's verdict) stay for
 * aud_walk_line_pre, in order. */
struct aud_walk_pre {
	size_t len;			/* the line's length (its caller's) */
	bool fast;			/* false: the line takes the slow path */
	bool hash_ok;			/* SHA-256(prev || C) = its hash */
	uint64_t seq;
	char prev[AUD_HASH_HEX + 1];
	char hash[AUD_HASH_HEX + 1];
	char ts[40];
	unsigned char leaf[32];
};
bool aud_walk_pre(const char *line, size_t len, struct aud_walk_pre *p,
    char **buf, size_t *buflen);
/* aud_walk_line (no record back) with p computed for this line already
 * (NULL, or not fast: as aud_walk_line). */
bool aud_walk_line_pre(struct aud_walk *w, const char *line, size_t len,
    const struct aud_walk_pre *p);
bool aud_walk_stub(struct aud_walk *w, uint64_t seq, const char *prev,
    const char *leafhex, const char *hash);
uint64_t aud_walk_uncovered(const struct aud_walk *w);
bool aud_walk_stale(const struct aud_walk *w, int64_t now_us);

#endif /* AUD_WALK_H */
