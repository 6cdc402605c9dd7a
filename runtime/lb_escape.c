/*
 * lb_escape.c: contextual escapers (see lb_escape.h).
 *
 * The byte sets and replacement strings follow Go 1.19's html/template, so a
 * page rendered by lowbit.stencil has the bytes html/template would write.
 * Every escaper is a single pass over the input; output is bounded by
 * lb_escape_max_len() (the worst case is 8 bytes out per byte in:
 * "&#xfffd;" for one invalid byte in an unquoted attribute).
 */
#include <string.h>

#include "lowbit/lb_escape.h"

static const char hexdig[] = "0123456789abcdef";

/* Out-of-room check before every write: `o` is the write position. */
#define PUT(p, n)                                                              \
  do {                                                                         \
    size_t lb__n = (n);                                                        \
    if ((size_t)(end - o) < lb__n) return LB_ENOSPACE;                         \
    memcpy(o, (p), lb__n);                                                     \
    o += lb__n;                                                                \
  } while (0)
#define PUTS(s) PUT((s), sizeof(s) - 1)
#define PUTC(c)                                                                \
  do {                                                                         \
    if (o == end) return LB_ENOSPACE;                                          \
    *o++ = (char)(c);                                                          \
  } while (0)

/* Decodes one UTF-8 sequence at p (n > 0 bytes available) the way Go's
 * utf8.DecodeRune does: overlong forms, surrogates and values above
 * U+10FFFF are invalid, and an invalid sequence is U+FFFD of width 1. */
static uint32_t utf8_decode(const unsigned char *p, size_t n, size_t *w) {
  unsigned c = p[0];
  uint32_t r;
  size_t need;
  unsigned lo = 0x80, hi = 0xbf;
  if (c < 0x80) { *w = 1; return c; }
  if (c >= 0xc2 && c <= 0xdf) { need = 1; r = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) {
    need = 2; r = c & 0x0f;
    if (c == 0xe0) lo = 0xa0;          /* overlong */
    if (c == 0xed) hi = 0x9f;          /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3; r = c & 0x07;
    if (c == 0xf0) lo = 0x90;          /* overlong */
    if (c == 0xf4) hi = 0x8f;          /* above U+10FFFF */
  } else { *w = 1; return 0xfffd; }
  if (n < need + 1 || p[1] < lo || p[1] > hi) { *w = 1; return 0xfffd; }
  r = (r << 6) | (p[1] & 0x3f);
  for (size_t i = 2; i <= need; i++) {
    if (p[i] < 0x80 || p[i] > 0xbf) { *w = 1; return 0xfffd; }
    r = (r << 6) | (p[i] & 0x3f);
  }
  *w = need + 1;
  return r;
}

size_t lb_escape_max_len(int kind, size_t len) {
  if (kind < LB_ESCAPE_HTML || kind > LB_ESCAPE_SRCSET) return 0;
  if (len > (SIZE_MAX - 16) / 8) return 0;
  return 8 * len + 16;
}

/* HTML text, RCDATA and quoted attribute values. Bytes >= 0x80 pass as
 * they are (html/template decodes runes here but changes none of them). */
static ptrdiff_t esc_html(const unsigned char *s, size_t n, char *o, char *end) {
  char *start = o;
  for (size_t i = 0; i < n; i++) {
    switch (s[i]) {
    case 0: PUTS("\xef\xbf\xbd"); break;
    case '"': PUTS("&#34;"); break;
    case '&': PUTS("&amp;"); break;
    case '\'': PUTS("&#39;"); break;
    case '+': PUTS("&#43;"); break;
    case '<': PUTS("&lt;"); break;
    case '>': PUTS("&gt;"); break;
    default: PUTC(s[i]);
    }
  }
  return o - start;
}

/* Unquoted attribute values: whitespace, = and ` end such a value in some
 * browser, so they are entities too; noncharacters (U+FDD0..U+FDEF,
 * U+FFF0..U+FFFF, which covers U+FFFD from invalid bytes) as &#x..;. */
