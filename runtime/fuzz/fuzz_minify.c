/* fuzz_minify.c: libFuzzer target for lb_minify (JavaScript and CSS).
 *
 * The first byte picks the language; the rest is the source. Properties
 * checked on every input:
 *  1. never crash (ASan/UBSan), output within lb_minify_max_len;
 *  2. JS: minify fails only where lexing the input fails (or on a regex
 *     that would write `</script`), and the
 *     output lexes to the same token stream (kinds and bytes, comments
 *     dropped, `<\/` read as `</`, less the `;`s dropped before a `}`
 *     where none is a statement body), never with a line break before a token
 *     that had none in the input, and never containing `</script`;
 *  3. minifying the output again gives the output (both languages), and
 *     CSS never grows;
 *  4. fed through lb_minify_{js,css}_feed byte by byte, and in chunks of a
 *     size drawn from the first byte, gives the same output, or the same
 *     error on the same line. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_minify.h"

typedef struct {
  lb_minify_js_lexer lx;
  const uint8_t *s;
  int err;
} it;

/* Next non-comment token; 0 at the end or on an error (it->err). */
static int next(it *x, lb_minify_token *t) {
  for (;;) {
    int r = lb_minify_js_next(&x->lx, t);
    if (r < 0) { x->err = r; return 0; }
    if (r == 0) return 0;
    if (t->kind != LB_MINIFY_TOK_COMMENT) return 1;
  }
}

/* Token bytes equal, reading `<\/` as `</` on both sides. */
static int same_text(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t i = 0, j = 0;
  while (i < an && j < bn) {
    if (a[i] == '\\' && i > 0 && a[i - 1] == '<' && i + 1 < an && a[i + 1] == '/') { i++; continue; }
    if (b[j] == '\\' && j > 0 && b[j - 1] == '<' && j + 1 < bn && b[j + 1] == '/') { j++; continue; }
    if (a[i] != b[j]) return 0;
    i++;
    j++;
  }
  return i == an && j == bn;
}

static int is_p(const uint8_t *s, const lb_minify_token *t, char c) {
  return t->kind == LB_MINIFY_TOK_PUNCT && t->len == 1 && s[t->off] == (uint8_t)c;
}

static void check_js(const uint8_t *in, size_t n, const uint8_t *out, size_t m) {
  it a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  lb_minify_js_lexer_init(&a.lx, in, n);
  lb_minify_js_lexer_init(&b.lx, out, m);
  lb_minify_token ta, tb;
  int body = 0; /* a `;` after the last input token would be a statement body */
  for (;;) {
    int ra = next(&a, &ta), rb = next(&b, &tb);
    /* The only tokens allowed to go: `;`s just before a `}` (the first
     * of them not a statement body: after the `)` of if/for/while/with,
     * else, do or a `:`). */
    if (ra && rb && is_p(in, &ta, ';') && !is_p(out, &tb, ';') && !body) {
      uint32_t nl = 0; /* a line break before a dropped `;` is before the `}` now */
      while (ra && is_p(in, &ta, ';')) { nl |= ta.nl_before; ra = next(&a, &ta); }
      if (!ra || !is_p(in, &ta, '}') || !is_p(out, &tb, '}')) abort();
      ta.nl_before |= nl;
    }
    if (ra != rb) abort();
    if (!ra) break;
    body = (is_p(in, &ta, ')') && (a.lx.regex_ok || a.lx.paren_depth >= LB_MINIFY_PAREN_BITS)) ||
           is_p(in, &ta, ':') ||
           (ta.kind == LB_MINIFY_TOK_IDENT &&
            ((ta.len == 4 && memcmp(in + ta.off, "else", 4) == 0) ||
             (ta.len == 2 && memcmp(in + ta.off, "do", 2) == 0)));
    if (ta.kind != tb.kind) abort();
    if (!same_text(in + ta.off, ta.len, out + tb.off, tb.len)) abort();
    if (tb.nl_before && !ta.nl_before) abort();
  }
  if (a.err || b.err) abort();
  if (memmem(out, m, "</script", 8)) abort();
}

/* lb_minify_js_feed in chunks of step bytes, the caller keeping what was
 * not consumed. Returns the output length or the error. */
static ptrdiff_t feed(int css, const uint8_t *in, size_t n, size_t step, uint8_t *o, size_t *line) {
  lb_minify_js_state m;
  lb_minify_css_state cs;
  lb_minify_js_init(&m);
  lb_minify_css_init(&cs);
  uint8_t *pend = malloc(n + 1), *tmp = malloc(lb_minify_max_len(n) + 1);
  size_t have = 0, at = 0, w = 0;
  ptrdiff_t r;
  for (;;) {
    size_t c = n - at < step ? n - at : step;
    memcpy(pend + have, in + at, c);
    have += c;
    at += c;
    int fin = at == n;
    size_t used;
    r = css ? lb_minify_css_feed(&cs, pend, have, fin, tmp, lb_minify_max_len(have), &used, line)
            : lb_minify_js_feed(&m, pend, have, fin, tmp, lb_minify_max_len(have), &used, line);
    if (r < 0) break;
    if (used > have) abort();
    memcpy(o + w, tmp, (size_t)r);
    w += (size_t)r;
    memmove(pend, pend + used, have - used);
    have -= used;
    if (fin) {
      if (have) abort();
      r = (ptrdiff_t)w;
      break;
    }
  }
  free(pend);
  free(tmp);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int css = data[0] & 1;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  size_t cap = lb_minify_max_len(n);
  uint8_t *out = malloc(cap + 1), *out2 = malloc(cap + 1);
  size_t line = 0;
  ptrdiff_t r = css ? lb_minify_css(in, n, out, cap, &line) : lb_minify_js(in, n, out, cap, &line);
  if (r == LB_ENOSPACE) abort();
  {
    size_t steps[2] = {1, (size_t)(data[0] >> 1) % 13 + 2};
    for (int k = 0; k < 2; k++) {
      size_t fl = 0;
      ptrdiff_t fr = feed(css, in, n, steps[k], out2, &fl);
      if (fr != r) abort();
      if (r >= 0 && memcmp(out, out2, (size_t)r) != 0) abort();
      if (r < 0 && fl != line) abort();
    }
  }
  if (r < 0) {
    if (line < 1) abort();
    if (!css) {
      /* the lexer must fail too */
      lb_minify_js_lexer lx;
      lb_minify_token t;
      int k;
      lb_minify_js_lexer_init(&lx, in, n);
      while ((k = lb_minify_js_next(&lx, &t)) > 0) {}
      /* (or a regex with flags "script" after a body ending in `<`) */
      if (k != r && r != LB_EREGEXP) abort();
    }
  } else {
    if ((size_t)r > cap) abort();
    if (css && (size_t)r > n) abort();
    if (!css) check_js(in, n, out, (size_t)r);
    size_t cap2 = lb_minify_max_len((size_t)r);
    uint8_t *o2 = cap2 > cap ? realloc(out2, cap2 + 1) : out2;
    if (!o2) abort();
    out2 = o2;
    ptrdiff_t r2 = css ? lb_minify_css(out, (size_t)r, out2, cap2, &line)
                       : lb_minify_js(out, (size_t)r, out2, cap2, &line);
    if (r2 != r || memcmp(out, out2, (size_t)r) != 0) abort();
  }
  free(out);
  free(out2);
  return 0;
}
