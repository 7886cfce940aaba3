/*
 * mock_cloud.c - a fake cloud LLM endpoint over TLS that VERIFIES the
 * authentication of every request, the way the real services do, for
 * warden's provider kinds (issue 14):
 *
 *   Azure OpenAI   api-key header; /openai/v1/chat/completions or
 *                  /openai/deployments/{dep}/chat/completions?api-version=
 *   Anthropic      x-api-key and anthropic-version; /v1/chat/completions
 *   AWS Bedrock    SigV4 recomputed from the request as received (Host,
 *                  path, x-amz-date, SHA-256 of the body received) with
 *                  the secret; or a Bedrock API key as Bearer;
 *                  /openai/v1/chat/completions
 *   OpenAI         Bearer; /v1/chat/completions
 *   Google OAuth   POST /token: a jwt-bearer grant whose RS256 signature
 *                  is checked with the service account's public key;
 *                  issues short-lived access tokens
 *   Bedrock        /model/{id}/converse and /converse-stream: SigV4 as
 *   Converse       above; answers Converse JSON, or event-stream frames
 *                  ("[[tool NAME]]" in the prompt: a toolUse of NAME)
 *   Vertex AI      Bearer access token issued by /token and not expired;
 *                  /v1/projects/{p}/locations/{l}/endpoints/openapi/
 *                  chat/completions
 *
 * A request whose authentication does not verify gets 401 and nothing
 * else.  A verified one gets an OpenAI chat completion whose content
 * names the kind that verified ("verified azure"), streamed as SSE when
 * the body asks for it.  One JSON line per request goes to --record
 * (path, kind, verdict; never a credential).
 *
 *   mock_cloud --port P --cert CERT --key KEY --keys FILE [--record FILE]
 *              [--token-ttl S]
 *
 * FILE holds "name=value" lines: azure, anthropic, openai, bedrock_key,
 * aws (ACCESS_KEY_ID:SECRET), aws_token (then required and signed),
 * aws_region, sa_email, sa_pubkey (a PEM
 * file path), token_url (the aud a JWT must name).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "gateway/provider.h"

#define MAX_TOKENS 64

struct token {
	char value[80];
	time_t expires;
};

struct mock {
	SSL_CTX *ssl;
	FILE *record;
	char azure[256], anthropic[256], openai[256], bedrock_key[256];
	char aws[512], aws_region[64], sa_email[256], token_url[512];
	char aws_token[1024];		/* temporary credentials' session token */
	EVP_PKEY *sa_pub;
	int token_ttl;
	struct token tokens[MAX_TOKENS];
	size_t ntokens;
	unsigned long seq;
};

static bool
ct_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0 && la > 0;
}

static void
record(struct mock *m, const char *path, const char *kind, const char *verdict)
{
	json_t *o;
	char *s;

	if (m->record == NULL)
		return;
	o = json_pack("{s:i,s:s,s:s,s:s}", "seq", (int)m->seq, "path", path,
	    "kind", kind, "verdict", verdict);
	s = json_dumps(o, JSON_COMPACT);
	fprintf(m->record, "%s\n", s);
	fflush(m->record);
	free(s);
	json_decref(o);
}

static void
refuse(struct mock *m, struct evhttp_request *req, const char *path,
    const char *kind, const char *why)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "message", why, "type",
	    "authentication_error");
	char *s = json_dumps(o, JSON_COMPACT);

	record(m, path, kind, why);
	evbuffer_add_printf(b, "%s", s);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	evhttp_send_reply(req, 401, "Unauthorized", b);
	evbuffer_free(b);
	free(s);
	json_decref(o);
}

