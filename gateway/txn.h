/*
 * txn.h - private to the transaction (txn.c, txn_upstream.c,
 * txn_answer.c, txn_end.c, txn_record.c): one request from dispatch to
 * its one end.
 *
 * A transaction is one struct with one state, moved by one function,
 * gw_txn_run() (curl: multi_runsingle), through the request path:
 *
 *   ADMIT     audit health, the caller's key                  txn.c
 *   READ      format.read_request: the body's facts           txn.c
 *   DECIDE    policy, then the agent's tool policy            txn.c
 *   ATTEMPT   provider.sign + upstream: the next route        txn_upstream.c
 *   UPSTREAM  the transfer runs; nothing went out yet         txn_upstream.c
 *   STREAMING the transfer runs; a stream is going out        txn_upstream.c
 *   ANSWER    the transfer ended: the answer, or fall back    txn_answer.c
 *   END       gw_txn_finish(): record, metrics, settle, detach,
 *             answer, free -- exactly once                    txn_end.c
 *
 * A step returns the next state.  Whatever ends a transaction (an error,
 * an answer, a stream's end, the client leaving) fills t->end and moves
 * to END; nothing else answers, records or frees (relayd: relay_close).
 * Steps do not call the machine: what happens later (a transfer's end,
 * the client leaving) comes back to txn.c, which moves it on.
 *
 * struct txn owns everything of the request: the snapshot and credential
 * references, the body, the upstream transfer, the answer buffers, the
 * tool-policy state and what its audit record needs.
 */
#ifndef GW_TXN_H
#define GW_TXN_H

#include "audit/aud.h"
#include "common/errors.h"
#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"
#include "gateway/provider.h"
#include "gateway/limits.h"

/* Emptied transactions (and tool checks) a worker keeps for the next
 * requests (wd_spares). */
#define TXN_SPARES 32

enum txn_state {
	TXN_ADMIT,
	TXN_READ,
	TXN_DECIDE,
	TXN_ATTEMPT,
	TXN_UPSTREAM,
	TXN_STREAMING,
	TXN_ANSWER,
	TXN_END,
};

/* How the transaction ends: what gw_txn_finish() sends. */
enum txn_reason {
	TXN_END_ERROR,		/* an error answer: end.code, end.msg */
	TXN_END_WHOLE,		/* a whole answer: ans.buf, end.status */
	TXN_END_STREAM,		/* the stream ended as it should */
	TXN_END_STREAM_ERROR,	/* the stream broke: an error event, close */
	TXN_END_GONE,		/* the client left: nothing to send */
};

/* Why the transfer was stopped or its answer is not read (on_head and
 * on_data set it; txn_answer.c answers it). */
enum txn_cut {
	TXN_CUT_NONE,
	TXN_CUT_NOT_SSE,	/* an agent's stream answered as not SSE */
	TXN_CUT_TOO_BIG,	/* answer or event over a limit */
	TXN_CUT_NO_RECORD,	/* the stream's record could not be written */
	TXN_CUT_AUDIT,		/* the log failed mid-stream */
	TXN_CUT_TOOLS,		/* the tool policy refused mid-stream */
};

/* What the client sent, as the format read it. */
struct txn_req {
	const struct gw_format *fmt;
	struct gw_http_req *http;	/* the conn's; valid until the first wait */
	struct evbuffer *body;		/* the body (maybe rewritten) */
	struct gw_chat chat;
	/* The client's headers the format forwards (anthropic-version,
	 * -beta), as "Name: value", copied before the head goes. */
	char fwd[2][320];
	size_t nfwd;
	const struct pol_tenant *tenant;
	struct pol_caller caller;	/* who the key is */
	struct gw_detect det;		/* what the request's text held */
};

/* What policy said, and what it was said with. */
struct txn_policy {
	struct gw_lease *lease;		/* held: the two below */
	struct pol_snapshot *snap;
	struct gw_creds *creds;		/* the snapshot's */
	struct pol_decision dec;
	bool decided;
	/* The agent's tool policy: kept for an agent's request and every
	 * format read strictly (txn_checked); NULL for a plain chat one. */
	struct gw_tools *tools;
	struct gw_tools_deny deny;	/* why a stream was cut */
	struct gw_out_hdr hdrs[2];	/* X-Warden-Decision, -Policy-Version */
};

