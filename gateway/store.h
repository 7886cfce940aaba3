/*
 * store.h - the state warden keeps for agents from one request to the
 * next: the tool calls of each session (X-Warden-Session), so that a
 * client cannot hide calls by trimming its history, and the calls of each
 * key over the agent's limits window, so that a fresh session token
 * resets nothing.
 *
 * One small interface (struct gw_store_ops) with one implementation in
 * this process (sessions.c: gw_store_memory).  Another (Redis, so that
 * several wardens agree) plugs in behind the same functions; its callers
 * (gateway/tools.c) do not change.  Limits come with every call, from the
 * snapshot the request holds, so a reload applies to the next request.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>

/* Calls one session's record holds; a longer history is refused. */
#define GW_SESSION_MAX_CALLS 256

/*
 * MCP calls (issue 15) share the session with chat.  Their record entries
 * carry a prefix that no chat tool name can hold (OpenAI tool names are
 * [A-Za-z0-9_-]): "mcp:T" is a call made through /mcp that the model did
 * not ask for (a policy step of its own), "run:T" is an MCP call that ran
 * a call the model asked for earlier (already a step).  session_check
 * compares a chat history with the unprefixed entries only.
 */
#define GW_SESSION_MCP "mcp:"
#define GW_SESSION_RUN "run:"

/* One agent's session, with the agent's session limits. */
struct gw_sess_ref {
	const char *tenant;
	const char *agent;
	const char *session;		/* X-Warden-Session */
	size_t max;			/* sessions of the agent live at once */
	int ttl_s;			/* a session's idle expiry */
};

/* One key's calls as one agent, over the agent's window. */
struct gw_win_ref {
	const char *agent;
	const unsigned char *key;	/* the key's SHA-256 digest */
	int window_s;
};

enum gw_store_rc {
	GW_STORE_OK = 0,
	GW_STORE_CONTRADICTS,		/* history does not begin with the record */
	GW_STORE_TOO_LONG,		/* more calls than a session holds */
	GW_STORE_FULL,			/* all the agent's sessions are live */
	GW_STORE_LIMIT,			/* the window's limit is reached */
	GW_STORE_NOMEM,			/* cannot tell: fail closed */
	GW_STORE_UNKNOWN,		/* no such response id (resp_routes.c) */
	GW_STORE_UNAVAILABLE,		/* the shared store (Redis) cannot be
					 * reached: fail closed unless told */
};

/* previous_response_id: the route that made a Responses answer. */
#define GW_RESP_ID_MAX 128
#define GW_RESP_ROUTE_MAX 64
#define GW_RESP_PER_TENANT 4096

/*
 * One counter a request's limits touch (issue 16; built by limits.c from
 * the rules, so the store knows nothing of tenants or prices).  A
 * reservation takes amount from every counter of a request, or from
 * none: the store checks them all, then takes them, atomically.
 */
enum gw_ctr_type {
	GW_CTR_WINDOW = 'w',		/* rolling window of window_s */
	GW_CTR_PERIOD = 'p',		/* until period_end (day, month) */
	GW_CTR_INFLIGHT = 'c',		/* leases, each until it expires */
};

#define GW_CTR_KEY_MAX 200

struct gw_ctr {
	enum gw_ctr_type type;
	char key[GW_CTR_KEY_MAX];	/* the counter's name in the store */
	long long max;
	long long amount;		/* what this request reserves */
	int window_s;			/* GW_CTR_WINDOW */
	long long period_end;		/* GW_CTR_PERIOD: unix seconds */
	int lease_s;			/* GW_CTR_INFLIGHT: a lease's life if
					 * its holder never returns it */
	/* Out of limit_reserve: */
	long long used;			/* counted with it (or now, refused) */
	long long bucket;		/* where the reservation went */
	int retry_s;			/* refused: when room may come */
};

/* Most counters one request touches. */
#define GW_MAX_CTRS 32

