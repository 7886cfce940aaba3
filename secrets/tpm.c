/*
 * tpm.c - everything that talks to the TPM: the TCTI and ESAPI contexts,
 * the storage primary, sessions, sealing and unsealing a data key, PCR
 * policies, and turning TSS2_RC codes into sentences.
 *
 * A TPM without a resource manager (swtpm, or /dev/tpm0) has about three
 * object slots and keeps whatever a client loads after the client leaves,
 * so every object and session loaded here is flushed before the function
 * that loaded it returns; only the primary lives as long as the context.
 */
#include "secrets/sec_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

/*
 * The storage primary, template version 1: exactly what
 * `tpm2_createprimary -C o -G ecc` uses (ECC NIST P-256, AES-128-CFB,
 * restricted decrypt, empty unique), so the same key comes out of both and
 * tpm2-tools can load warden's blobs.  Change it only with
 * SEC_TEMPLATE_VERSION: every sealed blob depends on it.
 */
static const TPM2B_PUBLIC primary_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
		    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
		    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
		.parameters.eccDetail = {
			.symmetric = {
				.algorithm = TPM2_ALG_AES,
				.keyBits.aes = 128,
				.mode.aes = TPM2_ALG_CFB,
			},
			.scheme.scheme = TPM2_ALG_NULL,
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

static const TPMT_SYM_DEF session_sym = {
	.algorithm = TPM2_ALG_AES,
	.keyBits.aes = 128,
	.mode.aes = TPM2_ALG_CFB,
};

void
sec_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

_Static_assert(SEC_TPM_BUSY_MS == 2000, "rc_hint says 2 s");

/* What a TPM error usually means for a sealed secret, or NULL. */
static const char *
rc_hint(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK, base = rc & 0xffff;

	if (layer == TSS2_TCTI_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) {
		if (base == TSS2_BASE_RC_IO_ERROR ||
		    base == TSS2_BASE_RC_NO_CONNECTION)
			return "the TPM is not reachable: is it running, is the TCTI right?";
		if (base == TSS2_BASE_RC_NOT_IMPLEMENTED ||
		    base == TSS2_BASE_RC_NOT_SUPPORTED)
			return "this TCTI is not installed (tpm2-tss TCTI libraries)";
		return NULL;
	}
	if (layer != TSS2_TPM_RC_LAYER)
		return NULL;
	if (rc == TPM2_RC_OBJECT_MEMORY || rc == TPM2_RC_SESSION_MEMORY ||
	    rc == TPM2_RC_MEMORY || rc == TPM2_RC_OBJECT_HANDLES ||
	    rc == TPM2_RC_SESSION_HANDLES)
		return "the TPM's slots were still full after warden retried for "
		    "2 s: another process holds objects or sessions in this TPM "
		    "(without a resource manager) or left them loaded when it "
		    "died; use device:/dev/tpmrm0, flush them (tpm2_flushcontext "
		    "-t; -l for sessions), or restart swtpm";
	if (rc == TPM2_RC_RETRY || rc == TPM2_RC_YIELDED || rc == TPM2_RC_TESTING)
		return "the TPM was still busy after warden retried for 2 s";
	if (rc == TPM2_RC_LOCKOUT)
		return "the TPM is in dictionary-attack lockout after wrong auth "
		    "values; wait or reset it with the lockout authorization";
	if (rc == TPM2_RC_INITIALIZE)
		return "the TPM was not started up (TPM2_Startup)";
	if (rc & TPM2_RC_FMT1) {
		switch (rc & (TPM2_RC_FMT1 | 0x3f)) {
		case TPM2_RC_POLICY_FAIL:
			return "the PCR values or the auth value differ from those "
			    "it was sealed with";
		case TPM2_RC_AUTH_FAIL:
		case TPM2_RC_BAD_AUTH:
			return "wrong auth value";
		case TPM2_RC_INTEGRITY:
			return "sealed by another TPM, or the TPM was cleared, or "
			    "the blob was modified";
		case TPM2_RC_SIZE:
			return "a blob has the wrong size";
		}
	}
	return NULL;
}

enum wd_err
sec_tpm_err(char *err, size_t errlen, const char *what, TSS2_RC rc)
{
	const char *hint = rc_hint(rc);

	sec_errf(err, errlen, "TPM: %s (0x%x) in %s%s%s", Tss2_RC_Decode(rc),
	    (unsigned)rc, what, hint ? "; " : "", hint ? hint : "");
	return WD_ETPM;
}

/*
 * tpm2-tss reads TSS2_LOG on its first log call, and at trace level it
 * prints command and response buffers: unsealed secrets included, even
 * with parameter encryption.  So logging is forced off before the first
 * TSS call, whatever the environment says.
 */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void
quiet_tss(void)
{
	setenv("TSS2_LOG", "all+none", 1);
}

/*
 * One open context per process at a time; other threads wait in
 * sec_tpm_open until it is closed.  Each context holds up to two objects
 * (the primary and one loaded key) and two sessions while it works, and
 * the TPM has three slots of each for every process together: two
 * contexts of one process would leave a CLI beside it nothing, and three
 * would fill the TPM by themselves.  Recursive, so a thread that opens a
 * second context while it holds one (none does today) goes on rather than
 * waiting for itself.
 */
static pthread_mutex_t ctx_lock;
static pthread_once_t ctx_lock_once = PTHREAD_ONCE_INIT;

static void
ctx_lock_init(void)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ctx_lock, &a);
	pthread_mutexattr_destroy(&a);
}

