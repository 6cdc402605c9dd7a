#include "lb_test.h"
#include "lowbit/lb_base.h"
#include "lowbit/lb_deflate.h"
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#define B(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng_state); }

static int buf_is(const lb_buf *b, const uint8_t *p, size_t n) {
  return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

/* ---- compress: RFC 7692 7.2.3 vectors ---------------------------------- */

static void test_compress_hello_with_context_takeover(void) {
  lb_deflate *c = lb_deflate_new(15, 0, 15, 0, -1);
  lb_buf out = {0};
  LB_CHECK(c != NULL);
  LB_CHECK_EQ(lb_deflate_compress(c, B("Hello"), &out), 7);
  LB_CHECK(buf_is(&out, B("\xf2\x48\xcd\xc9\xc9\x07\x00")));
  lb_buf_reset(&out);
  /* same message again refers back into the window */
  LB_CHECK_EQ(lb_deflate_compress(c, B("Hello"), &out), 5);
  LB_CHECK(buf_is(&out, B("\xf2\x00\x11\x00\x00")));
  lb_buf_free(&out);
  lb_deflate_free(c);
}

static void test_compress_hello_without_context_takeover(void) {
  lb_deflate *c = lb_deflate_new(15, 1, 15, 1, -1);
  lb_buf out = {0};
  for (int i = 0; i < 3; i++) {
    lb_buf_reset(&out);
    LB_CHECK_EQ(lb_deflate_compress(c, B("Hello"), &out), 7);
    LB_CHECK(buf_is(&out, B("\xf2\x48\xcd\xc9\xc9\x07\x00")));
  }
  lb_buf_free(&out);
  lb_deflate_free(c);
}

static void test_compress_empty_message_is_single_zero(void) {
  lb_deflate *c = lb_deflate_new(15, 0, 15, 0, -1);
  lb_buf out = {0};
  LB_CHECK_EQ(lb_deflate_compress(c, NULL, 0, &out), 1);
  LB_CHECK(buf_is(&out, B("\x00")));
  /* also after a message, under context takeover */
  lb_buf_reset(&out);
  LB_CHECK_EQ(lb_deflate_compress(c, B("Hello"), &out), 7);
  lb_buf_reset(&out);
  LB_CHECK_EQ(lb_deflate_compress(c, NULL, 0, &out), 1);
  LB_CHECK(buf_is(&out, B("\x00")));
  /* appends after existing content */
  LB_CHECK_EQ(lb_deflate_compress(c, NULL, 0, &out), 1);
  LB_CHECK(buf_is(&out, B("\x00\x00")));
  lb_buf_free(&out);
  lb_deflate_free(c);
}

/* ---- decompress: vectors ----------------------------------------------- */

typedef struct {
  const char *name;
  const char *in;
  size_t n;
} dvec;

static void test_decompress_vectors(void) {
  const dvec v[] = {
    {"one block", "\xf2\x48\xcd\xc9\xc9\x07\x00", 7},
    {"BFINAL form", "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8},
    {"two blocks", "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 13},
    {"fragmented frames joined", "\xf2\x48\xcd" "\xc9\xc9\x07\x00", 7},
    {"no compression block", "\x00\x05\x00\xfa\xff" "Hello" "\x00", 11},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    /* fresh context each time, and each limit from exact size upward */
    for (size_t limit = 0; limit <= 7; limit = limit ? limit + 1 : 5) {
     for (int nt = 0; nt <= 1; nt++) { /* zlib path, then lb_inflate path */
      lb_deflate *c = lb_deflate_new(15, nt, 15, nt, -1);
      lb_buf out = {0};
      ptrdiff_t r = lb_deflate_decompress(c, (const uint8_t *)v[i].in, v[i].n, &out, limit);
      if (r != 5) fprintf(stderr, "  vector %s limit %zu: %td\n", v[i].name, limit, r);
      LB_CHECK_EQ(r, 5);
      LB_CHECK(buf_is(&out, B("Hello")));
      /* one byte under the limit */
      lb_buf_reset(&out);
      lb_deflate *c2 = lb_deflate_new(15, nt, 15, nt, -1);
      LB_CHECK_EQ(lb_deflate_decompress(c2, (const uint8_t *)v[i].in, v[i].n, &out, 4), LB_ETOOLARGE);
      LB_CHECK_EQ(out.len, 0);
      lb_deflate_free(c2);
      lb_buf_free(&out);
      lb_deflate_free(c);
     }
    }
  }
}

static void test_decompress_context_takeover_second_message(void) {
  lb_deflate *c = lb_deflate_new(15, 0, 15, 0, -1);
  lb_buf out = {0};
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x48\xcd\xc9\xc9\x07\x00"), &out, 0), 5);
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x00\x11\x00\x00"), &out, 0), 5);
  LB_CHECK(buf_is(&out, B("HelloHello")));
  /* the empty message */
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\x00"), &out, 0), 0);
  LB_CHECK_EQ(lb_deflate_decompress(c, NULL, 0, &out, 0), 0);
  LB_CHECK_EQ(out.len, 10);
  lb_buf_free(&out);
  lb_deflate_free(c);
}

static void test_decompress_takeover_survives_bfinal(void) {
  /* a peer that ends each message with BFINAL still has its window kept */
  lb_deflate *c = lb_deflate_new(15, 0, 15, 0, -1);
  lb_buf out = {0};
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf3\x48\xcd\xc9\xc9\x07\x00\x00"), &out, 0), 5);
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x00\x11\x00\x00"), &out, 0), 5);
  LB_CHECK(buf_is(&out, B("HelloHello")));
  lb_buf_free(&out);
  lb_deflate_free(c);
}

static void test_decompress_no_takeover_rejects_back_reference(void) {
  /* without context takeover the window is gone: "f2 00 11 00 00" points 5
   * bytes back into nothing */
  lb_deflate *c = lb_deflate_new(15, 1, 15, 1, -1);
  lb_buf out = {0};
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x48\xcd\xc9\xc9\x07\x00"), &out, 0), 5);
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x00\x11\x00\x00"), &out, 0), LB_EDEFLATE);
  LB_CHECK_EQ(out.len, 5);
  /* and the context is usable again afterwards */
  LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf2\x48\xcd\xc9\xc9\x07\x00"), &out, 0), 5);
  lb_buf_free(&out);
  lb_deflate_free(c);
}

static void test_decompress_rejects_named_defects(void) {
  const dvec v[] = {
    {"reserved block type 11", "\xff\xff\xff", 3},
    {"truncated mid-block", "\xf2\x48\xcd\xc9\xc9", 5},
    {"stored block with bad NLEN", "\x00\x05\x00\x00\x00" "Hello", 10},
    {"distance too far back", "\xf2\x00\x11\x00\x00", 5},
    {"sync flush tail not stripped", "\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff", 11},
  };
  for (size_t i = 0; i < 2 * (sizeof v / sizeof v[0]); i++) {
    size_t k = i / 2;
    int nt = (int)(i % 2); /* zlib path, then lb_inflate path */
    lb_deflate *c = lb_deflate_new(15, nt, 15, nt, -1);
    lb_buf out = {0};
    lb_buf_append(&out, "x", 1);
    ptrdiff_t r = lb_deflate_decompress(c, (const uint8_t *)v[k].in, v[k].n, &out, 0);
    if (r != LB_EDEFLATE) fprintf(stderr, "  defect: %s (nt %d) gave %td\n", v[k].name, nt, r);
    LB_CHECK_EQ(r, LB_EDEFLATE);
    LB_CHECK(buf_is(&out, B("x"))); /* output rolled back */
    lb_buf_free(&out);
    lb_deflate_free(c);
  }
}

/* ---- bombs and limits -------------------------------------------------- */

static void test_decompress_bomb_stops_at_limit(void) {
  size_t big = 16u << 20;
  uint8_t *zeros = calloc(1, big);
  lb_deflate *c = lb_deflate_new(15, 1, 15, 1, 9);
  lb_buf z = {0}, out = {0};
  LB_CHECK(lb_deflate_compress(c, zeros, big, &z) > 0);
  LB_CHECK(z.len < 40000); /* ~1000:1 */
  const size_t limits[] = {1, 1000, 65536, 1u << 20};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    lb_buf_free(&out);
    LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, limits[i]), LB_ETOOLARGE);
    LB_CHECK_EQ(out.len, 0);
    /* the buffer never grew past the limit (rounded up by lb_buf's doubling) */
    LB_CHECK(out.cap <= 2 * limits[i] + 64);
  }
  /* with enough room it all comes back */
  lb_buf_free(&out);
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, big), (ptrdiff_t)big);
  LB_CHECK(out.len == big && memcmp(out.data, zeros, big) == 0);
  lb_buf_free(&out);
  lb_buf_free(&z);
  lb_deflate_free(c);
  free(zeros);
}

