/*
 * test_tools.c - agents and their tools (policy/load_agents.c,
 * policy/tools.c, policy/review.c): the `agents:` section as the loader
 * reads and refuses it, pol_tool_step() on the graph, flow rules and call
 * limits, agent keys, and the review tools (reach, review, graph).
 *
 * Error tests compare the whole error stream; in expected text '@' stands
 * for the temp file's path.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gw_int.h"
#include "gateway/store.h"
#include "policy/pol_int.h"
#include "tests/unit/suites.h"

#define HEX_A "0123456789abcdef0123456789abcdef" \
	      "0123456789abcdef0123456789abcdef"
#define HEX_B "fedcba9876543210fedcba9876543210" \
	      "fedcba9876543210fedcba9876543210"
#define HEX_C "00112233445566778899aabbccddeeff" \
	      "00112233445566778899aabbccddeeff"

/* Lines 1-13; the agents given to agents_file() start on line 14. */
#define HEAD \
	"version: 1\n" \
	"data_classes: [personal, financial]\n" \
	"providers:\n" \
	"  - id: p1\n" \
	"    base_url: https://a.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m]\n" \
	"tenants:\n" \
	"  - id: t1\n" \
	"    keys: [\"sha256:" HEX_A "\"]\n" \
	"    routes: [p1]\n" \
	"agents:\n"

/*
 * The agent most tests use.  search is neutral; read yields personal
 * data (at most 2 calls); pay yields financial data; ticket is an
 * internal sink, email an external one.  At most 4 calls in all.
 */
#define AGENT_A1 \
	"  - id: a1\n" \
	"    tenant: t1\n" \
	"    keys: [\"sha256:" HEX_B "\"]\n" \
	"    max_calls: 4\n" \
	"    tools:\n" \
	"      search: {}\n" \
	"      read: { labels: [personal], max_calls: 2 }\n" \
	"      ticket: { sink: internal }\n" \
	"      email: { sink: external }\n" \
	"      pay: { labels: [financial] }\n" \
	"    graph:\n" \
	"      start: [search, read, pay]\n" \
	"      search: [search, read, ticket, email, pay]\n" \
	"      read: [search, read, ticket, email]\n" \
	"      ticket: [email]\n" \
	"      pay: [ticket, email]\n" \
	"    flows:\n" \
	"      - id: no-pii-out\n" \
	"        deny: { from_label: personal, to_sink: external }\n" \
	"      - id: no-money-inside\n" \
	"        deny: { from_label: financial, to_sink: internal }\n"

/* HEAD followed by agents; caller frees. */
static char *
agents_file(const char *agents)
{
	char *text;

	ck_assert_int_ge(asprintf(&text, "%s%s", HEAD, agents), 0);
	return text;
}

/* Load HEAD + agents and expect success. */
static void
load_agents_ok(struct ut_ld *l, const char *agents)
{
	char *text = agents_file(agents);

	ut_load_text(l, text, 0600);
	free(text);
	ck_assert_msg(l->rc == WD_OK, "rc %d; errors:\n%s", l->rc, l->errs);
	ck_assert_str_eq(l->errs, "");
}

/* Load HEAD + agents and expect it refused with exactly these errors. */
static void
expect_agent_errors(const char *agents, const char *tmpl)
{
	struct ut_ld l;
	char *text = agents_file(agents), *want;

	ut_load_text(&l, text, 0600);
	free(text);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == WD_ECONFIG, "rc %d (%s); errors:\n%s", l.rc,
	    wd_strerror(l.rc), l.errs);
	ck_assert_ptr_null(l.snap);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
}

static const struct pol_agent *
agent(const struct pol_snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (strcmp(s->agents[i].id, id) == 0)
			return &s->agents[i];
	ck_abort_msg("no agent '%s'", id);
	return NULL;
}

static void
assert_same_state(const struct pol_tstate *a, const struct pol_tstate *b)
{
	ck_assert_int_eq(a->last, b->last);
	ck_assert(a->labels == b->labels);
	ck_assert_uint_eq(a->total, b->total);
	for (size_t i = 0; i < POL_MAX_TOOLS; i++)
		ck_assert_uint_eq(a->counts[i], b->counts[i]);
}

/* Advance st through calls (NULL-terminated), each of which must pass. */
static void
steps_ok(const struct pol_agent *a, struct pol_tstate *st,
    const char *const *calls)
{
	struct pol_tool_why why;

	for (size_t i = 0; calls[i] != NULL; i++) {
		memset(&why, 0, sizeof(why));
		ck_assert_msg(pol_tool_step(a, st, calls[i], true, &why),
		    "call %zu '%s' refused: %s (%s)", i, calls[i], why.message,
		    why.rule ? why.rule : "-");
	}
}

/* One call must be refused by rule, with this exact message. */
static void
step_refused(const struct pol_agent *a, struct pol_tstate *st,
    const char *tool, const char *rule, const char *message)
{
	struct pol_tool_why why;
	struct pol_tstate before = *st;

	memset(&why, 0, sizeof(why));
	ck_assert_msg(!pol_tool_step(a, st, tool, true, &why),
	    "call '%s' was allowed", tool);
	ck_assert_ptr_nonnull(why.rule);
	ck_assert_str_eq(why.rule, rule);
	ck_assert_str_eq(why.message, message);
	/* A refused call does not move the state, even with advance. */
	assert_same_state(&before, st);
}

/* ---- pol_tool_step ---- */

START_TEST(first_call_from_start)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;
	struct pol_tool_why why;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	ck_assert_uint_eq(a->ntools, 5);
	ck_assert_int_eq(a->max_calls, 4);
	ck_assert_int_eq(a->on_violation, POL_VIOLATION_DENY);
	pol_tstate_init(&st);
	ck_assert_int_eq(st.last, POL_START);
	ck_assert(pol_tool_step(a, &st, "read", true, &why));
	ck_assert_int_eq(st.last, pol_tool_index(a, "read"));
	ck_assert_uint_eq(st.total, 1);
	ck_assert_uint_eq(st.counts[pol_tool_index(a, "read")], 1);
	ck_assert(st.labels == 1ull << pol_class_bit(l.snap, "personal"));
	pol_tstate_init(&st);
	ck_assert(pol_tool_step(a, &st, "search", true, &why));
	ck_assert(st.labels == 0);
	ut_ld_done(&l);
}
END_TEST

START_TEST(call_not_allowed_from_start_is_graph)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	pol_tstate_init(&st);
	step_refused(a, &st, "ticket", "graph",
	    "agent 'a1' may not call 'ticket' after 'start'");
	step_refused(a, &st, "email", "graph",
	    "agent 'a1' may not call 'email' after 'start'");
	/* After a tool, its own row decides: ticket only leads to email. */
	steps_ok(a, &st, (const char *[]){ "search", "ticket", NULL });
	step_refused(a, &st, "search", "graph",
	    "agent 'a1' may not call 'search' after 'ticket'");
	ut_ld_done(&l);
}
END_TEST

START_TEST(flow_rule_after_labelled_tool)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;
	struct pol_tool_why why;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	/* Before labelled data: search -> email is fine. */
	pol_tstate_init(&st);
	steps_ok(a, &st, (const char *[]){ "search", "email", NULL });
	/* read (personal), then email (external sink): the flow stops it. */
	pol_tstate_init(&st);
	steps_ok(a, &st, (const char *[]){ "read", NULL });
	step_refused(a, &st, "email", "no-pii-out",
	    "flow rule 'no-pii-out': agent 'a1' may not call 'email' "
	    "(external sink) after labelled data was read in this session");
	/* The label stays for the session, however many calls follow. */
	steps_ok(a, &st, (const char *[]){ "search", NULL });
	step_refused(a, &st, "email", "no-pii-out",
	    "flow rule 'no-pii-out': agent 'a1' may not call 'email' "
	    "(external sink) after labelled data was read in this session");
	/* An internal sink is not what that flow forbids. */
	ck_assert(pol_tool_step(a, &st, "ticket", false, &why));
	ut_ld_done(&l);
}
END_TEST

