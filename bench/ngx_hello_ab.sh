#!/bin/bash
# Server CPU per request (us) of several nginx builds/paths measured in turn,
# ROUNDS times, so that every one sees the same load (a busy shared machine
# makes separate runs incomparable). Each spec is REPO|CONF|PATH: the nginx
# conf template CONF (@TMP@, @PORT@, @REPO@) filled in with REPO (its
# build/lib/liblowbit.so is LOWBIT_LIB), then wrk on PATH. E.g. plain Lua,
# an old checkout's adapter and this one:
#   bash bench/ngx_hello_ab.sh 4 "$PWD|$PWD/bench/ngx_hello.conf.in|/plain" \
#     "/old|/old/bench/ngx_hello.conf.in|/" "$PWD|$PWD/bench/ngx_hello.conf.in|/"
. "$(cd "$(dirname "$0")/.." && pwd)/../shared/bench/cpu.sh"
D=${D:-3}; C=${C:-64}; R=$1; shift
measure() {
  sleep 0.5
  local c0 c1 out reqs
  c0=$(cpu_s "$1")
  out=$(taskset -c 1 wrk -t1 -c"$C" -d"${D}s" "$2" 2>/dev/null)
  c1=$(cpu_s "$1")
  reqs=$(printf '%s\n' "$out" | awk '/requests in/{print $1}')
  awk -v n="${reqs:-0}" -v a="$c0" -v b="$c1" 'BEGIN{ if (n > 0) printf "%.2f", (b-a)*1e6/n; else print "0" }'
}
port=18140
for r in $(seq $R); do
  line="round $r:"
  for spec in "$@"; do
    IFS='|' read repo conf path <<<"$spec"
    tmp=$(mktemp -d); port=$((port+1))
    sed "s|@TMP@|$tmp|g; s|@PORT@|$port|g; s|@REPO@|$repo|g" "$conf" > "$tmp/nginx.conf"
    p=$(LOWBIT_LIB=$repo/build/lib/liblowbit.so start nginx -p "$tmp" -c "$tmp/nginx.conf")
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.1; done
    v=$(measure $p "http://127.0.0.1:$port$path"); stop $p; rm -rf "$tmp"
    line="$line  $(basename $repo)$path=$v"
  done
  echo "$line"
done
