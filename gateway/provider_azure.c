/*
 * provider_azure.c - Azure OpenAI.  The key goes in `api-key` (Azure
 * does not take it as Bearer).  Two paths:
 *   v1 API:   base_url (https://RES.openai.azure.com/openai/v1) +
 *             /chat/completions, the model in the body names the
 *             deployment;
 *   classic:  base_url (https://RES.openai.azure.com) +
 *             /openai/deployments/{azure_deployment}/chat/completions
 *             ?api-version={api_version}.
 */
#include "gateway/provider_int.h"

#include <stdio.h>
#include <string.h>

enum wd_err
gw_kind_azure(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	const struct pol_provider *p = in->route;
	char dep[256], ver[128];
	int n;

	if (p->azure_deployment != NULL && p->api_version != NULL) {
		if (!gw_sigv4_encode(p->azure_deployment,
		    strlen(p->azure_deployment), false, dep, sizeof(dep)) ||
		    !gw_sigv4_encode(p->api_version, strlen(p->api_version),
		    false, ver, sizeof(ver)))
			goto toolong;
		n = snprintf(out->url, sizeof(out->url), "%s/openai/deployments/"
		    "%s/chat/completions?api-version=%s", p->base_url, dep, ver);
		if (n < 0 || (size_t)n >= sizeof(out->url))
			goto toolong;
	} else if (!gw_prov_url(out, p->base_url, "/chat/completions"))
		goto toolong;
	if (!gw_prov_header(out, "api-key", in->cred, in->credlen)) {
		*why = GW_PROV_WHY_CRED;
		return WD_EINVAL;
	}
	return WD_OK;
toolong:
	*why = GW_PROV_WHY_URL;
	return WD_ELIMIT;
}
