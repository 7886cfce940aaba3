/*
 * metrics.c - counters for /metrics, in the Prometheus text format.
 *
 * Workers update, /metrics reads; one mutex guards the labelled series
 * (a handful of routes times a handful of statuses), atomics the gauges.
 * Labelled series are keyed by route id string and never removed, so a
 * reload that renames routes keeps the old series until restart.
 */
#include "gateway/gw_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define NBUCKETS 12

static const double bucket_le[NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10
};

struct req_series {
	char route[65];
	int status;
	uint64_t count;
};

struct lat_series {
	char route[65];
	uint64_t buckets[NBUCKETS];
	uint64_t count;
	uint64_t sum_us;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct req_series reqs[MAX_SERIES];
static size_t nreqs;
static struct lat_series lats[MAX_SERIES / 8];
static size_t nlats;
static atomic_llong open_conns;
static atomic_ullong bytes_in, bytes_out;

void
gw_metrics_init(void)
{
}

void
gw_metrics_request(const char *route, int status)
{
	size_t i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < nreqs; i++)
		if (reqs[i].status == status && strcmp(reqs[i].route, route) == 0)
			break;
	if (i == nreqs && nreqs < MAX_SERIES) {
		snprintf(reqs[i].route, sizeof(reqs[i].route), "%s", route);
		reqs[i].status = status;
		nreqs++;
	}
	if (i < nreqs)
		reqs[i].count++;
	pthread_mutex_unlock(&lock);
}

void
gw_metrics_upstream(const char *route, uint64_t us)
{
	size_t i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < nlats; i++)
		if (strcmp(lats[i].route, route) == 0)
			break;
	if (i == nlats && nlats < sizeof(lats) / sizeof(lats[0])) {
		snprintf(lats[i].route, sizeof(lats[i].route), "%s", route);
		nlats++;
	}
	if (i < nlats) {
		for (size_t b = 0; b < NBUCKETS; b++)
			if ((double)us / 1e6 <= bucket_le[b])
				lats[i].buckets[b]++;
		lats[i].count++;
		lats[i].sum_us += us;
	}
	pthread_mutex_unlock(&lock);
}

void
gw_metrics_conn(int delta)
{
	atomic_fetch_add_explicit(&open_conns, delta, memory_order_relaxed);
}

void
gw_metrics_bytes(uint64_t in, uint64_t out)
{
	if (in)
		atomic_fetch_add_explicit(&bytes_in, in, memory_order_relaxed);
	if (out)
		atomic_fetch_add_explicit(&bytes_out, out, memory_order_relaxed);
}

void
gw_metrics_render(struct evbuffer *o)
{
	pthread_mutex_lock(&lock);
	evbuffer_add_printf(o, "# HELP warden_requests_total Requests answered, "
	    "by HTTP status and route (499: client left).\n"
	    "# TYPE warden_requests_total counter\n");
	for (size_t i = 0; i < nreqs; i++)
		evbuffer_add_printf(o, "warden_requests_total{status=\"%d\","
		    "route=\"%s\"} %llu\n", reqs[i].status, reqs[i].route,
		    (unsigned long long)reqs[i].count);
	evbuffer_add_printf(o, "# HELP warden_upstream_latency_seconds Time "
	    "from sending to a provider until its answer's headers.\n"
	    "# TYPE warden_upstream_latency_seconds histogram\n");
	for (size_t i = 0; i < nlats; i++) {
		for (size_t b = 0; b < NBUCKETS; b++)
			evbuffer_add_printf(o, "warden_upstream_latency_seconds_bucket"
			    "{route=\"%s\",le=\"%g\"} %llu\n", lats[i].route,
			    bucket_le[b], (unsigned long long)lats[i].buckets[b]);
		evbuffer_add_printf(o, "warden_upstream_latency_seconds_bucket"
		    "{route=\"%s\",le=\"+Inf\"} %llu\n", lats[i].route,
		    (unsigned long long)lats[i].count);
		evbuffer_add_printf(o, "warden_upstream_latency_seconds_sum"
		    "{route=\"%s\"} %.6f\n", lats[i].route,
		    (double)lats[i].sum_us / 1e6);
		evbuffer_add_printf(o, "warden_upstream_latency_seconds_count"
		    "{route=\"%s\"} %llu\n", lats[i].route,
		    (unsigned long long)lats[i].count);
	}
	pthread_mutex_unlock(&lock);
	evbuffer_add_printf(o, "# HELP warden_open_connections Client "
	    "connections open now.\n# TYPE warden_open_connections gauge\n"
	    "warden_open_connections %lld\n",
	    (long long)atomic_load(&open_conns));
	evbuffer_add_printf(o, "# HELP warden_bytes_received_total Bytes read "
	    "from clients.\n# TYPE warden_bytes_received_total counter\n"
	    "warden_bytes_received_total %llu\n",
	    (unsigned long long)atomic_load(&bytes_in));
	evbuffer_add_printf(o, "# HELP warden_bytes_sent_total Bytes written "
	    "to clients.\n# TYPE warden_bytes_sent_total counter\n"
	    "warden_bytes_sent_total %llu\n",
	    (unsigned long long)atomic_load(&bytes_out));
}
