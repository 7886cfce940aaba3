/*
 * pol.h - the policy module: loads the YAML rules file into an immutable,
 * reference-counted snapshot, and answers questions about it.
 *
 * The snapshot owns everything it points to.  The gateway borrows it per
 * request (pol_snapshot_ref/unref); nothing in it changes after load, so
 * worker threads read it without locks.  Reload builds a new snapshot.
 *
 * Called by gateway/ (serve, check) and by the CLI.
 */
#ifndef POL_H
#define POL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/wd.h"

/* Gateway settings: the `server:` section. */
struct pol_server {
	char *listen;			/* ADDR:PORT */
	int workers;			/* 0: one per core */
	size_t max_body_bytes;		/* request body limit (413) */
	size_t max_header_bytes;	/* request head limit (431) */
	size_t max_headers;		/* header count limit (431) */
	int header_timeout_ms;		/* whole head must arrive by then (408) */
	int body_timeout_ms;		/* whole body must arrive by then (408) */
	int idle_timeout_ms;		/* keep-alive idle, and stalled writes */
	int shutdown_grace_ms;		/* in-flight requests may finish */
	size_t max_connections;		/* open client connections per worker */
	size_t max_inflight;		/* chat requests per worker, from head
					 * to answer's end (503 server_busy) */
	size_t max_inflight_per_key;	/* the same per virtual key, across
					 * workers (429) */
	size_t max_json_values;		/* values in one request body (413) */
	unsigned char (*metrics_keys)[32];	/* digests: may read /metrics */
	size_t nmetrics_keys;
};

/* Upstream settings: the `upstream:` section. */
#define POL_MAX_ATTEMPTS 16
struct pol_upstream {
	int connect_timeout_ms;
	int first_byte_timeout_ms;	/* until the answer's status line */
	int idle_timeout_ms;		/* max silence inside an answer */
	int total_timeout_ms;		/* whole transfer */
	int max_attempts;		/* routes tried per request, up to
					 * POL_MAX_ATTEMPTS */
	size_t max_response_bytes;	/* non-streaming answer limit */
	size_t max_sse_event_bytes;	/* one SSE event in a stream */
	char *proxy;			/* explicit HTTP proxy URL, or NULL:
					 * none (the environment's is never
					 * used) */
	bool curl_only;			/* http_client: curl */
};

/*
 * A set of countries: one bit per ISO 3166-1 alpha-2 code (26 * 26 bits).
 * Jurisdictions compile to these, so "is this route's country allowed"
 * is one bit test.
 */
#define POL_CSET_WORDS 11
struct pol_cset {
	uint64_t w[POL_CSET_WORDS];
};

int pol_country_index(const char *code);	/* -1 if not AA..ZZ */
void pol_cset_add(struct pol_cset *s, int idx);
bool pol_cset_has(const struct pol_cset *s, int idx);

struct pol_jurisdiction {
	char *name;
	struct pol_cset set;		/* resolved: nested sets flattened */
};

/* What warden itself keeps of prompts and answers, least first. */
enum pol_keep {
	POL_KEEP_NONE = 0,
	POL_KEEP_HASH,
	POL_KEEP_REDACTED,
	POL_KEEP_FULL,
};
const char *pol_keep_name(enum pol_keep k);

#define POL_MAX_CLASSES 64	/* data classes: a uint64_t mask */

enum pol_rule_kind {
	POL_RULE_RESIDENCY = 1,		/* require.provider_country */
	POL_RULE_RETENTION = 2,		/* require.retention.* */
	POL_RULE_KEEP = 4,		/* keep: what warden stores */
};