enum wd_err
sec_tpm_open(const char *tcti, struct sec_tpm **out, char *err, size_t errlen)
{
	struct sec_tpm *t = NULL;
	char what[300];
	enum wd_err e;
	TSS2_RC rc;

	*out = NULL;
	if (tcti == NULL || *tcti == '\0') {
		sec_errf(err, errlen, "no TPM named: give a TCTI (secrets.tcti or "
		    "--tcti, e.g. device:/dev/tpmrm0); an empty one would use "
		    "whatever listens on 127.0.0.1:2321");
		return WD_EINVAL;
	}
	pthread_once(&quiet_once, quiet_tss);
	pthread_once(&ctx_lock_once, ctx_lock_init);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		sec_errf(err, errlen, "out of memory");
		return WD_ENOMEM;
	}
	pthread_mutex_lock(&ctx_lock);
	t->locked = true;
	t->primary = t->hmac = ESYS_TR_NONE;
	if ((e = sec_buf_alloc(&t->scratch, sizeof(struct sec_scratch), err,
	    errlen)) != WD_OK)
		goto out;
	if ((t->tcti_name = strdup(tcti)) == NULL) {
		sec_errf(err, errlen, "out of memory");
		e = WD_ENOMEM;
		goto out;
	}
	snprintf(what, sizeof(what), "connecting to '%s'", tcti);
	rc = Tss2_TctiLdr_Initialize(tcti, &t->ldr);
	if (rc != TSS2_RC_SUCCESS) {
		t->ldr = NULL;
		e = sec_tpm_err(err, errlen, what, rc);
		goto out;
	}
	/* ESAPI talks through the busy wrapper (tpm_busy.c): slots another
	 * process holds for a moment are waited for, not an error. */
	if ((e = sec_tpm_busy_wrap(t->ldr, &t->tcti, err, errlen)) != WD_OK)
		goto out;
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		t->esys = NULL;
		e = sec_tpm_err(err, errlen, what, rc);
		goto out;
	}
	*out = t;
	t = NULL;
	e = WD_OK;
out:
	sec_tpm_close(t);
	return e;
}

/* ---- what dead processes left loaded ---- */

#define RECLAIM_MAX 64		/* handles looked at per kind */
#define RECLAIM_STEP_MS 50

struct handles {
	TPM2_HANDLE h[RECLAIM_MAX];
	unsigned n;
};

/* The loaded handles of one kind (transient objects, loaded sessions). */
static bool
list_handles(struct sec_tpm *t, TPM2_HANDLE first, struct handles *out)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	out->n = 0;
	rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, TPM2_CAP_HANDLES, first, RECLAIM_MAX, &more, &cap);
	if (rc != TSS2_RC_SUCCESS || cap == NULL)
		return false;
	for (UINT32 i = 0; i < cap->data.handles.count && out->n < RECLAIM_MAX;
	    i++)
		if ((cap->data.handles.handle[i] >> TPM2_HR_SHIFT) ==
		    (first >> TPM2_HR_SHIFT) ||
		    first == TPM2_LOADED_SESSION_FIRST)
			out->h[out->n++] = cap->data.handles.handle[i];
	Esys_Free(cap);
	return true;
}

/* Keep in *keep only the handles also in now. */
static void
keep_common(struct handles *keep, const struct handles *now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < keep->n; i++)
		for (unsigned j = 0; j < now->n; j++)
			if (keep->h[i] == now->h[j]) {
				keep->h[n++] = keep->h[i];
				break;
			}
	keep->n = n;
}

static unsigned
flush_handles(struct sec_tpm *t, const struct handles *hs)
{
	unsigned n = 0;

	for (unsigned i = 0; i < hs->n; i++) {
		ESYS_TR obj = ESYS_TR_NONE;

		if (Esys_TR_FromTPMPublic(t->esys, hs->h[i], ESYS_TR_NONE,
		    ESYS_TR_NONE, ESYS_TR_NONE, &obj) != TSS2_RC_SUCCESS)
			continue;
		if (Esys_FlushContext(t->esys, obj) == TSS2_RC_SUCCESS)
			n++;
		else
			(void)Esys_TR_Close(t->esys, &obj);
	}
	return n;
}

