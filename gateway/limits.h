/*
 * limits.h - request rates, token rates, requests in flight and token or
 * cost budgets (issue 16), for the chat transaction.
 *
 * A request's limits are worked out from the rules (`limits:`,
 * `prices:`) before it leaves: gw_limits_plan() (pure) lists the
 * counters it touches and what it may cost: the prompt's estimate plus
 * max_tokens (or the limit's completion_ceiling); gw_limits_reserve()
 * takes all of it from the store at once or refuses (429, naming the
 * limit).  After the answer, gw_limits_settle() replaces the reservation
 * with the provider's usage; on failure gw_limits_release() gives the
 * tokens, the cost and the in-flight place back (the request itself
 * still counts against requests_per_minute).
 *
 * The store (store.h) is this process's or Redis; when Redis cannot be
 * reached a limit fails closed (503 state_store_unavailable) unless it
 * says fail_open.
 */
#ifndef GW_LIMITS_H
#define GW_LIMITS_H

#include <jansson.h>
#include <time.h>

#include "gateway/store.h"
#include "policy/pol.h"

struct evbuffer;

enum gw_lim_verdict {
	GW_LIM_OK = 0,			/* reserved (or nothing to reserve) */
	GW_LIM_OVER,			/* a limit is reached: 429 */
	GW_LIM_NO_PRICE,		/* a cost limit, a model without price */
	GW_LIM_UNAVAILABLE,		/* the store cannot answer: 503 */
};

struct gw_limits {
	/* The plan (gw_limits_plan). */
	struct gw_ctr c[GW_MAX_CTRS];
	const struct pol_limit *lim[GW_MAX_CTRS];
	enum pol_limit_kind kind[GW_MAX_CTRS];
	size_t n;
	char lease[80];			/* the request's in-flight leases */
	const char *model;		/* borrowed */
	const struct pol_price *price;	/* NULL: none */
	long long est_prompt;		/* tokens, estimated from the body */
	long long completion;		/* tokens reserved for the answer */
	long long tokens;		/* est_prompt + completion */
	long long cost;			/* micro-USD reserved */
	bool need_price;		/* a cost limit applies */
	/* What happened. */
	bool reserved;			/* the store holds our reservation */
	bool failed_open;		/* store down; fail_open let it pass */
	bool done;			/* settled or released */
	const struct pol_limit *hit;	/* refused by (or NULL) */
	enum pol_limit_kind hit_kind;
	long long hit_used, hit_max;
	int retry_s;
	bool have_usage;
	long long spent_prompt, spent_completion, spent_tokens, spent_cost;
};

/* Cost in micro-USD of tokens at price (rounded up). */
long long gw_limits_cost(const struct pol_price *p, long long prompt,
    long long completion);

/* Does any of the snapshot's limits apply to caller?  (Most requests
 * have none: then nothing is planned.) */
bool gw_limits_any(const struct pol_snapshot *snap,
    const struct pol_caller *caller);

/*
 * The counters the request touches and what it reserves.  Pure: reads
 * snap and the arguments, writes only L.  body_len: the request body's
 * size (the prompt's estimate); max_tokens: the request's, or -1.
 * now: wall clock (day and month budgets are UTC calendar periods).
 */
void gw_limits_plan(struct gw_limits *L, const struct pol_snapshot *snap,
    const struct pol_caller *caller, const char *model, size_t body_len,
    long long max_tokens, const char *reqid, time_t now);

/* What settling adds to each counter (delta[i] for L->c[i]), given the
 * provider's usage.  Pure. */
void gw_limits_deltas(const struct gw_limits *L, long long prompt,
    long long completion, long long *delta);

/* Take the plan from the store.  On GW_LIM_OVER, L->hit and the message
 * say which limit; msg gets a sentence for the client either way. */
enum gw_lim_verdict gw_limits_reserve(struct gw_limits *L, char *msg,
    size_t msglen);
/* Settle with the provider's usage (an OpenAI `usage` object, or NULL:
 * unknown, the reservation stands as spent). */
void gw_limits_settle(struct gw_limits *L, const json_t *usage);
/* The request did not go through: give back tokens, cost, its place. */
void gw_limits_release(struct gw_limits *L);

/* The x-ratelimit-* headers (and Retry-After when refused): up to 7
 * name/value pairs into names/values (values in buf).  Returns how many. */
size_t gw_limits_headers(const struct gw_limits *L, const char **names,
    const char **values, char buf[7][32]);

/* What the audit record says of limits, or NULL when none applied. */
json_t *gw_limits_json(const struct gw_limits *L);

/* The request's max_completion_tokens (or max_tokens), or -1. */
long long gw_limits_max_tokens(const json_t *root);
/* Do the limits count tokens or cost (so the answer's usage matters)? */
bool gw_limits_need_usage(const struct gw_limits *L);
/*
 * A stream request under such limits asks the provider for its usage
 * (stream_options.include_usage); *client_asked says whether the client
 * did itself.  true when root was changed (the body must be rewritten).
 */
bool gw_limits_ask_usage(json_t *root, bool *client_asked);
/*
 * Whole SSE events about to go to the client, in out: the usage of a
 * chunk that carries one goes to *usage (replacing it); with strip, a
 * chunk that carries nothing but usage (no choices) is taken out, since
 * the client did not ask for it.
 */
void gw_limits_stream_usage(struct evbuffer *out, bool strip,
    json_t **usage);

/* /metrics lines. */
void gw_limits_metrics(struct evbuffer *out);

#endif /* GW_LIMITS_H */
