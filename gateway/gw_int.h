/*
 * gw_int.h - private to gateway/: the worker, connection, upstream and
 * transaction types that the gateway's files share.
 *
 * Threads: the main thread owns struct gw_server and handles signals; each
 * worker thread owns one event_base, its listener, its connections and its
 * curl multi handle, and touches nothing of another worker's.  What workers
 * share (the policy snapshot, metrics) is read-only or synchronised.
 */
#ifndef GW_INT_H
#define GW_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "audit/aud.h"
#include "common/wd.h"
#include "gateway/gw.h"
#include "gateway/http.h"
#include "policy/pol.h"

struct gw_worker;
struct gw_conn;
struct gw_upstream;
struct gw_up_xfer;

struct sec_tpm;
struct gw_creds;

struct gw_server {
	const struct gw_serve_opts *opts;
	struct aud_log *audit;		/* the decision log */
	struct sec_tpm *tpm;		/* NULL until first needed */
	pthread_mutex_t tpm_lock;	/* one TPM user at a time */
	struct gw_creds *creds;		/* goes with snap; under snap_lock */
	struct aud_signer signer;	/* checkpoint signatures */
	pthread_mutex_t snap_lock;	/* guards snap: swap vs. ref */
	pthread_mutex_t reload_lock;	/* one reload at a time */
	struct pol_snapshot *snap;
	struct gw_worker *workers;
	int nworkers;
	char instance[17];		/* random id of this process */
};

struct gw_worker {
	struct gw_server *srv;
	int idx;
	pthread_t thread;
	int listen_fd;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *stop_ev;		/* activated by the main thread */
	struct event *grace_ev;		/* shutdown deadline */
	struct gw_upstream *up;
	struct gw_conn *conns;		/* all open connections */
	size_t nconns;
	bool stopping;
};

/* The current snapshot, with a reference the caller must drop. */
struct pol_snapshot *gw_server_snapshot(struct gw_server *srv);
/* The snapshot and its credentials, together, each with a reference. */
void gw_server_acquire(struct gw_server *srv, struct pol_snapshot **snap,
    struct gw_creds **creds);

/* ---- credentials (creds.c) ---- */

/* Unseal every credential snap's routes name (or take a dev credential
 * where allowed).  errs says which one failed and the TPM's reason. */
enum wd_err gw_creds_load(struct gw_server *srv,
    const struct pol_snapshot *snap, struct gw_creds **out, FILE *errs);
struct gw_creds *gw_creds_ref(struct gw_creds *c);
void gw_creds_unref(struct gw_creds *c);
const unsigned char *gw_creds_get(const struct gw_creds *c,
    const struct pol_snapshot *snap, const char *name, size_t *len);
/* Names of credentials new or changed between two generations. */
json_t *gw_creds_changed(const struct gw_creds *old,
    const struct pol_snapshot *os, const struct gw_creds *new,
    const struct pol_snapshot *ns);
const char *gw_tcti(const struct gw_server *srv,
    const struct pol_snapshot *snap);
const char *gw_secrets_store(const struct gw_server *srv,
    const struct pol_snapshot *snap);
/* The TPM-backed signer for audit checkpoints (none without a TPM). */
enum wd_err gw_signer_init(struct gw_server *srv,
    const struct pol_snapshot *snap, struct aud_signer *out);
/*
 * Load the rules file again and swap the snapshot in; on any error the
 * running snapshot stays and errs says why.  From SIGHUP or the admin
 * endpoint.
 */
enum wd_err gw_server_reload(struct gw_server *srv, FILE *errs);

/* ---- connections (http_conn.c) ---- */

/* What a handler registers while it owns a request. */
struct gw_conn_hooks {
	void (*gone)(void *arg);	/* client left; conn is being freed */
	void (*drained)(void *arg);	/* output fell below the low mark */
	void *arg;
};

struct gw_out_hdr {
	const char *name;
	const char *value;
};

void gw_conn_accept(struct gw_worker *w, evutil_socket_t fd,
    const struct sockaddr *peer);
bool gw_conn_is_loopback(const struct gw_conn *c);
void gw_conn_close_idle(struct gw_worker *w);
void gw_conn_abort_all(struct gw_worker *w);

void gw_conn_set_hooks(struct gw_conn *c, const struct gw_conn_hooks *h);
const char *gw_conn_request_id(const struct gw_conn *c);
/*
 * Every later answer on this request carries X-Warden-Decision: id and
 * X-Warden-Policy-Version: policy (which must outlive the answer's head).
 */
