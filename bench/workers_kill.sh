#!/bin/bash
# kill -9 of one worker under load (scale.md B2): 16 clients, a new
# connection per request, 3,000 requests; after 500 responses one worker
# gets SIGKILL. Counts the requests that failed (resets + empty replies) for
# `lowbit -w 2` (spec/apps/workers_app.lua) and for OpenResty with
# worker_processes 2 and reuseport, alternated, R rounds each.
#   bash bench/workers_kill.sh [rounds]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
R=${1:-3}
command -v nginx >/dev/null || { echo "nginx is not installed; skipped"; exit 0; }
command -v go >/dev/null || { echo "go is not installed; skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load=$tmp/workers_load
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=/tmp/lowbit-gocache go build -o "$load" "$top/spec/peers/workers_load.go" || exit 0
cat > "$tmp/nginx.conf" <<CONF
worker_processes 2;
daemon off;
error_log $tmp/error.log;
pid $tmp/nginx.pid;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:18190 reuseport; location / { content_by_lua_block { ngx.print("pid=", ngx.worker.pid()) } } }
}
CONF
first_child() { ps -o pid= --ppid "$1" | tr -d ' ' | head -1; }
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/" && return; sleep 0.05; done; }
# lost ADDR MASTER: runs the load, kills a worker of MASTER, prints resets + empty replies.
lost() {
  local out
  out=$("$load" -addr "$1" -n 3000 -c 16 -at 500 -pid "$(first_child "$2")" -sig 9)
  printf '%s\n' "$out" | sed 's/.*"reset":\([0-9]*\),"empty":\([0-9]*\),"other":\([0-9]*\).*/\1 \2 \3/' |
    awk '{ print $1 + $2 + $3 }'
}
tl=0; tn=0
for r in $(seq "$R"); do
  nginx -p "$tmp" -c "$tmp/nginx.conf" & np=$!; wait_up 127.0.0.1:18190
  n=$(lost 127.0.0.1:18190 $np); kill $np; wait $np 2>/dev/null
  "$top/build/bin/lowbit" -w 2 -l 127.0.0.1:18191 "$top/spec/apps/workers_app.lua" 127.0.0.1:18191 2>/dev/null & lp=$!
  wait_up 127.0.0.1:18191
  l=$(lost 127.0.0.1:18191 $lp); kill $lp; wait $lp 2>/dev/null
  echo "round $r: failed requests after kill -9 of a worker: lowbit -w 2 $l, openresty $n"
  tl=$((tl + l)); tn=$((tn + n))
done
echo "in all ($R kills each): lowbit -w 2 $tl, openresty $tn"
bench_line workers_kill "kill -9 of a worker, 16 clients, new conn per request" failed_per_kill lowbit \
  "$(awk -v a=$tl -v r=$R 'BEGIN{ printf "%.2f", a / r }')" requests lower
bench_line workers_kill "kill -9 of a worker, 16 clients, new conn per request" failed_per_kill openresty \
  "$(awk -v a=$tn -v r=$R 'BEGIN{ printf "%.2f", a / r }')" requests lower
