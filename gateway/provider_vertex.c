/*
 * provider_vertex.c - Google Vertex AI through its OpenAI-compatible
 * endpoint (base_url https://LOCATION-aiplatform.googleapis.com/v1/
 * projects/P/locations/LOCATION/endpoints/openapi + /chat/completions),
 * with an access token the token keeper (vertex_token.c) holds for the
 * route.  No token at hand: refused here, never waited for.
 */
#include "gateway/provider_int.h"

#include <string.h>

enum wd_err
gw_kind_vertex(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	char value[7 + 2048];
	size_t n;
	bool ok;

	if (!gw_prov_url(out, in->route->base_url, "/chat/completions")) {
		*why = GW_PROV_WHY_URL;
		return WD_ELIMIT;
	}
	memcpy(value, "Bearer ", 7);
	if (!gw_tokens_get(in->route->id, value + 7, sizeof(value) - 7)) {
		*why = "no access token for this route yet (see the log)";
		return WD_EINVAL;
	}
	n = strlen(value);
	ok = gw_prov_header(out, "Authorization", value, n);
	wd_wipe(value, n);
	if (!ok) {
		*why = GW_PROV_WHY_CRED;
		return WD_EINVAL;
	}
	return WD_OK;
}
