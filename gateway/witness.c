/*
 * witness.c - each audit checkpoint goes off the host as it is made
 * (issue 11, `audit.witness`): as an RFC 5424 syslog message to a
 * collector (UDP; TCP with RFC 6587 octet-counting framing; or a Unix
 * socket such as /dev/log), and/or as the body of an HTTP POST to a
 * witness URL (libcurl).  An insider who later rewrites the log on the
 * host contradicts the checkpoints that already left it.
 *
 * The audit writer calls the hook on its own thread and must never wait
 * for the network: the hook copies the line into a bounded queue (at
 * most WIT_QUEUE_MAX lines; beyond that a line is dropped and counted)
 * and one thread of this file delivers them, in order.  A failed delivery
 * is retried WIT_TRIES times with a short pause, then counted as failed
 * and logged; the next line is tried afresh (a new connection).
 *
 * What a witness keeps is the checkpoint line itself, one per line as
 * received (the MSG part of the syslog message, the body of the POST):
 * that is the witness file `audit verify --witness FILE` reads.
 */
#include "gateway/gw_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define WIT_QUEUE_MAX 1024		/* lines waiting */
#define WIT_LINE_MAX (64u << 10)	/* a checkpoint line is far smaller */
#define WIT_TRIES 3			/* per line and destination */
#define WIT_DRAIN_S 5			/* at stop, deliver for this long */
#define WIT_IO_MS 2000			/* connect and send timeouts */
#define WIT_HTTP_MS 5000		/* one POST, all in */

enum wit_syslog { WIT_NONE, WIT_UDP, WIT_TCP, WIT_UNIX };

struct wit_item {
	struct wit_item *next;
	size_t len;
	char line[];
};

struct gw_witness {
	pthread_t th;
	bool started;
	pthread_mutex_t mu;		/* the queue, stop, counters */
	pthread_cond_t cv;
	struct wit_item *head, *tail;
	size_t nqueued;
	bool stop;
	time_t drain_until;		/* set with stop */

	enum wit_syslog kind;
	char host[256], port[8];	/* UDP, TCP */
	char path[108];			/* Unix */
	int fd;				/* connected; -1: not now */
	int sotype;			/* of fd: SOCK_DGRAM or SOCK_STREAM */
	char hostname[256];		/* RFC 5424 HOSTNAME */

	CURL *curl;			/* NULL: no URL */
	struct curl_slist *hdrs;
	char *url, *ca_file;

	uint64_t sent, failed, dropped;	/* deliveries, by destination */
	bool failing[2];		/* the last delivery failed: syslog, URL */
};

/* "udp://HOST:PORT" etc. into w (the loader checked the syntax). */
static enum wd_err
parse_syslog(struct gw_witness *w, const char *t, char *err, size_t errlen)
{
	const char *hp, *colon;
	size_t hl;

	if (strncmp(t, "unix:", 5) == 0) {
		if (t[5] != '/' || strlen(t + 5) >= sizeof(w->path))
			goto bad;
		snprintf(w->path, sizeof(w->path), "%s", t + 5);
		w->kind = WIT_UNIX;
		return WD_OK;
	}
	if (strncmp(t, "udp://", 6) == 0)
		w->kind = WIT_UDP;
	else if (strncmp(t, "tcp://", 6) == 0)
		w->kind = WIT_TCP;
	else
		goto bad;
	hp = t + 6;
	colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || strlen(colon + 1) >= sizeof(w->port) ||
	    colon[1] == '\0')
		goto bad;
	if (hp[0] == '[') {		/* [v6]:port */
		if (colon[-1] != ']' || colon - hp < 3)
			goto bad;
		hp++;
		hl = (size_t)(colon - 1 - hp);
	} else {
		hl = (size_t)(colon - hp);
	}
	if (hl >= sizeof(w->host))
		goto bad;
	memcpy(w->host, hp, hl);
	w->host[hl] = '\0';
	snprintf(w->port, sizeof(w->port), "%s", colon + 1);
	return WD_OK;
bad:
	snprintf(err, errlen, "syslog target '%.80s' is not udp://HOST:PORT, "
	    "tcp://HOST:PORT or unix:/PATH", t);
	w->kind = WIT_NONE;
	return WD_EINVAL;
}

