/*
 * test_detect.c - the content detectors (detect/): each validator on
 * generated valid and broken identifiers, the streaming scanner (matches
 * split across pieces, the byte after a match, texts kept apart), the
 * `detect:` loader's errors, and a scanner that cannot get memory.
 */
#include "tests/unit/suites.h"
#include "tests/bench/det_gen.h"
#include "detect/det.h"
#include "gateway/gw_detect.h"
#include "gateway/gw_int.h"
#include "policy/pol.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static bool
ok_str(bool (*fn)(const char *, size_t), const char *s)
{
	return fn(s, strlen(s));
}

START_TEST(luhn_and_iban)
{
	struct gen g = { 0x1234567 };
	char buf[64];

	ck_assert(ok_str(det_luhn_ok, "4111 1111 1111 1111"));
	ck_assert(ok_str(det_luhn_ok, "5555-5555-5555-4444"));
	ck_assert(ok_str(det_luhn_ok, "378282246310005"));
	ck_assert(!ok_str(det_luhn_ok, "4111 1111 1111 1112"));
	ck_assert(!ok_str(det_luhn_ok, "0000000000000000"));
	ck_assert(ok_str(det_iban_ok, "DE89 3704 0044 0532 0130 00"));
	ck_assert(ok_str(det_iban_ok, "GB82WEST12345698765432"));
	ck_assert(!ok_str(det_iban_ok, "GB82WEST12345698765433"));
	ck_assert(!ok_str(det_iban_ok, "DE89 3704 0044 0532 0130 0"));
	ck_assert(!ok_str(det_iban_ok, "XX89370400440532013000"));
	for (int i = 0; i < 2000; i++) {
		gen_card(&g, buf, sizeof(buf), 1, i % 3 == 0 ? 0 : " -"[i % 2]);
		ck_assert_msg(ok_str(det_luhn_ok, buf), "%s", buf);
		gen_card(&g, buf, sizeof(buf), 0, 0);
		ck_assert_msg(!ok_str(det_luhn_ok, buf), "%s", buf);
		gen_iban(&g, buf, sizeof(buf), 1, i % 2);
		ck_assert_msg(ok_str(det_iban_ok, buf), "%s", buf);
		gen_iban(&g, buf, sizeof(buf), 0, i % 2);
		ck_assert_msg(!ok_str(det_iban_ok, buf), "%s", buf);
	}
}
END_TEST

START_TEST(national_ids)
{
	struct gen g = { 0xabcdef };
	char buf[64];

	ck_assert(ok_str(det_us_ssn_ok, "536-22-1234"));
	ck_assert(!ok_str(det_us_ssn_ok, "666-22-1234"));
	ck_assert(!ok_str(det_us_ssn_ok, "000-22-1234"));
	ck_assert(!ok_str(det_us_ssn_ok, "901-22-1234"));
	ck_assert(!ok_str(det_us_ssn_ok, "536-00-1234"));
	ck_assert(!ok_str(det_us_ssn_ok, "536-22-0000"));
	ck_assert(!ok_str(det_us_ssn_ok, "078-05-1120"));
	ck_assert(ok_str(det_uk_nino_ok, "AB 12 34 56 C"));
	ck_assert(ok_str(det_uk_nino_ok, "JG103759A"));
	ck_assert(!ok_str(det_uk_nino_ok, "GB 12 34 56 C"));
	ck_assert(!ok_str(det_uk_nino_ok, "DA 12 34 56 C"));
	ck_assert(!ok_str(det_uk_nino_ok, "AB 12 34 56 E"));
	/* Published examples: NIR 2 55 08 14 168 025 38 (key 38), tax id
	 * 86095742719 (Bundeszentralamt für Steuern). */
	ck_assert(ok_str(det_fr_nir_ok, "2 55 08 14 168 025 38"));
	ck_assert(!ok_str(det_fr_nir_ok, "2 55 08 14 168 025 39"));
	ck_assert(!ok_str(det_fr_nir_ok, "2 55 13 14 168 025 38"));
	ck_assert(ok_str(det_de_taxid_ok, "86095742719"));
	ck_assert(!ok_str(det_de_taxid_ok, "86095742718"));
	ck_assert(!ok_str(det_de_taxid_ok, "12345678903"));	/* no repeat */
	ck_assert(!ok_str(det_de_taxid_ok, "06095742719"));
	for (int i = 0; i < 2000; i++) {
		gen_nir(&g, buf, sizeof(buf), 1);
		ck_assert_msg(ok_str(det_fr_nir_ok, buf), "%s", buf);
		gen_nir(&g, buf, sizeof(buf), 0);
		ck_assert_msg(!ok_str(det_fr_nir_ok, buf), "%s", buf);
		gen_taxid(&g, buf, sizeof(buf), 1);
		ck_assert_msg(ok_str(det_de_taxid_ok, buf), "%s", buf);
		gen_taxid(&g, buf, sizeof(buf), 0);
		ck_assert_msg(!ok_str(det_de_taxid_ok, buf), "%s", buf);
		gen_ssn(&g, buf, sizeof(buf), 1);
		ck_assert_msg(ok_str(det_us_ssn_ok, buf), "%s", buf);
		gen_ssn(&g, buf, sizeof(buf), 0);
		ck_assert_msg(!ok_str(det_us_ssn_ok, buf), "%s", buf);
		gen_nino(&g, buf, sizeof(buf), 1);
		ck_assert_msg(ok_str(det_uk_nino_ok, buf), "%s", buf);
		gen_nino(&g, buf, sizeof(buf), 0);
		ck_assert_msg(!ok_str(det_uk_nino_ok, buf), "%s", buf);
	}
}
END_TEST

