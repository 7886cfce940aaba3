/*
 * test_replicas.c - limits, budgets and agent sessions (issue 16) on real
 * processes, twice:
 *
 *   single    one warden, no state.redis: the counters in its process;
 *   replicas  three wardens behind nginx (round robin, a config this test
 *             writes, loopback ports) sharing one real redis-server that
 *             this test starts (never the system's instance).
 *
 * The same cases run on both: a key of 10 requests a minute gets exactly
 * 10 through; a token budget is not overspent under 64 concurrent
 * clients; an agent's session is enforced whichever replica answers next;
 * a Responses follow-up finds its route whichever replica made it.
 * Then, replicas only: Redis killed, budgets and sessions fail closed
 * with an error that says so; Redis back, service resumes.
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wd.h"
#include "tests/integration/harness.h"
#include "tests/integration/suites.h"

#define KEY_RPM "wk-rep-rpm"
#define KEY_BUDGET "wk-rep-budget"
#define KEY_AGENT "wk-rep-agent"
#define KEY_FREE "wk-rep-free"
#define KEY_TPM "wk-rep-tpm"
#define BUDGET 3000
#define NREPLICAS 3

static struct {
	bool shared;			/* replicas + Redis */
	pid_t mock, redis, nginx, warden[NREPLICAS];
	int mock_port, redis_port, nginx_port, port[NREPLICAS];
	char dir[256], rules[300], base[64];
} rep;

