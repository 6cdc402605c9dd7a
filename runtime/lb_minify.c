/*
 * lb_minify.c: token-level JavaScript and CSS minifier (see lb_minify.h for
 * the guarantees). The JavaScript half is a lexer (lb_minify_js_next) and
 * an emitter that decides, between each pair of tokens, whether to write
 * nothing, a space or a line break. The CSS half is one pass over the bytes.
 */
#include <string.h>
#include <strings.h>

#include "lowbit/lb_minify.h"

/* Character classes, one table lookup per byte. */
enum {
  C_ID = 1,     /* identifier part: A-Z a-z 0-9 _ $ \ and bytes >= 0x80 */
  C_IDSTART = 2,/* identifier start (not digits) */
  C_DIGIT = 4,
  C_WS = 8,     /* ASCII whitespace other than line terminators */
  C_NL = 16,    /* \n \r */
  C_HEX = 32
};

static uint8_t cls[256];
static int cls_ready;

static void init_cls(void) {
  if (cls_ready) return;
  for (int c = 0; c < 256; c++) {
    uint8_t v = 0;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
        c == '\\' || c >= 0x80)
      v |= C_ID | C_IDSTART;
    if (c >= '0' && c <= '9') v |= C_ID | C_DIGIT | C_HEX;
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= C_HEX;
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f') v |= C_WS;
    if (c == '\n' || c == '\r') v |= C_NL;
    cls[c] = v;
  }
  cls_ready = 1; /* idempotent: racing initialisations write the same bytes */
}

/* Non-ASCII whitespace and line terminators, in UTF-8. Returns the sequence
 * length when in[i..] starts with one (sets *nl for U+2028/U+2029), else 0. */
static size_t uni_space(const uint8_t *in, size_t len, size_t i, int *nl) {
  uint8_t c = in[i];
  if (c == 0xC2) {
    if (i + 1 < len && in[i + 1] == 0xA0) return 2; /* NBSP */
    return 0;
  }
  if (c < 0xE1 || c > 0xEF || i + 2 >= len) return 0;
  uint8_t d = in[i + 1], e = in[i + 2];
  if (c == 0xEF) return (d == 0xBB && e == 0xBF) ? 3 : 0; /* BOM */
  if (c == 0xE1) return (d == 0x9A && e == 0x80) ? 3 : 0; /* U+1680 */
  if (c == 0xE3) return (d == 0x80 && e == 0x80) ? 3 : 0; /* U+3000 */
  if (c != 0xE2) return 0;
  if (d == 0x80) {
    if (e >= 0x80 && e <= 0x8A) return 3; /* U+2000..U+200A */
    if (e == 0xA8 || e == 0xA9) { *nl = 1; return 3; }
    if (e == 0xAF) return 3; /* U+202F */
    return 0;
  }
  if (d == 0x81 && e == 0x9F) return 3; /* U+205F */
  return 0;
}

size_t lb_minify_max_len(size_t len) {
  if (len > (SIZE_MAX - 32) / 2) return SIZE_MAX;
  return 2 * len + 16 + LB_MINIFY_MAX_HELD;
}

size_t lb_minify_line_of(const uint8_t *in, size_t len, size_t pos) {
  size_t line = 1;
  if (pos > len) pos = len;
  for (size_t i = 0; i < pos; i++) {
    if (in[i] == '\n') line++;
    else if (in[i] == '\r' && !(i + 1 < len && in[i + 1] == '\n')) line++;
  }
  return line;
}

/* ---------------------------------------------------------------- JS lexer */

static int word_is(const uint8_t *p, size_t n, const char *w) {
  size_t m = strlen(w);
  return n == m && memcmp(p, w, m) == 0;
}

/* Keywords after which `/` starts a regular expression. */
static int kw_before_regex(const uint8_t *p, size_t n) {
  if (n < 2 || n > 10) return 0;
  switch (p[0]) {
  case 'r': return word_is(p, n, "return");
  case 't': return word_is(p, n, "typeof") || word_is(p, n, "throw");
  case 'i': return word_is(p, n, "instanceof") || word_is(p, n, "in");
  case 'n': return word_is(p, n, "new");
  case 'd': return word_is(p, n, "delete") || word_is(p, n, "do");
  case 'v': return word_is(p, n, "void");
  case 'c': return word_is(p, n, "case");
  case 'e': return word_is(p, n, "else") || word_is(p, n, "extends");
  case 'y': return word_is(p, n, "yield");
  case 'a': return word_is(p, n, "await");
  }
  return 0;
}

/* Keywords after which a line break is never dropped (restricted
 * productions, and contextual keywords whose meaning a line break changes). */
static int kw_restricted(const uint8_t *p, size_t n) {
  if (n < 3 || n > 8) return 0;
  switch (p[0]) {
  case 'r': return word_is(p, n, "return");
  case 't': return word_is(p, n, "throw");
  case 'b': return word_is(p, n, "break");
  case 'c': return word_is(p, n, "continue");
  case 'y': return word_is(p, n, "yield");
  case 'a': return word_is(p, n, "async") || word_is(p, n, "await");
  case 'l': return word_is(p, n, "let");
  }
  return 0;
}

/* Keywords the emitter tracks for `;` and block braces. */
enum { KW_NONE, KW_ELSE, KW_DO, KW_TRY, KW_FINALLY, KW_FUNCTION };

static int kw_stmt(const uint8_t *p, size_t n) {
  if (n < 2 || n > 8) return KW_NONE;
  switch (p[0]) {
  case 'e': return word_is(p, n, "else") ? KW_ELSE : KW_NONE;
  case 'd': return word_is(p, n, "do") ? KW_DO : KW_NONE;
  case 't': return word_is(p, n, "try") ? KW_TRY : KW_NONE;
  case 'f':
    if (word_is(p, n, "finally")) return KW_FINALLY;
    return word_is(p, n, "function") ? KW_FUNCTION : KW_NONE;
  }
  return KW_NONE;
}

static int kw_paren_stmt(const uint8_t *p, size_t n) {
  return word_is(p, n, "if") || word_is(p, n, "while") || word_is(p, n, "for") ||
         word_is(p, n, "with");
}

/* Length of the longest punctuator at p[0..n) (n >= 1). Unknown bytes are
 * one-byte punctuators. `?.` before a digit is `?` (a conditional and a
 * number), as the grammar says. */
