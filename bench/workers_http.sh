#!/usr/bin/env bash
# Many cores: `lowbit -w 2` on examples/hello.lua against OpenResty (nginx +
# its lua module, worker_processes 2, listen ... reuseport), in one run, both
# answering "hello world\n" from Lua over HTTP/1.1 keep-alive.
#   bash bench/workers_http.sh            (D=seconds per server, C=connections)
# Nothing is pinned (two workers need both cores), so wrk shares the cores
# with the server and req/s mostly measures the machine: the figure that
# compares servers is the server's CPU per request (user + system of the
# master and its workers, read from /proc), lower is better.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
host=$top/build/bin/lowbit
D=${D:-4}; C=${C:-64}
command -v wrk >/dev/null || { echo "wrk is not installed; skipped"; exit 0; }
command -v nginx >/dev/null || { echo "nginx is not installed; skipped"; exit 0; }
mod=/usr/lib/nginx/modules/ngx_http_lua_module.so
[ -e "$mod" ] || { echo "nginx's lua module is not installed; skipped"; exit 0; }
tick=$(getconf CLK_TCK)
. "$top/bench/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# user+system seconds of pid and its children (nginx and lowbit -w workers
# are children of their master).
cpu_s() {
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do cat /proc/$p/stat 2>/dev/null; done |
    awk -v t="$tick" '{ sub(/^.*\) /, ""); n = split($0, f, " "); u += f[12]; s += f[13] } END { printf "%.3f", (u + s) / t }'
}

# measure PID URL NAME IMPL CASE: prints NAME, req/s and CPU per request
# (and their @bench lines).
measure() {
  local pid=$1 url=$2 name=$3 impl=$4 bcase=$5 c0 c1 out rps reqs
  for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.05; done
  sleep 0.5
  c0=$(cpu_s "$pid")
  out=$(wrk -t1 -c"$C" -d"${D}s" "$url" 2>/dev/null)
  c1=$(cpu_s "$pid")
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/{print $2}')
  reqs=$(printf '%s\n' "$out" | awk '/requests in/{print $1}')
  awk -v name="$name" -v r="${rps:-0}" -v n="${reqs:-0}" -v a="$c0" -v b="$c1" 'BEGIN{
    if (n > 0) printf "%-24s req/s: %-8.0f server CPU per request: %.2f us\n", name, r, (b - a) * 1e6 / n
    else printf "%-24s no requests (server did not start?)\n", name }'
  if [ "${reqs:-0}" -gt 0 ] 2>/dev/null; then
    bench_line http_workers "$bcase" req_per_s "$impl" "$rps" req/s higher
    bench_line http_workers "$bcase" cpu_us_per_req "$impl" "$(awk -v n="$reqs" -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", (b - a) * 1e6 / n}')" us lower
  fi
}

stop() { kill -TERM "$1" 2>/dev/null; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done; kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

cat > "$tmp/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module $mod;
worker_processes 2;
error_log stderr error;
pid $tmp/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:18111 reuseport; keepalive_requests 1000000;
    location = / { default_type text/plain; content_by_lua_block { ngx.print("hello world\n") } }
  }
}
CONF

nginx -p "$tmp" -c "$tmp/nginx.conf" >/dev/null 2>&1 &
p=$!; measure $p http://127.0.0.1:18111/ "openresty (2 workers)" openresty "hello, 2 workers, both cores"; stop $p

"$host" -w 2 -l 127.0.0.1:18112 "$top/examples/hello.lua" 127.0.0.1:18112 >/dev/null 2>&1 &
p=$!; measure $p http://127.0.0.1:18112/ "lowbit -w 2" lowbit "hello, 2 workers, both cores"; stop $p

"$host" -w 1 -l 127.0.0.1:18113 "$top/examples/hello.lua" 127.0.0.1:18113 >/dev/null 2>&1 &
p=$!; measure $p http://127.0.0.1:18113/ "lowbit -w 1" lowbit "hello, 1 worker, both cores"; stop $p
