/*
 * test_audit.c - the audit log as the real binary writes it: one `request`
 * record per chat transaction however it ended, carrying the decision id
 * the caller got; `warden audit verify` after a clean stop, after kill -9
 * under load, and after the disk filled up and emptied again (fail closed
 * with 503, recover by itself, lose nothing acknowledged); `export
 * --tenant` and `verify-export`; no credential or caller key in any file.
 *
 * Each test runs its own warden (own port, own --audit-dir) in front of
 * the fixture's mock providers, so it can kill and restart it freely.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* One warden of a test. */
struct aw {
	pid_t pid;
	int port;
	char dir[256];			/* --audit-dir */
	char log[256];
	char chat_url[128];
};

static void
aw_start(struct aw *w, const char *name, int port)
{
	char listen[32];
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", it.config,
		"--listen", listen, "--audit-dir", w->dir, "--dev-credentials",
		NULL };

	w->port = port > 0 ? port : it_free_port();
	snprintf(w->dir, sizeof(w->dir), "%s/audit-%s", it_tmpdir(), name);
	snprintf(w->log, sizeof(w->log), "%s/warden-audit-%s.log", it_tmpdir(),
	    name);
	snprintf(w->chat_url, sizeof(w->chat_url),
	    "http://127.0.0.1:%d/v1/chat/completions", w->port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", w->port);
	w->pid = it_spawn(argv, w->log);
	ck_assert_msg(it_wait_port(w->port, 5000), "warden did not come up; "
	    "see %s", w->log);
}

static void
chat(const struct aw *w, const char *key, const char *extra, const char *body,
    struct it_resp *r)
{
	const char *h[] = { extra, NULL };

	it_chat_at(w->chat_url, key, h, body, 10000, r);
}

static char *
header(const struct it_resp *r, const char *name)
{
	char buf[256];

	return it_resp_header(r, name, buf, sizeof(buf)) ? strdup(buf) : NULL;
}

/* Every line of every segment, parsed: a JSON array. */
static json_t *
records(const char *dir)
{
	json_t *all = json_array();
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		if (strncmp(ents[i]->d_name, "audit-", 6) == 0 &&
		    strstr(ents[i]->d_name, ".jsonl") != NULL) {
			char path[512], *text, *line, *save;

			snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
			text = it_read_file(path, NULL);
			for (line = text ? strtok_r(text, "\n", &save) : NULL;
			    line != NULL; line = strtok_r(NULL, "\n", &save)) {
				json_t *j = json_loads(line, 0, NULL);

				if (j != NULL)
					json_array_append_new(all, j);
			}
			free(text);
		}
		free(ents[i]);
	}
	if (n > 0)
		free(ents);
	return all;
}

/* How many records carry decision id; *rec (if not NULL) gets the last. */
static int
count_decision(json_t *all, const char *id, json_t **rec)
{
	size_t i;
	json_t *j;
	int n = 0;

	json_array_foreach(all, i, j) {
		const char *d = json_string_value(json_object_get(j, "decision_id"));
		const char *k = json_string_value(json_object_get(j, "kind"));

		/* The decision's record; a stream's stream_end names it too. */
		if (d != NULL && strcmp(d, id) == 0 && k != NULL &&
		    strcmp(k, "request") == 0) {
			n++;
			if (rec != NULL)
				*rec = j;
		}
	}
	return n;
}

/* The records of kind that name decision id: how many; the last in
 * *rec (borrowed). */
static int
count_kind(json_t *all, const char *id, const char *kind, json_t **rec)
{
	size_t i;
	json_t *j;
	int n = 0;

	json_array_foreach(all, i, j) {
		const char *d = json_string_value(json_object_get(j, "decision_id"));
		const char *k = json_string_value(json_object_get(j, "kind"));

		if (d != NULL && strcmp(d, id) == 0 && k != NULL &&
		    strcmp(k, kind) == 0) {
			n++;
			if (rec != NULL)
				*rec = j;
		}
	}
	return n;
}

/* Wait for the stream_end record of decision id; a new reference. */
static json_t *
wait_stream_end(const char *dir, const char *id, int wait_ms)
{
	for (int waited = 0; ; waited += 50) {
		json_t *all = records(dir), *rec = NULL;
		int n = count_kind(all, id, "stream_end", &rec);

		if (n > 0 || waited >= wait_ms) {
			ck_assert_msg(n == 1, "decision %s has %d stream_end records "
			    "in %s", id, n, dir);
			json_incref(rec);
			json_decref(all);
			return rec;
		}
		json_decref(all);
		usleep(50000);
	}
}

