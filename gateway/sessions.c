/*
 * sessions.c - the agent state store in this process (gw_store_memory,
 * see store.h): sessions per agent, and call counts per key over a
 * window.
 *
 * Sessions: each agent has its own table, bounded by its own
 * sessions.max, so that no tenant (no agent) can push out another's
 * sessions; a full table refuses new sessions (429) and never evicts a
 * live one.  A session is forgotten ttl_s after its last use.  A record
 * holds at most GW_SESSION_MAX_CALLS calls, as names, so that a reload
 * that reorders tools cannot confuse it.
 *
 * Windows: each (agent, key) counts its calls in WIN_BUCKETS buckets of
 * window_s / WIN_BUCKETS, plus the current one.  A count adds every bucket
 * that overlaps the last window_s, so it is never below the true number:
 * no window_s span ever holds more calls than the limit.
 *
 * Everything is behind one mutex (a lookup is a hash and a short compare;
 * workers hold the lock for microseconds).
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WIN_BUCKETS 60
#define WIN_SLOTS (WIN_BUCKETS + 1)
#define MAX_WINDOWS 65536
#define WIN_TABLE 1024

struct sess {
	char *token;			/* X-Warden-Session; owned */
	char *names;			/* calls, each NUL-terminated; owned */
	size_t nbytes, cap;
	size_t ncalls;
	/* Calls went out that the record could not take (too many, or no
	 * memory): the record is no longer the whole truth, so the session
	 * is refused from now on rather than compared. */
	enum gw_store_rc lost;
	uint64_t used_us;
	struct sess *older, *newer;	/* the agent's list, by last use */
	struct sess *hnext;
};

/* One agent's sessions. */
struct agent_sess {
	char *key;			/* tenant, newline, agent; owned */
	struct sess **table;		/* by token; power-of-two size */
	size_t table_cap, count;
	struct sess *newest, *oldest;
	struct agent_sess *next;
};

struct win_tool {
	char *name;			/* owned */
	uint32_t n[WIN_SLOTS];
};

/* One key's calls as one agent. */
struct win {
	char *key;			/* agent, newline, key digest hex; owned */
	uint64_t width_us;		/* bucket width; 0: never used */
	uint64_t stamp[WIN_SLOTS];	/* bucket number a slot holds; 0: none */
	uint32_t total[WIN_SLOTS];
	struct win_tool *tools;
	size_t ntools;
	struct win *hnext;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct agent_sess *agents;
static struct win *windows[WIN_TABLE];
static size_t nwindows;

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* ---- sessions ---- */

static void
list_unlink(struct agent_sess *a, struct sess *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		a->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		a->oldest = e->newer;
	e->older = e->newer = NULL;
}

static void
list_front(struct agent_sess *a, struct sess *e)
{
	e->older = a->newest;
	e->newer = NULL;
	if (a->newest)
		a->newest->newer = e;
	a->newest = e;
	if (a->oldest == NULL)
		a->oldest = e;
}

static void
sess_drop(struct agent_sess *a, struct sess *e)
{
	struct sess **pp = &a->table[hash(e->token) & (a->table_cap - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(a, e);
	free(e->token);
	free(e->names);
	free(e);
	a->count--;
}

static struct agent_sess *
agent_find(const struct gw_sess_ref *r)
{
	struct agent_sess *a;
	char *key;

	if (asprintf(&key, "%s\n%s", r->tenant, r->agent) < 0)
		return NULL;
	for (a = agents; a != NULL; a = a->next)
		if (strcmp(a->key, key) == 0) {
			free(key);
			return a;
		}
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->table = calloc(64, sizeof(*a->table))) == NULL) {
		free(a);
		free(key);
		return NULL;
	}
	a->table_cap = 64;
	a->key = key;
	a->next = agents;
	agents = a;
	return a;
}

/* Double the table once it holds as many sessions as slots. */
static void
agent_grow(struct agent_sess *a)
{
	size_t cap = a->table_cap * 2;
	struct sess **t;

	if (a->count < a->table_cap || (t = calloc(cap, sizeof(*t))) == NULL)
		return;			/* longer chains; still correct */
	for (size_t i = 0; i < a->table_cap; i++)
		for (struct sess *e = a->table[i], *n; e != NULL; e = n) {
			size_t h = hash(e->token) & (cap - 1);

			n = e->hnext;
			e->hnext = t[h];
			t[h] = e;
		}
	free(a->table);
	a->table = t;
	a->table_cap = cap;
}

static void
agent_expire(struct agent_sess *a, uint64_t now, uint64_t ttl_us)
{
	while (a->oldest != NULL && now - a->oldest->used_us > ttl_us)
		sess_drop(a, a->oldest);
}

/* The session, made if missing and capped is false or there is room. */
static struct sess *
sess_find(struct agent_sess *a, const struct gw_sess_ref *r, bool capped,
    uint64_t now, enum gw_store_rc *rc, int *retry_s)
{
	uint64_t ttl_us = (uint64_t)(r->ttl_s > 0 ? r->ttl_s : 1) * 1000000;
	struct sess *e;

	agent_expire(a, now, ttl_us);
	for (e = a->table[hash(r->session) & (a->table_cap - 1)]; e != NULL;
	    e = e->hnext)
		if (strcmp(e->token, r->session) == 0)
			break;
	if (e == NULL) {
		if (capped && a->count >= r->max) {
			/* The oldest goes first; it is live until then. */
			uint64_t left = a->oldest != NULL ?
			    a->oldest->used_us + ttl_us - now : 1000000;

			*retry_s = (int)((left + 999999) / 1000000);
			*rc = GW_STORE_FULL;
			return NULL;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->token = strdup(r->session)) == NULL) {
			free(e);
			*rc = GW_STORE_NOMEM;
			return NULL;
		}
		agent_grow(a);
		e->hnext = a->table[hash(r->session) & (a->table_cap - 1)];
		a->table[hash(r->session) & (a->table_cap - 1)] = e;
		a->count++;
	} else {
		list_unlink(a, e);
	}
	e->used_us = now;
	list_front(a, e);
	*rc = GW_STORE_OK;
	return e;
}

