/*
 * fuzz_answer.c - provider answers for an agent's request, through the
 * very path the transaction takes (gateway/agent_answer.c: SSE framing, the strict
 * chat reader, the tool policy, warden's own serialization), and then a
 * DIFFERENTIAL check: an independent reference client, written here to
 * read as the openai npm client does, parses what warden would send, and
 * every tool call it ends with must be one the policy allows, in the order
 * the client holds them.
 *
 * The reference client: SSE lines split at CRLF, LF or CR, a BOM dropped at
 * the start of any line (TextDecoder per line), "data" lines joined with
 * LF, one space after the colon dropped; it stops at data starting with
 * [DONE], at an "error" event or a chunk with "error", at JSON it cannot
 * parse.  Its JSON parser is JavaScript's: the last of duplicate keys
 * wins, numbers are doubles, \u0000 and lone surrogates are fine.  Its
 * accumulator is ChatCompletionStream's: a choice's extra keys are
 * assigned onto the choice (a "message" replaces the message), call slots
 * are keyed by the index's property key ("1", 1 and 1.0 are one slot), a
 * later name replaces the earlier one, a delta with unknown keys throws.
 *
 * The agent is tests/mock/hostile_answers.json's: search_kb, read_customer
 * (personal data), send_email (external sink).
 *
 * Input: byte 0 - bit 0: a stream (else a whole answer); bit 1: the
 * history holds read_customer, so send_email is forbidden next;
 * bits 2-7: the size of the pieces the stream arrives in (1..64).  The
 * rest is the provider's body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "tests/fuzz/load_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char rules[] =
    "version: 1\n"
    "data_classes: [personal]\n"
    "providers:\n"
    "  - id: p1\n"
    "    base_url: https://a.example\n"
    "    country: IE\n"
    "    credential: c\n"
    "    models: [m]\n"
    "tenants:\n"
    "  - id: t1\n"
    "    keys: [\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef\"]\n"
    "    routes: [p1]\n"
    "agents:\n"
    "  - id: bot\n"
    "    tenant: t1\n"
    "    max_calls: 6\n"
    "    tools:\n"
    "      search_kb: {}\n"
    "      read_customer: { labels: [personal] }\n"
    "      send_email: { sink: external }\n"
    "    graph:\n"
    "      start: [search_kb, read_customer]\n"
    "      search_kb: [search_kb, read_customer, send_email]\n"
    "      read_customer: [search_kb, send_email]\n"
    "      send_email: [search_kb]\n"
    "    flows:\n"
    "      - id: no-pii-out\n"
    "        deny: { from_label: personal, to_sink: external }\n";

static struct pol_snapshot *snap;
static const struct pol_agent *agent;

static void
init(void)
{
	snap = fuzz_load_rules(rules);
	agent = pol_find_agent(snap, &snap->tenants[0], "bot");
	if (agent == NULL)
		abort();
}

/* ---- the reference client's JSON (JavaScript's reading) ---- */

enum jt { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jt t;
	double num;
	char *s;			/* J_STR: bytes (WTF-8), slen of them */
	size_t slen;
	char **keys;			/* J_OBJ */
	struct jv **v;			/* J_ARR, J_OBJ */
	size_t n;
};

static void
jfree(struct jv *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n; i++) {
		if (j->keys != NULL)
			free(j->keys[i]);
		jfree(j->v[i]);
	}
	free(j->keys);
	free(j->v);
	free(j->s);
	free(j);
}

struct jp {
	const char *p, *end;
	int depth;
};

static void
ws(struct jp *p)
{
	while (p->p < p->end && (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' ||
	    *p->p == '\r'))
		p->p++;
}

static struct jv *jparse(struct jp *p);

