/*
 * compile.c - from what the rules files say to what evaluation needs:
 * names resolved (routes, jurisdictions, data classes, tenants), nested
 * jurisdictions flattened into country bit sets, rules indexed by data
 * class, virtual keys in a hash index, and the policy_version computed
 * from a canonical form of it all.
 *
 * Every unresolved name is an error at the place it was written, with a
 * "did you mean" when a known name is close.
 */
#include "policy/pol_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

/* The closest of n names to name, or NULL if none is close. */
static const char *
suggest(const char *name, const char *(*get)(const void *, size_t),
    const void *arr, size_t n)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < n; i++) {
		const char *cand = get(arr, i);
		size_t d;

		if (cand == NULL)
			continue;
		d = wd_edit_distance(name, cand);
		if (d < bestd) {
			bestd = d;
			best = cand;
		}
	}
	return best;
}

static const char *
get_class(const void *arr, size_t i)
{
	return ((char *const *)arr)[i];
}

static const char *
get_jur(const void *arr, size_t i)
{
	return ((const struct pol_jurisdiction *)arr)[i].name;
}

static const char *
get_provider(const void *arr, size_t i)
{
	return ((const struct pol_provider *)arr)[i].id;
}

static const char *
get_tenant(const void *arr, size_t i)
{
	return ((const struct pol_tenant *)arr)[i].id;
}

static void
unknown(struct pol_loader *l, const struct pol_ref *r, const char *what,
    const char *hint)
{
	if (hint != NULL)
		pol_err_ref(&l->w, r, "unknown %s '%s' (did you mean '%s'?)", what,
		    r->name, hint);
	else
		pol_err_ref(&l->w, r, "unknown %s '%s'", what, r->name);
}

static void
compile_classes(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;

	for (size_t i = 0; i < l->nclass_refs; i++) {
		const struct pol_ref *r = &l->classes[i];

		if (pol_class_bit(s, r->name) >= 0) {
			pol_err_ref(&l->w, r, "data class '%s' is declared twice",
			    r->name);
			continue;
		}
		if (s->nclasses >= POL_MAX_CLASSES) {
			pol_err_ref(&l->w, r, "more than %d data classes",
			    POL_MAX_CLASSES);
			return;
		}
		s->classes[s->nclasses++] = strdup(r->name);
	}
}

uint64_t
pol_class_mask(struct pol_loader *l, const struct pol_ref *refs, size_t n,
    const char *what)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++) {
		int bit = pol_class_bit(l->s, refs[i].name);

		if (bit < 0 && strcmp(what, "label") == 0)
			pol_err_ref(&l->w, &refs[i], "unknown label '%s' (labels are "
			    "data classes; declare it in data_classes)", refs[i].name);
		else if (bit < 0)
			unknown(l, &refs[i], what, suggest(refs[i].name,
			    get_class, l->s->classes, l->s->nclasses));
		else
			mask |= 1ull << bit;
	}
	return mask;
}

static struct pol_jurisdiction *
find_jur(struct pol_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->njurisdictions; i++)
		if (s->jurisdictions[i].name != NULL &&
		    strcmp(s->jurisdictions[i].name, name) == 0)
			return &s->jurisdictions[i];
	return NULL;
}

enum { J_NEW, J_BUSY, J_DONE };

#define MAX_JUR_DEPTH 32

/* Flatten jurisdiction i, depth first; state[] catches cycles, depth
 * keeps a long chain from exhausting the stack. */
