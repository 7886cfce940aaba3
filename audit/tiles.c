/*
 * tiles.c - the Merkle tree on disk beside the segments, so that proofs
 * of a log of millions of records read a few dozen hashes instead of the
 * whole log:
 *
 *   DIR/tree/level-NN   the complete nodes of level NN (00: the leaves),
 *                       32 bytes each, in index order
 *   DIR/tree/checkpoints  one line per checkpoint record:
 *                       "<seq> <segment number> <byte offset>\n"
 *
 * All of it is derived from the segments: the writer appends to it (the
 * nodes of a batch go out with the batch's sync), aud_open checks it
 * against the log's tail and rebuilds it from the segments when it does
 * not match, and nothing verifies against it: a proof made from a stale
 * node simply fails against the signed root.
 */
#include "audit/aud_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES (64u << 20)	/* no record line is longer */

static void
level_path(char *buf, size_t len, const char *dir, unsigned level)
{
	snprintf(buf, len, "%s/" AUD_TREE_DIR "/level-%02u", dir, level);
}

static int
level_fd(struct aud_tree *t, unsigned level)
{
	char path[600];

	if (t->fd[level] < 0) {
		level_path(path, sizeof(path), t->logdir, level);
		t->fd[level] = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC,
		    0600);
	}
	return t->fd[level];
}

static void
pend_node(void *ctx, unsigned level, const unsigned char h[32])
{
	struct aud_tree *t = ctx;
	struct aud_pend *p = &t->pend[level];

	if (p->len + 32 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4096;
		unsigned char *np = realloc(p->p, cap);

		if (np == NULL) {
			t->broken = true;	/* rebuilt at the next open */
			return;
		}
		p->p = np;
		p->cap = cap;
	}
	memcpy(p->p + p->len, h, 32);
	p->len += 32;
}

void
aud_tree_add(struct aud_tree *t, const unsigned char leaf[32])
{
	aud_frontier_push(&t->fr, leaf, pend_node, t);
}

static void
write_pend(struct aud_tree *t, struct aud_pend *pend)
{
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		struct aud_pend *p = &pend[k];
		int fd;

		if (p->len == 0)
			continue;
		fd = level_fd(t, k);
		if (fd < 0 || write(fd, p->p, p->len) != (ssize_t)p->len)
			t->broken = true;
		p->len = 0;
	}
}

void
aud_tree_take(struct aud_tree *t)
{
	/* What was taken before is written first: the levels stay in
	 * index order. */
	write_pend(t, t->out);
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		struct aud_pend p = t->out[k];

		t->out[k] = t->pend[k];
		t->pend[k] = p;
	}
}

void
aud_tree_write_taken(struct aud_tree *t)
{
	write_pend(t, t->out);
}

void
aud_tree_flush(struct aud_tree *t)
{
	write_pend(t, t->out);
	write_pend(t, t->pend);
}

void
aud_tree_note_checkpoint(struct aud_tree *t, uint64_t seq, uint64_t segno,
    uint64_t offset)
{
	char path[600], line[80];
	int n;

	aud_tree_flush(t);
	if (t->cpfd < 0) {
		snprintf(path, sizeof(path), "%s/" AUD_TREE_DIR "/checkpoints",
		    t->logdir);
		t->cpfd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	n = snprintf(line, sizeof(line), "%llu %llu %llu\n",
	    (unsigned long long)seq, (unsigned long long)segno,
	    (unsigned long long)offset);
	if (t->cpfd < 0 || write(t->cpfd, line, (size_t)n) != n)
		t->broken = true;
}

void
aud_tree_free(struct aud_tree *t)
{
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		if (t->fd[k] >= 0)
			close(t->fd[k]);
		t->fd[k] = -1;
		free(t->pend[k].p);
		memset(&t->pend[k], 0, sizeof(t->pend[k]));
		free(t->out[k].p);
		memset(&t->out[k], 0, sizeof(t->out[k]));
	}
	if (t->cpfd >= 0)
		close(t->cpfd);
	t->cpfd = -1;
	free(t->logdir);
	t->logdir = NULL;
}

void
aud_tree_init(struct aud_tree *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++)
		t->fd[k] = -1;
	t->cpfd = -1;
}

/* ---- reading ---- */

static enum wd_err
read_node(int fd, uint64_t index, unsigned char out[32])
{
	return pread(fd, out, 32, (off_t)(index * 32)) == 32 ? WD_OK :
	    WD_ENOTFOUND;
}

enum wd_err
aud_tree_reader_open(struct aud_tree_reader *r, const char *dir)
{
	char path[600];

	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		level_path(path, sizeof(path), dir, k);
		r->fd[k] = open(path, O_RDONLY | O_CLOEXEC);
	}
	return r->fd[0] >= 0 ? WD_OK : WD_ENOTFOUND;
}

