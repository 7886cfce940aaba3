/*
 * creds.c - the provider credentials a running gateway attaches: unsealed
 * from the TPM store into a locked cache at start and on every reload,
 * and shared read-only by the workers.  A struct gw_creds belongs to one
 * snapshot generation; requests hold a reference to both.
 *
 * Plain-text `dev_credentials` are refused unless warden runs with
 * --dev-credentials, and then it warns on every start and reload.
 */
#include "gateway/gw_int.h"
#include "gateway/provider.h"
#include "secrets/sec.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_BYTES (256u << 10)

struct gw_creds {
	atomic_int refs;
	struct sec_cache *cache;	/* NULL when nothing came from the TPM */
	bool dev;			/* dev_credentials may be used */
};

struct gw_creds *
gw_creds_ref(struct gw_creds *c)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void
gw_creds_unref(struct gw_creds *c)
{
	if (c == NULL ||
	    atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	sec_cache_free(c->cache);	/* wipes */
	free(c);
}

const unsigned char *
gw_creds_get(const struct gw_creds *c, const struct pol_snapshot *snap,
    const char *name, size_t *len)
{
	const unsigned char *v = NULL;
	const char *dev;

	if (c->cache != NULL && (v = sec_cache_get(c->cache, name, len)) != NULL)
		return v;
	if (c->dev && (dev = pol_devcred(snap, name)) != NULL) {
		*len = strlen(dev);
		return (const unsigned char *)dev;
	}
	return NULL;
}

const char *
gw_tcti(const struct gw_server *srv, const struct pol_snapshot *snap)
{
	return srv->opts->tcti ? srv->opts->tcti : snap->secrets.tcti;
}

static void
say_flushed(unsigned nobj, unsigned nsess)
{
	if (nobj > 0 || nsess > 0)
		wd_warn("TPM: flushed %u object(s) and %u session(s) that stayed "
		    "loaded: left by a process that ended while it used the "
		    "TPM (a warden killed mid-operation?); without a resource "
		    "manager they would fill its slots", nobj, nsess);
}

void
gw_tpm_reclaim(struct gw_server *srv, const struct pol_snapshot *snap)
{
	const char *tcti = gw_tcti(srv, snap);
	unsigned nobj = 0, nsess = 0;
	char err[512];

	/* Not reachable: the operations that follow say so, each for
	 * what it needed the TPM for. */
	if (tcti == NULL ||
	    sec_tpm_reclaim(tcti, &nobj, &nsess, err, sizeof(err)) != WD_OK)
		return;
	say_flushed(nobj, nsess);
}

void
gw_tpm_close(struct sec_tpm *tpm)
{
	unsigned nobj = 0, nsess = 0;

	sec_tpm_close_reclaim(tpm, &nobj, &nsess);
	say_flushed(nobj, nsess);
}

const char *
gw_secrets_store(const struct gw_server *srv, const struct pol_snapshot *snap)
{
	return srv->opts->secrets_store ? srv->opts->secrets_store :
	    snap->secrets.store;
}

/*
 * The TPM connection is opened for each use and closed after it: a TPM
 * without a resource manager (swtpm, some embedded ones) serves one
 * client at a time, and `warden secrets rotate` must get its turn while
 * the gateway runs.  srv->tpm_lock held.
 */
static void
tpm_release(struct gw_server *srv)
{
	if (srv->tpm != NULL) {
		gw_tpm_close(srv->tpm);
		srv->tpm = NULL;
	}
}

/* The TPM connection, opened on first need; srv->tpm_lock held. */
static enum wd_err
tpm(struct gw_server *srv, const struct pol_snapshot *snap, FILE *errs)
{
	char err[512];
	const char *tcti = gw_tcti(srv, snap);

	if (srv->tpm != NULL)
		return WD_OK;
	if (tcti == NULL) {
		fprintf(errs, "no TPM configured: set secrets.tcti in the rules "
		    "(device:/dev/tpmrm0, or swtpm:host=127.0.0.1,port=N) or give "
		    "--tcti\n");
		return WD_ETPM;
	}
	if (sec_tpm_open(tcti, &srv->tpm, err, sizeof(err)) != WD_OK) {
		fprintf(errs, "cannot open the TPM (%s): %s\n", tcti, err);
		return WD_ETPM;
	}
	return WD_OK;
}

/* Unseal name into cache, with secrets.auth_file if it needs an auth
 * value.  tpm_lock held. */
static enum wd_err
unseal(struct gw_server *srv, const struct pol_snapshot *snap,
    const char *name, struct sec_cache *cache, char *err, size_t errlen)
{
	const char *store = gw_secrets_store(srv, snap);
	struct sec_buf auth = { 0 };
	struct sec_meta m;
	size_t authlen = 0;
	enum wd_err rc;

	if (sec_stat(store, name, &m, err, errlen) == WD_OK && m.auth) {
		if (gw_auth_file(srv, snap) == NULL) {
			snprintf(err, errlen, "sealed with an auth value, and "
			    "secrets.auth_file is not set");
			return WD_ECONFIG;
		}
		rc = sec_read_auth_file(gw_auth_file(srv, snap), &auth, &authlen,
		    err, errlen);
		if (rc != WD_OK)
			return rc;
	}
	rc = sec_unseal(srv->tpm, store, name, auth.p, authlen, cache, err,
	    errlen);
	sec_buf_free(&auth);
	return rc;
}

/* Make one named credential available in c (under tpm_lock). */
static enum wd_err
load_one(struct gw_server *srv, const struct pol_snapshot *snap,
    struct gw_creds *c, const char *what, const char *id, const char *name,
    FILE *errs)
{
	char err[256];
	size_t len;
	enum wd_err rc;
	struct sec_meta km;

	if (gw_creds_get(c, snap, name, &len) != NULL)
		return WD_OK;	/* a dev credential, or unsealed already */
	/* A key imported into the TPM is not unsealed: it signs there
	 * (gw_tpm_sign_rs256). */
	if (sec_stat(gw_secrets_store(srv, snap), name, &km, err,
	    sizeof(err)) == WD_OK && km.kind == SEC_KIND_IMPORTED_KEY)
		return WD_OK;
	if (c->cache == NULL && (rc = sec_cache_new(CACHE_BYTES, &c->cache,
	    err, sizeof(err))) != WD_OK) {
		fprintf(errs, "cannot set up locked memory for credentials: "
		    "%s\n", err);
		return rc;
	}
	if ((rc = tpm(srv, snap, errs)) != WD_OK) {
		fprintf(errs, "%s '%s': credential '%s' is not available\n",
		    what, id, name);
		return rc;
	}
	rc = unseal(srv, snap, name, c->cache, err, sizeof(err));
	if (rc != WD_OK)
		fprintf(errs, "%s '%s': credential '%s' is not available: "
		    "%s\n", what, id, name, err);
	return rc;
}

enum wd_err
gw_creds_load(struct gw_server *srv, const struct pol_snapshot *snap,
    struct gw_creds **out, FILE *errs)
{
	struct gw_creds *c;
	enum wd_err rc = WD_OK;

	*out = NULL;
	if (snap->ndevcreds > 0 && !srv->opts->dev_credentials) {
		fprintf(errs, "%s: dev_credentials holds plain-text credentials; "
		    "seal them with 'warden secrets seal NAME' and remove them, or "
		    "start with --dev-credentials (development only)\n", snap->path);
		return WD_ECONFIG;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return WD_ENOMEM;
	atomic_init(&c->refs, 1);
	c->dev = srv->opts->dev_credentials;
	pthread_mutex_lock(&srv->tpm_lock);
	for (size_t i = 0; i < snap->nproviders && rc == WD_OK; i++)
		rc = load_one(srv, snap, c, "route", snap->providers[i].id,
		    snap->providers[i].credential, errs);
	/* MCP servers' credentials: sealed the same way (issue 15). */
	for (size_t i = 0; i < snap->nmcp_servers && rc == WD_OK; i++)
		if (snap->mcp_servers[i].credential != NULL)
			rc = load_one(srv, snap, c, "mcp server",
			    snap->mcp_servers[i].id, snap->mcp_servers[i].credential,
			    errs);
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	if (rc != WD_OK) {
		gw_creds_unref(c);
		return rc;
	}
	if (snap->ndevcreds > 0)
		wd_warn("%s: using plain-text dev_credentials (--dev-credentials); "
		    "development only", snap->path);
	*out = c;
	return WD_OK;
}

enum wd_err
gw_tpm_sign_rs256(struct gw_server *srv, const struct pol_snapshot *snap,
    const char *name, const unsigned char digest[32], unsigned char *sig,
    size_t *siglen, char *err, size_t errlen)
{
	struct sec_meta m;
	enum wd_err rc;

	if (sec_stat(gw_secrets_store(srv, snap), name, &m, err, errlen) !=
	    WD_OK || m.kind != SEC_KIND_IMPORTED_KEY) {
		snprintf(err, errlen, "'%s' is not a key imported into the TPM",
		    name);
		return WD_ENOTFOUND;
	}
	pthread_mutex_lock(&srv->tpm_lock);
	if ((rc = tpm(srv, snap, stderr)) == WD_OK)
		rc = sec_key_sign_rs256(srv->tpm, gw_secrets_store(srv, snap), name,
		    digest, sig, siglen, err, errlen);
	else
		snprintf(err, errlen, "the TPM is not available");
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	return rc;
}

json_t *
gw_creds_changed(const struct gw_creds *old, const struct pol_snapshot *os,
    const struct gw_creds *new, const struct pol_snapshot *ns)
{
	json_t *names = json_array();

	/* Compared in memory, never printed: only names leave. */
	for (size_t i = 0; i < ns->nproviders; i++) {
		const char *name = ns->providers[i].credential;
		const unsigned char *a, *b;
		size_t al = 0, bl = 0;
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(ns->providers[j].credential, name) == 0;
		if (seen)
			continue;
		a = old ? gw_creds_get(old, os, name, &al) : NULL;
		b = gw_creds_get(new, ns, name, &bl);
		if (a == NULL || b == NULL || al != bl || !wd_ct_equal(a, b, al))
			json_array_append_new(names, json_string(name));
	}
	return names;
}

const char *
gw_auth_file(const struct gw_server *srv, const struct pol_snapshot *snap)
{
	return srv->opts->auth_file ? srv->opts->auth_file :
	    snap->secrets.auth_file;
}

/*
 * The signing key's auth value, read from the auth file for each use
 * into locked memory (the caller sec_buf_frees it); none without a file
 * (then only --dev-unauthenticated-audit-key got this far).
 */
static enum wd_err
sign_auth(struct gw_server *srv, const struct pol_snapshot *snap,
    struct sec_buf *auth, size_t *len, char *err, size_t errlen)
{
	const char *path = gw_auth_file(srv, snap);

	memset(auth, 0, sizeof(*auth));
	*len = 0;
	if (path == NULL)
		return WD_OK;
	return sec_read_auth_file(path, auth, len, err, errlen);
}

/* Sign digest with the TPM key; tpm_lock is taken here. */
static enum wd_err
sign_digest(struct gw_server *srv, const struct pol_snapshot *snap,
    const unsigned char digest[32], unsigned char *sig, size_t *siglen,
    char *err, size_t errlen)
{
	struct sec_buf auth;
	size_t authlen;
	enum wd_err rc;

	err[0] = '\0';
	if ((rc = sign_auth(srv, snap, &auth, &authlen, err, errlen)) != WD_OK)
		return rc;
	pthread_mutex_lock(&srv->tpm_lock);
	rc = tpm(srv, snap, stderr);
	if (rc == WD_OK)
		rc = sec_sign_digest(srv->tpm, gw_secrets_store(srv, snap), auth.p,
		    authlen, digest, sig, siglen, err, errlen);
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	sec_buf_free(&auth);
	return rc;
}

/* Checkpoint signatures: the TPM signs, serialised with other TPM use. */
static enum wd_err
sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	struct gw_server *srv = ctx;
	struct pol_snapshot *snap = gw_server_snapshot(srv);
	unsigned char digest[32];
	char err[512];
	enum wd_err rc;

	wd_sha256(msg, len, digest);
	rc = sign_digest(srv, snap, digest, sig, siglen, err, sizeof(err));
	if (rc != WD_OK)
		wd_error("audit checkpoint not signed: %s", err[0] ? err :
		    "the TPM cannot be reached");
	pol_snapshot_unref(snap);
	return rc;
}

enum wd_err
gw_signer_init(struct gw_server *srv, const struct pol_snapshot *snap,
    struct aud_signer *out)
{
	const char *store = gw_secrets_store(srv, snap);
	unsigned char digest[32] = { 0 }, sig[SEC_SIG_MAX];
	size_t siglen = sizeof(sig), authlen = 0;
	struct sec_buf auth = { 0 };
	char err[512], *pem = NULL;
	bool created = false;
	enum wd_err rc;

	memset(out, 0, sizeof(*out));
	if (gw_tcti(srv, snap) == NULL) {
		wd_warn("no TPM configured: audit checkpoints are not signed");
		return WD_OK;
	}
	/* The key serves only warden: without its auth value, whoever can
	 * reach the TPM and read the store could sign any checkpoint. */
	if (gw_auth_file(srv, snap) == NULL && !srv->opts->dev_unauth_key) {
		wd_error("audit signing key: no auth value: set secrets.auth_file "
		    "(or --auth-file) to a file of 1 to %d bytes, mode 0600, so "
		    "that only warden can sign checkpoints; for development only, "
		    "--dev-unauthenticated-audit-key", SEC_AUTH_MAX);
		return WD_ECONFIG;
	}
	if ((rc = sign_auth(srv, snap, &auth, &authlen, err, sizeof(err))) !=
	    WD_OK) {
		wd_error("audit signing key: %s", err);
		return rc;
	}
	pthread_mutex_lock(&srv->tpm_lock);
	rc = tpm(srv, snap, stderr);
	if (rc == WD_OK)
		rc = sec_sign_key_ensure(srv->tpm, store, auth.p, authlen,
		    snap->secrets.sign_pcrs, &created, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "the TPM cannot be reached");
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	sec_buf_free(&auth);
	/* One signature now: a wrong auth value stops the start, not the
	 * first checkpoint an hour later. */
	if (rc == WD_OK)
		rc = sign_digest(srv, snap, digest, sig, &siglen, err, sizeof(err));
	if (rc == WD_OK)
		rc = sec_sign_pubkey_pem(store, &pem, err, sizeof(err));
	if (rc != WD_OK) {
		wd_error("audit signing key: %s", err);
		return rc;
	}
	if (created)
		wd_info("created the audit signing key in the TPM (%s)%s", store,
		    authlen > 0 ? ", usable only with the auth value" :
		    " WITHOUT an auth value (--dev-unauthenticated-audit-key)");
	else if (authlen == 0)
		wd_warn("the audit signing key has no auth value: anyone who can "
		    "reach the TPM and read %s can sign checkpoints "
		    "(development only)", store);
	out->sign = sign;
	out->ctx = srv;
	out->pubkey_pem = pem;
	return WD_OK;
}

/* ---- the TPM counter (issue 11) ---- */

_Static_assert(POL_COUNTER_NV_INDEX == SEC_COUNTER_NV_INDEX,
    "one default NV index");

/* aud_counter.next: opened per use like every TPM use here. */
static enum wd_err
counter_next(void *ctx, bool bump, uint64_t *value)
{
	struct gw_server *srv = ctx;
	struct pol_snapshot *snap = gw_server_snapshot(srv);
	struct sec_counter c;
	char err[512] = "";
	enum wd_err rc;

	pthread_mutex_lock(&srv->tpm_lock);
	rc = tpm(srv, snap, stderr);
	if (rc == WD_OK && bump &&
	    sec_counter_increment(srv->tpm, srv->counter_index, &c, err,
	    sizeof(err)) != WD_OK) {
		/* A TPM that rate-limits NV writes right now: the checkpoint
		 * still gets the current value; the next bump comes later. */
		wd_warn("audit TPM counter 0x%08x not bumped: %s",
		    (unsigned)srv->counter_index, err);
		bump = false;
	}
	if (rc == WD_OK && !bump)
		rc = sec_counter_read(srv->tpm, srv->counter_index, &c, err,
		    sizeof(err));
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	pol_snapshot_unref(snap);
	if (rc != WD_OK) {
		wd_error("audit TPM counter 0x%08x: %s", (unsigned)srv->counter_index,
		    err[0] ? err : "the TPM cannot be reached");
		return rc;
	}
	/* Another index under the same handle (deleted and defined again
	 * while warden ran) is not the counter this log started with. */
	if (strcmp(c.name, srv->counter_name) != 0) {
		wd_error("audit TPM counter 0x%08x: its TPM name changed since "
		    "start (%.16s... now %.16s...): the index was deleted and "
		    "defined again", (unsigned)srv->counter_index, srv->counter_name,
		    c.name);
		return WD_ETPM;
	}
	*value = c.value;
	return WD_OK;
}

enum wd_err
gw_counter_init(struct gw_server *srv, const struct pol_snapshot *snap,
    struct aud_counter *out, json_t **start)
{
	struct sec_counter c;
	char err[512] = "";
	bool created = false;
	enum wd_err rc;

	memset(out, 0, sizeof(*out));
	*start = NULL;
	srv->counter_index = 0;
	if (gw_tcti(srv, snap) == NULL || snap->audit.counter_nv_index == 0)
		return WD_OK;
	pthread_mutex_lock(&srv->tpm_lock);
	rc = tpm(srv, snap, stderr);
	if (rc == WD_OK)
		rc = sec_counter_define(srv->tpm, snap->audit.counter_nv_index,
		    &created, &c, err, sizeof(err));
	/* Not bumped here: the audit writer bumps it at open (and close,
	 * and once a minute at most), through counter_next. */
	tpm_release(srv);
	pthread_mutex_unlock(&srv->tpm_lock);
	if (rc != WD_OK) {
		wd_error("audit TPM counter 0x%08x (audit.counter_nv_index): %s",
		    (unsigned)snap->audit.counter_nv_index, err[0] ? err :
		    "the TPM cannot be reached");
		return rc;
	}
	if (created)
		wd_info("defined the audit counter at NV index 0x%08x",
		    (unsigned)c.index);
	srv->counter_index = c.index;
	snprintf(srv->counter_name, sizeof(srv->counter_name), "%s", c.name);
	out->next = counter_next;
	out->ctx = srv;
	{
		char idx[16];

		snprintf(idx, sizeof(idx), "0x%08x", (unsigned)c.index);
		*start = json_pack("{s:s,s:s,s:I}", "index", idx, "name", c.name,
		    "value", (json_int_t)c.value);
	}
	return WD_OK;
}

/* ---- the CLI as the log's writer for a moment (issue 11) ---- */

/*
 * `warden secrets seal|rotate|rm|import-key`, `warden audit purge` and
 * `warden mcp approve` append their record themselves when no gateway
 * holds the log (gw_cli_record, audit/inbox.c).  They then sign the
 * closing checkpoint as the gateway would: the same TPM key, its auth
 * value, and the TPM counter bumped and carried, so the next start of
 * the gateway finds the log level with the counter.  The TPM is opened
 * for each use, after the command closed its own.
 */
struct gw_cli_signer {
	char *tcti, *store, *auth_file;
	uint32_t counter_index;
	char counter_name[SEC_COUNTER_NAME_HEX + 1];
	struct aud_signer signer;
	struct aud_counter counter;
	struct aud_direct direct;
	bool signed_ok;			/* the last checkpoint was signed */
	char err[512];			/* the last failure, for the operator */
};

static enum wd_err
cli_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	struct gw_cli_signer *s = ctx;
	struct sec_buf auth = { 0 };
	struct sec_tpm *tpm = NULL;
	unsigned char digest[32];
	size_t authlen = 0;
	enum wd_err rc;

	wd_sha256(msg, len, digest);
	rc = sec_read_auth_file(s->auth_file, &auth, &authlen, s->err,
	    sizeof(s->err));
	if (rc == WD_OK)
		rc = sec_tpm_open(s->tcti, &tpm, s->err, sizeof(s->err));
	if (rc == WD_OK)
		rc = sec_sign_digest(tpm, s->store, auth.p, authlen, digest, sig,
		    siglen, s->err, sizeof(s->err));
	sec_tpm_close(tpm);
	sec_buf_free(&auth);
	/* The last checkpoint (the closing one) is what covers the record. */
	s->signed_ok = rc == WD_OK;
	return rc;
}

