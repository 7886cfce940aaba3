/*
 * main.c - the warden command line: one binary, one subcommand per job.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wd.h"
#include "gateway/gw.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: warden serve -c FILE [--listen ADDR:PORT] [--workers N] "
	    "[--audit-dir DIR]\n"
	    "                    [--tcti TCTI] [--secrets-store DIR] "
	    "[--dev-credentials]\n"
	    "                    [--user NAME | --allow-root]\n"
	    "       warden lint -c FILE\n"
	    "       warden check -c FILE (--key KEY | --tenant ID) "
	    "[-H 'Name: value']... REQUEST.json\n"
	    "       warden test -c FILE TESTS.yaml\n"
	    "       warden reload -c FILE [--url URL]\n"
	    "       warden policy graph -c FILE AGENT [--format dot|mermaid|json]\n"
	    "       warden policy reach -c FILE AGENT --from TOOL|start --to "
	    "TOOL|sink:KIND\n"
	    "       warden policy review -c FILE\n"
	    "       warden audit verify DIR [--pubkey PEM]\n"
	    "       warden audit export DIR --format jsonl|csv [--since T] "
	    "[--until T] [--tenant T] [--verdict V] -o FILE\n"
	    "       warden audit verify-export FILE\n"
	    "       warden audit pubkey (-c FILE | --secrets-store DIR)\n"
	    "       warden audit purge DIR (--tenant T | --expired) "
	    "(-c FILE | --tcti TCTI)\n"
	    "       warden audit payload show DECISION_ID [--dir DIR] "
	    "(-c FILE | --tcti TCTI)\n"
	    "       warden secrets seal|rotate NAME [--pcr sha256:7,23] "
	    "[-c FILE | --store DIR --tcti TCTI]  (value on stdin)\n"
	    "       warden secrets rm NAME [-c FILE | --store DIR] "
	    "[--audit-dir DIR]\n"
	    "       warden secrets list|check [-c FILE] [--store DIR] "
	    "[--tcti TCTI]\n"
	    "       warden keys new\n"
	    "       warden version\n");
}

static int
cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "workers", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "audit-dir", required_argument, NULL, 'a' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "secrets-store", required_argument, NULL, 'S' },
		{ "dev-credentials", no_argument, NULL, 'D' },
		{ "user", required_argument, NULL, 'U' },
		{ "allow-root", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_serve_opts o = { 0 };
	int ch;

	while ((ch = getopt_long(argc, argv, "c:l:w:v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'w':
			o.workers = atoi(optarg);
			if (o.workers < 1 || o.workers > 256) {
				fprintf(stderr, "warden: --workers takes 1 to 256\n");
				return 2;
			}
			break;
		case 'v':
			wd_log_set_level(WD_LOG_DEBUG);
			break;
		case 'a':
			o.audit_dir = optarg;
			break;
		case 'T':
			o.tcti = optarg;
			break;
		case 'S':
			o.secrets_store = optarg;
			break;
		case 'D':
			o.dev_credentials = true;
			break;
		case 'U':
			o.user = optarg;
			break;
		case 'R':
			o.allow_root = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.config == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	return gw_serve(&o);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "lint") == 0)
		return gw_cmd_lint(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return gw_cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "test") == 0)
		return gw_cmd_test(argc - 1, argv + 1);
	if (strcmp(argv[1], "policy") == 0)
		return gw_cmd_policy(argc - 1, argv + 1);
	if (strcmp(argv[1], "reload") == 0)
		return gw_cmd_reload(argc - 1, argv + 1);
	if (strcmp(argv[1], "audit") == 0)
		return gw_cmd_audit(argc - 1, argv + 1);
	if (strcmp(argv[1], "secrets") == 0)
		return gw_cmd_secrets(argc - 1, argv + 1);
	if (strcmp(argv[1], "keys") == 0 && argc == 3 &&
	    strcmp(argv[2], "new") == 0)
		return gw_keys_new();
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("warden %s\n", WD_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "warden: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
