/*
 * load_items.c - the sections of a rules file, each read into the
 * snapshot (values) and the loader's raw tables (names still to resolve).
 *
 * Nothing here looks across sections: a tenant's routes, a rule's
 * jurisdictions and classes are kept as written, with their place, and
 * compile.c resolves them once every file is read.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const server_keys[] = {
	"listen", "workers", "max_body_bytes", "max_header_bytes",
	"max_headers", "header_timeout_ms", "body_timeout_ms",
	"idle_timeout_ms", "shutdown_grace_ms", "max_connections",
	"max_inflight", "max_inflight_per_key", "max_json_values",
	"metrics_keys", NULL
};
static const char *const upstream_keys[] = {
	"connect_timeout_ms", "first_byte_timeout_ms", "idle_timeout_ms",
	"total_timeout_ms", "max_attempts", "max_response_bytes",
	"max_sse_event_bytes", "proxy", "http_client", NULL
};
static const char *const provider_keys[] = {
	"id", "api", "base_url", "country", "retention", "credential",
	"models", "residency", "kind", "auth", "region", "service",
	"bedrock_api", "azure_deployment", "api_version", "anthropic_version",
	"token_url", "service_account", "ca_file", "insecure_http", "legal_basis", NULL
};
static const char *const residency_keys[] = {
	"processing", "storage", "abuse_monitoring_storage", "deployment",
	"dpf", NULL
};
/* Provider kinds (gateway/provider.c) and the credential uses each
 * allows; the first is the default. */
static const struct {
	const char *kind;
	const char *auths[3];
} kinds[] = {
	{ "openai", { "bearer" } },
	{ "azure", { "api_key" } },
	{ "bedrock", { "sigv4", "bearer" } },
	{ "vertex", { "service_account" } },
	{ "anthropic", { "x_api_key" } },
};
/* The legal basis of a transfer to a provider's country (GDPR ch. V):
 * adequacy decision (art. 45), EU-US Data Privacy Framework, standard
 * contractual clauses or binding corporate rules (art. 46), a derogation
 * (art. 49), or none needed (the data stays where it is). */
static const char *const legal_bases[] = { "adequacy", "dpf", "scc", "bcr",
	"derogation", "not_required", NULL };
static const char *const retention_keys[] = { "zdr", "days", NULL };
static const char *const tenant_keys[] = {
	"id", "keys", "apps", "routes", "data_classes", "may_omit", "subject_region",
	"max_retention_days", "purposes", "categories", "controller", NULL
};
static const char *const rule_keys[] = {
	"id", "when", "require", "keep", "legal_basis", NULL
};
static const char *const when_keys[] = {
	"data_class", "subject_region", "tenant", NULL
};
static const char *const require_keys[] = {
	"provider_country", "retention.zdr", "retention.max_days", "retention",
	"processing", "storage", "abuse_monitoring_storage", "dpf", NULL
};
/* require: { retention: { zdr, max_days } }, as providers write it. */
static const char *const require_retention_keys[] = { "zdr", "max_days",
	NULL };
static const char *const keep_keys[] = { "payloads", "ttl_days", NULL };
static const char *const secrets_keys[] = { "store", "tcti", "auth_file",
	"sign_pcrs", NULL };
static const char *const audit_keys[] = {
	"payloads", "payload_ttl_days", "dir", "durability", "group_commit_ms",
	"segment_max_bytes", "segment_max_age_s", "checkpoint_every",
	"checkpoint_interval_s", "counter_nv_index", "witness", NULL
};
static const char *const witness_keys[] = { "syslog", "url", "ca_file",
	NULL };

/* Read an optional integer setting into *dst, which keeps its default. */
static void
opt_int(struct pol_walk *w, yaml_node_t *map, const char *key,
    long long min, long long max, int *dst)
{
	yaml_node_t *n = pol_get(w, map, key);
	long long v;

	if (n != NULL && pol_int(w, n, key, min, max, &v))
		*dst = (int)v;
}

static void
opt_size(struct pol_walk *w, yaml_node_t *map, const char *key,
    long long min, long long max, size_t *dst)
{
	yaml_node_t *n = pol_get(w, map, key);
	long long v;

	if (n != NULL && pol_int(w, n, key, min, max, &v))
		*dst = (size_t)v;
}

void
pol_load_server(struct pol_walk *w, yaml_node_t *n, struct pol_server *s)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "server"))
		return;
	pol_check_keys(w, n, server_keys, "server");
	if ((v = pol_get(w, n, "listen")) != NULL) {
		free(s->listen);
		s->listen = NULL;
		pol_str(w, v, "server.listen", &s->listen);
	}
	opt_int(w, n, "workers", 0, 256, &s->workers);
	opt_size(w, n, "max_body_bytes", 1024, 1LL << 30, &s->max_body_bytes);
	opt_size(w, n, "max_header_bytes", 1024, 1LL << 20, &s->max_header_bytes);
	opt_size(w, n, "max_headers", 8, 10000, &s->max_headers);
	opt_int(w, n, "header_timeout_ms", 100, 3600000, &s->header_timeout_ms);
	opt_int(w, n, "body_timeout_ms", 100, 3600000, &s->body_timeout_ms);
	opt_int(w, n, "idle_timeout_ms", 100, 3600000, &s->idle_timeout_ms);
	opt_int(w, n, "shutdown_grace_ms", 0, 3600000, &s->shutdown_grace_ms);
	opt_size(w, n, "max_connections", 1, 1000000, &s->max_connections);
	opt_size(w, n, "max_inflight", 1, 1000000, &s->max_inflight);
	opt_size(w, n, "max_inflight_per_key", 1, 1000000,
	    &s->max_inflight_per_key);
	opt_size(w, n, "max_json_values", 16, 100000000, &s->max_json_values);
	if ((v = pol_get(w, n, "metrics_keys")) != NULL)
		pol_load_keys(w, v, &s->metrics_keys, &s->nmetrics_keys);
}

