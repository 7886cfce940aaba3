/*
 * json_scan.c - a provider's whole answer read without building a tree
 * (gw_json_scan_answer), for answers no policy reads: a request that is
 * not an agent's needs to know only that the answer is a JSON object (it
 * goes out as the provider sent it), and its `usage` (the record, token
 * limits) or, for an error status, that `error` is an object.
 *
 * It accepts exactly what json_loadb(buf, len, 0, ...) of jansson 2.14
 * accepts (fuzz_jsonscan checks that against jansson): an object or an
 * array, then only whitespace; strict UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF); no control characters and no
 * \u0000 in strings; surrogate escapes only in pairs; integers within
 * long long, reals within double; nesting to jansson's 2048 levels.
 * Duplicate keys are allowed, the last one counts (as json_object_set).
 * Stricter in one point: jansson skips a NUL byte that follows a number
 * or a literal (its reader takes a NUL in its one-byte push-back for
 * "empty"); here every NUL outside strings is refused, as inside them.
 */
#include "gateway/gw_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX_DEPTH 2048	/* jansson's JSON_PARSER_MAX_DEPTH */

struct scan {
	const unsigned char *p, *end;
	unsigned depth;
};

static void
ws(struct scan *s)
{
	s->p = wd_json_ws(s->p, s->end);
}

static int
hex4(const unsigned char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		int c = p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* One UTF-8 sequence of two or more bytes at s->p (its lead >= 0x80). */
static bool
utf8_seq(struct scan *s)
{
	size_t n = wd_utf8_len(s->p, (size_t)(s->end - s->p));

	if (n < 2)
		return false;	/* not a sequence of more than one byte */
	s->p += n;
	return true;
}

/* A string, s->p at its opening quote. */
static bool
string(struct scan *s)
{
	s->p++;
	for (;;) {
		const unsigned char *p = s->p;
		int u;

		/* The plain run: most of a body's bytes. */
		p = wd_json_plain_end(p, s->end);
		s->p = p;
		if (p >= s->end)
			return false;
		if (*p == '"') {
			s->p++;
			return true;
		}
		if (*p < 0x20)
			return false;
		if (*p >= 0x80) {
			if (!utf8_seq(s))
				return false;
			continue;
		}
		/* A backslash. */
		if (s->end - p < 2)
			return false;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n':
		case 'r': case 't':
			s->p += 2;
			continue;
		case 'u':
			break;
		default:
			return false;
		}
		if (s->end - p < 6 || (u = hex4(p + 2)) < 0 || u == 0)
			return false;
		s->p += 6;
		if (u >= 0xdc00 && u <= 0xdfff)
			return false;	/* a low surrogate alone */
		if (u >= 0xd800 && u <= 0xdbff) {
			int l;

			if (s->end - s->p < 6 || s->p[0] != '\\' ||
			    s->p[1] != 'u' || (l = hex4(s->p + 2)) < 0 ||
			    l < 0xdc00 || l > 0xdfff)
				return false;
			s->p += 6;
		}
	}
}

static bool
digits(struct scan *s)
{
	const unsigned char *p = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > p;
}

/*
 * Can the real at p (n bytes, valid JSON) not overflow a double, without
 * converting it?  Only a magnitude past DBL_MAX (about 1.8e308) is
 * refused; one whose decimal exponent is below 300 cannot be that.
 * False: strtod decides.
 */
static bool
real_small(const unsigned char *p, size_t n)
{
	const unsigned char *e = p + n;
	long ex = 0, intd = 0;
	bool neg = false;
	unsigned ed = 0;

	if (p < e && *p == '-')
		p++;
	if (p < e && *p != '0')
		while (p < e && *p >= '0' && *p <= '9') {
			intd++;
			p++;
		}
	while (p < e && *p != 'e' && *p != 'E')
		p++;
	if (p == e)
		return intd < 300;
	p++;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	for (; p < e; p++, ed++) {
		if (ed == 4)
			return false;
		ex = ex * 10 + (*p - '0');
	}
	return intd + (neg ? -ex : ex) < 300;
}

/* A number; as jansson, an integer must fit long long and a real must
 * not overflow a double. */
