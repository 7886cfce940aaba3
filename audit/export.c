/*
 * export.c - `warden audit export` and `warden audit verify-export`.
 *
 * An export is a file an auditor checks alone: a manifest (what was asked
 * for, the range, the counts, the seqs given in full, where the chain and
 * the tree stand before the first row, the tree's root after the last,
 * and the SHA-256 of the rows), signed with the audit key when the export
 * is made; then every record of the range in order, in full if it matches
 * the filters (checkpoints always do) and as a stub otherwise.  A stub
 * {seq, prev, leaf, hash} discloses nothing of its record but its place:
 * the chain links through it and the Merkle tree counts its leaf, so an
 * edit of any full record shows against a signed root even when a stub
 * follows it.  After the range, stubs run on to the first checkpoint that
 * covers it, so the range is signed as it was written.
 *
 * verify-export trusts only the auditor's key: the manifest's signature,
 * the rows' digest, every row against the manifest's list of full seqs
 * and filters, every CSV column against the record it shows, the chain,
 * each checkpoint's tree head, and the final root.
 */
#include "audit/aud_int.h"
#include "audit/walk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define EXPORT_MSG_PREFIX "warden-audit-export/2\n"
#define CSV_COLUMNS "seq,ts,kind,tenant,verdict,route,hash,record"

static bool
match_filters(const char *tenant, const char *verdict, json_t *j)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));

	/* Checkpoints carry no tenant data: always in full. */
	if (kind != NULL && strcmp(kind, "checkpoint") == 0)
		return true;
	if (tenant != NULL) {
		const char *t = json_string_value(json_object_get(j, "tenant"));

		if (t == NULL || strcmp(t, tenant) != 0)
			return false;
	}
	if (verdict != NULL) {
		const char *v = json_string_value(json_object_get(j, "verdict"));

		if (v == NULL || strcmp(v, verdict) != 0)
			return false;
	}
	return true;
}

static void
csv_field(FILE *f, const char *s, size_t len, bool last)
{
	fputc('"', f);
	for (size_t i = 0; s != NULL && i < len; i++) {
		if (s[i] == '"')
			fputc('"', f);
		fputc(s[i], f);
	}
	fputc('"', f);
	fputc(last ? '\n' : ',', f);
}

static void
csv_str(FILE *f, const char *s)
{
	csv_field(f, s, s ? strlen(s) : 0, false);
}

/* A CSV column's value for a record: its string, or empty. */
static const char *
col(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key)) ?: "";
}

static const char *const csv_keys[] = { "ts", "kind", "tenant", "verdict",
	"route" };

static void
write_row(FILE *f, bool csv, json_t *j, const char *line, size_t len,
    uint64_t seq, const char *hash)
{
	char num[32];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
	if (!csv) {
		fwrite(line, 1, len, f);
		fputc('\n', f);
		return;
	}
	csv_str(f, num);
	for (size_t i = 0; i < 5; i++)
		csv_str(f, j != NULL ? col(j, csv_keys[i]) : i == 1 ? "stub" : "");
	csv_str(f, hash);
	csv_field(f, line, len, true);
}

static json_t *
full_ranges_add(json_t *ranges, uint64_t seq)
{
	json_t *last = json_array_get(ranges, json_array_size(ranges) - 1);

	if (last != NULL && (uint64_t)json_integer_value(json_array_get(last, 1))
	    + 1 == seq)
		json_array_set_new(last, 1, json_integer((json_int_t)seq));
	else
		json_array_append_new(ranges, json_pack("[I,I]", (json_int_t)seq,
		    (json_int_t)seq));
	return ranges;
}

static json_t *
frontier_json(const struct aud_frontier *f)
{
	json_t *a = json_array();

	for (unsigned k = AUD_MAX_LEVELS; k-- > 0; )
		if ((f->size >> k) & 1) {
			char hex[AUD_HASH_HEX + 1];

			wd_hex(f->node[k], 32, hex);
			json_array_append_new(a, json_string(hex));
		}
	return a;
}