/*
 * upstream.proxy: "http://HOST:PORT" (or https://).  No user:password in
 * it: a secret does not belong in a rules file, and the URL is named in
 * every audit record it affects.
 */
static void
load_proxy(struct pol_walk *w, yaml_node_t *v, char **out)
{
	const char *s, *auth;
	size_t alen;

	if (!pol_str(w, v, "upstream.proxy", out))
		return;
	s = *out;
	if (strncmp(s, "http://", 7) == 0)
		auth = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		auth = s + 8;
	else {
		pol_err(w, v, "upstream.proxy must be an http:// or https:// URL");
		return;
	}
	alen = strcspn(auth, "/?#");
	if (alen == 0 || memchr(auth, '@', alen) != NULL ||
	    strlen(s) > 512 || strpbrk(s, " \t\r\n") != NULL)
		pol_err(w, v, "upstream.proxy must be http(s)://HOST:PORT, "
		    "without user or password");
}

void
pol_load_upstream(struct pol_walk *w, yaml_node_t *n, struct pol_upstream *u)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "upstream"))
		return;
	pol_check_keys(w, n, upstream_keys, "upstream");
	opt_int(w, n, "connect_timeout_ms", 10, 600000, &u->connect_timeout_ms);
	opt_int(w, n, "first_byte_timeout_ms", 10, 3600000, &u->first_byte_timeout_ms);
	opt_int(w, n, "idle_timeout_ms", 10, 3600000, &u->idle_timeout_ms);
	opt_int(w, n, "total_timeout_ms", 10, 86400000, &u->total_timeout_ms);
	opt_int(w, n, "max_attempts", 1, POL_MAX_ATTEMPTS, &u->max_attempts);
	opt_size(w, n, "max_response_bytes", 1024, 1LL << 30, &u->max_response_bytes);
	opt_size(w, n, "max_sse_event_bytes", 1024, 64LL << 20, &u->max_sse_event_bytes);
	if ((v = pol_get(w, n, "proxy")) != NULL) {
		free(u->proxy);
		u->proxy = NULL;
		load_proxy(w, v, &u->proxy);
	}
	/* http_client: who speaks plain http:// at a literal address:
	 * warden's own client (the default) or libcurl, as for the rest. */
	if ((v = pol_get(w, n, "http_client")) != NULL &&
	    pol_is_scalar(w, v, "upstream.http_client")) {
		if (strcmp(pol_scalar(v), "warden") == 0)
			u->curl_only = false;
		else if (strcmp(pol_scalar(v), "curl") == 0)
			u->curl_only = true;
		else
			pol_err(w, v, "upstream.http_client must be warden or "
			    "curl, not '%s'", pol_scalar(v));
	}
}

static bool
keep_mode(struct pol_walk *w, yaml_node_t *n, enum pol_keep *out)
{
	static const enum pol_keep modes[] = { POL_KEEP_NONE, POL_KEEP_HASH,
		POL_KEEP_REDACTED, POL_KEEP_FULL };

	if (!pol_is_scalar(w, n, "payloads"))
		return false;
	for (size_t i = 0; i < 4; i++)
		if (strcmp(pol_scalar(n), pol_keep_name(modes[i])) == 0) {
			*out = modes[i];
			return true;
		}
	pol_err(w, n, "payloads must be none, hash, redacted or full, not '%s'",
	    pol_scalar(n));
	return false;
}

void
pol_load_secrets(struct pol_walk *w, yaml_node_t *n, struct pol_secrets *sec)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "secrets"))
		return;
	pol_check_keys(w, n, secrets_keys, "secrets");
	if ((v = pol_get(w, n, "store")) != NULL) {
		free(sec->store);
		sec->store = NULL;
		pol_str(w, v, "secrets.store", &sec->store);
	}
	if ((v = pol_get(w, n, "tcti")) != NULL)
		pol_str(w, v, "secrets.tcti", &sec->tcti);
	if ((v = pol_get(w, n, "auth_file")) != NULL)
		pol_str(w, v, "secrets.auth_file", &sec->auth_file);
	/* Checked in full (banks, indices) when the key is made; here only
	 * what the TPM code would never accept. */
	if ((v = pol_get(w, n, "sign_pcrs")) != NULL &&
	    pol_str(w, v, "secrets.sign_pcrs", &sec->sign_pcrs) &&
	    (strlen(sec->sign_pcrs) > 80 || strspn(sec->sign_pcrs,
	    "sha1256384512:,+0123456789") != strlen(sec->sign_pcrs) ||
	    strchr(sec->sign_pcrs, ':') == NULL))
		pol_err(w, v, "secrets.sign_pcrs '%.80s' must be like sha256:7,23 "
		    "(banks sha1, sha256, sha384, sha512 joined by '+')",
		    sec->sign_pcrs);
}

/* HOST:PORT with HOST a name, an IPv4 address or [IPv6]. */
static bool
host_port_valid(const char *s)
{
	const char *colon = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s || (s[0] == '[' && colon == s + 1))
		return false;
	if (s[0] == '[')
		colon++;
	for (const char *p = s; p < colon; p++)
		if (*p <= ' ' || *p == '/' || *p == '@' || *p == 0x7f)
			return false;
	port = strtol(colon + 1, &end, 10);
	return colon[1] >= '1' && colon[1] <= '9' && *end == '\0' && port >= 1 &&
	    port <= 65535;
}

