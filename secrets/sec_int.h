/*
 * sec_int.h - what the files of secrets/ share and nobody else sees: the
 * TPM context, the sealed object as the store holds it, the cache's
 * reserve/commit pair that lets unsealing decrypt straight into locked
 * memory, and error formatting.
 */
#ifndef SEC_INT_H
#define SEC_INT_H

#include <stdarg.h>

#include <tss2/tss2_esys.h>

#include "secrets/sec.h"

#define SEC_DATA_KEY_LEN 32		/* AES-256 key sealed in the TPM */
#define SEC_AUTH_MAX 32			/* sha256 nameAlg: auth <= digest */

struct sec_tpm {
	TSS2_TCTI_CONTEXT *ldr;		/* the TCTI the loader opened */
	TSS2_TCTI_CONTEXT *tcti;	/* ESAPI's: ldr, retried when busy */
	ESYS_CONTEXT *esys;
	ESYS_TR primary;		/* ESYS_TR_NONE until first needed */
	/* A salted HMAC session reused for every Create and Unseal of this
	 * context: starting one costs an ECDH on both sides, the largest
	 * part of an unseal, and on a hardware TPM tens of milliseconds. */
	ESYS_TR hmac;
	/* One locked page for what must not sit in swappable memory on its
	 * way into or out of the TPM: data keys, TPM2B_SENSITIVE_CREATE. */
	struct sec_buf scratch;
	bool locked;			/* holds the process's TPM lock */
	char *tcti_name;		/* as opened: sec_tpm_close_reclaim */
};

/* The locked page of a context, laid out: sensitive bytes pass through
 * here and nowhere else in warden's own memory. */
struct sec_scratch {
	unsigned char key[SEC_DATA_KEY_LEN];	/* data key, sealed or unsealed */
	TPM2B_SENSITIVE_CREATE sens;	/* what Create seals */
	TPM2B_AUTH auth;		/* the object's auth value */
	TPM2B_MAX_NV_BUFFER nv;		/* an NV index's secret on its way */
	unsigned char nvauth[SEC_DKEY_LEN];	/* the same, as an auth value */
};
_Static_assert(sizeof(struct sec_scratch) <= 4096, "scratch is one page");

static inline struct sec_scratch *
sec_scratch(struct sec_tpm *t)
{
	return (struct sec_scratch *)(void *)t->scratch.p;
}

/* A PCR binding: the selection and its canonical text for meta.json. */
struct sec_pcrs {
	TPML_PCR_SELECTION sel;		/* count 0: not bound */
	char text[96];
};

/* One store entry as read from or written to disk. */
struct sec_obj {
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	unsigned char *env;		/* envelope.bin; NULL for a signing key */
	size_t envlen;
	struct sec_meta meta;
};

/* ---- errors (tpm.c) ---- */

void sec_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "TPM: <decoded> (0x<rc>) in <what>[; hint]"; returns WD_ETPM. */
enum wd_err sec_tpm_err(char *err, size_t errlen, const char *what,
    TSS2_RC rc);

/* ---- a busy TPM (tpm_busy.c) ---- */

/* How long warden keeps resending a command the TPM answers as busy
 * (slots full, RETRY, YIELDED, TESTING) before it gives up: waits of
 * 5, 10, 20 ... 200 ms, 2 s in all per run of busy answers. */
#define SEC_TPM_BUSY_MS 2000

/* Is rc one of the TPM's "busy, try again" warnings? */
bool sec_tpm_rc_busy(TSS2_RC rc);
/* A TCTI that forwards to inner and resends busy-answered commands;
 * inner stays the caller's.  Free with sec_tpm_busy_free. */
enum wd_err sec_tpm_busy_wrap(TSS2_TCTI_CONTEXT *inner,
    TSS2_TCTI_CONTEXT **out, char *err, size_t errlen);
void sec_tpm_busy_free(TSS2_TCTI_CONTEXT *c);
/* Resends so far on t, and the last busy code seen (0: none). */
unsigned long sec_tpm_busy_retries(const struct sec_tpm *t);
TSS2_RC sec_tpm_busy_last(const struct sec_tpm *t);
/* Did a command of t give up on object or session slots that stayed
 * full? */
bool sec_tpm_busy_gave_up_full(const struct sec_tpm *t);
/* Sleep ms milliseconds, through signals (the waits for a busy TPM). */
void sec_sleep_ms(long ms);

/* ---- TPM operations (tpm.c); every object they load they flush ---- */

enum wd_err sec_pcrs_parse(const char *spec, struct sec_pcrs *out,
    char *err, size_t errlen);
/* Create the primary if it is not loaded yet. */
enum wd_err sec_tpm_primary(struct sec_tpm *tpm, char *err, size_t errlen);
/* Seal key (scratch memory) under the primary; pub/priv: the blobs. */
enum wd_err sec_tpm_seal(struct sec_tpm *tpm, const unsigned char *key,
    size_t keylen, const struct sec_pcrs *pcrs, const unsigned char *auth,
    size_t authlen, bool noda, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv,
    char *err, size_t errlen);
