/*
 * test_mcp.c - the MCP gateway's pure parts: the strict JSON-RPC reader
 * (gateway/mcp_rpc.c), MCP calls in a session's record next to chat calls
 * (gateway/sessions.c, gw_tools_session_state), and tool definition
 * fingerprints and pins (gateway/mcp_pins.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gateway/gw_int.h"
#include "gateway/mcp.h"
#include "gateway/store.h"
#include "tests/unit/suites.h"

static int
rpc(const char *text, struct gw_rpc *m)
{
	char why[256];
	int code = 0;

	if (gw_rpc_read(text, strlen(text), m, &code, why, sizeof(why)) == WD_OK)
		return 0;
	ck_assert(why[0] != '\0');
	return code;
}

START_TEST(rpc_reads_the_three_kinds)
{
	struct gw_rpc m;

	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
	    "\"tools/call\",\"params\":{\"name\":\"x\"}}", &m), 0);
	ck_assert_int_eq(m.kind, GW_RPC_REQUEST);
	ck_assert_str_eq(m.method, "tools/call");
	gw_rpc_clear(&m);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"method\":"
	    "\"notifications/initialized\"}", &m), 0);
	ck_assert_int_eq(m.kind, GW_RPC_NOTIFICATION);
	gw_rpc_clear(&m);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}",
	    &m), 0);
	ck_assert_int_eq(m.kind, GW_RPC_RESPONSE);
	gw_rpc_clear(&m);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":"
	    "{\"code\":-1,\"message\":\"m\"}}", &m), 0);
	gw_rpc_clear(&m);
}
END_TEST

START_TEST(rpc_refuses_what_two_readers_could_read_apart)
{
	struct gw_rpc m;

	/* Duplicate keys: one reader takes the first, another the last. */
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\","
	    "\"method\":\"b\"}", &m), GW_RPC_PARSE);
	ck_assert_int_eq(rpc("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}]",
	    &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\","
	    "\"extra\":1}", &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"a\"}",
	    &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"a\"}",
	    &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}",
	    &m), GW_RPC_INVALID);
	/* A NUL in a string is not even read (jansson without ALLOW_NUL). */
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
	    "\"a\\u0000b\"}", &m), GW_RPC_PARSE);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\","
	    "\"params\":[1]}", &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},"
	    "\"error\":{\"code\":1,\"message\":\"m\"}}", &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1}", &m),
	    GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":"
	    "{\"code\":\"x\",\"message\":\"m\"}}", &m), GW_RPC_INVALID);
	ck_assert_int_eq(rpc("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"",
	    &m), GW_RPC_PARSE);
	ck_assert(m.root == NULL);
}
END_TEST

START_TEST(rpc_bounds_size_and_values)
{
	struct gw_rpc m;
	size_t n = GW_MCP_MAX_VALUES + 10, len = 0;
	char *big = malloc(n * 2 + 64), why[256];
	int code;

	len += (size_t)sprintf(big, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
	    "{\"a\":[");
	for (size_t i = 0; i < n; i++)
		big[len++] = i ? ',' : '0', big[len++] = '0';
	len += (size_t)sprintf(big + len, "]}}");
	ck_assert(gw_rpc_read(big, len, &m, &code, why, sizeof(why)) ==
	    WD_EPARSE);
	ck_assert_int_eq(code, GW_RPC_INVALID);
	ck_assert(strstr(why, "values") != NULL);
	ck_assert(gw_rpc_read(big, GW_MCP_MAX_BODY + 1, &m, &code, why,
	    sizeof(why)) == WD_EPARSE);
	free(big);
}
END_TEST

/* search neutral, read personal, email external; no email after read. */
static void
agent(struct pol_agent *a, struct pol_tenant *t, struct pol_flow *f)
{
	static char *names[] = { "search", "read", "email" };

	memset(a, 0, sizeof(*a));
	memset(t, 0, sizeof(*t));
	t->id = "t-mcp";
	a->id = "a-mcp";
	a->tenant = t;
	a->ntools = 3;
	for (int i = 0; i < 3; i++) {
		a->tools[i].name = names[i];
		a->tools[i].max_calls = -1;
		a->next[i] = 7;
	}
	a->tools[1].labels = 1;
	a->tools[2].sink = POL_SINK_EXTERNAL;
	a->start = 7;
	f->id = "no-pii-out";
	f->from_labels = 1;
	f->to_sink = POL_SINK_EXTERNAL;
	a->flows = f;
	a->nflows = 1;
	a->max_calls = -1;
	a->max_sessions = 10;
	a->session_ttl_s = 60;
	a->limits.max_calls = -1;
}

