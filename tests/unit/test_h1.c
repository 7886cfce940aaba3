/*
 * test_h1.c - gateway/h1_parse.c: reading a provider's HTTP/1.1 answer
 * strictly (where the head ends, what it says, the body's framing however
 * the bytes are split), and which URLs warden's own client takes.
 */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/gw_int.h"
#include "gateway/h1.h"
#include "tests/unit/suites.h"

/* Parse a whole head; returns the result. */
static enum wd_err
head(const char *text, struct h1_head *h)
{
	size_t from = 0, end = 0;
	char why[160];
	enum wd_err rc;

	rc = h1_head_end(text, strlen(text), &from, &end);
	if (rc != WD_OK)
		return rc;
	ck_assert_uint_eq(end, strlen(text));
	return h1_head_parse(text, end, h, NULL, NULL, why, sizeof(why));
}

START_TEST(head_end_fed_byte_by_byte)
{
	static const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
	size_t from = 0, end = 0, n;

	/* The end is found once, at the same place, however it arrives. */
	for (n = 0; n <= strlen(a) && end == 0; n++)
		ck_assert_int_eq(h1_head_end(a, n, &from, &end), WD_OK);
	ck_assert_uint_eq(end, strlen(a) - 2);
	ck_assert_uint_eq(n - 1, strlen(a) - 2);
}
END_TEST

START_TEST(head_end_refuses_bare_lf_and_size)
{
	size_t from = 0, end = 0, big = H1_MAX_HEAD + 10;
	char *p = malloc(big);

	ck_assert_int_eq(h1_head_end("HTTP/1.1 200 OK\nA: b\r\n\r\n", 24, &from,
	    &end), WD_EPARSE);
	from = 0;
	ck_assert_int_eq(h1_head_end("HTTP/1.1 200 OK\r\n\n", 18, &from, &end),
	    WD_EPARSE);
	/* A head that never ends within the limit. */
	memcpy(p, "HTTP/1.1 200 OK\r\n", 17);
	memset(p + 17, 'a', big - 17);
	from = 0;
	ck_assert_int_eq(h1_head_end(p, big, &from, &end), WD_ELIMIT);
	free(p);
}
END_TEST

START_TEST(head_reads_status_type_and_framing)
{
	struct h1_head h;

	ck_assert_int_eq(head("HTTP/1.1 200 OK\r\nContent-Type: text/event-"
	    "stream; charset=utf-8\r\nTransfer-Encoding: Chunked\r\n\r\n", &h),
	    WD_OK);
	ck_assert_int_eq(h.status, 200);
	ck_assert_int_eq(h.minor, 1);
	ck_assert(h.has_ctype);
	ck_assert_str_eq(h.ctype, "text/event-stream; charset=utf-8");
	ck_assert_int_eq(h.framing, H1_CHUNKED);
	ck_assert(h.keep_alive);

	ck_assert_int_eq(head("HTTP/1.1 429\r\ncontent-length:  12 \r\n"
	    "Connection: keep-alive, Close\r\n\r\n", &h), WD_OK);
	ck_assert_int_eq(h.status, 429);
	ck_assert_int_eq(h.framing, H1_LENGTH);
	ck_assert_uint_eq(h.length, 12);
	ck_assert(!h.has_ctype);
	ck_assert(!h.keep_alive);

	/* Neither length nor chunked: to the end, not reused. */
	ck_assert_int_eq(head("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n", &h), WD_OK);
	ck_assert_int_eq(h.framing, H1_EOF);
	ck_assert(!h.keep_alive);
	/* HTTP/1.0 is never kept alive. */
	ck_assert_int_eq(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	    &h), WD_OK);
	ck_assert(!h.keep_alive);
	/* No body whatever the headers say. */
	ck_assert_int_eq(head("HTTP/1.1 204 No Content\r\nContent-Length: 5"
	    "\r\n\r\n", &h), WD_OK);
	ck_assert_int_eq(h.framing, H1_NONE);
	ck_assert_int_eq(head("HTTP/1.1 100 Continue\r\n\r\n", &h), WD_OK);
	ck_assert_int_eq(h.status, 100);
	ck_assert_int_eq(h.framing, H1_NONE);
	/* The same length twice is one length. */
	ck_assert_int_eq(head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	    "Content-Length: 3\r\n\r\n", &h), WD_OK);
	ck_assert_uint_eq(h.length, 3);
}
END_TEST