START_TEST(flow_only_for_its_sink_kind)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	/* personal -> internal: no flow names it. */
	pol_tstate_init(&st);
	steps_ok(a, &st, (const char *[]){ "read", "ticket", NULL });
	/* financial -> internal is forbidden, financial -> external is not. */
	pol_tstate_init(&st);
	steps_ok(a, &st, (const char *[]){ "pay", NULL });
	step_refused(a, &st, "ticket", "no-money-inside",
	    "flow rule 'no-money-inside': agent 'a1' may not call 'ticket' "
	    "(internal sink) after labelled data was read in this session");
	steps_ok(a, &st, (const char *[]){ "email", NULL });
	ut_ld_done(&l);
}
END_TEST

START_TEST(tool_max_calls)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	pol_tstate_init(&st);
	/* read: max_calls 2; exactly two pass, the third does not. */
	steps_ok(a, &st, (const char *[]){ "read", "read", NULL });
	step_refused(a, &st, "read", "tool.max_calls",
	    "agent 'a1' may call 'read' at most 2 times per session");
	/* Other calls in between do not reset the count. */
	steps_ok(a, &st, (const char *[]){ "search", NULL });
	step_refused(a, &st, "read", "tool.max_calls",
	    "agent 'a1' may call 'read' at most 2 times per session");
	ut_ld_done(&l);
}
END_TEST

START_TEST(agent_max_calls)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	pol_tstate_init(&st);
	/* max_calls 4: the fourth call is the last one allowed. */
	steps_ok(a, &st, (const char *[]){ "search", "search", "search",
	    "search", NULL });
	ck_assert_uint_eq(st.total, 4);
	step_refused(a, &st, "search", "max_calls",
	    "agent 'a1' may make at most 4 tool calls per session");
	step_refused(a, &st, "email", "max_calls",
	    "agent 'a1' may make at most 4 tool calls per session");
	ut_ld_done(&l);
}
END_TEST

START_TEST(max_calls_zero_and_unlimited)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l,
	    "  - id: z\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      never: { max_calls: 0 }\n"
	    "      loop: {}\n"
	    "    graph:\n"
	    "      start: [never, loop]\n"
	    "      loop: [loop, never]\n");
	a = agent(l.snap, "z");
	ck_assert_int_eq(a->max_calls, -1);
	ck_assert_int_eq(a->tools[1].max_calls, -1);
	pol_tstate_init(&st);
	step_refused(a, &st, "never", "tool.max_calls",
	    "agent 'z' may call 'never' at most 0 times per session");
	for (int i = 0; i < 300; i++)
		steps_ok(a, &st, (const char *[]){ "loop", NULL });
	ck_assert_uint_eq(st.total, 300);
	ut_ld_done(&l);
}
END_TEST

START_TEST(undeclared_tool)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	pol_tstate_init(&st);
	step_refused(a, &st, "rm_rf", "undeclared_tool",
	    "agent 'a1' has no tool 'rm_rf'");
	step_refused(a, &st, "start", "undeclared_tool",
	    "agent 'a1' has no tool 'start'");
	step_refused(a, &st, "", "undeclared_tool", "agent 'a1' has no tool ''");
	ut_ld_done(&l);
}
END_TEST

START_TEST(advance_false_keeps_state)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st, before;
	struct pol_tool_why why;

	load_agents_ok(&l, AGENT_A1);
	a = agent(l.snap, "a1");
	pol_tstate_init(&st);
	steps_ok(a, &st, (const char *[]){ "search", NULL });
	before = st;
	ck_assert(pol_tool_step(a, &st, "read", false, &why));
	assert_same_state(&before, &st);
	ck_assert(pol_tool_step(a, &st, "read", false, &why));
	ck_assert(pol_tool_step(a, &st, "read", false, &why));
	assert_same_state(&before, &st);
	/* Since read was never taken, email is still fine. */
	ck_assert(pol_tool_step(a, &st, "email", false, &why));
	ck_assert(!pol_tool_step(a, &st, "nope", false, &why));
	assert_same_state(&before, &st);
	ut_ld_done(&l);
}
END_TEST

/* ---- the loader ---- */

START_TEST(agents_load)
{
	struct ut_ld l;
	const struct pol_agent *a;
	int search, read, ticket, email, pay;

	load_agents_ok(&l, AGENT_A1
	    "  - id: a2\n"
	    "    tenant: t1\n"
	    "    on_violation: strip\n"
	    "    tools:\n"
	    "      only:\n"
	    "    graph:\n"
	    "      start: [only]\n"
	    "      only:\n");
	ck_assert_uint_eq(l.snap->nagents, 2);
	a = agent(l.snap, "a1");
	ck_assert_ptr_eq(a->tenant, &l.snap->tenants[0]);
	ck_assert_uint_eq(a->nkeys, 1);
	search = pol_tool_index(a, "search");
	read = pol_tool_index(a, "read");
	ticket = pol_tool_index(a, "ticket");
	email = pol_tool_index(a, "email");
	pay = pol_tool_index(a, "pay");
	ck_assert_int_eq(search, 0);
	ck_assert_int_eq(pay, 4);
	ck_assert_int_eq(pol_tool_index(a, "nope"), -1);
	ck_assert_int_eq(a->tools[read].max_calls, 2);
	ck_assert_int_eq(a->tools[search].max_calls, -1);
	ck_assert_int_eq(a->tools[ticket].sink, POL_SINK_INTERNAL);
	ck_assert_int_eq(a->tools[email].sink, POL_SINK_EXTERNAL);
	ck_assert_int_eq(a->tools[search].sink, POL_SINK_NONE);
	ck_assert(a->start == ((1ull << search) | (1ull << read) | (1ull << pay)));
	ck_assert(a->next[ticket] == 1ull << email);
	ck_assert(a->next[email] == 0);
	ck_assert_uint_eq(a->nflows, 2);
	ck_assert_str_eq(a->flows[0].id, "no-pii-out");
	ck_assert(a->flows[0].from_labels ==
	    1ull << pol_class_bit(l.snap, "personal"));
	ck_assert_int_eq(a->flows[0].to_sink, POL_SINK_EXTERNAL);
	a = agent(l.snap, "a2");
	ck_assert_int_eq(a->on_violation, POL_VIOLATION_STRIP);
	ck_assert_int_eq(a->max_calls, -1);
	ck_assert_uint_eq(a->ntools, 1);
	ck_assert(a->start == 1);
	ck_assert(a->next[0] == 0);
	ut_ld_done(&l);
}
END_TEST

START_TEST(error_graph_names_undeclared_tool)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools: { search: {}, read: {} }\n"
	    "    graph:\n"
	    "      start: [serch]\n"
	    "      raed: [search]\n"
	    "      search: [read, zzzzzzzz]\n",
	    "@:18:15: graph names undeclared tool 'serch' (did you mean "
	    "'search'?)\n"
	    "@:19:7: graph names undeclared tool 'raed' (did you mean "
	    "'read'?)\n"
	    "@:20:22: graph names undeclared tool 'zzzzzzzz'\n"
	    "@: 3 errors\n");
}
END_TEST

START_TEST(error_unknown_label)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools: { search: { labels: [secret] } }\n"
	    "    graph: { start: [search] }\n"
	    "    flows:\n"
	    "      - id: f1\n"
	    "        deny: { from_label: secrets, to_sink: external }\n",
	    "@:16:33: unknown label 'secret' (labels are data classes; "
	    "declare it in data_classes)\n"
	    "@:20:29: unknown label 'secrets' (labels are data classes; "
	    "declare it in data_classes)\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(error_bad_agent_id)
{
	expect_agent_errors(
	    "  - id: \"a 1\"\n"
	    "    tenant: t1\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n"
	    "  - tenant: t1\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n",
	    "@:14:9: agent id 'a 1' may only hold letters, digits, '-', '_', "
	    "'.' (at most 64)\n"
	    "@:18:5: agent without 'id'\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(error_unknown_tenant)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: tX\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n",
	    "@:15:13: agent 'a1' names unknown tenant 'tX'\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(error_bad_sink)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools: { search: { sink: outside } }\n"
	    "    graph: { start: [search] }\n"
	    "    flows:\n"
	    "      - deny: { from_label: personal, to_sink: Internal }\n",
	    "@:16:30: sink must be external or internal, not 'outside'\n"
	    "@:19:48: sink must be external or internal, not 'Internal'\n"
	    "@: 2 errors\n");
}
END_TEST

