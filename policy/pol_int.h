/*
 * pol_int.h - private to policy/: a checked walk over a libyaml document.
 *
 * The loader reads the whole file into a yaml_document_t and walks it
 * against the expected shape.  Every mismatch is reported with the node's
 * FILE:LINE:COL and counted; walking continues so that one run shows all
 * errors.  Aliases are followed, but the number of nodes visited is capped
 * so that an alias bomb cannot blow up the walk.
 */
#ifndef POL_INT_H
#define POL_INT_H

#include <string.h>
#include <yaml.h>

#include "policy/pol.h"

#define POL_MAX_FILE_BYTES (8u << 20)
#define POL_MAX_VISITS 1000000u

struct pol_walk {
	const char *file;
	yaml_document_t *doc;
	FILE *errs;
	unsigned nerrors;
	size_t visits;
};

/* A name written in a rules file, kept with its place until resolved. */
struct pol_ref {
	char *name;
	const char *file;		/* borrowed from the loader */
	size_t line, col;		/* 1-based */
};

/* Unresolved names of one tenant / rule / jurisdiction, by index. */
struct raw_tenant {
	struct pol_ref *routes, *classes, *omit;
	size_t nroutes, nclasses, nomit;
	struct pol_ref region;		/* name NULL: none */
	struct pol_ref at;		/* the tenant itself */
};

struct raw_rule {
	struct pol_ref *classes, *regions, *countries, *tenants;
	size_t nclasses, nregions, ncountries, ntenants;
	struct pol_ref at;
	/* require.processing / storage / abuse_monitoring_storage */
	struct pol_ref *processing, *storage, *abuse;
	size_t nprocessing, nstorage, nabuse;
};

/* A route's residency places as written (issue 14). */
struct raw_provider {
	struct pol_ref *processing, *storage, *abuse;
	size_t nprocessing, nstorage, nabuse;
	bool from_country;		/* `country:` set processing and storage */
	struct pol_ref at;
};

struct raw_jurisdiction {
	struct pol_ref *members;
	size_t nmembers;
	struct pol_ref at;
};

struct raw_agent {
	struct pol_ref tenant;
	struct pol_ref at;
	struct pol_ref *labels[POL_MAX_TOOLS];	/* per tool */
	size_t nlabels[POL_MAX_TOOLS];
	struct pol_ref *flow_labels;		/* per flow */
};

/* A detector's class names and where it was written (detect:). */
struct raw_detector {
	struct pol_ref *classes;
	size_t nclasses;
	struct pol_ref at;
};

#define POL_MAX_INCLUDE_DEPTH 8
#define POL_MAX_FILES 64

/* Loader state across the main file and its includes. */
struct pol_loader {
	struct pol_walk w;		/* the document being walked */
	struct pol_snapshot *s;
	char *files[POL_MAX_FILES];	/* owned: every file read */
	size_t nfiles;
	int depth;
	struct raw_tenant *rt;		/* parallel to s->tenants */
	struct raw_rule *rr;		/* parallel to s->rules */
	struct raw_jurisdiction *rj;	/* parallel to s->jurisdictions */
	struct raw_agent *ra;		/* parallel to s->agents */
	struct raw_detector *rdet;	/* parallel to s->detect.d */
	struct pol_ref *classes;	/* data_classes as written */
	size_t nclass_refs;
	bool have_audit;
	/* Canonical text of every file, in load order, for the version. */
	unsigned char digest_chain[32];
	/* Each limit's tenant, app and agent as written (issue 16). */
	struct pol_ref (*rlimits)[3];
	struct raw_provider *rp;	/* parallel to s->providers */
};

/* Append one element to a growing array; false when out of memory. */
bool pol_grow(void *arrp, size_t *count, size_t elem);
/*
 * The one way the loader compares ids: an item whose id was missing is
 * kept (its error already said) and matches nothing, so that every
 * cross-reference and duplicate check goes on to report the rest.
 */
static inline bool
pol_id_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

