/*
 * load_detect.c - the `detect:` section: which content detectors run on
 * every request, which data classes a detection adds, and what else it
 * does (redact the matched text, block the request), plus the rules' own
 * patterns.
 *
 *   detect:
 *     iban: financial                      # a class (or a list of them)
 *     secret: { action: block }
 *     card: { class: financial, action: redact, answers: true }
 *     patterns:
 *       - { id: employee-id, regex: 'EMP-[0-9]{6}', class: personal }
 *     max_memory: 67108864                 # scanner state in flight
 *
 * The detectors are compiled into one database (detect/) when the rules
 * load; a pattern Hyperscan refuses is a load error at its place.
 */
#include "policy/pol_int.h"
#include "detect/det.h"

#include <stdlib.h>
#include <string.h>

static const char *const entry_keys[] = { "class", "action", "answers", NULL };
static const char *const pattern_keys[] = { "id", "regex", "class", "action",
	"answers", NULL };

const char *
pol_det_action_name(enum pol_det_action a)
{
	switch (a) {
	case POL_DET_REDACT:
		return "redact";
	case POL_DET_BLOCK:
		return "block";
	default:
		return "classify";
	}
}

static struct pol_detector *
add_detector(struct pol_loader *l, const char *id, int builtin,
    yaml_node_t *at)
{
	struct pol_detect *d = &l->s->detect;
	size_t n = d->n;

	if (n >= POL_MAX_DETECTORS) {
		pol_err(&l->w, at, "more than %d detectors", POL_MAX_DETECTORS);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(d->d[i].id, id) == 0) {
			pol_err(&l->w, at, "detector '%s' given twice", id);
			return NULL;
		}
	if (!pol_grow(&d->d, &d->n, sizeof(*d->d)))
		return NULL;
	if (!pol_grow(&l->rdet, &n, sizeof(*l->rdet))) {
		d->n--;
		return NULL;
	}
	memset(&d->d[d->n - 1], 0, sizeof(d->d[0]));
	memset(&l->rdet[n - 1], 0, sizeof(l->rdet[0]));
	d->d[d->n - 1].id = strdup(id);
	d->d[d->n - 1].builtin = builtin;
	pol_at(&l->w, at, &l->rdet[n - 1].at);
	l->rdet[n - 1].at.name = strdup(id);
	return &d->d[d->n - 1];
}

/* class / action / answers of one detector (a map), or its class alone. */
static void
load_entry(struct pol_loader *l, yaml_node_t *v, struct pol_detector *det,
    struct raw_detector *raw, bool pattern)
{
	struct pol_walk *w = &l->w;
	yaml_node_t *c;
	char *act = NULL;

	if (v->type == YAML_SCALAR_NODE || v->type == YAML_SEQUENCE_NODE) {
		pol_refs(w, v, "class", &raw->classes, &raw->nclasses);
		return;
	}
	if (!pol_is_map(w, v, "a detector (a class, or { class, action })"))
		return;
	pol_check_keys(w, v, pattern ? pattern_keys : entry_keys, "a detector");
	if ((c = pol_get(w, v, "class")) != NULL)
		pol_refs(w, c, "class", &raw->classes, &raw->nclasses);
	if ((c = pol_get(w, v, "answers")) != NULL)
		pol_bool(w, c, "answers", &det->answers);
	if ((c = pol_get(w, v, "action")) != NULL && pol_str(w, c, "action", &act)) {
		if (strcmp(act, "classify") == 0)
			det->action = POL_DET_CLASSIFY;
		else if (strcmp(act, "redact") == 0)
			det->action = POL_DET_REDACT;
		else if (strcmp(act, "block") == 0)
			det->action = POL_DET_BLOCK;
		else
			pol_err(w, c, "unknown action '%.60s' (classify, redact or "
			    "block)", act);
	}
	free(act);
	if (raw->nclasses == 0 && det->action == POL_DET_CLASSIFY && !det->answers)
		pol_err(w, v, "detector '%s' adds no class, redacts nothing and "
		    "blocks nothing: give it a class or an action", det->id);
}

static void
load_patterns(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_walk *w = &l->w;

	if (!pol_is_seq(w, n, "detect.patterns"))
		return;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++) {
		yaml_node_t *p = pol_node(w, *it), *re;
		struct pol_detector *det;
		char *id = NULL;

		if (p == NULL || !pol_is_map(w, p, "a detect pattern"))
			continue;
		pol_load_id(w, p, "detect pattern", &id);
		if (id == NULL)
			continue;
		if (det_builtin_index(id) >= 0) {
			pol_err(w, p, "pattern id '%s' is a built-in detector's name",
			    id);
			free(id);
			continue;
		}
		det = add_detector(l, id, -1, p);
		free(id);
		if (det == NULL)
			continue;
		if ((re = pol_get(w, p, "regex")) == NULL)
			pol_err(w, p, "detect pattern '%s' without 'regex'", det->id);
		else if (pol_str(w, re, "regex", &det->regex) &&
		    (strlen(det->regex) == 0 || strlen(det->regex) > DET_MAX_REGEX))
			pol_err(w, re, "regex: 1 to %d bytes", DET_MAX_REGEX);
		load_entry(l, p, det, &l->rdet[l->s->detect.n - 1], true);
	}
}

