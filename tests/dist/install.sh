#!/bin/sh
# install.sh BUILD_DIR - `make test-dist`: `make install` into a staging
# directory (DESTDIR, PREFIX=/usr), then check what it put there:
#   - every file, with its mode; the binary runs;
#   - both man pages render with man --warnings and groff -ww, name every
#     command `warden --help` lists, and warden-rules(5)'s example lints;
#   - the systemd unit has its paths filled in and its hardening, and
#     systemd-analyze verify accepts it (skipped, saying so, where
#     systemd-analyze is missing);
#   - `make uninstall` removes it all; PREFIX defaults to /usr/local.
set -eu

B=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case $B in /*) ;; *) B="$root/$B" ;; esac
D=$(mktemp -d /tmp/warden-install.XXXXXX)
trap 'rm -rf "$D"' EXIT INT TERM
failures=0

fail() {
	echo "dist: FAIL: $*" >&2
	failures=$((failures + 1))
}
ok() { echo "dist: ok: $*"; }

make -s install DESTDIR="$D/root" PREFIX=/usr BUILD="$B" >"$D/install.log" 2>&1 ||
    { cat "$D/install.log" >&2; fail "make install"; exit 1; }
R="$D/root"

# Every file, with its mode.
for spec in "usr/bin/warden 755" "usr/share/man/man1/warden.1 644" \
    "usr/share/man/man5/warden-rules.5 644" \
    "usr/share/warden/example.yaml 644" \
    "usr/share/warden/example.tests.yaml 644" \
    "usr/lib/systemd/system/warden.service 644" \
    "usr/lib/sysusers.d/warden.conf 644"; do
	# shellcheck disable=SC2086
	set -- $spec
	if [ ! -f "$R/$1" ]; then
		fail "$1 not installed"
	elif [ "$(stat -c %a "$R/$1")" != "$2" ]; then
		fail "$1 has mode $(stat -c %a "$R/$1"), not $2"
	fi
done
"$R/usr/bin/warden" version >/dev/null || fail "the installed binary does not run"
ok "make install DESTDIR=... PREFIX=/usr installed 7 files"

# The man pages: no warning from man or groff, every command documented.
for page in man1/warden.1 man5/warden-rules.5; do
	f="$R/usr/share/man/$page"
	if ! MANWIDTH=80 man --warnings -l "$f" >"$D/page.txt" 2>"$D/warn"; then
		fail "man -l $page failed"
	fi
	[ -s "$D/warn" ] && fail "man --warnings -l $page: $(head -3 "$D/warn")"
	groff -ww -z -man "$f" 2>"$D/warn" || fail "groff -ww -z $page failed"
	[ -s "$D/warn" ] && fail "groff -ww $page: $(head -3 "$D/warn")"
	[ "$(wc -l <"$D/page.txt")" -gt 50 ] || fail "$page renders nearly empty"
	cp "$D/page.txt" "$D/$(basename "$page").txt"
	# The page's version is the binary's.
	grep -q "^\.TH .*\"$("$R/usr/bin/warden" version)\"" "$f" ||
	    fail "$page: .TH does not say $("$R/usr/bin/warden" version)"
done
"$R/usr/bin/warden" --help | sed -n 's/^\(usage:\)\{0,1\} *warden \([a-z-]*\)\( [a-z][a-z-]*\)\{0,1\}.*/\2\3/p' |
    while read -r cmd sub; do
	case $sub in *[!a-z-]*) sub="" ;; esac
	# (man justifies the synopsis: words may stand apart)
	grep -Eq "warden +$cmd${sub:+ +$sub}" "$D/warden.1.txt" ||
	    echo "warden $cmd${sub:+ $sub}"
done >"$D/undocumented"
[ -s "$D/undocumented" ] && fail "warden(1) lacks: $(tr '\n' ',' <"$D/undocumented")"
# warden-rules(5) documents every key of the README's reference table
# (the keys of its "Rules file reference"; there must be some).
sed -n '/^## Rules file reference/,/^## /p' README.md |
    sed -n 's/^| `\([^`]*\)` |.*/\1/p' >"$D/keys"
[ "$(wc -l <"$D/keys")" -gt 100 ] ||
    fail "no rules keys read from README.md's reference table"
while read -r key; do
	grep -qF -- "$key" "$D/warden-rules.5.txt" || echo "$key"
done <"$D/keys" >"$D/nokey"
[ -s "$D/nokey" ] && fail "warden-rules(5) lacks: $(tr '\n' ' ' <"$D/nokey")"
sed -n '/^EXAMPLE/,/^FILES/p' "$D/warden-rules.5.txt" | sed -n '/version: 1/,/require:/p' \
    >"$D/example.yaml"
chmod 600 "$D/example.yaml"
"$R/usr/bin/warden" lint -c "$D/example.yaml" >/dev/null 2>"$D/lint" ||
    fail "the example in warden-rules(5) does not lint: $(cat "$D/lint")"
ok "man pages render without warnings and cover every command and key"

# The unit: paths filled in, the hardening there.
U="$R/usr/lib/systemd/system/warden.service"
grep -q '@[A-Z]*@' "$U" &&
    fail "warden.service: a placeholder is left: $(grep '@[A-Z]*@' "$U")"
for want in "ExecStart=/usr/bin/warden serve -c /etc/warden/rules.yaml" \
    "ExecReload=/bin/kill -HUP \$MAINPID" "User=warden" \
    "SupplementaryGroups=tss" "ProtectSystem=strict" "ProtectHome=yes" \
    "PrivateTmp=yes" "NoNewPrivileges=yes" "DevicePolicy=closed" \
    "DeviceAllow=/dev/tpmrm0 rw" "ReadWritePaths=/var/lib/warden/audit" \
    "CapabilityBoundingSet=" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
    "SystemCallFilter=@system-service" "MemoryDenyWriteExecute=yes" \
    "LockPersonality=yes" "LimitMEMLOCK="; do
	grep -q "^$want" "$U" || fail "warden.service lacks $want"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	# Verified as installed, but pointing at the staged binary (verify
	# checks that ExecStart exists) and the staged man pages.
	mkdir "$D/verify"
	sed "s|/usr/bin/warden|$R/usr/bin/warden|g" "$U" >"$D/verify/warden.service"
	if ! MANPATH="$R/usr/share/man" systemd-analyze verify \
	    "$D/verify/warden.service" >"$D/verify.out" 2>&1 ||
	    [ -s "$D/verify.out" ]; then
		fail "systemd-analyze verify: $(cat "$D/verify.out")"
	else
		ok "systemd-analyze verify accepts warden.service"
	fi
else
	echo "dist: skip: systemd-analyze is not installed; the unit is not verified"
fi

# uninstall removes what install put there.
make -s uninstall DESTDIR="$R" PREFIX=/usr >/dev/null 2>&1 || fail "make uninstall"
left=$(find "$R" -type f | sed "s|^$R/||")
[ -n "$left" ] && fail "make uninstall left: $left"
# PREFIX defaults to /usr/local.
make -s -n install DESTDIR="$D/n" BUILD="$B" | grep -q "$D/n/usr/local/bin/warden" ||
    fail "PREFIX does not default to /usr/local"

if [ "$failures" -ne 0 ]; then
	echo "dist: $failures failure(s)" >&2
	exit 1
fi
ok "make uninstall removed it all"