/* The current attempt at a route, and the routes left. */
struct txn_attempt {
	const struct pol_provider **cand;	/* dec.routes */
	size_t ncand;
	size_t next;			/* index of the next route to try */
	int count;
	const struct pol_provider *route;	/* current attempt */
	struct gw_up_xfer *xfer;
	int status;			/* the provider's */
	char ctype[128];
	uint64_t started_us;
	enum txn_cut cut;
	/* A Bedrock Converse route (converse.c): this attempt's request
	 * body, translated; NULL: the client's body goes as it is. */
	char *body;
	size_t body_len;
	enum wd_err err;		/* how the transfer ended */
	char detail[256];
	char reqid_hdr[96];
};

/* The answer as it is read and sent. */
struct txn_answer {
	struct evbuffer *buf;		/* buffered answer, or SSE remainder */
	struct gw_sse sse;
	struct gw_agent_stream *astream;	/* a checked stream, as read;
					 * NULL unless txn_checked() */
	bool streamed;			/* its head went to the client */
	struct evbuffer *copy;		/* what a stream sent, for keep: full */
	/* The answer's usage: a tree, or (a whole answer's, when it is
	 * short) its text, made a tree only where one is needed (limits;
	 * gw_txn_usage), else written into the record as it is. */
	json_t *usage;
	char usage_text[GW_USAGE_TEXT_MAX];
	size_t usage_len;
	struct aud_hmac *hmac;		/* its digest */
	struct gw_detect_answer det;	/* detectors watching answers */
	struct gw_converse_stream *conv;	/* a Converse stream, translated */
};

/* What the audit record needs, and how far it got. */
struct txn_audit {
	struct aud_log *log;		/* where the record goes */
	char reqid[65];
	uint64_t started_us;
	struct gw_attempt attempts[GW_ATTEMPTS_MAX];	/* errors owned */
	size_t nattempts;
	char req_hmac[AUD_HASH_HEX + 1];
	bool recorded;			/* the record (or a stream's first) */
	/* A stream's record was written before its first byte (issue 11);
	 * its end is a `stream_end` record that names the decision. */
	bool stream_opened;
	bool stream_closed;		/* stream_end written (or queued) */
	bool refused_late;		/* tool policy refused after allow */
	/* req_hmac is owed: made once the request went upstream (off the
	 * path to the provider), before its body is rewritten, or at the
	 * record, whichever comes first (gw_txn_digest_request). */
	bool req_hmac_due;
};

/* The end: filled by whoever ends the transaction, read by gw_txn_finish. */
struct txn_end {
	enum txn_reason reason;
	int status;			/* sent (a stream's: 200; gone: 499) */
	enum wd_code code;		/* WD_CODE_NONE for an answer */
	const char *name;		/* the code's wire name when it is one of a
					 * family's (a detector's detected_<id>);
					 * NULL: the catalogue's */
	const char *param;		/* WD_CODE_INVALID_REQUEST: the field */
	int retry_after_s;		/* > 0: Retry-After */
	char msg[512];
	/* Ended in this turn of the worker's loop; its record and answer
	 * wait for the turn's end (gw_txn_flush_ended). */
	bool queued;
	struct txn *next;		/* the worker's list of those */
};

struct txn {
	enum txn_state state;
	struct gw_conn *conn;		/* NULL once the client left */
	struct gw_worker *w;		/* whose loop it runs in */
	struct txn_req req;
	struct txn_policy pol;
	struct txn_attempt up;
	struct txn_answer ans;
	struct txn_audit audit;
	struct txn_end end;
	/* Limits and budgets (issue 16): what the request reserved, and the
	 * answer's headers that say where its limits stand. */
	struct txn_limits {
		struct gw_limits *l;	/* NULL: no limit applies */
		bool strip_usage;	/* usage asked for; the client did not */
		struct gw_out_hdr hdrs[GW_CONN_MAX_STICKY];
		char buf[7][32];
	} lim;
};

