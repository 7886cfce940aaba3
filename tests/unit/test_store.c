/*
 * test_store.c - the state store's operations (gateway/store.h), each
 * case run twice: on the in-process store (sessions.c, limits_mem.c) and
 * on Redis (store_redis.c) against a real redis-server this test starts
 * on a free loopback port.  Then what only Redis has: it goes away (fail
 * closed, at once, bounded by the timeouts), comes back (service resumes
 * by itself), forgets its scripts (EVAL fallback), and two connections
 * (two wardens) see one count.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wd.h"
#include "gateway/store.h"
#include "policy/pol.h"
#include "tests/unit/suites.h"

static struct ut_redis redis;

/* _i 0: memory; 1: Redis. */
static void
use_store(int i)
{
	gw_store_memory_reset();
	if (i == 0) {
		gw_store_use(&gw_store_memory);
		return;
	}
	struct pol_state st = { .connect_timeout_ms = 200,
	    .command_timeout_ms = 200, .key_prefix = "t:" };
	char url[64], err[160];

	ut_redis_start(&redis, 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis.port);
	st.redis_url = url;
	ck_assert_int_eq(gw_store_redis_init(&st, err, sizeof(err)), WD_OK);
	gw_store_use(&gw_store_redis);
}

static void
done_store(void)
{
	ut_redis_stop(&redis);
	gw_store_use(&gw_store_memory);
}

static void
ctr(struct gw_ctr *c, enum gw_ctr_type t, const char *key, long long max,
    long long amount)
{
	memset(c, 0, sizeof(*c));
	c->type = t;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->max = max;
	c->amount = amount;
	c->window_s = 60;
	c->period_end = (long long)(wd_wall_us() / 1000000) + 3600;
	c->lease_s = 60;
}

/* Exactly max requests in a window; the next is refused with a retry. */
START_TEST(window_exact)
{
	struct gw_ctr c;
	size_t which;

	use_store(_i);
	for (int i = 0; i < 10; i++) {
		ctr(&c, GW_CTR_WINDOW, "rpm", 10, 1);
		ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
		    GW_STORE_OK);
		ck_assert_int_eq(c.used, i + 1);
	}
	ctr(&c, GW_CTR_WINDOW, "rpm", 10, 1);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(which, 0);
	ck_assert_int_eq(c.used, 10);
	ck_assert_int_ge(c.retry_s, 1);
	ck_assert_int_le(c.retry_s, 62);
	done_store();
}
END_TEST

/* All or nothing: a refusal on the second counter leaves the first. */
START_TEST(all_or_nothing)
{
	struct gw_ctr c[2];
	size_t which;

	use_store(_i);
	ctr(&c[0], GW_CTR_PERIOD, "day", 1000, 600);
	ctr(&c[1], GW_CTR_WINDOW, "tpm", 500, 600);
	ck_assert_int_eq(gw_store()->limit_reserve(c, 2, "r1", &which),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(which, 1);
	ctr(&c[0], GW_CTR_PERIOD, "day", 1000, 600);
	ctr(&c[1], GW_CTR_WINDOW, "tpm", 5000, 600);
	ck_assert_int_eq(gw_store()->limit_reserve(c, 2, "r2", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(c[0].used, 600);	/* the first try took nothing */
	done_store();
}
END_TEST

/* Settling gives back what was not spent; releasing gives back all. */
START_TEST(settle_and_release)
{
	struct gw_ctr c, r;
	long long delta;
	size_t which;

	use_store(_i);
	ctr(&c, GW_CTR_PERIOD, "budget", 1000, 700);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "a", &which),
	    GW_STORE_OK);
	ctr(&r, GW_CTR_PERIOD, "budget", 1000, 400);
	ck_assert_int_eq(gw_store()->limit_reserve(&r, 1, "b", &which),
	    GW_STORE_LIMIT);
	delta = 100 - 700;			/* spent 100 */
	ck_assert_int_eq(gw_store()->limit_settle(&c, 1, "a", &delta),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->limit_reserve(&r, 1, "b", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(r.used, 500);
	delta = -400;				/* b failed: released */
	ck_assert_int_eq(gw_store()->limit_settle(&r, 1, "b", &delta),
	    GW_STORE_OK);
	ctr(&r, GW_CTR_PERIOD, "budget", 1000, 900);
	ck_assert_int_eq(gw_store()->limit_reserve(&r, 1, "c", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(r.used, 1000);
	/* Windows settle in the bucket they reserved in. */
	ctr(&c, GW_CTR_WINDOW, "tpm", 100, 80);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "d", &which),
	    GW_STORE_OK);
	delta = -70;
	gw_store()->limit_settle(&c, 1, "d", &delta);
	ctr(&r, GW_CTR_WINDOW, "tpm", 100, 90);
	ck_assert_int_eq(gw_store()->limit_reserve(&r, 1, "e", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(r.used, 100);
	done_store();
}
END_TEST

/* Requests in flight: a lease each, returned by settling. */
START_TEST(inflight_leases)
{
	struct gw_ctr c;
	long long delta = 0;
	size_t which;

	use_store(_i);
	ctr(&c, GW_CTR_INFLIGHT, "conc", 2, 1);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "x", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "y", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "z", &which),
	    GW_STORE_LIMIT);
	gw_store()->limit_settle(&c, 1, "x", &delta);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "z", &which),
	    GW_STORE_OK);
	/* A lease its holder never returns expires. */
	ctr(&c, GW_CTR_INFLIGHT, "conc2", 1, 1);
	c.lease_s = 1;
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "lost", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "next", &which),
	    GW_STORE_LIMIT);
	usleep(1100 * 1000);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "next", &which),
	    GW_STORE_OK);
	done_store();
}
END_TEST

