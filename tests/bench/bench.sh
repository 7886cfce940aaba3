#!/bin/sh
# bench.sh BUILD_DIR - `make bench`: how much latency, throughput, CPU and
# memory warden costs compared with nginx as a plain keep-alive reverse
# proxy, and with Portkey's gateway (Node, from npm) as a peer.
#
# Starts the mock provider (one thread per core), and in front of it nginx,
# warden (one tenant, one provider, policy, the audit log with group commit
# and metrics on) and, when tests/bench/portkey/node_modules is installed,
# Portkey's gateway; all on loopback.  The targets are: direct (the mock),
# nginx, warden, "agent" (the same warden, with X-Warden-Agent: its
# requests are tool-checked and their answers read strictly) and portkey.
# wrk drives each with the same ~1.4 KB chat completion with three tools,
# first at concurrency 1 (p50/p99 latency), then at concurrency 64
# (requests/s, and the server's CPU time per request from /proc), in short
# rounds that take turns between the targets; then bench_ttfb times the
# first body byte of a streamed answer, in rounds too.  Every answer must
# be a 2xx chat.completion (or a whole stream) and no socket may fail, or
# the run stops with an error instead of a table.  Prints one table and the
# goals from issue 17; exits 0 even if a goal is missed, nonzero only when
# the run itself is broken.  Everything it starts, it stops.
#
# Environment:
#   BENCH_SECONDS    measuring time per target and concurrency, default 10
#   BENCH_ROUNDS     rounds that time is split into, default 5
#   BENCH_WARMUP     length of the warm-up per target, default 2
#   BENCH_TTFB_N     streamed requests per target and round, default 40
#   BENCH_PORT_BASE  first loopback port to try, default 19080; the first
#                    four free ports of the next 100 are used
#   NGINX            the nginx binary, default /usr/sbin/nginx
set -eu
# This script's processes are throw-away: warden may run as root here.
WARDEN_ALLOW_ROOT=1
export WARDEN_ALLOW_ROOT
# 1,000 open streams need about 3,000 descriptors across the processes.
ulimit -n 8192 2>/dev/null || ulimit -n 4096 2>/dev/null || true

B=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-5}
WARM=${BENCH_WARMUP:-2}
TTFB_N=${BENCH_TTFB_N:-40}
PORT_BASE=${BENCH_PORT_BASE:-19080}
NGINX=${NGINX:-/usr/sbin/nginx}
KEY=wk-bench-0000000000000001
SECRET=sk-bench-upstream-0001
WORKERS=2

die() {
	echo "bench: $*" >&2
	exit 1
}

for v in "$SECS" "$ROUNDS" "$WARM" "$TTFB_N" "$PORT_BASE"; do
	case $v in
	'' | *[!0-9]*) die "BENCH_SECONDS, BENCH_ROUNDS, BENCH_WARMUP, BENCH_TTFB_N and BENCH_PORT_BASE take whole numbers, got '$v'" ;;
	esac
done
[ "$SECS" -ge 1 ] || die "BENCH_SECONDS must be at least 1"
[ "$ROUNDS" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"
[ "$WARM" -ge 1 ] || die "BENCH_WARMUP must be at least 1"
[ "$TTFB_N" -ge 1 ] || die "BENCH_TTFB_N must be at least 1"
RLEN=$((SECS / ROUNDS))		# seconds per round
[ "$RLEN" -ge 1 ] || RLEN=1
[ -x "$B/warden" ] || die "$B/warden is missing; run make all"
[ -x "$B/mock_provider" ] || die "$B/mock_provider is missing; run make all"
[ -x "$B/bench_ttfb" ] || die "$B/bench_ttfb is missing; run make $B/bench_ttfb"
[ -x "$NGINX" ] || die "$NGINX is missing; install nginx-light (make deps)"
for c in wrk curl sha256sum awk sed; do
	command -v "$c" >/dev/null 2>&1 || die "$c is missing (make deps)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench.XXXXXX")