/* ---- round trips -------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, int kind) {
  for (size_t i = 0; i < n; i++) {
    if (kind == 0) p[i] = (uint8_t)rnd();                      /* incompressible */
    else if (kind == 1) p[i] = (uint8_t)("abcabdxyz"[rnd() % 9]); /* text-like */
    else p[i] = (uint8_t)(i / 100);                            /* runs */
  }
}

static void test_roundtrip_windows_takeover_and_sizes(void) {
  static uint8_t msg[200000];
  for (int bits = 8; bits <= 15; bits++) {
    for (int nt = 0; nt <= 1; nt++) {
      lb_deflate *tx = lb_deflate_new(bits, nt, bits, nt, -1);
      lb_deflate *rx = lb_deflate_new(bits, nt, bits, nt, -1);
      LB_CHECK(tx != NULL && rx != NULL);
      lb_buf z = {0}, out = {0};
      for (int m = 0; m < 12; m++) {
        size_t n = (m % 4 == 0) ? rnd() % 20 : (m % 4 == 1) ? rnd() % 5000 : rnd() % sizeof msg;
        fill(msg, n, m % 3);
        lb_buf_reset(&z);
        lb_buf_reset(&out);
        ptrdiff_t zn = lb_deflate_compress(tx, msg, n, &z);
        LB_CHECK(zn > 0 && (size_t)zn == z.len);
        ptrdiff_t r = lb_deflate_decompress(rx, z.data, z.len, &out, n ? n : 1);
        LB_CHECK_EQ(r, (ptrdiff_t)n);
        LB_CHECK(out.len == n && (n == 0 || memcmp(out.data, msg, n) == 0));
      }
      lb_buf_free(&z);
      lb_buf_free(&out);
      lb_deflate_free(tx);
      lb_deflate_free(rx);
    }
  }
}

