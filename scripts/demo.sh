#!/bin/sh
# demo.sh BUILD_DIR - what `make run` shows: a software TPM with the
# providers' credentials sealed in it, mock providers in four countries,
# warden in front of them with rules/example.yaml, and a scenario driven
# with curl, explained as it goes; then the audit log verified and one
# tenant's records exported.  Everything it starts, it stops.
set -eu
# This script's processes are throw-away: warden may run as root here.
WARDEN_ALLOW_ROOT=1
export WARDEN_ALLOW_ROOT

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
	sh scripts/swtpm.sh stop "$TMP/tpm" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

wait_port() {
	# wait_port PORT [PATH]
	i=0
	while ! curl -s -o /dev/null "http://127.0.0.1:$1${2:-/_mock/health}" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "nothing answers on port $1" >&2; exit 1; }
		sleep 0.05
	done
}

for p in 9101 9102 9103 9104 9105 9106 9107 9108 9443 8081 $PORT; do
	if curl -s -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null ||
	    curl -sk -o /dev/null "https://127.0.0.1:$p/" 2>/dev/null; then
		echo "port $p is taken; stop what runs there and retry" >&2
		exit 1
	fi
done

say "Starting a software TPM (swtpm) on loopback; nothing touches a real TPM"
mkdir -p "$TMP/tpm"
TCTI=$(sh scripts/swtpm.sh start "$TMP/tpm")
note "TCTI: $TCTI"

say "Sealing the seven providers' credentials in the TPM (values from stdin)"
STORE="$TMP/secrets"
for spec in "openai-eu sk-demo-eu-0001" "azure-de sk-demo-de-0002" \
    "openai-us sk-demo-us-0003" "azure-us sk-demo-us-0004" \
    "azure-jp sk-demo-jp-0005" "bedrock-jp sk-demo-jp-0006" \
    "mistral-fr sk-demo-fr-0007" "mcp-crm tok-demo-mcp-0008"; do
	# shellcheck disable=SC2086
	set -- $spec
	printf '%s' "$2" | "$B/warden" secrets seal "$1" --store "$STORE" \
	    --tcti "$TCTI" | sed 's/^/   /'
done
"$B/warden" secrets list -c "$RULES" --store "$STORE" | sed 's/^/   /'

say "Starting mock providers (they stand in for real regional endpoints)"
for spec in "openai-eu 9101 IE" "azure-de 9102 DE" "openai-us 9103 US" \
    "azure-us 9104 US" "azure-jp 9105 JP" "bedrock-jp 9106 JP" \
    "mistral-fr 9107 FR"; do
	# shellcheck disable=SC2086
	set -- $spec
	"$B/mock_provider" --listen "127.0.0.1:$2" --name "$1" --quiet \
	    --record "$TMP/$1.jsonl" &
	PIDS="$PIDS $!"
	wait_port "$2"
	note "$1 ($3) on 127.0.0.1:$2"
done

note "an MCP server (the official @modelcontextprotocol/sdk) on 127.0.0.1:9108"
MCP_SERVER_TOKEN=tok-demo-mcp-0008 node tests/mcp-node/server.mjs 9108 \
    >"$TMP/mcp-server.log" 2>&1 &
PIDS="$PIDS $!"
wait_port 9108 /_control/seen

say "Checking the rules: warden lint -c $RULES"
"$B/warden" lint -c "$RULES" | sed 's/^/   /'

say "Starting warden on 127.0.0.1:$PORT"
# The audit signing key is made with an auth value only warden reads, so
# the TPM and the key's blobs are not enough to sign a checkpoint.
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/audit-key-auth"
chmod 600 "$TMP/audit-key-auth"
"$B/warden" serve -c "$RULES" --audit-dir "$TMP/audit" --tcti "$TCTI" \
    --secrets-store "$STORE" --auth-file "$TMP/audit-key-auth" \
    2>"$TMP/warden.log" &
