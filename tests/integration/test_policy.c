/*
 * test_policy.c - policy decisions as callers see them: compliant
 * routing and fallback, denials in the OpenAI error shape with the rule
 * ids, headers that may narrow but not widen, and reload under load.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/env.h"
#include "tests/integration/suites.h"

static void
setup(void)
{
	it_env_start(NULL);
}

static void
teardown(void)
{
	it_env_stop();
}

static void
chat_h(const char *key, const char *extra, const char *body,
    struct it_resp *r)
{
	const char *h[] = { extra, NULL };

	it_chat_at(it_url("/v1/chat/completions"), key, h, body, 10000, r);
}

START_TEST(compliant_fallback_never_touches_noncompliant_route)
{
	struct it_resp r;
	char buf[128], *body = it_chat_body("gpt-4o", "tok-pol-fb", false);

	/* p-us is first in t3's list but holds no ZDR contract and is
	 * outside the EU: p-eu is the first compliant route; when it fails,
	 * p-de answers. */
	it_mock_config(0, "{\"fail_next\":1}");
	chat_h(IT_KEY_T3, NULL, body, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(it_resp_header(&r, "X-Warden-Route", buf, sizeof(buf)),
	    "p-de");
	ck_assert(it_resp_header(&r, "X-Warden-Decision", buf, sizeof(buf)));
	ck_assert_int_eq(strlen(buf), 32);
	ck_assert(it_record_has(0, "tok-pol-fb"));
	ck_assert(it_record_has(1, "tok-pol-fb"));
	ck_assert_msg(!it_record_has(2, "tok-pol-fb"),
	    "the non-compliant route was called");
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(no_compliant_route_is_a_403_naming_the_rules)
{
	struct it_resp r;
	char buf[128], *body = it_chat_body("o3", "tok-pol-deny", false);
	json_t *j, *e;

	chat_h(IT_KEY_T3, NULL, body, &r);
	ck_assert_int_eq(r.status, 403);
	j = json_loads(r.body, 0, NULL);
	e = json_object_get(j, "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
	    "policy_violation");
	/* Every route that serves o3 fell to a residency rule. */
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
	    "residency");
	ck_assert(strstr(json_string_value(json_object_get(e, "message")),
	    "eu-personal") != NULL);
	ck_assert(strstr(json_string_value(json_object_get(e, "message")),
	    "health-zdr") != NULL);
	ck_assert(it_resp_header(&r, "X-Warden-Decision", buf, sizeof(buf)));
	json_decref(j);
	it_resp_free(&r);
	ck_assert(!it_record_has(2, "tok-pol-deny"));

	/* Only retention stands in the way: health data on a route that
	 * keeps it 30 days. */
	chat_h(IT_KEY_T2, "X-Warden-Data-Class: health", body, &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_msg(strstr(r.body, "\"code\":\"retention\"") != NULL, "%s",
	    r.body);
	ck_assert(strstr(r.body, "health-zdr") != NULL);
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(headers_narrow_but_never_widen)
{
	struct it_resp r;
	char *body = it_chat_body("gpt-4o", "x", false);

	chat_h(IT_KEY_T3, "X-Warden-Data-Class: public", body, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert(strstr(r.body, "data_class_not_omittable") != NULL);
	it_resp_free(&r);
	chat_h(IT_KEY_T3, "X-Warden-Data-Class: secret", body, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert(strstr(r.body, "invalid_data_class") != NULL);
	it_resp_free(&r);
	chat_h(IT_KEY_T3, "X-Warden-Subject-Region: US", body, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert(strstr(r.body, "subject_region_widening") != NULL);
	it_resp_free(&r);
	chat_h(IT_KEY_T3, "X-Warden-Subject-Region: DE", body, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	{
		const char *h[] = { "Authorization: Bearer " IT_KEY_T3,
			"X-Warden-Data-Class: personal, health",
			"X-Warden-Data-Class: personal", NULL };

		it_http("POST", it_url("/v1/chat/completions"), h, body, 5000, &r);
		ck_assert_int_eq(r.status, 400);
		ck_assert(strstr(r.body, "duplicate_policy_header") != NULL);
		it_resp_free(&r);
	}
	/* Adding a class narrows: t1 has none, with health it needs ZDR. */
	chat_h(IT_KEY_T2, "X-Warden-Data-Class: health", body, &r);
	ck_assert_int_eq(r.status, 403);
	it_resp_free(&r);
	free(body);
}
END_TEST

/* The base rules text, or it with one more rule: another policy. */
static void
write_variant(const char *base_text, const char *path, bool extra)
{
	const char *dc = strstr(base_text, "dev_credentials:");
	char *out;

	/* The rules list ends where dev_credentials begins. */
	if (asprintf(&out, "%.*s%s%s", (int)(dc - base_text), base_text,
	    extra ? "  - { id: extra-rule, when: { data_class: [public] },"
	    " keep: { payloads: none } }\n" : "", dc) < 0)
		abort();
	it_write_file(path, out, 0600);
	free(out);
}

START_TEST(reload_under_load_keeps_serving)
{
	char a[256], b[256], line[256], v1[80] = "", v2[80] = "", *orig;
	int fds[2];
	pid_t child;
	FILE *in;
	int ok = 0, bad = 0, seen1 = 0, seen2 = 0, other = 0;

	orig = it_read_file(it.config, NULL);
	snprintf(a, sizeof(a), "%s/a.yaml", it_tmpdir());
	snprintf(b, sizeof(b), "%s/b.yaml", it_tmpdir());
	write_variant(orig, a, false);
	write_variant(orig, b, true);
	ck_assert(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		/* 300 requests; one line per answer: status and version. */
		FILE *out = fdopen(fds[1], "w");
		char *body = it_chat_body("gpt-4o", "load", false);

		close(fds[0]);
		for (int i = 0; i < 300; i++) {
			struct it_resp r;
			char v[80] = "-";

			it_chat(IT_KEY_T1, body, &r);
			it_resp_header(&r, "X-Warden-Policy-Version", v, sizeof(v));
			fprintf(out, "%ld %s\n", r.status, v);
			it_resp_free(&r);
		}
		fclose(out);
		_exit(0);
	}
	close(fds[1]);
	for (int i = 0; i < 8; i++) {
		struct it_resp r;

		/* Swap the file under the running gateway, then reload by
		 * signal and by the admin endpoint in turn. */
		rename(i % 2 ? a : b, it.config);
		write_variant(orig, i % 2 ? a : b, i % 2 == 0);
		if (i % 2) {
			kill(it.warden, SIGHUP);
		} else {
			it_http("POST", it_url("/admin/reload"), NULL, "", 5000, &r);
			ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
			it_resp_free(&r);
		}
		usleep(60000);
	}
	in = fdopen(fds[0], "r");
	while (fgets(line, sizeof(line), in) != NULL) {
		long st;
		char v[80];

		if (sscanf(line, "%ld %79s", &st, v) != 2)
			continue;
		if (st == 200)
			ok++;
		else
			bad++;
		if (v1[0] == '\0')
			snprintf(v1, sizeof(v1), "%s", v);
		if (strcmp(v, v1) == 0)
			seen1++;
		else if (v2[0] == '\0' || strcmp(v, v2) == 0) {
			snprintf(v2, sizeof(v2), "%s", v);
			seen2++;
		} else {
			other++;
		}
	}
	fclose(in);
	waitpid(child, NULL, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(ok, 300);
	/* Each answer came from one of the two policies, and both served. */
	ck_assert_int_eq(other, 0);
	ck_assert_int_gt(seen1, 0);
	ck_assert_int_gt(seen2, 0);
	ck_assert_int_eq(strlen(v1), 64);
	write_variant(orig, it.config, false);
	free(orig);
}
END_TEST

START_TEST(bad_reload_keeps_the_running_policy)
{
	struct it_resp r;
	char *text = it_read_file(it.config, NULL), *broken;
	char *body = it_chat_body("gpt-4o", "x", false);

	if (asprintf(&broken, "%s\nbogus_key: 1\n", text) < 0)
		abort();
	it_write_file(it.config, broken, 0600);
	it_http("POST", it_url("/admin/reload"), NULL, "", 5000, &r);
	ck_assert_int_eq(r.status, 422);
	ck_assert_msg(strstr(r.body, "unknown key 'bogus_key'") != NULL, "%s", r.body);
	it_resp_free(&r);
	it_chat(IT_KEY_T1, body, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_write_file(it.config, text, 0600);
	free(text);
	free(broken);
	free(body);
}
END_TEST

/* `warden reload` asks the running gateway, and says what happened. */
START_TEST(reload_command_reports_the_outcome)
{
	char cmd[1024], path[256], *out, *text, *broken;
	int st;

	snprintf(path, sizeof(path), "%s/reload.out", it_tmpdir());
	snprintf(cmd, sizeof(cmd), "%s reload -c %s >%s 2>&1",
	    getenv("WARDEN_BIN"), it.config, path);
	st = it_run(cmd, NULL, NULL);
	out = it_read_file(path, NULL);
	ck_assert_msg(st == 0, "%s", out);
	ck_assert(strstr(out, "\"status\":\"reloaded\"") != NULL);
	free(out);
	text = it_read_file(it.config, NULL);
	if (asprintf(&broken, "%s\nbogus_key: 1\n", text) < 0)
		abort();
	it_write_file(it.config, broken, 0600);
	snprintf(cmd, sizeof(cmd), "%s reload --url %s >%s 2>&1",
	    getenv("WARDEN_BIN"), it_url("/admin/reload"), path);
	st = it_run(cmd, NULL, NULL);
	out = it_read_file(path, NULL);
	ck_assert_msg(st == 1, "%s", out);
	ck_assert(strstr(out, "unknown key 'bogus_key'") != NULL);
	free(out);
	it_write_file(it.config, text, 0600);
	free(text);
	free(broken);
}
END_TEST

Suite *
suite_policy(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, compliant_fallback_never_touches_noncompliant_route);
	tcase_add_test(tc, no_compliant_route_is_a_403_naming_the_rules);
	tcase_add_test(tc, headers_narrow_but_never_widen);
	tcase_add_test(tc, reload_under_load_keeps_serving);
	tcase_add_test(tc, bad_reload_keeps_the_running_policy);
	tcase_add_test(tc, reload_command_reports_the_outcome);
	suite_add_tcase(s, tc);
	return s;
}
