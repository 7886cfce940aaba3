/*
 * jwt.c - the signed assertion of an OAuth 2.0 jwt-bearer grant (RFC
 * 7523) as Google's token endpoint takes it: header {"alg":"RS256",
 * "typ":"JWT"}, claims iss (the service account), scope, aud (the token
 * endpoint), iat, exp; RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over
 * base64url(header) "." base64url(claims).
 *
 * The signature comes from a signer: a key imported into the TPM
 * (creds.c gw_tpm_sign_rs256; the private key never in warden), or PEM
 * bytes from the locked credential cache, parsed, used once and freed
 * here.  Pure otherwise.
 */
#include "gateway/provider.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdlib.h>
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

/* A PEM private key as the signer: parsed, used once, freed. */
struct pem_key {
	const unsigned char *pem;
	size_t len;
};

static enum wd_err
pem_sign(void *arg, const unsigned char digest[32], unsigned char *sig,
    size_t *siglen)
{
	const struct pem_key *k = arg;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	enum wd_err rc = WD_EINVAL;

	if (k->len > INT32_MAX || (bio = BIO_new_mem_buf(k->pem, (int)k->len)) ==
	    NULL || (key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) ==
	    NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_sign(ctx, sig, siglen, digest, 32) != 1)
		goto out;
	rc = WD_OK;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);	/* clears the private numbers */
	BIO_free(bio);
	return rc;
}

enum wd_err
gw_jwt_rs256(const unsigned char *pem, size_t pemlen, const char *iss,
    const char *aud, const char *scope, time_t now, int lifetime_s,
    char *out, size_t outlen)
{
	struct pem_key k = { pem, pemlen };

	return gw_jwt_rs256_with(pem_sign, &k, iss, aud, scope, now, lifetime_s,
	    out, outlen);
}

enum wd_err
gw_jwt_rs256_with(enum wd_err (*sign)(void *arg,
    const unsigned char digest[32], unsigned char *sig, size_t *siglen),
    void *arg, const char *iss, const char *aud, const char *scope,
    time_t now, int lifetime_s, char *out, size_t outlen)
{
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	unsigned char sig[1024], digest[32];
	size_t siglen = sizeof(sig), n, m;
	enum wd_err rc = WD_ELIMIT;
	json_t *c;
	char *claims;

	c = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", iss, "scope", scope, "aud",
	    aud, "iat", (json_int_t)now, "exp", (json_int_t)now + lifetime_s);
	claims = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(c);
	if (claims == NULL)
		return WD_ENOMEM;
	if ((n = b64url((const unsigned char *)hdr, sizeof(hdr) - 1, out,
	    outlen)) == 0 || n + 1 >= outlen)
		goto out;
	out[n++] = '.';
	if ((m = b64url((const unsigned char *)claims, strlen(claims), out + n,
	    outlen - n)) == 0)
		goto out;
	n += m;
	SHA256((const unsigned char *)out, n, digest);
	if ((rc = sign(arg, digest, sig, &siglen)) != WD_OK)
		goto out;
	rc = WD_ELIMIT;
	if (n + 1 >= outlen)
		goto out;
	out[n++] = '.';
	if (b64url(sig, siglen, out + n, outlen - n) == 0)
		goto out;
	rc = WD_OK;
out:
	free(claims);
	if (rc != WD_OK && outlen > 0)
		out[0] = '\0';
	return rc;
}
