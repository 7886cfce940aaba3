/*
 * load_limits.c - the `limits:`, `prices:` and `state:` sections (issue
 * 16): request rates, token rates, requests in flight and token or cost
 * budgets per tenant, app, agent or key; prices per model; where the
 * counters live (this process, or Redis shared by several wardens).
 *
 * Limits are policy: they are part of the policy version (every file's
 * text is), and a reload applies them to the next request.  `state:` is a
 * process setting, read at start.  A limit names its tenant, app and
 * agent as written; pol_check_limits() resolves them once every file is
 * read, with the place each name was written.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const limit_keys[] = {
	"id", "per", "tenant", "app", "agent", "requests_per_minute",
	"tokens_per_minute", "concurrent", "tokens_per_day",
	"tokens_per_month", "cost_per_day_usd", "cost_per_month_usd",
	"completion_ceiling", "fail_open", NULL
};
static const char *const price_keys[] = {
	"model", "input_usd_per_mtok", "output_usd_per_mtok", NULL
};
static const char *const state_keys[] = { "redis", NULL };
static const char *const redis_keys[] = {
	"url", "connect_timeout_ms", "command_timeout_ms", "key_prefix", NULL
};

/* Keys of the counting kinds, by enum pol_limit_kind. */
static const char *const kind_keys[POL_LIM_NKINDS] = {
	"requests_per_minute", "tokens_per_minute", "concurrent",
	"tokens_per_day", "tokens_per_month", "cost_per_day_usd",
	"cost_per_month_usd",
};

const char *
pol_limit_kind_name(enum pol_limit_kind k)
{
	return (unsigned)k < POL_LIM_NKINDS ? kind_keys[k] : "?";
}

const char *
pol_scope_name(enum pol_limit_scope s)
{
	static const char *const names[] = { "tenant", "app", "agent", "key" };

	return (unsigned)s < 4 ? names[s] : "?";
}

/*
 * A US dollar amount ("12", "0.15", "0.000001") in micro-USD.  Written as
 * decimal text, never through a double, so that 0.1 + 0.2 is what the
 * operator wrote.
 */
static bool
usd(struct pol_walk *w, yaml_node_t *n, const char *what, long long *out)
{
	const char *s;
	long long whole = 0, frac = 0;
	int fd = 0;

	if (!pol_is_scalar(w, n, what))
		return false;
	s = pol_scalar(n);
	if (*s < '0' || *s > '9')
		goto bad;
	for (; *s >= '0' && *s <= '9'; s++) {
		whole = whole * 10 + (*s - '0');
		if (whole > 1000000000LL)
			goto bad;
	}
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			goto bad;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (++fd > 6)
				goto bad;
			frac = frac * 10 + (*s - '0');
		}
		for (int i = fd; i < 6; i++)
			frac *= 10;
	}
	if (*s != '\0')
		goto bad;
	*out = whole * 1000000LL + frac;
	return true;
bad:
	pol_err(w, n, "%s must be a US dollar amount such as 12 or 0.15 (at "
	    "most 6 decimals, at most 1000000000)", what);
	return false;
}

static void
opt_ref(struct pol_walk *w, yaml_node_t *map, const char *key,
    struct pol_ref *ref, char **name)
{
	yaml_node_t *v = pol_get(w, map, key);

	if (v != NULL && pol_ref1(w, v, key, ref))
		*name = strdup(ref->name);
}

static void
load_limit(struct pol_loader *l, yaml_node_t *n, struct pol_limit *lim,
    struct pol_ref ref[3])
{
	struct pol_walk *w = &l->w;
	yaml_node_t *v;
	bool any = false;

