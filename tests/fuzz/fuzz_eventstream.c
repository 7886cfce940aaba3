/*
 * fuzz_eventstream.c - AWS event-stream framing (gateway/eventstream.c)
 * on arbitrary bytes: decode messages one after another as a stream
 * reader would, checking that a decoded message lies inside the input,
 * that every prefix of a complete frame is "incomplete" (never another
 * verdict), and that re-encoding a decoded message with string headers
 * gives the same bytes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_message(const char *buf, size_t len, const struct gw_es_message *m)
{
	const char *end = buf + len;
	bool all_strings = true;

	if (m->frame_len < 16 || m->frame_len > len ||
	    m->frame_len > GW_ES_MAX_MESSAGE || m->nheaders > GW_ES_MAX_HEADERS)
		abort();
	if (m->payload < buf || m->payload + m->payload_len > end)
		abort();
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct gw_es_header *h = &m->headers[i];

		if (h->name < buf || h->name + h->name_len > end ||
		    h->name_len == 0 || h->value < buf ||
		    h->value + h->value_len > end)
			abort();
		all_strings &= h->type == 7 && memchr(h->name, 0, h->name_len) ==
		    NULL && memchr(h->value, 0, h->value_len) == NULL;
	}
	/* Prefixes of a whole frame only ever ask for more. */
	for (size_t cut = 0; cut < m->frame_len; cut += 1 + cut / 4) {
		struct gw_es_message p;
		bool complete;
		enum wd_err rc = gw_es_decode(buf, cut, &p, &complete);

		if (rc != WD_OK || complete)
			abort();
	}
	if (all_strings && m->nheaders > 0) {
		char names[GW_ES_MAX_HEADERS][256], *vals[GW_ES_MAX_HEADERS];
		const char *np[GW_ES_MAX_HEADERS], *vp[GW_ES_MAX_HEADERS];
		char *out = malloc(m->frame_len);
		size_t n;

		if (out == NULL)
			abort();
		for (size_t i = 0; i < m->nheaders; i++) {
			memcpy(names[i], m->headers[i].name, m->headers[i].name_len);
			names[i][m->headers[i].name_len] = '\0';
			vals[i] = malloc(m->headers[i].value_len + 1);
			if (vals[i] == NULL)
				abort();
			memcpy(vals[i], m->headers[i].value, m->headers[i].value_len);
			vals[i][m->headers[i].value_len] = '\0';
			np[i] = names[i];
			vp[i] = vals[i];
		}
		n = gw_es_encode(np, vp, m->nheaders, m->payload, m->payload_len,
		    out, m->frame_len);
		if (n != m->frame_len || memcmp(out, buf, n) != 0)
			abort();
		for (size_t i = 0; i < m->nheaders; i++)
			free(vals[i]);
		free(out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t off = 0;

	while (off < size) {
		struct gw_es_message m;
		bool complete;
		enum wd_err rc = gw_es_decode(p + off, size - off, &m, &complete);

		if (rc != WD_OK) {
			if (rc != WD_EPARSE && rc != WD_ELIMIT)
				abort();
			break;
		}
		if (!complete)
			break;
		check_message(p + off, size - off, &m);
		off += m.frame_len;
	}
	return 0;
}
