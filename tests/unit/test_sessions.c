/*
 * test_sessions.c - what warden keeps of agents between requests and how
 * requests and answers meet it: `session`, `sessions` and `limits` in the
 * rules (policy/load_agents.c), the windows of the state store
 * (gateway/sessions.c), calls committed as soon as they may go out,
 * session: required, limits per key that a fresh session does not reset,
 * and messages that carry a tool's result without its call
 * (gateway/tools.c).
 *
 * Error tests compare the whole error stream; in expected text '@' stands
 * for the temp file's path.
 */
#include <check.h>
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

/* Lines 1-13; the agent starts on line 14, its extra keys on line 28. */
#define HEAD \
	"version: 1\n" \
	"data_classes: [personal]\n" \
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

/* search is neutral, read yields personal data, email is an external
 * sink; no email after read.  Two keys act as a1. */
#define AGENT(extra) \
	"  - id: a1\n" \
	"    tenant: t1\n" \
	"    keys: [\"sha256:" HEX_B "\", \"sha256:" HEX_C "\"]\n" \
	"    tools:\n" \
	"      search: {}\n" \
	"      read: { labels: [personal] }\n" \
	"      email: { sink: external }\n" \
	"    graph:\n" \
	"      start: [search, read]\n" \
	"      search: [search, read, email]\n" \
	"      read: [search, read, email]\n" \
	"    flows:\n" \
	"      - id: no-pii-out\n" \
	"        deny: { from_label: personal, to_sink: external }\n" \
	extra

static void
load_ok(struct ut_ld *l, const char *agent)
{
	char *text;

	ck_assert_int_ge(asprintf(&text, "%s%s", HEAD, agent), 0);
	ut_load_text(l, text, 0600);
	free(text);
	ck_assert_msg(l->rc == WD_OK, "rc %d; errors:\n%s", l->rc, l->errs);
}

static void
expect_errors(const char *agent, const char *tmpl)
{
	struct ut_ld l;
	char *text, *want;

	ck_assert_int_ge(asprintf(&text, "%s%s", HEAD, agent), 0);
	ut_load_text(&l, text, 0600);
	free(text);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == WD_ECONFIG, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_str_eq(l.errs, want);
	free(want);
	ut_ld_done(&l);
}

/* ---- the rules ---- */

START_TEST(session_keys_load)
{
	struct ut_ld l;
	const struct pol_agent *a;

	load_ok(&l, AGENT(""));
	a = &l.snap->agents[0];
	ck_assert(!a->session_required);
	ck_assert_uint_eq(a->max_sessions, 10000);
	ck_assert_int_eq(a->session_ttl_s, 3600);
	ck_assert_int_eq(a->limits.window_s, 0);
	ut_ld_done(&l);
	load_ok(&l, AGENT(
	    "    session: required\n"
	    "    sessions: { max: 5, ttl_s: 60 }\n"
	    "    limits:\n"
	    "      window_s: 3600\n"
	    "      max_calls: 10\n"
	    "      per_tool: { read: 2 }\n"));
	a = &l.snap->agents[0];
	ck_assert(a->session_required);
	ck_assert_uint_eq(a->max_sessions, 5);
	ck_assert_int_eq(a->session_ttl_s, 60);
	ck_assert_int_eq(a->limits.window_s, 3600);
	ck_assert_int_eq(a->limits.max_calls, 10);
	ck_assert_int_eq(a->limits.per_tool[pol_tool_index(a, "read")], 2);
	ck_assert_int_eq(a->limits.per_tool[pol_tool_index(a, "search")], -1);
	ut_ld_done(&l);
	load_ok(&l, AGENT("    session: optional\n"
	    "    limits: { window_s: 60, per_tool: { email: 0 } }\n"));
	a = &l.snap->agents[0];
	ck_assert(!a->session_required);
	ck_assert_int_eq(a->limits.max_calls, -1);
	ck_assert_int_eq(a->limits.per_tool[pol_tool_index(a, "email")], 0);
	ut_ld_done(&l);
}
END_TEST

