/*
 * cli_audit.c - `warden audit verify | export | verify-export | prove |
 * verify-proof | pubkey | counter | purge | payload show`.
 *
 * Exit statuses of the verifying commands (audit/aud.h AUD_*): 0 verified
 * with the key the auditor gave, 1 invalid, 2 unreadable, 3 consistent
 * but not authenticated.
 *
 * purge and payload show need the TPM, where kept payloads' keys live:
 * purge destroys them there (so every copy of those payloads, backups
 * included, becomes unreadable) and records itself in the chain through
 * the log's inbox (aud_post_event), whether or not a gateway holds the
 * log; payload show decrypts one payload into locked memory and writes it
 * to standard output, and nowhere else.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/aud.h"
#include "gateway/gw.h"
#include "gateway/gw_int.h"
#include "policy/pol.h"
#include "secrets/sec.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: warden audit verify DIR [--pubkey PEM | --pin SHA256] "
	    "[--tpm-counter N] [--witness FILE]\n"
	    "       warden audit export DIR [DIR...] --format jsonl|csv [--since T] "
	    "[--until T]\n"
	    "                 [--tenant T] [--verdict V] -o FILE\n"
	    "                 [-c FILE | --secrets-store DIR --tcti TCTI "
	    "[--auth-file F]]\n"
	    "       warden audit verify-export FILE [--pubkey PEM | --pin SHA256]\n"
	    "       warden audit prove DIR SEQ [--checkpoint N]\n"
	    "       warden audit prove DIR --consistency A B\n"
	    "       warden audit verify-proof PROOF [--pubkey PEM | --pin SHA256]\n"
	    "       warden audit pubkey (-c FILE | --secrets-store DIR)\n"
	    "       warden audit counter (-c FILE | --tcti TCTI) [--index N] "
	    "[--value]\n"
	    "       warden audit purge DIR (--tenant T | --expired) "
	    "(-c FILE | --tcti TCTI\n"
	    "                 [--secrets-store DIR --auth-file F])\n"
	    "       warden audit payload show DECISION_ID [--dir DIR] "
	    "(-c FILE | --tcti TCTI)\n");
	return 2;
}

/* Exit codes of purge and payload show beyond 0, 1 and 2. */
#define EXIT_DESTROYED 3	/* its key was destroyed */
#define EXIT_NO_PAYLOAD 4	/* none kept, or expired, or purged */

/* Options of purge and payload show: where the log and the TPM are. */
struct kopts {
	const char *config, *tcti, *dir, *tenant;
	const char *store, *auth_file;	/* purge signs its record (no gateway) */
	bool expired;
	struct pol_snapshot *snap;
};

static int
parse_kopts(int argc, char **argv, int first, struct kopts *k)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "dir", required_argument, NULL, 'd' },
		{ "tenant", required_argument, NULL, 't' },
		{ "expired", no_argument, NULL, 'E' },
		{ "secrets-store", required_argument, NULL, 'S' },
		{ "auth-file", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(k, 0, sizeof(*k));
	optind = first;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			k->config = optarg;
			break;
		case 'T':
			k->tcti = optarg;
			break;
		case 'd':
			k->dir = optarg;
			break;
		case 't':
			k->tenant = optarg;
			break;
		case 'E':
			k->expired = true;
			break;
		case 'S':
			k->store = optarg;
			break;
		case 'A':
			k->auth_file = optarg;
			break;
		default:
			return usage();
		}
	}
	if (k->config != NULL) {
		if (pol_load(k->config, stderr, &k->snap) != WD_OK)
			return 2;
		if (k->tcti == NULL)
			k->tcti = k->snap->secrets.tcti;
		if (k->dir == NULL)
			k->dir = k->snap->audit.dir;
		if (k->store == NULL)
			k->store = k->snap->secrets.store;
		if (k->auth_file == NULL)
			k->auth_file = k->snap->secrets.auth_file;
	}
	return 0;
}

/* Both commands need the TPM: 0, or the usage exit code. */
static int
need_tcti(const struct kopts *k)
{
	if (k->tcti != NULL)
		return 0;
	fprintf(stderr, "warden audit: payload keys live in the TPM: give "
	    "-c FILE (secrets.tcti) or --tcti TCTI\n");
	return 2;
}