static enum wd_err
cli_counter_next(void *ctx, bool bump, uint64_t *value)
{
	struct gw_cli_signer *s = ctx;
	struct sec_tpm *tpm = NULL;
	struct sec_counter c;
	bool created = false;
	enum wd_err rc;

	rc = sec_tpm_open(s->tcti, &tpm, s->err, sizeof(s->err));
	/* Defined as the gateway defines it (gw_counter_init): the first
	 * use reads it, and fixes its TPM name for the rest. */
	if (rc == WD_OK && s->counter_name[0] == '\0') {
		rc = sec_counter_define(tpm, s->counter_index, &created, &c,
		    s->err, sizeof(s->err));
		if (rc == WD_OK)
			snprintf(s->counter_name, sizeof(s->counter_name), "%s",
			    c.name);
	}
	/* As counter_next: a TPM that rate-limits NV writes right now still
	 * gives the current value, which the checkpoint carries. */
	if (rc == WD_OK && bump && sec_counter_increment(tpm, s->counter_index,
	    &c, s->err, sizeof(s->err)) != WD_OK)
		bump = false;
	if (rc == WD_OK && !bump)
		rc = sec_counter_read(tpm, s->counter_index, &c, s->err,
		    sizeof(s->err));
	sec_tpm_close(tpm);
	if (rc != WD_OK) {
		s->signed_ok = false;	/* this checkpoint is not made */
		return rc;
	}
	if (strcmp(c.name, s->counter_name) != 0) {
		snprintf(s->err, sizeof(s->err), "the TPM counter 0x%08x changed "
		    "its TPM name meanwhile", (unsigned)s->counter_index);
		s->signed_ok = false;
		return WD_ETPM;
	}
	*value = c.value;
	return WD_OK;
}

