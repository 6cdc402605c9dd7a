/* test_resp.c: lb_resp parser (RESP2 and RESP3) and command encoder.
 *
 * Every reply vector goes through check_reply(), which parses it whole,
 * byte by byte with one parser (each prefix in a fresh allocation of
 * exactly its size, so ASan catches any read past the bytes given and the
 * offsets are proven independent of the buffer's address), every
 * truncated prefix with a fresh parser (LB_EAGAIN), and with a node array
 * that starts at one slot and grows on LB_ENOSPACE. The nodes are rendered
 * as text and compared with the expected rendering each time. */
#include "lb_test.h"
#include "lowbit/lb_resp.h"
#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------ helpers */

typedef struct rendered {
  char s[8192];
  size_t len;
} rendered;

static void r_put(rendered *r, const void *p, size_t n) {
  if (r->len + n >= sizeof r->s) n = sizeof r->s - 1 - r->len;
  memcpy(r->s + r->len, p, n);
  r->len += n;
  r->s[r->len] = 0;
}

/* Each node as "<type><n>" (numbers, aggregates, null) or "<type>'text'"
 * (string types), separated by spaces; a verbatim string shows its format
 * as "=txt:'text'". */
static void render(rendered *r, const lb_resp_node *nd, size_t n,
                   const uint8_t *buf) {
  char tmp[64];
  r->len = 0;
  r->s[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (i) r_put(r, " ", 1);
    char t = (char)nd[i].type;
    r_put(r, &t, 1);
    switch (t) {
    case '+': case '-': case '$': case ',': case '(': case '!': case '=':
      if (t == '=') {
        r_put(r, buf + nd[i].off - 4, 3);
        r_put(r, ":", 1);
      }
      r_put(r, "'", 1);
      r_put(r, buf + nd[i].off, nd[i].len);
      r_put(r, "'", 1);
      LB_CHECK_EQ(nd[i].n, nd[i].len);
      break;
    default:
      snprintf(tmp, sizeof tmp, "%lld", (long long)nd[i].n);
      r_put(r, tmp, strlen(tmp));
    }
  }
}

static lb_resp_node nodes[4096];

static void check_reply(const char *wire, size_t wlen, const char *want) {
  const uint8_t *w = (const uint8_t *)wire;
  lb_resp_parser p;
  rendered r;
  /* whole */
  lb_resp_parser_init(&p);
  ptrdiff_t rc = lb_resp_parse(&p, w, wlen, nodes, 4096);
  LB_CHECK_EQ(rc, wlen);
  render(&r, nodes, p.n_nodes, w);
  if (strcmp(r.s, want) != 0) {
    fprintf(stderr, "  got  %s\n  want %s\n", r.s, want);
    LB_CHECK(0);
  }
  /* byte by byte, one parser, each prefix in its own exact allocation */
  lb_resp_parser_init(&p);
  for (size_t k = 1; k <= wlen; k++) {
    uint8_t *cp = malloc(k);
    memcpy(cp, w, k);
    rc = lb_resp_parse(&p, cp, k, nodes, 4096);
    if (k < wlen) {
      LB_CHECK_EQ(rc, LB_EAGAIN);
    } else {
      LB_CHECK_EQ(rc, wlen);
      render(&r, nodes, p.n_nodes, cp);
      LB_CHECK(strcmp(r.s, want) == 0);
    }
    free(cp);
  }
  /* every truncated prefix, fresh parser */
  for (size_t k = 0; k < wlen; k++) {
    uint8_t *cp = malloc(k + 1);
    memcpy(cp, w, k);
    lb_resp_parser_init(&p);
    LB_CHECK_EQ(lb_resp_parse(&p, cp, k, nodes, 4096), LB_EAGAIN);
    free(cp);
  }
  /* node array growing from one slot on LB_ENOSPACE */
  lb_resp_parser_init(&p);
  size_t cap = 1;
  lb_resp_node *arr = malloc(sizeof *arr);
  for (int guard = 0; guard < 10000; guard++) {
    rc = lb_resp_parse(&p, w, wlen, arr, cap);
    if (rc != LB_ENOSPACE) break;
    LB_CHECK_EQ(p.n_nodes, cap);
    lb_resp_node *bigger = malloc(sizeof *arr * (cap + 1));
    memcpy(bigger, arr, sizeof *arr * cap);
    free(arr);
    arr = bigger;
    cap++;
  }
  LB_CHECK_EQ(rc, wlen);
  render(&r, arr, p.n_nodes, w);
  LB_CHECK(strcmp(r.s, want) == 0);
  free(arr);
}

