#!/usr/bin/env bash
# Runs the load harness (cmd/loadgen): the simulator, plain Caddy
# reverse_proxy and Groundgate with the full demo policy, side by side on
# this machine. Flags go to loadgen (-h lists them), e.g.
#
#   ./scripts/loadtest.sh                     # the full run, about 3 minutes
#   ./scripts/loadtest.sh -duration 3s -streams 500
#   ./scripts/loadtest.sh -pprof prof         # also the gateway's CPU and heap profiles
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp -d)/loadgen"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/loadgen
"$bin" "$@"
