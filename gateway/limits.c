/*
 * limits.c - a request's limits: which apply (the rules' `limits:`),
 * what the request reserves, what it spent; see limits.h.
 *
 * gw_limits_plan() and gw_limits_deltas() are pure (tested alone in
 * tests/unit/test_limits.c); the rest talks to the store and counts for
 * /metrics.
 *
 * What a request reserves is an upper bound where one is known: the
 * prompt's estimate is a token for every 4 bytes of the request body
 * (its JSON included) plus 8, and the answer's is the request's
 * max_tokens (max_completion_tokens), else the largest completion_ceiling
 * of the limits that apply.  Settling replaces it with the provider's
 * usage; an answer without usage stays charged at the reservation.
 */
#include "gateway/gw_int.h"
#include "gateway/limits.h"

#include <stdatomic.h>
#include <string.h>

/* ---- /metrics ---- */

static atomic_ullong m_reserved, m_refused[POL_LIM_NKINDS], m_unavailable,
    m_failed_open, m_settled, m_released, m_no_price;
static atomic_ullong m_tokens_reserved, m_tokens_spent, m_cost_spent;
static atomic_llong m_limits;

#define INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define ADD(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)

void
gw_limits_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out,
	    "# HELP warden_limits Limits in the rules in use.\n"
	    "# TYPE warden_limits gauge\n"
	    "warden_limits %lld\n"
	    "# HELP warden_limit_reservations_total Reservations by outcome.\n"
	    "# TYPE warden_limit_reservations_total counter\n"
	    "warden_limit_reservations_total{result=\"reserved\"} %llu\n"
	    "warden_limit_reservations_total{result=\"settled\"} %llu\n"
	    "warden_limit_reservations_total{result=\"released\"} %llu\n"
	    "warden_limit_reservations_total{result=\"failed_open\"} %llu\n"
	    "warden_limit_reservations_total{result=\"store_unavailable\"} %llu\n"
	    "warden_limit_reservations_total{result=\"no_price\"} %llu\n"
	    "# HELP warden_limit_tokens_total Tokens reserved and spent.\n"
	    "# TYPE warden_limit_tokens_total counter\n"
	    "warden_limit_tokens_total{what=\"reserved\"} %llu\n"
	    "warden_limit_tokens_total{what=\"spent\"} %llu\n"
	    "# HELP warden_limit_cost_micro_usd_total Cost spent, micro-USD.\n"
	    "# TYPE warden_limit_cost_micro_usd_total counter\n"
	    "warden_limit_cost_micro_usd_total %llu\n"
	    "# HELP warden_limit_rejections_total Requests refused, by the "
	    "kind of limit.\n"
	    "# TYPE warden_limit_rejections_total counter\n",
	    (long long)atomic_load(&m_limits),
	    (unsigned long long)atomic_load(&m_reserved),
	    (unsigned long long)atomic_load(&m_settled),
	    (unsigned long long)atomic_load(&m_released),
	    (unsigned long long)atomic_load(&m_failed_open),
	    (unsigned long long)atomic_load(&m_unavailable),
	    (unsigned long long)atomic_load(&m_no_price),
	    (unsigned long long)atomic_load(&m_tokens_reserved),
	    (unsigned long long)atomic_load(&m_tokens_spent),
	    (unsigned long long)atomic_load(&m_cost_spent));
	for (int k = 0; k < POL_LIM_NKINDS; k++)
		evbuffer_add_printf(out,
		    "warden_limit_rejections_total{kind=\"%s\"} %llu\n",
		    pol_limit_kind_name((enum pol_limit_kind)k),
		    (unsigned long long)atomic_load(&m_refused[k]));
}

/* ---- the plan (pure) ---- */

long long
gw_limits_cost(const struct pol_price *p, long long prompt,
    long long completion)
{
	__int128 n;

	if (p == NULL)
		return 0;
	n = (__int128)prompt * p->in_per_mtok +
	    (__int128)completion * p->out_per_mtok;
	n = (n + 999999) / 1000000;
	return n > (__int128)(1LL << 62) ? 1LL << 62 : (long long)n;
}

