/*
 * chain.c - one record to one line and back (audit/FORMAT.md):
 *
 *   C    = canonical JSON of the record without "hash" (sorted keys,
 *          compact, UTF-8), which includes "prev"
 *   hash = hex(SHA-256(prev || C))
 *   line = C without its closing '}' + ,"hash":"<hash>"} + '\n'
 *
 * A verifier cuts the fixed-length suffix off the line to get C back
 * byte for byte, so it never has to re-serialise JSON.  C is also the
 * record's Merkle leaf: SHA-256(0x00 || C) (merkle.c).
 */
#include "audit/aud_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256, fetched once: an implicit fetch per digest takes the
 * provider store's lock, a third of the cost of a short record. */
const EVP_MD *
aud_sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md != NULL ? sha256_md : EVP_sha256();
}

static void
chain_hash(const char *prev, const char *c, size_t clen,
    char out[AUD_HASH_HEX + 1])
{
	EVP_MD_CTX *ctx = aud_md_ctx();
	unsigned char d[32];
	unsigned int dl = 0;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, aud_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, prev, AUD_HASH_HEX) ||
	    !EVP_DigestUpdate(ctx, c, clen) || !EVP_DigestFinal_ex(ctx, d, &dl))
		memset(d, 0, sizeof(d));	/* never matches a real hash */
	wd_hex(d, sizeof(d), out);
}

/* The chain hash and the leaf of C, one digest context for both. */
static void
hash_pair_ctx(EVP_MD_CTX *given, const char *prev, const char *c, size_t clen,
    char out[AUD_HASH_HEX + 1], unsigned char leaf[32])
{
	static const unsigned char zero = 0x00;
	EVP_MD_CTX *ctx = given != NULL ? given : aud_md_ctx();
	const EVP_MD *md = aud_sha256();
	unsigned char d[32];
	unsigned int dl = 0;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, md, NULL) ||
	    !EVP_DigestUpdate(ctx, prev, AUD_HASH_HEX) ||
	    !EVP_DigestUpdate(ctx, c, clen) || !EVP_DigestFinal_ex(ctx, d, &dl))
		memset(d, 0, sizeof(d));
	wd_hex(d, sizeof(d), out);
	if (ctx == NULL || !EVP_DigestInit_ex(ctx, md, NULL) ||
	    !EVP_DigestUpdate(ctx, &zero, 1) || !EVP_DigestUpdate(ctx, c, clen) ||
	    !EVP_DigestFinal_ex(ctx, leaf, &dl))
		memset(leaf, 0, 32);
}

static void
hash_pair(const char *prev, const char *c, size_t clen,
    char out[AUD_HASH_HEX + 1], unsigned char leaf[32])
{
	hash_pair_ctx(NULL, prev, c, clen, out, leaf);
}

bool
aud_check_line_leaf(const char *canon, size_t clen, const char *prev,
    const char *hash, unsigned char leaf[32])
{
	char h[AUD_HASH_HEX + 1];

	hash_pair(prev, canon, clen, h, leaf);
	return wd_ct_equal(h, hash, AUD_HASH_HEX);
}

char *
aud_line(json_t *rec, const char *prev, char hash[AUD_HASH_HEX + 1],
    size_t *len)
{
	return aud_line_leaf(rec, prev, hash, NULL, len);
}

char *
aud_line_leaf(json_t *rec, const char *prev, char hash[AUD_HASH_HEX + 1],
    unsigned char leaf[32], size_t *len)
{
	char *c, *line;
	size_t clen;

	json_object_del(rec, "hash");
	json_object_set_new(rec, "prev", json_string(prev));
	c = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (c == NULL)
		return NULL;
	clen = strlen(c);
	if (leaf != NULL)
		hash_pair(prev, c, clen, hash, leaf);
	else
		chain_hash(prev, c, clen, hash);
	line = malloc(clen + AUD_SUFFIX_LEN + 2);
	if (line != NULL) {
		memcpy(line, c, clen - 1);
		memcpy(line + clen - 1, ",\"hash\":\"", 9);
		memcpy(line + clen - 1 + 9, hash, AUD_HASH_HEX);
		memcpy(line + clen - 1 + 9 + AUD_HASH_HEX, "\"}\n", 4);
		*len = clen - 1 + AUD_SUFFIX_LEN + 1;	/* without the NUL */
	}
	free(c);
	return line;
}