static void test_no_allocation_growth_per_message(void) {
  /* after warm-up, a reused output buffer keeps its capacity */
  lb_deflate *tx = lb_deflate_new(15, 0, 15, 0, -1);
  lb_deflate *rx = lb_deflate_new(15, 0, 15, 0, -1);
  uint8_t msg[4096];
  lb_buf z = {0}, out = {0};
  for (int i = 0; i < 50; i++) {
    fill(msg, sizeof msg, 1);
    lb_buf_reset(&z);
    lb_buf_reset(&out);
    LB_CHECK(lb_deflate_compress(tx, msg, sizeof msg, &z) > 0);
    LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, sizeof msg), sizeof msg);
  }
  uint8_t *zd = z.data, *od = out.data;
  for (int i = 0; i < 50; i++) {
    fill(msg, sizeof msg, 1);
    lb_buf_reset(&z);
    lb_buf_reset(&out);
    lb_deflate_compress(tx, msg, sizeof msg, &z);
    lb_deflate_decompress(rx, z.data, z.len, &out, sizeof msg);
  }
  LB_CHECK(zd == z.data && od == out.data);
  lb_buf_free(&z);
  lb_buf_free(&out);
  lb_deflate_free(tx);
  lb_deflate_free(rx);
}

/* ---- the whole-message path (no context takeover for the peer: lb_inflate)
 * against zlib ------------------------------------------------------------ */

/* zlib raw deflate of msg (window 15): sync flush minus 00 00 ff ff (RFC
 * 7692 7.2.1), or with finish = 1 a complete stream ending in BFINAL. */
static void zlib_deflate(const uint8_t *msg, size_t n, int level, int finish, lb_buf *z) {
  z_stream s;
  memset(&s, 0, sizeof s);
  LB_CHECK(deflateInit2(&s, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  size_t bound = deflateBound(&s, (uLong)n) + 16;
  uint8_t *dst = lb_buf_reserve(z, bound);
  LB_CHECK(dst != NULL);
  s.next_in = (Bytef *)(uintptr_t)msg;
  s.avail_in = (uInt)n;
  s.next_out = dst;
  s.avail_out = (uInt)bound;
  int r = deflate(&s, finish ? Z_FINISH : Z_SYNC_FLUSH);
  LB_CHECK(finish ? r == Z_STREAM_END : r == Z_OK);
  size_t got = bound - s.avail_out;
  if (!finish) {
    LB_CHECK(got >= 4 && memcmp(dst + got - 4, "\x00\x00\xff\xff", 4) == 0);
    got -= 4;
  }
  z->len += got;
  deflateEnd(&s);
}

/* zlib raw inflate of one received payload + 00 00 ff ff (RFC 7692 7.2.2);
 * returns 0 when it decodes to exactly msg[0..n). */
static int zlib_inflate_is(const uint8_t *p, size_t pn, const uint8_t *msg, size_t n) {
  z_stream s;
  memset(&s, 0, sizeof s);
  LB_CHECK(inflateInit2(&s, -15) == Z_OK);
  uint8_t *in = malloc(pn + 4), *out = malloc(n + 1);
  memcpy(in, p, pn);
  memcpy(in + pn, "\x00\x00\xff\xff", 4);
  s.next_in = in;
  s.avail_in = (uInt)(pn + 4);
  s.next_out = out;
  s.avail_out = (uInt)(n + 1);
  int r = inflate(&s, Z_SYNC_FLUSH);
  int bad = !(r == Z_OK || r == Z_STREAM_END) || s.total_out != n || (n && memcmp(out, msg, n) != 0);
  inflateEnd(&s);
  free(in);
  free(out);
  return bad;
}

static void fill_kind(uint8_t *p, size_t n, int kind) {
  if (kind == 3) memset(p, 'a', n); /* the benchmark's message */
  else fill(p, n, kind);
}

static void test_whole_path_against_zlib_sizes_and_kinds(void) {
  static const size_t sizes[] = {0, 1, 100, 4096, 65536, 1u << 20};
  uint8_t *msg = malloc(1u << 20);
  lb_buf z = {0}, out = {0};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t n = sizes[si];
    for (int kind = 0; kind < 4; kind++) {
      fill_kind(msg, n, kind);
      lb_deflate *rx = lb_deflate_new(15, 1, 15, 1, 1); /* lb_inflate path */
      lb_deflate *tx = lb_deflate_new(15, 1, 15, 1, 1);
      for (int form = 0; form < 4; form++) {
        /* 0, 1: zlib sync flush at levels 1 and 9; 2: zlib Z_FINISH (BFINAL
         * form, nothing after); 3: BFINAL form as RFC 7692 7.2.3.3 writes it
         * (one 00 after the final block) */
        lb_buf_reset(&z);
        zlib_deflate(msg, n, form == 1 ? 9 : 1, form >= 2, &z);
        if (form == 3) LB_CHECK(lb_buf_append(&z, "\x00", 1) == 0);
        lb_buf_reset(&out);
        ptrdiff_t r = lb_deflate_decompress(rx, z.data, z.len, &out, n ? n : 1);
        if (r != (ptrdiff_t)n) fprintf(stderr, "  n %zu kind %d form %d: %td\n", n, kind, form, r);
        LB_CHECK_EQ(r, (ptrdiff_t)n);
        LB_CHECK(out.len == n && (n == 0 || memcmp(out.data, msg, n) == 0));
        if (n > 1) {
          /* one byte over the limit (n - 1 = 0 would mean no limit) */
          lb_buf_reset(&out);
          LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, n - 1), LB_ETOOLARGE);
          LB_CHECK_EQ(out.len, 0);
        }
        /* no limit */
        lb_buf_reset(&out);
        LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, 0), (ptrdiff_t)n);
      }
      /* our compressor's output (zlib path for our messages) decodes with
       * plain zlib and with the whole-message path */
      lb_buf_reset(&z);
      LB_CHECK(lb_deflate_compress(tx, msg, n, &z) > 0);
      LB_CHECK(zlib_inflate_is(z.data, z.len, msg, n) == 0);
      lb_buf_reset(&out);
      LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, n ? n : 1), (ptrdiff_t)n);
      LB_CHECK(n == 0 || memcmp(out.data, msg, n) == 0);
      lb_deflate_free(rx);
      lb_deflate_free(tx);
    }
  }
  lb_buf_free(&z);
  lb_buf_free(&out);
  free(msg);
}

