/*
 * tools.c - an agent's tool policy applied to the wire: the tool-call
 * history a request carries, the tools it offers the model, and the tool
 * calls in the model's answer (whole, or as they stream).
 *
 * The rules themselves (graph, flows, limits) are policy/tools.c's pure
 * pol_tool_step(); this file finds the calls in OpenAI's JSON and decides
 * what to do with a violation: deny, or strip what is not allowed.  Every
 * check lands in tl->log, which goes into the decision record.
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *
call_name(json_t *call)
{
	return json_string_value(json_object_get(json_object_get(call,
	    "function"), "name"));
}

static enum gw_tools_rc
deny(struct gw_tools_deny *d, enum wd_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum gw_tools_rc
deny(struct gw_tools_deny *d, enum wd_code code, const char *fmt, ...)
{
	va_list ap;

	d->status = wd_errdef(code)->status;
	d->code = wd_errdef(code)->code;
	d->id = code;
	d->retry_after_s = 0;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
	return GW_TOOLS_DENY;
}

static enum gw_tools_rc
which_agent(struct gw_tools *tl, const struct pol_snapshot *snap,
    const struct pol_tenant *tenant, const struct pol_agent *key_agent,
    const struct gw_http_req *req, struct gw_tools_deny *d)
{
	const char *hdr = gw_http_header(req, "x-warden-agent");

	tl->agent = key_agent;
	if (hdr == NULL)
		return GW_TOOLS_OK;
	if (key_agent != NULL) {
		if (strcmp(hdr, key_agent->id) != 0)
			return deny(d, WD_CODE_AGENT_MISMATCH, "this key belongs to "
			    "agent '%s'; it may not act as '%.64s'", key_agent->id,
			    hdr);
		return GW_TOOLS_OK;
	}
	tl->agent = pol_find_agent(snap, tenant, hdr);
	if (tl->agent == NULL)
		return deny(d, WD_CODE_UNKNOWN_AGENT, "X-Warden-Agent: tenant '%s' "
		    "has no agent '%.64s'", tenant->id, hdr);
	return GW_TOOLS_OK;
}

/* Does a call before message `before` carry this id? */
static bool
call_id_seen(json_t *msgs, size_t before, const char *id)
{
	for (size_t i = 0; i < before; i++) {
		json_t *calls = json_object_get(json_array_get(msgs, i),
		    "tool_calls"), *c;
		size_t j;

		json_array_foreach(calls, j, c) {
			const char *cid = json_string_value(json_object_get(c, "id"));

			if (cid != NULL && strcmp(cid, id) == 0)
				return true;
		}
	}
	return false;
}

/*
 * Messages that carry a tool's result must come from a call the history
 * shows (and the policy replays): a result without its call is labelled
 * data whose label no call set.  Legacy `function` messages have no call
 * id at all; agents must use tool messages.
 */
static enum gw_tools_rc
check_message(json_t *msgs, size_t i, json_t *m, struct gw_tools_deny *d)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	json_t *calls = json_object_get(m, "tool_calls");
	const char *id;

	if (calls != NULL && !json_is_array(calls))
		return deny(d, WD_CODE_INVALID_TOOL_CALL, "messages[%zu].tool_calls "
		    "must be an array", i);
	if (role != NULL && strcmp(role, "function") == 0)
		return deny(d, WD_CODE_TOOL_POLICY, "messages[%zu] has role "
		    "'function'; agents must use 'tool' messages that answer a "
		    "call in 'tool_calls'", i);
	if (role == NULL || strcmp(role, "tool") != 0)
		return GW_TOOLS_OK;
	id = json_string_value(json_object_get(m, "tool_call_id"));
	if (id == NULL || !call_id_seen(msgs, i, id))
		return deny(d, WD_CODE_TOOL_POLICY, "messages[%zu].tool_call_id "
		    "'%.64s' answers no call in an earlier message's 'tool_calls'",
		    i, id ? id : "");
	return GW_TOOLS_OK;
}

/* Replay the history's tool calls through the policy; *nnames may end
 * above GW_SESSION_MAX_CALLS (names holds the first of them). */
