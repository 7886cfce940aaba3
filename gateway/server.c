/*
 * server.c - the process: load the rules, bind the port, run one event
 * loop per worker thread, and shut down gracefully on SIGTERM/SIGINT.
 *
 * Every worker has its own listening socket on the same address
 * (SO_REUSEPORT): the kernel spreads connections, and no lock is shared
 * on accept.  The main thread only waits for signals.
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <netdb.h>
#include <pwd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <event2/thread.h>

#include "audit/aud.h"
#include "gateway/provider.h"
#include "secrets/sec.h"

/* OpenSSL's secure heap (locked): keys in OpenSSL's own contexts. */
#define GW_SECURE_HEAP (1u << 20)
#define LISTEN_BACKLOG 1024	/* connections the kernel queues per worker */

struct pol_snapshot *
gw_server_snapshot(struct gw_server *srv)
{
	struct pol_snapshot *s;

	pthread_mutex_lock(&srv->snap_lock);
	s = pol_snapshot_ref(srv->snap);
	pthread_mutex_unlock(&srv->snap_lock);
	return s;
}

void
gw_server_acquire(struct gw_server *srv, struct pol_snapshot **snap,
    struct gw_creds **creds)
{
	pthread_mutex_lock(&srv->snap_lock);
	*snap = pol_snapshot_ref(srv->snap);
	*creds = gw_creds_ref(srv->creds);
	pthread_mutex_unlock(&srv->snap_lock);
}

/* Renew the worker's copy when a reload swapped the snapshot; the old
 * references are dropped outside the lock (the last one frees). */
static void
lease_free(struct gw_lease *l)
{
	pol_snapshot_unref(l->snap);
	gw_creds_unref(l->creds);
	free(l);
}

void
gw_lease_done(struct gw_lease *l)
{
	if (l != NULL && --l->users == 0 && l->retired)
		lease_free(l);
}

/* The worker's lease let go of: freed now, or by its last request. */
static void
lease_retire(struct gw_lease *l)
{
	l->retired = true;
	if (l->users == 0)
		lease_free(l);
}

static void
worker_refresh(struct gw_worker *w)
{
	struct gw_server *srv = w->srv;
	struct gw_lease *nl, *old = w->lease;

	if (old != NULL && atomic_load_explicit(&srv->snap_gen,
	    memory_order_acquire) == w->snap_gen)
		return;
	/* Out of memory: the old lease serves on, and the next request
	 * tries again (the first one is made in worker_init). */
	if ((nl = calloc(1, sizeof(*nl))) == NULL)
		return;
	pthread_mutex_lock(&srv->snap_lock);
	nl->snap = pol_snapshot_ref(srv->snap);
	nl->creds = gw_creds_ref(srv->creds);
	w->snap_gen = atomic_load_explicit(&srv->snap_gen,
	    memory_order_relaxed);
	pthread_mutex_unlock(&srv->snap_lock);
	w->lease = nl;
	if (old != NULL)
		lease_retire(old);
}

const struct pol_snapshot *
gw_worker_snapshot(struct gw_worker *w)
{
	worker_refresh(w);
	return w->lease->snap;
}

struct gw_lease *
gw_worker_lease(struct gw_worker *w)
{
	worker_refresh(w);
	w->lease->users++;
	return w->lease;
}

