/*
 * pol.h - the policy module: loads the YAML rules file into an immutable,
 * reference-counted snapshot, and answers questions about it.
 *
 * The snapshot owns everything it points to.  The gateway borrows it per
 * request (pol_snapshot_ref/unref); nothing in it changes after load, so
 * worker threads read it without locks.  Reload builds a new snapshot.
 *
 * Called by gateway/ (serve, check) and by the CLI.
 */
#ifndef POL_H
#define POL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/wd.h"

/* Gateway settings: the `server:` section. */
struct pol_server {
	char *listen;			/* ADDR:PORT */
	int workers;			/* 0: one per core */
	size_t max_body_bytes;		/* request body limit (413) */
	size_t max_header_bytes;	/* request head limit (431) */
	size_t max_headers;		/* header count limit (431) */
	int header_timeout_ms;		/* whole head must arrive by then (408) */
	int body_timeout_ms;		/* whole body must arrive by then (408) */
	int idle_timeout_ms;		/* keep-alive idle, and stalled writes */
	int shutdown_grace_ms;		/* in-flight requests may finish */
};

/* Upstream settings: the `upstream:` section. */
struct pol_upstream {
	int connect_timeout_ms;
	int first_byte_timeout_ms;	/* until the answer's status line */
	int idle_timeout_ms;		/* max silence inside an answer */
	int total_timeout_ms;		/* whole transfer */
	int max_attempts;		/* routes tried per request */
	size_t max_response_bytes;	/* non-streaming answer limit */
	size_t max_sse_event_bytes;	/* one SSE event in a stream */
};

/* A provider endpoint: a "route". */
struct pol_provider {
	char *id;
	char *api;			/* "openai" */
	char *base_url;			/* ends without '/' */
	char country[3];		/* ISO 3166-1 alpha-2 */
	bool zdr;			/* zero data retention contract */
	int retention_days;		/* -1: unknown */
	char *credential;		/* name of a sealed secret */
	char **models;
	size_t nmodels;
};

struct pol_tenant {
	char *id;
	unsigned char (*keys)[32];	/* SHA-256 of each virtual key */
	size_t nkeys;
	struct pol_provider **routes;	/* borrowed, preference order */
	size_t nroutes;
};

/* A name/value pair from `dev_credentials:` (development only). */
struct pol_devcred {
	char *name;
	char *value;			/* wiped when the snapshot is freed */
};

struct pol_snapshot {
	atomic_int refs;
	char *path;
	char version[65];		/* policy_version: hex SHA-256 */
	struct pol_server server;
	struct pol_upstream upstream;
	struct pol_provider *providers;
	size_t nproviders;
	struct pol_tenant *tenants;
	size_t ntenants;
	struct pol_devcred *devcreds;
	size_t ndevcreds;
	/* Key index: open addressing over key digests. */
	struct pol_keyslot {
		const unsigned char *digest;	/* NULL: empty */
		struct pol_tenant *tenant;
	} *keyidx;
	size_t keyidx_cap;		/* power of two */
};

/*
 * Load and validate a rules file.  Every problem is written to errs as
 * "FILE:LINE:COL: message"; loading goes on after an error so all of them
 * are reported.  On success *out holds a snapshot with one reference.
 */
enum wd_err pol_load(const char *path, FILE *errs, struct pol_snapshot **out);

struct pol_snapshot *pol_snapshot_ref(struct pol_snapshot *snap);
void pol_snapshot_unref(struct pol_snapshot *snap);

/* The tenant whose virtual key hashes to digest, or NULL. */
const struct pol_tenant *pol_find_key(const struct pol_snapshot *snap,
    const unsigned char digest[32]);

/* Does this provider serve the model? */
bool pol_provider_serves(const struct pol_provider *p, const char *model);

/* The dev credential called name, or NULL. */
const char *pol_devcred(const struct pol_snapshot *snap, const char *name);

#endif /* POL_H */