/* audit.witness: where each checkpoint goes as it is made. */
static void
load_witness(struct pol_walk *w, yaml_node_t *n, struct pol_witness *wit)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "audit.witness"))
		return;
	pol_check_keys(w, n, witness_keys, "audit.witness");
	if ((v = pol_get(w, n, "syslog")) != NULL &&
	    pol_str(w, v, "audit.witness.syslog", &wit->syslog)) {
		const char *t = wit->syslog;
		bool ok;

		if (strncmp(t, "udp://", 6) == 0 || strncmp(t, "tcp://", 6) == 0)
			ok = strlen(t) <= 6 + 255 + 8 && host_port_valid(t + 6);
		else if (strncmp(t, "unix:", 5) == 0)
			ok = t[5] == '/' && strlen(t + 5) < 108;
		else
			ok = false;
		if (!ok)
			pol_err(w, v, "audit.witness.syslog '%.80s' must be "
			    "udp://HOST:PORT, tcp://HOST:PORT or unix:/PATH (under "
			    "108 bytes)", t);
	}
	if ((v = pol_get(w, n, "url")) != NULL &&
	    pol_str(w, v, "audit.witness.url", &wit->url)) {
		const char *u = wit->url;
		bool ok = (strncmp(u, "https://", 8) == 0 ||
		    strncmp(u, "http://", 7) == 0) && strlen(u) <= 2048;

		for (const char *p = u; ok && *p != '\0'; p++)
			ok = *p > ' ' && *p != 0x7f;
		if (!ok)
			pol_err(w, v, "audit.witness.url '%.80s' must be an http:// "
			    "or https:// URL without spaces (at most 2048 bytes)", u);
	}
	if ((v = pol_get(w, n, "ca_file")) != NULL)
		pol_str(w, v, "audit.witness.ca_file", &wit->ca_file);
	if (wit->ca_file != NULL && wit->url == NULL)
		pol_err(w, n, "audit.witness.ca_file is set but url is not");
}

/* "0x" and up to 8 hex digits, an NV index below the TCG range. */
static bool
parse_nv_index(const char *s, uint32_t *out)
{
	unsigned long v;
	char *end;

	if (strncmp(s, "0x", 2) != 0 || strlen(s) > 10 || s[2] == '\0' ||
	    strspn(s + 2, "0123456789abcdefABCDEF") != strlen(s + 2))
		return false;
	v = strtoul(s + 2, &end, 16);
	if (*end != '\0' || v < 0x01000000ul || v > 0x01bffffful)
		return false;
	*out = (uint32_t)v;
	return true;
}

static void
load_counter_index(struct pol_walk *w, yaml_node_t *v, uint32_t *out)
{
	if (!pol_is_scalar(w, v, "audit.counter_nv_index"))
		return;
	if (strcmp(pol_scalar(v), "none") == 0)
		*out = 0;
	else if (!parse_nv_index(pol_scalar(v), out))
		pol_err(w, v, "audit.counter_nv_index '%.40s' must be none or an NV "
		    "index in hex, 0x01000000 to 0x01bfffff (the owner range is "
		    "0x01800000 to 0x01bfffff)", pol_scalar(v));
}

void
pol_load_audit(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_walk *w = &l->w;
	yaml_node_t *v;

	if (!pol_is_map(w, n, "audit"))
		return;
	pol_check_keys(w, n, audit_keys, "audit");
	if ((v = pol_get(w, n, "payloads")) != NULL)
		keep_mode(w, v, &l->s->keep);
	opt_int(w, n, "payload_ttl_days", 0, 36500, &l->s->keep_ttl_days);
	if ((v = pol_get(w, n, "dir")) != NULL) {
		free(l->s->audit.dir);
		l->s->audit.dir = NULL;
		pol_str(w, v, "audit.dir", &l->s->audit.dir);
	}
	if ((v = pol_get(w, n, "durability")) != NULL && pol_is_scalar(w, v,
	    "durability")) {
		if (strcmp(pol_scalar(v), "strict") == 0)
			l->s->audit.strict = true;
		else if (strcmp(pol_scalar(v), "group") != 0)
			pol_err(w, v, "durability must be group or strict, not '%s'",
			    pol_scalar(v));
	}
	opt_int(w, n, "group_commit_ms", 0, 1000, &l->s->audit.group_commit_ms);
	opt_size(w, n, "segment_max_bytes", 4096, 1LL << 40,
	    &l->s->audit.segment_max_bytes);
	opt_int(w, n, "segment_max_age_s", 1, 365 * 86400,
	    &l->s->audit.segment_max_age_s);
	opt_int(w, n, "checkpoint_every", 0, 100000000,
	    &l->s->audit.checkpoint_every);
	opt_int(w, n, "checkpoint_interval_s", 0, 86400,
	    &l->s->audit.checkpoint_interval_s);
	if ((v = pol_get(w, n, "counter_nv_index")) != NULL)
		load_counter_index(w, v, &l->s->audit.counter_nv_index);
	if ((v = pol_get(w, n, "witness")) != NULL)
		load_witness(w, v, &l->s->audit.witness);
}

