/* test_sse.c: lb_sse encoder and WHATWG event-stream parser.
 *
 * Parser vectors go through check_stream(), which feeds each one whole,
 * byte by byte and split in two at every offset, and compares the events
 * (rendered as text) with the expected rendering each time. */
#include "lb_test.h"
#include "lowbit/lb_sse.h"
#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------ helpers */

typedef struct rendered {
  char s[16384];
  size_t len;
} rendered;

static void r_put(rendered *r, const void *p, size_t n) {
  if (r->len + n >= sizeof r->s) n = sizeof r->s - 1 - r->len;
  memcpy(r->s + r->len, p, n);
  r->len += n;
  r->s[r->len] = 0;
}

static void r_str(rendered *r, const char *s) { r_put(r, s, strlen(s)); }

/* One event as "[type]{data}#id" + " ~retry" + " +name=value"... + "\n". */
static void render_event(rendered *r, const lb_sse_parser *p) {
  char tmp[64];
  r_str(r, "[");
  r_put(r, p->type, p->type_len);
  r_str(r, "]{");
  r_put(r, p->data, p->data_len);
  r_str(r, "}#");
  r_put(r, p->id, p->id_len);
  if (p->event_retry >= 0) {
    snprintf(tmp, sizeof tmp, " ~%lld", (long long)p->event_retry);
    r_str(r, tmp);
  }
  for (size_t i = 0; i < p->n_ext; i++) {
    r_str(r, " +");
    r_put(r, p->ext[i].name, p->ext[i].name_len);
    r_str(r, "=");
    r_put(r, p->ext[i].value, p->ext[i].value_len);
  }
  r_str(r, "\n");
}

/* Feeds one chunk, rendering every event. Returns 0 or the error. */
static int feed_chunk(lb_sse_parser *p, rendered *r, const uint8_t *in,
                      size_t n) {
  while (n > 0) {
    ptrdiff_t k = lb_sse_feed(p, in, n);
    if (k < 0) return (int)k;
    if ((size_t)k > n) return -9999;
    if (p->ready) render_event(r, p);
    else if ((size_t)k != n) return -9998; /* stopped without an event */
    if (k == 0 && !p->ready) return -9997;
    in += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Feeds in[] cut at cuts[0..ncut) (ascending offsets), then finishes.
 * Renders the events, then "END id=<last id> retry=<r|->" or "ERR <name>". */
static void run_cuts(const uint8_t *in, size_t n, const size_t *cuts,
                     size_t ncut, size_t max_event, rendered *r) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  p.max_event = max_event;
  r->len = 0;
  r->s[0] = 0;
  size_t at = 0;
  int err = 0;
  for (size_t c = 0; c <= ncut && !err; c++) {
    size_t end = c < ncut ? cuts[c] : n;
    err = feed_chunk(&p, r, in + at, end - at);
    at = end;
  }
  if (!err) err = (int)lb_sse_finish(&p);
  char tmp[64];
  if (err) {
    snprintf(tmp, sizeof tmp, "ERR %s", lb_err_name(err));
    r_str(r, tmp);
  } else {
    r_str(r, "END id=");
    r_put(r, p.id, p.id_len);
    if (p.has_retry) snprintf(tmp, sizeof tmp, " retry=%lld", (long long)p.retry);
    else snprintf(tmp, sizeof tmp, " retry=-");
    r_str(r, tmp);
  }
  lb_sse_parser_free(&p);
}

static int expect_same(const char *how, size_t at, const rendered *got,
                       const char *want) {
  if (strcmp(got->s, want) == 0) return 1;
  fprintf(stderr, "  [%s %zu]\n  got:  <%s>\n  want: <%s>\n", how, at, got->s,
          want);
  return 0;
}

/* Whole, byte by byte, and at every split point, with a given limit. */
static int check_stream_lim(const void *vin, size_t n, const char *want,
                            size_t max_event) {
  const uint8_t *in = vin;
  rendered r;
  int ok = 1;
  run_cuts(in, n, NULL, 0, max_event, &r);
  ok &= expect_same("whole", 0, &r, want);
  size_t *cuts = calloc(n + 1, sizeof *cuts);
  for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
  run_cuts(in, n, cuts, n ? n - 1 : 0, max_event, &r);
  ok &= expect_same("bytewise", 0, &r, want);
  for (size_t s = 1; s < n && ok; s++) {
    cuts[0] = s;
    run_cuts(in, n, cuts, 1, max_event, &r);
    ok &= expect_same("split", s, &r, want);
  }
  free(cuts);
  return ok;
}

#define STREAM(lit, want) LB_CHECK(check_stream_lim(lit, sizeof(lit) - 1, want, 0))
#define STREAM_LIM(lit, want, lim)                                             \
  LB_CHECK(check_stream_lim(lit, sizeof(lit) - 1, want, lim))

/* ------------------------------------------------------- parser: lines */

static void test_parse_simple_data_event(void) {
  STREAM("data: hello\n\n", "[message]{hello}#\nEND id= retry=-");
}

static void test_parse_line_end_lf(void) {
  STREAM("data: a\ndata: b\n\n", "[message]{a\nb}#\nEND id= retry=-");
}

static void test_parse_line_end_crlf(void) {
  STREAM("data: a\r\ndata: b\r\n\r\n", "[message]{a\nb}#\nEND id= retry=-");
}

static void test_parse_line_end_lone_cr(void) {
  STREAM("data: a\rdata: b\r\r", "[message]{a\nb}#\nEND id= retry=-");
}

static void test_parse_line_end_mixed(void) {
  STREAM("data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r\r\n",
         "[message]{a\nb\nc}#\n[message]{d}#\nEND id= retry=-");
}

static void test_parse_cr_lf_pairs_not_two_breaks(void) {
  /* "\r\n" must not count as two line ends even when split between feeds:
   * otherwise "data: x\r\n" would dispatch on its own. */
  STREAM("data: x\r\ndata: y\r\n", "END id= retry=-");
  STREAM("data: x\r\n\r\n", "[message]{x}#\nEND id= retry=-");
}

static void test_parse_cr_at_end_of_feed_waits_for_lf(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"data: x\r", 8), 8);
  LB_CHECK_EQ(p.ready, 0);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"\n", 1), 1); /* CRLF pair */
  LB_CHECK_EQ(p.ready, 0);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"\r", 1), 1);  /* blank line */
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_MEM(p.data, "x", p.data_len);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"\n", 1), 1); /* pairs the CR */
  LB_CHECK_EQ(p.ready, 0);
  LB_CHECK_EQ(lb_sse_finish(&p), 0);
  lb_sse_parser_free(&p);
}

