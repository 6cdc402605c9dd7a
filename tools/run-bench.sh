#!/bin/sh
# make bench: every benchmark under bench/, printing figures (no assertions).
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
host=build/bin/lowbit
echo "== lowbit $($host --version)"
for b in bench/*.lua; do
  echo "== $b"
  $host "$b" || echo "(failed: $b)"
done
# C micro-benchmarks of the cores, built against the static library.
mkdir -p build/bench
for c in bench/c/*.c; do
  [ -e "$c" ] || continue
  n=$(basename "$c" .c)
  cc -O2 -Iinclude -o "build/bench/$n" "$c" build/lib/liblowbit.a -lssl -lcrypto -lz -lm || { echo "(build failed: $c)"; continue; }
  echo "== $c"
  "build/bench/$n"
done
# HTTP hello world: CPU per request and req/s (wrk), bare handler and muxx.
if command -v wrk >/dev/null; then
  echo "== bench/http_cpu.sh (examples/hello.lua, examples/hello_muxx.lua)"
  sh bench/http_cpu.sh "$host examples/hello.lua 127.0.0.1:18100" 18100 3
  sh bench/http_cpu.sh "$host examples/hello_muxx.lua 127.0.0.1:18100" 18100 3
fi
if command -v wrk >/dev/null && command -v nginx >/dev/null; then
  echo "== bench/assets_http.sh (webassets cached 6 KB asset vs nginx open_file_cache)"
  bash bench/assets_http.sh 3
  echo "== bench/workers_http.sh (lowbit -w 2 vs OpenResty with 2 workers, CPU per request)"
  bash bench/workers_http.sh
fi
if command -v wrk >/dev/null && command -v valgrind >/dev/null; then
  echo "== bench/http_instr.sh (examples/hello.lua under callgrind)"
  bash bench/http_instr.sh "$host examples/hello.lua"
fi
if command -v wrk >/dev/null; then
  echo "== bench/https_hello.sh"
  sh bench/https_hello.sh 3
  # CPU per HTTPS request and per new TLS connection against nginx + lua
  # (the goal is a ratio of at most 1.0 on both).
  echo "== bench/https_nginx.sh (examples/hello.lua vs nginx + lua, TLS 1.3, P-256)"
  bash bench/https_nginx.sh 4
fi
if command -v wrk >/dev/null && command -v valgrind >/dev/null; then
  echo "== bench/https_instr.sh (examples/hello.lua under callgrind)"
  bash bench/https_instr.sh "$host examples/hello.lua" 10000
fi
# Inside nginx (lowbit.ngx): hello CPU per request vs plain content_by_lua,
# its instruction count, WebSocket echo and SSE fan-out (short runs).
if command -v wrk >/dev/null && command -v nginx >/dev/null; then
  echo "== bench/ngx_hello.sh (hello through lowbit.ngx vs content_by_lua + ngx.print)"
  D=3 sh bench/ngx_hello.sh
fi
if command -v wrk >/dev/null && command -v nginx >/dev/null && command -v valgrind >/dev/null; then
  echo "== bench/ngx_instr.sh (the same under callgrind: instructions per request)"
  bash bench/ngx_instr.sh 10000
fi
if command -v nginx >/dev/null; then
  echo "== bench/ngx_ws.sh (WebSocket echo: lowbit host, lowbit.ngx, plain nginx Lua)"
  bash bench/ngx_ws.sh
  echo "== bench/ngx_sse.sh (SSE fan-out: lowbit host, lowbit.ngx)"
  bash bench/ngx_sse.sh
fi
