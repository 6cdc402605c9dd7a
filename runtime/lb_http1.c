/*
 * lb_http1.c: HTTP/1.1 heads and chunked bodies (RFC 9112).
 *
 * Request and response heads go through two passes:
 *  1. scan_head() looks for the CRLF CRLF that ends the head, resuming where
 *     the previous call stopped, and rejects at once what no valid head holds
 *     (bare LF, CR without LF, control characters, lines starting with
 *     whitespace). An incomplete head therefore costs only the new bytes.
 *  2. Once the head is complete, llhttp parses it in one llhttp_execute()
 *     call (the grammar: method, target, version, field syntax) and pauses at
 *     headers-complete. Field semantics are ours: llhttp's own framing rules
 *     differ from conformance/http1.md (it refuses two equal Content-Length
 *     fields and honours Transfer-Encoding on HTTP/1.0), so each field is made
 *     "generic" for llhttp (see on_header_field_complete) and classified
 *     here.
 * Re-parsing the complete head from its start keeps the struct free of
 * llhttp state and of pointers that a caller's buffer move would break.
 */
#include "lowbit/lb_http1.h"
#include "lowbit/lb_base.h"

#include <llhttp.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* character classes                                                   */

/* Byte classes, one table (GNU range initializers; the build is gnu99):
 *   C_TCHAR  tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~" DIGIT ALPHA
 *   C_FIELD  field-vchar / SP / HTAB (RFC 9110 5.5): all but CTLs and DEL;
 *            obs-text (0x80-0xFF) is allowed
 *   C_STOP   bytes the head scanner must look at: CTLs (CR, LF, HTAB, ...)
 *            and DEL */
enum { C_TCHAR = 1, C_FIELD = 2, C_STOP = 4 };
#define TF (C_TCHAR | C_FIELD)
static const unsigned char cls[256] = {
  [0x00 ... 0x08] = C_STOP, [0x09] = C_STOP | C_FIELD, [0x0a ... 0x1f] = C_STOP,
  [' '] = C_FIELD,          ['!'] = TF,                 ['"'] = C_FIELD,
  ['#' ... '\''] = TF,      ['(' ... ')'] = C_FIELD,    ['*' ... '+'] = TF,
  [','] = C_FIELD,          ['-' ... '.'] = TF,         ['/'] = C_FIELD,
  ['0' ... '9'] = TF,       [':' ... '@'] = C_FIELD,    ['A' ... 'Z'] = TF,
  ['[' ... ']'] = C_FIELD,  ['^' ... '`'] = TF,         ['a' ... 'z'] = TF,
  ['{'] = C_FIELD,          ['|'] = TF,                 ['}'] = C_FIELD,
  ['~'] = TF,               [0x7f] = C_STOP,            [0x80 ... 0xff] = C_FIELD,
};
#undef TF

/* reg-name bytes besides pct-encoded (RFC 3986 3.2.2): unreserved and
 * sub-delims. */
static const unsigned char reg_name_byte[256] = {
  ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1,
  ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
  ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
  ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
};

static int is_tchar(unsigned char c) { return cls[c] & C_TCHAR; }
static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }
static int is_field_byte(unsigned char c) { return cls[c] & C_FIELD; }

static int is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned char c) {
  if (c <= '9') return c - '0';
  return (unsigned)((c | 0x20) - 'a' + 10);
}

static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive compare of s[0..n) with a lower-case literal. */
static int ieq(const char *s, size_t n, const char *lit, size_t lit_len) {
  if (n != lit_len) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
  return 1;
}
#define IEQ(s, n, lit) ieq((s), (n), lit, sizeof(lit) - 1)


/* ------------------------------------------------------------------ */
/* pass 1: find the end of the head                                     */

/* Skips plain bytes (0x20..0x7e, 0x80..0xff) a word at a time: returns the
 * offset of the first C_STOP byte at or after i, or an offset less than 8
 * bytes before lim from which the byte loop goes on. Per word, a byte below
 * 0x20 sets its high bit in (x - 0x20..) & ~x and a DEL is a zero byte of
 * x ^ 0x7f.., found the same way; a borrow can only mark bytes above a true
 * hit, so the lowest marked byte (the first in memory, little-endian) is
 * the first C_STOP byte. */
static size_t skip_plain(const unsigned char *b, size_t i, size_t lim) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  while (lim - i >= 8) {
    uint64_t x;
    memcpy(&x, b + i, 8);
    uint64_t d = x ^ (0x7f * ones);
    uint64_t m = (((x - 0x20 * ones) & ~x) | ((d - ones) & ~d)) & high;
    if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      i += (size_t)__builtin_ctzll(m) >> 3;
#endif
      break;
    }
    i += 8;
  }
  return i;
}

typedef struct scan_state {
  size_t pos, start;
  int32_t lines;
} scan_state;

/*
 * Scans b[st->pos .. min(len, max)). Returns the offset just past the head's
 * final CRLF, LB_EAGAIN, or an error. Bytes before st->pos were scanned by an
 * earlier call on the same content; a CR is only judged together with the
 * byte after it (st->pos stops on a final CR) and the byte after an LF is
 * checked on entry, so resuming gives the same verdict as one pass
 * (split-proof).
 */
