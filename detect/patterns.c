/*
 * patterns.c - the built-in detectors: their names, their Hyperscan
 * expressions, and which bytes belong to a match.
 *
 * An expression finds where a candidate ends; the scanner reads the text
 * back to find where it starts (det_body_byte: a token starts after a
 * byte that cannot be part of it) and det_validate() decides.
 * Expressions start with a boundary group (?:^|[^...]) so that a match
 * cannot begin inside a longer token, and end without one: the scanner
 * checks the byte after the match itself (det_cont_byte), which lets a
 * stream hold a match that ends exactly at the end of what it has seen.
 * A match longer than DET_WINDOW cannot be read back: it counts as found
 * (fail closed); the bounded ones never are.
 */
#include "detect/det_int.h"

#include <string.h>

static const char *const names[DET_NBUILTIN] = {
	[DET_EMAIL] = "email",
	[DET_PHONE] = "phone",
	[DET_IBAN] = "iban",
	[DET_CARD] = "card",
	[DET_IPV4] = "ipv4",
	[DET_IPV6] = "ipv6",
	[DET_US_SSN] = "us_ssn",
	[DET_UK_NINO] = "uk_nino",
	[DET_FR_NIR] = "fr_nir",
	[DET_DE_TAXID] = "de_taxid",
	[DET_SECRET] = "secret",
};

const char *
det_builtin_name(int i)
{
	return i >= 0 && i < DET_NBUILTIN ? names[i] : NULL;
}

