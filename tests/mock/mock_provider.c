/*
 * mock_provider.c - a fake OpenAI-compatible Chat Completions provider,
 * which also speaks Anthropic Messages, OpenAI Responses and Embeddings
 * (handle_format).
 *
 * Used by warden's integration tests, the demo and the benchmark: it must
 * answer fast (tens of thousands of requests a second on one core) and it
 * must let a test make one request misbehave without touching the others.
 * Tests steer it with a "[[mock k=v ...]]" directive inside a message, with
 * POST /_mock/config, or with command-line defaults; see README.md beside
 * this file for the whole list.
 *
 * One thread per core (--threads), each with its own event_base and evhttp
 * accepting on the one listening socket, one connection per turn of its
 * loop (so that a burst of new connections is shared, not drained by the
 * first thread to wake), so that the mock does not cap what the benchmark
 * measures in front of it.  Not SO_REUSEPORT: another process could then
 * bind the mock's port too (a test relies on warden failing to).  A
 * connection stays on its thread; what threads share (the
 * knobs of /_mock/config, fail_next, the request counter and the record
 * file) sits behind one mutex, taken once per request.  libevent's evhttp
 * for HTTP and jansson only to parse requests and to write the record file.
 * Answers are printed straight into evbuffers because they are small and
 * fixed in shape.
 *
 * Build:
 *   cc -std=c17 -O2 -Wall -Wextra -D_GNU_SOURCE -o mock_provider \
 *      mock_provider.c $(pkg-config --cflags --libs libevent jansson)
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define MAX_CHUNKS		100000L
#define MAX_SSE_LINE_BYTES	(200L * 1024 * 1024)
#define MAX_DELAY_MS		(24L * 3600 * 1000)
#define MAX_TOOLS		64
#define MAX_BODY_BYTES		(256L * 1024 * 1024)
/* The long SSE line is queued in pieces of this size, never all at once. */
#define PIECE_BYTES		(64 * 1024)
/* Stop queueing events above this much unsent output; resume once drained. */
#define OUTPUT_HIGH		(256 * 1024)
/* How often a waiting request checks whether its client went away. */
#define WATCH_MS		50
/* Before a reset, wait (1 ms steps) at most this long for output to drain. */
#define RESET_MAX_WAITS		200
/* Idle keep-alive connections and stalled streams live this long. */
#define HTTP_TIMEOUT_S		3600
/* --threads: at most this many; the default is one per online core. */
#define MAX_THREADS		64
/* A chat body up to this size is kept with its parse (see chat_parse). */
#define PARSE_CACHE_BYTES	(64 * 1024)

/* The knobs that can be set on the command line, by /_mock/config, or per
 * request.  -1 in reset_after / stall_after means "never". */
struct knobs {
	long status;
	long delay_ms;
	long chunks;
	long chunk_delay_ms;
	long reset_after;
	long stall_after;
};

struct pending;
struct mock;

/* What all threads share; every field below lock is read and written only
 * with lock held. */
struct shared {
	struct mock *threads;	/* nthreads of them; [0] runs in main() */
	int nthreads;
	pthread_mutex_t lock;
	FILE *record;		/* one line per request, in seq order */
	struct knobs cur;	/* defaults now; /_mock/config changes them */
	long fail_next;		/* chat requests still to fail */
	long fail_status;	/* ... with this status */
	uint64_t seq;
};

/* One serving thread; the const fields are the same in all of them. */
struct mock {
	struct shared *sh;
	pthread_t thread;
	int listen_fd;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *relisten;	/* enables listener again after an accept */
	const char *name;
	char *name_esc;		/* name, JSON-escaped, without quotes */
	size_t name_esc_len;
	char *models_json;	/* the fixed GET /v1/models answer */
	struct knobs cli;	/* defaults from the command line */
	const struct timeval *watch_tv;
	struct evbuffer *scratch;	/* reused for immediate answers */
	struct pending *live;	/* answers still in progress */
	char *last_body;	/* the last chat body parsed on this thread */
	size_t last_len;
	json_t *last_root;	/* ... and its parse, never changed */
	bool stopping;
	bool quiet;
};

/* Everything needed to produce one chat answer, owned by itself so that it
 * can outlive the parsed request. */
struct answer {
	uint64_t seq;
	long long created;
	char *model_esc;	/* JSON-escaped, without quotes */
	bool stream;
	bool include_usage;
	struct knobs k;
	bool body_notjson;
	long sse_line_bytes;	/* -1: no long line */
	char **tools;		/* JSON-escaped tool names */
	size_t ntools;
	long prompt_tokens;
	char *raw;		/* raw=: the exact body to send, or NULL */
	size_t raw_len;
	long raw_status;
	char *raw_type;		/* its Content-Type; NULL: none at all */
	char **words;		/* words=: the answer's own words, or NULL */
	size_t nwords;
};

/* What the directives in one request said, before it becomes an answer.
 * tools points into the parsed request, which outlives this. */
struct directives {
	struct knobs k;
	bool status_set;
	bool body_notjson;
	long sse_line_bytes;
	const char *tools;
	size_t tools_len;
	long words;
	const char *raw;	/* base64, as in the message */
	size_t raw_len;
	long raw_status;
	const char *raw_type;
	size_t raw_type_len;
	const char *say;	/* words=a,b: one word per comma */
	size_t say_len;
};

enum phase {
	PH_DELAY,	/* waiting delay_ms before answering at all */
	PH_STREAM,	/* sending SSE events */
	PH_STALLED,	/* sends nothing more; waits for the client to leave */
};

/* A chat answer that is not sent at once: delayed, streamed or stalled.
 * It lives until the answer is complete or the connection goes away,
 * whichever comes first, and is freed in exactly one of those places. */
struct pending {
	struct mock *m;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct answer a;
	struct event *timer;	/* delay, pacing, and "go on now" */
	struct event *watch;	/* periodic check that the client is there */
	struct evbuffer *buf;	/* one event or piece, handed to evhttp */
	struct pending *prev, *next;
	enum phase phase;
	long nbody;		/* content / tool events in the stream */
	long total;		/* all events, [DONE] included */
	long events_sent;
	long big_left;		/* bytes of the long line still to send */
	int reset_waits;
	bool in_big;		/* between head and tail of the long line */
	bool draining;		/* waiting for evhttp's write callback */
	bool pacing;		/* timer pending: delay or chunk pause */
	bool sent_since_pause;
	bool self_reset;	/* the connection ends because we reset it */
};

static const char *const filler[] = {
	"lorem", "ipsum", "dolor", "sit", "amet", "consectetur",
	"adipiscing", "elit", "sed", "do", "eiusmod", "tempor",
};
#define NFILLER (sizeof filler / sizeof filler[0])

/* The tool-call arguments, as a JSON string literal's content, and the two
 * pieces the stream sends it in. */
#define TOOL_ARGS_ESC	"{\\\"q\\\":\\\"x\\\"}"
static const char *const tool_arg_pieces[2] = {
	"{\\\"q\\\":", "\\\"x\\\"}",
};

/* Source of the long SSE line: referenced by evbuffers, never copied. */
static char x_block[PIECE_BYTES];

static void pump(struct pending *p);

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fputs("mock_provider: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

/* JSON-escape s[0..n) into a new string, without the quotes.  Bytes >= 0x80
 * pass through: the input is either jansson-validated UTF-8 or ours. */
static char *json_escape_dup(const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *out = xmalloc(n * 6 + 1);
	char *o = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':  *o++ = '\\'; *o++ = '"'; break;
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		default:
			if (c < 0x20) {
				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				o += 6;
			} else {
				*o++ = (char)c;
			}
		}
	}
	*o = '\0';
	return out;
}

