/* bench_sse.c: lb_sse encoder and parser throughput.
 * cc -O2 -Iinclude bench/c/bench_sse.c build/lib/liblowbit.a -lssl -lcrypto -lz -lm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lb_sse.h"
#include "report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char payload[] =
    "{\"type\":\"price\",\"symbol\":\"ACME\",\"bid\":101.25,\"ask\":101.75,"
    "\"ts\":1700000000123}\n{\"seq\":42}";

int main(void) {
  /* encode: one event with event, id and a two-line JSON payload */
  lb_sse_event ev;
  memset(&ev, 0, sizeof ev);
  ev.event = "tick";
  ev.event_len = 4;
  ev.id = "1700000000123";
  ev.id_len = 13;
  ev.data = payload;
  ev.data_len = sizeof payload - 1;
  ev.retry = -1;
  uint8_t out[512];
  const int N = 5000000;
  size_t sum = 0;
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    ptrdiff_t n = lb_sse_encode(&ev, out, sizeof out);
    if (n < 0) return 1;
    sum += (size_t)n + out[i & 63];
  }
  double t1 = now_s();
  printf("sse encode: %.1f ns/event (%zu bytes/event)\n", (t1 - t0) * 1e9 / N,
         (size_t)lb_sse_encode(&ev, out, sizeof out));
  bench_line("sse_c", "encode an event", "ns_per_event", "lowbit", (t1 - t0) * 1e9 / N, "ns", "lower");

  /* parse: a 10,000-event stream, whole and in 4 KiB reads */
  lb_buf stream = {0};
  for (int i = 0; i < 10000; i++) {
    if (lb_sse_encode_buf(&ev, &stream) < 0) return 1;
    if (i % 10 == 0 && lb_sse_encode_comment_buf("keep-alive", 10, &stream) < 0)
      return 1;
  }
  const size_t chunks[2] = {0, 4096};
  for (int c = 0; c < 2; c++) {
    const int R = 100;
    size_t events = 0;
    lb_sse_parser p;
    lb_sse_parser_init(&p);
    t0 = now_s();
    for (int r = 0; r < R; r++) {
      size_t at = 0;
      while (at < stream.len) {
        size_t left = stream.len - at;
        if (chunks[c] && left > chunks[c]) left = chunks[c];
        ptrdiff_t k = lb_sse_feed(&p, stream.data + at, left);
        if (k < 0) return 1;
        if (p.ready) events += p.data_len ? 1 : 0;
        at += (size_t)k;
      }
    }
    t1 = now_s();
    lb_sse_parser_free(&p);
    printf("sse parse: %.0f MB/s (%s, %.0f ns/event, %zu events)\n",
           (double)stream.len * R / (t1 - t0) / 1e6,
           chunks[c] ? "4 KiB reads" : "whole buffer",
           (t1 - t0) * 1e9 / (double)events, events);
    bench_line("sse_c", chunks[c] ? "parse, 4 KiB reads" : "parse, whole buffer", "mb_per_s", "lowbit",
               (double)stream.len * R / (t1 - t0) / 1e6, "MB/s", "higher");
  }
  lb_buf_free(&stream);
  return sum == 0;
}