START_TEST(error_bad_on_violation)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    on_violation: block\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n",
	    "@:16:19: on_violation must be strip or deny, not 'block'\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(error_duplicate_tool)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      search: {}\n"
	    "      search: { max_calls: 1 }\n"
	    "    graph: { start: [search] }\n",
	    "@:18:7: tool 'search' is declared twice\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(error_start_is_reserved)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      start: {}\n"
	    "      search: {}\n"
	    "    graph: { start: [search] }\n",
	    "@:17:7: 'start' is reserved for the graph's entry\n"
	    "@: 1 error\n");
}
END_TEST

/* An agent with n tools t0..t{n-1}, tools from line 17 on; the graph
 * leads from t{last} back to t0. */
static char *
many_tools(int n, int last)
{
	char *text = NULL, *tools = strdup(""), *more;

	for (int i = 0; i < n; i++) {
		ck_assert_int_ge(asprintf(&more, "%s      t%d: {}\n", tools, i), 0);
		free(tools);
		tools = more;
	}
	ck_assert_int_ge(asprintf(&text,
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "%s"
	    "    graph: { start: [t0], t%d: [t0] }\n", tools, last), 0);
	free(tools);
	return text;
}

START_TEST(error_more_than_64_tools)
{
	struct ut_ld l;
	char *text = many_tools(64, 63);

	/* 64 is the limit and loads; the 65th tool (line 17 + 64) does not. */
	load_agents_ok(&l, text);
	ck_assert_uint_eq(agent(l.snap, "a1")->ntools, 64);
	ck_assert(agent(l.snap, "a1")->next[63] == 1);
	ut_ld_done(&l);
	free(text);
	text = many_tools(65, 63);
	expect_agent_errors(text,
	    "@:81:7: agent 'a1' has more than 64 tools\n"
	    "@: 1 error\n");
	free(text);
}
END_TEST

