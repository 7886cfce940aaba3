/*
 * errors.c - the error catalogue (errors.h): one row per code.
 */
#include "common/errors.h"

#include <string.h>

#define IRE "invalid_request_error"
#define SE "server_error"
#define PV "policy_violation"
#define RL "rate_limit_exceeded"
#define PE "permission_error"

static const struct wd_errdef table[WD_CODE_COUNT] = {
	[WD_CODE_NONE] = { NULL, 200, NULL, NULL, true },
	[WD_CODE_INVALID_REQUEST] = { "invalid_request", 400, IRE,
		"invalid request body", true },
	[WD_CODE_HTTP] = { "bad_http", 400, IRE, "malformed request", true },
	[WD_CODE_INTERNAL] = { "internal", 500, SE, "internal error", true },
	[WD_CODE_INVALID_API_KEY] = { "invalid_api_key", 401, IRE,
		"missing or unknown API key: send 'Authorization: Bearer "
		"<virtual key>'", false },
	[WD_CODE_METRICS_KEY_REQUIRED] = { "metrics_key_required", 401, IRE,
		"/metrics answers loopback callers, or 'Authorization: Bearer "
		"<metrics key>'", false },
	[WD_CODE_METRICS_FORBIDDEN] = { "metrics_forbidden", 403, PE,
		"this key may not read /metrics", false },
	[WD_CODE_ADMIN_LOOPBACK_ONLY] = { "admin_loopback_only", 403, PE,
		"admin endpoints answer only on loopback", false },
	[WD_CODE_UNKNOWN_URL] = { "unknown_url", 404, IRE, "unknown path",
		false },
	[WD_CODE_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405, IRE,
		"method not allowed", false },
	[WD_CODE_RELOAD_FAILED] = { "reload_failed", 422, IRE, "reload failed",
		false },
	[WD_CODE_TOO_MANY_JSON_VALUES] = { "too_many_json_values", 413, IRE,
		"request body has too many JSON values (server.max_json_values)",
		false },
	[WD_CODE_BODY_NOT_EXPECTED] = { "body_not_expected", 413, IRE,
		"this endpoint takes no request body", false },
	[WD_CODE_TOO_MANY_IN_FLIGHT] = { "too_many_requests_in_flight", 429, RL,
		"this key has too many requests in flight", false },
	[WD_CODE_SERVER_BUSY] = { "server_busy", 503, SE,
		"the server is busy; retry later", false },
	[WD_CODE_DUPLICATE_POLICY_HEADER] = { "duplicate_policy_header", 400,
		IRE, "a policy header was given more than once", false },
	[WD_CODE_INVALID_DATA_CLASS] = { "invalid_data_class", 400, IRE,
		"bad X-Warden-Data-Class", false },
	[WD_CODE_DATA_CLASS_NOT_OMITTABLE] = { "data_class_not_omittable", 400,
		IRE, "X-Warden-Data-Class may not omit this class", false },
	[WD_CODE_INVALID_SUBJECT_REGION] = { "invalid_subject_region", 400, IRE,
		"bad X-Warden-Subject-Region", false },
	[WD_CODE_SUBJECT_REGION_WIDENING] = { "subject_region_widening", 400,
		IRE, "X-Warden-Subject-Region may not widen the key's region",
		false },
	[WD_CODE_RESIDENCY] = { "residency", 403, PV, "no compliant route",
		false },
	[WD_CODE_RETENTION] = { "retention", 403, PV, "no compliant route",
		false },
	[WD_CODE_MODEL_NOT_FOUND] = { "model_not_found", 404, IRE,
		"the model does not exist", false },
	[WD_CODE_AGENT_MISMATCH] = { "agent_mismatch", 403, PV,
		"this key belongs to another agent", false },
	[WD_CODE_UNKNOWN_AGENT] = { "unknown_agent", 400, IRE,
		"unknown agent", false },
	[WD_CODE_INVALID_TOOL_CALL] = { "invalid_tool_call", 400, IRE,
		"a tool call in the history is malformed", false },
	[WD_CODE_TOOL_POLICY] = { "tool_policy", 403, PV,
		"the agent's tool policy refuses this", false },
	[WD_CODE_SESSION_REQUIRED] = { "session_required", 400, IRE,
		"this agent requires X-Warden-Session", false },
	[WD_CODE_INVALID_SESSION] = { "invalid_session", 400, IRE,
		"bad X-Warden-Session", false },
	[WD_CODE_SESSION_LIMIT] = { "session_limit", 429, RL,
		"the agent's sessions are all live", false },
	[WD_CODE_SESSION_STORE] = { "session_store", 503, SE,
		"the session store cannot answer", false },
	[WD_CODE_OUT_OF_MEMORY] = { "out_of_memory", 500, SE, "out of memory",
		false },
	[WD_CODE_UPSTREAM_ERROR] = { "upstream_error", 502, SE,
		"the provider failed", false },
	[WD_CODE_UPSTREAM_AUTH] = { "upstream_auth", 502, SE,
		"the provider refused warden's credential", false },
	[WD_CODE_BAD_UPSTREAM_RESPONSE] = { "bad_upstream_response", 502, SE,
		"the provider's answer could not be read", false },
	[WD_CODE_UPSTREAM_TOO_LARGE] = { "upstream_too_large", 502, SE,
		"the provider's answer exceeded upstream.max_response_bytes",
		false },
	[WD_CODE_UPSTREAM_TIMEOUT] = { "upstream_timeout", 504, SE,
		"the provider did not answer in time", false },
	[WD_CODE_UPSTREAM_RATE_LIMITED] = { "upstream_rate_limited", 429, RL,
		"every route answered 429", false },
	[WD_CODE_AUDIT_UNAVAILABLE] = { "audit_unavailable", 503, SE,
		"the audit log cannot be written; warden refuses traffic until "
		"it can", false },
	[WD_CODE_CREDENTIAL_UNAVAILABLE] = { "credential_unavailable", 500, SE,
		"the credential for this route is not available", false },
	[WD_CODE_BAD_ROUTE] = { "bad_route", 500, SE, "route URL too long",
		false },
	[WD_CODE_CLIENT_GONE] = { "client_gone", 499, NULL, "the client left",
		true },
	[WD_CODE_TOO_MANY_TEXTS] = { "too_many_texts", 413, IRE,
		"the request holds more text values than content detection "
		"scans", false },
	[WD_CODE_DETECTOR_UNAVAILABLE] = { "detector_unavailable", 503, SE,
		"content detection cannot run; the request was not sent", false },
	[WD_CODE_REDACTION_FAILED] = { "redaction_failed", 500, SE,
		"the request could not be redacted; it was not sent", false },
	[WD_CODE_DETECTED] = { "detected_<detector>", 403, PV,
		"a content detector found what it looks for", false, true },
	[WD_CODE_UNSUPPORTED_FOR_ROUTE] = { "unsupported_for_route", 400, IRE,
		"the route cannot express this request faithfully", false },
	[WD_CODE_API_NOT_SERVED] = { "api_not_served", 400, IRE,
		"no route of this key serves the model in this format", false },
	[WD_CODE_UNKNOWN_RESPONSE] = { "unknown_response", 404, IRE,
		"previous_response_id names no response warden knows", false },
	[WD_CODE_RESPONSE_ROUTE] = { "response_route", 403, PV,
		"the route that holds previous_response_id is not compliant "
		"for this request", false },
	[WD_CODE_LIMIT_EXCEEDED] = { "limit_exceeded", 429, RL,
		"a limit of the rules is reached", false },
	[WD_CODE_STATE_STORE_UNAVAILABLE] = { "state_store_unavailable", 503,
		SE, "the shared state store (Redis) cannot be reached; limits and "
		"sessions fail closed", false },
	[WD_CODE_NO_PRICE] = { "no_price_for_model", 403, PV,
		"a cost limit applies and the model has no price in the rules",
		false },
};

const struct wd_errdef *
wd_errdef(enum wd_code code)
{
	if ((unsigned)code >= WD_CODE_COUNT || table[code].code == NULL)
		return &table[WD_CODE_INTERNAL];
	return &table[code];
}

const char *
wd_code_wire(enum wd_code code)
{
	const struct wd_errdef *d = wd_errdef(code);

	return d->wire_null ? NULL : d->code;
}

enum wd_code
wd_code_find(const char *name)
{
	for (int i = 1; i < WD_CODE_COUNT; i++) {
		const char *c = table[i].code;

		if (c == NULL)
			continue;
		if (table[i].family ? strncmp(name, c, strcspn(c, "<")) == 0 &&
		    name[strcspn(c, "<")] != '\0' : strcmp(c, name) == 0)
			return (enum wd_code)i;
	}
	return WD_CODE_NONE;
}
