/*
 * import.c - an external RSA signing key (a cloud service account's)
 * imported into the TPM, so that it signs there and its private half
 * does not exist in clear in warden at all.
 *
 * `warden secrets import-key NAME` reads the PEM from stdin, turns it
 * into an unencrypted duplicate (TPM2B_SENSITIVE: the prime p; the TPM
 * recomputes the rest) with a public area that fixes the scheme to
 * RSASSA-SHA256, has the TPM import it under the storage primary
 * (TPM2_Import: the private blob comes back encrypted to the primary),
 * and keeps public and private blobs in the store as kind
 * "imported-key".  The PEM and every copy of the prime are wiped.  The
 * object is not fixedTPM/fixedParent (an imported object cannot be,
 * TPM-NOTES); nothing but this TPM can load the stored blob.
 *
 * Each import, done or refused, is handed to the event hook (the CLI
 * records it as `secret_import`).
 *
 * The duplicate crosses to the TPM without an outer wrapper, once, at
 * import; a bus sniffer at that moment would see it.  Import on the
 * host itself (not over a network TCTI).
 */
#include "secrets/sec_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#define RSA_BITS 2048
#define RSA_BYTES (RSA_BITS / 8)

static bool
bn_param(const EVP_PKEY *k, const char *name, BIGNUM **out)
{
	*out = NULL;
	return EVP_PKEY_get_bn_param(k, name, out) == 1;
}

enum wd_err
sec_key_import(struct sec_tpm *t, const char *store, const char *name,
    const unsigned char *pem, size_t pemlen, char *err, size_t errlen)
{
	TPM2B_PUBLIC pub = { 0 };
	TPM2B_SENSITIVE sens = { 0 };
	TPM2B_PRIVATE dup = { 0 };
	TPMT_SYM_DEF_OBJECT sym = { .algorithm = TPM2_ALG_NULL };
	TPM2B_PRIVATE *out = NULL;
	struct sec_obj o = { 0 };
	struct sec_meta m;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	BIGNUM *n = NULL, *e = NULL, *p = NULL;
	size_t off = 0;
	enum wd_err rc = WD_EINVAL;
	TSS2_RC trc;

	if (sec_stat(store, name, &m, err, errlen) == WD_OK) {
		sec_errf(err, errlen, "'%s' exists already", name);
		goto out;
	}
	if (pemlen > 65536 || (bio = BIO_new_mem_buf(pem, (int)pemlen)) == NULL ||
	    (key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL ||
	    EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(key) != RSA_BITS) {
		sec_errf(err, errlen, "not an RSA-%d private key in PEM", RSA_BITS);
		goto out;
	}
	if (!bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) ||
	    !bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) ||
	    BN_num_bytes(p) > RSA_BYTES / 2 || BN_num_bits(e) > 32) {
		sec_errf(err, errlen, "the RSA key's numbers cannot be read");
		goto out;
	}
	pub.publicArea.type = TPM2_ALG_RSA;
	pub.publicArea.nameAlg = TPM2_ALG_SHA256;
	/* Sign only, RSASSA-SHA256 only, no auth value (so no dictionary
	 * attack counting either). */
	pub.publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH |
	    TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA;
	pub.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
	pub.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
	pub.publicArea.parameters.rsaDetail.scheme.details.rsassa.hashAlg =
	    TPM2_ALG_SHA256;
	pub.publicArea.parameters.rsaDetail.keyBits = RSA_BITS;
	pub.publicArea.parameters.rsaDetail.exponent = BN_get_word(e) == 65537 ?
	    0 : (UINT32)BN_get_word(e);
	pub.publicArea.unique.rsa.size = RSA_BYTES;
	BN_bn2binpad(n, pub.publicArea.unique.rsa.buffer, RSA_BYTES);
	sens.sensitiveArea.sensitiveType = TPM2_ALG_RSA;
	sens.sensitiveArea.sensitive.rsa.size = (UINT16)BN_num_bytes(p);
	BN_bn2bin(p, sens.sensitiveArea.sensitive.rsa.buffer);
	trc = Tss2_MU_TPM2B_SENSITIVE_Marshal(&sens, dup.buffer,
	    sizeof(dup.buffer), &off);
	if (trc != TSS2_RC_SUCCESS) {
		rc = sec_tpm_err(err, errlen, "marshal the duplicate", trc);
		goto out;
	}
	dup.size = (UINT16)off;
	if ((rc = sec_tpm_primary(t, err, errlen)) != WD_OK)
		goto out;
	trc = Esys_Import(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, NULL, &pub, &dup, NULL, &sym, &out);
	if (trc != TSS2_RC_SUCCESS) {
		rc = sec_tpm_err(err, errlen, "Import", trc);
		goto out;
	}
	o.pub = pub;
	o.priv = *out;
	snprintf(o.meta.name, sizeof(o.meta.name), "%s", name);
	o.meta.kind = SEC_KIND_IMPORTED_KEY;
	sec_now_rfc3339(o.meta.created);
	o.meta.template_version = SEC_TEMPLATE_VERSION;
	rc = sec_store_write(store, name, &o, SEC_CREATE, err, errlen);
out:
	Esys_Free(out);
	OPENSSL_cleanse(&sens, sizeof(sens));
	OPENSSL_cleanse(&dup, sizeof(dup));
	BN_clear_free(p);
	BN_free(n);
	BN_free(e);
	EVP_PKEY_free(key);
	BIO_free(bio);
	/* Tried or done, the change goes to the audit log (cli_secrets.c). */
	sec_event_emit(SEC_EV_IMPORT, name, rc, err);
	return rc;
}

enum wd_err
sec_key_sign_rs256(struct sec_tpm *t, const char *store, const char *name,
    const unsigned char digest[32], unsigned char *sig, size_t *siglen,
    char *err, size_t errlen)
{
	TPMT_SIG_SCHEME scheme = {
		.scheme = TPM2_ALG_RSASSA,
		.details.rsassa.hashAlg = TPM2_ALG_SHA256,
	};
	TPMT_TK_HASHCHECK validation = {
		.tag = TPM2_ST_HASHCHECK,
		.hierarchy = TPM2_RH_NULL,
	};
	TPM2B_DIGEST d = { .size = 32 };
	TPMT_SIGNATURE *s = NULL;
	struct sec_obj o;
	ESYS_TR key = ESYS_TR_NONE;
	enum wd_err e;
	TSS2_RC rc;

	memcpy(d.buffer, digest, 32);
	if ((e = sec_store_read(store, name, &o, err, errlen)) != WD_OK)
		return e;
	if (o.meta.kind != SEC_KIND_IMPORTED_KEY ||
	    o.pub.publicArea.type != TPM2_ALG_RSA) {
		sec_errf(err, errlen, "'%s' is not an imported RSA key", name);
		e = WD_EINVAL;
		goto out;
	}
	if ((e = sec_tpm_load(t, &o.pub, &o.priv, &key, err, errlen)) != WD_OK)
		goto out;
	rc = Esys_Sign(t->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, &d, &scheme, &validation, &s);
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "Sign", rc);
		goto out;
	}
	if (s->signature.rsassa.sig.size > *siglen) {
		sec_errf(err, errlen, "signature buffer too small");
		e = WD_ELIMIT;
		goto out;
	}
	memcpy(sig, s->signature.rsassa.sig.buffer, s->signature.rsassa.sig.size);
	*siglen = s->signature.rsassa.sig.size;
	e = WD_OK;
out:
	Esys_Free(s);
	sec_tpm_flush(t, &key);
	sec_obj_clear(&o);
	return e;
}