/*
 * A TPM without a resource manager (swtpm's socket, /dev/tpm0) keeps what
 * a process loaded until someone flushes it, and swtpm has three object
 * slots.  A warden killed (kill -9) while it signed a checkpoint or
 * unsealed a credential leaves its primary and key there; after two such
 * deaths no operation could load what it needs, and the gateway would not
 * start again until swtpm did.  So a gateway, before its first TPM
 * operation and after one that gave up on full slots
 * (sec_tpm_close_reclaim), looks at what is loaded.  Nothing of this
 * process is (no context of ours is open: ctx_lock), and an operation of
 * another warden (a CLI command) holds its objects for milliseconds: what
 * stays loaded through SEC_TPM_BUSY_MS of looking was left by a process
 * that is gone, and is flushed.  An operation that gets caught anyway
 * fails with a TPM error and can be run again.  Behind a resource manager
 * (/dev/tpmrm0) other connections' objects are not visible and go with
 * their connection: nothing is found.
 */
enum wd_err
sec_tpm_reclaim(const char *tcti, unsigned *objects, unsigned *sessions,
    char *err, size_t errlen)
{
	static const TPM2_HANDLE kinds[2] = { TPM2_TRANSIENT_FIRST,
		TPM2_LOADED_SESSION_FIRST };
	struct handles stale[2], now;
	struct sec_tpm *t = NULL;
	enum wd_err e;

	*objects = *sessions = 0;
	if ((e = sec_tpm_open(tcti, &t, err, errlen)) != WD_OK)
		return e;
	for (int k = 0; k < 2; k++)
		(void)list_handles(t, kinds[k], &stale[k]);	/* none on error */
	for (long waited = 0; (stale[0].n > 0 || stale[1].n > 0) &&
	    waited < SEC_TPM_BUSY_MS; waited += RECLAIM_STEP_MS) {
		sec_sleep_ms(RECLAIM_STEP_MS);
		for (int k = 0; k < 2; k++)
			if (stale[k].n > 0 && list_handles(t, kinds[k], &now))
				keep_common(&stale[k], &now);
	}
	*objects = flush_handles(t, &stale[0]);
	*sessions = flush_handles(t, &stale[1]);
	sec_tpm_close(t);
	return WD_OK;
}

void
sec_tpm_close(struct sec_tpm *t)
{
	if (t == NULL)
		return;
	if (t->esys != NULL) {
		sec_tpm_flush(t, &t->hmac);
		sec_tpm_flush(t, &t->primary);
		Esys_Finalize(&t->esys);
	}
	sec_tpm_busy_free(t->tcti);
	if (t->ldr != NULL)
		Tss2_TctiLdr_Finalize(&t->ldr);
	sec_buf_free(&t->scratch);
	if (t->locked)
		pthread_mutex_unlock(&ctx_lock);
	free(t->tcti_name);
	free(t);
}

void
sec_tpm_close_reclaim(struct sec_tpm *t, unsigned *objects,
    unsigned *sessions)
{
	char *tcti = NULL, err[256];

	*objects = *sessions = 0;
	if (t != NULL && sec_tpm_busy_gave_up_full(t)) {
		tcti = t->tcti_name;	/* taken: the close does not free it */
		t->tcti_name = NULL;
	}
	sec_tpm_close(t);		/* lets go of ctx_lock first */
	if (tcti != NULL &&
	    sec_tpm_reclaim(tcti, objects, sessions, err, sizeof(err)) != WD_OK)
		*objects = *sessions = 0;
	free(tcti);
}

void
sec_tpm_flush(struct sec_tpm *t, ESYS_TR *obj)
{
	if (*obj != ESYS_TR_NONE)
		(void)Esys_FlushContext(t->esys, *obj);
	*obj = ESYS_TR_NONE;
}

enum wd_err
sec_tpm_primary(struct sec_tpm *t, char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE none = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation = { 0 };
	TSS2_RC rc;

	if (t->primary != ESYS_TR_NONE)
		return WD_OK;
	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &none, &primary_template, &outside,
	    &creation, &t->primary, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		t->primary = ESYS_TR_NONE;
		return sec_tpm_err(err, errlen, "CreatePrimary (owner hierarchy)", rc);
	}
	return WD_OK;
}

/*
 * Salted with the primary: the session key comes from a secret only the
 * TPM can decrypt, so AES-128-CFB parameter encryption keeps sealed data
 * off the bus in clear even against someone who watches it.
 */
