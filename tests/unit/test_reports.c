/*
 * test_reports.c - the auditor's page (audit/report_html.c) on logs made
 * here with a software signing key: names in records that are HTML
 * (tenant, rule, route, tool, country) come out escaped, never as markup;
 * a log altered after signing, or checked with another key, gets a page
 * that says NOT VERIFIED and shows no figures; stats count what was
 * written.  And the rules: `require: { retention: { zdr: true } }` is the
 * same policy as `retention.zdr: true` (one policy_version).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit/aud.h"
#include "policy/pol.h"
#include "tests/unit/suites.h"

static enum wd_err
soft_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok = m != NULL &&
	    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, ctx) == 1 &&
	    EVP_DigestSign(m, sig, siglen, msg, len) == 1;

	EVP_MD_CTX_free(m);
	return ok ? WD_OK : WD_EIO;
}

/* A PEM public key file for k in dir; returns its path. */
static char *
write_pub(const char *dir, const char *name, EVP_PKEY *k)
{
	char *path;
	FILE *f;

	ck_assert(asprintf(&path, "%s/%s", dir, name) >= 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
	return path;
}

static const char *const hostile[] = {
	"<script>alert(1)</script>", "<img src=x onerror=alert(2)>",
	"\"><svg onload=alert(3)>", "</td><iframe src=//evil>",
};

/* A signed log in a new dir: 3 allowed and 2 denied requests with
 * hostile names, checkpoints every 2 records and at close. */
static char *
make_log(EVP_PKEY *key)
{
	char *dir = strdup("/tmp/warden-ut-reports-XXXXXX"), err[256], pem[4096];
	struct aud_signer signer = { soft_sign, key, pem };
	struct aud_opts o = { .instance = "ut", .group_commit_ms = 1,
		.segment_max_bytes = 1 << 20, .checkpoint_every = 2,
		.signer = &signer };
	struct aud_log *log;
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(PEM_write_bio_PUBKEY(b, key), 1);
	n = BIO_get_mem_data(b, &p);
	snprintf(pem, sizeof(pem), "%.*s", (int)n, p);
	BIO_free(b);
	o.dir = dir;
	ck_assert_msg(aud_open(&o, &log, err, sizeof(err)) == WD_OK, "%s", err);
	for (int i = 0; i < 5; i++) {
		bool deny = i >= 3;
		json_t *r = json_pack("{s:s,s:s,s:s,s:i,s:s?,s:s?,s:[s],s:[s],"
		    "s:s,s:{s:s},s:[{s:s,s:s}],s:{s:s,s:{s:s}}}",
		    "kind", "request", "tenant", hostile[0], "verdict",
		    deny ? "deny" : "allow", "status", deny ? 403 : 200,
		    "route", deny ? NULL : hostile[2], "route_country",
		    deny ? NULL : hostile[2], "data_classes", hostile[3],
		    "rules", hostile[1], "legal_basis", hostile[3], "payload",
		    "mode", "hash", "reasons", "rule", hostile[1], "code",
		    "residency", "tools", "agent", hostile[3], "violation",
		    "rule", hostile[0]);

		ck_assert_int_eq(aud_append(log, r), WD_OK);
	}
	aud_close(log);
	return dir;
}

static void
rm_dir(char *dir)
{
	char *cmd;

	ck_assert(asprintf(&cmd, "rm -rf '%s'", dir) >= 0);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	free(dir);
}

static char *
report(const char *dir, const char *pub, int *rc)
{
	struct aud_report_opts ro = { .pubkey_pem_path = pub };
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	*rc = aud_report_html(dir, &ro, f, NULL);
	fclose(f);
	return text;
}

START_TEST(report_escapes_every_name_from_the_log)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *dir = make_log(key), *pub = write_pub(dir, "pub.pem", key);
	int rc;
	char *html = report(dir, pub, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(html, "VERIFIED: every hash"));
	ck_assert_ptr_nonnull(strstr(html, "id=\"n-requests\">5<"));
	ck_assert_ptr_nonnull(strstr(html, "id=\"n-deny\">2<"));
	/* No markup from the log, but its text, escaped. */
	ck_assert_ptr_null(strstr(html, "<script"));
	ck_assert_ptr_null(strstr(html, "<img"));
	ck_assert_ptr_null(strstr(html, "<svg onload"));
	ck_assert_ptr_null(strstr(html, "<iframe"));
	ck_assert_ptr_null(strstr(html, "\"><svg"));
	ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	ck_assert_ptr_nonnull(strstr(html, "&lt;img src=x onerror=alert(2)&gt;"));
	ck_assert_ptr_nonnull(strstr(html, "&quot;&gt;&lt;svg onload=alert(3)"));
	/* Self-contained: nothing to fetch, and a CSP that forbids it. */
	ck_assert_ptr_null(strstr(html, "href="));
	ck_assert_ptr_null(strstr(html, "<link"));
	ck_assert_ptr_null(strstr(html, "url("));
	ck_assert_ptr_null(strstr(html, "@import"));
	ck_assert_ptr_nonnull(strstr(html, "content=\"default-src 'none';"));
	free(html);
	free(pub);
	EVP_PKEY_free(key);
	rm_dir(dir);
}
END_TEST