static void
resolve_jur(struct pol_loader *l, size_t i, unsigned char *state, int depth)
{
	struct pol_snapshot *s = l->s;
	struct raw_jurisdiction *raw = &l->rj[i];

	state[i] = J_BUSY;
	for (size_t m = 0; m < raw->nmembers; m++) {
		const struct pol_ref *r = &raw->members[m];
		struct pol_jurisdiction *j;

		if (pol_country_valid(r->name)) {
			pol_cset_add(&s->jurisdictions[i].set,
			    pol_country_index(r->name));
			continue;
		}
		j = find_jur(s, r->name);
		if (j == NULL) {
			const char *hint = suggest(r->name, get_jur,
			    s->jurisdictions, s->njurisdictions);

			if (strlen(r->name) == 2)
				pol_err_ref(&l->w, r, "'%s' is neither an ISO 3166-1 "
				    "alpha-2 country code nor a jurisdiction", r->name);
			else
				unknown(l, r, "jurisdiction", hint);
			continue;
		}
		size_t ji = (size_t)(j - s->jurisdictions);

		if (state[ji] == J_BUSY) {
			pol_err_ref(&l->w, r, "jurisdiction '%s' contains itself "
			    "(through '%s')", l->rj[i].at.name ? l->rj[i].at.name :
			    "?", r->name);
			continue;
		}
		if (state[ji] == J_NEW) {
			if (depth >= MAX_JUR_DEPTH) {
				pol_err_ref(&l->w, r, "jurisdictions nested deeper than "
				    "%d", MAX_JUR_DEPTH);
				continue;
			}
			resolve_jur(l, ji, state, depth + 1);
		}
		for (size_t w = 0; w < POL_CSET_WORDS; w++)
			s->jurisdictions[i].set.w[w] |= j->set.w[w];
	}
	state[i] = J_DONE;
}

static void
compile_jurisdictions(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;
	unsigned char *state = calloc(s->njurisdictions + 1, 1);

	if (state == NULL)
		return;
	for (size_t i = 0; i < s->njurisdictions; i++) {
		const struct pol_ref *at = &l->rj[i].at;

		if (at->name == NULL)
			continue;
		/* A name that is also a country would be ambiguous. */
		if (pol_country_valid(at->name))
			pol_err_ref(&l->w, at, "jurisdiction name '%s' is a country "
			    "code; choose another name", at->name);
		for (size_t j = 0; j < i; j++)
			if (s->jurisdictions[j].name != NULL &&
			    strcmp(s->jurisdictions[j].name, at->name) == 0)
				pol_err_ref(&l->w, at, "jurisdiction '%s' is defined "
				    "twice", at->name);
	}
	for (size_t i = 0; i < s->njurisdictions; i++)
		if (state[i] == J_NEW)
			resolve_jur(l, i, state, 0);
	free(state);
}

/* A place: a country code or a jurisdiction name, into set. */
static bool
place(struct pol_loader *l, const struct pol_ref *r, struct pol_cset *set)
{
	struct pol_jurisdiction *j;

	if (pol_country_valid(r->name)) {
		pol_cset_add(set, pol_country_index(r->name));
		return true;
	}
	j = find_jur(l->s, r->name);
	if (j == NULL) {
		unknown(l, r, "jurisdiction or country", suggest(r->name, get_jur,
		    l->s->jurisdictions, l->s->njurisdictions));
		return false;
	}
	for (size_t w = 0; w < POL_CSET_WORDS; w++)
		set->w[w] |= j->set.w[w];
	return true;
}

static char *join_refs(const struct pol_ref *r, size_t n);

/* One residency place list into set and its text; none: anywhere. */
static void
residency_place(struct pol_loader *l, const struct pol_ref *refs, size_t n,
    struct pol_cset *set, char **text)
{
	if (n == 0) {
		memset(set, 0xff, sizeof(*set));
		return;
	}
	for (size_t i = 0; i < n; i++)
		place(l, &refs[i], set);
	*text = join_refs(refs, n);
}

void
pol_compile_providers(struct pol_loader *l)
{
	for (size_t i = 0; i < l->s->nproviders; i++) {
		struct pol_provider *p = &l->s->providers[i];
		struct raw_provider *raw = &l->rp[i];

		if (raw->from_country) {
			pol_cset_add(&p->processing, p->cidx);
			pol_cset_add(&p->storage, p->cidx);
			memset(&p->abuse_storage, 0xff, sizeof(p->abuse_storage));
			p->processing_text = strdup(p->country);
			p->storage_text = strdup(p->country);
			continue;
		}
		residency_place(l, raw->processing, raw->nprocessing,
		    &p->processing, &p->processing_text);
		residency_place(l, raw->storage, raw->nstorage, &p->storage,
		    &p->storage_text);
		residency_place(l, raw->abuse, raw->nabuse, &p->abuse_storage,
		    &p->abuse_text);
		if (p->deployment == POL_DEPLOY_GLOBAL)
			memset(&p->processing, 0xff, sizeof(p->processing));
	}
}