void
pol_load_detect(struct pol_loader *l, yaml_node_t *n)
{
	struct pol_walk *w = &l->w;
	const char *known[DET_NBUILTIN + 3];
	long long mem;

	if (!pol_is_map(w, n, "detect"))
		return;
	for (int i = 0; i < DET_NBUILTIN; i++)
		known[i] = det_builtin_name(i);
	known[DET_NBUILTIN] = "patterns";
	known[DET_NBUILTIN + 1] = "max_memory";
	known[DET_NBUILTIN + 2] = NULL;
	/* Unknown detector names get a "did you mean" here. */
	pol_check_keys(w, n, known, "detect");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	    p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key), *v = pol_node(w, p->value);
		const char *name = k ? pol_scalar(k) : NULL;
		struct pol_detector *det;
		int b;

		if (name == NULL || v == NULL)
			continue;
		if (strcmp(name, "patterns") == 0) {
			load_patterns(l, v);
			continue;
		}
		if (strcmp(name, "max_memory") == 0) {
			if (pol_int(w, v, "max_memory", 1, 1ll << 40, &mem))
				l->s->detect.max_memory = (size_t)mem;
			continue;
		}
		if ((b = det_builtin_index(name)) < 0)
			continue;	/* reported by pol_check_keys */
		if ((det = add_detector(l, name, b, k)) != NULL)
			load_entry(l, v, det, &l->rdet[l->s->detect.n - 1], false);
	}
}

/* Resolve classes, name codes and placeholders, compile the database. */
void
pol_compile_detect(struct pol_loader *l)
{
	struct pol_detect *d = &l->s->detect;
	struct det_spec specs[POL_MAX_DETECTORS];
	char err[256];
	size_t bad;
	enum wd_err rc;

	if (d->n == 0)
		return;
	for (size_t i = 0; i < d->n; i++) {
		struct pol_detector *det = &d->d[i];

		det->classes = pol_class_mask(l, l->rdet[i].classes,
		    l->rdet[i].nclasses, "data class");
		if (det->answers)
			d->answers |= 1ull << i;
		if (det->id == NULL ||
		    asprintf(&det->code, "detected_%s", det->id) < 0 ||
		    asprintf(&det->placeholder, "[REDACTED:%s]", det->id) < 0) {
			det->code = det->placeholder = NULL;
			l->w.nerrors++;
			return;
		}
		specs[i].id = det->id;
		specs[i].builtin = det->builtin;
		specs[i].regex = det->regex;
		if (det->builtin < 0 && det->regex == NULL)
			return;		/* reported */
	}
	rc = det_db_compile(specs, d->n, &d->db, err, sizeof(err), &bad);
	if (rc == WD_OK)
		det_db_set_budget(d->db, d->max_memory);
	if (rc == WD_ECONFIG)
		pol_err_ref(&l->w, &l->rdet[bad].at, "detector '%s': Hyperscan "
		    "cannot compile it: %s", d->d[bad].id, err);
	else if (rc != WD_OK)
		pol_err_ref(&l->w, &l->rdet[0].at, "detectors: %s",
		    wd_strerror(rc));
}

json_t *
pol_detect_json(const struct pol_snapshot *s)
{
	json_t *o = json_object();

	for (size_t i = 0; i < s->detect.n; i++) {
		const struct pol_detector *det = &s->detect.d[i];
		json_t *classes = json_array();

		for (size_t b = 0; b < s->nclasses; b++)
			if (det->classes & (1ull << b))
				json_array_append_new(classes, json_string(s->classes[b]));
		json_object_set_new(o, det->id, json_pack("{s:s?,s:o,s:s,s:b}",
		    "regex", det->regex, "classes", classes, "action",
		    pol_det_action_name(det->action), "answers", det->answers));
	}
	return o;
}

void
pol_free_raw_detect(struct pol_loader *l)
{
	for (size_t i = 0; l->rdet != NULL && i < l->s->detect.n; i++) {
		pol_refs_free(l->rdet[i].classes, l->rdet[i].nclasses);
		free(l->rdet[i].at.name);
	}
	free(l->rdet);
	l->rdet = NULL;
}

void
pol_detect_free(struct pol_detect *d)
{
	det_db_free(d->db);
	for (size_t i = 0; i < d->n; i++) {
		free(d->d[i].id);
		free(d->d[i].regex);
		free(d->d[i].code);
		free(d->d[i].placeholder);
	}
	free(d->d);
	memset(d, 0, sizeof(*d));
}
