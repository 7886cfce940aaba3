/*
 * cli_audit.c - `warden audit verify | export | verify-export | prove |
 * verify-proof | pubkey | purge`.
 *
 * Exit statuses of the verifying commands (audit/aud.h AUD_*): 0 verified
 * with the key the auditor gave, 1 invalid, 2 unreadable, 3 consistent
 * but not authenticated.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/aud.h"
#include "gateway/gw.h"
#include "policy/pol.h"
#include "secrets/sec.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: warden audit verify DIR [--pubkey PEM | --pin SHA256] "
	    "[--tpm-counter N] [--witness FILE]\n"
	    "       warden audit export DIR --format jsonl|csv [--since T] "
	    "[--until T]\n"
	    "                 [--tenant T] [--verdict V] -o FILE\n"
	    "                 [-c FILE | --secrets-store DIR --tcti TCTI]"
	    " (signs the manifest)\n"
	    "       warden audit verify-export FILE [--pubkey PEM | --pin SHA256]\n"
	    "       warden audit prove DIR SEQ [--checkpoint N]\n"
	    "       warden audit prove DIR --consistency A B\n"
	    "       warden audit verify-proof PROOF [--pubkey PEM | --pin SHA256]\n"
	    "       warden audit pubkey (-c FILE | --secrets-store DIR)\n"
	    "       warden audit purge DIR (--tenant T | --expired)\n");
	return 2;
}

/* `warden audit pubkey`: the checkpoint key's public half, as PEM. */
static int
cmd_pubkey(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "secrets-store", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *store = NULL;
	struct pol_snapshot *snap = NULL;
	char err[512], *pem = NULL;
	int ch, rc = 1;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		if (ch == 'c')
			config = optarg;
		else if (ch == 'S')
			store = optarg;
		else
			return usage();
	}
	if (optind != argc || (config == NULL && store == NULL))
		return usage();
	if (store == NULL) {
		if (pol_load(config, stderr, &snap) != WD_OK)
			return 2;
		store = snap->secrets.store;
	}
	if (sec_sign_pubkey_pem(store, &pem, err, sizeof(err)) != WD_OK)
		fprintf(stderr, "warden: %s\n", err);
	else {
		fputs(pem, stdout);
		rc = 0;
	}
	free(pem);
	pol_snapshot_unref(snap);
	return rc;
}

/* The audit key in the TPM signs an export's manifest (the CLI's own
 * connection; the gateway's is not shared). */
struct cli_signer {
	struct sec_tpm *tpm;
	const char *store;
};

static enum wd_err
cli_sign(void *ctx, const unsigned char *msg, size_t len, unsigned char *sig,
    size_t *siglen)
{
	struct cli_signer *c = ctx;
	unsigned char digest[32];
	char err[512] = "";
	enum wd_err rc;

	wd_sha256(msg, len, digest);
	rc = sec_sign_digest(c->tpm, c->store, digest, sig, siglen, err,
	    sizeof(err));
	if (rc != WD_OK)
		fprintf(stderr, "warden: signing the manifest: %s\n", err);
	return rc;
}

static int
cmd_export(const char *dir, struct aud_export_opts *eo, const char *output,
    const char *config, const char *store, const char *tcti)
{
	struct pol_snapshot *snap = NULL;
	struct cli_signer cs = { 0 };
	struct aud_signer signer = { 0 };
	char err[512], *pem = NULL;
	int rc = 2;

	if (config != NULL) {
		if (pol_load(config, stderr, &snap) != WD_OK)
			return 2;
		if (store == NULL)
			store = snap->secrets.store;
		if (tcti == NULL)
			tcti = snap->secrets.tcti;
	}
	if (store != NULL && tcti != NULL && *tcti != '\0') {
		if (sec_sign_pubkey_pem(store, &pem, err, sizeof(err)) != WD_OK ||
		    sec_tpm_open(tcti, &cs.tpm, err, sizeof(err)) != WD_OK) {
			fprintf(stderr, "warden: the audit key: %s\n", err);
			goto out;
		}
		cs.store = store;
		signer.sign = cli_sign;
		signer.ctx = &cs;
		signer.pubkey_pem = pem;
		eo->signer = &signer;
	} else {
		fprintf(stderr, "warden: no TPM named (-c FILE, or --secrets-store "
		    "and --tcti): the export's manifest is not signed and an "
		    "auditor cannot authenticate it\n");
	}
	rc = aud_export(dir, eo, output, stderr);
out:
	if (cs.tpm != NULL)
		sec_tpm_close(cs.tpm);
	free(pem);
	pol_snapshot_unref(snap);
	return rc;
}

static bool
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	*v = strtoull(s, &end, 10);
	return *end == '\0';
}

