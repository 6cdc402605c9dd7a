#!/bin/sh
# HTTPS hello world: req/s and p99 with wrk (keep-alive, 64 connections,
# server pinned to CPU 0, wrk to CPU 1), on a throwaway certificate.
#   sh bench/https_hello.sh [seconds]
D=${1:-4}
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 0; }
dir=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
taskset -c 0 build/bin/lowbit examples/hello.lua 127.0.0.1:18443 "$dir/cert.pem" "$dir/key.pem" >/dev/null 2>&1 &
pid=$!
sleep 0.7
out=$(taskset -c 1 wrk -t1 -c64 -d"${D}s" --latency https://127.0.0.1:18443/ | awk '/Requests\/sec/{r=$2} $1=="99%"{p=$2} END{printf "https hello: req/s %s  p99 %s\n", r, p}')
echo "$out"
set -- $out
bench_line https_hello "hello, TLS 1.3, keep-alive, 64 conns" req_per_s lowbit "$4" req/s higher
bench_line https_hello "hello, TLS 1.3, keep-alive, 64 conns" p99_ms lowbit "$(bench_ms "$6")" ms lower
kill $pid 2>/dev/null; wait $pid 2>/dev/null
rm -rf "$dir"
