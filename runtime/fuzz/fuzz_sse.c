/* fuzz_sse.c: libFuzzer target for the lb_sse parser and encoder.
 *
 * Properties checked on every input:
 *  1. never crash (ASan/UBSan);
 *  2. the events are the same whether the input is fed whole, byte by byte
 *     or in chunks of sizes drawn from the input;
 *  3. re-encoding the parsed events and parsing the result gives the same
 *     events again (the encoder accepts everything the parser produces).
 * The first byte picks the event size limit (so the LB_ETOOLARGE path is
 * exercised) and the chunk pattern; the rest is the stream. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_sse.h"

static void put(lb_buf *o, const void *p, size_t n) {
  uint32_t len = (uint32_t)n;
  if (lb_buf_append(o, &len, sizeof len) || lb_buf_append(o, p, n)) abort();
}

static void render(lb_buf *o, const lb_sse_parser *p) {
  put(o, "E", 1);
  put(o, p->type, p->type_len);
  put(o, p->data, p->data_len);
  put(o, p->id, p->id_len);
  put(o, &p->event_retry, sizeof p->event_retry);
  for (size_t i = 0; i < p->n_ext; i++) {
    put(o, p->ext[i].name, p->ext[i].name_len);
    put(o, p->ext[i].value, p->ext[i].value_len);
  }
}

/* Re-encodes the event the parser holds. */
static void reencode(lb_buf *o, const lb_sse_parser *p) {
  lb_sse_event e;
  memset(&e, 0, sizeof e);
  e.event = p->type;
  e.event_len = p->type_len;
  e.id = p->id;
  e.id_len = p->id_len;
  e.data = p->data;
  e.data_len = p->data_len;
  e.retry = p->event_retry;
  e.ext = p->ext;
  e.n_ext = p->n_ext;
  size_t before = o->len;
  ptrdiff_t n = lb_sse_encode_buf(&e, o);
  if (n < 0 || (size_t)n != lb_sse_event_max_len(&e) || o->len != before + (size_t)n)
    abort();
}

/* Feeds in[0..n) in chunks: chunk sizes cycle through sizes[] (0 = whole).
 * Returns the final error (0 if none) and renders events into out. */
static int run(const uint8_t *in, size_t n, const uint8_t *sizes, size_t nsizes,
               size_t max_event, lb_buf *out, lb_buf *enc, int trailer) {
  lb_sse_parser p;
  lb_sse_parser_init(&p);
  p.max_event = max_event;
  size_t at = 0, k = 0;
  int err = 0;
  while (at < n && !err) {
    size_t c = nsizes ? sizes[k++ % nsizes] % 17 + 1 : n;
    if (c > n - at) c = n - at;
    const uint8_t *q = in + at;
    size_t left = c;
    while (left) {
      ptrdiff_t r = lb_sse_feed(&p, q, left);
      if (r < 0) { err = (int)r; break; }
      if ((size_t)r > left) abort();
      if (p.ready) {
        render(out, &p);
        if (enc) reencode(enc, &p);
      } else if ((size_t)r != left) {
        abort();
      }
      q += r;
      left -= (size_t)r;
    }
    at += c;
  }
  if (!err) err = (int)lb_sse_finish(&p);
  if (trailer) {
    put(out, &err, sizeof err);
    if (!err) put(out, p.id, p.id_len);
  }
  lb_sse_parser_free(&p);
  return err;
}

static void same(const lb_buf *x, const lb_buf *y) {
  if (x->len != y->len || (x->len && memcmp(x->data, y->data, x->len) != 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t max_event = data[0] < 64 ? (size_t)data[0] * 4 + 1 : 0;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  static const uint8_t one[1] = {0};
  lb_buf a = {0}, b = {0}, c = {0}, enc = {0};
  int err = run(in, n, NULL, 0, max_event, &a, &enc, 1);
  run(in, n, one, 1, max_event, &b, NULL, 1);
  run(in, n, in, n < 8 ? n : 8, max_event, &c, NULL, 1);
  same(&a, &b);
  same(&a, &c);
  /* Round trip, without a limit (re-encoding may add bytes per event). */
  if (!err && max_event == 0) {
    lb_buf x = {0}, y = {0};
    run(in, n, NULL, 0, 0, &x, NULL, 0);
    if (run(enc.data, enc.len, NULL, 0, 0, &y, NULL, 0) != 0) abort();
    same(&x, &y);
    lb_buf_free(&x);
    lb_buf_free(&y);
  }
  lb_buf_free(&a);
  lb_buf_free(&b);
  lb_buf_free(&c);
  lb_buf_free(&enc);
  return 0;
}