static void test_parse_cr_cr_dispatches_at_once(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"data: x\r\r", 9), 9);
  LB_CHECK_EQ(p.ready, 1);
  lb_sse_parser_free(&p);
}

static void test_parse_comment_ignored(void) {
  STREAM(": hello\ndata: a\n: mid\n\n", "[message]{a}#\nEND id= retry=-");
  STREAM(":\n\n: only comments\n\n", "END id= retry=-");
}

static void test_parse_field_without_colon_has_empty_value(void) {
  /* "data" alone appends "" + LF: the data buffer is "\n", not empty, so an
   * event with empty data is dispatched. */
  STREAM("data\n\n", "[message]{}#\nEND id= retry=-");
  STREAM("data\ndata\n\n", "[message]{\n}#\nEND id= retry=-");
}

static void test_parse_value_loses_one_leading_space(void) {
  STREAM("data:  a\n\n", "[message]{ a}#\nEND id= retry=-");
  STREAM("data:a\n\n", "[message]{a}#\nEND id= retry=-");
  STREAM("data: \n\n", "[message]{}#\nEND id= retry=-");
}

static void test_parse_value_keeps_later_colons(void) {
  STREAM("event: a:b\ndata: c: d\n\n", "[a:b]{c: d}#\nEND id= retry=-");
}

static void test_parse_field_names_case_sensitive(void) {
  STREAM("Data: a\n\n", "END id= retry=-");
  STREAM("Data: a\ndata: b\n\n", "[message]{b}# +Data=a\nEND id= retry=-");
}

static void test_parse_space_before_colon_is_part_of_name(void) {
  STREAM("data : x\ndata: y\n\n", "[message]{y}# +data =x\nEND id= retry=-");
}

/* ------------------------------------------------------- parser: BOM */

#define FFFD "\xEF\xBF\xBD"

static void test_parse_bom_stripped_at_start(void) {
  STREAM("\xEF\xBB\xBF" "data: a\n\n", "[message]{a}#\nEND id= retry=-");
}

