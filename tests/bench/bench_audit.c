/*
 * bench_audit.c - the audit log's throughput: group-commit appends per
 * second from 4 threads (records of a typical request's size, built
 * before the clock runs; checkpoints every 1,000 records signed by a
 * software P-256 key on the writer thread), `audit verify`
 * records per second with the key, and inclusion proofs from the tree
 * files of a 10-million-leaf tree.  Run by `make bench`.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit/aud_int.h"

#define THREADS 4
#define PER_THREAD 100000
#define TREE_LEAVES 10000000ull
#define PROOFS 1000

static enum wd_err
soft_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok = m != NULL &&
	    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, ctx) == 1 &&
	    EVP_DigestSign(m, sig, siglen, msg, len) == 1;

	EVP_MD_CTX_free(m);
	return ok ? WD_OK : WD_EIO;
}

#define ROUND 10000

static pthread_barrier_t go, done;
static struct aud_log *logs_arg[THREADS];

static json_t *
make_record(void)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:[s],"
	    "s:{s:i,s:i}}", "kind", "request", "tenant", "tenant-0042", "app",
	    "support-bot", "model", "gpt-4o", "verdict", "allow", "route",
	    "openai-eu", "route_country", "IE", "status", 200, "latency_ms", 231,
	    "decision_id", "d-0123456789abcdef0123456789abcdef",
	    "policy_version", "3f2a9c1e", "rules", "gdpr-transfer", "usage",
	    "prompt_tokens", 812, "completion_tokens", 97);
}

/* The same record as the gateway writes it: its canonical text directly
 * (aud_canon, keys in order), no tree. */
static void
make_canon(struct aud_log *log, struct aud_canon *c)
{
	aud_canon_begin(c, log);
	aud_canon_key(c, "app");
	aud_canon_str(c, "support-bot");
	aud_canon_key(c, "decision_id");
	aud_canon_str(c, "d-0123456789abcdef0123456789abcdef");
	aud_canon_key(c, "kind");
	aud_canon_str(c, "request");
	aud_canon_key(c, "latency_ms");
	aud_canon_int(c, 231);
	aud_canon_key(c, "model");
	aud_canon_str(c, "gpt-4o");
	aud_canon_key(c, "policy_version");
	aud_canon_str(c, "3f2a9c1e");
	aud_canon_key(c, "route");
	aud_canon_str(c, "openai-eu");
	aud_canon_key(c, "route_country");
	aud_canon_str(c, "IE");
	aud_canon_key(c, "rules");
	aud_canon_arr(c);
	aud_canon_str(c, "gdpr-transfer");
	aud_canon_close(c);
	aud_canon_key(c, "status");
	aud_canon_int(c, 200);
	aud_canon_key(c, "tenant");
	aud_canon_str(c, "tenant-0042");
	aud_canon_key(c, "usage");
	aud_canon_obj(c);
	aud_canon_key(c, "completion_tokens");
	aud_canon_int(c, 97);
	aud_canon_key(c, "prompt_tokens");
	aud_canon_int(c, 812);
	aud_canon_close(c);
	aud_canon_key(c, "verdict");
	aud_canon_str(c, "allow");
}

static bool use_canon;

