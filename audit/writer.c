/*
 * writer.c - appending records.  aud_append() gives a record its seq and
 * prev and write()s its line at once, under the log's write lock, so a
 * record is in the file (the page cache) before the gateway answers the
 * request it describes: a kill -9 loses nothing that was acknowledged.
 * The writer thread makes it durable: one fdatasync per group-commit
 * window for whatever was appended meanwhile, checkpoints, rotation.
 *
 * Failure: if a write fails, the segment is cut back to its last good
 * byte, the log turns unhealthy (the gateway answers 503), the record
 * stays queued, and the writer thread retries every second; appends queue
 * behind it, in order, until writing works again.
 *
 * Start-up: the last segment's tail is checked; a torn last line (a crash
 * mid-write) is cut and a `recovery` record says what was cut.
 */
#include "audit/aud_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_QUEUED 100000
/* How long an appender tries for the write lock before it sleeps on it. */
#define AUD_WLOCK_SPIN_US 20

static void finish_items(struct aud_item *batch, enum wd_err rc);
static bool sync_now(struct aud_log *l);

static void
set_error(struct aud_log *l, const char *fmt, const char *detail)
{
	snprintf(l->lasterr, sizeof(l->lasterr), fmt, detail);
}

void
aud_ts_now(char *buf, size_t len)
{
	/* The date and time up to the second change once a second: kept
	 * per thread, so a record's stamp costs no gmtime and no printf. */
	static _Thread_local time_t last = -1;
	static _Thread_local char head[32];
	static _Thread_local size_t hlen;
	struct timespec ts;
	char out[48];
	size_t n;
	long us;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != last) {
		struct tm tm;
		int k;

		gmtime_r(&ts.tv_sec, &tm);
		k = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		hlen = k > 0 && (size_t)k < sizeof(head) ? (size_t)k : 0;
		last = ts.tv_sec;
	}
	/* Then the microseconds, six digits, and Z. */
	memcpy(out, head, hlen);
	us = ts.tv_nsec / 1000;
	for (size_t i = hlen + 6; i-- > hlen; us /= 10)
		out[i] = (char)('0' + us % 10);
	out[hlen + 6] = 'Z';
	n = hlen + 7;
	if (len == 0)
		return;
	if (n > len - 1)
		n = len - 1;
	memcpy(buf, out, n);
	buf[n] = '\0';
}

enum wd_err
aud_open_segment(struct aud_log *l, uint64_t segno)
{
	char path[512];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/" AUD_SEGMENT_FMT, l->dir,
	    (unsigned long long)segno);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) != 0) {
		set_error(l, "cannot open segment: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return WD_EIO;
	}
	/* The old segment is done: make it durable before letting go. */
	if (l->fd >= 0) {
		if (atomic_load(&l->dirty))
			fdatasync(l->fd);
		close(l->fd);
	}
	l->fd = fd;
	l->segno = segno;
	l->segbytes = (size_t)st.st_size;
	l->segstart = time(NULL);
	/* The new file's name must survive a crash too. */
	aud_fsync_dir(l->dir);
	return WD_OK;
}

/*
 * Append one batch (and, if sync, fdatasync it); state moves on only if
 * all of it was written: seq, prev, the tree (each record's leaf) and the
 * checkpoint index.  wlock held.
 */
