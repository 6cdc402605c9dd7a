#!/bin/bash
# User-space instructions per HTTPS request (TLS 1.3, ECDSA P-256), counted
# by callgrind like bench/http_instr.sh: keep-alive requests (16 conns), and
# new connections (handshake + one request, `Connection: close`, 4 conns).
# With nginx and its lua module installed, nginx + content_by_lua is counted
# the same way and the ratios are printed: the figure to compare before and
# after a change on a busy machine (CPU time there is noise).
#   bash bench/https_instr.sh ["build/bin/lowbit examples/hello.lua"] [requests] [keepalive|close|both]
# The lowbit server gets "127.0.0.1:PORT CERT KEY" as its last arguments.
# The first requests (3,000 / 500) warm the JIT up and are not counted; a
# run of `requests` keep-alive requests (a tenth as many new connections)
# then is. The 16 keep-alive handshakes fall inside the count for both.
CMD=${1:-build/bin/lowbit examples/hello.lua}; N=${2:-10000}; MODE=${3:-both}; PORT=${PORT:-18121}
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 0; }
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
cat > "$tmp/stop.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("N"))
response = function() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
NGINX=
if command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  NGINX="nginx -p $tmp -c $tmp/nginx.conf"
  cat > "$tmp/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1; master_process off;
error_log stderr error;
pid $tmp/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:$((PORT + 1)) ssl; keepalive_requests 1000000;
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    location = / { default_type text/plain; content_by_lua_block { ngx.print("hello world\n") } }
  }
}
CONF
fi
# vg_stop PID: ends the server under valgrind. A SIGTERM was seen lost
# (nginx under callgrind still running 18 minutes later, the bench waiting
# on it), so TERM again every 2 s, then KILL after 20 s.
vg_stop() {
  kill "$1" 2>/dev/null
  for i in $(seq 200); do
    kill -0 "$1" 2>/dev/null || break
    [ $((i % 20)) -eq 0 ] && kill "$1" 2>/dev/null
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
# one MODE PORT SERVER-COMMAND...: prints the instructions per request
one() {
  local mode=$1 port=$2; shift 2
  local hdr=() conns=16 warm=3000 n=$N
  if [ "$mode" = close ]; then hdr=(-H "Connection: close"); conns=4; warm=500; n=$((N / 10)); fi
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
    --callgrind-out-file="$tmp/cg.out" "$@" >/dev/null 2>"$tmp/vg.err" &
  local pid=$!
  for _ in $(seq 150); do curl -sk -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.2; done
  N=$warm wrk -t1 -c$conns -d20s "${hdr[@]}" -s "$tmp/stop.lua" "https://127.0.0.1:$port/" >/dev/null
  callgrind_control -i on $pid >/dev/null 2>&1
  N=$n wrk -t1 -c$conns -d$((n / 100 + 20))s "${hdr[@]}" -s "$tmp/stop.lua" "https://127.0.0.1:$port/" > "$tmp/wrk.out"
  callgrind_control -i off $pid >/dev/null 2>&1
  vg_stop $pid
  local reqs ir
  reqs=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
  ir=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  [ -n "${KEEP_CG:-}" ] && cp "$tmp/cg.out" "$KEEP_CG.$mode.$port"
  if [ -n "$reqs" ] && [ -n "$ir" ] && [ "$reqs" -gt 0 ]; then echo "$((ir / reqs)) $reqs"; else echo "0 0"; fi
}
modes=$MODE; [ "$MODE" = both ] && modes="keepalive close"
for m in $modes; do
  set -- $(one "$m" "$PORT" $CMD "127.0.0.1:$PORT" "$tmp/cert.pem" "$tmp/key.pem"); li=$1 lr=$2
  line="https $m: lowbit $li instructions/request ($lr requests)"
  bcase="hello, TLS 1.3, $m"; [ "$m" = close ] && bcase="hello, TLS 1.3, new connection per request"
  [ "$li" -gt 0 ] && bench_line https_instr "$bcase" instr_per_req lowbit "$li" instructions lower
  if [ -n "$NGINX" ]; then
    set -- $(one "$m" $((PORT + 1)) $NGINX); ni=$1 nr=$2
    line="$line, nginx+lua $ni ($nr)"
    [ "$ni" -gt 0 ] && bench_line https_instr "$bcase" instr_per_req openresty "$ni" instructions lower
    [ "$ni" -gt 0 ] && line="$line: ratio $(awk -v a="$li" -v b="$ni" 'BEGIN{printf "%.2f", a/b}')"
  fi
  echo "$line"
done
rm -rf "$tmp"