/* Wait until the record of decision id is on disk; a new reference. */
static json_t *
wait_record(const char *dir, const char *id, int wait_ms)
{
	for (int waited = 0; ; waited += 50) {
		json_t *all = records(dir), *rec = NULL;
		int n = count_decision(all, id, &rec);

		if (n > 0 || waited >= wait_ms) {
			ck_assert_msg(n == 1, "decision %s has %d records in %s", id, n,
			    dir);
			json_incref(rec);
			json_decref(all);
			return rec;
		}
		json_decref(all);
		usleep(50000);
	}
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static long long
jint(json_t *j, const char *key)
{
	return (long long)json_integer_value(json_object_get(j, key));
}


static int
warden_audit(const char *args, char **out)
{
	char *cmd;
	int rc;

	ck_assert(asprintf(&cmd, "%s audit %s", getenv("WARDEN_BIN"), args) >= 0);
	rc = it_run(cmd, out, NULL);
	free(cmd);
	return rc;
}

static void
assert_verifies(const char *dir)
{
	char args[512], *out;
	int rc;

	snprintf(args, sizeof(args), "verify %s", dir);
	rc = warden_audit(args, &out);
	/* No TPM here: consistent, and not authenticated (exit 3). */
	ck_assert_msg(rc == 3 && strncmp(out, "CONSISTENT: ", 12) == 0,
	    "warden audit verify %s: exit %d: %s", dir, rc, out);
	free(out);
}

static const char *const secrets[] = { IT_SECRET_EU, IT_SECRET_DE,
	IT_SECRET_US, IT_KEY_T1, IT_KEY_T2, IT_KEY_T3, NULL };

static void
assert_file_clean(const char *path)
{
	for (int s = 0; secrets[s] != NULL; s++)
		ck_assert_msg(!it_file_contains(path, secrets[s]), "%s holds %s",
		    path, secrets[s]);
}

/* No provider credential or caller key in any file of dir. */
static void
assert_no_secrets(const char *dir, const char *const *extra)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort), files = 0;

	ck_assert_msg(n > 0, "%s: cannot list", dir);
	for (int i = 0; i < n; i++) {
		char path[512];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			files++;
			for (int s = 0; secrets[s] != NULL; s++)
				ck_assert_msg(!it_file_contains(path, secrets[s]),
				    "%s holds %s", path, secrets[s]);
			for (int s = 0; extra != NULL && extra[s] != NULL; s++)
				ck_assert_msg(!it_file_contains(path, extra[s]),
				    "%s holds %s", path, extra[s]);
		}
		free(ents[i]);
	}
	free(ents);
	ck_assert_int_gt(files, 1);
}

/* HMAC-SHA256 with the log's payload.key, as FORMAT.md says. */
static void
payload_hmac(const char *dir, const void *data, size_t len, char out[65])
{
	char path[512];
	size_t klen;
	char *key;
	unsigned char d[32];
	unsigned int dl = 32;
	static const char hex[] = "0123456789abcdef";

	snprintf(path, sizeof(path), "%s/payload.key", dir);
	key = it_read_file(path, &klen);
	ck_assert_ptr_nonnull(key);
	ck_assert_uint_eq(klen, 32);
	HMAC(EVP_sha256(), key, 32, data, len, d, &dl);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
	free(key);
}

/* ---- one record per transaction ---- */

/* Send, check the status, and check its one record's common fields. */
static json_t *
expect_record(const struct aw *w, const char *key, const char *extra,
    const char *body, long status, char **decision)
{
	struct it_resp r;
	char *id, *reqid, *pv;
	json_t *rec;

	chat(w, key, extra, body, &r);
	ck_assert_msg(r.status == status, "want %ld, got %ld: %s", status,
	    r.status, r.body);
	id = header(&r, "X-Warden-Decision");
	ck_assert_msg(id != NULL && strlen(id) == 32, "no decision id");
	reqid = header(&r, "X-Request-Id");
	pv = header(&r, "X-Warden-Policy-Version");
	rec = wait_record(w->dir, id, 3000);
	ck_assert_str_eq(jstr(rec, "kind"), "request");
	ck_assert_int_eq(jint(rec, "status"), status);
	if (reqid != NULL)
		ck_assert_str_eq(jstr(rec, "request_id"), reqid);
	if (pv != NULL)
		ck_assert_str_eq(jstr(rec, "policy_version"), pv);
	ck_assert_int_eq(strlen(jstr(rec, "prev")), 64);
	ck_assert_int_eq(strlen(jstr(rec, "hash")), 64);
	if (decision != NULL)
		*decision = strdup(id);
	free(id);
	free(reqid);
	free(pv);
	it_resp_free(&r);
	return rec;
}

