#include "lb_test.h"
#include "deflate_streams.h"
#include "lowbit/lb_base.h"
#include "lowbit/lb_inflate.h"
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng_state); }

static lb_inflate *st;

/* ---- helpers ------------------------------------------------------------ */

#define GUARD 64

/* Decodes z[0..zn) into a fresh buffer of exactly cap bytes followed by a
 * guard zone, checks the guard, and returns the result code. *got gets a
 * copy of the output (caller frees). */
static int decode_cap(const uint8_t *z, size_t zn, size_t cap, uint8_t **got,
                      lb_inflate_result *res) {
  uint8_t *buf = malloc(cap + GUARD);
  memset(buf + cap, 0xA5, GUARD);
  int rc = lb_inflate_decode(st, z, zn, buf, cap, res);
  int guard_ok = 1;
  for (size_t i = 0; i < GUARD; i++)
    if (buf[cap + i] != 0xA5) guard_ok = 0;
  LB_CHECK(guard_ok);
  LB_CHECK(res->out_used <= cap);
  if (got) *got = buf;
  else free(buf);
  return rc;
}

/* zlib's raw deflate of msg (a complete stream); a failure fails the test. */
static uint8_t *zdeflate(const uint8_t *msg, size_t n, int level, int strategy, size_t *zn) {
  uint8_t *z = zlib_raw_deflate(msg, n, level, strategy, zn);
  LB_CHECK(z != NULL);
  return z;
}

/* zlib raw inflate of a complete stream: 0 ok (*outn set), -1 error or
 * truncated. */
static int zinflate(const uint8_t *z, size_t zn, uint8_t *out, size_t cap, size_t *outn,
                    size_t *used) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -15) != Z_OK) return -2;
  s.next_in = (Bytef *)(uintptr_t)z;
  s.avail_in = (uInt)zn;
  s.next_out = out;
  s.avail_out = (uInt)cap;
  int r = inflate(&s, Z_FINISH);
  *outn = cap - s.avail_out;
  if (used) *used = zn - s.avail_in;
  inflateEnd(&s);
  return r == Z_STREAM_END ? 0 : -1;
}

/* Inputs ------------------------------------------------------------------ */

enum { K_RUN, K_PERIOD, K_TEXT, K_RANDOM, K_MIXED, K_NKINDS };

static const char *WORDS[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ",
                              "dog ", "lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "\n",
                              "websocket ", "deflate ", "{\"id\":", "12345,", "\"name\":\"x\"}"};

static void fill(uint8_t *p, size_t n, int kind, unsigned period) {
  size_t i = 0;
  switch (kind) {
  case K_RUN:
    memset(p, 'a' + (int)(period % 26), n);
    break;
  case K_PERIOD: {
    uint8_t pat[16];
    for (unsigned k = 0; k < period; k++) pat[k] = (uint8_t)rnd();
    for (i = 0; i < n; i++) p[i] = pat[i % period];
    break;
  }
  case K_TEXT:
    while (i < n) {
      const char *w = WORDS[rnd() % (sizeof WORDS / sizeof WORDS[0])];
      for (size_t k = 0; w[k] && i < n; k++) p[i++] = (uint8_t)w[k];
    }
    break;
  case K_RANDOM:
    for (i = 0; i < n; i++) p[i] = (uint8_t)rnd();
    break;
  default: /* stretches of each */
    while (i < n) {
      size_t run = 1 + rnd() % 3000;
      if (run > n - i) run = n - i;
      fill(p + i, run, (int)(rnd() % 4), 1 + (unsigned)(rnd() % 9));
      i += run;
    }
  }
}

/* Checks a complete stream z that decodes to msg[0..n): exact cap, one byte
 * short, more room, and split in two parts for decode2. */
static int check_stream(const uint8_t *z, size_t zn, const uint8_t *msg, size_t n) {
  int ok = 1;
  lb_inflate_result res;
  uint8_t *got;
  int rc = decode_cap(z, zn, n, &got, &res);
  if (rc != LB_OK || res.out_used != n || res.in_used != zn || (n && memcmp(got, msg, n) != 0)) {
    fprintf(stderr, "  exact cap: rc %d out %zu/%zu in %zu/%zu\n", rc, res.out_used, n,
            res.in_used, zn);
    ok = 0;
  }
  free(got);
  if (n > 0) {
    rc = decode_cap(z, zn, n - 1, &got, &res);
    if (rc != LB_ENOSPACE || memcmp(got, msg, res.out_used) != 0) {
      fprintf(stderr, "  cap - 1: rc %d\n", rc);
      ok = 0;
    }
    free(got);
  }
  rc = decode_cap(z, zn, n + 1000, &got, &res);
  if (rc != LB_OK || res.out_used != n || (n && memcmp(got, msg, n) != 0)) ok = 0;
  free(got);
  /* decode2 at a random split and at the ends */
  size_t splits[3] = {0, zn, zn ? rnd() % zn : 0};
  uint8_t *buf = malloc(n + 1);
  for (int s = 0; s < 3; s++) {
    size_t k = splits[s];
    rc = lb_inflate_decode2(st, z, k, z + k, zn - k, buf, n + 1, &res);
    if (rc != LB_OK || res.out_used != n || res.in_used != zn || (n && memcmp(buf, msg, n) != 0)) {
      fprintf(stderr, "  split at %zu: rc %d\n", k, rc);
      ok = 0;
    }
  }
  free(buf);
  return ok;
}

/* ---- round trips against zlib's deflate --------------------------------- */

