/*
 * upstream_h1.c - warden's own HTTP/1.1 client, for plain http:// routes
 * at a literal address with no proxy (a sidecar, a model server on the
 * host, a regional endpoint behind a local TLS terminator): one request
 * per kept-alive connection at a time, on the worker's own event loop.
 *
 * Why not libcurl here too: for a small proxied request libcurl's multi
 * interface costs two poll() calls (its check of a reused connection and
 * a look for the answer right after sending), an epoll_ctl() for every
 * change of interest, and the parse of the URL and every option again;
 * libcurl 7.88 has no option that drops them.  This client keeps one
 * read interest per connection for its whole life, learns of most
 * connections the provider closed while idle from the event loop (and
 * of the rest with one MSG_PEEK before reuse), and, while more events
 * wait in the same turn of the worker's loop, holds the requests it
 * started until the turn's end (h1_pool_turn_end, from
 * gw_txn_flush_ended), which sends them together: the provider finds them
 * queued instead of being woken for each.  The turn's last one goes at
 * once: what its transaction does next (the request's digest) then runs
 * while the provider works.  Everything else (TLS, names to resolve,
 * proxies) stays with libcurl (upstream.c), behind the same calls.
 *
 * The answer is read by h1_parse.c, strictly.  A connection is reused
 * only after an answer framed exactly to its end with nothing after it;
 * a reused connection that the provider closed before answering is
 * retried once on a new one, as libcurl does.
 */
#include "gateway/gw_int.h"
#include "gateway/h1.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#define IDLE_MAX	256	/* kept-alive connections per worker */
#define IDLE_SECONDS	60	/* an idle connection is closed after */
#define READ_BYTES	16384
#define SPARE_XFERS	32	/* kept per worker for the next transfers */

struct h1_conn {
	struct h1_pool *pool;
	evutil_socket_t fd;
	struct event rev;		/* EV_READ, for the connection's life */
	struct event wev;		/* EV_WRITE: connecting, or sending */
	bool wev_on;
	bool connecting;
	struct sockaddr_storage sa;
	unsigned salen;
	struct h1_xfer *x;		/* NULL: idle */
	struct h1_conn *next;		/* the idle list */
};

struct h1_pool {
	struct event_base *base;
	struct h1_conn *idle;		/* most recently used first */
	int nidle;
	struct wd_spares xfers;		/* emptied h1_xfer blocks */
	/* Requests started in this turn of the loop, sent at its end
	 * (h1_pool_turn_end), together. */
	struct h1_xfer *due, **due_tail;
	bool turns;
	char rbuf[READ_BYTES];
};

struct h1_xfer {
	struct gw_up_xfer base;		/* first: what the caller holds */
	struct h1_pool *pool;
	struct h1_conn *c;
	struct gw_up_req r;
	struct event watchdog;
	uint64_t total_until, connect_until;	/* µs, 0: none */
	/* The request: its head holds the credential.  Wiped once it is
	 * sent, unless the connection was a reused one: then it is kept
	 * for one retry until the first byte of the answer. */
	char *head;
	size_t head_len, sent;
	bool reused, retried;
	struct h1_xfer *due_next;	/* on the pool's due list */
	bool due;
	/* A failure while h1_start runs is told from the loop, later: the
	 * caller does not have the transfer yet. */
	bool starting;
	enum wd_err late_err;
	char late_why[160];
	/* The answer: bytes read and not yet taken (a partial head, or
	 * what waits while the caller paused); the first `held` of them are
	 * body bytes already framed, due to on_data before anything else. */
	char *in;
	size_t inlen, incap, held, head_from;
	int interim;			/* 1xx answers skipped so far */
	bool got_any, got_head, paused, in_cb, aborted;
	struct h1_head h;
	struct h1_body b;
};

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void due_drop(struct h1_xfer *x);

struct h1_pool *
h1_pool_new(struct event_base *base)
{
	struct h1_pool *p = calloc(1, sizeof(*p));

	if (p != NULL) {
		p->base = base;
		p->xfers = (struct wd_spares){ .size = sizeof(struct h1_xfer),
		    .max = SPARE_XFERS };
	}
	return p;
}

