/*
 * cli_help.c - the usage of every warden command, as one table, and the
 * `--help`/`-h` that every command and subcommand answers from it.
 *
 * main() asks gw_cli_help() first: a command (or subcommand) of this
 * table given -h or --help prints its own usage to standard output and
 * exits 0 before its option parser runs, so a parser never has to know
 * about help.  The top-level usage is the whole table, one synopsis a
 * line.  A new command or subcommand gets a row here; the integration
 * test (tests/integration/test_cli.c) runs every row of `warden --help`
 * with --help and -h.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/gw.h"

struct cli_usage {
	const char *cmd;
	const char *sub;		/* NULL: the command has none */
	const char *args;		/* after "warden CMD [SUB] " */
	const char *what;		/* one paragraph: what it does, exits */
};

static const struct cli_usage usages[] = {
	{ "serve", NULL,
	  "-c FILE [--listen ADDR:PORT] [--workers N] [--audit-dir DIR]\n"
	  "[--tcti TCTI] [--secrets-store DIR] [--dev-credentials]\n"
	  "[--user NAME | --allow-root] [--auth-file FILE]\n"
	  "[--dev-unauthenticated-audit-key] [--accept-rollback] [-v]",
	  "Run the gateway with the rules in FILE until SIGTERM or SIGINT;\n"
	  "SIGHUP reloads the rules.  --user NAME: bind as root, then become\n"
	  "NAME before reading a credential.  --accept-rollback: continue an\n"
	  "audit log that is behind the TPM counter (otherwise refused, with a\n"
	  "rollback_detected record).  Exit 0 after a graceful stop, 1 on a\n"
	  "failure to start, 2 on bad usage or rules." },
	{ "lint", NULL, "-c FILE",
	  "Load and check the rules file and its includes; print\n"
	  "`configuration OK` and the policy_version (exit 0) or every error\n"
	  "as FILE:LINE:COL (exit 2)." },
	{ "check", NULL,
	  "-c FILE (--key KEY | --tenant ID) [-H 'Name: value']...\n"
	  "[--api FORMAT] REQUEST.json|-",
	  "Decide one request without sending it and print the decision\n"
	  "as JSON.  FORMAT: openai-chat (default), openai-responses,\n"
	  "openai-embeddings, anthropic-messages.  Exit 0 when it evaluated\n"
	  "(whatever the verdict), 2 on bad input." },
	{ "test", NULL, "-c FILE TESTS.yaml",
	  "Run the policy unit tests in TESTS.yaml against the rules.  Exit 0\n"
	  "when all pass, 1 on any failure, 2 on bad input." },
	{ "reload", NULL, "-c FILE [--url URL]",
	  "Ask the running gateway (on the rules' listen address, or URL) to\n"
	  "reload its rules; print the new policy_version or the errors.\n"
	  "Exit 0 or 1." },
	{ "policy", "graph", "-c FILE AGENT [--format dot|mermaid|json]",
	  "Print an agent's effective tool graph; edges a flow rule cuts are\n"
	  "marked." },
	{ "policy", "reach",
	  "-c FILE AGENT --from TOOL|start\n"
	  "--to TOOL|sink:external|sink:internal",
	  "Print the shortest allowed path (exit 0) or `unreachable` (exit 1)." },
	{ "policy", "review", "-c FILE",
	  "List, per agent, leaks (labelled data reaching an external sink),\n"
	  "unreachable tools and tools without a call limit.  Exit 1 on a leak." },
	{ "policy", "report", "-c FILE -o FILE.html",
	  "Write one self-contained HTML page: every agent's tool graph (drawn\n"
	  "by Graphviz's dot) with cut edges and leak paths marked, and each\n"
	  "tenant's compliant routes per data class.  Exit 0, 2 on a failure." },
	{ "audit", "verify",
	  "DIR [--pubkey PEM | --pin SHA256] [--tpm-counter N]\n"
	  "[--witness FILE]",
	  "Verify the audit log in DIR: hashes, chain, sequence, the Merkle\n"
	  "roots and signatures of checkpoints against the auditor's key only;\n"
	  "--tpm-counter: the last checkpoint carries the TPM's value N;\n"
	  "--witness: the checkpoints a witness kept stand in the log.  Exit 0\n"
	  "verified with the key, 1 invalid (naming the first bad record), 2\n"
	  "unreadable, 3 consistent but not authenticated." },
	{ "audit", "export",
	  "DIR [DIR...] --format jsonl|csv [--since T] [--until T]\n"
	  "[--tenant T] [--verdict V] -o FILE\n"
	  "[-c FILE | --secrets-store DIR --tcti TCTI [--auth-file F]]",
	  "Export the records of a time range (T in RFC 3339 UTC): matching\n"
	  "records in full, the others as stubs, under a manifest the TPM key\n"
	  "signs (with -c or --secrets-store and --tcti).  Several DIRs (one\n"
	  "per replica): each log verified, one export ordered by time\n"
	  "(jsonl) in which each replica's export verifies." },
	{ "audit", "verify-export", "FILE [--pubkey PEM | --pin SHA256]",
	  "Verify an export on its own against the auditor's key: manifest,\n"
	  "rows, CSV columns, chain, roots.  Exit statuses as for verify." },
	{ "audit", "prove", "DIR SEQ [--checkpoint N] | DIR --consistency A B",
	  "Print an RFC 9162 inclusion proof of record SEQ against a signed\n"
	  "checkpoint (the newest, or the one at seq N), or a consistency proof\n"
	  "between the checkpoints at seqs A and B, as JSON." },
	{ "audit", "verify-proof", "PROOF [--pubkey PEM | --pin SHA256]",
	  "Check a proof alone against the auditor's key.  Exit statuses as\n"
	  "for verify." },
	{ "audit", "purge", "DIR (--tenant T | --expired) (-c FILE | --tcti TCTI)",
	  "Destroy the TPM-held keys of a tenant's kept payloads (or of months\n"
	  "that are over), then delete the files; every copy, backups included,\n"
	  "becomes unreadable.  A `purge` record goes into the chain." },
	{ "audit", "payload", "show DECISION_ID [--dir DIR] (-c FILE | --tcti TCTI)",
	  "Decrypt one kept payload (needs the TPM).  Exit 0 printed, 1 TPM\n"
	  "failure, 2 usage, 3 its key was destroyed, 4 no such payload." },
	{ "audit", "stats",
	  "DIR [--since T] [--until T] [--tenant T]\n[--format text|json]",
	  "Count the request records: by verdict, rule, route, destination\n"
	  "country, tenant, app, agent, data class and error code; denials by\n"
	  "rule; tool-policy violations by agent and rule.  Each line's hash\n"
	  "and link are checked.  Exit 0, 1 if the chain is broken, 2 unreadable."
	},
	{ "audit", "tail", "DIR [-f] [--tenant T] [--verdict V]",
	  "Print one line per record, checking each line's hash and link;\n"
	  "-f follows the live log across segments until SIGINT.  A broken\n"
	  "chain is printed loudly and exits 1." },
	{ "audit", "register",
	  "DIR --tenant T [--since T] [--until T] [--format csv|json]\n"
	  "[--art30 -c RULES]",
	  "The transfer register of a tenant: per data class and destination\n"
	  "country, the requests sent, routes, rules and legal basis.  --art30\n"
	  "adds the record of processing the rules declare (JSON)." },
	{ "audit", "report",
	  "DIR (--pubkey PEM | --pin SHA256) -o FILE.html [--tenant T]\n"
	  "[--since T] [--until T] [-c RULES]",
	  "Verify DIR with the trusted key, then write one self-contained HTML\n"
	  "page: the result and the key's fingerprint, the register, verdicts\n"
	  "and denials over time, retention, tool-policy violations, counting\n"
	  "only records under the newest signed tree head.  A log that does\n"
	  "not verify gets NOT VERIFIED on top and no figures (exit 1, 2 or 3\n"
	  "as verify)." },
	{ "audit", "pubkey", "(-c FILE | --secrets-store DIR)",
	  "Print the public half of the TPM-held checkpoint signing key (PEM)." },
	{ "audit", "counter", "(-c FILE | --tcti TCTI) [--index N] [--value]",
	  "Print the TPM's audit rollback counter (NV index and value), to\n"
	  "compare with the log's last checkpoint.  --value: the number only." },
	{ "secrets", "seal",
	  "NAME [--pcr sha256:7,23] [--auth-file F]\n"
	  "[-c FILE | --store DIR --tcti TCTI]",
	  "Seal the credential read from standard input (one trailing newline\n"
	  "is dropped) as NAME.  Exit 0, 1 failed, 2 usage." },
	{ "secrets", "rotate",
	  "NAME [--pcr SPEC|none] [--auth-file F]\n"
	  "[-c FILE | --store DIR --tcti TCTI]",
	  "Replace NAME's credential with the one read from standard input." },
	{ "secrets", "rm", "NAME [-c FILE | --store DIR]",
	  "Remove NAME from the store." },
	{ "secrets", "list", "[-c FILE] [--store DIR]",
	  "List the sealed credentials: name, created, binding, size, routes." },
	{ "secrets", "check",
	  "[-c FILE] [--store DIR] [--tcti TCTI]\n"
	  "[--auth-file F]",
	  "Unseal every credential the rules need: ok, or FAIL and the TPM's\n"
	  "reason.  Exit 0 if all unseal, 1 otherwise." },
	{ "secrets", "import-key", "NAME [-c FILE | --store DIR --tcti TCTI]",
	  "Import the RSA-2048 private key (PEM) read from standard input into\n"
	  "the TPM as NAME: it then signs RS256 there only (a Vertex AI service\n"
	  "account).  Wipe the PEM file afterwards.  Exit 0, 1 failed, 2 usage." },
	{ "mcp", "list", "-c FILE [--audit-dir DIR]",
	  "List the pinned MCP tool definitions (mcp-pins.json in mcp_pins_dir\n"
	  "or audit.dir): server, tool, pinned or pending, fingerprints." },
	{ "mcp", "approve", "-c FILE [--audit-dir DIR] SERVER TOOL",
	  "Pin a tool's changed definition, which the gateway refuses until\n"
	  "then.  Exit 0, 1 when nothing is pending, 2 usage." },
	{ "keys", "new", "",
	  "Print a fresh virtual key and the rules line with its digest." },
	{ "version", NULL, "", "Print warden's version." },
	{ "help", NULL, "[COMMAND [SUBCOMMAND]]",
	  "Print the usage of every command, or of one." },
};

