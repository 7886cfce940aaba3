/*
 * aud_int.h - private to audit/: the log's state, shared by open.c (start
 * and recovery) and writer.c (the writer thread).
 */
#ifndef AUD_INT_H
#define AUD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/evp.h>

#include "audit/aud.h"

#define AUD_SEGMENT_FMT "audit-%06llu.jsonl"
#define AUD_KEY_FILE "payload.key"

struct aud_item {
	json_t *rec;
	void (*done)(void *arg, enum wd_err rc);
	void *arg;
	struct aud_item *next;
};

struct aud_log {
	struct aud_opts o;		/* dir and instance point below */
	char *dir;
	char *instance;
	int fd;				/* current segment, O_APPEND */
	int lockfd;			/* flock()ed while the log is ours */
	uint64_t segno;
	size_t segbytes;
	time_t segstart;
	uint64_t seq;			/* last written */
	char prev[AUD_HASH_HEX + 1];	/* its hash */
	unsigned char hmac_key[32];	/* payload digests */
	pthread_t th;
	bool started;
	pthread_mutex_t wlock;		/* the file, seq, prev: one writer */
	pthread_mutex_t mu;		/* guards the queue and stop */
	pthread_cond_t cv;
	struct aud_item *head, *tail;
	size_t nqueued;
	bool stop;
	atomic_bool healthy;
	atomic_bool dirty;		/* appended, not yet fsynced */
	char lasterr[256];
	/* Written under wlock, read by the writer thread's wait too. */
	atomic_uint since_cp;		/* records since the last checkpoint */
	atomic_ullong last_cp_us;
	uint64_t last_batch_us;		/* when the last batch was taken */
	uint64_t last_sweep_us;		/* payload TTL sweep */
	struct aud_mac *mac;		/* digest.c: HMAC midstates, locked */
	uint64_t dropped;
	/* The TPM counter (issue 11): when it was last bumped; closing: the
	 * last checkpoint is being made. */
	uint64_t counter_bump_us;
	bool closing;
	uint64_t last_inbox_us;		/* inbox.c: events of other processes */
};

enum wd_err aud_start_writer(struct aud_log *l);
enum wd_err aud_mac_init(struct aud_log *l);
void aud_mac_free(struct aud_log *l);
enum wd_err aud_open_segment(struct aud_log *l, uint64_t segno);
void aud_fsync_dir(const char *dir);

/* Take DIR/inbox/ into the chain (writer thread, or aud_close after it
 * stopped: never two at once); the hourly payload sweep. */
void aud_inbox_ingest(struct aud_log *l);
void aud_payload_housekeeping(struct aud_log *l);
bool aud_inbox_due(const struct aud_log *l);

/* Segment files of dir in order; *n of them.  Caller frees each and v. */
char **aud_segments(const char *dir, size_t *n);

#endif /* AUD_INT_H */