static enum wd_err
write_lines(struct aud_log *l, struct aud_item *batch, bool sync)
{
	struct evbuffer_lite {
		char *p;
		size_t len, cap;
		bool borrowed;		/* the log's own buffer: not freed */
	} buf = { 0 };
	char prev[AUD_HASH_HEX + 1];
	uint64_t seq = l->seq, cpseq = 0;
	off_t start = (off_t)l->segbytes;
	size_t n = 0, cpoff = 0, cplen = 0;
	unsigned char (*leaves)[32], few[AUD_APPEND_MAX][32];
	enum wd_err rc = WD_OK;

	for (struct aud_item *it = batch; it != NULL; it = it->next)
		n++;
	/* The append paths (up to AUD_APPEND_MAX records): no allocation
	 * but the log's own buffers, kept from one batch to the next. */
	leaves = n <= AUD_APPEND_MAX ? few : malloc(n * sizeof(*leaves));
	if (leaves == NULL)
		return WD_ENOMEM;
	if (n > 1 && n <= AUD_APPEND_MAX) {
		buf.p = l->batchbuf;
		buf.cap = l->batchcap;
		buf.borrowed = true;
	}
	if (l->mdctx == NULL)
		l->mdctx = EVP_MD_CTX_new();
	n = 0;
	memcpy(prev, l->prev, sizeof(prev));
	for (struct aud_item *it = batch; it != NULL; it = it->next) {
		char hash[AUD_HASH_HEX + 1];
		size_t len;
		char *line;

		bool owned = it->pre.text == NULL;

		++seq;
		/* A prepared line is spliced into the log's own buffer: no
		 * allocation per record under the lock. */
		if (!owned) {
			line = aud_line_splice_into(&it->pre, seq, prev, hash,
			    leaves[n++], &len, l->mdctx, &l->linebuf, &l->linecap);
		} else {
			json_object_set_new(it->rec, "seq", json_integer((json_int_t)seq));
			line = aud_line_leaf(it->rec, prev, hash, leaves[n++], &len);
		}
		if (line == NULL) {
			if (leaves != few)
				free(leaves);
			if (!buf.borrowed)
				free(buf.p);
			return WD_ENOMEM;
		}
		if (batch->next == NULL && !it->cp) {
			/* Alone: written as it is, not copied. */
			buf.p = line;
			buf.len = buf.cap = len;
			buf.borrowed = !owned;
			memcpy(prev, hash, sizeof(prev));
			break;
		}
		if (buf.len + len > buf.cap) {
			size_t cap = (buf.cap + len) * 2;
			char *np = realloc(buf.p, cap);

			if (np == NULL) {
				if (owned)
					free(line);
				if (!buf.borrowed)
					free(buf.p);
				if (leaves != few)
					free(leaves);
				return WD_ENOMEM;
			}
			buf.p = np;
			buf.cap = cap;
			if (buf.borrowed) {
				l->batchbuf = np;
				l->batchcap = cap;
			}
		}
		if (it->cp) {
			cpseq = seq;
			cpoff = buf.len;
			cplen = len;
		}
		memcpy(buf.p + buf.len, line, len);
		buf.len += len;
		if (owned)
			free(line);
		memcpy(prev, hash, sizeof(prev));
	}
	for (size_t off = 0; off < buf.len; ) {
		ssize_t w = write(l->fd, buf.p + off, buf.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			set_error(l, "write failed: %s", w < 0 ? strerror(errno) :
			    "no progress");
			rc = WD_EIO;
			break;
		}
		off += (size_t)w;
	}
	if (rc == WD_OK && sync && fdatasync(l->fd) != 0) {
		set_error(l, "fsync failed: %s", strerror(errno));
		rc = WD_EIO;
	}
	if (rc != WD_OK) {
		if (!buf.borrowed)
			free(buf.p);
		if (leaves != few)
			free(leaves);
		/* Nothing of a failed batch may stay half on disk. */
		if (ftruncate(l->fd, start) != 0)
			set_error(l, "write failed and cannot cut back: %s",
			    strerror(errno));
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		aud_tree_add(&l->tree, leaves[i]);
	if (leaves != few)
		free(leaves);
	if (cpseq != 0) {
		char *keep = malloc(cplen);

		aud_tree_note_checkpoint(&l->tree, cpseq, l->segno,
		    (uint64_t)start + cpoff);
		if (keep != NULL)
			memcpy(keep, buf.p + cpoff, cplen);
		free(l->cpline);
		l->cpline = keep;
		l->cplen = keep != NULL ? cplen : 0;
	}
	if (!buf.borrowed)
		free(buf.p);
	l->segbytes += buf.len;
	l->seq = seq;
	memcpy(l->prev, prev, sizeof(prev));
	return WD_OK;
}

static enum wd_err
write_batch(struct aud_log *l, struct aud_item *batch)
{
	enum wd_err rc = write_lines(l, batch, true);

	if (rc == WD_OK)
		atomic_store(&l->dirty, false);
	return rc;
}

/*
 * Move the TPM counter to want, the value the checkpoint just made
 * durable carries.  If it does not get there (a TPM that limits NV writes
 * right now), the next checkpoint bumps again: it carries the counter's
 * value plus one as this one did.
 */
static void
counter_bump(struct aud_log *l, uint64_t want)
{
	uint64_t got = 0;

	if (l->o.counter->next(l->o.counter->ctx, true, &got) != WD_OK ||
	    got != want) {
		wd_warn("audit: the TPM counter did not move to %llu after the "
		    "checkpoint that carries it (it reads %llu); the next "
		    "checkpoint tries again", (unsigned long long)want,
		    (unsigned long long)got);
		return;
	}
	l->bumped_once = true;
	l->last_bump_us = wd_mono_us();
}

/*
 * A version 2 checkpoint: the counter's value (one more for a bump: at
 * open, at close, at most once a minute otherwise), the tree head taken
 * under wlock, the signature made without it (a TPM takes ~100 ms;
 * appends go on), then the record, durable, then the bump, then the
 * witnesses.  Writer thread (or aud_close).
 */
static void
checkpoint(struct aud_log *l, bool closing)
{
	struct aud_tree_head th = { .interval_s = l->o.checkpoint_interval_s };
	unsigned char sig[160], kd[32];
	char msg[256], b64[256], keyid[AUD_HASH_HEX + 1], root[AUD_HASH_HEX + 1];
	size_t siglen = sizeof(sig);
	uint64_t seq_at;
	struct aud_item *it;
	enum wd_err rc;
	bool bump = false;

	/*
	 * A bump: the checkpoint carries the value the counter will have, and
	 * is on disk before the counter moves (counter_bump, below).  A crash
	 * between the two leaves the log one ahead of the TPM, which the next
	 * open finishes (check_counter); the other order left it one behind,
	 * which reads as a rollback and kept warden from starting.
	 */
	if (l->o.counter != NULL) {
		bump = closing || !l->bumped_once ||
		    wd_mono_us() - l->last_bump_us >=
		    (uint64_t)AUD_BUMP_EVERY_S * 1000000u;
		if (l->o.counter->next(l->o.counter->ctx, false, &th.counter) !=
		    WD_OK) {
			wd_warn("audit: cannot read the TPM counter; checkpoint "
			    "postponed");
			l->cp_retry_us = wd_mono_us() + 1000000u;
			return;
		}
		th.has_counter = true;
		if (bump)
			th.counter++;
	}
	pthread_mutex_lock(&l->wlock);
	th.size = l->tree.fr.size;
	aud_frontier_root(&l->tree.fr, th.root);
	pthread_mutex_unlock(&l->wlock);
	th.time_us = (int64_t)wd_wall_us();
	aud_tree_head_msg(msg, sizeof(msg), &th);
	if (l->o.signer->sign(l->o.signer->ctx, (unsigned char *)msg, strlen(msg),
	    sig, &siglen) != WD_OK) {
		wd_warn("audit: cannot sign checkpoint at tree size %llu",
		    (unsigned long long)th.size);
		l->cp_retry_us = wd_mono_us() + 1000000u;
		return;
	}
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	wd_sha256(l->o.signer->pubkey_pem, strlen(l->o.signer->pubkey_pem), kd);
	wd_hex(kd, sizeof(kd), keyid);
	wd_hex(th.root, 32, root);
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return;
	it->cp = true;
	it->rec = json_pack("{s:s,s:s,s:i,s:I,s:s,s:I,s:o,s:i,s:s,s:s}", "kind",
	    "checkpoint", "instance", l->instance, "v", 2, "tree_size",
	    (json_int_t)th.size, "root", root, "time_us", (json_int_t)th.time_us,
	    "counter", th.has_counter ? json_integer((json_int_t)th.counter) :
	    json_null(), "interval_s", th.interval_s, "signature", b64, "key_id",
	    keyid);
	json_object_set_new(it->rec, "pubkey",
	    json_string(l->o.signer->pubkey_pem));
	aud_ts_now(msg, sizeof(msg));
	json_object_set_new(it->rec, "ts", json_string(msg));
	pthread_mutex_lock(&l->wlock);
	seq_at = l->seq;
	if (seq_at - th.size > AUD_CP_MAX_LAG) {
		/* Too far behind to be checked by a verifier's window. */
		pthread_mutex_unlock(&l->wlock);
		finish_items(it, WD_OK);
		return;
	}
	rc = write_lines(l, it, false);
	if (rc == WD_OK) {
		l->since_cp = (unsigned)(seq_at - th.size);
		l->last_cp_us = wd_mono_us();
		l->cp_size = th.size;
		l->cp_force = false;
		atomic_store(&l->dirty, true);
	} else {
		/* Records that follow fail on their own; this one waits. */
		l->cp_retry_us = wd_mono_us() + 1000000u;
	}
	pthread_mutex_unlock(&l->wlock);
	finish_items(it, WD_OK);
	pthread_mutex_lock(&l->mu);
	pthread_cond_broadcast(&l->cpcv);
	pthread_mutex_unlock(&l->mu);
	/* Durable here first; then the counter moves, and the checkpoint
	 * goes off the host. */
	if (rc != WD_OK || !sync_now(l))
		return;
	if (bump)
		counter_bump(l, th.counter);
	if (l->o.witness != NULL) {
		char *line = NULL;
		size_t len = 0;

		/* A copy, sent without the lock appenders wait on. */
		pthread_mutex_lock(&l->wlock);
		if (l->cpline != NULL && (line = malloc(l->cplen)) != NULL) {
			memcpy(line, l->cpline, l->cplen);
			len = l->cplen - 1;
		}
		pthread_mutex_unlock(&l->wlock);
		if (line != NULL)
			l->o.witness->send(l->o.witness->ctx, line, len);
		free(line);
	}
}

static void
finish_items(struct aud_item *batch, enum wd_err rc)
{
	while (batch != NULL) {
		struct aud_item *next = batch->next;

		if (batch->done != NULL)
			batch->done(batch->arg, rc);
		json_decref(batch->rec);
		free(batch);
		batch = next;
	}
}

static bool
checkpoint_due(const struct aud_log *l)
{
	if (l->o.signer == NULL || wd_mono_us() < l->cp_retry_us)
		return false;
	if (l->cp_force)
		return true;
	if (l->since_cp == 0)
		return false;
	if (l->o.checkpoint_every > 0 && l->since_cp >= l->o.checkpoint_every)
		return true;
	return l->o.checkpoint_interval_s > 0 &&
	    wd_mono_us() - l->last_cp_us >= (uint64_t)l->o.checkpoint_interval_s *
	    1000000u;
}

static void
maybe_rotate(struct aud_log *l)
{
	if ((l->o.segment_max_bytes > 0 && l->segbytes >= l->o.segment_max_bytes) ||
	    (l->o.segment_max_age_s > 0 && l->segbytes > 0 &&
	    time(NULL) - l->segstart >= l->o.segment_max_age_s))
		aud_open_segment(l, l->segno + 1);
}

/*
 * Make what was appended durable.  Called without wlock: the fsync runs
 * on a duplicate of the descriptor while appends go on (they mark the log
 * dirty again and the next window covers them).  False if fsync failed:
 * the log is then unhealthy until a later fsync succeeds.
 */
static void
fail_closed(struct aud_log *l, bool write)
{
	if (write)
		atomic_store(&l->wfail, true);
	if (atomic_load(&l->healthy))
		wd_error("audit: %s; failing closed until it works again",
		    l->lasterr);
	atomic_store(&l->healthy, false);
}

static bool
sync_now(struct aud_log *l)
{
	int fd;
	bool ok;

	pthread_mutex_lock(&l->wlock);
	if (!atomic_load(&l->dirty) || l->fd < 0) {
		pthread_mutex_unlock(&l->wlock);
		return true;
	}
	fd = dup(l->fd);
	atomic_store(&l->dirty, false);
	/* The tree's nodes follow their records (derived, not synced),
	 * written after the lock is let go: appenders do not wait on them. */
	aud_tree_take(&l->tree);
	pthread_mutex_unlock(&l->wlock);
	aud_tree_write_taken(&l->tree);
	ok = fd >= 0 && fdatasync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		atomic_store(&l->dirty, true);
		set_error(l, "fsync failed: %s", strerror(errno));
		fail_closed(l, false);
	}
	return ok;
}

