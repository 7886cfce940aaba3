/*
 * tail.c - `warden audit tail DIR [-f]`: one readable line per record,
 * following the live log across segment rotation (like journalctl -f) by
 * polling, and checking each line's hash and its link to the line before
 * as it goes.  A broken link is said loudly, and tail exits 1: a reader
 * watching the log must not keep watching a chain that no longer holds.
 *
 * It starts from the first segment: the chain can only be checked from
 * its beginning.  Lines are read with a hard limit (TAIL_MAX_LINE).
 */
#include "audit/aud_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAIL_MAX_LINE ((size_t)4 << 20)

struct tailer {
	const struct aud_tail_opts *o;
	FILE *out;
	char prev[AUD_HASH_HEX + 1];
	uint64_t seq;
	char *buf;			/* a partial line */
	size_t len, cap;
};

/* Text from the log on a terminal: no control characters. */
static void
put_clean(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static const char *
str(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));

	return s ? s : "-";
}

static void
print_record(struct tailer *t, json_t *j)
{
	const char *kind = str(j, "kind");
	json_t *v;
	size_t i;

	if (t->o->tenant != NULL && strcmp(str(j, "tenant"), t->o->tenant) != 0)
		return;
	if (t->o->verdict != NULL && strcmp(str(j, "verdict"), t->o->verdict))
		return;
	fprintf(t->out, "%llu ", (unsigned long long)t->seq);
	put_clean(t->out, str(j, "ts"));
	fputc(' ', t->out);
	put_clean(t->out, kind);
	if (strcmp(kind, "request") == 0 || strcmp(kind, "stream_end") == 0) {
		fputs(" tenant=", t->out);
		put_clean(t->out, str(j, "tenant"));
		if (json_is_string(json_object_get(j, "app"))) {
			fputs(" app=", t->out);
			put_clean(t->out, str(j, "app"));
		}
		if (json_is_string(json_object_get(j, "agent"))) {
			fputs(" agent=", t->out);
			put_clean(t->out, str(j, "agent"));
		}
		fputs(" verdict=", t->out);
		put_clean(t->out, str(j, "verdict"));
		fprintf(t->out, " status=%lld", (long long)json_integer_value(
		    json_object_get(j, "status")));
		if (json_is_string(json_object_get(j, "route"))) {
			fputs(" route=", t->out);
			put_clean(t->out, str(j, "route"));
			fputc('(', t->out);
			put_clean(t->out, str(j, "route_country"));
			fputc(')', t->out);
		}
		if (json_is_string(json_object_get(j, "code"))) {
			fputs(" code=", t->out);
			put_clean(t->out, str(j, "code"));
		}
		json_array_foreach(json_object_get(j, "rules"), i, v) {
			fputs(i == 0 ? " rules=" : ",", t->out);
			put_clean(t->out, json_string_value(v));
		}
	} else if (strcmp(kind, "checkpoint") == 0) {
		/* Format 2 signs a tree head; format 1 the record before it.
		 * tail checks the chain, not signatures (`audit verify`). */
		if (json_is_integer(json_object_get(j, "tree_size"))) {
			fprintf(t->out, " signs tree of %lld records root=",
			    (long long)json_integer_value(json_object_get(j,
			    "tree_size")));
			fprintf(t->out, "%.16s", str(j, "root"));
			if (json_is_integer(json_object_get(j, "counter")))
				fprintf(t->out, " counter=%lld", (long long)
				    json_integer_value(json_object_get(j, "counter")));
		} else {
			fprintf(t->out, " signs seq %lld", (long long)
			    json_integer_value(json_object_get(j, "signed_seq")));
		}
		fputs(" (signature not checked here)", t->out);
	} else if (strcmp(kind, "rollback_detected") == 0) {
		fprintf(t->out, " *** log counter %lld behind the TPM's %lld: ",
		    (long long)json_integer_value(json_object_get(j,
		    "log_counter")), (long long)json_integer_value(
		    json_object_get(j, "tpm_counter")));
		put_clean(t->out, str(j, "reason"));
		fputs(" ***", t->out);
	} else if (strcmp(kind, "purge") == 0) {
		fputs(" reason=", t->out);
		put_clean(t->out, str(j, "reason"));
		fputs(" tenant=", t->out);
		put_clean(t->out, str(j, "tenant"));
		fprintf(t->out, " keys=%zu payloads=%lld", json_array_size(
		    json_object_get(j, "keys")), (long long)json_integer_value(
		    json_object_get(j, "payloads")));
	} else if (strncmp(kind, "secret_", 7) == 0) {
		fputs(" name=", t->out);
		put_clean(t->out, str(j, "name"));
		fputs(" result=", t->out);
		put_clean(t->out, str(j, "result"));
	} else if (strcmp(kind, "inbox_rejected") == 0) {
		fputs(" file=", t->out);
		put_clean(t->out, str(j, "file"));
		fputs(" reason=", t->out);
		put_clean(t->out, str(j, "reason"));
	}
	if (json_is_object(json_object_get(j, "by"))) {
		fputs(" by=", t->out);
		put_clean(t->out, str(json_object_get(j, "by"), "user"));
		fputc('@', t->out);
		put_clean(t->out, str(json_object_get(j, "by"), "host"));
	}
	fputc('\n', t->out);
}

