/*
 * test_audit.c - audit/: one record to one line and back, opening a log
 * (its directory, its key, a torn tail), the writer (group commit,
 * rotation, the done callback, a write failure and recovery from it),
 * checkpoints signed by a software ECDSA P-256 key, verification naming
 * each kind of tampering, and exports an auditor checks alone.
 *
 * Every test works in its own directory under /tmp, removed at the end.
 * Expected formats are audit/FORMAT.md's.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "audit/aud_int.h"
#include "tests/unit/suites.h"

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- small helpers ---- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh 0700 directory; caller rm_rf()s and frees. */
static char *
tmpdir(void)
{
	char *d = strdup("/tmp/warden-ut-audit-XXXXXX");

	ck_assert_ptr_nonnull(d);
	ck_assert_msg(mkdtemp(d) != NULL, "mkdtemp: %s", strerror(errno));
	return d;
}

static char *
path2(const char *dir, const char *name)
{
	char *p;

	ck_assert(asprintf(&p, "%s/%s", dir, name) >= 0);
	return p;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;
	FILE *m;

	if (f == NULL)
		return NULL;
	m = open_memstream(&buf, &n);
	ck_assert_ptr_nonnull(m);
	for (int ch; (ch = fgetc(f)) != EOF; )
		fputc(ch, m);
	fclose(m);
	fclose(f);
	if (len != NULL)
		*len = n;
	return buf;
}

static void
spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void
append(const char *path, const char *data)
{
	FILE *f = fopen(path, "ab");

	ck_assert_ptr_nonnull(f);
	fputs(data, f);
	ck_assert_int_eq(fclose(f), 0);
}

static off_t
fsize(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return st.st_size;
}

/* Lines of a file, without their newlines (a last line without one is
 * kept as is). */
struct lines {
	char **v;
	size_t n;
};

static struct lines
file_lines(const char *path)
{
	struct lines l = { 0 };
	size_t len;
	char *text = slurp(path, &len);

	ck_assert_msg(text != NULL, "%s: cannot read", path);
	for (size_t off = 0; off < len; ) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - text) - off : len - off;

		l.v = realloc(l.v, (l.n + 1) * sizeof(*l.v));
		l.v[l.n++] = strndup(text + off, ll);
		off += ll + 1;
	}
	free(text);
	return l;
}

/* Every line of every segment of dir, in order. */
static struct lines
log_lines(const char *dir)
{
	struct lines all = { 0 };
	size_t nsegs;
	char **segs = aud_segments(dir, &nsegs);

	for (size_t s = 0; s < nsegs; s++) {
		char *p = path2(dir, segs[s]);
		struct lines l = file_lines(p);

		all.v = realloc(all.v, (all.n + l.n + 1) * sizeof(*all.v));
		if (l.n > 0)	/* an empty segment has no lines */
			memcpy(all.v + all.n, l.v, l.n * sizeof(*l.v));
		all.n += l.n;
		free(l.v);
		free(p);
		free(segs[s]);
	}
	free(segs);
	return all;
}

static void
lines_write(const char *path, const struct lines *l)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] != NULL)
			fprintf(f, "%s\n", l->v[i]);
	ck_assert_int_eq(fclose(f), 0);
}

static void
lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The canonical record of a line, parsed (the line must be one of ours). */
static json_t *
line_json(const char *line)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *c = aud_split_line(line, strlen(line), hash, &clen);
	json_t *j;

	ck_assert_msg(c != NULL, "not an audit line: %s", line);
	j = json_loadb(c, clen, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s", c);
	free(c);
	return j;
}

static const char *
line_hash(const char *line, char out[AUD_HASH_HEX + 1])
{
	size_t len = strlen(line);

	ck_assert_uint_gt(len, AUD_SUFFIX_LEN);
	memcpy(out, line + len - AUD_SUFFIX_LEN + 9, AUD_HASH_HEX);
	out[AUD_HASH_HEX] = '\0';
	return out;
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static long long
jint(json_t *j, const char *key)
{
	return (long long)json_integer_value(json_object_get(j, key));
}

/* aud_verify_dir's exit code; *out gets what it printed. */
static int
verify(const char *dir, const char *pubkey_path, char **out)
{
	struct aud_verify_opts o = { .pubkey_pem_path = pubkey_path };
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc;

	ck_assert_ptr_nonnull(m);
	rc = aud_verify_dir(dir, &o, m);
	fclose(m);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return rc;
}

static int
verify_export_key(const char *path, const char *pubkey_path, char **out)
{
	struct aud_verify_opts o = { .pubkey_pem_path = pubkey_path };
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc;

	ck_assert_ptr_nonnull(m);
	rc = aud_verify_export(path, &o, m);
	fclose(m);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return rc;
}

static int
verify_export(const char *path, char **out)
{
	return verify_export_key(path, NULL, out);
}

/* aud_line as a C string: its buffer is *len bytes, not NUL-terminated. */
static char *
line_of(json_t *rec, const char *prev, char hash[AUD_HASH_HEX + 1], size_t *len)
{
	char *l = aud_line(rec, prev, hash, len), *s;

	ck_assert_ptr_nonnull(l);
	s = strndup(l, *len);
	ck_assert_ptr_nonnull(s);
	free(l);
	return s;
}

/* ---- the log ---- */

static struct aud_opts
opts(const char *dir)
{
	struct aud_opts o = {
		.dir = dir,
		.instance = "ut-instance",
		.group_commit_ms = 2,
		.segment_max_bytes = 64u << 20,
		.segment_max_age_s = 0,
	};

	return o;
}

static struct aud_log *
open_ok(const struct aud_opts *o)
{
	struct aud_log *log = NULL;
	char err[512] = "";
	enum wd_err rc = aud_open(o, &log, err, sizeof(err));

	ck_assert_msg(rc == WD_OK, "aud_open(%s): %s: %s", o->dir,
	    wd_strerror(rc), err);
	ck_assert_ptr_nonnull(log);
	return log;
}

/* A done callback the test can wait for. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool fired;
	int calls;
	enum wd_err rc;
	/* What the file held when done fired. */
	const char *path;
	const char *token;
	bool on_disk;
};

static void
waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void
waiter_done(void *arg, enum wd_err rc)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->mu);
	if (w->path != NULL && w->token != NULL) {
		size_t len;
		char *text = slurp(w->path, &len);

		w->on_disk = text != NULL && memmem(text, len, w->token,
		    strlen(w->token)) != NULL;
		free(text);
	}
	w->rc = rc;
	w->fired = true;
	w->calls++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Wait up to ms for the callback; false if it did not come. */
static bool
waiter_wait(struct waiter *w, int ms)
{
	struct timespec until;
	bool fired;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->fired)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
			break;
	fired = w->fired;
	pthread_mutex_unlock(&w->mu);
	return fired;
}

static json_t *
req_rec(const char *tenant, const char *token)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:i}", "kind", "request", "tenant",
	    tenant, "decision_id", token, "verdict", "allow", "status", 200);
}

/* Submit and wait until the record is durable; its done code. */
static enum wd_err
submit_sync(struct aud_log *log, json_t *rec)
{
	struct waiter w;

	waiter_init(&w);
	aud_submit(log, rec, waiter_done, &w);
	ck_assert_msg(waiter_wait(&w, 5000), "done never came");
	return w.rc;
}

/* A log of n request records (tokens tok-1..tok-n), closed. */
static void
make_log(const char *dir, int n, size_t segmax)
{
	struct aud_opts o = opts(dir);
	struct aud_log *log;

	if (segmax > 0)
		o.segment_max_bytes = segmax;
	log = open_ok(&o);
	for (int i = 1; i <= n; i++) {
		char tok[32];

		snprintf(tok, sizeof(tok), "tok-%d", i);
		ck_assert_int_eq(submit_sync(log, req_rec(i % 2 ? "a" : "b", tok)),
		    WD_OK);
	}
	aud_close(log);
}

/* ---- a software signer: an EC P-256 key in memory ---- */

struct soft_key {
	EVP_PKEY *key;
	char *pem;			/* its public key */
	struct aud_signer signer;
};

static enum wd_err
soft_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	EVP_PKEY *k = ctx;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok = m != NULL &&
	    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSign(m, sig, siglen, msg, len) == 1;

	EVP_MD_CTX_free(m);
	return ok ? WD_OK : WD_EIO;
}

static void
soft_key_init(struct soft_key *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	memset(k, 0, sizeof(*k));
	k->key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(k->key);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(PEM_write_bio_PUBKEY(b, k->key), 1);
	n = BIO_get_mem_data(b, &p);
	k->pem = strndup(p, (size_t)n);
	BIO_free(b);
	k->signer.sign = soft_sign;
	k->signer.ctx = k->key;
	k->signer.pubkey_pem = k->pem;
}

static void
soft_key_free(struct soft_key *k)
{
	EVP_PKEY_free(k->key);
	free(k->pem);
}

/* A signed log: records submitted one by one, a checkpoint after every
 * third (asked of the writer thread and waited for, so they stand at
 * fixed places), and one at close. */
static void
make_signed_log(const char *dir, struct soft_key *k, const char *tenants)
{
	struct aud_opts o = opts(dir);
	struct aud_log *log;

	o.signer = &k->signer;
	o.checkpoint_every = 0;
	o.checkpoint_interval_s = 60;
	log = open_ok(&o);
	for (int i = 1; tenants[i - 1] != '\0'; i++) {
		char tok[32], t[2] = { tenants[i - 1], '\0' };

		snprintf(tok, sizeof(tok), "tok-%d", i);
		ck_assert_int_eq(submit_sync(log, req_rec(t, tok)), WD_OK);
		if (i % 3 == 0)
			ck_assert_int_eq(aud_checkpoint_sync(log, 5000), WD_OK);
	}
	aud_close(log);
}

/* The Merkle root of the leaves of lines [0, n), as hex. */
static void
lines_root(const struct lines *l, size_t n, char out[AUD_HASH_HEX + 1])
{
	struct aud_frontier f = { 0 };
	unsigned char r[32];

	for (size_t i = 0; i < n; i++) {
		char hash[AUD_HASH_HEX + 1], *c;
		size_t clen;
		unsigned char leaf[32];

		c = aud_split_line(l->v[i], strlen(l->v[i]), hash, &clen);
		ck_assert_ptr_nonnull(c);
		aud_leaf_hash(c, clen, leaf);
		aud_frontier_push(&f, leaf, NULL, NULL);
		free(c);
	}
	aud_frontier_root(&f, r);
	wd_hex(r, 32, out);
}

/* While rechain() runs: the root of what it rewrote so far. */
static char forge_root[AUD_HASH_HEX + 1];

/*
 * Rewrite a log as a forger with write access would: every line
 * re-serialised and re-chained (edit may change a record first), so the
 * chain holds again and only signatures can tell.
 */
static void
rechain(const char *dir, void (*edit)(json_t *rec, size_t idx, const char *prev))
{
	struct lines l = log_lines(dir);
	char prev[AUD_HASH_HEX + 1] = ZEROS, *seg = path2(dir,
	    "audit-000001.jsonl");
	FILE *f;
	size_t nsegs;
	char **segs = aud_segments(dir, &nsegs);

	for (size_t s = 0; s < nsegs; s++) {
		char *p = path2(dir, segs[s]);

		unlink(p);
		free(p);
		free(segs[s]);
	}
	free(segs);
	{
		char *t = path2(dir, "tree");

		rm_rf(t);
		free(t);
	}
	f = fopen(seg, "wb");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = line_json(l.v[i]);
		char hash[AUD_HASH_HEX + 1];
		size_t len;
		char *line;

		lines_root(&l, i, forge_root);
		if (edit != NULL)
			edit(j, i, prev);
		line = line_of(j, prev, hash, &len);
		ck_assert_ptr_nonnull(line);
		fwrite(line, 1, len, f);
		memcpy(prev, hash, sizeof(prev));
		/* What follows is rooted in the rewritten line. */
		free(l.v[i]);
		l.v[i] = strndup(line, len - 1);
		free(line);
		json_decref(j);
	}
	ck_assert_int_eq(fclose(f), 0);
	free(seg);
	lines_free(&l);
}

/* ======================================================================
 * chain.c: a record to a line and back
 * ====================================================================== */

START_TEST(line_round_trip_and_exact_suffix)
{
	json_t *r = json_pack("{s:I,s:s,s:s,s:s,s:[i,i],s:n}", "seq",
	    (json_int_t)7, "kind", "request", "tenant", "t1", "zz", "last",
	    "list", 1, 2, "none");
	char prev[AUD_HASH_HEX + 1], hash[AUD_HASH_HEX + 1], h2[AUD_HASH_HEX + 1];
	char *line, *c, *canon, *expect;
	unsigned char d[32];
	char manual[AUD_HASH_HEX + 1];
	size_t len, clen;
	EVP_MD_CTX *ctx;
	unsigned int dl;

	ck_assert_int_eq(AUD_SUFFIX_LEN, 75);
	memset(prev, 'a', AUD_HASH_HEX);
	prev[AUD_HASH_HEX] = '\0';
	/* A stale hash in the input is not part of the record. */
	json_object_set_new(r, "hash", json_string("bogus"));
	line = line_of(r, prev, hash, &len);
	ck_assert_ptr_nonnull(line);
	ck_assert_uint_eq(strlen(hash), AUD_HASH_HEX);
	ck_assert_uint_eq(strlen(line), len);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert(memchr(line, '\n', len - 1) == NULL);

	/* C: sorted keys, compact, with prev, without hash. */
	ck_assert_ptr_null(json_object_get(r, "hash"));
	ck_assert_str_eq(jstr(r, "prev"), prev);
	c = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_str_eq(c, "{\"kind\":\"request\",\"list\":[1,2],\"none\":null,"
	    "\"prev\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaa\",\"seq\":7,\"tenant\":\"t1\",\"zz\":\"last\"}");

	/* The line is C without '}', then ,"hash":"<64 hex>"} and \n. */
	ck_assert(asprintf(&expect, "%.*s,\"hash\":\"%s\"}\n",
	    (int)strlen(c) - 1, c, hash) >= 0);
	ck_assert_str_eq(line, expect);
	ck_assert_uint_eq(len, strlen(c) - 1 + AUD_SUFFIX_LEN + 1);
	ck_assert(memcmp(line + len - 1 - AUD_SUFFIX_LEN, ",\"hash\":\"", 9) == 0);
	ck_assert(memcmp(line + len - 3, "\"}", 2) == 0);

	/* hash = hex SHA-256(ASCII prev || C), computed independently. */
	ctx = EVP_MD_CTX_new();
	ck_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
	ck_assert(EVP_DigestUpdate(ctx, prev, AUD_HASH_HEX));
	ck_assert(EVP_DigestUpdate(ctx, c, strlen(c)));
	ck_assert(EVP_DigestFinal_ex(ctx, d, &dl));
	EVP_MD_CTX_free(ctx);
	wd_hex(d, 32, manual);
	ck_assert_str_eq(hash, manual);

	/* And back: C exactly, and the claimed hash. */
	canon = aud_split_line(line, len - 1, h2, &clen);
	ck_assert_ptr_nonnull(canon);
	ck_assert_str_eq(canon, c);
	ck_assert_uint_eq(clen, strlen(c));
	ck_assert_str_eq(h2, hash);
	ck_assert(aud_check_line(canon, clen, prev, hash));
	ck_assert(!aud_check_line(canon, clen, ZEROS, hash));
	canon[5] ^= 1;
	ck_assert(!aud_check_line(canon, clen, prev, hash));

	free(canon);
	free(expect);
	free(c);
	free(line);
	json_decref(r);
}
END_TEST

START_TEST(split_refuses_what_is_not_a_line)
{
	json_t *r = json_pack("{s:s}", "kind", "start");
	char hash[AUD_HASH_HEX + 1], h2[AUD_HASH_HEX + 1];
	size_t len, clen;
	char *line = line_of(r, ZEROS, hash, &len), *copy, *p;

	len--;				/* without the newline */
	ck_assert_ptr_null(aud_split_line("{}", 2, h2, &clen));
	ck_assert_ptr_null(aud_split_line(line, AUD_SUFFIX_LEN, h2, &clen));
	ck_assert_ptr_null(aud_split_line(line + 1, len - 1, h2, &clen));
	ck_assert_ptr_null(aud_split_line(line, len - 1, h2, &clen));
	copy = strndup(line, len);
	/* Upper-case hex is not ours. */
	p = copy + len - 2 - 10;
	*p = 'A';
	ck_assert_ptr_null(aud_split_line(copy, len, h2, &clen));
	*p = 'g';
	ck_assert_ptr_null(aud_split_line(copy, len, h2, &clen));
	free(copy);
	copy = strndup(line, len);
	copy[len - AUD_SUFFIX_LEN + 2] = 'H';	/* "Hash" */
	ck_assert_ptr_null(aud_split_line(copy, len, h2, &clen));
	free(copy);
	{
		char cp[32];

		ck_assert_int_eq(aud_checkpoint_msg(cp, sizeof(cp), 42, "ab"), 5);
		ck_assert_str_eq(cp, "42:ab");
	}
	free(line);
	json_decref(r);
}
END_TEST