static void signer_free(struct gw_cli_signer *s);

static enum wd_err
signer_new(const char *tcti, const char *store, const char *auth_file,
    const struct pol_snapshot *snap, struct gw_cli_signer **out, char *err,
    size_t errlen)
{
	struct gw_cli_signer *s;
	char *pem = NULL;
	enum wd_err rc;

	*out = NULL;
	if (tcti == NULL || *tcti == '\0') {
		snprintf(err, errlen, "no TPM named (secrets.tcti, -c FILE or "
		    "--tcti)");
		return WD_ECONFIG;
	}
	if (store == NULL) {
		snprintf(err, errlen, "no secrets store named (secrets.store, -c "
		    "FILE or --secrets-store/--store)");
		return WD_ECONFIG;
	}
	/* The gateway's key only, used only with its auth value: the CLI
	 * never creates it, nor signs without the auth value. */
	if (auth_file == NULL) {
		snprintf(err, errlen, "the audit signing key's auth value is not "
		    "given (secrets.auth_file, -c FILE or --auth-file)");
		return WD_ECONFIG;
	}
	if ((rc = sec_sign_pubkey_pem(store, &pem, err, errlen)) != WD_OK)
		return rc;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->tcti = strdup(tcti)) == NULL ||
	    (s->store = strdup(store)) == NULL ||
	    (s->auth_file = strdup(auth_file)) == NULL) {
		free(pem);
		signer_free(s);
		return WD_ENOMEM;
	}
	s->signer = (struct aud_signer){ .sign = cli_sign, .ctx = s,
		.pubkey_pem = pem };
	s->direct.signer = &s->signer;
	s->counter_index = snap != NULL ? snap->audit.counter_nv_index :
	    SEC_COUNTER_NV_INDEX;
	if (s->counter_index != 0) {
		s->counter = (struct aud_counter){ .next = cli_counter_next,
			.ctx = s };
		s->direct.counter = &s->counter;
	}
	if (snap != NULL)
		s->direct.checkpoint_interval_s = snap->audit.checkpoint_interval_s;
	*out = s;
	return WD_OK;
}

