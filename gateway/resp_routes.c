/*
 * resp_routes.c - which route made each Responses answer (the memory
 * store's part for previous_response_id, see store.h).
 *
 * A Responses follow-up names state kept at the provider that made the
 * response: it may go only to that route (and only if the policy still
 * allows that route for the follow-up).  Each tenant has its own ring of
 * GW_RESP_PER_TENANT ids, so no tenant can push out another's; an id that
 * fell out of its ring is unknown, and a follow-up that names it is
 * refused, never sent somewhere else.
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <stdlib.h>
#include <string.h>

struct resp_ent {
	char id[GW_RESP_ID_MAX + 1];
	char route[GW_RESP_ROUTE_MAX + 1];
};

struct resp_tenant {
	char *tenant;			/* owned */
	struct resp_ent *ring;		/* GW_RESP_PER_TENANT */
	size_t next, count;
	struct resp_tenant *nx;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct resp_tenant *tenants;

static struct resp_tenant *
tenant_find(const char *tenant, bool create)
{
	struct resp_tenant *t;

	for (t = tenants; t != NULL; t = t->nx)
		if (strcmp(t->tenant, tenant) == 0)
			return t;
	if (!create)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->tenant = strdup(tenant);
	t->ring = calloc(GW_RESP_PER_TENANT, sizeof(*t->ring));
	if (t->tenant == NULL || t->ring == NULL) {
		free(t->tenant);
		free(t->ring);
		free(t);
		return NULL;
	}
	t->nx = tenants;
	tenants = t;
	return t;
}

enum gw_store_rc
gw_resp_route_put(const char *tenant, const char *id, const char *route)
{
	struct resp_tenant *t;
	enum gw_store_rc rc = GW_STORE_NOMEM;

	if (strlen(id) > GW_RESP_ID_MAX || strlen(route) > GW_RESP_ROUTE_MAX)
		return GW_STORE_TOO_LONG;
	pthread_mutex_lock(&lock);
	if ((t = tenant_find(tenant, true)) != NULL) {
		struct resp_ent *e = &t->ring[t->next];

		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->route, sizeof(e->route), "%s", route);
		t->next = (t->next + 1) % GW_RESP_PER_TENANT;
		if (t->count < GW_RESP_PER_TENANT)
			t->count++;
		rc = GW_STORE_OK;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

enum gw_store_rc
gw_resp_route_get(const char *tenant, const char *id, char *route,
    size_t len)
{
	struct resp_tenant *t;
	enum gw_store_rc rc = GW_STORE_UNKNOWN;

	pthread_mutex_lock(&lock);
	t = tenant_find(tenant, false);
	/* Newest first: an id given twice (it cannot be) takes the last. */
	for (size_t k = 0; t != NULL && k < t->count; k++) {
		size_t i = (t->next + GW_RESP_PER_TENANT - 1 - k) %
		    GW_RESP_PER_TENANT;

		if (strcmp(t->ring[i].id, id) == 0) {
			snprintf(route, len, "%s", t->ring[i].route);
			rc = GW_STORE_OK;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void
gw_resp_routes_reset(void)
{
	pthread_mutex_lock(&lock);
	while (tenants != NULL) {
		struct resp_tenant *t = tenants;

		tenants = t->nx;
		free(t->tenant);
		free(t->ring);
		free(t);
	}
	pthread_mutex_unlock(&lock);
}
