/*
 * payload.c - what warden keeps of prompts and answers when a decision's
 * keep mode is `redacted` or `full`: one file per transaction, outside the
 * hash chain, which holds only their HMAC digests.  So payloads can be
 * deleted when their time is up (TTL) or on request (`warden audit purge
 * --tenant T`) without breaking verification.
 *
 *   DIR/payloads/TENANT/EXPIRES-DECISIONID.json      (0700 dirs, 0600 files)
 *
 * EXPIRES (seconds since the epoch) is in the name so that the sweep
 * needs no file contents.  `redacted` keeps the structure of the
 * conversation (roles, tool names, sizes) and replaces every message text
 * with its length.
 */
#include "audit/aud_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
redact_content(json_t *msg)
{
	json_t *c = json_object_get(msg, "content");
	char text[64];

	if (json_is_string(c)) {
		snprintf(text, sizeof(text), "[redacted: %zu bytes]",
		    json_string_length(c));
		json_object_set_new(msg, "content", json_string(text));
	} else if (json_is_array(c)) {
		snprintf(text, sizeof(text), "[redacted: %zu parts]",
		    json_array_size(c));
		json_object_set_new(msg, "content", json_string(text));
	}
	/* Tool call arguments can hold as much as any message. */
	if (json_is_array(json_object_get(msg, "tool_calls"))) {
		json_t *call;
		size_t i;

		json_array_foreach(json_object_get(msg, "tool_calls"), i, call) {
			json_t *f = json_object_get(call, "function");
			json_t *args = json_object_get(f, "arguments");

			if (json_is_string(args)) {
				snprintf(text, sizeof(text), "[redacted: %zu bytes]",
				    json_string_length(args));
				json_object_set_new(f, "arguments", json_string(text));
			}
		}
	}
}

json_t *
aud_redact(const char *body, size_t len, bool is_request)
{
	json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, NULL), *m;
	size_t i;

	if (j == NULL) {
		char text[64];

		snprintf(text, sizeof(text), "[redacted: %zu bytes]", len);
		return json_string(text);
	}
	if (is_request) {
		json_array_foreach(json_object_get(j, "messages"), i, m)
			redact_content(m);
	} else {
		json_array_foreach(json_object_get(j, "choices"), i, m)
			redact_content(json_object_get(m, "message"));
	}
	return j;
}

static bool
safe_name(const char *s)
{
	return wd_token_sane(s, 64) && s[0] != '.';
}

static enum wd_err
ensure_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return WD_EIO;
	return WD_OK;
}

enum wd_err
aud_payload_store(const struct aud_log *l, const char *tenant,
    const char *decision_id, int ttl_days, json_t *payload)
{
	char path[1024], tmp[1100];
	char *text;
	time_t expires = time(NULL) + (time_t)(ttl_days > 0 ? ttl_days : 0) * 86400;
	size_t len;
	ssize_t n;
	int fd;
	enum wd_err rc = WD_OK;

	if (!safe_name(tenant) || !safe_name(decision_id) || ttl_days <= 0)
		return ttl_days <= 0 ? WD_OK : WD_EINVAL;
	snprintf(path, sizeof(path), "%s/payloads", l->dir);
	if (ensure_dir(path) != WD_OK)
		return WD_EIO;
	snprintf(path, sizeof(path), "%s/payloads/%s", l->dir, tenant);
	if (ensure_dir(path) != WD_OK)
		return WD_EIO;
	text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return WD_ENOMEM;
	len = strlen(text);
	snprintf(path, sizeof(path), "%s/payloads/%s/%lld-%s.json", l->dir,
	    tenant, (long long)expires, decision_id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(text);
		return WD_EIO;
	}
	n = write(fd, text, len);
	if (n != (ssize_t)len || close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		rc = WD_EIO;
	}
	free(text);
	return rc;
}

/* Delete payload files of tenant (all tenants if NULL) that expired
 * before now (all of them if now is 0).  Returns how many. */
static size_t
sweep(const char *dir, const char *tenant, time_t now)
{
	char base[1024], tdir[1400], file[1800];
	struct dirent *t, *f;
	size_t removed = 0;
	DIR *td, *fd;

	snprintf(base, sizeof(base), "%s/payloads", dir);
	if ((td = opendir(base)) == NULL)
		return 0;
	while ((t = readdir(td)) != NULL) {
		if (t->d_name[0] == '.' ||
		    (tenant != NULL && strcmp(t->d_name, tenant) != 0))
			continue;
		snprintf(tdir, sizeof(tdir), "%s/%s", base, t->d_name);
		if ((fd = opendir(tdir)) == NULL)
			continue;
		while ((f = readdir(fd)) != NULL) {
			long long exp;

			if (f->d_name[0] == '.' ||
			    sscanf(f->d_name, "%lld-", &exp) != 1)
				continue;
			if (now != 0 && exp > (long long)now)
				continue;
			snprintf(file, sizeof(file), "%s/%s", tdir, f->d_name);
			if (unlink(file) == 0)
				removed++;
		}
		closedir(fd);
		if (tenant != NULL)
			rmdir(tdir);
	}
	closedir(td);
	return removed;
}

size_t
aud_payload_sweep(const char *dir)
{
	return sweep(dir, NULL, time(NULL));
}

size_t
aud_payload_purge(const char *dir, const char *tenant)
{
	return sweep(dir, tenant, 0);
}
