/*
 * limits_mem.c - limit counters in this process (store.h, struct
 * gw_ctr): what one warden uses without state.redis.  The same semantics
 * as the Lua scripts of store_redis.c:
 *
 *  - GW_CTR_WINDOW counts in WIN_SLOTS buckets of window_s / 60; a sum
 *    adds every bucket that overlaps the last window_s, so it is never
 *    below the true amount: no window_s span ever holds more than max.
 *  - GW_CTR_PERIOD is one number until period_end (its key names the
 *    period, so a new day is a new counter).
 *  - GW_CTR_INFLIGHT holds leases (one per request) until they are
 *    returned or expire: a request that never ends cannot hold a place
 *    for ever.
 *
 * One mutex over a hash table of at most MAX_CTRS counters; when it is
 * full, counters that hold nothing are dropped, and if none do the
 * reservation is refused (NOMEM: fail closed), never let through.
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <stdlib.h>
#include <string.h>

#define WIN_BUCKETS 60
#define WIN_SLOTS (WIN_BUCKETS + 1)
#define MAX_CTRS 65536
#define CTR_TABLE 4096
#define MAX_LEASES 4096		/* per counter: more is refused */

struct lease {
	uint64_t id;			/* hash of the lease name */
	long long until_ms;
};

struct mctr {
	char key[GW_CTR_KEY_MAX];
	enum gw_ctr_type type;
	long long width_ms;		/* window */
	long long stamp[WIN_SLOTS];	/* bucket a slot holds */
	long long amt[WIN_SLOTS];
	long long value;		/* period */
	long long period_end;
	struct lease *leases;		/* in flight */
	size_t nleases, cap;
	struct mctr *hnext;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mctr *table[CTR_TABLE];
static size_t nctrs;

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static long long
now_ms(void)
{
	return (long long)(wd_wall_us() / 1000);
}

/* What c holds now (expired parts dropped). */
static long long
held(struct mctr *m, long long now)
{
	long long sum = 0;

	switch (m->type) {
	case GW_CTR_WINDOW: {
		long long cur = now / m->width_ms;

		for (size_t s = 0; s < WIN_SLOTS; s++)
			if (m->stamp[s] != 0 && m->stamp[s] >= cur - WIN_BUCKETS)
				sum += m->amt[s];
		return sum;
	}
	case GW_CTR_PERIOD:
		if (now / 1000 >= m->period_end)
			m->value = 0;
		return m->value;
	case GW_CTR_INFLIGHT:
		for (size_t i = 0; i < m->nleases;)
			if (m->leases[i].until_ms <= now)
				m->leases[i] = m->leases[--m->nleases];
			else
				i++;
		return (long long)m->nleases;
	}
	return 0;
}

/* Drop counters that hold nothing, to make room. */
static void
sweep(long long now)
{
	for (size_t h = 0; h < CTR_TABLE; h++)
		for (struct mctr **pp = &table[h]; *pp != NULL;) {
			struct mctr *m = *pp;

			if (held(m, now) == 0) {
				*pp = m->hnext;
				free(m->leases);
				free(m);
				nctrs--;
			} else {
				pp = &m->hnext;
			}
		}
}

static struct mctr *
find(const struct gw_ctr *c, bool create, long long now)
{
	size_t h = hash(c->key) & (CTR_TABLE - 1);
	struct mctr *m;

	for (m = table[h]; m != NULL; m = m->hnext)
		if (m->type == c->type && strcmp(m->key, c->key) == 0)
			return m;
	if (!create)
		return NULL;
	if (nctrs >= MAX_CTRS)
		sweep(now);
	if (nctrs >= MAX_CTRS || (m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	snprintf(m->key, sizeof(m->key), "%s", c->key);
	m->type = c->type;
	m->width_ms = c->window_s > 0 ? (long long)c->window_s * 1000 /
	    WIN_BUCKETS : 1000;
	if (m->width_ms < 1)
		m->width_ms = 1;
	m->period_end = c->period_end;
	m->hnext = table[h];
	table[h] = m;
	nctrs++;
	return m;
}

/* Seconds until c may have room again (at least 1). */
static int
retry_of(const struct mctr *m, long long now)
{
	long long ms = 1000;

	if (m->type == GW_CTR_WINDOW) {
		long long cur = now / m->width_ms, oldest = 0;

		for (size_t s = 0; s < WIN_SLOTS; s++)
			if (m->stamp[s] >= cur - WIN_BUCKETS && m->amt[s] > 0 &&
			    (oldest == 0 || m->stamp[s] < oldest))
				oldest = m->stamp[s];
		if (oldest != 0)
			ms = (oldest + WIN_BUCKETS + 1) * m->width_ms - now;
	} else if (m->type == GW_CTR_PERIOD) {
		ms = (m->period_end - now / 1000) * 1000;
	}
	return ms < 1000 ? 1 : (int)((ms + 999) / 1000);
}

enum gw_store_rc
gw_mem_limit_reserve(struct gw_ctr *c, size_t n, const char *lease,
    size_t *which)
{
	struct mctr *m[GW_MAX_CTRS];
	long long now = now_ms();
	enum gw_store_rc rc = GW_STORE_OK;

	*which = 0;
	if (n > GW_MAX_CTRS)
		return GW_STORE_NOMEM;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n; i++) {
		c[i].retry_s = 0;
		if ((m[i] = find(&c[i], true, now)) == NULL) {
			rc = GW_STORE_NOMEM;
			goto out;
		}
		c[i].used = held(m[i], now);
		if (rc == GW_STORE_OK && c[i].used + c[i].amount > c[i].max) {
			rc = GW_STORE_LIMIT;
			*which = i;
			c[i].retry_s = retry_of(m[i], now);
		}
		if (rc == GW_STORE_OK && c[i].type == GW_CTR_INFLIGHT &&
		    m[i]->nleases >= MAX_LEASES) {
			rc = GW_STORE_LIMIT;
			*which = i;
			c[i].retry_s = 1;
		}
	}
	if (rc != GW_STORE_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct mctr *x = m[i];

		switch (c[i].type) {
		case GW_CTR_WINDOW: {
			long long cur = now / x->width_ms;
			size_t s = (size_t)(cur % WIN_SLOTS);

			if (x->stamp[s] != cur) {
				x->stamp[s] = cur;
				x->amt[s] = 0;
			}
			x->amt[s] += c[i].amount;
			c[i].bucket = cur;
			break;
		}
		case GW_CTR_PERIOD:
			x->value += c[i].amount;
			c[i].bucket = x->period_end;
			break;
		case GW_CTR_INFLIGHT:
			if (x->nleases == x->cap) {
				size_t cap = x->cap ? x->cap * 2 : 8;
				struct lease *l = realloc(x->leases,
				    cap * sizeof(*l));

				if (l == NULL) {
					/* Undo what this request took so far. */
					for (size_t j = 0; j < i; j++)
						if (c[j].type == GW_CTR_WINDOW)
							m[j]->amt[c[j].bucket % WIN_SLOTS] -=
							    c[j].amount;
						else if (c[j].type == GW_CTR_PERIOD)
							m[j]->value -= c[j].amount;
						else
							m[j]->nleases--;
					rc = GW_STORE_NOMEM;
					goto out;
				}
				x->leases = l;
				x->cap = cap;
			}
			x->leases[x->nleases++] = (struct lease){ hash(lease),
			    now + (long long)c[i].lease_s * 1000 };
			c[i].bucket = 0;
			break;
		}
		c[i].used += c[i].amount;
	}
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

enum gw_store_rc
gw_mem_limit_settle(const struct gw_ctr *c, size_t n, const char *lease,
    const long long *delta)
{
	long long now = now_ms();
	uint64_t lid = hash(lease);

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n; i++) {
		struct mctr *m = find(&c[i], false, now);

		if (m == NULL)
			continue;	/* expired with everything it held */
		switch (c[i].type) {
		case GW_CTR_WINDOW: {
			size_t s = (size_t)(c[i].bucket % WIN_SLOTS);

			/* A bucket that left the window counts nothing. */
			if (m->stamp[s] == c[i].bucket) {
				m->amt[s] += delta[i];
				if (m->amt[s] < 0)
					m->amt[s] = 0;
			}
			break;
		}
		case GW_CTR_PERIOD:
			if (m->period_end == c[i].bucket) {
				m->value += delta[i];
				if (m->value < 0)
					m->value = 0;
			}
			break;
		case GW_CTR_INFLIGHT:
			for (size_t k = 0; k < m->nleases; k++)
				if (m->leases[k].id == lid) {
					m->leases[k] = m->leases[--m->nleases];
					break;
				}
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return GW_STORE_OK;
}

void
gw_mem_limits_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t h = 0; h < CTR_TABLE; h++)
		while (table[h] != NULL) {
			struct mctr *m = table[h];

			table[h] = m->hnext;
			free(m->leases);
			free(m);
		}
	nctrs = 0;
	pthread_mutex_unlock(&lock);
}
