/*
 * store.c - the store directory: one subdirectory per secret holding its
 * sealed blobs and metadata (layout in sec.h).
 *
 * Everything is opened relative to the store's descriptor with
 * O_NOFOLLOW and checked with fstat on the descriptor actually read, so a
 * symlink or a swapped file cannot smuggle in something else.  A secret is
 * written complete into "NAME~new.XXXXXXXX" ('~' never occurs in a name),
 * fsynced, and then moved into place with one renameat2: RENAME_NOREPLACE
 * to create, RENAME_EXCHANGE to replace.  Either is atomic, so a crash or
 * a failure leaves the old secret or the new one, never a mixture;
 * leftovers from a crash carry the '~' and are ignored.
 */
#include "secrets/sec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <tss2/tss2_mu.h>

#define META_MAX 4096
#define ENV_MAGIC_LEN 4

bool
sec_name_valid(const char *name)
{
	size_t n = 0;

	for (const char *p = name; *p != '\0'; p++, n++) {
		char ch = *p;

		if (n == SEC_NAME_MAX)
			return false;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return n > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

void
sec_now_rfc3339(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Is what fd refers to safe to trust?  Owned by us, nobody else may read
 * or write it.  path is only for the message, which says how to fix it.
 */
static enum wd_err
check_secrecy(int fd, const char *path, bool dir, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		sec_errf(err, errlen, "%s: %s", path, strerror(errno));
		return WD_EIO;
	}
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		sec_errf(err, errlen, "%s is not a %s", path,
		    dir ? "directory" : "regular file");
		return WD_EPERM;
	}
	if (st.st_uid != geteuid()) {
		sec_errf(err, errlen, "%s is owned by uid %u, not by the user "
		    "running warden (uid %u): chown %u %s", path,
		    (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(),
		    path);
		return WD_EPERM;
	}
	if ((st.st_mode & 077) != 0) {
		sec_errf(err, errlen, "%s has mode %04o; group and others must "
		    "have no access: chmod %s %s", path,
		    (unsigned)(st.st_mode & 07777), dir ? "700" : "600", path);
		return WD_EPERM;
	}
	return WD_OK;
}

/* Open and check the store; create it (0700) if asked and missing. */
static enum wd_err
open_store(const char *store, bool create, int *fd, char *err, size_t errlen)
{
	enum wd_err e;

	*fd = -1;
	if (store == NULL || *store == '\0') {
		sec_errf(err, errlen, "no secrets store given");
		return WD_EINVAL;
	}
	*fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT && create) {
		if (mkdir(store, 0700) != 0 && errno != EEXIST) {
			sec_errf(err, errlen, "cannot create secrets store %s: %s",
			    store, strerror(errno));
			return WD_EIO;
		}
		*fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (*fd < 0) {
		e = errno == ENOENT ? WD_ENOTFOUND : WD_EIO;
		sec_errf(err, errlen, "secrets store %s: %s", store, strerror(errno));
		return e;
	}
	if ((e = check_secrecy(*fd, store, true, err, errlen)) != WD_OK) {
		close(*fd);
		*fd = -1;
	}
	return e;
}

/* Open store/name, the directory of one secret, and check it. */
static enum wd_err
open_entry(int sfd, const char *store, const char *name, int *fd,
    char *err, size_t errlen)
{
	char path[PATH_MAX];
	enum wd_err e;

	snprintf(path, sizeof(path), "%s/%s", store, name);
	*fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT) {
			sec_errf(err, errlen, "no secret '%s' in %s", name, store);
			return WD_ENOTFOUND;
		}
		sec_errf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ELOOP || errno == ENOTDIR ? WD_EPERM : WD_EIO;
	}
	if ((e = check_secrecy(*fd, path, true, err, errlen)) != WD_OK) {
		close(*fd);
		*fd = -1;
	}
	return e;
}

/* Read one file of an entry, at most max bytes; *buf is malloc'd. */
static enum wd_err
read_at(int dfd, const char *dpath, const char *file, size_t max,
    unsigned char **buf, size_t *len, char *err, size_t errlen)
{
	char path[PATH_MAX];
	unsigned char *b = NULL;
	size_t n = 0;
	enum wd_err e;
	int fd;

	*buf = NULL;
	*len = 0;
	snprintf(path, sizeof(path), "%s/%s", dpath, file);
	if ((fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		sec_errf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? WD_EPARSE : WD_EIO;
	}
	if ((e = check_secrecy(fd, path, false, err, errlen)) != WD_OK)
		goto out;
	if ((b = malloc(max + 1)) == NULL) {
		e = WD_ENOMEM;
		sec_errf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, b + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = WD_EIO;
			sec_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			e = WD_ELIMIT;
			sec_errf(err, errlen, "%s is larger than %zu bytes", path, max);
			goto out;
		}
	}
	*buf = b;
	*len = n;
	b = NULL;
	e = WD_OK;
out:
	free(b);
	close(fd);
	return e;
}