START_TEST(report_refuses_an_altered_log_or_another_key)
{
	EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	char *dir = make_log(key), *pub = write_pub(dir, "pub.pem", key);
	char *opub = write_pub(dir, "other.pem", other), *seg, *cmd;
	int rc;
	char *html = report(dir, opub, &rc);

	ck_assert_int_ne(rc, 0);
	ck_assert_ptr_nonnull(strstr(html, "NOT VERIFIED"));
	ck_assert_ptr_null(strstr(html, "n-requests"));
	free(html);

	/* Change a verdict after signing (deny -> allow, same length+1). */
	ck_assert(asprintf(&seg, "%s/audit-000001.jsonl", dir) >= 0);
	ck_assert(asprintf(&cmd, "sed -i 's/\"verdict\":\"deny\"/\"verdict\":"
	    "\"allow\"/' %s", seg) >= 0);
	ck_assert_int_eq(system(cmd), 0);
	html = report(dir, pub, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_ptr_nonnull(strstr(html, "NOT VERIFIED"));
	ck_assert_ptr_null(strstr(html, "n-requests"));
	free(html);
	free(cmd);
	free(seg);
	free(pub);
	free(opub);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	rm_dir(dir);
}
END_TEST

START_TEST(stats_count_what_was_written)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *dir = make_log(key), why[256];
	struct aud_stats_opts so = { 0 };
	json_t *st = NULL;

	ck_assert_int_eq(aud_stats(dir, &so, &st, why, sizeof(why)), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "requests")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "verdict"), "deny")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "denied_by_rule"), hostile[1])), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_object_get(st, "tool_violations"), hostile[3]), hostile[0])), 5);
	ck_assert_int_eq(json_array_size(json_object_get(st, "register")), 1);
	json_decref(st);
	so.tenant = "nobody";
	ck_assert_int_eq(aud_stats(dir, &so, &st, why, sizeof(why)), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "requests")), 0);
	json_decref(st);
	EVP_PKEY_free(key);
	rm_dir(dir);
}
END_TEST

/* A streamed transaction: its `request` record before the first byte
 * (allow, 200), its `stream_end` with the final outcome (the tool policy
 * stopped it: deny, a violation); and one plain request.  Counted as two
 * transactions, the stream once with its final outcome. */