enum wd_err
sec_tpm_session(struct sec_tpm *t, TPM2_SE type, TPMA_SESSION attrs,
    ESYS_TR *out, char *err, size_t errlen)
{
	enum wd_err e;
	TSS2_RC rc;

	*out = ESYS_TR_NONE;
	if ((e = sec_tpm_primary(t, err, errlen)) != WD_OK)
		return e;
	rc = Esys_StartAuthSession(t->esys, t->primary, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &session_sym,
	    TPM2_ALG_SHA256, out);
	if (rc != TSS2_RC_SUCCESS) {
		*out = ESYS_TR_NONE;
		return sec_tpm_err(err, errlen, "StartAuthSession", rc);
	}
	rc = Esys_TRSess_SetAttributes(t->esys, *out,
	    attrs | TPMA_SESSION_CONTINUESESSION, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		sec_tpm_flush(t, out);
		return sec_tpm_err(err, errlen, "TRSess_SetAttributes", rc);
	}
	return WD_OK;
}

/*
 * The context's shared HMAC session, set to encrypt as attrs says.  A
 * command that fails through it drops it (hmac_drop): after an error its
 * nonces may be out of step, and a fresh one is cheap next to a mystery.
 */
static enum wd_err
hmac_session(struct sec_tpm *t, TPMA_SESSION attrs, ESYS_TR *out, char *err,
    size_t errlen)
{
	enum wd_err e;
	TSS2_RC rc;

	if (t->hmac == ESYS_TR_NONE &&
	    (e = sec_tpm_session(t, TPM2_SE_HMAC, attrs, &t->hmac, err,
	    errlen)) != WD_OK)
		return e;
	rc = Esys_TRSess_SetAttributes(t->esys, t->hmac,
	    attrs | TPMA_SESSION_CONTINUESESSION, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		sec_tpm_flush(t, &t->hmac);
		return sec_tpm_err(err, errlen, "TRSess_SetAttributes", rc);
	}
	*out = t->hmac;
	return WD_OK;
}

static void
hmac_drop(struct sec_tpm *t)
{
	sec_tpm_flush(t, &t->hmac);
}

enum wd_err
sec_tpm_hmac(struct sec_tpm *t, TPMA_SESSION attrs, ESYS_TR *out, char *err,
    size_t errlen)
{
	return hmac_session(t, attrs, out, err, errlen);
}

void
sec_tpm_hmac_drop(struct sec_tpm *t)
{
	hmac_drop(t);
}

enum wd_err
sec_pcrs_parse(const char *spec, struct sec_pcrs *out, char *err,
    size_t errlen)
{
	static const struct { const char *name; TPMI_ALG_HASH alg; } banks[] = {
		{ "sha1", TPM2_ALG_SHA1 }, { "sha256", TPM2_ALG_SHA256 },
		{ "sha384", TPM2_ALG_SHA384 }, { "sha512", TPM2_ALG_SHA512 },
	};
	const char *p = spec;
	size_t tl = 0;

	memset(out, 0, sizeof(*out));
	if (spec == NULL || *spec == '\0' || strcmp(spec, "none") == 0)
		return WD_OK;
	while (*p != '\0') {
		TPMS_PCR_SELECTION *s;
		size_t i, n = strcspn(p, ":");

		for (i = 0; i < sizeof(banks) / sizeof(banks[0]); i++)
			if (strlen(banks[i].name) == n &&
			    strncmp(p, banks[i].name, n) == 0)
				break;
		if (i == sizeof(banks) / sizeof(banks[0]) || p[n] != ':')
			goto bad;
		for (uint32_t j = 0; j < out->sel.count; j++)
			if (out->sel.pcrSelections[j].hash == banks[i].alg)
				goto bad;	/* a bank twice */
		if (out->sel.count == TPM2_NUM_PCR_BANKS)
			goto bad;
		s = &out->sel.pcrSelections[out->sel.count++];
		s->hash = banks[i].alg;
		s->sizeofSelect = 3;
		p += n + 1;
		for (;;) {
			char *end;
			long idx = strtol(p, &end, 10);

			if (end == p || *p < '0' || *p > '9' || idx < 0 || idx > 23)
				goto bad;
			s->pcrSelect[idx / 8] |= (uint8_t)(1u << (idx % 8));
			p = end;
			if (*p != ',')
				break;
			p++;
		}
		if (*p == '+')
			p++;
		else if (*p != '\0')
			goto bad;
	}
	/* Canonical text: banks as given, indices sorted and unique. */
	for (uint32_t j = 0; j < out->sel.count; j++) {
		const TPMS_PCR_SELECTION *s = &out->sel.pcrSelections[j];
		const char *bn = "?";
		const char *sep = ":";

		for (size_t i = 0; i < sizeof(banks) / sizeof(banks[0]); i++)
			if (banks[i].alg == s->hash)
				bn = banks[i].name;
		tl += (size_t)snprintf(out->text + tl, sizeof(out->text) - tl,
		    "%s%s", j ? "+" : "", bn);
		for (int idx = 0; idx < 24 && tl < sizeof(out->text); idx++)
			if (s->pcrSelect[idx / 8] & (1u << (idx % 8))) {
				tl += (size_t)snprintf(out->text + tl,
				    sizeof(out->text) - tl, "%s%d", sep, idx);
				sep = ",";
			}
		if (tl >= sizeof(out->text))
			goto bad;
	}
	return WD_OK;
bad:
	memset(out, 0, sizeof(*out));
	sec_errf(err, errlen, "bad PCR selection '%.64s': expected like "
	    "sha256:7,23 (banks sha1, sha256, sha384, sha512 joined by '+'; "
	    "PCRs 0-23)", spec);
	return WD_EINVAL;
}