static bool
number(struct scan *s)
{
	const unsigned char *start = s->p;
	bool real = false;
	char buf[64], *end, *heap = NULL;
	size_t n;
	bool ok;

	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0') {
		s->p++;
		if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			return false;
	} else if (!digits(s)) {
		return false;
	}
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (!digits(s))
			return false;
		real = true;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!digits(s))
			return false;
		real = true;
	}
	n = (size_t)(s->p - start);
	/* Short integers and most reals cannot overflow: no conversion. */
	if ((!real && n <= 18) || (real && real_small(start, n)))
		return true;
	end = buf;
	if (n >= sizeof(buf) && (end = heap = malloc(n + 1)) == NULL)
		return false;
	memcpy(end, start, n);
	end[n] = '\0';
	errno = 0;
	if (real) {
		double d = strtod(end, NULL);

		ok = !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
	} else {
		(void)strtoll(end, NULL, 10);
		ok = errno != ERANGE;
	}
	free(heap);
	return ok;
}

static bool
literal(struct scan *s, const char *word, size_t n)
{
	const unsigned char *q = wd_json_word(s->p, s->end, word, n);

	if (q == NULL)
		return false;
	s->p = q;
	return true;
}

static bool value(struct scan *s, char *kind);

/* Into a container at s->p's bracket: false when too deep; *empty when
 * it closes at once (then it is already left). */
static bool
enter(struct scan *s, unsigned char close, bool *empty)
{
	if (++s->depth > SCAN_MAX_DEPTH)
		return false;
	s->p++;
	ws(s);
	*empty = s->p < s->end && *s->p == close;
	if (*empty) {
		s->p++;
		s->depth--;
	}
	return true;
}

/* After a member or element: the container's close (*closed) or a comma
 * and what follows it. */
static bool
after_value(struct scan *s, unsigned char close, bool *closed)
{
	ws(s);
	if (s->p >= s->end)
		return false;
	*closed = *s->p == close;
	if (*closed) {
		s->p++;
		s->depth--;
		return true;
	}
	if (*s->p != ',')
		return false;
	s->p++;
	ws(s);
	return true;
}

/* An object or array, s->p at its bracket.  For the outermost object,
 * top != NULL: the spans of its members "usage" and "error". */
static bool
container(struct scan *s, struct gw_json_top *top)
{
	bool obj = *s->p == '{', closed;
	unsigned char close = obj ? '}' : ']';

	if (!enter(s, close, &closed))
		return false;
	if (closed)
		return true;
	for (;;) {
		struct gw_json_span *want = NULL;
		const unsigned char *v;
		char kind;

		if (obj) {
			const unsigned char *k;

			if (s->p >= s->end || *s->p != '"')
				return false;
			k = s->p;
			if (!string(s))
				return false;
			if (top != NULL && s->p - k == 7 &&
			    memcmp(k, "\"usage\"", 7) == 0)
				want = &top->usage;
			else if (top != NULL && s->p - k == 7 &&
			    memcmp(k, "\"error\"", 7) == 0)
				want = &top->error;
			ws(s);
			if (s->p >= s->end || *s->p != ':')
				return false;
			s->p++;
			ws(s);
		}
		v = s->p;
		if (!value(s, &kind))
			return false;
		if (want != NULL) {
			want->p = (const char *)v;
			want->len = (size_t)(s->p - v);
			want->kind = kind;
		}
		if (!after_value(s, close, &closed))
			return false;
		if (closed)
			return true;
	}
}

static bool
value(struct scan *s, char *kind)
{
	if (s->p >= s->end)
		return false;
	*kind = (char)*s->p;
	switch (*s->p) {
	case '{':
	case '[':
		return container(s, NULL);
	case '"':
		return string(s);
	case 't':
		return literal(s, "true", 4);
	case 'f':
		return literal(s, "false", 5);
	case 'n':
		return literal(s, "null", 4);
	default:
		*kind = '0';
		return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) &&
		    number(s);
	}
}

bool
gw_json_scan_answer(const char *buf, size_t len, struct gw_json_top *top)
{
	struct scan s = { (const unsigned char *)buf,
		(const unsigned char *)buf + len, 0 };

	memset(top, 0, sizeof(*top));
	ws(&s);
	if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
		return false;
	top->object = *s.p == '{';
	if (!container(&s, top->object ? top : NULL))
		return false;
	ws(&s);
	return s.p == s.end;
}

