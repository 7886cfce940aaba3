/*
 * sec.h - the secrets module: provider credentials sealed to a TPM 2.0,
 * kept as sealed blobs in a store directory and unsealed only into locked,
 * never-dumped memory; and the TPM-resident key that signs audit
 * checkpoints.
 *
 * secrets/ owns the connection to the TPM (tpm2-tss ESAPI through the TCTI
 * loader), the store directory and every file in it, and the locked memory
 * that holds unsealed values.  Callers: the `warden secrets` commands
 * (gateway/cli_secrets.c), the gateway at start and on reload (unseal the
 * credentials its routes name into a struct sec_cache), and audit/ (the
 * sec_sign_* functions).
 *
 * How a credential is kept (template version 1): the TPM seals a random
 * 32-byte data key as a keyedHash object (FIXEDTPM|FIXEDPARENT) under a
 * storage primary recreated on each open from a fixed template, so nothing
 * has to be persisted in the TPM; the credential itself (up to 16 KiB, far
 * over the 128 bytes a sealed object holds) is encrypted with AES-256-GCM
 * under that key, the secret's name being authenticated data.  A store
 * holds one directory per name:
 *
 *   STORE/NAME/tpm.pub       TPM2B_PUBLIC of the sealed object (Tss2_MU)
 *   STORE/NAME/tpm.priv      TPM2B_PRIVATE of the sealed object
 *   STORE/NAME/envelope.bin  "WSE1", 12-byte nonce, 16-byte tag, ciphertext
 *   STORE/NAME/meta.json     name, kind, created, pcrs, auth, template, size
 *
 * STORE and each NAME directory must be 0700, files 0600, all owned by the
 * running user; anything else is refused (WD_EPERM) with the command that
 * fixes it.  A NAME is written into a temporary sibling and moved into
 * place with one rename, so readers see the old secret or the new one.
 * The primary template equals tpm2-tools' `tpm2_createprimary -C o -G ecc`,
 * so an operator can unseal the data key without warden (see README).
 *
 * Errors: each function returns an enum wd_err and writes one line into
 * the caller's err buffer (errlen bytes; err may be NULL).  TPM failures
 * read "TPM: <Tss2_RC_Decode text> (0x<rc>) in <command>", often followed
 * by what it usually means.  No error, log line or event ever holds a
 * secret value.
 *
 * Threads: a struct sec_tpm is used by one thread at a time.  sec_tpm_open
 * sets TSS2_LOG in the environment (tpm2-tss's trace level prints unsealed
 * data), so the first one must happen before other threads start.
 */
#ifndef SEC_H
#define SEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wd.h"

#define SEC_NAME_MAX 64			/* [A-Za-z0-9._-]{1,64} */
#define SEC_VALUE_MAX 16384		/* longest credential */
#define SEC_TEMPLATE_VERSION 1		/* primary + object templates */
#define SEC_SIGN_KEY ".audit-signing-key"	/* store name of the key */
#define SEC_SIG_MAX 72			/* DER ECDSA P-256 signature */

/* Is name a valid secret name?  Names beginning with '.' are valid but
 * reserved for warden's own objects (sec_seal refuses them). */
bool sec_name_valid(const char *name);

/* ---- the TPM ---- */

struct sec_tpm;				/* an open TPM connection */

/*
 * Connect to the TPM through tcti (e.g. "device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=2321").  tcti is required: an empty one would
 * make tpm2-tss fall back to whatever listens on 127.0.0.1:2321.
 * *out: the connection, for sec_tpm_close.
 */
enum wd_err sec_tpm_open(const char *tcti, struct sec_tpm **out,
    char *err, size_t errlen);
/* Flush every transient object and session, wipe, disconnect.  NULL ok. */
void sec_tpm_close(struct sec_tpm *tpm);

/*
 * Flush what processes that are gone left loaded in a TPM without a
 * resource manager (sec_tpm_reclaim in tpm.c says why and how): objects
 * and sessions that stay loaded through a wait of SEC_TPM_BUSY_MS.  For a
 * gateway before its first TPM operation.  *objects, *sessions: how many
 * were flushed.
 */
enum wd_err sec_tpm_reclaim(const char *tcti, unsigned *objects,
    unsigned *sessions, char *err, size_t errlen);
/*
 * sec_tpm_close; and when one of tpm's commands gave up on slots that
 * stayed full, sec_tpm_reclaim on the same TPM, so that what a process
 * that died left there (a warden or a command killed mid-operation) does
 * not fail every operation after this one.
 * *objects, *sessions: how many were flushed (0 when nothing was done).
 */
void sec_tpm_close_reclaim(struct sec_tpm *tpm, unsigned *objects,
    unsigned *sessions);

