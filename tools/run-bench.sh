#!/bin/sh
# make bench: every benchmark under bench/, printing figures (no assertions).
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
host=build/bin/lowbit
echo "== lowbit $($host --version)"
for b in bench/*.lua; do
  echo "== $b"
  $host "$b" || echo "(failed: $b)"
done
# C micro-benchmarks of the cores, built against the static library.
mkdir -p build/bench
for c in bench/c/*.c; do
  [ -e "$c" ] || continue
  n=$(basename "$c" .c)
  cc -O2 -Iinclude -o "build/bench/$n" "$c" build/lib/liblowbit.a -lssl -lcrypto -lz -lm || { echo "(build failed: $c)"; continue; }
  echo "== $c"
  "build/bench/$n"
done
