/*
 * fuzz_jsonrpc.c - the strict JSON-RPC reader of the MCP gateway
 * (gw_rpc_read).  Properties: what it accepts is one object with
 * "jsonrpc":"2.0" and exactly the shape of its kind; what it refuses
 * carries -32700 or -32600 and a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_rpc m;
	char why[256] = "";
	int code = 0;

	if (gw_rpc_read((const char *)data, size, &m, &code, why,
	    sizeof(why)) != WD_OK) {
		if ((code != -32700 && code != -32600) || why[0] == '\0')
			abort();
		if (m.root != NULL)
			abort();
		return 0;
	}
	if (!json_is_object(m.root) || strcmp(json_string_value(
	    json_object_get(m.root, "jsonrpc")), "2.0") != 0)
		abort();
	switch (m.kind) {
	case GW_RPC_REQUEST:
		if (m.method == NULL || m.id == NULL)
			abort();
		break;
	case GW_RPC_NOTIFICATION:
		if (m.method == NULL || m.id != NULL)
			abort();
		break;
	case GW_RPC_RESPONSE:
		if (m.method != NULL || (m.result == NULL) == (m.error == NULL))
			abort();
		break;
	}
	gw_rpc_clear(&m);
	return 0;
}
