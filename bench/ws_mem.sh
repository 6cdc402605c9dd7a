#!/bin/bash
# Memory a WebSocket server holds per idle connection, after a full GC:
# RSS after the clients went idle minus RSS before they came, divided by the
# connection count. Each client sends one message (echoed or only read) and
# stays open; the servers run a full GC every 0.3 s. "held" is what the
# server holds by its own count after the GC (lowbit: Lua heap + malloc in
# use; Go: heap + stacks in use); RSS also counts what allocators keep.
#   bash bench/ws_mem.sh [lowbit|gorilla] [echo|read] CONNS SIZE [Z] [text]
#     Z: "" (no compression offered), nct (no context takeover), ctx (takeover)
#   bash bench/ws_mem.sh lowbit echo 10 15728640        # the issue-10 case
#   bash bench/ws_mem.sh gorilla echo 200 1024 nct text # per-conn cost of deflate
# The server runs examples/ws_echo.lua from the current directory (echo
# mode); LOWBIT=path picks another lowbit binary (to compare with a build of
# an older commit, run from its checkout).
set -u
SRV=${1:-lowbit}; MODE=${2:-echo}; N=${3:-10}; SIZE=${4:-15728640}; Z=${5:-}; TEXT=${6:-}
PORT=${PORT:-18177}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
B=${BENCH_BIN:-/tmp/lowbit-bench-bin}
export GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=${GOCACHE:-/tmp/lowbit-gocache}
mkdir -p "$B"
[ -x "$B/wsmem_client" ] || go build -o "$B/wsmem_client" "$here/ws_mem/client.go" || exit 1
[ -x "$B/wsmem_gorilla" ] || go build -o "$B/wsmem_gorilla" "$here/ws_mem/gorilla.go" || exit 1
if ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT "; then echo "port $PORT is in use"; exit 1; fi
log=$(mktemp)
case $SRV in
  lowbit) "${LOWBIT:-$here/../build/bin/lowbit}" "$here/ws_mem/server.lua" "127.0.0.1:$PORT" "$MODE" 2>"$log" & ;;
  gorilla) "$B/wsmem_gorilla" "127.0.0.1:$PORT" "$MODE" 2>"$log" & ;;
  *) echo "server: lowbit or gorilla"; exit 1 ;;
esac
spid=$!
rss() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status"; }
held() { sleep 0.4; awk '/^held/ {h = $2} END {print h + 0}' "$log"; }
sleep 1.5
kill -0 $spid 2>/dev/null || { echo "the server did not start"; exit 1; }
r0=$(rss); h0=$(held)
fifo=$(mktemp -u); mkfifo "$fifo"
echoflag=true; [ "$MODE" = read ] && echoflag=false
textflag=false; [ -n "$TEXT" ] && textflag=true
"$B/wsmem_client" -addr "127.0.0.1:$PORT" -c "$N" -s "$SIZE" -z "$Z" -echo=$echoflag -text=$textflag < "$fifo" > "$fifo.out" &
cpid=$!
exec 3>"$fifo"
for _ in $(seq 600); do grep -q ready "$fifo.out" 2>/dev/null && break; kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
[ "$MODE" = read ] && sleep 1 # the server may still be reading the last bytes
sleep 1.5
r1=$(rss); h1=$(held); peak=$(awk '/^VmHWM/ {print $2}' "/proc/$spid/status")
printf "%s %s conns=%s size=%s z=%s %s: RSS +%d KiB = %.1f KiB/conn (peak +%d KiB); held +%d KiB = %.1f KiB/conn (%s)\n" \
  "$SRV" "$MODE" "$N" "$SIZE" "${Z:-none}" "${TEXT:-random}" $((r1 - r0)) "$(echo "($r1 - $r0) / $N" | bc -l)" $((peak - r0)) \
  $((h1 - h0)) "$(echo "($h1 - $h0) / $N" | bc -l)" "$(cat "$fifo.out")"
bcase="$MODE, $N conns, $SIZE B, z=${Z:-none}, ${TEXT:-random}"
bench_line ws_mem "$bcase" rss_kib_per_conn "$SRV" "$(echo "($r1 - $r0) / $N" | bc -l)" KiB lower
bench_line ws_mem "$bcase" held_kib_per_conn "$SRV" "$(echo "($h1 - $h0) / $N" | bc -l)" KiB lower
exec 3>&-
wait $cpid 2>/dev/null
kill $spid; wait $spid 2>/dev/null
rm -f "$fifo" "$fifo.out" "$log"