void
gw_worker_ring(struct gw_worker *w)
{
	uint64_t one = 1;

	if (w->bell_fd >= 0 && write(w->bell_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full of rings the worker has yet
		 * to read; it reads them all at once. */
	}
}

/* The HTTP layer's limits out of the rules' server section. */
static void
http_limits(const struct pol_snapshot *snap, struct gw_http_limits *out)
{
	const struct pol_server *cfg = &snap->server;

	*out = (struct gw_http_limits){
		.max_header_bytes = cfg->max_header_bytes,
		.max_headers = cfg->max_headers,
		.max_body_bytes = cfg->max_body_bytes,
		.header_timeout_ms = cfg->header_timeout_ms,
		.body_timeout_ms = cfg->body_timeout_ms,
		.idle_timeout_ms = cfg->idle_timeout_ms,
		.max_connections = cfg->max_connections,
	};
}

enum wd_err
gw_server_reload(struct gw_server *srv, FILE *errs)
{
	struct pol_snapshot *next, *old;
	struct gw_creds *ncreds = NULL, *ocreds;
	struct gw_http_limits lim;
	enum wd_err rc;

	/* One reload at a time; requests keep using whatever they hold.
	 * Credentials are unsealed again, so a rotated one takes effect. */
	pthread_mutex_lock(&srv->reload_lock);
	rc = pol_load(srv->opts->config, errs, &next);
	if (rc == WD_OK && (rc = gw_creds_load(srv, next, &ncreds, errs)) != WD_OK)
		pol_snapshot_unref(next);
	if (rc == WD_OK) {
		json_t *rotated;

		pthread_mutex_lock(&srv->snap_lock);
		old = srv->snap;
		ocreds = srv->creds;
		srv->snap = next;
		srv->creds = ncreds;
		atomic_fetch_add_explicit(&srv->snap_gen, 1,
		    memory_order_release);
		pthread_mutex_unlock(&srv->snap_lock);
		/* Each worker renews its copy now, idle or not, so the old
		 * snapshot and credentials go when their requests end. */
		for (int i = 0; i < srv->nworkers; i++)
			gw_worker_ring(&srv->workers[i]);
		http_limits(next, &lim);
		gw_http_publish(&srv->http, &lim);
		/* Which credentials were sealed or rotated since: by name. */
		rotated = gw_creds_changed(ocreds, old, ncreds, next);
		gw_creds_unref(ocreds);
		if (srv->audit != NULL)
			aud_submit(srv->audit, json_pack("{s:s,s:s,s:s,s:s,s:O}",
			    "kind", "reload", "config", srv->opts->config,
			    "policy_version", next->version,
			    "previous_policy_version", old->version,
			    "credentials_changed", rotated), NULL, NULL);
		if (json_array_size(rotated) > 0)
			wd_info("reload: %zu credential%s changed",
			    json_array_size(rotated),
			    json_array_size(rotated) == 1 ? "" : "s");
		json_decref(rotated);
		if (strcmp(old->version, next->version) != 0)
			wd_info("reloaded %s: policy %.12s (was %.12s)",
			    srv->opts->config, next->version, old->version);
		else
			wd_info("reloaded %s: policy %.12s unchanged",
			    srv->opts->config, next->version);
		pol_snapshot_unref(old);
	} else {
		wd_error("reload of %s failed (%s); the running policy stays",
		    srv->opts->config, wd_strerror(rc));
		if (srv->audit != NULL)
			aud_submit(srv->audit, json_pack("{s:s,s:s,s:s}", "kind",
			    "reload_failed", "config", srv->opts->config, "error",
			    wd_strerror(rc)), NULL, NULL);
	}
	pthread_mutex_unlock(&srv->reload_lock);
	return rc;
}

/*
 * glibc's allocator, set for bursts of large bodies: blocks of 128 KiB
 * and more are mapped on their own and unmapped on free (the default
 * threshold creeps up to 32 MB after large frees, and then such bodies
 * stay in the heap), the heap top is trimmed past 1 MiB, and there are
 * few arenas: one per worker, the audit writer and the main thread.
 */
void
gw_memory_tune(int nworkers)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	mallopt(M_ARENA_MAX, nworkers + 2);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct gw_worker *w = arg;
	int one = 1;

	(void)l;
	(void)salen;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	gw_conn_accept(w, fd, sa);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;

	(void)fd;
	(void)what;
	if (w->nconns > 0)
		wd_warn("worker %d: shutdown deadline passed, closing %zu "
		    "connection%s", w->idx, w->nconns, w->nconns == 1 ? "" : "s");
	gw_conn_abort_all(w);
	event_base_loopexit(w->base, NULL);
}

