/*
 * fuzz_jsonscan.c - the answer scanner (gateway/json_scan.c:
 * gw_json_scan_answer) against jansson, whose reading it replaces for
 * answers no policy reads.
 *
 * Input: any bytes, as a provider's whole answer.  Invariants: the
 * scanner accepts exactly what json_loadb(data, size, 0) accepts, but for
 * a NUL byte (jansson skips one that follows a number or a literal; the
 * scanner refuses every NUL: stricter, never laxer); what it
 * accepts is an object exactly when jansson's root is one; the "usage"
 * and "error" it points at are what jansson's object holds under those
 * keys (equal trees, and the same kind).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/gw_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char
kind_of(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return '{';
	case JSON_ARRAY: return '[';
	case JSON_STRING: return '"';
	case JSON_TRUE: return 't';
	case JSON_FALSE: return 'f';
	case JSON_NULL: return 'n';
	default: return '0';
	}
}

static void
same_member(const json_t *root, const char *key, const struct gw_json_span *s)
{
	json_t *want = json_object_get(root, key), *got;

	if (want == NULL) {
		if (s->p != NULL)
			abort();
		return;
	}
	if (s->p == NULL || s->kind != kind_of(want))
		abort();
	got = json_loadb(s->p, s->len, JSON_DECODE_ANY, NULL);
	if (got == NULL || !json_equal(got, want))
		abort();
	json_decref(got);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_json_top top;
	json_t *j;
	bool ok;

	if (size > (1u << 16))
		return 0;
	ok = gw_json_scan_answer((const char *)data, size, &top);
	j = json_loadb((const char *)data, size, 0, NULL);
	if (ok && j == NULL)
		abort();
	if (!ok && j != NULL && memchr(data, '\0', size) == NULL)
		abort();
	if (ok) {
		if (top.object != json_is_object(j))
			abort();
		if (top.object) {
			same_member(j, "usage", &top.usage);
			same_member(j, "error", &top.error);
		}
	}
	json_decref(j);
	return 0;
}
