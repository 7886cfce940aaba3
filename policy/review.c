/*
 * review.c - what a security reviewer asks of an agent's tool policy:
 * the effective graph (`warden policy graph`), whether one tool or sink
 * can be reached from another (`policy reach`), and a one-page review of
 * every agent (`policy review`).
 *
 * Reachability runs over states (last tool, labels seen so far), so flow
 * rules are honoured exactly as pol_tool_step() enforces them: an edge
 * into an external sink is usable only on paths that have not read
 * labelled data.  Labels that no flow rule names are ignored, which keeps
 * the state space at tools x 2^(flow labels).
 */
#include "policy/pol.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FLOW_LABELS 12

/* State: tool index + 1 (0 is start), and the flow-relevant labels. */
struct walk {
	const struct pol_agent *a;
	uint64_t relevant;		/* labels some flow rule names */
	int bits[MAX_FLOW_LABELS];	/* label bit -> state bit */
	int nbits;
	size_t nstates;
	int *prev;			/* BFS parent state, -1 none */
	unsigned char *seen;
};

static unsigned
compress(const struct walk *w, uint64_t labels)
{
	unsigned m = 0;

	for (int i = 0; i < w->nbits; i++)
		if (labels & (1ull << w->bits[i]))
			m |= 1u << i;
	return m;
}

static bool
walk_init(struct walk *w, const struct pol_agent *a)
{
	memset(w, 0, sizeof(*w));
	w->a = a;
	for (size_t f = 0; f < a->nflows; f++)
		w->relevant |= a->flows[f].from_labels;
	for (int b = 0; b < 64; b++)
		if (w->relevant & (1ull << b)) {
			if (w->nbits >= MAX_FLOW_LABELS)
				return false;
			w->bits[w->nbits++] = b;
		}
	w->nstates = (a->ntools + 1) << w->nbits;
	w->prev = malloc(w->nstates * sizeof(*w->prev));
	w->seen = calloc(w->nstates, 1);
	return w->prev != NULL && w->seen != NULL;
}

static void
walk_free(struct walk *w)
{
	free(w->prev);
	free(w->seen);
}

static size_t
state(const struct walk *w, int tool, unsigned labels)
{
	return ((size_t)(tool + 1) << w->nbits) | labels;
}

static bool
flow_blocks(const struct pol_agent *a, uint64_t labels, int to)
{
	for (size_t f = 0; f < a->nflows; f++)
		if (a->tools[to].sink == a->flows[f].to_sink &&
		    (labels & a->flows[f].from_labels))
			return true;
	return false;
}

static uint64_t
expand(const struct walk *w, unsigned m)
{
	uint64_t labels = 0;

	for (int i = 0; i < w->nbits; i++)
		if (m & (1u << i))
			labels |= 1ull << w->bits[i];
	return labels;
}

/*
 * Breadth first from (from, labels); stops at the first step into a tool
 * that satisfies goal.  Returns the state the step was taken from (the
 * path to it is in prev[]) and the tool in *to; -1 if there is none.
 */
static long
bfs(struct walk *w, int from, uint64_t labels,
    bool (*goal)(const struct pol_agent *, int, const void *), const void *arg,
    int *goal_tool)
{
	const struct pol_agent *a = w->a;
	size_t *queue = malloc(w->nstates * sizeof(*queue)), head = 0, tail = 0;
	long found = -1;

	if (queue == NULL)
		return -1;
	memset(w->seen, 0, w->nstates);
	queue[tail++] = state(w, from, compress(w, labels));
	w->seen[queue[0]] = 1;
	w->prev[queue[0]] = -1;
	while (head < tail && found < 0) {
		size_t s = queue[head++];
		int tool = (int)(s >> w->nbits) - 1;
		unsigned m = (unsigned)(s & ((1u << w->nbits) - 1));
		uint64_t row = tool < 0 ? a->start : a->next[tool];

		for (int to = 0; to < (int)a->ntools; to++) {
			size_t ns;

			if (!(row & (1ull << to)) || flow_blocks(a, expand(w, m), to))
				continue;
			/* The goal counts even if its state was seen: a loop back
			 * to where we started is a path too. */
			if (goal(a, to, arg)) {
				found = (long)s;
				if (goal_tool != NULL)
					*goal_tool = to;
				break;
			}
			ns = state(w, to, m | compress(w, a->tools[to].labels));
			if (w->seen[ns])
				continue;
			w->seen[ns] = 1;
			w->prev[ns] = (int)s;
			queue[tail++] = ns;
		}
	}
	free(queue);
	return found;
}

