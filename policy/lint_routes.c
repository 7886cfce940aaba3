/*
 * lint_routes.c - what `warden lint` says about routes that load but
 * look wrong: a residency record that the route's own URL or model ids
 * contradict, and routes that send credentials in clear.
 *
 * These are warnings, not errors: the record is the operator's
 * declaration and policy trusts it; lint points out where the provider's
 * naming says otherwise (an `eu.` Bedrock inference profile declared to
 * process in the US, a `global.` profile or Vertex's `global` location
 * declared regional).  Pure: reads the snapshot, writes to out.
 */
#include "policy/pol.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ISO codes of the EU member states, for "is an eu. profile declared
 * outside the EU"; a rules file's own EU jurisdiction may differ. */
static const char eu[] = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV "
    "LT LU MT NL PL PT RO SK SI ES SE";

static bool
processing_has(const struct pol_provider *p, const char *cc)
{
	return pol_cset_has(&p->processing, pol_country_index(cc));
}

/* Does the route declare processing anywhere outside the EU? */
static bool
outside_eu(const struct pol_provider *p)
{
	for (int i = 0; i < 26 * 26; i++) {
		char cc[3] = { (char)('A' + i / 26), (char)('A' + i % 26), 0 };

		if (pol_cset_has(&p->processing, i) && strstr(eu, cc) == NULL)
			return true;
	}
	return false;
}

static int
warn(FILE *out, const struct pol_provider *p, const char *msg)
{
	fprintf(out, "warning: route '%s': %s\n", p->id, msg);
	return 1;
}

static int
lint_model(FILE *out, const struct pol_provider *p, const char *m)
{
	int n = 0;

	if (strncmp(m, "eu.", 3) == 0 && (outside_eu(p) ||
	    p->deployment == POL_DEPLOY_GLOBAL))
		n += warn(out, p, "model id names an eu. inference profile, but "
		    "the residency record declares processing outside the EU");
	if (strncmp(m, "us.", 3) == 0 && !processing_has(p, "US"))
		n += warn(out, p, "model id names a us. inference profile, but "
		    "the residency record does not declare processing in US");
	if (strncmp(m, "global.", 7) == 0 && p->deployment != POL_DEPLOY_GLOBAL)
		n += warn(out, p, "model id names a global. inference profile "
		    "(may process anywhere), but the deployment is not declared "
		    "global");
	return n;
}

int
pol_lint_routes(const struct pol_snapshot *s, FILE *out)
{
	int n = 0;

	for (size_t i = 0; i < s->nproviders; i++) {
		const struct pol_provider *p = &s->providers[i];
		const char *kind = p->kind ? p->kind : "openai";

		if (p->ca_file != NULL && access(p->ca_file, R_OK) != 0)
			n += warn(out, p, "its ca_file cannot be read (from here): "
			    "TLS to it will fail");
		if (p->insecure_http)
			n += warn(out, p, "insecure_http: the credential and every "
			    "prompt go over plain http");
		for (size_t m = 0; m < p->nmodels; m++)
			n += lint_model(out, p, p->models[m]);
		if (strcmp(kind, "vertex") == 0 && p->deployment !=
		    POL_DEPLOY_GLOBAL && ((p->region != NULL &&
		    strcmp(p->region, "global") == 0) ||
		    strstr(p->base_url, "/locations/global/") != NULL ||
		    strncmp(p->base_url, "https://aiplatform.googleapis.com", 33)
		    == 0))
			n += warn(out, p, "Vertex AI's global location has no "
			    "processing commitment, but the deployment is not "
			    "declared global");
		if (strcmp(kind, "azure") == 0 && p->deployment !=
		    POL_DEPLOY_GLOBAL && p->azure_deployment != NULL &&
		    strcasestr(p->azure_deployment, "global") != NULL)
			n += warn(out, p, "the Azure deployment's name says global, "
			    "but the deployment is not declared global");
		if (strcmp(kind, "bedrock") == 0 && p->region != NULL &&
		    strncmp(p->region, "eu-", 3) == 0 &&
		    p->deployment == POL_DEPLOY_REGIONAL && outside_eu(p))
			n += warn(out, p, "an EU region declared as a regional "
			    "deployment processing outside the EU");
		if (strncmp(p->base_url, "https://eu.api.openai.com", 25) == 0 &&
		    outside_eu(p))
			n += warn(out, p, "eu.api.openai.com declared to process "
			    "outside the EU");
	}
	return n;
}
