/*
 * verify.c - `warden audit verify DIR`.
 *
 * Reads every segment in order and walks every line (walk.c): that it is
 * one of ours (the hash suffix), that its hash is SHA-256(prev || C), that
 * prev is the previous line's hash and seq the previous seq + 1; per
 * checkpoint, that the tree head it signs is the Merkle tree of the
 * records before it and that the auditor's key signed it.  It names the
 * first bad record.  Then: what no checkpoint covers is not authenticated,
 * and if it is older than the log's checkpoint interval allows, a
 * checkpoint was removed: invalid.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* The message goes into res->why and, if out is given, is printed. */
static void
say(FILE *out, struct aud_verify_result *res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
say(FILE *out, struct aud_verify_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	if (out != NULL)
		fputs(res->why, out);
}

/* The trusted key's fingerprint, as --pin takes it. */
static void
trusted_fingerprint(const struct aud_verify_opts *o,
    const struct aud_walk *w, char out[AUD_HASH_HEX + 1])
{
	size_t len;
	char *pem;

	out[0] = '\0';
	if (o == NULL)
		return;
	if (o->pubkey_pem_path != NULL) {
		pem = wd_slurp(o->pubkey_pem_path, 1u << 20, &len);
		if (pem == NULL || aud_key_fingerprint(pem, len, out) != WD_OK)
			out[0] = '\0';
		free(pem);
	} else if (o->pin != NULL && w->pin[0] != '\0') {
		memcpy(out, w->pin, AUD_HASH_HEX + 1);
	}
}

int
aud_verify_dir(const char *dir, const struct aud_verify_opts *o, FILE *out)
{
	struct aud_verify_result res;

	return aud_verify_dir_result(dir, o, out, &res);
}

int
aud_verify_dir_result(const char *dir, const struct aud_verify_opts *o,
    FILE *out, struct aud_verify_result *res)
{
	struct aud_walk w;
	size_t nsegs = 0;
	char **segs = NULL, err[300];
	bool tty = o->progress && isatty(2);
	int64_t now = o->now_us ? o->now_us : (int64_t)wd_wall_us();
	uint64_t unc, signed_before;
	int rc = AUD_VERIFIED;

	memset(res, 0, sizeof(*res));
	if (aud_walk_init(&w, o, err, sizeof(err)) != WD_OK) {
		say(out, res, "%s\n", err);
		rc = AUD_UNREADABLE;
		goto done;
	}
	trusted_fingerprint(o, &w, res->fingerprint);
	segs = aud_segments(dir, &nsegs);
	res->segments = nsegs;
	if (nsegs == 0) {
		say(out, res, "%s: no audit segments\n", dir);
		rc = AUD_UNREADABLE;
		goto done;
	}
	for (size_t s = 0; s < nsegs && rc == AUD_VERIFIED; s++) {
		char path[1024];
		size_t len = 0, lineno = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
		text = wd_slurp(path, SIZE_MAX, &len);
		if (text == NULL) {
			say(out, res, "%s: cannot read\n", path);
			rc = AUD_UNREADABLE;
			break;
		}
		for (size_t off = 0; off < len; ) {
			char *nl = memchr(text + off, '\n', len - off);
			size_t ll = nl ? (size_t)(nl - text) - off : len - off;

			lineno++;
			if (nl == NULL) {
				say(out, res, "INVALID: %s:%zu: torn last line (no "
				    "newline)\n", path, lineno);
				rc = AUD_INVALID;
				break;
			}
			signed_before = w.signed_cps;
			if (!aud_walk_line(&w, text + off, ll, NULL)) {
				say(out, res, "INVALID: %s:%zu: %s\n", path, lineno,
				    w.why);
				rc = AUD_INVALID;
				break;
			}
			/* The checkpoint record whose tree head the key signed. */
			if (w.signed_cps != signed_before)
				res->signed_seq = w.seq;
			if (tty && w.records % 65536 == 0)
				fprintf(stderr, "\rverifying: %llu records",
				    (unsigned long long)w.records);
			off += ll + 1;
		}
		free(text);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	res->records = w.records;
	res->last_seq = w.seq;
	res->checkpoints = w.checkpoints;
	res->signed_checkpoints = w.signed_cps;
	res->covered = w.covered;
	res->has_counter = w.has_counter;
	res->counter = w.counter;
	if (rc != AUD_VERIFIED)
		goto done;
	unc = aud_walk_uncovered(&w);
	res->uncovered = unc;
	if (o->has_tpm_counter && (!w.has_counter || w.counter != o->tpm_counter)) {
		say(out, res, "INVALID: %s: the last checkpoint carries counter "
		    "%s%llu but the TPM's is %llu: the log was rolled back (its "
		    "newest records removed) or is not this TPM's\n", dir,
		    w.has_counter ? "" : "none/", (unsigned long long)w.counter,
		    (unsigned long long)o->tpm_counter);
		rc = AUD_INVALID;
		goto done;
	}
	if (w.trusted && aud_walk_stale(&w, now)) {
		say(out, res, "INVALID: %s: %llu record%s after seq %llu no "
		    "checkpoint covers, the oldest from %s, longer ago than the "
		    "checkpoint interval allows: checkpoints were removed\n", dir,
		    (unsigned long long)unc, unc == 1 ? "" : "s",
		    (unsigned long long)w.covered, w.uncov_ts);
		rc = AUD_INVALID;
		goto done;
	}
	{
		char head[256];

		snprintf(head, sizeof(head), "%s: %llu records in %zu segment%s, "
		    "last seq %llu, %llu checkpoint%s",
		    !w.trusted || unc > 0 ? "CONSISTENT" : "OK",
		    (unsigned long long)w.records, nsegs, nsegs == 1 ? "" : "s",
		    (unsigned long long)w.seq, (unsigned long long)w.checkpoints,
		    w.checkpoints == 1 ? "" : "s");
		if (!w.trusted) {
			say(out, res, "%s; NOT AUTHENTICATED: give the key you "
			    "trust (--pubkey PEM or --pin SHA256)\n", head);
			rc = AUD_UNAUTHENTICATED;
		} else if (unc > 0) {
			say(out, res, "%s verified with the trusted key; NOT "
			    "AUTHENTICATED: %llu record%s after the tree of %llu no "
			    "checkpoint covers yet\n", head, (unsigned long long)unc,
			    unc == 1 ? "" : "s", (unsigned long long)w.covered);
			rc = AUD_UNAUTHENTICATED;
		} else {
			say(out, res, "%s verified with the trusted key; every "
			    "record is covered by a signed tree head\n", head);
		}
	}
done:
	res->status = rc;
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	aud_walk_free(&w);
	return rc;
}

/* RFC 3339 in UTC ("Z"), with or without fractions, to microseconds. */
int64_t
aud_parse_ts(const char *ts)
{
	struct tm tm = { 0 };
	long us = 0;
	char frac[8] = "";

	if (ts == NULL || sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
	    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	if (strlen(ts) > 20 && ts[19] == '.' && sscanf(ts + 20, "%6[0-9]", frac) == 1) {
		us = strtol(frac, NULL, 10);
		for (size_t i = strlen(frac); i < 6; i++)
			us *= 10;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + us;
}

