/* lb_deflate.c: RFC 7692 permessage-deflate on zlib (raw deflate streams),
 * and on lb_inflate for received messages that need no window from earlier
 * messages. The zlib state lives behind the opaque lb_deflate so that
 * zlib's types do not reach the public header (it is fed to LuaJIT's
 * ffi.cdef). */
#include "lowbit/lb_base.h"
#include "lowbit/lb_deflate.h"
#include "lowbit/lb_inflate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* A zlib stream on the heap: zlib's state points back at its z_stream, so
 * a stream cannot move, and a pooled one changes hands by pointer. */
typedef struct zstream {
  z_stream z;
  int inflating;        /* 1: inflate stream, 0: deflate */
  int bits, level;      /* what it was made with (the pool's key) */
  struct zstream *next; /* in the pool */
} zstream;

struct lb_deflate {
  /* A direction with context takeover owns its stream (and keeps its
   * window between messages); one without takes a stream from the thread's
   * pool for the length of one call, so that idle connections hold none. */
  zstream *d;           /* our compressor, when owned */
  zstream *i;           /* the peer's data (zlib path), when owned */
  int d_no_takeover;
  int i_no_takeover;
  int d_bits, i_bits, level;
  int whole;            /* the peer's data goes through lb_inflate (pooled) */
  uint8_t *dict;        /* inflate window kept across a BFINAL (takeover only) */
  size_t dict_cap;
};

/* The pools: per thread (contexts are used by one thread at a time, and
 * each call returns what it took before it ends), a few entries each. With
 * one event loop per thread, a call never overlaps another, so one stream
 * of each kind serves every connection. */
enum { POOL_MAX = 4 };
static __thread zstream *z_pool;
static __thread int z_pooled;
static __thread lb_inflate *w_pool[POOL_MAX];
static __thread int w_pooled;

static void zstream_free(zstream *s) {
  if (s == NULL) return;
  if (s->inflating) inflateEnd(&s->z);
  else deflateEnd(&s->z);
  free(s);
}

static zstream *zstream_new(int inflating, int bits, int level) {
  zstream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->inflating = inflating;
  s->bits = bits;
  s->level = level;
  /* Negative window bits select a raw stream: no zlib header or trailer. */
  int rc = inflating ? inflateInit2(&s->z, -bits)
                     : deflateInit2(&s->z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) { free(s); return NULL; }
  return s;
}

/* A reset stream from the pool, or a new one. */
static zstream *pool_take(int inflating, int bits, int level) {
  for (zstream **pp = &z_pool; *pp != NULL; pp = &(*pp)->next) {
    zstream *s = *pp;
    if (s->inflating == inflating && s->bits == bits && (inflating || s->level == level)) {
      *pp = s->next;
      z_pooled--;
      s->next = NULL;
      if ((inflating ? inflateReset(&s->z) : deflateReset(&s->z)) == Z_OK) return s;
      zstream_free(s);
      break;
    }
  }
  return zstream_new(inflating, bits, level);
}

static void pool_give(zstream *s) {
  if (z_pooled >= POOL_MAX) {
    /* Full: the oldest entry goes (the last one in the list). */
    zstream **pp = &z_pool;
    while ((*pp)->next != NULL) pp = &(*pp)->next;
    zstream_free(*pp);
    *pp = NULL;
    z_pooled--;
  }
  s->next = z_pool;
  z_pool = s;
  z_pooled++;
}

static lb_inflate *whole_take(void) {
  if (w_pooled > 0) return w_pool[--w_pooled];
  return lb_inflate_new();
}

static void whole_give(lb_inflate *w) {
  if (w_pooled < POOL_MAX) w_pool[w_pooled++] = w;
  else lb_inflate_free(w);
}

void lb_deflate_pool_clear(void) {
  while (z_pool != NULL) {
    zstream *s = z_pool;
    z_pool = s->next;
    zstream_free(s);
  }
  z_pooled = 0;
  while (w_pooled > 0) lb_inflate_free(w_pool[--w_pooled]);
}

/* RFC 7692 7.2.1: the 4 octets a sync flush ends with (an empty stored
 * block's LEN/NLEN), removed by the sender and appended by the receiver. */