static void test_roundtrip_levels_strategies_kinds_sizes(void) {
  static const size_t sizes[] = {0, 1, 2, 3, 7, 8, 9, 100, 257, 258, 259, 1000, 4095, 32768,
                                 32769, 65536, 100000};
  static const int levels[] = {0, 1, 6, 9};
  static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_RLE, Z_HUFFMAN_ONLY, Z_FIXED};
  size_t maxn = 100000;
  uint8_t *msg = malloc(maxn);
  int failures = 0, streams = 0;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t n = sizes[si];
    for (int kind = 0; kind < K_NKINDS; kind++) {
      for (unsigned period = 1; period <= (kind == K_PERIOD ? 9u : 1u); period++) {
        fill(msg, n, kind, period);
        for (int li = 0; li < 4; li++) {
          for (int si2 = 0; si2 < 4; si2++) {
            size_t zn;
            uint8_t *z = zdeflate(msg, n, levels[li], strategies[si2], &zn);
            streams++;
            if (!check_stream(z, zn, msg, n)) {
              fprintf(stderr, "  n %zu kind %d period %u level %d strategy %d\n", n, kind, period,
                      levels[li], strategies[si2]);
              failures++;
            }
            free(z);
          }
        }
      }
    }
  }
  LB_CHECK_EQ(failures, 0);
  LB_CHECK(streams > 1000);
  free(msg);
}

static void test_roundtrip_one_mib(void) {
  size_t n = 1u << 20;
  uint8_t *msg = malloc(n);
  static const int levels[] = {0, 1, 6, 9};
  for (int kind = 0; kind < K_NKINDS; kind++) {
    fill(msg, n, kind, 3);
    for (int li = 0; li < 4; li++) {
      size_t zn;
      uint8_t *z = zdeflate(msg, n, levels[li], Z_DEFAULT_STRATEGY, &zn);
      LB_CHECK(check_stream(z, zn, msg, n));
      free(z);
    }
  }
  free(msg);
}

static void test_roundtrip_random_sizes_and_memlevels(void) {
  uint8_t *msg = malloc(300000);
  int failures = 0;
  for (int it = 0; it < 300; it++) {
    size_t n = (it % 3 == 0) ? rnd() % 600 : rnd() % 300000;
    fill(msg, n, (int)(rnd() % K_NKINDS), 1 + (unsigned)(rnd() % 9));
    z_stream s;
    memset(&s, 0, sizeof s);
    int level = (int)(rnd() % 10), strategy = (int)(rnd() % 5), mem = 1 + (int)(rnd() % 9);
    int wbits = 9 + (int)(rnd() % 7);
    LB_CHECK(deflateInit2(&s, level, Z_DEFLATED, -wbits, mem, strategy) == Z_OK);
    size_t bound = deflateBound(&s, (uLong)n) + 64;
    uint8_t *z = malloc(bound);
    /* fed in pieces with random flushes: many blocks of every kind */
    size_t pos = 0;
    s.next_out = z;
    s.avail_out = (uInt)bound;
    while (pos < n) {
      size_t k = 1 + rnd() % 40000;
      if (k > n - pos) k = n - pos;
      s.next_in = (Bytef *)(msg + pos);
      s.avail_in = (uInt)k;
      int fl = (int)(rnd() % 4);
      LB_CHECK(deflate(&s, fl == 0 ? Z_SYNC_FLUSH : fl == 1 ? Z_FULL_FLUSH : Z_NO_FLUSH) == Z_OK);
      pos += k;
      if (rnd() % 5 == 0) deflateParams(&s, (int)(rnd() % 10), (int)(rnd() % 5));
    }
    LB_CHECK(deflate(&s, Z_FINISH) == Z_STREAM_END);
    size_t zn = bound - s.avail_out;
    deflateEnd(&s);
    if (!check_stream(z, zn, msg, n)) {
      fprintf(stderr, "  it %d n %zu level %d strategy %d\n", it, n, level, strategy);
      failures++;
    }
    free(z);
  }
  LB_CHECK_EQ(failures, 0);
  free(msg);
}

/* ---- Go's compress/flate BestSpeed output for 64 KiB of 'a' -------------- */

static void test_go_bestspeed_run(void) {
  uint8_t *msg = malloc(65536);
  memset(msg, 'a', 65536);
  LB_CHECK(check_stream(GO_BESTSPEED_64K_A, sizeof GO_BESTSPEED_64K_A, msg, 65536));
  size_t zn_out;
  uint8_t *zo = malloc(65537);
  LB_CHECK_EQ(zinflate(GO_BESTSPEED_64K_A, sizeof GO_BESTSPEED_64K_A, zo, 65537, &zn_out, NULL), 0);
  LB_CHECK_EQ(zn_out, 65536);
  free(zo);
  free(msg);
}

/* ---- hand-made streams --------------------------------------------------- */

/* a match in a fixed block, by code and extra bits */
static void fixed_match(bw *w, unsigned lsym, unsigned lextra, unsigned lbits, unsigned dsym,
                        unsigned dextra, unsigned dbits) {
  fixed_lit(w, lsym);
  put(w, lextra, lbits);
  put_code(w, dsym, 5);
  put(w, dextra, dbits);
}

/* Decodes what w holds, its last partial byte padded with zero bits. */
static int dec(bw *w, uint8_t *out, size_t cap, lb_inflate_result *res) {
  align(w);
  return lb_inflate_decode(st, w->b, w->n, out, cap, res);
}

