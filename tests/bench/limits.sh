#!/bin/sh
# limits.sh BUILD_DIR - part of `make bench`: what limits cost (issue 16).
#
# Three wardens in front of one mock provider, the same rules but for
# limits: "off" (none), "memory" (a key with requests_per_minute,
# tokens_per_minute, concurrent and a token budget per day, counted in the
# process) and "redis" (the same limits in a redis-server this script
# starts on a loopback port, never the system's).  Limits are set high so
# that nothing is refused: what is measured is the reservation and the
# settlement on every request.  wrk drives each in turn, c=1 (p50/p99
# latency) then c=64 (requests/s); any non-2xx answer breaks the run.
#
# Environment: BENCH_SECONDS (per target and concurrency, default 6),
# BENCH_PORT_BASE2 (first port to try, default 19180).
set -eu
WARDEN_ALLOW_ROOT=1
export WARDEN_ALLOW_ROOT

B=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${BENCH_SECONDS:-6}
PORT_BASE=${BENCH_PORT_BASE2:-19180}
KEY=wk-bench-0000000000000001
SECRET=sk-bench-upstream-0001
REDIS=${REDIS_SERVER:-/usr/bin/redis-server}

die() {
	echo "bench-limits: $*" >&2
	exit 1
}

case $SECS in '' | *[!0-9]*) die "BENCH_SECONDS takes a whole number" ;; esac
[ -x "$REDIS" ] || die "$REDIS is missing; install redis-server (make deps)"
for c in wrk curl sha256sum awk sed; do
	command -v "$c" >/dev/null 2>&1 || die "$c is missing (make deps)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-limits.XXXXXX")
PIDS=""
cleanup() {
	trap - EXIT INT TERM
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
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
p=$PORT_BASE
while [ $n -lt 5 ] && [ "$p" -lt $((PORT_BASE + 100)) ]; do
	if port_free "$p"; then
		PORTS="$PORTS $p"
		n=$((n + 1))
	fi
	p=$((p + 1))
done
[ $n -eq 5 ] || die "fewer than 5 free ports from $PORT_BASE; set BENCH_PORT_BASE2"
# shellcheck disable=SC2086
set -- $PORTS
PM=$1 PR=$2 POFF=$3 PMEM=$4 PRED=$5

wait_url() {
	i=0
	while ! curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "$2 does not answer on $1 (see $3)"
		sleep 0.05
	done
}

"$B/mock_provider" --listen "127.0.0.1:$PM" --name bench --quiet \
    >"$TMP/mock.log" 2>&1 &
PIDS="$PIDS $!"
wait_url "http://127.0.0.1:$PM/" mock "$TMP/mock.log"
"$REDIS" --port "$PR" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$TMP/redis.log" 2>&1 &
PIDS="$PIDS $!"
i=0
while ! redis-cli -h 127.0.0.1 -p "$PR" ping >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 100 ] && die "redis-server does not answer on $PR (see $TMP/redis.log)"
	sleep 0.05
done

KEYHASH=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
LIMITS="limits:
  - { id: bench-key, per: key, requests_per_minute: 100000000,
      tokens_per_minute: 100000000000, concurrent: 100000,
      tokens_per_day: 100000000000 }"
umask 077
for t in off memory redis; do
	case $t in
	off) PW=$POFF extra="" ;;
	memory) PW=$PMEM extra=$LIMITS ;;
	redis) PW=$PRED extra="$LIMITS
state:
  redis: { url: 'redis://127.0.0.1:$PR', key_prefix: 'bench:' }" ;;
	esac
	sed -e "s|@PW@|$PW|g" -e "s|@PM@|$PM|g" -e "s|@KEYHASH@|$KEYHASH|g" \
	    -e "s|@SECRET@|$SECRET|g" "$HERE/rules.yaml.in" >"$TMP/rules-$t.yaml"
	printf '%s\n' "$extra" >>"$TMP/rules-$t.yaml"
	chmod 0600 "$TMP/rules-$t.yaml"
	"$B/warden" serve -c "$TMP/rules-$t.yaml" --listen "127.0.0.1:$PW" \
	    --workers 2 --audit-dir "$TMP/audit-$t" --dev-credentials \
	    >"$TMP/warden-$t.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_url "http://127.0.0.1:$PW/healthz" "warden ($t)" "$TMP/warden-$t.log"
	code=$(curl -s -o "$TMP/probe-$t" -w '%{http_code}' --max-time 5 \
	    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
	    --data-binary "@$HERE/request.json" "http://127.0.0.1:$PW/v1/chat/completions") || code=000
	[ "$code" = 200 ] || die "warden ($t) answered the probe with $code: $(head -c 300 "$TMP/probe-$t")"
done

run() {
	rc=0
	BENCH_BODY="$HERE/request.json" BENCH_KEY="$KEY" \
	    wrk "$@" -s "$HERE/post.lua" >"$TMP/wrk.out" 2>&1 || rc=$?
	[ $rc -eq 0 ] && awk '$1 == "bench-result:" { seen = 1; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 } }
	    END { exit !(seen && v["requests"] > 0 && !v["non2xx"] && !v["badbody"] && !v["connect"] && !v["read"] && !v["write"] && !v["timeout"]) }' "$TMP/wrk.out" ||
	    { sed 's/^/  wrk: /' "$TMP/wrk.out" >&2; die "a run failed"; }
}
lat() {
	awk -v pct="$1%" '/Latency Distribution/ { on = 1; next }
	on && $1 == pct { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); x = v }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); x = v * 1000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); x = v * 1000000 }
		printf "%.0f", x; exit }' "$TMP/wrk.out"
}

echo
echo "limits: one key under requests_per_minute, tokens_per_minute, concurrent and tokens_per_day (never reached)"
printf '%-22s %10s %10s %12s\n' "warden, limits" "p50 (us)" "p99 (us)" "req/s c=64"
for t in off memory redis; do
	case $t in off) PW=$POFF ;; memory) PW=$PMEM ;; redis) PW=$PRED ;; esac
	URL="http://127.0.0.1:$PW/v1/chat/completions"
	run -t1 -c4 -d2s "$URL"
	run -t1 -c1 -d"${SECS}s" --latency "$URL"
	p50=$(lat 50) p99=$(lat 99)
	run -t2 -c64 -d"${SECS}s" "$URL"
	rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$TMP/wrk.out")
	printf '%-22s %10s %10s %12s\n' "$t" "$p50" "$p99" "$rps"
done