START_TEST(control_chars_and_non_ascii_round_trip)
{
	static const char s[] = "ctl:\x01\x1f nl:\n cr:\r tab:\t q:\" bs:\\ "
	    "sl:/ del:\x7f e:\xc3\xa9 han:\xe6\xbc\xa2 emoji:\xf0\x9f\x98\x80";
	json_t *r = json_pack("{s:s,s:s}", "kind", "request", "model", s), *back;
	char hash[AUD_HASH_HEX + 1], h2[AUD_HASH_HEX + 1];
	size_t len, clen;
	char *line = line_of(r, ZEROS, hash, &len), *canon;

	ck_assert_ptr_nonnull(line);
	/* One line: no raw control character but the final newline. */
	for (size_t i = 0; i + 1 < len; i++)
		ck_assert_msg((unsigned char)line[i] >= 0x20,
		    "raw control byte 0x%02x at %zu", (unsigned char)line[i], i);
	ck_assert_ptr_nonnull(strstr(line, "ctl:\\u0001\\u001F nl:\\n cr:\\r "
	    "tab:\\t q:\\\" bs:\\\\ sl:/ "));
	/* Non-ASCII stays UTF-8, unescaped. */
	ck_assert_ptr_nonnull(strstr(line, "e:\xc3\xa9 han:\xe6\xbc\xa2 "
	    "emoji:\xf0\x9f\x98\x80"));
	ck_assert_ptr_null(strstr(line, "\\u00e9"));
	canon = aud_split_line(line, len - 1, h2, &clen);
	ck_assert_ptr_nonnull(canon);
	ck_assert(aud_check_line(canon, clen, ZEROS, h2));
	back = json_loadb(canon, clen, 0, NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(jstr(back, "model"), s);
	json_decref(back);
	free(canon);
	free(line);
	json_decref(r);
}
END_TEST

/* A string with U+0000 is valid JSON (\\u0000); what is written must
 * verify and must survive a restart. */
START_TEST(nul_in_a_string_still_verifies)
{
	char *dir = tmpdir(), *out;
	struct aud_opts o = opts(dir);
	struct aud_log *log = open_ok(&o);
	struct lines l;

	ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-1")), WD_OK);
	ck_assert_int_eq(submit_sync(log, json_pack("{s:s%}", "model", "a\0b",
	    (size_t)3)), WD_OK);
	aud_close(log);
	/* A restart keeps the durable record: it is not a torn line. */
	log = open_ok(&o);
	aud_close(log);
	l = log_lines(dir);
	ck_assert_uint_ge(l.n, 2);
	ck_assert_msg(strstr(l.v[1], "\"model\":\"a\\u0000b\"") != NULL &&
	    l.n == 2, "the record was cut at restart; line 2 is now %s", l.v[1]);
	lines_free(&l);
	ck_assert_msg(verify(dir, NULL, &out) == AUD_UNAUTHENTICATED, "%s", out);
	free(out);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * open.c: the directory, the key, the tail
 * ====================================================================== */

START_TEST(open_creates_a_private_dir_and_key)
{
	char *base = tmpdir(), *dir = path2(base, "log"), *key;
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	struct stat st;

	log = open_ok(&o);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_msg((st.st_mode & 07777) == 0700, "dir mode %o",
	    st.st_mode & 07777);
	key = path2(dir, "payload.key");
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0600, "key mode %o",
	    st.st_mode & 07777);
	ck_assert_int_eq(st.st_size, 32);
	ck_assert(aud_healthy(log));
	ck_assert(!aud_strict(log));
	aud_close(log);
	/* The first segment is there, private and empty. */
	{
		char *seg = path2(dir, "audit-000001.jsonl"), *out;

		ck_assert_int_eq(stat(seg, &st), 0);
		ck_assert_msg((st.st_mode & 07777) == 0600, "segment mode %o",
		    st.st_mode & 07777);
		ck_assert_int_eq(st.st_size, 0);
		ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
		ck_assert_msg(strncmp(out, "CONSISTENT: 0 records", 21) == 0, "%s", out);
		free(out);
		free(seg);
	}
	free(key);
	free(dir);
	rm_rf(base);
	free(base);
}
END_TEST

START_TEST(open_refuses_a_dir_others_can_read)
{
	char *base = tmpdir(), *dir = path2(base, "open");
	struct aud_opts o = opts(dir);
	struct aud_log *log = (struct aud_log *)1;
	char err[512] = "";
	enum wd_err rc;

	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	rc = aud_open(&o, &log, err, sizeof(err));
	ck_assert_msg(rc != WD_OK, "opened a 0755 directory");
	ck_assert_int_eq(rc, WD_EPERM);
	ck_assert_ptr_null(log);
	ck_assert_msg(strstr(err, "0700") != NULL, "%s", err);
	/* Nothing was created in it. */
	{
		char *key = path2(dir, "payload.key");

		ck_assert_int_ne(access(key, F_OK), 0);
		free(key);
	}
	free(dir);
	rm_rf(base);
	free(base);
}
END_TEST

START_TEST(payload_digest_is_hmac_with_the_key_file)
{
	char *dir = tmpdir(), *keyp = path2(dir, "payload.key");
	struct aud_opts o = opts(dir);
	struct aud_log *log = open_ok(&o);
	static const char body[] = "{\"model\":\"gpt-4o\",\"messages\":[]}";
	char got[AUD_HASH_HEX + 1], pieces[AUD_HASH_HEX + 1], want[AUD_HASH_HEX + 1];
	unsigned char d[32];
	unsigned int dl = 32;
	size_t klen;
	char *key = slurp(keyp, &klen);
	struct aud_hmac *h;

	ck_assert_uint_eq(klen, 32);
	HMAC(EVP_sha256(), key, 32, (const unsigned char *)body, strlen(body), d,
	    &dl);
	wd_hex(d, 32, want);
	aud_payload_digest(log, body, strlen(body), got);
	ck_assert_str_eq(got, want);
	h = aud_hmac_new(log);
	ck_assert_ptr_nonnull(h);
	aud_hmac_update(h, body, 5);
	aud_hmac_update(h, body + 5, strlen(body) - 5);
	aud_hmac_final(h, pieces);
	ck_assert_str_eq(pieces, want);
	aud_close(log);
	/* The key survives a reopen. */
	log = open_ok(&o);
	aud_payload_digest(log, body, strlen(body), got);
	ck_assert_str_eq(got, want);
	aud_close(log);
	free(key);
	free(keyp);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * writer.c and verify.c: what is written verifies
 * ====================================================================== */

START_TEST(n_records_verify_in_order)
{
	char *dir = tmpdir(), *out;
	struct aud_opts o = opts(dir);
	struct aud_log *log = open_ok(&o);
	struct lines l;
	char prev[AUD_HASH_HEX + 1] = ZEROS, h[AUD_HASH_HEX + 1];
	int64_t now = (int64_t)wd_wall_us();
	enum { N = 25 };

	/* Submitted together: they go out in a few group commits. */
	for (int i = 1; i <= N; i++) {
		char tok[32];

		snprintf(tok, sizeof(tok), "tok-%d", i);
		aud_submit(log, req_rec("a", tok), NULL, NULL);
	}
	/* Defaults: kind request, ts now; a given ts is kept. */
	aud_submit(log, json_pack("{s:s,s:s}", "ts", "2026-01-02T03:04:05.000006Z",
	    "decision_id", "tok-last"), NULL, NULL);
	aud_close(log);
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "CONSISTENT: 26 records in 1 segment, last seq 26, "
	    "0 checkpoints") == out, "%s", out);
	free(out);
	l = log_lines(dir);
	ck_assert_uint_eq(l.n, N + 1);
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = line_json(l.v[i]);
		char tok[32];
		const char *ts = jstr(j, "ts");

		if (i < N)
			snprintf(tok, sizeof(tok), "tok-%zu", i + 1);
		else
			snprintf(tok, sizeof(tok), "tok-last");
		ck_assert_int_eq(jint(j, "seq"), (long long)i + 1);
		ck_assert_str_eq(jstr(j, "prev"), prev);
		ck_assert_str_eq(jstr(j, "decision_id"), tok);
		ck_assert_str_eq(jstr(j, "kind"), "request");
		ck_assert_str_eq(jstr(j, "instance"), "ut-instance");
		ck_assert_ptr_null(json_object_get(j, "hash"));
		/* 2026-11-25T13:12:10.660582Z */
		ck_assert_msg(ts != NULL && strlen(ts) == 27 && ts[10] == 'T' &&
		    ts[19] == '.' && ts[26] == 'Z', "ts %s", ts);
		if (i < N)
			ck_assert_msg(llabs((long long)(aud_parse_ts(ts) - now)) <
			    60000000LL, "ts %s is not now", ts);
		else
			ck_assert_str_eq(ts, "2026-01-02T03:04:05.000006Z");
		memcpy(prev, line_hash(l.v[i], h), sizeof(prev));
		json_decref(j);
	}
	lines_free(&l);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(chain_runs_across_rotated_segments)
{
	char *dir = tmpdir(), *out;
	size_t nsegs;
	char **segs;
	struct lines l;

	make_log(dir, 30, 1024);
	segs = aud_segments(dir, &nsegs);
	ck_assert_msg(nsegs >= 3, "%zu segments", nsegs);
	ck_assert_str_eq(segs[0], "audit-000001.jsonl");
	ck_assert_str_eq(segs[1], "audit-000002.jsonl");
	/* The first line of segment 2 links to the last of segment 1. */
	{
		char *p1 = path2(dir, segs[0]), *p2 = path2(dir, segs[1]);
		struct lines a = file_lines(p1), b = file_lines(p2);
		char h[AUD_HASH_HEX + 1];
		json_t *j = line_json(b.v[0]);

		ck_assert_str_eq(jstr(j, "prev"), line_hash(a.v[a.n - 1], h));
		ck_assert_int_eq(jint(j, "seq"), (long long)a.n + 1);
		/* A segment is closed once it passes the size. */
		ck_assert_int_ge(fsize(p1), 1024);
		json_decref(j);
		lines_free(&a);
		lines_free(&b);
		free(p1);
		free(p2);
	}
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "CONSISTENT: 30 records in ") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "last seq 30") != NULL, "%s", out);
	free(out);
	/* A reopen goes on where it stopped. */
	{
		struct aud_opts o = opts(dir);
		struct aud_log *log;

		o.segment_max_bytes = 1024;
		log = open_ok(&o);
		ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-31")), WD_OK);
		aud_close(log);
	}
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "last seq 31") != NULL, "%s", out);
	free(out);
	l = log_lines(dir);
	ck_assert_uint_eq(l.n, 31);
	lines_free(&l);
	/* A segment removed breaks the chain at the next one. */
	{
		char *p = path2(dir, segs[1]);

		ck_assert_int_eq(unlink(p), 0);
		free(p);
	}
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "INVALID") != NULL && strstr(out, segs[2]) !=
	    NULL && strstr(out, ":1: ") != NULL, "%s", out);
	free(out);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(torn_last_line_is_cut_and_recorded)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out;
	static const char torn[] = "{\"decision_id\":\"tok-6\",\"kind\":\"req";
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	struct lines l;
	off_t kept;
	char h[AUD_HASH_HEX + 1];

	make_log(dir, 5, 0);
	kept = fsize(seg);
	append(seg, torn);
	/* Before the restart, the verifier sees the torn line. */
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:6: torn last line") != NULL,
	    "%s", out);
	free(out);

	log = open_ok(&o);
	ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-after")), WD_OK);
	aud_close(log);

	l = log_lines(dir);
	ck_assert_uint_eq(l.n, 7);
	{
		json_t *rec = line_json(l.v[5]), *next = line_json(l.v[6]);

		ck_assert_str_eq(jstr(rec, "kind"), "recovery");
		ck_assert_int_eq(jint(rec, "seq"), 6);
		ck_assert_int_eq(jint(rec, "cut_bytes"), (long long)strlen(torn));
		ck_assert_int_eq(jint(rec, "kept_bytes"), (long long)kept);
		ck_assert_str_eq(jstr(rec, "segment"), "audit-000001.jsonl");
		ck_assert_ptr_nonnull(jstr(rec, "reason"));
		ck_assert_str_eq(jstr(rec, "prev"), line_hash(l.v[4], h));
		ck_assert_str_eq(jstr(next, "decision_id"), "tok-after");
		ck_assert_int_eq(jint(next, "seq"), 7);
		json_decref(rec);
		json_decref(next);
	}
	/* Nothing of the torn bytes is left. */
	for (size_t i = 0; i < l.n; i++)
		ck_assert_ptr_null(strstr(l.v[i], "\"tok-6\""));
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strncmp(out, "CONSISTENT: 7 records", 21) == 0, "%s", out);
	free(out);
	/* A clean reopen writes no recovery record. */
	log = open_ok(&o);
	aud_close(log);
	lines_free(&l);
	l = log_lines(dir);
	ck_assert_uint_eq(l.n, 7);
	lines_free(&l);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(torn_line_alone_in_the_newest_segment)
{
	char *dir = tmpdir(), *out, *last, name[32];
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	size_t nsegs;
	char **segs;
	struct lines l;

	make_log(dir, 12, 1024);
	segs = aud_segments(dir, &nsegs);
	/* A crash right after rotation: the new segment holds half a line. */
	snprintf(name, sizeof(name), "audit-%06zu.jsonl", nsegs + 1);
	last = path2(dir, name);
	spit(last, "{\"kind\":\"requ", 14);
	o.segment_max_bytes = 1024;
	log = open_ok(&o);
	ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-after")), WD_OK);
	aud_close(log);
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "last seq 14") != NULL, "%s", out);
	free(out);
	l = log_lines(dir);
	{
		json_t *rec = line_json(l.v[12]);

		ck_assert_str_eq(jstr(rec, "kind"), "recovery");
		ck_assert_int_eq(jint(rec, "cut_bytes"), 14);
		ck_assert_int_eq(jint(rec, "kept_bytes"), 0);
		ck_assert_str_eq(jstr(rec, "segment"), name);
		json_decref(rec);
	}
	lines_free(&l);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	free(last);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(damaged_middle_line_refuses_to_open)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out, *p;
	struct aud_opts o = opts(dir);
	struct aud_log *log = (struct aud_log *)1;
	char err[512] = "";
	struct lines l;

	make_log(dir, 5, 0);
	l = file_lines(seg);
	p = strstr(l.v[1], "tok-2");
	ck_assert_ptr_nonnull(p);
	p[4] = '9';			/* tok-9 */
	lines_write(seg, &l);
	ck_assert_int_eq(aud_open(&o, &log, err, sizeof(err)), WD_ECONFIG);
	ck_assert_ptr_null(log);
	ck_assert_msg(strstr(err, "line 2") != NULL, "%s", err);
	/* Refusing changed nothing. */
	{
		struct lines again = file_lines(seg);

		ck_assert_uint_eq(again.n, 5);
		ck_assert_str_eq(again.v[1], l.v[1]);
		lines_free(&again);
	}
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "INVALID: ") == out, "%s", out);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:2: seq 2: ") != NULL &&
	    strstr(out, "altered") != NULL, "%s", out);
	free(out);
	lines_free(&l);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * tampering: each kind is detected and named
 * ====================================================================== */

START_TEST(tamper_changed_byte_is_altered)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out, *p;
	struct lines l;

	make_log(dir, 6, 0);
	l = file_lines(seg);
	p = strstr(l.v[2], "\"tenant\":\"a\"");
	ck_assert_ptr_nonnull(p);
	p[10] = 'b';
	lines_write(seg, &l);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:3: seq 3: ") != NULL &&
	    strstr(out, "altered") != NULL, "%s", out);
	free(out);
	/* One changed digit of the hash itself is caught as well. */
	p[10] = 'a';
	p = l.v[3] + strlen(l.v[3]) - 3;
	*p = *p == '0' ? '1' : '0';
	lines_write(seg, &l);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:4: seq 4: ") != NULL,
	    "%s", out);
	free(out);
	lines_free(&l);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(tamper_deleted_line_is_missing)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out;
	struct lines l;

	make_log(dir, 6, 0);
	l = file_lines(seg);
	free(l.v[2]);
	l.v[2] = NULL;			/* seq 3 gone */
	lines_write(seg, &l);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:3: ") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "seq 4") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "missing or reordered") != NULL,
	    "a deleted line is not named as missing: %s", out);
	free(out);
	lines_free(&l);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(tamper_swapped_lines_are_reordered)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out, *t;
	struct lines l;

	make_log(dir, 6, 0);
	l = file_lines(seg);
	t = l.v[2];
	l.v[2] = l.v[3];
	l.v[3] = t;
	lines_write(seg, &l);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:3: ") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "missing or reordered") != NULL,
	    "swapped lines are not named as reordered: %s", out);
	free(out);
	lines_free(&l);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(tamper_appended_and_truncated)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out;
	char hash[AUD_HASH_HEX + 1], fake[AUD_HASH_HEX + 1];
	json_t *r = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)7, "kind",
	    "request", "tenant", "a");
	size_t len;
	char *line;
	off_t size;

	make_log(dir, 6, 0);
	size = fsize(seg);
	/* Appended after the fact, well formed but chained to nothing. */
	memset(fake, 'f', AUD_HASH_HEX);
	fake[AUD_HASH_HEX] = '\0';
	line = line_of(r, fake, hash, &len);
	append(seg, line);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:7: seq 7: prev") != NULL,
	    "%s", out);
	free(out);
	/* Cut in the middle of a line. */
	ck_assert_int_eq(truncate(seg, size - 30), 0);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, "audit-000001.jsonl:6: torn last line") != NULL,
	    "%s", out);
	free(out);
	/* Not ours at all. */
	ck_assert_int_eq(truncate(seg, 0), 0);
	append(seg, "hello\n");
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, ":1: not an audit record") != NULL, "%s", out);
	free(out);
	free(line);
	json_decref(r);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * checkpoints: a software ECDSA P-256 signer
 * ====================================================================== */