START_TEST(addresses)
{
	ck_assert(ok_str(det_ipv4_ok, "192.168.1.20"));
	ck_assert(!ok_str(det_ipv4_ok, "192.168.1.256"));
	ck_assert(!ok_str(det_ipv4_ok, "192.168.01.2"));
	ck_assert(ok_str(det_ipv6_ok, "2001:db8::8a2e:370:7334"));
	ck_assert(ok_str(det_ipv6_ok, "fe80:0:0:0:202:b3ff:fe1e:8329"));
	ck_assert(!ok_str(det_ipv6_ok, "12:30:45"));
	ck_assert(!ok_str(det_ipv6_ok, "::1"));
	ck_assert(ok_str(det_email_ok, "anna.schmidt@example.co.uk"));
	ck_assert(!ok_str(det_email_ok, "anna..schmidt@example.com"));
	ck_assert(!ok_str(det_email_ok, "anna@-example.com"));
	ck_assert(ok_str(det_phone_ok, "+49 30 1234567"));
	ck_assert(ok_str(det_phone_ok, "(415) 555-0132"));
	ck_assert(!ok_str(det_phone_ok, "+11111111111"));
	ck_assert(!ok_str(det_phone_ok, "(115) 555-0132"));
}
END_TEST

/* A database of every built-in detector, compiled once per process. */
static struct det_db *
all_builtins(void)
{
	static struct det_db *db;
	struct det_spec sp[DET_NBUILTIN];
	char err[256];
	size_t bad;

	if (db != NULL)
		return db;
	for (int i = 0; i < DET_NBUILTIN; i++)
		sp[i] = (struct det_spec){ det_builtin_name(i), i, NULL };
	ck_assert_int_eq(det_db_compile(sp, DET_NBUILTIN, &db, err, sizeof(err),
	    &bad), WD_OK);
	return db;
}

/* Scan text in pieces of len step; the count per detector into counts. */
static void
scan_pieces(const char *text, size_t step, uint32_t counts[DET_MAX])
{
	struct det_scan *s;
	size_t n = strlen(text);

	ck_assert_int_eq(det_scan_open(all_builtins(), &s), WD_OK);
	for (size_t i = 0; i < n; i += step)
		ck_assert_int_eq(det_scan_feed(s, text + i, n - i < step ? n - i :
		    step), WD_OK);
	ck_assert_int_eq(det_scan_next_text(s), WD_OK);
	memcpy(counts, det_scan_counts(s), DET_MAX * sizeof(uint32_t));
	det_scan_close(s);
}

