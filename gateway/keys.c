/*
 * keys.c - virtual keys: `warden keys new` makes one.
 *
 * A virtual key is 32 random bytes, base64url-encoded after a "wk-"
 * prefix; the rules file stores only "sha256:" and the hex digest of the
 * whole key string, which is what gw_auth() computes per request.
 */
#include "gateway/gw_int.h"

#include <stdio.h>

int
gw_keys_new(void)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[33], digest[32];
	char key[3 + 44 + 1], hex[65];
	size_t k = 0;

	/* 33 bytes encode to exactly 44 characters, no padding. */
	if (wd_random(raw, sizeof(raw)) != WD_OK) {
		fprintf(stderr, "warden: no randomness available\n");
		return 1;
	}
	key[k++] = 'w';
	key[k++] = 'k';
	key[k++] = '-';
	for (size_t i = 0; i < sizeof(raw); i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 |
		    raw[i + 2];

		key[k++] = b64[v >> 18 & 63];
		key[k++] = b64[v >> 12 & 63];
		key[k++] = b64[v >> 6 & 63];
		key[k++] = b64[v & 63];
	}
	key[k] = '\0';
	wd_sha256(key, k, digest);
	wd_hex(digest, sizeof(digest), hex);
	printf("key:  %s\nrule: sha256:%s\n", key, hex);
	wd_wipe(raw, sizeof(raw));
	wd_wipe(key, sizeof(key));
	return 0;
}