static char *
write_pem(const char *dir, const char *name, const char *pem)
{
	char *p = path2(dir, name);

	spit(p, pem, strlen(pem));
	return p;
}

START_TEST(checkpoints_every_n_and_at_close)
{
	char *dir = tmpdir(), *pub, *other, *out;
	struct soft_key k, k2;
	struct lines l;
	char keyid[AUD_HASH_HEX + 1];
	unsigned char kd[32];
	/* r r r C r r r C r C */
	static const int cp_at[] = { 4, 8, 10 };

	soft_key_init(&k);
	soft_key_init(&k2);
	make_signed_log(dir, &k, "aaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	other = write_pem(dir, "other.pem", k2.pem);
	wd_sha256(k.pem, strlen(k.pem), kd);
	wd_hex(kd, 32, keyid);

	l = log_lines(dir);
	ck_assert_uint_eq(l.n, 10);
	for (size_t i = 0, c = 0; i < l.n; i++) {
		json_t *j = line_json(l.v[i]);
		bool is_cp = c < 3 && (size_t)cp_at[c] == i + 1;

		ck_assert_msg(strcmp(jstr(j, "kind"), is_cp ? "checkpoint" :
		    "request") == 0, "line %zu is %s", i + 1, jstr(j, "kind"));
		if (is_cp) {
			char root[AUD_HASH_HEX + 1];

			/* Version 2: the tree of every record before it. */
			ck_assert_int_eq(jint(j, "v"), 2);
			ck_assert_int_eq(jint(j, "tree_size"), (long long)i);
			lines_root(&l, i, root);
			ck_assert_str_eq(jstr(j, "root"), root);
			ck_assert_str_eq(jstr(j, "key_id"), keyid);
			ck_assert_str_eq(jstr(j, "pubkey"), k.pem);
			ck_assert_int_eq(jint(j, "interval_s"), 60);
			ck_assert(json_is_null(json_object_get(j, "counter")));
			ck_assert_ptr_nonnull(jstr(j, "signature"));
			c++;
		}
		json_decref(j);
	}
	ck_assert_int_eq(verify(dir, pub, &out), AUD_VERIFIED);
	ck_assert_msg(strstr(out, "OK: 10 records") == out &&
	    strstr(out, "3 checkpoints verified with the trusted key; every "
	    "record is covered") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "NOT AUTHENTICATED") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(verify(dir, other, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "INVALID") == out && strstr(out, ":4: seq 4: "
	    "checkpoint signature does not verify") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(verify(dir, "/nonexistent/pub.pem", &out), 2);
	free(out);
	lines_free(&l);
	free(pub);
	free(other);
	soft_key_free(&k);
	soft_key_free(&k2);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Run a shell command; its exit code. */
static int
sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(checkpoint_verifies_with_openssl_cli)
{
	char *dir = tmpdir(), *pub, *msgp, *sigp, *b64p, *cmd;
	struct soft_key k;
	struct lines l;
	json_t *cp;
	char msg[256];

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	l = log_lines(dir);
	cp = line_json(l.v[3]);
	ck_assert_str_eq(jstr(cp, "kind"), "checkpoint");
	/* Exactly FORMAT.md's recipe: the tree head, line by line. */
	snprintf(msg, sizeof(msg), "warden-audit-tree-head/2\n%lld\n%s\n%lld\n"
	    "none\n%lld\n", jint(cp, "tree_size"), jstr(cp, "root"),
	    jint(cp, "time_us"), jint(cp, "interval_s"));
	msgp = write_pem(dir, "msg", msg);
	b64p = path2(dir, "sig.b64");
	sigp = path2(dir, "sig.der");
	spit(b64p, jstr(cp, "signature"), strlen(jstr(cp, "signature")));
	append(b64p, "\n");
	ck_assert(asprintf(&cmd, "base64 -d %s > %s", b64p, sigp) >= 0);
	ck_assert_int_eq(sh(cmd), 0);
	free(cmd);
	ck_assert(asprintf(&cmd, "openssl dgst -sha256 -verify %s -signature %s "
	    "%s >/dev/null 2>&1", pub, sigp, msgp) >= 0);
	ck_assert_int_eq(sh(cmd), 0);
	/* Another message does not verify. */
	msg[25] = msg[25] == '9' ? '8' : (char)(msg[25] + 1);
	spit(msgp, msg, strlen(msg));
	ck_assert_int_ne(sh(cmd), 0);
	free(cmd);
	json_decref(cp);
	lines_free(&l);
	free(pub);
	free(msgp);
	free(sigp);
	free(b64p);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

static void
edit_forge(json_t *rec, size_t idx, const char *prev)
{
	/* Record 2 changes its tenant; checkpoints are made to sign the
	 * rewritten chain (their signatures cannot follow). */
	(void)prev;
	if (idx == 1)
		json_object_set_new(rec, "tenant", json_string("forged"));
	if (strcmp(jstr(rec, "kind"), "checkpoint") == 0)
		json_object_set_new(rec, "root", json_string(forge_root));
}

START_TEST(rechained_forgery_is_caught_by_signatures)
{
	char *dir = tmpdir(), *pub, *out;
	struct soft_key k;

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	rechain(dir, edit_forge);
	/* The chain alone holds: whoever can write can re-chain. */
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	free(out);
	ck_assert_int_eq(verify(dir, pub, &out), 1);
	ck_assert_msg(strstr(out, ":4: seq 4: checkpoint signature does not "
	    "verify") != NULL, "%s", out);
	free(out);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

static const char *replay_sig;

static void
edit_replay(json_t *rec, size_t idx, const char *prev)
{
	/* The second checkpoint carries the first one's signature; later
	 * checkpoints sign the rewritten chain. */
	(void)prev;
	if (idx == 7)
		json_object_set_new(rec, "signature", json_string(replay_sig));
	if (strcmp(jstr(rec, "kind"), "checkpoint") == 0)
		json_object_set_new(rec, "root", json_string(forge_root));
}

START_TEST(replayed_checkpoint_is_caught)
{
	char *dir = tmpdir(), *pub, *out, *seg;
	struct soft_key k;
	struct lines l;
	json_t *cp;
	char *line, hash[AUD_HASH_HEX + 1], prev[AUD_HASH_HEX + 1];
	size_t len;

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	seg = path2(dir, "audit-000001.jsonl");
	l = log_lines(dir);
	/* The first checkpoint again at the end, chained properly. */
	cp = line_json(l.v[3]);
	json_object_set_new(cp, "seq", json_integer(11));
	line = line_of(cp, line_hash(l.v[9], prev), hash, &len);
	append(seg, line);
	ck_assert_int_eq(verify(dir, NULL, &out), 1);
	ck_assert_msg(strstr(out, ":11: seq 11: checkpoint signs a tree of 3 "
	    "records after one of 9: replayed") != NULL, "%s", out);
	free(out);
	free(line);
	json_decref(cp);
	/* Its signature on another checkpoint, the chain rewritten. */
	ck_assert_int_eq(truncate(seg, fsize(seg) - (off_t)len), 0);
	cp = line_json(l.v[3]);
	replay_sig = jstr(cp, "signature");
	rechain(dir, edit_replay);
	ck_assert_msg(verify(dir, NULL, &out) == AUD_UNAUTHENTICATED, "%s", out);
	free(out);
	ck_assert_int_eq(verify(dir, pub, &out), 1);
	ck_assert_msg(strstr(out, ":8: seq 8: checkpoint signature does not "
	    "verify") != NULL, "%s", out);
	free(out);
	json_decref(cp);
	lines_free(&l);
	free(seg);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

static const char *odd_sig;

static void
edit_odd_sig(json_t *rec, size_t idx, const char *prev)
{
	(void)prev;
	if (idx == 3)
		json_object_set_new(rec, "signature", json_string(odd_sig));
}

START_TEST(malformed_signatures_are_invalid_not_a_crash)
{
	char all[341];
	const char *sigs[] = { "", "=", "====", "Q===", "!!!!", "AAAA",
		"MEUCIQ", all };
	char *dir = tmpdir(), *pub, *out;
	struct soft_key k;

	memset(all, '=', 340);
	all[340] = '\0';
	soft_key_init(&k);
	pub = write_pem(dir, "pub.pem", k.pem);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		char *logdir = path2(dir, "log");

		odd_sig = sigs[i];
		make_signed_log(logdir, &k, "aaa");
		rechain(logdir, edit_odd_sig);
		ck_assert_int_eq(verify(logdir, pub, &out), 1);
		ck_assert_msg(strstr(out, ":4: seq 4: checkpoint signature does "
		    "not verify") != NULL, "sig '%s': %s", odd_sig, out);
		free(out);
		rm_rf(logdir);
		free(logdir);
	}
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * exports
 * ====================================================================== */

static char *
export(const char *dir, const char *fmt, const char *tenant, int64_t since,
    struct soft_key *k)
{
	struct aud_export_opts o = { .format = fmt, .tenant = tenant,
		.since_us = since, .signer = k ? &k->signer : NULL };
	char *path = path2(dir, strcmp(fmt, "csv") == 0 ? "export.csv" :
	    "export.jsonl");
	FILE *devnull = fopen("/dev/null", "w");

	ck_assert_int_eq(aud_export(dir, &o, path, devnull), 0);
	fclose(devnull);
	return path;
}

/* The base64 DER signature of "warden-audit-export/2\n" + m with k. */
static char *
sign_manifest(struct soft_key *k, const char *m)
{
	unsigned char sig[160];
	size_t sl = sizeof(sig);
	char *msg, *b64 = malloc(256);

	ck_assert(asprintf(&msg, "warden-audit-export/2\n%s", m) >= 0);
	ck_assert_int_eq(soft_sign(k->key, (unsigned char *)msg, strlen(msg), sig,
	    &sl), WD_OK);
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)sl);
	free(msg);
	return b64;
}

/*
 * An export made again by someone who can sign with k (an insider with
 * the key): the manifest edited by man_edit (may be NULL), body_sha256
 * recomputed over the rows as they now are, and signed with k.
 */
static void
resign(const char *path, struct soft_key *k, void (*man_edit)(json_t *m))
{
	size_t len;
	char *text = slurp(path, &len), *nl1, *nl2, *m, *b64, dh[65];
	bool csv = text[0] == '#';
	unsigned char d[32];
	json_t *man;
	FILE *f;

	nl1 = strchr(text, '\n');
	nl2 = strchr(nl1 + 1, '\n');
	*nl1 = '\0';
	man = json_loads(text + (csv ? 2 : 0), 0, NULL);
	ck_assert_ptr_nonnull(man);
	if (man_edit != NULL)
		man_edit(man);
	wd_sha256(nl2 + 1, len - (size_t)(nl2 + 1 - text), d);
	wd_hex(d, 32, dh);
	json_object_set_new(man, "body_sha256", json_string(dh));
	json_object_set_new(man, "pubkey", json_string(k->pem));
	m = json_dumps(man, JSON_COMPACT | JSON_SORT_KEYS);
	b64 = sign_manifest(k, m);
	f = fopen(path, "wb");
	fprintf(f, "%s%s\n%s{\"kind\":\"export_signature\",\"signature\":\"%s\"}"
	    "\n", csv ? "# " : "", m, csv ? "# " : "", b64);
	fwrite(nl2 + 1, 1, len - (size_t)(nl2 + 1 - text), f);
	ck_assert_int_eq(fclose(f), 0);
	free(m);
	free(b64);
	json_decref(man);
	free(text);
}

/* The stub export writes for a log line. */
static char *
stub_of(const char *line)
{
	json_t *j = line_json(line);
	char h[AUD_HASH_HEX + 1], lh[AUD_HASH_HEX + 1], *c, *s;
	size_t clen;
	unsigned char leaf[32];

	c = aud_split_line(line, strlen(line), h, &clen);
	aud_leaf_hash(c, clen, leaf);
	wd_hex(leaf, 32, lh);
	ck_assert(asprintf(&s, "{\"hash\":\"%s\",\"leaf\":\"%s\",\"prev\":\"%s\","
	    "\"seq\":%lld,\"stub\":true}", h, lh, jstr(j, "prev"),
	    jint(j, "seq")) >= 0);
	free(c);
	json_decref(j);
	return s;
}

START_TEST(export_one_tenant_verifies_alone)
{
	char *dir = tmpdir(), *path, *out, *pub;
	struct soft_key k;
	struct lines log, ex;
	json_t *hdr;
	size_t full = 0, stubs = 0;

	soft_key_init(&k);
	/* seq: a b a C b a b C a C */
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	log = log_lines(dir);
	path = export(dir, "jsonl", "a", 0, &k);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_VERIFIED);
	ck_assert_msg(strstr(out, "OK: 7 records and 3 stubs") == out &&
	    strstr(out, "verified with the trusted key") != NULL, "%s", out);
	free(out);
	/* Without a key: consistent, not authenticated. */
	ck_assert_int_eq(verify_export(path, &out), AUD_UNAUTHENTICATED);
	free(out);

	ex = file_lines(path);
	ck_assert_uint_eq(ex.n, log.n + 2);
	hdr = json_loads(ex.v[0], 0, NULL);
	ck_assert_str_eq(jstr(hdr, "kind"), "export");
	ck_assert_int_eq(jint(hdr, "format"), 2);
	ck_assert_str_eq(jstr(hdr, "anchor"), ZEROS);
	ck_assert_str_eq(jstr(hdr, "tenant"), "a");
	ck_assert_str_eq(jstr(hdr, "pubkey"), k.pem);
	ck_assert_int_eq(jint(hdr, "first_seq"), 1);
	ck_assert_int_eq(jint(hdr, "last_seq"), 10);
	for (size_t i = 2; i < ex.n; i++) {
		if (strstr(log.v[i - 2], "\"tenant\":\"b\"") != NULL) {
			/* Another tenant's record: its place only. */
			char *want = stub_of(log.v[i - 2]);

			ck_assert_str_eq(ex.v[i], want);
			free(want);
			stubs++;
		} else {
			ck_assert_str_eq(ex.v[i], log.v[i - 2]);
			full++;
		}
	}
	ck_assert_uint_eq(stubs, 3);
	ck_assert_uint_eq(full, 7);
	ck_assert_int_eq(jint(hdr, "records"), (long long)full);
	ck_assert_int_eq(jint(hdr, "stubs"), (long long)stubs);
	{
		char *text = slurp(path, NULL);

		ck_assert_ptr_null(strstr(text, "\"tenant\":\"b\""));
		ck_assert_ptr_null(strstr(text, "tok-2\""));
		ck_assert_ptr_null(strstr(text, "tok-4\""));
		ck_assert_ptr_nonnull(strstr(text, "tok-3\""));
		free(text);
	}
	json_decref(hdr);
	lines_free(&ex);
	lines_free(&log);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Issue 11: a full record followed by a stub, rewritten, the stub's prev
 * made to match, the manifest made again (root and all) by someone who
 * can even sign: the checkpoint signed when the record was written does
 * not hold.  (Format 1 stubs had no prev or leaf: this went through.) */
static char forged_root[AUD_HASH_HEX + 1];

static void
set_forged_root(json_t *m)
{
	json_object_set_new(m, "root", json_string(forged_root));
	json_object_set_new(m, "last_hash", json_string(jstr(m, "last_hash")));
}

START_TEST(export_rewrite_before_a_stub_is_detected)
{
	char *dir = tmpdir(), *path, *out, *pub, *p, *line, *stub;
	char hash[AUD_HASH_HEX + 1];
	struct soft_key k;
	struct lines ex;
	json_t *r6, *st;
	size_t len;

	soft_key_init(&k);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "jsonl", "a", 0, &k);
	ex = file_lines(path);
	/* Row 8 is seq 6 (tenant a), row 9 the stub of seq 7 (tenant b). */
	r6 = line_json(ex.v[7]);
	ck_assert_int_eq(jint(r6, "seq"), 6);
	ck_assert_ptr_nonnull(strstr(ex.v[8], "\"stub\":true"));
	json_object_set_new(r6, "verdict", json_string("deny"));
	{
		char prev6[AUD_HASH_HEX + 1];

		snprintf(prev6, sizeof(prev6), "%s", jstr(r6, "prev"));
		line = line_of(r6, prev6, hash, &len);
	}
	line[len - 1] = '\0';
	free(ex.v[7]);
	ex.v[7] = line;
	st = json_loads(ex.v[8], 0, NULL);
	json_object_set_new(st, "prev", json_string(hash));
	stub = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	free(ex.v[8]);
	ex.v[8] = stub;
	lines_write(path, &ex);
	/* The chain holds again from the stub on. */
	p = strstr(ex.v[9], "\"prev\":\"");
	ck_assert_ptr_nonnull(p);
	{
		/* The root the rewritten rows give (the forger can compute it
		 * too): every leaf, recomputed as a verifier would. */
		struct aud_frontier f = { 0 };
		unsigned char r[32];

		for (size_t i = 2; i < ex.n; i++) {
			unsigned char leaf[32];
			json_t *sj = json_loads(ex.v[i], 0, NULL);

			if (json_is_true(json_object_get(sj, "stub"))) {
				ck_assert_int_eq(wd_unhex(jstr(sj, "leaf"), leaf, 32), WD_OK);
			} else {
				char h2[AUD_HASH_HEX + 1], *c;
				size_t cl;

				c = aud_split_line(ex.v[i], strlen(ex.v[i]), h2, &cl);
				aud_leaf_hash(c, cl, leaf);
				free(c);
			}
			json_decref(sj);
			aud_frontier_push(&f, leaf, NULL, NULL);
		}
		aud_frontier_root(&f, r);
		wd_hex(r, 32, forged_root);
	}
	resign(path, &k, set_forged_root);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "seq 8: checkpoint's tree root does not match")
	    != NULL, "%s", out);
	free(out);
	json_decref(r6);
	json_decref(st);
	lines_free(&ex);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Issue 11: an export signed with the forger's own key, its public key in
 * the header: only the auditor's key (or pin) counts. */
/* audit/verify.py with any arguments: its exit status. */
static int
pyv(const char *fmt, ...)
{
	char *args, *cmd;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	ck_assert(vasprintf(&args, fmt, ap) >= 0);
	va_end(ap);
	ck_assert(asprintf(&cmd, "python3 audit/verify.py %s >/dev/null 2>&1",
	    args) >= 0);
	rc = sh(cmd);
	free(cmd);
	free(args);
	return rc;
}

START_TEST(export_with_its_own_key_in_the_header_is_detected)
{
	char *dir = tmpdir(), *path, *out, *pub, pin[AUD_HASH_HEX + 1];
	struct soft_key k, k2;
	struct lines ex;
	struct aud_verify_opts o = { 0 };
	FILE *m;
	char *buf = NULL;
	size_t blen = 0;

	soft_key_init(&k);
	soft_key_init(&k2);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "jsonl", "a", 0, &k);
	/* A record's tenant edited; the whole export made again with k2. */
	ex = file_lines(path);
	free(ex.v[2]);
	ex.v[2] = strdup(ex.v[3]);	/* anything: the chain is redone below */
	lines_free(&ex);
	resign(path, &k2, NULL);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "manifest's signature does not verify with the "
	    "trusted key") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(aud_key_fingerprint(k.pem, strlen(k.pem), pin), WD_OK);
	o.pin = pin;
	m = open_memstream(&buf, &blen);
	ck_assert_int_eq(aud_verify_export(path, &o, m), AUD_INVALID);
	fclose(m);
	ck_assert_msg(strstr(buf, "not the pinned one") != NULL, "%s", buf);
	free(buf);
	/* The independent verifier: the same pin refuses the forger's key. */
	ck_assert_int_eq(pyv("export %s --pin %s", path, pin), 1);
	/* The right pin on the right export verifies. */
	free(path);
	path = export(dir, "jsonl", "a", 0, &k);
	buf = NULL;
	m = open_memstream(&buf, &blen);
	ck_assert_int_eq(aud_verify_export(path, &o, m), AUD_VERIFIED);
	fclose(m);
	free(buf);
	ck_assert_int_eq(pyv("export %s --pin %s", path, pin), 0);
	ck_assert_int_eq(pyv("log %s --pin %s", dir, pin), 0);
	free(path);
	free(pub);
	soft_key_free(&k);
	soft_key_free(&k2);
	rm_rf(dir);
	free(dir);
}
END_TEST

