/*
 * load_rules.h - a fuzz target's fixed rules (a YAML text), loaded once
 * through a temporary file as warden loads any rules file.  Aborts when
 * they do not load: the target would test nothing.
 */
#ifndef FUZZ_LOAD_RULES_H
#define FUZZ_LOAD_RULES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/pol.h"

static struct pol_snapshot *
fuzz_load_rules(const char *yaml)
{
	char path[] = "/tmp/warden-fuzz-rules-XXXXXX";
	int fd = mkstemp(path);
	FILE *devnull = fopen("/dev/null", "w");
	size_t len = strlen(yaml);
	struct pol_snapshot *snap = NULL;

	if (fd < 0 || write(fd, yaml, len) != (ssize_t)len || devnull == NULL)
		abort();
	close(fd);
	if (pol_load(path, devnull, &snap) != WD_OK)
		abort();
	unlink(path);
	fclose(devnull);
	return snap;
}

#endif /* FUZZ_LOAD_RULES_H */
