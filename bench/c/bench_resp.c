/* bench_resp.c: lb_resp parser and encoder throughput.
 * cc -O2 -Iinclude bench/c/bench_resp.c build/lib/liblowbit.a -lssl -lcrypto -lz -lm
 *
 * Parse: a buffer of pipelined bulk replies (as N GETs return), parsed
 * reply by reply as a client does; the figure is bulk payload bytes per
 * second (goal >= 1 GB/s at 1 KiB values). Also small replies (+OK) per
 * second, and the encoder (SET key value, with lb_resp_encode_command and
 * with lb_resp_encode4) per command. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lb_resp.h"
#include "report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bench_bulk(size_t vlen, int replies, int rounds) {
  lb_buf b = {0};
  char hdr[32];
  char *val = malloc(vlen);
  memset(val, 'v', vlen);
  for (int i = 0; i < replies; i++) {
    int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", vlen);
    lb_buf_append(&b, hdr, (size_t)h);
    lb_buf_append(&b, val, vlen);
    lb_buf_append(&b, "\r\n", 2);
  }
  lb_resp_node nodes[16];
  lb_resp_parser p;
  lb_resp_parser_init(&p);
  size_t sum = 0;
  double t0 = now_s();
  for (int r = 0; r < rounds; r++) {
    size_t at = 0;
    while (at < b.len) {
      ptrdiff_t n = lb_resp_parse(&p, b.data + at, b.len - at, nodes, 16);
      if (n <= 0) { fprintf(stderr, "parse failed: %td\n", n); exit(1); }
      sum += nodes[0].len;
      at += (size_t)n;
    }
  }
  double dt = now_s() - t0;
  printf("resp parse pipelined %zu-byte bulk replies: %.2f GB/s of payload, %.1f M replies/s\n",
         vlen, (double)sum / dt / 1e9, (double)replies * rounds / dt / 1e6);
  char bcase[64];
  snprintf(bcase, sizeof bcase, "parse pipelined %zu-byte bulk replies", vlen);
  bench_line("resp", bcase, "m_replies_per_s", "lowbit", (double)replies * rounds / dt / 1e6, "M replies/s", "higher");
  bench_line("resp", bcase, "gb_per_s", "lowbit", (double)sum / dt / 1e9, "GB/s", "higher");
  free(val);
  lb_buf_free(&b);
}

int main(void) {
  bench_bulk(1024, 10000, 200);
  bench_bulk(16384, 2000, 200);
  bench_bulk(16, 10000, 200);
  /* +OK replies and an array of 10 bulk strings (MGET) */
  {
    lb_buf b = {0};
    for (int i = 0; i < 10000; i++) lb_buf_append(&b, "+OK\r\n", 5);
    lb_resp_node nodes[16];
    lb_resp_parser p;
    lb_resp_parser_init(&p);
    int rounds = 300;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++)
      for (size_t at = 0; at < b.len;) at += (size_t)lb_resp_parse(&p, b.data + at, b.len - at, nodes, 16);
    double dt = now_s() - t0;
    printf("resp parse +OK: %.1f M replies/s\n", 10000.0 * rounds / dt / 1e6);
    bench_line("resp", "parse +OK", "m_replies_per_s", "lowbit", 10000.0 * rounds / dt / 1e6, "M replies/s", "higher");
    lb_buf_free(&b);
  }
  {
    const char *args[] = {"SET", "key:000123", "0123456789abcdef0123456789abcdef"};
    size_t lens[] = {3, 10, 32};
    uint8_t out[128];
    size_t sum = 0;
    const int N = 10000000;
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
      ptrdiff_t n = lb_resp_encode_command(args, lens, 3, out, sizeof out);
      sum += (size_t)n + out[i & 31];
    }
    double dt = now_s() - t0;
    printf("resp encode SET key value: %.1f ns/command (%zu)\n", dt * 1e9 / N, sum % 7);
    bench_line("resp", "encode SET key value", "ns_per_command", "lowbit", dt * 1e9 / N, "ns", "lower");
  }
  {
    /* the same command through lb_resp_encode4 (what lowbit.redis calls) */
    const char *v = "0123456789abcdef0123456789abcdef";
    uint8_t out[128];
    size_t sum = 0;
    const int N = 10000000;
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
      ptrdiff_t n = lb_resp_encode4(out, sizeof out, 3, "SET", 3, "key:000123", 10, v, 32, NULL, 0);
      sum += (size_t)n + out[i & 31];
    }
    double dt = now_s() - t0;
    printf("resp encode4 SET key value: %.1f ns/command (%zu)\n", dt * 1e9 / N, sum % 7);
    bench_line("resp", "encode4 SET key value", "ns_per_command", "lowbit", dt * 1e9 / N, "ns", "lower");
  }
  return 0;
}
