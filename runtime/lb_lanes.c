/* lb_lanes.c: the lane table of keyed locks.
 *
 * Layout: `slots` is an open-addressing table (linear probing, power-of-two
 * size, at most 3/4 full) of (lane index + 1, 32 hash bits); lanes and
 * waiter nodes live in arrays used as pools, linked by 32-bit indices so the
 * arrays can be moved by realloc. Deletion shifts the following cluster back
 * (no tombstones), so lookups never slow down after many sweeps.
 */
#include "lowbit/lb_lanes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LB__LANES_INLINE = 16, LB__LANES_MIN_SLOTS = 16 };

typedef struct lb__lane {
  uint64_t owner;     /* 0 = free (then the FIFO is empty too) */
  uint64_t hash;
  double last_used;
  uint32_t gen;       /* bumped on every change of owner */
  uint32_t mark_gen;  /* gen when marked */
  uint32_t whead;     /* first waiter + 1, 0 = none; next free lane + 1 */
  uint32_t wtail;     /* last waiter + 1 */
  uint32_t nwait;
  uint32_t klen;
  uint8_t live;
  uint8_t marked;
  uint8_t pad[6];
  union {
    uint8_t inl[LB__LANES_INLINE];
    uint8_t *ptr;
  } key;
} lb__lane;

typedef struct lb__waiter {
  uint64_t id;
  uint32_t next; /* next waiter + 1 (or next free node + 1), 0 = none */
  uint32_t pad;
} lb__waiter;

typedef struct lb__slot {
  uint32_t idx1; /* lane index + 1, 0 = empty */
  uint32_t hf;   /* high 32 bits of the hash: most mismatches end here */
} lb__slot;

struct lb_lanes {
  lb__slot *slots;
  size_t nslots; /* power of two */
  size_t count;  /* live lanes */
  lb__lane *lanes;
  uint32_t nlanes, cap_lanes, free_lane; /* free_lane: index + 1 */
  lb__waiter *w;
  uint32_t nw, cap_w, free_w;
  uint64_t seed;
};

/* ---------------------------------------------------------------- hash */

static uint64_t lb__lanes_fmix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static uint64_t lb__lanes_rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

/* A seeded 64-bit hash, 8 bytes a step. The seed is chosen per table so an
 * attacker who controls keys (account ids from requests) cannot predict the
 * probe sequences and turn lookups into linear scans. */
static uint64_t lb__lanes_hash(const uint8_t *p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w *= 0x87c37b91114253d5ULL;
    w = lb__lanes_rotl(w, 31);
    w *= 0x4cf5ad432745937fULL;
    h ^= w;
    h = lb__lanes_rotl(h, 27) * 5 + 0x52dce729;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
  w *= 0x87c37b91114253d5ULL;
  w = lb__lanes_rotl(w, 31);
  w *= 0x4cf5ad432745937fULL;
  h ^= w;
  return lb__lanes_fmix(h ^ seed);
}

/* --------------------------------------------------------------- table */

static const uint8_t *lb__lanes_key(const lb__lane *l) {
  return l->klen <= LB__LANES_INLINE ? l->key.inl : l->key.ptr;
}

/* Slot index holding the key, or -1. */
static ptrdiff_t lb__lanes_find(const lb_lanes *t, const char *key, size_t len,
                                uint64_t h) {
  if (t->nslots == 0) return -1;
  size_t mask = t->nslots - 1, i = (size_t)h & mask;
  uint32_t hf = (uint32_t)(h >> 32);
  for (;;) {
    const lb__slot *s = &t->slots[i];
    if (s->idx1 == 0) return -1;
    if (s->hf == hf) {
      const lb__lane *l = &t->lanes[s->idx1 - 1];
      if (l->klen == len && (len == 0 || memcmp(lb__lanes_key(l), key, len) == 0))
        return (ptrdiff_t)i;
    }
    i = (i + 1) & mask;
  }
}

static void lb__lanes_place(lb__slot *slots, size_t mask, uint64_t h,
                            uint32_t idx1) {
  size_t i = (size_t)h & mask;
  while (slots[i].idx1) i = (i + 1) & mask;
  slots[i].idx1 = idx1;
  slots[i].hf = (uint32_t)(h >> 32);
}

