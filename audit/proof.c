/*
 * proof.c - `warden audit prove` and `warden audit verify-proof`: that one
 * record is in the tree a checkpoint signed (inclusion), and that a later
 * checkpoint's tree extends an earlier one's (consistency: the log only
 * grew), RFC 9162 section 2.1.
 *
 * A proof carries the lines it speaks of byte for byte (the record, the
 * checkpoints), so verify-proof recomputes the leaf and the signed tree
 * heads itself and needs nothing but the proof and the auditor's key.
 * prove reads the tree files (tiles.c), a few dozen hashes, and checks
 * what it made before printing it: stale tree files give an error, never
 * a proof.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PROOF_BYTES (64u << 20)

/* The tree head a checkpoint line signs; false if it is not a version 2
 * checkpoint.  *j: the record. */
bool
aud_cp_head(const char *line, size_t len, struct aud_tree_head *th, json_t **j)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon = aud_split_line(line, len, hash, &clen);
	json_t *r = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
	json_t *ctr = json_object_get(r, "counter");
	const char *root = json_string_value(json_object_get(r, "root"));
	bool ok;

	free(canon);
	memset(th, 0, sizeof(*th));
	ok = r != NULL && strcmp(json_string_value(json_object_get(r, "kind")) ?:
	    "", "checkpoint") == 0 &&
	    json_is_integer(json_object_get(r, "tree_size")) && root != NULL &&
	    wd_unhex(root, th->root, 32) == WD_OK &&
	    (json_is_integer(ctr) || json_is_null(ctr));
	if (ok) {
		th->size = (uint64_t)json_integer_value(json_object_get(r,
		    "tree_size"));
		th->time_us = (int64_t)json_integer_value(json_object_get(r,
		    "time_us"));
		th->interval_s = (int)json_integer_value(json_object_get(r,
		    "interval_s"));
		th->has_counter = json_is_integer(ctr);
		th->counter = (uint64_t)json_integer_value(ctr);
	}
	if (ok && j != NULL)
		*j = r;
	else
		json_decref(r);
	return ok;
}

static json_t *
path_json(const struct aud_proof_path *p)
{
	json_t *a = json_array();

	for (size_t i = 0; i < p->n; i++) {
		char hex[AUD_HASH_HEX + 1];

		wd_hex(p->h[i], 32, hex);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

static bool
path_parse(json_t *a, struct aud_proof_path *p)
{
	p->n = 0;
	if (!json_is_array(a) || json_array_size(a) > AUD_MAX_PATH)
		return false;
	for (size_t i = 0; i < json_array_size(a); i++) {
		const char *h = json_string_value(json_array_get(a, i));

		if (h == NULL || wd_unhex(h, p->h[p->n++], 32) != WD_OK)
			return false;
	}
	return true;
}

/* The checkpoint line with record seq want (0: the newest). */
static char *
find_checkpoint(const char *dir, uint64_t want, size_t *len, FILE *msgs)
{
	struct aud_cp_entry *v = NULL;
	size_t n = 0;
	char *line = NULL;

	aud_tree_checkpoints(dir, &v, &n);
	for (size_t i = n; i > 0 && line == NULL; i--) {
		if (want != 0 && v[i - 1].seq != want)
			continue;
		line = aud_read_line_at(dir, v[i - 1].segno, v[i - 1].offset, len);
		if (line == NULL)
			break;
	}
	free(v);
	if (line == NULL)
		fprintf(msgs, "%s: no checkpoint%s%llu in the log's index (a log "
		    "warden has opened has one per checkpoint)\n", dir,
		    want ? " at seq " : "", (unsigned long long)want);
	return line;
}

/* The line of record seq: from the nearest checkpoint before it. */
static char *
find_record(const char *dir, uint64_t seq, size_t *len)
{
	struct aud_cp_entry *v = NULL, at = { 0, 0, 0 };
	size_t n = 0, cap = 0;
	char *line = NULL, path[600];
	ssize_t got;
	FILE *f = NULL;

	aud_tree_checkpoints(dir, &v, &n);
	for (size_t i = 0; i < n && v[i].seq <= seq; i++)
		at = v[i];
	free(v);
	if (at.seq == 0) {
		size_t nsegs;
		char **segs = aud_segments(dir, &nsegs);
		unsigned long long no = 0;

		if (nsegs > 0)
			sscanf(segs[0], "audit-%06llu", &no);
		for (size_t i = 0; i < nsegs; i++)
			free(segs[i]);
		free(segs);
		at = (struct aud_cp_entry){ 1, no, 0 };
	}
	for (uint64_t cur = at.seq, segno = at.segno; ; segno++) {
		snprintf(path, sizeof(path), "%s/" AUD_SEGMENT_FMT, dir,
		    (unsigned long long)segno);
		if ((f = fopen(path, "r")) == NULL || fseeko(f,
		    (off_t)(segno == at.segno ? at.offset : 0), SEEK_SET) != 0)
			break;
		while ((got = getline(&line, &cap, f)) > 0) {
			if (cur == seq) {
				fclose(f);
				*len = (size_t)got - (line[got - 1] == '\n');
				line[*len] = '\0';
				return line;
			}
			cur++;
		}
		fclose(f);
		f = NULL;
	}
	if (f != NULL)
		fclose(f);
	free(line);
	return NULL;
}

static json_t *
line_json(const char *line, size_t len, uint64_t *seq)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon = aud_split_line(line, len, hash, &clen);
	json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;

	if (j != NULL && seq != NULL)
		*seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	free(canon);
	return j;
}

static int
print_proof(json_t *p, FILE *out)
{
	char *text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);

	if (text == NULL)
		return AUD_UNREADABLE;
	fprintf(out, "%s\n", text);
	free(text);
	return AUD_VERIFIED;
}

