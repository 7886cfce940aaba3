/*
 * bench_ttfb.c - part of `make bench`: the streamed time to first byte.
 *
 *   bench_ttfb PORT BODY_FILE N [-H "Name: value"]...
 *
 * N times: connect to 127.0.0.1:PORT (not timed), send one POST
 * /v1/chat/completions with the body (a request with "stream": true) and
 * "Connection: close", and time from the request's write to
 * the first byte of the answer's body (the first byte after the head's
 * blank line: the first chunk of the stream).  Then read the answer to its
 * end: it must be a 200 whose body holds "data: [DONE]", or the run fails
 * (exit 1) instead of timing an error page.  Prints
 *   ttfb: n=N p50_us=X p90_us=Y min_us=Z
 * wrk cannot do this (it reports the time to the whole answer), hence this
 * small client.  Blocking sockets and one connection at a time: it measures
 * a single stream's latency, not throughput.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_N		100000
#define MAX_HEADERS	16
#define MAX_BODY	(1024 * 1024)
/* An answer is at most this big; the mock's streams are a few kB. */
#define MAX_ANSWER	(4 * 1024 * 1024)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One streamed request; *ttfb_us gets its time to first body byte.
 * false (with a reason on stderr) when the answer is not a whole stream. */
static bool one(int port, const char *req, size_t reqlen, char *ans,
    double *ttfb_us)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	size_t have = 0, head_end = 0;
	double t0;
	bool ok = false, timed = false;
	int fd, one_ = 1;

	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("bench_ttfb: connect");
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
	/* From before the write: on loopback the answer can arrive while
	 * write() still runs. */
	t0 = now_us();
	if (!write_all(fd, req, reqlen)) {
		perror("bench_ttfb: write");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, ans + have, MAX_ANSWER - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("bench_ttfb: read");
			goto out;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (head_end == 0) {
			char *e = memmem(ans, have, "\r\n\r\n", 4);

			if (e != NULL)
				head_end = (size_t)(e - ans) + 4;
		}
		if (!timed && head_end != 0 && have > head_end) {
			*ttfb_us = now_us() - t0;
			timed = true;
		}
		if (have == MAX_ANSWER) {
			fputs("bench_ttfb: answer too long\n", stderr);
			goto out;
		}
	}
	if (have < 12 || memcmp(ans + 9, "200", 3) != 0 || !timed ||
	    memmem(ans + head_end, have - head_end, "data: [DONE]", 12) == NULL) {
		fprintf(stderr, "bench_ttfb: not a whole 200 stream: %.*s\n",
		    (int)(have < 400 ? have : 400), ans);
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	const char *hdr[MAX_HEADERS];
	size_t nhdr = 0, bodylen, reqlen = 0, reqcap;
	char *body = NULL, *req = NULL, *ans = NULL;
	double *t = NULL;
	long port, n;
	FILE *f;
	int rc = 1;

	if (argc < 4) {
		fputs("usage: bench_ttfb PORT BODY_FILE N [-H 'Name: value']...\n",
		    stderr);
		return 2;
	}
	port = strtol(argv[1], NULL, 10);
	n = strtol(argv[3], NULL, 10);
	if (port < 1 || port > 65535 || n < 1 || n > MAX_N) {
		fputs("bench_ttfb: PORT 1-65535, N 1-100000\n", stderr);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "-H") != 0 || i + 1 >= argc ||
		    nhdr == MAX_HEADERS) {
			fputs("bench_ttfb: extra arguments are -H 'Name: value' "
			    "(at most 16)\n", stderr);
			return 2;
		}
		hdr[nhdr++] = argv[++i];
	}
	f = fopen(argv[2], "rb");
	body = malloc(MAX_BODY);
	if (f == NULL || body == NULL) {
		perror("bench_ttfb: body");
		goto out;
	}
	bodylen = fread(body, 1, MAX_BODY, f);
	fclose(f);
	reqcap = bodylen + 4096;
	for (size_t i = 0; i < nhdr; i++)
		reqcap += strlen(hdr[i]) + 2;
	req = malloc(reqcap);
	ans = malloc(MAX_ANSWER);
	t = calloc((size_t)n, sizeof *t);
	if (req == NULL || ans == NULL || t == NULL)
		goto out;
	reqlen = (size_t)snprintf(req, reqcap,
	    "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%ld\r\n"
	    "Content-Type: application/json\r\n"
	    "Accept: text/event-stream\r\n"
	    "Connection: close\r\n"
	    "Content-Length: %zu\r\n", port, bodylen);
	for (size_t i = 0; i < nhdr; i++)
		reqlen += (size_t)snprintf(req + reqlen, reqcap - reqlen,
		    "%s\r\n", hdr[i]);
	reqlen += (size_t)snprintf(req + reqlen, reqcap - reqlen, "\r\n");
	memcpy(req + reqlen, body, bodylen);
	reqlen += bodylen;

	for (long i = 0; i < n; i++)
		if (!one((int)port, req, reqlen, ans, &t[i]))
			goto out;
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("ttfb: n=%ld p50_us=%.1f p90_us=%.1f min_us=%.1f\n", n,
	    n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2,
	    t[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1], t[0]);
	rc = 0;
out:
	free(body);
	free(req);
	free(ans);
	free(t);
	return rc;
}
