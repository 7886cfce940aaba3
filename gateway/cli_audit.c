/*
 * cli_audit.c - `warden audit verify | export | verify-export`.
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
	    "usage: warden audit verify DIR [--pubkey PEM]\n"
	    "       warden audit export DIR --format jsonl|csv [--since T] "
	    "[--until T]\n"
	    "                 [--tenant T] [--verdict V] [--pubkey PEM] -o FILE\n"
	    "       warden audit verify-export FILE\n"
	    "       warden audit pubkey (-c FILE | --secrets-store DIR)\n"
	    "       warden audit counter (-c FILE | --tcti TCTI) [--index N] "
	    "[--value]\n"
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

int
gw_cmd_audit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pubkey", required_argument, NULL, 'p' },
		{ "format", required_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "tenant", required_argument, NULL, 't' },
		{ "verdict", required_argument, NULL, 'v' },
		{ "output", required_argument, NULL, 'o' },
		{ "expired", no_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	struct aud_export_opts eo = { .format = "jsonl" };
	struct aud_verify_opts vo = { .progress = true };
	const char *what, *pubkey = NULL, *output = NULL;
	char *pem = NULL;
	size_t pemlen;
	bool purge_expired = false;
	int ch, rc;

	if (argc >= 2 && strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "counter") == 0)
		return gw_cmd_audit_counter(argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "stats") == 0 ||
	    strcmp(argv[1], "tail") == 0 || strcmp(argv[1], "register") == 0 ||
	    strcmp(argv[1], "report") == 0))
		return gw_cmd_audit_report(argc, argv);
	if (argc < 3)
		return usage();
	what = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			pubkey = optarg;
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
		default:
			return usage();
		}
	}
	if (optind != argc - 1)
		return usage();
	if (strcmp(what, "verify") == 0) {
		vo.pubkey_pem_path = pubkey;
		return aud_verify_dir(argv[optind], &vo, stdout);
	}
	if (strcmp(what, "verify-export") == 0)
		return aud_verify_export(argv[optind], stdout);
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
	if (pubkey != NULL &&
	    (pem = wd_slurp(pubkey, SIZE_MAX, &pemlen)) == NULL) {
		fprintf(stderr, "warden: cannot read %s\n", pubkey);
		return 2;
	}
	eo.pubkey_pem = pem;
	rc = aud_export(argv[optind], &eo, output, stderr);
	free(pem);
	return rc;
}
