/*
 * http_conn.c - one client connection: read a request head, then its body,
 * hand it to the handler's dispatch, write the answer, and go round again
 * for keep-alive.
 *
 * States:
 *   HEAD    waiting for a complete head (header deadline armed)
 *   BODY    reading the body (body deadline armed)
 *   BUSY    a handler owns the request; reading stays on only to notice
 *           the client leaving (EOF), pipelined bytes are left unparsed
 *   CLOSING the last answer is being flushed; then the socket closes
 *
 * The next pipelined request is never handled from inside the end of the
 * last one (that recursion grew the stack with every request waiting in
 * the buffer): finish_request() posts an event and the loop comes back
 * to it (nginx: ngx_post_event).  While more than PIPE_OUT_HIGH of
 * answers wait to go out, no further pipelined request is parsed until
 * the client has read them.
 *
 * The server gives this layer a handler and its limits (struct
 * gw_http_handler, the worker's gw_http_limits): a head is offered to
 * handler->head before its body is read (warden's: key, in-flight caps)
 * and the body to handler->body after; errors are answered by the
 * handler, in its shape.  This file names no endpoint, policy or header
 * of warden's, and takes no lock: the limits are the worker's copy.
 *
 * The connection owns the request head, the per-request id and, until it
 * hands it over, the body buffer.  A handler that owns a request can
 * register hooks: gone() runs when the client leaves (the connection is
 * freed right after), drained() when buffered output falls below the low
 * watermark so a paused upstream can resume.
 */
#include "gateway/gw_int.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/bufferevent.h>

/* What one read of a client's bytes takes at most. */
#define READ_BYTES 16384

#define OUT_LOW_MARK (64u << 10)
#define PIPE_OUT_HIGH (256u << 10)
/* A request whose body was this large, or had this many JSON values (a
 * tree of small blocks), makes the worker trim the heap once it is over:
 * glibc keeps freed small blocks otherwise. */
#define BIG_BODY (128u << 10)
#define BIG_VALUES 4096
#define MAX_REQUEST_ID 64

enum conn_state { C_HEAD, C_BODY, C_BUSY, C_CLOSING };

/* After the last answer is flushed we half-close and read what the client
 * still sends for a moment, so that its unread bytes do not make our
 * kernel send a RST that destroys the answer (nginx: lingering_close). */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1u << 20)

struct gw_conn {
	struct gw_worker *w;
	/* The bufferevent writes; reading is ours (rev, conn_read): one
	 * recv per read event, where the bufferevent's asks FIONREAD first. */
	struct bufferevent *bev;
	struct event *rev;
	bool reading;
	struct gw_conn *next, *prev;	/* in w->conns */
	enum conn_state state;
	struct event *deadline;
	struct gw_http_req req;
	bool have_req;
	struct evbuffer *body;
	struct gw_chunked chunked;
	bool responding;		/* chunked answer under way */
	bool head_only;			/* HEAD request: no body out */
	bool keep_alive;
	struct gw_conn_hooks hooks;
	char reqid[MAX_REQUEST_ID + 1];
	/* Headers the handler asked every answer of this request to carry
	 * (borrowed from it). */
	struct gw_out_hdr sticky[GW_CONN_MAX_STICKY];
	size_t nsticky;
	bool loopback;			/* peer is on this host */
	uint64_t started_us;
	size_t lingered;		/* bytes discarded while closing */
	struct event *next_ev;		/* posted: look at the next request */
	bool wait_drain;		/* answers pile up: parse no more */
	bool big;			/* this request's body was large */
	struct gw_admit admit;		/* places this request holds */
	/* A streamed answer's bytes wait here, not in the bufferevent, and
	 * go out by a direct write (stage_flush): the head with the first
	 * event at once, later events once per turn of the loop (flush_ev),
	 * so events that arrive together go out together. */
	struct evbuffer *stage;
	struct event *flush_ev;
	bool stage_first;		/* head staged, no event yet */
	struct gw_keymemo keymemo;	/* the last request's key */
};

