/*
 * wd_json.c - JSON text written directly (wd_json.h says which bytes).
 * tests/unit/test_audit.c compares the sorted form with jansson's on
 * many random records, tests/unit/test_wd.c the unsorted one on random
 * trees.
 */
#include "common/wd_json.h"

#include <stdint.h>
#include <stdlib.h>

#include "common/wd.h"

bool
wd_jbuf_grow(struct wd_jbuf *b, size_t more)
{
	size_t cap;
	char *np;

	if (b->fail)
		return false;
	if (b->len + more <= b->cap)
		return true;
	cap = b->cap != 0 ? b->cap : 2048;
	while (cap < b->len + more)
		cap *= 2;
	if (b->max != 0 && cap > b->max) {
		if (b->len + more > b->max) {
			b->fail = true;
			return false;
		}
		cap = b->max;
	}
	np = b->own ? realloc(b->p, cap) : malloc(cap);
	if (np == NULL) {
		b->fail = true;
		return false;
	}
	if (!b->own && b->len > 0)
		memcpy(np, b->p, b->len);
	b->p = np;
	b->cap = cap;
	b->own = true;
	return true;
}

void
wd_jbuf_free(struct wd_jbuf *b)
{
	if (b->own)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->own = false;
}

void
wd_json_put_string(struct wd_jbuf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = (size_t)(wd_json_plain_end(s, s + n) - s), run = 0;

	/* Most strings need no escape: quote, copy and quote in one go. */
	if (i == n) {
		if (b->len + n + 2 <= b->cap || wd_jbuf_grow(b, n + 2)) {
			b->p[b->len] = '"';
			memcpy(b->p + b->len + 1, s, n);
			b->p[b->len + 1 + n] = '"';
			b->len += n + 2;
		}
		return;
	}
	wd_jbuf_putc(b, '"');
	while (i < n) {
		unsigned char c = s[i];
		char esc[6];
		size_t el = 2;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i = (size_t)(wd_json_plain_end(s + i + 1, s + n) - s);
			continue;
		}
		if (c >= 0x80) {
			size_t ul = wd_utf8_len(s + i, n - i);

			if (ul == 0) {
				b->fail = true;
				return;
			}
			i += ul;
			continue;
		}
		wd_jbuf_put(b, str + run, i - run);
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		wd_jbuf_put(b, esc, el);
		run = ++i;
	}
	wd_jbuf_put(b, str + run, n - run);
	wd_jbuf_putc(b, '"');
}

/* An integer as jansson prints it ("%lld"), without printf. */
void
wd_json_put_int(struct wd_jbuf *b, long long v)
{
	char buf[24];
	size_t n = 0;

	if (v < 0)
		buf[n++] = '-';
	n += wd_u64_dec(v < 0 ? 0ull - (unsigned long long)v :
	    (unsigned long long)v, buf + n);
	wd_jbuf_put(b, buf, n);
}

static int
dump_cb(const char *buf, size_t size, void *data)
{
	struct wd_jbuf *b = data;

	wd_jbuf_put(b, buf, size);
	return b->fail ? -1 : 0;
}

struct member {
	const char *key;
	size_t len;
	const json_t *v;
};

/* jansson's JSON_SORT_KEYS order: bytewise, a prefix first. */
static int
member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int r = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

static void
put_object(struct wd_jbuf *b, const json_t *v, bool sorted, unsigned depth);

static void
put_value(struct wd_jbuf *b, const json_t *v, bool sorted, unsigned depth)
{
	json_t *e;
	size_t i;

	if (depth > WD_JSON_DEPTH) {
		b->fail = true;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		put_object(b, v, sorted, depth);
		break;
	case JSON_ARRAY:
		wd_jbuf_putc(b, '[');
		json_array_foreach(v, i, e) {
			if (i > 0)
				wd_jbuf_putc(b, ',');
			put_value(b, e, sorted, depth + 1);
		}
		wd_jbuf_putc(b, ']');
		break;
	case JSON_STRING:
		wd_json_put_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		wd_json_put_int(b, (long long)json_integer_value(v));
		break;
	case JSON_TRUE:
		wd_jbuf_put(b, "true", 4);
		break;
	case JSON_FALSE:
		wd_jbuf_put(b, "false", 5);
		break;
	case JSON_NULL:
		wd_jbuf_put(b, "null", 4);
		break;
	default:
		/* A real: jansson's own digits. */
		if (json_dump_callback(v, dump_cb, b, JSON_COMPACT |
		    JSON_ENCODE_ANY) != 0)
			b->fail = true;
	}
}

static void
put_object(struct wd_jbuf *b, const json_t *v, bool sorted, unsigned depth)
{
	struct member few[8], *m = few;
	size_t n = 0;
	void *it;

	wd_jbuf_putc(b, '{');
	if (!sorted) {
		/* jansson keeps an object's members in their order. */
		for (it = json_object_iter((json_t *)v); it != NULL && !b->fail;
		    it = json_object_iter_next((json_t *)v, it)) {
			if (n++ > 0)
				wd_jbuf_putc(b, ',');
			wd_json_put_string(b, json_object_iter_key(it),
			    json_object_iter_key_len(it));
			wd_jbuf_putc(b, ':');
			put_value(b, json_object_iter_value(it), false, depth + 1);
		}
		wd_jbuf_putc(b, '}');
		return;
	}
	if (json_object_size(v) > sizeof(few) / sizeof(few[0]) &&
	    (m = malloc(json_object_size(v) * sizeof(*m))) == NULL) {
		b->fail = true;
		return;
	}
	for (it = json_object_iter((json_t *)v); it != NULL;
	    it = json_object_iter_next((json_t *)v, it)) {
		m[n].key = json_object_iter_key(it);
		m[n].len = json_object_iter_key_len(it);
		m[n++].v = json_object_iter_value(it);
	}
	qsort(m, n, sizeof(*m), member_cmp);
	for (size_t i = 0; i < n && !b->fail; i++) {
		if (i > 0)
			wd_jbuf_putc(b, ',');
		wd_json_put_string(b, m[i].key, m[i].len);
		wd_jbuf_putc(b, ':');
		put_value(b, m[i].v, true, depth + 1);
	}
	wd_jbuf_putc(b, '}');
	if (m != few)
		free(m);
}

void
wd_json_put_value(struct wd_jbuf *b, const json_t *v, bool sorted)
{
	put_value(b, v, sorted, 0);
}
