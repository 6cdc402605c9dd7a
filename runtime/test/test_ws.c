#include "lb_test.h"
#include "utf8_ref.h"
#include "lowbit/lb_base.h"
#include "lowbit/lb_ws.h"
#include <stdint.h>
#include <stdlib.h>

#define B(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

/* xorshift, so failures reproduce */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng_state); }

/* ---- header parse: vectors ------------------------------------------- */

typedef struct {
  const char *name;
  const uint8_t *in;
  size_t len;
  int flags;
  ptrdiff_t want; /* header length */
  int fin, opcode, masked;
  uint64_t payload_len;
} hvec;

/* Whole header gives `want`; every shorter prefix gives LB_EAGAIN; trailing
 * payload bytes do not change the result. */
static void check_hvec(const hvec *v) {
  lb_ws_header h;
  ptrdiff_t r = lb_ws_parse_header(&h, v->in, v->len, v->flags, 0);
  if (r != v->want) fprintf(stderr, "  vector %s\n", v->name);
  LB_CHECK_EQ(r, v->want);
  if (r < 0) return;
  LB_CHECK_EQ(h.fin, v->fin);
  LB_CHECK_EQ(h.opcode, v->opcode);
  LB_CHECK_EQ(h.masked, v->masked);
  LB_CHECK_EQ(h.payload_len, v->payload_len);
  LB_CHECK_EQ(h.header_len, v->want);
  for (size_t k = 0; k < (size_t)v->want; k++) {
    lb_ws_header h2;
    ptrdiff_t rk = lb_ws_parse_header(&h2, v->in, k, v->flags, 0);
    if (rk != LB_EAGAIN) fprintf(stderr, "  vector %s prefix %zu\n", v->name, k);
    LB_CHECK_EQ(rk, LB_EAGAIN);
  }
}