START_TEST(every_builtin_found)
{
	static const struct {
		const char *text;
		int det;
	} cases[] = {
		{ "écrivez à marie.dupont@exemple.fr, merci", DET_EMAIL },
		{ "Ruf an: +49 30 1234567.", DET_PHONE },
		{ "Überweisung an DE89 3704 0044 0532 0130 00 bitte", DET_IBAN },
		{ "カード番号は4111111111111111です", DET_CARD },
		/* A token with a digit before it hides no card (only an
		 * IBAN's groups do). */
		{ "qty 2x 4111 1111 1111 1111 ok", DET_CARD },
		{ "item 11x 5500-0000-0000-0004 shipped", DET_CARD },
		{ "ref 9 4111 1111 1111 1111", DET_CARD },
		{ "2x 4111 1111 1111 1111", DET_CARD },
		{ "server 10.20.30.40 is down", DET_IPV4 },
		{ "route via 2001:db8::8a2e:370:7334 now", DET_IPV6 },
		{ "SSN 536-22-1234 on file", DET_US_SSN },
		{ "NI number JG103759A.", DET_UK_NINO },
		{ "n° sécu 2 55 08 14 168 025 38", DET_FR_NIR },
		{ "Steuer-ID 86095742719", DET_DE_TAXID },
		{ "key=sk-proj-abcdefghijklmnopqrstuvwxyz0123", DET_SECRET },
		{ "AKIAIOSFODNN7EXAMPLE", DET_SECRET },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn", DET_SECRET },
	};
	uint32_t c[DET_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scan_pieces(cases[i].text, 4096, c);
		for (int d = 0; d < DET_NBUILTIN; d++)
			ck_assert_msg(c[d] == (d == cases[i].det), "'%s': %s %u",
			    cases[i].text, det_builtin_name(d), c[d]);
	}
}
END_TEST

/* A match split at every possible place is found exactly once; one that
 * the next byte continues is no match. */
START_TEST(split_anywhere)
{
	static const char *const texts[] = {
		"pay 4111 1111 1111 1111 today",
		"to DE89370400440532013000",
		"mail anna@example.org",
		"qty 2x 4111 1111 1111 1111",
	};
	static const int dets[] = { DET_CARD, DET_IBAN, DET_EMAIL, DET_CARD };
	uint32_t c[DET_MAX];

	for (size_t t = 0; t < 4; t++)
		for (size_t step = 1; step < strlen(texts[t]); step++) {
			scan_pieces(texts[t], step, c);
			ck_assert_msg(c[dets[t]] == 1, "step %zu: %u", step, c[dets[t]]);
		}
	scan_pieces("order 41111111111111111 shipped", 3, c);
	ck_assert_uint_eq(c[DET_CARD], 0);
	scan_pieces("a 4111111111111111 b 4111111111111111", 7, c);
	ck_assert_uint_eq(c[DET_CARD], 2);
}
END_TEST

/* Two texts are kept apart; a valid match that ends where the data ends
 * is pending until the next byte says. */
