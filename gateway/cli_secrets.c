/*
 * cli_secrets.c - `warden secrets seal|rotate|rm|list|check`: the
 * operator's hands on the sealed credential store (secrets/).
 *
 * A value is read from standard input only, never from an argument or the
 * environment, where ps, shell history and /proc/PID/environ would show
 * it; it is read into locked memory and never printed.  Unknown options
 * are reported without echoing them, since `--value=...` would otherwise
 * put a secret on the terminal.  Exit codes: 0 done, 1 failed, 2 usage.
 *
 * seal, rotate and rm leave a record in the audit log (audit.dir of the
 * rules, or --audit-dir): secrets/ reports each through its event hook,
 * installed here, and aud_post_event() brings it into the chain whether
 * or not a gateway holds the log.  A record names the secret, what was
 * done and how it ended; never a value.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "audit/aud.h"
#include "common/wd.h"
#include "gateway/gw.h"
#include "gateway/gw_int.h"
#include "policy/pol.h"
#include "secrets/sec.h"

#define USAGE \
    "usage: warden secrets seal NAME [--pcr sha256:7,23] [--auth-file F] [-c FILE | --store DIR --tcti TCTI]\n" \
    "       warden secrets rotate NAME [--pcr SPEC|none] [--auth-file F] [-c FILE | --store DIR --tcti TCTI]\n" \
    "       warden secrets rm NAME [-c FILE | --store DIR]\n" \
    "       warden secrets list [-c FILE] [--store DIR]\n" \
    "       warden secrets check [-c FILE] [--store DIR] [--tcti TCTI] [--auth-file F]\n" \
    "       warden secrets import-key NAME [-c FILE | --store DIR --tcti TCTI]\n" \
    "seal and rotate read the value from standard input (one trailing newline\n" \
    "is dropped); store and TCTI default to the rules file's secrets: section.\n" \
    "import-key reads an RSA-2048 private key (PEM) from standard input and\n" \
    "imports it into the TPM: it signs only there (a Vertex AI service account).\n"

struct sopts {
	const char *config;		/* -c: rules file */
	const char *store;		/* --store, else secrets.store */
	const char *tcti;		/* --tcti, else secrets.tcti */
	const char *pcr;		/* --pcr, or NULL */
	const char *auth_file;		/* --auth-file, else secrets.auth_file */
	const char *name;		/* the one positional argument */
	const char *audit_dir;		/* --audit-dir, else audit.dir */
	struct pol_snapshot *snap;	/* loaded from config, or NULL */
};

static int
usage_err(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "warden secrets: %s\n", msg);
	fputs(USAGE, stderr);
	return 2;
}

/*
 * Parse options for one subcommand: argv[0] is its name.  want_name: it
 * takes exactly one NAME.  Returns 0, or an exit code.
 */