/* PolicyPCR (current values), then PolicyAuthValue if there is an auth
 * value: the same sequence for the trial digest and for unsealing. */
static enum wd_err
run_policy(struct sec_tpm *t, ESYS_TR s, const struct sec_pcrs *pcrs,
    bool auth, char *err, size_t errlen)
{
	TPM2B_DIGEST current = { 0 };	/* empty: the TPM reads the PCRs */
	TSS2_RC rc;

	rc = Esys_PolicyPCR(t->esys, s, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &current, &pcrs->sel);
	if (rc != TSS2_RC_SUCCESS)
		return sec_tpm_err(err, errlen, "PolicyPCR", rc);
	if (auth) {
		rc = Esys_PolicyAuthValue(t->esys, s, ESYS_TR_NONE, ESYS_TR_NONE,
		    ESYS_TR_NONE);
		if (rc != TSS2_RC_SUCCESS)
			return sec_tpm_err(err, errlen, "PolicyAuthValue", rc);
	}
	return WD_OK;
}

static enum wd_err
policy_digest(struct sec_tpm *t, const struct sec_pcrs *pcrs, bool auth,
    TPM2B_DIGEST *out, char *err, size_t errlen)
{
	static const TPMT_SYM_DEF none = { .algorithm = TPM2_ALG_NULL };
	TPM2B_DIGEST *d = NULL;
	ESYS_TR s = ESYS_TR_NONE;
	enum wd_err e;
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &none,
	    TPM2_ALG_SHA256, &s);
	if (rc != TSS2_RC_SUCCESS) {
		s = ESYS_TR_NONE;
		e = sec_tpm_err(err, errlen, "StartAuthSession (trial)", rc);
		goto out;
	}
	if ((e = run_policy(t, s, pcrs, auth, err, errlen)) != WD_OK)
		goto out;
	rc = Esys_PolicyGetDigest(t->esys, s, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &d);
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "PolicyGetDigest", rc);
		goto out;
	}
	*out = *d;
	e = WD_OK;
out:
	Esys_Free(d);
	sec_tpm_flush(t, &s);
	return e;
}

enum wd_err
sec_tpm_policy_digest(struct sec_tpm *t, const struct sec_pcrs *pcrs,
    bool auth, TPM2B_DIGEST *out, char *err, size_t errlen)
{
	return policy_digest(t, pcrs, auth, out, err, errlen);
}

enum wd_err
sec_tpm_run_policy(struct sec_tpm *t, ESYS_TR s, const struct sec_pcrs *pcrs,
    bool auth, char *err, size_t errlen)
{
	return run_policy(t, s, pcrs, auth, err, errlen);
}

/*
 * Esys_Create keeps a copy of its inSensitive argument (a data key) in
 * the ESYS_CONTEXT, and frees it unwiped at Esys_Finalize.  A second
 * Create with an empty sensitive part and a handle ESAPI does not know
 * overwrites that copy, then fails inside ESAPI (bad ESYS_TR) before
 * anything reaches the TPM.  test_secrets.c checks that no copy of a data
 * key survives in process memory, so a tpm2-tss that orders this
 * differently shows up there.
 */
static void
scrub_create_input(struct sec_tpm *t)
{
	static const TPM2B_SENSITIVE_CREATE none = { 0 };
	static const TPM2B_PUBLIC tmpl = { 0 };
	static const TPM2B_DATA outside = { 0 };
	static const TPML_PCR_SELECTION creation = { 0 };

	(void)Esys_Create(t->esys, (ESYS_TR)0xfffffff0u, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &none, &tmpl, &outside, &creation, NULL,
	    NULL, NULL, NULL, NULL);
}

enum wd_err
sec_tpm_create(struct sec_tpm *t, const TPM2B_PUBLIC *tmpl,
    const TPM2B_SENSITIVE_CREATE *sens, TPM2B_PUBLIC *pub,
    TPM2B_PRIVATE *priv, char *err, size_t errlen)
{
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation = { 0 };
	TPM2B_PUBLIC *opub = NULL;
	TPM2B_PRIVATE *opriv = NULL;
	ESYS_TR s = ESYS_TR_NONE;
	enum wd_err e;
	TSS2_RC rc;

	/* DECRYPT: inSensitive, the first parameter, crosses encrypted. */
	if ((e = hmac_session(t, TPMA_SESSION_DECRYPT, &s, err, errlen)) !=
	    WD_OK)
		return e;
	rc = Esys_Create(t->esys, t->primary, s, ESYS_TR_NONE, ESYS_TR_NONE,
	    sens, tmpl, &outside, &creation, &opriv, &opub, NULL, NULL, NULL);
	scrub_create_input(t);
	if (rc != TSS2_RC_SUCCESS) {
		hmac_drop(t);
		return sec_tpm_err(err, errlen, "Create", rc);
	}
	*pub = *opub;
	*priv = *opriv;
	Esys_Free(opub);
	Esys_Free(opriv);
	return WD_OK;
}

