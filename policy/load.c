/*
 * load.c - rules file to snapshot: read, parse with libyaml, walk with
 * checked reads, resolve references, build the key index.
 *
 * pol_load() is the only way a snapshot comes to be; after it returns the
 * snapshot never changes.
 */
#include "policy/pol_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const top_keys[] = {
	"version", "server", "upstream", "providers", "tenants",
	"dev_credentials", NULL
};
static const char *const server_keys[] = {
	"listen", "workers", "max_body_bytes", "max_header_bytes",
	"max_headers", "header_timeout_ms", "body_timeout_ms",
	"idle_timeout_ms", "shutdown_grace_ms", NULL
};
static const char *const upstream_keys[] = {
	"connect_timeout_ms", "first_byte_timeout_ms", "idle_timeout_ms",
	"total_timeout_ms", "max_attempts", "max_response_bytes",
	"max_sse_event_bytes", NULL
};
static const char *const provider_keys[] = {
	"id", "api", "base_url", "country", "retention", "credential",
	"models", NULL
};
static const char *const retention_keys[] = { "zdr", "days", NULL };
static const char *const tenant_keys[] = { "id", "keys", "routes", NULL };

static void
defaults(struct pol_snapshot *s)
{
	s->server.workers = 0;
	s->server.max_body_bytes = 1u << 20;
	s->server.max_header_bytes = 32u << 10;
	s->server.max_headers = 100;
	s->server.header_timeout_ms = 10000;
	s->server.body_timeout_ms = 30000;
	s->server.idle_timeout_ms = 60000;
	s->server.shutdown_grace_ms = 10000;
	s->upstream.connect_timeout_ms = 5000;
	s->upstream.first_byte_timeout_ms = 60000;
	s->upstream.idle_timeout_ms = 60000;
	s->upstream.total_timeout_ms = 600000;
	s->upstream.max_attempts = 3;
	s->upstream.max_response_bytes = 16u << 20;
	s->upstream.max_sse_event_bytes = 1u << 20;
}

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

static void
load_server(struct pol_walk *w, yaml_node_t *n, struct pol_server *s)
{
	yaml_node_t *v;

	if (!pol_is_map(w, n, "server"))
		return;
	pol_check_keys(w, n, server_keys, "server");
	if ((v = pol_get(w, n, "listen")) != NULL)
		pol_str(w, v, "server.listen", &s->listen);
	opt_int(w, n, "workers", 0, 256, &s->workers);
	opt_size(w, n, "max_body_bytes", 1024, 1LL << 30, &s->max_body_bytes);
	opt_size(w, n, "max_header_bytes", 1024, 1LL << 20, &s->max_header_bytes);
	opt_size(w, n, "max_headers", 8, 10000, &s->max_headers);
	opt_int(w, n, "header_timeout_ms", 100, 3600000, &s->header_timeout_ms);
	opt_int(w, n, "body_timeout_ms", 100, 3600000, &s->body_timeout_ms);
	opt_int(w, n, "idle_timeout_ms", 100, 3600000, &s->idle_timeout_ms);
	opt_int(w, n, "shutdown_grace_ms", 0, 3600000, &s->shutdown_grace_ms);
}