static void
digest_line(const char *key, char out[72])
{
	unsigned char d[32];
	char hex[65];

	wd_sha256(key, strlen(key), d);
	wd_hex(d, 32, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

static void
redis_start(void)
{
	char port[16], log[320];
	char *argv[] = { "/usr/bin/redis-server", "--port", port, "--bind",
		"127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize",
		"no", NULL };

	snprintf(port, sizeof(port), "%d", rep.redis_port);
	snprintf(log, sizeof(log), "%s/redis.log", rep.dir);
	rep.redis = it_spawn(argv, log);
	if (!it_wait_port(rep.redis_port, 5000)) {
		fprintf(stderr, "redis-server did not come up; see %s\n", log);
		abort();
	}
}

static void
write_rules(void)
{
	char kr[72], kb[72], ka[72], kf[72], kt[72], state[160] = "", *text;

	digest_line(KEY_RPM, kr);
	digest_line(KEY_BUDGET, kb);
	digest_line(KEY_AGENT, ka);
	digest_line(KEY_FREE, kf);
	digest_line(KEY_TPM, kt);
	if (rep.shared)
		snprintf(state, sizeof(state), "state:\n  redis:\n    url: "
		    "redis://127.0.0.1:%d\n    command_timeout_ms: 300\n",
		    rep.redis_port);
	if (asprintf(&text,
	    "version: 1\n"
	    "server:\n"
	    "  workers: 2\n"
	    "  max_inflight_per_key: 256\n"
	    "  max_inflight: 256\n"
	    "%s"
	    "upstream:\n"
	    "  connect_timeout_ms: 1000\n"
	    "  first_byte_timeout_ms: 5000\n"
	    "  max_attempts: 1\n"
	    "providers:\n"
	    "  - { id: p1, base_url: 'http://127.0.0.1:%d/v1', country: IE,"
	    " retention: { zdr: true }, credential: c1, models: [gpt-4o],"
	    " api: [openai-chat, openai-responses] }\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    routes: [p1]\n"
	    "    apps:\n"
	    "      - { id: rpm-app, keys: ['%s', '%s'] }\n"
	    "      - { id: budget-app, keys: ['%s'] }\n"
	    "      - { id: tpm-app, keys: ['%s'] }\n"
	    "agents:\n"
	    "  - id: bot\n"
	    "    tenant: t1\n"
	    "    keys: ['%s']\n"
	    "    session: required\n"
	    "    tools:\n"
	    "      search: {}\n"
	    "      read: {}\n"
	    "    graph:\n"
	    "      start: [search, read]\n"
	    "      search: [search, read]\n"
	    "      read: [search, read]\n"
	    "limits:\n"
	    "  - { id: rpm10, per: key, tenant: t1, app: rpm-app,"
	    " requests_per_minute: 10 }\n"
	    "  - { id: budget, per: key, tenant: t1, app: budget-app,"
	    " tokens_per_day: %d }\n"
	    "  - { id: tpm, per: app, tenant: t1, app: tpm-app,"
	    " tokens_per_minute: 1000000 }\n"
	    "dev_credentials:\n"
	    "  c1: sk-rep-secret\n",
	    state, rep.mock_port, kr, kf, kb, kt, ka, BUDGET) < 0)
		abort();
	it_write_file(rep.rules, text, 0600);
	free(text);
}

static pid_t
warden_start(int port)
{
	char portarg[32], auditdir[320], log[320];
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", rep.rules,
		"--listen", portarg, "--audit-dir", auditdir, "--dev-credentials",
		NULL };
	pid_t pid;

	snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", port);
	snprintf(auditdir, sizeof(auditdir), "%s/audit-%d", rep.dir, port);
	snprintf(log, sizeof(log), "%s/warden-%d.log", rep.dir, port);
	pid = it_spawn(argv, log);
	if (!it_wait_port(port, 5000)) {
		fprintf(stderr, "warden did not come up; see %s\n", log);
		abort();
	}
	return pid;
}

static void
nginx_start(void)
{
	char conf[320], log[320], *text, servers[256] = "";
	char *argv[] = { "/usr/sbin/nginx", "-p", rep.dir, "-c", conf, "-g",
		"daemon off;", NULL };

	for (int i = 0; i < NREPLICAS; i++) {
		size_t n = strlen(servers);

		snprintf(servers + n, sizeof(servers) - n,
		    "    server 127.0.0.1:%d;\n", rep.port[i]);
	}
	snprintf(conf, sizeof(conf), "%s/nginx.conf", rep.dir);
	snprintf(log, sizeof(log), "%s/nginx.log", rep.dir);
	if (asprintf(&text,
	    "worker_processes 1;\n"
	    "pid %s/nginx.pid;\n"
	    "error_log %s/nginx-error.log;\n"
	    "events { worker_connections 512; }\n"
	    "http {\n"
	    "  access_log off;\n"
	    "  client_body_temp_path %s/nginx-body;\n"
	    "  proxy_temp_path %s/nginx-proxy;\n"
	    "  upstream wardens {\n%s  }\n"
	    "  server {\n"
	    "    listen 127.0.0.1:%d;\n"
	    "    location / {\n"
	    "      proxy_pass http://wardens;\n"
	    "      proxy_http_version 1.1;\n"
	    "      proxy_set_header Connection \"\";\n"
	    "      proxy_next_upstream off;\n"
	    "      proxy_buffering off;\n"
	    "    }\n"
	    "  }\n"
	    "}\n", rep.dir, rep.dir, rep.dir, rep.dir, servers,
	    rep.nginx_port) < 0)
		abort();
	it_write_file(conf, text, 0600);
	free(text);
	rep.nginx = it_spawn(argv, log);
	if (!it_wait_port(rep.nginx_port, 5000)) {
		fprintf(stderr, "nginx did not come up; see %s\n", log);
		abort();
	}
}

static void
start(bool shared)
{
	char listen[32], record[320], log[320];
	char *margv[] = { getenv("MOCK_BIN"), "--listen", listen, "--name",
		"rep", "--record", record, NULL };

	memset(&rep, 0, sizeof(rep));
	rep.shared = shared;
	snprintf(rep.dir, sizeof(rep.dir), "%s/replicas-%s", it_tmpdir(),
	    shared ? "redis" : "single");
	mkdir(rep.dir, 0700);
	snprintf(rep.rules, sizeof(rep.rules), "%s/rules.yaml", rep.dir);
	rep.mock_port = it_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", rep.mock_port);
	snprintf(record, sizeof(record), "%s/record.jsonl", rep.dir);
	snprintf(log, sizeof(log), "%s/mock.log", rep.dir);
	rep.mock = it_spawn(margv, log);
	if (!it_wait_port(rep.mock_port, 5000))
		abort();
	if (shared) {
		rep.redis_port = it_free_port();
		redis_start();
	}
	write_rules();
	for (int i = 0; i < (shared ? NREPLICAS : 1); i++) {
		rep.port[i] = it_free_port();
		rep.warden[i] = warden_start(rep.port[i]);
	}
	if (shared) {
		rep.nginx_port = it_free_port();
		nginx_start();
		snprintf(rep.base, sizeof(rep.base), "http://127.0.0.1:%d",
		    rep.nginx_port);
	} else {
		snprintf(rep.base, sizeof(rep.base), "http://127.0.0.1:%d",
		    rep.port[0]);
	}
}

static void
start_single(void)
{
	start(false);
}

static void
start_shared(void)
{
	start(true);
}

static void
stop_all(void)
{
	if (rep.nginx > 0)
		it_stop(rep.nginx, SIGQUIT);
	for (int i = 0; i < NREPLICAS; i++)
		if (rep.warden[i] > 0)
			it_stop(rep.warden[i], SIGTERM);
	if (rep.redis > 0)
		it_stop(rep.redis, SIGTERM);
	if (rep.mock > 0)
		it_stop(rep.mock, SIGTERM);
}

/* POST a chat body to base (or a replica's port) as key. */
static void
post_to(const char *path, int port, const char *key, const char *session,
    const char *body, struct it_resp *r)
{
	char auth[96], sess[96], url[160];
	const char *hdrs[4] = { auth, "Content-Type: application/json", NULL,
		NULL };

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	if (session != NULL) {
		snprintf(sess, sizeof(sess), "X-Warden-Session: %s", session);
		hdrs[2] = sess;
	}
	if (port > 0)
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	else
		snprintf(url, sizeof(url), "%s%s", rep.base, path);
	it_http("POST", url, hdrs, body, 15000, r);
}

static void
post(int port, const char *key, const char *session, const char *body,
    struct it_resp *r)
{
	post_to("/v1/chat/completions", port, key, session, body, r);
}

/* A Responses follow-up of id to a replica's port (or base). */
static void
follow_up(int port, const char *id, struct it_resp *r)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"model\":\"gpt-4o\",\"input\":\"and "
	    "then?\",\"previous_response_id\":\"%s\"}", id);
	post_to("/v1/responses", port, KEY_FREE, NULL, body, r);
}

