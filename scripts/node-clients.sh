#!/usr/bin/env bash
# Installs the JavaScript clients the integration tests drive (the Vercel
# AI SDK, pinned by integration/clients/*/package-lock.json): Node.js and
# npm from Debian's packages when missing, then `npm ci` per client.
#
#   ./scripts/node-clients.sh install
set -euo pipefail
cd "$(dirname "$0")/.."

[[ "${1:-}" == "install" ]] || { echo "usage: $0 install" >&2; exit 2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if (( major < 18 )); then
  echo "Node.js $major is too old for the AI SDK (need 18 or later)" >&2
  exit 1
fi
for dir in integration/clients/*/; do
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
