/*
 * http_parse.c - strict HTTP/1.1 request-head and chunked-body parsing
 * (RFC 9112).  Pure functions: no I/O, no global state, fuzzed.
 *
 * Strict where ambiguity could smuggle a request or hide a header:
 * CRLF line ends only, no obsolete line folding, no whitespace before a
 * header's colon, token-only header names, one Content-Length at most,
 * never Content-Length together with Transfer-Encoding.
 */
#include "gateway/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum gw_method m;
} methods[] = {
	{ "GET", GW_M_GET }, { "HEAD", GW_M_HEAD }, { "POST", GW_M_POST },
	{ "PUT", GW_M_PUT }, { "DELETE", GW_M_DELETE },
	{ "OPTIONS", GW_M_OPTIONS }, { "PATCH", GW_M_PATCH },
};

void
gw_http_req_clear(struct gw_http_req *req)
{
	free(req->hdrs);		/* the block: head and path too */
	memset(req, 0, sizeof(*req));
	req->content_length = -1;
}

const char *
gw_http_header(const struct gw_http_req *req, const char *name)
{
	/* The first letter first (any case): most names differ there. */
	unsigned char c = (unsigned char)name[0] | 0x20;

	for (size_t i = 0; i < req->nhdrs; i++)
		if (((unsigned char)req->hdrs[i].name[0] | 0x20) == c &&
		    strcasecmp(req->hdrs[i].name, name) == 0)
			return req->hdrs[i].value;
	return NULL;
}

/* Does the comma-separated list v hold token t (case-insensitive)? */
static bool
list_has(const char *v, const char *t)
{
	size_t tl = strlen(t);

	while (*v != '\0') {
		const char *end;
		size_t n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		end = v;
		while (*end != '\0' && *end != ',')
			end++;
		n = (size_t)(end - v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(v, t, tl) == 0)
			return true;
		v = end;
	}
	return false;
}

static enum wd_err
fail(int code, const char *text, int *status, const char **why)
{
	*status = code;
	*why = text;
	return WD_EPARSE;
}

static enum wd_err
parse_request_line(char *line, struct gw_http_req *r, char *pathbuf,
    int *status, const char **why)
{
	char *sp1, *sp2, *q;
	size_t n;

	sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line || sp1 - line > 16)
		return fail(400, "malformed request line", status, why);
	*sp1 = '\0';
	for (char *c = line; c < sp1; c++)
		if (!gw_http_tchar((unsigned char)*c))
			return fail(400, "malformed method", status, why);
	r->method_name = line;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(line, methods[i].name) == 0)
			r->method = methods[i].m;
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || sp2 == sp1 + 1)
		return fail(400, "malformed request line", status, why);
	*sp2 = '\0';
	r->target = sp1 + 1;
	if (r->target[0] != '/')
		return fail(400, "request target must be a path", status, why);
	for (const char *c = r->target; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return fail(400, "invalid character in request target",
			    status, why);
	if (strncmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[6] < '0' || sp2[6] > '9' ||
	    sp2[7] != '.' || sp2[8] < '0' || sp2[8] > '9' || sp2[9] != '\0')
		return fail(400, "malformed HTTP version", status, why);
	if (sp2[6] != '1')
		return fail(505, "only HTTP/1.x is supported", status, why);
	r->minor = sp2[8] - '0';
	q = strchr(r->target, '?');
	n = q != NULL ? (size_t)(q - r->target) : strlen(r->target);
	memcpy(pathbuf, r->target, n);
	pathbuf[n] = '\0';
	r->path = pathbuf;
	return WD_OK;
}

static enum wd_err
parse_header_line(char *line, struct gw_http_req *r, int *status,
    const char **why)
{
	char *colon, *v, *end;

	if (*line == ' ' || *line == '\t')
		return fail(400, "obsolete header line folding", status, why);
	colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		return fail(400, "malformed header line", status, why);
	for (char *c = line; c < colon; c++)
		if (!gw_http_tchar((unsigned char)*c))
			return fail(400, "invalid character in header name",
			    status, why);
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	for (char *c = v; c < end; c++)
		if (!gw_http_vchar((unsigned char)*c))
			return fail(400, "invalid character in header value",
			    status, why);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	r->hdrs[r->nhdrs].name = line;
	r->hdrs[r->nhdrs].value = v;
	r->nhdrs++;
	return WD_OK;
}