static const uint8_t V_TEXT_UNMASKED[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
static const uint8_t V_TEXT_MASKED[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t V_FRAG1[] = {0x01, 0x03, 'H', 'e', 'l'};
static const uint8_t V_FRAG2[] = {0x80, 0x02, 'l', 'o'};
static const uint8_t V_PING[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
static const uint8_t V_PONG_MASKED[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t V_BIN_256[] = {0x82, 0x7E, 0x01, 0x00};
static const uint8_t V_BIN_64K[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
static const uint8_t V_BIN_64K_MASKED[] = {0x82, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4};
static const uint8_t V_DEFLATE_F1[] = {0x41, 0x03, 0xf2, 0x48, 0xcd};
static const uint8_t V_DEFLATE_F2[] = {0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
static const uint8_t V_EMPTY_CLOSE[] = {0x88, 0x00};

static void test_header_rfc_vectors_whole_and_prefixes(void) {
  const hvec v[] = {
    {"unmasked text Hello", V_TEXT_UNMASKED, sizeof V_TEXT_UNMASKED, LB_WS_CLIENT, 2, 1, 1, 0, 5},
    {"masked text Hello", V_TEXT_MASKED, sizeof V_TEXT_MASKED, LB_WS_SERVER, 6, 1, 1, 1, 5},
    {"fragment 1", V_FRAG1, sizeof V_FRAG1, LB_WS_CLIENT, 2, 0, 1, 0, 3},
    {"fragment 2", V_FRAG2, sizeof V_FRAG2, LB_WS_CLIENT, 2, 1, 0, 0, 2},
    {"ping", V_PING, sizeof V_PING, 0, 2, 1, 9, 0, 5},
    {"masked pong", V_PONG_MASKED, sizeof V_PONG_MASKED, LB_WS_SERVER, 6, 1, 10, 1, 5},
    {"256-byte binary", V_BIN_256, sizeof V_BIN_256, LB_WS_CLIENT, 4, 1, 2, 0, 256},
    {"64KiB binary", V_BIN_64K, sizeof V_BIN_64K, LB_WS_CLIENT, 10, 1, 2, 0, 65536},
    {"64KiB masked binary", V_BIN_64K_MASKED, sizeof V_BIN_64K_MASKED, LB_WS_SERVER, 14, 1, 2, 1, 65536},
    {"deflate frame 1", V_DEFLATE_F1, sizeof V_DEFLATE_F1, LB_WS_CLIENT | LB_WS_RSV1, 2, 0, 1, 0, 3},
    {"deflate frame 2", V_DEFLATE_F2, sizeof V_DEFLATE_F2, LB_WS_CLIENT | LB_WS_RSV1, 2, 1, 0, 0, 4},
    {"empty close", V_EMPTY_CLOSE, sizeof V_EMPTY_CLOSE, 0, 2, 1, 8, 0, 0},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) check_hvec(&v[i]);
}

static void test_header_masked_hello_unmasks(void) {
  uint8_t buf[sizeof V_TEXT_MASKED];
  memcpy(buf, V_TEXT_MASKED, sizeof buf);
  lb_ws_header h;
  ptrdiff_t n = lb_ws_parse_header(&h, buf, sizeof buf, LB_WS_SERVER, 0);
  LB_CHECK_EQ(n, 6);
  LB_CHECK(memcmp(h.mask, "\x37\xfa\x21\x3d", 4) == 0);
  lb_ws_mask(buf + n, (size_t)h.payload_len, h.mask, 0);
  LB_CHECK(memcmp(buf + n, "Hello", 5) == 0);
  /* deflate frame 1 carries RSV1 */
  LB_CHECK_EQ(lb_ws_parse_header(&h, V_DEFLATE_F1, sizeof V_DEFLATE_F1, LB_WS_RSV1, 0), 2);
  LB_CHECK_EQ(h.rsv, LB_WS_RSV1);
}

/* ---- header parse: negative cases ------------------------------------ */

typedef struct {
  const char *defect;
  uint8_t in[14];
  size_t len;
  int flags;
  uint64_t limit;
  ptrdiff_t want;
} nvec;

static void test_header_rejects_named_defects(void) {
  const nvec v[] = {
    {"reserved opcode 0x3", {0x83, 0x00}, 2, 0, 0, LB_EOPCODE},
    {"reserved opcode 0x7", {0x87, 0x00}, 2, 0, 0, LB_EOPCODE},
    {"reserved control opcode 0xB", {0x8B, 0x00}, 2, 0, 0, LB_EOPCODE},
    {"reserved control opcode 0xF", {0x8F, 0x00}, 2, 0, 0, LB_EOPCODE},
    {"RSV1 without extension", {0xC1, 0x00}, 2, 0, 0, LB_ERSV},
    {"RSV2 without extension", {0xA1, 0x00}, 2, 0, 0, LB_ERSV},
    {"RSV3 without extension", {0x91, 0x00}, 2, 0, 0, LB_ERSV},
    {"RSV2 with only RSV1 negotiated", {0xA1, 0x00}, 2, LB_WS_RSV1, 0, LB_ERSV},
    {"unmasked frame from client", {0x81, 0x05}, 2, LB_WS_SERVER, 0, LB_EMASK},
    {"masked frame from server", {0x81, 0x85, 1, 2, 3, 4}, 6, LB_WS_CLIENT, 0, LB_EMASK},
    {"ping without FIN", {0x09, 0x00}, 2, 0, 0, LB_ECONTROL},
    {"close without FIN", {0x08, 0x00}, 2, 0, 0, LB_ECONTROL},
    {"ping with 16-bit length", {0x89, 0x7E, 0x00, 0x7E}, 4, 0, 0, LB_ECONTROL},
    {"pong with 64-bit length", {0x8A, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7E}, 10, 0, 0, LB_ECONTROL},
    {"64-bit length with top bit set", {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 0, 0, LB_EPROTO},
    {"64-bit length all ones", {0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 10, 0, 0, LB_EPROTO},
    {"non-minimal 16-bit length 125", {0x82, 0x7E, 0x00, 0x7D}, 4, 0, 0, LB_EPROTO},
    {"non-minimal 16-bit length 0", {0x82, 0x7E, 0x00, 0x00}, 4, 0, 0, LB_EPROTO},
    {"non-minimal 64-bit length 65535", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 10, 0, 0, LB_EPROTO},
    {"non-minimal 64-bit length 5", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5}, 10, 0, 0, LB_EPROTO},
    {"payload over limit", {0x82, 0x7E, 0x01, 0x01}, 4, 0, 256, LB_ETOOLARGE},
    {"64-bit payload over limit", {0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0}, 10, 0, 1 << 20, LB_ETOOLARGE},
    {"reserved opcode beats bad mask", {0x83, 0x00}, 2, LB_WS_SERVER, 0, LB_EOPCODE},
    {"bad mask beats control without FIN", {0x09, 0x00}, 2, LB_WS_SERVER, 0, LB_EMASK},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    lb_ws_header h;
    ptrdiff_t r = lb_ws_parse_header(&h, v[i].in, v[i].len, v[i].flags, v[i].limit);
    if (r != v[i].want) fprintf(stderr, "  defect: %s\n", v[i].defect);
    LB_CHECK_EQ(r, v[i].want);
    /* a prefix never gives another verdict: only LB_EAGAIN or the same error */
    for (size_t k = 0; k < v[i].len; k++) {
      ptrdiff_t rk = lb_ws_parse_header(&h, v[i].in, k, v[i].flags, v[i].limit);
      if (rk != LB_EAGAIN && rk != v[i].want)
        fprintf(stderr, "  defect: %s, prefix %zu gave %td\n", v[i].defect, k, rk);
      LB_CHECK(rk == LB_EAGAIN || rk == v[i].want);
    }
  }
}

static void test_header_errors_fail_early(void) {
  lb_ws_header h;
  /* reserved opcode and RSV are judged from the first byte alone */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x84", 1, 0, 0), LB_EOPCODE);
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\xc1", 1, 0, 0), LB_ERSV);
  /* the top length bit from the first length byte */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x82\x7f\x80", 3, 0, 0), LB_EPROTO);
  /* the limit before the mask key arrives */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x82\xfe\x10\x00", 4, LB_WS_SERVER, 100),
              LB_ETOOLARGE);
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"", 0, 0, 0), LB_EAGAIN);
}

static void test_header_options(void) {
  lb_ws_header h;
  /* RSV1 accepted once negotiated */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\xc1\x00", 2, LB_WS_RSV1, 0), 2);
  /* non-minimal lengths accepted when lax */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x82\x7e\x00\x05", 4, LB_WS_LAX_LENGTH, 0), 4);
  LB_CHECK_EQ(h.payload_len, 5);
  /* no role: both masked and unmasked pass */
  LB_CHECK_EQ(lb_ws_parse_header(&h, V_TEXT_MASKED, sizeof V_TEXT_MASKED, 0, 0), 6);
  LB_CHECK_EQ(lb_ws_parse_header(&h, V_TEXT_UNMASKED, sizeof V_TEXT_UNMASKED, 0, 0), 2);
  /* exactly at the limit is fine */
  LB_CHECK_EQ(lb_ws_parse_header(&h, V_BIN_256, sizeof V_BIN_256, 0, 256), 4);
  /* largest legal length */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 10, 0, 0), 10);
  LB_CHECK_EQ(h.payload_len, INT64_MAX);
  /* control frame with 125 bytes */
  LB_CHECK_EQ(lb_ws_parse_header(&h, (const uint8_t *)"\x89\x7d", 2, 0, 0), 2);
}

static void test_close_code_for_errors(void) {
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EOPCODE), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_ERSV), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EMASK), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_ECONTROL), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EPROTO), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EFRAGMENT), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_ECLOSECODE), 1002);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EUTF8), 1007);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_EDEFLATE), 1007);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_ETOOLARGE), 1009);
  LB_CHECK_EQ(lb_ws_close_code_for(LB_ENOMEM), 1011);
  LB_CHECK_EQ(lb_ws_close_code_for(0), 1000);
}