static void
fewer_records(json_t *m)
{
	json_object_set_new(m, "records", json_integer(jint(m, "records") - 1));
	json_object_set_new(m, "stubs", json_integer(jint(m, "stubs") + 1));
}

/* Issue 11: a tenant's own record replaced by its stub (which would
 * still chain and count in the tree), header counts edited. */
START_TEST(export_hidden_own_record_is_detected)
{
	char *dir = tmpdir(), *path, *out, *pub;
	struct soft_key k;
	struct lines ex, orig;
	json_t *hdr;
	FILE *f;

	soft_key_init(&k);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "jsonl", "a", 0, &k);
	orig = file_lines(path);
	ex = file_lines(path);
	/* Row 4 is seq 3, tenant a. */
	free(ex.v[4]);
	ex.v[4] = stub_of(orig.v[4]);
	hdr = json_loads(ex.v[0], 0, NULL);
	fewer_records(hdr);
	free(ex.v[0]);
	ex.v[0] = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(hdr);
	lines_write(path, &ex);
	/* Counts edited, signature not redone. */
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "manifest's signature does not verify") != NULL,
	    "%s", out);
	free(out);
	/* Even re-signed (an insider with the key), the manifest's list of
	 * seqs given in full says seq 3 was. */
	resign(path, &k, NULL);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "seq 3 is a stub, but the signed manifest says "
	    "it was exported in full") != NULL, "%s", out);
	free(out);
	/* Counts alone edited in the original. */
	lines_write(path, &orig);
	ck_assert_int_eq(verify_export_key(path, pub, NULL), AUD_VERIFIED);
	resign(path, &k, fewer_records);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "not where the manifest says") != NULL, "%s",
	    out);
	free(out);
	/* Rows appended after the end. */
	lines_write(path, &orig);
	f = fopen(path, "ab");
	fprintf(f, "%s\n", orig.v[orig.n - 1]);
	fclose(f);
	ck_assert_int_eq(verify_export_key(path, pub, NULL), AUD_INVALID);
	lines_free(&ex);
	lines_free(&orig);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(export_tampering_is_detected)
{
	char *dir = tmpdir(), *path, *out, *p, *pub;
	struct soft_key k;
	struct lines ex, orig;

	soft_key_init(&k);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "jsonl", "a", 0, &k);
	orig = file_lines(path);

	/* One byte of a full record: the rows' digest. */
	ex = file_lines(path);
	p = strstr(ex.v[4], "tok-3");
	ck_assert_ptr_nonnull(p);
	p[4] = '5';
	lines_write(path, &ex);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "body_sha256") != NULL, "%s", out);
	free(out);
	/* Without a key the record's own hash still tells. */
	resign(path, &k, NULL);
	ck_assert_int_eq(verify_export(path, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, ":5: seq 3: ") != NULL &&
	    strstr(out, "altered") != NULL, "%s", out);
	free(out);
	lines_free(&ex);

	/* A stub's hash (seq 2, followed by a full record). */
	lines_write(path, &orig);
	ex = file_lines(path);
	ck_assert_ptr_nonnull(strstr(ex.v[3], "\"stub\":true"));
	p = strstr(ex.v[3], "\"hash\":\"") + 8;
	*p = *p == '0' ? '1' : '0';
	lines_write(path, &ex);
	resign(path, &k, NULL);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, ":5: seq 3: prev") != NULL, "%s", out);
	free(out);
	lines_free(&ex);

	/* The original again verifies. */
	lines_write(path, &orig);
	ck_assert_int_eq(verify_export_key(path, pub, NULL), AUD_VERIFIED);
	lines_free(&orig);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(export_truncated_is_detected)
{
	char *dir = tmpdir(), *path, *out, *pub;
	struct soft_key k;
	struct lines ex;

	soft_key_init(&k);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "jsonl", "a", 0, &k);
	ex = file_lines(path);
	/* The manifest promises N records and M stubs; the last ones go. */
	free(ex.v[ex.n - 1]);
	ex.v[ex.n - 1] = NULL;
	free(ex.v[ex.n - 2]);
	ex.v[ex.n - 2] = NULL;
	lines_write(path, &ex);
	ck_assert_msg(verify_export_key(path, pub, &out) == AUD_INVALID,
	    "an export missing its last records verifies: %s", out);
	free(out);
	/* Re-signed by an insider: still short of what it says. */
	resign(path, &k, NULL);
	ck_assert_msg(verify_export_key(path, pub, &out) == AUD_INVALID,
	    "an export missing its last records verifies: %s", out);
	free(out);
	lines_free(&ex);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(export_since_starts_at_an_anchor)
{
	char *dir = tmpdir(), *path, *out, *pub;
	struct soft_key k;
	struct lines log, ex;
	json_t *hdr, *r4;
	char h[AUD_HASH_HEX + 1];

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	log = log_lines(dir);
	/* a a a C a a a C a a C: from seq 5 on. */
	r4 = line_json(log.v[4]);
	path = export(dir, "jsonl", NULL, aud_parse_ts(jstr(r4, "ts")), &k);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_VERIFIED);
	ck_assert_msg(strstr(out, "OK: 7 records and 0 stubs from seq 5 to 11")
	    == out, "%s", out);
	free(out);
	ex = file_lines(path);
	hdr = json_loads(ex.v[0], 0, NULL);
	ck_assert_str_eq(jstr(hdr, "anchor"), line_hash(log.v[3], h));
	ck_assert_int_eq(json_array_size(json_object_get(hdr, "base")), 1);
	ck_assert_str_eq(ex.v[2], log.v[4]);
	json_decref(hdr);
	json_decref(r4);
	lines_free(&ex);
	lines_free(&log);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* A range with nothing in it is an empty export, and a valid one. */
START_TEST(empty_export_verifies)
{
	char *dir = tmpdir(), *path, *out;
	struct lines ex;
	json_t *hdr;

	make_log(dir, 3, 0);
	/* 2100-01-01T00:00:00Z: after everything. */
	path = export(dir, "jsonl", NULL, 4102444800LL * 1000000, NULL);
	ex = file_lines(path);
	ck_assert_uint_eq(ex.n, 2);
	hdr = json_loads(ex.v[0], 0, NULL);
	ck_assert_int_eq(jint(hdr, "records"), 0);
	ck_assert_int_eq(jint(hdr, "stubs"), 0);
	ck_assert_msg(verify_export(path, &out) == AUD_UNAUTHENTICATED, "an empty "
	    "export does not verify: %s", out);
	free(out);
	json_decref(hdr);
	lines_free(&ex);
	free(path);
	rm_rf(dir);
	free(dir);
}
END_TEST

static void
csv_edit_tenant(json_t *m)
{
	(void)m;
}

START_TEST(csv_export_verifies_and_detects_tampering)
{
	char *dir = tmpdir(), *path, *out, *p, *pub;
	struct soft_key k;
	struct lines ex, orig;

	soft_key_init(&k);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	path = export(dir, "csv", "a", 0, &k);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_VERIFIED);
	ck_assert_msg(strstr(out, "OK: 7 records and 3 stubs") == out, "%s", out);
	free(out);
	orig = file_lines(path);
	ck_assert_msg(strncmp(orig.v[0], "# {", 3) == 0, "%s", orig.v[0]);
	ck_assert_msg(strncmp(orig.v[1], "# {", 3) == 0, "%s", orig.v[1]);
	ck_assert_str_eq(orig.v[2], "seq,ts,kind,tenant,verdict,route,hash,record");
	ck_assert_uint_eq(orig.n, 13);
	{
		char *text = slurp(path, NULL);

		ck_assert_ptr_null(strstr(text, "\"\"tenant\"\":\"\"b\"\""));
		ck_assert_ptr_nonnull(strstr(text, "\"\"tenant\"\":\"\"a\"\""));
		free(text);
	}
	ck_assert_msg(strncmp(orig.v[4], "\"2\",\"\",\"stub\"", 13) == 0, "%s",
	    orig.v[4]);

	/* A byte of a record. */
	ex = file_lines(path);
	p = strstr(ex.v[5], "tok-3");
	ck_assert_ptr_nonnull(p);
	p[4] = '5';
	lines_write(path, &ex);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "INVALID") == out, "%s", out);
	free(out);
	lines_free(&ex);

	/* Issue 11: a column edited, the record it shows left alone (and
	 * the manifest made again): the column must say what the record
	 * says. */
	lines_write(path, &orig);
	ex = file_lines(path);
	p = strstr(ex.v[5], ",\"a\",\"allow\"");
	ck_assert_msg(p != NULL, "%s", ex.v[5]);
	p[2] = 'b';
	lines_write(path, &ex);
	resign(path, &k, csv_edit_tenant);
	ck_assert_int_eq(verify_export_key(path, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "seq 3: a column does not say what the record "
	    "it shows says") != NULL, "%s", out);
	free(out);
	lines_free(&ex);

	lines_free(&orig);
	free(path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * the writer: done, failure, recovery
 * ====================================================================== */

START_TEST(done_fires_after_the_record_is_on_disk)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl");
	struct aud_opts o = opts(dir);
	struct aud_log *log = open_ok(&o);

	for (int i = 0; i < 20; i++) {
		struct waiter w;
		char tok[48], needle[80];

		snprintf(tok, sizeof(tok), "tok-done-%d", i);
		snprintf(needle, sizeof(needle), "\"decision_id\":\"%s\"", tok);
		waiter_init(&w);
		w.path = seg;
		w.token = needle;
		aud_submit(log, json_pack("{s:s}", "decision_id", tok),
		    waiter_done, &w);
		ck_assert(waiter_wait(&w, 5000));
		ck_assert_int_eq(w.rc, WD_OK);
		ck_assert_int_eq(w.calls, 1);
		ck_assert_msg(w.on_disk, "done(%d) came before the record was "
		    "in the file", i);
	}
	aud_close(log);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

/*
 * The child: a log whose segment cannot grow (RLIMIT_FSIZE, SIGXFSZ
 * ignored as warden does), then can again.  Exit codes name the step
 * that failed.
 */
static int
fsize_child(const char *dir)
{
	struct aud_opts o = opts(dir);
	struct aud_log *log = NULL;
	struct rlimit rl;
	struct waiter w, q[3];
	char err[256], *seg = path2(dir, "audit-000001.jsonl");
	struct stat st;
	int i;

	signal(SIGXFSZ, SIG_IGN);
	if (aud_open(&o, &log, err, sizeof(err)) != WD_OK)
		return 10;
	if (stat(seg, &st) != 0)
		return 11;
	rl.rlim_cur = (rlim_t)st.st_size + 40;	/* not a whole record */
	rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 12;
	waiter_init(&w);
	aud_submit(log, req_rec("a", "tok-fail-1"), waiter_done, &w);
	if (!waiter_wait(&w, 5000))
		return 13;
	if (w.rc != WD_EIO)
		return 14;
	if (aud_healthy(log))
		return 15;
	if (aud_last_error(log)[0] == '\0')
		return 16;
	/* Nothing half written stays behind. */
	if (stat(seg, &st) != 0 || st.st_size + 40 != (off_t)rl.rlim_cur)
		return 17;
	for (i = 0; i < 3; i++) {
		char tok[32];

		snprintf(tok, sizeof(tok), "tok-queued-%d", i);
		waiter_init(&q[i]);
		aud_submit(log, req_rec("a", tok), waiter_done, &q[i]);
	}
	usleep(300000);
	if (aud_healthy(log))
		return 18;
	rl.rlim_cur = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 19;
	/* The writer retries by itself (every second). */
	for (i = 0; i < 50 && !aud_healthy(log); i++)
		usleep(100000);
	if (!aud_healthy(log))
		return 20;
	waiter_init(&w);
	aud_submit(log, req_rec("a", "tok-after"), waiter_done, &w);
	if (!waiter_wait(&w, 5000) || w.rc != WD_OK)
		return 21;
	aud_close(log);
	free(seg);
	return 0;
}

/*
 * A batch the disk cannot take (RLIMIT_FSIZE leaves room for part of it)
 * is written not at all: every record of it comes back unwritten, the
 * file is cut back to where it was, the log turns unhealthy and takes no
 * batch until it is healthy again.  In a child: the limit is the
 * process's.
 */
static int
batch_fsize_child(const char *dir)
{
	struct aud_opts o = opts(dir);
	struct aud_log *log = NULL;
	struct aud_canon cs[5];
	bool written[5];
	struct rlimit rl;
	char err[256], *seg = path2(dir, "audit-000001.jsonl");
	struct stat st;

	signal(SIGXFSZ, SIG_IGN);
	if (aud_open(&o, &log, err, sizeof(err)) != WD_OK)
		return 10;
	if (stat(seg, &st) != 0)
		return 11;
	/* Room for about two of the five. */
	rl.rlim_cur = (rlim_t)st.st_size + 700;
	rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 12;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 5; i++) {
			char tok[48];

			snprintf(tok, sizeof(tok), "tok-batch-%d-%d", round, i);
			aud_canon_begin(&cs[i], log);
			aud_canon_key(&cs[i], "decision_id");
			aud_canon_str(&cs[i], tok);
			aud_canon_key(&cs[i], "kind");
			aud_canon_str(&cs[i], "request");
			aud_canon_key(&cs[i], "pad");
			aud_canon_str(&cs[i], "0123456789012345678901234567890123"
			    "45678901234567890123456789012345678901234567890123");
		}
		if (aud_try_append_canons(log, cs, 5, written) != WD_EIO)
			return 13;
		for (int i = 0; i < 5; i++)
			if (written[i])
				return 14;
		if (aud_healthy(log))
			return 15;
		/* Nothing of the batch stayed in the file. */
		if (stat(seg, &st) != 0 ||
		    st.st_size + 700 != (off_t)rl.rlim_cur)
			return 16;
	}
	rl.rlim_cur = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 17;
	aud_close(log);
	free(seg);
	return 0;
}

/*
 * child(dir) run in a process of its own (its file size limit must not
 * hold for the test runner): it must exit 0; any other status is named by
 * why[status] (n entries).
 */
static void
run_child(const char *dir, int (*child)(const char *), const char *const *why,
    size_t n)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child(dir));
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st), "child died of signal %d",
	    WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	ck_assert_msg(WEXITSTATUS(st) == 0, "child: %s (%d)",
	    (size_t)WEXITSTATUS(st) < n && why[WEXITSTATUS(st)] ?
	    why[WEXITSTATUS(st)] : "?", WEXITSTATUS(st));
}