static void test_parse_bom_stripped_only_once(void) {
  /* The second BOM is part of the field name: "\uFEFFdata" is an unknown
   * field, so nothing is dispatched. */
  STREAM("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\n", "END id= retry=-");
  STREAM("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\ndata: b\n\n",
         "[message]{b}# +\xEF\xBB\xBF" "data=a\nEND id= retry=-");
}

static void test_parse_bom_later_in_stream_kept(void) {
  STREAM("data: a\n\n\xEF\xBB\xBF" "data: b\n\n",
         "[message]{a}#\nEND id= retry=-");
  STREAM("data: \xEF\xBB\xBF\n\n", "[message]{\xEF\xBB\xBF}#\nEND id= retry=-");
}

static void test_parse_partial_bom_is_replaced(void) {
  /* EF BB then 'd': the maximal subpart EF BB becomes one U+FFFD. */
  STREAM("\xEF\xBB" "data: a\n\n", "END id= retry=-");
  STREAM("\xEF\xBB\n" "data: a\n\n", "[message]{a}# +" FFFD "=\nEND id= retry=-");
}

/* ------------------------------------------------------- parser: UTF-8 */

static void test_parse_valid_utf8_kept(void) {
  STREAM("data: \xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9\n\n",
         "[message]{\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9}#\nEND id= retry=-");
}

static void test_parse_invalid_byte_replaced(void) {
  STREAM("data: a\xFF" "b\x80\n\n", "[message]{a" FFFD "b" FFFD "}#\nEND id= retry=-");
}

static void test_parse_truncated_sequence_replaced_once(void) {
  STREAM("data: \xE2\x82\n\n", "[message]{" FFFD "}#\nEND id= retry=-");
  STREAM("data: \xF0\x9F\x98" "x\n\n", "[message]{" FFFD "x}#\nEND id= retry=-");
}

static void test_parse_overlong_and_surrogate_replaced(void) {
  STREAM("data: \xC0\xAF\n\n", "[message]{" FFFD FFFD "}#\nEND id= retry=-");
  STREAM("data: \xE0\x80\x80\n\n", "[message]{" FFFD FFFD FFFD "}#\nEND id= retry=-");
  STREAM("data: \xED\xA0\x80\n\n", "[message]{" FFFD FFFD FFFD "}#\nEND id= retry=-");
  STREAM("data: \xF4\x90\x80\x80\n\n",
         "[message]{" FFFD FFFD FFFD FFFD "}#\nEND id= retry=-");
  STREAM("data: \xF5\n\n", "[message]{" FFFD "}#\nEND id= retry=-");
}

static void test_parse_invalid_utf8_in_field_name(void) {
  STREAM("da\xFFta: x\ndata: y\n\n", "[message]{y}# +da" FFFD "ta=x\nEND id= retry=-");
}

static void test_parse_replacement_starts_no_comment(void) {
  /* A line starting with an invalid byte is a field, not a comment. */
  STREAM("\x80: x\ndata: y\n\n", "[message]{y}# +" FFFD "=x\nEND id= retry=-");
}

/* ------------------------------------------------------- parser: fields */

static void test_parse_event_sets_type(void) {
  STREAM("event: add\ndata: 1\n\n", "[add]{1}#\nEND id= retry=-");
  STREAM("event: a\nevent: b\ndata: 1\n\n", "[b]{1}#\nEND id= retry=-");
}

static void test_parse_type_defaults_to_message(void) {
  STREAM("event:\ndata: 1\n\n", "[message]{1}#\nEND id= retry=-");
}

static void test_parse_type_reset_after_dispatch(void) {
  STREAM("event: e\ndata: 1\n\ndata: 2\n\n",
         "[e]{1}#\n[message]{2}#\nEND id= retry=-");
}

static void test_parse_id_persists_across_events(void) {
  STREAM("id: 1\ndata: a\n\ndata: b\n\n", "[message]{a}#1\n[message]{b}#1\nEND id=1 retry=-");
}

static void test_parse_id_empty_resets(void) {
  STREAM("id: 1\ndata: a\n\nid\ndata: b\n\n", "[message]{a}#1\n[message]{b}#\nEND id= retry=-");
  STREAM("id: 1\ndata: a\n\nid:\ndata: b\n\n", "[message]{a}#1\n[message]{b}#\nEND id= retry=-");
}