static size_t punct_len(const uint8_t *p, size_t n) {
#define AT(k) ((k) < n ? p[k] : 0)
  uint8_t c = p[0], d = AT(1), e = AT(2), f = AT(3);
  switch (c) {
  case '{': case '}': case '(': case ')': case '[': case ']': case ';': case ',':
  case '~': case ':': case '@': case '#':
    return 1;
  case '.':
    return (d == '.' && e == '.') ? 3 : 1;
  case '?':
    if (d == '?') return e == '=' ? 3 : 2;
    if (d == '.' && !(e >= '0' && e <= '9')) return 2;
    return 1;
  case '=':
    if (d == '=') return e == '=' ? 3 : 2;
    if (d == '>') return 2;
    return 1;
  case '!':
    if (d == '=') return e == '=' ? 3 : 2;
    return 1;
  case '<':
    if (d == '<') return e == '=' ? 3 : 2;
    if (d == '=') return 2;
    return 1;
  case '>':
    if (d == '>') {
      if (e == '>') return f == '=' ? 4 : 3;
      return e == '=' ? 3 : 2;
    }
    if (d == '=') return 2;
    return 1;
  case '*':
    if (d == '*') return e == '=' ? 3 : 2;
    return d == '=' ? 2 : 1;
  case '&': case '|':
    if (d == c) return e == '=' ? 3 : 2;
    return d == '=' ? 2 : 1;
  case '+': case '-':
    if (d == c) return 2;
    return d == '=' ? 2 : 1;
  case '%': case '^': case '/':
    return d == '=' ? 2 : 1;
  }
  return 1;
#undef AT
}

void lb_minify_js_lexer_init(lb_minify_js_lexer *lx, const uint8_t *in, size_t len) {
  init_cls();
  memset(lx, 0, sizeof *lx);
  lx->in = in;
  lx->len = len;
  lx->regex_ok = 1;
  lx->final = 1;
}

/* Skips whitespace and comments. Returns 0, or an error (unterminated
 * comment). Sets *nl when a line terminator was crossed. Stops at a kept
 * comment (it is a token). */
static int skip_space(lb_minify_js_lexer *lx, int *nl) {
  const uint8_t *in = lx->in;
  size_t len = lx->len, i = lx->pos;
  int line_start = (lx->base + i == 0) || *nl;
  while (i < len) {
    uint8_t c = in[i];
    uint8_t k = cls[c];
    if (k & C_WS) { i++; continue; }
    if (k & C_NL) { *nl = 1; line_start = 1; i++; continue; }
    if (c >= 0x80) {
      int unl = 0;
      size_t m = uni_space(in, len, i, &unl);
      if (!m) break;
      if (unl) { *nl = 1; line_start = 1; }
      i += m;
      continue;
    }
    if (c == '/' && i + 1 < len && in[i + 1] == '/') {
      goto line_comment;
    }
    if (c == '/' && i + 1 < len && in[i + 1] == '*') {
      if (i + 2 < len && in[i + 2] == '!') break; /* kept: a token */
      size_t j = i + 2;
      for (;;) {
        const uint8_t *s = memchr(in + j, '*', len - j);
        size_t end = s ? (size_t)(s - in) : len;
        for (size_t q = j; q < end; q++) {
          if (in[q] == '\n' || in[q] == '\r') { *nl = 1; line_start = 1; }
          else if (in[q] == 0xE2 && q + 2 < len && in[q + 1] == 0x80 &&
                   (in[q + 2] == 0xA8 || in[q + 2] == 0xA9)) { *nl = 1; line_start = 1; }
        }
        if (!s) { lx->err_pos = lx->base + i; return LB_ECOMMENT; }
        if (end + 1 < len && in[end + 1] == '/') { i = end + 2; break; }
        j = end + 1;
      }
      continue;
    }
    /* Annex B: `<!--` anywhere and `-->` at a line start open a line comment. */
    if (c == '<' && i + 3 < len && in[i + 1] == '!' && in[i + 2] == '-' && in[i + 3] == '-')
      goto line_comment;
    if (c == '-' && line_start && i + 2 < len && in[i + 1] == '-' && in[i + 2] == '>')
      goto line_comment;
    break;
  line_comment:
    while (i < len) {
      uint8_t b = in[i];
      if (b == '\n' || b == '\r') break;
      if (b == 0xE2 && i + 2 < len && in[i + 1] == 0x80 && (in[i + 2] == 0xA8 || in[i + 2] == 0xA9))
        break;
      i++;
    }
  }
  lx->pos = i;
  return 0;
}

/* Scans an identifier from i; returns its end. `\uXXXX` and `\u{...}`
 * escapes are identifier parts. */
static size_t scan_ident(const uint8_t *in, size_t len, size_t i) {
  while (i < len) {
    uint8_t c = in[i];
    if (!(cls[c] & C_ID)) break;
    if (c >= 0x80) {
      int nl = 0;
      if (uni_space(in, len, i, &nl)) break;
    } else if (c == '\\') {
      i++;
      if (i < len && in[i] == 'u') {
        i++;
        if (i < len && in[i] == '{') {
          while (i < len && in[i] != '}' && (cls[in[i]] & (C_HEX)) ) i++;
          if (i < len && in[i] == '}') i++;
        }
      }
      continue;
    }
    i++;
  }
  return i;
}

static size_t scan_number(const uint8_t *in, size_t len, size_t i) {
  if (in[i] == '0' && i + 1 < len &&
      (in[i + 1] == 'x' || in[i + 1] == 'X' || in[i + 1] == 'b' || in[i + 1] == 'B' ||
       in[i + 1] == 'o' || in[i + 1] == 'O')) {
    i += 2;
    while (i < len && ((cls[in[i]] & C_HEX) || in[i] == '_')) i++;
    if (i < len && in[i] == 'n') i++;
    return i;
  }
  while (i < len && ((cls[in[i]] & C_DIGIT) || in[i] == '_')) i++;
  if (i < len && in[i] == '.') {
    i++;
    while (i < len && ((cls[in[i]] & C_DIGIT) || in[i] == '_')) i++;
  }
  if (i < len && (in[i] == 'e' || in[i] == 'E')) {
    size_t j = i + 1;
    if (j < len && (in[j] == '+' || in[j] == '-')) j++;
    if (j < len && (cls[in[j]] & C_DIGIT)) {
      i = j;
      while (i < len && ((cls[in[i]] & C_DIGIT) || in[i] == '_')) i++;
    }
  }
  if (i < len && in[i] == 'n') i++;
  return i;
}

