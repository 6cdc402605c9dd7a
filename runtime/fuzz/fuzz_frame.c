/*
 * fuzz_frame.c: lb_frame_decode on arbitrary bytes, under a few formats
 * chosen by the first input byte (the last choice reads the format itself
 * from the input). Properties checked (abort on violation):
 *  - decode never reports a frame longer than the input, and its payload
 *    view lies inside the frame;
 *  - a decoded frame re-encodes to exactly the same bytes;
 *  - decoding any prefix of the input gives LB_EAGAIN or the same result as
 *    the whole input (whole vs incremental consistency);
 *  - lb_frame_find_prefix returns the first candidate, never beyond n;
 *  - a resynchronizing stream loop over the input always makes progress;
 *  - lb_frame_decode_batch agrees with lb_frame_decode called frame after
 *    frame (spans, header values, bytes used, the reason it stops), for
 *    several max_frames, with and without output arrays;
 *  - the compiled decoders (lb_frame_compile, lb_frame_decode_compiled,
 *    lb_frame_decode_batch_compiled) and lb_frame_decode give exactly the
 *    results of the field-by-field reference decoder, on the input and on
 *    every prefix of it, each copied to a buffer of its exact size (so a
 *    word read past the input is an ASan error).
 */
#include "lowbit/lb_frame.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* lb_frame.c's field-by-field decoder, the compiled one's specification. */
ptrdiff_t lb__frame_decode_ref(const lb_frame_format *f, const uint8_t *src,
                               size_t n, uint64_t *vals, size_t *payload_off,
                               size_t *payload_len);

static lb_frame_format make_format(int which) {
  lb_frame_format f;
  memset(&f, 0, sizeof f);
  switch (which) {
  case 0: /* the seed's example */
    f.prefix[0] = 0xAA; f.prefix[1] = 0x55; f.prefix_len = 2;
    f.nfields = 4;
    f.fields[0] = LB_FRAME_U8; f.fields[1] = LB_FRAME_U8; f.fields[2] = LB_FRAME_U8;
    f.fields[3] = LB_FRAME_LEN16LE;
    f.checksum = LB_FRAME_CK_CRC32;
    f.max_payload = 1024;
    break;
  case 1: /* Modbus-like: no prefix, little-endian CRC-16 */
    f.nfields = 2;
    f.fields[0] = LB_FRAME_LEN8; f.fields[1] = LB_FRAME_U16BE;
    f.checksum = LB_FRAME_CK_CRC16_MODBUS;
    f.checksum_order = LB_FRAME_LITTLE_ENDIAN;
    break;
  case 2:
    memcpy(f.prefix, "WF01", 4); f.prefix_len = 4;
    f.nfields = 3;
    f.fields[0] = LB_FRAME_U64BE; f.fields[1] = LB_FRAME_LEN32BE; f.fields[2] = LB_FRAME_U32LE;
    f.checksum = LB_FRAME_CK_CRC64_ECMA;
    f.max_payload = 4096;
    break;
  case 3: /* length first, no checksum */
    f.prefix[0] = 0x7E; f.prefix_len = 1;
    f.nfields = 2;
    f.fields[0] = LB_FRAME_LEN32LE; f.fields[1] = LB_FRAME_U8;
    f.max_payload = 100000;
    break;
  default: /* self-overlapping prefix, CRC-32C (hardware path) */
    f.prefix[0] = 0xAA; f.prefix[1] = 0xAA; f.prefix[2] = 0xAB; f.prefix_len = 3;
    f.nfields = 2;
    f.fields[0] = LB_FRAME_LEN16BE; f.fields[1] = LB_FRAME_U64LE;
    f.checksum = LB_FRAME_CK_CRC32C;
    f.max_payload = 3000;
    break;
  }
  return f;
}

static int matches_at(const lb_frame_format *f, const uint8_t *s, size_t n, size_t i) {
  size_t rem = n - i, m = rem < f->prefix_len ? rem : f->prefix_len;
  return memcmp(s + i, f->prefix, m) == 0;
}

