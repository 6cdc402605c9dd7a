#include "lb_test.h"
#include "lowbit/lb_frame.h"
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

/* Internal paths of lb_frame.c, compared with each other here. */
uint32_t lb__crc32c_sw(uint32_t crc, const void *buf, size_t n);
#if defined(__x86_64__)
uint32_t lb__crc32c_hw(uint32_t crc, const void *buf, size_t n);
#endif
/* The field-by-field decoder the compiled one is the fast path of. */
ptrdiff_t lb__frame_decode_ref(const lb_frame_format *f, const uint8_t *src,
                               size_t n, uint64_t *vals, size_t *payload_off,
                               size_t *payload_len);

static const char CHECK[] = "123456789";

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng_state); }
static void fill_random(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

/* ---- checksums ---------------------------------------------------------- */

static void test_check_values_direct(void) {
  LB_CHECK_EQ(lb_crc32_update(0, CHECK, 9), 0xCBF43926u);
  LB_CHECK_EQ(lb_crc32c_update(0, CHECK, 9), 0xE3069283u);
  LB_CHECK(lb_crc64_iso_update(0, CHECK, 9) == 0xB90956C775A41001ull);
  LB_CHECK(lb_crc64_ecma_update(0, CHECK, 9) == 0x995DC9BBDF1939FAull);
  LB_CHECK_EQ(lb_adler32_update(1, CHECK, 9), 0x091E01DEu);
  LB_CHECK_EQ(lb_crc16_modbus_update(0xFFFF, CHECK, 9), 0x4B37);
  LB_CHECK_EQ(lb_crc16_ccitt_false_update(0xFFFF, CHECK, 9), 0x29B1);
  LB_CHECK_EQ(lb_crc16_kermit_update(0, CHECK, 9), 0x2189);
  LB_CHECK_EQ(lb_crc16_xmodem_update(0, CHECK, 9), 0x31C3);
}

static void test_check_values_by_kind(void) {
  static const struct { int kind; int width; uint64_t check; } v[] = {
    {LB_FRAME_CK_CRC32, 4, 0xCBF43926u},
    {LB_FRAME_CK_CRC32C, 4, 0xE3069283u},
    {LB_FRAME_CK_CRC64_ISO, 8, 0xB90956C775A41001ull},
    {LB_FRAME_CK_CRC64_ECMA, 8, 0x995DC9BBDF1939FAull},
    {LB_FRAME_CK_ADLER32, 4, 0x091E01DEu},
    {LB_FRAME_CK_CRC16_MODBUS, 2, 0x4B37},
    {LB_FRAME_CK_CRC16_CCITT_FALSE, 2, 0x29B1},
    {LB_FRAME_CK_CRC16_KERMIT, 2, 0x2189},
    {LB_FRAME_CK_CRC16_XMODEM, 2, 0x31C3},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    LB_CHECK_EQ(lb_frame_checksum_width(v[i].kind), v[i].width);
    LB_CHECK(lb_frame_checksum(v[i].kind, CHECK, 9) == v[i].check);
  }
  LB_CHECK_EQ(lb_frame_checksum_width(LB_FRAME_CK_NONE), 0);
  LB_CHECK_EQ(lb_frame_checksum_width(LB_FRAME_CK_COUNT), LB_EINVAL);
  LB_CHECK_EQ(lb_frame_checksum_width(-1), LB_EINVAL);
  LB_CHECK(lb_frame_checksum(99, CHECK, 9) == 0);
}

static void test_checksums_of_empty_input(void) {
  /* The empty input gives the starting value back, with NULL allowed. */
  for (int k = 1; k < LB_FRAME_CK_COUNT; k++) {
    uint64_t init = lb_frame_checksum_init(k);
    LB_CHECK(lb_frame_checksum_update(k, init, NULL, 0) == init);
  }
  LB_CHECK_EQ(lb_crc32c_update(0, NULL, 0), 0);
}

static void test_known_vectors(void) {
  /* RFC 3720 B.4 (iSCSI) CRC-32C vectors. */
  uint8_t buf[32];
  memset(buf, 0, sizeof buf);
  LB_CHECK_EQ(lb_crc32c_update(0, buf, 32), 0x8A9136AAu);
  memset(buf, 0xFF, sizeof buf);
  LB_CHECK_EQ(lb_crc32c_update(0, buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  LB_CHECK_EQ(lb_crc32c_update(0, buf, 32), 0x46DD794Eu);
  /* Modbus RTU "read holding registers" request 01 03 00 00 00 0A carries
   * CRC 0xCDC5, sent low byte first (C5 CD). */
  static const uint8_t modbus[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
  LB_CHECK_EQ(lb_crc16_modbus_update(0xFFFF, modbus, sizeof modbus), 0xCDC5);
}

static void test_incremental_equals_oneshot(void) {
  uint8_t data[1500];
  fill_random(data, sizeof data);
  for (int k = 1; k < LB_FRAME_CK_COUNT; k++) {
    uint64_t whole = lb_frame_checksum(k, data, sizeof data);
    for (size_t cut = 0; cut <= sizeof data; cut += 7) {
      uint64_t c = lb_frame_checksum_init(k);
      c = lb_frame_checksum_update(k, c, data, cut);
      c = lb_frame_checksum_update(k, c, data + cut, sizeof data - cut);
      LB_CHECK(c == whole);
    }
    uint64_t c = lb_frame_checksum_init(k);
    for (size_t i = 0; i < sizeof data; i++) c = lb_frame_checksum_update(k, c, data + i, 1);
    LB_CHECK(c == whole);
  }
}

static void test_crc32_matches_zlib(void) {
  /* Short inputs use lb_frame's table, long ones zlib: every length around
   * the switch, at every alignment, and chained from a non-zero CRC. */
  static uint8_t data[1100];
  fill_random(data, sizeof data);
  for (size_t len = 0; len <= 1090; len++) {
    size_t mis = len % 8;
    LB_CHECK_EQ(lb_crc32_update(0, data + mis, len), crc32(0, data + mis, (uInt)len));
    LB_CHECK_EQ(lb_crc32_update(0x12345678u, data + mis, len),
                crc32(0x12345678u, data + mis, (uInt)len));
  }
  LB_CHECK_EQ(lb_adler32_update(1, data, sizeof data), adler32(1, data, sizeof data));
}

static void test_crc32c_hardware_vs_table(void) {
  static uint8_t data[300 + 8];
  static uint8_t big[100000 + 8];
  fill_random(data, sizeof data);
  fill_random(big, sizeof big);
  for (size_t len = 0; len <= 300; len++) {
    for (size_t mis = 0; mis < 8; mis++) {
      uint32_t sw = lb__crc32c_sw(0, data + mis, len);
      LB_CHECK_EQ(lb_crc32c_update(0, data + mis, len), sw);
#if defined(__x86_64__)
      if (lb_crc32c_hardware()) LB_CHECK_EQ(lb__crc32c_hw(0, data + mis, len), sw);
#endif
    }
  }
  /* Long inputs take the three-stream path (>= 768 bytes): every length
   * around the block boundaries, odd alignments, and a chained call. */
  static const size_t lens[] = {767, 768, 769, 775, 776, 1535, 1536, 1537, 2304,
                                4096, 4099, 65536, 100000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (size_t mis = 0; mis < 8; mis += 3) {
      uint32_t sw = lb__crc32c_sw(0, big + mis, lens[i]);
      LB_CHECK_EQ(lb_crc32c_update(0, big + mis, lens[i]), sw);
      uint32_t half = lb_crc32c_update(0, big + mis, lens[i] / 2);
      LB_CHECK_EQ(lb_crc32c_update(half, big + mis + lens[i] / 2, lens[i] - lens[i] / 2), sw);
    }
  }
  printf("  crc32c hardware path: %s\n", lb_crc32c_hardware() ? "sse4.2" : "table only");
}

/* ---- format validation -------------------------------------------------- */

static lb_frame_format base_format(void) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  f.prefix[0] = 0xAA;
  f.prefix[1] = 0x55;
  f.prefix_len = 2;
  f.nfields = 4;
  f.fields[0] = LB_FRAME_U8;      /* version */
  f.fields[1] = LB_FRAME_U8;      /* type */
  f.fields[2] = LB_FRAME_U8;      /* flags */
  f.fields[3] = LB_FRAME_LEN16LE; /* length */
  f.checksum = LB_FRAME_CK_CRC32;
  f.max_payload = 64 * 1024 - 1;
  return f;
}

static void expect_invalid(const lb_frame_format *f, const char *why, int idx) {
  int got_idx = 99;
  LB_CHECK_EQ(lb_frame_validate(f), LB_EFORMAT);
  const char *r = lb_frame_validate_reason(f, &got_idx);
  LB_CHECK(r != NULL && strcmp(r, why) == 0);
  LB_CHECK_EQ(got_idx, idx);
  uint8_t buf[64];
  LB_CHECK_EQ(lb_frame_encode(f, NULL, NULL, 0, buf, sizeof buf), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_decode(f, buf, sizeof buf, NULL, NULL, NULL), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_encoded_len(f, 0), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_overhead(f), LB_EFORMAT);
}

static void test_valid_format(void) {
  lb_frame_format f = base_format();
  int idx = 99;
  LB_CHECK_EQ(lb_frame_validate(&f), 0);
  LB_CHECK(lb_frame_validate_reason(&f, &idx) == NULL);
  LB_CHECK_EQ(idx, -1);
  LB_CHECK_EQ(lb_frame_overhead(&f), 2 + 5 + 4);
  LB_CHECK_EQ(lb_frame_encoded_len(&f, 10), 21);
  LB_CHECK_EQ(lb_frame_encoded_len(&f, 65536), LB_ETOOLARGE);
}

static void test_invalid_no_length_field(void) {
  lb_frame_format f = base_format();
  f.fields[3] = LB_FRAME_U16LE;
  expect_invalid(&f, "no payload-length field", -1);
  f.nfields = 0;
  expect_invalid(&f, "no payload-length field", -1);
}

static void test_invalid_two_length_fields(void) {
  lb_frame_format f = base_format();
  f.fields[1] = LB_FRAME_LEN8;
  expect_invalid(&f, "two payload-length fields", 3);
}

static void test_invalid_unknown_field_kind(void) {
  lb_frame_format f = base_format();
  f.fields[2] = 0;
  expect_invalid(&f, "unknown field kind", 2);
  f.fields[2] = LB_FRAME_LEN32LE + 1;
  expect_invalid(&f, "unknown field kind", 2);
}

static void test_invalid_prefix_too_long(void) {
  lb_frame_format f = base_format();
  f.prefix_len = 17;
  expect_invalid(&f, "prefix longer than 16 bytes", -1);
  f.prefix_len = 16;
  LB_CHECK_EQ(lb_frame_validate(&f), 0);
}

static void test_invalid_max_payload_exceeds_length_field(void) {
  lb_frame_format f = base_format();
  f.max_payload = 65536;
  expect_invalid(&f, "max_payload larger than the length field can express", 3);
  f.fields[3] = LB_FRAME_LEN8;
  f.max_payload = 256;
  expect_invalid(&f, "max_payload larger than the length field can express", 3);
  f.max_payload = 255;
  LB_CHECK_EQ(lb_frame_validate(&f), 0);
  f.fields[3] = LB_FRAME_LEN32BE;
  f.max_payload = 0x100000000ull;
  expect_invalid(&f, "max_payload larger than the length field can express", 3);
}

static void test_invalid_too_many_fields(void) {
  lb_frame_format f = base_format();
  f.nfields = 17;
  expect_invalid(&f, "more than 16 header fields", -1);
  for (int i = 0; i < 16; i++) f.fields[i] = LB_FRAME_U64BE;
  f.fields[15] = LB_FRAME_LEN32LE;
  f.nfields = 16;
  LB_CHECK_EQ(lb_frame_validate(&f), 0);
  LB_CHECK_EQ(lb_frame_overhead(&f), 2 + 15 * 8 + 4 + 4);
}

static void test_invalid_checksum_kind_and_order(void) {
  lb_frame_format f = base_format();
  f.checksum = LB_FRAME_CK_COUNT;
  expect_invalid(&f, "unknown checksum kind", -1);
  f = base_format();
  f.checksum_order = 2;
  expect_invalid(&f, "unknown checksum byte order", -1);
  int idx = 0;
  LB_CHECK(strcmp(lb_frame_validate_reason(NULL, &idx), "format is NULL") == 0);
  LB_CHECK_EQ(lb_frame_validate(NULL), LB_EFORMAT);
}

/* ---- encode / decode ---------------------------------------------------- */

static void test_encode_known_bytes(void) {
  /* The seed's example format: AA 55 | version type flags | len16le |
   * payload | CRC-32 big-endian over header + payload. */
  lb_frame_format f = base_format();
  uint64_t vals[4] = {1, 0x42, 0, 0};
  uint8_t out[64];
  ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"hello", 5, out, sizeof out);
  LB_CHECK_EQ(r, 2 + 5 + 5 + 4);
  static const uint8_t head[] = {0xAA, 0x55, 0x01, 0x42, 0x00, 0x05, 0x00,
                                 'h', 'e', 'l', 'l', 'o'};
  LB_CHECK(memcmp(out, head, sizeof head) == 0);
  uint32_t crc = lb_crc32_update(0, out + 2, 10);
  LB_CHECK_EQ(out[12], crc >> 24);
  LB_CHECK_EQ(out[13], (crc >> 16) & 0xFF);
  LB_CHECK_EQ(out[14], (crc >> 8) & 0xFF);
  LB_CHECK_EQ(out[15], crc & 0xFF);

  uint64_t got[4];
  size_t off = 0, len = 0;
  LB_CHECK_EQ(lb_frame_decode(&f, out, (size_t)r, got, &off, &len), r);
  LB_CHECK_EQ(got[0], 1);
  LB_CHECK_EQ(got[1], 0x42);
  LB_CHECK_EQ(got[2], 0);
  LB_CHECK_EQ(got[3], 5);
  LB_CHECK_EQ(off, 7);
  LB_CHECK_MEM(out + off, "hello", len);
}

static void test_modbus_style_little_endian_checksum(void) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  f.nfields = 2;
  f.fields[0] = LB_FRAME_U8;   /* address */
  f.fields[1] = LB_FRAME_LEN8; /* byte count */
  f.checksum = LB_FRAME_CK_CRC16_MODBUS;
  f.checksum_order = LB_FRAME_LITTLE_ENDIAN;
  uint64_t vals[2] = {0x11, 0};
  uint8_t out[16];
  ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"\x01\x02", 2, out, sizeof out);
  LB_CHECK_EQ(r, 6);
  uint16_t crc = lb_crc16_modbus_update(0xFFFF, out, 4);
  LB_CHECK_EQ(out[4], crc & 0xFF); /* low byte first */
  LB_CHECK_EQ(out[5], crc >> 8);
  LB_CHECK_EQ(lb_frame_decode(&f, out, 6, NULL, NULL, NULL), 6);
  /* Read as big-endian the same bytes are wrong (unless symmetric). */
  f.checksum_order = LB_FRAME_BIG_ENDIAN;
  if ((crc & 0xFF) != (crc >> 8)) LB_CHECK_EQ(lb_frame_decode(&f, out, 6, NULL, NULL, NULL), LB_ECHECKSUM);
}