START_TEST(stats_count_a_stream_once_with_its_end)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *dir = strdup("/tmp/warden-ut-reports-XXXXXX"), err[256], why[256];
	struct aud_opts o = { .instance = "ut", .group_commit_ms = 1,
		.segment_max_bytes = 1 << 20 };
	struct aud_stats_opts so = { 0 };
	struct aud_log *log;
	json_t *st = NULL;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	o.dir = dir;
	ck_assert_msg(aud_open(&o, &log, err, sizeof(err)) == WD_OK, "%s", err);
	ck_assert_int_eq(aud_append(log, json_pack("{s:s,s:s,s:s,s:b,s:s,"
	    "s:i,s:n,s:s,s:s,s:[s],s:{s:s}}", "kind", "request", "decision_id",
	    "d-1", "tenant", "t", "stream", 1, "verdict", "allow", "status", 200,
	    "code", "route", "r-eu", "route_country", "IE", "data_classes",
	    "health", "tools", "agent", "ag")), WD_OK);
	ck_assert_int_eq(aud_append(log, json_pack("{s:s,s:s,s:s,s:b,s:s,s:i,"
	    "s:s,s:s}", "kind", "request", "decision_id", "d-2", "tenant", "t",
	    "stream", 0, "verdict", "allow", "status", 200, "route", "r-eu",
	    "route_country", "IE")), WD_OK);
	ck_assert_int_eq(aud_append(log, json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,"
	    "s:{s:s,s:{s:s}}}", "kind", "stream_end", "decision_id", "d-1",
	    "tenant", "t", "verdict", "deny", "status", 200, "code",
	    "tool_policy_violation", "tools", "agent", "ag", "violation", "rule",
	    "no-exfil")), WD_OK);
	aud_close(log);

	ck_assert_int_eq(aud_stats(dir, &so, &st, why, sizeof(why)), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "requests")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "verdict"), "deny")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "verdict"), "allow")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "code"), "tool_policy_violation")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_object_get(st, "tool_violations"), "ag"), "no-exfil")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "denied_by_rule"), "no-exfil")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st,
	    "kind"), "stream_end")), 1);
	json_decref(st);
	EVP_PKEY_free(key);
	rm_dir(dir);
}
END_TEST

/* aud_verify_dir_result gives the report what it acts on as data; the
 * report counts only the records under the newest signed tree head and
 * says NOT VERIFIED (exit 3) while later records are not signed. */
START_TEST(report_uses_the_verified_result)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *dir = make_log(key), *pub = write_pub(dir, "pub.pem", key);
	struct aud_verify_opts vo = { .pubkey_pem_path = pub };
	struct aud_verify_result vr;
	struct aud_opts o = { .instance = "ut2", .group_commit_ms = 1,
		.segment_max_bytes = 1 << 20 };
	struct aud_log *log;
	char fp[AUD_HASH_HEX + 1], *pem, *html, err[256], cov[64];
	size_t len;
	int rc;

	ck_assert_int_eq(aud_verify_dir_result(dir, &vo, NULL, &vr),
	    AUD_VERIFIED);
	ck_assert_int_eq(vr.status, AUD_VERIFIED);
	ck_assert_uint_ge(vr.signed_checkpoints, 1);
	ck_assert_uint_eq(vr.signed_checkpoints, vr.checkpoints);
	ck_assert_uint_eq(vr.uncovered, 0);
	ck_assert_uint_ge(vr.covered, 5);
	ck_assert_uint_lt(vr.covered, vr.last_seq);
	ck_assert_uint_eq(vr.signed_seq, vr.last_seq);	/* the one at close */
	ck_assert_uint_eq(vr.records, vr.last_seq);
	pem = wd_slurp(pub, 1 << 20, &len);
	ck_assert_int_eq(aud_key_fingerprint(pem, len, fp), WD_OK);
	ck_assert_str_eq(vr.fingerprint, fp);
	ck_assert_ptr_nonnull(strstr(vr.why, "OK: "));
	free(pem);

	html = report(dir, pub, &rc);
	ck_assert_int_eq(rc, 0);
	snprintf(cov, sizeof(cov), "id=\"covered\">%llu<",
	    (unsigned long long)vr.covered);
	ck_assert_ptr_nonnull(strstr(html, cov));
	ck_assert_ptr_nonnull(strstr(html, fp));
	free(html);

	/* Records no checkpoint of the key signs yet: not authenticated. */
	o.dir = dir;
	ck_assert_msg(aud_open(&o, &log, err, sizeof(err)) == WD_OK, "%s", err);
	ck_assert_int_eq(aud_append(log, json_pack("{s:s,s:s,s:s,s:i}", "kind",
	    "request", "tenant", "t", "verdict", "allow", "status", 200)), WD_OK);
	aud_close(log);
	ck_assert_int_eq(aud_verify_dir_result(dir, &vo, NULL, &vr),
	    AUD_UNAUTHENTICATED);
	ck_assert_uint_gt(vr.uncovered, 0);
	html = report(dir, pub, &rc);
	ck_assert_int_eq(rc, AUD_UNAUTHENTICATED);
	ck_assert_ptr_nonnull(strstr(html, "NOT VERIFIED"));
	ck_assert_ptr_nonnull(strstr(html, "(exit 3)"));
	ck_assert_ptr_null(strstr(html, "n-requests"));
	free(html);
	free(pub);
	EVP_PKEY_free(key);
	rm_dir(dir);
}
END_TEST

