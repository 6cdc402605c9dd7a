#!/bin/bash
# User-space instructions per HTTPS request (TLS 1.3, ECDSA P-256), counted
# by callgrind like bench/http_instr.sh: keep-alive requests, and new
# connections (handshake + one request, `Connection: close`).
#   bash bench/https_instr.sh ["build/bin/lowbit examples/hello.lua"] [requests] [keepalive|close|both]
# The server gets "127.0.0.1:PORT CERT KEY" as its last arguments.
CMD=${1:-build/bin/lowbit examples/hello.lua}; N=${2:-5000}; MODE=${3:-both}; PORT=${PORT:-18121}
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 0; }
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
cat > "$tmp/stop.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("N"))
response = function() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
# one MODE: keepalive | close
one() {
  local mode=$1 hdr=() conns=16 warm=3000 n=$N
  if [ "$mode" = close ]; then hdr=(-H "Connection: close"); conns=4; warm=500; n=$((N / 10)); fi
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
    --callgrind-out-file="$tmp/cg.out" $CMD "127.0.0.1:$PORT" "$tmp/cert.pem" "$tmp/key.pem" >/dev/null 2>"$tmp/vg.err" &
  local pid=$!
  for _ in $(seq 150); do curl -sk -o /dev/null "https://127.0.0.1:$PORT/" && break; sleep 0.2; done
  N=$warm wrk -t1 -c$conns -d10s "${hdr[@]}" -s "$tmp/stop.lua" "https://127.0.0.1:$PORT/" >/dev/null
  callgrind_control -i on $pid >/dev/null 2>&1
  N=$n wrk -t1 -c$conns -d$((n / 200 + 20))s "${hdr[@]}" -s "$tmp/stop.lua" "https://127.0.0.1:$PORT/" > "$tmp/wrk.out"
  callgrind_control -i off $pid >/dev/null 2>&1
  kill $pid; wait $pid 2>/dev/null
  local reqs ir
  reqs=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
  ir=$(callgrind_annotate "$tmp/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  if [ -n "$reqs" ] && [ -n "$ir" ] && [ "$reqs" -gt 0 ]; then
    echo "https $mode: user-space instructions/request: $((ir / reqs)) ($reqs requests)"
  else
    echo "(no figure: $(tail -n 3 "$tmp/vg.err"))"
  fi
  [ -n "${KEEP_CG:-}" ] && cp "$tmp/cg.out" "$KEEP_CG.$mode"
}
case $MODE in
  both) one keepalive; one close ;;
  *) one "$MODE" ;;
esac
rm -rf "$tmp"
