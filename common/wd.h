/*
 * wd.h - the few things every module of warden shares: the project's one
 * error enum, logging, time, and small helpers that handle secrets and
 * untrusted bytes carefully.
 *
 * Owned by nobody in particular; every module includes it.  Keep it small:
 * anything that belongs to one module lives in that module.
 */
#ifndef WD_H
#define WD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define WD_VERSION "0.1.0"

/*
 * The project's error codes.  Functions return one of these; results come
 * back through out-parameters.  A policy denial is not an error (it is a
 * verdict); an error means "we could not do what was asked".
 * Only ever append; wd_strerror() must cover every value.
 */
enum wd_err {
	WD_OK = 0,		/* success */
	WD_ENOMEM,		/* an allocation failed */
	WD_EINVAL,		/* a caller passed an invalid argument */
	WD_EIO,			/* a system call failed; errno says more */
	WD_ECONFIG,		/* the configuration is invalid (details printed) */
	WD_ELIMIT,		/* a size, count or time limit was reached */
	WD_EPARSE,		/* malformed input: HTTP, JSON, SSE, YAML */
	WD_ENOTFOUND,		/* the named thing does not exist */
	WD_EUPSTREAM,		/* an upstream transfer failed */
	WD_ETIMEOUT,		/* a deadline passed */
	WD_ETPM,		/* the TPM stack failed; Tss2_RC_Decode says why */
	WD_EPERM,		/* a file's owner or mode is not safe to use */
	WD_ECLOSED,		/* the peer went away */
	WD_EUNSUPPORTED,	/* valid, but not something warden does */
	WD_EDESTROYED,		/* its key was destroyed (crypto-shredded) */
	WD_EROLLBACK,		/* the audit log is behind the TPM counter */
	WD_ERR_COUNT		/* number of codes; not an error */
};

const char *wd_strerror(enum wd_err err);

/* Logging goes to stderr, one line per call, never a secret. */
enum wd_log_level { WD_LOG_DEBUG, WD_LOG_INFO, WD_LOG_WARN, WD_LOG_ERR };

void wd_log_set_level(enum wd_log_level level);
void wd_log(enum wd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define wd_debug(...) wd_log(WD_LOG_DEBUG, __VA_ARGS__)
#define wd_info(...) wd_log(WD_LOG_INFO, __VA_ARGS__)
#define wd_warn(...) wd_log(WD_LOG_WARN, __VA_ARGS__)
#define wd_error(...) wd_log(WD_LOG_ERR, __VA_ARGS__)

/* Monotonic and wall clocks in microseconds. */
uint64_t wd_mono_us(void);
uint64_t wd_wall_us(void);

/* Constant-time comparison of two equally long byte strings. */
bool wd_ct_equal(const void *a, const void *b, size_t len);

/* Fill buf with len bytes from the kernel's CSPRNG. */
enum wd_err wd_random(void *buf, size_t len);
/* Random bytes for identifiers (not keys): from a per-thread block. */
enum wd_err wd_random_id(void *buf, size_t len);

/* Lower-case hex of len bytes into out, which holds 2*len+1 bytes. */
void wd_hex(const unsigned char *in, size_t len, char *out);
/* The decimal digits of v into out (20 bytes are enough), not
 * terminated; how many. */
size_t wd_u64_dec(uint64_t v, char *out);
/* src into dst of size bytes, cut to fit and always terminated (size >
 * 0), as OpenBSD's strlcpy: strlen(src), so a result >= size says it was
 * cut.  For the request path, where snprintf("%s") costs a format
 * parse per copy. */
size_t wd_strlcpy(char *dst, const char *src, size_t size);

/* Length of the UTF-8 sequence at s (n bytes left, n > 0) as jansson
 * accepts it (no overlong forms, no surrogates, nothing past U+10FFFF),
 * 0 if it is not one. */
size_t wd_utf8_len(const unsigned char *s, size_t n);

/* The value of one hex digit, -1 if c is not one. */
int wd_hexval(int c);
/*
 * Where a run of plain JSON string bytes from p ends: the first byte (before
 * end) that is '"', '\\', a control character or part of a UTF-8 sequence
 * (>= 0x80), or end.  Most of a body's bytes are in such runs; they are
 * looked at 16 at a time (SSE2, every x86-64) or 8 (elsewhere).  Every
 * reader of JSON text (the request and answer scanners, the audit record
 * writer and verifier) skips its strings' plain bytes with it.
 */
static inline const unsigned char *
wd_json_plain_end(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
	    sp = _mm_set1_epi8(0x20);

	/* Signed: the bytes >= 0x80 are below 0x20 too. */
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		    _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)),
		    _mm_cmplt_epi8(v, sp)));

		if (m != 0)
			return p + __builtin_ctz(m);
		p += 16;
	}
