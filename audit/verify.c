/*
 * verify.c - `warden audit verify DIR`.
 *
 * Reads every segment in order and walks every line (walk.c): that it is
 * one of ours (the hash suffix), that its hash is SHA-256(prev || C), that
 * prev is the previous line's hash and seq the previous seq + 1; per
 * checkpoint, that the tree head it signs is the Merkle tree of the
 * records before it and that the auditor's key signed it.  It names the
 * first bad record.  Then: what no checkpoint covers is not authenticated,
 * and if it is older than the log's checkpoint interval allows, a
 * checkpoint was removed: invalid.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* The message goes into res->why and, if out is given, is printed. */
static void
say(FILE *out, struct aud_verify_result *res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
say(FILE *out, struct aud_verify_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	if (out != NULL)
		fputs(res->why, out);
}

/* The trusted key's fingerprint, as --pin takes it. */
static void
trusted_fingerprint(const struct aud_verify_opts *o,
    const struct aud_walk *w, char out[AUD_HASH_HEX + 1])
{
	size_t len;
	char *pem;

	out[0] = '\0';
	if (o == NULL)
		return;
	if (o->pubkey_pem_path != NULL) {
		pem = wd_slurp(o->pubkey_pem_path, 1u << 20, &len);
		if (pem == NULL || aud_key_fingerprint(pem, len, out) != WD_OK)
			out[0] = '\0';
		free(pem);
	} else if (o->pin != NULL && w->pin[0] != '\0') {
		memcpy(out, w->pin, AUD_HASH_HEX + 1);
	}
}

/* Segments at least this big are walked on two threads, in chunks of
 * PAR_CHUNK bytes (the lines' results of one chunk: at most ~8 MB). */
#define PAR_MIN ((size_t)1 << 20)
#define PAR_CHUNK ((size_t)2 << 20)

/* What the second thread found in the lines of [from, to). */
struct pre_job {
	pthread_t th;
	const char *text;
	size_t from, to;
	struct aud_walk_pre *v;		/* one per line, in order */
	size_t n, cap;
	char *buf;
	size_t buflen;
};

/* The end of the chunk from off: past the first newline PAR_CHUNK bytes
 * on, or len. */
static size_t
chunk_end(const char *text, size_t len, size_t off)
{
	const char *nl;

	if (len - off <= PAR_CHUNK)
		return len;
	nl = memchr(text + off + PAR_CHUNK, '\n', len - off - PAR_CHUNK);
	return nl != NULL ? (size_t)(nl - text) + 1 : len;
}

static void *
pre_main(void *arg)
{
	struct pre_job *j = arg;

	for (size_t off = j->from; off < j->to; ) {
		const char *nl = memchr(j->text + off, '\n', j->to - off);
		size_t ll;

		if (nl == NULL)
			break;		/* torn: the walker says so */
		ll = (size_t)(nl - j->text) - off;
		if (j->n == j->cap) {
			size_t cap = j->cap ? j->cap * 2 : 4096;
			struct aud_walk_pre *nv = realloc(j->v, cap * sizeof(*nv));

			if (nv == NULL)
				break;	/* the walker does the rest itself */
			j->v = nv;
			j->cap = cap;
		}
		j->v[j->n].len = ll;
		aud_walk_pre(j->text + off, ll, &j->v[j->n++], &j->buf, &j->buflen);
		off += ll + 1;
	}
	return NULL;
}

/* Walk the lines of [from, to) (job: what was found in them already). */
static int
walk_range(struct aud_walk *w, const char *text, size_t from, size_t to,
    const struct pre_job *job, const char *path, size_t *lineno, FILE *out,
    struct aud_verify_result *res, bool tty)
{
	size_t i = 0;

	for (size_t off = from; off < to; i++) {
		const struct aud_walk_pre *p = job != NULL && i < job->n ?
		    &job->v[i] : NULL;
		const char *nl;
		size_t ll;
		uint64_t signed_before;

		/* The second thread found this line's end already. */
		if (p != NULL && p->len < to - off && text[off + p->len] == '\n')
			nl = text + off + p->len;
		else
			nl = memchr(text + off, '\n', to - off);
		ll = nl ? (size_t)(nl - text) - off : to - off;
		if (p != NULL && p->len != ll)
			p = NULL;	/* not the line it read: walk it here */

		++*lineno;
		if (nl == NULL) {
			say(out, res, "INVALID: %s:%zu: torn last line (no "
			    "newline)\n", path, *lineno);
			return AUD_INVALID;
		}
		signed_before = w->signed_cps;
		if (!aud_walk_line_pre(w, text + off, ll, p)) {
			say(out, res, "INVALID: %s:%zu: %s\n", path, *lineno, w->why);
			return AUD_INVALID;
		}
		/* The checkpoint record whose tree head the key signed. */
		if (w->signed_cps != signed_before)
			res->signed_seq = w->seq;
		if (tty && w->records % 65536 == 0)
			fprintf(stderr, "\rverifying: %llu records",
			    (unsigned long long)w->records);
		off += ll + 1;
	}
	return AUD_VERIFIED;
}

/*
 * The lines of text[0, len) (whole lines, but for a segment's end), chunk
 * by chunk; while this thread walks one, a second thread reads and hashes
 * the next one's lines (aud_walk_pre), and this thread then runs the
 * walker's checks on what it found, in order: every check of every line
 * still happens, the state (seq, prev, tree, checkpoints) on this thread.
 */
static int
verify_window(struct aud_walk *w, const char *text, size_t len,
    const char *path, size_t *lineno, FILE *out,
    struct aud_verify_result *res, bool tty)
{
	int rc = AUD_VERIFIED;

	for (size_t off = 0; off < len && rc == AUD_VERIFIED; ) {
		size_t a_end = chunk_end(text, len, off), b_end = a_end;
		struct pre_job job = { .text = text };
		bool par = len >= PAR_MIN && a_end < len;

		if (par) {
			b_end = chunk_end(text, len, a_end);
			job.from = a_end;
			job.to = b_end;
			par = pthread_create(&job.th, NULL, pre_main, &job) == 0;
		}
		rc = walk_range(w, text, off, a_end, NULL, path, lineno, out,
		    res, tty);
		if (par) {
			pthread_join(job.th, NULL);
			if (rc == AUD_VERIFIED)
				rc = walk_range(w, text, a_end, b_end, &job, path,
				    lineno, out, res, tty);
			free(job.v);
			free(job.buf);
		}
		off = par ? b_end : a_end;
	}
	return rc;
}

/* A line may be as long as a record may be, and its hash suffix. */
#define WINDOW_MAX (AUD_CANON_MAX + 4096)

/*
 * One segment, read a window at a time (AUD_VERIFY_WINDOW), whole lines
 * walked, the rest carried to the next window; a line longer than the
 * window grows it.  Read, not mapped: a segment cut short while it is
 * read (the gateway cuts back a write that failed; someone truncates
 * it) ends where it now ends and is judged as it stands, where a mapping
 * would kill the process with SIGBUS.
 */
static int
verify_segment(struct aud_walk *w, const struct aud_verify_opts *o,
    const char *path, size_t *lineno, FILE *out,
    struct aud_verify_result *res, bool tty)
{
	size_t cap = o != NULL && o->window > 0 ? o->window : AUD_VERIFY_WINDOW;
	size_t have = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = AUD_VERIFIED;
	bool eof = false;
	struct stat st;
	char *win;

	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (win = malloc(cap)) == NULL) {
		if (fd >= 0)
			close(fd);
		say(out, res, "%s: cannot read\n", path);
		return AUD_UNREADABLE;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (rc == AUD_VERIFIED) {
		size_t done;
		const char *nl;

		while (!eof && have < cap) {
			ssize_t n = read(fd, win + have, cap - have);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				say(out, res, "%s: cannot read: %s\n", path,
				    strerror(errno));
				rc = AUD_UNREADABLE;
				goto out;
			}
			if (n == 0)
				eof = true;
			have += (size_t)n;
		}
		if (have == 0)
			break;
		if (eof) {
			done = have;		/* a torn last line: walked, refused */
		} else if ((nl = memrchr(win, '\n', have)) != NULL) {
			done = (size_t)(nl - win) + 1;
		} else {
			char *nw;

			if (cap >= WINDOW_MAX) {
				say(out, res, "INVALID: %s:%zu: a line longer than "
				    "a record can be\n", path, *lineno + 1);
				rc = AUD_INVALID;
				break;
			}
			cap = cap * 2 < WINDOW_MAX ? cap * 2 : WINDOW_MAX;
			if ((nw = realloc(win, cap)) == NULL) {
				say(out, res, "%s: out of memory\n", path);
				rc = AUD_UNREADABLE;
				break;
			}
			win = nw;
			continue;
		}
		rc = verify_window(w, win, done, path, lineno, out, res, tty);
		memmove(win, win + done, have - done);
		have -= done;
		if (o != NULL && o->after_window != NULL)
			o->after_window(o->hook_arg, path);
	}
out:
	free(win);
	close(fd);
	return rc;
}