/* Sessions: the record is a prefix of the history; overflow sticks; an
 * agent's sessions are capped and never evicted. */
START_TEST(sessions_same)
{
	struct gw_sess_ref r = { "t1", "a1", "s1", 2, 3600 };
	const char *calls[GW_SESSION_MAX_CALLS + 1];
	const char *h1[] = { "search", "read" }, *h2[] = { "read" };
	size_t recorded;
	int retry;

	use_store(_i);
	ck_assert_int_eq(gw_store()->session_check(&r, h1, 1, &recorded,
	    &retry), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_append(&r, h1 + 1, 1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_check(&r, h2, 1, &recorded,
	    &retry), GW_STORE_CONTRADICTS);
	ck_assert_uint_eq(recorded, 2);
	ck_assert_int_eq(gw_store()->session_check(&r, h1, 2, &recorded,
	    &retry), GW_STORE_OK);
	r.session = "s2";
	ck_assert_int_eq(gw_store()->session_check(&r, h1, 0, &recorded,
	    &retry), GW_STORE_OK);
	r.session = "s3";
	ck_assert_int_eq(gw_store()->session_check(&r, h1, 0, &recorded,
	    &retry), GW_STORE_FULL);
	ck_assert_int_ge(retry, 3000);
	/* Overflow is sticky. */
	r.session = "s1";
	for (size_t i = 0; i <= GW_SESSION_MAX_CALLS; i++)
		calls[i] = i < 2 ? h1[i] : "search";
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS + 1, &recorded, &retry), GW_STORE_TOO_LONG);
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS, &recorded, &retry), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_append(&r, calls, 1),
	    GW_STORE_TOO_LONG);
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS, &recorded, &retry), GW_STORE_TOO_LONG);
	done_store();
}
END_TEST

/* The MCP path reads a session's whole record and appends to it only if
 * no other request appended in between: the same in process and in
 * Redis. */
