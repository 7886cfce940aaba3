/*
 * test_h1.c - warden's own HTTP/1.1 client (gateway/upstream_h1.c,
 * h1_parse.c) against a provider that speaks HTTP/1.1 byte by byte as
 * each case scripts it: a raw TCP server in a thread of the test, one
 * listening port per case (each a route of its own, so no kept-alive
 * connection passes from one case to the next), which reads each request
 * whole (head and Content-Length body) and answers with exactly the bytes
 * the case gives, in the pieces and with the pauses it gives.
 *
 * Good answers in every framing arrive exactly; connections are reused
 * only after an answer framed exactly to its end; a kept-alive connection
 * the provider closed is not a failure; every framing a lenient reader
 * would have to guess at is a clean 502 (upstream_error) with nothing of
 * its body passed on, and so recorded; the deadlines hold; a slow client
 * pauses the provider without losing or reordering a byte; and the
 * credential the provider received is in no log.  The mock provider
 * (libevent's HTTP server) cannot send any of the broken answers.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/wd.h"
#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define KEY "wk-it-h1-tenant"
#define SECRET "sk-it-h1-provider-5e1f07"	/* the route's credential */
#define MARK "LEAKMARK-h1"	/* in every body that must not pass */

/* The listening ports, one per case (route p<N>, model m<N>). */
enum lst {
	L_GOOD, L_BYTES, L_SSE, L_KEEP, L_CLOSE, L_SMUGGLE, L_SMUGGLE_LATE,
	L_IDLE_CLOSE, L_REUSED_CLOSE, L_FRESH_CLOSE, L_REFUSED, L_MIDSTREAM,
	L_INTERIM, L_SLOW_READER, L_SILENT, L_MIDBODY, L_DRIP, L_PAUSED,
	L_CURL, L_EARLY, L_V6, L_NOLISTEN, L_NLST
};

/* One warden and its listeners (a tcase's fixture). */
static struct {
	int lfd[L_NLST], lport[L_NLST];
	int port;
	bool v6;		/* L_V6 listens on [::1] */
	pid_t pid;
	char dir[256], cfg[300], log[300], audit[300];
} w;

/* ---- warden ---- */

/* L_V6 on [::1] if this host has it (else on 127.0.0.1, and its test
 * says it was skipped). */
static bool
listen_v6(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
		.sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return false;
	}
	w.lfd[L_V6] = fd;
	w.lport[L_V6] = ntohs(sa.sin6_port);
	return true;
}

static void
listeners_open(void)
{
	w.v6 = listen_v6();
	for (int i = 0; i < L_NLST; i++) {
		if (i == L_V6 && w.v6)
			continue;
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    listen(fd, 64) != 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
			perror("test_h1: listener");
			abort();
		}
		w.lfd[i] = fd;
		w.lport[i] = ntohs(sa.sin_port);
	}
	/* The early answer's provider takes the body slowly: a small
	 * receive window (set before accept, so it holds) keeps most of a
	 * large body in warden when the answer comes. */
	{
		int rcv = 65536;

		setsockopt(w.lfd[L_EARLY], SOL_SOCKET, SO_RCVBUF, &rcv,
		    sizeof(rcv));
	}
	/* Nothing listens there: connections are refused. */
	close(w.lfd[L_NOLISTEN]);
	w.lfd[L_NOLISTEN] = -1;
}

/* Rules: one route per listener; upstream_extra goes into `upstream:`. */
static void
h1_start(const char *name, int first_byte_ms, int idle_ms,
    const char *upstream_extra)
{
	unsigned char d[32];
	char hex[65], portarg[32], auditarg[320];
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	memset(&w, 0, sizeof(w));
	snprintf(w.dir, sizeof(w.dir), "%s/h1-%s", it_tmpdir(), name);
	snprintf(w.cfg, sizeof(w.cfg), "%s/rules.yaml", w.dir);
	snprintf(w.log, sizeof(w.log), "%s/warden.log", w.dir);
	snprintf(w.audit, sizeof(w.audit), "%s/audit", w.dir);
	if (mkdir(w.dir, 0700) != 0 && errno != EEXIST) {
		perror(w.dir);
		abort();
	}
	listeners_open();
	w.port = it_free_port();
	wd_sha256(KEY, strlen(KEY), d);
	wd_hex(d, 32, hex);
	f = open_memstream(&text, &len);
	if (f == NULL)
		abort();
	fprintf(f, "version: 1\n"
	    "server: { listen: '127.0.0.1:%d', workers: 1,"
	    " max_body_bytes: 8388608 }\n"
	    "audit: { dir: %s }\n"
	    "upstream: { connect_timeout_ms: 3000, first_byte_timeout_ms: %d,"
	    " idle_timeout_ms: %d, max_attempts: 1%s }\n"
	    "providers:\n", w.port, w.audit, first_byte_ms, idle_ms,
	    upstream_extra);
	for (int i = 0; i < L_NLST; i++)
		fprintf(f, "  - { id: p%d, base_url: 'http://%s:%d/v1',"
		    " country: DE, credential: c-h1, models: [m%d] }\n", i,
		    i == L_V6 && w.v6 ? "[::1]" : "127.0.0.1", w.lport[i], i);
	fprintf(f, "tenants:\n  - { id: t, keys: ['sha256:%s'], routes: [",
	    hex);
	for (int i = 0; i < L_NLST; i++)
		fprintf(f, "%sp%d", i > 0 ? ", " : "", i);
	fprintf(f, "] }\ndev_credentials:\n  c-h1: " SECRET "\n");
	fclose(f);
	it_write_file(w.cfg, text, 0600);
	free(text);
	snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", w.port);
	snprintf(auditarg, sizeof(auditarg), "%s", w.audit);
	{
		char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", w.cfg,
			"--listen", portarg, "--audit-dir", auditarg,
			"--dev-credentials", NULL };

		w.pid = it_spawn(argv, w.log);
	}
	if (!it_wait_port(w.port, 10000)) {
		fprintf(stderr, "test_h1: warden did not come up; see %s\n",
		    w.log);
		abort();
	}
}

static void
h1_stop(void)
{
	if (w.pid > 0)
		it_stop(w.pid, SIGTERM);
	w.pid = 0;
	for (int i = 0; i < L_NLST; i++)
		if (w.lfd[i] > 0)
			close(w.lfd[i]);
	memset(w.lfd, 0, sizeof(w.lfd));
}

static void
setup_main(void)
{
	h1_start("main", 8000, 8000, "");
}

static void
setup_timeouts(void)
{
	h1_start("timeouts", 700, 700, "");
}

static void
setup_curl(void)
{
	h1_start("curl", 8000, 8000, ", http_client: curl");
}

/* ---- the scripted provider ---- */

enum after {
	A_KEEP,			/* keep the connection open */
	A_CLOSE,		/* close it right after the answer */
	A_CLOSE_LATER,		/* close it after_ms later */
	A_HANGUP,		/* close it without answering */
	A_SILENT,		/* never answer; keep it open */
	A_LATE_BYTES,		/* after_ms later, send `late` unasked */
};

struct ans {
	const char *bytes;	/* the answer exactly */
	size_t len;		/* 0: strlen(bytes) */
	void (*gen)(int fd);	/* or: writes the answer itself */
	int pre_ms;		/* wait before answering */
	size_t piece;		/* >0: write in pieces of this size ... */
	int piece_us;		/* ... this long apart */
	enum after after;
	int after_ms;
	const char *late;
	bool early;		/* answer once the head is in; the body is
				 * read (and dropped) after the answer and
				 * after_ms more */
};

