/*
 * wd.c - shared helpers: error strings, logging, clocks, hashing and the
 * careful byte handling every module needs.
 */
#include "common/wd.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const wd_err_text[WD_ERR_COUNT] = {
	[WD_OK] = "success",
	[WD_ENOMEM] = "out of memory",
	[WD_EINVAL] = "invalid argument",
	[WD_EIO] = "I/O error",
	[WD_ECONFIG] = "invalid configuration",
	[WD_ELIMIT] = "limit exceeded",
	[WD_EPARSE] = "malformed input",
	[WD_ENOTFOUND] = "not found",
	[WD_EUPSTREAM] = "upstream failed",
	[WD_ETIMEOUT] = "timed out",
	[WD_ETPM] = "TPM error",
	[WD_EPERM] = "unsafe file ownership or permissions",
	[WD_ECLOSED] = "peer closed the connection",
	[WD_EUNSUPPORTED] = "not supported",
	[WD_EDESTROYED] = "its key was destroyed",
	[WD_EROLLBACK] = "the audit log is behind the TPM counter (rolled back)",
};

const char *
wd_strerror(enum wd_err err)
{
	if ((unsigned)err >= WD_ERR_COUNT || wd_err_text[err] == NULL)
		return "unknown error";
	return wd_err_text[err];
}

static enum wd_log_level wd_log_min = WD_LOG_INFO;

void
wd_log_set_level(enum wd_log_level level)
{
	wd_log_min = level;
}

void
wd_log(enum wd_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level < wd_log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ warden %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fputs per line: stdio locks the stream, so lines from worker
	 * threads never interleave. */
	fprintf(stderr, "%s\n", line);
}

uint64_t
wd_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
wd_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool
wd_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

enum wd_err
wd_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return WD_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return WD_OK;
}

/*
 * Random identifiers (request and decision ids): not secrets, but not to
 * be guessed either.  Taken from a per-thread block of getrandom() bytes,
 * one system call per 512 bytes instead of two per request; the bytes
 * handed out are cleared from the block, and a forked child starts with
 * an empty block, so no two processes share ids.
 */
#define WD_ID_POOL 512
static __thread unsigned char id_pool[WD_ID_POOL];
static __thread size_t id_left;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void
id_child(void)
{
	explicit_bzero(id_pool, sizeof(id_pool));
	id_left = 0;
}

static void
id_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, id_child);
}

enum wd_err
wd_random_id(void *buf, size_t len)
{
	unsigned char *p = buf;

	(void)pthread_once(&id_once, id_atfork);
	while (len > 0) {
		size_t n;

		if (id_left == 0) {
			if (wd_random(id_pool, sizeof(id_pool)) != WD_OK)
				return WD_EIO;
			id_left = sizeof(id_pool);
		}
		n = len < id_left ? len : id_left;
		memcpy(p, id_pool + sizeof(id_pool) - id_left, n);
		explicit_bzero(id_pool + sizeof(id_pool) - id_left, n);
		id_left -= n;
		p += n;
		len -= n;
	}
	return WD_OK;
}

void
wd_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

size_t
wd_u64_dec(uint64_t v, char *out)
{
	char tmp[20], *p = tmp + sizeof(tmp);
	size_t n;

	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	n = (size_t)(tmp + sizeof(tmp) - p);
	memcpy(out, p, n);
	return n;
}

size_t
wd_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

/* Length of the UTF-8 sequence at s (n bytes left) as jansson accepts it
 * (no overlong forms, no surrogates, nothing past U+10FFFF), 0 if
 * invalid. */
size_t
wd_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c0 = s[0];
	uint32_t cp;
	size_t len;

	if (c0 < 0x80)
		return 1;
	if (c0 < 0xC2 || c0 > 0xF4)
		return 0;
	len = c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
	if (n < len)
		return 0;
	cp = c0 & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return len;
}

