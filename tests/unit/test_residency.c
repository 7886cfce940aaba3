/*
 * test_residency.c - issue 14's residency record per route: processing,
 * storage and abuse-monitoring storage each required on their own, a
 * global deployment meeting no residency rule, `country:` kept working,
 * the loader's refusal of plain http off loopback, and the lint warnings
 * where a route's own naming contradicts its record.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/pol_int.h"
#include "tests/unit/suites.h"

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Routes of every deployment kind; one tenant per rule under test. */
static const char rules[] =
    "version: 1\n"
    "jurisdictions:\n"
    "  EU: [AT, BE, BG, HR, CY, CZ, DK, EE, FI, FR, DE, GR, HU, IE, IT, LV,"
    " LT, LU, MT, NL, PL, PT, RO, SK, SI, ES, SE]\n"
    "data_classes: [health]\n"
    "providers:\n"
    "  - id: azure-global\n"
    "    kind: azure\n"
    "    base_url: https://x.openai.azure.com/openai/v1\n"
    "    residency: { processing: EU, storage: EU, deployment: global }\n"
    "    credential: c\n"
    "    models: [m]\n"
    "  - id: azure-dz-eu\n"
    "    kind: azure\n"
    "    base_url: https://y.openai.azure.com/openai/v1\n"
    "    residency: { processing: EU, storage: SE, abuse_monitoring_storage:"
    " EU, deployment: datazone, dpf: true }\n"
    "    credential: c\n"
    "    models: [m, n, s]\n"
    "  - id: us-storage\n"
    "    base_url: https://z.example\n"
    "    residency: { processing: DE, storage: US, deployment: regional }\n"
    "    credential: c\n"
    "    models: [s]\n"
    "  - id: us-processing\n"
    "    base_url: https://w.example\n"
    "    residency: { processing: US, storage: DE, deployment: regional }\n"
    "    credential: c\n"
    "    models: [n]\n"
    "  - id: old-style\n"
    "    base_url: https://v.example\n"
    "    country: IE\n"
    "    credential: c\n"
    "    models: [o]\n"
    "tenants:\n"
    "  - id: health\n"
    "    keys: [\"sha256:" KEY "\"]\n"
    "    data_classes: [health]\n"
    "    routes: [azure-global, azure-dz-eu, us-storage, us-processing,"
    " old-style]\n"
    "rules:\n"
    "  - id: eu-health\n"
    "    when: { data_class: [health] }\n"
    "    require: { processing: EU, storage: EU }\n"
    "  - id: eu-country\n"
    "    when: { data_class: [health] }\n"
    "    require: { provider_country: EU }\n";

static void
decide(const struct pol_snapshot *s, const char *model,
    struct pol_decision *d)
{
	struct pol_facts f = { .tenant = &s->tenants[0], .model = model };

	ck_assert_int_eq(pol_decide(s, &f, d), WD_OK);
}

static bool
has_reason(const struct pol_decision *d, const char *route, enum pol_why why)
{
	for (size_t i = 0; i < d->nreasons; i++)
		if (d->reasons[i].why == why &&
		    strcmp(d->reasons[i].route->id, route) == 0)
			return true;
	return false;
}

START_TEST(global_denied_datazone_allowed)
{
	struct ut_ld l;
	struct pol_decision d;

	ut_load_text(&l, rules, 0600);
	ck_assert_msg(l.rc == WD_OK, "errors:\n%s", l.errs);
	decide(l.snap, "m", &d);
	/* The global deployment declares EU processing, and still may
	 * process anywhere: only the EU DataZone remains. */
	ck_assert_int_eq(d.verdict, POL_ALLOW);
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "azure-dz-eu");
	ck_assert(has_reason(&d, "azure-global", POL_WHY_GLOBAL));
	ut_ld_done(&l);
}
END_TEST

START_TEST(storage_alone_denies)
{
	struct ut_ld l;
	struct pol_decision d;
	char text[192];

	ut_load_text(&l, rules, 0600);
	ck_assert_msg(l.rc == WD_OK, "errors:\n%s", l.errs);
	decide(l.snap, "s", &d);
	/* us-storage processes in DE (meets processing and
	 * provider_country), but stores in the US. */
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "azure-dz-eu");
	ck_assert(has_reason(&d, "us-storage", POL_WHY_STORAGE));
	ck_assert(!has_reason(&d, "us-storage", POL_WHY_PROCESSING));
	ck_assert(!has_reason(&d, "us-storage", POL_WHY_COUNTRY));
	for (size_t i = 0; i < d.nreasons; i++)
		if (d.reasons[i].why == POL_WHY_STORAGE) {
			pol_reason_text(&d.reasons[i], NULL, text, sizeof(text));
			ck_assert_str_eq(text, "route 'us-storage' stores data in US, "
			    "outside EU");
			ck_assert_str_eq(pol_reason_code(&d.reasons[i]), "residency");
		}
	ut_ld_done(&l);
}
END_TEST

