/*
 * admit.c - what a chat request must pass before warden reads its body,
 * and what its body must pass before anything parses it.
 *
 * From the head alone: a known virtual key (else the body is never read:
 * the request goes to its handler with an empty body, which answers 401
 * and records it, and the connection closes), room under the worker's
 * in-flight cap (503 server_busy) and under the key's, counted across
 * workers (429 too_many_requests_in_flight).  MCP's POSTs are counted
 * the same way (a call's answer, a stream or up to 1 MiB of JSON, holds
 * memory while the tool runs), with at most GW_SMALL_BODY of body, as
 * every other endpoint (413 body_not_expected).  A request is in flight from
 * its head to the end of its answer, body reading included: that is what
 * holds memory.  From the body: one cheap pass counts its JSON values
 * before jansson builds a tree of them (413 too_many_json_values).
 *
 * http_conn.c calls these; the caps come from the rules (server.*).
 */
#include "gateway/gw_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Requests in flight per virtual key digest, for every worker
 * (server.max_inflight_per_key counts per process).
 *
 * The hot path takes no lock: a key's slot in an open-addressed table is
 * found by its digest and its count moved with atomics.  A slot, once
 * given a digest, keeps it for the life of the process (a key's count
 * falls back to zero, its slot stays), so a slot found stays the key's
 * while a request holds it and lookups need no lock; only giving a new
 * digest a slot takes keys_lock (once per key and process).  The table
 * holds KEY_SLOTS keys (only keys the policy knows are counted): keys
 * beyond it are counted in a list under keys_lock, as all were before. */
#define KEY_SLOTS 1024u			/* a power of two */

enum { SLOT_EMPTY, SLOT_READY };

struct key_slot {
	_Atomic int state;		/* SLOT_*: READY after digest is set */
	_Atomic size_t n;		/* requests in flight */
	unsigned char digest[32];
};

struct key_count {
	unsigned char digest[32];
	size_t n;
};

static struct key_slot slots[KEY_SLOTS];
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct key_count *keys;		/* the overflow, under keys_lock */
static size_t nkeys, keys_cap;

/* The endpoints of transactions: chat and the other formats. */
static bool
is_chat(const struct gw_http_req *req)
{
	static const char *const paths[] = { "/v1/chat/completions",
		"/v1/messages", "/v1/messages/count_tokens", "/v1/responses",
		"/v1/embeddings", NULL };

	if (req->method != GW_M_POST)
		return false;
	for (size_t i = 0; paths[i] != NULL; i++)
		if (strcmp(req->path, paths[i]) == 0)
			return true;
	return false;
}

/* A message to an MCP server, or its own stream (gw_mcp: a GET holds
 * its connection and the server's for as long as it lasts); DELETE ends
 * a session and holds nothing. */
static bool
is_mcp_call(const struct gw_http_req *req)
{
	return (req->method == GW_M_POST || req->method == GW_M_GET) &&
	    strncmp(req->path, "/mcp/", 5) == 0;
}

/* The digest's slot; with add, a new one when it has none (NULL: the
 * table is full).  Lookups stop at the first empty slot: slots are only
 * ever filled, in probe order, so a digest is never past one. */
static struct key_slot *
slot_find(const unsigned char digest[32], bool add)
{
	uint64_t h;
	size_t i;

	memcpy(&h, digest, sizeof(h));	/* a SHA-256: uniform already */
	for (size_t k = 0; k < KEY_SLOTS; k++) {
		struct key_slot *s;

		i = (size_t)(h + k) & (KEY_SLOTS - 1);
		s = &slots[i];
		if (atomic_load_explicit(&s->state, memory_order_acquire) ==
		    SLOT_EMPTY) {
			if (!add)
				return NULL;
			/* Only here, under keys_lock: no two add at once. */
			memcpy(s->digest, digest, 32);
			atomic_store_explicit(&s->state, SLOT_READY,
			    memory_order_release);
			return s;
		}
		if (memcmp(s->digest, digest, 32) == 0)
			return s;
	}
	return NULL;
}