/* Encodes, checks whole decode, every truncated prefix, trailing bytes. */
static void roundtrip(const lb_frame_format *f, const uint64_t *vals,
                      const uint8_t *payload, size_t n) {
  size_t cap = (size_t)lb_frame_encoded_len(f, n) + 3;
  uint8_t *buf = malloc(cap);
  ptrdiff_t r = lb_frame_encode(f, vals, payload, n, buf, cap);
  LB_CHECK_EQ(r, lb_frame_encoded_len(f, n));
  if (r < 0) { free(buf); return; }
  uint64_t got[LB_FRAME_MAX_FIELDS];
  size_t off = 0, len = 0;
  LB_CHECK_EQ(lb_frame_decode(f, buf, (size_t)r, got, &off, &len), r);
  LB_CHECK_EQ(len, n);
  LB_CHECK(n == 0 || memcmp(buf + off, payload, n) == 0);
  for (uint32_t i = 0; i < f->nfields; i++) {
    uint32_t k = f->fields[i];
    if (k >= LB_FRAME_LEN8) LB_CHECK_EQ(got[i], n);
    else LB_CHECK(got[i] == vals[i]);
  }
  /* Trailing bytes (the next frame) are not consumed. */
  buf[r] = 0xEE; buf[r + 1] = 0xEE; buf[r + 2] = 0xEE;
  LB_CHECK_EQ(lb_frame_decode(f, buf, (size_t)r + 3, NULL, NULL, NULL), r);
  /* Every truncated prefix asks for more input, up to one byte at a time
   * for small frames; larger ones are sampled. */
  size_t step = r > 4096 ? 97 : 1;
  for (size_t k = 0; k < (size_t)r; k += step)
    LB_CHECK_EQ(lb_frame_decode(f, buf, k, got, &off, &len), LB_EAGAIN);
  LB_CHECK_EQ(lb_frame_decode(f, buf, (size_t)r - 1, NULL, NULL, NULL), LB_EAGAIN);
  free(buf);
}