static ptrdiff_t scan_head(scan_state *st, const unsigned char *b, size_t len,
                           size_t max, size_t max_lines) {
  size_t lim = len < max ? len : max;
  size_t start = st->start;
  int32_t lines = st->lines;
  size_t i = st->pos;
  if (i > len) { i = 0; start = 0; lines = 0; } /* misuse: restart */
  /* A field line starting with whitespace is obs-fold (RFC 9112 5.2) or
   * whitespace between the start line and the first field (RFC 9112 2.2):
   * both rejected. */
  if (i > 0 && i < lim && lines > 0 && b[i - 1] == '\n' && is_ows(b[i])) return LB_EHEADER;
  while (i < lim) {
    /* Most bytes are printable: skip them first, eight at a time while
     * none of the eight is a CTL (0x00-0x1f) or DEL. */
    i = skip_plain(b, i, lim);
    while (i < lim && !(cls[b[i]] & C_STOP)) i++;
    if (i == lim) break;
    unsigned c = b[i];
    if (c == '\t') { i++; continue; }
    if (c != '\r') /* a bare LF (RFC 9112 2.2 lets us refuse it: one line-end
                      rule keeps us in step with proxies), or a CTL */
      return lines ? LB_EHEADER : LB_EPROTO;
    if (i + 1 == lim) break;                     /* judge this CR next time */
    if (b[i + 1] != '\n') return lines ? LB_EHEADER : LB_EPROTO; /* CR without LF */
    size_t lf = i + 1;
    if (lines == 0 && i == start) { start = lf + 1; i = lf + 1; continue; } /* leading CRLF */
    lines++;
    if (lines >= 2 && b[i - 1] == '\n') { /* an empty line: end of head */
      st->start = start;
      return (ptrdiff_t)(lf + 1);
    }
    if ((size_t)lines > max_lines) return LB_ETOOMANY;
    if (lf + 1 < lim && is_ows(b[lf + 1])) return LB_EHEADER; /* obs-fold, see above */
    i = lf + 1;
  }
  if (lim < len || len >= max) return LB_EHEADERSIZE;
  st->pos = i;
  st->start = start;
  st->lines = lines;
  return LB_EAGAIN;
}

/* ------------------------------------------------------------------ */
/* pass 2: llhttp                                                       */

typedef struct h1ctx {
  lb_http1_header *h;
  size_t max, n;
  const char *url, *status;
  size_t url_len, status_len;
  int field_open; /* the last field-name span may still grow */
  int err;
} h1ctx;

/* llhttp reports a span in several callbacks only when it is split across
 * execute() calls; we make one call, but stay correct if it ever splits. */
static int span_add(const char **p, size_t *n, const char *at, size_t len) {
  if (*p == NULL) { *p = at; *n = len; return 0; }
  if (*p + *n != at) return -1;
  *n += len;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  h1ctx *x = p->data;
  if (span_add(&x->url, &x->url_len, at, len)) { x->err = LB_EURL; return -1; }
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
  h1ctx *x = p->data;
  if (span_add(&x->status, &x->status_len, at, len)) { x->err = LB_ESTATUS; return -1; }
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  h1ctx *x = p->data;
  if (x->field_open) {
    lb_http1_header *h = &x->h[x->n - 1];
    if (span_add(&h->name, &h->name_len, at, len)) { x->err = LB_EHEADER; return -1; }
    return 0;
  }
  if (x->n >= x->max) { x->err = LB_ETOOMANY; return -1; }
  lb_http1_header *h = &x->h[x->n++];
  h->name = at;
  h->name_len = len;
  h->value = NULL;
  h->value_len = 0;
  x->field_open = 1;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  h1ctx *x = p->data;
  x->field_open = 0;
  /* Make llhttp treat the value as a generic field: it then neither sets
   * its framing flags nor applies its own Content-Length and
   * Transfer-Encoding rules (it refuses two equal Content-Length fields and
   * a Transfer-Encoding alongside Content-Length on HTTP/1.0, which
   * conformance/http1.md asks us to accept). llhttp loads header_state
   * right after this callback to pick the value parser; 0 is "general". The
   * test "two equal Content-Length collapse" fails if a future llhttp stops
   * honouring this. */
  p->header_state = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  h1ctx *x = p->data;
  if (x->n == 0) { x->err = LB_EHEADER; return -1; }
  lb_http1_header *h = &x->h[x->n - 1];
  /* A second, non-adjacent piece would be an obs-fold continuation. */
  if (span_add(&h->value, &h->value_len, at, len)) { x->err = LB_EHEADER; return -1; }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  (void)p;
  return HPE_PAUSED; /* the body is not llhttp's business */
}

/* Read-only after compile time, so shared by every thread. */
static const llhttp_settings_t h1_settings = {
  .on_url = on_url,
  .on_status = on_status,
  .on_header_field = on_header_field,
  .on_header_field_complete = on_header_field_complete,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
};

/* Runs llhttp over a complete head. Returns 0 or an LB_E* code. */
/* Runs llhttp over a whole head, the fields going into hdrs (at most
 * max_headers of them; none kept when hdrs is NULL). */
static int run_llhttp(llhttp_t *p, h1ctx *x, llhttp_type_t type, const char *head,
                      size_t hlen, lb_http1_header *hdrs, size_t max_headers) {
  memset(x, 0, sizeof *x);
  x->h = hdrs;
  x->max = hdrs ? max_headers : 0;
  llhttp_init(p, type, &h1_settings);
  p->data = x;
  llhttp_errno_t e = llhttp_execute(p, head, hlen);
  if (x->err) return x->err;
  if (e == HPE_PAUSED && llhttp_get_error_pos(p) == head + hlen) return 0;
  /* Which line failed tells a field error from a start-line error. */
  const char *pos = llhttp_get_error_pos(p);
  const char *eol = memchr(head, '\n', hlen);
  int in_fields = pos != NULL && eol != NULL && pos > eol;
  switch (e) {
  case HPE_INVALID_METHOD: {
    /* An unknown but well-formed method is "not implemented" (RFC 9110
     * 9.1); anything else is a malformed line. */
    size_t i = 0;
    while (i < hlen && is_tchar((unsigned char)head[i])) i++;
    return (i > 0 && i < hlen && head[i] == ' ') ? LB_EMETHOD : LB_EPROTO;
  }
  case HPE_INVALID_URL: return LB_EURL;
  case HPE_INVALID_VERSION:
  case HPE_PAUSED_H2_UPGRADE: return LB_EVERSION;
  case HPE_INVALID_STATUS: return LB_ESTATUS;
  case HPE_INVALID_CONTENT_LENGTH:
  case HPE_UNEXPECTED_CONTENT_LENGTH: return LB_ECONTENTLEN;
  case HPE_INVALID_TRANSFER_ENCODING: return LB_ETRANSFER;
  default:
    /* "PRI * HTTP/2.0" stops llhttp short of our end of head, waiting for
     * the rest of the HTTP/2 preface. */
    if (p->http_major >= 2 || (p->http_major == 0 && p->http_minor == 9)) return LB_EVERSION;
    if (in_fields) return LB_EHEADER;
    return type == HTTP_RESPONSE ? LB_ESTATUS : LB_EPROTO;
  }
}