/* What a lenient reader would have to guess at is refused. */
START_TEST(head_refuses_ambiguity)
{
	static const char *const bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 600 High\r\n\r\n",
		"HTTP/1.1 200 O\x01K\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
		    "chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX(A): b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: b\x7f\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: b\rc\r\n\r\n",
		"HTTP/1.1 200 OK\rX\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
	};
	struct h1_head h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(head(bad[i], &h) == WD_EPARSE, "accepted: %s",
		    bad[i]);
}
END_TEST

START_TEST(head_refuses_nul_and_long_type)
{
	static const char with_nul[] = "HTTP/1.1 200 OK\r\nX-A: b\0c\r\n\r\n";
	char why[160], *t = malloc(600);
	size_t from = 0, end = 0, n;
	struct h1_head h;

	ck_assert_int_eq(h1_head_end(with_nul, sizeof(with_nul) - 1, &from,
	    &end), WD_OK);
	ck_assert_int_eq(h1_head_parse(with_nul, end, &h, NULL, NULL, why,
	    sizeof(why)), WD_EPARSE);
	strcpy(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain;a=");
	n = strlen(t);
	memset(t + n, 'x', H1_MAX_CTYPE);
	strcpy(t + n + H1_MAX_CTYPE, "\r\n\r\n");
	ck_assert_int_eq(head(t, &h), WD_EPARSE);
	free(t);
}
END_TEST

struct lines {
	char buf[512];
	int n;
};

static void
on_line(void *arg, const char *l, size_t len)
{
	struct lines *ls = arg;

	strncat(ls->buf, l, len);
	ls->n++;
}

START_TEST(head_shows_its_lines_only_when_good)
{
	static const char good[] = "HTTP/1.1 200 OK\r\nMcp-Session-Id: abc\r\n"
	    "Content-Length: 0\r\n\r\n";
	static const char bad[] = "HTTP/1.1 200 OK\r\nMcp-Session-Id: abc\r\n"
	    "Content-Length: x\r\n\r\n";
	struct lines ls = { "", 0 };
	struct h1_head h;
	char why[160];

	ck_assert_int_eq(h1_head_parse(good, strlen(good), &h, on_line, &ls,
	    why, sizeof(why)), WD_OK);
	ck_assert_int_eq(ls.n, 2);
	ck_assert_str_eq(ls.buf, "Mcp-Session-Id: abc\r\nContent-Length: 0\r\n");
	ls.n = 0;
	ls.buf[0] = '\0';
	ck_assert_int_eq(h1_head_parse(bad, strlen(bad), &h, on_line, &ls,
	    why, sizeof(why)), WD_EPARSE);
	ck_assert_int_eq(ls.n, 0);
	ck_assert_ptr_nonnull(strstr(why, "Content-Length"));
}
END_TEST

/* Run a body through the framing in pieces of `piece` bytes; returns the
 * result and puts the body bytes in out (and the bytes taken). */
static enum wd_err
body(enum h1_framing f, uint64_t len, const char *in, size_t n, size_t piece,
    char *out, size_t *outlen, size_t *taken)
{
	struct h1_head h = { .framing = f, .length = len };
	struct h1_body b;
	size_t at = 0, kept = 0;
	char why[160];

	*outlen = 0;
	h1_body_init(&b, &h);
	while (!b.done && at < n) {
		/* What one read brings: up to `piece` new bytes, after any
		 * the last step did not take (none, by the contract). */
		size_t avail = n - at < piece ? n - at : piece, used, dl;
		const char *d;
		enum wd_err rc;

		rc = h1_body_step(&b, in + at, avail, &used, &d, &dl, why,
		    sizeof(why));
		if (rc != WD_OK)
			return rc;
		ck_assert_uint_le(used, avail);
		ck_assert(used > 0 || b.done);
		if (dl > 0) {
			ck_assert(d >= in + at && d + dl <= in + at + used);
			memcpy(out + *outlen, d, dl);
			*outlen += dl;
		}
		at += used;
		kept = at;
	}
	*taken = kept;
	return b.done || f == H1_EOF ? WD_OK : WD_ELIMIT;
}

START_TEST(chunked_the_same_however_split)
{
	static const char in[] = "5;name=\"v\"\r\nhello\r\n"
	    "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "0\r\nX-Trailer: t\r\n\r\nEXTRA";
	char out[64];
	size_t outlen, taken;

	for (size_t piece = 1; piece <= sizeof(in); piece++) {
		ck_assert_int_eq(body(H1_CHUNKED, 0, in, sizeof(in) - 1, piece,
		    out, &outlen, &taken), WD_OK);
		ck_assert_uint_eq(outlen, 31);
		ck_assert(memcmp(out, "helloabcdefghijklmnopqrstuvwxyz", 31)
		    == 0);
		/* The end is where the trailers end: EXTRA is not taken. */
		ck_assert_uint_eq(taken, sizeof(in) - 1 - 5);
	}
}
END_TEST

START_TEST(chunked_refuses_broken_framing)
{
	static const char *const bad[] = {
		"x\r\nhello\r\n0\r\n\r\n",		/* not hex */
		"\r\nhello\r\n0\r\n\r\n",		/* no size */
		"5\r\nhelloX\r\n0\r\n\r\n",		/* longer than its size */
		"5\r\nhello\n0\r\n\r\n",		/* bare LF after data */
		"5\nhello\r\n0\r\n\r\n",		/* bare LF after size */
		"5 x\x01\r\nhello\r\n0\r\n\r\n",	/* control in extension */
		"10000000000000000\r\n",		/* 17 hex digits */
		"0\r\nX: a\nb\r\n\r\n",			/* bare LF in trailer */
		"-5\r\nhello\r\n0\r\n\r\n",
	};
	char out[64];
	size_t outlen, taken;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(body(H1_CHUNKED, 0, bad[i], strlen(bad[i]), 4, out,
		    &outlen, &taken) == WD_EPARSE, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(chunked_limits_extensions_and_trailers)
{
	size_t n = GW_CHUNK_MAX_TRAILER + 64, outlen, taken;
	char *in = malloc(n), out[8];

	memcpy(in, "1;", 2);
	memset(in + 2, 'e', n - 2);
	ck_assert_int_eq(body(H1_CHUNKED, 0, in, n, 100, out, &outlen, &taken),
	    WD_EPARSE);
	memcpy(in, "0\r\nX: ", 6);
	memset(in + 6, 'v', n - 6);
	ck_assert_int_eq(body(H1_CHUNKED, 0, in, n, 100, out, &outlen, &taken),
	    WD_EPARSE);
	free(in);
}
END_TEST

START_TEST(length_and_eof_framing)
{
	struct h1_head h = { .framing = H1_EOF };
	struct h1_body b;
	char out[64];
	size_t outlen, taken;

	ck_assert_int_eq(body(H1_LENGTH, 5, "helloEXTRA", 10, 3, out, &outlen,
	    &taken), WD_OK);
	ck_assert_uint_eq(outlen, 5);
	ck_assert_uint_eq(taken, 5);
	/* A body cut short is not done. */
	ck_assert_int_eq(body(H1_LENGTH, 9, "hello", 5, 3, out, &outlen,
	    &taken), WD_ELIMIT);
	ck_assert_int_eq(body(H1_EOF, 0, "all of it", 9, 2, out, &outlen,
	    &taken), WD_OK);
	ck_assert_uint_eq(outlen, 9);
	/* Only a body framed by the close ends at the close. */
	h1_body_init(&b, &h);
	ck_assert(h1_body_eof(&b));
	h.framing = H1_LENGTH;
	h.length = 3;
	h1_body_init(&b, &h);
	ck_assert(!h1_body_eof(&b));
	h.framing = H1_CHUNKED;
	h1_body_init(&b, &h);
	ck_assert(!h1_body_eof(&b));
}
END_TEST

START_TEST(url_literal_addresses_only)
{
	struct sockaddr_storage sa;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	unsigned salen;
	char host[64];
	const char *target;

	ck_assert(h1_url_literal("http://127.0.0.1:8080/v1/chat/completions",
	    &sa, &salen, host, sizeof(host), &target));
	ck_assert_int_eq(s4->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(s4->sin_port), 8080);
	ck_assert_str_eq(host, "127.0.0.1:8080");
	ck_assert_str_eq(target, "/v1/chat/completions");
	ck_assert(h1_url_literal("HTTP://10.1.2.3", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert_int_eq(ntohs(s4->sin_port), 80);
	ck_assert_str_eq(target, "/");
	ck_assert(h1_url_literal("http://10.1.2.3:80/x?api-version=1", &sa,
	    &salen, host, sizeof(host), &target));
	ck_assert_str_eq(host, "10.1.2.3");
	ck_assert_str_eq(target, "/x?api-version=1");
	ck_assert(h1_url_literal("http://[::1]:9/p", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert_int_eq(s6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(s6->sin6_port), 9);
	ck_assert_str_eq(host, "[::1]:9");
	ck_assert_uint_eq(salen, sizeof(*s6));
	/* Everything else is libcurl's. */
	ck_assert(!h1_url_literal("https://127.0.0.1/v1", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert(!h1_url_literal("http://localhost:8080/v1", &sa, &salen,
	    host, sizeof(host), &target));
	ck_assert(!h1_url_literal("http://u:p@127.0.0.1/v1", &sa, &salen,
	    host, sizeof(host), &target));
	ck_assert(!h1_url_literal("http://127.0.0.1:0/v1", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert(!h1_url_literal("http://127.0.0.1:65536/v1", &sa, &salen,
	    host, sizeof(host), &target));
	ck_assert(!h1_url_literal("http://127.0.0.1?x", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert(!h1_url_literal("http://127.0.0.1/a b", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert(!h1_url_literal("http://127.0.0.1/a#f", &sa, &salen, host,
	    sizeof(host), &target));
	ck_assert(!h1_url_literal("http://[fe80::1%25eth0]/", &sa, &salen,
	    host, sizeof(host), &target));
	ck_assert(!h1_url_literal("http://1.2.3/", &sa, &salen, host,
	    sizeof(host), &target));
}
END_TEST

/* ---- warden's client on a loop that runs in turns ---- */

static struct gw_up_xfer *
tx_start(struct gw_upstream *up, int port, const char *body,
    struct ut_xfer *xs)
{
	static char url[64];
	static const char *hdrs[1] = { "Content-Type: application/json" };
	struct gw_up_req r = { 0 };
	struct gw_up_xfer *x = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    port);
	r.url = url;
	r.headers = hdrs;
	r.nheaders = 1;
	r.body = body;
	r.body_len = strlen(body);
	r.connect_ms = r.first_byte_ms = r.idle_ms = r.total_ms = 5000;
	r.on_head = ut_xfer_head;
	r.on_data = ut_xfer_data;
	r.on_done = ut_xfer_done;
	r.arg = xs;
	ck_assert_int_eq(gw_up_start(up, &r, &x), WD_OK);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* What the provider's end of the connection has after ms: bytes (>0),
 * the connection closed (0), nothing yet (-1). */
static ssize_t
provider_reads(int fd, char *buf, size_t cap, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return recv(fd, buf, cap, 0);
}

/* Read one whole request (its body ends with `tail`) and answer it. */
static void
provider_answers(struct event_base *evb, int fd, const char *tail,
    struct ut_xfer *xs)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: 2\r\n\r\n{}";
	char buf[4096];
	size_t got = 0;

	while (got < strlen(tail) || memcmp(buf + got - strlen(tail), tail,
	    strlen(tail)) != 0) {
		ssize_t n;

		event_base_loop(evb, EVLOOP_NONBLOCK);
		n = provider_reads(fd, buf + got, sizeof(buf) - 1 - got, 10);
		ck_assert_int_ne(n, 0);
		if (n > 0)
			got += (size_t)n;
		ck_assert_uint_lt(got, sizeof(buf) - 1);
	}
	ck_assert_int_eq(send(fd, ok, sizeof(ok) - 1, 0), sizeof(ok) - 1);
	while (!xs->done)
		event_base_loop(evb, EVLOOP_ONCE);
	ck_assert_int_eq(xs->err, WD_OK);
	ck_assert_int_eq(xs->status, 200);
}

static void
nothing_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/*
 * While the worker's loop runs in turns, a request on a kept-alive
 * connection started while other events wait in the turn is not sent at
 * once but at the turn's end, with the turn's others; one aborted before
 * then is never sent, and its connection is closed, not kept for another
 * request.  The turn's last one (nothing else waits) goes at once.
 */
START_TEST(turn_requests_go_at_the_turns_end)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct event_base *evb = event_base_new();
	struct ut_xfer a = { .evb = evb }, b = a, c = a, d = a;
	struct event *other;
	struct gw_upstream *up;
	struct gw_up_xfer *xc;
	char buf[4096];
	int lfd, fd;

	ck_assert_ptr_nonnull(evb);
	ck_assert_ptr_nonnull(up = gw_upstream_new(evb));
	ck_assert_ptr_nonnull(other = event_new(evb, -1, 0, nothing_cb, NULL));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	ck_assert(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(listen(lfd, 4) == 0);
	ck_assert(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);

	/* A new connection: the request goes once it is made. */
	tx_start(up, ntohs(sa.sin_port), "{\"n\":\"first\"}", &a);
	ck_assert((fd = accept(lfd, NULL, NULL)) >= 0);
	provider_answers(evb, fd, "first\"}", &a);

	/* Kept alive: in a turn, with another event waiting, the next
	 * waits for the turn's end. */
	gw_up_turns(up, true);
	event_active(other, EV_TIMEOUT, 1);
	tx_start(up, ntohs(sa.sin_port), "{\"n\":\"second\"}", &b);
	ck_assert_int_eq(provider_reads(fd, buf, sizeof(buf), 100), -1);
	gw_up_turn_end(up);
	provider_answers(evb, fd, "second\"}", &b);

	/* Nothing else waits in the turn: it goes at once. */
	tx_start(up, ntohs(sa.sin_port), "{\"n\":\"now\"}", &d);
	ck_assert_int_gt(provider_reads(fd, buf, 1, 2000), 0);
	provider_answers(evb, fd, "now\"}", &d);

	/* Aborted before the turn's end: nothing sent, connection closed. */
	event_active(other, EV_TIMEOUT, 1);
	xc = tx_start(up, ntohs(sa.sin_port), "{\"n\":\"third\"}", &c);
	gw_up_abort(xc);
	gw_up_turn_end(up);
	ck_assert_int_eq(provider_reads(fd, buf, sizeof(buf), 2000), 0);
	ck_assert(!c.done);

	gw_up_turns(up, false);
	event_free(other);
	close(fd);
	close(lfd);
	gw_upstream_free(up);
	event_base_free(evb);
}
END_TEST

Suite *
suite_h1(void)
{
	Suite *s = suite_create("h1");
	TCase *tc = tcase_create("h1");

	tcase_add_test(tc, head_end_fed_byte_by_byte);
	tcase_add_test(tc, head_end_refuses_bare_lf_and_size);
	tcase_add_test(tc, head_reads_status_type_and_framing);
	tcase_add_test(tc, head_refuses_ambiguity);
	tcase_add_test(tc, head_refuses_nul_and_long_type);
	tcase_add_test(tc, head_shows_its_lines_only_when_good);
	tcase_add_test(tc, chunked_the_same_however_split);
	tcase_add_test(tc, chunked_refuses_broken_framing);
	tcase_add_test(tc, chunked_limits_extensions_and_trailers);
	tcase_add_test(tc, length_and_eof_framing);
	tcase_add_test(tc, url_literal_addresses_only);
	tcase_add_test(tc, turn_requests_go_at_the_turns_end);
	suite_add_tcase(s, tc);
	return s;
}
