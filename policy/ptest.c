/*
 * ptest.c - `warden test`: policy unit tests written in YAML.  Each case
 * is a request (tenant or key, headers, model) and what the decision must
 * be; the runner decides each with pol_decide() and compares.
 *
 *   tests:
 *     - name: EU health data stays on zero-retention routes in the EU
 *       tenant: acme-health           # or  key: wk-...
 *       headers: { X-Warden-Data-Class: "personal, health" }
 *       request: { model: gpt-4o }    # stream: true|false
 *       expect:
 *         verdict: allow              # allow | deny
 *         route: openai-eu            # first route tried
 *         routes: [openai-eu, azure-de]
 *         status: 403                 # deny only
 *         code: residency             # deny only
 *         rules: [gdpr-transfer]      # exactly these rules applied
 *         keep: hash                  # what warden may keep
 *
 * A case may name an agent (its tenant is the agent's) or an app of the
 * tenant, and a sequence of tool calls, each with the verdict expected at
 * that step and, when it is refused, the rule that refuses it.  The steps
 * run in order in one session (one pol_tstate), as the gateway would:
 *
 *     - name: support-bot may not mail a customer record out
 *       agent: support-bot
 *       tools:
 *         - { history: read_customer, expect: allow }  # a call made before
 *         - { offered: send_email, expect: deny, rule: no-personal-data-out }
 *         - { answer: create_ticket, expect: allow }   # the model's call
 *
 * `history` and `answer` calls move the session on when allowed;
 * `offered` tools are only checked.  A refused offered tool or answer
 * call is `strip` for an agent with on_violation: strip, else `deny`; a
 * refused history call is always `deny`.  `request` and `expect` are
 * optional in a case with `tools`.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const case_keys[] = {
	"name", "tenant", "key", "headers", "request", "expect", "agent", "app",
	"tools", NULL
};
static const char *const step_keys[] = {
	"history", "offered", "answer", "expect", "rule", NULL
};

#define PTEST_MAX_STEPS 256

enum step_kind { STEP_HISTORY, STEP_OFFERED, STEP_ANSWER };

struct tstep {
	enum step_kind kind;
	char *tool;
	char *expect;			/* allow | deny | strip */
	char *rule;			/* NULL: not checked */
	size_t line;
};
static const char *const expect_keys[] = {
	"verdict", "route", "routes", "status", "code", "rules", "keep", NULL
};

struct tcase {
	char *name;
	const struct pol_tenant *tenant;
	char *hdr_classes, *hdr_region;
	char *model;
	bool stream;
	char *verdict, *route, *code, *keep;
	char **routes, **rules;
	size_t nroutes, nrules;
	bool has_routes, has_rules;
	long long status;
	const struct pol_agent *agent;	/* tool steps run as this agent */
	char *app;
	struct tstep *steps;
	size_t nsteps;
	bool has_request;
};

static void
tcase_free(struct tcase *c)
{
	free(c->name);
	free(c->hdr_classes);
	free(c->hdr_region);
	free(c->model);
	free(c->verdict);
	free(c->route);
	free(c->code);
	free(c->keep);
	for (size_t i = 0; i < c->nroutes; i++)
		free(c->routes[i]);
	free(c->routes);
	for (size_t i = 0; i < c->nrules; i++)
		free(c->rules[i]);
	free(c->rules);
	free(c->app);
	for (size_t i = 0; i < c->nsteps; i++) {
		free(c->steps[i].tool);
		free(c->steps[i].expect);
		free(c->steps[i].rule);
	}
	free(c->steps);
	memset(c, 0, sizeof(*c));
}

static void
read_headers(struct pol_walk *w, yaml_node_t *n, struct tcase *c)
{
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "headers"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);

		if (k == NULL || v == NULL || !pol_is_scalar(w, k, "header name"))
			continue;
		if (strcasecmp(pol_scalar(k), "X-Warden-Data-Class") == 0)
			pol_str(w, v, "X-Warden-Data-Class", &c->hdr_classes);
		else if (strcasecmp(pol_scalar(k), "X-Warden-Subject-Region") == 0)
			pol_str(w, v, "X-Warden-Subject-Region", &c->hdr_region);
		else
			pol_err(w, k, "header '%s' does not affect policy "
			    "decisions", pol_scalar(k));
	}
}

