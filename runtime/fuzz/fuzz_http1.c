/*
 * fuzz_http1.c: libFuzzer target for lb_http1.
 *
 * The first input byte picks a split point, a header-size limit and the
 * HEAD flag; the rest is fed to the request parser, the response parser and
 * the chunked decoder, once whole and once in two pieces cut at the split
 * point. Whole and split must agree exactly, views must stay inside the
 * head, and a parsed request's fields must survive a write/parse round trip
 * through lb_http1_write_response_head(). Requests are parsed a third time
 * through llhttp alone (lb_http1_parse_request_llhttp): the short path for
 * common heads must give the same verdict and views.
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXH 16
#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static long long off(const char *base, const char *p) { return p ? (long long)(p - base) : -1; }

static void check_view(const char *base, size_t lim, const char *p, size_t n) {
  if (p == NULL) { CHECK(n == 0); return; }
  CHECK(p >= base && (size_t)(p - base) <= lim && n <= lim - (size_t)(p - base));
}

/* Two parses of the same bytes (whole vs split, short path vs llhttp) agree
 * on the verdict's every view, number and header. */
static void check_same_head(const char *s, const lb_http1_req *a, const lb_http1_req *b) {
  CHECK(off(s, a->method) == off(s, b->method) && a->method_len == b->method_len);
  CHECK(off(s, a->target) == off(s, b->target) && a->target_len == b->target_len);
  CHECK(off(s, a->path) == off(s, b->path) && a->path_len == b->path_len);
  CHECK(off(s, a->query) == off(s, b->query) && a->query_len == b->query_len);
  CHECK(off(s, a->host) == off(s, b->host) && a->host_len == b->host_len);
  CHECK(a->content_length == b->content_length && a->body_kind == b->body_kind &&
        a->keep_alive == b->keep_alive && a->upgrade == b->upgrade &&
        a->expect_continue == b->expect_continue && a->expect_other == b->expect_other &&
        a->num_headers == b->num_headers && a->version_minor == b->version_minor &&
        a->method_id == b->method_id && a->version_major == b->version_major);
  for (size_t i = 0; i < a->num_headers; i++) {
    const lb_http1_header *x = &a->headers[i], *y = &b->headers[i];
    CHECK(off(s, x->name) == off(s, y->name) && x->name_len == y->name_len);
    CHECK(off(s, x->value) == off(s, y->value) && x->value_len == y->value_len);
  }
}

static void fuzz_request(const char *s, size_t n, size_t k, size_t maxb) {
  lb_http1_header h1[MAXH], h2[MAXH];
  lb_http1_req a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.headers = h1;
  a.max_headers = MAXH;
  b.headers = h2;
  b.max_headers = MAXH;
  ptrdiff_t ra = lb_http1_parse_request(&a, s, n, maxb);
  ptrdiff_t rb = lb_http1_parse_request(&b, s, k, maxb);
  if (rb == LB_EAGAIN) rb = lb_http1_parse_request(&b, s, n, maxb);
  CHECK(ra == rb);
  /* the short path for common heads and llhttp's agree on every view */
  lb_http1_header hl[MAXH];
  lb_http1_req l;
  memset(&l, 0, sizeof l);
  l.headers = hl;
  l.max_headers = MAXH;
  CHECK(lb_http1_parse_request_llhttp(&l, s, n, maxb) == ra);
  if (ra > 0) check_same_head(s, &a, &l);
  CHECK(ra == LB_EAGAIN || ra > 0 || (ra <= -100 && ra > -400));
  if (ra <= 0) return;
  size_t lim = (size_t)ra;
  CHECK(lim <= n);
  check_same_head(s, &a, &b);
  CHECK(a.version_major == 1);
  CHECK(a.body_kind >= LB_HTTP1_BODY_NONE && a.body_kind <= LB_HTTP1_BODY_CHUNKED);
  CHECK(a.body_kind == LB_HTTP1_BODY_CHUNKED ? a.content_length == -1 : a.content_length >= 0);
  check_view(s, lim, a.method, a.method_len);
  check_view(s, lim, a.target, a.target_len);
  check_view(s, lim, a.path, a.path_len);
  check_view(s, lim, a.query, a.query_len);
  check_view(s, lim, a.host, a.host_len);
  CHECK(a.num_headers <= MAXH);
  for (size_t i = 0; i < a.num_headers; i++) {
    check_view(s, lim, h1[i].name, h1[i].name_len);
    check_view(s, lim, h1[i].value, h1[i].value_len);
  }

  /* Accepted fields are safe to echo: writing them cannot fail (no
   * splitting), and the result parses back to the same fields. */
  size_t need = lb_http1_response_head_max_len(200, NULL, h1, a.num_headers);
  char *out = malloc(need);
  ptrdiff_t w = lb_http1_write_response_head(out, need, 200, NULL, h1, a.num_headers);
  CHECK(w == (ptrdiff_t)need);
  lb_http1_header h3[MAXH];
  lb_http1_resp r;
  memset(&r, 0, sizeof r);
  r.headers = h3;
  r.max_headers = MAXH;
  ptrdiff_t pr = lb_http1_parse_response(&r, out, (size_t)w, (size_t)w, 1);
  /* Host/CL/TE semantics may still refuse (say, two Content-Length fields
   * that differ only in leading zeros); the syntax never does. */
  if (pr > 0) {
    CHECK(pr == w && r.num_headers == a.num_headers);
    for (size_t i = 0; i < r.num_headers; i++)
      CHECK(h3[i].value_len == h1[i].value_len &&
            memcmp(h3[i].value, h1[i].value, h1[i].value_len) == 0);
  } else {
    CHECK(pr == LB_ECONTENTLEN || pr == LB_ETRANSFER);
  }
  free(out);
}