WPID=$!
PIDS="$PIDS $WPID"
wait_port $PORT /healthz
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
note "its routes, in order: openai-eu (IE, zero retention), azure-de (DE, zero"
note "retention), openai-us (US, keeps 30 days); its data: personal, health"
chat wk-demo-acme-health \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise claim 4711."}]}'
note "openai-eu received the route's own credential, never the caller's key:"
note "$(grep -o '"authorization":"[^"]*"' "$TMP/openai-eu.jsonl" | head -1 | sed 's/sk-demo-[a-z]*-/sk-demo-…-/')"

say "2. The same question, streamed (Server-Sent Events pass through as they arrive)"
curl -s -N -H 'Authorization: Bearer wk-demo-acme-health' \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Stream it [[mock chunks=4 chunk_delay_ms=150]]"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" |
    grep -o '"content":"[^"]*"\|\[DONE\]' | sed 's/^/   event: /'

say "3. openai-eu starts failing: the fallback stays in the EU"
curl -s -o /dev/null -d '{"fail_next":1}' http://127.0.0.1:9101/_mock/config
chat wk-demo-acme-health \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Still there?"}]}'
note "requests openai-us ever received from acme-health: $(grep -c 'Summarise\|Still there' "$TMP/openai-us.jsonl" || true)"

say "4. Residency denial: acme-health asks for o3, which only US and JP routes serve"
chat wk-demo-acme-health \
    '{"model":"o3","messages":[{"role":"user","content":"Diagnose this."}]}'

say "4b. Retention denial: health data for mistral-large, whose only route keeps data"
note "mistral-fr is in France (inside the EEA) but keeps prompts 30 days;"
note "health data needs a zero-data-retention route (rule health-zdr):"
chat wk-demo-acme-health \
    '{"model":"mistral-large","messages":[{"role":"user","content":"Code this diagnosis."}]}'

say "5. The Japanese retailer's customer data: APPI and retention pick azure-jp"
note "sakura-retail lists openai-us (not APPI-adequate) and bedrock-jp (keeps"
note "data 90 days) before azure-jp; warden check explains without sending:"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}' >"$TMP/req.json"
"$B/warden" check -c "$RULES" --tenant sakura-retail "$TMP/req.json" |
    grep -E '"(route|rule|message|verdict)"' | sed 's/^ */   /'
chat wk-demo-sakura-retail \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Recommend a gift for customer 88."}]}'

say "6. A header may narrow what a tenant allows, never widen it"
note "acme-health claims a request holds only public data (it may only omit health):"
curl -s -H 'Authorization: Bearer wk-demo-acme-health' -H 'X-Warden-Data-Class: public' \
    -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" | sed 's/^/   /'
echo

say "6b. What a prompt holds reclassifies it: content detection (detect:)"
note "acme-research declares only public data; its first route is openai-us:"
chat wk-demo-acme-research \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Explain compound interest."}]}'
note "the same tenant pastes a customer's IBAN: the iban detector adds the class"
note "financial, and rule research-financial-eea keeps it in the EEA:"
chat wk-demo-acme-research \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Is DE89 3704 0044 0532 0130 00 a valid account?"}]}'
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Is DE89 3704 0044 0532 0130 00 a valid account?"}]}' >"$TMP/iban.json"
note "warden check names the detector and how often it fired, never the value:"
"$B/warden" check -c "$RULES" --tenant acme-research "$TMP/iban.json" |
    tr -d '\n' | grep -o '"detections": {[^}]*}\|"data_classes": \[[^]]*\]\|"routes": \[[^]]*\]' |
    tr -s ' ' | sed 's/^/   /'
note "a card number is replaced before the request leaves (action: redact);"
note "what openai-eu received:"
chat wk-demo-acme-research \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Refund card 4111 1111 1111 1111 please."}]}'
note "$(grep -o 'Refund card [^"\\]*' "$TMP/openai-eu.jsonl" | tail -1)"
note "a provider key in a prompt is refused (action: block), never echoed:"
chat wk-demo-acme-research \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Why does sk-proj-Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a fail?"}]}'

say "7. An agent's forbidden tool call is stopped mid-stream"
note "support-bot has read a customer record (personal data); the model now"
note "streams a call to send_email (external sink). The flow rule"
note "no-personal-data-out stops the stream before any part of that call leaves:"
curl -s -N -H 'Authorization: Bearer wk-demo-support-bot' \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Mail the customer their record [[mock tool_call=send_email]]"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"read_customer","arguments":"{\"id\":88}"}}]},{"role":"tool","tool_call_id":"c1","content":"Jane Doe, policy 4711"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" | grep -v '^$' | cut -c1-150 | sed 's/^/   /'
note "The same agent may still search the knowledge base:"
chat wk-demo-support-bot \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"Find the refund policy [[mock tool_call=search_kb]]"}]}'

