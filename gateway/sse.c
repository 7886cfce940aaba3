/*
 * sse.c - Server-Sent Events framing for answers streamed by providers.
 *
 * warden forwards a stream event by event, never a partial event: if the
 * provider breaks off mid-event, the client still sees well-formed events
 * followed by warden's own error event.  (Later the tool-call checks read
 * each event before it is forwarded.)  An event ends at an empty line; lines
 * end in CRLF, LF or CR (WHATWG HTML, 9.2.6).  An unfinished event may not
 * grow past a limit, so a provider cannot make us buffer without end.
 */
#include "gateway/gw_int.h"

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