static void test_whole_path_bfinal_then_junk_is_ignored(void) {
  /* bytes after the final block are ignored on both paths */
  for (int nt = 0; nt <= 1; nt++) {
    lb_deflate *c = lb_deflate_new(15, nt, 15, nt, -1);
    lb_buf out = {0};
    LB_CHECK_EQ(lb_deflate_decompress(c, B("\xf3\x48\xcd\xc9\xc9\x07\x00" "junk"), &out, 0), 5);
    LB_CHECK(buf_is(&out, B("Hello")));
    lb_buf_free(&out);
    lb_deflate_free(c);
  }
}

static void test_whole_path_streamed_chunks_join(void) {
  /* websockets.lua's stream_message compresses each chunk with its own
   * lb_deflate_compress call and joins them with 00 00 ff ff: the receiver
   * must get all chunks (our compressor never ends a chunk with BFINAL). */
  lb_deflate *tx = lb_deflate_new(15, 1, 15, 1, 1), *rx = lb_deflate_new(15, 1, 15, 1, 1);
  uint8_t msg[3 * 5000];
  lb_buf z = {0}, out = {0};
  fill(msg, sizeof msg, 1);
  for (int k = 0; k < 3; k++) {
    LB_CHECK(lb_deflate_compress(tx, msg + 5000 * k, 5000, &z) > 0);
    if (k < 2) LB_CHECK(lb_buf_append(&z, "\x00\x00\xff\xff", 4) == 0);
  }
  LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, sizeof msg), (ptrdiff_t)sizeof msg);
  LB_CHECK(memcmp(out.data, msg, sizeof msg) == 0);
  LB_CHECK(zlib_inflate_is(z.data, z.len, msg, sizeof msg) == 0);
  lb_buf_free(&z);
  lb_buf_free(&out);
  lb_deflate_free(tx);
  lb_deflate_free(rx);
}

static void test_whole_path_bomb_never_allocates_past_limit(void) {
  size_t big = 10u * 1000 * 1000, limit = 1u << 20;
  uint8_t *zeros = calloc(1, big);
  lb_buf z = {0}, out = {0};
  zlib_deflate(zeros, big, 9, 0, &z);
  LB_CHECK(z.len < 20000);
  lb_deflate *c = lb_deflate_new(15, 1, 15, 1, 1);
  /* fresh buffer: lb_buf's doubling from 64 lands exactly on 1 MiB */
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, limit), LB_ETOOLARGE);
  LB_CHECK_EQ(out.len, 0);
  LB_CHECK(out.cap <= limit);
  /* after existing content: the output part still stays within the limit */
  lb_buf_free(&out);
  LB_CHECK(lb_buf_append(&out, "x", 1) == 0);
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, limit), LB_ETOOLARGE);
  LB_CHECK(buf_is(&out, B("x")));
  LB_CHECK(out.cap <= 2 * (limit + 1));
  /* one byte short, exact, and no limit */
  lb_buf_free(&out);
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, big - 1), LB_ETOOLARGE);
  LB_CHECK(out.cap <= 2 * big);
  lb_buf_free(&out);
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, big), (ptrdiff_t)big);
  LB_CHECK(out.len == big && memcmp(out.data, zeros, big) == 0);
  lb_buf_reset(&out);
  LB_CHECK_EQ(lb_deflate_decompress(c, z.data, z.len, &out, 0), (ptrdiff_t)big);
  lb_buf_free(&out);
  lb_buf_free(&z);
  lb_deflate_free(c);
  free(zeros);
}

