/*
 * test_witness.c - gateway/witness.c on its own: the hook the audit
 * writer calls, delivering to real loopback witnesses (a syslog
 * collector on UDP, TCP and a Unix socket; an HTTP server) in the
 * test's own threads.  Checks the RFC 5424 header, RFC 6587 octet
 * counting, the order, the retry bound, and that an unreachable witness
 * never holds up the caller.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gw_int.h"
#include "tests/integration/wit_listen.h"
#include "tests/unit/suites.h"

static const char *const lines[] = {
	"{\"kind\":\"checkpoint\",\"seq\":11,\"signed_seq\":10,\"hash\":\"aa\"}",
	"{\"kind\":\"checkpoint\",\"seq\":22,\"signed_seq\":21,\"hash\":\"bb\"}",
	"{\"kind\":\"checkpoint\",\"seq\":33,\"signed_seq\":32,\"hash\":\"cc\"}",
};
#define NLINES 3

static struct gw_witness *
witness(const char *syslog, const char *url)
{
	struct pol_witness cfg = { .syslog = (char *)syslog, .url = (char *)url };
	struct gw_witness *w = NULL;
	char err[256];

	ck_assert_msg(gw_witness_new(&cfg, &w, err, sizeof(err)) == WD_OK, "%s",
	    err);
	ck_assert_ptr_nonnull(w);
	return w;
}

static void
send_lines(struct gw_witness *w)
{
	struct aud_witness hook;

	gw_witness_hook(w, &hook);
	for (int i = 0; i < NLINES; i++)
		hook.send(hook.ctx, lines[i], strlen(lines[i]));
}

static void
assert_got(struct wl *l)
{
	ck_assert_int_eq(wl_count(l, NLINES, 5000), NLINES);
	for (int i = 0; i < NLINES; i++) {
		ck_assert_ptr_nonnull(l->msg[i]);
		ck_assert_str_eq(l->msg[i], lines[i]);
		if (l->kind != WL_HTTP) {
			/* <PRI>1 TIMESTAMP HOSTNAME warden PROCID checkpoint - MSG,
			 * facility 13 (log audit), severity 5 (notice). */
			ck_assert_msg(strncmp(l->raw[i], "<109>1 20", 9) == 0, "%s",
			    l->raw[i]);
			ck_assert_msg(strstr(l->raw[i], "Z ") != NULL &&
			    strstr(l->raw[i], " warden ") != NULL, "%s", l->raw[i]);
		}
	}
}

START_TEST(udp_syslog_and_http_get_each_line_in_order)
{
	struct wl u, h;
	char syslog[64], url[64];
	struct gw_witness *w;
	uint64_t sent, failed, dropped;

	ck_assert(wl_start(&u, WL_UDP, NULL));
	ck_assert(wl_start(&h, WL_HTTP, NULL));
	snprintf(syslog, sizeof(syslog), "udp://127.0.0.1:%d", u.port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/checkpoints", h.port);
	w = witness(syslog, url);
	send_lines(w);
	assert_got(&u);
	assert_got(&h);
	gw_witness_stats(w, &sent, &failed, &dropped);
	ck_assert_uint_eq(sent, 2 * NLINES);
	ck_assert_uint_eq(failed, 0);
	ck_assert_uint_eq(dropped, 0);
	gw_witness_free(w);
	wl_stop(&u);
	wl_stop(&h);
}
END_TEST

START_TEST(tcp_syslog_uses_octet_counting)
{
	struct wl t;
	char syslog[64];
	struct gw_witness *w;

	ck_assert(wl_start(&t, WL_TCP, NULL));
	snprintf(syslog, sizeof(syslog), "tcp://127.0.0.1:%d", t.port);
	w = witness(syslog, NULL);
	send_lines(w);
	/* Frames are "LEN SP MSG": the listener splits by length only, so
	 * each line comes out whole and alone. */
	assert_got(&t);
	gw_witness_free(w);
	wl_stop(&t);
}
END_TEST

START_TEST(unix_syslog)
{
	struct wl x;
	char path[108], syslog[120];
	struct gw_witness *w;

	snprintf(path, sizeof(path), "/tmp/warden-ut-wit.%d.sock", (int)getpid());
	ck_assert(wl_start(&x, WL_UNIX, path));
	snprintf(syslog, sizeof(syslog), "unix:%s", path);
	w = witness(syslog, NULL);
	send_lines(w);
	assert_got(&x);
	gw_witness_free(w);
	wl_stop(&x);
}
END_TEST

/* A witness that answers 500 is tried WIT_TRIES (3) times per line, then
 * the line counts as failed; the next line is tried afresh. */
START_TEST(http_failure_is_retried_with_a_bound)
{
	struct wl h;
	char url[64];
	struct gw_witness *w;
	struct aud_witness hook;
	uint64_t sent, failed, dropped;

	ck_assert(wl_start(&h, WL_HTTP, NULL));
	h.http_status = 500;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/cp", h.port);
	w = witness(NULL, url);
	gw_witness_hook(w, &hook);
	hook.send(hook.ctx, lines[0], strlen(lines[0]));
	ck_assert_int_eq(wl_count(&h, 3, 5000), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(h.msg[i], lines[0]);
	usleep(300000);
	ck_assert_int_eq(wl_count(&h, 4, 0), 3);	/* not a 4th time */
	gw_witness_stats(w, &sent, &failed, &dropped);
	ck_assert_uint_eq(sent, 0);
	ck_assert_uint_eq(failed, 1);
	gw_witness_free(w);
	wl_stop(&h);
}
END_TEST

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Nobody listens: the caller (the audit writer) is never held up, the
 * queue stays bounded, and stopping gives up after a few seconds. */
START_TEST(unreachable_witness_never_blocks_the_caller)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char syslog[64], url[64];
	struct gw_witness *w;
	struct aud_witness hook;
	uint64_t t0, took, sent, failed, dropped;

	/* A port that is bound but not listening: connections are refused. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	snprintf(syslog, sizeof(syslog), "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/cp", ntohs(sa.sin_port));
	w = witness(syslog, url);
	gw_witness_hook(w, &hook);
	t0 = now_ms();
	for (int i = 0; i < 3000; i++)
		hook.send(hook.ctx, lines[i % NLINES], strlen(lines[i % NLINES]));
	took = now_ms() - t0;
	ck_assert_msg(took < 500, "3000 sends took %llu ms",
	    (unsigned long long)took);
	gw_witness_stats(w, &sent, &failed, &dropped);
	ck_assert_msg(dropped >= 3000 - 1024 - 1, "queue not bounded: %llu "
	    "dropped", (unsigned long long)dropped);
	t0 = now_ms();
	gw_witness_free(w);
	took = now_ms() - t0;
	ck_assert_msg(took < 9000, "stopping took %llu ms",
	    (unsigned long long)took);
	close(fd);
}
END_TEST

Suite *
suite_witness(void)
{
	Suite *s = suite_create("witness");
	TCase *tc = tcase_create("witness");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, udp_syslog_and_http_get_each_line_in_order);
	tcase_add_test(tc, tcp_syslog_uses_octet_counting);
	tcase_add_test(tc, unix_syslog);
	tcase_add_test(tc, http_failure_is_retried_with_a_bound);
	tcase_add_test(tc, unreachable_witness_never_blocks_the_caller);
	suite_add_tcase(s, tc);
	return s;
}