static const char *
kind_name(enum sec_kind k)
{
	return k == SEC_KIND_SIGNING_KEY ? "signing-key" :
	    k == SEC_KIND_IMPORTED_KEY ? "imported-key" : "credential";
}

static enum wd_err
meta_parse(const unsigned char *buf, size_t len, const char *name,
    const char *path, struct sec_meta *m, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES,
	    &jerr), *v;
	const char *s;
	enum wd_err e = WD_EPARSE;

	memset(m, 0, sizeof(*m));
	if (j == NULL || !json_is_object(j)) {
		sec_errf(err, errlen, "%s: not a JSON object", path);
		goto out;
	}
	s = json_string_value(json_object_get(j, "name"));
	if (s == NULL || strcmp(s, name) != 0) {
		sec_errf(err, errlen, "%s: name does not match its directory", path);
		goto out;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	s = json_string_value(json_object_get(j, "kind"));
	if (s != NULL && strcmp(s, "credential") == 0)
		m->kind = SEC_KIND_CREDENTIAL;
	else if (s != NULL && strcmp(s, "signing-key") == 0)
		m->kind = SEC_KIND_SIGNING_KEY;
	else if (s != NULL && strcmp(s, "imported-key") == 0)
		m->kind = SEC_KIND_IMPORTED_KEY;
	else {
		sec_errf(err, errlen, "%s: unknown kind", path);
		goto out;
	}
	s = json_string_value(json_object_get(j, "created"));
	snprintf(m->created, sizeof(m->created), "%s", s ? s : "");
	v = json_object_get(j, "pcrs");
	if (json_is_string(v))
		snprintf(m->pcrs, sizeof(m->pcrs), "%s", json_string_value(v));
	m->auth = json_is_true(json_object_get(j, "auth"));
	v = json_object_get(j, "template");
	m->template_version = json_is_integer(v) ? (int)json_integer_value(v) : 0;
	if (m->template_version != SEC_TEMPLATE_VERSION) {
		sec_errf(err, errlen, "%s: template version %d; this warden knows "
		    "version %d", path, m->template_version, SEC_TEMPLATE_VERSION);
		e = WD_EUNSUPPORTED;
		goto out;
	}
	v = json_object_get(j, "size");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > SEC_VALUE_MAX) {
		sec_errf(err, errlen, "%s: bad size", path);
		goto out;
	}
	m->size = (size_t)json_integer_value(v);
	/* Absent in credentials; a data key's NV index (dkey.c). */
	v = json_object_get(j, "nv");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) <
	    (json_int_t)SEC_DKEY_NV_FIRST || json_integer_value(v) >=
	    (json_int_t)(SEC_DKEY_NV_FIRST + SEC_DKEY_NV_COUNT))) {
		sec_errf(err, errlen, "%s: bad nv index", path);
		goto out;
	}
	m->nv = v != NULL ? (uint32_t)json_integer_value(v) : 0;
	e = WD_OK;
out:
	json_decref(j);
	return e;
}

static char *
meta_dump(const struct sec_meta *m)
{
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:o, s:b, s:i, s:I}",
	    "format", 1, "name", m->name, "kind", kind_name(m->kind),
	    "created", m->created,
	    "pcrs", m->pcrs[0] ? json_string(m->pcrs) : json_null(),
	    "auth", m->auth, "template", m->template_version,
	    "size", (json_int_t)m->size);
	char *s;

	if (j == NULL)
		return NULL;
	if (m->nv != 0)
		json_object_set_new(j, "nv", json_integer((json_int_t)m->nv));
	s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(j);
	if (s != NULL) {
		char *nl = realloc(s, strlen(s) + 2);

		if (nl == NULL) {
			free(s);
			return NULL;
		}
		s = strcat(nl, "\n");
	}
	return s;
}

