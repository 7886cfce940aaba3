/*
 * fuzz_h1.c - a provider's HTTP/1.1 answers (gateway/h1_parse.c) read the
 * way upstream_h1.c reads them: heads (interim ones skipped), then the
 * body's framing, the bytes arriving in pieces of fuzzer-chosen sizes; and
 * the same bytes as one piece.  Also the URL test that picks the client.
 *
 * Input: the first 8 bytes are piece sizes (1..256, used in a cycle); the
 * rest is what the provider sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	enum wd_err rc;		/* WD_OK: framed to its end */
	int status;
	uint64_t body;		/* body bytes given out */
	uint64_t sum;		/* and a checksum of them */
	size_t end;		/* where the answer ended */
};

/* Read s[0..len) as upstream_h1.c's run() does; sizes NULL: one piece. */
static void
run(const char *s, size_t len, const uint8_t *sizes, size_t nsizes,
    struct result *r)
{
	struct h1_head h;
	struct h1_body b;
	size_t from = 0, start = 0, avail = 0, at = 0, k = 0, end;
	bool got_head = false;
	char why[160];

	memset(r, 0, sizeof(*r));
	r->rc = WD_EUPSTREAM;	/* ran out of bytes */
	for (;;) {
		/* More bytes arrive. */
		if (avail < len) {
			size_t n = sizes ? (size_t)sizes[k++ % nsizes] + 1 :
			    len;

			avail += n < len - avail ? n : len - avail;
		}
		while (!got_head) {
			enum wd_err rc = h1_head_end(s + start, avail - start,
			    &from, &end);

			if (rc != WD_OK) {
				r->rc = rc;
				return;
			}
			if (end == 0)
				break;
			rc = h1_head_parse(s + start, end, &h, NULL, NULL, why,
			    sizeof(why));
			if (rc != WD_OK) {
				if (why[0] == '\0')
					abort();	/* a refusal says why */
				r->rc = rc;
				return;
			}
			start += end;
			from = 0;
			if (h.status == 101) {
				r->rc = WD_EUNSUPPORTED;
				return;
			}
			if (h.status < 200)
				continue;
			got_head = true;
			r->status = h.status;
			h1_body_init(&b, &h);
			at = start;
		}
		while (got_head && !b.done && at < avail) {
			size_t used, dl;
			const char *d;

			if (h1_body_step(&b, s + at, avail - at, &used, &d, &dl,
			    why, sizeof(why)) != WD_OK) {
				r->rc = WD_EPARSE;
				return;
			}
			/* The body bytes are among those taken, and something
			 * is taken until the end. */
			if (used > avail - at || (used == 0 && !b.done) ||
			    (dl > 0 && (d < s + at || d + dl > s + at + used)))
				abort();
			if (h.framing == H1_LENGTH && r->body + dl > h.length)
				abort();
			for (size_t i = 0; i < dl; i++)
				r->sum = r->sum * 31 + (unsigned char)d[i];
			r->body += dl;
			at += used;
		}
		if (got_head && b.done) {
			r->rc = WD_OK;
			r->end = at;
			return;
		}
		if (avail == len) {
			/* The provider closed: only a close-framed body ends. */
			if (got_head && h1_body_eof(&b)) {
				r->rc = WD_OK;
				r->end = at;
			}
			return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t nsizes = size < 8 ? size : 8;
	const char *s = (const char *)data + nsizes;
	size_t len = size - nsizes;
	struct result pieces, whole;
	struct sockaddr_storage sa;
	unsigned salen;
	char host[300], *url;
	const char *target;

	run(s, len, data, nsizes, &pieces);
	run(s, len, NULL, 0, &whole);
	/* However the answer is cut into reads, it reads the same (a head
	 * too long is found at the same byte either way). */
	if (pieces.rc != whole.rc || pieces.status != whole.status ||
	    pieces.body != whole.body || pieces.sum != whole.sum ||
	    pieces.end != whole.end)
		abort();
	if (whole.body > len)
		abort();
	/* The URL test never reads past the string. */
	if ((url = malloc(len + 1)) == NULL)
		return 0;
	memcpy(url, s, len);
	url[len] = '\0';
	if (h1_url_literal(url, &sa, &salen, host, sizeof(host), &target) &&
	    (target < url || target > url + len) && strcmp(target, "/") != 0)
		abort();
	free(url);
	return 0;
}
