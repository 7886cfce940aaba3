/*
 * inbox.c - events of other processes in the chain: `warden secrets
 * seal|rotate|rm` and `warden audit purge` run beside a gateway that holds
 * the log's lock (one writer per log, or the chain forks), so they do not
 * append: they drop a file into DIR/inbox/, which the log's writer thread
 * takes into the chain within a second, in name (= time) order.  When no
 * warden holds the log, the poster opens it for events only and appends
 * at once.
 *
 *   DIR/inbox/<microseconds>-<event_id>.json   (0700 dir, 0600 files)
 *
 * A file appears whole (written as a dot-file, fsynced, renamed) and goes
 * only once its record is in the chain; a crash in between may record an
 * event twice (the same event_id), never lose it.  A file that is not a
 * valid event is renamed to .rejected-NAME and an `inbox_rejected` record
 * says so.  Files must belong to the log's user: who can write DIR can
 * write the log anyway.
 */
#include "audit/aud_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define INBOX "inbox"
#define EVENT_MAX (64u << 10)		/* one event file */
#define INBOX_BATCH 256			/* files taken per look */

/* The kinds another process may put into the chain. */
static const char *const kinds[] = {
	"purge", "secret_seal", "secret_rotate", "secret_remove",
	"secret_import", "mcp_pin_approved",
};

/* Members only the writer sets: an event must not bring its own. */
static const char *const reserved[] = { "seq", "prev", "hash", "instance" };

