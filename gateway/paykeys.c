/*
 * paykeys.c - the keys of what the audit log keeps outside the chain
 * (struct aud_keys, for audit/): the payload HMAC key, sealed in the TPM,
 * and per tenant and month a destroyable data key (secrets/dkey.c) under
 * which that tenant's kept payloads of that month are encrypted.
 *
 *   DIR/payload-keys/TENANT/YYYY-MM/   a data key (a secrets store per tenant)
 *   DIR/payload-hmac/hmac/             the HMAC key for payload digests
 *
 * A data key is unsealed (or created) once, on the first payload of its
 * tenant and month, and kept in a locked ring (sec_cache): requests after
 * that never wait on the TPM.  Destroying keys (purge, expiry) wipes the
 * ring's copies; a purge done by `warden audit purge` reaches a running
 * gateway through the audit inbox (forget).  The TPM connection is opened
 * per use, under the lock the credentials share, as creds.c does.
 */
#include "gateway/gw_int.h"
#include "secrets/sec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RING_KEYS 256			/* data keys cached at once */
#define HMAC_STORE "payload-hmac"
#define HMAC_NAME "hmac"
#define KEYS_DIR "payload-keys"

struct ring_ent {
	char id[48];			/* the cache's name for it */
	char tenant[65];
	char month[8];
	uint64_t used;			/* for eviction */
};

struct gw_paykeys {
	pthread_mutex_t mu;		/* the ring */
	pthread_mutex_t own_tpm_lock;
	pthread_mutex_t *tpm_lock;	/* one TPM user at a time */
	char *tcti;
	char *dir;			/* the audit directory */
	struct sec_cache *ring;		/* locked: id -> data key */
	struct ring_ent ents[RING_KEYS];
	size_t nents;
	uint64_t tick;
	struct aud_keys keys;
};

static void
key_id(const char *tenant, const char *month, char out[48])
{
	unsigned char d[32];
	char buf[128], hex[65];
	int n = snprintf(buf, sizeof(buf), "%s/%s", tenant, month);

	wd_sha256(buf, n > 0 ? (size_t)n : 0, d);
	wd_hex(d, sizeof(d), hex);
	snprintf(out, 48, "k%.40s", hex);
}

static struct ring_ent *
ring_find(struct gw_paykeys *pk, const char *tenant, const char *month)
{
	for (size_t i = 0; i < pk->nents; i++)
		if (strcmp(pk->ents[i].tenant, tenant) == 0 &&
		    strcmp(pk->ents[i].month, month) == 0)
			return &pk->ents[i];
	return NULL;
}

/* Wipe and forget entry i; mu held. */
static void
ring_drop(struct gw_paykeys *pk, size_t i)
{
	sec_cache_remove(pk->ring, pk->ents[i].id);
	pk->ents[i] = pk->ents[--pk->nents];
}

static void
forget(void *ctx, const char *tenant)
{
	struct gw_paykeys *pk = ctx;

	pthread_mutex_lock(&pk->mu);
	for (size_t i = pk->nents; i > 0; i--)
		if (tenant == NULL || strcmp(pk->ents[i - 1].tenant, tenant) == 0)
			ring_drop(pk, i - 1);
	pthread_mutex_unlock(&pk->mu);
}

static enum wd_err
open_tpm(struct gw_paykeys *pk, struct sec_tpm **tpm, char *err,
    size_t errlen)
{
	char why[512];

	if (sec_tpm_open(pk->tcti, tpm, why, sizeof(why)) != WD_OK) {
		snprintf(err, errlen, "%s", why);
		return WD_ETPM;
	}
	return WD_OK;
}

static void
tenant_store(const struct gw_paykeys *pk, const char *tenant, char *out,
    size_t len)
{
	snprintf(out, len, "%s/" KEYS_DIR "/%s", pk->dir, tenant);
}

/*
 * The data key of tenant and month, into the ring (unsealed, or created
 * if create): *key points into locked memory while mu is held.  mu held.
 */
