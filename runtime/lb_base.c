/* lb_base.c: error table, byte buffer, constant-time compare. */
#include "lowbit/lb_base.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#ifndef LB_VERSION
#define LB_VERSION "0.1.0"
#endif

const char *lb_strerror(int code) {
  switch (code) {
#define LB__ERR_MSG(name, value, msg) case value: return msg;
    LB_ERRNO_MAP(LB__ERR_MSG)
#undef LB__ERR_MSG
  case 0: return "success";
  default: return "unknown error";
  }
}

const char *lb_err_name(int code) {
  switch (code) {
#define LB__ERR_NAME(name, value, msg) case value: return #name;
    LB_ERRNO_MAP(LB__ERR_NAME)
#undef LB__ERR_NAME
  case 0: return "OK";
  default: return "UNKNOWN";
  }
}

const char *lb_version(void) { return LB_VERSION; }

uint8_t *lb_buf_reserve(lb_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len) return NULL; /* len + extra would wrap */
  size_t need = b->len + extra;
  if (need <= b->cap) return b->data + b->len;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) { cap = need; break; }
    cap *= 2;
  }
  uint8_t *p = realloc(b->data, cap);
  if (p == NULL) return NULL;
  b->data = p;
  b->cap = cap;
  return p + b->len;
}

int lb_buf_append(lb_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  uint8_t *dst = lb_buf_reserve(b, n);
  if (dst == NULL) return LB_ENOMEM;
  memcpy(dst, p, n);
  b->len += n;
  return 0;
}

void lb_buf_consume(lb_buf *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void lb_buf_reset(lb_buf *b) { b->len = 0; }

void lb_buf_free(lb_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int lb_ct_equal(const void *a, const void *b, size_t n) {
  /* volatile keeps the compiler from turning the loop into an early exit. */
  const volatile uint8_t *x = a, *y = b;
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= (uint8_t)(x[i] ^ y[i]);
  return acc == 0;
}

void lb_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }
