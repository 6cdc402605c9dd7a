/* test_escape.c: lb_escape vectors (Go html/template 1.19 bytes), output
 * bounds (every cap below the result gives LB_ENOSPACE) and the URL filter. */
#include <stdlib.h>

#include "lb_test.h"
#include "lowbit/lb_escape.h"

/* Escapes in (C string) and checks the result against want; then checks
 * that each smaller cap fails cleanly with LB_ENOSPACE. */
static int esc_is(int kind, const char *in, const char *want) {
  size_t n = strlen(in), cap = lb_escape_max_len(kind, n);
  char *out = malloc(cap);
  ptrdiff_t r = lb_escape(kind, in, n, out, cap);
  int ok = r >= 0 && (size_t)r == strlen(want) && memcmp(out, want, (size_t)r) == 0;
  /* lb_escape_needed says 0 only when the output equals the input. */
  if (lb_escape_needed(kind, in, n) == 0)
    ok = ok && (size_t)r == n && memcmp(out, in, n) == 0;
  if (!ok) fprintf(stderr, "  kind %d %s -> got %.*s want %s\n", kind, in, r < 0 ? 0 : (int)r, out, want);
  for (ptrdiff_t c = 0; ok && c < r; c++) {
    char *small = malloc((size_t)c + 1);
    if (lb_escape(kind, in, n, small, (size_t)c) != LB_ENOSPACE) ok = 0;
    free(small);
  }
  free(out);
  return ok;
}