START_TEST(failed_batch_leaves_nothing_behind)
{
	char *dir = tmpdir(), *out;
	static const char *const why[] = {
		[10] = "aud_open failed", [11] = "no segment",
		[12] = "setrlimit", [13] = "the batch did not fail with WD_EIO",
		[14] = "a record of the failed batch says written",
		[15] = "still healthy", [16] = "part of the batch stayed in "
		"the file", [17] = "setrlimit (raise)",
	};

	make_log(dir, 4, 0);
	run_child(dir, batch_fsize_child, why, sizeof(why) / sizeof(*why));
	/* The log holds what it held before, and verifies. */
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strstr(out, "tok-batch") == NULL, "%s", out);
	free(out);
	{
		struct lines l = log_lines(dir);

		for (size_t i = 0; i < l.n; i++)
			ck_assert_msg(strstr(l.v[i], "tok-batch") == NULL,
			    "a failed batch's record is in the log: %s", l.v[i]);
		lines_free(&l);
	}
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(write_failure_fails_closed_and_loses_nothing)
{
	char *dir = tmpdir(), *out;
	struct lines l;
	static const char *const why[] = {
		[10] = "aud_open failed", [11] = "no segment",
		[12] = "setrlimit", [13] = "done never came after the failed write",
		[14] = "done did not get WD_EIO", [15] = "still healthy",
		[16] = "no last error", [17] = "a partial line stayed in the file",
		[18] = "healthy while the limit holds", [19] = "setrlimit (raise)",
		[20] = "did not turn healthy again",
		[21] = "a record after recovery was not written",
	};

	make_log(dir, 4, 0);
	run_child(dir, fsize_child, why, sizeof(why) / sizeof(*why));
	ck_assert_int_eq(verify(dir, NULL, &out), AUD_UNAUTHENTICATED);
	ck_assert_msg(strncmp(out, "CONSISTENT: 9 records", 21) == 0, "%s", out);
	free(out);
	/* Each record exactly once, in the order submitted. */
	l = log_lines(dir);
	{
		static const char *const order[] = { "tok-1", "tok-2", "tok-3",
			"tok-4", "tok-fail-1", "tok-queued-0", "tok-queued-1",
			"tok-queued-2", "tok-after" };

		ck_assert_uint_eq(l.n, 9);
		for (size_t i = 0; i < l.n; i++) {
			json_t *j = line_json(l.v[i]);

			ck_assert_str_eq(jstr(j, "decision_id"), order[i]);
			json_decref(j);
		}
	}
	lines_free(&l);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Close a signed log and check that every record is covered by a
 * checkpoint that verifies with the key. */
static void
close_verified(struct aud_log *log, const char *dir, const struct soft_key *k)
{
	char *pub, *out;

	aud_close(log);
	pub = write_pem(dir, "pub.pem", k->pem);
	ck_assert_msg(verify(dir, pub, &out) == 0, "%s", out);
	ck_assert_msg(strstr(out, "verified with the trusted key; every record "
	    "is covered") != NULL, "%s", out);
	free(out);
	free(pub);
}

/* Many threads appending at once (as the gateway's workers do), with
 * rotation and checkpoints on the way: one chain, every record once. */
struct appender {
	struct aud_log *log;
	int who;
	int fails;
};

enum { APPENDERS = 4, PER_APPENDER = 400 };

static void *
appender_main(void *arg)
{
	struct appender *a = arg;

	for (int i = 0; i < PER_APPENDER; i++) {
		char tok[32];
		struct waiter w;

		snprintf(tok, sizeof(tok), "tok-%d-%d", a->who, i);
		waiter_init(&w);
		aud_submit(a->log, req_rec("a", tok), i % 3 ? NULL : waiter_done,
		    &w);
		if (i % 3 == 0 && (!waiter_wait(&w, 5000) || w.rc != WD_OK))
			a->fails++;
	}
	return NULL;
}

START_TEST(concurrent_appends_make_one_chain)
{
	char *dir = tmpdir();
	struct aud_opts o = opts(dir);
	struct soft_key k;
	struct aud_log *log;
	pthread_t th[APPENDERS];
	struct appender a[APPENDERS];
	struct lines l;
	char *seen;
	size_t cps = 0;

	soft_key_init(&k);
	o.signer = &k.signer;
	o.checkpoint_every = 7;
	o.segment_max_bytes = 16384;
	log = open_ok(&o);
	for (int i = 0; i < APPENDERS; i++) {
		a[i] = (struct appender){ .log = log, .who = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, appender_main, &a[i]),
		    0);
	}
	for (int i = 0; i < APPENDERS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(a[i].fails, 0);
	}
	close_verified(log, dir, &k);
	l = log_lines(dir);
	seen = calloc(APPENDERS * PER_APPENDER, 1);
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = line_json(l.v[i]);
		int who, n;

		if (strcmp(jstr(j, "kind"), "checkpoint") == 0) {
			cps++;
		} else {
			ck_assert(sscanf(jstr(j, "decision_id"), "tok-%d-%d", &who,
			    &n) == 2);
			ck_assert_msg(!seen[who * PER_APPENDER + n], "%s twice",
			    jstr(j, "decision_id"));
			seen[who * PER_APPENDER + n] = 1;
		}
		json_decref(j);
	}
	ck_assert_uint_eq(l.n - cps, APPENDERS * PER_APPENDER);
	/* Checkpoints are signed on the writer thread, as often as it gets
	 * to them (every 7 records at most) and one at close: appenders never
	 * wait for one. */
	ck_assert_uint_ge(cps, 2);
	ck_assert_uint_le(cps, APPENDERS * PER_APPENDER / 7 + 1);
	free(seen);
	lines_free(&l);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Records appended a batch at a time (a worker's turn: one lock, one
 * write()), from two threads at once, with rotation and checkpoints on the
 * way: one chain, every record once, each thread's in its order; a record
 * that cannot be made is left out of its batch and the rest are written. */
struct batcher {
	struct aud_log *log;
	int who;
	int made, fails;
};

enum { BATCHERS = 2, PER_BATCHER = 600 };

static void *
batcher_main(void *arg)
{
	struct batcher *b = arg;
	unsigned seed = (unsigned)b->who * 7919u + 1;

	for (int i = 0; i < PER_BATCHER; ) {
		struct aud_canon cs[AUD_APPEND_MAX];
		bool written[AUD_APPEND_MAX];
		size_t n = 1 + (size_t)(rand_r(&seed) % AUD_APPEND_MAX), bad;

		if (n > (size_t)(PER_BATCHER - i))
			n = (size_t)(PER_BATCHER - i);
		bad = rand_r(&seed) % 5 == 0 ? rand_r(&seed) % n : n;
		for (size_t j = 0; j < n; j++) {
			char tok[32];

			snprintf(tok, sizeof(tok), "tok-%d-%d", b->who,
			    i + (int)j);
			aud_canon_begin(&cs[j], b->log);
			aud_canon_key(&cs[j], "decision_id");
			aud_canon_str(&cs[j], tok);
			/* Keys out of order: this record cannot be made. */
			aud_canon_key(&cs[j], j == bad ? "a" : "kind");
			aud_canon_str(&cs[j], "request");
		}
		if (aud_try_append_canons(b->log, cs, n, written) !=
		    (bad < n ? WD_EINVAL : WD_OK))
			b->fails++;
		for (size_t j = 0; j < n; j++) {
			if (written[j] != (j != bad))
				b->fails++;
			b->made += written[j];
		}
		i += (int)n;
	}
	return NULL;
}

START_TEST(batched_appends_make_one_chain)
{
	char *dir = tmpdir();
	struct aud_opts o = opts(dir);
	struct soft_key k;
	struct aud_log *log;
	pthread_t th[BATCHERS];
	struct batcher b[BATCHERS];
	struct lines l;
	int last[BATCHERS], made = 0;
	size_t cps = 0;

	soft_key_init(&k);
	o.signer = &k.signer;
	o.checkpoint_every = 50;
	o.segment_max_bytes = 16384;
	log = open_ok(&o);
	for (int i = 0; i < BATCHERS; i++) {
		b[i] = (struct batcher){ .log = log, .who = i };
		last[i] = -1;
		ck_assert_int_eq(pthread_create(&th[i], NULL, batcher_main,
		    &b[i]), 0);
	}
	for (int i = 0; i < BATCHERS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(b[i].fails, 0);
		made += b[i].made;
	}
	close_verified(log, dir, &k);
	l = log_lines(dir);
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = line_json(l.v[i]);
		int who, n;

		if (strcmp(jstr(j, "kind"), "checkpoint") == 0) {
			cps++;
		} else if (strcmp(jstr(j, "kind"), "request") == 0) {
			ck_assert(sscanf(jstr(j, "decision_id"), "tok-%d-%d",
			    &who, &n) == 2);
			ck_assert_msg(n > last[who], "%s after tok-%d-%d",
			    jstr(j, "decision_id"), who, last[who]);
			last[who] = n;
			made--;
		}
		json_decref(j);
	}
	ck_assert_int_eq(made, 0);
	/* At least the one at close (the writer signs as often as it gets
	 * to; the batches may all be in before it does). */
	ck_assert_uint_ge(cps, 1);
	lines_free(&l);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* One writer per log: a second open of a live log must not fork the
 * chain. */
