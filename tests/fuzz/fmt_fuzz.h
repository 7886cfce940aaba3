/*
 * fmt_fuzz.h - the harness the per-format fuzz targets share
 * (fuzz_messages.c, fuzz_responses.c, fuzz_embeddings.c): a provider's
 * answer for an agent's request, whole or as a stream cut in pieces,
 * through gateway/agent_answer.c with the format's table, and then checks
 * on what warden would send:
 *  - it is strict JSON (each event's data, or the body);
 *  - a named event's name is its data's type;
 *  - no call block or item in it names send_email, a tool the agent's
 *    graph never allows (read where the SDKs' accumulators read calls:
 *    content[*], message.content[*], content_block; output[*], item,
 *    response.output[*]).
 *
 * Input: byte 0 - bit 0: a stream (else a whole answer); bits 2-7: the
 * piece size (1..64).  The rest is the provider's body.
 */
#ifndef FMT_FUZZ_H
#define FMT_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "tests/fuzz/load_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ff_rules[] =
    "version: 1\n"
    "data_classes: [personal]\n"
    "providers:\n"
    "  - id: p1\n"
    "    base_url: https://a.example\n"
    "    country: IE\n"
    "    credential: c\n"
    "    models: [m]\n"
    "tenants:\n"
    "  - id: t1\n"
    "    keys: [\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef\"]\n"
    "    routes: [p1]\n"
    "agents:\n"
    "  - id: bot\n"
    "    tenant: t1\n"
    "    tools:\n"
    "      read_customer: { labels: [personal] }\n"
    "      web_search: {}\n"
    "      send_email: { sink: external }\n"
    "    graph:\n"
    "      start: [read_customer, web_search]\n"
    "      read_customer: [read_customer, web_search]\n"
    "      web_search: [read_customer, web_search]\n"
    "      send_email: [read_customer]\n";

static struct pol_snapshot *ff_snap;
static const struct pol_agent *ff_agent;

static void
ff_init(void)
{
	ff_snap = fuzz_load_rules(ff_rules);
	ff_agent = pol_find_agent(ff_snap, &ff_snap->tenants[0], "bot");
	if (ff_agent == NULL)
		abort();
}

static void
ff_block(json_t *b)
{
	const char *name = json_string_value(json_object_get(b, "name"));

	if (json_is_object(b) && name != NULL && strcmp(name, "send_email") == 0)
		abort();		/* a forbidden call went out */
}

static void
ff_blocks(json_t *arr)
{
	size_t i;
	json_t *b;

	json_array_foreach(arr, i, b)
		ff_block(b);
}

static void
ff_check_json(const char *s, size_t len, const char *event)
{
	json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);

	if (!json_is_object(j))
		abort();		/* warden wrote what it cannot read */
	if (event != NULL && strcmp(event, json_string_value(json_object_get(j,
	    "type")) ? json_string_value(json_object_get(j, "type")) : "") != 0)
		abort();		/* a name the data does not carry */
	ff_blocks(json_object_get(j, "content"));
	ff_blocks(json_object_get(json_object_get(j, "message"), "content"));
	ff_block(json_object_get(j, "content_block"));
	ff_blocks(json_object_get(j, "output"));
	ff_block(json_object_get(j, "item"));
	ff_blocks(json_object_get(json_object_get(j, "response"), "output"));
	json_decref(j);
}

/* warden's own events: "event: NAME\ndata: JSON\n\n" or "data: JSON\n\n". */
static void
ff_check_stream(const char *s, size_t len)
{
	const char *p = s, *end;

	if (len == 0)
		return;			/* nothing went out */
	end = s + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char event[80] = "";
		bool named = false;

		if (nl == NULL)
			abort();
		if (strncmp(p, "event: ", 7) == 0) {
			if ((size_t)(nl - p - 7) >= sizeof(event))
				abort();
			memcpy(event, p + 7, (size_t)(nl - p - 7));
			event[nl - p - 7] = '\0';
			named = true;
			p = nl + 1;
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				abort();
		}
		if (strncmp(p, "data: ", 6) != 0 || nl + 1 >= end || nl[1] != '\n')
			abort();
		if (strcmp(event, "error") != 0)
			ff_check_json(p + 6, (size_t)(nl - p - 6), named ? event :
			    NULL);
		p = nl + 2;
	}
}

static void
ff_setup(struct gw_tools *tl)
{
	static const unsigned char fuzz_key[32] = { 1 };
	struct pol_caller caller;
	struct gw_http_req req;
	struct gw_tools_deny d;
	json_t *root = json_pack("{s:s,s:[{s:s,s:s}]}", "model", "m",
	    "messages", "role", "user", "content", "x");

	memset(&req, 0, sizeof(req));
	memset(&caller, 0, sizeof(caller));
	caller.tenant = &ff_snap->tenants[0];
	caller.agent = ff_agent;
	caller.key = fuzz_key;
	if (root == NULL || gw_tools_request(tl, ff_snap, &ff_snap->tenants[0],
	    &caller, &req, &(struct gw_chat){ .root = root }, &d) != GW_TOOLS_OK)
		abort();
	json_decref(root);
}

static int
ff_run(const struct gw_format *fmt, const uint8_t *data, size_t size)
{
	struct evbuffer *acc, *out;
	struct gw_tools tl;
	struct gw_tools_deny d;
	const char *body;
	size_t len, piece;

	if (ff_snap == NULL)
		ff_init();
	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	piece = (size_t)(data[0] >> 2) + 1;
	ff_setup(&tl);
	acc = evbuffer_new();
	out = evbuffer_new();
	if (acc == NULL || out == NULL)
		abort();
	if (data[0] & 1) {
		struct gw_agent_stream as;
		struct gw_sse sse;
		size_t off = 0;
		bool go_on = true;

		gw_agent_stream_init(&as, fmt);
		gw_sse_init(&sse);
		while (off < len && go_on) {
			size_t n = len - off < piece ? len - off : piece, complete,
			    used;

			if (gw_sse_feed(&sse, acc, body + off, n, 4096, &complete) !=
			    WD_OK)
				break;
			off += n;
			used = gw_agent_stream_feed(&as, &tl, acc, complete, out,
			    &go_on, &d);
			gw_sse_consumed(&sse, used);
		}
		if (go_on)
			(void)gw_agent_stream_end(&as, acc, out, &d);
		ff_check_stream((const char *)evbuffer_pullup(out, -1),
		    evbuffer_get_length(out));
	} else {
		json_t *usage = NULL;

		if (gw_agent_answer(fmt, &tl, 200, body, len, out, &usage, &d))
			ff_check_json((const char *)evbuffer_pullup(out, -1),
			    evbuffer_get_length(out), NULL);
		json_decref(usage);
	}
	gw_tools_clear(&tl);
	evbuffer_free(acc);
	evbuffer_free(out);
	return 0;
}

#endif /* FMT_FUZZ_H */
