/*
 * record.c - what the audit log keeps of one chat transaction: who asked,
 * what was decided and why, where it went, how it ended, what it cost,
 * and digests (never contents) of what was sent and answered.
 * The byte format around it is audit/FORMAT.md.
 */
#include "gateway/gw_int.h"

#include <string.h>

static json_t *
str_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? json_string(s) : json_null();
}

/* The usage given as text, as a tree (null if it cannot be made). */
static json_t *
usage_tree(const struct gw_outcome *o)
{
	json_t *u = gw_json_load(o->usage_text, o->usage_len, 0, NULL);

	return u != NULL ? u : json_null();
}

static json_t *
attempts_json(const struct gw_attempt *a, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "route", json_string(a[i].route));
		if (a[i].status != 0)
			json_object_set_new(o, "status", json_integer(a[i].status));
		if (a[i].error != NULL)
			json_object_set_new(o, "error", json_string(a[i].error));
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
gw_record(const struct gw_outcome *o)
{
	json_t *r = json_object();
	const struct pol_decision *d = o->decided ? o->dec : NULL;

	json_object_set_new(r, "kind", json_string("request"));
	json_object_set_new(r, "request_id", str_or_null(o->request_id));
	json_object_set_new(r, "decision_id", str_or_null(o->dec ? o->dec->id :
	    NULL));
	json_object_set_new(r, "tenant", str_or_null(o->tenant));
	json_object_set_new(r, "api", str_or_null(o->api));
	json_object_set_new(r, "model", str_or_null(o->model));
	json_object_set_new(r, "stream", json_boolean(o->stream));
	json_object_set_new(r, "policy_version", json_string(o->snap->version));
	json_object_set_new(r, "status", json_integer(o->status));
	json_object_set_new(r, "code", str_or_null(o->code));
	json_object_set_new(r, "route", str_or_null(o->route ? o->route->id : NULL));
	json_object_set_new(r, "route_country", str_or_null(o->route ?
	    o->route->country : NULL));
	/* The transfer register (`warden audit register`) reads this: the
	 * legal basis the rules name for the route used (an applied rule's,
	 * else the route's). */
	json_object_set_new(r, "legal_basis", str_or_null(pol_legal_basis(
	    o->decided ? o->dec : NULL, o->route)));
	/* A request that went out through an explicit proxy says which. */
	if (o->route != NULL && o->snap->upstream.proxy != NULL)
		json_object_set_new(r, "upstream_proxy",
		    json_string(o->snap->upstream.proxy));
	/* Where the route declared it processes, as written (a zone such
	 * as EU for routes with a residency record), and its deployment. */
	if (o->route != NULL && o->route->processing_text != NULL)
		json_object_set_new(r, "route_processing",
		    json_string(o->route->processing_text));
	if (o->route != NULL && o->route->deployment != POL_DEPLOY_UNSET)
		json_object_set_new(r, "route_deployment",
		    json_string(pol_deployment_name(o->route->deployment)));
	/* A route over plain http off loopback was accepted by the rules
	 * (insecure_http): every record of it says so. */
	if (o->route != NULL && o->route->insecure_http)
		json_object_set_new(r, "route_insecure_http", json_true());
	json_object_set_new(r, "upstream_status", o->upstream_status ?
	    json_integer(o->upstream_status) : json_null());
	json_object_set_new(r, "latency_ms", json_integer((json_int_t)
	    (o->latency_us / 1000)));
	json_object_set_new(r, "attempts", attempts_json(o->attempts,
	    o->nattempts));
	if (o->limits != NULL)
		json_object_set(r, "limits", o->limits);
	json_object_set_new(r, "usage", o->usage ? json_incref(o->usage) :
	    o->usage_len > 0 ? usage_tree(o) : json_null());
	if (d != NULL) {
		json_t *dj = pol_decision_json(o->snap, d);

		/* The decision's own view, minus what is above already. */
		json_object_set(r, "verdict", json_object_get(dj, "verdict"));
		json_object_set(r, "data_classes", json_object_get(json_object_get(dj,
		    "facts"), "data_classes"));
		json_object_set(r, "subject_region", json_object_get(json_object_get(
		    dj, "facts"), "subject_region"));
		json_object_set(r, "app", json_object_get(json_object_get(dj,
		    "facts"), "app"));
		json_object_set(r, "rules", json_object_get(dj, "matched_rules"));
		json_object_set(r, "reasons", json_object_get(dj, "reasons"));
		json_object_set(r, "routes", json_object_get(dj, "routes"));
		json_object_set(r, "keep", json_object_get(dj, "keep"));
		/* Content detections: detector and count, never the value. */
		if (json_object_get(dj, "detections") != NULL)
			json_object_set(r, "detections", json_object_get(dj,
			    "detections"));
		json_decref(dj);
		json_object_set_new(r, "payload", json_pack("{s:s,s:o,s:o}", "mode",
		    pol_keep_name(d->keep), "request_hmac",
		    str_or_null(o->req_hmac), "response_hmac",
		    str_or_null(o->resp_hmac)));
		if (o->stored)
			json_object_set_new(json_object_get(r, "payload"), "stored",
			    json_true());
	} else {
		/* Refused before a decision: unauthenticated, malformed. */
		json_object_set_new(r, "verdict", json_string("deny"));
	}
	/* A later check (tool policy) may refuse what the decision allowed. */
	if (o->refused_late)
		json_object_set_new(r, "verdict", json_string("deny"));
	json_object_set_new(r, "agent", json_null());
	json_object_set_new(r, "session", json_null());
	if (o->tools != NULL) {
		json_object_set(r, "tools", o->tools);
		if (json_object_get(o->tools, "agent") != NULL)
			json_object_set(r, "agent", json_object_get(o->tools, "agent"));
		if (json_object_get(o->tools, "session") != NULL)
			json_object_set(r, "session",
			    json_object_get(o->tools, "session"));
	}
	return r;
}

