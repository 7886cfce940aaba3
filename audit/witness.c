/*
 * witness.c - `warden audit verify DIR --witness FILE`: a log against the
 * checkpoints a witness kept as they were made (one checkpoint line per
 * line, as struct aud_witness's send() handed them off the host).
 *
 * Each witnessed checkpoint must be signed by the auditor's key, must
 * stand in the log byte for byte at its seq, and the log's tree of that
 * size must have its root: then the log the host holds now extends what
 * left it (the consistency RFC 9162 proofs show, computed here from the
 * whole log).  A log cut or rewritten behind a witnessed checkpoint
 * contradicts it, counter or no counter.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <stdlib.h>
#include <string.h>

#define WITNESS_MAX_BYTES (256u << 20)

struct witnessed {
	uint64_t seq;			/* the checkpoint record's own seq */
	struct aud_tree_head th;
	char *line;
	size_t len;
	bool root_seen, line_seen;
};

static int
by_size(const void *a, const void *b)
{
	const struct witnessed *x = a, *y = b;

	return x->th.size < y->th.size ? -1 : x->th.size > y->th.size;
}

int
aud_verify_witness(const char *dir, const char *path,
    const struct aud_verify_opts *o, FILE *out)
{
	size_t len = 0, n = 0, cap = 0, nsegs = 0, next = 0;
	char *text = wd_slurp(path, WITNESS_MAX_BYTES, &len), err[300];
	char **segs = NULL;
	struct witnessed *v = NULL;
	struct aud_frontier fr = { 0 };
	struct aud_walk w;
	uint64_t seq = 0;
	int rc = AUD_VERIFIED;

	if (aud_walk_init(&w, o, err, sizeof(err)) != WD_OK) {
		fprintf(out, "%s\n", err);
		free(text);
		aud_walk_free(&w);
		return AUD_UNREADABLE;
	}
	if (text == NULL) {
		fprintf(out, "%s: cannot read\n", path);
		aud_walk_free(&w);
		return AUD_UNREADABLE;
	}
	/* 1. What the witness holds, each signed by the trusted key. */
	for (size_t off = 0; off < len && rc == AUD_VERIFIED; ) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - text) - off : len - off;
		struct witnessed e = { 0 };
		json_t *j = NULL;
		char msg[256];

		if (ll > 0) {
			if (!aud_cp_head(text + off, ll, &e.th, &j)) {
				fprintf(out, "INVALID: %s: a line is not a checkpoint\n",
				    path);
				rc = AUD_INVALID;
				break;
			}
			e.seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
			aud_tree_head_msg(msg, sizeof(msg), &e.th);
			if (w.trusted && (!aud_walk_key(&w, json_string_value(
			    json_object_get(j, "pubkey"))) || !aud_walk_sig(w.key, msg,
			    strlen(msg), json_string_value(json_object_get(j,
			    "signature"))))) {
				fprintf(out, "INVALID: %s: the checkpoint of seq %llu is not "
				    "signed by the trusted key\n", path,
				    (unsigned long long)e.seq);
				rc = AUD_INVALID;
			}
			json_decref(j);
			e.line = text + off;
			e.len = ll;
			if (n == cap) {
				struct witnessed *nv = realloc(v, (cap = cap ? cap * 2 :
				    64) * sizeof(*v));

				if (nv == NULL) {
					rc = AUD_UNREADABLE;
					break;
				}
				v = nv;
			}
			v[n++] = e;
		}
		off += ll + 1;
	}
	if (rc != AUD_VERIFIED)
		goto done;
	if (n > 0)
		qsort(v, n, sizeof(*v), by_size);
	/* 2. The log: each witnessed root at its size, each line at its seq. */
	segs = aud_segments(dir, &nsegs);
	for (size_t s = 0; s < nsegs && rc == AUD_VERIFIED; s++) {
		char p[1024];
		size_t tl = 0;
		char *seg;

		snprintf(p, sizeof(p), "%s/%s", dir, segs[s]);
		if ((seg = wd_slurp(p, SIZE_MAX, &tl)) == NULL) {
			fprintf(out, "%s: cannot read\n", p);
			rc = AUD_UNREADABLE;
			break;
		}
		for (size_t off = 0; off < tl && rc == AUD_VERIFIED; ) {
			char *nl = memchr(seg + off, '\n', tl - off), hash[65];
			size_t ll = nl ? (size_t)(nl - seg) - off : tl - off, clen;
			char *canon = aud_split_line(seg + off, ll, hash, &clen);
			unsigned char leaf[32], root[32];

			if (canon == NULL) {
				fprintf(out, "INVALID: %s: a line is not an audit record "
				    "(run 'warden audit verify')\n", p);
				rc = AUD_INVALID;
				break;
			}
			while (next < n && v[next].th.size == fr.size) {
				aud_frontier_root(&fr, root);
				if (!wd_ct_equal(root, v[next].th.root, 32)) {
					fprintf(out, "INVALID: %s: the log's tree of %llu "
					    "records is not the one the witness saw signed: "
					    "history was rewritten\n", dir,
					    (unsigned long long)fr.size);
					rc = AUD_INVALID;
				}
				v[next++].root_seen = true;
			}
			seq++;
			for (size_t i = 0; i < n; i++)
				if (v[i].seq == seq) {
					if (v[i].len != ll || memcmp(v[i].line, seg + off,
					    ll) != 0) {
						fprintf(out, "INVALID: %s: seq %llu is not the "
						    "checkpoint the witness holds\n", dir,
						    (unsigned long long)seq);
						rc = AUD_INVALID;
					}
					v[i].line_seen = true;
				}
			aud_leaf_hash(canon, clen, leaf);
			aud_frontier_push(&fr, leaf, NULL, NULL);
			free(canon);
			off += ll + 1;
		}
		free(seg);
	}
	for (; rc == AUD_VERIFIED && next < n && v[next].th.size == fr.size;
	    next++) {
		unsigned char root[32];

		aud_frontier_root(&fr, root);
		if (!wd_ct_equal(root, v[next].th.root, 32)) {
			fprintf(out, "INVALID: %s: the log's tree of %llu records is "
			    "not the one the witness saw signed\n", dir,
			    (unsigned long long)fr.size);
			rc = AUD_INVALID;
		}
		v[next].root_seen = true;
	}
	for (size_t i = 0; rc == AUD_VERIFIED && i < n; i++)
		if (!v[i].root_seen || !v[i].line_seen) {
			fprintf(out, "INVALID: %s: the log ends at seq %llu, but a "
			    "witness holds a checkpoint at seq %llu of a tree of %llu "
			    "records: the log was cut or rolled back\n", dir,
			    (unsigned long long)seq, (unsigned long long)v[i].seq,
			    (unsigned long long)v[i].th.size);
			rc = AUD_INVALID;
		}
	if (rc == AUD_VERIFIED) {
		fprintf(out, "%s: %zu witnessed checkpoint%s stand in the log and "
		    "its trees have their roots%s\n", w.trusted ? "OK" : "CONSISTENT",
		    n, n == 1 ? "" : "s", w.trusted ? "" : "; NOT AUTHENTICATED: "
		    "give --pubkey or --pin");
		if (!w.trusted)
			rc = AUD_UNAUTHENTICATED;
	}
done:
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	free(v);
	free(text);
	aud_walk_free(&w);
	return rc;
}