static enum gw_tools_rc
replay_history(struct gw_tools *tl, json_t *root, const char **names,
    size_t *nnames, struct gw_tools_deny *d)
{
	json_t *msgs = json_object_get(root, "messages"), *m, *hist;
	enum gw_tools_rc rc;
	size_t i;

	hist = json_array();
	json_object_set_new(tl->log, "history", hist);
	*nnames = 0;
	json_array_foreach(msgs, i, m) {
		json_t *calls = json_object_get(m, "tool_calls"), *c;
		size_t j;

		if ((rc = check_message(msgs, i, m, d)) != GW_TOOLS_OK)
			return rc;
		json_array_foreach(calls, j, c) {
			const char *name = call_name(c);
			struct pol_tool_why why;

			if (name == NULL)
				return deny(d, WD_CODE_INVALID_TOOL_CALL, "messages[%zu]."
				    "tool_calls[%zu] has no function name", i, j);
			json_array_append_new(hist, json_string(name));
			if (!pol_tool_step(tl->agent, &tl->st, name, true, &why)) {
				json_object_set_new(tl->log, "violation", json_pack(
				    "{s:s,s:s,s:s}", "where", "history", "rule",
				    why.rule, "message", why.message));
				return deny(d, WD_CODE_TOOL_POLICY, "the conversation's "
				    "tool calls break the policy: %s (rule '%s')",
				    why.message, why.rule);
			}
			if (*nnames < GW_SESSION_MAX_CALLS)
				names[*nnames] = name;
			(*nnames)++;
		}
	}
	return GW_TOOLS_OK;
}

/* Offered tools the agent may not call next: strip them, or deny. */
static enum gw_tools_rc
check_offered(struct gw_tools *tl, json_t *root, struct gw_tools_deny *d)
{
	json_t *tools = json_object_get(root, "tools"), *t, *choice, *stripped;
	const char *forced;
	bool modified = false;
	size_t i;

	if (!json_is_array(tools))
		return GW_TOOLS_OK;
	stripped = json_array();
	json_object_set_new(tl->log, "stripped_tools", stripped);
	for (i = 0; i < json_array_size(tools); ) {
		const char *name;
		struct pol_tool_why why;

		t = json_array_get(tools, i);
		name = call_name(t);
		if (name != NULL && pol_tool_step(tl->agent, &tl->st, name, false,
		    &why)) {
			i++;
			continue;
		}
		if (tl->agent->on_violation == POL_VIOLATION_DENY)
			return deny(d, WD_CODE_TOOL_POLICY, "tool '%.64s' may not be "
			    "offered now: %s (rule '%s')", name ? name : "?",
			    name ? why.message : "no function name",
			    name ? why.rule : "undeclared_tool");
		json_array_append_new(stripped, json_string(name ? name : "?"));
		json_array_remove(tools, i);
		modified = true;
	}
	/* A forced choice of a tool we removed cannot be honoured. */
	choice = json_object_get(root, "tool_choice");
	forced = call_name(choice);
	if (modified && forced != NULL) {
		for (i = 0; i < json_array_size(tools); i++)
			if (strcmp(call_name(json_array_get(tools, i)), forced) == 0)
				break;
		if (i == json_array_size(tools))
			return deny(d, WD_CODE_TOOL_POLICY, "tool_choice names '%.64s', "
			    "which the agent may not call now", forced);
	}
	if (modified && json_array_size(tools) == 0) {
		json_object_del(root, "tools");
		json_object_del(root, "tool_choice");
		json_object_del(root, "parallel_tool_calls");
	}
	return modified ? GW_TOOLS_MODIFIED : GW_TOOLS_OK;
}

/* The history against the session warden recorded. */
static enum gw_tools_rc
check_session(struct gw_tools *tl, const char *const *names, size_t nnames,
    struct gw_tools_deny *d)
{
	struct gw_sess_ref r = {
		.tenant = tl->agent->tenant->id, .agent = tl->agent->id,
		.session = tl->session, .max = tl->agent->max_sessions,
		.ttl_s = tl->agent->session_ttl_s,
	};
	size_t recorded = 0;
	int retry_s = 0;