/* ------------------------------------------------------------------ */
/* field semantics                                                      */

/* Content-Length (RFC 9110 8.6): 1*DIGIT, here at most 2^63-1. */
static int parse_cl(const char *s, size_t n, int64_t *out) {
  if (n == 0) return LB_ECONTENTLEN;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < '0' || c > '9') return LB_ECONTENTLEN;
    /* v * 10 + d <= INT64_MAX  <=>  v <= (INT64_MAX - d) / 10 */
    if (v > (INT64_MAX - (c - '0')) / 10) return LB_ECONTENTLEN;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return 0;
}

/* uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2). Empty is valid (a
 * request whose target has no authority sends an empty Host). */
static int valid_host(const char *s, size_t n) {
  size_t i = 0;
  if (n > 0 && s[0] == '[') { /* IP-literal: IPv6 (no IPvFuture) */
    i = 1;
    while (i < n && s[i] != ']') {
      unsigned char c = (unsigned char)s[i];
      if (!is_hex(c) && c != ':' && c != '.') return 0;
      i++;
    }
    if (i >= n || i < 3) return 0; /* no ']' or "[]"/"[x]" */
    i++;
  } else { /* reg-name or IPv4: unreserved / pct-encoded / sub-delims */
    while (i < n) {
      unsigned char c = (unsigned char)s[i];
      if (reg_name_byte[c]) { i++; continue; } /* most bytes: one look */
      if (c == ':') break;
      if (c == '%') {
        if (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
          return 0;
        i += 3;
        continue;
      }
      return 0;
    }
  }
  if (i == n) return 1;
  if (s[i] != ':') return 0;
  for (i++; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* Calls fn on each non-empty element of a comma-separated list with OWS
 * trimmed (RFC 9110 5.6.1). */
typedef struct list_flags {
  int close, keep_alive, upgrade, cont, other;
} list_flags;

static void conn_token(list_flags *f, const char *t, size_t n) {
  if (IEQ(t, n, "close")) f->close = 1;
  else if (IEQ(t, n, "keep-alive")) f->keep_alive = 1;
  else if (IEQ(t, n, "upgrade")) f->upgrade = 1;
}

static void expect_token(list_flags *f, const char *t, size_t n) {
  if (IEQ(t, n, "100-continue")) f->cont = 1;
  else f->other = 1;
}

static void each_token(list_flags *f, const char *s, size_t n,
                       void (*fn)(list_flags *, const char *, size_t)) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && is_ows((unsigned char)s[a])) a++;
    while (b > a && is_ows((unsigned char)s[b - 1])) b--;
    if (b > a) fn(f, s + a, b - a);
    i = j + 1;
  }
}

/* Facts gathered from the fields of a head. */
typedef struct fields {
  const lb_http1_header *host;
  int hosts, te_fields, te_chunked, has_cl, cl_bad, has_upgrade;
  int64_t cl;
  list_flags conn, expect;
} fields;

/* Validates every field and gathers the framing facts. Returns 0,
 * LB_EHEADER, or LB_ECONTENTLEN (kept apart in f->cl_bad so that the caller
 * can rank a Transfer-Encoding error first, as Go does). */