/* ---- the same record, written directly (once per request) ---- */

static void
canon_attempts(struct aud_canon *c, const struct gw_attempt *a, size_t n)
{
	aud_canon_key(c, "attempts");
	aud_canon_arr(c);
	for (size_t i = 0; i < n; i++) {
		aud_canon_obj(c);
		if (a[i].error != NULL) {
			aud_canon_key(c, "error");
			aud_canon_str(c, a[i].error);
		}
		aud_canon_key(c, "route");
		aud_canon_str(c, a[i].route);
		if (a[i].status != 0) {
			aud_canon_key(c, "status");
			aud_canon_int(c, a[i].status);
		}
		aud_canon_close(c);
	}
	aud_canon_close(c);
}

static void
canon_str_or_null(struct aud_canon *c, const char *key, const char *s)
{
	aud_canon_key(c, key);
	aud_canon_str(c, s != NULL && *s != '\0' ? s : NULL);
}

/* A member of the tools log (agent, session), or null. */
static void
canon_tools_member(struct aud_canon *c, const struct gw_outcome *o,
    const char *key)
{
	json_t *v = o->tools != NULL ? json_object_get(o->tools, key) : NULL;

	aud_canon_key(c, key);
	if (v != NULL)
		aud_canon_json(c, v);
	else
		aud_canon_null(c);
}

/*
 * gw_record's members in bytewise key order (aud_canon checks the order
 * and fails the record on a slip, so a mistake here costs the fast path,
 * never a different record; tests/unit/test_audit.c compares the two).
 * Where gw_record leaves a member out because jansson refused its value
 * (a NULL string), so does this.
 */