/* ---- a request's tree, built from what the scanner accepts ---- */

/* The text of the string whose quotes are at q and s->p - 1, escapes
 * decoded (the scanner checked them): into buf, or a malloc'd copy when
 * it does not fit; *n its length.  NULL when out of memory. */
static char *
unescape(const unsigned char *q, const unsigned char *end, char *buf,
    size_t cap, size_t *n)
{
	size_t len = (size_t)(end - q - 1);
	const unsigned char *p = q + 1, *e = end - 1;
	char *out = len < cap ? buf : malloc(len + 1), *o;

	if (out == NULL)
		return NULL;
	o = out;
	while (p < e) {
		unsigned cp;

		if (*p != '\\') {
			*o++ = (char)*p++;
			continue;
		}
		switch (p[1]) {
		case 'b': *o++ = '\b'; p += 2; continue;
		case 'f': *o++ = '\f'; p += 2; continue;
		case 'n': *o++ = '\n'; p += 2; continue;
		case 'r': *o++ = '\r'; p += 2; continue;
		case 't': *o++ = '\t'; p += 2; continue;
		case 'u': break;
		default: *o++ = (char)p[1]; p += 2; continue;	/* " \ / */
		}
		cp = (unsigned)hex4(p + 2);
		p += 6;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) +
			    ((unsigned)hex4(p + 2) - 0xdc00);
			p += 6;
		}
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | cp >> 6);
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | cp >> 12);
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*o++ = (char)(0xf0 | cp >> 18);
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		}
	}
	*n = (size_t)(o - out);
	return out;
}

/* A string's text: the input itself when it has no escape. */
static const char *
str_text(const unsigned char *q, const unsigned char *end, char *buf,
    size_t cap, size_t *n, char **heap)
{
	*heap = NULL;
	if (memchr(q + 1, '\\', (size_t)(end - q - 2)) == NULL) {
		*n = (size_t)(end - q - 2);
		return (const char *)q + 1;
	}
	{
		char *t = unescape(q, end, buf, cap, n);

		if (t != buf)
			*heap = t;
		return t;
	}
}

static json_t *
build_number(struct scan *s)
{
	const unsigned char *start = s->p;
	char buf[64], *text = buf;
	json_t *j = NULL;
	size_t n;
	bool real;

	if (!number(s))
		return NULL;
	n = (size_t)(s->p - start);
	real = memchr(start, '.', n) != NULL || memchr(start, 'e', n) != NULL ||
	    memchr(start, 'E', n) != NULL;
	if (n >= sizeof(buf) && (text = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(text, start, n);
	text[n] = '\0';
	/* number() refused what overflows. */
	j = real ? json_real(strtod(text, NULL)) :
	    json_integer(strtoll(text, NULL, 10));
	if (text != buf)
		free(text);
	return j;
}

static json_t *build(struct scan *s, bool nodup);

static json_t *
build_object(struct scan *s, bool nodup)
{
	json_t *o = json_object();

	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return o;
	}
	while (o != NULL) {
		const unsigned char *k = s->p;
		const char *key;
		char kbuf[128], *heap;
		size_t klen;
		json_t *v;

		if (s->p >= s->end || *s->p != '"' || !string(s))
			break;
		if ((key = str_text(k, s->p, kbuf, sizeof(kbuf), &klen,
		    &heap)) == NULL)
			break;
		if (nodup && json_object_getn(o, key, klen) != NULL) {
			free(heap);
			break;
		}
		ws(s);
		if (s->p >= s->end || *s->p != ':') {
			free(heap);
			break;
		}
		s->p++;
		ws(s);
		v = build(s, nodup);
		if (v == NULL || json_object_setn_new_nocheck(o, key, klen,
		    v) != 0) {
			free(heap);
			break;
		}
		free(heap);
		ws(s);
		if (s->p >= s->end)
			break;
		if (*s->p == '}') {
			s->p++;
			return o;
		}
		if (*s->p != ',')
			break;
		s->p++;
		ws(s);
	}
	json_decref(o);
	return NULL;
}

static json_t *
build_array(struct scan *s, bool nodup)
{
	json_t *a = json_array();

	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return a;
	}
	while (a != NULL) {
		json_t *v = build(s, nodup);

		if (v == NULL || json_array_append_new(a, v) != 0)
			break;
		ws(s);
		if (s->p >= s->end)
			break;
		if (*s->p == ']') {
			s->p++;
			return a;
		}
		if (*s->p != ',')
			break;
		s->p++;
		ws(s);
	}
	json_decref(a);
	return NULL;
}

