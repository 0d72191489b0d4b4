#!/usr/bin/env bash
# Builds ./caddy with ./xcaddy.sh, starts the demo Caddyfile exactly as
# `./xcaddy.sh run` does, sends a chat request with the demo key, checks
# the answer, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

./xcaddy.sh
export AZURE_OPENAI_API_KEY=simulator-key
unset AZURE_OPENAI_ENDPOINT AZURE_OPENAI_DEPLOYMENT
log=$(mktemp)
./caddy run --config Caddyfile --adapter caddyfile >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  if curl -s -o /dev/null http://127.0.0.1:8080/v1/models; then break; fi
  sleep 0.1
done

out=$(curl -sS -w '\n%{http_code}' http://127.0.0.1:8080/v1/chat/completions \
  -H 'Authorization: Bearer demo-key' -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o","messages":[{"role":"user","content":"Is my TV under warranty?"}]}')
code=${out##*$'\n'}
body=${out%$'\n'*}
if [[ "$code" != 200 || "$body" != *'Is my TV under warranty?'* ]]; then
  echo "demo smoke: unexpected answer ($code): $body" >&2
  cat "$log" >&2
  exit 1
fi
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/v1/chat/completions -H 'Authorization: Bearer wrong' -d '{}')
if [[ "$code" != 401 ]]; then
  echo "demo smoke: a wrong key got $code, want 401" >&2
  exit 1
fi
echo "demo smoke: ok"