static void test_whole_path_corrupt_input_agrees_with_zlib(void) {
  /* Flipped bytes in valid payloads: the whole-message path gives a valid
   * result code, rolls back on error, and whenever the zlib path accepts a
   * message (fresh context, same window) decodes the same bytes. */
  uint8_t msg[3000];
  lb_buf z = {0}, a = {0}, b = {0};
  int agreed = 0, lenient = 0;
  for (int it = 0; it < 3000; it++) {
    size_t n = 1 + rnd() % sizeof msg;
    fill(msg, n, (int)(rnd() % 3));
    lb_buf_reset(&z);
    zlib_deflate(msg, n, 1 + (int)(rnd() % 9), (int)(rnd() % 2), &z);
    int flips = 1 + (int)(rnd() % 3);
    for (int f = 0; f < flips; f++) z.data[rnd() % z.len] ^= (uint8_t)(1u << (rnd() % 8));
    if (rnd() % 4 == 0) z.len = (size_t)(rnd() % z.len); /* truncated too */
    size_t limit = (rnd() % 2) ? 0 : 1 + rnd() % (2 * n);
    lb_deflate *zc = lb_deflate_new(15, 0, 15, 0, 1), *lc = lb_deflate_new(15, 1, 15, 1, 1);
    lb_buf_reset(&a);
    lb_buf_reset(&b);
    LB_CHECK(lb_buf_append(&b, "pre", 3) == 0);
    ptrdiff_t ra = lb_deflate_decompress(zc, z.data, z.len, &a, limit);
    ptrdiff_t rb = lb_deflate_decompress(lc, z.data, z.len, &b, limit);
    LB_CHECK(rb >= 0 || rb == LB_EDEFLATE || rb == LB_ETOOLARGE);
    if (rb < 0) LB_CHECK(b.len == 3);
    else LB_CHECK(b.len == 3 + (size_t)rb && (limit == 0 || (size_t)rb <= limit));
    if (ra >= 0) {
      LB_CHECK_EQ(rb, ra);
      LB_CHECK(rb == ra && memcmp(a.data, b.data + 3, (size_t)ra) == 0);
    } else if (ra == LB_ETOOLARGE) {
      LB_CHECK_EQ(rb, LB_ETOOLARGE);
    }
    if (ra == rb) agreed++;
    else if (rb >= 0) lenient++;
    lb_deflate_free(zc);
    lb_deflate_free(lc);
  }
  if (lenient) fprintf(stderr, "  corrupt: %d agreed, %d accepted only by lb_inflate\n", agreed, lenient);
  lb_buf_free(&z);
  lb_buf_free(&a);
  lb_buf_free(&b);
}

static void test_whole_path_no_allocation_growth_per_message(void) {
  lb_deflate *tx = lb_deflate_new(15, 1, 15, 1, 1), *rx = lb_deflate_new(15, 1, 15, 1, 1);
  uint8_t msg[4096];
  lb_buf z = {0}, out = {0};
  uint8_t *zd = NULL, *od = NULL;
  for (int i = 0; i < 100; i++) {
    if (i == 50) { zd = z.data; od = out.data; }
    fill(msg, sizeof msg, 1);
    lb_buf_reset(&z);
    lb_buf_reset(&out);
    LB_CHECK(lb_deflate_compress(tx, msg, sizeof msg, &z) > 0);
    LB_CHECK_EQ(lb_deflate_decompress(rx, z.data, z.len, &out, sizeof msg), sizeof msg);
  }
  LB_CHECK(zd == z.data && od == out.data);
  lb_buf_free(&z);
  lb_buf_free(&out);
  lb_deflate_free(tx);
  lb_deflate_free(rx);
}

static void test_new_rejects_bad_arguments(void) {
  LB_CHECK(lb_deflate_new(7, 0, 15, 0, -1) == NULL);
  LB_CHECK(lb_deflate_new(15, 0, 16, 0, -1) == NULL);
  LB_CHECK(lb_deflate_new(15, 0, 15, 0, 10) == NULL);
  LB_CHECK(lb_deflate_new(15, 0, 15, 0, -2) == NULL);
  lb_deflate *c = lb_deflate_new(0, 0, 0, 0, 0); /* 0 = 15; level 0 = stored */
  LB_CHECK(c != NULL);
  lb_deflate_free(c);
  lb_deflate_free(NULL);
}

/* ---- negotiation --------------------------------------------------------- */

static int parse(const char *s, int flags, lb_deflate_params *p, size_t *used) {
  return lb_deflate_parse_offer(p, s, strlen(s), flags, used);
}

static void test_parse_offer_valid(void) {
  lb_deflate_params p;
  size_t used;
  LB_CHECK_EQ(parse("permessage-deflate", LB_DEFLATE_CLIENT_OFFER, &p, &used), 0);
  LB_CHECK(p.server_no_context_takeover == 0 && p.client_max_window_bits == 0);
  LB_CHECK_EQ(used, 18);
  LB_CHECK_EQ(parse("permessage-deflate; client_max_window_bits; server_max_window_bits=10",
                    LB_DEFLATE_CLIENT_OFFER, &p, &used), 0);
  LB_CHECK_EQ(p.client_max_window_bits, LB_DEFLATE_BITS_NOVALUE);
  LB_CHECK_EQ(p.server_max_window_bits, 10);
  LB_CHECK_EQ(parse("permessage-deflate;server_no_context_takeover ;\tclient_no_context_takeover",
                    LB_DEFLATE_CLIENT_OFFER, &p, &used), 0);
  LB_CHECK(p.server_no_context_takeover == 1 && p.client_no_context_takeover == 1);
  LB_CHECK_EQ(parse("permessage-deflate; server_max_window_bits=\"8\"; client_max_window_bits = 15",
                    LB_DEFLATE_SERVER_RESPONSE, &p, &used), 0);
  LB_CHECK(p.server_max_window_bits == 8 && p.client_max_window_bits == 15);
  LB_CHECK_EQ(parse("permessage-deflate; server_max_window_bits=\"1\\2\"", 0, &p, &used), 0);
  LB_CHECK_EQ(p.server_max_window_bits, 12);
}

