/*
 * ut_rules.c - helpers for the unit tests that load rules files
 * (test_policy.c, test_tools.c, test_openai.c); declared in suites.h.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/pol.h"
#include "tests/unit/suites.h"

char *
ut_write_rules(const char *text, unsigned mode)
{
	char *path = strdup("/tmp/warden-unit-XXXXXX");
	size_t len = strlen(text), off = 0;
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		ck_assert_msg(n > 0, "write %s: %s", path, strerror(errno));
		off += (size_t)n;
	}
	ck_assert_int_eq(fchmod(fd, (mode_t)mode), 0);
	close(fd);
	return path;
}

void
ut_load_path(struct ut_ld *l)
{
	FILE *f = open_memstream(&l->errs, &l->errlen);

	ck_assert_ptr_nonnull(f);
	l->snap = (struct pol_snapshot *)(uintptr_t)1;	/* must be overwritten */
	l->rc = pol_load(l->path, f, &l->snap);
	fclose(f);
	if (l->rc != WD_OK)
		ck_assert_msg(l->snap == NULL, "snapshot set on failure");
}

void
ut_load_text(struct ut_ld *l, const char *text, unsigned mode)
{
	memset(l, 0, sizeof(*l));
	l->path = ut_write_rules(text, mode);
	ut_load_path(l);
}

void
ut_ld_done(struct ut_ld *l)
{
	if (l->path != NULL)
		unlink(l->path);
	free(l->path);
	free(l->errs);
	pol_snapshot_unref(l->snap);
	memset(l, 0, sizeof(*l));
}

char *
ut_expand(const char *tmpl, const char *path)
{
	size_t n = 1, plen = strlen(path);
	char *out, *o;

	for (const char *t = tmpl; *t != '\0'; t++)
		n += *t == '@' ? plen : 1;
	out = o = malloc(n);
	ck_assert_ptr_nonnull(out);
	for (const char *t = tmpl; *t != '\0'; t++) {
		if (*t == '@') {
			memcpy(o, path, plen);
			o += plen;
		} else {
			*o++ = *t;
		}
	}
	*o = '\0';
	return out;
}

