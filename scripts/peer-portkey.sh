#!/usr/bin/env bash
# Installs the Portkey AI gateway (npm @portkey-ai/gateway, pinned with
# its dependencies by scripts/peer-portkey/package-lock.json) for the load
# harness's peer column, outside the repository, and prints where:
#
#   ./scripts/peer-portkey.sh install   # idempotent; prints the directory
#   ./scripts/peer-portkey.sh dir       # the directory, installed or not
#   ./scripts/loadtest.sh -peer portkey="$(./scripts/peer-portkey.sh install)"
#
# The directory is $GROUNDGATE_PEER_DIR/portkey, by default
# ${XDG_CACHE_HOME:-~/.cache}/groundgate/peer/portkey. Needs Node.js 18 or
# later and npm (./scripts/node-clients.sh install brings them).
#
# The lock file overrides @hono/node-server to 1.13.8: with the 1.14.x and
# later versions npm would pick, Portkey 1.15.2 fails every streamed chat
# completion with "TypeError: immutable" (it adds headers to a response
# whose headers it may not change).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${GROUNDGATE_PEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/groundgate/peer}/portkey"
entry="$dir/node_modules/@portkey-ai/gateway/build/start-server.js"

case "${1:-}" in
  dir)
    echo "$dir"
    ;;
  install)
    command -v node >/dev/null && command -v npm >/dev/null ||
      { echo "peer-portkey: Node.js and npm are needed (./scripts/node-clients.sh install)" >&2; exit 1; }
    major=$(node -p 'process.versions.node.split(".")[0]')
    (( major >= 18 )) || { echo "peer-portkey: Node.js $major is too old (need 18 or later)" >&2; exit 1; }
    if [[ -f "$entry" ]] && cmp -s "$here/peer-portkey/package-lock.json" "$dir/package-lock.json"; then
      echo "peer-portkey: up to date in $dir" >&2
    else
      mkdir -p "$dir"
      cp "$here/peer-portkey/package.json" "$here/peer-portkey/package-lock.json" "$dir/"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
      [[ -f "$entry" ]] || { echo "peer-portkey: $entry missing after npm ci" >&2; exit 1; }
    fi
    echo "$dir"
    ;;
  *)
    echo "usage: $0 install|dir" >&2
    exit 2
    ;;
esac