char *
aud_split_line(const char *line, size_t len, char hash[AUD_HASH_HEX + 1],
    size_t *clen)
{
	const char *suffix;
	char *c;

	if (len < AUD_SUFFIX_LEN + 2 || line[0] != '{')
		return NULL;
	suffix = line + len - AUD_SUFFIX_LEN;
	if (memcmp(suffix, ",\"hash\":\"", 9) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return NULL;
	memcpy(hash, suffix + 9, AUD_HASH_HEX);
	hash[AUD_HASH_HEX] = '\0';
	for (size_t i = 0; i < AUD_HASH_HEX; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
		    (hash[i] >= 'a' && hash[i] <= 'f')))
			return NULL;
	*clen = len - AUD_SUFFIX_LEN + 1;
	c = malloc(*clen + 1);
	if (c == NULL)
		return NULL;
	memcpy(c, line, *clen - 1);
	c[*clen - 1] = '}';
	c[*clen] = '\0';
	return c;
}

/* 64 lowercase hex digits?  Without a branch per digit (every line of
 * a verification passes here; the compiler vectorises the loop). */
static bool
lower_hex(const char *h)
{
	unsigned bad = 0;

	for (size_t i = 0; i < AUD_HASH_HEX; i++) {
		unsigned char c = (unsigned char)h[i];

		bad |= (unsigned)((unsigned char)(c - '0') > 9) &
		    (unsigned)((unsigned char)(c - 'a') > 5);
	}
	return bad == 0;
}

