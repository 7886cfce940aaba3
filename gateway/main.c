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
	gw_cli_usage(f, NULL, NULL);
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
		{ "auth-file", required_argument, NULL, 'A' },
		{ "dev-unauthenticated-audit-key", no_argument, NULL, 'K' },
		{ "accept-rollback", no_argument, NULL, 'B' },
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
		case 'A':
			o.auth_file = optarg;
			break;
		case 'K':
			o.dev_unauth_key = true;
			break;
		case 'B':
			o.accept_rollback = true;
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
	int rc;

	gw_json_mem_init();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* -h, --help, help: usage on stdout before any option parser runs. */
	if ((rc = gw_cli_help(argc, argv)) >= 0)
		return rc;
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
	if (strcmp(argv[1], "mcp") == 0)
		return gw_cmd_mcp(argc - 1, argv + 1);
	if (strcmp(argv[1], "keys") == 0) {
		if (argc == 3 && strcmp(argv[2], "new") == 0)
			return gw_keys_new();
		gw_cli_usage(stderr, "keys", NULL);
		return 2;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		if (argc != 2) {
			gw_cli_usage(stderr, "version", NULL);
			return 2;
		}
		printf("warden %s\n", WD_VERSION);
		return 0;
	}
	fprintf(stderr, "warden: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