say "7b. The same agent as Claude Code would run it: Anthropic Messages"
note "POST /v1/messages with x-api-key and anthropic-version; the history holds"
note "the read_customer call as a tool_use block. The model's send_email call is"
note "stopped at its content_block_start, before any input_json_delta of it:"
curl -s -N -H 'x-api-key: wk-demo-support-bot' -H 'anthropic-version: 2023-06-01' \
    -d '{"model":"gpt-4o","max_tokens":256,"stream":true,"tools":[{"name":"search_kb","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"Mail the customer their record [[mock tool_call=send_email]]"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"read_customer","input":{"id":88}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Jane Doe, policy 4711"}]}]}' \
    "http://127.0.0.1:$PORT/v1/messages" | grep '^event:' | uniq -c | sed 's/^ */   /'
note "the last event in full (Anthropic's error shape):"
curl -s -N -H 'x-api-key: wk-demo-support-bot' -H 'anthropic-version: 2023-06-01' \
    -d '{"model":"gpt-4o","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"again [[mock tool_call=send_email]]"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"read_customer","input":{"id":88}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Jane Doe"}]}]}' \
    "http://127.0.0.1:$PORT/v1/messages" | grep '^data: {"type":"error"' | cut -c1-170 | sed 's/^/   /'

say "7c. And as a Responses agent (Codex, the Agents SDK): POST /v1/responses"
note "function_call and function_call_output items in the input; the call is"
note "judged at response.output_item.added, before its arguments stream:"
curl -s -N -H 'Authorization: Bearer wk-demo-support-bot' \
    -d '{"model":"gpt-4o","stream":true,"input":[{"role":"user","content":"Mail the customer [[mock tool_call=send_email]]"},{"type":"function_call","call_id":"c1","name":"read_customer","arguments":"{\"id\":88}"},{"type":"function_call_output","call_id":"c1","output":"Jane Doe, policy 4711"}]}' \
    "http://127.0.0.1:$PORT/v1/responses" | grep '^data: {"type":"error"' | cut -c1-170 | sed 's/^/   /'
note "Embeddings of acme-health's customer data stay on the EU routes too:"
curl -s -o /dev/null -D "$TMP/head" -H 'Authorization: Bearer wk-demo-acme-health' \
    -d '{"model":"gpt-4o","input":["claim 4711: knee surgery"]}' \
    "http://127.0.0.1:$PORT/v1/embeddings"
note "HTTP $(head -1 "$TMP/head" | cut -d' ' -f2), answered by route $(grep -i '^x-warden-route:' "$TMP/head" | cut -d' ' -f2 | tr -d '\r')"