static char *version_of_p(const char *req, const char *prov);

/* The rules of ut with the health rule's require written as req. */
static char *
version_of(const char *req)
{
	return version_of_p(req, "");
}

/* ... and prov added to the provider's keys. */
static char *
version_of_p(const char *req, const char *prov)
{
	char path[] = "/tmp/warden-ut-rules-XXXXXX";
	int fd = mkstemp(path);
	struct pol_snapshot *s = NULL;
	FILE *f = fdopen(fd, "w");
	char *v;

	fprintf(f, "version: 1\ndata_classes: [health]\nproviders:\n"
	    "  - { id: p, base_url: 'http://127.0.0.1:1/v1', country: IE,"
	    " retention: { zdr: true }, %s credential: c, models: [m] }\n"
	    "tenants:\n  - { id: t, keys: ['sha256:%064d'], routes: [p] }\n"
	    "rules:\n  - { id: h, when: { data_class: [health] }, require: %s }\n",
	    prov, 0, req);
	fclose(f);
	if (pol_load(path, stderr, &s) != WD_OK) {
		unlink(path);
		return NULL;
	}
	unlink(path);
	v = strdup(s->version);
	pol_snapshot_unref(s);
	return v;
}

START_TEST(nested_retention_is_the_dotted_one)
{
	char *dotted = version_of("{ retention.zdr: true, retention.max_days: 7 }");
	char *nested = version_of("{ retention: { zdr: true, max_days: 7 } }");
	char *other = version_of("{ retention: { zdr: true, max_days: 8 } }");

	ck_assert_ptr_nonnull(dotted);
	ck_assert_ptr_nonnull(nested);
	ck_assert_str_eq(dotted, nested);
	ck_assert_str_ne(nested, other);
	ck_assert_ptr_null(version_of("{ retention: { zdr: true, days: 7 } }"));
	ck_assert_ptr_null(version_of("{ retention: { zdr: true }, "
	    "retention.max_days: 7 }"));
	free(dotted);
	free(nested);
	free(other);
}
END_TEST

START_TEST(legal_basis_is_checked_and_part_of_the_version)
{
	char *none = version_of_p("{ retention.zdr: true }", "");
	char *scc = version_of_p("{ retention.zdr: true }", "legal_basis: scc,");
	char *dpf = version_of_p("{ retention.zdr: true }", "legal_basis: dpf,");

	ck_assert_ptr_nonnull(none);
	ck_assert_ptr_nonnull(scc);
	ck_assert_ptr_nonnull(dpf);
	ck_assert_str_ne(none, scc);
	ck_assert_str_ne(scc, dpf);
	ck_assert_ptr_null(version_of_p("{ retention.zdr: true }",
	    "legal_basis: trust_me,"));
	/* On a rule as well. */
	{
		char *rule = version_of_p("{ retention.zdr: true }, legal_basis: bcr",
		    "");

		ck_assert_ptr_nonnull(rule);
		ck_assert_str_ne(rule, none);
		free(rule);
		ck_assert_ptr_null(version_of_p("{ retention.zdr: true }, "
		    "legal_basis: maybe", ""));
	}
	free(none);
	free(scc);
	free(dpf);
}
END_TEST

Suite *
suite_reports(void)
{
	Suite *s = suite_create("reports");
	TCase *tc = tcase_create("reports");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, report_escapes_every_name_from_the_log);
	tcase_add_test(tc, report_refuses_an_altered_log_or_another_key);
	tcase_add_test(tc, stats_count_what_was_written);
	tcase_add_test(tc, stats_count_a_stream_once_with_its_end);
	tcase_add_test(tc, report_uses_the_verified_result);
	tcase_add_test(tc, nested_retention_is_the_dotted_one);
	tcase_add_test(tc, legal_basis_is_checked_and_part_of_the_version);
	suite_add_tcase(s, tc);
	return s;
}
