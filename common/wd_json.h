/*
 * wd_json.h - JSON text written directly from C values and jansson trees,
 * without printf per value, a key array and a sort per object, or a
 * callback per piece: the audit record's canonical text (audit/canon.c,
 * keys sorted) and the answers warden re-serialises after reading them
 * strictly (gateway/chat_answer.c, keys in their order).  The bytes are
 * those jansson writes with JSON_COMPACT (and JSON_SORT_KEYS when asked):
 * strings escaped as jansson escapes them (\" \\ \b \f \n \r \t, other
 * control characters as \u00XX in upper-case hex, '/' and non-ASCII as
 * they are), integers in decimal, reals by jansson itself.
 */
#ifndef WD_JSON_H
#define WD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <jansson.h>

/* A growing text.  p may start as the caller's buffer (own false): it is
 * copied to the heap once it must grow.  fail: out of memory, over max,
 * a string that is not UTF-8, or nested too deep; the rest is not
 * written. */
struct wd_jbuf {
	char *p;
	size_t len, cap;
	size_t max;			/* bytes at most; 0: no limit */
	bool own;			/* p is malloc()ed here */
	bool fail;
};

#define WD_JSON_DEPTH 2048		/* deeper fails: jansson reads no deeper */

bool wd_jbuf_grow(struct wd_jbuf *b, size_t more);
void wd_jbuf_free(struct wd_jbuf *b);

static inline void
wd_jbuf_put(struct wd_jbuf *b, const void *s, size_t n)
{
	if (b->len + n <= b->cap || wd_jbuf_grow(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static inline void
wd_jbuf_putc(struct wd_jbuf *b, char ch)
{
	if (b->len < b->cap || wd_jbuf_grow(b, 1))
		b->p[b->len++] = ch;
}

/* A string of n bytes, quoted and escaped; fails if it is not UTF-8. */
void wd_json_put_string(struct wd_jbuf *b, const char *s, size_t n);
/* An integer as jansson prints it. */
void wd_json_put_int(struct wd_jbuf *b, long long v);
/* v as json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes it, with
 * JSON_SORT_KEYS if sorted. */
void wd_json_put_value(struct wd_jbuf *b, const json_t *v, bool sorted);

#endif /* WD_JSON_H */