say "7d. The same agent's tools, where they run: MCP through /mcp/crm"
mcp() {
	# mcp SESSION JSON: one JSON-RPC message to /mcp/crm as support-bot.
	curl -s -H 'Authorization: Bearer wk-demo-support-bot' \
	    -H "X-Warden-Session: $1" -H 'Content-Type: application/json' \
	    -H 'Accept: application/json, text/event-stream' \
	    -H 'MCP-Protocol-Version: 2026-07-28' \
	    -H "Mcp-Method: $(printf '%s' "$2" | sed 's/.*"method":"\([^"]*\)".*/\1/')" \
	    ${3:+-H "Mcp-Name: $3"} -d "$2" "http://127.0.0.1:$PORT/mcp/crm" |
	    sed 's/^data: //' | grep -v '^event:\|^$'
}
note "tools/list: only the tools support-bot may call, each definition pinned"
note "on first sight:"
mcp demo-mcp '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
    grep -o '"name":"[a-z_]*"' | tr '\n' ' ' | sed 's/^/   /'
echo
note "(server tools admin_shell, summarize, confirm: hidden, as is any tool whose"
note "definition changes until 'warden mcp approve crm TOOL')"
note "The listing's audit record (kind mcp_list), written before its answer: the"
note "definitions it pinned and the tools it hid (an approval is recorded too):"
grep -h '"kind":"mcp_list"' "$TMP"/audit/audit-*.jsonl | tail -1 |
    grep -oE '"fingerprint":"[0-9a-f]{12}[0-9a-f]*","state":"pinned","tool":"[a-z_]*"|"tool":"[a-z_]*","why":"[^"]*"' |
    sed -E -e 's/"fingerprint":"([0-9a-f]{12})[0-9a-f]*","state":"pinned","tool":"([a-z_]*)"/pinned \2 (sha256 \1...)/' \
        -e 's/"tool":"([a-z_]*)","why":"([^"]*)"/hidden \1 (\2)/' | sed 's/^/   /'
note "It reads a customer record through MCP (personal data enters the session):"
mcp demo-mcp '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_customer","arguments":{"id":"88"}}}' read_customer | cut -c1-220 | sed 's/^/   /'
note "then tries the external sink through MCP: refused before the server sees"
note "it, by the flow rule chapter 7 showed in chat (one session, both paths):"
mcp demo-mcp '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"x@elsewhere.example","body":"Jane Doe"}}}' send_email | cut -c1-220 | sed 's/^/   /'
note "A stateless request whose Mcp-Name says one tool and whose body another:"
mcp demo-mcp '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"send_email","arguments":{}}}' search_docs | cut -c1-220 | sed 's/^/   /'
note "The refusal's audit record (kind mcp_call; arguments as an HMAC):"
grep -h '"kind":"mcp_call"' "$TMP"/audit/audit-*.jsonl | grep '"verdict":"deny"' |
    tail -1 | tr ',' '\n' | grep -E '"(agent|session|server|tool|verdict|rule|arguments_hmac)"' |
    tr '\n' ' ' | cut -c1-300 | sed 's/^/   /'
echo
note "A provider key in a tool's arguments: content detection (detect:) refuses"
note "the call before the server sees it, naming the detector, never the value:"
mcp demo-mcp-det '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"why does sk-proj-Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a fail"}}}' search_docs | cut -c1-220 | sed 's/^/   /'
note "The pinned definitions (warden mcp list):"
"$B/warden" mcp list -c "$RULES" --audit-dir "$TMP/audit" | sed 's/^/   /'

say "7e. The MCP server speaks on its own: sessions and their stream (/mcp/crm-live)"
live() {
	# live SESSION JSON [KEY]: one message to /mcp/crm-live as support-bot
	# (with KEY: the tenant's key naming the agent); the head in $TMP/head.
	curl -s -D "$TMP/head" -H "Authorization: Bearer ${3:-wk-demo-support-bot}" \
	    ${3:+-H 'X-Warden-Agent: support-bot'} -H 'X-Warden-Session: demo-live' \
	    -H 'Content-Type: application/json' \
	    -H 'Accept: application/json, text/event-stream' \
	    -H 'MCP-Protocol-Version: 2025-11-25' ${1:+-H "Mcp-Session-Id: $1"} \
	    -d "$2" "http://127.0.0.1:$PORT/mcp/crm-live" |
	    sed 's/^data: //' | grep -v '^event:\|^$' || true
}
live "" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"demo","version":"1"}}}' >/dev/null
SID=$(grep -i '^mcp-session-id:' "$TMP/head" | cut -d' ' -f2 | tr -d '\r')
note "initialize: the session id warden hands out is the server's with a tag"
note "that binds it to this agent and key: $SID"
live "$SID" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
curl -s -N -H 'Authorization: Bearer wk-demo-support-bot' \
    -H 'X-Warden-Session: demo-live' -H 'Accept: text/event-stream' \
    -H 'MCP-Protocol-Version: 2025-11-25' -H "Mcp-Session-Id: $SID" \
    "http://127.0.0.1:$PORT/mcp/crm-live" >"$TMP/live-stream" 2>/dev/null &
LIVE=$!
PIDS="$PIDS $LIVE"
i=0
until curl -s http://127.0.0.1:9108/_control/seen | grep -q "\"gets\":\[[^]]*${SID%%.*}"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "the session's stream did not open" >&2; exit 1; }
	sleep 0.05
done
note "The client holds the session's stream open (GET).  The server, on its own,"
note "logs two messages (one holds a card number, and the card detector has"
note "answers: true), says its tool list changed, then asks the client's model"
note "for a completion (sampling), tied to no call; support-bot's rules say"
note "sampling: deny."
note "What the server was told: $(curl -s "http://127.0.0.1:9108/_control/standalone?session=${SID%%.*}")"
i=0
until grep -q list_changed "$TMP/live-stream"; do
	i=$((i + 1))
	[ $i -gt 40 ] && break
	sleep 0.05
