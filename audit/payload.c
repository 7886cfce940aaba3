/*
 * payload.c - what warden keeps of prompts and answers when a decision's
 * keep mode is `redacted` or `full`: one file per transaction, outside the
 * hash chain, which holds only their HMAC digests.  So payloads can be
 * deleted when their time is up (TTL) or on request (`warden audit purge
 * --tenant T`) without breaking verification.
 *
 *   DIR/payloads/TENANT/EXPIRES-DECISIONID.wpe       (0700 dirs, 0600 files)
 *   "WPE1" | 12-byte nonce | 16-byte tag | AES-256-GCM ciphertext
 *
 * The ciphertext is the payload's JSON, encrypted under the data key of
 * its tenant and the month (UTC) it expires in; the authenticated data is
 * "warden/payload/v1:TENANT/FILENAME".  The keys are not audit/'s: struct
 * aud_keys encrypts, decrypts and destroys them (in the TPM), so a purge
 * or the end of a month makes every copy of those files unreadable.
 * EXPIRES (seconds since the epoch) is in the name so that the sweep
 * needs no file contents.  `redacted` keeps the structure of the
 * conversation (roles, tool names, sizes) and replaces every message text
 * with its length.
 */
#include "audit/aud_int.h"

#define PAYLOAD_MAGIC "WPE1"		/* warden payload envelope, format 1 */
#define PAYLOAD_HDR (4 + 12 + 16)	/* magic, nonce, tag */
#define PAYLOAD_EXT ".wpe"
#define PAYLOAD_AAD "warden/payload/v1:"
#define PAYLOAD_MAX ((size_t)64 << 20)	/* largest payload kept */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
redact_content(json_t *msg)
{
	json_t *c = json_object_get(msg, "content");
	char text[64];

	if (json_is_string(c)) {
		snprintf(text, sizeof(text), "[redacted: %zu bytes]",
		    json_string_length(c));
		json_object_set_new(msg, "content", json_string(text));
	} else if (json_is_array(c)) {
		snprintf(text, sizeof(text), "[redacted: %zu parts]",
		    json_array_size(c));
		json_object_set_new(msg, "content", json_string(text));
	}
	/* Tool call arguments can hold as much as any message. */
	if (json_is_array(json_object_get(msg, "tool_calls"))) {
		json_t *call;
		size_t i;

		json_array_foreach(json_object_get(msg, "tool_calls"), i, call) {
			json_t *f = json_object_get(call, "function");
			json_t *args = json_object_get(f, "arguments");

			if (json_is_string(args)) {
				snprintf(text, sizeof(text), "[redacted: %zu bytes]",
				    json_string_length(args));
				json_object_set_new(f, "arguments", json_string(text));
			}
		}
	}
}

json_t *
aud_redact(const char *body, size_t len, bool is_request)
{
	json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, NULL), *m;
	size_t i;

	if (j == NULL) {
		char text[64];

		snprintf(text, sizeof(text), "[redacted: %zu bytes]", len);
		return json_string(text);
	}
	if (is_request) {
		json_array_foreach(json_object_get(j, "messages"), i, m)
			redact_content(m);
	} else {
		json_array_foreach(json_object_get(j, "choices"), i, m)
			redact_content(json_object_get(m, "message"));
	}
	return j;
}

static bool
safe_name(const char *s)
{
	return wd_token_sane(s, 64) && s[0] != '.';
}

static enum wd_err
ensure_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return WD_EIO;
	return WD_OK;
}

void
aud_key_month(time_t t, char out[8])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 8, "%04u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
	    (unsigned)(tm.tm_mon + 1) % 100u);
}

/* The authenticated data: the file's tenant and name, so a payload moved
 * to another name or tenant fails to open. */
static int
make_aad(char *buf, size_t len, const char *tenant, const char *file)
{
	return snprintf(buf, len, "%s%s/%s", PAYLOAD_AAD, tenant, file);
}

/*
 * The plaintext is built in a buffer that is wiped whenever it moves and
 * when it is freed, so the serialised payload leaves no copy behind in
 * freed memory (json_dumps would, through its reallocations).
 */
