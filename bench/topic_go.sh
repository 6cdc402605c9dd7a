#!/usr/bin/env bash
# The Go anchor of bench/topic.lua: ../shared/bench/compare-topic-go.sh (the
# seed's topic design in Go, go test -bench, pinned to CPU 0), its human
# lines plus @bench lines on the cases of bench/topic.lua (impl "go").
#   bash bench/topic_go.sh
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
cmp=$top/../shared/bench/compare-topic-go.sh
[ -f "$cmp" ] || { echo "no $cmp: skipped"; exit 0; }
command -v go >/dev/null || { echo "go is not installed: skipped"; exit 0; }
bash "$cmp" 2>&1 | while IFS= read -r line; do
  printf '%s\n' "$line"
  case "$line" in
    BenchmarkPublish_1Handler*) c="publish, 1 handler" ;;
    BenchmarkPublish_10Handlers*) c="publish, 10 handlers" ;;
    *) continue ;;
  esac
  ns=$(printf '%s\n' "$line" | awk '{for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") print $i}')
  bench_line topic "$c" ns_per_publish go "$ns" ns lower
done