static struct pol_provider *
find_provider(struct pol_snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->nproviders; i++)
		if (pol_id_eq(s->providers[i].id, id))
			return &s->providers[i];
	return NULL;
}

static void
compile_tenant(struct pol_loader *l, struct pol_tenant *t,
    struct raw_tenant *raw)
{
	struct pol_snapshot *s = l->s;

	if (raw->nroutes > POL_MAX_ROUTES) {
		pol_err_ref(&l->w, &raw->at, "tenant '%s' lists more than %d routes",
		    t->id ? t->id : "?", POL_MAX_ROUTES);
		return;
	}
	t->routes = calloc(raw->nroutes ? raw->nroutes : 1, sizeof(*t->routes));
	if (t->routes == NULL)
		return;
	for (size_t i = 0; i < raw->nroutes; i++) {
		struct pol_provider *p = find_provider(s, raw->routes[i].name);

		if (p == NULL) {
			const char *hint = suggest(raw->routes[i].name, get_provider,
			    s->providers, s->nproviders);

			if (hint != NULL)
				pol_err_ref(&l->w, &raw->routes[i], "tenant '%s' names "
				    "unknown route '%s' (did you mean '%s'?)",
				    t->id ? t->id : "?", raw->routes[i].name, hint);
			else
				pol_err_ref(&l->w, &raw->routes[i], "tenant '%s' names "
				    "unknown route '%s'", t->id ? t->id : "?",
				    raw->routes[i].name);
			continue;
		}
		t->routes[t->nroutes++] = p;
	}
	t->classes = pol_class_mask(l, raw->classes, raw->nclasses, "data class");
	t->may_omit = pol_class_mask(l, raw->omit, raw->nomit, "data class");
	for (size_t i = 0; i < raw->nomit; i++) {
		int bit = pol_class_bit(s, raw->omit[i].name);

		if (bit >= 0 && !(t->classes & (1ull << bit)))
			pol_err_ref(&l->w, &raw->omit[i], "'%s' is in may_omit but "
			    "not in the tenant's data_classes", raw->omit[i].name);
	}
	if (raw->region.name != NULL) {
		t->has_region = place(l, &raw->region, &t->region);
		t->region_text = strdup(raw->region.name);
	}
}

static char *
join_refs(const struct pol_ref *r, size_t n)
{
	size_t len = 1;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(r[i].name) + 2;
	out = malloc(len);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(out, ", ");
		strcat(out, r[i].name);
	}
	return out;
}

static void
compile_rule(struct pol_loader *l, struct pol_rule *r, struct raw_rule *raw)
{
	struct pol_snapshot *s = l->s;

	r->when_classes = pol_class_mask(l, raw->classes, raw->nclasses,
	    "data class");
	for (size_t i = 0; i < raw->nregions; i++)
		if (place(l, &raw->regions[i], &r->when_region))
			r->has_when_region = true;
	for (size_t i = 0; i < raw->ncountries; i++)
		place(l, &raw->countries[i], &r->country);
	if (raw->ncountries > 0)
		r->country_text = join_refs(raw->countries, raw->ncountries);
	for (size_t i = 0; i < raw->nprocessing; i++)
		place(l, &raw->processing[i], &r->processing);
	if (raw->nprocessing > 0)
		r->processing_text = join_refs(raw->processing, raw->nprocessing);
	for (size_t i = 0; i < raw->nstorage; i++)
		place(l, &raw->storage[i], &r->storage);
	if (raw->nstorage > 0)
		r->storage_text = join_refs(raw->storage, raw->nstorage);
	for (size_t i = 0; i < raw->nabuse; i++)
		place(l, &raw->abuse[i], &r->abuse_storage);
	if (raw->nabuse > 0)
		r->abuse_text = join_refs(raw->abuse, raw->nabuse);
	if (raw->ntenants > 0) {
		r->when_tenants = calloc(raw->ntenants, sizeof(*r->when_tenants));
		for (size_t i = 0; r->when_tenants && i < raw->ntenants; i++) {
			const struct pol_tenant *found = NULL;

			for (size_t t = 0; t < s->ntenants; t++)
				if (pol_id_eq(s->tenants[t].id, raw->tenants[i].name))
					found = &s->tenants[t];
			if (found == NULL)
				unknown(l, &raw->tenants[i], "tenant",
				    suggest(raw->tenants[i].name, get_tenant,
				    s->tenants, s->ntenants));
			else
				r->when_tenants[r->nwhen_tenants++] = found;
		}
	}
}