static bool
id_valid(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

void
pol_load_id(struct pol_walk *w, yaml_node_t *map, const char *what, char **out)
{
	yaml_node_t *v = pol_get(w, map, "id");

	if (v == NULL) {
		pol_err(w, map, "%s without 'id'", what);
		return;
	}
	if (pol_str(w, v, "id", out) && !id_valid(*out))
		pol_err(w, v, "%s id '%.80s' may only hold letters, digits, '-', "
		    "'_', '.' (at most 64)", what, *out);
}

/* Is the host of an http:// URL a loopback address?  Only there may
 * credentials and prompts go in clear without the route saying so. */
bool
pol_http_loopback(const char *url)
{
	const char *h = url + 7, *end;
	size_t n;

	if (*h == '[')
		return strncmp(h, "[::1]", 5) == 0 && (h[5] == '\0' || h[5] == ':' ||
		    h[5] == '/');
	end = h + strcspn(h, ":/?#");
	n = (size_t)(end - h);
	if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
		return true;
	/* 127.0.0.0/8 as a dotted quad, nothing else */
	if (n < 9 || strncmp(h, "127.", 4) != 0)
		return false;
	for (const char *c = h + 4; c < end; c++)
		if (!((*c >= '0' && *c <= '9') || *c == '.'))
			return false;
	return true;
}

unsigned
pol_api_bit(const char *name)
{
	static const char *const names[] = { "openai-chat",
		"openai-responses", "openai-embeddings", "anthropic-messages" };

	for (unsigned i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return 1u << i;
	return 0;
}

const char *
pol_api_name(unsigned bit)
{
	switch (bit) {
	case POL_API_CHAT: return "openai-chat";
	case POL_API_RESPONSES: return "openai-responses";
	case POL_API_EMBEDDINGS: return "openai-embeddings";
	case POL_API_MESSAGES: return "anthropic-messages";
	default: return "?";
	}
}

/*
 * `api:` - one format or a list of them.  p->api keeps a canonical text
 * (it is in the policy version): "openai" as before for the default, else
 * the names in a fixed order, comma-separated.
 */
static void
load_api(struct pol_walk *w, yaml_node_t *v, struct pol_provider *p)
{
	const char *supported = "openai, openai-chat, openai-responses, "
	    "openai-embeddings, anthropic-messages";
	char buf[128] = "";

	p->apis = 0;
	if (v == NULL || (v->type == YAML_SCALAR_NODE && strcmp((const char *)
	    v->data.scalar.value, "openai") == 0)) {
		p->apis = POL_API_CHAT;
		p->api = strdup("openai");
		return;
	}
	if (v->type == YAML_SCALAR_NODE) {
		const char *name = (const char *)v->data.scalar.value;

		if ((p->apis = pol_api_bit(name)) == 0)
			pol_err(w, v, "api '%.64s' is not supported (supported: %s)",
			    name, supported);
	} else if (pol_is_seq(w, v, "api")) {
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		    it < v->data.sequence.items.top; it++) {
			yaml_node_t *e = yaml_document_get_node(w->doc, *it);
			unsigned bit;

			if (e == NULL || !pol_is_scalar(w, e, "an api"))
				continue;
			bit = pol_api_bit((const char *)e->data.scalar.value);
			if (bit == 0)
				pol_err(w, e, "api '%.64s' is not supported "
				    "(supported: %s)", (const char *)
				    e->data.scalar.value, supported);
			else if (p->apis & bit)
				pol_err(w, e, "api '%.64s' is listed twice",
				    (const char *)e->data.scalar.value);
			p->apis |= bit;
		}
		if (v->data.sequence.items.top == v->data.sequence.items.start)
			pol_err(w, v, "api must name at least one format");
	}
	for (unsigned b = 1; b <= POL_API_MESSAGES; b <<= 1)
		if (p->apis & b)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			    buf[0] ? "," : "", pol_api_name(b));
	p->api = strdup(buf);
}

static void
opt_str(struct pol_walk *w, yaml_node_t *map, const char *key, char **dst)
{
	yaml_node_t *v = pol_get(w, map, key);

	if (v != NULL)
		pol_str(w, v, key, dst);
}

/* kind, auth and the settings each kind needs. */
static void
load_kind(struct pol_walk *w, yaml_node_t *n, struct pol_provider *p,
    const char *id)
{
	size_t k, a;
	yaml_node_t *v;

	opt_str(w, n, "kind", &p->kind);
	if (p->kind == NULL)
		p->kind = strdup("openai");
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (p->kind != NULL && strcmp(kinds[k].kind, p->kind) == 0)
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0])) {
		pol_err(w, (v = pol_get(w, n, "kind")) ? v : n, "kind '%s' is not supported "
		    "(supported: openai, azure, bedrock, vertex, anthropic)",
		    p->kind ? p->kind : "?");
		return;
	}
	opt_str(w, n, "auth", &p->auth);
	if (p->auth == NULL)
		p->auth = strdup(kinds[k].auths[0]);
	for (a = 0; a < 3 && kinds[k].auths[a] != NULL; a++)
		if (p->auth != NULL && strcmp(kinds[k].auths[a], p->auth) == 0)
			break;
	if (a == 3 || kinds[k].auths[a] == NULL)
		pol_err(w, (v = pol_get(w, n, "auth")) ? v : n, "provider '%s': auth '%s' is not "
		    "one kind '%s' uses", id, p->auth ? p->auth : "?", p->kind);
	opt_str(w, n, "region", &p->region);
	opt_str(w, n, "service", &p->service);
	opt_str(w, n, "bedrock_api", &p->bedrock_api);
	opt_str(w, n, "azure_deployment", &p->azure_deployment);
	opt_str(w, n, "api_version", &p->api_version);
	opt_str(w, n, "anthropic_version", &p->anthropic_version);
	opt_str(w, n, "token_url", &p->token_url);
	if (strcmp(p->kind, "bedrock") == 0) {
		if (p->region == NULL && strcmp(p->auth ? p->auth : "", "sigv4") == 0)
			pol_err(w, n, "provider '%s': SigV4 needs 'region'", id);
		if (p->service == NULL)
			p->service = strdup("bedrock");
		if (p->bedrock_api == NULL)
			p->bedrock_api = strdup("openai");
		else if (strcmp(p->bedrock_api, "openai") != 0 &&
		    strcmp(p->bedrock_api, "converse") != 0)
			pol_err(w, pol_get(w, n, "bedrock_api"), "bedrock_api must be "
			    "'openai' or 'converse'");
	}
	if (strcmp(p->kind, "azure") == 0 && (p->azure_deployment != NULL) !=
	    (p->api_version != NULL))
		pol_err(w, n, "provider '%s': the classic Azure path needs both "
		    "'azure_deployment' and 'api_version'", id);
	if (strcmp(p->kind, "anthropic") == 0 && p->anthropic_version == NULL)
		p->anthropic_version = strdup("2023-06-01");
	opt_str(w, n, "service_account", &p->service_account);
	if (strcmp(p->kind, "vertex") == 0 && (p->token_url == NULL ||
	    p->service_account == NULL))
		pol_err(w, n, "provider '%s': kind vertex needs 'token_url' (the "
		    "OAuth token endpoint) and 'service_account' (its email)", id);
	else if (p->token_url != NULL && strncmp(p->token_url, "https://", 8)
	    != 0 && !(strncmp(p->token_url, "http://", 7) == 0 &&
	    pol_http_loopback(p->token_url)))
		pol_err(w, n, "provider '%s': token_url must be https:// (or "
		    "http:// to loopback)", id);
}

