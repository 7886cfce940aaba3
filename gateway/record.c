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
	json_object_set_new(r, "attempts", o->attempts ? json_incref(o->attempts)
	    : json_array());
	if (o->limits != NULL)
		json_object_set(r, "limits", o->limits);
	json_object_set_new(r, "usage", o->usage ? json_incref(o->usage) :
	    json_null());
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
	} else {
		/* Refused before a decision: unauthenticated, malformed. */
		json_object_set_new(r, "verdict", json_string("deny"));
	}
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