static void
set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = WIT_IO_MS / 1000,
		.tv_usec = (WIT_IO_MS % 1000) * 1000 };

	/* On Linux SO_SNDTIMEO bounds connect() too. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void
syslog_close(struct gw_witness *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* Connect to the collector; false (errno set) if it cannot be reached. */
static bool
syslog_connect(struct gw_witness *w)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int fd = -1;

	if (w->fd >= 0)
		return true;
	if (w->kind == WIT_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		/* /dev/log is a datagram socket on most systems; some
		 * collectors listen on a stream socket instead. */
		static const int types[] = { SOCK_DGRAM, SOCK_STREAM };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", w->path);
		for (size_t i = 0; i < 2; i++) {
			fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
			if (fd < 0)
				return false;
			set_timeouts(fd);
			if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
				w->fd = fd;
				w->sotype = types[i];
				return true;
			}
			close(fd);
			if (errno != EPROTOTYPE)
				return false;
		}
		return false;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = w->kind == WIT_UDP ? SOCK_DGRAM : SOCK_STREAM;
	if (getaddrinfo(w->host, w->port, &hints, &res) != 0) {
		errno = EHOSTUNREACH;
		return false;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		set_timeouts(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return false;
	w->fd = fd;
	w->sotype = hints.ai_socktype;
	return true;
}

/*
 * One RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
 * SD MSG, facility 13 (log audit), severity 5 (notice).  *len: its
 * length; the caller frees it.
 */
static char *
syslog_message(const struct gw_witness *w, const char *line, size_t len,
    size_t *outlen)
{
	struct timespec ts;
	struct tm tm;
	char head[512];
	int hl;
	char *m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	hl = snprintf(head, sizeof(head), "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d."
	    "%06ldZ %s warden %ld checkpoint - ", 13 * 8 + 5, tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000, w->hostname, (long)getpid());
	if (hl < 0 || (size_t)hl >= sizeof(head) ||
	    (m = malloc((size_t)hl + len)) == NULL)
		return NULL;
	memcpy(m, head, (size_t)hl);
	memcpy(m + hl, line, len);
	*outlen = (size_t)hl + len;
	return m;
}

static bool
send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool
syslog_send(struct gw_witness *w, const char *line, size_t len)
{
	size_t mlen;
	char *m = syslog_message(w, line, len, &mlen);
	bool ok = false;

	if (m == NULL || !syslog_connect(w))
		goto out;
	if (w->sotype == SOCK_DGRAM) {
		/* One datagram, one message (RFC 5426). */
		ok = send(w->fd, m, mlen, MSG_NOSIGNAL) == (ssize_t)mlen;
	} else {
		/* RFC 6587 octet counting: "LEN SP MSG"; no delimiter that
		 * the message could contain. */
		char pre[24];
		int pl = snprintf(pre, sizeof(pre), "%zu ", mlen);

		ok = send_all(w->fd, pre, (size_t)pl) && send_all(w->fd, m, mlen);
	}
out:
	if (!ok)
		syslog_close(w);
	free(m);
	return ok;
}

/* Throw the witness's answer away (bounded by the timeout). */
static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static bool
http_send(struct gw_witness *w, const char *line, size_t len, char *why,
    size_t whylen)
{
	long status = 0;
	CURLcode rc;

	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, line);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)len);
	rc = curl_easy_perform(w->curl);
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
		return false;
	}
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		snprintf(why, whylen, "the witness answered status %ld", status);
		return false;
	}
	return true;
}

/* Is the thread told to give up (stop, and the drain time is over)? */
static bool
giving_up(struct gw_witness *w)
{
	bool r;

	pthread_mutex_lock(&w->mu);
	r = w->stop && time(NULL) >= w->drain_until;
	pthread_mutex_unlock(&w->mu);
	return r;
}

static void
note(struct gw_witness *w, int d, bool ok, const char *dest, const char *why)
{
	pthread_mutex_lock(&w->mu);
	gw_metrics_witness(ok ? GW_WITNESS_SENT : GW_WITNESS_FAILED);
	if (ok) {
		w->sent++;
		if (w->failing[d])
			wd_info("audit witness: %s reachable again", dest);
		w->failing[d] = false;
	} else {
		w->failed++;
		/* Logged when it starts failing, then every 100th. */
		if (!w->failing[d] || w->failed % 100 == 0)
			wd_warn("audit witness: a checkpoint did not reach %s after "
			    "%d tries: %s (%llu failed so far)", dest, WIT_TRIES, why,
			    (unsigned long long)w->failed);
		w->failing[d] = true;
	}
	pthread_mutex_unlock(&w->mu);
}

static void
deliver(struct gw_witness *w, const struct wit_item *it)
{
	char why[256] = "";
	bool ok;

	if (w->kind != WIT_NONE) {
		ok = false;
		for (int i = 0; i < WIT_TRIES && !ok; i++) {
			if (i > 0) {
				if (giving_up(w))
					break;
				usleep(200000u * (unsigned)i);
			}
			ok = syslog_send(w, it->line, it->len);
			if (!ok)
				snprintf(why, sizeof(why), "%s", strerror(errno));
		}
		note(w, 0, ok, "the syslog collector", why);
	}
	if (w->curl != NULL) {
		ok = false;
		for (int i = 0; i < WIT_TRIES && !ok; i++) {
			if (i > 0) {
				if (giving_up(w))
					break;
				usleep(500000u * (unsigned)i);
			}
			ok = http_send(w, it->line, it->len, why, sizeof(why));
		}
		note(w, 1, ok, w->url, why);
	}
}