static void
conn_close(struct h1_conn *c)
{
	event_del(&c->rev);
	if (c->wev_on)
		event_del(&c->wev);
	evutil_closesocket(c->fd);
	free(c);
}

void
h1_pool_free(struct h1_pool *p)
{
	if (p == NULL)
		return;
	while (p->idle != NULL) {
		struct h1_conn *c = p->idle;

		p->idle = c->next;
		conn_close(c);
	}
	wd_spares_clear(&p->xfers);
	free(p);
}

/* ---- connections ---- */

static struct h1_conn *
conn_idle_take(struct h1_pool *p, const struct sockaddr_storage *sa,
    unsigned salen)
{
	struct h1_conn **pp = &p->idle;

	while (*pp != NULL) {
		struct h1_conn *c = *pp;
		ssize_t n;
		char b;

		if (c->salen != salen || memcmp(&c->sa, sa, salen) != 0) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		p->nidle--;
		c->next = NULL;
		/*
		 * Anything the provider sent while the connection was idle
		 * (or its close) may not have reached conn_read_cb yet: it
		 * would be read as the next request's answer.  One look
		 * without taking anything; a connection with bytes waiting
		 * is not used.
		 */
		n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			conn_close(c);
			continue;
		}
		/* Its idle deadline stays armed (taking it off would cost a
		 * system call); conn_read_cb ignores it while the connection
		 * is busy. */
		return c;
	}
	return NULL;
}

static struct h1_conn *
conn_new(struct h1_pool *p, const struct sockaddr_storage *sa, unsigned salen,
    char *why, size_t whylen)
{
	struct h1_conn *c;
	evutil_socket_t fd;
	int one = 1;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open a socket: %s", strerror(errno));
		return NULL;
	}
	/* Small requests go out at once, as libcurl's do. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	c->pool = p;
	c->fd = fd;
	memcpy(&c->sa, sa, salen);
	c->salen = salen;
	event_assign(&c->rev, p->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	event_assign(&c->wev, p->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb,
	    c);
	if (connect(fd, (const struct sockaddr *)sa, salen) != 0) {
		if (errno != EINPROGRESS) {
			snprintf(why, whylen, "cannot connect to the provider: "
			    "%s", strerror(errno));
			close(fd);
			free(c);
			return NULL;
		}
		c->connecting = true;
	}
	event_add(&c->rev, NULL);
	return c;
}

static void
conn_want_write(struct h1_conn *c, bool on)
{
	if (on == c->wev_on)
		return;
	c->wev_on = on;
	if (on)
		event_add(&c->wev, NULL);
	else
		event_del(&c->wev);
}

/* The transfer is over and the answer framed to its end: keep the
 * connection for the next request, or close it. */
static void
conn_release(struct h1_conn *c, bool reuse)
{
	struct h1_pool *p = c->pool;
	struct timeval tv = { IDLE_SECONDS, 0 };

	c->x = NULL;
	conn_want_write(c, false);
	if (!reuse || p->nidle >= IDLE_MAX) {
		conn_close(c);
		return;
	}
	c->next = p->idle;
	p->idle = c;
	p->nidle++;
	event_add(&c->rev, &tv);
}

/* ---- the transfer's end ---- */

/* The request's head holds the credential: wiped and freed as soon as
 * it cannot be needed again. */
static void
head_wipe(struct h1_xfer *x)
{
	if (x->head == NULL)
		return;
	wd_wipe(x->head, x->head_len);
	free(x->head);
	x->head = NULL;
}

static void
xfer_free(struct h1_xfer *x)
{
	if (x->due)
		due_drop(x);
	event_del(&x->watchdog);
	head_wipe(x);
	free(x->in);
	wd_spare_put(&x->pool->xfers, x);
}