void
gw_http_publish(struct gw_http_pub *p, const struct gw_http_limits *lim)
{
	pthread_mutex_lock(&p->lock);
	p->lim = *lim;
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_mutex_unlock(&p->lock);
}

/* The worker's limits, brought up to date after a reload (one atomic
 * load; the lock only when they changed). */
static const struct gw_http_limits *
limits(struct gw_worker *w)
{
	struct gw_http_pub *p = w->http;

	if (atomic_load_explicit(&p->gen, memory_order_acquire) != w->lim_gen) {
		pthread_mutex_lock(&p->lock);
		w->lim = p->lim;
		w->lim_gen = atomic_load_explicit(&p->gen, memory_order_relaxed);
		pthread_mutex_unlock(&p->lock);
	}
	return &w->lim;
}

static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	malloc_trim(0);
}

/* Give freed memory back to the system after a large request, at most
 * five times a second per worker: malloc_trim walks the heap. */
static void
trim_soon(struct gw_worker *w)
{
	struct timeval tv = { 0, 200 * 1000 };

	if (w->trim_ev == NULL)
		w->trim_ev = evtimer_new(w->base, trim_cb, w);
	if (w->trim_ev != NULL && !evtimer_pending(w->trim_ev, NULL))
		evtimer_add(w->trim_ev, &tv);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_reading(struct gw_conn *c, bool on);
static void conn_process(struct gw_conn *c);

static void
conn_free(struct gw_conn *c)
{
	struct gw_worker *w = c->w;

	if (c->hooks.gone != NULL) {
		struct gw_conn_hooks h = c->hooks;

		/* Tell the owner first, while the connection still exists,
		 * and forget it: the owner must not call us back. */
		memset(&c->hooks, 0, sizeof(c->hooks));
		h.gone(h.arg);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	gw_metrics_conn(-1);
	c->w->handler->done(&c->admit);
	if (c->big || (c->body != NULL &&
	    evbuffer_get_length(c->body) >= BIG_BODY))
		trim_soon(w);
	if (c->next_ev != NULL)
		event_free(c->next_ev);
	if (c->flush_ev != NULL)
		event_free(c->flush_ev);
	if (c->stage != NULL)
		evbuffer_free(c->stage);
	if (c->have_req)
		gw_http_req_clear(&c->req);
	if (c->body != NULL)
		evbuffer_free(c->body);
	if (c->deadline != NULL)
		event_free(c->deadline);
	if (c->rev != NULL)
		event_free(c->rev);
	gw_keymemo_clear(&c->keymemo);
	bufferevent_free(c->bev);
	free(c);
	if (w->stopping && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void
arm_deadline(struct gw_conn *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_add(c->deadline, &tv);
}

/* An answer's head, gathered in one buffer and added to the output once
 * (it was a printf into the evbuffer per header line). */
struct head_buf {
	struct evbuffer *out;
	size_t n;
	char b[1024];
};

static void
hb_put(struct head_buf *h, const char *s, size_t len)
{
	if (h->n + len > sizeof(h->b)) {
		evbuffer_add(h->out, h->b, h->n);
		h->n = 0;
		if (len > sizeof(h->b)) {
			evbuffer_add(h->out, s, len);
			return;
		}
	}
	memcpy(h->b + h->n, s, len);
	h->n += len;
}

static void
hb_str(struct head_buf *h, const char *s)
{
	if (s != NULL)		/* printf wrote "(null)"; nothing is no worse */
		hb_put(h, s, strlen(s));
}

static void
hb_num(struct head_buf *h, unsigned long long v)
{
	char d[24];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	hb_put(h, d + i, sizeof(d) - i);
}

static void
hb_field(struct head_buf *h, const char *name, const char *value)
{
	hb_str(h, name);
	hb_put(h, ": ", 2);
	hb_str(h, value);
	hb_put(h, "\r\n", 2);
}

/* A complete answer's status line and headers, into h (what does not
 * fit goes to the output first). */
static void
head_build(struct gw_conn *c, struct evbuffer *out, struct head_buf *hp,
    int status, const char *ctype, const struct gw_out_hdr *hdrs,
    size_t nhdrs, int64_t len)
{
	struct head_buf h;

	h.out = out;
	h.n = 0;
	hb_put(&h, "HTTP/1.1 ", 9);
	hb_num(&h, status < 0 ? 0 : (unsigned long long)status);
	hb_put(&h, " ", 1);
	hb_str(&h, gw_http_reason(status));
	hb_put(&h, "\r\nServer: warden\r\n", 18);
	if (ctype != NULL)
		hb_field(&h, "Content-Type", ctype);
	if (c->reqid[0] != '\0')
		hb_field(&h, "X-Request-Id", c->reqid);
	for (size_t i = 0; i < c->nsticky; i++)
		hb_field(&h, c->sticky[i].name, c->sticky[i].value);
	for (size_t i = 0; i < nhdrs; i++)
		hb_field(&h, hdrs[i].name, hdrs[i].value);
	if (len >= 0) {
		hb_put(&h, "Content-Length: ", 16);
		hb_num(&h, (unsigned long long)len);
		hb_put(&h, "\r\n", 2);
	} else {
		hb_put(&h, "Transfer-Encoding: chunked\r\n", 28);
	}
	if (!c->keep_alive)
		hb_put(&h, "Connection: close\r\n", 19);
	hb_put(&h, "\r\n", 2);
	*hp = h;
}

/* Write a complete answer's status line and headers. */
static void
write_head(struct gw_conn *c, int status, const char *ctype,
    const struct gw_out_hdr *hdrs, size_t nhdrs, int64_t len)
{
	struct head_buf h;

	head_build(c, bufferevent_get_output(c->bev), &h, status, ctype, hdrs,
	    nhdrs, len);
	evbuffer_add(h.out, h.b, h.n);
}

static void
start_linger(struct gw_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd < 0 || shutdown(fd, SHUT_WR) != 0) {
		conn_free(c);
		return;
	}
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	conn_reading(c, true);
	arm_deadline(c, LINGER_MS);
}

/* The answer is complete: next request, or flush and close. */
static void
finish_request(struct gw_conn *c)
{
	memset(&c->hooks, 0, sizeof(c->hooks));
	c->responding = false;
	c->w->handler->done(&c->admit);
	if (c->big) {
		c->big = false;
		trim_soon(c->w);
	}
	if (c->have_req) {
		gw_http_req_clear(&c->req);
		c->have_req = false;
	}
	if (c->body != NULL)
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	if (!c->keep_alive || c->w->stopping) {
		c->state = C_CLOSING;
		event_del(c->deadline);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			start_linger(c);
		return;
	}
	c->state = C_HEAD;
	c->started_us = 0;
	c->reqid[0] = '\0';
	c->nsticky = 0;
	/* Reading may have been paused while too much was pipelined. */
	conn_reading(c, true);
	/* Pipelined bytes may already be waiting: look from the loop, not
	 * from here, deep inside the handler that just answered. */
	event_active(c->next_ev, EV_TIMEOUT, 0);
}

/*
 * A whole answer.  When nothing else waits to go out, head and body go
 * in one writev() from here: handed to the bufferevent, they would cost
 * adding the write event, a turn of the loop for it and removing it
 * again (two epoll_ctl calls and a wakeup per answer).  What the socket
 * does not take goes to the bufferevent as before, in order.  (The
 * bufferevent is a plain socket one: warden serves no TLS itself; a
 * filtering bufferevent would need this path off.)
 */
void
gw_respond(struct gw_conn *c, int status, const char *ctype,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const void *body, size_t len)
{
	struct head_buf h;
	struct iovec iov[2];
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	size_t blen = !c->head_only ? len : 0, sent = 0;
	ssize_t n;

	head_build(c, bufferevent_get_output(c->bev), &h, status, ctype, hdrs,
	    nhdrs, (int64_t)len);
	if (evbuffer_get_length(h.out) == 0 && fd >= 0) {
		iov[0] = (struct iovec){ h.b, h.n };
		iov[1] = (struct iovec){ (void *)(uintptr_t)body, blen };
		do
			n = writev(fd, iov, blen > 0 ? 2 : 1);
		while (n < 0 && errno == EINTR);
		/* An error (EAGAIN, a reset) is the bufferevent's to meet:
		 * it gets all of it. */
		if (n > 0) {
			sent = (size_t)n;
			gw_metrics_bytes(0, sent);
		}
	}
	if (sent < h.n)
		evbuffer_add(h.out, h.b + sent, h.n - sent);
	sent = sent > h.n ? sent - h.n : 0;
	if (sent < blen)
		evbuffer_add(h.out, (const char *)body + sent, blen - sent);
	finish_request(c);
}

/*
 * What is staged goes out: by a direct write when nothing waits in the
 * bufferevent (as gw_respond does, and for the same reason: no write
 * event added, waited for and removed, here before every first byte of
 * a stream); what the socket does not take goes to the bufferevent, in
 * order, with its watermarks and timeouts as before.
 */
static void
stage_flush(struct gw_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int n;

	if (c->stage == NULL || evbuffer_get_length(c->stage) == 0)
		return;
	if (evbuffer_get_length(out) == 0 && fd >= 0)
		while (evbuffer_get_length(c->stage) > 0 &&
		    (n = evbuffer_write(c->stage, fd)) > 0)
			gw_metrics_bytes(0, (size_t)n);
	/* An error (EAGAIN, a reset) is the bufferevent's to meet. */
	if (evbuffer_get_length(c->stage) > 0)
		evbuffer_add_buffer(out, c->stage);
}

/* A turn of the loop after events were staged: send them, and when all
 * went out directly, tell the owner, who may have paused its source
 * (the bufferevent's write callback, which would say so, never runs
 * for bytes it never held). */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	stage_flush(c);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	    c->hooks.drained != NULL)
		c->hooks.drained(c->hooks.arg);	/* may free c */
}

static void
stage_soon(struct gw_conn *c)
{
	if (c->stage_first) {
		c->stage_first = false;
		stage_flush(c);
	} else if (!event_pending(c->flush_ev, EV_TIMEOUT, NULL)) {
		event_active(c->flush_ev, EV_TIMEOUT, 0);
	}
}

void
gw_respond_start(struct gw_conn *c, int status, const char *ctype,
    const struct gw_out_hdr *hdrs, size_t nhdrs)
{
	struct head_buf h;

	if (c->stage == NULL && (c->stage = evbuffer_new()) == NULL)
		goto plain;
	if (c->flush_ev == NULL &&
	    (c->flush_ev = event_new(c->w->base, -1, 0, flush_cb, c)) == NULL)
		goto plain;
	head_build(c, c->stage, &h, status, ctype, hdrs, nhdrs, -1);
	evbuffer_add(c->stage, h.b, h.n);
	c->stage_first = true;
	c->responding = true;
	return;
plain:
	/* Out of memory for the stage: the bufferevent carries it all. */
	write_head(c, status, ctype, hdrs, nhdrs, -1);
	c->responding = true;
}

/* The stream's bytes go to the stage when there is one. */
static struct evbuffer *
stream_out(struct gw_conn *c)
{
	return c->stage != NULL && c->flush_ev != NULL ? c->stage :
	    bufferevent_get_output(c->bev);
}

void
gw_respond_chunk(struct gw_conn *c, const void *data, size_t len)
{
	struct evbuffer *out = stream_out(c);

	if (len == 0)
		return;
	evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	evbuffer_add(out, "\r\n", 2);
	if (out == c->stage)
		stage_soon(c);
}

void
gw_respond_chunk_buf(struct gw_conn *c, struct evbuffer *buf)
{
	struct evbuffer *out = stream_out(c);
	size_t len = evbuffer_get_length(buf);

	if (len == 0)
		return;
	evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add_buffer(out, buf);
	evbuffer_add(out, "\r\n", 2);
	if (out == c->stage)
		stage_soon(c);
}

void
gw_respond_end(struct gw_conn *c, bool close_after)
{
	struct evbuffer *out = stream_out(c);

	evbuffer_add(out, "0\r\n\r\n", 5);
	if (out == c->stage) {
		c->stage_first = false;
		if (c->flush_ev != NULL)
			event_del(c->flush_ev);
		stage_flush(c);
	}
	if (close_after)
		c->keep_alive = false;
	finish_request(c);
}

void
gw_conn_set_hooks(struct gw_conn *c, const struct gw_conn_hooks *h)
{
	if (h == NULL)
		memset(&c->hooks, 0, sizeof(c->hooks));
	else
		c->hooks = *h;
}

void
gw_conn_set_answer_headers(struct gw_conn *c, const struct gw_out_hdr *hdrs,
    size_t nhdrs)
{
	c->nsticky = nhdrs < GW_CONN_MAX_STICKY ? nhdrs : GW_CONN_MAX_STICKY;
	memcpy(c->sticky, hdrs, c->nsticky * sizeof(*hdrs));
}

const char *
gw_conn_request_id(const struct gw_conn *c)
{
	return c->reqid;
}

const unsigned char *
gw_conn_key_digest(const struct gw_conn *c)
{
	return c->admit.keyed ? c->admit.digest : NULL;
}

struct evbuffer *
gw_worker_buf(struct gw_worker *w)
{
	return w->nspare > 0 ? w->spare[--w->nspare] : evbuffer_new();
}

void
gw_worker_buf_done(struct gw_worker *w, struct evbuffer *b)
{
	if (b == NULL)
		return;
	/* Its chains go back to the heap, as evbuffer_free would give
	 * them; only the empty buffer is kept. */
	if (w->nspare < GW_SPARE_BUFS &&
	    evbuffer_drain(b, evbuffer_get_length(b)) == 0 &&
	    evbuffer_get_length(b) == 0) {
		w->spare[w->nspare++] = b;
		return;
	}
	evbuffer_free(b);
}

struct gw_keymemo *
gw_conn_keymemo(struct gw_conn *c)
{
	return &c->keymemo;
}

struct gw_worker *
gw_conn_worker(const struct gw_conn *c)
{
	return c->w;
}

size_t
gw_conn_pending(const struct gw_conn *c)
{
	if (c->stage != NULL)
		return evbuffer_get_length(bufferevent_get_output(c->bev)) +
		    evbuffer_get_length(c->stage);
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Answer a protocol error ourselves and close: framing is lost. */
static void
protocol_error(struct gw_conn *c, int status, const char *why)
{
	c->keep_alive = false;
	c->state = C_BUSY;
	if (c->reqid[0] == '\0') {
		unsigned char r[12];

		wd_random(r, sizeof(r));
		wd_hex(r, sizeof(r), c->reqid);
	}
	c->w->handler->malformed(c, status, why);
}

/* Refuse a request before its body is read: answer and close. */
static void
refuse(struct gw_conn *c, const struct gw_admit_deny *d)
{
	c->keep_alive = false;
	c->state = C_BUSY;
	event_del(c->deadline);
	c->w->handler->refuse(c, d);
}

static void
set_request_id(struct gw_conn *c)
{
	const char *v = gw_http_header(&c->req, "x-request-id");
	unsigned char r[12];

	if (v != NULL && wd_token_sane(v, MAX_REQUEST_ID)) {
		memcpy(c->reqid, v, strlen(v) + 1);
		return;
	}
	wd_random_id(r, sizeof(r));
	wd_hex(r, sizeof(r), c->reqid);
}

/* Body complete: hand the request to its handler. */
static void
dispatch(struct gw_conn *c)
{
	struct evbuffer *body = c->body;

	event_del(c->deadline);
	c->state = C_BUSY;
	c->big = evbuffer_get_length(body) >= BIG_BODY;
	if (evbuffer_get_length(body) > 0) {
		struct gw_admit_deny d;

		if (!c->w->handler->body(&c->admit, body, &d)) {
			/* The body was read whole: framing holds. */
			c->w->handler->refuse(c, &d);
			return;
		}
		c->big |= c->admit.values >= BIG_VALUES;
	}
	c->body = NULL;
	/* Keep reading: EOF is how we learn the client left. */
	c->w->handler->dispatch(c, &c->req, body);
}

static void
read_body(struct gw_conn *c, struct evbuffer *in)
{
	if (!c->req.chunked) {
		size_t want = (size_t)c->req.content_length -
		    evbuffer_get_length(c->body);
		size_t have = evbuffer_get_length(in);

		evbuffer_remove_buffer(in, c->body, have < want ? have : want);
		if (evbuffer_get_length(c->body) == (size_t)c->req.content_length)
			dispatch(c);
		return;
	}
	while (evbuffer_get_length(in) > 0 && !c->chunked.rd.done) {
		struct evbuffer_iovec v;
		size_t used = 0;
		enum wd_err rc;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = gw_chunked_decode(&c->chunked, v.iov_base, v.iov_len,
		    &used, c->body, c->admit.max_body, 4096);
		evbuffer_drain(in, used);
		if (rc == WD_ELIMIT) {
			protocol_error(c, 413, "request body too large");
			return;
		}
		if (rc == WD_ENOMEM) {
			protocol_error(c, 500, "out of memory");
			return;
		}
		if (rc != WD_OK) {
			char why[160];

			snprintf(why, sizeof(why), "malformed chunked request "
			    "body: %s", c->chunked.why);
			protocol_error(c, 400, why);
			return;
		}
	}
	if (c->chunked.rd.done)
		dispatch(c);
}

static void
read_head(struct gw_conn *c, struct evbuffer *in,
    const struct gw_http_limits *cfg)
{
	struct gw_admit_deny deny;
	struct evbuffer_ptr end;
	const char *why;
	unsigned char *p;
	size_t len;
	int status;

	/* Tolerate the empty lines some clients send between requests. */
	while (evbuffer_get_length(in) >= 2) {
		char two[2];

		evbuffer_copyout(in, two, 2);
		if (two[0] != '\r' || two[1] != '\n')
			break;
		evbuffer_drain(in, 2);
	}
	if (evbuffer_get_length(in) == 0)
		return;
	if (c->started_us == 0) {
		c->started_us = wd_mono_us();
		arm_deadline(c, cfg->header_timeout_ms);
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0) {
		if (evbuffer_get_length(in) > cfg->max_header_bytes)
			protocol_error(c, 431, "request header fields too large");
		return;
	}
	len = (size_t)end.pos + 4;
	p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (p == NULL) {
		protocol_error(c, 500, "out of memory");
		return;
	}
	if (gw_http_parse_head((const char *)p, len, cfg, &c->req, &status,
	    &why) != WD_OK) {
		evbuffer_drain(in, len);
		protocol_error(c, status, why);
		return;
	}
	evbuffer_drain(in, len);
	c->have_req = true;
	c->keep_alive = c->req.keep_alive;
	c->head_only = c->req.method == GW_M_HEAD;
	set_request_id(c);
	if (c->body == NULL && (c->body = gw_worker_buf(c->w)) == NULL) {
		protocol_error(c, 500, "out of memory");
		return;
	}
	memset(&c->chunked, 0, sizeof(c->chunked));
	switch (c->w->handler->head(c, &c->req, &c->admit, &deny)) {
	case GW_ADMIT_OK:
		break;
	case GW_ADMIT_NO_BODY:
		/* Unknown key: its handler answers 401 and records it, and
		 * the body is never read. */
		c->keep_alive = false;
		dispatch(c);
		return;
	case GW_ADMIT_REFUSED:
		refuse(c, &deny);
		return;
	}
	if (!c->req.chunked && c->req.content_length <= 0) {
		dispatch(c);
		return;
	}
	if (c->req.expect_continue && evbuffer_get_length(in) == 0)
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->state = C_BODY;
	arm_deadline(c, cfg->body_timeout_ms);
	read_body(c, in);
}

static void
conn_process(struct gw_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct gw_http_limits *cfg = limits(c->w);

	if (c->state == C_HEAD) {
		if (evbuffer_get_length(in) == 0) {
			/* Idle between requests. */
			arm_deadline(c, cfg->idle_timeout_ms);
			if (c->w->stopping) {
				conn_free(c);
				return;
			}
		} else if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
		    PIPE_OUT_HIGH) {
			/* The client is not reading its answers: parse no
			 * more until it does (conn_write_cb resumes), and
			 * buffer no more than one request's worth. */
			c->wait_drain = true;
			if (evbuffer_get_length(in) > cfg->max_header_bytes +
			    cfg->max_body_bytes)
				conn_reading(c, false);
		} else {
			read_head(c, in, cfg);
		}
	} else if (c->state == C_BODY) {
		read_body(c, in);
	} else if (c->state == C_CLOSING) {
		size_t n = evbuffer_get_length(in);

		evbuffer_drain(in, n);
		c->lingered += n;
		if (c->lingered > LINGER_MAX_BYTES) {
			conn_free(c);
			return;
		}
	} else if (c->state == C_BUSY) {
		/* Pipelined bytes: leave them, but do not buffer without end. */
		if (evbuffer_get_length(in) > cfg->max_header_bytes + cfg->max_body_bytes)
			conn_reading(c, false);
	}
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn *c = arg;

	(void)bev;
	conn_process(c);
	/* A freed connection never returns here: conn_process frees only as
	 * its last act. */
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn *c = arg;

	if (c->state == C_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
		    !evtimer_pending(c->deadline, NULL))
			start_linger(c);
		return;
	}
	if (c->state == C_HEAD && c->wait_drain) {
		c->wait_drain = false;
		conn_reading(c, true);
		conn_process(c);	/* may free c: nothing after it */
		return;
	}
	if (c->hooks.drained != NULL)
		c->hooks.drained(c->hooks.arg);
}