/* Parse a decimal integer that is all of s[0..n). */
static bool parse_long(const char *s, size_t n, long *out)
{
	char buf[32];
	char *end;
	long v;

	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static long clamp(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static struct timeval ms_tv(long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return tv;
}

static bool valid_status(long v)
{
	return v >= 100 && v <= 599;
}

/* Knob values from directives and /_mock/config are clamped into range
 * rather than refused, so that a test asking for "a lot" gets the most. */
static void knob_set(struct knobs *k, const char *key, long v)
{
	if (strcmp(key, "delay_ms") == 0)
		k->delay_ms = clamp(v, 0, MAX_DELAY_MS);
	else if (strcmp(key, "chunks") == 0)
		k->chunks = clamp(v, 1, MAX_CHUNKS);
	else if (strcmp(key, "chunk_delay_ms") == 0)
		k->chunk_delay_ms = clamp(v, 0, MAX_DELAY_MS);
	else if (strcmp(key, "reset_after") == 0)
		k->reset_after = v < 0 ? -1 : v;
	else if (strcmp(key, "stall_after") == 0)
		k->stall_after = v < 0 ? -1 : v;
}

/* ---------------------------------------------------------------------- */
/* Recording                                                              */

/* Called with m->sh->lock held. */
static void record_json(struct mock *m, json_t *obj)
{
	char *s;

	if (obj == NULL)
		return;
	s = json_dumps(obj, JSON_COMPACT);
	if (s != NULL) {
		fputs(s, m->sh->record);
		fputc('\n', m->sh->record);
		/* Tests read the file while we run; never leave a half line. */
		fflush(m->sh->record);
		free(s);
	}
	json_decref(obj);
}

/* A JSON string of arbitrary bytes: bodies need not be UTF-8, and jansson
 * refuses invalid UTF-8, so those bytes become '?'. */
static json_t *json_bytes(const char *s, size_t n)
{
	json_t *j;
	char *copy;

	if (n == 0)
		return json_string("");
	j = json_stringn(s, n);
	if (j != NULL)
		return j;
	copy = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	j = json_stringn(copy, n);
	free(copy);
	return j;
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

static void record_request(struct mock *m, struct evhttp_request *req,
    uint64_t seq, const char *path, const char *body, size_t len)
{
	json_t *obj = json_object();
	json_t *hdrs = json_object();
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	for (struct evkeyval *kv = evhttp_request_get_input_headers(req)->tqh_first;
	    kv != NULL; kv = kv->next.tqe_next) {
		char *key = strdup(kv->key);
		json_t *old;

		if (key == NULL)
			continue;
		for (char *c = key; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		/* A repeated header keeps all its values, as HTTP joins them. */
		old = json_object_get(hdrs, key);
		if (json_is_string(old)) {
			size_t ol = json_string_length(old), nl = strlen(kv->value);
			char *joined = xmalloc(ol + 2 + nl);

			memcpy(joined, json_string_value(old), ol);
			memcpy(joined + ol, ", ", 2);
			memcpy(joined + ol + 2, kv->value, nl);
			json_object_set_new(hdrs, key, json_bytes(joined, ol + 2 + nl));
			free(joined);
		} else {
			json_object_set_new(hdrs, key,
			    json_bytes(kv->value, strlen(kv->value)));
		}
		free(key);
	}
	json_object_set_new(obj, "seq", json_integer((json_int_t)seq));
	json_object_set_new(obj, "provider", json_string(m->name));
	json_object_set_new(obj, "method",
	    json_string(method_name(evhttp_request_get_command(req))));
	json_object_set_new(obj, "path", json_bytes(path, strlen(path)));
	if (query != NULL)
		json_object_set_new(obj, "query", json_bytes(query, strlen(query)));
	json_object_set_new(obj, "headers", hdrs);
	json_object_set_new(obj, "body", json_bytes(body, len));
	record_json(m, obj);
}

static void record_abort(struct pending *p)
{
	json_t *obj;

	if (p->m->sh->record == NULL)
		return;
	obj = json_object();
	json_object_set_new(obj, "seq", json_integer((json_int_t)p->a.seq));
	json_object_set_new(obj, "provider", json_string(p->m->name));
	json_object_set_new(obj, "event", json_string("client_aborted"));
	json_object_set_new(obj, "events_sent", json_integer(p->events_sent));
	pthread_mutex_lock(&p->m->sh->lock);
	record_json(p->m, obj);
	pthread_mutex_unlock(&p->m->sh->lock);
}

/* ---------------------------------------------------------------------- */
/* Simple answers                                                         */

static void set_json_type(struct evhttp_request *req, const struct mock *m)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "X-Mock-Provider", m->name);
}

/* The OpenAI error shape.  msg and code must already be JSON-safe. */
static void send_error(struct mock *m, struct evhttp_request *req, int status,
    const char *msg, const char *type, const char *code)
{
	struct evbuffer *b = m->scratch;

	evbuffer_add_printf(b, "{\"error\":{\"message\":\"mock %s: %s\","
	    "\"type\":\"%s\",\"code\":", m->name_esc, msg, type);
	if (code != NULL)
		evbuffer_add_printf(b, "\"%s\"}}", code);
	else
		evbuffer_add_printf(b, "null}}");
	set_json_type(req, m);
	evhttp_send_reply(req, status, NULL, b);
}

/* The error a test asked for with status=N (or fail_next). */
static void send_status_error(struct mock *m, struct evhttp_request *req,
    long status)
{
	char msg[64];

	snprintf(msg, sizeof msg, "simulated error (status %ld)", status);
	if (status == 429) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		send_error(m, req, 429, msg, "requests", "rate_limit_exceeded");
	} else if (status >= 500) {
		send_error(m, req, (int)status, msg, "server_error", NULL);
	} else {
		send_error(m, req, (int)status, msg, "invalid_request_error", NULL);
	}
}

static void send_text(struct mock *m, struct evhttp_request *req, int status,
    const char *type, const char *text)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "X-Mock-Provider", m->name);
	evbuffer_add(m->scratch, text, strlen(text));
	evhttp_send_reply(req, status, NULL, m->scratch);
}

/* ---------------------------------------------------------------------- */
/* Answer content                                                         */

/* Word k of the reply "hello from NAME lorem ipsum ...", or of words=. */
static void add_word(struct evbuffer *b, const struct mock *m,
    const struct answer *a, long k)
{
	const char *w;

	if (a->words != NULL) {
		w = a->words[(size_t)k % a->nwords];
		evbuffer_add(b, w, strlen(w));
		return;
	}
	if (k == 0) {
		w = "hello";
	} else if (k == 1) {
		w = "from";
	} else if (k == 2) {
		evbuffer_add(b, m->name_esc, m->name_esc_len);
		return;
	} else {
		w = filler[(size_t)(k - 3) % NFILLER];
	}
	evbuffer_add(b, w, strlen(w));
}

static long completion_tokens(const struct answer *a)
{
	if (a->ntools > 0)
		return 8 * (long)a->ntools;
	if (a->stream && a->sse_line_bytes >= 0)
		return a->sse_line_bytes / 4 > 0 ? a->sse_line_bytes / 4 : 1;
	return a->k.chunks;
}

static void add_usage(struct evbuffer *b, const struct answer *a)
{
	long c = completion_tokens(a);

	evbuffer_add_printf(b, "\"usage\":{\"prompt_tokens\":%ld,"
	    "\"completion_tokens\":%ld,\"total_tokens\":%ld}",
	    a->prompt_tokens, c, a->prompt_tokens + c);
}

static void add_completion(struct evbuffer *b, const struct mock *m,
    const struct answer *a)
{
	evbuffer_add_printf(b, "{\"id\":\"chatcmpl-mock-%" PRIu64 "\","
	    "\"object\":\"chat.completion\",\"created\":%lld,\"model\":\"%s\","
	    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",",
	    a->seq, a->created, a->model_esc);
	if (a->ntools > 0) {
		evbuffer_add_printf(b, "\"content\":null,\"tool_calls\":[");
		for (size_t i = 0; i < a->ntools; i++)
			evbuffer_add_printf(b, "%s{\"id\":\"call_%" PRIu64 "_%zu\","
			    "\"type\":\"function\",\"function\":{\"name\":\"%s\","
			    "\"arguments\":\"" TOOL_ARGS_ESC "\"}}",
			    i ? "," : "", a->seq, i, a->tools[i]);
		evbuffer_add_printf(b, "]},\"finish_reason\":\"tool_calls\"}],");
	} else {
		evbuffer_add_printf(b, "\"content\":\"%s: ", m->name_esc);
		for (long k = 0; k < a->k.chunks; k++) {
			if (k > 0)
				evbuffer_add(b, " ", 1);
			add_word(b, m, a, k);
		}
		evbuffer_add_printf(b, "\"},\"finish_reason\":\"stop\"}],");
	}
	add_usage(b, a);
	evbuffer_add(b, "}", 1);
}

/* The beginning of every chunk object, up to and including the comma
 * before "choices". */
static void add_chunk_open(struct evbuffer *b, const struct answer *a)
{
	evbuffer_add_printf(b, "data: {\"id\":\"chatcmpl-mock-%" PRIu64 "\","
	    "\"object\":\"chat.completion.chunk\",\"created\":%lld,"
	    "\"model\":\"%s\",", a->seq, a->created, a->model_esc);
}

/* SSE event number idx of the stream (never the long line, see pump). */
static void add_event(struct evbuffer *b, const struct pending *p, long idx)
{
	const struct answer *a = &p->a;
	const struct mock *m = p->m;

	if (idx == p->total - 1) {
		evbuffer_add(b, "data: [DONE]\n\n", 14);
		return;
	}
	add_chunk_open(b, a);
	if (idx == 0) {
		evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":"
		    "{\"role\":\"assistant\",\"content\":%s},"
		    "\"finish_reason\":null}]}\n\n", a->ntools ? "null" : "\"\"");
	} else if (idx <= p->nbody && a->ntools > 0) {
		long j = idx - 1;
		size_t call = (size_t)(j / 3);

		evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":"
		    "{\"tool_calls\":[{\"index\":%zu,", call);
		if (j % 3 == 0)
			evbuffer_add_printf(b, "\"id\":\"call_%" PRIu64 "_%zu\","
			    "\"type\":\"function\",\"function\":{\"name\":\"%s\","
			    "\"arguments\":\"\"}", a->seq, call, a->tools[call]);
		else
			evbuffer_add_printf(b, "\"function\":{\"arguments\":\"%s\"}",
			    tool_arg_pieces[j % 3 - 1]);
		evbuffer_add_printf(b, "}]},\"finish_reason\":null}]}\n\n");
	} else if (idx <= p->nbody) {
		long k = idx - 1;

		evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":"
		    "{\"content\":\"");
		/* The first delta carries the "NAME: " prefix so that the
		 * stream adds up to the non-streaming content. */
		if (k == 0)
			evbuffer_add_printf(b, "%s: ", m->name_esc);
		else
			evbuffer_add(b, " ", 1);
		add_word(b, m, a, k);
		evbuffer_add_printf(b, "\"},\"finish_reason\":null}]}\n\n");
	} else if (idx == p->nbody + 1) {
		evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":{},"
		    "\"finish_reason\":\"%s\"}]}\n\n",
		    a->ntools ? "tool_calls" : "stop");
	} else {
		evbuffer_add_printf(b, "\"choices\":[],");
		add_usage(b, a);
		evbuffer_add(b, "}\n\n", 3);
	}
}