/* ---- header build ------------------------------------------------------ */

static void test_build_header_vectors(void) {
  uint8_t b[LB_WS_MAX_HEADER];
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_TEXT, 0, NULL, 5), 2);
  LB_CHECK(memcmp(b, "\x81\x05", 2) == 0);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_TEXT, 1, key, 5), 6);
  LB_CHECK(memcmp(b, V_TEXT_MASKED, 6) == 0);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_BINARY, 0, NULL, 256), 4);
  LB_CHECK(memcmp(b, V_BIN_256, 4) == 0);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_BINARY, 0, NULL, 65536), 10);
  LB_CHECK(memcmp(b, V_BIN_64K, 10) == 0);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 0, 1, LB_WS_OP_TEXT, 0, NULL, 3), 2);
  LB_CHECK(memcmp(b, V_DEFLATE_F1, 2) == 0);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_CONT, 0, NULL, 4), 2);
  LB_CHECK(memcmp(b, V_DEFLATE_F2, 2) == 0);
}

static void test_build_header_roundtrip_and_space(void) {
  const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (uint64_t)1 << 32, INT64_MAX};
  const uint8_t key[4] = {9, 8, 7, 6};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int m = 0; m <= 1; m++) {
      uint8_t b[LB_WS_MAX_HEADER];
      int want = lb_ws_header_len(m, lens[i]);
      ptrdiff_t n = lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_BINARY, m, key, lens[i]);
      LB_CHECK_EQ(n, want);
      for (size_t cap = 0; cap < (size_t)want; cap++)
        LB_CHECK_EQ(lb_ws_build_header(b, cap, 1, 0, LB_WS_OP_BINARY, m, key, lens[i]), LB_ENOSPACE);
      lb_ws_header h;
      LB_CHECK_EQ(lb_ws_parse_header(&h, b, (size_t)n, m ? LB_WS_SERVER : LB_WS_CLIENT, 0), n);
      LB_CHECK_EQ(h.payload_len, lens[i]);
      LB_CHECK_EQ(h.masked, m);
      if (m) LB_CHECK(memcmp(h.mask, key, 4) == 0);
    }
  }
}

