/*
 * eventstream.c - AWS event-stream framing (application/
 * vnd.amazon.eventstream), as Bedrock's converse-stream sends it:
 *
 *   total length u32 | headers length u32 | prelude CRC32 u32 |
 *   headers | payload | message CRC32 u32        (all big-endian)
 *
 * Each header: name length u8, name, type u8, value (by type).  Both
 * CRCs are checked before anything is read from the frame; a wrong one
 * makes the stream unusable (there is no way to resynchronise safely).
 * Pure: no allocation; the decoded message points into the input.
 * Fuzzed by tests/fuzz/fuzz_eventstream.c.
 */
#include "gateway/provider.h"

#include <string.h>

static uint32_t
crc32_ieee(uint32_t crc, const unsigned char *p, size_t len)
{
	crc = ~crc;
	while (len-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Fixed value sizes by type; -1: length-prefixed (bytes, string). */
static int
value_size(uint8_t type)
{
	static const int size[10] = { 0, 0, 1, 2, 4, 8, -1, -1, 8, 16 };

	return type < 10 ? size[type] : -2;
}

static enum wd_err
parse_headers(const unsigned char *p, size_t len, struct gw_es_message *m)
{
	size_t off = 0;

	while (off < len) {
		struct gw_es_header *h;
		size_t nlen = p[off++];
		int vs;

		if (m->nheaders == GW_ES_MAX_HEADERS)
			return WD_ELIMIT;
		if (nlen == 0 || len - off < nlen + 1)
			return WD_EPARSE;
		h = &m->headers[m->nheaders++];
		h->name = (const char *)p + off;
		h->name_len = nlen;
		off += nlen;
		h->type = p[off++];
		vs = value_size(h->type);
		if (vs == -2)
			return WD_EPARSE;
		if (vs == -1) {
			if (len - off < 2)
				return WD_EPARSE;
			h->value_len = (size_t)p[off] << 8 | p[off + 1];
			off += 2;
		} else
			h->value_len = (size_t)vs;
		if (len - off < h->value_len)
			return WD_EPARSE;
		h->value = (const char *)p + off;
		off += h->value_len;
	}
	return WD_OK;
}

enum wd_err
gw_es_decode(const char *buf, size_t len, struct gw_es_message *m,
    bool *complete)
{
	const unsigned char *p = (const unsigned char *)buf;
	uint32_t total, hlen;
	enum wd_err rc;

	memset(m, 0, sizeof(*m));
	*complete = false;
	if (len < 12)
		return WD_OK;
	total = be32(p);
	hlen = be32(p + 4);
	if (crc32_ieee(0, p, 8) != be32(p + 8))
		return WD_EPARSE;
	if (total < 16 || hlen > total - 16)
		return WD_EPARSE;
	if (total > GW_ES_MAX_MESSAGE)
		return WD_ELIMIT;
	if (len < total)
		return WD_OK;
	if (crc32_ieee(0, p, total - 4) != be32(p + total - 4))
		return WD_EPARSE;
	if ((rc = parse_headers(p + 12, hlen, m)) != WD_OK) {
		memset(m, 0, sizeof(*m));
		return rc;
	}
	m->payload = buf + 12 + hlen;
	m->payload_len = total - 16 - hlen;
	m->frame_len = total;
	*complete = true;
	return WD_OK;
}

const char *
gw_es_header_str(const struct gw_es_message *m, const char *name, size_t *len)
{
	size_t nlen = strlen(name);

	*len = 0;
	for (size_t i = 0; i < m->nheaders; i++)
		if (m->headers[i].type == 7 && m->headers[i].name_len == nlen &&
		    memcmp(m->headers[i].name, name, nlen) == 0) {
			*len = m->headers[i].value_len;
			return m->headers[i].value;
		}
	return NULL;
}

size_t
gw_es_encode(const char *const *names, const char *const *values,
    size_t nheaders, const char *payload, size_t payload_len, char *out,
    size_t outlen)
{
	unsigned char *o = (unsigned char *)out;
	size_t hlen = 0, total, off = 12;

	for (size_t i = 0; i < nheaders; i++) {
		if (strlen(names[i]) == 0 || strlen(names[i]) > 255 ||
		    strlen(values[i]) > 65535)
			return 0;
		hlen += 1 + strlen(names[i]) + 1 + 2 + strlen(values[i]);
	}
	total = 16 + hlen + payload_len;
	if (total > outlen || total > GW_ES_MAX_MESSAGE)
		return 0;
	put32(o, (uint32_t)total);
	put32(o + 4, (uint32_t)hlen);
	put32(o + 8, crc32_ieee(0, o, 8));
	for (size_t i = 0; i < nheaders; i++) {
		size_t nl = strlen(names[i]), vl = strlen(values[i]);

		o[off++] = (unsigned char)nl;
		memcpy(o + off, names[i], nl);
		off += nl;
		o[off++] = 7;
		o[off++] = (unsigned char)(vl >> 8);
		o[off++] = (unsigned char)vl;
		memcpy(o + off, values[i], vl);
		off += vl;
	}
	if (payload_len > 0)
		memcpy(o + off, payload, payload_len);
	off += payload_len;
	put32(o + off, crc32_ieee(0, o, off));
	return total;
}
