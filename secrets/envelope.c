/*
 * envelope.c - sealing and unsealing a credential: a fresh 32-byte data
 * key sealed in the TPM, the credential encrypted under it with
 * AES-256-GCM.  A sealed object holds at most 128 bytes; credentials
 * (service-account JSON, long provider keys) run to 16 KiB.
 *
 * The authenticated data binds the envelope to the secret's name, so the
 * blobs of one name moved under another fail to open.  The data key lives
 * only in the TPM context's locked scratch page; the plaintext only in the
 * caller's locked buffer and the cache's locked region.
 *
 * Also here: the event hook through which seal, rotate, rm and unseal
 * reach the audit log.
 */
#include "secrets/sec_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define ENV_MAGIC "WSE1"		/* warden sealed envelope, format 1 */
#define ENV_NONCE 12
#define ENV_TAG 16
#define ENV_HDR (4 + ENV_NONCE + ENV_TAG)
#define AAD_PREFIX "warden/secrets/v1:"

static void (*event_fn)(const struct sec_event *, void *);
static void *event_arg;

void
sec_set_event_hook(void (*fn)(const struct sec_event *, void *), void *arg)
{
	event_fn = fn;
	event_arg = arg;
}

const char *
sec_event_name(enum sec_event_kind kind)
{
	switch (kind) {
	case SEC_EV_SEAL:
		return "secret_seal";
	case SEC_EV_ROTATE:
		return "secret_rotate";
	case SEC_EV_REMOVE:
		return "secret_remove";
	case SEC_EV_UNSEAL:
		return "secret_unseal";
	case SEC_EV_IMPORT:
		return "secret_import";
	}
	return "secret_unknown";
}

void
sec_event_emit(enum sec_event_kind kind, const char *name, enum wd_err result,
    const char *err)
{
	struct sec_event ev = { kind, name, result,
		result == WD_OK ? NULL : err };

	if (event_fn != NULL)
		event_fn(&ev, event_arg);
}

bool
sec_gcm(bool encrypt, const unsigned char key[32],
    const unsigned char nonce[SEC_GCM_NONCE], const void *aad, size_t aadlen,
    const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[SEC_GCM_TAG])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ok = 0;

	if (ctx == NULL || len > INT_MAX || aadlen > INT_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    encrypt) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEC_GCM_NONCE,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1 ||
	    (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad,
	    (int)aadlen) != 1) ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
	    SEC_GCM_TAG, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + n, &fin) != 1)
		goto out;
	if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
	    SEC_GCM_TAG, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);	/* cleanses the key schedule */
	/* A plaintext that failed authentication is not to be used. */
	if (!ok && !encrypt && len > 0)
		OPENSSL_cleanse(out, len);
	return ok;
}

/* The credential envelope: the secret's name is the authenticated data. */
static bool
gcm(bool encrypt, const unsigned char key[32], const unsigned char *nonce,
    const char *name, const unsigned char *in, size_t len, unsigned char *out,
    unsigned char *tag)
{
	char aad[sizeof(AAD_PREFIX) + SEC_NAME_MAX];
	int aadlen;

	aadlen = snprintf(aad, sizeof(aad), "%s%s", AAD_PREFIX, name);
	if (len > SEC_VALUE_MAX || aadlen < 0)
		return false;
	return sec_gcm(encrypt, key, nonce, aad, (size_t)aadlen, in, len, out,
	    tag);
}

enum wd_err
sec_seal(struct sec_tpm *t, const char *store, const char *name,
    const unsigned char *value, size_t len, const struct sec_seal_opts *opts,
    enum sec_mode mode, char *err, size_t errlen)
{
	static const struct sec_seal_opts defaults = { 0 };
	enum sec_event_kind ev = mode == SEC_REPLACE ? SEC_EV_ROTATE : SEC_EV_SEAL;
	unsigned char *key = NULL;	/* the data key, in locked scratch */
	struct sec_obj o = { 0 };
	struct sec_meta old;
	struct sec_pcrs pcrs;
	char etext[512] = "";
	enum wd_err e;

	if (opts == NULL)
		opts = &defaults;
	if (t == NULL) {
		sec_errf(etext, sizeof(etext), "no TPM");
		e = WD_EINVAL;
		goto out;
	}
	if (!sec_name_valid(name) || name[0] == '.') {
		sec_errf(etext, sizeof(etext), "invalid secret name: 1-64 of A-Z "
		    "a-z 0-9 . _ -, not beginning with '.'");
		e = WD_EINVAL;
		goto out;
	}
	if (len == 0 || len > SEC_VALUE_MAX) {
		sec_errf(etext, sizeof(etext), "a secret holds 1 to %d bytes, not %zu",
		    SEC_VALUE_MAX, len);
		e = WD_EINVAL;
		goto out;
	}
	if (opts->authlen > SEC_AUTH_MAX) {
		sec_errf(etext, sizeof(etext), "an auth value holds at most %d bytes",
		    SEC_AUTH_MAX);
		e = WD_EINVAL;
		goto out;
	}
	if ((e = sec_pcrs_parse(opts->pcrs, &pcrs, etext, sizeof(etext))) !=
	    WD_OK)
		goto out;
	/* Ask early, so a doomed call does not cost TPM work; the rename at
	 * the end decides for good. */
	e = sec_stat(store, name, &old, etext, sizeof(etext));
	if (mode == SEC_CREATE && e == WD_OK) {
		sec_errf(etext, sizeof(etext), "secret '%s' exists already "
		    "(rotate replaces it)", name);
		e = WD_EINVAL;
		goto out;
	}
	if ((mode == SEC_REPLACE || e != WD_ENOTFOUND) && e != WD_OK)
		goto out;
	etext[0] = '\0';

