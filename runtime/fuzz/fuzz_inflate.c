/*
 * fuzz_inflate.c: lb_inflate against zlib's inflate (raw, window 15) on
 * arbitrary bytes taken as one complete stream. Properties checked (abort
 * on violation):
 *  - the same verdict: zlib ends the stream (Z_STREAM_END) exactly when
 *    lb_inflate returns LB_OK, and then both produced the same bytes and
 *    read the same number of input bytes; zlib's error or running out of
 *    input is LB_EDEFLATE; zlib filling the whole output buffer (2 MiB) is
 *    LB_ENOSPACE, with the same bytes so far;
 *  - on success with L bytes out: a buffer of exactly L bytes decodes the
 *    same, one of L - 1 bytes gives LB_ENOSPACE (ASan sees any write past
 *    either), and the input split in two at a point the data picks decodes
 *    the same through lb_inflate_decode2;
 *  - out_used never exceeds the capacity and in_used never the input.
 */
#include "lowbit/lb_base.h"
#include "lowbit/lb_inflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

#define CAP ((size_t)2 << 20)

static lb_inflate *st;
static uint8_t *zout, *lout;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (st == NULL) {
    st = lb_inflate_new();
    zout = malloc(CAP);
    lout = malloc(CAP);
    CHECK(st != NULL && zout != NULL && lout != NULL);
  }
  /* A copy of exactly size bytes: reads past it are caught. */
  uint8_t *in = malloc(size ? size : 1);
  memcpy(in, data, size);

  z_stream z;
  memset(&z, 0, sizeof z);
  CHECK(inflateInit2(&z, -15) == Z_OK);
  z.next_in = in;
  z.avail_in = (uInt)size;
  z.next_out = zout;
  z.avail_out = (uInt)CAP;
  int zr = inflate(&z, Z_FINISH);
  size_t zn = CAP - z.avail_out, zused = size - z.avail_in;
  inflateEnd(&z);

  lb_inflate_result res;
  int r = lb_inflate_decode(st, in, size, lout, CAP, &res);
  CHECK(res.out_used <= CAP && res.in_used <= size);
  if (zr == Z_STREAM_END) {
    CHECK(r == LB_OK);
    CHECK(res.out_used == zn && res.in_used == zused);
    CHECK(zn == 0 || memcmp(zout, lout, zn) == 0);
  } else if (zr == Z_DATA_ERROR || zn < CAP) {
    CHECK(r == LB_EDEFLATE);
  } else {
    /* zlib stopped with its buffer full; so do we, unless the input ends
     * right there too (truncated) */
    CHECK(r == LB_ENOSPACE || (r == LB_EDEFLATE && zused == size));
    CHECK(memcmp(zout, lout, res.out_used) == 0);
  }

  if (r == LB_OK) {
    size_t n = res.out_used;
    /* exact room, and one byte short */
    uint8_t *b = malloc(n ? n : 1);
    CHECK(lb_inflate_decode(st, in, size, n ? b : NULL, n, &res) == LB_OK);
    CHECK(res.out_used == n && (n == 0 || memcmp(b, zout, n) == 0));
    if (n > 0) {
      CHECK(lb_inflate_decode(st, in, size, b, n - 1, &res) == LB_ENOSPACE);
      CHECK(res.out_used <= n - 1 && memcmp(b, zout, res.out_used) == 0);
    }
    free(b);
    /* in two parts, each its own allocation */
    size_t k = size ? (size_t)data[size - 1] * 7919 % (size + 1) : 0;
    uint8_t *p1 = malloc(k ? k : 1), *p2 = malloc(size - k ? size - k : 1);
    memcpy(p1, in, k);
    memcpy(p2, in + k, size - k);
    CHECK(lb_inflate_decode2(st, p1, k, p2, size - k, lout, CAP, &res) == LB_OK);
    CHECK(res.out_used == n && res.in_used == zused && (n == 0 || memcmp(lout, zout, n) == 0));
    free(p1);
    free(p2);
  }
  free(in);
  return 0;
}