static void test_parse_id_with_nul_ignored(void) {
  STREAM("id: 1\ndata: a\n\nid: 2\0003\ndata: b\n\n",
         "[message]{a}#1\n[message]{b}#1\nEND id=1 retry=-");
}

static void test_parse_id_without_data_sets_last_event_id(void) {
  /* The blank line sets the last event ID even when nothing dispatches. */
  STREAM("id: 7\n\n", "END id=7 retry=-");
  STREAM("id: 7\n\ndata: x\n\n", "[message]{x}#7\nEND id=7 retry=-");
}

static void test_parse_id_of_unfinished_block_not_applied(void) {
  STREAM("id: 1\ndata: a\n\nid: 2\ndata: b\n", "[message]{a}#1\nEND id=1 retry=-");
}

static void test_parse_retry_digits_only(void) {
  STREAM("retry: 03000\n\n", "END id= retry=3000");
  STREAM("retry: 1000x\n\n", "END id= retry=-");
  STREAM("retry:\n\n", "END id= retry=-");
  STREAM("retry: -1\n\n", "END id= retry=-");
  STREAM("retry:  5\n\n", "END id= retry=-"); /* " 5" after one space */
  STREAM("retry: 5\nretry: x\n\n", "END id= retry=5");
}

static void test_parse_retry_in_event_block(void) {
  STREAM("retry: 10\ndata: a\n\ndata: b\n\n",
         "[message]{a}# ~10\n[message]{b}#\nEND id= retry=10");
}

static void test_parse_retry_huge_saturates(void) {
  STREAM("retry: 99999999999999999999999\n\n", "END id= retry=9223372036854775807");
}

static void test_parse_unknown_fields_kept_as_extensions(void) {
  STREAM("foo: bar\nx\ndata: 1\nfoo: baz\n\n",
         "[message]{1}# +foo=bar +x= +foo=baz\nEND id= retry=-");
}

static void test_parse_extensions_reset_after_dispatch(void) {
  STREAM("foo: 1\ndata: a\n\ndata: b\n\n",
         "[message]{a}# +foo=1\n[message]{b}#\nEND id= retry=-");
  STREAM("foo: 1\n\ndata: b\n\n", "[message]{b}#\nEND id= retry=-");
}

/* ------------------------------------------------------ parser: dispatch */

static void test_parse_empty_data_no_dispatch(void) {
  STREAM("event: x\n\n", "END id= retry=-");
  STREAM("event: x\n\ndata: y\n\n", "[message]{y}#\nEND id= retry=-");
}

static void test_parse_one_trailing_lf_removed(void) {
  STREAM("data: a\ndata:\n\n", "[message]{a\n}#\nEND id= retry=-");
}

static void test_parse_blank_lines_between_events(void) {
  STREAM("\n\n\ndata: a\n\n\n\ndata: b\n\n",
         "[message]{a}#\n[message]{b}#\nEND id= retry=-");
}

static void test_parse_data_after_last_blank_line_discarded(void) {
  STREAM("data: a\n\ndata: b\n", "[message]{a}#\nEND id= retry=-");
  STREAM("data: a\n\ndata: b", "[message]{a}#\nEND id= retry=-");
  STREAM("data: a\n\ndata: b\r", "[message]{a}#\nEND id= retry=-");
}

static void test_parse_nul_in_data_kept(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  static const uint8_t in[] = "data: a\0b\n\n";
  LB_CHECK_EQ(lb_sse_feed(&p, in, sizeof in - 1), (ptrdiff_t)(sizeof in - 1));
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK(p.data_len == 3 && memcmp(p.data, "a\0b", 3) == 0);
  lb_sse_parser_free(&p);
}

static void test_parse_feed_stops_after_each_event(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  const uint8_t *in = (const uint8_t *)"data: a\n\ndata: b\n\n";
  ptrdiff_t k = lb_sse_feed(&p, in, 18);
  LB_CHECK_EQ(k, 9);
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_MEM(p.data, "a", p.data_len);
  k = lb_sse_feed(&p, in + 9, 9);
  LB_CHECK_EQ(k, 9);
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_MEM(p.data, "b", p.data_len);
  k = lb_sse_feed(&p, NULL, 0);
  LB_CHECK_EQ(k, 0);
  LB_CHECK_EQ(p.ready, 0);
  LB_CHECK_EQ(p.data_len, 0);
  LB_CHECK(p.data != NULL && p.type != NULL && p.id != NULL);
  lb_sse_parser_free(&p);
}

