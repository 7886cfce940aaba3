/*
 * vertex_token.c - access tokens for Vertex AI routes, kept fresh by one
 * thread so that no request ever waits on a token endpoint.
 *
 * Why a thread and not the workers' curl multi: a token is shared by
 * every worker and fetched once an hour; a request that found no token
 * would otherwise have to park on someone else's transfer.  The thread
 * wakes every second, and for each Vertex route of the current policy
 * fetches a token when there is none or when the one it has is in its
 * last third (at most 5 minutes before expiry): signs a fresh assertion
 * (jwt.c) with the route's service-account key from the locked
 * credential cache, POSTs it to the route's token_url (its ca_file, a
 * 10 s limit, a 16 KiB answer limit), and keeps access_token and
 * expires_in.  A failed fetch is retried with backoff; an expired token
 * is dropped, so requests fail closed rather than send it.
 *
 * A token, like the credentials it comes from, exists in clear in locked
 * memory only (sec_buf: mlocked, out of core dumps and forks): each
 * route's in a page of its own, and the fetch's working copies (the
 * signed assertion, which buys a token for an hour, the request form,
 * the endpoint's answer, the token taken from it) in the keeper's own
 * pages.  Memory that cannot be locked leaves Vertex routes without a
 * token (refused, and the log says why), never with one in pageable
 * memory.  Tokens are wiped when replaced or dropped; they never reach a
 * log (messages name the route and the HTTP status only).  What is left
 * outside: jansson's copy while the answer is read (wiped at once), and,
 * as for every credential, the request heads that carry it (README,
 * "Limits").
 */
#include "gateway/gw_int.h"
#include "gateway/provider.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_ROUTES 64
#define TOKEN_MAX 2048
#define ANSWER_MAX (16u << 10)
#define SCOPE "https://www.googleapis.com/auth/cloud-platform"

#define JWT_MAX 4096
#define FORM_MAX (JWT_MAX + 128)

struct slot {
	char route[72];
	struct sec_buf tok;		/* TOKEN_MAX locked bytes: "" when none */
	time_t expires, refresh_at, retry_at;
	int backoff_s;
};

struct answer {
	char buf[ANSWER_MAX];
	size_t len;
	bool too_big;
};

/* The keeper thread's working copies, in one locked region. */
struct scratch {
	char token[TOKEN_MAX];
	char jwt[JWT_MAX];
	char form[FORM_MAX];
	struct answer a;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop, first_done;
	struct gw_server *srv;
	struct slot slots[MAX_ROUTES];
	size_t nslots;
	struct sec_buf scratch;		/* struct scratch; the keeper's only */
	bool lock_warned;
} k = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;

	if (a->len + size * n > sizeof(a->buf) - 1) {
		a->too_big = true;
		return 0;
	}
	memcpy(a->buf + a->len, p, size * n);
	a->len += size * n;
	return size * n;
}

/* A key imported into the TPM signs there. */
struct tpm_key {
	struct gw_server *srv;
	const struct pol_snapshot *snap;
	const char *name;
};

static enum wd_err
tpm_sign(void *arg, const unsigned char digest[32], unsigned char *sig,
    size_t *siglen)
{
	const struct tpm_key *tk = arg;
	char err[512];
	enum wd_err rc = gw_tpm_sign_rs256(tk->srv, tk->snap, tk->name, digest,
	    sig, siglen, err, sizeof(err));

	if (rc != WD_OK)
		wd_warn("signing with '%s' in the TPM failed: %s", tk->name, err);
	return rc;
}

/* Fetch a token for p, the assertion signed with the PEM from the
 * credential cache (pem != NULL) or the imported key in the TPM; on
 * success token/expires_in set. */
