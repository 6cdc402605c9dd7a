#!/bin/bash
# User-space instructions the server executes per request, counted by
# callgrind: the same figure on a busy or an idle machine (wall-clock and
# req/s are not), so it is the one to compare before and after a change.
#   bash bench/http_instr.sh "build/bin/lowbit examples/hello.lua" [requests]
# The server gets "127.0.0.1:PORT" as its last argument. It runs under
# valgrind (JIT code included); the first 3,000 requests warm the JIT up and
# are not counted; then wrk sends N more (16 connections, keep-alive).
# URLPATH (default /) is the path requested, e.g. URLPATH=/css/normalize.css.
# Its @bench line names the case $BENCH_CASE (default: the command and path).
CMD=$1; N=${2:-20000}; PORT=${PORT:-18120}; URLPATH=${URLPATH:-/}
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 0; }
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
tmp=$(mktemp -d)
cat > "$tmp/stop.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("N"))
response = function() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
# vg_stop PID: ends the server under valgrind. A SIGTERM was seen lost
# (nginx under callgrind still running 18 minutes later, the bench waiting
# on it), so TERM again every 2 s, then KILL after 20 s.
vg_stop() {
  kill "$1" 2>/dev/null
  for i in $(seq 200); do
    kill -0 "$1" 2>/dev/null || break
    [ $((i % 20)) -eq 0 ] && kill "$1" 2>/dev/null
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
  --callgrind-out-file="$tmp/cg.out" $CMD "127.0.0.1:$PORT" >/dev/null 2>"$tmp/vg.err" &
pid=$!
for _ in $(seq 150); do curl -s -o /dev/null "http://127.0.0.1:$PORT$URLPATH" && break; sleep 0.2; done
N=3000 wrk -t1 -c16 -d5s -s "$tmp/stop.lua" "http://127.0.0.1:$PORT$URLPATH" >/dev/null
callgrind_control -i on $pid >/dev/null 2>&1
N=$N wrk -t1 -c16 -d10s -s "$tmp/stop.lua" "http://127.0.0.1:$PORT$URLPATH" > "$tmp/wrk.out"
callgrind_control -i off $pid >/dev/null 2>&1
vg_stop $pid
reqs=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
ir=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
if [ -n "$reqs" ] && [ -n "$ir" ] && [ "$reqs" -gt 0 ]; then
  echo "user-space instructions/request: $((ir / reqs)) ($reqs requests)"
  bench_line http_instr "${BENCH_CASE:-$CMD $URLPATH}" instr_per_req lowbit "$((ir / reqs))" instructions lower
else
  echo "(no figure: $(tail -n 3 "$tmp/vg.err"))"
fi
rm -rf "$tmp"
