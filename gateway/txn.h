/*
 * txn.h - private to the chat transaction (proxy.c, txn_record.c): the
 * state of one request from dispatch to its one end.
 *
 * struct txn owns everything of the request: the snapshot and credential
 * references, the body, the upstream transfer, the answer buffers, the
 * tool-policy state and what its audit record needs.
 */
#ifndef GW_TXN_H
#define GW_TXN_H

#include "audit/aud.h"
#include "gateway/gw_int.h"
#include "gateway/limits.h"
#include "gateway/gw_detect.h"
#include "gateway/provider.h"

struct txn {
	struct gw_conn *conn;		/* NULL once the client left */
	struct aud_log *audit;		/* where the record goes */
	char reqid[65];
	struct pol_snapshot *snap;	/* our reference */
	struct gw_creds *creds;		/* ours too: the snapshot's credentials */
	const struct pol_tenant *tenant;
	struct pol_caller caller;	/* who the key is */
	struct gw_tools tools;		/* agent tool policy, if any */
	struct gw_tools_deny tool_deny;	/* why a stream was cut */
	bool tool_violation;
	struct evbuffer *body;		/* the request body (maybe rewritten) */
	struct gw_chat chat;
	struct pol_decision dec;
	const struct pol_provider **cand;	/* dec.routes */
	size_t ncand;
	size_t next;			/* index of the next route to try */
	int attempts;
	const struct pol_provider *route;	/* current attempt */
	struct gw_up_xfer *xfer;
	int up_status;
	uint64_t attempt_us;
	bool streaming;			/* answer headers went to the client */
	bool too_big;			/* answer or event over a limit */
	struct evbuffer *resp;		/* buffered answer, or SSE remainder */
	struct gw_sse sse;
	char up_ctype[128];
	struct gw_agent_stream astream;	/* an agent's stream, as read */
	bool bad_ctype;			/* a stream answered as not SSE */
	/* For the audit record. */
	uint64_t started_us;
	int final_status;
	const char *final_code;
	bool decided;
	json_t *attempt_log;		/* [{route, status|error}] */
	json_t *usage;
	char req_hmac[AUD_HASH_HEX + 1];
	bool recorded;			/* record() ran */
	/* A stream's record was written before its first byte (issue 11);
	 * its end is a `stream_end` record that names the decision. */
	bool stream_opened;
	bool stream_closed;		/* stream_end written (or queued) */
	bool open_failed;		/* the record could not be written */
	bool audit_failed;		/* the log failed mid-stream */
	struct evbuffer *stream_copy;	/* what a stream sent, for keep: full */
	bool refused_late;		/* tool policy refused after allow */
	struct aud_hmac *resp_hmac;
	char reqid_hdr[96];
	struct gw_detect det;		/* what the request's text held */
	struct gw_detect_answer det_ans;	/* detectors watching answers */
	/* Bedrock Converse routes (converse.c): the translated request body
	 * of the current attempt, and the stream translator. */
	char *up_body;
	size_t up_body_len;
	struct gw_converse_stream *conv;
	/* Limits and budgets (issue 16): what the request reserved, and the
	 * x-ratelimit-* headers its answers carry. */
	struct gw_limits lim;
	bool strip_usage;		/* usage asked for; the client did not */
	struct gw_out_hdr lim_hdrs[7];
	char lim_buf[7][32];
	size_t nlim_hdrs;
};

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
/* The `request` record of a stream about to begin; on WD_OK the stream
 * may go out.  Otherwise the record (amended: 503, audit_unavailable)
 * waits for the writer's retry and the client gets a 503. */
enum wd_err gw_txn_record_stream(struct txn *t);

#endif /* GW_TXN_H */