struct pol_rule {
	char *id;
	unsigned kinds;			/* enum pol_rule_kind bits */
	/* when: all given conditions must hold; absent ones always do. */
	uint64_t when_classes;		/* any of these; 0: any request */
	bool has_when_region;
	struct pol_cset when_region;	/* subject region within this */
	const struct pol_tenant **when_tenants;	/* NULL: any tenant */
	size_t nwhen_tenants;
	/* require: */
	bool has_country;
	struct pol_cset country;	/* route country must be in it */
	char *country_text;		/* as written, for messages */
	/* Residency record requirements (issue 14); each on its own. */
	bool has_processing, has_storage, has_abuse;
	struct pol_cset processing, storage, abuse_storage;
	char *processing_text, *storage_text, *abuse_text;
	bool require_dpf;
	bool require_zdr;
	int max_days;			/* -1: no cap */
	/* keep: */
	bool has_keep;
	enum pol_keep keep;
	int keep_ttl_days;		/* -1: unset */
	char *legal_basis;		/* of the transfers it allows; NULL: none */
	size_t line;			/* where it was written, for messages */
};
/* What a route's deployment promises about where it processes. */
enum pol_deployment {
	POL_DEPLOY_UNSET = 0,		/* not declared: as regional */
	POL_DEPLOY_REGIONAL,
	POL_DEPLOY_DATAZONE,		/* a zone such as EU, declared in processing */
	POL_DEPLOY_GLOBAL,		/* may process anywhere: meets no residency */
};
const char *pol_deployment_name(enum pol_deployment d);

/* A provider endpoint: a "route". */
/*
 * The API formats a route speaks (`api:`, one or a list).  "openai", the
 * default, is openai-chat alone: a route gets no format it does not name.
 */
enum {
	POL_API_CHAT = 1u << 0,		/* openai-chat: /v1/chat/completions */
	POL_API_RESPONSES = 1u << 1,	/* openai-responses: /v1/responses */
	POL_API_EMBEDDINGS = 1u << 2,	/* openai-embeddings: /v1/embeddings */
	POL_API_MESSAGES = 1u << 3,	/* anthropic-messages: /v1/messages */
};

/* The bit of a format name (0: none), and the name of a single bit. */
unsigned pol_api_bit(const char *name);
const char *pol_api_name(unsigned bit);

struct pol_provider {
	char *id;
	char *api;			/* as written, canonical: "openai" or
					 * "openai-chat,anthropic-messages" */
	unsigned apis;			/* POL_API_* */
	char *base_url;			/* ends without '/' */
	char country[3];		/* ISO 3166-1 alpha-2 */
	bool zdr;			/* zero data retention contract */
	int retention_days;		/* -1: unknown */
	char *legal_basis;		/* of a transfer there; NULL: not named */
	char *credential;		/* name of a sealed secret */
	char **models;
	size_t nmodels;
	int cidx;			/* pol_country_index(country) */
	/*
	 * Residency record (issue 14): where the route processes, stores,
	 * and keeps abuse-monitoring data.  A set holds every country the
	 * place may mean (a zone like EU is all of its members); one that
	 * was not declared is "anywhere" (every bit set), so no rule that
	 * asks about it is met.  `country: X` is processing and storage X.
	 */
	struct pol_cset processing, storage, abuse_storage;
	char *processing_text, *storage_text, *abuse_text;	/* as written */
	enum pol_deployment deployment;
	int dpf;			/* EU-US DPF certified: 1, 0, -1 unknown */
	/* How warden reaches it (gateway/provider.c reads these). */
	char *kind;			/* openai azure bedrock vertex anthropic */
	char *auth;			/* how the credential is used; per kind */
	char *region;			/* AWS region, Vertex location */
	char *service;			/* SigV4 service name ("bedrock") */
	char *bedrock_api;		/* "openai" or "converse" */
	char *azure_deployment;		/* classic Azure path, with api_version */
	char *api_version;
	char *anthropic_version;
	char *token_url;		/* Vertex: OAuth token endpoint */
	char *service_account;		/* Vertex: the account's email (iss) */
	char *ca_file;			/* private CA for this route; NULL: system */
	bool insecure_http;		/* plain http:// off loopback, accepted */
};