/* Rebuilds the slot array with n slots (a power of two that holds every
 * live lane). Returns 0 or LB_ENOMEM (table unchanged). */
static int lb__lanes_rehash(lb_lanes *t, size_t n) {
  if (n > SIZE_MAX / sizeof(lb__slot)) return LB_ENOMEM;
  lb__slot *s = calloc(n, sizeof *s);
  if (s == NULL) return LB_ENOMEM;
  for (uint32_t i = 0; i < t->nlanes; i++)
    if (t->lanes[i].live) lb__lanes_place(s, n - 1, t->lanes[i].hash, i + 1);
  free(t->slots);
  t->slots = s;
  t->nslots = n;
  return 0;
}

/* Removes slot i, shifting the rest of its cluster back so that every key
 * stays reachable from its home slot without tombstones. */
static void lb__lanes_unslot(lb_lanes *t, size_t i) {
  size_t mask = t->nslots - 1, j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (t->slots[j].idx1 == 0) break;
    size_t home = (size_t)t->lanes[t->slots[j].idx1 - 1].hash & mask;
    /* The entry at j may move to i only if its home is not in (i, j]
     * (cyclically): otherwise moving it would put it before its home. */
    int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (between) continue;
    t->slots[i] = t->slots[j];
    i = j;
  }
  t->slots[i].idx1 = 0;
  t->slots[i].hf = 0;
}

/* ---------------------------------------------------------------- pools */

static int lb__lanes_grow_lanes(lb_lanes *t) {
  if (t->free_lane || t->nlanes < t->cap_lanes) return 0;
  uint32_t cap = t->cap_lanes ? t->cap_lanes : 64;
  if (cap > UINT32_MAX / 2 - 1) return LB_ENOMEM; /* indices are 32-bit + 1 */
  cap *= 2;
  size_t bytes = (size_t)cap * sizeof(lb__lane);
  if (bytes / sizeof(lb__lane) != cap) return LB_ENOMEM; /* 32-bit size_t */
  lb__lane *l = realloc(t->lanes, bytes);
  if (l == NULL) return LB_ENOMEM;
  t->lanes = l;
  t->cap_lanes = cap;
  return 0;
}

static uint32_t lb__lanes_take_lane(lb_lanes *t) {
  uint32_t i;
  if (t->free_lane) {
    i = t->free_lane - 1;
    t->free_lane = t->lanes[i].whead;
  } else {
    i = t->nlanes++;
  }
  return i;
}

static int lb__lanes_grow_waiters(lb_lanes *t) {
  if (t->free_w || t->nw < t->cap_w) return 0;
  uint32_t cap = t->cap_w ? t->cap_w : 64;
  if (cap > UINT32_MAX / 2 - 1) return LB_ENOMEM;
  cap *= 2;
  size_t bytes = (size_t)cap * sizeof(lb__waiter);
  if (bytes / sizeof(lb__waiter) != cap) return LB_ENOMEM; /* 32-bit size_t */
  lb__waiter *w = realloc(t->w, bytes);
  if (w == NULL) return LB_ENOMEM;
  t->w = w;
  t->cap_w = cap;
  return 0;
}

static uint32_t lb__lanes_take_waiter(lb_lanes *t) {
  uint32_t i;
  if (t->free_w) {
    i = t->free_w - 1;
    t->free_w = t->w[i].next;
  } else {
    i = t->nw++;
  }
  return i;
}

static void lb__lanes_put_waiter(lb_lanes *t, uint32_t i) {
  t->w[i].next = t->free_w;
  t->free_w = i + 1;
}

/* ------------------------------------------------------------------ API */

lb_lanes *lb_lanes_new(void) {
  lb_lanes *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  /* Not a secret, only unpredictable enough from outside the process. */
  uint64_t s = (uint64_t)(uintptr_t)t ^ ((uint64_t)time(NULL) << 20) ^
               ((uint64_t)clock() << 40) ^ (uint64_t)(uintptr_t)&s;
  t->seed = lb__lanes_fmix(s + 0x9E3779B97F4A7C15ULL);
  return t;
}

