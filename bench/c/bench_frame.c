/*
 * bench_frame.c: lb_frame_decode throughput over a buffer of back-to-back
 * frames (64 B, 1 KiB, 64 KiB payloads), next to the raw speed of the
 * checksum over the same bytes; then lb_frame_decode_compiled (the format
 * compiled once with lb_frame_compile) on the same frames. Build by hand:
 *   cc -O2 -Iinclude bench/c/bench_frame.c build/lib/liblowbit.a -lssl -lcrypto -lz
 */
#include "lowbit/lb_frame.h"
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

static lb_frame_format format(uint32_t ck) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  f.prefix[0] = 0xAA; f.prefix[1] = 0x55; f.prefix_len = 2;
  f.nfields = 4;
  f.fields[0] = LB_FRAME_U8; f.fields[1] = LB_FRAME_U8; f.fields[2] = LB_FRAME_U8;
  f.fields[3] = LB_FRAME_LEN32LE;
  f.checksum = ck;
  f.max_payload = 1 << 20;
  return f;
}

/* Decodes every frame of buf repeatedly for ~0.4 s, with lb_frame_decode,
 * or with lb_frame_decode_compiled when compiled is 1 (then the raw
 * checksum anchors are not measured again). */
static void bench_decode(const char *label, const lb_frame_format *f, size_t payload,
                         int compiled) {
  lb_frame_compiled c;
  if (lb_frame_compile(f, &c) != 0) { fprintf(stderr, "bad format\n"); exit(1); }
  size_t total_target = 16u << 20; /* 16 MiB of frames: past the L2/L3 */
  size_t flen = (size_t)lb_frame_encoded_len(f, payload);
  size_t nframes = total_target / flen;
  if (nframes < 4) nframes = 4;
  uint8_t *buf = malloc(nframes * flen);
  uint8_t *pl = malloc(payload);
  for (size_t i = 0; i < payload; i++) pl[i] = (uint8_t)(i * 31 + 7);
  uint64_t vals[4] = {1, 2, 3, 0};
  size_t n = 0;
  for (size_t i = 0; i < nframes; i++)
    n += (size_t)lb_frame_encode(f, vals, pl, payload, buf + n, nframes * flen - n);

  double t0 = now(), t;
  uint64_t frames = 0, bytes = 0;
  do {
    size_t pos = 0;
    while (pos < n) {
      uint64_t v[4];
      size_t off, len;
      ptrdiff_t r = compiled ? lb_frame_decode_compiled(&c, buf + pos, n - pos, v, &off, &len)
                             : lb_frame_decode(f, buf + pos, n - pos, v, &off, &len);
      if (r <= 0) { fprintf(stderr, "decode failed: %d\n", (int)r); exit(1); }
      sink += v[1] + len;
      pos += (size_t)r;
      frames++;
    }
    bytes += n;
    t = now() - t0;
  } while (t < 0.4);
  char bcase[64];
  snprintf(bcase, sizeof bcase, "%s, %zu B payload", label, payload);
  bench_line("frame_c", bcase, "frames_per_s", "lowbit", (double)frames / t, "frames/s", "higher");
  if (f->checksum == LB_FRAME_CK_NONE) /* the payload is never read: no GB/s */
    printf("  %-26s payload %6zu B: %12.0f frames/s  (payload not read)\n", label, payload,
           (double)frames / t);
  else
    printf("  %-26s payload %6zu B: %12.0f frames/s  %6.2f GB/s\n", label, payload,
           (double)frames / t, (double)bytes / t / 1e9);

  /* The raw checksum over the same bytes, one call per frame body. */
  if (f->checksum == LB_FRAME_CK_CRC32 && !compiled) {
    const char *names[2] = {"raw crc32", "raw crc32c"};
    for (int which = 0; which < 2; which++) {
      t0 = now();
      bytes = 0;
      frames = 0;
      do {
        for (size_t pos = 0; pos < n; pos += flen) {
          size_t body = flen - 2 - 4;
          sink += which == 0 ? lb_crc32_update(0, buf + pos + 2, body)
                             : lb_crc32c_update(0, buf + pos + 2, body);
          frames++;
        }
        bytes += n;
        t = now() - t0;
      } while (t < 0.4);
      printf("  %-26s payload %6zu B: %12.0f calls/s   %6.2f GB/s\n", names[which], payload,
             (double)frames / t, (double)bytes / t / 1e9);
      /* the floor of "decode crc32" / "decode crc32c" (same frame sizes): one
       * raw checksum call per frame body */
      char rcase[64];
      snprintf(rcase, sizeof rcase, "decode %s, %zu B payload", which ? "crc32c" : "crc32", payload);
      bench_line("frame_c", rcase, "frames_per_s", names[which], (double)frames / t, "frames/s", "higher");
      snprintf(rcase, sizeof rcase, "decode compiled %s, %zu B payload", which ? "crc32c" : "crc32", payload);
      bench_line("frame_c", rcase, "frames_per_s", names[which], (double)frames / t, "frames/s", "higher");
    }
  }
  free(buf);
  free(pl);
}