/* An application of a tenant: its own keys, named in decisions. */
struct pol_app {
	char *id;
	unsigned char (*keys)[32];
	size_t nkeys;
};

struct pol_tenant {
	char *id;
	unsigned char (*keys)[32];	/* SHA-256 of each virtual key */
	size_t nkeys;
	struct pol_provider **routes;	/* borrowed, preference order */
	size_t nroutes;
	uint64_t classes;		/* data classes every request carries */
	uint64_t may_omit;		/* classes a request may declare absent */
	bool has_region;
	struct pol_cset region;		/* where its data subjects are */
	char *region_text;
	int max_retention_days;		/* -1: no cap */
	struct pol_app *apps;
	size_t napps;
	/* Art. 30 record of processing, as declared (NULL/0: not given). */
	char **purposes;
	size_t npurposes;
	char **categories;		/* of data subjects */
	size_t ncategories;
	char *controller;
};

/* audit.counter_nv_index by default (secrets/ SEC_COUNTER_NV_INDEX). */
#define POL_COUNTER_NV_INDEX 0x01800a0du

/* Where each audit checkpoint goes off the host (`audit.witness`). */
struct pol_witness {
	char *syslog;			/* udp://H:P | tcp://H:P | unix:PATH; NULL: none */
	char *url;			/* http(s) URL checkpoints are POSTed to */
	char *ca_file;			/* CA bundle for url; NULL: the system's */
};

/* The audit log's process settings: the `audit:` section (what is kept
 * of payloads is policy, in the snapshot's keep fields). */
struct pol_audit {
	char *dir;
	bool strict;			/* durability: strict */
	int group_commit_ms;
	size_t segment_max_bytes;
	int segment_max_age_s;
	int checkpoint_every;		/* records */
	int checkpoint_interval_s;
	uint32_t counter_nv_index;	/* TPM NV counter; 0: none */
	struct pol_witness witness;
};

/* Where credentials live: the `secrets:` section. */
struct pol_secrets {
	char *store;			/* sealed-blob directory */
	char *tcti;			/* tpm2-tss TCTI string; NULL: none */
	char *auth_file;		/* auth value for objects sealed with one */
	char *sign_pcrs;		/* PCRs the audit signing key is bound to */
};

/* ---- agents and their tools (issue 4) ---- */

struct pol_snapshot;

/* ---- limits and budgets (issue 16; load_limits.c) ---- */

/* Whose requests one limit counts together. */
enum pol_limit_scope {
	POL_SCOPE_TENANT = 0,		/* every request of the tenant */
	POL_SCOPE_APP,			/* each app's requests */
	POL_SCOPE_AGENT,		/* each agent's requests */
	POL_SCOPE_KEY,			/* each virtual key's requests */
};
const char *pol_scope_name(enum pol_limit_scope s);

/* What is counted; budgets are per UTC day and calendar month. */
enum pol_limit_kind {
	POL_LIM_RPM = 0,		/* requests per minute (rolling) */
	POL_LIM_TPM,			/* tokens per minute (rolling) */
	POL_LIM_CONCURRENT,		/* requests in flight */
	POL_LIM_TOKENS_DAY,
	POL_LIM_TOKENS_MONTH,
	POL_LIM_COST_DAY,		/* micro-USD */
	POL_LIM_COST_MONTH,		/* micro-USD */
	POL_LIM_NKINDS
};
const char *pol_limit_kind_name(enum pol_limit_kind k);

#define POL_MAX_LIMITS 256
#define POL_DEFAULT_COMPLETION_CEILING 4096

struct pol_limit {
	char *id;
	enum pol_limit_scope scope;
	/* Which requests it counts: NULL matches any. */
	char *tenant, *app, *agent;
	long long max[POL_LIM_NKINDS];	/* -1: no such limit */
	/* Completion tokens reserved when a request names no max_tokens
	 * (and the cap on one it names). */
	long long completion_ceiling;
	/* When the shared store cannot answer: let requests through
	 * (opt-in) rather than refuse them. */
	bool fail_open;
	size_t line;
};