/* ---- sealed credentials ---- */

struct sec_seal_opts {
	const char *pcrs;		/* "sha256:7,23" ("+" joins banks); NULL: none */
	const unsigned char *auth;	/* auth value, or NULL */
	size_t authlen;			/* at most 32 */
	bool noda;			/* exempt from dictionary-attack lockout */
	uint32_t nv;			/* NV index its auth lives in (dkey.c); 0: none */
};

enum sec_mode {
	SEC_CREATE,			/* NAME must not exist yet */
	SEC_REPLACE,			/* NAME must exist; replaced atomically */
};

/*
 * Seal value (1..SEC_VALUE_MAX bytes) as NAME in store (created 0700 if
 * missing).  On any failure the store is unchanged: a replaced secret keeps
 * its old value.  opts may be NULL.
 */
enum wd_err sec_seal(struct sec_tpm *tpm, const char *store, const char *name,
    const unsigned char *value, size_t len, const struct sec_seal_opts *opts,
    enum sec_mode mode, char *err, size_t errlen);

struct sec_cache;

/*
 * Unseal NAME from store into cache (replacing, and wiping, a value of the
 * same name).  The plaintext is decrypted straight into the cache's locked
 * region; the data key exists only in the context's locked scratch page
 * (the copy tpm2-tss keeps of a response is overwritten).  auth/authlen:
 * the auth value it was sealed with, or NULL/0.
 */
enum wd_err sec_unseal(struct sec_tpm *tpm, const char *store,
    const char *name, const unsigned char *auth, size_t authlen,
    struct sec_cache *into, char *err, size_t errlen);

enum sec_kind {
	SEC_KIND_CREDENTIAL,		/* sealed data key + envelope */
	SEC_KIND_SIGNING_KEY,		/* TPM-resident ECDSA P-256 key */
	SEC_KIND_IMPORTED_KEY,		/* an external RSA key imported (import.c) */
};

/* What the store knows about a secret; never the value. */
struct sec_meta {
	char name[SEC_NAME_MAX + 1];
	enum sec_kind kind;
	char created[32];		/* RFC 3339, UTC */
	char pcrs[96];			/* canonical binding; "" when none */
	bool auth;			/* sealed with an auth value */
	int template_version;
	size_t size;			/* credential length in bytes */
	uint32_t nv;			/* NV index holding its auth value; 0: none */
};

/* Metadata of NAME (WD_ENOTFOUND if absent).  *out: filled in. */
enum wd_err sec_stat(const char *store, const char *name,
    struct sec_meta *out, char *err, size_t errlen);

/* Call cb for every secret in store, sorted by name.  A missing store is
 * an empty one. */
enum wd_err sec_list(const char *store,
    void (*cb)(const struct sec_meta *meta, void *arg), void *arg,
    char *err, size_t errlen);

/* Remove NAME from store (WD_ENOTFOUND if absent); one rename makes it
 * disappear at once. */
enum wd_err sec_remove(const char *store, const char *name,
    char *err, size_t errlen);

/* ---- locked memory ---- */

/*
 * A buffer of locked pages (mlock), excluded from core dumps
 * (MADV_DONTDUMP) and from fork()ed children (MADV_DONTFORK), wiped
 * before it is unmapped.  For plaintext that has to exist outside the
 * cache, such as a value read from standard input.
 */
struct sec_buf {
	unsigned char *p;		/* len usable bytes */
	size_t len;
	size_t maplen;			/* whole pages mapped */
};

#define SEC_AUTH_MAX 32		/* longest auth value */

/*
 * Read an auth value from a file (regular, ours, mode 0600 or tighter)
 * into locked memory *out (*len bytes; sec_buf_free it).
 */
enum wd_err sec_read_auth_file(const char *path, struct sec_buf *out,
    size_t *len, char *err, size_t errlen);

/* WD_ELIMIT when the pages cannot be locked (RLIMIT_MEMLOCK). */
enum wd_err sec_buf_alloc(struct sec_buf *b, size_t len,
    char *err, size_t errlen);
void sec_buf_free(struct sec_buf *b);

/*
 * The gateway's credential cache: name -> value, every value inside one
 * locked region of capacity bytes.  Values are wiped when replaced,
 * removed and freed.  Not synchronised: build a cache, then share it
 * read-only (the gateway builds a new one on reload and swaps it); a
 * pointer from sec_cache_get stays valid until the cache next changes.
 */
enum wd_err sec_cache_new(size_t capacity, struct sec_cache **out,
    char *err, size_t errlen);
/* Copy value in under name (WD_ELIMIT when it does not fit). */
enum wd_err sec_cache_put(struct sec_cache *c, const char *name,
    const unsigned char *value, size_t len);