/* Read only meta.json of an entry (for list and stat). */
static enum wd_err
read_meta(int sfd, const char *store, const char *name, struct sec_meta *m,
    char *err, size_t errlen)
{
	char dpath[PATH_MAX], mpath[PATH_MAX + 16];
	unsigned char *buf = NULL;
	size_t len;
	enum wd_err e;
	int dfd;

	if ((e = open_entry(sfd, store, name, &dfd, err, errlen)) != WD_OK)
		return e;
	snprintf(dpath, sizeof(dpath), "%s/%s", store, name);
	snprintf(mpath, sizeof(mpath), "%s/meta.json", dpath);
	e = read_at(dfd, dpath, "meta.json", META_MAX, &buf, &len, err, errlen);
	if (e == WD_OK)
		e = meta_parse(buf, len, name, mpath, m, err, errlen);
	free(buf);
	close(dfd);
	return e;
}

void
sec_obj_clear(struct sec_obj *o)
{
	free(o->env);
	memset(o, 0, sizeof(*o));
}

enum wd_err
sec_store_read(const char *store, const char *name, struct sec_obj *o,
    char *err, size_t errlen)
{
	char dpath[PATH_MAX], path[PATH_MAX + 16];
	unsigned char *buf = NULL;
	size_t len, off;
	enum wd_err e;
	int sfd = -1, dfd = -1;
	TSS2_RC rc;

	memset(o, 0, sizeof(*o));
	if (!sec_name_valid(name)) {
		sec_errf(err, errlen, "invalid secret name (1-64 of A-Z a-z 0-9 . _ -)");
		return WD_EINVAL;
	}
	if ((e = open_store(store, false, &sfd, err, errlen)) != WD_OK)
		goto out;
	if ((e = open_entry(sfd, store, name, &dfd, err, errlen)) != WD_OK)
		goto out;
	snprintf(dpath, sizeof(dpath), "%s/%s", store, name);

	snprintf(path, sizeof(path), "%s/meta.json", dpath);
	if ((e = read_at(dfd, dpath, "meta.json", META_MAX, &buf, &len, err,
	    errlen)) != WD_OK ||
	    (e = meta_parse(buf, len, name, path, &o->meta, err, errlen)) != WD_OK)
		goto out;
	free(buf);
	buf = NULL;

	snprintf(path, sizeof(path), "%s/tpm.pub", dpath);
	if ((e = read_at(dfd, dpath, "tpm.pub", sizeof(TPM2B_PUBLIC), &buf, &len,
	    err, errlen)) != WD_OK)
		goto out;
	off = 0;
	rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &o->pub);
	if (rc != TSS2_RC_SUCCESS || off != len) {
		sec_errf(err, errlen, "%s: not a TPM2B_PUBLIC", path);
		e = WD_EPARSE;
		goto out;
	}
	free(buf);
	buf = NULL;

	snprintf(path, sizeof(path), "%s/tpm.priv", dpath);
	if ((e = read_at(dfd, dpath, "tpm.priv", sizeof(TPM2B_PRIVATE), &buf,
	    &len, err, errlen)) != WD_OK)
		goto out;
	off = 0;
	rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, len, &off, &o->priv);
	if (rc != TSS2_RC_SUCCESS || off != len) {
		sec_errf(err, errlen, "%s: not a TPM2B_PRIVATE", path);
		e = WD_EPARSE;
		goto out;
	}
	free(buf);
	buf = NULL;

	if (o->meta.kind == SEC_KIND_CREDENTIAL) {
		snprintf(path, sizeof(path), "%s/envelope.bin", dpath);
		e = read_at(dfd, dpath, "envelope.bin",
		    ENV_MAGIC_LEN + 12 + 16 + SEC_VALUE_MAX, &o->env, &o->envlen,
		    err, errlen);
		if (e != WD_OK)
			goto out;
	}
	e = WD_OK;
out:
	free(buf);
	if (dfd >= 0)
		close(dfd);
	if (sfd >= 0)
		close(sfd);
	if (e != WD_OK)
		sec_obj_clear(o);
	return e;
}

static enum wd_err
write_at(int dfd, const char *file, const void *data, size_t len, char *err,
    size_t errlen)
{
	const unsigned char *p = data;
	int fd;

	fd = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return WD_OK;
fail:
	sec_errf(err, errlen, "writing %s: %s", file, strerror(errno));
	if (fd >= 0)
		close(fd);
	return WD_EIO;
}

/* Remove a secret's directory (by its name in the store) and its files. */
static void
rm_entry(int sfd, const char *dname)
{
	static const char *const files[] = { "meta.json", "tpm.pub", "tpm.priv",
		"envelope.bin" };
	int dfd = openat(sfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);

	if (dfd >= 0) {
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			(void)unlinkat(dfd, files[i], 0);
		close(dfd);
	}
	(void)unlinkat(sfd, dname, AT_REMOVEDIR);
}

