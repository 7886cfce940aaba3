/*
 * db.c - the detectors of one rules snapshot compiled into one Hyperscan
 * streaming database: built-ins by their expressions (patterns.c), the
 * rules' own patterns as written.  Start of match is tracked (leftmost)
 * only for the rules' patterns: the scanner reads a built-in's start back
 * from its window, and Hyperscan is several times faster without it.
 */
#include "detect/det_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
det_db_free(struct det_db *db)
{
	if (db == NULL)
		return;
	hs_free_database(db->hs);
	free((void *)db->used);
	for (size_t i = 0; i < db->n; i++)
		free(db->names[i]);
	free(db->expr);
	free(db);
}

size_t
det_db_count(const struct det_db *db)
{
	return db != NULL ? db->n : 0;
}

const char *
det_db_name(const struct det_db *db, size_t i)
{
	return i < db->n ? db->names[i] : NULL;
}

void
det_db_set_budget(struct det_db *db, size_t bytes)
{
	db->budget = bytes;
}

size_t
det_db_stream_bytes(const struct det_db *db)
{
	return db->stream_bytes;
}

enum wd_err
det_db_compile(const struct det_spec *specs, size_t n, struct det_db **out,
    char *err, size_t errlen, size_t *bad)
{
	struct det_db *db = NULL;
	const char **re = NULL;
	unsigned *flags = NULL, *ids = NULL;
	hs_compile_error_t *cerr = NULL;
	enum wd_err rc = WD_ENOMEM;
	size_t nexpr = 0, cap;

	*out = NULL;
	*bad = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (n == 0 || n > DET_MAX) {
		snprintf(err, errlen, "%zu detectors (1 to %d)", n, DET_MAX);
		return WD_ECONFIG;
	}
	cap = n + det_nbuiltin_exprs;
	db = calloc(1, sizeof(*db));
	re = calloc(cap, sizeof(*re));
	flags = calloc(cap, sizeof(*flags));
	ids = calloc(cap, sizeof(*ids));
	if (db == NULL || re == NULL || flags == NULL || ids == NULL ||
	    (db->used = calloc(1, sizeof(*db->used))) == NULL ||
	    (db->expr = calloc(cap, sizeof(*db->expr))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((db->names[i] = strdup(specs[i].id)) == NULL)
			goto out;
		db->n++;
		db->builtin[i] = specs[i].builtin;
		if (specs[i].builtin < 0) {
			re[nexpr] = specs[i].regex;
			db->expr[nexpr] = (struct det_expr){ (uint32_t)i, -1 };
			nexpr++;
			continue;
		}
		for (size_t e = 0; e < det_nbuiltin_exprs; e++) {
			if (det_builtin_exprs[e].det != specs[i].builtin)
				continue;
			re[nexpr] = det_builtin_exprs[e].re;
			db->expr[nexpr] = (struct det_expr){ (uint32_t)i,
			    specs[i].builtin };
			nexpr++;
		}
	}
	for (size_t e = 0; e < nexpr; e++) {
		flags[e] = db->expr[e].builtin < 0 ? HS_FLAG_SOM_LEFTMOST : 0;
		ids[e] = (unsigned)e;
	}
	db->nexpr = nexpr;
	if (hs_compile_multi(re, flags, ids, (unsigned)nexpr, HS_MODE_STREAM |
	    HS_MODE_SOM_HORIZON_LARGE, NULL, &db->hs, &cerr) != HS_SUCCESS) {
		/* Hyperscan names the expression it refused (or -1). */
		if (cerr != NULL && cerr->expression >= 0 &&
		    (size_t)cerr->expression < nexpr)
			*bad = db->expr[cerr->expression].det;
		snprintf(err, errlen, "%s", cerr != NULL && cerr->message ?
		    cerr->message : "cannot compile");
		rc = WD_ECONFIG;
		db->hs = NULL;
		goto out;
	}
	if (hs_stream_size(db->hs, &db->stream_bytes) != HS_SUCCESS) {
		snprintf(err, errlen, "cannot size the stream state");
		rc = WD_ECONFIG;
		goto out;
	}
	{
		static atomic_uint_fast64_t serials;

		db->serial = atomic_fetch_add(&serials, 1) + 1;
	}
	*out = db;
	db = NULL;
	rc = WD_OK;
out:
	if (cerr != NULL)
		hs_free_compile_error(cerr);
	det_db_free(db);
	free(re);
	free(flags);
	free(ids);
	return rc;
}