static void
check_unique_ids(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;

	for (size_t i = 0; i < s->ntenants; i++)
		for (size_t j = 0; j < i; j++)
			if (pol_id_eq(s->tenants[i].id, s->tenants[j].id))
				pol_err_ref(&l->w, &l->rt[i].at, "tenant id '%s' is "
				    "used twice", s->tenants[i].id);
	for (size_t i = 0; i < s->nrules; i++)
		for (size_t j = 0; j < i; j++)
			if (pol_id_eq(s->rules[i].id, s->rules[j].id))
				pol_err_ref(&l->w, &l->rr[i].at, "rule id '%s' is used "
				    "twice", s->rules[i].id);
}

static enum wd_err
index_rules(struct pol_snapshot *s)
{
	size_t counts[POL_MAX_CLASSES] = { 0 }, nalways = 0;

	for (size_t i = 0; i < s->nrules; i++) {
		uint64_t m = s->rules[i].when_classes;

		if (m == 0)
			nalways++;
		for (int b = 0; b < POL_MAX_CLASSES; b++)
			if (m & (1ull << b))
				counts[b]++;
	}
	s->always = calloc(nalways ? nalways : 1, sizeof(*s->always));
	if (s->always == NULL)
		return WD_ENOMEM;
	for (int b = 0; b < POL_MAX_CLASSES; b++) {
		if (counts[b] == 0)
			continue;
		s->by_class[b] = calloc(counts[b], sizeof(*s->by_class[b]));
		if (s->by_class[b] == NULL)
			return WD_ENOMEM;
	}
	for (size_t i = 0; i < s->nrules; i++) {
		struct pol_rule *r = &s->rules[i];

		if (r->when_classes == 0)
			s->always[s->nalways++] = r;
		for (int b = 0; b < POL_MAX_CLASSES; b++)
			if (r->when_classes & (1ull << b))
				s->by_class[b][s->nby_class[b]++] = r;
	}
	return WD_OK;
}

static void
index_key(struct pol_loader *l, const unsigned char *digest,
    struct pol_tenant *t, struct pol_agent *a, struct pol_app *app,
    const struct pol_ref *at)
{
	struct pol_snapshot *s = l->s;
	uint64_t h;
	size_t slot;

	/* The digest is already uniform: its first bytes are the slot. */
	memcpy(&h, digest, sizeof(h));
	slot = h & (s->keyidx_cap - 1);
	while (s->keyidx[slot].digest != NULL) {
		if (memcmp(s->keyidx[slot].digest, digest, 32) == 0) {
			if (a == NULL && s->keyidx[slot].agent == NULL)
				pol_err_ref(&l->w, at, "tenants '%s' and '%s' share a "
				    "key", s->keyidx[slot].tenant->id, t->id);
			else
				pol_err_ref(&l->w, at, "a key of '%s' is also a key of "
				    "'%s'", a ? a->id : t->id, s->keyidx[slot].agent ?
				    s->keyidx[slot].agent->id :
				    s->keyidx[slot].tenant->id);
			return;
		}
		slot = (slot + 1) & (s->keyidx_cap - 1);
	}
	s->keyidx[slot].digest = digest;
	s->keyidx[slot].tenant = t;
	s->keyidx[slot].agent = a;
	s->keyidx[slot].app = app;
}