/* Take one of the key's places in the overflow list; under keys_lock. */
static bool
list_take(const unsigned char digest[32], size_t max)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (memcmp(keys[i].digest, digest, 32) == 0)
			break;
	if (i < nkeys) {
		if (keys[i].n >= max)
			return false;
		keys[i].n++;
		return true;
	}
	if (nkeys == keys_cap) {
		size_t cap = keys_cap ? keys_cap * 2 : 64;
		struct key_count *k = realloc(keys, cap * sizeof(*k));

		if (k == NULL)
			return false;
		keys = k;
		keys_cap = cap;
	}
	memcpy(keys[nkeys].digest, digest, 32);
	keys[nkeys].n = 1;
	nkeys++;
	return true;
}

/* Take one of the key's places; false when it has none left.  *slot is
 * where to give it back (NULL: the overflow list). */
static bool
key_take(const unsigned char digest[32], size_t max, struct key_slot **slot)
{
	struct key_slot *s = slot_find(digest, false);
	bool ok;

	if (s == NULL) {
		pthread_mutex_lock(&keys_lock);
		s = slot_find(digest, true);
		if (s == NULL) {
			ok = list_take(digest, max);
			pthread_mutex_unlock(&keys_lock);
			*slot = NULL;
			return ok;
		}
		pthread_mutex_unlock(&keys_lock);
	}
	*slot = s;
	for (size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);;) {
		if (n >= max)
			return false;
		if (atomic_compare_exchange_weak_explicit(&s->n, &n, n + 1,
		    memory_order_acq_rel, memory_order_relaxed))
			return true;
	}
}

static void
key_give(const unsigned char digest[32], struct key_slot *slot)
{
	if (slot != NULL) {
		atomic_fetch_sub_explicit(&slot->n, 1, memory_order_acq_rel);
		return;
	}
	pthread_mutex_lock(&keys_lock);
	for (size_t i = 0; i < nkeys; i++) {
		if (memcmp(keys[i].digest, digest, 32) != 0)
			continue;
		if (--keys[i].n == 0)
			keys[i] = keys[--nkeys];
		break;
	}
	pthread_mutex_unlock(&keys_lock);
}

enum gw_admit_rc
gw_admit_head(struct gw_worker *w, const struct pol_snapshot *snap,
    const struct gw_http_req *req, struct gw_keymemo *memo, struct gw_admit *a,
    struct gw_admit_deny *deny)
{
	const struct pol_server *cfg = &snap->server;
	unsigned char digest[32];
	struct key_slot *slot;

	memset(a, 0, sizeof(*a));
	a->max_body = cfg->max_body_bytes;
	if (!is_chat(req)) {
		/* No other endpoint reads a large body: do not hold one. */
		a->max_body = GW_SMALL_BODY;
		if (req->content_length > (int64_t)GW_SMALL_BODY) {
			*deny = (struct gw_admit_deny){
				WD_CODE_BODY_NOT_EXPECTED, NULL };
			return GW_ADMIT_REFUSED;
		}
		if (!is_mcp_call(req))
			return GW_ADMIT_OK;
	}
	/* The key is hashed here, once per request; the transaction
	 * takes the digest from the connection (gw_conn_key_digest). */
	if (!gw_auth_key_digest(req, digest, memo) ||
	    gw_auth_digest(snap, digest, NULL) == NULL) {
		wd_wipe(digest, sizeof(digest));
		return GW_ADMIT_NO_BODY;
	}
	if (w->inflight >= cfg->max_inflight) {
		*deny = (struct gw_admit_deny){ WD_CODE_SERVER_BUSY,
			"too many requests in flight on this "
			"server (server.max_inflight); retry later" };
		return GW_ADMIT_REFUSED;
	}
	if (!key_take(digest, cfg->max_inflight_per_key, &slot)) {
		*deny = (struct gw_admit_deny){ WD_CODE_TOO_MANY_IN_FLIGHT,
			"too many requests in "
			"flight for this key (server.max_inflight_per_key); "
			"retry when one has ended" };
		return GW_ADMIT_REFUSED;
	}
	w->inflight++;
	a->w = w;
	a->counted = true;
	a->keyed = true;
	a->slot = slot;
	memcpy(a->digest, digest, sizeof(a->digest));
	a->max_values = cfg->max_json_values;
	return GW_ADMIT_OK;
}

