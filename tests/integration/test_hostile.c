/*
 * test_hostile.c - hostile clients and a hostile provider: slowloris,
 * bodies that never end or are far too large, floods of headers, broken
 * JSON strings, deep nesting, duplicate keys, a 100 MB SSE line, and
 * malformed request heads.  Each case expects a clean 4xx (or, for the
 * provider, a clean error event) and a live server afterwards.
 *
 * Cases already covered by test_gateway.c (Content-Length with chunked,
 * two Content-Lengths, a header name with a space, a slow head, a single
 * oversized header, a body over the limit sent by curl, a provider answer
 * that is not JSON) are not repeated here.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ifaddrs.h>
#include <signal.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

static void
setup(void)
{
	it_env_start(NULL);
}

static void
teardown(void)
{
	it_env_stop();
}

/* IT_VERBOSE=1 prints what the timing and memory checks measured. */
static void
note(const char *fmt, ...)
{
	va_list ap;

	if (getenv("IT_VERBOSE") == NULL)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "hostile: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void
assert_alive(void)
{
	struct it_resp r;

	it_http("GET", it_url("/healthz"), NULL, NULL, 5000, &r);
	ck_assert_msg(r.status == 200, "warden is not alive: status %ld, curl %d",
	    r.status, r.curl_code);
	it_resp_free(&r);
}


/* A raw answer: exact status line, OpenAI error body, Connection: close. */
static void
assert_raw_error(const char *out, int status, const char *what)
{
	char want[32];
	const char *body, *cl;
	size_t blen;

	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	ck_assert_msg(strncmp(out, want, strlen(want)) == 0,
	    "%s: want %d, got: %.300s", what, status, out);
	ck_assert_msg(strstr(out, "Connection: close\r\n") != NULL,
	    "%s: no Connection: close: %.300s", what, out);
	body = strstr(out, "\r\n\r\n");
	ck_assert_msg(body != NULL, "%s: incomplete head: %.300s", what, out);
	body += 4;
	blen = strlen(body);
	cl = strstr(out, "Content-Length: ");
	ck_assert_msg(cl != NULL && cl < body, "%s: no Content-Length", what);
	ck_assert_msg((size_t)atol(cl + 16) == blen,
	    "%s: body is %zu bytes, Content-Length says %ld", what, blen,
	    atol(cl + 16));
	it_assert_error_json(body, blen, NULL, NULL);
}

static void
assert_resp_error(const struct it_resp *r, long status, const char *what)
{
	(void)what;			/* it_assert_error prints the body */
	it_assert_error(r, status, NULL, NULL, NULL);
}

static int
raw_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)it.port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(fd >= 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	    "connect: %s", strerror(errno));
	return fd;
}

/* Read until EOF, an error, or timeout_ms; appends to *out. */
static void
read_some(int fd, char **out, size_t *len, int timeout_ms)
{
	double end = it_now_s() + timeout_ms / 1000.0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((end - it_now_s()) * 1000);
		char buf[16384];
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		*out = realloc(*out, *len + (size_t)n + 1);
		memcpy(*out + *len, buf, (size_t)n);
		*len += (size_t)n;
		(*out)[*len] = '\0';
	}
}

/*
 * Send data (as much as warden takes) while reading its answer, until
 * warden closes or timeout_ms pass.  Reports how much went out and when
 * the first byte of the answer came.
 */
struct xchg {
	char *out;
	size_t outlen;
	size_t sent;
	double first;			/* seconds from start to first answer byte */
};

static void
xchg(const char *data, size_t len, int timeout_ms, struct xchg *x)
{
	int fd = raw_connect();
	double t0 = it_now_s(), end = t0 + timeout_ms / 1000.0;
	bool can_send = true;

	memset(x, 0, sizeof(*x));
	x->out = calloc(1, 1);
	x->first = -1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((end - it_now_s()) * 1000);

		if (can_send && x->sent < len)
			p.events |= POLLOUT;
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		if (p.revents & POLLIN) {
			char buf[16384];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			if (n <= 0)
				break;
			if (x->first < 0)
				x->first = it_now_s() - t0;
			x->out = realloc(x->out, x->outlen + (size_t)n + 1);
			memcpy(x->out + x->outlen, buf, (size_t)n);
			x->outlen += (size_t)n;
			x->out[x->outlen] = '\0';
		} else if (p.revents & POLLOUT) {
			size_t chunk = len - x->sent > 65536 ? 65536 : len - x->sent;
			ssize_t n = send(fd, data + x->sent, chunk,
			    MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n < 0 && errno != EAGAIN && errno != EINTR)
				can_send = false;
			else if (n > 0)
				x->sent += (size_t)n;
		} else if (p.revents & (POLLERR | POLLHUP)) {
			break;
		}
	}
	close(fd);
}

/* 1. Slowloris: a head trickled in one byte every 200 ms gets a 408
 * after about header_timeout_ms, and other clients are served meanwhile. */
START_TEST(slowloris_gets_408_and_others_are_served)
{
	static const char head[] =
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Type: application/json\r\n\r\n";
	char *out = calloc(1, 1), *body = it_chat_body("gpt-4o", "tok-busy",
	    false);
	size_t outlen = 0, i = 0;
	int fd = raw_connect();
	double t0 = it_now_s(), took;
	bool served = false;

	for (; i < sizeof(head) - 1; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (send(fd, head + i, 1, MSG_NOSIGNAL) != 1)
			break;
		if (i == 1 && !served) {
			struct it_resp r;
			double s0 = it_now_s();

			/* Another client, while the slow one is under way. */
			it_chat(IT_KEY_T2, body, &r);
			ck_assert_msg(r.status == 200, "status %ld: %s", r.status,
			    r.body);
			ck_assert_msg(it_now_s() - s0 < 0.5, "served in %.3f s",
			    it_now_s() - s0);
			it_resp_free(&r);
			served = true;
		}
		if (poll(&p, 1, 200) > 0)
			break;
		ck_assert_msg(it_now_s() - t0 < 5, "no answer to the slow head");
	}
	read_some(fd, &out, &outlen, 3000);
	took = it_now_s() - t0;
	close(fd);
	note("slowloris: 408 after %.3f s, %zu bytes trickled", took, i);
	ck_assert(served);
	ck_assert_msg(i < 20, "warden read %zu trickled bytes", i);
	assert_raw_error(out, 408, "slowloris");
	ck_assert_msg(took > 0.8 && took < 2.0, "408 after %.3f s", took);
	free(out);
	free(body);
	assert_alive();
}
END_TEST