void pol_err_ref(struct pol_walk *w, const struct pol_ref *r,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Read a scalar or a list of scalars as references. */
bool pol_refs(struct pol_walk *w, yaml_node_t *n, const char *what,
    struct pol_ref **out, size_t *count);
/* Where n stands (file, line, column), for messages after the walk. */
void pol_at(const struct pol_walk *w, const yaml_node_t *n,
    struct pol_ref *at);
bool pol_ref1(struct pol_walk *w, yaml_node_t *n, const char *what,
    struct pol_ref *out);
void pol_refs_free(struct pol_ref *r, size_t n);

/* map's required 'id': 1 to 64 of letters, digits, '-', '_', '.'.  what
 * names the item in messages ("tenant", "agent"). */
void pol_load_id(struct pol_walk *w, yaml_node_t *map, const char *what,
    char **out);
/* A list of "sha256:<hex>" key digests into a new array. */
void pol_load_keys(struct pol_walk *w, yaml_node_t *v,
    unsigned char (**keys)[32], size_t *nkeys);
/* Class names to a bit mask; unknown names are errors (compile.c). */
uint64_t pol_class_mask(struct pol_loader *l, const struct pol_ref *refs,
    size_t n, const char *what);

/* Sections of a rules file (load_items.c). */
void pol_load_server(struct pol_walk *w, yaml_node_t *n, struct pol_server *s);
void pol_load_upstream(struct pol_walk *w, yaml_node_t *n,
    struct pol_upstream *u);
void pol_load_audit(struct pol_loader *l, yaml_node_t *n);
void pol_load_secrets(struct pol_walk *w, yaml_node_t *n,
    struct pol_secrets *sec);
void pol_load_providers(struct pol_loader *l, yaml_node_t *n);
void pol_load_tenants(struct pol_loader *l, yaml_node_t *n);
void pol_load_rules(struct pol_loader *l, yaml_node_t *n);
void pol_load_jurisdictions(struct pol_loader *l, yaml_node_t *n);
void pol_load_classes(struct pol_loader *l, yaml_node_t *n);
void pol_load_devcreds(struct pol_loader *l, yaml_node_t *n);
void pol_load_agents(struct pol_loader *l, yaml_node_t *n);
/* limits:, prices:, state: (load_limits.c); names resolved after the
 * rest by pol_check_limits, which also frees the raw names. */
void pol_load_limits(struct pol_loader *l, yaml_node_t *n);
void pol_load_prices(struct pol_loader *l, yaml_node_t *n);
void pol_load_state(struct pol_walk *w, yaml_node_t *n, struct pol_state *st);
void pol_check_limits(struct pol_loader *l);
void pol_limits_free(struct pol_snapshot *s);
/* Limits and prices in canonical form, for the policy version. */
json_t *pol_limits_json(const struct pol_snapshot *s);
/* detect: read, then resolve classes and compile (load_detect.c). */
void pol_load_detect(struct pol_loader *l, yaml_node_t *n);
void pol_compile_detect(struct pol_loader *l);
json_t *pol_detect_json(const struct pol_snapshot *s);
void pol_free_raw_detect(struct pol_loader *l);
void pol_detect_free(struct pol_detect *d);
/* Is the host of an http:// URL a loopback address (load_items.c)? */
bool pol_http_loopback(const char *url);
/* mcp_servers: (load_mcp.c). */
void pol_load_mcp_servers(struct pol_loader *l, yaml_node_t *n);
/* Resolve agents' tenants and labels (load_agents.c). */
void pol_compile_agents(struct pol_loader *l);
/* Resolve routes' residency places (compile.c). */
void pol_compile_providers(struct pol_loader *l);
void pol_free_raw_agents(struct pol_loader *l);

/* Resolve names, build indexes and the policy version (compile.c). */
enum wd_err pol_compile(struct pol_loader *l);
void pol_loader_free_raw(struct pol_loader *l);

void pol_err(struct pol_walk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Follow a node id; NULL (and an error) past the visit cap. */
yaml_node_t *pol_node(struct pol_walk *w, int id);

/* Is n a mapping / sequence / scalar?  If not, report "what must be ...". */
bool pol_is_map(struct pol_walk *w, yaml_node_t *n, const char *what);
bool pol_is_seq(struct pol_walk *w, yaml_node_t *n, const char *what);
bool pol_is_scalar(struct pol_walk *w, yaml_node_t *n, const char *what);

/*
 * Report keys of map n that are not in known (NULL-terminated), with a
 * "did you mean" hint, and duplicate keys.  what names the section.
 */
void pol_check_keys(struct pol_walk *w, yaml_node_t *n,
    const char *const *known, const char *what);

/* The value node of key in map n, or NULL when absent. */
yaml_node_t *pol_get(struct pol_walk *w, yaml_node_t *n, const char *key);

/* Scalar readers: report and return false on a wrong type or range. */
bool pol_str(struct pol_walk *w, yaml_node_t *n, const char *what, char **out);
bool pol_int(struct pol_walk *w, yaml_node_t *n, const char *what,
    long long min, long long max, long long *out);
bool pol_bool(struct pol_walk *w, yaml_node_t *n, const char *what, bool *out);

/* A sequence of strings; *out is a NULL-free array of n strings. */
bool pol_str_list(struct pol_walk *w, yaml_node_t *n, const char *what,
    char ***out, size_t *count);

const char *pol_scalar(const yaml_node_t *n);


#endif /* POL_INT_H */