START_TEST(second_writer_cannot_break_the_chain)
{
	char *dir = tmpdir(), *out;
	struct aud_opts o = opts(dir);
	struct aud_log *a = open_ok(&o), *b = NULL;
	char err[512] = "";
	enum wd_err rc;

	ck_assert_int_eq(submit_sync(a, req_rec("a", "tok-a1")), WD_OK);
	rc = aud_open(&o, &b, err, sizeof(err));
	if (rc == WD_OK) {
		ck_assert_int_eq(submit_sync(b, req_rec("a", "tok-b1")), WD_OK);
		ck_assert_int_eq(submit_sync(a, req_rec("a", "tok-a2")), WD_OK);
		aud_close(b);
	}
	aud_close(a);
	ck_assert_msg(verify(dir, NULL, &out) == AUD_UNAUTHENTICATED, "a second aud_open on a live "
	    "log was allowed (%s) and the log no longer verifies: %s",
	    wd_strerror(rc), out);
	free(out);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ======================================================================
 * format 2: the Merkle tree, proofs, trust, rollback, witnesses
 * ====================================================================== */

/* RFC 9162 2.1.1 MTH by its definition, for the tests to compare with. */
static void
ref_mth(unsigned char (*leaves)[32], size_t n, unsigned char out[32])
{
	size_t k = 1;
	unsigned char l[32], r[32];

	if (n == 0) {
		wd_sha256("", 0, out);
		return;
	}
	if (n == 1) {
		memcpy(out, leaves[0], 32);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	ref_mth(leaves, k, l);
	ref_mth(leaves + k, n - k, r);
	aud_node_hash(l, r, out);
}

/* Perfect subtrees straight from the leaves (a store for the proofs). */
struct mem_nodes {
	unsigned char (*leaves)[32];
	size_t n;
};

static enum wd_err
mem_get(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
	struct mem_nodes *m = ctx;
	uint64_t a = index << level, w = (uint64_t)1 << level;

	if (a + w > m->n)
		return WD_ENOTFOUND;
	ref_mth(m->leaves + a, (size_t)w, out);
	return WD_OK;
}

/* The append path serialises a record before it has seq and prev and
 * splices them in under the lock: byte for byte aud_line's canonical
 * line, wherever the two keys fall among the others. */
START_TEST(spliced_lines_are_canonical)
{
	const char *recs[] = {
		"{}", "{\"a\":1}", "{\"z\":1}", "{\"q\":1}", "{\"prex\":1}",
		"{\"pre\":1,\"sea\":2}", "{\"ts\":\"x\",\"a\":{\"prev\":1,\"seq\":[1,{\"z\":\"}\"}]},\"r\":\"a,b\\\"}\"}",
		"{\"kind\":\"request\",\"tenant\":\"t\",\"usage\":{\"p\":1},\"zz\":[],\"se\":null,\"seqq\":true}",
		"{\"hash\":\"h\",\"prev\":\"p\",\"seq\":9,\"x\":\"\\u001f\"}",
	};
	char prev[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	for (size_t i = 0; i < sizeof(recs) / sizeof(*recs); i++) {
		json_t *a = json_loads(recs[i], 0, NULL), *b;
		struct aud_pre pre;
		char h1[AUD_HASH_HEX + 1], h2[AUD_HASH_HEX + 1];
		unsigned char leaf[32], leaf2[32];
		size_t l1, l2;
		char *x, *y;

		ck_assert_msg(a != NULL, "%s", recs[i]);
		b = json_deep_copy(a);
		ck_assert(aud_line_prepare(b, &pre));
		y = aud_line_splice(&pre, 12345, prev, h2, leaf2, &l2, NULL);
		json_object_set_new(a, "seq", json_integer(12345));
		x = aud_line_leaf(a, prev, h1, leaf, &l1);
		ck_assert_msg(l1 == l2 && memcmp(x, y, l1) == 0, "%.*s\nvs\n%.*s",
		    (int)l1, x, (int)l2, y);
		ck_assert_str_eq(h1, h2);
		ck_assert(memcmp(leaf, leaf2, 32) == 0);
		free(x);
		free(y);
		free(pre.text);
		json_decref(a);
		json_decref(b);
	}
}
END_TEST

/* ---- the direct canonical writer (canon.c) against jansson ---- */

static uint64_t canon_rng = 0x9E3779B97F4A7C15ull;

static uint64_t
canon_next(void)
{
	canon_rng ^= canon_rng << 13;
	canon_rng ^= canon_rng >> 7;
	canon_rng ^= canon_rng << 17;
	return canon_rng;
}

/* A random string of what needs care: escapes, control characters,
 * DEL, '/', 2-, 3- and 4-byte UTF-8, U+2028, long runs of plain text. */
static void
canon_rand_str(char *buf, size_t cap)
{
	static const char *const parts[] = {
		"a", "Z", " ", "0", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t",
		"\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"\xe2\x80\xa8", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xc2\x80",
		"plain text of some length, ", "}", "{", ",", ":", "u0000",
	};
	size_t n = canon_next() % 24, o = 0;

	if (canon_next() % 8 == 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = parts[canon_next() % (sizeof(parts) / sizeof(*parts))];
		size_t pl = strlen(p);

		if (o + pl + 1 > cap)
			break;
		memcpy(buf + o, p, pl);
		o += pl;
	}
	buf[o] = '\0';
}

static int
canon_keycmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *canon_gen(struct aud_canon *c, int depth);

/* Keys from a pool around the log's own (instance, prev, seq, ts), with
 * non-ASCII and escaped ones; in bytewise order, each once. */
static json_t *
canon_gen_obj(struct aud_canon *c, int depth, bool top)
{
	static const char *const pool[] = {
		"", "a", "agent", "api", "attempts", "code", "hash2", "i", "ins",
		"instancf", "instance0", "insta", "kind", "latency_ms", "p", "pre",
		"prev0", "prevz", "prew", "q", "se", "seq_", "seqa", "sep", "t",
		"tenant", "ts0", "tr", "tt", "u", "usage", "verdict", "z", "zz",
		"\xc3\xa9t\xc3\xa9", "\xe2\x82\xac", "A", "Z_", "_", "a\"q", "b\\s",
		"n\nl", "~",
	};
	const char *keys[sizeof(pool) / sizeof(*pool)];
	size_t n = 0, want = canon_next() % (top ? 20 : 6);
	json_t *o = json_object();

	for (size_t i = 0; i < want; i++) {
		const char *k = pool[canon_next() % (sizeof(pool) / sizeof(*pool))];
		bool dup = false;

		for (size_t j = 0; j < n; j++)
			dup |= strcmp(keys[j], k) == 0;
		if (!dup)
			keys[n++] = k;
	}
	qsort(keys, n, sizeof(*keys), canon_keycmp);
	if (c != NULL && !top)
		aud_canon_obj(c);
	for (size_t i = 0; i < n; i++) {
		if (c != NULL)
			aud_canon_key(c, keys[i]);
		json_object_set_new(o, keys[i], canon_gen(c, depth + 1));
	}
	if (c != NULL && !top)
		aud_canon_close(c);
	return o;
}

/* A random value, written to c too (unless c is NULL). */
static json_t *
canon_gen(struct aud_canon *c, int depth)
{
	unsigned kind = (unsigned)(canon_next() % (depth < 4 ? 9 : 6));
	char s[256];

	/* In a value handed over whole: now and then a real (jansson's own
	 * digits) or a key that sorts only by its length. */
	if (c == NULL && canon_next() % 12 == 0) {
		static const double reals[] = { 0.5, -0.0, 1e300, 3.141592653589793,
		    -2.5e-7, 100.0, 1.0 / 3.0 };

		if (canon_next() % 2 == 0)
			return json_real(reals[canon_next() % 7]);
		return json_pack("{s:i,s:i,s:i}", "ab", 1, "a", 2, "abc", 3);
	}
	/* Now and then a whole jansson value handed over as one. */
	if (c != NULL && canon_next() % 10 == 0) {
		json_t *v = canon_gen(NULL, depth);

		aud_canon_json(c, v);
		return v;
	}
	switch (kind) {
	case 0:
		if (c != NULL)
			aud_canon_null(c);
		return json_null();
	case 1: {
		bool b = canon_next() & 1;

		if (c != NULL)
			aud_canon_bool(c, b);
		return json_boolean(b);
	}
	case 2: {
		static const long long edge[] = { 0, 1, -1, 9007199254740993LL,
		    INT64_MAX, INT64_MIN, 499, 200 };
		long long v = canon_next() % 2 ? edge[canon_next() % 8] :
		    (long long)canon_next();

		if (c != NULL)
			aud_canon_int(c, v);
		return json_integer((json_int_t)v);
	}
	case 3: case 4: case 5:
		canon_rand_str(s, sizeof(s));
		if (c != NULL)
			aud_canon_str(c, s);
		return json_string(s);
	case 6: case 7:
		return canon_gen_obj(c, depth, false);
	default: {
		json_t *a = json_array();
		size_t n = canon_next() % 5;

		if (c != NULL)
			aud_canon_arr(c);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, canon_gen(c, depth + 1));
		if (c != NULL)
			aud_canon_close(c);
		return a;
	}
	}
}

/* The direct writer gives jansson's bytes (aud_line_prepare's text and
 * the places of prev and seq), so the lines and hashes are the same. */
START_TEST(canon_writer_matches_jansson_bytes)
{
	char prev[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	for (int i = 0; i < 20000; i++) {
		struct aud_canon c;
		struct aud_pre a, b;
		char inst[64], ts[40], h1[AUD_HASH_HEX + 1], h2[AUD_HASH_HEX + 1];
		unsigned char l1[32], l2[32];
		size_t n1, n2;
		char *x, *y;
		json_t *rec;

		canon_rand_str(inst, sizeof(inst));
		snprintf(ts, sizeof(ts), "2026-11-30T01:%02d:%02d.%06dZ", i % 60,
		    (i / 60) % 60, i);
		aud_canon_begin_as(&c, inst, ts);
		rec = canon_gen_obj(&c, 0, true);
		json_object_set_new(rec, "instance", json_string(inst));
		json_object_set_new(rec, "ts", json_string(ts));
		ck_assert(aud_line_prepare(rec, &a) || a.text == NULL);
		if (a.text == NULL) {
			/* A key jansson escapes: the splice path does not take it
			 * (aud_line does); compare the plain serialisation. */
			char *j = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);

			ck_assert(aud_canon_end(&c, &b));
			ck_assert_msg(strlen(j) == b.len && memcmp(j, b.text, b.len) == 0,
			    "%s\nvs\n%.*s", j, (int)b.len, b.text);
			free(j);
			free(b.text);
			json_decref(rec);
			continue;
		}
		ck_assert(aud_canon_end(&c, &b));
		ck_assert_msg(a.len == b.len && memcmp(a.text, b.text, a.len) == 0,
		    "record %d:\n%s\nvs\n%.*s", i, a.text, (int)b.len, b.text);
		ck_assert_uint_eq(a.at_prev, b.at_prev);
		ck_assert_uint_eq(a.at_seq, b.at_seq);
		x = aud_line_splice(&a, (uint64_t)i + 1, prev, h1, l1, &n1, NULL);
		y = aud_line_splice(&b, (uint64_t)i + 1, prev, h2, l2, &n2, NULL);
		ck_assert(n1 == n2 && memcmp(x, y, n1) == 0);
		ck_assert(memcmp(l1, l2, 32) == 0);
		free(x);
		free(y);
		free(a.text);
		free(b.text);
		json_decref(rec);
	}
}
END_TEST

/* A random JSON value's text, mostly of the shapes aud_canon_raw takes
 * (usage objects), sometimes of others (reals, escapes, duplicate keys,
 * deep nesting, bad text). */
static void
raw_gen(char *o, size_t *n, size_t cap, unsigned depth)
{
	static const char *const keys[] = { "prompt_tokens",
	    "completion_tokens", "total_tokens", "prompt_tokens_details",
	    "cached_tokens", "a", "ab", "b", "\xc3\xa9t\xc3\xa9", "A", "" };
	static const char *const atoms[] = { "0", "7", "-3", "123456789012345678",
	    "1234567890123456789", "-0", "1.5", "2e3", "true", "false", "null",
	    "\"x\"", "\"\"", "\"caf\xc3\xa9\"", "\"a\\nb\"", "\"\\u00e9\"",
	    "\"/\"", "01", "\"\xff\"" };
	int r = rand() % 10;

#define PUT(s) do { const char *s_ = (s); size_t l_ = strlen(s_); \
	if (*n + l_ < cap) { memcpy(o + *n, s_, l_); *n += l_; } } while (0)
	if (depth < 7 && r < 5) {
		int m = rand() % 5;

		PUT(rand() % 8 == 0 ? " { " : "{");
		for (int i = 0; i < m; i++) {
			if (i > 0)
				PUT(rand() % 8 == 0 ? " ,\n" : ",");
			PUT("\"");
			PUT(keys[rand() % (sizeof(keys) / sizeof(*keys))]);
			PUT(rand() % 6 == 0 ? "\" : " : "\":");
			raw_gen(o, n, cap, depth + 1);
		}
		PUT("}");
	} else if (depth < 7 && r < 6) {
		int m = rand() % 4;

		PUT("[");
		for (int i = 0; i < m; i++) {
			if (i > 0)
				PUT(",");
			raw_gen(o, n, cap, depth + 1);
		}
		PUT("]");
	} else {
		PUT(atoms[rand() % (sizeof(atoms) / sizeof(*atoms))]);
	}
#undef PUT
	o[*n] = '\0';
}

/* One record with a value under "a", as a member and as an array's
 * second element: written from the text where aud_canon_raw can,
 * else from the tree, its bytes are those of the tree alone. */
static bool
raw_record(const char *text, json_t *tree, bool use_raw, struct aud_pre *out)
{
	struct aud_canon c;
	bool took = false;

	aud_canon_begin_as(&c, "i", "2026-11-30T00:00:00Z");
	for (int pass = 0; pass < 2; pass++) {
		aud_canon_key(&c, pass == 0 ? "a" : "b");
		if (pass == 1) {
			aud_canon_arr(&c);
			aud_canon_int(&c, 1);
		}
		if (use_raw && aud_canon_raw(&c, text, strlen(text)))
			took = true;
		else
			aud_canon_json(&c, tree);
		if (pass == 1)
			aud_canon_close(&c);
	}
	ck_assert(aud_canon_end(&c, out));
	return took;
}

START_TEST(canon_raw_text_is_written_as_its_tree)
{
	size_t took = 0, tried = 0;

	srand(20261130);
	for (int i = 0; i < 20000; i++) {
		char text[2048];
		size_t n = 0;
		json_t *tree;
		struct aud_pre a, b;
		struct aud_canon c;

		raw_gen(text, &n, sizeof(text), 0);
		tree = json_loads(text, JSON_DECODE_ANY, NULL);
		if (tree == NULL) {
			/* Not JSON: refused, and nothing written. */
			aud_canon_begin_as(&c, "i", "2026-11-30T00:00:00Z");
			aud_canon_key(&c, "a");
			n = c.b.len;
			ck_assert_msg(!aud_canon_raw(&c, text, strlen(text)),
			    "took %s", text);
			ck_assert_uint_eq(c.b.len, n);
			ck_assert(c.value_next);
			aud_canon_free(&c);
			continue;
		}
		tried++;
		if (raw_record(text, tree, true, &a))
			took++;
		raw_record(text, tree, false, &b);
		ck_assert_msg(a.len == b.len && memcmp(a.text, b.text, a.len) == 0,
		    "text %s\nraw:  %s\ntree: %s", text, a.text, b.text);
		free(a.text);
		free(b.text);
		json_decref(tree);
	}
	/* The usual shapes were written from their text. */
	ck_assert_uint_gt(tried, 5000);
	ck_assert_uint_gt(took, tried / 4);
	/* An OpenAI usage, as it comes. */
	{
		const char *u = "{\"prompt_tokens\":19,\"completion_tokens\":10,"
		    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\""
		    ":0,\"audio_tokens\":0},\"completion_tokens_details\":{"
		    "\"reasoning_tokens\":0,\"audio_tokens\":0}}";
		json_t *tree = json_loads(u, 0, NULL);
		struct aud_pre a, b;

		ck_assert(raw_record(u, tree, true, &a));
		raw_record(u, tree, false, &b);
		ck_assert_str_eq(a.text, b.text);
		free(a.text);
		free(b.text);
		json_decref(tree);
	}
}
END_TEST

/* What the writer cannot write as jansson would fails the record (the
 * caller falls back to jansson), never writes different bytes. */
START_TEST(canon_writer_refuses_what_it_cannot_write)
{
	static const char *const bad_utf8[] = {
		"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xf5\x80\x80\x80", "\x80", "ab\xc3", "\xe2\x82", "\xff",
	};
	struct aud_canon c;
	struct aud_pre p;

	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(*bad_utf8); i++) {
		aud_canon_begin_as(&c, "i", "t");
		aud_canon_key(&c, "a");
		aud_canon_str(&c, bad_utf8[i]);
		ck_assert_msg(!aud_canon_end(&c, &p), "accepted %zu", i);
		ck_assert_ptr_null(json_string(bad_utf8[i]));
	}
	/* Keys out of order, twice, or the log's own. */
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_key(&c, "b");
	aud_canon_int(&c, 1);
	aud_canon_key(&c, "a");
	aud_canon_int(&c, 2);
	ck_assert(!aud_canon_end(&c, &p));
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_key(&c, "a");
	aud_canon_int(&c, 1);
	aud_canon_key(&c, "a");
	aud_canon_int(&c, 2);
	ck_assert(!aud_canon_end(&c, &p));
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_key(&c, "seq");
	aud_canon_int(&c, 1);
	ck_assert(!aud_canon_end(&c, &p));
	/* A key without a value, a container left open, a stray value. */
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_key(&c, "a");
	ck_assert(!aud_canon_end(&c, &p));
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_key(&c, "a");
	aud_canon_arr(&c);
	ck_assert(!aud_canon_end(&c, &p));
	aud_canon_begin_as(&c, "i", "t");
	aud_canon_int(&c, 3);
	ck_assert(!aud_canon_end(&c, &p));
	/* An empty record still gets the log's members. */
	aud_canon_begin_as(&c, "i", "t");
	ck_assert(aud_canon_end(&c, &p));
	ck_assert_str_eq(p.text, "{\"instance\":\"i\",\"ts\":\"t\"}");
	free(p.text);
}
END_TEST

/* A segment big enough to be walked on two threads (verify.c reads and
 * hashes every other 2 MB chunk on a second thread): tampering in either
 * kind of chunk, at a chunk's first line, a deleted line and two lines
 * swapped are caught, with the line and the reason the walk on one
 * thread names. */
START_TEST(tamper_in_a_big_segment_is_caught_on_either_thread)
{
	char *dir = tmpdir(), *seg = path2(dir, "audit-000001.jsonl"), *out, *pub;
	char pad[3001], want[160];
	struct soft_key k;
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	struct lines l;
	size_t at = 0, b_first = 0, in_b = 0, in_b2 = 0, in_a2 = 0;

	soft_key_init(&k);
	o.signer = &k.signer;
	o.checkpoint_every = 100;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	log = open_ok(&o);
	/* Few long records: the sanitizer build runs this too. */
	for (int i = 1; i <= 3000; i++) {
		char tok[32];
		json_t *r;

		snprintf(tok, sizeof(tok), "tok-%d", i);
		r = req_rec(i % 2 ? "a" : "b", tok);
		json_object_set_new(r, "pad", json_string(pad));
		ck_assert_int_eq(aud_append(log, r), WD_OK);
	}
	aud_close(log);
	pub = write_pem(dir, "pub.pem", k.pem);
	ck_assert_int_eq(verify(dir, pub, &out), 0);
	free(out);
	l = file_lines(seg);
	/* Lines by byte offset: the first line of the first second-thread
	 * chunk (past the first newline at 2 MB), one inside it, one in the
	 * second such chunk (6-8 MB), one in the third first-thread chunk. */
	for (size_t i = 0; i < l.n; i++) {
		size_t end = at + strlen(l.v[i]) + 1;

		if (b_first == 0 && at >= ((size_t)2 << 20))
			b_first = i;
		if (in_b == 0 && at >= ((size_t)3 << 20) &&
		    strstr(l.v[i], "\"kind\":\"request\"") != NULL)
			in_b = i;
		if (in_a2 == 0 && at >= ((size_t)5 << 20) &&
		    strstr(l.v[i], "\"kind\":\"request\"") != NULL)
			in_a2 = i;
		if (in_b2 == 0 && at >= ((size_t)7 << 20) &&
		    strstr(l.v[i], "\"kind\":\"request\"") != NULL)
			in_b2 = i;
		at = end;
	}
	ck_assert_msg(at > ((size_t)8 << 20) && b_first > 0 && in_b > b_first &&
	    in_a2 > in_b && in_b2 > in_a2, "the log is %zu bytes", at);

	/* A changed byte, in a line of either kind of chunk. */
	for (int pass = 0; pass < 3; pass++) {
		size_t i = pass == 0 ? in_b : pass == 1 ? in_a2 : in_b2;
		char *p = strstr(l.v[i], "\"tenant\":\"");

		ck_assert_ptr_nonnull(p);
		p[10] = p[10] == 'a' ? 'c' : 'd';
		lines_write(seg, &l);
		ck_assert_int_eq(verify(dir, pub, &out), 1);
		snprintf(want, sizeof(want), "audit-000001.jsonl:%zu: seq %zu: hash "
		    "does not match", i + 1, i + 1);
		ck_assert_msg(strstr(out, want) != NULL, "%s (want %s)", out, want);
		free(out);
		p[10] = p[10] == 'c' ? 'a' : 'b';
	}
	/* The first line of a second-thread chunk: its prev changed is
	 * caught as a broken link (the link to the line before the chunk). */
	{
		char *p = strstr(l.v[b_first], "\"prev\":\""), was;

		ck_assert_ptr_nonnull(p);
		was = p[8];
		p[8] = was == '0' ? '1' : '0';
		lines_write(seg, &l);
		ck_assert_int_eq(verify(dir, pub, &out), 1);
		snprintf(want, sizeof(want), "audit-000001.jsonl:%zu: seq %zu: prev "
		    "does not match", b_first + 1, b_first + 1);
		ck_assert_msg(strstr(out, want) != NULL, "%s (want %s)", out, want);
		free(out);
		p[8] = was;
	}
	/* Two lines swapped, then a line deleted, inside such a chunk. */
	{
		char *t = l.v[in_b2];

		l.v[in_b2] = l.v[in_b2 + 1];
		l.v[in_b2 + 1] = t;
		lines_write(seg, &l);
		ck_assert_int_eq(verify(dir, pub, &out), 1);
		snprintf(want, sizeof(want), "audit-000001.jsonl:%zu: seq %zu "
		    "follows seq %zu", in_b2 + 1, in_b2 + 2, in_b2);
		ck_assert_msg(strstr(out, want) != NULL, "%s (want %s)", out, want);
		free(out);
		l.v[in_b2 + 1] = l.v[in_b2];
		l.v[in_b2] = t;
		free(l.v[in_b]);
		l.v[in_b] = NULL;
		lines_write(seg, &l);
		ck_assert_int_eq(verify(dir, pub, &out), 1);
		snprintf(want, sizeof(want), "audit-000001.jsonl:%zu: seq %zu "
		    "follows seq %zu", in_b + 1, in_b + 2, in_b);
		ck_assert_msg(strstr(out, want) != NULL, "%s (want %s)", out, want);
		free(out);
	}
	lines_free(&l);
	soft_key_free(&k);
	free(pub);
	free(seg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(merkle_proofs_hold_for_every_size)
{
	enum { N = 70 };
	unsigned char leaves[N][32], root[N + 1][32];
	struct aud_frontier f = { 0 };
	struct mem_nodes mn = { leaves, N };
	struct aud_nodes nodes = { mem_get, &mn };
	struct aud_proof_path *p = calloc(1, sizeof(*p));

	for (size_t i = 0; i < N; i++) {
		unsigned char c[8] = { 'l', 'e', 'a', 'f', (unsigned char)i };

		aud_leaf_hash(c, sizeof(c), leaves[i]);
	}
	for (size_t n = 0; n <= N; n++) {
		unsigned char have[32];

		aud_frontier_root(&f, have);
		ref_mth(leaves, n, root[n]);
		ck_assert_msg(memcmp(have, root[n], 32) == 0, "root of %zu", n);
		if (n < N)
			aud_frontier_push(&f, leaves[n], NULL, NULL);
	}
	for (size_t n = 1; n <= N; n++) {
		for (size_t m = 0; m < n; m++) {
			ck_assert_int_eq(aud_inclusion_path(&nodes, m, n, p), WD_OK);
			ck_assert_msg(aud_verify_inclusion(m, n, leaves[m], p, root[n]),
			    "inclusion %zu in %zu", m, n);
			ck_assert(!aud_verify_inclusion(m, n, leaves[(m + 1) % N], p,
			    root[n]) || leaves[(m + 1) % N][0] == leaves[m][0]);
			if (p->n > 0) {
				p->h[p->n - 1][0] ^= 1;
				ck_assert(!aud_verify_inclusion(m, n, leaves[m], p,
				    root[n]));
			}
			ck_assert(!aud_verify_inclusion(m, n + 1, leaves[m], p,
			    root[n]) || n + 1 > N);
		}
		for (size_t m = 0; m <= n; m++) {
			ck_assert_int_eq(aud_consistency_path(&nodes, m, n, p), WD_OK);
			ck_assert_msg(aud_verify_consistency(m, n, root[m], root[n], p),
			    "consistency %zu %zu", m, n);
			if (m > 0 && m < n) {
				unsigned char bad[32];

				memcpy(bad, root[m], 32);
				bad[5] ^= 1;
				ck_assert(!aud_verify_consistency(m, n, bad, root[n], p));
				ck_assert(!aud_verify_consistency(m, n, root[m], bad, p));
			}
		}
	}
	free(p);
}
END_TEST

/* What a command printed and its status, through a memstream. */
static int
capture(int (*fn)(FILE *, void *), void *arg, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc = fn(m, arg);

	fclose(m);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return rc;
}

struct prove_args {
	const char *dir, *pub;
	uint64_t seq, cp, a, b;
	const char *path;
};

static int
do_prove(FILE *m, void *arg)
{
	struct prove_args *a = arg;
	FILE *f = fopen(a->path, "w");
	int rc = a->a != 0 ? aud_prove_consistency(a->dir, a->a, a->b, f, m) :
	    aud_prove_inclusion(a->dir, a->seq, a->cp, f, m);

	fclose(f);
	return rc;
}

static int
do_verify_proof(FILE *m, void *arg)
{
	struct prove_args *a = arg;
	struct aud_verify_opts o = { .pubkey_pem_path = a->pub };

	return aud_verify_proof(a->path, &o, m);
}

/* Checkpoint seqs of a log, in order; *n of them. */
static size_t
checkpoint_seqs(const char *dir, uint64_t *v, size_t max)
{
	struct lines l = log_lines(dir);
	size_t n = 0;

	for (size_t i = 0; i < l.n && n < max; i++)
		if (strstr(l.v[i], "\"kind\":\"checkpoint\"") != NULL)
			v[n++] = i + 1;
	lines_free(&l);
	return n;
}

static int
py(const char *what, const char *file, const char *pub)
{
	char *cmd;
	int rc;

	ck_assert(asprintf(&cmd, "python3 audit/verify.py %s %s%s%s >/dev/null "
	    "2>&1", what, file, pub ? " --pubkey " : "", pub ? pub : "") >= 0);
	rc = sh(cmd);
	free(cmd);
	return rc;
}

START_TEST(proofs_of_a_log_verify_alone)
{
	char *dir = tmpdir(), *pub, *other, *out, *pp;
	struct soft_key k, k2;
	struct prove_args a = { 0 };
	uint64_t cps[16];
	size_t ncp;
	struct lines pl;

	soft_key_init(&k);
	soft_key_init(&k2);
	make_signed_log(dir, &k, "abababababababababababab");
	pub = write_pem(dir, "pub.pem", k.pem);
	other = write_pem(dir, "other.pem", k2.pem);
	pp = path2(dir, "proof.json");
	ncp = checkpoint_seqs(dir, cps, 16);
	ck_assert_uint_ge(ncp, 3);
	a.dir = dir;
	a.path = pp;
	a.pub = pub;
	for (uint64_t seq = 1; seq < cps[ncp - 1]; seq++) {
		a.seq = seq;
		ck_assert_msg(capture(do_prove, &a, &out) == 0, "prove %llu: %s",
		    (unsigned long long)seq, out);
		free(out);
		ck_assert_msg(capture(do_verify_proof, &a, &out) == AUD_VERIFIED,
		    "%s", out);
		free(out);
	}
	ck_assert_int_eq(py("proof", pp, pub), 0);
	/* Against an older checkpoint, and beyond what it covers. */
	a.seq = 2;
	a.cp = cps[0];
	ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_VERIFIED);
	a.seq = cps[0] + 1;
	ck_assert_int_eq(capture(do_prove, &a, NULL), AUD_INVALID);
	/* Another key; no key; a changed record. */
	a.seq = 5;
	a.cp = 0;
	ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
	a.pub = other;
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_INVALID);
	ck_assert_int_eq(py("proof", pp, other), 1);
	a.pub = NULL;
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_UNAUTHENTICATED);
	a.pub = pub;
	pl = file_lines(pp);
	{
		char *q = strstr(pl.v[0], "tok-4");

		ck_assert_ptr_nonnull(q);
		q[4] = '6';
		lines_write(pp, &pl);
	}
	ck_assert_int_eq(capture(do_verify_proof, &a, &out), AUD_INVALID);
	free(out);
	ck_assert_int_eq(py("proof", pp, pub), 1);
	lines_free(&pl);
	/* Consistency: every pair of checkpoints. */
	for (size_t i = 0; i < ncp; i++)
		for (size_t j = i; j < ncp; j++) {
			a.a = cps[i];
			a.b = cps[j];
			ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
			ck_assert_int_eq(capture(do_verify_proof, &a, &out),
			    AUD_VERIFIED);
			free(out);
		}
	ck_assert_int_eq(py("proof", pp, pub), 0);
	/* Out of order: refused. */
	a.a = cps[ncp - 1];
	a.b = cps[0];
	ck_assert_int_eq(capture(do_prove, &a, NULL), AUD_INVALID);
	free(pp);
	free(pub);
	free(other);
	soft_key_free(&k);
	soft_key_free(&k2);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* The tree files are derived: damaged or gone, they are rebuilt at open;
 * stale ones never give a proof that holds. */