/* ---------------------------------------------------------------------- */
/* Directives and answers                                                 */

static bool key_is(const char *k, size_t kl, const char *want)
{
	return kl == strlen(want) && memcmp(k, want, kl) == 0;
}

static void apply_directive(struct directives *d, const char *k, size_t kl,
    const char *v, size_t vl)
{
	static const char *const knob_keys[] = {
		"delay_ms", "chunks", "chunk_delay_ms", "reset_after",
		"stall_after",
	};
	long n;

	if (key_is(k, kl, "body")) {
		d->body_notjson = vl == 7 && memcmp(v, "notjson", 7) == 0;
		return;
	}
	if (key_is(k, kl, "tool_call")) {
		d->tools = v;
		d->tools_len = vl;
		return;
	}
	if (key_is(k, kl, "raw")) {
		d->raw = v;
		d->raw_len = vl;
		return;
	}
	if (key_is(k, kl, "raw_type")) {
		d->raw_type = v;
		d->raw_type_len = vl;
		return;
	}
	if (key_is(k, kl, "words")) {
		d->say = v;
		d->say_len = vl;
		return;
	}
	/* Everything else is numeric; a value that is not is ignored. */
	if (!parse_long(v, vl, &n))
		return;
	if (key_is(k, kl, "status")) {
		if (valid_status(n)) {
			d->k.status = n;
			d->status_set = true;
		}
		return;
	}
	if (key_is(k, kl, "raw_status")) {
		if (valid_status(n))
			d->raw_status = n;
		return;
	}
	if (key_is(k, kl, "sse_line_bytes")) {
		d->sse_line_bytes = n < 0 ? -1 : clamp(n, 0, MAX_SSE_LINE_BYTES);
		return;
	}
	for (size_t i = 0; i < sizeof knob_keys / sizeof knob_keys[0]; i++)
		if (key_is(k, kl, knob_keys[i]))
			knob_set(&d->k, knob_keys[i], n);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

/* Find every "[[mock k=v ...]]" in s; later ones override earlier ones. */
static void scan_directives(const char *s, size_t n, struct directives *d)
{
	const char *end = s + n;
	const char *p = s;

	while (p < end && (p = memmem(p, (size_t)(end - p), "[[mock", 6)) != NULL) {
		const char *close;

		p += 6;
		close = memmem(p, (size_t)(end - p), "]]", 2);
		if (close == NULL)
			return;
		while (p < close) {
			const char *tok, *eq;

			while (p < close && is_space(*p))
				p++;
			tok = p;
			while (p < close && !is_space(*p))
				p++;
			eq = memchr(tok, '=', (size_t)(p - tok));
			if (eq != NULL && eq > tok)
				apply_directive(d, tok, (size_t)(eq - tok), eq + 1,
				    (size_t)(p - eq - 1));
		}
		p = close + 2;
	}
}

static long count_words(const char *s, size_t n)
{
	long words = 0;
	bool in_word = false;

	for (size_t i = 0; i < n; i++) {
		bool sp = is_space(s[i]);

		if (!sp && !in_word)
			words++;
		in_word = !sp;
	}
	return words;
}

static void scan_text(json_t *str, struct directives *d)
{
	const char *s = json_string_value(str);
	size_t n = json_string_length(str);

	d->words += count_words(s, n);
	scan_directives(s, n, d);
}

/* Message content is a string, or an array of parts with "text". */
static void scan_messages(json_t *messages, struct directives *d)
{
	size_t i, j;
	json_t *msg, *part;

	json_array_foreach(messages, i, msg) {
		json_t *c = json_object_get(msg, "content");

		if (json_is_string(c)) {
			scan_text(c, d);
		} else if (json_is_array(c)) {
			json_array_foreach(c, j, part) {
				json_t *t = json_object_get(part, "text");

				if (json_is_string(t))
					scan_text(t, d);
			}
		}
	}
}

/* Decode base64 (standard or URL alphabet, '=' padding optional) into a
 * new buffer; NULL if s is not base64. */
static char *base64_dup(const char *s, size_t n, size_t *outlen)
{
	char *out = xmalloc(n / 4 * 3 + 3);
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+' || c == '-')
			v = 62;
		else if (c == '/' || c == '_')
			v = 63;
		else if (c == '=')
			break;
		else {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*outlen = o;
	return out;
}

static void split_tools(struct answer *a, const char *s, size_t n)
{
	const char *end = s + n;

	a->tools = xmalloc(sizeof *a->tools * MAX_TOOLS);
	while (s < end && a->ntools < MAX_TOOLS) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;

		if (stop > s)
			a->tools[a->ntools++] = json_escape_dup(s, (size_t)(stop - s));
		s = stop + 1;
	}
}

/* words=a,b_c: each item one word (one delta when streaming); '_' is a
 * space; only letters, digits and "-.@+:" are kept (no escaping). */
static void split_words(struct answer *a, const char *s, size_t n)
{
	const char *end = s + n;

	a->words = xmalloc(sizeof *a->words * MAX_TOOLS);
	while (s < end && a->nwords < MAX_TOOLS) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;
		char *w = xmalloc((size_t)(stop - s) + 1);
		size_t o = 0;

		for (const char *c = s; c < stop; c++)
			if (*c == '_')
				w[o++] = ' ';
			else if (isalnum((unsigned char)*c) || strchr("-.@+:", *c))
				w[o++] = *c;
		w[o] = '\0';
		a->words[a->nwords++] = w;
		s = stop + 1;
	}
	if (a->nwords == 0) {
		free(a->words);
		a->words = NULL;
	} else {
		a->k.chunks = (long)a->nwords;
	}
}

static void answer_free(struct answer *a)
{
	for (size_t i = 0; i < a->nwords; i++)
		free(a->words[i]);
	free(a->words);
	free(a->model_esc);
	for (size_t i = 0; i < a->ntools; i++)
		free(a->tools[i]);
	free(a->tools);
	free(a->raw);
	free(a->raw_type);
}

/* Turn a valid request into an answer: current defaults, then fail_next,
 * then the request's own directives. */
static void answer_build(struct mock *m, json_t *root, uint64_t seq,
    struct answer *a)
{
	json_t *model = json_object_get(root, "model");
	json_t *opts = json_object_get(root, "stream_options");
	struct directives d = {
		.sse_line_bytes = -1,
	};
	long fail_status = 0;

	pthread_mutex_lock(&m->sh->lock);
	d.k = m->sh->cur;
	if (m->sh->fail_next > 0) {
		m->sh->fail_next--;
		fail_status = m->sh->fail_status;
	}
	pthread_mutex_unlock(&m->sh->lock);
	scan_messages(json_object_get(root, "messages"), &d);

	memset(a, 0, sizeof *a);
	a->seq = seq;
	a->created = (long long)time(NULL);
	a->model_esc = json_escape_dup(json_string_value(model),
	    json_string_length(model));
	a->stream = json_is_true(json_object_get(root, "stream"));
	a->include_usage = json_is_true(json_object_get(opts, "include_usage"));
	if (fail_status != 0 && !d.status_set)
		d.k.status = fail_status;
	a->k = d.k;
	a->body_notjson = d.body_notjson;
	a->sse_line_bytes = d.sse_line_bytes;
	a->prompt_tokens = d.words > 0 ? d.words : 1;
	if (d.tools != NULL)
		split_tools(a, d.tools, d.tools_len);
	if (d.raw != NULL)
		a->raw = base64_dup(d.raw, d.raw_len, &a->raw_len);
	a->raw_status = d.raw_status ? d.raw_status : 200;
	if (d.raw_type == NULL) {
		a->raw_type = strdup(a->stream ? "text/event-stream" :
		    "application/json");
	} else if (!key_is(d.raw_type, d.raw_type_len, "none")) {
		a->raw_type = xmalloc(d.raw_type_len + 1);
		memcpy(a->raw_type, d.raw_type, d.raw_type_len);
		a->raw_type[d.raw_type_len] = '\0';
	}
	if (d.say != NULL)
		split_words(a, d.say, d.say_len);
}