void
aud_tree_reader_close(struct aud_tree_reader *r)
{
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++)
		if (r->fd[k] >= 0)
			close(r->fd[k]);
}

enum wd_err
aud_tree_reader_get(void *ctx, unsigned level, uint64_t index,
    unsigned char out[32])
{
	struct aud_tree_reader *r = ctx;

	if (level >= AUD_MAX_LEVELS || r->fd[level] < 0)
		return WD_ENOTFOUND;
	return read_node(r->fd[level], index, out);
}

char *
aud_read_line_at(const char *dir, uint64_t segno, uint64_t offset,
    size_t *len)
{
	char path[600];
	size_t cap = 4096, got = 0;
	char *buf = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/" AUD_SEGMENT_FMT, dir,
	    (unsigned long long)segno);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	for (;;) {
		char *np = realloc(buf, cap + 1), *nl;
		ssize_t n;

		if (np == NULL)
			break;
		buf = np;
		n = pread(fd, buf + got, cap - got, (off_t)(offset + got));
		if (n <= 0)
			break;
		got += (size_t)n;
		if ((nl = memchr(buf, '\n', got)) != NULL) {
			*len = (size_t)(nl - buf);
			buf[*len] = '\0';
			close(fd);
			return buf;
		}
		if (cap >= LINE_MAX_BYTES)
			break;
		cap *= 2;
	}
	close(fd);
	free(buf);
	return NULL;
}

enum wd_err
aud_tree_checkpoints(const char *dir, struct aud_cp_entry **out, size_t *n)
{
	char path[600];
	size_t len = 0, cap = 0;
	char *text;

	*out = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/" AUD_TREE_DIR "/checkpoints", dir);
	if ((text = wd_slurp(path, 1u << 30, &len)) == NULL)
		return WD_ENOTFOUND;
	for (size_t off = 0; off < len; ) {
		char *nl = memchr(text + off, '\n', len - off);
		unsigned long long a, b, c;

		if (nl == NULL)
			break;		/* a torn last entry */
		*nl = '\0';
		if (sscanf(text + off, "%llu %llu %llu", &a, &b, &c) == 3) {
			if (*n == cap) {
				struct aud_cp_entry *nv = realloc(*out,
				    (cap = cap ? cap * 2 : 64) * sizeof(**out));

				if (nv == NULL) {
					free(text);
					return WD_ENOMEM;
				}
				*out = nv;
			}
			(*out)[(*n)++] = (struct aud_cp_entry){ a, b, c };
		}
		off = (size_t)(nl - text) + 1;
	}
	free(text);
	return WD_OK;
}

/* ---- recovery ---- */