static void test_roundtrip_every_header_field_kind(void) {
  static const uint64_t maxes[] = {0, 0xFF, 0xFFFF, 0xFFFF, 0xFFFFFFFFu, 0xFFFFFFFFu,
                                   UINT64_MAX, UINT64_MAX};
  for (uint32_t k = LB_FRAME_U8; k <= LB_FRAME_U64LE; k++) {
    lb_frame_format f = base_format();
    f.nfields = 3;
    f.fields[0] = k;
    f.fields[1] = LB_FRAME_LEN16BE;
    f.fields[2] = k;
    uint64_t vals[3] = {maxes[k], 0, 0x0102030405060708ull & maxes[k]};
    roundtrip(&f, vals, (const uint8_t *)"payload", 7);
    vals[0] = 0;
    vals[2] = 1;
    roundtrip(&f, vals, NULL, 0);
    /* A value one above the field's range is refused. */
    if (maxes[k] != UINT64_MAX) {
      uint8_t out[64];
      vals[2] = maxes[k] + 1;
      LB_CHECK_EQ(lb_frame_encode(&f, vals, NULL, 0, out, sizeof out), LB_EINVAL);
    }
  }
}

static void test_byte_order_of_fields(void) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  f.nfields = 5;
  f.fields[0] = LB_FRAME_U16BE;
  f.fields[1] = LB_FRAME_U16LE;
  f.fields[2] = LB_FRAME_U32BE;
  f.fields[3] = LB_FRAME_U64LE;
  f.fields[4] = LB_FRAME_LEN32LE;
  uint64_t vals[5] = {0x0102, 0x0102, 0x01020304, 0x0102030405060708ull, 0};
  uint8_t out[64];
  LB_CHECK_EQ(lb_frame_encode(&f, vals, (const uint8_t *)"x", 1, out, sizeof out), 21);
  static const uint8_t want[] = {1, 2, 2, 1, 1, 2, 3, 4, 8, 7, 6, 5, 4, 3, 2, 1,
                                 1, 0, 0, 0, 'x'};
  LB_CHECK(memcmp(out, want, sizeof want) == 0);
}

static void test_roundtrip_every_length_field_kind(void) {
  static uint8_t payload[70000];
  fill_random(payload, sizeof payload);
  for (uint32_t k = LB_FRAME_LEN8; k <= LB_FRAME_LEN32LE; k++) {
    lb_frame_format f = base_format();
    f.fields[3] = k;
    f.max_payload = 0; /* the field's own range */
    uint64_t vals[4] = {1, 2, 3, 0};
    static const size_t sizes[] = {0, 1, 255, 256, 65535, 65536, 70000};
    uint64_t fmax = k == LB_FRAME_LEN8 ? 255 : (k <= LB_FRAME_LEN16LE ? 65535 : 0xFFFFFFFFu);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      if (sizes[i] <= fmax) {
        roundtrip(&f, vals, payload, sizes[i]);
      } else {
        uint8_t out[16];
        LB_CHECK_EQ(lb_frame_encode(&f, vals, payload, sizes[i], out, sizeof out), LB_ETOOLARGE);
        LB_CHECK_EQ(lb_frame_encoded_len(&f, sizes[i]), LB_ETOOLARGE);
      }
    }
  }
}

static void test_roundtrip_every_checksum_kind_and_order(void) {
  uint8_t payload[300];
  fill_random(payload, sizeof payload);
  for (int ck = 0; ck < LB_FRAME_CK_COUNT; ck++) {
    for (uint32_t order = 0; order < 2; order++) {
      lb_frame_format f = base_format();
      f.checksum = (uint32_t)ck;
      f.checksum_order = order;
      uint64_t vals[4] = {9, 8, 7, 0};
      roundtrip(&f, vals, payload, sizeof payload);
      roundtrip(&f, vals, payload, 0);
      LB_CHECK_EQ(lb_frame_overhead(&f), 7 + lb_frame_checksum_width(ck));
    }
  }
}

static void test_roundtrip_empty_prefix_and_long_prefix(void) {
  lb_frame_format f = base_format();
  uint64_t vals[4] = {1, 2, 3, 0};
  f.prefix_len = 0;
  roundtrip(&f, vals, (const uint8_t *)"abc", 3);
  f.prefix_len = 16;
  for (int i = 0; i < 16; i++) f.prefix[i] = (uint8_t)(0xF0 + i);
  roundtrip(&f, vals, (const uint8_t *)"abc", 3);
}

