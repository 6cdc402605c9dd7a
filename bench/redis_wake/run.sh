#!/bin/sh
# Why redis-benchmark's round trips are faster than lowbit.redis's on a VM
# (bench/redis.lua): a C client that waits for each reply the way lowbit's
# loop does (write, epoll_wait, read) against the same C client adding, after
# each write, what redis-benchmark's event loop does (epoll_ctl DEL + ADD of
# its socket), or an unrelated call that frees an inode through RCU
# (close(socket())). One PING per round trip to a redis-server of its own,
# server on CPU 0, client on CPU 1; the three in turn, 7 rounds; prints the
# median microseconds per round trip of each. Not part of make bench.
#   sh bench/redis_wake/run.sh [N]      (from the repository root)
set -e
N=${1:-5000}
command -v redis-server >/dev/null || { echo "redis_wake: skipped (no redis-server)"; exit 0; }
TMP=$(mktemp -d)
cc -O2 -Wall -Wextra -o "$TMP/wake" bench/redis_wake/wake.c
PORT=$(( 20000 + $$ % 10000 ))
taskset -c 0 redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" >/dev/null 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do grep -q "Ready to accept" "$TMP/redis.log" 2>/dev/null && break; sleep 0.05; done
for r in 1 2 3 4 5 6 7; do
  for m in plain readd rcu; do echo "$m $(taskset -c 1 "$TMP/wake" $PORT $m $N)"; done
done | sort -k1,1 -k2n | awk '{v[$1] = v[$1] " " $2; n[$1]++; a[$1, n[$1]] = $2}
  END { for (k in v) printf "%-6s us per round trip: median %s  (all:%s)\n", k, a[k, 4], v[k] }'