/* The checkpoint at e, parsed; NULL if the segment does not hold it. */
json_t *
aud_checkpoint_at(const char *dir, const struct aud_cp_entry *e)
{
	char hash[AUD_HASH_HEX + 1];
	size_t len, clen;
	char *line = aud_read_line_at(dir, e->segno, e->offset, &len);
	char *canon = line ? aud_split_line(line, len, hash, &clen) : NULL;
	json_t *j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;

	free(line);
	free(canon);
	if (j == NULL || (uint64_t)json_integer_value(json_object_get(j, "seq"))
	    != e->seq || strcmp(json_string_value(json_object_get(j, "kind")) ?:
	    "", "checkpoint") != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool
is_checkpoint_line(const char *canon, size_t clen)
{
	json_t *j;
	bool yes;

	if (memmem(canon, clen, "\"kind\":\"checkpoint\"", 19) == NULL)
		return false;
	j = json_loadb(canon, clen, JSON_ALLOW_NUL, NULL);
	yes = strcmp(json_string_value(json_object_get(j, "kind")) ?: "",
	    "checkpoint") == 0;
	json_decref(j);
	return yes;
}

/* Everything again from the segments. */
static enum wd_err
rebuild(struct aud_tree *t, uint64_t *leaves)
{
	char tdir[600], path[600];
	size_t nsegs;
	char **segs = aud_segments(t->logdir, &nsegs);
	enum wd_err rc = WD_OK;

	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		if (t->fd[k] >= 0)
			close(t->fd[k]);
		t->fd[k] = -1;
		level_path(path, sizeof(path), t->logdir, k);
		unlink(path);
		t->pend[k].len = 0;
		t->out[k].len = 0;
	}
	if (t->cpfd >= 0)
		close(t->cpfd);
	t->cpfd = -1;
	snprintf(tdir, sizeof(tdir), "%s/" AUD_TREE_DIR "/checkpoints", t->logdir);
	unlink(tdir);
	memset(&t->fr, 0, sizeof(t->fr));
	t->broken = false;
	for (size_t s = 0; s < nsegs && rc == WD_OK; s++) {
		unsigned long long segno = 0;
		size_t len = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/%s", t->logdir, segs[s]);
		sscanf(segs[s], "audit-%06llu", &segno);
		if ((text = wd_slurp(path, SIZE_MAX, &len)) == NULL) {
			rc = WD_EIO;
			break;
		}
		for (size_t off = 0; off < len; ) {
			char *nl = memchr(text + off, '\n', len - off), hash[65];
			size_t ll = nl ? (size_t)(nl - text) - off : len - off, clen;
			char *canon;
			unsigned char leaf[32];

			if (nl == NULL)
				break;
			canon = aud_split_line(text + off, ll, hash, &clen);
			if (canon != NULL) {
				aud_leaf_hash(canon, clen, leaf);
				if (is_checkpoint_line(canon, clen))
					aud_tree_note_checkpoint(t, t->fr.size + 1, segno,
					    off);
				aud_tree_add(t, leaf);
				free(canon);
			}
			off += ll + 1;
			if (t->pend[0].len >= (1u << 20))
				aud_tree_flush(t);
		}
		free(text);
	}
	aud_tree_flush(t);
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	*leaves = t->fr.size;
	return rc == WD_OK && t->broken ? WD_EIO : rc;
}

/* Are the files a tree of exactly size leaves whose last leaf is last?
 * Extra nodes (a cut torn tail) are cut; the frontier is loaded. */
static bool
check(struct aud_tree *t, uint64_t size, const unsigned char last[32])
{
	unsigned char a[32], b[32], h[32];

	memset(&t->fr, 0, sizeof(t->fr));
	for (unsigned k = 0; k < AUD_MAX_LEVELS; k++) {
		uint64_t want = size >> k;
		int fd = want > 0 ? level_fd(t, k) : -1;
		struct stat st;

		if (want == 0) {
			char path[600];

			level_path(path, sizeof(path), t->logdir, k);
			if (truncate(path, 0) != 0 && errno != ENOENT)
				return false;
			continue;
		}
		if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size < want * 32)
			return false;
		if ((uint64_t)st.st_size > want * 32 &&
		    ftruncate(fd, (off_t)(want * 32)) != 0)
			return false;
		/* Each level's last node is its children's. */
		if (k > 0 && (read_node(fd, want - 1, h) != WD_OK ||
		    read_node(t->fd[k - 1], 2 * (want - 1), a) != WD_OK ||
		    read_node(t->fd[k - 1], 2 * want - 1, b) != WD_OK))
			return false;
		if (k > 0) {
			unsigned char c[32];

			aud_node_hash(a, b, c);
			if (memcmp(c, h, 32) != 0)
				return false;
		}
		if (k == 0 && (read_node(fd, want - 1, h) != WD_OK ||
		    memcmp(h, last, 32) != 0))
			return false;
		if (want & 1 && read_node(fd, want - 1, t->fr.node[k]) != WD_OK)
			return false;
	}
	t->fr.size = size;
	return true;
}

/* The checkpoint index: entries past the log's end go; the last must be
 * where it says; the last segment's checkpoints (found by recovery) are
 * added if a crash lost them. */
static bool
check_index(struct aud_tree *t, uint64_t size, const struct aud_cp_entry *tail,
    size_t ntail)
{
	struct aud_cp_entry *v = NULL;
	size_t n = 0, keep;
	char path[600];
	bool ok = true;
	json_t *j;

	if (aud_tree_checkpoints(t->logdir, &v, &n) == WD_ENOMEM)
		return false;
	for (keep = 0; keep < n && v[keep].seq <= size; keep++)
		;
	if (keep > 0 && (j = aud_checkpoint_at(t->logdir, &v[keep - 1])) == NULL)
		ok = false;
	else if (keep > 0)
		json_decref(j);
	if (ok && keep < n) {
		/* Rewrite the index without what is past the end. */
		FILE *f;

		snprintf(path, sizeof(path), "%s/" AUD_TREE_DIR "/checkpoints",
		    t->logdir);
		if ((f = fopen(path, "w")) == NULL)
			ok = false;
		for (size_t i = 0; ok && i < keep; i++)
			fprintf(f, "%llu %llu %llu\n", (unsigned long long)v[i].seq,
			    (unsigned long long)v[i].segno,
			    (unsigned long long)v[i].offset);
		if (f != NULL && fclose(f) != 0)
			ok = false;
	}
	for (size_t i = 0; ok && i < ntail; i++)
		if (keep == 0 || tail[i].seq > v[keep - 1].seq)
			aud_tree_note_checkpoint(t, tail[i].seq, tail[i].segno,
			    tail[i].offset);
	free(v);
	return ok && !t->broken;
}