PIDS=""

# alive PID: true while PID runs (a zombie does not count).
alive() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || st=""
	[ -n "$st" ] && [ "$st" != Z ]
}

cleanup() {
	trap - EXIT INT TERM
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		i=0
		while alive "$p" && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if alive "$p"; then
			echo "bench: pid $p ignored SIGTERM for 5 s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- ports
# A port is free when curl cannot connect to it at all (exit status 7).
port_free() {
	rc=0
	curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null || rc=$?
	[ "$rc" -eq 7 ]
}

PORTS=""
n=0
p=$PORT_BASE
while [ $n -lt 4 ] && [ "$p" -lt $((PORT_BASE + 100)) ]; do
	if port_free "$p"; then
		PORTS="$PORTS $p"
		n=$((n + 1))
	fi
	p=$((p + 1))
done
[ $n -eq 4 ] || die "fewer than 4 free ports in 127.0.0.1:$PORT_BASE-$((PORT_BASE + 99)); set BENCH_PORT_BASE"
# shellcheck disable=SC2086
set -- $PORTS
PM=$1 PN=$2 PW=$3 PP=$4

# ------------------------------------------------------------ processes
# wait_up NAME PID URL LOG [curl options]: wait until URL answers.
wait_up() {
	name=$1 pid=$2 url=$3 log=$4
	shift 4
	i=0
	while ! curl -s -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null; do
		if ! alive "$pid"; then
			echo "bench: $name exited during start-up; its log:" >&2
			sed 's/^/  /' "$log" >&2 || true
			exit 1
		fi
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "bench: $name does not answer on $url; its log:" >&2
			sed 's/^/  /' "$log" >&2 || true
			exit 1
		fi
		sleep 0.05
	done
}

"$B/mock_provider" --listen "127.0.0.1:$PM" --name bench --quiet \
    --threads "$(nproc)" \
    >"$TMP/mock.log" 2>&1 &
MPID=$!
PIDS="$PIDS $MPID"
wait_up mock "$MPID" "http://127.0.0.1:$PM/" "$TMP/mock.log"

USERLINE=""
[ "$(id -u)" -eq 0 ] && USERLINE="user root;"
sed -e "s|@TMP@|$TMP|g" -e "s|@PN@|$PN|g" -e "s|@PM@|$PM|g" \
    -e "s|@USER@|$USERLINE|g" "$HERE/nginx.conf.in" >"$TMP/nginx.conf"
# -e: even the errors before the configuration is read go to $TMP.
"$NGINX" -t -q -p "$TMP" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" \
    >"$TMP/nginx.out" 2>&1 || {
	sed 's/^/  /' "$TMP/nginx.out" >&2
	die "nginx rejects $TMP/nginx.conf"
}
"$NGINX" -p "$TMP" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" \
    -g 'daemon off;' >>"$TMP/nginx.out" 2>&1 &
NPID=$!
PIDS="$PIDS $NPID"
wait_up nginx "$NPID" "http://127.0.0.1:$PN/" "$TMP/nginx-error.log"

KEYHASH=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
umask 077
sed -e "s|@PW@|$PW|g" -e "s|@PM@|$PM|g" -e "s|@KEYHASH@|$KEYHASH|g" \
    -e "s|@SECRET@|$SECRET|g" "$HERE/rules.yaml.in" >"$TMP/rules.yaml"
chmod 0600 "$TMP/rules.yaml"
"$B/warden" serve -c "$TMP/rules.yaml" --listen "127.0.0.1:$PW" \
    --workers $WORKERS --audit-dir "$TMP/audit" --dev-credentials \
    >"$TMP/warden.log" 2>&1 &
WPID=$!
PIDS="$PIDS $WPID"
wait_up warden "$WPID" "http://127.0.0.1:$PW/healthz" "$TMP/warden.log" -f

