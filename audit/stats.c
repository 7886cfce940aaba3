/*
 * stats.c - what an auditor asks for first: `warden audit stats` (counts
 * by verdict, rule, route, country, tenant, app, agent, data class and
 * error code; denials by rule; tool-policy violations by agent and rule)
 * and `warden audit register` (the transfer register: per data class and
 * destination country, the requests sent, the routes, the rules that
 * applied and the legal basis recorded).
 *
 * Both read the log through one pass (aud_read_records) that checks every
 * line's hash and its link to the line before, so no figure comes from a
 * record that is not in the chain.  Signatures are aud_verify_dir's job;
 * the report (report_html.c) runs that first and reads only up to the
 * seq it verified.
 */
#include "audit/aud_int.h"

#include <stdlib.h>
#include <string.h>

/* A segment is read whole; far above segment_max_bytes' useful range. */
#define READ_MAX_SEGMENT ((size_t)1 << 31)

int
aud_read_records(const char *dir, uint64_t max_seq,
    int (*fn)(void *arg, json_t *rec), void *arg, char *why, size_t whylen)
{
	char prev[AUD_HASH_HEX + 1];
	uint64_t seq = 0;
	size_t nsegs;
	char **segs = aud_segments(dir, &nsegs);
	int rc = 0;

	memset(prev, '0', AUD_HASH_HEX);
	prev[AUD_HASH_HEX] = '\0';
	if (nsegs == 0) {
		snprintf(why, whylen, "%s: no audit segments", dir);
		rc = 2;
	}
	for (size_t s = 0; s < nsegs && rc == 0; s++) {
		char path[1024];
		size_t len = 0, lineno = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/%s", dir, segs[s]);
		if ((text = wd_slurp(path, READ_MAX_SEGMENT, &len)) == NULL) {
			snprintf(why, whylen, "%s: cannot read", path);
			rc = 2;
			break;
		}
		for (size_t off = 0; off < len && rc == 0; ) {
			char *nl = memchr(text + off, '\n', len - off);
			size_t ll = nl ? (size_t)(nl - text) - off : len - off;
			char hash[AUD_HASH_HEX + 1];
			size_t clen;
			char *canon;
			json_t *j;
			const char *p;
			uint64_t rseq;

			lineno++;
			if (nl == NULL)		/* a line being written: not yet */
				break;
			canon = aud_split_line(text + off, ll, hash, &clen);
			j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
			p = json_string_value(json_object_get(j, "prev"));
			rseq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
			if (j == NULL || p == NULL || strcmp(p, prev) != 0 ||
			    rseq != seq + 1 || !aud_check_line(canon, clen, p, hash)) {
				snprintf(why, whylen, "%s:%zu: the hash chain is broken "
				    "here (run `warden audit verify`)", path, lineno);
				rc = 1;
			} else if (max_seq == 0 || rseq <= max_seq) {
				memcpy(prev, hash, sizeof(prev));
				seq = rseq;
				if (fn(arg, j) != 0)
					rc = -1;
			} else {
				rc = -1;		/* past what was verified */
			}
			json_decref(j);
			free(canon);
			off += ll + 1;
		}
		free(text);
	}
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	return rc < 0 ? 0 : rc;
}

/* ---- counting ---- */

struct counting {
	const struct aud_stats_opts *o;
	json_t *st;
	/* Streams whose `request` record was read and whose `stream_end`
	 * was not yet: decision_id -> that record. */
	json_t *open;
};

static void
bump(json_t *obj, const char *key, json_int_t by)
{
	json_t *v = json_object_get(obj, key ? key : "(none)");

	if (v != NULL)
		json_integer_set(v, json_integer_value(v) + by);
	else
		json_object_set_new(obj, key ? key : "(none)", json_integer(by));
}

static json_t *
sub(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key ? key : "(none)");

	if (v == NULL) {
		v = json_object();
		json_object_set_new(obj, key ? key : "(none)", v);
	}
	return v;
}

