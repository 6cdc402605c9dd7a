#!/bin/sh
# make example [REDIS=1] [ADDR=host:port]: serves examples/showcase on http://127.0.0.1:8080/
# (ADDR=host:port to change it) until Ctrl-C. With --redis it first starts a
# private redis-server (loopback, a free port, no persistence, in a temporary
# folder) and hands it to the app as REDIS_URL; the server is stopped by its
# pid, and the folder removed, when the app exits.
set -u
addr=${ADDR:-127.0.0.1:8080}
host=build/bin/lowbit
redis_pid=""
dir=""

cleanup() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  if [ -n "$dir" ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
# Ctrl-C reaches the app too (same process group): it drains and exits,
# then this script goes on to stop redis.
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${1:-}" = "--redis" ]; then
  if ! command -v redis-server >/dev/null; then
    echo "example: redis-server is not installed (make deps, or apt-get install redis-server)" >&2
    exit 1
  fi
  dir=$(mktemp -d)
  for _ in 1 2 3 4 5 6 7 8; do
    # A port outside Linux's ephemeral range; another one if it is taken.
    port=$(shuf -i 20000-32000 -n 1)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" --daemonize no &
    redis_pid=$!
    for _ in $(seq 100); do
      grep -q "Ready to accept connections" "$dir/redis.log" 2>/dev/null && break
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    if grep -q "Ready to accept connections" "$dir/redis.log" 2>/dev/null; then break; fi
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=""
    : > "$dir/redis.log"
  done
  if [ -z "$redis_pid" ]; then
    echo "example: redis-server did not start (see $dir/redis.log)" >&2
    exit 1
  fi
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "example: redis-server (pid $redis_pid) on $REDIS_URL"
fi

echo "example: starting examples/showcase on $addr (Ctrl-C stops it)"
"$host" examples/showcase/main.lua "$addr"
rc=$?
# (Ctrl-C and SIGTERM end the script in their traps, after the app exits.)
if [ "$rc" -ne 0 ]; then
  echo "example: the showcase exited with status $rc; another address: make example ADDR=127.0.0.1:8081" >&2
fi
exit "$rc"
