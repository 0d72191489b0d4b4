#!/usr/bin/env bash
# Builds ./caddy with ./xcaddy.sh and checks the demo as a user runs it:
# a second ./xcaddy.sh does not rebuild; a plain `./caddy run` starts it
# offline with no environment; chat works with the demo key in either
# header and a wrong key gets 401; the access log never holds a key; a
# second instance on the same ports fails instead of sharing them. The
# demo's fixed ports (8080, 8081, 2019) must be free: run it in a private
# network namespace on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "demo smoke: $*" >&2
  [[ -n "${log:-}" ]] && cat "$log" >&2
  exit 1
}

./xcaddy.sh
./xcaddy.sh 2>&1 | grep -q "up to date" || fail "a second ./xcaddy.sh rebuilt an up-to-date ./caddy"

unset AZURE_OPENAI_ENDPOINT AZURE_OPENAI_API_KEY AZURE_OPENAI_DEPLOYMENT AZURE_OPENAI_MINI_DEPLOYMENT AZURE_OPENAI_EMBEDDINGS_DEPLOYMENT
log=$(mktemp)
second=$(mktemp)
./caddy run >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log" "$second"' EXIT

for _ in $(seq 1 100); do
  if curl -s -o /dev/null http://127.0.0.1:8080/v1/models; then break; fi
  sleep 0.1
done

chat='{"model":"gpt-4o","messages":[{"role":"user","content":"Is my TV under warranty?"}]}'
for header in 'Authorization: Bearer demo-key' 'api-key: demo-key'; do
  out=$(curl -sS -w '\n%{http_code}' http://127.0.0.1:8080/v1/chat/completions \
    -H "$header" -H 'Content-Type: application/json' -d "$chat")
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  [[ "$code" == 200 && "$body" == *'Is my TV under warranty?'* ]] || fail "$header: unexpected answer ($code): $body"
done
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/v1/chat/completions -H 'api-key: wrong-key-0123456789' -d '{}')
[[ "$code" == 401 ]] || fail "a wrong key got $code, want 401"

# A second instance must not start on the same ports.
if timeout 30 ./caddy run >"$second" 2>&1; then
  fail "a second instance started on the demo's ports"
fi
grep -q "already in use" "$second" || { cat "$second" >&2; fail "the second instance failed for another reason"; }
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/v1/models -H 'api-key: demo-key')
[[ "$code" == 200 ]] || fail "the first instance stopped answering ($code)"

sleep 0.2 # access entries are written after the response
grep -q '"handled request"' "$log" || fail "no access log entries"
if grep -q -e demo-key -e wrong-key-0123456789 "$log"; then
  fail "a client key reached the log"
fi
echo "demo smoke: ok"
