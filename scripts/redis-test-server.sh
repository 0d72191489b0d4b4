#!/usr/bin/env bash
# Installs redis-server (Debian package) if it is missing, and starts
# throw-away Redis servers on loopback for tests: a free port, a temporary
# directory, no persistence (--save '' --appendonly no).
#
# The Go tests of plugins/stores/redis start their own redis-server and
# only need it on PATH; they FAIL without it (GROUNDGATE_SKIP_REDIS=1
# skips them instead). So before `go test ./...` on a new machine:
#
#   scripts/redis-test-server.sh install
#
# Called:
#   scripts/redis-test-server.sh [start]   install if needed, start a server,
#                                          print its address (127.0.0.1:PORT)
#   scripts/redis-test-server.sh install   install only
#   scripts/redis-test-server.sh stop ADDR stop a server started by this script
#
# Sourced (bash), it defines the same commands as functions and leaves the
# caller's shell options alone:
#   source scripts/redis-test-server.sh
#   redis_test_server_start     # sets and exports GG_REDIS_ADDR, GG_REDIS_DIR
#   ...                         # use $GG_REDIS_ADDR
#   redis_test_server_stop      # stops $GG_REDIS_ADDR and removes its directory

redis_test_server_install() {
  if command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "redis-test-server: redis-server is missing and neither root nor sudo is available" >&2
      return 1
    fi
    sudo="sudo"
  fi
  echo "redis-test-server: installing redis-server (apt-get install -y redis-server)" >&2
  # The package lists may be missing or stale on a fresh machine: update
  # them only when the first attempt fails.
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2; then
    $sudo apt-get update -qq >&2 || return 1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2 || return 1
  fi
  # The package's service is not wanted: tests start their own servers.
  # (Containers without systemd never start it; elsewhere stop it quietly.)
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    $sudo systemctl stop redis-server >/dev/null 2>&1 || true
  fi
  command -v redis-server >/dev/null 2>&1
}

# _redis_port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
_redis_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

redis_test_server_start() {
  redis_test_server_install || return 1
  local dir port attempt i
  dir="$(mktemp -d "${TMPDIR:-/tmp}/gg-redis.XXXXXX")" || return 1
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    _redis_port_free "$port" || continue
    if ! redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"; then
      continue
    fi
    for i in $(seq 1 100); do
      if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == "PONG" ]]; then
        GG_REDIS_ADDR="127.0.0.1:$port"
        GG_REDIS_DIR="$dir"
        export GG_REDIS_ADDR GG_REDIS_DIR
        echo "$GG_REDIS_ADDR"
        return 0
      fi
      sleep 0.05
    done
    # Did not come up on this port (taken meanwhile?): clean up, try another.
    [[ -f "$dir/redis.pid" ]] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
  done
  echo "redis-test-server: could not start redis-server; log:" >&2
  tail -n 20 "$dir/redis.log" >&2 2>/dev/null
  rm -rf "$dir"
  return 1
}

# redis_test_server_stop [ADDR]: shuts down the server at ADDR (default
# $GG_REDIS_ADDR) without saving, and removes its directory if known.
redis_test_server_stop() {
  local addr="${1:-${GG_REDIS_ADDR:-}}"
  if [[ -z "$addr" ]]; then
    echo "redis-test-server: stop needs an address (127.0.0.1:PORT)" >&2
    return 1
  fi
  local port="${addr##*:}"
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  if [[ -n "${GG_REDIS_DIR:-}" && "$addr" == "${GG_REDIS_ADDR:-}" ]]; then
    rm -rf "$GG_REDIS_DIR"
    unset GG_REDIS_ADDR GG_REDIS_DIR
  fi
  return 0
}

# Run as a command unless sourced.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-start}" in
    install) redis_test_server_install ;;
    start) redis_test_server_start ;;
    stop) redis_test_server_stop "${2:-}" ;;
    *)
      echo "usage: $0 [install|start|stop ADDR]" >&2
      exit 2
      ;;
  esac
fi