int
aud_prove_inclusion(const char *dir, uint64_t seq, uint64_t cp_seq,
    FILE *out, FILE *msgs)
{
	struct aud_tree_reader r;
	struct aud_nodes nodes = { aud_tree_reader_get, &r };
	struct aud_tree_head th;
	struct aud_proof_path *path = calloc(1, sizeof(*path));
	size_t cplen = 0, rlen = 0, clen;
	char *cp = NULL, *rec = NULL, *canon = NULL, hash[AUD_HASH_HEX + 1];
	unsigned char leaf[32];
	uint64_t got = 0;
	json_t *rj = NULL, *p;
	int rc = AUD_UNREADABLE;

	if (path == NULL)
		return AUD_UNREADABLE;
	if (aud_tree_reader_open(&r, dir) != WD_OK) {
		fprintf(msgs, "%s: no tree files (" AUD_TREE_DIR "/): open the log "
		    "with warden once to build them\n", dir);
		aud_tree_reader_close(&r);
		free(path);
		return AUD_UNREADABLE;
	}
	if ((cp = find_checkpoint(dir, cp_seq, &cplen, msgs)) == NULL)
		goto out;
	if (!aud_cp_head(cp, cplen, &th, NULL)) {
		fprintf(msgs, "checkpoint at seq %llu is not a version 2 checkpoint "
		    "(no tree head to prove against)\n", (unsigned long long)cp_seq);
		goto out;
	}
	if (seq == 0 || seq > th.size) {
		fprintf(msgs, "record %llu is not in the tree of %llu records that "
		    "checkpoint signs (give a later --checkpoint)\n",
		    (unsigned long long)seq, (unsigned long long)th.size);
		rc = AUD_INVALID;
		goto out;
	}
	if ((rec = find_record(dir, seq, &rlen)) == NULL ||
	    (rj = line_json(rec, rlen, &got)) == NULL || got != seq ||
	    (canon = aud_split_line(rec, rlen, hash, &clen)) == NULL) {
		fprintf(msgs, "%s: cannot find record %llu\n", dir,
		    (unsigned long long)seq);
		goto out;
	}
	aud_leaf_hash(canon, clen, leaf);
	if (aud_inclusion_path(&nodes, seq - 1, th.size, path) != WD_OK ||
	    !aud_verify_inclusion(seq - 1, th.size, leaf, path, th.root)) {
		fprintf(msgs, "%s: the tree files do not give a proof that holds "
		    "(stale or damaged): remove %s/" AUD_TREE_DIR " and open the log "
		    "with warden to rebuild them, then run 'warden audit verify'\n",
		    dir, dir);
		rc = AUD_INVALID;
		goto out;
	}
	p = json_pack("{s:s,s:i,s:I,s:I,s:s,s:s,s:o}", "kind", "inclusion_proof",
	    "format", 2, "seq", (json_int_t)seq, "tree_size", (json_int_t)th.size,
	    "record", rec, "checkpoint", cp, "path", path_json(path));
	rc = print_proof(p, out);
	json_decref(p);
out:
	aud_tree_reader_close(&r);
	json_decref(rj);
	free(canon);
	free(rec);
	free(cp);
	free(path);
	return rc;
}