START_TEST(error_agent_key_is_a_tenant_key)
{
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    keys: [\"sha256:" HEX_A "\"]\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n",
	    "@:14:5: a key of 'a1' is also a key of 't1'\n"
	    "@: 1 error\n");
	expect_agent_errors(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    keys: [\"sha256:" HEX_B "\"]\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n"
	    "  - id: a2\n"
	    "    tenant: t1\n"
	    "    keys: [\"sha256:" HEX_B "\"]\n"
	    "    tools: { search: {} }\n"
	    "    graph: { start: [search] }\n",
	    "@:19:5: a key of 'a2' is also a key of 'a1'\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(find_key_agent)
{
	struct ut_ld l;
	unsigned char d[32];
	const struct pol_agent *ag = (const struct pol_agent *)(uintptr_t)1;
	const struct pol_tenant *t;

	load_agents_ok(&l, AGENT_A1);
	ck_assert_int_eq(wd_unhex(HEX_B, d, 32), WD_OK);
	t = pol_find_key_agent(l.snap, d, &ag);
	ck_assert_ptr_eq(t, &l.snap->tenants[0]);
	ck_assert_ptr_eq(ag, agent(l.snap, "a1"));
	ck_assert_ptr_eq(pol_find_key(l.snap, d), &l.snap->tenants[0]);
	ck_assert_int_eq(wd_unhex(HEX_A, d, 32), WD_OK);
	ag = (const struct pol_agent *)(uintptr_t)1;
	t = pol_find_key_agent(l.snap, d, &ag);
	ck_assert_ptr_eq(t, &l.snap->tenants[0]);
	ck_assert_ptr_null(ag);
	ck_assert_int_eq(wd_unhex(HEX_C, d, 32), WD_OK);
	ag = (const struct pol_agent *)(uintptr_t)1;
	ck_assert_ptr_null(pol_find_key_agent(l.snap, d, &ag));
	ck_assert_ptr_null(ag);
	/* X-Warden-Agent names an agent of the key's tenant only. */
	ck_assert_ptr_eq(pol_find_agent(l.snap, &l.snap->tenants[0], "a1"),
	    agent(l.snap, "a1"));
	ck_assert_ptr_null(pol_find_agent(l.snap, &l.snap->tenants[0], "a2"));
	ut_ld_done(&l);
}
END_TEST

/* ---- policy_version ---- */

static void
version_of(const char *agents, char out[65])
{
	struct ut_ld l;

	load_agents_ok(&l, agents);
	memcpy(out, l.snap->version, 65);
	ut_ld_done(&l);
}

#define SMALL(start_row, extra) \
	"  - id: a1\n" \
	"    tenant: t1\n" \
	"    tools:\n" \
	"      search: {}\n" \
	"      email: { sink: external }\n" \
	"    graph:\n" \
	"      start: " start_row "\n" \
	extra

START_TEST(policy_version_follows_the_graph)
{
	char base[65], v[65];

	version_of(SMALL("[search]", "      search: [email]\n"), base);
	/* Whitespace, comments and flow style are not policy. */
	version_of(
	    "  # the same agent, written differently\n"
	    "  - id:   a1     # trailing comment\n"
	    "    tenant: t1\n"
	    "\n"
	    "    tools: { search: {},\n"
	    "             email: {sink: external} }\n"
	    "    graph: { start: [ search ], search: [ email ] }\n", v);
	ck_assert_str_eq(v, base);
	/* An edge more, an edge less: another policy. */
	version_of(SMALL("[search, email]", "      search: [email]\n"), v);
	ck_assert_str_ne(v, base);
	version_of(SMALL("[search]", "      search: []\n"), v);
	ck_assert_str_ne(v, base);
	version_of(SMALL("[search]", "      search: [email, search]\n"), v);
	ck_assert_str_ne(v, base);
	/* A limit, a sink, a violation mode: another policy too. */
	version_of(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    on_violation: strip\n"
	    "    tools:\n"
	    "      search: {}\n"
	    "      email: { sink: external }\n"
	    "    graph:\n"
	    "      start: [search]\n"
	    "      search: [email]\n", v);
	ck_assert_str_ne(v, base);
	version_of(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      search: { max_calls: 3 }\n"
	    "      email: { sink: external }\n"
	    "    graph:\n"
	    "      start: [search]\n"
	    "      search: [email]\n", v);
	ck_assert_str_ne(v, base);
}
END_TEST

START_TEST(policy_version_ignores_tool_key_order)
{
	char base[65], v[65];

	/* The README: key order does not change the policy_version.  The
	 * tools of an agent are a map; the same tools listed in another
	 * order are the same policy.  (agents_json() in compile.c once wrote
	 * an agent's tools as an array in file order.) */
	version_of(SMALL("[search]", "      search: [email]\n"), base);
	version_of(
	    "  - id: a1\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      email: { sink: external }\n"
	    "      search: {}\n"
	    "    graph:\n"
	    "      search: [email]\n"
	    "      start: [search]\n", v);
	ck_assert_str_eq(v, base);
}
END_TEST

/* ---- review: reach, review, graph ---- */

/* Run fn's output into a string. */
struct cap {
	char *text;
	size_t len;
	FILE *f;
};

static void
cap_open(struct cap *c)
{
	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->text, &c->len);
	ck_assert_ptr_nonnull(c->f);
}

static void
cap_close(struct cap *c)
{
	ck_assert_int_eq(fclose(c->f), 0);
	c->f = NULL;
}

static void
cap_free(struct cap *c)
{
	free(c->text);
	memset(c, 0, sizeof(*c));
}

static int
reach(const struct pol_agent *a, const char *from, const char *to,
    const char *want_text)
{
	struct cap c;
	int rc;

	cap_open(&c);
	rc = pol_reach(a, from, to, c.f);
	cap_close(&c);
	ck_assert_msg(strcmp(c.text, want_text) == 0,
	    "reach %s -> %s printed '%s', want '%s'", from, to, c.text, want_text);
	cap_free(&c);
	return rc;
}

/*
 * r yields personal data, s nothing; both lead to m, m to x (external).
 * A flow keeps personal data from x: only start -> s -> m -> x is open.
 */
#define AGENT_PATHS \
	"  - id: paths\n" \
	"    tenant: t1\n" \
	"    tools:\n" \
	"      r: { labels: [personal] }\n" \
	"      s: {}\n" \
	"      m: {}\n" \
	"      x: { sink: external }\n" \
	"      a: {}\n" \
	"      b: {}\n" \
	"      c: {}\n" \
	"    graph:\n" \
	"      start: [r, s, a]\n" \
	"      r: [m, x]\n" \
	"      s: [m]\n" \
	"      m: [x]\n" \
	"      a: [c, b]\n" \
	"      c: [b]\n" \
	"    flows:\n" \
	"      - id: no-pii-out\n" \
	"        deny: { from_label: personal, to_sink: external }\n"

START_TEST(reach_shortest_path)
{
	struct ut_ld l;
	const struct pol_agent *a;

	load_agents_ok(&l, AGENT_PATHS);
	a = agent(l.snap, "paths");
	ck_assert_int_eq(reach(a, "start", "b", "start -> a -> b\n"), 0);
	ck_assert_int_eq(reach(a, "a", "b", "a -> b\n"), 0);
	ck_assert_int_eq(reach(a, "c", "b", "c -> b\n"), 0);
	ck_assert_int_eq(reach(a, "start", "m", "start -> r -> m\n"), 0);
	/* b leads nowhere. */
	ck_assert_int_eq(reach(a, "b", "a", "unreachable\n"), 1);
	ck_assert_int_eq(reach(a, "nope", "a",
	    "agent 'paths' has no tool 'nope'\n"), 2);
	ck_assert_int_eq(reach(a, "start", "nope",
	    "agent 'paths' has no tool 'nope'\n"), 2);
	ck_assert_int_eq(reach(a, "start", "sink:outside",
	    "sink must be sink:external or sink:internal\n"), 2);
	ut_ld_done(&l);
}
END_TEST

START_TEST(reach_honours_flows)
{
	struct ut_ld l;
	const struct pol_agent *a;

	load_agents_ok(&l, AGENT_PATHS);
	a = agent(l.snap, "paths");
	/* r -> x is an edge, but after r's personal data x is cut; and
	 * r -> m -> x carries the label along. */
	ck_assert_int_eq(reach(a, "r", "x", "unreachable\n"), 1);
	ck_assert_int_eq(reach(a, "r", "sink:external", "unreachable\n"), 1);
	/* From start the only open way avoids r, though r comes first. */
	ck_assert_int_eq(reach(a, "start", "x", "start -> s -> m -> x\n"), 0);
	ck_assert_int_eq(reach(a, "start", "sink:external",
	    "start -> s -> m -> x\n"), 0);
	ck_assert_int_eq(reach(a, "m", "x", "m -> x\n"), 0);
	ck_assert_int_eq(reach(a, "start", "sink:internal", "unreachable\n"), 1);
	ut_ld_done(&l);
}
END_TEST

START_TEST(reach_unreachable_when_flow_cuts_every_path)
{
	struct ut_ld l;
	const struct pol_agent *a;

	load_agents_ok(&l,
	    "  - id: cut\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      r: { labels: [personal] }\n"
	    "      m: {}\n"
	    "      x: { sink: external }\n"
	    "    graph:\n"
	    "      start: [r]\n"
	    "      r: [m, x]\n"
	    "      m: [x, r]\n"
	    "    flows:\n"
	    "      - id: no-pii-out\n"
	    "        deny: { from_label: personal, to_sink: external }\n");
	a = agent(l.snap, "cut");
	ck_assert_int_eq(reach(a, "start", "x", "unreachable\n"), 1);
	ck_assert_int_eq(reach(a, "start", "sink:external", "unreachable\n"), 1);
	ck_assert_int_eq(reach(a, "start", "m", "start -> r -> m\n"), 0);
	ut_ld_done(&l);
}
END_TEST

/*
 * --from TOOL is the state after a call of TOOL, so the way back to TOOL
 * itself is a path like any other: s -> s along a self-loop, u -> m -> u
 * around a cycle.  (bfs() in review.c once marked the start state seen
 * before looking at any edge, so an edge back into it was skipped and
 * both printed "unreachable".)
 */
START_TEST(reach_back_to_the_same_tool)
{
	struct ut_ld l;
	const struct pol_agent *a;

	load_agents_ok(&l,
	    "  - id: loops\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      s: {}\n"
	    "      u: {}\n"
	    "      m: {}\n"
	    "    graph:\n"
	    "      start: [s, u]\n"
	    "      s: [s]\n"
	    "      u: [m]\n"
	    "      m: [u]\n");
	a = agent(l.snap, "loops");
	ck_assert_int_eq(reach(a, "m", "u", "m -> u\n"), 0);
	ck_assert_int_eq(reach(a, "s", "s", "s -> s\n"), 0);
	ck_assert_int_eq(reach(a, "u", "u", "u -> m -> u\n"), 0);
	ut_ld_done(&l);
}
END_TEST

static int
review(const struct pol_snapshot *s, char **text)
{
	struct cap c;
	int rc;

	cap_open(&c);
	rc = pol_review(s, c.f);
	cap_close(&c);
	*text = c.text;
	return rc;
}

START_TEST(review_finds_leak_through_intermediate_tool)
{
	struct ut_ld l;
	char *text;

	/* No flow rule: personal data from r reaches x through m. */
	load_agents_ok(&l,
	    "  - id: leaky\n"
	    "    tenant: t1\n"
	    "    max_calls: 5\n"
	    "    tools:\n"
	    "      r: { labels: [personal], max_calls: 1 }\n"
	    "      m: { max_calls: 1 }\n"
	    "      x: { sink: external, max_calls: 1 }\n"
	    "    graph:\n"
	    "      start: [r]\n"
	    "      r: [m]\n"
	    "      m: [x]\n");
	ck_assert_int_eq(review(l.snap, &text), 1);
	ck_assert_msg(strstr(text, "  LEAK: labelled data from 'r' can reach "
	    "an external sink: r -> m -> x\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "agent leaky (tenant t1, 3 tools, "
	    "on_violation deny, max_calls set)\n") == text, "%s", text);
	free(text);
	ut_ld_done(&l);

	/* A flow for another label does not stop personal data. */
	load_agents_ok(&l,
	    "  - id: leaky2\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      r: { labels: [personal], max_calls: 1 }\n"
	    "      m: { max_calls: 1 }\n"
	    "      x: { sink: external, max_calls: 1 }\n"
	    "    graph:\n"
	    "      start: [r]\n"
	    "      r: [m]\n"
	    "      m: [x]\n"
	    "    flows:\n"
	    "      - deny: { from_label: financial, to_sink: external }\n");
	ck_assert_int_eq(review(l.snap, &text), 1);
	ck_assert_msg(strstr(text, "  LEAK: labelled data from 'r' can reach "
	    "an external sink: r -> m -> x\n") != NULL, "%s", text);
	free(text);
	ut_ld_done(&l);

	/* The same with the right flow: no leak; m is unlimited. */
	load_agents_ok(&l,
	    "  - id: tight\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      r: { labels: [personal], max_calls: 1 }\n"
	    "      m: {}\n"
	    "      x: { sink: external, max_calls: 1 }\n"
	    "      lost: { max_calls: 1 }\n"
	    "    graph:\n"
	    "      start: [r]\n"
	    "      r: [m]\n"
	    "      m: [x]\n"
	    "    flows:\n"
	    "      - deny: { from_label: personal, to_sink: external }\n");
	ck_assert_int_eq(review(l.snap, &text), 0);
	ck_assert_msg(strstr(text, "LEAK") == NULL, "%s", text);
	ck_assert_msg(strstr(text, "  unreachable from start: 'lost'\n") != NULL,
	    "%s", text);
	ck_assert_msg(strstr(text, "  no call limit: 'm' (and no max_calls for "
	    "the agent)\n") != NULL, "%s", text);
	free(text);
	ut_ld_done(&l);
}
END_TEST

START_TEST(review_of_the_example_is_clean)
{
	struct ut_ld l;
	struct cap c;
	FILE *errs;
	int rc;

	memset(&l, 0, sizeof(l));
	errs = open_memstream(&l.errs, &l.errlen);
	ck_assert_ptr_nonnull(errs);
	l.rc = pol_load("rules/example.yaml", errs, &l.snap);
	fclose(errs);
	ck_assert_msg(l.rc == WD_OK, "rules/example.yaml (run from the "
	    "repository root): rc %d\n%s", l.rc, l.errs);
	ck_assert_uint_ge(l.snap->nagents, 2);
	cap_open(&c);
	rc = pol_review(l.snap, c.f);
	cap_close(&c);
	ck_assert_msg(rc == 0, "review found a leak:\n%s", c.text);
	ck_assert_msg(strstr(c.text, "LEAK") == NULL, "%s", c.text);
	ck_assert_msg(strstr(c.text, "agent support-bot (tenant acme-health, ")
	    != NULL, "%s", c.text);
	ck_assert_msg(strstr(c.text, "agent shop-assistant (tenant "
	    "sakura-retail, ") != NULL, "%s", c.text);
	cap_free(&c);
	/* ... and what the review says, reach confirms. */
	cap_open(&c);
	rc = pol_reach(agent(l.snap, "support-bot"), "read_customer",
	    "send_email", c.f);
	cap_close(&c);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(c.text, "unreachable\n");
	cap_free(&c);
	ut_ld_done(&l);
}
END_TEST

/* The edge from -> to of a pol_graph json document. */
static json_t *
edge(json_t *g, const char *from, const char *to)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(g, "edges"), i, e)
		if (strcmp(json_string_value(json_object_get(e, "from")), from) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "to")), to) == 0)
			return e;
	return NULL;
}