static const char *
str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* Violations a record's `tools` names, counted per agent and rule. */
static void
count_tools(json_t *st, json_t *rec)
{
	json_t *tools = json_object_get(rec, "tools"), *a, *viol;
	json_t *by = sub(st, "tool_violations");
	const char *agent = str(tools, "agent");
	size_t i;

	if (!json_is_object(tools))
		return;
	if ((viol = json_object_get(tools, "violation")) != NULL &&
	    json_is_object(viol))
		bump(sub(by, agent), str(viol, "rule"), 1);
	json_array_foreach(json_object_get(tools, "answer"), i, a)
		if (json_is_false(json_object_get(a, "allowed")))
			bump(sub(by, agent), str(a, "rule"), 1);
	json_array_foreach(json_object_get(tools, "stripped_tools"), i, a)
		bump(sub(by, agent), json_is_object(a) && str(a, "rule") ?
		    str(a, "rule") : "stripped", 1);
}

/* The transfer register: one row per (data class, country). */
static void
count_transfer(json_t *st, json_t *rec)
{
	const char *route = str(rec, "route"), *country = str(rec,
	    "route_country"), *lb = str(rec, "legal_basis");
	json_t *classes = json_object_get(rec, "data_classes"), *r;
	json_t *reg = sub(st, "register");
	size_t i, n = json_array_size(classes);

	/* Sent to a provider: a route was tried. */
	if (route == NULL)
		return;
	for (i = 0; i < (n ? n : 1); i++) {
		const char *cls = n ? json_string_value(json_array_get(classes, i))
		    : "(none declared)";
		char key[256];
		json_t *row;
		size_t k;

		snprintf(key, sizeof(key), "%s\x1f%s", cls ? cls : "?",
		    country ? country : "?");
		if ((row = json_object_get(reg, key)) == NULL) {
			row = json_pack("{s:s,s:s,s:i,s:{},s:{},s:{}}", "data_class",
			    cls ? cls : "?", "country", country ? country : "?",
			    "requests", 0, "routes", "rules", "legal_basis");
			json_object_set_new(reg, key, row);
		}
		bump(row, "requests", 1);
		bump(json_object_get(row, "routes"), route, 1);
		bump(json_object_get(row, "legal_basis"), lb ? lb :
		    "(not recorded)", 1);
		if (json_array_size(json_object_get(rec, "rules")) == 0)
			bump(json_object_get(row, "rules"), "(no rule: tenant routes)",
			    1);
		json_array_foreach(json_object_get(rec, "rules"), k, r)
			bump(json_object_get(row, "rules"), json_string_value(r), 1);
	}
}

/*
 * One transaction, with its final outcome: a `request` record, or for a
 * stream its `request` record amended by its `stream_end` (see
 * count_one).  Time and tenant are the request's.
 */
static void
count_txn(struct counting *c, json_t *rec)
{
	json_t *st = c->st, *v;
	const char *ts = str(rec, "ts");
	const char *verdict = str(rec, "verdict");
	int64_t t = aud_parse_ts(ts);
	char bucket[16];
	size_t i;

	if ((c->o->since_us && t < c->o->since_us) ||
	    (c->o->until_us && t >= c->o->until_us))
		return;
	if (c->o->tenant != NULL && (str(rec, "tenant") == NULL ||
	    strcmp(str(rec, "tenant"), c->o->tenant) != 0))
		return;
	count_tools(st, rec);
	bump(st, "requests", 1);
	/* Streams are counted at their end: keep the earliest and latest. */
	if (ts != NULL && (str(st, "first") == NULL ||
	    strcmp(ts, str(st, "first")) < 0))
		json_object_set_new(st, "first", json_string(ts));
	if (ts != NULL && (str(st, "last") == NULL ||
	    strcmp(ts, str(st, "last")) > 0))
		json_object_set_new(st, "last", json_string(ts));
	bump(sub(st, "verdict"), verdict, 1);
	bump(sub(st, "tenant"), str(rec, "tenant"), 1);
	bump(sub(st, "app"), str(rec, "app"), 1);
	bump(sub(st, "agent"), str(rec, "agent"), 1);
	bump(sub(st, "route"), str(rec, "route"), 1);
	bump(sub(st, "country"), str(rec, "route_country"), 1);
	bump(sub(st, "code"), str(rec, "code"), 1);
	bump(sub(st, "keep"), str(json_object_get(rec, "payload"), "mode") ?
	    str(json_object_get(rec, "payload"), "mode") : "none", 1);
	if (json_array_size(json_object_get(rec, "data_classes")) == 0)
		bump(sub(st, "data_class"), NULL, 1);
	json_array_foreach(json_object_get(rec, "data_classes"), i, v)
		bump(sub(st, "data_class"), json_string_value(v), 1);
	json_array_foreach(json_object_get(rec, "rules"), i, v)
		bump(sub(st, "rule"), json_string_value(v), 1);
	if (verdict != NULL && strcmp(verdict, "deny") == 0) {
		json_t *seen = json_object(), *r;
		const char *code = str(rec, "code");

		/* Each rule that excluded a route, once per denial; without
		 * one the error code says why (auth, tool policy, ...). */
		json_array_foreach(json_object_get(rec, "reasons"), i, r)
			if (str(r, "rule") != NULL)
				json_object_set_new(seen, str(r, "rule"), json_true());
		if (json_object_size(seen) == 0 && json_is_object(json_object_get(
		    json_object_get(rec, "tools"), "violation")))
			json_object_set_new(seen, str(json_object_get(json_object_get(
			    rec, "tools"), "violation"), "rule") ?: "tool_policy",
			    json_true());
		if (json_object_size(seen) == 0) {
			char k[96];

			snprintf(k, sizeof(k), "(%s)", code ? code : "no rule");
			json_object_set_new(seen, k, json_true());
		}
		{
			const char *k;
			json_t *x;

			json_object_foreach(seen, k, x)
				bump(sub(st, "denied_by_rule"), k, 1);
		}
		json_decref(seen);
	}
	if (ts != NULL && strlen(ts) >= 13) {
		snprintf(bucket, sizeof(bucket), "%.13s", ts);
		bump(sub(sub(st, "by_hour"), bucket), verdict, 1);
		snprintf(bucket, sizeof(bucket), "%.10s", ts);
		bump(sub(sub(st, "by_day"), bucket), verdict, 1);
	}
	count_transfer(st, rec);
}

