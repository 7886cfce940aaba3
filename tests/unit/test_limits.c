/*
 * test_limits.c - `limits:`, `prices:` and `state:` in the rules
 * (policy/load_limits.c) and a request's plan: which counters, what it
 * reserves, what settling adds (gateway/limits.c, pure parts), and the
 * reservation against the in-process store with its headers and record.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/gw_int.h"
#include "gateway/limits.h"
#include "policy/pol_int.h"
#include "tests/unit/suites.h"

#define HEX_A "0123456789abcdef0123456789abcdef" \
	      "0123456789abcdef0123456789abcdef"
#define HEX_B "fedcba9876543210fedcba9876543210" \
	      "fedcba9876543210fedcba9876543210"

/* Lines 1-14. */
#define HEAD \
	"version: 1\n" \
	"providers:\n" \
	"  - id: p1\n" \
	"    base_url: https://a.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m, cheap]\n" \
	"tenants:\n" \
	"  - id: t1\n" \
	"    keys: [\"sha256:" HEX_A "\"]\n" \
	"    apps:\n" \
	"      - id: web\n" \
	"        keys: [\"sha256:" HEX_B "\"]\n" \
	"    routes: [p1]\n"

static void
load_ok(struct ut_ld *l, const char *tail)
{
	char *text;

	ck_assert_int_ge(asprintf(&text, "%s%s", HEAD, tail), 0);
	ut_load_text(l, text, 0600);
	free(text);
	ck_assert_msg(l->rc == WD_OK, "rc %d; errors:\n%s", l->rc, l->errs);
}

static void
expect_errors(const char *tail, const char *tmpl)
{
	struct ut_ld l;
	char *text, *want;

	ck_assert_int_ge(asprintf(&text, "%s%s", HEAD, tail), 0);
	ut_load_text(&l, text, 0600);
	free(text);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == WD_ECONFIG, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
}

#define LIMITS \
	"limits:\n" \
	"  - id: key-rpm\n" \
	"    per: key\n" \
	"    tenant: t1\n" \
	"    requests_per_minute: 10\n" \
	"    tokens_per_minute: 5000\n" \
	"  - id: web-budget\n" \
	"    per: app\n" \
	"    tenant: t1\n" \
	"    app: web\n" \
	"    cost_per_day_usd: \"2.50\"\n" \
	"    tokens_per_month: 1000000\n" \
	"    concurrent: 4\n" \
	"    completion_ceiling: 1000\n" \
	"    fail_open: true\n" \
	"prices:\n" \
	"  - model: m\n" \
	"    input_usd_per_mtok: 0.15\n" \
	"    output_usd_per_mtok: \"0.6\"\n" \
	"state:\n" \
	"  redis:\n" \
	"    url: redis://127.0.0.1:6390/2\n" \
	"    command_timeout_ms: 50\n"

START_TEST(limits_load)
{
	struct ut_ld l;
	const struct pol_limit *a, *b;

	load_ok(&l, LIMITS);
	ck_assert_uint_eq(l.snap->nlimits, 2);
	a = &l.snap->limits[0];
	b = &l.snap->limits[1];
	ck_assert_str_eq(a->id, "key-rpm");
	ck_assert_int_eq(a->scope, POL_SCOPE_KEY);
	ck_assert_int_eq(a->max[POL_LIM_RPM], 10);
	ck_assert_int_eq(a->max[POL_LIM_TPM], 5000);
	ck_assert_int_eq(a->max[POL_LIM_CONCURRENT], -1);
	ck_assert_int_eq(a->completion_ceiling, POL_DEFAULT_COMPLETION_CEILING);
	ck_assert(!a->fail_open);
	ck_assert_int_eq(b->scope, POL_SCOPE_APP);
	ck_assert_str_eq(b->app, "web");
	ck_assert_int_eq(b->max[POL_LIM_COST_DAY], 2500000);
	ck_assert_int_eq(b->max[POL_LIM_TOKENS_MONTH], 1000000);
	ck_assert_int_eq(b->max[POL_LIM_CONCURRENT], 4);
	ck_assert_int_eq(b->completion_ceiling, 1000);
	ck_assert(b->fail_open);
	ck_assert_uint_eq(l.snap->nprices, 1);
	ck_assert_int_eq(l.snap->prices[0].in_per_mtok, 150000);
	ck_assert_int_eq(l.snap->prices[0].out_per_mtok, 600000);
	ck_assert_str_eq(l.snap->state.redis_url, "redis://127.0.0.1:6390/2");
	ck_assert_int_eq(l.snap->state.command_timeout_ms, 50);
	ck_assert_int_eq(l.snap->state.connect_timeout_ms, 200);
	ck_assert_str_eq(l.snap->state.key_prefix, "warden:");
	ut_ld_done(&l);
}
END_TEST

