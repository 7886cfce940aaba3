/*
 * tools.c - an agent's tool calls against its policy: the graph of allowed
 * transitions, flow rules (no call to a sink after a call carrying a
 * label), and call limits.  Pure functions over struct pol_tstate, which
 * the gateway builds from a request's history and advances call by call.
 */
#include "policy/pol.h"

#include <stdio.h>
#include <string.h>

void
pol_tstate_init(struct pol_tstate *st)
{
	memset(st, 0, sizeof(*st));
	st->last = POL_START;
}

int
pol_tool_index(const struct pol_agent *a, const char *name)
{
	for (size_t i = 0; i < a->ntools; i++)
		if (a->tools[i].name != NULL && strcmp(a->tools[i].name, name) == 0)
			return (int)i;
	return -1;
}

static const char *
last_name(const struct pol_agent *a, const struct pol_tstate *st)
{
	return st->last == POL_START ? "start" : a->tools[st->last].name;
}

/* The agent's limits per key over its window (limits:): st holds the
 * key's calls in the window so far. */
static bool
window_ok(const struct pol_agent *a, const struct pol_tstate *st, int idx,
    struct pol_tool_why *why)
{
	const struct pol_limits *l = &a->limits;

	if (l->per_tool[idx] >= 0 && st->wcounts[idx] >= (unsigned)l->per_tool[idx]) {
		why->rule = "limits.per_tool";
		snprintf(why->message, sizeof(why->message), "agent '%s' may call "
		    "'%s' at most %d times in %d s per key", a->id,
		    a->tools[idx].name, l->per_tool[idx], l->window_s);
		return false;
	}
	if (l->max_calls >= 0 && st->wtotal >= (unsigned)l->max_calls) {
		why->rule = "limits.max_calls";
		snprintf(why->message, sizeof(why->message), "agent '%s' may make "
		    "at most %d tool calls in %d s per key", a->id, l->max_calls,
		    l->window_s);
		return false;
	}
	return true;
}

bool
pol_tool_step(const struct pol_agent *a, struct pol_tstate *st,
    const char *tool, bool advance, struct pol_tool_why *why)
{
	int idx = pol_tool_index(a, tool);
	uint64_t allowed;
	const struct pol_tool *t;

	if (idx < 0) {
		why->rule = "undeclared_tool";
		snprintf(why->message, sizeof(why->message), "agent '%s' has no "
		    "tool '%.64s'", a->id, tool);
		return false;
	}
	t = &a->tools[idx];
	allowed = st->last == POL_START ? a->start : a->next[st->last];
	if (!(allowed & (1ull << idx))) {
		why->rule = "graph";
		snprintf(why->message, sizeof(why->message), "agent '%s' may not "
		    "call '%s' after '%s'", a->id, t->name, last_name(a, st));
		return false;
	}
	for (size_t f = 0; f < a->nflows; f++) {
		const struct pol_flow *fl = &a->flows[f];

		if (t->sink == fl->to_sink && (st->labels & fl->from_labels)) {
			why->rule = fl->id;
			snprintf(why->message, sizeof(why->message), "flow rule '%s': "
			    "agent '%s' may not call '%s' (%s sink) after labelled "
			    "data was read in this session", fl->id, a->id, t->name,
			    pol_sink_name(t->sink));
			return false;
		}
	}
	if (t->max_calls >= 0 && st->counts[idx] >= t->max_calls) {
		why->rule = "tool.max_calls";
		snprintf(why->message, sizeof(why->message), "agent '%s' may call "
		    "'%s' at most %d times per session", a->id, t->name,
		    t->max_calls);
		return false;
	}
	if (a->max_calls >= 0 && st->total >= (unsigned)a->max_calls) {
		why->rule = "max_calls";
		snprintf(why->message, sizeof(why->message), "agent '%s' may make "
		    "at most %d tool calls per session", a->id, a->max_calls);
		return false;
	}
	if (st->window && a->limits.window_s > 0 && !window_ok(a, st, idx, why))
		return false;
	if (advance) {
		if (st->window) {
			st->wtotal++;
			st->wcounts[idx]++;
		}
		st->last = idx;
		st->labels |= t->labels;
		if (st->counts[idx] < 65535)
			st->counts[idx]++;
		st->total++;
	}
	return true;
}

const struct pol_agent *
pol_find_agent(const struct pol_snapshot *s, const struct pol_tenant *t,
    const char *id)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (s->agents[i].tenant == t && strcmp(s->agents[i].id, id) == 0)
			return &s->agents[i];
	return NULL;
}