enum wd_err
sec_tpm_load(struct sec_tpm *t, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, ESYS_TR *obj, char *err, size_t errlen)
{
	enum wd_err e;
	TSS2_RC rc;

	*obj = ESYS_TR_NONE;
	if ((e = sec_tpm_primary(t, err, errlen)) != WD_OK)
		return e;
	/* The primary's auth is empty and the private blob is already
	 * encrypted to it: a password session reveals nothing. */
	rc = Esys_Load(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	    ESYS_TR_NONE, priv, pub, obj);
	if (rc != TSS2_RC_SUCCESS) {
		*obj = ESYS_TR_NONE;
		return sec_tpm_err(err, errlen, "Load", rc);
	}
	return WD_OK;
}

enum wd_err
sec_tpm_seal(struct sec_tpm *t, const unsigned char *key, size_t keylen,
    const struct sec_pcrs *pcrs, const unsigned char *auth, size_t authlen,
    bool noda, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv, char *err,
    size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_KEYEDHASH,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_FIXEDTPM |
			    TPMA_OBJECT_FIXEDPARENT,
			.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
		},
	};
	enum wd_err e;

	if (keylen > sizeof(sc->sens.sensitive.data.buffer) ||
	    authlen > SEC_AUTH_MAX) {
		sec_errf(err, errlen, "sealed data or auth value too long");
		return WD_EINVAL;
	}
	if ((e = sec_tpm_primary(t, err, errlen)) != WD_OK)
		return e;
	if (pcrs != NULL && pcrs->sel.count > 0) {
		/* Only the policy opens it: no USERWITHAUTH, so an auth value
		 * alone is not enough once PCRs are bound. */
		e = policy_digest(t, pcrs, authlen > 0,
		    &tmpl.publicArea.authPolicy, err, errlen);
		if (e != WD_OK)
			return e;
	} else {
		tmpl.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	}
	if (noda)
		tmpl.publicArea.objectAttributes |= TPMA_OBJECT_NODA;
	memset(&sc->sens, 0, sizeof(sc->sens));
	sc->sens.sensitive.data.size = (UINT16)keylen;
	memcpy(sc->sens.sensitive.data.buffer, key, keylen);
	sc->sens.sensitive.userAuth.size = (UINT16)authlen;
	if (authlen > 0)
		memcpy(sc->sens.sensitive.userAuth.buffer, auth, authlen);
	e = sec_tpm_create(t, &tmpl, &sc->sens, pub, priv, err, errlen);
	wd_wipe(&sc->sens, sizeof(sc->sens));
	return e;
}

/*
 * tpm2-tss decrypts a response in place in its command buffer and keeps it
 * there until the next command, and frees that buffer unwiped; a
 * GetRandom answer overwrites the bytes where Unseal's outData sat
 * (header, parameter size, 2-byte length, then up to 64 bytes: offsets
 * 16..48 for a 32-byte key).  test_secrets.c finds the key in memory
 * without this.
 */
static void
scrub_esys(struct sec_tpm *t)
{
	TPM2B_DIGEST *r = NULL;

	if (Esys_GetRandom(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    sizeof(r->buffer), &r) == TSS2_RC_SUCCESS)
		Esys_Free(r);
}

