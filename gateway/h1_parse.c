/*
 * h1_parse.c - reading a provider's HTTP/1.1 answer: where its head ends,
 * what the head says, and the body's framing (length, chunked, or until
 * the server closes).  RFC 9112, read strictly: what a lenient reader
 * would have to guess at is refused (h1.h says what).  No allocation; the
 * transfer (upstream_h1.c) owns the buffers.
 */
#include "gateway/h1.h"
#include "gateway/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>


enum wd_err
h1_head_end(const char *p, size_t n, size_t *from, size_t *end)
{
	size_t at = *from, have = n;

	/* Only the first H1_MAX_HEAD bytes are looked at: the answer is
	 * judged the same however its bytes arrive. */
	if (n > H1_MAX_HEAD)
		n = H1_MAX_HEAD;
	*end = 0;
	while (at < n) {
		const char *lf = memchr(p + at, '\n', n - at);
		size_t i;

		if (lf == NULL)
			break;
		i = (size_t)(lf - p);
		if (i == 0 || p[i - 1] != '\r')
			return WD_EPARSE;	/* a bare LF */
		if (i == at + 1 && at > 0) {
			*end = i + 1;		/* the empty line */
			*from = at;
			return WD_OK;
		}
		at = i + 1;
	}
	*from = at;
	return have >= H1_MAX_HEAD ? WD_ELIMIT : WD_OK;
}

static bool
name_is(const char *name, size_t nl, const char *want)
{
	return nl == strlen(want) && strncasecmp(name, want, nl) == 0;
}

/* Does the comma-separated list v[0..vl) name token? */
static bool
list_has(const char *v, size_t vl, const char *token)
{
	size_t tl = strlen(token);

	while (vl > 0) {
		const char *comma = memchr(v, ',', vl);
		size_t el = comma != NULL ? (size_t)(comma - v) : vl;
		const char *e = v;
		size_t k = el;

		while (k > 0 && (*e == ' ' || *e == '\t'))
			e++, k--;
		while (k > 0 && (e[k - 1] == ' ' || e[k - 1] == '\t'))
			k--;
		if (k == tl && strncasecmp(e, token, tl) == 0)
			return true;
		if (comma == NULL)
			break;
		v += el + 1;
		vl -= el + 1;
	}
	return false;
}

#define BAD(...) do { snprintf(why, whylen, __VA_ARGS__); return WD_EPARSE; } \
	while (0)

/* The status line: "HTTP/1.x DDD[ reason]". */
static enum wd_err
status_line(const char *p, size_t n, struct h1_head *h, char *why,
    size_t whylen)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' &&
	    p[7] != '1') || p[8] != ' ')
		BAD("the answer is not HTTP/1.x");
	h->minor = p[7] - '0';
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			BAD("the answer's status is not three digits");
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (h->status < 100 || h->status > 599)
		BAD("the answer's status %d is out of range", h->status);
	if (n > 12 && p[12] != ' ')
		BAD("the answer's status line is malformed");
	for (size_t i = 13; i < n; i++)
		if (!gw_http_vchar((unsigned char)p[i]))
			BAD("the answer's reason phrase has a control byte");
	return WD_OK;
}