void gw_conn_set_decision(struct gw_conn *c, const char *id,
    const char *policy);
struct gw_worker *gw_conn_worker(const struct gw_conn *c);
size_t gw_conn_pending(const struct gw_conn *c);

/*
 * Answer the current request.  gw_respond sends a whole answer; the
 * start/chunk/end trio streams one with chunked coding.  After gw_respond
 * or gw_respond_end the handler must not touch the connection again.
 */
void gw_respond(struct gw_conn *c, int status, const char *ctype,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const void *body, size_t len);
void gw_respond_start(struct gw_conn *c, int status, const char *ctype,
    const struct gw_out_hdr *hdrs, size_t nhdrs);
void gw_respond_chunk(struct gw_conn *c, const void *data, size_t len);
void gw_respond_chunk_buf(struct gw_conn *c, struct evbuffer *buf);
void gw_respond_end(struct gw_conn *c, bool close_after);

/* ---- dispatch and endpoints (routes.c) ---- */

/* Handle one request; body ownership moves to the callee. */
void gw_dispatch(struct gw_conn *c, struct gw_http_req *req,
    struct evbuffer *body);

/* ---- OpenAI wire format (openai.c) ---- */

void gw_send_error(struct gw_conn *c, int status, const char *type,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void gw_send_error_hdr(struct gw_conn *c, int status,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const char *type,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* A 400 invalid_request_error naming the offending field (may be NULL). */
void gw_send_invalid(struct gw_conn *c, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same error as JSON text in out (for SSE error events). */
void gw_error_json(struct evbuffer *out, const char *type, const char *code,
    const char *message);

/* Fields of a chat request that the gateway acts on. */
struct gw_chat {
	json_t *root;			/* owned */
	const char *model;		/* borrowed from root */
	bool stream;
};

/*
 * Parse and validate a chat completions body.  On failure *why is a
 * message for the client and *param names the offending field.
 */
enum wd_err gw_chat_parse(const char *body, size_t len, struct gw_chat *out,
    char *why, size_t whylen, const char **param);
void gw_chat_clear(struct gw_chat *chat);

/* Authenticate "Bearer <key>"; NULL when the key is unknown. */
const struct pol_tenant *gw_auth(const struct pol_snapshot *snap,
    const char *authorization, struct pol_caller *caller);

/* ---- agent tool policy on requests and answers (tools.c) ---- */

#define GW_TOOLS_MAX_CHOICES 8
#define GW_TOOLS_MAX_CALLS 64		/* per choice in one answer */

struct gw_tools {
	const struct pol_agent *agent;	/* NULL: no tool policy */
	struct pol_tstate st;		/* after the request's history */
	char session[129];		/* X-Warden-Session, or "" */
	json_t *log;			/* for the decision record */
	/* Streaming: state per choice, and which call indexes were named. */
	struct pol_tstate sst[GW_TOOLS_MAX_CHOICES];
	uint64_t named[GW_TOOLS_MAX_CHOICES];
};

struct gw_tools_deny {
	int status;
	const char *code;
	char message[256];
};

enum gw_tools_rc { GW_TOOLS_OK, GW_TOOLS_MODIFIED, GW_TOOLS_DENY };

/*
 * Check a chat request against its agent's tool policy: who the agent is
 * (the key's own, or X-Warden-Agent), the tool-call history in messages
 * (and the session warden recorded), and the tools offered.  Offered tools
 * not allowed next are removed from root (MODIFIED) or the request is
 * denied, as the agent's on_violation says.
 */
enum gw_tools_rc gw_tools_request(struct gw_tools *tl,
    const struct pol_snapshot *snap, const struct pol_tenant *tenant,
    const struct pol_agent *key_agent, const struct gw_http_req *req,
    json_t *root, struct gw_tools_deny *deny);
/* Check the tool calls of a whole answer; may remove calls (strip). */
enum gw_tools_rc gw_tools_answer(struct gw_tools *tl, json_t *answer,
    struct gw_tools_deny *deny);
/* Check one streamed SSE event (whole, with its terminator). */
enum gw_tools_rc gw_tools_event(struct gw_tools *tl, const char *ev,
    size_t len, struct gw_tools_deny *deny);
/* The answer went out: record its allowed calls in the session. */
void gw_tools_commit(struct gw_tools *tl, bool streamed);
void gw_tools_clear(struct gw_tools *tl);

/* ---- sessions warden records for agents (sessions.c) ---- */

void gw_sessions_init(size_t max, int ttl_s);
/*
 * Compare the history's calls (names, in order) with what warden recorded
 * for this agent's session: the record must be a prefix of the history.
 * Then remember the longer of the two.  False if they contradict.
 */
bool gw_session_check(const char *agent, const char *session,
    const char *const *calls, size_t ncalls, size_t *recorded);
void gw_session_append(const char *agent, const char *session,
    const char *const *calls, size_t ncalls);

/* ---- SSE framing (sse.c) ---- */

struct gw_sse {
	bool at_line_start;
	bool last_cr;
	size_t scanned;			/* bytes of acc already scanned */
	size_t boundary;		/* acc bytes that end on an event edge */
};

void gw_sse_init(struct gw_sse *s);
/*
 * Append data to acc and find how much of acc now ends on an event
 * boundary (returned in *complete).  WD_ELIMIT when an unfinished event
 * grows past max_event bytes.
 */
enum wd_err gw_sse_feed(struct gw_sse *s, struct evbuffer *acc,
    const char *data, size_t len, size_t max_event, size_t *complete);
/* Bytes taken from the front of acc: keep the state in step. */
void gw_sse_consumed(struct gw_sse *s, size_t n);
/* Length of the first whole event in buf (which holds whole events). */
size_t gw_sse_event_len(const char *buf, size_t len);

/* ---- upstream transfers (upstream.c) ---- */

#define GW_UP_PAUSE ((size_t)-1)

struct gw_up_req {
	const char *url;
	const char *const *headers;	/* "Name: value" strings */
	size_t nheaders;
	const char *body;		/* must live until on_done */
	size_t body_len;
	int connect_ms, first_byte_ms, idle_ms, total_ms;
	/* Called once when the final status line and headers are in. */
	void (*on_head)(void *arg, int status, const char *content_type);
	/* Return len to consume, GW_UP_PAUSE to pause, 0 to abort. */
	size_t (*on_data)(void *arg, const char *data, size_t len);
	/* Called once, last; the transfer is gone when it returns. */
	void (*on_done)(void *arg, enum wd_err err, const char *detail);
	void *arg;
	const char *ca_file;		/* CA bundle for TLS; NULL: the system's */
};

struct gw_upstream *gw_upstream_new(struct event_base *base);
void gw_upstream_free(struct gw_upstream *up);
enum wd_err gw_up_start(struct gw_upstream *up, const struct gw_up_req *r,
    struct gw_up_xfer **out);
/* Stop a transfer; on_done is not called. */
void gw_up_abort(struct gw_up_xfer *x);
void gw_up_resume(struct gw_up_xfer *x);

/* ---- the chat completions transaction (proxy.c) ---- */

void gw_proxy_chat(struct gw_conn *c, struct gw_http_req *req,
    struct evbuffer *body);

/* ---- the audit record of one transaction (record.c) ---- */

struct gw_outcome {
	const char *request_id;
	const struct pol_snapshot *snap;
	const struct pol_decision *dec;	/* valid if decided */
	bool decided;
	const char *tenant;		/* NULL before authentication */
	const char *model;
	bool stream;
	const struct pol_provider *route;	/* last tried, or NULL */
	int status;			/* sent to the client; 499: it left */
	const char *code;		/* error code, if any */
	int upstream_status;
	json_t *attempts;		/* borrowed: [{route, status|error}] */
	json_t *tools;			/* borrowed: the tool policy's log */
	json_t *usage;			/* borrowed: the answer's usage */
	uint64_t latency_us;
	const char *req_hmac;		/* "" when payloads are not hashed */
	const char *resp_hmac;
};

/* The record's fields; audit/ adds seq, ts, prev and hash. */
json_t *gw_record(const struct gw_outcome *o);

/* ---- metrics (metrics.c) ---- */

void gw_metrics_init(void);
void gw_metrics_request(const char *route, int status);
void gw_metrics_upstream(const char *route, uint64_t latency_us);
void gw_metrics_conn(int delta);
void gw_metrics_bytes(uint64_t in, uint64_t out);
void gw_metrics_render(struct evbuffer *out);

#endif /* GW_INT_H */