	switch (gw_store()->session_check(&r, names, nnames, &recorded,
	    &retry_s)) {
	case GW_STORE_OK:
		return GW_TOOLS_OK;
	case GW_STORE_CONTRADICTS:
		return deny(d, WD_CODE_TOOL_POLICY, "the conversation's tool calls "
		    "contradict session '%s' as warden recorded it (%zu calls "
		    "recorded, %zu in the request)", tl->session, recorded, nnames);
	case GW_STORE_TOO_LONG:
		return deny(d, WD_CODE_TOOL_POLICY, "session '%s' holds at most %d "
		    "tool calls; start a new session", tl->session,
		    GW_SESSION_MAX_CALLS);
	case GW_STORE_FULL:
		deny(d, WD_CODE_SESSION_LIMIT, "agent '%s' has %zu live "
		    "sessions, its limit (sessions.max); a new one can begin "
		    "when the oldest expires", tl->agent->id,
		    tl->agent->max_sessions);
		d->retry_after_s = retry_s > 0 ? retry_s : 1;
		return GW_TOOLS_DENY;
	case GW_STORE_UNAVAILABLE:
		return deny(d, WD_CODE_STATE_STORE_UNAVAILABLE, "the shared state "
		    "store (Redis) cannot be reached: agent sessions fail closed, "
		    "the request is refused");
	default:
		return deny(d, WD_CODE_SESSION_STORE, "the session store cannot "
		    "answer; the request is refused");
	}
}

/* The caller's key's calls in the agent's limits window, into st. */
static enum gw_tools_rc
load_window(struct gw_tools *tl, struct gw_tools_deny *d)
{
	const struct pol_agent *a = tl->agent;
	struct gw_win_ref r = { a->id, tl->key, a->limits.window_s };
	const char *names[POL_MAX_TOOLS];

	if (a->limits.window_s == 0)
		return GW_TOOLS_OK;
	if (tl->key == NULL)
		return deny(d, WD_CODE_SESSION_STORE, "no key to count calls by");
	for (size_t i = 0; i < a->ntools; i++)
		names[i] = a->tools[i].name;
	switch (gw_store()->window_read(&r, names, a->ntools, &tl->st.wtotal,
	    tl->st.wcounts)) {
	case GW_STORE_OK:
		break;
	case GW_STORE_UNAVAILABLE:
		return deny(d, WD_CODE_STATE_STORE_UNAVAILABLE, "the shared state "
		    "store (Redis) cannot be reached: agent limits fail closed, "
		    "the request is refused");
	default:
		return deny(d, WD_CODE_SESSION_STORE, "the session store cannot "
		    "answer; the request is refused");
	}
	tl->st.window = true;
	return GW_TOOLS_OK;
}

enum gw_tools_rc
gw_tools_session_state(const struct pol_agent *a, const char *session,
    struct pol_tstate *st, char ***names, size_t *n, struct gw_tools_deny *d)
{
	struct gw_sess_ref r = {
		.tenant = a->tenant->id, .agent = a->id, .session = session,
		.max = a->max_sessions, .ttl_s = a->session_ttl_s,
	};
	int retry_s = 0;

	*names = NULL;
	*n = 0;
	switch (gw_store()->session_read(&r, names, n, &retry_s)) {
	case GW_STORE_OK:
		break;
	case GW_STORE_FULL:
		deny(d, WD_CODE_SESSION_LIMIT, "agent '%s' has %zu live sessions, "
		    "its limit (sessions.max)", a->id, a->max_sessions);
		d->retry_after_s = retry_s > 0 ? retry_s : 1;
		return GW_TOOLS_DENY;
	case GW_STORE_TOO_LONG:
		return deny(d, WD_CODE_TOOL_POLICY, "session '%s' holds at most %d "
		    "tool calls; start a new session", session,
		    GW_SESSION_MAX_CALLS);
	default:
		return deny(d, WD_CODE_SESSION_STORE, "the session store cannot "
		    "answer; the request is refused");
	}
	/* The record in order: chat calls and MCP calls are steps; a "run:"
	 * entry ran a chat call that already was one. */
	pol_tstate_init(st);
	for (size_t i = 0; i < *n; i++) {
		const char *name = (*names)[i];
		struct pol_tool_why why;

		if (strncmp(name, GW_SESSION_RUN, 4) == 0)
			continue;
		if (strncmp(name, GW_SESSION_MCP, 4) == 0)
			name += 4;
		if (!pol_tool_step(a, st, name, true, &why)) {
			free(*names);
			*names = NULL;
			return deny(d, WD_CODE_TOOL_POLICY, "session '%s' as recorded "
			    "breaks the current policy: %s (rule '%s')", session,
			    why.message, why.rule);
		}
	}
	return GW_TOOLS_OK;
}