static void
answer(struct mock *m, struct evhttp_request *req, const char *path,
    const char *kind, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *model = json_string_value(json_object_get(j, "model"));
	bool stream = json_is_true(json_object_get(j, "stream"));
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	record(m, path, kind, "ok");
	if (model == NULL)
		model = "unknown";
	if (stream) {
		evhttp_add_header(oh, "Content-Type", "text/event-stream");
		evbuffer_add_printf(b, "data: {\"id\":\"mc-%lu\",\"object\":"
		    "\"chat.completion.chunk\",\"created\":1,\"model\":\"%s\","
		    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
		    "\"content\":\"verified %s\"},\"finish_reason\":null}]}\n\n"
		    "data: {\"id\":\"mc-%lu\",\"object\":\"chat.completion.chunk\","
		    "\"created\":1,\"model\":\"%s\",\"choices\":[{\"index\":0,"
		    "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
		    m->seq, model, kind, m->seq, model);
	} else {
		evhttp_add_header(oh, "Content-Type", "application/json");
		evbuffer_add_printf(b, "{\"id\":\"mc-%lu\",\"object\":"
		    "\"chat.completion\",\"created\":1,\"model\":\"%s\",\"choices\":"
		    "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
		    "\"verified %s\"},\"finish_reason\":\"stop\"}],\"usage\":"
		    "{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":"
		    "5}}", m->seq, model, kind);
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	json_decref(j);
}

/* ---- SigV4, recomputed from the request as it arrived ---- */

/* "Credential=AKID/DATE/REGION/SERVICE/aws4_request" etc. out of the
 * Authorization header: field value up to ',' or end. */
static bool
auth_field(const char *h, const char *name, char *out, size_t outlen)
{
	const char *p = strstr(h, name), *end;
	size_t n;

	if (p == NULL)
		return false;
	p += strlen(name);
	end = p + strcspn(p, ",");
	n = (size_t)(end - p);
	if (n == 0 || n >= outlen)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

static const char *
verify_sigv4(struct mock *m, struct evhttp_request *req, const char *auth,
    const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(h, "Host");
	const char *date = evhttp_find_header(h, "X-Amz-Date");
	const char *sha = evhttp_find_header(h, "X-Amz-Content-Sha256");
	const char *uri = evhttp_request_get_uri(req);
	char cred[300], signed_h[128], sig[80], want_cred[300], path[1024];
	char curi[2048], hex[65], mine[512], *colon, *q;
	unsigned char d[32];
	struct gw_sigv4 s;
	struct tm tm;
	time_t t;

	if (host == NULL || date == NULL || sha == NULL || strlen(date) != 16)
		return "SigV4: Host, X-Amz-Date and X-Amz-Content-Sha256 required";
	if (!auth_field(auth, "Credential=", cred, sizeof(cred)) ||
	    !auth_field(auth, "SignedHeaders=", signed_h, sizeof(signed_h)) ||
	    !auth_field(auth, "Signature=", sig, sizeof(sig)))
		return "SigV4: malformed Authorization";
	colon = strchr(m->aws, ':');
	if (colon == NULL)
		return "SigV4: mock has no aws credential";
	snprintf(want_cred, sizeof(want_cred), "%.*s/%.8s/%s/bedrock/"
	    "aws4_request", (int)(colon - m->aws), m->aws, date, m->aws_region);
	if (strcmp(cred, want_cred) != 0)
		return "SigV4: credential scope (key id, date, region, service) "
		    "does not match";
	if (m->aws_token[0] != '\0') {
		const char *tok = evhttp_find_header(h, "X-Amz-Security-Token");

		if (tok == NULL || !ct_eq(tok, m->aws_token))
			return "SigV4: session token missing or wrong";
		if (strcmp(signed_h, "host;x-amz-content-sha256;x-amz-date;"
		    "x-amz-security-token") != 0)
			return "SigV4: the session token is not signed";
	} else if (strcmp(signed_h, "host;x-amz-content-sha256;x-amz-date") != 0)
		return "SigV4: unexpected SignedHeaders";
	memset(&tm, 0, sizeof(tm));
	if (strptime(date, "%Y%m%dT%H%M%SZ", &tm) == NULL)
		return "SigV4: bad X-Amz-Date";
	t = timegm(&tm);
	if (t < time(NULL) - 300 || t > time(NULL) + 300)
		return "SigV4: request time too far from now";
	SHA256((const unsigned char *)body, len, d);
	wd_hex(d, 32, hex);
	if (strcmp(hex, sha) != 0)
		return "SigV4: body hash does not match the body";
	snprintf(path, sizeof(path), "%s", uri);
	if ((q = strchr(path, '?')) != NULL)
		*q = '\0';
	/* Non-S3 services: the path as sent, encoded once more. */
	if (!gw_sigv4_encode(path, strlen(path), true, curi, sizeof(curi)))
		return "SigV4: path too long";
	memset(&s, 0, sizeof(s));
	s.access_key = "";
	s.secret = (const unsigned char *)colon + 1;
	s.secret_len = strlen(colon + 1);
	s.region = m->aws_region;
	s.service = "bedrock";
	s.method = "POST";
	s.host = host;
	s.canonical_uri = curi;
	s.canonical_query = q != NULL ? q + 1 : "";
	s.amz_date = date;
	s.payload_sha256 = sha;
	s.sign_content_sha256 = true;
	s.security_token = m->aws_token[0] ? m->aws_token : NULL;
	if (gw_sigv4_authorization(&s, mine, sizeof(mine)) != WD_OK)
		return "SigV4: cannot compute";
	if (!ct_eq(strstr(mine, "Signature=") + 10, sig))
		return "SigV4: signature does not match";
	return NULL;
}

/* ---- OAuth jwt-bearer and access tokens ---- */

static size_t
b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	char buf[8192] = "";
	size_t n = 0;
	int r;

	if (len + 4 > sizeof(buf))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9')))
			return 0;
		buf[n++] = c;
	}
	while (n % 4)
		buf[n++] = '=';
	if (n / 4 * 3 > outlen)
		return 0;
	r = EVP_DecodeBlock(out, (const unsigned char *)buf, (int)n);
	if (r < 0)
		return 0;
	while (n > 0 && buf[n - 1] == '=') {
		n--;
		r--;
	}
	return (size_t)r;
}