START_TEST(every_request_has_exactly_one_record)
{
	struct aw w;
	json_t *rec;
	char *body, hm[65], verdict502[16];
	/* The unknown key, and prompts (kept as digests only). */
	const char *const extra[] = { "wk-it-not-a-key", "tok-aud-allow",
		"tok-aud-deny", "tok-aud-401", "tok-aud-502", NULL };

	aw_start(&w, "one", 0);

	/* Allowed. */
	body = it_chat_body("gpt-4o", "tok-aud-allow", false);
	{
		struct it_resp r;
		char *id;

		chat(&w, IT_KEY_T1, NULL, body, &r);
		ck_assert_int_eq(r.status, 200);
		id = header(&r, "X-Warden-Decision");
		ck_assert_ptr_nonnull(id);
		rec = wait_record(w.dir, id, 3000);
		ck_assert_str_eq(jstr(rec, "verdict"), "allow");
		ck_assert_str_eq(jstr(rec, "tenant"), "t1");
		ck_assert_str_eq(jstr(rec, "model"), "gpt-4o");
		ck_assert_str_eq(jstr(rec, "route"), "p-eu");
		ck_assert_str_eq(jstr(rec, "route_country"), "IE");
		ck_assert_int_eq(jint(rec, "upstream_status"), 200);
		ck_assert(json_is_null(json_object_get(rec, "code")));
		ck_assert(json_is_false(json_object_get(rec, "stream")));
		ck_assert_int_gt(jint(json_object_get(rec, "usage"),
		    "completion_tokens"), 0);
		ck_assert_int_eq(json_array_size(json_object_get(rec, "attempts")), 1);
		/* Digests, never contents. */
		ck_assert_str_eq(jstr(json_object_get(rec, "payload"), "mode"), "hash");
		payload_hmac(w.dir, body, strlen(body), hm);
		ck_assert_str_eq(jstr(json_object_get(rec, "payload"), "request_hmac"),
		    hm);
		payload_hmac(w.dir, r.body, r.len, hm);
		ck_assert_str_eq(jstr(json_object_get(rec, "payload"),
		    "response_hmac"), hm);
		json_decref(rec);
		free(id);
		it_resp_free(&r);
	}
	free(body);

	/* Denied by policy: o3 only on p-us, which t3's rules exclude. */
	body = it_chat_body("o3", "tok-aud-deny", false);
	rec = expect_record(&w, IT_KEY_T3, NULL, body, 403, NULL);
	ck_assert_str_eq(jstr(rec, "verdict"), "deny");
	ck_assert_str_eq(jstr(rec, "tenant"), "t3");
	ck_assert_str_eq(jstr(rec, "code"), "residency");
	ck_assert_int_gt(json_array_size(json_object_get(rec, "reasons")), 0);
	ck_assert(json_is_null(json_object_get(rec, "route")));
	json_decref(rec);
	free(body);

	/* Unknown key. */
	body = it_chat_body("gpt-4o", "tok-aud-401", false);
	rec = expect_record(&w, "wk-it-not-a-key", NULL, body, 401, NULL);
	ck_assert_str_eq(jstr(rec, "verdict"), "deny");
	ck_assert_str_eq(jstr(rec, "code"), "invalid_api_key");
	ck_assert(json_is_null(json_object_get(rec, "tenant")));
	json_decref(rec);
	free(body);

	/* Not a chat body. */
	rec = expect_record(&w, IT_KEY_T1, NULL, "{\"model\":", 400, NULL);
	ck_assert_str_eq(jstr(rec, "verdict"), "deny");
	ck_assert_str_eq(jstr(rec, "tenant"), "t1");
	ck_assert_str_eq(jstr(rec, "code"), "invalid_request");
	json_decref(rec);

	/* Every route fails upstream: the policy allowed it. */
	body = it_chat_body("gpt-4o", "tok-aud-502 [[mock status=500]]", false);
	rec = expect_record(&w, IT_KEY_T2, NULL, body, 502, NULL);
	ck_assert_str_eq(jstr(rec, "tenant"), "t2");
	ck_assert_str_eq(jstr(rec, "route"), "p-us");
	ck_assert_int_eq(jint(rec, "upstream_status"), 500);
	ck_assert_int_ge(json_array_size(json_object_get(rec, "attempts")), 1);
	ck_assert_str_eq(jstr(json_array_get(json_object_get(rec, "attempts"), 0),
	    "route"), "p-us");
	ck_assert_ptr_nonnull(jstr(rec, "code"));
	snprintf(verdict502, sizeof(verdict502), "%s", jstr(rec, "verdict"));
	json_decref(rec);
	free(body);

	/* Five requests, five request records: nothing else, nothing twice. */
	{
		json_t *all = records(w.dir), *j;
		size_t i;
		int n = 0;

		json_array_foreach(all, i, j)
			n += strcmp(jstr(j, "kind"), "request") == 0;
		ck_assert_int_eq(n, 5);
		json_decref(all);
	}
	assert_verifies(w.dir);
	assert_no_secrets(w.dir, extra);
	it_stop(w.pid, SIGTERM);
	/* Last, so that the checks above run whatever it says. */
	ck_assert_msg(strcmp(verdict502, "allow") == 0, "an upstream failure is "
	    "recorded as verdict '%s': the policy allowed it", verdict502);
}
END_TEST