static void test_stored_blocks(void) {
  uint8_t out[64];
  lb_inflate_result res;
  /* one final stored block */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\xfa\xff" "Hello", 10, out, 64, &res), LB_OK);
  LB_CHECK(res.out_used == 5 && memcmp(out, "Hello", 5) == 0 && res.in_used == 10);
  /* empty final stored block */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x00\x00\xff\xff", 5, out, 0, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, 0);
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x00\x00\xff\xff", 5, NULL, 0, &res), LB_OK);
  /* two blocks, the first not final; junk after the end is not read */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x00\x02\x00\xfd\xff" "He" "\x01\x03\x00\xfc\xff" "llo" "junk", 19, out, 64, &res), LB_OK);
  LB_CHECK(res.out_used == 5 && memcmp(out, "Hello", 5) == 0 && res.in_used == 15);
  /* bad NLEN */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\xfa\xfe" "Hello", 10, out, 64, &res), LB_EDEFLATE);
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\x00\x00" "Hello", 10, out, 64, &res), LB_EDEFLATE);
  /* data cut short, and no room */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\xfa\xff" "Hell", 9, out, 64, &res), LB_EDEFLATE);
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\xfa\xff" "Hello", 10, out, 4, &res), LB_ENOSPACE);
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x01\x05\x00\xfa\xff" "Hello", 10, out, 5, &res), LB_OK);
  /* the bits after the 3-bit header up to the byte boundary are skipped,
   * whatever they are (zlib does not check them) */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\xf9\x01\x00\xfe\xff" "Z", 6, out, 64, &res), LB_OK);
  LB_CHECK(res.out_used == 1 && out[0] == 'Z');
  /* a stored block after a fixed block (the buffer holds its bytes) */
  bw w;
  memset(&w, 0, sizeof w);
  put(&w, 0, 1);
  put(&w, 1, 2);
  fixed_lit(&w, 'x');
  fixed_lit(&w, 256);
  put(&w, 1, 1);
  put(&w, 0, 2);
  align(&w);
  put(&w, 3, 16);
  put(&w, 0xfffc, 16);
  memcpy(w.b + w.n, "abc", 3);
  w.n += 3;
  LB_CHECK_EQ(dec(&w, out, 64, &res), LB_OK);
  LB_CHECK(res.out_used == 4 && memcmp(out, "xabc", 4) == 0 && res.in_used == w.n);
  /* a long stored block (65535 bytes) */
  uint8_t *big = malloc(65535 + 5), *o = malloc(65535);
  big[0] = 1; big[1] = 0xff; big[2] = 0xff; big[3] = 0; big[4] = 0;
  for (size_t i = 0; i < 65535; i++) big[5 + i] = (uint8_t)(i * 7);
  LB_CHECK_EQ(lb_inflate_decode(st, big, 65540, o, 65535, &res), LB_OK);
  LB_CHECK(res.out_used == 65535 && memcmp(o, big + 5, 65535) == 0);
  LB_CHECK_EQ(lb_inflate_decode(st, big, 65540, o, 65534, &res), LB_ENOSPACE);
  LB_CHECK_EQ(lb_inflate_decode(st, big, 65539, o, 65535, &res), LB_EDEFLATE);
  free(big);
  free(o);
}

