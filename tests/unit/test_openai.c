/*
 * test_openai.c - gateway/openai.c: validating chat completion bodies,
 * OpenAI-shaped error JSON, and "Authorization: Bearer" against a loaded
 * snapshot.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "gateway/gw_int.h"
#include "tests/unit/suites.h"

struct parsed {
	enum wd_err rc;
	struct gw_chat chat;
	char why[256];
	const char *param;
};

/* Parse body (len 0: strlen); the caller clears p->chat. */
static void
chat_parse_len(struct parsed *p, const char *body, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->param = "unset";
	strcpy(p->why, "unset");
	p->rc = gw_chat_parse(body, len, &p->chat, p->why, sizeof(p->why),
	    &p->param);
	if (p->rc == WD_OK) {
		ck_assert_ptr_nonnull(gw_chat_tree(&p->chat));
		ck_assert_ptr_null(p->param);
	} else {
		ck_assert_msg(strcmp(p->why, "unset") != 0 && p->why[0] != '\0',
		    "no reason given");
	}
}

static void
chat_parse(struct parsed *p, const char *body)
{
	chat_parse_len(p, body, strlen(body));
}

/* Expect a rejection naming param (NULL: none) with why containing msg. */
static void
expect_bad(const char *body, const char *param, const char *msg)
{
	struct parsed p;

	chat_parse(&p, body);
	ck_assert_msg(p.rc == WD_EPARSE, "accepted: %s", body);
	if (param == NULL)
		ck_assert_msg(p.param == NULL, "param '%s' for %s", p.param, body);
	else
		ck_assert_msg(p.param != NULL && strcmp(p.param, param) == 0,
		    "param '%s', want '%s' for %s", p.param ? p.param : "(null)",
		    param, body);
	ck_assert_msg(strstr(p.why, msg) != NULL, "why '%s' lacks '%s'", p.why,
	    msg);
	gw_chat_clear(&p.chat);
	ck_assert_ptr_null(p.chat.root);
}

START_TEST(chat_valid)
{
	struct parsed p;

	chat_parse(&p, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
	    "\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}],"
	    "\"temperature\":0.2,\"tools\":[{\"type\":\"function\",\"function\":"
	    "{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]}");
	ck_assert_int_eq(p.rc, WD_OK);
	ck_assert_str_eq(p.chat.model, "gpt-4o");
	ck_assert(!p.chat.stream);
	ck_assert(json_is_object(p.chat.root));
	ck_assert_str_eq(json_string_value(json_object_get(p.chat.root, "model")),
	    p.chat.model);
	gw_chat_clear(&p.chat);
	ck_assert_ptr_null(p.chat.root);
	ck_assert_ptr_null(p.chat.model);
}
END_TEST

/* The common request is read without a tree, which comes only when asked
 * for; an unusual one (an escaped key, a key twice, a model with an
 * escape) is read by the tree, which gives the same facts or the error. */
