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
deny(struct gw_tools_deny *d, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum gw_tools_rc
deny(struct gw_tools_deny *d, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->status = status;
	d->code = code;
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
			return deny(d, 403, "agent_mismatch", "this key belongs to "
			    "agent '%s'; it may not act as '%.64s'", key_agent->id,
			    hdr);
		return GW_TOOLS_OK;
	}
	tl->agent = pol_find_agent(snap, tenant, hdr);
	if (tl->agent == NULL)
		return deny(d, 400, "unknown_agent", "X-Warden-Agent: tenant '%s' "
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
		return deny(d, 400, "invalid_tool_call", "messages[%zu].tool_calls "
		    "must be an array", i);
	if (role != NULL && strcmp(role, "function") == 0)
		return deny(d, 403, "tool_policy", "messages[%zu] has role "
		    "'function'; agents must use 'tool' messages that answer a "
		    "call in 'tool_calls'", i);
	if (role == NULL || strcmp(role, "tool") != 0)
		return GW_TOOLS_OK;
	id = json_string_value(json_object_get(m, "tool_call_id"));
	if (id == NULL || !call_id_seen(msgs, i, id))
		return deny(d, 403, "tool_policy", "messages[%zu].tool_call_id "
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
				return deny(d, 400, "invalid_tool_call", "messages[%zu]."
				    "tool_calls[%zu] has no function name", i, j);
			json_array_append_new(hist, json_string(name));
			if (!pol_tool_step(tl->agent, &tl->st, name, true, &why)) {
				json_object_set_new(tl->log, "violation", json_pack(
				    "{s:s,s:s,s:s}", "where", "history", "rule",
				    why.rule, "message", why.message));
				return deny(d, 403, "tool_policy", "the conversation's "
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
			return deny(d, 403, "tool_policy", "tool '%.64s' may not be "
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
			return deny(d, 403, "tool_policy", "tool_choice names '%.64s', "
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
		return deny(d, 403, "tool_policy", "the conversation's tool calls "
		    "contradict session '%s' as warden recorded it (%zu calls "
		    "recorded, %zu in the request)", tl->session, recorded, nnames);
	case GW_STORE_TOO_LONG:
		return deny(d, 403, "tool_policy", "session '%s' holds at most %d "
		    "tool calls; start a new session", tl->session,
		    GW_SESSION_MAX_CALLS);
	case GW_STORE_FULL:
		deny(d, 429, "session_limit", "agent '%s' has %zu live "
		    "sessions, its limit (sessions.max); a new one can begin "
		    "when the oldest expires", tl->agent->id,
		    tl->agent->max_sessions);
		d->retry_after_s = retry_s > 0 ? retry_s : 1;
		return GW_TOOLS_DENY;
	default:
		return deny(d, 503, "session_store", "the session store cannot "
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
		return deny(d, 503, "session_store", "no key to count calls by");
	for (size_t i = 0; i < a->ntools; i++)
		names[i] = a->tools[i].name;
	if (gw_store()->window_read(&r, names, a->ntools, &tl->st.wtotal,
	    tl->st.wcounts) != GW_STORE_OK)
		return deny(d, 503, "session_store", "the session store cannot "
		    "answer; the request is refused");
	tl->st.window = true;
	return GW_TOOLS_OK;
}

enum gw_tools_rc
gw_tools_request(struct gw_tools *tl, const struct pol_snapshot *snap,
    const struct pol_tenant *tenant, const struct pol_caller *caller,
    const struct gw_http_req *req, json_t *root, struct gw_tools_deny *d)
{
	const char *names[GW_SESSION_MAX_CALLS], *sess;
	size_t nnames = 0;
	enum gw_tools_rc rc;

	memset(tl, 0, sizeof(*tl));
	d->retry_after_s = 0;
	pol_tstate_init(&tl->st);
	tl->key = caller->key;
	if ((rc = which_agent(tl, snap, tenant, caller->agent, req, d)) !=
	    GW_TOOLS_OK)
		return rc;
	if (tl->agent == NULL)
		return GW_TOOLS_OK;
	tl->log = json_pack("{s:s}", "agent", tl->agent->id);
	sess = gw_http_header(req, "x-warden-session");
	if (sess == NULL && tl->agent->session_required)
		return deny(d, 400, "session_required", "agent '%s' requires "
		    "sessions: send X-Warden-Session", tl->agent->id);
	if (sess != NULL) {
		if (!wd_token_sane(sess, 128))
			return deny(d, 400, "invalid_session", "X-Warden-Session must "
			    "be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
		snprintf(tl->session, sizeof(tl->session), "%s", sess);
		json_object_set_new(tl->log, "session", json_string(sess));
	}
	/* The deprecated functions API would be a way around the checks:
	 * agents must use tools. */
	if (json_object_get(root, "functions") != NULL ||
	    json_object_get(root, "function_call") != NULL)
		return deny(d, 403, "tool_policy", "agent '%s': "
		    "'functions' and 'function_call' are not accepted; use 'tools' "
		    "and 'tool_choice'", tl->agent->id);
	{
		json_t *m;
		size_t i;

		json_array_foreach(json_object_get(root, "messages"), i, m)
			if (json_object_get(m, "function_call") != NULL)
				return deny(d, 403, "tool_policy",
				    "messages[%zu] holds a 'function_call'; agents must "
				    "use 'tool_calls'", i);
	}
	if ((rc = replay_history(tl, root, names, &nnames, d)) != GW_TOOLS_OK)
		return rc;
	if (tl->session[0] != '\0' &&
	    (rc = check_session(tl, names, nnames, d)) != GW_TOOLS_OK)
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

enum gw_tools_rc
gw_tools_answer(struct gw_tools *tl, json_t *answer, struct gw_tools_deny *d)
{
	json_t *choices = json_object_get(answer, "choices"), *ch;
	bool modified = false;
	size_t i;

	if (tl->agent == NULL)
		return GW_TOOLS_OK;
	json_array_foreach(choices, i, ch) {
		json_t *msg = json_object_get(ch, "message");
		json_t *calls = json_object_get(msg, "tool_calls");
		struct pol_tstate st = tl->st;

		if (!json_is_array(calls))
			continue;
		for (size_t j = 0; j < json_array_size(calls); ) {
			const char *name = call_name(json_array_get(calls, j));
			struct pol_tool_why why = { "undeclared_tool", "" };
			bool ok = name != NULL &&
			    pol_tool_step(tl->agent, &st, name, true, &why) &&
			    gw_tools_commit_call(tl, i, name, &why);

			log_answer(tl, i, name ? name : "?", ok, &why);
			if (ok) {
				j++;
				continue;
			}
			if (tl->agent->on_violation == POL_VIOLATION_DENY)
				return deny(d, 403, "tool_policy", "the model asked for a "
				    "tool call the policy forbids: %s (rule '%s')",
				    why.message, why.rule);
			json_array_remove(calls, j);
			modified = true;
		}
		if (json_array_size(calls) == 0) {
			json_object_del(msg, "tool_calls");
			if (json_is_null(json_object_get(msg, "content")) ||
			    json_object_get(msg, "content") == NULL)
				json_object_set_new(msg, "content", json_string(""));
			json_object_set_new(ch, "finish_reason", json_string("stop"));
		}
	}
	gw_tools_flush(tl);
	return modified ? GW_TOOLS_MODIFIED : GW_TOOLS_OK;
}

/* Check the tool calls named in one chunk's deltas. */
static enum gw_tools_rc
check_chunk(struct gw_tools *tl, json_t *chunk, struct gw_tools_deny *d)
{
	json_t *choices = json_object_get(chunk, "choices"), *ch;
	size_t i;

	json_array_foreach(choices, i, ch) {
		json_int_t c = json_integer_value(json_object_get(ch, "index"));
		json_t *calls = json_object_get(json_object_get(ch, "delta"),
		    "tool_calls"), *call;
		size_t j;

		if (!json_is_array(calls))
			continue;
		if (c < 0 || c >= GW_TOOLS_MAX_CHOICES)
			return deny(d, 502, "tool_policy", "the answer has more "
			    "choices than warden checks");
		json_array_foreach(calls, j, call) {
			json_int_t k = json_integer_value(json_object_get(call, "index"));
			const char *name = call_name(call);
			struct pol_tool_why why;

			if (name == NULL)
				continue;	/* arguments of a named call */
			if (k < 0 || k >= GW_TOOLS_MAX_CALLS)
				return deny(d, 502, "tool_policy", "tool call index out "
				    "of range");
			if (tl->named[c] & (1ull << k))
				continue;
			tl->named[c] |= 1ull << k;
			if (!pol_tool_step(tl->agent, &tl->sst[c], name, true, &why) ||
			    !gw_tools_commit_call(tl, (size_t)c, name, &why)) {
				log_answer(tl, (size_t)c, name, false, &why);
				return deny(d, 403, "tool_policy", "the model asked for a "
				    "tool call the policy forbids: %s (rule '%s')",
				    why.message, why.rule);
			}
			log_answer(tl, (size_t)c, name, true, NULL);
		}
	}
	return GW_TOOLS_OK;
}

enum gw_tools_rc
gw_tools_event(struct gw_tools *tl, const char *ev, size_t len,
    struct gw_tools_deny *d)
{
	enum gw_tools_rc rc = GW_TOOLS_OK;
	const char *p = ev, *end = ev + len;

	if (tl->agent == NULL || memmem(ev, len, "tool_calls", 10) == NULL)
		return GW_TOOLS_OK;
	/* An event's data is its "data:" lines joined with newlines
	 * (WHATWG HTML 9.2.6); OpenAI sends one JSON chunk per event. */
	{
		char *data = malloc(len + 1);
		size_t dl = 0;
		json_t *j;

		if (data == NULL)
			return deny(d, 500, "tool_policy", "out of memory");
		while (p < end) {
			const char *eol = p;

			while (eol < end && *eol != '\n' && *eol != '\r')
				eol++;
			if (eol - p >= 5 && strncmp(p, "data:", 5) == 0) {
				const char *v = p + 5;

				if (v < eol && *v == ' ')
					v++;
				if (dl > 0)
					data[dl++] = '\n';
				memcpy(data + dl, v, (size_t)(eol - v));
				dl += (size_t)(eol - v);
			}
			p = eol + 1;
		}
		j = dl > 0 ? json_loadb(data, dl, 0, NULL) : NULL;
		if (j != NULL)
			rc = check_chunk(tl, j, d);
		json_decref(j);
		free(data);
	}
	if (rc == GW_TOOLS_OK)
		gw_tools_flush(tl);	/* the event goes out next */
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