static enum wd_err
index_keys(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;
	size_t total = 0, cap = 16;

	for (size_t i = 0; i < s->ntenants; i++) {
		total += s->tenants[i].nkeys;
		for (size_t a = 0; a < s->tenants[i].napps; a++)
			total += s->tenants[i].apps[a].nkeys;
	}
	for (size_t i = 0; i < s->nagents; i++)
		total += s->agents[i].nkeys;
	while (cap < total * 2)
		cap <<= 1;
	s->keyidx = calloc(cap, sizeof(*s->keyidx));
	if (s->keyidx == NULL)
		return WD_ENOMEM;
	s->keyidx_cap = cap;
	for (size_t i = 0; i < s->ntenants; i++) {
		struct pol_tenant *t = &s->tenants[i];

		for (size_t k = 0; k < t->nkeys; k++)
			index_key(l, t->keys[k], t, NULL, NULL, &l->rt[i].at);
		for (size_t a = 0; a < t->napps; a++)
			for (size_t k = 0; k < t->apps[a].nkeys; k++)
				index_key(l, t->apps[a].keys[k], t, NULL, &t->apps[a],
				    &l->rt[i].at);
	}
	for (size_t i = 0; i < s->nagents; i++)
		for (size_t k = 0; s->agents[i].tenant && k < s->agents[i].nkeys; k++)
			index_key(l, s->agents[i].keys[k], s->agents[i].tenant,
			    &s->agents[i], NULL, &l->ra[i].at);
	return WD_OK;
}

static json_t *
cset_json(const struct pol_cset *set)
{
	json_t *a = json_array();
	char cc[3] = { 0 };

	for (int i = 0; i < 26 * 26; i++)
		if (pol_cset_has(set, i)) {
			cc[0] = (char)('A' + i / 26);
			cc[1] = (char)('A' + i % 26);
			json_array_append_new(a, json_string(cc));
		}
	return a;
}

/* A residency set: "anywhere" when not declared. */
static json_t *
place_json(const struct pol_cset *set)
{
	for (size_t w = 0; w < POL_CSET_WORDS; w++)
		if (set->w[w] != ~0ull)
			return cset_json(set);
	return json_string("anywhere");
}

static json_t *
mask_json(const struct pol_snapshot *s, uint64_t m)
{
	json_t *a = json_array();

	for (size_t b = 0; b < s->nclasses; b++)
		if (m & (1ull << b))
			json_array_append_new(a, json_string(s->classes[b]));
	return a;
}

/* An agent's limits per key; null when it has none. */
static json_t *
limits_json(const struct pol_agent *a)
{
	json_t *per = json_object();

	if (a->limits.window_s == 0) {
		json_decref(per);
		return json_null();
	}
	for (size_t t = 0; t < a->ntools; t++)
		if (a->limits.per_tool[t] >= 0)
			json_object_set_new(per, a->tools[t].name,
			    json_integer(a->limits.per_tool[t]));
	return json_pack("{s:i,s:i,s:o}", "window_s", a->limits.window_s,
	    "max_calls", a->limits.max_calls, "per_tool", per);
}

