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
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "audit/aud.h"
#include "common/errors.h"
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
struct gw_witness;
struct gw_paykeys;

/*
 * The HTTP layer's limits as the server publishes them (at start and on
 * each reload): gen counts the changes, so a worker copies them once per
 * change and reads its copy with one atomic load per read event, never a
 * lock (http_conn.c).
 */
struct gw_http_pub {
	pthread_mutex_t lock;
	struct gw_http_limits lim;
	_Atomic unsigned gen;
};
void gw_http_publish(struct gw_http_pub *p, const struct gw_http_limits *lim);

struct gw_server {
	const struct gw_serve_opts *opts;
	struct aud_log *audit;		/* the decision log */
	struct sec_tpm *tpm;		/* NULL until first needed */
	pthread_mutex_t tpm_lock;	/* one TPM user at a time */
	struct gw_creds *creds;		/* goes with snap; under snap_lock */
	struct aud_signer signer;	/* checkpoint signatures */
	struct aud_counter counter;	/* the TPM counter in checkpoints */
	struct aud_witness witness;	/* checkpoints off the host */
	struct gw_witness *wit;		/* witness.c; NULL: none */
	uint32_t counter_index;		/* 0: no counter */
	char counter_name[72];		/* its TPM name at start, hex */
	pthread_mutex_t snap_lock;	/* guards snap: swap vs. ref */
	struct gw_http_pub http;	/* the HTTP layer's limits */
	pthread_mutex_t reload_lock;	/* one reload at a time */
	struct pol_snapshot *snap;
	_Atomic unsigned snap_gen;	/* bumped with each swap of snap */
	struct gw_worker *workers;
	int nworkers;
	char instance[17];		/* random id of this process */
	struct gw_paykeys *paykeys;	/* kept payloads' keys; NULL: no TPM */
};

struct txn;

/*
 * A worker's snapshot and credentials as its requests hold them: one
 * reference each, taken by the worker, and a count of the requests using
 * them, which only the worker's thread touches (no atomic increment on a
 * line the other workers share, twice per request).  A reload retires
 * the lease; the last request to let go of a retired lease drops its
 * references.
 */
struct gw_lease {
	struct pol_snapshot *snap;
	struct gw_creds *creds;
	unsigned users;
	bool retired;
};

#define GW_SPARE_BUFS 32
struct gw_worker {
	struct gw_server *srv;
	int idx;
	pthread_t thread;
	int listen_fd;
	struct event_base *base;
	struct evconnlistener *listener;
	/*
	 * The event base takes no locks (EVENT_BASE_FLAG_NOLOCK): only this
	 * worker's thread touches it.  Another thread that needs the worker
	 * (a reload, the stop) sets what it wants and rings its bell
	 * (gw_worker_ring), an eventfd the worker reads in its loop.
	 */
	int bell_fd;
	struct event *bell_ev;
	atomic_bool stop_asked;
	struct event *grace_ev;		/* shutdown deadline */
	struct gw_upstream *up;
	struct gw_conn *conns;		/* all open connections */
	size_t nconns;
	size_t inflight;		/* admitted chat and MCP requests (admit.c) */
	struct event *trim_ev;		/* malloc_trim after large requests
					 * (http_conn.c makes it) */
	bool stopping;
	const struct gw_http_handler *handler;	/* what requests go to */
	struct gw_http_pub *http;	/* the server's limits, published */
	struct gw_http_limits lim;	/* this worker's copy of them */
	unsigned lim_gen;		/* the copy's generation */
	/* The server's snapshot and credentials as this worker last took
	 * them (gw_lease).  A reload bumps srv->snap_gen and rings the bell,
	 * so the lease is renewed before the next request and the old one
	 * let go when its last request ends. */
	struct gw_lease *lease;
	unsigned snap_gen;
	/* Transactions that ended in this turn of the loop: their records go
	 * to the log together at the turn's end (txn_end.c).  turns: the
	 * loop runs turn by turn (worker_main) and calls the handler's
	 * turn_end after each, so they are flushed. */
	struct txn *ended, **ended_tail;
	bool turns;
	/* Emptied buffers for the next requests' bodies and answers
	 * (gw_worker_buf): two made and freed per request cost more than
	 * the request's policy decision. */
	struct evbuffer *spare[GW_SPARE_BUFS];
	unsigned nspare;
	/* Emptied transactions and tool checks (txn.c sizes them at the
	 * first request). */
	struct wd_spares spare_txns, spare_tools;
};



/* Allocator settings for bursts of large bodies; before threads start. */
void gw_memory_tune(int nworkers);

/* The current snapshot, with a reference the caller must drop. */
struct pol_snapshot *gw_server_snapshot(struct gw_server *srv);
/* The snapshot and its credentials, together, each with a reference. */
void gw_server_acquire(struct gw_server *srv, struct pol_snapshot **snap,
    struct gw_creds **creds);
/* The worker's current snapshot, on its thread, for use before the
 * loop turns again (no reference: the worker keeps it). */
const struct pol_snapshot *gw_worker_snapshot(struct gw_worker *w);
/* The worker's current lease, for a request: held until gw_lease_done,
 * on the worker's thread. */
struct gw_lease *gw_worker_lease(struct gw_worker *w);
void gw_lease_done(struct gw_lease *l);
/* Wake the worker from another thread: it renews its snapshot, and
 * stops if stop_asked is set. */
