#!/usr/bin/env bash
# Runs every check Groundgate has: vet, the race-enabled tests (unit,
# fuzz seed corpora, integration through a real Caddy), and a smoke test
# of the demo built by ./xcaddy.sh. CI runs exactly this (.ci/run).
#
#   ./scripts/test.sh            everything
#   SKIP_DEMO=1 ./scripts/test.sh  without building ./caddy
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi

echo "== redis-server (for the shared-budget tests)"
./scripts/redis-test-server.sh install

echo "== chromium (for the admin console's browser tests)"
if ./scripts/chromium-install.sh; then
  export GROUNDGATE_REQUIRE_CHROMIUM=1
else
  echo "chromium could not be installed: the browser tests will skip" >&2
fi

echo "== JavaScript clients (the Vercel AI SDK, for the client tests)"
./scripts/node-clients.sh install
export GROUNDGATE_REQUIRE_NODE_CLIENTS=1

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

if [[ -z "${SKIP_DEMO:-}" ]]; then
  echo "== demo smoke test"
  ./scripts/demo-smoke.sh
fi
echo "== all checks passed"