static int
cmd_purge(int argc, char **argv)
{
	struct gw_paykeys *pk = NULL;
	struct kopts k;
	json_t *ids = NULL, *rec;
	const char *dir;
	char err[512];
	size_t files = 0;
	bool in_chain = false;
	enum wd_err e;
	int rc;

	if ((rc = parse_kopts(argc, argv, 2, &k)) != 0)
		goto out;
	rc = 2;
	if (optind != argc - 1 || (k.tenant == NULL) == !k.expired) {
		rc = usage();
		goto out;
	}
	if ((rc = need_tcti(&k)) != 0)
		goto out;
	dir = argv[optind];
	rc = 1;
	if ((ids = json_array()) == NULL ||
	    gw_paykeys_new(dir, k.tcti, NULL, &pk, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden audit purge: %s\n", ids ? err :
		    "out of memory");
		goto out;
	}
	e = k.tenant != NULL ? aud_payload_purge(dir, gw_paykeys_keys(pk),
	    k.tenant, ids, &files, err, sizeof(err)) :
	    aud_payload_expire(dir, gw_paykeys_keys(pk), ids, &files, err,
	    sizeof(err));
	if (e != WD_OK)
		fprintf(stderr, "warden audit purge: %s%s%s\n", err,
		    json_array_size(ids) > 0 ? " (the keys listed below were "
		    "destroyed before it failed)" : "; no key was destroyed",
		    json_array_size(ids) == 0 && k.tenant != NULL ?
		    " and no payload deleted" : "");
	/* What was destroyed is recorded, even when something failed after. */
	if (json_array_size(ids) > 0 || (e == WD_OK && files > 0) ||
	    (e == WD_OK && k.tenant != NULL)) {
		rec = json_pack("{s:s,s:s,s:O,s:I}", "kind", "purge", "reason",
		    k.tenant != NULL ? "requested" : "expired", "keys", ids,
		    "payloads", (json_int_t)files);
		if (k.tenant != NULL)
			json_object_set_new(rec, "tenant", json_string(k.tenant));
		/* No gateway holding the log: appended and signed here, as the
		 * gateway would (the payload keys closed their TPM use). */
		if (gw_cli_record(dir, rec, k.tcti, k.store, k.auth_file, k.snap,
		    "warden audit purge", &in_chain, err, sizeof(err)) != WD_OK) {
			fprintf(stderr, "warden audit purge: done, but not recorded: "
			    "%s\n", err);
			e = e == WD_OK ? WD_EIO : e;
		}
	}
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *id = json_array_get(ids, i);

		printf("destroyed key %s/%s (TPM NV index %s)\n",
		    json_string_value(json_object_get(id, "tenant")),
		    json_string_value(json_object_get(id, "month")),
		    json_string_value(json_object_get(id, "nv")));
	}
	if (e == WD_OK) {
		printf("purged %zu payload%s%s%s and %zu key%s; every copy of them "
		    "is unreadable now; the purge is %s\n", files,
		    files == 1 ? "" : "s",
		    k.tenant ? " of tenant " : " past their TTL",
		    k.tenant ? k.tenant : "", json_array_size(ids),
		    json_array_size(ids) == 1 ? "" : "s", in_chain ?
		    "recorded in the audit chain" : "queued in the log's inbox "
		    "(recorded when warden next takes it in)");
		rc = 0;
	}
out:
	json_decref(ids);
	gw_paykeys_free(pk);
	pol_snapshot_unref(k.snap);
	return rc;
}