static int is_line_term(const uint8_t *in, size_t len, size_t i) {
  if (in[i] == '\n' || in[i] == '\r') return 1;
  return in[i] == 0xE2 && i + 2 < len && in[i + 1] == 0x80 &&
         (in[i + 2] == 0xA8 || in[i + 2] == 0xA9);
}

/* Scans a regular expression whose `/` is at i. Returns its end, or 0 when
 * a line terminator (*eof = 0) or the end of input (*eof = 1) comes first. */
static size_t scan_regex(const uint8_t *in, size_t len, size_t i, int *eof) {
  int cls_open = 0;
  *eof = 0;
  i++;
  while (i < len) {
    uint8_t c = in[i];
    if (c == '\\') {
      i++;
      if (i >= len) break;
      if (is_line_term(in, len, i)) return 0;
      i++;
      continue;
    }
    if (is_line_term(in, len, i)) return 0;
    if (c == '[') cls_open = 1;
    else if (c == ']') cls_open = 0;
    else if (c == '/' && !cls_open) {
      i++;
      return scan_ident(in, len, i); /* flags */
    }
    i++;
  }
  *eof = 1;
  return 0;
}

/* Scans a template piece from i (just after "`" or "}"). Returns the end
 * (after "`" or "${"), sets *open when it ends with "${"; 0 if unterminated. */
static size_t scan_template(const uint8_t *in, size_t len, size_t i, int *open) {
  while (i < len) {
    uint8_t c = in[i];
    if (c == '\\') { i += 2; continue; }
    if (c == '`') { *open = 0; return i + 1; }
    if (c == '$' && i + 1 < len && in[i + 1] == '{') { *open = 1; return i + 2; }
    i++;
  }
  return 0;
}

/* Lookahead the lexer may need past a token's end (`>>>=`, `-->`, `<!--`,
 * a UTF-8 space): while feeding, a token that ends closer than this to the
 * end of the available input waits for more. */
enum { LOOKAHEAD = LB_MINIFY_LOOKAHEAD };

/* Not at the end of the input yet: give back what this call scanned. */
#define MORE(start)                                                           \
  do {                                                                        \
    lx->pos = (start);                                                        \
    return LB_EAGAIN;                                                         \
  } while (0)