void gw_worker_ring(struct gw_worker *w);
/* An empty buffer, from the worker's spares or new; NULL: out of memory. */
struct evbuffer *gw_worker_buf(struct gw_worker *w);
/* b (NULL: nothing) emptied and kept for the worker's next, or freed. */
void gw_worker_buf_done(struct gw_worker *w, struct evbuffer *b);

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
/* Before the first TPM operation: flush what dead processes left loaded
 * in a TPM without a resource manager (sec_tpm_reclaim), and say so. */
void gw_tpm_reclaim(struct gw_server *srv, const struct pol_snapshot *snap);
/* The close of a TPM context, the gateway's and the CLI's: when one of
 * its commands gave up on slots that stayed full, what dead processes
 * left there is flushed (sec_tpm_close_reclaim) and said, so the next
 * operation works. */
void gw_tpm_close(struct sec_tpm *tpm);
const char *gw_secrets_store(const struct gw_server *srv,
    const struct pol_snapshot *snap);
/* The TPM-backed signer for audit checkpoints (none without a TPM). */
enum wd_err gw_signer_init(struct gw_server *srv,
    const struct pol_snapshot *snap, struct aud_signer *out);
/* secrets.auth_file, or --auth-file; NULL when neither. */
const char *gw_auth_file(const struct gw_server *srv,
    const struct pol_snapshot *snap);
/*
 * The TPM monotonic counter for audit checkpoints (issue 11): defined at
 * audit.counter_nv_index if missing, checked and read (the writer bumps
 * it at open, close, and at most once a minute).  No TPM or
 * counter_nv_index none: out->next stays NULL.  *start gets
 * {index, name, value} for the start record (NULL without a counter).
 */
enum wd_err gw_counter_init(struct gw_server *srv,
    const struct pol_snapshot *snap, struct aud_counter *out, json_t **start);
/*
 * A command's event (rec: ownership moves here) into the chain of the
 * log in dir (audit/inbox.c): through the inbox when a gateway holds the
 * log, else appended here and signed as the gateway would, with its TPM
 * key, the key's auth value and the TPM counter (creds.c).  Without a
 * TPM, a store with the key or the auth value it is appended unsigned,
 * and prog says so on stderr, with what follows for verification.
 * snap may be NULL (then the default counter index, and the interval of
 * the log's last checkpoint).  WD_OK: recorded; *in_chain false: queued
 * in the inbox for the gateway to take (prog says so on stderr).
 */
enum wd_err gw_cli_record(const char *dir, json_t *rec, const char *tcti,
    const char *store, const char *auth_file,
    const struct pol_snapshot *snap, const char *prog, bool *in_chain,
    char *err, size_t errlen);

/* ---- witnesses (witness.c) ---- */

/* Start the senders audit.witness names (*out NULL when none). */
enum wd_err gw_witness_new(const struct pol_witness *cfg,
    struct gw_witness **out, char *err, size_t errlen);
/* The aud_witness that queues each checkpoint line for the senders. */
void gw_witness_hook(struct gw_witness *w, struct aud_witness *out);
/* Deliveries so far (per destination), failures after all tries, and
 * lines dropped (queue full, too long). */
void gw_witness_stats(struct gw_witness *w, uint64_t *sent,
    uint64_t *failed, uint64_t *dropped);
/* Deliver what is queued (up to a few seconds), stop, free.  NULL ok. */
void gw_witness_free(struct gw_witness *w);
/* ---- the keys of kept payloads (paykeys.c) ---- */

/*
 * The TPM-backed keys audit/ keeps payloads and their digests under, for
 * the log in dir.  tpm_lock: the lock other TPM users of this process
 * take (NULL: its own).  err says why on failure.
 */
enum wd_err gw_paykeys_new(const char *dir, const char *tcti,
    pthread_mutex_t *tpm_lock, struct gw_paykeys **out, char *err,
    size_t errlen);