START_TEST(error_session_keys)
{
	expect_errors(AGENT(
	    "    session: always\n"
	    "    sessions: { max: 0, ttl: 5, ttl_s: -1 }\n"),
	    "@:28:14: session must be required or optional, not 'always'\n"
	    "@:29:25: unknown key 'ttl' in sessions (did you mean 'ttl_s'?)\n"
	    "@:29:22: sessions.max must be between 1 and 1000000, not 0\n"
	    "@:29:40: sessions.ttl_s must be between 1 and 2592000, not -1\n"
	    "@: 4 errors\n");
	expect_errors(AGENT("    sessions: 5\n"),
	    "@:28:15: sessions must be a mapping, not a scalar\n"
	    "@: 1 error\n");
}
END_TEST

START_TEST(error_limits_keys)
{
	expect_errors(AGENT(
	    "    limits: { max_calls: 5 }\n"),
	    "@:28:13: limits without 'window_s'\n"
	    "@: 1 error\n");
	expect_errors(AGENT(
	    "    limits: { window_s: 60 }\n"),
	    "@:28:13: limits without 'max_calls' or 'per_tool'\n"
	    "@: 1 error\n");
	expect_errors(AGENT(
	    "    limits:\n"
	    "      window_s: 0\n"
	    "      max_call: 3\n"
	    "      per_tool: { raed: 1, read: x }\n"),
	    "@:30:7: unknown key 'max_call' in limits (did you mean "
	    "'max_calls'?)\n"
	    "@:29:17: limits.window_s must be between 1 and 2592000, not 0\n"
	    "@:31:19: limits.per_tool names undeclared tool 'raed'\n"
	    "@:31:34: limits.per_tool must be an integer, not 'x'\n"
	    "@: 4 errors\n");
}
END_TEST

static void
version_of(const char *agent, char out[65])
{
	struct ut_ld l;

	load_ok(&l, agent);
	memcpy(out, l.snap->version, 65);
	ut_ld_done(&l);
}

START_TEST(policy_version_follows_session_keys)
{
	char base[65], v[65], w[65];

	version_of(AGENT(""), base);
	/* The defaults written out are the same policy. */
	version_of(AGENT("    session: optional\n"
	    "    sessions: { max: 10000, ttl_s: 3600 }\n"), v);
	ck_assert_str_eq(v, base);
	version_of(AGENT("    session: required\n"), v);
	ck_assert_str_ne(v, base);
	version_of(AGENT("    sessions: { max: 9 }\n"), v);
	ck_assert_str_ne(v, base);
	version_of(AGENT("    sessions: { ttl_s: 9 }\n"), v);
	ck_assert_str_ne(v, base);
	version_of(AGENT("    limits: { window_s: 60, max_calls: 3 }\n"), v);
	ck_assert_str_ne(v, base);
	version_of(AGENT("    limits: { window_s: 61, max_calls: 3 }\n"), w);
	ck_assert_str_ne(w, v);
	version_of(AGENT("    limits: { window_s: 60, max_calls: 3, per_tool: "
	    "{ read: 1 } }\n"), w);
	ck_assert_str_ne(w, v);
}
END_TEST

/* ---- limits in the pure step (policy/tools.c) ---- */

START_TEST(window_limits_in_step)
{
	struct ut_ld l;
	const struct pol_agent *a;
	struct pol_tstate st;
	struct pol_tool_why why;
	int read;

	load_ok(&l, AGENT("    limits: { window_s: 60, max_calls: 3, per_tool: "
	    "{ read: 1 } }\n"));
	a = &l.snap->agents[0];
	read = pol_tool_index(a, "read");
	/* Not loaded (a history being replayed): not counted. */
	pol_tstate_init(&st);
	for (int i = 0; i < 5; i++)
		ck_assert(pol_tool_step(a, &st, "read", true, &why));
	ck_assert_uint_eq(st.wtotal, 0);
	/* Loaded: the key's earlier calls count. */
	pol_tstate_init(&st);
	st.window = true;
	st.wcounts[read] = 1;
	st.wtotal = 1;
	ck_assert(!pol_tool_step(a, &st, "read", false, &why));
	ck_assert_str_eq(why.rule, "limits.per_tool");
	ck_assert_str_eq(why.message, "agent 'a1' may call 'read' at most 1 "
	    "times in 60 s per key");
	ck_assert(pol_tool_step(a, &st, "search", true, &why));
	ck_assert(pol_tool_step(a, &st, "search", true, &why));
	ck_assert_uint_eq(st.wtotal, 3);
	ck_assert(!pol_tool_step(a, &st, "search", true, &why));
	ck_assert_str_eq(why.rule, "limits.max_calls");
	ut_ld_done(&l);
}
END_TEST

