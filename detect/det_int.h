/*
 * det_int.h - private to detect/: the compiled database as the scanner
 * sees it.
 */
#ifndef DET_INT_H
#define DET_INT_H

#include <hs/hs.h>
#include <stdatomic.h>

#include "detect/det.h"

/* What an expression's match means. */
struct det_expr {
	uint32_t det;			/* detector index in the database */
	int builtin;			/* enum det_builtin, or -1 */
};

struct det_db {
	hs_database_t *hs;
	size_t n;			/* detectors */
	char *names[DET_MAX];
	int builtin[DET_MAX];		/* enum det_builtin, or -1 */
	struct det_expr *expr;		/* by Hyperscan expression id */
	size_t nexpr;
	size_t stream_bytes;		/* hs_stream_size() */
	size_t budget;			/* bytes; 0: none */
	uint64_t serial;		/* unique per database, never reused */
	_Atomic size_t *used;		/* owned: scanners' reservations */
};

/* Built-in expressions (patterns.c). */
struct det_builtin_expr {
	int det;			/* enum det_builtin */
	const char *re;
};
extern const struct det_builtin_expr det_builtin_exprs[];
extern const size_t det_nbuiltin_exprs;

/* Is c part of what detector b matches (a byte before or after it that
 * is would continue the match)? */
bool det_body_byte(int b, unsigned char c);
bool det_cont_byte(int b, unsigned char c);
/* The longest match of built-in b that is validated (at most
 * DET_WINDOW). */
size_t det_max_len(int b);
/* The checksum or format rule of built-in b over its candidate text. */
bool det_validate(int b, const char *p, size_t n);

#endif /* DET_INT_H */