static void
read_expect(struct pol_walk *w, yaml_node_t *n, struct tcase *c)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "expect"))
		return;
	pol_check_keys(w, n, expect_keys, "expect");
	if ((v = pol_get(w, n, "verdict")) == NULL)
		pol_err(w, n, "expect without 'verdict'");
	else if (pol_str(w, v, "verdict", &c->verdict) &&
	    strcmp(c->verdict, "allow") != 0 && strcmp(c->verdict, "deny") != 0)
		pol_err(w, v, "verdict must be allow or deny");
	if ((v = pol_get(w, n, "route")) != NULL)
		pol_str(w, v, "route", &c->route);
	if ((v = pol_get(w, n, "code")) != NULL)
		pol_str(w, v, "code", &c->code);
	if ((v = pol_get(w, n, "keep")) != NULL)
		pol_str(w, v, "keep", &c->keep);
	if ((v = pol_get(w, n, "status")) != NULL)
		pol_int(w, v, "status", 100, 599, &c->status);
	if ((v = pol_get(w, n, "routes")) != NULL)
		c->has_routes = v->type == YAML_SEQUENCE_NODE &&
		    (v->data.sequence.items.top == v->data.sequence.items.start ||
		    pol_str_list(w, v, "routes", &c->routes, &c->nroutes));
	if ((v = pol_get(w, n, "rules")) != NULL)
		c->has_rules = v->type == YAML_SEQUENCE_NODE &&
		    (v->data.sequence.items.top == v->data.sequence.items.start ||
		    pol_str_list(w, v, "rules", &c->rules, &c->nrules));
}

static void
read_steps(struct pol_walk *w, yaml_node_t *n, struct tcase *c)
{
	static const char *const kinds[] = { "history", "offered", "answer" };

	if (!pol_is_seq(w, n, "tools"))
		return;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(w, *it), *v;
		struct tstep *st;
		int given = 0;

		if (e == NULL || !pol_is_map(w, e, "tool step"))
			return;
		if (c->nsteps == PTEST_MAX_STEPS) {
			pol_err(w, e, "more than %d tool steps", PTEST_MAX_STEPS);
			return;
		}
		if (!pol_grow(&c->steps, &c->nsteps, sizeof(*c->steps))) {
			pol_err(w, e, "out of memory");
			return;
		}
		st = &c->steps[c->nsteps - 1];
		st->line = e->start_mark.line + 1;
		pol_check_keys(w, e, step_keys, "tool step");
		for (int k = 0; k < 3; k++)
			if ((v = pol_get(w, e, kinds[k])) != NULL) {
				given++;
				st->kind = (enum step_kind)k;
				free(st->tool);
				st->tool = NULL;
				pol_str(w, v, kinds[k], &st->tool);
			}
		if (given != 1)
			pol_err(w, e, "a tool step names one of history, offered, "
			    "answer");
		if ((v = pol_get(w, e, "expect")) == NULL)
			pol_err(w, e, "tool step without 'expect'");
		else if (pol_str(w, v, "expect", &st->expect) &&
		    strcmp(st->expect, "allow") != 0 &&
		    strcmp(st->expect, "deny") != 0 &&
		    strcmp(st->expect, "strip") != 0)
			pol_err(w, v, "expect must be allow, deny or strip");
		if ((v = pol_get(w, e, "rule")) != NULL &&
		    pol_str(w, v, "rule", &st->rule) && st->expect != NULL &&
		    strcmp(st->expect, "allow") == 0)
			pol_err(w, v, "'rule' names what refuses a call: not with "
			    "expect: allow");
	}
}

static bool
read_case(struct pol_walk *w, const struct pol_snapshot *s, yaml_node_t *n,
    struct tcase *c)
{
	unsigned before = w->nerrors;
	yaml_node_t *v, *r;