int lb_minify_js_next(lb_minify_js_lexer *lx, lb_minify_token *t) {
  const uint8_t *in = lx->in;
  size_t len = lx->len, start = lx->pos;
  int nl = 0, fin = (int)lx->final;
  if (lx->base + lx->pos == 0 && len >= 1 && in[0] == '#') {
    if (len < 2 && !fin) MORE(start);
    if (len >= 2 && in[1] == '!') {
      size_t i = 2;
      while (i < len && !is_line_term(in, len, i)) i++;
      if (!fin && i + LOOKAHEAD > len) MORE(start);
      t->kind = LB_MINIFY_TOK_HASHBANG;
      t->nl_before = 0;
      t->off = 0;
      t->len = i;
      lx->pos = i;
      lx->prev_kind = LB_MINIFY_TOK_HASHBANG;
      lx->regex_ok = 1;
      lx->prev_paren_kw = 0;
      return 1;
    }
  }
  int rc = skip_space(lx, &nl);
  if (rc) {
    if (!fin) MORE(start); /* only an unterminated comment fails here */
    return rc;
  }
  size_t i = lx->pos;
  if (i >= len) {
    if (!fin) MORE(start);
    if (lx->tpl_depth) { lx->err_pos = lx->base + len; return LB_ETEMPLATE; }
    return 0;
  }
  uint8_t c = in[i];
  uint8_t k = cls[c];
  size_t end = 0;
  uint32_t kind;
  int open = 0, code = 0;
  /* Scan: no state changes until the token is known to be complete. */
  if (k & C_DIGIT || (c == '.' && i + 1 < len && (cls[in[i + 1]] & C_DIGIT))) {
    end = scan_number(in, len, i);
    kind = LB_MINIFY_TOK_NUMBER;
  } else if (((k & C_IDSTART) && (end = scan_ident(in, len, i)) > i) ||
             (c == '#' && i + 1 < len && (cls[in[i + 1]] & C_IDSTART) &&
              (end = scan_ident(in, len, i + 1)) > i + 1)) {
    kind = LB_MINIFY_TOK_IDENT;
  } else if (c == '"' || c == '\'') {
    size_t j = i + 1;
    kind = LB_MINIFY_TOK_STRING;
    for (;;) {
      if (j >= len) { code = fin ? LB_ESTRING : LB_EAGAIN; break; }
      uint8_t b = in[j];
      if (b == c) { end = j + 1; break; }
      if (b == '\\') {
        j++;
        if (j < len && in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') j++;
        j++;
        continue;
      }
      if (b == '\n' || b == '\r') { code = LB_ESTRING; break; }
      j++;
    }
  } else if (c == '`' || (c == '}' && lx->tpl_depth && lx->tpl_braces[lx->tpl_depth - 1] == 0)) {
    kind = LB_MINIFY_TOK_TEMPLATE;
    end = scan_template(in, len, i + 1, &open);
    if (!end) code = fin ? LB_ETEMPLATE : LB_EAGAIN;
  } else if (c == '/' && i + 2 < len && in[i + 1] == '*' && in[i + 2] == '!') {
    kind = LB_MINIFY_TOK_COMMENT;
    const uint8_t *s = i + 3 < len ? memchr(in + i + 3, '/', len - i - 3) : NULL;
    while (s && s[-1] != '*') {
      size_t q = (size_t)(s - in) + 1;
      s = q < len ? memchr(in + q, '/', len - q) : NULL;
    }
    if (!s) code = fin ? LB_ECOMMENT : LB_EAGAIN;
    else end = (size_t)(s - in) + 1;
  } else if (c == '/' && lx->regex_ok) {
    int eof;
    kind = LB_MINIFY_TOK_REGEX;
    end = scan_regex(in, len, i, &eof);
    if (!end) code = (eof && !fin) ? LB_EAGAIN : LB_EREGEXP;
  } else {
    end = i + punct_len(in + i, len - i);
    kind = LB_MINIFY_TOK_PUNCT;
  }
  if (code == LB_EAGAIN || (!code && !fin && end + LOOKAHEAD > len)) MORE(start);
  if (code) { lx->err_pos = lx->base + i; return code; }
  /* Commit. */
  t->nl_before = (uint32_t)nl;
  t->off = i;
  t->kind = kind;
  t->len = end - i;
  lx->pos = end;
  if (kind == LB_MINIFY_TOK_COMMENT) return 1; /* the previous token stays */
  uint32_t rok = 0, pkw = 0;
  switch (kind) {
  case LB_MINIFY_TOK_IDENT:
    rok = (uint32_t)kw_before_regex(in + i, end - i);
    pkw = (uint32_t)kw_paren_stmt(in + i, end - i);
    break;
  case LB_MINIFY_TOK_TEMPLATE:
    if (open && lx->tpl_depth - (c == '}') >= LB_MINIFY_MAX_NESTING) {
      lx->pos = start;
      lx->err_pos = lx->base + i;
      return LB_ETOOMANY;
    }
    if (c == '}') lx->tpl_depth--;
    if (open) lx->tpl_braces[lx->tpl_depth++] = 0;
    rok = (uint32_t)open;
    break;
  case LB_MINIFY_TOK_PUNCT:
    rok = 1;
    if (c == '(') {
      uint32_t d = lx->paren_depth++;
      if (d < LB_MINIFY_PAREN_BITS) {
        uint64_t bit = (uint64_t)1 << (d & 63);
        if (lx->prev_paren_kw) lx->paren_kw[d >> 6] |= bit;
        else lx->paren_kw[d >> 6] &= ~bit;
      }
    } else if (c == ')') {
      rok = 0;
      if (lx->paren_depth) {
        uint32_t d = --lx->paren_depth;
        if (d < LB_MINIFY_PAREN_BITS && (lx->paren_kw[d >> 6] >> (d & 63) & 1)) rok = 1;
      }
    } else if (c == ']') {
      rok = 0;
    } else if (c == '}') {
      if (lx->tpl_depth) lx->tpl_braces[lx->tpl_depth - 1]--;
      rok = 1; /* a block's end: see lb_minify.h */
    } else if (c == '{') {
      if (lx->tpl_depth) lx->tpl_braces[lx->tpl_depth - 1]++;
    } else if ((c == '+' || c == '-') && end - i == 2 && in[i + 1] == c) {
      rok = 0;
    }
    break;
  }
  lx->prev_kind = kind;
  lx->regex_ok = rok;
  lx->prev_paren_kw = pkw;
  return 1;
}

/* -------------------------------------------------------------- JS emitter */

typedef struct out_t {
  uint8_t *p;
  size_t n, cap;
} out_t;

static int put(out_t *o, const uint8_t *s, size_t n) {
  if (n > o->cap - o->n) return LB_ENOSPACE;
  memcpy(o->p + o->n, s, n);
  o->n += n;
  return 0;
}

static int put1(out_t *o, uint8_t c) {
  if (o->n >= o->cap) return LB_ENOSPACE;
  o->p[o->n++] = c;
  return 0;
}

/* Copies a literal body, writing `</script` (any case) as `<\/script`. */
static int put_body(out_t *o, const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t *lt = memchr(s + i, '<', n - i);
    if (!lt) break;
    size_t at = (size_t)(lt - s);
    if (at + 8 <= n && s[at + 1] == '/' && strncasecmp((const char *)s + at + 2, "script", 6) == 0) {
      if (put(o, s + i, at + 1 - i) || put1(o, '\\')) return LB_ENOSPACE;
      i = at + 1;
    } else {
      if (put(o, s + i, at + 1 - i)) return LB_ENOSPACE;
      i = at + 1;
    }
  }
  return put(o, s + i, n - i);
}

static int tok_is(const uint8_t *in, const lb_minify_token *t, char c) {
  return t->kind == LB_MINIFY_TOK_PUNCT && t->len == 1 && in[t->off] == (uint8_t)c;
}

static int tok_is2(const uint8_t *in, const lb_minify_token *t, char c) {
  return t->kind == LB_MINIFY_TOK_PUNCT && t->len == 2 && in[t->off] == (uint8_t)c &&
         in[t->off + 1] == (uint8_t)c;
}

/* A token after which a statement may end (ASI may apply). */
static int ends_expr(const uint8_t *in, const lb_minify_token *a) {
  switch (a->kind) {
  case LB_MINIFY_TOK_IDENT: case LB_MINIFY_TOK_NUMBER: case LB_MINIFY_TOK_STRING:
  case LB_MINIFY_TOK_REGEX:
    return 1;
  case LB_MINIFY_TOK_TEMPLATE:
    return in[a->off + a->len - 1] == '`';
  case LB_MINIFY_TOK_PUNCT:
    return tok_is(in, a, ')') || tok_is(in, a, ']') || tok_is(in, a, '}') ||
           tok_is2(in, a, '+') || tok_is2(in, a, '-');
  }
  return 0;
}

/* A token that cannot continue an expression: ASI inserts `;` before it
 * when a line break precedes it. */
static int starts_stmt(const uint8_t *in, const lb_minify_token *b) {
  switch (b->kind) {
  case LB_MINIFY_TOK_IDENT: case LB_MINIFY_TOK_NUMBER: case LB_MINIFY_TOK_STRING:
  case LB_MINIFY_TOK_REGEX:
    return 1;
  case LB_MINIFY_TOK_PUNCT:
    return tok_is(in, b, '{') || tok_is(in, b, '!') || tok_is(in, b, '~') ||
           tok_is2(in, b, '+') || tok_is2(in, b, '-') || tok_is(in, b, '@') ||
           tok_is(in, b, '#');
  }
  return 0;
}

static int all_digits(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(cls[s[i]] & C_DIGIT) && s[i] != '_') return 0;
  return 1;
}

/* Whether a line break between the last significant token and b must be
 * kept (see lb_minify.h). */