/* Answers that go out in one piece (once any delay has passed). */
static bool answer_is_simple(const struct answer *a)
{
	if (!a->stream && a->k.reset_after == 0)
		return false;
	return a->raw != NULL || a->k.status != 200 || a->body_notjson ||
	    (!a->stream && a->k.stall_after != 0);
}

static void answer_send_simple(struct mock *m, struct evhttp_request *req,
    const struct answer *a)
{
	if (a->raw != NULL) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);

		/* Exactly these bytes, whatever they are: the hostile
		 * provider of the tests. */
		if (a->raw_type != NULL)
			evhttp_add_header(h, "Content-Type", a->raw_type);
		evhttp_add_header(h, "X-Mock-Provider", m->name);
		evbuffer_add(m->scratch, a->raw, a->raw_len);
		evhttp_send_reply(req, (int)a->raw_status, NULL, m->scratch);
	} else if (a->k.status != 200) {
		send_status_error(m, req, a->k.status);
	} else if (a->body_notjson) {
		send_text(m, req, 200, "application/json", "<html>oops</html>");
	} else {
		add_completion(m->scratch, m, a);
		set_json_type(req, m);
		evhttp_send_reply(req, 200, "OK", m->scratch);
	}
}

/* ---------------------------------------------------------------------- */
/* Answers in progress                                                    */

static void pending_free(struct pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		p->m->live = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	event_free(p->timer);
	event_free(p->watch);
	evbuffer_free(p->buf);
	answer_free(&p->a);
	free(p);
}

/*
 * The connection is going away: the client left (seen by evhttp, by our
 * watch, or by a failed write), we reset it, or we are shutting down.
 * evhttp calls this from evhttp_connection_free() before it frees the
 * requests still queued on the connection.  When evhttp itself saw the
 * EOF, it has already taken our unfinished request off the connection
 * (evhttp_connection_incoming_fail), and then the request is ours to free.
 */
static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
	struct pending *p = arg;

	(void)conn;
	if (!p->self_reset && !p->m->stopping)
		record_abort(p);
	if (evhttp_request_get_connection(p->req) == NULL)
		evhttp_request_free(p->req);
	pending_free(p);
}

/* The answer is complete: from now on the connection is evhttp's alone. */
static void pending_detach(struct pending *p)
{
	evhttp_connection_set_closecb(p->conn, NULL, NULL);
}

/*
 * Abort the TCP connection with a RST.  SO_LINGER {1,0} makes close() send
 * a RST, but evhttp_connection_free() calls shutdown(SHUT_WR) first, and
 * the FIN that sends would reach the client before the RST and look like a
 * clean end of stream.  connect(AF_UNSPEC) disconnects the socket at once,
 * and for an established TCP socket the kernel does that with a RST; the
 * shutdown() and close() that follow then have nothing left to send.
 */
static void reset_connection(struct pending *p)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(p->conn);
	evutil_socket_t fd = bufferevent_getfd(bev);

	p->self_reset = true;
	if (fd >= 0) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		struct sockaddr sa = { .sa_family = AF_UNSPEC };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		connect(fd, &sa, sizeof sa);
	}
	evhttp_connection_free(p->conn);	/* calls on_conn_close: p is gone */
}

/*
 * While reading is disabled (before the answer starts) evhttp does not
 * notice that the client closed, so a delayed or stalled request checks
 * the socket itself.  poll() with POLLRDHUP sees a FIN even when unread
 * bytes (a pipelined request) sit in front of it, and POLLHUP/POLLERR see a
 * reset.
 */
static void on_watch(evutil_socket_t unused_fd, short what, void *arg)
{
	struct pending *p = arg;
	struct pollfd pfd = {
		.fd = bufferevent_getfd(evhttp_connection_get_bufferevent(p->conn)),
		.events = POLLRDHUP,
	};

	(void)unused_fd;
	(void)what;
	if (pfd.fd < 0 || (poll(&pfd, 1, 0) > 0 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))))
		evhttp_connection_free(p->conn);	/* calls on_conn_close */
}

/* Run the pump from our own timer callback, never from inside evhttp's. */
static void kick(struct pending *p)
{
	if (!evtimer_pending(p->timer, NULL))
		event_active(p->timer, EV_TIMEOUT, 1);
}

static void pace(struct pending *p, long ms)
{
	struct timeval tv = ms_tv(ms);

	p->pacing = true;
	evtimer_add(p->timer, &tv);
}

/* evhttp's write callback: everything queued so far has been written. */
static void on_drained(struct evhttp_connection *conn, void *arg)
{
	struct pending *p = arg;

	(void)conn;
	if (p->phase != PH_STREAM || !p->draining)
		return;
	p->draining = false;
	if (!p->pacing)
		kick(p);
}

static void send_buf(struct pending *p)
{
	evhttp_send_reply_chunk_with_cb(p->req, p->buf, on_drained, p);
}

static void finish_stream(struct pending *p)
{
	pending_detach(p);
	evhttp_send_reply_end(p->req);
	pending_free(p);
}

/*
 * Send the stream's events as far as flow control, pacing, stall_after and
 * reset_after allow.  Each event is its own HTTP chunk; the long line of
 * sse_line_bytes is a head, PIECE_BYTES pieces and a tail, each its own
 * chunk, so that it never has to exist in memory at once.
 */
static void pump(struct pending *p)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(p->conn);
	struct evbuffer *out = bufferevent_get_output(bev);
	const struct knobs *k = &p->a.k;

	for (;;) {
		if (!p->in_big) {
			if (k->reset_after == p->events_sent) {
				/* Let what was sent reach the client before the
				 * RST, which would discard it in our kernel. */
				if (evbuffer_get_length(out) > 0 &&
				    p->reset_waits++ < RESET_MAX_WAITS) {
					pace(p, 1);
					return;
				}
				reset_connection(p);
				return;
			}
			if (k->stall_after == p->events_sent) {
				p->phase = PH_STALLED;
				return;
			}
			if (p->events_sent == p->total) {
				finish_stream(p);
				return;
			}
			if (p->sent_since_pause && k->chunk_delay_ms > 0) {
				p->sent_since_pause = false;
				pace(p, k->chunk_delay_ms);
				return;
			}
		}
		if (evbuffer_get_length(out) >= OUTPUT_HIGH) {
			p->draining = true;	/* on_drained resumes */
			return;
		}
		if (p->in_big && p->big_left > 0) {
			long n = p->big_left < PIECE_BYTES ? p->big_left : PIECE_BYTES;

			evbuffer_add_reference(p->buf, x_block, (size_t)n, NULL, NULL);
			p->big_left -= n;
			send_buf(p);
			continue;
		}
		if (p->in_big) {
			evbuffer_add_printf(p->buf, "\"},\"finish_reason\":null}]}\n\n");
			p->in_big = false;
		} else if (p->events_sent == 1 && p->a.sse_line_bytes >= 0 &&
		    p->a.ntools == 0) {
			add_chunk_open(p->buf, &p->a);
			evbuffer_add_printf(p->buf, "\"choices\":[{\"index\":0,"
			    "\"delta\":{\"content\":\"");
			p->in_big = true;
			p->big_left = p->a.sse_line_bytes;
			send_buf(p);
			continue;
		} else {
			add_event(p->buf, p, p->events_sent);
		}
		send_buf(p);
		p->events_sent++;
		p->sent_since_pause = true;
	}
}

static void stream_start(struct pending *p)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(p->req);
	const struct answer *a = &p->a;

	if (a->ntools > 0)
		p->nbody = 3 * (long)a->ntools;
	else if (a->sse_line_bytes >= 0)
		p->nbody = 1;
	else
		p->nbody = a->k.chunks;
	p->total = 1 + p->nbody + 1 + (a->include_usage ? 1 : 0) + 1;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Mock-Provider", p->m->name);
	evhttp_send_reply_start(p->req, 200, "OK");
	p->phase = PH_STREAM;
	pump(p);
}

