/*
 * fuzz_http.c - the request-head parser and the chunked decoder on
 * untrusted bytes (gateway/http_parse.c).
 *
 * Beyond "no crash", checks what the connection code relies on: a parsed
 * head is self-consistent, a rejection carries a status warden can send,
 * and the chunked decoder gives the same answer however its input is split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_head(const char *buf, size_t size)
{
	static const struct gw_http_limits lim = {
		.max_header_bytes = 16384,
		.max_headers = 32,
		.max_body_bytes = 1 << 20,
	};
	struct gw_http_req req;
	const char *why = NULL;
	int status = -1;

	if (gw_http_parse_head(buf, size, &lim, &req, &status, &why) != WD_OK) {
		if (why == NULL || (status != 400 && status != 413 &&
		    status != 417 && status != 431 && status != 500 &&
		    status != 501 && status != 505))
			abort();
		return;
	}
	if (req.target == NULL || req.target[0] != '/' || req.path == NULL ||
	    strncmp(req.path, req.target, strlen(req.path)) != 0 ||
	    req.nhdrs > lim.max_headers || req.minor < 0 || req.minor > 9)
		abort();
	if (req.content_length > (int64_t)lim.max_body_bytes ||
	    (req.chunked && req.content_length != -1))
		abort();
	for (size_t i = 0; i < req.nhdrs; i++) {
		/* Lookup by name finds this header or an earlier namesake. */
		const char *v = gw_http_header(&req, req.hdrs[i].name);

		if (v == NULL || req.hdrs[i].name[0] == '\0')
			abort();
		if (strchr(req.hdrs[i].value, '\r') != NULL ||
		    strchr(req.hdrs[i].value, '\n') != NULL)
			abort();
	}
	gw_http_req_clear(&req);
}

struct run {
	enum wd_err rc;
	size_t used;
	bool done;
	size_t total;
	struct evbuffer *out;
};

static void
decode(struct run *r, const char *buf, size_t size, size_t split)
{
	struct gw_chunked st;
	size_t used = 0;

	memset(&st, 0, sizeof(st));
	r->out = evbuffer_new();
	if (r->out == NULL)
		abort();
	r->used = 0;
	r->rc = gw_chunked_decode(&st, buf, split, &used, r->out, 4096, 256);
	if (used > split)
		abort();
	r->used = used;
	if (r->rc == WD_OK && !st.rd.done) {
		/* A part that did not finish the body is consumed whole. */
		if (used != split)
			abort();
		r->rc = gw_chunked_decode(&st, buf + split, size - split, &used,
		    r->out, 4096, 256);
		if (used > size - split)
			abort();
		r->used += used;
	}
	r->done = st.rd.done;
	r->total = st.total;
	if (st.total != evbuffer_get_length(r->out) || st.total > 4096)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct run whole, parts;
	size_t split;

	check_head(buf, size);
	if (size == 0)
		return 0;
	split = data[0] % size;
	decode(&whole, buf, size, size);
	decode(&parts, buf, size, split);
	/* Splitting the input changes nothing. */
	if (whole.rc != parts.rc || whole.done != parts.done ||
	    whole.used != parts.used)
		abort();
	if (whole.rc == WD_OK && (whole.total != parts.total ||
	    (whole.total > 0 && memcmp(evbuffer_pullup(whole.out, -1),
	    evbuffer_pullup(parts.out, -1), whole.total) != 0)))
		abort();
	evbuffer_free(whole.out);
	evbuffer_free(parts.out);
	return 0;
}
