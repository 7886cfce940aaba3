/*
 * sigv4.c - AWS Signature Version 4 for one request: canonical request,
 * string to sign, the derived signing key and the Authorization value.
 * Pure (OpenSSL's HMAC-SHA256 and SHA-256 only); the Bedrock kind and
 * the cloud mock both use it, and a unit test holds it to AWS's
 * published get-vanilla vector.
 *
 * The derived key and intermediate HMACs are secrets: they live on the
 * stack and are wiped before return.
 */
#include "gateway/provider.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static bool
hmac(const void *key, size_t keylen, const char *msg, size_t msglen,
    unsigned char out[32])
{
	unsigned int n = 32;

	return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
	    msglen, out, &n) != NULL && n == 32;
}

void
gw_sigv4_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

bool
gw_sigv4_encode(const char *in, size_t len, bool keep_slash, char *out,
    size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		    c == '~' || (keep_slash && c == '/')) {
			if (o + 1 >= outlen)
				return false;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				return false;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= outlen)
		return false;
	out[o] = '\0';
	return true;
}

enum wd_err
gw_sigv4_authorization(const struct gw_sigv4 *s, char *out, size_t outlen)
{
	char creq[8192], sts[512], date[9], hex[65], sig[65];
	unsigned char k[32], digest[32], kdate[4 + 256];
	char signed_hdrs[96], chdrs[3072];
	enum wd_err rc = WD_ELIMIT;
	int n;

	if (strlen(s->amz_date) != 16 || s->secret_len > 256)
		return WD_EINVAL;
	memcpy(date, s->amz_date, 8);
	date[8] = '\0';
	/* Canonical headers, sorted by name: host, [x-amz-content-sha256],
	 * x-amz-date, [x-amz-security-token]. */
	snprintf(signed_hdrs, sizeof(signed_hdrs), "host;%sx-amz-date%s",
	    s->sign_content_sha256 ? "x-amz-content-sha256;" : "",
	    s->security_token ? ";x-amz-security-token" : "");
	n = snprintf(chdrs, sizeof(chdrs), "host:%s\n%s%s%sx-amz-date:%s\n%s%s%s",
	    s->host, s->sign_content_sha256 ? "x-amz-content-sha256:" : "",
	    s->sign_content_sha256 ? s->payload_sha256 : "",
	    s->sign_content_sha256 ? "\n" : "", s->amz_date,
	    s->security_token ? "x-amz-security-token:" : "",
	    s->security_token ? s->security_token : "",
	    s->security_token ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(chdrs))
		goto out;
	n = snprintf(creq, sizeof(creq), "%s\n%s\n%s\n%s\n%s\n%s", s->method,
	    s->canonical_uri, s->canonical_query, chdrs, signed_hdrs,
	    s->payload_sha256);
	if (n < 0 || (size_t)n >= sizeof(creq))
		goto out;
	SHA256((const unsigned char *)creq, (size_t)n, digest);
	wd_hex(digest, 32, hex);
	n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/"
	    "aws4_request\n%s", s->amz_date, date, s->region, s->service, hex);
	if (n < 0 || (size_t)n >= sizeof(sts))
		goto out;
	/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
	 * service), "aws4_request") */
	memcpy(kdate, "AWS4", 4);
	memcpy(kdate + 4, s->secret, s->secret_len);
	rc = WD_EINVAL;
	if (!hmac(kdate, 4 + s->secret_len, date, 8, k) ||
	    !hmac(k, 32, s->region, strlen(s->region), k) ||
	    !hmac(k, 32, s->service, strlen(s->service), k) ||
	    !hmac(k, 32, "aws4_request", 12, k) ||
	    !hmac(k, 32, sts, (size_t)n, digest))
		goto out;
	wd_hex(digest, 32, sig);
	rc = WD_ELIMIT;
	n = snprintf(out, outlen, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/"
	    "aws4_request, SignedHeaders=%s, Signature=%s", s->access_key, date,
	    s->region, s->service, signed_hdrs, sig);
	if (n < 0 || (size_t)n >= outlen)
		goto out;
	rc = WD_OK;
out:
	wd_wipe(kdate, sizeof(kdate));
	wd_wipe(k, sizeof(k));
	wd_wipe(digest, sizeof(digest));
	return rc;
}