	for (int k = 0; k < POL_LIM_NKINDS; k++)
		lim->max[k] = -1;
	lim->completion_ceiling = POL_DEFAULT_COMPLETION_CEILING;
	lim->line = n->start_mark.line + 1;
	if (!pol_is_map(w, n, "limit"))
		return;
	pol_check_keys(w, n, limit_keys, "limit");
	pol_load_id(w, n, "limit", &lim->id);
	if ((v = pol_get(w, n, "per")) == NULL) {
		pol_err(w, n, "limit without 'per' (tenant, app, agent or key)");
	} else if (pol_is_scalar(w, v, "per")) {
		const char *s = pol_scalar(v);

		if (strcmp(s, "tenant") == 0)
			lim->scope = POL_SCOPE_TENANT;
		else if (strcmp(s, "app") == 0)
			lim->scope = POL_SCOPE_APP;
		else if (strcmp(s, "agent") == 0)
			lim->scope = POL_SCOPE_AGENT;
		else if (strcmp(s, "key") == 0)
			lim->scope = POL_SCOPE_KEY;
		else
			pol_err(w, v, "per must be tenant, app, agent or key, "
			    "not '%.64s'", s);
	}
	opt_ref(w, n, "tenant", &ref[0], &lim->tenant);
	opt_ref(w, n, "app", &ref[1], &lim->app);
	opt_ref(w, n, "agent", &ref[2], &lim->agent);
	if ((lim->app != NULL || lim->agent != NULL) && lim->tenant == NULL)
		pol_err(w, n, "limit '%s' names an app or agent: it needs its "
		    "'tenant' too", lim->id ? lim->id : "?");
	for (int k = 0; k < POL_LIM_NKINDS; k++) {
		if ((v = pol_get(w, n, kind_keys[k])) == NULL)
			continue;
		any = true;
		if (k == POL_LIM_COST_DAY || k == POL_LIM_COST_MONTH)
			usd(w, v, kind_keys[k], &lim->max[k]);
		else
			pol_int(w, v, kind_keys[k], 0, 1LL << 50, &lim->max[k]);
	}
	if (!any)
		pol_err(w, n, "limit '%s' limits nothing (give requests_per_minute, "
		    "tokens_per_minute, concurrent, tokens_per_day, tokens_per_month,"
		    " cost_per_day_usd or cost_per_month_usd)",
		    lim->id ? lim->id : "?");
	if ((v = pol_get(w, n, "completion_ceiling")) != NULL)
		pol_int(w, v, "completion_ceiling", 1, 10000000,
		    &lim->completion_ceiling);
	if ((v = pol_get(w, n, "fail_open")) != NULL)
		pol_bool(w, v, "fail_open", &lim->fail_open);
}

void
pol_load_limits(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_snapshot *s = l->s;
	yaml_node_item_t *it;

	if (!pol_is_seq(&l->w, n, "limits"))
		return;
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = pol_node(&l->w, *it);
		size_t cap = s->nlimits;

		if (item == NULL)
			return;
		if (s->nlimits >= POL_MAX_LIMITS) {
			pol_err(&l->w, item, "more than %d limits", POL_MAX_LIMITS);
			return;
		}
		if (!pol_grow(&s->limits, &s->nlimits, sizeof(*s->limits)) ||
		    !pol_grow(&l->rlimits, &cap, sizeof(*l->rlimits))) {
			pol_err(&l->w, item, "out of memory");
			return;
		}
		load_limit(l, item, &s->limits[s->nlimits - 1],
		    l->rlimits[s->nlimits - 1]);
		for (size_t i = 0; i + 1 < s->nlimits; i++)
			if (pol_id_eq(s->limits[i].id, s->limits[s->nlimits - 1].id))
				pol_err(&l->w, item, "limit '%s' defined twice (first "
				    "at line %zu)", s->limits[i].id, s->limits[i].line);
	}
}