static void test_build_header_rejects_misuse(void) {
  uint8_t b[LB_WS_MAX_HEADER];
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, 3, 0, NULL, 1), LB_EINVAL);     /* reserved opcode */
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, 16, 0, NULL, 1), LB_EINVAL);    /* opcode > 15 */
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_PING, 0, NULL, 126), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 0, 0, LB_WS_OP_CLOSE, 0, NULL, 2), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 1, LB_WS_OP_PING, 0, NULL, 2), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_TEXT, 1, NULL, 2), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_TEXT, 0, NULL, (uint64_t)1 << 63), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_header(b, sizeof b, 1, 0, LB_WS_OP_PONG, 0, NULL, 125), 2);
}

/* ---- masking ----------------------------------------------------------- */

static void mask_ref(uint8_t *d, size_t n, const uint8_t k[4], size_t off) {
  for (size_t i = 0; i < n; i++) d[i] ^= k[(off + i) & 3];
}

static void test_mask_matches_scalar_on_random_lengths_offsets(void) {
  static uint8_t a[4200], b[4200];
  for (int iter = 0; iter < 3000; iter++) {
    size_t start = rnd() % 64;  /* misaligned starts */
    size_t n = rnd() % (iter < 1500 ? 300 : 4096);
    size_t off = rnd() % 1000;
    uint8_t key[4];
    uint64_t r = rnd();
    memcpy(key, &r, 4);
    for (size_t i = 0; i < start + n + 8; i++) a[i] = b[i] = (uint8_t)rnd();
    lb_ws_mask(a + start, n, key, off);
    mask_ref(b + start, n, key, off);
    LB_CHECK(memcmp(a, b, start + n + 8) == 0);
  }
}

static void test_mask_split_payload_continues_with_offset(void) {
  uint8_t whole[1000], parts[1000];
  const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof whole; i++) whole[i] = parts[i] = (uint8_t)(i * 7);
  lb_ws_mask(whole, sizeof whole, key, 0);
  size_t pos = 0;
  while (pos < sizeof parts) {
    size_t n = 1 + rnd() % 97;
    if (n > sizeof parts - pos) n = sizeof parts - pos;
    lb_ws_mask(parts + pos, n, key, pos);
    pos += n;
  }
  LB_CHECK(memcmp(whole, parts, sizeof whole) == 0);
  /* byte by byte */
  for (size_t i = 0; i < sizeof parts; i++) lb_ws_mask(parts + i, 1, key, i);
  for (size_t i = 0; i < sizeof parts; i++) LB_CHECK_EQ(parts[i], (uint8_t)(i * 7));
  /* n = 0 touches nothing */
  lb_ws_mask(parts, 0, key, 3);
  LB_CHECK_EQ(parts[0], 0);
}