#define MAXC 32
#define MAXR 64

struct srv {
	int lfd;
	const struct ans *ans;
	int nans;
	/* what happened (read after srv_stop) */
	int accepts;
	int nreq;
	int req_conn[MAXR];	/* which accepted connection carried each */
	char head0[8192];	/* the first request's head */
	pthread_t th;
	int stop[2];
};

struct sconn {
	int fd, id;
	char *buf;
	size_t len;
	size_t skip;		/* body bytes still to drop (early answers) */
};

static void
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;		/* warden hung up: its right */
		p += k;
		n -= (size_t)k;
	}
}

/* Length of the whole request at the start of p[0..n), or 0; with
 * head_only, of its head, and *body the length of its body. */
static size_t
req_complete(const char *p, size_t n, bool head_only, size_t *blen)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4), *cl;
	size_t head, body = 0;

	if (end == NULL)
		return 0;
	head = (size_t)(end - p) + 4;
	for (cl = p; cl < end; cl++)
		if ((cl == p || cl[-1] == '\n') &&
		    strncasecmp(cl, "Content-Length:", 15) == 0) {
			body = strtoul(cl + 15, NULL, 10);
			break;
		}
	*blen = body;
	if (head_only)
		return head;
	return n >= head + body ? head + body : 0;
}

static void
answer(struct srv *s, struct sconn *c, const struct ans *a, bool *closed)
{
	size_t len = a->len ? a->len : a->bytes ? strlen(a->bytes) : 0;

	*closed = false;
	if (a->pre_ms > 0)
		usleep((useconds_t)a->pre_ms * 1000);
	if (a->after == A_HANGUP) {
		*closed = true;
		return;
	}
	if (a->after == A_SILENT)
		return;
	if (a->gen != NULL) {
		a->gen(c->fd);
	} else if (a->piece > 0) {
		for (size_t off = 0; off < len; off += a->piece) {
			send_all(c->fd, a->bytes + off, len - off < a->piece ?
			    len - off : a->piece);
			usleep((useconds_t)a->piece_us);
		}
	} else {
		send_all(c->fd, a->bytes, len);
	}
	switch (a->after) {
	case A_CLOSE:
		*closed = true;
		break;
	case A_CLOSE_LATER:
		usleep((useconds_t)a->after_ms * 1000);
		*closed = true;
		break;
	case A_LATE_BYTES:
		usleep((useconds_t)a->after_ms * 1000);
		send_all(c->fd, a->late, strlen(a->late));
		break;
	default:
		break;
	}
	/* An early answer: the body is read only after_ms later. */
	if (a->early && a->after_ms > 0)
		usleep((useconds_t)a->after_ms * 1000);
	(void)s;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	struct sconn c[MAXC];
	int nc = 0;

	for (;;) {
		struct pollfd p[MAXC + 2];
		int n = 2;

		p[0] = (struct pollfd){ .fd = s->stop[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (int i = 0; i < nc; i++)
			p[n++] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (p[0].revents != 0)
			break;
		if ((p[1].revents & POLLIN) && nc < MAXC) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				c[nc++] = (struct sconn){ .fd = fd,
				    .id = s->accepts++ };
				continue;	/* p[] is stale now */
			}
		}
		for (int i = nc - 1; i >= 0; i--) {
			char buf[65536];
			ssize_t k;
			size_t whole;
			bool closed = false;

			if (p[2 + i].revents == 0)
				continue;
			k = recv(c[i].fd, buf, sizeof(buf), 0);
			if (k > 0) {
				c[i].buf = realloc(c[i].buf, c[i].len + (size_t)k);
				memcpy(c[i].buf + c[i].len, buf, (size_t)k);
				c[i].len += (size_t)k;
			}
			for (;;) {
				size_t drop = c[i].skip < c[i].len ? c[i].skip :
				    c[i].len, blen = 0;
				bool early = s->nreq < s->nans &&
				    s->ans[s->nreq].early;
				int r;

				memmove(c[i].buf, c[i].buf + drop, c[i].len - drop);
				c[i].len -= drop;
				c[i].skip -= drop;
				if (k <= 0 || closed || c[i].skip > 0 ||
				    (whole = req_complete(c[i].buf, c[i].len,
				    early, &blen)) == 0)
					break;
				r = s->nreq++;
				if (early)
					c[i].skip = blen;

				if (r < MAXR)
					s->req_conn[r] = c[i].id;
				if (r == 0) {
					size_t hl = (size_t)((char *)memmem(c[i].buf,
					    c[i].len, "\r\n\r\n", 4) - c[i].buf);

					snprintf(s->head0, sizeof(s->head0), "%.*s",
					    (int)hl, c[i].buf);
				}
				memmove(c[i].buf, c[i].buf + whole, c[i].len - whole);
				c[i].len -= whole;
				if (r >= s->nans)
					closed = true;	/* not scripted */
				else
					answer(s, &c[i], &s->ans[r], &closed);
			}
			if (k <= 0 || closed) {
				close(c[i].fd);
				free(c[i].buf);
				c[i] = c[--nc];
			}
		}
	}
	for (int i = 0; i < nc; i++) {
		close(c[i].fd);
		free(c[i].buf);
	}
	return NULL;
}

static void
srv_run(struct srv *s, enum lst l, const struct ans *ans, int nans)
{
	memset(s, 0, sizeof(*s));
	s->lfd = w.lfd[l];
	s->ans = ans;
	s->nans = nans;
	ck_assert(pipe(s->stop) == 0);
	ck_assert(pthread_create(&s->th, NULL, srv_main, s) == 0);
}

/* Wait settle_ms (for connections that should not come), then stop. */
static void
srv_stop(struct srv *s, int settle_ms)
{
	if (settle_ms > 0)
		usleep((useconds_t)settle_ms * 1000);
	ck_assert(write(s->stop[1], "x", 1) == 1);
	pthread_join(s->th, NULL);
	close(s->stop[0]);
	close(s->stop[1]);
}

/* ---- answers ---- */

/* What a test allocates for its answers, freed after it (a checked
 * teardown): the suite runs under LeakSanitizer too. */
static char *owned[512];
static int nowned;

static char *
own(char *p)
{
	ck_assert(p != NULL && nowned < (int)(sizeof(owned) / sizeof(*owned)));
	owned[nowned++] = p;
	return p;
}

static void
owned_free(void)
{
	while (nowned > 0)
		free(owned[--nowned]);
}

static char *
fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *f, ...)
{
	va_list ap;
	char *out;
	int n;

	va_start(ap, f);
	n = vasprintf(&out, f, ap);
	va_end(ap);
	ck_assert(n >= 0);
	return own(out);
}

/* A chat completion whose content is text. */
static char *
completion(const char *text)
{
	char *out;

	out = fmt("{\"id\":\"chatcmpl-h1\",\"object\":"
	    "\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":"
	    "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
	    "\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
	    "1,\"completion_tokens\":2,\"total_tokens\":3}}", text);
	return out;
}

/* "HTTP/1.1 200 OK" with headers (each ending in CRLF) and a
 * Content-Length body. */
static char *
with_length(const char *headers, const char *body)
{
	char *out;

	out = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\n%sContent-Length: %zu\r\n\r\n%s", headers,
	    strlen(body), body);
	return out;
}

static char *
cat(const char *a, const char *b)
{
	char *out;

	out = fmt("%s%s", a, b);
	return out;
}

/* ---- the client's side ---- */