static void test_encode_errors(void) {
  lb_frame_format f = base_format();
  f.max_payload = 10;
  uint64_t vals[4] = {1, 2, 3, 0};
  uint8_t out[64];
  LB_CHECK_EQ(lb_frame_encode(&f, vals, out, 11, out, sizeof out), LB_ETOOLARGE);
  LB_CHECK_EQ(lb_frame_encode(&f, vals, (const uint8_t *)"0123456789", 10, out, 20), LB_ENOSPACE);
  LB_CHECK_EQ(lb_frame_encode(&f, vals, (const uint8_t *)"0123456789", 10, out, 21), 21);
  vals[1] = 256;
  LB_CHECK_EQ(lb_frame_encode(&f, vals, NULL, 0, out, sizeof out), LB_EINVAL);
  /* The length field's entry in vals is ignored, whatever it holds. */
  vals[1] = 2;
  vals[3] = UINT64_MAX;
  LB_CHECK_EQ(lb_frame_encode(&f, vals, NULL, 0, out, sizeof out), 11);
  /* vals may be NULL: every header value is 0 then. */
  LB_CHECK_EQ(lb_frame_encode(&f, NULL, NULL, 0, out, sizeof out), 11);
  uint64_t got[4] = {9, 9, 9, 9};
  LB_CHECK_EQ(lb_frame_decode(&f, out, 11, got, NULL, NULL), 11);
  LB_CHECK(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 0);
}

static void test_encode_in_place(void) {
  /* The payload may already sit in dst where it belongs. */
  lb_frame_format f = base_format();
  uint64_t vals[4] = {1, 2, 3, 0};
  uint8_t ref[64], buf[64];
  ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"in place", 8, ref, sizeof ref);
  memcpy(buf + 7, "in place", 8);
  LB_CHECK_EQ(lb_frame_encode(&f, vals, buf + 7, 8, buf, sizeof buf), r);
  LB_CHECK(memcmp(buf, ref, (size_t)r) == 0);
}

static void test_back_to_back_frames(void) {
  lb_frame_format f = base_format();
  uint8_t stream[256];
  size_t n = 0;
  for (int i = 0; i < 5; i++) {
    uint64_t vals[4] = {1, (uint64_t)i, 0, 0};
    ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"abcdefgh", (size_t)i, stream + n,
                                  sizeof stream - n);
    LB_CHECK(r > 0);
    n += (size_t)r;
  }
  size_t pos = 0;
  for (int i = 0; i < 5; i++) {
    uint64_t got[4];
    size_t off, len;
    ptrdiff_t r = lb_frame_decode(&f, stream + pos, n - pos, got, &off, &len);
    LB_CHECK(r > 0);
    if (r <= 0) return;
    LB_CHECK_EQ(got[1], i);
    LB_CHECK_EQ(len, i);
    pos += (size_t)r;
  }
  LB_CHECK_EQ(pos, n);
  LB_CHECK_EQ(lb_frame_decode(&f, stream + pos, 0, NULL, NULL, NULL), LB_EAGAIN);
}

static void test_corrupted_checksum(void) {
  lb_frame_format f = base_format();
  uint64_t vals[4] = {1, 2, 3, 0};
  uint8_t buf[64];
  ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"payload!", 8, buf, sizeof buf);
  LB_CHECK_EQ(r, 19);
  /* Any flipped bit in the header (other than the length), the payload or
   * the checksum itself is caught. */
  for (ptrdiff_t i = 2; i < r; i++) {
    if (i == 5 || i == 6) continue; /* the length field: see below */
    for (int bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1u << bit);
      LB_CHECK_EQ(lb_frame_decode(&f, buf, (size_t)r, NULL, NULL, NULL), LB_ECHECKSUM);
      buf[i] ^= (uint8_t)(1u << bit);
    }
  }
  /* A shorter declared length moves the checksum into the payload: it is
   * checked over the wrong bytes and fails. */
  buf[5] = 7;
  LB_CHECK_EQ(lb_frame_decode(&f, buf, (size_t)r, NULL, NULL, NULL), LB_ECHECKSUM);
  buf[5] = 8;
  LB_CHECK_EQ(lb_frame_decode(&f, buf, (size_t)r, NULL, NULL, NULL), r);
}

static void test_oversize_length_rejected_before_payload(void) {
  lb_frame_format f = base_format();
  f.max_payload = 100;
  /* AA 55 | 01 02 03 | len 101 LE: the whole header has arrived and
   * nothing of the payload. */
  static const uint8_t hdr[] = {0xAA, 0x55, 0x01, 0x02, 0x03, 101, 0};
  LB_CHECK_EQ(lb_frame_decode(&f, hdr, sizeof hdr, NULL, NULL, NULL), LB_ETOOLARGE);
  LB_CHECK_EQ(lb_frame_decode(&f, hdr, sizeof hdr - 1, NULL, NULL, NULL), LB_EAGAIN);
  static const uint8_t ok[] = {0xAA, 0x55, 0x01, 0x02, 0x03, 100, 0};
  LB_CHECK_EQ(lb_frame_decode(&f, ok, sizeof ok, NULL, NULL, NULL), LB_EAGAIN);

  /* With the length field first, the check happens before the other header
   * fields have arrived. */
  lb_frame_format g = base_format();
  g.fields[0] = LB_FRAME_LEN32BE;
  g.fields[3] = LB_FRAME_U16LE;
  g.max_payload = 1 << 20;
  static const uint8_t huge[] = {0xAA, 0x55, 0xFF, 0xFF, 0xFF, 0xFF};
  LB_CHECK_EQ(lb_frame_decode(&g, huge, sizeof huge, NULL, NULL, NULL), LB_ETOOLARGE);
  LB_CHECK_EQ(lb_frame_decode(&g, huge, 5, NULL, NULL, NULL), LB_EAGAIN);
}

static void test_bad_prefix(void) {
  lb_frame_format f = base_format();
  static const uint8_t wrong_first[] = {0xAB};
  static const uint8_t wrong_second[] = {0xAA, 0x56, 1, 2, 3};
  LB_CHECK_EQ(lb_frame_decode(&f, wrong_first, 1, NULL, NULL, NULL), LB_EPREFIX);
  LB_CHECK_EQ(lb_frame_decode(&f, wrong_second, 1, NULL, NULL, NULL), LB_EAGAIN);
  LB_CHECK_EQ(lb_frame_decode(&f, wrong_second, 2, NULL, NULL, NULL), LB_EPREFIX);
  LB_CHECK_EQ(lb_frame_decode(&f, wrong_second, 5, NULL, NULL, NULL), LB_EPREFIX);
  LB_CHECK_EQ(lb_frame_decode(&f, NULL, 0, NULL, NULL, NULL), LB_EAGAIN);
}

static void test_find_prefix(void) {
  lb_frame_format f = base_format();
  static const uint8_t s1[] = {1, 2, 0xAA, 3, 0xAA, 0x55, 9};
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s1, sizeof s1), 4);
  static const uint8_t s2[] = {1, 2, 3, 0xAA}; /* partial match at the end */
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s2, sizeof s2), 3);
  static const uint8_t s3[] = {1, 2, 3, 4};
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s3, sizeof s3), 4);
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s3, 0), 0);
  static const uint8_t s4[] = {0xAA, 0xAA, 0x55};
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s4, sizeof s4), 1);
  f.prefix_len = 0;
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s3, sizeof s3), 0);
  f.prefix_len = 99; /* invalid format: nothing to find */
  LB_CHECK_EQ(lb_frame_find_prefix(&f, s3, sizeof s3), 4);
}