#else
	const uint64_t ones = 0x0101010101010101ull,
	    high = 0x8080808080808080ull;

	while (end - p >= 8) {
		uint64_t x;

		memcpy(&x, p, 8);
		if (((x - ones * 0x20) | x | ((x ^ (ones * '"')) - ones) |
		    ((x ^ (ones * '\\')) - ones)) & high)
			break;
		p += 8;
	}
#endif
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* Where the next '"' or '\\' from p is, or end (strings skipped where
 * only their end matters: counting a body's values). */
static inline const unsigned char *
wd_json_quote_end(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		    _mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)));

		if (m != 0)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < end && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* Past the JSON whitespace (space, tab, LF, CR) from p.  The JSON
 * readers' (gateway/json_scan.c, audit/walk.c, audit/canon.c). */
static inline const unsigned char *
wd_json_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

/* Past the literal w of n bytes (true, false, null) at p, or NULL when it
 * is not there. */
static inline const unsigned char *
wd_json_word(const unsigned char *p, const unsigned char *end, const char *w,
    size_t n)
{
	return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* Parse exactly 2*len hex digits into out.  Returns WD_EPARSE if not. */
enum wd_err wd_unhex(const char *in, unsigned char *out, size_t len);

/* SHA-256 of a buffer (OpenSSL).  out holds 32 bytes. */
void wd_sha256(const void *data, size_t len, unsigned char out[32]);

/* Wipe memory that held a secret; the compiler may not drop it. */
void wd_wipe(void *p, size_t len);

/* Is s 1..max characters of A-Z a-z 0-9 - _ . : (a token safe to echo
 * in headers, logs and records)? */
bool wd_token_sane(const char *s, size_t max);

/* Levenshtein distance, capped; used for "did you mean" hints. */
size_t wd_edit_distance(const char *a, const char *b);

/* malloc/strdup that abort on failure are deliberately absent: callers
 * handle WD_ENOMEM.  These helpers only save typing. */
char *wd_strndup(const char *s, size_t n);

/*
 * One thread's emptied blocks of one size, kept for the next request
 * instead of going back to malloc: a transaction (8 KB) and its tool
 * check (4 KB) are beyond malloc's per-thread cache, and its bins took
 * about 0.3 us a request to hand them out and back.  wd_spare_get gives
 * a zeroed block (as calloc) or NULL; wd_spare_put keeps up to max of
 * them and frees the rest.  The owner's thread only.  Under ASan nothing
 * is kept: a block used after its put must still be caught.
 */
struct wd_spares {
	void *head;
	unsigned n, max;
	size_t size;
};

void *wd_spare_get(struct wd_spares *s);
void wd_spare_put(struct wd_spares *s, void *p);
void wd_spares_clear(struct wd_spares *s);

/* Reads all of path (NULL: stdin) into a NUL-terminated buffer and sets
 * *len.  NULL if it cannot be opened or read, or holds more than max bytes.
 * For the command-line tools; the gateway reads nothing this way. */
char *wd_slurp(const char *path, size_t max, size_t *len);

#endif /* WD_H */
