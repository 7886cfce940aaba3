/*
 * scan.c - one scanner: a Hyperscan stream over a sequence of texts, each
 * fed in pieces, with the last DET_WINDOW bytes kept so that a match
 * whose start lies in an earlier piece can still be read and validated.
 *
 * Scratch space is per thread (thread-local, grown with hs_alloc_scratch
 * for whichever database the thread scans next, freed when the thread
 * ends): no lock on the scan path.  Stream states are reserved from a
 * process-wide byte budget with one atomic add.
 */
#include "detect/det_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct det_pending {
	bool on;
	uint64_t from, to;
};

struct det_scan {
	const struct det_db *db;
	hs_stream_t *hs;
	hs_scratch_t *scratch;		/* the thread's, while feeding */
	size_t reserved;		/* from the budget */
	uint32_t text;			/* current text */
	uint64_t base;			/* offset of the piece being scanned */
	const char *piece;
	size_t piece_len;
	unsigned char win[DET_WINDOW];	/* bytes [base - wlen, base) */
	size_t wlen;
	struct det_pending pending[DET_MAX];
	uint32_t counts[DET_MAX];
	uint64_t fired;
	struct det_span *spans;
	size_t nspans;
	bool lost;
	enum wd_err failed;		/* a scan call failed: sticky */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static __thread hs_scratch_t *tls_scratch;
/* Databases the thread's scratch is known to fit (hs_alloc_scratch costs
 * a reallocation each time: call it only for a database not seen yet). */
#define FITS 4
static __thread uint64_t tls_fits[FITS];
static __thread unsigned tls_next;

static void
scratch_free(void *p)
{
	hs_free_scratch(p);
}

static void
scratch_key_init(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

/* The calling thread's scratch, big enough for db. */
static hs_scratch_t *
thread_scratch(const struct det_db *db)
{
	hs_scratch_t *s = tls_scratch;

	for (unsigned i = 0; s != NULL && i < FITS; i++)
		if (tls_fits[i] == db->serial)
			return s;
	pthread_once(&scratch_once, scratch_key_init);
	/* Grows the scratch to fit db as well as those it fitted before. */
	if (hs_alloc_scratch(db->hs, &s) != HS_SUCCESS)
		return NULL;
	if (s != tls_scratch)
		memset(tls_fits, 0, sizeof(tls_fits));
	tls_fits[tls_next++ % FITS] = db->serial;
	if (s != tls_scratch) {
		tls_scratch = s;
		/* The thread's end frees it. */
		(void)pthread_setspecific(scratch_key, s);
	}
	return s;
}

enum wd_err
det_scan_open(const struct det_db *db, struct det_scan **out)
{
	struct det_scan *s;
	size_t need = db->stream_bytes + sizeof(*s), max = db->budget;

	*out = NULL;
	if (max > 0 && atomic_fetch_add(db->used, need) + need > max) {
		atomic_fetch_sub(db->used, need);
		return WD_ENOMEM;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto out;
	s->db = db;
	s->reserved = max > 0 ? need : 0;
	if (thread_scratch(db) == NULL ||
	    hs_open_stream(db->hs, 0, &s->hs) != HS_SUCCESS)
		goto out;
	*out = s;
	return WD_OK;
out:
	if (max > 0)
		atomic_fetch_sub(db->used, need);
	free(s);
	return WD_ENOMEM;
}

/*
 * The last bytes of the current text before offset to, at most want of
 * them, into buf; returns how many.  *at_start: they begin the text.
 */
static size_t
copy_back(const struct det_scan *s, uint64_t to, size_t want, char *buf,
    bool *at_start)
{
	uint64_t oldest = s->base - s->wlen, from;

	from = to > want ? to - want : 0;
	if (from < oldest)
		from = oldest;
	*at_start = from == 0;
	for (uint64_t x = from; x < to; x++)
		buf[x - from] = (char)(x >= s->base ? (unsigned char)
		    s->piece[x - s->base] : s->win[s->wlen - (s->base - x)]);
	return (size_t)(to - from);
}

/* Count or extend: overlapping detections of one detector are one. */
static void
confirm(struct det_scan *s, uint32_t det, uint64_t from, uint64_t to)
{
	for (size_t i = s->nspans, k = 0; i > 0 && k < 16; i--, k++) {
		struct det_span *sp = &s->spans[i - 1];

		if (sp->text != s->text)
			break;
		if (sp->det == det && from <= sp->to && to >= sp->from) {
			if (from < sp->from)
				sp->from = from;
			if (to > sp->to)
				sp->to = to;
			return;
		}
	}
	s->counts[det]++;
	s->fired |= 1ull << det;
	if (s->nspans >= DET_MAX_SPANS) {
		s->lost = true;
		return;
	}
	if (s->spans == NULL &&
	    (s->spans = calloc(DET_MAX_SPANS, sizeof(*s->spans))) == NULL) {
		s->lost = true;
		return;
	}
	s->spans[s->nspans++] = (struct det_span){ s->text, det, from, to };
}

/*
 * Is position i of buf the middle of a run of spaced digit groups ("FR40
 * 2364 2905 ...")?  Then what starts there is a piece of something
 * longer (an IBAN's groups are no card, a card's no phone number).
 */
/* Does the token that ends just before buf[i] (after one separator)
 * hold a digit?  *start gets where it starts, *len its length. */
static bool
group_before(const char *buf, size_t i, size_t *start, size_t *len)
{
	size_t k;
	bool digit = false;

	*start = i;
	*len = 0;
	if (i < 2 || (buf[i - 1] != ' ' && buf[i - 1] != '-' && buf[i - 1] != '.'))
		return false;
	for (k = i - 1; k > 0 && det_body_byte(DET_IBAN, (unsigned char)buf[k - 1]);
	    k--)
		digit |= buf[k - 1] >= '0' && buf[k - 1] <= '9';
	*start = k;
	*len = i - 1 - k;
	return digit;
}

/*
 * Is position i of buf inside an IBAN's spaced groups ("FR76 3000 4111
 * 1111 1111 1111 ...")?  Only a run that starts like an IBAN (two
 * capitals, two digits) hides a card: a quantity or a reference before
 * one ("2x 4111 1111 1111 1111") must not.
 */
static bool
iban_run_before(const char *buf, size_t i, bool at_start)
{
	size_t start0 = i, k0, l0;

	/* Back over the four-character groups before i (an IBAN has at
	 * most eight before its last).  Where the window does not reach
	 * back far enough to say, spaced groups count as an IBAN's, as
	 * they do for the other detectors. */
	for (int g = 0; g < 9 && i >= 2; g++) {
		size_t k;

		if (buf[i - 1] != ' ' && buf[i - 1] != '-' && buf[i - 1] != '.')
			return false;
		for (k = i - 1; k > 0 && det_body_byte(DET_IBAN,
		    (unsigned char)buf[k - 1]); k--)
			;
		if (k == 0 && !at_start)	/* what came before is not here */
			return group_before(buf, start0, &k0, &l0);
		if (i - 1 - k != 4)
			return false;
		if (buf[k] >= 'A' && buf[k] <= 'Z' && buf[k + 1] >= 'A' &&
		    buf[k + 1] <= 'Z' && buf[k + 2] >= '0' && buf[k + 2] <= '9' &&
		    buf[k + 3] >= '0' && buf[k + 3] <= '9')
			return true;
		i = k;
	}
	return false;
}

/*
 * Is position i of buf the middle of a run of spaced groups ("FR40 2364
 * 2905 ...", "GB79 ADUO 0373 ...")?  Then what starts there is a piece
 * of something longer (an IBAN's groups are no card, a card's no phone
 * number).
 */
static bool
inside_groups(int b, const char *buf, size_t i, bool at_start)
{
	size_t start, len, s2, l2;

	if (b != DET_CARD && b != DET_PHONE && b != DET_DE_TAXID &&
	    b != DET_FR_NIR && b != DET_UK_NINO)
		return false;
	if (b == DET_CARD)
		return iban_run_before(buf, i, at_start);
	if (group_before(buf, i, &start, &len))
		return true;
	/* An all-capitals group of four after one with digits. */
	if (len != 4)
		return false;
	for (size_t k = start; k < start + 4; k++)
		if (buf[k] < 'A' || buf[k] > 'Z')
			return false;
	return group_before(buf, start, &s2, &l2);
}

/* Where a valid match of built-in b ends at offset to starts, or -1. */
static int64_t
find_start(const struct det_scan *s, int b, uint64_t to)
{
	char buf[DET_WINDOW + 1];
	size_t max = det_max_len(b), n;
	bool at_start;

	/* A card reads back an IBAN's length further: its groups may be
	 * an IBAN's (inside_groups). */
	n = copy_back(s, to, max + 1 + (b == DET_CARD ?
	    det_max_len(DET_IBAN) : 0), buf, &at_start);
	/* Leftmost first: a token starts after a byte that is no part of
	 * it (or at the text's start), and its checksum must hold. */
	for (size_t i = 0; i < n; i++) {
		bool bound = i > 0 ? !det_body_byte(b, (unsigned char)buf[i - 1]) :
		    at_start;

		if (!bound || !det_body_byte(b, (unsigned char)buf[i]) ||
		    n - i > max || inside_groups(b, buf, i, at_start))
			continue;
		if (det_validate(b, buf + i, n - i))
			return (int64_t)(to - (n - i));
	}
	/* A token longer than the window cannot be read back: a secret is
	 * taken as found (fail closed), anything else as not. */
	if (b == DET_SECRET && n > max && !at_start)
		return (int64_t)(to - n);
	return -1;
}

static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
    unsigned int flags, void *arg)
{
	struct det_scan *s = arg;
	const struct det_expr *e = &s->db->expr[id];
	uint64_t end = s->base + s->piece_len;
	int64_t start;

	(void)flags;
	if (e->builtin < 0) {
		confirm(s, e->det, from, to);
		return 0;
	}
	/* Most ends are inside a longer token: the byte after says so, and
	 * costs nothing to ask (no start of match is tracked for built-ins:
	 * Hyperscan is several times faster without). */
	if (to < end && det_cont_byte(e->builtin, (unsigned char)
	    s->piece[to - s->base]))
		return 0;
	if ((start = find_start(s, e->builtin, to)) < 0)
		return 0;
	from = (uint64_t)start;
	if (to < end) {
		confirm(s, e->det, from, to);
		return 0;
	}
	/* Ends where the data ends: wait for the next byte. */
	{
		struct det_pending *p = &s->pending[e->det];

		if (p->on && from <= p->to && to >= p->from) {
			if (from < p->from)
				p->from = from;
		} else {
			if (p->on)
				confirm(s, e->det, p->from, p->to);
			p->from = from;
		}
		p->to = to;
		p->on = true;
	}
	return 0;
}

/* Pending matches meet the byte after them (or the end: c < 0). */
static void
settle(struct det_scan *s, int c)
{
	for (size_t d = 0; d < s->db->n; d++) {
		struct det_pending *p = &s->pending[d];

		if (!p->on)
			continue;
		p->on = false;
		if (c < 0 || s->db->builtin[d] < 0 ||
		    !det_cont_byte(s->db->builtin[d], (unsigned char)c))
			confirm(s, (uint32_t)d, p->from, p->to);
	}
}

static void
keep_window(struct det_scan *s, const char *p, size_t len)
{
	if (len >= DET_WINDOW) {
		memcpy(s->win, p + len - DET_WINDOW, DET_WINDOW);
		s->wlen = DET_WINDOW;
	} else {
		size_t keep = s->wlen + len > DET_WINDOW ? DET_WINDOW - len : s->wlen;

		memmove(s->win, s->win + s->wlen - keep, keep);
		memcpy(s->win + keep, p, len);
		s->wlen = keep + len;
	}
}

enum wd_err
det_scan_feed(struct det_scan *s, const char *p, size_t len)
{
	hs_scratch_t *scratch;

	if (s->failed != WD_OK)
		return s->failed;
	if (len == 0)
		return WD_OK;
	settle(s, (unsigned char)p[0]);
	if ((scratch = thread_scratch(s->db)) == NULL)
		return s->failed = WD_ENOMEM;
	/* Hyperscan takes an unsigned int length. */
	while (len > 0) {
		size_t n = len > (1u << 30) ? 1u << 30 : len;

		s->piece = p;
		s->piece_len = n;
		if (hs_scan_stream(s->hs, p, (unsigned)n, 0, scratch, on_match,
		    s) != HS_SUCCESS) {
			s->piece = NULL;
			return s->failed = WD_EIO;
		}
		keep_window(s, p, n);
		s->base += n;
		s->piece = NULL;
		s->piece_len = 0;
		p += n;
		len -= n;
	}
	return WD_OK;
}

enum wd_err
det_scan_next_text(struct det_scan *s)
{
	hs_scratch_t *scratch;

	if (s->failed != WD_OK)
		return s->failed;
	settle(s, -1);
	if ((scratch = thread_scratch(s->db)) == NULL)
		return s->failed = WD_ENOMEM;
	/* No end anchors in any expression: a reset reports nothing. */
	if (hs_reset_stream(s->hs, 0, scratch, on_match, s) != HS_SUCCESS)
		return s->failed = WD_EIO;
	s->text++;
	s->base = 0;
	s->wlen = 0;
	return WD_OK;
}

void
det_scan_close(struct det_scan *s)
{
	if (s == NULL)
		return;
	if (s->hs != NULL)
		hs_close_stream(s->hs, NULL, NULL, NULL);
	if (s->reserved > 0)
		atomic_fetch_sub(s->db->used, s->reserved);
	free(s->spans);
	/* What was seen of the texts stays in no freed memory. */
	wd_wipe(s->win, sizeof(s->win));
	free(s);
}

const uint32_t *
det_scan_counts(const struct det_scan *s)
{
	return s->counts;
}

uint64_t
det_scan_fired(const struct det_scan *s)
{
	return s->fired;
}

const struct det_span *
det_scan_spans(const struct det_scan *s, size_t *n)
{
	*n = s->nspans;
	return s->spans;
}

bool
det_scan_spans_lost(const struct det_scan *s)
{
	return s->lost;
}

uint64_t
det_scan_pending(const struct det_scan *s)
{
	uint64_t m = 0;

	for (size_t d = 0; d < s->db->n; d++)
		if (s->pending[d].on)
			m |= 1ull << d;
	return m;
}
