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
#   scripts/redis-test-server.sh cluster [DIR]
#                                          install if needed, start a Redis
#                                          Cluster of 3 primaries and 3 replicas
#                                          (files under DIR, default a new
#                                          temporary directory), print DIR and
#                                          then the six addresses, one a line
#   scripts/redis-test-server.sh cluster-stop DIR
#                                          stop the cluster whose files are in DIR
#
# Exit status 3 means redis-server is missing and cannot be installed
# (tests skip on it); anything else non-zero is a failure.
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

# redis_test_cluster_start [DIR]: six cluster-enabled servers on free
# loopback ports (a port P also uses P+10000 for the cluster bus), joined
# by redis-cli --cluster create as 3 primaries with one replica each.
# Prints DIR, then one address a line; the first three are the primaries.
redis_test_cluster_start() {
  redis_test_server_install || return 3
  local dir="${1:-}" ports=() port i n attempt
  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/gg-redis-cluster.XXXXXX")" || return 1
  fi
  mkdir -p "$dir" || return 1
  for n in 1 2 3 4 5 6; do
    for attempt in $(seq 1 20); do
      port=$((20000 + RANDOM % 30000))
      _redis_port_free "$port" && _redis_port_free $((port + 10000)) || continue
      mkdir -p "$dir/$port"
      if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
        --cluster-node-timeout 2000 --dir "$dir/$port" --daemonize yes \
        --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"; then
        for i in $(seq 1 100); do
          [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]] && break
          sleep 0.05
        done
        if [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == "PONG" ]]; then
          ports+=("$port")
          break
        fi
      fi
      rm -rf "${dir:?}/$port"
    done
    if [[ ${#ports[@]} -ne $n ]]; then
      echo "redis-test-server: could not start cluster node $n" >&2
      redis_test_cluster_stop "$dir"
      return 1
    fi
  done
  local addrs=()
  for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-test-server: redis-cli --cluster create failed:" >&2
    tail -n 20 "$dir/create.log" >&2
    redis_test_cluster_stop "$dir"
    return 1
  fi
  # Ready when every node agrees the cluster is ok (all slots served) and
  # every replica is in sync with its primary.
  for i in $(seq 1 300); do
    local ok=0 synced=0
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && ok=$((ok + 1))
      redis-cli -p "$port" info replication 2>/dev/null | grep -q '^master_link_status:up' && synced=$((synced + 1))
    done
    if [[ $ok -eq 6 && $synced -eq 3 ]]; then
      echo "$dir"
      # Primaries first, as the cluster sees them now.
      for port in "${ports[@]}"; do
        redis-cli -p "$port" role 2>/dev/null | head -n 1 | grep -q master && echo "127.0.0.1:$port"
      done
      for port in "${ports[@]}"; do
        redis-cli -p "$port" role 2>/dev/null | head -n 1 | grep -q master || echo "127.0.0.1:$port"
      done
      return 0
    fi
    sleep 0.1
  done
  echo "redis-test-server: cluster did not reach cluster_state:ok" >&2
  redis_test_cluster_stop "$dir"
  return 1
}

# redis_test_cluster_stop DIR: stops every node whose files are in DIR
# and removes DIR.
redis_test_cluster_stop() {
  local dir="${1:-}" pidfile
  if [[ -z "$dir" || ! -d "$dir" ]]; then
    echo "redis-test-server: cluster-stop needs the cluster's directory" >&2
    return 1
  fi
  for pidfile in "$dir"/*/redis.pid; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  rm -rf "$dir"
  return 0
}

# Run as a command unless sourced.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-start}" in
    install) redis_test_server_install ;;
    start) redis_test_server_start ;;
    stop) redis_test_server_stop "${2:-}" ;;
    cluster) redis_test_cluster_start "${2:-}" ;;
    cluster-stop) redis_test_cluster_stop "${2:-}" ;;
    *)
      echo "usage: $0 [install|start|stop ADDR|cluster [DIR]|cluster-stop DIR]" >&2
      exit 2
      ;;
  esac
fi