static int classify(lb_http1_header *h, size_t n, fields *f, int names_ok) {
  memset(f, 0, sizeof *f);
  for (size_t k = 0; k < n; k++) {
    lb_http1_header *e = &h[k];
    if (!names_ok) {
      if (e->name_len == 0) return LB_EHEADER;
      for (size_t i = 0; i < e->name_len; i++)
        if (!is_tchar((unsigned char)e->name[i])) return LB_EHEADER; /* incl. space before ':' */
    }
    if (e->value == NULL) e->value = e->name + e->name_len; /* empty value */
    const char *v = e->value;
    size_t vn = e->value_len;
    while (vn > 0 && is_ows((unsigned char)v[0])) { v++; vn--; }
    while (vn > 0 && is_ows((unsigned char)v[vn - 1])) vn--;
    /* No need to check the value's bytes again: scan_head() refused every
     * CTL but HTAB, and DEL, in the whole head, and a value span never
     * holds the CR LF that ends it. */
    e->value = v;
    e->value_len = vn;

    switch (e->name_len) {
    case 4:
      if (IEQ(e->name, 4, "host")) { f->hosts++; f->host = e; }
      break;
    case 6:
      if (IEQ(e->name, 6, "expect")) each_token(&f->expect, v, vn, expect_token);
      break;
    case 7:
      if (IEQ(e->name, 7, "upgrade") && vn > 0) f->has_upgrade = 1;
      break;
    case 10:
      if (IEQ(e->name, 10, "connection")) each_token(&f->conn, v, vn, conn_token);
      break;
    case 14:
      if (IEQ(e->name, 14, "content-length")) {
        int64_t cl = 0;
        /* RFC 9110 8.6: equal repeated values may collapse; differing
         * ones make the length unknowable, a smuggling vector. A list in
         * one field ("5, 5") is not a decimal and is refused. */
        if (parse_cl(v, vn, &cl) != 0 || (f->has_cl && cl != f->cl)) f->cl_bad = 1;
        f->has_cl = 1;
        f->cl = cl;
      }
      break;
    case 17:
      if (IEQ(e->name, 17, "transfer-encoding")) {
        f->te_fields++;
        f->te_chunked = IEQ(v, vn, "chunked");
      }
      break;
    default:
      break;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* requests                                                             */

static int valid_target_bytes(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return 0;
  }
  return n > 0;
}

static void split_path_query(lb_http1_req *r, const char *s, size_t n) {
  const char *q = memchr(s, '?', n);
  r->path = s;
  if (q == NULL) { r->path_len = n; return; }
  r->path_len = (size_t)(q - s);
  r->query = q + 1;
  r->query_len = n - r->path_len - 1;
}

/* RFC 9112 3.2: origin-form, absolute-form, authority-form (CONNECT),
 * asterisk-form. Sets path/query and, for the forms that carry one, host. */
static int parse_target(lb_http1_req *r, int is_connect) {
  const char *t = r->target;
  size_t n = r->target_len;
  if (!valid_target_bytes(t, n)) return LB_EURL;
  if (is_connect) {
    if (t[0] == '/' || !valid_host(t, n) || n == 0) return LB_EURL;
    r->path = t;
    r->path_len = n;
    r->host = t;
    r->host_len = n;
    return 0;
  }
  if (t[0] == '/') { split_path_query(r, t, n); return 0; }
  if (n == 1 && t[0] == '*') { r->path = t; r->path_len = 1; return 0; }
  /* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
  size_t i = 0;
  if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) return LB_EURL;
  while (i < n && (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                   (t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.'))
    i++;
  if (n - i < 3 || memcmp(t + i, "://", 3) != 0) return LB_EURL;
  size_t a = i + 3, b = a;
  while (b < n && t[b] != '/' && t[b] != '?' && t[b] != '#') b++;
  /* userinfo is not allowed in http(s) URIs (RFC 9110 4.2.4) */
  if (memchr(t + a, '@', b - a) != NULL || b == a || !valid_host(t + a, b - a)) return LB_EURL;
  r->host = t + a;
  r->host_len = b - a;
  split_path_query(r, t + b, n - b);
  return 0;
}

void lb_http1_req_reset(lb_http1_req *r) {
  r->_scan_pos = 0;
  r->_scan_start = 0;
  r->_scan_lines = 0;
}

/* Pass 1 for requests and responses alike: resumes the scan where the
 * last call stopped (the caller's _scan fields), saves the progress back on
 * LB_EAGAIN, and otherwise returns scan_head's result with *start set to
 * where the head begins. */
static ptrdiff_t scan_resume(size_t *pos, size_t *sstart, int32_t *lines, size_t max_headers,
                             const char *buf, size_t len, size_t *max_header_bytes, size_t *start) {
  if (*max_header_bytes == 0) *max_header_bytes = LB_HTTP1_DEFAULT_MAX_HEADER_BYTES;
  scan_state st = {*pos, *sstart, *lines};
  /* A head of k field lines has k + 2 line ends; refusing early bounds the
   * work an endless stream of tiny fields can cause. */
  size_t max_lines = max_headers < ((size_t)INT32_MAX - 2) ? max_headers + 1 : INT32_MAX;
  ptrdiff_t end = scan_head(&st, (const unsigned char *)buf, len, *max_header_bytes, max_lines);
  if (end == LB_EAGAIN) {
    *pos = st.pos;
    *sstart = st.start;
    *lines = st.lines;
  }
  *start = st.start;
  return end;
}

/* The common request head, read without llhttp (which costs most of a
 * small head's parse): one of the seven usual methods, an origin-form
 * target of plain bytes, HTTP/1.1 or HTTP/1.0, and fields whose names are
 * tokens and whose values are printable ASCII and HTAB. It fills what
 * run_llhttp() would (the fields, the target's span, the minor version)
 * and returns 1; anything else returns 0 and goes through llhttp, which
 * decides. It relies on scan_head()'s verdict on the same head: every line
 * ends in CRLF, no CTL but HTAB, no field line starts with whitespace, and
 * the head ends at its first empty line, so no loop below can run past it.
 * Every byte class here is one llhttp accepts in that place (test_http1
 * checks each byte against the llhttp path, and fuzz_http1 whole heads). */
static const unsigned char fast_target[256] = {
  ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1,
  ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
  ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
  ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
  [':'] = 1, ['@'] = 1, ['/'] = 1, ['?'] = 1, ['%'] = 1,
};
static const unsigned char fast_value[256] = { ['\t'] = 1, [' ' ... '~'] = 1 };

static uint32_t load32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t load64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
#define W4(s) (load32((const unsigned char *)(s)))
#define W8(s) (load64((const unsigned char *)(s)))

/* The length of the method at p when it is one of the seven (followed by
 * its SP), else 0. p has at least 8 bytes. */
static size_t fast_method(const unsigned char *p) {
  uint32_t w = load32(p);
  if (w == W4("GET ") || w == W4("PUT ")) return 3;
  if ((w == W4("HEAD") || w == W4("POST")) && p[4] == ' ') return 4;
  uint64_t x = load64(p);
  if ((x & 0xffffffffffffull) == (W8("PATCH   ") & 0xffffffffffffull)) return 5;
  if ((x & 0xffffffffffffffull) == (W8("DELETE  ") & 0xffffffffffffffull)) return 6;
  if (x == W8("OPTIONS ")) return 7;
  return 0;
}

/* LB_HTTP1_GET.. for the usual methods (case-sensitive), else 0. */
static int32_t method_id(const char *m, size_t n) {
  switch (n) {
  case 3:
    if (memcmp(m, "GET", 3) == 0) return LB_HTTP1_GET;
    if (memcmp(m, "PUT", 3) == 0) return LB_HTTP1_PUT;
    return 0;
  case 4:
    if (memcmp(m, "HEAD", 4) == 0) return LB_HTTP1_HEAD;
    if (memcmp(m, "POST", 4) == 0) return LB_HTTP1_POST;
    return 0;
  case 5: return memcmp(m, "PATCH", 5) == 0 ? LB_HTTP1_PATCH : 0;
  case 6: return memcmp(m, "DELETE", 6) == 0 ? LB_HTTP1_DELETE : 0;
  case 7: return memcmp(m, "OPTIONS", 7) == 0 ? LB_HTTP1_OPTIONS : 0;
  default: return 0;
  }
}

static int fast_request(const char *head, size_t hlen, lb_http1_header *hdrs, size_t max,
                        h1ctx *x, int *minor) {
  const unsigned char *p = (const unsigned char *)head;
  const unsigned char *end = p + hlen;
  if (hlen < 18) return 0; /* shorter than "GET / HTTP/1.0\r\n\r\n" */
  size_t ml = fast_method(p);
  if (ml == 0) return 0;
  p += ml + 1;
  if (*p != '/') return 0;
  const unsigned char *url = p;
  while (fast_target[*p]) p++;
  if (*p != ' ') return 0;
  size_t url_len = (size_t)(p - url);
  p++;
  /* "HTTP/1.x" CR LF: ten bytes, the LF certain once the CR is there */
  if ((size_t)(end - p) < 10 || p[8] != '\r') return 0;
  uint64_t v8 = load64(p);
  int mi;
  if (v8 == W8("HTTP/1.1")) mi = 1;
  else if (v8 == W8("HTTP/1.0")) mi = 0;
  else return 0;
  p += 10;
  size_t n = 0;
  while (*p != '\r') {
    const unsigned char *name = p;
    while (cls[*p] & C_TCHAR) p++;
    if (p == name || *p != ':' || n >= max) return 0;
    lb_http1_header *h = &hdrs[n++];
    h->name = (const char *)name;
    h->name_len = (size_t)(p - name);
    p++;
    while (*p == ' ' || *p == '\t') p++;
    const unsigned char *v = p;
    while (fast_value[*p]) p++;
    if (*p != '\r') return 0;
    /* llhttp reports an empty value as an empty span where the next line
     * begins: so is it here (the views must not depend on the path) */
    h->value = (const char *)(p > v ? v : p + 2);
    h->value_len = (size_t)(p - v);
    p += 2;
  }
  x->n = n;
  x->url = (const char *)url;
  x->url_len = url_len;
  *minor = mi;
  return 1;
}

static ptrdiff_t parse_request(lb_http1_req *r, const char *buf, size_t len,
                               size_t max_header_bytes, int fast);

ptrdiff_t lb_http1_parse_request(lb_http1_req *r, const char *buf, size_t len,
                                 size_t max_header_bytes) {
  return parse_request(r, buf, len, max_header_bytes, 1);
}

ptrdiff_t lb_http1_parse_request_llhttp(lb_http1_req *r, const char *buf, size_t len,
                                        size_t max_header_bytes) {
  return parse_request(r, buf, len, max_header_bytes, 0);
}

static ptrdiff_t parse_request(lb_http1_req *r, const char *buf, size_t len,
                               size_t max_header_bytes, int fast) {
  size_t start;
  ptrdiff_t end = scan_resume(&r->_scan_pos, &r->_scan_start, &r->_scan_lines, r->max_headers,
                              buf, len, &max_header_bytes, &start);
  if (end == LB_EAGAIN) return LB_EAGAIN;
  lb_http1_req_reset(r);
  if (end < 0) return end;

  lb_http1_header *hdrs = r->headers;
  memset(&r->num_headers, 0, offsetof(lb_http1_req, _scan_lines) - offsetof(lb_http1_req, num_headers));

  const char *head = buf + start;
  size_t hlen = (size_t)end - start;
  h1ctx x;
  int rc, minor;
  size_t ml;
  int names_ok = 0; /* the field names were checked (tokens, not empty) */
  if (fast && fast_request(head, hlen, hdrs, hdrs ? r->max_headers : 0, &x, &minor)) {
    names_ok = 1;
    r->num_headers = x.n;
    ml = (size_t)(x.url - 1 - head);
    r->version_major = 1;
    r->version_minor = minor;
  } else {
    llhttp_t p;
    rc = run_llhttp(&p, &x, HTTP_REQUEST, head, hlen, hdrs, r->max_headers);
    r->num_headers = x.n;
    if (rc) return rc;

    /* request-line = method SP request-target SP HTTP-version CRLF, with
     * one SP each (RFC 9112 3): llhttp is laxer about spaces. */
    ml = 0;
    while (ml < hlen && head[ml] != ' ') ml++;
    const char *eol = memchr(head, '\r', hlen);
    if (x.url == NULL || x.url != head + ml + 1 || eol == NULL ||
        x.url + x.url_len + 9 != eol || x.url[x.url_len] != ' ' ||
        memcmp(x.url + x.url_len + 1, "HTTP/", 5) != 0)
      return LB_EPROTO;
    r->method = head;
    r->method_len = ml;
    r->target = x.url;
    r->target_len = x.url_len;
    r->version_major = p.http_major;
    r->version_minor = p.http_minor;
    if (p.http_major != 1) return LB_EVERSION; /* RFC 9112 2.3 */
    minor = p.http_minor;
  }
  r->method = head;
  r->method_len = ml;
  r->target = x.url;
  r->target_len = x.url_len;
  int v11 = minor >= 1;

  fields f;
  if ((rc = classify(hdrs, x.n, &f, names_ok)) != 0) return rc;
  int is_connect = ml == 7 && memcmp(head, "CONNECT", 7) == 0; /* methods are case-sensitive */
  if ((rc = parse_target(r, is_connect)) != 0) return rc;

  /* Host (RFC 9112 3.2): exactly one on 1.1, never several, always valid. */
  if (f.hosts > 1) return LB_EHOST;
  if (f.hosts == 1 && !valid_host(f.host->value, f.host->value_len)) return LB_EHOST;
  if (f.hosts == 0 && v11 && !is_connect) return LB_EHOST;
  if (r->host == NULL && f.hosts == 1) {
    r->host = f.host->value;
    r->host_len = f.host->value_len;
  }

  /* Framing (RFC 9112 6.1, 6.3). Transfer-Encoding means nothing in 1.0
   * (RFC 9112 6.1: a 1.0 message with it is faulty; the table says ignore). */
  r->body_kind = LB_HTTP1_BODY_NONE;
  r->content_length = 0;
  if (v11 && f.te_fields > 0) {
    if (f.te_fields != 1 || !f.te_chunked) return LB_ETRANSFER;
  }
  if (f.cl_bad) return LB_ECONTENTLEN; /* even beside chunked: never guess */
  if (v11 && f.te_fields > 0) {
    r->body_kind = LB_HTTP1_BODY_CHUNKED; /* Content-Length, if any, ignored */
    r->content_length = -1;
  } else if (f.has_cl) {
    r->body_kind = LB_HTTP1_BODY_LENGTH;
    r->content_length = f.cl;
  }

  r->keep_alive = v11 ? !f.conn.close : (f.conn.keep_alive && !f.conn.close);
  /* RFC 9110 10.1.1: a 100-continue from a 1.0 client must be ignored. */
  if (v11) {
    r->expect_other = f.expect.other;
    r->expect_continue = f.expect.cont && !f.expect.other;
  }
  r->upgrade = f.conn.upgrade && f.has_upgrade;
  r->method_id = method_id(head, ml);
  return end;
}

/* ------------------------------------------------------------------ */
/* responses                                                            */

void lb_http1_resp_reset(lb_http1_resp *r) {
  r->_scan_pos = 0;
  r->_scan_start = 0;
  r->_scan_lines = 0;
}

ptrdiff_t lb_http1_parse_response(lb_http1_resp *r, const char *buf, size_t len,
                                  size_t max_header_bytes, int head_request) {
  size_t start;
  ptrdiff_t end = scan_resume(&r->_scan_pos, &r->_scan_start, &r->_scan_lines, r->max_headers,
                              buf, len, &max_header_bytes, &start);
  if (end == LB_EAGAIN) return LB_EAGAIN;
  lb_http1_resp_reset(r);
  if (end < 0) return end == LB_EPROTO ? LB_ESTATUS : end;

  lb_http1_header *hdrs = r->headers;
  memset(&r->num_headers, 0, offsetof(lb_http1_resp, _scan_lines) - offsetof(lb_http1_resp, num_headers));

  const char *head = buf + start;
  size_t hlen = (size_t)end - start;
  h1ctx x;
  llhttp_t p;
  int rc = run_llhttp(&p, &x, HTTP_RESPONSE, head, hlen, hdrs, r->max_headers);
  r->num_headers = x.n;
  if (rc) return rc;

  /* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF.
   * llhttp takes "HTTP/1.1 200\r\n" (no SP) too, as RFC 9112 4 advises. */
  if (hlen < 13 || memcmp(head, "HTTP/", 5) != 0 || head[8] != ' ') return LB_ESTATUS;
  r->version_major = p.http_major;
  r->version_minor = p.http_minor;
  r->status = p.status_code;
  if (p.http_major != 1) return LB_EVERSION;
  if (r->status < 100 || r->status > 999) return LB_ESTATUS;
  r->reason = x.status ? x.status : head + 12;
  r->reason_len = x.status ? x.status_len : 0;
  for (size_t i = 0; i < r->reason_len; i++)
    if (!is_field_byte((unsigned char)r->reason[i])) return LB_ESTATUS;
  int v11 = p.http_minor >= 1;

  fields f;
  if ((rc = classify(hdrs, x.n, &f, 0)) != 0) return rc;
  if (f.cl_bad) return LB_ECONTENTLEN;

  int s = r->status;
  int no_body = head_request || (s >= 100 && s < 200) || s == 204 || s == 304;
  int chunked = v11 && f.te_fields > 0;
  if (no_body) {
    r->body_kind = LB_HTTP1_BODY_NONE;
    r->content_length = f.has_cl ? f.cl : 0; /* HEAD: the length a GET would get */
  } else if (chunked) {
    /* RFC 9112 6.3: chunked must be the final coding; any other coding we
     * could not undo, so refuse instead of handing the caller raw bytes. */
    if (f.te_fields != 1 || !f.te_chunked) return LB_ETRANSFER;
    r->body_kind = LB_HTTP1_BODY_CHUNKED;
    r->content_length = -1;
  } else if (f.has_cl) {
    r->body_kind = LB_HTTP1_BODY_LENGTH;
    r->content_length = f.cl;
  } else {
    r->body_kind = LB_HTTP1_BODY_CLOSE;
    r->content_length = -1;
  }
  r->upgrade = s == 101;
  r->keep_alive = (v11 ? !f.conn.close : (f.conn.keep_alive && !f.conn.close)) &&
                  r->body_kind != LB_HTTP1_BODY_CLOSE && !r->upgrade;
  return end;
}

int lb_http1_status_for(ptrdiff_t err) {
  if (err >= 0 || err == LB_EAGAIN) return 0;
  switch (err) {
  case LB_EHEADERSIZE:
  case LB_ETOOMANY: return 431;
  case LB_EVERSION: return 505;
  case LB_ETRANSFER:
  case LB_EMETHOD: return 501;
  case LB_ETOOLARGE: return 413;
  default:
    return (err <= -100 && err > -200) ? 400 : 500;
  }
}

/* ------------------------------------------------------------------ */
/* chunked bodies                                                       */

enum {
  CS_SIZE = 0,     /* hex digits of chunk-size */
  CS_SIZE_WS,      /* BWS after the size */
  CS_EXT,          /* chunk-ext, skipped */
  CS_SIZE_LF,      /* CR seen, LF expected */
  CS_DATA,
  CS_DATA_CR,
  CS_DATA_LF,
  CS_TRAILER_START,
  CS_TRAILER_NAME,
  CS_TRAILER_VALUE,
  CS_TRAILER_LF,
  CS_END_LF
};

/* Trailer fields that would change the framing or metadata after the fact
 * (RFC 9110 6.5.1): refused. Matched incrementally, one bit each. */
static const char *const forbidden_trailers[] = {"transfer-encoding", "content-length",
                                                 "trailer"};
static const uint32_t forbidden_len[] = {17, 14, 7};
enum { FORBIDDEN_ALL = 7 };

int lb_http1_chunked_done(const lb_http1_chunked *c) {
  return c->state == LB_HTTP1_CHUNKED_DONE;
}

ptrdiff_t lb_http1_chunked_decode(lb_http1_chunked *c, const char *in, size_t len,
                                  const char **data, size_t *data_len) {
  if (data == NULL || data_len == NULL || (in == NULL && len > 0)) return LB_EINVAL;
  *data = NULL;
  *data_len = 0;
  const unsigned char *b = (const unsigned char *)in;
  size_t i = 0;
  while (i < len) {
    if (c->state == LB_HTTP1_CHUNKED_DONE) return (ptrdiff_t)i;
    if (c->state == CS_DATA) {
      size_t avail = len - i;
      size_t take = c->remaining < avail ? (size_t)c->remaining : avail;
      *data = in + i;
      *data_len = take;
      c->remaining -= take;
      c->total += take;
      if (c->remaining == 0) c->state = CS_DATA_CR;
      return (ptrdiff_t)(i + take);
    }
    unsigned ch = b[i++];
    if (c->state >= CS_TRAILER_START && ++c->trailer_len >= LB_HTTP1_MAX_TRAILER_BYTES)
      return LB_EHEADERSIZE;
    switch (c->state) {
    case CS_SIZE:
    case CS_SIZE_WS:
    case CS_EXT:
      if (ch != '\r' && ++c->line_len >= LB_HTTP1_MAX_CHUNK_LINE) return LB_ECHUNK;
      if (c->state == CS_SIZE && is_hex((unsigned char)ch)) {
        /* at most 16 digits, and the value must fit in int64 for Lua:
         * remaining * 16 + d <= INT64_MAX  <=>  remaining <= (INT64_MAX - d) / 16 */
        unsigned d = hex_val((unsigned char)ch);
        if (++c->ndigits > 16 || c->remaining > ((uint64_t)INT64_MAX - d) / 16) return LB_ECHUNK;
        c->remaining = c->remaining * 16 + d;
        break;
      }
      if (c->state == CS_SIZE && c->ndigits == 0) return LB_ECHUNK; /* no digits */
      if (ch == '\r') { c->state = CS_SIZE_LF; break; }
      if (c->state == CS_EXT) {
        /* extensions are skipped, but stay text: no bare LF, no CTL */
        if (!is_field_byte((unsigned char)ch)) return LB_ECHUNK;
        break;
      }
      if (ch == ';') { c->state = CS_EXT; break; }
      if (ch == ' ' || ch == '\t') { c->state = CS_SIZE_WS; break; } /* BWS */
      return LB_ECHUNK;
    case CS_SIZE_LF:
      if (ch != '\n') return LB_ECHUNK; /* stray CR */
      c->line_len = 0;
      c->ndigits = 0;
      c->state = c->remaining == 0 ? CS_TRAILER_START : CS_DATA;
      break;
    case CS_DATA_CR:
      if (ch != '\r') return LB_ECHUNK;
      c->state = CS_DATA_LF;
      break;
    case CS_DATA_LF:
      if (ch != '\n') return LB_ECHUNK;
      c->state = CS_SIZE;
      break;
    case CS_TRAILER_START:
      if (ch == '\r') { c->state = CS_END_LF; break; }
      c->name_match = FORBIDDEN_ALL;
      c->name_len = 0;
      c->state = CS_TRAILER_NAME;
      /* fall through */
    case CS_TRAILER_NAME:
      if (ch == ':') {
        if (c->name_len == 0) return LB_ECHUNK;
        for (int k = 0; k < 3; k++)
          if ((c->name_match >> k & 1) && forbidden_len[k] == c->name_len) return LB_ECHUNK;
        c->state = CS_TRAILER_VALUE;
        break;
      }
      if (!is_tchar((unsigned char)ch)) return LB_ECHUNK; /* incl. obs-fold, space before ':' */
      for (int k = 0; k < 3; k++)
        if (c->name_len >= forbidden_len[k] ||
            lower((unsigned char)ch) != (unsigned char)forbidden_trailers[k][c->name_len])
          c->name_match &= ~(1u << k);
      if (c->name_len < UINT32_MAX) c->name_len++;
      break;
    case CS_TRAILER_VALUE:
      if (ch == '\r') { c->state = CS_TRAILER_LF; break; }
      if (!is_field_byte((unsigned char)ch)) return LB_ECHUNK;
      break;
    case CS_TRAILER_LF:
      if (ch != '\n') return LB_ECHUNK;
      c->state = CS_TRAILER_START;
      break;
    case CS_END_LF:
      if (ch != '\n') return LB_ECHUNK;
      c->state = LB_HTTP1_CHUNKED_DONE;
      return (ptrdiff_t)i;
    default:
      return LB_EINVAL; /* corrupted state */
    }
  }
  return (ptrdiff_t)i;
}

/* ------------------------------------------------------------------ */
/* writing                                                              */

const char *lb_http1_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 102: return "Processing";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 207: return "Multi-Status";
  case 208: return "Already Reported";
  case 226: return "IM Used";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 305: return "Use Proxy";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 418: return "I'm a teapot";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 423: return "Locked";
  case 424: return "Failed Dependency";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 451: return "Unavailable For Legal Reasons";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 506: return "Variant Also Negotiates";
  case 507: return "Insufficient Storage";
  case 508: return "Loop Detected";
  case 510: return "Not Extended";
  case 511: return "Network Authentication Required";
  default: return "";
  }
}