static void
put_cp(char *o, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		o[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		o[(*n)++] = (char)(0xC0 | (cp >> 6));
		o[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		o[(*n)++] = (char)(0xE0 | (cp >> 12));
		o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		o[(*n)++] = (char)(0xF0 | (cp >> 18));
		o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[(*n)++] = (char)(0x80 | (cp & 0x3F));
	}
}

static int
hex4(const char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string after its opening quote; NULL if malformed.  (Input bytes are
 * taken as they come: the caller's TextDecoder already replaced bad UTF-8,
 * which matters not for names warden wrote.) */
static char *
jstring(struct jp *p, size_t *len)
{
	char *o = malloc((size_t)(p->end - p->p) * 2 + 1);
	size_t n = 0;

	while (p->p < p->end && *p->p != '"') {
		unsigned char c = (unsigned char)*p->p++;
		unsigned cp;

		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			o[n++] = (char)c;
			continue;
		}
		if (p->p >= p->end)
			goto bad;
		c = (unsigned char)*p->p++;
		switch (c) {
		case '"': case '\\': case '/': o[n++] = (char)c; break;
		case 'b': o[n++] = '\b'; break;
		case 'f': o[n++] = '\f'; break;
		case 'n': o[n++] = '\n'; break;
		case 'r': o[n++] = '\r'; break;
		case 't': o[n++] = '\t'; break;
		case 'u':
			if (p->end - p->p < 4 || hex4(p->p, &cp) != 0)
				goto bad;
			p->p += 4;
			if (cp >= 0xD800 && cp < 0xDC00 && p->end - p->p >= 6 &&
			    p->p[0] == '\\' && p->p[1] == 'u') {
				unsigned lo;

				if (hex4(p->p + 2, &lo) == 0 && lo >= 0xDC00 &&
				    lo < 0xE000) {
					cp = 0x10000 + ((cp - 0xD800) << 10) +
					    (lo - 0xDC00);
					p->p += 6;
				}
			}
			put_cp(o, &n, cp);	/* a lone surrogate too */
			break;
		default:
			goto bad;
		}
	}
	if (p->p >= p->end)
		goto bad;
	p->p++;
	o[n] = '\0';
	*len = n;
	return o;
bad:
	free(o);
	return NULL;
}

static struct jv *
jnew(enum jt t)
{
	struct jv *j = calloc(1, sizeof(*j));

	if (j == NULL)
		abort();
	j->t = t;
	return j;
}

static void
jpush(struct jv *j, char *key, struct jv *v)
{
	j->v = realloc(j->v, (j->n + 1) * sizeof(*j->v));
	if (j->t == J_OBJ)
		j->keys = realloc(j->keys, (j->n + 1) * sizeof(*j->keys));
	if (j->v == NULL || (j->t == J_OBJ && j->keys == NULL))
		abort();
	if (j->t == J_OBJ)
		j->keys[j->n] = key;
	j->v[j->n++] = v;
}

static struct jv *
jget(const struct jv *j, const char *key)
{
	if (j == NULL || j->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->keys[i], key) == 0)
			return j->v[i];
	return NULL;
}

