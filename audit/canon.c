/*
 * canon.c - a record's canonical text written directly, member by member,
 * instead of building a jansson tree and serialising it with sorted keys
 * (the gateway's request record, once per request).  The bytes are those
 * json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) gives for the same
 * record (audit/FORMAT.md): keys in bytewise order, no whitespace,
 * strings escaped as jansson escapes them (\" \\ \b \f \n \r \t, other
 * control characters as \u00XX with upper-case hex, '/' and non-ASCII
 * as they are).  tests/unit/test_audit.c compares the two on many
 * records.
 *
 * The caller gives the members in sorted order (a key out of order, or a
 * string that is not UTF-8, fails the record: the caller falls back to
 * the jansson path, which decides what happens to such a record as it
 * always did).  The writer adds `instance` and `ts` itself and leaves
 * the places of `prev` and `seq` for the splice under the log's lock
 * (aud_line_splice), as aud_line_prepare does for a jansson record.
 */
#include "audit/aud_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members the log fills in, in sorted order among the caller's keys. */
static const char *const reserved[] = { "instance", "prev", "seq", "ts" };

static bool
grow(struct aud_canon *c, size_t more)
{
	size_t cap;
	char *np;

	if (c->fail)
		return false;
	if (c->len + more <= c->cap)
		return true;
	/* A request record is about 1.1 KB: one allocation. */
	cap = c->cap != 0 ? c->cap : 2048;
	while (cap < c->len + more)
		cap *= 2;
	if (cap > AUD_CANON_MAX || (np = realloc(c->p, cap)) == NULL) {
		c->fail = true;
		return false;
	}
	c->p = np;
	c->cap = cap;
	return true;
}

static void
put(struct aud_canon *c, const char *s, size_t n)
{
	if (grow(c, n)) {
		memcpy(c->p + c->len, s, n);
		c->len += n;
	}
}

static void
putc1(struct aud_canon *c, char ch)
{
	if (grow(c, 1))
		c->p[c->len++] = ch;
}

/* Length of the UTF-8 sequence at s (n bytes left) as jansson accepts it
 * (no overlong forms, no surrogates, nothing past U+10FFFF), 0 if
 * invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char b = s[0];
	uint32_t cp;
	size_t len;

	if (b < 0x80)
		return 1;
	if (b < 0xC2 || b > 0xF4)
		return 0;
	len = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
	if (n < len)
		return 0;
	cp = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
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

static void
put_string(struct aud_canon *c, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	putc1(c, '"');
	while (i < n) {
		unsigned char b = s[i];
		char esc[6];
		size_t el = 2;

		if (b >= 0x20 && b != '"' && b != '\\' && b < 0x80) {
			i = (size_t)(wd_json_plain_end(s + i + 1, s + n) - s);
			continue;
		}
		if (b >= 0x80) {
			size_t ul = utf8_len(s + i, n - i);

			if (ul == 0) {
				c->fail = true;
				return;
			}
			i += ul;
			continue;
		}
		put(c, str + run, i - run);
		esc[0] = '\\';
		switch (b) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[b >> 4];
			esc[5] = hex[b & 15];
			el = 6;
		}
		put(c, esc, el);
		run = ++i;
	}
	put(c, str + run, n - run);
	putc1(c, '"');
}

/* A comma before every element but the first of its container. */
static void
element(struct aud_canon *c)
{
	if (c->depth == 0) {
		c->fail = true;		/* a value outside the record */
		return;
	}
	if (c->n[c->depth - 1]++ > 0)
		putc1(c, ',');
}

static void
member_raw(struct aud_canon *c, const char *key)
{
	element(c);
	put_string(c, key, strlen(key));
	putc1(c, ':');
}