static bool
no_value(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return v == NULL || json_is_null(v);
}

START_TEST(graph_json_marks_cut_edges)
{
	struct ut_ld l;
	struct cap c;
	json_t *g, *e, *n;
	json_error_t jerr;

	load_agents_ok(&l, AGENT_PATHS);
	cap_open(&c);
	ck_assert_int_eq(pol_graph(l.snap, agent(l.snap, "paths"), "json", c.f), 0);
	cap_close(&c);
	g = json_loads(c.text, 0, &jerr);
	ck_assert_msg(g != NULL, "not JSON (%s): %s", jerr.text, c.text);
	ck_assert_str_eq(json_string_value(json_object_get(g, "agent")), "paths");
	ck_assert_str_eq(json_string_value(json_object_get(g, "tenant")), "t1");
	ck_assert_uint_eq(json_array_size(json_object_get(g, "nodes")), 7);
	n = json_array_get(json_object_get(g, "nodes"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(n, "name")), "r");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(n,
	    "labels"), 0)), "personal");
	n = json_array_get(json_object_get(g, "nodes"), 3);
	ck_assert_str_eq(json_string_value(json_object_get(n, "sink")),
	    "external");
	/* start->r, start->s, start->a, r->m, r->x, s->m, m->x, a->c, a->b,
	 * c->b */
	ck_assert_uint_eq(json_array_size(json_object_get(g, "edges")), 10);
	/* r -> x: every way into r carries personal data. */
	e = edge(g, "r", "x");
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "cut")), "always");
	ck_assert_str_eq(json_string_value(json_object_get(e, "flows")),
	    "no-pii-out");
	/* m -> x: cut after r, open after s. */
	e = edge(g, "m", "x");
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "cut")),
	    "after_labelled_data");
	ck_assert_str_eq(json_string_value(json_object_get(e, "flows")),
	    "no-pii-out");
	/* Uncut edges carry neither (null or left out). */
	e = edge(g, "s", "m");
	ck_assert_ptr_nonnull(e);
	ck_assert(no_value(e, "cut"));
	ck_assert(no_value(e, "flows"));
	e = edge(g, "start", "r");
	ck_assert_ptr_nonnull(e);
	ck_assert(no_value(e, "cut"));
	e = edge(g, "a", "b");
	ck_assert_ptr_nonnull(e);
	ck_assert(no_value(e, "cut"));
	ck_assert_ptr_null(edge(g, "x", "m"));
	json_decref(g);
	cap_free(&c);
	ut_ld_done(&l);
}
END_TEST

START_TEST(graph_dot_and_mermaid)
{
	struct ut_ld l;
	struct cap c;

	load_agents_ok(&l, AGENT_PATHS);
	cap_open(&c);
	ck_assert_int_eq(pol_graph(l.snap, agent(l.snap, "paths"), "dot", c.f), 0);
	cap_close(&c);
	ck_assert_msg(strncmp(c.text, "digraph \"paths\" {\n", 18) == 0, "%s",
	    c.text);
	ck_assert_msg(strstr(c.text, "  \"s\" -> \"m\";\n") != NULL, "%s", c.text);
	ck_assert_msg(strstr(c.text, "  \"r\" -> \"x\" [style=dashed, color=red, "
	    "label=\"cut: no-pii-out\"];\n") != NULL, "%s", c.text);
	ck_assert_msg(strstr(c.text, "  \"m\" -> \"x\" [style=dashed, color=red, "
	    "label=\"cut after labelled data: no-pii-out\"];\n") != NULL, "%s",
	    c.text);
	ck_assert_int_eq(c.text[c.len - 2], '}');
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(pol_graph(l.snap, agent(l.snap, "paths"), "mermaid",
	    c.f), 0);
	cap_close(&c);
	ck_assert_msg(strncmp(c.text, "flowchart LR\n", 13) == 0, "%s", c.text);
	ck_assert_msg(strstr(c.text, "  s --> m\n") != NULL, "%s", c.text);
	ck_assert_msg(strstr(c.text, "  r -. \"cut: no-pii-out\" .-> x\n") != NULL,
	    "%s", c.text);
	cap_free(&c);
	cap_open(&c);
	{
		/* It complains on stderr; keep the test output clean. */
		int saved = dup(2), null = open("/dev/null", O_WRONLY);

		ck_assert_int_ge(saved, 0);
		ck_assert_int_ge(null, 0);
		dup2(null, 2);
		close(null);
		ck_assert_int_eq(pol_graph(l.snap, agent(l.snap, "paths"), "svg",
		    c.f), 2);
		dup2(saved, 2);
		close(saved);
	}
	cap_close(&c);
	ck_assert_str_eq(c.text, "");
	cap_free(&c);
	ut_ld_done(&l);
}
END_TEST

/*
 * Tool names are written into DOT as quoted ids.  A name the loader
 * accepts must come out as a valid id (quotes escaped), or the loader
 * must refuse it.  (The loader once took any string as a tool name and
 * pol_graph() printed it unescaped:  "send "mail"" [label=...];  is not
 * DOT.)
 */
START_TEST(graph_dot_quotes_names)
{
	struct ut_ld l;
	struct cap c;
	char *text = agents_file(
	    "  - id: names\n"
	    "    tenant: t1\n"
	    "    tools:\n"
	    "      'send \"mail\"': { sink: external }\n"
	    "      lookup: {}\n"
	    "    graph:\n"
	    "      start: [lookup]\n"
	    "      lookup: ['send \"mail\"']\n");

	ut_load_text(&l, text, 0600);
	free(text);
	if (l.rc == WD_OK) {
		cap_open(&c);
		ck_assert_int_eq(pol_graph(l.snap, agent(l.snap, "names"), "dot",
		    c.f), 0);
		cap_close(&c);
		ck_assert_msg(strstr(c.text, "\"send \"mail\"\"") == NULL &&
		    strstr(c.text, "\"lookup\" -> \"send \\\"mail\\\"\"") != NULL,
		    "tool name not quoted for DOT:\n%s", c.text);
		cap_free(&c);
	} else {
		ck_assert_int_eq(l.rc, WD_ECONFIG);
	}
	ut_ld_done(&l);
}
END_TEST

/* ---- the session store (gateway/sessions.c) ---- */

/* Agent agent_id of tenant t1 with room for max sessions. */
static struct gw_sess_ref
sref(const char *agent_id, const char *session, size_t max, int ttl_s)
{
	return (struct gw_sess_ref){ .tenant = "t1", .agent = agent_id,
	    .session = session, .max = max, .ttl_s = ttl_s };
}

static enum gw_store_rc
sess_check_rc(const char *agent_id, const char *session, size_t max,
    int ttl_s, const char *const *calls)
{
	struct gw_sess_ref r = sref(agent_id, session, max, ttl_s);
	size_t n = 0, recorded;
	int retry;

	while (calls[n] != NULL)
		n++;
	return gw_store()->session_check(&r, calls, n, &recorded, &retry);
}

static bool
sess_check(const char *agent_id, const char *session, const char *const *calls)
{
	return sess_check_rc(agent_id, session, 100, 3600, calls) == GW_STORE_OK;
}