/* a + b, saturating at SIZE_MAX */
static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

size_t lb_http1_response_head_max_len(int status, const char *reason,
                                      const lb_http1_header *hdrs, size_t n) {
  (void)status; /* always three digits when valid */
  if (reason == NULL) reason = lb_http1_reason(status);
  size_t len = sat_add(9 + 3 + 1 + 2 + 2, strlen(reason)); /* "HTTP/1.1 " NNN SP CRLF CRLF */
  for (size_t k = 0; hdrs != NULL && k < n; k++) {
    len = sat_add(len, hdrs[k].name_len);
    len = sat_add(len, hdrs[k].value_len);
    len = sat_add(len, 4); /* ": " CRLF */
  }
  return len;
}

ptrdiff_t lb_http1_write_response_head(char *dst, size_t cap, int status,
                                       const char *reason,
                                       const lb_http1_header *hdrs, size_t n) {
  if (status < 100 || status > 999 || (hdrs == NULL && n > 0)) return LB_EINVAL;
  if (reason == NULL) reason = lb_http1_reason(status);
  size_t rlen = strlen(reason);
  /* Validate everything before writing anything: a header with CR or LF
   * would let a value end the head and forge a response (splitting). */
  for (size_t i = 0; i < rlen; i++)
    if (!is_field_byte((unsigned char)reason[i])) return LB_EHEADER;
  for (size_t k = 0; k < n; k++) {
    const lb_http1_header *h = &hdrs[k];
    if (h->name_len == 0 || h->name == NULL || (h->value == NULL && h->value_len > 0))
      return LB_EHEADER;
    for (size_t i = 0; i < h->name_len; i++)
      if (!is_tchar((unsigned char)h->name[i])) return LB_EHEADER;
    for (size_t i = 0; i < h->value_len; i++)
      if (!is_field_byte((unsigned char)h->value[i])) return LB_EHEADER;
  }
  size_t need = lb_http1_response_head_max_len(status, reason, hdrs, n);
  if (need > cap || need > (size_t)PTRDIFF_MAX) return LB_ENOSPACE;
  char *p = dst;
  memcpy(p, "HTTP/1.1 ", 9);
  p += 9;
  *p++ = (char)('0' + status / 100);
  *p++ = (char)('0' + status / 10 % 10);
  *p++ = (char)('0' + status % 10);
  *p++ = ' ';
  memcpy(p, reason, rlen);
  p += rlen;
  *p++ = '\r';
  *p++ = '\n';
  for (size_t k = 0; k < n; k++) {
    memcpy(p, hdrs[k].name, hdrs[k].name_len);
    p += hdrs[k].name_len;
    *p++ = ':';
    *p++ = ' ';
    if (hdrs[k].value_len) memcpy(p, hdrs[k].value, hdrs[k].value_len);
    p += hdrs[k].value_len;
    *p++ = '\r';
    *p++ = '\n';
  }
  *p++ = '\r';
  *p++ = '\n';
  return p - dst;
}