int
aud_prove_consistency(const char *dir, uint64_t a, uint64_t b, FILE *out,
    FILE *msgs)
{
	struct aud_tree_reader r;
	struct aud_nodes nodes = { aud_tree_reader_get, &r };
	struct aud_tree_head ha, hb;
	struct aud_proof_path *path = calloc(1, sizeof(*path));
	size_t la = 0, lb = 0;
	char *ca = NULL, *cb = NULL;
	json_t *p;
	int rc = AUD_UNREADABLE;

	if (path == NULL)
		return AUD_UNREADABLE;
	if (aud_tree_reader_open(&r, dir) != WD_OK) {
		fprintf(msgs, "%s: no tree files (" AUD_TREE_DIR "/)\n", dir);
		aud_tree_reader_close(&r);
		free(path);
		return AUD_UNREADABLE;
	}
	if (a == 0 || b == 0 || (ca = find_checkpoint(dir, a, &la, msgs)) == NULL ||
	    (cb = find_checkpoint(dir, b, &lb, msgs)) == NULL)
		goto out;
	if (!aud_cp_head(ca, la, &ha, NULL) || !aud_cp_head(cb, lb, &hb, NULL) ||
	    ha.size > hb.size) {
		fprintf(msgs, "checkpoints %llu and %llu are not version 2 "
		    "checkpoints in order\n", (unsigned long long)a,
		    (unsigned long long)b);
		rc = AUD_INVALID;
		goto out;
	}
	if (aud_consistency_path(&nodes, ha.size, hb.size, path) != WD_OK ||
	    !aud_verify_consistency(ha.size, hb.size, ha.root, hb.root, path)) {
		fprintf(msgs, "%s: the tree files do not give a consistency proof "
		    "that holds: the log did not only grow, or the tree files are "
		    "stale (run 'warden audit verify')\n", dir);
		rc = AUD_INVALID;
		goto out;
	}
	p = json_pack("{s:s,s:i,s:s,s:s,s:o}", "kind", "consistency_proof",
	    "format", 2, "first", ca, "second", cb, "path", path_json(path));
	rc = print_proof(p, out);
	json_decref(p);
out:
	aud_tree_reader_close(&r);
	free(ca);
	free(cb);
	free(path);
	return rc;
}

/* A checkpoint of a proof: its head, signed by the trusted key? */
static int
check_head(struct aud_walk *w, const char *line, struct aud_tree_head *th,
    FILE *out)
{
	json_t *j = NULL;
	char msg[256];
	bool ok;

	if (line == NULL || !aud_cp_head(line, strlen(line), th, &j)) {
		fprintf(out, "INVALID: the proof's checkpoint is not a version 2 "
		    "checkpoint record\n");
		return AUD_INVALID;
	}
	if (!w->trusted) {
		json_decref(j);
		return AUD_UNAUTHENTICATED;
	}
	ok = aud_walk_key(w, json_string_value(json_object_get(j, "pubkey")));
	aud_tree_head_msg(msg, sizeof(msg), th);
	ok = ok && aud_walk_sig(w->key, msg, strlen(msg),
	    json_string_value(json_object_get(j, "signature")));
	json_decref(j);
	if (!ok) {
		fprintf(out, "INVALID: the checkpoint's signature does not verify "
		    "with the trusted key\n");
		return AUD_INVALID;
	}
	return AUD_VERIFIED;
}

