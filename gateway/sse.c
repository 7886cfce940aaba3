/*
 * sse.c - Server-Sent Events framing for answers streamed by providers.
 *
 * warden forwards a stream event by event, never a partial event: if the
 * provider breaks off mid-event, the client still sees well-formed events
 * followed by warden's own error event.  For agents each event's fields
 * are read (gw_sse_event_read) and its data goes to the format's strict
 * reader before anything of it is forwarded.  An event ends at an empty
 * line; lines end in CRLF, LF or CR (WHATWG HTML, 9.2.6).  An unfinished
 * event may not grow past a limit, so a provider cannot make us buffer
 * without end.
 */
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
gw_sse_init(struct gw_sse *s)
{
	s->at_line_start = true;
	s->last_cr = false;
	s->scanned = 0;
	s->boundary = 0;
}

enum wd_err
gw_sse_feed(struct gw_sse *orig, struct evbuffer *acc, const char *data,
    size_t len, size_t max_event, size_t *complete)
{
	struct gw_sse *s = orig;
	size_t base = evbuffer_get_length(acc);
	struct gw_sse next = *s;

	/* Scan into a copy: the state moves on only once the bytes are in. */
	s = &next;
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (s->last_cr) {
			s->last_cr = false;
			if (c == '\n') {
				/* Second half of a CRLF: belongs to the line end
				 * just seen, and to a boundary if that was one. */
				if (s->boundary == base + i)
					s->boundary = base + i + 1;
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			if (s->at_line_start)
				s->boundary = base + i + 1;
			s->at_line_start = true;
			s->last_cr = c == '\r';
		} else {
			s->at_line_start = false;
		}
	}
	if (evbuffer_add(acc, data, len) != 0)
		return WD_ENOMEM;
	s->scanned = base + len;
	*orig = next;
	s = orig;
	*complete = s->boundary;
	if (s->scanned - s->boundary > max_event)
		return WD_ELIMIT;
	return WD_OK;
}

void
gw_sse_consumed(struct gw_sse *s, size_t n)
{
	s->scanned -= n;
	s->boundary -= n;
}

size_t
gw_sse_event_len(const char *buf, size_t len)
{
	size_t i = 0;

	/* Line by line: the event ends with the first empty line. */
	while (i < len) {
		size_t start = i;

		while (i < len && buf[i] != '\r' && buf[i] != '\n')
			i++;
		if (i >= len)
			return len;
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')
			i += 2;
		else
			i++;
		if (i - start <= 2 && (buf[start] == '\r' || buf[start] == '\n'))
			return i;
	}
	return len;
}

static enum wd_err
event_read(const char *ev, size_t len, bool first, char *name, char **data,
    size_t *dlen, char *why, size_t whylen)
{
	static const char bom[] = "\xEF\xBB\xBF";
	const char *p = ev, *end = ev + len;
	char *out = NULL;
	size_t n = 0;

	*data = NULL;
	*dlen = 0;
	/* WHATWG: one BOM at the start of the stream is dropped. */
	if (first && len >= 3 && memcmp(ev, bom, 3) == 0)
		p += 3;
	while (p < end) {
		const char *eol = p, *colon, *v;
		size_t fl;

		while (eol < end && *eol != '\n' && *eol != '\r')
			eol++;
		if (eol == p)
			break;			/* the empty line: the event ends */
		/* The openai-node client drops a BOM at the start of any line;
		 * a WHATWG client does not.  Neither reading is safe. */
		if (eol - p >= 3 && memcmp(p, bom, 3) == 0) {
			snprintf(why, whylen, "a byte-order mark inside the stream");
			goto bad;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		fl = colon != NULL ? (size_t)(colon - p) : (size_t)(eol - p);
		v = colon != NULL ? colon + 1 : eol;
		if (v < eol && *v == ' ')
			v++;
		if (fl == 0) {
			;			/* a comment */
		} else if (fl == 4 && memcmp(p, "data", 4) == 0) {
			if (out == NULL && (out = malloc(len + 1)) == NULL) {
				snprintf(why, whylen, "out of memory");
				return WD_ENOMEM;
			}
			if (n > 0 || *data != NULL)
				out[n++] = '\n';
			memcpy(out + n, v, (size_t)(eol - v));
			n += (size_t)(eol - v);
			*data = out;
		} else if (fl == 5 && memcmp(p, "event", 5) == 0) {
			/* Chat streams name no events; the clients treat some
			 * names (error, thread.*) in ways of their own.  Named
			 * streams take one name: WHATWG keeps the last, and two
			 * are one reading too many. */
			if (name == NULL) {
				snprintf(why, whylen, "an 'event' field in the "
				    "stream");
				goto bad;
			}
			if (name[0] != '\0' || (size_t)(eol - v) >= 64 ||
			    eol == v || memchr(v, '\0', (size_t)(eol - v))) {
				snprintf(why, whylen, "a second, empty or long "
				    "'event' field");
				goto bad;
			}
			memcpy(name, v, (size_t)(eol - v));
			name[eol - v] = '\0';
		}
		/* id, retry and unknown fields change nothing a client reads. */
		if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n')
			eol++;
		p = eol + 1;
	}
	if (out != NULL)
		out[n] = '\0';
	*dlen = n;
	return WD_OK;
bad:
	free(out);
	*data = NULL;
	return WD_EPARSE;
}

enum wd_err
gw_sse_event_read(const char *ev, size_t len, bool first, char **data,
    size_t *dlen, char *why, size_t whylen)
{
	return event_read(ev, len, first, NULL, data, dlen, why, whylen);
}

enum wd_err
gw_sse_event_read_named(const char *ev, size_t len, bool first,
    char name[64], char **data, size_t *dlen, char *why, size_t whylen)
{
	name[0] = '\0';
	return event_read(ev, len, first, name, data, dlen, why, whylen);
}