static void put2(char *p, int v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
}

size_t lb_http1_format_date(char *dst, int64_t t) {
  static const char wdays[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  /* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z: the years IMF-fixdate's
   * four digits can show. */
  if (t < INT64_C(-62167219200)) t = INT64_C(-62167219200);
  if (t > INT64_C(253402300799)) t = INT64_C(253402300799);
  int64_t days = t / 86400, secs = t % 86400;
  if (secs < 0) { secs += 86400; days--; } /* floor division */
  int wd = (int)((days + 4) % 7);          /* 1970-01-01 was a Thursday */
  if (wd < 0) wd += 7;
  /* Civil date from a day count: shift the epoch to 0000-03-01 so that the
   * leap day ends the year, then split into 400-year eras (146097 days),
   * years of the era, day of the year, month (5-month cycles of 153 days). */
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                                   /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                                 /* [0, 11], March = 0 */
  int day = (int)(doy - (153 * mp + 2) / 5 + 1);
  int month = (int)(mp < 10 ? mp + 3 : mp - 9);
  int year = (int)(yoe + era * 400 + (month <= 2));
  char *p = dst;
  memcpy(p, wdays + wd * 3, 3);
  p[3] = ',';
  p[4] = ' ';
  put2(p + 5, day);
  p[7] = ' ';
  memcpy(p + 8, months + (month - 1) * 3, 3);
  p[11] = ' ';
  put2(p + 12, year / 100);
  put2(p + 14, year % 100);
  p[16] = ' ';
  put2(p + 17, (int)(secs / 3600));
  p[19] = ':';
  put2(p + 20, (int)(secs / 60 % 60));
  p[22] = ':';
  put2(p + 23, (int)(secs % 60));
  memcpy(p + 25, " GMT", 4);
  p[29] = '\0';
  return LB_HTTP1_DATE_LEN;
}