static const char *
verify_jwt(struct mock *m, const char *jwt)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char hdr[1024], pay[4096], sig[1024];
	size_t hl, pl, sl;
	json_t *h = NULL, *p = NULL;
	const char *why = NULL;
	EVP_MD_CTX *ctx;
	json_int_t iat, exp;
	time_t now = time(NULL);

	if (m->sa_pub == NULL)
		return "token: mock has no service account key";
	if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL)
		return "token: assertion is not a JWT";
	hl = b64url_decode(jwt, (size_t)(d1 - jwt), hdr, sizeof(hdr) - 1);
	pl = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pay, sizeof(pay) - 1);
	sl = b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig));
	if (hl == 0 || pl == 0 || sl == 0)
		return "token: bad base64url";
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
	    m->sa_pub) != 1 || EVP_DigestVerify(ctx, sig, sl,
	    (const unsigned char *)jwt, (size_t)(d2 - jwt)) != 1) {
		EVP_MD_CTX_free(ctx);
		return "token: JWT signature does not verify with the service "
		    "account's public key";
	}
	EVP_MD_CTX_free(ctx);
	h = json_loadb((const char *)hdr, hl, 0, NULL);
	p = json_loadb((const char *)pay, pl, 0, NULL);
	if (!json_is_string(json_object_get(h, "alg")) ||
	    strcmp(json_string_value(json_object_get(h, "alg")), "RS256") != 0)
		why = "token: alg is not RS256";
	else if (!json_is_string(json_object_get(p, "iss")) ||
	    strcmp(json_string_value(json_object_get(p, "iss")), m->sa_email))
		why = "token: iss is not the service account";
	else if (!json_is_string(json_object_get(p, "aud")) ||
	    strcmp(json_string_value(json_object_get(p, "aud")), m->token_url))
		why = "token: aud is not the token endpoint";
	else if (!json_is_string(json_object_get(p, "scope")))
		why = "token: no scope";
	else if (!json_is_integer(json_object_get(p, "iat")) ||
	    !json_is_integer(json_object_get(p, "exp")))
		why = "token: iat/exp missing";
	else {
		iat = json_integer_value(json_object_get(p, "iat"));
		exp = json_integer_value(json_object_get(p, "exp"));
		if (exp <= now || iat > now + 60 || exp - iat > 3600)
			why = "token: JWT expired or too long-lived";
	}
	json_decref(h);
	json_decref(p);
	return why;
}

/* application/x-www-form-urlencoded value of key (no decoding: the
 * values this endpoint takes have nothing to decode but ':'). */
static char *
form_value(const char *body, size_t len, const char *key)
{
	char *copy = strndup(body, len), *save = NULL, *out = NULL;

	for (char *kv = strtok_r(copy, "&", &save); kv != NULL;
	    kv = strtok_r(NULL, "&", &save))
		if (strncmp(kv, key, strlen(key)) == 0 && kv[strlen(key)] == '=')
			out = evhttp_uridecode(kv + strlen(key) + 1, 1, NULL);
	free(copy);
	return out;
}