static void
chat(enum lst l, const char *content, bool stream, struct it_resp *r)
{
	char model[16], url[96], *body;

	snprintf(model, sizeof(model), "m%d", (int)l);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    w.port);
	body = it_chat_body(model, content, stream);
	it_chat_at(url, KEY, NULL, body, 30000, r);
	free(body);
}

static void
assert_answer(const struct it_resp *r, const char *body, const char *what)
{
	ck_assert_msg(r->status == 200, "%s: status %ld (curl %d): %s", what,
	    r->status, r->curl_code, r->body);
	ck_assert_msg(r->len == strlen(body) && memcmp(r->body, body,
	    r->len) == 0, "%s: the body changed:\n got %s\nwant %s", what,
	    r->body, body);
}

/* The audit record of the decision that answered r; NULL after 5 s. */
static json_t *
record_of(const struct it_resp *r)
{
	char id[80];

	if (it_resp_header(r, "X-Warden-Decision", id, sizeof(id)) == NULL)
		return NULL;
	for (int waited = 0; waited < 5000; waited += 50) {
		DIR *dp = opendir(w.audit);
		struct dirent *e;
		json_t *found = NULL;

		while (dp != NULL && found == NULL && (e = readdir(dp)) != NULL) {
			char path[600], *text, *line, *save;

			if (strncmp(e->d_name, "audit-", 6) != 0 ||
			    strstr(e->d_name, ".jsonl") == NULL)
				continue;
			snprintf(path, sizeof(path), "%s/%s", w.audit, e->d_name);
			text = it_read_file(path, NULL);
			for (line = text ? strtok_r(text, "\n", &save) : NULL;
			    line != NULL && found == NULL;
			    line = strtok_r(NULL, "\n", &save)) {
				json_t *j;

				if (strstr(line, id) == NULL ||
				    strstr(line, "\"kind\":\"request\"") == NULL)
					continue;
				j = json_loads(line, 0, NULL);
				if (j != NULL && json_is_string(json_object_get(j,
				    "decision_id")) && strcmp(json_string_value(
				    json_object_get(j, "decision_id")), id) == 0)
					found = j;
				else
					json_decref(j);
			}
			free(text);
		}
		if (dp != NULL)
			closedir(dp);
		if (found != NULL)
			return found;
		usleep(50000);
	}
	return NULL;
}

/*
 * A clean provider failure: status (502 or 504) with warden's code, the
 * OpenAI error shape, a message naming why (frag), nothing of the
 * provider's body; and the record says the same.
 */
static void
assert_failed(const struct it_resp *r, long status, const char *code,
    const char *frag, const char *what)
{
	const char *const frags[] = { frag, NULL };
	json_t *rec, *att;
	const char *err;

	ck_assert_msg(r->status == status, "%s: status %ld, want %ld: %s", what,
	    r->status, status, r->body);
	it_assert_error(r, status, "server_error", code, frag ? frags : NULL);
	ck_assert_msg(strstr(r->body, MARK) == NULL && strstr(r->headers,
	    MARK) == NULL, "%s: the refused body was passed on: %s", what,
	    r->body);
	rec = record_of(r);
	ck_assert_msg(rec != NULL, "%s: no audit record", what);
	ck_assert_msg(json_integer_value(json_object_get(rec, "status")) ==
	    status, "%s: the record's status is not %ld", what, status);
	ck_assert_msg(json_is_string(json_object_get(rec, "code")) &&
	    strcmp(json_string_value(json_object_get(rec, "code")), code) == 0,
	    "%s: the record's code is not %s", what, code);
	att = json_array_get(json_object_get(rec, "attempts"), 0);
	err = json_string_value(json_object_get(att, "error"));
	ck_assert_msg(err != NULL && (frag == NULL || strstr(err, frag) != NULL),
	    "%s: the record's attempt says '%s', not '%s'", what,
	    err ? err : "(nothing)", frag ? frag : "");
	json_decref(rec);
}

/* ---- 1. good answers in every framing ---- */

START_TEST(good_answers_in_every_framing)
{
	char *b = completion("framed exactly"), *chunked, *eof, *bighead, *h10;
	char pad[1025];
	struct it_resp r;
	struct srv s;
	FILE *f;
	size_t len = 0;

	/* Chunked: sizes in both cases of hex, extensions (with and without
	 * whitespace before them, quoted values), and trailers. */
	f = open_memstream(&chunked, &len);
	fprintf(f, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	fprintf(f, "%x;ext=1\r\n%.*s\r\n", 10, 10, b);
	fprintf(f, "%X ; name=\"quoted; value\"\r\n%.*s\r\n", 0x1a, 0x1a, b + 10);
	fprintf(f, "%zx\r\n%s\r\n", strlen(b + 36), b + 36);
	fprintf(f, "0;last\r\nX-Trailer-One: 1\r\nX-Trailer-Two: two\r\n\r\n");
	fclose(f);
	own(chunked);
	/* No length: until the server closes. */
	eof = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\n\r\n%s", b);
	/* A head just under 64 KiB is read (the limit is not lower). */
	memset(pad, 'p', 1024);
	pad[1024] = '\0';
	{
		char *h = strdup("");

		for (int i = 0; i < 60; i++) {
			char *n;

			ck_assert(asprintf(&n, "%sX-Pad-%02d: %s\r\n", h, i, pad) >= 0);
			free(h);
			h = n;
		}
		bighead = with_length(h, b);
		free(h);
		ck_assert_uint_lt(strstr(bighead, "\r\n\r\n") - bighead + 4,
		    64u << 10);
	}
	/* HTTP/1.0, a length with leading zeros. */
	h10 = fmt("HTTP/1.0 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: 000%zu\r\n\r\n%s",
	    strlen(b), b);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b) },
			{ .bytes = chunked },
			{ .bytes = eof, .after = A_CLOSE },
			{ .bytes = bighead },
			{ .bytes = h10 },
		};

		srv_run(&s, L_GOOD, a, 5);
		chat(L_GOOD, "h1-good-length", false, &r);
		assert_answer(&r, b, "Content-Length");
		it_resp_free(&r);
		chat(L_GOOD, "h1-good-chunked", false, &r);
		assert_answer(&r, b, "chunked with extensions and trailers");
		it_resp_free(&r);
		chat(L_GOOD, "h1-good-eof", false, &r);
		assert_answer(&r, b, "read to the server's close");
		it_resp_free(&r);
		chat(L_GOOD, "h1-good-bighead", false, &r);
		assert_answer(&r, b, "a head of 61 KiB");
		it_resp_free(&r);
		chat(L_GOOD, "h1-good-http10", false, &r);
		assert_answer(&r, b, "HTTP/1.0 with a length");
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	ck_assert_int_eq(s.nreq, 5);
	/* The route's credential and warden's request head reached it. */
	ck_assert_msg(strstr(s.head0, "POST /v1/chat/completions HTTP/1.1\r\n") ==
	    s.head0, "%s", s.head0);
	ck_assert_msg(strstr(s.head0, "\r\nAuthorization: Bearer " SECRET) !=
	    NULL, "%s", s.head0);
}
END_TEST

