/*
 * test_reports.c - issue 18 through the real binary: known traffic goes
 * through warden (on a software TPM, so checkpoints are signed) to the
 * mock providers, then `warden audit stats`, `register`, `report` and
 * `tail` must give exactly the figures that traffic implies; the report
 * and `warden policy report` are rendered by a real headless Chromium,
 * whose DOM must hold those figures and which must produce a screenshot.
 * `tail -f` follows the live log across segment rotation; a tampered
 * line makes tail and the report say so.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/env.h"
#include "tests/integration/suites.h"

static char tpmdir[256], store[256], tcti[128];

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return it_run(cmd, NULL, NULL);
}

static void
setup(void)
{
	char cmd[512];
	FILE *p;

	it_env_start(NULL);
	snprintf(tpmdir, sizeof(tpmdir), "%s/rep-tpm-%d", it_tmpdir(),
	    (int)getpid());
	snprintf(store, sizeof(store), "%s/rep-store-%d", it_tmpdir(),
	    (int)getpid());
	snprintf(cmd, sizeof(cmd), "sh scripts/swtpm.sh start %s", tpmdir);
	if ((p = popen(cmd, "r")) == NULL || fgets(tcti, sizeof(tcti), p) == NULL
	    || pclose(p) != 0)
		abort();
	tcti[strcspn(tcti, "\n")] = '\0';
}

static void
teardown(void)
{
	sh("sh scripts/swtpm.sh stop %s >/dev/null 2>&1", tpmdir);
	it_env_stop();
}

/* Replace the first from in *text by to. */
static void
subst(char **text, const char *from, const char *to)
{
	char *p = strstr(*text, from), *n;

	ck_assert_msg(p != NULL, "'%s' not in the rules", from);
	ck_assert(asprintf(&n, "%.*s%s%s", (int)(p - *text), *text, to,
	    p + strlen(from)) >= 0);
	free(*text);
	*text = n;
}

struct rw {
	pid_t pid;
	int port;
	char dir[256], log[256], cfg[256], url[128];
};

/* A warden on the TPM with the fixture's rules plus legal bases, art. 30
 * declarations, the nested retention spelling and small segments. */