#define REPLY(wire, want) check_reply(wire, sizeof(wire) - 1, want)

/* A malformed reply, named by its defect: the parse must fail with code,
 * whole and when fed byte by byte (the same code, never a crash). */
static void check_bad(const char *defect, const char *wire, size_t wlen,
                      const lb_resp_parser *limits, int code) {
  lb_resp_parser p;
  if (limits) p = *limits; else lb_resp_parser_init(&p);
  ptrdiff_t rc = lb_resp_parse(&p, (const uint8_t *)wire, wlen, nodes, 4096);
  if (rc != code) fprintf(stderr, "  defect: %s (whole: %td)\n", defect, rc);
  LB_CHECK_EQ(rc, code);
  if (limits) p = *limits; else lb_resp_parser_init(&p);
  rc = LB_EAGAIN;
  for (size_t k = 1; k <= wlen && rc == LB_EAGAIN; k++) {
    uint8_t *cp = malloc(k);
    memcpy(cp, wire, k);
    rc = lb_resp_parse(&p, cp, k, nodes, 4096);
    free(cp);
  }
  if (rc != code) fprintf(stderr, "  defect: %s (byte by byte: %td)\n", defect, rc);
  LB_CHECK_EQ(rc, code);
}

#define BAD(defect, wire, code) check_bad(defect, wire, sizeof(wire) - 1, NULL, code)

/* -------------------------------------------------------------- tests */

static void test_resp2_types(void) {
  REPLY("+OK\r\n", "+'OK'");
  REPLY("+\r\n", "+''");
  REPLY("-ERR unknown command 'x'\r\n", "-'ERR unknown command 'x''");
  REPLY(":0\r\n", ":0");
  REPLY(":-42\r\n", ":-42");
  REPLY(":+7\r\n", ":7");
  REPLY(":9223372036854775807\r\n", ":9223372036854775807");
  REPLY(":-9223372036854775808\r\n", ":-9223372036854775808");
  /* 18 digits (the fast path's most), 19 (the general path's) */
  REPLY(":-123456789012345678\r\n", ":-123456789012345678");
  REPLY(":1234567890123456789\r\n", ":1234567890123456789");
  REPLY(":-0\r\n", ":0");
  REPLY("$5\r\nhello\r\n", "$'hello'");
  REPLY("$0\r\n\r\n", "$''");
  REPLY("$4\r\na\r\nb\r\n", "$'a\r\nb'"); /* binary-safe */
  REPLY("$-1\r\n", "_0");
  REPLY("*-1\r\n", "_0");
  REPLY("*0\r\n", "*0");
  REPLY("*3\r\n:1\r\n$3\r\nfoo\r\n$-1\r\n", "*3 :1 $'foo' _0");
  REPLY("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n", "*2 *2 :1 :2 *1 +'x'");
  REPLY("*2\r\n-ERR a\r\n+OK\r\n", "*2 -'ERR a' +'OK'");
}

