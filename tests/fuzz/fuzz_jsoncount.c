/*
 * fuzz_jsoncount.c - the JSON value count that admit.c runs over request
 * bodies before jansson parses them (gw_json_count_values).
 *
 * Properties: fed in two pieces at any cut it counts the same as in one;
 * and for every text jansson accepts, the count is at least the number of
 * values jansson builds (so the cap bounds the tree it would build); and
 * it counts exactly as the plain byte-by-byte scan below (the one it
 * replaced, which skips strings with memchr).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/gw_int.h"
#include "tests/json_count_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
values(json_t *j)
{
	size_t n = 1, i;
	const char *k;
	json_t *v;

	if (json_is_array(j))
		json_array_foreach(j, i, v)
			n += values(v);
	else if (json_is_object(j))
		json_object_foreach(j, k, v)
			n += values(v);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_json_count one = { 0 }, two = { 0 };
	const char *s = (const char *)data;
	size_t cut = size ? data[0] % (size + 1) : 0, all;
	json_t *j;

	all = gw_json_count_values(&one, s, size);
	gw_json_count_values(&two, s, cut);
	if (gw_json_count_values(&two, s + cut, size - cut) != all)
		abort();
	if (all != json_count_ref(s, size, NULL, NULL))
		abort();
	j = json_loadb(s, size, JSON_DECODE_ANY, NULL);
	if (j != NULL) {
		if (values(j) > all)
			abort();
		json_decref(j);
	}
	return 0;
}
