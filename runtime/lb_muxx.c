/*
 * lb_muxx.c: the first descent of a muxx method tree (see lb_muxx.h).
 *
 * Literal edges live in one open-addressed table (linear probing, at most
 * half full) keyed by the parent node and the segment's bytes. A segment is
 * read 8 bytes at a time: each word is checked for the ending "/" and mixed
 * into the hash in the same step, and its first 16 bytes are kept as two
 * words, so the edge (which holds its key's first 16 bytes the same way) is
 * compared without a memcmp or a read of the key pool for keys up to 16
 * bytes: a segment costs one pass over its words and one probe (rarely
 * more), one or two cache lines.
 */
#include "lowbit/lb_muxx.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t wild, multi, slash, route;
  uint32_t flags;
} mx_node;

/* A literal edge: its key's first 16 bytes as two words (zero-padded, the
 * first byte lowest), so a key of up to 16 bytes is compared without
 * reading the pool; longer keys are compared in the pool too. */
typedef struct {
  uint64_t w0, w1;
  uint32_t parent, child, off, len;
} mx_edge;

struct lb_muxx {
  mx_node *nodes;
  mx_edge *edges; /* mask + 1 slots; len == MX_FREE marks a free one */
  char *pool;
  uint32_t nnodes, nlits, mask, used;
  size_t keybytes, pool_used;
};

#define MX_LIMIT (1u << 30)
#define MX_FREE UINT32_MAX

#define MX_ONES 0x0101010101010101ull
#define MX_HIGHS 0x8080808080808080ull
#define MX_SLASHES (MX_ONES * (uint64_t)'/')
#define MX_PERCENTS (MX_ONES * (uint64_t)'%')
#define MX_K 0x9E3779B97F4A7C15ull