/* One header line p[0..n) (no CRLF): its name and its value, trimmed. */
static enum wd_err
header_line(const char *p, size_t n, size_t *nl, const char **v, size_t *vl,
    char *why, size_t whylen)
{
	size_t i = 0;

	if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
		BAD("the answer folds a header line (obsolete, refused)");
	while (i < n && gw_http_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		BAD("the answer has a malformed header line");
	*nl = i++;
	for (size_t k = i; k < n; k++)
		if (!gw_http_vchar((unsigned char)p[k]))
			BAD("the answer's header '%.*s' has a control byte",
			    (int)(*nl > 64 ? 64 : *nl), p);
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (n > i && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	*v = p + i;
	*vl = n - i;
	return WD_OK;
}

enum wd_err
h1_head_parse(const char *p, size_t n, struct h1_head *h,
    void (*line)(void *arg, const char *l, size_t len), void *arg,
    char *why, size_t whylen)
{
	const char *eol, *at, *end = p + n;
	bool has_len = false, chunked = false, has_te = false, close = false;
	enum wd_err rc;

	memset(h, 0, sizeof(*h));
	/* n ends in the empty line's CRLF (h1_head_end). */
	if (n < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0)
		BAD("the answer's head is not complete");
	end -= 2;
	eol = memchr(p, '\r', (size_t)(end - p));
	if (eol[1] != '\n')
		BAD("the answer has a bare CR in its status line");
	if ((rc = status_line(p, (size_t)(eol - p), h, why, whylen)) != WD_OK)
		return rc;
	for (at = eol + 2; at < end; at = eol + 2) {
		const char *v;
		size_t nl, vl;

		eol = memchr(at, '\r', (size_t)(end - at));
		if (eol == NULL || eol[1] != '\n')
			BAD("the answer has a bare CR in its head");
		if ((rc = header_line(at, (size_t)(eol - at), &nl, &v, &vl, why,
		    whylen)) != WD_OK)
			return rc;
		if (name_is(at, nl, "content-length")) {
			uint64_t len = 0;

			if (vl == 0 || vl > 18)
				BAD("the answer's Content-Length is not a length");
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					BAD("the answer's Content-Length is not "
					    "a length");
				len = len * 10 + (uint64_t)(v[i] - '0');
			}
			if (has_len && len != h->length)
				BAD("the answer has two different "
				    "Content-Lengths");
			has_len = true;
			h->length = len;
		} else if (name_is(at, nl, "transfer-encoding")) {
			if (has_te)
				BAD("the answer has two Transfer-Encodings");
			has_te = true;
			if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
				BAD("the answer's transfer coding '%.*s' is not "
				    "supported", (int)(vl > 64 ? 64 : vl), v);
			chunked = true;
		} else if (name_is(at, nl, "connection")) {
			close |= list_has(v, vl, "close");
		} else if (name_is(at, nl, "content-type")) {
			if (h->has_ctype)
				BAD("the answer has two Content-Types");
			if (vl > H1_MAX_CTYPE)
				BAD("the answer's Content-Type is too long");
			memcpy(h->ctype, v, vl);
			h->ctype[vl] = '\0';
			h->has_ctype = true;
		}
	}
	if (has_len && chunked)
		BAD("the answer has both a Content-Length and chunked coding");
	if (chunked && h->minor == 0)
		BAD("an HTTP/1.0 answer cannot be chunked");
	h->keep_alive = h->minor == 1 && !close;
	if (h->status < 200 || h->status == 204 || h->status == 304)
		h->framing = H1_NONE;
	else if (chunked)
		h->framing = H1_CHUNKED;
	else if (has_len)
		h->framing = H1_LENGTH;
	else {
		h->framing = H1_EOF;
		h->keep_alive = false;
	}
	/* Only a head found good is shown, line by line. */
	if (line != NULL) {
		for (at = memchr(p, '\r', n) + 2; at < end; at = eol + 2) {
			eol = memchr(at, '\r', (size_t)(end - at));
			line(arg, at, (size_t)(eol - at) + 2);
		}
	}
	return WD_OK;
}

void
h1_body_init(struct h1_body *b, const struct h1_head *h)
{
	memset(b, 0, sizeof(*b));
	b->framing = h->framing;
	b->left = h->framing == H1_LENGTH ? h->length : 0;
	b->done = h->framing == H1_NONE ||
	    (h->framing == H1_LENGTH && h->length == 0);
}

enum wd_err
h1_body_step(struct h1_body *b, const char *in, size_t n, size_t *used,
    const char **data, size_t *dlen, char *why, size_t whylen)
{
	size_t span;

	*used = 0;
	*data = in;
	*dlen = 0;
	if (b->done || n == 0)
		return WD_OK;
	switch (b->framing) {
	case H1_CHUNKED: {
		enum wd_err rc = gw_chunk_step(&b->ck, in, n, H1_MAX_CHUNK_LINE,
		    used, data, dlen, why, whylen);

		b->done = b->ck.done;
		return rc;
	}
	case H1_LENGTH:
		span = b->left < n ? (size_t)b->left : n;
		b->left -= span;
		b->done = b->left == 0;
		break;
	case H1_EOF:
		span = n;
		break;
	default:
		return WD_OK;
	}
	*used = *dlen = span;
	return WD_OK;
}

bool
h1_body_eof(struct h1_body *b)
{
	if (b->framing == H1_EOF)
		b->done = true;
	return b->done;
}

bool
h1_url_literal(const char *url, struct sockaddr_storage *sa, unsigned *salen,
    char *host, size_t hostlen, const char **target)
{
	const char *a, *ae, *hs, *he, *ps = NULL;
	size_t hl;
	char lit[INET6_ADDRSTRLEN];
	unsigned long port = 80;

	if (strncasecmp(url, "http://", 7) != 0)
		return false;
	a = url + 7;
	ae = a + strcspn(a, "/?#");
	if (*ae == '?' || *ae == '#' || memchr(a, '@', (size_t)(ae - a)))
		return false;
	if (*a == '[') {
		hs = a + 1;
		he = memchr(hs, ']', (size_t)(ae - hs));
		if (he == NULL || (he + 1 < ae && he[1] != ':'))
			return false;
		if (he + 1 < ae)
			ps = he + 2;
	} else {
		hs = a;
		he = memchr(a, ':', (size_t)(ae - a));
		if (he != NULL)
			ps = he + 1;
		else
			he = ae;
	}
	if (he <= hs || (size_t)(he - hs) >= sizeof(lit))
		return false;
	memcpy(lit, hs, (size_t)(he - hs));
	lit[he - hs] = '\0';
	if (ps != NULL && ps < ae) {
		port = 0;
		for (const char *q = ps; q < ae; q++) {
			if (*q < '0' || *q > '9' || port > 65535)
				return false;
			port = port * 10 + (unsigned long)(*q - '0');
		}
		if (port == 0 || port > 65535)
			return false;
	}
	memset(sa, 0, sizeof(*sa));
	if (*a == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;

		if (inet_pton(AF_INET6, lit, &s6->sin6_addr) != 1)
			return false;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;

		if (inet_pton(AF_INET, lit, &s4->sin_addr) != 1)
			return false;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*salen = sizeof(*s4);
	}
	/* The request target: printable ASCII only (curl would have to
	 * encode anything else). */
	for (const char *q = ae; *q != '\0'; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f ||
		    *q == '#')
			return false;
	/* Host: the authority as curl sends it (no port when it is 80). */
	hl = (size_t)(port == 80 && ps != NULL ? (ps - 1) - a : ae - a);
	if (hl >= hostlen)
		return false;
	memcpy(host, a, hl);
	host[hl] = '\0';
	*target = *ae != '\0' ? ae : "/";
	return true;
}
