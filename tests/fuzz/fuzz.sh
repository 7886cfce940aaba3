#!/bin/sh
# fuzz.sh [SECONDS] - run every fuzz target under libFuzzer for SECONDS
# (default 60) each.  `make fuzz` calls it with FUZZ_SECONDS; FUZZ_TARGETS
# (names, e.g. "rules jsonrpc") runs only those.
#
# Each target is built with clang -fsanitize=fuzzer,address,undefined from
# the library sources themselves (build/libwarden.a is gcc-built, without
# coverage), objects in build/libfuzzer/.  A target runs on a copy of its
# seed corpus in build/libfuzzer/corpus/NAME, so the inputs it discovers
# land there and not in the repository.  Crashes, leaks and hangs are
# written as build/libfuzzer/artifacts/NAME/crash-* (leak-*, timeout-*,
# oom-*); reproduce one with `build/fuzz/fuzz_NAME FILE` or
# `build/libfuzzer/fuzz_NAME FILE`, and once fixed, add it to
# tests/fuzz/corpus/NAME/ so `make test-fuzz` replays it for ever.
#
# To keep the new inputs that add coverage, merge them back into the seed
# corpus (only inputs that reach new code are copied):
#   build/libfuzzer/fuzz_NAME -merge=1 tests/fuzz/corpus/NAME \
#       build/libfuzzer/corpus/NAME
# then check the size of tests/fuzz/corpus (keep it well under 1 MB).
set -u

secs=${1:-60}
case $secs in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
out=build/libfuzzer
CC=${FUZZ_CC:-clang}
PKGS="libevent libevent_pthreads libcurl openssl yaml-0.1 jansson tss2-esys tss2-tctildr tss2-mu tss2-rc hiredis libhs"
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || exit 2
PKG_LIBS=$(pkg-config --libs $PKGS) || exit 2
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# The Makefile's flags, minus -Werror: clang warns about things gcc does
# not, and a warning must not stop a fuzzing run.
CFLAGS="-std=c17 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wshadow \
-Wstrict-prototypes -Wmissing-prototypes -Wno-format-nonliteral \
-D_GNU_SOURCE -I. $PKG_CFLAGS $SAN"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz.sh: $CC not found (libFuzzer needs clang)" >&2
	exit 2
fi

# Compile one source to $out/<source>.o when the object is stale.
compile() {
	obj=$out/${1%.c}.o
	mkdir -p "$(dirname "$obj")"
	if [ ! -f "$obj" ] || [ "$1" -nt "$obj" ] || \
	    [ -n "$(find common gateway policy secrets audit detect -name '*.h' \
	    -newer "$obj" 2>/dev/null | head -n 1)" ]; then
		$CC $CFLAGS -c -o "$obj" "$1" || return 1
	fi
	echo "$obj"
}

# The library: what the Makefile puts in libwarden.a.
libobjs=
for src in common/*.c policy/*.c secrets/*.c audit/*.c detect/*.c gateway/*.c; do
	[ -f "$src" ] || continue
	[ "$src" = gateway/main.c ] && continue
	obj=$(compile "$src") || { echo "fuzz.sh: cannot compile $src" >&2; exit 1; }
	libobjs="$libobjs $obj"
done

total=0
crashed=0
for src in tests/fuzz/fuzz_*.c; do
	target=$(basename "$src" .c)
	name=${target#fuzz_}
	case " ${FUZZ_TARGETS:-$name} " in
	*" $name "*) ;;
	*) continue ;;
	esac
	bin=$out/$target
	corpus=$out/corpus/$name
	arts=$out/artifacts/$name
	log=$out/$target.log

	obj=$(compile "$src") || { echo "$target: build failed"; crashed=$((crashed + 1)); continue; }
	# shellcheck disable=SC2086
	if ! $CC $SAN -o "$bin" "$obj" $libobjs $PKG_LIBS -lpthread; then
		echo "$target: link failed"
		crashed=$((crashed + 1))
		continue
	fi
	mkdir -p "$corpus" "$arts"
	if [ -d "tests/fuzz/corpus/$name" ]; then
		# Seeds that are not in the working copy yet; keep earlier finds.
		for f in "tests/fuzz/corpus/$name"/*; do
			[ -f "$f" ] && [ ! -e "$corpus/$(basename "$f")" ] && \
			    cp "$f" "$corpus/"
		done
	fi
	dict=
	[ -f "tests/fuzz/dict/$name.dict" ] && dict=-dict=tests/fuzz/dict/$name.dict
	before=$(ls "$arts" | wc -l)
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$arts/" $dict "$corpus" \
	    >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	after=$(ls "$arts" | wc -l)
	if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
		echo "$target: ${execs:-?} executions, CRASH (exit $rc):" \
		    "$(ls -t "$arts" | head -n 1 | sed "s#^#$arts/#")," \
		    "log $log"
		crashed=$((crashed + 1))
	else
		echo "$target: ${execs:-?} executions, no crash" \
		    "($(ls "$corpus" | wc -l) inputs in $corpus)"
	fi
	total=$((total + 1))
done

echo "fuzz: $total targets, $crashed with a crash or build failure"
[ "$crashed" -eq 0 ]