static void test_resp3_types(void) {
  REPLY("_\r\n", "_0");
  REPLY("#t\r\n", "#1");
  REPLY("#f\r\n", "#0");
  REPLY(",1.23\r\n", ",'1.23'");
  REPLY(",-10\r\n", ",'-10'");
  REPLY(",1e-5\r\n", ",'1e-5'");
  REPLY(",.5E+3\r\n", ",'.5E+3'");
  REPLY(",inf\r\n", ",'inf'");
  REPLY(",-inf\r\n", ",'-inf'");
  REPLY(",nan\r\n", ",'nan'");
  REPLY("(3492890328409238509324850943850943825024385\r\n",
        "('3492890328409238509324850943850943825024385'");
  REPLY("(-12\r\n", "('-12'");
  REPLY("!21\r\nSYNTAX invalid syntax\r\n", "!'SYNTAX invalid syntax'");
  REPLY("=15\r\ntxt:Some string\r\n", "=txt:'Some string'");
  REPLY("=4\r\nmkd:\r\n", "=mkd:''");
  REPLY("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", "%2 +'first' :1 +'second' :2");
  REPLY("%0\r\n", "%0");
  REPLY("~3\r\n+a\r\n+b\r\n#t\r\n", "~3 +'a' +'b' #1");
  REPLY(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        ">3 $'message' $'ch' $'hi'");
  /* attributes: before a top-level reply and before an element */
  REPLY("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",
        "|1 +'key-popularity' %1 $'a' ,'0.19' *2 :2039123 :9543892");
  REPLY("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", "*2 :1 |1 +'ttl' :3600 :2");
  REPLY("|0\r\n+OK\r\n", "|0 +'OK'");
  REPLY("|1\r\n+a\r\n|1\r\n+b\r\n:1\r\n:2\r\n+v\r\n", "|1 +'a' |1 +'b' :1 :2 +'v'");
  /* nested mixes */
  REPLY("%1\r\n$4\r\nlist\r\n*2\r\n~1\r\n_\r\n%1\r\n#f\r\n,2.5\r\n",
        "%1 $'list' *2 ~1 _0 %1 #0 ,'2.5'");
}

static void test_pipelined_replies(void) {
  /* Three replies back to back: each parse returns one reply's length and
   * the parser is ready for the next. */
  const char *s = "+OK\r\n$3\r\nbar\r\n:7\r\n";
  const uint8_t *b = (const uint8_t *)s;
  size_t len = strlen(s), at = 0;
  lb_resp_parser p;
  lb_resp_parser_init(&p);
  rendered r;
  const char *want[] = {"+'OK'", "$'bar'", ":7"};
  for (int i = 0; i < 3; i++) {
    ptrdiff_t rc = lb_resp_parse(&p, b + at, len - at, nodes, 4096);
    LB_CHECK(rc > 0);
    if (rc <= 0) return;
    render(&r, nodes, p.n_nodes, b + at);
    LB_CHECK(strcmp(r.s, want[i]) == 0);
    at += (size_t)rc;
  }
  LB_CHECK_EQ(at, len);
  LB_CHECK_EQ(lb_resp_parse(&p, b + at, 0, nodes, 4096), LB_EAGAIN);
}

