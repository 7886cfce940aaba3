/*
 * upstream.c - requests to providers with libcurl's multi interface,
 * driven by the worker's own event loop (CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION).  No thread per request, no blocking call on the
 * loop; the multi handle keeps provider connections alive across requests.
 * Plain http:// at a literal address without a proxy goes to warden's own
 * HTTP/1.1 client instead (upstream_h1.c, which says why), behind the
 * same calls.
 *
 * One struct gw_upstream per worker.  A transfer reports through three
 * callbacks (head, data, done) and ends exactly once: on_done, or an abort
 * by its owner, after which nothing is called.
 */
#include "gateway/gw_int.h"
#include "gateway/h1.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define EASY_POOL 64

struct gw_upstream {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	/* Easy handles are reused: setting one up costs more than a small
	 * proxied request's JSON. */
	CURL *pool[EASY_POOL];
	int npool;
	struct h1_pool *h1;	/* plain http at a literal address */
};

struct curl_xfer {
	struct gw_up_xfer base;
	struct gw_upstream *up;
	CURL *easy;
	struct curl_slist *headers;
	struct gw_up_req r;
	struct event *watchdog;		/* first-byte, then idle deadline */
	bool got_head;
	bool paused;
	char errbuf[CURL_ERROR_SIZE];
};

/* Per-socket state that curl keeps for us (curl_multi_assign). */
struct up_sock {
	struct event *ev;
	struct gw_upstream *up;
};

static void check_done(struct gw_upstream *up);

static void
xfer_free(struct curl_xfer *x)
{
	curl_multi_remove_handle(x->up->multi, x->easy);
	if (x->up->npool < EASY_POOL)
		x->up->pool[x->up->npool++] = x->easy;
	else
		curl_easy_cleanup(x->easy);
	/* One of these holds the provider credential. */
	for (struct curl_slist *l = x->headers; l != NULL; l = l->next)
		wd_wipe(l->data, strlen(l->data));
	curl_slist_free_all(x->headers);
	if (x->watchdog != NULL)
		event_free(x->watchdog);
	free(x);
}

static void
finish(struct curl_xfer *x, enum wd_err err, const char *detail)
{
	struct gw_up_req r = x->r;
	char copy[CURL_ERROR_SIZE];

	snprintf(copy, sizeof(copy), "%s", detail ? detail : "");
	xfer_free(x);
	r.on_done(r.arg, err, copy);
}

static void
arm_watchdog(struct curl_xfer *x, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	/* 0: no such deadline (the total one is curl's own). */
	if (ms <= 0) {
		evtimer_del(x->watchdog);
		return;
	}
	evtimer_add(x->watchdog, &tv);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct curl_xfer *x = arg;

	(void)fd;
	(void)what;
	if (x->paused) {
		/* Our client is slow, not the provider: the client's own
		 * write timeout covers that. */
		arm_watchdog(x, x->r.idle_ms);
		return;
	}
	finish(x, WD_ETIMEOUT, x->got_head ? "provider went silent mid-answer"
	    : "no answer from provider in time");
}

static void
sock_cb_event(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upstream *up = arg;
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(up->multi, fd, flags, &running);
	check_done(up);
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct gw_upstream *up = userp;
	struct up_sock *us = socketp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (us != NULL) {
			event_free(us->ev);
			free(us);
			curl_multi_assign(up->multi, s, NULL);
		}
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (us == NULL) {
		us = calloc(1, sizeof(*us));
		if (us == NULL)
			return -1;
		us->up = up;
		curl_multi_assign(up->multi, s, us);
		us->ev = event_new(up->base, s, kind, sock_cb_event, up);
		if (us->ev == NULL)
			return -1;
	} else {
		/* Same socket, new interest: reuse the event. */
		event_del(us->ev);
		event_assign(us->ev, up->base, s, kind, sock_cb_event, up);
	}
	event_add(us->ev, NULL);
	return 0;
}

static void
timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upstream *up = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(up);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct gw_upstream *up = userp;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	(void)multi;
	if (timeout_ms < 0)
		evtimer_del(up->timer);
	else
		evtimer_add(up->timer, &tv);
	return 0;
}

static void
check_done(struct gw_upstream *up)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
		struct curl_xfer *x;
		CURLcode res;

		if (msg->msg != CURLMSG_DONE)
			continue;
		res = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (res == CURLE_OK)
			finish(x, WD_OK, NULL);
		else if (res == CURLE_OPERATION_TIMEDOUT)
			finish(x, WD_ETIMEOUT, x->errbuf[0] ? x->errbuf :
			    curl_easy_strerror(res));
		else
			finish(x, WD_EUPSTREAM, x->errbuf[0] ? x->errbuf :
			    curl_easy_strerror(res));
	}
}