static const char small_body[] =
    "{\"model\":\"gpt-4o\",\"max_tokens\":20,\"messages\":[{\"role\":\"user\","
    "\"content\":\"hello there\"}]}";

static void
assert_limit_error(const struct it_resp *r, const char *limit)
{
	json_t *j = json_loads(r->body, 0, NULL), *e = json_object_get(j, "error");
	char buf[64];

	ck_assert_msg(r->status == 429, "status %ld: %s", r->status, r->body);
	ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
	    "rate_limit_exceeded");
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
	    "limit_exceeded");
	ck_assert_msg(strstr(json_string_value(json_object_get(e, "message")),
	    limit) != NULL, "%s", r->body);
	ck_assert_ptr_nonnull(it_resp_header(r, "retry-after", buf,
	    sizeof(buf)));
	ck_assert_int_ge(atoi(buf), 1);
	json_decref(j);
}

/* A /metrics line's value, summed over the wardens. */
static long
metric_sum(const char *series)
{
	long sum = 0;

	for (int i = 0; i < NREPLICAS && rep.port[i] > 0; i++) {
		char url[96];
		struct it_resp r;
		const char *p;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics",
		    rep.port[i]);
		it_http("GET", url, NULL, NULL, 5000, &r);
		ck_assert_int_eq(r.status, 200);
		p = strstr(r.body, series);
		ck_assert_msg(p != NULL, "no %s in /metrics", series);
		sum += atol(p + strlen(series));
		it_resp_free(&r);
	}
	return sum;
}