static json_t *
agents_json(const struct pol_snapshot *s)
{
	json_t *arr = json_object();

	for (size_t i = 0; i < s->nagents; i++) {
		const struct pol_agent *a = &s->agents[i];
		json_t *tools = json_object(), *flows = json_array(), *keys = json_object();
		json_t *graph = json_object();
		char hex[65];

		/* Sets as objects: sorted keys make them order-free. */
		for (size_t t = 0; t < a->ntools; t++) {
			json_t *next = json_object();

			for (size_t u = 0; u < a->ntools; u++)
				if (a->next[t] & (1ull << u))
					json_object_set_new(next, a->tools[u].name,
					    json_true());
			json_object_set_new(graph, a->tools[t].name, next);
			json_object_set_new(tools, a->tools[t].name, json_pack(
			    "{s:o,s:s,s:i}", "labels",
			    mask_json(s, a->tools[t].labels), "sink",
			    pol_sink_name(a->tools[t].sink), "max_calls",
			    a->tools[t].max_calls));
		}
		{
			json_t *start = json_object();

			for (size_t u = 0; u < a->ntools; u++)
				if (a->start & (1ull << u))
					json_object_set_new(start, a->tools[u].name,
					    json_true());
			json_object_set_new(graph, "start", start);
		}
		for (size_t f = 0; f < a->nflows; f++)
			json_array_append_new(flows, json_pack("{s:s?,s:o,s:s}", "id",
			    a->flows[f].id, "from_labels",
			    mask_json(s, a->flows[f].from_labels), "to_sink",
			    pol_sink_name(a->flows[f].to_sink)));
		for (size_t k = 0; k < a->nkeys; k++) {
			wd_hex(a->keys[k], 32, hex);
			json_object_set_new(keys, hex, json_true());
		}
		json_object_set_new(arr, a->id, json_pack("{s:s,s:o,s:o,s:o,s:o,"
		    "s:i,s:s,s:s,s:{s:I,s:i},s:o}", "tenant", a->tenant->id,
		    "keys", keys, "tools", tools, "graph", graph, "flows", flows,
		    "max_calls", a->max_calls, "on_violation",
		    a->on_violation == POL_VIOLATION_STRIP ? "strip" : "deny",
		    "session", a->session_required ? "required" : "optional",
		    "sessions", "max", (json_int_t)a->max_sessions, "ttl_s",
		    a->session_ttl_s, "limits", limits_json(a)));
	}
	return arr;
}

/*
 * policy_version: SHA-256 of the compiled policy in canonical JSON
 * (sorted keys, compact).  Formatting, comments, key order and includes
 * do not change it; what the policy decides does.  Process settings
 * (server, upstream) and credential values are not part of it, except
 * upstream.proxy: where prompts and credentials travel through is
 * policy.  (Without a proxy the JSON is as before, so versions stay.)
 */
