/*
 * merkle.c - the log's Merkle tree (RFC 9162 section 2.1): leaf and node
 * hashes, the compact range ("frontier") a writer or verifier keeps while
 * leaves are appended, and inclusion and consistency proofs, made from
 * whatever stores the tree's nodes and checked from the proof alone.
 *
 *   leaf = SHA-256(0x00 || C)       C: the record's canonical bytes
 *   node = SHA-256(0x01 || l || r)
 *
 * The frontier of a tree of size n holds, for every bit k set in n, the
 * root of the perfect subtree of 2^k leaves that bit stands for; the
 * tree's root is those roots folded from the smallest up.
 */
#include "audit/aud_int.h"

#include <string.h>

#include <openssl/evp.h>

void
aud_leaf_hash(const void *c, size_t len, unsigned char out[32])
{
	static const unsigned char zero = 0x00;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int dl = 0;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, aud_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, &zero, 1) || !EVP_DigestUpdate(ctx, c, len) ||
	    !EVP_DigestFinal_ex(ctx, out, &dl))
		memset(out, 0, 32);	/* never a real digest */
	EVP_MD_CTX_free(ctx);
}

void
aud_node_hash(const unsigned char l[32], const unsigned char r[32],
    unsigned char out[32])
{
	unsigned char buf[65];

	unsigned int dl = 0;

	buf[0] = 0x01;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	if (!EVP_Digest(buf, sizeof(buf), out, &dl, aud_sha256(), NULL))
		memset(out, 0, 32);
}

void
aud_frontier_push(struct aud_frontier *f, const unsigned char leaf[32],
    void (*node)(void *ctx, unsigned level, const unsigned char h[32]),
    void *ctx)
{
	unsigned char carry[32];
	unsigned k = 0;

	memcpy(carry, leaf, 32);
	if (node != NULL)
		node(ctx, 0, carry);
	while (k < AUD_MAX_LEVELS - 1 && (f->size >> k) & 1) {
		aud_node_hash(f->node[k], carry, carry);
		k++;
		if (node != NULL)
			node(ctx, k, carry);
	}
	memcpy(f->node[k], carry, 32);
	f->size++;
}

void
aud_frontier_root(const struct aud_frontier *f, unsigned char out[32])
{
	bool have = false;

	if (f->size == 0) {
		wd_sha256("", 0, out);	/* MTH({}) = SHA-256() */
		return;
	}
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		if (!((f->size >> k) & 1))
			continue;
		if (have)
			aud_node_hash(f->node[k], out, out);
		else
			memcpy(out, f->node[k], 32);
		have = true;
	}
}

