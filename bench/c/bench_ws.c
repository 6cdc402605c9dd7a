/*
 * bench_ws.c: micro-benchmarks of the ws and deflate cores. Prints figures,
 * asserts nothing. Build by hand:
 *   cc -O2 -Iinclude bench/c/bench_ws.c build/lib/liblowbit.a -lssl -lcrypto -lz
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_deflate.h"
#include "lowbit/lb_ws.h"
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

static volatile uint64_t sink;

static double gbps(size_t bytes, double secs) { return (double)bytes / secs / 1e9; }

/* Mean µs to compress and to decompress msg[0..n) with a fresh pair of
 * contexts, over enough iterations for about 64 MiB of input. */
static void deflate_us(lb_deflate *tx, lb_deflate *rx, const uint8_t *msg, size_t n,
                       double *c_us, double *d_us) {
  lb_buf z = {0}, out = {0};
  size_t iters = ((size_t)64 << 20) / (n + 256);
  if (iters > 200000) iters = 200000;
  double tc = 0, td = 0;
  for (size_t i = 0; i < iters; i++) {
    lb_buf_reset(&z);
    lb_buf_reset(&out);
    double t0 = now();
    lb_deflate_compress(tx, msg, n, &z);
    double t1 = now();
    ptrdiff_t r = lb_deflate_decompress(rx, z.data, z.len, &out, 1 << 20);
    double t2 = now();
    if (r != (ptrdiff_t)n) { fprintf(stderr, "deflate round trip failed: %td\n", r); exit(1); }
    tc += t1 - t0;
    td += t2 - t1;
  }
  *c_us = tc / (double)iters * 1e6;
  *d_us = td / (double)iters * 1e6;
  lb_buf_free(&z);
  lb_buf_free(&out);
}

