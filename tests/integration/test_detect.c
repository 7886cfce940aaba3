/*
 * test_detect.c - content detection as callers, providers and auditors
 * see it: a `public` tenant's prompt holding an IBAN is routed by the
 * financial-data rule; a card number is redacted before it leaves; a
 * provider key is refused and appears nowhere (answer, provider, log,
 * audit); a card number a provider streams in two pieces ends the stream;
 * a detector that cannot run refuses the request.
 *
 * The fixture starts the usual environment, then restarts warden on its
 * rules plus a `financial` class, a public tenant t-pub (routes p-us,
 * then p-eu), a rule keeping financial data in the EU, and `detect:`.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wd.h"
#include "tests/integration/env.h"
#include "tests/integration/suites.h"

#define KEY_PUB "wk-it-public-tenant"
#define IBAN "DE89 3704 0044 0532 0130 00"
#define CARD "4111 1111 1111 1111"
#define SECRET "sk-proj-Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a"

static char *
replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	if (at == NULL || asprintf(&out, "%.*s%s%s", (int)(at - text), text, to,
	    at + strlen(from)) < 0)
		abort();
	return out;
}

static char *env_rules;			/* the env's own */

/* The env's rules plus what this suite needs; extra goes into detect:. */
static void
write_rules(const char *path, const char *extra)
{
	unsigned char d[32];
	char hex[65], tenant[256], *a, *b, *c, *e;

	wd_sha256(KEY_PUB, strlen(KEY_PUB), d);
	wd_hex(d, 32, hex);
	snprintf(tenant, sizeof(tenant), "tenants:\n  - { id: t-pub, keys: "
	    "['sha256:%s'], data_classes: [public], routes: [p-us, p-eu] }\n",
	    hex);
	if (env_rules == NULL)
		env_rules = it_read_file(it.config, NULL);
	if (env_rules == NULL)
		abort();
	a = strdup(env_rules);
	b = replace(a, "data_classes: [public, personal, health]\n",
	    "data_classes: [public, personal, health, financial]\n");
	c = replace(b, "tenants:\n", tenant);
	e = replace(c, "rules:\n", "rules:\n  - { id: financial-eu, when: { "
	    "data_class: [financial] }, require: { provider_country: EU } }\n");
	free(a);
	free(b);
	free(c);
	if (asprintf(&a, "%sdetect:\n  iban: financial\n  card: { class: "
	    "financial, action: redact, answers: true }\n  secret: { action: "
	    "block }\n%s", e, extra) < 0)
		abort();
	it_write_file(path, a, 0600);
	free(a);
	free(e);
}

static void
setup(void)
{
	it_env_start(NULL);
	it_stop(it.warden, SIGTERM);
	write_rules(it.config, "");
	it.port = it_free_port();
	snprintf(it.base, sizeof(it.base), "http://127.0.0.1:%d", it.port);
	it.warden = it_warden_start(it.port);
}

static void
teardown(void)
{
	it_env_stop();
}

static void
chat(const char *content, bool stream, struct it_resp *r)
{
	char *body = it_chat_body("gpt-4o", content, stream);

	it_chat(KEY_PUB, body, r);
	free(body);
}

/* Does a line of an audit file hold needle (and also, if given)? */
static bool
audit_has(const char *needle, const char *also)
{
	char dir[300];
	struct dirent **ents;
	bool found = false;
	int n;

	snprintf(dir, sizeof(dir), "%s/audit", it_tmpdir());
	n = scandir(dir, &ents, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[600], *text, *line, *save;

		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		text = ents[i]->d_type == DT_REG ? it_read_file(path, NULL) : NULL;
		for (line = text ? strtok_r(text, "\n", &save) : NULL;
		    line != NULL && !found; line = strtok_r(NULL, "\n", &save))
			found = strstr(line, needle) != NULL &&
			    (also == NULL || strstr(line, also) != NULL);
		free(text);
		free(ents[i]);
	}
	if (n > 0)
		free(ents);
	return found;
}

static const char *
decision_of(const struct it_resp *r, char *buf, size_t len)
{
	const char *d = it_resp_header(r, "X-Warden-Decision", buf, len);

	ck_assert_ptr_nonnull(d);
	return d;
}