START_TEST(texts_and_pending)
{
	struct det_scan *s;
	const struct det_span *sp;
	size_t n;

	ck_assert_int_eq(det_scan_open(all_builtins(), &s), WD_OK);
	ck_assert_int_eq(det_scan_feed(s, "card 4111 1111", 14), WD_OK);
	ck_assert_int_eq(det_scan_next_text(s), WD_OK);
	ck_assert_int_eq(det_scan_feed(s, " 1111 1111", 10), WD_OK);
	ck_assert_int_eq(det_scan_next_text(s), WD_OK);
	ck_assert_uint_eq(det_scan_counts(s)[DET_CARD], 0);
	ck_assert_int_eq(det_scan_feed(s, "x 4111111111111111", 18), WD_OK);
	ck_assert(det_scan_pending(s) & (1ull << DET_CARD));
	ck_assert_uint_eq(det_scan_counts(s)[DET_CARD], 0);
	ck_assert_int_eq(det_scan_feed(s, ".", 1), WD_OK);
	ck_assert(!(det_scan_pending(s) & (1ull << DET_CARD)));
	ck_assert_uint_eq(det_scan_counts(s)[DET_CARD], 1);
	sp = det_scan_spans(s, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(sp[0].text, 2);
	ck_assert_uint_eq(sp[0].from, 2);
	ck_assert_uint_eq(sp[0].to, 18);
	det_scan_close(s);
}
END_TEST

#ifndef __SANITIZE_ADDRESS__
/* Out of memory: a scanner that cannot get its scratch or stream says
 * so (the gateway then refuses), and works again once memory is back.
 * Check runs each test in a child: the limit ends with it.  ASan's
 * allocator aborts instead of failing, so this is left out there. */
START_TEST(no_memory_no_scan)
{
	struct det_db *db = all_builtins();
	struct det_scan *s;
	struct rlimit rl;
	size_t held = 0;
	void *hog[4096];

	getrlimit(RLIMIT_AS, &rl);
	{
		FILE *f = fopen("/proc/self/statm", "r");
		unsigned long pages = 0;

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
		fclose(f);
		rl.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE) +
		    (1u << 20);
	}
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
	/* Use up what is left, down to small pieces. */
	for (size_t sz = 1u << 20; sz >= 64; sz /= 2)
		while (held < 4096 && (hog[held] = malloc(sz)) != NULL)
			held++;
	ck_assert_int_eq(det_scan_open(db, &s), WD_ENOMEM);
	while (held > 0)
		free(hog[--held]);
	ck_assert_int_eq(det_scan_open(db, &s), WD_OK);
	det_scan_close(s);
}
END_TEST
#endif

START_TEST(budget_refuses)
{
	struct det_scan *a, *b;
	struct det_db *db = all_builtins();

	det_db_set_budget(db, det_db_stream_bytes(db) + 4096);
	ck_assert_int_eq(det_scan_open(db, &a), WD_OK);
	ck_assert_int_eq(det_scan_open(db, &b), WD_ENOMEM);
	det_scan_close(a);
	ck_assert_int_eq(det_scan_open(db, &b), WD_OK);
	det_scan_close(b);
	det_db_set_budget(db, 0);
}
END_TEST

#define DET_BASE \
	"version: 1\n" \
	"data_classes: [public, personal, financial]\n" \
	"providers:\n" \
	"  - id: p1\n" \
	"    base_url: https://a.example\n" \
	"    country: IE\n" \
	"    credential: c\n" \
	"    models: [m]\n"

static void
expect_load(const char *text, enum wd_err rc, const char *tmpl)
{
	struct ut_ld l;
	char *want;

	ut_load_text(&l, text, 0600);
	want = ut_expand(tmpl, l.path);
	ck_assert_msg(l.rc == rc, "rc %d; errors:\n%s", l.rc, l.errs);
	ck_assert_msg(strstr(l.errs, want) != NULL, "errors:\n%s\nwant:\n%s",
	    l.errs, want);
	free(want);
	ut_ld_done(&l);
}

START_TEST(loader_errors)
{
	expect_load(DET_BASE "detect:\n  ibam: financial\n", WD_ECONFIG,
	    "@:10:3: unknown key 'ibam' in detect (did you mean 'iban'?)");
	expect_load(DET_BASE "detect:\n  iban: finacial\n", WD_ECONFIG,
	    "@:10:9: unknown data class 'finacial' (did you mean 'financial'?)");
	expect_load(DET_BASE "detect:\n  card: { class: financial, action: "
	    "hide }\n", WD_ECONFIG, "@:10:37: unknown action 'hide' (classify, "
	    "redact or block)");
	expect_load(DET_BASE "detect:\n  card: {}\n", WD_ECONFIG,
	    "@:10:9: detector 'card' adds no class, redacts nothing and blocks "
	    "nothing");
	/* Hyperscan refuses back-references: a load error at the pattern. */
	expect_load(DET_BASE "detect:\n  patterns:\n    - id: twice\n"
	    "      regex: '(a)\\1'\n      class: personal\n", WD_ECONFIG,
	    "@:11:7: detector 'twice': Hyperscan cannot compile it: ");
	expect_load(DET_BASE "detect:\n  patterns:\n    - id: iban\n"
	    "      regex: 'x+'\n      class: personal\n", WD_ECONFIG,
	    "@:11:7: pattern id 'iban' is a built-in detector's name");
	expect_load(DET_BASE "detect:\n  iban: financial\n  patterns:\n"
	    "    - id: emp\n      regex: 'EMP-[0-9]{6}'\n      class: personal\n"
	    "      action: redact\n", WD_OK, "");
}
END_TEST