/* ---- windows in the store (gateway/sessions.c) ---- */

static const unsigned char key1[32] = { 1 }, key2[32] = { 2 };

START_TEST(window_take_and_read)
{
	struct gw_win_ref r1 = { "a1", key1, 3600 }, r2 = { "a1", key2, 3600 };
	const char *names[] = { "read", "search" };
	unsigned total, counts[2];

	gw_store_memory_reset();
	ck_assert_int_eq(gw_store()->window_take(&r1, "read", 3, 1), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "read", 3, 1),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r1, "search", 3, -1),
	    GW_STORE_LIMIT);
	ck_assert_int_eq(gw_store()->window_read(&r1, names, 2, &total, counts),
	    GW_STORE_OK);
	ck_assert_uint_eq(total, 3);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_uint_eq(counts[1], 2);
	/* Another key counts on its own. */
	ck_assert_int_eq(gw_store()->window_read(&r2, names, 2, &total, counts),
	    GW_STORE_OK);
	ck_assert_uint_eq(total, 0);
	ck_assert_int_eq(gw_store()->window_take(&r2, "read", 3, 1), GW_STORE_OK);
}
END_TEST

/*
 * Calls that went out but did not fit the record make the session refused
 * from then on: otherwise a history that leaves them out would match the
 * record.
 */
START_TEST(session_overflow_is_sticky)
{
	struct gw_sess_ref r = { "t1", "a1", "full", 10, 3600 };
	const char *calls[GW_SESSION_MAX_CALLS + 1];
	size_t recorded;
	int retry;

	gw_store_memory_reset();
	for (size_t i = 0; i <= GW_SESSION_MAX_CALLS; i++)
		calls[i] = "search";
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS + 1, &recorded, &retry), GW_STORE_TOO_LONG);
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS, &recorded, &retry), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_append(&r, calls, 1),
	    GW_STORE_TOO_LONG);
	/* The history without the lost call matches the record; refused. */
	ck_assert_int_eq(gw_store()->session_check(&r, calls,
	    GW_SESSION_MAX_CALLS, &recorded, &retry), GW_STORE_TOO_LONG);
}
END_TEST

/* The window slides: calls older than window_s stop counting. */
START_TEST(window_slides)
{
	struct gw_win_ref r = { "a1", key1, 1 };
	const char *names[] = { "read" };
	unsigned total, counts[1];

	gw_store_memory_reset();
	ck_assert_int_eq(gw_store()->window_take(&r, "read", 1, -1), GW_STORE_OK);
	ck_assert_int_eq(gw_store()->window_take(&r, "read", 1, -1),
	    GW_STORE_LIMIT);
	usleep(1100 * 1000);
	ck_assert_int_eq(gw_store()->window_read(&r, names, 1, &total, counts),
	    GW_STORE_OK);
	ck_assert_uint_eq(total, 0);
	ck_assert_int_eq(gw_store()->window_take(&r, "read", 1, -1), GW_STORE_OK);
}
END_TEST

/* ---- requests and answers (gateway/tools.c) ---- */

static const char plain[] =
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";

/* gw_tools_request for a1 with the given key digest (HEX_B's by default)
 * and session (NULL: none). */
static enum gw_tools_rc
request_as(struct ut_ld *l, struct gw_tools *tl, int key, const char *session,
    const char *body, struct gw_tools_deny *d)
{
	struct gw_header h[1] = { { "X-Warden-Session", session } };
	const struct pol_agent *a = &l->snap->agents[0];
	struct pol_caller caller = { .tenant = &l->snap->tenants[0], .agent = a,
		.key = a->keys[key] };
	struct gw_http_req req;
	json_t *root = json_loads(body, 0, NULL);
	enum gw_tools_rc rc;

	ck_assert_msg(root != NULL, "%s", body);
	memset(&req, 0, sizeof(req));
	req.hdrs = h;
	req.nhdrs = session != NULL ? 1 : 0;
	memset(d, 0, sizeof(*d));
	rc = gw_tools_request(tl, l->snap, &l->snap->tenants[0], &caller, &req,
	    &(struct gw_chat){ .root = root }, d);
	json_decref(root);
	return rc;
}

static enum gw_tools_rc
request(struct ut_ld *l, struct gw_tools *tl, const char *session,
    const char *body, struct gw_tools_deny *d)
{
	return request_as(l, tl, 0, session, body, d);
}

