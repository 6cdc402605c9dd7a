/* lb_inflate.c: raw DEFLATE (RFC 1951) decoding of whole buffers.
 *
 * Design:
 * - Bits are read LSB first from a 64-bit buffer. While 8 or more input
 *   bytes are left it is refilled by one unaligned 8-byte load (the bytes
 *   that do not fit whole stay in the buffer above the count as copies of
 *   the next input byte, which the next load ORs in again unchanged); near
 *   the end of the input it is refilled a byte at a time, with zero bytes
 *   once the input is exhausted. `pad` counts those zero bytes, and reading
 *   any of their bits means the stream was truncated (checked after every
 *   step taken outside the fast loop, before any output or success).
 * - Huffman codes are decoded with one table lookup on the next ROOT bits;
 *   codes longer than that go through a second-level table for their
 *   ROOT-bit prefix, sized for the longest code under it. Table sizes are
 *   the maxima over all valid code sets (as computed by zlib's
 *   examples/enough.c: 1332 entries for 286 literal/length codes with
 *   10 root bits, 400 for 30 distance codes with 8).
 * - The fast loop (fast_huff) runs while 16 input bytes and FAST_OUT
 *   output bytes are left: one refill covers a whole length/distance pair
 *   (at most 48 bits), and match copies may write up to COPY_SLACK bytes
 *   past their end. Copies go by 16-byte chunks (distance >= 16) or 8-byte
 *   words; a distance of 1 broadcasts the byte, distances 2-7 build one word
 *   of the repeating pattern and store it at a stride that is a multiple of
 *   the distance. Everything else (block headers, stored blocks, the last
 *   symbols) goes one step at a time with every check; its matches use the
 *   same copies while COPY_SLACK bytes of room are left past them.
 */
#include "lowbit/lb_base.h"
#include "lb_bytes.h"
#include "lowbit/lb_inflate.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

enum {
  LIT_ROOT = 10,
  DIST_ROOT = 8,
  PRE_ROOT = 7,
  LIT_ENOUGH = 1332, /* enough 286 10 15 */
  DIST_ENOUGH = 400, /* enough 30 8 15 */
  PRE_ENOUGH = 128,  /* enough 19 7 7 */
  MAX_LIT = 286,     /* HLIT past this is rejected, as zlib does */
  MAX_DIST = 30,
  COPY_SLACK = 32,   /* copy_match writes up to this past the match */
  FAST_OUT = 258 + COPY_SLACK + 4
};

/* Table entry (32 bits):
 *   bits 0-5    bits to drop: the code's bits at this level plus the extra
 *               bits after it (length, distance); a link: ROOT
 *   bits 8-11   the code's bits at this level (the extra bits start
 *               there); a link: the second-level table's index bits
 *   bits 12-14  kind: E_LINK, E_EOB, E_BAD, none = length/distance
 *   bits 16-30  literal byte, length or distance base, or link offset
 *   bit 31      E_LIT: a literal (a sign test) */
#define E_LINK 0x2000u
#define E_EOB 0x4000u
#define E_BAD 0x1000u
#define E_LIT 0x80000000u

struct lb_inflate {
  uint32_t fixed_lit[1 << 9]; /* fixed codes are at most 9 bits: one level */
  uint32_t fixed_dist[1 << 5];
  uint32_t lit[LIT_ENOUGH];
  uint32_t dist[DIST_ENOUGH];
  uint32_t pre[PRE_ENOUGH];
  uint8_t lens[MAX_LIT + MAX_DIST];
};

/* RFC 1951 3.2.5 */
static const uint16_t LEN_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
                                      15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LEN_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DIST_BASE[30] = {1,    2,    3,    4,    5,    7,     9,     13,
                                       17,   25,   33,   49,   65,   97,    129,   193,
                                       257,  385,  513,  769,  1025, 1537,  2049,  3073,
                                       4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DIST_EXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
/* RFC 1951 3.2.7: the order code length code lengths are sent in */
static const uint8_t PRE_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                      11, 4, 12, 3, 13, 2, 14, 1, 15};