static void test_parse_zero_filled_parser_is_valid(void) {
  lb_sse_parser p;
  memset(&p, 0, sizeof p);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"data: z\n\n", 9), 9);
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_MEM(p.type, "message", p.type_len);
  LB_CHECK_MEM(p.data, "z", p.data_len);
  LB_CHECK_EQ(p.id_len, 0);
  LB_CHECK_EQ(p.event_retry, -1);
  lb_sse_parser_free(&p);
}

/* ------------------------------------------------------ parser: limits */

static void test_parse_event_too_large(void) {
  STREAM_LIM("data: 0123456789\n\n", "[message]{0123456789}#\nEND id= retry=-", 64);
  STREAM_LIM("data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n",
             "ERR ETOOLARGE", 32);
  /* a line that never ends */
  STREAM_LIM("data: 0123456789012345678901234567890123456789", "ERR ETOOLARGE", 16);
}

static void test_parse_empty_extensions_bounded(void) {
  /* Each "x" line costs LB_SSE_EXT_OVERHEAD + 1 bytes. */
  STREAM_LIM("x\nx\nx\nx\nx\n\n", "ERR ETOOLARGE", 3 * (LB_SSE_EXT_OVERHEAD + 1));
  STREAM_LIM("x\nx\n\n", "END id= retry=-", 3 * (LB_SSE_EXT_OVERHEAD + 1));
}

static void test_parse_long_comment_not_buffered(void) {
  char in[4096 + 32];
  size_t n = 0;
  in[n++] = ':';
  memset(in + n, 'c', 4096);
  n += 4096;
  memcpy(in + n, "\ndata: ok\n\n", 11);
  n += 11;
  LB_CHECK(check_stream_lim(in, n, "[message]{ok}#\nEND id= retry=-", 64));
}

static void test_parse_error_is_sticky(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  p.max_event = 8;
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"data: 0123456789", 16), LB_ETOOLARGE);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"\n\n", 2), LB_ETOOLARGE);
  LB_CHECK_EQ(lb_sse_finish(&p), LB_ETOOLARGE);
  lb_sse_parser_reset(&p);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"data: 1\n\n", 9), 9);
  LB_CHECK_EQ(p.ready, 1);
  lb_sse_parser_free(&p);
  LB_CHECK_EQ(p.max_event, 8);
}

static void test_parse_feed_after_finish_is_state_error(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  LB_CHECK_EQ(lb_sse_finish(&p), 0);
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)"x", 1), LB_ESTATE);
  lb_sse_parser_free(&p);
}

static void test_parse_reset_keeps_id_and_retry_strips_bom_again(void) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  const char *a = "\xEF\xBB\xBFid: 5\nretry: 200\ndata: a\n\n";
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)a, strlen(a)), (ptrdiff_t)strlen(a));
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_EQ(lb_sse_finish(&p), 0);
  lb_sse_parser_reset(&p);
  LB_CHECK_MEM(p.id, "5", p.id_len);
  LB_CHECK(p.has_retry && p.retry == 200);
  const char *b = "\xEF\xBB\xBF" "data: b\n\n";
  LB_CHECK_EQ(lb_sse_feed(&p, (const uint8_t *)b, strlen(b)), (ptrdiff_t)strlen(b));
  LB_CHECK_EQ(p.ready, 1);
  LB_CHECK_MEM(p.data, "b", p.data_len);
  /* The new stream's last event ID buffer starts empty (spec: buffers are
   * per stream), and the dispatch copies it. */
  LB_CHECK_EQ(p.id_len, 0);
  lb_sse_parser_free(&p);
}

/* ------------------------------------------------------------- encoder */

static lb_sse_event ev0(void) {
  lb_sse_event e;
  memset(&e, 0, sizeof e);
  e.retry = -1;
  return e;
}

