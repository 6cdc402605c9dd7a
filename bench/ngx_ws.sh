#!/bin/bash
# WebSocket echo inside nginx: server CPU per echoed message (wsload, 32
# connections) for the same handler (bench/ngx/ws_app.lua) served by the
# lowbit host and by nginx through lowbit.ngx, and, as the anchor, a plain
# nginx Lua echo on ngx.req.socket(true) (bench/ngx/raw_ws.lua).
#   bash bench/ngx_ws.sh [sizes]      (D=seconds per run, default 2; Z=1 offers permessage-deflate)
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/../shared/bench/cpu.sh"
. "$top/bench/lib.sh"
B=${BENCH_BIN:-/tmp/lowbit-bench-bin}
[ -x "$B/wsload" ] || { echo "no $B/wsload (run ../shared/bench/setup.sh)"; exit 0; }
command -v nginx >/dev/null || { echo "nginx is not installed"; exit 0; }
SIZES=${1:-"16 4096"}; D=${D:-2}; Z=${Z:+-z}; PORT=${PORT:-18150}
tmp=$(mktemp -d)
sed "s|@TMP@|$tmp|g; s|@PORT@|$PORT|g; s|@REPO@|$top|g" "$top/bench/ngx/bench.conf.in" > "$tmp/nginx.conf"
load() { # NAME SID URL IMPL (IMPL: the @bench impl name)
  local s c0 c1 out rate cpu
  for s in $SIZES; do
    c0=$(cpu_s "$2")
    out=$(taskset -c 1 "$B/wsload" -url "$3" -c 32 -s "$s" -d "${D}s" $Z 2>/dev/null)
    c1=$(cpu_s "$2")
    rate=$(printf '%s\n' "$out" | awk '/msgs\/s/{print $1}')
    cpu=$(awk -v r="${rate:-0}" -v d="$D" -v a="$c0" -v b="$c1" 'BEGIN{ if (r > 0) printf "%.2f", (b-a)*1e6/(r*d) }')
    printf '%-16s size=%-6s %8.0f msgs/s  server cpu/message %s us\n' "$1" "$s" "${rate:-0}" "${cpu:-?}"
    bench_line ngx_ws "echo, 32 conns, $s B" msgs_per_s "$4" "$rate" msgs/s higher
    bench_line ngx_ws "echo, 32 conns, $s B" cpu_us_per_msg "$4" "$cpu" us lower
  done
}
wait_port() { for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return; sleep 0.1; done; }
p=$(start "$top/build/bin/lowbit" "$top/examples/serve.lua" "$top/bench/ngx/ws_app.lua" "127.0.0.1:$PORT"); wait_port
load lowbit-host "$p" "ws://127.0.0.1:$PORT/ws" lowbit-host; stop "$p"
p=$(LOWBIT_LIB="$top/build/lib/liblowbit.so" start nginx -p "$tmp" -c "$tmp/nginx.conf"); wait_port
load nginx-lowbit.ngx "$p" "ws://127.0.0.1:$PORT/ws" lowbit
[ -z "$Z" ] && load nginx-plain-lua "$p" "ws://127.0.0.1:$PORT/rawws" openresty
stop "$p"
rm -rf "$tmp"