# Portkey's gateway 1.15.2 from npm (tests/bench/portkey, installed by
# `make bench` with npm ci), one Node process as its start-server.js runs
# it, told the provider and the mock's address in headers on each request.
PK_JS="$HERE/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
PK_HEADERS="x-portkey-provider: openai|x-portkey-custom-host: http://127.0.0.1:$PM/v1"
TARGETS="direct nginx warden agent"
PPID_=""
if [ -f "$PK_JS" ] && command -v node >/dev/null 2>&1; then
	NODE_ENV=production node "$HERE/portkey/start.mjs" --port="$PP" \
	    --headless >"$TMP/portkey.log" 2>&1 &
	PPID_=$!
	PIDS="$PIDS $PPID_"
	wait_up portkey "$PPID_" "http://127.0.0.1:$PP/" "$TMP/portkey.log"
	TARGETS="$TARGETS portkey"
fi

# ------------------------------------------------------------- helpers
# rss_kb PID...: the sum of VmRSS of the PIDs, in kB.
rss_kb() {
	t=0
	for p in "$@"; do
		r=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null) || r=0
		t=$((t + ${r:-0}))
	done
	echo "$t"
}

# cpu_ticks PID...: utime + stime of the PIDs (all threads), in clock ticks.
cpu_ticks() {
	t=0
	for p in "$@"; do
		c=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null |
		    awk '{ print $12 + $13 }') || c=0
		t=$((t + ${c:-0}))
	done
	echo "$t"
}

# cpu_busy_pct: how much of all CPUs was busy over the next second.
cpu_busy_pct() {
	a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	sleep 1
	b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
	echo "$a $b" | awk '{ busy = $3 - $1; all = busy + $4 - $2
		printf "%.0f", (all > 0 ? 100 * busy / all : 0) }'
}

# nginx_pids: the nginx master and its workers.
nginx_pids() {
	echo "$NPID"
	for d in /proc/[0-9]*; do
		[ "$(awk '$1 == "PPid:" { print $2 }' "$d/status" 2>/dev/null)" = "$NPID" ] &&
		    echo "${d#/proc/}"
	done
	return 0
}

URL_direct="http://127.0.0.1:$PM/v1/chat/completions"
URL_nginx="http://127.0.0.1:$PN/v1/chat/completions"
URL_warden="http://127.0.0.1:$PW/v1/chat/completions"
URL_portkey="http://127.0.0.1:$PP/v1/chat/completions"

url_of() {
	case $1 in
	direct) echo "$URL_direct" ;;
	nginx) echo "$URL_nginx" ;;
	warden | agent) echo "$URL_warden" ;;
	portkey) echo "$URL_portkey" ;;
	esac
}

port_of() {
	case $1 in
	direct) echo "$PM" ;;
	nginx) echo "$PN" ;;
	warden | agent) echo "$PW" ;;
	portkey) echo "$PP" ;;
	esac
}

# headers_of TARGET: the extra headers of its requests, "|"-separated.
headers_of() {
	case $1 in
	agent) echo "X-Warden-Agent: bench-agent" ;;
	portkey) echo "$PK_HEADERS" ;;
	*) echo "" ;;
	esac
}

pids_of() {
	case $1 in
	direct) echo "$MPID" ;;
	nginx) nginx_pids ;;
	warden | agent) echo "$WPID" ;;
	portkey) echo "$PPID_" ;;
	esac
}