static bool
fetch(const struct pol_provider *p, const struct pol_snapshot *snap,
    const unsigned char *pem, size_t pemlen, struct scratch *sc,
    long *expires_in)
{
	struct tpm_key tk = { k.srv, snap, p->credential };
	struct answer *a = &sc->a;
	char *jwt = sc->jwt, *form = sc->form, *token = sc->token;
	size_t toklen = sizeof(sc->token);
	CURL *e = NULL;
	long status = 0;
	json_t *j = NULL;
	bool ok = false;
	const char *t;
	enum wd_err rc;
	int n;

	rc = pem != NULL ? gw_jwt_rs256(pem, pemlen, p->service_account,
	    p->token_url, SCOPE, time(NULL), 3600, jwt, JWT_MAX) :
	    gw_jwt_rs256_with(tpm_sign, &tk, p->service_account, p->token_url,
	    SCOPE, time(NULL), 3600, jwt, JWT_MAX);
	if (rc != WD_OK) {
		wd_warn("vertex route '%s': cannot sign the token request (%s)",
		    p->id, wd_strerror(rc));
		goto out;
	}
	n = snprintf(form, FORM_MAX, "grant_type=urn%%3Aietf%%3Aparams%%3A"
	    "oauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s", jwt);
	if (n < 0 || (size_t)n >= FORM_MAX)
		goto out;
	a->len = 0;
	a->too_big = false;
	if ((e = curl_easy_init()) == NULL)
		goto out;
	curl_easy_setopt(e, CURLOPT_URL, p->token_url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (p->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
	if (curl_easy_perform(e) != CURLE_OK) {
		wd_warn("vertex route '%s': token endpoint unreachable%s", p->id,
		    a->too_big ? " (answer too large)" : "");
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		wd_warn("vertex route '%s': token endpoint answered status %ld",
		    p->id, status);
		goto out;
	}
	j = json_loadb(a->buf, a->len, 0, NULL);
	t = json_string_value(json_object_get(j, "access_token"));
	*expires_in = (long)json_integer_value(json_object_get(j, "expires_in"));
	if (t == NULL || strlen(t) == 0 || strlen(t) >= toklen ||
	    !wd_token_sane(t, toklen - 1) || *expires_in <= 0 ||
	    *expires_in > 24 * 3600) {
		wd_warn("vertex route '%s': the token endpoint's answer is not "
		    "a usable token", p->id);
		goto out;
	}
	strcpy(token, t);
	ok = true;
out:
	if (j != NULL) {
		/* The answer held the token: wipe jansson's copy too. */
		const char *jt = json_string_value(json_object_get(j,
		    "access_token"));

		if (jt != NULL)
			wd_wipe((char *)jt, strlen(jt));
		json_decref(j);
	}
	wd_wipe(a->buf, a->len);
	wd_wipe(jwt, JWT_MAX);
	wd_wipe(form, FORM_MAX);
	curl_easy_cleanup(e);
	return ok;
}

/* Memory that could not be locked: said once, as the cause of the
 * refusals that follow. */
static void
lock_failed(const char *route, const char *err)
{
	if (k.lock_warned)
		return;
	k.lock_warned = true;
	wd_warn("vertex route '%s': no access token will be fetched: %s",
	    route, err);
}

/* The route's slot, with its locked page; NULL when there is no room or
 * no locked memory.  k.lock held. */
static struct slot *
slot_for(const char *route)
{
	char err[256];
	struct slot *s;

	for (size_t i = 0; i < k.nslots; i++)
		if (strcmp(k.slots[i].route, route) == 0)
			return &k.slots[i];
	if (k.nslots == MAX_ROUTES)
		return NULL;
	s = &k.slots[k.nslots];
	*s = (struct slot){ 0 };
	if (sec_buf_alloc(&s->tok, TOKEN_MAX, err, sizeof(err)) != WD_OK) {
		lock_failed(route, err);
		return NULL;
	}
	snprintf(s->route, sizeof(s->route), "%s", route);
	k.nslots++;
	return s;
}

static char *
token_of(struct slot *s)
{
	return (char *)s->tok.p;
}

/* The keeper's locked working copies, made at the first Vertex route. */
static struct scratch *
scratch(const char *route)
{
	char err[256];

	if (k.scratch.p == NULL &&
	    sec_buf_alloc(&k.scratch, sizeof(struct scratch), err,
	    sizeof(err)) != WD_OK) {
		lock_failed(route, err);
		return NULL;
	}
	return (struct scratch *)(void *)k.scratch.p;
}

/* One pass over the Vertex routes of the current policy. */
static void
round_once(void)
{
	struct pol_snapshot *snap;
	struct gw_creds *creds;
	time_t now = time(NULL);

	gw_server_acquire(k.srv, &snap, &creds);
	for (size_t i = 0; i < snap->nproviders; i++) {
		const struct pol_provider *p = &snap->providers[i];
		struct scratch *sc;
		const unsigned char *pem;
		size_t pemlen = 0;
		long expires_in = 0;
		struct slot *s;
		bool due, ok;

		if (p->kind == NULL || strcmp(p->kind, "vertex") != 0)
			continue;
		pthread_mutex_lock(&k.lock);
		s = slot_for(p->id);
		if (s != NULL && token_of(s)[0] && now >= s->expires)
			wd_wipe(token_of(s), TOKEN_MAX);	/* fail closed */
		due = s != NULL && (token_of(s)[0] == '\0' ||
		    now >= s->refresh_at) && now >= s->retry_at;
		pthread_mutex_unlock(&k.lock);
		if (!due || (sc = scratch(p->id)) == NULL)
			continue;
		/* Not in the cache: a key imported into the TPM, or nothing
		 * (then signing says so). */
		pem = gw_creds_get(creds, snap, p->credential, &pemlen);
		ok = fetch(p, snap, pem, pemlen, sc, &expires_in);
		pthread_mutex_lock(&k.lock);
		if (ok) {
			wd_wipe(token_of(s), TOKEN_MAX);
			strcpy(token_of(s), sc->token);
			s->expires = now + expires_in;
			/* Refresh in the last third, at most 5 min early. */
			s->refresh_at = s->expires - (expires_in / 3 < 300 ?
			    expires_in / 3 : 300);
			s->backoff_s = 0;
			s->retry_at = 0;
		} else {
			s->backoff_s = s->backoff_s == 0 ? 1 : s->backoff_s * 2 > 30 ?
			    30 : s->backoff_s * 2;
			s->retry_at = now + s->backoff_s;
		}
		pthread_mutex_unlock(&k.lock);
		wd_wipe(sc->token, sizeof(sc->token));
	}
	gw_creds_unref(creds);
	pol_snapshot_unref(snap);
}

static void *
keeper_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec until;

		round_once();
		pthread_mutex_lock(&k.lock);
		if (!k.first_done) {
			k.first_done = true;
			pthread_cond_broadcast(&k.cond);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		if (!k.stop)
			pthread_cond_timedwait(&k.cond, &k.lock, &until);
		if (k.stop) {
			pthread_mutex_unlock(&k.lock);
			return NULL;
		}
		pthread_mutex_unlock(&k.lock);
	}
}

enum wd_err
gw_tokens_start(struct gw_server *srv)
{
	struct pol_snapshot *snap = gw_server_snapshot(srv);
	bool any = false;
	struct timespec until;

	/* Started always (a reload may add Vertex routes), it is idle when
	 * there are none. */
	for (size_t i = 0; i < snap->nproviders; i++)
		any |= snap->providers[i].kind != NULL &&
		    strcmp(snap->providers[i].kind, "vertex") == 0;
	pol_snapshot_unref(snap);
	k.srv = srv;
	k.stop = k.first_done = false;
	if (pthread_create(&k.thread, NULL, keeper_main, NULL) != 0)
		return WD_EIO;
	k.running = true;
	if (!any)
		return WD_OK;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 12;
	pthread_mutex_lock(&k.lock);
	while (!k.first_done)
		if (pthread_cond_timedwait(&k.cond, &k.lock, &until) != 0)
			break;
	pthread_mutex_unlock(&k.lock);
	return WD_OK;
}

void
gw_tokens_stop(void)
{
	if (!k.running)
		return;
	pthread_mutex_lock(&k.lock);
	k.stop = true;
	pthread_cond_broadcast(&k.cond);
	pthread_mutex_unlock(&k.lock);
	pthread_join(k.thread, NULL);
	k.running = false;
	for (size_t i = 0; i < k.nslots; i++)
		sec_buf_free(&k.slots[i].tok);	/* wipes */
	k.nslots = 0;
	sec_buf_free(&k.scratch);
}

bool
gw_tokens_get(const char *route_id, char *out, size_t outlen)
{
	bool ok = false;
	time_t now = time(NULL);

	pthread_mutex_lock(&k.lock);
	for (size_t i = 0; i < k.nslots; i++)
		if (strcmp(k.slots[i].route, route_id) == 0 &&
		    token_of(&k.slots[i])[0] != '\0' &&
		    now < k.slots[i].expires &&
		    strlen(token_of(&k.slots[i])) < outlen) {
			strcpy(out, token_of(&k.slots[i]));
			ok = true;
		}
	pthread_mutex_unlock(&k.lock);
	return ok;
}