done
note "What reached the client on the stream: the clean notifications, not the"
note "card number, not the request:"
sed 's/^data: //' "$TMP/live-stream" | grep -v '^event:\|^$' | cut -c1-200 | sed 's/^/   /'
kill $LIVE 2>/dev/null || true
note "Each withheld message is an audit record of its own (kind mcp_stream):"
grep -h '"kind":"mcp_stream"' "$TMP"/audit/audit-*.jsonl | tail -2 |
    while read -r rec; do
	printf '%s\n' "$rec" | tr ',' '\n' |
	    grep -E '"(agent|session|server|mcp|verdict|rule)"' | tr '\n' ' ' |
	    cut -c1-300 | sed 's/^/   /'
	echo
    done
note "The same session id with the tenant's key naming the same agent: not this"
note "caller's session, and never sent on to the server:"
live "$SID" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' wk-demo-acme-health |
    cut -c1-200 | sed 's/^/   /'
note "HTTP $(head -1 "$TMP/head" | cut -d' ' -f2)"

say "8. Reviewing the agents' tool policies: warden policy review"
"$B/warden" policy review -c "$RULES" | sed 's/^/   /' || true
note "and the shortest path from customer data to an external sink:"
"$B/warden" policy reach -c "$RULES" support-bot --from read_customer \
    --to sink:external | sed 's/^/   /' || true

say "9. A credential is rotated without a restart"
printf '%s' sk-demo-eu-ROTATED | "$B/warden" secrets rotate openai-eu \
    --store "$STORE" --tcti "$TCTI" | sed 's/^/   /'
kill -HUP $WPID
sleep 0.5
chat wk-demo-acme-health \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"after rotation"}]}'
note "openai-eu now receives: $(grep -o '"authorization":"Bearer sk-demo-eu-[A-Z0-9]*' "$TMP/openai-eu.jsonl" | tail -1 | sed 's/.*Bearer //; s/sk-demo-eu-\(...\).*/sk-demo-eu-\1…/')"

say "10. An unknown virtual key is refused before anything leaves the gateway"
chat wk-not-a-real-key \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'

say "10b. What warden keeps, it keeps sealed (first-bank: keep redacted, 7 days)"
chat wk-demo-first-bank \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"Account 12-3456-78: why was my card declined?"}]}'
DEC=$(grep -i '^x-warden-decision:' "$TMP/head" | cut -d' ' -f2 | tr -d '\r')
note "files under the audit dir that hold the account number: $(grep -rl '12-3456-78' "$TMP/audit" | wc -l)"
note "its kept payload, decrypted with the TPM (warden audit payload show $DEC):"
"$B/warden" audit payload show "$DEC" --dir "$TMP/audit" --tcti "$TCTI" |
    cut -c1-150 | sed 's/^/   /'
cp -a "$TMP/audit" "$TMP/audit-backup"
note "warden audit purge --tenant first-bank destroys its keys in the TPM:"
"$B/warden" audit purge "$TMP/audit" --tenant first-bank --tcti "$TCTI" |
    sed 's/^/   /'
note "a backup of the audit dir taken before the purge, key blobs and all:"
"$B/warden" audit payload show "$DEC" --dir "$TMP/audit-backup" \
    --tcti "$TCTI" 2>&1 | sed 's/^/   /' || true

say "11. /metrics (Prometheus) after the scenario"
curl -s "http://127.0.0.1:$PORT/metrics" |
    grep '^warden_requests_total\|^warden_detections_total' | sed 's/^/   /'

say "Stopping warden (SIGTERM: in-flight requests may finish)"
kill -TERM $WPID
wait $WPID 2>/dev/null || true
tail -2 "$TMP/warden.log" | sed 's/^/   log: /'

say "12. The audit log: every decision, hash-chained, checkpoints signed in the TPM"
"$B/warden" audit pubkey --secrets-store "$STORE" >"$TMP/audit.pem"
note "$(grep -c . "$TMP"/audit/audit-*.jsonl | sed 's/.*://') records; the last one:"
tail -1 "$TMP"/audit/audit-*.jsonl | cut -c1-160 | sed 's/^/   /'
"$B/warden" audit verify "$TMP/audit" --pubkey "$TMP/audit.pem" | sed 's/^/   /'
note "the same log (its kinds: $(sed 's/.*"kind":"\([a-z_]*\)".*/\1/' "$TMP"/audit/audit-*.jsonl | sort -u | tr '\n' ' ')) checked by the independent verifier:"
python3 audit/verify.py log "$TMP/audit" --pubkey "$TMP/audit.pem" | sed 's/^/   audit\/verify.py: /'
note "a checkpoint's signed tree head checked with openssl alone (audit/FORMAT.md):"
CP=$(grep '"kind":"checkpoint"' "$TMP"/audit/audit-*.jsonl | tail -1)
field() { printf '%s' "$CP" | sed "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/"; }
CTR=$(field counter); [ "$CTR" = null ] && CTR=none
printf 'warden-audit-tree-head/2\n%s\n%s\n%s\n%s\n%s\n' "$(field tree_size)" \
    "$(field root)" "$(field time_us)" "$CTR" "$(field interval_s)" >"$TMP/msg"
