/*
 * fuzz_chat.c - chat completion body validation (gateway/openai.c) on
 * untrusted bytes: jansson with duplicate keys refused, plus warden's
 * checks.  An accepted body must give a usable model name.  And the
 * reading without a tree (gw_json_scan_chat, json_scan.c) is checked
 * against the tree: what it takes, the tree takes, with the same facts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_int.h"
#include "gateway/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_chat chat;
	char why[256];
	const char *param = NULL;
	enum wd_err rc;

	why[0] = '\0';
	struct gw_chat_facts f;
	json_error_t jerr;
	json_t *tree;

	if (gw_json_scan_chat((const char *)data, size, &f)) {
		json_t *model, *stream, *tools, *msgs, *m;
		size_t i;

		tree = json_loadb((const char *)data, size,
		    JSON_REJECT_DUPLICATES, &jerr);
		model = json_object_get(tree, "model");
		stream = json_object_get(tree, "stream");
		tools = json_object_get(tree, "tools");
		msgs = json_object_get(tree, "messages");
		if (!json_is_string(model) || json_string_length(model) !=
		    f.model_len || memcmp(json_string_value(model), f.model,
		    f.model_len) != 0 || f.stream != json_is_true(stream) ||
		    (stream != NULL && !json_is_boolean(stream) &&
		    !json_is_null(stream)) || (tools != NULL &&
		    !json_is_array(tools) && !json_is_null(tools)) ||
		    !json_is_array(msgs) || json_array_size(msgs) == 0)
			abort();
		json_array_foreach(msgs, i, m)
			if (!json_is_string(json_object_get(m, "role")))
				abort();
		/* The limits' max_tokens, as gw_limits_max_tokens reads it. */
		{
			long long want = gw_limits_max_tokens(tree), got =
			    f.max_completion_tokens >= 0 ?
			    f.max_completion_tokens : f.max_tokens;

			if (got > (1LL << 40))
				got = 1LL << 40;
			if (got != want)
				abort();
		}
		json_decref(tree);
	}
	rc = gw_chat_parse((const char *)data, size, &chat, why, sizeof(why),
	    &param);
	if (rc == WD_OK) {
		json_t *msgs = json_object_get(gw_chat_tree(&chat), "messages");

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
