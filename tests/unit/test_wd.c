/*
 * test_wd.c - common/wd.c: error strings, hex, edit distance, constant-time
 * comparison, hashing, whole-file reads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wd.h"
#include "common/wd_json.h"
#include "tests/unit/suites.h"

START_TEST(strerror_covers_every_code)
{
	for (int e = WD_OK; e < WD_ERR_COUNT; e++) {
		const char *s = wd_strerror((enum wd_err)e);

		ck_assert_msg(s != NULL, "wd_strerror(%d) is NULL", e);
		ck_assert_msg(s[0] != '\0', "wd_strerror(%d) is empty", e);
		ck_assert_msg(strcmp(s, "unknown error") != 0,
		    "wd_strerror(%d) is not covered", e);
		/* Each code says something different. */
		for (int f = WD_OK; f < e; f++)
			ck_assert_msg(strcmp(s, wd_strerror((enum wd_err)f)) != 0,
			    "codes %d and %d share the text '%s'", f, e, s);
	}
	ck_assert_str_eq(wd_strerror(WD_OK), "success");
	ck_assert_str_eq(wd_strerror(WD_ENOMEM), "out of memory");
}
END_TEST

START_TEST(strerror_out_of_range)
{
	ck_assert_str_eq(wd_strerror(WD_ERR_COUNT), "unknown error");
	ck_assert_str_eq(wd_strerror((enum wd_err)(WD_ERR_COUNT + 7)),
	    "unknown error");
	ck_assert_str_eq(wd_strerror((enum wd_err)-1), "unknown error");
}
END_TEST

