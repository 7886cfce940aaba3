/*
 * fuzz_inbox.c - the audit inbox's event reader (audit/inbox.c,
 * aud_event_parse) on arbitrary bytes: a file in DIR/inbox/ comes from
 * another process and is untrusted.  It must never crash, and what it
 * accepts must be an object of a known kind, with an event_id and a ts,
 * and without the members only the writer sets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/aud.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	json_t *rec = NULL;

	if (aud_event_parse((const char *)data, size, &rec, why, sizeof(why)) ==
	    WD_OK) {
		const char *kind = json_string_value(json_object_get(rec, "kind"));

		if (!json_is_object(rec) || kind == NULL ||
		    json_object_get(rec, "seq") != NULL ||
		    json_object_get(rec, "hash") != NULL ||
		    json_object_get(rec, "prev") != NULL ||
		    json_object_get(rec, "instance") != NULL ||
		    !json_is_string(json_object_get(rec, "event_id")))
			abort();
	} else if (rec != NULL) {
		abort();
	}
	json_decref(rec);
	return 0;
}
