/*
 * lb_urlsign.c: parse -> canonical query -> HMAC -> hex -> signed URL in one
 * pass over caller buffers.
 *
 * Everything here mirrors lowbit.url (parse, parse_query, encode_query,
 * query_escape) and lowbit.urlsign byte for byte on the fast subset the
 * header describes; anything outside it is refused with LB_EURL before a
 * result is produced, so the Lua path keeps deciding every odd case and
 * the two can never disagree on a URL the core accepts (the differential
 * spec spec/urlsign_fast_spec.lua checks that on generated URLs).
 *
 * Work buffer layout: the decoded query pairs (never longer than the raw
 * query: an escape shrinks 3 bytes to 1, "+" stays 1 byte), then the MAC
 * message host ":" path ":" exp ":" canonical_query, in one piece (the
 * canonical query encodes each decoded byte to at most 3; exp is at most
 * the query's length when verifying). So 5 n + 16 bytes are enough for
 * any input of n bytes; the pair table is on the stack.
 */
#include "lowbit/lb_urlsign.h"

#include <string.h>

typedef struct pair {
  uint32_t k, klen; /* decoded key: work offset and length */
  uint32_t v, vlen; /* decoded value */
  uint32_t e, elen; /* encoded "key=value" in the canonical buffer */
} pair;

typedef struct query {
  pair p[LB_URLSIGN_MAX_PAIRS]; /* every pair but exp and sig */
  uint32_t order[LB_URLSIGN_MAX_PAIRS]; /* pair indices, stably sorted by key */
  size_t n;
  pair exp, sig; /* the first exp and sig pairs (vlen only if present) */
  int nexp, nsig; /* how many of each */
  const char *base; /* the work buffer the offsets refer to */
} query;

/* Byte classes, so each loop tests one table bit per byte in the common
 * case. U: unreserved in a query (Go's QueryEscape keeps it), also every
 * byte of a host in the fast subset; B: never in a URL of the fast subset
 * (controls, DEL, "#": lowbit.url rejects or splits on them); P: stops
 * the path scan ("%", "?", B, and the bytes a raw path may not hold as
 * they are: lowbit.url, as Go's EscapedPath, then escapes the whole path,
 * so the Lua path rebuilds that URL); Q: stops the query decoder ("&",
 * "=", "%", "+"). */
enum { U = 1, B = 2, P = 4, Q = 8 };
static const unsigned char CLS[256] = {
  [0x00 ... 0x1F] = B | P, [0x7F] = B | P, ['#'] = B | P,
  ['%'] = P | Q, ['?'] = P, ['&'] = Q, ['='] = Q, ['+'] = Q,
  [' '] = P, ['"'] = P, ['<'] = P, ['>'] = P, ['\\'] = P, ['^'] = P, ['`'] = P,
  ['{'] = P, ['|'] = P, ['}'] = P, [0x80 ... 0xFF] = P,
  ['a' ... 'z'] = U, ['A' ... 'Z'] = U, ['0' ... '9'] = U,
  ['-'] = U, ['_'] = U, ['.'] = U, ['~'] = U,
};

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The byte of the "%XX" at src + i (i + 2 < n), or -1 when it is not one. */
static int escaped(const char *src, size_t n, size_t i) {
  if (i + 2 >= n) return -1;
  int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

/* Decodes a path src[0..n) into dst as lowbit.url's unescape without
 * "+": "%XX" -> byte. Returns the decoded length, or -1 for a "%" without
 * two hex digits (the Lua path reports that error). */
static ptrdiff_t unescape(const char *src, size_t n, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c == '%') {
      int b = escaped(src, n, i);
      if (b < 0) return -1;
      dst[o++] = (char)b;
      i += 2;
    } else {
      dst[o++] = (char)c;
    }
  }
  return (ptrdiff_t)o;
}

/* Decodes a query component from raw + *pi into dst + *po as
 * lowbit.url's unescape with "+" as space, up to "&" (or "=" too when
 * key), advancing both. Returns 0, or -1 for a bad escape (a valid escape
 * never holds "&" or "=", so splitting first, as Lua does, is the same). */
