/*
 * walk.c - what `audit verify` and `audit verify-export` share: walking
 * records in order and checking, per record, the chain (seq, prev, hash)
 * and its Merkle leaf, and per checkpoint, that the tree head it signs is
 * the tree of the records before it and that the trusted key signed it.
 *
 * A version 2 checkpoint may sign a tree a little behind its own seq
 * (records appended while the TPM signed, at most AUD_CP_MAX_LAG): the
 * walker keeps that many leaves back and a copy of the frontier every
 * SNAP_EVERY leaves, so it can compute the root of any recent size.
 *
 * Trust: only the key the auditor gives (or the key whose fingerprint is
 * pinned) authenticates; a key in the file is used only if it matches the
 * pin.  What the walker learns: how far the authenticated trees reach
 * (covered), and the interval and counter the newest one carries.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define SNAP_EVERY 64u
#define RING (AUD_CP_MAX_LAG + 2 * SNAP_EVERY)
#define NSNAPS (RING / SNAP_EVERY + 2)

static EVP_PKEY *
load_pubkey(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

enum wd_err
aud_key_fingerprint(const char *pem, size_t len, char out[AUD_HASH_HEX + 1])
{
	EVP_PKEY *k = load_pubkey(pem, len);
	unsigned char *der = NULL, d[32];
	int n;

	if (k == NULL)
		return WD_EPARSE;
	n = i2d_PUBKEY(k, &der);
	EVP_PKEY_free(k);
	if (n <= 0)
		return WD_EPARSE;
	wd_sha256(der, (size_t)n, d);
	OPENSSL_free(der);
	wd_hex(d, sizeof(d), out);
	return WD_OK;
}

enum wd_err
aud_walk_init(struct aud_walk *w, const struct aud_verify_opts *o,
    char *errs, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	memset(w->prev, '0', AUD_HASH_HEX);
	w->first = true;
	w->ring = calloc(RING, sizeof(*w->ring));
	w->snaps = calloc(NSNAPS, sizeof(*w->snaps));
	if (w->ring == NULL || w->snaps == NULL)
		return WD_ENOMEM;
	w->uncov_ts[0] = '\0';
	if (o == NULL)
		return WD_OK;
	if (o->pubkey_pem_path != NULL) {
		size_t len;
		char *pem = wd_slurp(o->pubkey_pem_path, 1u << 20, &len);

		w->key = pem ? load_pubkey(pem, len) : NULL;
		free(pem);
		if (w->key == NULL) {
			snprintf(errs, errlen, "%s: not a PEM public key",
			    o->pubkey_pem_path);
			return WD_EPARSE;
		}
		w->trusted = true;
	} else if (o->pin != NULL) {
		if (strlen(o->pin) != AUD_HASH_HEX) {
			snprintf(errs, errlen, "--pin wants the 64 hex digits of the "
			    "key's SHA-256 fingerprint");
			return WD_EPARSE;
		}
		for (size_t i = 0; i < AUD_HASH_HEX; i++)
			w->pin[i] = (char)(o->pin[i] | 0x20);	/* lower case */
		w->trusted = true;
	}
	return WD_OK;
}

void
aud_walk_free(struct aud_walk *w)
{
	EVP_PKEY_free(w->key);
	free(w->keypem);
	free(w->ring);
	free(w->snaps);
	free(w->buf);
}

/* Start at a base: the chain's anchor and the frontier of the tree of
 * the records before (exports). */
void
aud_walk_base(struct aud_walk *w, const char *anchor,
    const struct aud_frontier *base, uint64_t seq_before)
{
	snprintf(w->prev, sizeof(w->prev), "%s", anchor);
	w->fr = *base;
	w->base = *base;
	w->seq = seq_before;
	w->first = false;
	w->cov_nc = 0;
	w->nc = 0;
	w->covered = base->size;	/* what precedes is the manifest's */
}

/*
 * Use a key named in the file (a checkpoint's or a manifest's pubkey)
 * only if it is the pinned one; with --pubkey the given key is used and
 * the file's is ignored.  False with why if the file's key is not it.
 */
bool
aud_walk_key(struct aud_walk *w, const char *pem)
{
	char fp[AUD_HASH_HEX + 1];
	EVP_PKEY *k;

	if (w->pin[0] == '\0')
		return true;
	if (pem == NULL || aud_key_fingerprint(pem, strlen(pem), fp) != WD_OK ||
	    strcmp(fp, w->pin) != 0) {
		snprintf(w->why, sizeof(w->why), "signed by a key that is not the "
		    "pinned one");
		return false;
	}
	if (w->keypem != NULL && strcmp(w->keypem, pem) == 0)
		return true;
	if ((k = load_pubkey(pem, strlen(pem))) == NULL)
		return false;
	EVP_PKEY_free(w->key);
	free(w->keypem);
	w->key = k;
	w->keypem = strdup(pem);
	return true;
}