START_TEST(chat_facts_without_tree)
{
	static const char plain[] = "{\"model\":\"gpt-4o\",\"stream\":true,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	static const char escaped[] = "{\"mod\\u0065l\":\"gpt-\\u0034o\","
	    "\"messages\":[{\"role\":\"user\"}]}";
	struct gw_chat chat;
	const char *param;
	char why[256];

	ck_assert_int_eq(gw_chat_parse(plain, strlen(plain), &chat, why,
	    sizeof(why), &param), WD_OK);
	ck_assert_ptr_null(chat.root);
	ck_assert_str_eq(chat.model, "gpt-4o");
	ck_assert(chat.stream);
	ck_assert_int_eq(chat.max_tokens, -1);
	ck_assert(json_is_true(json_object_get(gw_chat_tree(&chat), "stream")));
	ck_assert_ptr_eq(gw_chat_tree(&chat), chat.root);
	gw_chat_clear(&chat);
	/* The limits' max_tokens without a tree: max_completion_tokens
	 * first, an integer >= 0 only (-0 is jansson's 0). */
	{
		static const char *const b[] = {
			"{\"model\":\"m\",\"max_tokens\":7,"
			    "\"messages\":[{\"role\":\"user\"}]}",
			"{\"model\":\"m\",\"max_tokens\":7,\"max_completion_"
			    "tokens\":9,\"messages\":[{\"role\":\"user\"}]}",
			"{\"model\":\"m\",\"max_tokens\":-0,\"max_completion_"
			    "tokens\":1.5,\"messages\":[{\"role\":\"user\"}]}",
			"{\"model\":\"m\",\"max_tokens\":-3,"
			    "\"messages\":[{\"role\":\"user\"}]}",
		};
		static const long long want[] = { 7, 9, 0, -1 };

		for (size_t i = 0; i < 4; i++) {
			ck_assert_int_eq(gw_chat_parse(b[i], strlen(b[i]), &chat,
			    why, sizeof(why), &param), WD_OK);
			ck_assert_ptr_null(chat.root);
			ck_assert_int_eq(chat.max_tokens, want[i]);
			gw_chat_clear(&chat);
		}
	}
	ck_assert_int_eq(gw_chat_parse(escaped, strlen(escaped), &chat, why,
	    sizeof(why), &param), WD_OK);
	ck_assert_ptr_nonnull(chat.root);
	ck_assert_str_eq(chat.model, "gpt-4o");
	gw_chat_clear(&chat);
	/* Duplicates, at any depth, are refused either way. */
	expect_bad("{\"model\":\"a\",\"model\":\"b\",\"messages\":"
	    "[{\"role\":\"user\"}]}", NULL, "duplicate");
	expect_bad("{\"model\":\"a\",\"messages\":[{\"role\":\"user\","
	    "\"x\":{\"k\":1,\"k\":2}}]}", NULL, "duplicate");
	expect_bad("{\"model\":\"a\",\"messages\":[{\"role\":\"user\","
	    "\"role\":\"system\"}]}", NULL, "duplicate");
}
END_TEST

START_TEST(chat_stream_flag)
{
	static const struct {
		const char *v;
		bool stream;
	} cases[] = {
		{ "true", true }, { "false", false }, { "null", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[256];
		struct parsed p;

		snprintf(body, sizeof(body), "{\"model\":\"m\",\"stream\":%s,"
		    "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
		    cases[i].v);
		chat_parse(&p, body);
		ck_assert_int_eq(p.rc, WD_OK);
		ck_assert_msg(p.chat.stream == cases[i].stream, "stream %s",
		    cases[i].v);
		gw_chat_clear(&p.chat);
	}
	expect_bad("{\"model\":\"m\",\"stream\":\"yes\",\"messages\":"
	    "[{\"role\":\"user\"}]}", "stream", "'stream' must be a boolean");
	expect_bad("{\"model\":\"m\",\"stream\":1,\"messages\":"
	    "[{\"role\":\"user\"}]}", "stream", "'stream' must be a boolean");
}
END_TEST

START_TEST(chat_not_json)
{
	expect_bad("this is not json", NULL, "not valid JSON");
	expect_bad("{\"model\":\"m\",", NULL, "not valid JSON");
	expect_bad("{\"model\":\"m\"} trailing", NULL, "not valid JSON");
	expect_bad("{'model':'m'}", NULL, "not valid JSON");
	expect_bad("[1,2]", NULL, "must be a JSON object");
	expect_bad("\"model\"", NULL, "not valid JSON");
}
END_TEST

START_TEST(chat_empty_body)
{
	struct parsed p;

	chat_parse_len(&p, "", 0);
	ck_assert_int_eq(p.rc, WD_EPARSE);
	ck_assert_str_eq(p.why, "request body is empty");
	ck_assert_ptr_null(p.param);
	gw_chat_clear(&p.chat);
}
END_TEST

/* Two "model" keys could smuggle a model past the policy. */
START_TEST(chat_duplicate_model)
{
	expect_bad("{\"model\":\"allowed\",\"messages\":[{\"role\":\"user\"}],"
	    "\"model\":\"forbidden\"}", NULL, "duplicate");
	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"role\":\"system\"}]}", NULL, "duplicate");
}
END_TEST

START_TEST(chat_model_checks)
{
	static const char *const bodies[] = {
		"{\"messages\":[{\"role\":\"user\"}]}",
		"{\"model\":\"\",\"messages\":[{\"role\":\"user\"}]}",
		"{\"model\":5,\"messages\":[{\"role\":\"user\"}]}",
		"{\"model\":null,\"messages\":[{\"role\":\"user\"}]}",
		"{\"model\":[\"m\"],\"messages\":[{\"role\":\"user\"}]}",
		"{\"model\":{\"name\":\"m\"},\"messages\":[{\"role\":\"user\"}]}",
	};
	char body[512];

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_bad(bodies[i], "model",
		    "'model' is required and must be a non-empty string");
	/* Names are at most 256 bytes. */
	snprintf(body, sizeof(body), "{\"model\":\"%0257d\",\"messages\":"
	    "[{\"role\":\"user\"}]}", 0);
	expect_bad(body, "model", "'model' is not a valid name");
}
END_TEST

START_TEST(chat_messages_checks)
{
	expect_bad("{\"model\":\"m\"}", "messages",
	    "'messages' is required and must be a non-empty array");
	expect_bad("{\"model\":\"m\",\"messages\":[]}", "messages",
	    "'messages' is required and must be a non-empty array");
	expect_bad("{\"model\":\"m\",\"messages\":{\"role\":\"user\"}}",
	    "messages", "'messages' is required and must be a non-empty array");
	expect_bad("{\"model\":\"m\",\"messages\":\"hi\"}", "messages",
	    "'messages' is required and must be a non-empty array");
	expect_bad("{\"model\":\"m\",\"messages\":null}", "messages",
	    "'messages' is required and must be a non-empty array");
	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},"
	    "{\"content\":\"no role\"}]}", "messages",
	    "'messages[1]' must be an object with a string 'role'");
	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":7}]}", "messages",
	    "'messages[0]' must be an object with a string 'role'");
	expect_bad("{\"model\":\"m\",\"messages\":[\"user\"]}", "messages",
	    "'messages[0]' must be an object with a string 'role'");
}
END_TEST