/* One streamed event naming calls (names, index 0, 1, ...). */
static char *
event_with(const char *const *names)
{
	json_t *calls = json_array(), *chunk;
	char *text, *ev;

	for (size_t i = 0; names[i] != NULL; i++)
		json_array_append_new(calls, json_pack("{s:I,s:s,s:s,s:{s:s,s:s}}",
		    "index", (json_int_t)i, "id", "c", "type", "function",
		    "function", "name", names[i], "arguments", ""));
	chunk = json_pack("{s:[{s:i,s:{s:o}}]}", "choices", "index", 0, "delta",
	    "tool_calls", calls);
	text = json_dumps(chunk, JSON_COMPACT);
	json_decref(chunk);
	ck_assert_int_ge(asprintf(&ev, "data: %s\n\n", text), 0);
	free(text);
	return ev;
}

/* A whole answer whose first choice makes these calls. */
static json_t *
answer_with(const char *const *names)
{
	json_t *calls = json_array();

	for (size_t i = 0; names[i] != NULL; i++)
		json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}",
		    "id", "c", "type", "function", "function", "name", names[i],
		    "arguments", "{}"));
	return json_pack("{s:[{s:i,s:{s:s,s:n,s:o},s:s}]}", "choices", "index",
	    0, "message", "role", "assistant", "content", "tool_calls", calls,
	    "finish_reason", "tool_calls");
}

/* One streamed event through the SSE fields and the chat reader, then
 * the tool check, as gateway/agent_answer.c does it. */
static enum gw_tools_rc
tools_event(struct gw_tools *tl, const char *ev, size_t len,
    struct gw_tools_deny *d)
{
	struct gw_answer a;
	char *data, why[160];
	size_t dlen;
	enum gw_tools_rc rc;

	ck_assert_int_eq(gw_sse_event_read(ev, len, true, &data, &dlen, why,
	    sizeof(why)), WD_OK);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(gw_format_chat.read_chunk(data, dlen, &a, why,
	    sizeof(why)), WD_OK);
	rc = gw_tools_answer(tl, &a, d);
	gw_answer_clear(&a);
	free(data);
	return rc;
}

/* A whole answer (json) through the chat reader, then the tool check. */
static enum gw_tools_rc
tools_whole(struct gw_tools *tl, json_t *ans, struct gw_tools_deny *d)
{
	struct gw_answer a;
	char why[160], *text = json_dumps(ans, JSON_COMPACT);
	enum gw_tools_rc rc;

	ck_assert_int_eq(gw_format_chat.read_answer(text, strlen(text), &a, why,
	    sizeof(why)), WD_OK);
	rc = gw_tools_answer(tl, &a, d);
	gw_answer_clear(&a);
	free(text);
	return rc;
}

/*
 * A streamed call is in the session as soon as its event may go out: a
 * client that leaves then (no clean end, no gw_tools_commit) cannot come
 * back with a history that hides it.  (Calls were once recorded only at
 * a stream's clean end: after a dropped stream the request below, its
 * history without 'read', was accepted.)
 */
START_TEST(streamed_call_committed_when_forwarded)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	char *ev = event_with((const char *[]){ "read", NULL });

	gw_store_memory_reset();
	load_ok(&l, AGENT(""));
	ck_assert_int_eq(request(&l, &tl, "drop-1", plain, &d), GW_TOOLS_OK);
	ck_assert_int_eq(tools_event(&tl, ev, strlen(ev), &d), GW_TOOLS_OK);
	gw_tools_clear(&tl);		/* the client left here */
	ck_assert_int_eq(request(&l, &tl, "drop-1", plain, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 403);
	ck_assert_str_eq(d.code, "tool_policy");
	ck_assert(strstr(d.message, "contradict session 'drop-1'") != NULL);
	gw_tools_clear(&tl);
	free(ev);
	ut_ld_done(&l);
}
END_TEST

/* An event that is withheld (a later call in it is forbidden) commits
 * nothing: the client never saw its allowed call. */
