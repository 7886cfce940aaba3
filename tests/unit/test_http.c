/*
 * test_http.c - gateway/http_parse.c: request heads (gw_http_parse_head,
 * gw_http_header) and chunked bodies (gw_chunked_decode).
 *
 * Every rejection is checked with the exact status warden answers, since
 * that status is what a client (or a smuggling attempt) sees.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "gateway/http.h"
#include "tests/json_count_ref.h"
#include "tests/unit/suites.h"

static const struct gw_http_limits deflim = {
	.max_header_bytes = 8192,
	.max_headers = 16,
	.max_body_bytes = 1024,
};

/* Parse a NUL-terminated head with the default limits. */
static enum wd_err
parse(const char *head, struct gw_http_req *req, int *status)
{
	const char *why = NULL;
	enum wd_err rc;

	rc = gw_http_parse_head(head, strlen(head), &deflim, req, status, &why);
	if (rc == WD_OK) {
		ck_assert_int_eq(*status, 0);
		ck_assert_ptr_null(why);
	} else {
		ck_assert_ptr_nonnull(why);
	}
	return rc;
}

/* ---- request heads: accepted ---- */

START_TEST(head_valid_get)
{
	struct gw_http_req req;
	int status = -1;

	ck_assert_int_eq(parse("GET /v1/models?limit=2&x=y HTTP/1.1\r\n"
	    "Host: gw.example\r\n"
	    "User-Agent: unit/1.0\r\n"
	    "Accept: */*\r\n\r\n", &req, &status), WD_OK);
	ck_assert_int_eq(req.method, GW_M_GET);
	ck_assert_str_eq(req.method_name, "GET");
	ck_assert_str_eq(req.target, "/v1/models?limit=2&x=y");
	ck_assert_str_eq(req.path, "/v1/models");
	ck_assert_int_eq(req.minor, 1);
	ck_assert_uint_eq(req.nhdrs, 3);
	ck_assert_str_eq(req.hdrs[0].name, "Host");
	ck_assert_str_eq(req.hdrs[0].value, "gw.example");
	ck_assert_str_eq(req.hdrs[1].name, "User-Agent");
	ck_assert_str_eq(req.hdrs[1].value, "unit/1.0");
	ck_assert_str_eq(req.hdrs[2].name, "Accept");
	ck_assert_str_eq(req.hdrs[2].value, "*/*");
	ck_assert_int_eq(req.content_length, -1);
	ck_assert(!req.chunked);
	ck_assert(req.keep_alive);
	ck_assert(!req.expect_continue);
	gw_http_req_clear(&req);
	ck_assert_ptr_null(req.head);
	ck_assert_int_eq(req.content_length, -1);
}
END_TEST

START_TEST(head_valid_post)
{
	struct gw_http_req req;
	int status = -1;

	ck_assert_int_eq(parse("POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: gw\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 42\r\n"
	    "Authorization: Bearer wk-abc\r\n\r\n", &req, &status), WD_OK);
	ck_assert_int_eq(req.method, GW_M_POST);
	ck_assert_str_eq(req.method_name, "POST");
	ck_assert_str_eq(req.target, "/v1/chat/completions");
	ck_assert_str_eq(req.path, "/v1/chat/completions");
	ck_assert_int_eq(req.content_length, 42);
	ck_assert(!req.chunked);
	ck_assert(req.keep_alive);
	ck_assert_uint_eq(req.nhdrs, 4);
	gw_http_req_clear(&req);
}
END_TEST

START_TEST(head_valid_chunked_and_expect)
{
	struct gw_http_req req;
	int status = -1;

	ck_assert_int_eq(parse("POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: gw\r\n"
	    "Transfer-Encoding: Chunked\r\n"
	    "Expect: 100-Continue\r\n\r\n", &req, &status), WD_OK);
	ck_assert(req.chunked);
	ck_assert_int_eq(req.content_length, -1);
	ck_assert(req.expect_continue);
	gw_http_req_clear(&req);
}
END_TEST