enum { K_LIT, K_DIST, K_PRE };

/* The entry for sym without its bit counts; the extra bit count, if any,
 * in bits 8-11 (see with_len). */
static uint32_t sym_entry(int kind, unsigned sym) {
  if (kind == K_PRE) return (uint32_t)sym << 16;
  if (kind == K_LIT) {
    if (sym < 256) return E_LIT | (uint32_t)sym << 16; /* (uint8_t)(e >> 16) is the byte */
    if (sym == 256) return E_EOB;
    if (sym >= 286) return E_BAD; /* 286, 287: only in the fixed code */
    sym -= 257;
    return (uint32_t)LEN_BASE[sym] << 16 | (uint32_t)LEN_EXTRA[sym] << 8;
  }
  if (sym >= 30) return E_BAD; /* 30, 31: only in the fixed code */
  return (uint32_t)DIST_BASE[sym] << 16 | (uint32_t)DIST_EXTRA[sym] << 8;
}

/* Adds the bit counts for a code of cl bits at its level. */
static uint32_t with_len(uint32_t e, unsigned cl) {
  unsigned extra = e >> 8 & 15;
  return (e & ~0xfffu) | cl << 8 | (cl + extra);
}

/* Builds the decoding table for code lengths lens[0..n) (0 = unused) into
 * t[0..cap). Returns the root bits used (the longest code when shorter than
 * root), or -1 for an over-subscribed set or an incomplete one that zlib
 * would not take. */
static int build_table(uint32_t *t, size_t cap, unsigned root, const uint8_t *lens, unsigned n,
                       int kind) {
  unsigned count[16], offs[16], c4[4][16];
  uint16_t sorted[MAX_LIT + 2];
  /* Four sets of counters: increments of one counter would each wait for
   * the one before (most lengths are equal). */
  memset(c4, 0, sizeof c4);
  unsigned i = 0;
  for (; i + 4 <= n; i += 4) {
    c4[0][lens[i]]++;
    c4[1][lens[i + 1]]++;
    c4[2][lens[i + 2]]++;
    c4[3][lens[i + 3]]++;
  }
  for (; i < n; i++) c4[0][lens[i]]++;
  for (unsigned len = 0; len < 16; len++) count[len] = c4[0][len] + c4[1][len] + c4[2][len] + c4[3][len];
  count[0] = 0;
  int left = 1;
  unsigned max = 0;
  for (unsigned len = 1; len <= 15; len++) {
    left = 2 * left - (int)count[len];
    if (left < 0) return -1; /* over-subscribed */
    if (count[len]) max = len;
  }
  if (left > 0) {
    /* Incomplete. zlib accepts no code at all (distances: a block that
     * uses none) and a single code of length 1, for literal/length and
     * distance codes; the unused bit pattern is an invalid code. */
    if (kind == K_PRE || max > 1) return -1;
    t[0] = t[1] = with_len(E_BAD, 1);
    if (max == 1)
      for (unsigned j = 0; j < n; j++)
        if (lens[j]) t[0] = with_len(sym_entry(kind, j), 1);
    return 1;
  }
  if (root > max) root = max;
  offs[1] = 0;
  for (unsigned len = 1; len < 15; len++) offs[len + 1] = offs[len] + count[len];
  for (unsigned j = 0; j < n; j++)
    if (lens[j]) sorted[offs[lens[j]]++] = (uint16_t)j;

  /* Canonical codes (RFC 1951 3.2.2) in order of length, then symbol,
   * kept bit-reversed (the order they are read in): huff. Going to the
   * next code adds one at the code's last bit, which is huff's top bit;
   * going to the next length appends a 0 bit, which leaves huff as it is. */
  const unsigned rmask = (1u << root) - 1;
  unsigned huff = 0, k = 0, prefix = ~0u, sub_bits = 0;
  size_t used = (size_t)1 << root, sub = 0;
  for (unsigned len = 1; len <= max; len++) {
    for (unsigned j = 0; j < count[len]; j++) {
      uint32_t e = sym_entry(kind, sorted[k++]);
      if (len <= root) {
        e = with_len(e, len);
        for (size_t x = huff; x <= rmask; x += (size_t)1 << len) t[x] = e;
      } else {
        unsigned p = huff & rmask;
        if (p != prefix) {
          /* A new second-level table: as deep as the longest code under
           * this prefix. Codes fill it in order: the rest of this length
           * first. */
          unsigned l = len;
          int avail = (1 << (len - root)) - (int)(count[len] - j);
          while (avail > 0 && l < max) {
            l++;
            avail = 2 * avail - (int)count[l];
          }
          sub_bits = l - root;
          prefix = p;
          sub = used;
          used += (size_t)1 << sub_bits;
          if (used > cap) return -1; /* cannot happen: cap is the maximum */
          t[p] = E_LINK | (uint32_t)sub << 16 | sub_bits << 8 | root;
        }
        unsigned sl = len - root;
        e = with_len(e, sl);
        for (size_t x = huff >> root; x < ((size_t)1 << sub_bits); x += (size_t)1 << sl)
          t[sub + x] = e;
      }
      unsigned inc = 1u << (len - 1);
      while (huff & inc) inc >>= 1;
      huff = inc ? (huff & (inc - 1)) + inc : 0;
    }
  }
  return (int)root;
}

