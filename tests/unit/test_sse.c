/*
 * test_sse.c - gateway/sse.c: finding event boundaries in a provider's
 * Server-Sent Events stream, whatever the line ends and however the bytes
 * are split between reads.
 */
#include <check.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "tests/unit/suites.h"

/* Feed one string; returns *complete. */
static size_t
feed(struct gw_sse *s, struct evbuffer *acc, const char *text,
    size_t max_event, enum wd_err want)
{
	size_t complete = (size_t)-1;

	ck_assert_int_eq(gw_sse_feed(s, acc, text, strlen(text), max_event,
	    &complete), want);
	ck_assert_uint_le(complete, evbuffer_get_length(acc));
	return complete;
}

START_TEST(lf_lf)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	gw_sse_init(&s);
	ck_assert_uint_eq(feed(&s, acc, "data: a\n\n", 1024, WD_OK), 9);
	ck_assert_uint_eq(evbuffer_get_length(acc), 9);
	evbuffer_free(acc);
}
END_TEST

START_TEST(crlf_crlf)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	gw_sse_init(&s);
	ck_assert_uint_eq(feed(&s, acc, "id: 1\r\ndata: a\r\n\r\n", 1024, WD_OK),
	    18);
	evbuffer_free(acc);
}
END_TEST

START_TEST(cr_cr)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	gw_sse_init(&s);
	ck_assert_uint_eq(feed(&s, acc, "id: 1\rdata: a\r\r", 1024, WD_OK), 15);
	evbuffer_free(acc);
}
END_TEST

START_TEST(mixed_line_ends)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	gw_sse_init(&s);
	/* CRLF then LF; LF then CRLF; CR then LF is one CRLF, not two ends. */
	ck_assert_uint_eq(feed(&s, acc, "data: a\r\n\n", 1024, WD_OK), 10);
	ck_assert_uint_eq(feed(&s, acc, "data: b\n\r\n", 1024, WD_OK), 20);
	ck_assert_uint_eq(feed(&s, acc, "data: c\r\ndata: d\r\n", 1024, WD_OK),
	    20);
	ck_assert_uint_eq(feed(&s, acc, "\r", 1024, WD_OK), 39);
	ck_assert_uint_eq(feed(&s, acc, "\n", 1024, WD_OK), 40);
	evbuffer_free(acc);
}
END_TEST

START_TEST(only_whole_events)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	gw_sse_init(&s);
	ck_assert_uint_eq(feed(&s, acc, "data: a\n", 1024, WD_OK), 0);
	ck_assert_uint_eq(feed(&s, acc, "data: b\n", 1024, WD_OK), 0);
	ck_assert_uint_eq(feed(&s, acc, "\ndata: c", 1024, WD_OK), 17);
	ck_assert_uint_eq(feed(&s, acc, "\r\n", 1024, WD_OK), 17);
	ck_assert_uint_eq(feed(&s, acc, "\r\n", 1024, WD_OK), 28);
	/* After a line end, a lone CR is an empty line: the event ends. */
	ck_assert_uint_eq(feed(&s, acc, "data: d\n", 1024, WD_OK), 28);
	ck_assert_uint_eq(feed(&s, acc, "\r", 1024, WD_OK), 37);
	evbuffer_free(acc);
}
END_TEST

START_TEST(consumed_keeps_state_in_step)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();
	size_t c;

	gw_sse_init(&s);
	c = feed(&s, acc, "data: a\n\ndata: b", 1024, WD_OK);
	ck_assert_uint_eq(c, 9);
	evbuffer_drain(acc, c);
	gw_sse_consumed(&s, c);
	ck_assert_uint_eq(s.boundary, 0);
	ck_assert_uint_eq(s.scanned, 7);
	c = feed(&s, acc, "\n\ndata: c\r\n\r", 1024, WD_OK);
	ck_assert_uint_eq(c, 9 + 10);
	evbuffer_drain(acc, c);
	gw_sse_consumed(&s, c);
	/* The LF that completes the CRLF whose CR ended the event. */
	c = feed(&s, acc, "\n", 1024, WD_OK);
	ck_assert_uint_eq(c, 1);
	evbuffer_drain(acc, c);
	gw_sse_consumed(&s, c);
	ck_assert_uint_eq(feed(&s, acc, "data: d\n", 1024, WD_OK), 0);
	ck_assert_uint_eq(feed(&s, acc, "\n", 1024, WD_OK), 9);
	evbuffer_free(acc);
}
END_TEST

