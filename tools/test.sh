#!/bin/sh
# make test: the C suites, then the Lua suites; the last line sums both.
top=$(cd "$(dirname "$0")/.." && pwd)
c_out=$(sh "$top/tools/run-c-tests.sh" "$@" | tee /dev/stderr | tail -n 1)
l_out=$(sh "$top/tools/run-specs.sh" | tee /dev/stderr | tail -n 1)
cp=$(echo "$c_out" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
cf=$(echo "$c_out" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
lp=$(echo "$l_out" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
lf=$(echo "$l_out" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
pass=$((cp + lp)); fail=$((cf + lf))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
