/*
 * cache.c - locked memory for plaintext: struct sec_buf, the gateway's
 * credential cache, and hardening the process so none of it ends up in a
 * core dump or in another user's debugger.
 *
 * The cache keeps every value in one mapping, packed from its start:
 * removing or replacing a value wipes it, moves the values after it down
 * and wipes the tail they left, so no stale copy survives anywhere in the
 * region.  Names (not secret) live in ordinary memory.
 */
#include "secrets/sec_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

enum wd_err
sec_buf_alloc(struct sec_buf *b, size_t len, char *err, size_t errlen)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	void *p;

	memset(b, 0, sizeof(*b));
	if (len == 0 || len > ((size_t)1 << 30)) {
		sec_errf(err, errlen, "locked buffer of %zu bytes refused", len);
		return WD_EINVAL;
	}
	b->maplen = (len + page - 1) / page * page;
	p = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		sec_errf(err, errlen, "cannot map %zu bytes: %s", b->maplen,
		    strerror(errno));
		b->maplen = 0;
		return WD_ENOMEM;
	}
	/* Fail closed: plaintext in swappable memory could reach the disk. */
	if (mlock(p, b->maplen) != 0) {
		int saved = errno;

		getrlimit(RLIMIT_MEMLOCK, &rl);
		munmap(p, b->maplen);
		b->maplen = 0;
		sec_errf(err, errlen, "cannot lock %zu bytes of memory: %s "
		    "(RLIMIT_MEMLOCK is %llu bytes; raise it with ulimit -l or "
		    "LimitMEMLOCK=)", len, strerror(saved),
		    (unsigned long long)rl.rlim_cur);
		return WD_ELIMIT;
	}
	/* Keep it out of core dumps and out of a fork's address space. */
	(void)madvise(p, b->maplen, MADV_DONTDUMP);
	(void)madvise(p, b->maplen, MADV_DONTFORK);
	b->p = p;
	b->len = len;
	return WD_OK;
}

void
sec_buf_free(struct sec_buf *b)
{
	if (b->p == NULL)
		return;
	OPENSSL_cleanse(b->p, b->maplen);
	munlock(b->p, b->maplen);
	munmap(b->p, b->maplen);
	memset(b, 0, sizeof(*b));
}

struct sec_cache_ent {
	char name[SEC_NAME_MAX + 1];
	size_t off, len;
};

struct sec_cache {
	struct sec_buf region;		/* values packed in [0, used) */
	size_t used;
	size_t reserved;		/* bytes at used, not yet committed */
	struct sec_cache_ent *ents;
	size_t nents, entcap;
};

enum wd_err
sec_cache_new(size_t capacity, struct sec_cache **out, char *err,
    size_t errlen)
{
	struct sec_cache *c;
	enum wd_err e;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		sec_errf(err, errlen, "out of memory");
		return WD_ENOMEM;
	}
	if ((e = sec_buf_alloc(&c->region, capacity ? capacity : 1, err,
	    errlen)) != WD_OK) {
		free(c);
		return e;
	}
	*out = c;
	return WD_OK;
}

static struct sec_cache_ent *
find(const struct sec_cache *c, const char *name)
{
	for (size_t i = 0; i < c->nents; i++)
		if (strcmp(c->ents[i].name, name) == 0)
			return &c->ents[i];
	return NULL;
}

/* Take entry i's bytes out of the region: wipe, close the gap, wipe the
 * tail; a reservation after it moves down with the rest. */
static void
drop(struct sec_cache *c, size_t i)
{
	struct sec_cache_ent *en = &c->ents[i];
	size_t off = en->off, len = en->len;
	size_t after = c->used + c->reserved - (off + len);

	OPENSSL_cleanse(c->region.p + off, len);
	memmove(c->region.p + off, c->region.p + off + len, after);
	OPENSSL_cleanse(c->region.p + off + after, len);
	c->used -= len;
	for (size_t j = 0; j < c->nents; j++)
		if (c->ents[j].off > off)
			c->ents[j].off -= len;
	c->ents[i] = c->ents[--c->nents];
}

unsigned char *
sec_cache_reserve(struct sec_cache *c, size_t len)
{
	if (c->reserved != 0 || len > c->region.len - c->used)
		return NULL;
	c->reserved = len;
	return c->region.p + c->used;
}

void
sec_cache_abort(struct sec_cache *c)
{
	OPENSSL_cleanse(c->region.p + c->used, c->reserved);
	c->reserved = 0;
}

enum wd_err
sec_cache_commit(struct sec_cache *c, const char *name, size_t len)
{
	struct sec_cache_ent *en;

	if (len > c->reserved || strlen(name) > SEC_NAME_MAX) {
		sec_cache_abort(c);
		return WD_EINVAL;
	}
	if (c->nents == c->entcap) {
		size_t ncap = c->entcap ? c->entcap * 2 : 16;
		struct sec_cache_ent *ne = realloc(c->ents, ncap * sizeof(*ne));

		if (ne == NULL) {
			sec_cache_abort(c);
			return WD_ENOMEM;
		}
		c->ents = ne;
		c->entcap = ncap;
	}
	/* Only what was written is kept; the rest of the reservation goes. */
	OPENSSL_cleanse(c->region.p + c->used + len, c->reserved - len);
	c->reserved = len;
	en = find(c, name);
	if (en != NULL)
		drop(c, (size_t)(en - c->ents));
	en = &c->ents[c->nents++];
	snprintf(en->name, sizeof(en->name), "%s", name);
	en->off = c->used;
	en->len = len;
	c->used += len;
	c->reserved = 0;
	return WD_OK;
}

enum wd_err
sec_cache_put(struct sec_cache *c, const char *name,
    const unsigned char *value, size_t len)
{
	unsigned char *p;

	if (!sec_name_valid(name))
		return WD_EINVAL;
	if ((p = sec_cache_reserve(c, len)) == NULL)
		return WD_ELIMIT;
	memcpy(p, value, len);
	return sec_cache_commit(c, name, len);
}

const unsigned char *
sec_cache_get(const struct sec_cache *c, const char *name, size_t *len)
{
	const struct sec_cache_ent *en = find(c, name);

	*len = 0;
	if (en == NULL)
		return NULL;
	*len = en->len;
	return c->region.p + en->off;
}

bool
sec_cache_remove(struct sec_cache *c, const char *name)
{
	struct sec_cache_ent *en = find(c, name);

	if (en == NULL)
		return false;
	drop(c, (size_t)(en - c->ents));
	return true;
}

size_t
sec_cache_count(const struct sec_cache *c)
{
	return c->nents;
}

void
sec_cache_region(const struct sec_cache *c, const unsigned char **p,
    size_t *len)
{
	*p = c->region.p;
	*len = c->region.len;
}

void
sec_cache_free(struct sec_cache *c)
{
	if (c == NULL)
		return;
	sec_buf_free(&c->region);	/* wipes every page */
	free(c->ents);
	free(c);
}

enum wd_err
sec_harden_process(char *err, size_t errlen)
{
	struct rlimit none = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		sec_errf(err, errlen, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
		return WD_EIO;
	}
	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		sec_errf(err, errlen, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
		return WD_EIO;
	}
	return WD_OK;
}