static enum wd_err
policy_version(struct pol_snapshot *s)
{
	json_t *root = json_object(), *provs = json_object(), *tens = json_object();
	json_t *rules = json_array(), *jurs = json_object();
	unsigned char digest[32];
	char *text;

	for (size_t i = 0; i < s->njurisdictions; i++)
		json_object_set_new(jurs, s->jurisdictions[i].name,
		    cset_json(&s->jurisdictions[i].set));
	for (size_t i = 0; i < s->nproviders; i++) {
		const struct pol_provider *p = &s->providers[i];
		json_t *models = json_array();

		for (size_t m = 0; m < p->nmodels; m++)
			json_array_append_new(models, json_string(p->models[m]));
		json_t *pj = json_pack("{s:s,s:s,s:s,s:b,"
		    "s:i,s:s,s:o}", "api", p->api, "base_url",
		    p->base_url, "country", p->country, "zdr", p->zdr,
		    "retention_days", p->retention_days, "credential",
		    p->credential, "models", models);

		/* The residency record and how the route is reached decide
		 * where data goes: part of the version. */
		json_object_set_new(pj, "residency", json_pack("{s:o,s:o,s:o,s:s,"
		    "s:o}", "processing", place_json(&p->processing), "storage",
		    place_json(&p->storage), "abuse_monitoring_storage",
		    place_json(&p->abuse_storage), "deployment",
		    pol_deployment_name(p->deployment), "dpf", p->dpf < 0 ?
		    json_null() : json_boolean(p->dpf)));
		json_object_set_new(pj, "upstream", json_pack("{s:s?,s:s?,s:s?,"
		    "s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:b}", "kind", p->kind,
		    "auth", p->auth, "region", p->region, "service", p->service,
		    "bedrock_api", p->bedrock_api, "azure_deployment",
		    p->azure_deployment, "api_version", p->api_version,
		    "anthropic_version", p->anthropic_version, "token_url",
		    p->token_url, "service_account", p->service_account,
		    "ca_file", p->ca_file, "insecure_http",
		    p->insecure_http));
		/* Added only when named, so older rules keep their version. */
		if (p->legal_basis != NULL)
			json_object_set_new(pj, "legal_basis",
			    json_string(p->legal_basis));
		json_object_set_new(provs, p->id, pj);
	}
	for (size_t i = 0; i < s->ntenants; i++) {
		const struct pol_tenant *t = &s->tenants[i];
		json_t *keys = json_array(), *routes = json_array();
		char hex[65];

		for (size_t k = 0; k < t->nkeys; k++) {
			wd_hex(t->keys[k], 32, hex);
			json_array_append_new(keys, json_string(hex));
		}
		for (size_t r = 0; r < t->nroutes; r++)
			json_array_append_new(routes, json_string(t->routes[r]->id));
		json_t *apps = json_object();

		for (size_t a = 0; a < t->napps; a++) {
			json_t *ak = json_object();

			for (size_t k = 0; k < t->apps[a].nkeys; k++) {
				wd_hex(t->apps[a].keys[k], 32, hex);
				json_object_set_new(ak, hex, json_true());
			}
			json_object_set_new(apps, t->apps[a].id ? t->apps[a].id : "?",
			    ak);
		}
		json_object_set_new(tens, t->id, json_pack("{s:o,s:o,s:o,s:o,s:o,"
		    "s:o,s:i}", "apps", apps, "keys", keys, "routes", routes,
		    "data_classes", mask_json(s, t->classes), "may_omit",
		    mask_json(s, t->may_omit), "subject_region",
		    t->has_region ? cset_json(&t->region) : json_null(),
		    "max_retention_days", t->max_retention_days));
		/* The art. 30 declarations, only when given (versions stay). */
		if (t->npurposes > 0 || t->ncategories > 0 || t->controller) {
			json_t *tj = json_object_get(tens, t->id), *pa = json_array();
			json_t *ca = json_array();

			for (size_t k = 0; k < t->npurposes; k++)
				json_array_append_new(pa, json_string(t->purposes[k]));
			for (size_t k = 0; k < t->ncategories; k++)
				json_array_append_new(ca, json_string(t->categories[k]));
			json_object_set_new(tj, "purposes", pa);
			json_object_set_new(tj, "categories", ca);
			json_object_set_new(tj, "controller", t->controller ?
			    json_string(t->controller) : json_null());
		}
	}
	for (size_t i = 0; i < s->nrules; i++) {
		const struct pol_rule *r = &s->rules[i];
		json_t *tn = json_array();

		for (size_t t = 0; t < r->nwhen_tenants; t++)
			json_array_append_new(tn, json_string(r->when_tenants[t]->id));
		json_t *rj = json_pack("{s:s,s:o,s:o,s:o,s:o,s:b,"
		    "s:i,s:s?,s:i}", "id", r->id, "when_classes",
		    mask_json(s, r->when_classes), "when_region",
		    r->has_when_region ? cset_json(&r->when_region) : json_null(),
		    "when_tenants", tn, "country",
		    r->has_country ? cset_json(&r->country) : json_null(),
		    "zdr", r->require_zdr, "max_days", r->max_days, "keep",
		    r->has_keep ? pol_keep_name(r->keep) : NULL, "keep_ttl_days",
		    r->keep_ttl_days);
		if (r->has_processing || r->has_storage || r->has_abuse ||
		    r->require_dpf)
			json_object_set_new(rj, "residency", json_pack(
			    "{s:o,s:o,s:o,s:b}", "processing", r->has_processing ?
			    cset_json(&r->processing) : json_null(), "storage",
			    r->has_storage ? cset_json(&r->storage) : json_null(),
			    "abuse_monitoring_storage", r->has_abuse ?
			    cset_json(&r->abuse_storage) : json_null(), "dpf",
			    r->require_dpf));

		/* Only when named, so older rules keep their version. */
		if (r->legal_basis != NULL)
			json_object_set_new(rj, "legal_basis",
			    json_string(r->legal_basis));
		json_array_append_new(rules, rj);
	}
	json_object_set_new(root, "agents", agents_json(s));
	if (s->detect.n > 0)
		json_object_set_new(root, "detect", pol_detect_json(s));
	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "jurisdictions", jurs);
	json_object_set_new(root, "data_classes", mask_json(s, ~0ull));
	json_object_set_new(root, "providers", provs);
	json_object_set_new(root, "tenants", tens);
	json_object_set_new(root, "rules", rules);
	json_object_set_new(root, "audit", json_pack("{s:s,s:i}", "payloads",
	    pol_keep_name(s->keep), "payload_ttl_days", s->keep_ttl_days));
	if (s->upstream.proxy != NULL)
		json_object_set_new(root, "upstream_proxy",
		    json_string(s->upstream.proxy));
	/* Limits and prices (issue 16); absent, the JSON is as before. */
	if (s->nlimits > 0 || s->nprices > 0)
		json_object_set_new(root, "limits", pol_limits_json(s));
	text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (text == NULL)
		return WD_ENOMEM;
	SHA256((unsigned char *)text, strlen(text), digest);
	free(text);
	wd_hex(digest, 32, s->version);
	return WD_OK;
}