static void test_fixed_blocks(void) {
  uint8_t out[1024];
  lb_inflate_result res;
  /* RFC 7692 7.2.3.1 "Hello" with BFINAL set */
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\xf3\x48\xcd\xc9\xc9\x07\x00", 7, out, 64, &res), LB_OK);
  LB_CHECK(res.out_used == 5 && memcmp(out, "Hello", 5) == 0 && res.in_used == 7);
  /* every literal (8- and 9-bit codes), then matches with length and
   * distance codes that have extra bits, and the longest match */
  bw w;
  memset(&w, 0, sizeof w);
  put(&w, 1, 1);
  put(&w, 1, 2);
  for (unsigned s = 0; s < 256; s++) fixed_lit(&w, s);
  fixed_match(&w, 257, 0, 0, 15, 63, 6);        /* 3 at 193 + 63 = 256 */
  fixed_match(&w, 265, 1, 1, 7, 3, 2);          /* 11 + 1 = 12 at 13 + 3 = 16 */
  fixed_match(&w, 284, 30, 5, 4, 1, 1);         /* 227 + 30 = 257 at 5 + 1 = 6 */
  fixed_match(&w, 285, 0, 0, 0, 0, 0);          /* 258 at 1 */
  fixed_lit(&w, 256);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  uint8_t want[1024];
  size_t k = 0;
  for (unsigned s = 0; s < 256; s++) want[k++] = (uint8_t)s;
  for (int i = 0; i < 3; i++, k++) want[k] = want[k - 256];
  for (int i = 0; i < 12; i++, k++) want[k] = want[k - 16];
  for (int i = 0; i < 257; i++, k++) want[k] = want[k - 6];
  for (int i = 0; i < 258; i++, k++) want[k] = want[k - 1];
  LB_CHECK(want[256] == 0 && want[258] == 2 && want[259] == 243); /* distinct bytes copied */
  LB_CHECK_EQ(res.out_used, k);
  LB_CHECK(memcmp(out, want, k) == 0);
  LB_CHECK_EQ(res.in_used, w.n);
  /* the largest distance, 32768, back to the first byte: a stored block of
   * 32767 bytes, then a fixed block with one literal and the match */
  uint8_t *o = malloc(40000), *s = malloc(40000);
  size_t sn = 0;
  s[sn++] = 0; /* not final, stored */
  s[sn++] = 0xff; s[sn++] = 0x7f; s[sn++] = 0x00; s[sn++] = 0x80;
  for (int i = 0; i < 32767; i++) s[sn++] = (uint8_t)(i % 251);
  memset(&w, 0, sizeof w);
  put(&w, 1, 1);
  put(&w, 1, 2);
  fixed_lit(&w, 'q');
  fixed_match(&w, 257, 0, 0, 29, 8191, 13); /* 3 at 32768 */
  fixed_lit(&w, 256);
  align(&w);
  memcpy(s + sn, w.b, w.n);
  sn += w.n;
  LB_CHECK_EQ(lb_inflate_decode(st, s, sn, o, 40000, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, 32771);
  LB_CHECK(o[32767] == 'q' && o[32768] == 0 && o[32769] == 1 && o[32770] == 2);
  LB_CHECK_EQ(res.in_used, sn);
  /* with one stored byte less, the match reaches one byte too far */
  s[1] = 0xfe; s[3] = 0x01; /* LEN 32766 */
  memmove(s + 5 + 32766, s + 5 + 32767, w.n);
  LB_CHECK_EQ(lb_inflate_decode(st, s, sn - 1, o, 40000, &res), LB_EDEFLATE);
  free(s);
  free(o);
}

static void test_bfinal_in_the_middle(void) {
  uint8_t out[64];
  lb_inflate_result res;
  bw w;
  memset(&w, 0, sizeof w);
  put(&w, 1, 1);
  put(&w, 1, 2);
  fixed_lit(&w, 'A');
  fixed_lit(&w, 256);
  size_t end_bits = w.n * 8 + w.cnt;
  /* what follows would be a block, and invalid: never read */
  put(&w, 1, 1);
  put(&w, 3, 2);
  align(&w);
  memcpy(w.b + w.n, "\xff\xff\xff\xff", 4);
  w.n += 4;
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  LB_CHECK(res.out_used == 1 && out[0] == 'A');
  LB_CHECK_EQ(res.in_used, (end_bits + 7) / 8);
}

static void test_distance_too_far(void) {
  uint8_t out[600];
  lb_inflate_result res;
  for (int d = 1; d <= 3; d++) {
    bw w;
    memset(&w, 0, sizeof w);
    put(&w, 1, 1);
    put(&w, 1, 2);
    fixed_lit(&w, 'a');
    fixed_lit(&w, 'b');
    fixed_match(&w, 257, 0, 0, (unsigned)d - 1, 0, 0);
    fixed_lit(&w, 256);
    LB_CHECK_EQ(dec(&w, out, sizeof out, &res), d <= 2 ? LB_OK : LB_EDEFLATE);
    /* the same in a long stream (fast loop) */
    memset(&w, 0, sizeof w);
    put(&w, 1, 1);
    put(&w, 1, 2);
    fixed_lit(&w, 'a');
    fixed_lit(&w, 'b');
    fixed_match(&w, 257, 0, 0, (unsigned)d - 1, 0, 0);
    for (int i = 0; i < 40; i++) fixed_lit(&w, 'c');
    fixed_lit(&w, 256);
    LB_CHECK_EQ(dec(&w, out, sizeof out, &res), d <= 2 ? LB_OK : LB_EDEFLATE);
  }
  /* a first symbol that is a match */
  bw w;
  memset(&w, 0, sizeof w);
  put(&w, 1, 1);
  put(&w, 1, 2);
  fixed_match(&w, 257, 0, 0, 0, 0, 0);
  fixed_lit(&w, 256);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
}

static void test_invalid_fixed_codes_and_block_type(void) {
  uint8_t out[600];
  lb_inflate_result res;
  for (int which = 0; which < 4; which++) {
    for (int pad = 0; pad < 2; pad++) {
      bw w;
      memset(&w, 0, sizeof w);
      put(&w, 1, 1);
      put(&w, 1, 2);
      fixed_lit(&w, 'a');
      if (which < 2) {
        fixed_lit(&w, 286 + (unsigned)which);
      } else {
        fixed_lit(&w, 257);
        put_code(&w, 30 + (unsigned)which - 2, 5);
      }
      for (int i = 0; i < (pad ? 40 : 0); i++) fixed_lit(&w, 256);
      fixed_lit(&w, 256);
      LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
    }
  }
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x07\x00\x00\x00", 4, out, 64, &res), LB_EDEFLATE);
  LB_CHECK_EQ(lb_inflate_decode(st, (const uint8_t *)"\x06", 1, out, 64, &res), LB_EDEFLATE);
  LB_CHECK_EQ(lb_inflate_decode(st, NULL, 0, out, 64, &res), LB_EDEFLATE);
}

/* Dynamic block writer: code lengths sent as plain 4-bit precode symbols
 * 0..15 (all 16 of length 4: a complete precode), or through `pre` when
 * given (raw precode lengths and a symbol stream written by the caller). */
static void canon(const uint8_t *lens, unsigned n, uint32_t *codes) {
  unsigned count[16] = {0}, next[16];
  for (unsigned i = 0; i < n; i++) count[lens[i]]++;
  count[0] = 0;
  unsigned c = 0;
  for (unsigned l = 1; l < 16; l++) {
    c = (c + count[l - 1]) << 1;
    next[l] = c;
  }
  for (unsigned i = 0; i < n; i++)
    if (lens[i]) codes[i] = next[lens[i]]++;
}

static const uint8_t ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

static void dyn_header(bw *w, int final, const uint8_t *ll, unsigned nlit, const uint8_t *dl,
                       unsigned ndist) {
  put(w, (unsigned)final, 1);
  put(w, 2, 2);
  put(w, nlit - 257, 5);
  put(w, ndist - 1, 5);
  put(w, 19 - 4, 4);
  for (int i = 0; i < 19; i++) put(w, ORDER[i] < 16 ? 4 : 0, 3);
  for (unsigned i = 0; i < nlit; i++) put_code(w, ll[i], 4);
  for (unsigned i = 0; i < ndist; i++) put_code(w, dl[i], 4);
}

static void test_dynamic_blocks(void) {
  uint8_t out[4096];
  lb_inflate_result res;
  uint8_t ll[288], dl[32];
  uint32_t lc[288], dc[32];

  /* literals 'a'..'p' with 5-bit codes (half the code space) and
   * end-of-block with 1 bit: complete; no distance codes at all */
  memset(ll, 0, sizeof ll);
  memset(dl, 0, sizeof dl);
  for (int i = 0; i < 16; i++) ll['a' + i] = 5;
  ll[256] = 1;
  canon(ll, 257, lc);
  bw w;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  for (int i = 0; i < 16; i++) put_code(&w, lc['a' + i], 5);
  put_code(&w, lc[256], 1);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  LB_CHECK(res.out_used == 16 && memcmp(out, "abcdefghijklmnop", 16) == 0);

  /* a single distance code of length 1 (incomplete, allowed) */
  memset(ll, 0, sizeof ll);
  memset(dl, 0, sizeof dl);
  ll['x'] = 1;
  ll[256] = 2;
  ll[285] = 2;
  dl[0] = 1;
  canon(ll, 286, lc);
  canon(dl, 1, dc);
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 286, dl, 1);
  put_code(&w, lc['x'], 1);
  for (int i = 0; i < 10; i++) {
    put_code(&w, lc[285], 2);
    put_code(&w, dc[0], 1);
  }
  put_code(&w, lc[256], 2);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, 2581);
  int all_x = 1;
  for (size_t i = 0; i < 2581; i++) all_x &= out[i] == 'x';
  LB_CHECK(all_x);
  /* the unused code (bit 1) of that distance tree is invalid */
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 286, dl, 1);
  put_code(&w, lc['x'], 1);
  put_code(&w, lc[285], 2);
  put(&w, 1, 1);
  put_code(&w, lc[256], 2);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  /* a single distance code of length 2: incomplete, rejected */
  dl[0] = 2;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 286, dl, 1);
  put_code(&w, lc['x'], 1);
  put_code(&w, lc[256], 2);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  /* an empty distance tree while a length code is used */
  dl[0] = 0;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 286, dl, 1);
  put_code(&w, lc['x'], 1);
  put_code(&w, lc[285], 2);
  put(&w, 0, 8);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);

  /* a literal/length tree with only end-of-block (length 1): allowed */
  memset(ll, 0, sizeof ll);
  ll[256] = 1;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  put(&w, 0, 1);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, 0);
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  put(&w, 1, 1); /* the unused code */
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);

  /* no end-of-block code */
  memset(ll, 0, sizeof ll);
  ll['a'] = 1;
  ll['b'] = 1;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  put(&w, 0, 16);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);

  /* over-subscribed literal/length tree */
  memset(ll, 0, sizeof ll);
  ll['a'] = 1;
  ll['b'] = 1;
  ll[256] = 1;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  put(&w, 0, 16);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  /* incomplete literal/length tree (two codes of length 2) */
  memset(ll, 0, sizeof ll);
  ll['a'] = 2;
  ll[256] = 2;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 1);
  put(&w, 0, 16);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  /* over-subscribed distance tree */
  memset(ll, 0, sizeof ll);
  ll['a'] = 1;
  ll[256] = 1;
  dl[0] = 1; dl[1] = 1; dl[2] = 1;
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 257, dl, 3);
  put(&w, 0, 16);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);

  /* long codes (15 bits: second-level tables) in both trees */
  memset(ll, 0, sizeof ll);
  memset(dl, 0, sizeof dl);
  for (int l = 1; l <= 14; l++) ll[l - 1 + 'A'] = (uint8_t)l; /* 'A'.. lengths 1..14 */
  ll[256] = 15;
  ll[257] = 15;
  for (int l = 1; l <= 14; l++) dl[l - 1] = (uint8_t)l;
  dl[14] = 15;
  dl[15] = 15;
  canon(ll, 258, lc);
  canon(dl, 16, dc);
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 258, dl, 16);
  for (int l = 1; l <= 14; l++) put_code(&w, lc[l - 1 + 'A'], (unsigned)l);
  put_code(&w, lc[257], 15); /* length 3 */
  put_code(&w, dc[3], 4);    /* distance 4 */
  for (int i = 0; i < 20; i++) put_code(&w, lc['N'], 14);
  put_code(&w, lc[257], 15);
  put_code(&w, dc[15], 15); /* distance code 15: 193 + 6 extra bits */
  put(&w, 5, 6);            /* 198, past the 37 bytes out so far */
  put_code(&w, lc[256], 15);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  memset(&w, 0, sizeof w);
  dyn_header(&w, 1, ll, 258, dl, 16);
  for (int l = 1; l <= 14; l++) put_code(&w, lc[l - 1 + 'A'], (unsigned)l);
  put_code(&w, lc[257], 15);
  put_code(&w, dc[3], 4);
  for (int i = 0; i < 200; i++) put_code(&w, lc['A' + i % 14], (unsigned)(1 + i % 14));
  put_code(&w, lc[257], 15);
  put_code(&w, dc[15], 15);
  put(&w, 5, 6); /* distance 198 */
  put_code(&w, lc[256], 15);
  LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, 14 + 3 + 200 + 3);
  LB_CHECK(memcmp(out + 14, out + 10, 3) == 0);
  LB_CHECK(memcmp(out + 217, out + 217 - 198, 3) == 0);
  LB_CHECK_EQ(res.in_used, w.n);
}