static void
rw_start(struct rw *w, const char *name)
{
	char listen[32], *text = it_read_file(it.config, NULL);
	char *argv[] = { getenv("WARDEN_BIN"), "serve", "-c", w->cfg,
		"--listen", listen, "--audit-dir", w->dir, "--dev-credentials",
		"--tcti", tcti, "--secrets-store", store,
		"--dev-unauthenticated-audit-key", NULL };

	ck_assert_ptr_nonnull(text);
	subst(&text, "country: IE,", "country: IE, legal_basis: not_required,");
	subst(&text, "country: DE,", "country: DE, legal_basis: not_required,");
	subst(&text, "country: US,", "country: US, legal_basis: dpf,");
	subst(&text, "may_omit: [health],", "may_omit: [health], purposes: "
	    "[claims handling], categories: [policy holders], controller: "
	    "Acme Health,");
	subst(&text, "require: { retention.zdr: true }",
	    "require: { retention: { zdr: true } }");
	/* A rule's legal basis wins over its route's for what it allows. */
	subst(&text, "  - { id: health-zdr,", "  - { id: t1-scc, when: { tenant: "
	    "[t1] }, require: { retention.zdr: true }, legal_basis: scc }\n"
	    "  - { id: health-zdr,");
	subst(&text, "  checkpoint_every: 10\n", "  checkpoint_every: 4\n"
	    "  segment_max_bytes: 4096\n");
	w->port = it_free_port();
	snprintf(w->dir, sizeof(w->dir), "%s/rep-audit-%s", it_tmpdir(), name);
	snprintf(w->log, sizeof(w->log), "%s/warden-rep-%s.log", it_tmpdir(),
	    name);
	snprintf(w->cfg, sizeof(w->cfg), "%s/rep-%s.yaml", it_tmpdir(), name);
	snprintf(w->url, sizeof(w->url), "http://127.0.0.1:%d/v1/chat/"
	    "completions", w->port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", w->port);
	it_write_file(w->cfg, text, 0600);
	free(text);
	w->pid = it_spawn(argv, w->log);
	ck_assert_msg(it_wait_port(w->port, 8000), "warden did not come up; "
	    "see %s", w->log);
}

static void
send(const struct rw *w, const char *key, const char *model,
    const char *classes, long want)
{
	char cls[128];
	const char *h[] = { cls, NULL };
	char *body = it_chat_body(model, "tok-report", false);
	struct it_resp r;

	snprintf(cls, sizeof(cls), "X-Warden-Data-Class: %s", classes);
	if (classes == NULL)
		h[0] = NULL;
	it_chat_at(w->url, key, h, body, 10000, &r);
	ck_assert_msg(r.status == want, "want %ld, got %ld: %s", want, r.status,
	    r.body);
	it_resp_free(&r);
	free(body);
}

/* Run `warden ARGS`; exit status, output (stdout+stderr) in *out. */
static int
warden(char **out, const char *fmt, ...) __attribute__((format(printf, 2,
    3)));

static int
warden(char **out, const char *fmt, ...)
{
	char args[2048], path[256];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/rep-cmd.out", it_tmpdir());
	rc = sh("%s %s >%s 2>&1", getenv("WARDEN_BIN"), args, path);
	if (out != NULL)
		*out = it_read_file(path, NULL);
	return rc;
}

static json_t *
jpath(json_t *j, const char *a, const char *b)
{
	return json_object_get(json_object_get(j, a), b);
}

/* The register row of (class, country), or NULL. */
static json_t *
reg_row(json_t *reg, const char *cls, const char *country)
{
	size_t i;
	json_t *r;

	json_array_foreach(reg, i, r)
		if (strcmp(json_string_value(json_object_get(r, "data_class")),
		    cls) == 0 && strcmp(json_string_value(json_object_get(r,
		    "country")), country) == 0)
			return r;
	return NULL;
}

/* Chromium renders path: its DOM as text (caller frees); png written. */
static char *
render(const char *html, const char *png)
{
	char dom[512];
	char *text;

	snprintf(dom, sizeof(dom), "%s.dom", html);
	unlink(png);
	ck_assert_msg(sh("timeout 60 chromium --headless --no-sandbox "
	    "--disable-gpu --hide-scrollbars --window-size=1200,1600 "
	    "--screenshot=%s file://%s >/dev/null 2>&1", png, html) == 0,
	    "chromium --screenshot failed (is Debian's chromium installed?)");
	ck_assert_int_eq(sh("timeout 60 chromium --headless --no-sandbox "
	    "--disable-gpu --dump-dom file://%s >%s 2>/dev/null", html, dom), 0);
	text = it_read_file(dom, NULL);
	ck_assert_ptr_nonnull(text);
	{
		struct stat st;
		char *head = it_read_file(png, NULL);

		ck_assert_msg(stat(png, &st) == 0 && st.st_size > 1000,
		    "no screenshot %s", png);
		ck_assert(memcmp(head, "\x89PNG", 4) == 0);
		free(head);
	}
	return text;
}

static void
assert_in(const char *text, const char *needle)
{
	ck_assert_msg(strstr(text, needle) != NULL, "'%s' missing", needle);
}

START_TEST(stats_register_report_count_known_traffic)
{
	struct rw w;
	char *out, pub[512], html[512], png[512], *dom;
	json_t *st, *reg, *row;

	rw_start(&w, "known");
	/* 5 of t3 allowed: personal+health, to p-eu (IE, the first
	 * compliant route); 3 of t3 denied by eu-personal (o3 only on p-us);
	 * 2 of t1 allowed to p-eu. */
	for (int i = 0; i < 5; i++)
		send(&w, IT_KEY_T3, "gpt-4o", NULL, 200);
	for (int i = 0; i < 3; i++)
		send(&w, IT_KEY_T3, "o3", "personal", 403);
	for (int i = 0; i < 2; i++)
		send(&w, IT_KEY_T1, "gpt-4o", NULL, 200);
	ck_assert_int_eq(it_stop(w.pid, SIGTERM), 0);

	/* stats */
	ck_assert_int_eq(warden(&out, "audit stats %s --tenant t3 --format json",
	    w.dir), 0);
	st = json_loads(out, 0, NULL);
	ck_assert_msg(st != NULL, "%s", out);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "requests")), 8);
	ck_assert_int_eq(json_integer_value(jpath(st, "verdict", "allow")), 5);
	ck_assert_int_eq(json_integer_value(jpath(st, "verdict", "deny")), 3);
	ck_assert_int_eq(json_integer_value(jpath(st, "denied_by_rule",
	    "eu-personal")), 3);
	ck_assert_int_eq(json_object_size(json_object_get(st, "denied_by_rule")),
	    1);
	ck_assert_int_eq(json_integer_value(jpath(st, "country", "IE")), 5);
	ck_assert_int_eq(json_integer_value(jpath(st, "route", "p-eu")), 5);
	ck_assert_int_eq(json_integer_value(jpath(st, "data_class", "health")),
	    5);
	ck_assert_int_eq(json_integer_value(jpath(st, "data_class",
	    "personal")), 8);
	ck_assert_int_eq(json_integer_value(jpath(st, "tenant", "t3")), 8);
	json_decref(st);
	free(out);
	ck_assert_int_eq(warden(&out, "audit stats %s --since 2000-01-01T00:00:00Z "
	    "--until 2099-01-01T00:00:00Z", w.dir), 0);
	assert_in(out, "requests: 10");
	free(out);
	ck_assert_int_eq(warden(&out, "audit stats %s --since 2099-01-01T00:00:00Z",
	    w.dir), 0);
	assert_in(out, "requests: 0");
	free(out);
	ck_assert_int_eq(warden(&out, "audit stats %s", w.dir), 0);
	assert_in(out, "requests: 10");
	assert_in(out, "denials by rule:");
	free(out);

	/* register */
	ck_assert_int_eq(warden(&out, "audit register %s --tenant t3 --format "
	    "json", w.dir), 0);
	st = json_loads(out, 0, NULL);
	ck_assert_msg(st != NULL, "%s", out);
	reg = json_object_get(st, "transfers");
	ck_assert_int_eq(json_array_size(reg), 2);
	row = reg_row(reg, "personal", "IE");
	ck_assert_ptr_nonnull(row);
	ck_assert_int_eq(json_integer_value(json_object_get(row, "requests")), 5);
	ck_assert_int_eq(json_integer_value(jpath(row, "legal_basis",
	    "not_required")), 5);
	ck_assert_int_eq(json_integer_value(jpath(row, "routes", "p-eu")), 5);
	ck_assert_int_eq(json_integer_value(jpath(row, "rules",
	    "eu-personal")), 5);
	ck_assert_ptr_nonnull(reg_row(reg, "health", "IE"));
	json_decref(st);
	free(out);
	ck_assert_int_eq(warden(&out, "audit register %s --tenant t1", w.dir), 0);
	assert_in(out, "\"(none declared)\",\"IE\",2,\"p-eu=2\",\"t1-scc=2\","
	    "\"scc=2\"");
	free(out);
	ck_assert_int_eq(warden(&out, "audit register %s --tenant t3", w.dir), 0);
	assert_in(out, "\"health\",\"IE\",5,\"p-eu=5\"");
	free(out);
	ck_assert_int_eq(warden(&out, "audit register %s --tenant t3 --art30 "
	    "-c %s", w.dir, w.cfg), 0);
	assert_in(out, "claims handling");
	assert_in(out, "policy holders");
	assert_in(out, "\"legal_basis\": \"dpf\"");
	free(out);

	/* report, verified with the TPM key */
	snprintf(pub, sizeof(pub), "%s/rep-pub.pem", it_tmpdir());
	ck_assert_int_eq(sh("%s audit pubkey --secrets-store %s >%s",
	    getenv("WARDEN_BIN"), store, pub), 0);
	snprintf(html, sizeof(html), "%s/rep-report.html", it_tmpdir());
	snprintf(png, sizeof(png), "%s/rep-report.png", it_tmpdir());
	ck_assert_int_eq(warden(&out, "audit report %s --tenant t3 --pubkey %s "
	    "-c %s -o %s", w.dir, pub, w.cfg, html), 0);
	free(out);
	dom = render(html, png);
	assert_in(dom, "VERIFIED: every hash");
	assert_in(dom, "id=\"n-requests\">8<");
	assert_in(dom, "id=\"n-allow\">5<");
	assert_in(dom, "id=\"n-deny\">3<");
	assert_in(dom, "eu-personal");
	assert_in(dom, "not_required (5)");
	assert_in(dom, "claims handling");
	assert_in(dom, "<svg");
	ck_assert_ptr_null(strstr(dom, "NOT VERIFIED"));
	free(dom);

	/* The same log against another key: the page says so, no figures. */
	ck_assert_int_eq(sh("openssl ecparam -name prime256v1 -genkey -noout "
	    "-out %s/rep-other.key 2>/dev/null && openssl ec -in "
	    "%s/rep-other.key -pubout -out %s/rep-other.pem 2>/dev/null",
	    it_tmpdir(), it_tmpdir(), it_tmpdir()), 0);
	ck_assert_int_ne(warden(&out, "audit report %s --tenant t3 --pubkey "
	    "%s/rep-other.pem -o %s", w.dir, it_tmpdir(), html), 0);
	free(out);
	dom = render(html, png);
	assert_in(dom, "NOT VERIFIED");
	ck_assert_ptr_null(strstr(dom, "n-requests"));
	free(dom);

	/* tail: one line per record; then a tampered line is loud. */
	ck_assert_int_eq(warden(&out, "audit tail %s --tenant t3 --verdict deny",
	    w.dir), 0);
	{
		int n = 0;

		for (char *p = out; (p = strstr(p, " verdict=deny")) != NULL; p++)
			n++;
		ck_assert_int_eq(n, 3);
	}
	assert_in(out, "rules=eu-personal");
	free(out);
	/* One byte of record 3 changed: its hash no longer holds. */
	ck_assert_int_eq(sh("sed -i '3s/\"instance\":\"/\"instance\":\"X/' "
	    "%s/audit-000001.jsonl", w.dir), 0);
	ck_assert_int_eq(warden(&out, "audit tail %s", w.dir), 1);
	assert_in(out, "CHAIN BROKEN");
	free(out);
	ck_assert_int_ne(warden(&out, "audit stats %s", w.dir), 0);
	free(out);
	ck_assert_int_eq(warden(&out, "audit report %s --pubkey %s -o %s",
	    w.dir, pub, html), 1);
	free(out);
	ck_assert(it_file_contains(html, "NOT VERIFIED"));
}
END_TEST