/* The value of name and *len, or NULL. */
const unsigned char *sec_cache_get(const struct sec_cache *c,
    const char *name, size_t *len);
/* Wipe and forget name; false if it was not there. */
bool sec_cache_remove(struct sec_cache *c, const char *name);
size_t sec_cache_count(const struct sec_cache *c);
void sec_cache_free(struct sec_cache *c);	/* wipes; NULL ok */

/*
 * Make the process undumpable (PR_SET_DUMPABLE 0: no core, no ptrace by
 * other users, /proc/PID/mem closed to them) and set RLIMIT_CORE to 0.
 * Call before the first unseal.
 */
enum wd_err sec_harden_process(char *err, size_t errlen);

/* ---- the audit signing key (issue 6; an auth value since issue 11) ---- */

/*
 * Make sure store holds SEC_SIGN_KEY, an ECDSA P-256 key created in the
 * TPM under the primary (FIXEDTPM|FIXEDPARENT: its private part never
 * leaves the TPM in clear) whose use needs auth (authlen 1..SEC_AUTH_MAX
 * bytes, normally secrets.auth_file): USERWITHAUTH, subject to the TPM's
 * dictionary-attack lockout.  authlen 0 makes or accepts a key anyone who
 * reaches the TPM and reads its blobs can sign with: only for development
 * (the gateway allows it with --dev-unauthenticated-audit-key).  An
 * existing key without an auth value while auth is given is refused
 * (WD_EPERM), with how to replace it; the log's key_id changes with it.
 * pcrs ("sha256:7", NULL or "" for none): bind the key to those PCRs as
 * well, so it signs only while they hold the values they had when it was
 * made (a policy: PolicyPCR, then PolicyAuthValue; no USERWITHAUTH, so
 * the auth value alone is not enough).  An existing key bound otherwise
 * than pcrs says is refused (WD_EPERM).  *created: whether it was made
 * now (may be NULL).
 */
enum wd_err sec_sign_key_ensure(struct sec_tpm *tpm, const char *store,
    const unsigned char *auth, size_t authlen, const char *pcrs,
    bool *created, char *err, size_t errlen);

/*
 * Sign a SHA-256 digest with the signing key, proving auth (its auth
 * value; NULL/0 for a key made without one) through a salted HMAC
 * session, so the value never crosses to the TPM in clear; a key bound
 * to PCRs (meta.pcrs) is used through its policy instead.  der_sig holds
 * *len bytes (SEC_SIG_MAX is enough); on return *len is the DER
 * signature's length.  `openssl dgst -sha256 -verify pub.pem -signature
 * sig DATA` accepts it.
 */
enum wd_err sec_sign_digest(struct sec_tpm *tpm, const char *store,
    const unsigned char *auth, size_t authlen,
    const unsigned char digest[32], unsigned char *der_sig, size_t *len,
    char *err, size_t errlen);

/* The signing key's public half as PEM (SubjectPublicKeyInfo); *pem is
 * malloc'd, the caller frees it.  Needs no TPM. */
/*
 * An external RSA-2048 private key (PEM bytes) imported into the TPM as
 * NAME, kind imported-key (import.c); it can then only sign, RSASSA with
 * SHA-256, inside this TPM.  The caller wipes pem.
 */
enum wd_err sec_key_import(struct sec_tpm *tpm, const char *store,
    const char *name, const unsigned char *pem, size_t pemlen, char *err,
    size_t errlen);
/* RS256 signature (256 bytes) over a SHA-256 digest with imported NAME. */
enum wd_err sec_key_sign_rs256(struct sec_tpm *tpm, const char *store,
    const char *name, const unsigned char digest[32], unsigned char *sig,
    size_t *siglen, char *err, size_t errlen);
enum wd_err sec_sign_pubkey_pem(const char *store, char **pem,
    char *err, size_t errlen);

/* ---- the rollback counter (issue 11; counter.c) ---- */

/* Default NV index of the audit counter, in the owner range. */
#define SEC_COUNTER_NV_INDEX 0x01800a0du
#define SEC_COUNTER_NAME_HEX 68		/* nameAlg (2) + SHA-256 (32), hex */

/* A counter's state as read: the index, its TPM name (changes if the
 * index is deleted and defined again) and its value. */
struct sec_counter {
	uint32_t index;
	char name[SEC_COUNTER_NAME_HEX + 1];
	uint64_t value;
};

/* Is index an NV index warden may define a counter at? */
bool sec_counter_index_valid(uint32_t index);
/* "0x01800a0d" -> index; WD_EPARSE if not hex or not valid. */
enum wd_err sec_counter_parse_index(const char *s, uint32_t *out);