static bool
applies(const struct pol_limit *l, const struct pol_caller *c)
{
	if (c->tenant == NULL)
		return false;
	if (l->tenant != NULL && strcmp(l->tenant, c->tenant->id) != 0)
		return false;
	if (l->app != NULL && (c->app == NULL || strcmp(l->app, c->app->id)))
		return false;
	if (l->agent != NULL && (c->agent == NULL ||
	    strcmp(l->agent, c->agent->id) != 0))
		return false;
	switch (l->scope) {
	case POL_SCOPE_APP:
		return c->app != NULL;
	case POL_SCOPE_AGENT:
		return c->agent != NULL;
	case POL_SCOPE_KEY:
		return c->key != NULL;
	default:
		return true;
	}
}

/* Whose counter: "t/ID", "a/TENANT/APP", "g/TENANT/AGENT", "k/HEX". */
static void
subject(const struct pol_limit *l, const struct pol_caller *c, char *buf,
    size_t len)
{
	char hex[65];

	switch (l->scope) {
	case POL_SCOPE_APP:
		snprintf(buf, len, "a/%s/%s", c->tenant->id, c->app->id);
		break;
	case POL_SCOPE_AGENT:
		snprintf(buf, len, "g/%s/%s", c->tenant->id, c->agent->id);
		break;
	case POL_SCOPE_KEY:
		wd_hex(c->key, 32, hex);
		snprintf(buf, len, "k/%s", hex);
		break;
	default:
		snprintf(buf, len, "t/%s", c->tenant->id);
		break;
	}
}

static const char *const kind_tag[POL_LIM_NKINDS] = {
	"rpm", "tpm", "conc", "tday", "tmon", "cday", "cmon"
};

bool
gw_limits_any(const struct pol_snapshot *snap, const struct pol_caller *caller)
{
	/* The metrics' count of configured limits: asked once per request. */
	atomic_store_explicit(&m_limits, (long long)snap->nlimits,
	    memory_order_relaxed);
	for (size_t i = 0; i < snap->nlimits; i++)
		if (applies(&snap->limits[i], caller))
			return true;
	return false;
}

/* The calendar day and month of now (UTC) and when they end, worked out
 * once a second per thread. */
struct calendar {
	time_t at;
	char day[16], mon[16];
	long long day_end, mon_end;
};

