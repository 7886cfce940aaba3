/*
 * bench_detect.c - the content detectors measured: precision and recall
 * per detector on a labelled synthetic corpus (tests/bench/det_gen.h:
 * valid identifiers, the same with a broken checksum, look-alikes, in
 * sentences of six languages); false positives on the demo's own prompts
 * (scripts/demo.sh); scanning throughput; and the latency the detectors
 * add to a 1 KB and a 100 KB chat request (gw_detect_request: walk the
 * JSON, scan every text).  Run by `make bench`; exits 1 on a false
 * positive in the demo traffic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "detect/det.h"
#include "gateway/gw_detect.h"
#include "policy/pol.h"
#include "tests/bench/det_gen.h"

#define PER_KIND 400			/* samples per kind and label */

static const char *const frames[] = {
	"Please send the refund to %s before Friday.",
	"Bitte überweisen Sie den Betrag an %s bis Freitag.",
	"Merci d'envoyer le remboursement à %s avant vendredi.",
	"Por favor, envíe el reembolso a %s antes del viernes.",
	"Per favore, inviate il rimborso a %s entro venerdì.",
	"金曜日までに%sへ返金してください。",
};
#define NFRAMES (sizeof(frames) / sizeof(frames[0]))

struct sample {
	char text[512];
	int label;			/* enum det_builtin, or -1 */
};

static struct sample *samples;
static size_t nsamples, cap;

static void
add(struct gen *g, const char *item, int label)
{
	if (nsamples == cap) {
		cap = cap ? cap * 2 : 1024;
		samples = realloc(samples, cap * sizeof(*samples));
		if (samples == NULL)
			abort();
	}
	snprintf(samples[nsamples].text, sizeof(samples[0].text),
	    frames[gen_below(g, NFRAMES)], item);
	samples[nsamples++].label = label;
}

static void
corpus(void)
{
	static const char *const firsts[] = { "anna", "j.smith", "marie-claire",
		"lukas_b", "yuki.tanaka", "o.brien" };
	static const char *const domains[] = { "example.com", "mail.example.de",
		"exemple.fr", "corp.example.co.uk", "example.jp" };
	/* Look-alikes: what prose holds that resembles an identifier. */
	static const char *const lookalikes[] = {
		"2024-03-15", "15.03.2024", "12:30:45", "v1.2.3", "3.11.4",
		"1,299.00 EUR", "ORD-2024-000123", "ISBN 978-3-16-148410-0",
		"550e8400-e29b-41d4-a716-446655440000", "1Z999AA10123456784",
		"a3f5c9e1d2b4a6f8e0c2d4b6a8f0e2c4", "999.10.10.10", "sk-learn",
		"task-force", "room 101, floor 3", "+/- 5%", "ticket #48213",
		"10:30 - 11:45", "version 2001:2002", "0800 123", "C:\\\\temp",
		"user@localhost", "@handle", "PO box 4711", "DE 12345",
	};
	struct gen g = { 0x9e3779b97f4a7c15ull };
	char buf[256], tmp[128];

	for (int i = 0; i < PER_KIND; i++) {
		snprintf(buf, sizeof(buf), "%s%u@%s", firsts[gen_below(&g, 6)],
		    gen_below(&g, 100), domains[gen_below(&g, 5)]);
		add(&g, buf, DET_EMAIL);
		switch (gen_below(&g, 3)) {
		case 0:
			snprintf(buf, sizeof(buf), "+%u %u %u%u", 30 + gen_below(&g, 20),
			    10 + gen_below(&g, 89), 1000 + gen_below(&g, 8999),
			    100 + gen_below(&g, 899));
			break;
		case 1:
			snprintf(buf, sizeof(buf), "(%u) %u-%04u", 201 + gen_below(&g, 798),
			    201 + gen_below(&g, 798), gen_below(&g, 10000));
			break;
		default:
			snprintf(buf, sizeof(buf), "0%u %02u %02u %02u %02u",
			    1 + gen_below(&g, 9), gen_below(&g, 100), gen_below(&g, 100),
			    gen_below(&g, 100), gen_below(&g, 100));
			break;
		}
		add(&g, buf, DET_PHONE);
		gen_iban(&g, buf, sizeof(buf), 1, i % 2);
		add(&g, buf, DET_IBAN);
		gen_iban(&g, buf, sizeof(buf), 0, i % 2);
		add(&g, buf, -1);
		gen_card(&g, buf, sizeof(buf), 1, i % 3 == 0 ? 0 : " -"[i % 2]);
		add(&g, buf, DET_CARD);
		gen_card(&g, buf, sizeof(buf), 0, i % 3 == 0 ? 0 : " -"[i % 2]);
		add(&g, buf, -1);
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u", 1 + gen_below(&g, 223),
		    gen_below(&g, 256), gen_below(&g, 256), 1 + gen_below(&g, 254));
		add(&g, buf, DET_IPV4);
		snprintf(buf, sizeof(buf), i % 2 ? "2001:db8:%x:%x::%x" :
		    "fe80:0:0:0:%x:%x:%x:1", gen_below(&g, 65536), gen_below(&g, 65536),
		    1 + gen_below(&g, 65535));
		add(&g, buf, DET_IPV6);
		gen_ssn(&g, buf, sizeof(buf), 1);
		add(&g, buf, DET_US_SSN);
		gen_ssn(&g, buf, sizeof(buf), 0);
		add(&g, buf, -1);
		gen_nino(&g, buf, sizeof(buf), 1);
		add(&g, buf, DET_UK_NINO);
		gen_nino(&g, buf, sizeof(buf), 0);
		add(&g, buf, -1);
		gen_nir(&g, buf, sizeof(buf), 1);
		add(&g, buf, DET_FR_NIR);
		gen_nir(&g, buf, sizeof(buf), 0);
		add(&g, buf, -1);
		gen_taxid(&g, buf, sizeof(buf), 1);
		add(&g, buf, DET_DE_TAXID);
		gen_taxid(&g, buf, sizeof(buf), 0);
		add(&g, buf, -1);
		gen_secret(&g, buf, sizeof(buf));
		add(&g, buf, DET_SECRET);
		/* A 16-digit number whose Luhn digit is wrong, unspaced. */
		gen_card(&g, tmp, sizeof(tmp), 0, 0);
		snprintf(buf, sizeof(buf), "order number %s", tmp);
		add(&g, buf, -1);
		add(&g, lookalikes[gen_below(&g, sizeof(lookalikes) /
		    sizeof(lookalikes[0]))], -1);
	}
}

