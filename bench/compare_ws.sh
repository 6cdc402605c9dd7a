#!/usr/bin/env bash
# WebSocket echo against the anchors in one run: ../shared/bench/compare-ws.sh
# (gorilla/websocket with GOMAXPROCS=1, Node ws, lowbit; 32 connections,
# 16 B / 4 KiB / 64 KiB), its human lines plus their @bench lines.
#   bash bench/compare_ws.sh [port]          (Z=1: permessage-deflate offered)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
PORT=${1:-18110}
cmp=$top/../shared/bench/compare-ws.sh
[ -f "$cmp" ] || { echo "no $cmp: skipped"; exit 0; }
cd "$top" || exit 1
bash "$cmp" "build/bin/lowbit examples/ws_echo.lua 127.0.0.1:$PORT" "$PORT" 2>&1 |
  BC_SUITE=ws_echo BC_CASE="echo${Z:+ deflate}, 32 conns," bench_compare_ws