static const struct calendar *
calendar(time_t now)
{
	static _Thread_local struct calendar cal = { .at = (time_t)-1 };
	struct tm tm;

	if (cal.at == now)
		return &cal;
	gmtime_r(&now, &tm);
	strftime(cal.day, sizeof(cal.day), "%Y%m%d", &tm);
	strftime(cal.mon, sizeof(cal.mon), "%Y%m", &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mday++;
	cal.day_end = (long long)timegm(&tm);	/* normalises tm: again */
	gmtime_r(&now, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mday = 1;
	tm.tm_mon++;
	cal.mon_end = (long long)timegm(&tm);
	cal.at = now;
	return &cal;
}

void
gw_limits_plan(struct gw_limits *L, const struct pol_snapshot *snap,
    const struct pol_caller *caller, const char *model, size_t body_len,
    long long max_tokens, const char *reqid, time_t now)
{
	const struct calendar *cal = calendar(now);
	char day[16], mon[16], subj[160];
	long long day_end = cal->day_end, mon_end = cal->mon_end, ceiling = 0;
	int lease_s = snap->upstream.total_timeout_ms / 1000 + 60;

	memcpy(day, cal->day, sizeof(day));
	memcpy(mon, cal->mon, sizeof(mon));

	memset(L, 0, sizeof(*L));
	snprintf(L->lease, sizeof(L->lease), "%s", reqid ? reqid : "");
	L->model = model;
	L->price = pol_price_find(snap, model);
	for (size_t i = 0; i < snap->nlimits; i++)
		if (applies(&snap->limits[i], caller) &&
		    snap->limits[i].completion_ceiling > ceiling)
			ceiling = snap->limits[i].completion_ceiling;
	L->est_prompt = (long long)(body_len / 4) + 8;
	L->completion = max_tokens >= 0 ? max_tokens : ceiling;
	L->tokens = L->est_prompt + L->completion;
	L->cost = gw_limits_cost(L->price, L->est_prompt, L->completion);
	for (size_t i = 0; i < snap->nlimits; i++) {
		const struct pol_limit *l = &snap->limits[i];

		if (!applies(l, caller))
			continue;
		subject(l, caller, subj, sizeof(subj));
		for (int k = 0; k < POL_LIM_NKINDS; k++) {
			struct gw_ctr *c;

			if (l->max[k] < 0 || L->n >= GW_MAX_CTRS)
				continue;
			c = &L->c[L->n];
			L->lim[L->n] = l;
			L->kind[L->n] = (enum pol_limit_kind)k;
			L->n++;
			c->max = l->max[k];
			switch (k) {
			case POL_LIM_RPM:
			case POL_LIM_TPM:
				c->type = GW_CTR_WINDOW;
				c->window_s = 60;
				c->amount = k == POL_LIM_RPM ? 1 : L->tokens;
				snprintf(c->key, sizeof(c->key), "%s:%s:%s", l->id,
				    kind_tag[k], subj);
				break;
			case POL_LIM_CONCURRENT:
				c->type = GW_CTR_INFLIGHT;
				c->amount = 1;
				c->lease_s = lease_s;
				snprintf(c->key, sizeof(c->key), "%s:%s:%s", l->id,
				    kind_tag[k], subj);
				break;
			default: {
				bool daily = k == POL_LIM_TOKENS_DAY ||
				    k == POL_LIM_COST_DAY;
				bool cost = k == POL_LIM_COST_DAY ||
				    k == POL_LIM_COST_MONTH;

				c->type = GW_CTR_PERIOD;
				c->period_end = daily ? day_end : mon_end;
				c->amount = cost ? L->cost : L->tokens;
				if (cost)
					L->need_price = true;
				snprintf(c->key, sizeof(c->key), "%s:%s:%s:%s", l->id,
				    kind_tag[k], subj, daily ? day : mon);
				break;
			}
			}
		}
	}
}

void
gw_limits_deltas(const struct gw_limits *L, long long prompt,
    long long completion, long long *delta)
{
	long long cost = gw_limits_cost(L->price, prompt, completion);

	for (size_t i = 0; i < L->n; i++)
		switch (L->kind[i]) {
		case POL_LIM_TPM:
		case POL_LIM_TOKENS_DAY:
		case POL_LIM_TOKENS_MONTH:
			delta[i] = prompt + completion - L->tokens;
			break;
		case POL_LIM_COST_DAY:
		case POL_LIM_COST_MONTH:
			delta[i] = cost - L->cost;
			break;
		default:
			delta[i] = 0;	/* a request counts; a lease returns */
			break;
		}
}

/* ---- against the store ---- */

enum gw_lim_verdict
gw_limits_reserve(struct gw_limits *L, char *msg, size_t msglen)
{
	enum gw_store_rc rc;
	size_t which = 0;
	bool all_open = true;

	msg[0] = '\0';
	if (L->n == 0)
		return GW_LIM_OK;
	if (L->need_price && L->price == NULL) {
		INC(m_no_price);
		snprintf(msg, msglen, "a cost limit applies and model '%.64s' "
		    "has no price in the rules (prices:)", L->model ? L->model :
		    "");
		return GW_LIM_NO_PRICE;
	}
	rc = gw_store()->limit_reserve(L->c, L->n, L->lease, &which);
	if (rc == GW_STORE_OK) {
		L->reserved = true;
		INC(m_reserved);
		ADD(m_tokens_reserved, (unsigned long long)L->tokens);
		return GW_LIM_OK;
	}
	if (rc == GW_STORE_LIMIT && which < L->n) {
		L->hit = L->lim[which];
		L->hit_kind = L->kind[which];
		L->hit_used = L->c[which].used;
		L->hit_max = L->c[which].max;
		L->retry_s = L->c[which].retry_s > 0 ? L->c[which].retry_s : 1;
		INC(m_refused[L->hit_kind]);
		snprintf(msg, msglen, "limit '%s' (%s per %s): %lld of %lld used, "
		    "this request needs %lld; retry in %d s", L->hit->id,
		    pol_limit_kind_name(L->hit_kind), pol_scope_name(L->hit->scope),
		    L->hit_used, L->hit_max, L->c[which].amount, L->retry_s);
		return GW_LIM_OVER;
	}
	/* The store cannot tell.  Each limit that applies must allow the
	 * request; one that cannot be asked allows it only if it says so. */
	for (size_t i = 0; i < L->n; i++)
		if (!L->lim[i]->fail_open)
			all_open = false;
	if (all_open) {
		L->failed_open = true;
		INC(m_failed_open);
		wd_warn("limits: the state store cannot answer (%s); request "
		    "let through: every limit that applies says fail_open",
		    gw_store_rc_name(rc));
		return GW_LIM_OK;
	}
	INC(m_unavailable);
	snprintf(msg, msglen, "the limits store (%s) cannot answer (%s): "
	    "limits fail closed, the request is refused", gw_store()->name,
	    gw_store_rc_name(rc));
	return GW_LIM_UNAVAILABLE;
}

static long long
usage_int(const json_t *usage, const char *k)
{
	json_t *v = json_object_get(usage, k);

	return json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < (1LL << 40) ? json_integer_value(v) : -1;
}

void
gw_limits_settle(struct gw_limits *L, const json_t *usage)
{
	long long delta[GW_MAX_CTRS], p = -1, c = -1;

	if (L == NULL || !L->reserved || L->done)
		return;
	L->done = true;
	if (json_is_object(usage)) {
		p = usage_int(usage, "prompt_tokens");
		c = usage_int(usage, "completion_tokens");
	}
	if (p < 0 || c < 0) {
		/* No usage to settle with: what was reserved is spent. */
		p = L->est_prompt;
		c = L->completion;
	} else {
		L->have_usage = true;
	}
	L->spent_prompt = p;
	L->spent_completion = c;
	L->spent_tokens = p + c;
	L->spent_cost = gw_limits_cost(L->price, p, c);
	gw_limits_deltas(L, p, c, delta);
	if (gw_store()->limit_settle(L->c, L->n, L->lease, delta) !=
	    GW_STORE_OK)
		wd_warn("limits: settling request %s failed; its reservation "
		    "stands (and its in-flight place until it expires)",
		    L->lease);
	INC(m_settled);
	ADD(m_tokens_spent, (unsigned long long)L->spent_tokens);
	ADD(m_cost_spent, (unsigned long long)L->spent_cost);
}

void
gw_limits_release(struct gw_limits *L)
{
	long long delta[GW_MAX_CTRS];

	if (L == NULL || !L->reserved || L->done)
		return;
	L->done = true;
	gw_limits_deltas(L, 0, 0, delta);
	/* Cost at zero tokens is zero: delta is minus the reservation. */
	if (gw_store()->limit_settle(L->c, L->n, L->lease, delta) !=
	    GW_STORE_OK)
		wd_warn("limits: releasing request %s failed; its reservation "
		    "stands until its window or lease ends", L->lease);
	INC(m_released);
}

/* The counter of kind k with least room, or -1. */
static int
tightest(const struct gw_limits *L, enum pol_limit_kind k)
{
	int best = -1;

	for (size_t i = 0; i < L->n; i++)
		if (L->kind[i] == k && (best < 0 ||
		    L->c[i].max - L->c[i].used <
		    L->c[best].max - L->c[best].used))
			best = (int)i;
	return best;
}

size_t
gw_limits_headers(const struct gw_limits *L, const char **names,
    const char **values, char buf[7][32])
{
	static const char *const hn[2][3] = {
		{ "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
		  "x-ratelimit-reset-requests" },
		{ "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
		  "x-ratelimit-reset-tokens" },
	};
	size_t n = 0;

	if (L->failed_open)
		return 0;
	for (int t = 0; t < 2; t++) {
		int i = tightest(L, t == 0 ? POL_LIM_RPM : POL_LIM_TPM);
		long long rem;
		int reset;

		if (i < 0)
			continue;
		rem = L->c[i].max - L->c[i].used;
		reset = L->c[i].retry_s > 0 ? L->c[i].retry_s : L->c[i].window_s;
		snprintf(buf[n], 32, "%lld", L->c[i].max);
		names[n] = hn[t][0];
		values[n] = buf[n];
		n++;
		snprintf(buf[n], 32, "%lld", rem > 0 ? rem : 0);
		names[n] = hn[t][1];
		values[n] = buf[n];
		n++;
		snprintf(buf[n], 32, "%ds", reset);
		names[n] = hn[t][2];
		values[n] = buf[n];
		n++;
	}
	if (L->hit != NULL) {
		snprintf(buf[n], 32, "%d", L->retry_s);
		names[n] = "Retry-After";
		values[n] = buf[n];
		n++;
	}
	return n;
}

json_t *
gw_limits_json(const struct gw_limits *L)
{
	json_t *o, *ids;

	if (L == NULL || L->n == 0)
		return NULL;
	o = json_object();
	ids = json_array();
	if (o == NULL || ids == NULL) {
		json_decref(o);
		json_decref(ids);
		return NULL;
	}
	for (size_t i = 0; i < L->n; i++)
		if (i == 0 || L->lim[i] != L->lim[i - 1])
			json_array_append_new(ids, json_string(L->lim[i]->id));
	json_object_set_new(o, "applied", ids);
	json_object_set_new(o, "reserved", json_pack("{s:I,s:I,s:I,s:I}",
	    "prompt_estimate", (json_int_t)L->est_prompt,
	    "completion", (json_int_t)L->completion,
	    "tokens", (json_int_t)L->tokens,
	    "cost_micro_usd", (json_int_t)L->cost));
	if (L->hit != NULL)
		json_object_set_new(o, "refused_by", json_pack("{s:s,s:s,s:s,s:I,"
		    "s:I,s:i}", "limit", L->hit->id, "kind",
		    pol_limit_kind_name(L->hit_kind), "per",
		    pol_scope_name(L->hit->scope), "used", (json_int_t)L->hit_used,
		    "max", (json_int_t)L->hit_max, "retry_after_s", L->retry_s));
	if (L->failed_open)
		json_object_set_new(o, "failed_open", json_true());
	if (L->done && L->spent_tokens + L->spent_cost > 0)
		json_object_set_new(o, "spent", json_pack("{s:I,s:I,s:I,s:I,s:b}",
		    "prompt", (json_int_t)L->spent_prompt,
		    "completion", (json_int_t)L->spent_completion,
		    "tokens", (json_int_t)L->spent_tokens,
		    "cost_micro_usd", (json_int_t)L->spent_cost,
		    "from_usage", L->have_usage));
	else if (L->done)
		json_object_set_new(o, "released", json_true());
	return o;
}

/* ---- usage of streams ---- */

long long
gw_limits_max_tokens(const json_t *root)
{
	static const char *const keys[] = { "max_completion_tokens",
		"max_tokens" };

	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_object_get(root, keys[i]);

		if (json_is_integer(v) && json_integer_value(v) >= 0)
			return json_integer_value(v) < (1LL << 40) ?
			    json_integer_value(v) : 1LL << 40;
	}
	return -1;
}

bool
gw_limits_need_usage(const struct gw_limits *L)
{
	for (size_t i = 0; i < L->n; i++)
		if (L->kind[i] != POL_LIM_RPM && L->kind[i] != POL_LIM_CONCURRENT)
			return true;
	return false;
}

bool
gw_limits_ask_usage(json_t *root, bool *client_asked)
{
	json_t *opts = json_object_get(root, "stream_options");

	*client_asked = json_is_true(json_object_get(opts, "include_usage"));
	if (*client_asked || !json_is_true(json_object_get(root, "stream")))
		return false;
	if (!json_is_object(opts)) {
		opts = json_object();
		if (opts == NULL || json_object_set_new(root, "stream_options",
		    opts) != 0)
			return false;
	}
	return json_object_set_new(opts, "include_usage", json_true()) == 0;
}

void
gw_limits_stream_usage(struct evbuffer *out, bool strip, json_t **usage)
{
	size_t len = evbuffer_get_length(out), off = 0;
	const char *p;
	struct evbuffer *keep = NULL;

	if (len == 0)
		return;
	p = (const char *)evbuffer_pullup(out, -1);
	if (memmem(p, len, "\"usage\"", 7) == NULL)
		return;			/* the common case: nothing to look at */
	if (strip && (keep = evbuffer_new()) == NULL)
		strip = false;
	while (off < len) {
		size_t n = gw_sse_event_len(p + off, len - off), dlen;
		char *data = NULL, why[64];
		bool drop = false;

		if (n == 0)
			n = len - off;
		if (memmem(p + off, n, "\"usage\"", 7) != NULL &&
		    gw_sse_event_read(p + off, n, false, &data, &dlen, why,
		    sizeof(why)) == WD_OK && data != NULL) {
			json_t *j = json_loadb(data, dlen, 0, NULL);
			json_t *u = json_object_get(j, "usage");
			json_t *ch = json_object_get(j, "choices");

			if (json_is_object(u)) {
				json_decref(*usage);
				*usage = json_incref(u);
				drop = strip && (ch == NULL || (json_is_array(ch) &&
				    json_array_size(ch) == 0));
			}
			json_decref(j);
		}
		free(data);
		if (keep != NULL && !drop)
			evbuffer_add(keep, p + off, n);
		off += n;
	}
	if (keep != NULL) {
		evbuffer_drain(out, len);
		evbuffer_add_buffer(out, keep);
		evbuffer_free(keep);
	}
}
