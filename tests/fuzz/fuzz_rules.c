/*
 * fuzz_rules.c - the rules loader (policy/) on arbitrary files.  The rules
 * file is trusted more than a request, but a typo must never crash or hang
 * warden, and a file that loads must give a consistent snapshot.
 *
 * The input goes to one temp file per process (mode 0600, in /tmp),
 * rewritten for every input and removed at exit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/pol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[] = "/tmp/warden-fuzz-rules-XXXXXX";
static int fd = -1;
static FILE *devnull;

static void
cleanup(void)
{
	unlink(path);
}

static void
check_snapshot(const struct pol_snapshot *s)
{
	if (s->version[64] != '\0' || strlen(s->version) != 64)
		abort();
	for (size_t i = 0; i < s->nproviders; i++) {
		const struct pol_provider *p = &s->providers[i];

		/* A route has a country or a residency record (a global one
		 * may omit where it processes), and a kind with its auth. */
		if (p->id == NULL || p->base_url == NULL || p->credential == NULL ||
		    (strlen(p->country) != 2 && p->processing_text == NULL &&
		    p->deployment != POL_DEPLOY_GLOBAL) || p->kind == NULL ||
		    p->auth == NULL)
			abort();
		for (size_t m = 0; m < p->nmodels; m++)
			if (!pol_provider_serves(p, p->models[m]))
				abort();
	}
	for (size_t i = 0; i < s->ntenants; i++) {
		const struct pol_tenant *t = &s->tenants[i];

		if (t->id == NULL)
			abort();
		for (size_t r = 0; r < t->nroutes; r++)
			if (t->routes[r] < s->providers ||
			    t->routes[r] >= s->providers + s->nproviders)
				abort();
		/* Every key finds its tenant (keys are unique once loaded). */
		for (size_t k = 0; k < t->nkeys; k++)
			if (pol_find_key(s, t->keys[k]) != t)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pol_snapshot *snap = NULL;

	if (fd < 0) {
		fd = mkstemp(path);
		devnull = fopen("/dev/null", "w");
		if (fd < 0 || devnull == NULL || fchmod(fd, 0600) != 0)
			abort();
		atexit(cleanup);
	}
	if (ftruncate(fd, 0) != 0 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	if (pol_load(path, devnull, &snap) == WD_OK) {
		if (snap == NULL)
			abort();
		check_snapshot(snap);
		pol_snapshot_unref(snap);
	} else if (snap != NULL) {
		abort();
	}
	return 0;
}
