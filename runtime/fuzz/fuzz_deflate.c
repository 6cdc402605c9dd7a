/*
 * fuzz_deflate.c: lb_deflate on arbitrary bytes. The first byte picks a
 * small output limit, window bits and context takeover. Properties checked
 * (abort on violation):
 *  - lb_deflate_decompress never appends more than the limit, returns
 *    exactly what it appended, and rolls the buffer back on error; the
 *    buffer's capacity stays within lb_buf's doubling of the limit;
 *  - compress then decompress (limit = message size) gives the input back;
 *  - the whole-message path (no context takeover for the peer, window 15:
 *    lb_inflate) agrees with the zlib path on a fresh context: whenever zlib
 *    accepts a message, it decodes the same bytes, and whenever zlib finds
 *    it over the limit, so does it (it may accept a few malformed messages
 *    zlib rejects: a payload cut mid-block whose last block ends exactly
 *    inside the appended final block);
 *  - lb_deflate_parse_offer always reports a consumed length within the
 *    input, and a parsed element formats and parses back to the same
 *    parameters.
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_deflate.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static lb_deflate *rx_ctx[16], *tx_ctx[16], *rt_ctx[16], *whole_ctx;

static lb_deflate *get(lb_deflate **slot, int bits, int nt) {
  if (*slot == NULL) *slot = lb_deflate_new(bits, nt, bits, nt, -1);
  CHECK(*slot != NULL);
  return *slot;
}

static void fuzz_params(const uint8_t *d, size_t n, int flags) {
  size_t pos = 0;
  int steps = 0;
  while (pos < n && steps++ < 64) {
    lb_deflate_params p;
    size_t used = 0;
    int r = lb_deflate_parse_offer(&p, (const char *)d + pos, n - pos, flags, &used);
    CHECK(used <= n - pos);
    CHECK(r == 0 || r == LB_DEFLATE_OTHER || r == LB_EHEADER);
    if (r == 0) {
      char out[LB_DEFLATE_PARAMS_MAX];
      ptrdiff_t fn = lb_deflate_format_params(out, sizeof out, &p);
      CHECK(fn > 0);
      lb_deflate_params q;
      size_t u2;
      CHECK(lb_deflate_parse_offer(&q, out, (size_t)fn, flags, &u2) == 0);
      CHECK(memcmp(&p, &q, sizeof p) == 0 && u2 == (size_t)fn);
      lb_deflate_params prefs, resp;
      memset(&prefs, 0, sizeof prefs);
      if (lb_deflate_accept_offer(&p, &prefs, &resp) == 0)
        CHECK(lb_deflate_format_params(out, sizeof out, &resp) > 0);
    }
    if (used == 0) break;
    pos += used;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  int nt = sel & 1;
  int bits = 9 + ((sel >> 1) & 7) % 7; /* 9..15 */
  size_t limit = (size_t)((sel >> 4) + 1) * 61; /* 61..976 */
  int slot = sel & 15;

  /* Decompress: the same context is reused across inputs, as on a
   * connection, so earlier inputs shape the window. */
  lb_deflate *rx = get(&rx_ctx[slot], bits, nt);
  lb_buf out = {0};
  CHECK(lb_buf_append(&out, "pre", 3) == 0);
  ptrdiff_t r = lb_deflate_decompress(rx, d, n, &out, limit);
  if (r >= 0) {
    CHECK((size_t)r <= limit && out.len == 3 + (size_t)r);
  } else {
    CHECK(r == LB_ETOOLARGE || r == LB_EDEFLATE);
    CHECK(out.len == 3);
  }
  CHECK(out.cap <= 2 * (limit + 3) + 64);
  CHECK(memcmp(out.data, "pre", 3) == 0);
  lb_buf_free(&out);

  /* Whole-message path against zlib on a fresh context (same window). */
  {
    lb_deflate *zc = lb_deflate_new(15, 0, 15, 0, 1);
    lb_deflate *wc = get(&whole_ctx, 15, 1);
    CHECK(zc != NULL);
    lb_buf a = {0};
    ptrdiff_t ra = lb_deflate_decompress(zc, d, n, &a, limit);
    CHECK(lb_buf_append(&out, "pre", 3) == 0);
    ptrdiff_t rb = lb_deflate_decompress(wc, d, n, &out, limit);
    if (rb >= 0) CHECK((size_t)rb <= limit && out.len == 3 + (size_t)rb);
    else CHECK((rb == LB_ETOOLARGE || rb == LB_EDEFLATE) && out.len == 3);
    CHECK(out.cap <= 2 * (limit + 3) + 64);
    if (ra >= 0) CHECK(rb == ra && (ra == 0 || memcmp(a.data, out.data + 3, (size_t)ra) == 0));
    if (ra == LB_ETOOLARGE) CHECK(rb == LB_ETOOLARGE);
    lb_buf_free(&a);
    lb_buf_free(&out);
    lb_deflate_free(zc);
  }

  /* Round trip through a compressor and decompressor pair. */
  lb_deflate *tx = get(&tx_ctx[slot], bits, nt);
  lb_deflate *rt = get(&rt_ctx[slot], bits, nt);
  lb_buf z = {0};
  ptrdiff_t zn = lb_deflate_compress(tx, d, n, &z);
  CHECK(zn > 0 && (size_t)zn == z.len);
  r = lb_deflate_decompress(rt, z.data, z.len, &out, n ? n : 1);
  CHECK(r == (ptrdiff_t)n && out.len == n && (n == 0 || memcmp(out.data, d, n) == 0));
  lb_buf_free(&z);
  lb_buf_free(&out);

  fuzz_params(d, n, (sel & 0x80) ? LB_DEFLATE_CLIENT_OFFER : LB_DEFLATE_SERVER_RESPONSE);
  return 0;
}