static int qdecode(const char *raw, size_t n, size_t *pi, char *dst, size_t *po, int key) {
  size_t i = *pi, o = *po;
  while (i < n) {
    unsigned char c = (unsigned char)raw[i];
    if (!(CLS[c] & Q)) {
      dst[o++] = (char)c;
      i++;
    } else if (c == '&' || (c == '=' && key)) {
      break;
    } else if (c == '+') {
      dst[o++] = ' ';
      i++;
    } else if (c == '%') {
      int b = escaped(raw, n, i);
      if (b < 0) return -1;
      dst[o++] = (char)b;
      i += 3;
    } else { /* "=" in a value */
      dst[o++] = (char)c;
      i++;
    }
  }
  *pi = i;
  *po = o;
  return 0;
}

/* Go's url.QueryEscape as lowbit.url's query_escape: unreserved bytes
 * (A-Z a-z 0-9 - _ . ~) as they are, space as "+", the rest as %XX with
 * upper-case hex. Returns the bytes written (at most 3 n). */
static size_t query_escape(const char *src, size_t n, char *dst) {
  static const char HEX[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    if (CLS[c] & U) {
      dst[o++] = (char)c;
    } else if (c == ' ') {
      dst[o++] = '+';
    } else {
      dst[o++] = '%';
      dst[o++] = HEX[c >> 4];
      dst[o++] = HEX[c & 15];
    }
  }
  return o;
}

/* Byte order, a prefix first: LuaJIT's string "<". */
static int keycmp(const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c != 0) return c;
  return alen < blen ? -1 : alen > blen;
}


/* Splits raw[0..n) on "&" (empty pieces skipped), each piece at its first
 * "=", decodes into work at *off, keeps the exp and sig pairs apart, and
 * stably sorts the others by key (insertion sort: stable, and n is small). Returns 0, LB_EURL for a bad
 * escape, LB_ETOOMANY. */
static int parse_query(query *q, const char *raw, size_t n, char *work, size_t *off) {
  q->n = 0;
  q->nexp = q->nsig = 0;
  q->base = work;
  size_t i = 0;
  while (i < n) {
    if (raw[i] == '&') { i++; continue; }
    pair tmp, *p = q->n < LB_URLSIGN_MAX_PAIRS ? &q->p[q->n] : &tmp;
    size_t o = *off;
    if (qdecode(raw, n, &i, work, &o, 1) < 0) return LB_EURL;
    size_t kl = o - *off;
    p->k = (uint32_t)*off; p->klen = (uint32_t)kl;
    *off = o;
    if (i < n && raw[i] == '=') {
      i++;
      if (qdecode(raw, n, &i, work, &o, 0) < 0) return LB_EURL;
    }
    p->v = (uint32_t)*off; p->vlen = (uint32_t)(o - *off);
    *off = o;
    /* exp and sig are kept apart: never in the canonical query. */
    if (kl == 3 && memcmp(work + p->k, "exp", 3) == 0) {
      if (q->nexp++ == 0) q->exp = *p;
      continue;
    }
    if (kl == 3 && memcmp(work + p->k, "sig", 3) == 0) {
      if (q->nsig++ == 0) q->sig = *p;
      continue;
    }
    if (q->n == LB_URLSIGN_MAX_PAIRS) return LB_ETOOMANY;
    /* Insert index q->n after every pair whose key is <= its key. */
    size_t at = q->n;
    while (at > 0) {
      const pair *b = &q->p[q->order[at - 1]];
      if (keycmp(work + b->k, b->klen, work + p->k, p->klen) <= 0) break;
      q->order[at] = q->order[at - 1];
      at--;
    }
    q->order[at] = (uint32_t)q->n;
    q->n++;
  }
  return 0;
}

/* Writes the canonical query (pairs but exp and sig, in order, "&"-joined)
 * at work + off and records each pair's encoded span. Returns its length. */
static size_t canonical(query *q, char *work, size_t off) {
  size_t o = off;
  for (size_t x = 0; x < q->n; x++) {
    pair *p = &q->p[q->order[x]];
    if (o > off) work[o++] = '&';
    p->e = (uint32_t)o;
    o += query_escape(work + p->k, p->klen, work + o);
    work[o++] = '=';
    o += query_escape(work + p->v, p->vlen, work + o);
    p->elen = (uint32_t)(o - p->e);
  }
  return o - off;
}

typedef struct simple {
  size_t scheme_len;     /* url[0..scheme_len) */
  size_t host, host_len; /* after "://" */
  size_t path, path_len; /* raw path, "" or starting with "/" */
  size_t query, query_len;
  int has_query;
} simple;

