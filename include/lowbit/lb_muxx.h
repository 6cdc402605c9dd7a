/*
 * lb_muxx.h: the first descent of a muxx method tree, in C.
 *
 * lowbit.muxx keeps its tree in Lua tables (registration, conflicts, the
 * backtracking search, 405 scans); for matching it copies each method root
 * into an lb_muxx: nodes in one array, every literal edge in one open-
 * addressed hash table keyed by (parent node, segment bytes), the literal
 * bytes in one pool. A request then costs one call and a few cache lines,
 * where the Lua descent interned a string per segment and read table parts
 * spread over the heap (with 2,000 routes, most of them cache misses).
 *
 * The descent is muxx.lua's: at each segment the literal child, else the
 * {name} child, else the {name...} child (which takes the rest); at the end
 * the node's route, or with only the trailing "/" left its {$} child, else
 * its {name...} child. It counts the branches passed over (a literal taken
 * where a wildcard existed, a {name} taken where a {name...} existed): a
 * dead end after one is not final, the caller must run its full search.
 * Segments with "%" are not for this matcher (the caller unescapes them):
 * it answers LB_MUXX_ESCAPED when it meets one.
 */
#ifndef LOWBIT_LB_MUXX_H
#define LOWBIT_LB_MUXX_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

typedef struct lb_muxx lb_muxx;

enum {
  /* Captures lb_muxx_match reports at most (more: LB_MUXX_FALLBACK). */
  LB_MUXX_MAXCAP = 32,
  /* Node flags: a literal child may be passed over for a wildcard one; the
   * {name} child may be passed over for the {name...} one; the node's route
   * is a {name...} with a name (its rest is captured). */
  LB_MUXX_ALT_LIT = 1,
  LB_MUXX_ALT_WILD = 2,
  LB_MUXX_MULTI_NAMED = 4,
  /* lb_muxx_match results besides a route id (> 0). */
  LB_MUXX_NONE = 0,
  LB_MUXX_SEARCH = -1,
  LB_MUXX_FALLBACK = -2,
  LB_MUXX_ESCAPED = -3
};

/* A tree of nnodes nodes (node 0 is the root) with nlits literal edges whose
 * keys total keybytes bytes. Every node starts with no child and no route.
 * Returns NULL when memory runs out or a count exceeds 2^30. */
lb_muxx *lb_muxx_new(uint32_t nnodes, uint32_t nlits, size_t keybytes);

/* Frees the tree; NULL is ignored. */
void lb_muxx_free(lb_muxx *t);

/* Sets node id's {name}, {name...} and {$} children (-1: none), its route
 * (> 0, or 0: none) and its LB_MUXX_* flags. Returns 0, or LB_EINVAL for
 * an id or child out of range or a negative route. */
int lb_muxx_set_node(lb_muxx *t, uint32_t id, int32_t wild, int32_t multi,
                     int32_t slash, int32_t route, uint32_t flags);

/* Adds the literal edge parent --key[0..len)--> child. Returns 0, or
 * LB_EINVAL for a node out of range, more edges or key bytes than the tree
 * was made for, or an edge already present for (parent, key). */
int lb_muxx_add_lit(lb_muxx *t, uint32_t parent, const char *key, size_t len,
                    uint32_t child);

/* Matches path[0..n) (starting with "/"). Returns the route id
 * (> 0) with out[0] = the number of captures d, out[1] = 1 when the path
 * has no empty segment and none starting with "." (it is clean: muxx skips
 * cleaning it) else 0, and capture k (0-based) as 1-based inclusive
 * positions out[2 + 2k], out[3 + 2k] (Lua's string.sub arguments). Else
 * LB_MUXX_NONE (nothing matches), LB_MUXX_SEARCH (the descent failed after
 * passing a branch over), LB_MUXX_FALLBACK (more than LB_MUXX_MAXCAP
 * captures, or a bad argument) or LB_MUXX_ESCAPED (the descent met a
 * segment with a "%", or a {name...} would take a rest with one: the path
 * must be matched with its segments unescaped; a path with a "%" after a
 * dead end gets LB_MUXX_NONE or LB_MUXX_SEARCH, which hold for its
 * unescaped form too, and a route means the path has no "%").
 * out holds 2 + 2 * LB_MUXX_MAXCAP int32s. */
int lb_muxx_match(const lb_muxx *t, const char *path, size_t n, int32_t *out);

#endif