static void test_html_text(void) {
  LB_CHECK(esc_is(LB_ESCAPE_HTML, "<script>alert(\"x\")</script>",
                  "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML, "O'Reilly & Sons", "O&#39;Reilly &amp; Sons"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML, "a+b`c=d", "a&#43;b`c=d"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML, "caf\xc3\xa9 \xff", "caf\xc3\xa9 \xff"));
  size_t n = 3;
  char out[16];
  LB_CHECK_EQ(lb_escape(LB_ESCAPE_HTML, "a\0b", n, out, sizeof out), 5);
  LB_CHECK(memcmp(out, "a\xef\xbf\xbd" "b", 5) == 0);
}

static void test_unquoted_attr(void) {
  LB_CHECK(esc_is(LB_ESCAPE_HTML_NOSPACE, "a b onclick=x", "a&#32;b&#32;onclick&#61;x"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML_NOSPACE, "x onmouseover=alert(1)", "x&#32;onmouseover&#61;alert(1)"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML_NOSPACE, "\t\n`'", "&#9;&#10;&#96;&#39;"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML_NOSPACE, "\xef\xb7\x90|\xff|\xc3\xa9", "&#xfdd0;|&#xfffd;|\xc3\xa9"));
  LB_CHECK(esc_is(LB_ESCAPE_HTML_NOSPACE, "", ""));
}

static void test_url(void) {
  LB_CHECK(esc_is(LB_ESCAPE_URL_NORM, "http://example.com/a b?q=\"x\"&r=<y>",
                  "http://example.com/a%20b?q=%22x%22&r=%3cy%3e"));
  LB_CHECK(esc_is(LB_ESCAPE_URL_NORM, "/p%41th?a=1&b=2", "/p%41th?a=1&b=2"));
  LB_CHECK(esc_is(LB_ESCAPE_URL_QUERY, "a&b c/d?e=f#g", "a%26b%20c%2fd%3fe%3df%23g"));
  LB_CHECK(esc_is(LB_ESCAPE_URL_QUERY, "\xc3\xa9'()", "%c3%a9%27%28%29"));
  LB_CHECK_EQ(lb_escape_url_safe("javascript:alert(1)", 19), 0);
  LB_CHECK_EQ(lb_escape_url_safe("JaVaScRiPt:x", 12), 0);
  LB_CHECK_EQ(lb_escape_url_safe(" javascript:x", 13), 0);
  LB_CHECK_EQ(lb_escape_url_safe("data:text/html,x", 16), 0);
  LB_CHECK_EQ(lb_escape_url_safe("HTTPS://x", 9), 1);
  LB_CHECK_EQ(lb_escape_url_safe("mailto:a@b", 10), 1);
  LB_CHECK_EQ(lb_escape_url_safe("/a:b", 4), 1);
  LB_CHECK_EQ(lb_escape_url_safe("plain", 5), 1);
}

static void test_srcset(void) {
  LB_CHECK(esc_is(LB_ESCAPE_SRCSET, "javascript:alert(1) 1x", "#ZgotmplZ"));
  LB_CHECK(esc_is(LB_ESCAPE_SRCSET, "/a.png 1x, /c.png 2x", "/a.png 1x, /c.png 2x"));
  LB_CHECK(esc_is(LB_ESCAPE_SRCSET, "/a\".png 1x,/b.png x;y", "/a%22.png 1x,#ZgotmplZ"));
}

static void test_js(void) {
  LB_CHECK(esc_is(LB_ESCAPE_JS_STR, "\\", "\\\\"));
  LB_CHECK(esc_is(LB_ESCAPE_JS_STR, "\"'</script>\n`", "\\u0022\\u0027\\u003c\\/script\\u003e\\n\\u0060"));
  LB_CHECK(esc_is(LB_ESCAPE_JS_STR, "\x01\xe2\x80\xa8", "\\u0001\\u2028"));
  LB_CHECK(esc_is(LB_ESCAPE_JS_REGEXP, "a.b*", "a\\.b\\*"));
  LB_CHECK(esc_is(LB_ESCAPE_JSON_STR, "1;alert(1)", "\"1;alert(1)\""));
  LB_CHECK(esc_is(LB_ESCAPE_JSON_STR, "<&>\"\\\x01\xff\xe2\x80\xa9",
                  "\"\\u003c\\u0026\\u003e\\\"\\\\\\u0001\\ufffd\\u2029\""));
}

static void test_css(void) {
  LB_CHECK(esc_is(LB_ESCAPE_CSS_STR, "</style>", "\\3c\\2fstyle\\3e "));
  LB_CHECK(esc_is(LB_ESCAPE_CSS_STR, "a\\b", "a\\\\b"));
  LB_CHECK(esc_is(LB_ESCAPE_CSS_VALUE, "red", "red"));
  LB_CHECK(esc_is(LB_ESCAPE_CSS_VALUE, "\\72 ed", "red"));
  char out[256];
  const char *bad[] = { "red;background:url(javascript:x)", "expression(x)", "e\\78pression",
                        "a--b", "x/y", "mozBinding", "a{b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    LB_CHECK_EQ(lb_escape(LB_ESCAPE_CSS_VALUE, bad[i], strlen(bad[i]), out, sizeof out), LB_EINVAL);
}

static void test_usage(void) {
  char out[8];
  LB_CHECK_EQ(lb_escape(99, "x", 1, out, sizeof out), LB_EINVAL);
  LB_CHECK_EQ(lb_escape_max_len(99, 1), 0);
  LB_CHECK_EQ(lb_escape_max_len(LB_ESCAPE_HTML, SIZE_MAX / 4), 0);
}

/* Random bytes through every kind: the bound holds and nothing overflows. */
static void test_random_bounds(void) {
  uint64_t seed = 0x5eed1234;
  char in[64];
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = lb_test_xorshift(&seed) % sizeof in;
    for (size_t i = 0; i < n; i++) in[i] = (char)lb_test_xorshift(&seed);
    int kind = 1 + (int)(lb_test_xorshift(&seed) % LB_ESCAPE_SRCSET);
    size_t cap = lb_escape_max_len(kind, n);
    char *out = malloc(cap);
    ptrdiff_t r = lb_escape(kind, in, n, out, cap);
    LB_CHECK(r >= 0 || (kind == LB_ESCAPE_CSS_VALUE && r == LB_EINVAL));
    LB_CHECK(r < 0 || (size_t)r <= cap);
    if (r >= 0 && kind != LB_ESCAPE_JSON_STR && kind != LB_ESCAPE_CSS_VALUE && kind != LB_ESCAPE_SRCSET &&
        lb_escape_needed(kind, in, n) == 0)
      LB_CHECK((size_t)r == n && memcmp(out, in, n) == 0);
    free(out);
  }
}

int main(void) {
  LB_RUN(test_html_text);
  LB_RUN(test_unquoted_attr);
  LB_RUN(test_url);
  LB_RUN(test_srcset);
  LB_RUN(test_js);
  LB_RUN(test_css);
  LB_RUN(test_usage);
  LB_RUN(test_random_bounds);
  return LB_DONE();
}