field signature | base64 -d >"$TMP/sig.der"
openssl dgst -sha256 -verify "$TMP/audit.pem" -signature "$TMP/sig.der" \
    "$TMP/msg" | sed 's/^/   /'
note "the TPM counter each checkpoint carries (a log put back from before is behind it):"
"$B/warden" audit counter --tcti "$TCTI" | sed 's/^/   /'
CTRV=$("$B/warden" audit counter --tcti "$TCTI" --value)
"$B/warden" audit verify "$TMP/audit" --pubkey "$TMP/audit.pem" \
    --tpm-counter "$CTRV" | sed 's/^/   with --tpm-counter '"$CTRV"': /'
python3 audit/verify.py log "$TMP/audit" --pubkey "$TMP/audit.pem" \
    --tpm-counter "$CTRV" | sed 's/^/   audit\/verify.py --tpm-counter '"$CTRV"': /'
note "a copy of the log cut back to its first checkpoint (its newest records gone) verifies alone, but not against the counter:"
mkdir -p "$TMP/rolled-back"
FIRST=$(grep -n '"kind":"checkpoint"' "$TMP/audit/audit-000001.jsonl" | head -1 | cut -d: -f1)
head -n "$FIRST" "$TMP/audit/audit-000001.jsonl" >"$TMP/rolled-back/audit-000001.jsonl"
python3 audit/verify.py log "$TMP/rolled-back" | sed 's/^/   alone: /'
python3 audit/verify.py log "$TMP/rolled-back" --pubkey "$TMP/audit.pem" \
    --tpm-counter "$CTRV" | sed 's/^/   against the counter: /' || true
note "record 3 is in the tree that checkpoint signs (an RFC 9162 inclusion proof):"
"$B/warden" audit prove "$TMP/audit" 3 >"$TMP/proof.json"
"$B/warden" audit verify-proof "$TMP/proof.json" --pubkey "$TMP/audit.pem" | sed 's/^/   /'
note "export of acme-health's records (others appear as stubs), its manifest signed in the TPM, verified alone:"
"$B/warden" audit export "$TMP/audit" --format jsonl --tenant acme-health \
    --secrets-store "$STORE" --tcti "$TCTI" --auth-file "$TMP/audit-key-auth" \
    -o "$TMP/export.jsonl" 2>&1 | sed 's/^/   /'
"$B/warden" audit verify-export "$TMP/export.jsonl" --pubkey "$TMP/audit.pem" | sed 's/^/   /'
python3 audit/verify.py export "$TMP/export.jsonl" --pubkey "$TMP/audit.pem" | sed 's/^/   independent verifier (audit\/verify.py): /'
note "and a record someone edits afterwards is caught:"
cp "$TMP"/audit/audit-000001.jsonl "$TMP/segment.orig"
sed -i 's/"status":403/"status":200/' "$TMP"/audit/audit-000001.jsonl
"$B/warden" audit verify "$TMP/audit" --pubkey "$TMP/audit.pem" | sed 's/^/   /' || true
say "13. Provider kinds over TLS: rules/cloud.yaml (Azure, Bedrock, Vertex, OpenAI, Anthropic)"
note "tests/mock/mock_cloud stands in for the five services on 127.0.0.1:9443,"
note "with a CA made here (the routes' ca_file), and checks each kind's"
note "authentication the way the real service does: api-key, SigV4"
note "recomputed with the secret, a service account's RS256 JWT at /token."
CD=build/demo-cloud
rm -rf "$CD"
mkdir -p "$CD"
(cd "$CD" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
        -days 1 -subj '/CN=warden demo CA' &&
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr \
        -subj '/CN=127.0.0.1' &&
    printf 'subjectAltName=IP:127.0.0.1\n' >srv.ext &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out srv.pem -days 1 -extfile srv.ext &&
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.pem &&
    openssl pkey -in sa.pem -pubout -out sa.pub) >/dev/null 2>&1