struct wipebuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static int
wipebuf_add(const char *data, size_t n, void *arg)
{
	struct wipebuf *b = arg;

	if (b->failed || n > PAYLOAD_MAX - b->len) {
		b->failed = true;
		return -1;
	}
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2;
		char *np = malloc(cap);

		if (np == NULL) {
			b->failed = true;
			return -1;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			wd_wipe(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static void
wipebuf_free(struct wipebuf *b)
{
	if (b->p != NULL) {
		wd_wipe(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

enum wd_err
aud_payload_store(const struct aud_log *l, const char *tenant,
    const char *decision_id, int ttl_days, json_t *payload)
{
	char path[1024], tmp[1100], file[160], month[8], aad[300], why[512];
	struct wipebuf plain = { 0 };
	unsigned char *out = NULL;
	time_t expires = time(NULL) + (time_t)(ttl_days > 0 ? ttl_days : 0) * 86400;
	size_t outlen;
	int fd = -1, aadlen;
	enum wd_err rc;

	if (!safe_name(tenant) || !safe_name(decision_id) || ttl_days <= 0)
		return ttl_days <= 0 ? WD_OK : WD_EINVAL;
	/* Never in clear: without keys (no TPM) nothing is kept. */
	if (l->o.keys == NULL || l->o.keys->crypt == NULL)
		return WD_EUNSUPPORTED;
	snprintf(path, sizeof(path), "%s/payloads", l->dir);
	if (ensure_dir(path) != WD_OK)
		return WD_EIO;
	snprintf(path, sizeof(path), "%s/payloads/%s", l->dir, tenant);
	if (ensure_dir(path) != WD_OK)
		return WD_EIO;
	if (json_dump_callback(payload, wipebuf_add, &plain,
	    JSON_COMPACT | JSON_SORT_KEYS) != 0 || plain.failed) {
		rc = plain.failed && plain.len > 0 ? WD_ELIMIT : WD_ENOMEM;
		goto out;
	}
	aud_key_month(expires, month);
	snprintf(file, sizeof(file), "%lld-%s" PAYLOAD_EXT, (long long)expires,
	    decision_id);
	aadlen = make_aad(aad, sizeof(aad), tenant, file);
	outlen = PAYLOAD_HDR + plain.len;
	if ((out = malloc(outlen)) == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	memcpy(out, PAYLOAD_MAGIC, 4);
	rc = l->o.keys->crypt(l->o.keys->ctx, true, tenant, month, aad,
	    (size_t)aadlen, (const unsigned char *)plain.p, plain.len,
	    out + PAYLOAD_HDR, out + 4, out + 4 + 12, why, sizeof(why));
	if (rc != WD_OK) {
		wd_error("audit: payload of %s not kept: %s", decision_id, why);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/payloads/%s/%s", l->dir, tenant, file);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, out, outlen) != (ssize_t)outlen ||
	    close(fd) != 0 || rename(tmp, path) != 0) {
		if (fd >= 0)
			unlink(tmp);
		rc = WD_EIO;
	}
out:
	wipebuf_free(&plain);
	free(out);
	return rc;
}

/* Find DIR/payloads/T/EXP-ID.wpe for decision id: *tenant, file. */
static enum wd_err
find_payload(const char *dir, const char *id, char tenant[65], char *file,
    size_t flen)
{
	char base[1024], tdir[1400], suffix[128];
	struct dirent *t, *f;
	enum wd_err rc = WD_ENOTFOUND;
	DIR *td, *fd;

	snprintf(base, sizeof(base), "%s/payloads", dir);
	snprintf(suffix, sizeof(suffix), "-%s" PAYLOAD_EXT, id);
	if ((td = opendir(base)) == NULL)
		return WD_ENOTFOUND;
	while (rc == WD_ENOTFOUND && (t = readdir(td)) != NULL) {
		if (!safe_name(t->d_name))
			continue;
		snprintf(tdir, sizeof(tdir), "%s/%s", base, t->d_name);
		if ((fd = opendir(tdir)) == NULL)
			continue;
		while ((f = readdir(fd)) != NULL) {
			size_t n = strlen(f->d_name), sl = strlen(suffix);
			long long exp;

			if (n > sl && strcmp(f->d_name + n - sl, suffix) == 0 &&
			    sscanf(f->d_name, "%lld-", &exp) == 1 &&
			    strlen(t->d_name) <= 64) {
				snprintf(tenant, 65, "%.64s", t->d_name);
				snprintf(file, flen, "%s", f->d_name);
				rc = WD_OK;
				break;
			}
		}
		closedir(fd);
	}
	closedir(td);
	return rc;
}

enum wd_err
aud_payload_read(const char *dir, const struct aud_keys *keys,
    const char *id, unsigned char *(*alloc)(void *arg, size_t len),
    void *arg, size_t *len, char tenant[65], char *err, size_t errlen)
{
	char file[256], path[1400], month[8], aad[400];
	unsigned char *ct = NULL, *plain;
	long long exp;
	struct stat st;
	size_t ctlen = 0;
	int fd = -1, aadlen;
	enum wd_err rc;

	*len = 0;
	tenant[0] = '\0';
	if (!safe_name(id)) {
		snprintf(err, errlen, "not a decision id (1-64 of A-Z a-z 0-9 "
		    "- _ . :)");
		return WD_EINVAL;
	}
	if (find_payload(dir, id, tenant, file, sizeof(file)) != WD_OK) {
		snprintf(err, errlen, "no kept payload of decision %s in %s: none "
		    "was kept, or it expired or was purged (and its key with it)",
		    id, dir);
		return WD_ENOTFOUND;
	}
	snprintf(path, sizeof(path), "%s/payloads/%s/%s", dir, tenant, file);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < PAYLOAD_HDR ||
	    (uint64_t)st.st_size > PAYLOAD_HDR + (uint64_t)PAYLOAD_MAX) {
		snprintf(err, errlen, "%s: cannot read, or not a payload file",
		    path);
		rc = WD_EPARSE;
		goto out;
	}
	ctlen = (size_t)st.st_size;
	if ((ct = malloc(ctlen)) == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	if (pread(fd, ct, ctlen, 0) != (ssize_t)ctlen ||
	    memcmp(ct, PAYLOAD_MAGIC, 4) != 0) {
		snprintf(err, errlen, "%s: not a payload file (%s)", path,
		    PAYLOAD_MAGIC);
		rc = WD_EPARSE;
		goto out;
	}
	sscanf(file, "%lld-", &exp);
	aud_key_month((time_t)exp, month);
	aadlen = make_aad(aad, sizeof(aad), tenant, file);
	if ((plain = alloc(arg, ctlen - PAYLOAD_HDR + 1)) == NULL) {
		snprintf(err, errlen, "no locked memory for %zu bytes",
		    ctlen - PAYLOAD_HDR);
		rc = WD_ENOMEM;
		goto out;
	}
	if (keys == NULL || keys->crypt == NULL) {
		snprintf(err, errlen, "no TPM: payloads can only be read with it");
		rc = WD_EUNSUPPORTED;
		goto out;
	}
	rc = keys->crypt(keys->ctx, false, tenant, month, aad, (size_t)aadlen,
	    ct + PAYLOAD_HDR, ctlen - PAYLOAD_HDR, plain, ct + 4, ct + 4 + 12,
	    err, errlen);
	if (rc == WD_ENOTFOUND) {
		snprintf(err, errlen, "the key of this payload (tenant %s, month "
		    "%s) was destroyed: it cannot be decrypted by anyone", tenant,
		    month);
		rc = WD_EDESTROYED;
	}
	if (rc == WD_OK)
		*len = ctlen - PAYLOAD_HDR;
out:
	if (fd >= 0)
		close(fd);
	free(ct);
	return rc;
}

/* Delete payload files of tenant (all tenants if NULL) that expired
 * before now (all of them if now is 0).  Returns how many. */
static size_t
sweep(const char *dir, const char *tenant, time_t now)
{
	char base[1024], tdir[1400], file[1800];
	struct dirent *t, *f;
	size_t removed = 0;
	DIR *td, *fd;

	snprintf(base, sizeof(base), "%s/payloads", dir);
	if ((td = opendir(base)) == NULL)
		return 0;
	while ((t = readdir(td)) != NULL) {
		if (t->d_name[0] == '.' ||
		    (tenant != NULL && strcmp(t->d_name, tenant) != 0))
			continue;
		snprintf(tdir, sizeof(tdir), "%s/%s", base, t->d_name);
		if ((fd = opendir(tdir)) == NULL)
			continue;
		while ((f = readdir(fd)) != NULL) {
			long long exp;

			if (f->d_name[0] == '.' ||
			    sscanf(f->d_name, "%lld-", &exp) != 1)
				continue;
			if (now != 0 && exp > (long long)now)
				continue;
			snprintf(file, sizeof(file), "%s/%s", tdir, f->d_name);
			if (unlink(file) == 0)
				removed++;
		}
		closedir(fd);
		if (tenant != NULL)
			rmdir(tdir);
	}
	closedir(td);
	return removed;
}

size_t
aud_payload_sweep(const char *dir)
{
	return sweep(dir, NULL, time(NULL));
}

enum wd_err
aud_payload_expire(const char *dir, const struct aud_keys *keys, json_t *ids,
    size_t *files, char *err, size_t errlen)
{
	char month[8];

	*files = sweep(dir, NULL, time(NULL));
	if (keys == NULL || keys->destroy == NULL)
		return WD_OK;
	/* Every payload under a month's key expires within that month: once
	 * it is over, the key goes. */
	aud_key_month(time(NULL), month);
	return keys->destroy(keys->ctx, NULL, month, ids, err, errlen);
}

enum wd_err
aud_payload_purge(const char *dir, const struct aud_keys *keys,
    const char *tenant, json_t *ids, size_t *files, char *err, size_t errlen)
{
	enum wd_err rc;

	*files = 0;
	if (!safe_name(tenant)) {
		snprintf(err, errlen, "not a tenant id");
		return WD_EINVAL;
	}
	if (keys == NULL || keys->destroy == NULL) {
		snprintf(err, errlen, "purging needs the TPM, where the keys are "
		    "destroyed (give -c RULES or --tcti)");
		return WD_EUNSUPPORTED;
	}
	/* Keys first: once they are gone every copy is unreadable, and a
	 * failure here leaves everything as it was, and says so. */
	if ((rc = keys->destroy(keys->ctx, tenant, NULL, ids, err, errlen)) !=
	    WD_OK)
		return rc;
	*files = sweep(dir, tenant, 0);
	return WD_OK;
}

/* The writer thread's hourly sweep: expired files, and the keys of months
 * that are over, with a `purge` record naming them. */
void
aud_payload_housekeeping(struct aud_log *l)
{
	char err[512] = "", host[256] = "";
	size_t files = 0;
	json_t *ids, *rec;
	enum wd_err rc;

	if (l->o.events_only || (l->last_sweep_us != 0 &&
	    wd_mono_us() - l->last_sweep_us < 3600ull * 1000000u))
		return;
	l->last_sweep_us = wd_mono_us();
	if ((ids = json_array()) == NULL)
		return;
	rc = aud_payload_expire(l->dir, l->o.keys, ids, &files, err,
	    sizeof(err));
	if (rc != WD_OK)
		wd_error("audit: expired payload keys not destroyed: %s", err);
	if (json_array_size(ids) == 0) {
		json_decref(ids);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	rec = json_pack("{s:s,s:s,s:o,s:I,s:{s:s,s:s}}", "kind", "purge",
	    "reason", "expired", "keys", ids, "payloads", (json_int_t)files,
	    "by", "process", "warden (hourly sweep)", "host", host);
	if (rec != NULL && aud_append(l, rec) != WD_OK)
		wd_error("audit: the purge record of expired keys waits for the "
		    "log");
}