/* The residency record: `residency:` or the older `country:`. */
static void
load_residency(struct pol_walk *w, yaml_node_t *n, struct pol_provider *p,
    struct raw_provider *raw, const char *id)
{
	yaml_node_t *v, *r = pol_get(w, n, "residency");
	char *country = NULL, *dep = NULL;

	p->dpf = -1;
	pol_at(w, n, &raw->at);
	if ((v = pol_get(w, n, "country")) != NULL && r != NULL)
		pol_err(w, v, "provider '%s': give 'country' or 'residency', not "
		    "both ('country: X' means processing and storage X)", id);
	else if (v == NULL && r == NULL)
		pol_err(w, n, "provider '%s' without 'country' or 'residency'", id);
	if (v != NULL && pol_str(w, v, "country", &country)) {
		if (!pol_country_valid(country))
			pol_err(w, v, "'%s' is not an ISO 3166-1 alpha-2 country code",
			    country);
		else {
			memcpy(p->country, country, 3);
			p->cidx = pol_country_index(country);
			raw->from_country = true;
		}
		free(country);
	}
	if (r == NULL || !pol_is_map(w, r, "residency"))
		return;
	pol_check_keys(w, r, residency_keys, "residency");
	if ((v = pol_get(w, r, "processing")) != NULL)
		pol_refs(w, v, "processing", &raw->processing, &raw->nprocessing);
	if ((v = pol_get(w, r, "storage")) != NULL)
		pol_refs(w, v, "storage", &raw->storage, &raw->nstorage);
	if ((v = pol_get(w, r, "abuse_monitoring_storage")) != NULL)
		pol_refs(w, v, "abuse_monitoring_storage", &raw->abuse,
		    &raw->nabuse);
	if ((v = pol_get(w, r, "dpf")) != NULL) {
		bool b;

		if (pol_bool(w, v, "dpf", &b))
			p->dpf = b;
	}
	if ((v = pol_get(w, r, "deployment")) == NULL)
		pol_err(w, r, "provider '%s': residency without 'deployment' "
		    "(regional, datazone or global)", id);
	else if (pol_str(w, v, "deployment", &dep)) {
		if (strcmp(dep, "regional") == 0)
			p->deployment = POL_DEPLOY_REGIONAL;
		else if (strcmp(dep, "datazone") == 0)
			p->deployment = POL_DEPLOY_DATAZONE;
		else if (strcmp(dep, "global") == 0)
			p->deployment = POL_DEPLOY_GLOBAL;
		else
			pol_err(w, v, "deployment must be regional, datazone or "
			    "global, not '%s'", dep);
		free(dep);
	}
	if (raw->nprocessing == 0 && p->deployment != POL_DEPLOY_GLOBAL)
		pol_err(w, r, "provider '%s': residency without 'processing' (only "
		    "a global deployment may omit it)", id);
}

static void
load_legal_basis(struct pol_walk *w, yaml_node_t *v, char **out)
{
	size_t i;

	if (!pol_str(w, v, "legal_basis", out))
		return;
	for (i = 0; legal_bases[i] != NULL && strcmp(legal_bases[i], *out) != 0;
	    i++)
		;
	if (legal_bases[i] == NULL)
		pol_err(w, v, "legal_basis '%.40s' is not one of adequacy, dpf, "
		    "scc, bcr, derogation, not_required", *out);
}

static void
load_provider(struct pol_walk *w, yaml_node_t *n, struct pol_provider *p,
    struct raw_provider *raw)
{
	yaml_node_t *v, *r;
	const char *id;
	size_t len;

