#!/bin/sh
# Runs every spec/*_spec.lua in its own busted process on LuaJIT (a crash or
# hang in one file cannot take the others down). Prints the sum as
# "lua: N passed, N failed", preceded by the names of the failed tests (so the
# tail of a CI log says what failed). SPECS="spec/x_spec.lua ..." narrows the run.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;$top/bindings/?.lua;$top/${BUILD:-build}/lua/?.lua;$top/spec/?.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"
export LOWBIT_LIB="$top/${BUILD:-build}/lib/liblowbit.so"
export LOWBIT_ROOT="$top"
pass=0; fail=0; failed=""
nl='
'
specs=${SPECS:-$(ls spec/*_spec.lua 2>/dev/null)}
for s in $specs; do
  out=$(timeout -k 5 ${SPEC_TIMEOUT:-600} luajit tools/busted.lua -o plainTerminal "$s" 2>&1); rc=$?
  sum=$(printf '%s\n' "$out" | grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
  if [ -z "$sum" ]; then
    printf '%s\n' "$out" | tail -n 30 | sed 's/^/  /'
    echo "  $s: no summary (exit $rc)"; fail=$((fail + 1))
    failed="$failed$nl  $s: no summary (exit $rc)"; continue
  fi
  p=$(echo "$sum" | awk '{print $1}'); f=$(echo "$sum" | awk '{print $4}'); e=$(echo "$sum" | awk '{print $7}'); pd=$(echo "$sum" | awk '{print $10}')
  f=$((f + e + pd))  # pending specs count as failures: nothing is left skipped
  if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" | grep -v '^[+*-]*$' | tail -n 60 | sed 's/^/  /'
    # busted's plainTerminal output names each failure as "Failure → file @ line"
    # followed by the test's full name and the first line of its message.
    names=$(printf '%s\n' "$out" | grep -A 2 -E '^(Failure|Error|Pending) ' | grep -v '^--$' | cut -c1-300 | sed 's/^/    /')
    failed="$failed$nl  $s (exit $rc):$nl$names"
  fi
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "  $s: $p passed, $f failed"
  pass=$((pass + p)); fail=$((fail + f))
done
if [ -n "$failed" ]; then echo "lua failures:$failed"; fi
echo "lua: $pass passed, $fail failed"