cat >"$CD/keys" <<KEYS
azure=az-demo-eu-dz-0008
anthropic=sk-ant-demo-0009
openai=sk-demo-eu-0001
aws=AKIADEMOEXAMPLE0010:demoSecretKey/ExampleOnly+0010
aws_region=eu-central-1
sa_email=warden@acme.iam.gserviceaccount.com
sa_pubkey=$CD/sa.pub
token_url=https://127.0.0.1:9443/token
KEYS
"$B/mock_cloud" --port 9443 --cert "$CD/srv.pem" --key "$CD/srv.key" \
    --keys "$CD/keys" --record "$TMP/cloud.jsonl" >/dev/null &
PIDS="$PIDS $!"
for spec in "azure-global az-demo-global-0011" "azure-eu-dz az-demo-eu-dz-0008" \
    "aws-eu AKIADEMOEXAMPLE0010:demoSecretKey/ExampleOnly+0010" \
    "anthropic sk-ant-demo-0009"; do
	# shellcheck disable=SC2086
	set -- $spec
	printf '%s' "$2" | "$B/warden" secrets seal "$1" --store "$STORE" \
	    --tcti "$TCTI" | sed 's/^/   /'
done
"$B/warden" secrets import-key vertex-eu --store "$STORE" --tcti "$TCTI" \
    <"$CD/sa.pem" | sed 's/^/   /'
note "(the service account's private key now signs inside the TPM only;"
note " its PEM file is removed)"
rm -f "$CD/sa.pem"
"$B/warden" lint -c rules/cloud.yaml 2>&1 | sed 's/^/   /'
"$B/warden" serve -c rules/cloud.yaml --listen 127.0.0.1:8081 \
    --audit-dir "$TMP/audit-cloud" --tcti "$TCTI" --secrets-store "$STORE" \
    --auth-file "$TMP/audit-key-auth" 2>"$TMP/warden-cloud.log" &
CPID=$!
PIDS="$PIDS $CPID"
wait_port 8081 /healthz
PORT=8081
note "eu-clinic (EU health data) asks gpt-4o: Azure Global may process"
note "anywhere, so the EU DataZone deployment answers (api-key checked):"
chat wk-demo-eu-clinic \
    '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
note "Claude through Bedrock's eu. profile, the request SigV4-signed:"
chat wk-demo-eu-clinic \
    '{"model":"eu.anthropic.claude-3-7-sonnet-20250219-v1:0","messages":[{"role":"user","content":"hi"}]}'
note "Gemini in europe-west4 with a token from the service account's JWT:"
chat wk-demo-eu-clinic \
    '{"model":"google/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}'
note "Anthropic's API is a global deployment: refused for EU health data:"
chat wk-demo-eu-clinic \
    '{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}'
note "a rule on storage alone: the lab's data may not be stored in the US:"
chat wk-demo-lab-storage \
    '{"model":"google/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}'
note "what the mock verified (path, kind, verdict):"
sed 's/^/   /' "$TMP/cloud.jsonl"
kill -TERM $CPID
wait $CPID 2>/dev/null || true
PORT=8080

note "(the auditor's copy is put back for what follows)"
cp "$TMP/segment.orig" "$TMP"/audit/audit-000001.jsonl

say "14. For the auditor and the policy reviewer: stats, register, report pages"
note "warden audit stats, for acme-health:"
"$B/warden" audit stats "$TMP/audit" --tenant acme-health | sed -n '1,12p' |
    sed 's/^/   /'
note "its transfer register (per data class and destination country):"
"$B/warden" audit register "$TMP/audit" --tenant acme-health | sed 's/^/   /'
note "the last records, as warden audit tail shows them (hashes checked):"
"$B/warden" audit tail "$TMP/audit" | tail -3 | cut -c1-150 | sed 's/^/   /'
"$B/warden" audit report "$TMP/audit" --tenant acme-health \
    --pubkey "$TMP/audit.pem" -c "$RULES" -o "$B/report.html" 2>&1 |
    tail -1 | sed 's/^/   /'
"$B/warden" policy report -c "$RULES" -o "$B/policy-report.html" 2>&1 |
    sed 's/^/   /'
note "Open them in a browser (self-contained, nothing is fetched):"
note "  the auditor's report: $(cd "$B" && pwd)/report.html"
note "  the policy report:    $(cd "$B" && pwd)/policy-report.html"
say "Done. Next: make test runs every test; README.md explains the rest."
