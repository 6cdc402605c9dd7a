#include "lb_test.h"
#include "lowbit/lb_muxx.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The tree of
 *   1: /users/{id}           2: /users/{id}/repos   3: /users/search
 *   4: /files/{path...}      5: /files/{$}          6: /            (a multi)
 * nodes: 0 root, 1 users, 2 files, 3 {id}, 4 search, 5 repos,
 * 6 files/{path...}, 7 files/{$}, 8 root {...}. */
static lb_muxx *make_tree(void) {
  lb_muxx *t = lb_muxx_new(9, 4, 5 + 5 + 6 + 5);
  if (t == NULL) return NULL;
  int rc = 0;
  rc |= lb_muxx_add_lit(t, 0, "users", 5, 1);
  rc |= lb_muxx_add_lit(t, 0, "files", 5, 2);
  rc |= lb_muxx_add_lit(t, 1, "search", 6, 4);
  rc |= lb_muxx_add_lit(t, 3, "repos", 5, 5);
  rc |= lb_muxx_set_node(t, 0, -1, 8, -1, 0, LB_MUXX_ALT_LIT);
  rc |= lb_muxx_set_node(t, 1, 3, -1, -1, 0, LB_MUXX_ALT_LIT);
  rc |= lb_muxx_set_node(t, 2, -1, 6, 7, 0, LB_MUXX_ALT_LIT);
  rc |= lb_muxx_set_node(t, 3, -1, -1, -1, 1, 0);
  rc |= lb_muxx_set_node(t, 4, -1, -1, -1, 3, 0);
  rc |= lb_muxx_set_node(t, 5, -1, -1, -1, 2, 0);
  rc |= lb_muxx_set_node(t, 6, -1, -1, -1, 4, LB_MUXX_MULTI_NAMED);
  rc |= lb_muxx_set_node(t, 7, -1, -1, -1, 5, 0);
  rc |= lb_muxx_set_node(t, 8, -1, -1, -1, 6, 0);
  if (rc != 0) {
    lb_muxx_free(t);
    return NULL;
  }
  return t;
}

static int32_t out[2 + 2 * LB_MUXX_MAXCAP];

static int match(const lb_muxx *t, const char *path) {
  memset(out, 0x55, sizeof out);
  return lb_muxx_match(t, path, strlen(path), out);
}

static void test_literal_wildcard_and_multi(void) {
  lb_muxx *t = make_tree();
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  LB_CHECK_EQ(match(t, "/users/search"), 3);
  LB_CHECK_EQ(out[0], 0);
  LB_CHECK_EQ(out[1], 1);
  LB_CHECK_EQ(match(t, "/users/ann"), 1);
  LB_CHECK_EQ(out[0], 1);
  LB_CHECK_EQ(out[2], 8); /* "ann" is path[7..9], 1-based 8..10 */
  LB_CHECK_EQ(out[3], 10);
  LB_CHECK_EQ(match(t, "/users/ann/repos"), 2);
  LB_CHECK_EQ(out[0], 1);
  /* the rest of the path, taken in the middle: not known to be clean */
  LB_CHECK_EQ(match(t, "/files/a/./b"), 4);
  LB_CHECK_EQ(out[0], 1);
  LB_CHECK_EQ(out[1], 0);
  LB_CHECK_EQ(out[2], 8);
  LB_CHECK_EQ(out[3], 12);
  /* only the trailing slash left: {$} first */
  LB_CHECK_EQ(match(t, "/files/"), 5);
  LB_CHECK_EQ(out[0], 0);
  /* the root's anonymous multi takes what nothing else does */
  LB_CHECK_EQ(match(t, "/other/x"), 6);
  LB_CHECK_EQ(match(t, "/"), 6);
  lb_muxx_free(t);
}

static void test_dead_ends_and_dirty_segments(void) {
  lb_muxx *t = make_tree();
  if (t == NULL) {
    LB_CHECK(0);
    return;
  }
  /* /users/search/x: the literal "search" passed {id} over: search */
  LB_CHECK_EQ(match(t, "/users/search/x"), LB_MUXX_SEARCH);
  /* /users/ann/x: no branch passed over below the root's literal */
  LB_CHECK_EQ(match(t, "/users/ann/x"), LB_MUXX_SEARCH); /* "users" passed the root multi */
  /* an empty or dot segment makes the match unclean */
  LB_CHECK_EQ(match(t, "/users//repos"), 2);
  LB_CHECK_EQ(out[1], 0);
  LB_CHECK_EQ(match(t, "/users/.x"), 1);
  LB_CHECK_EQ(out[1], 0);
  lb_muxx_free(t);
  /* a tree with no alternatives: a dead end is final */
  lb_muxx *u = lb_muxx_new(2, 1, 1);
  LB_CHECK(u != NULL);
  if (u == NULL) return;
  LB_CHECK_EQ(lb_muxx_add_lit(u, 0, "a", 1, 1), 0);
  LB_CHECK_EQ(lb_muxx_set_node(u, 1, -1, -1, -1, 7, 0), 0);
  LB_CHECK_EQ(match(u, "/a"), 7);
  LB_CHECK_EQ(match(u, "/b"), LB_MUXX_NONE);
  LB_CHECK_EQ(match(u, "/a/"), LB_MUXX_NONE);
  LB_CHECK_EQ(match(u, "/"), LB_MUXX_NONE);
  lb_muxx_free(u);
}

