#!/bin/sh
# recover.sh BUILD_DIR - the README's recovery recipe, run as written
# against a real swtpm: seal credentials with warden (plain, bound to an
# auth value, to PCRs, to both; a short one and one of 16 KiB), then
# recover each with tpm2-tools and openssl alone and compare the bytes.
# The recipe is the shell block after the "recovery recipe" marker in
# README.md; only its first four lines (STORE, NAME, AUTH, the TCTI) are
# replaced, so the README cannot drift from what works.
set -eu

B=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case $B in /*) ;; *) B="$root/$B" ;; esac
T=$(mktemp -d /tmp/warden-recover.XXXXXX)
cleanup() {
	sh scripts/swtpm.sh stop "$T/tpm" >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
WARDEN_ALLOW_ROOT=1
export WARDEN_ALLOW_ROOT

# The block between the marker and the closing fence.
sed -n '/<!-- recovery recipe/,/^```$/p' README.md | sed '1,2d;$d' >"$T/recipe.sh"
[ "$(wc -l <"$T/recipe.sh")" -gt 10 ] || {
	echo "recover: FAIL: no recipe found in README.md" >&2
	exit 1
}

mkdir "$T/tpm"
TCTI=$(sh scripts/swtpm.sh start "$T/tpm")
printf 'it-auth-value\n' >"$T/auth"
chmod 600 "$T/auth"
# 16 KiB of printable bytes: many AES blocks, the store's limit.
head -c 12288 /dev/urandom | base64 -w0 >"$T/long"
printf 'sk-recover-plain-1' >"$T/v-plain"
printf 'sk-recover-auth-2' >"$T/v-auth"
printf 'sk-recover-pcr-3' >"$T/v-pcr"
printf 'sk-recover-both-4' >"$T/v-both"
cp "$T/long" "$T/v-long"
seal() {	# seal NAME [options]
	n=$1
	shift
	"$B/warden" secrets seal "$n" --store "$T/store" --tcti "$TCTI" "$@" \
	    <"$T/v-$n" >/dev/null
}
seal plain
seal auth --auth-file "$T/auth"
seal pcr --pcr sha256:7,23
seal both --pcr sha256:7 --auth-file "$T/auth"
seal long

failures=0
for n in plain auth pcr both long; do
	sed -e "s|^STORE=[^ ]*|STORE=$T/store|" -e "s|^NAME=[^ ]*|NAME=$n|" \
	    -e "s|^AUTH=[^ ]*|AUTH=$T/auth|" \
	    -e "s|^export TPM2TOOLS_TCTI=.*|export TPM2TOOLS_TCTI='$TCTI'|" \
	    "$T/recipe.sh" >"$T/run.sh"
	if ! sh -eu "$T/run.sh" >"$T/out" 2>"$T/err"; then
		echo "recover: FAIL: $n: the recipe failed: $(tail -3 "$T/err")" >&2
		failures=$((failures + 1))
	elif ! cmp -s "$T/out" "$T/v-$n"; then
		echo "recover: FAIL: $n: recovered bytes differ" >&2
		failures=$((failures + 1))
	else
		echo "recover: ok: $n ($(wc -c <"$T/out") bytes) recovered" \
		    "with tpm2-tools and openssl"
	fi
	# swtpm has no resource manager: nothing may stay loaded.
	TPM2TOOLS_TCTI=$TCTI tpm2_flushcontext -t >/dev/null 2>&1 || true
	TPM2TOOLS_TCTI=$TCTI tpm2_flushcontext -s >/dev/null 2>&1 || true
done
[ "$failures" -eq 0 ]
