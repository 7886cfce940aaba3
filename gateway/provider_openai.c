/*
 * provider_openai.c - OpenAI and OpenAI-compatible hosts (regional ones
 * such as eu.api.openai.com, Mistral, local servers): base_url +
 * /chat/completions, the credential as a Bearer token.
 */
#include "gateway/provider_int.h"

#include <string.h>

enum wd_err
gw_prov_bearer(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	char value[7 + SEC_VALUE_MAX];
	bool ok;

	memcpy(value, "Bearer ", 7);
	memcpy(value + 7, in->cred, in->credlen);
	ok = gw_prov_header(out, "Authorization", value, 7 + in->credlen);
	wd_wipe(value, 7 + in->credlen);
	if (!ok) {
		*why = GW_PROV_WHY_CRED;
		return WD_EINVAL;
	}
	return WD_OK;
}

enum wd_err
gw_kind_openai(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	if (!gw_prov_url(out, in->route->base_url, "/chat/completions")) {
		*why = GW_PROV_WHY_URL;
		return WD_ELIMIT;
	}
	return gw_prov_bearer(in, out, why);
}
