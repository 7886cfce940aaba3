/*
 * fuzz_jsonload.c - the one-pass tree builder (gateway/json_scan.c:
 * gw_json_load) against jansson's json_loadb, which it replaces for
 * requests.
 *
 * Input: the first byte picks the flags (bit 0: JSON_REJECT_DUPLICATES,
 * as requests are read); the rest is the JSON text.  Invariants: the
 * builder's tree and jansson's are both there or both not; when there,
 * they are equal (json_equal) and serialise to the same text (same keys
 * in the same order); a refusal carries jansson's error text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/gw_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t e1, e2;
	json_t *a, *b;
	size_t flags;

	if (size < 1 || size > (1u << 16))
		return 0;
	flags = data[0] & 1 ? JSON_REJECT_DUPLICATES : 0;
	data++;
	size--;
	a = gw_json_load((const char *)data, size, flags, &e1);
	b = json_loadb((const char *)data, size, flags, &e2);
	if ((a == NULL) != (b == NULL))
		abort();
	if (a == NULL && strcmp(e1.text, e2.text) != 0)
		abort();
	if (a != NULL) {
		char *ta, *tb;

		if (!json_equal(a, b))
			abort();
		ta = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
		tb = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
		if (ta == NULL || tb == NULL || strcmp(ta, tb) != 0)
			abort();
		free(ta);
		free(tb);
	}
	json_decref(a);
	json_decref(b);
	return 0;
}