/* Framing and connection semantics, once all headers are in. */
static enum wd_err
check_framing(struct gw_http_req *r, const struct gw_http_limits *lim,
    int *status, const char **why)
{
	const char *cl = NULL, *te = NULL, *conn = NULL, *expect = NULL;
	size_t nhost = 0;

	for (size_t i = 0; i < r->nhdrs; i++) {
		const char *n = r->hdrs[i].name, *v = r->hdrs[i].value;
		char f = (char)(n[0] | 0x20);

		/* The first letter first: most names are none of these. */
		if (f != 'c' && f != 't' && f != 'h' && f != 'e')
			continue;
		if (strcasecmp(n, "content-length") == 0) {
			if (cl != NULL)
				return fail(400, "more than one Content-Length",
				    status, why);
			cl = v;
		} else if (strcasecmp(n, "transfer-encoding") == 0) {
			if (te != NULL)
				return fail(400, "more than one Transfer-Encoding",
				    status, why);
			te = v;
		} else if (strcasecmp(n, "host") == 0) {
			nhost++;
		} else if (strcasecmp(n, "connection") == 0) {
			conn = v;
		} else if (strcasecmp(n, "expect") == 0) {
			expect = v;
		}
	}
	if (cl != NULL && te != NULL)
		return fail(400, "Content-Length together with Transfer-Encoding",
		    status, why);
	if (r->minor >= 1 && nhost != 1)
		return fail(400, "HTTP/1.1 needs exactly one Host header",
		    status, why);
	if (cl != NULL) {
		int64_t n = 0;

		if (*cl == '\0' || strlen(cl) > 18)
			return fail(400, "invalid Content-Length", status, why);
		for (const char *c = cl; *c != '\0'; c++) {
			if (*c < '0' || *c > '9')
				return fail(400, "invalid Content-Length", status, why);
			n = n * 10 + (*c - '0');
		}
		r->content_length = n;
	}
	if (te != NULL) {
		if (r->minor == 0)
			return fail(400, "Transfer-Encoding in HTTP/1.0", status, why);
		if (strcasecmp(te, "chunked") != 0)
			return fail(501, "only chunked transfer coding is supported",
			    status, why);
		r->chunked = true;
	}
	r->keep_alive = r->minor >= 1;
	if (conn != NULL) {
		if (list_has(conn, "close"))
			r->keep_alive = false;
		else if (r->minor == 0 && list_has(conn, "keep-alive"))
			r->keep_alive = true;
	}
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0)
			return fail(417, "only 'Expect: 100-continue' is supported",
			    status, why);
		r->expect_continue = r->minor >= 1;
	}
	(void)lim;
	return WD_OK;
}

enum wd_err
gw_http_parse_head(const char *buf, size_t len,
    const struct gw_http_limits *lim, struct gw_http_req *out, int *status,
    const char **why)
{
	struct gw_http_req r;
	char *line, *eol, *end, *pathbuf;
	size_t maxh;
	enum wd_err rc;

	memset(&r, 0, sizeof(r));
	r.content_length = -1;
	*status = 0;
	*why = NULL;
	if (len > lim->max_header_bytes) {
		rc = fail(431, "request header fields too large", status, why);
		goto out;
	}
	if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
		rc = fail(400, "incomplete request head", status, why);
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		rc = fail(400, "NUL byte in request head", status, why);
		goto out;
	}
	/*
	 * One block: the header array (no more headers than lines, and a
	 * line takes 4 bytes at least), the head's copy, split in place,
	 * and room for the path (the target without its query).
	 */
	maxh = len / 4 + 1;
	if (maxh > lim->max_headers + 1)
		maxh = lim->max_headers + 1;
	r.hdrs = malloc(maxh * sizeof(*r.hdrs) + 2 * (len + 1));
	if (r.hdrs == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	r.head = (char *)(r.hdrs + maxh);
	memcpy(r.head, buf, len);
	r.head[len] = '\0';
	pathbuf = r.head + len + 1;
	end = r.head + len - 2;		/* at the final, empty line's CRLF */
	line = r.head;
	for (bool first = true; line < end; first = false) {
		/* Every line ends in CRLF (the head does): a LF alone or a CR
		 * inside a line is refused. */
		eol = memchr(line, '\n', (size_t)(r.head + len - line));
		if (eol == line || eol[-1] != '\r' ||
		    memchr(line, '\r', (size_t)(eol - 1 - line)) != NULL) {
			rc = fail(400, "bare CR or LF in request head", status, why);
			goto out;
		}
		eol[-1] = '\0';
		if (first)
			rc = parse_request_line(line, &r, pathbuf, status, why);
		else if (r.nhdrs >= lim->max_headers || r.nhdrs + 1 >= maxh)
			rc = fail(431, "too many header fields", status, why);
		else
			rc = parse_header_line(line, &r, status, why);
		if (rc != WD_OK)
			goto out;
		line = eol + 1;
	}
	if (r.target == NULL) {
		rc = fail(400, "empty request", status, why);
		goto out;
	}
	rc = check_framing(&r, lim, status, why);
	if (rc == WD_OK && r.content_length > (int64_t)lim->max_body_bytes)
		rc = fail(413, "request body too large", status, why);
out:
	if (rc != WD_OK) {
		if (rc == WD_ENOMEM && *status == 0)
			fail(500, "out of memory", status, why);
		gw_http_req_clear(&r);
		return rc;
	}
	*out = r;
	return WD_OK;
}