static enum gw_store_rc
sess_add(struct sess *e, const char *const *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(calls[i]) + 1;

		if (e->ncalls >= GW_SESSION_MAX_CALLS)
			return GW_STORE_TOO_LONG;
		if (e->nbytes + l > e->cap) {
			size_t cap = (e->cap ? e->cap * 2 : 256) + l;
			char *p = realloc(e->names, cap);

			if (p == NULL)
				return GW_STORE_NOMEM;
			e->names = p;
			e->cap = cap;
		}
		memcpy(e->names + e->nbytes, calls[i], l);
		e->nbytes += l;
		e->ncalls++;
	}
	return GW_STORE_OK;
}

static bool
mcp_entry(const char *p)
{
	return strncmp(p, GW_SESSION_MCP, 4) == 0 ||
	    strncmp(p, GW_SESSION_RUN, 4) == 0;
}

static enum gw_store_rc
mem_session_check(const struct gw_sess_ref *r, const char *const *calls,
    size_t n, size_t *recorded, int *retry_s)
{
	struct agent_sess *a;
	struct sess *e;
	enum gw_store_rc rc;
	const char *p;
	size_t nchat = 0;

	*recorded = 0;
	*retry_s = 0;
	pthread_mutex_lock(&lock);
	if ((a = agent_find(r)) == NULL) {
		rc = GW_STORE_NOMEM;
		goto out;
	}
	if ((e = sess_find(a, r, true, wd_mono_us(), &rc, retry_s)) == NULL)
		goto out;
	*recorded = e->ncalls;
	if ((rc = e->lost) != GW_STORE_OK)
		goto out;
	p = e->names;
	for (size_t i = 0; i < e->ncalls; i++, p += strlen(p) + 1) {
		if (mcp_entry(p))
			continue;	/* not in a chat history */
		if (nchat >= n || strcmp(p, calls[nchat]) != 0) {
			rc = GW_STORE_CONTRADICTS;
			goto out;
		}
		nchat++;
	}
	if (n > GW_SESSION_MAX_CALLS)
		rc = GW_STORE_TOO_LONG;
	else if (n > nchat)
		rc = sess_add(e, calls + nchat, n - nchat);
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

static enum gw_store_rc
mem_session_append(const struct gw_sess_ref *r, const char *const *calls,
    size_t n)
{
	struct agent_sess *a;
	struct sess *e;
	enum gw_store_rc rc = GW_STORE_NOMEM;
	int retry_s;

	pthread_mutex_lock(&lock);
	/* Not capped: the calls went out; forgetting them would let the
	 * client hide them.  At most one session per request in flight. */
	if ((a = agent_find(r)) != NULL &&
	    (e = sess_find(a, r, false, wd_mono_us(), &rc, &retry_s)) != NULL &&
	    (rc = sess_add(e, calls, n)) != GW_STORE_OK)
		e->lost = rc;
	pthread_mutex_unlock(&lock);
	return rc;
}

static enum gw_store_rc
mem_session_read(const struct gw_sess_ref *r, char ***names, size_t *n,
    int *retry_s)
{
	struct agent_sess *a;
	struct sess *e;
	enum gw_store_rc rc;
	char **v, *p;

	*names = NULL;
	*n = 0;
	*retry_s = 0;
	pthread_mutex_lock(&lock);
	if ((a = agent_find(r)) == NULL) {
		rc = GW_STORE_NOMEM;
		goto out;
	}
	if ((e = sess_find(a, r, true, wd_mono_us(), &rc, retry_s)) == NULL)
		goto out;
	if ((rc = e->lost) != GW_STORE_OK)
		goto out;
	/* Pointers, then the names, in one block. */
	v = malloc((e->ncalls + 1) * sizeof(*v) + e->nbytes + 1);
	if (v == NULL) {
		rc = GW_STORE_NOMEM;
		goto out;
	}
	p = (char *)(v + e->ncalls + 1);
	if (e->nbytes > 0)
		memcpy(p, e->names, e->nbytes);
	for (size_t i = 0; i < e->ncalls; i++) {
		v[i] = p;
		p += strlen(p) + 1;
	}
	v[e->ncalls] = NULL;
	*names = v;
	*n = e->ncalls;
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

static enum gw_store_rc
mem_session_append_at(const struct gw_sess_ref *r, size_t at,
    const char *const *calls, size_t n)
{
	struct agent_sess *a;
	struct sess *e = NULL;
	enum gw_store_rc rc = GW_STORE_NOMEM;
	int retry_s;

	pthread_mutex_lock(&lock);
	if ((a = agent_find(r)) != NULL &&
	    (e = sess_find(a, r, false, wd_mono_us(), &rc, &retry_s)) != NULL) {
		if ((rc = e->lost) == GW_STORE_OK) {
			if (e->ncalls != at)
				rc = GW_STORE_CONTRADICTS;
			else if ((rc = sess_add(e, calls, n)) != GW_STORE_OK)
				e->lost = rc;
		}
	} else if (a != NULL && rc == GW_STORE_OK) {
		rc = GW_STORE_CONTRADICTS;	/* gone since it was read */
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* ---- windows ---- */

static struct win *
win_find(const struct gw_win_ref *r, bool create)
{
	char hex[65], *key;
	struct win *w;
	size_t h;

	wd_hex(r->key, 32, hex);
	if (asprintf(&key, "%s\n%s", r->agent, hex) < 0)
		return NULL;
	h = hash(key) & (WIN_TABLE - 1);
	for (w = windows[h]; w != NULL; w = w->hnext)
		if (strcmp(w->key, key) == 0)
			break;
	if (w == NULL && create && nwindows < MAX_WINDOWS &&
	    (w = calloc(1, sizeof(*w))) != NULL) {
		w->key = key;
		key = NULL;
		w->hnext = windows[h];
		windows[h] = w;
		nwindows++;
	}
	free(key);
	return w;
}

/* The bucket number of now; a changed window starts afresh. */
static uint64_t
win_now(struct win *w, const struct gw_win_ref *r)
{
	uint64_t width = ((uint64_t)r->window_s * 1000000 + WIN_BUCKETS - 1) /
	    WIN_BUCKETS;

	if (w->width_us != width) {
		memset(w->stamp, 0, sizeof(w->stamp));
		w->width_us = width;
	}
	return wd_mono_us() / width + 1;
}

static bool
slot_live(const struct win *w, size_t s, uint64_t b)
{
	return w->stamp[s] != 0 && w->stamp[s] + WIN_BUCKETS >= b;
}

static struct win_tool *
win_tool(struct win *w, const char *name, bool create)
{
	struct win_tool *t;

	for (size_t i = 0; i < w->ntools; i++)
		if (strcmp(w->tools[i].name, name) == 0)
			return &w->tools[i];
	if (!create || w->ntools >= POL_MAX_TOOLS * 4)
		return NULL;
	t = realloc(w->tools, (w->ntools + 1) * sizeof(*t));
	if (t == NULL)
		return NULL;
	w->tools = t;
	t = &w->tools[w->ntools];
	memset(t, 0, sizeof(*t));
	if ((t->name = strdup(name)) == NULL)
		return NULL;
	w->ntools++;
	return t;
}

static unsigned
win_sum(const struct win *w, const uint32_t *n, uint64_t b)
{
	unsigned sum = 0;

	for (size_t s = 0; s < WIN_SLOTS; s++)
		if (slot_live(w, s, b))
			sum += n[s];
	return sum;
}

static enum gw_store_rc
mem_window_read(const struct gw_win_ref *r, const char *const *names,
    size_t n, unsigned *total, unsigned *counts)
{
	struct win *w;
	uint64_t b;

	*total = 0;
	memset(counts, 0, n * sizeof(*counts));
	pthread_mutex_lock(&lock);
	if ((w = win_find(r, false)) != NULL) {
		b = win_now(w, r);
		*total = win_sum(w, w->total, b);
		for (size_t i = 0; i < n; i++) {
			struct win_tool *t = win_tool(w, names[i], false);

			if (t != NULL)
				counts[i] = win_sum(w, t->n, b);
		}
	}
	pthread_mutex_unlock(&lock);
	return GW_STORE_OK;
}

static enum gw_store_rc
mem_window_take(const struct gw_win_ref *r, const char *tool, int max_total,
    int max_tool)
{
	struct win *w;
	struct win_tool *t;
	enum gw_store_rc rc = GW_STORE_NOMEM;
	uint64_t b;
	size_t s;

	pthread_mutex_lock(&lock);
	if ((w = win_find(r, true)) == NULL ||
	    (t = win_tool(w, tool, true)) == NULL)
		goto out;
	b = win_now(w, r);
	s = b % WIN_SLOTS;
	if (w->stamp[s] != b) {
		w->stamp[s] = b;
		w->total[s] = 0;
		for (size_t i = 0; i < w->ntools; i++)
			w->tools[i].n[s] = 0;
	}
	if ((max_total >= 0 && win_sum(w, w->total, b) >= (unsigned)max_total) ||
	    (max_tool >= 0 && win_sum(w, t->n, b) >= (unsigned)max_tool)) {
		rc = GW_STORE_LIMIT;
		goto out;
	}
	w->total[s]++;
	t->n[s]++;
	rc = GW_STORE_OK;
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

const struct gw_store_ops gw_store_memory = {
	.name = "memory",
	.session_check = mem_session_check,
	.session_append = mem_session_append,
	.session_read = mem_session_read,
	.session_append_at = mem_session_append_at,
	.window_read = mem_window_read,
	.window_take = mem_window_take,
	.response_put = gw_resp_route_put,
	.response_route = gw_resp_route_get,
	.limit_reserve = gw_mem_limit_reserve,
	.limit_settle = gw_mem_limit_settle,
};

static const struct gw_store_ops *_Atomic store_in_use = &gw_store_memory;

const struct gw_store_ops *
gw_store(void)
{
	return atomic_load_explicit(&store_in_use, memory_order_acquire);
}

void
gw_store_use(const struct gw_store_ops *ops)
{
	atomic_store_explicit(&store_in_use, ops, memory_order_release);
}

const char *
gw_store_rc_name(enum gw_store_rc rc)
{
	switch (rc) {
	case GW_STORE_OK: return "ok";
	case GW_STORE_CONTRADICTS: return "contradicts";
	case GW_STORE_TOO_LONG: return "too_long";
	case GW_STORE_FULL: return "full";
	case GW_STORE_LIMIT: return "limit";
	case GW_STORE_NOMEM: return "nomem";
	case GW_STORE_UNKNOWN: return "unknown";
	case GW_STORE_UNAVAILABLE: return "unavailable";
	}
	return "?";
}

void
gw_store_memory_reset(void)
{
	pthread_mutex_lock(&lock);
	while (agents != NULL) {
		struct agent_sess *a = agents;

		agents = a->next;
		while (a->oldest != NULL)
			sess_drop(a, a->oldest);
		free(a->table);
		free(a->key);
		free(a);
	}
	for (size_t h = 0; h < WIN_TABLE; h++)
		while (windows[h] != NULL) {
			struct win *w = windows[h];

			windows[h] = w->hnext;
			for (size_t i = 0; i < w->ntools; i++)
				free(w->tools[i].name);
			free(w->tools);
			free(w->key);
			free(w);
		}
	nwindows = 0;
	pthread_mutex_unlock(&lock);
	gw_resp_routes_reset();
	gw_mem_limits_reset();
}
