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

bool pol_country_valid(const char *code);

#endif /* POL_INT_H */
