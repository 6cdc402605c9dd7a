/*
 * lb_muxx.c: the first descent of a muxx method tree (see lb_muxx.h).
 *
 * Literal edges live in one open-addressed table (linear probing, at most
 * half full) keyed by the parent node and the segment's bytes: the hash is
 * computed while the segment is scanned for its ending "/", so a segment
 * costs one pass over its bytes, one probe (rarely two) and a memcmp.
 */
#include "lowbit/lb_muxx.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t wild, multi, slash, route;
  uint32_t flags;
} mx_node;

typedef struct {
  uint32_t parent, child, off, len, hash;
} mx_edge;

struct lb_muxx {
  mx_node *nodes;
  mx_edge *edges; /* mask + 1 slots; len == UINT32_MAX marks a free one */
  char *pool;
  uint32_t nnodes, nlits, mask, used;
  size_t keybytes, pool_used;
};

#define MX_LIMIT (1u << 30)
#define MX_FREE UINT32_MAX

/* FNV-1a over the segment, seeded with the parent node. */
#define MX_SEED(parent) (2166136261u ^ ((uint32_t)(parent) * 0x9E3779B1u))
#define MX_STEP(h, c) (((h) ^ (uint8_t)(c)) * 16777619u)

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

/* The edge slot for (parent, key) with hash h: the one holding it, or the
 * free one where it would go. */
static const mx_edge *find_edge(const lb_muxx *t, uint32_t parent, const char *key,
                                size_t len, uint32_t h) {
  uint32_t i = h & t->mask;
  for (;;) {
    const mx_edge *e = &t->edges[i];
    if (e->len == MX_FREE) return e;
    if (e->hash == h && e->parent == parent && e->len == len &&
        memcmp(t->pool + e->off, key, len) == 0) {
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
  uint32_t h = MX_SEED(parent);
  for (size_t k = 0; k < len; k++) h = MX_STEP(h, key[k]);
  mx_edge *e = (mx_edge *)find_edge(t, parent, key, len, h);
  if (e->len != MX_FREE) return LB_EINVAL;
  if (len > 0) memcpy(t->pool + t->pool_used, key, len);
  *e = (mx_edge){ parent, child, (uint32_t)t->pool_used, (uint32_t)len, h };
  t->pool_used += len;
  t->used++;
  return 0;
}

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
    uint32_t h = MX_SEED(node);
    size_t q = p + 1; /* the index after the segment */
    while (q < n && path[q] != '/') {
      h = MX_STEP(h, path[q]);
      q++;
    }
    const mx_node *nd = &nodes[node];
    const mx_edge *e = find_edge(t, node, seg, q - p - 1, h);
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
