/*
 * cli_report.c - the commands for auditors and policy reviewers (issue
 * 18): `warden audit stats | tail | register | report` and
 * `warden policy report`.
 *
 * The audit commands read the log through audit/ (aud_stats, aud_tail,
 * aud_report_html); what needs the rules (the art. 30 extract, the
 * policy report) is put together here, where both modules are known.
 * The policy report draws each agent's tool graph with Graphviz's `dot`,
 * run as a child with a time limit and a bounded output.
 */
#include "gateway/gw_int.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/aud.h"

#define DOT_TIMEOUT_MS 10000
#define DOT_MAX_SVG ((size_t)4 << 20)

static volatile int tail_stop;

static void
on_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

static int
usage(const char *what)
{
	gw_cli_usage(stderr, "audit", what);
	return 2;
}

static int
usage_policy(void)
{
	gw_cli_usage(stderr, "policy", "report");
	return 2;
}

/* What the rules declare for tenant t: the art. 30 extract. */
static json_t *
art30_json(const struct pol_snapshot *s, const struct pol_tenant *t)
{
	json_t *a = json_object(), *p = json_array(), *c = json_array();
	json_t *cls = json_array(), *rec = json_array(), *ctry = json_array();
	char buf[96];

	for (size_t i = 0; i < t->npurposes; i++)
		json_array_append_new(p, json_string(t->purposes[i]));
	for (size_t i = 0; i < t->ncategories; i++)
		json_array_append_new(c, json_string(t->categories[i]));
	for (size_t b = 0; b < s->nclasses; b++)
		if ((t->classes | t->may_omit) & (1ull << b))
			json_array_append_new(cls, json_string(s->classes[b]));
	for (size_t r = 0; r < t->nroutes; r++) {
		const struct pol_provider *pr = t->routes[r];
		bool seen = false;
		size_t i;
		json_t *v;

		if (pr->zdr)
			snprintf(buf, sizeof(buf), "zero data retention");
		else if (pr->retention_days >= 0)
			snprintf(buf, sizeof(buf), "%d days", pr->retention_days);
		else
			snprintf(buf, sizeof(buf), "unknown");
		json_array_append_new(rec, json_pack("{s:s,s:s,s:s?,s:s}", "route",
		    pr->id, "country", pr->country, "legal_basis", pr->legal_basis,
		    "retention", buf));
		json_array_foreach(ctry, i, v)
			seen |= strcmp(json_string_value(v), pr->country) == 0;
		if (!seen)
			json_array_append_new(ctry, json_string(pr->country));
	}
	snprintf(buf, sizeof(buf), "%s, %d days (audit.payloads; rules' keep "
	    "may say more)", pol_keep_name(s->keep), s->keep_ttl_days);
	json_object_set_new(a, "tenant", json_string(t->id));
	json_object_set_new(a, "controller", t->controller ?
	    json_string(t->controller) : json_null());
	json_object_set_new(a, "purposes", p);
	json_object_set_new(a, "categories", c);
	json_object_set_new(a, "data_classes", cls);
	json_object_set_new(a, "recipients", rec);
	json_object_set_new(a, "countries", ctry);
	json_object_set_new(a, "max_retention_days", t->max_retention_days >= 0
	    ? json_integer(t->max_retention_days) : json_null());
	json_object_set_new(a, "warden_keeps", json_string(buf));
	json_object_set_new(a, "policy_version", json_string(s->version));
	return a;
}

static const struct pol_tenant *
tenant_named(const struct pol_snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->ntenants; i++)
		if (strcmp(s->tenants[i].id, id) == 0)
			return &s->tenants[i];
	fprintf(stderr, "warden: no tenant '%s' in the rules\n", id);
	return NULL;
}

