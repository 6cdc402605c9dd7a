/*
 * deflate_streams.h: hand-built raw DEFLATE streams, shared by the
 * lb_inflate tests (runtime/test/test_inflate.c) and its benchmark
 * (bench/c/bench_inflate.c): an LSB-first bit writer, fixed-Huffman
 * symbols, what Go's compress/flate writes for a run of one byte, and
 * zlib's own raw DEFLATE of a message.
 */
#ifndef LOWBIT_TEST_DEFLATE_STREAMS_H
#define LOWBIT_TEST_DEFLATE_STREAMS_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* zlib's raw DEFLATE (window 15) of msg, finished: a malloc'd complete
 * stream of *zn bytes, or NULL when zlib fails. */
static inline uint8_t *zlib_raw_deflate(const uint8_t *msg, size_t n, int level, int strategy,
                                        size_t *zn) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (deflateInit2(&s, level, Z_DEFLATED, -15, 8, strategy) != Z_OK) return NULL;
  size_t bound = deflateBound(&s, (uLong)n) + 16;
  uint8_t *dst = malloc(bound);
  s.next_in = (Bytef *)(uintptr_t)msg;
  s.avail_in = (uInt)n;
  s.next_out = dst;
  s.avail_out = (uInt)bound;
  int r = dst != NULL ? deflate(&s, Z_FINISH) : Z_MEM_ERROR;
  *zn = bound - s.avail_out;
  deflateEnd(&s);
  if (r != Z_STREAM_END) {
    free(dst);
    return NULL;
  }
  return dst;
}

/* compress/flate BestSpeed, 64 KiB of 'a', Close()d: 89 bytes of
 * length-258 distance-1 matches (overlapping copies). */
static const uint8_t GO_BESTSPEED_64K_A[89] = {
    0xec, 0xc0, 0x81, 0x00, 0x00, 0x00, 0x00, 0x80, 0x20, 0xd6, 0xfd, 0x25, 0x16, 0xa9, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xa0, 0x06, 0x01, 0x00, 0xfe, 0xff, 0x61, 0x01, 0x00, 0x00, 0xff, 0xff};

typedef struct {
  uint8_t b[8192];
  size_t n;
  uint64_t acc;
  unsigned cnt;
} bw;

static inline void put(bw *w, uint32_t v, unsigned nbits) { /* LSB first */
  w->acc |= (uint64_t)v << w->cnt;
  w->cnt += nbits;
  while (w->cnt >= 8) {
    w->b[w->n++] = (uint8_t)w->acc;
    w->acc >>= 8;
    w->cnt -= 8;
  }
}

static inline void put_code(bw *w, uint32_t code, unsigned len) { /* Huffman: MSB first */
  while (len--) put(w, (code >> len) & 1, 1);
}

static inline void align(bw *w) {
  if (w->cnt) put(w, 0, 8 - w->cnt);
}

/* A literal/length symbol (0..287) with the fixed code (RFC 1951 3.2.6). */
static inline void fixed_lit(bw *w, unsigned sym) {
  if (sym < 144) put_code(w, 0x30 + sym, 8);
  else if (sym < 256) put_code(w, 0x190 + sym - 144, 9);
  else if (sym < 280) put_code(w, sym - 256, 7);
  else put_code(w, 0xC0 + sym - 280, 8);
}

#endif