static void *
witness_main(void *arg)
{
	struct gw_witness *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct wit_item *it;

		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->head == NULL || (w->stop && time(NULL) >= w->drain_until))
			break;
		it = w->head;
		w->head = it->next;
		if (w->head == NULL)
			w->tail = NULL;
		w->nqueued--;
		pthread_mutex_unlock(&w->mu);
		deliver(w, it);
		free(it);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* aud_witness.send: copy and queue; never waits for the network. */
static void
witness_send(void *ctx, const char *line, size_t len)
{
	struct gw_witness *w = ctx;
	struct wit_item *it;

	if (len > WIT_LINE_MAX || (it = malloc(sizeof(*it) + len)) == NULL) {
		pthread_mutex_lock(&w->mu);
		w->dropped++;
		pthread_mutex_unlock(&w->mu);
		gw_metrics_witness(GW_WITNESS_DROPPED);
		wd_warn("audit witness: a checkpoint line of %zu bytes was not "
		    "sent", len);
		return;
	}
	it->next = NULL;
	it->len = len;
	memcpy(it->line, line, len);
	pthread_mutex_lock(&w->mu);
	if (w->nqueued >= WIT_QUEUE_MAX || w->stop) {
		/* The witnesses have been unreachable for long: the log
		 * still has every checkpoint; the witness misses this one. */
		gw_metrics_witness(GW_WITNESS_DROPPED);
		if (w->dropped++ % 100 == 0)
			wd_warn("audit witness: queue full (%d lines); checkpoints "
			    "are dropped for the witnesses (%llu so far)",
			    WIT_QUEUE_MAX, (unsigned long long)w->dropped);
		pthread_mutex_unlock(&w->mu);
		free(it);
		return;
	}
	if (w->tail != NULL)
		w->tail->next = it;
	else
		w->head = it;
	w->tail = it;
	w->nqueued++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static enum wd_err
http_init(struct gw_witness *w, const struct pol_witness *cfg, char *err,
    size_t errlen)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (w->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot set up libcurl");
		return WD_ENOMEM;
	}
	w->url = strdup(cfg->url);
	w->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	w->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (w->url == NULL || (cfg->ca_file != NULL && w->ca_file == NULL) ||
	    w->hdrs == NULL) {
		snprintf(err, errlen, "out of memory");
		return WD_ENOMEM;
	}
	curl_easy_setopt(w->curl, CURLOPT_URL, w->url);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->curl, CURLOPT_USERAGENT, "warden/" WD_VERSION);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)WIT_IO_MS);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)WIT_HTTP_MS);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(w->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (w->ca_file != NULL)
		curl_easy_setopt(w->curl, CURLOPT_CAINFO, w->ca_file);
	return WD_OK;
}

enum wd_err
gw_witness_new(const struct pol_witness *cfg, struct gw_witness **out,
    char *err, size_t errlen)
{
	struct gw_witness *w;
	enum wd_err rc;

	*out = NULL;
	if (cfg->syslog == NULL && cfg->url == NULL)
		return WD_OK;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return WD_ENOMEM;
	}
	w->fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (gethostname(w->hostname, sizeof(w->hostname) - 1) != 0 ||
	    w->hostname[0] == '\0')
		snprintf(w->hostname, sizeof(w->hostname), "-");
	for (char *p = w->hostname; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~')
			*p = '-';	/* RFC 5424: PRINTUSASCII */
	if (cfg->syslog != NULL &&
	    (rc = parse_syslog(w, cfg->syslog, err, errlen)) != WD_OK)
		goto fail;
	if (cfg->url != NULL && (rc = http_init(w, cfg, err, errlen)) != WD_OK)
		goto fail;
	if (pthread_create(&w->th, NULL, witness_main, w) != 0) {
		snprintf(err, errlen, "cannot start the witness thread");
		rc = WD_EIO;
		goto fail;
	}
	w->started = true;
	*out = w;
	return WD_OK;
fail:
	gw_witness_free(w);
	return rc;
}

void
gw_witness_hook(struct gw_witness *w, struct aud_witness *out)
{
	out->send = witness_send;
	out->ctx = w;
}

void
gw_witness_stats(struct gw_witness *w, uint64_t *sent, uint64_t *failed,
    uint64_t *dropped)
{
	pthread_mutex_lock(&w->mu);
	*sent = w->sent;
	*failed = w->failed;
	*dropped = w->dropped;
	pthread_mutex_unlock(&w->mu);
}

void
gw_witness_free(struct gw_witness *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		w->drain_until = time(NULL) + WIT_DRAIN_S;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
		wd_info("audit witness: %llu sent, %llu failed, %llu dropped",
		    (unsigned long long)w->sent, (unsigned long long)w->failed,
		    (unsigned long long)(w->dropped + w->nqueued));
	}
	while (w->head != NULL) {
		struct wit_item *next = w->head->next;

		free(w->head);
		w->head = next;
	}
	syslog_close(w);
	if (w->curl != NULL) {
		curl_easy_cleanup(w->curl);
		curl_global_cleanup();
	}
	curl_slist_free_all(w->hdrs);
	free(w->url);
	free(w->ca_file);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
