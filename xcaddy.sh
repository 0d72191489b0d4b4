#!/usr/bin/env bash
# Builds ./caddy with every Groundgate module, through xcaddy, with pinned
# versions. With "run", starts it on the demo Caddyfile afterwards.
#
#   ./xcaddy.sh          build ./caddy
#   ./xcaddy.sh run      build, then run the demo (gateway on 127.0.0.1:8080)
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5

if ! command -v go >/dev/null; then
  echo "xcaddy.sh: Go 1.26 or newer is required (https://go.dev/dl/)" >&2
  exit 1
fi

export CGO_ENABLED=${CGO_ENABLED:-0}
go run "github.com/caddyserver/xcaddy/cmd/xcaddy@${XCADDY_VERSION}" build "${CADDY_VERSION}" \
  --output ./caddy \
  --with "github.com/groundgate/groundgate@v0.0.0=."

if [[ "${1:-}" == "run" ]]; then
  # With no Azure endpoint configured, the demo talks to the bundled
  # simulator, which accepts any key.
  if [[ -z "${AZURE_OPENAI_ENDPOINT:-}" ]]; then
    export AZURE_OPENAI_API_KEY=${AZURE_OPENAI_API_KEY:-simulator-key}
  elif [[ -z "${AZURE_OPENAI_API_KEY:-}" ]]; then
    echo "xcaddy.sh: AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_API_KEY is not" >&2
    exit 1
  fi
  exec ./caddy run --config Caddyfile --adapter caddyfile
fi