START_TEST(public_iban_goes_by_financial_rules)
{
	struct it_resp r;
	char route[64], dec[64], want[128];

	/* Without one: the tenant's first route, in the US. */
	chat("det-plain-7a1: what is an IBAN?", false, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(it_resp_header(&r, "X-Warden-Route", route,
	    sizeof(route)), "p-us");
	it_resp_free(&r);
	/* With one: financial, which must stay in the EU. */
	chat("det-iban-7a2: is " IBAN " right?", false, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(it_resp_header(&r, "X-Warden-Route", route,
	    sizeof(route)), "p-eu");
	ck_assert(it_record_has(0, "det-iban-7a2"));
	ck_assert(!it_record_has(2, "det-iban-7a2"));
	decision_of(&r, dec, sizeof(dec));
	it_resp_free(&r);
	/* The record names the detector and the count, never the value. */
	snprintf(want, sizeof(want), "\"decision_id\":\"%s\"", dec);
	ck_assert(audit_has(want, "\"detections\":{\"iban\":1}"));
	ck_assert(audit_has(want, "\"financial\""));
	ck_assert(!audit_has("0532 0130", NULL));
	ck_assert(!audit_has("05320130", NULL));
	it_http("GET", it_url("/metrics"), NULL, NULL, 5000, &r);
	ck_assert_ptr_nonnull(strstr(r.body, "warden_detections_total{detector="
	    "\"iban\",where=\"request\"} 1"));
	it_resp_free(&r);
}
END_TEST

START_TEST(card_redacted_before_it_leaves)
{
	struct it_resp r;
	char *rec;

	chat("det-card-5c3: charge " CARD " please", false, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	it_resp_free(&r);
	rec = it_record_find(0, "det-card-5c3");
	ck_assert_ptr_nonnull(rec);
	ck_assert_ptr_nonnull(strstr(rec, "charge [REDACTED:card] please"));
	ck_assert_ptr_null(strstr(rec, "1111 1111"));
	free(rec);
}
END_TEST

START_TEST(secret_blocked_and_never_repeated)
{
	struct it_resp r;
	char dec[64], want[128], *log;

	chat("det-key-9e4: my key is " SECRET, false, &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"detected_secret\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\"type\":\"policy_violation\""));
	ck_assert_ptr_null(strstr(r.body, "Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a"));
	decision_of(&r, dec, sizeof(dec));
	it_resp_free(&r);
	for (int i = 0; i < 3; i++)
		ck_assert(!it_record_has(i, "det-key-9e4"));
	snprintf(want, sizeof(want), "\"decision_id\":\"%s\"", dec);
	ck_assert(audit_has(want, "\"detections\":{\"secret\":1}"));
	ck_assert(!audit_has("Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a", NULL));
	log = it_read_file(it.warden_log, NULL);
	ck_assert_ptr_null(log ? strstr(log, "Zq8vT3kLm2Xw9Rb7") : NULL);
	free(log);
}
END_TEST

/* The provider streams "Card 4111 1111" and " 1111 1111" as two deltas:
 * the second completes a card number; it and what follows never reach
 * the client, and the stream ends with an error event naming card. */
START_TEST(streamed_card_split_in_two_is_caught)
{
	struct it_resp r;

	chat("det-stream-2b6 [[mock words=Card_4111_1111,1111_1111,thanks "
	    "chunk_delay_ms=50]]", true, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "Card 4111 1111") != NULL, "%s", r.body);
	ck_assert_msg(strstr(r.body, "\"code\":\"detected_card\"") != NULL, "%s",
	    r.body);
	ck_assert_ptr_null(strstr(r.body, "1111 1111\""));
	ck_assert_ptr_null(strstr(r.body, "thanks"));
	ck_assert_ptr_null(strstr(r.body, "[DONE]"));
	it_resp_free(&r);
	/* A number that is no card passes. */
	chat("det-stream-2b8 [[mock words=Order_4111_1111,1111_1112,thanks]]",
	    true, &r);
	ck_assert_ptr_nonnull(strstr(r.body, "thanks"));
	ck_assert_ptr_nonnull(strstr(r.body, "[DONE]"));
	it_resp_free(&r);
}
END_TEST

/* A whole answer holding a card number is withheld: 403 naming card. */
START_TEST(whole_answer_with_card_withheld)
{
	struct it_resp r;
	char dec[64], want[128];

	chat("det-whole-4f1 [[mock words=Card_4111_1111,1111_1111,thanks]]",
	    false, &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"detected_card\""));
	ck_assert_ptr_null(strstr(r.body, "4111"));
	decision_of(&r, dec, sizeof(dec));
	it_resp_free(&r);
	/* The record says the answer was refused after the decision. */
	snprintf(want, sizeof(want), "\"decision_id\":\"%s\"", dec);
	ck_assert(audit_has(want, "\"verdict\":\"deny\""));
	ck_assert(audit_has(want, "\"code\":\"detected_card\""));
}
END_TEST

/* A detector that cannot run (here: its memory budget is smaller than
 * one scanner) refuses the request; nothing goes upstream unscanned. */
START_TEST(detector_that_cannot_run_refuses)
{
	struct it_resp r;
	char url[128], auth[128];
	const char *h[] = { auth, "Content-Type: application/json", NULL };
	char *body;
	int port = it_free_port();
	pid_t w;

	write_rules(it.config, "  max_memory: 1\n");
	w = it_warden_start(port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", KEY_PUB);
	body = it_chat_body("gpt-4o", "det-fail-3d9: hello", false);
	it_http("POST", url, h, body, 5000, &r);
	free(body);
	it_stop(w, SIGTERM);
	write_rules(it.config, "");
	ck_assert_int_eq(r.status, 503);
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"detector_unavailable\""));
	it_resp_free(&r);
	for (int i = 0; i < 3; i++)
		ck_assert(!it_record_has(i, "det-fail-3d9"));
}
END_TEST

Suite *
suite_detect(void)
{
	Suite *s = suite_create("detect");
	TCase *tc = tcase_create("detect");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, public_iban_goes_by_financial_rules);
	tcase_add_test(tc, card_redacted_before_it_leaves);
	tcase_add_test(tc, secret_blocked_and_never_repeated);
	tcase_add_test(tc, streamed_card_split_in_two_is_caught);
	tcase_add_test(tc, whole_answer_with_card_withheld);
	tcase_add_test(tc, detector_that_cannot_run_refuses);
	suite_add_tcase(s, tc);
	return s;
}