/* One full line: 0, or 1 after saying loudly where the chain broke. */
static int
take_line(struct tailer *t, const char *seg, const char *line, size_t len)
{
	char hash[AUD_HASH_HEX + 1];
	size_t clen;
	char *canon = aud_split_line(line, len, hash, &clen);
	json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
	const char *p = json_string_value(json_object_get(j, "prev"));
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	int rc = 0;

	if (j == NULL || p == NULL || strcmp(p, t->prev) != 0 ||
	    seq != t->seq + 1 || !aud_check_line(canon, clen, p, hash)) {
		fflush(t->out);
		fprintf(t->out, "*** CHAIN BROKEN in %s after seq %llu: %s ***\n",
		    seg, (unsigned long long)t->seq, j == NULL ? "not an audit "
		    "record" : seq != t->seq + 1 ? "records missing or reordered" :
		    p == NULL || strcmp(p, t->prev) != 0 ? "prev does not link" :
		    "hash does not match: the record was altered");
		fprintf(stderr, "warden: audit chain broken in %s after seq %llu\n",
		    seg, (unsigned long long)t->seq);
		rc = 1;
	} else {
		t->seq = seq;
		memcpy(t->prev, hash, sizeof(t->prev));
		print_record(t, j);
	}
	json_decref(j);
	free(canon);
	return rc;
}

/* Read what is new in seg from *off; complete lines are taken. */
static int
read_more(struct tailer *t, const char *dir, const char *seg, off_t *off)
{
	char path[1024], chunk[65536];
	FILE *f;
	size_t n;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, seg);
	if ((f = fopen(path, "rb")) == NULL || fseeko(f, *off, SEEK_SET) != 0) {
		fprintf(stderr, "warden: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return 2;
	}
	while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		*off += (off_t)n;
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (chunk[i] == '\n') {
				rc = take_line(t, seg, t->buf ? t->buf : "", t->len);
				t->len = 0;
				continue;
			}
			if (t->len + 1 > TAIL_MAX_LINE) {
				fprintf(t->out, "*** CHAIN BROKEN in %s: a line longer "
				    "than %zu bytes ***\n", seg, TAIL_MAX_LINE);
				rc = 1;
				break;
			}
			if (t->len + 1 > t->cap) {
				size_t nc = t->cap ? t->cap * 2 : 4096;
				char *nb = realloc(t->buf, nc);

				if (nb == NULL) {
					rc = 2;
					break;
				}
				t->buf = nb;
				t->cap = nc;
			}
			t->buf[t->len++] = chunk[i];
		}
	}
	fclose(f);
	fflush(t->out);
	return rc;
}

int
aud_tail(const char *dir, const struct aud_tail_opts *o, FILE *out)
{
	struct tailer t = { .o = o, .out = out };
	size_t cur = 0;			/* index into the segment list */
	off_t off = 0;
	int rc = 0;

	memset(t.prev, '0', AUD_HASH_HEX);
	for (;;) {
		size_t nsegs;
		char **segs = aud_segments(dir, &nsegs);
		bool moved = false;

		if (nsegs == 0 && !o->follow) {
			fprintf(stderr, "warden: %s: no audit segments\n", dir);
			rc = 2;
		}
		if (cur < nsegs)
			rc = read_more(&t, dir, segs[cur], &off);
		/* Rotation: the writer starts a new segment only after the last
		 * line of this one is whole. */
		if (rc == 0 && cur + 1 < nsegs) {
			if (t.len != 0) {
				fprintf(out, "*** CHAIN BROKEN: %s ends in a torn line "
				    "***\n", segs[cur]);
				rc = 1;
			} else {
				cur++;
				off = 0;
				moved = true;
			}
		}
		for (size_t i = 0; i < nsegs; i++)
			free(segs[i]);
		free(segs);
		if (rc != 0)
			break;
		if (moved)
			continue;
		if (!o->follow || (o->stop != NULL && *o->stop))
			break;
		{
			struct timespec ts = { o->poll_ms / 1000,
				(long)(o->poll_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		if (o->stop != NULL && *o->stop)
			break;
	}
	free(t.buf);
	return rc;
}