	if (!pol_is_map(w, n, "test case"))
		return false;
	pol_check_keys(w, n, case_keys, "test case");
	if ((v = pol_get(w, n, "name")) == NULL)
		pol_err(w, n, "test case without 'name'");
	else
		pol_str(w, v, "name", &c->name);
	if ((v = pol_get(w, n, "tenant")) != NULL && pol_is_scalar(w, v, "tenant")) {
		for (size_t i = 0; i < s->ntenants; i++)
			if (strcmp(s->tenants[i].id, pol_scalar(v)) == 0)
				c->tenant = &s->tenants[i];
		if (c->tenant == NULL)
			pol_err(w, v, "unknown tenant '%s'", pol_scalar(v));
	} else if ((v = pol_get(w, n, "key")) != NULL && pol_is_scalar(w, v, "key")) {
		unsigned char d[32];

		wd_sha256(pol_scalar(v), strlen(pol_scalar(v)), d);
		c->tenant = pol_find_key(s, d);
		if (c->tenant == NULL)
			pol_err(w, v, "no tenant has this key");
	} else if ((v = pol_get(w, n, "agent")) == NULL) {
		pol_err(w, n, "test case needs 'tenant', 'key' or 'agent'");
	}
	if ((v = pol_get(w, n, "agent")) != NULL && pol_is_scalar(w, v, "agent")) {
		for (size_t i = 0; i < s->nagents; i++)
			if (strcmp(s->agents[i].id, pol_scalar(v)) == 0)
				c->agent = &s->agents[i];
		if (c->agent == NULL)
			pol_err(w, v, "unknown agent '%s'", pol_scalar(v));
		else if (c->tenant != NULL && c->tenant != c->agent->tenant)
			pol_err(w, v, "agent '%s' is tenant '%s''s, not '%s''s",
			    c->agent->id, c->agent->tenant->id, c->tenant->id);
		else
			c->tenant = c->agent->tenant;
	}
	if ((v = pol_get(w, n, "app")) != NULL && pol_str(w, v, "app", &c->app)) {
		bool found = false;

		for (size_t i = 0; c->tenant != NULL && i < c->tenant->napps; i++)
			found |= strcmp(c->tenant->apps[i].id, c->app) == 0;
		if (!found)
			pol_err(w, v, "tenant '%s' has no app '%s'", c->tenant ?
			    c->tenant->id : "?", c->app);
	}
	if ((v = pol_get(w, n, "tools")) != NULL) {
		if (c->agent == NULL)
			pol_err(w, v, "'tools' needs 'agent'");
		read_steps(w, v, c);
	}
	if ((v = pol_get(w, n, "headers")) != NULL)
		read_headers(w, v, c);
	r = pol_get(w, n, "request");
	c->has_request = r != NULL;
	if (r == NULL && c->nsteps > 0 && pol_get(w, n, "expect") == NULL)
		;			/* tool steps only */
	else if (r == NULL || !pol_is_map(w, r, "request"))
		pol_err(w, n, "test case needs 'request: { model: ... }'");
	else {
		if ((v = pol_get(w, r, "model")) == NULL)
			pol_err(w, r, "request without 'model'");
		else
			pol_str(w, v, "model", &c->model);
		if ((v = pol_get(w, r, "stream")) != NULL)
			pol_bool(w, v, "stream", &c->stream);
	}
	if ((v = pol_get(w, n, "expect")) == NULL) {
		if (c->has_request)
			pol_err(w, n, "test case without 'expect'");
	} else {
		read_expect(w, v, c);
	}
	return w->nerrors == before;
}

/* Same set of strings, in any order? */
static bool
same_set(char **want, size_t nwant, const char *const *got, size_t ngot)
{
	if (nwant != ngot)
		return false;
	for (size_t i = 0; i < nwant; i++) {
		bool hit = false;

		for (size_t j = 0; j < ngot && !hit; j++)
			hit = strcmp(want[i], got[j]) == 0;
		if (!hit)
			return false;
	}
	return true;
}

static void
print_list(FILE *out, const char *label, char **v, size_t n)
{
	fprintf(out, "    %s: [", label);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", v[i]);
	fprintf(out, "]\n");
}

/* Compare; print expected and actual for every field that differs. */
static bool
check_case(const struct tcase *c, const struct pol_decision *d, FILE *out)
{
	const char *got_routes[POL_MAX_ROUTES], *got_rules[POL_MAX_REASONS];
	const char *verdict = pol_verdict_name(d->verdict);
	const char *route = d->nroutes ? d->routes[0]->id : "(none)";
	bool ok = true;

	for (size_t i = 0; i < d->nroutes; i++)
		got_routes[i] = d->routes[i]->id;
	for (size_t i = 0; i < d->nmatched; i++)
		got_rules[i] = d->matched[i]->id;
#define DIFF(field, want, got) do { \
	if (ok) \
		fprintf(out, "FAIL %s\n", c->name); \
	ok = false; \
	fprintf(out, "    %s: expected %s, got %s\n", field, want, got); \
} while (0)
	if (strcmp(c->verdict, verdict) != 0)
		DIFF("verdict", c->verdict, verdict);
	if (c->route != NULL && strcmp(c->route, route) != 0)
		DIFF("route", c->route, route);
	if (c->code != NULL && (d->code == NULL || strcmp(c->code, d->code) != 0))
		DIFF("code", c->code, d->code ? d->code : "(none)");
	if (c->keep != NULL && strcmp(c->keep, pol_keep_name(d->keep)) != 0)
		DIFF("keep", c->keep, pol_keep_name(d->keep));
	if (c->status != 0 && d->verdict == POL_DENY && c->status != d->status) {
		char a[16], b[16];

		snprintf(a, sizeof(a), "%lld", c->status);
		snprintf(b, sizeof(b), "%d", d->status);
		DIFF("status", a, b);
	}
	if (c->has_routes && !same_set(c->routes, c->nroutes, got_routes,
	    d->nroutes)) {
		DIFF("routes", "(below)", "(below)");
		print_list(out, "expected", c->routes, c->nroutes);
		print_list(out, "actual  ", (char **)got_routes, d->nroutes);
	}
	if (c->has_rules && !same_set(c->rules, c->nrules, got_rules,
	    d->nmatched)) {
		DIFF("rules", "(below)", "(below)");
		print_list(out, "expected", c->rules, c->nrules);
		print_list(out, "actual  ", (char **)got_rules, d->nmatched);
	}
