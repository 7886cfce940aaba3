/*
 * cli_export_replicas.c - `warden audit export DIR DIR... -o FILE`: the
 * audit logs of several replicas (each keeps its own chain) as one
 * export ordered by time, and `verify-export` of such a file.
 *
 * Each replica's log is verified first (aud_verify_dir: its chain and
 * checkpoints); one that is not valid stops the export.  Each is then
 * exported on its own (aud_export: a verifiable single-chain export),
 * and the rows are merged by their "ts" (a stub row, which has none,
 * stays right after the row before it in its own chain), each wrapped as
 * {"replica":I,"ts":T,"row":"<the row as exported>"}.  The first line is
 * {"kind":"export-replicas","format":2,"replicas":[{"dir":D,
 * "manifest":"<line 1>","signature":"<line 2>"}]}: each replica's own
 * signed manifest and signature lines, byte for byte.  Because every
 * replica's rows keep their chain order, verify-export takes the file
 * apart again and verifies each replica's export (manifest, signature,
 * body digest, chain, roots) as it would a single one.
 *
 * JSON Lines only (a CSV row has no room for the replica).
 */
#include "gateway/gw_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPLICAS 64

struct rows {
	char *text;			/* the replica's export; owned */
	size_t len, off;		/* next row at off */
	char *manifest, *signature;	/* lines 1 and 2; owned */
	char cur_ts[40];		/* ts of the row at off (or the last) */
};

/* The next row of r: its text and length; false at the end. */
static bool
peek(struct rows *r, const char **line, size_t *ll)
{
	char *nl;

	if (r->off >= r->len)
		return false;
	nl = memchr(r->text + r->off, '\n', r->len - r->off);
	*line = r->text + r->off;
	*ll = nl ? (size_t)(nl - r->text) - r->off : r->len - r->off;
	if (*ll == 0) {
		r->off = r->len;
		return false;
	}
	return true;
}

/* The ts a row sorts by: its own, or (a stub) the one before it. */
static void
row_ts(struct rows *r, const char *line, size_t ll)
{
	json_t *j = json_loadb(line, ll, JSON_ALLOW_NUL, NULL);
	const char *ts = json_string_value(json_object_get(j, "ts"));

	if (ts != NULL)
		snprintf(r->cur_ts, sizeof(r->cur_ts), "%s", ts);
	json_decref(j);
}

/* The worse of two verification statuses. */
static int
worse(int a, int b)
{
	static const int rank[] = { [AUD_VERIFIED] = 0, [AUD_INVALID] = 3,
		[AUD_UNREADABLE] = 2, [AUD_UNAUTHENTICATED] = 1 };

	if (a < 0 || a > 3)
		return b;
	if (b < 0 || b > 3)
		return a;
	return rank[a] >= rank[b] ? a : b;
}

static char *
take_line(struct rows *r)
{
	const char *line;
	size_t ll;
	char *copy;

	if (!peek(r, &line, &ll))
		return NULL;
	copy = strndup(line, ll);
	r->off += ll + 1;
	return copy;
}

