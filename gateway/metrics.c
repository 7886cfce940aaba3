/*
 * metrics.c - counters for /metrics, in the Prometheus text format.
 *
 * Each thread counts into a shard of its own (its mutex is contended only
 * while /metrics reads it); /metrics adds the shards up.  The byte
 * counters are the shard's too, atomics only this thread adds to (no
 * line two workers write, twice per request).  Atomics hold the gauges.
 * Labelled series are keyed by route id string and never removed, so a
 * reload that renames routes keeps the old series until restart.
 */
#include "gateway/gw_int.h"
#include "gateway/limits.h"
#include "gateway/gw_detect.h"

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

/* Content detections by detector and where (request, answer, mcp,
 * mcp_result). */
struct det_series {
	char detector[65];
	char where[16];
	uint64_t count;
};

struct shard {
	pthread_mutex_t lock;
	struct det_series dets[MAX_SERIES / 4];
	size_t ndets;
	struct req_series reqs[MAX_SERIES];
	size_t nreqs;
	struct lat_series lats[MAX_SERIES / 8];
	size_t nlats;
	atomic_ullong bytes_in, bytes_out;
	struct shard *next;
};

static pthread_mutex_t shards_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shard *shards;		/* every thread's, never freed */
static __thread struct shard *mine;
static atomic_llong open_conns;
static atomic_ullong witness[3];	/* enum gw_witness_result */

void
gw_metrics_init(void)
{
}

void
gw_metrics_witness(enum gw_witness_result r)
{
	if ((unsigned)r < 3)
		atomic_fetch_add_explicit(&witness[r], 1, memory_order_relaxed);
}

/* This thread's shard, made on first use (NULL if out of memory). */
static struct shard *
shard(void)
{
	if (mine == NULL && (mine = calloc(1, sizeof(*mine))) != NULL) {
		pthread_mutex_init(&mine->lock, NULL);
		pthread_mutex_lock(&shards_lock);
		mine->next = shards;
		shards = mine;
		pthread_mutex_unlock(&shards_lock);
	}
	return mine;
}

static void
add_request(struct shard *sh, const char *route, int status, uint64_t n)
{
	size_t i;

	for (i = 0; i < sh->nreqs; i++)
		if (sh->reqs[i].status == status &&
		    strcmp(sh->reqs[i].route, route) == 0)
			break;
	if (i == sh->nreqs && sh->nreqs < MAX_SERIES) {
		snprintf(sh->reqs[i].route, sizeof(sh->reqs[i].route), "%s", route);
		sh->reqs[i].status = status;
		sh->nreqs++;
	}
	if (i < sh->nreqs)
		sh->reqs[i].count += n;
}

static struct lat_series *
lat_of(struct shard *sh, const char *route)
{
	size_t i;

	for (i = 0; i < sh->nlats; i++)
		if (strcmp(sh->lats[i].route, route) == 0)
			return &sh->lats[i];
	if (sh->nlats >= sizeof(sh->lats) / sizeof(sh->lats[0]))
		return NULL;
	snprintf(sh->lats[i].route, sizeof(sh->lats[i].route), "%s", route);
	sh->nlats++;
	return &sh->lats[i];
}

void
gw_metrics_request(const char *route, int status)
{
	struct shard *sh = shard();

	if (sh == NULL)
		return;
	pthread_mutex_lock(&sh->lock);
	add_request(sh, route, status, 1);
	pthread_mutex_unlock(&sh->lock);
}

static void
add_detect(struct shard *sh, const char *det, const char *where, uint64_t n)
{
	size_t i;

	for (i = 0; i < sh->ndets; i++)
		if (strcmp(sh->dets[i].detector, det) == 0 &&
		    strcmp(sh->dets[i].where, where) == 0)
			break;
	if (i == sh->ndets) {
		if (sh->ndets >= sizeof(sh->dets) / sizeof(sh->dets[0]))
			return;
		snprintf(sh->dets[i].detector, sizeof(sh->dets[i].detector), "%s",
		    det);
		snprintf(sh->dets[i].where, sizeof(sh->dets[i].where), "%s", where);
		sh->ndets++;
	}
	sh->dets[i].count += n;
}

void
gw_metrics_detect(const char *detector, const char *where, uint32_t n)
{
	struct shard *sh = shard();

	if (sh == NULL)
		return;
	pthread_mutex_lock(&sh->lock);
	add_detect(sh, detector, where, n);
	pthread_mutex_unlock(&sh->lock);
}

