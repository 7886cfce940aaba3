/*
 * mcp_int.h - the two halves of the MCP endpoint: mcp.c, the client's
 * side (from the request to the server), calls into mcp_answer.c, the
 * server's side (every message it sends read and checked on its way to
 * the client, warden's own errors, the transaction's record and its
 * end), never the other way.  Private to those files.
 */
#ifndef GW_MCP_INT_H
#define GW_MCP_INT_H

#include "gateway/gw_int.h"
#include "gateway/gw_detect.h"
#include "gateway/mcp.h"

#define MCP_MAX_SSE_EVENT GW_MCP_MAX_BODY
/* A tools/list record names at most this many hidden tools (and counts
 * the rest): a server may list thousands. */
#define MCP_LOG_HIDDEN_MAX 64
/* The hex tag after the server's session id in the client's copy. */
#define MCP_SID_TAG 32

struct mcp_txn {
	struct gw_conn *conn;		/* NULL once the client left */
	struct gw_server *srv;
	struct pol_snapshot *snap;	/* a reference */
	struct gw_creds *creds;		/* a reference */
	const struct pol_mcp_server *m;
	const struct pol_tenant *tenant;
	const struct pol_agent *agent;
	const unsigned char *key;	/* the caller's key digest */
	char reqid[40];
	char session[129];		/* X-Warden-Session, or "" */
	char pins[4200];		/* the pin file */
	struct gw_rpc msg;		/* the client's message */
	char *out_body;			/* what goes to the server */
	size_t out_len;
	char *hdrs[8];			/* request headers for the server */
	size_t nhdrs;
	char *url;
	struct gw_up_xfer *x;
	/* The answer. */
	int status;
	bool sse, started, failed;
	char sess_id[256];		/* Mcp-Session-Id from the server */
	char client_sid[256 + 1 + MCP_SID_TAG];	/* as the client gets it */
	char fwd_sid[256];		/* the client's, checked: to the server */
	struct evbuffer *acc;		/* JSON body, or SSE bytes not yet whole */
	struct gw_sse sse_st;
	/* For its record (every message forwarded has one): a tools/call
	 * names its tool; what the message carried (sent_payload: a call's
	 * arguments) and any request's result have a digest. */
	bool is_req;
	bool is_call;
	char tool[129];			/* the server's tool name */
	const char *agent_tool;		/* borrowed from snap */
	char sent_hmac[AUD_HASH_HEX + 1];
	char result_hmac[AUD_HASH_HEX + 1];
	bool is_list;
	bool standalone;		/* a GET: the server's own stream */
	bool recorded;			/* its one record is written */
	json_t *log;			/* hidden tools, pins, refused requests,
					 * withheld notifications */
	/* Content detection (issue 20): what the client sends, before the
	 * decision; what the server says, on its way back. */
	struct gw_detect det;
	uint64_t det_classes;		/* classes what it sends carries */
	struct gw_detect_answer res;
	const char *res_code;		/* the result was withheld: why */
	char res_msg[160];
};

/* ---- mcp_answer.c ---- */

/* A JSON-RPC error as the whole answer, with HTTP status. */
void mcp_rpc_error(struct gw_conn *c, int status, json_t *id, int code,
    const char *wcode, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The transaction's record (mcp_call, mcp_list, mcp_request,
 * mcp_message; an mcp_stream for each refusal on the server's own
 * stream), once. */
void mcp_record(struct mcp_txn *t, const char *verdict, const char *rule,
    const char *why);
/* The record of a forwarded message, before its answer goes. */
void mcp_record_answer(struct mcp_txn *t, const char *why);
/* HMAC of j's canonical JSON with the payload key ("" without one). */
void mcp_digest(struct mcp_txn *t, json_t *j, char out[AUD_HASH_HEX + 1]);
void mcp_txn_free(struct mcp_txn *t);
/*
 * Mcp-Session-Id binding: the client gets "SID.TAG", TAG an HMAC of the
 * server's SID with the caller (agent, key) and the server; a request
 * naming a session must carry the TAG its own caller would get.  False
 * (and out "") when sid is too long or no key can be had.
 */
bool mcp_session_tag(const struct mcp_txn *t, const char *sid, size_t len,
    char out[MCP_SID_TAG + 1]);

/* The transfer's callbacks (struct gw_up_req). */
void mcp_on_header(void *arg, const char *line, size_t len);
void mcp_on_head(void *arg, int status, const char *ctype);
size_t mcp_on_data(void *arg, const char *data, size_t len);
void mcp_on_done(void *arg, enum wd_err err, const char *detail);
/* The client left while the server was answering. */
void mcp_client_gone(void *arg);

#endif /* GW_MCP_INT_H */