static ptrdiff_t esc_nospace(const unsigned char *s, size_t n, char *o, char *end) {
  char *start = o;
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    if (c >= 0x80) {
      size_t w;
      uint32_t r = utf8_decode(s + i, n - i, &w);
      if ((r >= 0xfdd0 && r <= 0xfdef) || (r >= 0xfff0 && r <= 0xffff)) {
        char tmp[16];
        int k = 0;
        tmp[k++] = '&'; tmp[k++] = '#'; tmp[k++] = 'x';
        for (int sh = 12; sh >= 0; sh -= 4) tmp[k++] = hexdig[(r >> sh) & 15];
        tmp[k++] = ';';
        PUT(tmp, (size_t)k);
      } else {
        PUT(s + i, w);
      }
      i += w;
      continue;
    }
    switch (c) {
    case 0: PUTS("&#xfffd;"); break;
    case '\t': PUTS("&#9;"); break;
    case '\n': PUTS("&#10;"); break;
    case '\v': PUTS("&#11;"); break;
    case '\f': PUTS("&#12;"); break;
    case '\r': PUTS("&#13;"); break;
    case ' ': PUTS("&#32;"); break;
    case '"': PUTS("&#34;"); break;
    case '&': PUTS("&amp;"); break;
    case '\'': PUTS("&#39;"); break;
    case '+': PUTS("&#43;"); break;
    case '<': PUTS("&lt;"); break;
    case '=': PUTS("&#61;"); break;
    case '>': PUTS("&gt;"); break;
    case '`': PUTS("&#96;"); break;
    default: PUTC(c);
    }
    i++;
  }
  return o - start;
}

/* URL bytes: unreserved (RFC 3986 2.3) always pass; reserved (2.2) and '%'
 * pass when normalizing (the author's structure is kept) and are encoded
 * when the value is one query component. */
static int url_keep(unsigned c, int norm) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 1;
  switch (c) {
  case '-': case '.': case '_': case '~':
    return 1;
  case '!': case '#': case '$': case '&': case '*': case '+': case ',':
  case '/': case ':': case ';': case '=': case '?': case '@': case '[':
  case ']': case '%':
    return norm;
  default:
    return 0;
  }
}

static ptrdiff_t esc_url(const unsigned char *s, size_t n, int norm, char *o, char *end) {
  char *start = o;
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    if (url_keep(c, norm)) {
      PUTC(c);
    } else {
      char t[3] = { '%', hexdig[c >> 4], hexdig[c & 15] };
      PUT(t, 3);
    }
  }
  return o - start;
}

/* JS strings and regexps. Control characters as \uXXXX (\t \n \f \r short),
 * U+2028/U+2029 (line terminators in JS) escaped, HTML specials as \u00XX
 * so the result is also safe inside an attribute. Invalid UTF-8 passes. */
static ptrdiff_t esc_js(const unsigned char *s, size_t n, int regexp, char *o, char *end) {
  char *start = o;
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    if (c < 0x20) {
      switch (c) {
      case '\t': PUTS("\\t"); break;
      case '\n': PUTS("\\n"); break;
      case '\f': PUTS("\\f"); break;
      case '\r': PUTS("\\r"); break;
      default: {
        char t[6] = { '\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15] };
        PUT(t, 6);
      }
      }
      continue;
    }
    if (c == 0xe2 && i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
      PUTS("\\u202");
      PUTC(s[i + 2] == 0xa8 ? '8' : '9');
      i += 2;
      continue;
    }
    switch (c) {
    case '"': PUTS("\\u0022"); continue;
    case '&': PUTS("\\u0026"); continue;
    case '\'': PUTS("\\u0027"); continue;
    case '+': PUTS("\\u002b"); continue;
    case '/': PUTS("\\/"); continue;
    case '<': PUTS("\\u003c"); continue;
    case '>': PUTS("\\u003e"); continue;
    case '\\': PUTS("\\\\"); continue;
    case '`':
      if (!regexp) { PUTS("\\u0060"); continue; }
      break;
    default:
      break;
    }
    if (regexp) {
      switch (c) {
      case '$': case '(': case ')': case '*': case '-': case '.': case '?':
      case '[': case ']': case '^': case '{': case '|': case '}':
        PUTC('\\');
        PUTC(c);
        continue;
      default:
        break;
      }
    }
    PUTC(c);
  }
  return o - start;
}