static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

/* The whole-message path decodes payload + TAIL + an empty final stored
 * block (BFINAL=1, BTYPE=00, LEN 0, NLEN ffff): a complete raw DEFLATE stream,
 * which lb_inflate, having no streaming API, needs. The payload is not
 * copied: lb_inflate_decode2 reads the tail from here. */
static const uint8_t WHOLE_TAIL[9] = {0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff};

/* zlib takes at most UINT_MAX bytes per call; feed in slices well below. */
#define SLICE ((size_t)1 << 30)

static int window_bits(int bits) {
  if (bits == 0) return 15;
  if (bits < 8 || bits > 15) return -1;
  /* zlib >= 1.2.9 refuses a raw window of 256 bytes: 9 is the smallest. */
  return bits == 8 ? 9 : bits;
}

lb_deflate *lb_deflate_new(int deflate_bits, int deflate_no_takeover,
                           int inflate_bits, int inflate_no_takeover, int level) {
  int db = window_bits(deflate_bits), ib = window_bits(inflate_bits);
  if (db < 0 || ib < 0 || level < -1 || level > 9) return NULL;
  lb_deflate *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->d_no_takeover = deflate_no_takeover ? 1 : 0;
  c->i_no_takeover = inflate_no_takeover ? 1 : 0;
  c->d_bits = db;
  c->i_bits = ib;
  c->level = level;
  if (c->d_no_takeover) {
    /* Check now that such a stream can be made (the pool keeps it). */
    zstream *s = pool_take(0, db, level);
    if (s == NULL) goto fail;
    pool_give(s);
  } else {
    c->d = zstream_new(0, db, level);
    if (c->d == NULL) goto fail;
  }
  if (c->i_no_takeover && ib == 15) {
    /* Every message is a stream of its own (RFC 7692 7.1.1.2): decode it
     * whole with lb_inflate, several times faster than zlib's inflate.
     * It lets matches reach back to the start of the message, as a 32 KiB
     * window does for them (the largest distance is 32768); with a smaller
     * negotiated window, a peer's match past it must be refused, so those
     * stay on zlib, which behaves as before for them. */
    c->whole = 1;
    lb_inflate *w = whole_take();
    if (w == NULL) goto fail;
    whole_give(w);
    return c;
  }
  if (c->i_no_takeover) {
    zstream *s = pool_take(1, ib, 0);
    if (s == NULL) goto fail;
    pool_give(s);
    return c;
  }
  c->i = zstream_new(1, ib, 0);
  if (c->i == NULL) goto fail;
  c->dict_cap = (size_t)1 << ib;
  c->dict = malloc(c->dict_cap);
  if (c->dict == NULL) goto fail;
  return c;
fail:
  lb_deflate_free(c);
  return NULL;
}

lb_deflate *lb_deflate_new_from_params(const lb_deflate_params *p, int is_server, int level) {
  int sbits = p->server_max_window_bits;
  int cbits = p->client_max_window_bits == LB_DEFLATE_BITS_NOVALUE ? 0 : p->client_max_window_bits;
  if (is_server)
    return lb_deflate_new(sbits, p->server_no_context_takeover, cbits,
                          p->client_no_context_takeover, level);
  return lb_deflate_new(cbits, p->client_no_context_takeover, sbits,
                        p->server_no_context_takeover, level);
}

void lb_deflate_free(lb_deflate *c) {
  if (c == NULL) return;
  zstream_free(c->d);
  zstream_free(c->i);
  free(c->dict);
  free(c);
}

/* Messages this short are sent as literals: matches would save a few
 * bytes at most, and zlib's reset for each message without context
 * takeover (clearing its 64 KiB hash table) costs ten times more than
 * coding them. Go's flate does the same for its shortest inputs. */
#define LITERAL_MAX 32

/* The low 8 bits of b, reversed: Huffman codes go out most significant bit
 * first, into a stream that is otherwise filled from the least. */
static unsigned rev8(unsigned b) {
  return (unsigned)(((b * 0x0202020202ULL) & 0x010884422010ULL) % 1023);
}