static void test_random_fills(void) {
  uint8_t a[16] = {0}, z[16] = {0};
  LB_CHECK_EQ(lb_ws_random(a, sizeof a), 0);
  LB_CHECK(memcmp(a, z, 16) != 0);
  LB_CHECK_EQ(lb_ws_random(a, 0), 0);
}

/* ---- message state ----------------------------------------------------- */

static lb_ws_header hdr(int fin, int rsv1, int op, uint64_t len) {
  lb_ws_header h;
  memset(&h, 0, sizeof h);
  h.fin = (uint8_t)fin;
  h.rsv = rsv1 ? LB_WS_RSV1 : 0;
  h.opcode = (uint8_t)op;
  h.payload_len = len;
  return h;
}

static void test_msg_fragmented_with_interleaved_control(void) {
  lb_ws_msg m = {0};
  lb_ws_header h;
  h = hdr(0, 0, LB_WS_OP_TEXT, 3);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_TEXT);
  LB_CHECK_EQ(m.open, 1);
  h = hdr(1, 0, LB_WS_OP_PING, 2);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_PING);
  h = hdr(0, 0, LB_WS_OP_CONT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_TEXT);
  h = hdr(1, 0, LB_WS_OP_CONT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_TEXT);
  LB_CHECK_EQ(m.open, 0);
  LB_CHECK_EQ(m.len, 5);
  h = hdr(1, 0, LB_WS_OP_BINARY, 7);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_BINARY);
  LB_CHECK_EQ(m.len, 7);
  LB_CHECK_EQ(m.open, 0);
}

static void test_msg_rejects_named_defects(void) {
  lb_ws_msg m = {0};
  lb_ws_header h;
  /* continuation without an open message */
  h = hdr(1, 0, LB_WS_OP_CONT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_EFRAGMENT);
  /* new data frame while one is open */
  h = hdr(0, 0, LB_WS_OP_TEXT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_WS_OP_TEXT);
  lb_ws_msg saved = m;
  h = hdr(1, 0, LB_WS_OP_BINARY, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_EFRAGMENT);
  LB_CHECK(memcmp(&m, &saved, sizeof m) == 0); /* state unchanged on error */
  /* RSV1 on a continuation */
  h = hdr(1, 1, LB_WS_OP_CONT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_ERSV);
  /* RSV1 on a control frame */
  h = hdr(1, 1, LB_WS_OP_PING, 0);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_ERSV);
  /* reserved opcode in a hand-made header */
  h = hdr(1, 0, 5, 0);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 0), LB_EOPCODE);
}

static void test_msg_compressed_flag_and_limit(void) {
  lb_ws_msg m = {0};
  lb_ws_header h = hdr(0, 1, LB_WS_OP_TEXT, 3);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_WS_OP_TEXT);
  LB_CHECK_EQ(m.compressed, 1);
  h = hdr(0, 0, LB_WS_OP_CONT, 7);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_WS_OP_TEXT);
  /* message over the read limit across fragments */
  h = hdr(1, 0, LB_WS_OP_CONT, 1);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_ETOOLARGE);
  h = hdr(1, 0, LB_WS_OP_CONT, 0);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_WS_OP_TEXT);
  LB_CHECK_EQ(m.compressed, 1); /* still describes the last message */
  h = hdr(1, 0, LB_WS_OP_BINARY, 11);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_ETOOLARGE);
  h = hdr(1, 0, LB_WS_OP_BINARY, 10);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_WS_OP_BINARY);
  LB_CHECK_EQ(m.compressed, 0);
  /* huge continuation does not wrap the limit arithmetic */
  h = hdr(0, 0, LB_WS_OP_TEXT, 5);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_WS_OP_TEXT);
  h = hdr(1, 0, LB_WS_OP_CONT, UINT64_MAX - 2);
  LB_CHECK_EQ(lb_ws_msg_frame(&m, &h, 10), LB_ETOOLARGE);
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* whole, byte by byte, and split at every point: all give `want`
 * (0 valid, LB_EUTF8 invalid, counting the final check). */
static int utf8_whole(const uint8_t *p, size_t n) { return lb_utf8_check(p, n); }

