/*
 * sessions.c - what warden itself remembers of agent sessions
 * (X-Warden-Session): the tool calls made so far, so that a client cannot
 * hide earlier calls by trimming its message history.
 *
 * One table for the process, behind one mutex (a lookup is a hash and a
 * short compare; workers hold the lock for microseconds).  Bounded: at
 * most `max` sessions, each forgotten `ttl_s` after its last use, the
 * least recently used evicted first; a session remembers at most
 * SESS_MAX_CALLS calls, as names, so that a reload that reorders tools
 * cannot confuse it.
 */
#include "gateway/gw_int.h"

#include <stdlib.h>
#include <string.h>

#define SESS_MAX_CALLS 256
#define SESS_NAMES_BYTES 4096

struct sess {
	char *key;			/* agent, newline, session; owned */
	char names[SESS_NAMES_BYTES];	/* calls, each NUL-terminated */
	size_t nnames_bytes;
	size_t ncalls;
	uint64_t used_us;
	struct sess *lru_prev, *lru_next;	/* most recent first */
	struct sess *hnext;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sess **table;
static size_t table_cap, count, max_sessions = 10000;
static uint64_t ttl_us = 3600ull * 1000000;
static struct sess *lru_head, *lru_tail;

void
gw_sessions_init(size_t max, int ttl_s)
{
	pthread_mutex_lock(&lock);
	max_sessions = max > 0 ? max : 1;
	ttl_us = (uint64_t)(ttl_s > 0 ? ttl_s : 1) * 1000000;
	pthread_mutex_unlock(&lock);
}

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void
lru_unlink(struct sess *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void
lru_front(struct sess *e)
{
	e->lru_next = lru_head;
	if (lru_head)
		lru_head->lru_prev = e;
	lru_head = e;
	if (lru_tail == NULL)
		lru_tail = e;
}

static void
drop(struct sess *e)
{
	struct sess **pp = &table[hash(e->key) & (table_cap - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	free(e->key);
	free(e);
	count--;
}

/* Find (or make) the entry; expired and surplus entries go first. */
static struct sess *
lookup(const char *key, bool create)
{
	uint64_t now = wd_mono_us();
	struct sess *e;

	if (table == NULL) {
		table_cap = 1024;
		table = calloc(table_cap, sizeof(*table));
		if (table == NULL)
			return NULL;
	}
	while (lru_tail != NULL && now - lru_tail->used_us > ttl_us)
		drop(lru_tail);
	for (e = table[hash(key) & (table_cap - 1)]; e != NULL; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			break;
	if (e == NULL && create) {
		while (count >= max_sessions && lru_tail != NULL)
			drop(lru_tail);
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->key = strdup(key)) == NULL) {
			free(e);
			return NULL;
		}
		e->hnext = table[hash(key) & (table_cap - 1)];
		table[hash(key) & (table_cap - 1)] = e;
		count++;
	} else if (e != NULL) {
		lru_unlink(e);
	}
	if (e != NULL) {
		e->used_us = now;
		lru_front(e);
	}
	return e;
}

static void
append(struct sess *e, const char *const *calls, size_t n)
{
	for (size_t i = 0; i < n && e->ncalls < SESS_MAX_CALLS; i++) {
		size_t l = strlen(calls[i]) + 1;

		if (e->nnames_bytes + l > sizeof(e->names))
			return;
		memcpy(e->names + e->nnames_bytes, calls[i], l);
		e->nnames_bytes += l;
		e->ncalls++;
	}
}

/* The table key of a session: exact, never truncated. */
static char *
make_key(const char *agent, const char *session)
{
	char *key;

	if (asprintf(&key, "%s\n%s", agent, session) < 0)
		return NULL;
	return key;
}

bool
gw_session_check(const char *agent, const char *session,
    const char *const *calls, size_t ncalls, size_t *recorded)
{
	char *key = make_key(agent, session);
	struct sess *e;
	const char *p;
	bool ok = true;

	*recorded = 0;
	if (key == NULL)
		return false;
	pthread_mutex_lock(&lock);
	e = lookup(key, true);
	free(key);
	if (e == NULL) {
		pthread_mutex_unlock(&lock);
		return false;		/* fail closed when memory is short */
	}
	*recorded = e->ncalls;
	p = e->names;
	for (size_t i = 0; i < e->ncalls; i++) {
		if (i >= ncalls || strcmp(p, calls[i]) != 0) {
			ok = false;
			break;
		}
		p += strlen(p) + 1;
	}
	if (ok && ncalls > e->ncalls)
		append(e, calls + e->ncalls, ncalls - e->ncalls);
	pthread_mutex_unlock(&lock);
	return ok;
}

void
gw_session_append(const char *agent, const char *session,
    const char *const *calls, size_t ncalls)
{
	char *key = make_key(agent, session);
	struct sess *e;

	if (key == NULL)
		return;
	pthread_mutex_lock(&lock);
	e = lookup(key, true);
	if (e != NULL)
		append(e, calls, ncalls);
	pthread_mutex_unlock(&lock);
	free(key);
}
