/*
 * test_http1.c: lb_http1 against conformance/http1.md and RFC 9112.
 *
 * Every vector goes through the same drivers: fed whole, fed byte by byte
 * (each prefix copied into a heap buffer of exactly that size, so ASan sees
 * any read past the end), and for valid heads every truncated prefix must
 * give LB_EAGAIN. Results must agree across feeds.
 */
#include "lb_test.h"
#include "lowbit/lb_base.h"
#include "lowbit/lb_http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define MAXH 32

/* ------------------------------------------------------------------ */
/* request driver                                                      */

typedef struct req_out {
  ptrdiff_t rc;
  lb_http1_req r;
  lb_http1_header h[MAXH];
  const char *base; /* buffer the views point into */
} req_out;

static void req_init(req_out *o) {
  memset(o, 0, sizeof *o);
  o->r.headers = o->h;
  o->r.max_headers = MAXH;
}

/* Offset of a view inside the buffer, -1 for NULL: comparable across
 * buffers with the same content. */
static long long off(const char *base, const char *p) { return p ? (long long)(p - base) : -1; }

static int req_same(const req_out *a, const req_out *b) {
  if (a->rc != b->rc) return 0;
  if (a->rc <= 0) return 1;
  const lb_http1_req *x = &a->r, *y = &b->r;
#define SAME_VIEW(f) (off(a->base, x->f) == off(b->base, y->f) && x->f##_len == y->f##_len)
  if (!SAME_VIEW(method) || !SAME_VIEW(target) || !SAME_VIEW(path) || !SAME_VIEW(query) ||
      !SAME_VIEW(host))
    return 0;
#undef SAME_VIEW
  if (x->content_length != y->content_length || x->version_major != y->version_major ||
      x->version_minor != y->version_minor || x->body_kind != y->body_kind ||
      x->keep_alive != y->keep_alive || x->expect_continue != y->expect_continue ||
      x->expect_other != y->expect_other || x->upgrade != y->upgrade ||
      x->method_id != y->method_id ||
      x->num_headers != y->num_headers)
    return 0;
  for (size_t i = 0; i < x->num_headers; i++) {
    if (off(a->base, a->h[i].name) != off(b->base, b->h[i].name) ||
        a->h[i].name_len != b->h[i].name_len ||
        off(a->base, a->h[i].value) != off(b->base, b->h[i].value) ||
        a->h[i].value_len != b->h[i].value_len)
      return 0;
  }
  return 1;
}

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  if (n) memcpy(p, s, n);
  return p;
}

/*
 * Parses s[0..n) whole into *o (o->base is a heap copy the caller frees with
 * free((void *)o->base)), then byte by byte and checks agreement, then, when
 * the head is valid, checks that every shorter prefix gives LB_EAGAIN.
 */
static ptrdiff_t req_parse_n(req_out *o, const char *s, size_t n, size_t maxb) {
  req_init(o);
  char *whole = dup_n(s, n);
  o->base = whole;
  o->rc = lb_http1_parse_request(&o->r, whole, n, maxb);

  /* byte by byte with one struct: the incremental path */
  req_out b;
  req_init(&b);
  b.rc = LB_EAGAIN;
  char *prev = NULL;
  for (size_t k = 1; k <= n && b.rc == LB_EAGAIN; k++) {
    char *part = dup_n(s, k); /* the buffer moves: allowed */
    b.base = part;
    b.rc = lb_http1_parse_request(&b.r, part, k, maxb);
    free(prev);
    prev = part;
  }
  if (n == 0) b.rc = lb_http1_parse_request(&b.r, s, 0, maxb);
  if (!req_same(o, &b)) {
    fprintf(stderr, "  byte-by-byte differs: whole %td (%s), split %td (%s)\n", o->rc,
            lb_err_name((int)o->rc), b.rc, lb_err_name((int)b.rc));
    LB_CHECK(!"byte-by-byte feed agrees with whole feed");
  }
  free(prev);

  /* the shorter path for common heads agrees with llhttp's, field by field */
  req_out l;
  req_init(&l);
  l.base = whole;
  l.rc = lb_http1_parse_request_llhttp(&l.r, whole, n, maxb);
  if (!req_same(o, &l)) {
    fprintf(stderr, "  llhttp path differs: %td (%s), llhttp %td (%s) on %.*s\n", o->rc,
            lb_err_name((int)o->rc), l.rc, lb_err_name((int)l.rc), (int)n, s);
    for (size_t i = 0; i < o->r.num_headers && i < l.r.num_headers; i++)
      fprintf(stderr, "  field %zu: value %lld+%zu, llhttp %lld+%zu\n", i, off(whole, o->h[i].value),
              o->h[i].value_len, off(whole, l.h[i].value), l.h[i].value_len);
    LB_CHECK(!"the common-head path agrees with the llhttp path");
  }

  /* every truncated prefix of a valid head: LB_EAGAIN (fresh struct) */
  if (o->rc > 0) {
    for (size_t k = 0; k < (size_t)o->rc; k++) {
      req_out t;
      req_init(&t);
      char *part = dup_n(s, k);
      ptrdiff_t rc = lb_http1_parse_request(&t.r, part, k, maxb);
      if (rc != LB_EAGAIN) {
        fprintf(stderr, "  prefix %zu of a valid head gave %td\n", k, rc);
        LB_CHECK(!"truncated prefix gives LB_EAGAIN");
      }
      free(part);
    }
  }
  return o->rc;
}

static ptrdiff_t req_parse(req_out *o, const char *s) { return req_parse_n(o, s, strlen(s), 0); }

/* One negative vector: expected code, named by its defect. */
typedef struct bad_vec {
  const char *defect;
  const char *text;
  ptrdiff_t want;
} bad_vec;

static void expect_req_errors(const bad_vec *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    req_out o;
    ptrdiff_t rc = req_parse(&o, v[i].text);
    if (rc != v[i].want) {
      fprintf(stderr, "  [%s] got %td (%s), want %s\n", v[i].defect, rc, lb_err_name((int)rc),
              lb_err_name((int)v[i].want));
      LB_CHECK(!"negative vector gives its error");
    }
    free((void *)o.base);
  }
}

#define NV(a) (sizeof(a) / sizeof((a)[0]))
#define VIEW_IS(p, n, s) ((p) != NULL && (n) == strlen(s) && memcmp((p), (s), (n)) == 0)

/* ------------------------------------------------------------------ */
/* requests: basics                                                    */

static void test_request_get_fields(void) {
  req_out o;
  const char *s = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\n"
                  "User-Agent:  curl/8  \r\nAccept: */*\r\n\r\nNEXT";
  ptrdiff_t rc = req_parse(&o, s);
  LB_CHECK_EQ(rc, (ptrdiff_t)strlen(s) - 4);
  LB_CHECK(VIEW_IS(o.r.method, o.r.method_len, "GET"));
  LB_CHECK(VIEW_IS(o.r.target, o.r.target_len, "/a/b?x=1&y"));
  LB_CHECK(VIEW_IS(o.r.path, o.r.path_len, "/a/b"));
  LB_CHECK(VIEW_IS(o.r.query, o.r.query_len, "x=1&y"));
  LB_CHECK(VIEW_IS(o.r.host, o.r.host_len, "example.com:8080"));
  LB_CHECK_EQ(o.r.version_major, 1);
  LB_CHECK_EQ(o.r.version_minor, 1);
  LB_CHECK_EQ(o.r.num_headers, 3);
  LB_CHECK(VIEW_IS(o.h[1].name, o.h[1].name_len, "User-Agent"));
  LB_CHECK(VIEW_IS(o.h[1].value, o.h[1].value_len, "curl/8")); /* OWS trimmed */
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_NONE);
  LB_CHECK_EQ(o.r.content_length, 0);
  LB_CHECK_EQ(o.r.keep_alive, 1);
  LB_CHECK_EQ(o.r.expect_continue, 0);
  LB_CHECK_EQ(o.r.upgrade, 0);
  LB_CHECK_EQ(o.r.method_id, LB_HTTP1_GET);
  /* views point into the caller's buffer */
  LB_CHECK(o.r.path >= o.base && o.r.path < o.base + rc);
  free((void *)o.base);
}

