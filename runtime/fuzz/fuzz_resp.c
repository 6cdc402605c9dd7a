/* fuzz_resp.c: libFuzzer target for the lb_resp parser and encoder.
 *
 * Properties checked on every input:
 *  1. never crash (ASan/UBSan), and every node lies inside the reply;
 *  2. the replies (and the final code) are the same whether the input is
 *     fed whole or in growing prefixes of sizes drawn from the input, with
 *     a node array that starts small and grows on LB_ENOSPACE;
 *  3. the payloads of a reply, encoded as a command, parse back as an
 *     array of the same bulk strings.
 * The first byte picks the limits (so LB_ETOOLARGE, LB_ETOOMANY and
 * LB_EDEPTH are exercised); the rest is the stream. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_resp.h"

static void put(lb_buf *o, const void *p, size_t n) {
  uint32_t len = (uint32_t)n;
  if (lb_buf_append(o, &len, sizeof len) || lb_buf_append(o, p, n)) abort();
}

static void render(lb_buf *o, const lb_resp_node *nd, size_t n,
                   const uint8_t *reply, size_t rlen) {
  for (size_t i = 0; i < n; i++) {
    if (nd[i].off > rlen || nd[i].len > rlen - nd[i].off) abort();
    put(o, &nd[i].type, sizeof nd[i].type);
    put(o, &nd[i].n, sizeof nd[i].n);
    put(o, reply + nd[i].off, nd[i].len);
  }
}

/* Round trip of one reply's string payloads through the encoder. */
static void reencode(const lb_resp_node *nd, size_t n, const uint8_t *reply) {
  const char *args[64];
  size_t lens[64], k = 0;
  for (size_t i = 0; i < n && k < 64; i++) {
    if (nd[i].len == 0 && nd[i].off == 0) continue;
    args[k] = (const char *)reply + nd[i].off;
    lens[k++] = nd[i].len;
  }
  if (k == 0) return;
  size_t need = lb_resp_command_len(lens, k);
  uint8_t *out = malloc(need);
  if (!out) abort();
  if (lb_resp_encode_command(args, lens, k, out, need) != (ptrdiff_t)need) abort();
  if (k <= 4) {
    /* lb_resp_encode4 writes the same bytes (in a buffer of its bound) */
    const char *a[4] = {"", "", "", ""};
    size_t l[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < k; i++) a[i] = args[i], l[i] = lens[i];
    size_t bound = 4 + 25 * 4 + l[0] + l[1] + l[2] + l[3];
    uint8_t *out4 = malloc(bound);
    if (!out4) abort();
    if (lb_resp_encode4(out4, bound, k, a[0], l[0], a[1], l[1], a[2], l[2], a[3], l[3]) !=
            (ptrdiff_t)need ||
        memcmp(out4, out, need) != 0)
      abort();
    if (lb_resp_encode4(out4, need - 1, k, a[0], l[0], a[1], l[1], a[2], l[2], a[3], l[3]) !=
        LB_ENOSPACE)
      abort();
    free(out4);
  }
  lb_resp_parser p;
  lb_resp_parser_init(&p);
  lb_resp_node back[65];
  if (lb_resp_parse(&p, out, need, back, 65) != (ptrdiff_t)need) abort();
  if (p.n_nodes != k + 1 || back[0].type != '*' || back[0].n != (int64_t)k) abort();
  for (size_t i = 0; i < k; i++)
    if (back[i + 1].len != lens[i] || memcmp(out + back[i + 1].off, args[i], lens[i]) != 0)
      abort();
  free(out);
}

/* Feeds in[0..n): whole (sizes == NULL) or in steps cycling through
 * sizes[]. Node array of initial capacity cap0, grown on LB_ENOSPACE. */
static int run(const lb_resp_parser *lim, const uint8_t *in, size_t n,
               const uint8_t *sizes, size_t nsizes, size_t cap0, lb_buf *out,
               int check_encode) {
  lb_resp_parser p = *lim;
  size_t cap = cap0;
  lb_resp_node *nodes = malloc(cap * sizeof *nodes);
  if (!nodes) abort();
  size_t start = 0, have = nsizes ? 0 : n, k = 0;
  int err = 0;
  for (;;) {
    ptrdiff_t rc = lb_resp_parse(&p, in + start, have - start, nodes, cap);
    if (rc == LB_ENOSPACE) {
      if (p.n_nodes != cap) abort();
      lb_resp_node *bigger = malloc(cap * 2 * sizeof *nodes);
      if (!bigger) abort();
      memcpy(bigger, nodes, cap * sizeof *nodes);
      free(nodes);
      nodes = bigger;
      cap *= 2;
      continue;
    }
    if (rc == LB_EAGAIN) {
      if (have == n) break;
      size_t step = nsizes ? sizes[k++ % nsizes] % 9 + 1 : n;
      have = have + step > n ? n : have + step;
      continue;
    }
    if (rc < 0) { err = (int)rc; break; }
    if ((size_t)rc > have - start || p.n_nodes == 0) abort();
    render(out, nodes, p.n_nodes, in + start, (size_t)rc);
    if (check_encode) reencode(nodes, p.n_nodes, in + start);
    start += (size_t)rc;
  }
  put(out, &err, sizeof err);
  free(nodes);
  return err;
}

static void same(const lb_buf *x, const lb_buf *y) {
  if (x->len != y->len || (x->len && memcmp(x->data, y->data, x->len) != 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lb_resp_parser lim;
  lb_resp_parser_init(&lim);
  if (data[0] & 1) lim.max_bulk = (uint64_t)(data[0] >> 1) + 1;
  if (data[0] & 2) lim.max_count = (uint64_t)(data[0] >> 4) + 1;
  if (data[0] & 4) lim.max_depth = (uint32_t)(data[0] >> 5) + 1;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  static const uint8_t one[1] = {0};
  lb_buf a = {0}, b = {0}, c = {0};
  run(&lim, in, n, NULL, 0, 256, &a, 1);
  run(&lim, in, n, one, 1, 1, &b, 0);
  run(&lim, in, n, in, n < 8 ? n : 8, 3, &c, 0);
  same(&a, &b);
  same(&a, &c);
  lb_buf_free(&a);
  lb_buf_free(&b);
  lb_buf_free(&c);
  return 0;
}