/* Move t on until it waits for the provider or has ended (then t is
 * gone). */
void gw_txn_run(struct txn *t);

/* ---- the end (txn_end.c) ---- */

/* END: settle, record, metrics, detach, answer, free; t is gone (or,
 * inside a turn of its worker's loop, queued until the turn's end). */
void gw_txn_finish(struct txn *t);
/* End with the catalogue's error code (fmt NULL: its message); returns
 * TXN_END for a step to return. */
enum txn_state gw_txn_error(struct txn *t, enum wd_code code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* End with a tool-policy refusal (its status, code, Retry-After). */
enum txn_state gw_txn_refuse(struct txn *t, const struct gw_tools_deny *d);
/* End a stream that broke after it began with an error event. */
enum txn_state gw_txn_stream_error(struct txn *t, enum wd_code code,
    const char *msg);

/* ---- the steps after the decision (txn_upstream.c, txn_answer.c) ---- */

/* ATTEMPT: start the next route (on_done is called when its transfer
 * ends), or end with end's error. */
enum txn_state gw_txn_attempt(struct txn *t, void (*on_done)(void *arg,
    enum wd_err err, const char *detail));
/* The transfer ended: note how, for ANSWER and the record. */
void gw_txn_transfer_ended(struct txn *t, enum wd_err err,
    const char *detail);
/* The client's output drained: a paused transfer goes on. */
void gw_txn_drained(struct txn *t);
/* ANSWER: the transfer ended; read and send, or fall back (txn_answer.c). */
enum txn_state gw_txn_answer(struct txn *t);

/* The content detectors that watch answers, on one event (or the whole
 * answer): false when one fired (or cannot run); t->pol.deny says why,
 * never what was found. */
bool gw_txn_answer_clean(struct txn *t, const char *ev, size_t n,
    bool whole);
/* What a stream sends: into the answer's digest, copy and usage. */
void gw_txn_note_stream(struct txn *t, struct evbuffer *out);

/*
 * The transaction's one audit record (at most once; later calls do
 * nothing).  WD_EIO: the log is failing; the record, amended to say the
 * answer was withheld, waits for the writer's retry.
 *
 * A stream is recorded twice, never with two decisions: its `request`
 * record (decision, route, status 200) by gw_txn_record_stream() before
 * the first byte goes out, and, from the next gw_txn_record() call on,
 * one `stream_end` record that names the same decision_id with how the
 * stream ended (status, code, usage, the answer's digest, tool log).
 */
enum wd_err gw_txn_record(struct txn *t);
/* The request's payload digest, if owed, from the body as it is now. */
void gw_txn_digest_request(struct txn *t);
/* The records of n (at most AUD_APPEND_MAX) transactions that ended in one
 * turn of their worker's loop, written together; rcs[i] is what
 * gw_txn_record(ts[i]) would return. */
void gw_txn_record_many(struct txn **ts, size_t n, enum wd_err *rcs);
/* The `request` record of a stream about to begin; on WD_OK the stream
 * may go out.  Otherwise the record (amended: 503, audit_unavailable)
 * waits for the writer's retry and the client gets a 503. */
enum wd_err gw_txn_record_stream(struct txn *t);
/* An attempt at t->up.route, for the record: status 0 for none, error
 * (copied) NULL for none. */
void gw_txn_note_attempt(struct txn *t, int status, const char *error);
void gw_txn_attempts_clear(struct txn *t);
/* The answer's usage as a tree (made from its text on first use), or
 * NULL: none, or out of memory. */
json_t *gw_txn_usage(struct txn *t);

/* Is the answer read strictly and re-serialized?  An agent's always;
 * every request of the formats other than chat too (their answers carry
 * the ids and calls warden must see). */
static inline bool
txn_checked(const struct txn *t)
{
	return (t->pol.tools != NULL && t->pol.tools->agent != NULL) ||
	    t->req.fmt != &gw_format_chat;
}

#endif /* GW_TXN_H */