START_TEST(chat_invalid_utf8)
{
	static const char *const bodies[] = {
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"bad \xff byte\"}]}",
		"{\"model\":\"m\xc3\",\"messages\":[{\"role\":\"user\"}]}",
		/* Overlong encoding of '/'. */
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"\xc0\xaf\"}]}",
		/* UTF-16 surrogate encoded as UTF-8. */
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"\xed\xa0\x80\"}]}",
		/* A lone surrogate escape. */
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"\\ud800\"}]}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_bad(bodies[i], NULL, "not valid JSON");
}
END_TEST

START_TEST(chat_nul_escape)
{
	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"a\\u0000b\"}]}", NULL, "not valid JSON");
	expect_bad("{\"model\":\"gpt-4o\\u0000evil\",\"messages\":"
	    "[{\"role\":\"user\"}]}", NULL, "not valid JSON");
	/* A raw NUL byte inside the body. */
	{
		static const char body[] = "{\"model\":\"m\0\",\"messages\":"
		    "[{\"role\":\"user\"}]}";
		struct parsed p;

		chat_parse_len(&p, body, sizeof(body) - 1);
		ck_assert_int_eq(p.rc, WD_EPARSE);
		gw_chat_clear(&p.chat);
	}
}
END_TEST

START_TEST(chat_deep_nesting)
{
	const size_t depth = 100000;
	static const char head[] = "{\"model\":\"m\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":";
	size_t hl = sizeof(head) - 1, n = 0;
	char *body = malloc(hl + 5 * depth + 8);
	struct parsed p;

	ck_assert_ptr_nonnull(body);
	memcpy(body, head, hl);
	n = hl;
	memset(body + n, '[', depth);
	n += depth;
	memset(body + n, ']', depth);
	n += depth;
	memcpy(body + n, "}]}", 3);
	n += 3;
	chat_parse_len(&p, body, n);
	ck_assert_int_eq(p.rc, WD_EPARSE);
	ck_assert_msg(strstr(p.why, "not valid JSON") != NULL, "why: %s", p.why);
	gw_chat_clear(&p.chat);
	/* Objects too, and as the whole body. */
	for (size_t i = 0; i < depth; i++)
		memcpy(body + 5 * i, "{\"a\":", 5);
	n = 5 * depth;
	chat_parse_len(&p, body, n);
	ck_assert_int_eq(p.rc, WD_EPARSE);
	gw_chat_clear(&p.chat);
	free(body);
}
END_TEST