static void test_resync_after_garbage(void) {
  /* garbage | frame A | garbage (with a false prefix start) | frame B |
   * a corrupted frame | frame C: a decode loop that resyncs on EPREFIX and
   * skips one byte on ECHECKSUM recovers A, B and C. */
  lb_frame_format f = base_format();
  /* A small limit turns false starts inside the junk into LB_ETOOLARGE at
   * once instead of a wait for a huge payload. */
  f.max_payload = 64;
  uint8_t s[256];
  size_t n = 0;
  uint64_t vals[4] = {0, 0, 0, 0};
  static const uint8_t junk1[] = {0x00, 0x13, 0xAA, 0x00};
  memcpy(s + n, junk1, sizeof junk1); n += sizeof junk1;
  vals[1] = 'A';
  n += (size_t)lb_frame_encode(&f, vals, (const uint8_t *)"first", 5, s + n, sizeof s - n);
  static const uint8_t junk2[] = {0x55, 0xAA, 0x55, 0x01};
  memcpy(s + n, junk2, sizeof junk2); n += sizeof junk2;
  vals[1] = 'B';
  n += (size_t)lb_frame_encode(&f, vals, (const uint8_t *)"second", 6, s + n, sizeof s - n);
  size_t bad = n;
  vals[1] = 'X';
  n += (size_t)lb_frame_encode(&f, vals, (const uint8_t *)"broken", 6, s + n, sizeof s - n);
  s[bad + 9] ^= 1;
  vals[1] = 'C';
  n += (size_t)lb_frame_encode(&f, vals, (const uint8_t *)"third", 5, s + n, sizeof s - n);

  char seen[8];
  int nseen = 0;
  size_t pos = 0;
  int guard = 0;
  while (pos < n && guard++ < 100) {
    uint64_t got[4];
    ptrdiff_t r = lb_frame_decode(&f, s + pos, n - pos, got, NULL, NULL);
    if (r > 0) {
      if (nseen < 8) seen[nseen++] = (char)got[1];
      pos += (size_t)r;
    } else if (r == LB_EPREFIX) {
      size_t skip = lb_frame_find_prefix(&f, s + pos, n - pos);
      LB_CHECK(skip > 0);
      pos += skip;
    } else if (r == LB_ECHECKSUM || r == LB_ETOOLARGE) {
      pos += 1 + lb_frame_find_prefix(&f, s + pos + 1, n - pos - 1);
    } else {
      break; /* EAGAIN: a false start at the end */
    }
  }
  LB_CHECK_EQ(nseen, 3);
  LB_CHECK(nseen == 3 && memcmp(seen, "ABC", 3) == 0);
  LB_CHECK_EQ(pos, n);
}

static void test_decode_results_are_split_proof(void) {
  /* For random inputs built from valid frames with random corruption, the
   * result on any prefix is EAGAIN or the whole input's result. */
  lb_frame_format f = base_format();
  f.max_payload = 40;
  uint8_t buf[128];
  for (int iter = 0; iter < 2000; iter++) {
    uint64_t vals[4] = {rnd() & 0xFF, rnd() & 0xFF, rnd() & 0xFF, 0};
    uint8_t payload[40];
    fill_random(payload, sizeof payload);
    size_t plen = rnd() % 41;
    ptrdiff_t r = lb_frame_encode(&f, vals, payload, plen, buf, sizeof buf);
    LB_CHECK(r > 0);
    if (r <= 0) return;
    size_t n = (size_t)r;
    if (iter % 2) buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
    ptrdiff_t whole = lb_frame_decode(&f, buf, n, NULL, NULL, NULL);
    for (size_t k = 0; k < n; k++) {
      ptrdiff_t part = lb_frame_decode(&f, buf, k, NULL, NULL, NULL);
      if (whole >= 0) LB_CHECK_EQ(part, LB_EAGAIN); /* k < n == whole */
      else LB_CHECK(part == LB_EAGAIN || part == whole);
    }
  }
}

/* ---- batch decode ------------------------------------------------------- */

/* The reference for lb_frame_decode_batch: lb_frame_decode called frame
 * after frame. Runs both on src[0..n) with the given max_frames and checks
 * that they agree on every frame, its values and the reason they stop. */
#define BATCH_MAX 64
static void check_batch(const lb_frame_format *f, const uint8_t *src, size_t n,
                        size_t max_frames) {
  lb_frame_span spans[BATCH_MAX];
  uint64_t vals[BATCH_MAX * LB_FRAME_MAX_FIELDS];
  size_t count = 99;
  int stop = 99;
  if (max_frames > BATCH_MAX) max_frames = BATCH_MAX;
  ptrdiff_t used = lb_frame_decode_batch(f, src, n, max_frames, spans, vals, &count, &stop);
  LB_CHECK(used >= 0 && (size_t)used <= n);
  LB_CHECK(count <= max_frames);
  if (used < 0 || count > max_frames) return;
  size_t pos = 0, k = 0;
  int want_stop = 0;
  while (k < max_frames) {
    uint64_t v[LB_FRAME_MAX_FIELDS];
    size_t off = 0, len = 0;
    ptrdiff_t r = lb_frame_decode(f, src + pos, n - pos, v, &off, &len);
    if (r < 0) { want_stop = (int)r; break; }
    LB_CHECK(k < count);
    if (k >= count) return;
    LB_CHECK_EQ(spans[k].start, pos);
    LB_CHECK_EQ(spans[k].len, (size_t)r);
    LB_CHECK_EQ(spans[k].payload_off, pos + off);
    LB_CHECK_EQ(spans[k].payload_len, len);
    LB_CHECK(memcmp(vals + k * f->nfields, v, f->nfields * sizeof v[0]) == 0);
    pos += (size_t)r;
    k++;
  }
  LB_CHECK_EQ(count, k);
  LB_CHECK_EQ((size_t)used, pos);
  LB_CHECK_EQ(stop, want_stop);
  /* Without the output arrays: the same count, bytes and stop. */
  size_t count2 = 99;
  int stop2 = 99;
  LB_CHECK_EQ(lb_frame_decode_batch(f, src, n, max_frames, NULL, NULL, &count2, &stop2), used);
  LB_CHECK_EQ(count2, count);
  LB_CHECK_EQ(stop2, stop);
}

/* Formats that exercise the batch loop's paths: prefixes of 0, 2 and more
 * than 8 bytes; 8-, 16-, 32- and 64-bit fields in both orders; frames
 * shorter than 8 bytes past their header (the byte-wise path). */
static lb_frame_format batch_format(int which) {
  lb_frame_format f = base_format();
  switch (which) {
  case 0: break;
  case 1: /* no prefix, no checksum, 1-byte length: tiny frames */
    memset(&f, 0, sizeof f);
    f.nfields = 1;
    f.fields[0] = LB_FRAME_LEN8;
    break;
  case 2: /* a 12-byte prefix and wide fields of both orders */
    memcpy(f.prefix, "WIREFRAME-v1", 12);
    f.prefix_len = 12;
    f.nfields = 5;
    f.fields[0] = LB_FRAME_U64BE; f.fields[1] = LB_FRAME_U64LE;
    f.fields[2] = LB_FRAME_U32BE; f.fields[3] = LB_FRAME_LEN32BE;
    f.fields[4] = LB_FRAME_U16LE;
    f.checksum = LB_FRAME_CK_CRC64_ECMA;
    f.max_payload = 300;
    break;
  case 3: /* little-endian CRC-16 after a 16-bit big-endian length */
    memset(&f, 0, sizeof f);
    f.prefix[0] = 0x7E; f.prefix_len = 1;
    f.nfields = 3;
    f.fields[0] = LB_FRAME_U16BE; f.fields[1] = LB_FRAME_LEN16BE; f.fields[2] = LB_FRAME_U32LE;
    f.checksum = LB_FRAME_CK_CRC16_MODBUS;
    f.checksum_order = LB_FRAME_LITTLE_ENDIAN;
    f.max_payload = 600;
    break;
  default: /* CRC-32 over bodies past the table path's 512 bytes */
    f.max_payload = 2000;
    break;
  }
  return f;
}