void
pol_load_prices(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_snapshot *s = l->s;
	struct pol_walk *w = &l->w;
	yaml_node_item_t *it;

	if (!pol_is_seq(w, n, "prices"))
		return;
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = pol_node(w, *it), *v;
		struct pol_price *p;

		if (item == NULL)
			return;
		if (!pol_is_map(w, item, "price"))
			continue;
		if (!pol_grow(&s->prices, &s->nprices, sizeof(*s->prices))) {
			pol_err(w, item, "out of memory");
			return;
		}
		p = &s->prices[s->nprices - 1];
		pol_check_keys(w, item, price_keys, "price");
		if ((v = pol_get(w, item, "model")) == NULL)
			pol_err(w, item, "price without 'model'");
		else if (pol_str(w, v, "model", &p->model))
			for (size_t i = 0; i + 1 < s->nprices; i++)
				if (strcmp(s->prices[i].model, p->model) == 0)
					pol_err(w, v, "model '%.64s' priced twice",
					    p->model);
		if ((v = pol_get(w, item, "input_usd_per_mtok")) == NULL)
			pol_err(w, item, "price without 'input_usd_per_mtok'");
		else
			usd(w, v, "input_usd_per_mtok", &p->in_per_mtok);
		if ((v = pol_get(w, item, "output_usd_per_mtok")) == NULL)
			pol_err(w, item, "price without 'output_usd_per_mtok'");
		else
			usd(w, v, "output_usd_per_mtok", &p->out_per_mtok);
		/* A price without a model cannot be looked up or freed twice. */
		if (p->model == NULL)
			p->model = strdup("");
	}
}

/* state.redis.url: redis://HOST:PORT[/DB], no password in it (the
 * rules file is not a secret and its text is digested into records). */
static void
load_redis_url(struct pol_walk *w, yaml_node_t *v, char **out)
{
	const char *s, *host;

	if (!pol_str(w, v, "state.redis.url", out))
		return;
	s = *out;
	if (strncmp(s, "redis://", 8) != 0) {
		pol_err(w, v, "state.redis.url must be redis://HOST:PORT[/DB]");
		return;
	}
	host = s + 8;
	if (*host == '\0' || strchr(host, '@') != NULL || strlen(s) > 256 ||
	    strpbrk(s, " \t\r\n?#") != NULL || strchr(host, ':') == NULL)
		pol_err(w, v, "state.redis.url must be redis://HOST:PORT[/DB], "
		    "without user or password");
}

void
pol_load_state(struct pol_walk *w, yaml_node_t *n, struct pol_state *st)
{
	yaml_node_t *r, *v;
	long long x;

	if (!pol_is_map(w, n, "state"))
		return;
	pol_check_keys(w, n, state_keys, "state");
	if ((r = pol_get(w, n, "redis")) == NULL || !pol_is_map(w, r,
	    "state.redis"))
		return;
	pol_check_keys(w, r, redis_keys, "state.redis");
	st->connect_timeout_ms = 200;
	st->command_timeout_ms = 200;
	if ((v = pol_get(w, r, "url")) == NULL)
		pol_err(w, r, "state.redis without 'url'");
	else
		load_redis_url(w, v, &st->redis_url);
	if ((v = pol_get(w, r, "connect_timeout_ms")) != NULL &&
	    pol_int(w, v, "connect_timeout_ms", 1, 10000, &x))
		st->connect_timeout_ms = (int)x;
	if ((v = pol_get(w, r, "command_timeout_ms")) != NULL &&
	    pol_int(w, v, "command_timeout_ms", 1, 10000, &x))
		st->command_timeout_ms = (int)x;
	if ((v = pol_get(w, r, "key_prefix")) != NULL &&
	    pol_str(w, v, "key_prefix", &st->key_prefix) &&
	    (strlen(st->key_prefix) > 64 ||
	    strpbrk(st->key_prefix, " \t\r\n{}") != NULL))
		pol_err(w, v, "key_prefix: at most 64 characters, no spaces or "
		    "braces");
	if (st->key_prefix == NULL)
		st->key_prefix = strdup("warden:");
}

/* Does tenant t declare app id? */
static bool
app_of(const struct pol_tenant *t, const char *id)
{
	for (size_t i = 0; i < t->napps; i++)
		if (pol_id_eq(t->apps[i].id, id))
			return true;
	return false;
}