/* Head and body arrive a byte at a time, and a chunked body too. */
START_TEST(answers_fed_byte_by_byte)
{
	char *b = completion("one byte at a time"), *chunked;
	struct it_resp r;
	struct srv s;

	chunked = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx;e=1\r\n%s\r\n0\r\nX-T: 1\r\n\r\n", strlen(b), b);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b), .piece = 1, .piece_us = 300 },
			{ .bytes = chunked, .piece = 1, .piece_us = 300 },
		};

		srv_run(&s, L_BYTES, a, 2);
		chat(L_BYTES, "h1-bytes-length", false, &r);
		assert_answer(&r, b, "Content-Length, byte by byte");
		it_resp_free(&r);
		chat(L_BYTES, "h1-bytes-chunked", false, &r);
		assert_answer(&r, b, "chunked, byte by byte");
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	/* Both framed exactly: one connection. */
	ck_assert_int_eq(s.accepts, 1);
}
END_TEST

/* The SSE text of n chat chunks (event i says "ev-i"), then [DONE]. */
static char *
sse_text(int n, size_t pad, size_t *len)
{
	char *out = NULL, *padding = malloc(pad + 1);
	FILE *f = open_memstream(&out, len);

	memset(padding, 'x', pad);
	padding[pad] = '\0';
	for (int i = 0; i < n; i++)
		fprintf(f, "data: {\"id\":\"chatcmpl-h1\",\"object\":"
		    "\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
		    "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
		    "\"ev-%07d %s\"},\"finish_reason\":null}]}\n\n", i, padding);
	fprintf(f, "data: [DONE]\n\n");
	fclose(f);
	free(padding);
	return out;
}

/* A streamed answer: chunked, in chunks of 1..23 bytes that cut events
 * anywhere, each its own TCP write. */
static void
gen_small_chunks(int fd)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
	size_t len, off = 0, k = 1;
	char *text = sse_text(40, 10, &len);

	send_all(fd, head, sizeof(head) - 1);
	while (off < len) {
		size_t n = k < len - off ? k : len - off;
		char line[32];
		int ll = snprintf(line, sizeof(line), "%zx\r\n", n);

		send_all(fd, line, (size_t)ll);
		usleep(100);
		send_all(fd, text + off, n);
		send_all(fd, "\r\n", 2);
		off += n;
		k = k % 23 + 1;
	}
	send_all(fd, "0\r\n\r\n", 5);
	free(text);
}

START_TEST(streamed_answer_in_small_chunks_arrives_intact)
{
	const struct ans a[] = { { .gen = gen_small_chunks },
		{ .gen = gen_small_chunks } };
	struct it_resp r;
	struct srv s;
	size_t len;
	char *want = sse_text(40, 10, &len), ct[128];

	srv_run(&s, L_SSE, a, 2);
	for (int i = 0; i < 2; i++) {
		chat(L_SSE, i == 0 ? "h1-sse-1" : "h1-sse-2", true, &r);
		ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
		ck_assert(it_resp_header(&r, "Content-Type", ct, sizeof(ct)) !=
		    NULL);
		ck_assert_msg(strncmp(ct, "text/event-stream", 17) == 0, "%s", ct);
		ck_assert_msg(r.len == len && memcmp(r.body, want, len) == 0,
		    "the stream changed (%zu bytes, want %zu):\n%s", r.len, len,
		    r.body);
		it_resp_free(&r);
	}
	srv_stop(&s, 200);
	/* A stream framed to its end leaves the connection for the next. */
	ck_assert_int_eq(s.accepts, 1);
	free(want);
}
END_TEST

/* ---- 2. keep-alive, Connection: close, and bytes after the end ---- */

START_TEST(keep_alive_reuses_one_connection)
{
	char *b1 = completion("first"), *b2 = completion("second");
	char *b3 = completion("third"), *ch;
	struct it_resp r;
	struct srv s;

	ch = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n", strlen(b2), b2);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b1) },
			{ .bytes = ch },
			{ .bytes = with_length("Connection: keep-alive\r\n", b3) },
		};

		srv_run(&s, L_KEEP, a, 3);
		chat(L_KEEP, "h1-keep-1", false, &r);
		assert_answer(&r, b1, "first");
		it_resp_free(&r);
		chat(L_KEEP, "h1-keep-2", false, &r);
		assert_answer(&r, b2, "second (chunked)");
		it_resp_free(&r);
		chat(L_KEEP, "h1-keep-3", false, &r);
		assert_answer(&r, b3, "third");
		it_resp_free(&r);
		srv_stop(&s, 200);
	}
	ck_assert_int_eq(s.nreq, 3);
	ck_assert_msg(s.accepts == 1, "%d connections for three sequential "
	    "requests", s.accepts);
}
END_TEST

/* Connection: close (the server keeps it open: warden must not reuse
 * it) and an HTTP/1.0 answer both end the connection's use. */
START_TEST(connection_close_is_honoured)
{
	char *b1 = completion("closing"), *b2 = completion("after close");
	char *b3 = completion("after 1.0"), *h10;
	struct it_resp r;
	struct srv s;

	h10 = fmt("HTTP/1.0 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(b2),
	    b2);
	{
		const struct ans a[] = {
			{ .bytes = with_length("Connection: Keep-Alive, close\r\n",
			    b1) },
			{ .bytes = h10 },
			{ .bytes = with_length("", b3) },
		};

		srv_run(&s, L_CLOSE, a, 3);
		chat(L_CLOSE, "h1-close-1", false, &r);
		assert_answer(&r, b1, "Connection: close");
		it_resp_free(&r);
		chat(L_CLOSE, "h1-close-2", false, &r);
		assert_answer(&r, b2, "HTTP/1.0");
		it_resp_free(&r);
		chat(L_CLOSE, "h1-close-3", false, &r);
		assert_answer(&r, b3, "after HTTP/1.0");
		it_resp_free(&r);
		srv_stop(&s, 200);
	}
	ck_assert_int_eq(s.nreq, 3);
	ck_assert_int_eq(s.accepts, 3);
	ck_assert_int_eq(s.req_conn[0], 0);
	ck_assert_int_eq(s.req_conn[1], 1);
	ck_assert_int_eq(s.req_conn[2], 2);
}
END_TEST

/*
 * A second answer smuggled behind the first (in the same write, and
 * unasked a little later on the idle connection): the first request is
 * answered, the connection is not used again, and the next request gets
 * the provider's real second answer, never the smuggled one.
 */
START_TEST(smuggled_answer_is_never_delivered)
{
	char *b1 = completion("honest first"), *b2 = completion("honest second");
	char *evil = completion(MARK " smuggled"), *first, *smuggled;
	struct it_resp r;
	struct srv s;

	smuggled = with_length("", evil);
	first = cat(with_length("", b1), smuggled);
	{
		const struct ans a[] = {
			{ .bytes = first },
			{ .bytes = with_length("", b2) },
		};

		srv_run(&s, L_SMUGGLE, a, 2);
		chat(L_SMUGGLE, "h1-smuggle-1", false, &r);
		assert_answer(&r, b1, "the answer before the smuggled one");
		it_resp_free(&r);
		chat(L_SMUGGLE, "h1-smuggle-2", false, &r);
		ck_assert_msg(strstr(r.body, MARK) == NULL, "the smuggled answer "
		    "was delivered: %s", r.body);
		assert_answer(&r, b2, "the request after the smuggled answer");
		it_resp_free(&r);
		srv_stop(&s, 200);
	}
	ck_assert_int_eq(s.accepts, 2);
	ck_assert_int_eq(s.req_conn[1], 1);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b1), .after = A_LATE_BYTES,
			    .after_ms = 50, .late = smuggled },
			{ .bytes = with_length("", b2) },
		};

		srv_run(&s, L_SMUGGLE_LATE, a, 2);
		chat(L_SMUGGLE_LATE, "h1-smuggle-late-1", false, &r);
		assert_answer(&r, b1, "the answer before the late bytes");
		it_resp_free(&r);
		usleep(1000000);	/* the unasked bytes come meanwhile */
		chat(L_SMUGGLE_LATE, "h1-smuggle-late-2", false, &r);
		ck_assert_msg(strstr(r.body, MARK) == NULL, "the unasked answer "
		    "was delivered: %s", r.body);
		assert_answer(&r, b2, "the request after the late bytes");
		it_resp_free(&r);
		srv_stop(&s, 200);
	}
	ck_assert_int_eq(s.accepts, 2);
	ck_assert_int_eq(s.req_conn[1], 1);
}
END_TEST

