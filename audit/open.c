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

/* A checkpoint recovery saw in the last segment (for the tree's index). */
static void
note_tail_cp(struct aud_log *l, uint64_t seq, const char *name, size_t off)
{
	unsigned long long segno = 0;
	struct aud_cp_entry *nv;

	sscanf(name, "audit-%06llu", &segno);
	nv = realloc(l->tailcps, (l->ntailcps + 1) * sizeof(*nv));
	if (nv == NULL)
		return;
	l->tailcps = nv;
	l->tailcps[l->ntailcps++] = (struct aud_cp_entry){ seq, segno, off };
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
			aud_leaf_hash(canon, clen, l->last_leaf);
			if (strcmp(json_string_value(json_object_get(j, "kind")) ?: "",
			    "checkpoint") == 0)
				note_tail_cp(l, seq, name, off);
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

/*
 * No silent rollback: the log's last checkpoint must carry the counter's
 * value (it is bumped only after a checkpoint that carries the bumped
 * value is on disk).  A log behind it lost its tail (cut after a
 * checkpoint, segments deleted, an old copy put back).  *rec gets the
 * rollback_detected record.
 */
static enum wd_err
check_counter(struct aud_log *l, json_t **rec, char *errs, size_t errlen)
{
	struct aud_cp_entry *v = NULL;
	size_t n = 0;
	uint64_t tpm = 0;
	json_t *cp = NULL, *c;
	enum wd_err rc;

	if (l->o.counter == NULL)
		return WD_OK;
	if ((rc = l->o.counter->next(l->o.counter->ctx, false, &tpm)) != WD_OK) {
		snprintf(errs, errlen, "cannot read the TPM counter: %s",
		    wd_strerror(rc));
		return rc;
	}
	aud_tree_checkpoints(l->dir, &v, &n);
	if (n > 0)
		cp = aud_checkpoint_at(l->dir, &v[n - 1]);
	free(v);
	c = json_object_get(cp, "counter");
	if (json_is_integer(c) && (uint64_t)json_integer_value(c) == tpm) {
		json_decref(cp);
		return WD_OK;
	}
	/* One ahead: the checkpoint reached the disk and the bump that was
	 * to follow it did not (a crash between them; writer.c writes the
	 * checkpoint first).  A rollback leaves the log behind, never
	 * ahead: the bump is made now. */
	if (json_is_integer(c) && (uint64_t)json_integer_value(c) == tpm + 1) {
		uint64_t now = 0;

		json_decref(cp);
		if ((rc = l->o.counter->next(l->o.counter->ctx, true,
		    &now)) != WD_OK || now != tpm + 1) {
			snprintf(errs, errlen, "the log's last checkpoint carries "
			    "the TPM counter's next value %llu, and the counter "
			    "cannot be moved to it (it reads %llu)",
			    (unsigned long long)(tpm + 1),
			    (unsigned long long)now);
			return rc != WD_OK ? rc : WD_ETPM;
		}
		wd_warn("audit: %s: the TPM counter was one behind the log's "
		    "last checkpoint (a stop between the checkpoint and its "
		    "bump); moved to %llu", l->dir, (unsigned long long)now);
		return WD_OK;
	}
	if (!json_is_integer(c)) {
		/* A new log, or one that never carried the counter (made before
		 * the counter was configured): nothing to compare yet; its next
		 * checkpoint carries the counter. */
		json_decref(cp);
		return WD_OK;
	}
	*rec = json_pack("{s:s,s:O,s:I,s:I,s:s}", "kind", "rollback_detected",
	    "log_counter", c,
	    "tpm_counter", (json_int_t)tpm, "last_seq", (json_int_t)l->seq,
	    "reason", "the log's last checkpoint does not carry the TPM "
	    "counter's value: the log was cut, its newest segments deleted or "
	    "an older copy restored");
	snprintf(errs, errlen, "%s: the log is behind the TPM counter (its "
	    "last checkpoint has %lld, the TPM %llu): records after seq %llu "
	    "were removed or an older copy restored", l->dir,
	    (long long)json_integer_value(c), (unsigned long long)tpm,
	    (unsigned long long)l->seq);
	json_decref(cp);
	return WD_EROLLBACK;
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
	json_t *recovery = NULL, *rbrec = NULL;
	enum wd_err rollback = WD_OK;
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
	aud_tree_init(&l->tree);
	l->dir = strdup(o->dir);
	l->instance = strdup(o->instance ? o->instance : "");
	memset(l->prev, '0', AUD_HASH_HEX);
	l->prev[AUD_HASH_HEX] = '\0';
	atomic_init(&l->healthy, true);
	atomic_init(&l->dirty, false);
	atomic_init(&l->wfail, false);
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->wlock, NULL);
	pthread_cond_init(&l->cv, NULL);
	pthread_cond_init(&l->cpcv, NULL);
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
		bool rebuilt;

		if (aud_tree_open(&l->tree, l->dir, l->seq, l->last_leaf,
		    l->tailcps, l->ntailcps, &rebuilt) != WD_OK) {
			snprintf(errs, errlen, "%s: cannot rebuild the tree files "
			    "(" AUD_TREE_DIR "/)", l->dir);
			rc = WD_EIO;
			goto fail;
		}
		if (rebuilt && l->seq > 0)
			wd_warn("audit: rebuilt %s/" AUD_TREE_DIR " from the segments "
			    "(%llu records)", l->dir, (unsigned long long)l->seq);
	}
	rollback = check_counter(l, &rbrec, errs, errlen);
	if (rollback != WD_OK && rollback != WD_EROLLBACK) {
		rc = rollback;
		goto fail;
	}
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
	/* The first checkpoint covers what an earlier run left unsigned. */
	l->cp_force = l->o.signer != NULL && l->seq > 0 && rollback == WD_OK;
	/* A log about to be refused: its writer thread neither sweeps nor
	 * takes the inbox in (set before the thread starts, read by it). */
	l->no_final_cp = rbrec != NULL && !l->o.accept_rollback;
	if ((rc = aud_start_writer(l)) != WD_OK) {
		snprintf(errs, errlen, "cannot start the audit writer");
		goto fail;
	}
	if (recovery != NULL) {
		wd_warn("audit: cut a torn last line in %s (%lld bytes)", l->dir,
		    (long long)json_integer_value(json_object_get(recovery,
		    "cut_bytes")));
		aud_submit(l, recovery, NULL, NULL);
		recovery = NULL;
	}
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	segs = NULL;
	nsegs = 0;
	if (rbrec != NULL) {
		wd_error("audit: %s", errs);
		aud_append(l, rbrec);
		rbrec = NULL;
		if (!l->o.accept_rollback) {
			/* Refused: the record stays unsigned, so the next start
			 * finds the log behind again. */
			l->no_final_cp = true;
			rc = WD_EROLLBACK;
			goto fail;
		}
		/* Accepted: the next checkpoint signs the record. */
		l->cp_force = l->o.signer != NULL;
	}
	*out = l;
	return WD_OK;
fail:
	json_decref(recovery);
	json_decref(rbrec);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	aud_close(l);
	return rc;
}
