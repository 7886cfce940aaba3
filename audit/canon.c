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

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Each thread keeps a few record buffers for its next records: a record
 * is about a kilobyte, above what glibc keeps per thread, so a malloc and
 * a free of one per request went to the arena's slower paths.  A buffer
 * is the size wd_jbuf_grow starts with; one that grew is freed.  A
 * thread's spares are freed when it ends.
 */
#define TEXT_SPARES 16
#define TEXT_CAP 2048

struct text_spares {
	char *p[TEXT_SPARES];
	unsigned n;
};

static pthread_key_t spares_key;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;
static bool spares_ok;
static _Thread_local struct text_spares spares;

static void
spares_free(void *arg)
{
	struct text_spares *s = arg;

	while (s->n > 0)
		free(s->p[--s->n]);
}

static void
spares_init(void)
{
	spares_ok = pthread_key_create(&spares_key, spares_free) == 0;
}

void
aud_canon_text_done(struct aud_pre *pre)
{
	pthread_once(&spares_once, spares_init);
	if (pre->text != NULL && pre->cap == TEXT_CAP && spares_ok &&
	    spares.n < TEXT_SPARES) {
		/* The destructor runs only for a thread that set its key. */
		if (spares.n == 0 && pthread_setspecific(spares_key, &spares) != 0)
			free(pre->text);
		else
			spares.p[spares.n++] = pre->text;
	} else {
		free(pre->text);
	}
	pre->text = NULL;
}

/* Members the log fills in, in sorted order among the caller's keys. */
static const char *const reserved[] = { "instance", "prev", "seq", "ts" };

static void
put(struct aud_canon *c, const char *s, size_t n)
{
	wd_jbuf_put(&c->b, s, n);
}

static void
putc1(struct aud_canon *c, char ch)
{
	wd_jbuf_putc(&c->b, ch);
}

static void
put_string(struct aud_canon *c, const char *s, size_t n)
{
	wd_json_put_string(&c->b, s, n);
}

/* A comma before every element but the first of its container. */
static void
element(struct aud_canon *c)
{
	if (c->depth == 0) {
		c->b.fail = true;		/* a value outside the record */
		return;
	}
	if (c->n[c->depth - 1]++ > 0)
		putc1(c, ',');
}

static void
member_raw(struct aud_canon *c, const char *key, size_t n)
{
	const unsigned char *k = (const unsigned char *)key;

	element(c);
	/* A plain key (all of the gateway's): quoted, copied and followed
	 * by its colon in one step. */
	if (wd_json_plain_end(k, k + n) == k + n &&
	    (c->b.len + n + 3 <= c->b.cap || wd_jbuf_grow(&c->b, n + 3))) {
		char *w = c->b.p + c->b.len;

		w[0] = '"';
		memcpy(w + 1, key, n);
		w[n + 1] = '"';
		w[n + 2] = ':';
		c->b.len += n + 3;
		return;
	}
	put_string(c, key, n);
	putc1(c, ':');
}

static void
put_reserved(struct aud_canon *c, unsigned i)
{
	c->nreserved = i + 1;
	if (i == 0) {
		member_raw(c, "instance", 8);
		put_string(c, c->instance, strlen(c->instance));
	} else if (i == 3) {
		member_raw(c, "ts", 2);
		put_string(c, c->ts, strlen(c->ts));
	} else if (i == 1) {
		/* Where the splice puts "prev" (before the next key's quote). */
		c->at_prev = c->b.len + (c->n[0] > 0);
	} else {
		c->at_seq = c->b.len + (c->n[0] > 0);
	}
}

void
aud_canon_keyn(struct aud_canon *c, const char *key, size_t n)
{
	unsigned d = c->depth;

	if (c->b.fail)
		return;
	/* In order: most keys differ from the one before at their first
	 * byte. */
	if (d == 0 || d > AUD_CANON_DEPTH || c->arr[d - 1] ||
	    (c->last[d - 1] != NULL &&
	    (unsigned char)c->last[d - 1][0] >= (unsigned char)key[0] &&
	    strcmp(c->last[d - 1], key) >= 0)) {
		c->b.fail = true;		/* out of order, or not in an object */
		return;
	}
	c->last[d - 1] = key;
	/* The log's members not placed yet that sort before key go first
	 * (both lists are sorted: one look at the next one mostly). */
	while (d == 1 && c->nreserved < 4) {
		const char *r = reserved[c->nreserved];
		int cmp = r[0] != key[0] ? (unsigned char)r[0] -
		    (unsigned char)key[0] : strcmp(r, key);

		if (cmp == 0) {
			c->b.fail = true;	/* the log's own */
			return;
		}
		if (cmp > 0)
			break;
		put_reserved(c, c->nreserved);
	}
	member_raw(c, key, n);
	c->value_next = true;
}

