/*
 * fuzz_converse.c - Bedrock Converse translation (gateway/converse.c) on
 * provider bytes: the input, cut into pieces of fuzzer-chosen sizes, is
 * fed to the converse-stream translator as event-stream bytes, and
 * whole to the answer translator as a Converse JSON answer.  Whatever
 * the translators write must be what the transaction can take: SSE events of
 * JSON chunks (or [DONE]), each "data: ...\n\n"; a chat completion
 * object.
 *
 * Input: the first byte is a piece size (1..256); the rest the stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_sse(const char *s, size_t n)
{
	size_t off = 0;

	while (off < n) {
		const char *end = memmem(s + off, n - off, "\n\n", 2);
		json_t *j;

		if (end == NULL || n - off < 6 || memcmp(s + off, "data: ", 6) != 0)
			abort();
		if ((size_t)(end - (s + off)) == 12 &&
		    memcmp(s + off + 6, "[DONE]", 6) == 0) {
			off += 14;
			continue;
		}
		j = json_loadb(s + off + 6, (size_t)(end - (s + off) - 6), 0, NULL);
		if (!json_is_object(j) || memchr(s + off, '\n', (size_t)(end -
		    (s + off))) != NULL)
			abort();
		json_decref(j);
		off = (size_t)(end - s) + 2;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_converse_stream st;
	size_t piece, off = 1;
	char *out;
	size_t outlen;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	gw_converse_stream_init(&st, "m", "id");
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;
		enum wd_err rc = gw_converse_feed(&st, (const char *)data + off, n,
		    &out, &outlen);

		off += n;
		if (rc != WD_OK) {
			if (out != NULL || outlen != 0)
				abort();
			break;
		}
		check_sse(out, outlen);
		free(out);
	}
	gw_converse_stream_clear(&st);
	if (gw_converse_answer((const char *)data + 1, size - 1, "m", "id",
	    &out, &outlen) == WD_OK) {
		json_t *j = json_loadb(out, outlen, 0, NULL);

		if (!json_is_array(json_object_get(j, "choices")))
			abort();
		json_decref(j);
		free(out);
	}
	return 0;
}