/* 8 bytes at p, the first one lowest. */
static inline uint64_t load8(const char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* The k < 8 bytes at p, the first one lowest, then a "/" (the end of the
 * path ends the segment as a "/" would). */
static inline uint64_t load_tail(const char *p, size_t k) {
  uint64_t w = (uint64_t)'/' << (8 * k);
  for (size_t i = 0; i < k; i++) w |= (uint64_t)(uint8_t)p[i] << (8 * i);
  return w;
}

/* A segment: its length, its hash (seeded with the parent node), its
 * first 16 bytes as words, and whether it holds a "%". */
typedef struct {
  uint64_t hash, w0, w1;
  size_t len;
  int pct;
} mx_seg;

/* Reads the segment at p (avail bytes left in the path, avail > 0) up to
 * the next "/" or the end, 8 bytes at a time: a word's "/" is found with
 * the zero-byte trick on w ^ "////////" (its lowest flagged byte is exact). */
static inline void scan(const char *p, size_t avail, uint32_t parent, mx_seg *sg) {
  uint64_t h = (uint64_t)parent * MX_K, w0 = 0, w1 = 0, pct = 0;
  size_t i = 0, k = 0;
  for (;;) {
    uint64_t w = avail - i >= 8 ? load8(p + i) : load_tail(p + i, avail - i);
    uint64_t x = w ^ MX_SLASHES;
    uint64_t t = (x - MX_ONES) & ~x & MX_HIGHS;
    size_t b = 8;
    if (t != 0) {
      b = (size_t)__builtin_ctzll(t) >> 3;
      w = b ? w & (~0ull >> (64 - 8 * b)) : 0;
    }
    /* the bytes past the segment are 0 now: no "%" there */
    uint64_t y = w ^ MX_PERCENTS;
    pct |= (y - MX_ONES) & ~y & MX_HIGHS;
    if (k == 0) w0 = w; else if (k == 1) w1 = w;
    h = (h ^ w) * MX_K;
    i += b;
    if (b < 8) break;
    k++;
  }
  h ^= i;
  h *= MX_K;
  sg->hash = h ^ (h >> 29);
  sg->w0 = w0;
  sg->w1 = w1;
  sg->len = i;
  sg->pct = pct != 0;
}

lb_muxx *lb_muxx_new(uint32_t nnodes, uint32_t nlits, size_t keybytes) {
  if (nnodes == 0 || nnodes > MX_LIMIT || nlits > MX_LIMIT || keybytes > MX_LIMIT) return NULL;
  lb_muxx *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  uint32_t cap = 8;
  while (cap < 2 * (uint64_t)nlits) cap *= 2;
  t->nodes = malloc(nnodes * sizeof *t->nodes);
  t->edges = malloc(cap * sizeof *t->edges);
  t->pool = malloc(keybytes ? keybytes : 1);
  if (t->nodes == NULL || t->edges == NULL || t->pool == NULL) {
    lb_muxx_free(t);
    return NULL;
  }
  for (uint32_t i = 0; i < nnodes; i++) {
    t->nodes[i] = (mx_node){ -1, -1, -1, 0, 0 };
  }
  for (uint32_t i = 0; i < cap; i++) t->edges[i].len = MX_FREE;
  t->nnodes = nnodes;
  t->nlits = nlits;
  t->mask = cap - 1;
  t->keybytes = keybytes;
  return t;
}

void lb_muxx_free(lb_muxx *t) {
  if (t == NULL) return;
  free(t->nodes);
  free(t->edges);
  free(t->pool);
  free(t);
}

static int in_range(const lb_muxx *t, int32_t child) {
  return child == -1 || (child >= 0 && (uint32_t)child < t->nnodes);
}

int lb_muxx_set_node(lb_muxx *t, uint32_t id, int32_t wild, int32_t multi,
                     int32_t slash, int32_t route, uint32_t flags) {
  if (t == NULL || id >= t->nnodes || !in_range(t, wild) || !in_range(t, multi) ||
      !in_range(t, slash) || route < 0) {
    return LB_EINVAL;
  }
  t->nodes[id] = (mx_node){ wild, multi, slash, route, flags };
  return 0;
}

/* The edge slot for (parent, segment at key): the one holding it, or the
 * free one where it would go. */
static inline const mx_edge *find_edge(const lb_muxx *t, uint32_t parent, const char *key,
                                       const mx_seg *sg) {
  uint32_t i = (uint32_t)sg->hash & t->mask;
  for (;;) {
    const mx_edge *e = &t->edges[i];
    if (e->len == MX_FREE) return e;
    if (e->w0 == sg->w0 && e->parent == parent && e->len == sg->len && e->w1 == sg->w1 &&
        (sg->len <= 16 || memcmp(t->pool + e->off + 16, key + 16, sg->len - 16) == 0)) {
      return e;
    }
    i = (i + 1) & t->mask;
  }
}

int lb_muxx_add_lit(lb_muxx *t, uint32_t parent, const char *key, size_t len,
                    uint32_t child) {
  if (t == NULL || parent >= t->nnodes || child >= t->nnodes || (key == NULL && len > 0) ||
      t->used >= t->nlits || len > t->keybytes - t->pool_used) {
    return LB_EINVAL;
  }
  t->used++;
  /* A segment never holds a "/": such a key (from "%2F" in a pattern) can
   * only be matched by an escaped path, which the caller matches itself. */
  if (len > 0 && memchr(key, '/', len) != NULL) return 0;
  mx_seg sg = { 0, 0, 0, 0, 0 };
  if (len > 0) scan(key, len, parent, &sg);
  else scan("/", 1, parent, &sg);
  mx_edge *e = (mx_edge *)find_edge(t, parent, key, &sg);
  if (e->len != MX_FREE) return LB_EINVAL;
  if (len > 0) memcpy(t->pool + t->pool_used, key, len);
  *e = (mx_edge){ sg.w0, sg.w1, parent, child, (uint32_t)t->pool_used, (uint32_t)len };
  t->pool_used += len;
  return 0;
}

/* Every byte of a path that gives a route was scanned (or, for a
 * {name...} taking the rest, searched for "%"), so a route means the path
 * has no "%"; a dead end before the first "%" is one for the unescaped
 * path too, as no segment before it changes. */
int lb_muxx_match(const lb_muxx *t, const char *path, size_t n, int32_t *out) {
  if (t == NULL || path == NULL || out == NULL || n == 0 || n >= MX_LIMIT || path[0] != '/') {
    return LB_MUXX_FALLBACK;
  }
  const mx_node *nodes = t->nodes;
  uint32_t node = 0;
  size_t p = 0; /* index of the "/" that starts the rest of the path */
  int32_t d = 0;
  uint32_t alt = 0, dirty = 0;
  while (p + 1 < n) {
    const char *seg = path + p + 1;
    uint8_t c0 = (uint8_t)seg[0];
    dirty |= (c0 == '.' || c0 == '/');
    mx_seg sg;
    scan(seg, n - p - 1, node, &sg);
    if (sg.pct) return LB_MUXX_ESCAPED;
    size_t q = p + 1 + sg.len; /* the index after the segment */
    const mx_node *nd = &nodes[node];
    const mx_edge *e = find_edge(t, node, seg, &sg);
    if (e->len != MX_FREE) {
      alt |= nd->flags & LB_MUXX_ALT_LIT;
      node = e->child;
    } else if (nd->wild >= 0) {
      alt |= nd->flags & LB_MUXX_ALT_WILD;
      if (d >= LB_MUXX_MAXCAP) return LB_MUXX_FALLBACK;
      out[2 + 2 * d] = (int32_t)(p + 2);
      out[3 + 2 * d] = (int32_t)q;
      d++;
      node = (uint32_t)nd->wild;
    } else if (nd->multi >= 0) {
      /* The rest, whatever it is: the path is not known to be clean. */
      if (memchr(seg, '%', n - p - 1) != NULL) return LB_MUXX_ESCAPED;
      const mx_node *m = &nodes[nd->multi];
      if (m->flags & LB_MUXX_MULTI_NAMED) {
        if (d >= LB_MUXX_MAXCAP) return LB_MUXX_FALLBACK;
        out[2 + 2 * d] = (int32_t)(p + 2);
        out[3 + 2 * d] = (int32_t)n;
        d++;
      }
      out[0] = d;
      out[1] = 0;
      return m->route;
    } else {
      return alt ? LB_MUXX_SEARCH : LB_MUXX_NONE;
    }
    p = q;
  }
  const mx_node *nd = &nodes[node];
  int32_t route = 0;
  if (p >= n) { /* nothing left */
    route = nd->route;
  } else if (nd->slash >= 0) { /* only the trailing slash left: {$} */
    route = nodes[nd->slash].route;
  } else if (nd->multi >= 0) { /* else a {name...} taking the empty rest */
    const mx_node *m = &nodes[nd->multi];
    if (m->flags & LB_MUXX_MULTI_NAMED) {
      if (d >= LB_MUXX_MAXCAP) return LB_MUXX_FALLBACK;
      out[2 + 2 * d] = (int32_t)(n + 1);
      out[3 + 2 * d] = (int32_t)n;
      d++;
    }
    route = m->route;
  }
  if (route <= 0) return alt ? LB_MUXX_SEARCH : LB_MUXX_NONE;
  out[0] = d;
  out[1] = dirty == 0;
  return route;
}