	key = sec_scratch(t)->key;
	if ((e = wd_random(key, SEC_DATA_KEY_LEN)) != WD_OK) {
		sec_errf(etext, sizeof(etext), "no randomness from the kernel");
		goto out;
	}
	if ((e = sec_tpm_seal(t, key, SEC_DATA_KEY_LEN, &pcrs, opts->auth,
	    opts->authlen, opts->noda, &o.pub, &o.priv, etext, sizeof(etext))) !=
	    WD_OK)
		goto out;
	o.envlen = ENV_HDR + len;
	if ((o.env = malloc(o.envlen)) == NULL) {
		sec_errf(etext, sizeof(etext), "out of memory");
		e = WD_ENOMEM;
		goto out;
	}
	memcpy(o.env, ENV_MAGIC, 4);
	if ((e = wd_random(o.env + 4, ENV_NONCE)) != WD_OK)
		goto out;
	if (!gcm(true, key, o.env + 4, name, value, len, o.env + ENV_HDR,
	    o.env + 4 + ENV_NONCE)) {
		sec_errf(etext, sizeof(etext), "AES-256-GCM encryption failed");
		e = WD_EIO;
		goto out;
	}
	snprintf(o.meta.name, sizeof(o.meta.name), "%s", name);
	o.meta.kind = SEC_KIND_CREDENTIAL;
	sec_now_rfc3339(o.meta.created);
	snprintf(o.meta.pcrs, sizeof(o.meta.pcrs), "%s", pcrs.text);
	o.meta.auth = opts->authlen > 0;
	o.meta.template_version = SEC_TEMPLATE_VERSION;
	o.meta.size = len;
	o.meta.nv = opts->nv;
	e = sec_store_write(store, name, &o, mode, etext, sizeof(etext));
out:
	if (key != NULL)
		wd_wipe(key, SEC_DATA_KEY_LEN);
	sec_obj_clear(&o);
	sec_event_emit(ev, name, e, etext);
	sec_errf(err, errlen, "%s", etext);
	return e;
}

enum wd_err
sec_unseal(struct sec_tpm *t, const char *store, const char *name,
    const unsigned char *auth, size_t authlen, struct sec_cache *into,
    char *err, size_t errlen)
{
	unsigned char *key = sec_scratch(t)->key, *plain = NULL;
	size_t keylen = SEC_DATA_KEY_LEN, ctlen;
	struct sec_obj o;
	struct sec_pcrs pcrs;
	char etext[512] = "";
	enum wd_err e;

	if ((e = sec_store_read(store, name, &o, etext, sizeof(etext))) != WD_OK)
		goto out;
	if (o.meta.kind != SEC_KIND_CREDENTIAL) {
		sec_errf(etext, sizeof(etext), "'%s' is not a credential", name);
		e = WD_EINVAL;
		goto out;
	}
	if (o.meta.auth && authlen == 0) {
		sec_errf(etext, sizeof(etext), "'%s' was sealed with an auth value "
		    "and none was given", name);
		e = WD_EINVAL;
		goto out;
	}
	if (o.envlen < ENV_HDR || memcmp(o.env, ENV_MAGIC, 4) != 0 ||
	    (ctlen = o.envlen - ENV_HDR) != o.meta.size || ctlen == 0) {
		sec_errf(etext, sizeof(etext), "%s/%s/envelope.bin is damaged or "
		    "does not match meta.json", store, name);
		e = WD_EPARSE;
		goto out;
	}
	if ((e = sec_pcrs_parse(o.meta.pcrs, &pcrs, etext, sizeof(etext))) !=
	    WD_OK)
		goto out;
	if ((e = sec_tpm_unseal(t, &o.pub, &o.priv, &pcrs, auth, authlen, key,
	    &keylen, etext, sizeof(etext))) != WD_OK)
		goto out;
	if (keylen != SEC_DATA_KEY_LEN) {
		sec_errf(etext, sizeof(etext), "'%s' holds a %zu-byte data key, not "
		    "%d", name, keylen, SEC_DATA_KEY_LEN);
		e = WD_EPARSE;
		goto out;
	}
	if ((plain = sec_cache_reserve(into, ctlen)) == NULL) {
		sec_errf(etext, sizeof(etext), "credential cache full: no room for "
		    "'%s' (%zu bytes)", name, ctlen);
		e = WD_ELIMIT;
		goto out;
	}
	if (!gcm(false, key, o.env + 4, name, o.env + ENV_HDR, ctlen, plain,
	    o.env + 4 + ENV_NONCE)) {
		sec_cache_abort(into);
		sec_errf(etext, sizeof(etext), "the envelope of '%s' fails "
		    "authentication: it was modified, or belongs to another name",
		    name);
		e = WD_EPARSE;
		goto out;
	}
	e = sec_cache_commit(into, name, ctlen);
	if (e != WD_OK)
		sec_errf(etext, sizeof(etext), "cannot keep '%s' in the cache", name);
out:
	wd_wipe(key, SEC_DATA_KEY_LEN);
	sec_obj_clear(&o);
	sec_event_emit(SEC_EV_UNSEAL, name, e, etext);
	sec_errf(err, errlen, "%s", etext);
	return e;
}