static void test_too_many_captures_fall_back(void) {
  /* a chain of LB_MUXX_MAXCAP + 1 {x} nodes */
  uint32_t n = LB_MUXX_MAXCAP + 2;
  lb_muxx *t = lb_muxx_new(n, 0, 0);
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  for (uint32_t i = 0; i + 1 < n; i++) LB_CHECK_EQ(lb_muxx_set_node(t, i, (int32_t)i + 1, -1, -1, 0, 0), 0);
  LB_CHECK_EQ(lb_muxx_set_node(t, n - 1, -1, -1, -1, 1, 0), 0);
  char path[2 * (LB_MUXX_MAXCAP + 1) + 1];
  for (int i = 0; i < LB_MUXX_MAXCAP + 1; i++) memcpy(path + 2 * i, "/x", 2);
  path[2 * (LB_MUXX_MAXCAP + 1)] = 0;
  LB_CHECK_EQ(match(t, path), LB_MUXX_FALLBACK);
  path[2 * LB_MUXX_MAXCAP] = 0; /* one level short: a dead end */
  LB_CHECK_EQ(match(t, path), LB_MUXX_NONE);
  lb_muxx_free(t);
}

static void test_many_edges_and_long_keys(void) {
  enum { N = 3000 };
  lb_muxx *t = lb_muxx_new(N + 1, N, N * 40);
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  char key[64];
  for (int i = 0; i < N; i++) {
    int len = snprintf(key, sizeof key, "segment-%d-with-a-longer-name", i);
    LB_CHECK_EQ(lb_muxx_add_lit(t, 0, key, (size_t)len, (uint32_t)i + 1), 0);
    LB_CHECK_EQ(lb_muxx_set_node(t, (uint32_t)i + 1, -1, -1, -1, i + 1, 0), 0);
  }
  LB_CHECK_EQ(lb_muxx_add_lit(t, 0, "segment-0-with-a-longer-name", 28, 5), LB_EINVAL);
  for (int i = 0; i < N; i++) {
    char path[80];
    snprintf(path, sizeof path, "/segment-%d-with-a-longer-name", i);
    LB_CHECK_EQ(match(t, path), i + 1);
  }
  LB_CHECK_EQ(match(t, "/segment-0-with-a-longer-nam"), LB_MUXX_NONE);
  lb_muxx_free(t);
}

static void test_argument_errors(void) {
  LB_CHECK(lb_muxx_new(0, 0, 0) == NULL);
  lb_muxx *t = lb_muxx_new(2, 1, 2);
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  LB_CHECK_EQ(lb_muxx_set_node(t, 2, -1, -1, -1, 0, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_muxx_set_node(t, 0, 2, -1, -1, 0, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_muxx_set_node(t, 0, -1, -1, -1, -1, 0), LB_EINVAL);
  LB_CHECK_EQ(lb_muxx_add_lit(t, 0, "abc", 3, 1), LB_EINVAL); /* 3 key bytes > 2 */
  LB_CHECK_EQ(lb_muxx_add_lit(t, 2, "a", 1, 1), LB_EINVAL);
  LB_CHECK_EQ(lb_muxx_add_lit(t, 0, "ab", 2, 1), 0);
  LB_CHECK_EQ(lb_muxx_add_lit(t, 1, "a", 0, 0), LB_EINVAL); /* one edge only */
  LB_CHECK_EQ(lb_muxx_match(t, "x", 1, out), LB_MUXX_FALLBACK);
  LB_CHECK_EQ(lb_muxx_match(t, "/", 0, out), LB_MUXX_FALLBACK);
  LB_CHECK_EQ(lb_muxx_match(NULL, "/", 1, out), LB_MUXX_FALLBACK);
  lb_muxx_free(t);
  lb_muxx_free(NULL);
}

int main(void) {
  LB_RUN(test_literal_wildcard_and_multi);
  LB_RUN(test_dead_ends_and_dirty_segments);
  LB_RUN(test_too_many_captures_fall_back);
  LB_RUN(test_many_edges_and_long_keys);
  LB_RUN(test_argument_errors);
  return LB_DONE();
}
