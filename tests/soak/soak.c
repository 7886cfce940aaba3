/*
 * soak.c - the load generator of the soak test (tests/soak/soak.sh).
 *
 *   soak --url URL --key KEY --requests N --concurrency C --seed S --out FILE
 *        [--agent-key KEY] [--model M] [--timeout-ms T] [--stall-timeout-ms T]
 *
 * Keeps C transfers in flight (libcurl multi, one thread) until N were
 * started, mixing plain and streamed chats, chats whose content carries
 * mock-provider fault directives (status=500, status=429, reset_after=2 on
 * streams, stall_after=1 with a short client timeout), requests the policy
 * refuses (an unserved model: 404; a bad key: 401) and, with --agent-key,
 * an agent's tool-call requests.  URL is warden's base URL
 * (http://127.0.0.1:PORT).
 *
 * For every transfer one line goes to --out:
 *     STATUS DECISION_ID COMPLETE KIND
 * STATUS is the HTTP status (0: no answer), DECISION_ID the
 * X-Warden-Decision header ("-" if none), COMPLETE 1 if the client got the
 * whole answer: curl reported success and, for a stream answered 200, the
 * body ends with "data: [DONE]" (or with an SSE error event, warden's way
 * of ending a stream that failed after its headers); an error answer
 * (non-200) counts as whole when curl completed it.  KIND names the mix
 * entry, for diagnosis.  A summary goes to stdout.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind {
	K_PLAIN, K_STREAM, K_500, K_429, K_RESET, K_STALL, K_NOMODEL,
	K_BADKEY, K_TOOL, K_TOOLSTREAM, K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
	"plain", "stream", "s500", "s429", "reset", "stall", "nomodel",
	"badkey", "tool", "toolstream"
};

/* Weights, per 1000. Tool kinds fall back to plain without --agent-key. */
static const int kind_weight[K_NKINDS] = {
	340, 250, 100, 50, 50, 30, 50, 50, 50, 30
};

#define TAIL_MAX 512

struct xfer {
	CURL *h;
	struct curl_slist *hdrs;
	char *body;
	enum kind kind;
	int stream;
	char decision[80];
	char tail[TAIL_MAX];	/* last bytes of the body */
	size_t tail_len;
	size_t total;
	char head[64];		/* first bytes of the body */
	size_t head_len;
};

static uint64_t rng_state;

static uint64_t
rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = sz * n, keep;

	if (x->head_len < sizeof(x->head)) {
		size_t k = sizeof(x->head) - x->head_len;

		if (k > len)
			k = len;
		memcpy(x->head + x->head_len, p, k);
		x->head_len += k;
	}
	x->total += len;
	if (len >= TAIL_MAX) {
		memcpy(x->tail, p + len - TAIL_MAX, TAIL_MAX);
		x->tail_len = TAIL_MAX;
		return len;
	}
	keep = TAIL_MAX - len;
	if (x->tail_len > keep) {
		memmove(x->tail, x->tail + x->tail_len - keep, keep);
		x->tail_len = keep;
	}
	memcpy(x->tail + x->tail_len, p, len);
	x->tail_len += len;
	return len;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = sz * n;
	static const char name[] = "x-warden-decision:";

	if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		const char *v = p + sizeof(name) - 1;
		const char *e = p + len;
		size_t k;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
			e--;
		k = (size_t)(e - v);
		if (k >= sizeof(x->decision))
			k = sizeof(x->decision) - 1;
		memcpy(x->decision, v, k);
		x->decision[k] = '\0';
	}
	return len;
}

/* Does the body's tail end with "data: [DONE]" (blank lines after it ok)? */
static int
ends_done(const struct xfer *x)
{
	size_t n = x->tail_len;
	static const char done[] = "data: [DONE]";

	while (n > 0 && (x->tail[n - 1] == '\n' || x->tail[n - 1] == '\r'))
		n--;
	return n >= sizeof(done) - 1 &&
	    memcmp(x->tail + n - (sizeof(done) - 1), done, sizeof(done) - 1) == 0;
}

