#!/bin/sh
# Runs each C core test binary; every one prints "<file>: N passed, N failed"
# as its last line. Prints the sum as "c: N passed, N failed".
pass=0; fail=0
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v ': [0-9]* passed, [0-9]* failed$' | sed 's/^/  /'
  line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "  $t crashed (exit $rc) before reporting"; fail=$((fail + 1)); continue
  fi
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
  f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "  $(basename "$t"): $p passed, $f failed"
  pass=$((pass + p)); fail=$((fail + f))
done
echo "c: $pass passed, $fail failed"
