/*
 * dkey.c - data keys that can be destroyed for good: the keys audit/
 * encrypts kept payloads under (one per tenant and month).
 *
 * A data key is a 32-byte credential sealed like any other (envelope.c:
 * a TPM-sealed envelope key, AES-256-GCM), but its sealed object's auth
 * value is a random secret that lives only in a TPM NV index of its own.
 * Backups of the store hold the blobs and the NV handle, never the
 * secret.  Destroying the key undefines the index: from then on no copy
 * of the blobs can be unsealed, on this TPM or any other (FIXEDTPM), and
 * redefining the index gives a new random value, which the old object
 * refuses.  The blobs are overwritten and removed as well, but the
 * guarantee rests on the TPM, not on the filesystem forgetting.
 *
 * The secret passes only through the TPM context's locked scratch page;
 * the data key only through the caller's locked memory.
 */
#include "secrets/sec_int.h"

#include <stdio.h>
#include <string.h>

#define DKEY_CACHE 64		/* a locked page for one unsealed key */

static uint32_t
probe_start(const char *store, const char *name)
{
	unsigned char d[32];
	char buf[600];
	int n = snprintf(buf, sizeof(buf), "%s/%s", store, name);

	wd_sha256(buf, n > 0 ? (size_t)n : 0, d);
	return ((uint32_t)d[0] << 16 | (uint32_t)d[1] << 8 | d[2]) %
	    SEC_DKEY_NV_COUNT;
}

enum wd_err
sec_dkey_create(struct sec_tpm *t, const char *store, const char *name,
    char *err, size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	struct sec_seal_opts so = { .noda = true };
	struct sec_buf key = { 0 };
	struct sec_meta m;
	uint32_t nv = 0;
	enum wd_err e;

	if (sec_stat(store, name, &m, err, errlen) == WD_OK) {
		sec_errf(err, errlen, "data key %s/%s exists already", store, name);
		return WD_EINVAL;
	}
	if ((e = sec_buf_alloc(&key, SEC_DKEY_LEN, err, errlen)) != WD_OK)
		return e;
	if ((e = wd_random(key.p, SEC_DKEY_LEN)) != WD_OK ||
	    (e = wd_random(sc->nvauth, sizeof(sc->nvauth))) != WD_OK) {
		sec_errf(err, errlen, "no randomness from the kernel");
		goto out;
	}
	if ((e = sec_tpm_nv_define(t, SEC_DKEY_NV_FIRST, SEC_DKEY_NV_COUNT,
	    probe_start(store, name), SEC_DKEY_LEN, &nv, err, errlen)) != WD_OK)
		goto out;
	if ((e = sec_tpm_nv_write(t, nv, sc->nvauth, SEC_DKEY_LEN, err,
	    errlen)) != WD_OK)
		goto out;
	/* A 256-bit random auth value is no password to guess: NODA, so
	 * failed attempts with old blobs never lock the TPM out. */
	so.auth = sc->nvauth;
	so.authlen = SEC_DKEY_LEN;
	so.nv = nv;
	e = sec_seal(t, store, name, key.p, SEC_DKEY_LEN, &so, SEC_CREATE, err,
	    errlen);
out:
	wd_wipe(sc->nvauth, sizeof(sc->nvauth));
	sec_buf_free(&key);
	if (e != WD_OK && nv != 0) {
		char ignored[256];

		(void)sec_tpm_nv_undefine(t, nv, SEC_DKEY_LEN, ignored,
		    sizeof(ignored));
	}
	return e;
}

enum wd_err
sec_dkey_unseal(struct sec_tpm *t, const char *store, const char *name,
    unsigned char *out, char *err, size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	struct sec_cache *one = NULL;
	const unsigned char *v;
	struct sec_meta m;
	size_t len;
	enum wd_err e;

	if ((e = sec_stat(store, name, &m, err, errlen)) != WD_OK)
		return e;
	if (m.nv == 0 || m.size != SEC_DKEY_LEN || !m.auth) {
		sec_errf(err, errlen, "%s/%s is not a data key", store, name);
		return WD_EPARSE;
	}
	e = sec_tpm_nv_read(t, m.nv, sc->nvauth, SEC_DKEY_LEN, err, errlen);
	if (e == WD_ENOTFOUND) {
		sec_errf(err, errlen, "data key %s/%s was destroyed: the TPM no "
		    "longer has its NV index 0x%08x, so no copy of it can be "
		    "unsealed", store, name, m.nv);
		return WD_EDESTROYED;
	}
	if (e != WD_OK)
		goto out;
	if ((e = sec_cache_new(DKEY_CACHE, &one, err, errlen)) != WD_OK)
		goto out;
	e = sec_unseal(t, store, name, sc->nvauth, SEC_DKEY_LEN, one, err,
	    errlen);
	if (e == WD_ETPM)
		/* The index exists but opens nothing: it was destroyed and its
		 * handle taken by a newer key (this is an older copy). */
		sec_errf(err, errlen, "data key %s/%s was destroyed: NV index "
		    "0x%08x now holds another key's secret (this is a copy from "
		    "before the key was destroyed)", store, name, m.nv);
	if (e == WD_ETPM)
		e = WD_EDESTROYED;
	if (e != WD_OK)
		goto out;
	v = sec_cache_get(one, name, &len);
	if (v == NULL || len != SEC_DKEY_LEN) {
		sec_errf(err, errlen, "%s/%s is not a data key", store, name);
		e = WD_EPARSE;
		goto out;
	}
	memcpy(out, v, SEC_DKEY_LEN);
out:
	wd_wipe(sc->nvauth, sizeof(sc->nvauth));
	sec_cache_free(one);
	return e;
}

enum wd_err
sec_dkey_destroy(struct sec_tpm *t, const char *store, const char *name,
    uint32_t *nv, char *err, size_t errlen)
{
	struct sec_meta m;
	enum wd_err e;

	if (nv != NULL)
		*nv = 0;
	if ((e = sec_stat(store, name, &m, err, errlen)) != WD_OK)
		return e;
	if (nv != NULL)
		*nv = m.nv;
	if (m.nv != 0) {
		e = sec_tpm_nv_undefine(t, m.nv, SEC_DKEY_LEN, err, errlen);
		/* Gone already (an earlier destroy stopped half way): fine. */
		if (e != WD_OK && e != WD_ENOTFOUND)
			return e;
	}
	return sec_store_shred(store, name, err, errlen);
}