/* Appends in[0..n) as one fixed-Huffman block (RFC 1951 3.2.6) of
 * literals, then the 3-bit header of an empty stored block, padded to a
 * byte: a sync-flushed stream without its final 00 00 ff ff. */
static ptrdiff_t compress_literals(const uint8_t *in, size_t n, lb_buf *out) {
  uint8_t *dst = lb_buf_reserve(out, n + n / 8 + 4);
  if (dst == NULL) return LB_ENOMEM;
  uint64_t acc = 2; /* BFINAL 0, then BTYPE 01 */
  unsigned bits = 3;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned b = in[i];
    if (b < 144) { /* 8 bits: 0x30 + b */
      acc |= (uint64_t)rev8(0x30 + b) << bits;
      bits += 8;
    } else { /* 9 bits: 0x190 + (b - 144), whose top bit is 1 */
      acc |= (uint64_t)((rev8(0x90 + b - 144) << 1) | 1) << bits;
      bits += 9;
    }
    while (bits >= 8) { dst[o++] = (uint8_t)acc; acc >>= 8; bits -= 8; }
  }
  bits += 7 + 3; /* end of block (seven 0 bits), stored block header (000) */
  while (bits > 0) { dst[o++] = (uint8_t)acc; acc >>= 8; bits = bits > 8 ? bits - 8 : 0; }
  out->len += o;
  return (ptrdiff_t)o;
}

static ptrdiff_t compress_with(z_stream *z, const uint8_t *in, size_t n, lb_buf *out);

ptrdiff_t lb_deflate_compress(lb_deflate *c, const uint8_t *in, size_t n, lb_buf *out) {
  /* Without context takeover every message stands alone, so one may be
   * coded without zlib. */
  if (c->d_no_takeover && n > 0 && n <= LITERAL_MAX) return compress_literals(in, n, out);
  /* Without context takeover (RFC 7692 7.1.1.1) a pooled stream, reset,
   * serves this message and goes back. */
  zstream *zs = c->d_no_takeover ? pool_take(0, c->d_bits, c->level) : c->d;
  if (zs == NULL) return LB_ENOMEM;
  ptrdiff_t r = compress_with(&zs->z, in, n, out);
  if (c->d_no_takeover) pool_give(zs);
  return r;
}

static ptrdiff_t compress_with(z_stream *z, const uint8_t *in, size_t n, lb_buf *out) {
  size_t start = out->len;
  const uint8_t *ip = in;
  size_t left = n;
  int rc = 0;
  z->avail_in = 0;
  for (;;) {
    if (z->avail_in == 0 && left > 0) {
      size_t s = left < SLICE ? left : SLICE;
      z->next_in = (Bytef *)(uintptr_t)ip; /* zlib's API is not const */
      z->avail_in = (uInt)s;
      ip += s;
      left -= s;
    }
    int flush = left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    /* deflateBound covers the data; a sync flush adds at most a few bytes
     * (the pending bits and the empty stored block). */
    size_t want = (size_t)deflateBound(z, z->avail_in) + 16;
    if (want > ((size_t)1 << 18)) want = (size_t)1 << 18;
    uint8_t *dst = lb_buf_reserve(out, want);
    if (dst == NULL) { rc = LB_ENOMEM; goto fail; }
    z->next_out = dst;
    z->avail_out = (uInt)want;
    int r = deflate(z, flush);
    out->len += want - z->avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) { rc = LB_EINTERNAL; goto fail; }
    /* Done once the flush has run with room to spare (zlib.h: call again
     * while avail_out comes back 0). */
    if (flush == Z_SYNC_FLUSH && z->avail_in == 0 && z->avail_out != 0) break;
  }
  size_t got = out->len - start;
  if (got == 0 && n == 0) {
    /* zlib skips a sync flush right after another one, so an empty message
     * following a message yields nothing; its payload is the lone 00 that a
     * fresh stream gives (an empty stored block without LEN/NLEN). */
    if (lb_buf_append(out, TAIL, 1) != 0) { rc = LB_ENOMEM; goto fail; }
    return 1;
  }
  if (got < 4 || memcmp(out->data + out->len - 4, TAIL, 4) != 0) {
    rc = LB_EINTERNAL;
    goto fail;
  }
  out->len -= 4;
  return (ptrdiff_t)(got - 4);