static void fuzz_response(const char *s, size_t n, size_t k, size_t maxb, int head) {
  lb_http1_header h1[MAXH], h2[MAXH];
  lb_http1_resp a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.headers = h1;
  a.max_headers = MAXH;
  b.headers = h2;
  b.max_headers = MAXH;
  ptrdiff_t ra = lb_http1_parse_response(&a, s, n, maxb, head);
  ptrdiff_t rb = lb_http1_parse_response(&b, s, k, maxb, head);
  if (rb == LB_EAGAIN) rb = lb_http1_parse_response(&b, s, n, maxb, head);
  CHECK(ra == rb);
  if (ra <= 0) return;
  CHECK((size_t)ra <= n);
  CHECK(a.status == b.status && a.status >= 100 && a.status <= 999);
  CHECK(a.body_kind == b.body_kind && a.content_length == b.content_length &&
        a.keep_alive == b.keep_alive && a.num_headers == b.num_headers &&
        off(s, a.reason) == off(s, b.reason) && a.reason_len == b.reason_len);
  check_view(s, (size_t)ra, a.reason, a.reason_len);
  for (size_t i = 0; i < a.num_headers; i++) {
    CHECK(off(s, h1[i].value) == off(s, h2[i].value) && h1[i].value_len == h2[i].value_len);
    check_view(s, (size_t)ra, h1[i].value, h1[i].value_len);
  }
}

/* Decodes pieces in order; returns consumed or the error, and the data. */
static ptrdiff_t decode_all(const char *const *pieces, const size_t *lens, int np, char *data,
                            size_t *data_len, int *done) {
  lb_http1_chunked c;
  memset(&c, 0, sizeof c);
  size_t consumed = 0;
  *data_len = 0;
  for (int p = 0; p < np && !lb_http1_chunked_done(&c); p++) {
    size_t used = 0;
    while (used < lens[p] && !lb_http1_chunked_done(&c)) {
      const char *d;
      size_t dl;
      ptrdiff_t q = lb_http1_chunked_decode(&c, pieces[p] + used, lens[p] - used, &d, &dl);
      if (q < 0) return q;
      CHECK(q > 0 || lb_http1_chunked_done(&c));
      CHECK((size_t)q <= lens[p] - used);
      if (dl) {
        CHECK(d >= pieces[p] + used && d + dl <= pieces[p] + used + (size_t)q);
        memcpy(data + *data_len, d, dl);
        *data_len += dl;
      }
      used += (size_t)q;
    }
    consumed += used;
  }
  *done = lb_http1_chunked_done(&c);
  if (*done) CHECK(c.total == *data_len);
  return (ptrdiff_t)consumed;
}

static void fuzz_chunked(const char *s, size_t n, size_t k) {
  char *d1 = malloc(n + 1), *d2 = malloc(n + 1);
  size_t l1, l2;
  int done1 = 0, done2 = 0;
  const char *whole[1] = {s};
  size_t wl[1] = {n};
  ptrdiff_t r1 = decode_all(whole, wl, 1, d1, &l1, &done1);
  /* the two pieces as separate heap buffers, so reads past a piece show */
  char *p1 = malloc(k + 1), *p2 = malloc(n - k + 1);
  memcpy(p1, s, k);
  memcpy(p2, s + k, n - k);
  const char *split[2] = {p1, p2};
  size_t sl[2] = {k, n - k};
  ptrdiff_t r2 = decode_all(split, sl, 2, d2, &l2, &done2);
  CHECK(r1 == r2);
  if (r1 >= 0) {
    CHECK(done1 == done2 && l1 == l2 && memcmp(d1, d2, l1) == 0);
    CHECK(done1 || (size_t)r1 == n);
  } else {
    CHECK(r1 == LB_ECHUNK || r1 == LB_EHEADERSIZE);
  }
  free(p1);
  free(p2);
  free(d1);
  free(d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned ctl = data[0];
  size_t n = size - 1;
  /* an exact-size heap copy: the views and ASan see the real end */
  char *s = malloc(n ? n : 1);
  memcpy(s, data + 1, n);
  size_t k = n ? (size_t)ctl * 2654435761u % (n + 1) : 0;
  size_t maxb = (ctl & 0x80) ? 32 + (ctl & 0x7f) : 0;
  fuzz_request(s, n, k, maxb);
  fuzz_response(s, n, k, maxb, (int)(ctl & 1));
  fuzz_chunked(s, n, k);
  char date[30];
  int64_t t = 0;
  memcpy(&t, data, size < sizeof t ? size : sizeof t);
  CHECK(lb_http1_format_date(date, t) == LB_HTTP1_DATE_LEN && date[29] == 0);
  free(s);
  return 0;
}
