# Sourced by the shell benchmarks: the machine-readable figure lines of
# `make bench` (format: bench/README.md).
#   bench_line SUITE CASE METRIC IMPL VALUE UNIT BETTER
# writes one `@bench {...}` line to stdout. IMPL is "lowbit" or the name of
# the anchor measured in the same run; BETTER is "lower" or "higher". A VALUE
# that is not a number (empty, "?", "n/a") writes nothing; the human line
# says what happened.
bench_json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
bench_line() {
  case "$5" in ''|*[!0-9.eE+-]*) return 0 ;; esac
  printf '%s\n' "$5" | grep -Eq '^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$' || return 0
  printf '@bench {"suite":%s,"case":%s,"metric":%s,"impl":%s,"value":%s,"unit":%s,"better":%s}\n' \
    "$(bench_json_str "$1")" "$(bench_json_str "$2")" "$(bench_json_str "$3")" "$(bench_json_str "$4")" \
    "$(awk -v v="$5" 'BEGIN{ printf "%.6g", v + 0 }')" "$(bench_json_str "$6")" "$(bench_json_str "$7")"
}
