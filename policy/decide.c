/*
 * decide.c - the policy decision: a pure function of a snapshot and the
 * facts of one request.
 *
 * 1. Effective facts: the tenant's data classes and subject region,
 *    narrowed (never widened) by X-Warden-Data-Class and
 *    X-Warden-Subject-Region.
 *    Content detections (gateway/detect.c) add their data classes,
 *    never remove any; a detector whose action is block denies.
 * 2. Applicable rules: those indexed under one of the request's data
 *    classes, plus those for every request, whose tenant and region
 *    conditions hold.  A request whose subject region is unknown is
 *    treated as if its subjects could be anywhere: every regional rule
 *    applies (fail closed).
 * 3. Routes: the tenant's routes that serve the model, in preference
 *    order, minus each route an applicable rule excludes (residency:
 *    provider country; retention: zero-data-retention, maximum days).
 *    Every applicable rule is enforced; the decision lists the first
 *    POL_MAX_REASONS of them and counts the rest.
 * 4. What warden may keep of payloads: the audit default unless rules
 *    say otherwise; when several rules do, the least of theirs.
 *
 * No I/O, no allocation, no string formatting on the allow path: the same
 * inputs give the same decision, which makes a decision reproducible from
 * the audit log.
 */
#include "policy/pol.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void
deny(struct pol_decision *d, enum wd_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
deny(struct pol_decision *d, enum wd_code code, const char *fmt, ...)
{
	va_list ap;

	d->verdict = POL_DENY;
	d->status = wd_errdef(code)->status;
	d->code = wd_errdef(code)->code;
	d->ecode = code;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
}

static void
reason(struct pol_decision *d, const struct pol_rule *rule,
    const struct pol_provider *route, enum pol_why why)
{
	d->nreasons_total++;
	if (d->nreasons >= POL_MAX_REASONS)
		return;
	d->reasons[d->nreasons].rule = rule;
	d->reasons[d->nreasons].route = route;
	d->reasons[d->nreasons].why = why;
	d->nreasons++;
}

/* Resolve a region header: a country code or a jurisdiction name. */
static bool
region_set(const struct pol_snapshot *s, const char *name, struct pol_cset *out)
{
	memset(out, 0, sizeof(*out));
	if (pol_country_valid(name)) {
		pol_cset_add(out, pol_country_index(name));
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

/* Parse "a, b" into a class mask; false (and a deny) on bad names. */
static bool
header_classes(const struct pol_snapshot *s, const char *v, uint64_t *mask,
    struct pol_decision *d)
{
	char name[65];

	*mask = 0;
	for (;;) {
		size_t n = 0;
		int bit;

		while (*v == ' ' || *v == '\t')
			v++;
		while (v[n] != '\0' && v[n] != ',')
			n++;
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		/* "" or "a,,b" is no declaration: refuse rather than read
		 * it as "no data classes". */
		if (n == 0) {
			deny(d, WD_CODE_INVALID_DATA_CLASS, "X-Warden-Data-Class: "
			    "empty class name");
			return false;
		}
		if (n >= sizeof(name)) {
			deny(d, WD_CODE_INVALID_DATA_CLASS, "X-Warden-Data-Class: "
			    "class name too long");
			return false;
		}
		memcpy(name, v, n);
		name[n] = '\0';
		bit = pol_class_bit(s, name);
		if (bit < 0) {
			deny(d, WD_CODE_INVALID_DATA_CLASS, "X-Warden-Data-Class: "
			    "unknown data class '%s'", name);
			return false;
		}
		*mask |= 1ull << bit;
		while (*v != '\0' && *v != ',')
			v++;
		if (*v == '\0')
			return true;
		v++;
	}
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

			deny(d, WD_CODE_DATA_CLASS_NOT_OMITTABLE, "X-Warden-Data-Class "
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
			deny(d, WD_CODE_INVALID_SUBJECT_REGION, "X-Warden-Subject-Region: "
			    "'%.60s' is neither an ISO 3166-1 country code nor a "
			    "jurisdiction", f->hdr_region);
			return false;
		}
		if (t->has_region && !cset_subset(&hs, &t->region)) {
			deny(d, WD_CODE_SUBJECT_REGION_WIDENING, "X-Warden-Subject-"
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

/*
 * What the content detectors found: their classes join the request's
 * (more rules apply, never fewer); a blocking detector denies.  The
 * message names the detector, never what it matched.
 */
static bool
detections(const struct pol_snapshot *s, const struct pol_facts *f,
    struct pol_decision *d)
{
	const struct pol_detector *block = NULL;

	if (f->det_counts == NULL)
		return true;
	for (size_t i = 0; i < s->detect.n && i < POL_MAX_DETECTORS; i++) {
		const struct pol_detector *det = &s->detect.d[i];

		if (f->det_counts[i] == 0)
			continue;
		d->det_counts[i] = f->det_counts[i];
		d->det_fired |= 1ull << i;
		d->classes |= det->classes;
		if (det->action == POL_DET_REDACT)
			d->redact = true;
		else if (det->action == POL_DET_BLOCK && block == NULL)
			block = det;
	}
	if (block != NULL) {
		deny(d, WD_CODE_DETECTED, "the request contains what detector "
		    "'%s' looks for; it was not sent", block->id);
		d->code = block->code;	/* the family's member: detected_<id> */
		return false;
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
			hit = r->when_tenants[i] == t;
		if (!hit)
			return false;
	}
	/* Some of the data subjects may be in the rule's region: it applies.
	 * Unknown region: they may be anywhere. */
	if (r->has_when_region && has_region && !cset_meets(region, &r->when_region))
		return false;
	return true;
}

static bool
retention_ok(const struct pol_provider *p, int max_days)
{
	return p->zdr || (p->retention_days >= 0 && p->retention_days <= max_days);
}

struct eval {
	const struct pol_rule *rules[1024];	/* applicable, first 1024 */
	size_t nrules;
	bool overflow;			/* more applied: re-scan per route */
	bool any_keep, any_ttl;
	/* All applicable rules folded into one constraint: a route that
	 * meets it is excluded by none of them, so only excluded routes
	 * need the per-rule scan that finds the reasons. */
	struct pol_cset countries;	/* intersection of provider_country */
	struct pol_cset processing, storage, abuse;	/* same, per place */
	bool residency;			/* any residency rule: no global route */
	bool dpf;
	bool zdr;			/* some rule requires it */
	int max_days;			/* least retention.max_days; -1 none */
};

static inline void
cset_and(struct pol_cset *a, const struct pol_cset *b)
{
	for (size_t w = 0; w < POL_CSET_WORDS; w++)
		a->w[w] &= b->w[w];
}

static void
add_matched(struct pol_decision *d, struct eval *e, const struct pol_rule *r)
{
	if (e->nrules < sizeof(e->rules) / sizeof(e->rules[0]))
		e->rules[e->nrules++] = r;
	else
		e->overflow = true;
	d->nmatched_total++;
	if (d->nmatched < POL_MAX_REASONS)
		d->matched[d->nmatched++] = r;
	if (r->has_country)
		cset_and(&e->countries, &r->country);
	if (r->has_processing)
		cset_and(&e->processing, &r->processing);
	if (r->has_storage)
		cset_and(&e->storage, &r->storage);
	if (r->has_abuse)
		cset_and(&e->abuse, &r->abuse_storage);
	e->residency |= r->has_country || r->has_processing || r->has_storage ||
	    r->has_abuse;
	e->dpf |= r->require_dpf;
	e->zdr |= r->require_zdr;
	if (r->max_days >= 0 && (e->max_days < 0 || r->max_days < e->max_days))
		e->max_days = r->max_days;
	if (r->has_keep) {
		if (!e->any_keep || r->keep < d->keep)
			d->keep = r->keep;
		e->any_keep = true;
	}
	if (r->keep_ttl_days >= 0) {
		if (!e->any_ttl || r->keep_ttl_days < d->keep_ttl_days)
			d->keep_ttl_days = r->keep_ttl_days;
		e->any_ttl = true;
	}
}

/* Does the route's place lie wholly within the rule's?  A place that was
 * not declared is everywhere, and lies within no rule's. */
static bool
within(const struct pol_cset *place, const struct pol_cset *allowed)
{
	for (size_t w = 0; w < POL_CSET_WORDS; w++)
		if (place->w[w] & ~allowed->w[w])
			return false;
	return true;
}

/* Which of the folded constraints a route fails (route_ok): a check it
 * passes for the intersection it passes for every rule, so excludes()
 * skips it. */
#define F_COUNTRY	0x01u
#define F_PROCESSING	0x02u
#define F_STORAGE	0x04u
#define F_ABUSE		0x08u

/* Does rule r exclude route p?  Records why (whether by residency the
 * caller knows from the fold). */
static bool
excludes(const struct pol_rule *r, const struct pol_provider *p,
    unsigned fail, struct pol_decision *d)
{
	bool out = false;

	if ((r->has_country || r->has_processing || r->has_storage ||
	    r->has_abuse) && p->deployment == POL_DEPLOY_GLOBAL) {
		/* A global deployment may process anywhere: it meets no
		 * residency requirement, whatever else it declares. */
		reason(d, r, p, POL_WHY_GLOBAL);
		out = true;
	} else {
		if (r->has_country && (fail & F_COUNTRY) &&
		    !within(&p->processing, &r->country)) {
			reason(d, r, p, POL_WHY_COUNTRY);
			out = true;
		}
		if (r->has_processing && (fail & F_PROCESSING) &&
		    !within(&p->processing, &r->processing)) {
			reason(d, r, p, POL_WHY_PROCESSING);
			out = true;
		}
		if (r->has_storage && (fail & F_STORAGE) &&
		    !within(&p->storage, &r->storage)) {
			reason(d, r, p, POL_WHY_STORAGE);
			out = true;
		}
		if (r->has_abuse && (fail & F_ABUSE) &&
		    !within(&p->abuse_storage, &r->abuse_storage)) {
			reason(d, r, p, POL_WHY_ABUSE);
			out = true;
		}
	}
	if (r->require_dpf && p->dpf != 1) {
		reason(d, r, p, POL_WHY_DPF);
		out = true;
	}
	if (r->require_zdr && !p->zdr) {
		reason(d, r, p, POL_WHY_ZDR);
		out = true;
	}
	if (r->max_days >= 0 && !retention_ok(p, r->max_days)) {
		reason(d, r, p, POL_WHY_DAYS);
		out = true;
	}
	return out;
}

/* Visit every applicable rule: the always-list, then by class. */
#define FOREACH_APPLICABLE(s, d, t, hr, reg, r, body) do { \
	for (size_t i_ = 0; i_ < (s)->nalways; i_++) { \
		const struct pol_rule *r = (s)->always[i_]; \
		if (rule_applies(r, (t), (hr), (reg))) body \
	} \
	for (uint64_t m_ = (d)->classes; m_ != 0; m_ &= m_ - 1) { \
		int b_ = __builtin_ctzll(m_); \
		for (size_t i_ = 0; i_ < (s)->nby_class[b_]; i_++) { \
			const struct pol_rule *r = (s)->by_class[b_][i_]; \
			/* once: from the list of its lowest matching class */ \
			if (__builtin_ctzll(r->when_classes & (d)->classes) != b_) \
				continue; \
			if (rule_applies(r, (t), (hr), (reg))) body \
		} \
	} \
} while (0)

static bool
route_ok(const struct pol_snapshot *s, const struct eval *e,
    const struct pol_provider *p, const struct pol_tenant *t,
    bool has_region, const struct pol_cset *region, struct pol_decision *d,
    bool *by_residency)
{
	bool ok = true;
	unsigned fail = (within(&p->processing, &e->countries) ? 0 : F_COUNTRY) |
	    (within(&p->processing, &e->processing) ? 0 : F_PROCESSING) |
	    (within(&p->storage, &e->storage) ? 0 : F_STORAGE) |
	    (within(&p->abuse_storage, &e->abuse) ? 0 : F_ABUSE);
	bool res_ok = fail == 0 &&
	    (!e->residency || p->deployment != POL_DEPLOY_GLOBAL) &&
	    (!e->dpf || p->dpf == 1);

	if (res_ok && (!e->zdr || p->zdr) &&
	    (e->max_days < 0 || retention_ok(p, e->max_days)))
		goto tenant;
	/* Out: the fold says so, and whether by residency (a place, a
	 * global deployment or DPF) or by retention, exactly as the
	 * per-rule scan would (a set lies within every rule's iff within
	 * their intersection).  The scan only finds the rules to name, up
	 * to POL_ROUTE_REASONS for a route. */
	ok = false;
	*by_residency |= !res_ok;
	if (d->nreasons < POL_MAX_REASONS) {
		size_t before = d->nreasons;

		if (!e->overflow) {
			for (size_t i = 0; i < e->nrules; i++)
				if (excludes(e->rules[i], p, fail, d) &&
				    (d->nreasons - before >= POL_ROUTE_REASONS ||
				    d->nreasons >= POL_MAX_REASONS))
					goto tenant;
		} else {
			FOREACH_APPLICABLE(s, d, t, has_region, region, r, {
				if (excludes(r, p, fail, d) &&
				    (d->nreasons - before >= POL_ROUTE_REASONS ||
				    d->nreasons >= POL_MAX_REASONS))
					goto tenant;
			});
		}
	}
tenant:
	if (t->max_retention_days >= 0 && !retention_ok(p, t->max_retention_days)) {
		reason(d, NULL, p, POL_WHY_TENANT_DAYS);
		ok = false;
	}
	return ok;
}

static void
deny_no_route(struct pol_decision *d, bool residency)
{
	char ids[300] = "";
	size_t len = 0;

	for (size_t i = 0; i < d->nreasons && len < sizeof(ids); i++) {
		const char *id = pol_reason_rule(&d->reasons[i]);
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(pol_reason_rule(&d->reasons[j]), id) == 0;
		if (!seen)
			len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%s",
			    len ? ", " : "", id);
	}
	deny(d, residency ? WD_CODE_RESIDENCY : WD_CODE_RETENTION, "no compliant route "
	    "for model '%.100s': excluded by %s", d->model, ids);
}

enum wd_err
pol_decide(const struct pol_snapshot *s, const struct pol_facts *f,
    struct pol_decision *d)
{
	const struct pol_tenant *t = f->tenant;
	struct eval e;
	size_t nserve = 0, nres = 0, nother = 0;
	struct pol_cset region;
	bool has_region = false;
	unsigned want;

	memset(d, 0, sizeof(*d));
	e.nrules = 0;
	e.overflow = e.any_keep = e.any_ttl = e.zdr = false;
	e.residency = e.dpf = false;
	e.max_days = -1;
	memset(&e.countries, 0xff, sizeof(e.countries));
	memset(&e.processing, 0xff, sizeof(e.processing));
	memset(&e.storage, 0xff, sizeof(e.storage));
	memset(&e.abuse, 0xff, sizeof(e.abuse));
	d->policy_version = s->version;
	d->keep = s->keep;
	d->keep_ttl_days = s->keep_ttl_days;
	d->model = f->model;
	d->api = f->api;
	d->stream = f->stream;
	if (t == NULL || f->model == NULL)
		return WD_EINVAL;
	d->tenant = t->id;
	d->tenant_p = t;
	d->app = f->app;
	if (!effective_facts(s, f, d, &has_region, &region) ||
	    !detections(s, f, d))
		return WD_OK;
	FOREACH_APPLICABLE(s, d, t, has_region, &region, r, {
		add_matched(d, &e, r);
	});
	want = f->api != NULL ? pol_api_bit(f->api) : POL_API_CHAT;
	if (want == 0)
		return WD_EINVAL;
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct pol_provider *p = t->routes[i];
		bool by_res = false;

		if (!pol_provider_serves(p, f->model))
			continue;
		/* A route gets only formats it speaks (no translation). */
		if (!(p->apis & want)) {
			nother++;
			continue;
		}
		nserve++;
		if (!route_ok(s, &e, p, t, has_region, &region, d, &by_res)) {
			nres += by_res;
			continue;
		}
		d->routes[d->nroutes++] = p;
	}
	if (nserve == 0 && nother > 0) {
		deny(d, WD_CODE_API_NOT_SERVED, "no route of this key serves the "
		    "model '%.200s' in the %s format", f->model, f->api ? f->api :
		    "openai-chat");
		return WD_OK;
	}
	if (nserve == 0) {
		deny(d, WD_CODE_MODEL_NOT_FOUND, "the model '%.200s' does not exist "
		    "or this key may not use it", f->model);
		return WD_OK;
	}
	if (d->nroutes == 0) {
		/* Residency when every serving route fell to a residency rule. */
		deny_no_route(d, nres == nserve);
		return WD_OK;
	}
	d->verdict = POL_ALLOW;
	return WD_OK;
}

const char *
pol_reason_rule(const struct pol_reason *r)
{
	return r->rule != NULL ? r->rule->id : "tenant.max_retention_days";
}

const char *
pol_reason_code(const struct pol_reason *r)
{
	switch (r->why) {
	case POL_WHY_ZDR:
	case POL_WHY_DAYS:
	case POL_WHY_TENANT_DAYS:
		return "retention";
	default:
		return "residency";
	}
}

void
pol_reason_text(const struct pol_reason *r, const struct pol_tenant *t,
    char *buf, size_t len)
{
	const struct pol_provider *p = r->route;

	switch (r->why) {
	case POL_WHY_COUNTRY:
		snprintf(buf, len, "route '%s' processes data in %s, outside %s",
		    p->id, p->processing_text ? p->processing_text : "?",
		    r->rule->country_text);
		break;
	case POL_WHY_PROCESSING:
		snprintf(buf, len, "route '%s' processes data in %s, outside %s",
		    p->id, p->processing_text ? p->processing_text :
		    "undeclared places", r->rule->processing_text);
		break;
	case POL_WHY_STORAGE:
		snprintf(buf, len, "route '%s' stores data in %s, outside %s",
		    p->id, p->storage_text ? p->storage_text : "undeclared places",
		    r->rule->storage_text);
		break;
	case POL_WHY_ABUSE:
		snprintf(buf, len, "route '%s' keeps abuse-monitoring data in %s, "
		    "outside %s", p->id, p->abuse_text ? p->abuse_text :
		    "undeclared places", r->rule->abuse_text);
		break;
	case POL_WHY_GLOBAL:
		snprintf(buf, len, "route '%s' is a global deployment: it may "
		    "process anywhere", p->id);
		break;
	case POL_WHY_DPF:
		snprintf(buf, len, "route '%s' is not certified under the EU-US "
		    "Data Privacy Framework", p->id);
		break;
	case POL_WHY_ZDR:
		snprintf(buf, len, "route '%s' has no zero-data-retention contract",
		    p->id);
		break;
	case POL_WHY_DAYS:
		snprintf(buf, len, "route '%s' keeps data longer than %d days",
		    p->id, r->rule->max_days);
		break;
	case POL_WHY_TENANT_DAYS:
		snprintf(buf, len, "route '%s' keeps data longer than tenant '%s' "
		    "allows (%d days)", p->id, t ? t->id : "?",
		    t ? t->max_retention_days : 0);
		break;
	}
}

const char *
pol_deployment_name(enum pol_deployment d)
{
	switch (d) {
	case POL_DEPLOY_REGIONAL:
		return "regional";
	case POL_DEPLOY_DATAZONE:
		return "datazone";
	case POL_DEPLOY_GLOBAL:
		return "global";
	case POL_DEPLOY_UNSET:
		break;
	}
	return "unset";
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
		json_array_append_new(matched, json_string(d->matched[i]->id));
	for (size_t i = 0; i < d->nreasons; i++) {
		char text[192];

		pol_reason_text(&d->reasons[i], d->tenant_p, text, sizeof(text));
		json_array_append_new(reasons, json_pack("{s:s,s:s,s:s,s:s}",
		    "rule", pol_reason_rule(&d->reasons[i]), "code",
		    pol_reason_code(&d->reasons[i]), "route",
		    d->reasons[i].route->id, "message", text));
	}
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
	json_object_set_new(o, "facts", json_pack("{s:s?,s:s?,s:s?,s:b,s:o,s:s?}",
	    "tenant", d->tenant, "app", d->app, "model", d->model, "stream",
	    d->stream,
	    "data_classes", classes, "subject_region",
	    d->region[0] ? d->region : NULL));
	/* The format, when not chat (chat decisions read as they did). */
	if (d->api != NULL)
		json_object_set_new(json_object_get(o, "facts"), "api",
		    json_string(d->api));
	json_object_set_new(o, "route", d->nroutes > 0 ?
	    json_string(d->routes[0]->id) : json_null());
	json_object_set_new(o, "routes", routes);
	if (s->detect.n > 0) {
		json_t *det = json_object();

		/* Which detectors fired and how often; never what they saw. */
		for (size_t i = 0; i < s->detect.n && i < POL_MAX_DETECTORS; i++)
			if (d->det_fired & (1ull << i))
				json_object_set_new(det, s->detect.d[i].id,
				    json_integer(d->det_counts[i]));
		json_object_set_new(o, "detections", det);
	}
	json_object_set_new(o, "matched_rules", matched);
	if (d->nmatched_total > d->nmatched)
		json_object_set_new(o, "matched_rules_total",
		    json_integer((json_int_t)d->nmatched_total));
	json_object_set_new(o, "reasons", reasons);
	if (d->nreasons_total > d->nreasons)
		json_object_set_new(o, "reasons_total",
		    json_integer((json_int_t)d->nreasons_total));
	json_object_set_new(o, "keep", json_pack("{s:s,s:i}", "payloads",
	    pol_keep_name(d->keep), "ttl_days", d->keep_ttl_days));
	return o;
}

const char *
pol_legal_basis(const struct pol_decision *d, const struct pol_provider *route)
{
	for (size_t i = 0; d != NULL && route != NULL && i < d->nmatched; i++) {
		const struct pol_rule *r = d->matched[i];

		if (r->legal_basis != NULL && (!r->has_country ||
		    pol_cset_has(&r->country, route->cidx)))
			return r->legal_basis;
	}
	return route != NULL ? route->legal_basis : NULL;
}
