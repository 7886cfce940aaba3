/*
 * cli_counter.c - `warden audit counter`: the TPM's rollback counter as
 * it is now, so an auditor can hold a log's last checkpoint against it
 * (`audit verify --tpm-counter VALUE`).  A log whose last checkpoint
 * carries a value below the TPM's, with no later start, was rolled back.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw.h"
#include "policy/pol.h"
#include "secrets/sec.h"

enum wd_err
gw_tpm_counter_read(const char *config, const char *tcti, const char *index,
    struct sec_counter *out, char *err, size_t errlen)
{
	struct pol_snapshot *snap = NULL;
	struct sec_tpm *t = NULL;
	uint32_t idx = SEC_COUNTER_NV_INDEX;
	enum wd_err rc;

	if (config != NULL) {
		if (pol_load(config, stderr, &snap) != WD_OK) {
			snprintf(err, errlen, "%s: cannot load the rules", config);
			return WD_ECONFIG;
		}
		if (tcti == NULL)
			tcti = snap->secrets.tcti;
		idx = snap->audit.counter_nv_index;
	}
	if (index != NULL && sec_counter_parse_index(index, &idx) != WD_OK) {
		snprintf(err, errlen, "--index '%.40s' is not an NV index in hex "
		    "(0x01000000 to 0x01bfffff)", index);
		rc = WD_EINVAL;
		goto out;
	}
	if (idx == 0) {
		snprintf(err, errlen, "audit.counter_nv_index is none: this warden "
		    "keeps no TPM counter");
		rc = WD_ENOTFOUND;
		goto out;
	}
	if ((rc = sec_tpm_open(tcti, &t, err, errlen)) != WD_OK)
		goto out;
	rc = sec_counter_read(t, idx, out, err, errlen);
out:
	sec_tpm_close(t);
	pol_snapshot_unref(snap);
	return rc;
}

int
gw_cmd_audit_counter(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "index", required_argument, NULL, 'i' },
		{ "value", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *tcti = NULL, *index = NULL;
	struct sec_counter c;
	bool value_only = false;
	char err[512];
	int ch;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'T':
			tcti = optarg;
			break;
		case 'i':
			index = optarg;
			break;
		case 'V':
			value_only = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc || (config == NULL && tcti == NULL))
		goto usage;
	if (gw_tpm_counter_read(config, tcti, index, &c, err, sizeof(err)) !=
	    WD_OK) {
		fprintf(stderr, "warden: %s\n", err);
		return 1;
	}
	if (value_only)
		printf("%llu\n", (unsigned long long)c.value);
	else
		printf("index 0x%08x value %llu name %s\n", (unsigned)c.index,
		    (unsigned long long)c.value, c.name);
	return 0;
usage:
	fprintf(stderr, "usage: warden audit counter (-c FILE | --tcti TCTI) "
	    "[--index 0xNNNNNNNN] [--value]\n");
	return 2;
}