static unsigned char *
locked_alloc(void *arg, size_t len)
{
	struct sec_buf *b = arg;
	char err[256];

	if (sec_buf_alloc(b, len, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden audit payload: %s\n", err);
		return NULL;
	}
	return b->p;
}

/* `warden audit payload show ID`: one payload, decrypted, to stdout. */
static int
cmd_payload(int argc, char **argv)
{
	struct gw_paykeys *pk = NULL;
	struct sec_buf plain = { 0 };
	struct kopts k;
	char err[512], tenant[65];
	size_t len = 0;
	enum wd_err e;
	int rc;

	if (argc < 4 || strcmp(argv[2], "show") != 0)
		return usage();
	if ((rc = parse_kopts(argc, argv, 4, &k)) != 0)
		goto out;
	rc = 2;
	if (optind != argc || k.dir == NULL) {
		if (k.dir == NULL)
			fprintf(stderr, "warden audit payload: give --dir DIR or -c "
			    "FILE (audit.dir)\n");
		else
			usage();
		goto out;
	}
	if ((rc = need_tcti(&k)) != 0)
		goto out;
	rc = 1;
	err[0] = '\0';
	if (sec_harden_process(err, sizeof(err)) != WD_OK ||
	    gw_paykeys_new(k.dir, k.tcti, NULL, &pk, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden audit payload: %s\n", err);
		goto out;
	}
	e = aud_payload_read(k.dir, gw_paykeys_keys(pk), argv[3], locked_alloc,
	    &plain, &len, tenant, err, sizeof(err));
	if (e != WD_OK) {
		fprintf(stderr, "warden audit payload: %s\n", err);
		rc = e == WD_EDESTROYED ? EXIT_DESTROYED : e == WD_ENOTFOUND ?
		    EXIT_NO_PAYLOAD : e == WD_EINVAL ? 2 : 1;
		goto out;
	}
	/* Straight from locked memory to the descriptor: no stdio copy. */
	fflush(stdout);
	for (size_t off = 0; off < len; ) {
		ssize_t n = write(STDOUT_FILENO, plain.p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	if (write(STDOUT_FILENO, "\n", 1) != 1)
		goto out;
	rc = 0;
out:
	sec_buf_free(&plain);
	gw_paykeys_free(pk);
	pol_snapshot_unref(k.snap);
	return rc;
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
	struct sec_buf auth;		/* the key's auth value, locked */
	size_t authlen;
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
	rc = sec_sign_digest(c->tpm, c->store, c->auth.p, c->authlen, digest,
	    sig, siglen, err, sizeof(err));
	if (rc != WD_OK)
		fprintf(stderr, "warden: signing the manifest: %s\n", err);
	return rc;
}

static int
cmd_export(char **dirs, size_t ndirs, struct aud_export_opts *eo,
    const struct aud_verify_opts *vo, const char *output,
    const char *config, const char *store, const char *tcti,
    const char *auth_file)
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
		if (auth_file == NULL)
			auth_file = snap->secrets.auth_file;
	}
	if (store != NULL && tcti != NULL && *tcti != '\0') {
		/* The key signs only with its auth value (secrets.auth_file). */
		if ((auth_file != NULL && sec_read_auth_file(auth_file, &cs.auth,
		    &cs.authlen, err, sizeof(err)) != WD_OK) ||
		    sec_sign_pubkey_pem(store, &pem, err, sizeof(err)) != WD_OK ||
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
	/* Several replicas' logs: each verified, one export by time. */
	if (ndirs > 1)
		rc = gw_audit_export_replicas(dirs, ndirs, eo, vo, output, stderr);
	else
		rc = aud_export(dirs[0], eo, output, stderr);
out:
	if (cs.tpm != NULL)
		gw_tpm_close(cs.tpm);
	sec_buf_free(&cs.auth);
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
		{ "checkpoint", required_argument, NULL, 'k' },
		{ "consistency", no_argument, NULL, 'C' },
		{ "tpm-counter", required_argument, NULL, 'T' },
		{ "config", required_argument, NULL, 'c' },
		{ "secrets-store", required_argument, NULL, 'S' },
		{ "tcti", required_argument, NULL, 'X' },
		{ "witness", required_argument, NULL, 'W' },
		{ "auth-file", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	struct aud_export_opts eo = { .format = "jsonl" };
	struct aud_verify_opts vo = { .progress = true };
	const char *what, *output = NULL, *config = NULL, *store = NULL;
	const char *tcti = NULL, *witness = NULL, *auth_file = NULL;
	uint64_t cpseq = 0;
	bool consistency = false;
	int ch, nargs;

	if (argc >= 2 && strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "counter") == 0)
		return gw_cmd_audit_counter(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "purge") == 0)
		return cmd_purge(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "payload") == 0)
		return cmd_payload(argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "stats") == 0 ||
	    strcmp(argv[1], "tail") == 0 || strcmp(argv[1], "register") == 0 ||
	    strcmp(argv[1], "report") == 0))
		return gw_cmd_audit_report(argc, argv);
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
		case 'A':
			auth_file = optarg;
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
	if (strcmp(what, "export") == 0 && nargs > 1 && output != NULL)
		return cmd_export(argv + optind, (size_t)nargs, &eo, &vo, output,
		    config, store, tcti, auth_file);
	if (nargs != 1)
		return usage();
	if (strcmp(what, "verify-export") == 0 &&
	    gw_export_is_replicas(argv[optind]))
		return gw_verify_export_replicas(argv[optind], &vo, stdout);
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
	if (strcmp(what, "export") != 0 || output == NULL)
		return usage();
	return cmd_export(argv + optind, 1, &eo, &vo, output, config, store,
	    tcti, auth_file);
}