bool
aud_walk_sig(EVP_PKEY *key, const void *msg, size_t len, const char *b64)
{
	unsigned char sig[256];
	int n, pad = 0;
	size_t bl = b64 ? strlen(b64) : 0;
	EVP_MD_CTX *ctx;
	bool ok;

	if (key == NULL || bl == 0 || bl > 340)
		return false;
	n = EVP_DecodeBlock(sig, (const unsigned char *)b64, (int)bl);
	if (n < 0)
		return false;
	while (bl > 0 && b64[--bl] == '=')
		pad++;
	n -= pad;
	if (n <= 0)
		return false;
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, sig, (size_t)n, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* The root of the tree of the first n leaves, n at most RING back. */
static bool
root_at(struct aud_walk *w, uint64_t n, unsigned char out[32])
{
	struct aud_frontier f;
	uint64_t s;

	if (n > w->fr.size)
		return false;
	if (n == w->fr.size) {
		aud_frontier_root(&w->fr, out);
		return true;
	}
	if (w->fr.size - n > AUD_CP_MAX_LAG || n < w->base.size)
		return false;
	s = n / SNAP_EVERY * SNAP_EVERY;
	if (s < w->base.size) {
		f = w->base;
	} else {
		f = w->snaps[(s / SNAP_EVERY) % NSNAPS];
		if (f.size != s)
			return false;
	}
	while (f.size < n)
		aud_frontier_push(&f, w->ring[f.size % RING].leaf, NULL, NULL);
	aud_frontier_root(&f, out);
	return true;
}

static void
push_leaf(struct aud_walk *w, const unsigned char leaf[32], bool cp,
    const char *ts)
{
	struct aud_walk_leaf *r = &w->ring[w->fr.size % RING];

	if (w->fr.size % SNAP_EVERY == 0)
		w->snaps[(w->fr.size / SNAP_EVERY) % NSNAPS] = w->fr;
	memcpy(r->leaf, leaf, 32);
	r->cp = cp;
	if (!cp)
		w->nc++;
	r->nc = w->nc;
	{
		size_t tl = ts ? strnlen(ts, sizeof(r->ts) - 1) : 0;

		memcpy(r->ts, ts ? ts : "", tl);
		r->ts[tl] = '\0';
	}
	if (!cp && w->uncov_ts[0] == '\0' && w->fr.size >= w->covered)
		snprintf(w->uncov_ts, sizeof(w->uncov_ts), "%s", ts ? ts : "");
	aud_frontier_push(&w->fr, leaf, NULL, NULL);
}

/* Trees up to n are authenticated: the first record after them that is
 * not a checkpoint is the oldest that is not. */
static void
cover(struct aud_walk *w, uint64_t n)
{
	if (n <= w->covered)
		return;
	w->covered = n;
	w->cov_nc = n > w->base.size ? w->ring[(n - 1) % RING].nc : 0;
	w->uncov_ts[0] = '\0';
	for (uint64_t i = n; i < w->fr.size; i++)
		if (!w->ring[i % RING].cp && w->ring[i % RING].ts[0] != '\0') {
			snprintf(w->uncov_ts, sizeof(w->uncov_ts), "%s",
			    w->ring[i % RING].ts);
			break;
		}
}

/* A version 2 checkpoint (before its own leaf is pushed). */
static bool
check_cp2(struct aud_walk *w, json_t *j, uint64_t seq)
{
	struct aud_tree_head th = { 0 };
	json_t *ctr = json_object_get(j, "counter");
	const char *root = json_string_value(json_object_get(j, "root"));
	const char *sig = json_string_value(json_object_get(j, "signature"));
	unsigned char have[32];
	char msg[256];

	th.size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
	th.time_us = (int64_t)json_integer_value(json_object_get(j, "time_us"));
	th.interval_s = (int)json_integer_value(json_object_get(j, "interval_s"));
	th.has_counter = json_is_integer(ctr);
	th.counter = (uint64_t)json_integer_value(ctr);
	if (!json_is_integer(json_object_get(j, "tree_size")) || root == NULL ||
	    wd_unhex(root, th.root, 32) != WD_OK || th.size >= seq ||
	    (!th.has_counter && !json_is_null(ctr))) {
		snprintf(w->why, sizeof(w->why), "seq %llu: malformed checkpoint",
		    (unsigned long long)seq);
		return false;
	}
	if (!root_at(w, th.size, have)) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint signs a "
		    "tree of %llu records that cannot be checked here (out of "
		    "order, or more than %u records back)", (unsigned long long)seq,
		    (unsigned long long)th.size, AUD_CP_MAX_LAG);
		return false;
	}
	if (!wd_ct_equal(have, th.root, 32)) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint's tree root "
		    "does not match the records before it: a record was altered, "
		    "added or removed", (unsigned long long)seq);
		return false;
	}
	if (th.size < w->last_cp_size) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint signs a tree "
		    "of %llu records after one of %llu: replayed or out of order",
		    (unsigned long long)seq, (unsigned long long)th.size,
		    (unsigned long long)w->last_cp_size);
		return false;
	}
	w->last_cp_size = th.size;
	if (w->has_counter && th.has_counter && th.counter < w->counter) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint counter %llu "
		    "goes back from %llu: checkpoints of another history were "
		    "spliced in", (unsigned long long)seq,
		    (unsigned long long)th.counter, (unsigned long long)w->counter);
		return false;
	}
	w->checkpoints++;
	if (!w->trusted) {
		/* Consistent; nothing to authenticate with. */
		w->has_counter = th.has_counter || w->has_counter;
		w->counter = th.has_counter ? th.counter : w->counter;
		return true;
	}
	if (!aud_walk_key(w, json_string_value(json_object_get(j, "pubkey"))))
		return false;
	aud_tree_head_msg(msg, sizeof(msg), &th);
	if (!aud_walk_sig(w->key, msg, strlen(msg), sig)) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint signature "
		    "does not verify with the trusted key", (unsigned long long)seq);
		return false;
	}
	w->signed_cps++;
	w->interval_s = th.interval_s;
	w->has_interval = true;
	if (th.has_counter) {
		w->counter = th.counter;
		w->has_counter = true;
	}
	w->last_cp_counter_set = th.has_counter;
	cover(w, th.size);
	return true;
}