lb_inflate *lb_inflate_new(void) {
  lb_inflate *st = malloc(sizeof *st);
  if (st == NULL) return NULL;
  uint8_t l[288];
  /* RFC 1951 3.2.6 */
  memset(l, 8, 144);
  memset(l + 144, 9, 112);
  memset(l + 256, 7, 24);
  memset(l + 280, 8, 8);
  if (build_table(st->fixed_lit, 1 << 9, 9, l, 288, K_LIT) != 9) goto fail;
  memset(l, 5, 32);
  if (build_table(st->fixed_dist, 1 << 5, 5, l, 32, K_DIST) != 5) goto fail;
  return st;
fail:
  free(st);
  return NULL;
}

void lb_inflate_free(lb_inflate *st) { free(st); }


static inline void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Copies a match of len bytes from dist back; dist <= op - start was
 * checked. Writes up to COPY_SLACK bytes past op + len (the first 32 bytes
 * unconditionally, then whole chunks): the caller made sure there is
 * room. */
static inline void copy_match(uint8_t *op, size_t dist, size_t len) {
  uint8_t *end = op + len;
  const uint8_t *src = op - dist;
  if (dist >= 16) {
    /* 16-byte chunks, each read whole before it is written (src + 16 <=
     * op); the first two unconditionally (most matches are short). */
    uint8_t t[16];
    memcpy(t, src, 16);
    memcpy(op, t, 16);
    memcpy(t, src + 16, 16);
    memcpy(op + 16, t, 16);
    if (len > 32) {
      op += 32;
      src += 32;
      do {
        memcpy(t, src, 16);
        memcpy(op, t, 16);
        op += 16;
        src += 16;
      } while (op < end);
    }
  } else if (dist >= 8) {
    /* Each load reads bytes that are final by then: src + 8 <= op. */
    do {
      uint64_t a, b;
      memcpy(&a, src, 8);
      memcpy(op, &a, 8);
      memcpy(&b, src + 8, 8);
      memcpy(op + 8, &b, 8);
      op += 16;
      src += 16;
    } while (op < end);
  } else if (dist == 1) {
    uint64_t v = (uint64_t)src[0] * 0x0101010101010101ull;
    do {
      store64(op, v);
      store64(op + 8, v);
      op += 16;
    } while (op < end);
  } else {
    /* One word of the pattern (byte by byte, each byte copied from dist
     * back), then that word at a stride that keeps its phase. */
    static const uint8_t stride[8] = {0, 0, 8, 6, 8, 5, 6, 7};
    for (int i = 0; i < 8; i++) op[i] = src[i];
    uint64_t v;
    memcpy(&v, op, 8);
    size_t s = stride[dist];
    op += s;
    while (op < end) {
      store64(op, v);
      op += s;
    }
  }
}