START_TEST(head_other_methods)
{
	static const struct {
		const char *name;
		enum gw_method m;
	} cases[] = {
		{ "HEAD", GW_M_HEAD }, { "PUT", GW_M_PUT },
		{ "DELETE", GW_M_DELETE }, { "OPTIONS", GW_M_OPTIONS },
		{ "PATCH", GW_M_PATCH }, { "BREW", GW_M_OTHER },
		{ "get", GW_M_OTHER },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char head[128];
		struct gw_http_req req;
		int status;

		snprintf(head, sizeof(head), "%s / HTTP/1.1\r\nHost: a\r\n\r\n",
		    cases[i].name);
		ck_assert_int_eq(parse(head, &req, &status), WD_OK);
		ck_assert_int_eq(req.method, cases[i].m);
		ck_assert_str_eq(req.method_name, cases[i].name);
		gw_http_req_clear(&req);
	}
}
END_TEST

START_TEST(head_header_lookup_ignores_case)
{
	struct gw_http_req req;
	int status;

	ck_assert_int_eq(parse("GET / HTTP/1.1\r\n"
	    "hOsT: a\r\n"
	    "X-Request-ID: first\r\n"
	    "x-request-id: second\r\n"
	    "AUTHORIZATION: Bearer k\r\n\r\n", &req, &status), WD_OK);
	ck_assert_str_eq(gw_http_header(&req, "Host"), "a");
	ck_assert_str_eq(gw_http_header(&req, "HOST"), "a");
	ck_assert_str_eq(gw_http_header(&req, "authorization"), "Bearer k");
	/* The first of repeated fields. */
	ck_assert_str_eq(gw_http_header(&req, "X-REQUEST-ID"), "first");
	ck_assert_ptr_null(gw_http_header(&req, "Content-Length"));
	ck_assert_ptr_null(gw_http_header(&req, "X-Request"));
	ck_assert_ptr_null(gw_http_header(&req, "X-Request-ID2"));
	gw_http_req_clear(&req);
}
END_TEST

START_TEST(head_ows_trimmed)
{
	struct gw_http_req req;
	int status;

	ck_assert_int_eq(parse("GET / HTTP/1.1\r\n"
	    "Host:a\r\n"
	    "X-A: \t inner  value\t \t\r\n"
	    "X-B:    \r\n"
	    "X-C:\t\tv\r\n"
	    "Content-Length:  7  \r\n\r\n", &req, &status), WD_OK);
	ck_assert_str_eq(gw_http_header(&req, "Host"), "a");
	ck_assert_str_eq(gw_http_header(&req, "X-A"), "inner  value");
	ck_assert_str_eq(gw_http_header(&req, "X-B"), "");
	ck_assert_str_eq(gw_http_header(&req, "X-C"), "v");
	ck_assert_int_eq(req.content_length, 7);
	gw_http_req_clear(&req);
}
END_TEST

