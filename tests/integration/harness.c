/*
 * harness.c - process, socket and HTTP helpers for the integration tests.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>

extern char **environ;

double
it_now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int
it_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		perror("it_free_port");
		abort();
	}
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

pid_t
it_spawn(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log,
	    O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		perror(argv[0]);
		abort();
	}
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

bool
it_wait_port(int port, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(fd);
		if (ok)
			return true;
		usleep(20000);
	}
	return false;
}

int
it_stop(pid_t pid, int sig)
{
	int status = -1;

	kill(pid, sig);
	for (int i = 0; i < 250; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

int
it_wait_exit(pid_t pid, int timeout_ms)
{
	int status = -1;

	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(20000);
	}
	return -1;
}

struct grow {
	char *p;
	size_t len;
};

static size_t
grow_cb(char *data, size_t size, size_t n, void *arg)
{
	struct grow *g = arg;
	char *np = realloc(g->p, g->len + size * n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + g->len, data, size * n);
	g->len += size * n;
	np[g->len] = '\0';
	g->p = np;
	return size * n;
}

void
it_http(const char *method, const char *url, const char *const *hdrs,
    const char *body, long timeout_ms, struct it_resp *out)
{
	struct grow h = { 0 }, b = { 0 };
	struct curl_slist *list = NULL;
	CURL *e = curl_easy_init();

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
		list = curl_slist_append(list, hdrs[i]);
	list = curl_slist_append(list, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, grow_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, grow_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	out->curl_code = (int)curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
	out->headers = h.p ? h.p : strdup("");
	out->body = b.p ? b.p : strdup("");
	out->len = b.len;
	curl_slist_free_all(list);
	curl_easy_cleanup(e);
}

void
it_resp_free(struct it_resp *r)
{
	free(r->headers);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

const char *
it_resp_header(const struct it_resp *r, const char *name, char *buf,
    size_t buflen)
{
	size_t nl = strlen(name);

	for (const char *line = r->headers; line && *line; ) {
		const char *eol = strstr(line, "\r\n");
		size_t ll = eol ? (size_t)(eol - line) : strlen(line);

		if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(buf, buflen, "%.*s", (int)(ll - (size_t)(v - line)), v);
			return buf;
		}
		line = eol ? eol + 2 : NULL;
	}
	return NULL;
}

char *
it_raw(int port, const void *data, size_t len, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };
	struct grow g = { .p = calloc(1, 1) };
	const char *p = data;
	struct timespec t0, now;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return g.p;
	}
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		p += n;
		len -= (size_t)n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char buf[16384];
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
		    (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		grow_cb(buf, 1, (size_t)n, &g);
	}
	close(fd);
	return g.p;
}

char *
it_read_file(const char *path, size_t *len)
{
	struct grow g = { 0 };
	char buf[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		grow_cb(buf, 1, n, &g);
	fclose(f);
	if (g.p == NULL)
		g.p = calloc(1, 1);
	if (len != NULL)
		*len = g.len;
	return g.p;
}

void
it_write_file(const char *path, const char *text, int mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		abort();
	}
	fputs(text, f);
	fclose(f);
	chmod(path, (mode_t)mode);
}

bool
it_file_contains(const char *path, const char *needle)
{
	size_t len;
	char *text = it_read_file(path, &len);
	bool found;

	if (text == NULL)
		return false;
	found = memmem(text, len, needle, strlen(needle)) != NULL;
	free(text);
	return found;
}

const char *
it_tmpdir(void)
{
	static char dir[] = "/tmp/warden-it-XXXXXX";
	static bool made;

	if (!made) {
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			abort();
		}
		made = true;
	}
	return dir;
}

char *
it_chat_body(const char *model, const char *content, bool stream)
{
	char *out;

	if (asprintf(&out, "{\"model\":\"%s\",\"stream\":%s,\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"%s\"}]}", model,
	    stream ? "true" : "false", content) < 0)
		abort();
	return out;
}

int
it_run(const char *cmd, char **out, char **err)
{
	static int seq;
	char opath[256], epath[256], *full;
	int st;

	snprintf(opath, sizeof(opath), "%s/run-%d-%d.out", it_tmpdir(),
	    (int)getpid(), seq);
	snprintf(epath, sizeof(epath), "%s/run-%d-%d.err", it_tmpdir(),
	    (int)getpid(), seq++);
	if (err != NULL) {
		if (asprintf(&full, "( %s ) </dev/null >%s 2>%s", cmd, opath,
		    epath) < 0)
			abort();
	} else if (asprintf(&full, "( %s ) </dev/null >%s 2>&1", cmd,
	    opath) < 0) {
		abort();
	}
	st = system(full);
	free(full);
	if (out != NULL)
		*out = it_read_file(opath, NULL);
	if (err != NULL)
		*err = it_read_file(epath, NULL);
	unlink(opath);
	unlink(epath);
	ck_assert(out == NULL || *out != NULL);
	ck_assert(err == NULL || *err != NULL);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* s in single quotes for sh. */
static void
sh_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s != '\0'; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

int
it_run_warden(const char *const *args, char **out, char **err)
{
	char *cmd = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&cmd, &len);
	int rc;

	ck_assert_ptr_nonnull(f);
	sh_quote(f, getenv("WARDEN_BIN"));
	for (; *args != NULL; args++) {
		fputc(' ', f);
		sh_quote(f, *args);
	}
	fclose(f);
	rc = it_run(cmd, out, err);
	free(cmd);
	return rc;
}

