/*
 * mcp_pins.c - what each MCP server's tools said they were when warden
 * first saw them.  A tool's fingerprint is the SHA-256 of the canonical
 * JSON (sorted keys, compact) of {name, description, inputSchema,
 * outputSchema, annotations}.  The first definition seen is pinned; a
 * different one is recorded as pending and refused (hidden from
 * tools/list, tools/call refused) until `warden mcp approve SERVER TOOL`.
 *
 * The pins live in one small JSON file, DIR/mcp-pins.json (DIR: the
 * rules' mcp_pins_dir, else audit.dir), mode 0600, replaced by rename so
 * that a reader never sees half of it.  A check looks at the file's
 * identity (device, inode, size, times: every writer's rename, or an
 * edit, changes it) and reads it again when it changed, so an approval
 * counts on the next tools/list or call; else it reads the copy kept
 * from last time, one stat(2) instead of a read and parse per call.
 * A change (a first pin, a pending definition, an approval) is read,
 * made and written under flock(2) on DIR, so that processes at the same
 * moment (gateways, `warden mcp approve`) lose none of each other's: a
 * lost pin would be taken again from whatever the server says next.
 * A file that cannot be read or written refuses the tools: fail closed.
 */
#include "gateway/gw_int.h"
#include "gateway/mcp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIN_FILE_MAX (4u << 20)

static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

/* The file as read last, under pin_lock; its tree is only read: a change
 * is made on a tree read afresh under the flock. */
static struct {
	char path[4096];
	struct stat st;			/* its identity, as read */
	json_t *j;
} kept;

void
gw_pin_fingerprint(json_t *tool, char out[65])
{
	static const char *const keys[] = { "name", "description",
		"inputSchema", "outputSchema", "annotations" };
	json_t *c = json_object();
	unsigned char d[32];
	char *text;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(tool, keys[i]);

		if (v != NULL)
			json_object_set(c, keys[i], v);
	}
	text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(c);
	if (text == NULL) {
		memset(out, '0', 64);	/* matches no real pin: refused */
		out[64] = '\0';
		return;
	}
	wd_sha256(text, strlen(text), d);
	wd_hex(d, 32, out);
	free(text);
}

void
gw_pin_path(const struct pol_snapshot *snap, const char *audit_dir,
    char *out, size_t len)
{
	snprintf(out, len, "%s/mcp-pins.json", snap->mcp_pins_dir ?
	    snap->mcp_pins_dir : audit_dir ? audit_dir : snap->audit.dir);
}

/* Refuse a pin file others may write: they could approve tools. */
static bool
pins_file_ok(const struct stat *st)
{
	return S_ISREG(st->st_mode) && (st->st_mode & 022) == 0 &&
	    st->st_size <= PIN_FILE_MAX;
}

static bool
same_file(const struct stat *st, const char *path)
{
	return kept.j != NULL && strcmp(kept.path, path) == 0 &&
	    kept.st.st_dev == st->st_dev && kept.st.st_ino == st->st_ino &&
	    kept.st.st_size == st->st_size &&
	    kept.st.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    kept.st.st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
	    kept.st.st_ctim.tv_sec == st->st_ctim.tv_sec &&
	    kept.st.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

static void
kept_drop(void)
{
	json_decref(kept.j);
	kept.j = NULL;
}

/*
 * The file's pins, read now (the caller's to change), or a new empty
 * object when it does not exist yet; *st: what was read (st_ino 0: no
 * file).  The checks are made on the file opened, not on the path.
 */
static json_t *
pins_load_st(const char *path, struct stat *st)
{
	json_error_t je;
	json_t *j;
	int fd;

	memset(st, 0, sizeof(*st));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? json_object() : NULL;
	if (fstat(fd, st) != 0 || !pins_file_ok(st)) {
		close(fd);
		return NULL;
	}
	j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	close(fd);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *
pins_load(const char *path)
{
	struct stat st;

	return pins_load_st(path, &st);
}

/* The pins to look at (a reference, not to be changed): the kept tree
 * while the file is the one read last.  Under pin_lock. */
static json_t *
pins_look(const char *path)
{
	struct stat st;
	json_t *j;

	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			return NULL;
		kept_drop();
		return json_object();
	}
	if (!pins_file_ok(&st))
		return NULL;
	if (same_file(&st, path))
		return json_incref(kept.j);
	kept_drop();
	if ((j = pins_load_st(path, &st)) == NULL || st.st_ino == 0 ||
	    strlen(path) >= sizeof(kept.path))
		return j;
	snprintf(kept.path, sizeof(kept.path), "%s", path);
	kept.st = st;
	kept.j = json_incref(j);
	return j;
}

/* flock(2) on the pin file's directory: -1 when it cannot be had. */
static int
pins_lock(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path) +
	    (slash == path), path) >= (int)sizeof(dir))
		return -1;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
pins_unlock(int fd)
{
	close(fd);			/* and the lock with it */
}

static bool
pins_save(const char *path, json_t *j)
{
	char tmp[4200];
	int fd;
	bool ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	ok = json_dumpfd(j, fd, JSON_INDENT(1) | JSON_SORT_KEYS) == 0 &&
	    fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	kept_drop();
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return false;
	}
	return true;
}

/* The tool's state in all for a definition of fingerprint fp; *change:
 * fp is news to be written (a first pin, or a pending definition), made
 * in all when write is true (all is then the caller's, read under the
 * flock). */