START_TEST(mcp_calls_share_the_session_with_chat)
{
	struct pol_agent a;
	struct pol_tenant t;
	struct pol_flow f;
	struct gw_sess_ref r;
	struct gw_tools_deny d;
	struct pol_tstate st;
	struct pol_tool_why why;
	const char *chat[] = { "search" }, *more[] = { "search", "read" };
	const char *mcp_read = GW_SESSION_MCP "read", *run = GW_SESSION_RUN "read";
	char **names;
	size_t n, rec;
	int retry;

	gw_store_memory_reset();
	agent(&a, &t, &f);
	r = (struct gw_sess_ref){ t.id, a.id, "s-mcp", 10, 60 };
	ck_assert_int_eq(gw_store()->session_check(&r, chat, 1, &rec, &retry),
	    GW_STORE_OK);
	/* An MCP call of read: in the record, not in any chat history. */
	ck_assert_int_eq(gw_store()->session_append(&r, &mcp_read, 1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_check(&r, chat, 1, &rec, &retry),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_tools_session_state(&a, "s-mcp", &st, &names, &n,
	    &d), GW_TOOLS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[1], "mcp:read");
	free(names);
	/* Its label is the session's now: no external sink, in either path. */
	ck_assert_uint_eq(st.labels, 1);
	ck_assert_uint_eq(st.total, 2);
	ck_assert(!pol_tool_step(&a, &st, "email", false, &why));
	ck_assert_str_eq(why.rule, "no-pii-out");
	/* A chat history still compares with the chat calls only. */
	ck_assert_int_eq(gw_store()->session_check(&r, more, 2, &rec, &retry),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_check(&r, more + 1, 1, &rec,
	    &retry), GW_STORE_CONTRADICTS);
	/* A "run:" entry ran a chat call: no second step. */
	ck_assert_int_eq(gw_store()->session_append(&r, &run, 1), GW_STORE_OK);
	ck_assert_int_eq(gw_tools_session_state(&a, "s-mcp", &st, &names, &n,
	    &d), GW_TOOLS_OK);
	free(names);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(st.total, 3);
	/* A decision made on 4 calls lands only on a record of 4 calls. */
	ck_assert_int_eq(gw_store()->session_append_at(&r, 3, &mcp_read, 1),
	    GW_STORE_CONTRADICTS);
	ck_assert_int_eq(gw_store()->session_append_at(&r, 4, &mcp_read, 1),
	    GW_STORE_OK);
	ck_assert_int_eq(gw_store()->session_append_at(&r, 4, &mcp_read, 1),
	    GW_STORE_CONTRADICTS);
	gw_store_memory_reset();
}
END_TEST

START_TEST(pins_first_seen_then_changed_until_approved)
{
	char dir[] = "/tmp/ut-pins.XXXXXX", path[256], fp1[65], fp2[65];
	char from[65], to[65];
	bool wrote;
	json_t *tool = json_pack("{s:s,s:s,s:{s:s}}", "name", "t", "description",
	    "d", "inputSchema", "type", "object");
	FILE *devnull = fopen("/dev/null", "w");

	ck_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/mcp-pins.json", dir);
	gw_pin_fingerprint(tool, fp1);
	ck_assert_int_eq(gw_pin_status(path, "s", "t"), GW_PIN_UNSEEN);
	/* The first sight pins it (and says so, for the record); the
	 * next one changes nothing. */
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp1, &wrote), GW_PIN_OK);
	ck_assert(wrote);
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp1, &wrote), GW_PIN_OK);
	ck_assert(!wrote);
	ck_assert_int_eq(gw_pin_status(path, "s", "t"), GW_PIN_OK);
	/* Key order does not matter; any word of the description does. */
	json_object_set_new(tool, "description", json_string("d2"));
	gw_pin_fingerprint(tool, fp2);
	ck_assert_str_ne(fp1, fp2);
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp2, &wrote),
	    GW_PIN_CHANGED);
	ck_assert(wrote);		/* set pending */
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp2, &wrote),
	    GW_PIN_CHANGED);
	ck_assert(!wrote);		/* pending already */
	ck_assert_int_eq(gw_pin_status(path, "s", "t"), GW_PIN_CHANGED);
	ck_assert_int_eq(gw_pin_approve(path, "s", "nope", from, to, devnull),
	    1);
	ck_assert_str_eq(to, "");
	ck_assert_int_eq(gw_pin_approve(path, "s", "t", from, to, devnull), 0);
	ck_assert_str_eq(from, fp1);
	ck_assert_str_eq(to, fp2);
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp2, NULL), GW_PIN_OK);
	ck_assert_int_eq(gw_pin_status(path, "s", "t"), GW_PIN_OK);
	/* The file edited in place (same inode): the next check reads it. */
	{
		char text[256];
		FILE *f;

		snprintf(text, sizeof(text), "{\"s\": {\"t\": {\"pinned\": "
		    "\"%s\"}}}\n", fp1);
		ck_assert_ptr_nonnull(f = fopen(path, "r+"));
		ck_assert_int_eq(ftruncate(fileno(f), 0), 0);
		ck_assert_int_eq(fputs(text, f) >= 0, 1);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_int_eq(gw_pin_check(path, "s", "t", fp2, NULL),
		    GW_PIN_CHANGED);
		ck_assert_int_eq(gw_pin_check(path, "s", "t", fp1, NULL), GW_PIN_OK);
	}
	/* A pin file others may write refuses everything. */
	chmod(path, 0666);
	ck_assert_int_eq(gw_pin_status(path, "s", "t"), GW_PIN_ERROR);
	ck_assert_int_eq(gw_pin_check(path, "s", "t", fp2, NULL), GW_PIN_ERROR);
	unlink(path);
	rmdir(dir);
	fclose(devnull);
	json_decref(tool);
}
END_TEST

