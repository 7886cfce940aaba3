/*
 * jwt.c - the signed assertion of an OAuth 2.0 jwt-bearer grant (RFC
 * 7523) as Google's token endpoint takes it: header {"alg":"RS256",
 * "typ":"JWT"}, claims iss (the service account), scope, aud (the token
 * endpoint), iat, exp; RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over
 * base64url(header) "." base64url(claims).
 *
 * The private key comes in as PEM bytes from the locked credential cache
 * and is parsed, used once and freed here; OpenSSL keeps its private
 * numbers in its secure heap when one is set up.  Pure otherwise.
 */
#include "gateway/provider.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

/* base64url without padding of in into out; its length, 0 if no room. */
static size_t
b64url(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t need = 4 * ((len + 2) / 3) + 1, n;

	if (need > outlen)
		return 0;
	n = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[n] = '\0';
	return n;
}

enum wd_err
gw_jwt_rs256(const unsigned char *pem, size_t pemlen, const char *iss,
    const char *aud, const char *scope, time_t now, int lifetime_s,
    char *out, size_t outlen)
{
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	char claims[2048];
	unsigned char sig[1024];
	size_t siglen = sizeof(sig), n, m;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *ctx = NULL;
	enum wd_err rc = WD_ELIMIT;
	json_t *c;
	char *ctext;

	c = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", iss, "scope", scope, "aud",
	    aud, "iat", (json_int_t)now, "exp", (json_int_t)now + lifetime_s);
	ctext = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(c);
	if (ctext == NULL)
		return WD_ENOMEM;
	if (strlen(ctext) >= sizeof(claims)) {
		free(ctext);
		return WD_ELIMIT;
	}
	strcpy(claims, ctext);
	free(ctext);
	if ((n = b64url((const unsigned char *)hdr, sizeof(hdr) - 1, out,
	    outlen)) == 0 || n + 1 >= outlen)
		goto out;
	out[n++] = '.';
	if ((m = b64url((const unsigned char *)claims, strlen(claims), out + n,
	    outlen - n)) == 0)
		goto out;
	n += m;
	rc = WD_EINVAL;
	if (pemlen > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)pemlen)) ==
	    NULL || (key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL
	    || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		goto out;
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(ctx, NULL,
	    EVP_sha256(), NULL, key) != 1 || EVP_DigestSign(ctx, sig, &siglen,
	    (const unsigned char *)out, n) != 1)
		goto out;
	rc = WD_ELIMIT;
	if (n + 1 >= outlen)
		goto out;
	out[n++] = '.';
	if (b64url(sig, siglen, out + n, outlen - n) == 0)
		goto out;
	rc = WD_OK;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);	/* clears the private numbers */
	BIO_free(bio);
	if (rc != WD_OK && outlen > 0)
		out[0] = '\0';
	return rc;
}