START_TEST(session_read_and_append_at_same)
{
	struct gw_sess_ref r = { "t1", "a1", "r1", 2, 3600 };
	const char *h1[] = { "search", "read" }, *h3[] = { "mcp:send" };
	char **names = NULL;
	size_t n = 0;
	int retry;

	use_store(_i);
	/* A new session: read makes it, empty. */
	ck_assert_int_eq(gw_store()->session_read(&r, &names, &n, &retry),
	    GW_STORE_OK);
	ck_assert_uint_eq(n, 0);
	free(names);
	ck_assert_int_eq(gw_store()->session_append_at(&r, 0, h1, 2),
	    GW_STORE_OK);
	/* Decided on a record of 0 calls, but it holds 2 now. */
	ck_assert_int_eq(gw_store()->session_append_at(&r, 0, h3, 1),
	    GW_STORE_CONTRADICTS);
	ck_assert_int_eq(gw_store()->session_read(&r, &names, &n, &retry),
	    GW_STORE_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "search");
	ck_assert_str_eq(names[1], "read");
	ck_assert_ptr_null(names[2]);
	free(names);
	ck_assert_int_eq(gw_store()->session_append_at(&r, 2, h3, 1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_read(&r, &names, &n, &retry),
	    GW_STORE_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[2], "mcp:send");
	free(names);
	/* Reading counts against the cap like a check (r1 + one more). */
	r.session = "r2";
	ck_assert_int_eq(gw_store()->session_read(&r, &names, &n, &retry),
	    GW_STORE_OK);
	free(names);
	r.session = "r3";
	ck_assert_int_eq(gw_store()->session_read(&r, &names, &n, &retry),
	    GW_STORE_FULL);
	done_store();
}
END_TEST

static const unsigned char key1[32] = { 1 };

START_TEST(windows_same)
{
	struct gw_win_ref r1 = { "a1", key1, 3600 };
	const char *names[] = { "read", "search" };
	unsigned total, counts[2];

	use_store(_i);
	ck_assert_int_eq(gw_store()->window_take(&r1, "read", 3, 1), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "read", 3, 1),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(gw_store()->window_read(&r1, names, 2, &total, counts),
	    GW_STORE_OK);
	ck_assert_uint_eq(total, 3);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_uint_eq(counts[1], 2);
	done_store();
}
END_TEST

/* previous_response_id: each tenant's own bounded ring; one tenant's
 * flood does not push out another's ids.  In Redis the routes are shared
 * by every warden (a follow-up may reach another replica). */
START_TEST(response_routes_same)
{
	const struct gw_store_ops *st;
	char route[GW_RESP_ROUTE_MAX + 1], id[32];

	use_store(_i);
	gw_resp_routes_reset();
	st = gw_store();
	ck_assert_int_eq(st->response_put("t1", "resp_a", "eu"), GW_STORE_OK);
	ck_assert_int_eq(st->response_route("t1", "resp_a", route,
	    sizeof(route)), GW_STORE_OK);
	ck_assert_str_eq(route, "eu");
	ck_assert_int_eq(st->response_route("t2", "resp_a", route,
	    sizeof(route)), GW_STORE_UNKNOWN);
	for (int i = 0; i < GW_RESP_PER_TENANT + 10; i++) {
		snprintf(id, sizeof(id), "resp_%d", i);
		ck_assert_int_eq(st->response_put("t2", id, "us"), GW_STORE_OK);
	}
	ck_assert_int_eq(st->response_route("t1", "resp_a", route,
	    sizeof(route)), GW_STORE_OK);
	ck_assert_int_eq(st->response_route("t2", "resp_0", route,
	    sizeof(route)), GW_STORE_UNKNOWN);
	ck_assert_int_eq(st->response_route("t2", "resp_4105", route,
	    sizeof(route)), GW_STORE_OK);
	ck_assert_str_eq(route, "us");
	/* Not in this process: another warden finds it in Redis. */
	if (_i == 1) {
		gw_resp_routes_reset();
		ck_assert_int_eq(gw_resp_route_get("t1", "resp_a", route,
		    sizeof(route)), GW_STORE_UNKNOWN);
		ck_assert_int_eq(st->response_route("t1", "resp_a", route,
		    sizeof(route)), GW_STORE_OK);
	}
	gw_resp_routes_reset();
	done_store();
}
END_TEST

/*
 * Redis goes away: every operation says UNAVAILABLE, within the command
 * timeout, and (during the back-off) at once; it comes back on the same
 * port: operations work again, counting from what Redis kept (nothing,
 * here: no persistence).
 */
START_TEST(redis_down_and_back)
{
	struct gw_sess_ref r = { "t1", "a1", "s1", 2, 3600 };
	char route[GW_RESP_ROUTE_MAX + 1];
	struct gw_ctr c;
	size_t which, recorded;
	int retry, port;
	uint64_t t0;

	use_store(1);
	port = redis.port;
	ctr(&c, GW_CTR_WINDOW, "rpm", 10, 1);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_OK);
	ut_redis_stop(&redis);
	t0 = wd_mono_us();
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_UNAVAILABLE);
	ck_assert_int_eq(gw_store()->session_check(&r, NULL, 0, &recorded,
	    &retry), GW_STORE_UNAVAILABLE);
	ck_assert_int_eq(gw_store()->response_route("t1", "resp_a", route,
	    sizeof(route)), GW_STORE_UNAVAILABLE);
	ck_assert_msg(wd_mono_us() - t0 < 1000000, "a dead Redis took %llu us",
	    (unsigned long long)(wd_mono_us() - t0));
	ut_redis_start(&redis, port);
	usleep(600 * 1000);		/* past the back-off */
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(c.used, 1);
	ck_assert_int_eq(gw_store()->session_check(&r, NULL, 0, &recorded,
	    &retry), GW_STORE_OK);
	done_store();
}
END_TEST

/* SCRIPT FLUSH (or a restart) forgets the scripts: EVAL takes over. */
START_TEST(redis_noscript_fallback)
{
	struct gw_ctr c;
	size_t which;

	use_store(1);
	ctr(&c, GW_CTR_WINDOW, "rpm", 2, 1);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_OK);
	ut_redis_cmd(redis.port, "SCRIPT FLUSH");
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->limit_reserve(&c, 1, "r", &which),
	    GW_STORE_LIMIT);
	done_store();
}
END_TEST

Suite *
suite_store(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("both");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, window_exact, 0, 2);
	tcase_add_loop_test(tc, all_or_nothing, 0, 2);
	tcase_add_loop_test(tc, settle_and_release, 0, 2);
	tcase_add_loop_test(tc, inflight_leases, 0, 2);
	tcase_add_loop_test(tc, sessions_same, 0, 2);
	tcase_add_loop_test(tc, windows_same, 0, 2);
	tcase_add_loop_test(tc, session_read_and_append_at_same, 0, 2);
	tcase_add_loop_test(tc, response_routes_same, 0, 2);
	tcase_add_test(tc, redis_down_and_back);
	tcase_add_test(tc, redis_noscript_fallback);
	suite_add_tcase(s, tc);
	return s;
}