static const struct {
	const char *head;
	bool keep_alive;
} ka_cases[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, close\r\n\r\n", false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true },
	{ "GET / HTTP/1.0\r\n\r\n", false },
	{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
	{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true },
	{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
	{ "GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false },
};

START_TEST(head_keep_alive)
{
	struct gw_http_req req;
	int status;

	ck_assert_int_eq(parse(ka_cases[_i].head, &req, &status), WD_OK);
	ck_assert_msg(req.keep_alive == ka_cases[_i].keep_alive,
	    "keep_alive %d for %s", req.keep_alive, ka_cases[_i].head);
	gw_http_req_clear(&req);
}
END_TEST

START_TEST(head_content_length_at_limit)
{
	struct gw_http_req req;
	int status;

	ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 1024\r\n\r\n", &req, &status), WD_OK);
	ck_assert_int_eq(req.content_length, 1024);
	gw_http_req_clear(&req);
	ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0000\r\n\r\n", &req, &status), WD_OK);
	ck_assert_int_eq(req.content_length, 0);
	gw_http_req_clear(&req);
}
END_TEST

/* ---- request heads: rejected, each with its status ---- */

static const char nul_head[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";

static const struct reject {
	const char *what;
	const char *head;
	size_t len;			/* 0: strlen(head) */
	int status;
	size_t max_header_bytes;	/* 0: default */
	size_t max_headers;
	size_t max_body_bytes;
} rejects[] = {
	{ "two Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "two Content-Length, other case", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "content-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5, 5\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "Transfer-Encoding with Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "two Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "non-digit Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 12a\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: -1\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: +5\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0x10\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length:\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "blank Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length:   \r\n\r\n", 0, 400, 0, 0, 0 },
	{ "19-digit Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 9999999999999999999\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n", 0, 501, 0, 0, 0 },
	{ "Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501, 0, 0, 0 },
	{ "Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 505, 0, 0, 0 },
	{ "HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 0, 505, 0, 0, 0 },
	{ "version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "version with two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "bad version name", "GET / HTTZ/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "version with trailing text", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "no version", "GET /\r\nHost: a\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 0,
	    400, 0, 0, 0 },
	{ "header without colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "obs-fold with space", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"
	    " c\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"
	    "\tc\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "NUL in head", nul_head, sizeof(nul_head) - 1, 400, 0, 0, 0 },
	{ "bare LF inside a line", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "bare LF line ends", "GET / HTTP/1.1\nHost: a\n\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "bare CR inside a line", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "control character in value", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "DEL in value", "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "missing Host in 1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "two Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "too many headers", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n"
	    "C: 3\r\nD: 4\r\n\r\n", 0, 431, 0, 4, 0 },
	{ "head over max_header_bytes", "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
	    0, 431, 64, 0, 0 },
	{ "Content-Length over max_body_bytes", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 1025\r\n\r\n", 0, 413, 0, 0, 0 },
	{ "huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 999999999999999999\r\n\r\n", 0, 413, 0, 0, 0 },
	{ "Expect other than 100-continue", "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 1\r\nExpect: 200-ok\r\n\r\n", 0, 417, 0, 0, 0 },
	{ "absolute-form target", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "asterisk target", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "control character in target", "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "tab in target", "GET /a\tz HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "DEL in target", "GET /a\x7fz HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "high byte in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
	    0, 400, 0, 0, 0 },
	{ "leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400, 0, 0, 0 },
	{ "separator in method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400,
	    0, 0, 0 },
	{ "method longer than 16", "ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\nHost: a\r\n"
	    "\r\n", 0, 400, 0, 0, 0 },
	{ "head not ended", "GET / HTTP/1.1\r\nHost: a\r\n", 0, 400, 0, 0, 0 },
	{ "empty", "", 0, 400, 0, 0, 0 },
	{ "only the empty line", "\r\n\r\n", 0, 400, 0, 0, 0 },
};

START_TEST(head_rejected)
{
	const struct reject *c = &rejects[_i];
	struct gw_http_limits lim = deflim;
	struct gw_http_req req;
	const char *why = NULL;
	int status = -1;
	enum wd_err rc;

	if (c->max_header_bytes != 0)
		lim.max_header_bytes = c->max_header_bytes;
	if (c->max_headers != 0)
		lim.max_headers = c->max_headers;
	if (c->max_body_bytes != 0)
		lim.max_body_bytes = c->max_body_bytes;
	memset(&req, 0x5a, sizeof(req));
	rc = gw_http_parse_head(c->head, c->len ? c->len : strlen(c->head), &lim,
	    &req, &status, &why);
	ck_assert_msg(rc == WD_EPARSE, "%s: rc %d, want WD_EPARSE", c->what, rc);
	ck_assert_msg(status == c->status, "%s: status %d, want %d (%s)",
	    c->what, status, c->status, why ? why : "no reason");
	ck_assert_msg(why != NULL && why[0] != '\0', "%s: no reason", c->what);
}
END_TEST

START_TEST(head_header_count_at_limit)
{
	struct gw_http_limits lim = deflim;
	struct gw_http_req req;
	const char *why, *head = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n"
	    "C: 3\r\n\r\n";
	int status;

	lim.max_headers = 4;
	ck_assert_int_eq(gw_http_parse_head(head, strlen(head), &lim, &req,
	    &status, &why), WD_OK);
	ck_assert_uint_eq(req.nhdrs, 4);
	ck_assert_str_eq(gw_http_header(&req, "c"), "3");
	gw_http_req_clear(&req);
	/* And a head of exactly max_header_bytes is fine. */
	lim = deflim;
	lim.max_header_bytes = strlen(head);
	ck_assert_int_eq(gw_http_parse_head(head, strlen(head), &lim, &req,
	    &status, &why), WD_OK);
	gw_http_req_clear(&req);
}
END_TEST

/* ---- chunked bodies ---- */

struct dec {
	struct gw_chunked st;
	struct evbuffer *out;
	size_t used;
	enum wd_err rc;
	char body[4096];
	size_t blen;
};

/* Decode in one call; body holds what came out. */
static void
decode(struct dec *d, const char *in, size_t len, size_t max_body)
{
	memset(&d->st, 0, sizeof(d->st));
	d->out = evbuffer_new();
	ck_assert_ptr_nonnull(d->out);
	d->used = (size_t)-1;
	d->rc = gw_chunked_decode(&d->st, in, len, &d->used, d->out, max_body,
	    1024);
	d->blen = evbuffer_get_length(d->out);
	ck_assert_uint_lt(d->blen, sizeof(d->body));
	evbuffer_remove(d->out, d->body, d->blen);
	d->body[d->blen] = '\0';
	evbuffer_free(d->out);
}

START_TEST(chunked_simple)
{
	static const char in[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert_str_eq(d.body, "hello world");
	ck_assert(d.st.rd.done);
	ck_assert_uint_eq(d.used, sizeof(in) - 1);
	ck_assert_uint_eq(d.st.total, 11);
}
END_TEST

START_TEST(chunked_byte_at_a_time)
{
	static const char in[] = "5;a=b\r\nhello\r\n1a\r\n"
	    "abcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
	const size_t len = sizeof(in) - 1;
	struct gw_chunked st;
	struct evbuffer *out = evbuffer_new();
	char body[64];
	size_t total_used = 0;

	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < len; i++) {
		size_t used = 99;

		ck_assert_int_eq(gw_chunked_decode(&st, in + i, 1, &used, out,
		    1024, 1024), WD_OK);
		ck_assert_uint_eq(used, 1);
		total_used += used;
		/* Done exactly at the last byte, not before. */
		ck_assert_msg(st.rd.done == (i == len - 1), "done at byte %zu", i);
	}
	ck_assert_uint_eq(total_used, len);
	ck_assert_uint_eq(evbuffer_get_length(out), 31);
	evbuffer_remove(out, body, 31);
	body[31] = '\0';
	ck_assert_str_eq(body, "helloabcdefghijklmnopqrstuvwxyz");
	evbuffer_free(out);
}
END_TEST

/* Every split point of a body into two feeds gives the same result. */
START_TEST(chunked_any_split)
{
	static const char in[] = "3\r\nabc\r\n4;x=\"y\"\r\ndefg\r\n0\r\nT: v\r\n\r\n";
	const size_t len = sizeof(in) - 1;

	for (size_t k = 0; k <= len; k++) {
		struct gw_chunked st;
		struct evbuffer *out = evbuffer_new();
		size_t u1 = 0, u2 = 0;
		char body[16];

		memset(&st, 0, sizeof(st));
		ck_assert_int_eq(gw_chunked_decode(&st, in, k, &u1, out, 64, 64),
		    WD_OK);
		ck_assert_uint_eq(u1, k);
		ck_assert_int_eq(gw_chunked_decode(&st, in + k, len - k, &u2, out,
		    64, 64), WD_OK);
		ck_assert_uint_eq(u1 + u2, len);
		ck_assert(st.rd.done);
		ck_assert_uint_eq(evbuffer_get_length(out), 7);
		evbuffer_remove(out, body, 7);
		body[7] = '\0';
		ck_assert_str_eq(body, "abcdefg");
		evbuffer_free(out);
	}
}
END_TEST

START_TEST(chunked_extensions)
{
	static const char in[] = "5;name=value;flag\r\nhello\r\n"
	    "2 ; q=\"a b\"\r\n!!\r\n0;last\r\n\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert_str_eq(d.body, "hello!!");
	ck_assert(d.st.rd.done);
	ck_assert_uint_eq(d.used, sizeof(in) - 1);
}
END_TEST

START_TEST(chunked_extension_too_long)
{
	char in[1200];
	struct dec d;
	size_t n;

	memcpy(in, "1;", 2);
	memset(in + 2, 'x', 1100);
	n = 1102;
	memcpy(in + n, "\r\na\r\n0\r\n\r\n", 10);
	n += 10;
	decode(&d, in, n, 1024);
	ck_assert_int_eq(d.rc, WD_EPARSE);
}
END_TEST

/* The same strict reader as a provider's answers (h1_parse.c): no
 * control byte in an extension, a bounded trailer section, and a reason. */
START_TEST(chunked_control_byte_and_long_trailers)
{
	static const char ctl[] = "5;a=\x01\r\nhello\r\n0\r\n\r\n";
	size_t n = 3 + 8 * (GW_CHUNK_MAX_TRAILER / 4);
	char *in = malloc(n);
	struct gw_chunked st;
	struct evbuffer *out = evbuffer_new();
	size_t used = 0;

	ck_assert_ptr_nonnull(in);
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(gw_chunked_decode(&st, ctl, sizeof(ctl) - 1, &used,
	    out, 1024, 1024), WD_EPARSE);
	ck_assert_ptr_nonnull(strstr(st.why, "control byte"));
	/* Many short trailer lines, each under the line limit. */
	memcpy(in, "0\r\n", 3);
	for (size_t i = 3; i + 8 <= n; i += 8)
		memcpy(in + i, "X: 123\r\n", 8);
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(gw_chunked_decode(&st, in, n, &used, out, 1024, 64),
	    WD_EPARSE);
	ck_assert_msg(strstr(st.why, "trailers are too long") != NULL, "%s", st.why);
	ck_assert(!st.rd.done);
	free(in);
	evbuffer_free(out);
}
END_TEST

START_TEST(chunked_trailers)
{
	static const char in[] = "5\r\nhello\r\n0\r\n"
	    "X-Checksum: abc\r\nX-Other: 1\r\n\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert_str_eq(d.body, "hello");
	ck_assert(d.st.rd.done);
	ck_assert_uint_eq(d.used, sizeof(in) - 1);
}
END_TEST

START_TEST(chunked_trailer_incomplete)
{
	static const char in[] = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert(!d.st.rd.done);
	ck_assert_uint_eq(d.used, sizeof(in) - 1);
}
END_TEST

START_TEST(chunked_upper_case_hex)
{
	char in[512], expect[256];
	size_t n = 0;
	struct dec d;

	/* Sizes "A", "1F" and "aB": upper, and mixed case. */
	n += (size_t)snprintf(in + n, sizeof(in) - n, "A\r\n0123456789\r\n"
	    "1F\r\nabcdefghijklmnopqrstuvwxyz01234\r\naB\r\n");
	memset(in + n, 'Z', 171);
	n += 171;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n0\r\n\r\n");
	memcpy(expect, "0123456789abcdefghijklmnopqrstuvwxyz01234", 41);
	memset(expect + 41, 'Z', 171);
	expect[212] = '\0';
	decode(&d, in, n, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert(d.st.rd.done);
	ck_assert_uint_eq(d.used, n);
	ck_assert_uint_eq(d.blen, 10 + 31 + 171);
	ck_assert_str_eq(d.body, expect);
}
END_TEST

START_TEST(chunked_sixteen_hex_digits)
{
	/* 16 digits is the most a size may have; leading zeros count. */
	static const char in[] = "0000000000000003\r\nabc\r\n0\r\n\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert_str_eq(d.body, "abc");
	ck_assert(d.st.rd.done);
}
END_TEST

START_TEST(chunked_seventeen_hex_digits)
{
	static const char in[] = "00000000000000003\r\nabc\r\n0\r\n\r\n";
	static const char big[] = "10000000000000000\r\n";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_EPARSE);
	ck_assert_uint_eq(d.blen, 0);
	ck_assert(!d.st.rd.done);
	decode(&d, big, sizeof(big) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_EPARSE);
}
END_TEST

START_TEST(chunked_missing_crlf_after_data)
{
	static const char *const bad[] = {
		"5\r\nhelloX\r\n0\r\n\r\n",
		"5\r\nhello\rX0\r\n\r\n",
		"5\r\nhello\n0\r\n\r\n",
		"5\r\nhello0\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dec d;

		decode(&d, bad[i], strlen(bad[i]), 1024);
		ck_assert_msg(d.rc == WD_EPARSE, "case %zu: rc %d", i, d.rc);
		ck_assert(!d.st.rd.done);
	}
}
END_TEST

START_TEST(chunked_bad_framing)
{
	static const char *const bad[] = {
		"\r\nhello\r\n",		/* no size */
		";x\r\nhello\r\n",		/* extension without size */
		"g\r\n",			/* not hex */
		"-1\r\n",			/* sign */
		"5\nhello\r\n0\r\n\r\n",	/* bare LF after size */
		"5\rhello\r\n",			/* CR without LF */
		"5;a\nb\r\nhello\r\n",		/* LF in an extension */
		"0\r\nX: 1\nY\r\n\r\n",		/* bare LF in a trailer */
		"0\r\n\rX",			/* CR without LF at the end */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dec d;

		decode(&d, bad[i], strlen(bad[i]), 1024);
		ck_assert_msg(d.rc == WD_EPARSE, "case %zu: rc %d", i, d.rc);
		ck_assert(!d.st.rd.done);
	}
}
END_TEST

START_TEST(chunked_body_over_max)
{
	static const char over[] = "5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\n";
	static const char at[] = "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";
	static const char huge[] = "ffffffffffffffff\r\n";
	struct dec d;

	decode(&d, over, sizeof(over) - 1, 8);
	ck_assert_int_eq(d.rc, WD_ELIMIT);
	/* Nothing past the limit was decoded. */
	ck_assert_str_eq(d.body, "hello");
	ck_assert(!d.st.rd.done);
	decode(&d, at, sizeof(at) - 1, 8);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert_str_eq(d.body, "helloabc");
	ck_assert(d.st.rd.done);
	decode(&d, huge, sizeof(huge) - 1, 1 << 20);
	ck_assert_int_eq(d.rc, WD_ELIMIT);
	ck_assert_uint_eq(d.blen, 0);
}
END_TEST

START_TEST(chunked_stops_at_end_of_body)
{
	static const char in[] = "4\r\nbody\r\n0\r\n\r\n"
	    "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
	const size_t body_len = strlen("4\r\nbody\r\n0\r\n\r\n");
	struct gw_chunked st;
	struct evbuffer *out = evbuffer_new();
	size_t used = 0;

	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(gw_chunked_decode(&st, in, sizeof(in) - 1, &used, out,
	    1024, 1024), WD_OK);
	ck_assert(st.rd.done);
	ck_assert_uint_eq(used, body_len);
	ck_assert_uint_eq(evbuffer_get_length(out), 4);
	/* Once done, the decoder takes nothing more. */
	ck_assert_int_eq(gw_chunked_decode(&st, in + used, sizeof(in) - 1 - used,
	    &used, out, 1024, 1024), WD_OK);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 4);
	evbuffer_free(out);
}
END_TEST

START_TEST(chunked_stops_after_trailers_when_pipelined)
{
	static const char in[] = "1\r\nx\r\n0\r\nT: 1\r\n\r\nPOST";
	struct dec d;

	decode(&d, in, sizeof(in) - 1, 1024);
	ck_assert_int_eq(d.rc, WD_OK);
	ck_assert(d.st.rd.done);
	ck_assert_uint_eq(d.used, sizeof(in) - 1 - 4);
	ck_assert_str_eq(d.body, "x");
}
END_TEST

/* The same on long texts, where 64 bytes are counted at a time: random
 * runs of quotes, backslashes, commas and brackets (at every place of a
 * block, across blocks and across cuts) against a byte-by-byte count. */
START_TEST(json_values_counted_in_blocks_as_byte_by_byte)
{
	static const char alphabet[] = "\"\\,[{}]:ab ";
	unsigned seed = 5;
	char text[700];

	for (int round = 0; round < 4000; round++) {
		size_t len = 64 + (size_t)(rand_r(&seed) % (sizeof(text) - 64));
		int heavy = rand_r(&seed) % 4;
		size_t want, got;
		bool in, esc;
		struct gw_json_count st = { 0 };
		size_t cut = (size_t)rand_r(&seed) % (len + 1);

		for (size_t i = 0; i < len; i++) {
			/* Mostly plain text, some rounds with few backslashes. */
			int r = rand_r(&seed) % 16;

			text[i] = r < 9 ? 'a' : alphabet[(size_t)rand_r(&seed) %
			    (sizeof(alphabet) - 1)];
			if (text[i] == '\\' && heavy != 0 && rand_r(&seed) % 8)
				text[i] = ',';
		}
		want = json_count_ref(text, len, &in, &esc);
		gw_json_count_values(&st, text, cut);
		got = gw_json_count_values(&st, text + cut, len - cut);
		ck_assert_msg(got == want, "round %d (len %zu, cut %zu): %zu, "
		    "want %zu", round, len, cut, got, want);
		ck_assert(st.in_string == in && st.escape == esc);
	}
}
END_TEST

/* RFC 9110's tchar and field-vchar, byte by byte. */
START_TEST(token_and_value_bytes)
{
	for (int c = 0; c < 256; c++) {
		bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c != 0 &&
		    strchr("!#$%&'*+-.^_`|~", c) != NULL);

		ck_assert_msg(gw_http_tchar((unsigned char)c) == tchar,
		    "tchar 0x%02x", c);
		ck_assert_msg(gw_http_vchar((unsigned char)c) ==
		    (c == '\t' || (c >= 0x20 && c != 0x7f)), "vchar 0x%02x", c);
	}
}
END_TEST

START_TEST(reason_phrases)
{
	ck_assert_str_eq(gw_http_reason(400), "Bad Request");
	ck_assert_str_eq(gw_http_reason(413), "Content Too Large");
	ck_assert_str_eq(gw_http_reason(417), "Expectation Failed");
	ck_assert_str_eq(gw_http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(gw_http_reason(501), "Not Implemented");
	ck_assert_str_eq(gw_http_reason(505), "HTTP Version Not Supported");
	ck_assert_str_eq(gw_http_reason(499), "Client Error");
}
END_TEST

/* The value count admit.c runs before parsing: commas and brackets
 * outside strings, escapes followed, any cut of the input the same. */
START_TEST(json_values_are_counted_outside_strings)
{
	static const char *const texts[] = {
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
		"\"a,b,[c]{d}\"",
		"[\"q\\\",\\\\\",1,2]",
		"[0,0,0,0,0]",
	};
	static const size_t want[] = { 5, 1, 4, 6 };

	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		size_t len = strlen(texts[t]);

		for (size_t cut = 0; cut <= len; cut++) {
			struct gw_json_count st = { 0 };

			gw_json_count_values(&st, texts[t], cut);
			ck_assert_msg(gw_json_count_values(&st, texts[t] + cut,
			    len - cut) == want[t], "%s cut at %zu: %zu",
			    texts[t], cut, st.count);
		}
	}
}
END_TEST

Suite *
suite_http(void)
{
	Suite *s = suite_create("http");
	TCase *head = tcase_create("head");
	TCase *chunked = tcase_create("chunked");

	tcase_add_test(head, head_valid_get);
	tcase_add_test(head, head_valid_post);
	tcase_add_test(head, head_valid_chunked_and_expect);
	tcase_add_test(head, head_other_methods);
	tcase_add_test(head, head_header_lookup_ignores_case);
	tcase_add_test(head, head_ows_trimmed);
	tcase_add_loop_test(head, head_keep_alive, 0,
	    (int)(sizeof(ka_cases) / sizeof(ka_cases[0])));
	tcase_add_test(head, head_content_length_at_limit);
	tcase_add_loop_test(head, head_rejected, 0,
	    (int)(sizeof(rejects) / sizeof(rejects[0])));
	tcase_add_test(head, head_header_count_at_limit);
	tcase_add_test(head, reason_phrases);
	tcase_add_test(head, token_and_value_bytes);
	tcase_add_test(head, json_values_counted_in_blocks_as_byte_by_byte);
	suite_add_tcase(s, head);

	tcase_add_test(chunked, chunked_simple);
	tcase_add_test(chunked, chunked_byte_at_a_time);
	tcase_add_test(chunked, chunked_any_split);
	tcase_add_test(chunked, chunked_extensions);
	tcase_add_test(chunked, chunked_extension_too_long);
	tcase_add_test(chunked, chunked_trailers);
	tcase_add_test(chunked, chunked_control_byte_and_long_trailers);
	tcase_add_test(chunked, chunked_trailer_incomplete);
	tcase_add_test(chunked, chunked_upper_case_hex);
	tcase_add_test(chunked, chunked_sixteen_hex_digits);
	tcase_add_test(chunked, chunked_seventeen_hex_digits);
	tcase_add_test(chunked, chunked_missing_crlf_after_data);
	tcase_add_test(chunked, chunked_bad_framing);
	tcase_add_test(chunked, chunked_body_over_max);
	tcase_add_test(chunked, chunked_stops_at_end_of_body);
	tcase_add_test(chunked, chunked_stops_after_trailers_when_pipelined);
	tcase_add_test(chunked, json_values_are_counted_outside_strings);
	suite_add_tcase(s, chunked);
	return s;
}
