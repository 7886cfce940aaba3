/*
 * decide.c - the policy decision: a pure function of a snapshot and the
 * facts of one request.
 *
 * 1. Effective facts: the tenant's data classes and subject region,
 *    narrowed (never widened) by X-Warden-Data-Class and
 *    X-Warden-Subject-Region.
 * 2. Applicable rules: those indexed under one of the request's data
 *    classes, plus those for every request, whose tenant and region
 *    conditions hold.
 * 3. Routes: the tenant's routes that serve the model, in preference
 *    order, minus each route an applicable rule excludes (residency:
 *    provider country; retention: zero-data-retention, maximum days).
 * 4. What warden may keep of payloads: the least that any source allows.
 *
 * No I/O, no allocation, no global state: the same inputs give the same
 * decision, which is what makes a decision reproducible from the audit log.
 */
#include "policy/pol.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void
deny(struct pol_decision *d, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
deny(struct pol_decision *d, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->verdict = POL_DENY;
	d->status = status;
	d->code = code;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
}

static void
reason(struct pol_decision *d, const char *rule, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
reason(struct pol_decision *d, const char *rule, const char *code,
    const char *fmt, ...)
{
	struct pol_reason *r;
	va_list ap;

	if (d->nreasons >= POL_MAX_REASONS)
		return;
	r = &d->reasons[d->nreasons++];
	r->rule_id = rule;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/* Resolve a region header: a country code or a jurisdiction name. */
static bool
region_set(const struct pol_snapshot *s, const char *name, struct pol_cset *out)
{
	int idx = pol_country_index(name);

	memset(out, 0, sizeof(*out));
	if (idx >= 0) {
		pol_cset_add(out, idx);
		return true;
	}
	for (size_t i = 0; i < s->njurisdictions; i++)
		if (strcmp(s->jurisdictions[i].name, name) == 0) {
			*out = s->jurisdictions[i].set;
			return true;
		}
	return false;
}

static bool
cset_subset(const struct pol_cset *a, const struct pol_cset *b)
{
	for (size_t i = 0; i < POL_CSET_WORDS; i++)
		if (a->w[i] & ~b->w[i])
			return false;
	return true;
}

static bool
cset_meets(const struct pol_cset *a, const struct pol_cset *b)
{
	for (size_t i = 0; i < POL_CSET_WORDS; i++)
		if (a->w[i] & b->w[i])
			return true;
	return false;
}

/* Parse "a, b" into a class mask; false (and a deny) on unknown names. */
static bool
header_classes(const struct pol_snapshot *s, const char *v, uint64_t *mask,
    struct pol_decision *d)
{
	char name[65];

	*mask = 0;
	while (*v != '\0') {
		size_t n = 0;
		int bit;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (*v == '\0')
			break;
		while (v[n] != '\0' && v[n] != ',')
			n++;
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n >= sizeof(name)) {
			deny(d, 400, "invalid_data_class", "X-Warden-Data-Class: "
			    "class name too long");
			return false;
		}
		memcpy(name, v, n);
		name[n] = '\0';
		bit = pol_class_bit(s, name);
		if (bit < 0) {
			deny(d, 400, "invalid_data_class", "X-Warden-Data-Class: "
			    "unknown data class '%s'", name);
			return false;
		}
		*mask |= 1ull << bit;
		v += n;
		while (*v != '\0' && *v != ',')
			v++;
	}
	return true;
}

static bool
effective_facts(const struct pol_snapshot *s, const struct pol_facts *f,
    struct pol_decision *d, bool *has_region, struct pol_cset *region)
{
	const struct pol_tenant *t = f->tenant;

	d->classes = t->classes;
	if (f->hdr_classes != NULL) {
		uint64_t mask, dropped;

		if (!header_classes(s, f->hdr_classes, &mask, d))
			return false;
		dropped = t->classes & ~mask & ~t->may_omit;
		if (dropped != 0) {
			int b = __builtin_ctzll(dropped);

			deny(d, 400, "data_class_not_omittable", "X-Warden-Data-Class "
			    "may not leave out '%s': tenant '%s' does not list it "
			    "in may_omit", s->classes[b], t->id);
			return false;
		}
		d->classes = mask;
	}
	*has_region = t->has_region;
	if (t->has_region) {
		*region = t->region;
		snprintf(d->region, sizeof(d->region), "%s", t->region_text);
	}
	if (f->hdr_region != NULL) {
		struct pol_cset hs;

		if (!region_set(s, f->hdr_region, &hs)) {
			deny(d, 400, "invalid_subject_region", "X-Warden-Subject-Region: "
			    "'%.60s' is neither a country code nor a jurisdiction",
			    f->hdr_region);
			return false;
		}
		if (t->has_region && !cset_subset(&hs, &t->region)) {
			deny(d, 400, "subject_region_widening", "X-Warden-Subject-"
			    "Region '%.60s' is outside tenant '%s''s region '%s'",
			    f->hdr_region, t->id, t->region_text);
			return false;
		}
		*has_region = true;
		*region = hs;
		snprintf(d->region, sizeof(d->region), "%s", f->hdr_region);
	}
	return true;
}

static bool
rule_applies(const struct pol_rule *r, const struct pol_tenant *t,
    bool has_region, const struct pol_cset *region)
{
	if (r->nwhen_tenants > 0) {
		bool hit = false;

		for (size_t i = 0; i < r->nwhen_tenants && !hit; i++)
			hit = strcmp(r->when_tenants[i], t->id) == 0;
		if (!hit)
			return false;
	}
	/* Some of the data subjects in the rule's region: it applies. */
	if (r->has_when_region && (!has_region || !cset_meets(region, &r->when_region)))
		return false;
	return true;
}

static bool
retention_ok(const struct pol_provider *p, int max_days)
{
	return p->zdr || (p->retention_days >= 0 && p->retention_days <= max_days);
}

/* Check one route against the matched rules; false if excluded. */
static bool
route_ok(const struct pol_provider *p, const struct pol_rule *const *rules,
    size_t nrules, const struct pol_tenant *t, struct pol_decision *d,
    bool *by_residency)
{
	bool ok = true;

	for (size_t i = 0; i < nrules; i++) {
		const struct pol_rule *r = rules[i];

		if (r->has_country && !pol_cset_has(&r->country, p->cidx)) {
			reason(d, r->id, "residency", "route '%s' processes data in "
			    "%s, outside %s", p->id, p->country, r->country_text);
			*by_residency = true;
			ok = false;
		}
		if (r->require_zdr && !p->zdr) {
			reason(d, r->id, "retention", "route '%s' has no "
			    "zero-data-retention contract", p->id);
			ok = false;
		}
		if (r->max_days >= 0 && !retention_ok(p, r->max_days)) {
			reason(d, r->id, "retention", "route '%s' keeps data longer "
			    "than %d days", p->id, r->max_days);
			ok = false;
		}
	}
	if (t->max_retention_days >= 0 && !retention_ok(p, t->max_retention_days)) {
		reason(d, "tenant.max_retention_days", "retention", "route '%s' "
		    "keeps data longer than tenant '%s' allows (%d days)", p->id,
		    t->id, t->max_retention_days);
		ok = false;
	}
	return ok;
}

static void
add_matched(struct pol_decision *d, const struct pol_rule *r,
    const struct pol_rule **list, size_t *n)
{
	if (*n < POL_MAX_REASONS)
		list[(*n)++] = r;
	if (d->nmatched < POL_MAX_REASONS)
		d->matched[d->nmatched++] = r->id;
	if (r->has_keep && r->keep < d->keep)
		d->keep = r->keep;
	if (r->keep_ttl_days >= 0 && r->keep_ttl_days < d->keep_ttl_days)
		d->keep_ttl_days = r->keep_ttl_days;
}

enum wd_err
pol_decide(const struct pol_snapshot *s, const struct pol_facts *f,
    struct pol_decision *d)
{
	const struct pol_tenant *t = f->tenant;
	const struct pol_rule *rules[POL_MAX_REASONS];
	size_t nrules = 0, nserve = 0, nres = 0;
	struct pol_cset region;
	bool has_region = false;

	memset(d, 0, sizeof(*d));
	d->policy_version = s->version;
	d->keep = s->keep;
	d->keep_ttl_days = s->keep_ttl_days;
	d->model = f->model;
	d->stream = f->stream;
	if (t == NULL)
		return WD_EINVAL;
	d->tenant = t->id;
	if (!effective_facts(s, f, d, &has_region, &region))
		return WD_OK;

	/* Rules that can apply: indexed by class, each seen once (from the
	 * list of its lowest class bit that the request has). */
	for (size_t i = 0; i < s->nalways; i++)
		if (rule_applies(s->always[i], t, has_region, &region))
			add_matched(d, s->always[i], rules, &nrules);
	for (uint64_t m = d->classes; m != 0; m &= m - 1) {
		int b = __builtin_ctzll(m);

		for (size_t i = 0; i < s->nby_class[b]; i++) {
			const struct pol_rule *r = s->by_class[b][i];
			uint64_t both = r->when_classes & d->classes;

			if (__builtin_ctzll(both) != b)
				continue;
			if (rule_applies(r, t, has_region, &region))
				add_matched(d, r, rules, &nrules);
		}
	}

	for (size_t i = 0; i < t->nroutes; i++) {
		const struct pol_provider *p = t->routes[i];
		bool by_res = false;

		if (!pol_provider_serves(p, f->model))
			continue;
		nserve++;
		if (!route_ok(p, rules, nrules, t, d, &by_res)) {
			nres += by_res;
			continue;
		}
		if (d->nroutes < POL_MAX_ROUTES)
			d->routes[d->nroutes++] = p;
	}
	if (nserve == 0) {
		deny(d, 404, "model_not_found", "the model '%.200s' does not exist "
		    "or this key may not use it", f->model);
		return WD_OK;
	}
	if (d->nroutes == 0) {
		char ids[256] = "";
		size_t len = 0;

		for (size_t i = 0; i < d->nreasons; i++) {
			bool seen = false;

			for (size_t j = 0; j < i && !seen; j++)
				seen = strcmp(d->reasons[j].rule_id,
				    d->reasons[i].rule_id) == 0;
			if (!seen && len < sizeof(ids))
				len += (size_t)snprintf(ids + len, sizeof(ids) - len,
				    "%s%s", len ? ", " : "", d->reasons[i].rule_id);
		}
		/* Residency when every route fell to a residency rule. */
		deny(d, 403, nres == nserve ? "residency" : "retention",
		    "no compliant route for model '%.100s': excluded by %s",
		    f->model, ids);
		return WD_OK;
	}
	d->verdict = POL_ALLOW;
	return WD_OK;
}

const char *
pol_verdict_name(enum pol_verdict v)
{
	switch (v) {
	case POL_ALLOW:
		return "allow";
	case POL_DENY:
		return "deny";
	case POL_MODIFY:
		return "modify";
	}
	return "deny";
}

json_t *
pol_decision_json(const struct pol_snapshot *s, const struct pol_decision *d)
{
	json_t *o = json_object(), *routes = json_array(), *matched = json_array();
	json_t *reasons = json_array(), *classes = json_array();

	for (size_t i = 0; i < d->nroutes; i++)
		json_array_append_new(routes, json_string(d->routes[i]->id));
	for (size_t i = 0; i < d->nmatched; i++)
		json_array_append_new(matched, json_string(d->matched[i]));
	for (size_t i = 0; i < d->nreasons; i++)
		json_array_append_new(reasons, json_pack("{s:s,s:s,s:s}", "rule",
		    d->reasons[i].rule_id, "code", d->reasons[i].code, "message",
		    d->reasons[i].message));
	for (size_t b = 0; b < s->nclasses; b++)
		if (d->classes & (1ull << b))
			json_array_append_new(classes, json_string(s->classes[b]));
	json_object_set_new(o, "id", json_string(d->id));
	json_object_set_new(o, "verdict", json_string(pol_verdict_name(d->verdict)));
	if (d->verdict == POL_DENY) {
		json_object_set_new(o, "status", json_integer(d->status));
		json_object_set_new(o, "code", json_string(d->code));
		json_object_set_new(o, "message", json_string(d->message));
	}
	json_object_set_new(o, "policy_version", json_string(d->policy_version));
	json_object_set_new(o, "facts", json_pack("{s:s?,s:s?,s:b,s:o,s:s?}",
	    "tenant", d->tenant, "model", d->model, "stream", d->stream,
	    "data_classes", classes, "subject_region",
	    d->region[0] ? d->region : NULL));
	json_object_set_new(o, "route", d->nroutes > 0 ?
	    json_string(d->routes[0]->id) : json_null());
	json_object_set_new(o, "routes", routes);
	json_object_set_new(o, "matched_rules", matched);
	json_object_set_new(o, "reasons", reasons);
	json_object_set_new(o, "keep", json_pack("{s:s,s:i}", "payloads",
	    pol_keep_name(d->keep), "ttl_days", d->keep_ttl_days));
	return o;
}
