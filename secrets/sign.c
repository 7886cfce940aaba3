/*
 * sign.c - the audit log's signing key: ECDSA P-256, created inside the
 * TPM under the storage primary and kept in the store as SEC_SIGN_KEY
 * (its public blob and its private blob, encrypted to the TPM).  It is
 * loaded for each signature and flushed after; its private half never
 * exists outside the TPM in clear.  Since issue 11 it is made with an
 * auth value (secrets.auth_file): the blobs and access to the TPM are not
 * enough to sign.  audit/ calls these for checkpoints.
 */
#include "secrets/sec_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

/* Template version 1 of the signing key; scheme fixed to ECDSA-SHA256 so
 * the key cannot be used any other way. */
static const TPM2B_PUBLIC sign_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
		    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
		    TPMA_OBJECT_SIGN_ENCRYPT,
		.parameters.eccDetail = {
			.symmetric.algorithm = TPM2_ALG_NULL,
			.scheme = {
				.scheme = TPM2_ALG_ECDSA,
				.details.ecdsa.hashAlg = TPM2_ALG_SHA256,
			},
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

/*
 * Template version 1 with an auth value (meta.auth): the key signs only
 * for whoever proves the value, and wrong values count towards the TPM's
 * dictionary-attack lockout (no NODA), so guessing is slow.
 */
enum wd_err
sec_sign_key_ensure(struct sec_tpm *t, const char *store,
    const unsigned char *auth, size_t authlen, const char *pcrspec,
    bool *created, char *err, size_t errlen)
{
	TPM2B_PUBLIC tmpl = sign_template;
	struct sec_scratch *sc;
	struct sec_obj o = { 0 };
	struct sec_pcrs pcrs;
	struct sec_meta m;
	enum wd_err e;

	if (created != NULL)
		*created = false;
	if (authlen > SEC_AUTH_MAX) {
		sec_errf(err, errlen, "the auth value is longer than %d bytes",
		    SEC_AUTH_MAX);
		return WD_EINVAL;
	}
	if ((e = sec_pcrs_parse(pcrspec, &pcrs, err, errlen)) != WD_OK)
		return e;
	e = sec_stat(store, SEC_SIGN_KEY, &m, err, errlen);
	if (e == WD_OK && m.kind != SEC_KIND_SIGNING_KEY) {
		sec_errf(err, errlen, "%s/%s is not a signing key", store,
		    SEC_SIGN_KEY);
		return WD_EINVAL;
	}
	if (e == WD_OK && !m.auth && authlen > 0) {
		sec_errf(err, errlen, "%s/%s was made without an auth value: "
		    "anyone who can reach the TPM and read it can sign with it.  "
		    "Keep its public key for the old logs (warden audit pubkey "
		    "--secrets-store %s > old-audit-key.pem), move the directory "
		    "out of the store (mv %s/%s OLD-PLACE), and start warden again: "
		    "it makes a new key with the auth value (a new key_id)",
		    store, SEC_SIGN_KEY, store, store, SEC_SIGN_KEY);
		return WD_EPERM;
	}
	if (e == WD_OK && m.auth && authlen == 0) {
		sec_errf(err, errlen, "%s/%s needs its auth value: set "
		    "secrets.auth_file (or --auth-file)", store, SEC_SIGN_KEY);
		return WD_ECONFIG;
	}
	if (e == WD_OK && strcmp(m.pcrs, pcrs.text) != 0) {
		sec_errf(err, errlen, "%s/%s is bound to PCRs '%s', the settings "
		    "say '%s': a key's binding cannot change; move it out of the "
		    "store (keeping its public key for the old logs) to make a new "
		    "one", store, SEC_SIGN_KEY, m.pcrs[0] ? m.pcrs : "none",
		    pcrs.text[0] ? pcrs.text : "none");
		return WD_EPERM;
	}
	if (e != WD_ENOTFOUND)
		return e;
	if (pcrs.sel.count > 0) {
		/* Only the policy opens it: PCRs, then the auth value. */
		if ((e = sec_tpm_policy_digest(t, &pcrs, authlen > 0,
		    &tmpl.publicArea.authPolicy, err, errlen)) != WD_OK)
			return e;
		tmpl.publicArea.objectAttributes &= ~TPMA_OBJECT_USERWITHAUTH;
	}
	sc = sec_scratch(t);
	memset(&sc->sens, 0, sizeof(sc->sens));
	sc->sens.sensitive.userAuth.size = (UINT16)authlen;
	if (authlen > 0)
		memcpy(sc->sens.sensitive.userAuth.buffer, auth, authlen);
	e = sec_tpm_create(t, &tmpl, &sc->sens, &o.pub, &o.priv, err, errlen);
	wd_wipe(&sc->sens, sizeof(sc->sens));
	if (e != WD_OK)
		return e;
	snprintf(o.meta.name, sizeof(o.meta.name), "%s", SEC_SIGN_KEY);
	o.meta.kind = SEC_KIND_SIGNING_KEY;
	o.meta.auth = authlen > 0;
	snprintf(o.meta.pcrs, sizeof(o.meta.pcrs), "%s", pcrs.text);
	sec_now_rfc3339(o.meta.created);
	o.meta.template_version = SEC_TEMPLATE_VERSION;
	e = sec_store_write(store, SEC_SIGN_KEY, &o, SEC_CREATE, err, errlen);
	if (e == WD_OK && created != NULL)
		*created = true;
	return e;
}

static enum wd_err
read_key(const char *store, struct sec_obj *o, char *err, size_t errlen)
{
	enum wd_err e = sec_store_read(store, SEC_SIGN_KEY, o, err, errlen);

	if (e == WD_OK && (o->meta.kind != SEC_KIND_SIGNING_KEY ||
	    o->pub.publicArea.type != TPM2_ALG_ECC ||
	    o->pub.publicArea.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256)) {
		sec_obj_clear(o);
		sec_errf(err, errlen, "%s/%s is not an ECDSA P-256 signing key",
		    store, SEC_SIGN_KEY);
		e = WD_EINVAL;
	}
	return e;
}

/* r and s from the TPM, as the DER SEQUENCE OpenSSL verifies. */
static enum wd_err
to_der(const TPMS_SIGNATURE_ECDSA *ec, unsigned char *der, size_t *len,
    char *err, size_t errlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(ec->signatureR.buffer, ec->signatureR.size, NULL);
	BIGNUM *s = BN_bin2bn(ec->signatureS.buffer, ec->signatureS.size, NULL);
	unsigned char *p = der;
	enum wd_err e = WD_ENOMEM;
	int n;

	if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;			/* owned by sig now */
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > *len) {
		e = WD_ELIMIT;
		goto out;
	}
	n = i2d_ECDSA_SIG(sig, &p);
	*len = (size_t)n;
	e = WD_OK;
out:
	if (e != WD_OK)
		sec_errf(err, errlen, "cannot encode the signature");
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return e;
}