char *
aud_split_line_into(const char *line, size_t len, char hash[AUD_HASH_HEX + 1],
    size_t *clen, char *buf, size_t buflen)
{
	const char *suffix;

	if (len < AUD_SUFFIX_LEN + 2 || line[0] != '{' ||
	    len - AUD_SUFFIX_LEN + 2 > buflen)
		return NULL;
	suffix = line + len - AUD_SUFFIX_LEN;
	if (memcmp(suffix, ",\"hash\":\"", 9) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return NULL;
	memcpy(hash, suffix + 9, AUD_HASH_HEX);
	hash[AUD_HASH_HEX] = '\0';
	if (!lower_hex(hash))
		return NULL;
	*clen = len - AUD_SUFFIX_LEN + 1;
	memcpy(buf, line, *clen - 1);
	buf[*clen - 1] = '}';
	buf[*clen] = '\0';
	return buf;
}

bool
aud_check_line(const char *canon, size_t clen, const char *prev,
    const char *hash)
{
	char h[AUD_HASH_HEX + 1];

	chain_hash(prev, canon, clen, h);
	return wd_ct_equal(h, hash, AUD_HASH_HEX);
}

int
aud_checkpoint_msg(char *buf, size_t len, uint64_t seq, const char *hash)
{
	return snprintf(buf, len, "%llu:%s", (unsigned long long)seq, hash);
}

/* ---- the append path: serialise outside the lock, splice inside ---- */

/* Past the JSON string at p (opening quote) in trusted jansson output. */
static const char *
skip_string(const char *p, bool *escaped)
{
	for (p++; *p != '"'; p++)
		if (*p == '\\') {
			*escaped = true;
			p++;
		}
	return p + 1;
}

/* Past one value at p (at the comma or brace after it). */
static const char *
skip_value(const char *p)
{
	int depth = 0;
	bool esc;

	for (;;) {
		if (*p == '"') {
			p = skip_string(p, &esc);
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p;
			depth--;
			p++;
		} else if (*p == ',' && depth == 0) {
			return p;
		} else {
			p++;
		}
		if (depth == 0 && (*p == ',' || *p == '}'))
			return p;
	}
}

/* strcmp of key (kl bytes, no NUL) with lit, bytewise as jansson sorts. */
static int
strcmp_n(const char *key, size_t kl, const char *lit)
{
	size_t ll = strlen(lit);
	int c = memcmp(key, lit, kl < ll ? kl : ll);

	if (c != 0)
		return c;
	return kl < ll ? -1 : kl > ll ? 1 : 0;
}

bool
aud_line_prepare(json_t *rec, struct aud_pre *pre)
{
	const char *p, *key;
	bool esc = false;

	memset(pre, 0, sizeof(*pre));
	json_object_del(rec, "hash");
	json_object_del(rec, "prev");
	json_object_del(rec, "seq");
	if ((pre->text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return false;
	pre->len = strlen(pre->text);
	pre->at_prev = pre->at_seq = SIZE_MAX;
	/* Where "prev" and "seq" go among the sorted top-level keys. */
	for (p = pre->text + 1; *p == '"'; ) {
		size_t kl;

		key = p + 1;
		p = skip_string(p, &esc);
		kl = (size_t)(p - 1 - key);
		if (esc)
			break;
		if (pre->at_prev == SIZE_MAX && strcmp_n(key, kl, "prev") > 0)
			pre->at_prev = (size_t)(key - 1 - pre->text);
		if (pre->at_seq == SIZE_MAX && strcmp_n(key, kl, "seq") > 0)
			pre->at_seq = (size_t)(key - 1 - pre->text);
		p = skip_value(p + 1);	/* past the ':' */
		if (*p == ',')
			p++;
	}
	if (esc) {
		free(pre->text);
		pre->text = NULL;
		return false;
	}
	if (pre->at_prev == SIZE_MAX)
		pre->at_prev = pre->len - 1;
	if (pre->at_seq == SIZE_MAX)
		pre->at_seq = pre->len - 1;
	return true;
}

char *
aud_line_splice(const struct aud_pre *pre, uint64_t seq, const char *prev,
    char hash[AUD_HASH_HEX + 1], unsigned char leaf[32], size_t *len,
    EVP_MD_CTX *ctx)
{
	char *buf = NULL;
	size_t cap = 0;

	return aud_line_splice_into(pre, seq, prev, hash, leaf, len, ctx, &buf,
	    &cap);
}

char *
aud_line_splice_into(const struct aud_pre *pre, uint64_t seq,
    const char *prev, char hash[AUD_HASH_HEX + 1], unsigned char leaf[32],
    size_t *len, EVP_MD_CTX *ctx, char **buf, size_t *cap)
{
	char pv[AUD_HASH_HEX + 16], sq[40];
	size_t pl = 0, sl = 0, clen, o = 0;
	bool empty = pre->len == 2;
	char *line;

	/* A member goes before the key at its place, or last (after a comma
	 * unless the object was empty or the other member went first). */
	if (!(pre->at_prev < pre->len - 1) && !empty)
		pv[pl++] = ',';
	memcpy(pv + pl, "\"prev\":\"", 8);
	pl += 8;
	memcpy(pv + pl, prev, AUD_HASH_HEX);
	pl += AUD_HASH_HEX;
	pv[pl++] = '"';
	if (pre->at_prev < pre->len - 1)
		pv[pl++] = ',';
	if (!(pre->at_seq < pre->len - 1))
		sq[sl++] = ',';
	memcpy(sq + sl, "\"seq\":", 6);
	sl += 6;
	sl += wd_u64_dec(seq, sq + sl);
	if (pre->at_seq < pre->len - 1)
		sq[sl++] = ',';
	clen = pre->len + pl + sl;
	if (clen + AUD_SUFFIX_LEN + 2 > *cap) {
		size_t want = (clen + AUD_SUFFIX_LEN + 2) * 2;
		char *nb = realloc(*buf, want);

		if (nb == NULL)
			return NULL;
		*buf = nb;
		*cap = want;
	}
	line = *buf;
	memcpy(line, pre->text, pre->at_prev);
	o = pre->at_prev;
	memcpy(line + o, pv, pl);
	o += pl;
	memcpy(line + o, pre->text + pre->at_prev, pre->at_seq - pre->at_prev);
	o += pre->at_seq - pre->at_prev;
	memcpy(line + o, sq, sl);
	o += sl;
	memcpy(line + o, pre->text + pre->at_seq, pre->len - pre->at_seq);
	hash_pair_ctx(ctx, prev, line, clen, hash, leaf);
	memcpy(line + clen - 1, ",\"hash\":\"", 9);
	memcpy(line + clen - 1 + 9, hash, AUD_HASH_HEX);
	memcpy(line + clen - 1 + 9 + AUD_HASH_HEX, "\"}\n", 4);
	*len = clen - 1 + AUD_SUFFIX_LEN + 1;
	return line;
}