enum wd_err
sec_tpm_unseal(struct sec_tpm *t, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, const struct sec_pcrs *pcrs,
    const unsigned char *auth, size_t authlen, unsigned char *key,
    size_t *keylen, char *err, size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	TPM2B_SENSITIVE_DATA *data = NULL;
	ESYS_TR obj = ESYS_TR_NONE, s = ESYS_TR_NONE, policy_s = ESYS_TR_NONE;
	bool policy = pcrs != NULL && pcrs->sel.count > 0;
	size_t cap = *keylen;
	enum wd_err e;
	TSS2_RC rc;

	*keylen = 0;
	if (authlen > SEC_AUTH_MAX) {
		sec_errf(err, errlen, "auth value too long");
		return WD_EINVAL;
	}
	if ((e = sec_tpm_load(t, pub, priv, &obj, err, errlen)) != WD_OK)
		return e;
	memset(&sc->auth, 0, sizeof(sc->auth));
	sc->auth.size = (UINT16)authlen;
	if (authlen > 0)
		memcpy(sc->auth.buffer, auth, authlen);
	rc = Esys_TR_SetAuth(t->esys, obj, &sc->auth);
	wd_wipe(&sc->auth, sizeof(sc->auth));
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "TR_SetAuth", rc);
		goto out;
	}
	/* ENCRYPT: outData, the first response parameter, comes back
	 * encrypted under the salted session key.  A policy session serves
	 * one object once; the HMAC session is the context's. */
	if (policy)
		e = sec_tpm_session(t, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT,
		    &policy_s, err, errlen);
	else
		e = hmac_session(t, TPMA_SESSION_ENCRYPT, &s, err, errlen);
	if (e != WD_OK)
		goto out;
	if (policy) {
		s = policy_s;
		if ((e = run_policy(t, s, pcrs, authlen > 0, err, errlen)) != WD_OK)
			goto out;
	}
	rc = Esys_Unseal(t->esys, obj, s, ESYS_TR_NONE, ESYS_TR_NONE, &data);
	if (rc != TSS2_RC_SUCCESS) {
		if (!policy)
			hmac_drop(t);
		e = sec_tpm_err(err, errlen, "Unseal", rc);
		goto out;
	}
	if (data->size > cap) {
		sec_errf(err, errlen, "sealed data is %u bytes, expected at most %zu",
		    (unsigned)data->size, cap);
		e = WD_EPARSE;
		goto out;
	}
	memcpy(key, data->buffer, data->size);
	*keylen = data->size;
	e = WD_OK;
out:
	if (data != NULL) {
		wd_wipe(data, sizeof(*data));
		Esys_Free(data);
		scrub_esys(t);
	}
	sec_tpm_flush(t, &policy_s);
	/* Esys_TR_SetAuth copied the auth value into the handle's metadata,
	 * which the flush frees unwiped: overwrite it first. */
	if (obj != ESYS_TR_NONE && authlen > 0) {
		memset(&sc->auth, 0, sizeof(sc->auth));
		(void)Esys_TR_SetAuth(t->esys, obj, &sc->auth);
	}
	sec_tpm_flush(t, &obj);
	return e;
}

/* ---- NV indices: where a data key's auth value lives (dkey.c) ---- */

/* Ordinary index, read and written with its own (empty) auth through a
 * salted, encrypting session; NO_DA since a wrong value is no guess at a
 * password; WRITEDEFINE: once written it is write-locked until it is
 * undefined, so its value can be ended only with the owner hierarchy, and
 * never replaced.  (WRITTEN and WRITELOCKED are the TPM's own bits.) */
#define NV_ATTRS (TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA | \
    TPMA_NV_WRITEDEFINE)
#define NV_STATE_BITS (TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED)

static bool
rc_is(TSS2_RC rc, TSS2_RC what)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return false;
	if (rc & TPM2_RC_FMT1)
		return (rc & (TPM2_RC_FMT1 | 0x3f)) == what;
	return rc == what;
}

/* The ESAPI handle of NV index h; WD_ENOTFOUND if the TPM has none. */
static enum wd_err
nv_handle(struct sec_tpm *t, uint32_t h, ESYS_TR *out, char *err,
    size_t errlen)
{
	char what[64];
	TSS2_RC rc;

	*out = ESYS_TR_NONE;
	rc = Esys_TR_FromTPMPublic(t->esys, h, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, out);
	if (rc == TSS2_RC_SUCCESS)
		return WD_OK;
	*out = ESYS_TR_NONE;
	snprintf(what, sizeof(what), "reading NV index 0x%08x", h);
	if (rc_is(rc, TPM2_RC_HANDLE)) {
		sec_errf(err, errlen, "the TPM has no NV index 0x%08x", h);
		return WD_ENOTFOUND;
	}
	return sec_tpm_err(err, errlen, what, rc);
}

static void
nv_close(struct sec_tpm *t, ESYS_TR *tr)
{
	if (*tr != ESYS_TR_NONE)
		(void)Esys_TR_Close(t->esys, tr);
	*tr = ESYS_TR_NONE;
}

enum wd_err
sec_tpm_nv_define(struct sec_tpm *t, uint32_t first, uint32_t count,
    uint32_t start, uint16_t size, uint32_t *out, char *err, size_t errlen)
{
	TPM2B_AUTH none = { 0 };
	ESYS_TR tr = ESYS_TR_NONE;
	TSS2_RC rc = TSS2_RC_SUCCESS;

	*out = 0;
	for (uint32_t i = 0; i < count && i < 64; i++) {
		uint32_t h = first + (start + i) % count;
		TPM2B_NV_PUBLIC pub = {
			.nvPublic = {
				.nvIndex = h,
				.nameAlg = TPM2_ALG_SHA256,
				.attributes = NV_ATTRS,
				.dataSize = size,
			},
		};

		rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER,
		    ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &none, &pub, &tr);
		if (rc == TSS2_RC_SUCCESS) {
			nv_close(t, &tr);
			*out = h;
			return WD_OK;
		}
		if (!rc_is(rc, TPM2_RC_NV_DEFINED))
			break;
	}
	if (rc_is(rc, TPM2_RC_NV_SPACE))
		return sec_tpm_err(err, errlen, "NV_DefineSpace (the TPM's NV "
		    "memory is full: destroy old payload keys with `warden audit "
		    "purge`, or shorten payload_ttl_days)", rc);
	if (rc == TSS2_RC_SUCCESS || rc_is(rc, TPM2_RC_NV_DEFINED)) {
		sec_errf(err, errlen, "no free NV index near 0x%08x", first + start);
		return WD_ELIMIT;
	}
	return sec_tpm_err(err, errlen, "NV_DefineSpace", rc);
}

