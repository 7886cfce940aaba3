/*
 * fmt_embeddings.c - the strict reader of OpenAI Embeddings answers
 * (POST /v1/embeddings).  They carry no calls; what is read strictly is
 * still what the client gets (a list of vectors, the model, usage), so a
 * provider cannot slip anything else to a client through this endpoint.
 * Embeddings do not stream: read_chunk refuses every chunk.
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_EMB_MAX_ITEMS 2048

static enum wd_err
emb_read_answer(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "object", "data", "model", "usage",
		NULL };
	static const char *const item_keys[] = { "object", "index",
		"embedding", NULL };
	json_t *data, *it, *u;
	const char *obj, *k;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_embeddings;
	if ((a->root = gw_ans_load(buf, len, why, whylen)) == NULL)
		return WD_EPARSE;
	if ((k = gw_ans_stray_key(a->root, keys)) != NULL)
		return gw_ans_bad(why, whylen, "an embeddings answer has '%.40s'", k);
	if (!gw_ans_opt_string(a->root, "object", &obj) || obj == NULL ||
	    strcmp(obj, "list") != 0)
		return gw_ans_bad(why, whylen, "object is not 'list'");
	if (!gw_ans_opt_string(a->root, "model", &k))
		return gw_ans_bad(why, whylen, "model is not a string");
	data = json_object_get(a->root, "data");
	if (!json_is_array(data) || json_array_size(data) > GW_EMB_MAX_ITEMS)
		return gw_ans_bad(why, whylen, "data is not an array of at most %d",
		    GW_EMB_MAX_ITEMS);
	json_array_foreach(data, i, it) {
		json_t *v = json_object_get(it, "embedding"), *x;
		size_t idx, j;

		if (!json_is_object(it) || gw_ans_stray_key(it, item_keys) !=
		    NULL || !gw_ans_opt_string(it, "object", &obj) ||
		    obj == NULL || strcmp(obj, "embedding") != 0)
			return gw_ans_bad(why, whylen, "data[%zu] is not an embedding", i);
		if (!gw_ans_index_ok(json_object_get(it, "index"),
		    GW_EMB_MAX_ITEMS, &idx) || idx != i)
			return gw_ans_bad(why, whylen, "data[%zu].index is not %zu", i, i);
		/* A vector of numbers, or base64 text (encoding_format). */
		if (json_is_string(v))
			continue;
		if (!json_is_array(v))
			return gw_ans_bad(why, whylen, "data[%zu].embedding is neither "
			    "numbers nor base64", i);
		json_array_foreach(v, j, x)
			if (!json_is_number(x))
				return gw_ans_bad(why, whylen, "data[%zu].embedding[%zu] is "
				    "not a number", i, j);
	}
	u = json_object_get(a->root, "usage");
	if (u != NULL && !json_is_null(u)) {
		struct gw_ans_event e = { .kind = GW_ANS_USAGE, .node = u };

		if (!json_is_object(u))
			return gw_ans_bad(why, whylen, "usage is not an object");
		return gw_ans_add(a, &e);
	}
	return WD_OK;
}

static enum wd_err
emb_read_chunk(const char *buf, size_t len, struct gw_answer *a, char *why,
    size_t whylen)
{
	(void)buf;
	(void)len;
	memset(a, 0, sizeof(*a));
	a->fmt = &gw_format_embeddings;
	return gw_ans_bad(why, whylen, "embeddings do not stream");
}

static void
emb_drop_call(struct gw_answer *a, const struct gw_ans_event *ev)
{
	(void)a;
	(void)ev;			/* no calls in this format */
}

static enum wd_err
emb_write(const struct gw_answer *a, struct evbuffer *out)
{
	return gw_ans_write_json(a->root, NULL, false, out);
}

static json_t *
emb_read_error(const char *buf, size_t len)
{
	return gw_format_chat.read_error(buf, len);
}

static void
emb_error_event(struct evbuffer *out, const char *type, const char *code,
    const char *message)
{
	(void)out;
	(void)type;
	(void)code;
	(void)message;			/* never streamed */
}

const struct gw_format gw_format_embeddings = {
	.name = "openai-embeddings",
	.path = "/embeddings",
	.read_request = gw_embeddings_read_request,
	.read_answer = emb_read_answer,
	.read_chunk = emb_read_chunk,
	.drop_call = emb_drop_call,
	.write = emb_write,
	.read_error = emb_read_error,
	.done = "",
	.error_body = gw_openai_error_body,
	.error_event = emb_error_event,
	.auth_prefix = "Authorization: Bearer ",
	.api = POL_API_EMBEDDINGS,
	.answer_text = gw_detect_text_none,
};