static void
token_endpoint(struct mock *m, struct evhttp_request *req, const char *body,
    size_t len)
{
	char *grant = form_value(body, len, "grant_type");
	char *jwt = form_value(body, len, "assertion");
	const char *why = NULL;
	struct evbuffer *b;
	unsigned char rnd[16];
	struct token *tk;

	if (grant == NULL || strcmp(grant,
	    "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0)
		why = "token: grant_type is not jwt-bearer";
	else if (jwt == NULL)
		why = "token: no assertion";
	else
		why = verify_jwt(m, jwt);
	free(grant);
	free(jwt);
	if (why != NULL) {
		refuse(m, req, "/token", "google-oauth", why);
		return;
	}
	tk = &m->tokens[m->ntokens++ % MAX_TOKENS];
	RAND_bytes(rnd, sizeof(rnd));
	memcpy(tk->value, "ya29.mock-", 10);
	wd_hex(rnd, sizeof(rnd), tk->value + 10);
	tk->expires = time(NULL) + m->token_ttl;
	record(m, "/token", "google-oauth", "ok");
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"access_token\":\"%s\",\"expires_in\":%d,"
	    "\"token_type\":\"Bearer\"}", tk->value, m->token_ttl);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static bool
token_valid(struct mock *m, const char *tok)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < MAX_TOKENS && i < m->ntokens; i++)
		if (m->tokens[i].value[0] && ct_eq(m->tokens[i].value, tok))
			return m->tokens[i].expires > now;
	return false;
}

/* ---- Bedrock Converse ---- */

/* "[[tool NAME]]" in the request's text: answer with a call of NAME. */
static bool
wanted_tool(json_t *req, char *name, size_t len)
{
	json_t *m, *c;
	size_t i, j;

	json_array_foreach(json_object_get(req, "messages"), i, m)
		json_array_foreach(json_object_get(m, "content"), j, c) {
			const char *t = json_string_value(json_object_get(c, "text"));
			const char *at = t ? strstr(t, "[[tool ") : NULL;

			if (at != NULL) {
				size_t n = strcspn(at + 7, "]");

				snprintf(name, len, "%.*s", (int)n, at + 7);
				return true;
			}
		}
	return false;
}

static void
frame(struct evbuffer *b, const char *mtype, const char *etype,
    const char *payload)
{
	const char *names[] = { ":event-type", ":content-type", ":message-type" };
	const char *values[] = { etype, "application/json", mtype };
	char buf[4096];
	size_t n;

	if (strcmp(mtype, "exception") == 0)
		names[0] = ":exception-type";
	n = gw_es_encode(names, values, 3, payload, strlen(payload), buf,
	    sizeof(buf));
	evbuffer_add(b, buf, n);
}