/*
 * Processes that pin at the same moment (gateways, `warden mcp approve`)
 * lose none of each other's pins: each one's read, change and write of
 * the file is one step.  Six processes pin 25 tools each, all at once.
 */
START_TEST(pins_of_processes_at_once_are_all_kept)
{
	char dir[] = "/tmp/ut-pins.XXXXXX", path[256], fp[65];
	pid_t kids[6];
	size_t nk = sizeof(kids) / sizeof(kids[0]), per = 25;

	ck_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/mcp-pins.json", dir);
	memset(fp, 'a', 64);
	fp[64] = '\0';
	for (size_t k = 0; k < nk; k++) {
		if ((kids[k] = fork()) == 0) {
			char tool[32];
			int bad = 0;

			for (size_t i = 0; i < per; i++) {
				snprintf(tool, sizeof(tool), "t%zu-%zu", k, i);
				bad += gw_pin_check(path, "s", tool, fp, NULL) !=
				    GW_PIN_OK;
			}
			_exit(bad == 0 ? 0 : 1);
		}
		ck_assert_int_gt(kids[k], 0);
	}
	for (size_t k = 0; k < nk; k++) {
		int st;

		ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (size_t k = 0; k < nk; k++)
		for (size_t i = 0; i < per; i++) {
			char tool[32];

			snprintf(tool, sizeof(tool), "t%zu-%zu", k, i);
			ck_assert_msg(gw_pin_status(path, "s", tool) == GW_PIN_OK,
			    "the pin of %s was lost", tool);
		}
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(path), 0);
}
END_TEST

Suite *
suite_mcp(void)
{
	Suite *s = suite_create("mcp");
	TCase *tc = tcase_create("mcp");

	tcase_add_test(tc, rpc_reads_the_three_kinds);
	tcase_add_test(tc, rpc_refuses_what_two_readers_could_read_apart);
	tcase_add_test(tc, rpc_bounds_size_and_values);
	tcase_add_test(tc, mcp_calls_share_the_session_with_chat);
	tcase_add_test(tc, pins_first_seen_then_changed_until_approved);
	tcase_add_test(tc, pins_of_processes_at_once_are_all_kept);
	suite_add_tcase(s, tc);
	return s;
}
