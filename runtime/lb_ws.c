/* lb_ws.c: RFC 6455 framing, masking, UTF-8, close frames, handshake keys.
 * Nothing here allocates; the only library calls are OpenSSL's SHA1() and
 * RAND_bytes() for the handshake and mask keys. */
#include "lowbit/lb_base.h"
#include "lowbit/lb_ws.h"

#include <limits.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX2__)
#include <immintrin.h>
#define LB__WS_AVX2_DISPATCH 1
#elif defined(__AVX2__)
#include <immintrin.h>
#endif

/* ---- frame header ------------------------------------------------------ */

static int reserved_opcode(unsigned op) {
  /* RFC 6455 5.2: 0x3-0x7 are reserved for further non-control frames,
   * 0xB-0xF for further control frames. */
  return (op >= 0x3 && op <= 0x7) || op >= 0xB;
}

ptrdiff_t lb_ws_parse_header(lb_ws_header *h, const uint8_t *in, size_t len,
                             int flags, uint64_t max_payload) {
  /* Every check runs as soon as the bytes it needs are present, always in
   * the same order, so the verdict for a prefix is either LB_EAGAIN or the
   * verdict for the whole header. */
  if (len < 1) return LB_EAGAIN;
  unsigned b0 = in[0];
  unsigned op = b0 & 0x0F, rsv = b0 & 0x70, fin = b0 >> 7;
  if (reserved_opcode(op)) return LB_EOPCODE;
  if (rsv & ~(unsigned)(flags & 0x70)) return LB_ERSV;
  if (len < 2) return LB_EAGAIN;
  unsigned b1 = in[1];
  unsigned masked = b1 >> 7, len7 = b1 & 0x7F;
  /* RFC 6455 5.1: a client masks every frame, a server never does. */
  if ((flags & LB_WS_SERVER) && !masked) return LB_EMASK;
  if ((flags & LB_WS_CLIENT) && masked) return LB_EMASK;
  /* 5.5: control frames are never fragmented and carry at most 125 bytes,
   * so their 7-bit length is final (126/127 would announce more). */
  if ((op & 0x8) && (!fin || len7 > LB_WS_MAX_CONTROL_PAYLOAD)) return LB_ECONTROL;

  size_t pos = 2;
  uint64_t plen = len7;
  if (len7 == 126) {
    if (len < 4) return LB_EAGAIN;
    plen = ((uint64_t)in[2] << 8) | in[3];
    /* 5.2: "the minimal number of bytes MUST be used to encode the length" */
    if (plen < 126 && !(flags & LB_WS_LAX_LENGTH)) return LB_EPROTO;
    pos = 4;
  } else if (len7 == 127) {
    /* The most significant bit MUST be 0: decidable from byte 2 alone. */
    if (len >= 3 && (in[2] & 0x80)) return LB_EPROTO;
    if (len < 10) return LB_EAGAIN;
    plen = 0;
    for (int i = 2; i < 10; i++) plen = (plen << 8) | in[i];
    if (plen <= 0xFFFF && !(flags & LB_WS_LAX_LENGTH)) return LB_EPROTO;
    pos = 10;
  }
  if (max_payload != 0 && plen > max_payload) return LB_ETOOLARGE;

  size_t need = pos + (masked ? 4 : 0);
  if (len < need) return LB_EAGAIN;
  h->payload_len = plen;
  h->fin = (uint8_t)fin;
  h->rsv = (uint8_t)rsv;
  h->opcode = (uint8_t)op;
  h->masked = (uint8_t)masked;
  if (masked) memcpy(h->mask, in + pos, 4);
  else memset(h->mask, 0, 4);
  h->header_len = (uint8_t)need;
  memset(h->pad, 0, sizeof h->pad);
  return (ptrdiff_t)need;
}

int lb_ws_close_code_for(int err) {
  if (err >= 0) return LB_WS_CLOSE_NORMAL;
  switch (err) {
  case LB_EUTF8:
  case LB_EDEFLATE: return LB_WS_CLOSE_INVALID_DATA;
  case LB_ETOOLARGE: return LB_WS_CLOSE_TOO_BIG;
  default: break;
  }
  if (err <= -100 && err > -200) return LB_WS_CLOSE_PROTOCOL_ERROR;
  return LB_WS_CLOSE_INTERNAL;
}

int lb_ws_header_len(int mask, uint64_t payload_len) {
  int n = payload_len < 126 ? 2 : payload_len <= 0xFFFF ? 4 : 10;
  return n + (mask ? 4 : 0);
}