static void *
writer_main(void *arg)
{
	struct aud_log *l = arg;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		struct aud_item *batch;
		size_t n;
		enum wd_err rc;
		bool synced;

		while (l->head == NULL && !l->stop && !checkpoint_due(l) &&
		    !atomic_load(&l->dirty) && !aud_inbox_due(l)) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&l->cv, &l->mu, &until);
		}
		if (l->head == NULL && l->stop)
			break;
		/* Group commit: at most one write+fsync per window; what comes
		 * in meanwhile joins the batch.  Nobody waits on it: answers
		 * go out without waiting for their record. */
		while ((l->head != NULL || atomic_load(&l->dirty)) && !l->stop &&
		    l->o.group_commit_ms > 0 &&
		    wd_mono_us() - l->last_batch_us <
		    (uint64_t)l->o.group_commit_ms * 1000u) {
			uint64_t wait_us = (uint64_t)l->o.group_commit_ms * 1000u -
			    (wd_mono_us() - l->last_batch_us);
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long)(wait_us % 1000000u) * 1000;
			until.tv_sec += (time_t)(wait_us / 1000000u) +
			    until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&l->cv, &l->mu, &until);
		}
		l->last_batch_us = wd_mono_us();
		batch = l->head;
		n = l->nqueued;
		l->head = l->tail = NULL;
		l->nqueued = 0;
		pthread_mutex_unlock(&l->mu);

		pthread_mutex_lock(&l->wlock);
		maybe_rotate(l);
		rc = batch != NULL ? write_batch(l, batch) : WD_OK;
		if (rc == WD_OK && batch != NULL)
			atomic_store(&l->wfail, false);
		pthread_mutex_unlock(&l->wlock);
		synced = rc == WD_OK && sync_now(l);
		if (rc == WD_OK) {
			/* Healthy again only once a write worked after the one
			 * that failed (a sync of older records does not say so)
			 * and what was written is durable. */
			if (synced && !atomic_load(&l->wfail) &&
			    !atomic_load(&l->healthy)) {
				wd_info("audit: writing works again (%s)", l->dir);
				atomic_store(&l->healthy, true);
			}
			l->since_cp += (unsigned)n;
			finish_items(batch, WD_OK);
			/* Signing happens here, on the writer thread: no request
			 * waits for the TPM. */
			if (checkpoint_due(l) && atomic_load(&l->healthy))
				checkpoint(l, false);
			/* Kept payloads past their time go, hourly (and their
			 * keys once their month is over); events of other
			 * processes come in.  Both append like any caller, so
			 * neither lock is held here. */
			if (!l->no_final_cp) {
				aud_payload_housekeeping(l);
				aud_inbox_ingest(l);
			}
			pthread_mutex_lock(&l->mu);
			continue;
		}
		fail_closed(l, true);
		/* Waiters learn now; the records stay queued for the retry. */
		for (struct aud_item *it = batch; it != NULL; it = it->next) {
			if (it->done != NULL)
				it->done(it->arg, WD_EIO);
			it->done = NULL;
			json_object_del(it->rec, "seq");
		}
		pthread_mutex_lock(&l->mu);
		{
			struct aud_item *last = batch;

			while (last->next != NULL)
				last = last->next;
			last->next = l->head;
			if (l->head == NULL)
				l->tail = last;
			l->head = batch;
			l->nqueued += n;
		}
		if (l->stop)
			break;
		{
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&l->cv, &l->mu, &until);
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static void
stamp(struct aud_log *l, json_t *rec)
{
	char ts[40];

	if (json_object_get(rec, "ts") == NULL) {
		aud_ts_now(ts, sizeof(ts));
		json_object_set_new(rec, "ts", json_string(ts));
	}
	if (json_object_get(rec, "kind") == NULL)
		json_object_set_new(rec, "kind", json_string("request"));
	json_object_set_new(rec, "instance", json_string(l->instance));
}

