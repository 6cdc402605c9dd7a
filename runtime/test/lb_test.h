/*
 * lb_test.h: the tiny harness every core test uses. A test file defines
 * functions `static void test_xxx(void)` and a main() that runs them with
 * LB_RUN(test_xxx), then returns LB_DONE(). The last line printed is
 * "<file>: N passed, N failed", which `make test` sums.
 */
#ifndef LOWBIT_LB_TEST_H
#define LOWBIT_LB_TEST_H
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* xorshift64: pseudo-random numbers that reproduce, from the caller's
 * state (each test file keeps its own seed). */
static inline uint64_t lb_test_xorshift(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

static int lb__t_pass, lb__t_fail, lb__t_cur_failed;
static const char *lb__t_name;

#define LB_CHECK(cond)                                                        \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "  FAIL %s (%s:%d): %s\n", lb__t_name, __FILE__,        \
              __LINE__, #cond);                                               \
      lb__t_cur_failed = 1;                                                   \
    }                                                                         \
  } while (0)

#define LB_CHECK_EQ(a, b)                                                     \
  do {                                                                        \
    long long lb__a = (long long)(a), lb__b = (long long)(b);                 \
    if (lb__a != lb__b) {                                                     \
      fprintf(stderr, "  FAIL %s (%s:%d): %s == %s (%lld != %lld)\n",         \
              lb__t_name, __FILE__, __LINE__, #a, #b, lb__a, lb__b);          \
      lb__t_cur_failed = 1;                                                   \
    }                                                                         \
  } while (0)

#define LB_CHECK_MEM(p, s, n)                                                 \
  LB_CHECK((size_t)(n) == strlen(s) && memcmp((p), (s), (n)) == 0)

#define LB_RUN(fn)                                                            \
  do {                                                                        \
    lb__t_name = #fn;                                                         \
    lb__t_cur_failed = 0;                                                     \
    fn();                                                                     \
    if (lb__t_cur_failed) lb__t_fail++; else lb__t_pass++;                    \
  } while (0)

#define LB_DONE()                                                             \
  (printf("%s: %d passed, %d failed\n", __FILE__, lb__t_pass, lb__t_fail),    \
   lb__t_fail ? 1 : 0)

#endif
