/*
 * json_mem.c - jansson's memory: small blocks kept per thread for reuse,
 * and every block wiped when jansson frees it.
 *
 * A request's tree is a few hundred small blocks (values, hash tables,
 * keys, strings) made and freed within one request.  glibc keeps only
 * seven freed blocks of a size per thread; the rest go back to its arena
 * bins and are merged and split again on the next request (about a tenth
 * of warden's CPU went to malloc's slow paths).  Here each thread keeps
 * up to JM_CLASS_BYTES of freed blocks per size class, taken without a
 * lock.  The blocks are glibc's own (malloc'd, sized by
 * malloc_usable_size): free() of one, as callers of json_dumps() do, is
 * still right, and so is a block that moves between threads.
 *
 * Trees hold request and answer text and, for some providers, tokens:
 * a block is cleared before it is kept or given back, so nothing of it
 * stays in freed memory.
 */
#include "gateway/gw_int.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define JM_QUANTUM 16
#define JM_CLASSES 32			/* blocks up to 512 bytes */
#define JM_CLASS_BYTES (32 * 1024)	/* kept per class and thread */

struct jm_block {
	struct jm_block *next;
};

struct jm_cache {
	struct jm_block *head[JM_CLASSES];
	unsigned n[JM_CLASSES];
	bool registered;
};

static __thread struct jm_cache cache;
static pthread_key_t jm_key;
static pthread_once_t jm_once = PTHREAD_ONCE_INIT;

/* A thread that ends gives its kept blocks back. */
static void
jm_drain(void *arg)
{
	struct jm_cache *c = arg;

	for (size_t i = 0; i < JM_CLASSES; i++)
		while (c->head[i] != NULL) {
			struct jm_block *b = c->head[i];

			c->head[i] = b->next;
			free(b);
		}
	memset(c->n, 0, sizeof(c->n));
}

static void
jm_key_make(void)
{
	(void)pthread_key_create(&jm_key, jm_drain);
}

static void *
jm_malloc(size_t n)
{
	size_t c = n == 0 ? 0 : (n - 1) / JM_QUANTUM;
	struct jm_block *b;

	if (c >= JM_CLASSES)
		return malloc(n);
	if ((b = cache.head[c]) != NULL) {
		cache.head[c] = b->next;
		cache.n[c]--;
		b->next = NULL;
		return b;
	}
	/* The whole class, so that the block serves any size of it later. */
	return malloc((c + 1) * JM_QUANTUM);
}

static void
jm_free(void *p)
{
	size_t u, c;

	if (p == NULL)
		return;
	u = malloc_usable_size(p);
	explicit_bzero(p, u);
	c = u / JM_QUANTUM;		/* a block of u serves class c - 1 */
	if (c == 0 || c > JM_CLASSES) {
		free(p);
		return;
	}
	c--;
	if (cache.n[c] >= JM_CLASS_BYTES / ((c + 1) * JM_QUANTUM)) {
		free(p);
		return;
	}
	if (!cache.registered) {
		cache.registered = true;
		(void)pthread_once(&jm_once, jm_key_make);
		(void)pthread_setspecific(jm_key, &cache);
	}
	((struct jm_block *)p)->next = cache.head[c];
	cache.head[c] = p;
	cache.n[c]++;
}

void
gw_json_mem_init(void)
{
#if defined(__SANITIZE_ADDRESS__)
	/* Under ASan, blocks kept for reuse would hide a use after free of
	 * a tree: jansson keeps malloc and free there. */
	(void)jm_malloc;
	(void)jm_free;
#else
	json_set_alloc_funcs(jm_malloc, jm_free);
#endif
}