/* The process's CPU time, all threads (the log's writer thread too). */
static uint64_t
proc_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	    (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* This thread's CPU time: building runs 4 threads on 2 cores. */
static uint64_t
thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
static uint64_t build_us[THREADS];

/* Rounds of ROUND records: built first (the gateway builds its record
 * while handling the request), then appended between two barriers, so
 * the clock sees the log's work.  The building is timed apart (CPU). */
static void *
appender(void *arg)
{
	struct aud_log *log = *(struct aud_log **)arg;
	int me = (int)((struct aud_log **)arg - logs_arg);
	json_t **recs = malloc(ROUND * sizeof(*recs));
	struct aud_canon *cs = malloc(ROUND * sizeof(*cs));

	for (int r = 0; r < PER_THREAD / ROUND; r++) {
		uint64_t t0 = thread_cpu_us();

		for (int i = 0; i < ROUND; i++)
			if (use_canon)
				make_canon(log, &cs[i]);
			else
				recs[i] = make_record();
		build_us[me] += thread_cpu_us() - t0;
		pthread_barrier_wait(&go);
		for (int i = 0; i < ROUND; i++)
			if ((use_canon ? aud_try_append_canon(log, &cs[i]) :
			    aud_append(log, recs[i])) != WD_OK) {
				fprintf(stderr, "bench_audit: append failed\n");
				exit(1);
			}
		pthread_barrier_wait(&done);
	}
	free(recs);
	free(cs);
	return NULL;
}

static int
rm_tree(const char *dir)
{
	char *cmd;
	int rc;

	if (asprintf(&cmd, "rm -rf '%s'", dir) < 0)
		return -1;
	rc = system(cmd);
	free(cmd);
	return rc;
}

/* 4 threads append THREADS * PER_THREAD records to a new log in dir;
 * appends per second (-1: failed), *build_us the building per record. */
static double
run_appends(char *dir, struct aud_opts *o, bool canon, double *build,
    double *cpu)
{
	pthread_t th[THREADS];
	struct aud_log *log;
	char err[512];
	uint64_t t0, t1 = 0, bsum = 0, c0, c1 = 0;

	o->dir = dir;
	if (aud_open(o, &log, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "bench_audit: %s\n", err);
		return -1;
	}
	use_canon = canon;
	pthread_barrier_init(&go, NULL, THREADS + 1);
	pthread_barrier_init(&done, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		logs_arg[i] = log;
		build_us[i] = 0;
		pthread_create(&th[i], NULL, appender, &logs_arg[i]);
	}
	for (int r = 0; r < PER_THREAD / ROUND; r++) {
		pthread_barrier_wait(&go);
		t0 = wd_mono_us();
		c0 = proc_cpu_us();
		pthread_barrier_wait(&done);
		t1 += wd_mono_us() - t0;
		c1 += proc_cpu_us() - c0;
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		bsum += build_us[i];
	}
	aud_close(log);
	pthread_barrier_destroy(&go);
	pthread_barrier_destroy(&done);
	*build = (double)bsum / (THREADS * PER_THREAD);
	*cpu = (double)c1 / (THREADS * PER_THREAD);
	return (double)THREADS * PER_THREAD / ((double)t1 / 1e6);
}

int
main(void)
{
	char dir[] = "/tmp/warden-bench-audit-XXXXXX", pub[600];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	struct aud_signer signer = { soft_sign, key, NULL };
	struct aud_opts o = {
		.dir = dir, .instance = "bench", .group_commit_ms = 2,
		.segment_max_bytes = 64u << 20, .checkpoint_every = 1000,
		.checkpoint_interval_s = 60, .signer = &signer,
	};
	struct aud_verify_opts vo = { .pubkey_pem_path = pub };
	char dir_json[] = "/tmp/warden-bench-audit-XXXXXX";
	uint64_t t0, t1;
	double appends, appends_json, verifies, build_json, build_canon;
	double cpu_json = 0, cpu_canon, vcpu;
	FILE *f, *devnull = fopen("/dev/null", "w");
	BIO *b = BIO_new(BIO_s_mem());
	char *pem;
	long n;

	if (key == NULL || b == NULL || mkdtemp(dir) == NULL ||
	    mkdtemp(dir_json) == NULL)
		return 1;
	PEM_write_bio_PUBKEY(b, key);
	n = BIO_get_mem_data(b, &pem);
	signer.pubkey_pem = strndup(pem, (size_t)n);
	snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
	f = fopen(pub, "w");
	fputs(signer.pubkey_pem, f);
	fclose(f);

	/* The jansson path (records of other kinds) into a log of its own,
	 * then the gateway's path into the log that is verified. */
	if (getenv("BENCH_AUDIT_NO_JSON") != NULL)
		appends_json = build_json = 0;	/* profiling the other */
	else if ((appends_json = run_appends(dir_json, &o, false,
	    &build_json, &cpu_json)) < 0)
		return 1;
	if ((appends = run_appends(dir, &o, true, &build_canon, &cpu_canon)) < 0)
		return 1;
	rm_tree(dir_json);

	t0 = wd_mono_us();
	vcpu = (double)proc_cpu_us();
	if (aud_verify_dir(dir, &vo, devnull) != AUD_VERIFIED) {
		fprintf(stderr, "bench_audit: the log does not verify\n");
		return 1;
	}
	t1 = wd_mono_us();
	vcpu = ((double)proc_cpu_us() - vcpu) / 1e6;
	verifies = (double)THREADS * PER_THREAD / ((double)(t1 - t0) / 1e6);
	printf("audit: group commit %.0f appends/s (%d threads, %d records); "
	    "verify %.0f records/s with the key\n", appends, THREADS,
	    THREADS * PER_THREAD, verifies);
	printf("audit: records built as jansson trees: %.0f appends/s "
	    "(serialised with sorted keys in the append); building a record: "
	    "%.2f us direct, %.2f us as a jansson tree\n", appends_json,
	    build_canon, build_json);
	printf("audit: CPU (all threads): %.2f us per append direct, %.2f us "
	    "per jansson append; verify %.0f records per CPU-second\n",
	    cpu_canon, cpu_json, (double)THREADS * PER_THREAD / vcpu);
	if (getenv("BENCH_AUDIT_KEEP") != NULL)
		printf("kept %s\n", dir);
	else
		rm_tree(dir);
	if (getenv("BENCH_AUDIT_NO_TREE") != NULL)
		return 0;

	/* Proofs from the tree files of 10 million leaves. */
	{
		char tdir[] = "/tmp/warden-bench-tree-XXXXXX", sub[600];
		struct aud_tree t;
		struct aud_tree_reader r;
		struct aud_nodes nodes = { aud_tree_reader_get, &r };
		struct aud_proof_path *p = calloc(1, sizeof(*p));
		unsigned char leaf[32], root[32];
		uint64_t worst = 0, total = 0, rng = 88172645463325252ull;

		if (mkdtemp(tdir) == NULL || p == NULL)
			return 1;
		snprintf(sub, sizeof(sub), "%s/" AUD_TREE_DIR, tdir);
		mkdir(sub, 0700);
		aud_tree_init(&t);
		t.logdir = strdup(tdir);
		for (uint64_t i = 0; i < TREE_LEAVES; i++) {
			aud_leaf_hash(&i, sizeof(i), leaf);
			aud_tree_add(&t, leaf);
			if (t.pend[0].len >= (4u << 20))
				aud_tree_flush(&t);
		}
		aud_tree_flush(&t);
		aud_frontier_root(&t.fr, root);
		aud_tree_free(&t);
		aud_tree_reader_open(&r, tdir);
		for (int i = 0; i < PROOFS; i++) {
			uint64_t idx, s, dt;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			idx = rng % TREE_LEAVES;
			s = wd_mono_us();
			aud_leaf_hash(&idx, sizeof(idx), leaf);
			if (aud_inclusion_path(&nodes, idx, TREE_LEAVES, p) != WD_OK ||
			    !aud_verify_inclusion(idx, TREE_LEAVES, leaf, p, root)) {
				fprintf(stderr, "bench_audit: a proof does not hold\n");
				return 1;
			}
			dt = wd_mono_us() - s;
			total += dt;
			if (dt > worst)
				worst = dt;
		}
		aud_tree_reader_close(&r);
		printf("audit: inclusion proof in a tree of %llu leaves: %.3f ms "
		    "mean, %.3f ms worst (%d proofs, from the tree files)\n",
		    (unsigned long long)TREE_LEAVES, (double)total / PROOFS / 1000.0,
		    (double)worst / 1000.0, PROOFS);
		rm_tree(tdir);
		free(p);
	}
	fclose(devnull);
	EVP_PKEY_free(key);
	BIO_free(b);
	return 0;
}