/* Matches that take 48 bits (15-bit length code + 5 extra, 15-bit
 * distance code + 13 extra) at every bit alignment, in the fast loop. */
static void test_longest_matches(void) {
  static uint8_t ll[288], dl[32];
  uint32_t lc[288], dc[32];
  memset(ll, 0, sizeof ll);
  memset(dl, 0, sizeof dl);
  for (int l = 1; l <= 14; l++) ll['A' + l - 1] = (uint8_t)l;
  ll[256] = 15;
  ll[283] = 15; /* lengths 195..226 */
  for (int l = 1; l <= 14; l++) dl[l - 1] = (uint8_t)l;
  dl[28] = 15; /* distances 16385..24576 */
  dl[29] = 15;
  canon(ll, 284, lc);
  canon(dl, 30, dc);
  bw *w = calloc(1, sizeof *w);
  uint8_t *want = malloc(40000), *out = malloc(40000);
  size_t k = 0;
  dyn_header(w, 1, ll, 284, dl, 30);
  for (int i = 0; i < 20000; i++) {
    put_code(w, lc['A' + i % 2], 1 + (unsigned)(i % 2));
    want[k++] = (uint8_t)('A' + i % 2);
  }
  for (int j = 0; j < 16; j++) {
    for (int i = 0; i < j % 8; i++) {
      put_code(w, lc['B'], 2);
      want[k++] = 'B';
    }
    unsigned lx = (unsigned)(j * 7) % 32, dx = (unsigned)(j * 331) % 3000;
    put_code(w, lc[283], 15);
    put(w, lx, 5);
    put_code(w, dc[28], 15);
    put(w, dx, 13);
    size_t len = 195 + lx, dist = 16385 + dx;
    for (size_t i = 0; i < len; i++, k++) want[k] = want[k - dist];
  }
  for (int i = 0; i < 200; i++) {
    put_code(w, lc['A'], 1);
    want[k++] = 'A';
  }
  put_code(w, lc[256], 15);
  lb_inflate_result res;
  LB_CHECK_EQ(dec(w, out, 40000, &res), LB_OK);
  LB_CHECK_EQ(res.out_used, k);
  LB_CHECK(memcmp(out, want, k) == 0);
  LB_CHECK_EQ(res.in_used, w->n);
  free(w);
  free(want);
  free(out);
}

