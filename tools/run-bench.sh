#!/bin/sh
# make bench: every benchmark under bench/, printing figures (no assertions),
# then the report of the run (tools/bench-report.lua).
#
# Every figure is also written as one machine-readable line (format in
# bench/README.md):
#   @bench {"suite":"http_hello","case":"...","metric":"cpu_us_per_req","impl":"lowbit","value":5.6,"unit":"us","better":"lower"}
# The whole output is kept in build/bench/run.log; tools/bench-report.lua
# turns it into build/bench/report.md and build/bench/report.png
# (`make bench-report` renders them again from the last run.log).
#
# BENCH_ONLY="tasks bench_resp compare_http" runs only the benchmarks named
# (a bench/*.lua or bench/c/*.c file's base name, or a shell step's name as
# printed after "==").
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
host=build/bin/lowbit
mkdir -p build/bench

want() {
  [ -z "${BENCH_ONLY:-}" ] && return 0
  case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac
  return 1
}

run_all() {
  echo "== lowbit $($host --version)"
  # The run's own line: when, which commit, which command.
  printf '@bench-run {"date":"%s","commit":"%s","command":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "${BENCH_COMMAND:-${BENCH_ONLY:+BENCH_ONLY=\\\"$BENCH_ONLY\\\" }make bench}"
  for b in bench/*.lua; do
    n=$(basename "$b" .lua)
    case "$n" in report|redis_server|https_heap) continue ;; esac # helpers (https_heap.lua is the server of https_heap.sh)
    want "$n" || continue
    echo "== $b"
    $host "$b" || echo "(failed: $b)"
  done
  # C micro-benchmarks of the cores, built against the static library.
  for c in bench/c/*.c; do
    [ -e "$c" ] || continue
    n=$(basename "$c" .c)
    want "$n" || continue
    cc -O2 -Iinclude -o "build/bench/$n" "$c" build/lib/liblowbit.a -lssl -lcrypto -lz -lm || { echo "(build failed: $c)"; continue; }
    echo "== $c"
    "build/bench/$n"
  done
  # The Go anchor of bench/topic.lua (the seed's design, go test -bench).
  if want topic_go; then
    echo "== bench/topic_go.sh (../shared/bench/compare-topic-go.sh)"
    bash bench/topic_go.sh
  fi
  # HTTP hello world: CPU per request and req/s (wrk), bare handler and muxx.
  if command -v wrk >/dev/null && want http_cpu; then
    echo "== bench/http_cpu.sh (examples/hello.lua, examples/hello_muxx.lua)"
    BENCH_CASE="hello.lua, keep-alive, 64 conns" sh bench/http_cpu.sh "$host examples/hello.lua 127.0.0.1:18100" 18100 3
    BENCH_CASE="hello_muxx.lua, keep-alive, 64 conns" sh bench/http_cpu.sh "$host examples/hello_muxx.lua 127.0.0.1:18100" 18100 3
  fi
  # The anchors of ../shared/bench: OpenResty and Go net/http (HTTP hello),
  # gorilla/websocket and Node ws (WebSocket echo).
  if command -v wrk >/dev/null && want compare_http; then
    echo "== bench/compare_http.sh (examples/hello.lua vs OpenResty, Go net/http)"
    bash bench/compare_http.sh
  fi
  if want compare_ws; then
    echo "== bench/compare_ws.sh (examples/ws_echo.lua vs gorilla, Node ws)"
    bash bench/compare_ws.sh
  fi
  if command -v wrk >/dev/null && command -v nginx >/dev/null; then
    if want assets_http; then
      echo "== bench/assets_http.sh (webassets cached 6 KB asset vs nginx open_file_cache)"
      bash bench/assets_http.sh 3
    fi
    if want workers_http; then
      echo "== bench/workers_http.sh (lowbit -w 2 vs OpenResty with 2 workers, CPU per request)"
      bash bench/workers_http.sh
    fi
    if want workers_kill; then
      echo "== bench/workers_kill.sh (kill -9 of a worker under load: failed requests, lowbit -w 2 vs OpenResty)"
      bash bench/workers_kill.sh 3
    fi
  fi
  if command -v wrk >/dev/null && command -v valgrind >/dev/null && want http_instr; then
    echo "== bench/http_instr.sh (examples/hello.lua under callgrind)"
    BENCH_CASE="hello.lua, keep-alive, 16 conns" bash bench/http_instr.sh "$host examples/hello.lua"
  fi
  if command -v wrk >/dev/null; then
    if want https_hello; then
      echo "== bench/https_hello.sh"
      sh bench/https_hello.sh 3
    fi
    # CPU per HTTPS request and per new TLS connection against nginx + lua
    # (the goal is a ratio of at most 1.0 on both).
    if want https_nginx; then
      echo "== bench/https_nginx.sh (examples/hello.lua vs nginx + lua, TLS 1.3, P-256)"
      bash bench/https_nginx.sh 4
    fi
  fi
  if command -v wrk >/dev/null && want https_heap; then
    echo "== bench/https_heap.sh (Lua heap per new HTTPS connection)"
    bash bench/https_heap.sh "$host"
  fi
  if command -v wrk >/dev/null && command -v valgrind >/dev/null && want https_instr; then
    echo "== bench/https_instr.sh (examples/hello.lua under callgrind)"
    bash bench/https_instr.sh "$host examples/hello.lua" 10000
  fi
  # Inside nginx (lowbit.ngx): hello CPU per request vs plain content_by_lua,
  # its instruction count, WebSocket echo and SSE fan-out (short runs).
  if command -v wrk >/dev/null && command -v nginx >/dev/null && want ngx_hello; then
    echo "== bench/ngx_hello.sh (hello through lowbit.ngx vs content_by_lua + ngx.print)"
    D=3 sh bench/ngx_hello.sh
  fi
  if command -v wrk >/dev/null && command -v nginx >/dev/null && command -v valgrind >/dev/null && want ngx_instr; then
    echo "== bench/ngx_instr.sh (the same under callgrind: instructions per request)"
    bash bench/ngx_instr.sh 10000
  fi
  if command -v nginx >/dev/null; then
    if want ngx_ws; then
      echo "== bench/ngx_ws.sh (WebSocket echo: lowbit host, lowbit.ngx, plain nginx Lua)"
      bash bench/ngx_ws.sh
    fi
    if want ngx_sse; then
      echo "== bench/ngx_sse.sh (SSE fan-out: lowbit host, lowbit.ngx)"
      bash bench/ngx_sse.sh
    fi
  fi
}

run_all 2>&1 | tee build/bench/run.log
echo "== report"
luajit tools/bench-report.lua --log build/bench/run.log --out build/bench --print