int
det_builtin_index(const char *name)
{
	for (int i = 0; i < DET_NBUILTIN; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

#define B_ALNUM "(?:^|[^0-9A-Za-z])"

const struct det_builtin_expr det_builtin_exprs[] = {
	/* Unbounded (Hyperscan found the bounded form too large); the
	 * scanner reads at most det_max_len() bytes back, so an "address"
	 * longer than 254 bytes is none. */
	{ DET_EMAIL, "(?:^|[^A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@"
	    "[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}" },
	/* International, North American, French and other national forms. */
	{ DET_PHONE, "(?:^|[^0-9A-Za-z+])\\+[1-9][0-9 ().-]{6,20}[0-9]" },
	{ DET_PHONE, B_ALNUM "(?:\\([2-9][0-9]{2}\\) ?|[2-9][0-9]{2}[.-])"
	    "[2-9][0-9]{2}[.-][0-9]{4}" },
	{ DET_PHONE, B_ALNUM "0[1-9](?:[ .][0-9]{2}){4}" },
	{ DET_PHONE, B_ALNUM "0[1-9][0-9]{1,3} [0-9]{3,4} ?[0-9]{3,4}" },
	{ DET_IBAN, B_ALNUM "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}" },
	{ DET_CARD, B_ALNUM "[2-6][0-9]{3}(?:[ -]?[0-9]){9,15}" },
	{ DET_IPV4, "(?:^|[^0-9A-Za-z.])[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"
	    "\\.[0-9]{1,3}" },
	{ DET_IPV6, "(?:^|[^0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4})"
	    "{2,7}" },
	{ DET_US_SSN, "(?:^|[^0-9A-Za-z-])[0-9]{3}-[0-9]{2}-[0-9]{4}" },
	{ DET_UK_NINO, B_ALNUM "[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]" },
	{ DET_FR_NIR, B_ALNUM "[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?"
	    "[0-9]{3} ?[0-9]{3} ?[0-9]{2}" },
	{ DET_DE_TAXID, B_ALNUM "[1-9][0-9](?: ?[0-9]{3}){3}" },
	/* Provider keys (OpenAI sk-, sk-proj-; Anthropic sk-ant-), AWS
	 * access key ids, PEM private keys, JWTs, GitHub tokens. */
	{ DET_SECRET, "(?:^|[^A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}" },
	{ DET_SECRET, "(?:^|[^A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}" },
	{ DET_SECRET, "-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?"
	    "PRIVATE KEY-----" },
	{ DET_SECRET, "(?:^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\\.eyJ"
	    "[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}" },
	{ DET_SECRET, "(?:^|[^A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36}" },
};
const size_t det_nbuiltin_exprs = sizeof(det_builtin_exprs) /
    sizeof(det_builtin_exprs[0]);

static bool
alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z');
}

bool
det_body_byte(int b, unsigned char c)
{
	switch (b) {
	case DET_EMAIL:
		return alnum(c) || (c != 0 && strchr("._%+-", c) != NULL);
	case DET_PHONE:
		return alnum(c) || c == '+' || c == '(';
	case DET_IPV4:
		return alnum(c) || c == '.';
	case DET_IPV6:
		return alnum(c) || c == ':';
	case DET_US_SSN:
		return alnum(c) || c == '-';
	case DET_SECRET:
		return alnum(c) || c == '_' || c == '-' || c == '.';
	default:
		return alnum(c);
	}
}

bool
det_cont_byte(int b, unsigned char c)
{
	switch (b) {
	case DET_EMAIL:
		return alnum(c) || c == '-';
	case DET_PHONE:
	case DET_IPV4:
	case DET_DE_TAXID:
		return c >= '0' && c <= '9';
	case DET_IPV6:
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F') || c == ':';
	case DET_US_SSN:
		return (c >= '0' && c <= '9') || c == '-';
	case DET_SECRET:
		return alnum(c) || c == '_';
	default:
		return alnum(c);
	}
}

size_t
det_max_len(int b)
{
	static const size_t len[DET_NBUILTIN] = {
		[DET_EMAIL] = 254, [DET_PHONE] = 32, [DET_IBAN] = 42,
		[DET_CARD] = 24, [DET_IPV4] = 15, [DET_IPV6] = 45,
		[DET_US_SSN] = 11, [DET_UK_NINO] = 13, [DET_FR_NIR] = 21,
		[DET_DE_TAXID] = 14, [DET_SECRET] = DET_WINDOW,
	};

	return b >= 0 && b < DET_NBUILTIN ? len[b] : DET_WINDOW;
}

/* A provider key, access key id, private key header or token: what the
 * expressions found, as one token (or the PEM header line). */
static bool
secret_ok(const char *p, size_t n)
{
	static const char pem[] = "-----BEGIN ", tail[] = "PRIVATE KEY-----";

	if (n >= sizeof(pem) - 1 && memcmp(p, pem, sizeof(pem) - 1) == 0)
		return n <= 64 && n >= sizeof(tail) - 1 &&
		    memcmp(p + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0;
	for (size_t i = 0; i < n; i++)
		if (!alnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-' &&
		    p[i] != '.')
			return false;
	if (n >= 23 && memcmp(p, "sk-", 3) == 0)
		return true;
	if (n == 20 && (memcmp(p, "AKIA", 4) == 0 || memcmp(p, "ASIA", 4) == 0))
		return true;
	if (n >= 40 && p[3] == '_' && memcmp(p, "gh", 2) == 0)
		return true;
	return n >= 30 && memcmp(p, "eyJ", 3) == 0 && memchr(p, '.', n) != NULL;
}

bool
det_validate(int b, const char *p, size_t n)
{
	switch (b) {
	case DET_EMAIL:
		return det_email_ok(p, n);
	case DET_PHONE:
		return det_phone_ok(p, n);
	case DET_IBAN:
		return det_iban_ok(p, n);
	case DET_CARD:
		return det_luhn_ok(p, n);
	case DET_IPV4:
		return det_ipv4_ok(p, n);
	case DET_IPV6:
		return det_ipv6_ok(p, n);
	case DET_US_SSN:
		return det_us_ssn_ok(p, n);
	case DET_UK_NINO:
		return det_uk_nino_ok(p, n);
	case DET_FR_NIR:
		return det_fr_nir_ok(p, n);
	case DET_DE_TAXID:
		return det_de_taxid_ok(p, n);
	case DET_SECRET:
		return secret_ok(p, n);
	default:
		return true;
	}
}