static struct jv *
jparse(struct jp *p)
{
	struct jv *j = NULL;

	ws(p);
	if (p->p >= p->end || ++p->depth > 200)
		return NULL;
	switch (*p->p) {
	case '{':
		p->p++;
		j = jnew(J_OBJ);
		ws(p);
		if (p->p < p->end && *p->p == '}') {
			p->p++;
			break;
		}
		for (;;) {
			size_t kl;
			char *k;
			struct jv *v;
			size_t i;

			ws(p);
			if (p->p >= p->end || *p->p != '"')
				goto bad;
			p->p++;
			if ((k = jstring(p, &kl)) == NULL)
				goto bad;
			ws(p);
			if (p->p >= p->end || *p->p != ':') {
				free(k);
				goto bad;
			}
			p->p++;
			if ((v = jparse(p)) == NULL) {
				free(k);
				goto bad;
			}
			/* The last of duplicate keys wins (JSON.parse). */
			for (i = 0; i < j->n; i++)
				if (strcmp(j->keys[i], k) == 0)
					break;
			if (i < j->n) {
				jfree(j->v[i]);
				j->v[i] = v;
				free(k);
			} else {
				jpush(j, k, v);
			}
			ws(p);
			if (p->p < p->end && *p->p == ',') {
				p->p++;
				continue;
			}
			if (p->p < p->end && *p->p == '}') {
				p->p++;
				break;
			}
			goto bad;
		}
		break;
	case '[':
		p->p++;
		j = jnew(J_ARR);
		ws(p);
		if (p->p < p->end && *p->p == ']') {
			p->p++;
			break;
		}
		for (;;) {
			struct jv *v = jparse(p);

			if (v == NULL)
				goto bad;
			jpush(j, NULL, v);
			ws(p);
			if (p->p < p->end && *p->p == ',') {
				p->p++;
				continue;
			}
			if (p->p < p->end && *p->p == ']') {
				p->p++;
				break;
			}
			goto bad;
		}
		break;
	case '"':
		p->p++;
		j = jnew(J_STR);
		if ((j->s = jstring(p, &j->slen)) == NULL)
			goto bad;
		break;
	default:
		if (p->end - p->p >= 4 && memcmp(p->p, "true", 4) == 0) {
			p->p += 4;
			j = jnew(J_TRUE);
		} else if (p->end - p->p >= 5 && memcmp(p->p, "false", 5) == 0) {
			p->p += 5;
			j = jnew(J_FALSE);
		} else if (p->end - p->p >= 4 && memcmp(p->p, "null", 4) == 0) {
			p->p += 4;
			j = jnew(J_NULL);
		} else {
			/* JSON's number grammar; any size, as a double. */
			const char *s = p->p;
			char buf[64];

			if (p->p < p->end && *p->p == '-')
				p->p++;
			if (p->p >= p->end || *p->p < '0' || *p->p > '9')
				return NULL;
			if (*p->p == '0')
				p->p++;
			else
				while (p->p < p->end && *p->p >= '0' && *p->p <= '9')
					p->p++;
			if (p->p < p->end && *p->p == '.') {
				p->p++;
				if (p->p >= p->end || *p->p < '0' || *p->p > '9')
					return NULL;
				while (p->p < p->end && *p->p >= '0' && *p->p <= '9')
					p->p++;
			}
			if (p->p < p->end && (*p->p == 'e' || *p->p == 'E')) {
				p->p++;
				if (p->p < p->end && (*p->p == '+' || *p->p == '-'))
					p->p++;
				if (p->p >= p->end || *p->p < '0' || *p->p > '9')
					return NULL;
				while (p->p < p->end && *p->p >= '0' && *p->p <= '9')
					p->p++;
			}
			j = jnew(J_NUM);
			snprintf(buf, sizeof(buf), "%.*s", (int)(p->p - s < 63 ?
			    p->p - s : 63), s);
			j->num = strtod(buf, NULL);
		}
	}
	p->depth--;
	return j;
bad:
	jfree(j);
	return NULL;
}

/* JSON.parse: one value, nothing but white space after it. */
static struct jv *
js_parse(const char *s, size_t len)
{
	struct jp p = { s, s + len, 0 };
	struct jv *j = jparse(&p);

	ws(&p);
	if (j != NULL && p.p != p.end) {
		jfree(j);
		return NULL;
	}
	return j;
}

static bool
truthy(const struct jv *j)
{
	if (j == NULL)
		return false;
	switch (j->t) {
	case J_NULL: case J_FALSE: return false;
	case J_NUM: return j->num != 0 && j->num == j->num;	/* not NaN */
	case J_STR: return j->slen > 0;
	default: return true;
	}
}

/* A value as a JavaScript property key (for indexes). */
static void
prop_key(const struct jv *j, char *out, size_t len)
{
	if (j == NULL)
		snprintf(out, len, "undefined");
	else if (j->t == J_STR)
		snprintf(out, len, "%.*s", (int)(j->slen < 60 ? j->slen : 60), j->s);
	else if (j->t == J_NUM && j->num > -1e15 && j->num < 1e15 &&
	    (double)(long long)j->num == j->num)
		snprintf(out, len, "%lld", (long long)j->num);
	else if (j->t == J_NUM)
		snprintf(out, len, "%.17g", j->num);
	else
		snprintf(out, len, "%s", j->t == J_TRUE ? "true" : j->t == J_FALSE ?
		    "false" : j->t == J_NULL ? "null" : "[object]");
}

/* Is key an array index (what tool_calls.map visits)?  Its value, then. */
static bool
array_index(const char *key, long *out)
{
	char *end;
	long v;

	if (key[0] == '\0' || (key[0] == '0' && key[1] != '\0'))
		return false;
	v = strtol(key, &end, 10);
	if (*end != '\0' || v < 0)
		return false;
	*out = v;
	return true;
}

/* ---- the reference client's accumulator ---- */

#define REF_SLOTS 256