START_TEST(chat_tools_checks)
{
	struct parsed p;

	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
	    "\"tools\":{\"type\":\"function\"}}", "tools",
	    "'tools' must be an array");
	expect_bad("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
	    "\"tools\":\"f\"}", "tools", "'tools' must be an array");
	chat_parse(&p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
	    "\"tools\":[]}");
	ck_assert_int_eq(p.rc, WD_OK);
	gw_chat_clear(&p.chat);
	chat_parse(&p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
	    "\"tools\":null}");
	ck_assert_int_eq(p.rc, WD_OK);
	gw_chat_clear(&p.chat);
}
END_TEST

/* ---- error bodies ---- */

static json_t *
error_json(enum wd_code code, const char *message)
{
	struct evbuffer *buf = evbuffer_new();
	json_error_t jerr;
	json_t *root;
	size_t len;

	ck_assert_ptr_nonnull(buf);
	gw_error_json(buf, code, message);
	len = evbuffer_get_length(buf);
	ck_assert_uint_gt(len, 0);
	root = json_loadb((const char *)evbuffer_pullup(buf, -1), len,
	    JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(root != NULL, "not JSON: %s", jerr.text);
	evbuffer_free(buf);
	return root;
}

START_TEST(error_json_shape)
{
	json_t *root = error_json(WD_CODE_MODEL_NOT_FOUND, "the model \"x\"\nis unknown");
	json_t *err = json_object_get(root, "error");

	ck_assert(json_is_object(err));
	ck_assert_uint_eq(json_object_size(root), 1);
	ck_assert_uint_eq(json_object_size(err), 4);
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
	    "the model \"x\"\nis unknown");
	ck_assert_str_eq(json_string_value(json_object_get(err, "type")),
	    "invalid_request_error");
	ck_assert_str_eq(json_string_value(json_object_get(err, "code")),
	    "model_not_found");
	ck_assert(json_is_null(json_object_get(err, "param")));
	json_decref(root);

	root = error_json(WD_CODE_INTERNAL, "boom");
	err = json_object_get(root, "error");
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
	    "boom");
	ck_assert(json_is_null(json_object_get(err, "code")));
	ck_assert(json_is_null(json_object_get(err, "param")));
	json_decref(root);
}
END_TEST

/* ---- gw_auth ---- */

struct authfx {
	char *path;
	struct pol_snapshot *snap;
};