struct target {
	int tool;			/* -1: any tool with sink */
	enum pol_sink sink;
};

static bool
is_target(const struct pol_agent *a, int tool, const void *arg)
{
	const struct target *t = arg;

	return t->tool >= 0 ? tool == t->tool : a->tools[tool].sink == t->sink;
}

/* The path to state s, then the step to tool last. */
static void
print_path(FILE *out, const struct walk *w, long s, int last)
{
	int path[256], n = 0;

	for (long x = s; x >= 0 && n < 256; x = w->prev[x])
		path[n++] = (int)(x >> w->nbits) - 1;
	for (int i = n - 1; i >= 0; i--)
		fprintf(out, "%s -> ", path[i] < 0 ? "start" :
		    w->a->tools[path[i]].name);
	fprintf(out, "%s\n", w->a->tools[last].name);
}

int
pol_reach(const struct pol_agent *a, const char *from, const char *to,
    FILE *out)
{
	struct target t = { -1, POL_SINK_NONE };
	struct walk w;
	int f = POL_START, last = 0;
	long s;
	int rc;

	if (strcmp(from, "start") != 0 && (f = pol_tool_index(a, from)) < 0) {
		fprintf(out, "agent '%s' has no tool '%s'\n", a->id, from);
		return 2;
	}
	if (strncmp(to, "sink:", 5) == 0) {
		if (strcmp(to + 5, "external") == 0)
			t.sink = POL_SINK_EXTERNAL;
		else if (strcmp(to + 5, "internal") == 0)
			t.sink = POL_SINK_INTERNAL;
		else {
			fprintf(out, "sink must be sink:external or sink:internal\n");
			return 2;
		}
	} else if ((t.tool = pol_tool_index(a, to)) < 0) {
		fprintf(out, "agent '%s' has no tool '%s'\n", a->id, to);
		return 2;
	}
	if (!walk_init(&w, a)) {
		walk_free(&w);
		fprintf(out, "agent '%s': too many flow labels to analyse\n", a->id);
		return 2;
	}
	s = bfs(&w, f, f >= 0 ? a->tools[f].labels : 0, is_target, &t, &last);
	if (s >= 0) {
		print_path(out, &w, s, last);
		rc = 0;
	} else {
		fprintf(out, "unreachable\n");
		rc = 1;
	}
	walk_free(&w);
	return rc;
}

/* Is the edge u -> v usable on some path, on every path, or never? */
enum cut { CUT_NEVER, CUT_SOMETIMES, CUT_ALWAYS };

static bool
never(const struct pol_agent *a, int tool, const void *arg)
{
	(void)a;
	(void)tool;
	(void)arg;
	return false;
}

static enum cut
edge_cut(struct walk *w, int u, int v, uint64_t *why)
{
	const struct pol_agent *a = w->a;
	size_t usable = 0, blocked = 0;

	*why = 0;
	/* Every state of u reachable from start. */
	bfs(w, POL_START, 0, never, NULL, NULL);
	for (unsigned m = 0; m < (1u << w->nbits); m++) {
		size_t s = state(w, u, m);

		if (u != POL_START && !w->seen[s])
			continue;
		if (u == POL_START && m != 0)
			continue;
		if (flow_blocks(a, expand(w, m), v)) {
			blocked++;
			*why |= expand(w, m);
		} else {
			usable++;
		}
	}
	if (blocked == 0)
		return CUT_NEVER;
	return usable == 0 ? CUT_ALWAYS : CUT_SOMETIMES;
}

static void
flows_for(const struct pol_agent *a, int v, uint64_t labels, char *buf,
    size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t f = 0; f < a->nflows; f++)
		if (a->tools[v].sink == a->flows[f].to_sink &&
		    (labels & a->flows[f].from_labels) && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
			    a->flows[f].id);
}

static void
node_label(const struct pol_snapshot *s, const struct pol_tool *t,
    const char *nl, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s", t->name);

	for (size_t b = 0; b < s->nclasses && n < len; b++)
		if (t->labels & (1ull << b))
			n += (size_t)snprintf(buf + n, len - n, "%slabel: %s", nl,
			    s->classes[b]);
	if (t->sink != POL_SINK_NONE && n < len)
		n += (size_t)snprintf(buf + n, len - n, "%ssink: %s", nl,
		    pol_sink_name(t->sink));
	if (t->max_calls >= 0 && n < len)
		snprintf(buf + n, len - n, "%smax %d calls", nl, t->max_calls);
}

