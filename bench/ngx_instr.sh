#!/bin/bash
# User-space instructions nginx executes per request, counted by callgrind
# (the same figure on a busy or an idle machine): the hello handler through
# lowbit.ngx (/) and plain content_by_lua + ngx.print (/plain), one nginx
# (master_process off) from bench/ngx_hello.conf.in, under valgrind.
#   bash bench/ngx_instr.sh [requests] [paths...]   (default paths: / /plain)
# CONF=file.conf.in takes another template (@TMP@, @PORT@, @REPO@).
# The first 3,000 requests of each path warm the JIT up and are not counted.
N=${1:-20000}; shift; PORT=${PORT:-18121}; PATHS=${*:-/ /plain}
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 0; }
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
tmp=$(mktemp -d)
{ echo "master_process off;"; sed "s|@TMP@|$tmp|g; s|@PORT@|$PORT|g; s|@REPO@|$top|g; s| reuseport||" "${CONF:-$top/bench/ngx_hello.conf.in}"; } > "$tmp/nginx.conf"
cat > "$tmp/stop.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("N"))
response = function() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
LOWBIT_LIB="$top/build/lib/liblowbit.so" valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
  --callgrind-out-file="$tmp/cg.%p" nginx -p "$tmp" -c "$tmp/nginx.conf" >/dev/null 2>"$tmp/vg.err" &
pid=$!
for path in $PATHS; do
  for _ in $(seq 150); do curl -s -o /dev/null "http://127.0.0.1:$PORT$path" && break; sleep 0.2; done
  N=3000 wrk -t1 -c16 -d10s -s "$tmp/stop.lua" "http://127.0.0.1:$PORT$path" >/dev/null
  callgrind_control -z $pid >/dev/null 2>&1
  callgrind_control -i on $pid >/dev/null 2>&1
  N=$N wrk -t1 -c16 -d20s -s "$tmp/stop.lua" "http://127.0.0.1:$PORT$path" > "$tmp/wrk.out"
  callgrind_control -i off $pid >/dev/null 2>&1
  callgrind_control -d $pid >/dev/null 2>&1
  sleep 0.5
  f=$(ls -t "$tmp"/cg.$pid* 2>/dev/null | head -1)
  reqs=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
  ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  if [ -n "$reqs" ] && [ -n "$ir" ] && [ "$reqs" -gt 0 ]; then
    echo "$path user-space instructions/request: $((ir / reqs)) ($reqs requests)"
    # "/" is the handler through lowbit.ngx, "/plain" content_by_lua + ngx.print.
    case "$path" in /) impl=lowbit ;; /plain) impl=openresty ;; *) impl="path $path" ;; esac
    bench_line ngx_instr "hello in nginx, keep-alive, 16 conns" instr_per_req "$impl" "$((ir / reqs))" instructions lower
  else
    echo "$path (no figure: $(tail -n 3 "$tmp/vg.err"))"
  fi
  [ -n "$KEEP" ] && cp "$f" "$KEEP${path//\//_}.cg"; rm -f "$tmp"/cg.$pid*
done
kill $pid; wait $pid 2>/dev/null
rm -rf "$tmp"