enum wd_err
sec_sign_digest(struct sec_tpm *t, const char *store,
    const unsigned char *auth, size_t authlen,
    const unsigned char digest[32], unsigned char *der_sig, size_t *len,
    char *err, size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	TPMT_SIG_SCHEME scheme = {
		.scheme = TPM2_ALG_ECDSA,
		.details.ecdsa.hashAlg = TPM2_ALG_SHA256,
	};
	/* A null ticket: the key is not restricted, so the TPM does not need
	 * proof that it computed the digest itself. */
	TPMT_TK_HASHCHECK validation = {
		.tag = TPM2_ST_HASHCHECK,
		.hierarchy = TPM2_RH_NULL,
	};
	TPM2B_DIGEST d = { .size = 32 };
	TPMT_SIGNATURE *sig = NULL;
	struct sec_obj o;
	ESYS_TR key = ESYS_TR_NONE, s = ESYS_TR_NONE, policy_s = ESYS_TR_NONE;
	struct sec_pcrs pcrs;
	enum wd_err e;
	TSS2_RC rc;

	memcpy(d.buffer, digest, 32);
	if (authlen > SEC_AUTH_MAX) {
		sec_errf(err, errlen, "auth value too long");
		return WD_EINVAL;
	}
	if ((e = read_key(store, &o, err, errlen)) != WD_OK)
		return e;
	if ((e = sec_tpm_load(t, &o.pub, &o.priv, &key, err, errlen)) != WD_OK)
		goto out;
	/* The auth value goes into the session's HMAC, never on the bus. */
	memset(&sc->auth, 0, sizeof(sc->auth));
	sc->auth.size = (UINT16)authlen;
	if (authlen > 0)
		memcpy(sc->auth.buffer, auth, authlen);
	rc = Esys_TR_SetAuth(t->esys, key, &sc->auth);
	wd_wipe(&sc->auth, sizeof(sc->auth));
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "TR_SetAuth", rc);
		goto out;
	}
	if ((e = sec_pcrs_parse(o.meta.pcrs, &pcrs, err, errlen)) != WD_OK)
		goto out;
	if (pcrs.sel.count > 0) {
		/* Bound to PCRs: a policy session (salted; one use) proves the
		 * PCR values and, with PolicyAuthValue, the auth value. */
		if ((e = sec_tpm_session(t, TPM2_SE_POLICY, 0, &policy_s, err,
		    errlen)) != WD_OK ||
		    (e = sec_tpm_run_policy(t, policy_s, &pcrs, o.meta.auth, err,
		    errlen)) != WD_OK)
			goto out;
		s = policy_s;
	} else if ((e = sec_tpm_hmac(t, 0, &s, err, errlen)) != WD_OK) {
		goto out;
	}
	rc = Esys_Sign(t->esys, key, s, ESYS_TR_NONE, ESYS_TR_NONE, &d,
	    &scheme, &validation, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		if (policy_s == ESYS_TR_NONE)
			sec_tpm_hmac_drop(t);
		e = sec_tpm_err(err, errlen, "Sign", rc);
		goto out;
	}
	e = to_der(&sig->signature.ecdsa, der_sig, len, err, errlen);