/* Queue an item for the writer thread's retry; mu held. */
static bool
enqueue(struct aud_log *l, struct aud_item *it)
{
	if (l->nqueued >= MAX_QUEUED) {
		/* The log has been failing for long: refuse rather than grow. */
		l->dropped++;
		return false;
	}
	if (l->tail != NULL)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->nqueued++;
	pthread_cond_signal(&l->cv);
	return true;
}

/*
 * The write lock, as an appender takes it.  Another appender holds it for
 * a few microseconds (a line's hash and its write()), so trying again for
 * a little while is cheaper than sleeping on it: a futex wait, a wake-up
 * and two context switches, on a machine whose cores the workers, the
 * writer and the provider's connections share.
 */
static void
wlock_take(struct aud_log *l)
{
	uint64_t until = 0;

	while (pthread_mutex_trylock(&l->wlock) != 0) {
		uint64_t now = wd_mono_us();

		if (until == 0) {
			until = now + AUD_WLOCK_SPIN_US;
		} else if (now >= until) {
			pthread_mutex_lock(&l->wlock);
			return;
		}
		for (int i = 0; i < 16; i++) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#else
			__asm__ __volatile__("" ::: "memory");
#endif
		}
	}
}

/*
 * Write the prepared item now, under the write lock.  WD_EIO: the log is
 * failing, or records wait for a retry before it (they go first); nothing
 * of it was written and it is still the caller's.
 */
