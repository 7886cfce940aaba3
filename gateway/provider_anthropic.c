/*
 * provider_anthropic.c - Anthropic's API: the key in `x-api-key`, the
 * API version in `anthropic-version` (route's anthropic_version,
 * 2023-06-01 by default).  warden speaks OpenAI chat to it, through
 * Anthropic's OpenAI-compatible /v1/chat/completions; translating to the
 * Messages format is a format's job, not a provider kind's.
 */
#include "gateway/provider_int.h"

#include <string.h>

enum wd_err
gw_kind_anthropic(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	const char *ver = in->route->anthropic_version ?
	    in->route->anthropic_version : "2023-06-01";

	if (!gw_prov_url(out, in->route->base_url, "/chat/completions")) {
		*why = GW_PROV_WHY_URL;
		return WD_ELIMIT;
	}
	if (!gw_prov_header(out, "x-api-key", in->cred, in->credlen) ||
	    !gw_prov_header(out, "anthropic-version", ver, strlen(ver))) {
		*why = GW_PROV_WHY_CRED;
		return WD_EINVAL;
	}
	return WD_OK;
}