/* A 10-per-minute key: exactly 10 of 15 through (across the replicas). */
START_TEST(ten_per_minute)
{
	struct it_resp r;
	int ok = 0, refused = 0;
	char buf[64];

	for (int i = 0; i < 15; i++) {
		post(0, KEY_RPM, NULL, small_body, &r);
		if (r.status == 200) {
			ok++;
			ck_assert_ptr_nonnull(it_resp_header(&r,
			    "x-ratelimit-limit-requests", buf, sizeof(buf)));
			ck_assert_str_eq(buf, "10");
			it_resp_header(&r, "x-ratelimit-remaining-requests", buf,
			    sizeof(buf));
			ck_assert_int_eq(atoi(buf), 10 - ok);
		} else {
			assert_limit_error(&r, "rpm10");
			refused++;
		}
		it_resp_free(&r);
	}
	ck_assert_int_eq(ok, 10);
	ck_assert_int_eq(refused, 5);
	ck_assert_int_eq(metric_sum("warden_limit_rejections_total{kind="
	    "\"requests_per_minute\"} "), 5);
	ck_assert_int_ge(metric_sum("warden_limit_reservations_total{result="
	    "\"reserved\"} "), 10);
	/* Another key of the tenant has its own 10. */
	post(0, KEY_FREE, NULL, small_body, &r);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
}
END_TEST

static atomic_llong spent, max_reserved;
static atomic_int oks, errors_seen;

static void *
budget_client(void *arg)
{
	(void)arg;
	for (int i = 0; i < 60; i++) {
		struct it_resp r;
		json_t *j, *u;

		post(0, KEY_BUDGET, NULL, small_body, &r);
		if (r.status == 429) {
			it_resp_free(&r);
			break;
		}
		if (r.status != 200) {
			atomic_fetch_add(&errors_seen, 1);
			fprintf(stderr, "budget: status %ld: %s\n", r.status, r.body);
			it_resp_free(&r);
			break;
		}
		j = json_loads(r.body, 0, NULL);
		u = json_object_get(j, "usage");
		atomic_fetch_add(&spent, json_integer_value(json_object_get(u,
		    "total_tokens")));
		atomic_fetch_add(&oks, 1);
		json_decref(j);
		it_resp_free(&r);
	}
	return NULL;
}

/*
 * 64 clients at once against a 3000-token day: what the provider counted
 * (the answers' usage) never passes the budget by more than one
 * request's reservation, and the budget is used (not refused early).
 */
START_TEST(budget_under_64_clients)
{
	pthread_t th[64];
	/* body/4 + 8 + max_tokens: the reservation of one request. */
	long long reservation = (long long)strlen(small_body) / 4 + 8 + 20;

	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, budget_client, NULL),
		    0);
	for (int i = 0; i < 64; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&errors_seen), 0);
	ck_assert_msg(atomic_load(&spent) <= BUDGET + reservation,
	    "spent %lld of %d (+%lld)", (long long)atomic_load(&spent), BUDGET,
	    reservation);
	ck_assert_msg(atomic_load(&spent) >= BUDGET - 64 * reservation,
	    "spent only %lld of %d", (long long)atomic_load(&spent), BUDGET);
	ck_assert_int_gt(atomic_load(&oks), 10);
	(void)max_reserved;
}
END_TEST

static char *
agent_body(const char *content, const char *const *history)
{
	json_t *root = json_object(), *msgs = json_array(), *tools = json_array();
	char *text;

	for (size_t i = 0; history != NULL && history[i] != NULL; i++) {
		char id[32];

		snprintf(id, sizeof(id), "call_%zu", i);
		json_array_append_new(msgs, json_pack("{s:s,s:n,s:[{s:s,s:s,"
		    "s:{s:s,s:s}}]}", "role", "assistant", "content", "tool_calls",
		    "id", id, "type", "function", "function", "name", history[i],
		    "arguments", "{}"));
		json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role",
		    "tool", "tool_call_id", id, "content", "result"));
	}
	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user",
	    "content", content));
	for (int i = 0; i < 2; i++)
		json_array_append_new(tools, json_pack("{s:s,s:{s:s,s:{s:s}}}",
		    "type", "function", "function", "name", i ? "read" : "search",
		    "parameters", "type", "object"));
	json_object_set_new(root, "model", json_string("gpt-4o"));
	json_object_set_new(root, "messages", msgs);
	json_object_set_new(root, "tools", tools);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