/*
 * A streamed request has its `request` record before the first byte
 * (status 200, no code yet) and a `stream_end` with how it ended: the
 * final status, code and verdict (deny when the tool policy stopped it),
 * usage, payload and tools.  The transaction is counted once, at its
 * stream_end, with those.  Other kinds are counted by kind only.
 */
static int
count_one(void *arg, json_t *rec)
{
	struct counting *c = arg;
	const char *kind = str(rec, "kind");
	const char *did = str(rec, "decision_id");
	static const char *const final[] = { "status", "code", "verdict",
		"usage", "latency_ms", "attempts", "payload", "tools", NULL };
	json_t *req, *txn;

	bump(c->st, "log_records", 1);
	bump(json_object_get(c->st, "kind"), kind ? kind : "(no kind)", 1);
	if (kind == NULL)
		return 0;
	if (strcmp(kind, "request") == 0) {
		if (json_is_true(json_object_get(rec, "stream")) && did != NULL &&
		    json_integer_value(json_object_get(rec, "status")) == 200) {
			json_object_set(c->open, did, rec);
			return 0;
		}
		count_txn(c, rec);
		return 0;
	}
	if (strcmp(kind, "stream_end") != 0 || did == NULL ||
	    (req = json_object_get(c->open, did)) == NULL)
		return 0;		/* a stream_end names a request before it */
	if ((txn = json_copy(req)) == NULL)
		return 0;
	for (size_t i = 0; final[i] != NULL; i++)
		if (json_object_get(rec, final[i]) != NULL)
			json_object_set(txn, final[i], json_object_get(rec,
			    final[i]));
	json_object_del(c->open, did);
	count_txn(c, txn);
	json_decref(txn);
	return 0;
}

/* Streams whose end is not (yet) in what was read: a live stream, one
 * past the signed part the report reads, or one cut by a crash.  They
 * count with what their request record says. */
static void
count_unended(struct counting *c)
{
	const char *k;
	json_t *rec;

	json_object_foreach(c->open, k, rec)
		count_txn(c, rec);
}