static void
put_reserved(struct aud_canon *c, unsigned i)
{
	c->nreserved = i + 1;
	if (i == 0) {
		member_raw(c, "instance");
		put_string(c, c->instance, strlen(c->instance));
	} else if (i == 3) {
		member_raw(c, "ts");
		put_string(c, c->ts, strlen(c->ts));
	} else if (i == 1) {
		/* Where the splice puts "prev" (before the next key's quote). */
		c->at_prev = c->len + (c->n[0] > 0);
	} else {
		c->at_seq = c->len + (c->n[0] > 0);
	}
}

void
aud_canon_key(struct aud_canon *c, const char *key)
{
	unsigned d = c->depth;

	if (c->fail)
		return;
	if (d == 0 || d > AUD_CANON_DEPTH || c->arr[d - 1] ||
	    (c->last[d - 1] != NULL && strcmp(c->last[d - 1], key) >= 0)) {
		c->fail = true;		/* out of order, or not in an object */
		return;
	}
	c->last[d - 1] = key;
	/* The log's members not placed yet that sort before key go first
	 * (both lists are sorted: one look at the next one mostly). */
	while (d == 1 && c->nreserved < 4) {
		int cmp = strcmp(reserved[c->nreserved], key);

		if (cmp == 0) {
			c->fail = true;	/* the log's own */
			return;
		}
		if (cmp > 0)
			break;
		put_reserved(c, c->nreserved);
	}
	member_raw(c, key);
	c->value_next = true;
}

/* Before a value: after its key in an object, or as an array element. */
static bool
value(struct aud_canon *c)
{
	if (c->fail)
		return false;
	if (c->value_next) {
		c->value_next = false;
		return true;
	}
	if (c->depth == 0 || !c->arr[c->depth - 1]) {
		c->fail = true;		/* a value without its key */
		return false;
	}
	element(c);
	return !c->fail;
}

void
aud_canon_begin(struct aud_canon *c, const struct aud_log *l)
{
	aud_canon_begin_as(c, l->instance, NULL);
}

void
aud_canon_begin_as(struct aud_canon *c, const char *instance, const char *ts)
{
	memset(c, 0, sizeof(*c));
	c->instance = instance;
	if (ts != NULL)
		snprintf(c->ts, sizeof(c->ts), "%s", ts);
	else
		aud_ts_now(c->ts, sizeof(c->ts));
	c->depth = 1;
	putc1(c, '{');
}

void
aud_canon_str(struct aud_canon *c, const char *s)
{
	if (s == NULL) {
		aud_canon_null(c);
		return;
	}
	if (value(c))
		put_string(c, s, strlen(s));
}

void
aud_canon_null(struct aud_canon *c)
{
	if (value(c))
		put(c, "null", 4);
}

void
aud_canon_bool(struct aud_canon *c, bool b)
{
	if (value(c))
		put(c, b ? "true" : "false", b ? 4 : 5);
}