/* 2. A body that never ends gets a 408 after body_timeout_ms. */
START_TEST(body_that_never_ends_gets_408)
{
	char req[512], *out = calloc(1, 1);
	size_t outlen = 0;
	int fd = raw_connect(), n;
	double t0, took;

	n = snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
	    "%s", "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"and then it goes on and on and on and on and on ");
	ck_assert(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
	t0 = it_now_s();
	read_some(fd, &out, &outlen, 4000);
	took = it_now_s() - t0;
	close(fd);
	note("endless body: 408 after %.3f s", took);
	assert_raw_error(out, 408, "endless body");
	ck_assert_msg(strstr(out, "body") != NULL, "%s", out);
	ck_assert_msg(took > 0.8 && took < 2.0, "408 after %.3f s", took);
	free(out);
	assert_alive();
}
END_TEST

#define TEN_MB (10u << 20)

/* 3a. 10 MB announced by Content-Length: 413 at once, unread. */
START_TEST(ten_mb_body_with_length_gets_413_fast)
{
	char head[256];
	int hl = snprintf(head, sizeof(head), "POST /v1/chat/completions "
	    "HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Length: %u\r\n\r\n", TEN_MB);
	char *req = malloc((size_t)hl + TEN_MB);
	struct xchg x;

	memcpy(req, head, (size_t)hl);
	memset(req + hl, 'a', TEN_MB);
	xchg(req, (size_t)hl + TEN_MB, 5000, &x);
	note("10 MB CL: answer after %.3f s, %zu of %zu bytes sent", x.first,
	    x.sent, (size_t)hl + TEN_MB);
	assert_raw_error(x.out, 413, "10 MB with Content-Length");
	ck_assert_msg(x.first >= 0 && x.first < 0.5, "413 after %.3f s", x.first);
	/* warden did not swallow the whole body before giving up. */
	ck_assert_msg(x.sent < (size_t)hl + TEN_MB, "all %zu bytes were taken",
	    x.sent);
	free(x.out);
	free(req);
	assert_alive();
}
END_TEST

/* 3b. 10 MB in chunks: 413 once the limit is passed. */
START_TEST(ten_mb_chunked_body_gets_413)
{
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	size_t nchunks = TEN_MB / 65536, per = 7 + 65536 + 2;
	size_t len = sizeof(head) - 1 + nchunks * per + 5;
	char *req = malloc(len), *p = req;
	struct xchg x;

	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	for (size_t i = 0; i < nchunks; i++) {
		memcpy(p, "10000\r\n", 7);
		memset(p + 7, 'b', 65536);
		memcpy(p + 7 + 65536, "\r\n", 2);
		p += per;
	}
	memcpy(p, "0\r\n\r\n", 5);
	xchg(req, len, 5000, &x);
	note("10 MB chunked: answer after %.3f s, %zu of %zu bytes sent",
	    x.first, x.sent, len);
	assert_raw_error(x.out, 413, "10 MB chunked");
	ck_assert_msg(x.first >= 0 && x.first < 0.5, "413 after %.3f s", x.first);
	ck_assert_msg(x.sent < len, "all %zu bytes were taken", x.sent);
	free(x.out);
	free(req);
	assert_alive();
}
END_TEST

/* 4. 100,000 header fields: 431, long before they are all in. */
START_TEST(hundred_thousand_headers_get_431)
{
	static const char first[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
	size_t n = 100000, len = sizeof(first) - 1 + n * 8 + 2;
	char *req = malloc(len), *p = req;
	struct xchg x;

	memcpy(p, first, sizeof(first) - 1);
	p += sizeof(first) - 1;
	for (size_t i = 0; i < n; i++, p += 8)
		memcpy(p, "X-H: v\r\n", 8);
	memcpy(p, "\r\n", 2);
	xchg(req, len, 5000, &x);
	note("100k headers: answer after %.3f s, %zu of %zu bytes sent",
	    x.first, x.sent, len);
	assert_raw_error(x.out, 431, "100k headers");
	ck_assert_msg(x.first >= 0 && x.first < 0.5, "431 after %.3f s", x.first);
	free(x.out);
	free(req);
	assert_alive();
}
END_TEST

/* 4b. Many small headers inside max_header_bytes, over max_headers. */
START_TEST(too_many_small_headers_get_431)
{
	static const char first[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
	size_t n = 1000, len = sizeof(first) - 1 + n * 6 + 2;
	char *req = malloc(len + 1), *p = req, *out;

	memcpy(p, first, sizeof(first) - 1);
	p += sizeof(first) - 1;
	for (size_t i = 0; i < n; i++, p += 6)
		memcpy(p, "H: v\r\n", 6);
	memcpy(p, "\r\n", 2);
	req[len] = '\0';
	ck_assert(len < 8192);
	out = it_raw(it.port, req, len, 3000);
	assert_raw_error(out, 431, "1000 headers");
	free(out);
	free(req);
	assert_alive();
}
END_TEST

/* 5. Invalid UTF-8 and a \u0000 escape inside JSON strings: 400, and the
 * provider never hears of it. */
START_TEST(bad_json_strings_get_400)
{
	static const char *const bodies[] = {
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-utf8 \xff\xfe bad\"}]}",
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-overlong \xc0\xaf\"}]}",
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-surrogate \xed\xa0\x80\"}]}",
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-nul \\u0000 here\"}]}",
		"{\"model\":\"gpt-4o\\u0000o3\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-nulmodel\"}]}",
	};
	static const char *const toks[] = { "tok-utf8", "tok-overlong",
		"tok-surrogate", "tok-nul", "tok-nulmodel" };

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct it_resp r;

		it_chat(IT_KEY_T2, bodies[i], &r);
		assert_resp_error(&r, 400, toks[i]);
		it_resp_free(&r);
		ck_assert_msg(!it_record_has(2, toks[i]), "%s reached the provider",
		    toks[i]);
	}
	assert_alive();
}
END_TEST

/* A raw NUL byte inside a JSON string (not an escape). */
START_TEST(raw_nul_in_json_string_gets_400)
{
	static const char body[] = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"tok-rawnul \0 x\"}]}";
	char req[512];
	int hl = snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1"
	    "\r\nHost: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Connection: close\r\nContent-Length: %zu\r\n\r\n", sizeof(body) - 1);
	char *out;

	memcpy(req + hl, body, sizeof(body) - 1);
	out = it_raw(it.port, req, (size_t)hl + sizeof(body) - 1, 3000);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%.300s", out);
	free(out);
	ck_assert(!it_record_has(2, "tok-rawnul"));
	assert_alive();
}
END_TEST

/* 6. Deep nesting.  100,000 levels do not fit in max_body_bytes (413);
 * 32,000 levels do, and the parser refuses them (400). */
START_TEST(deeply_nested_json_is_refused)
{
	size_t depths[] = { 100000, 32000 };
	long want[] = { 413, 400 };

	for (size_t k = 0; k < 2; k++) {
		size_t d = depths[k];
		char *body = malloc(2 * d + 1);
		struct it_resp r;
		char what[32];

		memset(body, '[', d);
		memset(body + d, ']', d);
		body[2 * d] = '\0';
		snprintf(what, sizeof(what), "%zu levels", d);
		it_chat(IT_KEY_T2, body, &r);
		assert_resp_error(&r, want[k], what);
		it_resp_free(&r);
		free(body);
		assert_alive();
	}
	/* Nesting inside an otherwise valid request. */
	{
		size_t d = 30000;
		const char *pre = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":"
		    "\"user\",\"content\":\"tok-deep\"}],\"metadata\":";
		size_t pl = strlen(pre);
		char *body = malloc(pl + 2 * d + 2);
		struct it_resp r;

		memcpy(body, pre, pl);
		memset(body + pl, '[', d);
		memset(body + pl + d, ']', d);
		memcpy(body + pl + 2 * d, "}", 2);
		it_chat(IT_KEY_T2, body, &r);
		assert_resp_error(&r, 400, "nested metadata");
		it_resp_free(&r);
		free(body);
		ck_assert(!it_record_has(2, "tok-deep"));
	}
	assert_alive();
}
END_TEST

/* 7. Duplicate keys smuggling a different model: 400, nothing sent. */
START_TEST(duplicate_model_key_is_refused)
{
	static const char *const bodies[] = {
		"{\"model\":\"gpt-4o\",\"model\":\"o3\",\"messages\":[{\"role\":"
		"\"user\",\"content\":\"tok-dup-a\"}]}",
		"{\"model\":\"o3\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"tok-dup-b\"}],\"model\":\"gpt-4o\"}",
		/* The same key spelled with an escape. */
		"{\"model\":\"gpt-4o\",\"mod\\u0065l\":\"o3\",\"messages\":"
		"[{\"role\":\"user\",\"content\":\"tok-dup-c\"}]}",
		/* Duplicates deeper down are refused too. */
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
		"\"role\":\"system\",\"content\":\"tok-dup-d\"}]}",
	};
	static const char *const toks[] = { "tok-dup-a", "tok-dup-b",
		"tok-dup-c", "tok-dup-d" };

	for (size_t i = 0; i < 4; i++) {
		struct it_resp r;

		it_chat(IT_KEY_T2, bodies[i], &r);
		assert_resp_error(&r, 400, toks[i]);
		it_resp_free(&r);
	}
	/* Checked after all four: a late write would show up too. */
	for (size_t i = 0; i < 4; i++)
		for (int m = 0; m < 3; m++)
			ck_assert_msg(!it_record_has(m, toks[i]),
			    "%s reached mock %d", toks[i], m);
	assert_alive();
}
END_TEST

static long
vmrss_kb(pid_t pid)
{
	char path[64], *text, *p;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = it_read_file(path, NULL);
	ck_assert(text != NULL);
	p = strstr(text, "VmRSS:");
	if (p != NULL)
		kb = atol(p + 6);
	free(text);
	return kb;
}

/*
 * How much warden's RSS may grow: 16 MB, but ASan's quarantine keeps
 * freed memory resident, so under ASan the bound is loose and the other
 * checks (events the provider got out, bytes the client got) carry the
 * test.
 */
static long
rss_slack_kb(void)
{
	const char *bin = getenv("WARDEN_BIN");

	return bin != NULL && strstr(bin, "asan") != NULL ? 96 * 1024 : 16 * 1024;
}

/* events_sent of the client_aborted record of the request with token. */
static long
events_sent(int idx, const char *token)
{
	char *line = it_record_find(idx, token), *text, *l, *save;
	json_t *j;
	json_int_t seq;
	long sent = -1;

	if (line == NULL)
		return -1;
	j = json_loads(line, 0, NULL);
	free(line);
	seq = json_integer_value(json_object_get(j, "seq"));
	json_decref(j);
	text = it_read_file(it.record[idx], NULL);
	for (l = strtok_r(text, "\n", &save); l != NULL;
	    l = strtok_r(NULL, "\n", &save)) {
		json_t *e = json_loads(l, 0, NULL);

		if (json_integer_value(json_object_get(e, "seq")) == seq &&
		    json_is_integer(json_object_get(e, "events_sent")))
			sent = (long)json_integer_value(json_object_get(e,
			    "events_sent"));
		json_decref(e);
	}
	free(text);
	return sent;
}

/* 8. A provider streaming a 100 MB line: 200, then an error event naming
 * max_sse_event_bytes, a cleanly ended answer, and no memory growth. */
START_TEST(sse_line_of_100mb_ends_with_error_event)
{
	char *body = it_chat_body("gpt-4o",
	    "tok-bigline [[mock sse_line_bytes=104857600]]", true);
	struct it_resp r;
	long before, after;
	char *ev;
	double t0;

	before = vmrss_kb(it.warden);
	ck_assert(before > 0);
	t0 = it_now_s();
	it_chat(IT_KEY_T2, body, &r);
	ck_assert_msg(r.status == 200, "status %ld: %.300s", r.status, r.body);
	ck_assert_msg(r.curl_code == CURLE_OK, "curl %d: the answer did not end "
	    "cleanly", r.curl_code);
	ck_assert_msg(it_now_s() - t0 < 5, "took %.3f s", it_now_s() - t0);
	ev = strstr(r.body, "event: error\ndata: ");
	ck_assert_msg(ev != NULL, "no error event: %.500s", r.body);
	ck_assert(strstr(ev, "\"upstream_error\"") != NULL);
	ck_assert_msg(strstr(ev, "max_sse_event_bytes") != NULL, "%s", ev);
	{
		const char *data = ev + strlen("event: error\ndata: ");
		const char *nl = strchr(data, '\n');

		ck_assert(nl != NULL && nl[1] == '\n');
		it_assert_error_json(data, (size_t)(nl - data), NULL, NULL);
	}
	/* None of the giant line reached the client. */
	ck_assert_msg(r.len < 65536 + 4096, "client got %zu bytes", r.len);
	ck_assert(strstr(r.body, "[DONE]") == NULL);
	it_resp_free(&r);
	free(body);
	/* The provider's transfer was cut off, not read to the end. */
	ck_assert_msg(it_record_aborted(2, "tok-bigline", 2000),
	    "the provider's transfer was not aborted");
	after = vmrss_kb(it.warden);
	note("100 MB SSE line: RSS %ld kB -> %ld kB", before, after);
	ck_assert_msg(after - before < rss_slack_kb(),
	    "RSS grew from %ld kB to %ld kB", before, after);
	assert_alive();
}
END_TEST

struct raw_case {
	const char *what;
	const char *req;
	size_t len;			/* 0: strlen */
	int status;
};

#define NUL_METHOD "G\0T /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
#define NUL_VALUE "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"

/* 9. Malformed request heads. */
START_TEST(malformed_heads_are_refused)
{
	static char longline[10100];
	static const char sfx[] = " HTTP/1.1\r\nHost: x\r\n\r\n";
	struct raw_case cases[] = {
		{ "request line over the head limit", longline, 0, 431 },
		{ "bare CR in a header value", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "X-A: a\rb\r\n\r\n", 0, 400 },
		{ "bare LF in a header value", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "X-A: a\nb\r\n\r\n", 0, 400 },
		{ "bare LF line end", "GET /healthz HTTP/1.1\nHost: x\r\n\r\n", 0,
		    400 },
		{ "obs-fold", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n"
		    " b\r\n\r\n", 0, 400 },
		{ "obs-fold with tab", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "X-A: a\r\n\tb\r\n\r\n", 0, 400 },
		{ "HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 0, 505 },
		{ "HTTP/9.9", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 0, 505 },
		{ "HTTP/1.10", "GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n", 0, 400 },
		{ "control byte in method", "G\x01T /healthz HTTP/1.1\r\nHost: x"
		    "\r\n\r\n", 0, 400 },
		{ "high byte in method", "G\xc3\xa9T /healthz HTTP/1.1\r\nHost: x"
		    "\r\n\r\n", 0, 400 },
		{ "separator in method", "GE(T /healthz HTTP/1.1\r\nHost: x"
		    "\r\n\r\n", 0, 400 },
		{ "NUL in method", NUL_METHOD, sizeof(NUL_METHOD) - 1, 400 },
		{ "overlong method", "GETGETGETGETGETGETGET /healthz HTTP/1.1\r\n"
		    "Host: x\r\n\r\n", 0, 400 },
		{ "NUL in header value", NUL_VALUE, sizeof(NUL_VALUE) - 1, 400 },
		{ "DEL in header value", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "X-A: a\x7f" "b\r\n\r\n", 0, 400 },
		{ "space before colon", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "X-A : a\r\n\r\n", 0, 400 },
		{ "absolute-form target", "GET http://evil/healthz HTTP/1.1\r\n"
		    "Host: x\r\n\r\n", 0, 400 },
		{ "no Host in HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n", 0, 400 },
		{ "two Host headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		    "Host: y\r\n\r\n", 0, 400 },
		{ "negative Content-Length", "POST /v1/chat/completions HTTP/1.1"
		    "\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 0, 400 },
		{ "huge Content-Length", "POST /v1/chat/completions HTTP/1.1"
		    "\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		    0, 400 },
		{ "Transfer-Encoding gzip", "POST /v1/chat/completions HTTP/1.1"
		    "\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0,
		    501 },
		{ "Expect other than 100-continue", "POST /v1/chat/completions "
		    "HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
		    "Content-Length: 2\r\n\r\n{}", 0, 417 },
		/* (With a key: an unknown one is refused before the body.) */
		{ "bad chunk size", "POST /v1/chat/completions HTTP/1.1\r\nHost: x"
		    "\r\n" "Authorization: Bearer " IT_KEY_T1 "\r\n" "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
		    400 },
		{ "chunk size overflow", "POST /v1/chat/completions HTTP/1.1\r\n"
		    "Host: x\r\n" "Authorization: Bearer " IT_KEY_T1 "\r\n" "Transfer-Encoding: chunked\r\n\r\n"
		    "fffffffffffffffff\r\n", 0, 400 },
		{ "chunk without CRLF after data", "POST /v1/chat/completions "
		    "HTTP/1.1\r\nHost: x\r\n" "Authorization: Bearer " IT_KEY_T1 "\r\n" "Transfer-Encoding: chunked"
		    "\r\n\r\n2\r\n{}XX", 0, 400 },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);

	memcpy(longline, "GET /", 5);
	memset(longline + 5, 'a', sizeof(longline) - 5 - sizeof(sfx));
	memcpy(longline + sizeof(longline) - sizeof(sfx), sfx, sizeof(sfx));
	for (size_t i = 0; i < n; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].req);
		char *out = it_raw(it.port, cases[i].req, len, 3000);

		assert_raw_error(out, cases[i].status, cases[i].what);
		free(out);
	}
	assert_alive();
}
END_TEST

/* A request line that never ends (no CRLF at all) past the head limit. */
START_TEST(endless_request_line_gets_431)
{
	size_t len = 200000;
	char *req = malloc(len);
	struct xchg x;

	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', len - 5);
	xchg(req, len, 5000, &x);
	assert_raw_error(x.out, 431, "endless request line");
	ck_assert_msg(x.first >= 0 && x.first < 0.5, "431 after %.3f s", x.first);
	free(x.out);
	free(req);
	assert_alive();
}
END_TEST

/* A client that stops reading a long stream: warden pauses the provider
 * instead of buffering the stream, and lets go once the client leaves. */
START_TEST(stalled_stream_reader_does_not_grow_memory)
{
	const char *body = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"tok-noread [[mock chunks=100000]]"
	    "\"}]}";
	char req[512], buf[4096];
	int fd, rcv = 4096, n;
	long before, after, sent;

	before = vmrss_kb(it.warden);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	{
		struct sockaddr_in sa = { .sin_family = AF_INET,
			.sin_port = htons((uint16_t)it.port) };

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	}
	n = snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	ck_assert(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
	/* Read the start, then stop reading for a while. */
	ck_assert(recv(fd, buf, sizeof(buf), 0) > 0);
	usleep(1500 * 1000);
	after = vmrss_kb(it.warden);
	note("stalled reader: RSS %ld kB -> %ld kB", before, after);
	ck_assert_msg(after - before < rss_slack_kb(),
	    "RSS grew from %ld kB to %ld kB", before, after);
	close(fd);
	ck_assert_msg(it_record_aborted(2, "tok-noread", 2000),
	    "the provider's transfer was not aborted");
	/* The provider was paused: it got nowhere near its 100,000 events. */
	sent = events_sent(2, "tok-noread");
	note("stalled reader: the provider sent %ld of 100000 events", sent);
	ck_assert_msg(sent >= 0 && sent < 50000, "the provider sent %ld events",
	    sent);
	assert_alive();
}
END_TEST

/* Many connections holding half a head each; a normal client is still
 * served at once, and every one of them gets its 408. */
START_TEST(many_slow_connections_do_not_starve_others)
{
	enum { N = 300 };
	static int fds[N];
	char *body = it_chat_body("gpt-4o", "tok-crowd", false);
	struct it_resp r;
	double t0;
	int got408 = 0;

	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect();
		ck_assert(send(fds[i], "GET /heal", 9, MSG_NOSIGNAL) == 9);
	}
	t0 = it_now_s();
	it_chat(IT_KEY_T2, body, &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	ck_assert_msg(it_now_s() - t0 < 0.5, "served in %.3f s", it_now_s() - t0);
	it_resp_free(&r);
	for (int i = 0; i < N; i++) {
		char *out = calloc(1, 1);
		size_t len = 0;

		read_some(fds[i], &out, &len, 3000);
		got408 += strncmp(out, "HTTP/1.1 408 ", 13) == 0;
		free(out);
		close(fds[i]);
	}
	ck_assert_int_eq(got408, N);
	free(body);
	assert_alive();
}
END_TEST

/* Expect: 100-continue with a body over the limit: 413, no 100. */
START_TEST(expect_continue_with_huge_length_gets_413)
{
	static const char req[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Expect: 100-continue\r\nContent-Length: 10485760\r\n\r\n";
	char *out = it_raw(it.port, req, sizeof(req) - 1, 3000);

	assert_raw_error(out, 413, "Expect with 10 MB");
	ck_assert(strstr(out, "100 Continue") == NULL);
	free(out);
	assert_alive();
}
END_TEST

/* Chunk extensions and trailer lines are bounded. */
START_TEST(chunk_extension_and_trailer_floods_are_refused)
{
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	size_t flood = 100000, hl = sizeof(head) - 1;
	char *req = malloc(hl + flood + 16);
	struct xchg x;

	/* One chunk-size line with an endless extension. */
	memcpy(req, head, hl);
	memcpy(req + hl, "2;", 2);
	memset(req + hl + 2, 'e', flood);
	xchg(req, hl + 2 + flood, 5000, &x);
	assert_raw_error(x.out, 400, "chunk extension flood");
	free(x.out);
	/* An endless trailer line. */
	memcpy(req + hl, "0\r\nX-T: ", 8);
	memset(req + hl + 8, 't', flood);
	xchg(req, hl + 8 + flood, 5000, &x);
	assert_raw_error(x.out, 400, "trailer flood");
	free(x.out);
	free(req);
	assert_alive();
}
END_TEST

/* A valid request, then a hostile one on the same connection. */
/* The record lines of the audit log that name request id. */
static int
records_of(const char *id, char **lines)
{
	char cmd[512];
	int n = 0;

	snprintf(cmd, sizeof(cmd), "cat %s/audit/audit-*.jsonl | grep -F "
	    "'\"request_id\":\"%s\"'", it_tmpdir(), id);
	*lines = NULL;
	it_run(cmd, lines, NULL);
	for (const char *l = *lines; l != NULL && *l != '\0'; l++)
		n += *l == '\n';
	return n;
}

/*
 * A client that leaves in the same turn of warden's loop in which its
 * answer came: warden is stopped (SIGSTOP) while the provider answers and
 * the client hangs up, so that both wait for it in one turn when it goes
 * on.  The transaction has ended and waits for the turn's end when its
 * client goes: its record is still written, once, and warden goes on.
 */
START_TEST(client_leaving_in_the_turn_its_answer_came_is_recorded)
{
	static const char token[] = "left-in-the-turn-5e1f";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char *body, *req, *line, *lines = NULL, id[64] = "";
	json_t *j, *idv;
	int fd, n = 0;

	body = it_chat_body("gpt-4o", "[[mock delay_ms=300]] left-in-the-turn-"
	    "5e1f", false);
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(body), body) > 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)it.port);
	ck_assert((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
	/* Sent on: the provider has it (and answers 300 ms later). */
	for (int waited = 0; !it_record_has(2, token); waited += 10) {
		ck_assert_msg(waited < 5000, "the request did not reach the "
		    "provider");
		usleep(10000);
	}
	ck_assert(kill(it.warden, SIGSTOP) == 0);
	usleep(600000);			/* the answer waits in the socket */
	close(fd);			/* and so does the client's end */
	usleep(100000);
	ck_assert(kill(it.warden, SIGCONT) == 0);

	line = it_record_find(2, token);
	ck_assert_ptr_nonnull(line);
	j = json_loads(line, 0, NULL);
	idv = json_object_get(json_object_get(j, "headers"), "x-request-id");
	ck_assert_msg(json_is_string(idv), "%s", line);
	snprintf(id, sizeof(id), "%s", json_string_value(idv));
	json_decref(j);
	free(line);
	for (int waited = 0; waited < 3000 && n == 0; waited += 50) {
		free(lines);
		if ((n = records_of(id, &lines)) == 0)
			usleep(50000);
	}
	ck_assert_msg(n == 1, "%d records of request %s:\n%s", n, id,
	    lines ? lines : "");
	ck_assert_msg(strstr(lines, "\"kind\":\"request\"") != NULL, "%s",
	    lines);
	free(lines);
	free(body);
	free(req);
	assert_alive();
}
END_TEST

START_TEST(hostile_request_after_a_good_one)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"
	    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	char *out = it_raw(it.port, req, sizeof(req) - 1, 3000), *second;

	ck_assert_msg(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
	second = strstr(out + 1, "HTTP/1.1 ");
	ck_assert_msg(second != NULL, "%s", out);
	assert_raw_error(second, 505, "pipelined HTTP/2.0");
	/* Nothing after the refused request was answered. */
	ck_assert(strstr(second + 1, "HTTP/1.1 ") == NULL);
	free(out);
	assert_alive();
}
END_TEST

/* Three requests pipelined on one connection, more than the limits let
 * warden buffer while the first is in flight: reading pauses, and must
 * resume, so all three are answered. */
START_TEST(pipelined_requests_past_the_buffer_limit_are_all_answered)
{
	static char content[59001];
	char *reqs = NULL, *out, *p;
	size_t len = 0;
	int n200 = 0;
	FILE *f = open_memstream(&reqs, &len);

	memset(content, 'x', sizeof(content) - 1);
	for (int i = 0; i < 3; i++) {
		char *body = it_chat_body("gpt-4o", i == 0 ?
		    "[[mock delay_ms=500]]" : content, false);

		fprintf(f, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
		    "Authorization: Bearer %s\r\nContent-Length: %zu\r\n%s\r\n%s",
		    IT_KEY_T2, strlen(body), i == 2 ? "Connection: close\r\n" : "",
		    body);
		free(body);
	}
	fclose(f);
	out = it_raw(it.port, reqs, len, 8000);
	for (p = out; (p = strstr(p, "HTTP/1.1 200 OK")) != NULL; p++)
		n200++;
	ck_assert_msg(n200 == 3, "%d answers of 200; the answer ends: %.300s",
	    n200, strlen(out) > 300 ? out + strlen(out) - 300 : out);
	free(out);
	free(reqs);
}
END_TEST

/* ---- issue 10: pipelining, caps, memory, outbound, /metrics ---- */

/* text with the first from replaced by to (malloc'd); from must occur. */
static char *
subst(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	ck_assert_msg(at != NULL, "config has no '%s'", from);
	ck_assert(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to,
	    at + strlen(from)) > 0);
	return out;
}

/* Rewrite the rules file (pairs of from, to; NULL ends) and restart. */
static void
restart_with(const char *from, ...)
{
	char *text = it_read_file(it.config, NULL), *next;
	const char *f, *t;
	va_list ap;

	ck_assert(text != NULL);
	va_start(ap, from);
	for (f = from; f != NULL; f = va_arg(ap, const char *)) {
		t = va_arg(ap, const char *);
		next = subst(text, f, t);
		free(text);
		text = next;
	}
	va_end(ap);
	it_write_file(it.config, text, 0600);
	free(text);
	it_stop(it.warden, SIGTERM);
	it.warden = it_warden_start(it.port);
}

/* Bodies up to 2 MiB, as a deployment would have (the default is 1),
 * and time to send 40 of them at once on a sanitizer build. */
static void
big_setup(void)
{
	it_env_start(NULL);
	restart_with("max_body_bytes: 65536\n", "max_body_bytes: 2097152\n",
	    "body_timeout_ms: 1000\n", "body_timeout_ms: 10000\n", NULL);
}

/* One answer from the front of *p: status, X-Request-Id, body.  False
 * when what is left is not a whole answer with Content-Length. */
static bool
next_answer(const char **p, const char *end, int *status, char *rid,
    size_t ridlen, const char **body, size_t *blen)
{
	const char *h = *p, *eoh, *v, *cl;
	size_t hl;

	eoh = memmem(h, (size_t)(end - h), "\r\n\r\n", 4);
	if (eoh == NULL || end - h < 12 || strncmp(h, "HTTP/1.1 ", 9) != 0)
		return false;
	hl = (size_t)(eoh - h);
	*status = atoi(h + 9);
	rid[0] = '\0';
	v = memmem(h, hl, "\r\nX-Request-Id: ", 16);
	if (v != NULL)
		snprintf(rid, ridlen, "%.*s", (int)strcspn(v + 16, "\r"), v + 16);
	cl = memmem(h, hl, "\r\nContent-Length: ", 18);
	if (cl == NULL)
		return false;
	*blen = (size_t)atol(cl + 18);
	*body = eoh + 4;
	if ((size_t)(end - *body) < *blen)
		return false;
	*p = *body + *blen;
	return true;
}

/*
 * A chat request, then 30,000 GET /healthz pipelined behind it in one
 * go.  warden used to handle each next request from inside the end of
 * the last (finish_request -> conn_process -> ... -> gw_respond ->
 * finish_request), one stack frame chain per waiting request, until the
 * worker died of SIGSEGV.  Now every answer comes back, whole, in order.
 */
START_TEST(thirty_thousand_pipelined_requests_answered_in_order)
{
	enum { N = 30000 };
	char *body = it_chat_body("gpt-4o", "tok-pipe [[mock delay_ms=300]]",
	    false), *reqs = NULL, rid[80], want[32];
	const char *p, *end, *ab;
	size_t len = 0, blen;
	struct xchg x;
	int status, n = 0;
	FILE *f = open_memstream(&reqs, &len);

	fprintf(f, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer %s\r\nX-Request-Id: pipe-chat\r\n"
	    "Content-Length: %zu\r\n\r\n%s", IT_KEY_T2, strlen(body), body);
	for (int i = 0; i < N; i++)
		fprintf(f, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: "
		    "p%d\r\n%s\r\n", i, i == N - 1 ? "Connection: close\r\n" : "");
	fclose(f);
	free(body);
	it_mock_config(2, "{\"stall_after\":null}");
	xchg(reqs, len, 25000, &x);
	ck_assert_msg(x.sent == len, "warden took %zu of %zu bytes", x.sent, len);
	p = x.out;
	end = x.out + x.outlen;
	ck_assert_msg(next_answer(&p, end, &status, rid, sizeof(rid), &ab, &blen),
	    "no whole first answer: %.300s", x.out);
	ck_assert_msg(status == 200 && strcmp(rid, "pipe-chat") == 0,
	    "first answer: %d %s", status, rid);
	ck_assert(memmem(ab, blen, "chat.completion", 15) != NULL);
	while (next_answer(&p, end, &status, rid, sizeof(rid), &ab, &blen)) {
		snprintf(want, sizeof(want), "p%d", n);
		ck_assert_msg(status == 200 && strcmp(rid, want) == 0,
		    "answer %d: status %d, request id %s", n, status, rid);
		ck_assert(blen > 0 && memmem(ab, blen, "\"ok\"", 4) != NULL);
		n++;
	}
	ck_assert_msg(n == N && p == end, "%d of %d pipelined answers; %zu "
	    "bytes left over", n, N, (size_t)(end - p));
	free(x.out);
	free(reqs);
	assert_alive();
}
END_TEST

/* Peak RSS of warden while n clients each send req (len bytes) at once
 * and read their answers; statuses[i] gets each one's status (0: none). */
static long
burst(const char *req, size_t len, int n, int *statuses, int timeout_ms)
{
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	size_t *sent = calloc((size_t)n, sizeof(*sent));
	char **out = calloc((size_t)n, sizeof(*out));
	size_t *olen = calloc((size_t)n, sizeof(*olen));
	double end = it_now_s() + timeout_ms / 1000.0, next_sample = 0;
	long peak = 0;
	int open = n;

	for (int i = 0; i < n; i++) {
		pf[i].fd = raw_connect();
		out[i] = calloc(1, 1);
	}
	while (open > 0 && it_now_s() < end) {
		if (it_now_s() >= next_sample) {
			long kb = vmrss_kb(it.warden);

			peak = kb > peak ? kb : peak;
			next_sample = it_now_s() + 0.01;
		}
		for (int i = 0; i < n; i++)
			pf[i].events = pf[i].fd < 0 ? 0 : POLLIN |
			    (sent[i] < len ? POLLOUT : 0);
		if (poll(pf, (nfds_t)n, 10) < 0)
			break;
		for (int i = 0; i < n; i++) {
			if (pf[i].fd < 0)
				continue;
			if (pf[i].revents & POLLIN) {
				char buf[16384];
				ssize_t r = recv(pf[i].fd, buf, sizeof(buf), 0);

				if (r <= 0) {
					close(pf[i].fd);
					pf[i].fd = -1;
					open--;
					continue;
				}
				out[i] = realloc(out[i], olen[i] + (size_t)r + 1);
				memcpy(out[i] + olen[i], buf, (size_t)r);
				olen[i] += (size_t)r;
				out[i][olen[i]] = '\0';
			} else if (pf[i].revents & POLLOUT) {
				size_t c = len - sent[i] > 65536 ? 65536 :
				    len - sent[i];
				ssize_t r = send(pf[i].fd, req + sent[i], c,
				    MSG_NOSIGNAL | MSG_DONTWAIT);

				if (r > 0)
					sent[i] += (size_t)r;
			} else if (pf[i].revents & (POLLERR | POLLHUP)) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open--;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		statuses[i] = strncmp(out[i], "HTTP/1.1 ", 9) == 0 ?
		    atoi(out[i] + 9) : 0;
		if (pf[i].fd >= 0)
			close(pf[i].fd);
		free(out[i]);
	}
	free(pf);
	free(sent);
	free(out);
	free(olen);
	return peak;
}

/* A status in st other than want, or want. */
static int
other(const int *st, int n, int want)
{
	for (int i = 0; i < n; i++)
		if (st[i] != want)
			return st[i];
	return want;
}

/* warden's RSS once it has settled (falls for up to 3 s). */
static long
settled_rss_kb(long target)
{
	long kb = vmrss_kb(it.warden);

	for (int i = 0; i < 60 && kb > target; i++) {
		usleep(50000);
		kb = vmrss_kb(it.warden);
	}
	return kb;
}

/*
 * 40 clients at once, each with 1 MB of tiny JSON values, to a provider
 * that never answers.  jansson used to build a tree of 500,000 values for
 * each (RSS from 65 MB to 855 MB, 741 MB after); now a cheap count
 * refuses each body (413 too_many_json_values) before anything parses
 * it.  Then 40 bodies of 1 MB that pass (one long string each) are held
 * by the stalled provider until its deadline: memory comes back after.
 */
START_TEST(burst_of_large_bodies_keeps_memory_bounded)
{
	enum { N = 40, BODY = 1000000 };
	const char *asan = strstr(getenv("WARDEN_BIN"), "asan");
	long during_kb = asan ? 1024 * 1024 : 160 * 1024;
	long after_kb = asan ? 512 * 1024 : 24 * 1024;
	char *body = malloc(BODY + 1), *req;
	int st[N], n413 = 0, n504 = 0;
	long base, peak, after;
	size_t len, off;
	struct it_resp r;

	/* Warm up: one request of each kind the burst will make. */
	it_chat(IT_KEY_T2, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"warm\"}]}", &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_mock_config(2, "{\"stall_after\":0}");
	base = vmrss_kb(it.warden);

	off = (size_t)sprintf(body, "{\"model\":\"gpt-4o\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"x\"}],\"pad\":[0");
	while (off < BODY - 4)
		off += (size_t)sprintf(body + off, ",0");
	off += (size_t)sprintf(body + off, "]}");
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", IT_KEY_T2, off, body) > 0);
	len = strlen(req);
	peak = burst(req, len, N, st, 20000);
	for (int i = 0; i < N; i++)
		n413 += st[i] == 413;
	after = settled_rss_kb(base + after_kb / 2);
	note("burst of tiny values: RSS %ld kB, peak %ld kB, after %ld kB",
	    base, peak, after);
	ck_assert_msg(n413 == N, "%d of %d got 413; one got %d", n413, N,
	    other(st, N, 413));
	ck_assert_msg(peak - base < during_kb, "RSS went from %ld kB to %ld kB "
	    "during the burst", base, peak);
	ck_assert_msg(after - base < after_kb, "RSS %ld kB after the burst, "
	    "%ld kB before", after, base);
	free(req);

	/* Bodies that pass, held by the provider until its deadline. */
	off = (size_t)sprintf(body, "{\"model\":\"gpt-4o\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"");
	memset(body + off, 'y', BODY - off - 10);
	off = BODY - 10;
	off += (size_t)sprintf(body + off, "\"}]}");
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", IT_KEY_T2, off, body) > 0);
	len = strlen(req);
	base = vmrss_kb(it.warden);
	peak = burst(req, len, N, st, 20000);
	for (int i = 0; i < N; i++)
		n504 += st[i] == 504;
	after = settled_rss_kb(base + after_kb / 2);
	note("burst of held bodies: RSS %ld kB, peak %ld kB, after %ld kB",
	    base, peak, after);
	ck_assert_msg(n504 == N, "%d of %d got 504 (provider timeout); one "
	    "got %d", n504, N, other(st, N, 504));
	ck_assert_msg(peak - base < 2 * during_kb, "RSS went from %ld kB to "
	    "%ld kB while bodies were held", base, peak);
	ck_assert_msg(after - base < after_kb, "RSS %ld kB after the held "
	    "burst, %ld kB before", after, base);
	/* Just under the value cap (the default, 50,000): each is parsed
	 * into a tree, and held. */
	off = (size_t)sprintf(body, "{\"model\":\"gpt-4o\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"x\"}],\"pad\":[0");
	for (int i = 0; i < 49900; i++)
		off += (size_t)sprintf(body + off, ",0");
	off += (size_t)sprintf(body + off, "]}");
	free(req);
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", IT_KEY_T2, off, body) > 0);
	len = strlen(req);
	base = vmrss_kb(it.warden);
	peak = burst(req, len, N, st, 20000);
	n504 = 0;
	for (int i = 0; i < N; i++)
		n504 += st[i] == 504;
	after = settled_rss_kb(base + after_kb / 2);
	note("burst of values under the cap: RSS %ld kB, peak %ld kB, after "
	    "%ld kB", base, peak, after);
	ck_assert_msg(n504 == N, "%d of %d got 504; one got %d", n504, N,
	    other(st, N, 504));
	ck_assert_msg(peak - base < 2 * during_kb, "RSS went from %ld kB to "
	    "%ld kB while parsed bodies were held", base, peak);
	ck_assert_msg(after - base < after_kb, "RSS %ld kB after, %ld kB "
	    "before", after, base);
	it_mock_config(2, "{\"stall_after\":null}");
	free(req);
	free(body);
	assert_alive();
}
END_TEST

/* Small caps, one worker, to see each of them bite. */
static void
caps_setup(void)
{
	it_env_start("  max_connections: 8\n  max_inflight: 3\n"
	    "  max_inflight_per_key: 2\n  max_json_values: 1000\n");
	restart_with("workers: 2\n", "workers: 1\n", NULL);
}

/* Send a whole chat request on a new connection; its answer is read
 * later (read_some). */
static int
start_chat(const char *key, const char *content)
{
	char *body = it_chat_body("gpt-4o", content, false), *req;
	int fd = raw_connect();
	size_t len;

	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", key, strlen(body), body) > 0);
	len = strlen(req);
	ck_assert(send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len);
	free(req);
	free(body);
	return fd;
}

static void
assert_error_code(const struct it_resp *r, long status, const char *code)
{
	it_assert_error(r, status, NULL, code, NULL);
}

/* The same caps on two workers: max_inflight_per_key counts per process,
 * so six requests of one key, spread by the kernel over both workers'
 * listeners (SO_REUSEPORT), get two answers and four 429s, not two per
 * worker. */
static void
caps2_setup(void)
{
	it_env_start("  max_connections: 8\n  max_inflight: 3\n"
	    "  max_inflight_per_key: 2\n  max_json_values: 1000\n");
}

START_TEST(inflight_per_key_cap_counts_across_workers)
{
	int fds[6], ok = 0, busy = 0;

	for (int i = 0; i < 6; i++) {
		char content[64];

		snprintf(content, sizeof(content),
		    "tok-cap2-%d [[mock delay_ms=1200]]", i);
		fds[i] = start_chat(IT_KEY_T2, content);
	}
	for (int i = 0; i < 6; i++) {
		char *out = NULL;
		size_t len = 0;

		read_some(fds[i], &out, &len, 5000);
		ck_assert_msg(out != NULL, "request %d: no answer", i);
		if (strncmp(out, "HTTP/1.1 200", 12) == 0)
			ok++;
		else if (strncmp(out, "HTTP/1.1 429", 12) == 0 &&
		    strstr(out, "too_many_requests_in_flight") != NULL)
			busy++;
		else
			ck_abort_msg("request %d: %.200s", i, out);
		free(out);
		close(fds[i]);
	}
	ck_assert_msg(ok == 2 && busy == 4, "%d answered, %d refused", ok,
	    busy);
	assert_alive();
}
END_TEST

/* max_inflight_per_key: the third request of a key that has two in
 * flight gets 429; another key is served meanwhile. */
START_TEST(inflight_per_key_cap_gives_429)
{
	int a = start_chat(IT_KEY_T2, "tok-cap-a [[mock delay_ms=1200]]");
	int b = start_chat(IT_KEY_T2, "tok-cap-b [[mock delay_ms=1200]]");
	char *out = NULL, *body;
	size_t len = 0;
	struct it_resp r;

	usleep(300000);
	body = it_chat_body("gpt-4o", "tok-cap-c", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_error_code(&r, 429, "too_many_requests_in_flight");
	ck_assert(!it_record_has(2, "tok-cap-c"));
	it_resp_free(&r);
	free(body);
	body = it_chat_body("gpt-4o", "tok-cap-other", false);
	it_chat(IT_KEY_T1, body, &r);
	ck_assert_msg(r.status == 200, "other key: %ld %s", r.status, r.body);
	it_resp_free(&r);
	free(body);
	read_some(a, &out, &len, 5000);
	ck_assert_msg(out != NULL && strncmp(out, "HTTP/1.1 200", 12) == 0,
	    "%s", out);
	free(out);
	out = NULL;
	len = 0;
	read_some(b, &out, &len, 5000);
	ck_assert_msg(out != NULL && strncmp(out, "HTTP/1.1 200", 12) == 0,
	    "%s", out);
	free(out);
	close(a);
	close(b);
	/* The places were given back. */
	body = it_chat_body("gpt-4o", "tok-cap-d", false);
	it_chat(IT_KEY_T2, body, &r);
	ck_assert_msg(r.status == 200, "after: %ld %s", r.status, r.body);
	it_resp_free(&r);
	free(body);
}
END_TEST

/* max_inflight (per worker): the fourth request in flight gets 503. */
START_TEST(inflight_per_worker_cap_gives_503)
{
	int fds[3] = {
		start_chat(IT_KEY_T1, "tok-w-1 [[mock delay_ms=1200]]"),
		start_chat(IT_KEY_T2, "tok-w-2 [[mock delay_ms=1200]]"),
		start_chat(IT_KEY_T3, "tok-w-3 [[mock delay_ms=1200]]"),
	};
	char *body, hv[32];
	struct it_resp r;

	usleep(300000);
	body = it_chat_body("gpt-4o", "tok-w-4", false);
	it_chat(IT_KEY_T1, body, &r);
	assert_error_code(&r, 503, "server_busy");
	ck_assert(it_resp_header(&r, "Retry-After", hv, sizeof(hv)) != NULL);
	it_resp_free(&r);
	/* Small endpoints are not capped: health checks still answer. */
	assert_alive();
	for (int i = 0; i < 3; i++) {
		char *out = NULL;
		size_t len = 0;

		read_some(fds[i], &out, &len, 5000);
		ck_assert_msg(out != NULL && strncmp(out, "HTTP/1.1 200", 12) == 0,
		    "%d: %s", i, out);
		free(out);
		close(fds[i]);
	}
	it_chat(IT_KEY_T1, body, &r);
	ck_assert_msg(r.status == 200, "after: %ld %s", r.status, r.body);
	it_resp_free(&r);
	free(body);
}
END_TEST

/* max_connections (per worker): the ninth open connection gets a 503 in
 * the OpenAI error shape, and is closed. */
START_TEST(connection_cap_gives_503)
{
	int fds[8];
	char *out = NULL;
	size_t len = 0;
	int extra;

	for (int i = 0; i < 8; i++)
		fds[i] = raw_connect();
	usleep(100000);
	extra = raw_connect();
	read_some(extra, &out, &len, 3000);
	ck_assert_msg(out != NULL, "no answer on the connection over the cap");
	assert_raw_error(out, 503, "connection over the cap");
	ck_assert(strstr(out, "server_busy") != NULL);
	free(out);
	close(extra);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	usleep(200000);
	assert_alive();
}
END_TEST

/* max_json_values: counted before parsing; 413 with its code. */
START_TEST(json_value_cap_gives_413)
{
	char *body = malloc(8192);
	size_t off;
	struct it_resp r;

	off = (size_t)sprintf(body, "{\"model\":\"gpt-4o\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"tok-values\"}],\"pad\":[1");
	for (int i = 0; i < 1200; i++)
		off += (size_t)sprintf(body + off, ",1");
	sprintf(body + off, "]}");
	it_chat(IT_KEY_T2, body, &r);
	assert_error_code(&r, 413, "too_many_json_values");
	ck_assert(!it_record_has(2, "tok-values"));
	it_resp_free(&r);
	/* Commas and brackets inside strings are not values. */
	off = (size_t)sprintf(body, "{\"model\":\"gpt-4o\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"tok-values-ok ");
	for (int i = 0; i < 1200; i++)
		off += (size_t)sprintf(body + off, ",[{\\\"");
	sprintf(body + off, "\"}]}");
	it_chat(IT_KEY_T2, body, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	free(body);
}
END_TEST

/* An unknown key is refused from the head: 401 before any of a large
 * body is sent, and the connection closes. */
START_TEST(unknown_key_refused_before_the_body)
{
	static const char head[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer wk-not-a-key\r\n"
	    "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
	int fd = raw_connect();
	char *out = NULL;
	size_t len = 0;
	double t0 = it_now_s();

	ck_assert(send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL) ==
	    (ssize_t)sizeof(head) - 1);
	read_some(fd, &out, &len, 3000);
	ck_assert_msg(out != NULL, "no answer without the body");
	/* Before body_timeout_ms (1 s) could have given a 408. */
	ck_assert_msg(it_now_s() - t0 < 0.8, "took %.3f s", it_now_s() - t0);
	assert_raw_error(out, 401, "unknown key, body not sent");
	ck_assert(strstr(out, "invalid_api_key") != NULL);
	free(out);
	close(fd);
	assert_alive();
}
END_TEST

/* Endpoints other than chat completions read no body: a large one is
 * refused (these requests are not counted in flight, so bodies held
 * for them would be memory no cap bounds). */
START_TEST(small_endpoints_refuse_large_bodies)
{
	static const char head[] = "POST /healthz HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 30000\r\n\r\n";
	static char chunked[40000];
	char *out;
	int n;

	out = it_raw(it.port, head, sizeof(head) - 1, 2000);
	assert_raw_error(out, 413, "30 kB body to /healthz");
	ck_assert(strstr(out, "body_not_expected") != NULL);
	free(out);
	n = snprintf(chunked, sizeof(chunked), "GET /v1/models HTTP/1.1\r\n"
	    "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 5; i++) {
		n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "1000\r\n");
		memset(chunked + n, 'x', 4096);
		n += 4096;
		n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "\r\n");
	}
	out = it_raw(it.port, chunked, (size_t)n, 2000);
	assert_raw_error(out, 413, "20 kB chunked body to /v1/models");
	free(out);
	assert_alive();
}
END_TEST

/* A loopback listener that counts the connections it accepts. */
struct trap {
	int fd, port;
};

static void
trap_open(struct trap *t)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert(t->fd >= 0);
	ck_assert(bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(listen(t->fd, 64) == 0);
	ck_assert(getsockname(t->fd, (struct sockaddr *)&sa, &sl) == 0);
	t->port = ntohs(sa.sin_port);
}

/* How many connections came, and what the first one said. */
static int
trap_count(struct trap *t, char *first, size_t flen)
{
	int n = 0, c;

	first[0] = '\0';
	while ((c = accept(t->fd, NULL, NULL)) >= 0) {
		if (n++ == 0) {
			struct pollfd p = { .fd = c, .events = POLLIN };
			ssize_t r;

			if (poll(&p, 1, 500) > 0 &&
			    (r = recv(c, first, flen - 1, 0)) > 0)
				first[r] = '\0';
		}
		close(c);
	}
	return n;
}

/* A chat through a warden on port; status and body to out. */
static void
chat_on(int port, const char *key, const char *content, struct it_resp *out)
{
	char url[128], *body = it_chat_body("gpt-4o", content, false);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    port);
	it_chat_at(url, key, NULL, body, 10000, out);
	free(body);
}

/*
 * Proxy variables in warden's environment are not used: prompts and the
 * provider credential went to whatever http_proxy said, shown by no rule,
 * policy version or record.
 */
START_TEST(proxy_variables_in_the_environment_are_ignored)
{
	struct trap t;
	char proxy[64], first[512];
	struct it_resp r;
	pid_t w2;
	int port = it_free_port(), n;

	trap_open(&t);
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", t.port);
	/* Every name curl reads (it takes HTTP_PROXY only in lower case). */
	setenv("http_proxy", proxy, 1);
	setenv("HTTPS_PROXY", proxy, 1);
	setenv("https_proxy", proxy, 1);
	setenv("ALL_PROXY", proxy, 1);
	setenv("all_proxy", proxy, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	w2 = it_warden_start(port);
	/* Only warden has them: this test's own curl goes direct. */
	unsetenv("http_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("https_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	chat_on(port, IT_KEY_T2, "tok-envproxy", &r);
	n = trap_count(&t, first, sizeof(first));
	it_stop(w2, SIGTERM);
	ck_assert_msg(n == 0, "the proxy from the environment got %d "
	    "connection(s): %.200s", n, first);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert(it_record_has(2, "tok-envproxy"));
	it_resp_free(&r);
	close(t.fd);
}
END_TEST

/* All audit records under dir that hold token, as one JSON text. */
static char *
audit_lines(const char *dir, const char *token)
{
	char cmd[600], *out = NULL, line[65536];
	size_t len = 0;
	FILE *p, *o = open_memstream(&out, &len);

	snprintf(cmd, sizeof(cmd), "cat '%s'/audit-*.jsonl 2>/dev/null", dir);
	p = popen(cmd, "r");
	ck_assert(p != NULL);
	while (fgets(line, sizeof(line), p) != NULL)
		if (strstr(line, token) != NULL ||
		    strstr(line, "\"kind\":\"request\"") != NULL)
			fputs(line, o);
	pclose(p);
	fclose(o);
	return out;
}

/*
 * An explicit upstream.proxy is used (the mock provider takes proxy-form
 * requests: the answer comes through it for a host that does not exist),
 * is part of the policy version, and is named in the audit record.
 */
START_TEST(explicit_upstream_proxy_is_used_and_recorded)
{
	char proxy_line[96], us_url[96], auditdir[300], *rec, hv[80], v1[80];
	char *line;
	struct it_resp r;
	pid_t w2;
	int port = it_free_port();

	chat_on(it.port, IT_KEY_T2, "tok-before-proxy", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(it_resp_header(&r, "X-Warden-Policy-Version", v1,
	    sizeof(v1)) != NULL);
	it_resp_free(&r);
	snprintf(proxy_line, sizeof(proxy_line),
	    "upstream:\n  proxy: 'http://127.0.0.1:%d'\n", it.mock_port[0]);
	snprintf(us_url, sizeof(us_url), "'http://127.0.0.1:%d/v1'",
	    it.mock_port[2]);
	{
		char *text = it_read_file(it.config, NULL), *a, *b;

		a = subst(text, "upstream:\n", proxy_line);
		/* Plain http off loopback: the route must say so. */
		b = subst(a, us_url, "'http://p-us.invalid:8443/v1', "
		    "insecure_http: true");
		it_write_file(it.config, b, 0600);
		free(text);
		free(a);
		free(b);
	}
	w2 = it_warden_start(port);
	chat_on(port, IT_KEY_T2, "tok-via-proxy", &r);
	it_stop(w2, SIGTERM);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	/* The answer came from the mock acting as the proxy ... */
	ck_assert_msg(strstr(r.body, "eu:") != NULL, "%s", r.body);
	line = it_record_find(0, "tok-via-proxy");
	ck_assert(line != NULL);
	/* ... for the host that only the proxy could reach. */
	ck_assert_msg(strstr(line, "\"host\":\"p-us.invalid:8443\"") != NULL,
	    "%s", line);
	free(line);
	ck_assert(it_resp_header(&r, "X-Warden-Policy-Version", hv,
	    sizeof(hv)) != NULL);
	ck_assert_msg(strcmp(hv, v1) != 0, "the proxy did not change the "
	    "policy version");
	it_resp_free(&r);
	snprintf(auditdir, sizeof(auditdir), "%s/audit-%d", it_tmpdir(), port);
	rec = audit_lines(auditdir, "tok-via-proxy");
	snprintf(proxy_line, sizeof(proxy_line),
	    "\"upstream_proxy\":\"http://127.0.0.1:%d\"", it.mock_port[0]);
	ck_assert_msg(rec != NULL && strstr(rec, proxy_line) != NULL,
	    "no record names the proxy: %.500s", rec ? rec : "");
	free(rec);
}
END_TEST

/* A non-loopback address of this host, or "" */
static void
other_address(char *out, size_t len)
{
	struct ifaddrs *ifs, *i;

	out[0] = '\0';
	ck_assert(getifaddrs(&ifs) == 0);
	for (i = ifs; i != NULL; i = i->ifa_next) {
		struct sockaddr_in *sa = (struct sockaddr_in *)i->ifa_addr;

		if (sa == NULL || sa->sin_family != AF_INET ||
		    (ntohl(sa->sin_addr.s_addr) >> 24) == 127)
			continue;
		inet_ntop(AF_INET, &sa->sin_addr, out, (socklen_t)len);
		break;
	}
	freeifaddrs(ifs);
}

/*
 * /metrics: loopback callers, or a metrics key; others get 401 (no key)
 * or 403 (another key) in the OpenAI error shape.
 */
START_TEST(metrics_need_loopback_or_a_metrics_key)
{
	char addr[64], url[128], mline[200], hex[65], argl[64], auditdir[300];
	unsigned char d[32];
	const char *mk[] = { "Authorization: Bearer wk-metrics-reader", NULL };
	const char *tk[] = { "Authorization: Bearer " IT_KEY_T1, NULL };
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", it.config,
		"--listen", argl, "--audit-dir", auditdir, "--dev-credentials",
		NULL };
	struct it_resp r;
	int port = it_free_port();
	pid_t w2;

	other_address(addr, sizeof(addr));
	ck_assert_msg(addr[0] != '\0', "this host has no non-loopback IPv4 "
	    "address to test from");
	wd_sha256("wk-metrics-reader", 17, d);
	wd_hex(d, 32, hex);
	snprintf(mline, sizeof(mline), "  metrics_keys: ['sha256:%s']\n", hex);
	{
		char *text = it_read_file(it.config, NULL), *a, with[256];

		snprintf(with, sizeof(with), "  workers: 2\n%s", mline);
		a = subst(text, "  workers: 2\n", with);
		it_write_file(it.config, a, 0600);
		free(a);
		free(text);
	}
	snprintf(argl, sizeof(argl), "0.0.0.0:%d", port);
	snprintf(auditdir, sizeof(auditdir), "%s/audit-m%d", it_tmpdir(), port);
	w2 = it_spawn(argv, it.warden_log);
	ck_assert(it_wait_port(port, 5000));
	/* Loopback: served. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	it_http("GET", url, NULL, NULL, 5000, &r);
	ck_assert_msg(r.status == 200, "loopback: %ld", r.status);
	it_resp_free(&r);
	/* From another address: no key, a tenant's key, the metrics key. */
	snprintf(url, sizeof(url), "http://%s:%d/metrics", addr, port);
	it_http("GET", url, NULL, NULL, 5000, &r);
	assert_error_code(&r, 401, "metrics_key_required");
	ck_assert(strstr(r.body, "warden_") == NULL);
	it_resp_free(&r);
	it_http("GET", url, tk, NULL, 5000, &r);
	assert_error_code(&r, 403, "metrics_forbidden");
	it_resp_free(&r);
	it_http("GET", url, mk, NULL, 5000, &r);
	ck_assert_msg(r.status == 200, "metrics key: %ld %s", r.status, r.body);
	it_resp_free(&r);
	it_stop(w2, SIGTERM);
}
END_TEST

Suite *
suite_hostile(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("hostile");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, slowloris_gets_408_and_others_are_served);
	tcase_add_test(tc, client_leaving_in_the_turn_its_answer_came_is_recorded);
	tcase_add_test(tc, body_that_never_ends_gets_408);
	tcase_add_test(tc, ten_mb_body_with_length_gets_413_fast);
	tcase_add_test(tc, ten_mb_chunked_body_gets_413);
	tcase_add_test(tc, hundred_thousand_headers_get_431);
	tcase_add_test(tc, too_many_small_headers_get_431);
	tcase_add_test(tc, bad_json_strings_get_400);
	tcase_add_test(tc, raw_nul_in_json_string_gets_400);
	tcase_add_test(tc, deeply_nested_json_is_refused);
	tcase_add_test(tc, duplicate_model_key_is_refused);
	tcase_add_test(tc, sse_line_of_100mb_ends_with_error_event);
	tcase_add_test(tc, malformed_heads_are_refused);
	tcase_add_test(tc, endless_request_line_gets_431);
	tcase_add_test(tc, stalled_stream_reader_does_not_grow_memory);
	tcase_add_test(tc, many_slow_connections_do_not_starve_others);
	tcase_add_test(tc, expect_continue_with_huge_length_gets_413);
	tcase_add_test(tc, chunk_extension_and_trailer_floods_are_refused);
	tcase_add_test(tc, hostile_request_after_a_good_one);
	tcase_add_test(tc, pipelined_requests_past_the_buffer_limit_are_all_answered);
	suite_add_tcase(s, tc);

	/* Deployment-sized bodies (2 MiB). */
	tc = tcase_create("hostile-big");
	tcase_add_unchecked_fixture(tc, big_setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, burst_of_large_bodies_keeps_memory_bounded);
	tcase_add_test(tc, thirty_thousand_pipelined_requests_answered_in_order);
	suite_add_tcase(s, tc);

	/* Small caps on one worker. */
	tc = tcase_create("hostile-caps");
	tcase_add_unchecked_fixture(tc, caps_setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, inflight_per_key_cap_gives_429);
	tcase_add_test(tc, inflight_per_worker_cap_gives_503);
	tcase_add_test(tc, connection_cap_gives_503);
	tcase_add_test(tc, json_value_cap_gives_413);
	tcase_add_test(tc, unknown_key_refused_before_the_body);
	tcase_add_test(tc, small_endpoints_refuse_large_bodies);
	suite_add_tcase(s, tc);

	/* The per-key cap on two workers. */
	tc = tcase_create("hostile-caps2");
	tcase_add_unchecked_fixture(tc, caps2_setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, inflight_per_key_cap_counts_across_workers);
	suite_add_tcase(s, tc);

	/* Outbound: proxies; /metrics access. Each rewrites the rules. */
	tc = tcase_create("hostile-outbound");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, proxy_variables_in_the_environment_are_ignored);
	tcase_add_test(tc, explicit_upstream_proxy_is_used_and_recorded);
	tcase_add_test(tc, metrics_need_loopback_or_a_metrics_key);
	suite_add_tcase(s, tc);
	return s;
}
