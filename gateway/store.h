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
};

/* previous_response_id: the route that made a Responses answer. */
#define GW_RESP_ID_MAX 128
#define GW_RESP_ROUTE_MAX 64
#define GW_RESP_PER_TENANT 4096

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
};

enum gw_store_rc gw_resp_route_put(const char *tenant, const char *id,
    const char *route);
enum gw_store_rc gw_resp_route_get(const char *tenant, const char *id,
    char *route, size_t len);
void gw_resp_routes_reset(void);

/* The store in use. */
const struct gw_store_ops *gw_store(void);

/* In this process (sessions.c). */
extern const struct gw_store_ops gw_store_memory;
/* Forget every session and window (tests). */
void gw_store_memory_reset(void);

#endif /* GW_STORE_H */
