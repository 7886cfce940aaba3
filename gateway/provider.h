/*
 * provider.h - provider kinds: for a route and its unsealed credential,
 * the upstream URL and the authentication headers of one request.
 *
 * A kind is a row of a small table (provider.c): its name (the route's
 * `kind:`), and one function that fills a struct gw_prov_req.  Adding a
 * kind adds one file and one row; the request path (the ATTEMPT step, txn_upstream.c)
 * calls gw_provider_prepare() and does not know which kind it used.
 *
 * Credentials pass through here for the length of one call: header
 * text that holds one lives in gw_prov_req.buf, which the caller wipes
 * with gw_prov_req_wipe() as soon as curl has its copy.  Nothing here
 * logs; error texts name the route, never a value.
 *
 * Also here: the pure pieces the kinds are built from and tests use on
 * their own: AWS SigV4 (sigv4.c) and AWS event-stream framing
 * (eventstream.c).
 */
#ifndef GW_PROVIDER_H
#define GW_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/wd.h"
#include "policy/pol.h"
#include "secrets/sec.h"

#define GW_PROV_MAX_HDRS 6

/* What one attempt sends: URL and the kind's own headers. */
struct gw_prov_req {
	char url[2048];
	const char *hdrs[GW_PROV_MAX_HDRS];	/* "Name: value", into buf */
	size_t nhdrs;
	char buf[2048 + SEC_VALUE_MAX];	/* may hold the credential: wipe */
	size_t used;
};

/* The request an attempt is for. */
struct gw_prov_in {
	const struct pol_provider *route;
	const unsigned char *cred;	/* unsealed, borrowed */
	size_t credlen;
	const char *model;
	bool stream;
	const char *body;		/* exactly the bytes that will be sent */
	size_t body_len;
	time_t now;			/* request time, for signatures */
};

/*
 * Fill *out for in.  WD_EINVAL: the credential cannot be used (wrong
 * shape, a newline or NUL in it); WD_ELIMIT: URL or headers too long;
 * WD_EUNSUPPORTED: the route's kind or auth is not built.  *why (static
 * text, no secret) says which.
 */
enum wd_err gw_provider_prepare(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);
void gw_prov_req_wipe(struct gw_prov_req *r);
/* Does the route speak Bedrock Converse (the body and answer are
 * translated, converse.c) rather than OpenAI chat? */
bool gw_provider_converse(const struct pol_provider *p);

/* ---- building blocks for the kinds (provider.c) ---- */

/* Append "Name: value" (value given as bytes) to r; false when it does
 * not fit or value holds CR, LF or NUL. */
bool gw_prov_header(struct gw_prov_req *r, const char *name,
    const void *value, size_t len);
/* base_url + suffix into r->url; false when too long. */
bool gw_prov_url(struct gw_prov_req *r, const char *base, const char *suffix);

/* ---- AWS Signature Version 4 (sigv4.c), pure ---- */

struct gw_sigv4 {
	const char *access_key;
	const unsigned char *secret;
	size_t secret_len;
	const char *region, *service;
	const char *method;		/* "POST" */
	const char *host;		/* as sent in Host: */
	const char *canonical_uri;	/* already encoded per SigV4 */
	const char *canonical_query;	/* sorted, encoded; "" if none */
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ */
	const char *payload_sha256;	/* 64 lowercase hex digits */
	bool sign_content_sha256;	/* sign x-amz-content-sha256 too */
	const char *security_token;	/* temporary credentials: signed as
					 * x-amz-security-token; NULL if none */
};

/* Authorization header value ("AWS4-HMAC-SHA256 Credential=...") into
 * out; WD_ELIMIT when outlen is short. */
enum wd_err gw_sigv4_authorization(const struct gw_sigv4 *s, char *out,
    size_t outlen);
/* SigV4's URI encoding of in (RFC 3986 unreserved kept, and '/' when
 * keep_slash) into out; false when it does not fit. */
bool gw_sigv4_encode(const char *in, size_t len, bool keep_slash, char *out,
    size_t outlen);
/* "YYYYMMDDTHHMMSSZ" for t, UTC. */
void gw_sigv4_date(time_t t, char out[17]);

/* ---- AWS event-stream framing (eventstream.c), pure ---- */

#define GW_ES_MAX_HEADERS 16
#define GW_ES_MAX_MESSAGE (1u << 20)	/* a frame larger is refused */

struct gw_es_header {
	const char *name;		/* into the frame, not NUL-terminated */
	size_t name_len;
	uint8_t type;			/* 7: string (the only one Bedrock uses
					 * for :event-type etc.) */
	const char *value;		/* strings/bytes: into the frame */
	size_t value_len;
};