/* The largest power of two below n (n > 1). */
static uint64_t
split(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* MTH(D[a:b]) from stored perfect subtrees. */
static enum wd_err
range_hash(const struct aud_nodes *s, uint64_t a, uint64_t b,
    unsigned char out[32])
{
	uint64_t n = b - a, k;
	unsigned char l[32], r[32];
	enum wd_err rc;

	if ((n & (n - 1)) == 0) {
		unsigned level = 0;

		while (((uint64_t)1 << level) < n)
			level++;
		return s->get(s->ctx, level, a >> level, out);
	}
	k = split(n);
	if ((rc = range_hash(s, a, a + k, l)) != WD_OK ||
	    (rc = range_hash(s, a + k, b, r)) != WD_OK)
		return rc;
	aud_node_hash(l, r, out);
	return WD_OK;
}

/* PATH(m, D[a:b]) appended to p (RFC 9162 2.1.3.1). */
static enum wd_err
path(const struct aud_nodes *s, uint64_t m, uint64_t a, uint64_t b,
    struct aud_proof_path *p)
{
	uint64_t n = b - a, k;
	enum wd_err rc;

	if (n <= 1)
		return WD_OK;
	if (p->n >= AUD_MAX_PATH)
		return WD_ELIMIT;
	k = split(n);
	if (m < k) {
		if ((rc = path(s, m, a, a + k, p)) != WD_OK)
			return rc;
		return range_hash(s, a + k, b, p->h[p->n++]);
	}
	if ((rc = path(s, m - k, a + k, b, p)) != WD_OK)
		return rc;
	return range_hash(s, a, a + k, p->h[p->n++]);
}

enum wd_err
aud_inclusion_path(const struct aud_nodes *s, uint64_t index, uint64_t size,
    struct aud_proof_path *out)
{
	out->n = 0;
	if (index >= size)
		return WD_EINVAL;
	return path(s, index, 0, size, out);
}

/* SUBPROOF(m, D[a:b], b0) appended to p (RFC 9162 2.1.4.1). */
static enum wd_err
subproof(const struct aud_nodes *s, uint64_t m, uint64_t a, uint64_t b,
    bool b0, struct aud_proof_path *p)
{
	uint64_t n = b - a, k;
	enum wd_err rc;

	if (p->n >= AUD_MAX_PATH)
		return WD_ELIMIT;
	if (m == n) {
		if (b0)
			return WD_OK;
		return range_hash(s, a, b, p->h[p->n++]);
	}
	k = split(n);
	if (m <= k) {
		if ((rc = subproof(s, m, a, a + k, b0, p)) != WD_OK)
			return rc;
		return range_hash(s, a + k, b, p->h[p->n++]);
	}
	if ((rc = subproof(s, m - k, a + k, b, false, p)) != WD_OK)
		return rc;
	return range_hash(s, a, a + k, p->h[p->n++]);
}

enum wd_err
aud_consistency_path(const struct aud_nodes *s, uint64_t first,
    uint64_t second, struct aud_proof_path *out)
{
	out->n = 0;
	if (first > second)
		return WD_EINVAL;
	if (first == 0 || first == second)
		return WD_OK;		/* nothing to prove */
	return subproof(s, first, 0, second, true, out);
}

/* RFC 9162 2.1.3.2. */
bool
aud_verify_inclusion(uint64_t index, uint64_t size,
    const unsigned char leaf[32], const struct aud_proof_path *p,
    const unsigned char root[32])
{
	uint64_t fn = index, sn;
	unsigned char r[32];

	if (index >= size)
		return false;
	sn = size - 1;
	memcpy(r, leaf, 32);
	for (size_t i = 0; i < p->n; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			aud_node_hash(p->h[i], r, r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			aud_node_hash(r, p->h[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && wd_ct_equal(r, root, 32);
}

/* RFC 9162 2.1.4.2; first == second (same root) and first == 0 (the
 * empty tree is a prefix of every tree) need no path. */
bool
aud_verify_consistency(uint64_t first, uint64_t second,
    const unsigned char first_root[32], const unsigned char second_root[32],
    const struct aud_proof_path *p)
{
	unsigned char path[AUD_MAX_PATH + 1][32], fr[32], sr[32];
	size_t n = 0;
	uint64_t fn, sn;

	if (first > second)
		return false;
	if (first == 0)
		return p->n == 0;
	if (first == second)
		return p->n == 0 && wd_ct_equal(first_root, second_root, 32);
	if (p->n == 0 || p->n > AUD_MAX_PATH)
		return false;
	if ((first & (first - 1)) == 0)
		memcpy(path[n++], first_root, 32);
	for (size_t i = 0; i < p->n; i++)
		memcpy(path[n++], p->h[i], 32);
	fn = first - 1;
	sn = second - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, path[0], 32);
	memcpy(sr, path[0], 32);
	for (size_t i = 1; i < n; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			aud_node_hash(path[i], fr, fr);
			aud_node_hash(path[i], sr, sr);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			aud_node_hash(sr, path[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && wd_ct_equal(fr, first_root, 32) &&
	    wd_ct_equal(sr, second_root, 32);
}

int
aud_tree_head_msg(char *buf, size_t len, const struct aud_tree_head *th)
{
	char root[AUD_HASH_HEX + 1], ctr[24];

	wd_hex(th->root, 32, root);
	if (th->has_counter)
		snprintf(ctr, sizeof(ctr), "%llu", (unsigned long long)th->counter);
	else
		snprintf(ctr, sizeof(ctr), "none");
	return snprintf(buf, len, "warden-audit-tree-head/2\n%llu\n%s\n%lld\n"
	    "%s\n%d\n", (unsigned long long)th->size, root,
	    (long long)th->time_us, ctr, th->interval_s);
}
