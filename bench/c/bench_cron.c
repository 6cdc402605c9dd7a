/* bench_cron.c: lb_cron next-fire time (target from issue 11: <= 1 us for
 * common expressions) and parse time, in UTC and in America/New_York.
 * cc -O2 -Iinclude bench/c/bench_cron.c build/lib/liblowbit.a -lssl -lcrypto -lz -lm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lb_cron.h"
#include "report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static lb_tz *load(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  static uint8_t buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return lb_tz_new(buf, n, NULL);
}

static volatile int64_t sink;

/* ns per lb_cron_next from instants spread over a year (t0 + i * 7919 s). */
static double bench_next(const lb_cron *c, const lb_tz *z) {
  const int64_t t0 = 1704067200; /* 2024-01-01 */
  uint64_t iters = 0;
  double start = now_s(), t;
  int64_t acc = 0;
  do {
    for (int i = 0; i < 10000; i++) {
      int64_t out = 0;
      lb_cron_next(c, z, t0 + (int64_t)((iters + (uint64_t)i) % 4000) * 7919, &out);
      acc += out;
    }
    iters += 10000;
    t = now_s() - start;
  } while (t < 0.3);
  sink = acc;
  return t / (double)iters * 1e9;
}

int main(void) {
  static const char *const exprs[] = {"* * * * *",  "*/15 * * * *", "0 3 * * *",  "30 9 * * 1-5",
                                      "0 0 1 * *",  "@weekly",      "0 0 13 * FRI", "0 0 29 2 *"};
  lb_tz *ny = load("/usr/share/zoneinfo/America/New_York");
  printf("lb_cron_next, ns per call (target <= 1000 ns for common expressions)\n");
  printf("  %-16s %10s %18s\n", "expression", "UTC", "America/New_York");
  for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
    lb_cron c;
    if (lb_cron_parse(&c, exprs[i], strlen(exprs[i])) != 0) return 1;
    double u = bench_next(&c, NULL);
    char bcase[64];
    snprintf(bcase, sizeof bcase, "next \"%s\", UTC", exprs[i]);
    bench_line("cron", bcase, "ns_per_call", "lowbit", u, "ns", "lower");
    if (ny != NULL) {
      double z = bench_next(&c, ny);
      printf("  %-16s %10.0f %18.0f\n", exprs[i], u, z);
      snprintf(bcase, sizeof bcase, "next \"%s\", America/New_York", exprs[i]);
      bench_line("cron", bcase, "ns_per_call", "lowbit", z, "ns", "lower");
    } else
      printf("  %-16s %10.0f %18s\n", exprs[i], u, "(no tzdata)");
  }
  const char *e = "15,45 9-17/2 * jan-jun MON-FRI";
  lb_cron c;
  uint64_t iters = 0;
  double start = now_s(), t;
  do {
    for (int i = 0; i < 10000; i++) sink += lb_cron_parse(&c, e, strlen(e));
    iters += 10000;
    t = now_s() - start;
  } while (t < 0.3);
  printf("lb_cron_parse \"%s\": %.0f ns\n", e, t / (double)iters * 1e9);
  bench_line("cron", "parse \"15,45 9-17/2 * jan-jun MON-FRI\"", "ns_per_call", "lowbit", t / (double)iters * 1e9, "ns",
             "lower");
  lb_tz_free(ny);
  return 0;
}