/* A string as a JSON value, as encoding/json writes it with HTML escaping
 * on: quoted, \" \\ \n \r \t, other controls and < > & as \u00XX, invalid
 * UTF-8 as \ufffd, U+2028/U+2029 escaped. */
static ptrdiff_t esc_json(const unsigned char *s, size_t n, char *o, char *end) {
  char *start = o;
  PUTC('"');
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    if (c >= 0x80) {
      size_t w;
      uint32_t r = utf8_decode(s + i, n - i, &w);
      if (r == 0xfffd && w == 1) PUTS("\\ufffd");
      else if (r == 0x2028) PUTS("\\u2028");
      else if (r == 0x2029) PUTS("\\u2029");
      else PUT(s + i, w);
      i += w;
      continue;
    }
    switch (c) {
    case '"': PUTS("\\\""); break;
    case '\\': PUTS("\\\\"); break;
    case '\n': PUTS("\\n"); break;
    case '\r': PUTS("\\r"); break;
    case '\t': PUTS("\\t"); break;
    default:
      if (c < 0x20 || c == '<' || c == '>' || c == '&') {
        char t[6] = { '\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15] };
        PUT(t, 6);
      } else {
        PUTC(c);
      }
    }
    i++;
  }
  PUTC('"');
  return o - start;
}

static int is_hex(unsigned c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_css_space(unsigned c) {
  return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ';
}

/* Inside a CSS string: specials as hex escapes; a space follows an escape
 * when the next byte could be read as part of it (a hex digit or space),
 * or at the end of the value. */
static ptrdiff_t esc_css_str(const unsigned char *s, size_t n, char *o, char *end) {
  char *start = o;
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    const char *r;
    switch (c) {
    case 0: r = "\\0"; break;
    case '\t': r = "\\9"; break;
    case '\n': r = "\\a"; break;
    case '\f': r = "\\c"; break;
    case '\r': r = "\\d"; break;
    case '"': r = "\\22"; break;
    case '&': r = "\\26"; break;
    case '\'': r = "\\27"; break;
    case '(': r = "\\28"; break;
    case ')': r = "\\29"; break;
    case '+': r = "\\2b"; break;
    case '/': r = "\\2f"; break;
    case ':': r = "\\3a"; break;
    case ';': r = "\\3b"; break;
    case '<': r = "\\3c"; break;
    case '>': r = "\\3e"; break;
    case '\\': PUTS("\\\\"); continue;
    case '{': r = "\\7b"; break;
    case '}': r = "\\7d"; break;
    default: PUTC(c); continue;
    }
    PUT(r, strlen(r));
    if (i + 1 == n || is_hex(s[i + 1]) || is_css_space(s[i + 1])) PUTC(' ');
  }
  return o - start;
}