/* Prices per model, micro-USD per million tokens. */
struct pol_price {
	char *model;
	long long in_per_mtok, out_per_mtok;
};

/* Where limits and sessions live: `state.redis` (process setting). */
struct pol_state {
	char *redis_url;		/* redis://HOST:PORT[/DB]; NULL: here */
	int connect_timeout_ms;
	int command_timeout_ms;
	char *key_prefix;
};

/* The price of a model, or NULL. */
const struct pol_price *pol_price_find(const struct pol_snapshot *snap,
    const char *model);

#define POL_MAX_TOOLS 64	/* per agent: graph rows are uint64_t */
#define POL_START (-1)		/* "before any call" in the graph */

enum pol_sink { POL_SINK_NONE = 0, POL_SINK_INTERNAL, POL_SINK_EXTERNAL };
const char *pol_sink_name(enum pol_sink s);

struct pol_tool {
	char *name;
	uint64_t labels;		/* data classes its results carry */
	enum pol_sink sink;		/* where its arguments go */
	int max_calls;			/* per session; -1: no limit */
};

/* "deny: { from_label: L, to_sink: S }": once a call carrying L was made
 * in a session, no call to a tool with sink S. */
struct pol_flow {
	char *id;
	uint64_t from_labels;
	enum pol_sink to_sink;
};

enum pol_on_violation { POL_VIOLATION_DENY = 0, POL_VIOLATION_STRIP };

struct pol_agent {
	char *id;
	struct pol_tenant *tenant;
	unsigned char (*keys)[32];	/* keys that act as this agent */
	size_t nkeys;
	struct pol_tool tools[POL_MAX_TOOLS];
	size_t ntools;
	uint64_t start;			/* tools allowed first */
	uint64_t next[POL_MAX_TOOLS];	/* allowed after tool i */
	struct pol_flow *flows;
	size_t nflows;
	int max_calls;			/* per session; -1: no limit */
	enum pol_on_violation on_violation;
	/* Sessions (X-Warden-Session) warden keeps for this agent. */
	bool session_required;		/* session: required */
	size_t max_sessions;		/* sessions.max: live at once */
	int session_ttl_s;		/* sessions.ttl_s: idle expiry */
	/* limits: calls per key over a sliding window, whatever the
	 * session; window_s 0: none. */
	struct pol_limits {
		int window_s;
		int max_calls;			/* -1: no limit */
		int per_tool[POL_MAX_TOOLS];	/* by tool index; -1: none */
	} limits;
	/* mcp: what an MCP server may ask of this agent's client. */
	bool mcp_sampling;		/* sampling/createMessage; default deny */
	bool mcp_elicitation;		/* elicitation/create; default deny */
};

#define POL_DEFAULT_MAX_SESSIONS 10000
#define POL_DEFAULT_SESSION_TTL_S 3600

/* Where an agent's session stands: what the next call is checked against. */
struct pol_tstate {
	int last;			/* tool index, or POL_START */
	uint64_t labels;		/* labels of every call so far */
	unsigned total;
	unsigned short counts[POL_MAX_TOOLS];
	/* The caller's key's calls in the agent's limits window (before
	 * this answer); checked only when window is set, so replaying a
	 * history does not count its calls again. */
	bool window;
	unsigned wtotal;
	unsigned wcounts[POL_MAX_TOOLS];
};

/* Why a tool call is not allowed. */
struct pol_tool_why {
	const char *rule;		/* "graph", "max_calls", a flow id, ... */
	char message[192];
};

void pol_tstate_init(struct pol_tstate *st);
int pol_tool_index(const struct pol_agent *a, const char *name);
/*
 * May the agent call tool next?  If yes and advance is set, st moves on.
 * If not, *why says which rule stops it.  Pure.
 */
bool pol_tool_step(const struct pol_agent *a, struct pol_tstate *st,
    const char *tool, bool advance, struct pol_tool_why *why);
