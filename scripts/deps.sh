#!/bin/sh
# deps.sh - install the Debian packages warden needs to build, test, run
# the demo and the benchmark; installs only what is missing.
# Works as root, uses sudo otherwise.
set -eu

# openssl: the command line tool (the demo and tests verify signatures
# and decrypt a recovered envelope with it); man-db and groff-base: the
# install test renders the man pages; libhyperscan-dev: content detection
# (detect/) compiles its detectors into one Hyperscan streaming database;
# redis-server and libhiredis-dev: limits and agent sessions shared by
# several wardens (state.redis), and the tests that run a real Redis;
# graphviz: `warden policy report` draws tool graphs with dot; chromium:
# the tests render both report pages headless and take screenshots.
PKGS="build-essential pkg-config libevent-dev libcurl4-openssl-dev libssl-dev
libtss2-dev libyaml-dev libjansson-dev check swtpm swtpm-tools tpm2-tools
curl wrk nginx-light clang libclang-rt-14-dev valgrind nodejs npm openssl
man-db groff-base libhyperscan-dev graphviz chromium redis-server
libhiredis-dev"

missing=""
for p in $PKGS; do
	# nodejs/npm may come from elsewhere (e.g. NodeSource): a working
	# node and npm on PATH are enough.
	case $p in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps: not root and no sudo; install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
