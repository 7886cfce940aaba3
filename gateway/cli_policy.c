/*
 * cli_policy.c - the commands that read the rules without serving:
 * `warden lint`, `warden check` (one decision, nothing sent) and
 * `warden test` (policy unit tests).
 */
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
usage_err(const char *msg)
{
	fprintf(stderr, "warden: %s\n", msg);
	return 2;
}

int
gw_cmd_lint(int argc, char **argv)
{
	struct pol_snapshot *snap;
	const char *config = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c')
			return usage_err("usage: warden lint -c FILE");
		config = optarg;
	}
	if (config == NULL || optind != argc)
		return usage_err("usage: warden lint -c FILE");
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	pol_lint_routes(snap, stderr);
	printf("configuration OK (policy_version %s)\n", snap->version);
	pol_snapshot_unref(snap);
	return 0;
}

int
gw_cmd_test(int argc, char **argv)
{
	struct pol_snapshot *snap;
	const char *config = NULL;
	int ch, rc;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c')
			return usage_err("usage: warden test -c FILE TESTS.yaml");
		config = optarg;
	}
	if (config == NULL || optind != argc - 1)
		return usage_err("usage: warden test -c FILE TESTS.yaml");
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	rc = pol_test_run(snap, argv[optind], stdout);
	pol_snapshot_unref(snap);
	return rc;
}

/* "Name: value" of a policy header into facts; false if not one. */
static bool
take_header(const char *h, struct pol_facts *f)
{
	const char *colon = strchr(h, ':'), *v;
	size_t n;

	if (colon == NULL)
		return false;
	n = (size_t)(colon - h);
	v = colon + 1;
	while (*v == ' ')
		v++;
	if (n == 19 && strncasecmp(h, "X-Warden-Data-Class", n) == 0)
		f->hdr_classes = v;
	else if (n == 23 && strncasecmp(h, "X-Warden-Subject-Region", n) == 0)
		f->hdr_region = v;
	else
		return false;
	return true;
}

