/*
 * bench_urlsign.c: lb_urlsign_sign / lb_urlsign_verify per call, in C (no
 * Lua around them), on bench/urlsign.lua's two URLs; beside the raw
 * HMAC-SHA256 of the same message, the floor of this work.
 * Build by hand:
 *   cc -O2 -Iinclude bench/c/bench_urlsign.c build/lib/liblowbit.a -lssl -lcrypto -lz
 */
#include "lowbit/lb_urlsign.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile ptrdiff_t sink;

#define RUN(label, body)                                                     \
  do {                                                                       \
    double t0 = now(), t;                                                    \
    uint64_t iters = 0;                                                      \
    do {                                                                     \
      for (int i_ = 0; i_ < 1000; i_++) { body; }                            \
      iters += 1000;                                                         \
      t = now() - t0;                                                        \
    } while (t < 0.3);                                                       \
    printf("  %-34s %8.0f ns\n", label, t / (double)iters * 1e9);            \
    char bcase_[96];                                                         \
    snprintf(bcase_, sizeof bcase_, "%s, %s URL", label, u ? "long" : "short"); \
    bench_line("urlsign_c", bcase_, "ns_per_op", "lowbit", t / (double)iters * 1e9, "ns", "lower"); \
  } while (0)

int main(void) {
  static const char *const urls[] = {
    "https://cdn.example.com/files/report.pdf",
    "https://cdn.example.com:8443/files/2024/q3/report.pdf?format=pdf&user=12345&lang=en-GB&download=1",
  };
  const char *key = "a 32-byte secret key for bench!!";
  lb_hmac *h = lb_hmac_new((const uint8_t *)key, strlen(key));
  static char work[4096], out[4096], signed_url[4096];
  for (size_t u = 0; u < 2; u++) {
    const char *url = urls[u];
    size_t n = strlen(url);
    ptrdiff_t sl = lb_urlsign_sign(h, url, n, "1747123456", 10, work, sizeof work, out, sizeof out);
    if (sl < 0) return 1;
    memcpy(signed_url, out, (size_t)sl);
    double e;
    if (lb_urlsign_verify(h, signed_url, (size_t)sl, work, sizeof work, &e) != LB_URLSIGN_VALID) return 1;
    uint8_t mac[32];
    printf("%s\n", url);
    RUN("lb_urlsign_sign",
        sink = lb_urlsign_sign(h, url, n, "1747123456", 10, work, sizeof work, out, sizeof out));
    RUN("lb_urlsign_verify",
        sink = lb_urlsign_verify(h, signed_url, (size_t)sl, work, sizeof work, &e));
    RUN("lb_hmac_sha256 (60-110 B message)", sink = lb_hmac_sha256(h, signed_url, 60 + 50 * u, mac));
  }
  lb_hmac_free(h);
  return 0;
}