static void test_request_no_query_and_empty_query(void) {
  req_out o;
  LB_CHECK(req_parse(&o, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  LB_CHECK(o.r.query == NULL && o.r.query_len == 0);
  free((void *)o.base);
  LB_CHECK(req_parse(&o, "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  LB_CHECK(o.r.query != NULL && o.r.query_len == 0);
  LB_CHECK(VIEW_IS(o.r.path, o.r.path_len, "/p"));
  free((void *)o.base);
}

static void test_request_target_forms(void) {
  req_out o;
  /* absolute-form: the authority is the host (RFC 9112 3.2.2) */
  LB_CHECK(req_parse(&o, "GET http://origin.example:81/x?q HTTP/1.1\r\nHost: other\r\n\r\n") > 0);
  LB_CHECK(VIEW_IS(o.r.host, o.r.host_len, "origin.example:81"));
  LB_CHECK(VIEW_IS(o.r.path, o.r.path_len, "/x"));
  LB_CHECK(VIEW_IS(o.r.query, o.r.query_len, "q"));
  free((void *)o.base);
  LB_CHECK(req_parse(&o, "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  LB_CHECK(o.r.path_len == 0);
  free((void *)o.base);
  /* asterisk-form */
  LB_CHECK(req_parse(&o, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
  LB_CHECK(VIEW_IS(o.r.path, o.r.path_len, "*"));
  free((void *)o.base);
  /* authority-form: CONNECT needs no Host (as in Go) */
  LB_CHECK(req_parse(&o, "CONNECT db.example:5432 HTTP/1.1\r\n\r\n") > 0);
  LB_CHECK(VIEW_IS(o.r.host, o.r.host_len, "db.example:5432"));
  free((void *)o.base);
  /* IPv6 literal host */
  LB_CHECK(req_parse(&o, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") > 0);
  LB_CHECK(VIEW_IS(o.r.host, o.r.host_len, "[::1]:8080"));
  free((void *)o.base);
}

static void test_request_bad_target(void) {
  static const bad_vec v[] = {
      {"relative target", "GET foo HTTP/1.1\r\nHost: h\r\n\r\n", LB_EURL},
      {"userinfo in absolute-form", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", LB_EURL},
      {"absolute-form without authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", LB_EURL},
      {"CONNECT with a path", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", LB_EURL},
  };
  expect_req_errors(v, NV(v));
}

static void test_request_line_malformed(void) {
  static const bad_vec v[] = {
      {"two spaces after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", LB_EPROTO},
      {"space inside target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", LB_EPROTO},
      {"unknown method", "BREW / HTTP/1.1\r\nHost: h\r\n\r\n", LB_EMETHOD},
      {"lower-case method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", LB_EMETHOD},
      {"not a request line", "\x16\x03\x01\x02\x00\x01\r\n\r\n", LB_EPROTO},
      {"bare LF ends request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", LB_EPROTO},
      {"stray CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", LB_EPROTO},
      {"missing version", "GET /\r\nHost: h\r\n\r\n", LB_EPROTO},
  };
  expect_req_errors(v, NV(v));
  /* NUL in target: an embedded NUL needs an explicit length */
  req_out o;
  const char nul[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
  LB_CHECK_EQ(req_parse_n(&o, nul, sizeof nul - 1, 0), LB_EPROTO);
  free((void *)o.base);
}

static void test_leading_empty_lines_skipped(void) {
  /* RFC 9112 2.2: a server SHOULD ignore at least one empty line first */
  req_out o;
  const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  LB_CHECK_EQ(req_parse(&o, s), (ptrdiff_t)strlen(s));
  LB_CHECK(VIEW_IS(o.r.method, o.r.method_len, "GET"));
  LB_CHECK(o.r.method == o.base + 4);
  free((void *)o.base);
}

static void test_pipelined_requests_and_struct_reuse(void) {
  const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  lb_http1_header h[4];
  lb_http1_req r;
  memset(&r, 0, sizeof r);
  r.headers = h;
  r.max_headers = 4;
  ptrdiff_t n1 = lb_http1_parse_request(&r, s, strlen(s), 0);
  LB_CHECK_EQ(n1, 28);
  LB_CHECK(VIEW_IS(r.path, r.path_len, "/1"));
  /* the same struct parses the next head; first feed it only part */
  LB_CHECK_EQ(lb_http1_parse_request(&r, s + n1, 10, 0), LB_EAGAIN);
  ptrdiff_t n2 = lb_http1_parse_request(&r, s + n1, strlen(s) - (size_t)n1, 0);
  LB_CHECK_EQ(n2, 28);
  LB_CHECK(VIEW_IS(r.path, r.path_len, "/2"));
  /* reset abandons a partial head */
  LB_CHECK_EQ(lb_http1_parse_request(&r, "XXXXXXXXXXXX", 12, 0), LB_EAGAIN);
  lb_http1_req_reset(&r);
  LB_CHECK_EQ(lb_http1_parse_request(&r, s, strlen(s), 0), 28);
}

static void test_zero_filled_struct(void) {
  lb_http1_req r;
  memset(&r, 0, sizeof r);
  const char *a = "GET / HTTP/1.0\r\n\r\n";
  LB_CHECK_EQ(lb_http1_parse_request(&r, a, strlen(a), 0), (ptrdiff_t)strlen(a));
  memset(&r, 0, sizeof r);
  const char *b = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  LB_CHECK_EQ(lb_http1_parse_request(&r, b, strlen(b), 0), LB_ETOOMANY);
}

/* The server calls the parser on an empty buffer too (no branch before the
 * call): nothing, even a NULL pointer, is an incomplete head. */
static void test_empty_input_is_incomplete(void) {
  lb_http1_req r;
  memset(&r, 0, sizeof r);
  LB_CHECK_EQ(lb_http1_parse_request(&r, NULL, 0, 0), LB_EAGAIN);
  LB_CHECK_EQ(lb_http1_parse_request(&r, "", 0, 0), LB_EAGAIN);
  const char *a = "GET / HTTP/1.0\r\n\r\n";
  LB_CHECK_EQ(lb_http1_parse_request(&r, a, strlen(a), 0), (ptrdiff_t)strlen(a));
}

/* ------------------------------------------------------------------ */
/* requests: one test per rule of conformance/http1.md                 */

/* "max_header_bytes ... overflow -> 431" */
static void test_rule_max_header_bytes(void) {
  const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: aaaaaaaaaa\r\n\r\n";
  size_t n = strlen(s);
  req_out o;
  LB_CHECK_EQ(req_parse_n(&o, s, n, n), (ptrdiff_t)n); /* exactly the limit */
  free((void *)o.base);
  LB_CHECK_EQ(req_parse_n(&o, s, n, n - 1), LB_EHEADERSIZE);
  free((void *)o.base);
  /* an incomplete head longer than the limit is refused, shorter waits */
  LB_CHECK_EQ(req_parse_n(&o, s, 20, 20), LB_EHEADERSIZE);
  free((void *)o.base);
  LB_CHECK_EQ(req_parse_n(&o, s, 20, 21), LB_EAGAIN);
  free((void *)o.base);
  LB_CHECK_EQ(lb_http1_status_for(LB_EHEADERSIZE), 431);
  /* too many fields for the caller's array: also 431, found early */
  lb_http1_header h[2];
  lb_http1_req r;
  memset(&r, 0, sizeof r);
  r.headers = h;
  r.max_headers = 2;
  const char *many = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
  LB_CHECK_EQ(lb_http1_parse_request(&r, many, strlen(many), 0), LB_ETOOMANY);
  LB_CHECK_EQ(lb_http1_status_for(LB_ETOOMANY), 431);
  /* default limit when 0 */
  size_t big = LB_HTTP1_DEFAULT_MAX_HEADER_BYTES + 10;
  char *pad = malloc(big);
  memset(pad, 'a', big);
  memcpy(pad, "GET /", 5);
  memset(&r, 0, sizeof r);
  LB_CHECK_EQ(lb_http1_parse_request(&r, pad, big - 20, 0), LB_EAGAIN);
  LB_CHECK_EQ(lb_http1_parse_request(&r, pad, big, 0), LB_EHEADERSIZE);
  free(pad);
}

/* "HTTP/1.1 without Host -> 400" */
static void test_rule_http11_without_host(void) {
  static const bad_vec v[] = {
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", LB_EHOST},
  };
  expect_req_errors(v, NV(v));
  req_out o;
  LB_CHECK(req_parse(&o, "GET / HTTP/1.0\r\n\r\n") > 0); /* 1.0 may omit it */
  LB_CHECK(o.r.host == NULL);
  free((void *)o.base);
  LB_CHECK(req_parse(&o, "GET / HTTP/1.1\r\nHost:\r\n\r\n") > 0); /* empty is allowed */
  LB_CHECK(o.r.host != NULL && o.r.host_len == 0);
  free((void *)o.base);
  LB_CHECK_EQ(lb_http1_status_for(LB_EHOST), 400);
}

/* "several Host -> 400" */
static void test_rule_several_host(void) {
  static const bad_vec v[] = {
      {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", LB_EHOST},
      {"two Host fields, different case", "GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n", LB_EHOST},
      {"two Host fields on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", LB_EHOST},
  };
  expect_req_errors(v, NV(v));
}

/* "bad Host -> 400" */
static void test_rule_bad_host(void) {
  static const bad_vec v[] = {
      {"space in Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", LB_EHOST},
      {"slash in Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", LB_EHOST},
      {"non-digit port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", LB_EHOST},
      {"two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", LB_EHOST},
      {"unclosed IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", LB_EHOST},
      {"junk after IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", LB_EHOST},
      {"bad percent-encoding", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", LB_EHOST},
      {"userinfo in Host", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", LB_EHOST},
      {"obs-text in Host", "GET / HTTP/1.1\r\nHost: h\xc3\xa9\r\n\r\n", LB_EHOST},
      {"quote in Host", "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", LB_EHOST},
      {"braces in Host", "GET / HTTP/1.1\r\nHost: a{b}\r\n\r\n", LB_EHOST},
      {"truncated percent-encoding", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", LB_EHOST},
  };
  expect_req_errors(v, NV(v));
  const char *good[] = {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: xn--e1a.example:443\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: h:\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: a-b.c_d~!$&'()*+,;=:80\r\n\r\n"};
  for (size_t i = 0; i < NV(good); i++) {
    req_out o;
    LB_CHECK(req_parse(&o, good[i]) > 0);
    free((void *)o.base);
  }
}

/* "bad header name/value -> 400" */
static void test_rule_bad_header_name_or_value(void) {
  static const bad_vec v[] = {
      {"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", LB_EHEADER},
      {"tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n", LB_EHEADER},
      {"empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", LB_EHEADER},
      {"no colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n", LB_EHEADER},
      {"non-token char in name", "GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", LB_EHEADER},
      {"obs-text in name", "GET / HTTP/1.1\r\nHost: h\r\nX\xe9: 1\r\n\r\n", LB_EHEADER},
      {"CTL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01z\r\n\r\n", LB_EHEADER},
      {"DEL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fz\r\n\r\n", LB_EHEADER},
      {"ESC in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: \x1b[0m\r\n\r\n", LB_EHEADER},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n", LB_EHEADER},
      {"obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n", LB_EHEADER},
      {"whitespace before first field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", LB_EHEADER},
      {"bare LF in header section", "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", LB_EHEADER},
      {"bare LF ends head", "GET / HTTP/1.1\r\nHost: h\r\n\n", LB_EHEADER},
      {"stray CR in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", LB_EHEADER},
  };
  expect_req_errors(v, NV(v));
  /* NUL needs an explicit length */
  req_out o;
  const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
  LB_CHECK_EQ(req_parse_n(&o, nul, sizeof nul - 1, 0), LB_EHEADER); /* NUL in header value */
  free((void *)o.base);
  const char nul2[] = "GET / HTTP/1.1\r\nHost: h\r\nX\0A: ab\r\n\r\n";
  LB_CHECK_EQ(req_parse_n(&o, nul2, sizeof nul2 - 1, 0), LB_EHEADER); /* NUL in header name */
  free((void *)o.base);
  /* allowed: obs-text and HTAB inside a value, empty value, quotes */
  LB_CHECK(req_parse(&o, "GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \xe9\"q\"\r\nY:\r\n\r\n") > 0);
  LB_CHECK(VIEW_IS(o.h[1].value, o.h[1].value_len, "a\tb \xe9\"q\""));
  LB_CHECK(o.h[2].value != NULL && o.h[2].value_len == 0);
  free((void *)o.base);
}

/* The head scanner skips plain bytes a word at a time: every byte value,
 * at each of 24 offsets in a value (every position in a word, and in the
 * tail shorter than a word), is judged as a single byte is: a CTL but HTAB,
 * or DEL, is refused; anything else (obs-text, 0x20-0x7e) is kept. */
static void test_scan_every_byte_at_every_offset(void) {
  const char pre[] = "GET /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\nHost: h\r\nX-Long: ";
  const char val[] = "0123456789abcdefghijklmnopqrstuv";
  const char post[] = "\r\n\r\n";
  char buf[256];
  int checked = 0;
  for (unsigned c = 0; c < 256; c++) {
    if (c == '\r' || c == '\n') continue; /* line ends: their own rules */
    for (size_t at = 0; at < 24; at++) {
      size_t np = sizeof pre - 1, nv = sizeof val - 1, n = 0;
      memcpy(buf, pre, np); n += np;
      memcpy(buf + n, val, nv); n += nv;
      buf[np + at] = (char)c;
      memcpy(buf + n, post, sizeof post - 1); n += sizeof post - 1;
      req_out o;
      req_init(&o);
      ptrdiff_t rc = lb_http1_parse_request(&o.r, buf, n, 0);
      int bad = (c < 0x20 && c != '\t') || c == 0x7f;
      if (bad ? rc != LB_EHEADER : rc != (ptrdiff_t)n) {
        fprintf(stderr, "  byte 0x%02x at %zu: got %td\n", c, at, rc);
        LB_CHECK(!"byte judged as one byte is");
      }
      checked++;
    }
  }
  LB_CHECK_EQ(checked, 254 * 24);
  /* the same in the target and a longer head, fed whole and byte by byte */
  req_out o;
  const char *ok = "GET /a/very/long/path/that/spans/many/words?and=a&query=too HTTP/1.1\r\n"
                   "Host: example.com:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) \xe9\xe8\r\n\r\n";
  LB_CHECK_EQ(req_parse(&o, ok), (ptrdiff_t)strlen(ok));
  free((void *)o.base);
  LB_CHECK_EQ(req_parse(&o, "GET /a/very/long/path/that/spans/many/words?and=a&query=too HTTP/1.1\r\n"
                            "Host: example.com:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) \x1b\r\n\r\n"), LB_EHEADER);
  free((void *)o.base);
}

/* "protocol not 1.x -> 505" */
static void test_rule_protocol_not_1x(void) {
  static const bad_vec v[] = {
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", LB_EVERSION},
      {"HTTP/3.0 request line", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", LB_EVERSION},
      {"HTTP/0.9 request line", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", LB_EVERSION},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", LB_EVERSION},
      {"two-digit minor", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", LB_EVERSION},
  };
  expect_req_errors(v, NV(v));
  LB_CHECK_EQ(lb_http1_status_for(LB_EVERSION), 505);
  req_out o;
  LB_CHECK(req_parse(&o, "GET / HTTP/1.0\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.version_minor, 0);
  free((void *)o.base);
}

/* "Transfer-Encoding on HTTP/1.0 is ignored" */
static void test_rule_te_ignored_on_http10(void) {
  req_out o;
  /* TE chunked on HTTP/1.0 ignored: the Content-Length frames the body */
  LB_CHECK(req_parse(&o, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_LENGTH);
  LB_CHECK_EQ(o.r.content_length, 7);
  free((void *)o.base);
  /* TE gzip on HTTP/1.0 ignored: no 501, and no body */
  LB_CHECK(req_parse(&o, "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_NONE);
  free((void *)o.base);
}

/* "TE must be exactly one field equal to chunked (case-insensitive), else 501" */
static void test_rule_te_exactly_one_chunked(void) {
  static const bad_vec v[] = {
      {"TE gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", LB_ETRANSFER},
      {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       LB_ETRANSFER},
      {"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
       LB_ETRANSFER},
      {"TE in two fields",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       LB_ETRANSFER},
      {"TE gzip then chunked fields",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
       LB_ETRANSFER},
      {"TE empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", LB_ETRANSFER},
      {"TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", LB_ETRANSFER},
      {"TE chunked with parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
       LB_ETRANSFER},
      {"TE xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", LB_ETRANSFER},
  };
  expect_req_errors(v, NV(v));
  LB_CHECK_EQ(lb_http1_status_for(LB_ETRANSFER), 501);
  const char *good[] = {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                        "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: CHUNKED\r\n\r\n",
                        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:   Chunked  \r\n\r\n"};
  for (size_t i = 0; i < NV(good); i++) {
    req_out o;
    LB_CHECK(req_parse(&o, good[i]) > 0);
    LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_CHUNKED);
    LB_CHECK_EQ(o.r.content_length, -1);
    free((void *)o.base);
  }
}

/* "TE chunked + Content-Length: CL removed, chunked wins" */
static void test_rule_te_chunked_wins_over_cl(void) {
  req_out o;
  LB_CHECK(req_parse(&o, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_CHUNKED);
  LB_CHECK_EQ(o.r.content_length, -1);
  free((void *)o.base);
  /* but never use, nor excuse, a broken CL */
  static const bad_vec v[] = {
      {"TE chunked with two different CL",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n"
       "Content-Length: 2\r\n\r\n",
       LB_ECONTENTLEN},
      {"TE chunked with non-decimal CL",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
       LB_ECONTENTLEN},
  };
  expect_req_errors(v, NV(v));
}

/* "Several CL with the same value collapse to one; different values -> 400" */
static void test_rule_several_cl(void) {
  req_out o;
  LB_CHECK(req_parse(&o, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                         "content-length: 5\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_LENGTH);
  LB_CHECK_EQ(o.r.content_length, 5);
  free((void *)o.base);
  static const bad_vec v[] = {
      {"two different Content-Length",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", LB_ECONTENTLEN},
      {"Content-Length list in one field", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
       LB_ECONTENTLEN},
      {"different Content-Length on 1.0",
       "POST / HTTP/1.0\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n", LB_ECONTENTLEN},
  };
  expect_req_errors(v, NV(v));
}

/* "CL is a decimal that fits in 63 bits" */
static void test_rule_cl_decimal_63_bits(void) {
  req_out o;
  LB_CHECK(req_parse(&o, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.content_length, INT64_MAX);
  free((void *)o.base);
  LB_CHECK(req_parse(&o, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_LENGTH);
  LB_CHECK_EQ(o.r.content_length, 0);
  free((void *)o.base);
  LB_CHECK(req_parse(&o, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n") > 0);
  LB_CHECK_EQ(o.r.content_length, 7);
  free((void *)o.base);
  static const bad_vec v[] = {
      {"CL 2^63", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
       LB_ECONTENTLEN},
      {"CL 2^64+1", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551617\r\n\r\n",
       LB_ECONTENTLEN},
      {"negative CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", LB_ECONTENTLEN},
      {"CL with plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", LB_ECONTENTLEN},
      {"hex CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", LB_ECONTENTLEN},
      {"CL with inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", LB_ECONTENTLEN},
  };
  expect_req_errors(v, NV(v));
}

/* "empty CL -> 400" */
static void test_rule_empty_cl(void) {
  static const bad_vec v[] = {
      {"empty Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", LB_ECONTENTLEN},
      {"blank Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:   \r\n\r\n", LB_ECONTENTLEN},
  };
  expect_req_errors(v, NV(v));
  LB_CHECK_EQ(lb_http1_status_for(LB_ECONTENTLEN), 400);
}

/* "Neither TE nor CL: request body is empty" */
static void test_rule_no_te_no_cl_empty_body(void) {
  req_out o;
  LB_CHECK(req_parse(&o, "POST /x HTTP/1.1\r\nHost: h\r\n\r\nleftover") > 0);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_NONE);
  LB_CHECK_EQ(o.r.content_length, 0);
  free((void *)o.base);
}

/* Keep-alive: "HTTP/1.1 persists unless ... Connection: close; HTTP/1.0 persists
 * only when it asked for keep-alive" (the request's part of the rule) */
static void test_rule_keep_alive_tokens(void) {
  struct { const char *s; int ka; } v[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nConnection: close\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", 1},
      {"GET / HTTP/1.0\r\n\r\n", 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
      {"GET / HTTP/1.0\r\nConnection:  foo ,Keep-Alive\r\n\r\n", 1},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
  };
  for (size_t i = 0; i < NV(v); i++) {
    req_out o;
    LB_CHECK(req_parse(&o, v[i].s) > 0);
    if (o.r.keep_alive != v[i].ka) fprintf(stderr, "  keep-alive vector %zu\n", i);
    LB_CHECK_EQ(o.r.keep_alive, v[i].ka);
    free((void *)o.base);
  }
}

/* "Expect: 100-continue on 1.1 ... Other Expect -> 417" */
static void test_rule_expect(void) {
  struct { const char *s; int cont, other; } v[] = {
      {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 1, 0},
      {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n", 1, 0},
      {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 0, 1},
      {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n", 0, 1},
      {"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, 0}, /* 1.0: ignored */
      {"POST / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0},
  };
  for (size_t i = 0; i < NV(v); i++) {
    req_out o;
    LB_CHECK(req_parse(&o, v[i].s) > 0);
    LB_CHECK_EQ(o.r.expect_continue, v[i].cont);
    LB_CHECK_EQ(o.r.expect_other, v[i].other);
    free((void *)o.base);
  }
}

static void test_upgrade_flag(void) {
  struct { const char *s; int up; } v[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nUpgrade: h2c\r\n\r\n", 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade:\r\n\r\n", 0},
  };
  for (size_t i = 0; i < NV(v); i++) {
    req_out o;
    LB_CHECK(req_parse(&o, v[i].s) > 0);
    LB_CHECK_EQ(o.r.upgrade, v[i].up);
    free((void *)o.base);
  }
}

static void test_status_for(void) {
  LB_CHECK_EQ(lb_http1_status_for(LB_EAGAIN), 0);
  LB_CHECK_EQ(lb_http1_status_for(42), 0);
  LB_CHECK_EQ(lb_http1_status_for(LB_EPROTO), 400);
  LB_CHECK_EQ(lb_http1_status_for(LB_EHEADER), 400);
  LB_CHECK_EQ(lb_http1_status_for(LB_EURL), 400);
  LB_CHECK_EQ(lb_http1_status_for(LB_ECHUNK), 400);
  LB_CHECK_EQ(lb_http1_status_for(LB_EMETHOD), 501);
  LB_CHECK_EQ(lb_http1_status_for(LB_ETOOLARGE), 413);
  LB_CHECK_EQ(lb_http1_status_for(LB_ENOMEM), 500);
  LB_CHECK_EQ(lb_http1_status_for(LB_EINVAL), 500);
}

/* ------------------------------------------------------------------ */
/* chunked bodies                                                      */

typedef struct chunk_out {
  ptrdiff_t rc;    /* total consumed, or the error */
  int done;
  size_t data_len;
  char data[512];
} chunk_out;

/* Feeds s[0..n) in pieces of `step` bytes (each a heap copy of exactly
 * that size), collecting the data spans. */
static void chunk_run(const char *s, size_t n, size_t step, chunk_out *o) {
  lb_http1_chunked c;
  memset(&c, 0, sizeof c);
  memset(o, 0, sizeof *o);
  size_t total = 0;
  for (size_t at = 0; at < n && !lb_http1_chunked_done(&c);) {
    size_t len = n - at < step ? n - at : step;
    char *piece = dup_n(s + at, len);
    size_t used = 0;
    while (used < len) {
      const char *d;
      size_t dl;
      ptrdiff_t k = lb_http1_chunked_decode(&c, piece + used, len - used, &d, &dl);
      if (k < 0) { o->rc = k; free(piece); return; }
      if (dl > 0) {
        if (d < piece + used || d + dl > piece + used + (size_t)k) { o->rc = -9999; free(piece); return; }
        if (o->data_len + dl <= sizeof o->data) memcpy(o->data + o->data_len, d, dl);
        o->data_len += dl;
      }
      used += (size_t)k;
      if (lb_http1_chunked_done(&c)) break;
      if (k == 0) { o->rc = -9998; free(piece); return; } /* no progress */
    }
    total += used;
    at += len;
    free(piece);
    if (used < len) break;
  }
  o->rc = (ptrdiff_t)total;
  o->done = lb_http1_chunked_done(&c);
  if (o->done && c.total != o->data_len) o->rc = -9997;
}

/* Runs whole, byte by byte, and split in two at every point; all must
 * agree. Returns the whole result. */
static void chunk_check(const char *s, size_t n, chunk_out *whole) {
  chunk_run(s, n, n ? n : 1, whole);
  chunk_out b;
  chunk_run(s, n, 1, &b);
  int same = b.rc == whole->rc && b.done == whole->done && b.data_len == whole->data_len &&
             memcmp(b.data, whole->data, whole->data_len < sizeof b.data ? whole->data_len : sizeof b.data) == 0;
  if (!same) {
    fprintf(stderr, "  chunked byte-by-byte differs: whole %td, split %td\n", whole->rc, b.rc);
    LB_CHECK(!"chunked byte-by-byte agrees");
  }
  /* two pieces, split at each point (the decoder state carries over) */
  for (size_t k = 1; k < n; k++) {
    lb_http1_chunked c;
    memset(&c, 0, sizeof c);
    char *a = dup_n(s, k), *r = dup_n(s + k, n - k);
    size_t got = 0, consumed = 0;
    ptrdiff_t err = 0;
    const char *bufs[2] = {a, r};
    size_t lens[2] = {k, n - k};
    for (int piece = 0; piece < 2 && !err && !lb_http1_chunked_done(&c); piece++) {
      size_t used = 0;
      while (used < lens[piece] && !lb_http1_chunked_done(&c)) {
        const char *d;
        size_t dl;
        ptrdiff_t q = lb_http1_chunked_decode(&c, bufs[piece] + used, lens[piece] - used, &d, &dl);
        if (q < 0) { err = q; break; }
        if (dl && got + dl <= whole->data_len && memcmp(d, whole->data + got, dl) != 0) err = -9996;
        got += dl;
        used += (size_t)q;
      }
      consumed += used;
    }
    ptrdiff_t rc = err ? err : (ptrdiff_t)consumed;
    if (rc != whole->rc || (!err && got != whole->data_len)) {
      fprintf(stderr, "  chunked split at %zu differs: %td vs %td\n", k, rc, whole->rc);
      LB_CHECK(!"chunked two-piece split agrees");
      k = n;
    }
    free(a);
    free(r);
  }
}

static void test_chunked_valid_vectors(void) {
  struct { const char *s; const char *data; size_t consumed_tail; } v[] = {
      {"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
      {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0},
      {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0},
      {"a\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0},
      {"0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", 0},       /* 16 digits */
      {"5;name=value;x=\"q\"\r\nhello\r\n0;last\r\n\r\n", "hello", 0}, /* extensions ignored */
      {"5 ;ext\r\nhello\r\n0\r\n\r\n", "hello", 0},                  /* BWS before ';' */
      {"5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-B:\r\n\r\n", "hello", 0},  /* trailers skipped */
      {"5\r\nhello\r\n0\r\nTrailers: x\r\nContent-Lengthy: 1\r\nTrail: 2\r\n\r\n", "hello", 0},
      {"0\r\n\r\n", "", 0},
      {"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 16}, /* next message untouched */
  };
  for (size_t i = 0; i < NV(v); i++) {
    chunk_out o;
    size_t n = strlen(v[i].s);
    chunk_check(v[i].s, n, &o);
    LB_CHECK_EQ(o.rc, (ptrdiff_t)(n - v[i].consumed_tail));
    LB_CHECK(o.done);
    LB_CHECK_MEM(o.data, v[i].data, o.data_len);
  }
}

static void test_chunked_truncated_prefixes_not_done(void) {
  const char *s = "5;e=1\r\nhello\r\n0\r\nX: y\r\n\r\n";
  size_t n = strlen(s);
  for (size_t k = 0; k < n; k++) {
    chunk_out o;
    chunk_run(s, k, k ? k : 1, &o);
    LB_CHECK_EQ(o.rc, (ptrdiff_t)k); /* all consumed, no error */
    LB_CHECK(!o.done);
  }
}

static void test_chunked_negative_vectors(void) {
  char longline[LB_HTTP1_MAX_CHUNK_LINE + 32];
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "5;", 2);
  memcpy(longline + LB_HTTP1_MAX_CHUNK_LINE, "\r\nhello\r\n0\r\n\r\n", 14);
  struct { const char *defect; const char *s; size_t n; ptrdiff_t want; } v[] = {
      {"bare LF in chunk size line", "5\nhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"bare LF after extension", "5;a=b\nhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"stray CR in chunk size line", "5\rhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"bare LF after chunk data", "5\r\nhello\n0\r\n\r\n", 0, LB_ECHUNK},
      {"stray CR after chunk data", "5\r\nhello\rX0\r\n\r\n", 0, LB_ECHUNK},
      {"data not followed by CRLF", "5\r\nhelloX\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"bare LF ends last chunk", "0\r\n\n", 0, LB_ECHUNK},
      {"bare LF after last-chunk line", "0\n\r\n", 0, LB_ECHUNK},
      {"empty chunk size", "\r\nhello\r\n", 0, LB_ECHUNK},
      {"non-hex chunk size", "g\r\n", 0, LB_ECHUNK},
      {"negative chunk size", "-5\r\nhello\r\n", 0, LB_ECHUNK},
      {"0x prefix in chunk size", "0x5\r\nhello\r\n", 0, LB_ECHUNK},
      {"space inside chunk size", "5 5\r\n", 0, LB_ECHUNK},
      {"17 hex digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"chunk size over 2^63-1", "8000000000000000\r\n", 0, LB_ECHUNK},
      {"chunk size 2^64-1", "ffffffffffffffff\r\n", 0, LB_ECHUNK},
      {"size line of 4096 bytes", longline, LB_HTTP1_MAX_CHUNK_LINE + 14, LB_ECHUNK},
      {"CTL in chunk extension", "5;a=\x01\r\nhello\r\n0\r\n\r\n", 0, LB_ECHUNK},
      {"trailer Transfer-Encoding", "0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, LB_ECHUNK},
      {"trailer Content-Length", "0\r\ncontent-length: 5\r\n\r\n", 0, LB_ECHUNK},
      {"trailer Trailer", "0\r\nTRAILER: x\r\n\r\n", 0, LB_ECHUNK},
      {"obs-fold in trailer", "0\r\nX: a\r\n b\r\n\r\n", 0, LB_ECHUNK},
      {"space before colon in trailer", "0\r\nX : a\r\n\r\n", 0, LB_ECHUNK},
      {"empty trailer name", "0\r\n: a\r\n\r\n", 0, LB_ECHUNK},
      {"bare LF in trailer", "0\r\nX: a\n\r\n", 0, LB_ECHUNK},
      {"CTL in trailer value", "0\r\nX: a\x02\r\n\r\n", 0, LB_ECHUNK},
      {"trailer without colon", "0\r\nX\r\n\r\n", 0, LB_ECHUNK},
  };
  for (size_t i = 0; i < NV(v); i++) {
    size_t n = v[i].n ? v[i].n : strlen(v[i].s);
    chunk_out o;
    chunk_check(v[i].s, n, &o);
    if (o.rc != v[i].want) {
      fprintf(stderr, "  [%s] got %td, want %td\n", v[i].defect, o.rc, v[i].want);
      LB_CHECK(!"chunked negative vector gives its error");
    }
  }
  /* 4095 bytes of size line are still fine */
  memcpy(longline + LB_HTTP1_MAX_CHUNK_LINE - 1, "\r\nhello\r\n0\r\n\r\n", 14);
  chunk_out o;
  chunk_check(longline, LB_HTTP1_MAX_CHUNK_LINE + 13, &o);
  LB_CHECK(o.done);
  LB_CHECK_MEM(o.data, "hello", o.data_len);
  /* NUL in an extension */
  const char nul[] = "5;\0\r\nhello\r\n0\r\n\r\n";
  chunk_check(nul, sizeof nul - 1, &o);
  LB_CHECK_EQ(o.rc, LB_ECHUNK);
}

static void test_chunked_trailer_section_limit(void) {
  size_t n = LB_HTTP1_MAX_TRAILER_BYTES + 64;
  char *s = malloc(n);
  memcpy(s, "0\r\nX: ", 6);
  memset(s + 6, 'a', n - 6);
  lb_http1_chunked c;
  memset(&c, 0, sizeof c);
  const char *d;
  size_t dl;
  LB_CHECK_EQ(lb_http1_chunked_decode(&c, s, n, &d, &dl), LB_EHEADERSIZE);
  free(s);
}

static void test_chunked_large_size_and_spans(void) {
  /* a 2^62-byte chunk: data spans come as the input allows */
  lb_http1_chunked c;
  memset(&c, 0, sizeof c);
  const char *d;
  size_t dl;
  const char *s = "4000000000000000\r\nabcdef";
  ptrdiff_t k = lb_http1_chunked_decode(&c, s, strlen(s), &d, &dl);
  LB_CHECK_EQ(k, 24);
  LB_CHECK(d == s + 18 && dl == 6);
  LB_CHECK(c.remaining == (UINT64_C(1) << 62) - 6);
  k = lb_http1_chunked_decode(&c, s + 18, 6, &d, &dl);
  LB_CHECK_EQ(k, 6);
  LB_CHECK(d == s + 18 && dl == 6);
  LB_CHECK(c.remaining == (UINT64_C(1) << 62) - 12);
  LB_CHECK_EQ(lb_http1_chunked_decode(&c, s, 0, &d, &dl), 0);
  LB_CHECK_EQ(lb_http1_chunked_decode(&c, s, 1, NULL, &dl), LB_EINVAL);
  /* after the end nothing more is consumed */
  memset(&c, 0, sizeof c);
  LB_CHECK_EQ(lb_http1_chunked_decode(&c, "0\r\n\r\nxyz", 8, &d, &dl), 5);
  LB_CHECK(lb_http1_chunked_done(&c));
  LB_CHECK_EQ(lb_http1_chunked_decode(&c, "xyz", 3, &d, &dl), 0);
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

typedef struct resp_out {
  ptrdiff_t rc;
  lb_http1_resp r;
  lb_http1_header h[MAXH];
  const char *base;
} resp_out;

static ptrdiff_t resp_parse(resp_out *o, const char *s, int head_req) {
  size_t n = strlen(s);
  memset(o, 0, sizeof *o);
  o->r.headers = o->h;
  o->r.max_headers = MAXH;
  char *whole = dup_n(s, n);
  o->base = whole;
  o->rc = lb_http1_parse_response(&o->r, whole, n, 0, head_req);
  /* byte by byte */
  resp_out b;
  memset(&b, 0, sizeof b);
  b.r.headers = b.h;
  b.r.max_headers = MAXH;
  b.rc = LB_EAGAIN;
  char *prev = NULL;
  for (size_t k = 1; k <= n && b.rc == LB_EAGAIN; k++) {
    char *part = dup_n(s, k);
    b.rc = lb_http1_parse_response(&b.r, part, k, 0, head_req);
    b.base = part;
    free(prev);
    prev = part;
  }
  int same = b.rc == o->rc;
  if (same && o->rc > 0) {
    same = b.r.status == o->r.status && b.r.body_kind == o->r.body_kind &&
           b.r.content_length == o->r.content_length && b.r.keep_alive == o->r.keep_alive &&
           b.r.num_headers == o->r.num_headers && b.r.reason_len == o->r.reason_len &&
           off(b.base, b.r.reason) == off(o->base, o->r.reason) &&
           b.r.version_minor == o->r.version_minor && b.r.upgrade == o->r.upgrade;
    for (size_t i = 0; same && i < o->r.num_headers; i++)
      same = off(b.base, b.h[i].value) == off(o->base, o->h[i].value) &&
             b.h[i].value_len == o->h[i].value_len;
  }
  if (!same) LB_CHECK(!"response byte-by-byte agrees with whole");
  free(prev);
  if (o->rc > 0) {
    for (size_t k = 0; k < (size_t)o->rc; k++) {
      lb_http1_resp t;
      lb_http1_header th[MAXH];
      memset(&t, 0, sizeof t);
      t.headers = th;
      t.max_headers = MAXH;
      char *part = dup_n(s, k);
      if (lb_http1_parse_response(&t, part, k, 0, head_req) != LB_EAGAIN)
        LB_CHECK(!"truncated response prefix gives LB_EAGAIN");
      free(part);
    }
  }
  return o->rc;
}

static void test_response_framing(void) {
  struct { const char *s; int head; int status, kind; int64_t cl; int ka; } v[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 200, LB_HTTP1_BODY_LENGTH, 5, 1},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 200, LB_HTTP1_BODY_CHUNKED, -1, 1},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 200,
       LB_HTTP1_BODY_CHUNKED, -1, 1},
      {"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", 0, 200, LB_HTTP1_BODY_CLOSE, -1, 0},
      {"HTTP/1.1 204 No Content\r\n\r\n", 0, 204, LB_HTTP1_BODY_NONE, 0, 1},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0, 304, LB_HTTP1_BODY_NONE, 99, 1},
      {"HTTP/1.1 100 Continue\r\n\r\n", 0, 100, LB_HTTP1_BODY_NONE, 0, 1},
      {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 0, 103, LB_HTTP1_BODY_NONE, 0, 1},
      {"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 1, 200, LB_HTTP1_BODY_NONE, 42, 1}, /* HEAD */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 200, LB_HTTP1_BODY_NONE, 0, 1},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 0, 200,
       LB_HTTP1_BODY_LENGTH, 1, 0},
      {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 200, LB_HTTP1_BODY_LENGTH, 1, 0},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 0, 200,
       LB_HTTP1_BODY_LENGTH, 1, 1},
      {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 200, LB_HTTP1_BODY_CLOSE, -1, 0},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 0, 200,
       LB_HTTP1_BODY_LENGTH, 3, 1},
      {"HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", 0, 599, LB_HTTP1_BODY_LENGTH, 0, 1},
      {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, 200, LB_HTTP1_BODY_LENGTH, 0, 1},
  };
  for (size_t i = 0; i < NV(v); i++) {
    resp_out o;
    ptrdiff_t rc = resp_parse(&o, v[i].s, v[i].head);
    if (rc <= 0) fprintf(stderr, "  response vector %zu: %td\n", i, rc);
    LB_CHECK(rc > 0);
    LB_CHECK_EQ(o.r.status, v[i].status);
    LB_CHECK_EQ(o.r.body_kind, v[i].kind);
    LB_CHECK_EQ(o.r.content_length, v[i].cl);
    if (o.r.keep_alive != v[i].ka) fprintf(stderr, "  response keep-alive vector %zu\n", i);
    LB_CHECK_EQ(o.r.keep_alive, v[i].ka);
    free((void *)o.base);
  }
  resp_out o;
  LB_CHECK(resp_parse(&o, "HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n", 0) > 0);
  LB_CHECK(VIEW_IS(o.r.reason, o.r.reason_len, "Not Found Here"));
  free((void *)o.base);
  LB_CHECK(resp_parse(&o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n\r\n\x81\x05hello", 0) > 0);
  LB_CHECK_EQ(o.r.upgrade, 1);
  LB_CHECK_EQ(o.r.body_kind, LB_HTTP1_BODY_NONE);
  LB_CHECK_EQ(o.r.keep_alive, 0);
  free((void *)o.base);
}

static void test_response_errors(void) {
  struct { const char *defect; const char *s; ptrdiff_t want; } v[] = {
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", LB_ESTATUS},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", LB_ESTATUS},
      {"status below 100", "HTTP/1.1 099 X\r\n\r\n", LB_ESTATUS},
      {"not HTTP", "ICY 200 OK\r\n\r\n", LB_ESTATUS},
      {"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\n\r\n", LB_EVERSION},
      {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", LB_ETRANSFER},
      {"TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", LB_ETRANSFER},
      {"two different Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       LB_ECONTENTLEN},
      {"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", LB_ECONTENTLEN},
      {"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", LB_ESTATUS},
      {"CTL in header value", "HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n", LB_EHEADER},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", LB_EHEADER},
      {"bare LF", "HTTP/1.1 200 OK\nX: a\r\n\r\n", LB_ESTATUS},
  };
  for (size_t i = 0; i < NV(v); i++) {
    resp_out o;
    ptrdiff_t rc = resp_parse(&o, v[i].s, 0);
    if (rc != v[i].want) {
      fprintf(stderr, "  [%s] got %td (%s), want %s\n", v[i].defect, rc, lb_err_name((int)rc),
              lb_err_name((int)v[i].want));
      LB_CHECK(!"response negative vector gives its error");
    }
    free((void *)o.base);
  }
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

static void test_write_response_head(void) {
  char buf[256];
  lb_http1_header h[2] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                          {"Content-Length", 14, "5", 1}};
  ptrdiff_t n = lb_http1_write_response_head(buf, sizeof buf, 200, NULL, h, 2);
  const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 5\r\n\r\n";
  LB_CHECK_MEM(buf, want, (size_t)n);
  LB_CHECK_EQ(lb_http1_response_head_max_len(200, NULL, h, 2), (size_t)n);
  /* it parses back */
  lb_http1_resp r;
  lb_http1_header rh[4];
  memset(&r, 0, sizeof r);
  r.headers = rh;
  r.max_headers = 4;
  LB_CHECK_EQ(lb_http1_parse_response(&r, buf, (size_t)n, 0, 0), n);
  LB_CHECK_EQ(r.status, 200);
  LB_CHECK_EQ(r.content_length, 5);

  n = lb_http1_write_response_head(buf, sizeof buf, 431, NULL, NULL, 0);
  LB_CHECK_MEM(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n", (size_t)n);
  n = lb_http1_write_response_head(buf, sizeof buf, 299, NULL, NULL, 0);
  LB_CHECK_MEM(buf, "HTTP/1.1 299 \r\n\r\n", (size_t)n);
  n = lb_http1_write_response_head(buf, sizeof buf, 200, "Fine\tThanks", NULL, 0);
  LB_CHECK_MEM(buf, "HTTP/1.1 200 Fine\tThanks\r\n\r\n", (size_t)n);
  lb_http1_header e = {"X-Empty", 7, NULL, 0};
  n = lb_http1_write_response_head(buf, sizeof buf, 204, NULL, &e, 1);
  LB_CHECK_MEM(buf, "HTTP/1.1 204 No Content\r\nX-Empty: \r\n\r\n", (size_t)n);
  LB_CHECK(strcmp(lb_http1_reason(404), "Not Found") == 0);
  LB_CHECK(strcmp(lb_http1_reason(799), "") == 0);
}

static void test_write_rejects_response_splitting(void) {
  char buf[256];
  struct { const char *defect; lb_http1_header h; } v[] = {
      {"CRLF in header value", {"X", 1, "a\r\nSet-Cookie: x", 17}},
      {"LF in header value", {"X", 1, "a\nb", 3}},
      {"CR in header value", {"X", 1, "a\rb", 3}},
      {"NUL in header value", {"X", 1, "a\0b", 3}},
      {"CRLF in header name", {"X\r\nY", 4, "v", 1}},
      {"colon in header name", {"X:Y", 3, "v", 1}},
      {"space in header name", {"X Y", 3, "v", 1}},
      {"empty header name", {"", 0, "v", 1}},
  };
  for (size_t i = 0; i < NV(v); i++) {
    ptrdiff_t rc = lb_http1_write_response_head(buf, sizeof buf, 200, NULL, &v[i].h, 1);
    if (rc != LB_EHEADER) fprintf(stderr, "  [%s] got %td\n", v[i].defect, rc);
    LB_CHECK_EQ(rc, LB_EHEADER);
  }
  LB_CHECK_EQ(lb_http1_write_response_head(buf, sizeof buf, 200, "OK\r\nX: y", NULL, 0), LB_EHEADER);
}

static void test_write_status_range_and_space(void) {
  char buf[64];
  LB_CHECK_EQ(lb_http1_write_response_head(buf, sizeof buf, 99, NULL, NULL, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_http1_write_response_head(buf, sizeof buf, 1000, NULL, NULL, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_http1_write_response_head(buf, sizeof buf, -200, NULL, NULL, 0), LB_EINVAL);
  LB_CHECK(lb_http1_write_response_head(buf, sizeof buf, 100, NULL, NULL, 0) > 0);
  LB_CHECK(lb_http1_write_response_head(buf, sizeof buf, 999, NULL, NULL, 0) > 0);
  lb_http1_header h = {"Server", 6, "lowbit", 6};
  size_t need = lb_http1_response_head_max_len(200, NULL, &h, 1);
  for (size_t cap = 0; cap < need; cap++) {
    char *d = malloc(cap ? cap : 1);
    LB_CHECK_EQ(lb_http1_write_response_head(d, cap, 200, NULL, &h, 1), LB_ENOSPACE);
    free(d);
  }
  char *d = malloc(need);
  LB_CHECK_EQ(lb_http1_write_response_head(d, need, 200, NULL, &h, 1), (ptrdiff_t)need);
  free(d);
  lb_http1_header huge = {"X", 1, "v", SIZE_MAX - 8};
  LB_CHECK_EQ(lb_http1_response_head_max_len(200, NULL, &huge, 1), SIZE_MAX);
}

static void test_format_date(void) {
  char d[30];
  struct { int64_t t; const char *s; } v[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
      {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
      {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
      {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
      {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
      {INT64_MIN, "Sat, 01 Jan 0000 00:00:00 GMT"},
  };
  for (size_t i = 0; i < NV(v); i++) {
    LB_CHECK_EQ(lb_http1_format_date(d, v[i].t), LB_HTTP1_DATE_LEN);
    LB_CHECK(strcmp(d, v[i].s) == 0);
  }
  /* against libc's gmtime for a spread of times (strftime in the C locale) */
  srand(7);
  for (int i = 0; i < 20000; i++) {
    int64_t t = ((int64_t)rand() << 16 ^ rand()) % INT64_C(253402300799);
    if (i & 1) t = -t % INT64_C(62135596800); /* back to year 1 */
    time_t tt = (time_t)t;
    struct tm tm;
    char want[64];
    if (gmtime_r(&tt, &tm) == NULL) continue;
    static const char *wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday], tm.tm_mday,
             mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    lb_http1_format_date(d, t);
    if (strcmp(d, want) != 0) {
      fprintf(stderr, "  date %lld: %s vs %s\n", (long long)t, d, want);
      LB_CHECK(!"format_date matches gmtime");
      break;
    }
  }
}

/* Every byte in every place of a common head (method, target, field name,
 * field value, version) and a few shapes around them: the parser's verdict
 * and views are the same whether the head takes the short path or llhttp's
 * (req_parse_n compares them). */
static void test_common_head_path_agrees_with_llhttp(void) {
  static const char *const shapes[] = {
    "GET /a%cb HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x\r\nX-%c: 1\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a%cb\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x\r\nX-A:%c\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x\r\nX-A: %c \r\n\r\n",
    "GE%c /a HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET %ca HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /a HTTP/1.%c\r\nHost: x\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x%c\r\n\r\n",
  };
  char buf[128];
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    for (int c = 1; c < 256; c++) {
      if (c == '\r' || c == '\n') continue; /* ends the line: other shapes */
      int n = snprintf(buf, sizeof buf, shapes[k], c);
      req_out o;
      req_parse_n(&o, buf, (size_t)n, 0);
      free((void *)o.base);
    }
  }
  static const char *const heads[] = {
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "HEAD /x?y HTTP/1.0\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    "PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    "DELETE /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    "PATCH /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "OPTIONS /o HTTP/1.1\r\nHost: h\r\nA:\r\nB: \t \r\nC:x\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: h\r\nX:\t a \t b\t\r\n\r\n",
    "\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a  HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a HTTP/1.1 \r\nHost: h\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost : h\r\n\r\n",
    "GET /a HTTP/1.1\r\n: h\r\n\r\n",
    "GET /a HTTP/2.0\r\nHost: h\r\n\r\n",
    "GET /a HTTP/1.10\r\nHost: h\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
    "get /a HTTP/1.1\r\nHost: h\r\n\r\n",
    "GETS /a HTTP/1.1\r\nHost: h\r\n\r\n",
    "TRACE /a HTTP/1.1\r\nHost: h\r\n\r\n",
  };
  for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
    req_out o;
    req_parse(&o, heads[k]);
    free((void *)o.base);
  }
  /* more fields than the caller's array: the same verdict both ways */
  lb_http1_header h1[1], h2[1];
  lb_http1_req a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.headers = h1;
  b.headers = h2;
  a.max_headers = b.max_headers = 1;
  const char *two = "GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
  LB_CHECK_EQ(lb_http1_parse_request(&a, two, strlen(two), 0),
              lb_http1_parse_request_llhttp(&b, two, strlen(two), 0));
}

/* method_id names the usual methods, whichever path read the head. */
static void test_method_id(void) {
  static const struct { const char *head; int32_t id; } v[] = {
    {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_GET},
    {"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_HEAD},
    {"POST / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_POST},
    {"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_PUT},
    {"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_DELETE},
    {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_OPTIONS},
    {"PATCH / HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_PATCH},
    {"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", LB_HTTP1_GET}, /* llhttp's path */
    {"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n", 0},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    req_out o;
    LB_CHECK(req_parse(&o, v[i].head) > 0);
    LB_CHECK_EQ(o.r.method_id, v[i].id);
    free((void *)o.base);
  }
}

int main(void) {
  LB_RUN(test_method_id);
  LB_RUN(test_common_head_path_agrees_with_llhttp);
  LB_RUN(test_request_get_fields);
  LB_RUN(test_scan_every_byte_at_every_offset);
  LB_RUN(test_request_no_query_and_empty_query);
  LB_RUN(test_request_target_forms);
  LB_RUN(test_request_bad_target);
  LB_RUN(test_request_line_malformed);
  LB_RUN(test_leading_empty_lines_skipped);
  LB_RUN(test_pipelined_requests_and_struct_reuse);
  LB_RUN(test_zero_filled_struct);
  LB_RUN(test_empty_input_is_incomplete);
  LB_RUN(test_rule_max_header_bytes);
  LB_RUN(test_rule_http11_without_host);
  LB_RUN(test_rule_several_host);
  LB_RUN(test_rule_bad_host);
  LB_RUN(test_rule_bad_header_name_or_value);
  LB_RUN(test_rule_protocol_not_1x);
  LB_RUN(test_rule_te_ignored_on_http10);
  LB_RUN(test_rule_te_exactly_one_chunked);
  LB_RUN(test_rule_te_chunked_wins_over_cl);
  LB_RUN(test_rule_several_cl);
  LB_RUN(test_rule_cl_decimal_63_bits);
  LB_RUN(test_rule_empty_cl);
  LB_RUN(test_rule_no_te_no_cl_empty_body);
  LB_RUN(test_rule_keep_alive_tokens);
  LB_RUN(test_rule_expect);
  LB_RUN(test_upgrade_flag);
  LB_RUN(test_status_for);
  LB_RUN(test_chunked_valid_vectors);
  LB_RUN(test_chunked_truncated_prefixes_not_done);
  LB_RUN(test_chunked_negative_vectors);
  LB_RUN(test_chunked_trailer_section_limit);
  LB_RUN(test_chunked_large_size_and_spans);
  LB_RUN(test_response_framing);
  LB_RUN(test_response_errors);
  LB_RUN(test_write_response_head);
  LB_RUN(test_write_rejects_response_splitting);
  LB_RUN(test_write_status_range_and_space);
  LB_RUN(test_format_date);
  return LB_DONE();
}