void
gw_admit_done(struct gw_admit *a)
{
	if (!a->counted)
		return;
	a->counted = false;
	a->w->inflight--;
	key_give(a->digest, a->slot);
	a->keyed = false;
	wd_wipe(a->digest, sizeof(a->digest));
}

#ifdef __SSE2__
/* Bits set in x (without POPCNT, which x86-64 does not promise). */
static inline unsigned
bits_set(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Which of the 64 bytes at p are c, a bit each. */
static inline uint64_t
bytes_are(const unsigned char *p, char c)
{
	const __m128i k = _mm_set1_epi8(c);
	uint64_t m = 0;

	for (int i = 0; i < 4; i++)
		m |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
		    _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)),
		    k)) << (16 * i);
	return m;
}
#endif

size_t
gw_json_count_values(struct gw_json_count *st, const char *p, size_t n)
{
	/* Outside strings, every value but a container's first follows a
	 * comma, and every container opens with a bracket: 1 + commas +
	 * brackets is at least the number of values (object members count
	 * once, with their key). */
	size_t count = st->count ? st->count : 1, i = 0;
	bool in_string = st->in_string, escape = st->escape;

	while (i < n) {
		size_t stop = n;

#ifdef __SSE2__
		/*
		 * 64 bytes at a time while no backslash is in them (nor an
		 * escape open before them): each quote goes into or out of a
		 * string, so a byte is inside one where the quotes before it
		 * (a prefix XOR of their bits) are odd; commas and brackets
		 * outside are counted.  A block with a backslash goes byte
		 * by byte, below.
		 */
		if (!escape && n - i >= 64) {
			const unsigned char *u = (const unsigned char *)p + i;

			if (bytes_are(u, '\\') == 0) {
				uint64_t in = bytes_are(u, '"');

				in ^= in << 1;
				in ^= in << 2;
				in ^= in << 4;
				in ^= in << 8;
				in ^= in << 16;
				in ^= in << 32;
				if (in_string)
					in = ~in;
				count += bits_set((bytes_are(u, ',') |
				    bytes_are(u, '[') | bytes_are(u, '{')) & ~in);
				in_string = (in >> 63) & 1;
				i += 64;
				continue;
			}
			stop = i + 64;
		}
#endif
		while (i < stop) {
			if (escape) {
				escape = false;
				i++;
			} else if (in_string) {
				/* Skipped to the next quote or backslash 16
				 * bytes at a time: strings are most of a body. */
				const unsigned char *u = (const unsigned char *)p,
				    *e = wd_json_quote_end(u + i, u + n);

				i = (size_t)(e - u);
				if (i < n) {
					if (*e == '"')
						in_string = false;
					else
						escape = true;
					i++;
				}
			} else {
				char ch = p[i++];

				if (ch == '"')
					in_string = true;
				else if (ch == ',' || ch == '[' || ch == '{')
					count++;
			}
		}
	}
	st->count = count;
	st->in_string = in_string;
	st->escape = escape;
	return count;
}

bool
gw_admit_body(struct gw_admit *a, struct evbuffer *body,
    struct gw_admit_deny *deny)
{
	struct gw_json_count st = { 0 };
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;

	if (!a->counted)
		return true;
	if (evbuffer_ptr_set(body, &pos, 0, EVBUFFER_PTR_SET) != 0)
		return true;
	/* Chain by chain, without making the body contiguous. */
	while (evbuffer_peek(body, -1, &pos, &v, 1) == 1 && v.iov_len > 0) {
		if (gw_json_count_values(&st, v.iov_base, v.iov_len) >
		    a->max_values) {
			*deny = (struct gw_admit_deny){
				WD_CODE_TOO_MANY_JSON_VALUES, NULL };
			return false;
		}
		if (evbuffer_ptr_set(body, &pos, v.iov_len, EVBUFFER_PTR_ADD) != 0)
			break;
	}
	a->values = st.count;
	return true;
}