#define NUSAGES (sizeof(usages) / sizeof(usages[0]))

/* "usage: warden CMD SUB ARGS", continuation lines under ARGS. */
static void
print_synopsis(FILE *f, const struct cli_usage *u, bool first)
{
	int col;

	fprintf(f, "%s warden %s%s%s%s%n", first ? "usage:" : "      ", u->cmd,
	    u->sub ? " " : "", u->sub ? u->sub : "", *u->args ? " " : "", &col);
	for (const char *p = u->args; *p != '\0'; p++) {
		if (*p == '\n')
			fprintf(f, "\n%*s", col, "");
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

/* Is u the row of cmd (any of its subcommands when sub is NULL)? */
static bool
matches(const struct cli_usage *u, const char *cmd, const char *sub)
{
	if (cmd != NULL && strcmp(u->cmd, cmd) != 0)
		return false;
	return sub == NULL || (u->sub != NULL && strcmp(u->sub, sub) == 0);
}

static bool
matches_any(const char *cmd, const char *sub)
{
	for (size_t i = 0; i < NUSAGES; i++)
		if (matches(&usages[i], cmd, sub))
			return true;
	return false;
}

void
gw_cli_usage(FILE *f, const char *cmd, const char *sub)
{
	size_t n = 0;

	for (size_t i = 0; i < NUSAGES; i++)
		if (matches(&usages[i], cmd, sub))
			print_synopsis(f, &usages[i], n++ == 0);
	/* One command: say what it (and each subcommand) does as well. */
	for (size_t i = 0; cmd != NULL && i < NUSAGES; i++) {
		const struct cli_usage *u = &usages[i];

		if (!matches(u, cmd, sub))
			continue;
		if (n > 1)
			fprintf(f, "\n%s:\n", u->sub ? u->sub : u->cmd);
		else
			fputc('\n', f);
		fprintf(f, "%s\n", u->what);
	}
	fputs("\nSee warden(1) and warden-rules(5).\n", f);
}

/* -h or --help among the arguments (before a "--"). */
static bool
asks_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

int
gw_cli_help(int argc, char **argv)
{
	const char *cmd, *sub = NULL;

	if (argc < 2)
		return -1;
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    (strcmp(cmd, "help") == 0 && argc == 2)) {
		gw_cli_usage(stdout, NULL, NULL);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		/* `warden help CMD [SUB]` is `warden CMD [SUB] --help`. */
		cmd = argv[2];
		if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
			cmd = "help";
		else if (argc > 3)
			sub = argv[3];
		if (argc > 4 || !matches_any(cmd, sub)) {
			fprintf(stderr, "warden: no such command\n");
			gw_cli_usage(stderr, NULL, NULL);
			return 2;
		}
	} else if (!asks_help(argc, argv) || !matches_any(cmd, NULL)) {
		return -1;		/* not ours: the command decides */
	} else if (argc > 2 && matches_any(cmd, argv[2])) {
		sub = argv[2];
	}
	gw_cli_usage(stdout, cmd, sub);
	return 0;
}
