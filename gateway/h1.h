/*
 * h1.h - warden's own HTTP/1.1 client for plain (http://) upstreams at a
 * literal address: the answer's reader (h1_parse.c), pure functions that
 * the fuzz target drives, and the transfer on the worker's loop
 * (upstream_h1.c).  Everything else (TLS, names to resolve, proxies) goes
 * through libcurl (upstream.c).
 *
 * The reader is strict: an answer it cannot frame exactly (bare LF line
 * ends, folded or malformed headers, two lengths, a transfer coding other
 * than chunked, a length and chunked together) is refused, never guessed
 * at.  A hostile provider cannot smuggle a second answer into a kept-alive
 * connection: any byte after the framed end closes the connection.
 */
#ifndef WARDEN_GATEWAY_H1_H
#define WARDEN_GATEWAY_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wd.h"
#include "gateway/http.h"

#define H1_MAX_HEAD	(64u << 10)	/* status line and headers */
#define H1_MAX_CTYPE	255		/* a longer Content-Type is refused */
#define H1_MAX_CHUNK_LINE 1024		/* size, extensions, CRLF */
#define H1_MAX_INTERIM	8		/* 1xx answers before the real one */

enum h1_framing {
	H1_NONE,		/* no body: 204, 304 */
	H1_LENGTH,		/* Content-Length */
	H1_CHUNKED,		/* Transfer-Encoding: chunked */
	H1_EOF,			/* neither: the body ends when the server closes */
};

/* One answer's head, as h1_head_parse read it. */
struct h1_head {
	int status;		/* 100..599 */
	int minor;		/* HTTP/1.minor */
	enum h1_framing framing;
	uint64_t length;	/* H1_LENGTH */
	bool keep_alive;	/* the connection may carry another request */
	bool has_ctype;
	char ctype[H1_MAX_CTYPE + 1];
};

/*
 * Where the head of an answer ends in p[0..n): *end is the offset just
 * past its empty line, 0 when it is not all in yet.  *from (0 at first)
 * is where the scan goes on when more bytes came: the caller keeps it, so
 * a head fed byte by byte is still read once.  WD_ELIMIT when the head is
 * longer than H1_MAX_HEAD; WD_EPARSE when a bare LF ends a line.
 */
enum wd_err h1_head_end(const char *p, size_t n, size_t *from, size_t *end);

/*
 * Read the head p[0..n) (n from h1_head_end).  line, if not NULL, is
 * called with each header line ("Name: value" and its CRLF) once the
 * whole head was found good.  WD_EPARSE (why says what) for anything not
 * strictly HTTP/1.x.
 */
enum wd_err h1_head_parse(const char *p, size_t n, struct h1_head *h,
    void (*line)(void *arg, const char *l, size_t len), void *arg,
    char *why, size_t whylen);

/* The body's framing, fed in pieces. */
struct h1_body {
	enum h1_framing framing;
	struct gw_chunk_rd ck;	/* H1_CHUNKED */
	uint64_t left;		/* H1_LENGTH: bytes still due */
	bool done;
};

void h1_body_init(struct h1_body *b, const struct h1_head *h);

/*
 * Read from in[0..n): *used is how many bytes were taken, and *data, *dlen
 * the body bytes among them (one span, pointing into in; *dlen may be 0).
 * Call again with the rest while b->done is false.  For H1_EOF the body
 * ends by h1_body_eof.  WD_EPARSE: chunk framing broken.
 */
enum wd_err h1_body_step(struct h1_body *b, const char *in, size_t n,
    size_t *used, const char **data, size_t *dlen, char *why, size_t whylen);

/* The server closed: is the body complete?  (Only H1_EOF bodies end so.) */
bool h1_body_eof(struct h1_body *b);

/*
 * Is url plain http:// at a literal IPv4 or [IPv6] address (no user
 * info)?  Then the address, the Host header's value and the request
 * target (path and query, "/" when empty) are filled in.
 */
struct sockaddr_storage;
bool h1_url_literal(const char *url, struct sockaddr_storage *sa,
    unsigned *salen, char *host, size_t hostlen, const char **target);

/* ---- the transfer (upstream_h1.c), behind upstream.c's four calls ---- */

/* What gw_up_start hands out; libcurl's transfers and ours begin so. */
struct gw_up_xfer {
	bool h1;
};

struct event_base;
struct gw_up_req;
struct h1_pool;

/* One per worker: its kept-alive connections and read buffer. */
struct h1_pool *h1_pool_new(struct event_base *base);
void h1_pool_free(struct h1_pool *p);
/* WD_ENOTFOUND: not one for this client (not plain http at a literal
 * address, or a proxy): libcurl's.  WD_EINVAL: a header with CR or LF. */
enum wd_err h1_start(struct h1_pool *p, const struct gw_up_req *r,
    struct gw_up_xfer **out);
void h1_abort(struct gw_up_xfer *x);
/* on: a request started while other events wait in the same turn of the
 * worker's loop waits for the turn's end, h1_pool_turn_end, which sends
 * all that waited (one on a connection still connecting goes when it is
 * made, as before). */
void h1_pool_turns(struct h1_pool *p, bool on);
void h1_pool_turn_end(struct h1_pool *p);
void h1_resume(struct gw_up_xfer *x);

#endif