static enum wd_err
ring_get(struct gw_paykeys *pk, const char *tenant, const char *month,
    bool create, const unsigned char **key, char *err, size_t errlen)
{
	struct sec_tpm *tpm = NULL;
	struct ring_ent *en = ring_find(pk, tenant, month);
	struct sec_buf tmp = { 0 };
	char store[1200], id[48];
	unsigned char *slot;
	size_t len;
	enum wd_err e;

	if (en != NULL) {
		en->used = ++pk->tick;
		*key = sec_cache_get(pk->ring, en->id, &len);
		return *key != NULL && len == SEC_DKEY_LEN ? WD_OK : WD_EIO;
	}
	if (!wd_token_sane(tenant, 64) || tenant[0] == '.') {
		snprintf(err, errlen, "not a tenant id");
		return WD_EINVAL;
	}
	if (pk->nents == RING_KEYS) {
		size_t lru = 0;

		for (size_t i = 1; i < pk->nents; i++)
			if (pk->ents[i].used < pk->ents[lru].used)
				lru = i;
		ring_drop(pk, lru);
	}
	tenant_store(pk, tenant, store, sizeof(store));
	key_id(tenant, month, id);
	if ((e = sec_buf_alloc(&tmp, SEC_DKEY_LEN, err, errlen)) != WD_OK)
		return e;
	slot = tmp.p;
	pthread_mutex_lock(pk->tpm_lock);
	e = open_tpm(pk, &tpm, err, errlen);
	if (e == WD_OK)
		e = sec_dkey_unseal(tpm, store, month, slot, err, errlen);
	if (e == WD_ENOTFOUND && create) {
		char top[1100];

		snprintf(top, sizeof(top), "%s/" KEYS_DIR, pk->dir);
		if (mkdir(top, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create: %s", top,
			    strerror(errno));
			e = WD_EIO;
		} else if ((e = sec_dkey_create(tpm, store, month, err, errlen)) ==
		    WD_OK) {
			e = sec_dkey_unseal(tpm, store, month, slot, err, errlen);
			if (e == WD_OK)
				wd_info("created the payload key of tenant %s for %s "
				    "in the TPM", tenant, month);
		}
	}
	gw_tpm_close(tpm);
	pthread_mutex_unlock(pk->tpm_lock);
	if (e == WD_OK)
		e = sec_cache_put(pk->ring, id, slot, SEC_DKEY_LEN);
	sec_buf_free(&tmp);		/* wipes */
	if (e != WD_OK)
		return e;
	en = &pk->ents[pk->nents++];
	snprintf(en->id, sizeof(en->id), "%s", id);
	snprintf(en->tenant, sizeof(en->tenant), "%s", tenant);
	snprintf(en->month, sizeof(en->month), "%s", month);
	en->used = ++pk->tick;
	*key = sec_cache_get(pk->ring, id, &len);
	return *key != NULL ? WD_OK : WD_EIO;
}

static enum wd_err
pk_crypt(void *ctx, bool encrypt, const char *tenant, const char *month,
    const void *aad, size_t aadlen, const unsigned char *in, size_t len,
    unsigned char *out, unsigned char nonce[12], unsigned char tag[16],
    char *err, size_t errlen)
{
	struct gw_paykeys *pk = ctx;
	const unsigned char *key = NULL;
	enum wd_err e;

	if (encrypt && wd_random(nonce, 12) != WD_OK)
		return WD_EIO;
	pthread_mutex_lock(&pk->mu);
	e = ring_get(pk, tenant, month, encrypt, &key, err, errlen);
	if (e == WD_OK && !sec_gcm(encrypt, key, nonce, aad, aadlen, in, len,
	    out, tag)) {
		snprintf(err, errlen, encrypt ? "AES-256-GCM failed" :
		    "the payload fails authentication: it was modified or moved, "
		    "or its key was destroyed and a new one made for the same "
		    "tenant and month");
		e = encrypt ? WD_EIO : WD_EPARSE;
	}
	pthread_mutex_unlock(&pk->mu);
	return e;
}

struct months {
	char v[64][SEC_NAME_MAX + 1];
	size_t n;
};

static void
add_month(const struct sec_meta *m, void *arg)
{
	struct months *ms = arg;

	if (m->nv != 0 && ms->n < sizeof(ms->v) / sizeof(ms->v[0]))
		snprintf(ms->v[ms->n++], sizeof(ms->v[0]), "%s", m->name);
}

/* Is there a key of tenant before `before` (all if NULL) to destroy? */
static bool
has_keys(const struct gw_paykeys *pk, const char *tenant, const char *before)
{
	struct months ms = { .n = 0 };
	char store[1200], err[256];

	tenant_store(pk, tenant, store, sizeof(store));
	if (sec_list(store, add_month, &ms, err, sizeof(err)) != WD_OK)
		return true;		/* let the real attempt say why */
	for (size_t i = 0; i < ms.n; i++)
		if (before == NULL || strcmp(ms.v[i], before) < 0)
			return true;
	return false;
}

/* Destroy tenant's keys of months before `before` (all if NULL); mu and
 * the TPM lock held. */