START_TEST(version_covers_detect)
{
	struct ut_ld a, b, c;

	ut_load_text(&a, DET_BASE, 0600);
	ut_load_text(&b, DET_BASE "detect:\n  iban: financial\n", 0600);
	ut_load_text(&c, DET_BASE "detect:\n  iban: personal\n", 0600);
	ck_assert_int_eq(a.rc, WD_OK);
	ck_assert_int_eq(b.rc, WD_OK);
	ck_assert_int_eq(c.rc, WD_OK);
	ck_assert_str_ne(a.snap->version, b.snap->version);
	ck_assert_str_ne(b.snap->version, c.snap->version);
	ut_ld_done(&a);
	ut_ld_done(&b);
	ut_ld_done(&c);
}
END_TEST

/* The chat body's text: content strings and parts, tool call arguments,
 * tool results; redaction in the string values keeps the body JSON. */
START_TEST(chat_text_and_redaction)
{
	struct ut_ld l;
	struct gw_detect d = { 0 };
	const uint32_t *c;
	json_t *root;
	char *out;
	int iban, card, email;

	ut_load_text(&l, DET_BASE "detect:\n  iban: { class: financial, "
	    "action: redact }\n  card: { class: financial, action: redact }\n"
	    "  email: personal\n", 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	iban = 0;
	card = 1;
	email = 2;
	root = json_loads("{\"model\":\"m\",\"messages\":["
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"pay DE89 3704 0044 0532 0130 00 or 4111 1111 1111 1111 now\"},"
	    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
	    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
	    "\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"f\",\"arguments\":\"{\\\"card\\\":\\\"5555555555554444\\\"}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":"
	    "\"écrire à anna@example.org — ok\"}]}", 0, NULL);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(gw_detect_request(&d, l.snap, root, &c), WD_OK);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c[iban], 1);
	ck_assert_uint_eq(c[card], 2);
	ck_assert_uint_eq(c[email], 1);
	ck_assert_int_eq(gw_detect_redact(&d, l.snap), WD_OK);
	out = json_dumps(root, JSON_COMPACT);
	ck_assert_ptr_nonnull(strstr(out, "pay [REDACTED:iban] or "
	    "[REDACTED:card] now"));
	ck_assert_ptr_nonnull(strstr(out, "{\\\"card\\\":\\\"[REDACTED:card]\\\"}"));
	/* classify only: the address stays, the text around it intact. */
	ck_assert_ptr_nonnull(strstr(out, "écrire à anna@example.org — ok"));
	free(out);
	gw_detect_clear(&d);
	json_decref(root);
	ut_ld_done(&l);
}
END_TEST

/* The other formats' request text: a Messages assistant's tool_use input
 * (every string, nested), a document's text source, thinking; Responses
 * output parts and reasoning summaries.  Redaction rewrites them. */
