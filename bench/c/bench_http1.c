/*
 * bench_http1.c: request-head parsing speed of lb_http1.
 *
 *   cc -O2 -Iinclude bench/c/bench_http1.c build/lib/liblowbit.a -lssl -lcrypto -lz \
 *      -o /tmp/bench_http1
 *   /tmp/bench_http1 [iterations]
 *
 * Parses a typical browser GET head (~300 bytes) N times, then the same
 * head fed in 16-byte steps (the incremental path), then a chunked body.
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_http1.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char REQ[] =
    "GET /api/v1/items?id=42&sort=desc HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=abc123\r\n"
    "\r\n";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile size_t sink;

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 2000000;
  size_t len = sizeof REQ - 1;
  lb_http1_header h[32];
  lb_http1_req r;
  memset(&r, 0, sizeof r);
  r.headers = h;
  r.max_headers = 32;

  double t0 = now();
  for (long i = 0; i < n; i++) {
    ptrdiff_t rc = lb_http1_parse_request(&r, REQ, len, 0);
    if (rc != (ptrdiff_t)len) { fprintf(stderr, "parse failed: %td\n", rc); return 1; }
    sink += r.num_headers;
  }
  double dt = now() - t0;
  printf("http1 parse: %.1f ns/req, %.1f MB/s (%zu-byte head, %ld iterations)\n",
         dt * 1e9 / n, (double)len * n / dt / 1e6, len, n);
  bench_line("http1_c", "parse a request head", "ns_per_req", "lowbit", dt * 1e9 / n, "ns", "lower");

  long m = n / 10 ? n / 10 : 1;
  t0 = now();
  for (long i = 0; i < m; i++) {
    ptrdiff_t rc = LB_EAGAIN;
    for (size_t k = 16; rc == LB_EAGAIN; k += 16)
      rc = lb_http1_parse_request(&r, REQ, k < len ? k : len, 0);
    if (rc != (ptrdiff_t)len) { fprintf(stderr, "incremental parse failed: %td\n", rc); return 1; }
  }
  dt = now() - t0;
  printf("http1 parse, fed in 16-byte steps: %.1f ns/req\n", dt * 1e9 / m);
  bench_line("http1_c", "parse a request head, fed in 16-byte steps", "ns_per_req", "lowbit", dt * 1e9 / m, "ns", "lower");

  /* chunked: 64 chunks of 1 KiB */
  static char body[70000];
  size_t bl = 0;
  for (int c = 0; c < 64; c++) {
    bl += (size_t)sprintf(body + bl, "400\r\n");
    memset(body + bl, 'x', 1024);
    bl += 1024;
    memcpy(body + bl, "\r\n", 2);
    bl += 2;
  }
  memcpy(body + bl, "0\r\n\r\n", 5);
  bl += 5;
  long cn = n / 200 ? n / 200 : 1;
  t0 = now();
  for (long i = 0; i < cn; i++) {
    lb_http1_chunked c;
    memset(&c, 0, sizeof c);
    size_t at = 0, got = 0;
    while (at < bl && !lb_http1_chunked_done(&c)) {
      const char *d;
      size_t dl;
      ptrdiff_t k = lb_http1_chunked_decode(&c, body + at, bl - at, &d, &dl);
      if (k < 0) { fprintf(stderr, "chunked failed\n"); return 1; }
      at += (size_t)k;
      got += dl;
    }
    sink += got;
  }
  dt = now() - t0;
  printf("http1 chunked decode: %.1f MB/s of framed body\n", (double)bl * cn / dt / 1e6);
  bench_line("http1_c", "chunked decode, 64 x 1 KiB", "mb_per_s", "lowbit", (double)bl * cn / dt / 1e6, "MB/s", "higher");
  return 0;
}
