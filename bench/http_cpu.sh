#!/bin/sh
# CPU time the server spends per request (user and system, microseconds),
# read from /proc while wrk drives it: steadier than req/s on a busy machine.
#   sh bench/http_cpu.sh "build/bin/lowbit examples/hello.lua 127.0.0.1:18100" 18100 [seconds]
# Its @bench lines (bench/README.md) name the case $BENCH_CASE (default: the
# command) and the implementation $BENCH_IMPL (default lowbit).
CMD=$1; PORT=${2:-18100}; D=${3:-4}
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 0; }
taskset -c 0 sh -c "exec $CMD" >/dev/null 2>&1 &
pid=$!
sleep 0.7
tick=$(getconf CLK_TCK)
# The server and its children (nginx's worker runs in a child process).
read_cpu() {
  for p in $pid $(ps -o pid= --ppid $pid 2>/dev/null); do cat /proc/$p/stat 2>/dev/null; done |
    awk '{u += $14; s += $15} END {print u, s}'
}
set -- $(read_cpu); u0=$1; s0=$2
out=$(taskset -c 1 wrk -t1 -c64 -d"${D}s" --latency "http://127.0.0.1:$PORT/")
set -- $(read_cpu); u1=$1; s1=$2
kill $pid 2>/dev/null; wait $pid 2>/dev/null
reqs=$(echo "$out" | awk '/requests in/{print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
p99=$(echo "$out" | awk '$1=="99%"{print $2}')
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t=$tick -v n="$reqs" -v rps="$rps" -v p99="$p99" 'BEGIN{
  printf "req/s %s  p99 %s  cpu/request: user %.2f us, sys %.2f us\n", rps, p99, u/t/n*1e6, s/t/n*1e6 }'
case_=${BENCH_CASE:-$CMD}; impl=${BENCH_IMPL:-lowbit}
if [ "${reqs:-0}" -gt 0 ] 2>/dev/null; then
  bench_line http_cpu "$case_" req_per_s "$impl" "$rps" req/s higher
  bench_line http_cpu "$case_" p99_ms "$impl" "$(bench_ms "$p99")" ms lower
  bench_line http_cpu "$case_" user_us_per_req "$impl" "$(awk -v u=$((u1 - u0)) -v t=$tick -v n="$reqs" 'BEGIN{printf "%.3f", u/t/n*1e6}')" us lower
  bench_line http_cpu "$case_" sys_us_per_req "$impl" "$(awk -v s=$((s1 - s0)) -v t=$tick -v n="$reqs" 'BEGIN{printf "%.3f", s/t/n*1e6}')" us lower
fi
