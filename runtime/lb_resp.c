/*
 * lb_resp.c: RESP2/RESP3 parser and command encoder (see lb_resp.h).
 *
 * The parser walks one reply in pre-order. Each value starts with a line
 * (type byte, text, CRLF); strings with a length prefix ('$', '!', '=')
 * then carry exactly that many bytes and a CRLF. Open aggregates live on a
 * fixed stack of "elements still expected" counters, so a call that runs
 * out of input can stop anywhere between two values and resume there: the
 * state is (pos, depth, counters, nodes written). A value whose bytes are
 * incomplete is parsed again from its first byte on the next call; that is
 * cheap because only its header line is ever re-read (a bulk payload is
 * skipped by length, and the CRLF search resumes at `scan`).
 */
#include "lowbit/lb_resp.h"

#include <string.h>

void lb_resp_parser_init(lb_resp_parser *p) { memset(p, 0, sizeof *p); }

void lb_resp_parser_reset(lb_resp_parser *p) {
  p->depth = 0;
  p->pos = 0;
  p->scan = 0;
  p->n_nodes = 0;
}

/* A signed decimal integer: optional '-', 1..19 digits, no overflow of
 * int64_t. Returns 0 or -1. */
static int parse_int(const uint8_t *s, size_t n, int64_t *out) {
  int neg = 0;
  if (n > 0 && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s++;
    n--;
  }
  if (n == 0 || n > 19) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned)s[i] - '0';
    if (d > 9) return -1;
    v = v * 10 + d; /* 19 digits < 10^19 < 2^64: no wrap */
  }
  /* |INT64_MIN| = INT64_MAX + 1 */
  if (v > (uint64_t)INT64_MAX + (uint64_t)neg) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* A length or count: digits only. The running value is compared with max
 * after each digit, so an oversized length is refused before it can
 * overflow anything. Returns 0, LB_EPROTO, or `over` (the limit code). */
static int parse_len(const uint8_t *s, size_t n, uint64_t max, int over,
                     uint64_t *out) {
  if (n == 0) return LB_EPROTO;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned)s[i] - '0';
    if (d > 9) return LB_EPROTO;
    if (d > max || v > (max - d) / 10) return over; /* v * 10 + d > max */
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int is_digits(const uint8_t *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned)s[i] - '0' > 9) return 0;
  return 1;
}

/* RESP3 double: [+-]?digits[.digits][(e|E)[+-]?digits], or inf, -inf,
 * nan (Redis writes "inf", "-inf" and "nan"). */
static int valid_double(const uint8_t *s, size_t n) {
  size_t i = 0;
  if (n > 0 && (s[0] == '-' || s[0] == '+')) i = 1;
  if (n - i == 3 && (memcmp(s + i, "inf", 3) == 0 || memcmp(s + i, "nan", 3) == 0))
    return 1;
  size_t d0 = i;
  while (i < n && (unsigned)s[i] - '0' <= 9) i++;
  size_t mant = i - d0;
  if (i < n && s[i] == '.') {
    size_t f0 = ++i;
    while (i < n && (unsigned)s[i] - '0' <= 9) i++;
    mant += i - f0;
  }
  if (mant == 0) return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    size_t e0 = i;
    while (i < n && (unsigned)s[i] - '0' <= 9) i++;
    if (i == e0) return 0;
  }
  return i == n;
}

/* memchr, with the first bytes looked at here: RESP lines are mostly a
 * few bytes ("$7", ":1"), shorter than a call to memchr costs. */
static inline const uint8_t *find_byte(const uint8_t *s, uint8_t c, size_t n) {
  size_t k = n < 16 ? n : 16;
  for (size_t i = 0; i < k; i++)
    if (s[i] == c) return s + i;
  if (n == k) return NULL;
  return memchr(s + k, c, n - k);
}

/* The general parser: any reply, from any point (lb_resp_parse takes the
 * usual short replies itself first). Apart, so that the short path does
 * not pay for this one's registers and stack. */