static void check_encoded(const lb_sse_event *e, const char *want) {
  uint8_t out[512];
  size_t want_len = strlen(want);
  LB_CHECK_EQ(lb_sse_event_max_len(e), want_len);
  ptrdiff_t n = lb_sse_encode(e, out, sizeof out);
  LB_CHECK_EQ(n, (ptrdiff_t)want_len);
  if (n >= 0) LB_CHECK_MEM(out, want, (size_t)n);
  lb_buf b = {0};
  LB_CHECK_EQ(lb_buf_append(&b, "pre", 3), 0);
  LB_CHECK_EQ(lb_sse_encode_buf(e, &b), (ptrdiff_t)want_len);
  LB_CHECK(b.len == want_len + 3 && memcmp(b.data + 3, want, want_len) == 0);
  lb_buf_free(&b);
}

static void test_encode_all_fields(void) {
  lb_sse_event e = ev0();
  lb_sse_field x[1] = {{"x-foo", 5, "bar", 3}};
  e.event = "update"; e.event_len = 6;
  e.id = "42"; e.id_len = 2;
  e.retry = 3000;
  e.data = "hello"; e.data_len = 5;
  e.ext = x; e.n_ext = 1;
  check_encoded(&e, "event: update\nid: 42\nretry: 3000\nx-foo: bar\ndata: hello\n\n");
}

static void test_encode_data_only(void) {
  lb_sse_event e = ev0();
  e.data = "x"; e.data_len = 1;
  check_encoded(&e, "data: x\n\n");
}

static void test_encode_data_split_at_cr_lf_crlf(void) {
  lb_sse_event e = ev0();
  e.data = "a\nb\rc\r\nd"; e.data_len = 8;
  check_encoded(&e, "data: a\ndata: b\ndata: c\ndata: d\n\n");
  e.data = "a\n"; e.data_len = 2;
  check_encoded(&e, "data: a\ndata:\n\n");
  e.data = "\r\n\r\n"; e.data_len = 4;
  check_encoded(&e, "data:\ndata:\ndata:\n\n");
}

static void test_encode_empty_data_and_id(void) {
  lb_sse_event e = ev0();
  e.data = ""; e.data_len = 0;
  e.id = ""; e.id_len = 0;
  check_encoded(&e, "id:\ndata:\n\n");
}

static void test_encode_retry_zero_and_absent(void) {
  lb_sse_event e = ev0();
  e.retry = 0;
  check_encoded(&e, "retry: 0\n\n");
  e.retry = -5;
  check_encoded(&e, "\n");
}

static void test_encode_data_leading_space_survives(void) {
  lb_sse_event e = ev0();
  e.data = " x"; e.data_len = 2;
  check_encoded(&e, "data:  x\n\n");
}

static void check_rejected(const lb_sse_event *e) {
  uint8_t out[256];
  memset(out, 'Z', sizeof out);
  LB_CHECK_EQ(lb_sse_encode(e, out, sizeof out), LB_EINVAL);
  LB_CHECK(out[0] == 'Z'); /* nothing written */
  lb_buf b = {0};
  LB_CHECK_EQ(lb_buf_append(&b, "pre", 3), 0);
  LB_CHECK_EQ(lb_sse_encode_buf(e, &b), LB_EINVAL);
  LB_CHECK_EQ(b.len, 3);
  lb_buf_free(&b);
}

static void test_encode_rejects_id_with_cr_lf_nul(void) {
  lb_sse_event e = ev0();
  e.data = "x"; e.data_len = 1;
  e.id = "a\nb"; e.id_len = 3; check_rejected(&e);
  e.id = "a\rb"; e.id_len = 3; check_rejected(&e);
  e.id = "a\0b"; e.id_len = 3; check_rejected(&e);
}

static void test_encode_rejects_event_with_cr_lf(void) {
  lb_sse_event e = ev0();
  e.data = "x"; e.data_len = 1;
  e.event = "a\nb"; e.event_len = 3; check_rejected(&e);
  e.event = "a\rb"; e.event_len = 3; check_rejected(&e);
}

static void test_encode_rejects_bad_extensions(void) {
  lb_sse_event e = ev0();
  lb_sse_field x[1];
  e.ext = x; e.n_ext = 1;
  x[0] = (lb_sse_field){"", 0, "v", 1}; check_rejected(&e);      /* empty name */
  x[0] = (lb_sse_field){"a:b", 3, "v", 1}; check_rejected(&e);   /* colon */
  x[0] = (lb_sse_field){"a\nb", 3, "v", 1}; check_rejected(&e);  /* LF in name */
  x[0] = (lb_sse_field){"ab", 2, "v\r", 2}; check_rejected(&e);  /* CR in value */
  x[0] = (lb_sse_field){"data", 4, "v", 1}; check_rejected(&e);  /* reserved */
  x[0] = (lb_sse_field){"retry", 5, "1", 1}; check_rejected(&e); /* reserved */
}