START_TEST(tree_files_are_checked_and_rebuilt)
{
	char *dir = tmpdir(), *pub, *pp, *l0, *tdir, *out;
	struct soft_key k;
	struct prove_args a = { 0 };
	struct aud_opts o;
	struct aud_log *log;
	size_t len;
	char *text;

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaaaaaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	pp = path2(dir, "proof.json");
	l0 = path2(dir, "tree/level-00");
	tdir = path2(dir, "tree");
	ck_assert_int_eq(fsize(l0), 16 * 32);	/* 12 records, 4 checkpoints */
	a.dir = dir;
	a.path = pp;
	a.pub = pub;
	a.seq = 7;
	/* A leaf flipped: prove refuses rather than print a bad proof. */
	text = slurp(l0, &len);
	text[7 * 32] ^= 1;
	spit(l0, text, len);
	ck_assert_int_eq(capture(do_prove, &a, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "stale or damaged") != NULL, "%s", out);
	free(out);
	/* Reopened: the last leaf is checked, the rest rebuilt if needed. */
	text[7 * 32] ^= 1;
	text[len - 1] ^= 1;
	spit(l0, text, len);
	free(text);
	o = opts(dir);
	o.signer = &k.signer;
	log = open_ok(&o);
	aud_close(log);
	ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_VERIFIED);
	/* A crash leaves the newest leaves unwritten: they are added from
	 * the segments' tail, the rest is not read again (a mark left in
	 * leaf 0, which nothing reads, stays). */
	text = slurp(l0, &len);
	text[0] ^= 1;
	spit(l0, text, len - 3 * 32);
	free(text);
	log = open_ok(&o);
	aud_close(log);
	text = slurp(l0, &len);
	ck_assert_uint_ge(len, 16 * 32);
	{
		char *c = slurp(l0, NULL);
		struct lines lg = log_lines(dir);
		char h[AUD_HASH_HEX + 1], *canon;
		size_t clen;
		unsigned char leaf0[32];

		canon = aud_split_line(lg.v[0], strlen(lg.v[0]), h, &clen);
		aud_leaf_hash(canon, clen, leaf0);
		ck_assert_int_eq((unsigned char)c[0], leaf0[0] ^ 1);
		free(canon);
		free(c);
		lines_free(&lg);
	}
	free(text);
	a.seq = 14;
	ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_VERIFIED);
	a.seq = 7;
	/* All gone (a format 1 log has none): rebuilt. */
	rm_rf(tdir);
	log = open_ok(&o);
	aud_close(log);
	ck_assert_int_eq(capture(do_prove, &a, NULL), 0);
	ck_assert_int_eq(capture(do_verify_proof, &a, NULL), AUD_VERIFIED);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	free(pp);
	free(l0);
	free(tdir);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

static void
drop_checkpoints(json_t *rec, size_t idx, const char *prev)
{
	(void)idx;
	(void)prev;
	/* Turned into harmless records: the chain is recomputed anyway. */
	if (strcmp(jstr(rec, "kind"), "checkpoint") == 0) {
		json_t *seq = json_incref(json_object_get(rec, "seq"));
		json_t *ts = json_incref(json_object_get(rec, "ts"));

		json_object_clear(rec);
		json_object_set_new(rec, "kind", json_string("reload"));
		json_object_set_new(rec, "seq", seq);
		json_object_set_new(rec, "ts", ts);
	}
}

static void
backdate(json_t *rec, size_t idx, const char *prev)
{
	(void)idx;
	(void)prev;
	json_object_set_new(rec, "ts", json_string("2026-01-02T03:04:05.000006Z"));
}

static int
verify_at(const char *dir, const char *pub, int64_t now_us, char **out)
{
	struct aud_verify_opts o = { .pubkey_pem_path = pub, .now_us = now_us };
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc = aud_verify_dir(dir, &o, m);

	fclose(m);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return rc;
}

/* Issue 11: every checkpoint dropped and the chain recomputed: never
 * "verified" with a key (format 1 said OK with "0 checkpoints"), and
 * invalid once the records are older than the interval promised. */
START_TEST(dropped_checkpoints_and_a_recomputed_chain_fail)
{
	char *dir = tmpdir(), *pub, *out;
	struct soft_key k;
	int64_t now = (int64_t)wd_wall_us();

	soft_key_init(&k);
	make_signed_log(dir, &k, "aaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	rechain(dir, drop_checkpoints);
	ck_assert_msg(verify_at(dir, pub, now, &out) == AUD_UNAUTHENTICATED, "%s",
	    out);
	ck_assert_msg(strstr(out, "NOT AUTHENTICATED") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(verify_at(dir, pub, now + 3600LL * 1000000, &out),
	    AUD_INVALID);
	ck_assert_msg(strstr(out, "checkpoints were removed") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(py("log", dir, pub), 3);
	/* Dated a day back, as a forger rewriting old history would leave
	 * them: invalid at once, for warden and for verify.py. */
	rechain(dir, backdate);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_INVALID);
	ck_assert_int_eq(py("log", dir, pub), 1);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

static void
drop_last_checkpoint(json_t *rec, size_t idx, const char *prev)
{
	(void)prev;
	if (idx == 9)
		drop_checkpoints(rec, idx, prev);
	else if (strcmp(jstr(rec, "kind"), "checkpoint") == 0)
		json_object_set_new(rec, "root", json_string(forge_root));
}

/* Issue 11: records no checkpoint covers, older than the checkpoint
 * interval plus slack, fail with a key; young ones are only "not yet
 * authenticated". */
START_TEST(uncovered_old_records_fail_with_a_key)
{
	char *dir = tmpdir(), *pub, *out;
	struct soft_key k;
	int64_t now = (int64_t)wd_wall_us();

	soft_key_init(&k);
	/* a a a C a a a C a C: the last checkpoint dropped (the earlier ones
	 * keep their signatures: their trees are unchanged). */
	make_signed_log(dir, &k, "aaaaaaa");
	pub = write_pem(dir, "pub.pem", k.pem);
	rechain(dir, drop_last_checkpoint);
	ck_assert_msg(verify_at(dir, pub, now, &out) == AUD_UNAUTHENTICATED, "%s",
	    out);
	ck_assert_msg(strstr(out, "2 records after the tree of 7 no checkpoint "
	    "covers yet") != NULL, "%s", out);
	free(out);
	/* interval_s 60 + 60 s slack. */
	ck_assert_int_eq(verify_at(dir, pub, now + 100LL * 1000000, NULL),
	    AUD_UNAUTHENTICATED);
	ck_assert_int_eq(verify_at(dir, pub, now + 200LL * 1000000, &out),
	    AUD_INVALID);
	ck_assert_msg(strstr(out, "2 records after seq 7 no checkpoint covers")
	    != NULL, "%s", out);
	free(out);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* A counter kept in a file: the audit module's input (the gateway's is
 * the TPM's NV counter). */
struct file_counter {
	char *path;
	int bumps, reads;
};

static enum wd_err
file_counter_next(void *ctx, bool bump, uint64_t *value)
{
	struct file_counter *c = ctx;
	char *text = slurp(c->path, NULL);
	unsigned long long v = text ? strtoull(text, NULL, 10) : 0;
	char buf[32];

	free(text);
	if (bump) {
		v++;
		snprintf(buf, sizeof(buf), "%llu", v);
		spit(c->path, buf, strlen(buf));
		c->bumps++;
	}
	c->reads++;
	*value = v;
	return WD_OK;
}

static enum wd_err
open_with(struct aud_opts *o, struct aud_log **log, char *err, size_t len)
{
	*log = NULL;
	return aud_open(o, log, err, len);
}

/* Issue 11: the log cut right after a checkpoint, and its newest segment
 * deleted: the next start does not go on silently. */
START_TEST(rollback_is_detected_with_the_counter)
{
	char *dir = tmpdir(), *pub, *seg, *out, err[512];
	char *cdir = tmpdir();
	struct soft_key k;
	struct file_counter fc = { 0 };
	struct aud_counter counter = { file_counter_next, &fc };
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	struct lines l;
	size_t cut = 0;
	uint64_t cps[16];
	size_t ncp;
	char ctr[32];

	soft_key_init(&k);
	fc.path = path2(cdir, "counter");
	o.signer = &k.signer;
	o.counter = &counter;
	o.checkpoint_interval_s = 60;
	log = open_ok(&o);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-r")), WD_OK);
		if (i == 2)
			ck_assert_int_eq(aud_checkpoint_sync(log, 5000), WD_OK);
	}
	aud_close(log);
	/* Bumped for the first checkpoint and at close; each carries it. */
	ck_assert_int_eq(fc.bumps, 2);
	l = log_lines(dir);
	{
		json_t *last = line_json(l.v[l.n - 1]);

		ck_assert_str_eq(jstr(last, "kind"), "checkpoint");
		ck_assert_int_eq(jint(last, "counter"), 2);
		json_decref(last);
	}
	pub = write_pem(cdir, "pub.pem", k.pem);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	/* verify --tpm-counter: the TPM's value matches. */
	{
		struct aud_verify_opts vo = { .pubkey_pem_path = pub,
			.has_tpm_counter = true, .tpm_counter = 2 };
		FILE *dn = fopen("/dev/null", "w");

		ck_assert_int_eq(aud_verify_dir(dir, &vo, dn), AUD_VERIFIED);
		fclose(dn);
		/* The independent verifier agrees, and wants a number. */
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter 2", dir,
		    pub), 0);
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter 3", dir,
		    pub), 1);
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter x", dir,
		    pub), 2);
		ck_assert_int_eq(pyv("export %s --tpm-counter 2", dir), 2);
	}
	/* Reopened as is: no alarm (and new checkpoints, bumped). */
	log = open_ok(&o);
	aud_close(log);
	ck_assert_int_ge(fc.bumps, 3);
	/* A stop between the last checkpoint and its bump (the checkpoint is
	 * written first): the counter one behind the log is no rollback;
	 * verify takes it, and the next open makes the bump. */
	{
		char v[32];
		int was = fc.bumps;
		struct aud_verify_opts vo = { .pubkey_pem_path = pub,
			.has_tpm_counter = true };
		FILE *dn = fopen("/dev/null", "w");

		snprintf(v, sizeof(v), "%d", was - 1);
		spit(fc.path, v, strlen(v));
		fc.bumps = was - 1;	/* the counter's value, as before */
		vo.tpm_counter = (uint64_t)was - 1;
		ck_assert_int_eq(aud_verify_dir(dir, &vo, dn), AUD_VERIFIED);
		vo.tpm_counter = (uint64_t)was - 2;
		ck_assert_int_eq(aud_verify_dir(dir, &vo, dn), AUD_INVALID);
		fclose(dn);
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter %d", dir,
		    pub, was - 1), 0);
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter %d", dir,
		    pub, was - 2), 1);
		log = open_ok(&o);
		aud_close(log);
		/* Moved at open, then the closing checkpoint's bump. */
		ck_assert_int_eq(fc.bumps, was + 1);
		lines_free(&l);
		l = log_lines(dir);
		{
			json_t *last = line_json(l.v[l.n - 1]);

			ck_assert_str_eq(jstr(last, "kind"), "checkpoint");
			ck_assert_int_eq(jint(last, "counter"), was + 1);
			json_decref(last);
		}
		for (size_t i = 0; i < l.n; i++)
			ck_assert_msg(strstr(l.v[i], "rollback_detected") == NULL,
			    "%s", l.v[i]);
	}
	lines_free(&l);
	l = log_lines(dir);
	/* Cut right after the first checkpoint (line 4). */
	seg = path2(dir, "audit-000001.jsonl");
	for (size_t i = 0; i < 4; i++)
		cut += strlen(l.v[i]) + 1;
	ck_assert_int_eq(truncate(seg, (off_t)cut), 0);
	/* The log alone still verifies: only the counter can tell. */
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	{
		struct aud_verify_opts vo = { .pubkey_pem_path = pub,
			.has_tpm_counter = true, .tpm_counter = (uint64_t)fc.bumps };

		char *buf = NULL;
		size_t blen = 0;
		FILE *m = open_memstream(&buf, &blen);

		ck_assert_int_eq(aud_verify_dir(dir, &vo, m), AUD_INVALID);
		fclose(m);
		ck_assert_msg(strstr(buf, "rolled back") != NULL, "%s", buf);
		free(buf);
		ck_assert_int_eq(pyv("log %s --pubkey %s", dir, pub), 0);
		ck_assert_int_eq(pyv("log %s --pubkey %s --tpm-counter %d", dir,
		    pub, fc.bumps), 1);
	}
	ck_assert_int_eq(open_with(&o, &log, err, sizeof(err)), WD_EROLLBACK);
	snprintf(ctr, sizeof(ctr), "has 1, the TPM %d)", fc.bumps);
	ck_assert_msg(strstr(err, ctr) != NULL, "%s", err);
	lines_free(&l);
	l = log_lines(dir);
	ck_assert_uint_eq(l.n, 5);
	{
		json_t *rb = line_json(l.v[4]);

		ck_assert_str_eq(jstr(rb, "kind"), "rollback_detected");
		ck_assert_int_eq(jint(rb, "log_counter"), 1);
		ck_assert_int_eq(jint(rb, "tpm_counter"), fc.bumps);
		json_decref(rb);
	}
	/* Refused again (the record is not signed over); then accepted by
	 * the operator: the record is signed into the log. */
	ck_assert_int_eq(open_with(&o, &log, err, sizeof(err)), WD_EROLLBACK);
	o.accept_rollback = true;
	log = open_ok(&o);
	aud_close(log);
	o.accept_rollback = false;
	ck_assert_int_eq(verify(dir, pub, &out), AUD_VERIFIED);
	free(out);
	log = open_ok(&o);	/* in step again */
	aud_close(log);
	lines_free(&l);
	free(seg);

	/* An empty directory is a new log: it starts, and its checkpoints
	 * carry the counter from then on. */
	rm_rf(dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	/* Trailing segments deleted. */
	o.segment_max_bytes = 600;
	log = open_ok(&o);
	for (int i = 0; i < 12; i++) {
		ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-seg")), WD_OK);
		if (i % 4 == 3)
			ck_assert_int_eq(aud_checkpoint_sync(log, 5000), WD_OK);
	}
	aud_close(log);
	ncp = checkpoint_seqs(dir, cps, 16);
	ck_assert_uint_ge(ncp, 3);
	{
		size_t nsegs;
		char **segs = aud_segments(dir, &nsegs);
		char *last;

		ck_assert_uint_ge(nsegs, 3);
		last = path2(dir, segs[nsegs - 1]);

		ck_assert_int_eq(unlink(last), 0);
		free(last);
		for (size_t i = 0; i < nsegs; i++)
			free(segs[i]);
		free(segs);
	}
	ck_assert_int_eq(open_with(&o, &log, err, sizeof(err)), WD_EROLLBACK);
	free(fc.path);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	rm_rf(cdir);
	free(dir);
	free(cdir);
}
END_TEST