static __attribute__((noinline)) ptrdiff_t parse_general(lb_resp_parser *p, const uint8_t *buf,
                                                         size_t len, lb_resp_node *nodes,
                                                         size_t cap) {
  uint32_t maxd = p->max_depth ? p->max_depth : LB_RESP_DEFAULT_MAX_DEPTH;
  if (maxd > LB_RESP_MAX_DEPTH) maxd = LB_RESP_MAX_DEPTH;
  uint64_t maxb = p->max_bulk ? p->max_bulk : LB_RESP_DEFAULT_MAX_BULK;
  uint64_t maxc = p->max_count ? p->max_count : LB_RESP_DEFAULT_MAX_COUNT;
  /* Lengths are parsed against these caps too, so that `len + 2` and
   * `2 * count` below cannot overflow whatever the caller configured. */
  if (maxb > ((uint64_t)1 << 60)) maxb = (uint64_t)1 << 60;
  if (maxc > ((uint64_t)1 << 60)) maxc = (uint64_t)1 << 60;

  size_t pos = p->pos;
  /* pos 0: a new reply (no node can have been written before its first
   * byte), so the previous reply's node count goes. */
  if (pos == 0) {
    p->n_nodes = 0;
    p->depth = 0;
  }
  for (;;) {
    if (pos >= len) goto again;
    if (p->n_nodes >= cap) {
      p->pos = pos;
      return LB_ENOSPACE;
    }
    /* The value's first line: buf[pos] is the type, the text runs to CRLF. */
    size_t from = p->scan > pos ? p->scan : pos + 1;
    if (from > len) from = len;
    const uint8_t *nl = find_byte(buf + from, '\n', len - from);
    if (nl == NULL) {
      /* No line is longer than a type byte, max_bulk bytes of text and CR
       * (length lines are far shorter). */
      if ((uint64_t)(len - pos) > maxb + 2) return LB_ETOOLARGE;
      p->scan = len;
      goto again;
    }
    size_t eol = (size_t)(nl - buf);
    /* The same bound as above, before any other check, so that the code
     * does not depend on how the bytes were split. */
    if ((uint64_t)(eol - pos) > maxb + 2) return LB_ETOOLARGE;
    if (eol < pos + 2 || buf[eol - 1] != '\r') return LB_EPROTO;
    int t = buf[pos];
    const uint8_t *line = buf + pos + 1;
    size_t ll = eol - 1 - (pos + 1);
    size_t next = eol + 1;
    lb_resp_node *nd = &nodes[p->n_nodes];
    nd->type = t;
    nd->pad_ = 0;
    nd->n = 0;
    nd->off = 0;
    nd->len = 0;
    int value = 1; /* this node completes a value of its parent */
    switch (t) {
    case '+':
    case '-':
      /* A simple string is one line: a lone CR inside it is not RESP. */
      if (find_byte(line, '\r', ll) != NULL) return LB_EPROTO;
      nd->n = (int64_t)ll;
      nd->off = pos + 1;
      nd->len = ll;
      break;
    case ':':
      if (parse_int(line, ll, &nd->n) != 0) return LB_EPROTO;
      break;
    case '(': {
      size_t sign = ll > 0 && (line[0] == '-' || line[0] == '+');
      if (!is_digits(line + sign, ll - sign)) return LB_EPROTO;
      nd->n = (int64_t)ll;
      nd->off = pos + 1;
      nd->len = ll;
      break;
    }
    case ',':
      if (!valid_double(line, ll)) return LB_EPROTO;
      nd->n = (int64_t)ll;
      nd->off = pos + 1;
      nd->len = ll;
      break;
    case '#':
      if (ll != 1 || (line[0] != 't' && line[0] != 'f')) return LB_EPROTO;
      nd->n = line[0] == 't';
      break;
    case '_':
      if (ll != 0) return LB_EPROTO;
      break;
    case '$':
    case '!':
    case '=': {
      if (t == '$' && ll == 2 && line[0] == '-' && line[1] == '1') {
        nd->type = LB_RESP_NULL; /* RESP2 null bulk string */
        break;
      }
      uint64_t L;
      int rc = parse_len(line, ll, maxb, LB_ETOOLARGE, &L);
      if (rc != 0) return rc;
      /* L <= 2^60, so L + 2 does not wrap. */
      if ((uint64_t)(len - next) < L + 2) {
        p->pos = pos;
        p->scan = eol; /* the header line is known: skip the search */
        return LB_EAGAIN;
      }
      size_t end = next + (size_t)L;
      if (buf[end] != '\r' || buf[end + 1] != '\n') return LB_EPROTO;
      nd->off = next;
      nd->len = (size_t)L;
      if (t == '=') {
        /* "Verbatim strings": a three-byte format, ':', then the text. */
        if (L < 4 || buf[next + 3] != ':') return LB_EPROTO;
        nd->off += 4;
        nd->len -= 4;
      }
      nd->n = (int64_t)nd->len;
      next = end + 2;
      break;
    }
    case '*':
    case '%':
    case '~':
    case '|':
    case '>': {
      if (t == '*' && ll == 2 && line[0] == '-' && line[1] == '1') {
        nd->type = LB_RESP_NULL; /* RESP2 null array */
        break;
      }
      uint64_t count;
      int rc = parse_len(line, ll, maxc, LB_ETOOMANY, &count);
      if (rc != 0) return rc;
      nd->n = (int64_t)count;
      if (t == '|') value = 0; /* an attribute is not a value itself */
      if (count > 0) {
        if (p->depth >= maxd) return LB_EDEPTH;
        /* count <= 2^60: 2 * count does not wrap. */
        p->left[p->depth] = (int64_t)((t == '%' || t == '|') ? 2 * count : count);
        p->attr[p->depth] = (uint8_t)(t == '|');
        p->depth++;
        value = 0; /* completed when its last element is */
      }
      break;
    }
    default:
      /* '?' (streamed), unknown bytes, an inline command... */
      return LB_EPROTO;
    }
    p->n_nodes++;
    p->scan = 0;
    pos = next;
    /* Close every aggregate this value completes. Closing an attribute
     * completes nothing: the value it describes is still to come. */
    while (value && p->depth > 0) {
      if (--p->left[p->depth - 1] > 0) {
        value = 0;
        break;
      }
      p->depth--;
      value = !p->attr[p->depth];
    }
    if (value && p->depth == 0) {
      /* pos > 0: a value is at least "_\r\n". */
      p->pos = 0;
      p->scan = 0;
      return (ptrdiff_t)pos;
    }
  }
again:
  p->pos = pos;
  return LB_EAGAIN;
}