static void test_malformed(void) {
  BAD("unknown type byte", "?3\r\n", LB_EPROTO);
  BAD("inline text instead of a reply", "hello\r\n", LB_EPROTO);
  BAD("LF without CR", "+OK\n", LB_EPROTO);
  BAD("empty line", "\r\n", LB_EPROTO);
  BAD("CR inside a simple string", "+O\rK\r\n", LB_EPROTO);
  BAD("integer without digits", ":\r\n", LB_EPROTO);
  BAD("integer sign only", ":-\r\n", LB_EPROTO);
  BAD("integer with a bare LF", ":12\n\r\n", LB_EPROTO);
  BAD("integer with two signs", ":--1\r\n", LB_EPROTO);
  BAD("integer with a letter", ":12a\r\n", LB_EPROTO);
  BAD("integer overflow", ":9223372036854775808\r\n", LB_EPROTO);
  BAD("integer of 20 digits", ":00000000000000000001\r\n", LB_EPROTO);
  BAD("negative bulk length", "$-2\r\n", LB_EPROTO);
  BAD("bulk length with a sign", "$+3\r\nabc\r\n", LB_EPROTO);
  BAD("bulk length empty", "$\r\nabc\r\n", LB_EPROTO);
  BAD("bulk payload longer than its length", "$3\r\nabcd\r\n", LB_EPROTO);
  BAD("bulk payload without CRLF", "$3\r\nabcXY", LB_EPROTO);
  BAD("simple string with a bare LF", "+O\nK\r\n", LB_EPROTO);
  BAD("simple string with a bare CR", "+O\rK\r\n", LB_EPROTO);
  BAD("bulk length with a bare LF", "$3\nabc\r\n", LB_EPROTO);
  BAD("bulk payload shorter than its length", "$3\r\nab\r\n\r\n", LB_EPROTO);
  BAD("negative array count", "*-2\r\n", LB_EPROTO);
  BAD("null map (not RESP)", "%-1\r\n", LB_EPROTO);
  BAD("array count with a space", "* 1\r\n:1\r\n", LB_EPROTO);
  BAD("boolean other than t/f", "#x\r\n", LB_EPROTO);
  BAD("boolean too long", "#tt\r\n", LB_EPROTO);
  BAD("null with text", "_x\r\n", LB_EPROTO);
  BAD("double with two dots", ",1.2.3\r\n", LB_EPROTO);
  BAD("double empty", ",\r\n", LB_EPROTO);
  BAD("double exponent without digits", ",1e\r\n", LB_EPROTO);
  BAD("double word", ",infinity\r\n", LB_EPROTO);
  BAD("big number with a letter", "(12x\r\n", LB_EPROTO);
  BAD("big number sign only", "(-\r\n", LB_EPROTO);
  BAD("verbatim without format", "=3\r\nabc\r\n", LB_EPROTO);
  BAD("verbatim without colon", "=5\r\nabcde\r\n", LB_EPROTO);
  BAD("streamed string (unsupported)", "$?\r\n;4\r\nHell\r\n;0\r\n", LB_EPROTO);
  BAD("streamed aggregate (unsupported)", "*?\r\n:1\r\n.\r\n", LB_EPROTO);
  BAD("bad element inside an array", "*2\r\n:1\r\n:x\r\n", LB_EPROTO);
  BAD("bad key inside a map", "%1\r\n#y\r\n:1\r\n", LB_EPROTO);
}