/*
 * Define the monotonic counter at index (owner hierarchy, NT_COUNTER,
 * owner read/write, NO_DA) unless it exists; an existing index must be
 * such a counter (WD_EINVAL otherwise: an ordinary index can be written
 * to any value).  A new counter is incremented once so it can be read.
 * *created may be NULL; *out: its state now.
 */
enum wd_err sec_counter_define(struct sec_tpm *tpm, uint32_t index,
    bool *created, struct sec_counter *out, char *err, size_t errlen);
/* Increment by one, then read.  Hardware TPMs rate-limit NV writes
 * (WD_ETPM, "rate limited"): call on a bounded schedule. */
enum wd_err sec_counter_increment(struct sec_tpm *tpm, uint32_t index,
    struct sec_counter *out, char *err, size_t errlen);
/* Read without changing (WD_ENOTFOUND when the index is not defined). */
enum wd_err sec_counter_read(struct sec_tpm *tpm, uint32_t index,
    struct sec_counter *out, char *err, size_t errlen);
/* ---- AES-256-GCM (envelope.c): one implementation for every envelope ---- */

#define SEC_GCM_NONCE 12
#define SEC_GCM_TAG 16

/*
 * AES-256-GCM of in[len] into out[len] (out may not overlap in), with aad
 * authenticated; encrypt writes tag, decrypt checks it.  False on any
 * failure, a wrong tag included (out is then wiped).  The key schedule is
 * cleansed before return.
 */
bool sec_gcm(bool encrypt, const unsigned char key[32],
    const unsigned char nonce[SEC_GCM_NONCE], const void *aad, size_t aadlen,
    const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[SEC_GCM_TAG]);

/* ---- destroyable data keys (dkey.c): the keys of kept payloads ---- */

/*
 * A data key that can be destroyed for good, backups included (audit/
 * encrypts each tenant's kept payloads under one per month).  It is a
 * 32-byte credential of a store (one store per tenant, the month as its
 * name), sealed like any other, but with an auth value that exists only
 * inside the TPM, in an NV index of its own (meta.json "nv"; owner range
 * SEC_DKEY_NV_FIRST..+SEC_DKEY_NV_COUNT).  Unsealing reads that index over
 * an encrypted session; destroying undefines it, so neither the blobs in
 * the store nor any copy of them can ever be unsealed again: a new index
 * at the same handle holds a new random value, which fails the sealed
 * object's auth check.  The blobs are then overwritten and removed too.
 */
#define SEC_DKEY_LEN 32
#define SEC_DKEY_NV_FIRST 0x01a50000u
#define SEC_DKEY_NV_COUNT 0x10000u

/* Create key name (e.g. "2026-12") in store: a fresh NV index and value,
 * a fresh random data key sealed with it.  WD_EINVAL if it exists. */
enum wd_err sec_dkey_create(struct sec_tpm *tpm, const char *store,
    const char *name, char *err, size_t errlen);
/*
 * Unseal key name into out (SEC_DKEY_LEN bytes of the caller's locked
 * memory).  WD_ENOTFOUND: no such key in store; WD_EDESTROYED: the store
 * has its blobs but the TPM no longer has its NV index (destroyed, or a
 * restored copy); WD_ETPM: the TPM's reason.
 */
enum wd_err sec_dkey_unseal(struct sec_tpm *tpm, const char *store,
    const char *name, unsigned char *out, char *err, size_t errlen);
/*
 * Destroy key name: undefine its NV index (the part no copy can undo),
 * then overwrite and remove its blobs.  *nv: the index it had (may be
 * NULL).  If the TPM step fails nothing is removed: the key is not
 * destroyed and the error says why.
 */
enum wd_err sec_dkey_destroy(struct sec_tpm *tpm, const char *store,
    const char *name, uint32_t *nv, char *err, size_t errlen);

/* ---- events for the audit log ---- */

enum sec_event_kind {
	SEC_EV_SEAL,
	SEC_EV_ROTATE,
	SEC_EV_REMOVE,
	SEC_EV_UNSEAL,
	SEC_EV_IMPORT,			/* sec_key_import */
};

struct sec_event {
	enum sec_event_kind kind;
	const char *name;		/* the secret's name */
	enum wd_err result;
	const char *error;		/* the err text when result != WD_OK */
};

/*
 * Hand every seal, rotate, rm, import and unseal to fn.  `warden
 * secrets` (gateway/cli_secrets.c) installs it and records seal, rotate,
 * rm and import-key in the audit log (through its inbox); the gateway
 * does not, as its own unseals are not changes.  Set once, before use; fn runs on the calling
 * thread.
 */
void sec_set_event_hook(void (*fn)(const struct sec_event *ev, void *arg),
    void *arg);
const char *sec_event_name(enum sec_event_kind kind);

#endif /* SEC_H */