static bool
frontier_parse(json_t *a, uint64_t size, struct aud_frontier *f)
{
	size_t i = 0;

	memset(f, 0, sizeof(*f));
	if (!json_is_array(a))
		return false;
	for (unsigned k = AUD_MAX_LEVELS; k-- > 0; )
		if ((size >> k) & 1) {
			const char *h = json_string_value(json_array_get(a, i++));

			if (h == NULL || wd_unhex(h, f->node[k], 32) != WD_OK)
				return false;
		}
	f->size = size;
	return i == json_array_size(a);
}

enum estate { BEFORE, IN, EXTEND, DONE };

int
aud_export(const char *dir, const struct aud_export_opts *o,
    const char *outpath, FILE *msgs)
{
	bool csv = strcmp(o->format, "csv") == 0;
	char prev[AUD_HASH_HEX + 1], anchor[AUD_HASH_HEX + 1];
	char roothex[AUD_HASH_HEX + 1], bodyhex[AUD_HASH_HEX + 1];
	size_t nsegs = 0, full = 0, stubs = 0, rowslen = 0;
	char **segs = NULL, *rows = NULL, *m = NULL, b64[256] = "";
	struct aud_frontier fr = { 0 }, base = { 0 };
	uint64_t first_seq = 0, last_seq = 0, range_last = 0;
	enum estate st = BEFORE;
	json_t *ranges = json_array(), *man = NULL, *sig;
	unsigned char root[32], body_d[32];
	FILE *rf = NULL, *f = NULL;
	int rc = AUD_VERIFIED;

	if (!csv && strcmp(o->format, "jsonl") != 0) {
		fprintf(msgs, "--format is jsonl or csv\n");
		json_decref(ranges);
		return AUD_UNREADABLE;
	}
	memset(prev, '0', AUD_HASH_HEX);
	prev[AUD_HASH_HEX] = '\0';
	memcpy(anchor, prev, sizeof(anchor));
	segs = aud_segments(dir, &nsegs);
	if ((rf = open_memstream(&rows, &rowslen)) == NULL) {
		rc = AUD_UNREADABLE;
		goto out;
	}
	if (csv)
		fputs(CSV_COLUMNS "\n", rf);
	for (size_t s = 0; s < nsegs && st != DONE && rc == 0; s++) {
		char path[1024];
		size_t len = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
		if ((text = wd_slurp(path, SIZE_MAX, &len)) == NULL) {
			fprintf(msgs, "%s: cannot read\n", path);
			rc = AUD_UNREADABLE;
			break;
		}
		for (size_t off = 0; off < len && st != DONE; ) {
			char *nl = memchr(text + off, '\n', len - off), hash[65];
			size_t ll = nl ? (size_t)(nl - text) - off : len - off, clen;
			char *canon = aud_split_line(text + off, ll, hash, &clen);
			json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL,
			    NULL) : NULL;
			int64_t t = aud_parse_ts(json_string_value(json_object_get(j,
			    "ts")));
			uint64_t seq = (uint64_t)json_integer_value(json_object_get(j,
			    "seq"));
			bool cp = strcmp(col(j, "kind"), "checkpoint") == 0;
			unsigned char leaf[32];

			if (j == NULL || nl == NULL) {
				fprintf(msgs, "%s: a line is not an audit record: run "
				    "'warden audit verify %s'\n", path, dir);
				json_decref(j);
				free(canon);
				rc = AUD_INVALID;
				break;
			}
			if (st == BEFORE && (o->since_us == 0 || t >= o->since_us)) {
				st = IN;
				memcpy(anchor, prev, sizeof(anchor));
				base = fr;
				first_seq = seq;
			}
			if (st == IN && o->until_us != 0 && t > o->until_us) {
				range_last = last_seq;
				st = range_last == 0 ? DONE : EXTEND;
			}
			aud_leaf_hash(canon, clen, leaf);
			if (st == IN || st == EXTEND) {
				if ((st == IN && match_filters(o->tenant, o->verdict, j)) ||
				    (st == EXTEND && cp)) {
					write_row(rf, csv, j, text + off, ll, seq, hash);
					full_ranges_add(ranges, seq);
					full++;
				} else {
					char lh[65], stub[300];
					int n;

					wd_hex(leaf, 32, lh);
					n = snprintf(stub, sizeof(stub), "{\"hash\":\"%s\","
					    "\"leaf\":\"%s\",\"prev\":\"%s\",\"seq\":%llu,"
					    "\"stub\":true}", hash, lh, prev,
					    (unsigned long long)seq);
					write_row(rf, csv, NULL, stub, (size_t)n, seq, hash);
					stubs++;
				}
				last_seq = seq;
				/* The range is signed as written: stop at the first
				 * checkpoint whose tree holds all of it. */
				if (st == EXTEND && cp && (uint64_t)json_integer_value(
				    json_object_get(j, "tree_size")) >= range_last)
					st = DONE;
			}
			aud_frontier_push(&fr, leaf, NULL, NULL);
			memcpy(prev, hash, sizeof(prev));
			json_decref(j);
			free(canon);
			off += ll + 1;
		}
		free(text);
	}
	if (rc != 0)
		goto out;
	fclose(rf);
	rf = NULL;
	if (full + stubs == 0)
		fr = base = (struct aud_frontier){ 0 };
	aud_frontier_root(&fr, root);
	wd_hex(root, 32, roothex);
	wd_sha256(rows ? rows : "", rowslen, body_d);
	wd_hex(body_d, 32, bodyhex);
	man = json_pack("{s:s,s:i,s:s?,s:s?,s:I,s:I,s:I,s:I,s:s,s:o,s:s,s:I,"
	    "s:s,s:I,s:I,s:O,s:I,s:s?,s:s}", "kind", "export", "format", 2,
	    "tenant", o->tenant, "verdict", o->verdict, "since_us",
	    (json_int_t)o->since_us, "until_us", (json_int_t)o->until_us,
	    "first_seq", (json_int_t)first_seq, "last_seq", (json_int_t)last_seq,
	    "anchor", anchor, "base", frontier_json(&base), "last_hash", prev,
	    "tree_size", (json_int_t)fr.size, "root", roothex, "records",
	    (json_int_t)full, "stubs", (json_int_t)stubs, "full", ranges,
	    "made_us", (json_int_t)wd_wall_us(), "pubkey",
	    o->signer ? o->signer->pubkey_pem : NULL, "body_sha256", bodyhex);
	if (full + stubs == 0)
		json_object_set_new(man, "last_hash", json_string(anchor));
	m = man ? json_dumps(man, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (m == NULL) {
		rc = AUD_UNREADABLE;
		goto out;
	}
	if (o->signer != NULL) {
		unsigned char sg[160];
		size_t sl = sizeof(sg);
		char *msg;

		if (asprintf(&msg, EXPORT_MSG_PREFIX "%s", m) < 0) {
			rc = AUD_UNREADABLE;
			goto out;
		}
		if (o->signer->sign(o->signer->ctx, (unsigned char *)msg, strlen(msg),
		    sg, &sl) != WD_OK) {
			fprintf(msgs, "cannot sign the export's manifest\n");
			free(msg);
			rc = AUD_UNREADABLE;
			goto out;
		}
		free(msg);
		EVP_EncodeBlock((unsigned char *)b64, sg, (int)sl);
	}
	sig = json_pack("{s:s,s:s?}", "kind", "export_signature", "signature",
	    o->signer ? b64 : NULL);
	if ((f = fopen(outpath, "w")) == NULL) {
		fprintf(msgs, "%s: cannot write\n", outpath);
		json_decref(sig);
		rc = AUD_UNREADABLE;
		goto out;
	}
	{
		char *stext = json_dumps(sig, JSON_COMPACT | JSON_SORT_KEYS);

		fprintf(f, "%s%s\n%s%s\n", csv ? "# " : "", m, csv ? "# " : "",
		    stext ? stext : "{}");
		free(stext);
	}
	json_decref(sig);
	if (rowslen > 0)
		fwrite(rows, 1, rowslen, f);
	if (fclose(f) != 0)
		rc = AUD_UNREADABLE;
	fprintf(msgs, "exported %zu records and %zu stubs to %s%s\n", full, stubs,
	    outpath, o->signer ? "" : " (manifest NOT signed: no TPM key)");
out:
	if (rf != NULL)
		fclose(rf);
	free(rows);
	free(m);
	json_decref(man);
	json_decref(ranges);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	return rc;
}