START_TEST(processing_alone_denies)
{
	struct ut_ld l;
	struct pol_decision d;

	ut_load_text(&l, rules, 0600);
	ck_assert_msg(l.rc == WD_OK, "errors:\n%s", l.errs);
	decide(l.snap, "n", &d);
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "azure-dz-eu");
	ck_assert(has_reason(&d, "us-processing", POL_WHY_PROCESSING));
	ck_assert(!has_reason(&d, "us-processing", POL_WHY_STORAGE));
	ut_ld_done(&l);
}
END_TEST

START_TEST(country_means_processing_and_storage)
{
	struct ut_ld l;
	struct pol_decision d;
	const struct pol_provider *p = NULL;

	ut_load_text(&l, rules, 0600);
	ck_assert_msg(l.rc == WD_OK, "errors:\n%s", l.errs);
	decide(l.snap, "o", &d);
	ck_assert_int_eq(d.verdict, POL_ALLOW);
	ck_assert_str_eq(d.routes[0]->id, "old-style");
	for (size_t i = 0; i < l.snap->nproviders; i++)
		if (strcmp(l.snap->providers[i].id, "old-style") == 0)
			p = &l.snap->providers[i];
	ck_assert_ptr_nonnull(p);
	ck_assert(pol_cset_has(&p->processing, pol_country_index("IE")));
	ck_assert(pol_cset_has(&p->storage, pol_country_index("IE")));
	ck_assert(!pol_cset_has(&p->storage, pol_country_index("DE")));
	ck_assert_str_eq(p->kind, "openai");
	ck_assert_str_eq(p->auth, "bearer");
	ut_ld_done(&l);
}
END_TEST

/* An abuse-monitoring rule: a route that did not declare where abuse
 * data is kept meets it nowhere (fail closed). */
START_TEST(abuse_storage_undeclared_denies)
{
	static const char text[] =
	    "version: 1\n"
	    "providers:\n"
	    "  - id: undeclared\n"
	    "    base_url: https://a.example\n"
	    "    country: DE\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "  - id: declared\n"
	    "    base_url: https://b.example\n"
	    "    residency: { processing: FR, storage: FR, "
	    "abuse_monitoring_storage: FR, deployment: regional }\n"
	    "    credential: c\n"
	    "    models: [m]\n"
	    "tenants:\n"
	    "  - id: t\n"
	    "    keys: [\"sha256:" KEY "\"]\n"
	    "    routes: [undeclared, declared]\n"
	    "rules:\n"
	    "  - id: abuse-in-fr-de\n"
	    "    require: { abuse_monitoring_storage: [FR, DE], dpf: false }\n";
	struct ut_ld l;
	struct pol_decision d;

	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "errors:\n%s", l.errs);
	decide(l.snap, "m", &d);
	ck_assert_uint_eq(d.nroutes, 1);
	ck_assert_str_eq(d.routes[0]->id, "declared");
	ck_assert(has_reason(&d, "undeclared", POL_WHY_ABUSE));
	ut_ld_done(&l);
}
END_TEST

START_TEST(residency_changes_policy_version)
{
	struct ut_ld a, b;
	char *other = strdup(rules), *at;

	/* The same file with the DataZone's storage moved: another policy. */
	at = strstr(other, "storage: SE");
	ck_assert_ptr_nonnull(at);
	memcpy(at, "storage: FI", 11);
	ut_load_text(&a, rules, 0600);
	ut_load_text(&b, other, 0600);
	ck_assert_msg(a.rc == WD_OK && b.rc == WD_OK, "%s%s", a.errs, b.errs);
	ck_assert_str_ne(a.snap->version, b.snap->version);
	ut_ld_done(&a);
	ut_ld_done(&b);
	free(other);
}
END_TEST

#define ROUTE(url, extra) \
	"version: 1\n" \
	"providers:\n" \
	"  - id: r\n" \
	"    base_url: " url "\n" \
	"    country: DE\n" \
	extra \
	"    credential: c\n" \
	"    models: [m]\n"

