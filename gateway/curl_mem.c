/*
 * curl_mem.c - libcurl's memory, wiped before it is given back.
 *
 * curl builds each provider request head (with "Authorization: Bearer
 * sk-...") in heap buffers of its own and frees them without clearing,
 * so freed chunks would keep the credential in unlocked memory long after
 * the transfer.  curl_global_init_mem() lets us hand it allocators that
 * clear every block, to its usable size, before free; realloc moves to a
 * new block and clears the old one, since glibc's realloc may leave the
 * old bytes behind when it moves.
 */
#include "gateway/gw_int.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	wd_wipe(p, malloc_usable_size(p));
	free(p);
}

static void *
wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wipe_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if ((q = malloc(n)) == NULL)
		return NULL;		/* p stays valid, as realloc's contract */
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static void *
plain_malloc(size_t n)
{
	return malloc(n);
}

static char *
plain_strdup(const char *s)
{
	return strdup(s);
}

static void *
plain_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

enum wd_err
gw_curl_global_init(void)
{
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, plain_malloc, wipe_free,
	    wipe_realloc, plain_strdup, plain_calloc) != CURLE_OK)
		return WD_ENOMEM;
	return WD_OK;
}