/* ---- verify-export ---- */

/*
 * Split a CSV row of exactly n fields, each "quoted" with "" for a quote
 * (as export writes them); NULL-terminated copies in f.  False if the row
 * is not exactly that.
 */
static bool
csv_split(const char *row, size_t len, char **f, size_t n)
{
	size_t i = 0, k = 0;

	for (k = 0; k < n; k++)
		f[k] = NULL;
	for (k = 0; k < n; k++) {
		char *v = malloc(len + 1);
		size_t vl = 0;

		if (v == NULL || i >= len || row[i] != '"') {
			free(v);
			return false;
		}
		f[k] = v;
		for (i++; ; i++) {
			if (i >= len)
				return false;
			if (row[i] == '"') {
				if (i + 1 < len && row[i + 1] == '"') {
					v[vl++] = '"';
					i++;
					continue;
				}
				break;
			}
			v[vl++] = row[i];
		}
		v[vl] = '\0';
		i++;			/* the closing quote */
		if (k + 1 < n) {
			if (i >= len || row[i] != ',')
				return false;
			i++;
		}
	}
	return i == len;
}

/* A stub: exactly {hash, leaf, prev, seq, stub: true}. */
static json_t *
parse_stub(const char *line, size_t len)
{
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);

	if (json_object_size(j) != 5 || !json_is_true(json_object_get(j, "stub"))
	    || !json_is_integer(json_object_get(j, "seq")) ||
	    !json_is_string(json_object_get(j, "prev")) ||
	    !json_is_string(json_object_get(j, "leaf")) ||
	    !json_is_string(json_object_get(j, "hash"))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Is seq in the manifest's full ranges?  ranges are in order: *cur
 * walks them with the rows. */
static bool
in_full(json_t *ranges, size_t *cur, uint64_t seq)
{
	while (*cur < json_array_size(ranges)) {
		json_t *r = json_array_get(ranges, *cur);
		uint64_t a = (uint64_t)json_integer_value(json_array_get(r, 0));
		uint64_t b = (uint64_t)json_integer_value(json_array_get(r, 1));

		if (seq < a)
			return false;
		if (seq <= b)
			return true;
		(*cur)++;
	}
	return false;
}

static int
bad(FILE *out, const char *path, size_t lineno, const char *why)
{
	if (lineno > 0)
		fprintf(out, "INVALID: %s:%zu: %s\n", path, lineno, why);
	else
		fprintf(out, "INVALID: %s: %s\n", path, why);
	return AUD_INVALID;
}

/* One row: its record walked, its columns and its place checked. */
static int
verify_row(struct aud_walk *w, json_t *man, size_t *cur, bool csv,
    const char *line, size_t ll, const char *path, size_t lineno, FILE *out)
{
	char *fields[8] = { NULL }, why[400];
	const char *rec = line;
	size_t rl = ll;
	json_t *j = NULL, *stub = NULL;
	char hash[AUD_HASH_HEX + 1], *canon;
	size_t clen;
	int rc = AUD_VERIFIED;
	uint64_t seq;

	if (csv) {
		if (!csv_split(line, ll, fields, 8)) {
			rc = bad(out, path, lineno, "not a row of 8 quoted "
			    "columns");
			goto out;
		}
		rec = fields[7];
		rl = strlen(rec);
	}
	canon = aud_split_line(rec, rl, hash, &clen);
	free(canon);
	if (canon == NULL && (stub = parse_stub(rec, rl)) != NULL) {
		seq = (uint64_t)json_integer_value(json_object_get(stub, "seq"));
		if (in_full(json_object_get(man, "full"), cur, seq)) {
			snprintf(why, sizeof(why), "seq %llu is a stub, but the signed "
			    "manifest says it was exported in full: a record was "
			    "hidden", (unsigned long long)seq);
			rc = bad(out, path, lineno, why);
			goto out;
		}
		if (!aud_walk_stub(w, seq, json_string_value(json_object_get(stub,
		    "prev")), json_string_value(json_object_get(stub, "leaf")),
		    json_string_value(json_object_get(stub, "hash")))) {
			rc = bad(out, path, lineno, w->why);
			goto out;
		}
		memcpy(hash, json_string_value(json_object_get(stub, "hash")), 65);
	} else {
		if (!aud_walk_line(w, rec, rl, &j)) {
			rc = bad(out, path, lineno, w->why);
			goto out;
		}
		seq = w->seq;
		if (!in_full(json_object_get(man, "full"), cur, seq)) {
			snprintf(why, sizeof(why), "seq %llu is given in full, but the "
			    "signed manifest says it is a stub",
			    (unsigned long long)seq);
			rc = bad(out, path, lineno, why);
			goto out;
		}
		if (!match_filters(json_string_value(json_object_get(man, "tenant")),
		    json_string_value(json_object_get(man, "verdict")), j)) {
			snprintf(why, sizeof(why), "seq %llu does not match the "
			    "export's filters", (unsigned long long)seq);
			rc = bad(out, path, lineno, why);
			goto out;
		}
	}
	if (csv) {
		char num[32];
		bool ok;

		snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
		ok = strcmp(fields[0], num) == 0 && strcmp(fields[6], hash) == 0;
		for (size_t i = 0; ok && i < 5; i++)
			ok = strcmp(fields[1 + i], j != NULL ? col(j, csv_keys[i]) :
			    i == 1 ? "stub" : "") == 0;
		if (!ok) {
			snprintf(why, sizeof(why), "seq %llu: a column does not say "
			    "what the record it shows says", (unsigned long long)seq);
			rc = bad(out, path, lineno, why);
		}
	}
out:
	for (size_t i = 0; i < 8; i++)
		free(fields[i]);
	json_decref(j);
	json_decref(stub);
	return rc;
}

/* The manifest's own sense: the fields verify-export relies on. */
static bool
manifest_ok(json_t *m)
{
	static const char *const ints[] = { "first_seq", "last_seq",
		"tree_size", "records", "stubs", "made_us", "since_us", "until_us" };
	static const char *const strs[] = { "anchor", "last_hash", "root",
		"body_sha256" };
	json_t *ranges = json_object_get(m, "full");
	uint64_t last = 0;

	for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
		if (!json_is_integer(json_object_get(m, ints[i])) ||
		    json_integer_value(json_object_get(m, ints[i])) < 0)
			return false;
	for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
		const char *v = json_string_value(json_object_get(m, strs[i]));

		if (v == NULL || strlen(v) != AUD_HASH_HEX)
			return false;
	}
	if (!json_is_array(ranges))
		return false;
	for (size_t i = 0; i < json_array_size(ranges); i++) {
		json_t *r = json_array_get(ranges, i);
		json_int_t a = json_integer_value(json_array_get(r, 0));
		json_int_t b = json_integer_value(json_array_get(r, 1));

		if (json_array_size(r) != 2 || a < 1 || b < a || (uint64_t)a <= last)
			return false;
		last = (uint64_t)b;
	}
	return true;
}