int
gw_cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "tenant", required_argument, NULL, 't' },
		{ "header", required_argument, NULL, 'H' },
		{ "api", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_req other = { 0 };
	unsigned api = POL_API_CHAT;
	struct pol_snapshot *snap = NULL;
	struct pol_facts facts = { 0 };
	struct pol_decision d;
	struct gw_chat chat = { 0 };
	struct gw_detect det = { 0 };
	const char *config = NULL, *key = NULL, *tenant = NULL, *param;
	char why[256], *body = NULL, *text;
	unsigned char digest[32], rnd[16];
	size_t len;
	json_t *j;
	int ch, rc = 2;

	while ((ch = getopt_long(argc, argv, "c:k:t:H:a:", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'a':
			/* The body's format; routes must speak it. */
			if ((api = pol_api_bit(optarg)) == 0)
				return usage_err("--api takes openai-chat, "
				    "openai-responses, openai-embeddings or "
				    "anthropic-messages");
			break;
		case 'c':
			config = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 't':
			tenant = optarg;
			break;
		case 'H':
			if (!take_header(optarg, &facts))
				return usage_err("-H takes 'X-Warden-Data-Class: ...' "
				    "or 'X-Warden-Subject-Region: ...'");
			break;
		default:
			goto usage;
		}
	}
	if (config == NULL || optind != argc - 1 || (key == NULL) == (tenant == NULL))
		goto usage;
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	if (key != NULL) {
		struct pol_caller who;

		wd_sha256(key, strlen(key), digest);
		pol_find_caller(snap, digest, &who);
		facts.tenant = who.tenant;
		facts.app = who.app ? who.app->id : NULL;
	} else {
		for (size_t i = 0; i < snap->ntenants; i++)
			if (strcmp(snap->tenants[i].id, tenant) == 0)
				facts.tenant = &snap->tenants[i];
	}
	if (facts.tenant == NULL) {
		fprintf(stderr, "warden: %s\n", key ? "no tenant has this key" :
		    "unknown tenant");
		goto out;
	}
	body = wd_slurp(strcmp(argv[optind], "-") == 0 ? NULL : argv[optind],
	    64u << 20, &len);
	if (body == NULL) {
		fprintf(stderr, "warden: cannot read %s\n", argv[optind]);
		goto out;
	}
	if (api != POL_API_CHAT) {
		if (gw_req_parse(api, false, body, len, &other, why, sizeof(why),
		    &param) != WD_OK) {
			fprintf(stderr, "warden: %s: %s\n", argv[optind], why);
			goto out;
		}
		facts.model = other.model;
		facts.stream = other.stream;
		facts.api = pol_api_name(api);
	} else if (gw_chat_parse(body, len, &chat, why, sizeof(why), &param) !=
	    WD_OK) {
		fprintf(stderr, "warden: %s: %s\n", argv[optind], why);
		goto out;
	} else {
		facts.model = chat.model;
		facts.stream = chat.stream;
	}
	/* The content detectors, as the gateway runs them (on the request
	 * of whichever format). */
	if (gw_detect_request(&det, snap, api != POL_API_CHAT ? other.root :
	    gw_chat_tree(&chat), &facts.det_counts) != WD_OK) {
		fprintf(stderr, "warden: content detection cannot run on %s\n",
		    argv[optind]);
		goto out;
	}
	if (pol_decide(snap, &facts, &d) != WD_OK) {
		fprintf(stderr, "warden: cannot evaluate this request\n");
		goto out;
	}
	wd_random(rnd, sizeof(rnd));
	wd_hex(rnd, sizeof(rnd), d.id);
	j = pol_decision_json(snap, &d);
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	printf("%s\n", text);
	free(text);
	json_decref(j);
	rc = 0;
out:
	gw_detect_clear(&det);
	gw_chat_clear(&chat);
	gw_req_clear(&other);
	free(body);
	pol_snapshot_unref(snap);
	return rc;
usage:
	return usage_err("usage: warden check -c FILE (--key KEY | --tenant ID) "
	    "[-H 'Name: value']... [--api FORMAT] REQUEST.json");
}

static const struct pol_agent *
agent_named(const struct pol_snapshot *snap, const char *id)
{
	for (size_t i = 0; i < snap->nagents; i++)
		if (strcmp(snap->agents[i].id, id) == 0)
			return &snap->agents[i];
	fprintf(stderr, "warden: no agent '%s'\n", id);
	return NULL;
}

/*
 * warden policy graph  -c FILE AGENT [--format dot|mermaid|json]
 * warden policy reach  -c FILE AGENT --from TOOL|start --to TOOL|sink:KIND
 * warden policy review -c FILE
 */
int
gw_cmd_policy(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "format", required_argument, NULL, 'f' },
		{ "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *format = "dot", *from = NULL, *to = NULL;
	const char *what;
	const struct pol_agent *a = NULL;
	struct pol_snapshot *snap;
	int ch, rc = 2;

	if (argc < 2)
		goto usage;
	what = argv[1];
	if (strcmp(what, "report") == 0)
		return gw_cmd_policy_report(argc, argv);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:f:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'F':
			from = optarg;
			break;
		case 'T':
			to = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (config == NULL)
		goto usage;
	if (strcmp(what, "review") == 0 ? optind != argc : optind != argc - 1)
		goto usage;
	if (strcmp(what, "reach") == 0 && (from == NULL || to == NULL))
		goto usage;
	if (strcmp(what, "graph") != 0 && strcmp(what, "reach") != 0 &&
	    strcmp(what, "review") != 0)
		goto usage;
	if (pol_load(config, stderr, &snap) != WD_OK)
		return 2;
	if (strcmp(what, "review") == 0)
		rc = pol_review(snap, stdout);
	else if ((a = agent_named(snap, argv[optind])) == NULL)
		rc = 2;
	else if (strcmp(what, "graph") == 0)
		rc = pol_graph(snap, a, format, stdout);
	else
		rc = pol_reach(a, from, to, stdout);
	pol_snapshot_unref(snap);
	return rc;
usage:
	return usage_err("usage: warden policy graph -c FILE AGENT "
	    "[--format dot|mermaid|json]\n"
	    "       warden policy reach -c FILE AGENT --from TOOL|start "
	    "--to TOOL|sink:external|sink:internal\n"
	    "       warden policy review -c FILE");
}

static size_t
print_cb(char *data, size_t size, size_t n, void *arg)
{
	(void)arg;
	fwrite(data, size, n, stdout);
	return size * n;
}

/*
 * `warden reload -c FILE [--url URL]`: ask the running gateway (on the
 * rules file's listen address, or URL) to reload, and print its answer:
 * the new policy_version, or every error in the file.  Exit 0 or 1.
 */
int
gw_cmd_reload(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "url", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *url = NULL;
	struct pol_snapshot *snap = NULL;
	char buf[512];
	long status = 0;
	CURL *e;
	int ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "c:u:", longopts, NULL)) != -1) {
		if (ch == 'c')
			config = optarg;
		else if (ch == 'u')
			url = optarg;
		else
			return usage_err("usage: warden reload -c FILE [--url URL]");
	}
	if (optind != argc || (config == NULL && url == NULL))
		return usage_err("usage: warden reload -c FILE [--url URL]");
	if (url == NULL) {
		if (pol_load(config, stderr, &snap) != WD_OK)
			return 2;
		snprintf(buf, sizeof(buf), "http://%s/admin/reload",
		    snap->server.listen ? snap->server.listen : "127.0.0.1:8080");
		url = buf;
	}
	e = curl_easy_init();
	if (e == NULL)
		goto out;
	curl_easy_setopt(e, CURLOPT_URL, url);
	/* Straight to warden: an http_proxy from the environment would be
	 * the admin endpoint's loopback caller instead of us. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, print_cb);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
	if (curl_easy_perform(e) != CURLE_OK) {
		fprintf(stderr, "warden: no gateway answers at %s\n", url);
	} else {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		printf("\n");
		rc = status == 200 ? 0 : 1;
	}
	curl_easy_cleanup(e);
out:
	pol_snapshot_unref(snap);
	return rc;
}