static int utf8_split(const uint8_t *p, size_t n, size_t at) {
  lb_utf8_state s = {0};
  if (lb_utf8_validate(&s, p, at) != 0) return LB_EUTF8;
  if (lb_utf8_validate(&s, p + at, n - at) != 0) return LB_EUTF8;
  return lb_utf8_finish(&s);
}

static int utf8_bytewise(const uint8_t *p, size_t n) {
  lb_utf8_state s = {0};
  for (size_t i = 0; i < n; i++)
    if (lb_utf8_validate(&s, p + i, 1) != 0) return LB_EUTF8;
  return lb_utf8_finish(&s);
}

static void check_utf8(const char *name, const uint8_t *p, size_t n, int want) {
  int w = utf8_whole(p, n), b = utf8_bytewise(p, n);
  if (w != want || b != want) fprintf(stderr, "  utf8 case: %s\n", name);
  LB_CHECK_EQ(w, want);
  LB_CHECK_EQ(b, want);
  for (size_t at = 0; at <= n; at++) {
    int r = utf8_split(p, n, at);
    if (r != want) fprintf(stderr, "  utf8 case: %s split at %zu\n", name, at);
    LB_CHECK_EQ(r, want);
  }
}

static void test_utf8_valid_vectors(void) {
  check_utf8("empty", B(""), 0);
  check_utf8("ascii", B("Hello, world! 0123456789 abcdefghijklmnopqrstuvwxyz"), 0);
  check_utf8("kosme", B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 0);
  check_utf8("U+007F", B("\x7f"), 0);
  check_utf8("U+0080", B("\xc2\x80"), 0);
  check_utf8("U+07FF", B("\xdf\xbf"), 0);
  check_utf8("U+0800", B("\xe0\xa0\x80"), 0);
  check_utf8("U+D7FF", B("\xed\x9f\xbf"), 0);
  check_utf8("U+E000", B("\xee\x80\x80"), 0);
  check_utf8("U+FFFD", B("\xef\xbf\xbd"), 0);
  check_utf8("U+FFFF", B("\xef\xbf\xbf"), 0);
  check_utf8("U+10000", B("\xf0\x90\x80\x80"), 0);
  check_utf8("U+10FFFF", B("\xf4\x8f\xbf\xbf"), 0);
  check_utf8("mixed long", B("abcdefghijklmnopqrstuvwxyz\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                             "abcdefghijklmnopqrstuvwxyz0123\xe6\x97\xa5\xe6\x9c\xac"), 0);
}

static void test_utf8_rejects_named_defects(void) {
  check_utf8("overlong 2-byte NUL C0 80", B("\xc0\x80"), LB_EUTF8);
  check_utf8("overlong 2-byte C1 BF", B("\xc1\xbf"), LB_EUTF8);
  check_utf8("overlong 3-byte E0 80 80", B("\xe0\x80\x80"), LB_EUTF8);
  check_utf8("overlong 3-byte E0 9F BF", B("\xe0\x9f\xbf"), LB_EUTF8);
  check_utf8("overlong 4-byte F0 80 80 80", B("\xf0\x80\x80\x80"), LB_EUTF8);
  check_utf8("overlong 4-byte F0 8F BF BF", B("\xf0\x8f\xbf\xbf"), LB_EUTF8);
  check_utf8("surrogate U+D800", B("\xed\xa0\x80"), LB_EUTF8);
  check_utf8("surrogate U+DFFF", B("\xed\xbf\xbf"), LB_EUTF8);
  check_utf8("surrogate pair CESU", B("\xed\xa0\xbd\xed\xb2\xa9"), LB_EUTF8);
  check_utf8("above U+10FFFF F4 90 80 80", B("\xf4\x90\x80\x80"), LB_EUTF8);
  check_utf8("lead F5", B("\xf5\x80\x80\x80"), LB_EUTF8);
  check_utf8("byte FE", B("a\xfe"), LB_EUTF8);
  check_utf8("byte FF", B("\xff"), LB_EUTF8);
  check_utf8("lone continuation", B("abc\x80"), LB_EUTF8);
  check_utf8("continuation after complete sequence", B("\xc3\xa9\xa9"), LB_EUTF8);
  check_utf8("ASCII inside 3-byte sequence", B("\xe2\x41\x82"), LB_EUTF8);
  check_utf8("truncated 2-byte at end", B("abc\xc3"), LB_EUTF8);
  check_utf8("truncated 3-byte at end", B("\xe2\x82"), LB_EUTF8);
  check_utf8("truncated 4-byte at end", B("\xf0\x9f\x98"), LB_EUTF8);
  check_utf8("invalid after 16 ASCII bytes", B("0123456789abcdef\x80"), LB_EUTF8);
  check_utf8("kosme then surrogate (autobahn 6.x)", B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited"), LB_EUTF8);
}

static void test_utf8_state_is_sticky_and_fails_early(void) {
  lb_utf8_state s = {0};
  LB_CHECK_EQ(lb_utf8_validate(&s, (const uint8_t *)"\xe0\x80", 2), LB_EUTF8); /* invalid prefix */
  LB_CHECK_EQ(lb_utf8_validate(&s, (const uint8_t *)"abc", 3), LB_EUTF8);
  LB_CHECK_EQ(lb_utf8_finish(&s), LB_EUTF8);
  lb_utf8_state t = {0};
  LB_CHECK_EQ(lb_utf8_validate(&t, (const uint8_t *)"\xf0\x9f", 2), 0);
  LB_CHECK_EQ(lb_utf8_finish(&t), LB_EUTF8); /* incomplete at end */
  LB_CHECK_EQ(lb_utf8_validate(&t, (const uint8_t *)"\x98\x80", 2), 0);
  LB_CHECK_EQ(lb_utf8_finish(&t), 0);
}

static void test_utf8_matches_reference_on_random_text(void) {
  static const char *pieces[] = {"a", "0123456789abcdef", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                 "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf", "\x80", "\xed\xa0\x80", "\xc0\xaf",
                                 "\xf4\x90\x80\x80", "\xe0\xa0", "\xff", "        "};
  uint8_t buf[512];
  int invalid_seen = 0, valid_seen = 0;
  for (int iter = 0; iter < 4000; iter++) {
    size_t n = 0;
    int bad_odds = (int)(rnd() % 8); /* many texts stay valid */
    while (n < 400) {
      size_t k = rnd() % 14;
      if (k >= 7 && k <= 12 && (int)(rnd() % 64) > bad_odds) k = 1;
      size_t pl = strlen(pieces[k]);
      memcpy(buf + n, pieces[k], pl);
      n += pl;
      if (rnd() % 40 == 0) break;
    }
    int want = utf8_ref(buf, n);
    if (want) invalid_seen++; else valid_seen++;
    LB_CHECK_EQ(utf8_whole(buf, n), want);
    LB_CHECK_EQ(utf8_split(buf, n, rnd() % (n + 1)), want);
    if (iter % 10 == 0) LB_CHECK_EQ(utf8_bytewise(buf, n), want);
  }
  LB_CHECK(invalid_seen > 100 && valid_seen > 100);
  /* purely random bytes */
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = rnd() % 8;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(0x7F + rnd() % 0x81);
    LB_CHECK_EQ(utf8_whole(buf, n), utf8_ref(buf, n));
    LB_CHECK_EQ(utf8_bytewise(buf, n), utf8_ref(buf, n));
  }
}

/* ---- close frames ------------------------------------------------------ */

static void test_close_code_validity(void) {
  static const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999};
  static const int invalid[] = {-1, 0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) LB_CHECK_EQ(lb_ws_close_code_valid(valid[i]), 1);
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) LB_CHECK_EQ(lb_ws_close_code_valid(invalid[i]), 0);
}