int
gw_cmd_audit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pubkey", required_argument, NULL, 'p' },
		{ "pin", required_argument, NULL, 'P' },
		{ "format", required_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "tenant", required_argument, NULL, 't' },
		{ "verdict", required_argument, NULL, 'v' },
		{ "output", required_argument, NULL, 'o' },
		{ "expired", no_argument, NULL, 'E' },
		{ "checkpoint", required_argument, NULL, 'k' },
		{ "consistency", no_argument, NULL, 'C' },
		{ "tpm-counter", required_argument, NULL, 'T' },
		{ "config", required_argument, NULL, 'c' },
		{ "secrets-store", required_argument, NULL, 'S' },
		{ "tcti", required_argument, NULL, 'X' },
		{ "witness", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct aud_export_opts eo = { .format = "jsonl" };
	struct aud_verify_opts vo = { .progress = true };
	const char *what, *output = NULL, *config = NULL, *store = NULL;
	const char *tcti = NULL, *witness = NULL;
	uint64_t cpseq = 0;
	bool purge_expired = false, consistency = false;
	int ch, nargs;

	if (argc >= 2 && strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc, argv);
	if (argc < 3)
		return usage();
	what = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "o:c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			vo.pubkey_pem_path = optarg;
			break;
		case 'P':
			vo.pin = optarg;
			break;
		case 'f':
			eo.format = optarg;
			break;
		case 's':
			if ((eo.since_us = aud_parse_ts(optarg)) == 0) {
				fprintf(stderr, "warden: --since wants RFC 3339 UTC, e.g. "
				    "2026-11-25T00:00:00Z\n");
				return 2;
			}
			break;
		case 'u':
			if ((eo.until_us = aud_parse_ts(optarg)) == 0) {
				fprintf(stderr, "warden: --until wants RFC 3339 UTC\n");
				return 2;
			}
			break;
		case 't':
			eo.tenant = optarg;
			break;
		case 'v':
			eo.verdict = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'E':
			purge_expired = true;
			break;
		case 'k':
			if (!parse_u64(optarg, &cpseq))
				return usage();
			break;
		case 'C':
			consistency = true;
			break;
		case 'T':
			if (!parse_u64(optarg, &vo.tpm_counter))
				return usage();
			vo.has_tpm_counter = true;
			break;
		case 'c':
			config = optarg;
			break;
		case 'S':
			store = optarg;
			break;
		case 'X':
			tcti = optarg;
			break;
		case 'W':
			witness = optarg;
			break;
		default:
			return usage();
		}
	}
	nargs = argc - optind;
	if (vo.pubkey_pem_path != NULL && vo.pin != NULL) {
		fprintf(stderr, "warden: --pubkey or --pin, not both\n");
		return 2;
	}
	if (strcmp(what, "prove") == 0) {
		uint64_t a, b;

		if (consistency) {
			if (nargs != 3 || !parse_u64(argv[optind + 1], &a) ||
			    !parse_u64(argv[optind + 2], &b))
				return usage();
			return aud_prove_consistency(argv[optind], a, b, stdout, stderr);
		}
		if (nargs != 2 || !parse_u64(argv[optind + 1], &a))
			return usage();
		return aud_prove_inclusion(argv[optind], a, cpseq, stdout, stderr);
	}
	if (nargs != 1)
		return usage();
	if (strcmp(what, "verify") == 0) {
		int a = aud_verify_dir(argv[optind], &vo, stdout), b;

		if (witness == NULL)
			return a;
		b = aud_verify_witness(argv[optind], witness, &vo, stdout);
		/* The worse of the two: invalid, unreadable, unauthenticated. */
		return a == AUD_INVALID || b == AUD_INVALID ? AUD_INVALID :
		    a == AUD_UNREADABLE || b == AUD_UNREADABLE ? AUD_UNREADABLE :
		    a == AUD_UNAUTHENTICATED || b == AUD_UNAUTHENTICATED ?
		    AUD_UNAUTHENTICATED : AUD_VERIFIED;
	}
	if (strcmp(what, "verify-export") == 0)
		return aud_verify_export(argv[optind], &vo, stdout);
	if (strcmp(what, "verify-proof") == 0)
		return aud_verify_proof(argv[optind], &vo, stdout);
	if (strcmp(what, "purge") == 0) {
		size_t n;

		if ((eo.tenant == NULL) == !purge_expired)
			return usage();
		n = eo.tenant ? aud_payload_purge(argv[optind], eo.tenant) :
		    aud_payload_sweep(argv[optind]);
		printf("purged %zu payload%s%s%s; the hash chain is untouched\n", n,
		    n == 1 ? "" : "s", eo.tenant ? " of tenant " : " past their TTL",
		    eo.tenant ? eo.tenant : "");
		return 0;
	}
	if (strcmp(what, "export") != 0 || output == NULL)
		return usage();
	return cmd_export(argv[optind], &eo, output, config, store, tcti);
}