bool
gw_record_canon(const struct gw_outcome *o, struct aud_canon *c)
{
	const struct pol_decision *d = o->decided ? o->dec : NULL;
	const struct pol_snapshot *s = o->snap;
	const struct pol_provider *rt = o->route;

	canon_tools_member(c, o, "agent");
	canon_str_or_null(c, "api", o->api);
	if (d != NULL) {
		aud_canon_key(c, "app");
		aud_canon_str(c, d->app);
	}
	canon_attempts(c, o->attempts, o->nattempts);
	canon_str_or_null(c, "code", o->code);
	if (d != NULL) {
		aud_canon_key(c, "data_classes");
		aud_canon_arr(c);
		for (size_t b = 0; b < s->nclasses; b++)
			if (d->classes & (1ull << b))
				aud_canon_str(c, s->classes[b]);
		aud_canon_close(c);
	}
	canon_str_or_null(c, "decision_id", o->dec != NULL ? o->dec->id : NULL);
	if (d != NULL && s->detect.n > 0) {
		/* Rare (rules with detect:): the decision's own object. */
		json_t *det = json_object();

		for (size_t i = 0; i < s->detect.n && i < POL_MAX_DETECTORS; i++)
			if (d->det_fired & (1ull << i))
				json_object_set_new(det, s->detect.d[i].id,
				    json_integer(d->det_counts[i]));
		aud_canon_key(c, "detections");
		aud_canon_json(c, det);
		json_decref(det);
	}
	if (d != NULL) {
		aud_canon_key(c, "keep");
		aud_canon_obj(c);
		aud_canon_key(c, "payloads");
		aud_canon_str(c, pol_keep_name(d->keep));
		aud_canon_key(c, "ttl_days");
		aud_canon_int(c, d->keep_ttl_days);
		aud_canon_close(c);
	}
	aud_canon_key(c, "kind");
	aud_canon_str(c, "request");
	aud_canon_key(c, "latency_ms");
	aud_canon_int(c, (long long)(o->latency_us / 1000));
	canon_str_or_null(c, "legal_basis", pol_legal_basis(d, rt));
	if (o->limits != NULL) {
		aud_canon_key(c, "limits");
		aud_canon_json(c, o->limits);
	}
	canon_str_or_null(c, "model", o->model);
	if (d != NULL) {
		aud_canon_key(c, "payload");
		aud_canon_obj(c);
		aud_canon_key(c, "mode");
		aud_canon_str(c, pol_keep_name(d->keep));
		canon_str_or_null(c, "request_hmac", o->req_hmac);
		canon_str_or_null(c, "response_hmac", o->resp_hmac);
		if (o->stored) {
			aud_canon_key(c, "stored");
			aud_canon_bool(c, true);
		}
		aud_canon_close(c);
	}
	aud_canon_key(c, "policy_version");
	aud_canon_str(c, s->version);
	if (d != NULL) {
		aud_canon_key(c, "reasons");
		aud_canon_arr(c);
		for (size_t i = 0; i < d->nreasons; i++) {
			const struct pol_reason *r = &d->reasons[i];
			const char *rule = pol_reason_rule(r), *code =
			    pol_reason_code(r), *route = r->route->id;
			char text[192];

			/* json_pack leaves out a reason with a NULL string. */
			if (rule == NULL || code == NULL || route == NULL)
				continue;
			pol_reason_text(r, d->tenant_p, text, sizeof(text));
			aud_canon_obj(c);
			aud_canon_key(c, "code");
			aud_canon_str(c, code);
			aud_canon_key(c, "message");
			aud_canon_str(c, text);
			aud_canon_key(c, "route");
			aud_canon_str(c, route);
			aud_canon_key(c, "rule");
			aud_canon_str(c, rule);
			aud_canon_close(c);
		}
		aud_canon_close(c);
	}
	canon_str_or_null(c, "request_id", o->request_id);
	canon_str_or_null(c, "route", rt != NULL ? rt->id : NULL);
	canon_str_or_null(c, "route_country", rt != NULL ? rt->country : NULL);
	if (rt != NULL && rt->deployment != POL_DEPLOY_UNSET &&
	    pol_deployment_name(rt->deployment) != NULL) {
		aud_canon_key(c, "route_deployment");
		aud_canon_str(c, pol_deployment_name(rt->deployment));
	}
	if (rt != NULL && rt->insecure_http) {
		aud_canon_key(c, "route_insecure_http");
		aud_canon_bool(c, true);
	}
	if (rt != NULL && rt->processing_text != NULL) {
		aud_canon_key(c, "route_processing");
		aud_canon_str(c, rt->processing_text);
	}
	if (d != NULL) {
		aud_canon_key(c, "routes");
		aud_canon_arr(c);
		for (size_t i = 0; i < d->nroutes; i++)
			if (d->routes[i]->id != NULL)
				aud_canon_str(c, d->routes[i]->id);
		aud_canon_close(c);
		aud_canon_key(c, "rules");
		aud_canon_arr(c);
		for (size_t i = 0; i < d->nmatched; i++)
			if (d->matched[i]->id != NULL)
				aud_canon_str(c, d->matched[i]->id);
		aud_canon_close(c);
	}
	canon_tools_member(c, o, "session");
	aud_canon_key(c, "status");
	aud_canon_int(c, o->status);
	aud_canon_key(c, "stream");
	aud_canon_bool(c, o->stream);
	if (d != NULL) {
		aud_canon_key(c, "subject_region");
		aud_canon_str(c, d->region[0] ? d->region : NULL);
	}
	canon_str_or_null(c, "tenant", o->tenant);
	if (o->tools != NULL) {
		aud_canon_key(c, "tools");
		aud_canon_json(c, o->tools);
	}
	if (rt != NULL && s->upstream.proxy != NULL) {
		aud_canon_key(c, "upstream_proxy");
		aud_canon_str(c, s->upstream.proxy);
	}
	aud_canon_key(c, "upstream_status");
	if (o->upstream_status)
		aud_canon_int(c, o->upstream_status);
	else
		aud_canon_null(c);
	aud_canon_key(c, "usage");
	if (o->usage != NULL) {
		aud_canon_json(c, o->usage);
	} else if (o->usage_len == 0) {
		aud_canon_null(c);
	} else if (!aud_canon_raw(c, o->usage_text, o->usage_len)) {
		json_t *u = usage_tree(o);

		aud_canon_json(c, u);
		json_decref(u);
	}
	aud_canon_key(c, "verdict");
	aud_canon_str(c, o->refused_late || d == NULL ? "deny" :
	    pol_verdict_name(d->verdict));
	return !c->b.fail;
}

