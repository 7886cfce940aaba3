#!/bin/sh
# shellcheck disable=SC3045 # ulimit -n and -H: dash and bash have them
# soak.sh BUILD_DIR [REQUESTS] [CONCURRENCY] - the soak test with faults
# (`make soak`: 50,000 at 256; `make test`: a short one on the ASan build).
#
# Starts two mock providers (both serve the tenant's model, so a 500, 429
# or reset on the first is retried on the second) and warden (2 workers,
# --dev-credentials, its own temp dir and audit dir), then, with
# $SOAK_BIN, BUILD_DIR/soak or build/soak as the load generator (tests/soak/soak.c):
#   1. kill phase: a short run during which warden is killed with -9 and
#      restarted on the same port and audit dir (soak counts the
#      connection errors of the gap as incomplete transfers);
#   2. warm-up: SOAK_WARMUP (default max(2,000, REQUESTS/10)) requests at
#      CONCURRENCY, then warden's VmRSS;
#   3. main run: REQUESTS at CONCURRENCY while the rules file is rewritten
#      to alternate between two policies (both allow the traffic) and warden
#      gets SIGHUP every RELOAD_EVERY seconds (default 0.5);
#   then warden's VmRSS again, and warden is stopped with SIGTERM.
# Checks: (a) warden alive and /healthz 200 after the run, and its SIGTERM
# exit status 0; (b) `warden audit verify` finds the log consistent (exit 3:
# the soak runs without a TPM, so nothing is signed); (c) every transfer
# with COMPLETE 1 and a decision id has exactly one `request` record with
# that decision_id; (d) final RSS <= warm-up RSS * 1.1 + 2 MB; (e) no
# sanitizer report in warden's logs; (f) one `reload` record per SIGHUP.
# Prints `soak: N passed, N failed` and exits 1 if any check failed.
# Everything it starts, it stops.  KEEP=1 keeps the temp dir.
set -eu

B=${1:-build}
N=${2:-50000}
C=${3:-256}
# Warm-up: 2,000 requests, or a tenth of the run if that is more (at 256
# connections 2,000 requests do not quite reach warden's steady-state RSS).
WARM=${SOAK_WARMUP:-$(( ${2:-50000} / 10 > 2000 ? ${2:-50000} / 10 : 2000 ))}
RELOAD_EVERY=${RELOAD_EVERY:-0.5}
SOAK=${SOAK_BIN:-$B/soak}
# The load generator need not be a sanitizer build: fall back to build/soak.
[ -n "${SOAK_BIN:-}" ] || [ -x "$SOAK" ] || SOAK=build/soak
KEY=wk-soak-tenant-0000000000000001
AGENT_KEY=wk-soak-agent-00000000000000001

die() {
	echo "soak: $*" >&2
	exit 2
}

for v in "$N" "$C" "$WARM"; do
	case $v in '' | *[!0-9]*) die "REQUESTS, CONCURRENCY, SOAK_WARMUP take whole numbers, got '$v'" ;; esac
done
[ -x "$B/warden" ] || die "$B/warden is missing; run make all"
[ -x "$B/mock_provider" ] || die "$B/mock_provider is missing; run make all"
[ -x "$SOAK" ] || die "$SOAK is missing; run make build/soak (or set SOAK_BIN)"
command -v curl >/dev/null 2>&1 || die "curl is missing"

# File descriptors: C client sockets in soak, and in warden C downstream
# plus up to C upstream sockets, the audit files and the listeners.
NEED=$((C * 2 + 200))
[ "$NEED" -ge 1024 ] || NEED=1024
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
	ulimit -n "$NEED" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
	[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$NEED" ] ||
	    die "need $NEED open files for $C connections, ulimit -n is $(ulimit -n) (hard $(ulimit -H -n))"
fi

: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
# ASan keeps freed memory in a quarantine of 256 MB by default, which makes
# RSS climb for a long time without any leak; 16 MB still catches a use
# after a recent free, and RSS levels off during the warm-up.
case $ASAN_OPTIONS in *quarantine_size_mb*) ;; *) ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=16 ;; esac
export ASAN_OPTIONS UBSAN_OPTIONS
# warden refuses to serve as root unless told to (the Makefile exports this).
if [ "$(id -u)" -eq 0 ]; then WARDEN_ALLOW_ROOT=${WARDEN_ALLOW_ROOT:-1}; export WARDEN_ALLOW_ROOT; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-soak.XXXXXX")
PIDS=""
WPID=""
BGPIDS=""

