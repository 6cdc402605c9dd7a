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

/* ---- the word-at-a-time descent against a byte-at-a-time reference ------ */

enum { RN = 40, RLIT = 4 };

typedef struct {
  int nlit;
  char key[RLIT][24];
  int keylen[RLIT], child[RLIT];
  int wild, multi, slash, route;
  uint32_t flags;
} ref_node;

static ref_node ref[RN];
static int ref_n;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng); }

static const char ALPHA[] = "ab.xyz-_0123456789%";

static int new_ref_node(void) {
  if (ref_n >= RN) return -1;
  ref_node *r = &ref[ref_n];
  memset(r, 0, sizeof *r);
  r->wild = r->multi = r->slash = -1;
  return ref_n++;
}

/* A random tree below node id, depth levels deep. */
static void grow(int id, int depth) {
  ref_node *r = &ref[id];
  if (rnd() % 2 == 0) r->route = id + 1;
  if (depth == 0) return;
  int nlit = (int)(rnd() % (RLIT + 1));
  for (int k = 0; k < nlit; k++) {
    int c = new_ref_node();
    if (c < 0) break;
    int len;
    for (;;) { /* keys unique below one parent; lengths across the 8 and 16 byte words */
      len = (int)(rnd() % 21);
      for (int i = 0; i < len; i++) ref[id].key[ref[id].nlit][i] = ALPHA[rnd() % (sizeof ALPHA - 1)];
      int dup = 0;
      for (int j = 0; j < ref[id].nlit; j++) {
        if (ref[id].keylen[j] == len && memcmp(ref[id].key[j], ref[id].key[ref[id].nlit], (size_t)len) == 0) dup = 1;
      }
      if (!dup) break;
    }
    ref[id].keylen[ref[id].nlit] = len;
    ref[id].child[ref[id].nlit] = c;
    ref[id].nlit++;
    grow(c, depth - 1);
  }
  if (rnd() % 3 == 0 && (ref[id].wild = new_ref_node()) >= 0) grow(ref[id].wild, depth - 1);
  if (rnd() % 4 == 0 && (ref[id].multi = new_ref_node()) >= 0) {
    ref[ref[id].multi].route = ref[id].multi + 1;
    if (rnd() % 2) ref[ref[id].multi].flags = LB_MUXX_MULTI_NAMED;
  }
  if (rnd() % 4 == 0 && (ref[id].slash = new_ref_node()) >= 0) ref[ref[id].slash].route = ref[id].slash + 1;
  if (ref[id].nlit > 0 && (ref[id].wild >= 0 || ref[id].multi >= 0)) ref[id].flags |= LB_MUXX_ALT_LIT;
  if (ref[id].wild >= 0 && ref[id].multi >= 0) ref[id].flags |= LB_MUXX_ALT_WILD;
}

/* muxx.lua's descent, a byte at a time. */
static int ref_match(const char *path, size_t n, int32_t *o) {
  int node = 0, d = 0, alt = 0, dirty = 0;
  size_t p = 0;
  while (p + 1 < n) {
    size_t q = p + 1;
    while (q < n && path[q] != '/') q++;
    if (path[p + 1] == '.' || path[p + 1] == '/') dirty = 1;
    if (memchr(path + p + 1, '%', q - p - 1) != NULL) return LB_MUXX_ESCAPED;
    const ref_node *r = &ref[node];
    int c = -1;
    for (int k = 0; k < r->nlit; k++) {
      if ((size_t)r->keylen[k] == q - p - 1 && memcmp(r->key[k], path + p + 1, q - p - 1) == 0) c = r->child[k];
    }
    if (c >= 0) {
      if (r->flags & LB_MUXX_ALT_LIT) alt = 1;
      node = c;
    } else if (r->wild >= 0) {
      if (r->flags & LB_MUXX_ALT_WILD) alt = 1;
      if (d >= LB_MUXX_MAXCAP) return LB_MUXX_FALLBACK;
      o[2 + 2 * d] = (int32_t)(p + 2);
      o[3 + 2 * d] = (int32_t)q;
      d++;
      node = r->wild;
    } else if (r->multi >= 0) {
      if (memchr(path + p + 1, '%', n - p - 1) != NULL) return LB_MUXX_ESCAPED;
      if (ref[r->multi].flags & LB_MUXX_MULTI_NAMED) {
        o[2 + 2 * d] = (int32_t)(p + 2);
        o[3 + 2 * d] = (int32_t)n;
        d++;
      }
      o[0] = d;
      o[1] = 0;
      return ref[r->multi].route;
    } else {
      return alt ? LB_MUXX_SEARCH : LB_MUXX_NONE;
    }
    p = q;
  }
  const ref_node *r = &ref[node];
  int route = 0;
  if (p >= n) {
    route = r->route;
  } else if (r->slash >= 0) {
    route = ref[r->slash].route;
  } else if (r->multi >= 0) {
    if (ref[r->multi].flags & LB_MUXX_MULTI_NAMED) {
      o[2 + 2 * d] = (int32_t)(n + 1);
      o[3 + 2 * d] = (int32_t)n;
      d++;
    }
    route = ref[r->multi].route;
  }
  if (route <= 0) return alt ? LB_MUXX_SEARCH : LB_MUXX_NONE;
  o[0] = d;
  o[1] = !dirty;
  return route;
}

/* A path that mostly follows the tree: a child's key, a value for a
 * wildcard, sometimes a byte changed, cut or added, an empty segment or a
 * trailing slash. */
