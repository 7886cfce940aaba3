/*
 * validate.c - what makes a pattern match a detection: checksums (Luhn,
 * IBAN mod-97, the French NIR key, the German tax id's ISO 7064 digit)
 * and format rules (US SSN areas, UK NINO prefixes, address syntax).
 *
 * Each validator gets the candidate exactly as the pattern matched it,
 * separators included, without the leading boundary byte.  Pure functions
 * over at most DET_WINDOW bytes.
 */
#include "detect/det.h"

#include <arpa/inet.h>
#include <string.h>

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

/* The candidate's characters other than ' ', '-', '.', '(', ')', '/'
 * into out (at most cap); false if more. */
static bool
compact(const char *p, size_t n, char *out, size_t cap, size_t *len)
{
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (strchr(" -.()/", p[i]) != NULL)
			continue;
		if (*len >= cap)
			return false;
		out[(*len)++] = p[i];
	}
	return true;
}

static bool
all_same(const char *d, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (d[i] != d[0])
			return false;
	return true;
}

bool
det_luhn_ok(const char *p, size_t n)
{
	char d[24];
	size_t len;
	int sum = 0;

	if (!compact(p, n, d, sizeof(d), &len) || len < 13 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_digit(d[i]))
			return false;
	/* Card networks issue from 2 (Mastercard 2-series) to 6 (Discover,
	 * UnionPay); a run of one digit is a test pattern, not a card. */
	if (d[0] < '2' || d[0] > '6' || all_same(d, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		int v = d[len - 1 - i] - '0';

		if (i % 2 == 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* IBAN lengths by country (SWIFT registry). */
static const struct {
	char cc[3];
	unsigned char len;
} iban_len[] = {
	{ "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 },
	{ "BA", 20 }, { "BE", 16 }, { "BG", 22 }, { "BH", 22 }, { "BR", 29 },
	{ "CH", 21 }, { "CR", 22 }, { "CY", 28 }, { "CZ", 24 }, { "DE", 22 },
	{ "DK", 18 }, { "DO", 28 }, { "EE", 20 }, { "EG", 29 }, { "ES", 24 },
	{ "FI", 18 }, { "FO", 18 }, { "FR", 27 }, { "GB", 22 }, { "GE", 22 },
	{ "GI", 23 }, { "GL", 18 }, { "GR", 27 }, { "GT", 28 }, { "HR", 21 },
	{ "HU", 28 }, { "IE", 22 }, { "IL", 23 }, { "IQ", 23 }, { "IS", 26 },
	{ "IT", 27 }, { "JO", 30 }, { "KW", 30 }, { "KZ", 20 }, { "LB", 28 },
	{ "LC", 32 }, { "LI", 21 }, { "LT", 20 }, { "LU", 20 }, { "LV", 21 },
	{ "MC", 27 }, { "MD", 24 }, { "ME", 22 }, { "MK", 19 }, { "MR", 27 },
	{ "MT", 31 }, { "MU", 30 }, { "NL", 18 }, { "NO", 15 }, { "PK", 24 },
	{ "PL", 28 }, { "PS", 29 }, { "PT", 25 }, { "QA", 29 }, { "RO", 24 },
	{ "RS", 22 }, { "SA", 24 }, { "SC", 31 }, { "SE", 24 }, { "SI", 19 },
	{ "SK", 24 }, { "SM", 27 }, { "TL", 23 }, { "TN", 24 }, { "TR", 26 },
	{ "UA", 29 }, { "VA", 22 }, { "VG", 24 }, { "XK", 20 },
};

bool
det_iban_ok(const char *p, size_t n)
{
	char d[40];
	size_t len, want = 0;
	unsigned rem = 0;

	if (!compact(p, n, d, sizeof(d), &len) || len < 15 || len > 34)
		return false;
	for (size_t i = 0; i < sizeof(iban_len) / sizeof(iban_len[0]); i++)
		if (d[0] == iban_len[i].cc[0] && d[1] == iban_len[i].cc[1])
			want = iban_len[i].len;
	if (want != len || !is_digit(d[2]) || !is_digit(d[3]))
		return false;
	/* mod-97 of BBAN + country + check, letters as 10..35. */
	for (size_t k = 0; k < len; k++) {
		char c = d[(k + 4) % len];

		if (is_digit(c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else if (is_upper(c))
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return false;
	}
	return rem == 1;
}

bool
det_us_ssn_ok(const char *p, size_t n)
{
	int area, group, serial;

	if (n != 11 || p[3] != '-' || p[6] != '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (i != 3 && i != 6 && !is_digit(p[i]))
			return false;
	area = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	group = (p[4] - '0') * 10 + (p[5] - '0');
	serial = (p[7] - '0') * 1000 + (p[8] - '0') * 100 + (p[9] - '0') * 10 +
	    (p[10] - '0');
	/* Never issued: area 000, 666, 900-999; group 00; serial 0000.  And
	 * the numbers printed in advertisements and textbooks. */
	if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
		return false;
	return memcmp(p, "078-05-1120", 11) != 0 &&
	    memcmp(p, "219-09-9999", 11) != 0 &&
	    memcmp(p, "123-45-6789", 11) != 0;
}

bool
det_uk_nino_ok(const char *p, size_t n)
{
	static const char *const bad_prefix[] = { "BG", "GB", "KN", "NK", "NT",
		"TN", "ZZ" };
	char d[12];
	size_t len;

	if (!compact(p, n, d, sizeof(d), &len) || len != 9)
		return false;
	if (!is_upper(d[0]) || !is_upper(d[1]) || d[8] < 'A' || d[8] > 'D')
		return false;
	for (size_t i = 2; i < 8; i++)
		if (!is_digit(d[i]))
			return false;
	if (strchr("DFIQUV", d[0]) != NULL || strchr("DFIOQUV", d[1]) != NULL)
		return false;
	for (size_t i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++)
		if (memcmp(d, bad_prefix[i], 2) == 0)
			return false;
	return true;
}

bool
det_fr_nir_ok(const char *p, size_t n)
{
	char d[20];
	size_t len;
	unsigned long long num = 0;
	int month, key;

	if (!compact(p, n, d, sizeof(d), &len) || len != 15)
		return false;
	for (size_t i = 0; i < 15; i++) {
		/* Corsica: département 2A / 2B count as 19 / 18. */
		if (i == 6 && d[5] == '2' && (d[6] == 'A' || d[6] == 'B'))
			continue;
		if (!is_digit(d[i]))
			return false;
	}
	if (d[0] != '1' && d[0] != '2')
		return false;
	month = (d[3] - '0') * 10 + (d[4] - '0');
	/* 01-12, or 20-42 and 50-99 for records without a known month. */
	if (month == 0 || (month > 12 && month < 20) || (month > 42 && month < 50))
		return false;
	for (size_t i = 0; i < 13; i++) {
		int v = d[i] - '0';

		if (i == 5 && d[6] == 'A')
			v = 1;
		else if (i == 5 && d[6] == 'B')
			v = 1;
		else if (i == 6 && d[6] == 'A')
			v = 9;
		else if (i == 6 && d[6] == 'B')
			v = 8;
		num = num * 10 + (unsigned long long)v;
	}
	key = (d[13] - '0') * 10 + (d[14] - '0');
	return key == (int)(97 - num % 97);
}

bool
det_de_taxid_ok(const char *p, size_t n)
{
	char d[16];
	size_t len;
	int count[10] = { 0 }, multi = 0, product = 10, check;

	if (!compact(p, n, d, sizeof(d), &len) || len != 11 || d[0] == '0')
		return false;
	for (size_t i = 0; i < 11; i++)
		if (!is_digit(d[i]))
			return false;
	/* In the first ten digits exactly one digit appears twice or three
	 * times; every other appears at most once. */
	for (size_t i = 0; i < 10; i++)
		count[d[i] - '0']++;
	for (int i = 0; i < 10; i++) {
		if (count[i] > 3)
			return false;
		if (count[i] > 1)
			multi++;
	}
	if (multi != 1)
		return false;
	/* ISO 7064 MOD 11,10. */
	for (size_t i = 0; i < 10; i++) {
		int sum = (d[i] - '0' + product) % 10;

		if (sum == 0)
			sum = 10;
		product = (sum * 2) % 11;
	}
	check = 11 - product;
	if (check == 10)
		check = 0;
	return check == d[10] - '0';
}

bool
det_ipv4_ok(const char *p, size_t n)
{
	int parts = 0;
	size_t i = 0;

	while (i < n) {
		int v = 0;
		size_t start = i;

		while (i < n && is_digit(p[i]))
			v = v * 10 + (p[i++] - '0');
		if (i == start || i - start > 3 || v > 255 ||
		    (i - start > 1 && p[start] == '0'))
			return false;
		parts++;
		if (i < n && p[i++] != '.')
			return false;
	}
	return parts == 4 && p[n - 1] != '.';
}

bool
det_ipv6_ok(const char *p, size_t n)
{
	char buf[48];
	unsigned char addr[16];
	int groups = 0;

	if (n < 3 || n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return false;
	/* "::" or "1::" say too little to be an address in prose. */
	for (size_t i = 0; i < n; i++)
		if (p[i] != ':' && (i == 0 || p[i - 1] == ':'))
			groups++;
	return groups >= 3;
}

static bool
label_ok(const char *p, size_t n)
{
	if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(p[i]) && !is_upper(p[i]) && !(p[i] >= 'a' &&
		    p[i] <= 'z') && p[i] != '-')
			return false;
	return true;
}

bool
det_email_ok(const char *p, size_t n)
{
	const char *at = memchr(p, '@', n), *dom, *dot;
	size_t local, dlen;

	if (at == NULL)
		return false;
	local = (size_t)(at - p);
	if (local == 0 || local > 64 || p[0] == '.' || at[-1] == '.' ||
	    memmem(p, local, "..", 2) != NULL)
		return false;
	for (size_t i = 0; i < local; i++)
		if (!is_digit(p[i]) && !is_upper(p[i]) && !(p[i] >= 'a' &&
		    p[i] <= 'z') && strchr("._%+-", p[i]) == NULL)
			return false;
	dom = at + 1;
	dlen = n - local - 1;
	while (dlen > 0) {
		dot = memchr(dom, '.', dlen);
		if (dot == NULL)
			return label_ok(dom, dlen);
		if (!label_ok(dom, (size_t)(dot - dom)))
			return false;
		dlen -= (size_t)(dot - dom) + 1;
		dom = dot + 1;
	}
	return false;
}

bool
det_phone_ok(const char *p, size_t n)
{
	char d[24];
	size_t len, digits = 0;

	if (!compact(p, n, d, sizeof(d), &len))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (is_digit(d[i]))
			digits++;
		else if (!(i == 0 && d[i] == '+'))
			return false;
	}
	if (digits < 9 || digits > 15 || all_same(d[0] == '+' ? d + 1 : d,
	    d[0] == '+' ? len - 1 : len))
		return false;
	/* Two separators in a row are a list of numbers, not a number. */
	for (size_t i = 1; i < n; i++)
		if (strchr(" -.", p[i]) && strchr(" -.", p[i - 1]))
			return false;
	/* Without a country code: a national number (trunk prefix 0), or
	 * a North American one (area and exchange start with 2-9). */
	if (d[0] == '+' || d[0] == '0')
		return true;
	return len == 10 && d[0] >= '2' && d[3] >= '2';
}