alive() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || st=""
	[ -n "$st" ] && [ "$st" != Z ]
}

cleanup() {
	trap - EXIT INT TERM
	for p in $BGPIDS $WPID $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $BGPIDS $WPID $PIDS; do
		i=0
		while alive "$p" && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		alive "$p" && kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then echo "soak: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() {
	rc=0
	curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null || rc=$?
	[ "$rc" -eq 7 ]
}
PORTS=""
n=0
p=$((20000 + $$ % 20000))
while [ $n -lt 3 ]; do
	port_free "$p" && { PORTS="$PORTS $p"; n=$((n + 1)); }
	p=$((p + 1))
done
# shellcheck disable=SC2086
set -- $PORTS
PA=$1 PB=$2 PW=$3

wait_up() {
	name=$1 pid=$2 url=$3 log=$4
	i=0
	while ! curl -sf -o /dev/null --max-time 1 "$url" 2>/dev/null; do
		if ! alive "$pid" || [ $i -gt 200 ]; then
			echo "soak: $name did not come up; its log:" >&2
			sed 's/^/  /' "$log" >&2 || true
			exit 2
		fi
		i=$((i + 1))
		sleep 0.05
	done
}

# start_mock NAME PORT: a mock provider; its pid in MPID and its port in
# MPORT.  A port found free can be taken by another process before the
# mock binds it: then the next free port is tried (at most 20).
start_mock() {
	MPORT=$2
	t=0
	while :; do
		"$B/mock_provider" --listen "127.0.0.1:$MPORT" --name "$1" --quiet \
		    >"$TMP/$1.log" 2>&1 &
		MPID=$!
		PIDS="$PIDS $MPID"
		i=0
		while ! curl -sf -o /dev/null --max-time 1 \
		    "http://127.0.0.1:$MPORT/_mock/health" 2>/dev/null; do
			alive "$MPID" || break
			i=$((i + 1))
			[ $i -le 200 ] || break
			sleep 0.05
		done
		alive "$MPID" && return 0
		t=$((t + 1))
		if [ $t -ge 20 ] || ! grep -q "Address already in use" "$TMP/$1.log"; then
			echo "soak: $1 did not come up; its log:" >&2
			sed 's/^/  /' "$TMP/$1.log" >&2 || true
			exit 2
		fi
		MPORT=$((MPORT + 7))
		while ! port_free "$MPORT" || [ "$MPORT" = "$PW" ]; do MPORT=$((MPORT + 1)); done
	done
}
start_mock mock-a "$PA"; PA=$MPORT
start_mock mock-b "$PB"; PB=$MPORT

hash() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
KH=$(hash "$KEY")
AH=$(hash "$AGENT_KEY")

# write_rules A|B: two policies that both allow the soak traffic; B adds
# a rule for a data class the tenant never sends.
write_rules() {
	{
		cat <<EOF
# soak policy $1
version: 1
server:
  listen: 127.0.0.1:$PW
  workers: 2
  shutdown_grace_ms: 2000
  # One key at up to 256 connections: the soak checks records, and a
  # request refused by the in-flight caps has none.
  max_inflight: 1024
  max_inflight_per_key: 1024
audit:
  dir: $TMP/audit
upstream:
  connect_timeout_ms: 1000
  first_byte_timeout_ms: 3000
  idle_timeout_ms: 2000
  max_attempts: 2
data_classes: [public, health]
providers:
  - { id: p-a, base_url: 'http://127.0.0.1:$PA/v1', country: IE, retention: { zdr: true }, credential: c-a, models: [gpt-4o] }
  - { id: p-b, base_url: 'http://127.0.0.1:$PB/v1', country: DE, retention: { zdr: true }, credential: c-b, models: [gpt-4o] }
tenants:
  - { id: t-soak, keys: ['sha256:$KH'], routes: [p-a, p-b] }
agents:
  - id: soak-agent
    tenant: t-soak
    keys: ['sha256:$AH']
    tools:
      search_kb: {}
    graph:
      start: [search_kb]
      search_kb: [search_kb]
EOF
		if [ "$1" = B ]; then
			cat <<EOF
rules:
  - { id: soak-health-zdr, when: { data_class: [health] }, require: { retention.zdr: true } }
EOF
		fi
		cat <<EOF
dev_credentials:
  c-a: sk-soak-a
  c-b: sk-soak-b
EOF
	} >"$TMP/rules.new"
	chmod 0600 "$TMP/rules.new"
	mv "$TMP/rules.new" "$TMP/rules.yaml"
}
umask 077
write_rules A

