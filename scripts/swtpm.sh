#!/bin/sh
# swtpm.sh - a software TPM 2.0 for development and tests, never a real one.
#
#   sh scripts/swtpm.sh start DIR   start swtpm with its state in DIR on a
#                                   free loopback port pair (P, P+1); print
#                                   the TCTI (swtpm:host=127.0.0.1,port=P)
#                                   and write it to DIR/tcti
#   sh scripts/swtpm.sh stop DIR    stop the swtpm of DIR (pid in DIR/swtpm.pid)
#
# The state in DIR persists across stop and start: blobs sealed before a
# restart unseal after it.  swtpm has no resource manager: give each
# process that uses it its own instance, or serialise them.
set -eu

usage() {
	echo "usage: swtpm.sh start DIR | stop DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# Is the process alive?  A daemon's parent is init, which may take a
# while to reap it: a zombie counts as gone.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	# the state follows the parenthesised command name
	state=$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)
	[ "$state" != Z ]
}

running() {
	[ -f "$dir/swtpm.pid" ] && alive "$(cat "$dir/swtpm.pid")"
}

# A random port in 20000..59998; swtpm itself tells whether it was free.
random_port() {
	n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $((20000 + n % 39999))
}

start() {
	mkdir -p "$dir"
	chmod 700 "$dir"
	if running; then
		echo "swtpm.sh: swtpm already runs for $dir (pid $(cat "$dir/swtpm.pid"))" >&2
		exit 1
	fi
	rm -f "$dir/swtpm.pid" "$dir/tcti"
	tries=0
	while :; do
		tries=$((tries + 1))
		port=$(random_port)
		ctrl=$((port + 1))
		# With -d the sockets are bound when swtpm returns, so a taken
		# port shows as a failed start and we try another.
		if swtpm socket --tpm2 \
		    --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
		    --ctrl "type=tcp,port=$ctrl,bindaddr=127.0.0.1" \
		    --tpmstate "dir=$dir" \
		    --flags not-need-init,startup-clear \
		    --pid "file=$dir/swtpm.pid" \
		    --log "file=$dir/swtpm.log" \
		    -d 2>>"$dir/swtpm.log"; then
			break
		fi
		if [ "$tries" -ge 20 ]; then
			echo "swtpm.sh: swtpm did not start; see $dir/swtpm.log" >&2
			exit 1
		fi
	done
	i=0
	until swtpm_ioctl --tcp "127.0.0.1:$ctrl" -g >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -ge 100 ]; then
			echo "swtpm.sh: swtpm on port $port does not answer" >&2
			stop
			exit 1
		fi
		sleep 0.05
	done
	tcti="swtpm:host=127.0.0.1,port=$port"
	printf '%s\n' "$tcti" >"$dir/tcti"
	printf '%s\n' "$tcti"
}

stop() {
	[ -f "$dir/swtpm.pid" ] || return 0
	pid=$(cat "$dir/swtpm.pid")
	kill "$pid" 2>/dev/null || true
	i=0
	while alive "$pid"; do
		i=$((i + 1))
		if [ "$i" -ge 100 ]; then
			kill -9 "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	rm -f "$dir/swtpm.pid"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