static int keep_newline(const lb_minify_js_state *m, const uint8_t *in, const lb_minify_token *b) {
  if (m->a_restricted) {
    if (b->kind == LB_MINIFY_TOK_PUNCT && b->len == 1) {
      uint8_t c = in[b->off];
      if (c == ';' || c == '}' || c == ')' || c == ']' || c == ',' || c == ':') return 0;
    }
    return 1;
  }
  return m->a_ends_expr && starts_stmt(in, b);
}

/* Whether writing piece b right after the last piece written (its last
 * bytes are m->tail) would change the tokens. */
static int need_space(const lb_minify_js_state *m, const uint8_t *b, size_t blen, uint32_t bkind) {
  size_t alen = m->piece_len;
  uint32_t akind = m->piece_kind;
  if (!alen || !blen) return 0;
  size_t na = alen < 4 ? alen : 4;
  const uint8_t *a = m->tail + 4 - na; /* the last na bytes of the piece */
  uint8_t x = m->tail[3], y = b[0];
  if (bkind == LB_MINIFY_TOK_COMMENT) return x == '/' || x == '<';
  if ((akind == LB_MINIFY_TOK_IDENT || akind == LB_MINIFY_TOK_NUMBER ||
       akind == LB_MINIFY_TOK_REGEX) && (cls[y] & C_ID))
    return 1;
  if (x == '/' && (y == '/' || y == '*')) return 1;
  if (x == '#' && ((cls[y] & C_IDSTART) || y == '!')) return 1; /* `#x`, `#!` */
  if (x == '<' && y == '/') return 1;
  if ((x == '+' || x == '-') && y == x) return 1;
  if (akind == LB_MINIFY_TOK_NUMBER && y == '.' && m->piece_digits) return 1;
  if (akind == LB_MINIFY_TOK_PUNCT) {
    if (x == '.' && ((cls[y] & C_DIGIT) || y == '.')) return 1; /* `. . .` is not `...` */
    if (x == '-' && alen >= 2 && a[na - 2] == '-' && y == '>') return 1;
    uint8_t buf[8];
    size_t nb = blen < 4 ? blen : 4;
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    if (alen <= 4 && punct_len(buf, na + nb) != alen) return 1;
  }
  /* `<!` followed by `--`. */
  if (y == '-' && blen >= 2 && b[1] == '-' && x == '!' && alen == 1 && m->before == '<')
    return 1;
  return 0;
}

/* Records the piece just written at out[start .. o->n). */
static void wrote_piece(lb_minify_js_state *m, const out_t *o, size_t start, uint8_t before,
                        uint32_t kind) {
  size_t n = o->n - start, k = n < 4 ? n : 4;
  memcpy(m->tail + 4 - k, o->p + o->n - k, k);
  m->piece_len = n;
  m->piece_kind = kind;
  m->before = before;
  m->piece_digits = kind == LB_MINIFY_TOK_NUMBER && all_digits(o->p + start, n);
}

/* Writes a `;` that was held back (m->pend_semi). A `;` never needs a line
 * break around it (see keep_newline), only maybe a space. */
static int flush_semi(lb_minify_js_state *m, out_t *o) {
  static const uint8_t semi = ';';
  int e = 0;
  uint32_t k = m->pend_semi;
  m->pend_semi = 0;
  if (need_space(m, &semi, 1, LB_MINIFY_TOK_PUNCT)) e = put1(o, ' ');
  for (; k && !e; k--) {
    uint8_t before = o->n ? o->p[o->n - 1] : m->last;
    size_t start = o->n;
    e = put1(o, ';');
    if (!e) wrote_piece(m, o, start, before, LB_MINIFY_TOK_PUNCT);
  }
  if (e) return e;
  m->a_ends_expr = 0;
  m->a_restricted = 0;
  m->a_body = 0;
  m->a_stmt = 1;
  m->a_block_end = 0;
  m->fn_state = 0;
  m->have_a = 1;
  m->out_nl = 0;
  return 0;
}

void lb_minify_js_init(lb_minify_js_state *m) {
  memset(m, 0, sizeof *m);
  lb_minify_js_lexer_init(&m->lx, NULL, 0);
}

/* One pass over in[0..len): every token known to be complete is written.
 * *consumed is where the next call must resume (all of it when final). */