static enum wd_err
destroy_tenant(struct gw_paykeys *pk, struct sec_tpm *tpm, const char *tenant,
    const char *before, json_t *ids, char *err, size_t errlen)
{
	char store[1200];
	struct months ms;
	enum wd_err e;

	tenant_store(pk, tenant, store, sizeof(store));
	do {
		ms.n = 0;
		if ((e = sec_list(store, add_month, &ms, err, errlen)) != WD_OK)
			return e;
		for (size_t i = 0; i < ms.n; i++) {
			uint32_t nv = 0;
			char nvhex[16];
			struct ring_ent *en;

			if (before != NULL && strcmp(ms.v[i], before) >= 0)
				continue;
			if ((en = ring_find(pk, tenant, ms.v[i])) != NULL)
				ring_drop(pk, (size_t)(en - pk->ents));
			if ((e = sec_dkey_destroy(tpm, store, ms.v[i], &nv, err,
			    errlen)) != WD_OK)
				return e;
			snprintf(nvhex, sizeof(nvhex), "0x%08x", nv);
			json_array_append_new(ids, json_pack("{s:s,s:s,s:s}",
			    "tenant", tenant, "month", ms.v[i], "nv", nvhex));
		}
		/* At most 64 a round: go on while rounds found some. */
	} while (ms.n == sizeof(ms.v) / sizeof(ms.v[0]) && before == NULL);
	if (before == NULL)
		(void)rmdir(store);	/* empty once every key is gone */
	return WD_OK;
}

/* The tenants with key stores, into names (at most max). */
static size_t
key_tenants(const struct gw_paykeys *pk, char (*names)[65], size_t max)
{
	char top[1100];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(top, sizeof(top), "%s/" KEYS_DIR, pk->dir);
	if ((d = opendir(top)) == NULL)
		return 0;
	while (n < max && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && wd_token_sane(de->d_name, 64))
			snprintf(names[n++], 65, "%.64s", de->d_name);
	closedir(d);
	return n;
}

#define MAX_TENANTS 4096

static enum wd_err
destroy(void *ctx, const char *tenant, const char *before, json_t *ids,
    char *err, size_t errlen)
{
	struct gw_paykeys *pk = ctx;
	struct sec_tpm *tpm = NULL;
	char (*names)[65] = NULL;
	size_t n = 0, due = 0;
	enum wd_err e = WD_OK;

	if (tenant != NULL && (!wd_token_sane(tenant, 64) || tenant[0] == '.')) {
		snprintf(err, errlen, "not a tenant id");
		return WD_EINVAL;
	}
	if (tenant == NULL) {
		if ((names = calloc(MAX_TENANTS, sizeof(*names))) == NULL)
			return WD_ENOMEM;
		n = key_tenants(pk, names, MAX_TENANTS);
	}
	pthread_mutex_lock(&pk->mu);
	pthread_mutex_lock(pk->tpm_lock);
	/* Nothing to destroy: no TPM needed (the hourly sweep, mostly). */
	due = tenant != NULL ? has_keys(pk, tenant, before) : 0;
	for (size_t i = 0; i < n && due == 0; i++)
		due = has_keys(pk, names[i], before);
	if (due == 0)
		goto out;
	if ((e = open_tpm(pk, &tpm, err, errlen)) != WD_OK)
		goto out;
	if (tenant != NULL)
		e = destroy_tenant(pk, tpm, tenant, before, ids, err, errlen);
	for (size_t i = 0; i < n && e == WD_OK; i++)
		if (has_keys(pk, names[i], before))
			e = destroy_tenant(pk, tpm, names[i], before, ids, err,
			    errlen);
out:
	gw_tpm_close(tpm);
	pthread_mutex_unlock(pk->tpm_lock);
	pthread_mutex_unlock(&pk->mu);
	free(names);
	if (tenant != NULL)
		forget(pk, tenant);
	return e;
}

/* Overwrite the clear key file of an older warden, then remove it. */
static void
shred_clear_key(const char *path)
{
	unsigned char junk[32];
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		wd_random(junk, sizeof(junk));
		if (pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk))
			(void)fsync(fd);
		close(fd);
	}
	unlink(path);
}

/*
 * The payload HMAC key, sealed in DIR/payload-hmac/ (made on first use).
 * A clear DIR/payload.key of an older warden is sealed as it is (so the
 * digests in the chain stay checkable) and then overwritten and removed.
 */