START_TEST(plain_http_off_loopback_refused)
{
	struct ut_ld l;

	ut_load_text(&l, ROUTE("http://api.example.com/v1", ""), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_msg(strstr(l.errs, "plain http:// to a host that is not "
	    "loopback") != NULL, "%s", l.errs);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("http://127.0.0.1.example.com/v1", ""), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("http://10.0.0.5:8080/v1", ""), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ut_ld_done(&l);
	/* Loopback, and an explicit acceptance, load. */
	ut_load_text(&l, ROUTE("http://127.0.0.1:9/v1", ""), 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("http://[::1]:9/v1", ""), 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("http://api.example.com/v1",
	    "    insecure_http: true\n"), 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	ck_assert(l.snap->providers[0].insecure_http);
	ut_ld_done(&l);
}
END_TEST

START_TEST(kind_settings_checked)
{
	struct ut_ld l;

	ut_load_text(&l, ROUTE("https://a.example", "    kind: bedrock\n"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ck_assert_msg(strstr(l.errs, "SigV4 needs 'region'") != NULL, "%s",
	    l.errs);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("https://a.example", "    kind: azure\n"
	    "    auth: bearer\n"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("https://a.example", "    kind: bedrock\n"
	    "    auth: bearer\n"), 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	ck_assert_str_eq(l.snap->providers[0].service, "bedrock");
	ut_ld_done(&l);
	ut_load_text(&l, ROUTE("https://a.example", "    kind: nope\n"), 0600);
	ck_assert_int_eq(l.rc, WD_ECONFIG);
	ut_ld_done(&l);
}
END_TEST

static char *
lint_text(const char *text)
{
	struct ut_ld l;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ut_load_text(&l, text, 0600);
	ck_assert_msg(l.rc == WD_OK, "%s", l.errs);
	pol_lint_routes(l.snap, f);
	fclose(f);
	ut_ld_done(&l);
	return buf;
}

#define RES_ROUTE(kind, url, res, extra, models) \
	"version: 1\n" \
	"jurisdictions: { EU: [DE, FR, IE, SE] }\n" \
	"providers:\n" \
	"  - id: r\n" \
	"    kind: " kind "\n" \
	"    base_url: " url "\n" \
	"    residency: " res "\n" \
	extra \
	"    credential: c\n" \
	"    models: " models "\n"

START_TEST(lint_contradictions)
{
	char *out;

	out = lint_text(RES_ROUTE("bedrock", "https://b.example",
	    "{ processing: US, deployment: regional }",
	    "    region: eu-central-1\n", "[eu.anthropic.claude-3-haiku]"));
	ck_assert_msg(strstr(out, "eu. inference profile") != NULL, "%s", out);
	free(out);
	out = lint_text(RES_ROUTE("bedrock", "https://b.example",
	    "{ processing: EU, deployment: regional }",
	    "    region: eu-central-1\n", "[global.anthropic.claude]"));
	ck_assert_msg(strstr(out, "global. inference profile") != NULL, "%s", out);
	free(out);
	out = lint_text(RES_ROUTE("openai",
	    "https://aiplatform.googleapis.com/v1/projects/p/locations/global/"
	    "endpoints/openapi", "{ processing: EU, deployment: regional }", "",
	    "[m]"));
	ck_assert_str_eq(out, "");	/* not a vertex route: no claim */
	free(out);
	out = lint_text(RES_ROUTE("vertex",
	    "https://aiplatform.googleapis.com/v1/projects/p/locations/global/"
	    "endpoints/openapi", "{ processing: EU, deployment: regional }",
	    "    token_url: https://oauth2.googleapis.com/token\n"
	    "    service_account: a@p.iam.gserviceaccount.com\n", "[m]"));
	ck_assert_msg(strstr(out, "Vertex AI's global location") != NULL, "%s",
	    out);
	free(out);
	out = lint_text(RES_ROUTE("azure", "https://x.openai.azure.com",
	    "{ processing: SE, deployment: regional }",
	    "    azure_deployment: gpt4o-GlobalStandard\n"
	    "    api_version: 2024-10-21\n", "[m]"));
	ck_assert_msg(strstr(out, "name says global") != NULL, "%s", out);
	free(out);
	out = lint_text(RES_ROUTE("openai", "http://api.example",
	    "{ processing: DE, deployment: regional }",
	    "    insecure_http: true\n", "[m]"));
	ck_assert_msg(strstr(out, "insecure_http") != NULL, "%s", out);
	free(out);
	/* A consistent record: nothing to say. */
	out = lint_text(RES_ROUTE("bedrock", "https://b.example",
	    "{ processing: EU, deployment: datazone }",
	    "    region: eu-central-1\n", "[eu.anthropic.claude-3-haiku]"));
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

Suite *
suite_residency(void)
{
	Suite *s = suite_create("residency");
	TCase *tc = tcase_create("residency");

	tcase_add_test(tc, global_denied_datazone_allowed);
	tcase_add_test(tc, storage_alone_denies);
	tcase_add_test(tc, processing_alone_denies);
	tcase_add_test(tc, country_means_processing_and_storage);
	tcase_add_test(tc, abuse_storage_undeclared_denies);
	tcase_add_test(tc, residency_changes_policy_version);
	tcase_add_test(tc, plain_http_off_loopback_refused);
	tcase_add_test(tc, kind_settings_checked);
	tcase_add_test(tc, lint_contradictions);
	suite_add_tcase(s, tc);
	return s;
}