static int
parse(int argc, char **argv, bool want_name, bool pcr_ok, struct sopts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "store", required_argument, NULL, 's' },
		{ "tcti", required_argument, NULL, 't' },
		{ "pcr", required_argument, NULL, 'p' },
		{ "auth-file", required_argument, NULL, 'a' },
		{ "audit-dir", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;			/* our messages never echo the option */
	while ((ch = getopt_long(argc, argv, ":c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 's':
			o->store = optarg;
			break;
		case 't':
			o->tcti = optarg;
			break;
		case 'p':
			if (!pcr_ok)
				return usage_err("--pcr is for seal and rotate");
			o->pcr = optarg;
			break;
		case 'a':
			o->auth_file = optarg;
			break;
		case 'D':
			o->audit_dir = optarg;
			break;
		case ':':
			return usage_err("an option lacks its argument");
		default:
			return usage_err("unknown option (the value is read from "
			    "standard input, never from the command line)");
		}
	}
	if (want_name) {
		if (optind != argc - 1)
			return usage_err(optind >= argc ? "NAME missing" :
			    "one NAME only (the value is read from standard input)");
		o->name = argv[optind];
		if (!sec_name_valid(o->name))
			return usage_err("NAME: 1-64 of A-Z a-z 0-9 . _ -");
	} else if (optind != argc) {
		return usage_err("unexpected argument");
	}
	return 0;
}

/* Fill store (and tcti) from the rules file where not given.  0 or an
 * exit code. */
static int
resolve(struct sopts *o, bool need_tcti)
{
	if (o->config != NULL) {
		if (pol_load(o->config, stderr, &o->snap) != WD_OK)
			return 2;
		if (o->store == NULL)
			o->store = o->snap->secrets.store;
		if (o->tcti == NULL)
			o->tcti = o->snap->secrets.tcti;
		if (o->audit_dir == NULL)
			o->audit_dir = o->snap->audit.dir;
	}
	if (o->store == NULL)
		return usage_err("give -c FILE or --store DIR");
	if (need_tcti && (o->tcti == NULL || *o->tcti == '\0')) {
		fprintf(stderr, "warden secrets: no TPM named: give --tcti (e.g. "
		    "device:/dev/tpmrm0) or set secrets.tcti in the rules file\n");
		return 2;
	}
	return 0;
}

/*
 * Read the value from standard input into locked memory: the whole input,
 * or one line typed with echo off when it is a terminal.  One trailing
 * newline (and a CR before it) is dropped.  *len: the value's length.
 */
static enum wd_err
read_value(const char *name, struct sec_buf *b, size_t *len, char *err,
    size_t errlen)
{
	struct termios saved, quiet;
	bool tty = isatty(STDIN_FILENO) != 0, echo_off = false;
	size_t n = 0;
	enum wd_err e;

	*len = 0;
	/* Room for the limit, a CR LF, and one byte to notice more. */
	if ((e = sec_buf_alloc(b, SEC_VALUE_MAX + 3, err, errlen)) != WD_OK)
		return e;
	if (tty) {
		fprintf(stderr, "value of %s (not shown; end with Enter): ", name);
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	while (n < b->len) {
		ssize_t r = read(STDIN_FILENO, b->p + n, tty ? 1 : b->len - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "reading standard input: %s",
			    strerror(errno));
			e = WD_EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (tty && b->p[n - 1] == '\n')
			break;
	}
	if (n > 0 && b->p[n - 1] == '\n') {
		n--;
		if (n > 0 && b->p[n - 1] == '\r')
			n--;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty value on standard input: nothing sealed");
		e = WD_EINVAL;
	} else if (n > SEC_VALUE_MAX) {
		snprintf(err, errlen, "value longer than %d bytes: nothing sealed",
		    SEC_VALUE_MAX);
		e = WD_ELIMIT;
	} else {
		*len = n;
		e = WD_OK;
	}
out:
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	return e;
}

/* What secrets/ reported of the one change this command made. */
struct change {
	bool seen;
	enum sec_event_kind kind;
	char name[SEC_NAME_MAX + 1];
	enum wd_err result;
	char error[512];
};

static void
on_event(const struct sec_event *ev, void *arg)
{
	struct change *c = arg;

	if (ev->kind == SEC_EV_UNSEAL)
		return;			/* reading changes nothing */
	c->seen = true;
	c->kind = ev->kind;
	snprintf(c->name, sizeof(c->name), "%s", ev->name ? ev->name : "");
	c->result = ev->result;
	snprintf(c->error, sizeof(c->error), "%s", ev->error ? ev->error : "");
}

/*
 * Record the change in the audit log, if there is one to record it in.
 * extra: more fields (ownership moves here).  False if it could not be.
 */
static bool
record_change(const struct sopts *o, const struct change *c, json_t *extra)
{
	char err[512];
	bool in_chain = false;
	json_t *rec;

	if (!c->seen) {
		json_decref(extra);
		return true;
	}
	if (o->audit_dir == NULL) {
		json_decref(extra);
		fprintf(stderr, "warden secrets: not recorded in an audit log (give "
		    "-c FILE or --audit-dir DIR)\n");
		return true;
	}
	rec = json_pack("{s:s,s:s,s:s,s:s}", "kind", sec_event_name(c->kind),
	    "name", c->name, "store", o->store, "result",
	    c->result == WD_OK ? "ok" : "failed");
	if (rec == NULL) {
		json_decref(extra);
		return false;
	}
	if (c->result != WD_OK)
		json_object_set_new(rec, "error", json_string(c->error));
	if (extra != NULL)
		json_object_update(rec, extra);
	json_decref(extra);
	/* With no gateway holding the log, this command appends and signs
	 * the record itself (the TPM is closed by now). */
	if (gw_cli_record(o->audit_dir, rec, o->tcti, o->store, o->auth_file ?
	    o->auth_file : o->snap ? o->snap->secrets.auth_file : NULL, o->snap,
	    "warden secrets", &in_chain, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: NOT recorded in the audit log: "
		    "%s\n", err);
		return false;
	}
	return true;
}

/* Unseal name, with the auth value if it was sealed with one. */
static enum wd_err
unseal_one(struct sec_tpm *tpm, struct sopts *o, const char *name,
    struct sec_cache *cache, char *err, size_t errlen)
{
	struct sec_buf auth = { 0 };
	struct sec_meta m;
	size_t authlen = 0;
	const char *file = o->auth_file ? o->auth_file :
	    o->snap ? o->snap->secrets.auth_file : NULL;
	enum wd_err e;

	if (sec_stat(o->store, name, &m, err, errlen) == WD_OK && m.auth) {
		if (file == NULL) {
			snprintf(err, errlen, "sealed with an auth value: give "
			    "--auth-file or secrets.auth_file");
			return WD_EINVAL;
		}
		if ((e = sec_read_auth_file(file, &auth, &authlen, err, errlen)) !=
		    WD_OK)
			return e;
	}
	e = sec_unseal(tpm, o->store, name, auth.p, authlen, cache, err, errlen);
	sec_buf_free(&auth);
	return e;
}

/*
 * What seal, rotate and import-key check before they touch the TPM: the
 * name is not one of warden's own, and the process cannot be traced or
 * dumped while the value is in its memory.  0, or the exit status.
 */
static int
may_write(const struct sopts *o)
{
	char err[512];

	if (o->name[0] == '.') {
		fprintf(stderr, "warden secrets: names beginning with '.' are "
		    "reserved for warden's own keys\n");
		return 1;
	}
	if (sec_harden_process(err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: %s\n", err);
		return 1;
	}
	return 0;
}

static int
cmd_seal(int argc, char **argv, enum sec_mode mode)
{
	struct sec_seal_opts so = { 0 };
	struct change change = { 0 };
	struct sec_buf value = { 0 }, auth = { 0 };
	size_t authlen = 0;
	struct sec_tpm *tpm = NULL;
	struct sec_meta old;
	struct sopts o;
	char err[512];
	size_t len;
	int rc;

	if ((rc = parse(argc, argv, true, true, &o)) != 0)
		return rc;
	if ((rc = resolve(&o, true)) != 0 || (rc = may_write(&o)) != 0)
		goto out;
	rc = 1;
	/* Refuse before asking for a value that could not be stored. */
	switch (sec_stat(o.store, o.name, &old, err, sizeof(err))) {
	case WD_OK:
		if (mode == SEC_CREATE) {
			fprintf(stderr, "warden secrets: '%s' exists already; "
			    "`warden secrets rotate %s` replaces it\n", o.name, o.name);
			goto out;
		}
		break;
	case WD_ENOTFOUND:
		if (mode == SEC_REPLACE) {
			fprintf(stderr, "warden secrets: %s; `warden secrets seal %s` "
			    "creates it\n", err, o.name);
			goto out;
		}
		break;
	default:
		fprintf(stderr, "warden secrets: %s\n", err);
		goto out;
	}
	/* rotate keeps the binding unless told otherwise */
	so.pcrs = o.pcr != NULL ? o.pcr : mode == SEC_REPLACE ? old.pcrs : NULL;
	if (o.auth_file == NULL && o.snap != NULL)
		o.auth_file = o.snap->secrets.auth_file;
	if (mode == SEC_REPLACE && old.auth && o.auth_file == NULL) {
		fprintf(stderr, "warden secrets: '%s' was sealed with an auth "
		    "value: give --auth-file\n", o.name);
		goto out;
	}
	if (o.auth_file != NULL) {
		if (sec_read_auth_file(o.auth_file, &auth, &authlen, err,
		    sizeof(err)) != WD_OK) {
			fprintf(stderr, "warden secrets: %s\n", err);
			goto out;
		}
		so.auth = auth.p;
		so.authlen = authlen;
	}
	sec_set_event_hook(on_event, &change);
	if (sec_tpm_open(o.tcti, &tpm, err, sizeof(err)) != WD_OK ||
	    read_value(o.name, &value, &len, err, sizeof(err)) != WD_OK ||
	    sec_seal(tpm, o.store, o.name, value.p, len, &so, mode, err,
	    sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: %s %s: %s\n",
		    mode == SEC_CREATE ? "seal" : "rotate", o.name, err);
		gw_tpm_close(tpm);	/* the record's checkpoint opens it */
		tpm = NULL;
		(void)record_change(&o, &change, NULL);
		goto out;
	}
	gw_tpm_close(tpm);
	tpm = NULL;
	if (!record_change(&o, &change, json_pack("{s:s,s:b}", "pcrs",
	    so.pcrs != NULL && *so.pcrs != '\0' ? so.pcrs : "none", "auth",
	    authlen > 0)))
		goto out;
	printf("%s %s (%zu bytes)\n", mode == SEC_CREATE ? "sealed" : "rotated",
	    o.name, len);
	rc = 0;
out:
	sec_buf_free(&value);
	sec_buf_free(&auth);
	gw_tpm_close(tpm);
	pol_snapshot_unref(o.snap);
	return rc;
}

/* An external RSA key into the TPM (secrets/import.c). */
static int
cmd_import_key(int argc, char **argv)
{
	struct change change = { 0 };
	struct sec_buf value = { 0 };
	struct sec_tpm *tpm = NULL;
	struct sopts o;
	char err[512];
	size_t len;
	int rc;

	if ((rc = parse(argc, argv, true, false, &o)) != 0)
		return rc;
	if ((rc = resolve(&o, true)) != 0 || (rc = may_write(&o)) != 0)
		goto out;
	rc = 1;
	sec_set_event_hook(on_event, &change);
	if (sec_tpm_open(o.tcti, &tpm, err, sizeof(err)) != WD_OK ||
	    read_value(o.name, &value, &len, err, sizeof(err)) != WD_OK ||
	    sec_key_import(tpm, o.store, o.name, value.p, len, err,
	    sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: import-key %s: %s\n", o.name, err);
		sec_buf_free(&value);	/* wipes the PEM */
		gw_tpm_close(tpm);	/* the record's checkpoint opens it */
		tpm = NULL;
		(void)record_change(&o, &change, NULL);
		goto out;
	}
	sec_buf_free(&value);
	gw_tpm_close(tpm);
	tpm = NULL;
	if (!record_change(&o, &change, json_pack("{s:s}", "key", "RSA-2048")))
		goto out;
	printf("imported %s (RSA-2048, signs RS256 inside the TPM only; wipe "
	    "the PEM file)\n", o.name);
	rc = 0;
out:
	sec_buf_free(&value);		/* wipes the PEM */
	gw_tpm_close(tpm);
	pol_snapshot_unref(o.snap);
	return rc;
}

static int
cmd_rm(int argc, char **argv)
{
	struct change change = { 0 };
	struct sopts o;
	char err[512];
	int rc;

	if ((rc = parse(argc, argv, true, false, &o)) != 0)
		return rc;
	if ((rc = resolve(&o, false)) != 0)
		goto out;
	rc = 1;
	sec_set_event_hook(on_event, &change);
	if (sec_remove(o.store, o.name, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: rm %s: %s\n", o.name, err);
		(void)record_change(&o, &change, NULL);
		goto out;
	}
	if (!record_change(&o, &change, NULL))
		goto out;
	printf("removed %s\n", o.name);
	rc = 0;
out:
	pol_snapshot_unref(o.snap);
	return rc;
}

/* "route, route" of the config's providers that use credential name. */
static void
routes_of(const struct pol_snapshot *snap, const char *name, char *buf,
    size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; snap != NULL && i < snap->nproviders && n < len; i++)
		if (strcmp(snap->providers[i].credential, name) == 0)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
			    snap->providers[i].id);
}

static void
row(const char *name, const char *created, const char *binding,
    const char *size, const char *routes)
{
	if (*routes != '\0')
		printf("%-24s %-20s %-16s %6s  %s\n", name, created, binding, size,
		    routes);
	else
		printf("%-24s %-20s %-16s %6s\n", name, created, binding, size);
}

struct list_state {
	const struct pol_snapshot *snap;
	char **seen;			/* names listed, for "missing" */
	size_t nseen;
};

static void
list_one(const struct sec_meta *m, void *arg)
{
	struct list_state *ls = arg;
	char routes[512], size[24];
	char **ns;

	if (m->kind == SEC_KIND_SIGNING_KEY) {
		snprintf(routes, sizeof(routes), "(audit signing key)");
		snprintf(size, sizeof(size), "-");
	} else if (m->kind == SEC_KIND_IMPORTED_KEY) {
		routes_of(ls->snap, m->name, routes, sizeof(routes));
		snprintf(size, sizeof(size), "(key)");
	} else {
		routes_of(ls->snap, m->name, routes, sizeof(routes));
		snprintf(size, sizeof(size), "%zu", m->size);
	}
	row(m->name, m->created, m->pcrs[0] ? m->pcrs : "-", size, routes);
	if ((ns = realloc(ls->seen, (ls->nseen + 1) * sizeof(*ns))) != NULL) {
		ls->seen = ns;
		ls->seen[ls->nseen] = strdup(m->name);
		if (ls->seen[ls->nseen] != NULL)
			ls->nseen++;
	}
}

static bool
listed(const struct list_state *ls, const char *name)
{
	for (size_t i = 0; i < ls->nseen; i++)
		if (strcmp(ls->seen[i], name) == 0)
			return true;
	return false;
}

static int
cmd_list(int argc, char **argv)
{
	struct list_state ls = { 0 };
	struct sopts o;
	char err[512], routes[512];
	int rc;

	if ((rc = parse(argc, argv, false, false, &o)) != 0)
		return rc;
	if ((rc = resolve(&o, false)) != 0)
		goto out;
	ls.snap = o.snap;
	row("NAME", "CREATED", "BINDING", "SIZE", o.snap ? "ROUTES" : "");
	if (sec_list(o.store, list_one, &ls, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: list: %s\n", err);
		rc = 1;
		goto out;
	}
	/* What the config names but the store lacks: serve would fail. */
	for (size_t i = 0; o.snap != NULL && i < o.snap->nproviders; i++) {
		const char *c = o.snap->providers[i].credential;
		bool earlier = false;

		for (size_t j = 0; j < i; j++)
			earlier |= strcmp(o.snap->providers[j].credential, c) == 0;
		if (earlier || listed(&ls, c))
			continue;
		routes_of(o.snap, c, routes, sizeof(routes));
		row(c, "(missing)", "-", "-", routes);
	}
	rc = 0;
out:
	for (size_t i = 0; i < ls.nseen; i++)
		free(ls.seen[i]);
	free(ls.seen);
	pol_snapshot_unref(o.snap);
	return rc;
}

struct names {
	char **v;
	size_t n;
};

static bool
names_add(struct names *ns, const char *name)
{
	char **nv;

	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return true;
	if ((nv = realloc(ns->v, (ns->n + 1) * sizeof(*nv))) == NULL)
		return false;
	ns->v = nv;
	if ((ns->v[ns->n] = strdup(name)) == NULL)
		return false;
	ns->n++;
	return true;
}

static void
add_credential(const struct sec_meta *m, void *arg)
{
	if (m->kind == SEC_KIND_CREDENTIAL)
		(void)names_add(arg, m->name);
}

static int
cmd_check(int argc, char **argv)
{
	struct names ns = { 0 };
	struct sec_cache *cache = NULL;
	struct sec_tpm *tpm = NULL;
	char err[512], openerr[512] = "";
	size_t capacity = 0;
	int rc, failed = 0;

	struct sopts o;

	if ((rc = parse(argc, argv, false, false, &o)) != 0)
		return rc;
	if ((rc = resolve(&o, true)) != 0)
		goto out;
	rc = 1;
	if (o.snap != NULL) {
		for (size_t i = 0; i < o.snap->nproviders; i++)
			if (!names_add(&ns, o.snap->providers[i].credential))
				goto nomem;
	} else if (sec_list(o.store, add_credential, &ns, err, sizeof(err)) !=
	    WD_OK) {
		fprintf(stderr, "warden secrets: check: %s\n", err);
		goto out;
	}
	if (ns.n == 0) {
		printf("no credentials to check\n");
		rc = 0;
		goto out;
	}
	/* Lock only as much memory as the values need. */
	for (size_t i = 0; i < ns.n; i++) {
		struct sec_meta m;

		if (sec_stat(o.store, ns.v[i], &m, err, sizeof(err)) == WD_OK)
			capacity += m.size;
	}
	if (sec_harden_process(err, sizeof(err)) != WD_OK ||
	    sec_cache_new(capacity, &cache, err, sizeof(err)) != WD_OK) {
		fprintf(stderr, "warden secrets: check: %s\n", err);
		goto out;
	}
	/* If the TPM cannot be reached, every credential fails with why. */
	if (sec_tpm_open(o.tcti, &tpm, openerr, sizeof(openerr)) != WD_OK)
		tpm = NULL;
	for (size_t i = 0; i < ns.n; i++) {
		if (tpm == NULL) {
			printf("FAIL %s: %s\n", ns.v[i], openerr);
			failed++;
		} else if (unseal_one(tpm, &o, ns.v[i], cache, err,
		    sizeof(err)) != WD_OK) {
			printf("FAIL %s: %s\n", ns.v[i], err);
			failed++;
		} else {
			printf("ok %s\n", ns.v[i]);
		}
	}
	rc = failed ? 1 : 0;
	goto out;
nomem:
	fprintf(stderr, "warden secrets: out of memory\n");
out:
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	sec_cache_free(cache);
	gw_tpm_close(tpm);
	pol_snapshot_unref(o.snap);
	return rc;
}

int
gw_cmd_secrets(int argc, char **argv)
{
	if (argc < 2)
		return usage_err(NULL);
	argc--;
	argv++;
	if (strcmp(argv[0], "seal") == 0)
		return cmd_seal(argc, argv, SEC_CREATE);
	if (strcmp(argv[0], "rotate") == 0)
		return cmd_seal(argc, argv, SEC_REPLACE);
	if (strcmp(argv[0], "rm") == 0)
		return cmd_rm(argc, argv);
	if (strcmp(argv[0], "list") == 0)
		return cmd_list(argc, argv);
	if (strcmp(argv[0], "check") == 0)
		return cmd_check(argc, argv);
	if (strcmp(argv[0], "import-key") == 0)
		return cmd_import_key(argc, argv);
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
		fputs(USAGE, stdout);
		return 0;
	}
	return usage_err("unknown subcommand");
}