void
pol_check_limits(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;

	for (size_t i = 0; i < s->nlimits && l->rlimits != NULL; i++) {
		struct pol_limit *lim = &s->limits[i];
		struct pol_ref *r = l->rlimits[i];
		const struct pol_tenant *t = NULL;
		bool agent_ok = false;

		if (lim->tenant != NULL) {
			for (size_t k = 0; k < s->ntenants; k++)
				if (pol_id_eq(s->tenants[k].id, lim->tenant))
					t = &s->tenants[k];
			if (t == NULL)
				pol_err_ref(&l->w, &r[0], "limit '%s': no tenant '%.64s'",
				    lim->id ? lim->id : "?", lim->tenant);
		}
		if (t != NULL && lim->app != NULL && !app_of(t, lim->app))
			pol_err_ref(&l->w, &r[1], "limit '%s': tenant '%s' has no "
			    "app '%.64s'", lim->id ? lim->id : "?", t->id, lim->app);
		for (size_t k = 0; t != NULL && lim->agent != NULL &&
		    k < s->nagents; k++)
			if (pol_id_eq(s->agents[k].id, lim->agent) &&
			    s->agents[k].tenant == t)
				agent_ok = true;
		if (t != NULL && lim->agent != NULL && !agent_ok)
			pol_err_ref(&l->w, &r[2], "limit '%s': tenant '%s' has no "
			    "agent '%.64s'", lim->id ? lim->id : "?", t->id,
			    lim->agent);
		if (lim->scope == POL_SCOPE_APP && lim->agent != NULL)
			pol_err_ref(&l->w, &r[2], "limit '%s' is per app: it cannot "
			    "name an agent", lim->id ? lim->id : "?");
		if (lim->scope == POL_SCOPE_AGENT && lim->app != NULL)
			pol_err_ref(&l->w, &r[1], "limit '%s' is per agent: it cannot "
			    "name an app", lim->id ? lim->id : "?");
	}
	for (size_t i = 0; i < s->nlimits && l->rlimits != NULL; i++)
		for (int k = 0; k < 3; k++)
			free(l->rlimits[i][k].name);
	free(l->rlimits);
	l->rlimits = NULL;
}

const struct pol_price *
pol_price_find(const struct pol_snapshot *snap, const char *model)
{
	for (size_t i = 0; model != NULL && i < snap->nprices; i++)
		if (strcmp(snap->prices[i].model, model) == 0)
			return &snap->prices[i];
	return NULL;
}

json_t *
pol_limits_json(const struct pol_snapshot *s)
{
	json_t *o = json_object(), *lims = json_object(), *prices = json_object();

	for (size_t i = 0; i < s->nlimits; i++) {
		const struct pol_limit *l = &s->limits[i];
		json_t *m = json_object();

		for (int k = 0; k < POL_LIM_NKINDS; k++)
			if (l->max[k] >= 0)
				json_object_set_new(m, kind_keys[k],
				    json_integer(l->max[k]));
		json_object_set_new(lims, l->id ? l->id : "?", json_pack("{s:s,"
		    "s:s?,s:s?,s:s?,s:o,s:I,s:b}", "per", pol_scope_name(l->scope),
		    "tenant", l->tenant, "app", l->app, "agent", l->agent,
		    "max", m, "completion_ceiling",
		    (json_int_t)l->completion_ceiling, "fail_open", l->fail_open));
	}
	for (size_t i = 0; i < s->nprices; i++)
		json_object_set_new(prices, s->prices[i].model, json_pack("{s:I,"
		    "s:I}", "in", (json_int_t)s->prices[i].in_per_mtok, "out",
		    (json_int_t)s->prices[i].out_per_mtok));
	json_object_set_new(o, "limits", lims);
	json_object_set_new(o, "prices", prices);
	return o;
}

void
pol_limits_free(struct pol_snapshot *s)
{
	for (size_t i = 0; i < s->nlimits; i++) {
		free(s->limits[i].id);
		free(s->limits[i].tenant);
		free(s->limits[i].app);
		free(s->limits[i].agent);
	}
	free(s->limits);
	for (size_t i = 0; i < s->nprices; i++)
		free(s->prices[i].model);
	free(s->prices);
	free(s->state.redis_url);
	free(s->state.key_prefix);
}