struct ref_call {
	char key[64];
	char name[128];
};

struct ref_choice {
	char key[64];
	struct ref_call calls[REF_SLOTS];
	size_t ncalls;
	bool fc;
	char fc_name[128];
};

struct ref {
	struct ref_choice ch[16];
	size_t nch;
	bool stopped;			/* the client threw or saw [DONE] */
};

static void
set_name(char *dst, const struct jv *name)
{
	if (name == NULL || name->t != J_STR)
		snprintf(dst, 128, "%s", name == NULL ? "" : "<non-string>");
	else
		snprintf(dst, 128, "%.*s", (int)(name->slen < 127 ? name->slen :
		    127), name->s);
}

static struct ref_choice *
ref_choice(struct ref *r, const char *key)
{
	for (size_t i = 0; i < r->nch; i++)
		if (strcmp(r->ch[i].key, key) == 0)
			return &r->ch[i];
	if (r->nch == 16)
		return NULL;
	memset(&r->ch[r->nch], 0, sizeof(r->ch[0]));
	snprintf(r->ch[r->nch].key, sizeof(r->ch[0].key), "%s", key);
	return &r->ch[r->nch++];
}

static struct ref_call *
ref_call(struct ref_choice *c, const char *key)
{
	for (size_t i = 0; i < c->ncalls; i++)
		if (strcmp(c->calls[i].key, key) == 0)
			return &c->calls[i];
	if (c->ncalls == REF_SLOTS)
		return NULL;
	memset(&c->calls[c->ncalls], 0, sizeof(c->calls[0]));
	snprintf(c->calls[c->ncalls].key, sizeof(c->calls[0].key), "%s", key);
	return &c->calls[c->ncalls++];
}

/* A whole message's calls, as the client's message then holds them. */
static void
ref_message(struct ref_choice *c, const struct jv *msg)
{
	const struct jv *tc = jget(msg, "tool_calls"), *fc = jget(msg,
	    "function_call");

	c->ncalls = 0;
	c->fc = false;
	for (size_t i = 0; tc != NULL && tc->t == J_ARR && i < tc->n; i++) {
		const struct jv *fn = jget(tc->v[i], "function");
		struct ref_call *call;
		char key[32];

		if (fn == NULL)
			fn = jget(tc->v[i], "custom");
		snprintf(key, sizeof(key), "%zu", i);
		if ((call = ref_call(c, key)) != NULL)
			set_name(call->name, jget(fn, "name"));
	}
	if (truthy(fc)) {
		c->fc = true;
		set_name(c->fc_name, jget(fc, "name"));
	}
}

static void
ref_chunk(struct ref *r, const struct jv *chunk)
{
	static const char *const delta_keys[] = { "content", "refusal",
		"function_call", "role", "tool_calls", NULL };
	const struct jv *choices = jget(chunk, "choices");

	if (choices == NULL || choices->t != J_ARR) {
		r->stopped = true;		/* for..of throws */
		return;
	}
	for (size_t i = 0; i < choices->n && !r->stopped; i++) {
		const struct jv *ch = choices->v[i], *delta, *fc, *tc;
		struct ref_choice *c;
		char key[64];

		if (ch->t != J_OBJ) {
			r->stopped = true;
			return;
		}
		prop_key(jget(ch, "index"), key, sizeof(key));
		if ((c = ref_choice(r, key)) == NULL)
			return;
		/* Object.assign(choice, other): a "message" replaces it. */
		if (jget(ch, "message") != NULL)
			ref_message(c, jget(ch, "message"));
		delta = jget(ch, "delta");
		if (!truthy(delta))
			continue;
		if (delta->t != J_OBJ)
			continue;
		for (size_t k = 0; k < delta->n; k++) {
			size_t m;

			for (m = 0; delta_keys[m] != NULL; m++)
				if (strcmp(delta->keys[k], delta_keys[m]) == 0)
					break;
			if (delta_keys[m] == NULL) {
				r->stopped = true;	/* assertIsEmpty(rest) */
				return;
			}
		}
		fc = jget(delta, "function_call");
		if (truthy(fc)) {
			if (!c->fc) {
				c->fc = true;
				set_name(c->fc_name, jget(fc, "name"));
			} else if (truthy(jget(fc, "name"))) {
				set_name(c->fc_name, jget(fc, "name"));
			}
		}
		tc = jget(delta, "tool_calls");
		if (!truthy(tc))
			continue;
		if (tc->t != J_ARR) {
			r->stopped = true;
			return;
		}
		for (size_t k = 0; k < tc->n; k++) {
			const struct jv *fn = jget(tc->v[k], "function");
			struct ref_call *call;
			char ck[64];

			prop_key(jget(tc->v[k], "index"), ck, sizeof(ck));
			if ((call = ref_call(c, ck)) == NULL)
				continue;
			if (truthy(jget(fn, "name")))
				set_name(call->name, jget(fn, "name"));
		}
	}
}

