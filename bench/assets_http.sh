#!/usr/bin/env bash
# Cached small asset over keep-alive: a normalize.css-sized (6 KB) file served by lowbit.webassets
# (cache on) and by nginx (sendfile, open_file_cache, etag), in one run. Each server runs pinned to
# CPU 0 in its own session (bench/cpu.sh counts the CPU of every process of it), wrk to CPU 1.
# Prints req/s and the server's CPU per request (lower is better: wrk's core can be the limit).
#   bash bench/assets_http.sh [seconds]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/cpu.sh"
. "$top/bench/lib.sh"
D=${1:-${D:-5}}; C=${C:-64}; NGX_PORT=${NGX_PORT:-18561}; OUR_PORT=${OUR_PORT:-18562}
HOST=${HOST:-$top/build/bin/lowbit}
command -v wrk >/dev/null || { echo "wrk is not installed: skipped"; exit 0; }
command -v nginx >/dev/null || { echo "nginx is not installed: skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/static/css" "$tmp/ngx"
# A 6,138-byte stylesheet (normalize.css 8.0.1's size), generated: rules and comments.
awk 'BEGIN{ s = "/*! generated for bench/assets_http.sh */\n"
  for (i = 0; length(s) < 6100; i++)
    s = s sprintf("/**\n * Rule %d: keep the comment, as normalize.css does.\n */\n\n.rule-%d {\n  margin: %dpx;\n  line-height: 1.15;\n}\n\n", i, i, i % 7)
  printf "%s", substr(s, 1, 6137) "\n" }' > "$tmp/static/css/normalize.css"
size=$(wc -c < "$tmp/static/css/normalize.css")
cat > "$tmp/ngx/nginx.conf" <<NGX
worker_processes 1;
error_log stderr error;
pid $tmp/ngx/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; etag on;
  open_file_cache max=1000 inactive=60s; open_file_cache_valid 60s;
  include /etc/nginx/mime.types;
  client_body_temp_path $tmp/ngx; proxy_temp_path $tmp/ngx; fastcgi_temp_path $tmp/ngx; uwsgi_temp_path $tmp/ngx; scgi_temp_path $tmp/ngx;
  server { listen 127.0.0.1:${NGX_PORT} reuseport; keepalive_requests 1000000;
    location /assets/ { alias $tmp/static/; }
  }
}
NGX
cat > "$tmp/serve.lua" <<LUA
local lowbit = require "lowbit"
local http = require "lowbit.http"
local webassets = require "lowbit.webassets"
return function(ctx, addr)
  local h = webassets.new("$tmp/static", { cache = true })
  local srv = http.server{ handler = h }
  lowbit.go(function() ctx:wait(); srv:close() end)
  srv:listen_and_serve(addr)
end
LUA
# measure SID URL: prints "REQ_PER_S US_CPU_PER_REQ"
measure() {
  local i
  for i in $(seq 50); do curl -s -o /dev/null "$2" && break; sleep 0.1; done
  curl -s -o /dev/null "$2" # warm: the first request fills the cache
  local c0 c1 out reqs rps
  c0=$(cpu_s "$1")
  out=$(taskset -c 1 wrk -t1 -c"$C" -d"${D}s" "$2" 2>/dev/null)
  c1=$(cpu_s "$1")
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/{print $2}')
  reqs=$(printf '%s\n' "$out" | awk '/requests in/{print $1}')
  awk -v r="${rps:-0}" -v n="${reqs:-0}" -v a="$c0" -v b="$c1" \
    'BEGIN{ if (n > 0) printf "%.0f %.2f\n", r, (b-a)*1e6/n; else print "0 0" }'
}
p=$(start nginx -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf"); ngx=$(measure "$p" http://127.0.0.1:${NGX_PORT}/assets/css/normalize.css); stop "$p"
p=$(start "$HOST" "$tmp/serve.lua" 127.0.0.1:${OUR_PORT}); ours=$(measure "$p" http://127.0.0.1:${OUR_PORT}/assets/css/normalize.css); stop "$p"
set -- ${ngx:-0 0}; n_rps=$1 n_cpu=$2
set -- ${ours:-0 0}; o_rps=$1 o_cpu=$2
echo "cached ${size}-byte asset, keep-alive, $C connections, ${D}s each"
printf '%-22s req/s: %-8s server CPU per request: %s us\n' "nginx open_file_cache" "$n_rps" "$n_cpu" "lowbit webassets" "$o_rps" "$o_cpu"
bcase="cached ${size}-byte asset, keep-alive, $C conns"
for x in "nginx $n_rps $n_cpu" "lowbit $o_rps $o_cpu"; do
  set -- $x
  [ "$2" = 0 ] && continue # no requests: the server did not start
  bench_line assets_http "$bcase" req_per_s "$1" "$2" req/s higher
  bench_line assets_http "$bcase" cpu_us_per_req "$1" "$3" us lower
done
awk -v o="$o_rps" -v n="$n_rps" -v oc="$o_cpu" -v nc="$n_cpu" 'BEGIN{
  printf "ratio lowbit/nginx: req/s %.2f, cpu per request %.2f (<= 1.00 is the goal)\n", (n > 0 ? o/n : 0), (nc > 0 ? oc/nc : 0) }'