/* The agent an agent key or X-Warden-Agent names for this tenant. */
const struct pol_agent *pol_find_agent(const struct pol_snapshot *snap,
    const struct pol_tenant *t, const char *id);

/* Review tools (review.c).  Exit codes: see each command. */
int pol_graph(const struct pol_snapshot *snap, const struct pol_agent *a,
    const char *format, FILE *out);
int pol_reach(const struct pol_agent *a, const char *from, const char *to,
    FILE *out);
int pol_review(const struct pol_snapshot *snap, FILE *out);
/* Routes whose residency record their URL or model ids contradict, and
 * routes over plain http (lint_routes.c); the number of warnings. */
int pol_lint_routes(const struct pol_snapshot *snap, FILE *out);

/* ---- content detection (issue 20): the `detect:` section ---- */

struct det_db;

#define POL_MAX_DETECTORS 64		/* = DET_MAX: a uint64_t mask */

/* What a detection does beyond adding its classes. */
enum pol_det_action { POL_DET_CLASSIFY = 0, POL_DET_REDACT, POL_DET_BLOCK };
const char *pol_det_action_name(enum pol_det_action a);

struct pol_detector {
	char *id;			/* built-in name, or the pattern's id */
	int builtin;			/* enum det_builtin, or -1: a pattern */
	char *regex;			/* a pattern's expression */
	uint64_t classes;		/* added to a request it fires on */
	enum pol_det_action action;
	bool answers;			/* scan answers too (a hit ends them) */
	char *code;			/* "detected_<id>": the error code */
	char *placeholder;		/* "[REDACTED:<id>]" */
};

struct pol_detect {
	struct det_db *db;		/* NULL: no detect section */
	struct pol_detector *d;		/* detector i of db is d[i] */
	size_t n;
	uint64_t answers;		/* detectors that scan answers */
	size_t max_memory;		/* scanner memory in flight, bytes */
};

/* ---- MCP servers (issue 15) ---- */

#define POL_MCP_MAX_TOOLS 256	/* per server */

/* One server tool, as the agent tool whose rules it runs under. */
struct pol_mcp_tool {
	char *server_name;		/* the server's tool name */
	char *agent_name;		/* the agents' tool name */
};

/* An upstream MCP server (`mcp_servers:`), reached at /mcp/ID. */
struct pol_mcp_server {
	char *id;
	char *url;			/* its Streamable HTTP endpoint */
	char country[3];		/* ISO 3166-1 alpha-2 */
	char *credential;		/* sealed secret name; NULL: none */
	char **origins;			/* Origin values browsers may send */
	size_t norigins;
	struct pol_mcp_tool *tools;
	size_t ntools;
};

/* The server called id, or NULL. */
const struct pol_mcp_server *pol_mcp_find(const struct pol_snapshot *snap,
    const char *id);
/* The agent tool name a server tool runs as, or NULL: not exposed. */
const char *pol_mcp_agent_tool(const struct pol_mcp_server *m,
    const char *server_tool);

/* A name/value pair from `dev_credentials:` (development only). */
struct pol_devcred {
	char *name;
	char *value;			/* wiped when the snapshot is freed */
};

