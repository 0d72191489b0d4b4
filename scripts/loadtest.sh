#!/usr/bin/env bash
# Runs the load harness (cmd/loadgen): the simulator, plain Caddy
# reverse_proxy and Groundgate with the demo's default policy, side by side
# on this machine. Flags go to loadgen (-h lists them), e.g.
#
#   ./scripts/loadtest.sh                     # the full run, about 4 minutes
#   ./scripts/loadtest.sh -duration 3s -streams 500
#   ./scripts/loadtest.sh -pprof prof         # also the gateway's profiles
#   ./scripts/loadtest.sh -markdown speed.md  # also the README's table
#   ./scripts/loadtest.sh -before old/loadgen # an older build beside this one
#   ./scripts/loadtest.sh -peer portkey="$(./scripts/peer-portkey.sh install)"
#
# Run it in a private network namespace on a shared machine, e.g.
#   unshare -n bash -c 'ip link set lo up; ./scripts/loadtest.sh'
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp -d)/loadgen"
trap 'rm -rf "$(dirname "$bin")"' EXIT
rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ $rev != unknown && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  rev+="+modified"
fi
go build -ldflags "-X main.commit=$rev" -o "$bin" ./cmd/loadgen
"$bin" "$@"
