#!/bin/sh
# replay.sh DIR - run every fuzz target in DIR over its seed corpus.
#
# For each tests/fuzz/fuzz_NAME.c, runs DIR/fuzz_NAME (or DIR/fuzz/fuzz_NAME,
# so both `replay.sh build/fuzz` as `make test-fuzz` calls it and
# `replay.sh build` work) on tests/fuzz/corpus/NAME/.  A missing binary or
# corpus directory is a failure, as is any replay that does not exit 0
# (a crash, an abort() from a target's invariant, a sanitizer report).
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0

for src in "$here"/fuzz_*.c; do
	[ -e "$src" ] || continue
	target=$(basename "$src" .c)
	name=${target#fuzz_}
	corpus=$here/corpus/$name
	bin=$dir/$target
	[ -x "$bin" ] || [ ! -x "$dir/fuzz/$target" ] || bin=$dir/fuzz/$target
	if [ ! -x "$bin" ]; then
		echo "$target: FAILED: no binary $dir/$target (make it first)"
		failed=$((failed + 1))
		continue
	fi
	if [ ! -d "$corpus" ]; then
		echo "$target: FAILED: no corpus directory $corpus"
		failed=$((failed + 1))
		continue
	fi
	if "$bin" "$corpus"; then
		passed=$((passed + 1))
	else
		echo "$target: FAILED (exit $?)"
		failed=$((failed + 1))
	fi
done

echo "fuzz replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
