/*
 * fuzz_requests.c - request bodies in the Messages, Responses and
 * Embeddings formats (gateway/fmt_requests.c): the strict reader, the
 * tool view an agent's request is judged on, and the strip that maps the
 * policy's view back onto the request.  Invariants: a request the reader
 * took has a model; the view is a chat request the chat reader takes; a
 * view left with no tools leaves the request none, nor a tool_choice.
 *
 * Input: byte 0 - which format (mod 3), bit 2: count_tokens (Messages).
 * The rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned apis[3] = { POL_API_MESSAGES, POL_API_RESPONSES,
		POL_API_EMBEDDINGS };
	struct gw_req r;
	struct gw_chat chat;
	char why[256], refused[64], *text;
	const char *param;
	json_t *view;
	unsigned api;

	if (size < 1)
		return 0;
	api = apis[data[0] % 3];
	if (gw_req_parse(api, (data[0] & 4) != 0, (const char *)data + 1,
	    size - 1, &r, why, sizeof(why), &param) != WD_OK) {
		gw_req_clear(&r);
		return 0;
	}
	if (r.model == NULL || *r.model == '\0')
		abort();
	if (api == POL_API_EMBEDDINGS) {
		gw_req_clear(&r);
		return 0;
	}
	view = gw_req_tools_view(&r, NULL, refused, sizeof(refused));
	text = json_dumps(view, JSON_COMPACT);
	if (text == NULL || gw_chat_parse(text, strlen(text), &chat, why,
	    sizeof(why), &param) != WD_OK)
		abort();		/* the view is no chat request */
	gw_chat_clear(&chat);
	free(text);
	/* Strip every other offered tool from the view, map it back. */
	if (json_is_array(json_object_get(view, "tools"))) {
		json_t *vt = json_object_get(view, "tools");

		for (size_t i = json_array_size(vt); i-- > 0; )
			if (i % 2 == 1)
				json_array_remove(vt, i);
		if (json_array_size(vt) == 0)
			json_object_del(view, "tools");
		gw_req_tools_apply(&r, view);
		/* Nothing kept: nothing offered, and no forced choice. */
		if (json_object_get(view, "tools") == NULL &&
		    (json_object_get(r.root, "tools") != NULL ||
		    json_object_get(r.root, "tool_choice") != NULL))
			abort();
	}
	json_decref(view);
	gw_req_clear(&r);
	return 0;
}
