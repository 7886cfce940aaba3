/*
 * test_gateway.c - the gateway against real mock providers: proxying,
 * streaming, errors in the OpenAI shape, fallback, limits, and the
 * official openai npm client.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

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

/* A provider's own error, passed through: OpenAI's shape, maybe without
 * every field. */
static void
assert_provider_error(const struct it_resp *r, long status)
{
	json_t *j = json_loads(r->body, 0, NULL);

	ck_assert_msg(r->status == status, "status %ld, want %ld: %s",
	    r->status, status, r->body);
	ck_assert(json_is_string(json_object_get(json_object_get(j, "error"),
	    "message")));
	json_decref(j);
}

static void
assert_error(const struct it_resp *r, long status, const char *code)
{
	it_assert_error(r, status, NULL, code, NULL);
}

START_TEST(chat_is_proxied_with_route_credential)
{
	struct it_resp r;
	char buf[128], *body = it_chat_body("gpt-4o", "hello tok-proxied", false);
	char *rec;
	json_t *j;

	it_chat(IT_KEY_T1, body, &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	ck_assert(j != NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "object")),
	    "chat.completion");
	ck_assert(strstr(json_string_value(json_object_get(json_object_get(
	    json_array_get(json_object_get(j, "choices"), 0), "message"),
	    "content")), "eu") != NULL);
	json_decref(j);
	ck_assert(it_resp_header(&r, "X-Request-Id", buf, sizeof(buf)) != NULL);
	ck_assert_str_eq(it_resp_header(&r, "X-Warden-Route", buf, sizeof(buf)),
	    "p-eu");
	/* The provider saw the route's credential and never the caller's key. */
	rec = it_record_find(0, "tok-proxied");
	ck_assert(rec != NULL);
	ck_assert_msg(strstr(rec, "Bearer " IT_SECRET_EU) != NULL, "%s", rec);
	ck_assert(strstr(rec, IT_KEY_T1) == NULL);
	ck_assert(strstr(rec, "\"host\"") != NULL);
	free(rec);
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(request_id_is_kept_when_sane)
{
	struct it_resp r;
	char buf[128], *body = it_chat_body("gpt-4o", "hi", false);
	const char *hdrs[] = { "Authorization: Bearer " IT_KEY_T1,
		"X-Request-Id: caller-req-42", NULL };
	const char *bad[] = { "Authorization: Bearer " IT_KEY_T1,
		"X-Request-Id: <script>", NULL };

	it_http("POST", it_url("/v1/chat/completions"), hdrs, body, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(it_resp_header(&r, "X-Request-Id", buf, sizeof(buf)),
	    "caller-req-42");
	it_resp_free(&r);
	it_http("POST", it_url("/v1/chat/completions"), bad, body, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_ne(it_resp_header(&r, "X-Request-Id", buf, sizeof(buf)),
	    "<script>");
	ck_assert_int_eq(strlen(buf), 24);
	it_resp_free(&r);
	free(body);
}
END_TEST

/* Replace the digits after each prefix with 'N': ids and timestamps
 * differ between two otherwise identical answers. */
static void
normalize(char *s, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (char *p = strstr(s, prefix); p != NULL; p = strstr(p, prefix)) {
		p += pl;
		while (*p >= '0' && *p <= '9')
			*p++ = 'N';
	}
}

START_TEST(stream_is_passed_through_byte_for_byte)
{
	struct it_resp via, direct;
	char url[128], *body = it_chat_body("gpt-4o",
	    "stream me [[mock chunks=20]]", true);
	char buf[64];

	it_chat(IT_KEY_T1, body, &via);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions",
	    it.mock_port[0]);
	it_http("POST", url, NULL, body, 5000, &direct);
	ck_assert_int_eq(via.status, 200);
	ck_assert_int_eq(direct.status, 200);
	ck_assert_str_eq(it_resp_header(&via, "Content-Type", buf, sizeof(buf)),
	    "text/event-stream");
	ck_assert(strstr(via.body, "data: [DONE]") != NULL);
	normalize(via.body, "chatcmpl-mock-");
	normalize(direct.body, "chatcmpl-mock-");
	normalize(via.body, "\"created\":");
	normalize(direct.body, "\"created\":");
	normalize(via.body, "\"created\": ");
	normalize(direct.body, "\"created\": ");
	ck_assert_msg(strcmp(via.body, direct.body) == 0,
	    "stream differs:\nvia warden:\n%s\ndirect:\n%s", via.body, direct.body);
	it_resp_free(&via);
	it_resp_free(&direct);
	free(body);
}
END_TEST

START_TEST(bad_input_gets_openai_errors)
{
	struct it_resp r;
	char big[70000];

	it_chat(IT_KEY_T1, "{not json", &r);
	assert_error(&r, 400, NULL);
	ck_assert(strstr(r.body, "not valid JSON") != NULL);
	it_resp_free(&r);
	it_chat(IT_KEY_T1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	assert_error(&r, 400, NULL);
	ck_assert_msg(strstr(r.body, "\"param\":\"model\"") != NULL, "%s", r.body);
	it_resp_free(&r);
	it_chat(IT_KEY_T1, "{\"model\":\"gpt-4o\",\"model\":\"o3\","
	    "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	assert_error(&r, 400, NULL);
	it_resp_free(&r);
	it_chat("wk-not-a-key", "{}", &r);
	assert_error(&r, 401, "invalid_api_key");
	it_resp_free(&r);
	it_chat(NULL, "{}", &r);
	assert_error(&r, 401, "invalid_api_key");
	it_resp_free(&r);
	it_chat(IT_KEY_T2, "{\"model\":\"no-such-model\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	assert_error(&r, 404, "model_not_found");
	it_resp_free(&r);
	it_http("GET", it_url("/v1/nothing-here"), NULL, NULL, 5000, &r);
	assert_error(&r, 404, "unknown_url");
	it_resp_free(&r);
	it_http("GET", it_url("/v1/chat/completions"), NULL, NULL, 5000, &r);
	assert_error(&r, 405, "method_not_allowed");
	it_resp_free(&r);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "{\"model\":\"", 10);
	it_chat(IT_KEY_T1, big, &r);
	assert_error(&r, 413, NULL);
	it_resp_free(&r);
}
END_TEST

START_TEST(oversized_headers_get_431)
{
	struct it_resp r;
	static char hdr[10000];
	const char *hdrs[] = { hdr, NULL };

	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'b', sizeof(hdr) - 8);
	hdr[sizeof(hdr) - 1] = '\0';
	it_http("GET", it_url("/healthz"), hdrs, NULL, 5000, &r);
	assert_error(&r, 431, NULL);
	it_resp_free(&r);
}
END_TEST

START_TEST(ambiguous_framing_is_refused)
{
	static const char cl_te[] =
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	static const char two_cl[] =
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}";
	static const char space[] =
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n";
	const char *cases[] = { cl_te, two_cl, space };

	for (size_t i = 0; i < 3; i++) {
		char *out = it_raw(it.port, cases[i], strlen(cases[i]), 3000);

		ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "case %zu: %s",
		    i, out);
		ck_assert(strstr(out, "\"error\"") != NULL);
		ck_assert(strstr(out, "Connection: close") != NULL);
		free(out);
	}
	/* The server is still there. */
	{
		struct it_resp r;

		it_http("GET", it_url("/healthz"), NULL, NULL, 5000, &r);
		ck_assert_int_eq(r.status, 200);
		it_resp_free(&r);
	}
}
END_TEST