static json_t *
build(struct scan *s, bool nodup)
{
	const unsigned char *q;
	json_t *j;

	if (s->p >= s->end)
		return NULL;
	switch (*s->p) {
	case '{':
	case '[':
		if (++s->depth > SCAN_MAX_DEPTH)
			return NULL;
		j = *s->p == '{' ? build_object(s, nodup) :
		    build_array(s, nodup);
		s->depth--;
		return j;
	case '"': {
		char buf[256], *heap;
		const char *t;
		size_t n;

		q = s->p;
		if (!string(s) || (t = str_text(q, s->p, buf, sizeof(buf), &n,
		    &heap)) == NULL)
			return NULL;
		j = json_stringn_nocheck(t, n);
		free(heap);
		return j;
	}
	case 't':
		return literal(s, "true", 4) ? json_true() : NULL;
	case 'f':
		return literal(s, "false", 5) ? json_false() : NULL;
	case 'n':
		return literal(s, "null", 4) ? json_null() : NULL;
	default:
		if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
			return NULL;
		return build_number(s);
	}
}

json_t *
gw_json_load(const char *buf, size_t len, size_t flags, json_error_t *err)
{
	struct scan s = { (const unsigned char *)buf,
		(const unsigned char *)buf + len, 0 };
	json_t *j = NULL;

	if ((flags & ~(size_t)JSON_REJECT_DUPLICATES) == 0) {
		ws(&s);
		if (s.p < s.end && (*s.p == '{' || *s.p == '['))
			j = build(&s, (flags & JSON_REJECT_DUPLICATES) != 0);
		ws(&s);
		if (j != NULL && s.p == s.end)
			return j;
		json_decref(j);
	}
	/* Refused (or flags it does not know): jansson says why, in its
	 * words, and decides the NUL it would skip. */
	return json_loadb(buf, len, flags, err);
}

/* ---- a chat request's facts, read without a tree ---- */

#define CHAT_KEYS_PER_OBJECT 32
#define CHAT_KEYS_LIVE 256

enum { C_ANY, C_TOP, C_MSGS, C_MSG };

struct chat_scan {
	struct scan s;
	struct gw_chat_facts *f;
	struct {
		const unsigned char *p;
		size_t n;
	} keys[CHAT_KEYS_LIVE];		/* of the objects open now */
	unsigned nkeys;
};

static bool ccontainer(struct chat_scan *c, int mode);

/* A value; a container in the mode given (which says what it must be). */
static bool
cvalue(struct chat_scan *c, char *kind, int mode)
{
	struct scan *s = &c->s;

	if (s->p >= s->end)
		return false;
	if ((mode == C_MSGS && *s->p != '[') || (mode == C_MSG && *s->p != '{'))
		return false;
	if (*s->p == '{' || *s->p == '[') {
		*kind = (char)*s->p;
		return ccontainer(c, mode);
	}
	return value(s, kind);
}

/* A top-level member's facts (only the members gw_chat_parse reads, of
 * the kinds it takes: anything else goes the tree's way, which says
 * what is wrong). */
