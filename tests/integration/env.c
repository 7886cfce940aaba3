/*
 * env.c - start and stop the processes of an integration run.
 */
#include "tests/integration/env.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wd.h"

struct it_env it;

static const char *const mock_names[3] = { "eu", "de", "us" };

static void
key_line(const char *key, char out[72])
{
	unsigned char d[32];
	char hex[65];

	wd_sha256(key, strlen(key), d);
	wd_hex(d, 32, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

/* The rules: tests/fixtures/env.yaml, filled in. */
static void
write_config(const char *extra_server)
{
	char k1[72], k2[72], k3[72], port[16], mock[3][16], *text;

	key_line(IT_KEY_T1, k1);
	key_line(IT_KEY_T2, k2);
	key_line(IT_KEY_T3, k3);
	snprintf(port, sizeof(port), "%d", it.port);
	for (int i = 0; i < 3; i++)
		snprintf(mock[i], sizeof(mock[i]), "%d", it.mock_port[i]);
	text = it_fixture("env.yaml", (const char *const[]){
		"PORT", port, "EXTRA_SERVER", extra_server ? extra_server : "",
		"TMPDIR", it_tmpdir(), "MOCK_EU", mock[0], "MOCK_DE", mock[1],
		"MOCK_US", mock[2], "KEY_T1", k1, "KEY_T2", k2, "KEY_T3", k3,
		"SECRET_EU", IT_SECRET_EU, "SECRET_DE", IT_SECRET_DE,
		"SECRET_US", IT_SECRET_US, NULL });
	it_write_file(it.config, text, 0600);
	free(text);
}

pid_t
it_warden_start(int port)
{
	char portarg[32], auditdir[256];
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", it.config,
		"--listen", portarg, "--audit-dir", auditdir, "--dev-credentials",
		NULL };
	pid_t pid;

	snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", port);
	/* One warden per audit log: a second one gets its own. */
	if (port == it.port)
		snprintf(auditdir, sizeof(auditdir), "%s/audit", it_tmpdir());
	else
		snprintf(auditdir, sizeof(auditdir), "%s/audit-%d", it_tmpdir(),
		    port);
	pid = it_spawn(argv, it.warden_log);
	if (!it_wait_port(port, 5000)) {
		fprintf(stderr, "warden did not come up; see %s\n", it.warden_log);
		abort();
	}
	return pid;
}

void
it_env_start(const char *extra_server)
{
	const char *dir = it_tmpdir();

	memset(&it, 0, sizeof(it));
	it.port = it_free_port();
	snprintf(it.base, sizeof(it.base), "http://127.0.0.1:%d", it.port);
	snprintf(it.config, sizeof(it.config), "%s/rules.yaml", dir);
	snprintf(it.warden_log, sizeof(it.warden_log), "%s/warden.log", dir);
	for (int i = 0; i < 3; i++) {
		char listen[32];
		char *argv[] = { getenv("MOCK_BIN"), "--listen", listen, "--name",
			(char *)mock_names[i], "--record", it.record[i], NULL };

		it.mock_port[i] = it_free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", it.mock_port[i]);
		snprintf(it.record[i], sizeof(it.record[i]), "%s/record-%s.jsonl",
		    dir, mock_names[i]);
		snprintf(it.mock_log[i], sizeof(it.mock_log[i]), "%s/mock-%s.log",
		    dir, mock_names[i]);
		unlink(it.record[i]);	/* a fresh record per suite */
		it.mock[i] = it_spawn(argv, it.mock_log[i]);
	}
	for (int i = 0; i < 3; i++)
		if (!it_wait_port(it.mock_port[i], 5000)) {
			fprintf(stderr, "mock %s did not come up\n", mock_names[i]);
			abort();
		}
	write_config(extra_server);
	it.warden = it_warden_start(it.port);
}

void
it_env_stop(void)
{
	if (it.warden > 0)
		it_stop(it.warden, SIGTERM);
	for (int i = 0; i < 3; i++)
		if (it.mock[i] > 0)
			it_stop(it.mock[i], SIGTERM);
	it.warden = 0;
}

const char *
it_url(const char *path)
{
	static char url[256];

	snprintf(url, sizeof(url), "%s%s", it.base, path);
	return url;
}

void
it_chat(const char *key, const char *body, struct it_resp *out)
{
	it_chat_at(it_url("/v1/chat/completions"), key, NULL, body, 10000, out);
}

void
it_mock_config(int idx, const char *json)
{
	struct it_resp r;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/config",
	    it.mock_port[idx]);
	it_http("POST", url, NULL, json, 2000, &r);
	if (r.status != 200) {
		fprintf(stderr, "mock config failed: %ld\n", r.status);
		abort();
	}
	it_resp_free(&r);
}

char *
it_record_find(int idx, const char *token)
{
	char *text = it_read_file(it.record[idx], NULL), *line, *save, *found = NULL;

	if (text == NULL)
		return NULL;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strstr(line, token) != NULL) {
			found = strdup(line);
			break;
		}
	free(text);
	return found;
}

bool
it_record_aborted(int idx, const char *token, int wait_ms)
{
	char *line = it_record_find(idx, token);
	json_t *j;
	json_int_t seq;

	if (line == NULL)
		return false;
	j = json_loads(line, 0, NULL);
	free(line);
	seq = json_integer_value(json_object_get(j, "seq"));
	json_decref(j);
	for (int waited = 0; waited <= wait_ms; waited += 50) {
		char *text = it_read_file(it.record[idx], NULL), *l, *save;
		bool hit = false;

		for (l = strtok_r(text, "\n", &save); l != NULL && !hit;
		    l = strtok_r(NULL, "\n", &save)) {
			json_t *e = json_loads(l, 0, NULL);

			hit = json_integer_value(json_object_get(e, "seq")) == seq &&
			    json_is_string(json_object_get(e, "event")) &&
			    strcmp(json_string_value(json_object_get(e, "event")),
			    "client_aborted") == 0;
			json_decref(e);
		}
		free(text);
		if (hit)
			return true;
		usleep(50000);
	}
	return false;
}

bool
it_record_has(int idx, const char *token)
{
	char *line = it_record_find(idx, token);

	free(line);
	return line != NULL;
}