/* An integer as jansson prints it ("%lld"), without printf. */
static void
put_int(struct aud_canon *c, long long v)
{
	char buf[24], *p = buf + sizeof(buf);
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v :
	    (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	put(c, p, (size_t)(buf + sizeof(buf) - p));
}

void
aud_canon_int(struct aud_canon *c, long long v)
{
	if (value(c))
		put_int(c, v);
}

static int
dump_cb(const char *buf, size_t size, void *data)
{
	struct aud_canon *c = data;

	put(c, buf, size);
	return c->fail ? -1 : 0;
}

struct canon_member {
	const char *key;
	size_t len;
	const json_t *v;
};

/* jansson's JSON_SORT_KEYS order: bytewise, a prefix first. */
static int
member_cmp(const void *a, const void *b)
{
	const struct canon_member *x = a, *y = b;
	int r = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

/*
 * A jansson value's canonical text, as json_dump_callback(v, JSON_COMPACT
 * | JSON_SORT_KEYS | JSON_ENCODE_ANY) writes it, without its key array,
 * sort and printf per value (the attempts and usage of every request
 * record); a real goes to jansson itself, for its exact digits.
 */
static void
put_json(struct aud_canon *c, const json_t *v, unsigned depth)
{
	struct canon_member few[8], *m = few;
	size_t n = 0, i;
	json_t *e;
	void *it;

	if (depth > AUD_CANON_JSON_DEPTH) {
		c->fail = true;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (json_object_size(v) > sizeof(few) / sizeof(few[0]) &&
		    (m = malloc(json_object_size(v) * sizeof(*m))) == NULL) {
			c->fail = true;
			return;
		}
		for (it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it)) {
			m[n].key = json_object_iter_key(it);
			m[n].len = json_object_iter_key_len(it);
			m[n++].v = json_object_iter_value(it);
		}
		qsort(m, n, sizeof(*m), member_cmp);
		putc1(c, '{');
		for (i = 0; i < n && !c->fail; i++) {
			if (i > 0)
				putc1(c, ',');
			put_string(c, m[i].key, m[i].len);
			putc1(c, ':');
			put_json(c, m[i].v, depth + 1);
		}
		putc1(c, '}');
		if (m != few)
			free(m);
		break;
	case JSON_ARRAY:
		putc1(c, '[');
		json_array_foreach(v, i, e) {
			if (i > 0)
				putc1(c, ',');
			put_json(c, e, depth + 1);
		}
		putc1(c, ']');
		break;
	case JSON_STRING:
		put_string(c, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		put_int(c, (long long)json_integer_value(v));
		break;
	case JSON_TRUE:
		put(c, "true", 4);
		break;
	case JSON_FALSE:
		put(c, "false", 5);
		break;
	case JSON_NULL:
		put(c, "null", 4);
		break;
	default:
		if (json_dump_callback(v, dump_cb, c, JSON_COMPACT |
		    JSON_ENCODE_ANY) != 0)
			c->fail = true;
	}
}

void
aud_canon_json(struct aud_canon *c, const json_t *v)
{
	if (v == NULL) {
		c->fail = true;		/* the caller says what it means */
		return;
	}
	if (value(c))
		put_json(c, v, 0);
}

static void
open_container(struct aud_canon *c, bool arr, char ch)
{
	if (!value(c))
		return;
	if (c->depth >= AUD_CANON_DEPTH) {
		c->fail = true;
		return;
	}
	putc1(c, ch);
	c->arr[c->depth] = arr;
	c->n[c->depth] = 0;
	c->last[c->depth] = NULL;
	c->depth++;
}

void
aud_canon_obj(struct aud_canon *c)
{
	open_container(c, false, '{');
}

void
aud_canon_arr(struct aud_canon *c)
{
	open_container(c, true, '[');
}

void
aud_canon_close(struct aud_canon *c)
{
	if (c->fail)
		return;
	if (c->depth <= 1 || c->value_next) {
		c->fail = true;
		return;
	}
	c->depth--;
	putc1(c, c->arr[c->depth] ? ']' : '}');
}

bool
aud_canon_end(struct aud_canon *c, struct aud_pre *pre)
{
	memset(pre, 0, sizeof(*pre));
	if (!c->fail && (c->depth != 1 || c->value_next))
		c->fail = true;
	while (c->nreserved < 4 && !c->fail)
		put_reserved(c, c->nreserved);
	putc1(c, '}');
	putc1(c, '\0');	/* a C string too, as json_dumps gives */
	c->len--;
	if (c->fail) {
		aud_canon_free(c);
		return false;
	}
	/* Keys after the record's last one: before the closing brace. */
	if (!(c->at_prev < c->len - 1))
		c->at_prev = c->len - 1;
	if (!(c->at_seq < c->len - 1))
		c->at_seq = c->len - 1;
	pre->text = c->p;
	pre->len = c->len;
	pre->at_prev = c->at_prev;
	pre->at_seq = c->at_seq;
	c->p = NULL;
	c->len = c->cap = 0;
	return true;
}

void
aud_canon_free(struct aud_canon *c)
{
	free(c->p);
	c->p = NULL;
	c->len = c->cap = 0;
	c->fail = true;
}