/* Where a chunked reader is. */
enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
    CH_TRAILER, CH_TRAILER_LF };

#define CHUNK_BAD(...) do {						\
	snprintf(why, whylen, __VA_ARGS__);				\
	*used = i;							\
	return WD_EPARSE;						\
} while (0)

enum wd_err
gw_chunk_step(struct gw_chunk_rd *r, const char *in, size_t n,
    size_t max_line, size_t *used, const char **data, size_t *dlen,
    char *why, size_t whylen)
{
	size_t i = 0;

	*data = in;
	*dlen = 0;
	while (i < n && !r->done) {
		unsigned char c = (unsigned char)in[i];
		int d;

		if (r->st == CH_DATA) {
			size_t span = r->left < n - i ? (size_t)r->left : n - i;

			*data = in + i;
			*dlen = span;
			r->left -= span;
			if (r->left == 0)
				r->st = CH_DATA_CR;
			i += span;
			break;
		}
		i++;
		switch (r->st) {
		case CH_SIZE:
			if ((d = wd_hexval(c)) >= 0) {
				/* 16 digits: 64 bits, no overflow. */
				if (r->line >= 16)
					CHUNK_BAD("a chunk size is too long");
				r->left = r->left << 4 | (uint64_t)d;
				r->line++;
				break;
			}
			if (r->line == 0)
				CHUNK_BAD("a chunk has no size");
			if (c == '\r')
				r->st = CH_SIZE_LF;
			else if (c == ';' || c == ' ' || c == '\t')
				r->st = CH_EXT;
			else
				CHUNK_BAD("a chunk size is malformed");
			r->line++;
			break;
		case CH_EXT:
			/* Extensions carry nothing warden uses; bounded. */
			if (++r->line > max_line)
				CHUNK_BAD("a chunk's extensions are too long");
			if (c == '\r')
				r->st = CH_SIZE_LF;
			else if (!gw_http_vchar(c))
				CHUNK_BAD("a chunk's extensions have a control "
				    "byte");
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				CHUNK_BAD("a chunk size line does not end in CRLF");
			r->line = 0;
			if (r->left == 0) {
				r->st = CH_TRAILER;
				break;
			}
			r->st = CH_DATA;
			goto out;	/* the caller sees the size first */
		case CH_DATA_CR:
			if (c != '\r')
				CHUNK_BAD("a chunk is longer than its size");
			r->st = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				CHUNK_BAD("a chunk does not end in CRLF");
			r->st = CH_SIZE;
			break;
		case CH_TRAILER:
			if (++r->trailer > GW_CHUNK_MAX_TRAILER)
				CHUNK_BAD("the trailers are too long");
			if (c == '\r')
				r->st = CH_TRAILER_LF;
			else if (c == '\n' || !gw_http_vchar(c))
				CHUNK_BAD("the trailers are malformed");
			else
				r->line++;
			break;
		case CH_TRAILER_LF:
			if (c != '\n')
				CHUNK_BAD("the trailers are malformed");
			if (r->line == 0)
				r->done = true;		/* the empty line */
			r->line = 0;
			r->st = CH_TRAILER;
			break;
		}
	}
out:
	*used = i;
	return WD_OK;
}

enum wd_err
gw_chunked_decode(struct gw_chunked *st, const char *in, size_t len,
    size_t *used, struct evbuffer *out, size_t max_body, size_t max_line)
{
	size_t at = 0;

	while (at < len && !st->rd.done) {
		const char *d;
		size_t u, dl;

		if (gw_chunk_step(&st->rd, in + at, len - at, max_line, &u, &d,
		    &dl, st->why, sizeof(st->why)) != WD_OK) {
			*used = at + u;
			return WD_EPARSE;
		}
		at += u;
		if (dl > 0 && evbuffer_add(out, d, dl) != 0) {
			*used = at - dl;
			return WD_ENOMEM;
		}
		st->total += dl;
		/* A size line just read: refused before its data if the
		 * chunk would pass the limit. */
		if (st->rd.st == CH_DATA && st->rd.left > max_body - st->total) {
			*used = at;
			return WD_ELIMIT;
		}
	}
	*used = at;
	return WD_OK;
}

const char *
gw_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}