static void lb__lanes_free_key(lb__lane *l) {
  if (l->klen > LB__LANES_INLINE) free(l->key.ptr);
}

void lb_lanes_free(lb_lanes *t) {
  if (t == NULL) return;
  for (uint32_t i = 0; i < t->nlanes; i++)
    if (t->lanes[i].live) lb__lanes_free_key(&t->lanes[i]);
  free(t->lanes);
  free(t->w);
  free(t->slots);
  free(t);
}

static lb__lane *lb__lanes_get(const lb_lanes *t, const char *key, size_t len,
                               size_t *slot) {
  if (len > UINT32_MAX) return NULL;
  uint64_t h = lb__lanes_hash((const uint8_t *)key, len, t->seed);
  ptrdiff_t i = lb__lanes_find(t, key, len, h);
  if (i < 0) return NULL;
  if (slot) *slot = (size_t)i;
  return &t->lanes[t->slots[i].idx1 - 1];
}

int lb_lanes_acquire(lb_lanes *t, const char *key, size_t len, uint64_t id,
                     double now) {
  if (id == 0 || id > (uint64_t)INT64_MAX) return LB_EINVAL;
  if (key == NULL && len) return LB_EINVAL;
  if (len > UINT32_MAX) return LB_ETOOLARGE;
  uint64_t h = lb__lanes_hash((const uint8_t *)key, len, t->seed);
  ptrdiff_t si = lb__lanes_find(t, key, len, h);
  if (si >= 0) {
    lb__lane *l = &t->lanes[t->slots[si].idx1 - 1];
    if (l->owner == 0) {
      l->owner = id;
      l->gen++;
      l->last_used = now;
      return LB_LANES_ACQUIRED;
    }
    if (l->owner == id) return LB_ESTATE;
    if (lb__lanes_grow_waiters(t)) return LB_ENOMEM;
    uint32_t wi = lb__lanes_take_waiter(t);
    t->w[wi].id = id;
    t->w[wi].next = 0;
    if (l->wtail) t->w[l->wtail - 1].next = wi + 1;
    else l->whead = wi + 1;
    l->wtail = wi + 1;
    l->nwait++;
    return LB_LANES_QUEUED;
  }

  /* A new lane. Every allocation happens before the table changes, so a
   * failure leaves it as it was. Growing at 3/4 load keeps probe runs short
   * with linear probing. */
  if (t->count + 1 > t->nslots / 4 * 3) {
    size_t n = t->nslots ? t->nslots * 2 : LB__LANES_MIN_SLOTS;
    if (n < t->nslots || lb__lanes_rehash(t, n)) return LB_ENOMEM;
  }
  if (lb__lanes_grow_lanes(t)) return LB_ENOMEM;
  uint8_t *kp = NULL;
  if (len > LB__LANES_INLINE) {
    kp = malloc(len);
    if (kp == NULL) return LB_ENOMEM;
    memcpy(kp, key, len);
  }
  uint32_t li = lb__lanes_take_lane(t);
  lb__lane *l = &t->lanes[li];
  memset(l, 0, sizeof *l);
  l->owner = id;
  l->hash = h;
  l->last_used = now;
  l->gen = 1;
  l->klen = (uint32_t)len;
  l->live = 1;
  if (kp) l->key.ptr = kp;
  else if (len) memcpy(l->key.inl, key, len);
  lb__lanes_place(t->slots, t->nslots - 1, h, li + 1);
  t->count++;
  return LB_LANES_ACQUIRED;
}

int64_t lb_lanes_release(lb_lanes *t, const char *key, size_t len,
                         uint64_t id, double now) {
  if (key == NULL && len) return LB_EINVAL;
  lb__lane *l = lb__lanes_get(t, key, len, NULL);
  if (l == NULL || id == 0 || l->owner != id) return LB_ESTATE;
  l->gen++;
  l->last_used = now;
  if (l->whead == 0) {
    l->owner = 0;
    return 0;
  }
  /* Hand-off: the first waiter owns the lane before anyone else can ask for
   * it, which is what makes the order FIFO. */
  uint32_t wi = l->whead - 1;
  l->owner = t->w[wi].id;
  l->whead = t->w[wi].next;
  if (l->whead == 0) l->wtail = 0;
  l->nwait--;
  lb__lanes_put_waiter(t, wi);
  return (int64_t)l->owner;
}