ptrdiff_t lb_ws_build_header(uint8_t *dst, size_t cap, int fin, int rsv1,
                             int opcode, int mask, const uint8_t key[4],
                             uint64_t payload_len) {
  if (opcode < 0 || opcode > 0xF || reserved_opcode((unsigned)opcode)) return LB_EINVAL;
  if (payload_len >> 63) return LB_EINVAL;
  if (mask && key == NULL) return LB_EINVAL;
  if ((opcode & 0x8) && (!fin || rsv1 || payload_len > LB_WS_MAX_CONTROL_PAYLOAD))
    return LB_EINVAL;
  int n = lb_ws_header_len(mask, payload_len);
  if (cap < (size_t)n) return LB_ENOSPACE;
  dst[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
  uint8_t mbit = mask ? 0x80 : 0;
  size_t pos;
  if (payload_len < 126) {
    dst[1] = (uint8_t)(mbit | payload_len);
    pos = 2;
  } else if (payload_len <= 0xFFFF) {
    dst[1] = (uint8_t)(mbit | 126);
    dst[2] = (uint8_t)(payload_len >> 8);
    dst[3] = (uint8_t)payload_len;
    pos = 4;
  } else {
    dst[1] = (uint8_t)(mbit | 127);
    for (int i = 0; i < 8; i++) dst[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    pos = 10;
  }
  if (mask) memcpy(dst + pos, key, 4);
  return n;
}

/* ---- masking ----------------------------------------------------------- */

#ifdef LB__WS_AVX2_DISPATCH
/* Compiled for AVX2 regardless of -march; only called after the CPU said it
 * has AVX2. Handles whole 64-byte blocks and returns how many it did. */
__attribute__((target("avx2"))) static size_t mask_avx2(uint8_t *d, size_t n,
                                                        const uint8_t k[32]) {
  __m256i m = _mm256_loadu_si256((const __m256i *)(const void *)k);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(void *)(d + i));
    __m256i b = _mm256_loadu_si256((const __m256i *)(void *)(d + i + 32));
    _mm256_storeu_si256((__m256i *)(void *)(d + i), _mm256_xor_si256(a, m));
    _mm256_storeu_si256((__m256i *)(void *)(d + i + 32), _mm256_xor_si256(b, m));
  }
  return i;
}

static int have_avx2(void) {
  static int cached = -1; /* benign race: every thread computes the same */
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx2") ? 1 : 0;
  }
  return cached;
}
#endif

void lb_ws_mask(uint8_t *d, size_t n, const uint8_t key[4], size_t offset) {
  /* k is the key rotated so that k[i & 3] applies to d[i]; a pattern of
   * period 4 repeated, so any 8/16/32-byte window at a multiple of 4 from d
   * uses the same bytes. */
  uint8_t k[32];
  for (int i = 0; i < 32; i++) k[i] = key[(offset + (size_t)i) & 3];
  size_t i = 0;
#ifdef LB__WS_AVX2_DISPATCH
  if (n >= 256 && have_avx2()) i = mask_avx2(d, n, k);
#elif defined(__AVX2__)
  if (n >= 64) {
    __m256i m = _mm256_loadu_si256((const __m256i *)(const void *)k);
    for (; i + 32 <= n; i += 32) {
      __m256i a = _mm256_loadu_si256((const __m256i *)(void *)(d + i));
      _mm256_storeu_si256((__m256i *)(void *)(d + i), _mm256_xor_si256(a, m));
    }
  }
#endif
#if defined(__SSE2__)
  if (n - i >= 32) {
    __m128i m = _mm_loadu_si128((const __m128i *)(const void *)k);
    for (; i + 32 <= n; i += 32) {
      __m128i a = _mm_loadu_si128((const __m128i *)(void *)(d + i));
      __m128i b = _mm_loadu_si128((const __m128i *)(void *)(d + i + 16));
      _mm_storeu_si128((__m128i *)(void *)(d + i), _mm_xor_si128(a, m));
      _mm_storeu_si128((__m128i *)(void *)(d + i + 16), _mm_xor_si128(b, m));
    }
  }
#endif
  /* memcpy keeps unaligned word access defined; compilers emit one load. */
  uint64_t w;
  memcpy(&w, k, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, d + i, 8);
    x ^= w;
    memcpy(d + i, &x, 8);
  }
  for (; i < n; i++) d[i] ^= k[i & 3];
}