START_TEST(limits_errors)
{
	expect_errors(
	    "limits:\n"
	    "  - id: x\n"
	    "    per: user\n"
	    "    tenant: t9\n"
	    "    requests_per_minut: 3\n"
	    "  - id: y\n"
	    "    per: app\n"
	    "    tenant: t1\n"
	    "    app: mobile\n"
	    "    cost_per_day_usd: 1.2345678\n"
	    "prices:\n"
	    "  - model: m\n"
	    "    input_usd_per_mtok: -1\n"
	    "    output_usd_per_mtok: 1\n"
	    "state:\n"
	    "  redis: { url: \"redis://u:pw@h:1\" }\n",
	    "@:30:17: state.redis.url must be redis://HOST:PORT[/DB], without "
	    "user or password\n"
	    "@:19:5: unknown key 'requests_per_minut' in limit (did you mean "
	    "'requests_per_minute'?)\n"
	    "@:17:10: per must be tenant, app, agent or key, not 'user'\n"
	    "@:16:5: limit 'x' limits nothing (give requests_per_minute, "
	    "tokens_per_minute, concurrent, tokens_per_day, tokens_per_month, "
	    "cost_per_day_usd or cost_per_month_usd)\n"
	    "@:24:23: cost_per_day_usd must be a US dollar amount such as 12 or "
	    "0.15 (at most 6 decimals, at most 1000000000)\n"
	    "@:27:25: input_usd_per_mtok must be a US dollar amount such as 12 "
	    "or 0.15 (at most 6 decimals, at most 1000000000)\n"
	    "@:18:13: limit 'x': no tenant 't9'\n"
	    "@:23:10: limit 'y': tenant 't1' has no app 'mobile'\n"
	    "@: 8 errors\n");
}
END_TEST

static void
version_of(const char *tail, char out[65])
{
	struct ut_ld l;

	load_ok(&l, tail);
	memcpy(out, l.snap->version, 65);
	ut_ld_done(&l);
}

START_TEST(limits_in_policy_version)
{
	char a[65], b[65], c[65];

	version_of(LIMITS, a);
	version_of("limits:\n  - { id: k, per: key, requests_per_minute: 10 }\n",
	    b);
	version_of("limits:\n  - { id: k, per: key, requests_per_minute: 11 }\n",
	    c);
	ck_assert_str_ne(a, b);
	ck_assert_str_ne(b, c);
}
END_TEST

static struct pol_caller
caller_of(const struct pol_snapshot *s, const char *hex)
{
	unsigned char d[32];
	struct pol_caller c;

	for (int i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &d[i]);
	ck_assert(pol_find_caller(s, d, &c));
	return c;
}

/* Which counters a request touches and what it reserves. */
START_TEST(plan_counters)
{
	struct ut_ld l;
	struct gw_limits L;
	struct pol_caller app, plain;
	long long delta[GW_MAX_CTRS];
	time_t now = 1764460800;	/* 2025-11-30 00:00:00 UTC */

	load_ok(&l, LIMITS);
	app = caller_of(l.snap, HEX_B);
	plain = caller_of(l.snap, HEX_A);
	/* The tenant's own key: only key-rpm (two counters). */
	gw_limits_plan(&L, l.snap, &plain, "m", 400, 50, "req1", now);
	ck_assert_uint_eq(L.n, 2);
	ck_assert_int_eq(L.est_prompt, 108);
	ck_assert_int_eq(L.completion, 50);
	ck_assert_int_eq(L.c[0].amount, 1);
	ck_assert_int_eq(L.c[1].amount, 158);
	ck_assert_str_eq(L.c[0].key, "key-rpm:rpm:k/" HEX_A);
	/* The app's key: both limits; no max_tokens: the ceiling. */
	gw_limits_plan(&L, l.snap, &app, "m", 400, -1, "req2", now);
	ck_assert_uint_eq(L.n, 5);
	ck_assert_int_eq(L.completion, 4096);	/* the larger ceiling */
	ck_assert(L.need_price);
	ck_assert_int_eq(L.cost, gw_limits_cost(L.price, 108, 4096));
	ck_assert_int_eq(L.cost, (108LL * 150000 + 4096LL * 600000 + 999999) /
	    1000000);
	ck_assert_str_eq(L.c[2].key, "web-budget:conc:a/t1/web");
	ck_assert_int_eq(L.c[2].type, GW_CTR_INFLIGHT);
	ck_assert_str_eq(L.c[3].key, "web-budget:tmon:a/t1/web:202511");
	ck_assert_int_eq(L.c[3].period_end, 1764547200);	/* 2025-12-01 */
	ck_assert_str_eq(L.c[4].key, "web-budget:cday:a/t1/web:20251130");
	ck_assert_int_eq(L.c[4].period_end, 1764547200);
	/* Settling: tokens and cost move by spent minus reserved. */
	gw_limits_deltas(&L, 100, 20, delta);
	ck_assert_int_eq(delta[0], 0);			/* rpm */
	ck_assert_int_eq(delta[1], 120 - L.tokens);	/* tpm */
	ck_assert_int_eq(delta[2], 0);			/* concurrent */
	ck_assert_int_eq(delta[3], 120 - L.tokens);
	ck_assert_int_eq(delta[4], gw_limits_cost(L.price, 100, 20) - L.cost);
	ut_ld_done(&l);
}
END_TEST

