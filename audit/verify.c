/*
 * verify.c - `warden audit verify`, `export` and `verify-export`.
 *
 * Verification reads every segment in order and checks, per line: that it
 * is one of ours (the hash suffix), that its hash is SHA-256(prev || C),
 * that prev is the previous line's hash and seq the previous seq + 1; per
 * checkpoint: that it signs exactly the record before it and, with a
 * public key, that the signature holds.  It names the first bad record.
 *
 * An export is a JSON-lines (or CSV) file an auditor can check alone: a
 * header with the anchor (prev of the first record), the public key and
 * the filters; then every record of the range, in full if it matches the
 * filters and as a stub {seq, hash} if not, so the chain still links
 * without disclosing other tenants' records.
 */
#include "audit/aud_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

struct vstate {
	char prev[AUD_HASH_HEX + 1];
	uint64_t seq;			/* last seen */
	uint64_t records, checkpoints, since_cp;
	bool first;
	EVP_PKEY *key;			/* NULL: signatures not checked */
	char why[300];
};

static void
vstate_init(struct vstate *v, const char *anchor)
{
	memset(v, 0, sizeof(*v));
	if (anchor != NULL)
		snprintf(v->prev, sizeof(v->prev), "%s", anchor);
	else
		memset(v->prev, '0', AUD_HASH_HEX);
	v->first = true;
}