/* Appends a frame with random header values and an n-byte random payload. */
static size_t put_random_frame(const lb_frame_format *f, uint8_t *dst, size_t cap, size_t n) {
  uint64_t vals[LB_FRAME_MAX_FIELDS];
  for (uint32_t i = 0; i < f->nfields; i++) {
    static const uint64_t mask[] = {0, 0xFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, ~0ull, ~0ull};
    uint32_t k = f->fields[i];
    vals[i] = k < 8 ? rnd() & mask[k] : 0;
  }
  uint8_t payload[2000];
  fill_random(payload, n);
  ptrdiff_t r = lb_frame_encode(f, vals, payload, n, dst, cap);
  LB_CHECK(r > 0);
  return r > 0 ? (size_t)r : 0;
}

static void test_batch_whole_buffer(void) {
  for (int which = 0; which < 5; which++) {
    lb_frame_format f = batch_format(which);
    uint8_t buf[16384];
    size_t n = 0;
    size_t maxp = which == 1 ? 255 : which == 4 ? 2000 : 300;
    for (int i = 0; i < 12; i++) {
      size_t plen = i % 3 == 0 ? rnd() % 4 : rnd() % (maxp + 1);
      n += put_random_frame(&f, buf + n, sizeof buf - n, plen);
    }
    size_t count = 0;
    int stop = 99;
    lb_frame_span spans[BATCH_MAX];
    LB_CHECK_EQ(lb_frame_decode_batch(&f, buf, n, BATCH_MAX, spans, NULL, &count, &stop),
                (ptrdiff_t)n);
    LB_CHECK_EQ(count, 12);
    LB_CHECK_EQ(stop, LB_EAGAIN);
    for (size_t max = 0; max <= 13; max++) check_batch(&f, buf, n, max);
  }
}

static void test_batch_fed_byte_by_byte(void) {
  /* Every prefix of a run of frames gives the frames complete in it, and
   * stops with EAGAIN at the first incomplete one. */
  for (int which = 0; which < 5; which++) {
    lb_frame_format f = batch_format(which);
    uint8_t buf[8192];
    size_t n = 0;
    for (int i = 0; i < 4; i++) n += put_random_frame(&f, buf + n, sizeof buf - n, which == 4 ? 600 : rnd() % 40);
    for (size_t k = 0; k <= n; k++) check_batch(&f, buf, k, BATCH_MAX);
  }
}

static void test_batch_stops_at_a_bad_frame(void) {
  lb_frame_format f = base_format();
  uint8_t buf[512];
  size_t n = 0, ends[4];
  for (int i = 0; i < 4; i++) {
    n += put_random_frame(&f, buf + n, sizeof buf - n, 20);
    ends[i] = n;
  }
  size_t count;
  int stop;
  /* A checksum error in frame 3: two frames, then the error at its start. */
  uint8_t bad[512];
  memcpy(bad, buf, n);
  bad[ends[1] + 9] ^= 0x10;
  LB_CHECK_EQ(lb_frame_decode_batch(&f, bad, n, BATCH_MAX, NULL, NULL, &count, &stop),
              (ptrdiff_t)ends[1]);
  LB_CHECK_EQ(count, 2);
  LB_CHECK_EQ(stop, LB_ECHECKSUM);
  check_batch(&f, bad, n, BATCH_MAX);
  /* A bad prefix byte in frame 2. */
  memcpy(bad, buf, n);
  bad[ends[0] + 1] = 0x00;
  LB_CHECK_EQ(lb_frame_decode_batch(&f, bad, n, BATCH_MAX, NULL, NULL, &count, &stop),
              (ptrdiff_t)ends[0]);
  LB_CHECK_EQ(count, 1);
  LB_CHECK_EQ(stop, LB_EPREFIX);
  /* An oversized length in frame 4 (the 16-bit length at header byte 3). */
  f.max_payload = 30;
  memcpy(bad, buf, n);
  bad[ends[2] + 5] = 31;
  LB_CHECK_EQ(lb_frame_decode_batch(&f, bad, n, BATCH_MAX, NULL, NULL, &count, &stop),
              (ptrdiff_t)ends[2]);
  LB_CHECK_EQ(count, 3);
  LB_CHECK_EQ(stop, LB_ETOOLARGE);
  check_batch(&f, bad, n, BATCH_MAX);
  /* Random corruption anywhere agrees with frame-by-frame decoding. */
  for (int iter = 0; iter < 500; iter++) {
    memcpy(bad, buf, n);
    bad[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
    check_batch(&f, bad, n, BATCH_MAX);
  }
}

static void test_batch_invalid_format_and_limits(void) {
  lb_frame_format f = base_format();
  f.nfields = 1;
  f.fields[0] = LB_FRAME_U8; /* no length field */
  uint8_t buf[16] = {0xAA, 0x55};
  size_t count = 5;
  int stop = 0;
  LB_CHECK_EQ(lb_frame_decode_batch(&f, buf, sizeof buf, 4, NULL, NULL, &count, &stop), LB_EFORMAT);
  LB_CHECK_EQ(count, 0);
  LB_CHECK_EQ(stop, LB_EFORMAT);
  f = base_format();
  /* max_frames 0 decodes nothing and says so with stop 0; an empty input
   * stops with EAGAIN; count and stop may be NULL. */
  LB_CHECK_EQ(lb_frame_decode_batch(&f, buf, sizeof buf, 0, NULL, NULL, &count, &stop), 0);
  LB_CHECK_EQ(count, 0);
  LB_CHECK_EQ(stop, 0);
  LB_CHECK_EQ(lb_frame_decode_batch(&f, buf, 0, 4, NULL, NULL, &count, &stop), 0);
  LB_CHECK_EQ(stop, LB_EAGAIN);
  LB_CHECK_EQ(lb_frame_decode_batch(&f, buf, 0, 4, NULL, NULL, NULL, NULL), 0);
}

/* ---- compiled formats --------------------------------------------------- */

/* The largest value a payload-length field kind holds. */
static uint64_t len_field_limit(uint32_t kind) {
  return kind == LB_FRAME_LEN8 ? 0xFF : kind <= LB_FRAME_LEN16LE ? 0xFFFF : 0xFFFFFFFFu;
}

/* A random format: valid most of the time (every field kind, prefix length,
 * checksum kind and order, limit), otherwise with one random defect. */
static lb_frame_format random_format(void) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  f.prefix_len = (uint32_t)(rnd() % 17);
  if (rnd() % 4 == 0) f.prefix_len = (uint32_t)(rnd() % 3);
  fill_random(f.prefix, f.prefix_len);
  if (f.prefix_len >= 2 && rnd() % 3 == 0) f.prefix[1] = f.prefix[0]; /* self-overlap */
  f.nfields = 1 + (uint32_t)(rnd() % (rnd() % 3 == 0 ? 16 : 5));
  uint32_t len_at = (uint32_t)(rnd() % f.nfields);
  for (uint32_t i = 0; i < f.nfields; i++)
    f.fields[i] = i == len_at ? LB_FRAME_LEN8 + (uint32_t)(rnd() % 5) : LB_FRAME_U8 + (uint32_t)(rnd() % 7);
  f.checksum = (uint32_t)(rnd() % LB_FRAME_CK_COUNT);
  f.checksum_order = (uint32_t)(rnd() % 2);
  uint64_t fmax = len_field_limit(f.fields[len_at]);
  switch (rnd() % 4) {
  case 0: f.max_payload = 0; break;
  case 1: f.max_payload = rnd() % 8; break;
  case 2: f.max_payload = rnd() % (fmax < 1200 ? fmax + 1 : 1200); break;
  default: f.max_payload = fmax < 1200 ? fmax : 1200; break;
  }
  if (rnd() % 8 == 0) { /* one defect (or, now and then, a harmless change) */
    switch (rnd() % 7) {
    case 0: f.prefix_len = 17 + (uint32_t)(rnd() % 3); break;
    case 1: f.nfields = 17; break;
    case 2: f.fields[rnd() % f.nfields] = (uint32_t)(rnd() % 2 ? 0 : 13 + rnd() % 3); break;
    case 3: f.fields[len_at] = LB_FRAME_U32LE; break;
    case 4: f.fields[(len_at + 1) % f.nfields] = LB_FRAME_LEN16BE; break;
    case 5: f.checksum = LB_FRAME_CK_COUNT + (uint32_t)(rnd() % 3); break;
    default: f.checksum_order = 2; break;
    }
  }
  return f;
}