/* The delay (if any) is over: answer. */
static void pending_start(struct pending *p)
{
	const struct answer *a = &p->a;

	if (!a->stream && a->k.reset_after == 0) {
		reset_connection(p);
	} else if (answer_is_simple(a)) {
		pending_detach(p);
		answer_send_simple(p->m, p->req, a);
		pending_free(p);
	} else if (!a->stream) {
		p->phase = PH_STALLED;	/* stall_after=0: never answer */
	} else {
		stream_start(p);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	(void)fd;
	(void)what;
	switch (p->phase) {
	case PH_DELAY:
		pending_start(p);
		break;
	case PH_STREAM:
		p->pacing = false;
		if (!p->draining)
			pump(p);
		break;
	case PH_STALLED:
		break;
	}
}

/* Takes over the answer. */
static void pending_new(struct mock *m, struct evhttp_request *req,
    struct answer *a)
{
	struct pending *p = xmalloc(sizeof *p);

	memset(p, 0, sizeof *p);
	p->m = m;
	p->req = req;
	p->conn = evhttp_request_get_connection(req);
	p->a = *a;
	p->phase = PH_DELAY;
	p->timer = evtimer_new(m->base, on_timer, p);
	p->watch = event_new(m->base, -1, EV_PERSIST, on_watch, p);
	p->buf = evbuffer_new();
	if (p->timer == NULL || p->watch == NULL || p->buf == NULL) {
		fputs("mock_provider: out of memory\n", stderr);
		exit(1);
	}
	p->next = m->live;
	if (m->live != NULL)
		m->live->prev = p;
	m->live = p;
	evhttp_connection_set_closecb(p->conn, on_conn_close, p);
	evtimer_add(p->watch, m->watch_tv);
	if (a->k.delay_ms > 0)
		pace(p, a->k.delay_ms);
	else
		kick(p);	/* not from inside evhttp's request callback */
}

/* ---------------------------------------------------------------------- */
/* Endpoints                                                              */

/*
 * The chat body's parse.  A benchmark sends one body over and over, and
 * parsing it (jansson, a few tens of microseconds for 1.4 KB) was most of
 * the mock's CPU time per request: each thread keeps the last body it
 * parsed with its tree, and the same bytes again get the same tree (only
 * read: answer_build copies what it keeps).
 */
static json_t *chat_parse(struct mock *m, const char *body, size_t len)
{
	json_error_t jerr;
	json_t *root;
	char *copy;

	if (m->last_root != NULL && len == m->last_len &&
	    memcmp(body, m->last_body, len) == 0)
		return json_incref(m->last_root);
	root = len > 0 ? json_loadb(body, len, 0, &jerr) : NULL;
	if (root == NULL || len > PARSE_CACHE_BYTES)
		return root;
	copy = xmalloc(len);
	memcpy(copy, body, len);
	free(m->last_body);
	json_decref(m->last_root);
	m->last_body = copy;
	m->last_len = len;
	m->last_root = json_incref(root);
	return root;
}

static void handle_chat(struct mock *m, struct evhttp_request *req,
    uint64_t seq, const char *body, size_t len)
{
	json_t *root, *model, *messages;
	struct answer a;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		send_error(m, req, 405, "use POST", "invalid_request_error", NULL);
		return;
	}
	root = chat_parse(m, body, len);
	model = json_object_get(root, "model");
	messages = json_object_get(root, "messages");
	if (!json_is_object(root)) {
		send_error(m, req, 400, "the body is not a JSON object",
		    "invalid_request_error", NULL);
	} else if (!json_is_string(model)) {
		send_error(m, req, 400, "'model' (a string) is required",
		    "invalid_request_error", NULL);
	} else if (!json_is_array(messages)) {
		send_error(m, req, 400, "'messages' (an array) is required",
		    "invalid_request_error", NULL);
	} else {
		answer_build(m, root, seq, &a);
		if (a.k.delay_ms == 0 && answer_is_simple(&a)) {
			answer_send_simple(m, req, &a);
			answer_free(&a);
		} else {
			pending_new(m, req, &a);
		}
	}
	json_decref(root);
}

static bool config_get(json_t *root, const char *key, long *out, bool *bad)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL)
		return false;
	if (json_is_null(v) && (strcmp(key, "reset_after") == 0 ||
	    strcmp(key, "stall_after") == 0)) {
		*out = -1;
		return true;
	}
	if (!json_is_integer(v)) {
		*bad = true;
		return false;
	}
	*out = (long)json_integer_value(v);
	return true;
}

static void handle_config(struct mock *m, struct evhttp_request *req,
    const char *body, size_t len)
{
	static const char *const keys[] = {
		"delay_ms", "chunks", "chunk_delay_ms", "reset_after",
		"stall_after",
	};
	json_error_t jerr;
	json_t *root = len > 0 ? json_loadb(body, len, 0, &jerr) : NULL;
	struct knobs k;
	bool bad = false, has_status, has_fail;
	long status = 500, fail = 0, v;

	if (!json_is_object(root)) {
		json_decref(root);
		send_error(m, req, 400, "the body is not a JSON object",
		    "invalid_request_error", NULL);
		return;
	}
	/* Held from reading the knobs to writing them back: two configs
	 * on two threads do not lose each other's changes. */
	pthread_mutex_lock(&m->sh->lock);
	k = m->sh->cur;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (config_get(root, keys[i], &v, &bad))
			knob_set(&k, keys[i], v);
	has_status = config_get(root, "status", &status, &bad);
	has_fail = config_get(root, "fail_next", &fail, &bad);
	json_decref(root);
	if (bad || (has_status && !valid_status(status)) || fail < 0) {
		pthread_mutex_unlock(&m->sh->lock);
		send_error(m, req, 400, "config values must be integers in range",
		    "invalid_request_error", NULL);
		return;
	}
	/* With fail_next, status says how those requests fail; alone, it
	 * is the new default for every request. */
	if (has_fail) {
		m->sh->fail_next = fail;
		m->sh->fail_status = has_status ? status : 500;
	} else if (has_status) {
		k.status = status;
	}
	m->sh->cur = k;
	pthread_mutex_unlock(&m->sh->lock);
	send_text(m, req, 200, "application/json", "{}");
}

/* ---------------------------------------------------------------------- */
/* The other formats: Anthropic Messages, OpenAI Responses, Embeddings     */
/*
 * The same directives as chat (status=, tool_call=, raw=, words, chunks= as
 * the number of text pieces), each answer in its provider's shape, and
 * streams with the event types and order those providers send.  Streams
 * go out in one reply (no pacing knobs here).  The id of a Responses
 * answer names the mock ("resp_NAME_SEQ"), so a test can see which route
 * a previous_response_id went to.
 */

enum fmt_kind { FK_MESSAGES, FK_COUNT, FK_RESPONSES, FK_EMBEDDINGS };

/* The answer's text: "NAME: hello from NAME lorem ..." */
static char *fmt_text(const struct mock *m, const struct answer *a, long from,
    long to)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	if (from == 0)
		evbuffer_add_printf(b, "%s: ", m->name);
	for (long k = from; k < to; k++) {
		if (k > 0)
			evbuffer_add(b, " ", 1);
		if (k == 2)
			evbuffer_add(b, m->name, strlen(m->name));
		else
			add_word(b, m, a, k);
	}
	(void)a;
	n = evbuffer_get_length(b);
	s = xmalloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void fmt_send_json(struct mock *m, struct evhttp_request *req,
    int status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	set_json_type(req, m);
	evbuffer_add(m->scratch, s, strlen(s));
	evhttp_send_reply(req, status, NULL, m->scratch);
	free(s);
	json_decref(o);
}

static void fmt_event(struct evbuffer *b, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	evbuffer_add_printf(b, "event: %s\ndata: %s\n\n",
	    json_string_value(json_object_get(o, "type")), s);
	free(s);
	json_decref(o);
}

/* A Messages or Responses stream paced by chunk_delay_ms: one event per
 * tick, each its own HTTP chunk (so a gateway reads them one by one). */
struct fmt_paced {
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct event *timer;
	struct evbuffer *rest;		/* the events not sent yet */
	long ms;
};

static void fmt_paced_free(struct fmt_paced *f)
{
	evhttp_connection_set_closecb(f->conn, NULL, NULL);
	event_free(f->timer);
	evbuffer_free(f->rest);
	free(f);
}

static void fmt_paced_gone(struct evhttp_connection *c, void *arg)
{
	(void)c;
	fmt_paced_free(arg);
}

static void fmt_paced_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fmt_paced *f = arg;
	struct evbuffer_ptr end = evbuffer_search(f->rest, "\n\n", 2, NULL);
	struct evbuffer *one;
	struct timeval tv = ms_tv(f->ms);

	(void)fd;
	(void)what;
	if (end.pos < 0) {
		evhttp_send_reply_end(f->req);
		fmt_paced_free(f);
		return;
	}
	one = evbuffer_new();
	evbuffer_remove_buffer(f->rest, one, (size_t)end.pos + 2);
	evhttp_send_reply_chunk(f->req, one);
	evbuffer_free(one);
	evtimer_add(f->timer, &tv);
}

static void fmt_send_stream(struct mock *m, struct evhttp_request *req,
    struct evbuffer *b, long delay_ms)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct fmt_paced *f;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "X-Mock-Provider", m->name);
	if (delay_ms <= 0) {
		evhttp_send_reply(req, 200, NULL, b);
		return;
	}
	f = xmalloc(sizeof(*f));
	f->req = req;
	f->conn = evhttp_request_get_connection(req);
	f->rest = evbuffer_new();
	f->ms = delay_ms;
	evbuffer_add_buffer(f->rest, b);
	f->timer = evtimer_new(evhttp_connection_get_base(f->conn),
	    fmt_paced_tick, f);
	evhttp_connection_set_closecb(f->conn, fmt_paced_gone, f);
	evhttp_send_reply_start(req, 200, NULL);
	fmt_paced_tick(-1, 0, f);
}

static const char *anthropic_type(long status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 429: return "rate_limit_error";
	case 529: return "overloaded_error";
	default: return "api_error";
	}
}

