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
 *
 * The same bytes as a value written into a record from its text
 * (audit/canon.c: aud_canon_raw, how an answer's usage goes into the
 * record): taken only if jansson reads them too, and then written byte
 * for byte as jansson's tree is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit/aud_int.h"
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

/* A record holding the value under "u": from the text if aud_canon_raw
 * takes it (*took), else from tree (which must then exist). */
static char *
record_of(const char *text, size_t len, const json_t *tree, bool *took)
{
	struct aud_canon c;
	struct aud_pre pre;

	aud_canon_begin_as(&c, "i", "2026-11-30T00:00:00Z");
	aud_canon_key(&c, "u");
	*took = text != NULL && aud_canon_raw(&c, text, len);
	if (!*took) {
		if (tree == NULL) {
			aud_canon_free(&c);
			return NULL;
		}
		aud_canon_json(&c, tree);
	}
	if (!aud_canon_end(&c, &pre))
		abort();
	return pre.text;
}

static void
raw_is_tree(const uint8_t *data, size_t size)
{
	json_t *tree = json_loadb((const char *)data, size, JSON_DECODE_ANY,
	    NULL);
	char *a, *b;
	bool took, took_b;

	a = record_of((const char *)data, size, tree, &took);
	if (took && tree == NULL)
		abort();		/* took what jansson refuses */
	if (tree != NULL) {
		b = record_of(NULL, 0, tree, &took_b);
		if (a == NULL || b == NULL || strcmp(a, b) != 0)
			abort();
		free(b);
	}
	free(a);
	json_decref(tree);
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
	if (size <= 4096)
		raw_is_tree(data, size);
	return 0;
}