void
it_chat_at(const char *url, const char *key, const char *const *extra,
    const char *body, long timeout_ms, struct it_resp *out)
{
	char auth[160];
	const char *h[16];
	size_t n = 0;

	if (key != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		h[n++] = auth;
	}
	h[n++] = "Content-Type: application/json";
	for (; extra != NULL && *extra != NULL && n < 15; extra++)
		h[n++] = *extra;
	h[n] = NULL;
	it_http("POST", url, h, body, timeout_ms, out);
}

void
it_assert_error_json(const char *text, size_t len, const char *type,
    const char *code)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len, 0, &jerr), *e, *c;

	ck_assert_msg(j != NULL, "error body is not JSON: %.*s", (int)len, text);
	e = json_object_get(j, "error");
	ck_assert_msg(json_is_object(e), "no error object: %.*s", (int)len, text);
	ck_assert(json_is_string(json_object_get(e, "message")));
	ck_assert(json_is_string(json_object_get(e, "type")));
	ck_assert(json_object_get(e, "param") != NULL);
	c = json_object_get(e, "code");
	ck_assert(c != NULL);
	if (type != NULL)
		ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
		    type);
	if (code != NULL && strcmp(code, "null") == 0)
		ck_assert_msg(json_is_null(c), "code is not null: %.*s",
		    (int)len, text);
	else if (code != NULL)
		ck_assert_msg(json_is_string(c) &&
		    strcmp(json_string_value(c), code) == 0,
		    "want code %s: %.*s", code, (int)len, text);
	json_decref(j);
}

void
it_assert_error(const struct it_resp *r, long status, const char *type,
    const char *code, const char *const *fragments)
{
	json_t *j;
	const char *msg;

	ck_assert_msg(r->status == status, "status %ld, want %ld: %s",
	    r->status, status, r->body);
	it_assert_error_json(r->body, r->len, type, code);
	j = json_loadb(r->body, r->len, 0, NULL);
	msg = json_string_value(json_object_get(json_object_get(j, "error"),
	    "message"));
	for (size_t i = 0; fragments != NULL && fragments[i] != NULL; i++)
		ck_assert_msg(strstr(msg, fragments[i]) != NULL,
		    "message '%s' lacks '%s'", msg, fragments[i]);
	json_decref(j);
}

char *
it_fixture(const char *name, const char *const *vars)
{
	const char *dir = getenv("WARDEN_SRC");
	char path[512], *text, *out = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", dir ? dir : ".",
	    name);
	text = it_read_file(path, NULL);
	if (text == NULL) {
		fprintf(stderr, "fixture %s: cannot read\n", path);
		abort();
	}
	f = open_memstream(&out, &len);
	if (f == NULL)
		abort();
	for (const char *p = text; *p != '\0'; ) {
		const char *end;
		size_t i;

		if (p[0] != '$' || p[1] != '{' || (end = strchr(p, '}')) == NULL) {
			fputc(*p++, f);
			continue;
		}
		for (i = 0; vars[i] != NULL; i += 2)
			if (strlen(vars[i]) == (size_t)(end - p - 2) &&
			    strncmp(vars[i], p + 2, (size_t)(end - p - 2)) == 0)
				break;
		if (vars[i] == NULL) {
			fprintf(stderr, "fixture %s: no value for %.*s\n", path,
			    (int)(end - p + 1), p);
			abort();
		}
		fputs(vars[i + 1], f);
		p = end + 1;
	}
	fclose(f);
	free(text);
	return out;
}

/*
 * Does process pid hold needle (two halves kept apart) in writable memory
 * that is not locked?  Read through /proc/PID/mem (root may, although
 * warden is not dumpable).
 */
bool
it_unlocked_holds(pid_t pid, const unsigned char *h1,
    const unsigned char *h2, size_t half)
{
	static struct { unsigned long lo, hi; bool use; } maps[8192];
	char path[64], line[512];
	size_t n = 0;
	bool found = false;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	ck_assert((f = fopen(path, "r")) != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    strchr(line, ' ') != NULL && n < sizeof(maps) / sizeof(maps[0]) &&
		    line[strcspn(line, "-")] == '-' && strchr(line, ':') != NULL &&
		    perms[0] != '\0' && (perms[0] == 'r' || perms[0] == '-')) {
			maps[n].lo = lo;
			maps[n].hi = hi;
			maps[n].use = perms[0] == 'r' && perms[1] == 'w' &&
			    hi - lo <= (256ul << 20) && strstr(line, "[v") == NULL;
			n++;
		} else if (strncmp(line, "VmFlags:", 8) == 0 && n > 0 &&
		    strstr(line, " lo") != NULL) {
			maps[n - 1].use = false;
		}
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	ck_assert_msg((fd = open(path, O_RDONLY)) >= 0, "cannot read %s", path);
	for (size_t i = 0; i < n && !found; i++) {
		size_t len = maps[i].hi - maps[i].lo;
		unsigned char *buf;

		if (!maps[i].use || (buf = malloc(len)) == NULL)
			continue;
		if (pread(fd, buf, len, (off_t)maps[i].lo) == (ssize_t)len)
			for (size_t off = 0; off + 2 * half <= len && !found; off++)
				found = buf[off] == h1[0] &&
				    memcmp(buf + off, h1, half) == 0 &&
				    memcmp(buf + off + half, h2, half) == 0;
		memset(buf, 0, len);
		free(buf);
	}
	close(fd);
	return found;
}