static size_t utf8_encode(uint32_t r, char *o) {
  if (r >= 0xd800 && r <= 0xdfff) r = 0xfffd;
  if (r < 0x80) { o[0] = (char)r; return 1; }
  if (r < 0x800) { o[0] = (char)(0xc0 | (r >> 6)); o[1] = (char)(0x80 | (r & 0x3f)); return 2; }
  if (r < 0x10000) {
    o[0] = (char)(0xe0 | (r >> 12)); o[1] = (char)(0x80 | ((r >> 6) & 0x3f));
    o[2] = (char)(0x80 | (r & 0x3f)); return 3;
  }
  o[0] = (char)(0xf0 | (r >> 18)); o[1] = (char)(0x80 | ((r >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((r >> 6) & 0x3f)); o[3] = (char)(0x80 | (r & 0x3f));
  return 4;
}

static unsigned hexval(unsigned c) {
  if (c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

/* CSS escapes decoded (css-syntax: '\' hex{1,6} and one optional
 * whitespace, or '\' and any other character, which stands for itself). A
 * lone trailing '\' is dropped. The output is never longer than the input:
 * '\' plus k hex digits (k >= 1) is at most 4 bytes of UTF-8, and only k >= 3
 * can need more than k bytes. */
static size_t css_decode(const unsigned char *s, size_t n, char *o) {
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    if (s[i] != '\\') { o[w++] = (char)s[i++]; continue; }
    if (i + 1 >= n) break;
    if (is_hex(s[i + 1])) {
      size_t j = i + 1;
      uint32_t r = 0;
      while (j < n && j < i + 7 && is_hex(s[j])) r = r * 16 + hexval(s[j++]);
      if (r > 0x10ffff) { r /= 16; j--; }
      w += utf8_encode(r, o + w);
      i = j;
      if (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n') i += 2;
      else if (i < n && is_css_space(s[i])) i++;
    } else {
      size_t cw;
      utf8_decode(s + i + 1, n - i - 1, &cw);
      memcpy(o + w, s + i + 1, cw);
      w += cw;
      i += 1 + cw;
    }
  }
  return w;
}

static int css_nmchar(unsigned c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

/* Does the lowered identifier text id[0..n) contain needle? */
static int contains(const char *id, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(id + i, needle, k) == 0) return 1;
  return 0;
}

/* A CSS value: the decoded value passes when it holds no byte that could
 * end the declaration or open a string, comment, block or function (so no
 * url(), expression(), ...), no "--" (HTML comment markers) and its
 * identifier characters spell neither "expression" nor "mozbinding". */
static ptrdiff_t esc_css_value(const unsigned char *s, size_t n, char *o, char *end) {
  if ((size_t)(end - o) < n) return LB_ENOSPACE;
  size_t m = css_decode(s, n, o);
  const unsigned char *b = (const unsigned char *)o;
  char id[64];
  size_t idn = 0;
  int big = 0;
  for (size_t i = 0; i < m; i++) {
    unsigned c = b[i];
    switch (c) {
    case 0: case '"': case '\'': case '(': case ')': case '/': case ';': case '@':
    case '[': case '\\': case ']': case '`': case '{': case '}': case '<': case '>':
      return LB_EINVAL;
    case '-':
      if (i != 0 && b[i - 1] == '-') return LB_EINVAL;
      break;
    default:
      break;
    }
    if (c < 0x80 && css_nmchar(c)) {
      if (idn == sizeof id) big = 1;
      else id[idn++] = (char)((c >= 'A' && c <= 'Z') ? c | 0x20 : c);
    }
  }
  if (big) {
    /* Long identifier text: check it in one more pass over the bytes. */
    size_t k = 0;
    char win[10];
    for (size_t i = 0; i < m; i++) {
      unsigned c = b[i];
      if (!(c < 0x80 && css_nmchar(c))) continue;
      c = (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
      if (k == sizeof win) { memmove(win, win + 1, sizeof win - 1); k--; }
      win[k++] = (char)c;
      if (k >= 10 && memcmp(win, "expression", 10) == 0) return LB_EINVAL;
      if (k >= 10 && memcmp(win, "mozbinding", 10) == 0) return LB_EINVAL;
    }
    return (ptrdiff_t)m;
  }
  if (contains(id, idn, "expression") || contains(id, idn, "mozbinding")) return LB_EINVAL;
  return (ptrdiff_t)m;
}

/* ASCII case-insensitive: does in[0..n) equal the lowercase word w? */
static int ascii_ieq(const char *in, size_t n, const char *w) {
  if (strlen(w) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned c = (unsigned char)in[i];
    if (c >= 'A' && c <= 'Z') c |= 0x20;
    if (c != (unsigned char)w[i]) return 0;
  }
  return 1;
}

int lb_escape_url_safe(const char *in, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    if (in[i] == '/') return 1;
    if (in[i] == ':') break;
  }
  if (i == len) return 1;
  return ascii_ieq(in, i, "http") || ascii_ieq(in, i, "https") || ascii_ieq(in, i, "mailto");
}

static int is_html_space(unsigned c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static int is_alnum(unsigned c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One srcset candidate s[left..right): the URL (up to the first space) must
 * be safe and the descriptor spaces and alphanumerics only; else the whole
 * candidate is #ZgotmplZ. */
static ptrdiff_t srcset_one(const unsigned char *s, size_t left, size_t right, char *o, char *end) {
  char *start = o;
  size_t st = left, en = right;
  while (st < right && is_html_space(s[st])) st++;
  for (size_t i = st; i < right; i++)
    if (is_html_space(s[i])) { en = i; break; }
  if (lb_escape_url_safe((const char *)s + st, en - st)) {
    int ok = 1;
    for (size_t i = en; i < right; i++)
      if (!(is_html_space(s[i]) || is_alnum(s[i]))) { ok = 0; break; }
    if (ok) {
      PUT(s + left, st - left);
      ptrdiff_t k = esc_url(s + st, en - st, 1, o, end);
      if (k < 0) return k;
      o += k;
      PUT(s + en, right - en);
      return o - start;
    }
  }
  PUTS("#ZgotmplZ");
  return o - start;
}

static ptrdiff_t esc_srcset(const unsigned char *s, size_t n, char *o, char *end) {
  char *start = o;
  size_t left = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == ',') {
      ptrdiff_t k = srcset_one(s, left, i, o, end);
      if (k < 0) return k;
      o += k;
      if (i < n) PUTC(',');
      left = i + 1;
    }
  }
  return o - start;
}

static int need_html(unsigned c) {
  return c == 0 || c == '"' || c == '&' || c == '\'' || c == '+' || c == '<' || c == '>';
}

static int need_nospace(unsigned c) {
  return need_html(c) || c >= 0x80 || (c >= '\t' && c <= '\r') || c == ' ' || c == '=' || c == '`';
}

static int need_js(unsigned c) {
  return c < 0x20 || c == '"' || c == '\'' || c == '&' || c == '+' || c == '/' || c == '<' || c == '>' ||
         c == '\\' || c == '`' || c == 0xe2;
}

static int need_js_re(unsigned c) {
  return (need_js(c) && c != '`') || c == '$' || c == '(' || c == ')' || c == '*' || c == '-' || c == '.' ||
         c == '?' || c == '[' || c == ']' || c == '^' || c == '{' || c == '|' || c == '}';
}

static int need_css_str(unsigned c) {
  return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '"' || c == '&' || c == '\'' ||
         c == '(' || c == ')' || c == '+' || c == '/' || c == ':' || c == ';' || c == '<' || c == '>' ||
         c == '\\' || c == '{' || c == '}';
}

#define SCAN(pred)                                                             \
  do {                                                                         \
    for (size_t i = 0; i < len; i++)                                           \
      if (pred(s[i])) return 1;                                                \
    return 0;                                                                  \
  } while (0)

int lb_escape_needed(int kind, const char *in, size_t len) {
  const unsigned char *s = (const unsigned char *)in;
  switch (kind) {
  case LB_ESCAPE_HTML: SCAN(need_html);
  case LB_ESCAPE_HTML_NOSPACE: SCAN(need_nospace);
  case LB_ESCAPE_URL_NORM:
    for (size_t i = 0; i < len; i++)
      if (!url_keep(s[i], 1)) return 1;
    return 0;
  case LB_ESCAPE_URL_QUERY:
    for (size_t i = 0; i < len; i++)
      if (!url_keep(s[i], 0)) return 1;
    return 0;
  case LB_ESCAPE_JS_STR: SCAN(need_js);
  case LB_ESCAPE_JS_REGEXP: SCAN(need_js_re);
  case LB_ESCAPE_CSS_STR: SCAN(need_css_str);
  default: return 1;
  }
}

ptrdiff_t lb_escape(int kind, const char *in, size_t len, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)in;
  char *end = out + cap;
  switch (kind) {
  case LB_ESCAPE_HTML: return esc_html(s, len, out, end);
  case LB_ESCAPE_HTML_NOSPACE: return esc_nospace(s, len, out, end);
  case LB_ESCAPE_URL_NORM: return esc_url(s, len, 1, out, end);
  case LB_ESCAPE_URL_QUERY: return esc_url(s, len, 0, out, end);
  case LB_ESCAPE_JS_STR: return esc_js(s, len, 0, out, end);
  case LB_ESCAPE_JS_REGEXP: return esc_js(s, len, 1, out, end);
  case LB_ESCAPE_JSON_STR: return esc_json(s, len, out, end);
  case LB_ESCAPE_CSS_STR: return esc_css_str(s, len, out, end);
  case LB_ESCAPE_CSS_VALUE: return esc_css_value(s, len, out, end);
  case LB_ESCAPE_SRCSET: return esc_srcset(s, len, out, end);
  default: return LB_EINVAL;
  }
}