struct gw_store_ops {
	const char *name;
	/*
	 * Find the session, or make it if the agent has fewer than r->max
	 * live (else FULL, with *retry_s: seconds until its oldest expires;
	 * a live session is never evicted).  The record must be a prefix of
	 * calls (the history's, in order; else CONTRADICTS); then the record
	 * becomes calls.  *recorded: calls the record held.
	 */
	enum gw_store_rc (*session_check)(const struct gw_sess_ref *r,
	    const char *const *calls, size_t n, size_t *recorded, int *retry_s);
	/* Add calls that went to the client to the session's record (made
	 * afresh, over the cap, if it expired in the meantime).  A record
	 * that cannot take them all (TOO_LONG, NOMEM) keeps that answer for
	 * every later session_check: it no longer holds every call. */
	enum gw_store_rc (*session_append)(const struct gw_sess_ref *r,
	    const char *const *calls, size_t n);
	/* The session's whole record (made if missing, capped as
	 * session_check): *names is a new array of n strings in one block
	 * (free(*names) frees all).  A record that lost calls answers as
	 * session_check would. */
	enum gw_store_rc (*session_read)(const struct gw_sess_ref *r,
	    char ***names, size_t *n, int *retry_s);
	/* Append calls only if the record still holds exactly `at` calls
	 * (else CONTRADICTS: another request got in between; read again):
	 * a decision on a record read earlier lands on that same record. */
	enum gw_store_rc (*session_append_at)(const struct gw_sess_ref *r,
	    size_t at, const char *const *calls, size_t n);
	/* The key's calls in the window: in all (*total) and of each tool
	 * (counts[i] for names[i]). */
	enum gw_store_rc (*window_read)(const struct gw_win_ref *r,
	    const char *const *names, size_t n, unsigned *total,
	    unsigned *counts);
	/* Count one call of tool, unless the window already holds max_total
	 * calls or max_tool calls of tool (-1: no such limit): LIMIT. */
	enum gw_store_rc (*window_take)(const struct gw_win_ref *r,
	    const char *tool, int max_total, int max_tool);
	/* Remember that route made the tenant's response id (each tenant
	 * keeps its last GW_RESP_PER_TENANT), and find it again (UNKNOWN:
	 * never seen, or fell out). */
	enum gw_store_rc (*response_put)(const char *tenant, const char *id,
	    const char *route);
	enum gw_store_rc (*response_route)(const char *tenant, const char *id,
	    char *route, size_t len);
	/*
	 * Reserve c[i].amount on every counter, or on none: LIMIT when one
	 * would pass its max (*which: its index; its retry_s says when room
	 * may come).  Every c[i].used is filled either way.  lease names
	 * the request's in-flight leases (GW_CTR_INFLIGHT).
	 */
	enum gw_store_rc (*limit_reserve)(struct gw_ctr *c, size_t n,
	    const char *lease, size_t *which);
	/*
	 * Settle a reservation: add delta[i] (spent minus reserved; may be
	 * negative) to the bucket c[i] reserved in, and return the
	 * request's in-flight leases.
	 */
	enum gw_store_rc (*limit_settle)(const struct gw_ctr *c, size_t n,
	    const char *lease, const long long *delta);
};

enum gw_store_rc gw_resp_route_put(const char *tenant, const char *id,
    const char *route);
enum gw_store_rc gw_resp_route_get(const char *tenant, const char *id,
    char *route, size_t len);
void gw_resp_routes_reset(void);

/* The store in use. */
const struct gw_store_ops *gw_store(void);
/* Use ops from now on (serve, when state.redis is set; tests). */
void gw_store_use(const struct gw_store_ops *ops);
const char *gw_store_rc_name(enum gw_store_rc rc);

/* In this process (sessions.c). */
extern const struct gw_store_ops gw_store_memory;
/* Forget every session and window (tests). */
void gw_store_memory_reset(void);
/* The in-process limit counters (limits_mem.c). */
enum gw_store_rc gw_mem_limit_reserve(struct gw_ctr *c, size_t n,
    const char *lease, size_t *which);
enum gw_store_rc gw_mem_limit_settle(const struct gw_ctr *c, size_t n,
    const char *lease, const long long *delta);
void gw_mem_limits_reset(void);

/*
 * In Redis (store_redis.c): every operation one Lua script (EVALSHA,
 * EVAL when Redis forgot it), so several wardens agree.  Each worker
 * thread has its own synchronous connection with tight timeouts; see
 * store_redis.c for why.  gw_store_redis_init checks the URL and that
 * Redis answers (a warning, not an error, when it does not: warden
 * starts and refuses what needs the store until it does).
 */
struct pol_state;
enum wd_err gw_store_redis_init(const struct pol_state *st, char *err,
    size_t errlen);
extern const struct gw_store_ops gw_store_redis;

#endif /* GW_STORE_H */
