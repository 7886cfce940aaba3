/*
 * replay.c - main() for a fuzz target built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, or
 * on every file in a named directory (not recursive).  `make test-fuzz`
 * replays the corpus this way, so each crash once found stays fixed.
 *
 * Each input gets its own exact-size heap buffer, as under libFuzzer, so
 * that ASan sees a read past its end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *prog;

/* Run the target on one file; false if the file cannot be read. */
static bool
replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL) {
		fprintf(stderr, "%s: %s: out of memory\n", prog, path);
		close(fd);
		return false;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: %s: short read\n", prog, path);
			free(buf);
			close(fd);
			return false;
		}
		have += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, have);
	free(buf);
	return true;
}

int
main(int argc, char **argv)
{
	size_t n = 0;
	bool ok = true;

	prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", prog);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct dirent **ents;
		struct stat st;
		int m;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[i],
			    strerror(errno));
			ok = false;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]))
				n++;
			else
				ok = false;
			continue;
		}
		/* Sorted, so a crash reproduces in the same order. */
		m = scandir(argv[i], &ents, NULL, alphasort);
		if (m < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[i],
			    strerror(errno));
			ok = false;
			continue;
		}
		for (int j = 0; j < m; j++) {
			char *p;

			if (ents[j]->d_name[0] != '.' &&
			    asprintf(&p, "%s/%s", argv[i], ents[j]->d_name) >= 0) {
				if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
					if (replay_file(p))
						n++;
					else
						ok = false;
				}
				free(p);
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("%s: %zu inputs replayed\n", prog, n);
	return ok ? 0 : 1;
}