static EVP_PKEY *
load_pubkey(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

static bool
check_signature(EVP_PKEY *key, uint64_t seq, const char *hash, const char *b64)
{
	unsigned char sig[256];
	char msg[128];
	int n, pad = 0;
	size_t bl = strlen(b64);
	EVP_MD_CTX *ctx;
	bool ok;

	if (bl == 0 || bl > 340)
		return false;
	n = EVP_DecodeBlock(sig, (const unsigned char *)b64, (int)bl);
	if (n < 0)
		return false;
	while (bl > 0 && b64[--bl] == '=')
		pad++;
	n -= pad;
	aud_checkpoint_msg(msg, sizeof(msg), seq, hash);
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, sig, (size_t)n, (unsigned char *)msg,
	    strlen(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* One full line; false with v->why on the first problem. */
static bool
verify_line(struct vstate *v, const char *line, size_t len, json_t **recp)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon = aud_split_line(line, len, hash, &clen);
	json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
	const char *prev = json_string_value(json_object_get(j, "prev"));
	const char *kind = json_string_value(json_object_get(j, "kind"));
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	bool ok = false;

	if (j == NULL) {
		snprintf(v->why, sizeof(v->why), "not an audit record (no hash "
		    "suffix, or not JSON)");
		goto out;
	}
	if (!v->first && seq != v->seq + 1) {
		snprintf(v->why, sizeof(v->why), "seq %llu follows seq %llu: "
		    "records are missing or reordered", (unsigned long long)seq,
		    (unsigned long long)v->seq);
		goto out;
	}
	if (prev == NULL || strcmp(prev, v->prev) != 0) {
		snprintf(v->why, sizeof(v->why), "seq %llu: prev does not match "
		    "the hash of the record before it", (unsigned long long)seq);
		goto out;
	}
	if (!aud_check_line(canon, clen, prev, hash)) {
		snprintf(v->why, sizeof(v->why), "seq %llu: hash does not match "
		    "the record: it was altered", (unsigned long long)seq);
		goto out;
	}
	if (kind != NULL && strcmp(kind, "checkpoint") == 0) {
		uint64_t sseq = (uint64_t)json_integer_value(json_object_get(j,
		    "signed_seq"));
		const char *sh = json_string_value(json_object_get(j, "signed_hash"));
		const char *sig = json_string_value(json_object_get(j, "signature"));

		if (sseq != seq - 1 || sh == NULL || strcmp(sh, prev) != 0) {
			snprintf(v->why, sizeof(v->why), "seq %llu: checkpoint does "
			    "not sign the record before it", (unsigned long long)seq);
			goto out;
		}
		if (v->key != NULL && (sig == NULL ||
		    !check_signature(v->key, sseq, sh, sig))) {
			snprintf(v->why, sizeof(v->why), "seq %llu: checkpoint "
			    "signature does not verify with the public key",
			    (unsigned long long)seq);
			goto out;
		}
		v->checkpoints++;
		v->since_cp = 0;
	} else {
		v->since_cp++;
	}
	memcpy(v->prev, hash, sizeof(v->prev));
	v->seq = seq;
	v->first = false;
	v->records++;
	ok = true;
	if (recp != NULL) {
		*recp = j;
		j = NULL;
	}
out:
	json_decref(j);
	free(canon);
	return ok;
}

int
aud_verify_dir(const char *dir, const struct aud_verify_opts *o, FILE *out)
{
	struct vstate v;
	size_t nsegs;
	char **segs = aud_segments(dir, &nsegs);
	bool tty = o->progress && isatty(2);
	int rc = 0;

	vstate_init(&v, NULL);
	if (o->pubkey_pem_path != NULL) {
		size_t len;
		char *pem = wd_slurp(o->pubkey_pem_path, SIZE_MAX, &len);

		v.key = pem ? load_pubkey(pem, len) : NULL;
		free(pem);
		if (v.key == NULL) {
			fprintf(out, "%s: not a PEM public key\n", o->pubkey_pem_path);
			rc = 2;
			goto done;
		}
	}
	if (nsegs == 0) {
		fprintf(out, "%s: no audit segments\n", dir);
		rc = 2;
		goto done;
	}
	for (size_t s = 0; s < nsegs && rc == 0; s++) {
		char path[1024];
		size_t len = 0, lineno = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
		text = wd_slurp(path, SIZE_MAX, &len);
		if (text == NULL) {
			fprintf(out, "%s: cannot read\n", path);
			rc = 2;
			break;
		}
		for (size_t off = 0; off < len; ) {
			char *nl = memchr(text + off, '\n', len - off);
			size_t ll = nl ? (size_t)(nl - text) - off : len - off;

			lineno++;
			if (nl == NULL) {
				fprintf(out, "INVALID: %s:%zu: torn last line (no newline)"
				    "\n", path, lineno);
				rc = 1;
				break;
			}
			if (!verify_line(&v, text + off, ll, NULL)) {
				fprintf(out, "INVALID: %s:%zu: %s\n", path, lineno, v.why);
				rc = 1;
				break;
			}
			if (tty && v.records % 65536 == 0)
				fprintf(stderr, "\rverifying: %llu records",
				    (unsigned long long)v.records);
			off += ll + 1;
		}
		free(text);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	if (rc == 0)
		fprintf(out, "OK: %llu records in %zu segment%s, last seq %llu, "
		    "%llu checkpoint%s %s; %llu record%s after the last "
		    "checkpoint not yet signed\n", (unsigned long long)v.records,
		    nsegs, nsegs == 1 ? "" : "s", (unsigned long long)v.seq,
		    (unsigned long long)v.checkpoints, v.checkpoints == 1 ? "" : "s",
		    v.key ? "with valid signatures" : "(signatures not checked: "
		    "give --pubkey)", (unsigned long long)v.since_cp,
		    v.since_cp == 1 ? "" : "s");
done:
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	EVP_PKEY_free(v.key);
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

static bool
matches(const struct aud_export_opts *o, json_t *j)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));

	/* Checkpoints carry no tenant data: always in full. */
	if (kind != NULL && strcmp(kind, "checkpoint") == 0)
		return true;
	if (o->tenant != NULL) {
		const char *t = json_string_value(json_object_get(j, "tenant"));

		if (t == NULL || strcmp(t, o->tenant) != 0)
			return false;
	}
	if (o->verdict != NULL) {
		const char *v = json_string_value(json_object_get(j, "verdict"));

		if (v == NULL || strcmp(v, o->verdict) != 0)
			return false;
	}
	return true;
}

static void
csv_field(FILE *f, const char *s, bool last)
{
	fputc('"', f);
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
	fputc(last ? '\n' : ',', f);
}

static void
write_row(FILE *f, bool csv, json_t *j, const char *line, size_t len,
    uint64_t seq, const char *hash)
{
	char num[32];

	if (!csv) {
		if (line != NULL) {
			fwrite(line, 1, len, f);
			fputc('\n', f);
		} else {
			fprintf(f, "{\"seq\":%llu,\"stub\":true,\"hash\":\"%s\"}\n",
			    (unsigned long long)seq, hash);
		}
		return;
	}
	snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
	csv_field(f, num, false);
	csv_field(f, line ? json_string_value(json_object_get(j, "ts")) : "", false);
	csv_field(f, line ? json_string_value(json_object_get(j, "kind")) : "stub",
	    false);
	csv_field(f, line ? json_string_value(json_object_get(j, "tenant")) : "",
	    false);
	csv_field(f, line ? json_string_value(json_object_get(j, "verdict")) : "",
	    false);
	csv_field(f, line ? json_string_value(json_object_get(j, "route")) : "",
	    false);
	csv_field(f, hash, false);
	if (line != NULL) {
		char *copy = strndup(line, len);

		csv_field(f, copy, true);
		free(copy);
	} else {
		csv_field(f, "", true);
	}
}

int
aud_export(const char *dir, const struct aud_export_opts *o,
    const char *outpath, FILE *msgs)
{
	bool csv = strcmp(o->format, "csv") == 0;
	char anchor[AUD_HASH_HEX + 1], prev[AUD_HASH_HEX + 1];
	size_t nsegs, full = 0, stubs = 0;
	char **segs = aud_segments(dir, &nsegs);
	bool started = false, done = false;
	uint64_t last_seq = 0;
	char last_hash[AUD_HASH_HEX + 1] = "";
	json_t *hdr;
	char *htext;
	FILE *f;
	int rc = 0;

	if (!csv && strcmp(o->format, "jsonl") != 0) {
		fprintf(msgs, "--format is jsonl or csv\n");
		return 2;
	}
	f = fopen(outpath, "w");
	if (f == NULL) {
		fprintf(msgs, "%s: cannot write\n", outpath);
		return 2;
	}
	memset(prev, '0', AUD_HASH_HEX);
	prev[AUD_HASH_HEX] = '\0';
	memcpy(anchor, prev, sizeof(anchor));
	/* The header is written after we know the anchor: buffer rows. */
	{
		char *rows = NULL;
		size_t rowslen = 0;
		FILE *rf = open_memstream(&rows, &rowslen);

		for (size_t s = 0; s < nsegs && !done && rf != NULL; s++) {
			char path[1024];
			size_t len = 0;
			char *text;

			snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
			if ((text = wd_slurp(path, SIZE_MAX, &len)) == NULL)
				continue;
			for (size_t off = 0; off < len; ) {
				char *nl = memchr(text + off, '\n', len - off);
				size_t ll = nl ? (size_t)(nl - text) - off : len - off, clen;
				char hash[AUD_HASH_HEX + 1];
				char *canon = aud_split_line(text + off, ll, hash, &clen);
				json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
				int64_t t = aud_parse_ts(json_string_value(
				    json_object_get(j, "ts")));
				uint64_t seq = (uint64_t)json_integer_value(
				    json_object_get(j, "seq"));

				if (j != NULL && o->until_us != 0 && t > o->until_us) {
					done = true;
				} else if (j != NULL && (o->since_us == 0 ||
				    t >= o->since_us)) {
					if (!started) {
						snprintf(anchor, sizeof(anchor), "%s", prev);
						started = true;
					}
					if (matches(o, j)) {
						write_row(rf, csv, j, text + off, ll, seq, hash);
						full++;
					} else {
						write_row(rf, csv, j, NULL, 0, seq, hash);
						stubs++;
					}
					last_seq = seq;
					memcpy(last_hash, hash, sizeof(last_hash));
				}
				if (j != NULL)
					memcpy(prev, hash, sizeof(prev));
				json_decref(j);
				free(canon);
				if (nl == NULL || done)
					break;
				off += ll + 1;
			}
			free(text);
		}
		if (rf != NULL)
			fclose(rf);
		if (full + stubs == 0)
			memcpy(last_hash, anchor, sizeof(last_hash));
		hdr = json_pack("{s:s,s:i,s:s,s:I,s:s,s:s?,s:s?,s:s?,s:I,s:I,s:I,"
		    "s:I}", "kind", "export", "format", 1, "anchor", anchor,
		    "last_seq", (json_int_t)last_seq, "last_hash", last_hash,
		    "pubkey",
		    o->pubkey_pem, "tenant", o->tenant, "verdict", o->verdict,
		    "since_us", (json_int_t)o->since_us, "until_us",
		    (json_int_t)o->until_us, "records", (json_int_t)full,
		    "stubs", (json_int_t)stubs);
		htext = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
		if (csv) {
			fputs("# ", f);
			fputs(htext, f);
			fputs("\nseq,ts,kind,tenant,verdict,route,hash,record\n", f);
		} else {
			fputs(htext, f);
			fputc('\n', f);
		}
		free(htext);
		json_decref(hdr);
		if (rows != NULL)
			fwrite(rows, 1, rowslen, f);
		free(rows);
	}
	if (fclose(f) != 0)
		rc = 2;
	fprintf(msgs, "exported %zu records and %zu stubs to %s\n", full, stubs,
	    outpath);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	return rc;
}

/* A stub is exactly {"seq":N,"stub":true,"hash":H}: a record that merely
 * holds a "stub" member is not one. */
static bool
is_stub(const char *line, size_t len)
{
	json_t *j;
	bool stub;

	if (len > 200 || memmem(line, len, "\"stub\":true", 11) == NULL ||
	    memmem(line, len, "\"prev\"", 6) != NULL)
		return false;
	j = json_loadb(line, len, 0, NULL);
	stub = json_object_size(j) == 3 && json_is_true(json_object_get(j, "stub"))
	    && json_is_integer(json_object_get(j, "seq")) &&
	    json_is_string(json_object_get(j, "hash"));
	json_decref(j);
	return stub;
}

/* The record column of a CSV row (the last quoted field), unquoted. */
static char *
csv_record(const char *row, size_t len, size_t *outlen)
{
	const char *p = row + len;
	char *out;
	size_t n = 0;

	if (len < 2 || row[len - 1] != '"')
		return NULL;
	/* Walk back to the opening quote of the last field. */
	for (p = row + len - 2; p >= row; p--) {
		if (*p == '"') {
			if (p > row && p[-1] == '"') {
				p--;
				continue;
			}
			break;
		}
	}
	if (p < row)
		return NULL;
	out = malloc(len);
	for (const char *q = p + 1; out && q < row + len - 1; q++) {
		if (*q == '"' && q[1] == '"')
			q++;
		out[n++] = *q;
	}
	*outlen = n;
	return out;
}

int
aud_verify_export(const char *path, FILE *out)
{
	size_t len = 0, lineno = 0;
	char *text = wd_slurp(path, SIZE_MAX, &len);
	struct vstate v;
	json_t *hdr = NULL;
	bool csv = false;
	uint64_t stubs = 0;
	int rc = 0;

	vstate_init(&v, NULL);
	if (text == NULL) {
		fprintf(out, "%s: cannot read\n", path);
		return 2;
	}
	for (size_t off = 0; off < len && rc == 0; ) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - text) - off : len - off;
		const char *line = text + off;

		lineno++;
		off += ll + 1;
		if (lineno == 1) {
			csv = ll > 2 && line[0] == '#';
			hdr = json_loadb(csv ? line + 2 : line, csv ? ll - 2 : ll, 0,
			    NULL);
			if (!json_is_object(hdr) || strcmp(json_string_value(
			    json_object_get(hdr, "kind")) ?: "", "export") != 0) {
				fprintf(out, "INVALID: %s:1: not a warden audit export\n",
				    path);
				rc = 1;
				break;
			}
			vstate_init(&v, json_string_value(json_object_get(hdr,
			    "anchor")));
			if (json_is_string(json_object_get(hdr, "pubkey"))) {
				const char *pem = json_string_value(json_object_get(hdr,
				    "pubkey"));

				v.key = load_pubkey(pem, strlen(pem));
			}
			continue;
		}
		if (csv && lineno == 2)
			continue;	/* column names */
		if (ll == 0)
			continue;
		if (csv) {
			size_t rl = 0;
			char *rec = csv_record(line, ll, &rl);
			unsigned long long seq = strtoull(line + 1, NULL, 10);

			if (rec != NULL && rl > 0) {
				if (!verify_line(&v, rec, rl, NULL))
					rc = 1;
			} else {
				/* A stub row: seq and hash only. */
				const char *h = strstr(line, "\",\"");
				char hash[AUD_HASH_HEX + 1] = "";

				for (int k = 0; h != NULL && k < 5; k++)
					h = strstr(h + 3, "\",\"");
				if (h != NULL)
					snprintf(hash, sizeof(hash), "%.64s", h + 3);
				if (!v.first && seq != v.seq + 1) {
					snprintf(v.why, sizeof(v.why), "stub seq %llu is out "
					    "of order", seq);
					rc = 1;
				}
				memcpy(v.prev, hash, sizeof(v.prev));
				v.seq = seq;
				v.first = false;
				stubs++;
				v.since_cp++;
			}
			free(rec);
		} else if (is_stub(line, ll)) {
			json_t *s = json_loadb(line, ll, 0, NULL);
			uint64_t seq = (uint64_t)json_integer_value(json_object_get(s,
			    "seq"));
			const char *h = json_string_value(json_object_get(s, "hash"));

			if (h == NULL || strlen(h) != AUD_HASH_HEX ||
			    (!v.first && seq != v.seq + 1)) {
				snprintf(v.why, sizeof(v.why), "bad stub at seq %llu",
				    (unsigned long long)seq);
				rc = 1;
			} else {
				memcpy(v.prev, h, sizeof(v.prev));
				v.seq = seq;
				v.first = false;
				stubs++;
				v.since_cp++;
			}
			json_decref(s);
		} else if (!verify_line(&v, line, ll, NULL)) {
			rc = 1;
		}
		if (rc != 0)
			fprintf(out, "INVALID: %s:%zu: %s\n", path, lineno, v.why);
	}
	/* The header says where the range ends: a cut-off file shows. */
	if (rc == 0 && hdr != NULL && (v.seq != (uint64_t)json_integer_value(
	    json_object_get(hdr, "last_seq")) || strcmp(v.prev, json_string_value(
	    json_object_get(hdr, "last_hash")) ?: "") != 0 ||
	    v.records != (uint64_t)json_integer_value(json_object_get(hdr,
	    "records")) || stubs != (uint64_t)json_integer_value(json_object_get(
	    hdr, "stubs")))) {
		fprintf(out, "INVALID: %s: the export ends at seq %llu, but its "
		    "header says seq %lld with %lld records and %lld stubs: records "
		    "are missing\n", path, (unsigned long long)v.seq,
		    (long long)json_integer_value(json_object_get(hdr, "last_seq")),
		    (long long)json_integer_value(json_object_get(hdr, "records")),
		    (long long)json_integer_value(json_object_get(hdr, "stubs")));
		rc = 1;
	}
	if (rc == 0 && hdr != NULL)
		fprintf(out, "OK: %llu records and %llu stubs chain from anchor "
		    "%.16s…, %llu checkpoint%s %s; %llu after the last checkpoint "
		    "not yet signed\n", (unsigned long long)(v.records),
		    (unsigned long long)stubs, json_string_value(json_object_get(hdr,
		    "anchor")), (unsigned long long)v.checkpoints,
		    v.checkpoints == 1 ? "" : "s", v.key ? "with valid signatures" :
		    "(no public key in the export)", (unsigned long long)v.since_cp);
	json_decref(hdr);
	EVP_PKEY_free(v.key);
	free(text);
	return rc;
}