/* A fresh '~' sibling for name: the staging directory of a write. */
static enum wd_err
make_tmp(int sfd, const char *name, const char *what, char tmp[128],
    bool mkdir_it, char *err, size_t errlen)
{
	for (int tries = 0; tries < 16; tries++) {
		unsigned char r[4];
		char hex[9];

		wd_random(r, sizeof(r));
		wd_hex(r, sizeof(r), hex);
		snprintf(tmp, 128, "%s~%s.%s", name, what, hex);
		if (!mkdir_it)
			return WD_OK;
		if (mkdirat(sfd, tmp, 0700) == 0)
			return WD_OK;
		if (errno != EEXIST)
			break;
	}
	sec_errf(err, errlen, "cannot create a staging directory in the store: %s",
	    strerror(errno));
	return WD_EIO;
}

enum wd_err
sec_store_write(const char *store, const char *name, const struct sec_obj *o,
    enum sec_mode mode, char *err, size_t errlen)
{
	unsigned char pub[sizeof(TPM2B_PUBLIC)], priv[sizeof(TPM2B_PRIVATE)];
	size_t publen = 0, privlen = 0;
	char tmp[128], *meta = NULL;
	bool staged = false;
	enum wd_err e;
	int sfd = -1, tfd = -1;
	TSS2_RC rc;

