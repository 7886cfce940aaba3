/*
 * yaml.c - checked walk over a libyaml document: typed reads that report
 * FILE:LINE:COL errors and keep going.
 */
#include "policy/pol_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void
pol_err(struct pol_walk *w, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	w->nerrors++;
	if (w->errs == NULL)
		return;
	/* libyaml marks are 0-based; editors count from 1. */
	if (n != NULL)
		fprintf(w->errs, "%s:%zu:%zu: ", w->file,
		    n->start_mark.line + 1, n->start_mark.column + 1);
	else
		fprintf(w->errs, "%s: ", w->file);
	va_start(ap, fmt);
	vfprintf(w->errs, fmt, ap);
	va_end(ap);
	fputc('\n', w->errs);
}

yaml_node_t *
pol_node(struct pol_walk *w, int id)
{
	if (++w->visits > POL_MAX_VISITS) {
		if (w->visits == POL_MAX_VISITS + 1)
			pol_err(w, NULL, "document too large or too many aliases");
		return NULL;
	}
	return yaml_document_get_node(w->doc, id);
}

const char *
pol_scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static const char *
kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "empty";
	}
}

bool
pol_is_map(struct pol_walk *w, yaml_node_t *n, const char *what)
{
	if (n->type == YAML_MAPPING_NODE)
		return true;
	pol_err(w, n, "%s must be a mapping, not %s", what, kind_name(n));
	return false;
}

bool
pol_is_seq(struct pol_walk *w, yaml_node_t *n, const char *what)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return true;
	pol_err(w, n, "%s must be a list, not %s", what, kind_name(n));
	return false;
}

bool
pol_is_scalar(struct pol_walk *w, yaml_node_t *n, const char *what)
{
	if (n->type == YAML_SCALAR_NODE)
		return true;
	pol_err(w, n, "%s must be a scalar, not %s", what, kind_name(n));
	return false;
}

void
pol_check_keys(struct pol_walk *w, yaml_node_t *n, const char *const *known,
    const char *what)
{
	yaml_node_pair_t *p, *q;

	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = pol_node(w, p->key);
		const char *best = NULL, *key;
		size_t bestd = (size_t)-1;

		if (k == NULL)
			return;
		if (k->type != YAML_SCALAR_NODE) {
			pol_err(w, k, "keys in %s must be scalars", what);
			continue;
		}
		key = pol_scalar(k);
		for (q = n->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = yaml_document_get_node(w->doc, q->key);

			if (k2 != NULL && k2->type == YAML_SCALAR_NODE &&
			    strcmp(pol_scalar(k2), key) == 0) {
				pol_err(w, k, "duplicate key '%s' in %s", key, what);
				break;
			}
		}
		for (size_t i = 0; known[i] != NULL; i++) {
			size_t d;

			if (strcmp(known[i], key) == 0) {
				best = NULL;
				bestd = 0;
				break;
			}
			d = wd_edit_distance(known[i], key);
			if (d < bestd) {
				bestd = d;
				best = known[i];
			}
		}
		if (bestd == 0)
			continue;
		if (best != NULL && bestd <= 2)
			pol_err(w, k, "unknown key '%s' in %s (did you mean '%s'?)",
			    key, what, best);
		else
			pol_err(w, k, "unknown key '%s' in %s", key, what);
	}
}

yaml_node_t *
pol_get(struct pol_walk *w, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *p;

	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp(pol_scalar(k), key) == 0)
			return pol_node(w, p->value);
	}
	return NULL;
}

bool
pol_str(struct pol_walk *w, yaml_node_t *n, const char *what, char **out)
{
	if (!pol_is_scalar(w, n, what))
		return false;
	if (n->data.scalar.length == 0) {
		pol_err(w, n, "%s must not be empty", what);
		return false;
	}
	if (strlen(pol_scalar(n)) != n->data.scalar.length) {
		pol_err(w, n, "%s contains a NUL byte", what);
		return false;
	}
	*out = strdup(pol_scalar(n));
	if (*out == NULL) {
		pol_err(w, n, "out of memory");
		return false;
	}
	return true;
}