static void
next_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_process(arg);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct gw_conn *c = arg;

	if (c->state == C_CLOSING && (what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		/* Half-closed by the client: still flush the answer. */
		conn_reading(c, false);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* A client half-closing after a complete request is rare;
		 * treat EOF as gone, as nginx does for proxied requests. */
		conn_free(c);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(c);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == C_CLOSING || (c->state == C_HEAD && c->started_us == 0)) {
		conn_free(c);		/* idle keep-alive connection */
		return;
	}
	if (c->state == C_HEAD || c->state == C_BODY) {
		protocol_error(c, 408, c->state == C_HEAD ?
		    "request head not received in time" :
		    "request body not received in time");
		return;
	}
}

/* Bytes that really crossed the socket, for /metrics. */
static void
count_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *in)
{
	(void)buf;
	if (in != NULL && info->n_added > 0)
		gw_metrics_bytes(info->n_added, 0);
	else if (in == NULL && info->n_deleted > 0)
		gw_metrics_bytes(0, info->n_deleted);
}

/* The output's bytes that crossed the socket, for /metrics; and the
 * first bytes ever added to it enable writing (gw_conn_accept). */
static void
out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_conn *c = arg;

	(void)buf;
	if (info->n_deleted > 0)
		gw_metrics_bytes(0, info->n_deleted);
	if (info->n_added > 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_enable(c->bev, EV_WRITE);
}

