#!/bin/bash
# SSE fan-out inside nginx: server CPU per delivered event, N streams each
# getting EVENTS events from one publishing request, for the same handler
# (bench/ngx/sse_app.lua) served by the lowbit host and by nginx through
# lowbit.ngx. Clients: bench/ngx/sse_client.lua (lowbit, CPU 1).
#   bash bench/ngx_sse.sh [streams] [events]
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/../shared/bench/cpu.sh"
. "$top/bench/lib.sh"
command -v nginx >/dev/null || { echo "nginx is not installed"; exit 0; }
N=${1:-200}; EV=${2:-500}; PORT=${PORT:-18151}
tmp=$(mktemp -d)
sed "s|@TMP@|$tmp|g; s|@PORT@|$PORT|g; s|@REPO@|$top|g" "$top/bench/ngx/bench.conf.in" > "$tmp/nginx.conf"
wait_port() { for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/x" && return; sleep 0.1; done; }
# client SID IMPL: prints the client's line and its @bench lines.
client() {
  local out
  out=$(taskset -c 1 "$top/build/bin/lowbit" "$top/bench/ngx/sse_client.lua" "http://127.0.0.1:$PORT" "$N" "$EV" "$1")
  printf '%s\n' "$out"
  bench_line ngx_sse "fan-out, $N streams x $EV events" events_per_s "$2" \
    "$(printf '%s\n' "$out" | sed -n 's/.* \([0-9.]*\) events\/s.*/\1/p')" events/s higher
  bench_line ngx_sse "fan-out, $N streams x $EV events" cpu_us_per_event "$2" \
    "$(printf '%s\n' "$out" | sed -n 's/.*server cpu\/event \([0-9.]*\) us.*/\1/p')" us lower
}
p=$(start "$top/build/bin/lowbit" "$top/examples/serve.lua" "$top/bench/ngx/sse_app.lua" "127.0.0.1:$PORT"); wait_port
printf '%-16s ' lowbit-host; client "$p" lowbit-host; stop "$p"
p=$(LOWBIT_LIB="$top/build/lib/liblowbit.so" start nginx -p "$tmp" -c "$tmp/nginx.conf"); wait_port
printf '%-16s ' nginx-lowbit.ngx; client "$p" lowbit; stop "$p"
rm -rf "$tmp"