out:
	Esys_Free(sig);
	sec_tpm_flush(t, &policy_s);
	/* SetAuth copied the value into the handle, which the flush frees
	 * unwiped: overwrite it first. */
	if (key != ESYS_TR_NONE && authlen > 0) {
		memset(&sc->auth, 0, sizeof(sc->auth));
		(void)Esys_TR_SetAuth(t->esys, key, &sc->auth);
	}
	sec_tpm_flush(t, &key);
	sec_obj_clear(&o);
	return e;
}

enum wd_err
sec_sign_pubkey_pem(const char *store, char **pem, char *err, size_t errlen)
{
	const TPMS_ECC_POINT *pt;
	unsigned char point[65] = { 0x04 };	/* uncompressed: 04 || x || y */
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	struct sec_obj o;
	char *data;
	long n;
	enum wd_err e;

	*pem = NULL;
	if ((e = read_key(store, &o, err, errlen)) != WD_OK)
		return e;
	pt = &o.pub.publicArea.unique.ecc;
	if (pt->x.size > 32 || pt->y.size > 32) {
		sec_errf(err, errlen, "%s/%s: bad public point", store, SEC_SIGN_KEY);
		e = WD_EPARSE;
		goto out;
	}
	memcpy(point + 1 + 32 - pt->x.size, pt->x.buffer, pt->x.size);
	memcpy(point + 33 + 32 - pt->y.size, pt->y.buffer, pt->y.size);
	e = WD_EIO;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
	    sizeof(point)) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(bio, pkey) != 1 ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		sec_errf(err, errlen, "%s/%s: the public key is not a valid P-256 "
		    "point", store, SEC_SIGN_KEY);
		goto out;
	}
	if ((*pem = wd_strndup(data, (size_t)n)) == NULL) {
		sec_errf(err, errlen, "out of memory");
		e = WD_ENOMEM;
		goto out;
	}
	e = WD_OK;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	sec_obj_clear(&o);
	return e;
}
