/*
 * utf8_ref.h: a plain UTF-8 checker (RFC 3629: code point by code point),
 * the reference lb_utf8_validate is compared against by test_ws.c and
 * fuzz_ws.c.
 */
#ifndef LOWBIT_TEST_UTF8_REF_H
#define LOWBIT_TEST_UTF8_REF_H
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"

/* 0 for valid UTF-8, LB_EUTF8 otherwise. */
static inline int utf8_ref(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = p[i], cp;
    size_t need;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; }
    else return LB_EUTF8;
    if (i + need >= n) return LB_EUTF8;
    for (size_t k = 1; k <= need; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return LB_EUTF8;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t minv[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < minv[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return LB_EUTF8;
    i += need + 1;
  }
  return 0;
}

#endif
