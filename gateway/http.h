/*
 * http.h - warden's HTTP/1.1 server side, on libevent bufferevents.
 *
 * Why not evhttp: libevent 2.1's evhttp answers its own limit and parse
 * errors with HTML pages (we owe callers OpenAI-shaped JSON), cannot detect
 * a client that leaves while a request is being handled, and accepts
 * ambiguous framing (Content-Length with Transfer-Encoding, repeated
 * Content-Length).  The parser here is strict, small and fuzzed
 * (tests/fuzz/fuzz_http.c).
 *
 * Two layers: a pure parser (http_parse.c: bytes in, struct out, no I/O)
 * and the connection state machine (http_conn.c).  A connection handles
 * one request at a time; pipelined requests wait in the input buffer.
 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "common/wd.h"

struct gw_header {
	const char *name;		/* points into the request's head copy */
	const char *value;		/* NUL-terminated, OWS trimmed */
};

enum gw_method {
	GW_M_OTHER = 0,
	GW_M_GET,
	GW_M_HEAD,
	GW_M_POST,
	GW_M_PUT,
	GW_M_DELETE,
	GW_M_OPTIONS,
	GW_M_PATCH,
};

/* What the server gives the HTTP layer (server.* of the rules). */
struct gw_http_limits {
	size_t max_header_bytes;
	size_t max_headers;
	size_t max_body_bytes;
	int header_timeout_ms;
	int body_timeout_ms;
	int idle_timeout_ms;
	size_t max_connections;		/* per worker */
};

/* A parsed request head.  All strings point into head, which it owns. */
struct gw_http_req {
	char *head;			/* owned: the head bytes, split in place */
	enum gw_method method;
	const char *method_name;
	const char *target;		/* origin-form: path and query */
	const char *path;		/* target without the query; owned copy */
	int minor;			/* HTTP/1.minor */
	struct gw_header *hdrs;		/* owned array */
	size_t nhdrs;
	int64_t content_length;		/* -1: none */
	bool chunked;
	bool keep_alive;
	bool expect_continue;
};

/*
 * Parse a complete request head (ending in CRLF CRLF) of len bytes; buf is
 * copied.  On error, *status is the HTTP status to answer (400, 431, 501,
 * 505) and *why a static explanation.
 */
enum wd_err gw_http_parse_head(const char *buf, size_t len,
    const struct gw_http_limits *lim, struct gw_http_req *out,
    int *status, const char **why);

void gw_http_req_clear(struct gw_http_req *req);

/* First header with this name (case-insensitive), or NULL. */
const char *gw_http_header(const struct gw_http_req *req, const char *name);

/*
 * Chunked transfer coding (RFC 9112, 7.1), read as bytes arrive, by both
 * HTTP readers: a client's request body (gw_chunked_decode) and a
 * provider's answer (h1_body_step).  A zeroed reader is at its start.
 */
#define GW_CHUNK_MAX_TRAILER	(16u << 10)	/* the whole trailer section */

struct gw_chunk_rd {
	int st;
	uint64_t left;			/* bytes of this chunk still due */
	size_t line;			/* bytes of the current size or trailer line */
	size_t trailer;			/* trailer bytes so far */
	bool done;			/* the empty line after the last chunk */
};

/*
 * Read from in[0..n): *used is how many bytes were taken; *data, *dlen
 * the chunk data among them (one span into in; *dlen 0 when the bytes
 * taken were framing).  A call also stops after a chunk's size line, so
 * that the caller sees r->left before the chunk's data.  max_line bounds
 * a size line with its extensions.  WD_EPARSE, with why: the framing is
 * broken (a bare LF, no or too many size digits, a control byte, a chunk
 * longer than its size, trailers too long).
 */
enum wd_err gw_chunk_step(struct gw_chunk_rd *r, const char *in, size_t n,
    size_t max_line, size_t *used, const char **data, size_t *dlen,
    char *why, size_t whylen);

/* A client's chunked request body, decoded into an evbuffer. */
struct gw_chunked {
	struct gw_chunk_rd rd;		/* rd.done: the body is whole */
	size_t total;			/* decoded body bytes so far */
	char why[96];			/* what was wrong, after WD_EPARSE */
};

/*
 * Decode from in (len bytes) into out, stopping at the end of the body.
 * *used says how much of in was consumed.  WD_ELIMIT when the body would
 * pass max_body (before any of the chunk that would pass it is taken);
 * WD_EPARSE on bad framing (st->why says which).
 */
enum wd_err gw_chunked_decode(struct gw_chunked *st, const char *in,
    size_t len, size_t *used, struct evbuffer *out, size_t max_body,
    size_t max_line);

const char *gw_http_reason(int status);

/* RFC 9110: a token's byte (tchar); a field value's byte (field-vchar,
 * SP, HTAB, obs-text: no control byte but HTAB).  Both HTTP readers use
 * them: the server's (http_parse.c) and the provider client's
 * (h1_parse.c). */
static inline bool
gw_http_tchar(unsigned char c)
{
	/* A bit per byte: ALPHA DIGIT and !#$%&'*+-.^_`|~ */
	static const uint64_t map[4] = { 0x03ff6cfa00000000ull,
		0x57ffffffc7fffffeull, 0, 0 };

	return (map[c >> 6] >> (c & 63)) & 1;
}

static inline bool
gw_http_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

#endif /* GW_HTTP_H */