/* Splits a URL of the fast subset (see the header). Returns 0 or LB_EURL. */
static int parse_simple(const char *u, size_t n, simple *s) {
  size_t i = 0;
  unsigned char c = n ? (unsigned char)u[0] : 0;
  if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return LB_EURL;
  for (i = 1; i < n; i++) {
    c = (unsigned char)u[i];
    if (!((CLS[c] & U) || c == '+') || c == '_' || c == '~') break;
  }
  if (n - i < 3 || memcmp(u + i, "://", 3) != 0) return LB_EURL;
  s->scheme_len = i;
  i += 3;
  s->host = i;
  for (; i < n; i++) {
    c = (unsigned char)u[i];
    if (CLS[c] & U) continue;
    if (c == '/' || c == '?') break;
    if (c != ':') return LB_EURL;
    /* The port: digits only, maybe none (lowbit.url takes "h:"). */
    for (i++; i < n && u[i] >= '0' && u[i] <= '9'; i++) {}
    if (i < n && u[i] != '/' && u[i] != '?') return LB_EURL;
    break;
  }
  s->host_len = i - s->host;
  s->path = i;
  for (; i < n; i++) {
    c = (unsigned char)u[i];
    if (!(CLS[c] & P)) continue;
    if (c == '?') break;
    if (c != '%' || escaped(u, n, i) < 0) return LB_EURL;
    i += 2;
  }
  s->path_len = i - s->path;
  s->has_query = i < n;
  s->query = i < n ? i + 1 : n;
  s->query_len = n - s->query;
  for (i = s->query; i < n; i++)
    if (CLS[(unsigned char)u[i]] & B) return LB_EURL;
  return 0;
}

size_t lb_urlsign_work_len(size_t n) { return 5 * n + 16; }

size_t lb_urlsign_sign_max_len(size_t n, size_t exp_len) { return 4 * n + exp_len + 80; }

/* Writes the MAC message host ":" path ":" exp ":" canonical_query at
 * work + off, in one piece so the HMAC is a single update (seven small
 * updates cost about as much as the MAC itself). path is decoded on the
 * way when decode is set. Returns the message length. */
static size_t message(query *q, char *work, size_t off, const char *host, size_t hl,
                      const char *path, size_t pl, int decode, const char *exp, size_t el) {
  char *m = work + off;
  size_t o = 0;
  memcpy(m, host, hl); o += hl;
  m[o++] = ':';
  if (decode) o += (size_t)unescape(path, pl, m + o); /* checked by parse_simple */
  else { memcpy(m + o, path, pl); o += pl; }
  m[o++] = ':';
  memcpy(m + o, exp, el); o += el;
  m[o++] = ':';
  return o + canonical(q, work, off + o);
}

/* Appends len bytes to out (bounds were checked against the max length). */
#define PUT(src, len) do { memcpy(out + o, (src), (len)); o += (len); } while (0)