# broken TARGET WHAT FILE: stop the run, showing why.
broken() {
	{
		echo
		echo "bench: BROKEN RUN: $1 failed during $2; no table is printed."
		alive "$MPID" || echo "  the mock provider (pid $MPID) is gone"
		alive "$NPID" || echo "  nginx (pid $NPID) is gone"
		alive "$WPID" || echo "  warden (pid $WPID) is gone"
		[ -z "$PPID_" ] || alive "$PPID_" || echo "  portkey (pid $PPID_) is gone"
		sed 's/^/  wrk: /' "$3"
		if [ "$1" = warden ] || [ "$1" = agent ]; then
			echo "  last lines of the warden log:"
			tail -n 20 "$TMP/warden.log" | sed 's/^/  warden: /'
		fi
		if [ "$1" = nginx ]; then
			echo "  last lines of the nginx error log:"
			tail -n 20 "$TMP/nginx-error.log" | sed 's/^/  nginx: /'
		fi
		if [ "$1" = portkey ]; then
			echo "  last lines of the portkey log:"
			tail -n 20 "$TMP/portkey.log" | sed 's/^/  portkey: /'
		fi
	} >&2
	exit 1
}

# wrk_run TARGET WHAT OUT wrk-options...: run wrk with post.lua against the
# target; any non-2xx, non-chat.completion answer or socket error is fatal.
# wrk's own timeout (2 s) is raised: Portkey's slowest answers at c=64 come
# close to it, and a timeout would break the run.
wrk_run() {
	target=$1 what=$2 out=$3
	shift 3
	rc=0
	BENCH_BODY="$HERE/request.json" BENCH_KEY="$KEY" \
	    BENCH_HEADERS="$(headers_of "$target")" wrk --timeout 10s "$@" -s "$HERE/post.lua" "$(url_of "$target")" >"$out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || broken "$target" "$what (wrk exit status $rc)" "$out"
	awk '
	$1 == "bench-result:" {
		seen = 1
		for (i = 2; i <= NF; i++) {
			split($i, kv, "=")
			v[kv[1]] = kv[2] + 0
		}
	}
	END {
		if (!seen || v["requests"] < 1 || v["non2xx"] || v["badbody"] ||
		    v["connect"] || v["read"] || v["write"] || v["timeout"])
			exit 1
	}' "$out" || broken "$target" "$what" "$out"
}

# latency_us FILE PCT: a percentile of wrk's Latency Distribution, in us.
latency_us() {
	awk -v pct="$2%" '
	/Latency Distribution/ { on = 1; next }
	on && $1 == pct {
		v = $2
		if (v ~ /us$/) { sub(/us$/, "", v); x = v }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); x = v * 1000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); x = v * 1000000 }
		else if (v ~ /m$/) { sub(/m$/, "", v); x = v * 60000000 }
		else if (v ~ /h$/) { sub(/h$/, "", v); x = v * 3600000000 }
		else exit 1
		printf "%.1f\n", x
		found = 1
		exit
	}
	END { if (!found) exit 1 }' "$1"
}

reqs() {
	awk '$1 == "Requests/sec:" { print $2; f = 1 } END { if (!f) exit 1 }' "$1"
}

# hdr_args TARGET CMD...: run CMD with "-H HEADER" added for each of the
# target's extra headers.
hdr_args() {
	ht=$1
	shift
	oifs=$IFS
	IFS='|'
	for h in $(headers_of "$ht"); do
		set -- "$@" -H "$h"
	done
	IFS=$oifs
	"$@"
}

# --------------------------------------------------------- sanity check
# probe TARGET BODY: the HTTP status of one POST of BODY; the answer is in
# $TMP/probe-TARGET.
probe() {
	hdr_args "$1" curl -s -o "$TMP/probe-$1" -w '%{http_code}' --max-time 5 \
	    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
	    --data-binary "@$2" "$(url_of "$1")" || echo 000
}
for t in $TARGETS; do
	code=$(probe "$t" "$HERE/request.json")
	if [ "$code" != 200 ] || ! grep -q '"chat.completion"' "$TMP/probe-$t"; then
		echo "bench: $t answered the probe with HTTP $code:" >&2
		head -c 500 "$TMP/probe-$t" >&2 || true
		echo >&2
		case $t in
		warden | agent) sed 's/^/  warden: /' "$TMP/warden.log" >&2 ;;
		portkey) sed 's/^/  portkey: /' "$TMP/portkey.log" >&2 ;;
		esac
		exit 1
	fi
