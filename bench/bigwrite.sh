#!/bin/sh
# Memory of one large response write, lowbit next to Go net/http:
#  - peak RSS of the server for one 100 MB w:write (VmHWM) of a string made
#    for the request, and of one made at start (then: peak minus idle RSS is
#    what the write costs beyond the string);
#  - RSS each keep-alive connection keeps after it served one 10 MB write,
#    10 connections, after a full collection (/gc).
#   sh bench/bigwrite.sh            (from the repository root, after make)
set -e
ROOT=$(pwd); HOST=$ROOT/build/bin/lowbit; DIR=$ROOT/bench/bigwrite
. "$ROOT/bench/lib.sh"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
(cd "$DIR" && GO111MODULE=off go build -o "$TMP/gosrv" main.go)
kib() { awk -v k="$2" '$1 == k":" {print $2}' /proc/$1/status; }
wait_port() { for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/gc" && return; sleep 0.05; done; }
run() { # name, port, command...
  name=$1; port=$2; shift 2
  "$@" >/dev/null 2>&1 & pid=$!; wait_port $port
  base=$(kib $pid VmRSS)
  curl -s -o /dev/null "http://127.0.0.1:$port/?mb=100"
  peak=$(kib $pid VmHWM)
  kill $pid; wait $pid 2>/dev/null || true
  "$@" pre >/dev/null 2>&1 & pid=$!; wait_port $port
  echo 5 > /proc/$pid/clear_refs   # the peak RSS starts again from here
  pbase=$(kib $pid VmRSS)
  curl -s -o /dev/null "http://127.0.0.1:$port/pre"
  ppeak=$(kib $pid VmHWM)
  kill $pid; wait $pid 2>/dev/null || true
  "$@" >/dev/null 2>&1 & pid=$!; wait_port $port
  curl -s -o /dev/null "http://127.0.0.1:$port/?mb=10"   # warm up: code paths, first allocations
  curl -s -o /dev/null "http://127.0.0.1:$port/gc"; sleep 0.2
  r0=$(kib $pid VmRSS)
  mkfifo "$TMP/in.$port"
  python3 "$DIR/client.py" 127.0.0.1 $port 10 10 < "$TMP/in.$port" > "$TMP/out.$port" & cpid=$!
  exec 3>"$TMP/in.$port"
  for i in $(seq 600); do grep -q ready "$TMP/out.$port" 2>/dev/null && break; sleep 0.05; done
  curl -s -o /dev/null "http://127.0.0.1:$port/gc"; sleep 0.2
  r1=$(kib $pid VmRSS)
  exec 3>&-; wait $cpid 2>/dev/null || true
  kill $pid; wait $pid 2>/dev/null || true
  awk -v n="$name" -v b=$base -v p=$peak -v pb=$pbase -v pp=$ppeak -v r0=$r0 -v r1=$r1 'BEGIN{
    printf "%s: one 100 MB write: peak RSS %.0f MB (idle %.1f MB); of a string made at start: peak %.0f MB (idle %.0f MB, +%.0f MB)\n",
      n, p/1024, b/1024, pp/1024, pb/1024, (pp-pb)/1024
    printf "%s: 10 keep-alive conns after one 10 MB write each, after a full GC: %.2f MB per conn (RSS %.1f -> %.1f MB)\n",
      n, (r1-r0)/10/1024, r0/1024, r1/1024 }'
  bench_line bigwrite "one 100 MB write, string made per request" peak_rss_mb "$name" "$(awk -v p=$peak 'BEGIN{printf "%.1f", p/1024}')" MB lower
  bench_line bigwrite "one 100 MB write, string made at start" extra_peak_mb "$name" "$(awk -v p=$ppeak -v b=$pbase 'BEGIN{printf "%.1f", (p-b)/1024}')" MB lower
  bench_line bigwrite "10 keep-alive conns after a 10 MB write each, after GC" mb_per_conn "$name" "$(awk -v a=$r0 -v b=$r1 'BEGIN{printf "%.3f", (b-a)/10/1024}')" MB lower
}
run lowbit 18201 "$HOST" "$DIR/server.lua" 127.0.0.1:18201
run go     18202 "$TMP/gosrv" 127.0.0.1:18202