START_TEST(client_gone_mid_stream_has_its_record)
{
	struct aw w;
	char *body, *req, *ans, *d, id[33];
	json_t *rec;

	aw_start(&w, "gone", 0);
	body = it_chat_body("gpt-4o", "tok-aud-gone [[mock chunks=40 "
	    "chunk_delay_ms=100]]", true);
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T1 "\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(body), body) >= 0);
	/* Read the first events, then hang up. */
	ans = it_raw(w.port, req, strlen(req), 500);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%s", ans);
	ck_assert_msg(strstr(ans, "data: ") != NULL, "no event before the "
	    "hang-up: %s", ans);
	ck_assert_msg(strstr(ans, "[DONE]") == NULL, "the stream ended: %s", ans);
	d = strstr(ans, "X-Warden-Decision: ");
	ck_assert_ptr_nonnull(d);
	snprintf(id, sizeof(id), "%.32s", d + 19);
	/* The decision's record, written before the first byte, and how the
	 * stream ended, under the same decision id. */
	rec = wait_record(w.dir, id, 4000);
	ck_assert_int_eq(jint(rec, "status"), 200);
	ck_assert(json_is_true(json_object_get(rec, "stream")));
	ck_assert_str_eq(jstr(rec, "tenant"), "t1");
	ck_assert_str_eq(jstr(rec, "route"), "p-eu");
	{
		json_t *end = wait_stream_end(w.dir, id, 4000);

		ck_assert_int_eq(jint(end, "status"), 499);
		ck_assert_str_eq(jstr(end, "code"), "client_gone");
		ck_assert_str_eq(jstr(end, "tenant"), "t1");
		ck_assert_str_eq(jstr(end, "verdict"), "allow");
		ck_assert_int_gt(jint(end, "seq"), jint(rec, "seq"));
		json_decref(end);
	}
	assert_verifies(w.dir);
	it_stop(w.pid, SIGTERM);
	ck_assert_msg(strcmp(jstr(rec, "verdict"), "allow") == 0, "a client that "
	    "left is recorded as verdict '%s': the policy allowed it",
	    jstr(rec, "verdict"));
	json_decref(rec);
	free(ans);
	free(req);
	free(body);
}
END_TEST

START_TEST(start_and_stop_are_recorded)
{
	struct aw w;
	json_t *all, *first, *last;
	int st;

	aw_start(&w, "startstop", 0);
	st = it_stop(w.pid, SIGTERM);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	all = records(w.dir);
	ck_assert_int_ge(json_array_size(all), 2);
	first = json_array_get(all, 0);
	last = json_array_get(all, json_array_size(all) - 1);
	ck_assert_str_eq(jstr(first, "kind"), "start");
	ck_assert_int_eq(jint(first, "seq"), 1);
	ck_assert_str_eq(jstr(first, "prev"),
	    "0000000000000000000000000000000000000000000000000000000000000000");
	ck_assert_str_eq(jstr(last, "kind"), "stop");
	ck_assert_str_eq(jstr(first, "instance"), jstr(last, "instance"));
	json_decref(all);
	/* A second run goes on with the same chain. */
	aw_start(&w, "startstop", 0);
	it_stop(w.pid, SIGTERM);
	all = records(w.dir);
	ck_assert_int_ge(json_array_size(all), 4);
	ck_assert_str_ne(jstr(json_array_get(all, 0), "instance"),
	    jstr(json_array_get(all, json_array_size(all) - 1), "instance"));
	json_decref(all);
	assert_verifies(w.dir);
}
END_TEST

/* ---- kill -9 under load ---- */

/* A client: chats in a loop; each answer fully received gives a line
 * "<decision> <status>" in its file.  Stops after a few failures in a
 * row. */
static void
load_client(const char *url, const char *path, int who)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);

	const char *h[] = { "Authorization: Bearer " IT_KEY_T1,
		"Content-Type: application/json", NULL };
	int fails = 0;

	if (fd < 0)
		_exit(2);
	for (int i = 0; i < 5000 && fails < 3; i++) {
		struct it_resp r;
		char content[64], *body, dec[64];

		snprintf(content, sizeof(content), "tok-load-%d-%d", who, i);
		body = it_chat_body("gpt-4o-mini", content, false);
		it_http("POST", url, h, body, 3000, &r);
		if (r.curl_code == 0 && r.status > 0 &&
		    it_resp_header(&r, "X-Warden-Decision", dec, sizeof(dec))) {
			char line[128];
			int n = snprintf(line, sizeof(line), "%s %ld\n", dec, r.status);

			if (write(fd, line, (size_t)n) != n)
				_exit(3);
			fails = 0;
		} else {
			fails++;
			usleep(20000);
		}
		it_resp_free(&r);
		free(body);
	}
	_exit(0);
}

