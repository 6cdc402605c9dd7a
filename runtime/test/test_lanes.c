/* test_lanes.c: lb_lanes, the lane table of keyed locks. */
#include "lb_test.h"
#include "lowbit/lb_lanes.h"
#include <stdint.h>
#include <stdlib.h>

#define K(s) (s), strlen(s)

static void test_acquire_free_lane_then_queue(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("a"), 1, 0.0), LB_LANES_ACQUIRED);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("a"), 2, 0.0), LB_LANES_QUEUED);
  LB_CHECK_EQ(lb_lanes_owner(t, K("a")), 1);
  LB_CHECK_EQ(lb_lanes_waiting(t, K("a")), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 1);
  lb_lanes_free(t);
}

static void test_release_hands_off_in_fifo_order(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 10, 0.0), 1);
  for (uint64_t id = 11; id <= 20; id++)
    LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), id, 0.0), 0);
  uint64_t owner = 10;
  for (uint64_t want = 11; want <= 20; want++) {
    int64_t next = lb_lanes_release(t, K("k"), owner, 1.0);
    LB_CHECK_EQ(next, (int64_t)want);
    LB_CHECK_EQ(lb_lanes_owner(t, K("k")), want);
    owner = want;
  }
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), owner, 2.0), 0);
  LB_CHECK_EQ(lb_lanes_owner(t, K("k")), 0);
  LB_CHECK_EQ(lb_lanes_waiting(t, K("k")), 0);
  lb_lanes_free(t);
}

static void test_waiter_cannot_be_overtaken(void) {
  /* After a hand-off the lane is owned: a newcomer queues behind. */
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 1, 0.0), 2);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 3, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), 3);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 3, 0.0), 0);
  lb_lanes_free(t);
}

static void test_release_not_owner_is_state_error(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_release(t, K("none"), 1, 0.0), LB_ESTATE);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), LB_ESTATE); /* a waiter */
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 3, 0.0), LB_ESTATE); /* a stranger */
  LB_CHECK_EQ(lb_lanes_owner(t, K("k")), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 1, 0.0), 2);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), LB_ESTATE); /* twice */
  lb_lanes_free(t);
}

static void test_acquire_bad_ids_and_reentry(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 0, 0.0), LB_EINVAL);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), (uint64_t)INT64_MAX + 1, 0.0), LB_EINVAL);
  LB_CHECK_EQ(lb_lanes_acquire(t, NULL, 3, 1, 0.0), LB_EINVAL);
  LB_CHECK_EQ(lb_lanes_count(t), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 5, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 5, 0.0), LB_ESTATE);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), (uint64_t)INT64_MAX, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 5, 0.0), INT64_MAX);
  lb_lanes_free(t);
}

static void test_cancel_queued_waiter(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 3, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 4, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 3), LB_LANES_CANCELLED); /* middle */
  LB_CHECK_EQ(lb_lanes_waiting(t, K("k")), 2);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 3), LB_ESTATE); /* gone already */
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 1, 0.0), 2);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), 4);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 4, 0.0), 0);
  lb_lanes_free(t);
}

static void test_cancel_head_and_tail_keep_fifo_linked(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 1, 0.0), 1);
  for (uint64_t id = 2; id <= 5; id++) LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), id, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 2), 0); /* head */
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 5), 0); /* tail */
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 6, 0.0), 0); /* appended after 4 */
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 1, 0.0), 3);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 3, 0.0), 4);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 4, 0.0), 6);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 6), LB_LANES_OWNED);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 6, 0.0), 0);
  lb_lanes_free(t);
}

static void test_cancel_after_handoff_says_owned(void) {
  /* The waiter's context is cancelled, but the release that handed it the
   * lane ran first: cancel says so, and the waiter must release. */
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("k"), 3, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 1, 0.0), 2);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 2), LB_LANES_OWNED);
  LB_CHECK_EQ(lb_lanes_release(t, K("k"), 2, 0.0), 3);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("k"), 2), LB_ESTATE);
  LB_CHECK_EQ(lb_lanes_cancel(t, K("nokey"), 2), LB_ESTATE);
  lb_lanes_free(t);
}

static void test_independent_keys(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("order:1"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("order:2"), 2, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("user:1"), 3, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, "", 0, 4, 0.0), 1);  /* the empty key */
  LB_CHECK_EQ(lb_lanes_acquire(t, NULL, 0, 5, 0.0), 0); /* same empty key */
  LB_CHECK_EQ(lb_lanes_count(t), 4);
  LB_CHECK_EQ(lb_lanes_release(t, K("order:1"), 1, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_owner(t, K("order:2")), 2);
  LB_CHECK_EQ(lb_lanes_owner(t, K("user:1")), 3);
  lb_lanes_free(t);
}

