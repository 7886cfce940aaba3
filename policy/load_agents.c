/*
 * load_agents.c - the `agents:` section: each agent's tools (labels, sink,
 * limits), its call graph, its flow rules, and the keys that act as it.
 *
 *   agents:
 *     - id: support-bot
 *       tenant: acme-health
 *       keys: [sha256:...]            # optional: keys that are this agent
 *       on_violation: deny            # or strip
 *       max_calls: 20                 # per session
 *       session: required             # or optional (the default)
 *       sessions: { max: 10000, ttl_s: 3600 }   # live at once; idle expiry
 *       limits:                       # per key, whatever the session
 *         window_s: 3600
 *         max_calls: 100
 *         per_tool: { send_email: 5 }
 *       tools:
 *         search_kb:     {}
 *         read_customer: { labels: [personal], max_calls: 5 }
 *         send_email:    { sink: external }
 *       graph:                        # allowed transitions
 *         start:         [search_kb, read_customer]
 *         search_kb:     [search_kb, read_customer, send_email]
 *       flows:
 *         - id: no-personal-out
 *           deny: { from_label: personal, to_sink: external }
 *
 * Tools and the graph are resolved here (they live in one agent); the
 * tenant and the labels (data classes) in pol_compile_agents(), once all
 * files are read.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const agent_keys[] = {
	"id", "tenant", "keys", "on_violation", "max_calls", "tools", "graph",
	"flows", "session", "sessions", "limits", "mcp", NULL
};
static const char *const mcp_keys[] = { "sampling", "elicitation", NULL };
static const char *const sessions_keys[] = { "max", "ttl_s", NULL };
static const char *const limits_keys[] = {
	"window_s", "max_calls", "per_tool", NULL
};
static const char *const tool_keys[] = { "labels", "sink", "max_calls", NULL };
static const char *const flow_keys[] = { "id", "deny", NULL };
static const char *const deny_keys[] = { "from_label", "to_sink", NULL };

const char *
pol_sink_name(enum pol_sink s)
{
	return s == POL_SINK_EXTERNAL ? "external" :
	    s == POL_SINK_INTERNAL ? "internal" : "none";
}

static bool
sink(struct pol_walk *w, yaml_node_t *n, enum pol_sink *out)
{
	if (!pol_is_scalar(w, n, "sink"))
		return false;
	if (strcmp(pol_scalar(n), "external") == 0)
		*out = POL_SINK_EXTERNAL;
	else if (strcmp(pol_scalar(n), "internal") == 0)
		*out = POL_SINK_INTERNAL;
	else {
		pol_err(w, n, "sink must be external or internal, not '%s'",
		    pol_scalar(n));
		return false;
	}
	return true;
}

static void
load_tools(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a,
    struct raw_agent *raw)
{
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "tools"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value), *x;
		struct pol_tool *t;
		long long lim;

		if (k == NULL || v == NULL)
			return;
		if (a->ntools >= POL_MAX_TOOLS) {
			pol_err(w, k, "agent '%s' has more than %d tools",
			    a->id ? a->id : "?", POL_MAX_TOOLS);
			return;
		}
		t = &a->tools[a->ntools];
		t->max_calls = -1;
		if (!pol_str(w, k, "tool name", &t->name))
			continue;
		/* OpenAI's own rule for function names; it also keeps names
		 * safe to print in DOT, Mermaid and messages. */
		if (strlen(t->name) > 64 || strspn(t->name, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(t->name)) {
			pol_err(w, k, "tool name '%.80s' must be 1 to 64 of A-Z a-z 0-9 "
			    "_ -", t->name);
			free(t->name);
			t->name = NULL;
			continue;
		}
		if (strcmp(t->name, "start") == 0) {
			pol_err(w, k, "'start' is reserved for the graph's entry");
			free(t->name);
			t->name = NULL;
			continue;
		}
		for (size_t i = 0; i < a->ntools; i++)
			if (strcmp(a->tools[i].name, t->name) == 0)
				pol_err(w, k, "tool '%s' is declared twice", t->name);
		a->ntools++;
		if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)
			continue;	/* "tool:" with nothing */
		if (!pol_is_map(w, v, "a tool"))
			continue;
		pol_check_keys(w, v, tool_keys, "a tool");
		if ((x = pol_get(w, v, "labels")) != NULL)
			pol_refs(w, x, "labels", &raw->labels[a->ntools - 1],
			    &raw->nlabels[a->ntools - 1]);
		if ((x = pol_get(w, v, "sink")) != NULL)
			sink(w, x, &t->sink);
		if ((x = pol_get(w, v, "max_calls")) != NULL &&
		    pol_int(w, x, "max_calls", 0, 65535, &lim))
			t->max_calls = (int)lim;
	}
}