START_TEST(tail_follows_the_live_log_across_segments)
{
	struct rw w;
	char outp[256], *text;
	char *argv[] = { getenv("WARDEN_BIN"), "audit", "tail", "-f", NULL,
		NULL };
	pid_t tail;
	int n = 0, segs;

	rw_start(&w, "tail");
	argv[4] = w.dir;
	snprintf(outp, sizeof(outp), "%s/rep-tail.out", it_tmpdir());
	unlink(outp);
	tail = it_spawn(argv, outp);
	/* ~1.2 KiB a record, 4 KiB segments: 12 requests rotate often. */
	for (int i = 0; i < 12; i++)
		send(&w, IT_KEY_T1, "gpt-4o", NULL, 200);
	for (int waited = 0; waited < 5000; waited += 100) {
		text = it_read_file(outp, NULL);
		n = 0;
		for (char *p = text; p && (p = strstr(p, " tenant=t1 ")); p++)
			n++;
		free(text);
		if (n >= 12)
			break;
		usleep(100000);
	}
	ck_assert_int_eq(n, 12);
	segs = sh("test -e %s/audit-000003.jsonl", w.dir);
	ck_assert_msg(segs == 0, "the log did not rotate");
	ck_assert_int_eq(it_stop(tail, SIGINT), 0);
	it_stop(w.pid, SIGTERM);
	ck_assert(!it_file_contains(outp, "CHAIN BROKEN"));
}
END_TEST