static size_t random_path(char *buf, size_t cap) {
  size_t n = 0;
  int node = 0;
  for (int depth = 0; depth < 8 && n + 30 < cap; depth++) {
    buf[n++] = '/';
    const ref_node *r = &ref[node];
    uint64_t pick = rnd() % 10;
    if (pick < 6 && r->nlit > 0) {
      int k = (int)(rnd() % (uint64_t)r->nlit);
      memcpy(buf + n, r->key[k], (size_t)r->keylen[k]);
      size_t len = (size_t)r->keylen[k];
      uint64_t m = rnd() % 8;
      if (m == 0 && len > 0) buf[n + rnd() % len] ^= 1;
      else if (m == 1 && len > 0) len--;
      else if (m == 2) buf[n + len++] = 'q';
      n += len;
      node = r->child[k];
    } else if (pick < 8) {
      size_t len = rnd() % 20;
      for (size_t i = 0; i < len; i++) buf[n++] = ALPHA[rnd() % (sizeof ALPHA - 1)];
      if (r->wild < 0) break;
      node = r->wild;
    } else if (pick == 8) {
      break; /* trailing slash */
    }
    if (rnd() % 5 == 0) break;
  }
  return n;
}

static void test_word_scan_matches_byte_reference(void) {
  char path[300];
  int32_t want[2 + 2 * LB_MUXX_MAXCAP];
  int bad = 0;
  for (int tree = 0; tree < 300 && !bad; tree++) {
    ref_n = 0;
    new_ref_node();
    grow(0, 4);
    uint32_t nlits = 0;
    size_t keybytes = 0;
    for (int i = 0; i < ref_n; i++) {
      nlits += (uint32_t)ref[i].nlit;
      for (int k = 0; k < ref[i].nlit; k++) keybytes += (size_t)ref[i].keylen[k];
    }
    lb_muxx *t = lb_muxx_new((uint32_t)ref_n, nlits, keybytes);
    LB_CHECK(t != NULL);
    if (t == NULL) return;
    for (int i = 0; i < ref_n; i++) {
      const ref_node *r = &ref[i];
      LB_CHECK_EQ(lb_muxx_set_node(t, (uint32_t)i, r->wild, r->multi, r->slash, r->route, r->flags), 0);
      for (int k = 0; k < r->nlit; k++) {
        LB_CHECK_EQ(lb_muxx_add_lit(t, (uint32_t)i, r->key[k], (size_t)r->keylen[k], (uint32_t)r->child[k]), 0);
      }
    }
    for (int j = 0; j < 300 && !bad; j++) {
      size_t n = random_path(path, sizeof path);
      path[n] = 0;
      int a = lb_muxx_match(t, path, n, out);
      int b = ref_match(path, n, want);
      if (a != b || (a > 0 && (out[0] != want[0] || out[1] != want[1] ||
                               memcmp(out + 2, want + 2, 2 * (size_t)want[0] * sizeof want[0]) != 0))) {
        fprintf(stderr, "  tree %d path %.*s: got %d, want %d\n", tree, (int)n, path, a, b);
        bad = 1;
      }
    }
    lb_muxx_free(t);
  }
  LB_CHECK(!bad);
}

static void test_escaped_segments(void) {
  lb_muxx *t = make_tree();
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  LB_CHECK_EQ(match(t, "/users/a%20b"), LB_MUXX_ESCAPED);
  LB_CHECK_EQ(match(t, "/%75sers/x"), LB_MUXX_ESCAPED);
  LB_CHECK_EQ(match(t, "/users/search/abcdefgh%"), LB_MUXX_ESCAPED);
  /* the rest a {name...} takes */
  LB_CHECK_EQ(match(t, "/files/a/b%2Fc"), LB_MUXX_ESCAPED);
  LB_CHECK_EQ(match(t, "/other/x%41"), LB_MUXX_ESCAPED);
  /* a "%" after a final dead end: the unescaped path ends there too */
  lb_muxx *u = lb_muxx_new(2, 1, 1);
  LB_CHECK(u != NULL);
  if (u != NULL) {
    LB_CHECK_EQ(lb_muxx_add_lit(u, 0, "a", 1, 1), 0);
    LB_CHECK_EQ(lb_muxx_set_node(u, 1, -1, -1, -1, 7, 0), 0);
    LB_CHECK_EQ(match(u, "/b/%41"), LB_MUXX_NONE);
    LB_CHECK_EQ(match(u, "/%61"), LB_MUXX_ESCAPED);
    lb_muxx_free(u);
  }
  lb_muxx_free(t);
}

static void test_keys_with_a_slash_never_match(void) {
  lb_muxx *t = lb_muxx_new(2, 1, 3);
  LB_CHECK(t != NULL);
  if (t == NULL) return;
  LB_CHECK_EQ(lb_muxx_add_lit(t, 0, "a/b", 3, 1), 0);
  LB_CHECK_EQ(lb_muxx_set_node(t, 1, -1, -1, -1, 1, 0), 0);
  LB_CHECK_EQ(match(t, "/a/b"), LB_MUXX_NONE);
  LB_CHECK_EQ(match(t, "/a"), LB_MUXX_NONE);
  lb_muxx_free(t);
}

int main(void) {
  LB_RUN(test_literal_wildcard_and_multi);
  LB_RUN(test_dead_ends_and_dirty_segments);
  LB_RUN(test_too_many_captures_fall_back);
  LB_RUN(test_many_edges_and_long_keys);
  LB_RUN(test_argument_errors);
  LB_RUN(test_word_scan_matches_byte_reference);
  LB_RUN(test_keys_with_a_slash_never_match);
  LB_RUN(test_escaped_segments);
  return LB_DONE();
}