static void check_format(const lb_frame_format *f, const uint8_t *s, size_t n) {
  uint64_t vals[LB_FRAME_MAX_FIELDS];
  size_t off = 0, len = 0;
  ptrdiff_t r = lb_frame_decode(f, s, n, vals, &off, &len);
  CHECK(r <= (ptrdiff_t)n);
  if (r >= 0) {
    CHECK(off <= (size_t)r && len <= (size_t)r - off);
    /* Re-encoding the decoded frame reproduces its bytes. */
    uint8_t *again = malloc((size_t)r + 1);
    CHECK(again != NULL);
    ptrdiff_t e = lb_frame_encode(f, vals, s + off, len, again, (size_t)r);
    CHECK(e == r);
    CHECK(memcmp(again, s, (size_t)r) == 0);
    free(again);
  }
  /* Every prefix: all of them for short inputs, a sample for long ones. */
  size_t step = n <= 512 ? 1 : n / 257 + 1;
  for (size_t k = 0; k <= n; k += step) {
    ptrdiff_t p = lb_frame_decode(f, s, k, NULL, NULL, NULL);
    if (r >= 0) CHECK(k < (size_t)r ? p == LB_EAGAIN : p == r);
    else CHECK(p == LB_EAGAIN || p == r);
  }
  /* find_prefix gives the first candidate. */
  if (lb_frame_validate(f) == 0) {
    size_t i = lb_frame_find_prefix(f, s, n);
    CHECK(i <= n);
    if (f->prefix_len > 0 && n <= 2048) {
      for (size_t j = 0; j < i; j++) CHECK(!matches_at(f, s, n, j));
      if (i < n) CHECK(matches_at(f, s, n, i));
    }
    if (r == LB_EPREFIX) CHECK(i > 0);
  }
  /* A stream loop: decode, resync, skip; it must finish and stay inside. */
  size_t pos = 0;
  while (pos < n) {
    ptrdiff_t q = lb_frame_decode(f, s + pos, n - pos, NULL, NULL, NULL);
    if (q > 0) {
      pos += (size_t)q;
    } else if (q == LB_EPREFIX) {
      size_t skip = lb_frame_find_prefix(f, s + pos, n - pos);
      CHECK(skip > 0 && skip <= n - pos);
      pos += skip;
    } else if (q == LB_ECHECKSUM || q == LB_ETOOLARGE) {
      pos += 1 + lb_frame_find_prefix(f, s + pos + 1, n - pos - 1);
    } else {
      /* EAGAIN, EFORMAT; q == 0 cannot happen (a frame has a header). */
      CHECK(q == LB_EAGAIN || q == LB_EFORMAT);
      break;
    }
    CHECK(pos <= n);
  }
}

/* The reference, lb_frame_decode and lb_frame_decode_compiled on
 * s[0..n) copied to an exact-size buffer: the same result and outputs
 * (sentinels where nothing is stored). */
static void check_same(const lb_frame_format *f, const lb_frame_compiled *c,
                       const uint8_t *s, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  CHECK(b != NULL);
  memcpy(b, s, n);
  uint64_t v[3][LB_FRAME_MAX_FIELDS];
  size_t off[3] = {7, 7, 7}, len[3] = {7, 7, 7};
  memset(v, 0x5A, sizeof v);
  ptrdiff_t r0 = lb__frame_decode_ref(f, b, n, v[0], &off[0], &len[0]);
  ptrdiff_t r1 = lb_frame_decode(f, b, n, v[1], &off[1], &len[1]);
  ptrdiff_t r2 = lb_frame_decode_compiled(c, b, n, v[2], &off[2], &len[2]);
  CHECK(r1 == r0 && r2 == r0);
  CHECK(off[1] == off[0] && off[2] == off[0] && len[1] == len[0] && len[2] == len[0]);
  CHECK(memcmp(v[1], v[0], sizeof v[0]) == 0 && memcmp(v[2], v[0], sizeof v[0]) == 0);
  CHECK(lb_frame_decode_compiled(c, b, n, NULL, NULL, NULL) == r0);
  free(b);
}

