/*
 * report_html.c - `warden audit report`: one self-contained HTML page for
 * an auditor (inline CSS, inline SVG, no script, nothing fetched).
 *
 * It shows only figures from a log that verifies with the key the auditor
 * gives: aud_verify_dir_result checks it first and hands back what it
 * found as data (status, the newest signed tree head, the key's
 * fingerprint).  Unless the status is AUD_VERIFIED and a checkpoint
 * signed by that key covers the records, the page says NOT VERIFIED on
 * top and shows no figures.  It counts only records up to the tree the
 * newest signed checkpoint covers, through aud_read_records, which checks
 * the chain again as it reads.
 */
#include "audit/aud.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>


static const char css[] =
    "body{font:14px/1.4 sans-serif;margin:24px 40px;color:#222}"
    "h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;"
    "border-bottom:1px solid #ccc}"
    ".ok{background:#e5f5e5;border:2px solid #2a8a2a;padding:10px}"
    ".bad{background:#fde8e8;border:3px solid #b00;padding:12px;"
    "font-size:16px;font-weight:bold}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #bbb;"
    "padding:3px 8px;text-align:left}th{background:#eee}td.n{text-align:right}"
    ".fig{display:inline-block;margin-right:30px;font-size:15px}"
    ".fig b{font-size:26px;display:block}"
    "figure{margin:10px 0}figcaption{font-weight:bold;margin-bottom:4px}"
    ".bar{fill:#4a78b5}.deny{fill:#c0392b}.allow{fill:#3f9a4a}"
    ".modify{fill:#d9a021}.lbl,.val{font-size:12px}code{font-size:12px}";