START_TEST(kill_9_under_load_loses_no_acknowledged_record)
{
	struct aw w;
	int st, acked = 0, missing = 0, dup = 0;
	pid_t kids[3];
	char paths[3][256], *line, *save, which[512] = "";
	json_t *all;

	aw_start(&w, "kill9", 0);
	for (int k = 0; k < 3; k++) {
		snprintf(paths[k], sizeof(paths[k]), "%s/kill9-answers-%d",
		    it_tmpdir(), k);
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0)
			load_client(w.chat_url, paths[k], k);
	}
	usleep(700000);
	kill(w.pid, SIGKILL);
	ck_assert_int_eq(waitpid(w.pid, &st, 0), w.pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d", k);
	}

	/* Restart on the same log: it opens, and the chain holds. */
	aw_start(&w, "kill9", 0);
	{
		struct it_resp r;
		char *body = it_chat_body("gpt-4o", "tok-after-restart", false);

		chat(&w, IT_KEY_T1, NULL, body, &r);
		ck_assert_int_eq(r.status, 200);
		it_resp_free(&r);
		free(body);
	}
	it_stop(w.pid, SIGTERM);
	assert_verifies(w.dir);

	all = records(w.dir);
	{
		size_t i;
		json_t *j;
		int starts = 0;

		json_array_foreach(all, i, j) {
			if (strcmp(jstr(j, "kind"), "recovery") == 0) {
				ck_assert_int_gt(jint(j, "cut_bytes"), 0);
				ck_assert_ptr_nonnull(jstr(j, "segment"));
			}
			starts += strcmp(jstr(j, "kind"), "start") == 0;
		}
		ck_assert_int_eq(starts, 2);
	}
	for (int k = 0; k < 3; k++) {
		char *text = it_read_file(paths[k], NULL);
		int nk = 0, i = 0;

		ck_assert_ptr_nonnull(text);
		for (char *p = text; *p != '\0'; p++)
			nk += *p == '\n';
		for (line = strtok_r(text, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save), i++) {
			char id[64];
			long status;
			json_t *rec = NULL;
			int c;

			ck_assert(sscanf(line, "%63s %ld", id, &status) == 2);
			acked++;
			c = count_decision(all, id, &rec);
			if (c == 1) {
				ck_assert_int_eq(jint(rec, "status"), status);
				continue;
			}
			if (c == 0)
				missing++;
			else
				dup++;
			/* Which answers: the last ones before the kill? */
			if (strlen(which) < sizeof(which) - 64)
				snprintf(which + strlen(which), sizeof(which) -
				    strlen(which), " [client %d answer %d of %d, %ld, "
				    "%d records]", k, i + 1, nk, status, c);
		}
		free(text);
	}
	ck_assert_msg(acked >= 20, "only %d answers before the kill", acked);
	ck_assert_msg(missing == 0 && dup == 0, "of %d answers the clients got "
	    "in full, %d have no record and %d more than one:%s", acked, missing,
	    dup, which);
	json_decref(all);
}
END_TEST

/* ---- disk full ---- */

static int
prlimit_fsize(pid_t pid, const char *limit)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "prlimit --pid %d --fsize=%s", (int)pid,
	    limit);
	return it_run(cmd, NULL, NULL);
}

static long
get_status(const char *url, char **body)
{
	struct it_resp r;
	long s;

	it_http("GET", url, NULL, NULL, 3000, &r);
	s = r.status;
	if (body != NULL)
		*body = strdup(r.body);
	it_resp_free(&r);
	return s;
}

static bool
ignores_sigxfsz(pid_t pid)
{
	char path[64], *text, *p;
	unsigned long long mask = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = it_read_file(path, NULL);
	p = text ? strstr(text, "SigIgn:") : NULL;
	if (p != NULL)
		mask = strtoull(p + 7, NULL, 16);
	free(text);
	return (mask & (1ull << (SIGXFSZ - 1))) != 0;
}

