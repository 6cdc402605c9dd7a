#include "lb_test.h"
#include "lowbit/lb_base.h"
#include <stdlib.h>

static void test_strerror_known_and_unknown(void) {
  LB_CHECK(strcmp(lb_strerror(LB_EAGAIN), "need more input") == 0);
  LB_CHECK(strcmp(lb_err_name(LB_ECHUNK), "ECHUNK") == 0);
  LB_CHECK(strcmp(lb_strerror(12345), "unknown error") == 0);
  LB_CHECK(strcmp(lb_err_name(-999), "UNKNOWN") == 0);
  LB_CHECK(strcmp(lb_err_name(0), "OK") == 0);
}

static void test_codes_grouped_by_range(void) {
  LB_CHECK(LB_EAGAIN > -100 && LB_ENOSPACE > -100);
  LB_CHECK(LB_EPROTO <= -100 && LB_EPROTO > -200);
  LB_CHECK(LB_EINVAL <= -200 && LB_EINVAL > -300);
  LB_CHECK(LB_ETOOLARGE <= -300 && LB_ETOOLARGE > -400);
  LB_CHECK(LB_ENOMEM <= -400);
}

static void test_buf_append_consume(void) {
  lb_buf b = {0};
  LB_CHECK_EQ(lb_buf_append(&b, "hello ", 6), 0);
  LB_CHECK_EQ(lb_buf_append(&b, "world", 5), 0);
  LB_CHECK_MEM(b.data, "hello world", b.len);
  lb_buf_consume(&b, 6);
  LB_CHECK_MEM(b.data, "world", b.len);
  lb_buf_consume(&b, 100);
  LB_CHECK_EQ(b.len, 0);
  size_t cap = b.cap;
  lb_buf_reset(&b);
  LB_CHECK_EQ(b.cap, cap);
  lb_buf_free(&b);
  LB_CHECK(b.data == NULL && b.cap == 0);
}

static void test_buf_grows_large(void) {
  lb_buf b = {0};
  char chunk[1000];
  memset(chunk, 'x', sizeof chunk);
  for (int i = 0; i < 1000; i++) LB_CHECK_EQ(lb_buf_append(&b, chunk, sizeof chunk), 0);
  LB_CHECK_EQ(b.len, 1000000);
  LB_CHECK(b.cap >= b.len);
  lb_buf_free(&b);
}

static void test_buf_reserve_overflow_refused(void) {
  lb_buf b = {0};
  LB_CHECK_EQ(lb_buf_append(&b, "ab", 2), 0);
  LB_CHECK(lb_buf_reserve(&b, SIZE_MAX) == NULL);
  LB_CHECK_MEM(b.data, "ab", b.len);
  lb_buf_free(&b);
}

static void test_ct_equal(void) {
  LB_CHECK(lb_ct_equal("abcdef", "abcdef", 6));
  LB_CHECK(!lb_ct_equal("abcdef", "abcdeg", 6));
  LB_CHECK(!lb_ct_equal("xbcdef", "abcdef", 6));
  LB_CHECK(lb_ct_equal("", "", 0));
}

int main(void) {
  LB_RUN(test_strerror_known_and_unknown);
  LB_RUN(test_codes_grouped_by_range);
  LB_RUN(test_buf_append_consume);
  LB_RUN(test_buf_grows_large);
  LB_RUN(test_buf_reserve_overflow_refused);
  LB_RUN(test_ct_equal);
  return LB_DONE();
}