static void test_keys_are_bytes_not_strings(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, "a\0b", 3, 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, "a\0c", 3, 2, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, "a", 1, 3, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 3);
  /* a long key (kept outside the lane) */
  char big[300];
  memset(big, 'k', sizeof big);
  LB_CHECK_EQ(lb_lanes_acquire(t, big, sizeof big, 4, 0.0), 1);
  big[299] = 'j';
  LB_CHECK_EQ(lb_lanes_acquire(t, big, sizeof big, 5, 0.0), 1);
  big[299] = 'k';
  LB_CHECK_EQ(lb_lanes_acquire(t, big, sizeof big, 6, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_count(t), 5);
  lb_lanes_free(t);
}

static void test_sweep_two_phase_removes_idle(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("a"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("a"), 1, 1.0), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 5.0, 10.0, LB_LANES_MARK), 0); /* not idle long enough */
  LB_CHECK_EQ(lb_lanes_sweep(t, 5.0, 10.0, LB_LANES_SWEEP), 0);
  LB_CHECK_EQ(lb_lanes_count(t), 1);
  LB_CHECK_EQ(lb_lanes_sweep(t, 20.0, 10.0, LB_LANES_MARK), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 1); /* marking removes nothing */
  LB_CHECK_EQ(lb_lanes_sweep(t, 20.0, 10.0, LB_LANES_SWEEP), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 0);
  LB_CHECK_EQ(lb_lanes_owner(t, K("a")), 0);
  lb_lanes_free(t);
}

static void test_sweep_keeps_lane_busy_between_phases(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("busy"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("busy"), 1, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("used"), 2, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("used"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("idle"), 3, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("idle"), 3, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_MARK), 3);
  /* "busy" is held at the second phase; "used" was acquired and released
   * in between (idle again, but not unused since the mark). */
  LB_CHECK_EQ(lb_lanes_acquire(t, K("busy"), 4, 100.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("used"), 5, 100.0), 1);
  LB_CHECK_EQ(lb_lanes_release(t, K("used"), 5, 100.0), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_SWEEP), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 2);
  LB_CHECK_EQ(lb_lanes_owner(t, K("busy")), 4);
  LB_CHECK_EQ(lb_lanes_release(t, K("busy"), 4, 100.0), 0);
  /* a second phase without a new mark removes nothing */
  LB_CHECK_EQ(lb_lanes_sweep(t, 1000.0, 10.0, LB_LANES_SWEEP), 0);
  LB_CHECK_EQ(lb_lanes_count(t), 2);
  lb_lanes_free(t);
}

static void test_sweep_never_removes_owned_or_waited_lanes(void) {
  lb_lanes *t = lb_lanes_new();
  LB_CHECK_EQ(lb_lanes_acquire(t, K("held"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("held"), 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 1e9, 1.0, LB_LANES_MARK), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 1e9, 1.0, LB_LANES_SWEEP), 0);
  LB_CHECK_EQ(lb_lanes_sweep(t, 1e9, 1.0, LB_LANES_SWEEP_NOW), 0);
  LB_CHECK_EQ(lb_lanes_count(t), 1);
  LB_CHECK_EQ(lb_lanes_sweep(t, 1e9, 1.0, 7), 0); /* unknown phase */
  lb_lanes_free(t);
}

static void test_sweep_now_one_pass(void) {
  lb_lanes *t = lb_lanes_new();
  char key[32];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%d", i);
    LB_CHECK_EQ(lb_lanes_acquire(t, K(key), 1, (double)i), 1);
    LB_CHECK_EQ(lb_lanes_release(t, K(key), 1, (double)i), 0);
  }
  /* now=100, idle=50: lanes last used at 0..50 go. */
  LB_CHECK_EQ(lb_lanes_sweep(t, 100.0, 50.0, LB_LANES_SWEEP_NOW), 51);
  LB_CHECK_EQ(lb_lanes_count(t), 49);
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%d", i);
    /* removed keys are re-created on demand; kept ones keep working */
    LB_CHECK_EQ(lb_lanes_acquire(t, K(key), 2, 200.0), 1);
  }
  LB_CHECK_EQ(lb_lanes_count(t), 100);
  lb_lanes_free(t);
}