START_TEST(formats_request_text_and_redaction)
{
	struct ut_ld l;
	struct gw_detect d = { 0 };
	const uint32_t *c;
	json_t *root;
	char *out;

	ut_load_text(&l, DET_BASE "detect:\n  iban: financial\n  card: { "
	    "class: financial, action: redact }\n", 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	root = json_loads("{\"model\":\"m\",\"max_tokens\":9,\"messages\":["
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	    "\"t\",\"name\":\"pay\",\"input\":{\"to\":{\"cards\":["
	    "\"5555555555554444\"]}}},{\"type\":\"thinking\",\"thinking\":"
	    "\"4111 1111 1111 1111\",\"signature\":\"s\"}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":"
	    "{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":"
	    "\"DE89 3704 0044 0532 0130 00\"}}]}]}", 0, NULL);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(gw_detect_request(&d, l.snap, root, &c), WD_OK);
	ck_assert_uint_eq(c[0], 1);
	ck_assert_uint_eq(c[1], 2);
	ck_assert_int_eq(gw_detect_redact(&d, l.snap), WD_OK);
	out = json_dumps(root, JSON_COMPACT);
	ck_assert_ptr_nonnull(strstr(out, "{\"cards\":[\"[REDACTED:card]\"]}"));
	ck_assert_ptr_null(strstr(out, "4444"));
	free(out);
	gw_detect_clear(&d);
	json_decref(root);
	root = json_loads("{\"model\":\"m\",\"input\":[{\"type\":"
	    "\"function_call_output\",\"call_id\":\"c\",\"output\":[{\"type\":"
	    "\"input_text\",\"text\":\"4111 1111 1111 1111\"}]},{\"type\":"
	    "\"reasoning\",\"id\":\"r\",\"summary\":[{\"type\":\"summary_text\","
	    "\"text\":\"DE89 3704 0044 0532 0130 00\"}]}]}", 0, NULL);
	ck_assert_int_eq(gw_detect_request(&d, l.snap, root, &c), WD_OK);
	ck_assert_uint_eq(c[0], 1);
	ck_assert_uint_eq(c[1], 1);
	gw_detect_clear(&d);
	json_decref(root);
	ut_ld_done(&l);
}
END_TEST

/* Feed one stream event's data line; the detector that fired, or -1. */
static int
event(struct gw_detect_answer *a, const char *data)
{
	char buf[1024];
	int fired;

	snprintf(buf, sizeof(buf), "event: x\ndata: %s\n\n", data);
	ck_assert_int_eq(gw_detect_answer_piece(a, buf, strlen(buf), false,
	    &fired), WD_OK);
	return fired;
}

/* Answers of every format: a card split across two deltas is caught
 * (what comes between, ids and pings, is not fed); a split across two
 * blocks is no card; whole answers' tool input and arguments are read. */
START_TEST(answers_of_every_format)
{
	struct ut_ld l;
	struct gw_detect_answer a;
	int fired;
	static const char whole_m[] = "{\"content\":[{\"type\":\"text\",\"text\":"
	    "\"ok\"},{\"type\":\"tool_use\",\"id\":\"4111 1111\",\"name\":\"f\","
	    "\"input\":{\"x\":[\"4111 1111 1111 1111\"]}}]}";
	static const char whole_r[] = "{\"output\":[{\"type\":\"function_call\","
	    "\"name\":\"f\",\"call_id\":\"c\",\"arguments\":\"{\\\"n\\\":"
	    "\\\"4111111111111111\\\"}\"}]}";

	ut_load_text(&l, DET_BASE "detect:\n  card: { class: financial, "
	    "answers: true }\n", 0600);
	ck_assert_int_eq(l.rc, WD_OK);

	ck_assert_int_eq(gw_detect_answer_open(&a, l.snap, &gw_format_messages),
	    WD_OK);
	ck_assert_int_eq(event(&a, "{\"type\":\"message_start\",\"message\":{"
	    "\"id\":\"msg_1\",\"content\":[]}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_start\",\"index\":0,"
	    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Card 4111 1111\"}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"ping\"}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"text_delta\",\"text\":\" 1111 1111\"}}"), 0);
	gw_detect_answer_clear(&a);

	/* Messages: two blocks are two texts. */
	ck_assert_int_eq(gw_detect_answer_open(&a, l.snap, &gw_format_messages),
	    WD_OK);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"text_delta\",\"text\":\"4111 1111\"}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_start\",\"index\":1,"
	    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
	    "\"input\":{}}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_delta\",\"index\":1,"
	    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" 1111 "
	    "1111\"}}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"content_block_delta\",\"index\":1,"
	    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\", "
	    "then 4111 1111 1111 1111\"}}"), 0);
	ck_assert_int_eq(gw_detect_answer_piece(&a, whole_m, strlen(whole_m),
	    true, &fired), WD_OK);
	gw_detect_answer_clear(&a);
	ck_assert_int_eq(gw_detect_answer_open(&a, l.snap, &gw_format_messages),
	    WD_OK);
	ck_assert_int_eq(gw_detect_answer_piece(&a, whole_m, strlen(whole_m),
	    true, &fired), WD_OK);
	ck_assert_int_eq(fired, 0);
	gw_detect_answer_clear(&a);

	/* Responses: deltas of one part join; the .done repeat does not
	 * join them; another output item is another text. */
	ck_assert_int_eq(gw_detect_answer_open(&a, l.snap,
	    &gw_format_responses), WD_OK);
	ck_assert_int_eq(event(&a, "{\"type\":\"response.output_text.delta\","
	    "\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":"
	    "\"4111 1111\",\"sequence_number\":4}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"response.output_text.delta\","
	    "\"item_id\":\"m2\",\"output_index\":1,\"content_index\":0,\"delta\":"
	    "\" 1111 1111\",\"sequence_number\":5}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"response.output_text.delta\","
	    "\"item_id\":\"m2\",\"output_index\":1,\"content_index\":0,\"delta\":"
	    "\" then 4111 1111 \",\"sequence_number\":6}"), -1);
	ck_assert_int_eq(event(&a, "{\"type\":\"response.output_text.delta\","
	    "\"item_id\":\"m2\",\"output_index\":1,\"content_index\":0,\"delta\":"
	    "\"1111 1111\",\"sequence_number\":7}"), 0);
	gw_detect_answer_clear(&a);
	ck_assert_int_eq(gw_detect_answer_open(&a, l.snap,
	    &gw_format_responses), WD_OK);
	ck_assert_int_eq(gw_detect_answer_piece(&a, whole_r, strlen(whole_r),
	    true, &fired), WD_OK);
	ck_assert_int_eq(fired, 0);
	gw_detect_answer_clear(&a);
	ut_ld_done(&l);
}
END_TEST

