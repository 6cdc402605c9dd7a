/*
 * lb_frame.c: wireframe checksums and the frame format engine.
 *
 * Checksums: Adler-32 comes from zlib, and so does CRC-32 for inputs of
 * 512 bytes and more (its braided loop is fast once started; shorter inputs
 * use a slicing-by-8 table). CRC-32C and the two CRC-64s use slicing-by-8
 * tables; CRC-32C additionally uses the SSE4.2 crc32 instruction when the
 * running CPU has it (runtime dispatch, so one binary serves every x86-64
 * CPU). The CRC-16s
 * are plain byte-at-a-time tables: their users frame short messages.
 *
 * Tables are built once, on first use, under pthread_once (building them
 * costs ~20 us; shipping 40 KiB of literal tables would cost more to read).
 */
#include "lowbit/lb_frame.h"
#include "lb_bytes.h"

#include <pthread.h>
#include <string.h>
#include <zlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LB__CRC32C_HW 1
#include <nmmintrin.h>
#endif

/* ---- tables ------------------------------------------------------------- */

/* Reflected polynomials (bit-reversed normal form). */
#define POLY32 0xEDB88320u                  /* 0x04C11DB7 reversed */
#define POLY32C 0x82F63B78u                 /* 0x1EDC6F41 reversed */
#define POLY64ISO 0xD800000000000000ull     /* 0x000000000000001B reversed */
#define POLY64ECMA 0xC96C5795D7870F42ull    /* 0x42F0E1EBA9EA3693 reversed */

static uint32_t t32[8][256];
static uint32_t t32c[8][256];
static uint64_t t64iso[8][256];
static uint64_t t64ecma[8][256];
static uint16_t t16modbus[256]; /* 0x8005 reflected = 0xA001 */
static uint16_t t16kermit[256]; /* 0x1021 reflected = 0x8408 */
static uint16_t t16ccitt[256];  /* 0x1021, not reflected */
static int crc32c_hw;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
  for (unsigned i = 0; i < 256; i++) {
    uint32_t c = i, e = i;
    uint64_t a = i, b = i;
    uint16_t m = (uint16_t)i, k = (uint16_t)i, x = (uint16_t)(i << 8);
    for (int j = 0; j < 8; j++) {
      c = (c >> 1) ^ ((c & 1) ? POLY32C : 0);
      e = (e >> 1) ^ ((e & 1) ? POLY32 : 0);
      a = (a >> 1) ^ ((a & 1) ? POLY64ISO : 0);
      b = (b >> 1) ^ ((b & 1) ? POLY64ECMA : 0);
      m = (uint16_t)((m >> 1) ^ ((m & 1) ? 0xA001 : 0));
      k = (uint16_t)((k >> 1) ^ ((k & 1) ? 0x8408 : 0));
      x = (uint16_t)((x << 1) ^ ((x & 0x8000) ? 0x1021 : 0));
    }
    t32c[0][i] = c;
    t32[0][i] = e;
    t64iso[0][i] = a;
    t64ecma[0][i] = b;
    t16modbus[i] = m;
    t16kermit[i] = k;
    t16ccitt[i] = x;
  }
  /* Slicing tables: T[k][i] is the CRC of byte i followed by k zero bytes,
   * so eight bytes can be folded with eight independent lookups. */
  for (int k = 1; k < 8; k++) {
    for (unsigned i = 0; i < 256; i++) {
      uint32_t c = t32c[k - 1][i];
      t32c[k][i] = (c >> 8) ^ t32c[0][c & 0xFF];
      uint32_t e = t32[k - 1][i];
      t32[k][i] = (e >> 8) ^ t32[0][e & 0xFF];
      uint64_t a = t64iso[k - 1][i];
      t64iso[k][i] = (a >> 8) ^ t64iso[0][a & 0xFF];
      uint64_t b = t64ecma[k - 1][i];
      t64ecma[k][i] = (b >> 8) ^ t64ecma[0][b & 0xFF];
    }
  }
#ifdef LB__CRC32C_HW
  __builtin_cpu_init();
  crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

static inline void init_tables(void) { pthread_once(&tables_once, build_tables); }


/* ---- CRC-32 / Adler-32 -------------------------------------------------- */

/* Slicing-by-8 over a reflected 32-bit CRC table set (CRC-32 and CRC-32C
 * share the algorithm, not the tables). */
