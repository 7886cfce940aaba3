/*
 * fuzz_audit.c - the audit log's readers (audit/) on arbitrary files: the
 * line splitter on every line, the input as a segment (`warden audit
 * verify DIR`), as an export (`warden audit verify-export FILE`), as a
 * proof (`warden audit verify-proof`) and as a witness's file (`verify
 * --witness`).  A log on disk or an export handed
 * to an auditor is untrusted:
 * the verifiers must never crash or hang, never answer 0 (verified)
 * without a key, and a log that is consistent must export to a file that
 * is consistent.
 * The auditor's readers (issue 18: `audit stats`, `register`, `tail`)
 * read the same segment: a log that is consistent must read to the end
 * with them, and nothing may crash them.
 *
 * The input goes to DIR/audit-000001.jsonl in one temp directory per
 * process (mode 0700, in /tmp), rewritten for every input and removed at
 * exit with the export written next to it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/aud.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/warden-fuzz-audit-XXXXXX";
static char seg[64], exported[64];
static FILE *devnull;

static void
cleanup(void)
{
	unlink(seg);
	unlink(exported);
	rmdir(dir);
}

static void
put(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) ||
	    fclose(f) != 0)
		abort();
}

/* A split line gives back C exactly: the line minus its 75-byte suffix,
 * plus '}', and a 64-digit lower-case hex hash. */
static void
check_split(const char *line, size_t len)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen = 0;
	char *c = aud_split_line(line, len, hash, &clen);

	if (c == NULL)
		return;
	if (clen + AUD_SUFFIX_LEN - 1 != len || c[clen] != '\0' ||
	    c[clen - 1] != '}' || memcmp(c, line, clen - 1) != 0 ||
	    strlen(hash) != AUD_HASH_HEX ||
	    memcmp(hash, line + len - AUD_SUFFIX_LEN + 9, AUD_HASH_HEX) != 0)
		abort();
	for (size_t i = 0; i < AUD_HASH_HEX; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
		    (hash[i] >= 'a' && hash[i] <= 'f')))
			abort();
	free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aud_verify_opts vo = { .pubkey_pem_path = NULL };
	struct aud_export_opts eo = { .format = "jsonl" };
	int rc;

	if (devnull == NULL) {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(seg, sizeof(seg), "%s/audit-000001.jsonl", dir);
		snprintf(exported, sizeof(exported), "%s/export.jsonl", dir);
		devnull = fopen("/dev/null", "w");
		if (devnull == NULL)
			abort();
		atexit(cleanup);
	}
	/* The record parser, line by line (exact-size copies, as a reader
	 * holding one line would have). */
	for (size_t off = 0; off < size; ) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t ll = nl ? (size_t)(nl - (data + off)) : size - off;
		char *line = malloc(ll > 0 ? ll : 1);

		if (line == NULL)
			abort();
		memcpy(line, data + off, ll);
		check_split(line, ll);
		free(line);
		off += ll + 1;
	}

	/* As a segment. */
	put(seg, data, size);
	rc = aud_verify_dir(dir, &vo, devnull);
	/* No key given: never "verified", at best consistent. */
	if (rc != AUD_INVALID && rc != AUD_UNAUTHENTICATED)
		abort();
	if (rc == AUD_UNAUTHENTICATED) {
		/* What is consistent exports, whole, to what is consistent. */
		if (aud_export(dir, &eo, exported, devnull) != 0 ||
		    aud_verify_export(exported, &vo, devnull) != AUD_UNAUTHENTICATED)
			abort();
	}

	/* As the auditor's commands read it. */
	{
		struct aud_stats_opts so = { 0 };
		struct aud_tail_opts to = { .poll_ms = 1 };
		json_t *st = NULL;
		char why[256];
		int src = aud_stats(dir, &so, &st, why, sizeof(why));

		if (src != 0 && src != 1)
			abort();
		/* What verify found consistent reads to the end. */
		if (rc == AUD_UNAUTHENTICATED && src != 0)
			abort();
		if (st != NULL) {
			aud_stats_print(st, devnull);
			aud_register_print(st, "t", true, devnull);
			aud_register_print(st, "t", false, devnull);
			json_decref(st);
		}
		src = aud_tail(dir, &to, devnull);
		if (src != 0 && src != 1)
			abort();
		if (rc == AUD_UNAUTHENTICATED && src != 0)
			abort();
	}

	/* As an export. */
	rc = aud_verify_export(seg, &vo, devnull);
	if (rc == AUD_VERIFIED)
		abort();
	/* As a proof, and as what a witness kept (against the log it is). */
	rc = aud_verify_proof(seg, &vo, devnull);
	if (rc == AUD_VERIFIED)
		abort();
	rc = aud_verify_witness(dir, seg, &vo, devnull);
	if (rc == AUD_VERIFIED)
		abort();
	return 0;
}