int
wd_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum wd_err
wd_unhex(const char *in, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = wd_hexval(in[2 * i]), lo;

		if (hi < 0)
			return WD_EPARSE;
		lo = wd_hexval(in[2 * i + 1]);
		if (lo < 0)
			return WD_EPARSE;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return in[2 * len] == '\0' ? WD_OK : WD_EPARSE;
}

/*
 * SHA256() fetches the algorithm from OpenSSL's provider on every call
 * (EVP_Q_digest): that fetch, not the hash, was most of the three key
 * digests each request makes.  The algorithm is fetched once and each
 * thread keeps one context; after each digest the context is set back to
 * SHA-256's initial state, so nothing of what was hashed stays in it.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;
static __thread EVP_MD_CTX *sha256_ctx;

static void
sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void
sha256_fetch(void)
{
	if (pthread_key_create(&sha256_key, sha256_ctx_free) == 0)
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
wd_sha256(const void *data, size_t len, unsigned char out[32])
{
	EVP_MD_CTX *c;

	(void)pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md != NULL && sha256_ctx == NULL &&
	    (sha256_ctx = EVP_MD_CTX_new()) != NULL) {
		if (EVP_DigestInit_ex(sha256_ctx, sha256_md, NULL) != 1 ||
		    pthread_setspecific(sha256_key, sha256_ctx) != 0) {
			EVP_MD_CTX_free(sha256_ctx);
			sha256_ctx = NULL;
		}
	}
	c = sha256_ctx;
	if (c == NULL || EVP_DigestUpdate(c, data, len) != 1 ||
	    EVP_DigestFinal_ex(c, out, NULL) != 1 ||
	    EVP_DigestInit_ex(c, sha256_md, NULL) != 1) {
		/* The context is in an unknown state: not used again. */
		if (c != NULL) {
			(void)pthread_setspecific(sha256_key, NULL);
			EVP_MD_CTX_free(c);
			sha256_ctx = NULL;
		}
		SHA256(data, len, out);
	}
}

/* explicit_bzero: a plain memset the compiler may not drop, as
 * OPENSSL_cleanse, but without its byte loop (curl's and jansson's every
 * free goes through here: about 1 % of warden's CPU). */
void
wd_wipe(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
}

bool
wd_token_sane(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max)
		return false;
	for (; *v != '\0'; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		    (*v >= '0' && *v <= '9') || *v == '-' || *v == '_' ||
		    *v == '.' || *v == ':'))
			return false;
	return true;
}

size_t
wd_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];

	/* Hints are for short keys; long strings are simply "far". */
	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best;

			best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

void *
wd_spare_get(struct wd_spares *s)
{
	void *p = s->head;

	if (p == NULL)
		return calloc(1, s->size);
	memcpy(&s->head, p, sizeof(s->head));
	s->n--;
	memset(p, 0, s->size);
	return p;
}

void
wd_spare_put(struct wd_spares *s, void *p)
{
	if (p == NULL)
		return;
#if defined(__SANITIZE_ADDRESS__)
	(void)s;
#else
	if (s->n < s->max) {
		memcpy(p, &s->head, sizeof(s->head));
		s->head = p;
		s->n++;
		return;
	}
#endif
	free(p);
}

void
wd_spares_clear(struct wd_spares *s)
{
	while (s->head != NULL) {
		void *p = s->head;

		memcpy(&s->head, p, sizeof(s->head));
		free(p);
	}
	s->n = 0;
}

char *
wd_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
wd_slurp(const char *path, size_t max, size_t *len)
{
	FILE *f = path == NULL ? stdin : fopen(path, "rb");
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0, got;

	*len = 0;
	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			size_t want = cap ? cap * 2 : 65536;

			if (want <= cap || (nb = realloc(buf, want)) == NULL)
				goto fail;
			buf = nb;
			cap = want;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
		if (n > max)
			goto fail;
	}
	if (ferror(f))
		goto fail;
	buf[n] = '\0';
	*len = n;
	goto out;
fail:
	free(buf);
	buf = NULL;
out:
	if (f != stdin)
		fclose(f);
	return buf;
}