ptrdiff_t lb_resp_parse(lb_resp_parser *p, const uint8_t *buf, size_t len,
                        lb_resp_node *nodes, size_t cap) {
  if (p == NULL || (buf == NULL && len > 0) || (nodes == NULL && cap > 0))
    return LB_EINVAL;
  /* The usual replies first: a whole simple string (+OK), integer or bulk
   * string with a short header at the start of a new reply, found without a
   * memchr call. Anything else, or any doubt (a long line, a truncated
   * reply, odd bytes), takes the general path below, which gives these
   * same results for these bytes. */
  if (p->pos == 0 && cap > 0 && len >= 4) {
    /* (lengths here are < 10^11: max_bulk's cap below changes nothing) */
    uint64_t fmaxb = p->max_bulk ? p->max_bulk : LB_RESP_DEFAULT_MAX_BULK;
    int t = buf[0];
    if (t == '+') {
      size_t lim = len < 64 ? len : 64, j = 1;
      while (j < lim && buf[j] != '\r' && buf[j] != '\n') j++;
      if (j + 1 < len && buf[j] == '\r' && buf[j + 1] == '\n' && j - 1 <= fmaxb) {
        lb_resp_node *nd = &nodes[0];
        nd->type = t;
        nd->pad_ = 0;
        nd->n = (int64_t)(j - 1);
        nd->off = 1;
        nd->len = j - 1;
        p->n_nodes = 1;
        p->depth = 0;
        p->scan = 0;
        return (ptrdiff_t)(j + 2);
      }
    } else if (t == ':') {
      /* at most 18 digits: no overflow, and parse_int's range */
      size_t j = 1 + (buf[1] == '-'), d0 = j;
      int64_t v = 0;
      while (j < len && j < d0 + 18 && (unsigned)buf[j] - '0' <= 9) v = v * 10 + (buf[j++] - '0');
      if (j > d0 && j + 1 < len && buf[j] == '\r' && buf[j + 1] == '\n' && (uint64_t)(j - 1) <= fmaxb) {
        lb_resp_node *nd = &nodes[0];
        nd->type = t;
        nd->pad_ = 0;
        nd->n = d0 == 2 ? -v : v;
        nd->off = 0;
        nd->len = 0;
        p->n_nodes = 1;
        p->depth = 0;
        p->scan = 0;
        return (ptrdiff_t)(j + 2);
      }
    } else if (t == '$') {
      uint64_t L = 0;
      size_t j = 1;
      while (j < len && j < 12 && (unsigned)buf[j] - '0' <= 9) L = L * 10 + (buf[j++] - '0');
      /* (at most 11 digits: no overflow; the header line is j + 1 bytes,
       * within max_bulk + 2 as the general path checks) */
      if (j > 1 && j + 1 < len && buf[j] == '\r' && buf[j + 1] == '\n' && L <= fmaxb &&
          (uint64_t)(j - 1) <= fmaxb) {
        size_t next = j + 2;
        if ((uint64_t)(len - next) >= L + 2 && buf[next + L] == '\r' && buf[next + L + 1] == '\n') {
          lb_resp_node *nd = &nodes[0];
          nd->type = t;
          nd->pad_ = 0;
          nd->n = (int64_t)L;
          nd->off = next;
          nd->len = (size_t)L;
          p->n_nodes = 1;
          p->depth = 0;
          p->scan = 0;
          return (ptrdiff_t)(next + L + 2);
        }
      }
    }
  }

  return parse_general(p, buf, len, nodes, cap);
}