int
gw_audit_export_replicas(char **dirs, size_t n,
    const struct aud_export_opts *o, const struct aud_verify_opts *vin,
    const char *outpath, FILE *msgs)
{
	struct rows r[MAX_REPLICAS];
	struct aud_verify_opts vo = *vin;
	json_t *hdr = NULL, *reps;
	char *tmp = NULL, *htext = NULL;
	FILE *f = NULL, *devnull = NULL;
	size_t rows = 0;
	int rc = 2;

	memset(r, 0, sizeof(r));
	if (n > MAX_REPLICAS) {
		fprintf(msgs, "at most %d replicas' logs in one export\n",
		    MAX_REPLICAS);
		return 2;
	}
	if (strcmp(o->format, "jsonl") != 0) {
		fprintf(msgs, "an export of several replicas is JSON Lines only "
		    "(--format jsonl)\n");
		return 2;
	}
	if (asprintf(&tmp, "%s.replica.tmp", outpath) < 0)
		return 2;
	vo.progress = false;
	devnull = fopen("/dev/null", "w");
	reps = json_array();
	for (size_t i = 0; i < n; i++) {
		int v = aud_verify_dir(dirs[i], &vo, devnull ? devnull : msgs);
		const char *line;
		size_t ll;

		/* Invalid or unreadable stops it; a log no key was given for
		 * (consistent, not authenticated) is exported, and said so. */
		if (v == AUD_INVALID || v == AUD_UNREADABLE) {
			fprintf(msgs, "replica %zu (%s): its log is %s; nothing "
			    "exported (warden audit verify %s says why)\n", i, dirs[i],
			    v == AUD_INVALID ? "INVALID" : "unreadable", dirs[i]);
			rc = v;
			goto out;
		}
		if (aud_export(dirs[i], o, tmp, devnull ? devnull : msgs) != 0 ||
		    (r[i].text = wd_slurp(tmp, SIZE_MAX, &r[i].len)) == NULL ||
		    (r[i].manifest = take_line(&r[i])) == NULL ||
		    (r[i].signature = take_line(&r[i])) == NULL) {
			fprintf(msgs, "replica %zu (%s): cannot export\n", i, dirs[i]);
			goto out;
		}
		if (peek(&r[i], &line, &ll))
			row_ts(&r[i], line, ll);
		json_array_append_new(reps, json_pack("{s:s,s:s,s:s}", "dir",
		    dirs[i], "manifest", r[i].manifest, "signature",
		    r[i].signature));
		fprintf(msgs, "replica %zu (%s): chain %s\n", i, dirs[i],
		    v == AUD_VERIFIED ? "verified with the key" :
		    "consistent (no key given: not authenticated)");
	}
	hdr = json_pack("{s:s,s:i,s:o}", "kind", "export-replicas", "format", 2,
	    "replicas", reps);
	reps = NULL;
	if (hdr == NULL || (htext = json_dumps(hdr, JSON_COMPACT |
	    JSON_SORT_KEYS)) == NULL || (f = fopen(outpath, "w")) == NULL) {
		fprintf(msgs, "%s: cannot write\n", outpath);
		goto out;
	}
	fprintf(f, "%s\n", htext);
	/* Merge by ts; ties by replica; each replica in its own order. */
	for (;;) {
		const char *line, *best_line = NULL;
		size_t ll, best_ll = 0, best = 0;
		json_t *w;
		char *wt;

		for (size_t i = 0; i < n; i++)
			if (peek(&r[i], &line, &ll) && (best_line == NULL ||
			    strcmp(r[i].cur_ts, r[best].cur_ts) < 0)) {
				best = i;
				best_line = line;
				best_ll = ll;
			}
		if (best_line == NULL)
			break;
		w = json_pack("{s:I,s:s,s:s%}", "replica", (json_int_t)best, "ts",
		    r[best].cur_ts, "row", best_line, best_ll);
		wt = w ? json_dumps(w, JSON_COMPACT) : NULL;
		if (wt == NULL) {
			json_decref(w);
			goto out;
		}
		fprintf(f, "%s\n", wt);
		free(wt);
		json_decref(w);
		rows++;
		r[best].off += best_ll + 1;
		if (peek(&r[best], &line, &ll))
			row_ts(&r[best], line, ll);
	}
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	fprintf(msgs, "exported %zu rows of %zu replicas to %s, ordered by "
	    "time\n", rows, n, outpath);
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	if (devnull != NULL)
		fclose(devnull);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	for (size_t i = 0; i < n; i++) {
		free(r[i].text);
		free(r[i].manifest);
		free(r[i].signature);
	}
	json_decref(reps);
	json_decref(hdr);
	free(htext);
	return rc;
}

/* Is the file at path a several-replica export?  (Its first line.) */
bool
gw_export_is_replicas(const char *path)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	bool yes;

	if (f == NULL)
		return false;
	yes = fgets(buf, sizeof(buf), f) != NULL &&
	    strstr(buf, "\"kind\":\"export-replicas\"") != NULL;
	fclose(f);
	return yes;
}