#undef DIFF
	if (!ok && d->verdict == POL_DENY)
		fprintf(out, "    message: %s\n", d->message);
	return ok;
}

/* The tool steps in one session; print each step that differs. */
static bool
check_steps(const struct tcase *c, FILE *out, bool ok)
{
	struct pol_tstate st;
	const struct pol_agent *a = c->agent;

	pol_tstate_init(&st);
	for (size_t i = 0; i < c->nsteps; i++) {
		const struct tstep *sp = &c->steps[i];
		struct pol_tool_why why = { 0 };
		bool allowed = pol_tool_step(a, &st, sp->tool, sp->kind !=
		    STEP_OFFERED, &why);
		const char *got = allowed ? "allow" : sp->kind != STEP_HISTORY &&
		    a->on_violation == POL_VIOLATION_STRIP ? "strip" : "deny";
		static const char *const kinds[] = { "history", "offered",
			"answer" };

		if (strcmp(got, sp->expect) == 0 && (allowed || sp->rule == NULL ||
		    strcmp(sp->rule, why.rule) == 0))
			continue;
		if (ok)
			fprintf(out, "FAIL %s\n", c->name);
		ok = false;
		fprintf(out, "    step %zu (line %zu), %s %s: expected %s%s%s, got "
		    "%s%s%s\n", i + 1, sp->line, kinds[sp->kind], sp->tool,
		    sp->expect, sp->rule ? " by " : "", sp->rule ? sp->rule : "",
		    got, allowed ? "" : " by ", allowed ? "" : why.rule);
		if (!allowed)
			fprintf(out, "      %s\n", why.message);
	}
	return ok;
}

int
pol_test_run(const struct pol_snapshot *s, const char *path, FILE *out)
{
	struct pol_walk w = { .file = path, .errs = out };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *list;
	unsigned passed = 0, failed = 0;
	FILE *f;
	int rc = 2;

	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(out, "%s: cannot open\n", path);
		return 2;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(out, "%s:%zu:%zu: %s\n", path, parser.problem_mark.line + 1,
		    parser.problem_mark.column + 1,
		    parser.problem ? parser.problem : "YAML syntax error");
		yaml_parser_delete(&parser);
		fclose(f);
		return 2;
	}
	w.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL || !pol_is_map(&w, root, "a tests file") ||
	    (list = pol_get(&w, root, "tests")) == NULL ||
	    !pol_is_seq(&w, list, "tests")) {
		if (root != NULL && root->type == YAML_MAPPING_NODE &&
		    pol_get(&w, root, "tests") == NULL)
			pol_err(&w, root, "a tests file needs 'tests:'");
		goto out;
	}
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	    it < list->data.sequence.items.top; it++) {
		yaml_node_t *n = pol_node(&w, *it);
		struct pol_facts facts = { 0 };
		struct pol_decision d;
		struct tcase c = { 0 };
		bool ok;

		if (n == NULL)
			break;
		if (!read_case(&w, s, n, &c)) {
			tcase_free(&c);
			continue;
		}
		facts.tenant = c.tenant;
		facts.app = c.app;
		facts.model = c.model;
		facts.stream = c.stream;
		facts.hdr_classes = c.hdr_classes;
		facts.hdr_region = c.hdr_region;
		ok = c.verdict == NULL || (pol_decide(s, &facts, &d) == WD_OK &&
		    check_case(&c, &d, out));
		if (check_steps(&c, out, ok))
			passed++;
		else
			failed++;
		tcase_free(&c);
	}
	if (w.nerrors > 0) {
		fprintf(out, "%s: %u error%s in the tests file\n", path, w.nerrors,
		    w.nerrors == 1 ? "" : "s");
		goto out;
	}
	fprintf(out, "%u passed, %u failed\n", passed, failed);
	rc = failed > 0 ? 1 : 0;
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}
