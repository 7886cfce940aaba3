/*
 * fuzz_usage.c - the usage of a provider's stream as limits read it
 * (gateway/limits.c: gw_limits_stream_usage): whole SSE events from the
 * provider, the usage taken, a usage-only chunk taken out or not.
 *
 * Input: the first byte says whether to strip (bit 0); the rest is what
 * the framing passed as whole events (cut at the last blank line, as
 * gateway/sse.c would).  Invariants: stripping never adds bytes, and
 * without it the events pass unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "gateway/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *out;
	json_t *usage = NULL;
	size_t len;
	bool strip;

	if (size < 1 || size > (1u << 16))
		return 0;
	strip = data[0] & 1;
	data++;
	size--;
	/* Whole events only: up to the last "\n\n". */
	len = size;
	while (len >= 2 && !(data[len - 1] == '\n' && data[len - 2] == '\n'))
		len--;
	if (len < 2)
		return 0;
	if ((out = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(out, data, len);
	gw_limits_stream_usage(out, strip, &usage);
	if (evbuffer_get_length(out) > len)
		abort();
	if (!strip && (evbuffer_get_length(out) != len ||
	    memcmp(evbuffer_pullup(out, -1), data, len) != 0))
		abort();
	if (usage != NULL && !json_is_object(usage))
		abort();
	json_decref(usage);
	evbuffer_free(out);
	return 0;
}