static void test_limits(void) {
  lb_resp_parser lim;
  /* bulk length: refused from its header, before the payload arrives */
  lb_resp_parser_init(&lim);
  lim.max_bulk = 10;
  check_bad("bulk longer than max_bulk", "$11\r\n", 5, &lim, LB_ETOOLARGE);
  check_reply("$10\r\n0123456789\r\n", 17, "$'0123456789'");
  lb_resp_parser p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"$10\r\n0123456789\r\n", 17, nodes, 4096), 17);
  check_bad("simple string longer than max_bulk", "+01234567890\r\n", 14, &lim, LB_ETOOLARGE);
  check_bad("line without CRLF past max_bulk", "+0123456789012345", 17, &lim, LB_ETOOLARGE);
  check_bad("verbatim longer than max_bulk", "=20\r\n", 5, &lim, LB_ETOOLARGE);
  /* found by fuzz_resp: a long line ending in a bare LF gave EPROTO whole
   * but ETOOLARGE split; the limit now wins however the bytes arrive */
  check_bad("line over max_bulk ending without CR", "+0123456789012x\n", 16, &lim, LB_ETOOLARGE);
  /* the short-header fast path keeps the limits: a header line longer
   * than max_bulk + 2, a simple string or bulk over max_bulk */
  lb_resp_parser_init(&lim);
  lim.max_bulk = 1;
  check_bad("+OK over max_bulk 1", "+OK\r\n", 5, &lim, LB_ETOOLARGE);
  check_bad("$2 over max_bulk 1", "$2\r\nab\r\n", 8, &lim, LB_ETOOLARGE);
  lim.max_bulk = 2;
  p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"$2\r\nab\r\n", 8, nodes, 4096), 8);
  p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"+OK\r\n", 5, nodes, 4096), 5);
  lim.max_bulk = 10;
  /* the default: 512 MiB */
  BAD("bulk of 512 MiB + 1", "$536870913\r\n", LB_ETOOLARGE);
  BAD("bulk length of 30 digits", "$999999999999999999999999999999\r\n", LB_ETOOLARGE);
  lb_resp_parser_init(&p);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"$536870912\r\n", 12, nodes, 4096), LB_EAGAIN);
  /* count */
  lb_resp_parser_init(&lim);
  lim.max_count = 3;
  check_bad("array of max_count + 1", "*4\r\n", 4, &lim, LB_ETOOMANY);
  check_bad("map of max_count + 1 pairs", "%4\r\n", 4, &lim, LB_ETOOMANY);
  check_bad("push count of 25 digits", ">9999999999999999999999999\r\n", 28, &lim, LB_ETOOMANY);
  p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"%3\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n", 28, nodes, 4096), 28);
  BAD("array count of 2^64", "*18446744073709551616\r\n", LB_ETOOMANY);
  /* depth: max_depth nested arrays parse, one more fails */
  lb_resp_parser_init(&lim);
  lim.max_depth = 4;
  p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 20, nodes, 4096), 20);
  check_bad("nesting of max_depth + 1", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 24, &lim, LB_EDEPTH);
  check_bad("attribute nesting counts too", "|1\r\n|1\r\n|1\r\n|1\r\n|1\r\n", 20, &lim, LB_EDEPTH);
  /* empty aggregates do not nest */
  p = lim;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", 20, nodes, 4096), 20);
  /* default depth 32; max_depth above LB_RESP_MAX_DEPTH is capped */
  char deep[8 * 70];
  size_t n = 0;
  for (int i = 0; i < 65; i++) { memcpy(deep + n, "*1\r\n", 4); n += 4; }
  memcpy(deep + n, ":1\r\n", 4); n += 4;
  lb_resp_parser_init(&p);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)deep, n, nodes, 4096), LB_EDEPTH);
  lb_resp_parser_init(&p);
  p.max_depth = 1000;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)deep, n, nodes, 4096), LB_EDEPTH);
  lb_resp_parser_init(&p);
  p.max_depth = 1000;
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)deep + 4, n - 4, nodes, 4096), (ptrdiff_t)n - 4);
}

static void test_usage(void) {
  lb_resp_parser p;
  lb_resp_parser_init(&p);
  LB_CHECK_EQ(lb_resp_parse(NULL, (const uint8_t *)"+", 1, nodes, 1), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_parse(&p, NULL, 1, nodes, 1), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"+", 1, NULL, 1), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_parse(&p, NULL, 0, nodes, 1), LB_EAGAIN);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"+OK\r\n", 5, nodes, 0), LB_ENOSPACE);
  /* reset forgets a reply in progress */
  lb_resp_parser_init(&p);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)"*2\r\n:1\r\n", 8, nodes, 8), LB_EAGAIN);
  lb_resp_parser_reset(&p);
  LB_CHECK_EQ(lb_resp_parse(&p, (const uint8_t *)":5\r\n", 4, nodes, 8), 4);
  LB_CHECK_EQ(p.n_nodes, 1);
  LB_CHECK_EQ(nodes[0].n, 5);
}