static void test_close_payload_check(void) {
  LB_CHECK_EQ(lb_ws_check_close_payload((const uint8_t *)"", 0), 1005);
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xe8")), 1000);
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xe9going away")), 1001);
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x0f\xa0\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")), 4000);
  /* named defects */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03")), LB_EPROTO);               /* 1-byte body */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xe7")), LB_ECLOSECODE);       /* code 999 */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xed")), LB_ECLOSECODE);       /* 1005 on the wire */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xee")), LB_ECLOSECODE);       /* 1006 on the wire */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xf7")), LB_ECLOSECODE);       /* 1015 on the wire */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x00\x00")), LB_ECLOSECODE);       /* code 0 */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x13\x88")), LB_ECLOSECODE);       /* 5000 */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xe8\xce\xba\xed\xa0\x80")), LB_EUTF8); /* surrogate in reason */
  LB_CHECK_EQ(lb_ws_check_close_payload(B("\x03\xe8\xce")), LB_EUTF8);       /* truncated reason */
  uint8_t big[126];
  memset(big, 'a', sizeof big);
  big[0] = 0x03; big[1] = 0xe8;
  LB_CHECK_EQ(lb_ws_check_close_payload(big, 125), 1000);
  LB_CHECK_EQ(lb_ws_check_close_payload(big, 126), LB_ECONTROL);             /* body over 125 */
}