/* Does the body's last SSE event carry an error object? */
static int
ends_error_event(const struct xfer *x)
{
	char buf[TAIL_MAX + 1];
	char *last;
	size_t n = x->tail_len;

	while (n > 0 && (x->tail[n - 1] == '\n' || x->tail[n - 1] == '\r'))
		n--;
	memcpy(buf, x->tail, n);
	buf[n] = '\0';
	last = strrchr(buf, '\n');
	last = last ? last + 1 : buf;
	return strncmp(last, "data: {\"error\"", 14) == 0 ||
	    strncmp(last, "event: error", 12) == 0;
}

struct opts {
	const char *url, *key, *agent_key, *out, *model;
	long requests, concurrency, timeout_ms, stall_timeout_ms;
	unsigned long long seed;
};

static enum kind
pick_kind(const struct opts *o)
{
	int r = (int)(rng() % 1000), i;

	for (i = 0; i < K_NKINDS; i++) {
		if (r < kind_weight[i])
			break;
		r -= kind_weight[i];
	}
	if (i >= K_NKINDS)
		i = K_PLAIN;
	if ((i == K_TOOL || i == K_TOOLSTREAM) && o->agent_key == NULL)
		i = i == K_TOOL ? K_PLAIN : K_STREAM;
	return (enum kind)i;
}

static void
start_one(CURLM *m, const struct opts *o, long seq, struct xfer *x)
{
	char url[512], auth[256];
	const char *directive = "", *model = o->model, *key = o->key;
	int stream = 0;
	long timeout = o->timeout_ms;

	memset(x, 0, sizeof(*x));
	x->kind = pick_kind(o);
	switch (x->kind) {
	case K_PLAIN:
		break;
	case K_STREAM:
		stream = 1;
		break;
	case K_500:
		directive = " [[mock status=500]]";
		stream = (int)(rng() % 2);
		break;
	case K_429:
		directive = " [[mock status=429]]";
		stream = (int)(rng() % 2);
		break;
	case K_RESET:
		directive = " [[mock reset_after=2 chunks=8]]";
		stream = 1;
		break;
	case K_STALL:
		directive = " [[mock stall_after=1]]";
		stream = 1;
		timeout = o->stall_timeout_ms;
		break;
	case K_NOMODEL:
		model = "no-such-model-9";
		stream = (int)(rng() % 2);
		break;
	case K_BADKEY:
		key = "wk-soak-not-a-key-000000000";
		break;
	case K_TOOL:
		directive = " [[mock tool_call=search_kb]]";
		key = o->agent_key;
		break;
	case K_TOOLSTREAM:
		directive = " [[mock tool_call=search_kb]]";
		key = o->agent_key;
		stream = 1;
		break;
	default:
		break;
	}
	x->stream = stream;
	if (asprintf(&x->body,
	    "{\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
	    "\"content\":\"soak %ld %s%s\"}]%s}",
	    model, stream ? "true" : "false", seq, kind_name[x->kind], directive,
	    (x->kind == K_TOOL || x->kind == K_TOOLSTREAM) ?
	    ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
	    "\"search_kb\",\"parameters\":{\"type\":\"object\"}}}]" : "") < 0) {
		perror("asprintf");
		exit(2);
	}
	snprintf(url, sizeof(url), "%s/v1/chat/completions", o->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	x->hdrs = curl_slist_append(NULL, auth);
	x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	/*
	 * No X-Warden-Session: a session remembers the calls the model made,
	 * and the next request's history (empty here) would contradict it
	 * (403 tool_policy).
	 */
	x->h = curl_easy_init();
	if (x->h == NULL) {
		fprintf(stderr, "soak: curl_easy_init failed\n");
		exit(2);
	}
	curl_easy_setopt(x->h, CURLOPT_URL, url);
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_multi_add_handle(m, x->h);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: soak --url URL --key KEY --requests N --concurrency C "
	    "--seed S --out FILE\n"
	    "            [--agent-key KEY] [--model M] [--timeout-ms T] "
	    "[--stall-timeout-ms T]\n");
	exit(2);
}

