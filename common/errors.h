/*
 * errors.h - the one catalogue of the errors warden answers on the wire:
 * each code with its HTTP status, its OpenAI error type and a default
 * message.  The gateway, the policy (a deny names its code) and the tool
 * policy take codes from here; no call site spells a wire code.  The
 * README's errors table is checked against this table by a unit test
 * (tests/unit/test_errors.c).
 *
 * Only ever append to enum wd_code; every value has a row in errors.c.
 */
#ifndef WD_ERRORS_H
#define WD_ERRORS_H

#include <stdbool.h>

enum wd_code {
	WD_CODE_NONE = 0,		/* no error */
	/* Generic ones, whose wire code is null (README: no code). */
	WD_CODE_INVALID_REQUEST,	/* a bad body; param names the field */
	WD_CODE_HTTP,			/* malformed HTTP; status from the parser */
	WD_CODE_INTERNAL,		/* out of memory, cannot start */
	/* Keys and endpoints. */
	WD_CODE_INVALID_API_KEY,
	WD_CODE_METRICS_KEY_REQUIRED,
	WD_CODE_METRICS_FORBIDDEN,
	WD_CODE_ADMIN_LOOPBACK_ONLY,
	WD_CODE_UNKNOWN_URL,
	WD_CODE_METHOD_NOT_ALLOWED,
	WD_CODE_RELOAD_FAILED,
	/* Admission. */
	WD_CODE_TOO_MANY_JSON_VALUES,
	WD_CODE_BODY_NOT_EXPECTED,
	WD_CODE_TOO_MANY_IN_FLIGHT,
	WD_CODE_SERVER_BUSY,
	/* Policy. */
	WD_CODE_DUPLICATE_POLICY_HEADER,
	WD_CODE_INVALID_DATA_CLASS,
	WD_CODE_DATA_CLASS_NOT_OMITTABLE,
	WD_CODE_INVALID_SUBJECT_REGION,
	WD_CODE_SUBJECT_REGION_WIDENING,
	WD_CODE_RESIDENCY,
	WD_CODE_RETENTION,
	WD_CODE_MODEL_NOT_FOUND,
	/* Agents and their tools. */
	WD_CODE_AGENT_MISMATCH,
	WD_CODE_UNKNOWN_AGENT,
	WD_CODE_INVALID_TOOL_CALL,
	WD_CODE_TOOL_POLICY,
	WD_CODE_SESSION_REQUIRED,
	WD_CODE_INVALID_SESSION,
	WD_CODE_SESSION_LIMIT,
	WD_CODE_SESSION_STORE,
	WD_CODE_OUT_OF_MEMORY,
	/* Upstream and audit. */
	WD_CODE_UPSTREAM_ERROR,
	WD_CODE_UPSTREAM_AUTH,
	WD_CODE_BAD_UPSTREAM_RESPONSE,
	WD_CODE_UPSTREAM_TOO_LARGE,
	WD_CODE_UPSTREAM_TIMEOUT,
	WD_CODE_UPSTREAM_RATE_LIMITED,
	WD_CODE_AUDIT_UNAVAILABLE,
	WD_CODE_CREDENTIAL_UNAVAILABLE,
	WD_CODE_BAD_ROUTE,
	/* Records only: never sent. */
	WD_CODE_CLIENT_GONE,
	/* Content detection (issue 20). */
	WD_CODE_TOO_MANY_TEXTS,
	WD_CODE_DETECTOR_UNAVAILABLE,
	WD_CODE_REDACTION_FAILED,
	WD_CODE_DETECTED,		/* a family: detected_<detector> */
	/* Provider kinds (issue 14). */
	WD_CODE_UNSUPPORTED_FOR_ROUTE,
	/* Formats (issue 13). */
	WD_CODE_API_NOT_SERVED,		/* no route speaks the format */
	WD_CODE_UNKNOWN_RESPONSE,	/* previous_response_id not known */
	WD_CODE_RESPONSE_ROUTE,		/* its route is not compliant now */
	/* Limits and budgets (issue 16). */
	WD_CODE_LIMIT_EXCEEDED,
	WD_CODE_STATE_STORE_UNAVAILABLE,
	WD_CODE_NO_PRICE,
	WD_CODE_COUNT			/* not a code: the table's length */
};

struct wd_errdef {
	const char *code;		/* the name in records; on the wire unless
					 * wire_null */
	int status;			/* HTTP status */
	const char *type;		/* OpenAI error type; NULL: never sent */
	const char *message;		/* default message */
	bool wire_null;			/* the wire's "code" is null */
	/* A family of codes: code is "prefix<member>" and the wire names
	 * a member (the caller gives its name). */
	bool family;
};

/* The row of code (WD_CODE_INTERNAL's for a value out of range). */
const struct wd_errdef *wd_errdef(enum wd_code code);
/* The code as the wire says it: NULL for the generic ones. */
const char *wd_code_wire(enum wd_code code);
/* The code whose name is name (or, for a family, starts with its
 * prefix), or WD_CODE_NONE. */
enum wd_code wd_code_find(const char *name);

#endif /* WD_ERRORS_H */
