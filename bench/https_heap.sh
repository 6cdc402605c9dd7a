#!/bin/bash
# Lua heap allocated per new HTTPS connection (TLS 1.3, ECDSA P-256,
# handshake + one request, `Connection: close`, wrk -c4), GC stopped while
# counting: bench/https_heap.lua.
#   bash bench/https_heap.sh [lowbit binary] [connections]
BIN=${1:-build/bin/lowbit}; N=${2:-2000}; WARM=${WARM:-1000}; PORT=${PORT:-18161}
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 0; }
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
"$BIN" "$here/https_heap.lua" 127.0.0.1:$PORT "$tmp/cert.pem" "$tmp/key.pem" "$WARM" "$N" 2>/dev/null >"$tmp/out" &
pid=$!
sleep 0.5
wrk -t1 -c${C:-4} -d120s -H "Connection: close" "https://127.0.0.1:$PORT/" >/dev/null 2>&1 &
wpid=$!
wait $pid
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
cat "$tmp/out"
kb=$(awk '/KB per connection/{ print $(NF-3) }' "$tmp/out")
bench_line https_heap "new TLS connection + 1 request, Connection: close, wrk -c${C:-4}" kb_per_conn lowbit "$kb" KB lower
rm -rf "$tmp"
