/* fuzz_muxx.c: libFuzzer target for lb_muxx_match.
 *
 * The input, after a "/", is a request path matched against a fixed tree
 * (literals of 0 to 20 bytes across the 8- and 16-byte words of the scan,
 * {name}, {name...} with and without a name, {$}). Properties: never crash
 * or read outside the path (ASan/UBSan); the result is a route of the tree
 * or one of the LB_MUXX_* codes; a path with a "%" gets no route; a match
 * has 0..LB_MUXX_MAXCAP captures, each within the path, in order, and a
 * {name} capture holds no "/". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_muxx.h"

static const char *const KEYS[] = {
  "", "a", "api", "v1", "users", "12345678", "123456789", "abcdefghijklmnop",
  "abcdefghijklmnopq", "abcdefghijklmnopqrst", ".", "..", "%41",
};
enum { NKEYS = sizeof KEYS / sizeof KEYS[0] };

/* Node 0 (root) and node 1 + k (k < NKEYS) below it by KEYS[k]; every
 * literal node i also has the children of the root (so paths go deep)
 * through a {name} node, a named {name...} and a {$}. */
static lb_muxx *tree(void) {
  /* nodes: 0 root; 1..NKEYS literals; NKEYS+1 wild; NKEYS+2 multi; NKEYS+3 slash;
   * NKEYS+4 anonymous multi below the wild node */
  uint32_t n = NKEYS + 5, nlits = 2 * NKEYS;
  size_t bytes = 0;
  for (int k = 0; k < NKEYS; k++) bytes += 2 * strlen(KEYS[k]);
  lb_muxx *t = lb_muxx_new(n, nlits, bytes);
  if (t == NULL) abort();
  int32_t wild = NKEYS + 1, multi = NKEYS + 2, slash = NKEYS + 3, anon = NKEYS + 4;
  int rc = lb_muxx_set_node(t, 0, wild, multi, -1, 0, LB_MUXX_ALT_LIT | LB_MUXX_ALT_WILD);
  for (int k = 0; k < NKEYS; k++) {
    rc |= lb_muxx_add_lit(t, 0, KEYS[k], strlen(KEYS[k]), (uint32_t)k + 1);
    rc |= lb_muxx_set_node(t, (uint32_t)k + 1, wild, -1, slash, k % 3 ? k + 1 : 0, 0);
  }
  /* the wild node leads back to the literals, so paths can be long */
  for (int k = 0; k < NKEYS; k++) rc |= lb_muxx_add_lit(t, (uint32_t)wild, KEYS[k], strlen(KEYS[k]), (uint32_t)k + 1);
  rc |= lb_muxx_set_node(t, (uint32_t)wild, wild, anon, -1, 100, LB_MUXX_ALT_LIT | LB_MUXX_ALT_WILD);
  rc |= lb_muxx_set_node(t, (uint32_t)multi, -1, -1, -1, 101, LB_MUXX_MULTI_NAMED);
  rc |= lb_muxx_set_node(t, (uint32_t)slash, -1, -1, -1, 102, 0);
  rc |= lb_muxx_set_node(t, (uint32_t)anon, -1, -1, -1, 103, 0);
  if (rc != 0) abort();
  return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lb_muxx *t;
  if (t == NULL) t = tree();
  if (size > 4096) return 0;
  char *path = malloc(size + 1);
  if (path == NULL) return 0;
  path[0] = '/';
  memcpy(path + 1, data, size);
  size_t n = size + 1;
  int32_t out[2 + 2 * LB_MUXX_MAXCAP];
  int r = lb_muxx_match(t, path, n, out);
  if (r > 0) {
    if (memchr(path, '%', n) != NULL) abort(); /* a route means no "%" */
    if (!((r >= 1 && r <= NKEYS) || (r >= 100 && r <= 103))) abort();
    if (out[0] < 0 || out[0] > LB_MUXX_MAXCAP || (out[1] != 0 && out[1] != 1)) abort();
    int32_t prev = 0;
    for (int32_t k = 0; k < out[0]; k++) {
      int32_t s = out[2 + 2 * k], e = out[3 + 2 * k];
      if (s < 2 || s > (int32_t)n + 1 || e < s - 1 || e > (int32_t)n || s <= prev) abort();
      if (!(r == 101 && k == out[0] - 1) && memchr(path + s - 1, '/', (size_t)(e - s + 1)) != NULL) abort();
      prev = e;
    }
  } else if (r != LB_MUXX_NONE && r != LB_MUXX_SEARCH && r != LB_MUXX_FALLBACK && r != LB_MUXX_ESCAPED) {
    abort();
  }
  free(path);
  return 0;
}