/*
 * The agent's call goes out through one replica; the next request, to
 * another, cannot hide it (its history without the call contradicts the
 * session), and with it goes through (on a third).
 */
START_TEST(session_across_replicas)
{
	struct it_resp r;
	char *b;
	int p1 = rep.port[0], p2 = rep.shared ? rep.port[1] : rep.port[0];
	int p3 = rep.shared ? rep.port[2] : rep.port[0];

	b = agent_body("go [[mock tool_call=search]]", NULL);
	post(p1, KEY_AGENT, "sess-1", b, &r);
	free(b);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "\"search\""));
	it_resp_free(&r);
	/* Hiding the call: refused, wherever it lands. */
	b = agent_body("again", NULL);
	post(p2, KEY_AGENT, "sess-1", b, &r);
	free(b);
	ck_assert_msg(r.status == 403, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "contradict"));
	it_resp_free(&r);
	b = agent_body("again", (const char *const[]){ "search", NULL });
	post(p3, KEY_AGENT, "sess-1", b, &r);
	free(b);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/*
 * A Responses follow-up names state kept at the provider that made the
 * response: it goes to that route whichever replica made the response
 * and whichever gets the follow-up (the routes are in Redis); an id no
 * replica made is refused on every one.
 */
START_TEST(responses_follow_up_across_replicas)
{
	struct it_resp r;
	json_t *j;
	char id[160];

	post_to("/v1/responses", rep.port[0], KEY_FREE, NULL,
	    "{\"model\":\"gpt-4o\",\"input\":\"hello\"}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "id")));
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j,
	    "id")));
	json_decref(j);
	it_resp_free(&r);
	for (int i = 0; i < NREPLICAS; i++) {
		follow_up(rep.shared ? rep.port[i] : rep.port[0], id, &r);
		ck_assert_msg(r.status == 200, "replica %d: status %ld: %s", i,
		    r.status, r.body);
		it_resp_free(&r);
	}
	follow_up(rep.shared ? rep.port[2] : rep.port[0], "resp_no_replica_made",
	    &r);
	ck_assert_msg(r.status == 404 && strstr(r.body, "unknown_response") !=
	    NULL, "status %ld: %s", r.status, r.body);
	it_resp_free(&r);
}
END_TEST

/*
 * A stream under a token limit: warden asks the provider for usage; the
 * client that did not ask gets no usage chunk, the one that did gets it;
 * either way the record holds what was spent.
 */
START_TEST(stream_usage)
{
	static const char plain[] =
	    "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":20,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	static const char asked[] =
	    "{\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":20,"
	    "\"stream_options\":{\"include_usage\":true},"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct it_resp r;

	post(0, KEY_TPM, NULL, plain, &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "data: [DONE]"));
	ck_assert_msg(strstr(r.body, "\"usage\"") == NULL, "usage leaked: %s",
	    r.body);
	it_resp_free(&r);
	post(0, KEY_TPM, NULL, asked, &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "\"usage\""));
	it_resp_free(&r);
	/* The provider was asked for usage both times. */
	{
		char path[320], *rec;
		size_t n = 0;

		snprintf(path, sizeof(path), "%s/record.jsonl", rep.dir);
		rec = it_read_file(path, NULL);
		ck_assert_ptr_nonnull(rec);
		for (char *p = rec; (p = strstr(p, "include_usage")) != NULL; p++)
			n++;
		ck_assert_uint_ge(n, 2);
		free(rec);
	}
}
END_TEST

/*
 * Redis killed: a budget and a session fail closed with an error that
 * names the store; Redis back on its port: service resumes by itself.
 */