static json_t *msg_tool_block(const struct answer *a, size_t i, bool start)
{
	char id[64];

	snprintf(id, sizeof id, "toolu_%" PRIu64 "_%zu", a->seq, i);
	return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id,
	    "name", a->tools[i], "input", start ? json_object() :
	    json_pack("{s:s}", "q", "x"));
}

static void fmt_messages(struct mock *m, struct evhttp_request *req,
    const struct answer *a)
{
	long out_tokens = a->ntools > 0 ? 8 * (long)a->ntools : a->k.chunks;
	json_t *usage = json_pack("{s:i,s:i}", "input_tokens",
	    (json_int_t)a->prompt_tokens, "output_tokens", (json_int_t)out_tokens);
	char id[64];

	snprintf(id, sizeof id, "msg_%s_%" PRIu64, m->name, a->seq);
	if (!a->stream) {
		json_t *content = json_array();
		char *t = fmt_text(m, a, 0, a->k.chunks);

		json_array_append_new(content, json_pack("{s:s,s:s}", "type",
		    "text", "text", t));
		free(t);
		for (size_t i = 0; i < a->ntools; i++)
			json_array_append_new(content, msg_tool_block(a, i, false));
		fmt_send_json(m, req, 200, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,"
		    "s:n,s:o}", "id", id, "type", "message", "role", "assistant",
		    "model", a->model_esc, "content", content, "stop_reason",
		    a->ntools ? "tool_use" : "end_turn", "stop_sequence", "usage",
		    usage));
		return;
	}
	struct evbuffer *b = evbuffer_new();

	fmt_event(b, json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:i,"
	    "s:i}}}", "type", "message_start", "message", "id", id, "type",
	    "message", "role", "assistant", "model", a->model_esc, "content",
	    "stop_reason", "stop_sequence", "usage", "input_tokens",
	    (json_int_t)a->prompt_tokens, "output_tokens", (json_int_t)1));
	fmt_event(b, json_pack("{s:s,s:i,s:{s:s,s:s}}", "type",
	    "content_block_start", "index", 0, "content_block", "type", "text",
	    "text", ""));
	fmt_event(b, json_pack("{s:s}", "type", "ping"));
	for (long k = 0; k < a->k.chunks; k++) {
		char *t = fmt_text(m, a, k, k + 1);

		fmt_event(b, json_pack("{s:s,s:i,s:{s:s,s:s}}", "type",
		    "content_block_delta", "index", 0, "delta", "type",
		    "text_delta", "text", t));
		free(t);
	}
	fmt_event(b, json_pack("{s:s,s:i}", "type", "content_block_stop",
	    "index", 0));
	for (size_t i = 0; i < a->ntools; i++) {
		json_int_t idx = (json_int_t)i + 1;

		fmt_event(b, json_pack("{s:s,s:I,s:o}", "type",
		    "content_block_start", "index", idx, "content_block",
		    msg_tool_block(a, i, true)));
		fmt_event(b, json_pack("{s:s,s:I,s:{s:s,s:s}}", "type",
		    "content_block_delta", "index", idx, "delta", "type",
		    "input_json_delta", "partial_json", "{\"q\":"));
		fmt_event(b, json_pack("{s:s,s:I,s:{s:s,s:s}}", "type",
		    "content_block_delta", "index", idx, "delta", "type",
		    "input_json_delta", "partial_json", "\"x\"}"));
		fmt_event(b, json_pack("{s:s,s:I}", "type", "content_block_stop",
		    "index", idx));
	}
	fmt_event(b, json_pack("{s:s,s:{s:s,s:n},s:{s:i}}", "type",
	    "message_delta", "delta", "stop_reason", a->ntools ? "tool_use" :
	    "end_turn", "stop_sequence", "usage", "output_tokens",
	    (json_int_t)out_tokens));
	fmt_event(b, json_pack("{s:s}", "type", "message_stop"));
	json_decref(usage);
	fmt_send_stream(m, req, b, a->k.chunk_delay_ms);
	evbuffer_free(b);
}

static json_t *rsp_fn_item(const struct answer *a, size_t i, bool done)
{
	char id[64], cid[64];

	snprintf(id, sizeof id, "fc_%" PRIu64 "_%zu", a->seq, i);
	snprintf(cid, sizeof cid, "call_%" PRIu64 "_%zu", a->seq, i);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "function_call",
	    "id", id, "call_id", cid, "name", a->tools[i], "arguments",
	    done ? "{\"q\":\"x\"}" : "", "status", done ? "completed" :
	    "in_progress");
}

static json_t *rsp_message_item(const struct mock *m, const struct answer *a,
    bool done)
{
	char *t = done ? fmt_text(m, a, 0, a->k.chunks) : NULL;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "type", "message", "id",
	    "msg_0", "status", done ? "completed" : "in_progress", "role",
	    "assistant", "content", done ? json_pack("[{s:s,s:s,s:[]}]", "type",
	    "output_text", "text", t, "annotations") : json_array());

	free(t);
	return o;
}

static json_t *rsp_response(const struct mock *m, const struct answer *a,
    const char *status, bool full)
{
	char id[64];
	json_t *out = json_array();
	long out_tokens = a->ntools > 0 ? 8 * (long)a->ntools : a->k.chunks;

	snprintf(id, sizeof id, "resp_%s_%" PRIu64, m->name, a->seq);
	if (full) {
		json_array_append_new(out, rsp_message_item(m, a, true));
		for (size_t i = 0; i < a->ntools; i++)
			json_array_append_new(out, rsp_fn_item(a, i, true));
	}
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", id, "object",
	    "response", "created_at", (json_int_t)a->created, "status", status,
	    "model", a->model_esc, "output", out, "usage", full ?
	    json_pack("{s:i,s:i,s:i}", "input_tokens", (json_int_t)a->prompt_tokens,
	    "output_tokens", (json_int_t)out_tokens, "total_tokens",
	    (json_int_t)(a->prompt_tokens + out_tokens)) : json_null());
}

static void rsp_ev(struct evbuffer *b, long *seq, json_t *o)
{
	json_object_set_new(o, "sequence_number", json_integer(*seq));
	(*seq)++;
	fmt_event(b, o);
}

static void fmt_responses(struct mock *m, struct evhttp_request *req,
    const struct answer *a)
{
	struct evbuffer *b;
	long seq = 0;

	if (!a->stream) {
		fmt_send_json(m, req, 200, rsp_response(m, a, "completed", true));
		return;
	}
	b = evbuffer_new();
	rsp_ev(b, &seq, json_pack("{s:s,s:o}", "type", "response.created",
	    "response", rsp_response(m, a, "in_progress", false)));
	rsp_ev(b, &seq, json_pack("{s:s,s:o}", "type", "response.in_progress",
	    "response", rsp_response(m, a, "in_progress", false)));
	rsp_ev(b, &seq, json_pack("{s:s,s:i,s:o}", "type",
	    "response.output_item.added", "output_index", 0, "item",
	    rsp_message_item(m, a, false)));
	rsp_ev(b, &seq, json_pack("{s:s,s:s,s:i,s:i,s:{s:s,s:s,s:[]}}", "type",
	    "response.content_part.added", "item_id", "msg_0", "output_index", 0,
	    "content_index", 0, "part", "type", "output_text", "text", "",
	    "annotations"));
	for (long k = 0; k < a->k.chunks; k++) {
		char *t = fmt_text(m, a, k, k + 1);

		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:i,s:i,s:s}", "type",
		    "response.output_text.delta", "item_id", "msg_0",
		    "output_index", 0, "content_index", 0, "delta", t));
		free(t);
	}
	{
		char *t = fmt_text(m, a, 0, a->k.chunks);

		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:i,s:i,s:s}", "type",
		    "response.output_text.done", "item_id", "msg_0",
		    "output_index", 0, "content_index", 0, "text", t));
		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:i,s:i,s:{s:s,s:s,s:[]}}",
		    "type", "response.content_part.done", "item_id", "msg_0",
		    "output_index", 0, "content_index", 0, "part", "type",
		    "output_text", "text", t, "annotations"));
		free(t);
	}
	rsp_ev(b, &seq, json_pack("{s:s,s:i,s:o}", "type",
	    "response.output_item.done", "output_index", 0, "item",
	    rsp_message_item(m, a, true)));
	for (size_t i = 0; i < a->ntools; i++) {
		json_int_t idx = (json_int_t)i + 1;
		json_t *it = rsp_fn_item(a, i, false);
		const char *iid = json_string_value(json_object_get(it, "id"));
		char *iid_copy = strdup(iid);

		rsp_ev(b, &seq, json_pack("{s:s,s:I,s:o}", "type",
		    "response.output_item.added", "output_index", idx, "item", it));
		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:I,s:s}", "type",
		    "response.function_call_arguments.delta", "item_id", iid_copy,
		    "output_index", idx, "delta", "{\"q\":"));
		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:I,s:s}", "type",
		    "response.function_call_arguments.delta", "item_id", iid_copy,
		    "output_index", idx, "delta", "\"x\"}"));
		rsp_ev(b, &seq, json_pack("{s:s,s:s,s:I,s:s}", "type",
		    "response.function_call_arguments.done", "item_id", iid_copy,
		    "output_index", idx, "arguments", "{\"q\":\"x\"}"));
		rsp_ev(b, &seq, json_pack("{s:s,s:I,s:o}", "type",
		    "response.output_item.done", "output_index", idx, "item",
		    rsp_fn_item(a, i, true)));
		free(iid_copy);
	}
	rsp_ev(b, &seq, json_pack("{s:s,s:o}", "type", "response.completed",
	    "response", rsp_response(m, a, "completed", true)));
	fmt_send_stream(m, req, b, a->k.chunk_delay_ms);
	evbuffer_free(b);
}

