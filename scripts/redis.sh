#!/usr/bin/env bash
# A private redis-server for the demo: loopback only, appendonly (losing it loses
# no sends, but RedBeat entries are kept), noeviction (RedBeat silently loses
# evicted entries), data under var/.
set -euo pipefail
action=$1 port=$2 dir=$3
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case $action in
  start)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
      --maxmemory-policy noeviction --save "" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && exit 0
      sleep 0.1
    done
    echo "redis-server did not answer on port $port (see $dir/redis.log)" >&2
    exit 1 ;;
  stop)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true ;;
esac