/* Decodes s[0..n) (copied to a buffer of exactly n bytes, so that ASan
 * sees any read past the input) with the reference, lb_frame_decode and
 * lb_frame_decode_compiled, outputs pre-filled with a sentinel, and checks
 * that every result, value and untouched output is the same. */
static int decode_agrees(const lb_frame_format *f, const lb_frame_compiled *c,
                         const uint8_t *s, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  memcpy(b, s, n);
  uint64_t v[3][LB_FRAME_MAX_FIELDS + 1];
  size_t off[3], len[3];
  ptrdiff_t r[3];
  memset(v, 0x5A, sizeof v);
  off[0] = off[1] = off[2] = len[0] = len[1] = len[2] = 77;
  r[0] = lb__frame_decode_ref(f, b, n, v[0], &off[0], &len[0]);
  r[1] = lb_frame_decode(f, b, n, v[1], &off[1], &len[1]);
  r[2] = lb_frame_decode_compiled(c, b, n, v[2], &off[2], &len[2]);
  int same = 1;
  for (int i = 1; i < 3; i++) {
    LB_CHECK_EQ(r[i], r[0]);
    LB_CHECK_EQ(off[i], off[0]);
    LB_CHECK_EQ(len[i], len[0]);
    LB_CHECK(memcmp(v[i], v[0], sizeof v[0]) == 0);
    same &= r[i] == r[0] && off[i] == off[0] && len[i] == len[0] &&
            memcmp(v[i], v[0], sizeof v[0]) == 0;
  }
  /* Without the outputs: the same result. */
  LB_CHECK_EQ(lb_frame_decode(f, b, n, NULL, NULL, NULL), r[0]);
  LB_CHECK_EQ(lb_frame_decode_compiled(c, b, n, NULL, NULL, NULL), r[0]);
  free(b);
  return same;
}

/* The batch decoders agree with each other and with the reference called
 * frame after frame. */
static void batch_agrees(const lb_frame_format *f, const lb_frame_compiled *c,
                         const uint8_t *s, size_t n, size_t max_frames) {
  enum { M = 8 };
  lb_frame_span sp[2][M];
  uint64_t v[2][M * LB_FRAME_MAX_FIELDS];
  size_t count[2] = {99, 99};
  int stop[2] = {99, 99};
  if (max_frames > M) max_frames = M;
  memset(sp, 0x5A, sizeof sp);
  memset(v, 0x5A, sizeof v);
  uint8_t *b = malloc(n ? n : 1);
  memcpy(b, s, n);
  ptrdiff_t u0 = lb_frame_decode_batch(f, b, n, max_frames, sp[0], v[0], &count[0], &stop[0]);
  ptrdiff_t u1 = lb_frame_decode_batch_compiled(c, b, n, max_frames, sp[1], v[1], &count[1], &stop[1]);
  LB_CHECK_EQ(u1, u0);
  LB_CHECK_EQ(count[1], count[0]);
  LB_CHECK_EQ(stop[1], stop[0]);
  LB_CHECK(memcmp(sp[0], sp[1], sizeof sp[0]) == 0);
  LB_CHECK(memcmp(v[0], v[1], sizeof v[0]) == 0);
  if (u0 >= 0) {
    size_t pos = 0, k = 0;
    int want = 0;
    while (k < max_frames) {
      uint64_t w[LB_FRAME_MAX_FIELDS];
      size_t off, len;
      ptrdiff_t r = lb__frame_decode_ref(f, b + pos, n - pos, w, &off, &len);
      if (r < 0) { want = (int)r; break; }
      if (k >= count[0]) break;
      LB_CHECK_EQ(sp[0][k].start, pos);
      LB_CHECK_EQ(sp[0][k].len, (size_t)r);
      LB_CHECK_EQ(sp[0][k].payload_off, pos + off);
      LB_CHECK(memcmp(v[0] + k * f->nfields, w, f->nfields * sizeof w[0]) == 0);
      pos += (size_t)r;
      k++;
    }
    LB_CHECK_EQ(count[0], k);
    LB_CHECK_EQ((size_t)u0, pos);
    LB_CHECK_EQ(stop[0], want);
  } else {
    LB_CHECK_EQ(u0, LB_EFORMAT);
  }
  free(b);
}

/* Random frames of random formats, as encoded and mutated (a flipped
 * byte, a random length field, a wrong prefix byte, truncated, extended,
 * or plain noise): the compiled decoder, lb_frame_decode and the
 * reference agree on every prefix of every input. */