static void fmt_embeddings(struct mock *m, struct evhttp_request *req,
    const struct answer *a, json_t *root)
{
	json_t *in = json_object_get(root, "input"), *data = json_array();
	size_t n = json_is_array(in) ? json_array_size(in) : 1;
	const char *enc = json_string_value(json_object_get(root,
	    "encoding_format"));
	bool b64 = enc != NULL && strcmp(enc, "base64") == 0;

	for (size_t i = 0; i < n && i < 2048; i++) {
		json_t *v = json_array();
		float f[8];

		for (int d = 0; d < 8; d++) {
			f[d] = (float)((a->seq + i * 8 + (size_t)d) % 17) / 17.0f -
			    0.5f;
			json_array_append_new(v, json_real((double)f[d]));
		}
		/* encoding_format base64: little-endian float32s (what the
		 * openai SDKs ask for by default). */
		if (b64) {
			static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789+/";
			const unsigned char *p = (const unsigned char *)f;
			char out[48];
			size_t o = 0;

			for (size_t k = 0; k < sizeof f; k += 3) {
				unsigned w = (unsigned)p[k] << 16 | (k + 1 < sizeof f ?
				    (unsigned)p[k + 1] << 8 : 0) | (k + 2 < sizeof f ?
				    p[k + 2] : 0);

				out[o++] = al[w >> 18 & 63];
				out[o++] = al[w >> 12 & 63];
				out[o++] = k + 1 < sizeof f ? al[w >> 6 & 63] : '=';
				out[o++] = k + 2 < sizeof f ? al[w & 63] : '=';
			}
			out[o] = '\0';
			json_decref(v);
			v = json_string(out);
		}
		json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object",
		    "embedding", "index", (json_int_t)i, "embedding", v));
	}
	fmt_send_json(m, req, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}",
	    "object", "list", "data", data, "model", a->model_esc, "usage",
	    "prompt_tokens", (json_int_t)a->prompt_tokens, "total_tokens",
	    (json_int_t)a->prompt_tokens));
}

static void handle_format(struct mock *m, struct evhttp_request *req,
    uint64_t seq, const char *body, size_t len, enum fmt_kind fk)
{
	json_t *root, *in, *view;
	struct answer a;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		send_error(m, req, 405, "use POST", "invalid_request_error", NULL);
		return;
	}
	root = len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	if (!json_is_object(root) || !json_is_string(json_object_get(root,
	    "model"))) {
		if (fk == FK_MESSAGES || fk == FK_COUNT)
			fmt_send_json(m, req, 400, json_pack("{s:s,s:{s:s,s:s}}",
			    "type", "error", "error", "type", "invalid_request_error",
			    "message", "model: Field required"));
		else
			send_error(m, req, 400, "'model' (a string) is required",
			    "invalid_request_error", NULL);
		json_decref(root);
		return;
	}
	/* The directives live in the text: messages (Messages), input and
	 * instructions (Responses, Embeddings). */
	view = json_deep_copy(root);
	in = json_object_get(root, "input");
	if (fk == FK_RESPONSES || fk == FK_EMBEDDINGS) {
		json_t *msgs = json_array();

		if (json_is_string(in))
			json_array_append_new(msgs, json_pack("{s:O}", "content", in));
		else if (json_is_array(in) && fk == FK_RESPONSES)
			json_array_extend(msgs, in);
		else if (json_is_array(in))
			for (size_t i = 0; i < json_array_size(in); i++)
				if (json_is_string(json_array_get(in, i)))
					json_array_append_new(msgs, json_pack("{s:O}",
					    "content", json_array_get(in, i)));
		json_object_set_new(view, "messages", msgs);
	}
	answer_build(m, view, seq, &a);
	json_decref(view);
	if (a.raw != NULL) {
		answer_send_simple(m, req, &a);
	} else if (a.k.status != 200) {
		char msg[64];

		snprintf(msg, sizeof msg, "mock %s: simulated error (status %ld)",
		    m->name, a.k.status);
		if (fk == FK_MESSAGES || fk == FK_COUNT)
			fmt_send_json(m, req, (int)a.k.status, json_pack(
			    "{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
			    anthropic_type(a.k.status), "message", msg));
		else
			send_status_error(m, req, a.k.status);
	} else if (fk == FK_COUNT) {
		fmt_send_json(m, req, 200, json_pack("{s:I}", "input_tokens",
		    (json_int_t)a.prompt_tokens));
	} else if (fk == FK_MESSAGES) {
		fmt_messages(m, req, &a);
	} else if (fk == FK_RESPONSES) {
		fmt_responses(m, req, &a);
	} else {
		fmt_embeddings(m, req, &a, root);
	}
	answer_free(&a);
	json_decref(root);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct mock *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	uint64_t seq = 0;

	if (path == NULL || *path == '\0')
		path = "/";
	/* Record what reaches the provider API, not the tests' control
	 * requests. */
	if (strncmp(path, "/_mock/", 7) != 0) {
		/* One critical section: the record file stays in seq order. */
		pthread_mutex_lock(&m->sh->lock);
		seq = ++m->sh->seq;
		if (m->sh->record != NULL)
			record_request(m, req, seq, path, body, len);
		pthread_mutex_unlock(&m->sh->lock);
	}

	if (strcmp(path, "/v1/chat/completions") == 0 ||
	    strcmp(path, "/chat/completions") == 0) {
		handle_chat(m, req, seq, body, len);
	} else if (strcmp(path, "/v1/messages") == 0) {
		handle_format(m, req, seq, body, len, FK_MESSAGES);
	} else if (strcmp(path, "/v1/messages/count_tokens") == 0) {
		handle_format(m, req, seq, body, len, FK_COUNT);
	} else if (strcmp(path, "/v1/responses") == 0 ||
	    strcmp(path, "/responses") == 0) {
		handle_format(m, req, seq, body, len, FK_RESPONSES);
	} else if (strcmp(path, "/v1/embeddings") == 0 ||
	    strcmp(path, "/embeddings") == 0) {
		handle_format(m, req, seq, body, len, FK_EMBEDDINGS);
	} else if (strcmp(path, "/v1/models") == 0 || strcmp(path, "/models") == 0) {
		if (cmd != EVHTTP_REQ_GET) {
			send_error(m, req, 405, "use GET", "invalid_request_error", NULL);
			return;
		}
		send_text(m, req, 200, "application/json", m->models_json);
	} else if (strcmp(path, "/_mock/health") == 0) {
		send_text(m, req, 200, "text/plain", "ok");
	} else if (strcmp(path, "/_mock/config") == 0 && cmd == EVHTTP_REQ_POST) {
		handle_config(m, req, body, len);
	} else if (strcmp(path, "/_mock/reset") == 0 && cmd == EVHTTP_REQ_POST) {
		pthread_mutex_lock(&m->sh->lock);
		m->sh->cur = m->cli;
		m->sh->fail_next = 0;
		pthread_mutex_unlock(&m->sh->lock);
		send_text(m, req, 200, "application/json", "{}");
	} else {
		send_error(m, req, 404, "no such endpoint", "invalid_request_error",
		    NULL);
	}
}

/* ---------------------------------------------------------------------- */
/* Start-up                                                               */

/* Only thread 0 sees the signals; it stops every thread. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct shared *sh = arg;

	(void)sig;
	(void)what;
	for (int i = 0; i < sh->nthreads; i++)
		event_base_loopexit(sh->threads[i].base, NULL);
}

static void usage(FILE *f)
{
	fputs("usage: mock_provider --listen HOST:PORT [--name NAME] "
	    "[--record FILE]\n"
	    "         [--latency-ms N] [--status N] [--chunks N] "
	    "[--chunk-delay-ms N]\n"
	    "         [--threads N] [--quiet]\n", f);
}

static void die_usage(const char *fmt, const char *arg)
{
	fputs("mock_provider: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

/* HOST:PORT or [V6]:PORT; an empty host means 127.0.0.1. */
static void parse_listen(const char *s, char *host, size_t hostsz, long *port)
{
	const char *colon;
	size_t hl;
	const char *h = s;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			die_usage("bad --listen address '%s'", s);
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			die_usage("--listen needs HOST:PORT, got '%s'", s);
		hl = (size_t)(colon - s);
	}
	if (hl >= hostsz)
		die_usage("host too long in '%s'", s);
	if (hl == 0) {
		snprintf(host, hostsz, "127.0.0.1");
	} else {
		memcpy(host, h, hl);
		host[hl] = '\0';
	}
	if (!parse_long(colon + 1, strlen(colon + 1), port) || *port < 0 ||
	    *port > 65535)
		die_usage("bad port in '%s'", s);
}