enum wd_err
aud_event_parse(const char *buf, size_t len, json_t **out, char *why,
    size_t whylen)
{
	json_error_t jerr;
	const char *kind, *id, *ts;
	json_t *j;
	bool known = false;

	*out = NULL;
	if (len > EVENT_MAX) {
		snprintf(why, whylen, "larger than %u bytes", EVENT_MAX);
		return WD_ELIMIT;
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		snprintf(why, whylen, "not a JSON object");
		json_decref(j);
		return WD_EPARSE;
	}
	kind = json_string_value(json_object_get(j, "kind"));
	for (size_t i = 0; kind != NULL && i < sizeof(kinds) / sizeof(kinds[0]);
	    i++)
		known |= strcmp(kind, kinds[i]) == 0;
	if (!known) {
		snprintf(why, whylen, "no kind, or a kind other processes may not "
		    "record");
		json_decref(j);
		return WD_EPARSE;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (json_object_get(j, reserved[i]) != NULL) {
			snprintf(why, whylen, "carries '%s', which only the writer "
			    "sets", reserved[i]);
			json_decref(j);
			return WD_EPARSE;
		}
	id = json_string_value(json_object_get(j, "event_id"));
	ts = json_string_value(json_object_get(j, "ts"));
	if (id == NULL || ts == NULL || !wd_token_sane(id, 64) ||
	    aud_parse_ts(ts) == 0) {
		snprintf(why, whylen, "no event_id or no RFC 3339 ts");
		json_decref(j);
		return WD_EPARSE;
	}
	*out = j;
	return WD_OK;
}

bool
aud_inbox_due(const struct aud_log *l)
{
	return wd_mono_us() - l->last_inbox_us >= 1000000u;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read one inbox file (ours, regular, 0600, bounded). */
static enum wd_err
read_event(int dfd, const char *name, char **buf, size_t *len, char *why,
    size_t whylen)
{
	struct stat st;
	ssize_t n;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	*buf = NULL;
	if (fd < 0) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return WD_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		snprintf(why, whylen, "not a regular file of the log's user with "
		    "mode 0600");
		close(fd);
		return WD_EPERM;
	}
	if ((uint64_t)st.st_size > EVENT_MAX) {
		snprintf(why, whylen, "larger than %u bytes", EVENT_MAX);
		close(fd);
		return WD_ELIMIT;
	}
	if ((*buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return WD_ENOMEM;
	}
	n = read(fd, *buf, (size_t)st.st_size + 1);
	close(fd);
	if (n != (ssize_t)st.st_size) {
		snprintf(why, whylen, "changed while read");
		free(*buf);
		*buf = NULL;
		return WD_EIO;
	}
	*len = (size_t)n;
	return WD_OK;
}

/* Set a bad file aside and say so in the chain. */
static void
reject(struct aud_log *l, int dfd, const char *name, const char *why)
{
	char aside[300];

	snprintf(aside, sizeof(aside), ".rejected-%s", name);
	if (renameat(dfd, name, dfd, aside) != 0)
		(void)unlinkat(dfd, name, 0);
	wd_warn("audit: inbox file %s rejected: %s", name, why);
	aud_append(l, json_pack("{s:s,s:s,s:s}", "kind", "inbox_rejected",
	    "file", name, "reason", why));
}

/* The tenants a purge record names (its own, and each key's). */
static void
forget_purged(struct aud_log *l, json_t *rec)
{
	const char *t = json_string_value(json_object_get(rec, "tenant"));
	json_t *k;
	size_t i;

	if (l->o.keys == NULL || l->o.keys->forget == NULL)
		return;
	if (t != NULL && wd_token_sane(t, 64))
		l->o.keys->forget(l->o.keys->ctx, t);
	json_array_foreach(json_object_get(rec, "keys"), i, k) {
		t = json_string_value(json_object_get(k, "tenant"));
		if (t != NULL && wd_token_sane(t, 64))
			l->o.keys->forget(l->o.keys->ctx, t);
	}
}

void
aud_inbox_ingest(struct aud_log *l)
{
	char path[600], why[256];
	char *names[INBOX_BATCH];
	size_t n = 0;
	struct dirent *e;
	DIR *d;
	int dfd;

	l->last_inbox_us = wd_mono_us();
	snprintf(path, sizeof(path), "%s/" INBOX, l->dir);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		return;
	if ((d = fdopendir(dup(dfd))) == NULL) {
		close(dfd);
		return;
	}
	while (n < INBOX_BATCH && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' || len < 6 || len > 200 ||
		    strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		if ((names[n] = strdup(e->d_name)) != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(names[0]), cmp_name);
	for (size_t i = 0; i < n; i++) {
		char *buf = NULL;
		size_t len = 0;
		json_t *rec = NULL, *back = NULL;
		const char *kind;
		enum wd_err rc;

		rc = read_event(dfd, names[i], &buf, &len, why, sizeof(why));
		if (rc == WD_OK)
			rc = aud_event_parse(buf, len, &rec, why, sizeof(why));
		free(buf);
		if (rc == WD_EIO || rc == WD_ENOMEM)
			break;			/* try again next time */
		if (rc != WD_OK) {
			reject(l, dfd, names[i], why);
			continue;
		}
		kind = json_string_value(json_object_get(rec, "kind"));
		/* Keys destroyed elsewhere: the copies cached here go now. */
		if (strcmp(kind, "purge") == 0)
			forget_purged(l, rec);
		/* Only what is in the file goes: a log that cannot take it now
		 * keeps the file for the next round, not a second copy. */
		if (aud_try_append(l, rec, &back) != WD_OK) {
			json_decref(back);
			break;
		}
		(void)unlinkat(dfd, names[i], 0);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	close(dfd);
}

/* Who asked, as far as this process can tell. */
static json_t *
asked_by(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024], host[256] = "";
	const char *sudo = getenv("SUDO_USER");
	json_t *by;

	gethostname(host, sizeof(host) - 1);
	by = json_pack("{s:I,s:s,s:I}", "uid", (json_int_t)getuid(), "host",
	    host, "pid", (json_int_t)getpid());
	if (by == NULL)
		return NULL;
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && wd_token_sane(pw.pw_name, 64))
		json_object_set_new(by, "user", json_string(pw.pw_name));
	if (sudo != NULL && wd_token_sane(sudo, 64))
		json_object_set_new(by, "sudo_user", json_string(sudo));
	return by;
}

/* Write rec atomically as DIR/inbox/NAME; *name gets NAME. */
static enum wd_err
drop_file(const char *dir, json_t *rec, const char *id, char *name,
    size_t namelen, char *err, size_t errlen)
{
	char path[600], tmp[1000], final[1000];
	char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	size_t len;
	int fd;

	if (text == NULL)
		return WD_ENOMEM;
	len = strlen(text);
	snprintf(path, sizeof(path), "%s/" INBOX, dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", path,
		    strerror(errno));
		free(text);
		return WD_EIO;
	}
	snprintf(name, namelen, "%020llu-%s.json",
	    (unsigned long long)wd_wall_us(), id);
	snprintf(tmp, sizeof(tmp), "%s/.%s", path, name);
	snprintf(final, sizeof(final), "%s/%s", path, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 ||
	    close(fd) != 0 || rename(tmp, final) != 0) {
		snprintf(err, errlen, "%s: cannot write: %s", path,
		    strerror(errno));
		if (fd >= 0)
			unlink(tmp);
		free(text);
		return WD_EIO;
	}
	free(text);
	aud_fsync_dir(path);
	return WD_OK;
}

/* The interval the log's last checkpoint promised (0: none found). */
static int
last_interval(const char *dir)
{
	struct aud_cp_entry *v = NULL;
	size_t n = 0;
	json_t *cp = NULL;
	int s = 0;

	aud_tree_checkpoints(dir, &v, &n);
	if (n > 0)
		cp = aud_checkpoint_at(dir, &v[n - 1]);
	free(v);
	if (json_is_integer(json_object_get(cp, "interval_s")))
		s = (int)json_integer_value(json_object_get(cp, "interval_s"));
	json_decref(cp);
	return s;
}

enum wd_err
aud_post_event(const char *dir, json_t *rec, int wait_ms, bool *in_chain,
    char *err, size_t errlen)
{
	bool appended;

	return aud_post_event_direct(dir, rec, wait_ms, NULL, in_chain,
	    &appended, err, errlen);
}

enum wd_err
aud_post_event_direct(const char *dir, json_t *rec, int wait_ms,
    const struct aud_direct *d, bool *in_chain, bool *appended, char *err,
    size_t errlen)
{
	char ts[64], id[33], name[300], path[1000], oerr[512];
	unsigned char rnd[16];
	struct aud_opts o = { .dir = dir, .instance = "cli", .events_only = true };
	struct aud_log *log = NULL;
	struct stat st;
	enum wd_err rc;
	int lfd;

	*in_chain = false;
	*appended = false;
	if (rec == NULL || !json_is_string(json_object_get(rec, "kind"))) {
		json_decref(rec);
		snprintf(err, errlen, "an event needs a kind");
		return WD_EINVAL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		json_decref(rec);
		snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return WD_EIO;
	}
	/* The running gateway must be able to read what we drop. */
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		json_decref(rec);
		snprintf(err, errlen, "%s must be a directory of this user, mode "
		    "0700: run this as the user warden runs as (sudo -u USER ...)",
		    dir);
		return WD_EPERM;
	}
	wd_random(rnd, sizeof(rnd));
	wd_hex(rnd, sizeof(rnd), id);
	aud_ts_now(ts, sizeof(ts));
	json_object_set_new(rec, "event_id", json_string(id));
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "by", asked_by());
	rc = drop_file(dir, rec, id, name, sizeof(name), err, errlen);
	json_decref(rec);
	if (rc != WD_OK)
		return rc;
	snprintf(path, sizeof(path), "%s/" INBOX "/%s", dir, name);
	/* Nobody holds the log: append now, as its writer for a moment. */
	snprintf(oerr, sizeof(oerr), "%s/lock", dir);
	lfd = open(oerr, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) == 0) {
		close(lfd);
		lfd = -1;
		/* Signed as the gateway signs: its closing checkpoint covers
		 * what was appended, with the TPM counter bumped and carried. */
		if (d != NULL && d->signer != NULL) {
			o.signer = d->signer;
			o.counter = d->counter;
			o.checkpoint_interval_s = d->checkpoint_interval_s > 0 ?
			    d->checkpoint_interval_s : last_interval(dir);
		}
		rc = aud_open(&o, &log, oerr, sizeof(oerr));
		if (rc != WD_OK && rc != WD_EROLLBACK && o.signer != NULL) {
			/* The TPM could not be used (its counter unreadable): the
			 * event still goes in, unsigned; the caller says so.  A log
			 * behind the counter is refused, never appended to. */
			wd_warn("audit: %s: appending without a checkpoint", oerr);
			o.signer = NULL;
			o.counter = NULL;
			rc = aud_open(&o, &log, oerr, sizeof(oerr));
		}
		if (rc == WD_OK) {
			aud_close(log);		/* takes the inbox in, signs */
			*appended = true;
		} else
			wd_warn("audit: %s: the event waits in the inbox", oerr);
		/* Appended: nothing to wait for.  (If the open failed, a warden
		 * that took the lock meanwhile may take it in.) */
		if (log != NULL)
			wait_ms = 0;
	}
	if (lfd >= 0)
		close(lfd);
	/* A running writer takes it within a second. */
	for (int waited = 0; access(path, F_OK) == 0 && waited < wait_ms;
	    waited += 50)
		usleep(50 * 1000);
	*in_chain = access(path, F_OK) != 0;
	return WD_OK;
}