/* Main thread asked us to stop: no new connections, let requests end. */
static void
stop(struct gw_worker *w)
{
	struct pol_snapshot *snap = gw_server_snapshot(w->srv);
	int ms = snap->server.shutdown_grace_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	pol_snapshot_unref(snap);
	w->stopping = true;
	if (w->listener != NULL) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
	}
	gw_conn_close_idle(w);
	if (w->nconns == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	evtimer_add(w->grace_ev, &tv);
}

/* The bell rang: a reload (the snapshot's generation moved on) or the
 * stop, or both. */
static void
bell_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		wd_warn("worker %d: cannot read its bell: %s", w->idx,
		    strerror(errno));
	worker_refresh(w);
	if (atomic_load(&w->stop_asked) && !w->stopping)
		stop(w);
}

static void *
worker_main(void *arg)
{
	struct gw_worker *w = arg;

	/* Turn by turn: after each, what waited for the turn's end goes
	 * (warden's handler: the records of the transactions that ended in
	 * it, written together, then their answers). */
	w->turns = w->handler->turn_end != NULL;
	gw_up_turns(w->up, w->turns);
	for (;;) {
		int rc = event_base_loop(w->base, EVLOOP_ONCE);

		if (w->handler->turn_end != NULL)
			w->handler->turn_end(w);
		if (rc != 0 || event_base_got_exit(w->base) ||
		    event_base_got_break(w->base))
			break;
	}
	w->turns = false;
	gw_up_turns(w->up, false);
	if (w->handler->turn_end != NULL)
		w->handler->turn_end(w);
	return NULL;
}

static enum wd_err
parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	const char *colon = strrchr(spec, ':');
	char host[128];
	size_t hl;

	if (colon == NULL || colon == spec || colon[1] == '\0')
		return WD_EINVAL;
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && colon[-1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return WD_EINVAL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return WD_EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return WD_OK;
}

/* The listening socket, bound but not yet listening: bound before root is
 * given up (a port under 1024 needs it), listening only once the start
 * has passed every check (worker_init), so that a start that is refused
 * never accepts a connection. */
static int
open_bound(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static enum wd_err
worker_init(struct gw_server *srv, struct gw_worker *w, int idx, int fd)
{
	struct event_config *cfg;

	w->srv = srv;
	w->idx = idx;
	w->handler = &gw_warden_handler;
	w->http = &srv->http;
	w->listen_fd = fd;
	/* Only this worker's thread uses its base: no lock around every
	 * event_add and callback. */
	if ((cfg = event_config_new()) == NULL)
		return WD_ENOMEM;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (w->base == NULL)
		return WD_ENOMEM;
	w->bell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->bell_fd < 0)
		return WD_ENOMEM;
	w->bell_ev = event_new(w->base, w->bell_fd, EV_READ | EV_PERSIST,
	    bell_cb, w);
	/* libevent calls listen(fd, LISTEN_BACKLOG) here. */
	w->listener = evconnlistener_new(w->base, accept_cb, w,
	    LEV_OPT_CLOSE_ON_FREE, LISTEN_BACKLOG, fd);
	if (w->listener == NULL) {
		wd_error("cannot listen: %s", strerror(errno));
		return WD_EIO;
	}
	w->grace_ev = evtimer_new(w->base, grace_cb, w);
	w->up = gw_upstream_new(w->base);
	if (w->bell_ev == NULL || w->grace_ev == NULL ||
	    w->up == NULL || event_add(w->bell_ev, NULL) != 0)
		return WD_ENOMEM;
	worker_refresh(w);
	if (w->lease == NULL)
		return WD_ENOMEM;
	w->listen_fd = -1;		/* the listener owns it now */
	return WD_OK;
}

static void
worker_free(struct gw_worker *w)
{
	if (w->listener != NULL)
		evconnlistener_free(w->listener);
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	gw_conn_abort_all(w);
	gw_upstream_free(w->up);
	if (w->bell_ev != NULL)
		event_free(w->bell_ev);
	if (w->bell_fd >= 0)
		close(w->bell_fd);
	w->bell_fd = -1;
	if (w->grace_ev != NULL)
		event_free(w->grace_ev);
	if (w->trim_ev != NULL)
		event_free(w->trim_ev);
	if (w->lease != NULL)
		lease_retire(w->lease);
	w->lease = NULL;
	while (w->nspare > 0)
		evbuffer_free(w->spare[--w->nspare]);
	wd_spares_clear(&w->spare_txns);
	wd_spares_clear(&w->spare_tools);
	if (w->base != NULL)
		event_base_free(w->base);
}