/* Decimal digits of v (1 for 0). Lengths of command arguments are mostly
 * short: the first two tests settle them. */
static size_t ndigits(size_t v) {
  if (v < 10) return 1;
  if (v < 100) return 2;
  size_t d = 3;
  for (v /= 1000; v != 0; v /= 10) d++;
  return d;
}

size_t lb_resp_command_len(const size_t *lens, size_t n) {
  /* "*" n "\r\n", then per argument "$" len "\r\n" arg "\r\n". */
  size_t total = 3 + ndigits(n);
  for (size_t i = 0; i < n; i++) {
    size_t l = lens[i];
    size_t add = 5 + ndigits(l);
    if (l > SIZE_MAX - add || total > SIZE_MAX - (add + l)) return SIZE_MAX;
    total += add + l;
  }
  return total;
}

/* Writes v in decimal at out; returns the digits written. */
static inline __attribute__((always_inline)) size_t put_uint(uint8_t *out, size_t v) {
  if (v < 10) {
    out[0] = (uint8_t)('0' + v);
    return 1;
  }
  if (v < 100) {
    out[0] = (uint8_t)('0' + v / 10);
    out[1] = (uint8_t)('0' + v % 10);
    return 2;
  }
  uint8_t tmp[24];
  size_t k = 0;
  do {
    tmp[k++] = (uint8_t)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
  return k;
}

/* Copies l bytes: the short arguments of most commands (names, keys,
 * small values) with two fixed-size moves that overlap, instead of a call
 * to memcpy each (which costs more than the copy). Never reads or writes
 * outside a[0..l) and o[0..l). */
static inline __attribute__((always_inline)) void copy_arg(uint8_t *o, const char *a, size_t l) {
  if (l >= 8 && l <= 16) {
    memcpy(o, a, 8);
    memcpy(o + l - 8, a + l - 8, 8);
  } else if (l >= 4 && l < 8) {
    memcpy(o, a, 4);
    memcpy(o + l - 4, a + l - 4, 4);
  } else if (l > 16 && l <= 32) {
    memcpy(o, a, 16);
    memcpy(o + l - 16, a + l - 16, 16);
  } else if (l > 0 && l < 4) { /* 1 to 3 bytes: first, middle, last */
    o[0] = (uint8_t)a[0];
    o[l / 2] = (uint8_t)a[l / 2];
    o[l - 1] = (uint8_t)a[l - 1];
  } else if (l > 32) {
    memcpy(o, a, l);
  }
}

/* One argument: "$" len CRLF bytes CRLF. */
static inline __attribute__((always_inline)) uint8_t *put_arg(uint8_t *o, const char *a, size_t l) {
  *o++ = '$';
  o += put_uint(o, l);
  *o++ = '\r';
  *o++ = '\n';
  copy_arg(o, a, l);
  o += l;
  *o++ = '\r';
  *o++ = '\n';
  return o;
}

ptrdiff_t lb_resp_encode_command(const char *const *args, const size_t *lens,
                                 size_t n, uint8_t *out, size_t cap) {
  if (n == 0 || args == NULL || lens == NULL) return LB_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (args[i] == NULL && lens[i] > 0) return LB_EINVAL;
  size_t need = lb_resp_command_len(lens, n);
  if (need == SIZE_MAX || need > cap || need > (size_t)PTRDIFF_MAX)
    return LB_ENOSPACE;
  uint8_t *o = out;
  *o++ = '*';
  o += put_uint(o, n);
  *o++ = '\r';
  *o++ = '\n';
  for (size_t i = 0; i < n; i++) o = put_arg(o, args[i], lens[i]);
  return (ptrdiff_t)(o - out);
}

ptrdiff_t lb_resp_encode4(uint8_t *out, size_t cap, size_t n,
                          const char *a1, size_t l1, const char *a2, size_t l2,
                          const char *a3, size_t l3, const char *a4, size_t l4) {
  if (n == 0 || n > 4) return LB_EINVAL;
  if (n < 4) l4 = 0, a4 = "";
  if (n < 3) l3 = 0, a3 = "";
  if (n < 2) l2 = 0, a2 = "";
  if ((a1 == NULL && l1 > 0) || (a2 == NULL && l2 > 0) || (a3 == NULL && l3 > 0) ||
      (a4 == NULL && l4 > 0))
    return LB_EINVAL;
  /* One check of the total against cap: each term is bounded first, so
   * the sum cannot wrap. 25 = "$" + 20 digits + 2 CRLF. */
  size_t most = (size_t)PTRDIFF_MAX / 8;
  if (l1 > most || l2 > most || l3 > most || l4 > most) return LB_ENOSPACE;
  if (4 + 25 * n + l1 + l2 + l3 + l4 > cap &&
      4 + 5 * n + ndigits(l1) + l1 + (n >= 2 ? ndigits(l2) + l2 : 0) +
              (n >= 3 ? ndigits(l3) + l3 : 0) + (n >= 4 ? ndigits(l4) + l4 : 0) > cap)
    return LB_ENOSPACE;
  uint8_t *o = out;
  o[0] = '*';
  o[1] = (uint8_t)('0' + n);
  o[2] = '\r';
  o[3] = '\n';
  o = put_arg(o + 4, a1, l1);
  if (n >= 2) o = put_arg(o, a2, l2);
  if (n >= 3) o = put_arg(o, a3, l3);
  if (n >= 4) o = put_arg(o, a4, l4);
  return (ptrdiff_t)(o - out);
}