START_TEST(disk_full_fails_closed_and_recovers)
{
	struct aw w;
	char health[128], seg[512], lim[64], *body, *hb;
	char *ids[16];
	long want[16];
	int nids = 0;
	struct stat st;
	json_t *all;
	struct it_resp r;
	bool ok = false;
	char stream_end[320] = "";
	long stream_status;

	aw_start(&w, "full", 0);
	snprintf(health, sizeof(health), "http://127.0.0.1:%d/healthz", w.port);
	/* A full disk must be an error the writer handles, not a signal. */
	ck_assert_msg(ignores_sigxfsz(w.pid), "warden does not ignore SIGXFSZ");
	body = it_chat_body("gpt-4o", "tok-full", false);
	for (int i = 0; i < 2; i++) {
		json_t *rec = expect_record(&w, IT_KEY_T1, NULL, body, 200,
		    &ids[nids]);

		want[nids++] = 200;
		json_decref(rec);
	}
	ck_assert_int_eq(get_status(health, NULL), 200);

	/* The segment may not grow by a whole record. */
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", w.dir);
	ck_assert_int_eq(stat(seg, &st), 0);
	snprintf(lim, sizeof(lim), "%lld:unlimited", (long long)st.st_size + 64);
	ck_assert_int_eq(prlimit_fsize(w.pid, lim), 0);

	/* The next record cannot be written: a stream that began may not end
	 * as if it was acknowledged. */
	{
		char *sbody = it_chat_body("gpt-4o", "tok-full-stream", true);

		chat(&w, IT_KEY_T1, NULL, sbody, &r);
		free(sbody);
	}
	stream_status = r.status;
	if (r.status == 200) {
		ck_assert_msg(strstr(r.body, "audit_unavailable") != NULL, "%s",
		    r.body);
		/* Checked at the end, so the rest runs whatever it says. */
		if (strstr(r.body, "[DONE]") != NULL)
			snprintf(stream_end, sizeof(stream_end), "%s", r.len > 300 ?
			    r.body + r.len - 300 : r.body);
	}
	ids[nids] = header(&r, "X-Warden-Decision");
	want[nids++] = 503;
	it_resp_free(&r);
	for (int i = 0; i < 40 && get_status(health, NULL) != 503; i++)
		usleep(50000);
	ck_assert_int_eq(get_status(health, &hb), 503);
	ck_assert_msg(strstr(hb, "unhealthy") != NULL, "%s", hb);
	free(hb);
	ck_assert_msg(kill(w.pid, 0) == 0, "warden died");

	/* Fail closed. */
	for (int i = 0; i < 3; i++) {
		json_t *j;

		chat(&w, IT_KEY_T1, NULL, body, &r);
		ck_assert_msg(r.status == 503, "%ld: %s", r.status, r.body);
		j = json_loads(r.body, 0, NULL);
		ck_assert_str_eq(jstr(json_object_get(j, "error"), "code"),
		    "audit_unavailable");
		json_decref(j);
		ids[nids] = header(&r, "X-Warden-Decision");
		ck_assert_ptr_nonnull(ids[nids]);
		want[nids++] = 503;
		it_resp_free(&r);
	}
	ck_assert_int_eq(stat(seg, &st), 0);
	ck_assert_msg(st.st_size <= (off_t)strtoll(lim, NULL, 10), "the segment "
	    "grew past the limit");

	/* Room again: it recovers by itself within a few seconds. */
	ck_assert_int_eq(prlimit_fsize(w.pid, "unlimited:unlimited"), 0);
	for (int i = 0; i < 60 && !ok; i++) {
		chat(&w, IT_KEY_T1, NULL, body, &r);
		if (r.status == 200) {
			ok = true;
			ids[nids] = header(&r, "X-Warden-Decision");
			want[nids++] = 200;
		} else {
			ck_assert_int_eq(r.status, 503);
			usleep(100000);
		}
		it_resp_free(&r);
	}
	ck_assert_msg(ok, "no request succeeded after the limit was raised");
	ck_assert_int_eq(get_status(health, NULL), 200);
	{
		json_t *rec = wait_record(w.dir, ids[nids - 1], 3000);

		json_decref(rec);
	}
	it_stop(w.pid, SIGTERM);
	assert_verifies(w.dir);

	/* Nothing that any caller saw is missing, nothing twice. */
	all = records(w.dir);
	for (int i = 0; i < nids; i++) {
		json_t *rec = NULL;

		ck_assert_ptr_nonnull(ids[i]);
		ck_assert_msg(count_decision(all, ids[i], &rec) == 1,
		    "answer %d (%ld) has %d records", i, want[i],
		    count_decision(all, ids[i], NULL));
		ck_assert_int_eq(jint(rec, "status"), want[i]);
		if (want[i] == 503)
			ck_assert_str_eq(jstr(rec, "code"), "audit_unavailable");
		free(ids[i]);
	}
	json_decref(all);
	free(body);
	/* Issue 11: the stream's record comes before its first byte, so a
	 * stream whose record cannot be written never begins. */
	ck_assert_msg(stream_status == 503, "a stream whose record could not be "
	    "written began anyway (status %ld)", stream_status);
	ck_assert_msg(stream_end[0] == '\0', "a stream whose record could not be "
	    "written still sent [DONE], before its error event (it ends: %s)",
	    stream_end);
}
END_TEST

/* ---- records before answers, streams included (issue 11) ---- */

/* A chat request on a raw connection, left open; the descriptor. */
static int
raw_stream(int port, const char *token)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };
	char *body = it_chat_body("gpt-4o", token, true), *req;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t len, off = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(asprintf(&req, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer " IT_KEY_T1 "\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(body), body) >= 0);
	len = strlen(req);
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		ck_assert(n > 0);
		off += (size_t)n;
	}
	free(req);
	free(body);
	return fd;
}

/*
 * Read from fd into *buf (grown, NUL-terminated) until needle shows up
 * (NULL: until the peer closes or the HTTP chunked body ends) or
 * timeout_ms pass.  True if it ended as asked.
 */