static long arg_number(const char *opt, const char *v, long lo, long hi)
{
	long n;

	if (!parse_long(v, strlen(v), &n) || n < lo || n > hi) {
		fprintf(stderr, "mock_provider: %s wants a number in %ld..%ld, "
		    "got '%s'\n", opt, lo, hi, v);
		exit(2);
	}
	return n;
}

static char *build_models(const struct mock *m)
{
	static const char *const ids[] = {
		"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-3.5-turbo",
	};
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		evbuffer_add_printf(b, "%s{\"id\":\"%s\",\"object\":\"model\","
		    "\"created\":1700000000,\"owned_by\":\"%s\"}",
		    i ? "," : "", ids[i], m->name_esc);
	evbuffer_add_printf(b, "]}");
	n = evbuffer_get_length(b);
	s = xmalloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* The listening socket on HOST:PORT; *bound_port gets its port. */
static int listen_socket(const char *host, long port, long *bound_port)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE,
	};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	char portstr[16];
	int fd = -1, one = 1;

	snprintf(portstr, sizeof portstr, "%ld", port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL)
		goto out;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		int e = errno;

		close(fd);
		fd = -1;
		errno = e;
		goto out;
	}
	if (ss.ss_family == AF_INET)
		*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
out:
	if (ai != NULL)
		freeaddrinfo(ai);
	return fd;
}

static void on_relisten(evutil_socket_t fd, short what, void *arg)
{
	struct mock *m = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(m->listener);
}

/*
 * evhttp asks for each accepted connection's bufferevent here, in the
 * accepting thread.  libevent's listener accepts until the backlog is
 * empty unless it is disabled meanwhile: it is, until this thread's loop
 * comes round again, and the other threads take their share.
 */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
	struct mock *m = arg;

	evconnlistener_disable(m->listener);
	event_active(m->relisten, EV_TIMEOUT, 0);
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* Give thread m its event_base and evhttp on m->listen_fd. */
static bool mock_thread_init(struct mock *m)
{
	struct timeval watch = ms_tv(WATCH_MS);
	struct evhttp_bound_socket *bound;

	m->base = event_base_new();
	if (m->base == NULL)
		return false;
	/* All watch timers share one duration: libevent keeps them in a
	 * queue instead of its heap. */
	m->watch_tv = event_base_init_common_timeout(m->base, &watch);
	m->scratch = evbuffer_new();
	m->http = evhttp_new(m->base);
	if (m->http == NULL || m->scratch == NULL)
		return false;
	evhttp_set_gencb(m->http, on_request, m);
	evhttp_set_timeout(m->http, HTTP_TIMEOUT_S);
	evhttp_set_max_body_size(m->http, MAX_BODY_BYTES);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	/* evhttp owns the socket from here and closes it when freed. */
	bound = evhttp_accept_socket_with_handle(m->http, m->listen_fd);
	m->relisten = event_new(m->base, -1, 0, on_relisten, m);
	if (bound == NULL || m->relisten == NULL)
		return false;
	m->listener = evhttp_bound_socket_get_listener(bound);
	evhttp_set_bevcb(m->http, on_new_conn, m);
	return true;
}

/* Free what mock_thread_init made, once the thread's loop has ended.
 * evhttp_free() frees every connection; their close callbacks free the
 * answers still in progress, without recording them as aborts. */
static void mock_thread_free(struct mock *m)
{
	m->stopping = true;
	event_free(m->relisten);
	evhttp_free(m->http);
	while (m->live != NULL)
		pending_free(m->live);
	evbuffer_free(m->scratch);
	event_base_free(m->base);
	json_decref(m->last_root);
	free(m->last_body);
}

/* Threads 1..n-1: serve until on_signal stops the loop. */
static void *mock_thread_run(void *arg)
{
	struct mock *m = arg;

	event_base_dispatch(m->base);
	mock_thread_free(m);
	return NULL;
}

int main(int argc, char **argv)
{
	struct mock m = {
		.name = "mock",
		.cli = {
			.status = 200, .delay_ms = 0, .chunks = 5,
			.chunk_delay_ms = 0, .reset_after = -1, .stall_after = -1,
		},
	};
	struct shared sh = {
		.fail_status = 500,
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	const char *listen_arg = NULL, *record_path = NULL;
	char host[256];
	long port, nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	int lfd;
	struct event *sigterm, *sigint;
	sigset_t block, old;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = NULL;
		char optbuf[64];
		const char *eq = strchr(opt, '=');

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(opt, "--quiet") == 0) {
			m.quiet = true;
			continue;
		}
		/* --opt=value or --opt value */
		if (eq != NULL && strncmp(opt, "--", 2) == 0 &&
		    (size_t)(eq - opt) < sizeof optbuf) {
			memcpy(optbuf, opt, (size_t)(eq - opt));
			optbuf[eq - opt] = '\0';
			opt = optbuf;
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			die_usage("missing value or unknown option '%s'", opt);
		}
		if (strcmp(opt, "--listen") == 0)
			listen_arg = val;
		else if (strcmp(opt, "--name") == 0)
			m.name = val;
		else if (strcmp(opt, "--record") == 0)
			record_path = val;
		else if (strcmp(opt, "--latency-ms") == 0)
			m.cli.delay_ms = arg_number(opt, val, 0, MAX_DELAY_MS);
		else if (strcmp(opt, "--status") == 0)
			m.cli.status = arg_number(opt, val, 100, 599);
		else if (strcmp(opt, "--chunks") == 0)
			m.cli.chunks = arg_number(opt, val, 1, MAX_CHUNKS);
		else if (strcmp(opt, "--chunk-delay-ms") == 0)
			m.cli.chunk_delay_ms = arg_number(opt, val, 0, MAX_DELAY_MS);
		else if (strcmp(opt, "--threads") == 0)
			nthreads = arg_number(opt, val, 1, MAX_THREADS);
		else
			die_usage("unknown option '%s'", opt);
	}
	if (listen_arg == NULL)
		die_usage("%s", "--listen HOST:PORT is required");
	parse_listen(listen_arg, host, sizeof host, &port);
	nthreads = clamp(nthreads, 1, MAX_THREADS);
	sh.cur = m.cli;

	/* A client that leaves mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/* on_signal stops the other threads' loops from thread 0. */
	if (evthread_use_pthreads() != 0) {
		fputs("mock_provider: evthread_use_pthreads failed\n", stderr);
		return 1;
	}
	memset(x_block, 'x', sizeof x_block);
	m.name_esc = json_escape_dup(m.name, strlen(m.name));
	m.name_esc_len = strlen(m.name_esc);
	m.models_json = build_models(&m);
	m.sh = &sh;
	if (record_path != NULL) {
		sh.record = fopen(record_path, "a");
		if (sh.record == NULL) {
			fprintf(stderr, "mock_provider: cannot open %s: %s\n",
			    record_path, strerror(errno));
			return 2;
		}
	}

	lfd = listen_socket(host, port, &port);
	if (lfd < 0) {
		fprintf(stderr, "mock_provider: cannot listen on %s: %s\n",
		    listen_arg, strerror(errno));
		return 2;
	}
	sh.nthreads = (int)nthreads;
	sh.threads = xmalloc(sizeof *sh.threads * (size_t)nthreads);
	for (int i = 0; i < sh.nthreads; i++) {
		struct mock *t = &sh.threads[i];

		*t = m;
		/* Each evhttp closes its own descriptor of the one socket. */
		t->listen_fd = i == 0 ? lfd : fcntl(lfd, F_DUPFD_CLOEXEC, 0);
		if (t->listen_fd < 0 || !mock_thread_init(t)) {
			fputs("mock_provider: cannot set up libevent\n", stderr);
			return 1;
		}
	}

	sigterm = evsignal_new(sh.threads[0].base, SIGTERM, on_signal, &sh);
	sigint = evsignal_new(sh.threads[0].base, SIGINT, on_signal, &sh);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* The other threads start with the signals blocked: thread 0 alone
	 * takes them. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int i = 1; i < sh.nthreads; i++)
		if (pthread_create(&sh.threads[i].thread, NULL, mock_thread_run,
		    &sh.threads[i]) != 0) {
			fputs("mock_provider: pthread_create failed\n", stderr);
			return 1;
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (!m.quiet) {
		printf(strchr(host, ':') ? "mock_provider %s listening on [%s]:%ld\n"
		    : "mock_provider %s listening on %s:%ld\n", m.name, host, port);
		fflush(stdout);
	}

	event_base_dispatch(sh.threads[0].base);
	event_free(sigterm);
	event_free(sigint);
	mock_thread_free(&sh.threads[0]);
	for (int i = 1; i < sh.nthreads; i++)
		pthread_join(sh.threads[i].thread, NULL);
	libevent_global_shutdown();
	if (sh.record != NULL)
		fclose(sh.record);
	free(sh.threads);
	free(m.models_json);
	free(m.name_esc);
	return 0;
}
