/*
 * snapshot.c - lifetime of a compiled snapshot and the read-only queries
 * the gateway makes against it on every request.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>

struct pol_snapshot *
pol_snapshot_ref(struct pol_snapshot *snap)
{
	atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
	return snap;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
pol_snapshot_unref(struct pol_snapshot *s)
{
	if (s == NULL ||
	    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < s->nproviders; i++) {
		struct pol_provider *p = &s->providers[i];

		free(p->id);
		free(p->api);
		free(p->base_url);
		free(p->credential);
		free(p->legal_basis);
		free_strv(p->models, p->nmodels);
		free(p->processing_text);
		free(p->storage_text);
		free(p->abuse_text);
		free(p->kind);
		free(p->auth);
		free(p->region);
		free(p->service);
		free(p->bedrock_api);
		free(p->azure_deployment);
		free(p->api_version);
		free(p->anthropic_version);
		free(p->token_url);
		free(p->service_account);
		free(p->ca_file);
	}
	free(s->providers);
	for (size_t i = 0; i < s->nmcp_servers; i++) {
		struct pol_mcp_server *m = &s->mcp_servers[i];

		free(m->id);
		free(m->url);
		free(m->credential);
		free_strv(m->origins, m->norigins);
		for (size_t t = 0; t < m->ntools; t++) {
			free(m->tools[t].server_name);
			free(m->tools[t].agent_name);
		}
		free(m->tools);
	}
	free(s->mcp_servers);
	free(s->mcp_pins_dir);
	pol_limits_free(s);
	for (size_t i = 0; i < s->ntenants; i++) {
		free(s->tenants[i].id);
		free(s->tenants[i].keys);
		free(s->tenants[i].routes);
		free(s->tenants[i].region_text);
		for (size_t a = 0; a < s->tenants[i].napps; a++) {
			free(s->tenants[i].apps[a].id);
			free(s->tenants[i].apps[a].keys);
		}
		free(s->tenants[i].apps);
		free_strv(s->tenants[i].purposes, s->tenants[i].npurposes);
		free_strv(s->tenants[i].categories, s->tenants[i].ncategories);
		free(s->tenants[i].controller);
	}
	free(s->tenants);
	for (size_t i = 0; i < s->ndevcreds; i++) {
		free(s->devcreds[i].name);
		if (s->devcreds[i].value != NULL) {
			wd_wipe(s->devcreds[i].value, strlen(s->devcreds[i].value));
			free(s->devcreds[i].value);
		}
	}
	free(s->devcreds);
	for (size_t i = 0; i < s->njurisdictions; i++)
		free(s->jurisdictions[i].name);
	free(s->jurisdictions);
	for (size_t i = 0; i < s->nclasses; i++)
		free(s->classes[i]);
	for (size_t i = 0; i < s->nrules; i++) {
		struct pol_rule *r = &s->rules[i];

		free(r->id);
		free(r->country_text);
		free(r->processing_text);
		free(r->storage_text);
		free(r->abuse_text);
		free(r->when_tenants);
		free(r->legal_basis);
	}
	free(s->rules);
	for (size_t i = 0; i < s->nagents; i++) {
		struct pol_agent *a = &s->agents[i];

		free(a->id);
		free(a->keys);
		for (size_t t = 0; t < a->ntools; t++)
			free(a->tools[t].name);
		for (size_t f = 0; f < a->nflows; f++)
			free(a->flows[f].id);
		free(a->flows);
	}
	free(s->agents);
	for (int b = 0; b < POL_MAX_CLASSES; b++)
		free(s->by_class[b]);
	free(s->always);
	free(s->keyidx);
	pol_detect_free(&s->detect);
	free(s->server.listen);
	free(s->server.metrics_keys);
	free(s->upstream.proxy);
	free(s->secrets.store);
	free(s->audit.dir);
	free(s->audit.witness.syslog);
	free(s->audit.witness.url);
	free(s->audit.witness.ca_file);
	free(s->secrets.tcti);
	free(s->secrets.auth_file);
	free(s->secrets.sign_pcrs);
	free(s->path);
	free(s);
}

bool
pol_find_caller(const struct pol_snapshot *s, const unsigned char digest[32],
    struct pol_caller *out)
{
	uint64_t h;
	size_t slot;

	memset(out, 0, sizeof(*out));
	if (s->keyidx_cap == 0)
		return false;
	memcpy(&h, digest, sizeof(h));
	slot = h & (s->keyidx_cap - 1);
	while (s->keyidx[slot].digest != NULL) {
		if (wd_ct_equal(s->keyidx[slot].digest, digest, 32)) {
			out->tenant = s->keyidx[slot].tenant;
			out->agent = s->keyidx[slot].agent;
			out->app = s->keyidx[slot].app;
			out->key = s->keyidx[slot].digest;
			return true;
		}
		slot = (slot + 1) & (s->keyidx_cap - 1);
	}
	return false;
}

const struct pol_tenant *
pol_find_key_agent(const struct pol_snapshot *s, const unsigned char digest[32],
    const struct pol_agent **agent)
{
	struct pol_caller c;

	pol_find_caller(s, digest, &c);
	if (agent != NULL)
		*agent = c.agent;
	return c.tenant;
}

const struct pol_tenant *
pol_find_key(const struct pol_snapshot *s, const unsigned char digest[32])
{
	return pol_find_key_agent(s, digest, NULL);
}

bool
pol_provider_serves(const struct pol_provider *p, const char *model)
{
	for (size_t i = 0; i < p->nmodels; i++)
		if (strcmp(p->models[i], model) == 0)
			return true;
	return false;
}

const char *
pol_devcred(const struct pol_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->ndevcreds; i++)
		if (strcmp(s->devcreds[i].name, name) == 0)
			return s->devcreds[i].value;
	return NULL;
}

int
pol_class_bit(const struct pol_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nclasses; i++)
		if (strcmp(s->classes[i], name) == 0)
			return (int)i;
	return -1;
}

int
pol_country_index(const char *c)
{
	if (c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] != '\0')
		return -1;
	return (c[0] - 'A') * 26 + (c[1] - 'A');
}

void
pol_cset_add(struct pol_cset *s, int idx)
{
	if (idx >= 0 && idx < 26 * 26)
		s->w[idx / 64] |= 1ull << (idx % 64);
}

bool
pol_cset_has(const struct pol_cset *s, int idx)
{
	return idx >= 0 && idx < 26 * 26 && (s->w[idx / 64] >> (idx % 64) & 1);
}

const char *
pol_keep_name(enum pol_keep k)
{
	switch (k) {
	case POL_KEEP_NONE:
		return "none";
	case POL_KEEP_HASH:
		return "hash";
	case POL_KEEP_REDACTED:
		return "redacted";
	case POL_KEEP_FULL:
		return "full";
	}
	return "none";
}