START_TEST(slow_head_times_out_with_408)
{
	static const char part[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
	char *out = it_raw(it.port, part, strlen(part), 4000);

	ck_assert_msg(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
	ck_assert(strstr(out, "\"error\"") != NULL);
	free(out);
}
END_TEST

START_TEST(chunked_request_body_is_accepted)
{
	static const char req[] =
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer " IT_KEY_T2 "\r\nConnection: close\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "10\r\n{\"model\":\"gpt-4o\r\n"
	    "2c\r\n\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]\r\n"
	    "1\r\n}\r\n0\r\n\r\n";
	char *out = it_raw(it.port, req, strlen(req), 5000);

	ck_assert_msg(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
	ck_assert(strstr(out, "chat.completion") != NULL);
	free(out);
}
END_TEST

START_TEST(fallback_moves_to_next_route)
{
	struct it_resp r;
	char buf[64], *body = it_chat_body("gpt-4o", "tok-fallback", false);
	char *eu, *de;

	it_mock_config(0, "{\"fail_next\":1}");
	it_chat(IT_KEY_T1, body, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(it_resp_header(&r, "X-Warden-Route", buf, sizeof(buf)),
	    "p-de");
	eu = it_record_find(0, "tok-fallback");
	de = it_record_find(1, "tok-fallback");
	ck_assert(eu != NULL && de != NULL);
	ck_assert(strstr(de, "Bearer " IT_SECRET_DE) != NULL);
	/* A route the tenant does not list is never tried. */
	ck_assert(!it_record_has(2, "tok-fallback"));
	free(eu);
	free(de);
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(upstream_failures_map_to_gateway_errors)
{
	struct it_resp r;
	char *body;

	body = it_chat_body("gpt-4o", "tok-all-500 [[mock status=500]]", false);
	it_chat(IT_KEY_T1, body, &r);
	assert_error(&r, 502, "upstream_error");
	free(body);
	it_resp_free(&r);
	/* Both routes were tried, in order. */
	ck_assert(it_record_has(0, "tok-all-500"));
	ck_assert(it_record_has(1, "tok-all-500"));

	body = it_chat_body("gpt-4o", "[[mock status=429]]", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_error(&r, 429, NULL);
	free(body);
	it_resp_free(&r);

	body = it_chat_body("gpt-4o", "[[mock delay_ms=4000]]", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_error(&r, 504, "upstream_timeout");
	free(body);
	it_resp_free(&r);

	body = it_chat_body("gpt-4o", "[[mock reset_after=0]]", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_error(&r, 502, "upstream_error");
	free(body);
	it_resp_free(&r);

	body = it_chat_body("gpt-4o", "[[mock body=notjson]]", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_error(&r, 502, "bad_upstream_response");
	free(body);
	it_resp_free(&r);

	/* A provider's own 4xx answer reaches the caller as it was. */
	body = it_chat_body("gpt-4o", "[[mock status=400]]", false);
	it_chat(IT_KEY_T2, body, &r);
	assert_provider_error(&r, 400);
	free(body);
	it_resp_free(&r);
}
END_TEST

START_TEST(stream_broken_upstream_ends_with_error_event)
{
	struct it_resp r;
	char *body = it_chat_body("gpt-4o", "[[mock reset_after=3 chunks=10]]", true);
	char *last;

	it_chat(IT_KEY_T2, body, &r);
	ck_assert_int_eq(r.status, 200);
	/* The chunked answer was closed properly: curl saw no error. */
	ck_assert_msg(r.curl_code == CURLE_OK, "curl %d", r.curl_code);
	last = strstr(r.body, "event: error\ndata: ");
	ck_assert_msg(last != NULL, "%s", r.body);
	ck_assert(strstr(last, "\"upstream_error\"") != NULL);
	ck_assert(strstr(r.body, "[DONE]") == NULL);
	/* Everything before the error event is whole events. */
	ck_assert(last == r.body || (last[-1] == '\n' && last[-2] == '\n'));
	it_resp_free(&r);
	free(body);

	body = it_chat_body("gpt-4o", "[[mock stall_after=2]]", true);
	it_chat(IT_KEY_T2, body, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "event: error") != NULL);
	ck_assert(strstr(r.body, "upstream_timeout") != NULL);
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(client_leaving_aborts_upstream)
{
	char req[512], *out;
	const char *body = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"tok-leave [[mock chunks=50 "
	    "chunk_delay_ms=100]]\"}]}";

	snprintf(req, sizeof(req), "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T2 "\r\n"
	    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	/* Read for a moment, then hang up mid-stream. */
	out = it_raw(it.port, req, strlen(req), 300);
	ck_assert_msg(strstr(out, "text/event-stream") != NULL, "%s", out);
	free(out);
	ck_assert_msg(it_record_aborted(2, "tok-leave", 2000),
	    "the provider's transfer was not aborted");
}
END_TEST

START_TEST(keep_alive_reuses_the_connection)
{
	CURL *e = curl_easy_init();
	long conns = -1, code = 0;
	FILE *null = fopen("/dev/null", "w");

	curl_easy_setopt(e, CURLOPT_URL, it_url("/healthz"));
	curl_easy_setopt(e, CURLOPT_WRITEDATA, null);
	ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
	ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
	curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	ck_assert_int_eq(code, 200);
	ck_assert_int_eq(conns, 0);
	curl_easy_cleanup(e);
	fclose(null);
}
END_TEST

START_TEST(models_lists_what_the_key_may_use)
{
	const char *h1[] = { "Authorization: Bearer " IT_KEY_T1, NULL };
	const char *h2[] = { "Authorization: Bearer " IT_KEY_T2, NULL };
	struct it_resp r;

	it_http("GET", it_url("/v1/models"), h1, NULL, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "\"gpt-4o-mini\"") != NULL);
	ck_assert(strstr(r.body, "\"o3\"") == NULL);
	it_resp_free(&r);
	it_http("GET", it_url("/v1/models"), h2, NULL, 5000, &r);
	ck_assert(strstr(r.body, "\"o3\"") != NULL);
	it_resp_free(&r);
	it_http("GET", it_url("/v1/models"), NULL, NULL, 5000, &r);
	assert_error(&r, 401, "invalid_api_key");
	it_resp_free(&r);
}
END_TEST

START_TEST(metrics_count_requests)
{
	struct it_resp r;
	char *body = it_chat_body("gpt-4o", "hi", false);

	it_chat(IT_KEY_T2, body, &r);
	it_resp_free(&r);
	it_http("GET", it_url("/metrics"), NULL, NULL, 5000, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "warden_requests_total{status=\"200\","
	    "route=\"p-us\"}") != NULL);
	ck_assert(strstr(r.body, "warden_upstream_latency_seconds_bucket"
	    "{route=\"p-us\",le=\"+Inf\"}") != NULL);
	ck_assert(strstr(r.body, "warden_open_connections ") != NULL);
	/* The bytes of every worker's shard, added up: at least this
	 * request's body in, its answer out. */
	{
		const char *in = strstr(r.body, "\nwarden_bytes_received_total ");
		const char *out = strstr(r.body, "\nwarden_bytes_sent_total ");

		ck_assert_ptr_nonnull(in);
		ck_assert_ptr_nonnull(out);
		ck_assert_uint_ge(strtoull(in + 29, NULL, 10), strlen(body));
		ck_assert_uint_gt(strtoull(out + 25, NULL, 10), 0);
	}
	it_resp_free(&r);
	free(body);
}
END_TEST

START_TEST(openai_node_client_works)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "WARDEN_BASE_URL=%s/v1 WARDEN_KEY=%s "
	    "node --test tests/openai-node/ >%s/openai-node.log 2>&1",
	    it.base, IT_KEY_T1, it_tmpdir());
	st = it_run(cmd, NULL, NULL);
	if (st != 0) {
		char path[256], *log;

		snprintf(path, sizeof(path), "%s/openai-node.log", it_tmpdir());
		log = it_read_file(path, NULL);
		ck_abort_msg("openai npm client tests failed:\n%s", log);
	}
}
END_TEST

/* Last: nothing above may have put a credential into any output. */
START_TEST(secrets_never_leak)
{
	const char *secrets[] = { IT_SECRET_EU, IT_SECRET_DE, IT_SECRET_US };

	for (size_t i = 0; i < 3; i++) {
		ck_assert_msg(!it_file_contains(it.warden_log, secrets[i]),
		    "warden's log holds a credential");
		char path[256];

		snprintf(path, sizeof(path), "%s/openai-node.log", it_tmpdir());
		ck_assert(!it_file_contains(path, secrets[i]));
	}
}
END_TEST

Suite *
suite_gateway(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("proxy");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, chat_is_proxied_with_route_credential);
	tcase_add_test(tc, request_id_is_kept_when_sane);
	tcase_add_test(tc, stream_is_passed_through_byte_for_byte);
	tcase_add_test(tc, bad_input_gets_openai_errors);
	tcase_add_test(tc, oversized_headers_get_431);
	tcase_add_test(tc, ambiguous_framing_is_refused);
	tcase_add_test(tc, slow_head_times_out_with_408);
	tcase_add_test(tc, chunked_request_body_is_accepted);
	tcase_add_test(tc, fallback_moves_to_next_route);
	tcase_add_test(tc, upstream_failures_map_to_gateway_errors);
	tcase_add_test(tc, stream_broken_upstream_ends_with_error_event);
	tcase_add_test(tc, client_leaving_aborts_upstream);
	tcase_add_test(tc, keep_alive_reuses_the_connection);
	tcase_add_test(tc, models_lists_what_the_key_may_use);
	tcase_add_test(tc, metrics_count_requests);
	tcase_add_test(tc, openai_node_client_works);
	tcase_add_test(tc, secrets_never_leak);
	suite_add_tcase(s, tc);
	return s;
}