static enum wd_err
append_now(struct aud_log *l, struct aud_item *it, unsigned n)
{
	enum wd_err rc;

	wlock_take(l);
	pthread_mutex_lock(&l->mu);
	if (l->head != NULL || !atomic_load(&l->healthy)) {
		pthread_mutex_unlock(&l->mu);
		pthread_mutex_unlock(&l->wlock);
		return WD_EIO;
	}
	pthread_mutex_unlock(&l->mu);
	maybe_rotate(l);
	/* strict: durable before the caller answers (one fdatasync per
	 * record, in the caller's thread); group: the writer syncs soon. */
	rc = write_lines(l, it, l->o.strict);
	if (rc == WD_OK) {
		bool was_dirty = l->o.strict ? true :
		    atomic_exchange(&l->dirty, true), due;

		due = l->o.checkpoint_every > 0 &&
		    l->since_cp < l->o.checkpoint_every &&
		    l->since_cp + n >= l->o.checkpoint_every;
		l->since_cp += n;
		pthread_mutex_unlock(&l->wlock);
		/* Wake the writer only for the first record of a window: it
		 * syncs everything appended by then (no wake-up per request),
		 * and when a checkpoint is due by count. */
		if (!was_dirty || due) {
			pthread_mutex_lock(&l->mu);
			pthread_cond_signal(&l->cv);
			pthread_mutex_unlock(&l->mu);
		}
		return WD_OK;
	}
	fail_closed(l, true);
	pthread_mutex_unlock(&l->wlock);
	return rc;
}