START_TEST(session_record_is_a_prefix)
{
	struct gw_sess_ref r = sref("a1", "s1", 100, 3600);
	size_t recorded = 99;
	int retry;

	gw_store_memory_reset();
	ck_assert(sess_check("a1", "s1", (const char *[]){ "x", NULL }));
	ck_assert_int_eq(gw_store()->session_append(&r, (const char *[]){ "y" },
	    1), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_check(&r, NULL, 0, &recorded,
	    &retry), GW_STORE_CONTRADICTS);
	ck_assert_uint_eq(recorded, 2);
	ck_assert(!sess_check("a1", "s1", (const char *[]){ "x", NULL }));
	ck_assert(!sess_check("a1", "s1", (const char *[]){ "y", "x", NULL }));
	ck_assert(sess_check("a1", "s1", (const char *[]){ "x", "y", NULL }));
	ck_assert(sess_check("a1", "s1", (const char *[]){ "x", "y", "z",
	    NULL }));
	ck_assert(!sess_check("a1", "s1", (const char *[]){ "x", "y", NULL }));
	/* Other sessions and other agents are separate. */
	ck_assert(sess_check("a1", "s2", (const char *[]){ "q", NULL }));
	ck_assert(sess_check("a2", "s1", (const char *[]){ "q", NULL }));
}
END_TEST

/*
 * A full agent refuses new sessions; it never evicts a live one (the
 * store was once one LRU for the process: a new session pushed out the
 * least recently used, whoever's it was, and its record with it).
 */
START_TEST(session_cap_refuses_never_evicts)
{
	gw_store_memory_reset();
	ck_assert(sess_check_rc("a1", "s1", 2, 3600, (const char *[]){ "x",
	    NULL }) == GW_STORE_OK);
	ck_assert(sess_check_rc("a1", "s2", 2, 3600, (const char *[]){ "x",
	    NULL }) == GW_STORE_OK);
	ck_assert(sess_check_rc("a1", "s3", 2, 3600, (const char *[]){ "x",
	    NULL }) == GW_STORE_FULL);
	/* s1 and s2 keep their records. */
	ck_assert(sess_check_rc("a1", "s1", 2, 3600, (const char *[]){ "y",
	    NULL }) == GW_STORE_CONTRADICTS);
	ck_assert(sess_check_rc("a1", "s2", 2, 3600, (const char *[]){ "y",
	    NULL }) == GW_STORE_CONTRADICTS);
	/* Another agent has its own room. */
	ck_assert(sess_check_rc("a2", "s3", 2, 3600, (const char *[]){ "x",
	    NULL }) == GW_STORE_OK);
}
END_TEST

START_TEST(session_ttl)
{
	struct gw_sess_ref r = sref("a1", "s9", 1, 1);
	size_t recorded;
	int retry = 0;

	gw_store_memory_reset();
	ck_assert(sess_check_rc("a1", "s1", 1, 1, (const char *[]){ "x",
	    NULL }) == GW_STORE_OK);
	ck_assert(sess_check_rc("a1", "s1", 1, 1, (const char *[]){ "y",
	    NULL }) == GW_STORE_CONTRADICTS);
	/* Full until s1 expires; Retry-After says when. */
	ck_assert_int_eq(gw_store()->session_check(&r, NULL, 0, &recorded,
	    &retry), GW_STORE_FULL);
	ck_assert_int_eq(retry, 1);
	usleep(1200 * 1000);
	ck_assert(sess_check_rc("a1", "s1", 1, 1, (const char *[]){ "y",
	    NULL }) == GW_STORE_OK);
}
END_TEST

/*
 * Two sessions of one agent are two records, however long the agent id
 * and the session token (up to 128).  (sessions.c once keyed records by
 * "agent\nsession" cut to 199 bytes: with a 100-character agent id two
 * tokens that differ only at the end shared one record, and one session's
 * calls denied the other's requests.)
 */
START_TEST(session_key_not_truncated)
{
	char agent_id[101], s1[129], s2[129];

	memset(agent_id, 'a', 100);
	agent_id[100] = '\0';
	memset(s1, 's', 128);
	s1[128] = '\0';
	memcpy(s2, s1, sizeof(s2));
	s2[127] = 't';
	gw_store_memory_reset();
	ck_assert(sess_check(agent_id, s1, (const char *[]){ "x", NULL }));
	ck_assert_msg(sess_check(agent_id, s2, (const char *[]){ "y", NULL }),
	    "session s2 was taken for s1");
}
END_TEST

/* ---- the wire side (gateway/tools.c) ---- */

/* gw_tools_request for agent a1 (by its key) with these headers. */
static enum gw_tools_rc
wire_request(struct ut_ld *l, struct gw_tools *tl, const char *session,
    const char *body, struct gw_tools_deny *d)
{
	struct gw_header h[1] = { { "X-Warden-Session", session } };
	struct gw_http_req req;
	json_t *root = json_loads(body, 0, NULL);
	enum gw_tools_rc rc;

	ck_assert_ptr_nonnull(root);
	struct pol_caller caller = { .tenant = &l->snap->tenants[0],
		.agent = agent(l->snap, "a1"), .key = l->snap->agents[0].keys[0] };

	memset(&req, 0, sizeof(req));
	req.hdrs = h;
	req.nhdrs = session != NULL ? 1 : 0;
	rc = gw_tools_request(tl, l->snap, &l->snap->tenants[0], &caller, &req,
	    &(struct gw_chat){ .root = root }, d);
	json_decref(root);
	return rc;
}

/*
 * An answer with several choices (n > 1) offers alternatives; the client
 * goes on with one of them.  What warden records for the session must be
 * a history some choice leads to.  (gw_tools_commit() once appended the
 * allowed calls of every choice, one after the other: the record became
 * [search, read] and the client's next request, whose history is choice
 * 0's [search], "contradicted" the session.)
 */
START_TEST(session_commit_with_several_choices)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	json_t *ans;
	const char *hist_search =
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":"
	    "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"search\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\","
	    "\"tool_call_id\":\"c1\",\"content\":\"r\"}]}";

	gw_store_memory_reset();
	load_agents_ok(&l, AGENT_A1);
	ck_assert_int_eq(wire_request(&l, &tl, "n2",
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    &d), GW_TOOLS_OK);
	ans = json_loads("{\"choices\":["
	    "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
	    "\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":"
	    "{\"name\":\"search\",\"arguments\":\"{}\"}}]},"
	    "\"finish_reason\":\"tool_calls\"},"
	    "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null,"
	    "\"tool_calls\":[{\"id\":\"b\",\"type\":\"function\",\"function\":"
	    "{\"name\":\"read\",\"arguments\":\"{}\"}}]},"
	    "\"finish_reason\":\"tool_calls\"}]}", 0, NULL);
	ck_assert_ptr_nonnull(ans);
	{
		struct gw_answer a;
		char why[160], *text = json_dumps(ans, JSON_COMPACT);

		ck_assert_int_eq(gw_format_chat.read_answer(text, strlen(text), &a,
		    why, sizeof(why)), WD_OK);
		ck_assert_int_eq(gw_tools_answer(&tl, &a, &d), GW_TOOLS_OK);
		gw_answer_clear(&a);
		free(text);
	}
	gw_tools_commit(&tl, false);
	gw_tools_clear(&tl);
	json_decref(ans);
	/* The client went on with choice 0. */
	ck_assert_msg(wire_request(&l, &tl, "n2", hist_search, &d) == GW_TOOLS_OK,
	    "%d %s", d.status, d.message);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

/*
 * One streamed event as txn_upstream.c reads it (SSE fields, the chat reader,
 * the tool check), on tl.  An event the readers refuse is a DENY with
 * status 502, as the proxy makes it.
 */
static enum gw_tools_rc
chunk_on(struct gw_tools *tl, const char *ev, size_t len, bool first,
    struct gw_tools_deny *d)
{
	struct gw_answer a;
	char *data, why[160];
	size_t dlen;
	enum gw_tools_rc rc = GW_TOOLS_OK;

	d->status = 0;
	if (gw_sse_event_read(ev, len, first, &data, &dlen, why,
	    sizeof(why)) != WD_OK) {
		d->status = 502;
		snprintf(d->message, sizeof(d->message), "%s", why);
		return GW_TOOLS_DENY;
	}
	if (data == NULL || strncmp(data, "[DONE]", 6) == 0) {
		free(data);
		return GW_TOOLS_OK;
	}
	if (gw_format_chat.read_chunk(data, dlen, &a, why, sizeof(why)) !=
	    WD_OK) {
		d->status = 502;
		snprintf(d->message, sizeof(d->message), "%s", why);
		rc = GW_TOOLS_DENY;
	} else {
		rc = gw_tools_answer(tl, &a, d);
	}
	gw_answer_clear(&a);
	free(data);
	return rc;
}