/* A rules pattern is found across pieces and redacted where it stands. */
START_TEST(rules_pattern)
{
	struct ut_ld l;
	struct det_scan *s;
	const struct det_span *sp;
	size_t n;

	ut_load_text(&l, DET_BASE "detect:\n  patterns:\n    - { id: emp, "
	    "regex: 'EMP-[0-9]{6}', class: personal, action: redact }\n", 0600);
	ck_assert_int_eq(l.rc, WD_OK);
	ck_assert_int_eq(det_scan_open(l.snap->detect.db, &s), WD_OK);
	ck_assert_int_eq(det_scan_feed(s, "badge EM", 8), WD_OK);
	ck_assert_int_eq(det_scan_feed(s, "P-1234", 6), WD_OK);
	ck_assert_int_eq(det_scan_feed(s, "56 ok", 5), WD_OK);
	ck_assert_int_eq(det_scan_next_text(s), WD_OK);
	sp = det_scan_spans(s, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(sp[0].from, 6);
	ck_assert_uint_eq(sp[0].to, 16);
	ck_assert_uint_eq(det_scan_counts(s)[0], 1);
	det_scan_close(s);
	ut_ld_done(&l);
}
END_TEST

Suite *
suite_detect(void)
{
	Suite *s = suite_create("detect");
	TCase *v = tcase_create("validators"), *sc = tcase_create("scanner");
	TCase *ld = tcase_create("loader");

	tcase_add_test(v, luhn_and_iban);
	tcase_add_test(v, national_ids);
	tcase_add_test(v, addresses);
	tcase_add_test(sc, every_builtin_found);
	tcase_add_test(sc, split_anywhere);
	tcase_add_test(sc, texts_and_pending);
#ifndef __SANITIZE_ADDRESS__
	tcase_add_test(sc, no_memory_no_scan);
#endif
	tcase_add_test(sc, budget_refuses);
	tcase_set_timeout(sc, 30);
	tcase_add_test(ld, loader_errors);
	tcase_add_test(ld, version_covers_detect);
	tcase_add_test(ld, chat_text_and_redaction);
	tcase_add_test(ld, formats_request_text_and_redaction);
	tcase_add_test(ld, answers_of_every_format);
	tcase_add_test(ld, rules_pattern);
	tcase_set_timeout(ld, 30);
	suite_add_tcase(s, v);
	suite_add_tcase(s, sc);
	suite_add_tcase(s, ld);
	return s;
}