/* Before a value: after its key in an object, or as an array element. */
static bool
value(struct aud_canon *c)
{
	if (c->b.fail)
		return false;
	if (c->value_next) {
		c->value_next = false;
		return true;
	}
	if (c->depth == 0 || !c->arr[c->depth - 1]) {
		c->b.fail = true;		/* a value without its key */
		return false;
	}
	element(c);
	return !c->b.fail;
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
	c->b.max = AUD_CANON_MAX;
	if (spares.n > 0) {
		c->b.p = spares.p[--spares.n];
		c->b.cap = TEXT_CAP;
		c->b.own = true;
	}
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

void
aud_canon_int(struct aud_canon *c, long long v)
{
	if (value(c))
		wd_json_put_int(&c->b, v);
}

void
aud_canon_json(struct aud_canon *c, const json_t *v)
{
	if (v == NULL) {
		c->b.fail = true;		/* the caller says what it means */
		return;
	}
	if (value(c))
		wd_json_put_value(&c->b, v, true);
}

static void
open_container(struct aud_canon *c, bool arr, char ch)
{
	if (!value(c))
		return;
	if (c->depth >= AUD_CANON_DEPTH) {
		c->b.fail = true;
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
	if (c->b.fail)
		return;
	if (c->depth <= 1 || c->value_next) {
		c->b.fail = true;
		return;
	}
	c->depth--;
	putc1(c, c->arr[c->depth] ? ']' : '}');
}

bool
aud_canon_end(struct aud_canon *c, struct aud_pre *pre)
{
	memset(pre, 0, sizeof(*pre));
	if (!c->b.fail && (c->depth != 1 || c->value_next))
		c->b.fail = true;
	while (c->nreserved < 4 && !c->b.fail)
		put_reserved(c, c->nreserved);
	putc1(c, '}');
	putc1(c, '\0');	/* a C string too, as json_dumps gives */
	c->b.len--;
	if (c->b.fail) {
		aud_canon_free(c);
		return false;
	}
	/* Keys after the record's last one: before the closing brace. */
	if (!(c->at_prev < c->b.len - 1))
		c->at_prev = c->b.len - 1;
	if (!(c->at_seq < c->b.len - 1))
		c->at_seq = c->b.len - 1;
	pre->text = c->b.p;
	pre->len = c->b.len;
	pre->cap = c->b.cap;
	pre->at_prev = c->at_prev;
	pre->at_seq = c->at_seq;
	c->b.p = NULL;
	c->b.len = c->b.cap = 0;
	c->b.own = false;
	return true;
}

/* ---- a value given as its JSON text (aud_canon_raw) ---- */

#define RAW_DEPTH 6
#define RAW_MEMBERS 32

struct raw {
	const unsigned char *p, *end;
};

static void
raw_ws(struct raw *r)
{
	r->p = wd_json_ws(r->p, r->end);
}

/* A string without escapes (UTF-8, no control character): written as it
 * is, it is what jansson writes. */
static bool
raw_string(struct raw *r)
{
	const unsigned char *p;

	if (r->p >= r->end || *r->p != '"')
		return false;
	p = r->p + 1;
	for (;;) {
		size_t n;

		p = wd_json_plain_end(p, r->end);
		if (p >= r->end || *p == '\\' || *p < 0x20)
			return false;
		if (*p == '"')
			break;
		if ((n = wd_utf8_len(p, (size_t)(r->end - p))) < 2)
			return false;
		p += n;
	}
	r->p = p + 1;
	return true;
}

/* An integer as jansson prints it: no sign but '-', no leading zero, no
 * "-0", no fraction or exponent, within 18 digits. */
static bool
raw_int(struct raw *r)
{
	const unsigned char *p = r->p + (r->p < r->end && *r->p == '-');

	if (p < r->end && *p == '0' && p == r->p) {
		p++;
	} else {
		if (p >= r->end || *p < '1' || *p > '9')
			return false;
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p - r->p > 18 || (p < r->end && (*p == '.' || *p == 'e' ||
	    *p == 'E')))
		return false;
	r->p = p;
	return true;
}

static bool
raw_word(struct raw *r, const char *w, size_t n)
{
	const unsigned char *q = wd_json_word(r->p, r->end, w, n);

	if (q == NULL)
		return false;
	r->p = q;
	return true;
}

/* Keys as JSON_SORT_KEYS orders them (bytes, then the shorter first),
 * quotes included. */
static int
raw_keycmp(const unsigned char *a, size_t an, const unsigned char *b,
    size_t bn)
{
	size_t n = (an < bn ? an : bn) - 2;
	int d = memcmp(a + 1, b + 1, n);

	return d != 0 ? d : (an > bn) - (an < bn);
}

/* One value at r->p, written into b (NULL: only read past). */
static bool
raw_value(struct wd_jbuf *b, struct raw *r, unsigned depth)
{
	const unsigned char *v = r->p;

	if (r->p >= r->end || depth > RAW_DEPTH)
		return false;
	if (*r->p == '[') {
		bool first = true;

		if (b != NULL)
			wd_jbuf_putc(b, '[');
		r->p++;
		raw_ws(r);
		while (r->p < r->end && *r->p != ']') {
			if (!first) {
				if (*r->p != ',')
					return false;
				r->p++;
				raw_ws(r);
				if (b != NULL)
					wd_jbuf_putc(b, ',');
			}
			first = false;
			if (!raw_value(b, r, depth + 1))
				return false;
			raw_ws(r);
		}
		if (r->p >= r->end)
			return false;
		r->p++;
		if (b != NULL)
			wd_jbuf_putc(b, ']');
		return true;
	}
	if (*r->p == '{') {
		struct {
			const unsigned char *k, *v;
			size_t kn, vn;
		} m[RAW_MEMBERS], t;
		size_t n = 0;

		r->p++;
		raw_ws(r);
		while (r->p < r->end && *r->p != '}') {
			if (n > 0) {
				if (*r->p != ',')
					return false;
				r->p++;
				raw_ws(r);
			}
			if (n == RAW_MEMBERS)
				return false;
			m[n].k = r->p;
			if (!raw_string(r))
				return false;
			m[n].kn = (size_t)(r->p - m[n].k);
			raw_ws(r);
			if (r->p >= r->end || *r->p != ':')
				return false;
			r->p++;
			raw_ws(r);
			m[n].v = r->p;
			if (!raw_value(NULL, r, depth + 1))
				return false;
			m[n].vn = (size_t)(r->p - m[n].v);
			n++;
			raw_ws(r);
		}
		if (r->p >= r->end)
			return false;
		r->p++;
		if (b == NULL)
			return true;
		/* Sorted; a key twice is jansson's to settle (last wins). */
		for (size_t i = 1; i < n; i++) {
			size_t j = i;

			t = m[i];
			while (j > 0 && raw_keycmp(m[j - 1].k, m[j - 1].kn, t.k,
			    t.kn) > 0) {
				m[j] = m[j - 1];
				j--;
			}
			m[j] = t;
		}
		for (size_t i = 1; i < n; i++)
			if (raw_keycmp(m[i - 1].k, m[i - 1].kn, m[i].k,
			    m[i].kn) == 0)
				return false;
		wd_jbuf_putc(b, '{');
		for (size_t i = 0; i < n; i++) {
			struct raw sub = { m[i].v, m[i].v + m[i].vn };

			if (i > 0)
				wd_jbuf_putc(b, ',');
			wd_jbuf_put(b, m[i].k, m[i].kn);
			wd_jbuf_putc(b, ':');
			if (!raw_value(b, &sub, depth + 1))
				return false;
		}
		wd_jbuf_putc(b, '}');
		return true;
	}
	if (!(*r->p == '"' ? raw_string(r) : *r->p == 't' ?
	    raw_word(r, "true", 4) : *r->p == 'f' ? raw_word(r, "false", 5) :
	    *r->p == 'n' ? raw_word(r, "null", 4) : raw_int(r)))
		return false;
	if (b != NULL)
		wd_jbuf_put(b, v, (size_t)(r->p - v));
	return true;
}

bool
aud_canon_raw(struct aud_canon *c, const char *text, size_t len)
{
	struct raw r = { (const unsigned char *)text,
		(const unsigned char *)text + len };
	size_t at = c->b.len, n = c->depth > 0 ? c->n[c->depth - 1] : 0;
	bool next = c->value_next;

	if (!value(c))
		return false;
	raw_ws(&r);
	if (raw_value(&c->b, &r, 0)) {
		raw_ws(&r);
		if (r.p == r.end)
			return !c->b.fail;
	}
	/* Not one of its shapes: as if it had not been called. */
	if (!c->b.fail) {
		c->b.len = at;
		c->value_next = next;
		if (c->depth > 0)
			c->n[c->depth - 1] = n;
	}
	return false;
}

void
aud_canon_free(struct aud_canon *c)
{
	wd_jbuf_free(&c->b);
	c->b.fail = true;
}