int main(void) {
  enum { N = 64 * 1024 };
  uint8_t *buf = malloc(N);
  const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  for (size_t i = 0; i < N; i++) buf[i] = (uint8_t)('a' + i % 26);

  /* masking a 64 KiB payload (L2-resident), misaligned start */
  {
    size_t iters = 40000, total = 0;
    double t0 = now();
    for (size_t i = 0; i < iters; i++) {
      lb_ws_mask(buf + 1, N - 1, key, i);
      total += N - 1;
    }
    double t = now() - t0;
    sink += buf[7];
    printf("ws mask: %.2f GB/s\n", gbps(total, t));
    bench_line("ws_c", "mask 64 KiB", "gb_per_s", "lowbit", gbps(total, t), "GB/s", "higher");
  }

  /* UTF-8: pure ASCII and a mixed text (~1/3 multi-byte) */
  {
    uint8_t *ascii = malloc(N), *mixed = malloc(N);
    for (size_t i = 0; i < N; i++) ascii[i] = (uint8_t)('a' + i % 26);
    static const char *words[] = {"hello ", "h\xc3\xa9llo ", "\xe2\x82\xac ", "\xe6\x97\xa5\xe6\x9c\xac ",
                                  "\xf0\x9f\x98\x80 ", "world "};
    size_t m = 0, w = 0;
    while (1) {
      const char *s = words[w++ % 6];
      size_t l = strlen(s);
      if (m + l > N) break;
      memcpy(mixed + m, s, l);
      m += l;
    }
    size_t iters = 20000;
    double t0 = now();
    for (size_t i = 0; i < iters; i++) sink += (uint64_t)lb_utf8_check(ascii, N);
    double ta = now() - t0;
    t0 = now();
    for (size_t i = 0; i < iters / 4; i++) sink += (uint64_t)lb_utf8_check(mixed, m);
    double tm = now() - t0;
    printf("utf8 validate: %.2f GB/s (ascii), %.2f GB/s (mixed)\n", gbps(N * iters, ta),
           gbps(m * (iters / 4), tm));
    bench_line("ws_c", "utf8 validate, ascii", "gb_per_s", "lowbit", gbps(N * iters, ta), "GB/s", "higher");
    bench_line("ws_c", "utf8 validate, mixed", "gb_per_s", "lowbit", gbps(m * (iters / 4), tm), "GB/s", "higher");
    free(ascii);
    free(mixed);
  }

  /* header parse: a masked 16-bit-length frame, as a server sees it */
  {
    uint8_t hdr[LB_WS_MAX_HEADER];
    ptrdiff_t hn = lb_ws_build_header(hdr, sizeof hdr, 1, 0, LB_WS_OP_BINARY, 1, key, 1000);
    size_t iters = 20000000;
    lb_ws_header h;
    uint64_t acc = 0;
    double t0 = now();
    for (size_t i = 0; i < iters; i++) {
      hdr[2] = (uint8_t)(0x03 + (i & 1)); /* keep the compiler from hoisting */
      acc += (uint64_t)lb_ws_parse_header(&h, hdr, (size_t)hn, LB_WS_SERVER, 1 << 20);
      acc += h.payload_len;
    }
    double t = now() - t0;
    sink += acc;
    printf("ws header parse: %.1f ns\n", t / (double)iters * 1e9);
    bench_line("ws_c", "header parse", "ns_per_op", "lowbit", t / (double)iters * 1e9, "ns", "lower");
  }

  /* permessage-deflate: compress + decompress a message, context takeover */
  {
    lb_deflate *tx = lb_deflate_new(15, 0, 15, 0, -1), *rx = lb_deflate_new(15, 0, 15, 0, -1);
    lb_buf z = {0}, out = {0};
    const size_t sizes[2] = {16, 4096};
    double us[2][2];
    for (int k = 0; k < 2; k++) {
      size_t iters = k == 0 ? 200000 : 20000;
      double tc = 0, td = 0;
      for (size_t i = 0; i < iters; i++) {
        buf[i % sizes[k]] = (uint8_t)('a' + i % 26);
        lb_buf_reset(&z);
        lb_buf_reset(&out);
        double t0 = now();
        lb_deflate_compress(tx, buf, sizes[k], &z);
        double t1 = now();
        lb_deflate_decompress(rx, z.data, z.len, &out, 1 << 20);
        double t2 = now();
        tc += t1 - t0;
        td += t2 - t1;
      }
      us[k][0] = tc / (double)iters * 1e6;
      us[k][1] = td / (double)iters * 1e6;
    }
    printf("deflate 16B/4KiB msg: %.2f / %.2f µs (compress), %.2f / %.2f µs (decompress)\n",
           us[0][0], us[1][0], us[0][1], us[1][1]);
    for (int k = 0; k < 2; k++) {
      char bcase[64];
      snprintf(bcase, sizeof bcase, "deflate takeover, %s message", k ? "4 KiB" : "16 B");
      bench_line("ws_c", bcase, "us_compress", "lowbit", us[k][0], "us", "lower");
      bench_line("ws_c", bcase, "us_decompress", "lowbit", us[k][1], "us", "lower");
    }
    lb_buf_free(&z);
    lb_buf_free(&out);
    lb_deflate_free(tx);
    lb_deflate_free(rx);
  }
  /* permessage-deflate without context takeover in either direction (what
   * gorilla always negotiates), level 1 as websockets.lua uses: 'a' repeated
   * and a word-salad text */
  {
    enum { M = 64 * 1024 };
    uint8_t *as = malloc(M), *text = malloc(M);
    static const char *words[] = {"the ", "quick ", "br\xc3\xb8wn ", "fox ", "jumps ", "over ",
                                  "lazy ", "dog, ", "{\"id\": ", "42, ", "\"name\": ", "\xe2\x82\xac "};
    uint32_t x = 12345;
    size_t m = 0;
    memset(as, 'a', M);
    while (m < M) {
      x = x * 1103515245u + 12345u;
      const char *w = words[(x >> 16) % 12];
      size_t l = strlen(w);
      if (l > M - m) l = M - m;
      memcpy(text + m, w, l);
      m += l;
    }
    const size_t sizes[3] = {16, 4096, M};
    const char *names[2] = {"'a'", "text"};
    const uint8_t *data[2] = {as, text};
    lb_deflate *tx = lb_deflate_new(15, 1, 15, 1, 1), *rx = lb_deflate_new(15, 1, 15, 1, 1);
    for (int d = 0; d < 2; d++) {
      double c[3], u[3];
      for (int k = 0; k < 3; k++) deflate_us(tx, rx, data[d], sizes[k], &c[k], &u[k]);
      printf("deflate no-takeover %-4s 16B/4KiB/64KiB: %.2f / %.2f / %.2f µs (compress), "
             "%.2f / %.2f / %.2f µs (decompress)\n", names[d], c[0], c[1], c[2], u[0], u[1], u[2]);
      for (int k = 0; k < 3; k++) {
        char bcase[64];
        snprintf(bcase, sizeof bcase, "deflate no-takeover, %s, %zu B", names[d], sizes[k]);
        bench_line("ws_c", bcase, "us_compress", "lowbit", c[k], "us", "lower");
        bench_line("ws_c", bcase, "us_decompress", "lowbit", u[k], "us", "lower");
      }
    }
    lb_deflate_free(tx);
    lb_deflate_free(rx);
    free(as);
    free(text);
  }
  free(buf);
  return sink == 42 ? 1 : 0;
}
