/*
 * open.c - opening a log: the directory (0700, ours), the payload HMAC
 * key, and the tail of the last segment, where a crash may have left a
 * torn line that is cut before writing goes on.
 */
#include "audit/aud_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void
aud_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
aud_segments(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		unsigned long long no;
		char tail[8];

		if (sscanf(e->d_name, "audit-%06llu.jsonl%7s", &no, tail) != 1 ||
		    strlen(e->d_name) != 18)
			continue;
		if (*n == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (nv == NULL)
				break;
			v = nv;
		}
		v[(*n)++] = strdup(e->d_name);
	}
	closedir(d);
	if (*n > 0)
		qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static enum wd_err
check_dir(const char *dir, char *errs, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(errs, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return WD_EIO;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(errs, errlen, "%s: not a directory", dir);
		return WD_EIO;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		snprintf(errs, errlen, "%s: must be owned by this user and mode 0700 "
		    "(chmod 700 %s)", dir, dir);
		return WD_EPERM;
	}
	return WD_OK;
}

static enum wd_err
load_key(struct aud_log *l, char *errs, size_t errlen)
{
	char path[512];
	ssize_t n;
	int fd;

	/* With a TPM the key is sealed there (and a clear payload.key from
	 * before is sealed, then removed): the keys' owner does it. */
	if (l->o.keys != NULL && l->o.keys->hmac_key != NULL)
		return l->o.keys->hmac_key(l->o.keys->ctx, l->dir, l->hmac_key,
		    errs, errlen);
	snprintf(path, sizeof(path), "%s/" AUD_KEY_FILE, l->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (wd_random(l->hmac_key, sizeof(l->hmac_key)) != WD_OK)
			return WD_EIO;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, l->hmac_key, sizeof(l->hmac_key)) !=
		    (ssize_t)sizeof(l->hmac_key) || fsync(fd) != 0) {
			snprintf(errs, errlen, "%s: cannot write: %s", path,
			    strerror(errno));
			if (fd >= 0)
				close(fd);
			return WD_EIO;
		}
		close(fd);
		aud_fsync_dir(l->dir);
		return WD_OK;
	}
	if (fd < 0) {
		snprintf(errs, errlen, "%s: cannot read: %s", path, strerror(errno));
		return WD_EIO;
	}
	n = read(fd, l->hmac_key, sizeof(l->hmac_key));
	close(fd);
	if (n != (ssize_t)sizeof(l->hmac_key)) {
		snprintf(errs, errlen, "%s: not a payload key", path);
		return WD_EIO;
	}
	return WD_OK;
}

/*
 * Walk the last segment: every whole line must chain from its first one;
 * what follows the last good line (a torn write) is cut.  A bad line
 * before the end is not a crash but damage: refuse to start.
 */
static enum wd_err
recover_tail(struct aud_log *l, const char *name, json_t **recovery,
    char *errs, size_t errlen)
{
	char path[512], prev[AUD_HASH_HEX + 1] = "";
	char *text = NULL;
	size_t len = 0, good = 0, lineno = 0;
	uint64_t seq = 0;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", l->dir, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(errs, errlen, "%s: cannot open: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return WD_EIO;
	}
	len = (size_t)st.st_size;
	text = malloc(len + 1);
	if (text == NULL || (len > 0 && pread(fd, text, len, 0) != (ssize_t)len)) {
		snprintf(errs, errlen, "%s: cannot read", path);
		free(text);
		close(fd);
		return WD_EIO;
	}
	for (size_t off = 0; off < len; ) {
		char *nl = memchr(text + off, '\n', len - off), hash[AUD_HASH_HEX + 1];
		size_t ll = nl ? (size_t)(nl - (text + off)) : len - off, clen;
		char *canon = aud_split_line(text + off, ll, hash, &clen);
		json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
		const char *p = json_string_value(json_object_get(j, "prev"));
		bool ok = j != NULL && p != NULL && strlen(p) == AUD_HASH_HEX &&
		    (lineno == 0 || strcmp(p, prev) == 0) &&
		    aud_check_line(canon, clen, p, hash) && nl != NULL;

		lineno++;
		if (ok) {
			seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
			memcpy(prev, hash, sizeof(prev));
			good = off + ll + 1;
		}
		json_decref(j);
		free(canon);
		if (!ok) {
			if (nl != NULL && (size_t)(nl - text) + 1 < len) {
				snprintf(errs, errlen, "%s: line %zu is damaged and is not "
				    "the last one; refusing to append (run 'warden audit "
				    "verify %s')", path, lineno, l->dir);
				free(text);
				close(fd);
				return WD_ECONFIG;
			}
			break;
		}
		off = good;
	}
	if (good < len) {
		if (ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0) {
			snprintf(errs, errlen, "%s: cannot cut torn tail: %s", path,
			    strerror(errno));
			free(text);
			close(fd);
			return WD_EIO;
		}
		*recovery = json_pack("{s:s,s:s,s:I,s:I,s:s}", "kind", "recovery",
		    "segment", name, "cut_bytes", (json_int_t)(len - good),
		    "kept_bytes", (json_int_t)good, "reason",
		    "torn or unverifiable last line after an unclean stop");
	}
	free(text);
	close(fd);
	if (good > 0) {
		l->seq = seq;
		memcpy(l->prev, prev, sizeof(prev));
	}
	return good > 0 ? WD_OK : WD_ENOTFOUND;
}