/* The bit reader and output position, handed to and back from fast_huff. */
typedef struct {
  uint64_t bb;
  unsigned bc;
  const uint8_t *ip;
  uint8_t *op;
} fast_state;

enum { FAST_LIMIT, FAST_EOB, FAST_BAD };

#define F_DROP(k)      \
  do {                 \
    unsigned k_ = (k); \
    bb >>= k_;         \
    bc -= k_;          \
  } while (0)
#define F_REFILL()          \
  do {                      \
    bb |= lb_load_le64(ip) << bc; \
    ip += (63 - bc) >> 3;   \
    bc |= 56;               \
  } while (0)
#define F_MASK(k) (((uint64_t)1 << (k)) - 1)

/* Huffman-coded symbols while ip <= ilim and op <= olim (checked before
 * each pass): no end-of-input or end-of-output checks inside. A function of
 * its own so that its few variables all live in registers. Returns
 * FAST_LIMIT (a limit reached), FAST_EOB (end of block consumed) or
 * FAST_BAD (invalid code or distance).
 *
 * Each pass starts with >= 56 bits in the buffer and the entry for the next
 * symbol already looked up, and ends with one refill (8 bytes read, at
 * most 7 taken): ilim = iend - 16 leaves room for that one and the refill
 * before the first pass. Literals come first (the common case): up to
 * four per pass (15 + 3 x 10 bits, with >= 11 bits left for each following
 * lookup). A match takes at most 48 bits (15 + 5, 15 + 13);
 * the next lookup goes before the refill when enough bits are left (it
 * then does not wait for it), and both before the copy so that they
 * overlap with it. Links to second-level tables and end-of-block are the
 * exceptions, tested once a symbol is known not to be a literal. */
static
#if defined(__GNUC__)
__attribute__((noinline))
#endif
int fast_huff(fast_state *f, const uint32_t *lt, const uint32_t *dt, uint64_t lmask,
              uint64_t dmask, const uint8_t *ilim, uint8_t *olim, uint8_t *out) {
  uint64_t bb = f->bb;
  unsigned bc = f->bc;
  const uint8_t *ip = f->ip;
  uint8_t *op = f->op;
  int r = FAST_LIMIT;
  F_REFILL();
  uint32_t e = lt[bb & lmask];
  do {
    /* here: >= 56 bits, e looked up */
    if (e & E_LIT) {
      F_DROP(e & 63);
      uint32_t e2 = lt[bb & lmask];
      *op++ = (uint8_t)(e >> 16);
      e = e2;
      if (!(e & E_LIT)) goto refill;
      F_DROP(e & 63);
      e2 = lt[bb & lmask];
      *op++ = (uint8_t)(e >> 16);
      e = e2;
      if (!(e & E_LIT)) goto refill;
      F_DROP(e & 63);
      e2 = lt[bb & lmask];
      *op++ = (uint8_t)(e >> 16);
      e = e2;
      if (!(e & E_LIT)) goto refill;
      F_DROP(e & 63);
      e2 = lt[bb & lmask];
      *op++ = (uint8_t)(e >> 16);
      e = e2;
    refill:
      F_REFILL();
      continue;
    }
    if (UNLIKELY(e & (E_LINK | E_EOB | E_BAD))) {
      if (e & E_LINK) {
        F_DROP(e & 63);
        e = lt[(e >> 16) + (bb & F_MASK(e >> 8 & 15))];
        if (e & E_LIT) {
          F_DROP(e & 63);
          *op++ = (uint8_t)(e >> 16);
          e = lt[bb & lmask];
          F_REFILL();
          continue;
        }
      }
      if (e & (E_EOB | E_BAD)) {
        F_DROP(e & 63);
        r = (e & E_BAD) ? FAST_BAD : FAST_EOB;
        break;
      }
    }
    size_t len = (e >> 16) + (size_t)((bb & F_MASK(e & 63)) >> (e >> 8 & 15));
    F_DROP(e & 63);
    uint32_t d = dt[bb & dmask];
    if (UNLIKELY(d & E_LINK)) {
      F_DROP(d & 63);
      d = dt[(d >> 16) + (bb & F_MASK(d >> 8 & 15))];
    }
    size_t dist = (d >> 16) + (size_t)((bb & F_MASK(d & 63)) >> (d >> 8 & 15));
    F_DROP(d & 63);
    /* an invalid distance code, or one before the start */
    if (UNLIKELY((d & E_BAD) || dist > (size_t)(op - out))) {
      r = FAST_BAD;
      break;
    }
    /* The next lookup needs only the table's bits (lbits <= LIT_ROOT) */
    if (LIKELY(bc >= LIT_ROOT)) {
      e = lt[bb & lmask];
      F_REFILL();
    } else {
      F_REFILL();
      e = lt[bb & lmask];
    }
    copy_match(op, dist, len);
    op += len;
  } while (ip <= ilim && op <= olim);
  f->bb = bb;
  f->bc = bc;
  f->ip = ip;
  f->op = op;
  return r;
}
#undef F_DROP
#undef F_REFILL
#undef F_MASK