static bool
top_member(struct chat_scan *c, const unsigned char *k, size_t kl,
    const unsigned char *v, char kind)
{
	struct gw_chat_facts *f = c->f;

	if (kl == 5 && memcmp(k, "model", 5) == 0) {
		size_t n = (size_t)(c->s.p - v) - 2;

		if (kind != '"' || n == 0 || n > 256 ||
		    memchr(v + 1, '\\', n) != NULL)
			return false;
		f->model = (const char *)v + 1;
		f->model_len = n;
	} else if (kl == 6 && memcmp(k, "stream", 6) == 0) {
		if (kind != 't' && kind != 'f' && kind != 'n')
			return false;
		f->stream = kind == 't';
	} else if (kl == 5 && memcmp(k, "tools", 5) == 0) {
		if (kind != '[' && kind != 'n')
			return false;
	} else if (kl == 8 && memcmp(k, "messages", 8) == 0) {
		f->messages = true;
	} else if ((kl == 10 && memcmp(k, "max_tokens", 10) == 0) ||
	    (kl == 21 && memcmp(k, "max_completion_tokens", 21) == 0)) {
		long long n = -1;
		size_t len = (size_t)(c->s.p - v), i = 0;

		/* Only what jansson makes an integer >= 0 counts: digits
		 * only (a sign, a fraction or an exponent is not that). */
		while (kind == '0' && i < len && v[i] >= '0' && v[i] <= '9')
			i++;
		if (kind == '0' && i == len) {
			if (len > 18)
				return false;	/* a long one: the tree's way */
			for (n = 0, i = 0; i < len; i++)
				n = n * 10 + (v[i] - '0');
		} else if (kind == '0' && len == 2 && v[0] == '-' && v[1] == '0') {
			n = 0;		/* jansson's integer 0 */
		}
		if (kl == 10)
			f->max_tokens = n;
		else
			f->max_completion_tokens = n;
	}
	return true;
}

/*
 * An object or array of a chat request.  Refuses (false: the tree's way
 * decides) besides what the answer scanner refuses: a key with an escape,
 * a key twice in one object, more than CHAT_KEYS_PER_OBJECT keys in one
 * object (the check is pairwise), a message that is not an object with a
 * string "role".
 */
static bool
ccontainer(struct chat_scan *c, int mode)
{
	struct scan *s = &c->s;
	bool obj = *s->p == '{', role = false, closed;
	unsigned char close = obj ? '}' : ']';
	unsigned base = c->nkeys, n = 0;

	if (!enter(s, close, &closed))
		return false;
	if (closed)
		return mode == C_ANY;	/* an empty request, messages, message */
	for (;;) {
		const unsigned char *k = NULL, *v;
		size_t kl = 0;
		int sub = obj ? C_ANY : mode == C_MSGS ? C_MSG : C_ANY;
		char kind;

		if (obj) {
			if (s->p >= s->end || *s->p != '"')
				return false;
			k = s->p + 1;
			if (!string(s))
				return false;
			kl = (size_t)(s->p - k) - 1;
			if (memchr(k, '\\', kl) != NULL || ++n >
			    CHAT_KEYS_PER_OBJECT || c->nkeys >= CHAT_KEYS_LIVE)
				return false;
			for (unsigned i = base; i < c->nkeys; i++)
				if (c->keys[i].n == kl &&
				    memcmp(c->keys[i].p, k, kl) == 0)
					return false;
			c->keys[c->nkeys].p = k;
			c->keys[c->nkeys++].n = kl;
			ws(s);
			if (s->p >= s->end || *s->p != ':')
				return false;
			s->p++;
			ws(s);
			if (mode == C_TOP && kl == 8 && memcmp(k, "messages", 8) == 0)
				sub = C_MSGS;
		}
		v = s->p;
		if (!cvalue(c, &kind, sub))
			return false;
		if (mode == C_TOP && !top_member(c, k, kl, v, kind))
			return false;
		if (mode == C_MSG && kl == 4 && memcmp(k, "role", 4) == 0)
			role = kind == '"';
		if (!after_value(s, close, &closed))
			return false;
		if (closed) {
			c->nkeys = base;
			return mode != C_MSG || role;
		}
	}
}

bool
gw_json_scan_chat(const char *buf, size_t len, struct gw_chat_facts *f)
{
	/* The key stack is 4 KB: not on a worker's stack per request. */
	static _Thread_local struct chat_scan scan;
	struct chat_scan *c = &scan;
	bool ok;

	memset(f, 0, sizeof(*f));
	f->max_tokens = f->max_completion_tokens = -1;
	c->s = (struct scan){ (const unsigned char *)buf,
		(const unsigned char *)buf + len, 0 };
	c->f = f;
	c->nkeys = 0;
	ws(&c->s);
	if (c->s.p >= c->s.end || *c->s.p != '{')
		return false;
	ok = ccontainer(c, C_TOP);
	ws(&c->s);
	return ok && c->s.p == c->s.end && f->model != NULL && f->messages;
}