static ptrdiff_t js_run(lb_minify_js_state *m, const uint8_t *in, size_t len, int final,
                        uint8_t *outp, size_t cap, size_t *consumed, size_t *line) {
  lb_minify_js_lexer *lx = &m->lx;
  lx->in = in;
  lx->len = len;
  lx->pos = 0;
  lx->final = (uint32_t)final;
  out_t o = {outp, 0, cap};
  lb_minify_token t;
  size_t done = 0;
  int rc;
  if (line) *line = 0;
  while ((rc = lb_minify_js_next(lx, &t)) > 0) {
    const uint8_t *s = in + t.off;
    uint8_t before = o.n ? o.p[o.n - 1] : m->last;
    int e = 0;
    if (t.kind == LB_MINIFY_TOK_HASHBANG) {
      e = put_body(&o, s, t.len); /* a comment: `<\/script` is harmless */
      if (!e && t.len < len) {
        /* keep the line break as it is (CR LF, LF, CR, U+2028/9) */
        size_t j = t.len, k = in[j] == '\r' && j + 1 < len && in[j + 1] == '\n' ? 2
                              : in[j] >= 0x80 ? 3 : 1;
        e = put(&o, in + j, k);
        m->out_nl = 1;
      }
      if (e) return e;
      m->piece_len = 0;
      m->piece_kind = 0;
      done = lx->pos;
      continue;
    }
    if (m->pend_semi && !tok_is(in, &t, '}') && !tok_is(in, &t, ';')) {
      /* Only a `}` lets the held `;` go (ASI puts it back); anything else,
       * a kept comment included, gets it written first. */
      int fe = flush_semi(m, &o);
      if (fe) return fe;
      before = o.n ? o.p[o.n - 1] : m->last;
    }
    if (t.kind == LB_MINIFY_TOK_COMMENT) {
      if (t.nl_before && (o.n || m->out_any) && !m->out_nl) { e = put1(&o, '\n'); m->out_nl = 1; }
      else if (need_space(m, s, t.len, t.kind)) e = put1(&o, ' ');
      before = o.n ? o.p[o.n - 1] : m->last;
      size_t start = o.n;
      if (!e) e = put_body(&o, s, t.len);
      if (e) return e;
      if (memchr(s, '\n', t.len) || memchr(s, '\r', t.len)) m->out_nl = 1;
      wrote_piece(m, &o, start, before, LB_MINIFY_TOK_COMMENT);
      done = lx->pos;
      continue;
    }
    int semi = tok_is(in, &t, ';');
    if (!semi) m->semi_keep = 0;
    if (semi && m->pend_semi == LB_MINIFY_MAX_HELD) {
      /* A longer run than can be held (the output bound): all of it is
       * written, the same way whatever the feeding. */
      int fe = flush_semi(m, &o);
      if (fe) return fe;
      m->semi_keep = 1;
    }
    if (semi && !m->semi_keep && (m->pend_semi || !m->a_body)) {
      /* Held back until the next token: before a `}` it goes. Not after
       * the `)` of an if/for/while/with header, else, do or a `:`, where it
       * is an empty statement that is the body. The `;`s that follow a
       * held one are empty statements of the same list: they go too. In
       * valid code a `;` before a `}` is never a for(;;) separator. */
      m->pend_semi++;
      done = lx->pos;
      continue;
    }
    m->pend_semi = 0; /* (a `}` follows: the held `;`s are dropped) */
    if (m->have_a && t.nl_before && !m->out_nl && keep_newline(m, in, &t)) {
      e = put1(&o, '\n');
    } else if (need_space(m, s, t.len, t.kind)) {
      e = put1(&o, ' ');
    }
    before = o.n ? o.p[o.n - 1] : m->last;
    size_t start = o.n;
    if (!e) {
      if (t.kind == LB_MINIFY_TOK_REGEX) {
        /* The body is escaped, the closing `/` and the flags are not: a
         * body ending in `<` before flags "script" would write `</script`
         * (such flags are a syntax error anyway). */
        size_t sl = t.len - 1;
        while (s[sl] != '/') sl--;
        if (s[sl - 1] == '<' && t.len - sl - 1 >= 6 &&
            strncasecmp((const char *)s + sl + 1, "script", 6) == 0) {
          if (line) *line = m->lines + lb_minify_line_of(in, len, t.off);
          return LB_EREGEXP;
        }
        e = put_body(&o, s, sl);
        if (!e) e = put(&o, s + sl, t.len - sl);
      } else if (t.kind == LB_MINIFY_TOK_STRING || t.kind == LB_MINIFY_TOK_TEMPLATE) {
        e = put_body(&o, s, t.len);
      } else {
        e = put(&o, s, t.len);
      }
    }
    if (e) return e;
    wrote_piece(m, &o, start, before, t.kind);
    /* Blocks: the `}` of a block statement ends no expression, so no line
     * break after it is needed. Only braces known to open a block count:
     * after a statement boundary or a statement keyword, and the body of a
     * function declaration; an object literal, a function, class or arrow
     * body in an expression is never taken for one. */
    int kw = t.kind == LB_MINIFY_TOK_IDENT ? kw_stmt(s, t.len) : KW_NONE;
    {
      int stmt = !m->have_a || m->a_stmt;
      uint32_t fs = m->fn_state, d = lx->paren_depth;
      m->a_block_end = 0;
      if (tok_is(in, &t, '{')) {
        uint32_t bd = m->brace_depth++;
        if (bd < LB_MINIFY_PAREN_BITS) {
          uint64_t bit = (uint64_t)1 << (bd & 63);
          if (stmt || fs == 4) m->brace_block[bd >> 6] |= bit;
          else m->brace_block[bd >> 6] &= ~bit;
        }
      } else if (tok_is(in, &t, '}')) {
        if (m->brace_depth) {
          uint32_t bd = --m->brace_depth;
          m->a_block_end = bd < LB_MINIFY_PAREN_BITS && (m->brace_block[bd >> 6] >> (bd & 63) & 1);
        }
      }
      if (fs == 3) {
        if (tok_is(in, &t, ')') && d == m->fn_paren) m->fn_state = 4;
      } else if (kw == KW_FUNCTION) {
        m->fn_state = stmt ? 1 : 0;
      } else if (fs == 1 && tok_is(in, &t, '*')) {
        /* function* */
      } else if (fs == 1 && t.kind == LB_MINIFY_TOK_IDENT) {
        m->fn_state = 2;
      } else if (fs == 2 && tok_is(in, &t, '(')) {
        m->fn_state = 3;
        m->fn_paren = d - 1;
      } else {
        m->fn_state = 0;
      }
      m->a_stmt = tok_is(in, &t, ';') || tok_is(in, &t, '{') || tok_is(in, &t, '}') ||
                  (tok_is(in, &t, ')') && (lx->regex_ok || d >= LB_MINIFY_PAREN_BITS)) ||
                  (kw != KW_NONE && kw != KW_FUNCTION);
    }
    m->a_ends_expr = (uint32_t)ends_expr(in, &t) && !m->a_block_end;
    m->a_restricted = t.kind == LB_MINIFY_TOK_IDENT && kw_restricted(s, t.len);
    m->a_body = (tok_is(in, &t, ')') &&
                 (lx->regex_ok || lx->paren_depth >= LB_MINIFY_PAREN_BITS)) || tok_is(in, &t, ':') ||
                kw == KW_ELSE || kw == KW_DO;
    m->have_a = 1;
    m->out_nl = 0;
    done = lx->pos;
  }
  if (rc < 0 && rc != LB_EAGAIN) {
    if (line) *line = m->lines + lb_minify_line_of(in, len, lx->err_pos - lx->base);
    return rc;
  }
  if (final) {
    done = len;
    if (m->pend_semi && (rc = flush_semi(m, &o)) != 0) return rc;
  }
  m->lines += lb_minify_line_of(in, len, done) - 1;
  lx->base += done;
  if (o.n) {
    m->last = o.p[o.n - 1];
    m->out_any = 1;
  }
  *consumed = done;
  return (ptrdiff_t)o.n;
}

ptrdiff_t lb_minify_js_feed(lb_minify_js_state *m, const uint8_t *in, size_t len, int final,
                            uint8_t *out, size_t cap, size_t *consumed, size_t *line) {
  *consumed = 0;
  if (line) *line = 0;
  if ((!in && len) || !out) return LB_EINVAL;
  if (cap < lb_minify_max_len(len)) return LB_ENOSPACE;
  return js_run(m, in, len, final, out, cap, consumed, line);
}

