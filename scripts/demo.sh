#!/bin/sh
# demo.sh BUILD_DIR - what `make run` shows: mock providers in three
# countries, warden in front of them with rules/example.yaml, and a few
# requests with curl, explained as they go.  Everything it starts, it stops.
set -eu

B=${1:-build}
RULES=rules/example.yaml
PORT=8080
TMP=$(mktemp -d /tmp/warden-demo.XXXXXX)
PIDS=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

wait_port() {
	i=0
	while ! curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "nothing answers on port $1" >&2; exit 1; }
		sleep 0.05
	done
}

for p in 9101 9102 9103 $PORT; do
	if curl -s -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null; then
		echo "port $p is taken; stop what runs there and retry" >&2
		exit 1
	fi
done

say "Starting mock providers (they stand in for real regional endpoints)"
for spec in "openai-eu 9101" "azure-de 9102" "openai-us 9103"; do
	set -- $spec
	"$B/mock_provider" --listen "127.0.0.1:$2" --name "$1" --quiet \
	    --record "$TMP/$1.jsonl" &
	PIDS="$PIDS $!"
	wait_port "$2"
	note "$1 on 127.0.0.1:$2"
done

say "Checking the rules: warden lint -c $RULES"
"$B/warden" lint -c "$RULES" | sed 's/^/   /'

say "Starting warden on 127.0.0.1:$PORT"
"$B/warden" serve -c "$RULES" 2>"$TMP/warden.log" &
WPID=$!
PIDS="$PIDS $WPID"
wait_port $PORT
sed 's/^/   log: /' "$TMP/warden.log"

chat() {
	# chat KEY BODY: POST a chat completion; prints status, route, body.
	curl -s -o "$TMP/body" -D "$TMP/head" \
	    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
	    -d "$2" "http://127.0.0.1:$PORT/v1/chat/completions" || true
	status=$(head -1 "$TMP/head" | cut -d' ' -f2)
	route=$(grep -i '^x-warden-route:' "$TMP/head" | cut -d' ' -f2 | tr -d '\r')
	note "HTTP $status${route:+, answered by route $route}"
	note "$(head -c 300 "$TMP/body")"
}

say "1. acme-health (EU health insurer) asks gpt-4o a question"
note "its routes, in order: openai-eu (IE), azure-de (DE)"
chat wk-demo-acme-health \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise our claims policy."}]}'
note "openai-eu received the route's own credential, never the caller's key:"
note "$(grep -o '"authorization":"[^"]*"' "$TMP/openai-eu.jsonl" | head -1 | sed 's/sk-demo-[a-z]*-/sk-demo-…-/')"

say "2. The same question, streamed (Server-Sent Events pass through as they arrive)"
curl -s -N -H 'Authorization: Bearer wk-demo-acme-health' \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Stream it [[mock chunks=4 chunk_delay_ms=150]]"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" | grep -v '^$' | sed 's/^/   /' | cut -c1-110

say "3. openai-eu starts failing: warden falls back to the next route of the tenant"
curl -s -o /dev/null -d '{"fail_next":1}' http://127.0.0.1:9101/_mock/config
chat wk-demo-acme-health \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Still there?"}]}'

say "4. Every provider of the tenant fails: the caller gets an OpenAI-style 502"
chat wk-demo-acme-health \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"[[mock status=500]]"}]}'

say "5. An unknown virtual key is refused before anything leaves the gateway"
chat wk-not-a-real-key \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'

say "6. What the key may use: GET /v1/models"
curl -s -H 'Authorization: Bearer wk-demo-first-bank' \
    "http://127.0.0.1:$PORT/v1/models" | sed 's/^/   /'
echo

say "7. /metrics (Prometheus) after the scenario"
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^warden_requests_total' | sed 's/^/   /'

say "Stopping warden (SIGTERM: in-flight requests may finish)"
kill -TERM $WPID
wait $WPID 2>/dev/null || true
tail -2 "$TMP/warden.log" | sed 's/^/   log: /'
say "Done. Next: make test runs every test; README.md explains the rest."