	if ((e = open_store(store, true, &sfd, err, errlen)) != WD_OK)
		return e;
	rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&o->pub, pub, sizeof(pub), &publen);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&o->priv, priv, sizeof(priv),
		    &privlen);
	if (rc != TSS2_RC_SUCCESS) {
		e = sec_tpm_err(err, errlen, "marshalling the blobs", rc);
		goto out;
	}
	if ((meta = meta_dump(&o->meta)) == NULL) {
		sec_errf(err, errlen, "out of memory");
		e = WD_ENOMEM;
		goto out;
	}
	if ((e = make_tmp(sfd, name, "new", tmp, true, err, errlen)) != WD_OK)
		goto out;
	staged = true;
	if ((tfd = openat(sfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		sec_errf(err, errlen, "%s/%s: %s", store, tmp, strerror(errno));
		e = WD_EIO;
		goto out;
	}
	if ((e = write_at(tfd, "tpm.pub", pub, publen, err, errlen)) != WD_OK ||
	    (e = write_at(tfd, "tpm.priv", priv, privlen, err, errlen)) != WD_OK ||
	    (o->env != NULL && (e = write_at(tfd, "envelope.bin", o->env,
	    o->envlen, err, errlen)) != WD_OK) ||
	    (e = write_at(tfd, "meta.json", meta, strlen(meta), err, errlen)) !=
	    WD_OK)
		goto out;
	if (fsync(tfd) != 0) {
		sec_errf(err, errlen, "fsync %s/%s: %s", store, tmp, strerror(errno));
		e = WD_EIO;
		goto out;
	}
	if (mode == SEC_CREATE) {
		if (renameat2(sfd, tmp, sfd, name, RENAME_NOREPLACE) != 0) {
			e = errno == EEXIST ? WD_EINVAL : WD_EIO;
			if (errno == EEXIST)
				sec_errf(err, errlen, "secret '%s' exists already "
				    "(rotate replaces it)", name);
			else
				sec_errf(err, errlen, "renaming into %s/%s: %s", store,
				    name, strerror(errno));
			goto out;
		}
		staged = false;
	} else {
		/* The staging directory now holds the old secret, which
		 * out: removes. */
		if (renameat2(sfd, tmp, sfd, name, RENAME_EXCHANGE) != 0) {
			e = errno == ENOENT ? WD_ENOTFOUND : WD_EIO;
			if (errno == ENOENT)
				sec_errf(err, errlen, "no secret '%s' in %s", name, store);
			else
				sec_errf(err, errlen, "replacing %s/%s atomically: %s",
				    store, name, strerror(errno));
			goto out;
		}
	}
	if (fsync(sfd) != 0) {
		sec_errf(err, errlen, "fsync %s: %s", store, strerror(errno));
		e = WD_EIO;
		goto out;
	}
	e = WD_OK;
out:
	if (tfd >= 0)
		close(tfd);
	if (staged)
		rm_entry(sfd, tmp);
	close(sfd);
	free(meta);
	return e;
}

enum wd_err
sec_stat(const char *store, const char *name, struct sec_meta *out,
    char *err, size_t errlen)
{
	enum wd_err e;
	int sfd;

	memset(out, 0, sizeof(*out));
	if (!sec_name_valid(name)) {
		sec_errf(err, errlen, "invalid secret name (1-64 of A-Z a-z 0-9 . _ -)");
		return WD_EINVAL;
	}
	if ((e = open_store(store, false, &sfd, err, errlen)) != WD_OK)
		return e;
	e = read_meta(sfd, store, name, out, err, errlen);
	close(sfd);
	return e;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum wd_err
sec_list(const char *store, void (*cb)(const struct sec_meta *, void *),
    void *arg, char *err, size_t errlen)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	enum wd_err e;
	int sfd, dfd;

	if ((e = open_store(store, false, &sfd, err, errlen)) != WD_OK)
		return e == WD_ENOTFOUND ? WD_OK : e;
	if ((dfd = dup(sfd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		sec_errf(err, errlen, "%s: %s", store, strerror(errno));
		e = WD_EIO;
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (!sec_name_valid(de->d_name))
			continue;	/* "." "..", staging dirs ('~') */
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 32;
			if ((nn = realloc(names, cap * sizeof(*nn))) == NULL)
				goto nomem;
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto nomem;
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		struct sec_meta m;

		if ((e = read_meta(sfd, store, names[i], &m, err, errlen)) != WD_OK)
			goto out;
		cb(&m, arg);
	}
	e = WD_OK;
	goto out;
nomem:
	sec_errf(err, errlen, "out of memory");
	e = WD_ENOMEM;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (d != NULL)
		closedir(d);
	close(sfd);
	return e;
}

enum wd_err
sec_remove(const char *store, const char *name, char *err, size_t errlen)
{
	char tmp[128], etext[512] = "";
	enum wd_err e;
	int sfd = -1, dfd = -1;

	if (!sec_name_valid(name)) {
		sec_errf(etext, sizeof(etext),
		    "invalid secret name (1-64 of A-Z a-z 0-9 . _ -)");
		e = WD_EINVAL;
		goto out;
	}
	if ((e = open_store(store, false, &sfd, etext, sizeof(etext))) != WD_OK)
		goto out;
	/* Checked like a read: refuse to act on what someone else owns. */
	if ((e = open_entry(sfd, store, name, &dfd, etext, sizeof(etext))) !=
	    WD_OK)
		goto out;
	/* One rename makes it disappear; deleting the files comes after. */
	if ((e = make_tmp(sfd, name, "rm", tmp, false, etext, sizeof(etext))) !=
	    WD_OK)
		goto out;
	if (renameat(sfd, name, sfd, tmp) != 0 || fsync(sfd) != 0) {
		sec_errf(etext, sizeof(etext), "removing %s/%s: %s", store, name,
		    strerror(errno));
		e = WD_EIO;
		goto out;
	}
	rm_entry(sfd, tmp);
	e = WD_OK;
out:
	if (dfd >= 0)
		close(dfd);
	if (sfd >= 0)
		close(sfd);
	sec_event_emit(SEC_EV_REMOVE, name, e, etext);
	sec_errf(err, errlen, "%s", etext);
	return e;
}

/* Overwrite one file of an entry with random bytes and make it durable. */
static void
shred_at(int dfd, const char *file)
{
	unsigned char junk[4096];
	struct stat st;
	int fd = openat(dfd, file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		for (off_t off = 0; off < st.st_size; ) {
			size_t n = (size_t)(st.st_size - off) < sizeof(junk) ?
			    (size_t)(st.st_size - off) : sizeof(junk);

			wd_random(junk, n);
			if (pwrite(fd, junk, n, off) != (ssize_t)n)
				break;
			off += (off_t)n;
		}
		(void)fsync(fd);
	}
	close(fd);
}

enum wd_err
sec_store_shred(const char *store, const char *name, char *err,
    size_t errlen)
{
	static const char *const files[] = { "meta.json", "tpm.pub", "tpm.priv",
		"envelope.bin" };
	enum wd_err e;
	int sfd = -1, dfd = -1;

	if (!sec_name_valid(name)) {
		sec_errf(err, errlen, "invalid secret name");
		return WD_EINVAL;
	}
	if ((e = open_store(store, false, &sfd, err, errlen)) != WD_OK)
		return e;
	if ((e = open_entry(sfd, store, name, &dfd, err, errlen)) != WD_OK)
		goto out;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		shred_at(dfd, files[i]);
	close(dfd);
	dfd = -1;
	e = sec_remove(store, name, err, errlen);
out:
	if (dfd >= 0)
		close(dfd);
	close(sfd);
	return e;
}