static void
xfer_finish(struct h1_xfer *x, enum wd_err err, const char *detail, bool reuse)
{
	struct gw_up_req r = x->r;
	char copy[160];

	if (x->starting) {
		x->late_err = err != WD_OK ? err : WD_EUPSTREAM;
		wd_strlcpy(x->late_why, detail != NULL ? detail : "",
		    sizeof(x->late_why));
		if (x->c != NULL)
			conn_close(x->c);
		x->c = NULL;
		event_active(&x->watchdog, EV_TIMEOUT, 1);
		return;
	}
	wd_strlcpy(copy, detail != NULL ? detail : "", sizeof(copy));
	if (x->c != NULL)
		conn_release(x->c, reuse && err == WD_OK);
	xfer_free(x);
	r.on_done(r.arg, err, copy);
}

static void
xfer_fail(struct h1_xfer *x, enum wd_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
xfer_fail(struct h1_xfer *x, enum wd_err err, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	xfer_finish(x, err, why, false);
}

/* A callback of the caller's ran: did it abort the transfer meanwhile? */
static bool
gone_after_cb(struct h1_xfer *x)
{
	x->in_cb = false;
	if (!x->aborted)
		return false;
	if (x->c != NULL)
		conn_close(x->c);
	xfer_free(x);
	return true;
}

/* ---- the watchdog: connect, first byte, idle and total deadlines ---- */

static void
arm(struct h1_xfer *x)
{
	uint64_t now = wd_mono_us(), until;
	int ms = x->got_any ? x->r.idle_ms : x->r.first_byte_ms;
	struct timeval tv;

	until = ms > 0 ? now + (uint64_t)ms * 1000u : UINT64_MAX;
	if (x->c != NULL && x->c->connecting && x->connect_until != 0 &&
	    x->connect_until < until)
		until = x->connect_until;
	if (x->total_until != 0 && x->total_until < until)
		until = x->total_until;
	if (until == UINT64_MAX) {
		event_del(&x->watchdog);
		return;
	}
	until = until > now ? until - now : 0;
	tv.tv_sec = (time_t)(until / 1000000u);
	tv.tv_usec = (suseconds_t)(until % 1000000u);
	evtimer_add(&x->watchdog, &tv);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h1_xfer *x = arg;
	uint64_t now = wd_mono_us();

	(void)fd;
	(void)what;
	if (x->late_err != WD_OK) {
		xfer_finish(x, x->late_err, x->late_why, false);
		return;
	}
	if (x->total_until != 0 && now >= x->total_until) {
		xfer_fail(x, WD_ETIMEOUT, "the answer took longer than %d ms",
		    x->r.total_ms);
		return;
	}
	if (x->c != NULL && x->c->connecting && x->connect_until != 0 &&
	    now >= x->connect_until) {
		xfer_fail(x, WD_ETIMEOUT, "cannot connect to the provider "
		    "in time");
		return;
	}
	if (x->paused) {
		/* Our client is slow, not the provider: the client's own
		 * write timeout covers that. */
		arm(x);
		return;
	}
	xfer_fail(x, WD_ETIMEOUT, x->got_head ? "provider went silent "
	    "mid-answer" : "no answer from provider in time");
}

/* ---- the request ---- */

static void
put(char **w, const char *s, size_t n)
{
	memcpy(*w, s, n);
	*w += n;
}

/* What build_head needs to know of one header, from one look at it. */
struct hdr_seen {
	size_t len;
	bool skip;			/* not sent as given */
	bool host, accept;
};

static bool
name_is(const char *h, size_t nl, const char *name, size_t n)
{
	return nl == n && strncasecmp(h, name, n) == 0;
}

/*
 * Header h, a "Name: value" string.  Left out (skip): a length header
 * (the length is ours to say), and "Name:" with no value, which is
 * libcurl's way to say "leave this header out".  False: no colon, or a
 * CR or LF that would split the head.
 */
static bool
hdr_look(const char *h, struct hdr_seen *s)
{
	size_t n = strcspn(h, "\r\n"), nl;
	const char *colon;

	if (h[n] != '\0' || (colon = memchr(h, ':', n)) == NULL)
		return false;
	nl = (size_t)(colon - h);
	s->len = n;
	s->host = name_is(h, nl, "Host", 4);
	s->accept = name_is(h, nl, "Accept", 6);
	s->skip = name_is(h, nl, "Content-Length", 14) ||
	    name_is(h, nl, "Transfer-Encoding", 17) ||
	    colon[1 + strspn(colon + 1, " \t")] == '\0';
	return true;
}

/* The request's head: method, target, Host, the caller's headers, the
 * length.  WD_EINVAL: a header that would split the head. */
static enum wd_err
build_head(struct h1_xfer *x, const char *host, const char *target)
{
	const struct gw_up_req *r = &x->r;
	const char *method = r->method != NULL ? r->method : "POST";
	bool has_host = false, has_accept = false;
	struct hdr_seen few[16], *seen = few;
	char clen[48], *w;
	size_t len;
	int cl;

	/* A GET has no body, so no length either (RFC 9110, 8.6). */
	if (strcmp(method, "GET") == 0 && r->body_len == 0) {
		memcpy(clen, "\r\n", 3);
		cl = 2;
	} else {
		memcpy(clen, "Content-Length: ", 16);
		cl = 16 + (int)wd_u64_dec(r->body_len, clen + 16);
		memcpy(clen + cl, "\r\n\r\n", 5);
		cl += 4;
	}
	len = strlen(method) + 1 + strlen(target) + 11 + (size_t)cl;
	if (r->nheaders > sizeof(few) / sizeof(*few) &&
	    (seen = malloc(r->nheaders * sizeof(*seen))) == NULL)
		return WD_ENOMEM;
	for (size_t i = 0; i < r->nheaders; i++) {
		if (!hdr_look(r->headers[i], &seen[i])) {
			if (seen != few)
				free(seen);
			return WD_EINVAL;
		}
		if (seen[i].skip)
			continue;
		has_host |= seen[i].host;
		has_accept |= seen[i].accept;
		len += seen[i].len + 2;
	}
	if (!has_host)
		len += 6 + strlen(host) + 2;
	if (!has_accept)
		len += 13;
	if ((x->head = w = malloc(len)) == NULL) {
		if (seen != few)
			free(seen);
		return WD_ENOMEM;
	}
	put(&w, method, strlen(method));
	put(&w, " ", 1);
	put(&w, target, strlen(target));
	put(&w, " HTTP/1.1\r\n", 11);
	if (!has_host) {
		put(&w, "Host: ", 6);
		put(&w, host, strlen(host));
		put(&w, "\r\n", 2);
	}
	for (size_t i = 0; i < r->nheaders; i++) {
		if (seen[i].skip)
			continue;
		put(&w, r->headers[i], seen[i].len);
		put(&w, "\r\n", 2);
	}
	if (seen != few)
		free(seen);
	if (!has_accept)
		put(&w, "Accept: */*\r\n", 13);
	put(&w, clen, (size_t)cl);
	x->head_len = (size_t)(w - x->head);
	return WD_OK;
}

static void xfer_send(struct h1_xfer *x);

/* Send, or wait for the connection to be made first. */
static void
xfer_go(struct h1_xfer *x)
{
	if (x->due)
		due_drop(x);
	if (x->c->connecting)
		conn_want_write(x->c, true);
	else
		xfer_send(x);
}

/*
 * The connection broke before a byte of the answer came.  A reused one
 * is tried once more on a new connection (the provider may have closed it
 * just as it was taken; libcurl does the same); anything else ends the
 * transfer.
 */
static void
xfer_broken(struct h1_xfer *x, const char *what, int err)
{
	struct sockaddr_storage sa;
	unsigned salen;
	char why[160];

	if (x->got_any || !x->reused || x->retried) {
		xfer_fail(x, WD_EUPSTREAM, "%s: %s", what, err != 0 ?
		    strerror(err) : "the provider closed the connection");
		return;
	}
	memcpy(&sa, &x->c->sa, sizeof(sa));
	salen = x->c->salen;
	conn_close(x->c);
	x->retried = true;
	x->reused = false;
	x->sent = 0;
	if ((x->c = conn_new(x->pool, &sa, salen, why, sizeof(why))) == NULL) {
		xfer_fail(x, WD_EUPSTREAM, "%s", why);
		return;
	}
	x->c->x = x;
	xfer_go(x);
}

static void
xfer_send(struct h1_xfer *x)
{
	struct iovec iov[2];
	size_t total = x->head_len + x->r.body_len;
	ssize_t w;

	while (x->sent < total) {
		int n = 0;

		if (x->sent < x->head_len) {
			iov[n].iov_base = x->head + x->sent;
			iov[n++].iov_len = x->head_len - x->sent;
		}
		if (x->r.body_len > 0) {
			size_t off = x->sent > x->head_len ? x->sent -
			    x->head_len : 0;

			iov[n].iov_base = (char *)x->r.body + off;
			iov[n++].iov_len = x->r.body_len - off;
		}
		w = writev(x->c->fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_want_write(x->c, true);
			return;
		}
		if (w <= 0) {
			xfer_broken(x, "cannot send the request", errno);
			return;
		}
		x->sent += (size_t)w;
	}
	conn_want_write(x->c, false);
	if (x->got_any || !x->reused || x->retried)
		head_wipe(x);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h1_conn *c = arg;
	struct h1_xfer *x = c->x;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	if (x == NULL) {
		conn_want_write(c, false);
		return;
	}
	if (c->connecting) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			xfer_fail(x, WD_EUPSTREAM, "cannot connect to the "
			    "provider: %s", strerror(err));
			return;
		}
		c->connecting = false;
		arm(x);
	}
	xfer_send(x);
}