static void
load_upstream(struct pol_walk *w, yaml_node_t *n, struct pol_upstream *u)
{
	if (!pol_is_map(w, n, "upstream"))
		return;
	pol_check_keys(w, n, upstream_keys, "upstream");
	opt_int(w, n, "connect_timeout_ms", 10, 600000, &u->connect_timeout_ms);
	opt_int(w, n, "first_byte_timeout_ms", 10, 3600000, &u->first_byte_timeout_ms);
	opt_int(w, n, "idle_timeout_ms", 10, 3600000, &u->idle_timeout_ms);
	opt_int(w, n, "total_timeout_ms", 10, 86400000, &u->total_timeout_ms);
	opt_int(w, n, "max_attempts", 1, 16, &u->max_attempts);
	opt_size(w, n, "max_response_bytes", 1024, 1LL << 30, &u->max_response_bytes);
	opt_size(w, n, "max_sse_event_bytes", 1024, 64LL << 20, &u->max_sse_event_bytes);
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

static void
load_id(struct pol_walk *w, yaml_node_t *map, const char *what, char **out)
{
	yaml_node_t *v = pol_get(w, map, "id");

	if (v == NULL) {
		pol_err(w, map, "%s without 'id'", what);
		return;
	}
	if (pol_str(w, v, "id", out) && !id_valid(*out))
		pol_err(w, v, "id '%s' may only hold letters, digits, '-', '_', '.' "
		    "(at most 64)", *out);
}

static void
load_provider(struct pol_walk *w, yaml_node_t *n, struct pol_provider *p)
{
	yaml_node_t *v, *r;
	char *country = NULL;
	size_t len;

	p->retention_days = -1;
	if (!pol_is_map(w, n, "provider"))
		return;
	pol_check_keys(w, n, provider_keys, "provider");
	load_id(w, n, "provider", &p->id);
	if ((v = pol_get(w, n, "api")) == NULL)
		p->api = strdup("openai");
	else if (pol_str(w, v, "api", &p->api) && strcmp(p->api, "openai") != 0)
		pol_err(w, v, "api '%s' is not supported (supported: openai)", p->api);
	if ((v = pol_get(w, n, "base_url")) == NULL)
		pol_err(w, n, "provider '%s' without 'base_url'", p->id ? p->id : "?");
	else if (pol_str(w, v, "base_url", &p->base_url)) {
		if (strncmp(p->base_url, "http://", 7) != 0 &&
		    strncmp(p->base_url, "https://", 8) != 0)
			pol_err(w, v, "base_url must start with http:// or https://");
		len = strlen(p->base_url);
		while (len > 0 && p->base_url[len - 1] == '/')
			p->base_url[--len] = '\0';
	}
	if ((v = pol_get(w, n, "country")) == NULL)
		pol_err(w, n, "provider '%s' without 'country'", p->id ? p->id : "?");
	else if (pol_str(w, v, "country", &country)) {
		if (!pol_country_valid(country))
			pol_err(w, v, "'%s' is not an ISO 3166-1 alpha-2 country code",
			    country);
		else
			memcpy(p->country, country, 3);
		free(country);
	}
	if ((r = pol_get(w, n, "retention")) != NULL && pol_is_map(w, r, "retention")) {
		long long days;

		pol_check_keys(w, r, retention_keys, "retention");
		if ((v = pol_get(w, r, "zdr")) != NULL)
			pol_bool(w, v, "retention.zdr", &p->zdr);
		if ((v = pol_get(w, r, "days")) != NULL &&
		    pol_int(w, v, "retention.days", 0, 36500, &days))
			p->retention_days = (int)days;
	}
	if ((v = pol_get(w, n, "credential")) == NULL)
		pol_err(w, n, "provider '%s' without 'credential'", p->id ? p->id : "?");
	else
		pol_str(w, v, "credential", &p->credential);
	if ((v = pol_get(w, n, "models")) == NULL)
		pol_err(w, n, "provider '%s' without 'models'", p->id ? p->id : "?");
	else
		pol_str_list(w, v, "models", &p->models, &p->nmodels);
}

static struct pol_provider *
find_provider(struct pol_snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->nproviders; i++)
		if (s->providers[i].id != NULL && strcmp(s->providers[i].id, id) == 0)
			return &s->providers[i];
	return NULL;
}

static void
load_tenant(struct pol_walk *w, yaml_node_t *n, struct pol_snapshot *s,
    struct pol_tenant *t)
{
	yaml_node_t *v;
	yaml_node_item_t *it;
	size_t cap;

	if (!pol_is_map(w, n, "tenant"))
		return;
	pol_check_keys(w, n, tenant_keys, "tenant");
	load_id(w, n, "tenant", &t->id);
	if ((v = pol_get(w, n, "keys")) != NULL && pol_is_seq(w, v, "keys")) {
		cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
		t->keys = calloc(cap ? cap : 1, sizeof(*t->keys));
		for (it = v->data.sequence.items.start; t->keys != NULL &&
		    it < v->data.sequence.items.top; it++) {
			yaml_node_t *k = pol_node(w, *it);
			const char *hex;

			if (k == NULL || !pol_is_scalar(w, k, "key"))
				continue;
			hex = pol_scalar(k);
			if (strncmp(hex, "sha256:", 7) != 0 || strlen(hex) != 71 ||
			    wd_unhex(hex + 7, t->keys[t->nkeys], 32) != WD_OK) {
				pol_err(w, k, "key must be 'sha256:' and 64 hex digits "
				    "(make one with 'warden keys new')");
				continue;
			}
			t->nkeys++;
		}
	}
	if ((v = pol_get(w, n, "routes")) == NULL) {
		pol_err(w, n, "tenant '%s' without 'routes'", t->id ? t->id : "?");
		return;
	}
	if (!pol_is_seq(w, v, "routes"))
		return;
	cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	t->routes = calloc(cap ? cap : 1, sizeof(*t->routes));
	for (it = v->data.sequence.items.start; t->routes != NULL &&
	    it < v->data.sequence.items.top; it++) {
		yaml_node_t *r = pol_node(w, *it);
		struct pol_provider *p;

		if (r == NULL || !pol_is_scalar(w, r, "route"))
			continue;
		p = find_provider(s, pol_scalar(r));
		if (p == NULL) {
			pol_err(w, r, "tenant '%s' names unknown route '%s'",
			    t->id ? t->id : "?", pol_scalar(r));
			continue;
		}
		t->routes[t->nroutes++] = p;
	}
}

