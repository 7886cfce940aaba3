/*
 * cli_mcp.c - `warden mcp list` and `warden mcp approve SERVER TOOL`: the
 * operator's side of MCP tool definition pinning (mcp_pins.c).  Both read
 * the rules only to find the pin file (mcp_pins_dir, else the audit
 * directory: --audit-dir as serve was given it, else audit.dir).
 */
#include "gateway/gw_int.h"
#include "gateway/mcp.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int
gw_cmd_mcp(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "audit-dir", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *audit_dir = NULL, *what;
	struct pol_snapshot *snap;
	char path[4200];
	int ch, rc;

	if (argc < 2)
		goto usage;
	what = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		if (ch == 'c')
			config = optarg;
		else if (ch == 'a')
			audit_dir = optarg;
		else
			goto usage;
	}
	if (config == NULL)
		goto usage;
	if (strcmp(what, "list") == 0 ? optind != argc :
	    strcmp(what, "approve") == 0 ? optind != argc - 2 : true)
		goto usage;
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	gw_pin_path(snap, audit_dir, path, sizeof(path));
	if (strcmp(what, "list") == 0)
		rc = gw_pin_list(path, stdout);
	else if (pol_mcp_find(snap, argv[optind]) == NULL) {
		fprintf(stderr, "warden mcp: no MCP server '%s' in %s\n",
		    argv[optind], config);
		rc = 1;
	} else
		rc = gw_pin_approve(path, argv[optind], argv[optind + 1], stdout);
	pol_snapshot_unref(snap);
	return rc;
usage:
	gw_cli_usage(stderr, "mcp", NULL);
	return 2;
}