static void
auth_setup(struct authfx *fx)
{
	char text[2048], hex1[65], hex2[65];
	unsigned char d[32];
	FILE *errs = fopen("/dev/null", "w");

	wd_sha256("wk-unit-right-key", 17, d);
	wd_hex(d, 32, hex1);
	wd_sha256("wk-unit-other", 13, d);
	wd_hex(d, 32, hex2);
	snprintf(text, sizeof(text),
	    "version: 1\n"
	    "providers:\n"
	    "  - id: p1\n"
	    "    base_url: https://a.example\n"
	    "    country: IE\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "    keys: [\"sha256:%s\"]\n"
	    "    routes: [p1]\n"
	    "  - id: t2\n"
	    "    keys: [\"sha256:%s\"]\n"
	    "    routes: [p1]\n", hex1, hex2);
	fx->path = ut_write_rules(text, 0600);
	ck_assert_ptr_nonnull(errs);
	ck_assert_int_eq(pol_load(fx->path, errs, &fx->snap), WD_OK);
	fclose(errs);
}

static void
auth_teardown(struct authfx *fx)
{
	unlink(fx->path);
	free(fx->path);
	pol_snapshot_unref(fx->snap);
}

static const char *
auth_id(const struct pol_snapshot *snap, const char *hdr)
{
	const struct pol_tenant *t = gw_auth(snap, hdr, NULL);

	return t ? t->id : NULL;
}

START_TEST(auth_bearer)
{
	struct authfx fx;
	char big[600];

	auth_setup(&fx);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer wk-unit-right-key"), "t1");
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer wk-unit-other"), "t2");
	/* The scheme is case-insensitive (RFC 9110, 11.1). */
	ck_assert_pstr_eq(auth_id(fx.snap, "bearer wk-unit-right-key"), "t1");
	ck_assert_pstr_eq(auth_id(fx.snap, "BEARER wk-unit-right-key"), "t1");
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer   wk-unit-right-key"), "t1");

	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer wk-unit-wrong-key"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer wk-unit-right-ke"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer wk-unit-right-key "), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer WK-UNIT-RIGHT-KEY"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "wk-unit-right-key"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Basic wk-unit-right-key"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearerwk-unit-right-key"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer "), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer    "), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, "Bearer"), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, ""), NULL);
	ck_assert_pstr_eq(auth_id(fx.snap, NULL), NULL);
	/* The raw digest hex is not a key. */
	{
		unsigned char d[32];
		char hdr[7 + 65];

		wd_sha256("wk-unit-right-key", 17, d);
		memcpy(hdr, "Bearer ", 7);
		wd_hex(d, 32, hdr + 7);
		ck_assert_pstr_eq(auth_id(fx.snap, hdr), NULL);
	}
	memcpy(big, "Bearer ", 7);
	memset(big + 7, 'k', sizeof(big) - 8);
	big[sizeof(big) - 1] = '\0';
	ck_assert_pstr_eq(auth_id(fx.snap, big), NULL);
	auth_teardown(&fx);
}
END_TEST

/* A plain whole answer scanned without a tree: its usage found (the last
 * of duplicates, as jansson), an error member's kind, what is refused. */
START_TEST(scan_answer_usage)
{
	static const char ok[] = " {\"id\":\"c\",\"usage\":7,\"choices\":[{\"m\":"
	    "\"caf\xc3\xa9 \\ud83d\\ude00\"}],\"usage\":{\"prompt_tokens\":3,"
	    "\"total_tokens\":5}}\n";
	static const char err[] = "{\"error\":{\"message\":\"no\"}}";
	static const char nul[] = "{\"a\":1\0}";
	struct gw_json_top top;
	json_t *u;

	ck_assert(gw_json_scan_answer(ok, sizeof(ok) - 1, &top));
	ck_assert(top.object);
	ck_assert_int_eq(top.usage.kind, '{');
	ck_assert_ptr_null(top.error.p);
	u = json_loadb(top.usage.p, top.usage.len, 0, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(u,
	    "total_tokens")), 5);
	json_decref(u);
	ck_assert(gw_json_scan_answer(err, sizeof(err) - 1, &top));
	ck_assert_int_eq(top.error.kind, '{');
	ck_assert(gw_json_scan_answer("[1]", 3, &top));
	ck_assert(!top.object);
	ck_assert(!gw_json_scan_answer("\"s\"", 3, &top));
	ck_assert(!gw_json_scan_answer("{\"a\":01}", 8, &top));
	ck_assert(!gw_json_scan_answer("{\"a\":\"\\ud800\"}", 14, &top));
	ck_assert(!gw_json_scan_answer("{\"a\":\"\xc0\xaf\"}", 10, &top));
	ck_assert(!gw_json_scan_answer("{\"a\":1e999}", 11, &top));
	/* Reals at a double's edge: refused exactly where jansson refuses. */
	{
		static const char *const nums[] = { "1e308", "2e308", "1.7e308",
		    "1.8e308", "-1.8e308", "17.9e307", "18e307", "0.18e310",
		    "0.0001e312", "1e-400", "-1e-99999", "1e99999", "1e0300",
		    "1E+308", "1e+309", "1.0", "-0.0", "123.456e-7",
		    "179769313486231570000000000000000000000000000000000000000000"
		    "000000000000000000000000000000000000000000000000000000000000"
		    "000000000000000000000000000000000000000000000000000000000000"
		    "000000000000000000000000000000000000000000000000000000000000"
		    "000000000000000000000000000000000000000000000000000000000000"
		    "00000000.5",
		    "999999999999999999999999999999999999999999999999999999999999"
		    "999999999999999999999999999999999999999999999999999999999999"
		    "999999999999999999999999999999999999999999999999999999999999"
		    "999999999999999999999999999999999999999999999999999999999999"
		    "999999999999999999999999999999999999999999999999999999999999"
		    "99999999999.0" };

		for (size_t i = 0; i < sizeof(nums) / sizeof(*nums); i++) {
			char doc[512];
			json_t *j;
			int n = snprintf(doc, sizeof(doc), "[%s]", nums[i]);

			j = json_loads(doc, 0, NULL);
			ck_assert_msg(gw_json_scan_answer(doc, (size_t)n, &top) ==
			    (j != NULL), "%s", nums[i]);
			json_decref(j);
		}
	}
	ck_assert(!gw_json_scan_answer("{} x", 4, &top));
	/* jansson lets a NUL after a number through; the scanner does not. */
	u = json_loadb(nul, sizeof(nul) - 1, 0, NULL);
	ck_assert_ptr_nonnull(u);
	json_decref(u);
	ck_assert(!gw_json_scan_answer(nul, sizeof(nul) - 1, &top));
}
END_TEST