ptrdiff_t lb_minify_js(const uint8_t *in, size_t len, uint8_t *outp, size_t cap,
                       size_t *line) {
  if (line) *line = 0;
  if ((!in && len) || (!outp && cap)) return LB_EINVAL;
  lb_minify_js_state m;
  size_t consumed;
  lb_minify_js_init(&m);
  return js_run(&m, in, len, 1, outp, cap, &consumed, line);
}

/* --------------------------------------------------------------------- CSS */

static int css_ident(uint8_t c) {
  return (cls[c] & C_ID) || c == '-';
}

/* Whether the space between P (last byte written) and N (next byte) can go. */
static int css_drop(uint8_t p, uint8_t n, int paren) {
  switch (p) {
  case '{': case '}': case ';': case '!': case '(': case ':':
    return 1;
  case ',': case '>': case '~':
    if (!paren) return 1;
  }
  switch (n) {
  case '{': case '}': case ';': case ')': case '!':
    return 1;
  case ',':
  case '>': case '~':
    if (!paren) return 1;
  }
  return 0;
}

/* Copies a CSS string starting at i (quote); returns its end or 0. */
static size_t css_string(const uint8_t *in, size_t len, size_t i) {
  uint8_t q = in[i++];
  while (i < len) {
    uint8_t c = in[i];
    if (c == q) return i + 1;
    if (c == '\\') {
      i++;
      if (i < len && in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') i++;
      i++;
      continue;
    }
    if (c == '\n' || c == '\r' || c == '\f') return 0;
    i++;
  }
  return SIZE_MAX; /* the end of the input came first */
}

/* End of a comment starting at i ("/" "*"), or 0. */
static size_t css_comment(const uint8_t *in, size_t len, size_t i) {
  size_t j = i + 2;
  while (j + 1 < len) {
    const uint8_t *s = memchr(in + j, '*', len - 1 - j);
    if (!s) return 0;
    j = (size_t)(s - in);
    if (in[j + 1] == '/') return j + 2;
    j++;
  }
  return 0;
}

/* An escape at i ("\\"): returns its end (hex digits and one whitespace
 * after them are part of it). */
static size_t css_escape(const uint8_t *in, size_t len, size_t i) {
  i++;
  if (i >= len) return i;
  if (cls[in[i]] & C_HEX) {
    size_t k = 0;
    while (i < len && k < 6 && (cls[in[i]] & C_HEX)) { i++; k++; }
    if (i < len && in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') return i + 2;
    if (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r' || in[i] == '\f'))
      i++;
    return i;
  }
  return i + 1;
}

static int css_ws(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Lookahead of the CSS pass: `url(`, an escape's six hex digits and its
 * whitespace (CR LF). While feeding, a unit (a byte, string, comment,
 * escape, url() or custom property value) is written only when this many
 * bytes, or the end of the source, follow it. */
enum { CSS_LOOK = 9 };

void lb_minify_css_init(lb_minify_css_state *st) {
  memset(st, 0, sizeof *st);
  st->stmt_start = 1;
}

static ptrdiff_t css_run(lb_minify_css_state *st, const uint8_t *in, size_t len, int final,
                         uint8_t *outp, size_t cap, size_t *consumed, size_t *line) {
  init_cls();
  out_t o = {outp, 0, cap};
  size_t i = 0, err_pos = 0;
  int code = 0;
  uint8_t p = st->p; /* last byte written */
  int pending = (int)st->pending, paren = (int)st->paren, stmt_start = (int)st->stmt_start;
  int any = (int)st->out_any;
  int at_stmt = (int)st->at_stmt, custom = (int)st->custom;
#define SEP(next)                                                             \
  do {                                                                        \
    if (pending && (o.n || any) && !css_drop(p, (next), paren)) {             \
      if (put1(&o, ' ')) goto nospace;                                        \
      p = ' ';                                                                \
    }                                                                         \
    pending = 0;                                                              \
  } while (0)
#define HOLD(end)                                                             \
  if (!final && (end) + CSS_LOOK > len) break
  if (line) *line = 0;
  while (i < len) {
    if (!final && i + CSS_LOOK > len) break;
    uint8_t c = in[i];
    if (css_ws(c)) { pending = 1; i++; continue; }
    if (c == '/' && i + 1 < len && in[i + 1] == '*') {
      size_t end = css_comment(in, len, i);
      if (!end) {
        if (!final) break;
        code = LB_ECOMMENT; err_pos = i; goto fail;
      }
      HOLD(end);
      if (i + 2 < len && in[i + 2] == '!') {
        SEP('/');
        if (put(&o, in + i, end - i)) goto nospace;
        p = '/';
      } else {
        pending = 1;
      }
      i = end;
      continue;
    }
    if (c == '"' || c == '\'') {
      size_t end = css_string(in, len, i);
      if (end == SIZE_MAX && !final) break;
      if (!end || end == SIZE_MAX) { code = LB_ESTRING; err_pos = i; goto fail; }
      HOLD(end);
      SEP(c);
      if (put(&o, in + i, end - i)) goto nospace;
      p = c;
      i = end;
      stmt_start = 0;
      continue;
    }
    if (c == '\\') {
      size_t end = css_escape(in, len, i);
      HOLD(end);
      SEP(c);
      if (put(&o, in + i, end - i)) goto nospace;
      p = 'a'; /* an identifier character, whatever the escape ended with */
      i = end;
      stmt_start = 0;
      continue;
    }
    uint8_t before = i > 0 ? in[i - 1] : st->prev_in;
    if ((c == 'u' || c == 'U') && i + 3 < len && (in[i + 1] | 0x20) == 'r' &&
        (in[i + 2] | 0x20) == 'l' && in[i + 3] == '(' && !css_ident(before)) {
      size_t j = i + 4;
      while (j < len && css_ws(in[j])) j++;
      if (j >= len && !final) break;
      if (j < len && (in[j] == '"' || in[j] == '\'')) {
        /* url("..."): a function with a string; handled token by token */
        SEP(c);
        if (put(&o, in + i, 4)) goto nospace;
        paren++;
        p = '(';
        i += 4;
        stmt_start = 0;
        continue;
      }
      size_t k = j;
      while (k < len && in[k] != ')') {
        if (in[k] == '\\') k++;
        k++;
      }
      if (k >= len) {
        if (!final) break;
        code = LB_EURLTOKEN; err_pos = i; goto fail;
      }
      HOLD(k + 1);
      size_t e = k;
      while (e > j && css_ws(in[e - 1]) && !(e - 1 > j && in[e - 2] == '\\')) e--;
      SEP(c);
      if (put(&o, in + i, 4) || put(&o, in + j, e - j) || put1(&o, ')')) goto nospace;
      p = ')';
      i = k + 1;
      stmt_start = 0;
      continue;
    }
    if (c == '-' && stmt_start && i + 1 < len && in[i + 1] == '-') {
      /* A custom property? `--name` then `:`: the value is kept verbatim. */
      size_t j = i + 2;
      while (j < len) {
        if (in[j] == '\\') { j = css_escape(in, len, j); continue; }
        if (!css_ident(in[j])) break;
        j++;
      }
      size_t k = j;
      while (k < len && css_ws(in[k])) k++;
      if (k >= len && !final) break;
      if (k < len && in[k] == ':') {
        size_t v = k + 1;
        int had_ws = 0;
        while (v < len && css_ws(in[v])) { v++; had_ws = 1; }
        size_t e = v;
        int depth = 0;
        while (e < len) {
          uint8_t b = in[e];
          if (b == '"' || b == '\'') {
            size_t se = css_string(in, len, e);
            if (se == SIZE_MAX) {
              if (final) { code = LB_ESTRING; err_pos = e; goto fail; }
              e = len;
              break;
            }
            if (!se) { code = LB_ESTRING; err_pos = e; goto fail; }
            e = se;
            continue;
          }
          if (b == '/' && e + 1 < len && in[e + 1] == '*') {
            size_t ce = css_comment(in, len, e);
            if (!ce) {
              if (final) { code = LB_ECOMMENT; err_pos = e; goto fail; }
              e = len;
              break;
            }
            e = ce;
            continue;
          }
          if (b == '\\') { e += 2; continue; }
          if (b == '(' || b == '[' || b == '{') depth++;
          else if (b == ')' || b == ']' || b == '}') {
            if (depth == 0) break;
            depth--;
          } else if (b == ';' && depth == 0) break;
          e++;
        }
        if (e > len) e = len;
        if (!final && e >= len) break; /* the value may go on */
        HOLD(e);
        SEP(c);
        if (put(&o, in + i, j - i) || put1(&o, ':')) goto nospace;
        size_t vend = e;
        while (vend > v && css_ws(in[vend - 1]) && !(vend - 1 > v && in[vend - 2] == '\\')) {
          vend--; /* (an escaped whitespace is part of the value) */
          had_ws = 1;
        }
        if (vend == v && had_ws) {
          if (put1(&o, ' ')) goto nospace;
          p = ' ';
        } else {
          if (put(&o, in + v, vend - v)) goto nospace;
          p = vend > v ? in[vend - 1] : ':';
        }
        i = e;
        stmt_start = 0;
        custom = 1;
        continue;
      }
    }
    if (c == ';' && !paren && !at_stmt && !custom) {
      /* A declaration's `;` before the block's `}` (whitespace, comments
       * and more `;`s between) goes, all of them. Decided once the byte
       * after them is there, so the feeding does not matter. */
      size_t j = i + 1;
      int more = 0;
      for (;;) {
        if (j >= len) { more = 1; break; }
        uint8_t b = in[j];
        if (css_ws(b) || b == ';') { j++; continue; }
        if (b == '/') {
          if (j + 2 >= len) { more = 1; break; } /* a kept comment or not: unknown yet */
          if (in[j + 1] == '*' && in[j + 2] != '!') {
            size_t ce = css_comment(in, len, j);
            if (!ce) { more = 1; break; }
            j = ce;
            continue;
          }
        }
        break;
      }
      if (more && !final) break;
      if (!more && in[j] == '}') {
        pending = 1;
        i = j;
        continue;
      }
    }
    custom = 0;
    /* Any other byte: copied. */
    SEP(c);
    if (put1(&o, c)) goto nospace;
    p = c;
    i++;
    switch (c) {
    case '{': case '}': case ';':
      stmt_start = 1;
      at_stmt = 0;
      break;
    case '@':
      if (stmt_start) at_stmt = 1;
      stmt_start = 0;
      break;
    case '(':
      paren++;
      stmt_start = 0;
      break;
    case ')':
      if (paren) paren--;
      stmt_start = 0;
      break;
    default:
      stmt_start = 0;
    }
  }
#undef SEP
#undef HOLD
  if (final) i = len;
  if (i) st->prev_in = in[i - 1];
  st->lines += lb_minify_line_of(in, len, i) - 1;
  st->p = p;
  st->pending = (uint32_t)pending;
  st->paren = (uint32_t)paren;
  st->stmt_start = (uint32_t)stmt_start;
  st->at_stmt = (uint32_t)at_stmt;
  st->custom = (uint32_t)custom;
  if (o.n) st->out_any = 1;
  *consumed = i;
  return (ptrdiff_t)o.n;
nospace:
  return LB_ENOSPACE;
fail:
  if (line) *line = st->lines + lb_minify_line_of(in, len, err_pos);
  return code;
}

ptrdiff_t lb_minify_css_feed(lb_minify_css_state *st, const uint8_t *in, size_t len, int final,
                             uint8_t *out, size_t cap, size_t *consumed, size_t *line) {
  *consumed = 0;
  if (line) *line = 0;
  if ((!in && len) || !out) return LB_EINVAL;
  if (cap < len + 1) return LB_ENOSPACE;
  return css_run(st, in, len, final, out, cap, consumed, line);
}

ptrdiff_t lb_minify_css(const uint8_t *in, size_t len, uint8_t *outp, size_t cap,
                        size_t *line) {
  if (line) *line = 0;
  if ((!in && len) || (!outp && cap)) return LB_EINVAL;
  lb_minify_css_state st;
  size_t consumed;
  lb_minify_css_init(&st);
  return css_run(&st, in, len, 1, outp, cap, &consumed, line);
}