struct gw_es_message {
	struct gw_es_header headers[GW_ES_MAX_HEADERS];
	size_t nheaders;
	const char *payload;		/* into the frame */
	size_t payload_len;
	size_t frame_len;		/* bytes of input this message used */
};

/*
 * Decode one message from the front of buf.  WD_OK with *complete set:
 * *m filled, pointing into buf; WD_OK with *complete false: not all of
 * it is in yet; WD_EPARSE: a CRC, length or header is wrong (the stream
 * is unusable from here on); WD_ELIMIT: the frame declares more than
 * GW_ES_MAX_MESSAGE or more than GW_ES_MAX_HEADERS headers.
 */
enum wd_err gw_es_decode(const char *buf, size_t len, struct gw_es_message *m,
    bool *complete);
/* The string value of header name, or NULL (and *len 0). */
const char *gw_es_header_str(const struct gw_es_message *m, const char *name,
    size_t *len);
/* Encode one message (string headers only) into out; its length, or 0
 * when outlen is too small.  For tests and the mock. */
size_t gw_es_encode(const char *const *names, const char *const *values,
    size_t nheaders, const char *payload, size_t payload_len, char *out,
    size_t outlen);

/* ---- Bedrock Converse <-> OpenAI chat (converse.c) ---- */

/* chat completions request body -> Converse request body (malloc'd).
 * WD_EINVAL with *why: something Converse cannot be told faithfully. */
enum wd_err gw_converse_request(const char *chat, size_t len, char **out,
    size_t *outlen, const char **why);
/* Converse answer -> chat completion (malloc'd); WD_EPARSE: not one. */
enum wd_err gw_converse_answer(const char *body, size_t len,
    const char *model, const char *id, char **out, size_t *outlen);

#define GW_CONVERSE_MAX_BLOCKS 64
struct gw_converse_stream {
	char *pending;			/* bytes of an incomplete frame */
	size_t npending;
	int tool_of_block[GW_CONVERSE_MAX_BLOCKS];	/* -1: not a tool */
	int ntools;
	bool done;			/* metadata seen: [DONE] was written */
	char model[128], id[72];
};
void gw_converse_stream_init(struct gw_converse_stream *s, const char *model,
    const char *id);
void gw_converse_stream_clear(struct gw_converse_stream *s);
/*
 * converse-stream bytes in, SSE text of chat.completion.chunk events out
 * (*out malloc'd, *outlen; possibly 0 bytes while a frame is partial).
 * WD_EPARSE: a bad frame, an unknown event, bytes after the end;
 * WD_EUPSTREAM: the service sent an exception; WD_ELIMIT: a frame over
 * GW_ES_MAX_MESSAGE.
 */
enum wd_err gw_converse_feed(struct gw_converse_stream *s, const char *data,
    size_t len, char **out, size_t *outlen);

/* ---- Vertex AI service-account tokens ---- */

struct gw_server;

/*
 * An RS256-signed jwt-bearer assertion (jwt.c) for service account iss,
 * audience aud (the token endpoint), valid lifetime_s from now, with
 * the private key given as PEM bytes.  WD_EINVAL: not an RSA private
 * key; WD_ELIMIT: out too small.
 */
enum wd_err gw_jwt_rs256(const unsigned char *pem, size_t pemlen,
    const char *iss, const char *aud, const char *scope, time_t now,
    int lifetime_s, char *out, size_t outlen);
/* The same, signed by sign(arg, digest, sig, *siglen): the SHA-256 of the
 * signing input in, an RS256 signature out (a key inside the TPM). */
enum wd_err gw_jwt_rs256_with(enum wd_err (*sign)(void *arg,
    const unsigned char digest[32], unsigned char *sig, size_t *siglen),
    void *arg,
    const char *iss, const char *aud, const char *scope, time_t now,
    int lifetime_s, char *out, size_t outlen);
/* RS256 with an imported key NAME in the server's TPM (creds.c). */
enum wd_err gw_tpm_sign_rs256(struct gw_server *srv,
    const struct pol_snapshot *snap, const char *name,
    const unsigned char digest[32], unsigned char *sig, size_t *siglen,
    char *err, size_t errlen);

/*
 * The token keeper (vertex_token.c): one thread that holds an access
 * token for each Vertex route of the current policy, fetched from the
 * route's token_url with a fresh signed assertion, and refreshed before
 * it expires.  Workers never wait on it: gw_tokens_get copies what is
 * there.  gw_tokens_start waits (a few seconds at most) for the first
 * round, so a gateway that just started has its tokens.
 */
enum wd_err gw_tokens_start(struct gw_server *srv);
void gw_tokens_stop(void);
/* The current, unexpired token of route into out; false if none. */
bool gw_tokens_get(const char *route_id, char *out, size_t outlen);

#endif /* GW_PROVIDER_H */