static enum wd_err
open_audit(struct gw_server *srv, json_t **counter_start)
{
	const struct pol_audit *a = &srv->snap->audit;
	enum wd_err rc;

	if ((rc = gw_signer_init(srv, srv->snap, &srv->signer)) != WD_OK)
		return rc;
	if (srv->signer.sign != NULL &&
	    (rc = gw_counter_init(srv, srv->snap, &srv->counter,
	    counter_start)) != WD_OK)
		return rc;
	{
		char werr[512];

		if ((rc = gw_witness_new(&a->witness, &srv->wit, werr,
		    sizeof(werr))) != WD_OK) {
			wd_error("audit.witness: %s", werr);
			return rc;
		}
		if (srv->wit != NULL)
			gw_witness_hook(srv->wit, &srv->witness);
	}
	struct aud_opts o = {
		.dir = srv->opts->audit_dir ? srv->opts->audit_dir : a->dir,
		.instance = srv->instance,
		.strict = a->strict,
		.group_commit_ms = a->group_commit_ms,
		.segment_max_bytes = a->segment_max_bytes,
		.segment_max_age_s = a->segment_max_age_s,
		.checkpoint_every = (unsigned)a->checkpoint_every,
		.checkpoint_interval_s = a->checkpoint_interval_s,
		.signer = srv->signer.sign != NULL ? &srv->signer : NULL,
		.counter = srv->counter.next != NULL ? &srv->counter : NULL,
		.witness = srv->witness.send != NULL ? &srv->witness : NULL,
		/* The operator's word only (serve --accept-rollback): a log
		 * behind the counter is otherwise refused. */
		.accept_rollback = srv->opts->accept_rollback,
	};
	char err[512];

	/* With a TPM, payloads and their HMAC key are sealed there; without
	 * one nothing is kept but digests (development). */
	if (gw_tcti(srv, srv->snap) != NULL) {
		if ((rc = gw_paykeys_new(o.dir, gw_tcti(srv, srv->snap),
		    &srv->tpm_lock, &srv->paykeys, err, sizeof(err))) != WD_OK) {
			wd_error("audit payload keys: %s", err);
			return rc;
		}
		o.keys = gw_paykeys_keys(srv->paykeys);
	} else {
		wd_warn("no TPM configured: the payload digest key is kept in "
		    "clear and no payload is kept (keep: redacted/full keep only "
		    "digests)");
	}
	rc = aud_open(&o, &srv->audit, err, sizeof(err));

	if (rc == WD_EROLLBACK)
		wd_error("audit log: %s; a rollback_detected record was written. "
		    "Find out what happened to the log before accepting it: "
		    "restart with --accept-rollback to continue it (the record "
		    "is then signed in)", err);
	else if (rc != WD_OK)
		wd_error("audit log: %s", err);
	return rc;
}

/*
 * Least privilege: with --user, become that user (and its groups: the
 * TPM device is usually group tss) once the ports are bound; without it,
 * refuse to run as root unless told to (--allow-root, or
 * WARDEN_ALLOW_ROOT=1 for development and tests).
 */
static enum wd_err
drop_privileges(const struct gw_serve_opts *o)
{
	const char *env = getenv("WARDEN_ALLOW_ROOT");

	if (o->user != NULL) {
		struct passwd *pw = getpwnam(o->user);

		if (pw == NULL) {
			wd_error("--user %s: no such user", o->user);
			return WD_EINVAL;
		}
		if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
		    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
			wd_error("cannot become user %s: %s", o->user,
			    strerror(errno));
			return WD_EPERM;
		}
		if (pw->pw_uid != 0 && setuid(0) == 0) {
			wd_error("could regain root after dropping it; stopping");
			return WD_EPERM;
		}
		wd_info("running as %s (uid %u)", o->user, (unsigned)pw->pw_uid);
	}
	if (geteuid() == 0 && !o->allow_root &&
	    (env == NULL || strcmp(env, "1") != 0)) {
		wd_error("refusing to run as root: give --user NAME to drop to "
		    "after binding, or --allow-root");
		return WD_EPERM;
	}
	return WD_OK;
}