bool
pol_int(struct pol_walk *w, yaml_node_t *n, const char *what, long long min,
    long long max, long long *out)
{
	const char *s;
	char *end;
	long long v;

	if (!pol_is_scalar(w, n, what))
		return false;
	s = pol_scalar(n);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0) {
		pol_err(w, n, "%s must be an integer, not '%s'", what, s);
		return false;
	}
	if (v < min || v > max) {
		pol_err(w, n, "%s must be between %lld and %lld, not %lld",
		    what, min, max, v);
		return false;
	}
	*out = v;
	return true;
}

bool
pol_bool(struct pol_walk *w, yaml_node_t *n, const char *what, bool *out)
{
	const char *s;

	if (!pol_is_scalar(w, n, what))
		return false;
	s = pol_scalar(n);
	if (strcmp(s, "true") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(s, "false") == 0) {
		*out = false;
		return true;
	}
	pol_err(w, n, "%s must be true or false, not '%s'", what, s);
	return false;
}

bool
pol_str_list(struct pol_walk *w, yaml_node_t *n, const char *what,
    char ***out, size_t *count)
{
	yaml_node_item_t *it;
	size_t len, i = 0;
	char **v;
	bool ok = true;

	if (!pol_is_seq(w, n, what))
		return false;
	len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	v = calloc(len ? len : 1, sizeof(*v));
	if (v == NULL) {
		pol_err(w, n, "out of memory");
		return false;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(w, *it);

		if (e == NULL || !pol_str(w, e, what, &v[i])) {
			ok = false;
			continue;
		}
		i++;
	}
	*out = v;
	*count = i;
	return ok;
}

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char iso3166[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI "
    "BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN "
    "CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK "
    "FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM "
    "HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK "
    "ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP "
    "NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW "
    "SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF "
    "TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS YE YT ZA ZM ZW";

bool
pol_country_valid(const char *code)
{
	if (strlen(code) != 2 || code[0] < 'A' || code[0] > 'Z' ||
	    code[1] < 'A' || code[1] > 'Z')
		return false;
	for (const char *p = iso3166; *p != '\0'; p += 3) {
		if (p[0] == code[0] && p[1] == code[1])
			return true;
		if (p[2] == '\0')
			break;
	}
	return false;
}

void
pol_err_ref(struct pol_walk *w, const struct pol_ref *r, const char *fmt, ...)
{
	va_list ap;

	w->nerrors++;
	if (w->errs == NULL)
		return;
	fprintf(w->errs, "%s:%zu:%zu: ", r->file, r->line, r->col);
	va_start(ap, fmt);
	vfprintf(w->errs, fmt, ap);
	va_end(ap);
	fputc('\n', w->errs);
}

bool
pol_grow(void *arrp, size_t *count, size_t elem)
{
	void **arr = arrp;
	void *np;

	/* Rules files are small: exact growth keeps this obviously right. */
	np = realloc(*arr, (*count + 1) * elem);
	if (np == NULL)
		return false;
	memset((char *)np + *count * elem, 0, elem);
	*arr = np;
	(*count)++;
	return true;
}

void
pol_at(const struct pol_walk *w, const yaml_node_t *n, struct pol_ref *at)
{
	at->file = w->file;
	at->line = n->start_mark.line + 1;
	at->col = n->start_mark.column + 1;
}

bool
pol_ref1(struct pol_walk *w, yaml_node_t *n, const char *what,
    struct pol_ref *out)
{
	memset(out, 0, sizeof(*out));
	if (!pol_str(w, n, what, &out->name))
		return false;
	pol_at(w, n, out);
	return true;
}

bool
pol_refs(struct pol_walk *w, yaml_node_t *n, const char *what,
    struct pol_ref **out, size_t *count)
{
	yaml_node_item_t *it;
	size_t len;
	bool ok = true;

	*out = NULL;
	*count = 0;
	if (n->type == YAML_SCALAR_NODE) {
		*out = calloc(1, sizeof(**out));
		if (*out == NULL || !pol_ref1(w, n, what, *out))
			return false;
		*count = 1;
		return true;
	}
	if (!pol_is_seq(w, n, what))
		return false;
	len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	*out = calloc(len ? len : 1, sizeof(**out));
	if (*out == NULL)
		return false;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *e = pol_node(w, *it);

		if (e == NULL || !pol_ref1(w, e, what, &(*out)[*count])) {
			ok = false;
			continue;
		}
		(*count)++;
	}
	return ok;
}

void
pol_refs_free(struct pol_ref *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].name);
	free(r);
}
