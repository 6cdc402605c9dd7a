/*
 * bench_inflate.c: lb_inflate against zlib's inflate, whole raw DEFLATE
 * streams decoded into a buffer that fits them, time per decode and output
 * MB/s. Streams: 64 KiB of 'a' as Go's compress/flate BestSpeed writes it
 * (length-258 distance-1 matches: the case byte-by-byte overlap copies are
 * slow on), the same run as one fixed-Huffman block built here, and
 * text-like data from zlib levels 1 and 6 (64 KiB, 1 MiB, and a 1 KiB
 * message, where building the block's tables dominates; the text is words
 * drawn at random from a short list, short matches only), this project's
 * own sources (README.md and runtime/lb_ files, read from the current
 * directory; skipped when absent) and random bytes. Build by hand:
 *   cc -O2 -Iinclude bench/c/bench_inflate.c build/lib/liblowbit.a -lssl -lcrypto -lz
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_inflate.h"
#include "report.h"
#include "../../runtime/test/deflate_streams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One final fixed-Huffman block: 'a', then length-258 distance-1 matches
 * and a last shorter one, n bytes in all (n >= 4). */
static size_t fixed_run(uint8_t *dst, size_t n) {
  static bw w; /* 8 KiB: room for 64 KiB of the run (417 bytes) */
  memset(&w, 0, sizeof w);
  put(&w, 1, 1);
  put(&w, 1, 2);
  fixed_lit(&w, 'a');
  size_t left = n - 1;
  while (left > 0) {
    size_t len = left > 258 ? 258 : left;
    if (left - len > 0 && left - len < 3) len = left - 3; /* keep the last match >= 3 */
    if (len == 258) {
      fixed_lit(&w, 285);
    } else if (len <= 10) {
      fixed_lit(&w, (unsigned)(257 + len - 3)); /* 257..264 */
    } else {
      /* 265..284 via the length table: find the code */
      static const uint16_t base[20] = {11, 13, 15, 17, 19, 23, 27, 31, 35, 43,
                                        51, 59, 67, 83, 99, 115, 131, 163, 195, 227};
      static const uint8_t extra[20] = {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5};
      int i = 19;
      while (base[i] > len) i--;
      fixed_lit(&w, 265 + (unsigned)i);
      put(&w, (uint32_t)(len - base[i]), extra[i]);
    }
    put_code(&w, 0, 5); /* distance 1 */
    left -= len;
  }
  fixed_lit(&w, 256); /* end of block */
  align(&w);
  memcpy(dst, w.b, w.n);
  return w.n;
}

static void text(uint8_t *p, size_t n) {
  static const char *words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ",
                                "dog ", "{\"id\":", "\"name\":", "\"value\":", "true,", "null,",
                                "websocket ", "message ", "payload ", "\n"};
  uint64_t x = 0x2545F4914F6CDD1Dull;
  size_t i = 0;
  while (i < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const char *w = words[x % (sizeof words / sizeof words[0])];
    for (size_t k = 0; w[k] && i < n; k++) p[i++] = (uint8_t)w[k];
    if (x % 5 == 0 && i < n) p[i++] = (uint8_t)('0' + (x >> 8) % 10);
  }
}

