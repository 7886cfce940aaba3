/*
 * test_errors.c - the error catalogue (common/errors.c) against itself
 * and against the README's errors table, both ways.
 */
#include "tests/unit/suites.h"
#include "common/errors.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const types[] = { "invalid_request_error",
	"server_error", "policy_violation", "rate_limit_exceeded",
	"permission_error", NULL };

static bool
is_type(const char *s)
{
	for (size_t i = 0; types[i] != NULL; i++)
		if (strcmp(s, types[i]) == 0)
			return true;
	return false;
}

START_TEST(every_code_has_a_row)
{
	for (int i = 1; i < WD_CODE_COUNT; i++) {
		const struct wd_errdef *e = wd_errdef((enum wd_code)i);

		ck_assert_msg(e != wd_errdef(WD_CODE_INTERNAL) ||
		    i == WD_CODE_INTERNAL, "code %d has no row", i);
		ck_assert_ptr_nonnull(e->code);
		ck_assert_ptr_nonnull(e->message);
		ck_assert_int_eq(wd_code_find(e->code), i);
		ck_assert(e->status >= 400 && e->status <= 599);
		ck_assert(e->type == NULL || is_type(e->type));
	}
	ck_assert_ptr_null(wd_code_wire(WD_CODE_INTERNAL));
	ck_assert_str_eq(wd_code_wire(WD_CODE_RESIDENCY), "residency");
}
END_TEST

/* One row of the README's errors table. */
struct row {
	int status[4];
	size_t nstatus;
	char *last;			/* the type / code column */
};

static bool
row_has_status(const struct row *r, int status)
{
	for (size_t i = 0; i < r->nstatus; i++)
		if (r->status[i] == status)
			return true;
	return false;
}

/* Is `word` (in backticks) in text? */
static bool
has_token(const char *text, const char *word)
{
	char want[96];

	snprintf(want, sizeof(want), "`%s`", word);
	return strstr(text, want) != NULL;
}

static size_t
read_table(struct row *rows, size_t max)
{
	const char *dir = getenv("WARDEN_SRC");
	char path[512], line[4096];
	bool in = false;
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/README.md", dir ? dir : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (set WARDEN_SRC)", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p, *bar;

		if (strncmp(line, "### Errors", 10) == 0) {
			in = true;
			continue;
		}
		if (!in)
			continue;
		if (strncmp(line, "### ", 4) == 0)
			break;
		if (line[0] != '|' || strncmp(line, "| status", 8) == 0 ||
		    strncmp(line, "|---", 4) == 0)
			continue;
		ck_assert(n < max);
		memset(&rows[n], 0, sizeof(rows[n]));
		for (p = line + 1; *p != '|' && *p != '\0'; ) {
			char *end;
			long v = strtol(p, &end, 10);

			if (end == p) {
				p++;
				continue;
			}
			ck_assert(rows[n].nstatus < 4);
			rows[n].status[rows[n].nstatus++] = (int)v;
			p = end;
		}
		line[strcspn(line, "\n")] = '\0';
		bar = strrchr(line, '|');
		*bar = '\0';
		bar = strrchr(line, '|');
		rows[n].last = strdup(bar + 1);
		n++;
	}
	fclose(f);
	ck_assert_uint_gt(n, 10);
	return n;
}

START_TEST(readme_table_matches_catalogue)
{
	struct row rows[64];
	size_t n = read_table(rows, 64);
	regex_t re;
	regmatch_t m[2];

	/* Catalogue -> README: each code in a row of its status, with its
	 * type in that row too. */
	for (int i = 1; i < WD_CODE_COUNT; i++) {
		const struct wd_errdef *e = wd_errdef((enum wd_code)i);
		bool found = false;

		if (e->wire_null)
			continue;
		for (size_t r = 0; r < n && !found; r++)
			found = row_has_status(&rows[r], e->status) &&
			    has_token(rows[r].last, e->code) &&
			    has_token(rows[r].last, e->type);
		ck_assert_msg(found, "README's errors table lacks `%s` (%d, %s)",
		    e->code, e->status, e->type);
	}
	/* README -> catalogue: every code named is the catalogue's, with
	 * that status. */
	ck_assert_int_eq(regcomp(&re, "`([a-z0-9_]+)`", REG_EXTENDED), 0);
	for (size_t r = 0; r < n; r++) {
		const char *p = rows[r].last;

		while (regexec(&re, p, 2, m, 0) == 0) {
			char word[96];
			size_t len = (size_t)(m[1].rm_eo - m[1].rm_so);
			enum wd_code c;

			ck_assert(len < sizeof(word));
			memcpy(word, p + m[1].rm_so, len);
			word[len] = '\0';
			p += m[0].rm_eo;
			if (is_type(word))
				continue;
			c = wd_code_find(word);
			ck_assert_msg(c != WD_CODE_NONE && !wd_errdef(c)->wire_null,
			    "README names `%s`, which the catalogue lacks", word);
			ck_assert_msg(row_has_status(&rows[r], wd_errdef(c)->status),
			    "README gives `%s` another status than the "
			    "catalogue's %d", word, wd_errdef(c)->status);
		}
		free(rows[r].last);
	}
	regfree(&re);
}
END_TEST

Suite *
suite_errors(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("catalogue");

	tcase_add_test(tc, every_code_has_a_row);
	tcase_add_test(tc, readme_table_matches_catalogue);
	suite_add_tcase(s, tc);
	return s;
}