/* One SSE event as the client handles it. */
static void
ref_event(struct ref *r, bool has_event, const char *event, const char *data,
    size_t dlen, bool has_data)
{
	struct jv *j;

	if (!has_event && !has_data)
		return;
	if (dlen >= 6 && memcmp(data, "[DONE]", 6) == 0) {
		r->stopped = true;
		return;
	}
	j = js_parse(data, dlen);
	/* Unparseable data throws; so does a chunk whose error is set, and
	 * an "error" event. */
	if (j == NULL || truthy(jget(j, "error")) || (has_event &&
	    strcmp(event, "error") == 0)) {
		r->stopped = true;
	} else if (has_event && strncmp(event, "thread.", 7) == 0) {
		;				/* not a chunk */
	} else {
		ref_chunk(r, j);
	}
	jfree(j);
}

static void
ref_stream(struct ref *r, const char *s, size_t len)
{
	char *data, event[64] = "";
	size_t dl = 0;
	bool has_data = false, has_event = false;
	const char *p, *end;

	if (len == 0)
		return;
	if ((data = malloc(len + 1)) == NULL)
		abort();
	p = s;
	end = s + len;
	while (p < end && !r->stopped) {
		const char *eol = p, *colon, *v;
		size_t fl;

		while (eol < end && *eol != '\r' && *eol != '\n')
			eol++;
		if (eol == end)
			break;			/* no line end: flush drops it */
		/* TextDecoder drops a BOM at the start of each line. */
		if (eol - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
			p += 3;
		if (eol == p) {
			ref_event(r, has_event, event, data, dl, has_data);
			dl = 0;
			has_data = has_event = false;
			event[0] = '\0';
		} else if (*p != ':') {
			colon = memchr(p, ':', (size_t)(eol - p));
			fl = colon ? (size_t)(colon - p) : (size_t)(eol - p);
			v = colon ? colon + 1 : eol;
			if (v < eol && *v == ' ')
				v++;
			if (fl == 4 && memcmp(p, "data", 4) == 0) {
				if (has_data)
					data[dl++] = '\n';
				memcpy(data + dl, v, (size_t)(eol - v));
				dl += (size_t)(eol - v);
				has_data = true;
			} else if (fl == 5 && memcmp(p, "event", 5) == 0) {
				snprintf(event, sizeof(event), "%.*s", (int)(eol - v), v);
				has_event = true;
			}
		}
		if (*eol == '\r' && eol + 1 < end && eol[1] == '\n')
			eol++;
		p = eol + 1;
	}
	free(data);
}

/* ---- the property ---- */

static int
cmp_calls(const void *a, const void *b)
{
	long x = 0, y = 0;

	array_index(((const struct ref_call *)a)->key, &x);
	array_index(((const struct ref_call *)b)->key, &y);
	return x < y ? -1 : x > y;
}

/*
 * Every choice the client holds: its calls, in the order the client has
 * them (array indexes ascending; other keys are no array elements), then
 * a function_call, each allowed by the policy from the history's state.
 */
static void
check(struct ref *r, const struct pol_tstate *hist)
{
	for (size_t i = 0; i < r->nch; i++) {
		struct ref_choice *c = &r->ch[i];
		struct pol_tstate st = *hist;
		struct pol_tool_why why;
		struct ref_call sorted[REF_SLOTS];
		size_t n = 0;
		long k;

		for (size_t j = 0; j < c->ncalls; j++)
			if (array_index(c->calls[j].key, &k))
				sorted[n++] = c->calls[j];
		qsort(sorted, n, sizeof(sorted[0]), cmp_calls);
		for (size_t j = 0; j < n; j++)
			if (!pol_tool_step(agent, &st, sorted[j].name, true, &why)) {
				fprintf(stderr, "fuzz_answer: the client holds '%s' "
				    "(choice %s, call %s): %s\n", sorted[j].name, c->key,
				    sorted[j].key, why.message);
				abort();
			}
		if (c->fc && !pol_tool_step(agent, &st, c->fc_name, true, &why)) {
			fprintf(stderr, "fuzz_answer: the client holds function_call "
			    "'%s': %s\n", c->fc_name, why.message);
			abort();
		}
	}
}

static void
setup_tools(struct gw_tools *tl, bool read_first)
{
	static const unsigned char fuzz_key[32] = { 1 };
	struct pol_caller caller;
	struct gw_http_req req;
	struct gw_tools_deny d;
	json_t *root;

	if (read_first)
		root = json_pack("{s:s,s:[{s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}}]},"
		    "{s:s,s:s,s:s}]}", "model", "m", "messages", "role",
		    "assistant", "content", "tool_calls", "id", "h1", "type",
		    "function", "function", "name", "read_customer", "arguments", "{}",
		    "role", "tool", "tool_call_id", "h1", "content", "r");
	else
		root = json_pack("{s:s,s:[{s:s,s:s}]}", "model", "m", "messages",
		    "role", "user", "content", "x");
	memset(&req, 0, sizeof(req));
	caller.tenant = &snap->tenants[0];
	caller.agent = agent;
	caller.app = NULL;
	caller.key = fuzz_key;
	if (root == NULL || gw_tools_request(tl, snap, &snap->tenants[0],
	    &caller, &req, &(struct gw_chat){ .root = root }, &d) != GW_TOOLS_OK)
		abort();
	json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *acc, *out;
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct ref r;
	const char *body;
	size_t len, piece;
	char *text;

	if (snap == NULL)
		init();
	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	piece = (size_t)(data[0] >> 2) + 1;
	setup_tools(&tl, data[0] & 2);
	acc = evbuffer_new();
	out = evbuffer_new();
	if (acc == NULL || out == NULL)
		abort();
	memset(&r, 0, sizeof(r));
	if (data[0] & 1) {
		struct gw_agent_stream as;
		struct gw_sse sse;
		size_t off = 0;
		bool go_on = true;

		gw_agent_stream_init(&as, &gw_format_chat);
		gw_sse_init(&sse);
		while (off < len && go_on) {
			size_t n = len - off < piece ? len - off : piece, complete,
			    used;

			if (gw_sse_feed(&sse, acc, body + off, n, 4096, &complete) !=
			    WD_OK)
				break;		/* over the limit: the stream breaks */
			off += n;
			used = gw_agent_stream_feed(&as, &tl, acc, complete, out,
			    &go_on, &d);
			gw_sse_consumed(&sse, used);
		}
		if (go_on && !gw_agent_stream_end(&as, acc, out, &d))
			go_on = false;
		if (!go_on && !as.done)
			evbuffer_add_printf(out, "event: error\ndata: {\"error\":"
			    "{\"code\":\"x\"}}\n\n");
		len = evbuffer_get_length(out);
		ref_stream(&r, (const char *)evbuffer_pullup(out, -1), len);
	} else {
		json_t *usage = NULL;

		if (gw_agent_answer(&gw_format_chat, &tl, 200, body, len, out,
		    &usage, &d)) {
			struct jv *j;
			const struct jv *choices;

			len = evbuffer_get_length(out);
			text = (char *)evbuffer_pullup(out, -1);
			j = js_parse(text, len);
			if (j == NULL)
				abort();	/* warden wrote JSON JS cannot read */
			choices = jget(j, "choices");
			for (size_t i = 0; choices != NULL && i < choices->n; i++) {
				char key[32];
				struct ref_choice *c;

				snprintf(key, sizeof(key), "%zu", i);
				if ((c = ref_choice(&r, key)) != NULL)
					ref_message(c, jget(choices->v[i], "message"));
			}
			jfree(j);
		}
		json_decref(usage);
	}
	check(&r, &tl.st);
	gw_tools_clear(&tl);
	evbuffer_free(acc);
	evbuffer_free(out);
	return 0;
}
