/*
 * provider_bedrock.c - AWS Bedrock, on one of two APIs:
 *   bedrock_api: openai    its OpenAI-compatible path (base_url
 *                 https://bedrock-runtime.REGION.amazonaws.com/openai/v1
 *                 + /chat/completions), the chat body as it is;
 *   bedrock_api: converse  the Converse API (base_url https://bedrock-
 *                 runtime.REGION.amazonaws.com + /model/{id}/converse or
 *                 /converse-stream), the body translated by converse.c
 *                 before it gets here (what is signed is what is sent);
 * authenticated one of two ways:
 *   auth: sigv4   the sealed credential is "ACCESS_KEY_ID:SECRET", or
 *                 "ACCESS_KEY_ID:SECRET:SESSION_TOKEN" for temporary
 *                 credentials (sent and signed as x-amz-security-token); each
 *                 request is signed (SigV4, service and region from the
 *                 route) over host, x-amz-date and the SHA-256 of the
 *                 exact body sent;
 *   auth: bearer  a Bedrock API key, as Bearer.
 * The Host header is sent explicitly, so what is signed is what curl
 * sends.
 */
#include "gateway/provider_int.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* Split "scheme://authority/path" into host (authority) and path. */
static bool
split_url(const char *url, char *host, size_t hostlen, const char **path)
{
	const char *a = strstr(url, "://"), *slash;
	size_t n;

	if (a == NULL)
		return false;
	a += 3;
	slash = strchr(a, '/');
	n = slash ? (size_t)(slash - a) : strlen(a);
	if (n == 0 || n >= hostlen || memchr(a, '?', n) || memchr(a, '@', n))
		return false;
	memcpy(host, a, n);
	host[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (host[i] >= 'A' && host[i] <= 'Z')
			host[i] = (char)(host[i] - 'A' + 'a');
	*path = slash ? slash : "/";
	return strchr(*path, '?') == NULL && strchr(*path, '#') == NULL;
}

static enum wd_err
sign(const struct gw_prov_in *in, struct gw_prov_req *out, const char **why)
{
	const struct pol_provider *p = in->route;
	const char *colon = memchr(in->cred, ':', in->credlen), *path, *colon2;
	/* The session token, if any, goes into a header: on the stack,
	 * wiped before return. */
	char token[2048];
	size_t secret_len, token_len = 0;
	char host[256], curi[2048], akid[129], date[17], hex[65], auth[512];
	unsigned char digest[32];
	struct gw_sigv4 s;
	size_t akid_len;
	enum wd_err rc;

	akid_len = colon ? (size_t)(colon - (const char *)in->cred) : 0;
	if (colon == NULL || akid_len == 0 || akid_len >= sizeof(akid) ||
	    akid_len + 1 == in->credlen) {
		*why = "the credential for this route is not ACCESS_KEY_ID:SECRET";
		return WD_EINVAL;
	}
	memcpy(akid, in->cred, akid_len);
	akid[akid_len] = '\0';
	colon2 = memchr(colon + 1, ':', in->credlen - akid_len - 1);
	secret_len = colon2 ? (size_t)(colon2 - colon - 1) :
	    in->credlen - akid_len - 1;
	if (colon2 != NULL) {
		token_len = in->credlen - (size_t)(colon2 + 1 -
		    (const char *)in->cred);
		if (token_len == 0 || token_len >= sizeof(token) ||
		    secret_len == 0) {
			*why = "the credential for this route is not "
			    "ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]";
			return WD_EINVAL;
		}
		memcpy(token, colon2 + 1, token_len);
		token[token_len] = '\0';
		if (strlen(token) != token_len) {
			wd_wipe(token, token_len);
			*why = GW_PROV_WHY_CRED;
			return WD_EINVAL;
		}
	}
	if (!wd_token_sane(akid, sizeof(akid) - 1)) {
		*why = "the credential for this route is not ACCESS_KEY_ID:SECRET";
		return WD_EINVAL;
	}
	if (!split_url(out->url, host, sizeof(host), &path) ||
	    !gw_sigv4_encode(path, strlen(path), true, curi, sizeof(curi))) {
		*why = GW_PROV_WHY_URL;
		return WD_ELIMIT;
	}
	SHA256((const unsigned char *)in->body, in->body_len, digest);
	wd_hex(digest, 32, hex);
	gw_sigv4_date(in->now, date);
	memset(&s, 0, sizeof(s));
	s.access_key = akid;
	s.secret = in->cred + akid_len + 1;
	s.secret_len = secret_len;
	s.security_token = token_len > 0 ? token : NULL;
	s.region = p->region;
	s.service = p->service ? p->service : "bedrock";
	s.method = "POST";
	s.host = host;
	s.canonical_uri = curi;
	s.canonical_query = "";
	s.amz_date = date;
	s.payload_sha256 = hex;
	s.sign_content_sha256 = true;
	rc = gw_sigv4_authorization(&s, auth, sizeof(auth));
	if (rc != WD_OK)
		*why = "the request cannot be signed";
	else if (!gw_prov_header(out, "Host", host, strlen(host)) ||
	    !gw_prov_header(out, "X-Amz-Date", date, 16) ||
	    !gw_prov_header(out, "X-Amz-Content-Sha256", hex, 64) ||
	    (token_len > 0 && !gw_prov_header(out, "X-Amz-Security-Token",
	    token, token_len)) ||
	    !gw_prov_header(out, "Authorization", auth, strlen(auth))) {
		*why = GW_PROV_WHY_CRED;
		rc = WD_EINVAL;
	}
	wd_wipe(token, token_len);
	return rc;
}

bool
gw_provider_converse(const struct pol_provider *p)
{
	return p->kind != NULL && strcmp(p->kind, "bedrock") == 0 &&
	    p->bedrock_api != NULL && strcmp(p->bedrock_api, "converse") == 0;
}

enum wd_err
gw_kind_bedrock(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	const struct pol_provider *p = in->route;

	if (gw_provider_converse(p)) {
		char model[512], suffix[600];

		/* The model id (with its ':') is one path segment. */
		if (!gw_sigv4_encode(in->model, strlen(in->model), false, model,
		    sizeof(model)) || (size_t)snprintf(suffix, sizeof(suffix),
		    "/model/%s/%s", model, in->stream ? "converse-stream" :
		    "converse") >= sizeof(suffix) ||
		    !gw_prov_url(out, p->base_url, suffix)) {
			*why = GW_PROV_WHY_URL;
			return WD_ELIMIT;
		}
	} else if (!gw_prov_url(out, p->base_url, "/chat/completions")) {
		*why = GW_PROV_WHY_URL;
		return WD_ELIMIT;
	}
	if (p->auth != NULL && strcmp(p->auth, "bearer") == 0)
		return gw_prov_bearer(in, out, why);
	if (p->region == NULL) {
		*why = "SigV4 needs the route's region";
		return WD_EINVAL;
	}
	return sign(in, out, why);
}
