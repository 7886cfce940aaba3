/*
 * digest.c - HMAC-SHA256 digests of payloads, keyed with the log's
 * payload key (sealed in the TPM when there is one: gateway/paykeys.c).
 *
 * Why not EVP_MAC: OpenSSL 3.0's HMAC keeps a copy of the raw key in
 * ordinary heap memory for as long as a context lives, and one lives per
 * request.  Here the key is used once, at open, to compute the two
 * SHA-256 midstates (key ^ ipad, key ^ opad) and is then wiped; each
 * digest starts from a copy of those states.  Both the states and every
 * digest in progress live in OpenSSL's secure heap, which the gateway
 * sets up locked and out of core dumps (ordinary heap, always wiped on
 * free, when it is not set up or full).
 */
#define OPENSSL_SUPPRESS_DEPRECATED	/* SHA256_CTX: a plain, copyable state */

#include "audit/aud_int.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

struct aud_mac {
	SHA256_CTX inner, outer;	/* after the padded key */
};

struct aud_hmac {
	struct aud_mac m;		/* inner absorbs the data */
	bool secure;
	struct aud_hmac *next;		/* in its thread's spares */
};

/*
 * Each thread keeps finished digests' blocks, wiped, for its next ones:
 * the secure heap's allocator takes a process-wide lock, and every
 * request makes two digests, one of which (the answer's) lives as long as
 * the request.  So a worker with many requests in flight needs as many
 * blocks: up to SPARES_MAX (about 16 KB of the secure heap) are kept.  A
 * thread's spares go back to the heap when it ends.
 */
#define SPARES_MAX 64

static pthread_key_t spares_key;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;
static bool spares_ok;
static _Thread_local unsigned nspares;	/* this thread's, on its list */

static void mac_free(void *p, size_t len, bool secure);

static void
spares_free(void *arg)
{
	struct aud_hmac *h = arg;

	while (h != NULL) {
		struct aud_hmac *next = h->next;

		mac_free(h, sizeof(*h), h->secure);
		h = next;
	}
}

static void
spares_init(void)
{
	spares_ok = pthread_key_create(&spares_key, spares_free) == 0;
}

static void *
mac_alloc(size_t len, bool *secure)
{
	void *p = CRYPTO_secure_malloc_initialized() ?
	    OPENSSL_secure_zalloc(len) : NULL;

	*secure = p != NULL;
	return p != NULL ? p : OPENSSL_zalloc(len);
}

static void
mac_free(void *p, size_t len, bool secure)
{
	if (p == NULL)
		return;
	if (secure)
		OPENSSL_secure_clear_free(p, len);
	else
		OPENSSL_clear_free(p, len);
}

enum wd_err
aud_mac_init(struct aud_log *l)
{
	unsigned char pad[SHA256_CBLOCK];
	bool secure;
	struct aud_mac *m = mac_alloc(sizeof(*m), &secure);

	if (m == NULL)
		return WD_ENOMEM;
	/* A 32-byte key is shorter than the block: it is padded as is. */
	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < sizeof(l->hmac_key); i++)
		pad[i] ^= l->hmac_key[i];
	SHA256_Init(&m->inner);
	SHA256_Update(&m->inner, pad, sizeof(pad));
	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < sizeof(l->hmac_key); i++)
		pad[i] ^= l->hmac_key[i];
	SHA256_Init(&m->outer);
	SHA256_Update(&m->outer, pad, sizeof(pad));
	OPENSSL_cleanse(pad, sizeof(pad));
	if (!secure && l->o.keys != NULL)
		wd_warn("audit: OpenSSL's secure heap is not set up: the payload "
		    "digest state is in ordinary memory");
	l->mac = m;
	return WD_OK;
}

void
aud_mac_free(struct aud_log *l)
{
	/* Where it came from does not matter to the secure heap's free. */
	if (l->mac != NULL && CRYPTO_secure_allocated(l->mac))
		mac_free(l->mac, sizeof(*l->mac), true);
	else
		mac_free(l->mac, sizeof(*l->mac), false);
	l->mac = NULL;
}

struct aud_hmac *
aud_hmac_new(const struct aud_log *l)
{
	struct aud_hmac *h = NULL;
	bool secure;

	if (l->mac == NULL)
		return NULL;
	pthread_once(&spares_once, spares_init);
	if (spares_ok && (h = pthread_getspecific(spares_key)) != NULL) {
		pthread_setspecific(spares_key, h->next);
		nspares--;
		secure = h->secure;
	} else if ((h = mac_alloc(sizeof(*h), &secure)) == NULL) {
		return NULL;
	}
	h->m = *l->mac;
	h->secure = secure;
	h->next = NULL;
	return h;
}

/* A finished digest's block: wiped, kept for the thread's next one. */
static void
hmac_done(struct aud_hmac *h)
{
	OPENSSL_cleanse(&h->m, sizeof(h->m));
	if (spares_ok && nspares < SPARES_MAX) {
		h->next = pthread_getspecific(spares_key);
		if (pthread_setspecific(spares_key, h) == 0) {
			nspares++;
			return;
		}
	}
	mac_free(h, sizeof(*h), h->secure);
}

void
aud_hmac_update(struct aud_hmac *h, const void *data, size_t len)
{
	if (h != NULL)
		SHA256_Update(&h->m.inner, data, len);
}

void
aud_hmac_final(struct aud_hmac *h, char out[AUD_HASH_HEX + 1])
{
	unsigned char d[SHA256_DIGEST_LENGTH];

	if (h == NULL) {
		out[0] = '\0';
		return;
	}
	SHA256_Final(d, &h->m.inner);
	SHA256_Update(&h->m.outer, d, sizeof(d));
	SHA256_Final(d, &h->m.outer);
	wd_hex(d, sizeof(d), out);
	OPENSSL_cleanse(d, sizeof(d));
	hmac_done(h);
}

void
aud_payload_digest(const struct aud_log *l, const void *data, size_t len,
    char out[AUD_HASH_HEX + 1])
{
	struct aud_hmac *h = aud_hmac_new(l);

	aud_hmac_update(h, data, len);
	aud_hmac_final(h, out);
}
