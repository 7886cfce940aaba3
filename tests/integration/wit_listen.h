/*
 * wit_listen.h - loopback witnesses for the tests (unit and integration):
 * a syslog collector on UDP, on TCP (RFC 6587 octet counting) or on a
 * Unix datagram socket, and an HTTP server that takes POSTs.  Each runs
 * in a thread of the test and keeps what it received, in order: the
 * whole syslog message and its MSG part (the checkpoint line), or the
 * POST body.  Real sockets, nothing faked; static functions, included
 * by the test files that use them.
 */
#ifndef WIT_LISTEN_H
#define WIT_LISTEN_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WL_MAX 64

enum wl_kind { WL_UDP, WL_TCP, WL_UNIX, WL_HTTP };

struct wl {
	enum wl_kind kind;
	int fd;
	int port;			/* UDP, TCP, HTTP */
	char path[108];			/* Unix */
	pthread_t th;
	pthread_mutex_t mu;
	volatile int stop;
	int n;
	char *raw[WL_MAX];		/* the whole message or body */
	char *msg[WL_MAX];		/* the checkpoint line */
	int http_status;		/* what the HTTP witness answers */
};

static void
wl_add(struct wl *l, const char *p, size_t len)
{
	char *raw = malloc(len + 1), *m;

	if (raw == NULL)
		return;
	memcpy(raw, p, len);
	raw[len] = '\0';
	/* RFC 5424 as warden sends it: MSG follows "checkpoint - ". */
	m = l->kind == WL_HTTP ? raw : strstr(raw, " checkpoint - ");
	m = m == NULL ? NULL : l->kind == WL_HTTP ? strdup(m) : strdup(m + 14);
	pthread_mutex_lock(&l->mu);
	if (l->n < WL_MAX) {
		l->raw[l->n] = raw;
		l->msg[l->n++] = m;
		raw = m = NULL;
	}
	pthread_mutex_unlock(&l->mu);
	free(raw);
	free(m);
}

/* Wait for input on fd for up to 100 ms; false when told to stop. */
static bool
wl_wait(struct wl *l, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (!l->stop)
		if (poll(&p, 1, 100) > 0)
			return true;
	return false;
}

/* TCP: "LEN SP MSG" frames, as many as come, on one connection. */
static void
wl_tcp_conn(struct wl *l, int c)
{
	char *buf = NULL;
	size_t len = 0;

	while (wl_wait(l, c)) {
		char tmp[4096];
		ssize_t n = recv(c, tmp, sizeof(tmp), 0);
		char *sp, *np;

		if (n <= 0)
			break;
		if ((np = realloc(buf, len + (size_t)n + 1)) == NULL)
			break;
		buf = np;
		memcpy(buf + len, tmp, (size_t)n);
		len += (size_t)n;
		buf[len] = '\0';
		while ((sp = memchr(buf, ' ', len)) != NULL) {
			size_t want = strtoul(buf, NULL, 10), hl = (size_t)(sp - buf) + 1;

			if (len < hl + want)
				break;
			wl_add(l, buf + hl, want);
			memmove(buf, buf + hl + want, len - hl - want);
			len -= hl + want;
		}
	}
	free(buf);
}

/* HTTP/1.1: requests with Content-Length, kept alive. */
static void
wl_http_conn(struct wl *l, int c)
{
	char *buf = NULL;
	size_t len = 0;

	while (wl_wait(l, c)) {
		char tmp[4096], *end, *cl, *np;
		ssize_t n = recv(c, tmp, sizeof(tmp), 0);

		if (n <= 0)
			break;
		if ((np = realloc(buf, len + (size_t)n + 1)) == NULL)
			break;
		buf = np;
		memcpy(buf + len, tmp, (size_t)n);
		len += (size_t)n;
		buf[len] = '\0';
		while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			size_t hl = (size_t)(end - buf) + 4, bl = 0;
			char ans[128];
			int al;

			cl = strcasestr(buf, "content-length:");
			if (cl != NULL && cl < end)
				bl = strtoul(cl + 15, NULL, 10);
			if (len < hl + bl)
				break;
			if (strncmp(buf, "POST ", 5) == 0)
				wl_add(l, buf + hl, bl);
			al = snprintf(ans, sizeof(ans), "HTTP/1.1 %d X\r\n"
			    "Content-Length: 0\r\n\r\n", l->http_status);
			if (send(c, ans, (size_t)al, MSG_NOSIGNAL) != al)
				goto out;
			memmove(buf, buf + hl + bl, len - hl - bl);
			len -= hl + bl;
			buf[len] = '\0';
		}
	}
out:
	free(buf);
}

static void *
wl_main(void *arg)
{
	struct wl *l = arg;

	while (wl_wait(l, l->fd)) {
		if (l->kind == WL_UDP || l->kind == WL_UNIX) {
			char tmp[65536];
			ssize_t n = recv(l->fd, tmp, sizeof(tmp), 0);

			if (n > 0)
				wl_add(l, tmp, (size_t)n);
		} else {
			int c = accept(l->fd, NULL, NULL);

			if (c < 0)
				continue;
			if (l->kind == WL_TCP)
				wl_tcp_conn(l, c);
			else
				wl_http_conn(l, c);
			close(c);
		}
	}
	return NULL;
}

/* Start a witness of kind; for WL_UNIX, path is its socket. */
static bool
wl_start(struct wl *l, enum wl_kind kind, const char *path)
{
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->http_status = 200;
	pthread_mutex_init(&l->mu, NULL);
	if (kind == WL_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(l->path, sizeof(l->path), "%s", path);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		unlink(path);
		l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sun,
		    sizeof(sun)) != 0)
			return false;
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sa);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		l->fd = socket(AF_INET, kind == WL_UDP ? SOCK_DGRAM : SOCK_STREAM,
		    0);
		if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa,
		    sizeof(sa)) != 0 || (kind != WL_UDP && listen(l->fd, 8) != 0) ||
		    getsockname(l->fd, (struct sockaddr *)&sa, &sl) != 0)
			return false;
		l->port = ntohs(sa.sin_port);
	}
	return pthread_create(&l->th, NULL, wl_main, l) == 0;
}

/* How many it has; waits up to wait_ms for at least want. */
static int
wl_count(struct wl *l, int want, int wait_ms)
{
	int n;

	for (int waited = 0; ; waited += 20) {
		pthread_mutex_lock(&l->mu);
		n = l->n;
		pthread_mutex_unlock(&l->mu);
		if (n >= want || waited >= wait_ms)
			return n;
		usleep(20000);
	}
}

static void
wl_stop(struct wl *l)
{
	l->stop = 1;
	pthread_join(l->th, NULL);
	close(l->fd);
	if (l->kind == WL_UNIX)
		unlink(l->path);
	for (int i = 0; i < l->n; i++) {
		free(l->raw[i]);
		free(l->msg[i]);
	}
	pthread_mutex_destroy(&l->mu);
}

#endif /* WIT_LISTEN_H */