	p->retention_days = -1;
	p->cidx = -1;
	p->dpf = -1;
	if (!pol_is_map(w, n, "provider"))
		return;
	pol_check_keys(w, n, provider_keys, "provider");
	pol_load_id(w, n, "provider", &p->id);
	id = p->id ? p->id : "?";
	if ((v = pol_get(w, n, "insecure_http")) != NULL)
		pol_bool(w, v, "insecure_http", &p->insecure_http);
	opt_str(w, n, "ca_file", &p->ca_file);
	load_api(w, pol_get(w, n, "api"), p);
	if ((v = pol_get(w, n, "base_url")) == NULL)
		pol_err(w, n, "provider '%s' without 'base_url'", id);
	else if (pol_str(w, v, "base_url", &p->base_url)) {
		if (strncmp(p->base_url, "http://", 7) != 0 &&
		    strncmp(p->base_url, "https://", 8) != 0)
			pol_err(w, v, "base_url must start with http:// or https://");
		else if (strncmp(p->base_url, "http://", 7) == 0 &&
		    !pol_http_loopback(p->base_url) && !p->insecure_http)
			/* The credential and every prompt would cross the
			 * network in clear. */
			pol_err(w, v, "provider '%s': plain http:// to a host that "
			    "is not loopback; use https:// (or say "
			    "'insecure_http: true' to accept it)", id);
		len = strlen(p->base_url);
		while (len > 0 && p->base_url[len - 1] == '/')
			p->base_url[--len] = '\0';
	}
	load_residency(w, n, p, raw, id);
	load_kind(w, n, p, id);
	if ((r = pol_get(w, n, "retention")) != NULL && pol_is_map(w, r, "retention")) {
		long long days;

		pol_check_keys(w, r, retention_keys, "retention");
		if ((v = pol_get(w, r, "zdr")) != NULL)
			pol_bool(w, v, "retention.zdr", &p->zdr);
		if ((v = pol_get(w, r, "days")) != NULL &&
		    pol_int(w, v, "retention.days", 0, 36500, &days))
			p->retention_days = (int)days;
	}
	if ((v = pol_get(w, n, "legal_basis")) != NULL)
		load_legal_basis(w, v, &p->legal_basis);
	if ((v = pol_get(w, n, "credential")) == NULL)
		pol_err(w, n, "provider '%s' without 'credential'", id);
	else
		pol_str(w, v, "credential", &p->credential);
	if ((v = pol_get(w, n, "models")) == NULL)
		pol_err(w, n, "provider '%s' without 'models'", id);
	else
		pol_str_list(w, v, "models", &p->models, &p->nmodels);
}

void
pol_load_providers(struct pol_loader *l, yaml_node_t *n)
{
	yaml_node_item_t *it;

	if (!pol_is_seq(&l->w, n, "providers"))
		return;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(&l->w, *it);

		if (e == NULL)
			return;
		size_t nraw = l->s->nproviders;

		if (!pol_grow(&l->rp, &nraw, sizeof(*l->rp)) ||
		    !pol_grow(&l->s->providers, &l->s->nproviders,
		    sizeof(*l->s->providers))) {
			pol_err(&l->w, e, "out of memory");
			return;
		}
		load_provider(&l->w, e, &l->s->providers[l->s->nproviders - 1],
		    &l->rp[nraw - 1]);
		/* Duplicates are reported here, where the place is known. */
		for (size_t i = 0; i + 1 < l->s->nproviders; i++) {
			const char *a = l->s->providers[i].id;
			const char *b = l->s->providers[l->s->nproviders - 1].id;

			if (a != NULL && b != NULL && strcmp(a, b) == 0) {
				yaml_node_t *idn = pol_get(&l->w, e, "id");

				pol_err(&l->w, idn ? idn : e, "provider id '%s' is used "
				    "twice", b);
				break;
			}
		}
	}
}

void
pol_load_keys(struct pol_walk *w, yaml_node_t *v, unsigned char (**keys)[32],
    size_t *nkeys)
{
	yaml_node_item_t *it;
	size_t cap;

	if (!pol_is_seq(w, v, "keys"))
		return;
	cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	*keys = calloc(cap ? cap : 1, sizeof(**keys));
	for (it = v->data.sequence.items.start; *keys != NULL &&
	    it < v->data.sequence.items.top; it++) {
		yaml_node_t *k = pol_node(w, *it);
		const char *hex;

		if (k == NULL || !pol_is_scalar(w, k, "key"))
			continue;
		hex = pol_scalar(k);
		if (strncmp(hex, "sha256:", 7) != 0 || strlen(hex) != 71 ||
		    wd_unhex(hex + 7, (*keys)[*nkeys], 32) != WD_OK) {
			pol_err(w, k, "key must be 'sha256:' and 64 hex digits "
			    "(make one with 'warden keys new')");
			continue;
		}
		(*nkeys)++;
	}
}

static const char *const app_keys[] = { "id", "keys", NULL };

static void
load_apps(struct pol_walk *w, yaml_node_t *v, struct pol_tenant *t)
{
	size_t cap;

	if (!pol_is_seq(w, v, "apps"))
		return;
	cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	t->apps = calloc(cap ? cap : 1, sizeof(*t->apps));
	for (size_t i = 0; t->apps != NULL && i < cap; i++) {
		yaml_node_t *a = pol_node(w, v->data.sequence.items.start[i]), *x;
		struct pol_app *app = &t->apps[t->napps];

		if (a == NULL || !pol_is_map(w, a, "an app"))
			continue;
		pol_check_keys(w, a, app_keys, "an app");
		pol_load_id(w, a, "app", &app->id);
		for (size_t j = 0; j < t->napps; j++)
			if (pol_id_eq(t->apps[j].id, app->id))
				pol_err(w, a, "app '%s' is declared twice", app->id);
		if ((x = pol_get(w, a, "keys")) != NULL)
			pol_load_keys(w, x, &app->keys, &app->nkeys);
		t->napps++;
	}
}