bool
gw_conn_is_loopback(const struct gw_conn *c)
{
	return c->loopback;
}

static bool
sa_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
		    >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
		    &((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/*
 * Read what the client sent: one recv into the input buffer, then the
 * state machine.  The end of the stream and errors go where the
 * bufferevent would have sent them (conn_event_cb).
 */
static void
conn_read(struct gw_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v;
	ssize_t n = -1;
	int err = 0;

	/* The bufferevent keeps its input's end frozen but while it reads
	 * itself (libevent's own bufferevent_readcb does the same). */
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, READ_BYTES, &v, 1) == 1) {
		do
			n = recv(bufferevent_getfd(c->bev), v.iov_base,
			    v.iov_len, 0);
		while (n < 0 && errno == EINTR);
		err = n < 0 ? errno : 0;
		v.iov_len = n > 0 ? (size_t)n : 0;
		evbuffer_commit_space(in, &v, 1);
	}
	evbuffer_freeze(in, 0);
	if (n > 0)
		conn_process(c);	/* may free c: nothing after it */
	else if (n == 0)
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_EOF, c);
	else if (err != EAGAIN && err != EWOULDBLOCK)
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, c);
}

static void
rev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_read(arg);
}

static void
conn_reading(struct gw_conn *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
}

void
gw_conn_accept(struct gw_worker *w, evutil_socket_t fd,
    const struct sockaddr *sa)
{
	const struct gw_http_limits *lim = limits(w);
	struct gw_conn *c;
	struct timeval wt;
	size_t max_conns = lim->max_connections;
	unsigned char r[12];

	/* Far over the cap (the refused ones linger a moment each): close
	 * at once, without an answer or any memory spent on it. */
	if (w->nconns >= max_conns + max_conns / 4 + 16) {
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->w = w;
	c->state = C_HEAD;
	c->loopback = sa_loopback(sa);
	c->req.content_length = -1;
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, rev_cb, c);
	c->deadline = evtimer_new(w->base, deadline_cb, c);
	c->next_ev = event_new(w->base, -1, 0, next_cb, c);
	if (c->bev == NULL || c->rev == NULL || c->deadline == NULL ||
	    c->next_ev == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->deadline != NULL)
			event_free(c->deadline);
		if (c->next_ev != NULL)
			event_free(c->next_ev);
		if (c->rev != NULL)
			event_free(c->rev);
		free(c);
		return;
	}
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	gw_metrics_conn(1);
	/* A client that stops reading our answer is dropped eventually. */
	wt.tv_sec = lim->idle_timeout_ms / 1000;
	wt.tv_usec = (lim->idle_timeout_ms % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	arm_deadline(c, lim->idle_timeout_ms);
	evbuffer_add_cb(bufferevent_get_input(c->bev), count_cb, (void *)1);
	evbuffer_add_cb(bufferevent_get_output(c->bev), out_cb, c);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_MARK, 0);
	/* Writing is enabled by the first byte of output (out_cb): enabled
	 * here it would add the write event, wake once for nothing and take
	 * it off again, two epoll_ctl calls for every connection. */
	conn_reading(c, true);
	if (w->nconns > max_conns) {
		/* Over server.max_connections: say so and close. */
		struct gw_admit_deny d = { WD_CODE_SERVER_BUSY,
			"too many connections to this server "
			"(server.max_connections); retry later" };

		wd_random(r, sizeof(r));
		wd_hex(r, sizeof(r), c->reqid);
		refuse(c, &d);
		return;
	}
	/* A client that connects writes its request at once: what is
	 * there by now is read and handled without a turn through epoll
	 * (when nothing is, the read event brings it). */
	conn_read(c);
}

void
gw_conn_close_idle(struct gw_worker *w)
{
	struct gw_conn *c = w->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (c->state == C_HEAD && c->started_us == 0)
			conn_free(c);
	}
}

void
gw_conn_abort_all(struct gw_worker *w)
{
	while (w->conns != NULL)
		conn_free(w->conns);
}