static long long
ival(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* A count table and its bars. */
static void
counts(FILE *f, const char *title, json_t *obj)
{
	size_t n = json_object_size(obj), i = 0;
	const char **labels = calloc(n + 1, sizeof(*labels));
	long long *vals = calloc(n + 1, sizeof(*vals));
	const char *k;
	json_t *v;

	if (labels == NULL || vals == NULL)
		goto out;
	json_object_foreach(obj, k, v) {
		labels[i] = k;
		vals[i++] = (long long)json_integer_value(v);
	}
	if (n == 0) {
		fprintf(f, "<p><b>");
		aud_html_esc(f, title);
		fprintf(f, "</b>: none</p>\n");
	} else {
		aud_html_bars(f, title, labels, vals, n);
	}
out:
	free(labels);
	free(vals);
}

/* Verdicts per time bucket as stacked bars. */
static void
over_time(FILE *f, json_t *buckets, const char *unit)
{
	static const char *const kinds[] = { "allow", "modify", "deny" };
	size_t n = json_object_size(buckets), i = 0;
	long long max = 1;
	const int h = 160, bw = 28, gap = 10;
	const char *k;
	json_t *v;

	json_object_foreach(buckets, k, v) {
		long long sum = ival(v, "allow") + ival(v, "deny") +
		    ival(v, "modify");

		if (sum > max)
			max = sum;
	}
	fprintf(f, "<figure><figcaption>Verdicts per %s (green allow, amber "
	    "modify, red deny)</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/"
	    "svg\" width=\"%zu\" height=\"%d\" role=\"img\">\n",
	    unit, 120 + n * (bw + gap), h + 70);
	fprintf(f, "<line x1=\"40\" y1=\"%d\" x2=\"%zu\" y2=\"%d\" "
	    "stroke=\"#888\"/><text x=\"36\" y=\"18\" text-anchor=\"end\" "
	    "class=\"lbl\">%lld</text>\n", h + 10, 50 + n * (bw + gap), h + 10,
	    max);
	json_object_foreach(buckets, k, v) {
		int y = h + 10;
		size_t x = 50 + i * (bw + gap);

		for (size_t c = 0; c < 3; c++) {
			long long cnt = ival(v, kinds[c]);
			int bh = (int)(cnt * h / max);

			if (cnt == 0)
				continue;
			y -= bh;
			fprintf(f, "<rect x=\"%zu\" y=\"%d\" width=\"%d\" height=\"%d\" "
			    "class=\"%s\"><title>%s %lld</title></rect>\n", x, y, bw,
			    bh, kinds[c], kinds[c], cnt);
		}
		fprintf(f, "<text x=\"%zu\" y=\"%d\" class=\"lbl\" transform=\""
		    "rotate(30 %zu %d)\">", x, h + 24, x, h + 24);
		/* The year is in the page's header: "11-29T23". */
		aud_html_esc(f, strlen(k) > 5 ? k + 5 : k);
		fprintf(f, "</text>\n");
		i++;
	}
	fprintf(f, "</svg></figure>\n");
}

static void
joined(FILE *f, json_t *obj)
{
	const char *k;
	json_t *v;
	bool first = true;

	json_object_foreach(obj, k, v) {
		fputs(first ? "" : "<br>", f);
		aud_html_esc(f, k);
		fprintf(f, " (%lld)", (long long)json_integer_value(v));
		first = false;
	}
}

static void
strlist(FILE *f, json_t *arr)
{
	size_t i;
	json_t *v;

	if (json_array_size(arr) == 0)
		fputs("(not declared)", f);
	json_array_foreach(arr, i, v) {
		fputs(i ? ", " : "", f);
		aud_html_esc(f, json_string_value(v));
	}
}

static void
art30(FILE *f, json_t *a)
{
	size_t i;
	json_t *r;

	fprintf(f, "<h2>Record of processing (GDPR art. 30), as the rules "
	    "declare it</h2>\n<table>\n<tr><th>controller</th><td>");
	aud_html_esc(f, json_string_value(json_object_get(a, "controller")) ?:
	    "(not declared)");
	fprintf(f, "</td></tr>\n<tr><th>purposes</th><td>");
	strlist(f, json_object_get(a, "purposes"));
	fprintf(f, "</td></tr>\n<tr><th>categories of data subjects</th><td>");
	strlist(f, json_object_get(a, "categories"));
	fprintf(f, "</td></tr>\n<tr><th>categories of data</th><td>");
	strlist(f, json_object_get(a, "data_classes"));
	fprintf(f, "</td></tr>\n<tr><th>countries</th><td>");
	strlist(f, json_object_get(a, "countries"));
	fprintf(f, "</td></tr>\n</table>\n<table><tr><th>recipient (route)</th>"
	    "<th>country</th><th>legal basis</th><th>provider retention</th>"
	    "</tr>\n");
	json_array_foreach(json_object_get(a, "recipients"), i, r) {
		fprintf(f, "<tr><td>");
		aud_html_esc(f, json_string_value(json_object_get(r, "route")));
		fprintf(f, "</td><td>");
		aud_html_esc(f, json_string_value(json_object_get(r, "country")));
		fprintf(f, "</td><td>");
		aud_html_esc(f, json_string_value(json_object_get(r,
		    "legal_basis")) ?: "(not named)");
		fprintf(f, "</td><td>");
		aud_html_esc(f, json_string_value(json_object_get(r, "retention")));
		fprintf(f, "</td></tr>\n");
	}
	fprintf(f, "</table>\n<p>Payloads kept by warden: ");
	aud_html_esc(f, json_string_value(json_object_get(a, "warden_keeps")));
	fprintf(f, "</p>\n");
}

static void
body(FILE *f, json_t *st, const struct aud_report_opts *o)
{
	json_t *verdicts = json_object_get(st, "verdict"), *row, *tv;
	json_t *hours = json_object_get(st, "by_hour");
	const char *k;
	size_t i;

	fprintf(f, "<h2>Summary</h2>\n<div class=\"fig\">requests<b id=\""
	    "n-requests\">%lld</b></div><div class=\"fig\">allowed<b id=\""
	    "n-allow\">%lld</b></div><div class=\"fig\">modified<b>%lld</b>"
	    "</div><div class=\"fig\">denied<b id=\"n-deny\">%lld</b></div>\n",
	    ival(st, "requests"), ival(verdicts, "allow"), ival(verdicts,
	    "modify"), ival(verdicts, "deny"));
	fprintf(f, "<p>First record ");
	aud_html_esc(f, json_string_value(json_object_get(st, "first")) ?: "-");
	fprintf(f, ", last ");
	aud_html_esc(f, json_string_value(json_object_get(st, "last")) ?: "-");
	fprintf(f, ".</p>\n<h2>Verdicts and denials over time</h2>\n");
	if (json_object_size(hours) <= 48)
		over_time(f, hours, "hour (UTC)");
	else
		over_time(f, json_object_get(st, "by_day"), "day (UTC)");
	counts(f, "Denials by rule", json_object_get(st, "denied_by_rule"));
	counts(f, "Requests by destination country", json_object_get(st,
	    "country"));
	counts(f, "Requests by route", json_object_get(st, "route"));

	fprintf(f, "<h2>Transfer register</h2>\n<table id=\"register\"><tr>"
	    "<th>data class</th><th>destination country</th><th>requests sent"
	    "</th><th>routes</th><th>rules that applied</th><th>legal basis</th>"
	    "</tr>\n");
	json_array_foreach(json_object_get(st, "register"), i, row) {
		fprintf(f, "<tr><td>");
		aud_html_esc(f, json_string_value(json_object_get(row, "data_class")));
		fprintf(f, "</td><td>");
		aud_html_esc(f, json_string_value(json_object_get(row, "country")));
		fprintf(f, "</td><td class=\"n\">%lld</td><td>", ival(row,
		    "requests"));
		joined(f, json_object_get(row, "routes"));
		fprintf(f, "</td><td>");
		joined(f, json_object_get(row, "rules"));
		fprintf(f, "</td><td>");
		joined(f, json_object_get(row, "legal_basis"));
		fprintf(f, "</td></tr>\n");
	}
	fprintf(f, "</table>\n");
	if (o->art30 != NULL)
		art30(f, o->art30);

	fprintf(f, "<h2>Retention</h2>\n");
	counts(f, "Payload mode kept per request (none: nothing; hash: HMAC "
	    "only; redacted / full: kept for the TTL)", json_object_get(st,
	    "keep"));

	fprintf(f, "<h2>Tool-policy violations</h2>\n<table id=\"tools\"><tr>"
	    "<th>agent</th><th>rule</th><th>violations</th></tr>\n");
	json_object_foreach(json_object_get(st, "tool_violations"), k, tv) {
		const char *r;
		json_t *n;

		json_object_foreach(tv, r, n) {
			fprintf(f, "<tr><td>");
			aud_html_esc(f, k);
			fprintf(f, "</td><td>");
			aud_html_esc(f, r);
			fprintf(f, "</td><td class=\"n\">%lld</td></tr>\n",
			    (long long)json_integer_value(n));
		}
	}
	if (json_object_size(json_object_get(st, "tool_violations")) == 0)
		fprintf(f, "<tr><td colspan=\"3\">none</td></tr>\n");
	fprintf(f, "</table>\n");
	counts(f, "Requests by error code", json_object_get(st, "code"));
}

int
aud_report_html(const char *dir, const struct aud_report_opts *o, FILE *f,
    FILE *msgs)
{
	struct aud_verify_opts vo = { .pubkey_pem_path = o->pubkey_pem_path,
		.pin = o->pubkey_pem_path ? NULL : o->pin };
	struct aud_verify_result vr;
	char why[512], when[32];
	json_t *st = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	rc = aud_verify_dir_result(dir, &vo, NULL, &vr);
	/* Verified means every record is under a head the key signed; a
	 * log no checkpoint of that key signed is not authenticated. */
	if (rc == AUD_VERIFIED && (vr.signed_checkpoints == 0 ||
	    vr.covered == 0 || vr.fingerprint[0] == '\0')) {
		rc = AUD_UNAUTHENTICATED;
		snprintf(vr.why, sizeof(vr.why), "no checkpoint signed by the "
		    "trusted key covers the records\n");
	}
	if (rc == AUD_VERIFIED) {
		struct aud_stats_opts so = { o->since_us, o->until_us, o->tenant,
			vr.covered };

		rc = aud_stats(dir, &so, &st, why, sizeof(why));
		if (rc != 0) {
			snprintf(vr.why, sizeof(vr.why), "%s", why);
			if (msgs)
				fprintf(msgs, "warden: %s\n", why);
		}
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\""
	    "utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\""
	    "default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
	    "<title>warden audit report</title>\n<style>%s</style></head><body>"
	    "\n<h1>warden audit report</h1>\n<p>Log <code>", css);
	aud_html_esc(f, dir);
	fprintf(f, "</code>, tenant <b id=\"tenant\">");
	aud_html_esc(f, o->tenant ? o->tenant : "(all tenants)");
	fprintf(f, "</b>, written %s.</p>\n", when);
	if (rc == AUD_VERIFIED) {
		fprintf(f, "<div class=\"ok\" id=\"verification\">VERIFIED: every "
		    "hash and link holds, and %llu checkpoint signature%s verif%s "
		    "with the trusted key, SHA-256 fingerprint <code id=\""
		    "fingerprint\">%s</code>.  The newest signed tree head (the "
		    "checkpoint at seq %llu) covers records 1 to <span id=\""
		    "covered\">%llu</span> of %llu; this page counts those only."
		    "%s<br><code>", (unsigned long long)vr.signed_checkpoints,
		    vr.signed_checkpoints == 1 ? "" : "s",
		    vr.signed_checkpoints == 1 ? "ies" : "y", vr.fingerprint,
		    (unsigned long long)vr.signed_seq,
		    (unsigned long long)vr.covered,
		    (unsigned long long)vr.last_seq, vr.has_counter ?
		    "  Its checkpoints carry the TPM's rollback counter." : "");
		aud_html_esc(f, vr.why);
		fprintf(f, "</code></div>\n");
		body(f, st, o);
	} else {
		fprintf(f, "<div class=\"bad\" id=\"verification\">NOT VERIFIED: "
		    "this log does not verify with the trusted key (fingerprint "
		    "<code>%s</code>): %s.  No figures are shown: none could be "
		    "trusted.<br><code>", vr.fingerprint[0] ? vr.fingerprint :
		    "(not a public key)", rc == AUD_INVALID ? "it was altered, "
		    "truncated or its checkpoints removed (exit 1)" :
		    rc == AUD_UNREADABLE ? "it cannot be read (exit 2)" :
		    "it is consistent, but no checkpoint signed by this key "
		    "covers all of it yet (exit 3)");
		aud_html_esc(f, vr.why);
		fprintf(f, "</code></div>\n");
	}
	fprintf(f, "<p style=\"color:#777\">Produced by <code>warden audit "
	    "report</code>; self-contained, nothing fetched.</p>\n</body></html>"
	    "\n");
	if (msgs != NULL)
		fputs(vr.why, msgs);
	json_decref(st);
	return rc;
}