static void
load_tenant(struct pol_walk *w, yaml_node_t *n, struct pol_tenant *t,
    struct raw_tenant *raw)
{
	yaml_node_t *v;
	long long days;

	t->max_retention_days = -1;
	pol_at(w, n, &raw->at);
	if (!pol_is_map(w, n, "tenant"))
		return;
	pol_check_keys(w, n, tenant_keys, "tenant");
	pol_load_id(w, n, "tenant", &t->id);
	if ((v = pol_get(w, n, "keys")) != NULL)
		pol_load_keys(w, v, &t->keys, &t->nkeys);
	if ((v = pol_get(w, n, "apps")) != NULL)
		load_apps(w, v, t);
	if ((v = pol_get(w, n, "routes")) == NULL)
		pol_err(w, n, "tenant '%s' without 'routes'", t->id ? t->id : "?");
	else
		pol_refs(w, v, "routes", &raw->routes, &raw->nroutes);
	if ((v = pol_get(w, n, "data_classes")) != NULL)
		pol_refs(w, v, "data_classes", &raw->classes, &raw->nclasses);
	if ((v = pol_get(w, n, "may_omit")) != NULL)
		pol_refs(w, v, "may_omit", &raw->omit, &raw->nomit);
	if ((v = pol_get(w, n, "subject_region")) != NULL)
		pol_ref1(w, v, "subject_region", &raw->region);
	if ((v = pol_get(w, n, "max_retention_days")) != NULL &&
	    pol_int(w, v, "max_retention_days", 0, 36500, &days))
		t->max_retention_days = (int)days;
	/* The record of processing (GDPR art. 30): as the operator says. */
	if ((v = pol_get(w, n, "purposes")) != NULL)
		pol_str_list(w, v, "purposes", &t->purposes, &t->npurposes);
	if ((v = pol_get(w, n, "categories")) != NULL)
		pol_str_list(w, v, "categories", &t->categories, &t->ncategories);
	if ((v = pol_get(w, n, "controller")) != NULL)
		pol_str(w, v, "controller", &t->controller);
}

void
pol_load_tenants(struct pol_loader *l, yaml_node_t *n)
{
	yaml_node_item_t *it;

	if (!pol_is_seq(&l->w, n, "tenants"))
		return;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(&l->w, *it);
		size_t nraw = l->s->ntenants;

		if (e == NULL)
			return;
		/* Raw table first: it never has fewer entries than tenants. */
		if (!pol_grow(&l->rt, &nraw, sizeof(*l->rt)) ||
		    !pol_grow(&l->s->tenants, &l->s->ntenants,
		    sizeof(*l->s->tenants))) {
			pol_err(&l->w, e, "out of memory");
			return;
		}
		load_tenant(&l->w, e, &l->s->tenants[l->s->ntenants - 1],
		    &l->rt[nraw - 1]);
	}
}

static void
load_when(struct pol_walk *w, yaml_node_t *n, struct raw_rule *raw)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "when"))
		return;
	pol_check_keys(w, n, when_keys, "when");
	if ((v = pol_get(w, n, "data_class")) != NULL)
		pol_refs(w, v, "data_class", &raw->classes, &raw->nclasses);
	if ((v = pol_get(w, n, "subject_region")) != NULL)
		pol_refs(w, v, "subject_region", &raw->regions, &raw->nregions);
	if ((v = pol_get(w, n, "tenant")) != NULL)
		pol_refs(w, v, "tenant", &raw->tenants, &raw->ntenants);
}

static void
load_require(struct pol_walk *w, yaml_node_t *n, struct pol_rule *r,
    struct raw_rule *raw)
{
	yaml_node_t *v;
	long long days;

	if (!pol_is_map(w, n, "require"))
		return;
	pol_check_keys(w, n, require_keys, "require");
	if ((v = pol_get(w, n, "provider_country")) != NULL &&
	    pol_refs(w, v, "provider_country", &raw->countries, &raw->ncountries)) {
		r->kinds |= POL_RULE_RESIDENCY;
		r->has_country = true;
	}
	if ((v = pol_get(w, n, "processing")) != NULL &&
	    pol_refs(w, v, "processing", &raw->processing, &raw->nprocessing)) {
		r->kinds |= POL_RULE_RESIDENCY;
		r->has_processing = true;
	}
	if ((v = pol_get(w, n, "storage")) != NULL &&
	    pol_refs(w, v, "storage", &raw->storage, &raw->nstorage)) {
		r->kinds |= POL_RULE_RESIDENCY;
		r->has_storage = true;
	}
	if ((v = pol_get(w, n, "abuse_monitoring_storage")) != NULL &&
	    pol_refs(w, v, "abuse_monitoring_storage", &raw->abuse,
	    &raw->nabuse)) {
		r->kinds |= POL_RULE_RESIDENCY;
		r->has_abuse = true;
	}
	if ((v = pol_get(w, n, "dpf")) != NULL &&
	    pol_bool(w, v, "dpf", &r->require_dpf) && r->require_dpf)
		r->kinds |= POL_RULE_RESIDENCY;
	if ((v = pol_get(w, n, "retention.zdr")) != NULL &&
	    pol_bool(w, v, "retention.zdr", &r->require_zdr) && r->require_zdr)
		r->kinds |= POL_RULE_RETENTION;
	if ((v = pol_get(w, n, "retention.max_days")) != NULL &&
	    pol_int(w, v, "retention.max_days", 0, 36500, &days)) {
		r->max_days = (int)days;
		r->kinds |= POL_RULE_RETENTION;
	}
	/* The nested spelling compiles to the same rule (same version). */
	if ((v = pol_get(w, n, "retention")) != NULL &&
	    pol_is_map(w, v, "retention")) {
		yaml_node_t *x;

		pol_check_keys(w, v, require_retention_keys, "require.retention");
		if (pol_get(w, n, "retention.zdr") != NULL ||
		    pol_get(w, n, "retention.max_days") != NULL)
			pol_err(w, v, "give 'retention' either nested or dotted "
			    "(retention.zdr), not both");
		if ((x = pol_get(w, v, "zdr")) != NULL &&
		    pol_bool(w, x, "retention.zdr", &r->require_zdr) &&
		    r->require_zdr)
			r->kinds |= POL_RULE_RETENTION;
		if ((x = pol_get(w, v, "max_days")) != NULL &&
		    pol_int(w, x, "retention.max_days", 0, 36500, &days)) {
			r->max_days = (int)days;
			r->kinds |= POL_RULE_RETENTION;
		}
	}
}

