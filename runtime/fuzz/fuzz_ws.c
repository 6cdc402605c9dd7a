/*
 * fuzz_ws.c: the lb_ws parsers on arbitrary bytes. The first byte picks the
 * header flags and the limit; the rest is the input. Properties checked
 * (abort on violation):
 *  - lb_ws_parse_header: every prefix of the input gives LB_EAGAIN or the
 *    result of the whole input; a parsed header lies inside the input and,
 *    when its length is minimal, rebuilds to the same bytes;
 *  - lb_utf8_validate: whole, split at a point chosen by the input, and
 *    byte by byte agree, and agree with a plain reference decoder;
 *  - lb_ws_mask: whole vs two pieces with an offset agree with the scalar
 *    definition;
 *  - lb_ws_msg_frame over the frames found in the input never breaks its
 *    own invariants (len <= limit, FIN closes the message);
 *  - lb_ws_check_close_payload returns a valid code, 1005 or an error.
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_ws.h"
#include "../test/utf8_ref.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void fuzz_header(const uint8_t *d, size_t n, int flags, uint64_t limit) {
  lb_ws_header h;
  ptrdiff_t whole = lb_ws_parse_header(&h, d, n, flags, limit);
  CHECK(whole == LB_EAGAIN || whole < -2 || (whole >= 2 && whole <= LB_WS_MAX_HEADER));
  if (whole > 0) {
    CHECK((size_t)whole <= n && h.header_len == whole);
    CHECK(h.opcode <= 2 || (h.opcode >= 8 && h.opcode <= 10));
    CHECK(!(h.opcode & 8) || (h.fin && h.payload_len <= 125));
    CHECK(!(h.payload_len >> 63));
    CHECK(limit == 0 || h.payload_len <= limit);
    CHECK(!(flags & LB_WS_SERVER) || h.masked);
    CHECK(!(flags & LB_WS_CLIENT) || !h.masked);
    CHECK((h.rsv & ~flags & 0x70) == 0);
    /* the builder writes minimal lengths and refuses RSV1 on control frames */
    if (!(flags & LB_WS_LAX_LENGTH) && (h.rsv & ~LB_WS_RSV1) == 0 && !(h.rsv && (h.opcode & 8))) {
      uint8_t b[LB_WS_MAX_HEADER];
      ptrdiff_t bn = lb_ws_build_header(b, sizeof b, h.fin, h.rsv != 0, h.opcode, h.masked,
                                        h.mask, h.payload_len);
      CHECK(bn == whole && memcmp(b, d, (size_t)bn) == 0);
    }
  }
  size_t upto = n < 16 ? n : 16;
  for (size_t k = 0; k < upto; k++) {
    lb_ws_header h2;
    ptrdiff_t r = lb_ws_parse_header(&h2, d, k, flags, limit);
    if (whole > 0 && k >= (size_t)whole) CHECK(r == whole);
    else CHECK(r == LB_EAGAIN || r == whole);
  }
}

static void fuzz_utf8(const uint8_t *d, size_t n, size_t at) {
  int want = utf8_ref(d, n);
  CHECK(lb_utf8_check(d, n) == want);
  lb_utf8_state s = {0};
  int r = lb_utf8_validate(&s, d, at);
  if (r == 0) r = lb_utf8_validate(&s, d + at, n - at);
  if (r == 0) r = lb_utf8_finish(&s);
  CHECK(r == want);
  lb_utf8_state t = {0};
  r = 0;
  for (size_t i = 0; i < n && r == 0; i++) r = lb_utf8_validate(&t, d + i, 1);
  if (r == 0) r = lb_utf8_finish(&t);
  CHECK(r == want);
  /* an invalid prefix is never reported valid-so-far */
  if (want == 0) CHECK(lb_utf8_validate(&(lb_utf8_state){0}, d, at) == 0);
}

static void fuzz_mask(const uint8_t *d, size_t n, size_t at, size_t off) {
  uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
  uint8_t key[4] = {0x5a, 0x17, 0xc3, 0x81};
  memcpy(a, d, n);
  memcpy(b, d, n);
  lb_ws_mask(a, at, key, off);
  lb_ws_mask(a + at, n - at, key, off + at);
  for (size_t i = 0; i < n; i++) b[i] ^= key[(off + i) & 3];
  CHECK(memcmp(a, b, n) == 0);
  free(a);
  free(b);
}

static void fuzz_messages(const uint8_t *d, size_t n, int flags, uint64_t limit) {
  lb_ws_msg m = {0};
  size_t pos = 0;
  while (pos < n) {
    lb_ws_header h;
    ptrdiff_t r = lb_ws_parse_header(&h, d + pos, n - pos, flags, 0);
    if (r <= 0) break;
    lb_ws_msg before = m;
    int op = lb_ws_msg_frame(&m, &h, limit);
    if (op < 0) {
      CHECK(memcmp(&before, &m, sizeof m) == 0);
    } else {
      CHECK(limit == 0 || m.len <= limit);
      if (!(h.opcode & 8) && h.fin) CHECK(m.open == 0);
      if (h.opcode & 8) CHECK(memcmp(&before, &m, sizeof m) == 0);
    }
    pos += (size_t)r;
    uint64_t skip = h.payload_len < 64 ? h.payload_len : 64;
    if (skip > n - pos) break;
    pos += (size_t)skip;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  int flags = (sel & 0x03) == 3 ? 0 : (sel & 0x03); /* server, client, none */
  flags |= (sel & 0x04) ? LB_WS_LAX_LENGTH : 0;
  flags |= (sel & 0x08) ? LB_WS_RSV1 : 0;
  uint64_t limit = (sel & 0x30) == 0 ? 0 : (uint64_t)1 << (4 * ((sel >> 4) & 3));
  size_t at = n ? (size_t)(sel * 7919u) % (n + 1) : 0;

  fuzz_header(d, n, flags, limit);
  fuzz_utf8(d, n, at);
  fuzz_mask(d, n, at, sel);
  fuzz_messages(d, n, flags, limit);

  int c = lb_ws_check_close_payload(d, n);
  CHECK(c < 0 ? (n == 1 || n > 125 || c == LB_ECLOSECODE || c == LB_EUTF8)
              : (c == 1005 ? n == 0 : lb_ws_close_code_valid(c)));
  CHECK(lb_ws_client_key_valid((const char *)d, n) == 0 || n == 24);
  return 0;
}