struct pol_snapshot {
	atomic_int refs;
	char *path;
	char version[65];		/* policy_version: hex SHA-256 */
	struct pol_server server;
	struct pol_upstream upstream;
	struct pol_secrets secrets;
	struct pol_audit audit;
	struct pol_provider *providers;
	size_t nproviders;
	struct pol_tenant *tenants;
	size_t ntenants;
	struct pol_devcred *devcreds;
	size_t ndevcreds;
	struct pol_jurisdiction *jurisdictions;
	size_t njurisdictions;
	char *classes[POL_MAX_CLASSES];	/* data class names, by bit */
	size_t nclasses;
	struct pol_rule *rules;
	size_t nrules;
	/* Rules by data class bit, plus those for every request: evaluation
	 * visits only the rules that can apply. */
	struct pol_rule **by_class[POL_MAX_CLASSES];
	size_t nby_class[POL_MAX_CLASSES];
	struct pol_rule **always;
	size_t nalways;
	struct pol_agent *agents;
	size_t nagents;
	struct pol_mcp_server *mcp_servers;
	size_t nmcp_servers;
	char *mcp_pins_dir;		/* mcp_pins_dir:, else audit.dir */
	enum pol_keep keep;		/* audit.payloads: the default */
	int keep_ttl_days;		/* audit.payload_ttl_days */
	struct pol_detect detect;	/* content detectors, compiled */
	/* Key index: open addressing over key digests. */
	struct pol_keyslot {
		const unsigned char *digest;	/* NULL: empty */
		struct pol_tenant *tenant;
		struct pol_agent *agent;	/* an agent's own key */
		struct pol_app *app;		/* an app's key */
	} *keyidx;
	size_t keyidx_cap;		/* power of two */
	/* Limits and budgets (issue 16): `limits:`, `prices:`, `state:`. */
	struct pol_limit *limits;
	size_t nlimits;
	struct pol_price *prices;
	size_t nprices;
	struct pol_state state;
};

/*
 * Load and validate a rules file.  Every problem is written to errs as
 * "FILE:LINE:COL: message"; loading goes on after an error so all of them
 * are reported.  On success *out holds a snapshot with one reference.
 */
enum wd_err pol_load(const char *path, FILE *errs, struct pol_snapshot **out);

struct pol_snapshot *pol_snapshot_ref(struct pol_snapshot *snap);
void pol_snapshot_unref(struct pol_snapshot *snap);

/* The tenant whose virtual key hashes to digest, or NULL; *agent (if
 * not NULL) gets the agent the key belongs to, if any. */
const struct pol_tenant *pol_find_key(const struct pol_snapshot *snap,
    const unsigned char digest[32]);
const struct pol_tenant *pol_find_key_agent(const struct pol_snapshot *snap,
    const unsigned char digest[32], const struct pol_agent **agent);

/* Who a key is: tenant, and the app or agent it belongs to, if any. */
struct pol_caller {
	const struct pol_tenant *tenant;
	const struct pol_agent *agent;
	const struct pol_app *app;
	const unsigned char *key;	/* the key's digest (the snapshot's) */
};
bool pol_find_caller(const struct pol_snapshot *snap,
    const unsigned char digest[32], struct pol_caller *out);

/* Does this provider serve the model? */
bool pol_provider_serves(const struct pol_provider *p, const char *model);

/* The dev credential called name, or NULL. */
const char *pol_devcred(const struct pol_snapshot *snap, const char *name);

/* Is code an officially assigned ISO 3166-1 alpha-2 code? */
bool pol_country_valid(const char *code);

/* The bit of a data class name, or -1. */
int pol_class_bit(const struct pol_snapshot *snap, const char *name);

/* ---- decisions (decide.c) ---- */

/* What a request is, as far as the policy is concerned. */
struct pol_facts {
	const struct pol_tenant *tenant;
	const char *app;		/* the key's app, or NULL */
	const char *model;
	bool stream;
	const char *hdr_classes;	/* X-Warden-Data-Class, or NULL */
	const char *hdr_region;		/* X-Warden-Subject-Region, or NULL */
	/* What the content detectors found (gateway/detect.c): counts by
	 * detector of snap->detect, NULL when nothing was scanned.  Their
	 * classes are added, never taken away. */
	const uint32_t *det_counts;
	const char *api;		/* the request's format (pol_api_name);
					 * NULL: openai-chat */
};

enum pol_verdict { POL_ALLOW = 0, POL_DENY, POL_MODIFY };

