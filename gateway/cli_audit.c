/*
 * cli_audit.c - `warden audit verify | export | verify-export | pubkey |
 * purge | payload show`.
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
	    "usage: warden audit verify DIR [--pubkey PEM]\n"
	    "       warden audit export DIR [DIR...] --format jsonl|csv [--since T] "
	    "[--until T]\n"
	    "                 [--tenant T] [--verdict V] [--pubkey PEM] -o FILE\n"
	    "       warden audit verify-export FILE\n"
	    "       warden audit pubkey (-c FILE | --secrets-store DIR)\n"
	    "       warden audit counter (-c FILE | --tcti TCTI) [--index N] "
	    "[--value]\n"
	    "       warden audit purge DIR (--tenant T | --expired) "
	    "(-c FILE | --tcti TCTI)\n"
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
		if (aud_post_event(dir, rec, 5000, &in_chain, err, sizeof(err)) !=
		    WD_OK) {
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
		{ NULL, 0, NULL, 0 },
	};
	struct aud_export_opts eo = { .format = "jsonl" };
	struct aud_verify_opts vo = { .progress = true };
	const char *what, *pubkey = NULL, *output = NULL;
	char *pem = NULL;
	size_t pemlen;
	int ch, rc;

	if (argc >= 2 && strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "counter") == 0)
		return gw_cmd_audit_counter(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "purge") == 0)
		return cmd_purge(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "payload") == 0)
		return cmd_payload(argc, argv);
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
		default:
			return usage();
		}
	}
	/* Several replicas' logs: one export ordered by time. */
	if (strcmp(what, "export") == 0 && argc - optind > 1 && output != NULL) {
		if (pubkey != NULL &&
		    (pem = wd_slurp(pubkey, SIZE_MAX, &pemlen)) == NULL) {
			fprintf(stderr, "warden: cannot read %s\n", pubkey);
			return 2;
		}
		eo.pubkey_pem = pem;
		rc = gw_audit_export_replicas(argv + optind,
		    (size_t)(argc - optind), &eo, output, stderr);
		free(pem);
		return rc;
	}
	if (optind != argc - 1)
		return usage();
	if (strcmp(what, "verify-export") == 0 &&
	    gw_export_is_replicas(argv[optind]))
		return gw_verify_export_replicas(argv[optind], stdout);
	if (strcmp(what, "verify") == 0) {
		vo.pubkey_pem_path = pubkey;
		return aud_verify_dir(argv[optind], &vo, stdout);
	}
	if (strcmp(what, "verify-export") == 0)
		return aud_verify_export(argv[optind], stdout);
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
