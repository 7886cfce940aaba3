#!/bin/sh
# fresh.sh [TARGET] - `make TARGET` (default: run) as on a fresh machine
# where no -dev package is installed yet, without uninstalling anything:
# a PATH whose pkg-config, dpkg-query and apt-get are stand-ins.
#
#   pkg-config   fails and prints nothing (as when the .pc files are
#                missing) until apt-get "installed" the packages; then it
#                is the real one;
#   dpkg-query   says no package is installed until then;
#   apt-get      "installs" by creating the flag file.
#
# So scripts/deps.sh runs for real, finds everything missing and calls
# apt-get; the Makefile must not have asked pkg-config before that, or
# it links without libraries (the bug this guards against: hundreds of
# undefined references).  The build goes to a fresh directory; the check
# afterwards: the target succeeded, apt-get ran, and no pkg-config call
# answered empty for a build step.  The real test (needs a disposable
# machine): apt-get purge the -dev packages, then `make run` and
# `make test` from a clean clone (README.md, "Tests").
set -eu

target=${1:-run}
root=$(cd "$(dirname "$0")/../.." && pwd)
sim=$(mktemp -d /tmp/warden-fresh.XXXXXX)
# FRESH_LOG=FILE keeps make's output.
trap '[ -n "${FRESH_LOG:-}" ] && cp "$sim/make.log" "$FRESH_LOG"; rm -rf "$sim"' \
    EXIT INT TERM
mkdir "$sim/bin"
real_pc=$(command -v pkg-config)
real_dq=$(command -v dpkg-query)

cat >"$sim/bin/pkg-config" <<EOF
#!/bin/sh
if [ -e "$sim/installed" ]; then
	echo "after $*" >>"$sim/pkg-config.log"
	exec "$real_pc" "\$@"
fi
echo "before \$*" >>"$sim/pkg-config.log"
exit 1
EOF
cat >"$sim/bin/dpkg-query" <<EOF
#!/bin/sh
[ -e "$sim/installed" ] && exec "$real_dq" "\$@"
exit 1
EOF
cat >"$sim/bin/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >>"$sim/apt.log"
case "\$*" in *install*) touch "$sim/installed" ;; esac
exit 0
EOF
chmod +x "$sim/bin/"*

echo "fresh: make $target with pkg-config failing until deps ran ($sim)"
rc=0
# FRESH_MAKE: another make command line (e.g. "make -f OLD-Makefile").
(cd "$root" && PATH="$sim/bin:$PATH" ${FRESH_MAKE:-make} "$target" \
    BUILD="$sim/build") \
    >"$sim/make.log" 2>&1 || rc=$?
fail() {
	tail -n 30 "$sim/make.log" >&2
	echo "fresh: FAIL: $*" >&2
	exit 1
}
[ "$rc" -eq 0 ] || fail "make $target exited $rc"
grep -q "install" "$sim/apt.log" 2>/dev/null ||
    fail "deps did not install anything (apt-get not called)"
grep -q "libevent-dev" "$sim/apt.log" || fail "deps did not ask for libevent-dev"
if grep -q "undefined reference" "$sim/make.log"; then
	fail "undefined references"
fi
if grep -q "^before" "$sim/pkg-config.log" 2>/dev/null; then
	fail "pkg-config was asked before deps ran: $(grep -m1 ^before \
	    "$sim/pkg-config.log")"
fi
n=$(grep -c "^after" "$sim/pkg-config.log" || true)
[ "$n" -gt 0 ] || fail "pkg-config was never asked after deps"
echo "fresh: ok: deps ran first ($(grep -c . "$sim/apt.log") apt-get calls)," \
    "then pkg-config answered $n time(s); make $target passed"