static void test_encode(void) {
  const char *args[] = {"SET", "key", "a\r\nb", ""};
  size_t lens[] = {3, 3, 4, 0};
  const char *want = "*4\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\na\r\nb\r\n$0\r\n\r\n";
  size_t wl = strlen(want);
  LB_CHECK_EQ(lb_resp_command_len(lens, 4), wl);
  uint8_t out[128];
  LB_CHECK_EQ(lb_resp_encode_command(args, lens, 4, out, sizeof out), wl);
  LB_CHECK_MEM(out, want, wl);
  /* exact fit and one byte short */
  uint8_t *tight = malloc(wl);
  LB_CHECK_EQ(lb_resp_encode_command(args, lens, 4, tight, wl), wl);
  LB_CHECK_EQ(lb_resp_encode_command(args, lens, 4, tight, wl - 1), LB_ENOSPACE);
  free(tight);
  /* 10 and 100 arguments: the count takes more digits */
  const char *many[100];
  size_t ml[100];
  for (int i = 0; i < 100; i++) { many[i] = "xxxxxxxxxxxx"; ml[i] = (size_t)(i % 13); }
  static uint8_t big[8192];
  ptrdiff_t n = lb_resp_encode_command(many, ml, 100, big, sizeof big);
  LB_CHECK_EQ(n, lb_resp_command_len(ml, 100));
  /* the encoding parses back as an array of the same bulk strings */
  lb_resp_parser p;
  lb_resp_parser_init(&p);
  LB_CHECK_EQ(lb_resp_parse(&p, big, (size_t)n, nodes, 4096), n);
  LB_CHECK_EQ(p.n_nodes, 101);
  LB_CHECK_EQ(nodes[0].type, '*');
  LB_CHECK_EQ(nodes[0].n, 100);
  for (int i = 0; i < 100; i++) {
    LB_CHECK_EQ(nodes[1 + i].type, '$');
    LB_CHECK_EQ(nodes[1 + i].len, ml[i]);
  }
  /* misuse */
  LB_CHECK_EQ(lb_resp_encode_command(args, lens, 0, out, sizeof out), LB_EINVAL);
  const char *nul[] = {NULL};
  size_t one[] = {1}, zero[] = {0};
  LB_CHECK_EQ(lb_resp_encode_command(nul, one, 1, out, sizeof out), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_encode_command(nul, zero, 1, out, sizeof out), 10);
  LB_CHECK_MEM(out, "*1\r\n$0\r\n\r\n", 10);
  size_t huge[] = {SIZE_MAX - 4};
  LB_CHECK_EQ(lb_resp_command_len(huge, 1), SIZE_MAX);
}

static void test_encode4(void) {
  /* the same bytes as lb_resp_encode_command for 1..4 arguments, lengths
   * of 0 to 5 digits */
  static char big[12345];
  memset(big, 'x', sizeof big);
  const char *vals[] = {"", "GET", "0123456789", big, big, big};
  size_t vlens[] = {0, 3, 10, 99, 100, 12345};
  static uint8_t a[60000], b[60000];
  for (size_t n = 1; n <= 4; n++) {
    for (size_t k = 0; k < 6; k++) {
      const char *args[4];
      size_t lens[4];
      for (size_t i = 0; i < 4; i++) {
        args[i] = vals[(k + i) % 6];
        lens[i] = vlens[(k + i) % 6];
      }
      ptrdiff_t want = lb_resp_encode_command(args, lens, n, a, sizeof a);
      LB_CHECK(want > 0);
      ptrdiff_t got = lb_resp_encode4(b, sizeof b, n, args[0], lens[0], args[1], lens[1],
                                      args[2], lens[2], args[3], lens[3]);
      LB_CHECK_EQ(got, want);
      LB_CHECK(memcmp(b, a, (size_t)want) == 0);
      /* exact fit, and one byte short (out untouched) */
      LB_CHECK_EQ(lb_resp_encode4(b, (size_t)want, n, args[0], lens[0], args[1], lens[1],
                                  args[2], lens[2], args[3], lens[3]), want);
      b[0] = 0;
      LB_CHECK_EQ(lb_resp_encode4(b, (size_t)want - 1, n, args[0], lens[0], args[1], lens[1],
                                  args[2], lens[2], args[3], lens[3]), LB_ENOSPACE);
      LB_CHECK_EQ(b[0], 0);
    }
  }
  /* arguments past n are ignored, even NULL with a length */
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 1, "PING", 4, NULL, 7, NULL, 9, NULL, 1), 14);
  LB_CHECK_MEM(b, "*1\r\n$4\r\nPING\r\n", 14);
  /* misuse */
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 0, "a", 1, NULL, 0, NULL, 0, NULL, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 5, "a", 1, "a", 1, "a", 1, "a", 1), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 2, "a", 1, NULL, 1, NULL, 0, NULL, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 2, "a", 1, NULL, 0, NULL, 0, NULL, 0), 17);
  LB_CHECK_EQ(lb_resp_encode4(b, sizeof b, 1, "a", SIZE_MAX - 4, NULL, 0, NULL, 0, NULL, 0),
              LB_ENOSPACE);
}