ptrdiff_t lb_urlsign_sign(const lb_hmac *h, const char *url, size_t n,
                          const char *exp, size_t exp_len, char *work,
                          size_t work_len, char *out, size_t out_len) {
  if (h == NULL || (url == NULL && n) || (exp == NULL && exp_len) || work == NULL ||
      out == NULL) return LB_EINVAL;
  if (n > UINT32_MAX / 8 || exp_len > UINT32_MAX / 8) return LB_ETOOLARGE;
  if (work_len < lb_urlsign_work_len(n + exp_len) || out_len < lb_urlsign_sign_max_len(n, exp_len))
    return LB_ENOSPACE;
  simple s;
  int rc = parse_simple(url, n, &s);
  if (rc < 0) return rc;
  /* work: the decoded pairs, then the MAC message. */
  size_t off = 0;
  query q;
  rc = parse_query(&q, url + s.query, s.query_len, work, &off);
  if (rc < 0) return rc;
  size_t ml = message(&q, work, off, url + s.host, s.host_len, url + s.path, s.path_len, 1,
                      exp, exp_len);
  uint8_t m[32];
  char sig[64];
  rc = lb_hmac_sha256(h, work + off, ml, m);
  if (rc < 0) return rc;
  lb_hex_encode(m, sizeof m, sig);

  size_t o = 0;
  for (size_t i = 0; i < s.scheme_len; i++) {
    unsigned char c = (unsigned char)url[i];
    out[o++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  }
  PUT("://", 3);
  PUT(url + s.host, s.host_len);
  PUT(url + s.path, s.path_len);
  out[o++] = '?';
  /* The canonical pairs with exp and sig merged in at their sorted places
   * (the table holds no exp or sig pair: parse_query kept them apart). */
  int put_exp = 0, put_sig = 0, first = 1;
  for (size_t x = 0; x <= q.n; x++) {
    const pair *p = x < q.n ? &q.p[q.order[x]] : NULL;
    if (!put_exp && (p == NULL || keycmp(work + p->k, p->klen, "exp", 3) > 0)) {
      if (!first) out[o++] = '&';
      PUT("exp=", 4);
      PUT(exp, exp_len);
      put_exp = 1; first = 0;
    }
    if (!put_sig && (p == NULL || keycmp(work + p->k, p->klen, "sig", 3) > 0)) {
      if (!first) out[o++] = '&';
      PUT("sig=", 4);
      PUT(sig, sizeof sig);
      put_sig = 1; first = 0;
    }
    if (p == NULL) break;
    if (!first) out[o++] = '&';
    PUT(work + p->e, p->elen);
    first = 0;
  }
  return (ptrdiff_t)o;
}

/* Verifies: the raw query's pairs decoded at work, then the message (with
 * path decoded on the way when decode is set). */
static int verify(const lb_hmac *h, const char *host, size_t hl, const char *path, size_t pl,
                  int decode, const char *raw, size_t rl, char *work, double *exp_out) {
  query q;
  size_t off = 0;
  int rc = parse_query(&q, raw, rl, work, &off);
  if (rc < 0) return rc;
  const pair *e = &q.exp, *g = &q.sig; /* the first values count */
  if (q.nexp == 0 || q.nsig == 0 || e->vlen == 0 || g->vlen == 0) return LB_URLSIGN_MISSING;
  if (q.nexp > 1 || q.nsig > 1) return LB_URLSIGN_REPEATED;
  size_t ml = message(&q, work, off, host, hl, path, pl, decode, work + e->v, e->vlen);
  lb_hmac_part part = { (const uint8_t *)work + off, ml };
  rc = lb_hmac_verify_hex(h, &part, 1, work + g->v, g->vlen);
  if (rc < 0) return rc;
  if (rc != 1) return LB_URLSIGN_BAD_SIG;
  /* Authentic: exp is what was signed. Up to 15 digits are exact in a
   * double; longer ones go to the caller's number parser. */
  const char *d = work + e->v;
  double v = 0;
  for (size_t i = 0; i < e->vlen; i++) {
    if (d[i] < '0' || d[i] > '9') return LB_URLSIGN_BAD_EXP;
    v = v * 10 + (d[i] - '0');
  }
  if (e->vlen > 15) return LB_EURL;
  if (exp_out != NULL) *exp_out = v;
  return LB_URLSIGN_VALID;
}

int lb_urlsign_verify(const lb_hmac *h, const char *url, size_t n, char *work,
                      size_t work_len, double *exp_out) {
  if (h == NULL || (url == NULL && n) || work == NULL) return LB_EINVAL;
  if (n > UINT32_MAX / 8) return LB_ETOOLARGE;
  if (work_len < lb_urlsign_work_len(n)) return LB_ENOSPACE;
  simple s;
  int rc = parse_simple(url, n, &s);
  if (rc < 0) return rc;
  return verify(h, url + s.host, s.host_len, url + s.path, s.path_len, 1, url + s.query,
                s.query_len, work, exp_out);
}

int lb_urlsign_verify_parts(const lb_hmac *h, const char *host, size_t host_len,
                            const char *path, size_t path_len, const char *query,
                            size_t query_len, char *work, size_t work_len,
                            double *exp_out) {
  if (h == NULL || (host == NULL && host_len) || (path == NULL && path_len) ||
      (query == NULL && query_len) || work == NULL) return LB_EINVAL;
  size_t n = host_len + path_len + query_len;
  if (host_len > UINT32_MAX / 8 || path_len > UINT32_MAX / 8 || query_len > UINT32_MAX / 8 ||
      n > UINT32_MAX / 8) return LB_ETOOLARGE;
  if (work_len < lb_urlsign_work_len(n)) return LB_ENOSPACE;
  return verify(h, host, host_len, path, path_len, 0, query, query_len, work, exp_out);
}