/* Fresh agent state after an empty history. */
static void
wire_fresh(struct ut_ld *l, struct gw_tools *tl)
{
	struct gw_tools_deny d;

	ck_assert_int_eq(wire_request(l, tl, NULL,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    &d), GW_TOOLS_OK);
}

/* One streamed event, after an empty history. */
static enum gw_tools_rc
wire_event(struct ut_ld *l, const char *ev, struct gw_tools_deny *d)
{
	struct gw_tools tl;
	enum gw_tools_rc rc;

	wire_fresh(l, &tl);
	rc = chunk_on(&tl, ev, strlen(ev), true, d);
	gw_tools_clear(&tl);
	return rc;
}

START_TEST(stream_event_checks)
{
	struct ut_ld l;
	struct gw_tools_deny d;

	load_agents_ok(&l, AGENT_A1);
	/* email may not come first. */
	ck_assert_int_eq(wire_event(&l, "data: {\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"type\":"
	    "\"function\",\"function\":{\"name\":\"email\",\"arguments\":\"\"}}]},"
	    "\"finish_reason\":null}]}\n\n", &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 403);
	ck_assert_str_eq(d.code, "tool_policy");
	ck_assert_str_eq(d.message, "the model asked for a tool call the policy "
	    "forbids: agent 'a1' may not call 'email' after 'start' (rule "
	    "'graph')");
	/* CRLF framing, no space after the colon. */
	ck_assert_int_eq(wire_event(&l, "data:{\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":"
	    "\"email\"}}]}}]}\r\n\r\n", &d), GW_TOOLS_DENY);
	/* Allowed, and events without calls. */
	ck_assert_int_eq(wire_event(&l, "data: {\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":"
	    "\"read\"}}]}}]}\n\n", &d), GW_TOOLS_OK);
	ck_assert_int_eq(wire_event(&l, "data: {\"choices\":[{\"index\":0,"
	    "\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n", &d),
	    GW_TOOLS_OK);
	ck_assert_int_eq(wire_event(&l, "data: [DONE]\n\n", &d), GW_TOOLS_OK);
	ut_ld_done(&l);
}
END_TEST

/*
 * An SSE event's data may span several "data:" lines; clients join them
 * with '\n' (the SSE spec, and the openai SDKs) and parse the result, so
 * the call below reaches them.  (gw_tools_event() once parsed each data
 * line as JSON on its own; neither parsed, and the event passed unchecked.)
 */
START_TEST(stream_event_multiline_data_is_checked)
{
	struct ut_ld l;
	struct gw_tools_deny d;

	load_agents_ok(&l, AGENT_A1);
	ck_assert_int_eq(wire_event(&l, "data: {\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":\n"
	    "data: [{\"index\":0,\"function\":{\"name\":\"email\"}}]}}]}\n\n", &d),
	    GW_TOOLS_DENY);
	ut_ld_done(&l);
}
END_TEST


/* ---- the strict reader (chat_answer.c, sse.c) ---- */

#define CH(calls) "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[" \
	calls "]},\"finish_reason\":null}]}"
#define CALL(idx, name) "{\"index\":" idx ",\"id\":\"c\",\"type\":" \
	"\"function\",\"function\":{\"name\":\"" name "\",\"arguments\":\"\"}}"

static enum wd_err
read_chunk_s(const char *text, char *why, size_t whylen)
{
	struct gw_answer a;
	enum wd_err rc = gw_format_chat.read_chunk(text, strlen(text), &a, why,
	    whylen);

	gw_answer_clear(&a);
	return rc;
}

/* What jansson refuses and JavaScript reads is refused, never passed. */
START_TEST(reader_refuses_what_clients_read_otherwise)
{
	static const char *const bad[] = {
		CH(CALL("\"1\"", "read")),
		CH(CALL("1.0", "read")),
		CH(CALL("-1", "read")),
		CH(CALL("64", "read")),
		CH("{\"index\":0,\"function\":{\"name\":\"read\"},\"name\":\"x\"}"),
		CH("{\"index\":0,\"type\":\"custom\",\"function\":{\"name\":\"r\"}}"),
		CH("{\"index\":0,\"function\":{\"name\":\"\"}}"),
		CH("{\"index\":0,\"function\":{\"name\":\"read\",\"x\":1}}"),
		"{\"n\":18446744073709551616,\"choices\":[]}",
		"{\"s\":\"a\\u0000b\",\"choices\":[]}",
		"{\"s\":\"a\\ud800b\",\"choices\":[]}",
		"{\"s\":\"\xff\",\"choices\":[]}",
		"{\"choices\":[],\"choices\":[]}",
		"{\"choices\":[{\"index\":0,\"delta\":{},\"message\":{}}]}",
		"{\"choices\":[{\"index\":\"0\",\"delta\":{}}]}",
		"{\"choices\":[{\"index\":8,\"delta\":{}}]}",
		"{\"choices\":[{\"index\":0}]}",
		"{\"choices\":{}}",
		"{\"tool_calls\":[],\"choices\":[]}",
		"[]",
		"{\"choices\":[]} x",
	};
	char why[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(read_chunk_s(bad[i], why, sizeof(why)) == WD_EPARSE,
		    "read: %s", bad[i]);
	ck_assert_int_eq(read_chunk_s(CH(CALL("63", "read")), why,
	    sizeof(why)), WD_OK);
	ck_assert_int_eq(read_chunk_s("{\"choices\":[],\"usage\":{\"a\":1}}", why,
	    sizeof(why)), WD_OK);
}
END_TEST

/* The key is what jansson decoded: the escape hides nothing, and what
 * goes out is warden's own compact JSON of it. */
START_TEST(reader_writes_what_it_checked)
{
	const char *in = "{\"choices\":[{\"index\":0,\"delta\":{\"tool\\u005f"
	    "calls\":[{\"index\":0,\"function\":{\"name\":\"read\"}}]}}]}";
	struct gw_answer a;
	struct evbuffer *out = evbuffer_new();
	char why[160];

	ck_assert_int_eq(gw_format_chat.read_chunk(in, strlen(in), &a, why,
	    sizeof(why)), WD_OK);
	ck_assert_uint_eq(a.nev, 1);
	ck_assert_int_eq(a.ev[0].kind, GW_ANS_CALL);
	ck_assert_str_eq(a.ev[0].name, "read");
	ck_assert_int_eq(gw_format_chat.write(&a, out), WD_OK);
	evbuffer_add(out, "", 1);
	ck_assert_str_eq((char *)evbuffer_pullup(out, -1),
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\""
	    ":0,\"function\":{\"name\":\"read\"}}]}}]}\n\n");
	gw_answer_clear(&a);
	evbuffer_free(out);
}
END_TEST

START_TEST(sse_event_fields)
{
	char *data, why[160];
	size_t dl;

	/* A BOM at the start of the stream is dropped; elsewhere refused. */
	ck_assert_int_eq(gw_sse_event_read("\xEF\xBB\xBF" "data: x\n\n", 12, true,
	    &data, &dl, why, sizeof(why)), WD_OK);
	ck_assert_str_eq(data, "x");
	free(data);
	ck_assert_int_eq(gw_sse_event_read("\xEF\xBB\xBF" "data: x\n\n", 12, false,
	    &data, &dl, why, sizeof(why)), WD_EPARSE);
	ck_assert_int_eq(gw_sse_event_read(": c\n\xEF\xBB\xBF" "data: x\n\n", 16,
	    true, &data, &dl, why, sizeof(why)), WD_EPARSE);
	/* After a data line: nothing is left for the caller to free (once
	 * it was, twice; fuzz_answer found it). */
	ck_assert_int_eq(gw_sse_event_read("data: x\n\xEF\xBB\xBF" "data: y\n\n",
	    19, false, &data, &dl, why, sizeof(why)), WD_EPARSE);
	ck_assert_ptr_null(data);
	/* Lines joined with LF, one space dropped, CR and CRLF ends,
	 * comments and ids ignored, "data" alone is an empty line. */
	ck_assert_int_eq(gw_sse_event_read(": hi\rid: 7\r\ndata:a\rdata:  b\n"
	    "data\n\n", 34, false, &data, &dl, why, sizeof(why)), WD_OK);
	ck_assert_str_eq(data, "a\n b\n");
	ck_assert_uint_eq(dl, 5);
	free(data);
	/* No data line: no data. */
	ck_assert_int_eq(gw_sse_event_read(": only a comment\n\n", 18, false, &data,
	    &dl, why, sizeof(why)), WD_OK);
	ck_assert_ptr_null(data);
	/* Named events are not the chat format's. */
	ck_assert_int_eq(gw_sse_event_read("event: error\ndata: {}\n\n", 23, false,
	    &data, &dl, why, sizeof(why)), WD_EPARSE);
}
END_TEST

/* A call index is named once, in order, before its arguments. */
START_TEST(stream_call_index_rules)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	const char *ev;

	load_agents_ok(&l, AGENT_A1);
	/* A second name for index 0 (the Node SDK would replace it). */
	wire_fresh(&l, &tl);
	ev = "data: " CH(CALL("0", "search")) "\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_OK);
	ev = "data: " CH("{\"index\":0,\"function\":{\"name\":\"search\"}}")
	    "\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), false, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 502);
	ck_assert_str_eq(d.code, "bad_upstream_response");
	gw_tools_clear(&tl);
	/* Index 1 before index 0. */
	wire_fresh(&l, &tl);
	ev = "data: " CH(CALL("1", "search")) "\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 502);
	gw_tools_clear(&tl);
	/* Arguments of a call never named. */
	wire_fresh(&l, &tl);
	ev = "data: " CH("{\"index\":0,\"function\":{\"arguments\":\"{}\"}}")
	    "\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_DENY);
	gw_tools_clear(&tl);
	/* A legacy function_call is a call, checked like any other; mixed
	 * with tool_calls it is refused. */
	wire_fresh(&l, &tl);
	ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"function_call\":"
	    "{\"name\":\"email\"}}}]}\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 403);
	gw_tools_clear(&tl);
	wire_fresh(&l, &tl);
	ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"function_call\":"
	    "{\"name\":\"search\"}}}]}\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_OK);
	ev = "data: " CH(CALL("0", "search")) "\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), false, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 502);
	gw_tools_clear(&tl);
	/* Choices are checked each on its own. */
	wire_fresh(&l, &tl);
	ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":["
	    CALL("0", "read") "]}},{\"index\":1,\"delta\":{\"tool_calls\":["
	    CALL("0", "email") "]}}]}\n\n";
	ck_assert_int_eq(chunk_on(&tl, ev, strlen(ev), true, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 403);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

/* Whole answers: strict, every call shape checked, errors reduced. */
START_TEST(whole_answer_shapes)
{
	static const char *const bad[] = {
		"{\"choices\":[{\"index\":0,\"message\":{\"tool_calls\":[{\"id\":"
		    "\"a\",\"type\":\"function\",\"function\":{\"name\":\"email\","
		    "\"name\":\"search\"}}]}}]}",
		"{\"choices\":[{\"index\":1,\"message\":{}}]}",
		"{\"choices\":[{\"index\":0,\"message\":{},\"delta\":{}}]}",
		"{\"choices\":[{\"index\":0,\"message\":{\"function_call\":{\"name\":"
		    "\"search\"},\"tool_calls\":[{\"type\":\"function\",\"function\":"
		    "{\"name\":\"search\"}}]}}]}",
		"{\"error\":{\"message\":\"x\"},\"choices\":[]}",
		"{\"choices\":[{\"index\":0,\"message\":{\"tool_calls\":{}}}]}",
	};
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	struct gw_answer a;
	char why[160], *text;
	json_t *e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(gw_format_chat.read_answer(bad[i], strlen(bad[i]), &a,
		    why, sizeof(why)) == WD_EPARSE, "read: %s", bad[i]);
		gw_answer_clear(&a);
	}
	load_agents_ok(&l, AGENT_A1);
	text = "{\"choices\":[{\"index\":0,\"message\":{\"function_call\":{\"name\":"
	    "\"email\",\"arguments\":\"{}\"}}}]}";
	wire_fresh(&l, &tl);
	ck_assert_int_eq(gw_format_chat.read_answer(text, strlen(text), &a, why,
	    sizeof(why)), WD_OK);
	ck_assert_int_eq(gw_tools_answer(&tl, &a, &d), GW_TOOLS_DENY);
	gw_answer_clear(&a);
	gw_tools_clear(&tl);
	text = "{\"choices\":[{\"index\":0,\"message\":{\"tool_calls\":[{\"id\":\"a\","
	    "\"type\":\"custom\",\"custom\":{\"name\":\"email\",\"input\":\"x\"}}]}}]}";
	wire_fresh(&l, &tl);
	ck_assert_int_eq(gw_format_chat.read_answer(text, strlen(text), &a, why,
	    sizeof(why)), WD_OK);
	ck_assert_int_eq(gw_tools_answer(&tl, &a, &d), GW_TOOLS_DENY);
	gw_answer_clear(&a);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
	/* An error body keeps its error object only. */
	text = "{\"error\":{\"message\":\"m\",\"type\":\"t\",\"code\":4,\"x\":[1]},"
	    "\"choices\":[{}]}";
	e = gw_format_chat.read_error(text, strlen(text));
	ck_assert_ptr_nonnull(e);
	text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_str_eq(text, "{\"error\":{\"code\":4,\"message\":\"m\","
	    "\"type\":\"t\"}}");
	free(text);
	json_decref(e);
	ck_assert_ptr_null(gw_format_chat.read_error("{\"choices\":[]}", 14));
}
END_TEST

Suite *
suite_tools(void)
{
	Suite *s = suite_create("tools");
	TCase *step = tcase_create("step");
	TCase *load = tcase_create("load");
	TCase *rev = tcase_create("review");
	TCase *sess = tcase_create("sessions");
	TCase *wire = tcase_create("wire");

	tcase_add_test(step, first_call_from_start);
	tcase_add_test(step, call_not_allowed_from_start_is_graph);
	tcase_add_test(step, flow_rule_after_labelled_tool);
	tcase_add_test(step, flow_only_for_its_sink_kind);
	tcase_add_test(step, tool_max_calls);
	tcase_add_test(step, agent_max_calls);
	tcase_add_test(step, max_calls_zero_and_unlimited);
	tcase_add_test(step, undeclared_tool);
	tcase_add_test(step, advance_false_keeps_state);
	suite_add_tcase(s, step);

	tcase_add_test(load, agents_load);
	tcase_add_test(load, error_graph_names_undeclared_tool);
	tcase_add_test(load, error_unknown_label);
	tcase_add_test(load, error_bad_agent_id);
	tcase_add_test(load, error_unknown_tenant);
	tcase_add_test(load, error_bad_sink);
	tcase_add_test(load, error_bad_on_violation);
	tcase_add_test(load, error_duplicate_tool);
	tcase_add_test(load, error_start_is_reserved);
	tcase_add_test(load, error_more_than_64_tools);
	tcase_add_test(load, error_agent_key_is_a_tenant_key);
	tcase_add_test(load, find_key_agent);
	tcase_add_test(load, policy_version_follows_the_graph);
	tcase_add_test(load, policy_version_ignores_tool_key_order);
	suite_add_tcase(s, load);

	tcase_add_test(rev, reach_shortest_path);
	tcase_add_test(rev, reach_honours_flows);
	tcase_add_test(rev, reach_unreachable_when_flow_cuts_every_path);
	tcase_add_test(rev, review_finds_leak_through_intermediate_tool);
	tcase_add_test(rev, review_of_the_example_is_clean);
	tcase_add_test(rev, graph_json_marks_cut_edges);
	tcase_add_test(rev, graph_dot_and_mermaid);
	tcase_add_test(rev, reach_back_to_the_same_tool);
	tcase_add_test(rev, graph_dot_quotes_names);
	suite_add_tcase(s, rev);

	tcase_add_test(sess, session_record_is_a_prefix);
	tcase_add_test(sess, session_cap_refuses_never_evicts);
	tcase_add_test(sess, session_ttl);
	tcase_add_test(sess, session_key_not_truncated);
	suite_add_tcase(s, sess);

	tcase_add_test(wire, session_commit_with_several_choices);
	tcase_add_test(wire, stream_event_checks);
	tcase_add_test(wire, stream_event_multiline_data_is_checked);
	tcase_add_test(wire, reader_refuses_what_clients_read_otherwise);
	tcase_add_test(wire, reader_writes_what_it_checked);
	tcase_add_test(wire, sse_event_fields);
	tcase_add_test(wire, stream_call_index_rules);
	tcase_add_test(wire, whole_answer_shapes);
	suite_add_tcase(s, wire);
	return s;
}