static enum wd_err
hmac_key(void *ctx, const char *dir, unsigned char *key, char *err,
    size_t errlen)
{
	struct gw_paykeys *pk = ctx;
	struct sec_buf value = { 0 };
	struct sec_cache *one = NULL;
	struct sec_tpm *tpm = NULL;
	const unsigned char *v;
	char store[1100], clear[1100];
	struct sec_meta m;
	bool migrate = false;
	size_t len;
	enum wd_err e;

	snprintf(store, sizeof(store), "%s/" HMAC_STORE, dir);
	snprintf(clear, sizeof(clear), "%s/payload.key", dir);
	pthread_mutex_lock(pk->tpm_lock);
	if ((e = open_tpm(pk, &tpm, err, errlen)) != WD_OK)
		goto out;
	e = sec_stat(store, HMAC_NAME, &m, err, errlen);
	if (e == WD_ENOTFOUND) {
		int fd = open(clear, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;

		if ((e = sec_buf_alloc(&value, 32, err, errlen)) != WD_OK) {
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if (fd >= 0) {
			if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
			    st.st_uid != geteuid() || st.st_size != 32 ||
			    read(fd, value.p, 32) != 32) {
				close(fd);
				snprintf(err, errlen, "%s: not a payload key of this "
				    "user; refusing to seal it", clear);
				e = WD_EPERM;
				goto out;
			}
			close(fd);
			migrate = true;
		} else if ((e = wd_random(value.p, 32)) != WD_OK) {
			goto out;
		}
		if ((e = sec_seal(tpm, store, HMAC_NAME, value.p, 32, NULL,
		    SEC_CREATE, err, errlen)) != WD_OK)
			goto out;
	} else if (e != WD_OK) {
		goto out;
	}
	if ((e = sec_cache_new(64, &one, err, errlen)) != WD_OK ||
	    (e = sec_unseal(tpm, store, HMAC_NAME, NULL, 0, one, err, errlen)) !=
	    WD_OK)
		goto out;
	v = sec_cache_get(one, HMAC_NAME, &len);
	if (v == NULL || len != 32) {
		snprintf(err, errlen, "%s/%s is not a payload key", store, HMAC_NAME);
		e = WD_EPARSE;
		goto out;
	}
	memcpy(key, v, 32);
	/* Sealed (now or by an earlier start that stopped half way): the
	 * clear copy goes. */
	if (access(clear, F_OK) == 0) {
		shred_clear_key(clear);
		wd_info("audit: %s was sealed in the TPM (%s) and removed%s", clear,
		    store, migrate ? "" : " (it was sealed before)");
	}
out:
	sec_cache_free(one);
	sec_buf_free(&value);
	gw_tpm_close(tpm);
	pthread_mutex_unlock(pk->tpm_lock);
	return e;
}

enum wd_err
gw_paykeys_new(const char *dir, const char *tcti, pthread_mutex_t *tpm_lock,
    struct gw_paykeys **out, char *err, size_t errlen)
{
	struct gw_paykeys *pk;
	enum wd_err e;

	*out = NULL;
	if (tcti == NULL || *tcti == '\0') {
		snprintf(err, errlen, "no TPM named (secrets.tcti or --tcti)");
		return WD_EINVAL;
	}
	if ((pk = calloc(1, sizeof(*pk))) == NULL)
		return WD_ENOMEM;
	pthread_mutex_init(&pk->mu, NULL);
	pthread_mutex_init(&pk->own_tpm_lock, NULL);
	pk->tpm_lock = tpm_lock != NULL ? tpm_lock : &pk->own_tpm_lock;
	pk->tcti = strdup(tcti);
	pk->dir = strdup(dir);
	if (pk->tcti == NULL || pk->dir == NULL) {
		gw_paykeys_free(pk);
		return WD_ENOMEM;
	}
	if ((e = sec_cache_new(RING_KEYS * SEC_DKEY_LEN, &pk->ring, err,
	    errlen)) != WD_OK) {
		gw_paykeys_free(pk);
		return e;
	}
	pk->keys = (struct aud_keys){ .hmac_key = hmac_key, .crypt = pk_crypt,
		.destroy = destroy, .forget = forget, .ctx = pk };
	*out = pk;
	return WD_OK;
}

const struct aud_keys *
gw_paykeys_keys(struct gw_paykeys *pk)
{
	return pk != NULL ? &pk->keys : NULL;
}

void
gw_paykeys_free(struct gw_paykeys *pk)
{
	if (pk == NULL)
		return;
	sec_cache_free(pk->ring);	/* wipes every key */
	pthread_mutex_destroy(&pk->mu);
	pthread_mutex_destroy(&pk->own_tpm_lock);
	free(pk->tcti);
	free(pk->dir);
	free(pk);
}
