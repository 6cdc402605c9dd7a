#!/bin/sh
# CPU per request of the hello handler served through lowbit.ngx, against
# plain content_by_lua + ngx.print (compare-http.sh's openresty row).
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
tmp=$(mktemp -d)
sed "s|@TMP@|$tmp|g; s|@PORT@|18103|g; s|@REPO@|$top|g" "$top/bench/ngx_hello.conf.in" > "$tmp/nginx.conf"
# compare-http.sh's "lowbit" row is the handler through lowbit.ngx inside nginx.
LOWBIT_LIB="$top/build/lib/liblowbit.so" bash "$top/../shared/bench/compare-http.sh" "nginx -p $tmp -c $tmp/nginx.conf" 18103 "${1:-/}" |
  BC_SUITE=ngx_hello BC_CASE="hello, lowbit.ngx in nginx vs content_by_lua" bench_compare_http
rm -rf "$tmp"
