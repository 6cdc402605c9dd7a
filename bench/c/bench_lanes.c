/* bench_lanes.c: lb_lanes acquire+release cost.
 * cc -O2 -Iinclude bench/c/bench_lanes.c build/lib/liblowbit.a -lssl -lcrypto -lz -lm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lb_lanes.h"
#include "report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { NKEYS = 1000000, KEYLEN = 16 };

int main(void) {
  lb_lanes *t = lb_lanes_new();
  if (!t) return 1;
  const int N = 10000000;
  int64_t sum = 0;
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    sum += lb_lanes_acquire(t, "stock:42", 8, 1, (double)i);
    sum += lb_lanes_release(t, "stock:42", 8, 1, (double)i);
  }
  double t1 = now_s();
  printf("lanes acquire+release uncontended: %.1f ns\n", (t1 - t0) * 1e9 / N);
  bench_line("lanes_c", "acquire+release, uncontended", "ns_per_op", "lowbit", (t1 - t0) * 1e9 / N, "ns", "lower");

  /* 1M keys present; acquire+release in a random order over them. */
  char *keys = malloc((size_t)NKEYS * KEYLEN);
  uint32_t *order = malloc((size_t)NKEYS * sizeof *order);
  if (!keys || !order) return 1;
  for (int i = 0; i < NKEYS; i++) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "stock:%010d", i);
    memcpy(keys + (size_t)i * KEYLEN, tmp, KEYLEN);
    order[i] = (uint32_t)i;
  }
  uint64_t x = 88172645463325252ULL;
  for (int i = NKEYS - 1; i > 0; i--) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint32_t j = (uint32_t)(x % (uint64_t)(i + 1)), tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  t0 = now_s();
  for (int i = 0; i < NKEYS; i++) {
    sum += lb_lanes_acquire(t, keys + (size_t)i * KEYLEN, KEYLEN, 2, 0.0);
    sum += lb_lanes_release(t, keys + (size_t)i * KEYLEN, KEYLEN, 2, 0.0);
  }
  t1 = now_s();
  printf("lanes create 1M keys: %.1f ns/key\n", (t1 - t0) * 1e9 / NKEYS);
  bench_line("lanes_c", "create 1M keys", "ns_per_op", "lowbit", (t1 - t0) * 1e9 / NKEYS, "ns", "lower");
  const int R = 5;
  t0 = now_s();
  for (int r = 0; r < R; r++)
    for (int i = 0; i < NKEYS; i++) {
      const char *k = keys + (size_t)order[i] * KEYLEN;
      sum += lb_lanes_acquire(t, k, KEYLEN, 3, 1.0);
      sum += lb_lanes_release(t, k, KEYLEN, 3, 1.0);
    }
  t1 = now_s();
  printf("lanes acquire+release with 1M keys: %.1f ns (random order)\n",
         (t1 - t0) * 1e9 / ((double)R * NKEYS));
  bench_line("lanes_c", "acquire+release, 1M keys, random order", "ns_per_op", "lowbit",
             (t1 - t0) * 1e9 / ((double)R * NKEYS), "ns", "lower");
  t0 = now_s();
  size_t m = lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_MARK);
  double t2 = now_s();
  size_t s = lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_SWEEP);
  t1 = now_s();
  printf("lanes sweep 1M idle keys: mark %.1f ms, sweep %.1f ms (%zu/%zu)\n",
         (t2 - t0) * 1e3, (t1 - t2) * 1e3, m, s);
  bench_line("lanes_c", "sweep 1M idle keys", "mark_ms", "lowbit", (t2 - t0) * 1e3, "ms", "lower");
  bench_line("lanes_c", "sweep 1M idle keys", "sweep_ms", "lowbit", (t1 - t2) * 1e3, "ms", "lower");
  lb_lanes_free(t);
  free(keys);
  free(order);
  return sum == 42;
}