/* Load each element of a top-level list with fn into a calloc'd array. */
static void *
load_list(struct pol_walk *w, yaml_node_t *n, const char *what, size_t elem,
    size_t *count)
{
	size_t len;
	void *arr;

	*count = 0;
	if (!pol_is_seq(w, n, what))
		return NULL;
	len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	arr = calloc(len ? len : 1, elem);
	if (arr == NULL)
		pol_err(w, n, "out of memory");
	else
		*count = len;
	return arr;
}

static void
load_devcreds(struct pol_walk *w, yaml_node_t *n, struct pol_snapshot *s)
{
	yaml_node_pair_t *p;
	size_t len;

	if (!pol_is_map(w, n, "dev_credentials"))
		return;
	len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	s->devcreds = calloc(len ? len : 1, sizeof(*s->devcreds));
	if (s->devcreds == NULL)
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		struct pol_devcred *d = &s->devcreds[s->ndevcreds];

		if (k == NULL || v == NULL)
			return;
		if (!pol_str(w, k, "credential name", &d->name))
			continue;
		/* Never echo the value in an error message. */
		if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0) {
			pol_err(w, v, "dev credential '%s' must be a non-empty string",
			    d->name);
			free(d->name);
			continue;
		}
		d->value = strdup(pol_scalar(v));
		s->ndevcreds++;
	}
}

static void
check_references(struct pol_walk *w, yaml_node_t *root, struct pol_snapshot *s)
{
	for (size_t i = 0; i < s->nproviders; i++)
		for (size_t j = 0; j < i; j++)
			if (s->providers[i].id && s->providers[j].id &&
			    strcmp(s->providers[i].id, s->providers[j].id) == 0)
				pol_err(w, root, "provider id '%s' is used twice",
				    s->providers[i].id);
	for (size_t i = 0; i < s->ntenants; i++)
		for (size_t j = 0; j < i; j++)
			if (s->tenants[i].id && s->tenants[j].id &&
			    strcmp(s->tenants[i].id, s->tenants[j].id) == 0)
				pol_err(w, root, "tenant id '%s' is used twice",
				    s->tenants[i].id);
}

static uint64_t
digest_slot(const unsigned char *d)
{
	uint64_t h;

	/* The digest is already uniform; its first bytes make the slot. */
	memcpy(&h, d, sizeof(h));
	return h;
}

static enum wd_err
build_key_index(struct pol_walk *w, struct pol_snapshot *s)
{
	size_t total = 0, cap = 16;

	for (size_t i = 0; i < s->ntenants; i++)
		total += s->tenants[i].nkeys;
	while (cap < total * 2)
		cap <<= 1;
	s->keyidx = calloc(cap, sizeof(*s->keyidx));
	if (s->keyidx == NULL)
		return WD_ENOMEM;
	s->keyidx_cap = cap;
	for (size_t i = 0; i < s->ntenants; i++) {
		struct pol_tenant *t = &s->tenants[i];

		for (size_t k = 0; k < t->nkeys; k++) {
			size_t slot = digest_slot(t->keys[k]) & (cap - 1);

			while (s->keyidx[slot].digest != NULL) {
				if (memcmp(s->keyidx[slot].digest, t->keys[k], 32) == 0) {
					pol_err(w, NULL, "tenants '%s' and '%s' share a key",
					    s->keyidx[slot].tenant->id, t->id);
					break;
				}
				slot = (slot + 1) & (cap - 1);
			}
			if (s->keyidx[slot].digest == NULL) {
				s->keyidx[slot].digest = t->keys[k];
				s->keyidx[slot].tenant = t;
			}
		}
	}
	return WD_OK;
}

