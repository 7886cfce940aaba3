/*
 * det_gen.h - synthetic, labelled test data for the content detectors:
 * valid identifiers (check digits computed here, independently of
 * detect/validate.c), the same with a broken checksum, look-alikes
 * (dates, versions, order numbers, ISBNs, UUIDs ...), in sentences of
 * several languages.  Deterministic (xorshift): a run is reproducible.
 *
 * Used by the unit tests (tests/unit/test_detect.c) and by the bench
 * (tests/bench/bench_detect.c), which prints precision and recall.
 */
#ifndef DET_GEN_H
#define DET_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct gen {
	uint64_t s;
};

static inline uint64_t
gen_next(struct gen *g)
{
	g->s ^= g->s << 13;
	g->s ^= g->s >> 7;
	g->s ^= g->s << 17;
	return g->s;
}

static inline unsigned
gen_below(struct gen *g, unsigned n)
{
	return (unsigned)(gen_next(g) % n);
}

static inline char
gen_digit(struct gen *g)
{
	return (char)('0' + gen_below(g, 10));
}

/* Luhn check digit for the digits d[0..n). */
static inline int
gen_luhn_digit(const char *d, size_t n)
{
	int sum = 0;

	for (size_t i = 0; i < n; i++) {
		int v = d[n - 1 - i] - '0';

		if (i % 2 == 0) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return (10 - sum % 10) % 10;
}

/* A card number (valid: Luhn holds), separated by sep (0: none). */
static inline void
gen_card(struct gen *g, char *out, size_t cap, int valid, char sep)
{
	static const char *const prefixes[] = { "4", "51", "52", "53", "54",
		"55", "2221", "2720", "6011", "65", "34", "37" };
	const char *pre = prefixes[gen_below(g, 12)];
	size_t len = pre[0] == '3' ? 15 : 16, n = strlen(pre), o = 0;
	char d[20];
	int c;

	memcpy(d, pre, n);
	while (n < len - 1)
		d[n++] = gen_digit(g);
	c = gen_luhn_digit(d, len - 1);
	d[len - 1] = (char)('0' + (valid ? c : (c + 1 + (int)gen_below(g, 9)) % 10));
	for (size_t i = 0; i < len && o + 2 < cap; i++) {
		if (sep && i > 0 && i % 4 == 0)
			out[o++] = sep;
		out[o++] = d[i];
	}
	out[o] = '\0';
}

static inline unsigned
gen_mod97(const char *s)
{
	unsigned rem = 0;

	for (; *s; s++) {
		if (*s >= '0' && *s <= '9')
			rem = (rem * 10 + (unsigned)(*s - '0')) % 97;
		else
			rem = (rem * 100 + (unsigned)(*s - 'A' + 10)) % 97;
	}
	return rem;
}

/* An IBAN (valid: mod-97 holds), in groups of four if spaced. */
static inline void
gen_iban(struct gen *g, char *out, size_t cap, int valid, int spaced)
{
	/* country, BBAN shape: 'n' digit, 'a' upper letter */
	static const char *const shapes[][2] = {
		{ "DE", "nnnnnnnnnnnnnnnnnn" }, { "FR", "nnnnnnnnnnnnnnnnnnnnnnn" },
		{ "GB", "aaaannnnnnnnnnnnnn" }, { "NL", "aaaannnnnnnnnn" },
		{ "ES", "nnnnnnnnnnnnnnnnnnnn" }, { "IT", "annnnnnnnnnnnnnnnnnnnnn" },
		{ "BE", "nnnnnnnnnnnn" }, { "CH", "nnnnnnnnnnnnnnnnn" },
		{ "AT", "nnnnnnnnnnnnnnnn" }, { "PL", "nnnnnnnnnnnnnnnnnnnnnnnn" },
	};
	unsigned k = gen_below(g, 10), check;
	char bban[40], tmp[48], full[48];
	size_t n = strlen(shapes[k][1]), o = 0;

	for (size_t i = 0; i < n; i++)
		bban[i] = shapes[k][1][i] == 'n' ? gen_digit(g) :
		    (char)('A' + gen_below(g, 26));
	bban[n] = '\0';
	snprintf(tmp, sizeof(tmp), "%s%s00", bban, shapes[k][0]);
	check = 98 - gen_mod97(tmp);
	if (!valid)			/* any other of 02..98 */
		check = 2 + (check - 2 + 1 + gen_below(g, 96)) % 97;
	snprintf(full, sizeof(full), "%s%02u%s", shapes[k][0], check, bban);
	for (size_t i = 0; full[i] && o + 2 < cap; i++) {
		if (spaced && i > 0 && i % 4 == 0)
			out[o++] = ' ';
		out[o++] = full[i];
	}
	out[o] = '\0';
}

/* A French NIR (valid: its key is 97 - N mod 97), spaced as printed. */
static inline void
gen_nir(struct gen *g, char *out, size_t cap, int valid)
{
	char d[16], dept[3];
	unsigned long long num = 0;
	unsigned key, corsica = gen_below(g, 8);

	snprintf(dept, sizeof(dept), corsica == 0 ? "2A" : corsica == 1 ? "2B" :
	    "%02u", 1 + gen_below(g, 95));
	if (strcmp(dept, "20") == 0)
		dept[1] = '1';
	snprintf(d, sizeof(d), "%u%02u%02u%s%03u%03u", 1 + gen_below(g, 2),
	    gen_below(g, 100), 1 + gen_below(g, 12), dept, 1 + gen_below(g, 999),
	    1 + gen_below(g, 999));
	for (size_t i = 0; i < 13; i++) {
		unsigned v = (unsigned)(d[i] - '0');

		if (i == 5 && (d[6] == 'A' || d[6] == 'B'))
			v = 1;
		if (i == 6 && d[6] == 'A')
			v = 9;
		if (i == 6 && d[6] == 'B')
			v = 8;
		num = num * 10 + v;
	}
	key = (unsigned)(97 - num % 97);
	if (!valid)
		key = key % 97 + 1;
	snprintf(out, cap, "%c %.2s %.2s %.2s %.3s %.3s %02u", d[0], d + 1, d + 3,
	    d + 5, d + 7, d + 10, key);
}

/* A German Steuer-IdNr (valid: ISO 7064 MOD 11,10 check digit). */
static inline void
gen_taxid(struct gen *g, char *out, size_t cap, int valid)
{
	char d[12];
	int used[10] = { 0 }, product = 10, check;
	unsigned dup;

	/* Nine distinct digits, one of them twice, not starting with 0. */
	do {
		memset(used, 0, sizeof(used));
		for (size_t i = 0; i < 9; i++) {
			int v;

			do
				v = (int)gen_below(g, 10);
			while (used[v]);
			used[v] = 1;
			d[i] = (char)('0' + v);
		}
		dup = gen_below(g, 9);
		d[9] = d[dup];
	} while (d[0] == '0');
	for (size_t i = 0; i < 10; i++) {
		int sum = (d[i] - '0' + product) % 10;

		if (sum == 0)
			sum = 10;
		product = (sum * 2) % 11;
	}
	check = 11 - product;
	if (check == 10)
		check = 0;
	if (!valid)
		check = (check + 1 + (int)gen_below(g, 9)) % 10;
	d[10] = (char)('0' + check);
	d[11] = '\0';
	snprintf(out, cap, "%s", d);
}

static inline void
gen_ssn(struct gen *g, char *out, size_t cap, int valid)
{
	unsigned area;

	do
		area = 1 + gen_below(g, 899);
	while (area == 666);
	if (!valid)
		area = gen_below(g, 2) ? 666 : 900 + gen_below(g, 100);
	snprintf(out, cap, "%03u-%02u-%04u", area, 1 + gen_below(g, 99),
	    1 + gen_below(g, 9999));
}

static inline void
gen_nino(struct gen *g, char *out, size_t cap, int valid)
{
	static const char first[] = "ABCEGHJKLMNOPRSTWXYZ";
	static const char second[] = "ABCEGHJKLMNPRSTWXYZ";
	char a, b;

	do {
		a = first[gen_below(g, sizeof(first) - 1)];
		b = second[gen_below(g, sizeof(second) - 1)];
	} while ((a == 'G' && b == 'B') || (a == 'N' && b == 'K') ||
	    (a == 'T' && b == 'N') || (a == 'Z' && b == 'Z') ||
	    (a == 'B' && b == 'G') || (a == 'K' && b == 'N') ||
	    (a == 'N' && b == 'T'));
	if (!valid) {
		a = 'Q';		/* never a first letter */
		b = "DFIQUV"[gen_below(g, 6)];
	}
	snprintf(out, cap, "%c%c %02u %02u %02u %c", a, b, gen_below(g, 100),
	    gen_below(g, 100), gen_below(g, 100), 'A' + gen_below(g, 4));
}

static inline void
gen_alnum(struct gen *g, char *out, size_t n, const char *set)
{
	size_t k = strlen(set);

	for (size_t i = 0; i < n; i++)
		out[i] = set[gen_below(g, (unsigned)k)];
	out[n] = '\0';
}

#define GEN_B62 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

static inline void
gen_secret(struct gen *g, char *out, size_t cap)
{
	char r[128];

	switch (gen_below(g, 5)) {
	case 0:
		gen_alnum(g, r, 48, GEN_B62);
		snprintf(out, cap, "sk-proj-%s", r);
		break;
	case 1:
		gen_alnum(g, r, 90, GEN_B62 "-_");
		snprintf(out, cap, "sk-ant-api03-%s", r);
		break;
	case 2:
		gen_alnum(g, r, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
		snprintf(out, cap, "%s%s", gen_below(g, 2) ? "AKIA" : "ASIA", r);
		break;
	case 3:
		snprintf(out, cap, "-----BEGIN %sPRIVATE KEY-----",
		    gen_below(g, 2) ? "RSA " : "");
		break;
	default:
		gen_alnum(g, r, 40, GEN_B62);
		snprintf(out, cap, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIi"
		    "OiIx%.20s.%.30s", r, r + 10);
		break;
	}
}

#endif /* DET_GEN_H */