static size_t
header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct curl_xfer *x = arg;
	size_t len = size * n;
	long status = 0;
	char *ctype = NULL;

	if (x->got_head)
		return len;		/* trailers */
	if (len == 2 && data[0] == '\r' && data[1] == '\n') {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 100 && status < 200)
			return len;	/* interim answer; the real one follows */
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
		x->got_head = true;
		arm_watchdog(x, x->r.idle_ms);
		x->r.on_head(x->r.arg, (int)status, ctype);
	} else if (x->r.on_header != NULL && len > 2) {
		x->r.on_header(x->r.arg, data, len);
	}
	return len;
}

static size_t
write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct curl_xfer *x = arg;
	size_t len = size * n, rc;

	arm_watchdog(x, x->r.idle_ms);
	rc = x->r.on_data(x->r.arg, data, len);
	if (rc == GW_UP_PAUSE) {
		x->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	return rc;
}

struct gw_upstream *
gw_upstream_new(struct event_base *base)
{
	struct gw_upstream *up = calloc(1, sizeof(*up));

	if (up == NULL)
		return NULL;
	up->base = base;
	up->multi = curl_multi_init();
	up->timer = evtimer_new(base, timer_event, up);
	up->h1 = h1_pool_new(base);
	if (up->multi == NULL || up->timer == NULL || up->h1 == NULL) {
		gw_upstream_free(up);
		return NULL;
	}
	curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
	curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
	/* Enough idle provider connections for a busy worker to reuse. */
	curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 256L);
	return up;
}

void
gw_upstream_free(struct gw_upstream *up)
{
	if (up == NULL)
		return;
	for (int i = 0; i < up->npool; i++)
		curl_easy_cleanup(up->pool[i]);
	if (up->multi != NULL)
		curl_multi_cleanup(up->multi);
	if (up->timer != NULL)
		event_free(up->timer);
	h1_pool_free(up->h1);
	free(up);
}

enum wd_err
gw_up_start(struct gw_upstream *up, const struct gw_up_req *r,
    struct gw_up_xfer **out)
{
	struct curl_xfer *x;
	enum wd_err rc;
	CURL *e;

	*out = NULL;
	if ((rc = h1_start(up->h1, r, out)) != WD_ENOTFOUND)
		return rc;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return WD_ENOMEM;
	x->up = up;
	x->r = *r;
	if (up->npool > 0) {
		x->easy = e = up->pool[--up->npool];
		curl_easy_reset(e);
	} else {
		x->easy = e = curl_easy_init();
	}
	x->watchdog = evtimer_new(up->base, watchdog_cb, x);
	if (e == NULL || x->watchdog == NULL)
		goto nomem;
	for (size_t i = 0; i < r->nheaders; i++) {
		struct curl_slist *l = curl_slist_append(x->headers, r->headers[i]);

		if (l == NULL)
			goto nomem;
		x->headers = l;
	}
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	if (r->ca_file != NULL)		/* a route's private CA */
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
	if (r->method != NULL && strcmp(r->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);	/* no body */
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->body_len);
		if (r->method != NULL)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->total_ms);
	/* Providers are named in the rules: never follow a redirect to
	 * somewhere else, and speak only HTTP(S). */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* The proxy is the rules' (upstream.proxy) or none: never one from
	 * the environment (http_proxy, HTTPS_PROXY, ALL_PROXY, NO_PROXY),
	 * which no rule, policy version or record would show. */
	curl_easy_setopt(e, CURLOPT_PROXY, r->proxy != NULL ? r->proxy : "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L);
	if (curl_multi_add_handle(up->multi, e) != CURLM_OK)
		goto nomem;
	arm_watchdog(x, r->first_byte_ms);
	*out = &x->base;
	return WD_OK;
nomem:
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	if (x->watchdog != NULL)
		event_free(x->watchdog);
	free(x);
	return WD_ENOMEM;
}

void
gw_up_turns(struct gw_upstream *up, bool on)
{
	if (up != NULL)
		h1_pool_turns(up->h1, on);
}

void
gw_up_turn_end(struct gw_upstream *up)
{
	if (up != NULL)
		h1_pool_turn_end(up->h1);
}

void
gw_up_abort(struct gw_up_xfer *bx)
{
	struct curl_xfer *x = (struct curl_xfer *)bx;

	if (bx->h1)
		h1_abort(bx);
	else
		xfer_free(x);
}

void
gw_up_resume(struct gw_up_xfer *bx)
{
	struct curl_xfer *x = (struct curl_xfer *)bx;

	if (bx->h1) {
		h1_resume(bx);
		return;
	}
	if (!x->paused)
		return;
	x->paused = false;
	/* May call write_cb at once with the data it held back. */
	curl_easy_pause(x->easy, CURLPAUSE_CONT);
}
