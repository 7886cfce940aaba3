/*
 * auth_any.c - the caller's virtual key wherever its client sends it:
 * OpenAI clients in `Authorization: Bearer KEY`, Anthropic clients (Claude
 * Code, @anthropic-ai/sdk) in `x-api-key: KEY`.  One request names one
 * key: both headers with different keys, or either header twice, is no
 * key at all (401), never a choice warden makes for the caller.
 */
#include "gateway/gw_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t
count_header(const struct gw_http_req *req, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nhdrs; i++)
		n += strcasecmp(req->hdrs[i].name, name) == 0;
	return n;
}

bool
gw_auth_bearer_digest(const char *authorization, unsigned char digest[32])
{
	const char *key;

	if (authorization == NULL ||
	    strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	key = authorization + 7;
	while (*key == ' ')
		key++;
	if (*key == '\0' || strlen(key) > 512)
		return false;
	wd_sha256(key, strlen(key), digest);
	return true;
}

void
gw_keymemo_clear(struct gw_keymemo *m)
{
	if (m->key != NULL) {
		wd_wipe(m->key, m->len);
		free(m->key);
	}
	wd_wipe(m, sizeof(*m));
}

/* gw_auth_bearer_digest, unless memo holds this very header value. */
static bool
bearer_digest_memo(const char *authorization, unsigned char digest[32],
    struct gw_keymemo *memo)
{
	size_t n = authorization != NULL ? strlen(authorization) : 0;

	if (memo != NULL && memo->key != NULL && memo->len == n &&
	    wd_ct_equal(memo->key, authorization, n)) {
		memcpy(digest, memo->digest, sizeof(memo->digest));
		return true;
	}
	if (!gw_auth_bearer_digest(authorization, digest))
		return false;
	if (memo != NULL) {
		gw_keymemo_clear(memo);
		if ((memo->key = malloc(n)) != NULL) {
			memcpy(memo->key, authorization, n);
			memo->len = n;
			memcpy(memo->digest, digest, sizeof(memo->digest));
		}
	}
	return true;
}

bool
gw_auth_key_digest(const struct gw_http_req *req, unsigned char digest[32],
    struct gw_keymemo *memo)
{
	const char *bearer = gw_http_header(req, "authorization");
	const char *xkey = gw_http_header(req, "x-api-key");
	char buf[512];
	bool ok;

	if (count_header(req, "authorization") > 1 ||
	    count_header(req, "x-api-key") > 1)
		return false;
	if (xkey == NULL)
		return bearer_digest_memo(bearer, digest, memo);
	ok = (size_t)snprintf(buf, sizeof(buf), "Bearer %s", xkey) <
	    sizeof(buf) && (bearer == NULL || strcmp(bearer, buf) == 0) &&
	    bearer_digest_memo(buf, digest, memo);
	wd_wipe(buf, sizeof(buf));	/* the key, in clear */
	return ok;
}

const struct pol_tenant *
gw_auth_digest(const struct pol_snapshot *snap, const unsigned char digest[32],
    struct pol_caller *caller)
{
	struct pol_caller scratch;

	if (caller == NULL)
		caller = &scratch;
	memset(caller, 0, sizeof(*caller));
	/* Only digests are stored; the lookup compares digests in constant
	 * time, so timing says nothing about the key itself. */
	pol_find_caller(snap, digest, caller);
	return caller->tenant;
}

const struct pol_tenant *
gw_auth_request(const struct pol_snapshot *snap, const struct gw_http_req *req,
    struct pol_caller *caller)
{
	unsigned char digest[32];
	const struct pol_tenant *t;

	if (caller != NULL)
		memset(caller, 0, sizeof(*caller));
	if (!gw_auth_key_digest(req, digest, NULL))
		return NULL;
	t = gw_auth_digest(snap, digest, caller);
	wd_wipe(digest, sizeof(digest));
	return t;
}

/* Anthropic's model list: {data:[{type,id,display_name,created_at}],
 * has_more, first_id, last_id}. */
json_t *
gw_models_anthropic(const char *const *ids, size_t n)
{
	json_t *data = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(data, json_pack("{s:s,s:s,s:s,s:s}", "type",
		    "model", "id", ids[i], "display_name", ids[i], "created_at",
		    "1970-01-01T00:00:00Z"));
	return json_pack("{s:o,s:b,s:s?,s:s?}", "data", data, "has_more", 0,
	    "first_id", n > 0 ? ids[0] : NULL, "last_id", n > 0 ? ids[n - 1] :
	    NULL);
}
