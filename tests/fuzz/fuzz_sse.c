/*
 * fuzz_sse.c - SSE event framing (gateway/sse.c) on a provider stream cut
 * into pieces of fuzzer-chosen sizes, forwarding complete events the way
 * txn_upstream.c does.
 *
 * Input: the first 8 bytes are piece sizes (1..64, used in a cycle); the
 * rest is the stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENT 512

/* Feed the stream in pieces; returns the bytes forwarded, or -1 on ELIMIT. */
static long
run(const char *s, size_t len, const uint8_t *sizes, size_t nsizes)
{
	struct gw_sse sse;
	struct evbuffer *acc = evbuffer_new();
	size_t off = 0, k = 0, forwarded = 0;
	long ret;

	if (acc == NULL)
		abort();
	gw_sse_init(&sse);
	while (off < len) {
		size_t n = nsizes ? (size_t)(sizes[k++ % nsizes] % 64) + 1 : len;
		size_t complete = (size_t)-1;
		enum wd_err rc;

		if (n > len - off)
			n = len - off;
		rc = gw_sse_feed(&sse, acc, s + off, n, MAX_EVENT, &complete);
		off += n;
		if (rc != WD_OK && rc != WD_ELIMIT)
			abort();
		/* The boundary never passes the bytes fed and not yet taken. */
		if (complete > evbuffer_get_length(acc) ||
		    sse.boundary > sse.scanned ||
		    sse.scanned != evbuffer_get_length(acc) ||
		    forwarded + evbuffer_get_length(acc) != off)
			abort();
		if (rc == WD_ELIMIT) {
			evbuffer_free(acc);
			return -1;
		}
		/* A forwarded piece ends in a line end. */
		if (complete > 0 && s[forwarded + complete - 1] != '\n' &&
		    s[forwarded + complete - 1] != '\r')
			abort();
		/* txn_upstream.c cuts it into events for the tool checks: each one
		 * non-empty, together exactly the piece. */
		for (size_t at = 0, ev; at < complete; at += ev) {
			ev = gw_sse_event_len(s + forwarded + at, complete - at);
			if (ev == 0 || ev > complete - at)
				abort();
		}
		evbuffer_drain(acc, complete);
		gw_sse_consumed(&sse, complete);
		forwarded += complete;
	}
	ret = (long)forwarded;
	evbuffer_free(acc);
	return ret;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t nsizes = size < 8 ? size : 8;
	const char *s = (const char *)data + nsizes;
	size_t len = size - nsizes;
	long pieces, whole;

	pieces = run(s, len, data, nsizes);
	whole = run(s, len, NULL, 0);
	/*
	 * However the stream is cut, the same bytes end up forwarded (unless
	 * the limit hit, which is checked per feed and so depends on the cut).
	 */
	if (pieces >= 0 && whole >= 0 && pieces != whole)
		abort();
	return 0;
}