/* ---- the answer ---- */

/* Body bytes to the caller: 1 taken, 0 paused (nothing taken), -1 the
 * transfer is gone. */
static int
deliver(struct h1_xfer *x, const char *d, size_t n)
{
	size_t rc;

	x->in_cb = true;
	rc = x->r.on_data(x->r.arg, d, n);
	if (gone_after_cb(x))
		return -1;
	if (rc == GW_UP_PAUSE) {
		x->paused = true;
		event_del(&x->c->rev);
		return 0;
	}
	if (rc != n) {
		xfer_fail(x, WD_EUPSTREAM, "the answer was not taken");
		return -1;
	}
	return 1;
}

static void
on_line(void *arg, const char *l, size_t len)
{
	struct h1_xfer *x = arg;

	/* The head is read by now: only the final answer's lines. */
	if (!x->aborted && x->h.status >= 200)
		x->r.on_header(x->r.arg, l, len);
}

/* A complete head at p[0..end): interim answers are skipped; the final
 * one goes to the caller.  false: the transfer is gone. */
static bool
take_head(struct h1_xfer *x, const char *p, size_t end)
{
	char why[160];
	enum wd_err rc;

	/* One reading: the caller's on_header sees the lines of a head
	 * found good, and of the final answer only (on_line). */
	x->in_cb = true;
	rc = h1_head_parse(p, end, &x->h, x->r.on_header != NULL ? on_line :
	    NULL, x, why, sizeof(why));
	if (gone_after_cb(x))
		return false;
	if (rc != WD_OK) {
		xfer_fail(x, WD_EUPSTREAM, "%s", why);
		return false;
	}
	if (x->h.status == 101) {
		xfer_fail(x, WD_EUPSTREAM, "the provider switched protocols");
		return false;
	}
	if (x->h.status < 200) {
		/* Interim; the real one follows.  Not without end: a provider
		 * that only ever sends 1xx would hold the transfer open. */
		if (++x->interim > H1_MAX_INTERIM) {
			xfer_fail(x, WD_EUPSTREAM, "the provider sent more than "
			    "%d interim answers", H1_MAX_INTERIM);
			return false;
		}
		return true;
	}
	x->got_head = true;
	h1_body_init(&x->b, &x->h);
	x->in_cb = true;
	x->r.on_head(x->r.arg, x->h.status, x->h.has_ctype ? x->h.ctype :
	    NULL);
	return !gone_after_cb(x);
}