static enum wd_err
read_rules_file(const char *path, FILE *errs, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t have = 0;
	enum wd_err rc = WD_EIO;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
		return WD_EIO;
	}
	if (fstat(fd, &st) != 0) {
		fprintf(errs, "%s: cannot stat: %s\n", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(errs, "%s: not a regular file\n", path);
		goto out;
	}
	/* Whoever can write the rules can route data anywhere. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(errs, "%s: writable by group or others; refusing it "
		    "(chmod go-w %s)\n", path, path);
		rc = WD_EPERM;
		goto out;
	}
	if ((size_t)st.st_size > POL_MAX_FILE_BYTES) {
		fprintf(errs, "%s: larger than %u bytes\n", path, POL_MAX_FILE_BYTES);
		rc = WD_ELIMIT;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = WD_ENOMEM;
		goto out;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(errs, "%s: read failed\n", path);
			goto out;
		}
		have += (size_t)n;
	}
	*out = buf;
	*len = have;
	buf = NULL;
	rc = WD_OK;
out:
	free(buf);
	close(fd);
	return rc;
}

enum wd_err
pol_load(const char *path, FILE *errs, struct pol_snapshot **out)
{
	struct pol_walk w = { .file = path, .errs = errs };
	struct pol_snapshot *s = NULL;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *v;
	unsigned char *text = NULL, digest[32];
	size_t len = 0;
	bool have_doc = false, have_parser = false;
	enum wd_err rc;

	*out = NULL;
	rc = read_rules_file(path, errs, &text, &len);
	if (rc != WD_OK)
		return rc;
	rc = WD_ECONFIG;
	s = calloc(1, sizeof(*s));
	if (s == NULL || !yaml_parser_initialize(&parser)) {
		rc = WD_ENOMEM;
		goto out;
	}
	have_parser = true;
	atomic_init(&s->refs, 1);
	s->path = strdup(path);
	defaults(s);
	yaml_parser_set_input_string(&parser, text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(errs, "%s:%zu:%zu: %s\n", path,
		    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
		    parser.problem ? parser.problem : "YAML syntax error");
		goto out;
	}
	have_doc = true;
	w.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		fprintf(errs, "%s: empty rules file\n", path);
		goto out;
	}
	if (!pol_is_map(&w, root, "the rules file"))
		goto out;
	pol_check_keys(&w, root, top_keys, "the rules file");

	if ((v = pol_get(&w, root, "version")) == NULL)
		pol_err(&w, root, "missing 'version: 1'");
	else {
		long long ver;

		pol_int(&w, v, "version", 1, 1, &ver);
	}
	if ((v = pol_get(&w, root, "server")) != NULL)
		load_server(&w, v, &s->server);
	if ((v = pol_get(&w, root, "upstream")) != NULL)
		load_upstream(&w, v, &s->upstream);
	if ((v = pol_get(&w, root, "providers")) != NULL) {
		s->providers = load_list(&w, v, "providers", sizeof(*s->providers),
		    &s->nproviders);
		for (size_t i = 0; i < s->nproviders; i++) {
			yaml_node_t *e = pol_node(&w, v->data.sequence.items.start[i]);

			if (e != NULL)
				load_provider(&w, e, &s->providers[i]);
		}
	}
	if ((v = pol_get(&w, root, "tenants")) != NULL) {
		s->tenants = load_list(&w, v, "tenants", sizeof(*s->tenants),
		    &s->ntenants);
		for (size_t i = 0; i < s->ntenants; i++) {
			yaml_node_t *e = pol_node(&w, v->data.sequence.items.start[i]);

			if (e != NULL)
				load_tenant(&w, e, s, &s->tenants[i]);
		}
	}
	if ((v = pol_get(&w, root, "dev_credentials")) != NULL)
		load_devcreds(&w, v, s);
	check_references(&w, root, s);
	if (build_key_index(&w, s) != WD_OK) {
		rc = WD_ENOMEM;
		goto out;
	}
	if (w.nerrors > 0) {
		fprintf(errs, "%s: %u error%s\n", path, w.nerrors,
		    w.nerrors == 1 ? "" : "s");
		goto out;
	}
	/* TODO(issue 3): hash the canonical form, not the file bytes. */
	wd_sha256(text, len, digest);
	wd_hex(digest, 32, s->version);
	*out = s;
	s = NULL;
	rc = WD_OK;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	if (text != NULL) {
		/* The file may hold development credentials. */
		wd_wipe(text, len);
		free(text);
	}
	if (s != NULL)
		pol_snapshot_unref(s);
	return rc;
}