enum wd_err
sec_tpm_nv_write(struct sec_tpm *t, uint32_t h, const unsigned char *data,
    uint16_t len, char *err, size_t errlen)
{
	struct sec_scratch *sc = sec_scratch(t);
	ESYS_TR tr = ESYS_TR_NONE, s;
	enum wd_err e;
	TSS2_RC rc;

	if (len > sizeof(sc->nv.buffer))
		return WD_EINVAL;
	if ((e = nv_handle(t, h, &tr, err, errlen)) != WD_OK)
		return e;
	/* DECRYPT: data, the first parameter, crosses encrypted. */
	if ((e = hmac_session(t, TPMA_SESSION_DECRYPT, &s, err, errlen)) !=
	    WD_OK)
		goto out;
	sc->nv.size = len;
	memcpy(sc->nv.buffer, data, len);
	rc = Esys_NV_Write(t->esys, tr, tr, s, ESYS_TR_NONE, ESYS_TR_NONE,
	    &sc->nv, 0);
	wd_wipe(&sc->nv, sizeof(sc->nv));
	if (rc != TSS2_RC_SUCCESS) {
		hmac_drop(t);
		e = sec_tpm_err(err, errlen, "NV_Write", rc);
		goto out;
	}
	scrub_esys(t);
	rc = Esys_NV_WriteLock(t->esys, tr, tr, s, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		hmac_drop(t);
		e = sec_tpm_err(err, errlen, "NV_WriteLock", rc);
		goto out;
	}
	e = WD_OK;
out:
	nv_close(t, &tr);
	return e;
}

enum wd_err
sec_tpm_nv_read(struct sec_tpm *t, uint32_t h, unsigned char *out,
    uint16_t len, char *err, size_t errlen)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	ESYS_TR tr = ESYS_TR_NONE, s;
	enum wd_err e;
	TSS2_RC rc;

	if ((e = nv_handle(t, h, &tr, err, errlen)) != WD_OK)
		return e;
	/* ENCRYPT: the value comes back encrypted under the session key. */
	if ((e = hmac_session(t, TPMA_SESSION_ENCRYPT, &s, err, errlen)) !=
	    WD_OK)
		goto out;
	rc = Esys_NV_Read(t->esys, tr, tr, s, ESYS_TR_NONE, ESYS_TR_NONE, len, 0,
	    &data);
	if (rc != TSS2_RC_SUCCESS) {
		hmac_drop(t);
		e = sec_tpm_err(err, errlen, "NV_Read", rc);
		goto out;
	}
	if (data->size != len) {
		sec_errf(err, errlen, "NV index 0x%08x holds %u bytes, not %u", h,
		    (unsigned)data->size, (unsigned)len);
		e = WD_EPARSE;
		goto out;
	}
	memcpy(out, data->buffer, len);
	e = WD_OK;
out:
	if (data != NULL) {
		wd_wipe(data, sizeof(*data));
		Esys_Free(data);
		scrub_esys(t);
	}
	nv_close(t, &tr);
	return e;
}

enum wd_err
sec_tpm_nv_undefine(struct sec_tpm *t, uint32_t h, uint16_t size, char *err,
    size_t errlen)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR tr = ESYS_TR_NONE;
	enum wd_err e;
	TSS2_RC rc;

	if ((e = nv_handle(t, h, &tr, err, errlen)) != WD_OK)
		return e;
	/* Never undefine an index that is not one of ours. */
	rc = Esys_NV_ReadPublic(t->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "NV_ReadPublic", rc);
		goto out;
	}
	if (pub->nvPublic.dataSize != size ||
	    (pub->nvPublic.attributes & ~(TPMA_NV)NV_STATE_BITS) != NV_ATTRS) {
		sec_errf(err, errlen, "NV index 0x%08x is not one warden defined; "
		    "left alone", h);
		e = WD_EPERM;
		goto out;
	}
	rc = Esys_NV_UndefineSpace(t->esys, ESYS_TR_RH_OWNER, tr,
	    ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "NV_UndefineSpace", rc);
		goto out;
	}
	tr = ESYS_TR_NONE;	/* ESAPI forgot it with the index */
	e = WD_OK;
out:
	Esys_Free(pub);
	nv_close(t, &tr);
	return e;
}