static void test_close_build(void) {
  uint8_t b[125];
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 1000, "bye", 3), 5);
  LB_CHECK(memcmp(b, "\x03\xe8" "bye", 5) == 0);
  LB_CHECK_EQ(lb_ws_check_close_payload(b, 5), 1000);
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 4999, NULL, 0), 2);
  LB_CHECK_EQ(lb_ws_build_close(b, 4, 1000, "bye", 3), LB_ENOSPACE);
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 1005, NULL, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 1000, "\xff", 1), LB_EUTF8);
  char reason[124];
  memset(reason, 'r', sizeof reason);
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 1000, reason, 123), 125);
  LB_CHECK_EQ(lb_ws_build_close(b, sizeof b, 1000, reason, 124), LB_EINVAL);
}

/* ---- handshake --------------------------------------------------------- */

static void test_accept_key_rfc_vector(void) {
  char out[28];
  LB_CHECK_EQ(lb_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 28);
  LB_CHECK(memcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28) == 0);
  char big[65];
  memset(big, 'A', sizeof big);
  LB_CHECK_EQ(lb_ws_accept_key(big, 65, out), LB_EINVAL);
  LB_CHECK_EQ(lb_ws_accept_key(big, 64, out), 28);
}

static void test_client_key_check(void) {
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24), 1);
  LB_CHECK_EQ(lb_ws_client_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24), 1);
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23), 0);    /* too short */
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25jZQ===", 25), 0);  /* too long */
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25jZQAA", 24), 0);   /* 18 bytes, no padding */
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25jZ===", 24), 0);   /* 15 bytes */
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25j-Q==", 24), 0);   /* URL alphabet */
  LB_CHECK_EQ(lb_ws_client_key_valid("dGhlIHNhbXBsZSBub25j Q==", 24), 0);   /* space */
  LB_CHECK_EQ(lb_ws_client_key_valid(NULL, 0), 0);
  char k1[24], k2[24];
  LB_CHECK_EQ(lb_ws_client_key(k1), 24);
  LB_CHECK_EQ(lb_ws_client_key(k2), 24);
  LB_CHECK_EQ(lb_ws_client_key_valid(k1, 24), 1);
  LB_CHECK(memcmp(k1, k2, 24) != 0);
}

int main(void) {
  LB_RUN(test_header_rfc_vectors_whole_and_prefixes);
  LB_RUN(test_header_masked_hello_unmasks);
  LB_RUN(test_header_rejects_named_defects);
  LB_RUN(test_header_errors_fail_early);
  LB_RUN(test_header_options);
  LB_RUN(test_close_code_for_errors);
  LB_RUN(test_build_header_vectors);
  LB_RUN(test_build_header_roundtrip_and_space);
  LB_RUN(test_build_header_rejects_misuse);
  LB_RUN(test_mask_matches_scalar_on_random_lengths_offsets);
  LB_RUN(test_mask_split_payload_continues_with_offset);
  LB_RUN(test_random_fills);
  LB_RUN(test_msg_fragmented_with_interleaved_control);
  LB_RUN(test_msg_rejects_named_defects);
  LB_RUN(test_msg_compressed_flag_and_limit);
  LB_RUN(test_utf8_valid_vectors);
  LB_RUN(test_utf8_rejects_named_defects);
  LB_RUN(test_utf8_state_is_sticky_and_fails_early);
  LB_RUN(test_utf8_matches_reference_on_random_text);
  LB_RUN(test_close_code_validity);
  LB_RUN(test_close_payload_check);
  LB_RUN(test_close_build);
  LB_RUN(test_accept_key_rfc_vector);
  LB_RUN(test_client_key_check);
  return LB_DONE();
}