/* A tool of a, by name, with an error at n if it is not one. */
static int
tool_ref(struct pol_walk *w, const struct pol_agent *a, yaml_node_t *n)
{
	const char *best = NULL;
	size_t bestd = 3;
	int idx;

	if (!pol_is_scalar(w, n, "tool"))
		return -2;
	idx = pol_tool_index(a, pol_scalar(n));
	if (idx >= 0)
		return idx;
	for (size_t i = 0; i < a->ntools; i++) {
		size_t d = wd_edit_distance(pol_scalar(n), a->tools[i].name);

		if (d < bestd) {
			bestd = d;
			best = a->tools[i].name;
		}
	}
	if (best != NULL)
		pol_err(w, n, "graph names undeclared tool '%s' (did you mean "
		    "'%s'?)", pol_scalar(n), best);
	else
		pol_err(w, n, "graph names undeclared tool '%s'", pol_scalar(n));
	return -2;
}

static void
load_graph(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a)
{
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "graph"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		uint64_t *row;
		int from;

		if (k == NULL || v == NULL)
			return;
		if (!pol_is_scalar(w, k, "graph node"))
			continue;
		if (strcmp(pol_scalar(k), "start") == 0)
			from = POL_START;
		else if ((from = tool_ref(w, a, k)) < -1)
			continue;
		row = from == POL_START ? &a->start : &a->next[from];
		if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)
			continue;	/* "tool:" with no way on */
		if (!pol_is_seq(w, v, "graph edges"))
			continue;
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		    it < v->data.sequence.items.top; it++) {
			yaml_node_t *e = pol_node(w, *it);
			int to;

			if (e == NULL)
				return;
			if ((to = tool_ref(w, a, e)) >= 0)
				*row |= 1ull << to;
		}
	}
}

static void
load_flows(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a,
    struct raw_agent *raw)
{
	size_t len;

	if (!pol_is_seq(w, n, "flows"))
		return;
	len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	a->flows = calloc(len ? len : 1, sizeof(*a->flows));
	raw->flow_labels = calloc(len ? len : 1, sizeof(*raw->flow_labels));
	if (a->flows == NULL || raw->flow_labels == NULL)
		return;
	for (size_t i = 0; i < len; i++) {
		yaml_node_t *f = pol_node(w, n->data.sequence.items.start[i]), *d, *v;
		struct pol_flow *fl = &a->flows[a->nflows];

		if (f == NULL)
			return;
		if (!pol_is_map(w, f, "a flow rule"))
			continue;
		pol_check_keys(w, f, flow_keys, "a flow rule");
		if ((v = pol_get(w, f, "id")) != NULL)
			pol_str(w, v, "flow id", &fl->id);
		else if (asprintf(&fl->id, "%s.flow-%zu", a->id ? a->id : "agent",
		    i + 1) < 0)
			fl->id = NULL;
		if ((d = pol_get(w, f, "deny")) == NULL) {
			pol_err(w, f, "flow rule without 'deny'");
			continue;
		}
		if (!pol_is_map(w, d, "deny"))
			continue;
		pol_check_keys(w, d, deny_keys, "deny");
		if ((v = pol_get(w, d, "from_label")) == NULL)
			pol_err(w, d, "deny without 'from_label'");
		else
			pol_ref1(w, v, "from_label", &raw->flow_labels[a->nflows]);
		if ((v = pol_get(w, d, "to_sink")) == NULL)
			pol_err(w, d, "deny without 'to_sink'");
		else
			sink(w, v, &fl->to_sink);
		a->nflows++;
	}
}

