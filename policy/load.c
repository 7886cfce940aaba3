/*
 * load.c - rules files to a snapshot: read each file (the main one and
 * what it includes), parse it with libyaml, hand its sections to
 * load_items.c, then let compile.c resolve and index everything.
 *
 * pol_load() is the only way a snapshot comes to be; after it returns the
 * snapshot never changes.
 */
#include "policy/pol_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const top_keys[] = {
	"version", "include", "server", "upstream", "secrets", "audit",
	"jurisdictions",
	"data_classes", "providers", "tenants", "rules", "agents",
	"dev_credentials", "limits", "prices", "state", "detect", "mcp_servers",
	"mcp_pins_dir", NULL
};
/* Included files hold policy, not process settings. */
static const char *const include_keys[] = {
	"include", "jurisdictions", "data_classes", "providers", "tenants",
	"rules", "agents", "limits", "prices", NULL
};

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
	s->server.max_connections = 512;
	s->server.max_inflight = 128;
	s->server.max_inflight_per_key = 64;
	s->server.max_json_values = 50000;
	s->upstream.connect_timeout_ms = 5000;
	s->upstream.first_byte_timeout_ms = 60000;
	s->upstream.idle_timeout_ms = 60000;
	s->upstream.total_timeout_ms = 600000;
	s->upstream.max_attempts = 3;
	s->upstream.max_response_bytes = 16u << 20;
	s->upstream.max_sse_event_bytes = 1u << 20;
	s->secrets.store = strdup("/var/lib/warden/secrets");
	s->audit.dir = strdup("/var/lib/warden/audit");
	s->audit.group_commit_ms = 5;
	s->audit.segment_max_bytes = 64u << 20;
	s->audit.segment_max_age_s = 86400;
	s->audit.checkpoint_every = 1000;
	s->audit.checkpoint_interval_s = 60;
	s->audit.counter_nv_index = POL_COUNTER_NV_INDEX;
	s->keep = POL_KEEP_HASH;
	s->keep_ttl_days = 30;
	s->detect.max_memory = 64u << 20;
}