/* One writer per log: two would fork the chain. */
static enum wd_err
lock_dir(struct aud_log *l, char *errs, size_t errlen)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/lock", l->dir);
	l->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->lockfd < 0) {
		snprintf(errs, errlen, "%s: cannot open: %s", path, strerror(errno));
		return WD_EIO;
	}
	if (flock(l->lockfd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(errs, errlen, "%s is in use by another warden process",
		    l->dir);
		return WD_EPERM;
	}
	return WD_OK;
}

enum wd_err
aud_open(const struct aud_opts *o, struct aud_log **out, char *errs,
    size_t errlen)
{
	struct aud_log *l;
	json_t *recovery = NULL;
	char **segs = NULL;
	size_t nsegs = 0;
	enum wd_err rc;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return WD_ENOMEM;
	l->o = *o;
	l->fd = -1;
	l->lockfd = -1;
	l->dir = strdup(o->dir);
	l->instance = strdup(o->instance ? o->instance : "");
	memset(l->prev, '0', AUD_HASH_HEX);
	l->prev[AUD_HASH_HEX] = '\0';
	atomic_init(&l->healthy, true);
	atomic_init(&l->dirty, false);
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->wlock, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->last_cp_us = wd_mono_us();
	if (l->dir == NULL || l->instance == NULL) {
		rc = WD_ENOMEM;
		goto fail;
	}
	if ((rc = check_dir(l->dir, errs, errlen)) != WD_OK ||
	    (rc = lock_dir(l, errs, errlen)) != WD_OK ||
	    (!o->events_only && (rc = load_key(l, errs, errlen)) != WD_OK))
		goto fail;
	if (!o->events_only && (rc = aud_mac_init(l)) != WD_OK) {
		snprintf(errs, errlen, "cannot set up HMAC");
		goto fail;
	}
	/* Digests start from midstates derived from it (digest.c, locked
	 * memory when the gateway set it up); the key itself goes. */
	wd_wipe(l->hmac_key, sizeof(l->hmac_key));
	segs = aud_segments(l->dir, &nsegs);
	/* The newest segment with a good line gives seq and prev. */
	rc = WD_OK;
	for (size_t i = nsegs; i > 0; i--) {
		rc = recover_tail(l, segs[i - 1], &recovery, errs, errlen);
		if (rc != WD_ENOTFOUND)
			break;
		rc = WD_OK;
	}
	if (rc != WD_OK && rc != WD_ENOTFOUND)
		goto fail;
	{
		unsigned long long last = 1;

		if (nsegs > 0)
			sscanf(segs[nsegs - 1], "audit-%06llu", &last);
		rc = aud_open_segment(l, last);
	}
	if (rc != WD_OK) {
		snprintf(errs, errlen, "%s", l->lasterr);
		goto fail;
	}
	if ((rc = aud_start_writer(l)) != WD_OK) {
		snprintf(errs, errlen, "cannot start the audit writer");
		goto fail;
	}
	if (recovery != NULL) {
		wd_warn("audit: cut a torn last line in %s (%lld bytes)", l->dir,
		    (long long)json_integer_value(json_object_get(recovery,
		    "cut_bytes")));
		aud_submit(l, recovery, NULL, NULL);
	}
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	*out = l;
	return WD_OK;
fail:
	json_decref(recovery);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	aud_close(l);
	return rc;
}