/* A random complete code over nsym symbols (nsym >= 2): leaves split at
 * random until there are nsym of them, then dealt to random symbols of
 * lens[0..n); `must` (if < n) always gets one. */
static void random_code(uint8_t *lens, unsigned n, unsigned nsym, unsigned must) {
  uint8_t leaf[300];
  unsigned nl = 1;
  leaf[0] = 0;
  while (nl < nsym) {
    unsigned at = (unsigned)(rnd() % nl);
    if (leaf[at] >= 15) {
      unsigned tries = 0;
      while (leaf[at] >= 15 && tries++ < 1000) at = (unsigned)(rnd() % nl);
      if (leaf[at] >= 15) break;
    }
    leaf[at]++;
    leaf[nl++] = leaf[at];
  }
  memset(lens, 0, n);
  unsigned order[300];
  for (unsigned i = 0; i < n; i++) order[i] = i;
  for (unsigned i = n - 1; i > 0; i--) {
    unsigned j = (unsigned)(rnd() % (i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  if (must < n)
    for (unsigned i = 0; i < n; i++)
      if (order[i] == must) { order[i] = order[0]; order[0] = must; }
  for (unsigned i = 0; i < nl && i < n; i++) lens[order[i]] = leaf[i];
}

/* Random dynamic blocks (random code shapes up to 15 bits, random literals
 * and matches, some distances too far) against zlib. */
static void test_random_dynamic_blocks_agree_with_zlib(void) {
  size_t cap = 1u << 20;
  uint8_t *a = malloc(cap), *b = malloc(cap);
  bw *w = malloc(sizeof *w);
  int disagree = 0, ok = 0;
  for (int it = 0; it < 3000; it++) {
    memset(w, 0, sizeof *w);
    size_t produced = 0;
    int nblocks = 1 + (int)(rnd() % 3);
    for (int blk = 0; blk < nblocks; blk++) {
      uint8_t ll[288], dl[32];
      uint32_t lc[288], dc[32];
      unsigned nlit = 257 + (unsigned)(rnd() % 30), ndist = 1 + (unsigned)(rnd() % 30);
      random_code(ll, nlit, 2 + (unsigned)(rnd() % (nlit - 1)), 256);
      if (rnd() % 8 == 0) {
        memset(dl, 0, sizeof dl);
        dl[rnd() % ndist] = 1; /* a single distance code */
      } else if (ndist >= 2) {
        random_code(dl, ndist, 2 + (unsigned)(rnd() % (ndist - 1)), 99);
      } else {
        dl[0] = 1;
      }
      canon(ll, nlit, lc);
      canon(dl, ndist, dc);
      dyn_header(w, blk == nblocks - 1, ll, nlit, dl, ndist);
      unsigned nsyms = (unsigned)(rnd() % 400);
      for (unsigned k = 0; k < nsyms && w->n < sizeof w->b - 64; k++) {
        unsigned sym = (unsigned)(rnd() % nlit);
        if (ll[sym] == 0 || sym == 256) continue;
        put_code(w, lc[sym], ll[sym]);
        if (sym < 256) { produced++; continue; }
        unsigned ls = sym - 257;
        static const uint8_t lx[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                       2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
        static const uint8_t dxb[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                        6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
        put(w, (uint32_t)(rnd() & ((1u << lx[ls]) - 1)), lx[ls]);
        /* a distance code that mostly fits what was produced */
        unsigned ds = (unsigned)(rnd() % ndist), tries = 0;
        while ((dl[ds] == 0 || (ds > 3 && (1u << (ds / 2)) > produced)) && tries++ < 50)
          ds = (unsigned)(rnd() % ndist);
        if (dl[ds] == 0) break;
        put_code(w, dc[ds], dl[ds]);
        put(w, (uint32_t)(rnd() & ((1u << dxb[ds]) - 1)), dxb[ds]);
        produced += 3;
      }
      if (ll[256]) put_code(w, lc[256], ll[256]);
    }
    align(w);
    size_t an = 0, used = 0;
    int za = zinflate(w->b, w->n, a, cap, &an, &used);
    lb_inflate_result res;
    int rc = lb_inflate_decode(st, w->b, w->n, b, cap, &res);
    if ((za == 0) != (rc == LB_OK) ||
        (za == 0 && (res.out_used != an || memcmp(a, b, an) != 0 || res.in_used != used))) {
      if (disagree < 5) fprintf(stderr, "  it %d: zlib %d (%zu) lb %d (%zu)\n", it, za, an, rc, res.out_used);
      disagree++;
    }
    ok += za == 0;
  }
  LB_CHECK_EQ(disagree, 0);
  LB_CHECK(ok > 300);
  free(w);
  free(a);
  free(b);
}

/* Header fields written by hand: HLIT/HDIST limits and repeat codes. */
static void test_dynamic_header_checks(void) {
  uint8_t out[64];
  lb_inflate_result res;
  /* precode: symbols 0..15 at 5 bits would be incomplete; use 16,17,18 and
   * 1 at length 2 (complete: four codes) */
  uint8_t pl[19] = {0};
  pl[16] = 2; pl[17] = 2; pl[18] = 2; pl[1] = 2;
  uint32_t pc[19];
  canon(pl, 19, pc);
  for (int c = 0; c < 6; c++) {
    bw w;
    memset(&w, 0, sizeof w);
    put(&w, 1, 1);
    put(&w, 2, 2);
    unsigned nlit = c == 0 ? 287 : 257, ndist = c == 1 ? 31 : 1;
    put(&w, nlit - 257, 5);
    put(&w, ndist - 1, 5);
    put(&w, 19 - 4, 4);
    for (int i = 0; i < 19; i++) put(&w, pl[ORDER[i]], 3);
    if (c == 2) {
      put_code(&w, pc[16], 2); /* repeat with nothing before */
      put(&w, 0, 2);
    } else if (c == 3) {
      /* 257 + 1 lengths: 138 + 119 zeros would fit; 138 + 121 runs past */
      put_code(&w, pc[18], 2); put(&w, 127, 7);
      put_code(&w, pc[18], 2); put(&w, 121 - 11, 7);
    } else if (c == 4 || c == 5) {
      /* 256 zeros, then '1' for end-of-block and (c = 5) a repeat of it
       * spanning into the distance lengths: 1 + 3 > 2 left */
      put_code(&w, pc[18], 2); put(&w, 127, 7);
      put_code(&w, pc[18], 2); put(&w, 118 - 11, 7);
      put_code(&w, pc[1], 2);
      if (c == 5) { put_code(&w, pc[16], 2); put(&w, 0, 2); }
      else { put_code(&w, pc[1], 2); } /* distance code 0: length 1, alone */
      put(&w, 0, 1); /* end-of-block */
    }
    put(&w, 0, 16);
    int want = c == 4 ? LB_OK : LB_EDEFLATE;
    LB_CHECK_EQ(dec(&w, out, sizeof out, &res), want);
  }
  /* an over-subscribed and an incomplete precode */
  for (int c = 0; c < 2; c++) {
    bw w;
    memset(&w, 0, sizeof w);
    put(&w, 1, 1);
    put(&w, 2, 2);
    put(&w, 0, 5);
    put(&w, 0, 5);
    put(&w, 19 - 4, 4);
    /* c = 0: three codes of length 1; c = 1: one (a single code is
     * allowed for distances, never for the code length code) */
    for (int i = 0; i < 19; i++)
      put(&w, (ORDER[i] == 1 || (c == 0 && (ORDER[i] == 0 || ORDER[i] == 2))) ? 1 : 0, 3);
    put(&w, 0, 32);
    LB_CHECK_EQ(dec(&w, out, sizeof out, &res), LB_EDEFLATE);
  }
}

/* ---- truncation and splitting ------------------------------------------- */

static void test_truncated_at_every_byte(void) {
  uint8_t *msg = malloc(20000), *out = malloc(20000 + 300);
  int failures = 0;
  for (int c = 0; c < 12; c++) {
    size_t n = c < 4 ? (size_t)c * 7 : 1000 + (size_t)(rnd() % 19000);
    fill(msg, n, c % K_NKINDS, 1 + (unsigned)c % 9);
    size_t zn;
    uint8_t *z = zdeflate(msg, n, (c * 3) % 10, c % 4 == 3 ? Z_FIXED : Z_DEFAULT_STRATEGY, &zn);
    for (size_t k = 0; k < zn; k++) {
      lb_inflate_result res;
      /* a copy of exactly k bytes, so ASan sees any read past it */
      uint8_t *t = malloc(k ? k : 1);
      memcpy(t, z, k);
      int rc = lb_inflate_decode(st, t, k, out, n + 300, &res);
      if (rc != LB_EDEFLATE) failures++;
      free(t);
    }
    lb_inflate_result res;
    LB_CHECK_EQ(lb_inflate_decode(st, z, zn, out, n + 300, &res), LB_OK);
    free(z);
  }
  /* the Go stream too */
  for (size_t k = 0; k < sizeof GO_BESTSPEED_64K_A; k++) {
    lb_inflate_result res;
    uint8_t *big = malloc(70000);
    if (lb_inflate_decode(st, GO_BESTSPEED_64K_A, k, big, 70000, &res) != LB_EDEFLATE) failures++;
    free(big);
  }
  LB_CHECK_EQ(failures, 0);
  free(msg);
  free(out);
}

static void test_decode2_every_split(void) {
  uint8_t msg[3000], out[3100];
  fill(msg, sizeof msg, K_MIXED, 3);
  for (int level = 0; level <= 9; level += 3) {
    size_t zn;
    uint8_t *z = zdeflate(msg, sizeof msg, level, Z_DEFAULT_STRATEGY, &zn);
    int failures = 0;
    for (size_t k = 0; k <= zn; k++) {
      uint8_t *a = malloc(k ? k : 1), *b = malloc(zn - k ? zn - k : 1);
      memcpy(a, z, k);
      memcpy(b, z + k, zn - k);
      lb_inflate_result res;
      int rc = lb_inflate_decode2(st, a, k, b, zn - k, out, sizeof out, &res);
      if (rc != LB_OK || res.out_used != sizeof msg || res.in_used != zn ||
          memcmp(out, msg, sizeof msg) != 0)
        failures++;
      /* and cut short inside the second part */
      if (zn - k > 0 && lb_inflate_decode2(st, a, k, b, zn - k - 1, out, sizeof out, &res) != LB_EDEFLATE)
        failures++;
      free(a);
      free(b);
    }
    LB_CHECK_EQ(failures, 0);
    free(z);
  }
}

/* ---- need-more-output at every cap ------------------------------------- */

static void test_every_cap(void) {
  uint8_t msg[2000];
  for (int kind = 0; kind < K_NKINDS; kind++) {
    fill(msg, sizeof msg, kind, 2);
    size_t zn;
    uint8_t *z = zdeflate(msg, sizeof msg, 6, Z_DEFAULT_STRATEGY, &zn);
    int failures = 0;
    for (size_t cap = 0; cap <= sizeof msg; cap++) {
      lb_inflate_result res;
      uint8_t *got;
      int rc = decode_cap(z, zn, cap, &got, &res);
      int want = cap == sizeof msg ? LB_OK : LB_ENOSPACE;
      if (rc != want || memcmp(got, msg, res.out_used) != 0) failures++;
      free(got);
    }
    LB_CHECK_EQ(failures, 0);
    free(z);
  }
}

/* ---- corrupt streams against zlib --------------------------------------- */

static void test_corrupt_streams_agree_with_zlib(void) {
  uint8_t msg[5000];
  size_t cap = 5000 * 2 + 70000;
  uint8_t *a = malloc(cap), *b = malloc(cap);
  int disagree = 0, accepted = 0;
  for (int it = 0; it < 20000; it++) {
    size_t n = 1 + rnd() % sizeof msg;
    fill(msg, n, (int)(rnd() % K_NKINDS), 1 + (unsigned)(rnd() % 9));
    size_t zn;
    uint8_t *z = zdeflate(msg, n, (int)(rnd() % 10), (int)(rnd() % 5), &zn);
    int flips = 1 + (int)(rnd() % 4);
    for (int f = 0; f < flips; f++) {
      size_t at = (rnd() % 2) ? rnd() % (zn < 40 ? zn : 40) : rnd() % zn; /* headers often */
      z[at] ^= (uint8_t)(1u << (rnd() % 8));
    }
    size_t an = 0, used = 0;
    int za = zinflate(z, zn, a, cap, &an, &used);
    lb_inflate_result res;
    int rc = lb_inflate_decode(st, z, zn, b, cap, &res);
    if (za != 0 && an == cap) {
      /* a bomb that fills zlib's buffer: ours runs out of room too */
      if (rc != LB_ENOSPACE || memcmp(a, b, res.out_used) != 0) disagree++;
      free(z);
      continue;
    }
    if ((za == 0) != (rc == LB_OK) || (rc != LB_OK && rc != LB_EDEFLATE) ||
        (za == 0 && (res.out_used != an || memcmp(a, b, an) != 0 || res.in_used != used))) {
      if (disagree < 5) fprintf(stderr, "  it %d: zlib %d (%zu) lb %d (%zu)\n", it, za, an, rc, res.out_used);
      disagree++;
    }
    if (za == 0) accepted++;
    free(z);
  }
  LB_CHECK_EQ(disagree, 0);
  LB_CHECK(accepted > 100);
  free(a);
  free(b);
}

static void test_random_bytes_agree_with_zlib(void) {
  size_t cap = 1u << 20;
  uint8_t *a = malloc(cap), *b = malloc(cap), in[512];
  int disagree = 0, ok = 0;
  for (int it = 0; it < 50000; it++) {
    size_t n = rnd() % sizeof in;
    for (size_t i = 0; i < n; i++) in[i] = (uint8_t)rnd();
    /* bias towards fixed and stored block headers */
    if (n && it % 3 == 0) in[0] = (uint8_t)((in[0] & ~6u) | 2u);
    if (n > 4 && it % 7 == 0) { in[0] &= ~6u; in[3] = (uint8_t)~in[1]; in[4] = (uint8_t)~in[2]; }
    size_t an = 0, used = 0;
    int za = zinflate(in, n, a, cap, &an, &used);
    lb_inflate_result res;
    int rc = lb_inflate_decode(st, in, n, b, cap, &res);
    if ((za == 0) != (rc == LB_OK) ||
        (za == 0 && (res.out_used != an || memcmp(a, b, an) != 0 || res.in_used != used)))
      disagree++;
    ok += za == 0;
  }
  LB_CHECK_EQ(disagree, 0);
  LB_CHECK(ok > 100);
  free(a);
  free(b);
}

int main(void) {
  st = lb_inflate_new();
  LB_CHECK(st != NULL);
  LB_RUN(test_stored_blocks);
  LB_RUN(test_fixed_blocks);
  LB_RUN(test_bfinal_in_the_middle);
  LB_RUN(test_distance_too_far);
  LB_RUN(test_invalid_fixed_codes_and_block_type);
  LB_RUN(test_dynamic_blocks);
  LB_RUN(test_longest_matches);
  LB_RUN(test_dynamic_header_checks);
  LB_RUN(test_go_bestspeed_run);
  LB_RUN(test_roundtrip_levels_strategies_kinds_sizes);
  LB_RUN(test_roundtrip_one_mib);
  LB_RUN(test_roundtrip_random_sizes_and_memlevels);
  LB_RUN(test_truncated_at_every_byte);
  LB_RUN(test_decode2_every_split);
  LB_RUN(test_every_cap);
  LB_RUN(test_corrupt_streams_agree_with_zlib);
  LB_RUN(test_random_bytes_agree_with_zlib);
  LB_RUN(test_random_dynamic_blocks_agree_with_zlib);
  lb_inflate_free(st);
  return LB_DONE();
}