static struct det_db *
builtins(void)
{
	struct det_spec sp[DET_NBUILTIN];
	struct det_db *db;
	char err[256];
	size_t bad;

	for (int i = 0; i < DET_NBUILTIN; i++)
		sp[i] = (struct det_spec){ det_builtin_name(i), i, NULL };
	if (det_db_compile(sp, DET_NBUILTIN, &db, err, sizeof(err), &bad) != WD_OK) {
		fprintf(stderr, "bench_detect: %s\n", err);
		exit(2);
	}
	return db;
}

static uint64_t
fired(struct det_db *db, const char *text, size_t len)
{
	struct det_scan *s;
	uint64_t m;

	if (det_scan_open(db, &s) != WD_OK || det_scan_feed(s, text, len) != WD_OK ||
	    det_scan_next_text(s) != WD_OK)
		exit(2);
	m = det_scan_fired(s);
	det_scan_close(s);
	return m;
}

static void
precision_recall(struct det_db *db)
{
	unsigned tp[DET_NBUILTIN] = { 0 }, fp[DET_NBUILTIN] = { 0 },
	    fn[DET_NBUILTIN] = { 0 };

	corpus();
	for (size_t i = 0; i < nsamples; i++) {
		uint64_t m = fired(db, samples[i].text, strlen(samples[i].text));

		for (int d = 0; d < DET_NBUILTIN; d++) {
			bool hit = m & (1ull << d);

			if (samples[i].label == d)
				hit ? tp[d]++ : fn[d]++;
			else if (hit) {
				fp[d]++;
				if (getenv("BENCH_DETECT_VERBOSE"))
					fprintf(stderr, "FP %s: %s\n", det_builtin_name(d),
					    samples[i].text);
			}
		}
	}
	printf("detect: labelled corpus, %zu samples in %zu languages "
	    "(valid, broken checksums, look-alikes)\n", nsamples, NFRAMES);
	printf("  %-9s %6s %6s %6s %9s %7s\n", "detector", "tp", "fp", "fn",
	    "precision", "recall");
	for (int d = 0; d < DET_NBUILTIN; d++)
		printf("  %-9s %6u %6u %6u %9.3f %7.3f\n", det_builtin_name(d), tp[d],
		    fp[d], fn[d], tp[d] + fp[d] ? (double)tp[d] / (tp[d] + fp[d]) : 1.0,
		    tp[d] + fn[d] ? (double)tp[d] / (tp[d] + fn[d]) : 1.0);
}

/*
 * Every "content":"..." string of scripts/demo.sh: none may fire, but for
 * the chapter that shows detection, whose prompts hold one of these.
 */
static const char *const demo_meant[] = { "DE89 3704", "4111 1111",
	"sk-proj-" };

