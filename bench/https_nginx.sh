#!/usr/bin/env bash
# HTTPS hello world, lowbit against nginx + lua module (content_by_lua) in
# one run: CPU (user + system) per keep-alive request (64 conns) and per new
# connection (TLS 1.3 handshake + one request, `Connection: close`, 16 conns),
# ECDSA P-256 certificate. Servers pinned to CPU 0, wrk to CPU 1. Prints
# the ratios lowbit / nginx (below 1: lowbit spends less).
#   bash bench/https_nginx.sh [seconds per figure]
# Needs wrk and nginx with the lua module (Debian: nginx-light
# libnginx-mod-http-lua); says so and exits 0 otherwise.
D=${1:-4}
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
  { echo "nginx with the lua module is not installed"; exit 0; }
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
tmp=$(mktemp -d)
NPORT=${NPORT:-18161}; LPORT=${LPORT:-18162}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
cat > "$tmp/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log stderr error;
pid $tmp/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:$NPORT ssl; keepalive_requests 1000000;
    ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    location = / { default_type text/plain; content_by_lua_block { ngx.print("hello world\n") } }
  }
}
CONF
CLK_TCK=$(getconf CLK_TCK)
# CPU seconds (user + system) used so far by the processes of session $1.
cpu_s() {
  local total=0 f rest
  for f in /proc/[0-9]*/stat; do
    rest=$(cat "$f" 2>/dev/null) || continue
    rest=${rest##*) }
    set -- $rest
    [ "${4:-}" = "$sid" ] || continue
    total=$((total + ${12} + ${13}))
  done
  awk -v t="$total" -v h="$CLK_TCK" 'BEGIN{printf "%.3f", t/h}'
}
# measure URL CONNS [wrk args]: "REQ_PER_S US_CPU_PER_REQ" of session $sid
measure() {
  local url=$1 c=$2; shift 2
  sleep 0.8
  local c0 c1 out
  c0=$(cpu_s); out=$(taskset -c 1 wrk -t1 -c"$c" -d"${D}s" "$@" "$url" 2>/dev/null); c1=$(cpu_s)
  printf '%s\n' "$out" | awk -v a="$c0" -v b="$c1" '/Requests\/sec/{r=$2} /requests in/{n=$1} END{ if (n > 0) printf "%.0f %.1f\n", r, (b-a)*1e6/n; else print "0 0" }'
}
run() { # run NAME PORT CMD...
  local name=$1 port=$2; shift 2
  taskset -c 0 setsid "$@" >/dev/null 2>&1 &
  sid=$!
  local k n
  k=$(measure "https://127.0.0.1:$port/" 64)
  n=$(measure "https://127.0.0.1:$port/" 16 -H "Connection: close")
  kill -- -"$sid" 2>/dev/null || kill "$sid" 2>/dev/null; wait "$sid" 2>/dev/null
  echo "$name $k $n"
}
res_n=$(run nginx-lua "$NPORT" nginx -p "$tmp" -c "$tmp/nginx.conf")
res_l=$(cd "$top" && run lowbit "$LPORT" build/bin/lowbit examples/hello.lua "127.0.0.1:$LPORT" "$tmp/cert.pem" "$tmp/key.pem")
rm -rf "$tmp"
printf '%s\n%s\n' "$res_n" "$res_l" | awk '
  { name[NR]=$1; kr[NR]=$2; kc[NR]=$3; nr[NR]=$4; nc[NR]=$5
    printf "%-10s keep-alive: %7s req/s %6s us CPU/req   new conn: %6s conn/s %7s us CPU/conn\n", $1, $2, $3, $4, $5 }
  END { if (kc[1] > 0 && nc[1] > 0) printf "cpu lowbit/nginx-lua keep-alive=%.2f new-conn=%.2f\n", kc[2]/kc[1], nc[2]/nc[1] }'
for r in "$res_n" "$res_l"; do
  set -- $r
  [ "${2:-0}" = 0 ] && continue # no requests: the server did not start
  impl=$(bench_impl "$1")
  bench_line https_cpu "hello, TLS 1.3, keep-alive, 64 conns" req_per_s "$impl" "$2" req/s higher
  bench_line https_cpu "hello, TLS 1.3, keep-alive, 64 conns" cpu_us_per_req "$impl" "$3" us lower
  bench_line https_cpu "new connection + 1 request, 16 conns" conn_per_s "$impl" "$4" conn/s higher
  bench_line https_cpu "new connection + 1 request, 16 conns" cpu_us_per_conn "$impl" "$5" us lower
done