/* ---- 3. the provider closes connections ---- */

/* Closed while idle (no Connection: close, closed 100 ms after the
 * answer): the next request goes on a new connection and succeeds. */
START_TEST(idle_connection_closed_by_provider_is_replaced)
{
	char *b1 = completion("then idle close"), *b2 = completion("fresh");
	const struct ans a[] = {
		{ .bytes = with_length("", b1), .after = A_CLOSE_LATER,
		    .after_ms = 100 },
		{ .bytes = with_length("", b2) },
	};
	struct it_resp r;
	struct srv s;

	srv_run(&s, L_IDLE_CLOSE, a, 2);
	chat(L_IDLE_CLOSE, "h1-idle-1", false, &r);
	assert_answer(&r, b1, "before the idle close");
	it_resp_free(&r);
	usleep(500000);
	chat(L_IDLE_CLOSE, "h1-idle-2", false, &r);
	assert_answer(&r, b2, "after the idle close");
	it_resp_free(&r);
	srv_stop(&s, 200);
	ck_assert_int_eq(s.accepts, 2);
	ck_assert_int_eq(s.nreq, 2);
}
END_TEST

/*
 * A kept-alive connection that the provider closes when the next request
 * arrives, before a byte of the answer: retried once on a new connection
 * (the request reaches the provider twice, the client sees one answer).
 */
START_TEST(reused_connection_closed_before_answer_is_retried_once)
{
	char *b1 = completion("kept"), *b3 = completion("after the retry");
	const struct ans a[] = {
		{ .bytes = with_length("", b1) },
		{ .after = A_HANGUP },
		{ .bytes = with_length("", b3) },
	};
	struct it_resp r;
	struct srv s;

	srv_run(&s, L_REUSED_CLOSE, a, 3);
	chat(L_REUSED_CLOSE, "h1-reused-1", false, &r);
	assert_answer(&r, b1, "first");
	it_resp_free(&r);
	chat(L_REUSED_CLOSE, "h1-reused-2", false, &r);
	assert_answer(&r, b3, "the retried request");
	it_resp_free(&r);
	srv_stop(&s, 300);
	ck_assert_int_eq(s.nreq, 3);
	ck_assert_int_eq(s.accepts, 2);
	ck_assert_int_eq(s.req_conn[1], 0);	/* tried on the kept one */
	ck_assert_int_eq(s.req_conn[2], 1);	/* then on a new one */
}
END_TEST

/* A fresh connection closed without an answer: 502 at once, and the
 * request is not sent again (one connection, one request). */
START_TEST(fresh_connection_closed_without_answer_is_502)
{
	const struct ans a[] = { { .after = A_HANGUP } };
	struct it_resp r;
	struct srv s;
	double t0 = it_now_s();

	srv_run(&s, L_FRESH_CLOSE, a, 1);
	chat(L_FRESH_CLOSE, "h1-fresh-close", false, &r);
	ck_assert_msg(it_now_s() - t0 < 5.0, "took %.1f s", it_now_s() - t0);
	assert_failed(&r, 502, "upstream_error", "closed the connection",
	    "fresh connection closed");
	it_resp_free(&r);
	srv_stop(&s, 500);
	ck_assert_int_eq(s.accepts, 1);
	ck_assert_int_eq(s.nreq, 1);
}
END_TEST

/*
 * The provider answers as soon as the request's head is in (as a server
 * that refuses a body early does) and keeps the connection, reading the
 * rest of the body after its answer (700 ms later).  A body of 7 MiB is far from sent
 * then: the connection may carry the next request only after the whole
 * body went out, or not at all; the next request must not end up inside
 * the last one's body.
 *
 * Failed on upstream_h1.c as of 42ba048: run() released the connection
 * for reuse when the answer was framed to its end even though x->sent <
 * head_len + body_len, so the next request went out in the middle of the
 * last body and the provider never saw it (504 after
 * first_byte_timeout_ms).  Fixed: such a connection is closed.
 */
START_TEST(early_answer_before_the_body_is_sent_does_not_desync)
{
	char *b1 = completion("early"), *b2 = completion("next"), *content;
	char url[96], model[16], *body;
	const size_t big = 7u << 20;
	struct it_resp r;
	struct srv s;

	content = malloc(big + 1);
	memset(content, 'a', big);
	content[big] = '\0';
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b1), .early = true,
			    .pre_ms = 300, .after_ms = 700 },
			{ .bytes = with_length("", b2) },
		};

		srv_run(&s, L_EARLY, a, 2);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/"
		    "completions", w.port);
		snprintf(model, sizeof(model), "m%d", (int)L_EARLY);
		body = it_chat_body(model, content, false);
		it_chat_at(url, KEY, NULL, body, 30000, &r);
		free(body);
		assert_answer(&r, b1, "the early answer");
		it_resp_free(&r);
		chat(L_EARLY, "h1-after-early", false, &r);
		assert_answer(&r, b2, "the request after an early answer");
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	ck_assert_int_eq(s.nreq, 2);
	free(content);
}
END_TEST

/* A route at an IPv6 literal is warden's client's too: Host names it in
 * brackets, and the strict reader refuses what it refuses elsewhere. */
START_TEST(ipv6_literal_route)
{
	char *b = completion("over IPv6"), *bare, host[64];
	struct it_resp r;
	struct srv s;

	if (!w.v6) {
		fprintf(stderr, "h1: no [::1] here; ipv6_literal_route skipped\n");
		return;
	}
	bare = fmt("HTTP/1.1 200 OK\nContent-Type: "
	    "application/json\nContent-Length: %zu\n\n%s", strlen(b), b);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b) },
			{ .bytes = with_length("", b) },
			{ .bytes = bare },
		};

		srv_run(&s, L_V6, a, 3);
		chat(L_V6, "h1-v6-1", false, &r);
		assert_answer(&r, b, "IPv6");
		it_resp_free(&r);
		chat(L_V6, "h1-v6-2", false, &r);
		assert_answer(&r, b, "IPv6, again");
		it_resp_free(&r);
		chat(L_V6, "h1-v6-3", false, &r);
		assert_failed(&r, 502, "upstream_error", "without CR", "IPv6, "
		    "bare LF");
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	snprintf(host, sizeof(host), "\r\nHost: [::1]:%d\r\n", w.lport[L_V6]);
	ck_assert_msg(strstr(s.head0, host) != NULL, "%s", s.head0);
	ck_assert_int_eq(s.accepts, 1);
}
END_TEST

/* Nothing listens: a 502 at once, not a hang. */
START_TEST(refused_connection_is_502)
{
	struct it_resp r;
	double t0 = it_now_s();

	chat(L_NOLISTEN, "h1-nolisten", false, &r);
	ck_assert_msg(it_now_s() - t0 < 5.0, "took %.1f s", it_now_s() - t0);
	assert_failed(&r, 502, "upstream_error", "refused", "nothing listens");
	it_resp_free(&r);
}
END_TEST