int
aud_verify_proof(const char *path, const struct aud_verify_opts *o, FILE *out)
{
	size_t len = 0;
	char *text = wd_slurp(path, MAX_PROOF_BYTES, &len), err[300];
	json_t *p = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) :
	    NULL;
	const char *kind = json_string_value(json_object_get(p, "kind"));
	struct aud_proof_path *pp = calloc(1, sizeof(*pp));
	struct aud_walk w;
	struct aud_tree_head a, b;
	int rc = AUD_UNREADABLE, ha;

	if (aud_walk_init(&w, o, err, sizeof(err)) != WD_OK) {
		fprintf(out, "%s\n", err);
		goto out;
	}
	if (pp == NULL || p == NULL || kind == NULL ||
	    json_integer_value(json_object_get(p, "format")) != 2) {
		fprintf(out, "%s: not a warden audit proof\n", path);
		goto out;
	}
	if (!path_parse(json_object_get(p, "path"), pp)) {
		fprintf(out, "INVALID: %s: malformed path\n", path);
		rc = AUD_INVALID;
		goto out;
	}
	if (strcmp(kind, "inclusion_proof") == 0) {
		const char *rec = json_string_value(json_object_get(p, "record"));
		char hash[AUD_HASH_HEX + 1], *canon;
		size_t clen;
		unsigned char leaf[32];
		uint64_t seq = 0;
		json_t *rj = rec ? line_json(rec, strlen(rec), &seq) : NULL;
		const char *prev = json_string_value(json_object_get(rj, "prev"));
		bool good = rj != NULL && prev != NULL &&
		    strlen(prev) == AUD_HASH_HEX && (canon = aud_split_line(rec,
		    strlen(rec), hash, &clen)) != NULL;

		if (good && !aud_check_line(canon, clen, prev, hash)) {
			free(canon);
			good = false;
		}
		json_decref(rj);
		if (!good) {
			fprintf(out, "INVALID: %s: the record is not an audit record "
			    "whose hash holds\n", path);
			rc = AUD_INVALID;
			goto out;
		}
		aud_leaf_hash(canon, clen, leaf);
		free(canon);
		if ((ha = check_head(&w, json_string_value(json_object_get(p,
		    "checkpoint")), &a, out)) == AUD_INVALID) {
			rc = AUD_INVALID;
			goto out;
		}
		if (seq == 0 || !aud_verify_inclusion(seq - 1, a.size, leaf, pp,
		    a.root)) {
			fprintf(out, "INVALID: %s: record %llu is not in the tree of "
			    "%llu records the checkpoint signs\n", path,
			    (unsigned long long)seq, (unsigned long long)a.size);
			rc = AUD_INVALID;
			goto out;
		}
		fprintf(out, "%s: record %llu is in the tree of %llu records%s\n",
		    ha == AUD_VERIFIED ? "OK" : "CONSISTENT", (unsigned long long)seq,
		    (unsigned long long)a.size, ha == AUD_VERIFIED ? " signed by the "
		    "trusted key" : "; NOT AUTHENTICATED: give --pubkey or --pin");
		rc = ha;
	} else if (strcmp(kind, "consistency_proof") == 0) {
		int hb;

		ha = check_head(&w, json_string_value(json_object_get(p, "first")),
		    &a, out);
		hb = ha == AUD_INVALID ? AUD_INVALID : check_head(&w,
		    json_string_value(json_object_get(p, "second")), &b, out);
		if (ha == AUD_INVALID || hb == AUD_INVALID) {
			rc = AUD_INVALID;
			goto out;
		}
		if (!aud_verify_consistency(a.size, b.size, a.root, b.root, pp)) {
			fprintf(out, "INVALID: %s: the tree of %llu records is not a "
			    "prefix of the tree of %llu: history was rewritten\n", path,
			    (unsigned long long)a.size, (unsigned long long)b.size);
			rc = AUD_INVALID;
			goto out;
		}
		fprintf(out, "%s: the tree of %llu records extends the tree of %llu"
		    "%s\n", ha == AUD_VERIFIED ? "OK" : "CONSISTENT",
		    (unsigned long long)b.size, (unsigned long long)a.size,
		    ha == AUD_VERIFIED ? ", both signed by the trusted key" :
		    "; NOT AUTHENTICATED: give --pubkey or --pin");
		rc = ha;
	} else {
		fprintf(out, "%s: not a warden audit proof\n", path);
	}
out:
	aud_walk_free(&w);
	json_decref(p);
	free(pp);
	free(text);
	return rc;
}