static void
load_keep(struct pol_walk *w, yaml_node_t *n, struct pol_rule *r)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "keep"))
		return;
	pol_check_keys(w, n, keep_keys, "keep");
	if ((v = pol_get(w, n, "payloads")) != NULL && keep_mode(w, v, &r->keep)) {
		r->has_keep = true;
		r->kinds |= POL_RULE_KEEP;
	}
	opt_int(w, n, "ttl_days", 0, 36500, &r->keep_ttl_days);
	if (r->keep_ttl_days >= 0)
		r->kinds |= POL_RULE_KEEP;
}

static void
load_rule(struct pol_walk *w, yaml_node_t *n, struct pol_rule *r,
    struct raw_rule *raw)
{
	yaml_node_t *v;

	r->max_days = -1;
	r->keep_ttl_days = -1;
	r->line = n->start_mark.line + 1;
	pol_at(w, n, &raw->at);
	if (!pol_is_map(w, n, "rule"))
		return;
	pol_check_keys(w, n, rule_keys, "rule");
	pol_load_id(w, n, "rule", &r->id);
	if ((v = pol_get(w, n, "when")) != NULL)
		load_when(w, v, raw);
	if ((v = pol_get(w, n, "require")) != NULL)
		load_require(w, v, r, raw);
	if ((v = pol_get(w, n, "keep")) != NULL)
		load_keep(w, v, r);
	/* The basis of the transfers it allows; names no requirement. */
	if ((v = pol_get(w, n, "legal_basis")) != NULL)
		load_legal_basis(w, v, &r->legal_basis);
	if (r->kinds == 0)
		pol_err(w, n, "rule '%s' requires nothing and keeps nothing "
		    "(give 'require' or 'keep')", r->id ? r->id : "?");
}

void
pol_load_rules(struct pol_loader *l, yaml_node_t *n)
{
	yaml_node_item_t *it;

	if (!pol_is_seq(&l->w, n, "rules"))
		return;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(&l->w, *it);
		size_t nraw = l->s->nrules;

		if (e == NULL)
			return;
		if (!pol_grow(&l->rr, &nraw, sizeof(*l->rr)) ||
		    !pol_grow(&l->s->rules, &l->s->nrules, sizeof(*l->s->rules))) {
			pol_err(&l->w, e, "out of memory");
			return;
		}
		load_rule(&l->w, e, &l->s->rules[l->s->nrules - 1], &l->rr[nraw - 1]);
	}
}

void
pol_load_jurisdictions(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_walk *w = &l->w;
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "jurisdictions"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		struct pol_jurisdiction *j;
		struct raw_jurisdiction *raw;
		size_t nraw = l->s->njurisdictions;

		if (k == NULL || v == NULL)
			return;
		if (!pol_grow(&l->rj, &nraw, sizeof(*l->rj)) ||
		    !pol_grow(&l->s->jurisdictions, &l->s->njurisdictions,
		    sizeof(*l->s->jurisdictions))) {
			pol_err(w, k, "out of memory");
			return;
		}
		j = &l->s->jurisdictions[l->s->njurisdictions - 1];
		raw = &l->rj[nraw - 1];
		pol_ref1(w, k, "jurisdiction name", &raw->at);
		if (raw->at.name != NULL)
			j->name = strdup(raw->at.name);
		pol_refs(w, v, "jurisdiction members", &raw->members,
		    &raw->nmembers);
	}
}

void
pol_load_classes(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_ref *refs;
	size_t nrefs;

	if (!pol_refs(&l->w, n, "data_classes", &refs, &nrefs)) {
		pol_refs_free(refs, nrefs);
		return;
	}
	for (size_t i = 0; i < nrefs; i++) {
		if (!pol_grow(&l->classes, &l->nclass_refs, sizeof(*l->classes)))
			break;
		l->classes[l->nclass_refs - 1] = refs[i];
		refs[i].name = NULL;
	}
	pol_refs_free(refs, nrefs);
}

void
pol_load_devcreds(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_walk *w = &l->w;
	struct pol_snapshot *s = l->s;
	yaml_node_pair_t *p;

	if (!pol_is_map(w, n, "dev_credentials"))
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		struct pol_devcred *d;

		if (k == NULL || v == NULL)
			return;
		if (!pol_grow(&s->devcreds, &s->ndevcreds, sizeof(*s->devcreds)))
			return;
		d = &s->devcreds[s->ndevcreds - 1];
		if (!pol_str(w, k, "credential name", &d->name))
			continue;
		/* Never echo the value in an error message. */
		if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0) {
			pol_err(w, v, "dev credential '%s' must be a non-empty string",
			    d->name);
			continue;
		}
		d->value = strdup(pol_scalar(v));
	}
}