/* ---- 4. framings that are refused ---- */

struct refusal {
	const char *name;
	char *bytes;
	size_t len;
	const char *frag;	/* in the message and the record */
	enum after after;
};

static void
refusals(struct refusal *out, int *n)
{
	char *b = completion(MARK " must not pass"), *big = NULL, *line;
	size_t bl = strlen(b), len = 0;
	char ctype[300];
	FILE *f;
	int k = 0;

#define R(nm, fr, af, ...) do { \
	out[k].name = nm; out[k].frag = fr; out[k].after = af; \
	out[k].bytes = fmt(__VA_ARGS__); \
	out[k].len = strlen(out[k].bytes); k++; } while (0)

	R("bare LF line ends", "without CR", A_KEEP,
	    "HTTP/1.1 200 OK\nContent-Type: application/json\n"
	    "Content-Length: %zu\n\n%s", bl, b);
	R("one header ends in a bare LF", "without CR", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\n\r\n%s", bl, b);
	R("a bare CR in the head", "CR", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\rX: y\r\n"
	    "Content-Length: %zu\r\n\r\n%s", bl, b);
	R("obs-fold", "folds", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "X-Folded: a\r\n b\r\nContent-Length: %zu\r\n\r\n%s", bl, b);
	/* Either length reads as a JSON answer (5 spaces of padding). */
	R("two different Content-Lengths", "two different Content-Lengths",
	    A_KEEP, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nContent-Length: %zu\r\n\r\n%s     ", bl,
	    bl + 5, b);
	R("Content-Length and chunked", "both a Content-Length and chunked",
	    A_KEEP, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx\r\n%s\r\n0\r\n\r\n", bl, b);
	R("Transfer-Encoding: gzip", "transfer coding", A_CLOSE,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n%s", b);
	R("Transfer-Encoding: gzip, chunked", "transfer coding", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
	    bl, b);
	R("two Transfer-Encodings", "two Transfer-Encodings", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx\r\n%s\r\n0\r\n\r\n", bl, b);
	R("a space before the colon", "malformed header", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length : %zu\r\n\r\n%s", bl, b);
	R("a signed Content-Length", "not a length", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: +%zu\r\n\r\n%s", bl, b);
	R("chunked in HTTP/1.0", "HTTP/1.0", A_KEEP,
	    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", bl, b);
	R("a chunk size that is not hex", "chunk", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0x%zx\r\n%s\r\n0\r\n\r\n", bl, b);
	R("a chunk size with no digits", "chunk", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\n%s\r\n0\r\n\r\n", b);
	R("a chunk size past 60 bits", "chunk size is too long", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1%016zx\r\n%s\r\n0\r\n\r\n",
	    bl, b);
	/* A lenient reader would cut it and read a broken JSON text: the
	 * code (not bad_upstream_response) says the framing was refused. */
	R("a chunk longer than its size", "longer than its size", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
	    bl - 10, b);
	R("the answer cut mid-body", "mid-answer", A_CLOSE,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%.*s", bl + 100, (int)bl, b);
	R("chunked answer cut mid-chunk", "mid-answer", A_CLOSE,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s", bl + 50, b);
	R("interim answers without end", "interim answers", A_KEEP,
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    bl, b);
	R("status 101 then an answer", "switched protocols", A_KEEP,
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
	    "Connection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\n\r\n%s", bl, b);
	R("a control byte in a header value", "control byte", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "X-Note: a\x01z\r\nContent-Length: %zu\r\n\r\n%s", bl, b);
	R("HTTP/2 status line", "not HTTP/1.x", A_KEEP,
	    "HTTP/2 200\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", bl, b);
	R("malformed trailers", "trailers", A_KEEP,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\nX-T: a\x02"
	    "\r\n\r\n", bl, b);
#undef R
	/* A NUL in a header value (asprintf would stop at it). */
	line = with_length("X-Note: a#z\r\n", b);	/* owned */
	len = strlen(line);
	*strchr(line, '#') = '\0';
	out[k++] = (struct refusal){ "a NUL in a header value", line, len,
	    "control byte", A_KEEP };
	len = 0;
	/* A Content-Type of 300 bytes. */
	memset(ctype, 'a', sizeof(ctype) - 1);
	ctype[sizeof(ctype) - 1] = '\0';
	memcpy(ctype, "application/json; x=", 20);
	out[k].bytes = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "%s\r\nContent-Length: %zu\r\n\r\n%s", ctype, bl, b);
	out[k].len = strlen(out[k].bytes);
	out[k].name = "a Content-Type over 255 bytes";
	out[k].frag = "Content-Type is too long";
	out[k++].after = A_KEEP;
	/* A head of 70 KiB (in many headers of 1 KiB). */
	f = open_memstream(&big, &len);
	fprintf(f, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
	for (int i = 0; i < 70; i++) {
		fprintf(f, "X-Pad-%02d: ", i);
		for (int j = 0; j < 1000; j++)
			fputc('p', f);
		fprintf(f, "\r\n");
	}
	fprintf(f, "Content-Length: %zu\r\n\r\n%s", bl, b);
	fclose(f);
	own(big);
	out[k++] = (struct refusal){ "a head over 64 KiB", big, len,
	    "longer than 65536", A_KEEP };
	*n = k;
}

START_TEST(refused_framings_are_502_and_pass_nothing_on)
{
	struct refusal rf[40];
	struct ans a[40];
	struct it_resp r;
	struct srv s;
	int n;

	refusals(rf, &n);
	for (int i = 0; i < n; i++)
		a[i] = (struct ans){ .bytes = rf[i].bytes, .len = rf[i].len,
		    .after = rf[i].after };
	srv_run(&s, L_REFUSED, a, n);
	for (int i = 0; i < n; i++) {
		char content[64];

		snprintf(content, sizeof(content), "h1-refused-%d", i);
		chat(L_REFUSED, content, false, &r);
		assert_failed(&r, 502, "upstream_error", rf[i].frag, rf[i].name);
		it_resp_free(&r);
	}
	srv_stop(&s, 300);
	ck_assert_int_eq(s.nreq, n);
	/* A connection that carried a refused answer is not used again, and
	 * no refusal is retried. */
	ck_assert_int_eq(s.accepts, n);
	for (int i = 0; i < n; i++)
		ck_assert_msg(s.req_conn[i] == i, "%s: on connection %d",
		    rf[i].name, s.req_conn[i]);
}
END_TEST

/* A stream whose chunk framing breaks mid-way: the events before the
 * break went out, then an upstream_error event, and no [DONE] and
 * nothing after the break. */
START_TEST(stream_with_broken_framing_ends_with_error_event)
{
	size_t len;
	char *text = sse_text(3, 0, &len), *bytes;
	const char *tail = "data: {\"choices\":[{\"delta\":{\"content\":\""
	    MARK "\"}}]}\n\n";
	struct it_resp r;
	struct srv s;

	/* Three events and [DONE] would follow; the break is before them. */
	bytes = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx\r\n%.*s\r\nzz\r\n%s\r\n0\r\n\r\n", len - 14, (int)(len - 14),
	    text, tail);
	{
		const struct ans a[] = { { .bytes = bytes } };

		srv_run(&s, L_MIDSTREAM, a, 1);
		chat(L_MIDSTREAM, "h1-midstream", true, &r);
		srv_stop(&s, 0);
	}
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_msg(strncmp(r.body, text, len - 14) == 0, "the events before "
	    "the break changed: %s", r.body);
	ck_assert_msg(strstr(r.body, "upstream_error") != NULL, "no error "
	    "event: %s", r.body);
	ck_assert_msg(strstr(r.body, MARK) == NULL, "%s", r.body);
	ck_assert_msg(strstr(r.body, "[DONE]") == NULL, "%s", r.body);
	it_resp_free(&r);
	free(text);
}
END_TEST

/* ---- 5. interim answers ---- */

START_TEST(interim_answers_are_skipped)
{
	char *b = completion("after continue"), *one, *two;
	struct it_resp r;
	struct srv s;

	one = cat("HTTP/1.1 100 Continue\r\n\r\n", with_length("", b));
	two = cat("HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\n", with_length("", b));
	{
		const struct ans a[] = {
			{ .bytes = one },
			/* Each byte its own write: the interim heads are read
			 * across reads. */
			{ .bytes = two, .piece = 7, .piece_us = 500 },
		};

		srv_run(&s, L_INTERIM, a, 2);
		chat(L_INTERIM, "h1-interim-1", false, &r);
		assert_answer(&r, b, "100 Continue first");
		it_resp_free(&r);
		chat(L_INTERIM, "h1-interim-2", false, &r);
		assert_answer(&r, b, "103 and 100 first, in pieces");
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	ck_assert_int_eq(s.accepts, 1);
}
END_TEST

/* ---- 7. backpressure ---- */

#define BIG_EVENTS 13000
#define BIG_PAD 200

/* 4 MiB of SSE, chunked in 50,000-byte chunks that cut events
 * anywhere, written in writes of 64 KiB. */
static void
gen_big(int fd)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
	size_t len, off = 0;
	char *text = sse_text(BIG_EVENTS, BIG_PAD, &len), *out = NULL;
	size_t olen = 0;
	FILE *f = open_memstream(&out, &olen);

	fwrite(head, 1, sizeof(head) - 1, f);
	while (off < len) {
		size_t n = len - off < 50000 ? len - off : 50000;

		fprintf(f, "%zx\r\n", n);
		fwrite(text + off, 1, n, f);
		fprintf(f, "\r\n");
		off += n;
	}
	fprintf(f, "0\r\n\r\n");
	fclose(f);
	for (off = 0; off < olen; off += 65536)
		send_all(fd, out + off, olen - off < 65536 ? olen - off : 65536);
	free(out);
	free(text);
}

/* Decode a chunked body in p[0..n) into *out; true when it ended. */
static bool
dechunk(const char *p, size_t n, char **out, size_t *olen)
{
	size_t at = 0;
	FILE *f = open_memstream(out, olen);
	bool ended = false;

	while (at < n) {
		char *e;
		unsigned long k = strtoul(p + at, &e, 16);

		if (e == p + at || (size_t)(e - p) + 2 > n)
			break;
		at = (size_t)(e - p) + 2;
		if (k == 0) {
			ended = true;
			break;
		}
		if (at + k + 2 > n)
			break;
		fwrite(p + at, 1, k, f);
		at += k + 2;
	}
	fclose(f);
	return ended;
}

/*
 * Stream through a raw socket with a small receive buffer, reading
 * slowly (stall_ms at first and again after the first 256 KiB); the
 * whole decoded body.
 */
static char *
slow_stream(enum lst l, const char *content, int stall_ms, size_t *blen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)w.port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 16384;
	char *body = NULL, *req, *raw = NULL, model[16];
	size_t rlen = 0, got = 0;
	bool stalled = false;
	double end = it_now_s() + 30;

	snprintf(model, sizeof(model), "m%d", (int)l);
	{
		char *b = it_chat_body(model, content, true);

		ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
		    "Host: 127.0.0.1\r\nAuthorization: Bearer " KEY "\r\n"
		    "Content-Type: application/json\r\nConnection: close\r\n"
		    "Content-Length: %zu\r\n\r\n%s", strlen(b), b) >= 0);
		free(b);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	send_all(fd, req, strlen(req));
	usleep((useconds_t)stall_ms * 1000);
	while (it_now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[8192];
		ssize_t k;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		k = recv(fd, buf, sizeof(buf), 0);
		if (k <= 0)
			break;
		raw = realloc(raw, rlen + (size_t)k + 1);
		memcpy(raw + rlen, buf, (size_t)k);
		rlen += (size_t)k;
		raw[rlen] = '\0';
		got += (size_t)k;
		if (!stalled && got > (256u << 10)) {
			stalled = true;
			usleep((useconds_t)stall_ms * 1000);
		}
		usleep(500);		/* a slow reader */
		if (rlen > 5 && memcmp(raw + rlen - 5, "0\r\n\r\n", 5) == 0)
			break;
	}
	close(fd);
	ck_assert_msg(raw != NULL && strncmp(raw, "HTTP/1.1 200 ", 13) == 0,
	    "%.300s", raw ? raw : "(nothing)");
	{
		char *h = strstr(raw, "\r\n\r\n");

		ck_assert(h != NULL);
		if (memmem(raw, (size_t)(h - raw), "Transfer-Encoding: chunked",
		    26) != NULL) {
			ck_assert_msg(dechunk(h + 4, rlen - (size_t)(h + 4 - raw),
			    &body, blen), "the stream did not end (%zu bytes)",
			    rlen);
		} else {
			*blen = rlen - (size_t)(h + 4 - raw);
			body = malloc(*blen + 1);
			memcpy(body, h + 4, *blen);
		}
	}
	free(raw);
	free(req);
	return body;
}

START_TEST(slow_reader_gets_four_mib_intact_and_in_order)
{
	const struct ans a[] = { { .gen = gen_big } };
	struct srv s;
	size_t len, blen;
	char *want = sse_text(BIG_EVENTS, BIG_PAD, &len), *got;

	ck_assert_uint_gt(len, 4u << 20);
	srv_run(&s, L_SLOW_READER, a, 1);
	got = slow_stream(L_SLOW_READER, "h1-slow-reader", 300, &blen);
	srv_stop(&s, 0);
	if (blen != len || memcmp(got, want, len) != 0) {
		size_t i = 0;

		while (i < blen && i < len && got[i] == want[i])
			i++;
		ck_abort_msg("the stream changed at byte %zu of %zu (got %zu):"
		    "\n got %.120s\nwant %.120s", i, len, blen, got + i,
		    want + i);
	}
	free(got);
	free(want);
}
END_TEST

/* ---- the credential ---- */

/* Run last in a tcase: after every failure above, no log or record
 * holds the credential the provider received. */
START_TEST(credential_is_in_no_log)
{
	DIR *dp;
	struct dirent *e;
	int files = 0;

	ck_assert(!it_file_contains(w.log, SECRET));
	ck_assert(!it_file_contains(w.log, KEY));
	/* The failures were logged (this is the right file). */
	ck_assert_msg(it_file_contains(w.log, "provider 'p"), "no failure "
	    "in %s", w.log);
	dp = opendir(w.audit);
	ck_assert(dp != NULL);
	while ((e = readdir(dp)) != NULL) {
		char path[600];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", w.audit, e->d_name);
		files++;
		ck_assert_msg(!it_file_contains(path, SECRET), "%s holds the "
		    "credential", path);
	}
	closedir(dp);
	ck_assert_int_gt(files, 0);
}
END_TEST

/* ---- 6. deadlines ---- */

/* Accepts, reads the request, never answers: 504 after
 * first_byte_timeout_ms (700), not before. */
START_TEST(silent_provider_gets_504_after_first_byte_timeout)
{
	const struct ans a[] = { { .after = A_SILENT } };
	struct it_resp r;
	struct srv s;
	double t0 = it_now_s(), took;

	srv_run(&s, L_SILENT, a, 1);
	chat(L_SILENT, "h1-silent", false, &r);
	took = it_now_s() - t0;
	srv_stop(&s, 0);
	ck_assert_msg(took >= 0.65 && took < 4.0, "took %.2f s", took);
	assert_failed(&r, 504, "upstream_timeout", "no answer", "silent");
	it_resp_free(&r);
	ck_assert_int_eq(s.accepts, 1);
}
END_TEST

/* The head and part of the body, then silence: cut idle_timeout_ms
 * (700) after the last byte. */
START_TEST(provider_silent_mid_body_is_cut_after_idle_timeout)
{
	char *b = completion(MARK), *part;
	struct it_resp r;
	struct srv s;
	double t0, took;

	part = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\n\r\n%.20s",
	    strlen(b), b);
	{
		/* The head comes after 500 ms (under the first-byte deadline):
		 * the silence after it is measured from it, so the cut comes
		 * at about 1.2 s, not at 0.7 s. */
		const struct ans a[] = { { .bytes = part, .pre_ms = 500 } };

		srv_run(&s, L_MIDBODY, a, 1);
		t0 = it_now_s();
		chat(L_MIDBODY, "h1-midbody", false, &r);
		took = it_now_s() - t0;
		srv_stop(&s, 0);
	}
	ck_assert_msg(took >= 1.1 && took < 5.0, "took %.2f s", took);
	assert_failed(&r, 504, "upstream_timeout", "silent mid-answer",
	    "silent mid-body");
	it_resp_free(&r);
}
END_TEST

/* A byte every 300 ms for 2.4 s, longer than both deadlines put
 * together: each byte restarts the idle deadline, so it is answered. */
START_TEST(slow_but_steady_provider_is_not_cut)
{
	char *b = completion("dripping"), *ans;
	struct it_resp r;
	struct srv s;

	ans = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(b),
	    b);
	{
		/* 8 pieces, the first right away. */
		size_t piece = strlen(ans) / 8 + 1;
		const struct ans a[] = { { .bytes = ans, .piece = piece,
			.piece_us = 300000 } };

		srv_run(&s, L_DRIP, a, 1);
		chat(L_DRIP, "h1-drip", false, &r);
		srv_stop(&s, 0);
	}
	assert_answer(&r, b, "a byte every 300 ms");
	it_resp_free(&r);
}
END_TEST

/* A client that stops reading for 1.5 s (over idle_timeout_ms) while the
 * provider waits, paused: the provider is not blamed, nothing is lost. */
START_TEST(paused_transfer_is_not_cut_by_idle_timeout)
{
	const struct ans a[] = { { .gen = gen_big } };
	struct srv s;
	size_t len, blen;
	char *want = sse_text(BIG_EVENTS, BIG_PAD, &len), *got;

	srv_run(&s, L_PAUSED, a, 1);
	got = slow_stream(L_PAUSED, "h1-paused", 1500, &blen);
	srv_stop(&s, 0);
	ck_assert_msg(blen == len && memcmp(got, want, len) == 0,
	    "the stream changed (%zu bytes, want %zu): ...%.200s", blen, len,
	    blen > 200 ? got + blen - 200 : got);
	free(got);
	free(want);
}
END_TEST

/* ---- 8. http_client: curl ---- */

START_TEST(curl_client_still_answers)
{
	char *b = completion("through libcurl"), *chunked, *bare_lf;
	struct it_resp r;
	struct srv s;

	chunked = fmt("HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "%zx\r\n%s\r\n0\r\n\r\n", strlen(b), b);
	bare_lf = fmt("HTTP/1.1 200 OK\nContent-Type: "
	    "application/json\nContent-Length: %zu\n\n%s", strlen(b), b);
	{
		const struct ans a[] = {
			{ .bytes = with_length("", b) },
			{ .bytes = chunked },
			{ .bytes = bare_lf, .after = A_CLOSE },
		};

		srv_run(&s, L_CURL, a, 3);
		chat(L_CURL, "h1-curl-1", false, &r);
		assert_answer(&r, b, "libcurl, Content-Length");
		it_resp_free(&r);
		chat(L_CURL, "h1-curl-2", false, &r);
		assert_answer(&r, b, "libcurl, chunked");
		it_resp_free(&r);
		/* Whatever libcurl makes of bare LF line ends, it is not
		 * warden's own reader that reads them here. */
		chat(L_CURL, "h1-curl-3", false, &r);
		ck_assert_msg(r.status == 200 || r.status == 502, "%ld %s",
		    r.status, r.body);
		ck_assert_msg(strstr(r.body, "line without CR") == NULL,
		    "warden's own client read the answer: %s", r.body);
		it_resp_free(&r);
		srv_stop(&s, 0);
	}
	ck_assert_int_eq(s.nreq, 3);
	ck_assert_msg(strstr(s.head0, "\r\nAuthorization: Bearer " SECRET) !=
	    NULL, "%s", s.head0);
}
END_TEST

Suite *
suite_h1(void)
{
	Suite *s = suite_create("h1");
	TCase *tc = tcase_create("h1");

	tcase_add_unchecked_fixture(tc, setup_main, h1_stop);
	tcase_add_checked_fixture(tc, NULL, owned_free);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, good_answers_in_every_framing);
	tcase_add_test(tc, answers_fed_byte_by_byte);
	tcase_add_test(tc, streamed_answer_in_small_chunks_arrives_intact);
	tcase_add_test(tc, keep_alive_reuses_one_connection);
	tcase_add_test(tc, connection_close_is_honoured);
	tcase_add_test(tc, smuggled_answer_is_never_delivered);
	tcase_add_test(tc, idle_connection_closed_by_provider_is_replaced);
	tcase_add_test(tc, reused_connection_closed_before_answer_is_retried_once);
	tcase_add_test(tc, fresh_connection_closed_without_answer_is_502);
	tcase_add_test(tc, early_answer_before_the_body_is_sent_does_not_desync);
	tcase_add_test(tc, ipv6_literal_route);
	tcase_add_test(tc, refused_connection_is_502);
	tcase_add_test(tc, refused_framings_are_502_and_pass_nothing_on);
	tcase_add_test(tc, stream_with_broken_framing_ends_with_error_event);
	tcase_add_test(tc, interim_answers_are_skipped);
	tcase_add_test(tc, slow_reader_gets_four_mib_intact_and_in_order);
	tcase_add_test(tc, credential_is_in_no_log);
	suite_add_tcase(s, tc);

	/* Small deadlines: first byte and idle 700 ms. */
	tc = tcase_create("h1-timeouts");
	tcase_add_unchecked_fixture(tc, setup_timeouts, h1_stop);
	tcase_add_checked_fixture(tc, NULL, owned_free);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, silent_provider_gets_504_after_first_byte_timeout);
	tcase_add_test(tc, provider_silent_mid_body_is_cut_after_idle_timeout);
	tcase_add_test(tc, slow_but_steady_provider_is_not_cut);
	tcase_add_test(tc, paused_transfer_is_not_cut_by_idle_timeout);
	tcase_add_test(tc, credential_is_in_no_log);
	suite_add_tcase(s, tc);

	/* upstream.http_client: curl. */
	tc = tcase_create("h1-curl");
	tcase_add_unchecked_fixture(tc, setup_curl, h1_stop);
	tcase_add_checked_fixture(tc, NULL, owned_free);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, curl_client_still_answers);
	suite_add_tcase(s, tc);
	return s;
}