fail:
  /* Part of the message was produced and dropped: restart the compressor so
   * later messages do not refer to bytes the peer never saw. */
  out->len = start;
  deflateReset(z);
  return rc;
}

/* After a message that ended the deflate stream (BFINAL), inflate needs a
 * reset; under context takeover the window is carried over as a preset
 * dictionary so later messages may still refer back into it. */
static int restart_inflate(lb_deflate *c, z_stream *z) {
  if (c->i_no_takeover || c->dict == NULL) return inflateReset(z) == Z_OK ? 0 : LB_EINTERNAL;
  uInt dlen = 0;
  if (inflateGetDictionary(z, c->dict, &dlen) != Z_OK || dlen > c->dict_cap) return LB_EINTERNAL;
  if (inflateReset(z) != Z_OK) return LB_EINTERNAL;
  if (dlen && inflateSetDictionary(z, c->dict, dlen) != Z_OK) return LB_EINTERNAL;
  return 0;
}

/* Whole-message decompression without context takeover (lb_inflate). */
static ptrdiff_t decompress_whole(lb_inflate *w, const uint8_t *in, size_t n,
                                  lb_buf *out, size_t limit) {
  if (n == 0) return 0; /* as on the zlib path */
  size_t need = n + sizeof WHOLE_TAIL; /* n is the size of an object: no overflow */

  /* lb_inflate wants the whole output buffer up front and reports
   * LB_ENOSPACE without writing past it. Start with the spare room the
   * caller's buffer already has (a reused buffer then decodes in one go), at
   * least 4x the input; grow 4x per retry, never past the limit, so a
   * deflate bomb costs at most `limit` bytes of buffer. */
  size_t room = n > SIZE_MAX / 4 ? SIZE_MAX / 4 : 4 * n;
  if (room < 16384) room = 16384;
  if (out->cap - out->len > room) room = out->cap - out->len;
  if (limit != 0 && room > limit) room = limit;
  for (;;) {
    uint8_t *dst = lb_buf_reserve(out, room);
    if (dst == NULL) return LB_ENOMEM;
    lb_inflate_result res;
    int r = lb_inflate_decode2(w, in, n, WHOLE_TAIL, sizeof WHOLE_TAIL, dst, room, &res);
    if (r == LB_OK) {
      /* The stream may end (BFINAL, RFC 7692 7.2.3.3) inside the payload or
       * the sync-flush tail: what follows is ignored, as zlib's inflate
       * does. Ending inside our final block instead means the payload
       * stopped mid-block and that block swallowed part of our tail. */
      if (res.in_used > n + sizeof TAIL && res.in_used != need) return LB_EDEFLATE;
      out->len += res.out_used;
      return (ptrdiff_t)res.out_used;
    }
    if (r != LB_ENOSPACE) return LB_EDEFLATE;
    if (limit != 0 && room >= limit) return LB_ETOOLARGE;
    if (room > SIZE_MAX / 4) return LB_ENOMEM;
    room *= 4;
    if (limit != 0 && room > limit) room = limit;
  }
}

static ptrdiff_t decompress_with(lb_deflate *c, z_stream *z, const uint8_t *in, size_t n,
                                 lb_buf *out, size_t limit);

ptrdiff_t lb_deflate_decompress(lb_deflate *c, const uint8_t *in, size_t n,
                                lb_buf *out, size_t limit) {
  if (c->whole) {
    lb_inflate *w = whole_take();
    if (w == NULL) return LB_ENOMEM;
    ptrdiff_t r = decompress_whole(w, in, n, out, limit);
    whole_give(w);
    return r;
  }
  /* Without context takeover (RFC 7692 7.1.1.2), a pooled stream, reset. */
  zstream *zs = c->i_no_takeover ? pool_take(1, c->i_bits, 0) : c->i;
  if (zs == NULL) return LB_ENOMEM;
  ptrdiff_t r = decompress_with(c, &zs->z, in, n, out, limit);
  if (c->i_no_takeover) pool_give(zs);
  return r;
}