static void test_encode_no_space_exact_cap(void) {
  lb_sse_event e = ev0();
  e.data = "abc"; e.data_len = 3;
  uint8_t out[16];
  size_t need = lb_sse_event_max_len(&e);
  LB_CHECK_EQ(need, 11);
  LB_CHECK_EQ(lb_sse_encode(&e, out, need - 1), LB_ENOSPACE);
  LB_CHECK_EQ(lb_sse_encode(&e, out, need), 11);
  LB_CHECK_EQ(lb_sse_encode(&e, NULL, 0), LB_ENOSPACE);
}

static void test_encode_comment(void) {
  uint8_t out[64];
  ptrdiff_t n = lb_sse_encode_comment("hi", 2, out, sizeof out);
  LB_CHECK_EQ(n, 6);
  LB_CHECK_MEM(out, ": hi\n\n", (size_t)n);
  LB_CHECK_EQ(lb_sse_comment_max_len("hi", 2), 6);
  n = lb_sse_encode_comment(NULL, 0, out, sizeof out);
  LB_CHECK_MEM(out, ":\n\n", (size_t)n);
  n = lb_sse_encode_comment("a\r\nb\rc\nd", 8, out, sizeof out);
  LB_CHECK_MEM(out, ": a\n: b\n: c\n: d\n\n", (size_t)n);
  LB_CHECK_EQ(lb_sse_encode_comment("abc", 3, out, 6), LB_ENOSPACE);
  lb_buf b = {0};
  LB_CHECK_EQ(lb_sse_encode_comment_buf("x\ny", 3, &b), 9);
  LB_CHECK_MEM(b.data, ": x\n: y\n\n", b.len);
  lb_buf_free(&b);
}

static void test_encode_comment_parses_to_nothing(void) {
  uint8_t out[64];
  ptrdiff_t n = lb_sse_encode_comment("ping\r\npong", 10, out, sizeof out);
  LB_CHECK(n > 0);
  LB_CHECK(check_stream_lim(out, (size_t)n, "END id= retry=-", 0));
}

static void test_encode_parse_round_trip(void) {
  static const char *datas[] = {"plain", "two\nlines", "cr\rline", "crlf\r\nx",
                                "", "\n", " lead", "trail\n", "\xE2\x82\xAC"};
  /* What the reader gives back: line breaks normalised to LF. */
  static const char *backs[] = {"plain", "two\nlines", "cr\nline", "crlf\nx",
                                "", "\n", " lead", "trail\n", "\xE2\x82\xAC"};
  for (size_t i = 0; i < sizeof datas / sizeof *datas; i++) {
    lb_sse_event e = ev0();
    lb_sse_field x[2] = {{"k", 1, " v", 2}, {"k2", 2, "", 0}};
    e.event = "t"; e.event_len = 1;
    e.id = "id-1"; e.id_len = 4;
    e.retry = 7;
    e.data = datas[i]; e.data_len = strlen(datas[i]);
    e.ext = x; e.n_ext = 2;
    lb_buf b = {0};
    LB_CHECK(lb_sse_encode_buf(&e, &b) > 0);
    lb_sse_parser p;
    lb_sse_parser_init(&p);
    ptrdiff_t k = lb_sse_feed(&p, b.data, b.len);
    LB_CHECK_EQ(k, (ptrdiff_t)b.len);
    LB_CHECK_EQ(p.ready, 1);
    LB_CHECK_MEM(p.type, "t", p.type_len);
    LB_CHECK_MEM(p.id, "id-1", p.id_len);
    LB_CHECK_MEM(p.data, backs[i], p.data_len);
    LB_CHECK_EQ(p.event_retry, 7);
    LB_CHECK_EQ(p.n_ext, 2);
    if (p.n_ext == 2) {
      LB_CHECK_MEM(p.ext[0].name, "k", p.ext[0].name_len);
      LB_CHECK_MEM(p.ext[0].value, " v", p.ext[0].value_len);
      LB_CHECK_MEM(p.ext[1].name, "k2", p.ext[1].name_len);
      LB_CHECK_EQ(p.ext[1].value_len, 0);
    }
    lb_sse_parser_free(&p);
    lb_buf_free(&b);
  }
}