static void test_compiled_decode_matches_reference(void) {
  static uint8_t payload[1200], buf[2 * 1400];
  int formats = 0, valid = 0, fails = 0;
  long results[8] = {0}; /* how often each outcome was seen */
  for (int it = 0; it < 1500 && fails < 5; it++) {
    lb_frame_format f = random_format();
    lb_frame_compiled c;
    memset(&c, 0xEE, sizeof c);
    int rc = lb_frame_compile(&f, &c);
    LB_CHECK_EQ(rc, lb_frame_validate(&f));
    formats++;
    if (rc == 0) valid++;
    for (int input = 0; input < 6; input++) {
      size_t n = 0;
      if (rc == 0) {
        uint64_t maxp = f.max_payload;
        for (uint32_t i = 0; i < f.nfields && !maxp; i++)
          if (f.fields[i] >= LB_FRAME_LEN8) maxp = len_field_limit(f.fields[i]);
        if (maxp > 1200) maxp = 1200;
        size_t plen = (size_t)(rnd() % 3 ? rnd() % (maxp < 80 ? maxp + 1 : 80) : rnd() % (maxp + 1));
        fill_random(payload, plen);
        uint64_t vals[LB_FRAME_MAX_FIELDS];
        for (uint32_t i = 0; i < f.nfields; i++) {
          uint32_t w = f.fields[i] == LB_FRAME_U64BE || f.fields[i] == LB_FRAME_U64LE ? 8
                     : f.fields[i] == LB_FRAME_U32BE || f.fields[i] == LB_FRAME_U32LE ? 4
                     : f.fields[i] == LB_FRAME_U16BE || f.fields[i] == LB_FRAME_U16LE ? 2 : 1;
          vals[i] = w == 8 ? rnd() : rnd() & ((1ull << (8 * w)) - 1);
        }
        ptrdiff_t e = lb_frame_encode(&f, vals, payload, plen, buf, sizeof buf);
        LB_CHECK(e > 0);
        n = e > 0 ? (size_t)e : 0;
      }
      switch (rnd() % 8) {
      case 0: case 1: break; /* as encoded */
      case 2: if (n) buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
      case 3: /* a random length field value: TOO_LARGE or a wrong size */
        if (n > f.prefix_len) fill_random(buf + f.prefix_len, (n - f.prefix_len) < 12 ? n - f.prefix_len : 12);
        break;
      case 4: if (n && f.prefix_len) buf[rnd() % f.prefix_len] ^= 0x10; break;
      case 5: n = n ? (size_t)(rnd() % n) : 0; break;
      case 6: { size_t extra = (size_t)(rnd() % 12); fill_random(buf + n, extra); n += extra; break; }
      default: n = (size_t)(rnd() % 64); fill_random(buf, n);
        if (rnd() % 2 && n >= f.prefix_len && f.prefix_len <= 16) memcpy(buf, f.prefix, f.prefix_len);
        break;
      }
      size_t step = n <= 160 ? 1 : n / 97;
      for (size_t k = 0; k <= n; k += step) {
        if (!decode_agrees(&f, &c, buf, k)) fails++;
      }
      if (!decode_agrees(&f, &c, buf, n)) fails++;
      ptrdiff_t r = lb__frame_decode_ref(&f, buf, n, NULL, NULL, NULL);
      results[r > 0 ? 0 : r == LB_EAGAIN ? 1 : r == LB_EPREFIX ? 2 : r == LB_ETOOLARGE ? 3
              : r == LB_ECHECKSUM ? 4 : r == LB_EFORMAT ? 5 : 6]++;
      /* Back to back: the same frame twice, then the batch decoders. */
      if (n && n <= sizeof buf / 2) {
        memcpy(buf + n, buf, n);
        batch_agrees(&f, &c, buf, 2 * n, 1 + (size_t)(rnd() % 3));
        batch_agrees(&f, &c, buf, 2 * n - 1, 8);
      }
    }
  }
  /* Every outcome was exercised. */
  for (int i = 0; i < 6; i++) LB_CHECK(results[i] > 0);
  LB_CHECK(valid > formats / 2);
  printf("  %d formats (%d valid); frames %ld, EAGAIN %ld, EPREFIX %ld, ETOOLARGE %ld, "
         "ECHECKSUM %ld, EFORMAT %ld\n", formats, valid, results[0], results[1], results[2],
         results[3], results[4], results[5]);
}

/* Compiling copies what it needs: a format changed or freed afterwards
 * does not affect the compiled one; an invalid format or a zero-filled
 * lb_frame_compiled is refused with LB_EFORMAT. */
static void test_compiled_format_lifecycle(void) {
  lb_frame_format f = base_format();
  uint8_t out[64];
  uint64_t vals[4] = {1, 2, 3, 0}, got[4];
  ptrdiff_t r = lb_frame_encode(&f, vals, (const uint8_t *)"hello", 5, out, sizeof out);
  LB_CHECK(r > 0);
  lb_frame_compiled c;
  LB_CHECK_EQ(lb_frame_compile(&f, &c), 0);
  memset(&f, 0, sizeof f); /* now invalid */
  LB_CHECK_EQ(lb_frame_decode(&f, out, (size_t)r, NULL, NULL, NULL), LB_EFORMAT);
  size_t off = 0, len = 0;
  LB_CHECK_EQ(lb_frame_decode_compiled(&c, out, (size_t)r, got, &off, &len), r);
  LB_CHECK(memcmp(got, vals, 3 * sizeof vals[0]) == 0);
  LB_CHECK_EQ(got[3], 5);
  LB_CHECK_EQ(len, 5);
  LB_CHECK(memcmp(out + off, "hello", 5) == 0);
  lb_frame_compiled bad;
  memset(&bad, 0x11, sizeof bad);
  LB_CHECK_EQ(lb_frame_compile(&f, &bad), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_decode_compiled(&bad, out, (size_t)r, NULL, NULL, NULL), LB_EFORMAT);
  lb_frame_compiled zero;
  memset(&zero, 0, sizeof zero);
  LB_CHECK(memcmp(&bad, &zero, sizeof zero) == 0); /* refused: zero-filled */
  LB_CHECK_EQ(lb_frame_decode_compiled(&zero, out, (size_t)r, NULL, NULL, NULL), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_decode_compiled(NULL, out, (size_t)r, NULL, NULL, NULL), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_compile(NULL, &bad), LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_compile(&f, NULL), LB_EFORMAT);
  size_t count = 9;
  int stop = 9;
  LB_CHECK_EQ(lb_frame_decode_batch_compiled(&zero, out, (size_t)r, 4, NULL, NULL, &count, &stop), LB_EFORMAT);
  LB_CHECK_EQ(count, 0);
  LB_CHECK_EQ(stop, LB_EFORMAT);
  LB_CHECK_EQ(lb_frame_decode_batch_compiled(&c, out, (size_t)r, 4, NULL, NULL, &count, &stop), r);
  LB_CHECK_EQ(count, 1);
  LB_CHECK_EQ(stop, LB_EAGAIN);
}

int main(void) {
  LB_RUN(test_check_values_direct);
  LB_RUN(test_check_values_by_kind);
  LB_RUN(test_checksums_of_empty_input);
  LB_RUN(test_known_vectors);
  LB_RUN(test_incremental_equals_oneshot);
  LB_RUN(test_crc32_matches_zlib);
  LB_RUN(test_crc32c_hardware_vs_table);
  LB_RUN(test_valid_format);
  LB_RUN(test_invalid_no_length_field);
  LB_RUN(test_invalid_two_length_fields);
  LB_RUN(test_invalid_unknown_field_kind);
  LB_RUN(test_invalid_prefix_too_long);
  LB_RUN(test_invalid_max_payload_exceeds_length_field);
  LB_RUN(test_invalid_too_many_fields);
  LB_RUN(test_invalid_checksum_kind_and_order);
  LB_RUN(test_encode_known_bytes);
  LB_RUN(test_modbus_style_little_endian_checksum);
  LB_RUN(test_roundtrip_every_header_field_kind);
  LB_RUN(test_byte_order_of_fields);
  LB_RUN(test_roundtrip_every_length_field_kind);
  LB_RUN(test_roundtrip_every_checksum_kind_and_order);
  LB_RUN(test_roundtrip_empty_prefix_and_long_prefix);
  LB_RUN(test_encode_errors);
  LB_RUN(test_encode_in_place);
  LB_RUN(test_back_to_back_frames);
  LB_RUN(test_corrupted_checksum);
  LB_RUN(test_oversize_length_rejected_before_payload);
  LB_RUN(test_bad_prefix);
  LB_RUN(test_find_prefix);
  LB_RUN(test_resync_after_garbage);
  LB_RUN(test_decode_results_are_split_proof);
  LB_RUN(test_batch_whole_buffer);
  LB_RUN(test_batch_fed_byte_by_byte);
  LB_RUN(test_batch_stops_at_a_bad_frame);
  LB_RUN(test_batch_invalid_format_and_limits);
  LB_RUN(test_compiled_decode_matches_reference);
  LB_RUN(test_compiled_format_lifecycle);
  return LB_DONE();
}