void
gw_metrics_upstream(const char *route, uint64_t us)
{
	struct shard *sh = shard();
	struct lat_series *l;

	if (sh == NULL)
		return;
	pthread_mutex_lock(&sh->lock);
	if ((l = lat_of(sh, route)) != NULL) {
		for (size_t b = 0; b < NBUCKETS; b++)
			if ((double)us / 1e6 <= bucket_le[b])
				l->buckets[b]++;
		l->count++;
		l->sum_us += us;
	}
	pthread_mutex_unlock(&sh->lock);
}

void
gw_metrics_conn(int delta)
{
	atomic_fetch_add_explicit(&open_conns, delta, memory_order_relaxed);
}

void
gw_metrics_bytes(uint64_t in, uint64_t out)
{
	struct shard *sh = shard();

	if (sh == NULL)
		return;
	if (in)
		atomic_fetch_add_explicit(&sh->bytes_in, in, memory_order_relaxed);
	if (out)
		atomic_fetch_add_explicit(&sh->bytes_out, out,
		    memory_order_relaxed);
}

void
gw_metrics_render(struct evbuffer *o)
{
	struct shard *sum = calloc(1, sizeof(*sum)), *sh;
	struct req_series *reqs;
	struct lat_series *lats;
	size_t nreqs, nlats;
	unsigned long long bytes_in = 0, bytes_out = 0;

	if (sum == NULL)
		return;
	pthread_mutex_lock(&shards_lock);
	for (sh = shards; sh != NULL; sh = sh->next) {
		bytes_in += atomic_load_explicit(&sh->bytes_in,
		    memory_order_relaxed);
		bytes_out += atomic_load_explicit(&sh->bytes_out,
		    memory_order_relaxed);
		pthread_mutex_lock(&sh->lock);
		for (size_t i = 0; i < sh->nreqs; i++)
			add_request(sum, sh->reqs[i].route, sh->reqs[i].status,
			    sh->reqs[i].count);
		for (size_t i = 0; i < sh->ndets; i++)
			add_detect(sum, sh->dets[i].detector, sh->dets[i].where,
			    sh->dets[i].count);
		for (size_t i = 0; i < sh->nlats; i++) {
			struct lat_series *l = lat_of(sum, sh->lats[i].route);

			for (size_t b = 0; l != NULL && b < NBUCKETS; b++)
				l->buckets[b] += sh->lats[i].buckets[b];
			if (l != NULL) {
				l->count += sh->lats[i].count;
				l->sum_us += sh->lats[i].sum_us;
			}
		}
		pthread_mutex_unlock(&sh->lock);
	}
	pthread_mutex_unlock(&shards_lock);
	reqs = sum->reqs;
	nreqs = sum->nreqs;
	lats = sum->lats;
	nlats = sum->nlats;
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
	evbuffer_add_printf(o, "# HELP warden_detections_total Content "
	    "detections, by detector and where (request, answer, mcp: tools/call "
	    "arguments, mcp_result); never what "
	    "was found.\n# TYPE warden_detections_total counter\n");
	for (size_t i = 0; i < sum->ndets; i++)
		evbuffer_add_printf(o, "warden_detections_total{detector=\"%s\","
		    "where=\"%s\"} %llu\n", sum->dets[i].detector,
		    sum->dets[i].where, (unsigned long long)sum->dets[i].count);
	evbuffer_add_printf(o, "# HELP warden_open_connections Client "
	    "connections open now.\n# TYPE warden_open_connections gauge\n"
	    "warden_open_connections %lld\n",
	    (long long)atomic_load(&open_conns));
	evbuffer_add_printf(o, "# HELP warden_bytes_received_total Bytes read "
	    "from clients.\n# TYPE warden_bytes_received_total counter\n"
	    "warden_bytes_received_total %llu\n", bytes_in);
	evbuffer_add_printf(o, "# HELP warden_bytes_sent_total Bytes written "
	    "to clients.\n# TYPE warden_bytes_sent_total counter\n"
	    "warden_bytes_sent_total %llu\n", bytes_out);
	evbuffer_add_printf(o, "# HELP warden_audit_witness_total Checkpoint "
	    "deliveries to witnesses: sent, failed after all tries, dropped.\n"
	    "# TYPE warden_audit_witness_total counter\n"
	    "warden_audit_witness_total{result=\"sent\"} %llu\n"
	    "warden_audit_witness_total{result=\"failed\"} %llu\n"
	    "warden_audit_witness_total{result=\"dropped\"} %llu\n",
	    (unsigned long long)atomic_load(&witness[GW_WITNESS_SENT]),
	    (unsigned long long)atomic_load(&witness[GW_WITNESS_FAILED]),
	    (unsigned long long)atomic_load(&witness[GW_WITNESS_DROPPED]));
	gw_limits_metrics(o);
	free(sum);
}
