/*
 * cli_mcp.c - `warden mcp list` and `warden mcp approve SERVER TOOL`: the
 * operator's side of MCP tool definition pinning (mcp_pins.c).  Both read
 * the rules to find the pin file (mcp_pins_dir, else the audit
 * directory: --audit-dir as serve was given it, else audit.dir).  An
 * approval is a decision about what agents may run: it is recorded in
 * the audit log of that directory (`mcp_pin_approved`, with the
 * fingerprints it replaced and pinned), through its inbox or appended
 * and signed here (gw_cli_record).
 */
#include "gateway/gw_int.h"
#include "gateway/mcp.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

/* The approval into the audit log: 0, or 1 when it could not be. */
static int
record_approval(const struct pol_snapshot *snap, const char *audit_dir,
    const char *server, const char *tool, const char *from, const char *to)
{
	const char *dir = audit_dir != NULL ? audit_dir : snap->audit.dir;
	char err[512];
	bool in_chain;
	json_t *rec;

	if (dir == NULL) {
		fprintf(stderr, "warden mcp: approved, but not recorded in an audit "
		    "log (give --audit-dir DIR or set audit.dir)\n");
		return 1;
	}
	rec = json_pack("{s:s,s:s,s:s,s:s?,s:s}", "kind", "mcp_pin_approved",
	    "server", server, "tool", tool, "from", from[0] ? from : NULL,
	    "to", to);
	if (rec == NULL || gw_cli_record(dir, rec, snap->secrets.tcti,
	    snap->secrets.store, snap->secrets.auth_file, snap, "warden mcp",
	    &in_chain, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden mcp: approved, but NOT recorded in the "
		    "audit log: %s\n", rec == NULL ? "out of memory" : err);
		return 1;
	}
	return 0;
}

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
	char path[4200], from[65], to[65];
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
	} else if ((rc = gw_pin_approve(path, argv[optind], argv[optind + 1],
	    from, to, stdout)) == 0)
		rc = record_approval(snap, audit_dir, argv[optind],
		    argv[optind + 1], from, to);
	pol_snapshot_unref(snap);
	return rc;
usage:
	gw_cli_usage(stderr, "mcp", NULL);
	return 2;
}