/*
 * Read what p[0..n) holds: heads, body framing, body bytes to the caller.
 * *used is what was taken; the rest (a partial head, or bytes held while
 * paused, `held` of them already framed) waits for more.  false: the
 * transfer is gone (ended, failed or aborted).
 */
static bool
run(struct h1_xfer *x, const char *p, size_t n, size_t *used)
{
	size_t at = 0, u, dl, end;
	const char *d;
	char why[160];
	enum wd_err rc;

	*used = 0;
	while (!x->paused) {
		if (!x->got_head) {
			rc = h1_head_end(p + at, n - at, &x->head_from, &end);
			if (rc != WD_OK) {
				xfer_fail(x, WD_EUPSTREAM, rc == WD_ELIMIT ?
				    "the answer's head is longer than %u bytes" :
				    "the answer's head has a line without CR",
				    H1_MAX_HEAD);
				return false;
			}
			if (end == 0)
				break;
			x->head_from = 0;
			if (!take_head(x, p + at, end))
				return false;
			at += end;
			continue;
		}
		if (x->b.done) {
			/* Reused only if nothing came after the end, and the
			 * whole request went out: a provider that answered
			 * early still has the rest of the body coming, which
			 * the next request would land in. */
			xfer_finish(x, WD_OK, NULL, x->h.keep_alive && at == n &&
			    x->sent == x->head_len + x->r.body_len);
			return false;
		}
		if (at == n)
			break;
		if (h1_body_step(&x->b, p + at, n - at, &u, &d, &dl, why,
		    sizeof(why)) != WD_OK) {
			xfer_fail(x, WD_EUPSTREAM, "%s", why);
			return false;
		}
		at += u;
		if (dl > 0) {
			int k = deliver(x, d, dl);

			if (k < 0)
				return false;
			if (k == 0) {
				/* d..d+dl ends at p+at: keep it, framed. */
				at -= dl;
				x->held = dl;
			}
		}
	}
	*used = at;
	return true;
}