done
# The agent row must really be tool-checked: the same request offering a
# tool the agent does not have is refused.
sed 's/"open_ticket"/"delete_all_claims"/' "$HERE/request.json" >"$TMP/bad-tool.json"
code=$(probe agent "$TMP/bad-tool.json")
if [ "$code" != 403 ] || ! grep -q tool_policy "$TMP/probe-agent"; then
	echo "bench: an agent request offering a tool outside its graph got HTTP $code, not 403 tool_policy:" >&2
	head -c 500 "$TMP/probe-agent" >&2 || true
	exit 1
fi
# The streamed request: the same body with "stream": true.
sed 's/^{/{"stream":true,/' "$HERE/request.json" >"$TMP/stream.json"

# ---------------------------------------------------------- environment
CPU=$(awk -F': *' '$1 ~ /^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null) || CPU=""
echo "warden benchmark: $WARM s warm-up, then $ROUNDS rounds of $RLEN s per target at c=1 and at c=64,"
echo "then $ROUNDS rounds of $TTFB_N streamed requests per target; wrk and all servers share this machine"
echo "  cpus:    $(nproc) ${CPU:+($CPU)}"
echo "  kernel:  $(uname -sr)"
echo "  wrk:     $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-3)"
echo "  nginx:   $("$NGINX" -v 2>&1 | head -n 1 | sed 's/^nginx version: //'), worker_processes 2"
echo "  warden:  $("$B/warden" version 2>&1 | head -n 1), $WORKERS workers, audit log with group commit, metrics"
echo "  mock:    $(nproc) threads"
if [ -n "$PPID_" ]; then
	echo "  portkey: @portkey-ai/gateway $(node -p "require('$HERE/portkey/node_modules/@portkey-ai/gateway/package.json').version" 2>/dev/null), @hono/node-server $(node -p "require('$HERE/portkey/node_modules/@hono/node-server/package.json').version" 2>/dev/null), node $(node --version), one process"
else
	echo "  portkey: not installed (tests/bench/portkey: npm ci failed or no node); its row is left out"
fi
echo "  request: POST /v1/chat/completions, $(wc -c <"$HERE/request.json" | tr -d ' ') byte body with 3 tools"
echo "  ports:   mock $PM, nginx $PN, warden $PW, portkey $PP"
# wrk and the servers share these CPUs: anything else running skews the
# numbers, so say how busy the machine was just before the runs.
BUSY=$(cpu_busy_pct)
echo "  busy:    ${BUSY}% of all CPUs in use before the runs (load average $(cut -d' ' -f1-3 /proc/loadavg))"
if [ "${BUSY%.*}" -ge 10 ]; then
	echo "  WARNING: something else is using the CPUs; expect noisy numbers"
fi
echo
WRSS0=$(rss_kb "$WPID")

# ----------------------------------------------------------------- runs
# Latency first, at concurrency 1, then throughput at concurrency 64, then
# the streamed first byte, each in ROUNDS short runs that take turns
# between the targets: a burst of noise from elsewhere on the machine then
# hits all of them alike, and the median of the rounds is what the table
# shows.  Heavy load before a c=1 run makes its tail worse on small VMs,
# hence this order.
TCK=$(getconf CLK_TCK 2>/dev/null) || TCK=100

echo "warm-up ($WARM s per target) ..." >&2
for t in $TARGETS; do
	wrk_run "$t" warm-up "$TMP/wrk-$t-warm" -t1 -c4 -d"${WARM}s"
done
r=1
while [ $r -le "$ROUNDS" ]; do
	echo "round $r/$ROUNDS, c=1 ($RLEN s per target) ..." >&2
	for t in $TARGETS; do
		f="$TMP/wrk-$t-c1-$r"
		wrk_run "$t" "round $r at c=1" "$f" -t1 -c1 -d"${RLEN}s" --latency
		p50=$(latency_us "$f" 50) || broken "$t" "parsing p50" "$f"
		p99=$(latency_us "$f" 99) || broken "$t" "parsing p99" "$f"
		echo "$p50 $p99" >>"$TMP/c1-$t"
	done
	r=$((r + 1))
done
r=1
while [ $r -le "$ROUNDS" ]; do
	echo "round $r/$ROUNDS, c=64 ($RLEN s per target) ..." >&2
	for t in $TARGETS; do
		f="$TMP/wrk-$t-c64-$r"
		# shellcheck disable=SC2046
		c0=$(cpu_ticks $(pids_of "$t"))
		wrk_run "$t" "round $r at c=64" "$f" -t2 -c64 -d"${RLEN}s"
		# shellcheck disable=SC2046
		c1=$(cpu_ticks $(pids_of "$t"))
		rps=$(reqs "$f") || broken "$t" "parsing req/s" "$f"
		n=$(awk '$1 == "bench-result:" { split($2, kv, "="); print kv[2] }' "$f")
		echo "$rps $((c1 - c0)) $n" >>"$TMP/c64-$t"
	done
	# RSS after each target's heaviest run, the highest of the rounds.
	# (In a subshell: rss_kb's variables would clobber r.)
	for t in $TARGETS; do
		# shellcheck disable=SC2046
		v=$(rss_kb $(pids_of "$t"))
		echo "$v" >>"$TMP/rss-$t"
	done
	r=$((r + 1))
done
r=1
while [ $r -le "$ROUNDS" ]; do
	echo "round $r/$ROUNDS, streamed first byte ($TTFB_N requests per target) ..." >&2
	for t in $TARGETS; do
		f="$TMP/ttfb-$t-$r"
		hdr_args "$t" "$B/bench_ttfb" "$(port_of "$t")" "$TMP/stream.json" \
		    "$TTFB_N" -H "Authorization: Bearer $KEY" >"$f" 2>&1 ||
		    broken "$t" "round $r of the streamed first byte" "$f"
		awk '$1 == "ttfb:" { split($3, kv, "="); print kv[2]; f = 1 }
		    END { if (!f) exit 1 }' "$f" >>"$TMP/ttfb-$t" ||
		    broken "$t" "parsing the streamed first byte" "$f"
	done
	r=$((r + 1))
done

# summary TARGET: "TARGET p50 p99 req/s cpu-us-per-request rss-kb ttfb"
# and the lowest and highest p50, p99 and req/s over the rounds.
summary() {
	awk -v t="$1" -v tck="$TCK" '
	function med(a, n,   i, j, x) {
		for (i = 2; i <= n; i++) {
			x = a[i]
			for (j = i - 1; j >= 1 && a[j] > x; j--)
				a[j + 1] = a[j]
			a[j + 1] = x
		}
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function lo(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
	function hi(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
	FILENAME ~ /\/c1-/ { n1++; p50[n1] = $1; p99[n1] = $2 }
	FILENAME ~ /\/c64-/ { n2++; rps[n2] = $1; ticks += $2; reqs += $3 }
	FILENAME ~ /\/rss-/ { n3++; rss[n3] = $1 }
	FILENAME ~ /\/ttfb-/ { n4++; ttfb[n4] = $1 }
	END {
		l50 = lo(p50, n1); h50 = hi(p50, n1); l99 = lo(p99, n1); h99 = hi(p99, n1)
		lr = lo(rps, n2); hr = hi(rps, n2)
		printf "%s %.1f %.1f %.1f %.1f %d %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", t,
		    med(p50, n1), med(p99, n1), med(rps, n2),
		    (reqs > 0 ? ticks * 1000000 / tck / reqs : 0), hi(rss, n3),
		    med(ttfb, n4), l50, h50, l99, h99, lr, hr
	}' "$TMP/c1-$1" "$TMP/c64-$1" "$TMP/rss-$1" "$TMP/ttfb-$1"
}
for t in $TARGETS; do
	summary "$t" >>"$TMP/results"
done

WRSS=$(rss_kb "$WPID")
NPROCS=$(nginx_pids | wc -l | tr -d ' ')
if ! alive "$WPID"; then
	tail -n 20 "$TMP/warden.log" | sed 's/^/  warden: /' >&2
	die "warden exited during the run"
fi

# ---------------------------------------------------------------- table
echo
awk -v wrss="$WRSS" -v wrss0="$WRSS0" -v nprocs="$NPROCS" \
    -v rounds="$ROUNDS" -v pk="${PPID_:+yes}" '
function us(x) { return sprintf("%.0f us", x) }
function ratio(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "n/a" }
# goal(ok, base, v): MET or MISSED; UNCLEAR when the nginx figure it is
# measured against (base) or the measured one (v) is not above zero: an
# added time below zero is noise larger than what the proxy adds.
function goal(ok, base, v) { return base > 0 && v > 0 ? (ok ? "MET" : "MISSED") : "UNCLEAR" }
function row(name, t) {
	printf fmt, name, us(p50[t]), us(p99[t]),
	    t == "direct" ? "-" : us(a50[t]), t == "direct" ? "-" : us(a99[t]),
	    sprintf("%.0f", rps[t]), sprintf("%.1f us", cpu[t]),
	    t == "agent" ? "(warden)" : sprintf("%.1f MB", rss[t] / 1024),
	    us(ttfb[t]), t == "direct" ? "-" : us(attfb[t])
}
function rrow(name, t) {
	printf fmt, name, "", "", ratio(a50[t], a50["nginx"]),
	    ratio(a99[t], a99["nginx"]), ratio(rps[t], rps["nginx"]),
	    ratio(cpu[t], cpu["nginx"]), "", "", ratio(attfb[t], attfb["nginx"])
}
{
	p50[$1] = $2; p99[$1] = $3; rps[$1] = $4; cpu[$1] = $5; rss[$1] = $6
	ttfb[$1] = $7
	spread[$1] = sprintf("%.0f-%.0f us   %.0f-%.0f us   %.0f-%.0f req/s",
	    $8, $9, $10, $11, $12, $13)
	seen[$1] = 1
}
END {
	for (t in seen) {
		a50[t] = p50[t] - p50["direct"]
		a99[t] = p99[t] - p99["direct"]
		attfb[t] = ttfb[t] - ttfb["direct"]
	}
	fmt = "%-16s %10s %10s %10s %10s %10s %10s %9s %9s %9s\n"
	printf fmt, "target", "p50 c=1", "p99 c=1", "added p50", "added p99",
	    "req/s c=64", "CPU/req", "RSS", "TTFB", "TTFB add"
	row("direct (mock)", "direct")
	row("nginx", "nginx")
	row("warden", "warden")
	row("warden agent", "agent")
	if (pk)
		row("Portkey 1.15.2", "portkey")
	else
		printf "%-16s not installed (npm ci in tests/bench/portkey failed)\n", "Portkey 1.15.2"
	rrow("warden/nginx", "warden")
	rrow("agent/nginx", "agent")
	if (pk)
		rrow("Portkey/nginx", "portkey")
	print ""
	printf "medians of %d rounds (TTFB: median of the rounds'\'' medians); CPU/req: user+system\n", rounds
	printf "time of the server'\''s processes over the c=64 runs / requests; RSS: highest after a\n"
	printf "c=64 round (nginx: %d processes; the agent row is the same warden process).\n", nprocs
	printf "lowest-highest round (p50, p99, req/s):\n"
	printf "  %-14s %s\n", "direct (mock)", spread["direct"]
	printf "  %-14s %s\n", "nginx", spread["nginx"]
	printf "  %-14s %s\n", "warden", spread["warden"]
	printf "  %-14s %s\n", "warden agent", spread["agent"]
	if (pk)
		printf "  %-14s %s\n", "Portkey", spread["portkey"]
	printf "warden RSS: %.1f MB at start, %.1f MB after the runs\n", wrss0 / 1024, wrss / 1024
	print ""
	printf "goal: added p50 <= 1.5x nginx        %-7s (warden %s, nginx %s, %s)\n",
	    goal(a50["warden"] <= 1.5 * a50["nginx"], a50["nginx"], a50["warden"]),
	    us(a50["warden"]), us(a50["nginx"]), ratio(a50["warden"], a50["nginx"])
	printf "goal: added p99 <= 3x nginx          %-7s (warden %s, nginx %s, %s)\n",
	    goal(a99["warden"] <= 3 * a99["nginx"], a99["nginx"], a99["warden"]),
	    us(a99["warden"]), us(a99["nginx"]), ratio(a99["warden"], a99["nginx"])
	printf "goal: req/s >= 0.8x nginx            %-7s (warden %.0f, nginx %.0f, %s)\n",
	    goal(rps["warden"] >= 0.8 * rps["nginx"], rps["nginx"], rps["warden"]),
	    rps["warden"], rps["nginx"], ratio(rps["warden"], rps["nginx"])
	printf "goal: CPU/request <= 2x nginx        %-7s (warden %.1f us, nginx %.1f us, %s)\n",
	    goal(cpu["warden"] <= 2 * cpu["nginx"], cpu["nginx"], cpu["warden"]),
	    cpu["warden"], cpu["nginx"], ratio(cpu["warden"], cpu["nginx"])
	printf "goal: TTFB added <= 1.5x nginx       %-7s (warden %s, nginx %s, %s)\n",
	    goal(attfb["warden"] <= 1.5 * attfb["nginx"], attfb["nginx"], attfb["warden"]),
	    us(attfb["warden"]), us(attfb["nginx"]), ratio(attfb["warden"], attfb["nginx"])
	printf "goal: agent added p50 <= 2.5x nginx  %-7s (agent %s, nginx %s, %s)\n",
	    goal(a50["agent"] <= 2.5 * a50["nginx"], a50["nginx"], a50["agent"]),
	    us(a50["agent"]), us(a50["nginx"]), ratio(a50["agent"], a50["nginx"])
}' "$TMP/results"

# Memory with many streams open at once: 1,000 connections each holding a
# slow streamed answer (6 s), warden's RSS sampled while they are open.
STREAMS=${BENCH_STREAMS:-1000}
echo >&2 "open streams: $STREAMS connections ..."
BENCH_KEY="$KEY" wrk -t2 -c"$STREAMS" -d8s --timeout 20s \
    -s "$HERE/stream.lua" "http://127.0.0.1:$PW/v1/chat/completions" \
    >"$TMP/streams.out" 2>&1 &
SWRK=$!
sleep 5
OPEN=$(curl -s "http://127.0.0.1:$PW/metrics" |
    awk '$1 == "warden_open_connections" { print $2 }')
SRSS=$(rss_kb "$WPID")
wait $SWRK || true
awk -v rss="$SRSS" -v open="${OPEN:-0}" -v want="$STREAMS" 'BEGIN {
	printf "warden RSS with %d streams open (%d wanted): %.1f MB   goal: under 50 MB  %s\n",
	    open, want, rss / 1024, (rss / 1024 < 50 ? "MET" : "MISSED")
}'

# Anything warden logged beyond start-up is worth a look.
LOGN=$(grep -c . "$TMP/warden.log" || true)
NOTES=$(grep -ci -e error -e fail -e warn "$TMP/warden.log" || true)
echo "warden log: $LOGN lines, $NOTES mentioning error/fail/warn"
grep -i -e error -e fail -e warn "$TMP/warden.log" | sort | uniq -c |
    sort -rn | head -n 5 | sed 's/^/  /' || true