/* "crm/read_customer, ..." : where the tool runs through /mcp. */
static void
mcp_where(const struct pol_snapshot *s, const char *tool, char *buf,
    size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->nmcp_servers; i++) {
		const struct pol_mcp_server *m = &s->mcp_servers[i];

		for (size_t t = 0; t < m->ntools && used < len; t++)
			if (strcmp(m->tools[t].agent_name, tool) == 0) {
				int n = snprintf(buf + used, len - used, "%s%s/%s",
				    used ? ", " : "", m->id, m->tools[t].server_name);

				used += n > 0 ? (size_t)n : 0;
			}
	}
}

int
pol_graph(const struct pol_snapshot *s, const struct pol_agent *a,
    const char *format, FILE *out)
{
	struct walk w;
	json_t *j = NULL, *nodes = NULL, *edges = NULL;
	bool dot = strcmp(format, "dot") == 0, mer = strcmp(format, "mermaid") == 0;
	char label[512], flows[256], where[256];

	if (!dot && !mer && strcmp(format, "json") != 0) {
		fprintf(stderr, "warden: --format is dot, mermaid or json\n");
		return 2;
	}
	if (!walk_init(&w, a)) {
		walk_free(&w);
		fprintf(stderr, "agent '%s': too many flow labels\n", a->id);
		return 2;
	}
	if (dot)
		fprintf(out, "digraph \"%s\" {\n  rankdir=LR;\n  \"start\" "
		    "[shape=circle];\n", a->id);
	else if (mer)
		fprintf(out, "flowchart LR\n  start((start))\n");
	else {
		j = json_pack("{s:s,s:s,s:i}", "agent", a->id, "tenant",
		    a->tenant->id, "max_calls", a->max_calls);
		nodes = json_array();
		edges = json_array();
		json_object_set_new(j, "nodes", nodes);
		json_object_set_new(j, "edges", edges);
	}
	for (size_t t = 0; t < a->ntools; t++) {
		const struct pol_tool *tl = &a->tools[t];

		mcp_where(s, tl->name, where, sizeof(where));
		if (dot) {
			node_label(s, tl, "\\n", label, sizeof(label));
			if (where[0] != '\0')
				snprintf(label + strlen(label), sizeof(label) -
				    strlen(label), "\\nmcp: %s", where);
			fprintf(out, "  \"%s\" [label=\"%s\"%s];\n", tl->name, label,
			    tl->sink == POL_SINK_EXTERNAL ? ", shape=box, color=red" :
			    tl->labels ? ", color=orange" : "");
		} else if (mer) {
			node_label(s, tl, "<br/>", label, sizeof(label));
			if (where[0] != '\0')
				snprintf(label + strlen(label), sizeof(label) -
				    strlen(label), "<br/>mcp: %s", where);
			fprintf(out, "  %s[\"%s\"]\n", tl->name, label);
		} else {
			json_t *lb = json_array();

			for (size_t b = 0; b < s->nclasses; b++)
				if (tl->labels & (1ull << b))
					json_array_append_new(lb, json_string(s->classes[b]));
			json_array_append_new(nodes, json_pack("{s:s,s:o,s:s,s:i,s:s?}",
			    "name", tl->name, "labels", lb, "sink",
			    pol_sink_name(tl->sink), "max_calls", tl->max_calls,
			    "mcp", where[0] ? where : NULL));
		}
	}
	for (int u = POL_START; u < (int)a->ntools; u++) {
		uint64_t row = u == POL_START ? a->start : a->next[u];
		const char *un = u == POL_START ? "start" : a->tools[u].name;

		for (int v = 0; v < (int)a->ntools; v++) {
			uint64_t why;
			enum cut c;

			if (!(row & (1ull << v)))
				continue;
			c = edge_cut(&w, u, v, &why);
			flows_for(a, v, why, flows, sizeof(flows));
			if (dot && c == CUT_NEVER)
				fprintf(out, "  \"%s\" -> \"%s\";\n", un, a->tools[v].name);
			else if (dot)
				fprintf(out, "  \"%s\" -> \"%s\" [style=dashed, color=red, "
				    "label=\"%s: %s\"];\n", un, a->tools[v].name,
				    c == CUT_ALWAYS ? "cut" : "cut after labelled data",
				    flows);
			else if (mer && c == CUT_NEVER)
				fprintf(out, "  %s --> %s\n", un, a->tools[v].name);
			else if (mer)
				fprintf(out, "  %s -. \"%s: %s\" .-> %s\n", un,
				    c == CUT_ALWAYS ? "cut" : "cut after labelled data",
				    flows, a->tools[v].name);
			else
				json_array_append_new(edges, json_pack("{s:s,s:s,s:s?,"
				    "s:s?}", "from", un, "to", a->tools[v].name, "cut",
				    c == CUT_NEVER ? NULL : c == CUT_ALWAYS ? "always" :
				    "after_labelled_data", "flows",
				    c == CUT_NEVER ? NULL : flows));
		}
	}
	if (dot)
		fprintf(out, "}\n");
	if (j != NULL) {
		char *text = json_dumps(j, JSON_INDENT(2));

		fprintf(out, "%s\n", text);
		free(text);
		json_decref(j);
	}
	walk_free(&w);
	return 0;
}