static enum wd_err
read_rules_file(const char *path, FILE *errs, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t have = 0;
	enum wd_err rc = WD_EIO;
	int fd;

	/* O_NONBLOCK: a FIFO named as a rules file must not hang us before
	 * fstat() tells it is not a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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

static enum wd_err load_file(struct pol_loader *l, const char *path,
    bool main_file);

/*
 * Print libyaml's complaint at its place.  Reader errors (bad encoding,
 * control characters) carry a byte offset, not a mark: count lines.
 */
static void
yaml_report(FILE *errs, const char *path, const yaml_parser_t *p,
    const unsigned char *text, size_t len)
{
	size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;

	if (p->error == YAML_READER_ERROR) {
		line = 1;
		col = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if ((text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
	}
	fprintf(errs, "%s:%zu:%zu: %s\n", path, line, col,
	    p->problem ? p->problem : "YAML syntax error");
}

/* include: a path or a list of paths, relative to the including file. */
static void
load_includes(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_ref *refs;
	size_t nrefs;
	char *dir, *copy;
	const char *file;
	yaml_document_t *doc;

	if (!pol_refs(&l->w, n, "include", &refs, &nrefs)) {
		pol_refs_free(refs, nrefs);
		return;
	}
	copy = strdup(l->w.file);
	dir = copy ? dirname(copy) : ".";
	for (size_t i = 0; i < nrefs; i++) {
		char *path = NULL;

		if (l->depth >= POL_MAX_INCLUDE_DEPTH) {
			pol_err_ref(&l->w, &refs[i], "includes nested deeper than %d",
			    POL_MAX_INCLUDE_DEPTH);
			continue;
		}
		if (refs[i].name[0] == '/')
			path = strdup(refs[i].name);
		else if (asprintf(&path, "%s/%s", dir, refs[i].name) < 0)
			path = NULL;
		if (path == NULL)
			continue;
		for (size_t f = 0; f < l->nfiles; f++)
			if (strcmp(l->files[f], path) == 0) {
				pol_err_ref(&l->w, &refs[i], "'%s' is included twice "
				    "(or includes itself)", refs[i].name);
				free(path);
				path = NULL;
				break;
			}
		if (path == NULL)
			continue;
		file = l->w.file;
		doc = l->w.doc;
		l->depth++;
		/* A file that cannot be read or parsed said why already. */
		if (load_file(l, path, false) != WD_OK)
			l->w.nerrors++;
		l->depth--;
		l->w.file = file;
		l->w.doc = doc;
		free(path);
	}
	free(copy);
	pol_refs_free(refs, nrefs);
}

static void
load_sections(struct pol_loader *l, yaml_node_t *root, bool main_file)
{
	struct pol_walk *w = &l->w;
	yaml_node_t *v;

	if (!pol_is_map(w, root, "a rules file"))
		return;
	pol_check_keys(w, root, main_file ? top_keys : include_keys,
	    main_file ? "the rules file" : "an included rules file");
	if (main_file) {
		long long ver;

		if ((v = pol_get(w, root, "version")) == NULL)
			pol_err(w, root, "missing 'version: 1'");
		else
			pol_int(w, v, "version", 1, 1, &ver);
		if ((v = pol_get(w, root, "server")) != NULL)
			pol_load_server(w, v, &l->s->server);
		if ((v = pol_get(w, root, "upstream")) != NULL)
			pol_load_upstream(w, v, &l->s->upstream);
		if ((v = pol_get(w, root, "audit")) != NULL)
			pol_load_audit(l, v);
		if ((v = pol_get(w, root, "secrets")) != NULL)
			pol_load_secrets(w, v, &l->s->secrets);
		if ((v = pol_get(w, root, "dev_credentials")) != NULL)
			pol_load_devcreds(l, v);
		if ((v = pol_get(w, root, "state")) != NULL)
			pol_load_state(w, v, &l->s->state);
		if ((v = pol_get(w, root, "detect")) != NULL)
			pol_load_detect(l, v);
		if ((v = pol_get(w, root, "mcp_servers")) != NULL)
			pol_load_mcp_servers(l, v);
		if ((v = pol_get(w, root, "mcp_pins_dir")) != NULL)
			pol_str(w, v, "mcp_pins_dir", &l->s->mcp_pins_dir);
	}
	if ((v = pol_get(w, root, "data_classes")) != NULL)
		pol_load_classes(l, v);
	if ((v = pol_get(w, root, "jurisdictions")) != NULL)
		pol_load_jurisdictions(l, v);
	if ((v = pol_get(w, root, "providers")) != NULL)
		pol_load_providers(l, v);
	if ((v = pol_get(w, root, "tenants")) != NULL)
		pol_load_tenants(l, v);
	if ((v = pol_get(w, root, "rules")) != NULL)
		pol_load_rules(l, v);
	if ((v = pol_get(w, root, "agents")) != NULL)
		pol_load_agents(l, v);
	if ((v = pol_get(w, root, "limits")) != NULL)
		pol_load_limits(l, v);
	if ((v = pol_get(w, root, "prices")) != NULL)
		pol_load_prices(l, v);
	if ((v = pol_get(w, root, "include")) != NULL)
		load_includes(l, v);
}

static enum wd_err
load_file(struct pol_loader *l, const char *path, bool main_file)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	unsigned char *text = NULL;
	const char *name;
	size_t len = 0;
	enum wd_err rc;

	if (l->nfiles >= POL_MAX_FILES) {
		fprintf(l->w.errs, "%s: more than %d rules files\n", path,
		    POL_MAX_FILES);
		return WD_ELIMIT;
	}
	rc = read_rules_file(path, l->w.errs, &text, &len);
	if (rc != WD_OK)
		return rc;
	name = l->files[l->nfiles++] = strdup(path);
	if (name == NULL || !yaml_parser_initialize(&parser)) {
		free(text);
		return WD_ENOMEM;
	}
	yaml_parser_set_input_string(&parser, text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_report(l->w.errs, path, &parser, text, len);
		rc = WD_ECONFIG;
		goto out_parser;
	}
	l->w.file = name;
	l->w.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		fprintf(l->w.errs, "%s: empty rules file\n", path);
		rc = WD_ECONFIG;
	} else {
		load_sections(l, root, main_file);
	}
	yaml_document_delete(&doc);
	/* One document per file: a second would be silently ignored. */
	if (rc == WD_OK) {
		if (!yaml_parser_load(&parser, &doc)) {
			yaml_report(l->w.errs, path, &parser, text, len);
			rc = WD_ECONFIG;
		} else {
			if (yaml_document_get_root_node(&doc) != NULL) {
				fprintf(l->w.errs, "%s:%zu:%zu: a rules file holds one "
				    "YAML document; this is a second\n", path,
				    doc.start_mark.line + 1, doc.start_mark.column + 1);
				rc = WD_ECONFIG;
			}
			yaml_document_delete(&doc);
		}
	}
out_parser:
	yaml_parser_delete(&parser);
	/* The file may hold development credentials. */
	wd_wipe(text, len);
	free(text);
	return rc;
}

enum wd_err
pol_load(const char *path, FILE *errs, struct pol_snapshot **out)
{
	struct pol_loader l;
	enum wd_err rc;

	*out = NULL;
	memset(&l, 0, sizeof(l));
	if (errs == NULL)
		return WD_EINVAL;
	l.w.errs = errs;
	l.w.file = path;
	l.s = calloc(1, sizeof(*l.s));
	if (l.s == NULL)
		return WD_ENOMEM;
	atomic_init(&l.s->refs, 1);
	l.s->path = strdup(path);
	defaults(l.s);
	rc = load_file(&l, path, true);
	/* Resolve even after errors: dangling names are worth reporting in
	 * the same run. */
	if (rc == WD_OK)
		rc = pol_compile(&l);
	pol_check_limits(&l);
	if (rc == WD_OK && l.w.nerrors > 0)
		rc = WD_ECONFIG;
	if (l.w.nerrors > 0)
		fprintf(errs, "%s: %u error%s\n", path, l.w.nerrors,
		    l.w.nerrors == 1 ? "" : "s");
	pol_loader_free_raw(&l);
	for (size_t i = 0; i < l.nfiles; i++)
		free(l.files[i]);
	if (rc != WD_OK) {
		pol_snapshot_unref(l.s);
		return rc;
	}
	*out = l.s;
	return WD_OK;
}