START_TEST(withheld_event_commits_nothing)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	char *ev = event_with((const char *[]){ "read", "email", NULL });

	gw_store_memory_reset();
	load_ok(&l, AGENT(""));
	ck_assert_int_eq(request(&l, &tl, "drop-2", plain, &d), GW_TOOLS_OK);
	ck_assert_int_eq(tools_event(&tl, ev, strlen(ev), &d), GW_TOOLS_DENY);
	gw_tools_clear(&tl);
	ck_assert_msg(request(&l, &tl, "drop-2", plain, &d) == GW_TOOLS_OK, "%s",
	    d.message);
	gw_tools_clear(&tl);
	free(ev);
	ut_ld_done(&l);
}
END_TEST

/* A whole answer's calls are in the session when gw_tools_answer lets it
 * go; a denied answer's are not. */
START_TEST(whole_answer_commit)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	json_t *ans;

	gw_store_memory_reset();
	load_ok(&l, AGENT(""));
	ck_assert_int_eq(request(&l, &tl, "whole-1", plain, &d), GW_TOOLS_OK);
	ans = answer_with((const char *[]){ "read", "email", NULL });
	ck_assert_int_eq(tools_whole(&tl, ans, &d), GW_TOOLS_DENY);
	json_decref(ans);
	gw_tools_clear(&tl);
	ck_assert_int_eq(request(&l, &tl, "whole-1", plain, &d), GW_TOOLS_OK);
	ans = answer_with((const char *[]){ "search", NULL });
	ck_assert_int_eq(tools_whole(&tl, ans, &d), GW_TOOLS_OK);
	json_decref(ans);
	gw_tools_clear(&tl);
	ck_assert_int_eq(request(&l, &tl, "whole-1", plain, &d), GW_TOOLS_DENY);
	ck_assert(strstr(d.message, "contradict session 'whole-1'") != NULL);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

START_TEST(session_required)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;

	gw_store_memory_reset();
	load_ok(&l, AGENT("    session: required\n"));
	ck_assert_int_eq(request(&l, &tl, NULL, plain, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 400);
	ck_assert_str_eq(d.code, "session_required");
	ck_assert_str_eq(d.message, "agent 'a1' requires sessions: send "
	    "X-Warden-Session");
	gw_tools_clear(&tl);
	ck_assert_int_eq(request(&l, &tl, "req-1", plain, &d), GW_TOOLS_OK);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

/* A full agent: 429 session_limit with a Retry-After, never an eviction. */
START_TEST(session_limit_is_429)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;

	gw_store_memory_reset();
	load_ok(&l, AGENT("    sessions: { max: 1, ttl_s: 120 }\n"));
	ck_assert_int_eq(request(&l, &tl, "full-1", plain, &d), GW_TOOLS_OK);
	gw_tools_clear(&tl);
	ck_assert_int_eq(request(&l, &tl, "full-2", plain, &d), GW_TOOLS_DENY);
	ck_assert_int_eq(d.status, 429);
	ck_assert_str_eq(d.code, "session_limit");
	ck_assert_int_ge(d.retry_after_s, 119);
	ck_assert_int_le(d.retry_after_s, 120);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

/*
 * Limits per key: a fresh session (or none) per request resets nothing;
 * another key of the agent has its own count.  (Call limits were once
 * per session only: with a new X-Warden-Session each time, every
 * request could make max_calls calls again.)
 */
START_TEST(window_limit_survives_fresh_sessions)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	char sess[32];
	json_t *ans;

	gw_store_memory_reset();
	load_ok(&l, AGENT("    limits: { window_s: 3600, max_calls: 2 }\n"));
	for (int i = 0; i < 3; i++) {
		snprintf(sess, sizeof(sess), "fresh-%d", i);
		ck_assert_int_eq(request(&l, &tl, i == 1 ? NULL : sess, plain, &d),
		    GW_TOOLS_OK);
		ans = answer_with((const char *[]){ "search", NULL });
		ck_assert_int_eq(tools_whole(&tl, ans, &d), i < 2 ?
		    GW_TOOLS_OK : GW_TOOLS_DENY);
		json_decref(ans);
		gw_tools_clear(&tl);
	}
	ck_assert_int_eq(d.status, 403);
	ck_assert_str_eq(d.code, "tool_policy");
	ck_assert_str_eq(d.message, "the model asked for a tool call the policy "
	    "forbids: agent 'a1' may make at most 2 tool calls in 3600 s per "
	    "key (rule 'limits.max_calls')");
	/* The same in a stream. */
	{
		char *ev = event_with((const char *[]){ "search", NULL });

		ck_assert_int_eq(request(&l, &tl, "fresh-9", plain, &d),
		    GW_TOOLS_OK);
		ck_assert_int_eq(tools_event(&tl, ev, strlen(ev), &d),
		    GW_TOOLS_DENY);
		gw_tools_clear(&tl);
		free(ev);
	}
	/* Tools offered while the key has no calls left: refused (deny). */
	ck_assert_int_eq(request(&l, &tl, "fresh-10", "{\"model\":\"m\","
	    "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":"
	    "[{\"type\":\"function\",\"function\":{\"name\":\"search\"}}]}",
	    &d), GW_TOOLS_DENY);
	ck_assert(strstr(d.message, "rule 'limits.max_calls'") != NULL);
	gw_tools_clear(&tl);
	/* The agent's other key has its own window. */
	ck_assert_int_eq(request_as(&l, &tl, 1, NULL, plain, &d), GW_TOOLS_OK);
	ans = answer_with((const char *[]){ "search", NULL });
	ck_assert_int_eq(tools_whole(&tl, ans, &d), GW_TOOLS_OK);
	json_decref(ans);
	gw_tools_clear(&tl);
	ut_ld_done(&l);
}
END_TEST