static bool
raw_read_until(int fd, char **buf, size_t *len, const char *needle,
    int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; ) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char chunk[8192];
		ssize_t n;

		if (*buf != NULL && needle != NULL && strstr(*buf, needle) != NULL)
			return true;
		if (*buf != NULL && needle == NULL &&
		    strstr(*buf, "\r\n0\r\n\r\n") != NULL)
			return true;
		if (poll(&pfd, 1, 100) <= 0) {
			waited += 100;
			continue;
		}
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0)
			return needle == NULL;
		*buf = realloc(*buf, *len + (size_t)n + 1);
		ck_assert_ptr_nonnull(*buf);
		memcpy(*buf + *len, chunk, (size_t)n);
		*len += (size_t)n;
		(*buf)[*len] = '\0';
	}
	return false;
}

static void
decision_of(const char *ans, char id[33])
{
	const char *d = strstr(ans, "X-Warden-Decision: ");

	ck_assert_msg(d != NULL, "no decision id in %s", ans);
	snprintf(id, 33, "%.32s", d + 19);
}

static int
count_str(const char *s, const char *needle)
{
	int n = 0;

	for (; (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

/*
 * kill -9 right after the first streamed byte: the decision's record is
 * in the log (it was written before that byte).  Before issue 11 a
 * stream's record was written only at its end: none here.
 */
START_TEST(stream_record_survives_kill_9_after_first_byte)
{
	struct aw w;
	char *ans = NULL, id[33];
	size_t len = 0;
	json_t *all, *rec = NULL;
	int fd, st;

	aw_start(&w, "kill9stream", 0);
	fd = raw_stream(w.port, "tok-aud-k9 [[mock chunks=50 "
	    "chunk_delay_ms=200]]");
	ck_assert_msg(raw_read_until(fd, &ans, &len, "data: ", 5000),
	    "no first event: %s", ans ? ans : "");
	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%s", ans);
	decision_of(ans, id);
	kill(w.pid, SIGKILL);
	waitpid(w.pid, &st, 0);
	close(fd);
	all = records(w.dir);
	ck_assert_msg(count_decision(all, id, &rec) == 1, "decision %s of a "
	    "stream that had begun has %d records after kill -9", id,
	    count_decision(all, id, NULL));
	ck_assert_str_eq(jstr(rec, "kind"), "request");
	ck_assert_int_eq(jint(rec, "status"), 200);
	ck_assert(json_is_true(json_object_get(rec, "stream")));
	ck_assert_str_eq(jstr(rec, "route"), "p-eu");
	ck_assert_str_eq(jstr(rec, "verdict"), "allow");
	ck_assert_int_eq(count_kind(all, id, "stream_end", NULL), 0);
	json_decref(all);
	free(ans);
}
END_TEST

/*
 * The log fails while a stream runs: forwarding stops at once with the
 * error event, not after the provider has said everything.  Before issue
 * 11 every event still went out and only the end was refused.
 */
START_TEST(log_failing_mid_stream_stops_the_stream)
{
	struct aw w;
	char *ans = NULL, id[33], seg[512], lim[64], *body;
	size_t len = 0;
	struct it_resp r;
	struct stat st;
	json_t *all, *rec = NULL;
	int fd, deltas;

	aw_start(&w, "midstream", 0);
	fd = raw_stream(w.port, "tok-aud-mid [[mock chunks=40 "
	    "chunk_delay_ms=150]]");
	ck_assert_msg(raw_read_until(fd, &ans, &len, "data: ", 5000),
	    "no first event: %s", ans ? ans : "");
	decision_of(ans, id);
	/* The segment may not grow by a whole record from now on. */
	snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", w.dir);
	ck_assert_int_eq(stat(seg, &st), 0);
	snprintf(lim, sizeof(lim), "%lld:unlimited", (long long)st.st_size + 64);
	ck_assert_int_eq(prlimit_fsize(w.pid, lim), 0);
	/* Another request's record fails: the log is failing now. */
	body = it_chat_body("gpt-4o", "tok-aud-mid-other", false);
	chat(&w, IT_KEY_T1, NULL, body, &r);
	ck_assert_msg(r.status == 503, "%ld: %s", r.status, r.body);
	it_resp_free(&r);
	free(body);
	/* The stream ends with the error event, long before its 40 words. */
	ck_assert_msg(raw_read_until(fd, &ans, &len, NULL, 15000),
	    "the stream did not end: %s", ans);
	close(fd);
	deltas = count_str(ans, "\"content\":\"");
	ck_assert_msg(strstr(ans, "event: error") != NULL &&
	    strstr(ans, "audit_unavailable") != NULL, "no error event: %s",
	    ans + (len > 600 ? len - 600 : 0));
	ck_assert_msg(strstr(ans, "[DONE]") == NULL, "the stream ended as "
	    "if it had been recorded");
	ck_assert_int_eq(prlimit_fsize(w.pid, "unlimited:unlimited"), 0);
	it_stop(w.pid, SIGTERM);
	all = records(w.dir);
	ck_assert_int_eq(count_decision(all, id, &rec), 1);
	ck_assert_int_eq(jint(rec, "status"), 200);
	json_decref(all);
	free(ans);
	/* Last, so that the rest runs whatever it says. */
	ck_assert_msg(deltas < 30, "%d of 40 words went out after the log "
	    "failed", deltas);
}
END_TEST

/* ---- export ---- */

START_TEST(export_of_one_tenant_verifies_and_holds_nothing_else)
{
	struct aw w;
	char args[1024], path[512], csv[512], *out, *text;
	const char *keys[] = { IT_KEY_T1, IT_KEY_T2, IT_KEY_T1, IT_KEY_T3,
		IT_KEY_T2, IT_KEY_T1 };
	char *t1ids[8];
	int nt1 = 0;
	json_t *hdr;

	aw_start(&w, "export", 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char content[64], *body;
		char *id;
		json_t *rec;

		snprintf(content, sizeof(content), "tok-exp-%zu", i);
		body = it_chat_body("gpt-4o", content, false);
		rec = expect_record(&w, keys[i], NULL, body, 200, &id);
		if (strcmp(keys[i], IT_KEY_T1) == 0)
			t1ids[nt1++] = id;
		else
			free(id);
		json_decref(rec);
		free(body);
	}
	it_stop(w.pid, SIGTERM);
	assert_verifies(w.dir);

	snprintf(path, sizeof(path), "%s/export-t1.jsonl", it_tmpdir());
	snprintf(args, sizeof(args), "export %s --format jsonl --tenant t1 -o %s",
	    w.dir, path);
	ck_assert_int_eq(warden_audit(args, NULL), 0);
	snprintf(args, sizeof(args), "verify-export %s", path);
	ck_assert_msg(warden_audit(args, &out) == 3, "%s", out);
	ck_assert_msg(strstr(out, "CONSISTENT: ") == out, "%s", out);
	free(out);

	text = it_read_file(path, NULL);
	hdr = json_loadb(text, strcspn(text, "\n"), 0, NULL);
	ck_assert_str_eq(jstr(hdr, "kind"), "export");
	ck_assert_str_eq(jstr(hdr, "tenant"), "t1");
	/* t2 and t3's records and start/stop are stubs. */
	ck_assert_int_eq(jint(hdr, "records"), nt1);
	ck_assert_int_eq(jint(hdr, "stubs"), 3 + 2);
	ck_assert_ptr_null(strstr(text, "\"tenant\":\"t2\""));
	ck_assert_ptr_null(strstr(text, "\"tenant\":\"t3\""));
	for (int i = 0; i < nt1; i++) {
		ck_assert_msg(strstr(text, t1ids[i]) != NULL, "t1 record %s missing",
		    t1ids[i]);
		free(t1ids[i]);
	}
	json_decref(hdr);

	/* One byte changed in a t1 record. */
	{
		/* (Past the header, which names the tenant too.) */
		char *p = strstr(strchr(text, '\n'), "\"tenant\":\"t1\"");

		ck_assert_ptr_nonnull(p);
		p[11] = '7';
		it_write_file(path, text, 0600);
		snprintf(args, sizeof(args), "verify-export %s", path);
		ck_assert_int_eq(warden_audit(args, &out), 1);
		ck_assert_msg(strstr(out, "INVALID") != NULL, "%s", out);
		free(out);
	}
	free(text);

	/* CSV. */
	snprintf(csv, sizeof(csv), "%s/export-t2.csv", it_tmpdir());
	snprintf(args, sizeof(args), "export %s --format csv --tenant t2 -o %s",
	    w.dir, csv);
	ck_assert_int_eq(warden_audit(args, NULL), 0);
	snprintf(args, sizeof(args), "verify-export %s", csv);
	ck_assert_msg(warden_audit(args, &out) == 3, "%s", out);
	free(out);
	ck_assert(!it_file_contains(csv, "\"\"tenant\"\":\"\"t1\"\""));
	ck_assert(it_file_contains(csv, "\"\"tenant\"\":\"\"t2\"\""));

	assert_no_secrets(w.dir, NULL);
	assert_file_clean(path);
	assert_file_clean(csv);
}
END_TEST

Suite *
suite_audit(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, every_request_has_exactly_one_record);
	tcase_add_test(tc, client_gone_mid_stream_has_its_record);
	tcase_add_test(tc, start_and_stop_are_recorded);
	tcase_add_test(tc, kill_9_under_load_loses_no_acknowledged_record);
	tcase_add_test(tc, disk_full_fails_closed_and_recovers);
	tcase_add_test(tc, stream_record_survives_kill_9_after_first_byte);
	tcase_add_test(tc, log_failing_mid_stream_stops_the_stream);
	tcase_add_test(tc, export_of_one_tenant_verifies_and_holds_nothing_else);
	suite_add_tcase(s, tc);
	return s;
}