static ptrdiff_t decompress_with(lb_deflate *c, z_stream *z, const uint8_t *in, size_t n,
                                 lb_buf *out, size_t limit) {
  size_t start = out->len, produced = 0, left = n;
  const uint8_t *ip = in;
  int fed_tail = 0, rc = 0;
  uint8_t probe;
  /* An empty payload is taken as an empty message (the canonical form is
   * the single byte 00, but nothing decodes to anything else). */
  if (n == 0) return 0;
  z->avail_in = 0;
  for (;;) {
    if (z->avail_in == 0) {
      if (left > 0) {
        size_t s = left < SLICE ? left : SLICE;
        z->next_in = (Bytef *)(uintptr_t)ip;
        z->avail_in = (uInt)s;
        ip += s;
        left -= s;
      } else if (!fed_tail) {
        z->next_in = (Bytef *)(uintptr_t)TAIL;
        z->avail_in = 4;
        fed_tail = 1;
      }
    }
    uint8_t *dst;
    size_t room;
    if (limit != 0 && produced == limit) {
      /* At the limit: one more byte of output means too large, and it goes
       * to a 1-byte probe, never into the caller's buffer. */
      dst = &probe;
      room = 1;
    } else {
      room = out->cap - out->len;
      if (room < 4096) room = 16384;
      if (room > ((size_t)1 << 20)) room = (size_t)1 << 20;
      if (limit != 0 && room > limit - produced) room = limit - produced;
      dst = lb_buf_reserve(out, room);
      if (dst == NULL) { rc = LB_ENOMEM; goto fail; }
    }
    z->next_out = dst;
    z->avail_out = (uInt)room;
    int r = inflate(z, Z_SYNC_FLUSH);
    size_t got = room - z->avail_out;
    if (dst == &probe) {
      if (got) { rc = LB_ETOOLARGE; goto fail; }
    } else {
      out->len += got;
      produced += got;
    }
    if (r == Z_STREAM_END) {
      /* BFINAL form (RFC 7692 7.2.3.3): whatever follows the final block,
       * including our tail, is not part of the stream. */
      rc = restart_inflate(c, z);
      if (rc != 0) goto fail;
      break;
    }
    if (r == Z_DATA_ERROR || r == Z_NEED_DICT) { rc = LB_EDEFLATE; goto fail; }
    if (r == Z_MEM_ERROR) { rc = LB_ENOMEM; goto fail; }
    if (r != Z_OK && r != Z_BUF_ERROR) { rc = LB_EINTERNAL; goto fail; }
    if (left == 0 && fed_tail && z->avail_in == 0 && z->avail_out != 0) {
      /* All consumed. The tail is an empty stored block, so a well-formed
       * message leaves inflate between blocks; zlib reports that state with
       * bit 128 of data_type. Anything else is a truncated message. */
      if (!(z->data_type & 128)) { rc = LB_EDEFLATE; goto fail; }
      break;
    }
  }
  return (ptrdiff_t)produced;
fail:
  out->len = start;
  inflateReset(z);
  return rc;
}

/* ---- negotiation (RFC 6455 9.1 grammar, RFC 7692 7.1 parameters) -------- */

static int is_tchar(unsigned ch) {
  /* RFC 7230 3.2.6 token characters */
  if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) return 1;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", (int)ch) != NULL;
}

static int is_ows(unsigned ch) { return ch == ' ' || ch == '\t'; }

static size_t skip_ows(const char *s, size_t len, size_t i) {
  while (i < len && is_ows((unsigned char)s[i])) i++;
  return i;
}

static int token_is(const char *t, size_t tn, const char *name) {
  size_t n = strlen(name);
  if (tn != n) return 0;
  for (size_t k = 0; k < n; k++) {
    unsigned a = (unsigned char)t[k], b = (unsigned char)name[k];
    if (a >= 'A' && a <= 'Z') a += 32;
    if (a != b) return 0;
  }
  return 1;
}

/* Index just past the comma ending the element that contains position i
 * (quoted strings skipped), or len. */
static size_t element_end(const char *s, size_t len, size_t i) {
  int q = 0;
  for (; i < len; i++) {
    char ch = s[i];
    if (q) {
      if (ch == '\\') i++;
      else if (ch == '"') q = 0;
    } else if (ch == '"') {
      q = 1;
    } else if (ch == ',') {
      return i + 1;
    }
  }
  return len;
}