/* sessions: { max, ttl_s } */
static void
load_sessions(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a)
{
	yaml_node_t *v;
	long long x;

	if (!pol_is_map(w, n, "sessions"))
		return;
	pol_check_keys(w, n, sessions_keys, "sessions");
	if ((v = pol_get(w, n, "max")) != NULL &&
	    pol_int(w, v, "sessions.max", 1, 1000000, &x))
		a->max_sessions = (size_t)x;
	if ((v = pol_get(w, n, "ttl_s")) != NULL &&
	    pol_int(w, v, "sessions.ttl_s", 1, 30 * 86400, &x))
		a->session_ttl_s = (int)x;
}

/* limits: { window_s, max_calls, per_tool: { tool: n } }, after tools. */
static void
load_limits(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a)
{
	yaml_node_t *v;
	long long x;
	bool any = false;

	if (!pol_is_map(w, n, "limits"))
		return;
	pol_check_keys(w, n, limits_keys, "limits");
	if ((v = pol_get(w, n, "window_s")) == NULL)
		pol_err(w, n, "limits without 'window_s'");
	else if (pol_int(w, v, "limits.window_s", 1, 30 * 86400, &x))
		a->limits.window_s = (int)x;
	if ((v = pol_get(w, n, "max_calls")) != NULL) {
		any = true;
		if (pol_int(w, v, "limits.max_calls", 0, 1000000, &x))
			a->limits.max_calls = (int)x;
	}
	if ((v = pol_get(w, n, "per_tool")) != NULL && pol_is_map(w, v,
	    "limits.per_tool")) {
		for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
		    p < v->data.mapping.pairs.top; p++) {
			yaml_node_t *k = pol_node(w, p->key), *c = pol_node(w, p->value);
			int idx;

			if (k == NULL || c == NULL)
				return;
			any = true;
			if (!pol_is_scalar(w, k, "tool"))
				continue;
			if ((idx = pol_tool_index(a, pol_scalar(k))) < 0) {
				pol_err(w, k, "limits.per_tool names undeclared tool "
				    "'%s'", pol_scalar(k));
				continue;
			}
			if (pol_int(w, c, "limits.per_tool", 0, 1000000, &x))
				a->limits.per_tool[idx] = (int)x;
		}
	}
	if (!any)
		pol_err(w, n, "limits without 'max_calls' or 'per_tool'");
}

/* allow | deny, as a bool (false when absent or wrong). */
static void
allow_deny(struct pol_walk *w, yaml_node_t *map, const char *key, bool *out)
{
	yaml_node_t *v = pol_get(w, map, key);

	if (v == NULL || !pol_is_scalar(w, v, key))
		return;
	if (strcmp(pol_scalar(v), "allow") == 0)
		*out = true;
	else if (strcmp(pol_scalar(v), "deny") != 0)
		pol_err(w, v, "mcp.%s must be allow or deny, not '%.64s'", key,
		    pol_scalar(v));
}

/* What an MCP server may ask of the agent's client; deny by default. */
static void
load_mcp(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a)
{
	if (!pol_is_map(w, n, "mcp"))
		return;
	pol_check_keys(w, n, mcp_keys, "mcp");
	allow_deny(w, n, "sampling", &a->mcp_sampling);
	allow_deny(w, n, "elicitation", &a->mcp_elicitation);
}

static void
load_agent(struct pol_walk *w, yaml_node_t *n, struct pol_agent *a,
    struct raw_agent *raw)
{
	yaml_node_t *v;
	long long lim;