int
aud_verify_dir(const char *dir, const struct aud_verify_opts *o, FILE *out)
{
	struct aud_verify_result res;

	return aud_verify_dir_result(dir, o, out, &res);
}

int
aud_verify_dir_result(const char *dir, const struct aud_verify_opts *o,
    FILE *out, struct aud_verify_result *res)
{
	struct aud_walk w;
	size_t nsegs = 0;
	char **segs = NULL, err[300];
	bool tty = o->progress && isatty(2);
	int64_t now = o->now_us ? o->now_us : (int64_t)wd_wall_us();
	uint64_t unc;

	int rc = AUD_VERIFIED;

	memset(res, 0, sizeof(*res));
	if (aud_walk_init(&w, o, err, sizeof(err)) != WD_OK) {
		say(out, res, "%s\n", err);
		rc = AUD_UNREADABLE;
		goto done;
	}
	trusted_fingerprint(o, &w, res->fingerprint);
	segs = aud_segments(dir, &nsegs);
	res->segments = nsegs;
	if (nsegs == 0) {
		say(out, res, "%s: no audit segments\n", dir);
		rc = AUD_UNREADABLE;
		goto done;
	}
	for (size_t s = 0; s < nsegs && rc == AUD_VERIFIED; s++) {
		char path[1024];
		size_t lineno = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
		rc = verify_segment(&w, o, path, &lineno, out, res, tty);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	res->records = w.records;
	res->last_seq = w.seq;
	res->checkpoints = w.checkpoints;
	res->signed_checkpoints = w.signed_cps;
	res->covered = w.covered;
	res->has_counter = w.has_counter;
	res->counter = w.counter;
	if (rc != AUD_VERIFIED)
		goto done;
	unc = aud_walk_uncovered(&w);
	res->uncovered = unc;
	/* One ahead is a checkpoint whose bump did not follow it (a stop
	 * between the two: the checkpoint is written first); the next start
	 * moves the counter.  Behind is a rollback. */
	if (o->has_tpm_counter && (!w.has_counter ||
	    (w.counter != o->tpm_counter && w.counter != o->tpm_counter + 1))) {
		say(out, res, "INVALID: %s: the last checkpoint carries counter "
		    "%s%llu but the TPM's is %llu: the log was rolled back (its "
		    "newest records removed) or is not this TPM's\n", dir,
		    w.has_counter ? "" : "none/", (unsigned long long)w.counter,
		    (unsigned long long)o->tpm_counter);
		rc = AUD_INVALID;
		goto done;
	}
	if (w.trusted && aud_walk_stale(&w, now)) {
		say(out, res, "INVALID: %s: %llu record%s after seq %llu no "
		    "checkpoint covers, the oldest from %s, longer ago than the "
		    "checkpoint interval allows: checkpoints were removed\n", dir,
		    (unsigned long long)unc, unc == 1 ? "" : "s",
		    (unsigned long long)w.covered, w.uncov_ts);
		rc = AUD_INVALID;
		goto done;
	}
	{
		char head[256];

		snprintf(head, sizeof(head), "%s: %llu records in %zu segment%s, "
		    "last seq %llu, %llu checkpoint%s",
		    !w.trusted || unc > 0 ? "CONSISTENT" : "OK",
		    (unsigned long long)w.records, nsegs, nsegs == 1 ? "" : "s",
		    (unsigned long long)w.seq, (unsigned long long)w.checkpoints,
		    w.checkpoints == 1 ? "" : "s");
		if (!w.trusted) {
			say(out, res, "%s; NOT AUTHENTICATED: give the key you "
			    "trust (--pubkey PEM or --pin SHA256)\n", head);
			rc = AUD_UNAUTHENTICATED;
		} else if (unc > 0) {
			say(out, res, "%s verified with the trusted key; NOT "
			    "AUTHENTICATED: %llu record%s after the tree of %llu no "
			    "checkpoint covers yet\n", head, (unsigned long long)unc,
			    unc == 1 ? "" : "s", (unsigned long long)w.covered);
			rc = AUD_UNAUTHENTICATED;
		} else {
			say(out, res, "%s verified with the trusted key; every "
			    "record is covered by a signed tree head\n", head);
		}
	}
done:
	res->status = rc;
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	aud_walk_free(&w);
	return rc;
}

/* RFC 3339 in UTC ("Z"), with or without fractions, to microseconds. */
int64_t
aud_parse_ts(const char *ts)
{
	struct tm tm = { 0 };
	long us = 0;
	char frac[8] = "";

	if (ts == NULL || sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
	    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	if (strlen(ts) > 20 && ts[19] == '.' && sscanf(ts + 20, "%6[0-9]", frac) == 1) {
		us = strtol(frac, NULL, 10);
		for (size_t i = strlen(frac); i < 6; i++)
			us *= 10;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + us;
}

