/*
 * bench_decide.c - how long one policy decision takes on a large policy:
 * 1,000 rules, 200 tenants, 50 routes in 25 countries, 16 data classes,
 * 10 jurisdictions.  Generates the rules file, loads it with pol_load(),
 * then times pol_decide() one call at a time and prints the median and
 * p99 in nanoseconds.  Run by `make bench`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy/pol.h"

#define NRULES 1000
#define NTENANTS 200
#define NROUTES 50
#define NCLASSES 16
#define NJUR 10
#define ITER 200000

static const char *const countries[25] = {
	"IE", "DE", "FR", "NL", "SE", "FI", "DK", "AT", "BE", "ES", "IT", "PL",
	"PT", "US", "CA", "GB", "CH", "JP", "KR", "SG", "AU", "NZ", "BR", "IN",
	"NO"
};

static unsigned rng = 12345;

static unsigned
rnd(unsigned n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 8) % n;
}

static void
generate(FILE *f)
{
	fprintf(f, "version: 1\ndata_classes: [");
	for (int c = 0; c < NCLASSES; c++)
		fprintf(f, "%sc%d", c ? ", " : "", c);
	fprintf(f, "]\njurisdictions:\n");
	/* Broad jurisdictions (each leaves out 2 of the 25 countries), so
	 * that about half the decisions allow, as in real traffic. */
	for (int j = 0; j < NJUR; j++) {
		unsigned skip1 = rnd(25), skip2 = rnd(25);
		int first = 1;

		fprintf(f, "  J%d: [", j);
		for (unsigned k = 0; k < 25; k++) {
			if (k == skip1 || k == skip2)
				continue;
			fprintf(f, "%s%s", first ? "" : ", ", countries[k]);
			first = 0;
		}
		fprintf(f, "]\n");
	}
	fprintf(f, "providers:\n");
	for (int p = 0; p < NROUTES; p++)
		fprintf(f, "  - { id: r%d, base_url: 'http://127.0.0.1:1/v1', "
		    "country: %s, retention: { zdr: %s, days: %u }, credential: "
		    "c%d, models: [m0, m1, m2] }\n", p, countries[p % 25],
		    rnd(2) ? "false" : "true", rnd(40), p);
	fprintf(f, "tenants:\n");
	for (int t = 0; t < NTENANTS; t++) {
		fprintf(f, "  - { id: t%d, keys: ['sha256:%064x'], data_classes: "
		    "[c%u, c%u], subject_region: J%u, routes: [", t, t + 1,
		    rnd(NCLASSES), rnd(NCLASSES), rnd(NJUR));
		for (int r = 0; r < 8; r++)
			fprintf(f, "%sr%u", r ? ", " : "", rnd(NROUTES));
		fprintf(f, "] }\n");
	}
	fprintf(f, "rules:\n");
	for (int r = 0; r < NRULES; r++) {
		switch (rnd(4)) {
		case 0:
			fprintf(f, "  - { id: rule%d, when: { data_class: [c%u], "
			    "subject_region: J%u }, require: { provider_country: "
			    "[J%u, J%u] } }\n", r, rnd(NCLASSES), rnd(NJUR),
			    rnd(NJUR), rnd(NJUR));
			break;
		case 1:
			fprintf(f, "  - { id: rule%d, when: { data_class: [c%u, c%u] "
			    "}, require: { retention.max_days: %u } }\n", r,
			    rnd(NCLASSES), rnd(NCLASSES), 35 + rnd(60));
			break;
		case 2:
			fprintf(f, "  - { id: rule%d, when: { data_class: [c%u], "
			    "tenant: [t%u] }, keep: { payloads: hash } }\n", r,
			    rnd(NCLASSES), rnd(NTENANTS));
			break;
		default:
			fprintf(f, "  - { id: rule%d, when: { data_class: [c%u] }, "
			    "require: { provider_country: J%u } }\n", r,
			    rnd(NCLASSES), rnd(NJUR));
			break;
		}
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

int
main(void)
{
	char path[] = "/tmp/warden-bench-rules-XXXXXX";
	struct pol_snapshot *snap;
	struct pol_decision d;
	unsigned long long *ns;
	unsigned allow = 0, deny = 0;
	int fd = mkstemp(path);
	FILE *f;

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		return 1;
	generate(f);
	fclose(f);
	chmod(path, 0600);
	if (pol_load(path, stderr, &snap) != WD_OK) {
		unlink(path);
		return 1;
	}
	unlink(path);
	ns = calloc(ITER, sizeof(*ns));
	if (ns == NULL)
		return 1;
	for (int i = 0; i < ITER; i++) {
		struct pol_facts facts = {
			.tenant = &snap->tenants[rnd(NTENANTS)],
			.model = rnd(2) ? "m0" : "m2",
		};
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		pol_decide(snap, &facts, &d);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[i] = (unsigned long long)((b.tv_sec - a.tv_sec) * 1000000000LL +
		    (b.tv_nsec - a.tv_nsec));
		if (d.verdict == POL_ALLOW)
			allow++;
		else
			deny++;
	}
	qsort(ns, ITER, sizeof(*ns), cmp_u64);
	printf("policy decision: %d rules, %d tenants, %d routes, %d classes: "
	    "median %llu ns, p99 %llu ns over %d decisions (%u allow, %u deny)\n",
	    NRULES, NTENANTS, NROUTES, NCLASSES, ns[ITER / 2],
	    ns[ITER * 99 / 100], ITER, allow, deny);
	printf("goal: median under 5000 ns: %s\n",
	    ns[ITER / 2] < 5000 ? "MET" : "MISSED");
	free(ns);
	pol_snapshot_unref(snap);
	return 0;
}