int
aud_verify_export(const char *path, const struct aud_verify_opts *o,
    FILE *out)
{
	size_t len = 0, lineno = 0, cur = 0, hl[2] = { 0, 0 };
	char *text = wd_slurp(path, SIZE_MAX, &len), err[300];
	const char *hdr[2] = { NULL, NULL };
	json_t *man = NULL, *sig = NULL;
	struct aud_walk w;
	struct aud_frontier base;
	bool csv = false, authentic = false;
	unsigned char d[32], root[32];
	char dhex[AUD_HASH_HEX + 1], rhex[AUD_HASH_HEX + 1];
	uint64_t first, lastseq;
	size_t off = 0;
	int rc = AUD_VERIFIED;

	if (aud_walk_init(&w, o, err, sizeof(err)) != WD_OK) {
		fprintf(out, "%s\n", err);
		free(text);
		aud_walk_free(&w);
		return AUD_UNREADABLE;
	}
	w.export = true;
	if (text == NULL) {
		fprintf(out, "%s: cannot read\n", path);
		aud_walk_free(&w);
		return AUD_UNREADABLE;
	}
	/* Two header lines: the manifest and its signature. */
	csv = len > 2 && text[0] == '#';
	for (int i = 0; i < 2; i++) {
		char *nl = memchr(text + off, '\n', len - off);

		if (nl == NULL || (csv && (nl - (text + off) < 2 ||
		    memcmp(text + off, "# ", 2) != 0))) {
			rc = bad(out, path, 0, "not a warden audit export");
			goto done;
		}
		hdr[i] = text + off + (csv ? 2 : 0);
		hl[i] = (size_t)(nl - hdr[i]);
		off = (size_t)(nl - text) + 1;
	}
	lineno = 2;
	man = json_loadb(hdr[0], hl[0], JSON_REJECT_DUPLICATES, NULL);
	sig = json_loadb(hdr[1], hl[1], JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(man) || strcmp(col(man, "kind"), "export") != 0 ||
	    !json_is_object(sig)) {
		rc = bad(out, path, 1, "not a warden audit export");
		goto done;
	}
	if (json_integer_value(json_object_get(man, "format")) != 2) {
		fprintf(out, "%s: export format %lld: its stubs and counts cannot be "
		    "checked; export it again with this warden\n", path,
		    (long long)json_integer_value(json_object_get(man, "format")));
		rc = AUD_UNREADABLE;
		goto done;
	}
	if (!manifest_ok(man)) {
		rc = bad(out, path, 1, "malformed manifest");
		goto done;
	}
	/* 1. The manifest, with the trusted key only. */
	if (w.trusted) {
		const char *b64 = json_string_value(json_object_get(sig, "signature"));
		char *msg = NULL;

		if (!aud_walk_key(&w, json_string_value(json_object_get(man,
		    "pubkey")))) {
			rc = bad(out, path, 1, w.why);
			goto done;
		}
		if (b64 != NULL) {
			if (asprintf(&msg, EXPORT_MSG_PREFIX "%.*s", (int)hl[0],
			    hdr[0]) < 0) {
				rc = AUD_UNREADABLE;
				goto done;
			}
			if (!aud_walk_sig(w.key, msg, strlen(msg), b64)) {
				free(msg);
				rc = bad(out, path, 1, "the manifest's signature does not "
				    "verify with the trusted key: the export was altered "
				    "or not made by this log's key");
				goto done;
			}
			free(msg);
			authentic = true;
		}
	}
	/* 2. The rows are the rows it was made with. */
	wd_sha256(text + off, len - off, d);
	wd_hex(d, 32, dhex);
	if (strcmp(dhex, col(man, "body_sha256")) != 0) {
		rc = bad(out, path, 0, "the rows are not the ones the manifest was "
		    "made for (body_sha256)");
		goto done;
	}
	/* 3. Every row, from where the manifest says the log stood. */
	first = (uint64_t)json_integer_value(json_object_get(man, "first_seq"));
	lastseq = (uint64_t)json_integer_value(json_object_get(man, "last_seq"));
	if (!frontier_parse(json_object_get(man, "base"), first ? first - 1 : 0,
	    &base)) {
		rc = bad(out, path, 1, "malformed manifest (base)");
		goto done;
	}
	aud_walk_base(&w, col(man, "anchor"), &base, first ? first - 1 : 0);
	if (csv) {
		char *nl = memchr(text + off, '\n', len - off);

		lineno++;
		if (nl == NULL || (size_t)(nl - (text + off)) != strlen(CSV_COLUMNS) ||
		    memcmp(text + off, CSV_COLUMNS, strlen(CSV_COLUMNS)) != 0) {
			rc = bad(out, path, lineno, "not the export's column names");
			goto done;
		}
		off = (size_t)(nl - text) + 1;
	}
	while (off < len && rc == AUD_VERIFIED) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t ll;

		lineno++;
		if (nl == NULL) {
			rc = bad(out, path, lineno, "torn last row");
			break;
		}
		ll = (size_t)(nl - (text + off));
		rc = verify_row(&w, man, &cur, csv, text + off, ll, path, lineno,
		    out);
		off += ll + 1;
	}
	if (rc != AUD_VERIFIED)
		goto done;
	/* 4. It ends where the manifest says, with the root it signed. */
	aud_frontier_root(&w.fr, root);
	wd_hex(root, 32, rhex);
	if (w.seq != lastseq || (first == 0 && w.records + w.stubs != 0) ||
	    strcmp(w.prev, col(man, "last_hash")) != 0 ||
	    w.fr.size != (uint64_t)json_integer_value(json_object_get(man,
	    "tree_size")) || strcmp(rhex, col(man, "root")) != 0 ||
	    w.records != (uint64_t)json_integer_value(json_object_get(man,
	    "records")) || w.stubs != (uint64_t)json_integer_value(
	    json_object_get(man, "stubs"))) {
		snprintf(err, sizeof(err), "the rows end at seq %llu with %llu "
		    "records and %llu stubs, not where the manifest says (seq %lld, "
		    "%lld records, %lld stubs, its root): rows are missing or "
		    "altered", (unsigned long long)w.seq,
		    (unsigned long long)w.records, (unsigned long long)w.stubs,
		    (long long)lastseq, (long long)json_integer_value(
		    json_object_get(man, "records")), (long long)json_integer_value(
		    json_object_get(man, "stubs")));
		rc = bad(out, path, 0, err);
		goto done;
	}
	/* 5. What no checkpoint covered, the export had to vouch for alone:
	 * fine for the newest records, not for ones a checkpoint should have
	 * covered long before the export was made. */
	if (authentic && aud_walk_stale(&w, (int64_t)json_integer_value(
	    json_object_get(man, "made_us")))) {
		snprintf(err, sizeof(err), "records from %s on no checkpoint in "
		    "the export covers, older than the log's checkpoint interval "
		    "allows: checkpoints were removed", w.uncov_ts);
		rc = bad(out, path, 0, err);
		goto done;
	}
	fprintf(out, "%s: %llu records and %llu stubs from seq %llu to %llu, "
	    "%llu checkpoint%s%s\n", authentic ? "OK" : "CONSISTENT",
	    (unsigned long long)w.records, (unsigned long long)w.stubs,
	    (unsigned long long)first, (unsigned long long)lastseq,
	    (unsigned long long)w.checkpoints, w.checkpoints == 1 ? "" : "s",
	    authentic ? "; manifest and checkpoints verified with the trusted key" :
	    !w.trusted ? "; NOT AUTHENTICATED: give the key you trust (--pubkey "
	    "PEM or --pin SHA256)" : "; NOT AUTHENTICATED: the export's manifest "
	    "is not signed");
	rc = authentic ? AUD_VERIFIED : AUD_UNAUTHENTICATED;
done:
	json_decref(man);
	json_decref(sig);
	aud_walk_free(&w);
	free(text);
	return rc;
}
