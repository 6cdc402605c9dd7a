/*
 * lb_inflate.h: a raw DEFLATE (RFC 1951) decoder for whole buffers,
 * sans-I/O.
 *
 * - One call decodes a complete stream, from its first block to the end of
 *   its final (BFINAL) block, held entirely in memory, into an output buffer
 *   the caller provides. There is no preset dictionary: a match may not
 *   reach before the start of the output. Nothing is kept between calls
 *   except the tables for the fixed Huffman codes, built once by
 *   lb_inflate_new.
 * - The decode call never allocates; the state (about 10 KiB, tables for
 *   the current block) is allocated once by lb_inflate_new.
 * - Checks, as zlib's inflate does: block type 3, stored-block LEN/NLEN,
 *   more than 286 literal/length or 30 distance codes, a repeat code with
 *   nothing to repeat or past the end of the lengths, no code for
 *   end-of-block, over-subscribed code sets and incomplete ones (except a
 *   set with a single code of length 1, allowed for literal/length and
 *   distance codes, and an empty distance code set), literal/length codes
 *   286-287 and distance codes 30-31 (fixed blocks), distances before the
 *   start of the output.
 *
 * A state is not thread-safe; use one per thread (it may be reused for any
 * number of streams).
 */
#ifndef LOWBIT_LB_INFLATE_H
#define LOWBIT_LB_INFLATE_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

/* Opaque decoder state: Huffman tables. */
typedef struct lb_inflate lb_inflate;

/* What a decode call did. */
typedef struct lb_inflate_result {
  size_t in_used;  /* input bytes consumed, the partly used last byte included */
  size_t out_used; /* bytes written to out[0..out_used), all of them decoded output */
} lb_inflate_result;

/* A new decoder state, or NULL when memory runs out. */
lb_inflate *lb_inflate_new(void);

/* Releases the state; NULL is allowed. */
void lb_inflate_free(lb_inflate *st);

/*
 * Decodes the raw DEFLATE stream at the start of in[0..n) into
 * out[0..cap). Returns
 *   LB_OK        the final block ended: res->out_used bytes were produced,
 *                res->in_used bytes of input read (what follows is not
 *                looked at);
 *   LB_ENOSPACE  the output does not fit in cap bytes: out[0..out_used)
 *                holds the output decoded before the symbol or stored block
 *                that did not fit; nothing is written at or past out + cap
 *                (bytes of out past out_used may have been written);
 *   LB_EDEFLATE  corrupt data, or the input ends before the final block
 *                does (res->out_used as for LB_ENOSPACE; res->in_used is
 *                about where the problem was found).
 * res may be NULL.
 */
int lb_inflate_decode(lb_inflate *st, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
                      lb_inflate_result *res);

/*
 * lb_inflate_decode on the concatenation in[0..n) || in2[0..n2), without
 * copying it: for a stream whose last bytes live elsewhere (RFC 7692's
 * appended 00 00 ff ff). in_used counts bytes of the concatenation.
 */
int lb_inflate_decode2(lb_inflate *st, const uint8_t *in, size_t n, const uint8_t *in2,
                       size_t n2, uint8_t *out, size_t cap, lb_inflate_result *res);

#endif
