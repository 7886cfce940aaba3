/*
 * harness.h - what the integration tests need to drive real processes:
 * free loopback ports, spawning and stopping warden and mock providers,
 * HTTP requests through libcurl, raw bytes over a socket, and files.
 *
 * Tests run in Check's forked children; processes started by a suite's
 * unchecked fixture live in the parent and outlive each test.
 */
#ifndef IT_HARNESS_H
#define IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct it_resp {
	long status;
	char *headers;			/* raw header block, NUL-terminated */
	char *body;			/* NUL-terminated */
	size_t len;
	int curl_code;			/* CURLcode of the transfer */
};

int it_free_port(void);
/* Seconds on the monotonic clock (for deadlines and timings). */
double it_now_s(void);
/* Spawn argv with stdout and stderr appended to log; returns the pid. */
pid_t it_spawn(char *const argv[], const char *log);
/* Wait until something accepts on 127.0.0.1:port. */
bool it_wait_port(int port, int timeout_ms);
/* SIGTERM (or sig), wait up to 5 s, then SIGKILL; returns exit status. */
int it_stop(pid_t pid, int sig);
/* Wait up to timeout_ms for pid to exit on its own: its wait status, or
 * -1 if it still runs (it is left running). */
int it_wait_exit(pid_t pid, int timeout_ms);

/* A POST (body != NULL) or GET with extra "Name: value" headers. */
void it_http(const char *method, const char *url, const char *const *hdrs,
    const char *body, long timeout_ms, struct it_resp *out);
void it_resp_free(struct it_resp *r);
/* A header's value from a response, or NULL (case-insensitive). */
const char *it_resp_header(const struct it_resp *r, const char *name,
    char *buf, size_t buflen);

/* Send raw bytes, read until the peer closes or timeout_ms have passed
 * since sending (then hang up); returns a
 * malloc'd NUL-terminated answer (possibly empty). */
char *it_raw(int port, const void *data, size_t len, int timeout_ms);

char *it_read_file(const char *path, size_t *len);
void it_write_file(const char *path, const char *text, int mode);
/* Does the file (or the NUL-terminated text) contain needle? */
bool it_file_contains(const char *path, const char *needle);
/*
 * Does process pid hold h1 followed by h2 (half bytes each; the caller
 * keeps the halves apart so that its own memory does not match) in
 * writable memory that is not locked?  Read through /proc/PID/mem.
 * Meaningless under ASan, which makes mlock a no-op.
 */
bool it_unlocked_holds(pid_t pid, const unsigned char *h1,
    const unsigned char *h2, size_t half);

/* A scratch directory for this run, created on first use. */
const char *it_tmpdir(void);

/* Body of a chat request with one user message. */
char *it_chat_body(const char *model, const char *content, bool stream);

/*
 * The one way the suites do each of the three things they all do.
 */

/* Run a shell command line, stdin from /dev/null.  *out gets stdout (and
 * stderr too when err is NULL); *err stderr; either may be NULL (then
 * not kept).  Returns the exit code, or -1 if it did not exit. */
int it_run(const char *cmd, char **out, char **err);
/* Run warden (WARDEN_BIN) with args (NULL-terminated, shell-quoted
 * here), as it_run. */
int it_run_warden(const char *const *args, char **out, char **err);

/* POST a chat body to url as key (NULL: no Authorization), with extra
 * "Name: value" headers (NULL-terminated, or NULL). */
void it_chat_at(const char *url, const char *key, const char *const *extra,
    const char *body, long timeout_ms, struct it_resp *out);

/* An OpenAI-shaped error (message and type strings, param and code
 * present) in a JSON text; with this type and code unless NULL (code
 * "null": the code must be null). */
void it_assert_error_json(const char *text, size_t len, const char *type,
    const char *code);
/* The same for an answer, which must have this status; and its message
 * contains each of fragments (NULL-terminated, or NULL). */
void it_assert_error(const struct it_resp *r, long status, const char *type,
    const char *code, const char *const *fragments);

/*
 * A rules fixture: tests/fixtures/NAME (under WARDEN_SRC, default the
 * current directory) with each ${VAR} replaced by its value from vars
 * ({"VAR", "value", ..., NULL}).  A placeholder without a value aborts.
 * Returns the text (malloc'd).
 */
char *it_fixture(const char *name, const char *const *vars);

#endif /* IT_HARNESS_H */
