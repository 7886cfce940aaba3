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
/* Spawn argv with stdout and stderr appended to log; returns the pid. */
pid_t it_spawn(char *const argv[], const char *log);
/* Wait until something accepts on 127.0.0.1:port. */
bool it_wait_port(int port, int timeout_ms);
/* SIGTERM (or sig), wait up to 5 s, then SIGKILL; returns exit status. */
int it_stop(pid_t pid, int sig);

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

/* A scratch directory for this run, created on first use. */
const char *it_tmpdir(void);

/* Body of a chat request with one user message. */
char *it_chat_body(const char *model, const char *content, bool stream);

#endif /* IT_HARNESS_H */