static void test_parse_offer_rejects_named_defects(void) {
  static const struct { const char *defect, *s; int flags; } v[] = {
    {"valueless client_max_window_bits in a response", "permessage-deflate; client_max_window_bits", LB_DEFLATE_SERVER_RESPONSE},
    {"valueless server_max_window_bits", "permessage-deflate; server_max_window_bits", LB_DEFLATE_CLIENT_OFFER},
    {"window bits with leading zero", "permessage-deflate; server_max_window_bits=010", LB_DEFLATE_CLIENT_OFFER},
    {"window bits 09", "permessage-deflate; server_max_window_bits=09", LB_DEFLATE_CLIENT_OFFER},
    {"window bits 7", "permessage-deflate; server_max_window_bits=7", LB_DEFLATE_CLIENT_OFFER},
    {"window bits 16", "permessage-deflate; client_max_window_bits=16", LB_DEFLATE_CLIENT_OFFER},
    {"window bits signed", "permessage-deflate; client_max_window_bits=+9", LB_DEFLATE_CLIENT_OFFER},
    {"window bits empty quoted", "permessage-deflate; client_max_window_bits=\"\"", LB_DEFLATE_CLIENT_OFFER},
    {"window bits long quoted", "permessage-deflate; client_max_window_bits=\"15 \"", LB_DEFLATE_CLIENT_OFFER},
    {"duplicated server_no_context_takeover", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", LB_DEFLATE_CLIENT_OFFER},
    {"duplicated client_max_window_bits", "permessage-deflate; client_max_window_bits=9; client_max_window_bits", LB_DEFLATE_CLIENT_OFFER},
    {"value on server_no_context_takeover", "permessage-deflate; server_no_context_takeover=1", LB_DEFLATE_CLIENT_OFFER},
    {"unknown parameter", "permessage-deflate; mux", LB_DEFLATE_CLIENT_OFFER},
    {"empty parameter", "permessage-deflate;", LB_DEFLATE_CLIENT_OFFER},
    {"missing equals value", "permessage-deflate; server_max_window_bits=", LB_DEFLATE_CLIENT_OFFER},
    {"junk after token", "permessage-deflate x", LB_DEFLATE_CLIENT_OFFER},
    {"unterminated quote", "permessage-deflate; server_max_window_bits=\"10", LB_DEFLATE_CLIENT_OFFER},
    {"empty extension name", "; server_no_context_takeover", LB_DEFLATE_CLIENT_OFFER},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    lb_deflate_params p;
    size_t used = 0;
    int r = parse(v[i].s, v[i].flags, &p, &used);
    if (r != LB_EHEADER) fprintf(stderr, "  defect: %s gave %d\n", v[i].defect, r);
    LB_CHECK_EQ(r, LB_EHEADER);
    LB_CHECK_EQ(used, strlen(v[i].s));
  }
}

static void test_parse_offer_list_steps_through_offers(void) {
  const char *s = "x-webkit-deflate-frame; max=\"a,b\", permessage-deflate; mux, , "
                  "permessage-deflate; client_max_window_bits=12";
  size_t len = strlen(s), pos = 0, used;
  lb_deflate_params p;
  LB_CHECK_EQ(lb_deflate_parse_offer(&p, s + pos, len - pos, LB_DEFLATE_CLIENT_OFFER, &used), LB_DEFLATE_OTHER);
  pos += used;
  LB_CHECK_EQ(pos, strlen("x-webkit-deflate-frame; max=\"a,b\","));
  LB_CHECK_EQ(lb_deflate_parse_offer(&p, s + pos, len - pos, LB_DEFLATE_CLIENT_OFFER, &used), LB_EHEADER);
  pos += used;
  LB_CHECK_EQ(lb_deflate_parse_offer(&p, s + pos, len - pos, LB_DEFLATE_CLIENT_OFFER, &used), 0);
  LB_CHECK_EQ(p.client_max_window_bits, 12);
  pos += used;
  LB_CHECK_EQ(pos, len);
  /* nothing left */
  LB_CHECK_EQ(lb_deflate_parse_offer(&p, " , ", 3, LB_DEFLATE_CLIENT_OFFER, &used), LB_DEFLATE_OTHER);
  LB_CHECK_EQ(used, 3);
}

static void test_accept_offer_and_format(void) {
  lb_deflate_params offer, prefs, resp;
  char out[LB_DEFLATE_PARAMS_MAX];
  size_t used;
  memset(&prefs, 0, sizeof prefs);
  /* bare offer, no preferences: bare answer */
  parse("permessage-deflate", LB_DEFLATE_CLIENT_OFFER, &offer, &used);
  LB_CHECK_EQ(lb_deflate_accept_offer(&offer, &prefs, &resp), 0);
  ptrdiff_t n = lb_deflate_format_params(out, sizeof out, &resp);
  LB_CHECK_MEM(out, "permessage-deflate", (size_t)n);
  /* the offer's limits are honoured */
  parse("permessage-deflate; client_max_window_bits; server_max_window_bits=10; server_no_context_takeover",
        LB_DEFLATE_CLIENT_OFFER, &offer, &used);
  prefs.client_max_window_bits = 12;
  prefs.client_no_context_takeover = 1;
  LB_CHECK_EQ(lb_deflate_accept_offer(&offer, &prefs, &resp), 0);
  n = lb_deflate_format_params(out, sizeof out, &resp);
  LB_CHECK_MEM(out, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=10; client_max_window_bits=12", (size_t)n);
  /* the answer parses back as a server response */
  lb_deflate_params back;
  LB_CHECK_EQ(lb_deflate_parse_offer(&back, out, (size_t)n, LB_DEFLATE_SERVER_RESPONSE, &used), 0);
  LB_CHECK(memcmp(&back, &resp, sizeof back) == 0);
  /* client_max_window_bits never answered when not offered */
  parse("permessage-deflate", LB_DEFLATE_CLIENT_OFFER, &offer, &used);
  LB_CHECK_EQ(lb_deflate_accept_offer(&offer, &prefs, &resp), 0);
  LB_CHECK_EQ(resp.client_max_window_bits, 0);
  /* a server window of 8 cannot be produced by zlib: declined */
  parse("permessage-deflate; server_max_window_bits=8", LB_DEFLATE_CLIENT_OFFER, &offer, &used);
  LB_CHECK_EQ(lb_deflate_accept_offer(&offer, &prefs, &resp), LB_EINVAL);
  /* our own smaller window is announced unasked */
  memset(&prefs, 0, sizeof prefs);
  prefs.server_max_window_bits = 11;
  parse("permessage-deflate; server_max_window_bits=13", LB_DEFLATE_CLIENT_OFFER, &offer, &used);
  LB_CHECK_EQ(lb_deflate_accept_offer(&offer, &prefs, &resp), 0);
  LB_CHECK_EQ(resp.server_max_window_bits, 11);
  /* format: valueless client bits (a client offer), errors */
  memset(&resp, 0, sizeof resp);
  resp.client_max_window_bits = LB_DEFLATE_BITS_NOVALUE;
  n = lb_deflate_format_params(out, sizeof out, &resp);
  LB_CHECK_MEM(out, "permessage-deflate; client_max_window_bits", (size_t)n);
  LB_CHECK_EQ(lb_deflate_format_params(out, 10, &resp), LB_ENOSPACE);
  LB_CHECK_EQ(lb_deflate_format_params(out, (size_t)n - 1, &resp), LB_ENOSPACE);
  resp.server_max_window_bits = 16;
  LB_CHECK_EQ(lb_deflate_format_params(out, sizeof out, &resp), LB_EINVAL);
}

static void test_new_from_params_directions(void) {
  /* server compresses without takeover, client with: message 2 from the
   * server must not refer back, message 2 from the client may */
  lb_deflate_params p;
  memset(&p, 0, sizeof p);
  p.server_no_context_takeover = 1;
  p.client_max_window_bits = 10;
  lb_deflate *srv = lb_deflate_new_from_params(&p, 1, -1);
  lb_deflate *cli = lb_deflate_new_from_params(&p, 0, -1);
  lb_buf z = {0}, out = {0};
  for (int i = 0; i < 2; i++) {
    lb_buf_reset(&z);
    LB_CHECK_EQ(lb_deflate_compress(srv, B("Hello"), &z), 7);
    lb_buf_reset(&out);
    LB_CHECK_EQ(lb_deflate_decompress(cli, z.data, z.len, &out, 100), 5);
  }
  lb_buf_reset(&z);
  LB_CHECK_EQ(lb_deflate_compress(cli, B("Hello"), &z), 7);
  lb_buf_reset(&z);
  LB_CHECK_EQ(lb_deflate_compress(cli, B("Hello"), &z), 5);
  lb_buf_free(&z);
  lb_buf_free(&out);
  lb_deflate_free(srv);
  lb_deflate_free(cli);
}

/* Short messages without context takeover are coded as fixed-Huffman
 * literals: every length up to and past the cut-over, every byte value
 * (8- and 9-bit codes), decoded by zlib and by our own decoder. */
static void test_short_messages_as_literals_roundtrip(void) {
  lb_deflate *tx = lb_deflate_new(15, 1, 15, 1, 1);
  lb_deflate *rx = lb_deflate_new(15, 1, 15, 1, 1);
  lb_buf out = {0}, back = {0};
  uint8_t msg[64], z[128];
  for (size_t n = 1; n <= 40; n++) {
    for (int kind = 0; kind < 3; kind++) {
      for (size_t i = 0; i < n; i++)
        msg[i] = kind == 0 ? 'a' : kind == 1 ? (uint8_t)(i * 37 + n) : (uint8_t)(0x80 + (rnd() & 0x7f));
      lb_buf_reset(&out);
      ptrdiff_t m = lb_deflate_compress(tx, msg, n, &out);
      LB_CHECK(m > 0 && (size_t)m + 4 <= sizeof z);
      if (m <= 0 || (size_t)m + 4 > sizeof z) continue;
      if (n <= 32) LB_CHECK((size_t)m <= n + n / 8 + 3); /* literals: no match was looked for */
      memcpy(z, out.data, (size_t)m);
      memcpy(z + m, "\x00\x00\xff\xff", 4);
      z_stream zs;
      memset(&zs, 0, sizeof zs);
      LB_CHECK_EQ(inflateInit2(&zs, -15), Z_OK);
      uint8_t dec[64];
      zs.next_in = z;
      zs.avail_in = (uInt)m + 4;
      zs.next_out = dec;
      zs.avail_out = sizeof dec;
      int r = inflate(&zs, Z_SYNC_FLUSH);
      LB_CHECK(r == Z_OK || r == Z_BUF_ERROR);
      LB_CHECK_EQ(zs.avail_in, 0);
      LB_CHECK_EQ(sizeof dec - zs.avail_out, n);
      LB_CHECK(memcmp(dec, msg, n) == 0);
      inflateEnd(&zs);
      lb_buf_reset(&back);
      LB_CHECK_EQ(lb_deflate_decompress(rx, out.data, (size_t)m, &back, 0), (ptrdiff_t)n);
      LB_CHECK(back.len == n && memcmp(back.data, msg, n) == 0);
    }
  }
  /* RFC 7692 7.2.3.1's "Hello" is exactly this coding. */
  lb_buf_reset(&out);
  LB_CHECK_EQ(lb_deflate_compress(tx, B("Hello"), &out), 7);
  LB_CHECK(buf_is(&out, B("\xf2\x48\xcd\xc9\xc9\x07\x00")));
  lb_buf_free(&out);
  lb_buf_free(&back);
  lb_deflate_free(tx);
  lb_deflate_free(rx);
}

/* ---- the pools of streams for directions without context takeover ---- */

/* Connections without context takeover share pooled streams: interleaved
 * messages of several contexts (two window sizes, one with takeover among
 * them) each round-trip, and none sees another's state. */
static void test_pooled_streams_interleave(void) {
  enum { N = 4 };
  const int bits[N] = {15, 9, 15, 12};
  const int nt[N] = {1, 1, 0, 1};
  lb_deflate *tx[N], *rx[N];
  for (int k = 0; k < N; k++) {
    tx[k] = lb_deflate_new(bits[k], nt[k], bits[k], nt[k], 1);
    rx[k] = lb_deflate_new(bits[k], nt[k], bits[k], nt[k], 1);
    LB_CHECK(tx[k] != NULL && rx[k] != NULL);
  }
  uint8_t msg[3000];
  lb_buf z = {0}, out = {0};
  for (int round = 0; round < 40; round++) {
    int k = (int)(rnd() % N);
    size_t n = 1 + (size_t)(rnd() % sizeof msg);
    for (size_t j = 0; j < n; j++) msg[j] = (uint8_t)("abcdefgh"[rnd() % 8]);
    lb_buf_reset(&z);
    lb_buf_reset(&out);
    ptrdiff_t zn = lb_deflate_compress(tx[k], msg, n, &z);
    LB_CHECK(zn > 0);
    LB_CHECK_EQ(lb_deflate_decompress(rx[k], z.data, (size_t)zn, &out, 0), (ptrdiff_t)n);
    LB_CHECK(buf_is(&out, msg, n));
  }
  for (int k = 0; k < N; k++) { lb_deflate_free(tx[k]); lb_deflate_free(rx[k]); }
  lb_buf_free(&z);
  lb_buf_free(&out);
  lb_deflate_pool_clear();
  lb_deflate_pool_clear(); /* twice is fine */
}

int main(void) {
  LB_RUN(test_compress_hello_with_context_takeover);
  LB_RUN(test_compress_hello_without_context_takeover);
  LB_RUN(test_short_messages_as_literals_roundtrip);
  LB_RUN(test_compress_empty_message_is_single_zero);
  LB_RUN(test_decompress_vectors);
  LB_RUN(test_decompress_context_takeover_second_message);
  LB_RUN(test_decompress_takeover_survives_bfinal);
  LB_RUN(test_decompress_no_takeover_rejects_back_reference);
  LB_RUN(test_decompress_rejects_named_defects);
  LB_RUN(test_decompress_bomb_stops_at_limit);
  LB_RUN(test_roundtrip_windows_takeover_and_sizes);
  LB_RUN(test_no_allocation_growth_per_message);
  LB_RUN(test_whole_path_against_zlib_sizes_and_kinds);
  LB_RUN(test_whole_path_bfinal_then_junk_is_ignored);
  LB_RUN(test_whole_path_streamed_chunks_join);
  LB_RUN(test_whole_path_bomb_never_allocates_past_limit);
  LB_RUN(test_whole_path_corrupt_input_agrees_with_zlib);
  LB_RUN(test_whole_path_no_allocation_growth_per_message);
  LB_RUN(test_new_rejects_bad_arguments);
  LB_RUN(test_parse_offer_valid);
  LB_RUN(test_parse_offer_rejects_named_defects);
  LB_RUN(test_parse_offer_list_steps_through_offers);
  LB_RUN(test_accept_offer_and_format);
  LB_RUN(test_new_from_params_directions);
  LB_RUN(test_pooled_streams_interleave);
  return LB_DONE();
}
