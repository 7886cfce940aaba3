/*
 * fuzz_chat.c - chat completion body validation (gateway/openai.c) on
 * untrusted bytes: jansson with duplicate keys refused, plus warden's
 * checks.  An accepted body must give a usable model name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_chat chat;
	char why[256];
	const char *param = NULL;
	enum wd_err rc;

	why[0] = '\0';
	rc = gw_chat_parse((const char *)data, size, &chat, why, sizeof(why),
	    &param);
	if (rc == WD_OK) {
		json_t *msgs = json_object_get(chat.root, "messages");

		if (chat.model == NULL || chat.model[0] == '\0' ||
		    strlen(chat.model) > 256 || param != NULL ||
		    !json_is_object(chat.root) || !json_is_array(msgs) ||
		    json_array_size(msgs) == 0)
			abort();
	} else if (rc != WD_EPARSE || why[0] == '\0') {
		abort();
	}
	gw_chat_clear(&chat);
	return 0;
}
