#!/usr/bin/env bash
# HTTP hello world against the anchors in one run: ../shared/bench/compare-http.sh
# (OpenResty content_by_lua, Go net/http with GOMAXPROCS=1, lowbit; server on
# CPU 0, wrk on CPU 1), its human lines plus their @bench lines.
#   bash bench/compare_http.sh [example.lua] [port]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
EX=${1:-examples/hello.lua}; PORT=${2:-18100}
cmp=$top/../shared/bench/compare-http.sh
[ -f "$cmp" ] || { echo "no $cmp: skipped"; exit 0; }
command -v wrk >/dev/null || { echo "wrk is not installed: skipped"; exit 0; }
cd "$top" || exit 1
bash "$cmp" "build/bin/lowbit $EX 127.0.0.1:$PORT" "$PORT" / 2>&1 |
  BC_SUITE=http_hello BC_CASE="$(basename "$EX" .lua), keep-alive, 64 conns, one core" bench_compare_http