static void
converse(struct mock *m, struct evhttp_request *req, const char *path,
    const char *body, size_t len)
{
	json_t *j = json_loadb(body, len, 0, NULL), *msg;
	bool stream = strstr(path, "/converse-stream") != NULL;
	struct evbuffer *b = evbuffer_new();
	char tool[64], p[512];
	size_t i;
	bool ok = json_is_array(json_object_get(j, "messages")) &&
	    json_array_size(json_object_get(j, "messages")) > 0 &&
	    json_object_get(j, "model") == NULL;

	/* Converse's own shape: every message a role and content blocks. */
	json_array_foreach(json_object_get(j, "messages"), i, msg)
		ok &= json_is_string(json_object_get(msg, "role")) &&
		    json_is_array(json_object_get(msg, "content"));
	if (!ok) {
		record(m, path, "bedrock-converse", "not a Converse request");
		evbuffer_add_printf(b, "{\"message\":\"malformed input\"}");
		evhttp_send_reply(req, 400, "Bad Request", b);
		evbuffer_free(b);
		json_decref(j);
		return;
	}
	record(m, path, "bedrock-converse", "ok");
	if (!stream) {
		if (wanted_tool(j, tool, sizeof(tool)))
			evbuffer_add_printf(b, "{\"output\":{\"message\":{\"role\":"
			    "\"assistant\",\"content\":[{\"toolUse\":{\"toolUseId\":"
			    "\"tu-1\",\"name\":\"%s\",\"input\":{\"q\":\"x\"}}}]}},"
			    "\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":3,"
			    "\"outputTokens\":4,\"totalTokens\":7}}", tool);
		else
			evbuffer_add_printf(b, "{\"output\":{\"message\":{\"role\":"
			    "\"assistant\",\"content\":[{\"text\":\"verified "
			    "bedrock-converse\"}]}},\"stopReason\":\"end_turn\","
			    "\"usage\":{\"inputTokens\":3,\"outputTokens\":2,"
			    "\"totalTokens\":5}}");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/json");
	} else {
		frame(b, "event", "messageStart", "{\"role\":\"assistant\"}");
		frame(b, "event", "contentBlockDelta", "{\"contentBlockIndex\":0,"
		    "\"delta\":{\"text\":\"verified \"}}");
		frame(b, "event", "contentBlockDelta", "{\"contentBlockIndex\":0,"
		    "\"delta\":{\"text\":\"bedrock-converse-stream\"}}");
		frame(b, "event", "contentBlockStop", "{\"contentBlockIndex\":0}");
		if (wanted_tool(j, tool, sizeof(tool))) {
			snprintf(p, sizeof(p), "{\"contentBlockIndex\":1,\"start\":"
			    "{\"toolUse\":{\"toolUseId\":\"tu-1\",\"name\":\"%s\"}}}",
			    tool);
			frame(b, "event", "contentBlockStart", p);
			frame(b, "event", "contentBlockDelta", "{\"contentBlockIndex\":"
			    "1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"q\\\":\"}}}");
			frame(b, "event", "contentBlockDelta", "{\"contentBlockIndex\":"
			    "1,\"delta\":{\"toolUse\":{\"input\":\"\\\"x\\\"}\"}}}");
			frame(b, "event", "contentBlockStop",
			    "{\"contentBlockIndex\":1}");
			frame(b, "event", "messageStop", "{\"stopReason\":\"tool_use\"}");
		} else
			frame(b, "event", "messageStop", "{\"stopReason\":\"end_turn\"}");
		frame(b, "event", "metadata", "{\"usage\":{\"inputTokens\":3,"
		    "\"outputTokens\":2,\"totalTokens\":5},\"metrics\":"
		    "{\"latencyMs\":1}}");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/vnd.amazon.eventstream");
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	json_decref(j);
}

/* ---- dispatch ---- */

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct mock *m = arg;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *uri = evhttp_request_get_uri(req);
	char path[1024], *q;
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	const char *auth = evhttp_find_header(h, "Authorization");
	const char *apikey = evhttp_find_header(h, "api-key");
	const char *xkey = evhttp_find_header(h, "x-api-key");
	const char *why;

	m->seq++;
	snprintf(path, sizeof(path), "%s", uri);
	if ((q = strchr(path, '?')) != NULL)
		*q = '\0';
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		refuse(m, req, path, "none", "POST only");
		return;
	}
	if (strcmp(path, "/token") == 0) {
		token_endpoint(m, req, body, len);
		return;
	}
	if (strncmp(path, "/openai/deployments/", 20) == 0) {
		/* Azure classic: api-key and an api-version. */
		if (q == NULL || strstr(q + 1, "api-version=") == NULL)
			refuse(m, req, path, "azure", "azure: api-version missing");
		else if (apikey == NULL || !ct_eq(apikey, m->azure))
			refuse(m, req, path, "azure", "azure: api-key wrong");
		else
			answer(m, req, path, "azure-deployment", body, len);
		return;
	}
	if (strcmp(path, "/openai/v1/chat/completions") == 0) {
		if (apikey != NULL) {
			if (!ct_eq(apikey, m->azure))
				refuse(m, req, path, "azure", "azure: api-key wrong");
			else
				answer(m, req, path, "azure", body, len);
		} else if (auth != NULL && strncmp(auth, "AWS4-HMAC-SHA256 ", 17)
		    == 0) {
			if ((why = verify_sigv4(m, req, auth, body, len)) != NULL)
				refuse(m, req, path, "bedrock", why);
			else
				answer(m, req, path, "bedrock-sigv4", body, len);
		} else if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0 &&
		    ct_eq(auth + 7, m->bedrock_key))
			answer(m, req, path, "bedrock-key", body, len);
		else
			refuse(m, req, path, "bedrock", "no valid authentication");
		return;
	}
	if (strcmp(path, "/v1/chat/completions") == 0) {
		if (xkey != NULL) {
			if (!ct_eq(xkey, m->anthropic))
				refuse(m, req, path, "anthropic", "anthropic: x-api-key "
				    "wrong");
			else if (evhttp_find_header(h, "anthropic-version") == NULL)
				refuse(m, req, path, "anthropic", "anthropic: "
				    "anthropic-version missing");
			else
				answer(m, req, path, "anthropic", body, len);
		} else if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0 &&
		    ct_eq(auth + 7, m->openai))
			answer(m, req, path, "openai", body, len);
		else
			refuse(m, req, path, "openai", "openai: bearer wrong");
		return;
	}
	if (strncmp(path, "/model/", 7) == 0 && (strstr(path, "/converse") !=
	    NULL)) {
		if (auth == NULL || strncmp(auth, "AWS4-HMAC-SHA256 ", 17) != 0)
			refuse(m, req, path, "bedrock", "converse: SigV4 required");
		else if ((why = verify_sigv4(m, req, auth, body, len)) != NULL)
			refuse(m, req, path, "bedrock", why);
		else
			converse(m, req, path, body, len);
		return;
	}
	if (strncmp(path, "/v1/projects/", 13) == 0 && strstr(path,
	    "/endpoints/openapi/chat/completions") != NULL) {
		if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
		    !token_valid(m, auth + 7))
			refuse(m, req, path, "vertex", "vertex: access token "
			    "missing, unknown or expired");
		else
			answer(m, req, path, "vertex", body, len);
		return;
	}
	refuse(m, req, path, "none", "unknown path");
}