/* A request's tree in one pass: jansson's tree, in jansson's key order;
 * a refusal in jansson's words. */
START_TEST(json_load_as_jansson)
{
	static const char req[] = "{\"model\":\"m\",\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"a\\n\\u00e9\"}],\"n\":-12,\"t\":1.5e2,"
	    "\"k\":[true,false,null,{}]}";
	json_error_t e1, e2;
	json_t *a, *b;
	char *ta, *tb;

	a = gw_json_load(req, sizeof(req) - 1, JSON_REJECT_DUPLICATES, &e1);
	b = json_loadb(req, sizeof(req) - 1, JSON_REJECT_DUPLICATES, &e2);
	ck_assert_ptr_nonnull(a);
	ck_assert(json_equal(a, b));
	ta = json_dumps(a, JSON_COMPACT);
	tb = json_dumps(b, JSON_COMPACT);
	ck_assert_str_eq(ta, tb);
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
	a = gw_json_load("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &e1);
	b = json_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &e2);
	ck_assert_ptr_null(a);
	ck_assert_ptr_null(b);
	ck_assert_str_eq(e1.text, e2.text);
	a = gw_json_load("{\"a\":1,\"a\":2}", 13, 0, &e1);
	ck_assert_int_eq(json_integer_value(json_object_get(a, "a")), 2);
	json_decref(a);
}
END_TEST

Suite *
suite_openai(void)
{
	Suite *s = suite_create("openai");
	TCase *chat = tcase_create("chat");
	TCase *misc = tcase_create("errors_and_auth");

	tcase_add_test(chat, chat_valid);
	tcase_add_test(chat, chat_facts_without_tree);
	tcase_add_test(chat, chat_stream_flag);
	tcase_add_test(chat, chat_not_json);
	tcase_add_test(chat, chat_empty_body);
	tcase_add_test(chat, chat_duplicate_model);
	tcase_add_test(chat, chat_model_checks);
	tcase_add_test(chat, chat_messages_checks);
	tcase_add_test(chat, chat_invalid_utf8);
	tcase_add_test(chat, chat_nul_escape);
	tcase_add_test(chat, chat_deep_nesting);
	tcase_add_test(chat, chat_tools_checks);
	tcase_add_test(chat, scan_answer_usage);
	tcase_add_test(chat, json_load_as_jansson);
	suite_add_tcase(s, chat);

	tcase_add_test(misc, error_json_shape);
	tcase_add_test(misc, auth_bearer);
	suite_add_tcase(s, misc);
	return s;
}