json_t *
gw_stream_end_record(const struct gw_stream_end *e)
{
	json_t *rec, *payload;

	rec = json_pack("{s:s,s:s,s:s,s:o,s:i,s:o,s:I,s:o,s:O,s:s}",
	    "kind", "stream_end", "request_id", e->request_id,
	    "decision_id", e->decision_id,
	    "tenant", e->tenant ? json_string(e->tenant) : json_null(),
	    "status", e->status,
	    "code", e->code ? json_string(e->code) : json_null(),
	    "latency_ms", (json_int_t)e->latency_ms,
	    "attempts", attempts_json(e->attempts, e->nattempts),
	    "usage", e->usage ? e->usage : json_null(),
	    "verdict", e->verdict);
	if (rec == NULL)
		return NULL;
	payload = json_pack("{s:s,s:o}", "mode", e->keep,
	    "response_hmac", e->resp_hmac[0] ? json_string(e->resp_hmac) :
	    json_null());
	if (payload != NULL && e->stored)
		json_object_set_new(payload, "stored", json_true());
	json_object_set_new(rec, "payload", payload ? payload : json_null());
	if (e->tools != NULL)
		json_object_set(rec, "tools", e->tools);
	/* What the stream spent against its limits (settled by now). */
	if (e->limits != NULL)
		json_object_set(rec, "limits", e->limits);
	return rec;
}

/* The same, written directly; false where the jansson path would not
 * make the record as written here (it decides then). */
bool
gw_stream_end_canon(const struct gw_stream_end *e, struct aud_canon *c)
{
	if (e->request_id == NULL || e->decision_id == NULL ||
	    e->verdict == NULL || e->keep == NULL)
		return false;
	canon_attempts(c, e->attempts, e->nattempts);
	aud_canon_key(c, "code");
	aud_canon_str(c, e->code);
	aud_canon_key(c, "decision_id");
	aud_canon_str(c, e->decision_id);
	aud_canon_key(c, "kind");
	aud_canon_str(c, "stream_end");
	aud_canon_key(c, "latency_ms");
	aud_canon_int(c, e->latency_ms);
	if (e->limits != NULL) {
		aud_canon_key(c, "limits");
		aud_canon_json(c, e->limits);
	}
	aud_canon_key(c, "payload");
	aud_canon_obj(c);
	aud_canon_key(c, "mode");
	aud_canon_str(c, e->keep);
	aud_canon_key(c, "response_hmac");
	aud_canon_str(c, e->resp_hmac[0] ? e->resp_hmac : NULL);
	if (e->stored) {
		aud_canon_key(c, "stored");
		aud_canon_bool(c, true);
	}
	aud_canon_close(c);
	aud_canon_key(c, "request_id");
	aud_canon_str(c, e->request_id);
	aud_canon_key(c, "status");
	aud_canon_int(c, e->status);
	aud_canon_key(c, "tenant");
	aud_canon_str(c, e->tenant);
	if (e->tools != NULL) {
		aud_canon_key(c, "tools");
		aud_canon_json(c, e->tools);
	}
	aud_canon_key(c, "usage");
	if (e->usage != NULL)
		aud_canon_json(c, e->usage);
	else
		aud_canon_null(c);
	aud_canon_key(c, "verdict");
	aud_canon_str(c, e->verdict);
	return !c->b.fail;
}