/* Two requests of one key checked before either answer is counted still
 * make no more calls than the limit: the count is taken atomically. */
START_TEST(window_limit_holds_for_concurrent_requests)
{
	struct ut_ld l;
	struct gw_tools t1, t2;
	struct gw_tools_deny d;
	json_t *ans;

	gw_store_memory_reset();
	load_ok(&l, AGENT("    limits: { window_s: 3600, max_calls: 1 }\n"));
	ck_assert_int_eq(request(&l, &t1, NULL, plain, &d), GW_TOOLS_OK);
	ck_assert_int_eq(request(&l, &t2, NULL, plain, &d), GW_TOOLS_OK);
	ans = answer_with((const char *[]){ "search", NULL });
	ck_assert_int_eq(tools_whole(&t1, ans, &d), GW_TOOLS_OK);
	json_decref(ans);
	ans = answer_with((const char *[]){ "search", NULL });
	ck_assert_int_eq(tools_whole(&t2, ans, &d), GW_TOOLS_DENY);
	ck_assert(strstr(d.message, "reached the limit") != NULL);
	json_decref(ans);
	gw_tools_clear(&t1);
	gw_tools_clear(&t2);
	ut_ld_done(&l);
}
END_TEST

/* A request whose history holds the tool result (tool_call_id "c1") and,
 * before it, assistant calls made of `calls` (JSON) . */
static char *
history(const char *assistant, const char *tool)
{
	char *body;

	ck_assert_int_ge(asprintf(&body, "{\"model\":\"m\",\"messages\":["
	    "{\"role\":\"user\",\"content\":\"x\"}%s%s%s%s]}",
	    assistant ? "," : "", assistant ? assistant : "", tool ? "," : "",
	    tool ? tool : ""), 0);
	return body;
}

static void
expect_refused(struct ut_ld *l, const char *assistant, const char *tool,
    int status, const char *code, const char *message)
{
	struct gw_tools tl;
	struct gw_tools_deny d;
	char *body = history(assistant, tool);

	ck_assert_msg(request(l, &tl, NULL, body, &d) == GW_TOOLS_DENY, "%s",
	    body);
	ck_assert_int_eq(d.status, status);
	ck_assert_str_eq(d.code, code);
	ck_assert_str_eq(d.message, message);
	gw_tools_clear(&tl);
	free(body);
}

#define CALL_READ(id) \
	"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"" id \
	"\",\"type\":\"function\",\"function\":{\"name\":\"read\"," \
	"\"arguments\":\"{}\"}}]}"
#define RESULT(id) \
	"{\"role\":\"tool\",\"tool_call_id\":\"" id "\",\"content\":\"data\"}"

/*
 * A tool result must answer a call the history shows: a result without
 * its call is labelled data no call labelled.  (These were once passed:
 * only assistant tool_calls were looked at.)
 */