START_TEST(redis_gone_and_back)
{
	struct it_resp r;
	char *b = agent_body("hi", NULL);
	json_t *j;
	const char *code;

	it_stop(rep.redis, SIGKILL);
	rep.redis = 0;
	post(0, KEY_BUDGET, NULL, small_body, &r);
	ck_assert_msg(r.status == 503, "status %ld: %s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	code = json_string_value(json_object_get(json_object_get(j, "error"),
	    "code"));
	ck_assert_str_eq(code, "state_store_unavailable");
	ck_assert_ptr_nonnull(strstr(r.body, "redis"));
	json_decref(j);
	it_resp_free(&r);
	post(rep.port[1], KEY_AGENT, "sess-down", b, &r);
	ck_assert_msg(r.status == 503, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "state_store_unavailable"));
	it_resp_free(&r);
	/* Which route holds a response cannot be told: not guessed. */
	follow_up(rep.port[2], "resp_while_down", &r);
	ck_assert_msg(r.status == 503, "status %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "state_store_unavailable"));
	it_resp_free(&r);
	redis_start();
	usleep(800 * 1000);		/* the workers' back-off */
	for (int i = 0; i < 2 * NREPLICAS; i++) {
		post(0, i % 2 ? KEY_FREE : KEY_BUDGET, NULL, small_body, &r);
		ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
		it_resp_free(&r);
	}
	post(rep.port[1], KEY_AGENT, "sess-up", b, &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
	it_resp_free(&r);
	free(b);
}
END_TEST

/*
 * Each replica keeps its own chain; `warden audit export` of the three
 * logs writes one export ordered by time in which each chain verifies,
 * and a row altered in it makes verify-export fail.
 */
START_TEST(audit_export_of_replicas)
{
	char cmd[2048], out[320], bad[320], *text, *p;
	int n = 0, rc;
	FILE *f;

	snprintf(out, sizeof(out), "%s/merged.jsonl", rep.dir);
	snprintf(bad, sizeof(bad), "%s/merged-bad.jsonl", rep.dir);
	snprintf(cmd, sizeof(cmd), "%s audit export %s/audit-%d %s/audit-%d "
	    "%s/audit-%d --format jsonl -o %s 2>/dev/null", getenv("WARDEN_BIN"),
	    rep.dir, rep.port[0], rep.dir, rep.port[1], rep.dir, rep.port[2],
	    out);
	ck_assert_int_eq(system(cmd), 0);
	text = it_read_file(out, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"kind\":\"export-replicas\""));
	for (int i = 0; i < NREPLICAS; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "{\"replica\":%d,", i);
		ck_assert_msg(strstr(text, tag) != NULL, "no row of replica %d", i);
	}
	for (p = text; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	ck_assert_int_gt(n, 20);
	/* No TPM in this test: each chain consistent, not authenticated
	 * (exit 3, as `verify` without a key). */
	snprintf(cmd, sizeof(cmd), "%s audit verify-export %s >/dev/null",
	    getenv("WARDEN_BIN"), out);
	rc = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(rc), 3);
	/* One record of one replica altered: that chain no longer holds. */
	p = strstr(text, "gpt-4o");
	ck_assert_ptr_nonnull(p);
	memcpy(p, "gpt-4x", 6);
	f = fopen(bad, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(text);
	snprintf(cmd, sizeof(cmd), "%s audit verify-export %s >/dev/null",
	    getenv("WARDEN_BIN"), bad);
	rc = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(rc), 1);
}
END_TEST

Suite *
suite_replicas(void)
{
	Suite *s = suite_create("replicas");
	TCase *single = tcase_create("single");
	TCase *shared = tcase_create("redis");

	tcase_add_unchecked_fixture(single, start_single, stop_all);
	tcase_set_timeout(single, 120);
	tcase_add_test(single, ten_per_minute);
	tcase_add_test(single, budget_under_64_clients);
	tcase_add_test(single, session_across_replicas);
	tcase_add_test(single, stream_usage);
	tcase_add_test(single, responses_follow_up_across_replicas);
	suite_add_tcase(s, single);
	tcase_add_unchecked_fixture(shared, start_shared, stop_all);
	tcase_set_timeout(shared, 120);
	tcase_add_test(shared, ten_per_minute);
	tcase_add_test(shared, budget_under_64_clients);
	tcase_add_test(shared, session_across_replicas);
	tcase_add_test(shared, stream_usage);
	tcase_add_test(shared, responses_follow_up_across_replicas);
	tcase_add_test(shared, redis_gone_and_back);
	tcase_add_test(shared, audit_export_of_replicas);
	suite_add_tcase(s, shared);
	return s;
}