int lb_inflate_decode(lb_inflate *st, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
                      lb_inflate_result *res) {
  return lb_inflate_decode2(st, in, n, NULL, 0, out, cap, res);
}

int lb_inflate_decode2(lb_inflate *st, const uint8_t *in, size_t n, const uint8_t *in2,
                       size_t n2, uint8_t *out, size_t cap, lb_inflate_result *res) {
  static const uint8_t none[1] = {0};
  uint8_t dummy[1];
  const size_t n_all = n + n2;
  if (n == 0) { /* the second part is all there is */
    in = in2;
    n = n2;
    n2 = 0;
  }
  if (n == 0) in = none;
  if (out == NULL) {
    out = dummy;
    cap = 0;
  }
  const uint8_t *ip = in, *iend = in + n, *seg = in;
  const uint8_t *next = n2 ? in2 : NULL; /* the second part, not yet reached */
  size_t before = 0;                     /* bytes of the parts left behind */
  uint8_t *op = out, *const oend = out + cap;
  uint64_t bb = 0; /* bit buffer, next bit lowest */
  unsigned bc = 0; /* valid bits in bb, <= 63 */
  size_t pad = 0;  /* zero bytes fed past the end of the input */
  int rc;

#define DROP(k)            \
  do {                     \
    unsigned k_ = (k);     \
    bb >>= k_;             \
    bc -= k_;              \
  } while (0)
#define REFILL_FAST()               \
  do {                              \
    bb |= lb_load_le64(ip) << bc;         \
    ip += (63 - bc) >> 3;           \
    bc |= 56;                       \
  } while (0)
  /* Byte at a time (first dropping the copies of the next byte that fast
   * refills leave above bc), to at least 56 bits. */
#define REFILL_SLOW()                                   \
  do {                                                  \
    bb &= ((uint64_t)1 << bc) - 1;                      \
    while (bc < 56) {                                   \
      if (ip == iend) {                                 \
        if (next != NULL) {                             \
          before += (size_t)(iend - seg);               \
          ip = seg = next;                              \
          iend = next + n2;                             \
          next = NULL;                                  \
          continue;                                     \
        }                                               \
        pad++;                                          \
      } else {                                          \
        bb |= (uint64_t)*ip++ << bc;                    \
      }                                                 \
      bc += 8;                                          \
    }                                                   \
  } while (0)
#define REFILL()                                \
  do {                                          \
    if (LIKELY(iend - ip >= 8)) REFILL_FAST();  \
    else REFILL_SLOW();                         \
  } while (0)
  /* Did we read past the end of the input? */
#define CHECK_TRUNC()                                     \
  do {                                                    \
    if (UNLIKELY(pad != 0) && bc < 8 * pad) goto bad;     \
  } while (0)
#define MASK(k) (((uint64_t)1 << (k)) - 1)

  for (;;) {
    REFILL();
    unsigned final = (unsigned)(bb & 1), type = (unsigned)(bb >> 1) & 3;
    DROP(3);
    CHECK_TRUNC();
    const uint32_t *lt, *dt;
    unsigned lbits, dbits;
    if (type == 0) {
      /* Stored (RFC 1951 3.2.4): to the byte boundary, LEN, NLEN, data. */
      DROP(bc & 7);
      REFILL();
      size_t len = (size_t)(bb & 0xffff);
      unsigned nlen = (unsigned)(bb >> 16) & 0xffff;
      DROP(32);
      CHECK_TRUNC();
      if (len != (~nlen & 0xffff)) goto bad;
      if (len > (size_t)(oend - op)) goto nospace;
      /* Whole bytes still in the buffer first (bc is a multiple of 8). */
      size_t have = bc / 8 - pad;
      while (len > 0 && have > 0) {
        *op++ = (uint8_t)bb;
        DROP(8);
        len--;
        have--;
      }
      if (len > 0) {
        if (pad) goto bad;
        /* The buffer is empty: copy straight from the input. */
        bb = 0;
        while (len > 0) {
          if (ip == iend) {
            if (next == NULL) goto bad;
            before += (size_t)(iend - seg);
            ip = seg = next;
            iend = next + n2;
            next = NULL;
            continue;
          }
          size_t k = (size_t)(iend - ip) < len ? (size_t)(iend - ip) : len;
          memcpy(op, ip, k);
          op += k;
          ip += k;
          len -= k;
        }
      }
      if (final) break;
      continue;
    }
    if (type == 1) {
      lt = st->fixed_lit;
      lbits = 9;
      dt = st->fixed_dist;
      dbits = 5;
    } else if (type == 2) {
      /* Dynamic (RFC 1951 3.2.7). */
      REFILL();
      unsigned nlit = (unsigned)(bb & 31) + 257;
      unsigned ndist = (unsigned)(bb >> 5 & 31) + 1;
      unsigned npre = (unsigned)(bb >> 10 & 15) + 4;
      DROP(14);
      if (nlit > MAX_LIT || ndist > MAX_DIST) goto bad;
      uint8_t pl[19];
      memset(pl, 0, sizeof pl);
      for (unsigned i = 0; i < npre; i++) {
        if (bc < 3) REFILL();
        pl[PRE_ORDER[i]] = (uint8_t)(bb & 7);
        DROP(3);
      }
      CHECK_TRUNC();
      int pbits = build_table(st->pre, PRE_ENOUGH, PRE_ROOT, pl, 19, K_PRE);
      if (pbits < 0) goto bad;
      uint8_t *lens = st->lens;
      unsigned total = nlit + ndist;
      for (unsigned i = 0; i < total;) {
        if (bc < 14) REFILL();
        uint32_t e = st->pre[bb & MASK(pbits)];
        DROP(e & 63);
        unsigned sym = e >> 16, rep;
        uint8_t v = 0;
        if (sym < 16) {
          lens[i++] = (uint8_t)sym;
          continue;
        }
        if (sym == 16) {
          if (i == 0) goto bad; /* nothing to repeat */
          v = lens[i - 1];
          rep = 3 + (unsigned)(bb & 3);
          DROP(2);
        } else if (sym == 17) {
          rep = 3 + (unsigned)(bb & 7);
          DROP(3);
        } else {
          rep = 11 + (unsigned)(bb & 127);
          DROP(7);
        }
        if (rep > total - i) goto bad;
        memset(lens + i, v, rep);
        i += rep;
      }
      CHECK_TRUNC();
      if (lens[256] == 0) goto bad; /* no end-of-block code */
      int lb = build_table(st->lit, LIT_ENOUGH, LIT_ROOT, lens, nlit, K_LIT);
      int db = build_table(st->dist, DIST_ENOUGH, DIST_ROOT, lens + nlit, ndist, K_DIST);
      if (lb < 0 || db < 0) goto bad;
      lt = st->lit;
      lbits = (unsigned)lb;
      dt = st->dist;
      dbits = (unsigned)db;
    } else {
      goto bad; /* reserved block type */
    }

    /* Huffman-coded data (RFC 1951 3.2.5). */
    const uint64_t lmask = MASK(lbits), dmask = MASK(dbits);
    for (;;) {
      if (iend - ip >= 16 && oend - op >= FAST_OUT) {
        fast_state f = {bb, bc, ip, op};
        int r = fast_huff(&f, lt, dt, lmask, dmask, iend - 16, oend - FAST_OUT, out);
        bb = f.bb;
        bc = f.bc;
        ip = f.ip;
        op = f.op;
        if (r == FAST_EOB) goto block_end;
        if (r == FAST_BAD) goto bad;
      }
      /* One symbol with every check. */
      REFILL();
      uint32_t e = lt[bb & lmask];
      if (e & E_LINK) {
        DROP(e & 63);
        e = lt[(e >> 16) + (bb & MASK(e >> 8 & 15))];
      }
      if (e & E_LIT) {
        DROP(e & 63);
        CHECK_TRUNC();
        if (op == oend) goto nospace;
        *op++ = (uint8_t)(e >> 16);
        continue;
      }
      if (e & (E_EOB | E_BAD)) {
        DROP(e & 63);
        CHECK_TRUNC();
        if (e & E_BAD) goto bad;
        goto block_end;
      }
      size_t len = (e >> 16) + (size_t)((bb & MASK(e & 63)) >> (e >> 8 & 15));
      DROP(e & 63);
      uint32_t d = dt[bb & dmask];
      if (d & E_LINK) {
        DROP(d & 63);
        d = dt[(d >> 16) + (bb & MASK(d >> 8 & 15))];
      }
      if (d & E_BAD) {
        DROP(d & 63);
        CHECK_TRUNC();
        goto bad;
      }
      size_t dist = (d >> 16) + (size_t)((bb & MASK(d & 63)) >> (d >> 8 & 15));
      DROP(d & 63);
      CHECK_TRUNC();
      if (dist > (size_t)(op - out)) goto bad;
      if (len > (size_t)(oend - op)) goto nospace;
      if ((size_t)(oend - op) - len >= COPY_SLACK) {
        copy_match(op, dist, len);
        op += len;
      } else {
        const uint8_t *src = op - dist;
        for (size_t i = 0; i < len; i++) op[i] = src[i];
        op += len;
      }
    }
  block_end:
    if (final) break;
  }
  CHECK_TRUNC();
  rc = LB_OK;
  goto done;
nospace:
  rc = LB_ENOSPACE;
  goto done;
bad:
  rc = LB_EDEFLATE;
done:
  if (res != NULL) {
    res->out_used = (size_t)(op - out);
    /* Input read: every byte fed to the buffer, less the whole bytes still
     * in it (the padding among them). */
    size_t used = before + (size_t)(ip - seg) + pad - bc / 8;
    res->in_used = used < n_all ? used : n_all; /* past it only when truncated */
  }
  return rc;
#undef DROP
#undef REFILL_FAST
#undef REFILL_SLOW
#undef REFILL
#undef CHECK_TRUNC
#undef MASK
}