/* Keep p[0..n) for later, after what is kept already. */
static bool
keep(struct h1_xfer *x, const char *p, size_t n)
{
	if (n == 0)
		return true;
	if (x->inlen + n > x->incap) {
		size_t cap = x->inlen + n;
		char *in = realloc(x->in, cap);

		if (in == NULL) {
			xfer_fail(x, WD_ENOMEM, "out of memory");
			return false;
		}
		x->in = in;
		x->incap = cap;
	}
	memmove(x->in + x->inlen, p, n);
	x->inlen += n;
	return true;
}

/* Run over what is kept, and keep what is left of it. */
static bool
run_kept(struct h1_xfer *x)
{
	size_t used;

	if (!run(x, x->in, x->inlen, &used))
		return false;
	memmove(x->in, x->in + used, x->inlen - used);
	x->inlen -= used;
	return true;
}

/* Bytes just read; false: the transfer is gone. */
static bool
take(struct h1_xfer *x, const char *p, size_t n)
{
	size_t used;

	if (x->inlen > 0)
		return keep(x, p, n) && run_kept(x);
	if (!run(x, p, n, &used))
		return false;
	return keep(x, p + used, n - used);
}

static void
idle_drop(struct h1_conn *c)
{
	struct h1_pool *p = c->pool;

	for (struct h1_conn **pp = &p->idle; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			p->nidle--;
			break;
		}
	}
	conn_close(c);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h1_conn *c = arg;
	struct h1_xfer *x = c->x;
	ssize_t n;

	/* Idle: the provider closed it, sent what nobody asked for, or it
	 * was idle too long.  Either way it is not used again. */
	if (x == NULL) {
		idle_drop(c);
		return;
	}
	if (!(what & EV_READ))
		return;		/* the idle deadline, while busy */
	do
		n = recv(fd, c->pool->rbuf, sizeof(c->pool->rbuf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0 && !x->got_any) {
		xfer_broken(x, "no answer from the provider", n < 0 ? errno : 0);
		return;
	}
	if (n < 0) {
		xfer_fail(x, WD_EUPSTREAM, "the provider's connection broke "
		    "mid-answer: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		if (x->got_head && x->inlen == 0 && h1_body_eof(&x->b))
			xfer_finish(x, WD_OK, NULL, false);
		else
			xfer_fail(x, WD_EUPSTREAM, "the provider closed the "
			    "connection mid-answer");
		return;
	}
	x->got_any = true;
	if (x->sent == x->head_len + x->r.body_len)
		head_wipe(x);		/* no retry from here on */
	if (!take(x, c->pool->rbuf, (size_t)n))
		return;
	arm(x);
}

/* ---- the four calls (upstream.c dispatches) ---- */

enum wd_err
h1_start(struct h1_pool *p, const struct gw_up_req *r,
    struct gw_up_xfer **out)
{
	struct sockaddr_storage sa;
	unsigned salen;
	char host[300], why[160];
	const char *target;
	struct h1_xfer *x;
	uint64_t now;
	enum wd_err rc;

	*out = NULL;
	if (p == NULL || r->curl_only || (r->proxy != NULL && r->proxy[0] != '\0') ||
	    !h1_url_literal(r->url, &sa, &salen, host, sizeof(host), &target))
		return WD_ENOTFOUND;
	if ((x = wd_spare_get(&p->xfers)) == NULL)
		return WD_ENOMEM;
	x->base.h1 = true;
	x->pool = p;
	x->r = *r;
	evtimer_assign(&x->watchdog, p->base, watchdog_cb, x);
	if ((rc = build_head(x, host, target)) != WD_OK) {
		xfer_free(x);
		return rc;
	}
	now = wd_mono_us();
	if (r->total_ms > 0)
		x->total_until = now + (uint64_t)r->total_ms * 1000u;
	if (r->connect_ms > 0)
		x->connect_until = now + (uint64_t)r->connect_ms * 1000u;
	*out = &x->base;
	x->starting = true;
	x->c = conn_idle_take(p, &sa, salen);
	x->reused = x->c != NULL;
	if (x->c == NULL)
		x->c = conn_new(p, &sa, salen, why, sizeof(why));
	if (x->c == NULL) {
		xfer_fail(x, WD_EUPSTREAM, "%s", why);
	} else if (p->turns && !x->c->connecting &&
	    event_base_get_num_events(p->base, EVENT_BASE_COUNT_ACTIVE) > 0) {
		x->c->x = x;
		x->due = true;
		x->due_next = NULL;
		if (p->due == NULL)
			p->due = x;
		else
			*p->due_tail = x;
		p->due_tail = &x->due_next;
	} else {
		x->c->x = x;
		xfer_go(x);
	}
	x->starting = false;
	if (x->late_err == WD_OK)
		arm(x);
	return WD_OK;
}

static void
due_drop(struct h1_xfer *x)
{
	struct h1_pool *p = x->pool;
	struct h1_xfer **pp = &p->due, *prev = NULL;

	for (; *pp != NULL; prev = *pp, pp = &(*pp)->due_next) {
		if (*pp != x)
			continue;
		*pp = x->due_next;
		if (p->due_tail == &x->due_next)
			p->due_tail = prev != NULL ? &prev->due_next : &p->due;
		break;
	}
	x->due = false;
}

void
h1_pool_turns(struct h1_pool *p, bool on)
{
	if (p != NULL)
		p->turns = on;
}

void
h1_pool_turn_end(struct h1_pool *p)
{
	if (p == NULL)
		return;
	while (p->due != NULL) {
		struct h1_xfer *x = p->due;

		p->due = x->due_next;
		x->due = false;
		xfer_send(x);
	}
}

void
h1_abort(struct gw_up_xfer *bx)
{
	struct h1_xfer *x = (struct h1_xfer *)bx;

	if (x->in_cb) {
		x->aborted = true;	/* gone once the callback returns */
		return;
	}
	if (x->c != NULL)
		conn_close(x->c);
	xfer_free(x);
}

void
h1_resume(struct gw_up_xfer *bx)
{
	struct h1_xfer *x = (struct h1_xfer *)bx;
	int k;

	if (!x->paused || x->in_cb)
		return;
	x->paused = false;
	if (x->held > 0) {
		if ((k = deliver(x, x->in, x->held)) <= 0)
			return;		/* gone, or paused again */
		memmove(x->in, x->in + x->held, x->inlen - x->held);
		x->inlen -= x->held;
		x->held = 0;
	}
	if (!run_kept(x) || x->paused)
		return;
	event_add(&x->c->rev, NULL);
	arm(x);
}
