/*
 * provider_int.h - the provider kinds' own functions, one file each;
 * provider.c's table names them.  Each fills out for in, or returns an
 * error with *why set to a static text that holds no secret.
 */
#ifndef GW_PROVIDER_INT_H
#define GW_PROVIDER_INT_H

#include "gateway/provider.h"

struct gw_provider_kind {
	const char *name;		/* the route's `kind:` */
	bool uses_cred;			/* in->cred goes into the request */
	enum wd_err (*prepare)(const struct gw_prov_in *in,
	    struct gw_prov_req *out, const char **why);
};

/* provider_openai.c: OpenAI and compatible hosts, Bearer */
enum wd_err gw_kind_openai(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);
/* provider_azure.c: Azure OpenAI, api-key, v1 or deployment path */
enum wd_err gw_kind_azure(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);
/* provider_bedrock.c: AWS Bedrock, SigV4 or Bearer API key */
enum wd_err gw_kind_bedrock(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);
/* provider_anthropic.c: Anthropic, x-api-key and anthropic-version */
enum wd_err gw_kind_anthropic(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);

/* provider_vertex.c: Vertex AI, a service account's access token */
enum wd_err gw_kind_vertex(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);

/* "Authorization: Bearer <credential>" into out (provider_openai.c). */
enum wd_err gw_prov_bearer(const struct gw_prov_in *in,
    struct gw_prov_req *out, const char **why);

/* Shared refusals, so every kind words them the same. */
#define GW_PROV_WHY_CRED "the credential for this route cannot be used " \
	"in a header"
#define GW_PROV_WHY_URL "route URL too long"

#endif /* GW_PROVIDER_INT_H */