/*
 * The same three events, ended by LF LF, CRLF CRLF and CR CR, in every
 * order; each stream is split into two feeds at every offset.
 */
static const char *const ev_kinds[3] = {
	"event: lf\ndata: one\n\n",
	"event: crlf\r\ndata: two\r\n\r\n",
	"event: cr\rdata: three\r\r",
};
static const int perms[6][3] = {
	{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
};

/*
 * Is pos where an event ends?  After "\r\n\r" an event is complete too
 * (a CR alone ends a line), so that offset counts; the LF then travels
 * with the next piece.  Returns the largest such offset <= pos in *best.
 */
static bool
is_edge(const size_t *ends, const bool *crlf, size_t n, size_t pos,
    size_t *best)
{
	bool hit = pos == 0;

	*best = 0;
	for (size_t i = 0; i < n; i++) {
		if (crlf[i] && ends[i] - 1 <= pos) {
			*best = ends[i] - 1;
			hit = hit || ends[i] - 1 == pos;
		}
		if (ends[i] <= pos) {
			*best = ends[i];
			hit = hit || ends[i] == pos;
		}
	}
	return hit;
}

START_TEST(split_at_every_offset)
{
	const int *perm = perms[_i];
	char in[256];
	size_t ends[3], len = 0, best;
	bool crlf[3];

	for (int e = 0; e < 3; e++) {
		const char *ev = ev_kinds[perm[e]];

		memcpy(in + len, ev, strlen(ev));
		len += strlen(ev);
		ends[e] = len;
		crlf[e] = perm[e] == 1;
	}
	for (size_t k = 0; k <= len; k++) {
		struct gw_sse s;
		struct evbuffer *acc = evbuffer_new(), *fwd = evbuffer_new();
		const size_t cut[3] = { 0, k, len };
		size_t forwarded = 0;
		char out[256];

		gw_sse_init(&s);
		for (int p = 0; p < 2; p++) {
			size_t complete = (size_t)-1;

			ck_assert_int_eq(gw_sse_feed(&s, acc, in + cut[p],
			    cut[p + 1] - cut[p], 1024, &complete), WD_OK);
			ck_assert_uint_le(complete, evbuffer_get_length(acc));
			evbuffer_remove_buffer(acc, fwd, complete);
			gw_sse_consumed(&s, complete);
			forwarded += complete;
			/* Ends on an edge, and holds back nothing complete. */
			ck_assert_msg(is_edge(ends, crlf, 3, forwarded, &best),
			    "perm %d, split %zu, feed %d: forwarded %zu is "
			    "not an event edge", _i, k, p, forwarded);
			ck_assert_msg(best == forwarded, "perm %d, split %zu, "
			    "feed %d: forwarded %zu, %zu complete", _i, k, p,
			    forwarded, best);
		}
		ck_assert_uint_eq(forwarded, len);
		ck_assert_uint_eq(evbuffer_get_length(acc), 0);
		ck_assert_uint_eq(evbuffer_get_length(fwd), len);
		evbuffer_remove(fwd, out, len);
		ck_assert(memcmp(out, in, len) == 0);
		evbuffer_free(acc);
		evbuffer_free(fwd);
	}
}
END_TEST

START_TEST(one_byte_at_a_time)
{
	const int *perm = perms[_i];
	char in[256];
	size_t ends[3], len = 0, best, forwarded = 0;
	bool crlf[3];
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();

	for (int e = 0; e < 3; e++) {
		const char *ev = ev_kinds[perm[e]];

		memcpy(in + len, ev, strlen(ev));
		len += strlen(ev);
		ends[e] = len;
		crlf[e] = perm[e] == 1;
	}
	gw_sse_init(&s);
	for (size_t i = 0; i < len; i++) {
		size_t complete;

		ck_assert_int_eq(gw_sse_feed(&s, acc, in + i, 1, 1024, &complete),
		    WD_OK);
		evbuffer_drain(acc, complete);
		gw_sse_consumed(&s, complete);
		forwarded += complete;
		ck_assert(is_edge(ends, crlf, 3, forwarded, &best));
		ck_assert_uint_eq(best, forwarded);
		ck_assert_uint_eq(forwarded, i + 1 - evbuffer_get_length(acc));
	}
	ck_assert_uint_eq(forwarded, len);
	evbuffer_free(acc);
}
END_TEST

START_TEST(unfinished_event_over_limit)
{
	struct gw_sse s;
	struct evbuffer *acc = evbuffer_new();
	size_t complete = 99;

	gw_sse_init(&s);
	/* Exactly max_event unfinished bytes is still fine. */
	ck_assert_uint_eq(feed(&s, acc, "data: 0123456789", 16, WD_OK), 0);
	ck_assert_int_eq(gw_sse_feed(&s, acc, "A", 1, 16, &complete),
	    WD_ELIMIT);
	ck_assert_uint_eq(complete, 0);
	evbuffer_free(acc);

	/* Only the unfinished part counts, not the complete events. */
	acc = evbuffer_new();
	gw_sse_init(&s);
	ck_assert_uint_eq(feed(&s, acc, "data: aaaaaaaaaaaaaaaaaaaa\n\n", 16,
	    WD_OK), 28);
	ck_assert_uint_eq(feed(&s, acc, "data: 0123456789", 16, WD_OK), 28);
	ck_assert_int_eq(gw_sse_feed(&s, acc, "\n", 1, 16, &complete),
	    WD_ELIMIT);
	evbuffer_free(acc);

	/* A single feed far over the limit. */
	acc = evbuffer_new();
	gw_sse_init(&s);
	{
		char big[5000];

		memset(big, 'x', sizeof(big));
		ck_assert_int_eq(gw_sse_feed(&s, acc, big, sizeof(big), 4096,
		    &complete), WD_ELIMIT);
	}
	evbuffer_free(acc);
}
END_TEST

/* Splitting forwarded bytes into events for the tool checks (txn_upstream.c). */
START_TEST(event_len)
{
	static const struct {
		const char *buf;
		size_t want;
	} cases[] = {
		{ "data: a\n\ndata: b\n\n", 9 },
		{ "data: a\r\n\r\ndata: b\r\n\r\n", 11 },
		{ "id: 1\rdata: a\r\rdata: b\r\r", 15 },
		{ "data: a\r\n\n", 10 },
		{ "data: a\n\r\n", 10 },
		/* CR CR followed by LF: the LF belongs to the second line end. */
		{ "data: a\r\r\ndata: b\n\n", 10 },
		/* Forwarded before the LF of its final CRLF arrived. */
		{ "data: a\r\n\r", 10 },
		/* ... and that LF, forwarded with the next event. */
		{ "\ndata: b\n\n", 1 },
		{ "\n", 1 },
		{ "\r\n", 2 },
		{ ": comment\n\n", 11 },
		/* No empty line: all of it. */
		{ "data: a\ndata: b", 15 },
		{ "data: a\n", 8 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = gw_sse_event_len(cases[i].buf, strlen(cases[i].buf));

		ck_assert_msg(got == cases[i].want, "case %zu: %zu, want %zu", i,
		    got, cases[i].want);
	}
}
END_TEST

Suite *
suite_sse(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, lf_lf);
	tcase_add_test(tc, crlf_crlf);
	tcase_add_test(tc, cr_cr);
	tcase_add_test(tc, mixed_line_ends);
	tcase_add_test(tc, only_whole_events);
	tcase_add_test(tc, consumed_keeps_state_in_step);
	tcase_add_loop_test(tc, split_at_every_offset, 0, 6);
	tcase_add_loop_test(tc, one_byte_at_a_time, 0, 6);
	tcase_add_test(tc, unfinished_event_over_limit);
	tcase_add_test(tc, event_len);
	suite_add_tcase(s, tc);
	return s;
}