START_TEST(tool_results_need_their_calls)
{
	struct ut_ld l;
	struct gw_tools tl;
	struct gw_tools_deny d;
	char *body;

	load_ok(&l, AGENT(""));
	/* With its call: fine. */
	body = history(CALL_READ("c1"), RESULT("c1"));
	ck_assert_int_eq(request(&l, &tl, NULL, body, &d), GW_TOOLS_OK);
	gw_tools_clear(&tl);
	free(body);
	expect_refused(&l, NULL, RESULT("c1"), 403, "tool_policy",
	    "messages[1].tool_call_id 'c1' answers no call in an earlier "
	    "message's 'tool_calls'");
	expect_refused(&l, CALL_READ("c2"), RESULT("c1"), 403, "tool_policy",
	    "messages[2].tool_call_id 'c1' answers no call in an earlier "
	    "message's 'tool_calls'");
	/* The call must come first. */
	expect_refused(&l, RESULT("c1"), CALL_READ("c1"), 403, "tool_policy",
	    "messages[1].tool_call_id 'c1' answers no call in an earlier "
	    "message's 'tool_calls'");
	expect_refused(&l, NULL, "{\"role\":\"tool\",\"content\":\"data\"}", 403,
	    "tool_policy", "messages[1].tool_call_id '' answers no call in an "
	    "earlier message's 'tool_calls'");
	expect_refused(&l, NULL, "{\"role\":\"tool\",\"tool_call_id\":7,"
	    "\"content\":\"data\"}", 403, "tool_policy", "messages[1]."
	    "tool_call_id '' answers no call in an earlier message's "
	    "'tool_calls'");
	ut_ld_done(&l);
}
END_TEST

START_TEST(function_messages_and_bad_tool_calls_refused)
{
	struct ut_ld l;

	load_ok(&l, AGENT(""));
	expect_refused(&l, NULL, "{\"role\":\"function\",\"name\":\"read\","
	    "\"content\":\"data\"}", 403, "tool_policy", "messages[1] has role "
	    "'function'; agents must use 'tool' messages that answer a call in "
	    "'tool_calls'");
	expect_refused(&l, "{\"role\":\"assistant\",\"content\":null,"
	    "\"tool_calls\":{\"0\":{\"id\":\"c1\",\"type\":\"function\","
	    "\"function\":{\"name\":\"email\",\"arguments\":\"{}\"}}}}", NULL,
	    400, "invalid_tool_call", "messages[1].tool_calls must be an array");
	expect_refused(&l, "{\"role\":\"assistant\",\"content\":\"x\","
	    "\"tool_calls\":null}", NULL, 400, "invalid_tool_call",
	    "messages[1].tool_calls must be an array");
	expect_refused(&l, "{\"role\":\"assistant\",\"content\":\"x\","
	    "\"tool_calls\":\"read\"}", NULL, 400, "invalid_tool_call",
	    "messages[1].tool_calls must be an array");
	/* An assistant function_call is a call without an id: refused, not
	 * counted (decided so: a tool result could not name it). */
	expect_refused(&l, "{\"role\":\"assistant\",\"content\":null,"
	    "\"function_call\":{\"name\":\"search\",\"arguments\":\"{}\"}}",
	    NULL, 403, "tool_policy", "messages[1] holds a 'function_call'; "
	    "agents must use 'tool_calls'");
	ut_ld_done(&l);
}
END_TEST

Suite *
suite_sessions(void)
{
	Suite *s = suite_create("sessions");
	TCase *load = tcase_create("rules");
	TCase *store = tcase_create("store");
	TCase *wire = tcase_create("wire");

	tcase_add_test(load, session_keys_load);
	tcase_add_test(load, error_session_keys);
	tcase_add_test(load, error_limits_keys);
	tcase_add_test(load, policy_version_follows_session_keys);
	tcase_add_test(load, window_limits_in_step);
	suite_add_tcase(s, load);
	tcase_add_test(store, window_take_and_read);
	tcase_add_test(store, window_slides);
	tcase_add_test(store, session_overflow_is_sticky);
	suite_add_tcase(s, store);
	tcase_add_test(wire, streamed_call_committed_when_forwarded);
	tcase_add_test(wire, withheld_event_commits_nothing);
	tcase_add_test(wire, whole_answer_commit);
	tcase_add_test(wire, session_required);
	tcase_add_test(wire, session_limit_is_429);
	tcase_add_test(wire, window_limit_survives_fresh_sessions);
	tcase_add_test(wire, window_limit_holds_for_concurrent_requests);
	tcase_add_test(wire, tool_results_need_their_calls);
	tcase_add_test(wire, function_messages_and_bad_tool_calls_refused);
	suite_add_tcase(s, wire);
	return s;
}