static int
demo_traffic(struct det_db *db)
{
	FILE *f = fopen("scripts/demo.sh", "r");
	char line[4096];
	int n = 0, bad = 0, meant = 0, found = 0;

	if (f == NULL) {
		printf("detect: scripts/demo.sh not found (run from the source "
		    "tree)\n");
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		for (char *p = line; (p = strstr(p, "\"content\":\"")) != NULL;) {
			char *q = strchr(p += 11, '"');
			uint64_t m;

			if (q == NULL)
				break;
			m = fired(db, p, (size_t)(q - p));
			{
				bool want = false;

				for (size_t i = 0; i < 3; i++)
					want |= memmem(p, (size_t)(q - p), demo_meant[i],
					    strlen(demo_meant[i])) != NULL;
				if (want) {
					meant++;
					found += m != 0;
					bad += m == 0;
					p = q;
					continue;
				}
			}
			n++;
			if (m != 0) {
				bad++;
				printf("  false positive (%s) in the demo: %.*s\n",
				    det_builtin_name(__builtin_ctzll(m)), (int)(q - p), p);
			}
			p = q;
		}
	}
	fclose(f);
	printf("detect: demo traffic (scripts/demo.sh): %d prompts, %d false "
	    "positives; %d prompts meant to hold an identifier, %d found\n", n,
	    bad - (meant - found), meant, found);
	return bad;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
throughput(struct det_db *db, bool plain)
{
	size_t len = 8u << 20, o = 0, k = 0;
	char *text = malloc(len), line[600];
	struct det_scan *s;
	double t0, t1;

	/* The corpus sentences over and over: prose with identifiers; or
	 * the same sentences with a plain word instead. */
	while (o < len) {
		size_t n;

		if (plain)
			snprintf(line, sizeof(line), frames[k % NFRAMES], "Anna");
		else
			snprintf(line, sizeof(line), "%s", samples[k].text);
		n = strlen(line);
		if (o + n + 1 > len)
			break;
		memcpy(text + o, line, n);
		text[o + n] = ' ';
		o += n + 1;
		k = (k + 1) % nsamples;
	}
	len = o;
	if (det_scan_open(db, &s) != WD_OK)
		exit(2);
	t0 = now_s();
	for (size_t off = 0; off < len; off += 4096)
		det_scan_feed(s, text + off, len - off < 4096 ? len - off : 4096);
	det_scan_next_text(s);
	t1 = now_s();
	det_scan_close(s);
	printf("detect: throughput %.0f MB/s (%zu MB of %s, 4 KiB pieces, all "
	    "%d built-in detectors)\n", (double)len / (t1 - t0) / 1e6, len >> 20,
	    plain ? "prose" : "prose, an identifier in every sentence",
	    DET_NBUILTIN);
	free(text);
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* gw_detect_request on a chat body of about size bytes (one user message
 * of prose, the last 200 bytes holding an IBAN and an e-mail). */
static void
latency(const struct pol_snapshot *snap, size_t size)
{
	enum { RUNS = 2000 };
	static double t[RUNS];
	char *content = malloc(size + 1);
	size_t o = 0, k = 0;
	json_t *root;

	/* Look-alikes and broken numbers (label -1), then plain words. */
	for (size_t tries = 0; tries < nsamples; tries++) {
		size_t n = strlen(samples[k].text);

		if (samples[k].label < 0 && o + n + 1 < size - 300) {
			memcpy(content + o, samples[k].text, n);
			content[o + n] = ' ';
			o += n + 1;
		}
		k = (k + 1) % nsamples;
	}
	while (o + 6 < size - 300) {
		memcpy(content + o, "words ", 6);
		o += 6;
	}
	o += (size_t)snprintf(content + o, size + 1 - o, "Pay to DE89 3704 0044 "
	    "0532 0130 00, receipt to anna@example.org.");
	root = json_pack("{s:s,s:[{s:s,s:s}]}", "model", "m", "messages", "role",
	    "user", "content", content);
	for (int r = 0; r < RUNS; r++) {
		struct gw_detect d = { 0 };
		const uint32_t *c;
		double t0 = now_s();

		if (gw_detect_request(&d, snap, root, &c) != WD_OK || c == NULL)
			exit(2);
		t[r] = now_s() - t0;
		gw_detect_clear(&d);
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_d);
	printf("detect: added latency, %zu KB prompt: median %.1f us, p99 %.1f us\n",
	    size >> 10, t[RUNS / 2] * 1e6, t[RUNS * 99 / 100] * 1e6);
	json_decref(root);
	free(content);
}

/* gw_metrics_detect is the gateway's; the bench counts nothing. */
int
main(void)
{
	struct det_db *db = builtins();
	struct pol_snapshot *snap;
	char path[] = "/tmp/bench-detect-XXXXXX";
	int fd = mkstemp(path), bad;
	FILE *f;

	precision_recall(db);
	bad = demo_traffic(db);
	throughput(db, true);
	throughput(db, false);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		return 2;
	fprintf(f, "version: 1\ndata_classes: [personal, financial]\n"
	    "providers:\n  - { id: p, base_url: 'http://127.0.0.1:1/v1', "
	    "country: IE, credential: c, models: [m] }\n"
	    "tenants:\n  - { id: t, keys: ['sha256:%064d'], routes: [p] }\n"
	    "detect:\n", 0);
	for (int i = 0; i < DET_NBUILTIN; i++)
		fprintf(f, "  %s: %s\n", det_builtin_name(i), i == DET_IBAN ||
		    i == DET_CARD ? "financial" : "personal");
	fclose(f);
	if (pol_load(path, stderr, &snap) != WD_OK)
		return 2;
	unlink(path);
	latency(snap, 1024);
	latency(snap, 100 * 1024);
	pol_snapshot_unref(snap);
	det_db_free(db);
	free(samples);
	return bad ? 1 : 0;
}