WSTARTS=0
start_warden() {
	WSTARTS=$((WSTARTS + 1))
	"$B/warden" serve -c "$TMP/rules.yaml" --listen "127.0.0.1:$PW" \
	    --workers 2 --audit-dir "$TMP/audit" --dev-credentials \
	    >"$TMP/warden-$WSTARTS.log" 2>&1 &
	WPID=$!
	wait_up warden "$WPID" "http://127.0.0.1:$PW/healthz" "$TMP/warden-$WSTARTS.log"
}

run_soak() {	# run_soak NAME REQUESTS SEED: in the background, pid in SPID
	: >"$TMP/out-$1"
	"$SOAK" --url "http://127.0.0.1:$PW" --key "$KEY" --agent-key "$AGENT_KEY" \
	    --requests "$2" --concurrency "$C" --seed "$3" --out "$TMP/out-$1" \
	    >"$TMP/summary-$1" 2>&1 &
	SPID=$!
	BGPIDS="$SPID"
}

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "soak: $B/warden, $N requests at $C concurrent (+ kill phase and $WARM warm-up), ports mock $PA $PB, warden $PW"
start_warden

# ------------------------------------------------------ 1. kill -9 phase
KILLN=$((N / 10))
[ "$KILLN" -ge 1000 ] || KILLN=1000
run_soak kill "$KILLN" 1
# let some traffic flow, then kill warden mid-run
i=0
while [ "$(wc -l <"$TMP/out-kill")" -lt $((KILLN / 4)) ] && alive "$SPID" && [ $i -lt 600 ]; do
	sleep 0.05
	i=$((i + 1))
done
KILLED_PID=$WPID
kill -KILL "$WPID"
wait "$WPID" 2>/dev/null || true
echo "soak: killed warden (pid $KILLED_PID) with -9 after $(wc -l <"$TMP/out-kill") transfers"
sleep 0.3
start_warden
echo "soak: warden restarted (pid $WPID) on the same port and audit dir"
wait "$SPID" || true
BGPIDS=""
sed 's/^/  kill phase: /' "$TMP/summary-kill"

# ------------------------------------------------------------ 2. warm-up
run_soak warm "$WARM" 2
wait "$SPID" || true
BGPIDS=""
sed 's/^/  warm-up: /' "$TMP/summary-warm"
sleep 1
RSS_WARM=$(rss_kb "$WPID")

# ---------------------------------------------------- 3. main run + reloads
run_soak main "$N" 3
RELOADS=0
pol=A
while alive "$SPID"; do
	sleep "$RELOAD_EVERY"
	alive "$SPID" || break
	if [ $pol = A ]; then pol=B; else pol=A; fi
	write_rules $pol
	kill -HUP "$WPID" 2>/dev/null || true
	RELOADS=$((RELOADS + 1))
done
wait "$SPID" || true
BGPIDS=""
sed 's/^/  main: /' "$TMP/summary-main"
echo "soak: $RELOADS reloads (SIGHUP) during the main run"
sleep 2		# stalled and abandoned upstream calls time out
RSS_FINAL=$(rss_kb "$WPID")

# --------------------------------------------------------------- checks
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "  ok:   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL: $*"; }

# (a) alive, healthy, clean stop
hc=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PW/healthz") || hc=000
if alive "$WPID" && [ "$hc" = 200 ]; then
	ok "(a) warden (pid $WPID) alive after the run, /healthz $hc"
else
	bad "(a) warden not alive or /healthz answered $hc"
fi
kill -TERM "$WPID" 2>/dev/null || true
rc=0
wait "$WPID" || rc=$?
WPID=""
if [ "$rc" -eq 0 ]; then ok "(a) warden exited 0 on SIGTERM"; else bad "(a) warden exited $rc on SIGTERM"; fi

# (b) the audit log is consistent (no key: 3 is its best status)
vrc=0
"$B/warden" audit verify "$TMP/audit" >"$TMP/verify.out" 2>&1 || vrc=$?
if [ "$vrc" -eq 3 ]; then
	ok "(b) audit verify: $(tail -n 1 "$TMP/verify.out")"
else
	bad "(b) audit verify failed:"
	sed 's/^/        /' "$TMP/verify.out" | head -n 20
fi