static void test_lanes_reused_after_sweep(void) {
  lb_lanes *t = lb_lanes_new();
  char key[80];
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 1000; i++) {
      snprintf(key, sizeof key, "r%d-%d-with-a-longer-key-part", round, i);
      LB_CHECK_EQ(lb_lanes_acquire(t, K(key), 1, 0.0), 1);
      LB_CHECK_EQ(lb_lanes_acquire(t, K(key), 2, 0.0), 0);
      LB_CHECK_EQ(lb_lanes_release(t, K(key), 1, 0.0), 2);
      LB_CHECK_EQ(lb_lanes_release(t, K(key), 2, 0.0), 0);
    }
    LB_CHECK_EQ(lb_lanes_sweep(t, 1.0, 0.5, LB_LANES_MARK), 1000);
    LB_CHECK_EQ(lb_lanes_sweep(t, 1.0, 0.5, LB_LANES_SWEEP), 1000);
    LB_CHECK_EQ(lb_lanes_count(t), 0);
  }
  lb_lanes_free(t);
}

static void test_many_keys_with_partial_sweep_stay_findable(void) {
  /* Deleting from the middle of probe clusters must not lose other keys. */
  lb_lanes *t = lb_lanes_new();
  char key[32];
  enum { N = 20000 };
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "%d", i);
    LB_CHECK_EQ(lb_lanes_acquire(t, K(key), 7, 0.0), 1);
    if (i % 3) LB_CHECK_EQ(lb_lanes_release(t, K(key), 7, 0.0), 0);
  }
  LB_CHECK_EQ(lb_lanes_sweep(t, 10.0, 1.0, LB_LANES_SWEEP_NOW), N - (N + 2) / 3);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "%d", i);
    if (lb_lanes_owner(t, K(key)) != (i % 3 ? 0u : 7u)) bad++;
  }
  LB_CHECK_EQ(bad, 0);
  LB_CHECK_EQ(lb_lanes_count(t), (N + 2) / 3);
  lb_lanes_free(t);
}

static void test_million_keys_insert_and_sweep(void) {
  lb_lanes *t = lb_lanes_new();
  char key[32];
  enum { N = 1000000 };
  int bad = 0;
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof key, "stock:%d", i);
    if (lb_lanes_acquire(t, key, (size_t)n, (uint64_t)i + 1, 0.0) != 1) bad++;
    if (lb_lanes_release(t, key, (size_t)n, (uint64_t)i + 1, 1.0) != 0) bad++;
  }
  LB_CHECK_EQ(bad, 0);
  LB_CHECK_EQ(lb_lanes_count(t), N);
  LB_CHECK_EQ(lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_MARK), N);
  LB_CHECK_EQ(lb_lanes_sweep(t, 100.0, 10.0, LB_LANES_SWEEP), N);
  LB_CHECK_EQ(lb_lanes_count(t), 0);
  /* the table is usable again after giving its memory back */
  LB_CHECK_EQ(lb_lanes_acquire(t, K("again"), 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_count(t), 1);
  lb_lanes_free(t); /* ASan's leak check covers the rest */
}

static void test_free_with_live_lanes_and_waiters(void) {
  lb_lanes *t = lb_lanes_new();
  char big[64];
  memset(big, 'x', sizeof big);
  LB_CHECK_EQ(lb_lanes_acquire(t, big, sizeof big, 1, 0.0), 1);
  LB_CHECK_EQ(lb_lanes_acquire(t, big, sizeof big, 2, 0.0), 0);
  LB_CHECK_EQ(lb_lanes_acquire(t, K("s"), 3, 0.0), 1);
  lb_lanes_free(t);
  lb_lanes_free(NULL);
}

int main(void) {
  LB_RUN(test_acquire_free_lane_then_queue);
  LB_RUN(test_release_hands_off_in_fifo_order);
  LB_RUN(test_waiter_cannot_be_overtaken);
  LB_RUN(test_release_not_owner_is_state_error);
  LB_RUN(test_acquire_bad_ids_and_reentry);
  LB_RUN(test_cancel_queued_waiter);
  LB_RUN(test_cancel_head_and_tail_keep_fifo_linked);
  LB_RUN(test_cancel_after_handoff_says_owned);
  LB_RUN(test_independent_keys);
  LB_RUN(test_keys_are_bytes_not_strings);
  LB_RUN(test_sweep_two_phase_removes_idle);
  LB_RUN(test_sweep_keeps_lane_busy_between_phases);
  LB_RUN(test_sweep_never_removes_owned_or_waited_lanes);
  LB_RUN(test_sweep_now_one_pass);
  LB_RUN(test_lanes_reused_after_sweep);
  LB_RUN(test_many_keys_with_partial_sweep_stay_findable);
  LB_RUN(test_million_keys_insert_and_sweep);
  LB_RUN(test_free_with_live_lanes_and_waiters);
  return LB_DONE();
}
