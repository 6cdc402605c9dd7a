/* The machine-readable figure lines of `make bench` (format: bench/README.md),
 * for the C micro-benchmarks: one `@bench {...}` line on stdout per figure.
 *   bench_line("http1", "parse", "ns_per_req", "lowbit", 123.4, "ns", "lower");
 * impl is "lowbit" or the anchor measured in the same run ("zlib", "openssl"). */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H
#include <math.h>
#include <stdio.h>

static inline void bench_json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned)(unsigned char)*s);
    else putchar(*s);
  }
  putchar('"');
}

static inline void bench_line(const char *suite, const char *bcase, const char *metric, const char *impl,
                              double value, const char *unit, const char *better) {
  if (!isfinite(value)) return;
  printf("@bench {\"suite\":"); bench_json_str(suite);
  printf(",\"case\":"); bench_json_str(bcase);
  printf(",\"metric\":"); bench_json_str(metric);
  printf(",\"impl\":"); bench_json_str(impl);
  printf(",\"value\":%.6g,\"unit\":", value); bench_json_str(unit);
  printf(",\"better\":"); bench_json_str(better);
  printf("}\n");
  fflush(stdout);
}
#endif