enum wd_err
pol_compile(struct pol_loader *l)
{
	struct pol_snapshot *s = l->s;
	enum wd_err rc;

	compile_classes(l);
	compile_jurisdictions(l);
	check_unique_ids(l);
	pol_compile_providers(l);
	for (size_t i = 0; i < s->ntenants; i++)
		compile_tenant(l, &s->tenants[i], &l->rt[i]);
	for (size_t i = 0; i < s->nrules; i++)
		compile_rule(l, &s->rules[i], &l->rr[i]);
	pol_compile_agents(l);
	pol_compile_detect(l);
	if ((rc = index_rules(s)) != WD_OK || (rc = index_keys(l)) != WD_OK)
		return rc;
	if (l->w.nerrors > 0)
		return WD_ECONFIG;
	return policy_version(s);
}

void
pol_loader_free_raw(struct pol_loader *l)
{
	for (size_t i = 0; l->rt != NULL && i < l->s->ntenants; i++) {
		pol_refs_free(l->rt[i].routes, l->rt[i].nroutes);
		pol_refs_free(l->rt[i].classes, l->rt[i].nclasses);
		pol_refs_free(l->rt[i].omit, l->rt[i].nomit);
		free(l->rt[i].region.name);
	}
	free(l->rt);
	for (size_t i = 0; l->rr != NULL && i < l->s->nrules; i++) {
		pol_refs_free(l->rr[i].classes, l->rr[i].nclasses);
		pol_refs_free(l->rr[i].regions, l->rr[i].nregions);
		pol_refs_free(l->rr[i].countries, l->rr[i].ncountries);
		pol_refs_free(l->rr[i].tenants, l->rr[i].ntenants);
		pol_refs_free(l->rr[i].processing, l->rr[i].nprocessing);
		pol_refs_free(l->rr[i].storage, l->rr[i].nstorage);
		pol_refs_free(l->rr[i].abuse, l->rr[i].nabuse);
	}
	for (size_t i = 0; l->rp != NULL && i < l->s->nproviders; i++) {
		pol_refs_free(l->rp[i].processing, l->rp[i].nprocessing);
		pol_refs_free(l->rp[i].storage, l->rp[i].nstorage);
		pol_refs_free(l->rp[i].abuse, l->rp[i].nabuse);
	}
	free(l->rp);
	free(l->rr);
	for (size_t i = 0; l->rj != NULL && i < l->s->njurisdictions; i++) {
		pol_refs_free(l->rj[i].members, l->rj[i].nmembers);
		free(l->rj[i].at.name);
	}
	free(l->rj);
	pol_refs_free(l->classes, l->nclass_refs);
	pol_free_raw_agents(l);
	pol_free_raw_detect(l);
}
