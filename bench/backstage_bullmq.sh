#!/bin/sh
# BullMQ 6 next to lowbit's Redis store (bench/backstage_redis.lua calls
# this): installs bullmq@6 and ioredis@5 from npm into a mktemp -d folder
# (removed at the end, never committed) and runs backstage_bullmq.mjs RUNS
# times on the same redis-server. Usage: sh bench/backstage_bullmq.sh N C PORT RUNS
N=${1:-50000}; C=${2:-100}; PORT=${3:-6379}; RUNS=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "bullmq: skipped (node/npm not installed)"; exit 0; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
npm init -y >/dev/null 2>&1
if ! npm install --silent --no-audit --no-fund bullmq@6 ioredis@5 >npm.log 2>&1; then
  echo "bullmq: skipped (npm install failed: $(tail -n 1 npm.log))"; exit 0
fi
cp "$here/backstage_bullmq.mjs" .
ver=$(node -e 'console.log(require("bullmq/package.json").version)' 2>/dev/null)
adds=""; drains=""
i=0
while [ $i -lt "$RUNS" ]; do
  out=$(node backstage_bullmq.mjs "$N" "$C" "$PORT") || { echo "bullmq: run failed"; exit 0; }
  adds="$adds $(echo "$out" | awk '{print $1}')"; drains="$drains $(echo "$out" | awk '{print $2}')"
  i=$((i + 1))
done
. "$here/lib.sh"
med() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'bullmq %-12s N=%d  add (200 in flight):      %6d jobs/s   drain (concurrency=%d): %6d jobs/s   (medians of %d; runs:%s |%s; node %s)\n' \
  "$ver" "$N" "$(med $adds)" "$C" "$(med $drains)" "$RUNS" "$adds" "$drains" "$(node --version)"
# The same cases as bench/backstage_redis.lua's lines (200 in flight there too).
bench_line backstage_redis "dispatch, 200 in flight" jobs_per_s bullmq "$(med $adds)" jobs/s higher
bench_line backstage_redis "drain, concurrency $C" jobs_per_s bullmq "$(med $drains)" jobs/s higher