	a->max_calls = -1;
	a->max_sessions = POL_DEFAULT_MAX_SESSIONS;
	a->session_ttl_s = POL_DEFAULT_SESSION_TTL_S;
	a->limits.max_calls = -1;
	for (size_t t = 0; t < POL_MAX_TOOLS; t++)
		a->limits.per_tool[t] = -1;
	pol_at(w, n, &raw->at);
	if (!pol_is_map(w, n, "agent"))
		return;
	pol_check_keys(w, n, agent_keys, "agent");
	pol_load_id(w, n, "agent", &a->id);
	if ((v = pol_get(w, n, "tenant")) == NULL)
		pol_err(w, n, "agent '%s' without 'tenant'", a->id ? a->id : "?");
	else
		pol_ref1(w, v, "tenant", &raw->tenant);
	if ((v = pol_get(w, n, "keys")) != NULL)
		pol_load_keys(w, v, &a->keys, &a->nkeys);
	if ((v = pol_get(w, n, "on_violation")) != NULL && pol_is_scalar(w, v,
	    "on_violation")) {
		if (strcmp(pol_scalar(v), "strip") == 0)
			a->on_violation = POL_VIOLATION_STRIP;
		else if (strcmp(pol_scalar(v), "deny") != 0)
			pol_err(w, v, "on_violation must be strip or deny, not '%s'",
			    pol_scalar(v));
	}
	if ((v = pol_get(w, n, "max_calls")) != NULL &&
	    pol_int(w, v, "max_calls", 0, 65535, &lim))
		a->max_calls = (int)lim;
	if ((v = pol_get(w, n, "tools")) == NULL)
		pol_err(w, n, "agent '%s' without 'tools'", a->id ? a->id : "?");
	else
		load_tools(w, v, a, raw);
	if ((v = pol_get(w, n, "graph")) == NULL)
		pol_err(w, n, "agent '%s' without 'graph' (give at least "
		    "'start: [...]')", a->id ? a->id : "?");
	else
		load_graph(w, v, a);
	if ((v = pol_get(w, n, "flows")) != NULL)
		load_flows(w, v, a, raw);
	if ((v = pol_get(w, n, "session")) != NULL && pol_is_scalar(w, v,
	    "session")) {
		if (strcmp(pol_scalar(v), "required") == 0)
			a->session_required = true;
		else if (strcmp(pol_scalar(v), "optional") != 0)
			pol_err(w, v, "session must be required or optional, not "
			    "'%s'", pol_scalar(v));
	}
	if ((v = pol_get(w, n, "sessions")) != NULL)
		load_sessions(w, v, a);
	if ((v = pol_get(w, n, "limits")) != NULL)
		load_limits(w, v, a);
	if ((v = pol_get(w, n, "mcp")) != NULL)
		load_mcp(w, v, a);
}

void
pol_load_agents(struct pol_loader *l, yaml_node_t *n)
{
	if (!pol_is_seq(&l->w, n, "agents"))
		return;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(&l->w, *it);
		size_t nraw = l->s->nagents;

		if (e == NULL)
			return;
		if (!pol_grow(&l->ra, &nraw, sizeof(*l->ra)) ||
		    !pol_grow(&l->s->agents, &l->s->nagents, sizeof(*l->s->agents))) {
			pol_err(&l->w, e, "out of memory");
			return;
		}
		load_agent(&l->w, e, &l->s->agents[l->s->nagents - 1], &l->ra[nraw - 1]);
	}
}

void
pol_compile_agents(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;

	for (size_t i = 0; i < s->nagents; i++) {
		struct pol_agent *a = &s->agents[i];
		struct raw_agent *raw = &l->ra[i];

		for (size_t j = 0; j < i; j++)
			if (pol_id_eq(a->id, s->agents[j].id))
				pol_err_ref(&l->w, &raw->at, "agent id '%s' is used twice",
				    a->id);
		if (raw->tenant.name != NULL) {
			for (size_t t = 0; t < s->ntenants; t++)
				if (pol_id_eq(s->tenants[t].id, raw->tenant.name))
					a->tenant = &s->tenants[t];
			if (a->tenant == NULL)
				pol_err_ref(&l->w, &raw->tenant, "agent '%s' names "
				    "unknown tenant '%s'", a->id ? a->id : "?",
				    raw->tenant.name);
		}
		for (size_t t = 0; t < a->ntools; t++)
			a->tools[t].labels = pol_class_mask(l, raw->labels[t],
			    raw->nlabels[t], "label");
		for (size_t f = 0; f < a->nflows; f++)
			if (raw->flow_labels[f].name != NULL)
				a->flows[f].from_labels = pol_class_mask(l,
				    &raw->flow_labels[f], 1, "label");
	}
}

void
pol_free_raw_agents(struct pol_loader *l)
{
	for (size_t i = 0; l->ra != NULL && i < l->s->nagents; i++) {
		free(l->ra[i].tenant.name);
		for (size_t t = 0; t < POL_MAX_TOOLS; t++)
			pol_refs_free(l->ra[i].labels[t], l->ra[i].nlabels[t]);
		if (l->ra[i].flow_labels != NULL)
			for (size_t f = 0; f < l->s->agents[i].nflows; f++)
				free(l->ra[i].flow_labels[f].name);
		free(l->ra[i].flow_labels);
	}
	free(l->ra);
}