static enum gw_pin_state
pin_in(json_t *all, const char *server, const char *tool, const char *fp,
    bool *change, bool write)
{
	json_t *srv = json_object_get(all, server), *t;
	const char *pinned, *pending;

	*change = false;
	t = json_object_get(srv, tool);
	pinned = json_string_value(json_object_get(t, "pinned"));
	if (pinned != NULL && strcmp(pinned, fp) == 0)
		return GW_PIN_OK;
	pending = json_string_value(json_object_get(t, "pending"));
	*change = pinned == NULL || pending == NULL || strcmp(pending, fp) != 0;
	if (*change && write) {
		if (srv == NULL) {
			srv = json_object();
			json_object_set_new(all, server, srv);
		}
		if (pinned == NULL)
			json_object_set_new(srv, tool, json_pack("{s:s}",
			    "pinned", fp));
		else
			json_object_set_new(t, "pending", json_string(fp));
	}
	return pinned == NULL ? GW_PIN_OK : GW_PIN_CHANGED;
}

enum gw_pin_state
gw_pin_check(const char *path, const char *server, const char *tool,
    const char *fp, bool *wrote)
{
	enum gw_pin_state rc = GW_PIN_ERROR;
	json_t *all;
	bool dirty, unused;
	int lfd;

	if (wrote == NULL)
		wrote = &unused;
	*wrote = false;
	pthread_mutex_lock(&pin_lock);
	if ((all = pins_look(path)) == NULL)
		goto out;
	rc = pin_in(all, server, tool, fp, &dirty, false);
	if (!dirty)
		goto out;
	/* A change: read again, decide and write under the lock. */
	json_decref(all);
	all = NULL;
	rc = GW_PIN_ERROR;
	if ((lfd = pins_lock(path)) < 0)
		goto out;
	if ((all = pins_load(path)) != NULL) {
		rc = pin_in(all, server, tool, fp, &dirty, true);
		if (dirty && !pins_save(path, all))
			rc = GW_PIN_ERROR;
		else
			*wrote = dirty;
	}
	pins_unlock(lfd);
out:
	json_decref(all);
	pthread_mutex_unlock(&pin_lock);
	return rc;
}

enum gw_pin_state
gw_pin_status(const char *path, const char *server, const char *tool)
{
	enum gw_pin_state rc = GW_PIN_ERROR;
	json_t *all, *t;

	pthread_mutex_lock(&pin_lock);
	if ((all = pins_look(path)) != NULL) {
		t = json_object_get(json_object_get(all, server), tool);
		if (json_object_get(t, "pending") != NULL)
			rc = GW_PIN_CHANGED;
		else if (json_is_string(json_object_get(t, "pinned")))
			rc = GW_PIN_OK;
		else
			rc = GW_PIN_UNSEEN;
	}
	json_decref(all);
	pthread_mutex_unlock(&pin_lock);
	return rc;
}

int
gw_pin_list(const char *path, FILE *out)
{
	json_t *all = pins_load(path), *srv, *t;
	const char *s, *name;

	if (all == NULL) {
		fprintf(stderr, "warden mcp: cannot read %s (missing, not a file, "
		    "or writable by others)\n", path);
		return 1;
	}
	fprintf(out, "%-20s %-28s %-10s %s\n", "SERVER", "TOOL", "STATE",
	    "FINGERPRINT (pinned / pending)");
	json_object_foreach(all, s, srv)
		json_object_foreach(srv, name, t) {
			const char *pin = json_string_value(json_object_get(t,
			    "pinned"));
			const char *pend = json_string_value(json_object_get(t,
			    "pending"));

			fprintf(out, "%-20s %-28s %-10s %.16s%s%.16s\n", s, name,
			    pend ? "pending" : "pinned", pin ? pin : "-",
			    pend ? " / " : "", pend ? pend : "");
		}
	json_decref(all);
	return 0;
}

int
gw_pin_approve(const char *path, const char *server, const char *tool,
    char from[65], char to[65], FILE *out)
{
	json_t *all = NULL, *t;
	const char *pend, *pinned;
	int rc = 1, lfd;

	from[0] = to[0] = '\0';
	pthread_mutex_lock(&pin_lock);
	if ((lfd = pins_lock(path)) < 0) {
		fprintf(stderr, "warden mcp: cannot lock the directory of %s: "
		    "%s\n", path, strerror(errno));
		goto out;
	}
	if ((all = pins_load(path)) == NULL) {
		fprintf(stderr, "warden mcp: cannot read %s\n", path);
		goto out;
	}
	t = json_object_get(json_object_get(all, server), tool);
	pend = json_string_value(json_object_get(t, "pending"));
	if (pend == NULL) {
		fprintf(stderr, "warden mcp: server '%s' tool '%s' has no pending "
		    "definition\n", server, tool);
		goto out;
	}
	/* Copied first: pend goes with the member it is in. */
	pinned = json_string_value(json_object_get(t, "pinned"));
	snprintf(from, 65, "%s", pinned != NULL ? pinned : "");
	snprintf(to, 65, "%s", pend);
	json_object_set_new(t, "pinned", json_string(to));
	json_object_del(t, "pending");
	if (!pins_save(path, all)) {
		from[0] = to[0] = '\0';
		fprintf(stderr, "warden mcp: cannot write %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	fprintf(out, "approved: server '%s' tool '%s' is pinned to its new "
	    "definition\n", server, tool);
	rc = 0;
out:
	json_decref(all);
	if (lfd >= 0)
		pins_unlock(lfd);
	pthread_mutex_unlock(&pin_lock);
	return rc;
}