/* Unseal into key (SEC_DATA_KEY_LEN bytes, scratch memory). */
enum wd_err sec_tpm_unseal(struct sec_tpm *tpm, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, const struct sec_pcrs *pcrs,
    const unsigned char *auth, size_t authlen, unsigned char *key,
    size_t *keylen, char *err, size_t errlen);
/* Create an object from tmpl under the primary (salted session). */
enum wd_err sec_tpm_create(struct sec_tpm *tpm, const TPM2B_PUBLIC *tmpl,
    const TPM2B_SENSITIVE_CREATE *sens, TPM2B_PUBLIC *pub,
    TPM2B_PRIVATE *priv, char *err, size_t errlen);
/* Load pub/priv under the primary; *obj: flush it with sec_tpm_flush. */
enum wd_err sec_tpm_load(struct sec_tpm *tpm, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, ESYS_TR *obj, char *err, size_t errlen);
void sec_tpm_flush(struct sec_tpm *tpm, ESYS_TR *obj);
/* A salted, AES-128-CFB-encrypting session of type (HMAC or POLICY);
 * flush it with sec_tpm_flush. */
enum wd_err sec_tpm_session(struct sec_tpm *tpm, TPM2_SE type,
    TPMA_SESSION attrs, ESYS_TR *out, char *err, size_t errlen);

/* The context's shared salted HMAC session (attrs: DECRYPT/ENCRYPT or
 * 0); after a command on it fails, sec_tpm_hmac_drop it. */
enum wd_err sec_tpm_hmac(struct sec_tpm *tpm, TPMA_SESSION attrs,
    ESYS_TR *out, char *err, size_t errlen);
void sec_tpm_hmac_drop(struct sec_tpm *tpm);

/* The policy digest of PolicyPCR(pcrs) [+ PolicyAuthValue if auth], and
 * the same sequence run in policy session s. */
enum wd_err sec_tpm_policy_digest(struct sec_tpm *tpm,
    const struct sec_pcrs *pcrs, bool auth, TPM2B_DIGEST *out, char *err,
    size_t errlen);
enum wd_err sec_tpm_run_policy(struct sec_tpm *tpm, ESYS_TR s,
    const struct sec_pcrs *pcrs, bool auth, char *err, size_t errlen);
/* ---- NV indices (tpm.c): the destroyable part of a data key ---- */

/* Define an ordinary NV index of size bytes at the first free handle of
 * [first, first+count), probing from first+start.  *out: its handle. */
enum wd_err sec_tpm_nv_define(struct sec_tpm *tpm, uint32_t first,
    uint32_t count, uint32_t start, uint16_t size, uint32_t *out,
    char *err, size_t errlen);
/* Write or read len bytes at offset 0 (parameter-encrypted both ways).
 * Read: WD_ENOTFOUND if the index does not exist. */
enum wd_err sec_tpm_nv_write(struct sec_tpm *tpm, uint32_t handle,
    const unsigned char *data, uint16_t len, char *err, size_t errlen);
enum wd_err sec_tpm_nv_read(struct sec_tpm *tpm, uint32_t handle,
    unsigned char *out, uint16_t len, char *err, size_t errlen);
/* Undefine an index warden defined (size and attributes are checked
 * first); WD_ENOTFOUND if it does not exist. */
enum wd_err sec_tpm_nv_undefine(struct sec_tpm *tpm, uint32_t handle,
    uint16_t size, char *err, size_t errlen);

/* ---- the store (store.c) ---- */

/* Read NAME; WD_ENOTFOUND if absent, WD_EPERM if unsafe. */
enum wd_err sec_store_read(const char *store, const char *name,
    struct sec_obj *out, char *err, size_t errlen);
/* Write NAME atomically; CREATE refuses an existing NAME, REPLACE a
 * missing one.  Creates store (0700) if missing. */
enum wd_err sec_store_write(const char *store, const char *name,
    const struct sec_obj *obj, enum sec_mode mode, char *err, size_t errlen);
void sec_obj_clear(struct sec_obj *obj);
/* Overwrite every file of NAME with random bytes (fsynced), then remove
 * it.  Belt and braces: on journaling or copy-on-write filesystems old
 * blocks may survive, which is why dkey.c destroys in the TPM first. */
enum wd_err sec_store_shred(const char *store, const char *name,
    char *err, size_t errlen);
void sec_now_rfc3339(char out[32]);

/* ---- the cache (cache.c) ---- */

/*
 * Room for len bytes at the end of the region: the caller writes the
 * plaintext there, then commits it under a name or aborts (which wipes).
 * Only one reservation at a time.  NULL when it does not fit.
 */
unsigned char *sec_cache_reserve(struct sec_cache *c, size_t len);
enum wd_err sec_cache_commit(struct sec_cache *c, const char *name,
    size_t len);
void sec_cache_abort(struct sec_cache *c);
/* For tests: the whole region, to check that wiping happened. */
void sec_cache_region(const struct sec_cache *c, const unsigned char **p,
    size_t *len);

/* ---- events ---- */

void sec_event_emit(enum sec_event_kind kind, const char *name,
    enum wd_err result, const char *err);

#endif /* SEC_INT_H */
