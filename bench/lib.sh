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

# wrk's latency ("850.00us", "1.52ms", "1.20s") in milliseconds.
bench_ms() {
  printf '%s\n' "$1" | awk '{ v = $1 + 0
    if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v = v; else if ($1 ~ /s$/) v *= 1000
    if ($1 ~ /^[0-9.]+(us|ms|s)$/) printf "%.3f", v }'
}

# The anchors' names in ../shared/bench's compare scripts, as impl.
bench_impl() {
  case "$1" in
    openresty-lua|nginx-lua) echo openresty ;;
    go-net/http) echo go ;;
    node-ws) echo node-ws ;;
    *) echo "$1" ;;
  esac
}

# Reads ../shared/bench/compare-http.sh's output on stdin, copies it to
# stdout and adds its @bench lines: bench_compare_http SUITE CASE
bench_compare_http() {
  local line name
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *"req/s:"*"server CPU per request:"*)
        set -- $line
        name=$(bench_impl "$1")
        bench_line "$BC_SUITE" "$BC_CASE" req_per_s "$name" "$3" req/s higher
        bench_line "$BC_SUITE" "$BC_CASE" cpu_us_per_req "$name" "$(printf '%s\n' "$line" | awk '{print $(NF-1)}')" us lower ;;
    esac
  done
}

# Reads ../shared/bench/compare-ws.sh's output on stdin (one line per
# server and size), copies it and adds its @bench lines: SUITE CASE-PREFIX
bench_compare_ws() {
  local line name size rate cpu
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *" size="*"cpu_per_msg_us="*)
        set -- $line
        name=$(bench_impl "$1"); size=${2#size=}; rate=$3; cpu=${line##*cpu_per_msg_us=}
        bench_line "$BC_SUITE" "$BC_CASE $size B" msgs_per_s "$name" "$rate" msgs/s higher
        bench_line "$BC_SUITE" "$BC_CASE $size B" cpu_us_per_msg "$name" "$cpu" us lower ;;
    esac
  done
}