int
aud_stats(const char *dir, const struct aud_stats_opts *o, json_t **out,
    char *why, size_t whylen)
{
	struct counting c = { o, json_object(), json_object() };
	static const char *const sections[] = { "verdict", "rule", "route",
		"country", "tenant", "app", "agent", "data_class", "code",
		"denied_by_rule", "tool_violations", "keep", "by_hour", "by_day",
		"register", "kind", NULL };
	int rc;

	json_object_set_new(c.st, "requests", json_integer(0));
	for (size_t i = 0; sections[i] != NULL; i++)
		json_object_set_new(c.st, sections[i], json_object());
	rc = aud_read_records(dir, o->max_seq, count_one, &c, why, whylen);
	if (rc == 0)
		count_unended(&c);
	json_decref(c.open);
	if (rc != 0) {
		json_decref(c.st);
		return rc;
	}
	/* The register as a list, sorted by class then country. */
	{
		json_t *reg = json_object_get(c.st, "register"), *list = json_array();
		const char *k;
		json_t *row;
		void *tmp;

		json_object_foreach_safe(reg, tmp, k, row)
			json_array_append(list, row);
		json_object_set_new(c.st, "register", list);
	}
	*out = c.st;
	return 0;
}

/* ---- printing ---- */

static void
print_counts(FILE *f, const char *title, json_t *obj, int indent)
{
	const char *k;
	json_t *v;

	fprintf(f, "%*s%s:\n", indent, "", title);
	if (json_object_size(obj) == 0)
		fprintf(f, "%*s  (none)\n", indent, "");
	json_object_foreach(obj, k, v) {
		if (json_is_object(v))
			print_counts(f, k, v, indent + 2);
		else
			fprintf(f, "%*s  %-32s %8lld\n", indent, "", k,
			    (long long)json_integer_value(v));
	}
}

void
aud_stats_print(json_t *st, FILE *f)
{
	static const struct { const char *key, *title; } sec[] = {
		{ "verdict", "by verdict" }, { "rule", "by rule (applied)" },
		{ "route", "by route" }, { "country", "by destination country" },
		{ "tenant", "by tenant" }, { "app", "by app" },
		{ "agent", "by agent" }, { "data_class", "by data class" },
		{ "code", "by error code" }, { "denied_by_rule", "denials by rule" },
		{ "tool_violations", "tool-policy violations by agent and rule" },
		{ "keep", "payload retention mode kept" },
		{ "kind", "log records by kind (all tenants, all times)" },
	};

	fprintf(f, "requests: %lld", (long long)json_integer_value(
	    json_object_get(st, "requests")));
	if (str(st, "first") != NULL)
		fprintf(f, " (%s .. %s)", str(st, "first"), str(st, "last"));
	fputc('\n', f);
	for (size_t i = 0; i < sizeof(sec) / sizeof(sec[0]); i++)
		print_counts(f, sec[i].title, json_object_get(st, sec[i].key), 0);
}

/* A CSV field, quoted, its quotes doubled. */
static void
csvq(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* "a=3;b=1" */
static void
joined(FILE *f, json_t *obj, bool csv)
{
	const char *k;
	json_t *v;
	bool first = true;

	if (csv)
		fputc('"', f);
	json_object_foreach(obj, k, v) {
		fprintf(f, "%s", first ? "" : ";");
		for (const char *p = k; *p; p++) {
			if (csv && *p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fprintf(f, "=%lld", (long long)json_integer_value(v));
		first = false;
	}
	if (csv)
		fputc('"', f);
}

void
aud_register_print(json_t *st, const char *tenant, bool csv, FILE *f)
{
	json_t *reg = json_object_get(st, "register"), *row;
	size_t i;

	if (!csv) {
		json_t *doc = json_pack("{s:s?,s:O,s:o,s:o}", "tenant", tenant,
		    "transfers", reg, "first", json_incref(json_object_get(st,
		    "first")) ?: json_null(), "last", json_incref(json_object_get(st,
		    "last")) ?: json_null());

		json_dumpf(doc, f, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', f);
		json_decref(doc);
		return;
	}
	fprintf(f, "data_class,country,requests,routes,rules,legal_basis\n");
	json_array_foreach(reg, i, row) {
		csvq(f, str(row, "data_class"));
		fputc(',', f);
		csvq(f, str(row, "country"));
		fprintf(f, ",%lld,", (long long)json_integer_value(
		    json_object_get(row, "requests")));
		joined(f, json_object_get(row, "routes"), true);
		fputc(',', f);
		joined(f, json_object_get(row, "rules"), true);
		fputc(',', f);
		joined(f, json_object_get(row, "legal_basis"), true);
		fputc('\n', f);
	}
}