/* Every argument length from 0 to 40 (the short copies have cases by
 * length) in each position: the bytes as RESP spells them, built here by
 * hand. Each argument and the output are heap blocks of exactly their
 * size, so that ASan sees any read or write past either. */
static void test_encode_lengths(void) {
  for (size_t l = 0; l <= 40; l++) {
    for (size_t pos = 0; pos < 3; pos++) {
      char *arg = malloc(l ? l : 1);
      for (size_t i = 0; i < l; i++) arg[i] = (char)('a' + (i * 7 + l) % 26);
      const char *args[3] = {"SET", "k", "v"};
      size_t lens[3] = {3, 1, 1};
      args[pos] = arg;
      lens[pos] = l;
      char want[200];
      size_t w = (size_t)snprintf(want, sizeof want, "*3\r\n");
      for (size_t i = 0; i < 3; i++) {
        w += (size_t)snprintf(want + w, sizeof want - w, "$%zu\r\n", lens[i]);
        memcpy(want + w, args[i], lens[i]);
        w += lens[i];
        memcpy(want + w, "\r\n", 2);
        w += 2;
      }
      uint8_t *out = malloc(w);
      LB_CHECK_EQ(lb_resp_encode4(out, w, 3, args[0], lens[0], args[1], lens[1], args[2], lens[2], NULL, 0),
                  (ptrdiff_t)w);
      LB_CHECK(memcmp(out, want, w) == 0);
      memset(out, 0, w);
      LB_CHECK_EQ(lb_resp_encode_command(args, lens, 3, out, w), (ptrdiff_t)w);
      LB_CHECK(memcmp(out, want, w) == 0);
      free(out);
      free(arg);
    }
  }
}

static void test_random_splits(void) {
  /* A pipeline of mixed replies fed in random chunk sizes gives the same
   * replies as fed whole. */
  const char *s =
      "*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n,1.5\r\n_\r\n"
      ":123\r\n"
      ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
      "|1\r\n+a\r\n#t\r\n$5\r\nhello\r\n"
      "=8\r\ntxt:abcd\r\n"
      "!3\r\nERR\r\n";
  size_t len = strlen(s);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 200; round++) {
    lb_resp_parser p;
    lb_resp_parser_init(&p);
    size_t start = 0, have = 0;
    int replies = 0;
    while (start < len) {
      size_t step = (size_t)(lb_test_xorshift(&seed) % 7);
      have = have + step > len ? len : have + step;
      for (;;) {
        ptrdiff_t rc = lb_resp_parse(&p, (const uint8_t *)s + start, have - start, nodes, 4096);
        if (rc == LB_EAGAIN) break;
        LB_CHECK(rc > 0);
        if (rc <= 0) return;
        replies++;
        start += (size_t)rc;
      }
      if (have == len && start < len) { LB_CHECK(0); return; }
    }
    LB_CHECK_EQ(replies, 6);
  }
}

int main(void) {
  LB_RUN(test_resp2_types);
  LB_RUN(test_resp3_types);
  LB_RUN(test_pipelined_replies);
  LB_RUN(test_malformed);
  LB_RUN(test_limits);
  LB_RUN(test_usage);
  LB_RUN(test_encode);
  LB_RUN(test_encode4);
  LB_RUN(test_encode_lengths);
  LB_RUN(test_random_splits);
  return LB_DONE();
}