/* The seq of a segment's first record; 0 if none. */
static uint64_t
first_seq(const char *dir, uint64_t segno)
{
	size_t len;
	char *line = aud_read_line_at(dir, segno, 0, &len);
	char hash[AUD_HASH_HEX + 1], *canon;
	size_t clen;
	json_t *j;
	uint64_t seq = 0;

	if (line == NULL)
		return 0;
	canon = aud_split_line(line, len, hash, &clen);
	j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
	seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	json_decref(j);
	free(canon);
	free(line);
	return seq;
}

/*
 * After a crash the files usually hold all but the last few leaves (they
 * are written after their records): add the missing ones from the
 * segments' tail instead of reading the whole log again.
 */
static bool
catch_up(struct aud_tree *t, uint64_t size, const unsigned char last[32])
{
	char path[600];
	struct stat st;
	unsigned char h[32];
	uint64_t have, segno = 0;
	size_t nsegs;
	char **segs;
	bool ok = false;

	level_path(path, sizeof(path), t->logdir, 0);
	if (stat(path, &st) != 0 || st.st_size % 32 != 0)
		return false;
	have = (uint64_t)st.st_size / 32;
	if (have == 0 || have >= size || level_fd(t, 0) < 0 ||
	    read_node(t->fd[0], have - 1, h) != WD_OK || !check(t, have, h))
		return false;
	segs = aud_segments(t->logdir, &nsegs);
	for (size_t i = nsegs; i > 0 && segno == 0; i--) {
		unsigned long long no = 0;
		uint64_t fs;

		sscanf(segs[i - 1], "audit-%06llu", &no);
		fs = first_seq(t->logdir, no);
		if (fs != 0 && fs <= have + 1)
			segno = no;
	}
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	for (; segno != 0 && t->fr.size < size; segno++) {
		size_t len = 0;
		char *text;

		snprintf(path, sizeof(path), "%s/" AUD_SEGMENT_FMT, t->logdir,
		    (unsigned long long)segno);
		if ((text = wd_slurp(path, SIZE_MAX, &len)) == NULL)
			break;
		for (size_t off = 0; off < len && t->fr.size < size; ) {
			char *nl = memchr(text + off, '\n', len - off), hash[65];
			size_t ll = nl ? (size_t)(nl - text) - off : len - off, clen;
			char *canon;
			json_t *j;
			uint64_t seq;
			unsigned char leaf[32];

			if (nl == NULL)
				break;
			canon = aud_split_line(text + off, ll, hash, &clen);
			j = canon ? json_loadb(canon, clen, JSON_ALLOW_NUL, NULL) : NULL;
			seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
			if (j != NULL && seq == t->fr.size + 1) {
				aud_leaf_hash(canon, clen, leaf);
				if (strcmp(json_string_value(json_object_get(j, "kind")) ?:
				    "", "checkpoint") == 0)
					aud_tree_note_checkpoint(t, seq, segno, off);
				aud_tree_add(t, leaf);
			}
			json_decref(j);
			free(canon);
			off += ll + 1;
		}
		free(text);
	}
	aud_tree_flush(t);
	if (t->fr.size == size && !t->broken) {
		level_fd(t, 0);
		ok = read_node(t->fd[0], size - 1, h) == WD_OK &&
		    memcmp(h, last, 32) == 0;
	}
	return ok;
}

enum wd_err
aud_tree_open(struct aud_tree *t, const char *dir, uint64_t size,
    const unsigned char last[32], const struct aud_cp_entry *tail,
    size_t ntail, bool *rebuilt)
{
	char tdir[600];
	uint64_t leaves = 0;
	enum wd_err rc;

	*rebuilt = false;
	if ((t->logdir = strdup(dir)) == NULL)
		return WD_ENOMEM;
	snprintf(tdir, sizeof(tdir), "%s/" AUD_TREE_DIR, dir);
	if (mkdir(tdir, 0700) != 0 && errno != EEXIST)
		return WD_EIO;
	if (check(t, size, last) && check_index(t, size, tail, ntail))
		return WD_OK;
	if (catch_up(t, size, last) && check(t, size, last) &&
	    check_index(t, size, tail, ntail))
		return WD_OK;
	*rebuilt = true;
	if ((rc = rebuild(t, &leaves)) != WD_OK)
		return rc;
	return leaves == size ? WD_OK : WD_EIO;
}