START_TEST(policy_report_draws_graphs_and_the_route_matrix)
{
	char html[512], png[512], *out, *dom;

	snprintf(html, sizeof(html), "%s/rep-policy.html", it_tmpdir());
	snprintf(png, sizeof(png), "%s/rep-policy.png", it_tmpdir());
	ck_assert_int_eq(warden(&out, "policy report -c rules/example.yaml -o %s",
	    html), 0);
	free(out);
	dom = render(html, png);
	/* Both example agents drawn by dot, a cut edge marked. */
	assert_in(dom, "agent support-bot (tenant acme-health)");
	assert_in(dom, "agent shop-assistant (tenant sakura-retail)");
	assert_in(dom, "class=\"graph\"");
	assert_in(dom, "cut after labelled data: no-personal-data-out");
	/* globex-travel's health data: only azure-de is compliant (EEA,
	 * zero retention); acme-health's: openai-eu and azure-de. */
	assert_in(dom, "<th>globex-travel</th><td class=\"okc\">openai-us (US)"
	    "<br>azure-de (DE)<br>azure-jp (JP)<br></td><td class=\"okc\">"
	    "openai-us (US)<br>azure-de (DE)<br>azure-jp (JP)<br></td><td "
	    "class=\"okc\">azure-de (DE)<br></td>");
	assert_in(dom, "<th>acme-health</th>");
	assert_in(dom, "<td class=\"okc\">openai-eu (IE)<br>azure-de (DE)<br>"
	    "</td>");
	free(dom);
	/* Without support-bot's flow rule, its leak is drawn and listed. */
	{
		char rules[512], *text = it_read_file("rules/example.yaml", NULL);

		ck_assert_ptr_nonnull(text);
		subst(&text, "    flows:\n      - id: no-personal-data-out\n"
		    "        deny: { from_label: personal, to_sink: external }\n", "");
		snprintf(rules, sizeof(rules), "%s/rep-leak.yaml", it_tmpdir());
		it_write_file(rules, text, 0600);
		free(text);
		ck_assert_int_eq(warden(&out, "policy report -c %s -o %s", rules,
		    html), 0);
		free(out);
		dom = render(html, png);
		assert_in(dom, "1 leak path, drawn in red (LEAK).");
		assert_in(dom, ">LEAK</text>");
		assert_in(dom, "LEAK: labelled data from 'read_customer' can reach "
		    "an external sink: read_customer -&gt; send_email");
		free(dom);
	}
	/* Without Graphviz: a clean failure, no page. */
	unlink(html);
	ck_assert_int_eq(sh("PATH=/nonexistent %s policy report -c "
	    "rules/example.yaml -o %s >%s/rep-nodot.out 2>&1",
	    getenv("WARDEN_BIN"), html, it_tmpdir()), 2);
	ck_assert(access(html, F_OK) != 0);
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/rep-nodot.out", it_tmpdir());
		ck_assert(it_file_contains(p, "`dot` is not installed"));
	}
}
END_TEST

Suite *
suite_reports(void)
{
	Suite *s = suite_create("reports");
	TCase *tc = tcase_create("reports");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stats_register_report_count_known_traffic);
	tcase_add_test(tc, tail_follows_the_live_log_across_segments);
	tcase_add_test(tc, policy_report_draws_graphs_and_the_route_matrix);
	suite_add_tcase(s, tc);
	return s;
}