/* A version 1 checkpoint: "<seq>:<hash>" of the record right before. */
static bool
check_cp1(struct aud_walk *w, json_t *j, uint64_t seq, const char *prev)
{
	uint64_t sseq = (uint64_t)json_integer_value(json_object_get(j,
	    "signed_seq"));
	const char *sh = json_string_value(json_object_get(j, "signed_hash"));
	const char *sig = json_string_value(json_object_get(j, "signature"));
	char msg[128];

	if (sseq != seq - 1 || sh == NULL || strcmp(sh, prev) != 0) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint does not "
		    "sign the record before it", (unsigned long long)seq);
		return false;
	}
	w->checkpoints++;
	if (!w->trusted)
		return true;
	if (w->key == NULL) {
		snprintf(w->why, sizeof(w->why), "seq %llu: a version 1 checkpoint "
		    "names no key: give --pubkey, not --pin",
		    (unsigned long long)seq);
		return false;
	}
	aud_checkpoint_msg(msg, sizeof(msg), sseq, sh);
	if (!aud_walk_sig(w->key, msg, strlen(msg), sig)) {
		snprintf(w->why, sizeof(w->why), "seq %llu: checkpoint signature "
		    "does not verify with the trusted key", (unsigned long long)seq);
		return false;
	}
	w->signed_cps++;
	w->last_cp_counter_set = false;
	/* Its chain runs unbroken through full records only in a log. */
	if (!w->export)
		cover(w, w->fr.size);
	return true;
}

/*
 * The fast path: a strict reader of one JSON object that keeps the
 * top-level seq, prev, kind and ts.  Records are read this way without
 * building a tree of them.  It accepts a strict subset of what jansson
 * does (ASCII strings with the short escapes and no raw control
 * characters, integers of at most 18 digits, literals, nesting at most 32
 * deep); anything else (non-ASCII text, \u escapes, fractions, exponents)
 * and every checkpoint goes to jansson, which decides.
 */
struct scan {
	const char *p, *end;
	int depth;
};

struct top {
	bool has_seq;
	uint64_t seq;
	const char *prev, *kind, *ts;	/* inside the text, not terminated */
	size_t prevlen, kindlen, tslen;
};

static void
ws(struct scan *s)
{
	s->p = (const char *)wd_json_ws((const unsigned char *)s->p,
	    (const unsigned char *)s->end);
}