/* Instruction counts (the steady figure on a shared machine): decodes
 * `frames` frames of the format above once, in decode_loop, so that
 *   valgrind --tool=callgrind --toggle-collect=decode_loop \
 *     build/bench/bench_frame --instr CK PAYLOAD API FRAMES
 * gives the instructions per frame as Ir / FRAMES. CK is an
 * lb_frame_checksum_kind (0 none, 1 crc32, 2 crc32c); API 0 is
 * lb_frame_decode, 1 lb_frame_decode_compiled, 2 the raw checksum of each
 * frame body (lb_frame_checksum). */
__attribute__((noinline)) void decode_loop(int api, const lb_frame_format *f,
                                           const lb_frame_compiled *c, const uint8_t *buf,
                                           size_t n, size_t flen);
__attribute__((noinline)) void decode_loop(int api, const lb_frame_format *f,
                                           const lb_frame_compiled *c, const uint8_t *buf,
                                           size_t n, size_t flen) {
  for (size_t pos = 0; pos < n;) {
    uint64_t v[4] = {0, 0, 0, 0};
    size_t off = 0, len = 0;
    ptrdiff_t r;
    if (api == 2) {
      sink += lb_frame_checksum((int)f->checksum, buf + pos + 2, flen - 2 - 4);
      r = (ptrdiff_t)flen;
    } else if (api == 1) {
      r = lb_frame_decode_compiled(c, buf + pos, n - pos, v, &off, &len);
    } else {
      r = lb_frame_decode(f, buf + pos, n - pos, v, &off, &len);
    }
    if (r <= 0) { fprintf(stderr, "decode failed: %d\n", (int)r); exit(1); }
    sink += v[1] + len;
    pos += (size_t)r;
  }
}

static int instr_mode(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: bench_frame --instr CK PAYLOAD API FRAMES\n");
    return 2;
  }
  lb_frame_format f = format((uint32_t)atoi(argv[2]));
  size_t payload = (size_t)atol(argv[3]), frames = (size_t)atol(argv[5]);
  int api = atoi(argv[4]);
  lb_frame_compiled c;
  if (lb_frame_compile(&f, &c) != 0) { fprintf(stderr, "bad format\n"); return 2; }
  size_t flen = (size_t)lb_frame_encoded_len(&f, payload);
  uint8_t *buf = malloc(frames * flen), *pl = calloc(1, payload + 1);
  uint64_t vals[4] = {1, 2, 3, 0};
  size_t n = 0;
  for (size_t i = 0; i < frames; i++)
    n += (size_t)lb_frame_encode(&f, vals, pl, payload, buf + n, frames * flen - n);
  sink += lb_frame_checksum((int)f.checksum, buf, n < 16 ? n : 16); /* tables built */
  decode_loop(api, &f, &c, buf, n, flen);
  free(buf);
  free(pl);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--instr") == 0) return instr_mode(argc, argv);
  static const size_t sizes[] = {64, 1024, 65536};
  printf("lb_frame decode (prefix 2 B + header 7 B + payload + checksum 4 B)\n");
  printf("crc32c hardware path: %s\n", lb_crc32c_hardware() ? "sse4.2" : "table");
  for (size_t i = 0; i < 3; i++) {
    lb_frame_format f = format(LB_FRAME_CK_CRC32);
    bench_decode("decode crc32", &f, sizes[i], 0);
    bench_decode("decode compiled crc32", &f, sizes[i], 1);
    f = format(LB_FRAME_CK_CRC32C);
    bench_decode("decode crc32c", &f, sizes[i], 0);
    bench_decode("decode compiled crc32c", &f, sizes[i], 1);
    f = format(LB_FRAME_CK_NONE);
    bench_decode("decode no checksum", &f, sizes[i], 0);
    bench_decode("decode compiled no checksum", &f, sizes[i], 1);
  }
  /* Raw speed of every checksum over one 64 KiB buffer, for reference. */
  printf("raw checksum speed, 64 KiB buffer\n");
  static uint8_t big[65536];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 131 + 1);
  static const char *names[] = {"", "crc32", "crc32c", "crc64-iso", "crc64-ecma", "adler32",
                                "crc16-modbus", "crc16-ccitt-false", "crc16-kermit",
                                "crc16-xmodem"};
  for (int k = 1; k < LB_FRAME_CK_COUNT; k++) {
    double t0 = now(), t;
    uint64_t bytes = 0;
    do {
      sink += lb_frame_checksum(k, big, sizeof big);
      bytes += sizeof big;
      t = now() - t0;
    } while (t < 0.2);
    printf("  %-18s %6.2f GB/s\n", names[k], (double)bytes / t / 1e9);
    char bcase[64];
    snprintf(bcase, sizeof bcase, "checksum %s, 64 KiB", names[k]);
    bench_line("frame_c", bcase, "gb_per_s", "lowbit", (double)bytes / t / 1e9, "GB/s", "higher");
  }
  return 0;
}