static long
num(const char *s, long lo)
{
	char *e;
	long v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (errno || *e || e == s || v < lo)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	struct opts o = { .model = "gpt-4o", .requests = 1000,
		.concurrency = 16, .timeout_ms = 30000, .stall_timeout_ms = 1000,
		.seed = 1 };
	long started = 0, done = 0, complete = 0, curl_err = 0, with_id = 0;
	long by_status[600] = { 0 }, other_status = 0;
	long kind_n[K_NKINDS] = { 0 }, kind_c[K_NKINDS] = { 0 };
	FILE *out;
	CURLM *m;
	double t0, dt;
	int running = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--url") == 0)
			o.url = argv[++i];
		else if (strcmp(a, "--key") == 0)
			o.key = argv[++i];
		else if (strcmp(a, "--agent-key") == 0)
			o.agent_key = argv[++i];
		else if (strcmp(a, "--model") == 0)
			o.model = argv[++i];
		else if (strcmp(a, "--out") == 0)
			o.out = argv[++i];
		else if (strcmp(a, "--requests") == 0)
			o.requests = num(argv[++i], 0);
		else if (strcmp(a, "--concurrency") == 0)
			o.concurrency = num(argv[++i], 1);
		else if (strcmp(a, "--timeout-ms") == 0)
			o.timeout_ms = num(argv[++i], 1);
		else if (strcmp(a, "--stall-timeout-ms") == 0)
			o.stall_timeout_ms = num(argv[++i], 1);
		else if (strcmp(a, "--seed") == 0)
			o.seed = (unsigned long long)num(argv[++i], 0);
		else
			usage();
	}
	if (o.url == NULL || o.key == NULL || o.out == NULL)
		usage();
	rng_state = o.seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
	if (rng_state == 0)
		rng_state = 1;
	out = fopen(o.out, "w");
	if (out == NULL) {
		perror(o.out);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, o.concurrency);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, o.concurrency);
	t0 = now_s();
	while (done < o.requests) {
		CURLMsg *msg;
		int left;

		while (started < o.requests && started - done < o.concurrency) {
			struct xfer *x = malloc(sizeof(*x));

			if (x == NULL)
				return 2;
			start_one(m, &o, started, x);
			started++;
		}
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct xfer *x;
			long status = 0;
			int whole;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&x);
			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
			whole = msg->data.result == CURLE_OK;
			if (msg->data.result != CURLE_OK)
				curl_err++;
			if (whole && x->stream && status == 200)
				whole = ends_done(x) || ends_error_event(x);
			fprintf(out, "%ld %s %d %s\n", status,
			    x->decision[0] ? x->decision : "-", whole,
			    kind_name[x->kind]);
			if (status >= 0 && status < 600)
				by_status[status]++;
			else
				other_status++;
			kind_n[x->kind]++;
			kind_c[x->kind] += whole;
			complete += whole;
			with_id += x->decision[0] != '\0';
			done++;
			curl_multi_remove_handle(m, x->h);
			curl_easy_cleanup(x->h);
			curl_slist_free_all(x->hdrs);
			free(x->body);
			free(x);
		}
		if (done < o.requests)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	dt = now_s() - t0;
	fclose(out);
	curl_multi_cleanup(m);
	curl_global_cleanup();

	printf("soak: %ld transfers in %.1f s (%.0f/s), %ld complete, %ld with a "
	    "decision id, %ld curl errors\n", done, dt, dt > 0 ? done / dt : 0.0,
	    complete, with_id, curl_err);
	printf("soak: by status:");
	for (int s = 0; s < 600; s++)
		if (by_status[s])
			printf(" %d=%ld", s, by_status[s]);
	if (other_status)
		printf(" other=%ld", other_status);
	printf("\nsoak: by kind (complete/sent):");
	for (int k = 0; k < K_NKINDS; k++)
		if (kind_n[k])
			printf(" %s=%ld/%ld", kind_name[k], kind_c[k], kind_n[k]);
	printf("\n");
	return 0;
}