/* Window bits value: "8".."15", no sign, no leading zero. */
static int parse_bits(const char *v, size_t vn) {
  if (vn == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
  if (vn == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
  return -1;
}

int lb_deflate_parse_offer(lb_deflate_params *p, const char *s, size_t len,
                           int flags, size_t *consumed) {
  memset(p, 0, sizeof *p);
  size_t i = skip_ows(s, len, 0);
  /* RFC 7230 7: empty list elements (", ,") are skipped. */
  while (i < len && s[i] == ',') i = skip_ows(s, len, i + 1);
  *consumed = len;
  if (i >= len) return LB_DEFLATE_OTHER;
  size_t t0 = i;
  while (i < len && is_tchar((unsigned char)s[i])) i++;
  if (i == t0) goto bad;
  int pmd = token_is(s + t0, i - t0, "permessage-deflate");
  int seen_snct = 0, seen_cnct = 0, seen_sbits = 0, seen_cbits = 0;
  for (;;) {
    i = skip_ows(s, len, i);
    if (i >= len) { *consumed = len; break; }
    if (s[i] == ',') { *consumed = i + 1; break; }
    if (s[i] != ';') goto bad;
    i = skip_ows(s, len, i + 1);
    size_t n0 = i;
    while (i < len && is_tchar((unsigned char)s[i])) i++;
    if (i == n0) goto bad;
    const char *name = s + n0;
    size_t nn = i - n0;
    char val[4];
    size_t vn = 0;
    int has_val = 0;
    i = skip_ows(s, len, i);
    if (i < len && s[i] == '=') {
      has_val = 1;
      i = skip_ows(s, len, i + 1);
      if (i < len && s[i] == '"') {
        /* quoted-string; keep up to 3 unescaped chars (longer = invalid) */
        i++;
        int closed = 0;
        for (; i < len; i++) {
          char ch = s[i];
          if (ch == '"') { closed = 1; i++; break; }
          if (ch == '\\') {
            if (++i >= len) break;
            ch = s[i];
          }
          if ((unsigned char)ch < 0x20 && ch != '\t') goto bad;
          if (vn < sizeof val) val[vn] = ch;
          vn++;
        }
        if (!closed) { *consumed = len; return LB_EHEADER; }
      } else {
        size_t v0 = i;
        while (i < len && is_tchar((unsigned char)s[i])) i++;
        if (i == v0) goto bad;
        for (size_t k = v0; k < i; k++) {
          if (vn < sizeof val) val[vn] = s[k];
          vn++;
        }
      }
    }
    if (!pmd) continue; /* another extension's parameters are its business */
    if (vn > sizeof val) vn = sizeof val; /* too long: parse_bits rejects */
    if (token_is(name, nn, "server_no_context_takeover")) {
      if (seen_snct++ || has_val) goto bad;
      p->server_no_context_takeover = 1;
    } else if (token_is(name, nn, "client_no_context_takeover")) {
      if (seen_cnct++ || has_val) goto bad;
      p->client_no_context_takeover = 1;
    } else if (token_is(name, nn, "server_max_window_bits")) {
      if (seen_sbits++ || !has_val) goto bad;
      int b = parse_bits(val, vn);
      if (b < 0) goto bad;
      p->server_max_window_bits = b;
    } else if (token_is(name, nn, "client_max_window_bits")) {
      if (seen_cbits++) goto bad;
      if (!has_val) {
        /* 7.1.2.2: valueless only in an offer, the server must answer with
         * a value. */
        if (!(flags & LB_DEFLATE_CLIENT_OFFER)) goto bad;
        p->client_max_window_bits = LB_DEFLATE_BITS_NOVALUE;
      } else {
        int b = parse_bits(val, vn);
        if (b < 0) goto bad;
        p->client_max_window_bits = b;
      }
    } else {
      goto bad; /* 7.1: decline an offer with an unknown parameter */
    }
  }
  if (!pmd) {
    memset(p, 0, sizeof *p);
    return LB_DEFLATE_OTHER;
  }
  return 0;
bad:
  memset(p, 0, sizeof *p);
  *consumed = element_end(s, len, i < len ? i : len);
  return LB_EHEADER;
}

static int min_bits(int a, int b) { return a < b ? a : b; }

int lb_deflate_accept_offer(const lb_deflate_params *offer, const lb_deflate_params *prefs,
                            lb_deflate_params *resp) {
  lb_deflate_params r;
  memset(&r, 0, sizeof r);
  r.server_no_context_takeover = (offer->server_no_context_takeover || prefs->server_no_context_takeover) ? 1 : 0;
  /* 7.1.1.2: the server may ask for client_no_context_takeover unasked. */
  r.client_no_context_takeover = (offer->client_no_context_takeover || prefs->client_no_context_takeover) ? 1 : 0;

  /* Our compressor's window: zlib cannot go below 9 (see window_bits). */
  int ours = prefs->server_max_window_bits ? prefs->server_max_window_bits : 15;
  if (ours < 9) ours = 9;
  if (ours > 15) ours = 15;
  if (offer->server_max_window_bits) {
    /* 7.1.2.1: answer with the same or a smaller value. */
    if (offer->server_max_window_bits < 9) return LB_EINVAL;
    r.server_max_window_bits = min_bits(ours, offer->server_max_window_bits);
  } else if (ours < 15) {
    r.server_max_window_bits = ours;
  }

  /* 7.1.2.2: only when offered; then at most the offered value. */
  if (offer->client_max_window_bits) {
    int lim = offer->client_max_window_bits > 0 ? offer->client_max_window_bits : 15;
    int want = prefs->client_max_window_bits > 0 ? prefs->client_max_window_bits : 0;
    if (want && want < 9) want = 9;
    if (want) r.client_max_window_bits = min_bits(want, lim);
    else if (offer->client_max_window_bits > 0) r.client_max_window_bits = lim;
  }
  *resp = r;
  return 0;
}

static int put(char *dst, size_t cap, size_t *o, const char *s) {
  size_t n = strlen(s);
  if (*o + n > cap) return -1;
  memcpy(dst + *o, s, n);
  *o += n;
  return 0;
}

static int put_bits(char *dst, size_t cap, size_t *o, const char *name, int bits) {
  char num[4];
  if (bits < 8 || bits > 15) return LB_EINVAL;
  num[0] = '=';
  if (bits >= 10) { num[1] = '1'; num[2] = (char)('0' + bits - 10); num[3] = 0; }
  else { num[1] = (char)('0' + bits); num[2] = 0; }
  if (put(dst, cap, o, name) || put(dst, cap, o, num)) return LB_ENOSPACE;
  return 0;
}

ptrdiff_t lb_deflate_format_params(char *dst, size_t cap, const lb_deflate_params *p) {
  size_t o = 0;
  int rc;
  if (p->server_max_window_bits && (p->server_max_window_bits < 8 || p->server_max_window_bits > 15))
    return LB_EINVAL;
  if (p->client_max_window_bits && p->client_max_window_bits != LB_DEFLATE_BITS_NOVALUE &&
      (p->client_max_window_bits < 8 || p->client_max_window_bits > 15))
    return LB_EINVAL;
  if (put(dst, cap, &o, "permessage-deflate")) return LB_ENOSPACE;
  if (p->server_no_context_takeover && put(dst, cap, &o, "; server_no_context_takeover"))
    return LB_ENOSPACE;
  if (p->client_no_context_takeover && put(dst, cap, &o, "; client_no_context_takeover"))
    return LB_ENOSPACE;
  if (p->server_max_window_bits &&
      (rc = put_bits(dst, cap, &o, "; server_max_window_bits", p->server_max_window_bits)) != 0)
    return rc;
  if (p->client_max_window_bits == LB_DEFLATE_BITS_NOVALUE) {
    if (put(dst, cap, &o, "; client_max_window_bits")) return LB_ENOSPACE;
  } else if (p->client_max_window_bits &&
             (rc = put_bits(dst, cap, &o, "; client_max_window_bits", p->client_max_window_bits)) != 0) {
    return rc;
  }
  return (ptrdiff_t)o;
}