int lb_ws_random(uint8_t *dst, size_t n) {
  while (n > 0) {
    int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(dst, chunk) != 1) return LB_EINTERNAL;
    dst += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

/* ---- message state ----------------------------------------------------- */

int lb_ws_msg_frame(lb_ws_msg *m, const lb_ws_header *h, uint64_t limit) {
  unsigned op = h->opcode;
  if (reserved_opcode(op) || op > 0xF) return LB_EOPCODE;
  if (op & 0x8) {
    /* RFC 7692 6.1: RSV1 marks a compressed message; control frames are
     * never compressed. Control frames do not touch the data message. */
    if (h->rsv & LB_WS_RSV1) return LB_ERSV;
    return (int)op;
  }
  if (op == LB_WS_OP_CONT) {
    if (!m->open) return LB_EFRAGMENT;
    /* RFC 7692 6.1: RSV1 only on the first frame of a message. */
    if (h->rsv & LB_WS_RSV1) return LB_ERSV;
    /* m->len <= limit holds, so limit - m->len does not wrap. */
    if (limit != 0 && h->payload_len > limit - m->len) return LB_ETOOLARGE;
    m->len += h->payload_len;
    if (h->fin) m->open = 0;
    return m->opcode;
  }
  if (m->open) return LB_EFRAGMENT;
  if (limit != 0 && h->payload_len > limit) return LB_ETOOLARGE;
  m->len = h->payload_len;
  m->opcode = (uint8_t)op;
  m->compressed = (h->rsv & LB_WS_RSV1) ? 1 : 0;
  m->open = h->fin ? 0 : 1;
  return (int)op;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* State layout: 0 = at a boundary; otherwise bits 0-1 hold how many
 * continuation bytes are still due, bits 8-15 and 16-23 the inclusive range
 * of the next one (RFC 3629 4 narrows the second byte after E0, ED, F0, F4
 * to exclude overlongs, surrogates and code points above U+10FFFF). */
#define U8_BAD 0x80000000u
#define U8_ST(need, lo, hi) ((uint32_t)(need) | ((uint32_t)(lo) << 8) | ((uint32_t)(hi) << 16))

/* For a lead byte: the state expecting its first continuation byte, or 0
 * when the byte cannot start a sequence (80-C1 and F5-FF). */
static uint32_t lead_state(unsigned c) {
  if (c >= 0xC2 && c <= 0xDF) return U8_ST(1, 0x80, 0xBF);
  if (c == 0xE0) return U8_ST(2, 0xA0, 0xBF);
  if (c == 0xED) return U8_ST(2, 0x80, 0x9F);
  if (c >= 0xE1 && c <= 0xEF) return U8_ST(2, 0x80, 0xBF);
  if (c == 0xF0) return U8_ST(3, 0x90, 0xBF);
  if (c >= 0xF1 && c <= 0xF3) return U8_ST(3, 0x80, 0xBF);
  if (c == 0xF4) return U8_ST(3, 0x80, 0x8F);
  return 0;
}

/* Feeds continuation bytes to a pending sequence; *i advances. Returns the
 * new state (0 at a boundary) or U8_BAD. */
static uint32_t u8_pending(uint32_t st, const uint8_t *p, size_t n, size_t *i) {
  while (st != 0 && *i < n) {
    unsigned c = p[*i];
    unsigned need = st & 3, lo = (st >> 8) & 0xFF, hi = (st >> 16) & 0xFF;
    if (c < lo || c > hi) return U8_BAD;
    (*i)++;
    need--;
    st = need ? U8_ST(need, 0x80, 0xBF) : 0;
  }
  return st;
}

#define HIGH_BITS 0x8080808080808080ull

int lb_utf8_validate(lb_utf8_state *s, const uint8_t *p, size_t n) {
  uint32_t st = s->state;
  size_t i = 0;
  if (st == U8_BAD) return LB_EUTF8;
  if (st != 0) {
    st = u8_pending(st, p, n, &i);
    if (st != 0) goto out; /* out of input, or bad */
  }
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      /* ASCII run: 16 then 8 bytes per step. */
      i++;
      while (i + 16 <= n) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        if ((a | b) & HIGH_BITS) break;
        i += 16;
      }
      if (i + 8 <= n) {
        uint64_t a;
        memcpy(&a, p + i, 8);
        if (!(a & HIGH_BITS)) i += 8;
      }
      while (i < n && p[i] < 0x80) i++;
      continue;
    }
    uint32_t ls = lead_state(c);
    if (ls == 0) { st = U8_BAD; goto out; }
    unsigned need = ls & 3;
    if (i + need < n) {
      /* The whole sequence is here: check it in place. */
      unsigned c1 = p[i + 1];
      if (c1 < ((ls >> 8) & 0xFF) || c1 > ((ls >> 16) & 0xFF)) { st = U8_BAD; goto out; }
      for (unsigned k = 2; k <= need; k++)
        if ((p[i + k] & 0xC0) != 0x80) { st = U8_BAD; goto out; }
      i += need + 1;
    } else {
      i++;
      st = u8_pending(ls, p, n, &i);
      goto out; /* input exhausted (st pending) or bad */
    }
  }
