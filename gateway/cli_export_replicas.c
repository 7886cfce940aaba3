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
 * {"kind":"export-replicas","format":1,"replicas":[{"dir":D,"header":H}]}
 * with each replica's own export header.  Because every replica's rows
 * keep their chain order, verify-export takes the file apart again and
 * verifies each replica's export as it would a single one.
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
	json_t *hdr;
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

int
gw_audit_export_replicas(char **dirs, size_t n,
    const struct aud_export_opts *o, const char *outpath, FILE *msgs)
{
	struct rows r[MAX_REPLICAS];
	struct aud_verify_opts vo = { .progress = false };
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
	devnull = fopen("/dev/null", "w");
	reps = json_array();
	for (size_t i = 0; i < n; i++) {
		int v = aud_verify_dir(dirs[i], &vo, devnull ? devnull : msgs);
		const char *line;
		size_t ll;

		if (v != 0) {
			fprintf(msgs, "replica %zu (%s): its log is %s; nothing "
			    "exported (warden audit verify %s says why)\n", i, dirs[i],
			    v == 1 ? "INVALID" : "unreadable", dirs[i]);
			rc = v == 1 ? 1 : 2;
			goto out;
		}
		if (aud_export(dirs[i], o, tmp, devnull ? devnull : msgs) != 0 ||
		    (r[i].text = wd_slurp(tmp, SIZE_MAX, &r[i].len)) == NULL ||
		    !peek(&r[i], &line, &ll) ||
		    (r[i].hdr = json_loadb(line, ll, 0, NULL)) == NULL) {
			fprintf(msgs, "replica %zu (%s): cannot export\n", i, dirs[i]);
			goto out;
		}
		r[i].off += ll + 1;
		if (peek(&r[i], &line, &ll))
			row_ts(&r[i], line, ll);
		json_array_append_new(reps, json_pack("{s:s,s:O}", "dir", dirs[i],
		    "header", r[i].hdr));
		fprintf(msgs, "replica %zu (%s): chain valid\n", i, dirs[i]);
	}
	hdr = json_pack("{s:s,s:i,s:o}", "kind", "export-replicas", "format", 1,
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
		json_decref(r[i].hdr);
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
gw_verify_export_replicas(const char *path, FILE *out)
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
		rc = text == NULL ? 2 : 1;
		goto out;
	}
	parts = calloc(nrep, sizeof(*parts));
	if (parts == NULL)
		goto out;
	for (size_t i = 0; i < nrep; i++) {
		char *h = json_dumps(json_object_get(json_array_get(reps, i),
		    "header"), JSON_COMPACT | JSON_SORT_KEYS);

		if (h == NULL || asprintf(&tmp, "%s.part%zu.tmp", path, i) < 0 ||
		    (parts[i] = fopen(tmp, "w+")) == NULL) {
			free(h);
			goto out;
		}
		unlink(tmp);		/* open, nameless: gone when closed */
		free(tmp);
		tmp = NULL;
		fprintf(parts[i], "%s\n", h);
		free(h);
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
			rc = 1;
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
		v = aud_verify_export(proc, out);
		if (v > rc)
			rc = v;
	}
	fprintf(out, "%s: %s\n", path, rc == 0 ? "VALID (every replica)" :
	    "INVALID");
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
