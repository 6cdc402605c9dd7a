#!/bin/bash
# CPU time per WebSocket echo message, on both ends: the server (pinned to
# CPU 0) and the shared load generator wsload (CPU 1), read from /proc. When
# the two figures are equal, both cores are full and msgs/s says as much
# about the client as about the server.
#   bash bench/ws_cpu.sh "build/bin/lowbit examples/ws_echo.lua 127.0.0.1:18110" 18110 [sizes]
# Its @bench lines name the implementation $BENCH_IMPL (default lowbit).
CMD=$1; PORT=${2:-18110}; SIZES=${3:-"16 4096 65536"}
. "$(dirname "$0")/lib.sh"
B=${BENCH_BIN:-/tmp/lowbit-bench-bin}
[ -x "$B/wsload" ] || { echo "no $B/wsload (run ../shared/bench/setup.sh)"; exit 0; }
if ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT "; then
  echo "port $PORT is already in use: stop what listens there first"; exit 1
fi
taskset -c 0 bash -c "exec $CMD" >/dev/null 2>&1 &
spid=$!
sleep 1
kill -0 $spid 2>/dev/null || { echo "the server did not start: $CMD"; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
for size in $SIZES; do
  s0=$(cpu $spid)
  out=$(mktemp)
  taskset -c 1 "$B/wsload" -url "ws://127.0.0.1:$PORT/ws" -c 32 -s "$size" -d 4s > "$out" 2>/dev/null &
  lp=$!
  sleep 3.9; c=$(cpu $lp); wait $lp
  s1=$(cpu $spid)
  awk -v m="$(awk '{print $1}' "$out")" -v s=$((s1 - s0)) -v c="$c" -v t="$tick" -v size="$size" 'BEGIN{
    n = m * 4; printf "size=%-6s %s msgs/s  cpu/message: server %.2f us, wsload %.2f us\n", size, m, s/t/n*1e6, c/t/n*1e6 }'
  m=$(awk '{print $1}' "$out")
  if [ "${m:-0}" != 0 ]; then
    bench_line ws_cpu "echo $size B, 32 conns" msgs_per_s "${BENCH_IMPL:-lowbit}" "$m" msgs/s higher
    bench_line ws_cpu "echo $size B, 32 conns" cpu_us_per_msg "${BENCH_IMPL:-lowbit}" "$(awk -v m="$m" -v s=$((s1 - s0)) -v t="$tick" 'BEGIN{printf "%.3f", s/t/(m*4)*1e6}')" us lower
    bench_line ws_cpu "echo $size B, 32 conns" wsload_cpu_us_per_msg "${BENCH_IMPL:-lowbit}" "$(awk -v m="$m" -v c="$c" -v t="$tick" 'BEGIN{printf "%.3f", c/t/(m*4)*1e6}')" us lower
  fi
  rm -f "$out"
done
kill $spid 2>/dev/null; wait $spid 2>/dev/null
