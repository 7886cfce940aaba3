/*
 * provider.c - the table of provider kinds, and the small helpers their
 * files share.  See provider.h.
 */
#include "gateway/provider.h"
#include "gateway/provider_int.h"

#include <stdio.h>
#include <string.h>

static const struct gw_provider_kind kinds[] = {
	{ "openai", true, gw_kind_openai },
	{ "azure", true, gw_kind_azure },
	{ "bedrock", true, gw_kind_bedrock },
	{ "anthropic", true, gw_kind_anthropic },
	/* the token keeper uses the key; requests carry its token */
	{ "vertex", false, gw_kind_vertex },
};

bool
gw_prov_header(struct gw_prov_req *r, const char *name, const void *value,
    size_t len)
{
	size_t nlen = strlen(name), need = nlen + 2 + len + 1;
	char *at;

	if (r->nhdrs == GW_PROV_MAX_HDRS || need > sizeof(r->buf) - r->used ||
	    memchr(value, '\r', len) || memchr(value, '\n', len) ||
	    memchr(value, '\0', len))
		return false;
	at = r->buf + r->used;
	memcpy(at, name, nlen);
	memcpy(at + nlen, ": ", 2);
	memcpy(at + nlen + 2, value, len);
	at[need - 1] = '\0';
	r->hdrs[r->nhdrs++] = at;
	r->used += need;
	return true;
}

bool
gw_prov_url(struct gw_prov_req *r, const char *base, const char *suffix)
{
	size_t n = wd_strlcpy(r->url, base, sizeof(r->url));

	return n < sizeof(r->url) &&
	    wd_strlcpy(r->url + n, suffix, sizeof(r->url) - n) <
	    sizeof(r->url) - n;
}

enum wd_err
gw_provider_prepare(const struct gw_prov_in *in, struct gw_prov_req *out,
    const char **why)
{
	const char *kind = in->route->kind ? in->route->kind : "openai";

	/* Not all 18 KB of it per request: a kind reads only what it wrote
	 * (url, the headers it added), and buf is wiped up to what it used
	 * after each request (gw_prov_req_wipe). */
	out->url[0] = '\0';
	out->nhdrs = 0;
	out->used = 0;
	*why = NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kinds[i].name, kind) != 0)
			continue;
		if (kinds[i].uses_cred && (in->cred == NULL || in->credlen == 0 ||
		    in->credlen > SEC_VALUE_MAX)) {
			*why = "the credential for this route is not available";
			return WD_EINVAL;
		}
		return kinds[i].prepare(in, out, why);
	}
	*why = "this route's provider kind is not supported";
	return WD_EUNSUPPORTED;
}

void
gw_prov_req_wipe(struct gw_prov_req *r)
{
	wd_wipe(r->buf, r->used);
	r->used = 0;
	r->nhdrs = 0;
}
