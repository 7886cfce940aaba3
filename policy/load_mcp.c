/*
 * load_mcp.c - the `mcp_servers:` section: upstream MCP servers warden
 * proxies at /mcp/ID, where they are (url, country), the credential
 * warden attaches (a sealed secret, as routes have), the Origin values a
 * browser client may send, and which agent tool each server tool is.
 *
 * A server tool that the `tools:` map does not name is never shown or
 * called: the map is the allow-list, the agents' tool rules do the rest.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const mcp_server_keys[] = {
	"id", "url", "country", "credential", "origins", "tools", NULL
};

static void
load_tools_map(struct pol_walk *w, yaml_node_t *n, struct pol_mcp_server *m)
{
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "mcp server tools"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		struct pol_mcp_tool *t;

		if (k == NULL || v == NULL)
			return;
		if (!pol_is_scalar(w, k, "server tool name") ||
		    !pol_is_scalar(w, v, "agent tool name"))
			continue;
		if (m->ntools >= POL_MCP_MAX_TOOLS) {
			pol_err(w, k, "mcp server '%s' maps more than %d tools",
			    m->id ? m->id : "?", POL_MCP_MAX_TOOLS);
			return;
		}
		if (*pol_scalar(k) == '\0' || strlen(pol_scalar(k)) > 128 ||
		    *pol_scalar(v) == '\0' || strlen(pol_scalar(v)) > 64) {
			pol_err(w, k, "tool names are 1 to 128 (server) and 1 to 64 "
			    "(agent) characters");
			continue;
		}
		if (pol_mcp_agent_tool(m, pol_scalar(k)) != NULL) {
			pol_err(w, k, "server tool '%.128s' is mapped twice",
			    pol_scalar(k));
			continue;
		}
		if (!pol_grow(&m->tools, &m->ntools, sizeof(*m->tools))) {
			pol_err(w, k, "out of memory");
			return;
		}
		t = &m->tools[m->ntools - 1];
		t->server_name = strdup(pol_scalar(k));
		t->agent_name = strdup(pol_scalar(v));
		if (t->server_name == NULL || t->agent_name == NULL)
			pol_err(w, k, "out of memory");
	}
}

static void
load_server(struct pol_walk *w, yaml_node_t *n, struct pol_mcp_server *m)
{
	yaml_node_t *v;
	char *country = NULL;
	const char *id;

	if (!pol_is_map(w, n, "mcp server"))
		return;
	pol_check_keys(w, n, mcp_server_keys, "mcp server");
	pol_load_id(w, n, "mcp server", &m->id);
	id = m->id ? m->id : "?";
	if ((v = pol_get(w, n, "url")) == NULL)
		pol_err(w, n, "mcp server '%s' without 'url'", id);
	else if (pol_str(w, v, "url", &m->url)) {
		if (strncmp(m->url, "http://", 7) != 0 &&
		    strncmp(m->url, "https://", 8) != 0)
			pol_err(w, v, "url must start with http:// or https://");
		else if (strncmp(m->url, "http://", 7) == 0 &&
		    !pol_http_loopback(m->url))
			/* The server's credential and every call would cross
			 * the network in clear. */
			pol_err(w, v, "mcp server '%s': plain http:// to a host that "
			    "is not loopback; use https://", id);
	}
	if ((v = pol_get(w, n, "country")) == NULL)
		pol_err(w, n, "mcp server '%s' without 'country'", id);
	else if (pol_str(w, v, "country", &country)) {
		if (!pol_country_valid(country))
			pol_err(w, v, "'%s' is not an ISO 3166-1 alpha-2 country code",
			    country);
		else
			memcpy(m->country, country, 3);
		free(country);
	}
	if ((v = pol_get(w, n, "credential")) != NULL)
		pol_str(w, v, "credential", &m->credential);
	if ((v = pol_get(w, n, "origins")) != NULL)
		pol_str_list(w, v, "origins", &m->origins, &m->norigins);
	if ((v = pol_get(w, n, "tools")) == NULL)
		pol_err(w, n, "mcp server '%s' without 'tools' (server tool: agent "
		    "tool)", id);
	else
		load_tools_map(w, v, m);
}

void
pol_load_mcp_servers(struct pol_loader *l, yaml_node_t *n)
{
	yaml_node_item_t *it;

	if (!pol_is_seq(&l->w, n, "mcp_servers"))
		return;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	    it++) {
		yaml_node_t *e = pol_node(&l->w, *it);
		struct pol_mcp_server *m;

		if (e == NULL)
			return;
		if (!pol_grow(&l->s->mcp_servers, &l->s->nmcp_servers,
		    sizeof(*l->s->mcp_servers))) {
			pol_err(&l->w, e, "out of memory");
			return;
		}
		m = &l->s->mcp_servers[l->s->nmcp_servers - 1];
		load_server(&l->w, e, m);
		for (size_t i = 0; i + 1 < l->s->nmcp_servers; i++)
			if (pol_id_eq(m->id, l->s->mcp_servers[i].id)) {
				pol_err(&l->w, e, "mcp server id '%s' is used twice",
				    m->id);
				break;
			}
	}
}

const struct pol_mcp_server *
pol_mcp_find(const struct pol_snapshot *snap, const char *id)
{
	for (size_t i = 0; i < snap->nmcp_servers; i++)
		if (pol_id_eq(snap->mcp_servers[i].id, id))
			return &snap->mcp_servers[i];
	return NULL;
}

const char *
pol_mcp_agent_tool(const struct pol_mcp_server *m, const char *server_tool)
{
	for (size_t i = 0; i < m->ntools; i++)
		if (strcmp(m->tools[i].server_name, server_tool) == 0)
			return m->tools[i].agent_name;
	return NULL;
}