const struct aud_keys *gw_paykeys_keys(struct gw_paykeys *pk);
void gw_paykeys_free(struct gw_paykeys *pk);	/* wipes; NULL ok */

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
 * Every later answer on this request carries these headers too (at most
 * GW_CONN_MAX_STICKY; borrowed: they must outlive the answer's head).
 */
#define GW_CONN_MAX_STICKY 10
void gw_conn_set_answer_headers(struct gw_conn *c,
    const struct gw_out_hdr *hdrs, size_t nhdrs);
struct gw_worker *gw_conn_worker(const struct gw_conn *c);
/* The current request's key digest taken at admission; NULL if none. */
const unsigned char *gw_conn_key_digest(const struct gw_conn *c);
/* The connection's last key and digest (gw_auth_key_digest). */
struct gw_keymemo *gw_conn_keymemo(struct gw_conn *c);
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

/* ---- admission: key and caps before the body, values after (admit.c) ---- */

enum gw_admit_rc {
	GW_ADMIT_OK,		/* read the body, then dispatch */
	GW_ADMIT_NO_BODY,	/* unknown key: dispatch with no body, close */
	GW_ADMIT_REFUSED,	/* answer deny, close */
};

/* Body limit of the endpoints other than chat completions. */
#define GW_SMALL_BODY (16u << 10)

struct gw_admit {
	struct gw_worker *w;
	bool counted;			/* holds a place: give it back */
	bool keyed;			/* digest holds the request's key */
	struct key_slot *slot;		/* its count (admit.c); NULL: listed */
	unsigned char digest[32];	/* the key's */
	size_t max_values;		/* server.max_json_values */
	size_t max_body;		/* this request's body limit */
	size_t values;			/* counted in the body */
};

struct gw_admit_deny {
	enum wd_code code;		/* status and type: the catalogue's */
	const char *message;		/* NULL: the catalogue's */
};

struct gw_json_count {
	size_t count;
	bool in_string, escape;
};

/* Check a chat request's head: key, worker and key in-flight caps. */
enum gw_admit_rc gw_admit_head(struct gw_worker *w,
    const struct pol_snapshot *snap, const struct gw_http_req *req,
    struct gw_keymemo *memo, struct gw_admit *a, struct gw_admit_deny *deny);
/* False (and deny filled) when the body has too many JSON values. */
bool gw_admit_body(struct gw_admit *a, struct evbuffer *body,
    struct gw_admit_deny *deny);
/* The request ended: give its places back (idempotent). */
void gw_admit_done(struct gw_admit *a);
/* Feed JSON text; returns an upper bound of the values seen so far. */
size_t gw_json_count_values(struct gw_json_count *st, const char *p, size_t n);

/*
 * What the HTTP layer (http_conn.c) is given by the server when a worker
 * starts: whom to hand requests and their errors to.  It names no
 * endpoint, policy or header of warden's own (routes.c defines warden's).
 */
struct gw_http_handler {
	/* A head is in: GW_ADMIT_OK reads the body (at most a->max_body),
	 * NO_BODY dispatches at once and closes, REFUSED answers *deny. */
	enum gw_admit_rc (*head)(struct gw_conn *c, const struct gw_http_req *req,
	    struct gw_admit *a, struct gw_admit_deny *deny);
	/* The body is in: false (and *deny) to refuse it. */
	bool (*body)(struct gw_admit *a, struct evbuffer *body,
	    struct gw_admit_deny *deny);
	/* The request is over: give back what head took (idempotent). */
	void (*done)(struct gw_admit *a);
	/* Handle the request; body ownership moves to the callee. */
	void (*dispatch)(struct gw_conn *c, struct gw_http_req *req,
	    struct evbuffer *body);
	/* Answer a refusal (from head, body, or too many connections). */
	void (*refuse)(struct gw_conn *c, const struct gw_admit_deny *d);
	/* Answer a malformed request: status and a static why. */
	void (*malformed)(struct gw_conn *c, int status, const char *why);
	/* A turn of the worker's loop is over (worker_main): what waited for
	 * the turn's end goes now.  NULL: nothing waits. */
	void (*turn_end)(struct gw_worker *w);
};

extern const struct gw_http_handler gw_warden_handler;	/* routes.c */

/* ---- dispatch and endpoints (routes.c) ---- */


/* ---- OpenAI wire format (openai.c) ---- */

/*
 * Answer with the catalogue's error (common/errors.h): its status, type
 * and code; fmt NULL: its default message.  hdrs are extra headers.
 */
void gw_reply_error(struct gw_conn *c, enum wd_code code,
    const struct gw_out_hdr *hdrs, size_t nhdrs, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same for a code of a family (WD_CODE_DETECTED): the wire names
 * the member name (NULL, or a code of no family: the catalogue's). */
void gw_reply_error_named(struct gw_conn *c, enum wd_code code,
    const char *name, const struct gw_out_hdr *hdrs, size_t nhdrs,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A malformed request (WD_CODE_HTTP) with the parser's status. */
void gw_reply_http_error(struct gw_conn *c, int status, const char *why);
/* A 400 invalid_request_error naming the offending field (may be NULL). */
void gw_send_invalid(struct gw_conn *c, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same error as JSON text in out (for SSE error events); message
 * NULL: the catalogue's. */
void gw_error_json(struct evbuffer *out, enum wd_code code,
    const char *message);
void gw_error_json_named(struct evbuffer *out, enum wd_code code,
    const char *name, const char *message);

/* Fields of a chat request that the gateway acts on. */
struct gw_chat {
	/* Owned; for chat NULL until gw_chat_tree (most requests are
	 * decided on the facts alone). */
	json_t *root;
	const char *model;		/* borrowed from root, or model_buf */
	bool stream;
	/* The other formats' readers (fmt_requests.c) fill these too. */
	unsigned api;			/* POL_API_*; 0: chat */
	const char *previous_response_id;	/* Responses; borrowed */
	/* The body gw_chat_tree reads (borrowed: it must not change
	 * before), and the model read without a tree. */
	const char *text;
	size_t text_len;
	char model_buf[257];
	long long max_tokens;		/* read without a tree: as
					 * gw_limits_max_tokens */
};

/*
 * Parse and validate a chat completions body.  On failure *why is a
 * message for the client and *param names the offending field.
 */
enum wd_err gw_chat_parse(const char *body, size_t len, struct gw_chat *out,
    char *why, size_t whylen, const char **param);
void gw_chat_clear(struct gw_chat *chat);
/* The request's tree, built now if it was not (NULL: out of memory). */
json_t *gw_chat_tree(struct gw_chat *chat);

/* Authenticate "Bearer <key>"; NULL when the key is unknown. */
const struct pol_tenant *gw_auth(const struct pol_snapshot *snap,
    const char *authorization, struct pol_caller *caller);

/* ---- agent tool policy on requests and answers (tools.c) ---- */

#define GW_TOOLS_MAX_CHOICES 8
#define GW_TOOLS_MAX_CALLS 64		/* per choice in one answer */

struct gw_answer;

struct gw_tools {
	const struct pol_agent *agent;	/* NULL: no tool policy */
	struct pol_tstate st;		/* after the request's history */
	char session[129];		/* X-Warden-Session, or "" */
	json_t *log;			/* for the decision record */
	/* Streaming, per choice: the policy state, which call indexes
	 * have their name (each exactly once), how many calls were named
	 * (the next new index must be this), and the legacy function_call. */
	struct pol_tstate sst[GW_TOOLS_MAX_CHOICES];
	uint64_t named[GW_TOOLS_MAX_CHOICES];
	unsigned ncalls[GW_TOOLS_MAX_CHOICES];
	bool fn_named[GW_TOOLS_MAX_CHOICES];
	const unsigned char *key;	/* the caller's key digest (limits) */
	/* Allowed calls of choice 0 (tool indexes) of the event or answer
	 * being checked: into the session once it goes to the client. */
	unsigned char pending[256];
	size_t npending;
};

struct gw_tools_deny {
	enum wd_code id;		/* the catalogue's (common/errors.h) */
	int status;			/* its status */
	const char *code;		/* its name */
	char message[256];
	int retry_after_s;		/* > 0: send Retry-After */
};

enum gw_tools_rc { GW_TOOLS_OK, GW_TOOLS_MODIFIED, GW_TOOLS_DENY };

/*
 * Check a chat request against its agent's tool policy: who the agent is
 * (the key's own, or X-Warden-Agent), the tool-call history in messages
 * (and the session warden recorded), and the tools offered.  Offered tools
 * not allowed next are removed from the request's tree (MODIFIED) or the
 * request is denied, as the agent's on_violation says.  The tree is read
 * (gw_chat_tree) only when an agent applies.
 */
struct gw_chat;
enum gw_tools_rc gw_tools_request(struct gw_tools *tl,
    const struct pol_snapshot *snap, const struct pol_tenant *tenant,
    const struct pol_caller *caller, const struct gw_http_req *req,
    struct gw_chat *chat, struct gw_tools_deny *deny);
/*
 * Check the calls of a provider answer, read strictly by a format's
 * reader (normalized events only): a whole answer (may strip calls:
 * MODIFIED) or one chunk of a stream (the whole chunk goes or nothing
 * of it).  A chunk's calls must name each index once, in order, before
 * its arguments; breaking that is a DENY with status 502.
 */
enum gw_tools_rc gw_tools_answer(struct gw_tools *tl, struct gw_answer *ans,
    struct gw_tools_deny *deny);
/*
 * A call the policy allowed, in choice `choice` of an answer: counted in
 * the key's limits window now (false, and *why, when the window is
 * full), and queued for the session; gw_tools_answer puts the queue into
 * the session as soon as what names it may go out (a chunk that passed,
 * a whole answer that was not refused), so a client that leaves after
 * receiving a call cannot hide it.
 */
bool gw_tools_commit_call(struct gw_tools *tl, size_t choice,
    const char *name, struct pol_tool_why *why);
/*
 * The policy state of an agent's session as warden recorded it, chat and
 * MCP calls in order (issue 15), and the record itself (*names: free()).
 */
enum gw_tools_rc gw_tools_session_state(const struct pol_agent *a,
    const char *session, struct pol_tstate *st, char ***names, size_t *n,
    struct gw_tools_deny *d);
/* Put the queued calls into the session (what gw_tools_commit does). */
void gw_tools_flush(struct gw_tools *tl);
/* The answer went out: record its allowed calls in the session. */
void gw_tools_commit(struct gw_tools *tl, bool streamed);
void gw_tools_clear(struct gw_tools *tl);

/* Sessions and limits windows live in the state store: gateway/store.h. */

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
/*
 * Read the fields of one whole event as the WHATWG decoder (and the
 * openai clients) do: lines end in CRLF, LF or CR; "data" lines are
 * joined with LF, one space after the colon is dropped; comments, "id"
 * and "retry" are ignored.  Stricter than they are: an "event" field, or
 * a byte-order mark other than one at the very start of the stream
 * (first set; it is dropped as clients drop it), is WD_EPARSE.  *data is
 * a new NUL-terminated string (NULL when the event has no data line).
 */
enum wd_err gw_sse_event_read(const char *ev, size_t len, bool first,
    char **data, size_t *dlen, char *why, size_t whylen);
/*
 * The same for streams whose events are named (Anthropic Messages, OpenAI
 * Responses): one "event" line at most, its value (up to 63 bytes) in
 * name ("" when there is none).
 */
enum wd_err gw_sse_event_read_named(const char *ev, size_t len, bool first,
    char name[64], char **data, size_t *dlen, char *why, size_t whylen);

/* ---- upstream transfers (upstream.c) ---- */

#define GW_UP_PAUSE ((size_t)-1)

struct gw_up_req {
	const char *url;
	const char *const *headers;	/* "Name: value" strings */
	size_t nheaders;
	const char *proxy;		/* upstream.proxy, or NULL: none */
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
	/* Optional: each header line of the final answer ("Name: value"
	 * with its CRLF), before on_head; and a method other than POST
	 * ("GET": sent without a body, so body_len must be 0). */
	void (*on_header)(void *arg, const char *line, size_t len);
	const char *method;
	bool curl_only;		/* upstream.http_client: curl */
};

/*
 * libcurl's global init, with allocators that wipe every block before it
 * is freed: curl builds whole request heads, Authorization included, in
 * its heap buffers (curl_mem.c).  Before any other curl call.
 */
enum wd_err gw_curl_global_init(void);
struct gw_upstream *gw_upstream_new(struct event_base *base);
void gw_upstream_free(struct gw_upstream *up);
enum wd_err gw_up_start(struct gw_upstream *up, const struct gw_up_req *r,
    struct gw_up_xfer **out);
/* Stop a transfer; on_done is not called. */
void gw_up_abort(struct gw_up_xfer *x);
/* The worker's loop runs turn by turn (server.c): requests to plain-http
 * providers started in a turn go together at its end (upstream_h1.c). */
void gw_up_turns(struct gw_upstream *up, bool on);
void gw_up_turn_end(struct gw_upstream *up);
void gw_up_resume(struct gw_up_xfer *x);

/* ---- the transaction: one request on the path (txn.c, txn.h) ---- */

struct gw_format;
/*
 * Carry one request of format fmt through the request path (read,
 * policy, upstream, answer) to its one end; body ownership moves here.
 */
void gw_txn_start(struct gw_conn *c, struct gw_http_req *req,
    struct evbuffer *body, const struct gw_format *fmt);
/*
 * The transactions that ended in the turn of w's loop just run: their
 * records written together (one write() for all of them), then their
 * answers sent.  The warden handler's turn_end.
 */
void gw_txn_flush_ended(struct gw_worker *w);

/* ---- the audit record of one transaction (record.c) ---- */

/*
 * One try at a route, as the record's `attempts` has it: {route, status},
 * {route, error}, or both when the client left after the status came.
 */
struct gw_attempt {
	const char *route;		/* the snapshot's route id */
	int status;			/* 0: none */
	char *error;			/* NULL: none */
};
/* Every attempt the rules allow, and one more for the client leaving
 * while the last is in flight. */
#define GW_ATTEMPTS_MAX (POL_MAX_ATTEMPTS + 1)
/* A whole answer's usage kept as text up to this many bytes (an OpenAI
 * usage with its details is under 300). */
#define GW_USAGE_TEXT_MAX 384

struct gw_outcome {
	const char *request_id;
	const struct pol_snapshot *snap;
	const struct pol_decision *dec;	/* valid if decided */
	bool decided;
	const char *tenant;		/* NULL before authentication */
	const char *api;		/* the request's format (pol_api_name) */
	const char *model;
	bool stream;
	const struct pol_provider *route;	/* last tried, or NULL */
	int status;			/* sent to the client; 499: it left */
	const char *code;		/* error code, if any */
	int upstream_status;
	const struct gw_attempt *attempts;	/* borrowed */
	size_t nattempts;
	json_t *tools;			/* borrowed: the tool policy's log */
	json_t *usage;			/* borrowed: the answer's usage */
	const char *usage_text;		/* or its text, when usage is NULL */
	size_t usage_len;		/* 0: no text */
	json_t *limits;			/* borrowed: gw_limits_json, or NULL */
	uint64_t latency_us;
	const char *req_hmac;		/* "" when payloads are not hashed */
	const char *resp_hmac;
	bool stored;			/* payload.stored: the store kept it */
	bool refused_late;		/* the tool policy refused: deny */
};

/* The record's fields; audit/ adds seq, ts, prev and hash. */
json_t *gw_record(const struct gw_outcome *o);
/* The same record written directly as its canonical text into c (begun
 * with aud_canon_begin): byte for byte what gw_record and the audit
 * log's serialisation give, without the tree.  False: c failed (the
 * caller uses gw_record). */
bool gw_record_canon(const struct gw_outcome *o, struct aud_canon *c);

/* How a stream whose record went out first ended: its stream_end
 * record (FORMAT.md), as a jansson object or written directly. */
struct gw_stream_end {
	const char *request_id, *decision_id;
	const char *tenant;		/* NULL: null */
	const char *code;		/* NULL: null */
	const char *verdict;
	const char *keep;		/* payload.mode */
	const char *resp_hmac;		/* "" : null */
	int status;
	long long latency_ms;
	const struct gw_attempt *attempts;	/* borrowed */
	size_t nattempts;
	json_t *usage;			/* borrowed; NULL: null */
	json_t *tools, *limits;		/* borrowed; NULL: absent */
	bool stored;
};
json_t *gw_stream_end_record(const struct gw_stream_end *e);
bool gw_stream_end_canon(const struct gw_stream_end *e, struct aud_canon *c);

/* ---- metrics (metrics.c) ---- */

void gw_metrics_init(void);
void gw_metrics_request(const char *route, int status);
void gw_metrics_upstream(const char *route, uint64_t latency_us);
void gw_metrics_conn(int delta);
void gw_metrics_bytes(uint64_t in, uint64_t out);
void gw_metrics_render(struct evbuffer *out);
enum gw_witness_result { GW_WITNESS_SENT, GW_WITNESS_FAILED,
	GW_WITNESS_DROPPED };
void gw_metrics_witness(enum gw_witness_result r);

/* ---- provider answers, read strictly (chat_answer.c) ---- */

/*
 * A format's reader turns a provider's answer (whole, or one chunk of a
 * stream) into normalized events, and refuses whatever is not a
 * well-formed answer of its shape; the tool policy acts on the events
 * only, and what the client gets is the format's own serialization of
 * the parsed answer, never the provider's bytes.
 */
#define GW_ANS_MAX_CHOICES 8
#define GW_ANS_MAX_CALLS 64		/* call indexes 0..63 per choice */
#define GW_ANS_FN_CALL ((size_t)-1)	/* the legacy function_call slot */

enum gw_ans_kind {
	GW_ANS_TEXT,			/* content or refusal */
	GW_ANS_CALL,			/* a tool call, or a piece of one */
	GW_ANS_FINISH,			/* a choice's finish_reason */
	GW_ANS_USAGE,			/* token counts */
	GW_ANS_ERROR,			/* the provider reports an error */
	GW_ANS_SEEN,			/* a call the stream named before,
					 * repeated (checked: same name) */
};

struct gw_ans_event {
	enum gw_ans_kind kind;
	size_t choice;			/* the choice's index */
	size_t call;			/* call index, or GW_ANS_FN_CALL */
	const char *name;		/* CALL: tool name; NULL: arguments only */
	const char *text;		/* TEXT, FINISH, ERROR: the string */
	/* Borrowed from root: the call (or usage, or error) object, what
	 * holds it, and its choice; for drop_call. */
	json_t *node, *parent, *choice_obj;
};

struct gw_answer {
	const struct gw_format *fmt;	/* whose reader read it */
	json_t *root;			/* owned: what was checked, what is sent */
	struct gw_ans_event *ev;	/* owned */
	size_t nev, cap;
	bool chunk;			/* one event of a stream */
	const char *type;		/* named-event formats: the data's
					 * "type", which must be the event's
					 * name (borrowed from root) */
};

/*
 * What a stream of named events (Messages, Responses) has shown so far:
 * the client's accumulator puts blocks (output items) by position, so
 * each must start at the next position, deltas go to a started block of
 * their kind, and calls are numbered in the order they start.
 */
#define GW_FMT_MAX_BLOCKS 64
#define GW_FMT_RESP_ID 129

struct gw_fmt_stream {
	unsigned nblocks;
	unsigned char kind[GW_FMT_MAX_BLOCKS];	/* the format's block kinds */
	unsigned char open[GW_FMT_MAX_BLOCKS];
	unsigned char callno[GW_FMT_MAX_BLOCKS];	/* call blocks: ordinal */
	char name[GW_FMT_MAX_BLOCKS][72];	/* call blocks: the tool */
	unsigned ncalls;
	bool started;			/* the first event came */
	bool ended;			/* the last event came */
	bool finished;			/* a message_delta came (Messages) */
	char resp_id[GW_FMT_RESP_ID];	/* Responses: response.created's id */
	int64_t seq;			/* Responses: last sequence_number */
};

struct gw_detect_answer;

struct gw_format {
	const char *name;
	/* Read and validate a request body; on failure *why is a message
	 * for the client and *param names the offending field. */
	enum wd_err (*read_request)(const char *body, size_t len,
	    struct gw_chat *out, char *why, size_t whylen, const char **param);
	/* The provider's path for it, after the route's base_url. */
	const char *path;
	/* Read a whole answer, or one stream event's data.  WD_EPARSE
	 * (why says what) when it is not a well-formed answer. */
	enum wd_err (*read_answer)(const char *buf, size_t len,
	    struct gw_answer *out, char *why, size_t whylen);
	enum wd_err (*read_chunk)(const char *buf, size_t len,
	    struct gw_answer *out, char *why, size_t whylen);
	/* Take one call out of a whole answer (strip). */
	void (*drop_call)(struct gw_answer *a, const struct gw_ans_event *ev);
	/* The bytes the client gets for a parsed answer or chunk. */
	enum wd_err (*write)(const struct gw_answer *a, struct evbuffer *out);
	/* An error body reduced to its error object; NULL if there is none. */
	json_t *(*read_error)(const char *buf, size_t len);
	/* The end of a stream as the client gets it. */
	const char *done;
	/* Formats whose stream events are named (NULL for chat): check one
	 * read chunk's place in the stream, number its calls (ev.call
	 * becomes the call's ordinal) and set st->ended at the last event.
	 * The event's name must equal a->type. */
	enum wd_err (*step)(struct gw_fmt_stream *st, struct gw_answer *a,
	    char *why, size_t whylen);
	/* This format's error body, and its error event in a stream. */
	json_t *(*error_body)(int status, const char *type, const char *code,
	    const char *message);
	void (*error_event)(struct evbuffer *out, const char *type,
	    const char *code, const char *message);
	/* How the route's credential goes to the provider ("Authorization:
	 * Bearer " or "x-api-key: "), and the client's headers that go to
	 * it unchanged (NULL-terminated; NULL: none). */
	const char *auth_prefix;
	const char *const *forward;
	/* The POL_API_* bit: routes must speak it. */
	unsigned api;
	/* Content detection: feed the text of a whole answer (whole) or of
	 * one stream event's data to a's scanner, in order, nothing else
	 * between a stream's pieces (detect_answer.c). */
	enum wd_err (*answer_text)(struct gw_detect_answer *a, json_t *data,
	    bool whole);
};

extern const struct gw_format gw_format_chat;
extern const struct gw_format gw_format_messages;	/* fmt_messages.c */
extern const struct gw_format gw_format_responses;	/* fmt_responses.c */
extern const struct gw_format gw_format_embeddings;	/* fmt_embeddings.c */
extern const struct gw_format gw_format_count_tokens;	/* fmt_messages.c */

/* Helpers the readers share (chat_answer.c). */
/* Say why (into why) and return WD_EPARSE. */
enum wd_err gw_ans_bad(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Absent or JSON null: clients treat both as "not given". */
bool gw_ans_absent(json_t *v);
/* obj's member key is a string (need), or a string, absent or null. */
bool gw_ans_is_str(json_t *obj, const char *key, bool need);
enum wd_err gw_ans_add(struct gw_answer *a, const struct gw_ans_event *e);
/* Strict JSON object: duplicates refused; NULL and *why on failure. */
json_t *gw_ans_load(const char *buf, size_t len, char *why, size_t whylen);
bool gw_ans_index_ok(json_t *v, size_t max, size_t *out);
const char *gw_ans_stray_key(json_t *obj, const char *const *keys);
bool gw_ans_opt_string(json_t *obj, const char *key, const char **out);
/* Open block idx (it must be st's next) of kind; number the calls a
 * holds in the stream's order.  What names it (block, item) is for why. */
enum wd_err gw_ans_open_block(struct gw_fmt_stream *st, struct gw_answer *a,
    size_t idx, unsigned char kind, const char *what, char *why,
    size_t whylen);
/* "event: error" with e as its data (e is consumed; NULL: nothing). */
void gw_ans_error_event(struct evbuffer *out, json_t *e);
/* write() of named-event formats: "event: type" + data, or the body. */
enum wd_err gw_ans_write_named(const struct gw_answer *a,
    struct evbuffer *out);
/* root as compact JSON into out, whole or not at all: as an SSE event
 * ("event: " event, when not NULL, then "data: ") when chunk, else as it
 * is.  Every format's write() comes here. */
enum wd_err gw_ans_write_json(const json_t *root, const char *event,
    bool chunk, struct evbuffer *out);
/* Anthropic's {"type":"error","error":{type,message}} (fmt_messages.c). */
json_t *gw_messages_error_body(int status, const char *type,
    const char *code, const char *message);
/* OpenAI's {"error":{message,type,param,code}} (chat_answer.c). */
json_t *gw_openai_error_body(int status, const char *type,
    const char *code, const char *message);

void gw_answer_clear(struct gw_answer *a);

/* ---- an agent's answer, provider bytes to client bytes (agent_answer.c) ---- */

struct gw_agent_stream {
	const struct gw_format *fmt;
	struct gw_fmt_stream fs;	/* named-event formats */
	bool seen;			/* the first event was read (BOM rule) */
	bool done;			/* data: [DONE] was read */
};

void gw_agent_stream_init(struct gw_agent_stream *as,
    const struct gw_format *fmt);
/*
 * Read the complete events at the front of acc (complete bytes, from
 * gw_sse_feed), check each, and append what the client gets to out.
 * Returns the bytes of acc consumed (and drained).  *go_on is false at a
 * refusal (*d says why: 403 policy, 502 provider) or at bytes after
 * [DONE]; the caller then ends the stream.
 */
size_t gw_agent_stream_feed(struct gw_agent_stream *as, struct gw_tools *tl,
    struct evbuffer *acc, size_t complete, struct evbuffer *out, bool *go_on,
    struct gw_tools_deny *d);
/* The provider's stream ended: true (and the format's [DONE] in out) if it
 * ended as it should; acc is emptied. */
bool gw_agent_stream_end(struct gw_agent_stream *as, struct evbuffer *acc,
    struct evbuffer *out, struct gw_tools_deny *d);
/*
 * A whole answer of status: what the client gets into out (a checked and
 * re-serialized answer, or an error body's error object), and its usage
 * (a new reference, or NULL).  False with *d when it is refused.
 */
bool gw_agent_answer(const struct gw_format *fmt, struct gw_tools *tl,
    int status, const char *text, size_t len, struct evbuffer *out,
    json_t **usage, struct gw_tools_deny *d);

/* ---- keys and lists for every client (auth_any.c) ---- */

/* The virtual key from Authorization: Bearer or x-api-key (both must
 * then agree; each at most once); NULL when there is none or it is
 * unknown. */
const struct pol_tenant *gw_auth_request(const struct pol_snapshot *snap,
    const struct gw_http_req *req, struct pol_caller *caller);
/* The SHA-256 digest of that key, with the same checks; false when the
 * request names none.  A request's key is hashed once, at admission
 * (gw_admit_head), and the digest passed along (gw_conn_key_digest). */
/* "Bearer KEY" (case-insensitive scheme, spaces after it, KEY of 1 to
 * 512 bytes) hashed into digest; false when it is no such header. */
bool gw_auth_bearer_digest(const char *authorization,
    unsigned char digest[32]);
/*
 * The key a connection's last request named (as "Bearer KEY") and its
 * digest: a keep-alive client names the same key on every request, which
 * is then compared (in constant time), not hashed again.  Heap memory,
 * wiped when the key changes and when the connection closes.
 */
struct gw_keymemo {
	char *key;
	size_t len;
	unsigned char digest[32];
};
void gw_keymemo_clear(struct gw_keymemo *m);
/* memo: the connection's, or NULL. */
bool gw_auth_key_digest(const struct gw_http_req *req,
    unsigned char digest[32], struct gw_keymemo *memo);
/* The tenant (and caller) of a key's digest; NULL when unknown. */
const struct pol_tenant *gw_auth_digest(const struct pol_snapshot *snap,
    const unsigned char digest[32], struct pol_caller *caller);
/* GET /v1/models for Anthropic callers (x-api-key, anthropic-version). */
json_t *gw_models_anthropic(const char *const *ids, size_t n);

/* ---- requests in the other formats (fmt_requests.c) ---- */

struct gw_req {
	unsigned api;			/* POL_API_* */
	json_t *root;			/* owned */
	const char *model;		/* borrowed from root */
	bool stream;
	const char *previous_response_id;	/* Responses; NULL: none */
};

/*
 * Parse and validate a Messages (count_tokens: its count_tokens body),
 * Responses or Embeddings request, strictly (duplicate keys refused).
 * On failure *why says what and *param names the field.
 */
enum wd_err gw_req_parse(unsigned api, bool count_tokens, const char *body,
    size_t len, struct gw_req *out, char *why, size_t whylen,
    const char **param);
void gw_req_clear(struct gw_req *r);
/*
 * The request's tool history and offered tools as a chat request, for
 * gw_tools_request.  refused gets the first provider-side tool offered
 * that agent does not list ("" when none): such a request is refused.
 */
json_t *gw_req_tools_view(const struct gw_req *r,
    const struct pol_agent *agent, char *refused, size_t rlen);
/* Take out of the request the offered tools the policy took out of the
 * view (on_violation: strip). */
void gw_req_tools_apply(struct gw_req *r, json_t *view);
/* format.read_request of the other formats: gw_req_parse into a
 * gw_chat (which then owns root). */
enum wd_err gw_messages_read_request(const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param);
enum wd_err gw_count_tokens_read_request(const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param);
enum wd_err gw_responses_read_request(const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param);
enum wd_err gw_embeddings_read_request(const char *body, size_t len,
    struct gw_chat *out, char *why, size_t whylen, const char **param);
/* A gw_req over a chat-shaped request of another format (borrowed). */
void gw_req_of_chat(const struct gw_chat *c, struct gw_req *out);

/* ---- audit logs of several replicas (cli_export_replicas.c) ---- */

/* `warden audit export DIR DIR... -o FILE`: each log verified, one
 * export ordered by time.  0, 1 (a log invalid), 2 (cannot). */
int gw_audit_export_replicas(char **dirs, size_t n,
    const struct aud_export_opts *o, const struct aud_verify_opts *vo,
    const char *outpath, FILE *msgs);
bool gw_export_is_replicas(const char *path);
/* verify-export of such a file: each replica's rows as its own export. */
int gw_verify_export_replicas(const char *path,
    const struct aud_verify_opts *vo, FILE *out);

/* ---- a whole answer read without a tree (json_scan.c) ---- */

/* A member of the answer's outermost object: its text and its kind (the
 * first byte: '{', '[', '"', 't', 'f', 'n', or '0' for a number); p NULL
 * when absent. */
struct gw_json_span {
	const char *p;
	size_t len;
	char kind;
};

struct gw_json_top {
	bool object;			/* the outermost value is an object */
	struct gw_json_span usage, error;
};

/* True when buf is what json_loadb(buf, len, 0) accepts (an object or an
 * array, strict UTF-8, ...); top says which, and where "usage" and
 * "error" are (the last of duplicates, as jansson). */
bool gw_json_scan_answer(const char *buf, size_t len, struct gw_json_top *top);

/* json_loadb(buf, len, flags, err), faster: the tree of what the
 * scanner accepts, built in one pass (flags 0 or JSON_REJECT_DUPLICATES);
 * whatever it refuses goes to jansson, for the same answer and error. */
json_t *gw_json_load(const char *buf, size_t len, size_t flags,
    json_error_t *err);

/* What gw_chat_parse reads of a chat request. */
struct gw_chat_facts {
	const char *model;		/* into the body, without escapes */
	size_t model_len;		/* 1..256 */
	bool stream;
	bool messages;			/* a non-empty array of objects, each
					 * with a string "role" */
	/* max_completion_tokens, max_tokens: a non-negative integer's
	 * value, -1 when absent or not one (as gw_limits_max_tokens). */
	long long max_completion_tokens, max_tokens;
};

/*
 * A chat request read without a tree: true when buf is what
 * gw_json_load(JSON_REJECT_DUPLICATES) accepts and gw_chat_parse would
 * take (model a string of 1 to 256 bytes, messages as above, stream a
 * boolean or null, tools an array or null).  false says only "not
 * sure": the tree's way decides, and gives the error (unusual requests,
 * such as keys with escapes or objects of more than 32 keys, go that way
 * too).  fuzz_chat checks that every request taken here is taken there
 * with the same facts.
 */
bool gw_json_scan_chat(const char *buf, size_t len, struct gw_chat_facts *f);

#endif /* GW_INT_H */