/* The session holds MCP calls: the state is the whole record's. */
static enum gw_tools_rc
merge_mcp(struct gw_tools *tl, struct gw_tools_deny *d)
{
	struct pol_tstate st;
	char **names;
	size_t n;
	bool any = false;
	enum gw_tools_rc rc;

	rc = gw_tools_session_state(tl->agent, tl->session, &st, &names, &n, d);
	if (rc != GW_TOOLS_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		any |= strncmp(names[i], GW_SESSION_MCP, 4) == 0 ||
		    strncmp(names[i], GW_SESSION_RUN, 4) == 0;
	free(names);
	if (any)
		tl->st = st;
	return GW_TOOLS_OK;
}

enum gw_tools_rc
gw_tools_request(struct gw_tools *tl, const struct pol_snapshot *snap,
    const struct pol_tenant *tenant, const struct pol_caller *caller,
    const struct gw_http_req *req, struct gw_chat *chat,
    struct gw_tools_deny *d)
{
	const char *names[GW_SESSION_MAX_CALLS], *sess;
	size_t nnames = 0;
	enum gw_tools_rc rc;
	json_t *root;

	memset(tl, 0, sizeof(*tl));
	d->retry_after_s = 0;
	pol_tstate_init(&tl->st);
	tl->key = caller->key;
	if ((rc = which_agent(tl, snap, tenant, caller->agent, req, d)) !=
	    GW_TOOLS_OK)
		return rc;
	if (tl->agent == NULL)
		return GW_TOOLS_OK;
	if ((root = gw_chat_tree(chat)) == NULL)
		return deny(d, WD_CODE_INTERNAL, "out of memory");
	tl->log = json_pack("{s:s}", "agent", tl->agent->id);
	sess = gw_http_header(req, "x-warden-session");
	if (sess == NULL && tl->agent->session_required)
		return deny(d, WD_CODE_SESSION_REQUIRED, "agent '%s' requires "
		    "sessions: send X-Warden-Session", tl->agent->id);
	if (sess != NULL) {
		if (!wd_token_sane(sess, 128))
			return deny(d, WD_CODE_INVALID_SESSION, "X-Warden-Session must "
			    "be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
		snprintf(tl->session, sizeof(tl->session), "%s", sess);
		json_object_set_new(tl->log, "session", json_string(sess));
	}
	/* The deprecated functions API would be a way around the checks:
	 * agents must use tools. */
	if (json_object_get(root, "functions") != NULL ||
	    json_object_get(root, "function_call") != NULL)
		return deny(d, WD_CODE_TOOL_POLICY, "agent '%s': "
		    "'functions' and 'function_call' are not accepted; use 'tools' "
		    "and 'tool_choice'", tl->agent->id);
	{
		json_t *m;
		size_t i;

		json_array_foreach(json_object_get(root, "messages"), i, m)
			if (json_object_get(m, "function_call") != NULL)
				return deny(d, WD_CODE_TOOL_POLICY,
				    "messages[%zu] holds a 'function_call'; agents must "
				    "use 'tool_calls'", i);
	}
	if ((rc = replay_history(tl, root, names, &nnames, d)) != GW_TOOLS_OK)
		return rc;
	if (tl->session[0] != '\0' &&
	    ((rc = check_session(tl, names, nnames, d)) != GW_TOOLS_OK ||
	    (rc = merge_mcp(tl, d)) != GW_TOOLS_OK))
		return rc;
	if ((rc = load_window(tl, d)) != GW_TOOLS_OK)
		return rc;
	/* A streamed answer's choices each go on from here. */
	for (size_t c = 0; c < GW_TOOLS_MAX_CHOICES; c++)
		tl->sst[c] = tl->st;
	return check_offered(tl, root, d);
}

static void
log_answer(struct gw_tools *tl, size_t choice, const char *name, bool ok,
    const struct pol_tool_why *why)
{
	json_t *a = json_object_get(tl->log, "answer");

	if (a == NULL) {
		a = json_array();
		json_object_set_new(tl->log, "answer", a);
	}
	json_array_append_new(a, json_pack("{s:I,s:s,s:b,s:s?}", "choice",
	    (json_int_t)choice, "tool", name, "allowed", ok, "rule",
	    ok ? NULL : why->rule));
}

/*
 * THE place a call of a provider's answer is allowed: once per call, when
 * the answer or chunk that names it is certain to go to the client (every
 * other call in it passed too).  Whole answers and streams both end here.
 */
static void
call_allowed(struct gw_tools *tl, size_t choice, const char *name)
{
	log_answer(tl, choice, name, true, NULL);
}

static enum gw_tools_rc
forbidden(struct gw_tools *tl, size_t choice, const char *name,
    const struct pol_tool_why *why, struct gw_tools_deny *d)
{
	log_answer(tl, choice, name, false, why);
	return deny(d, WD_CODE_TOOL_POLICY, "the model asked for a tool call "
	    "the policy forbids: %s (rule '%s')", why->message, why->rule);
}

_Static_assert(GW_ANS_MAX_CHOICES == GW_TOOLS_MAX_CHOICES &&
    GW_ANS_MAX_CALLS == GW_TOOLS_MAX_CALLS, "the reader's bounds are ours");

/* A whole answer: each choice goes on from the history on its own. */
static enum gw_tools_rc
check_whole(struct gw_tools *tl, struct gw_answer *ans, struct gw_tools_deny *d)
{
	struct pol_tstate st[GW_TOOLS_MAX_CHOICES];
	bool modified = false, *drop = calloc(ans->nev + 1, sizeof(*drop));

	if (drop == NULL)
		return deny(d, WD_CODE_OUT_OF_MEMORY, "out of memory");
	for (size_t c = 0; c < GW_TOOLS_MAX_CHOICES; c++)
		st[c] = tl->st;
	for (size_t i = 0; i < ans->nev; i++) {
		const struct gw_ans_event *e = &ans->ev[i];
		struct pol_tool_why why = { "undeclared_tool", "" };

		drop[i] = false;
		if (e->kind != GW_ANS_CALL)
			continue;
		if (pol_tool_step(tl->agent, &st[e->choice], e->name, true, &why) &&
		    gw_tools_commit_call(tl, e->choice, e->name, &why))
			continue;
		if (tl->agent->on_violation == POL_VIOLATION_DENY) {
			free(drop);
			return forbidden(tl, e->choice, e->name, &why, d);
		}
		log_answer(tl, e->choice, e->name, false, &why);
		drop[i] = true;
	}
	for (size_t i = 0; i < ans->nev; i++)
		if (ans->ev[i].kind == GW_ANS_CALL && !drop[i])
			call_allowed(tl, ans->ev[i].choice, ans->ev[i].name);
	/* Backwards: a dropped call's name lives in the node it drops. */
	for (size_t i = ans->nev; i-- > 0; )
		if (ans->ev[i].kind == GW_ANS_CALL && drop[i]) {
			ans->fmt->drop_call(ans, &ans->ev[i]);
			modified = true;
		}
	free(drop);
	return modified ? GW_TOOLS_MODIFIED : GW_TOOLS_OK;
}

/*
 * One chunk of a stream.  The openai-node accumulator keys a call by its
 * index and *replaces* the name when a later delta brings another, so a
 * name is checked once per index and a second one is refused; a new index
 * must be the next one (the client orders calls by index, the policy by
 * time: they must agree); arguments must follow their call's name.
 * Nothing of the chunk counts unless all of it passes.
 */
static enum gw_tools_rc
check_chunk(struct gw_tools *tl, struct gw_answer *ans, struct gw_tools_deny *d)
{
	struct pol_tstate sst[GW_TOOLS_MAX_CHOICES];
	uint64_t named[GW_TOOLS_MAX_CHOICES];
	unsigned ncalls[GW_TOOLS_MAX_CHOICES];
	bool fn_named[GW_TOOLS_MAX_CHOICES];

	memcpy(sst, tl->sst, sizeof(sst));
	memcpy(named, tl->named, sizeof(named));
	memcpy(ncalls, tl->ncalls, sizeof(ncalls));
	memcpy(fn_named, tl->fn_named, sizeof(fn_named));
	for (size_t i = 0; i < ans->nev; i++) {
		const struct gw_ans_event *e = &ans->ev[i];
		size_t c = e->choice, k = e->call;
		struct pol_tool_why why = { "undeclared_tool", "" };
		bool had;

		if (e->kind != GW_ANS_CALL)
			continue;
		had = k == GW_ANS_FN_CALL ? fn_named[c] : (named[c] >> k) & 1;
		if (e->name == NULL && !had)
			return deny(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "choice %zu: "
			    "arguments of a tool call that has no name yet", c);
		if (e->name == NULL)
			continue;
		if (had)
			return deny(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "choice %zu: a "
			    "second name for one tool call", c);
		/* Both kinds in one choice: which one a client runs is its own
		 * choice (openai-node's final message keeps function_call). */
		if (k == GW_ANS_FN_CALL ? ncalls[c] > 0 : fn_named[c])
			return deny(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "choice %zu: "
			    "both function_call and tool_calls", c);
		if (k == GW_ANS_FN_CALL) {
			fn_named[c] = true;
		} else {
			if (k != ncalls[c])
				return deny(d, WD_CODE_BAD_UPSTREAM_RESPONSE, "choice "
				    "%zu: tool call index %zu out of order", c, k);
			named[c] |= 1ull << k;
			ncalls[c]++;
		}
		/* Allowed: counted in the key's window now, queued for the
		 * session; gw_tools_answer flushes it once the chunk passed. */
		if (!pol_tool_step(tl->agent, &sst[c], e->name, true, &why) ||
		    !gw_tools_commit_call(tl, c, e->name, &why))
			return forbidden(tl, c, e->name, &why, d);
	}
	memcpy(tl->sst, sst, sizeof(sst));
	memcpy(tl->named, named, sizeof(named));
	memcpy(tl->ncalls, ncalls, sizeof(ncalls));
	memcpy(tl->fn_named, fn_named, sizeof(fn_named));
	for (size_t i = 0; i < ans->nev; i++)
		if (ans->ev[i].kind == GW_ANS_CALL && ans->ev[i].name != NULL)
			call_allowed(tl, ans->ev[i].choice, ans->ev[i].name);
	return GW_TOOLS_OK;
}

enum gw_tools_rc
gw_tools_answer(struct gw_tools *tl, struct gw_answer *ans,
    struct gw_tools_deny *d)
{
	enum gw_tools_rc rc;

	if (tl->agent == NULL)
		return GW_TOOLS_OK;
	rc = ans->chunk ? check_chunk(tl, ans, d) : check_whole(tl, ans, d);
	if (rc != GW_TOOLS_DENY)
		gw_tools_flush(tl);	/* what names the calls goes out next */
	tl->npending = 0;
	return rc;
}

bool
gw_tools_commit_call(struct gw_tools *tl, size_t choice, const char *name,
    struct pol_tool_why *why)
{
	const struct pol_agent *a = tl->agent;
	int idx = pol_tool_index(a, name);

	if (idx < 0)
		return false;		/* the policy allowed it: cannot be */
	/* Every choice reaches the client; each call counts.  Taken now,
	 * under the store's lock, so that concurrent requests of one key
	 * cannot together pass the limit. */
	if (a->limits.window_s > 0) {
		struct gw_win_ref r = { a->id, tl->key, a->limits.window_s };

		switch (gw_store()->window_take(&r, name, a->limits.max_calls,
		    a->limits.per_tool[idx])) {
		case GW_STORE_OK:
			break;
		case GW_STORE_LIMIT:
			why->rule = "limits";
			snprintf(why->message, sizeof(why->message), "agent '%s': "
			    "the key's calls in the last %d s reached the limit "
			    "(limits)", a->id, a->limits.window_s);
			return false;
		default:
			why->rule = "session_store";
			snprintf(why->message, sizeof(why->message), "the call "
			    "cannot be counted against agent '%s''s limits", a->id);
			return false;
		}
	}
	/* A client goes on with the first choice; the others are not part
	 * of its conversation. */
	if (choice != 0 || tl->session[0] == '\0')
		return true;
	if (tl->npending >= sizeof(tl->pending)) {
		why->rule = "session";
		snprintf(why->message, sizeof(why->message), "more tool calls in "
		    "one answer than a session records");
		return false;
	}
	tl->pending[tl->npending++] = (unsigned char)idx;
	return true;
}

void
gw_tools_flush(struct gw_tools *tl)
{
	const char *names[sizeof(tl->pending)];
	struct gw_sess_ref r;

	if (tl->agent == NULL || tl->npending == 0)
		return;
	for (size_t i = 0; i < tl->npending; i++)
		names[i] = tl->agent->tools[tl->pending[i]].name;
	r = (struct gw_sess_ref){
		.tenant = tl->agent->tenant->id, .agent = tl->agent->id,
		.session = tl->session, .max = tl->agent->max_sessions,
		.ttl_s = tl->agent->session_ttl_s,
	};
	/* A record that cannot take them refuses the session's next
	 * requests (the store marks it); nothing else can be done for calls
	 * already on their way. */
	(void)gw_store()->session_append(&r, names, tl->npending);
	tl->npending = 0;
}

void
gw_tools_commit(struct gw_tools *tl, bool streamed)
{
	(void)streamed;
	gw_tools_flush(tl);
}

void
gw_tools_clear(struct gw_tools *tl)
{
	json_decref(tl->log);
	tl->log = NULL;
}