START_TEST(hex_known_value)
{
	const unsigned char in[] = { 0x00, 0x01, 0x7f, 0xab, 0xff };
	char out[2 * sizeof(in) + 1];

	memset(out, 'x', sizeof(out));
	wd_hex(in, sizeof(in), out);
	ck_assert_str_eq(out, "00017fabff");
	wd_hex(in, 0, out);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(hex_round_trip)
{
	unsigned char in[256], back[256];
	char text[2 * sizeof(in) + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	wd_hex(in, sizeof(in), text);
	ck_assert_uint_eq(strlen(text), 512);
	memset(back, 0, sizeof(back));
	ck_assert_int_eq(wd_unhex(text, back, sizeof(back)), WD_OK);
	ck_assert_mem_eq(in, back, sizeof(in));
}
END_TEST

START_TEST(unhex_accepts_upper_case)
{
	unsigned char out[3];

	ck_assert_int_eq(wd_unhex("aBcDeF", out, 3), WD_OK);
	ck_assert_uint_eq(out[0], 0xab);
	ck_assert_uint_eq(out[1], 0xcd);
	ck_assert_uint_eq(out[2], 0xef);
	ck_assert_int_eq(wd_unhex("", out, 0), WD_OK);
}
END_TEST

START_TEST(unhex_rejects_bad_input)
{
	unsigned char out[4];

	ck_assert_int_eq(wd_unhex("0g", out, 1), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("g0", out, 1), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("0 ", out, 1), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("-1", out, 1), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("0x12", out, 2), WD_EPARSE);
	/* Too short: stops at the NUL instead of reading past it. */
	ck_assert_int_eq(wd_unhex("abc", out, 2), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("", out, 1), WD_EPARSE);
	/* Too long: exactly 2*len digits, then the end. */
	ck_assert_int_eq(wd_unhex("abcdef", out, 2), WD_EPARSE);
	ck_assert_int_eq(wd_unhex("ab", out, 0), WD_EPARSE);
}
END_TEST

/* The 16-byte scans stop exactly where the byte loop they stand for would:
 * every byte value at every place of a 40-byte run, from every start. */
START_TEST(json_runs_stop_where_a_byte_loop_would)
{
	unsigned char buf[40];

	for (unsigned v = 0; v < 256; v++)
		for (size_t at = 0; at < sizeof(buf); at++) {
			memset(buf, 'a', sizeof(buf));
			buf[at] = (unsigned char)v;
			for (size_t from = 0; from <= sizeof(buf); from++) {
				const unsigned char *p = buf + from,
				    *end = buf + sizeof(buf), *want = p, *wq = p;

				while (want < end && *want >= 0x20 &&
				    *want < 0x80 && *want != '"' && *want != '\\')
					want++;
				while (wq < end && *wq != '"' && *wq != '\\')
					wq++;
				ck_assert_ptr_eq(wd_json_plain_end(p, end), want);
				ck_assert_ptr_eq(wd_json_quote_end(p, end), wq);
				/* Nothing past end is looked at as a stop. */
				ck_assert_ptr_eq(wd_json_plain_end(p, p), p);
			}
		}
}
END_TEST

/* A random jansson value for the writer's comparison with jansson. */
static json_t *
random_value(unsigned *seed, int depth)
{
	static const char *const strs[] = { "", "plain", "quote \" in",
		"back\\slash", "tab\tnl\ncr\r", "ctl \x01\x1f\x7f", "/slash/",
		"caf\xc3\xa9", "\xe2\x80\xa8 line sep", "\xf0\x9f\x98\x80 emoji",
		"a fairly long plain string well past sixteen bytes of text" };
	int k = (int)(rand_r(seed) % (depth > 4 ? 6 : 8));
	json_t *v;

	switch (k) {
	case 0: return json_null();
	case 1: return json_boolean(rand_r(seed) & 1);
	case 2: return json_integer((json_int_t)rand_r(seed) *
		    (rand_r(seed) & 1 ? -1 : 1) * (rand_r(seed) & 1 ? 1 : 1000003));
	case 3: return json_real((double)rand_r(seed) / 7.0 - 1000.0);
	case 4: case 5:
		return json_string(strs[rand_r(seed) % (sizeof(strs) /
		    sizeof(strs[0]))]);
	case 6:
		v = json_array();
		for (int i = (int)(rand_r(seed) % 5); i > 0; i--)
			json_array_append_new(v, random_value(seed, depth + 1));
		return v;
	default:
		v = json_object();
		for (int i = (int)(rand_r(seed) % 6); i > 0; i--) {
			char key[16];

			/* Keys that sort differently from their order. */
			snprintf(key, sizeof(key), "%c%d", 'z' - (int)(rand_r(seed)
			    % 26), i);
			json_object_set_new(v, key, random_value(seed, depth + 1));
		}
		return v;
	}
}

/* The direct writer gives jansson's bytes, in the members' order and
 * sorted. */
START_TEST(json_writer_matches_jansson)
{
	unsigned seed = 17;

	for (int n = 0; n < 3000; n++) {
		json_t *v = random_value(&seed, 0);

		for (int sorted = 0; sorted < 2; sorted++) {
			char small[64];
			struct wd_jbuf b = { .p = small, .cap = sizeof(small) };
			char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
			    (sorted ? JSON_SORT_KEYS : 0));

			wd_json_put_value(&b, v, sorted);
			ck_assert(!b.fail);
			ck_assert_ptr_nonnull(want);
			ck_assert_msg(b.len == strlen(want) &&
			    memcmp(b.p, want, b.len) == 0, "%.*s\n%s",
			    (int)b.len, b.p, want);
			free(want);
			wd_jbuf_free(&b);
		}
		json_decref(v);
	}
}
END_TEST

/* Past its limit a text fails, and so does a string that is not UTF-8. */
START_TEST(json_writer_fails_closed)
{
	struct wd_jbuf b = { .max = 16 };

	wd_json_put_string(&b, "0123456789abcdefghij", 20);
	ck_assert(b.fail);
	wd_jbuf_free(&b);
	b = (struct wd_jbuf){ 0 };
	wd_json_put_string(&b, "bad \xc3", 5);
	ck_assert(b.fail);
	wd_jbuf_free(&b);
}
END_TEST

START_TEST(edit_distance_samples)
{
	char a64[65], b65[66];

	ck_assert_uint_eq(wd_edit_distance("", ""), 0);
	ck_assert_uint_eq(wd_edit_distance("abc", ""), 3);
	ck_assert_uint_eq(wd_edit_distance("", "abcd"), 4);
	ck_assert_uint_eq(wd_edit_distance("same", "same"), 0);
	ck_assert_uint_eq(wd_edit_distance("kitten", "sitting"), 3);
	ck_assert_uint_eq(wd_edit_distance("sitting", "kitten"), 3);
	ck_assert_uint_eq(wd_edit_distance("flaw", "lawn"), 2);
	ck_assert_uint_eq(wd_edit_distance("modles", "models"), 2);
	ck_assert_uint_eq(wd_edit_distance("requre", "require"), 1);
	ck_assert_uint_eq(wd_edit_distance("listen", "listens"), 1);
	ck_assert_uint_eq(wd_edit_distance("abc", "xyz"), 3);
	memset(a64, 'a', 64);
	a64[64] = '\0';
	memset(b65, 'a', 65);
	b65[65] = '\0';
	ck_assert_uint_eq(wd_edit_distance(a64, a64), 0);
	ck_assert_uint_eq(wd_edit_distance(a64, "a"), 63);
	/* Past 64 characters a string is simply "far". */
	ck_assert_uint_eq(wd_edit_distance(b65, b65), (size_t)-1);
	ck_assert_uint_eq(wd_edit_distance("a", b65), (size_t)-1);
}
END_TEST

START_TEST(ct_equal)
{
	unsigned char a[32], b[32];

	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	ck_assert(wd_ct_equal(a, b, sizeof(a)));
	b[31] ^= 1;
	ck_assert(!wd_ct_equal(a, b, sizeof(a)));
	ck_assert(wd_ct_equal(a, b, 31));
	b[31] ^= 1;
	b[0] ^= 0x80;
	ck_assert(!wd_ct_equal(a, b, sizeof(a)));
	ck_assert(wd_ct_equal(a, b + 1, 0));
	ck_assert(wd_ct_equal("abc", "abd", 2));
	ck_assert(!wd_ct_equal("abc", "abd", 3));
}
END_TEST

START_TEST(sha256_vector)
{
	unsigned char d[32];
	char hex[65];

	wd_sha256("abc", 3, d);
	wd_hex(d, 32, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	wd_sha256("", 0, d);
	wd_hex(d, 32, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}
END_TEST

/* The decimal writer against printf, at the edges and in between. */
START_TEST(u64_dec_matches_printf)
{
	uint64_t vals[] = { 0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u,
	    999999999999999999u, 1000000000000000000u, UINT64_MAX - 1,
	    UINT64_MAX };

	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals) + 1000; i++) {
		uint64_t v = i < sizeof(vals) / sizeof(*vals) ? vals[i] :
		    (uint64_t)random() << 33 ^ (uint64_t)random() << 11 ^
		    (uint64_t)random();
		char want[32], got[32];
		size_t n;

		snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
		memset(got, 'x', sizeof(got));
		n = wd_u64_dec(v, got);
		ck_assert_uint_eq(n, strlen(want));
		ck_assert_int_eq(got[n], 'x');	/* nothing written past */
		got[n] = '\0';
		ck_assert_str_eq(got, want);
	}
}
END_TEST

/* Cut to fit, always terminated, the whole length returned. */
START_TEST(strlcpy_cuts_and_terminates)
{
	char buf[8];

	memset(buf, 'x', sizeof(buf));
	ck_assert_uint_eq(wd_strlcpy(buf, "abc", sizeof(buf)), 3);
	ck_assert_str_eq(buf, "abc");
	ck_assert_uint_eq(wd_strlcpy(buf, "1234567", sizeof(buf)), 7);
	ck_assert_str_eq(buf, "1234567");
	ck_assert_uint_eq(wd_strlcpy(buf, "12345678", sizeof(buf)), 8);
	ck_assert_str_eq(buf, "1234567");
	ck_assert_uint_eq(wd_strlcpy(buf, "", sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_uint_eq(wd_strlcpy(buf, "abc", 1), 3);
	ck_assert_str_eq(buf, "");
	buf[0] = 'q';
	ck_assert_uint_eq(wd_strlcpy(buf, "abc", 0), 3);
	ck_assert_int_eq(buf[0], 'q');	/* size 0: nothing touched */
}
END_TEST

/* A kept block comes back zeroed, as calloc's; no more than max are
 * kept (under ASan none: wd.h). */
START_TEST(spares_come_back_zeroed_and_bounded)
{
	struct wd_spares sp = { .size = 4096, .max = 2 };
	unsigned char *b[3];

	for (int i = 0; i < 3; i++) {
		b[i] = wd_spare_get(&sp);
		ck_assert_ptr_nonnull(b[i]);
		for (size_t k = 0; k < sp.size; k++)
			ck_assert_int_eq(b[i][k], 0);
		memset(b[i], 0xa5, sp.size);
	}
	for (int i = 0; i < 3; i++)
		wd_spare_put(&sp, b[i]);
	wd_spare_put(&sp, NULL);
	ck_assert_uint_le(sp.n, sp.max);
	for (int i = 0; i < 3; i++) {
		b[i] = wd_spare_get(&sp);
		ck_assert_ptr_nonnull(b[i]);
		for (size_t k = 0; k < sp.size; k++)
			ck_assert_int_eq(b[i][k], 0);
	}
	ck_assert_uint_eq(sp.n, 0);
	for (int i = 0; i < 3; i++)
		wd_spare_put(&sp, b[i]);
	wd_spares_clear(&sp);
	ck_assert_uint_eq(sp.n, 0);
	ck_assert_ptr_null(sp.head);
}
END_TEST

START_TEST(strndup_stops_at_n)
{
	char *s = wd_strndup("abcdef", 3);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "abc");
	free(s);
	s = wd_strndup("x", 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(slurp_reads_whole_file_within_cap)
{
	char path[] = "/tmp/warden-slurp-XXXXXX";
	size_t big = 200000, len = 1;
	char *data = malloc(big), *got;
	FILE *f;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	f = fdopen(fd, "wb");
	ck_assert_uint_eq(fwrite(data, 1, big, f), big);
	fclose(f);

	/* Larger than the first buffer: grown, whole, NUL-terminated. */
	got = wd_slurp(path, big, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, big);
	ck_assert(memcmp(got, data, big) == 0);
	ck_assert_int_eq(got[big], '\0');
	free(got);
	/* One byte over the cap is refused. */
	ck_assert_ptr_null(wd_slurp(path, big - 1, &len));
	ck_assert_uint_eq(len, 0);
	unlink(path);
	ck_assert_ptr_null(wd_slurp(path, big, &len));
	free(data);
}
END_TEST

START_TEST(random_fills)
{
	unsigned char a[64], b[64];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(wd_random(a, sizeof(a)), WD_OK);
	ck_assert_int_eq(wd_random(b, sizeof(b)), WD_OK);
	/* 2^-512 chance of a false failure. */
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

/* Identifiers from the per-thread block: distinct across its refills,
 * and a request longer than the block is filled whole. */
START_TEST(random_id_distinct)
{
	unsigned char ids[40][16], big[1000], zero[16] = { 0 };

	for (size_t i = 0; i < 40; i++) {
		ck_assert_int_eq(wd_random_id(ids[i], 16), WD_OK);
		ck_assert(memcmp(ids[i], zero, 16) != 0);
		for (size_t j = 0; j < i; j++)
			ck_assert(memcmp(ids[i], ids[j], 16) != 0);
	}
	memset(big, 0, sizeof(big));
	ck_assert_int_eq(wd_random_id(big, sizeof(big)), WD_OK);
	ck_assert(memcmp(big + sizeof(big) - 16, zero, 16) != 0);
	ck_assert(memcmp(big, zero, 16) != 0);
}
END_TEST

Suite *
suite_wd(void)
{
	Suite *s = suite_create("wd");
	TCase *tc = tcase_create("helpers");

	tcase_add_test(tc, strerror_covers_every_code);
	tcase_add_test(tc, strerror_out_of_range);
	tcase_add_test(tc, hex_known_value);
	tcase_add_test(tc, hex_round_trip);
	tcase_add_test(tc, unhex_accepts_upper_case);
	tcase_add_test(tc, unhex_rejects_bad_input);
	tcase_add_test(tc, edit_distance_samples);
	tcase_add_test(tc, json_runs_stop_where_a_byte_loop_would);
	tcase_add_test(tc, json_writer_matches_jansson);
	tcase_add_test(tc, json_writer_fails_closed);
	tcase_add_test(tc, ct_equal);
	tcase_add_test(tc, slurp_reads_whole_file_within_cap);
	tcase_add_test(tc, sha256_vector);
	tcase_add_test(tc, strndup_stops_at_n);
	tcase_add_test(tc, u64_dec_matches_printf);
	tcase_add_test(tc, strlcpy_cuts_and_terminates);
	tcase_add_test(tc, spares_come_back_zeroed_and_bounded);
	tcase_add_test(tc, random_fills);
	tcase_add_test(tc, random_id_distinct);
	suite_add_tcase(s, tc);
	return s;
}