static uint32_t crc32_slice8(uint32_t (*t)[256], uint32_t crc, const uint8_t *p,
                             size_t n) {
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t w = lb_load_le64(p);
    uint32_t lo = (uint32_t)w ^ c, hi = (uint32_t)(w >> 32);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^
        t[4][lo >> 24] ^ t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^
        t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

/* zlib's braided CRC-32 wins on long inputs but has a high fixed cost per
 * call (measured ~4x slower than slicing-by-8 on a 69-byte frame body, on
 * par at 256 bytes, 2x faster at 1 KiB), so short inputs take the table
 * path; both compute the same function (the tests compare them). */
#define CRC32_ZLIB_MIN 512

uint32_t lb_crc32_update(uint32_t crc, const void *p, size_t n) {
  if (n == 0) return crc;
  if (n < CRC32_ZLIB_MIN) {
    init_tables();
    return crc32_slice8(t32, crc, p, n);
  }
  return (uint32_t)crc32_z(crc, p, n);
}

uint32_t lb_adler32_update(uint32_t adler, const void *p, size_t n) {
  if (n == 0) return adler;
  return (uint32_t)adler32_z(adler, p, n);
}

/* ---- CRC-32C ------------------------------------------------------------ */

/* The table path; non-static so the tests can compare it with the hardware
 * path on the same machine. */
uint32_t lb__crc32c_sw(uint32_t crc, const void *buf, size_t n);
uint32_t lb__crc32c_sw(uint32_t crc, const void *buf, size_t n) {
  init_tables();
  return crc32_slice8(t32c, crc, buf, n);
}

#ifdef LB__CRC32C_HW
/* The crc32 instruction has a latency of 3 cycles and a throughput of 1 per
 * cycle, so for long inputs three independent streams over three equal
 * blocks keep the unit busy; their CRCs are then combined by "shifting" the
 * first two over the bytes that follow them. The shift is multiplication
 * by x^(8*len) mod P, done here with the zeros operator tables below
 * (computed once per block size used). For inputs under 3 * 256 bytes the
 * single-stream loop is used. */
#define HW_BLOCK 256  /* bytes per stream per round in the 3-way loop */

/* zeros[k][b]: CRC register after feeding byte b in position k of a 4-byte
 * register and then HW_BLOCK*2 (for shift2) or HW_BLOCK (for shift1) zero
 * bytes; computed from the table path. */
static uint32_t shift1[4][256], shift2[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

/* Multiplies a raw (not pre/post-inverted) CRC register by x^(8*len). */
static uint32_t raw_shift_slow(uint32_t reg, size_t len) {
  while (len--) reg = (reg >> 8) ^ t32c[0][reg & 0xFF];
  return reg;
}

static void build_shift(void) {
  init_tables();
  for (int k = 0; k < 4; k++) {
    for (unsigned b = 0; b < 256; b++) {
      uint32_t reg = (uint32_t)b << (8 * k);
      shift1[k][b] = raw_shift_slow(reg, HW_BLOCK);
      shift2[k][b] = raw_shift_slow(reg, 2 * HW_BLOCK);
    }
  }
}

static inline uint32_t apply_shift(uint32_t (*t)[256], uint32_t reg) {
  /* The operator is linear over GF(2): shift(reg) = xor of the shifts of
   * its four bytes. */
  return t[0][reg & 0xFF] ^ t[1][(reg >> 8) & 0xFF] ^
         t[2][(reg >> 16) & 0xFF] ^ t[3][reg >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_update(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = (uint32_t)~crc;
  if (n >= 3 * HW_BLOCK) {
    /* Long inputs: 8-byte aligned loads in the 3-way loop. Shorter ones
     * skip this: an unaligned 8-byte crc32 costs the same, and up to 7
     * byte steps (3 cycles each, dependent) would be a third of the time
     * of a 64-byte frame. */
    while (((uintptr_t)p & 7) != 0) {
      c = _mm_crc32_u8((uint32_t)c, *p++);
      n--;
    }
  }
  if (n >= 3 * HW_BLOCK) {
    pthread_once(&shift_once, build_shift);
    while (n >= 3 * HW_BLOCK) {
      uint64_t c1 = 0, c2 = 0;
      const uint8_t *p1 = p + HW_BLOCK, *p2 = p + 2 * HW_BLOCK;
      for (int i = 0; i < HW_BLOCK; i += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p + i, 8);
        memcpy(&w1, p1 + i, 8);
        memcpy(&w2, p2 + i, 8);
        c = _mm_crc32_u64(c, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
      }
      /* Raw registers are linear: reg(A||B||C) = shift(A)^shift(B)^reg(C)
       * where the streams for B and C started from a zero register. */
      c = apply_shift(shift2, (uint32_t)c) ^ apply_shift(shift1, (uint32_t)c1) ^
          (uint32_t)c2;
      p += 3 * HW_BLOCK;
      n -= 3 * HW_BLOCK;
    }
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  /* The last 0..7 bytes in at most three steps. */
  uint32_t c32 = (uint32_t)c;
  if (n & 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    c32 = _mm_crc32_u32(c32, w);
    p += 4;
  }
  if (n & 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    c32 = _mm_crc32_u16(c32, w);
    p += 2;
  }
  if (n & 1) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}

/* Exposed for the tests (hardware path regardless of dispatch; only call
 * when lb_crc32c_hardware() is 1). */
uint32_t lb__crc32c_hw(uint32_t crc, const void *buf, size_t n);
uint32_t lb__crc32c_hw(uint32_t crc, const void *buf, size_t n) {
  init_tables();
  return crc32c_hw_update(crc, buf, n);
}
#endif

int lb_crc32c_hardware(void) {
  init_tables();
  return crc32c_hw;
}

uint32_t lb_crc32c_update(uint32_t crc, const void *p, size_t n) {
  init_tables();
#ifdef LB__CRC32C_HW
  if (crc32c_hw) return crc32c_hw_update(crc, p, n);
#endif
  return lb__crc32c_sw(crc, p, n);
}

/* ---- CRC-64 ------------------------------------------------------------- */

static uint64_t crc64_update(uint64_t (*t)[256], uint64_t crc, const uint8_t *p,
                             size_t n) {
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t w = lb_load_le64(p) ^ c;
    c = t[7][w & 0xFF] ^ t[6][(w >> 8) & 0xFF] ^ t[5][(w >> 16) & 0xFF] ^
        t[4][(w >> 24) & 0xFF] ^ t[3][(w >> 32) & 0xFF] ^
        t[2][(w >> 40) & 0xFF] ^ t[1][(w >> 48) & 0xFF] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

uint64_t lb_crc64_iso_update(uint64_t crc, const void *p, size_t n) {
  init_tables();
  return crc64_update(t64iso, crc, p, n);
}

uint64_t lb_crc64_ecma_update(uint64_t crc, const void *p, size_t n) {
  init_tables();
  return crc64_update(t64ecma, crc, p, n);
}

/* ---- CRC-16 ------------------------------------------------------------- */

static uint16_t crc16_reflected(const uint16_t *t, uint16_t crc, const uint8_t *p,
                                size_t n) {
  unsigned c = crc;
  while (n--) c = (c >> 8) ^ t[(c ^ *p++) & 0xFF];
  return (uint16_t)c;
}

static uint16_t crc16_normal(const uint16_t *t, uint16_t crc, const uint8_t *p,
                             size_t n) {
  unsigned c = crc;
  while (n--) c = ((c << 8) & 0xFFFF) ^ t[((c >> 8) ^ *p++) & 0xFF];
  return (uint16_t)c;
}

uint16_t lb_crc16_modbus_update(uint16_t crc, const void *p, size_t n) {
  init_tables();
  return crc16_reflected(t16modbus, crc, p, n);
}

uint16_t lb_crc16_kermit_update(uint16_t crc, const void *p, size_t n) {
  init_tables();
  return crc16_reflected(t16kermit, crc, p, n);
}

uint16_t lb_crc16_ccitt_false_update(uint16_t crc, const void *p, size_t n) {
  init_tables();
  return crc16_normal(t16ccitt, crc, p, n);
}

uint16_t lb_crc16_xmodem_update(uint16_t crc, const void *p, size_t n) {
  init_tables();
  return crc16_normal(t16ccitt, crc, p, n);
}

/* ---- generic dispatch --------------------------------------------------- */

int lb_frame_checksum_width(int kind) {
  switch (kind) {
  case LB_FRAME_CK_NONE: return 0;
  case LB_FRAME_CK_CRC32:
  case LB_FRAME_CK_CRC32C:
  case LB_FRAME_CK_ADLER32: return 4;
  case LB_FRAME_CK_CRC64_ISO:
  case LB_FRAME_CK_CRC64_ECMA: return 8;
  case LB_FRAME_CK_CRC16_MODBUS:
  case LB_FRAME_CK_CRC16_CCITT_FALSE:
  case LB_FRAME_CK_CRC16_KERMIT:
  case LB_FRAME_CK_CRC16_XMODEM: return 2;
  default: return LB_EINVAL;
  }
}

uint64_t lb_frame_checksum_init(int kind) {
  switch (kind) {
  case LB_FRAME_CK_ADLER32: return 1;
  case LB_FRAME_CK_CRC16_MODBUS:
  case LB_FRAME_CK_CRC16_CCITT_FALSE: return 0xFFFF;
  default: return 0;
  }
}

uint64_t lb_frame_checksum_update(int kind, uint64_t crc, const void *p, size_t n) {
  switch (kind) {
  case LB_FRAME_CK_CRC32: return lb_crc32_update((uint32_t)crc, p, n);
  case LB_FRAME_CK_CRC32C: return lb_crc32c_update((uint32_t)crc, p, n);
  case LB_FRAME_CK_CRC64_ISO: return lb_crc64_iso_update(crc, p, n);
  case LB_FRAME_CK_CRC64_ECMA: return lb_crc64_ecma_update(crc, p, n);
  case LB_FRAME_CK_ADLER32: return lb_adler32_update((uint32_t)crc, p, n);
  case LB_FRAME_CK_CRC16_MODBUS: return lb_crc16_modbus_update((uint16_t)crc, p, n);
  case LB_FRAME_CK_CRC16_CCITT_FALSE:
    return lb_crc16_ccitt_false_update((uint16_t)crc, p, n);
  case LB_FRAME_CK_CRC16_KERMIT: return lb_crc16_kermit_update((uint16_t)crc, p, n);
  case LB_FRAME_CK_CRC16_XMODEM: return lb_crc16_xmodem_update((uint16_t)crc, p, n);
  default: return 0;
  }
}

uint64_t lb_frame_checksum(int kind, const void *p, size_t n) {
  return lb_frame_checksum_update(kind, lb_frame_checksum_init(kind), p, n);
}

/* ---- format engine ------------------------------------------------------ */

/* Wire width of each field kind, indexed by lb_frame_field_kind. */
static const uint8_t field_width[13] = {0, 1, 2, 2, 4, 4, 8, 8, 1, 2, 2, 4, 4};

/* Prefix + largest header + largest checksum: the fixed overhead bound. */
#define MAX_OVERHEAD ((uint64_t)LB_FRAME_MAX_PREFIX + LB_FRAME_MAX_HEADER + 8)

/* lb_frame_compiled.ready once compile_format filled it ("WFc1"). */
#define COMPILED_READY 0x57466331u

/* lb_frame_compiled.ck_path: how the checksum is computed, chosen once. */
enum {
  CK_PATH_NONE = 0,
  CK_PATH_CRC32 = 1,     /* slicing-by-8 under CRC32_ZLIB_MIN, zlib above */
  CK_PATH_CRC32C_HW = 2, /* the SSE4.2 loop, called directly */
  CK_PATH_GENERIC = 3    /* lb_frame_checksum */
};

/* Per field kind (indexed by lb_frame_field_kind; 0 is not a kind). */
static const struct kind_info {
  uint8_t width;  /* bytes on the wire */
  uint8_t cut;    /* 64 - 8 * width */
  uint8_t big;    /* 1: big-endian (and the one-byte kinds) */
  uint8_t is_len; /* 1: a payload-length field */
} kinds[13] = {
  {0, 64, 0, 0},
  {1, 56, 1, 0}, {2, 48, 1, 0}, {2, 48, 0, 0}, {4, 32, 1, 0}, {4, 32, 0, 0},
  {8, 0, 1, 0},  {8, 0, 0, 0},
  {1, 56, 1, 1}, {2, 48, 1, 1}, {2, 48, 0, 1}, {4, 32, 1, 1}, {4, 32, 0, 1},
};

/* Checksum width by lb_frame_checksum_kind. */
static const uint8_t ck_widths[LB_FRAME_CK_COUNT] = {0, 4, 4, 8, 8, 4, 2, 2, 2, 2};

/* Validates f and fills *c in one pass (every member the decoders read;
 * the per-field entries past nfields are left as they were; on a defect
 * *c is left partly filled and not ready). On a defect returns
 * LB_EFORMAT with a static reason and the offending field's index (or
 * -1). This runs on every lb_frame_decode call, so it is kept short:
 * table lookups, one loop over the fields. */
static int compile_format(const lb_frame_format *f, lb_frame_compiled *c,
                          const char **why, int *idx) {
  *idx = -1;
  c->ready = 0;
  if (f == NULL) { *why = "format is NULL"; return LB_EFORMAT; }
  const uint32_t pl = f->prefix_len, nf = f->nfields;
  if (pl > LB_FRAME_MAX_PREFIX) {
    *why = "prefix longer than 16 bytes";
    return LB_EFORMAT;
  }
  if (nf > LB_FRAME_MAX_FIELDS) {
    *why = "more than 16 header fields";
    return LB_EFORMAT;
  }
  uint32_t off = 0, li = LB_FRAME_MAX_FIELDS;
  for (uint32_t i = 0; i < nf; i++) {
    uint32_t k = f->fields[i];
    if (k - 1u > LB_FRAME_LEN32LE - 1u) {
      *why = "unknown field kind";
      *idx = (int)i;
      return LB_EFORMAT;
    }
    const struct kind_info *ki = &kinds[k];
    if (ki->is_len) {
      if (li != LB_FRAME_MAX_FIELDS) {
        *why = "two payload-length fields";
        *idx = (int)i;
        return LB_EFORMAT;
      }
      li = i;
      c->len_off = off;
    }
    c->field_off[i] = (uint8_t)off;
    c->field_cut[i] = ki->cut;
    c->field_big[i] = ki->big;
    off += ki->width;
  }
  if (li == LB_FRAME_MAX_FIELDS) { *why = "no payload-length field"; return LB_EFORMAT; }
  if (f->checksum >= LB_FRAME_CK_COUNT) { *why = "unknown checksum kind"; return LB_EFORMAT; }
  if (f->checksum_order != LB_FRAME_BIG_ENDIAN &&
      f->checksum_order != LB_FRAME_LITTLE_ENDIAN) {
    *why = "unknown checksum byte order";
    return LB_EFORMAT;
  }
  const uint32_t lw = kinds[f->fields[li]].width;
  const uint64_t fmax = lw == 1 ? 0xFF : lw == 2 ? 0xFFFF : 0xFFFFFFFFu;
  if (f->max_payload > fmax) {
    *why = "max_payload larger than the length field can express";
    *idx = (int)li;
    return LB_EFORMAT;
  }
  uint64_t eff = f->max_payload ? f->max_payload : fmax;
  /* A whole frame's size must be representable as a ptrdiff_t result; only
   * a 32-bit build can hit this (2^32 - 1 + overhead > PTRDIFF_MAX). */
  if (eff > (uint64_t)PTRDIFF_MAX - MAX_OVERHEAD) {
    if (f->max_payload) {
      *why = "max_payload too large for this platform";
      *idx = (int)li;
      return LB_EFORMAT;
    }
    eff = (uint64_t)PTRDIFF_MAX - MAX_OVERHEAD;
  }
  const uint32_t cw = ck_widths[f->checksum];
  if (cw) init_tables(); /* the checksum paths read the tables directly */
  memcpy(c->prefix, f->prefix, sizeof c->prefix);
  /* The prefix's first 8 bytes (the rest masked off) and their mask; 0
   * and 0 for a prefix longer than 8 bytes (compared byte by byte). */
  uint64_t mask = pl >= 8 ? ~0ull : (1ull << (8 * pl)) - 1;
  if (pl > 8) mask = 0;
  c->prefix_mask = mask;
  c->prefix_word = lb_load_le64(c->prefix) & mask;
  c->max_payload = eff;
  c->prefix_len = pl;
  c->header_len = off;
  c->len_index = li;
  c->nfields = nf;
  c->checksum = f->checksum;
  c->ck_width = cw;
  c->ck_little = f->checksum_order == LB_FRAME_LITTLE_ENDIAN;
  c->ck_path = cw == 0 ? CK_PATH_NONE
               : f->checksum == LB_FRAME_CK_CRC32 ? CK_PATH_CRC32
               : CK_PATH_GENERIC;
#ifdef LB__CRC32C_HW
  if (f->checksum == LB_FRAME_CK_CRC32C && crc32c_hw) c->ck_path = CK_PATH_CRC32C_HW;
#endif
  c->ready = COMPILED_READY;
  return 0;
}

int lb_frame_validate(const lb_frame_format *f) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  return compile_format(f, &L, &why, &idx);
}

const char *lb_frame_validate_reason(const lb_frame_format *f, int *field_index) {
  lb_frame_compiled L;
  const char *why = NULL;
  int idx = -1;
  if (compile_format(f, &L, &why, &idx) == 0) why = NULL;
  if (field_index) *field_index = idx;
  return why;
}

static inline uint64_t get_field(uint32_t kind, const uint8_t *p) {
  switch (kind) {
  case LB_FRAME_U8:
  case LB_FRAME_LEN8: return p[0];
  case LB_FRAME_U16BE:
  case LB_FRAME_LEN16BE: return (uint64_t)p[0] << 8 | p[1];
  case LB_FRAME_U16LE:
  case LB_FRAME_LEN16LE: return (uint64_t)p[1] << 8 | p[0];
  case LB_FRAME_U32BE:
  case LB_FRAME_LEN32BE:
    return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
  case LB_FRAME_U32LE:
  case LB_FRAME_LEN32LE:
    return (uint64_t)p[3] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[1] << 8 | p[0];
  case LB_FRAME_U64BE: {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
  }
  case LB_FRAME_U64LE: {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
  }
  default: return 0;
  }
}

/* Writes the low `w` bytes of v, big- or little-endian. */
static void put_uint(uint8_t *p, uint64_t v, size_t w, int little) {
  for (size_t i = 0; i < w; i++) {
    size_t shift = 8 * (little ? i : w - 1 - i);
    p[i] = (uint8_t)(v >> shift);
  }
}

static int kind_little(uint32_t k) {
  return k == LB_FRAME_U16LE || k == LB_FRAME_U32LE || k == LB_FRAME_U64LE ||
         k == LB_FRAME_LEN16LE || k == LB_FRAME_LEN32LE;
}

ptrdiff_t lb_frame_overhead(const lb_frame_format *f) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  if (compile_format(f, &L, &why, &idx) != 0) return LB_EFORMAT;
  return (ptrdiff_t)(L.prefix_len + L.header_len + L.ck_width);
}

ptrdiff_t lb_frame_encoded_len(const lb_frame_format *f, size_t n) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  if (compile_format(f, &L, &why, &idx) != 0) return LB_EFORMAT;
  if ((uint64_t)n > L.max_payload) return LB_ETOOLARGE;
  /* n <= max_payload <= PTRDIFF_MAX - MAX_OVERHEAD: the sum cannot wrap. */
  return (ptrdiff_t)(L.prefix_len + L.header_len + n + L.ck_width);
}

ptrdiff_t lb_frame_encode(const lb_frame_format *f, const uint64_t *vals,
                          const uint8_t *payload, size_t n, uint8_t *dst,
                          size_t cap) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  if (compile_format(f, &L, &why, &idx) != 0) return LB_EFORMAT;
  if ((uint64_t)n > L.max_payload) return LB_ETOOLARGE;
  for (uint32_t i = 0; i < f->nfields; i++) {
    if (i == L.len_index) continue;
    size_t w = field_width[f->fields[i]];
    uint64_t v = vals ? vals[i] : 0;
    if (w < 8 && (v >> (8 * w)) != 0) return LB_EINVAL;
  }
  size_t total = L.prefix_len + L.header_len + n + L.ck_width;
  if (cap < total) return LB_ENOSPACE;

  uint8_t *h = dst + L.prefix_len;
  /* The payload is moved first: it may lie inside dst (a caller can build
   * the payload at dst + overhead-before-payload and encode in place). */
  if (n) memmove(h + L.header_len, payload, n);
  if (L.prefix_len) memcpy(dst, f->prefix, L.prefix_len);
  size_t off = 0;
  for (uint32_t i = 0; i < f->nfields; i++) {
    uint32_t k = f->fields[i];
    size_t w = field_width[k];
    uint64_t v = i == L.len_index ? (uint64_t)n : (vals ? vals[i] : 0);
    put_uint(h + off, v, w, kind_little(k));
    off += w;
  }
  if (L.ck_width) {
    uint64_t ck = lb_frame_checksum((int)f->checksum, h, L.header_len + n);
    put_uint(h + L.header_len + n, ck, L.ck_width,
             f->checksum_order == LB_FRAME_LITTLE_ENDIAN);
  }
  return (ptrdiff_t)total;
}

/* Reads a checksum of width w (2, 4 or 8) stored big- or little-endian,
 * without a per-byte loop (this runs once per decoded frame). */
static inline uint64_t get_ck(const uint8_t *p, size_t w, int little) {
  uint64_t v;
  switch (w) {
  case 2:
    return little ? (uint64_t)p[1] << 8 | p[0] : (uint64_t)p[0] << 8 | p[1];
  case 4:
    v = little ? (uint64_t)p[3] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[1] << 8 | p[0]
               : (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
    return v;
  default:
    v = lb_load_le64(p);
    return little ? v : __builtin_bswap64(v);
  }
}

/* ---- the reference decoder --------------------------------------------- */

/* Decodes the frame at src[0..n) under the layout compiled from f (only
 * its sizes, offsets and limit: the fields are read by kind from f, field
 * by field and byte by byte): the plain statement of lb_frame_decode's
 * contract. The compiled decoder below is the fast path of this function;
 * the tests and the fuzzer compare the two on every kind of input, so
 * this one stays as the specification (non-static for them). */
static ptrdiff_t decode_one(const lb_frame_format *f, const lb_frame_compiled *L,
                            const uint8_t *src, size_t n, uint64_t *vals,
                            size_t *payload_off, size_t *payload_len) {
  /* The prefix is compared on whatever part of it has arrived, so a wrong
   * first byte is reported at once instead of after prefix_len bytes. */
  size_t pl = L->prefix_len;
  if (pl) {
    size_t m = n < pl ? n : pl;
    for (size_t i = 0; i < m; i++)
      if (src[i] != f->prefix[i]) return LB_EPREFIX;
    if (n < pl) return LB_EAGAIN;
  }

  const uint8_t *h = src + pl;
  size_t avail = n - pl;
  const uint32_t len_kind = f->fields[L->len_index];
  size_t lw = field_width[len_kind];
  /* The length is checked as soon as its field is readable: a peer
   * announcing a huge frame is refused before we buffer any of it. */
  if (avail < L->len_off + lw) return LB_EAGAIN;
  uint64_t plen = get_field(len_kind, h + L->len_off);
  if (plen > L->max_payload) return LB_ETOOLARGE;
  if (avail < L->header_len) return LB_EAGAIN;

  /* plen <= max_payload <= PTRDIFF_MAX - MAX_OVERHEAD: no wrap. */
  size_t body = L->header_len + (size_t)plen;
  size_t total = pl + body + L->ck_width;
  if (n < total) return LB_EAGAIN;

  if (L->ck_width) {
    uint64_t want = lb_frame_checksum((int)f->checksum, h, body);
    uint64_t got = get_ck(h + body, L->ck_width,
                          f->checksum_order == LB_FRAME_LITTLE_ENDIAN);
    if (want != got) return LB_ECHECKSUM;
  }
  if (vals) {
    size_t off = 0;
    for (uint32_t i = 0; i < f->nfields; i++) {
      uint32_t k = f->fields[i];
      vals[i] = get_field(k, h + off);
      off += field_width[k];
    }
  }
  if (payload_off) *payload_off = pl + L->header_len;
  if (payload_len) *payload_len = (size_t)plen;
  return (ptrdiff_t)total;
}

ptrdiff_t lb__frame_decode_ref(const lb_frame_format *f, const uint8_t *src,
                               size_t n, uint64_t *vals, size_t *payload_off,
                               size_t *payload_len);
ptrdiff_t lb__frame_decode_ref(const lb_frame_format *f, const uint8_t *src,
                               size_t n, uint64_t *vals, size_t *payload_off,
                               size_t *payload_len) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  if (compile_format(f, &L, &why, &idx) != 0) return LB_EFORMAT;
  return decode_one(f, &L, src, n, vals, payload_off, payload_len);
}

/* ---- compiled formats --------------------------------------------------- */

int lb_frame_compile(const lb_frame_format *f, lb_frame_compiled *c) {
  const char *why;
  int idx;
  if (c == NULL) return LB_EFORMAT;
  memset(c, 0, sizeof *c);
  if (compile_format(f, c, &why, &idx) != 0) {
    memset(c, 0, sizeof *c);
    return LB_EFORMAT;
  }
  return 0;
}

/* The w-byte (1..8) unsigned integer at p, big- or little-endian, read a
 * byte at a time (for fields near the end of the input). */
static inline uint64_t get_bytes(const uint8_t *p, size_t w, int big) {
  uint64_t v = 0;
  if (big) for (size_t i = 0; i < w; i++) v = v << 8 | p[i];
  else for (size_t i = w; i-- > 0;) v = v << 8 | p[i];
  return v;
}

/* The w-byte field at p read as one 64-bit word (8 bytes at p must be
 * readable): byte swapped when big-endian, cut to its width. */
static inline uint64_t get_word(const uint8_t *p, unsigned cut, int big) {
  uint64_t x = lb_load_le64(p);
  x = big ? __builtin_bswap64(x) : x << cut;
  return x >> cut;
}

/* The frame's checksum as computed by path c->ck_path over h[0..body). */
static inline uint64_t compiled_checksum(const lb_frame_compiled *c, const uint8_t *h,
                                         size_t body) {
  switch (c->ck_path) {
  case CK_PATH_CRC32:
    if (body < CRC32_ZLIB_MIN) return crc32_slice8(t32, 0, h, body);
    return (uint32_t)crc32_z(0, h, body);
#ifdef LB__CRC32C_HW
  case CK_PATH_CRC32C_HW: return crc32c_hw_update(0, h, body);
#endif
  default: return lb_frame_checksum((int)c->checksum, h, body);
  }
}

/* decode_one under a compiled format, for inputs with fewer than 8 bytes
 * past the header (a partial frame, or a frame with a tiny payload at the
 * very end of the input): every read byte by byte, never past src + n. */
__attribute__((noinline)) static ptrdiff_t decode_narrow(const lb_frame_compiled *c,
                                                         const uint8_t *src, size_t n,
                                                         uint64_t *vals, size_t *payload_off,
                                                         size_t *payload_len) {
  /* The part of the prefix that has arrived, then the length as soon as
   * its field has: decode_one's order of results. */
  const size_t pl = c->prefix_len, m = n < pl ? n : pl;
  for (size_t i = 0; i < m; i++)
    if (src[i] != c->prefix[i]) return LB_EPREFIX;
  const size_t j = c->len_index, lo = pl + c->len_off, lw = 8 - c->field_cut[j] / 8u;
  if (n < lo + lw) return LB_EAGAIN;
  const uint64_t plen = get_bytes(src + lo, lw, c->field_big[j]);
  if (plen > c->max_payload) return LB_ETOOLARGE;
  const size_t head = pl + c->header_len;
  if (n < head) return LB_EAGAIN;
  /* plen <= max_payload <= PTRDIFF_MAX - MAX_OVERHEAD: no wrap. */
  const size_t body = c->header_len + (size_t)plen, total = head + (size_t)plen + c->ck_width;
  if (n < total) return LB_EAGAIN;
  const uint8_t *h = src + pl;
  if (c->ck_path != CK_PATH_NONE &&
      compiled_checksum(c, h, body) != get_ck(h + body, c->ck_width, c->ck_little))
    return LB_ECHECKSUM;
  if (vals)
    for (uint32_t f = 0; f < c->nfields; f++)
      vals[f] = get_bytes(h + c->field_off[f], 8 - c->field_cut[f] / 8u, c->field_big[f]);
  if (payload_off) *payload_off = head;
  if (payload_len) *payload_len = (size_t)plen;
  return (ptrdiff_t)total;
}

/* decode_one under a compiled format. With 8 bytes readable past the
 * header (the common case: a frame with its checksum or a payload of 8
 * bytes or more, or more input after it) the prefix of up to 8 bytes is
 * compared as one word under a mask and each header field is read as one
 * word at its offset, byte swapped when big-endian and cut to its width;
 * the checksum goes by the path chosen at compile time. Otherwise
 * decode_narrow. */
static inline ptrdiff_t decode_compiled(const lb_frame_compiled *c, const uint8_t *src,
                                        size_t n, uint64_t *vals, size_t *payload_off,
                                        size_t *payload_len) {
  const size_t pl = c->prefix_len, hl = c->header_len, head = pl + hl;
  if (n < head + 8) return decode_narrow(c, src, n, vals, payload_off, payload_len);
  if (pl <= 8) {
    if ((lb_load_le64(src) ^ c->prefix_word) & c->prefix_mask) return LB_EPREFIX;
  } else {
    for (size_t i = 0; i < pl; i++)
      if (src[i] != c->prefix[i]) return LB_EPREFIX;
  }
  const uint8_t *h = src + pl;
  const uint32_t lj = c->len_index;
  const uint64_t plen = get_word(h + c->len_off, c->field_cut[lj], c->field_big[lj]);
  if (plen > c->max_payload) return LB_ETOOLARGE;
  /* plen <= max_payload <= PTRDIFF_MAX - MAX_OVERHEAD: no wrap. */
  const size_t body = hl + (size_t)plen, total = head + (size_t)plen + c->ck_width;
  if (n < total) return LB_EAGAIN;
  if (c->ck_path != CK_PATH_NONE &&
      compiled_checksum(c, h, body) != get_ck(h + body, c->ck_width, c->ck_little))
    return LB_ECHECKSUM;
  if (vals)
    for (uint32_t j = 0; j < c->nfields; j++)
      vals[j] = get_word(h + c->field_off[j], c->field_cut[j], c->field_big[j]);
  if (payload_off) *payload_off = head;
  if (payload_len) *payload_len = (size_t)plen;
  return (ptrdiff_t)total;
}

ptrdiff_t lb_frame_decode_compiled(const lb_frame_compiled *c, const uint8_t *src,
                                   size_t n, uint64_t *vals, size_t *payload_off,
                                   size_t *payload_len) {
  if (c == NULL || c->ready != COMPILED_READY) return LB_EFORMAT;
  return decode_compiled(c, src, n, vals, payload_off, payload_len);
}

ptrdiff_t lb_frame_decode(const lb_frame_format *f, const uint8_t *src,
                          size_t n, uint64_t *vals, size_t *payload_off,
                          size_t *payload_len) {
  lb_frame_compiled c;
  const char *why;
  int idx;
  if (compile_format(f, &c, &why, &idx) != 0) return LB_EFORMAT;
  return decode_compiled(&c, src, n, vals, payload_off, payload_len);
}

ptrdiff_t lb_frame_decode_batch_compiled(const lb_frame_compiled *c, const uint8_t *src,
                                         size_t n, size_t max_frames,
                                         lb_frame_span *spans, uint64_t *vals,
                                         size_t *count, int *stop) {
  if (count) *count = 0;
  if (stop) *stop = LB_EFORMAT;
  if (c == NULL || c->ready != COMPILED_READY) return LB_EFORMAT;
  const uint32_t nf = c->nfields;
  size_t used = 0, k = 0;
  int code = 0;
  while (k < max_frames) {
    size_t off, len;
    ptrdiff_t r = decode_compiled(c, src + used, n - used, vals ? vals + k * nf : NULL,
                                  &off, &len);
    if (r < 0) { code = (int)r; break; }
    if (spans) {
      spans[k].start = used;
      spans[k].len = (size_t)r;
      spans[k].payload_off = used + off;
      spans[k].payload_len = len;
    }
    used += (size_t)r;
    k++;
  }
  if (count) *count = k;
  if (stop) *stop = code;
  return (ptrdiff_t)used;
}

ptrdiff_t lb_frame_decode_batch(const lb_frame_format *f, const uint8_t *src,
                                size_t n, size_t max_frames,
                                lb_frame_span *spans, uint64_t *vals,
                                size_t *count, int *stop) {
  lb_frame_compiled c;
  if (count) *count = 0;
  if (stop) *stop = LB_EFORMAT;
  if (lb_frame_compile(f, &c) != 0) return LB_EFORMAT;
  return lb_frame_decode_batch_compiled(&c, src, n, max_frames, spans, vals, count, stop);
}

size_t lb_frame_find_prefix(const lb_frame_format *f, const uint8_t *src, size_t n) {
  lb_frame_compiled L;
  const char *why;
  int idx;
  if (compile_format(f, &L, &why, &idx) != 0) return n;
  size_t pl = L.prefix_len;
  if (pl == 0 || n == 0) return 0;
  size_t i = 0;
  while (i < n) {
    const uint8_t *hit = memchr(src + i, f->prefix[0], n - i);
    if (hit == NULL) return n;
    i = (size_t)(hit - src);
    size_t rem = n - i;
    size_t m = rem < pl ? rem : pl;
    if (memcmp(src + i, f->prefix, m) == 0) return i;
    i++;
  }
  return n;
}