/*
 * Write rec now.  On WD_OK the log took rec.  On failure (the log is
 * failing, or records wait for a retry before it) *rec_back is rec again,
 * still the caller's: it may say so in rec and aud_append() it to wait in
 * the queue.
 */
enum wd_err
aud_try_append(struct aud_log *l, json_t *rec, json_t **rec_back)
{
	struct aud_item it = { .rec = rec };
	enum wd_err rc;

	*rec_back = NULL;
	if (rec == NULL)
		return WD_ENOMEM;
	stamp(l, rec);
	/* Serialised here, in the caller's thread: only the splice of seq and
	 * prev, the hashes and the write() run under the lock. */
	aud_line_prepare(rec, &it.pre);
	rc = append_now(l, &it, 1);
	free(it.pre.text);
	if (rc == WD_OK) {
		json_decref(rec);
		return WD_OK;
	}
	json_object_del(rec, "seq");
	*rec_back = rec;
	return rc;
}

enum wd_err
aud_try_append_canon(struct aud_log *l, struct aud_canon *c)
{
	bool written;

	return aud_try_append_canons(l, c, 1, &written);
}

enum wd_err
aud_try_append_canons(struct aud_log *l, struct aud_canon *cs, size_t n,
    bool *written)
{
	struct aud_item items[AUD_APPEND_MAX], *head = NULL, **tail = &head;
	unsigned k = 0;
	enum wd_err rc = WD_OK;

	for (size_t i = 0; i < n; i++) {
		written[i] = false;
		if (i >= AUD_APPEND_MAX) {
			aud_canon_free(&cs[i]);
			rc = WD_EINVAL;
			continue;
		}
		items[i] = (struct aud_item){ 0 };
		if (!aud_canon_end(&cs[i], &items[i].pre)) {
			rc = WD_EINVAL;
			continue;
		}
		*tail = &items[i];
		tail = &items[i].next;
		k++;
	}
	if (k > 0) {
		enum wd_err wrc = append_now(l, head, k);

		for (struct aud_item *it = head; it != NULL; it = it->next) {
			written[it - items] = wrc == WD_OK;
			aud_canon_text_done(&it->pre);
		}
		if (wrc != WD_OK)
			rc = wrc;
	}
	return rc;
}