/* Against the in-process store: refusal names the limit, headers, the
 * record; settle with usage; a model without price under a cost limit. */
START_TEST(reserve_refuse_settle)
{
	struct ut_ld l;
	struct gw_limits L;
	struct pol_caller plain, app;
	char msg[256], buf[7][32];
	const char *names[7], *values[7];
	json_t *rec, *usage;
	size_t nh;

	gw_store_use(&gw_store_memory);
	gw_store_memory_reset();
	load_ok(&l, LIMITS);
	plain = caller_of(l.snap, HEX_A);
	app = caller_of(l.snap, HEX_B);
	for (int i = 0; i < 10; i++) {
		gw_limits_plan(&L, l.snap, &plain, "m", 40, 10, "r", time(NULL));
		ck_assert_int_eq(gw_limits_reserve(&L, msg, sizeof(msg)),
		    GW_LIM_OK);
		usage = json_pack("{s:i,s:i}", "prompt_tokens", 5,
		    "completion_tokens", 3);
		gw_limits_settle(&L, usage);
		json_decref(usage);
	}
	nh = gw_limits_headers(&L, names, values, buf);
	ck_assert_uint_eq(nh, 6);
	ck_assert_str_eq(names[1], "x-ratelimit-remaining-requests");
	ck_assert_str_eq(values[1], "0");
	rec = gw_limits_json(&L);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec,
	    "spent"), "tokens")), 8);
	json_decref(rec);
	gw_limits_plan(&L, l.snap, &plain, "m", 40, 10, "r", time(NULL));
	ck_assert_int_eq(gw_limits_reserve(&L, msg, sizeof(msg)), GW_LIM_OVER);
	ck_assert_str_eq(L.hit->id, "key-rpm");
	ck_assert_int_eq(L.hit_kind, POL_LIM_RPM);
	ck_assert_msg(strstr(msg, "limit 'key-rpm' (requests_per_minute per "
	    "key): 10 of 10 used") != NULL, "%s", msg);
	nh = gw_limits_headers(&L, names, values, buf);
	ck_assert_str_eq(names[nh - 1], "Retry-After");
	rec = gw_limits_json(&L);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rec,
	    "refused_by"), "limit")), "key-rpm");
	json_decref(rec);
	/* cost_per_day on a model without a price: refused, never free. */
	gw_limits_plan(&L, l.snap, &app, "cheap", 40, 10, "r", time(NULL));
	ck_assert_int_eq(gw_limits_reserve(&L, msg, sizeof(msg)),
	    GW_LIM_NO_PRICE);
	ut_ld_done(&l);
}
END_TEST

/* Streams: usage asked for; the usage-only chunk the client did not ask
 * for is taken out (its usage kept); one it asked for stays. */
START_TEST(stream_usage)
{
	json_t *root = json_loads("{\"stream\":true,\"max_tokens\":7}", 0,
	    NULL), *usage = NULL;
	struct evbuffer *out = evbuffer_new();
	bool asked;
	const char ev[] =
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
	    "\"completion_tokens\":4}}\n\n";
	size_t first = strstr(ev, "\n\n") - ev + 2;

	ck_assert_int_eq(gw_limits_max_tokens(root), 7);
	ck_assert(gw_limits_ask_usage(root, &asked));
	ck_assert(!asked);
	ck_assert(json_is_true(json_object_get(json_object_get(root,
	    "stream_options"), "include_usage")));
	ck_assert(!gw_limits_ask_usage(root, &asked));
	ck_assert(asked);
	evbuffer_add(out, ev, strlen(ev));
	gw_limits_stream_usage(out, true, &usage);
	ck_assert_uint_eq(evbuffer_get_length(out), first);
	ck_assert_int_eq(json_integer_value(json_object_get(usage,
	    "completion_tokens")), 4);
	json_decref(usage);
	usage = NULL;
	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_add(out, ev, strlen(ev));
	gw_limits_stream_usage(out, false, &usage);
	ck_assert_uint_eq(evbuffer_get_length(out), strlen(ev));
	ck_assert_ptr_nonnull(usage);
	json_decref(usage);
	json_decref(root);
	evbuffer_free(out);
}
END_TEST

Suite *
suite_limits(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, limits_load);
	tcase_add_test(tc, limits_errors);
	tcase_add_test(tc, limits_in_policy_version);
	tcase_add_test(tc, plan_counters);
	tcase_add_test(tc, reserve_refuse_settle);
	tcase_add_test(tc, stream_usage);
	suite_add_tcase(s, tc);
	return s;
}