static void
signer_free(struct gw_cli_signer *s)
{
	if (s == NULL)
		return;
	free((char *)s->signer.pubkey_pem);
	free(s->tcti);
	free(s->store);
	free(s->auth_file);
	free(s);
}

/* After a direct append: say on stderr when no checkpoint signs it, why
 * (setup_err when s is NULL), and what follows for verification. */
static void
signer_report(const struct gw_cli_signer *s, const char *setup_err,
    const char *prog)
{
	const char *why = s != NULL && s->err[0] != '\0' ? s->err : "not signed";

	if (s != NULL && s->signed_ok)
		return;
	/* Appended, yet unsigned: the log is legitimate but cannot prove it
	 * until a gateway signs it in; the operator must know. */
	fprintf(stderr, "%s: WARNING: the record is in the audit chain but no "
	    "checkpoint signs it (%s); until a gateway opens this log and signs "
	    "it in, `warden audit verify --pubkey` reports the log consistent "
	    "but not authenticated (exit 3), and invalid (exit 1) once the "
	    "record is older than audit.checkpoint_interval_s + 60 s: start the "
	    "gateway, or run this with the TPM, the secrets store and the "
	    "signing key's auth value (-c FILE, or --tcti, --store and "
	    "--auth-file)\n", prog, s == NULL && setup_err != NULL ? setup_err :
	    why);
}

enum wd_err
gw_cli_record(const char *dir, json_t *rec, const char *tcti,
    const char *store, const char *auth_file,
    const struct pol_snapshot *snap, const char *prog, bool *in_chain,
    char *err, size_t errlen)
{
	struct gw_cli_signer *s = NULL;
	char serr[512] = "";
	bool appended = false;
	enum wd_err e;

	*in_chain = false;
	if (signer_new(tcti, store, auth_file, snap, &s, serr, sizeof(serr)) !=
	    WD_OK)
		s = NULL;
	e = aud_post_event_direct(dir, rec, 5000, s != NULL ? &s->direct : NULL,
	    in_chain, &appended, err, errlen);
	if (e == WD_OK && appended)
		signer_report(s, serr, prog);
	if (e == WD_OK && !*in_chain)
		fprintf(stderr, "%s: record queued in %s/inbox (taken into the "
		    "chain when warden next opens the log)\n", prog, dir);
	signer_free(s);
	return e;
}