enum wd_err
aud_append(struct aud_log *l, json_t *rec)
{
	struct aud_item *it;
	json_t *back;
	enum wd_err rc = aud_try_append(l, rec, &back);

	if (rc == WD_OK || back == NULL)
		return rc;
	/* Not written: it waits for the writer thread's retry. */
	it = calloc(1, sizeof(*it));
	pthread_mutex_lock(&l->mu);
	if (it == NULL || !enqueue(l, it)) {
		pthread_mutex_unlock(&l->mu);
		free(it);
		json_decref(back);
		return WD_EIO;
	}
	it->rec = back;
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void
aud_submit(struct aud_log *l, json_t *rec, void (*done)(void *, enum wd_err),
    void *arg)
{
	enum wd_err rc = aud_append(l, rec);

	if (done != NULL)
		done(arg, rc);
}

bool
aud_healthy(const struct aud_log *l)
{
	return atomic_load(&((struct aud_log *)l)->healthy);
}

const char *
aud_last_error(const struct aud_log *l)
{
	return l->lasterr;
}

bool
aud_strict(const struct aud_log *l)
{
	return l->o.strict;
}

enum wd_err
aud_checkpoint_sync(struct aud_log *l, int timeout_ms)
{
	struct timespec until;
	uint64_t want;
	bool ok;

	if (l->o.signer == NULL)
		return WD_EUNSUPPORTED;
	pthread_mutex_lock(&l->wlock);
	want = l->seq;
	pthread_mutex_unlock(&l->wlock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	if (atomic_load(&l->cp_size) < want) {
		atomic_store(&l->cp_force, true);
		pthread_cond_signal(&l->cv);
	}
	while (atomic_load(&l->cp_size) < want &&
	    pthread_cond_timedwait(&l->cpcv, &l->mu, &until) == 0)
		;
	ok = atomic_load(&l->cp_size) >= want;
	pthread_mutex_unlock(&l->mu);
	return ok ? WD_OK : WD_ETIMEOUT;
}

enum wd_err
aud_start_writer(struct aud_log *l)
{
	if (pthread_create(&l->th, NULL, writer_main, l) != 0)
		return WD_EIO;
	l->started = true;
	return WD_OK;
}

void
aud_close(struct aud_log *l)
{
	if (l == NULL)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->th, NULL);
		/* What other processes left since the writer's last look (not
		 * into a log refused at open). */
		if (!l->no_final_cp)
			aud_inbox_ingest(l);
		/* Sign what was written last, so nothing is left unsigned. */
		/* With a counter, always: the closing checkpoint carries the
		 * value bumped at stop, so a log cut behind it shows at the
		 * next start. */
		if (l->o.signer != NULL && (l->since_cp > 0 ||
		    atomic_load(&l->cp_force) || l->o.counter != NULL) &&
		    atomic_load(&l->healthy) && !l->no_final_cp)
			checkpoint(l, true);
		sync_now(l);
	}
	aud_tree_flush(&l->tree);
	aud_tree_free(&l->tree);
	EVP_MD_CTX_free(l->mdctx);
	free(l->linebuf);
	free(l->batchbuf);
	free(l->cpline);
	free(l->tailcps);
	finish_items(l->head, WD_EIO);
	if (l->fd >= 0)
		close(l->fd);
	if (l->lockfd >= 0)
		close(l->lockfd);	/* releases the flock */
	wd_wipe(l->hmac_key, sizeof(l->hmac_key));
	aud_mac_free(l);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->wlock);
	pthread_cond_destroy(&l->cv);
	pthread_cond_destroy(&l->cpcv);
	free(l->dir);
	free(l->instance);
	free(l);
}
