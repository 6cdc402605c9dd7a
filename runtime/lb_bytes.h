/*
 * lb_bytes.h: byte-order helpers the C cores share (internal: not part of
 * the public API in include/lowbit/, and not seen by the FFI).
 */
#ifndef LOWBIT_LB_BYTES_H
#define LOWBIT_LB_BYTES_H
#include <stdint.h>
#include <string.h>

/* The 8 bytes at p as a little-endian integer, from any alignment. */
static inline uint64_t lb_load_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

#endif