/* A witness: what it got, and whether it was on disk by then; it keeps
 * the lines in a file, as a collector would. */
struct witness_seen {
	const char *dir;
	char *file;
	int lines;
	bool durable;
	char last[4096];
};

static void
witness_send(void *ctx, const char *line, size_t len)
{
	struct witness_seen *w = ctx;
	struct lines l = log_lines(w->dir);
	bool found = false;
	FILE *f;

	for (size_t i = 0; i < l.n; i++)
		found = found || (strlen(l.v[i]) == len &&
		    memcmp(l.v[i], line, len) == 0);
	lines_free(&l);
	w->durable = (w->lines == 0 || w->durable) && found;
	w->lines++;
	snprintf(w->last, sizeof(w->last), "%.*s", (int)len, line);
	f = fopen(w->file, "a");
	fprintf(f, "%.*s\n", (int)len, line);
	fclose(f);
}

static int
verify_witness(const char *dir, const char *file, const char *pub, char **out)
{
	struct aud_verify_opts o = { .pubkey_pem_path = pub };
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc = aud_verify_witness(dir, file, &o, m);

	fclose(m);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return rc;
}

/* Issue 11: each checkpoint leaves the host as it is made; a log cut or
 * rewritten behind it afterwards contradicts what the witness holds, with
 * no counter at all. */
START_TEST(witnesses_get_each_checkpoint_once_it_is_written)
{
	char *dir = tmpdir(), *wdir = tmpdir(), *pub, *out, *seg;
	struct soft_key k;
	struct witness_seen seen = { .dir = dir };
	struct aud_witness wit = { witness_send, &seen };
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	uint64_t cps[16];
	struct lines l;
	size_t cut = 0;

	soft_key_init(&k);
	seen.file = path2(wdir, "witness.jsonl");
	pub = write_pem(wdir, "pub.pem", k.pem);
	o.signer = &k.signer;
	o.witness = &wit;
	log = open_ok(&o);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(submit_sync(log, req_rec("a", "tok-w")), WD_OK);
		if (i % 3 == 2)
			ck_assert_int_eq(aud_checkpoint_sync(log, 5000), WD_OK);
	}
	aud_close(log);
	ck_assert_uint_eq(checkpoint_seqs(dir, cps, 16), 2);
	ck_assert_int_eq(seen.lines, 2);
	ck_assert(seen.durable);
	ck_assert_ptr_nonnull(strstr(seen.last, "\"kind\":\"checkpoint\""));
	ck_assert_int_eq(verify_witness(dir, seen.file, pub, &out), AUD_VERIFIED);
	free(out);
	/* The independent verifier agrees, at each step below. */
	ck_assert_int_eq(pyv("log %s --pubkey %s --witness %s", dir, pub,
	    seen.file), 0);
	ck_assert_int_eq(verify_witness(dir, seen.file, NULL, NULL),
	    AUD_UNAUTHENTICATED);
	/* Cut after the first checkpoint: the log alone still verifies, the
	 * witness says otherwise. */
	l = log_lines(dir);
	seg = path2(dir, "audit-000001.jsonl");
	for (size_t i = 0; i < 4; i++)
		cut += strlen(l.v[i]) + 1;
	ck_assert_int_eq(truncate(seg, (off_t)cut), 0);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	ck_assert_int_eq(verify_witness(dir, seen.file, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "the log was cut or rolled back") != NULL, "%s",
	    out);
	free(out);
	ck_assert_int_eq(pyv("log %s --pubkey %s", dir, pub), 0);
	ck_assert_int_eq(pyv("log %s --pubkey %s --witness %s", dir, pub,
	    seen.file), 1);
	/* Put back, then rewritten from record 2 on and re-signed with
	 * another key (a forger's own history). */
	lines_write(seg, &l);
	ck_assert_int_eq(verify_witness(dir, seen.file, pub, NULL), AUD_VERIFIED);
	ck_assert_int_eq(pyv("log %s --pubkey %s --witness %s", dir, pub,
	    seen.file), 0);
	rechain(dir, edit_forge);
	ck_assert_int_eq(verify_witness(dir, seen.file, pub, &out), AUD_INVALID);
	ck_assert_msg(strstr(out, "not the one the witness saw signed") != NULL,
	    "%s", out);
	free(out);
	ck_assert_int_eq(pyv("log %s --pubkey %s --witness %s", dir, pub,
	    seen.file), 1);
	lines_free(&l);
	free(seg);
	free(seen.file);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	rm_rf(wdir);
	free(dir);
	free(wdir);
}
END_TEST

/* A signer as slow as a hardware TPM. */
static enum wd_err
slow_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	usleep(400000);
	return soft_sign(ctx, msg, len, sig, siglen);
}

/* Issue 11: signing happens on the writer thread; no append waits for the
 * TPM (format 1 signed inline, in the appending thread, under the lock
 * every appender waits on). */
START_TEST(appends_never_wait_for_the_signer)
{
	char *dir = tmpdir(), *pub;
	struct soft_key k;
	struct aud_opts o = opts(dir);
	struct aud_log *log;
	uint64_t worst = 0;

	soft_key_init(&k);
	k.signer.sign = slow_sign;
	o.signer = &k.signer;
	o.checkpoint_every = 10;
	log = open_ok(&o);
	for (int i = 0; i < 400; i++) {
		uint64_t t0 = wd_mono_us(), dt;

		ck_assert_int_eq(aud_append(log, req_rec("a", "tok-slow")), WD_OK);
		dt = wd_mono_us() - t0;
		if (dt > worst)
			worst = dt;
		usleep(2000);
	}
	aud_close(log);
	ck_assert_msg(worst < 150000, "an append waited %llu us",
	    (unsigned long long)worst);
	pub = write_pem(dir, "pub.pem", k.pem);
	ck_assert_int_eq(verify(dir, pub, NULL), AUD_VERIFIED);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* The independent verifier (audit/verify.py, FORMAT.md) agrees with
 * warden on a log and its exports, tampered or not. */
/* verify's hook: after its first window, the segment is cut to `to`. */
struct cut_hook {
	off_t to;
	bool done;
};

static void
cut_after_window(void *arg, const char *path)
{
	struct cut_hook *h = arg;

	if (!h->done) {
		ck_assert_int_eq(truncate(path, h->to), 0);
		h->done = true;
	}
}

/*
 * A segment read a window at a time verifies as read whole, with lines
 * across windows and a window shorter than a line; and one cut short
 * while it is being read is judged as it then stands (a torn line, a log
 * that ends early), never a crash: a mapping of it would raise SIGBUS
 * on the bytes that are gone.
 */
START_TEST(verify_reads_segments_in_windows)
{
	static const size_t windows[] = { 0, 4096, 700, 100 };
	static const char *tenants = "abababababababababababababababababababab";
	char *dir = tmpdir(), *pub, *seg;
	struct aud_verify_result whole, r;
	struct soft_key k;
	struct stat st;

	soft_key_init(&k);
	make_signed_log(dir, &k, tenants);
	pub = write_pem(dir, "pub.pem", k.pem);
	{
		struct aud_verify_opts o = { .pubkey_pem_path = pub };

		ck_assert_int_eq(aud_verify_dir_result(dir, &o, NULL, &whole),
		    AUD_VERIFIED);
	}
	ck_assert_uint_gt(whole.records, 40);
	for (size_t i = 0; i < sizeof(windows) / sizeof(*windows); i++) {
		struct aud_verify_opts o = { .pubkey_pem_path = pub,
		    .window = windows[i] };

		ck_assert_int_eq(aud_verify_dir_result(dir, &o, NULL, &r),
		    AUD_VERIFIED);
		ck_assert_uint_eq(r.records, whole.records);
		ck_assert_uint_eq(r.last_seq, whole.last_seq);
	}
	/* Cut while read: in a line, then at a line's end. */
	seg = path2(dir, "audit-000001.jsonl");
	ck_assert_int_eq(stat(seg, &st), 0);
	for (int at_line_end = 0; at_line_end < 2; at_line_end++) {
		struct cut_hook h = { .to = st.st_size / 2 };
		struct aud_verify_opts o = { .pubkey_pem_path = pub,
		    .window = 4096, .after_window = cut_after_window,
		    .hook_arg = &h };
		char *text;
		size_t len;
		int rc;

		rm_rf(dir);
		free(dir);
		dir = tmpdir();
		free(seg);
		seg = path2(dir, "audit-000001.jsonl");
		make_signed_log(dir, &k, tenants);
		free(pub);
		pub = write_pem(dir, "pub.pem", k.pem);
		o.pubkey_pem_path = pub;
		if (at_line_end) {
			text = wd_slurp(seg, 1u << 24, &len);
			ck_assert_ptr_nonnull(text);
			while (h.to > 4096 && text[h.to - 1] != '\n')
				h.to--;
			free(text);
		}
		rc = aud_verify_dir_result(dir, &o, NULL, &r);
		ck_assert_msg(h.done, "rc %d: %s (segment %lld bytes)", rc, r.why,
		    (long long)st.st_size);
		ck_assert_int_ne(rc, AUD_VERIFIED);
		ck_assert_uint_lt(r.records, whole.records);
		if (!at_line_end)
			ck_assert_ptr_nonnull(strstr(r.why, "torn last line"));
	}
	free(seg);
	free(pub);
	soft_key_free(&k);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(python_verifier_agrees)
{
	char *dir = tmpdir(), *pub, *other, *path;
	struct soft_key k, k2;
	struct lines ex;

	soft_key_init(&k);
	soft_key_init(&k2);
	make_signed_log(dir, &k, "abababa");
	pub = write_pem(dir, "pub.pem", k.pem);
	other = write_pem(dir, "other.pem", k2.pem);
	ck_assert_int_eq(py("log", dir, pub), 0);
	ck_assert_int_eq(py("log", dir, NULL), 3);
	ck_assert_int_eq(py("log", dir, other), 1);
	path = export(dir, "jsonl", "a", 0, &k);
	ck_assert_int_eq(py("export", path, pub), 0);
	ck_assert_int_eq(py("export", path, other), 1);
	/* Hidden own record, re-signed by an insider. */
	ex = file_lines(path);
	free(ex.v[4]);
	{
		struct lines log = log_lines(dir);

		ex.v[4] = stub_of(log.v[2]);
		lines_free(&log);
	}
	lines_write(path, &ex);
	lines_free(&ex);
	resign(path, &k, fewer_records);
	ck_assert_int_eq(py("export", path, pub), 1);
	free(path);
	path = export(dir, "csv", "a", 0, &k);
	ck_assert_int_eq(py("export", path, pub), 0);
	ex = file_lines(path);
	{
		char *p = strstr(ex.v[5], ",\"a\",\"allow\"");

		ck_assert_ptr_nonnull(p);
		p[2] = 'b';
	}
	lines_write(path, &ex);
	lines_free(&ex);
	resign(path, &k, NULL);
	ck_assert_int_eq(py("export", path, pub), 1);
	rechain(dir, edit_forge);
	ck_assert_int_eq(py("log", dir, pub), 1);
	free(path);
	free(pub);
	free(other);
	soft_key_free(&k);
	soft_key_free(&k2);
	rm_rf(dir);
	free(dir);
}
END_TEST

Suite *
suite_audit(void)
{
	Suite *s = suite_create("audit");
	TCase *chain = tcase_create("chain");
	TCase *open = tcase_create("open");
	TCase *write = tcase_create("write_and_verify");
	TCase *tamper = tcase_create("tamper");
	TCase *sign = tcase_create("checkpoints");
	TCase *exp = tcase_create("export");
	TCase *fail = tcase_create("failure");

	tcase_add_test(chain, line_round_trip_and_exact_suffix);
	tcase_add_test(chain, split_refuses_what_is_not_a_line);
	tcase_add_test(chain, control_chars_and_non_ascii_round_trip);
	tcase_add_test(chain, nul_in_a_string_still_verifies);
	suite_add_tcase(s, chain);

	tcase_add_test(open, open_creates_a_private_dir_and_key);
	tcase_add_test(open, open_refuses_a_dir_others_can_read);
	tcase_add_test(open, payload_digest_is_hmac_with_the_key_file);
	tcase_add_test(open, torn_last_line_is_cut_and_recorded);
	tcase_add_test(open, torn_line_alone_in_the_newest_segment);
	tcase_add_test(open, damaged_middle_line_refuses_to_open);
	suite_add_tcase(s, open);

	tcase_add_test(write, n_records_verify_in_order);
	tcase_add_test(write, chain_runs_across_rotated_segments);
	tcase_add_test(write, done_fires_after_the_record_is_on_disk);
	tcase_add_test(write, concurrent_appends_make_one_chain);
	tcase_add_test(write, batched_appends_make_one_chain);
	suite_add_tcase(s, write);

	tcase_add_test(tamper, tamper_changed_byte_is_altered);
	tcase_add_test(tamper, tamper_deleted_line_is_missing);
	tcase_add_test(tamper, tamper_swapped_lines_are_reordered);
	tcase_add_test(tamper, tamper_appended_and_truncated);
	tcase_add_test(tamper, tamper_in_a_big_segment_is_caught_on_either_thread);
	tcase_set_timeout(tamper, 60);	/* the big segment, sanitized */
	suite_add_tcase(s, tamper);

	tcase_add_test(sign, checkpoints_every_n_and_at_close);
	tcase_add_test(sign, checkpoint_verifies_with_openssl_cli);
	tcase_add_test(sign, rechained_forgery_is_caught_by_signatures);
	tcase_add_test(sign, replayed_checkpoint_is_caught);
	tcase_add_test(sign, malformed_signatures_are_invalid_not_a_crash);
	suite_add_tcase(s, sign);

	tcase_add_test(exp, export_one_tenant_verifies_alone);
	tcase_add_test(exp, export_tampering_is_detected);
	tcase_add_test(exp, export_rewrite_before_a_stub_is_detected);
	tcase_add_test(exp, export_with_its_own_key_in_the_header_is_detected);
	tcase_add_test(exp, export_hidden_own_record_is_detected);
	tcase_add_test(exp, export_truncated_is_detected);
	tcase_add_test(exp, export_since_starts_at_an_anchor);
	tcase_add_test(exp, empty_export_verifies);
	tcase_add_test(exp, csv_export_verifies_and_detects_tampering);
	suite_add_tcase(s, exp);

	tcase_set_timeout(fail, 30);
	tcase_add_test(fail, write_failure_fails_closed_and_loses_nothing);
	tcase_add_test(fail, failed_batch_leaves_nothing_behind);
	tcase_add_test(fail, second_writer_cannot_break_the_chain);
	suite_add_tcase(s, fail);

	TCase *v2 = tcase_create("format2");
	tcase_set_timeout(v2, 60);
	tcase_add_test(v2, spliced_lines_are_canonical);
	tcase_add_test(v2, canon_writer_matches_jansson_bytes);
	tcase_add_test(v2, canon_writer_refuses_what_it_cannot_write);
	tcase_add_test(v2, canon_raw_text_is_written_as_its_tree);
	tcase_add_test(v2, verify_reads_segments_in_windows);
	tcase_add_test(v2, merkle_proofs_hold_for_every_size);
	tcase_add_test(v2, proofs_of_a_log_verify_alone);
	tcase_add_test(v2, tree_files_are_checked_and_rebuilt);
	tcase_add_test(v2, dropped_checkpoints_and_a_recomputed_chain_fail);
	tcase_add_test(v2, uncovered_old_records_fail_with_a_key);
	tcase_add_test(v2, rollback_is_detected_with_the_counter);
	tcase_add_test(v2, witnesses_get_each_checkpoint_once_it_is_written);
	tcase_add_test(v2, appends_never_wait_for_the_signer);
	tcase_add_test(v2, python_verifier_agrees);
	suite_add_tcase(s, v2);
	return s;
}
