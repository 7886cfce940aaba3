/*
 * mcp.h - private to gateway/: the MCP gateway (issue 15).  /mcp/SERVER
 * proxies MCP's Streamable HTTP transport (2025-11-25, and the stateless
 * 2026-07-28 one) to the servers `mcp_servers:` declares, and enforces
 * the agents' tool rules where the tools run.
 *
 * mcp_rpc.c reads JSON-RPC strictly, mcp_pins.c keeps tool definition
 * fingerprints, mcp.c is the endpoint, cli_mcp.c the `warden mcp` command.
 */
#ifndef GW_MCP_H
#define GW_MCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "common/wd.h"
#include "policy/pol.h"

#define GW_MCP_MAX_BODY (1u << 20)	/* one message, either way */
#define GW_MCP_MAX_VALUES 65536u	/* JSON values in one message */
#define GW_MCP_MAX_METHOD 128

/* JSON-RPC error codes warden answers with. */
#define GW_RPC_PARSE (-32700)
#define GW_RPC_INVALID (-32600)
#define GW_RPC_HEADER_MISMATCH (-32020)	/* 2026-07-28: headers vs body */
#define GW_RPC_POLICY (-32010)		/* warden: a rule refused it */

enum gw_rpc_kind { GW_RPC_REQUEST, GW_RPC_NOTIFICATION, GW_RPC_RESPONSE };

/* One JSON-RPC message, read strictly. */
struct gw_rpc {
	json_t *root;			/* owned */
	enum gw_rpc_kind kind;
	const char *method;		/* requests and notifications */
	json_t *id;			/* borrowed; NULL for notifications */
	json_t *params;			/* borrowed object, or NULL */
	json_t *result;			/* responses: one of result/error */
	json_t *error;
};

/*
 * Read one JSON-RPC 2.0 message: an object (batches are refused: MCP
 * dropped them in 2025-06-18), no duplicate keys, no unknown members, at
 * most GW_MCP_MAX_BODY bytes and GW_MCP_MAX_VALUES values.  WD_EPARSE
 * (*code: -32700 or -32600, why says what) otherwise.
 */
enum wd_err gw_rpc_read(const char *buf, size_t len, struct gw_rpc *out,
    int *code, char *why, size_t whylen);
void gw_rpc_clear(struct gw_rpc *m);

/* ---- tool definition pins (mcp_pins.c) ---- */

enum gw_pin_state {
	GW_PIN_OK,			/* as pinned (or first seen: pinned now) */
	GW_PIN_CHANGED,			/* differs: pending until approved */
	GW_PIN_ERROR,			/* the pin file cannot be read or written */
	GW_PIN_UNSEEN,			/* never listed: nothing pinned */
};

/* SHA-256 hex of the canonical JSON of a tool definition's name,
 * description, inputSchema, outputSchema and annotations. */
void gw_pin_fingerprint(json_t *tool, char out[65]);
/* The pin file: DIR/mcp-pins.json, DIR = mcp_pins_dir, else the audit
 * directory (audit_dir, serve's --audit-dir, if not NULL; else audit.dir). */
void gw_pin_path(const struct pol_snapshot *snap, const char *audit_dir,
    char *out, size_t len);
/* Check (and on first sight pin) a definition; records a pending one.
 * *wrote (if not NULL): this call pinned it, or made it pending. */
enum gw_pin_state gw_pin_check(const char *path, const char *server,
    const char *tool, const char *fp, bool *wrote);
/* tools/call carries no definition: OK when the tool is pinned and no
 * changed definition waits for approval. */
enum gw_pin_state gw_pin_status(const char *path, const char *server,
    const char *tool);
/* `warden mcp list` / `warden mcp approve SERVER TOOL`.  An approval
 * that worked gives the fingerprints it replaced and pinned. */
int gw_pin_list(const char *path, FILE *out);
int gw_pin_approve(const char *path, const char *server, const char *tool,
    char from[65], char to[65], FILE *out);

/* ---- the endpoint (mcp.c) ---- */

struct gw_conn;
struct gw_http_req;
struct evbuffer;

/* /mcp/SERVER: any method; body ownership moves here. */
void gw_mcp(struct gw_conn *c, struct gw_http_req *req,
    struct evbuffer *body);

#endif /* GW_MCP_H */