/* Past the literal w (n bytes) at s->p. */
static bool
word(struct scan *s, const char *w, size_t n)
{
	const unsigned char *q = wd_json_word((const unsigned char *)s->p,
	    (const unsigned char *)s->end, w, n);

	if (q == NULL)
		return false;
	s->p = (const char *)q;
	return true;
}

/* A string; start and len: its raw contents (escapes left in). */
static bool
scan_string(struct scan *s, const char **start, size_t *len, bool *escaped)
{
	const char *q;

	if (s->p >= s->end || *s->p != '"')
		return false;
	q = ++s->p;
	*escaped = false;
	for (;;) {
		unsigned char ch;

		s->p = (const char *)wd_json_plain_end(
		    (const unsigned char *)s->p, (const unsigned char *)s->end);
		if (s->p >= s->end || *s->p == '"')
			break;
		ch = (unsigned char)*s->p;
		if (ch < 0x20 || ch >= 0x80)
			return false;
		if (ch == '\\') {
			*escaped = true;
			if (++s->p >= s->end)
				return false;
			if (*s->p == 0 || strchr("\"\\/bfnrt", *s->p) == NULL)
				return false;
		}
		s->p++;
	}
	if (s->p >= s->end)
		return false;
	*start = q;
	*len = (size_t)(s->p - q);
	s->p++;
	return true;
}

static bool scan_value(struct scan *s);

static bool
scan_number(struct scan *s)
{
	const char *q;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	q = s->p;
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return false;
	if (*s->p == '0')
		s->p++;
	else
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	/* Fractions, exponents and long integers: jansson's to judge. */
	return s->p - q <= 18 && (s->p >= s->end || (*s->p != '.' &&
	    (*s->p | 0x20) != 'e'));
}

static bool
scan_container(struct scan *s, char close)
{
	bool first = true;

	if (++s->depth > 32)
		return false;
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return true;
	}
	for (;;) {
		if (!first) {
			ws(s);
			if (s->p >= s->end)
				return false;
			if (*s->p == close) {
				s->p++;
				s->depth--;
				return true;
			}
			if (*s->p != ',')
				return false;
			s->p++;
		}
		first = false;
		ws(s);
		if (close == '}') {
			const char *k;
			size_t kl;
			bool esc;

			if (!scan_string(s, &k, &kl, &esc))
				return false;
			ws(s);
			if (s->p >= s->end || *s->p != ':')
				return false;
			s->p++;
			ws(s);
		}
		if (!scan_value(s))
			return false;
	}
}

static bool
scan_value(struct scan *s)
{
	const char *v;
	size_t vl;
	bool esc;

	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '"':
		return scan_string(s, &v, &vl, &esc);
	case '{':
		return scan_container(s, '}');
	case '[':
		return scan_container(s, ']');
	case 't':
		return word(s, "true", 4);
	case 'f':
		return word(s, "false", 5);
	case 'n':
		return word(s, "null", 4);
	default:
		return scan_number(s);
	}
}

/* The whole text one object; its top-level members of interest in t.
 * False (use jansson) on anything else, duplicates included. */
static bool
scan_top(const char *c, size_t len, struct top *t)
{
	struct scan s = { c, c + len, 1 };
	bool first = true;

	memset(t, 0, sizeof(*t));
	if (len < 2 || c[0] != '{')
		return false;
	s.p++;
	for (;;) {
		const char *k, *v;
		size_t kl, vl;
		bool esc;

		ws(&s);
		if (s.p < s.end && *s.p == '}' && first) {
			s.p++;
			break;
		}
		if (!first) {
			if (s.p >= s.end)
				return false;
			if (*s.p == '}') {
				s.p++;
				break;
			}
			if (*s.p != ',')
				return false;
			s.p++;
			ws(&s);
		}
		first = false;
		if (!scan_string(&s, &k, &kl, &esc) || esc)
			return false;
		ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return false;
		s.p++;
		ws(&s);
#define KEY(name) (kl == sizeof(name) - 1 && memcmp(k, name, kl) == 0)
		if (KEY("seq")) {
			const char *q = s.p;
			uint64_t n = 0;

			if (t->has_seq || !scan_number(&s))
				return false;
			for (; q < s.p; q++) {
				if (*q < '0' || *q > '9' || n > (UINT64_MAX - 9) / 10)
					return false;	/* jansson's, then */
				n = n * 10 + (uint64_t)(*q - '0');
			}
			t->has_seq = true;
			t->seq = n;
		} else if (KEY("prev") || KEY("kind") || KEY("ts")) {
			if (s.p >= s.end || *s.p != '"' ||
			    !scan_string(&s, &v, &vl, &esc) || esc)
				return false;
			if (KEY("prev")) {
				if (t->prev != NULL)
					return false;
				t->prev = v;
				t->prevlen = vl;
			} else if (KEY("kind")) {
				if (t->kind != NULL)
					return false;
				t->kind = v;
				t->kindlen = vl;
			} else {
				if (t->ts != NULL)
					return false;
				t->ts = v;
				t->tslen = vl;
			}
		} else if (!scan_value(&s)) {
			return false;
		}
#undef KEY
	}
	ws(&s);
	return s.p == s.end;
}