int
pol_review(const struct pol_snapshot *s, FILE *out)
{
	bool leak = false;

	if (s->nagents == 0)
		fprintf(out, "no agents\n");
	for (size_t i = 0; i < s->nagents; i++) {
		const struct pol_agent *a = &s->agents[i];
		struct target ext = { -1, POL_SINK_EXTERNAL };
		struct walk w;
		size_t findings = 0;
		int last = 0;

		fprintf(out, "agent %s (tenant %s, %zu tools, on_violation %s, "
		    "max_calls %s)\n", a->id, a->tenant->id, a->ntools,
		    a->on_violation == POL_VIOLATION_STRIP ? "strip" : "deny",
		    a->max_calls < 0 ? "none" : "set");
		if (s->nmcp_servers > 0)
			fprintf(out, "  mcp: sampling %s, elicitation %s\n",
			    a->mcp_sampling ? "allow" : "deny",
			    a->mcp_elicitation ? "allow" : "deny");
		for (size_t t = 0; t < a->ntools; t++) {
			char where[256];

			mcp_where(s, a->tools[t].name, where, sizeof(where));
			if (where[0] != '\0')
				fprintf(out, "  mcp tool '%s' runs at %s\n",
				    a->tools[t].name, where);
		}
		if (!walk_init(&w, a)) {
			walk_free(&w);
			fprintf(out, "  cannot analyse: more than %d flow labels\n",
			    MAX_FLOW_LABELS);
			leak = true;
			continue;
		}
		for (size_t t = 0; t < a->ntools; t++) {
			long st;

			if (a->tools[t].labels == 0)
				continue;
			st = bfs(&w, (int)t, a->tools[t].labels, is_target, &ext,
			    &last);
			if (st >= 0) {
				fprintf(out, "  LEAK: labelled data from '%s' can reach an "
				    "external sink: ", a->tools[t].name);
				print_path(out, &w, st, last);
				leak = true;
				findings++;
			}
		}
		bfs(&w, POL_START, 0, never, NULL, NULL);
		for (size_t t = 0; t < a->ntools; t++) {
			bool reached = false;

			for (unsigned m = 0; m < (1u << w.nbits) && !reached; m++)
				reached = w.seen[state(&w, (int)t, m)];
			if (!reached) {
				fprintf(out, "  unreachable from start: '%s'\n",
				    a->tools[t].name);
				findings++;
			}
		}
		for (size_t t = 0; t < a->ntools; t++)
			if (a->tools[t].max_calls < 0) {
				fprintf(out, "  no call limit: '%s'%s\n", a->tools[t].name,
				    a->max_calls < 0 ? " (and no max_calls for the agent)"
				    : "");
				findings++;
			}
		if (findings == 0)
			fprintf(out, "  ok: no labelled data reaches an external sink; "
			    "every tool reachable and limited\n");
		walk_free(&w);
	}
	/* Server tools that no agent can call are never shown: say so. */
	for (size_t i = 0; i < s->nmcp_servers; i++) {
		const struct pol_mcp_server *m = &s->mcp_servers[i];

		fprintf(out, "mcp server %s (%s, %s, credential %s)\n", m->id,
		    m->country, m->url, m->credential ? m->credential : "none");
		for (size_t t = 0; t < m->ntools; t++) {
			bool any = false;

			for (size_t g = 0; g < s->nagents && !any; g++)
				any = pol_tool_index(&s->agents[g],
				    m->tools[t].agent_name) >= 0;
			fprintf(out, "  tool '%s' as '%s'%s\n", m->tools[t].server_name,
			    m->tools[t].agent_name, any ? "" : ": no agent has this "
			    "tool; never shown");
		}
	}
	return leak ? 1 : 0;
}