static void bench(const char *label, const uint8_t *z, size_t zn, size_t n) {
  uint8_t *out = malloc(n + 64);
  lb_inflate *st = lb_inflate_new();
  z_stream s;
  memset(&s, 0, sizeof s);
  inflateInit2(&s, -15);
  double tl, tz;
  long iters = 0;
  /* check both first */
  lb_inflate_result res;
  if (lb_inflate_decode(st, z, zn, out, n, &res) != LB_OK || res.out_used != n) {
    fprintf(stderr, "%s: lb_inflate failed\n", label);
    exit(1);
  }
  double t0 = now();
  do {
    for (int k = 0; k < 16; k++) lb_inflate_decode(st, z, zn, out, n, &res);
    iters += 16;
    tl = now() - t0;
  } while (tl < 0.3);
  tl /= (double)iters;
  iters = 0;
  t0 = now();
  do {
    for (int k = 0; k < 16; k++) {
      inflateReset(&s);
      s.next_in = (Bytef *)(uintptr_t)z;
      s.avail_in = (uInt)zn;
      s.next_out = out;
      s.avail_out = (uInt)n;
      if (inflate(&s, Z_FINISH) != Z_STREAM_END) {
        fprintf(stderr, "%s: zlib failed\n", label);
        exit(1);
      }
    }
    iters += 16;
    tz = now() - t0;
  } while (tz < 0.3);
  tz /= (double)iters;
  printf("  %-34s %8zu -> %8zu B: lb_inflate %9.2f us %7.0f MB/s | zlib %9.2f us %7.0f MB/s | x%.1f\n",
         label, zn, n, tl * 1e6, (double)n / tl / 1e6, tz * 1e6, (double)n / tz / 1e6, tz / tl);
  bench_line("inflate", label, "us_per_decode", "lowbit", tl * 1e6, "us", "lower");
  bench_line("inflate", label, "us_per_decode", "zlib", tz * 1e6, "us", "lower");
  inflateEnd(&s);
  lb_inflate_free(st);
  free(out);
}

int main(void) {
  size_t big = 1u << 20;
  uint8_t *msg = malloc(big), *z = malloc(big);
  bench("64 KiB 'a', Go BestSpeed", GO_BESTSPEED_64K_A, sizeof GO_BESTSPEED_64K_A, 65536);
  size_t zn = fixed_run(z, 65536);
  bench("64 KiB 'a', fixed block, dist 1", z, zn, 65536);
  const size_t sizes[3] = {1024, 65536, big};
  const char *names[3] = {"1 KiB", "64 KiB", "1 MiB"};
  for (int si = 0; si < 3; si++) {
    text(msg, sizes[si]);
    for (int level = 1; level <= 6; level += 5) {
      uint8_t *t = zlib_raw_deflate(msg, sizes[si], level, Z_DEFAULT_STRATEGY, &zn);
      char label[64];
      snprintf(label, sizeof label, "%s text, zlib level %d", names[si], level);
      bench(label, t, zn, sizes[si]);
      free(t);
    }
  }
  /* real text: the project's sources, when run from the top directory */
  static const char *files[] = {"README.md", "runtime/lb_http1.c", "runtime/lb_ws.c",
                                "runtime/lb_tls.c", "runtime/lb_deflate.c", "runtime/lb_frame.c",
                                "runtime/lb_sse.c", "runtime/lb_lanes.c", "runtime/lb_inflate.c"};
  size_t got = 0;
  for (size_t i = 0; i < sizeof files / sizeof files[0] && got < big; i++) {
    FILE *f = fopen(files[i], "rb");
    if (f == NULL) continue;
    got += fread(msg + got, 1, big - got, f);
    fclose(f);
  }
  if (got >= 65536) {
    for (int level = 1; level <= 6; level += 5) {
      uint8_t *t = zlib_raw_deflate(msg, 65536, level, Z_DEFAULT_STRATEGY, &zn);
      char label[64];
      snprintf(label, sizeof label, "64 KiB sources, zlib level %d", level);
      bench(label, t, zn, 65536);
      free(t);
      t = zlib_raw_deflate(msg, got, level, Z_DEFAULT_STRATEGY, &zn);
      snprintf(label, sizeof label, "%zu KiB sources, zlib level %d", got >> 10, level);
      bench(label, t, zn, got);
      free(t);
    }
  }
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < 65536; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    msg[i] = (uint8_t)x;
  }
  uint8_t *t = zlib_raw_deflate(msg, 65536, 6, Z_DEFAULT_STRATEGY, &zn);
  bench("64 KiB random, zlib level 6", t, zn, 65536);
  free(t);
  free(msg);
  free(z);
  return 0;
}