enum pol_why {
	POL_WHY_COUNTRY,		/* route country outside the rule's */
	POL_WHY_ZDR,			/* route lacks zero data retention */
	POL_WHY_DAYS,			/* route keeps data too long */
	POL_WHY_TENANT_DAYS,		/* ... longer than the tenant allows */
	POL_WHY_PROCESSING,		/* route processes outside require.processing */
	POL_WHY_STORAGE,		/* route stores outside require.storage */
	POL_WHY_ABUSE,			/* abuse monitoring stores outside */
	POL_WHY_GLOBAL,			/* global deployment: no residency at all */
	POL_WHY_DPF,			/* route not DPF certified */
};

/* Why a route was excluded.  Kept as facts; pol_reason_text() words it,
 * so deciding never formats strings. */
struct pol_reason {
	const struct pol_rule *rule;	/* NULL for the tenant's own cap */
	const struct pol_provider *route;
	enum pol_why why;
};

const char *pol_reason_rule(const struct pol_reason *r);	/* rule id */
const char *pol_reason_code(const struct pol_reason *r);	/* residency... */
void pol_reason_text(const struct pol_reason *r, const struct pol_tenant *t,
    char *buf, size_t len);

#define POL_MAX_ROUTES 32		/* per tenant */
#define POL_MAX_REASONS 64		/* recorded; all are enforced */
#define POL_ROUTE_REASONS 4		/* recorded for one excluded route */

struct pol_decision {
	enum pol_verdict verdict;
	int status;			/* HTTP status for a deny */
	const char *code;		/* error code for a deny */
	enum wd_code ecode;		/* the same, in the catalogue */
	char message[512];		/* for a deny */
	char id[33];			/* decision id: X-Warden-Decision */
	const char *policy_version;	/* borrowed from the snapshot */
	const char *tenant;
	const char *app;		/* borrowed from the facts */
	const char *model;		/* borrowed from the facts */
	const char *api;		/* borrowed from the facts; NULL: chat */
	bool stream;
	uint64_t classes;		/* effective data classes */
	char region[64];		/* effective subject region, as given */
	/* Compliant routes serving the model, in preference order. */
	const struct pol_provider *routes[POL_MAX_ROUTES];
	size_t nroutes;
	/* Rules that applied: the first POL_MAX_REASONS are listed, all of
	 * them were enforced; nmatched_total counts them all. */
	const struct pol_rule *matched[POL_MAX_REASONS];
	size_t nmatched, nmatched_total;
	struct pol_reason reasons[POL_MAX_REASONS];
	size_t nreasons, nreasons_total;
	const struct pol_tenant *tenant_p;
	enum pol_keep keep;		/* what warden may keep of payloads */
	int keep_ttl_days;
	/* Content detections: how often each detector fired (never what it
	 * found); redact: the request must be redacted before it leaves. */
	uint64_t det_fired;
	uint32_t det_counts[POL_MAX_DETECTORS];
	bool redact;
};

/*
 * Decide a request.  Pure: reads only snap and facts, writes only out.
 * A deny is a verdict (out->verdict, status, code), not an error; errors
 * are for facts that cannot be evaluated (WD_EINVAL with out->message).
 */
enum wd_err pol_decide(const struct pol_snapshot *snap,
    const struct pol_facts *facts, struct pol_decision *out);

/* The decision as JSON (jansson), for the audit log and `warden check`. */
json_t *pol_decision_json(const struct pol_snapshot *snap,
    const struct pol_decision *d);
const char *pol_verdict_name(enum pol_verdict v);
/* The legal basis of a transfer to route under decision d: the first
 * applied rule that names one and whose countries (if any) hold the
 * route's, else the route's own; NULL if none is named. */
const char *pol_legal_basis(const struct pol_decision *d,
    const struct pol_provider *route);

/*
 * `warden test`: run the policy tests in path against snap, printing each
 * failure and "N passed, N failed".  Returns 0, 1 (failures) or 2 (the
 * tests file is invalid).
 */
int pol_test_run(const struct pol_snapshot *snap, const char *path, FILE *out);

#endif /* POL_H */