/* `warden audit stats | tail | register | report` */
int
gw_cmd_audit_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "tenant", required_argument, NULL, 't' },
		{ "verdict", required_argument, NULL, 'v' },
		{ "format", required_argument, NULL, 'F' },
		{ "pubkey", required_argument, NULL, 'p' },
		{ "pin", required_argument, NULL, 'P' },
		{ "config", required_argument, NULL, 'c' },
		{ "art30", no_argument, NULL, 'A' },
		{ "follow", no_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *what = argv[1], *format = NULL, *pubkey = NULL, *pin = NULL;
	const char *config = NULL, *output = NULL, *dir;
	struct aud_stats_opts so = { 0 };
	struct aud_tail_opts to = { .poll_ms = 200, .stop = &tail_stop };
	struct pol_snapshot *snap = NULL;
	bool art30 = false;
	json_t *st = NULL;
	char why[512];
	int ch, rc = 2;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "fc:o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
		case 'u':
			if (aud_parse_ts(optarg) == 0) {
				fprintf(stderr, "warden: --%s wants RFC 3339 UTC, e.g. "
				    "2026-11-25T00:00:00Z\n", ch == 's' ? "since" : "until");
				return 2;
			}
			*(ch == 's' ? &so.since_us : &so.until_us) = aud_parse_ts(optarg);
			break;
		case 't':
			so.tenant = to.tenant = optarg;
			break;
		case 'v':
			to.verdict = optarg;
			break;
		case 'F':
			format = optarg;
			break;
		case 'p':
			pubkey = optarg;
			break;
		case 'P':
			pin = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'A':
			art30 = true;
			break;
		case 'f':
			to.follow = true;
			break;
		case 'o':
			output = optarg;
			break;
		default:
			return usage(what);
		}
	}
	if (optind != argc - 1)
		return usage(what);
	dir = argv[optind];
	if (strcmp(what, "tail") == 0) {
		if (format || pubkey || pin || config || output || art30 ||
		    so.since_us || so.until_us)
			return usage(what);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGPIPE, SIG_IGN);
		return aud_tail(dir, &to, stdout);
	}
	if (to.follow || to.verdict || (pin && strcmp(what, "report") != 0))
		return usage(what);
	if (strcmp(what, "stats") == 0) {
		if (format && strcmp(format, "text") && strcmp(format, "json"))
			return usage(what);
		if ((rc = aud_stats(dir, &so, &st, why, sizeof(why))) != 0) {
			fprintf(stderr, "warden: %s\n", why);
			return rc;
		}
		if (format && strcmp(format, "json") == 0) {
			json_dumpf(st, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
		} else {
			aud_stats_print(st, stdout);
		}
		json_decref(st);
		return 0;
	}
	if (config != NULL && pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	if (strcmp(what, "register") == 0) {
		const struct pol_tenant *t = NULL;

		if (so.tenant == NULL || (format && strcmp(format, "csv") &&
		    strcmp(format, "json")) || (art30 && (snap == NULL ||
		    (format && strcmp(format, "json"))))) {
			rc = usage(what);
			goto out;
		}
		if (snap && (t = tenant_named(snap, so.tenant)) == NULL)
			goto out;
		if ((rc = aud_stats(dir, &so, &st, why, sizeof(why))) != 0) {
			fprintf(stderr, "warden: %s\n", why);
			goto out;
		}
		if (art30) {
			json_t *doc = json_pack("{s:o,s:O}", "art30", art30_json(snap,
			    t), "transfers", json_object_get(st, "register"));

			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else {
			aud_register_print(st, so.tenant, format == NULL ||
			    strcmp(format, "csv") == 0, stdout);
		}
		rc = 0;
		goto out;
	}
	if (strcmp(what, "report") == 0) {
		struct aud_report_opts ro = { so.tenant, so.since_us, so.until_us,
			pubkey, NULL, pin };
		const struct pol_tenant *t;
		FILE *f;

		if ((pubkey == NULL) == (pin == NULL) || output == NULL || format ||
		    art30) {
			rc = usage(what);
			goto out;
		}
		if (snap != NULL && so.tenant != NULL) {
			if ((t = tenant_named(snap, so.tenant)) == NULL)
				goto out;
			ro.art30 = art30_json(snap, t);
		}
		if ((f = fopen(output, "w")) == NULL) {
			fprintf(stderr, "warden: %s: %s\n", output, strerror(errno));
			json_decref(ro.art30);
			goto out;
		}
		rc = aud_report_html(dir, &ro, f, stderr);
		if (fclose(f) != 0) {
			fprintf(stderr, "warden: %s: %s\n", output, strerror(errno));
			rc = 2;
		}
		json_decref(ro.art30);
		fprintf(stderr, "%s: %s\n", output, rc == 0 ? "report written "
		    "(verified with the trusted key)" : "written, saying on top "
		    "that the log does NOT verify with the trusted key");
		goto out;
	}
	rc = usage(NULL);
out:
	json_decref(st);
	pol_snapshot_unref(snap);
	return rc;
}

/* ---- the policy report ---- */

/*
 * Run `dot -Tsvg` on text; *svg gets its output (at most DOT_MAX_SVG
 * bytes, within DOT_TIMEOUT_MS).  false with why if dot is missing, slow,
 * fails or says too much.
 */
static bool
run_dot(const char *text, char **svg, char *why, size_t whylen)
{
	FILE *in = tmpfile();
	int p[2] = { -1, -1 }, status = 0;
	pid_t pid = -1;
	char *buf = NULL;
	size_t len = 0;
	bool ok = false, timed_out = false;
	struct timespec t0, t1;

	*svg = NULL;
	if (in == NULL || fputs(text, in) < 0 || fflush(in) != 0 ||
	    fseek(in, 0, SEEK_SET) != 0 || pipe2(p, O_CLOEXEC) != 0 ||
	    (buf = malloc(DOT_MAX_SVG + 1)) == NULL) {
		snprintf(why, whylen, "cannot prepare dot: %s", strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char *const argv[] = { "dot", "-Tsvg", NULL };

		if (dup2(fileno(in), 0) < 0 || dup2(p[1], 1) < 0)
			_exit(126);
		execvp("dot", argv);
		_exit(127);
	}
	close(p[1]);
	p[1] = -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pf = { p[0], POLLIN, 0 };
		long el;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
		    1000000;
		if (el >= DOT_TIMEOUT_MS) {
			timed_out = true;
			break;
		}
		if (poll(&pf, 1, (int)(DOT_TIMEOUT_MS - el)) <= 0)
			continue;
		n = read(p[0], buf + len, DOT_MAX_SVG + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > DOT_MAX_SVG)
			break;
	}
	if (timed_out || len > DOT_MAX_SVG)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		snprintf(why, whylen, "dot took longer than %d ms", DOT_TIMEOUT_MS);
	else if (len > DOT_MAX_SVG)
		snprintf(why, whylen, "dot's SVG is larger than %zu bytes",
		    DOT_MAX_SVG);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(why, whylen, "Graphviz's `dot` is not installed "
		    "(Debian: apt-get install graphviz)");
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(why, whylen, "dot failed (status %d)", status);
	else {
		buf[len] = '\0';
		*svg = buf;
		buf = NULL;
		ok = true;
	}
out:
	if (in)
		fclose(in);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	free(buf);
	return ok;
}

/* One tenant x class cell: the compliant routes over every model. */
static void
matrix_cell(FILE *f, const struct pol_snapshot *s, const struct pol_tenant *t,
    size_t cls)
{
	char hdr[1024];
	size_t n = 0;
	const struct pol_provider *seen[POL_MAX_ROUTES];
	size_t nseen = 0;
	char denied[256] = "";
	uint64_t must = t->classes & ~t->may_omit & ~(1ull << cls);

	n = (size_t)snprintf(hdr, sizeof(hdr), "%s", s->classes[cls]);
	for (size_t b = 0; b < s->nclasses && n < sizeof(hdr); b++)
		if (must & (1ull << b))
			n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, ",%s",
			    s->classes[b]);
	for (size_t r = 0; r < t->nroutes; r++) {
		const struct pol_provider *p = t->routes[r];

		for (size_t m = 0; m < p->nmodels; m++) {
			struct pol_facts fa = { .tenant = t, .model = p->models[m],
				.hdr_classes = hdr };
			struct pol_decision d;

			if (pol_decide(s, &fa, &d) != WD_OK)
				continue;
			if (d.verdict == POL_DENY && denied[0] == '\0')
				snprintf(denied, sizeof(denied), "%s", d.code);
			for (size_t i = 0; i < d.nroutes; i++) {
				size_t k;

				for (k = 0; k < nseen && seen[k] != d.routes[i]; k++)
					;
				if (k == nseen && nseen < POL_MAX_ROUTES)
					seen[nseen++] = d.routes[i];
			}
		}
	}
	fprintf(f, "<td class=\"%s\">", nseen ? "okc" : "noc");
	for (size_t r = 0; r < t->nroutes; r++)
		for (size_t k = 0; k < nseen; k++)
			if (seen[k] == t->routes[r]) {
				aud_html_esc(f, t->routes[r]->id);
				fprintf(f, " (%s)<br>", t->routes[r]->country);
			}
	if (nseen == 0) {
		fprintf(f, "no compliant route");
		if (denied[0]) {
			fprintf(f, ": ");
			aud_html_esc(f, denied);
		}
	}
	fprintf(f, "</td>");
}

/*
 * The leak paths `policy review` found for agent a (its "LEAK: ... sink:
 * t1 -> t2 -> ..." lines in review) as extra red edges of its dot graph,
 * so the drawing shows them; returns how many paths.
 */
static int
leak_edges(const char *review, const struct pol_agent *a, FILE *df)
{
	const char *p = review;
	bool mine = false;
	size_t idlen = strlen(a->id);
	int n = 0;

	while (p != NULL && *p != '\0') {
		const char *eol = strchr(p, '\n'), *path;
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (strncmp(p, "agent ", 6) == 0)
			mine = len > 6 + idlen && strncmp(p + 6, a->id, idlen) == 0 &&
			    p[6 + idlen] == ' ';
		else if (mine && (path = memmem(p, len, "sink: ", 6)) != NULL &&
		    memmem(p, len, "LEAK:", 5) != NULL) {
			char *copy = strndup(path + 6, len - (size_t)(path + 6 - p));
			char *save = NULL, *prev = NULL;

			for (char *t = copy ? strtok_r(copy, " ", &save) : NULL;
			    t != NULL; t = strtok_r(NULL, " ", &save)) {
				if (strcmp(t, "->") == 0)
					continue;
				if (prev != NULL)
					fprintf(df, "  \"%s\" -> \"%s\" [color=\"#d00000\", "
					    "penwidth=3, fontcolor=\"#d00000\", label=\"LEAK\"]"
					    ";\n", prev, t);
				prev = t;
			}
			free(copy);
			n++;
		}
		p = eol ? eol + 1 : NULL;
	}
	return n;
}

static int
policy_report(const struct pol_snapshot *s, FILE *f)
{
	char *review = NULL, *line, *save = NULL, why[256];
	size_t rlen = 0;
	FILE *rf = open_memstream(&review, &rlen);
	int leak, rc = 0;

	leak = rf ? pol_review(s, rf) : 2;
	if (rf)
		fclose(rf);
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\""
	    "utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\""
	    "default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
	    "<title>warden policy report</title>\n<style>body{font:14px/1.4 "
	    "sans-serif;margin:24px 40px;color:#222}h2{border-bottom:1px solid "
	    "#ccc;font-size:17px;margin-top:28px}table{border-collapse:collapse}"
	    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;"
	    "vertical-align:top}th{background:#eee}.okc{background:#eaf6ea}"
	    ".noc{background:#fbe9e9;color:#900}.leak{color:#b00;font-weight:"
	    "bold}pre{background:#f6f6f6;padding:8px}svg{max-width:100%%;height:auto}"
	    "</style></head><body>\n"
	    "<h1>warden policy report</h1>\n<p>Rules <code>");
	aud_html_esc(f, s->path);
	fprintf(f, "</code>, policy_version <code>%s</code>.</p>\n", s->version);

	fprintf(f, "<h2>Compliant routes per tenant and data class</h2>\n"
	    "<p>What <code>pol_decide</code> allows for a request that declares "
	    "the class (and what the tenant must always declare), over every "
	    "model the tenant's routes serve.</p>\n<table id=\"matrix\"><tr>"
	    "<th>tenant</th>");
	for (size_t c = 0; c < s->nclasses; c++) {
		fprintf(f, "<th>");
		aud_html_esc(f, s->classes[c]);
		fprintf(f, "</th>");
	}
	fprintf(f, "</tr>\n");
	for (size_t i = 0; i < s->ntenants; i++) {
		fprintf(f, "<tr><th>");
		aud_html_esc(f, s->tenants[i].id);
		fprintf(f, "</th>");
		for (size_t c = 0; c < s->nclasses; c++)
			matrix_cell(f, s, &s->tenants[i], c);
		fprintf(f, "</tr>\n");
	}
	fprintf(f, "</table>\n<h2>Agents' tool graphs</h2>\n<p>Red boxes: "
	    "external sinks; orange: tools whose results carry labelled data; "
	    "red dashed edges: cut by a flow rule.  Leak paths (labelled data "
	    "reaching an external sink) are thick red edges labelled LEAK, and "
	    "listed in red below.</p>\n");
	if (s->nagents == 0)
		fprintf(f, "<p>No agents.</p>\n");
	for (size_t i = 0; i < s->nagents; i++) {
		const struct pol_agent *a = &s->agents[i];
		char *dot = NULL, *svg = NULL;
		size_t dlen = 0;
		FILE *df = open_memstream(&dot, &dlen);

		fprintf(f, "<h3 class=\"agent\">agent ");
		aud_html_esc(f, a->id);
		fprintf(f, " (tenant ");
		aud_html_esc(f, a->tenant->id);
		fprintf(f, ")</h3>\n");
		if (df == NULL)
			continue;
		pol_graph(s, a, "dot", df);
		fflush(df);
		/* Before the closing brace: the leak paths, drawn in red. */
		{
			char *brace = dot ? strrchr(dot, '}') : NULL;
			int leaks;

			if (brace != NULL)
				fseeko(df, (off_t)(brace - dot), SEEK_SET);
			leaks = review ? leak_edges(review, a, df) : 0;
			fprintf(df, "}\n");
			if (leaks > 0)
				fprintf(f, "<p class=\"leak\">%d leak path%s, drawn in "
				    "red (LEAK).</p>\n", leaks, leaks == 1 ? "" : "s");
		}
		fclose(df);
		if (!run_dot(dot, &svg, why, sizeof(why))) {
			fprintf(stderr, "warden: agent '%s': %s\n", a->id, why);
			rc = 2;
		} else {
			/* dot's SVG escapes the names; drop its XML prolog. */
			const char *start = strstr(svg, "<svg");

			fputs(start ? start : "", f);
		}
		free(svg);
		free(dot);
	}
	fprintf(f, "<h2>Review</h2>\n<pre id=\"review\">");
	for (line = review ? strtok_r(review, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		bool l = strstr(line, "LEAK") != NULL;

		fprintf(f, "%s", l ? "<span class=\"leak\">" : "");
		aud_html_esc(f, line);
		fprintf(f, "%s\n", l ? "</span>" : "");
	}
	fprintf(f, "</pre>\n<p>%s</p>\n</body></html>\n", leak == 1 ?
	    "<span class=\"leak\">At least one leak path: see above.</span>" :
	    "No leak path.");
	free(review);
	return rc;
}

/* `warden policy report -c RULES -o FILE.html` */
int
gw_cmd_policy_report(int argc, char **argv)
{
	const char *config = NULL, *output = NULL;
	struct pol_snapshot *snap;
	FILE *f;
	int ch, rc;

	optind = 2;
	while ((ch = getopt(argc, argv, "c:o:")) != -1) {
		if (ch == 'c')
			config = optarg;
		else if (ch == 'o')
			output = optarg;
		else
			return usage_policy();
	}
	if (config == NULL || output == NULL || optind != argc)
		return usage_policy();
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	if ((f = fopen(output, "w")) == NULL) {
		fprintf(stderr, "warden: %s: %s\n", output, strerror(errno));
		pol_snapshot_unref(snap);
		return 2;
	}
	rc = policy_report(snap, f);
	if (fclose(f) != 0)
		rc = 2;
	if (rc != 0) {
		unlink(output);
		fprintf(stderr, "warden: no report written\n");
	} else {
		fprintf(stderr, "%s: policy report written\n", output);
	}
	pol_snapshot_unref(snap);
	return rc;
}
