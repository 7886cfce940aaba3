/*
 * ut_redis.c - a real redis-server for one test, as a child on a free
 * loopback port, never the system's instance: no persistence, no config
 * file, gone with the test (declared in suites.h).
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/suites.h"

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

bool
ut_redis_ping(int port)
{
	struct timeval tv = { 0, 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	bool ok = false;

	if (c != NULL && !c->err) {
		r = redisCommand(c, "PING");
		ok = r != NULL && r->type == REDIS_REPLY_STATUS;
		if (r != NULL)
			freeReplyObject(r);
	}
	if (c != NULL)
		redisFree(c);
	return ok;
}

void
ut_redis_start(struct ut_redis *r, int port)
{
	char p[16];

	r->port = port > 0 ? port : free_port();
	snprintf(p, sizeof(p), "%d", r->port);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("redis-server", "redis-server", "--port", p, "--bind",
		    "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--daemonize", "no", "--protected-mode", "yes", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (ut_redis_ping(r->port))
			return;
		usleep(25000);
	}
	ck_abort_msg("redis-server on port %d did not answer", r->port);
}

void
ut_redis_stop(struct ut_redis *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
}

void
ut_redis_cmd(int port, const char *cmd)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *rep;

	ck_assert_msg(c != NULL && !c->err, "connect to redis");
	rep = redisCommand(c, cmd);
	ck_assert_msg(rep != NULL && rep->type != REDIS_REPLY_ERROR, "%s", cmd);
	freeReplyObject(rep);
	redisFree(c);
}