int main(void) {
  LB_RUN(test_parse_simple_data_event);
  LB_RUN(test_parse_line_end_lf);
  LB_RUN(test_parse_line_end_crlf);
  LB_RUN(test_parse_line_end_lone_cr);
  LB_RUN(test_parse_line_end_mixed);
  LB_RUN(test_parse_cr_lf_pairs_not_two_breaks);
  LB_RUN(test_parse_cr_at_end_of_feed_waits_for_lf);
  LB_RUN(test_parse_cr_cr_dispatches_at_once);
  LB_RUN(test_parse_comment_ignored);
  LB_RUN(test_parse_field_without_colon_has_empty_value);
  LB_RUN(test_parse_value_loses_one_leading_space);
  LB_RUN(test_parse_value_keeps_later_colons);
  LB_RUN(test_parse_field_names_case_sensitive);
  LB_RUN(test_parse_space_before_colon_is_part_of_name);
  LB_RUN(test_parse_bom_stripped_at_start);
  LB_RUN(test_parse_bom_stripped_only_once);
  LB_RUN(test_parse_bom_later_in_stream_kept);
  LB_RUN(test_parse_partial_bom_is_replaced);
  LB_RUN(test_parse_valid_utf8_kept);
  LB_RUN(test_parse_invalid_byte_replaced);
  LB_RUN(test_parse_truncated_sequence_replaced_once);
  LB_RUN(test_parse_overlong_and_surrogate_replaced);
  LB_RUN(test_parse_invalid_utf8_in_field_name);
  LB_RUN(test_parse_replacement_starts_no_comment);
  LB_RUN(test_parse_event_sets_type);
  LB_RUN(test_parse_type_defaults_to_message);
  LB_RUN(test_parse_type_reset_after_dispatch);
  LB_RUN(test_parse_id_persists_across_events);
  LB_RUN(test_parse_id_empty_resets);
  LB_RUN(test_parse_id_with_nul_ignored);
  LB_RUN(test_parse_id_without_data_sets_last_event_id);
  LB_RUN(test_parse_id_of_unfinished_block_not_applied);
  LB_RUN(test_parse_retry_digits_only);
  LB_RUN(test_parse_retry_in_event_block);
  LB_RUN(test_parse_retry_huge_saturates);
  LB_RUN(test_parse_unknown_fields_kept_as_extensions);
  LB_RUN(test_parse_extensions_reset_after_dispatch);
  LB_RUN(test_parse_empty_data_no_dispatch);
  LB_RUN(test_parse_one_trailing_lf_removed);
  LB_RUN(test_parse_blank_lines_between_events);
  LB_RUN(test_parse_data_after_last_blank_line_discarded);
  LB_RUN(test_parse_nul_in_data_kept);
  LB_RUN(test_parse_feed_stops_after_each_event);
  LB_RUN(test_parse_zero_filled_parser_is_valid);
  LB_RUN(test_parse_event_too_large);
  LB_RUN(test_parse_empty_extensions_bounded);
  LB_RUN(test_parse_long_comment_not_buffered);
  LB_RUN(test_parse_error_is_sticky);
  LB_RUN(test_parse_feed_after_finish_is_state_error);
  LB_RUN(test_parse_reset_keeps_id_and_retry_strips_bom_again);
  LB_RUN(test_encode_all_fields);
  LB_RUN(test_encode_data_only);
  LB_RUN(test_encode_data_split_at_cr_lf_crlf);
  LB_RUN(test_encode_empty_data_and_id);
  LB_RUN(test_encode_retry_zero_and_absent);
  LB_RUN(test_encode_data_leading_space_survives);
  LB_RUN(test_encode_rejects_id_with_cr_lf_nul);
  LB_RUN(test_encode_rejects_event_with_cr_lf);
  LB_RUN(test_encode_rejects_bad_extensions);
  LB_RUN(test_encode_no_space_exact_cap);
  LB_RUN(test_encode_comment);
  LB_RUN(test_encode_comment_parses_to_nothing);
  LB_RUN(test_encode_parse_round_trip);
  return LB_DONE();
}