static struct bufferevent *
bevcb(struct event_base *base, void *arg)
{
	struct mock *m = arg;

	return bufferevent_openssl_socket_new(base, -1, SSL_new(m->ssl),
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static void
load_keys(struct mock *m, const char *file)
{
	FILE *f = fopen(file, "r");
	char line[1024];

	if (f == NULL) {
		perror(file);
		exit(2);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '='), *v;

		line[strcspn(line, "\n")] = '\0';
		if (eq == NULL)
			continue;
		*eq = '\0';
		v = eq + 1;
#define KEY(k) if (strcmp(line, #k) == 0) snprintf(m->k, sizeof(m->k), "%s", v)
		KEY(azure);
		KEY(anthropic);
		KEY(openai);
		KEY(bedrock_key);
		KEY(aws);
		KEY(aws_region);
		KEY(aws_token);
		KEY(sa_email);
		KEY(token_url);
#undef KEY
		if (strcmp(line, "sa_pubkey") == 0) {
			FILE *pf = fopen(v, "r");

			if (pf == NULL || (m->sa_pub = PEM_read_PUBKEY(pf, NULL, NULL,
			    NULL)) == NULL) {
				fprintf(stderr, "mock_cloud: cannot read %s\n", v);
				exit(2);
			}
			fclose(pf);
		}
	}
	fclose(f);
}

int
main(int argc, char **argv)
{
	static struct mock m;
	const char *cert = NULL, *key = NULL, *keys = NULL, *rec = NULL;
	struct event_base *base;
	struct evhttp *http;
	int port = 0;

	m.token_ttl = 3600;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--cert") == 0)
			cert = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			key = argv[i + 1];
		else if (strcmp(argv[i], "--keys") == 0)
			keys = argv[i + 1];
		else if (strcmp(argv[i], "--record") == 0)
			rec = argv[i + 1];
		else if (strcmp(argv[i], "--token-ttl") == 0)
			m.token_ttl = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "mock_cloud: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (port <= 0 || cert == NULL || key == NULL || keys == NULL) {
		fprintf(stderr, "usage: mock_cloud --port P --cert F --key F "
		    "--keys F [--record F] [--token-ttl S]\n");
		return 2;
	}
	load_keys(&m, keys);
	if (rec != NULL && (m.record = fopen(rec, "a")) == NULL) {
		perror(rec);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	m.ssl = SSL_CTX_new(TLS_server_method());
	if (m.ssl == NULL || SSL_CTX_use_certificate_chain_file(m.ssl, cert) != 1
	    || SSL_CTX_use_PrivateKey_file(m.ssl, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 2;
	}
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_bevcb(http, bevcb, &m);
	evhttp_set_gencb(http, on_request, &m);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
		fprintf(stderr, "mock_cloud: cannot bind 127.0.0.1:%d\n", port);
		return 2;
	}
	printf("mock_cloud listening on 127.0.0.1:%d (TLS)\n", port);
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}