int lb_lanes_cancel(lb_lanes *t, const char *key, size_t len, uint64_t id) {
  if (key == NULL && len) return LB_EINVAL;
  lb__lane *l = lb__lanes_get(t, key, len, NULL);
  if (l == NULL || id == 0) return LB_ESTATE;
  if (l->owner == id) return LB_LANES_OWNED;
  uint32_t prev = 0, cur = l->whead;
  while (cur) {
    lb__waiter *w = &t->w[cur - 1];
    if (w->id == id) {
      if (prev) t->w[prev - 1].next = w->next;
      else l->whead = w->next;
      if (l->wtail == cur) l->wtail = prev;
      l->nwait--;
      lb__lanes_put_waiter(t, cur - 1);
      return LB_LANES_CANCELLED;
    }
    prev = cur;
    cur = w->next;
  }
  return LB_ESTATE;
}

uint64_t lb_lanes_owner(const lb_lanes *t, const char *key, size_t len) {
  if (key == NULL && len) return 0;
  const lb__lane *l = lb__lanes_get(t, key, len, NULL);
  return l ? l->owner : 0;
}

size_t lb_lanes_waiting(const lb_lanes *t, const char *key, size_t len) {
  if (key == NULL && len) return 0;
  const lb__lane *l = lb__lanes_get(t, key, len, NULL);
  return l ? l->nwait : 0;
}

size_t lb_lanes_count(const lb_lanes *t) { return t->count; }

static int lb__lanes_idle(const lb__lane *l) {
  return l->owner == 0 && l->whead == 0;
}

static void lb__lanes_remove(lb_lanes *t, uint32_t li) {
  lb__lane *l = &t->lanes[li];
  size_t mask = t->nslots - 1, i = (size_t)l->hash & mask;
  while (t->slots[i].idx1 != li + 1) i = (i + 1) & mask;
  lb__lanes_unslot(t, i);
  lb__lanes_free_key(l);
  l->live = 0;
  l->marked = 0;
  l->whead = t->free_lane;
  t->free_lane = li + 1;
  t->count--;
}

size_t lb_lanes_sweep(lb_lanes *t, double now, double idle, int phase) {
  if (phase != LB_LANES_MARK && phase != LB_LANES_SWEEP &&
      phase != LB_LANES_SWEEP_NOW)
    return 0;
  size_t n = 0;
  for (uint32_t i = 0; i < t->nlanes; i++) {
    lb__lane *l = &t->lanes[i];
    if (!l->live) continue;
    int idle_now = lb__lanes_idle(l) && now - l->last_used >= idle;
    if (phase == LB_LANES_MARK) {
      l->marked = (uint8_t)idle_now;
      l->mark_gen = l->gen;
      n += (size_t)idle_now;
    } else if (phase == LB_LANES_SWEEP) {
      /* Re-validate: still idle and no owner change since the mark. */
      int go = l->marked && lb__lanes_idle(l) && l->gen == l->mark_gen;
      l->marked = 0;
      if (go) { lb__lanes_remove(t, i); n++; }
    } else if (idle_now) {
      lb__lanes_remove(t, i);
      n++;
    }
  }
  if (phase == LB_LANES_MARK) return n;
  if (t->count == 0) {
    /* Nothing is left: give every pool back (no waiter can exist without a
     * lane). */
    free(t->lanes);
    free(t->w);
    t->lanes = NULL;
    t->w = NULL;
    t->nlanes = t->cap_lanes = t->free_lane = 0;
    t->nw = t->cap_w = t->free_w = 0;
  }
  /* Shrink a sparse slot array so a burst of keys does not pin its memory;
   * a failed allocation just keeps the bigger array. */
  if (t->nslots > LB__LANES_MIN_SLOTS && t->count < t->nslots / 8) {
    size_t m = LB__LANES_MIN_SLOTS;
    while (m / 2 < t->count) m *= 2;
    (void)lb__lanes_rehash(t, m);
  }
  return n;
}