/*
 * What walk_fast can learn of a line alone, without the walker's state:
 * its text read (no jansson), its hash recomputed and its leaf.  False:
 * not for the fast path (the slow path decides).  buf/buflen: the
 * thread's buffer for the canonical text.
 */
bool
aud_walk_pre(const char *line, size_t len, struct aud_walk_pre *p,
    char **buf, size_t *buflen)
{
	char hash[AUD_HASH_HEX + 1], prev[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon;
	struct top t;

	p->fast = false;
	if (len < AUD_SUFFIX_LEN + 2 || len - AUD_SUFFIX_LEN + 2 > *buflen) {
		size_t want = len + 64;
		char *nb = realloc(*buf, want);

		if (nb == NULL)
			return false;
		*buf = nb;
		*buflen = want;
	}
	canon = aud_split_line_into(line, len, hash, &clen, *buf, *buflen);
	if (canon == NULL || !scan_top(canon, clen, &t) || !t.has_seq ||
	    t.prev == NULL || t.prevlen != AUD_HASH_HEX ||
	    (t.kind != NULL && t.kindlen == 10 &&
	    memcmp(t.kind, "checkpoint", 10) == 0) || t.tslen >= sizeof(p->ts))
		return false;
	memcpy(prev, t.prev, AUD_HASH_HEX);
	prev[AUD_HASH_HEX] = '\0';
	memcpy(p->prev, prev, sizeof(p->prev));
	memcpy(p->hash, hash, sizeof(p->hash));
	if (t.ts != NULL)
		memcpy(p->ts, t.ts, t.tslen);
	p->ts[t.ts != NULL ? t.tslen : 0] = '\0';
	p->seq = t.seq;
	p->hash_ok = aud_check_line_leaf(canon, clen, prev, hash, p->leaf);
	p->fast = true;
	return true;
}

/*
 * The rest of walk_fast, in order: the checks against the walker's
 * state (seq, prev), the hash, then the leaf into the tree.  True with
 * w->fast_failed set: the line is invalid (w->why says why).
 */
static bool
walk_apply(struct aud_walk *w, const struct aud_walk_pre *p)
{
	if (p->seq != w->seq + 1) {
		snprintf(w->why, sizeof(w->why), "seq %llu follows seq %llu: "
		    "records are missing or reordered", (unsigned long long)p->seq,
		    (unsigned long long)w->seq);
		w->fast_failed = true;
		return true;
	}
	if (strcmp(p->prev, w->prev) != 0) {
		snprintf(w->why, sizeof(w->why), "seq %llu: prev does not match "
		    "the hash of the record before it", (unsigned long long)p->seq);
		w->fast_failed = true;
		return true;
	}
	if (!p->hash_ok) {
		snprintf(w->why, sizeof(w->why), "seq %llu: hash does not match "
		    "the record: it was altered", (unsigned long long)p->seq);
		w->fast_failed = true;
		return true;
	}
	push_leaf(w, p->leaf, false, p->ts);
	memcpy(w->prev, p->hash, sizeof(w->prev));
	w->seq = p->seq;
	w->first = false;
	w->records++;
	return true;
}

/* A record that is not a checkpoint, without jansson; false: take the
 * slow path (which decides). */
static bool
walk_fast(struct aud_walk *w, const char *line, size_t len)
{
	struct aud_walk_pre p;

	if (!aud_walk_pre(line, len, &p, &w->buf, &w->buflen))
		return false;
	return walk_apply(w, &p);
}

static bool
walk_slow(struct aud_walk *w, const char *line, size_t len, json_t **recp)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon = aud_split_line(line, len, hash, &clen);
	json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
	const char *prev = json_string_value(json_object_get(j, "prev"));
	const char *kind = json_string_value(json_object_get(j, "kind"));
	json_t *jseq = json_object_get(j, "seq");
	uint64_t seq = (uint64_t)json_integer_value(jseq);
	unsigned char leaf[32];
	bool ok = false, cp;

	if (!json_is_object(j) || !json_is_integer(jseq)) {
		snprintf(w->why, sizeof(w->why), "not an audit record (no hash "
		    "suffix, or not JSON)");
		goto out;
	}
	if (seq != w->seq + 1) {
		snprintf(w->why, sizeof(w->why), "seq %llu follows seq %llu: "
		    "records are missing or reordered", (unsigned long long)seq,
		    (unsigned long long)w->seq);
		goto out;
	}
	if (prev == NULL || strcmp(prev, w->prev) != 0) {
		snprintf(w->why, sizeof(w->why), "seq %llu: prev does not match "
		    "the hash of the record before it", (unsigned long long)seq);
		goto out;
	}
	if (!aud_check_line(canon, clen, prev, hash)) {
		snprintf(w->why, sizeof(w->why), "seq %llu: hash does not match "
		    "the record: it was altered", (unsigned long long)seq);
		goto out;
	}
	cp = kind != NULL && strcmp(kind, "checkpoint") == 0;
	if (cp && !(json_object_get(j, "tree_size") != NULL ?
	    check_cp2(w, j, seq) : check_cp1(w, j, seq, prev)))
		goto out;
	aud_leaf_hash(canon, clen, leaf);
	push_leaf(w, leaf, cp, json_string_value(json_object_get(j, "ts")));
	memcpy(w->prev, hash, sizeof(w->prev));
	w->seq = seq;
	w->first = false;
	w->records++;
	ok = true;
	if (recp != NULL) {
		*recp = j;
		j = NULL;
	}
out:
	json_decref(j);
	free(canon);
	return ok;
}