# (c) exactly one request record per completed transfer with an id
cat "$TMP"/audit/audit-*.jsonl >"$TMP/all.jsonl"
grep '"kind":"request"' "$TMP/all.jsonl" |
    grep -o '"decision_id":"[^"]*"' | cut -d'"' -f4 | sort | uniq -c |
    awk '{ print $2, $1 }' >"$TMP/records"
cat "$TMP/out-kill" "$TMP/out-warm" "$TMP/out-main" >"$TMP/out-all"
awk -v recf="$TMP/records" -v bad="$TMP/unmatched" '
BEGIN { while ((getline l < recf) > 0) { split(l, a, " "); rec[a[1]] = a[2] } }
{
	n++
	if ($3 == 1) comp++
	if ($3 == 1 && $2 != "-") {
		want++
		if (rec[$2] == 1) good++
		else print $0, "records=" (rec[$2] + 0) > bad
	}
	if ($3 == 0 && $2 != "-" && rec[$2] == 1) incomp_rec++
}
END {
	printf "%d %d %d %d %d\n", n, comp, want, good, incomp_rec
}' "$TMP/out-all" >"$TMP/match"
read -r T_ALL T_COMP T_WANT T_GOOD T_INCREC <"$TMP/match"
NREC=$(wc -l <"$TMP/records" | tr -d ' ')
DUPS=$(awk '$2 > 1' "$TMP/records" | wc -l | tr -d ' ')
if [ "$T_WANT" -gt 0 ] && [ "$T_GOOD" -eq "$T_WANT" ]; then
	ok "(c) $T_GOOD of $T_WANT complete transfers with a decision id have exactly one request record ($T_ALL transfers, $T_COMP complete; $NREC distinct decision ids in the log, $DUPS with more than one record; $T_INCREC incomplete transfers have one too)"
else
	bad "(c) only $T_GOOD of $T_WANT complete transfers with a decision id have exactly one request record ($DUPS ids with several records); first ones:"
	head -n 10 "$TMP/unmatched" 2>/dev/null | sed 's/^/        /'
	cp "$TMP/unmatched" "${TMPDIR:-/tmp}/warden-soak-unmatched.txt" 2>/dev/null &&
	    echo "        all in ${TMPDIR:-/tmp}/warden-soak-unmatched.txt"
fi

# (d) RSS
LIMIT=$((RSS_WARM * 110 / 100 + 2048))
if [ "$RSS_WARM" -gt 0 ] && [ "$RSS_FINAL" -gt 0 ] && [ "$RSS_FINAL" -le "$LIMIT" ]; then
	ok "(d) RSS after warm-up $RSS_WARM kB, after the run $RSS_FINAL kB (limit $LIMIT kB)"
else
	bad "(d) RSS after warm-up $RSS_WARM kB, after the run $RSS_FINAL kB (limit $LIMIT kB)"
fi

# (e) sanitizer reports
if grep -l -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' \
    "$TMP"/warden-*.log >"$TMP/san" 2>/dev/null; then
	bad "(e) sanitizer report in warden's log:"
	while read -r f; do
		grep -m 1 -A 30 -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$f" |
		    sed 's/^/        /'
		cp "$f" "${TMPDIR:-/tmp}/warden-soak-$(basename "$f")" 2>/dev/null || true
	done <"$TMP/san"
else
	ok "(e) no sanitizer report in $WSTARTS warden logs"
fi

# (f) every SIGHUP reloaded
NRELOAD=$(grep -c '"kind":"reload"' "$TMP/all.jsonl" || true)
NRELFAIL=$(grep -c '"kind":"reload_failed"' "$TMP/all.jsonl" || true)
if [ "$NRELOAD" -eq "$RELOADS" ] && [ "$NRELFAIL" -eq 0 ]; then
	ok "(f) $NRELOAD reload records for $RELOADS SIGHUPs"
else
	bad "(f) $NRELOAD reload and $NRELFAIL reload_failed records for $RELOADS SIGHUPs"
fi

NRECOV=$(grep -c '"kind":"recovery"' "$TMP/all.jsonl" || true)
echo "soak: $NRECOV recovery records; warden log lines mentioning error/fail/warn:"
cat "$TMP"/warden-*.log | grep -i -e error -e fail -e warn | sed 's/[0-9]\{4\}-[0-9T:.Z-]*//g' |
    sort | uniq -c | sort -rn | head -n 8 | sed 's/^/  /' || true
echo "soak: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