static void check_compiled(const lb_frame_format *f, const uint8_t *s, size_t n) {
  lb_frame_compiled c;
  int rc = lb_frame_compile(f, &c);
  CHECK(rc == lb_frame_validate(f));
  size_t step = n <= 512 ? 1 : n / 257 + 1;
  for (size_t k = 0; k <= n; k += step) check_same(f, &c, s, k);
  check_same(f, &c, s, n);
  /* The compiled batch gives the batch's results. */
  enum { MAXB = 8 };
  static lb_frame_span sp[2][MAXB];
  static uint64_t v[2][MAXB * LB_FRAME_MAX_FIELDS];
  size_t count[2] = {99, 99};
  int stop[2] = {99, 99};
  memset(sp, 0x5A, sizeof sp);
  memset(v, 0x5A, sizeof v);
  uint8_t *b = malloc(n ? n : 1);
  CHECK(b != NULL);
  memcpy(b, s, n);
  ptrdiff_t u0 = lb_frame_decode_batch(f, b, n, MAXB, sp[0], v[0], &count[0], &stop[0]);
  ptrdiff_t u1 = lb_frame_decode_batch_compiled(&c, b, n, MAXB, sp[1], v[1], &count[1], &stop[1]);
  CHECK(u0 == u1 && count[0] == count[1] && stop[0] == stop[1]);
  CHECK(memcmp(sp[0], sp[1], sizeof sp[0]) == 0 && memcmp(v[0], v[1], sizeof v[0]) == 0);
  free(b);
}

/* lb_frame_decode_batch on s[0..n) against the frame-by-frame loop. */
static void check_batch(const lb_frame_format *f, const uint8_t *s, size_t n,
                        size_t max_frames) {
  enum { MAXB = 16 };
  static lb_frame_span spans[MAXB];
  static uint64_t vals[MAXB * LB_FRAME_MAX_FIELDS];
  if (max_frames > MAXB) max_frames = MAXB;
  size_t count = 99;
  int stop = 99;
  ptrdiff_t used = lb_frame_decode_batch(f, s, n, max_frames, spans, vals, &count, &stop);
  if (used == LB_EFORMAT) {
    CHECK(lb_frame_validate(f) != 0 && count == 0 && stop == LB_EFORMAT);
    return;
  }
  CHECK(used >= 0 && (size_t)used <= n && count <= max_frames);
  size_t pos = 0, k = 0;
  int want = 0;
  while (k < max_frames) {
    uint64_t v[LB_FRAME_MAX_FIELDS];
    size_t off = 0, len = 0;
    ptrdiff_t r = lb_frame_decode(f, s + pos, n - pos, v, &off, &len);
    if (r < 0) { want = (int)r; break; }
    CHECK(k < count);
    CHECK(spans[k].start == pos && spans[k].len == (size_t)r);
    CHECK(spans[k].payload_off == pos + off && spans[k].payload_len == len);
    CHECK(memcmp(vals + k * f->nfields, v, f->nfields * sizeof v[0]) == 0);
    pos += (size_t)r;
    k++;
  }
  CHECK(count == k && (size_t)used == pos && stop == want);
  size_t count2 = 99;
  int stop2 = 99;
  CHECK(lb_frame_decode_batch(f, s, n, max_frames, NULL, NULL, &count2, &stop2) == used);
  CHECK(count2 == count && stop2 == stop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] % 6;
  data++;
  size--;
  if (which < 5) {
    lb_frame_format f = make_format(which);
    check_format(&f, data, size);
    check_batch(&f, data, size, 16);
    check_batch(&f, data, size, 1 + size % 3);
    check_compiled(&f, data, size);
    return 0;
  }
  /* The format itself comes from the input: validation must be total. */
  if (size < sizeof(lb_frame_format)) return 0;
  lb_frame_format f;
  memcpy(&f, data, sizeof f);
  data += sizeof f;
  size -= sizeof f;
  /* Keep the random fields small enough to be valid now and then. */
  f.prefix_len %= 20;
  f.nfields %= 18;
  for (int i = 0; i < 16; i++) f.fields[i] %= 14;
  f.checksum %= 12;
  f.checksum_order %= 3;
  f.max_payload %= 70000;
  int idx = 0;
  const char *why = lb_frame_validate_reason(&f, &idx);
  CHECK((why == NULL) == (lb_frame_validate(&f) == 0));
  CHECK(idx >= -1 && idx < 16);
  ptrdiff_t ov = lb_frame_overhead(&f);
  CHECK(ov == LB_EFORMAT || (ov >= 0 && ov <= 16 + 128 + 8));
  check_format(&f, data, size);
  check_batch(&f, data, size, 16);
  check_compiled(&f, data, size);
  return 0;
}