bool
aud_walk_line(struct aud_walk *w, const char *line, size_t len, json_t **recp)
{
	if (recp == NULL) {
		w->fast_failed = false;
		if (walk_fast(w, line, len))
			return !w->fast_failed;
	}
	return walk_slow(w, line, len, recp);
}

bool
aud_walk_line_pre(struct aud_walk *w, const char *line, size_t len,
    const struct aud_walk_pre *p)
{
	if (p == NULL || !p->fast)
		return aud_walk_line(w, line, len, NULL);
	w->fast_failed = false;
	walk_apply(w, p);
	return !w->fast_failed;
}

bool
aud_walk_stub(struct aud_walk *w, uint64_t seq, const char *prev,
    const char *leafhex, const char *hash)
{
	unsigned char leaf[32];

	if (seq != w->seq + 1) {
		snprintf(w->why, sizeof(w->why), "stub seq %llu follows seq %llu: "
		    "records are missing or reordered", (unsigned long long)seq,
		    (unsigned long long)w->seq);
		return false;
	}
	if (prev == NULL || strlen(prev) != AUD_HASH_HEX ||
	    strcmp(prev, w->prev) != 0) {
		snprintf(w->why, sizeof(w->why), "stub seq %llu: prev does not "
		    "match the hash of the record before it",
		    (unsigned long long)seq);
		return false;
	}
	if (leafhex == NULL || wd_unhex(leafhex, leaf, 32) != WD_OK ||
	    hash == NULL || strlen(hash) != AUD_HASH_HEX) {
		snprintf(w->why, sizeof(w->why), "stub seq %llu: malformed",
		    (unsigned long long)seq);
		return false;
	}
	push_leaf(w, leaf, false, NULL);
	memcpy(w->prev, hash, AUD_HASH_HEX);
	w->seq = seq;
	w->first = false;
	w->stubs++;
	return true;
}

uint64_t
aud_walk_uncovered(const struct aud_walk *w)
{
	return w->nc - w->cov_nc;
}

/*
 * Is the oldest record no checkpoint covers older than the interval its
 * log promised (plus slack)?  Then a checkpoint was dropped.
 */
bool
aud_walk_stale(const struct aud_walk *w, int64_t now_us)
{
	int64_t t, limit;

	if (aud_walk_uncovered(w) == 0 || w->uncov_ts[0] == '\0')
		return false;
	t = aud_parse_ts(w->uncov_ts);
	if (w->has_interval && w->interval_s == 0)
		return false;		/* no time bound was promised */
	limit = (int64_t)((w->has_interval ? w->interval_s : 60) + AUD_SLACK_S) *
	    1000000;
	return t != 0 && now_us - t > limit;
}