out:
  s->state = st;
  return st == U8_BAD ? LB_EUTF8 : 0;
}

int lb_utf8_finish(const lb_utf8_state *s) { return s->state == 0 ? 0 : LB_EUTF8; }

int lb_utf8_check(const uint8_t *p, size_t n) {
  lb_utf8_state s = {0};
  if (lb_utf8_validate(&s, p, n) != 0) return LB_EUTF8;
  return lb_utf8_finish(&s);
}

/* ---- close frames ------------------------------------------------------ */

int lb_ws_close_code_valid(int code) {
  /* RFC 6455 7.4.1-7.4.2 and the IANA registry: 1004 is reserved, 1005,
   * 1006 and 1015 are never sent, 1014 is not accepted here, 1016-2999 are
   * reserved for future protocol use, 3000-4999 are for libraries and apps. */
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1013) return 1;
  if (code >= 3000 && code <= 4999) return 1;
  return 0;
}

int lb_ws_check_close_payload(const uint8_t *p, size_t n) {
  if (n == 0) return LB_WS_CLOSE_NO_STATUS;
  if (n == 1) return LB_EPROTO; /* 5.5.1: a body starts with a 2-byte code */
  if (n > LB_WS_MAX_CONTROL_PAYLOAD) return LB_ECONTROL;
  int code = (p[0] << 8) | p[1];
  if (!lb_ws_close_code_valid(code)) return LB_ECLOSECODE;
  if (lb_utf8_check(p + 2, n - 2) != 0) return LB_EUTF8;
  return code;
}

ptrdiff_t lb_ws_build_close(uint8_t *dst, size_t cap, int code,
                            const char *reason, size_t reason_len) {
  if (!lb_ws_close_code_valid(code)) return LB_EINVAL;
  if (reason_len > LB_WS_MAX_CLOSE_REASON || (reason_len && reason == NULL)) return LB_EINVAL;
  if (lb_utf8_check((const uint8_t *)reason, reason_len) != 0) return LB_EUTF8;
  if (cap < 2 + reason_len) return LB_ENOSPACE;
  dst[0] = (uint8_t)(code >> 8);
  dst[1] = (uint8_t)code;
  if (reason_len) memcpy(dst + 2, reason, reason_len);
  return (ptrdiff_t)(2 + reason_len);
}

/* ---- handshake --------------------------------------------------------- */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out must hold 4 * ceil(n / 3) bytes. */
static size_t b64_encode(char *out, const uint8_t *in, size_t n) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = B64[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = '=';
  }
  return o;
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_MAX 64

int lb_ws_accept_key(const char *key, size_t len, char out[28]) {
  /* A real key is 24 bytes; the cap keeps the concatenation on the stack. */
  uint8_t buf[WS_KEY_MAX + sizeof WS_GUID];
  uint8_t md[SHA_DIGEST_LENGTH];
  if (len > WS_KEY_MAX || (len && key == NULL)) return LB_EINVAL;
  if (len) memcpy(buf, key, len);
  memcpy(buf + len, WS_GUID, sizeof WS_GUID - 1);
  if (SHA1(buf, len + sizeof WS_GUID - 1, md) == NULL) return LB_EINTERNAL;
  b64_encode(out, md, sizeof md);
  return LB_WS_ACCEPT_LEN;
}

static int b64_char(unsigned c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int lb_ws_client_key_valid(const char *key, size_t len) {
  /* 16 bytes = 5 full groups + 1 byte: 22 symbols and "==". The unused low
   * bits of the last symbol are not checked (decoders ignore them). */
  if (key == NULL || len != LB_WS_KEY_LEN) return 0;
  for (int i = 0; i < 22; i++)
    if (!b64_char((unsigned char)key[i])) return 0;
  return key[22] == '=' && key[23] == '=';
}

int lb_ws_client_key(char out[24]) {
  uint8_t raw[16];
  if (lb_ws_random(raw, sizeof raw) != 0) return LB_EINTERNAL;
  b64_encode(out, raw, sizeof raw);
  return LB_WS_KEY_LEN;
}