static int
ncores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int
gw_serve(const struct gw_serve_opts *opts)
{
	struct gw_server srv;
	struct gw_http_limits lim;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *listen_spec;
	sigset_t sigs;
	int sig, started = 0, exitcode = 1;
	unsigned char rnd[8];
	json_t *counter_start = NULL;	/* the TPM counter, for `start` */

	memset(&srv, 0, sizeof(srv));
	srv.opts = opts;
	/* Every thread we start (audit writer, workers) inherits this mask:
	 * only the main thread takes these signals, in sigwait(). */
	signal(SIGPIPE, SIG_IGN);
	/* A full disk or a file size limit must be a write error the audit
	 * writer handles (fail closed), not a signal that kills us. */
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	pthread_mutex_init(&srv.snap_lock, NULL);
	pthread_mutex_init(&srv.reload_lock, NULL);
	pthread_mutex_init(&srv.tpm_lock, NULL);
	if (pol_load(opts->config, stderr, &srv.snap) != WD_OK)
		return 2;
	/* Limits and agent sessions in Redis (issue 16); a process
	 * setting: a reload keeps the store it started with. */
	if (srv.snap->state.redis_url != NULL) {
		char err[160];

		if (gw_store_redis_init(&srv.snap->state, err, sizeof(err)) !=
		    WD_OK) {
			wd_error("state.redis: %s", err);
			pol_snapshot_unref(srv.snap);
			return 2;
		}
		gw_store_use(&gw_store_redis);
	}
	pthread_mutex_init(&srv.http.lock, NULL);
	http_limits(srv.snap, &lim);
	gw_http_publish(&srv.http, &lim);
	listen_spec = opts->listen ? opts->listen : srv.snap->server.listen;
	if (listen_spec == NULL)
		listen_spec = "127.0.0.1:8080";
	if (parse_listen(listen_spec, &ss, &sslen) != WD_OK) {
		wd_error("cannot use listen address '%s' (want ADDR:PORT)",
		    listen_spec);
		goto out;
	}
	srv.nworkers = opts->workers > 0 ? opts->workers :
	    srv.snap->server.workers > 0 ? srv.snap->server.workers : ncores();
	gw_memory_tune(srv.nworkers);
	srv.workers = calloc((size_t)srv.nworkers, sizeof(*srv.workers));
	if (srv.workers == NULL)
		goto out;
	/* Bind first (a port under 1024 may need root), then give root up
	 * before touching credentials, the TPM or the audit log; listen
	 * only after all of them (worker_init). */
	for (int i = 0; i < srv.nworkers; i++) {
		srv.workers[i].listen_fd = -1;
		srv.workers[i].bell_fd = -1;
	}
	for (int i = 0; i < srv.nworkers; i++) {
		srv.workers[i].listen_fd = open_bound(&ss, sslen);
		if (srv.workers[i].listen_fd < 0) {
			wd_error("cannot listen on %s: %s", listen_spec,
			    strerror(errno));
			goto out;
		}
	}
	if (drop_privileges(opts) != WD_OK)
		goto out;
	{
		char err[256];

		/* Before the first unseal: no core dumps, no ptrace.  (After
		 * the uid change, which would reset it.) */
		if (sec_harden_process(err, sizeof(err)) != WD_OK)
			wd_warn("cannot harden the process: %s", err);
		/* OpenSSL's copies of keys (the payload HMAC key in every
		 * digest's context) go to its secure heap: locked, not dumped. */
		if (CRYPTO_secure_malloc_initialized() == 0 &&
		    CRYPTO_secure_malloc_init(GW_SECURE_HEAP, 16) != 1)
			wd_warn("OpenSSL's secure heap could not be locked; the "
			    "payload HMAC key may be swapped out");
	}
	/* What a warden killed while it used the TPM left loaded there goes
	 * before anything of ours is loaded. */
	gw_tpm_reclaim(&srv, srv.snap);
	if (gw_creds_load(&srv, srv.snap, &srv.creds, stderr) != WD_OK)
		goto out;
	wd_random(rnd, sizeof(rnd));
	wd_hex(rnd, sizeof(rnd), srv.instance);
	if (open_audit(&srv, &counter_start) != WD_OK)
		goto out;

	evthread_use_pthreads();
	if (gw_curl_global_init() != WD_OK) {
		wd_error("cannot initialise libcurl");
		goto out;
	}
	gw_metrics_init();

	for (int i = 0; i < srv.nworkers; i++) {
		if (worker_init(&srv, &srv.workers[i], i,
		    srv.workers[i].listen_fd) != WD_OK) {
			wd_error("cannot set up worker %d", i);
			goto stop;
		}
	}
	/* Vertex routes' access tokens, before the first request. */
	if (gw_tokens_start(&srv) != WD_OK) {
		wd_error("cannot start the token keeper");
		goto stop;
	}
	for (int i = 0; i < srv.nworkers; i++) {
		if (pthread_create(&srv.workers[i].thread, NULL, worker_main,
		    &srv.workers[i]) != 0) {
			wd_error("cannot start worker thread %d", i);
			goto stop;
		}
		started++;
	}
	wd_info("serving on %s with %d worker%s, policy %.12s", listen_spec,
	    srv.nworkers, srv.nworkers == 1 ? "" : "s", srv.snap->version);
	{
		json_t *st = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "kind",
		    "start", "version", WD_VERSION, "config", opts->config,
		    "policy_version", srv.snap->version, "listen", listen_spec,
		    "workers", srv.nworkers);

		/* Which NV index (by name) dates this log's checkpoints. */
		if (st != NULL && counter_start != NULL)
			json_object_set(st, "tpm_counter", counter_start);
		aud_submit(srv.audit, st, NULL, NULL);
	}
	exitcode = 0;
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			gw_server_reload(&srv, stderr);
			continue;
		}
		wd_info("%s: stopping; requests in flight may finish",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
stop:
	for (int i = 0; i < started; i++) {
		atomic_store(&srv.workers[i].stop_asked, true);
		gw_worker_ring(&srv.workers[i]);
	}
	for (int i = 0; i < started; i++)
		pthread_join(srv.workers[i].thread, NULL);
	for (int i = 0; i < srv.nworkers; i++)
		worker_free(&srv.workers[i]);
	gw_tokens_stop();
	curl_global_cleanup();
	if (srv.audit != NULL) {
		aud_submit(srv.audit, json_pack("{s:s,s:s}", "kind", "stop",
		    "policy_version", srv.snap->version), NULL, NULL);
		aud_close(srv.audit);
		srv.audit = NULL;
	}
	/* After the log's last checkpoint was handed over. */
	gw_witness_free(srv.wit);
	srv.wit = NULL;
	libevent_global_shutdown();
	if (exitcode == 0)
		wd_info("stopped");
out:
	aud_close(srv.audit);
	gw_witness_free(srv.wit);
	json_decref(counter_start);
	if (srv.workers != NULL && started == 0)
		for (int i = 0; i < srv.nworkers; i++)
			if (srv.workers[i].listen_fd >= 0 &&
			    srv.workers[i].listener == NULL)
				close(srv.workers[i].listen_fd);
	free(srv.workers);
	pol_snapshot_unref(srv.snap);
	gw_creds_unref(srv.creds);
	if (srv.tpm != NULL)
		sec_tpm_close(srv.tpm);
	free((char *)srv.signer.pubkey_pem);
	gw_paykeys_free(srv.paykeys);
	pthread_mutex_destroy(&srv.snap_lock);
	pthread_mutex_destroy(&srv.http.lock);
	pthread_mutex_destroy(&srv.reload_lock);
	pthread_mutex_destroy(&srv.tpm_lock);
	return exitcode;
}