/*
 * Take a several-replica export apart and verify each replica's export
 * (aud_verify_export), as a single one.  0 valid, 1 invalid, 2 unreadable.
 */
int
gw_verify_export_replicas(const char *path, const struct aud_verify_opts *vo,
    FILE *out)
{
	size_t len = 0, nrep;
	char *text = wd_slurp(path, SIZE_MAX, &len), *tmp = NULL;
	const char *nl;
	json_t *hdr = NULL, *reps;
	FILE **parts = NULL;
	int rc = 2;

	if (text == NULL || (nl = memchr(text, '\n', len)) == NULL ||
	    (hdr = json_loadb(text, (size_t)(nl - text), 0, NULL)) == NULL ||
	    !json_is_array(reps = json_object_get(hdr, "replicas")) ||
	    (nrep = json_array_size(reps)) == 0 || nrep > MAX_REPLICAS) {
		fprintf(out, "INVALID: %s:1: not an export of replicas\n", path);
		rc = text == NULL ? AUD_UNREADABLE : AUD_INVALID;
		goto out;
	}
	parts = calloc(nrep, sizeof(*parts));
	if (parts == NULL)
		goto out;
	for (size_t i = 0; i < nrep; i++) {
		json_t *ri = json_array_get(reps, i);
		const char *m = json_string_value(json_object_get(ri, "manifest"));
		const char *sg = json_string_value(json_object_get(ri,
		    "signature"));

		if (m == NULL || sg == NULL) {
			fprintf(out, "INVALID: %s:1: replica %zu has no manifest\n",
			    path, i);
			rc = AUD_INVALID;
			goto out;
		}
		if (asprintf(&tmp, "%s.part%zu.tmp", path, i) < 0 ||
		    (parts[i] = fopen(tmp, "w+")) == NULL)
			goto out;
		unlink(tmp);		/* open, nameless: gone when closed */
		free(tmp);
		tmp = NULL;
		fprintf(parts[i], "%s\n%s\n", m, sg);
	}
	rc = 0;
	for (size_t off = (size_t)(nl - text) + 1, lineno = 2; off < len;
	    lineno++) {
		const char *e = memchr(text + off, '\n', len - off);
		size_t ll = e ? (size_t)(e - text) - off : len - off;
		json_t *w = json_loadb(text + off, ll, JSON_ALLOW_NUL, NULL);
		json_t *ri = json_object_get(w, "replica");
		const char *row = json_string_value(json_object_get(w, "row"));

		off += ll + 1;
		if (ll == 0) {
			json_decref(w);
			continue;
		}
		if (!json_is_integer(ri) || json_integer_value(ri) < 0 ||
		    (size_t)json_integer_value(ri) >= nrep || row == NULL) {
			fprintf(out, "INVALID: %s:%zu: not a replica's row\n", path,
			    lineno);
			json_decref(w);
			rc = AUD_INVALID;
			goto out;
		}
		fwrite(row, 1, json_string_length(json_object_get(w, "row")),
		    parts[json_integer_value(ri)]);
		fputc('\n', parts[json_integer_value(ri)]);
		json_decref(w);
	}
	for (size_t i = 0; i < nrep; i++) {
		char proc[64];
		int v;

		fflush(parts[i]);
		/* The nameless file, by its descriptor. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fileno(parts[i]));
		fprintf(out, "replica %zu (%s): ", i, json_string_value(
		    json_object_get(json_array_get(reps, i), "dir")) ?: "?");
		v = aud_verify_export(proc, vo, out);
		rc = worse(rc, v);
	}
	fprintf(out, "%s: %s\n", path, rc == AUD_VERIFIED ? "VERIFIED (every "
	    "replica)" : rc == AUD_UNAUTHENTICATED ? "consistent, not "
	    "authenticated (no key given)" : "INVALID");
out:
	for (size_t i = 0; parts != NULL && i < nrep; i++)
		if (parts[i] != NULL)
			fclose(parts[i]);
	free(parts);
	free(tmp);
	json_decref(hdr);
	free(text);
	return rc;
}
